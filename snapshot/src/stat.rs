//! The stat data a snapshot keeps per path, and the comparison that lets an
//! unchanged file skip being read again (as git's index and jj's working copy do).

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;

/// The fields of `lstat` that change whenever a file's content or metadata does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FileStat {
    pub dev: u64,
    pub ino: u64,
    /// Full `st_mode`: file type and permission bits.
    pub mode: u32,
    pub nlink: u64,
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

impl FileStat {
    pub fn from_metadata(m: &Metadata) -> Self {
        FileStat {
            dev: m.dev(),
            ino: m.ino(),
            mode: m.mode(),
            nlink: m.nlink(),
            size: m.size(),
            mtime_ns: m
                .mtime()
                .saturating_mul(1_000_000_000)
                .saturating_add(m.mtime_nsec()),
            ctime_ns: m
                .ctime()
                .saturating_mul(1_000_000_000)
                .saturating_add(m.ctime_nsec()),
        }
    }

    /// Permission bits (including setuid/setgid/sticky), without the file type.
    pub fn perm(&self) -> u32 {
        self.mode & 0o7777
    }

    /// Whether `now` describes the very same, untouched file: same inode, and
    /// neither content nor inode metadata changed since (ctime cannot be set
    /// by a user, so a `touch -d` that restores mtime is still caught).
    pub fn unchanged(&self, now: &FileStat) -> bool {
        self == now
    }
}
