//! What an ignored file or directory may cost before a snapshot leaves it out.
//!
//! Everything git would track is always kept. Ignored content is kept too —
//! `.env` and local configuration are small and precious — unless it is large:
//! a single ignored file over [`Budget::max_ignored_file`], or an ignored
//! directory (counted as git shows it, collapsed) holding more than
//! [`Budget::max_ignored_dir_files`] entries or [`Budget::max_ignored_dir_bytes`]
//! bytes. Such trees (`target/`, `node_modules/`) are listed as excluded so the
//! user knows a rollback will not bring them back.

/// Limits for ignored content. Pure data; [`Budget::admits`] is the policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    pub max_ignored_file: u64,
    pub max_ignored_dir_files: u64,
    pub max_ignored_dir_bytes: u64,
}

impl Default for Budget {
    fn default() -> Self {
        Budget { max_ignored_file: 8 << 20, max_ignored_dir_files: 2_000, max_ignored_dir_bytes: 64 << 20 }
    }
}

impl Budget {
    /// Whether an ignored file of `size` bytes is kept.
    pub fn admits_file(&self, size: u64) -> bool {
        size <= self.max_ignored_file
    }

    /// Whether an ignored directory holding `files` entries and `bytes` bytes is kept.
    pub fn admits_dir(&self, files: u64, bytes: u64) -> bool {
        files <= self.max_ignored_dir_files && bytes <= self.max_ignored_dir_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_ignored_content_is_kept_large_is_not() {
        let b = Budget::default();
        assert!(b.admits_file(300));
        assert!(b.admits_file(8 << 20));
        assert!(!b.admits_file((8 << 20) + 1));
        assert!(b.admits_dir(2_000, 64 << 20));
        assert!(!b.admits_dir(2_001, 10));
        assert!(!b.admits_dir(1, (64 << 20) + 1));
    }
}
