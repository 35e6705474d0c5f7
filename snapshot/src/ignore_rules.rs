//! Git's ignore rules, evaluated the way git does: the deepest `.gitignore`
//! with a matching pattern decides (a `!pattern` re-includes), then
//! `.git/info/exclude`, then the user's global excludes file. Patterns are
//! parsed by the `ignore` crate (ripgrep's); the files are read here.
//!
//! Every ignore file is the agent's to choose: a `.gitignore` in the work
//! tree, and `.git/info/exclude`, were written inside the sandbox. So none is
//! read the way the `ignore` crate would (`File::open` and read to the end,
//! which blocks forever on a FIFO and never ends on `/dev/zero`): a file is
//! looked at before it is opened, opened non-blocking, checked again through
//! its descriptor, and read with a bound. A file that fails is left out —
//! its rules are not applied, so more is snapshotted, never less — and
//! reported as a [`BadIgnoreFile`].

use std::fmt;
use std::io::Read;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use ignore::Match;
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags};
use rustix::io::Errno;

/// The most bytes of one ignore file ws reads: 1 MiB. Git's own limit is
/// 100 MiB; real ignore files are a few KiB, and 1 MiB of distinct patterns
/// (65,000) already takes 2.8 s to compile into a matcher (see the tests).
pub const IGNORE_FILE_MAX: u64 = 1 << 20;

/// The most wildcards (`*`, `?`, `[`) of all the ignore files one snapshot
/// applies together. Each becomes states of the matcher's regular
/// expressions: 1 MiB of `**/a*b*c*…` lines (330,000 wildcards) took 2 s
/// and 1 GiB of memory to compile (release build), and an agent may leave
/// such a file in every directory. Real ignore files hold tens to hundreds.
pub const IGNORE_WILDCARDS_MAX: usize = 16_384;

/// The most bytes of all the ignore files one snapshot applies together.
/// Patterns without wildcards cost too: 1 MiB of plain names (96,000) took
/// 0.17 s and 150 MiB to compile (release build), in every directory an
/// agent leaves such a file. 8 MiB bounds that to about 1.4 s; real trees
/// hold kilobytes (hundreds of small files in the largest).
pub const IGNORE_BYTES_MAX: u64 = 8 << 20;

/// An ignore file whose rules the snapshot could not apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadIgnoreFile {
    pub path: PathBuf,
    pub problem: IgnoreFileProblem,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgnoreFileProblem {
    /// A `.gitignore` in the work tree that is a symbolic link: git (since
    /// 2.32) does not follow those either.
    Symlink,
    /// A FIFO, device, socket or directory: `kind` names it.
    NotRegular { kind: &'static str },
    /// Longer than [`IGNORE_FILE_MAX`].
    TooLarge { size: u64 },
    /// Could not be opened or read (errno).
    Unreadable { errno: i32 },
    /// More wildcards than were left of [`IGNORE_WILDCARDS_MAX`].
    TooComplex { wildcards: usize, left: usize },
    /// More bytes than were left of [`IGNORE_BYTES_MAX`].
    TooMany { size: u64, left: u64 },
}

impl fmt::Display for BadIgnoreFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        match self.problem {
            IgnoreFileProblem::Symlink => write!(
                f,
                "the ignore file {path} is a symbolic link, which git does not follow either: its rules were not \
                 applied (replace it with a regular file)"
            ),
            IgnoreFileProblem::NotRegular { kind } => write!(
                f,
                "the ignore file {path} is a {kind}, not a regular file: its rules were not applied (remove it, or \
                 replace it with a regular file)"
            ),
            IgnoreFileProblem::TooLarge { size } => write!(
                f,
                "the ignore file {path} holds {size} bytes, more than the {IGNORE_FILE_MAX} ws reads: its rules were \
                 not applied (shorten it)"
            ),
            IgnoreFileProblem::TooComplex { wildcards, left } => write!(
                f,
                "the ignore file {path} holds {wildcards} wildcards, more than the {left} left of the \
                 {IGNORE_WILDCARDS_MAX} ws compiles for one snapshot: its rules were not applied (simplify its \
                 patterns)"
            ),
            IgnoreFileProblem::TooMany { size, left } => write!(
                f,
                "the ignore file {path} holds {size} bytes, more than the {left} left of the {IGNORE_BYTES_MAX} \
                 bytes of ignore files ws reads for one snapshot: its rules were not applied (remove ignore files \
                 you do not need)"
            ),
            IgnoreFileProblem::Unreadable { errno } => write!(
                f,
                "the ignore file {path} cannot be read ({}): its rules were not applied",
                std::io::Error::from_raw_os_error(errno)
            ),
        }
    }
}

fn kind_name(ft: FileType) -> &'static str {
    match ft {
        FileType::Fifo => "FIFO",
        FileType::CharacterDevice => "character device",
        FileType::BlockDevice => "block device",
        FileType::Socket => "socket",
        FileType::Directory => "directory",
        FileType::Symlink => "symbolic link",
        _ => "special file",
    }
}

/// Reads the ignore file `name` in the directory `dir`: `Ok(None)` when there
/// is none. `follow`: whether a symbolic link is followed (git follows
/// `.git/info/exclude` and `core.excludesFile`, not a work tree's
/// `.gitignore`). Never blocks: the name is `stat`ed before it is opened
/// (a device is never opened), opened `O_NONBLOCK` (a FIFO swapped in
/// meanwhile does not block the open) and checked again by `fstat`; then at
/// most [`IGNORE_FILE_MAX`] bytes are read.
pub(crate) fn read_ignore_file(
    dir: BorrowedFd<'_>,
    name: &Path,
    follow: bool,
) -> Result<Option<Vec<u8>>, IgnoreFileProblem> {
    let unreadable = |e: Errno| IgnoreFileProblem::Unreadable { errno: e.raw_os_error() };
    let at = if follow { AtFlags::empty() } else { AtFlags::SYMLINK_NOFOLLOW };
    let check = |st: &rustix::fs::Stat| -> Result<(), IgnoreFileProblem> {
        match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => Ok(()),
            FileType::Symlink => Err(IgnoreFileProblem::Symlink),
            ft => Err(IgnoreFileProblem::NotRegular { kind: kind_name(ft) }),
        }
    };
    let before = match rustix::fs::statat(dir, name, at) {
        Ok(st) => st,
        Err(Errno::NOENT | Errno::NOTDIR) => return Ok(None),
        Err(e) => return Err(unreadable(e)),
    };
    check(&before)?;
    let mut flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    if !follow {
        flags |= OFlags::NOFOLLOW;
    }
    let fd = match rustix::fs::openat(dir, name, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(None),
        Err(Errno::LOOP) if !follow => return Err(IgnoreFileProblem::Symlink),
        Err(e) => return Err(unreadable(e)),
    };
    let st = rustix::fs::fstat(&fd).map_err(unreadable)?;
    check(&st)?;
    if st.st_size as u64 > IGNORE_FILE_MAX {
        return Err(IgnoreFileProblem::TooLarge { size: st.st_size as u64 });
    }
    // The size can grow while we read, and /proc files say 0: the bound is
    // on what is read, not on what `fstat` said.
    let mut bytes = Vec::with_capacity(st.st_size as usize);
    let file = std::fs::File::from(fd);
    (&file)
        .take(IGNORE_FILE_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| IgnoreFileProblem::Unreadable { errno: e.raw_os_error().unwrap_or(0) })?;
    if bytes.len() as u64 > IGNORE_FILE_MAX {
        return Err(IgnoreFileProblem::TooLarge { size: bytes.len() as u64 });
    }
    Ok(Some(bytes))
}

/// Adds the patterns of an ignore file's `bytes` exactly as the `ignore`
/// crate's own reader would (a test compares them): lines split after `\n`
/// (then a `\r` before it dropped), leading UTF-8 BOMs skipped, lines that
/// are not UTF-8 or not a valid glob skipped.
pub(crate) fn add_patterns(b: &mut GitignoreBuilder, from: &Path, bytes: &[u8]) {
    let mut bytes = bytes;
    while let Some(rest) = bytes.strip_prefix("\u{feff}".as_bytes()) {
        bytes = rest;
    }
    for line in bytes.split_inclusive(|&c| c == b'\n') {
        let line = match line.strip_suffix(b"\n") {
            Some(l) => l.strip_suffix(b"\r").unwrap_or(l),
            None => line,
        };
        if let Ok(line) = std::str::from_utf8(line) {
            let _ = b.add_line(Some(from.to_path_buf()), line);
        }
    }
}

/// The `.gitignore` files in force for one directory, innermost first.
#[derive(Debug)]
pub(crate) struct IgnoreStack {
    matcher: Gitignore,
    parent: Option<Arc<IgnoreStack>>,
}

#[derive(Debug)]
pub(crate) struct IgnoreRules {
    global: Gitignore,
    left: Budget,
}

/// What is left of [`IGNORE_WILDCARDS_MAX`] and [`IGNORE_BYTES_MAX`] for
/// one snapshot.
#[derive(Debug)]
struct Budget {
    wildcards: AtomicUsize,
    bytes: AtomicU64,
}

impl Budget {
    fn new() -> Budget {
        Budget { wildcards: AtomicUsize::new(IGNORE_WILDCARDS_MAX), bytes: AtomicU64::new(IGNORE_BYTES_MAX) }
    }

    /// Takes what `bytes` cost, or nothing and the reason.
    fn take(&self, bytes: &[u8]) -> Result<(), IgnoreFileProblem> {
        let size = bytes.len() as u64;
        self.bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| l.checked_sub(size))
            .map_err(|left| IgnoreFileProblem::TooMany { size, left })?;
        let wildcards = wildcards(bytes);
        self.wildcards.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| l.checked_sub(wildcards)).map_err(
            |left| {
                self.bytes.fetch_add(size, Ordering::Relaxed);
                IgnoreFileProblem::TooComplex { wildcards, left }
            },
        )?;
        Ok(())
    }
}

/// How many wildcards the patterns of `bytes` hold, as far as a matcher's
/// cost goes (an escaped one is counted too).
fn wildcards(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| matches!(b, b'*' | b'?' | b'[')).count()
}

/// [`read_ignore_file`], its bytes and wildcards then taken from what is
/// `left` of the snapshot's budget (or refused, saying how much).
fn read_within(
    left: &Budget,
    dir: BorrowedFd<'_>,
    name: &Path,
    follow: bool,
) -> Result<Option<Vec<u8>>, IgnoreFileProblem> {
    let Some(bytes) = read_ignore_file(dir, name, follow)? else { return Ok(None) };
    left.take(&bytes)?;
    Ok(Some(bytes))
}

impl IgnoreRules {
    /// Rules rooted at `workspace` from `files` (`.git/info/exclude`, the
    /// global excludes file), followed through symbolic links as git follows
    /// them; missing files are skipped, bad patterns are skipped as git skips
    /// them, and files that cannot be read safely are returned.
    pub fn new(workspace: &Path, files: &[&Path]) -> (IgnoreRules, Vec<BadIgnoreFile>) {
        let mut b = GitignoreBuilder::new(workspace);
        let mut bad = Vec::new();
        let left = Budget::new();
        for f in files {
            match read_within(&left, CWD, f, true) {
                Ok(Some(bytes)) => add_patterns(&mut b, f, &bytes),
                Ok(None) => {}
                Err(problem) => bad.push(BadIgnoreFile { path: f.to_path_buf(), problem }),
            }
        }
        (IgnoreRules { global: b.build().unwrap_or_else(|_| Gitignore::empty()), left }, bad)
    }

    /// The stack for the directory `dir` (open as `dir_fd`) that holds a
    /// `.gitignore`, and the file if its rules could not be read.
    /// Its bytes and wildcards count against this snapshot's
    /// [`IGNORE_BYTES_MAX`] and [`IGNORE_WILDCARDS_MAX`].
    pub fn push(
        &self,
        parent: Option<Arc<IgnoreStack>>,
        dir_fd: BorrowedFd<'_>,
        dir: &Path,
    ) -> (Option<Arc<IgnoreStack>>, Option<BadIgnoreFile>) {
        let name = Path::new(".gitignore");
        let bytes = match read_within(&self.left, dir_fd, name, false) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return (parent, None),
            Err(problem) => return (parent, Some(BadIgnoreFile { path: dir.join(name), problem })),
        };
        let mut b = GitignoreBuilder::new(dir);
        add_patterns(&mut b, &dir.join(name), &bytes);
        let matcher = b.build().unwrap_or_else(|_| Gitignore::empty());
        if matcher.is_empty() {
            return (parent, None);
        }
        (Some(Arc::new(IgnoreStack { matcher, parent })), None)
    }

    pub fn is_ignored(&self, stack: Option<&Arc<IgnoreStack>>, path: &Path, is_dir: bool) -> bool {
        let mut cur = stack;
        while let Some(s) = cur {
            match s.matcher.matched(path, is_dir) {
                Match::Ignore(_) => return true,
                Match::Whitelist(_) => return false,
                Match::None => cur = s.parent.as_ref(),
            }
        }
        matches!(self.global.matched(path, is_dir), Match::Ignore(_))
    }
}

#[cfg(test)]
#[path = "ignore_rules_tests.rs"]
mod tests;
