//! When a commit carries a session's change: pure functions over versions.
//!
//! The pre-commit rule errs towards refusing: a staged path carries a
//! pending change unless its staged version is exactly the version the
//! snapshot had before the session. A file the agent wrote and the user then
//! edited still holds the agent's work, and a partial rewrite cannot be told
//! from a full one; so a user who rewrote such a file says so with
//! `ws approve PATH` (approving records the review and changes nothing on
//! disk).
//!
//! The trailer rule errs towards precision: a commit carries an approved
//! change when it stages exactly the session's version of the path, so a
//! later commit that edits the same file again is not attributed to it.

/// One version of a path: what the index holds, or what a snapshot recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Version {
    Absent,
    /// A regular file; `executable` as git sees it (the owner's x bit).
    File {
        executable: bool,
        blake3: [u8; 32],
    },
    /// A symbolic link, by the BLAKE3 of its target.
    Symlink {
        blake3: [u8; 32],
    },
    /// A directory, a submodule, something left out of the snapshot: never
    /// the same as anything, so a change involving one is always carried.
    Other,
}

impl Version {
    pub fn file(executable: bool, content: &[u8]) -> Version {
        Version::File { executable, blake3: *blake3::hash(content).as_bytes() }
    }

    pub fn symlink(target: &[u8]) -> Version {
        Version::Symlink { blake3: *blake3::hash(target).as_bytes() }
    }

    pub fn same(&self, other: &Version) -> bool {
        !matches!(self, Version::Other) && self == other
    }
}

/// Whether a staged version carries a pending change whose path had `before`.
pub fn carries_pending(staged: &Version, before: &Version) -> bool {
    !staged.same(before)
}

/// Whether a staged version carries an approved change that left `after`.
pub fn carries_approved(staged: &Version, after: &Version) -> bool {
    staged.same(after)
}

/// Whether a staged version is the agent's side of a change the reviewer
/// rolled back (`after`, when it differs from `before`): the rollback put
/// the work tree back, but a version the agent staged in the index (or a
/// `git add` run before the rollback) would still be committed.
pub fn carries_rolled_back(staged: &Version, before: &Version, after: &Version) -> bool {
    staged.same(after) && !after.same(before)
}

/// A workspace path as a path of the repository whose top is `prefix` below
/// the workspace (`b""` when the workspace is the repository): a session run
/// on a superproject changes `sub/f`, which a commit in submodule `sub`
/// stages as `f`. `None` for paths outside the repository.
pub fn repo_path<'a>(workspace_path: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    if prefix.is_empty() {
        return Some(workspace_path);
    }
    let rest = workspace_path.strip_prefix(prefix)?;
    rest.strip_prefix(b"/").filter(|r| !r.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(x: bool, b: u8) -> Version {
        Version::File { executable: x, blake3: [b; 32] }
    }

    #[test]
    fn pending_changes_are_carried_unless_the_before_version_is_staged() {
        // Staging the agent's version, an edit of it, or a rewrite: carried.
        assert!(carries_pending(&file(false, 2), &file(false, 1)));
        // Staging exactly what was there before the session: not carried.
        assert!(!carries_pending(&file(false, 1), &file(false, 1)));
        // Only the mode changed (chmod +x by the agent): carried.
        assert!(carries_pending(&file(true, 1), &file(false, 1)));
        // The agent deleted the file and the deletion is staged: carried;
        // the agent created one and the user staged its removal: not.
        assert!(carries_pending(&Version::Absent, &file(false, 1)));
        assert!(!carries_pending(&Version::Absent, &Version::Absent));
        // A file became a symlink with the same bytes: carried.
        assert!(carries_pending(&Version::Symlink { blake3: [1; 32] }, &file(false, 1)));
        // Directories and submodules never count as unchanged.
        assert!(carries_pending(&Version::Other, &Version::Other));
    }

    #[test]
    fn approved_changes_are_carried_only_as_the_session_left_them() {
        assert!(carries_approved(&file(false, 2), &file(false, 2)));
        assert!(!carries_approved(&file(false, 3), &file(false, 2)));
        assert!(!carries_approved(&file(true, 2), &file(false, 2)));
        assert!(carries_approved(&Version::Absent, &Version::Absent));
        assert!(!carries_approved(&Version::Other, &Version::Other));
    }

    #[test]
    fn rolled_back_changes_are_carried_only_in_the_agents_version() {
        let (before, agents) = (file(false, 1), file(false, 2));
        assert!(carries_rolled_back(&agents, &before, &agents));
        assert!(!carries_rolled_back(&before, &before, &agents), "the restored version");
        assert!(!carries_rolled_back(&file(false, 3), &before, &agents), "the user's own edit");
        // The agent deleted the file; the deletion is still staged.
        assert!(carries_rolled_back(&Version::Absent, &before, &Version::Absent));
        // The agent created a file that the rollback removed; it is staged.
        assert!(carries_rolled_back(&agents, &Version::Absent, &agents));
        assert!(!carries_rolled_back(&before, &before, &before), "no change at all");
        assert!(!carries_rolled_back(&Version::Other, &before, &Version::Other));
    }

    #[test]
    fn workspace_paths_map_into_nested_repositories() {
        assert_eq!(repo_path(b"src/a.rs", b""), Some(&b"src/a.rs"[..]));
        assert_eq!(repo_path(b"sub/f", b"sub"), Some(&b"f"[..]));
        assert_eq!(repo_path(b"sub/deep/f", b"sub"), Some(&b"deep/f"[..]));
        assert_eq!(repo_path(b"sub", b"sub"), None);
        assert_eq!(repo_path(b"subway/f", b"sub"), None);
        assert_eq!(repo_path(b"other/f", b"sub"), None);
    }
}
