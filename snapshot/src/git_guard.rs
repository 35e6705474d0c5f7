//! Git's control surface: the files inside a git directory that make git run
//! a command or look for its repository somewhere else. A session may commit,
//! branch and check out (HEAD, refs, objects, the index and logs change), but
//! what it leaves on this surface would act on the host the next time the
//! reviewer runs git there (`core.fsmonitor` in a config git was sent to by
//! `commondir`, a planted hook), so it is undone when the session ends.
//!
//! The surface of a git directory (from gitrepository-layout(5) and git's
//! `setup.c`), relative to it:
//!
//! | path | why |
//! |---|---|
//! | `config`, `config.worktree` | `core.fsmonitor`, `core.hooksPath`, `core.sshCommand`, filters, aliases… run commands |
//! | `hooks/` | run by git itself |
//! | `commondir` | git takes config, hooks, objects and refs from the directory it names |
//! | `gitdir` | (a linked worktree's) where its `.git` file is |
//! | `worktrees/` | linked worktrees: their `commondir`, `gitdir`, `config.worktree` |
//! | `modules/*/…` | a submodule's git directory: the same surface again |
//! | `info/` | `attributes`, `exclude`, `grafts`, `sparse-checkout`: what git shows and commits |
//! | `objects/info/alternates`, `objects/info/http-alternates` | objects read from another directory |
//! | `refs/replace/` | objects shown in place of others (`git log`, `git show` lie) |
//! | `branches/`, `remotes/` | legacy remote shorthands: where `git push NAME` sends |
//! | a `.git` that is a file (or symlink) | a gitfile: `gitdir: /elsewhere` |
//!
//! and a git directory that is no longer the one the session started with
//! (renamed away, removed, replaced by a new `git init`) or that stopped
//! being one by git's own test (`HEAD`, `objects/`, `refs/` gone: git would
//! then look further up for a repository) is restored as a whole.
//! `HEAD`, `index`, `refs/heads|tags|remotes`, `packed-refs`, `logs/`,
//! `objects/` and `shallow` are the session's to change.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::changes::{Change, ChangeKind, ChangeState};
use crate::error::ReviewError;
use crate::git::{GitClass, git_class};
use crate::manifest::ManifestId;
use crate::path::RelPath;
use crate::restore::{RollbackOptions, rollback};
use crate::session::Session;
use crate::store::Store;

/// What a session did to a path on git's control surface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tampering {
    Created,
    Modified,
    Deleted,
    /// The git directory itself was renamed away, removed or replaced.
    Replaced,
}

impl Tampering {
    pub fn name(self) -> &'static str {
        match self {
            Tampering::Created => "created",
            Tampering::Modified => "modified",
            Tampering::Deleted => "deleted",
            Tampering::Replaced => "replaced",
        }
    }
}

/// One thing to undo: `path` (with everything under it) goes back to the
/// before-snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub path: RelPath,
    pub what: Tampering,
}

/// Which directory a git directory is: compared at the session's end with
/// what it was at its start. The birth time tells a new directory that got a
/// freed inode number back (`rm -rf .git && git init`) from the old one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    pub dev: u64,
    pub ino: u64,
    pub dir: bool,
    pub born_ns: Option<i128>,
}

impl Identity {
    /// `path` as it is now (not following a symlink); `None` if absent.
    pub fn of(path: &Path) -> Option<Identity> {
        let m = std::fs::symlink_metadata(path).ok()?;
        let born_ns =
            m.created().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_nanos() as i128);
        Some(Identity { dev: m.dev(), ino: m.ino(), dir: m.is_dir(), born_ns })
    }
}

/// Whether the git directory whose identity was `before` is another one (or
/// none) `now`. Pure.
pub fn replaced(before: Option<Identity>, now: Option<Identity>) -> bool {
    match (before, now) {
        (Some(b), Some(n)) => b != n,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// The components of `path` after its first `.git` component, or `None`
/// when it has none. A `.git` at any depth counts: nested repositories and
/// submodule checkouts are git directories too.
fn inside_git(path: &RelPath) -> Option<(RelPath, Vec<&[u8]>)> {
    let comps: Vec<&[u8]> = path.components().collect();
    let at = comps.iter().position(|c| *c == b".git")?;
    let git = RelPath::from_bytes(&comps[..=at].join(&b'/')).unwrap_or_default();
    Some((git, comps[at + 1..].to_vec()))
}

/// Whether `rest`, a path relative to a git directory, is on its control
/// surface. Pure.
pub fn on_surface(rest: &[&[u8]]) -> bool {
    match rest {
        [] => false,
        [b"config" | b"config.worktree" | b"commondir" | b"gitdir", ..] => true,
        [b"hooks" | b"info" | b"worktrees" | b"branches" | b"remotes", ..] => true,
        [b"objects", b"info", b"alternates" | b"http-alternates", ..] => true,
        [b"refs", b"replace", ..] => true,
        // A submodule's git directory, `modules/NAME` (a name may hold
        // slashes, and modules nest): any tail that is on the surface.
        [b"modules", _, tail @ ..] => (0..tail.len()).any(|i| on_surface(&tail[i..])),
        _ => false,
    }
}

/// Whether removing `rest` (relative to a git directory) makes git stop
/// taking the directory for a repository (`is_git_directory` in `setup.c`).
fn essential(rest: &[&[u8]]) -> bool {
    matches!(rest, [b"HEAD" | b"objects" | b"refs"])
}

/// What to undo among `changes`, given the git directories found
/// `replaced`. Pure. Each finding names a path to roll back with everything
/// under it; a replaced git directory is one finding, not one per file.
pub fn findings(changes: &[Change], replaced: &[RelPath]) -> Vec<Finding> {
    let mut whole: Vec<RelPath> = replaced.to_vec();
    for c in changes.iter().filter(|c| c.state == ChangeState::Pending) {
        if let Some((git, rest)) = inside_git(&c.path)
            && c.kind() == ChangeKind::Removed
            && essential(&rest)
            && !whole.contains(&git)
        {
            whole.push(git);
        }
    }
    let mut out: Vec<Finding> = whole.iter().map(|g| Finding { path: g.clone(), what: Tampering::Replaced }).collect();
    for c in changes.iter().filter(|c| c.state == ChangeState::Pending) {
        let Some((_, rest)) = inside_git(&c.path) else { continue };
        if whole.iter().any(|w| c.path.starts_with(w)) {
            continue;
        }
        let not_dir = |e: &Option<crate::Entry>| e.as_ref().is_some_and(|e| !e.is_dir());
        // The `.git` entry itself: a gitfile or symlink made, changed or
        // put in place of the directory.
        let gitfile = rest.is_empty() && (not_dir(&c.before) || not_dir(&c.after));
        if !(gitfile || on_surface(&rest)) {
            continue;
        }
        // Below a finding already made (its directory was created or
        // replaced as a whole), it is undone with it.
        if out.iter().any(|f| c.path.starts_with(&f.path)) {
            continue;
        }
        let what = match c.kind() {
            ChangeKind::Added => Tampering::Created,
            ChangeKind::Modified if gitfile && c.before.as_ref().is_some_and(crate::Entry::is_dir) => {
                Tampering::Replaced
            }
            ChangeKind::Modified => Tampering::Modified,
            ChangeKind::Removed => Tampering::Deleted,
        };
        out.push(Finding { path: c.path.clone(), what });
    }
    out
}

/// A finding, and whether the workspace is back as the before-snapshot
/// had it there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Undone {
    pub finding: Finding,
    pub restored: bool,
}

/// At a session's end, after its after-snapshot and change set: finds what
/// it did to git's control surface and rolls that back (forced: nothing of
/// the session may stay there), marking those changes rolled back. `start`
/// is the identity `workspace/.git` had when the session started.
pub fn undo(
    store: &Store,
    workspace: &Path,
    session: &mut Session,
    changes: &mut [Change],
    start: Option<Identity>,
) -> Result<Vec<Undone>, ReviewError> {
    let top = RelPath::from_bytes(b".git").unwrap_or_default();
    let mut whole = Vec::new();
    if replaced(start, Identity::of(&workspace.join(".git"))) {
        whole.push(top);
    }
    let found = findings(changes, &whole);
    if found.is_empty() {
        return Ok(Vec::new());
    }
    // A replaced directory whose content came back identical (`cp -a`) has
    // no change left to roll back; rollback refuses a path with none.
    let paths: Vec<RelPath> = found
        .iter()
        .filter(|f| changes.iter().any(|c| c.state == ChangeState::Pending && c.path.starts_with(&f.path)))
        .map(|f| f.path.clone())
        .collect();
    let mut failed: Vec<RelPath> = Vec::new();
    if !paths.is_empty() {
        let linked = store.linked(&ManifestId(session.before.clone()))?;
        let opts = RollbackOptions { force: true, ..RollbackOptions::default() };
        let out = rollback(store, workspace, session, changes, &linked, &paths, &opts)?;
        // Objects and reflogs the session added are kept on purpose (and so
        // are the directories holding them): they redirect nothing.
        let matters = |p: &RelPath| !matches!(git_class(p), GitClass::Objects | GitClass::Reflog);
        failed.extend(out.conflicts.into_iter().map(|(p, _)| p).filter(|p| matters(p)));
        failed.extend(out.unrestorable);
    }
    Ok(found
        .into_iter()
        .map(|finding| {
            // What the session created must be gone, whatever rollback
            // kept on purpose elsewhere.
            let lingers = finding.what == Tampering::Created
                && std::fs::symlink_metadata(finding.path.to_path(workspace)).is_ok();
            let restored = !lingers && !failed.iter().any(|p| p.starts_with(&finding.path));
            Undone { finding, restored }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Entry, EntryKind};
    use crate::stat::FileStat;
    use crate::store::ObjectId;

    fn p(s: &str) -> RelPath {
        RelPath::from_bytes(s.as_bytes()).unwrap()
    }

    fn surface(s: &str) -> bool {
        let path = p(s);
        let (_, rest) = inside_git(&path).unwrap();
        on_surface(&rest)
    }

    fn file(path: &str) -> Entry {
        Entry {
            path: p(path),
            kind: EntryKind::File { object: ObjectId::from_bytes([1; 16]), hash: None },
            stat: FileStat::default(),
            racy: false,
        }
    }

    fn dir(path: &str) -> Entry {
        Entry { path: p(path), kind: EntryKind::Dir, stat: FileStat::default(), racy: false }
    }

    fn change(path: &str, before: Option<Entry>, after: Option<Entry>) -> Change {
        Change { path: p(path), before, after, state: ChangeState::Pending, rename: None }
    }

    #[test]
    fn the_surface_is_what_redirects_git_or_runs_code() {
        for s in [
            ".git/config",
            ".git/config.worktree",
            ".git/commondir",
            ".git/gitdir",
            ".git/hooks",
            ".git/hooks/pre-commit",
            ".git/info/attributes",
            ".git/info/exclude",
            ".git/info/grafts",
            ".git/objects/info/alternates",
            ".git/objects/info/http-alternates",
            ".git/worktrees/w/commondir",
            ".git/worktrees/w/HEAD",
            ".git/refs/replace/0123",
            ".git/branches/origin",
            ".git/remotes/origin",
            ".git/modules/sub/config",
            ".git/modules/a/b/hooks/post-checkout",
            ".git/modules/a/modules/b/commondir",
            "vendor/lib/.git/config",
        ] {
            assert!(surface(s), "{s} must be on the surface");
        }
        for s in [
            ".git/HEAD",
            ".git/index",
            ".git/ORIG_HEAD",
            ".git/COMMIT_EDITMSG",
            ".git/packed-refs",
            ".git/shallow",
            ".git/refs/heads/main",
            ".git/refs/tags/v1",
            ".git/logs/HEAD",
            ".git/objects/ab/cdef",
            ".git/objects/pack/pack-1.pack",
            ".git/objects/info/commit-graph",
            ".git/objects/info/packs",
            ".git/modules/sub/HEAD",
            ".git/modules/sub/objects/ab/cd",
            ".git/description",
        ] {
            assert!(!surface(s), "{s} is the session's to change");
        }
        assert!(inside_git(&p("src/config")).is_none());
        assert!(inside_git(&p(".github/hooks/x")).is_none());
        assert!(inside_git(&p(".git-old/config")).is_none());
    }

    #[test]
    fn a_commit_is_left_alone() {
        let changes = vec![
            change(".git/index", Some(file(".git/index")), Some(file(".git/index"))),
            change(".git/refs/heads/main", None, Some(file(".git/refs/heads/main"))),
            change(".git/objects/ab", None, Some(dir(".git/objects/ab"))),
            change(".git/objects/ab/cd", None, Some(file(".git/objects/ab/cd"))),
            change(".git/logs/HEAD", None, Some(file(".git/logs/HEAD"))),
            change(".git/HEAD", Some(file(".git/HEAD")), Some(file(".git/HEAD"))),
            change("src/main.rs", Some(file("src/main.rs")), Some(file("src/main.rs"))),
        ];
        assert_eq!(findings(&changes, &[]), vec![]);
    }

    #[test]
    fn control_files_are_found_by_what_was_done() {
        let changes = vec![
            change(".git/commondir", None, Some(file(".git/commondir"))),
            change(".git/config", Some(file(".git/config")), Some(file(".git/config"))),
            change(".git/hooks/pre-commit", Some(file(".git/hooks/pre-commit")), None),
            change(".git/info/x", None, Some(dir(".git/info/x"))),
            change(".git/info/x/y", None, Some(file(".git/info/x/y"))),
        ];
        let got = findings(&changes, &[]);
        let want = [
            (".git/commondir", Tampering::Created),
            (".git/config", Tampering::Modified),
            (".git/hooks/pre-commit", Tampering::Deleted),
            (".git/info/x", Tampering::Created),
        ];
        assert_eq!(got, want.map(|(s, what)| Finding { path: p(s), what }).to_vec());
    }

    #[test]
    fn a_gitfile_in_place_of_the_directory_restores_it_whole() {
        let changes = vec![
            change(".git", Some(dir(".git")), Some(file(".git"))),
            change(".git/HEAD", Some(file(".git/HEAD")), None),
            change(".git/config", Some(file(".git/config")), None),
            change("sub/.git", None, Some(file("sub/.git"))),
        ];
        let got = findings(&changes, &[]);
        assert_eq!(
            got,
            vec![
                Finding { path: p(".git"), what: Tampering::Replaced },
                Finding { path: p("sub/.git"), what: Tampering::Created },
            ]
        );
    }

    #[test]
    fn a_replaced_or_broken_git_directory_is_one_finding() {
        let changes = vec![
            change(".git/config", Some(file(".git/config")), Some(file(".git/config"))),
            change(".git/objects/ab/cd", Some(file(".git/objects/ab/cd")), None),
            change("sub/.git/HEAD", Some(file("sub/.git/HEAD")), None),
            change("sub/.git/refs/heads/main", Some(file("sub/.git/refs/heads/main")), None),
        ];
        let got = findings(&changes, &[p(".git")]);
        assert_eq!(
            got,
            vec![
                Finding { path: p(".git"), what: Tampering::Replaced },
                Finding { path: p("sub/.git"), what: Tampering::Replaced },
            ]
        );
    }

    #[test]
    fn a_new_repository_keeps_all_but_its_control_files() {
        let changes = vec![
            change("new/.git", None, Some(dir("new/.git"))),
            change("new/.git/HEAD", None, Some(file("new/.git/HEAD"))),
            change("new/.git/config", None, Some(file("new/.git/config"))),
        ];
        assert_eq!(findings(&changes, &[]), vec![Finding { path: p("new/.git/config"), what: Tampering::Created }]);
    }

    #[test]
    fn identity_changes_are_replacements() {
        let id = |ino, born| Identity { dev: 1, ino, dir: true, born_ns: Some(born) };
        assert!(!replaced(Some(id(5, 10)), Some(id(5, 10))));
        assert!(replaced(Some(id(5, 10)), Some(id(6, 10))), "renamed away, another directory in its place");
        assert!(replaced(Some(id(5, 10)), Some(id(5, 11))), "the inode number reused by a new directory");
        assert!(replaced(Some(id(5, 10)), Some(Identity { dir: false, ..id(5, 10) })));
        assert!(replaced(Some(id(5, 10)), None));
        assert!(!replaced(None, Some(id(5, 10))), "a new .git is judged file by file");
    }
}
