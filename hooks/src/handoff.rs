//! From pre-commit to prepare-commit-msg: the `Ws-Session` trailers of the
//! staged content, found while pre-commit examined it, saved beside the
//! index git commits from as `ws-trailers` (one trailer per line, or `none`)
//! when pre-commit lets the commit through; a refusing pre-commit removes it.
//! The prepare-commit-msg script exits at once, without starting ws, when the
//! file says `none` and is not older than the index, emptying it (a shell
//! builtin) so that it serves one commit only; ws takes (and removes) a file
//! with trailers instead of examining the index again. An empty file, or one
//! older than the index, is ignored: a commit that skipped pre-commit
//! (`--no-verify`) is examined in full.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};

/// The file's name, beside the index (the hook script spells it too).
pub const HANDOFF_NAME: &str = "ws-trailers";

/// Where the trailers for a commit from `index` go: `None` when the index
/// path names no directory (then nothing is handed off).
pub fn handoff_path(index: &Path) -> Option<PathBuf> {
    let dir = index.parent().filter(|d| !d.as_os_str().is_empty())?;
    Some(dir.join(HANDOFF_NAME))
}

/// What the file says when the commit carries no session's change.
const NONE: &str = "none";

/// More than any list of trailers: a larger file was not written by ws.
const MAX_LEN: u64 = 64 << 10;

/// The directory the index is in, opened once: every name below is
/// created, read and removed relative to it, never through a symlink.
fn open_dir(index: &Path) -> io::Result<Option<OwnedFd>> {
    let Some(dir) = index.parent().filter(|d| !d.as_os_str().is_empty()) else { return Ok(None) };
    Ok(Some(rfs::open(dir, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?))
}

/// Saves `trailers` for the commit from `index` (replacing what was there).
///
/// The file is written under a fresh name created exclusively (`O_EXCL`,
/// `O_NOFOLLOW`: whatever a session planted under a name it guessed is
/// never opened) and renamed into place, which replaces a planted symlink
/// itself rather than what it points at.
pub fn save_trailers(index: &Path, trailers: &[String]) -> io::Result<()> {
    let Some(dir) = open_dir(index)? else { return Ok(()) };
    let mut text = String::new();
    if trailers.is_empty() {
        text.push_str(NONE);
        text.push('\n');
    }
    for t in trailers {
        text.push_str(t);
        text.push('\n');
    }
    let create = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    for _ in 0..16 {
        let mut salt = [0u8; 8];
        rustix::rand::getrandom(&mut salt, rustix::rand::GetRandomFlags::empty())?;
        let tmp = format!("{HANDOFF_NAME}.tmp-{}-{:016x}", std::process::id(), u64::from_ne_bytes(salt));
        let fd = match rfs::openat(&dir, tmp.as_str(), create, Mode::from_raw_mode(0o600)) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::EXIST) => continue,
            Err(e) => return Err(e.into()),
        };
        let written = File::from(fd)
            .write_all(text.as_bytes())
            .and_then(|()| Ok(rfs::renameat(&dir, tmp.as_str(), &dir, HANDOFF_NAME)?));
        if written.is_err() {
            let _ = rfs::unlinkat(&dir, tmp.as_str(), AtFlags::empty());
        }
        return written;
    }
    Err(io::Error::new(io::ErrorKind::AlreadyExists, "no free temporary name beside the index"))
}

/// Removes what a previous pre-commit saved for `index`.
pub fn discard_trailers(index: &Path) {
    if let Ok(Some(dir)) = open_dir(index) {
        let _ = rfs::unlinkat(&dir, HANDOFF_NAME, AtFlags::empty());
    }
}

/// The trailers pre-commit saved for `index`, if it saved them after the
/// index was last written; the file is removed either way. Anything but a
/// regular file of a sensible size under that name is removed unread.
pub fn take_trailers(index: &Path) -> Option<Vec<String>> {
    let dir = open_dir(index).ok()??;
    let read = || -> Option<(std::time::SystemTime, String)> {
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
        let fd = rfs::openat(&dir, HANDOFF_NAME, flags, Mode::empty()).ok()?;
        let st = rfs::fstat(&fd).ok()?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile || st.st_size as u64 > MAX_LEN {
            return None;
        }
        let file = File::from(fd);
        let saved = file.metadata().and_then(|m| m.modified()).ok()?;
        let mut text = String::new();
        file.take(MAX_LEN).read_to_string(&mut text).ok()?;
        Some((saved, text))
    };
    let found = read();
    let _ = rfs::unlinkat(&dir, HANDOFF_NAME, AtFlags::empty());
    let (saved, text) = found?;
    let written = std::fs::metadata(index).and_then(|m| m.modified()).ok();
    let fresh = written.is_some_and(|w| saved >= w);
    let text = Some(text).filter(|t| fresh && !t.trim().is_empty())?;
    Some(text.lines().filter(|l| !l.is_empty() && *l != NONE).map(str::to_owned).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailers_saved_after_the_index_are_taken_once() {
        let dir = tempfile::tempdir().unwrap();
        let index = dir.path().join("index");
        std::fs::write(&index, b"index").unwrap();
        save_trailers(&index, &["Ws-Session: a".into(), "Ws-Session: b".into()]).unwrap();
        assert_eq!(take_trailers(&index).unwrap(), ["Ws-Session: a", "Ws-Session: b"]);
        assert_eq!(take_trailers(&index), None, "taken once");
        save_trailers(&index, &[]).unwrap();
        assert_eq!(std::fs::read(dir.path().join(HANDOFF_NAME)).unwrap(), b"none\n");
        assert_eq!(take_trailers(&index).unwrap(), Vec::<String>::new());
        // Emptied by the hook script after use: nothing to go by.
        std::fs::write(dir.path().join(HANDOFF_NAME), b"").unwrap();
        assert_eq!(take_trailers(&index), None);
        save_trailers(&index, &[]).unwrap();
        discard_trailers(&index);
        assert_eq!(take_trailers(&index), None);
    }

    #[test]
    fn trailers_older_than_the_index_are_stale() {
        let dir = tempfile::tempdir().unwrap();
        let index = dir.path().join("index");
        std::fs::write(&index, b"index").unwrap();
        save_trailers(&index, &["Ws-Session: a".into()]).unwrap();
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options().write(true).open(&index).unwrap().set_modified(later).unwrap();
        assert_eq!(take_trailers(&index), None);
        assert!(!dir.path().join(HANDOFF_NAME).exists(), "a stale file is removed");
    }

    #[test]
    fn planted_symlinks_beside_the_index_are_never_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let git = dir.path().join("git");
        std::fs::create_dir(&git).unwrap();
        let index = git.join("index");
        std::fs::write(&index, b"index").unwrap();
        let outside = dir.path().join("outside");
        std::fs::write(&outside, b"precious").unwrap();
        // Every name the old code could have used, and the final one.
        let pid = std::process::id();
        for p in pid.saturating_sub(3)..pid + 3 {
            std::os::unix::fs::symlink(&outside, git.join(format!("{HANDOFF_NAME}.tmp-{p}"))).unwrap();
        }
        std::os::unix::fs::symlink(&outside, git.join(HANDOFF_NAME)).unwrap();
        assert_eq!(take_trailers(&index), None, "a symlink is not read");
        assert!(std::fs::symlink_metadata(git.join(HANDOFF_NAME)).is_err(), "but removed");
        std::os::unix::fs::symlink(&outside, git.join(HANDOFF_NAME)).unwrap();
        save_trailers(&index, &["Ws-Session: a".into()]).unwrap();
        assert_eq!(std::fs::read(&outside).unwrap(), b"precious");
        assert!(std::fs::symlink_metadata(git.join(HANDOFF_NAME)).unwrap().is_file(), "replaced, not followed");
        assert_eq!(take_trailers(&index).unwrap(), ["Ws-Session: a"]);
        // A FIFO under the name: taken without blocking, and removed.
        rustix::fs::mknodat(rustix::fs::CWD, git.join(HANDOFF_NAME), FileType::Fifo, Mode::from_raw_mode(0o600), 0)
            .unwrap();
        assert_eq!(take_trailers(&index), None);
        assert!(std::fs::symlink_metadata(git.join(HANDOFF_NAME)).is_err());
        discard_trailers(&index);
        assert_eq!(std::fs::read(&outside).unwrap(), b"precious");
    }

    #[test]
    fn an_index_without_a_directory_hands_nothing_off() {
        assert_eq!(handoff_path(Path::new("index")), None);
        assert!(save_trailers(Path::new("index"), &["x".into()]).is_ok());
        assert_eq!(handoff_path(Path::new(".git/index")), Some(PathBuf::from(".git/ws-trailers")));
    }
}
