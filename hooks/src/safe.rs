//! Opening files an agent may have written, from the host.
//!
//! Everything in the work tree and `.git` was chosen by whoever ran there
//! last, and the hooks run as the committing user. So every file they read
//! is opened with `O_NONBLOCK` (a FIFO or a device never blocks the open),
//! checked to be a regular file before a byte is read, and read with a
//! bound (a `/proc` file says it is empty and never ends; a sparse file says
//! it is a terabyte). In `.git` the last component is followed only when it
//! is a symlink to a regular file, as git would follow it; in the work tree
//! no component is followed at all, as git never follows one there (a
//! staged `lnk/kmsg` below a symlink `lnk -> /proc` is not `/proc/kmsg`).
//!
//! A file that is there but not one the hooks may read is an
//! [`UnsafeFile`] error (see [`unsafe_file`]): the callers refuse with it
//! rather than hand the repository to git, which would block on it too.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, FileType, Mode, OFlags};

/// A file the hooks refuse to read: what it is instead of a regular file,
/// or how much larger than they read it is.
#[derive(Debug, thiserror::Error)]
#[error("{} is {what}", path.display())]
pub struct UnsafeFile {
    pub path: PathBuf,
    pub what: String,
}

fn unsafe_err(path: &Path, what: impl Into<String>) -> io::Error {
    io::Error::other(UnsafeFile { path: path.to_path_buf(), what: what.into() })
}

/// The [`UnsafeFile`] an error carries, if it is one.
pub fn unsafe_file(e: &io::Error) -> Option<&UnsafeFile> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<UnsafeFile>())
}

fn kind_name(t: FileType) -> &'static str {
    match t {
        FileType::Directory => "a directory",
        FileType::Symlink => "a symbolic link",
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        _ => "not a regular file",
    }
}

const READ: OFlags = OFlags::RDONLY.union(OFlags::CLOEXEC).union(OFlags::NONBLOCK).union(OFlags::NOCTTY);

/// The file systems whose "regular files" are the kernel's: reading one
/// may block (`/proc/kmsg`) or consume something (the kernel log).
const KERNEL_FS: [(u64, &str); 6] = [
    (0x9fa0, "/proc"),
    (0x6265_6572, "/sys"),
    (0x6462_6720, "debugfs"),
    (0x7472_6163, "tracefs"),
    (0x7363_6673, "securityfs"),
    (0x6367_7270, "cgroup2"),
];

/// Checks that `fd` is a regular file, and not one of the kernel's: its `stat`.
fn regular(fd: &OwnedFd, path: &Path) -> io::Result<rfs::Stat> {
    let st = rfs::fstat(fd)?;
    let t = FileType::from_raw_mode(st.st_mode);
    if t != FileType::RegularFile {
        return Err(unsafe_err(path, kind_name(t)));
    }
    let fs_type = rfs::fstatfs(fd)?.f_type as u64;
    if let Some((_, name)) = KERNEL_FS.iter().find(|(magic, _)| *magic == fs_type) {
        return Err(unsafe_err(path, format!("a file of {name}")));
    }
    Ok(st)
}

fn len_of(st: &rfs::Stat) -> u64 {
    u64::try_from(st.st_size).unwrap_or(0)
}

/// Opens the regular file at `path` (intermediate directories followed, as
/// git follows them in `.git`; the last component only if it is a symlink
/// whose target is a regular file): the file and its length.
pub fn open_regular(path: &Path) -> io::Result<(File, u64)> {
    let (file, st) = open_regular_stat(path)?;
    Ok((file, len_of(&st)))
}

/// [`open_regular`], with the file's whole `stat` (its blocks on disk, say)
/// as the check took it.
pub fn open_regular_stat(path: &Path) -> io::Result<(File, rfs::Stat)> {
    let fd = match rfs::open(path, READ | OFlags::NOFOLLOW, Mode::empty()) {
        Ok(fd) => fd,
        // A symlink: its target must be a regular file before it is opened
        // (opening some devices acts on them).
        Err(rustix::io::Errno::LOOP) => {
            let st = rfs::stat(path)?;
            let t = FileType::from_raw_mode(st.st_mode);
            if t != FileType::RegularFile {
                return Err(unsafe_err(path, format!("a symbolic link to {}", kind_name(t))));
            }
            rfs::open(path, READ, Mode::empty())?
        }
        Err(e) => return Err(e.into()),
    };
    let st = regular(&fd, path)?;
    Ok((File::from(fd), st))
}

/// Reads all of `file` (which says it is `len` bytes long), refusing more
/// than `max` bytes whatever it says.
fn read_all(file: File, len: u64, max: u64, path: &Path) -> io::Result<Vec<u8>> {
    if len > max {
        return Err(unsafe_err(path, format!("{len} bytes long, more than the {max} read here")));
    }
    let mut out = Vec::with_capacity(len as usize);
    // O_NONBLOCK: a file that would block says so instead.
    file.take(max + 1).read_to_end(&mut out).map_err(|e| match e.kind() {
        io::ErrorKind::WouldBlock => unsafe_err(path, "a file whose reads block"),
        _ => e,
    })?;
    if out.len() as u64 > max {
        return Err(unsafe_err(path, format!("longer than the {max} bytes read here")));
    }
    Ok(out)
}

/// The bytes of the regular file at `path` (see [`open_regular`]), at most `max`.
pub fn read_bounded(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let (file, len) = open_regular(path)?;
    read_all(file, len, max, path)
}

/// A directory of the work tree, opened once, below which paths are
/// resolved without following any symlink.
#[derive(Debug)]
pub struct Tree {
    dir: OwnedFd,
    top: PathBuf,
}

/// What a work-tree path holds, as git would stage it from there.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    /// A regular file's bytes.
    File(Vec<u8>),
    /// A symlink's target.
    Symlink(Vec<u8>),
    /// Nothing, something else, or more than the bound: not read.
    Other,
}

impl Tree {
    pub fn open(top: &Path) -> io::Result<Tree> {
        let dir = rfs::open(top, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
        Ok(Tree { dir, top: top.to_path_buf() })
    }

    /// What `rel` (a path as git spells it) holds, reading a file of at most
    /// `max` bytes. Every directory on the way is opened with `O_NOFOLLOW`.
    pub fn read(&self, rel: &[u8], max: u64) -> io::Result<Found> {
        let mut parts = rel.split(|&b| b == b'/').peekable();
        let mut owned: Option<OwnedFd> = None;
        let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        while let Some(part) = parts.next() {
            let name = std::ffi::OsStr::from_bytes(part);
            if part.is_empty() || part == b"." || part == b".." {
                return Ok(Found::Other);
            }
            let at = owned.as_ref().map_or(self.dir.as_fd(), |d| d.as_fd());
            if parts.peek().is_some() {
                match rfs::openat(at, name, dir_flags, Mode::empty()) {
                    Ok(d) => owned = Some(d),
                    // A symlink, a file or nothing where a directory was.
                    Err(_) => return Ok(Found::Other),
                }
                continue;
            }
            let st = match rfs::statat(at, name, rfs::AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(_) => return Ok(Found::Other),
            };
            return match FileType::from_raw_mode(st.st_mode) {
                FileType::Symlink => {
                    Ok(rfs::readlinkat(at, name, Vec::new()).map_or(Found::Other, |t| Found::Symlink(t.into_bytes())))
                }
                FileType::RegularFile => {
                    let fd = match rfs::openat(at, name, READ | OFlags::NOFOLLOW, Mode::empty()) {
                        Ok(fd) => fd,
                        Err(_) => return Ok(Found::Other),
                    };
                    let path = self.top.join(std::ffi::OsStr::from_bytes(rel));
                    let len = match regular(&fd, &path).map(|st| len_of(&st)) {
                        Ok(len) if len <= max => len,
                        _ => return Ok(Found::Other),
                    };
                    match read_all(File::from(fd), len, max, &path) {
                        Ok(bytes) => Ok(Found::File(bytes)),
                        Err(e) if unsafe_file(&e).is_some() => Ok(Found::Other),
                        Err(e) => Err(e),
                    }
                }
                _ => Ok(Found::Other),
            };
        }
        Ok(Found::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn fifos_devices_and_endless_files_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        rustix::fs::mknodat(rustix::fs::CWD, &fifo, FileType::Fifo, Mode::from_raw_mode(0o600), 0).unwrap();
        let e = read_bounded(&fifo, 100).unwrap_err();
        assert_eq!(unsafe_file(&e).unwrap().what, "a FIFO");
        symlink(&fifo, dir.path().join("to-fifo")).unwrap();
        let e = read_bounded(&dir.path().join("to-fifo"), 100).unwrap_err();
        assert_eq!(unsafe_file(&e).unwrap().what, "a symbolic link to a FIFO");
        symlink("/dev/zero", dir.path().join("zero")).unwrap();
        assert!(unsafe_file(&read_bounded(&dir.path().join("zero"), 100).unwrap_err()).is_some());
        // The kernel's files (one says it is empty and is not, one blocks
        // and consumes the kernel log), directly or through a symlink.
        let e = read_bounded(Path::new("/proc/self/maps"), 1 << 20).unwrap_err();
        assert_eq!(unsafe_file(&e).unwrap().what, "a file of /proc", "{e}");
        symlink("/proc/kmsg", dir.path().join("kmsg")).unwrap();
        let e = read_bounded(&dir.path().join("kmsg"), 1 << 20).unwrap_err();
        assert!(unsafe_file(&e).is_some(), "{e}");
        // Positive control: a regular file, and a symlink to one.
        std::fs::write(dir.path().join("f"), b"bytes").unwrap();
        symlink("f", dir.path().join("to-f")).unwrap();
        assert_eq!(read_bounded(&dir.path().join("to-f"), 5).unwrap(), b"bytes");
        assert!(unsafe_file(&read_bounded(&dir.path().join("f"), 4).unwrap_err()).is_some());
    }

    #[test]
    fn work_tree_paths_never_pass_through_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::fs::write(dir.path().join("d/f"), b"inside").unwrap();
        symlink("/proc", dir.path().join("lnk")).unwrap();
        symlink("d", dir.path().join("dl")).unwrap();
        rustix::fs::mknodat(rustix::fs::CWD, dir.path().join("fifo"), FileType::Fifo, Mode::from_raw_mode(0o600), 0)
            .unwrap();
        let tree = Tree::open(dir.path()).unwrap();
        assert_eq!(tree.read(b"d/f", 100).unwrap(), Found::File(b"inside".to_vec()), "positive control");
        assert_eq!(tree.read(b"dl/f", 100).unwrap(), Found::Other, "through a symlinked directory");
        assert_eq!(tree.read(b"lnk/kmsg", 100).unwrap(), Found::Other);
        assert_eq!(tree.read(b"lnk", 100).unwrap(), Found::Symlink(b"/proc".to_vec()));
        assert_eq!(tree.read(b"fifo", 100).unwrap(), Found::Other);
        assert_eq!(tree.read(b"d/f", 3).unwrap(), Found::Other, "over the bound");
        assert_eq!(tree.read(b"d/../d/f", 100).unwrap(), Found::Other);
    }
}
