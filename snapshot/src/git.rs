//! How paths inside a `.git` directory behave on rollback.
//!
//! A snapshot captures all of `.git`: HEAD, refs, packed-refs, the index,
//! config and hooks change what git does, and objects are what refs point to.
//! Rolling back restores refs (so commits made in a session leave the branch)
//! but never takes away what git relies on to get them back: objects and
//! reflogs the session added stay.

use crate::path::RelPath;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GitClass {
    /// An ordinary workspace path, or git state that rolls back like one.
    Normal,
    /// `.git/objects/XX/…` and `.git/objects/pack/…`: immutable, content-addressed. Objects the session
    /// created are kept on rollback (the reflog may point at them); deleted
    /// ones are restored.
    Objects,
    /// `.git/logs/**`: reflogs. A reflog the session appended to is kept as
    /// it is (so commits made during the session can be found again); one it
    /// deleted or rewrote is restored.
    Reflog,
    /// `.git/index`: git's cache of the staging area, rewritten by every
    /// `git status`. Restored even if it changed after the session ended.
    Index,
}

/// Classifies a workspace-relative path. Pure; any `.git` directory at any
/// depth (nested repositories, submodules) counts.
pub fn git_class(path: &RelPath) -> GitClass {
    let comps: Vec<&[u8]> = path.components().collect();
    let Some(git) = comps.iter().position(|c| *c == b".git") else {
        return GitClass::Normal;
    };
    match comps.get(git + 1).copied() {
        // Loose objects and packs; not `objects/info/` (alternates, caches).
        Some(b"objects") if comps.len() > git + 2 && loose_or_pack(comps[git + 2]) => GitClass::Objects,
        Some(b"logs") if comps.len() > git + 2 => GitClass::Reflog,
        Some(b"index") if comps.len() == git + 2 => GitClass::Index,
        _ => GitClass::Normal,
    }
}

fn loose_or_pack(dir: &[u8]) -> bool {
    dir == b"pack" || (dir.len() == 2 && dir.iter().all(u8::is_ascii_hexdigit))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(p: &str) -> GitClass {
        git_class(&RelPath::from_bytes(p.as_bytes()).unwrap())
    }

    #[test]
    fn classifies_git_state() {
        assert_eq!(class("src/main.rs"), GitClass::Normal);
        assert_eq!(class(".git/HEAD"), GitClass::Normal);
        assert_eq!(class(".git/refs/heads/main"), GitClass::Normal);
        assert_eq!(class(".git/hooks/pre-commit"), GitClass::Normal);
        assert_eq!(class(".git/config"), GitClass::Normal);
        assert_eq!(class(".git/objects/ab/cdef"), GitClass::Objects);
        assert_eq!(class(".git/objects"), GitClass::Normal);
        assert_eq!(class(".git/objects/pack/pack-1.pack"), GitClass::Objects);
        assert_eq!(class(".git/objects/info/alternates"), GitClass::Normal);
        assert_eq!(class(".git/logs/HEAD"), GitClass::Reflog);
        assert_eq!(class(".git/index"), GitClass::Index);
        assert_eq!(class("sub/.git/index"), GitClass::Index);
        assert_eq!(class("docs/index"), GitClass::Normal);
        assert_eq!(class("a/git/objects/x"), GitClass::Normal);
    }
}
