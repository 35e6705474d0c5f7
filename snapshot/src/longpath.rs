//! Paths longer than the kernel takes in one system call (`PATH_MAX`, 4096
//! bytes, `ENAMETOOLONG` past it). A workspace 10,000 directories deep has
//! them, and a snapshot must still take and restore it. Such a path is
//! reached by opening its directories a piece at a time, each piece short
//! enough; the last component is then named relative to the directory
//! reached. Short paths — all but pathological ones — take the direct way.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{CWD, Mode, OFlags};
use rustix::io::Errno;

/// Longest piece handed to one system call, with room below `PATH_MAX`
/// for `/proc/self/fd/N/` in front of it.
const PIECE: usize = 3800;

/// Opens the directory `dir` (following symlinks, as a path lookup does)
/// as an `O_PATH` descriptor, however long its path.
fn open_long_dir(dir: &[u8]) -> rustix::io::Result<OwnedFd> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let mut fd: Option<OwnedFd> = None;
    let mut rest = dir;
    loop {
        let piece = if rest.len() <= PIECE {
            rest
        } else {
            // Cut at the last `/` that keeps the piece short; a single
            // component longer than that is not a name the kernel allows.
            let cut = rest[..=PIECE].iter().rposition(|b| *b == b'/').filter(|&i| i > 0).ok_or(Errno::NAMETOOLONG)?;
            &rest[..cut]
        };
        let base = fd.as_ref().map_or(CWD, |f| f.as_fd());
        fd = Some(rustix::fs::openat(base, OsStr::from_bytes(piece), flags, Mode::empty())?);
        rest = &rest[piece.len()..];
        while let Some(r) = rest.strip_prefix(b"/") {
            rest = r;
        }
        if rest.is_empty() {
            return fd.ok_or(Errno::NOENT);
        }
    }
}

/// Runs `op` with a directory and a name that together are `path`: the
/// current directory and `path` itself when it is short enough, else the
/// directory holding it, opened piece by piece, and its last component.
pub(crate) fn at<T>(
    path: &Path,
    op: impl FnOnce(BorrowedFd<'_>, &Path) -> rustix::io::Result<T>,
) -> rustix::io::Result<T> {
    let bytes = path.as_os_str().as_bytes();
    if bytes.len() <= PIECE {
        return op(CWD, path);
    }
    let (dir, name) = split(bytes)?;
    let fd = open_long_dir(dir)?;
    op(fd.as_fd(), Path::new(OsStr::from_bytes(name)))
}

fn split(bytes: &[u8]) -> rustix::io::Result<(&[u8], &[u8])> {
    let slash = bytes.iter().rposition(|b| *b == b'/').ok_or(Errno::NAMETOOLONG)?;
    let dir = if slash == 0 { &bytes[..1] } else { &bytes[..slash] };
    Ok((dir, &bytes[slash + 1..]))
}

/// A path that ordinary `std::fs` calls accept however long the original:
/// itself when short, else `/proc/self/fd/N/NAME` with `N` the directory
/// holding it, kept open as long as this value lives. For code that works
/// on paths (rollback) rather than on descriptors (the walk).
#[derive(Debug)]
pub(crate) struct Reachable {
    _dir: Option<OwnedFd>,
    path: PathBuf,
}

impl Reachable {
    pub fn new(path: &Path) -> std::io::Result<Reachable> {
        let bytes = path.as_os_str().as_bytes();
        if bytes.len() <= PIECE {
            return Ok(Reachable { _dir: None, path: path.to_path_buf() });
        }
        let (dir, name) = split(bytes)?;
        let fd = open_long_dir(dir)?;
        let mut short = PathBuf::from(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd)));
        short.push(OsStr::from_bytes(name));
        Ok(Reachable { _dir: Some(fd), path: short })
    }
}

impl std::ops::Deref for Reachable {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// `depth` nested directories named `d` under `root`, made with *at
    /// calls (their paths are too long for anything else); returns the path.
    fn nest(root: &Path, depth: usize) -> PathBuf {
        let mut fd = rustix::fs::open(root, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap();
        for _ in 0..depth {
            rustix::fs::mkdirat(&fd, "d", Mode::from_raw_mode(0o755)).unwrap();
            fd = rustix::fs::openat(&fd, "d", OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap();
        }
        let mut p = root.to_path_buf();
        for _ in 0..depth {
            p.push("d");
        }
        p
    }

    #[test]
    fn paths_past_path_max_are_reached() {
        let d = tempfile::tempdir().unwrap();
        let deep = nest(d.path(), 3000);
        assert!(deep.as_os_str().len() > 4096);
        assert_eq!(std::fs::metadata(&deep).unwrap_err().raw_os_error(), Some(libc_enametoolong()));
        let file = deep.join("f");
        let reach = Reachable::new(&file).unwrap();
        std::fs::write(&*reach, b"deep").unwrap();
        let got = at(&file, |dir, name| {
            let fd = rustix::fs::openat(dir, name, OFlags::RDONLY, Mode::empty())?;
            let mut buf = [0u8; 8];
            let n = rustix::io::read(&fd, &mut buf)?;
            Ok(buf[..n].to_vec())
        })
        .unwrap();
        assert_eq!(got, b"deep");
        // Short paths go straight through.
        assert_eq!(&*Reachable::new(d.path()).unwrap(), d.path());
    }

    fn libc_enametoolong() -> i32 {
        Errno::NAMETOOLONG.raw_os_error()
    }
}
