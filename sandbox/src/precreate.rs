//! Making the paths a profile lists in `filesystem.create` before the
//! session restricts itself.
//!
//! # Security
//! - Landlock grants access to what exists when the ruleset is built; it
//!   cannot grant "create exactly this name" in a directory. Granting the
//!   parent (`$HOME`) would let the session create any name there
//!   (`~/.bashrc`, `~/.ssh/authorized_keys`), so the path itself is made
//!   here, empty, and then granted like any other.
//! - Runs as the user the session runs as (after any switch from root), so
//!   what it makes is theirs, mode 0700 (directories) or 0600 (files).
//! - Only below [`Creation::within`] (the home directory), component by
//!   component from a descriptor, never following a symbolic link
//!   (`O_NOFOLLOW`): a link planted by an earlier session cannot send a
//!   creation elsewhere. Something already there, of whatever kind, is left
//!   alone.
//! - Failures are skipped: a missing path grants nothing, as before.

use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::path::Component;

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use crate::policy::Creation;

/// What a new file holds: `{}` for a `.json` file (an empty file is not
/// JSON, and programs like Claude Code refuse to start on one), else nothing.
pub fn initial_content(path: &std::path::Path) -> &'static [u8] {
    if path.extension() == Some(OsStr::new("json")) { b"{}\n" } else { b"" }
}

/// Makes every missing path of `list`; what cannot be made is skipped.
pub fn create_missing(list: &[Creation]) {
    for c in list {
        let _ = create(c);
    }
}

fn open_dir(at: &OwnedFd, name: &OsStr) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(at, name, OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())
}

/// Makes one path. `Ok` also when it already existed.
pub fn create(c: &Creation) -> Result<(), Errno> {
    let rel = c.path.strip_prefix(&c.within).map_err(|_| Errno::INVAL)?;
    let names: Vec<&OsStr> = rel
        .components()
        .map(|comp| match comp {
            Component::Normal(n) => Ok(n),
            _ => Err(Errno::INVAL),
        })
        .collect::<Result<_, _>>()?;
    let Some((last, parents)) = names.split_last() else { return Err(Errno::INVAL) };
    // The home directory itself may be reached through a link (/home → /usr/home).
    let mut dir = rustix::fs::open(&c.within, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
    for name in parents {
        match rustix::fs::mkdirat(&dir, *name, Mode::from_raw_mode(0o700)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(e),
        }
        dir = open_dir(&dir, name)?;
    }
    if c.dir {
        return match rustix::fs::mkdirat(&dir, *last, Mode::from_raw_mode(0o700)) {
            Ok(()) | Err(Errno::EXIST) => Ok(()),
            Err(e) => Err(e),
        };
    }
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let file = match rustix::fs::openat(&dir, *last, flags, Mode::from_raw_mode(0o600)) {
        Ok(f) => f,
        Err(Errno::EXIST) => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut content = initial_content(&c.path);
    while !content.is_empty() {
        match rustix::io::write(&file, content) {
            Ok(n) => content = &content[n..],
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use super::*;

    fn make(within: &Path, rel: &str, dir: bool) -> Result<(), Errno> {
        create(&Creation { path: within.join(rel), dir, within: within.to_path_buf() })
    }

    #[test]
    fn makes_files_and_directories_with_their_parents_private() {
        let t = tempfile::tempdir().unwrap();
        make(t.path(), ".claude.json", false).unwrap();
        make(t.path(), ".claude", true).unwrap();
        make(t.path(), ".cache/tool/x", true).unwrap();
        make(t.path(), "notes.txt", false).unwrap();
        assert_eq!(std::fs::read(t.path().join(".claude.json")).unwrap(), b"{}\n");
        assert_eq!(std::fs::read(t.path().join("notes.txt")).unwrap(), b"");
        assert!(t.path().join(".claude").is_dir() && t.path().join(".cache/tool/x").is_dir());
        let mode = |p: &str| std::fs::metadata(t.path().join(p)).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode(".claude.json"), mode(".claude"), mode(".cache")), (0o600, 0o700, 0o700));
    }

    #[test]
    fn leaves_what_exists_alone() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join(".claude.json"), "{\"kept\":1}").unwrap();
        std::fs::write(t.path().join(".claude"), "a file where a directory is wanted").unwrap();
        make(t.path(), ".claude.json", false).unwrap();
        make(t.path(), ".claude", true).unwrap();
        assert_eq!(std::fs::read(t.path().join(".claude.json")).unwrap(), b"{\"kept\":1}");
        assert!(t.path().join(".claude").is_file());
    }

    #[test]
    fn never_follows_a_planted_link() {
        let t = tempfile::tempdir().unwrap();
        let (home, elsewhere) = (t.path().join("home"), t.path().join("elsewhere"));
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, home.join(".cache")).unwrap();
        std::os::unix::fs::symlink(elsewhere.join("target.json"), home.join(".claude.json")).unwrap();
        assert!(make(&home, ".cache/tool", true).is_err());
        make(&home, ".claude.json", false).unwrap();
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0, "nothing made through a link");
        assert!(make(&home, "../outside", true).is_err());
        assert!(!t.path().join("outside").exists());
        assert!(
            create(&Creation { path: "/etc/x".into(), dir: true, within: home.clone() }).is_err(),
            "only below `within`"
        );
    }
}
