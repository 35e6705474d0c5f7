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
            mtime_ns: m.mtime().saturating_mul(1_000_000_000).saturating_add(m.mtime_nsec()),
            ctime_ns: m.ctime().saturating_mul(1_000_000_000).saturating_add(m.ctime_nsec()),
        }
    }

    /// From a raw `stat`, as the walk reads it relative to a directory descriptor.
    #[allow(clippy::unnecessary_cast)] // field widths differ between architectures
    pub fn from_stat(st: &rustix::fs::Stat) -> Self {
        FileStat {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            mode: st.st_mode as u32,
            nlink: st.st_nlink as u64,
            size: st.st_size as u64,
            mtime_ns: (st.st_mtime as i64).saturating_mul(1_000_000_000).saturating_add(st.st_mtime_nsec as i64),
            ctime_ns: (st.st_ctime as i64).saturating_mul(1_000_000_000).saturating_add(st.st_ctime_nsec as i64),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The walk reads stat data with `fstatat`, the rest of the crate with
    /// std's `statx`; both must describe a file identically.
    #[test]
    fn statat_and_std_metadata_agree() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, "x").unwrap();
        let a = FileStat::from_metadata(&std::fs::symlink_metadata(&p).unwrap());
        let b = FileStat::from_stat(
            &rustix::fs::statat(rustix::fs::CWD, &p, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).unwrap(),
        );
        assert_eq!(a, b);
    }
}
