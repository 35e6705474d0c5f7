//! What a commit changes, found without starting git when the repository
//! allows: the tree git will commit against HEAD's tree ([`crate::odb`]).
//!
//! git commits the cache tree (the index's `TREE` extension): a directory
//! whose node is valid and whose tree object exists is committed as that
//! tree, whatever the index entries below it say; only the others are built
//! from the entries. An agent can write the index, so the cache tree is
//! read as git will use it: a valid node is compared with HEAD's tree for
//! that directory tree by tree (skipped when it names HEAD's own), and the
//! entries count only where git builds from them. A commit of one file in a
//! large repository still reads a handful of tree objects.
//!
//! The answer must be the one git commits. Whatever this module does not
//! fully understand — a variable of git's environment that moves the object
//! store or refs, alternates, replace refs, another object format or ref
//! storage, a symbolic ref outside `refs/heads/`, a changed submodule (git's
//! `ignore` settings decide whether it counts), a cache tree whose counts
//! disagree with the entries, an index or object it cannot read — is handed
//! to git instead ([`staged_changes`]): `git write-tree` names the tree git
//! will commit and `git diff-tree` compares it with HEAD's. What no reader
//! should touch (a FIFO or a device where a file belongs, a delta chain that
//! loops) is refused ([`GitError::Unsafe`]).

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use crate::git::{GitError, Staged, StagedPath, committed_as_staged, committed_tree_paths, staged_paths};
use crate::index::{self, CacheTree, Index, IndexEntry, Oid};
use crate::odb::{self, Kind, Odb, OdbError, TREE_MODE, TreeEntry};
use crate::safe;

/// What git's environment tells a hook about the repository it commits to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GitEnv {
    /// `GIT_DIR` (git sets it in linked worktrees); relative to the top.
    pub git_dir: Option<PathBuf>,
    /// `GIT_INDEX_FILE`: the index the commit is made from; relative to the top.
    pub index_file: Option<PathBuf>,
    /// Whether another variable moves the work tree, object store or refs
    /// (`GIT_WORK_TREE`, `GIT_COMMON_DIR`, `GIT_OBJECT_DIRECTORY`,
    /// `GIT_ALTERNATE_OBJECT_DIRECTORIES`, `GIT_NAMESPACE`,
    /// `GIT_REPLACE_REF_BASE`): then only git can tell.
    pub redirected: bool,
}

const GITLINK: u32 = 0o160000;

/// The bound on the small files of `.git` read here (HEAD, refs, `commondir`).
const MAX_SMALL: u64 = 64 << 10;
/// The bound on `config` and `packed-refs`.
const MAX_LIST: u64 = 64 << 20;

/// The paths whose version in the tree git will commit differs from
/// HEAD's (everything on an unborn branch), sorted by path: read natively
/// when the repository allows, else from git.
pub fn staged_changes(top: &Path, env: &GitEnv) -> Result<Vec<StagedPath>, GitError> {
    if !env.redirected
        && let Some(found) = native(top, env)?
    {
        return Ok(found);
    }
    let mut found = committed_tree_paths(top)?;
    found.sort_by(|a, b| a.path.cmp(&b.path));
    // A path the entries leave as HEAD has it is not listed by `git diff
    // --cached`: then it must not be in the committed tree's changes either.
    let entries = staged_paths(top, None)?;
    let by_path: HashMap<&[u8], &Staged> = entries.iter().map(|e| (&e.path[..], &e.staged)).collect();
    committed_as_staged(&found, |p| by_path.get(p).map(|&s| s.clone()))?;
    Ok(found)
}

fn refusal(path: &Path, what: &str) -> GitError {
    GitError::Unsafe(format!("{} {what}", path.display()))
}

/// A read's result: the value, `None` where git must be asked, an error
/// where nobody should read on.
fn checked<T>(r: io::Result<T>) -> Result<Option<T>, GitError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) => match safe::unsafe_file(&e) {
            Some(u) => Err(refusal(&u.path, &format!("is {}", u.what))),
            None => Ok(None),
        },
    }
}

/// A small file of `.git`: `Some(None)` when it is not there.
fn read_small(path: &Path, max: u64) -> Result<Option<Option<Vec<u8>>>, GitError> {
    match safe::read_bounded(path, max) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Some(None)),
        r => Ok(checked(r)?.map(Some)),
    }
}

macro_rules! ask_git {
    ($e:expr) => {
        match $e {
            Some(v) => v,
            None => return Ok(None),
        }
    };
}

/// The changes git will commit, `Ok(None)` where git must be asked.
pub fn native(top: &Path, env: &GitEnv) -> Result<Option<Vec<StagedPath>>, GitError> {
    let git_dir = match &env.git_dir {
        Some(d) => top.join(d),
        None => ask_git!(git_dir_of(top)?),
    };
    let common = match ask_git!(read_small(&git_dir.join("commondir"), MAX_SMALL)?) {
        Some(text) => git_dir.join(Path::new(ask_git!(std::str::from_utf8(text.trim_ascii()).ok()))),
        None => git_dir.clone(),
    };
    if !plain_repository(&common)? {
        return Ok(None);
    }
    let index_path = env.index_file.as_ref().map_or_else(|| git_dir.join("index"), |f| top.join(f));
    let index = ask_git!(ask_git!(checked(index::read(&index_path))?));
    let odb = Odb::new(&common.join("objects"));
    let mut diff = Diff { odb, trees_left: MAX_TREES, out: Vec::new(), refused: None };
    let head_tree = match head_commit(&git_dir, &common)? {
        Some(Some(commit)) => match diff.object(&commit) {
            Some(Some((Kind::Commit, data))) => Some(ask_git!(odb::commit_tree(&data))),
            _ => return diff.refused.map_or(Ok(None), Err),
        },
        Some(None) => None,
        None => return Ok(None),
    };
    let done = diff.dir(&index, b"", &index.entries, head_tree.as_ref(), index.cache_tree());
    if let Some(e) = diff.refused {
        return Err(e);
    }
    ask_git!(done);
    let mut out = diff.out;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    // Every change git will commit is one the entries stage (and so one the
    // user sees in `git diff --cached`): a cache tree naming other trees
    // was not written by git.
    committed_as_staged(&out, |p| {
        let k = index.entries.binary_search_by(|e| index.path(e).cmp(p)).ok()?;
        Some(staged_as(index.entries[k].mode, &index.entries[k].oid))
    })?;
    Ok(Some(out))
}

/// The git directory of the work tree at `top`: `.git`, or where a `.git`
/// file (a submodule's, a linked worktree's) points.
fn git_dir_of(top: &Path) -> Result<Option<PathBuf>, GitError> {
    let dot_git = top.join(".git");
    let Ok(meta) = std::fs::metadata(&dot_git) else { return Ok(None) };
    if meta.is_dir() {
        return Ok(Some(dot_git));
    }
    let Some(Some(text)) = read_small(&dot_git, MAX_SMALL)? else { return Ok(None) };
    let Some(target) = text.strip_prefix(b"gitdir: ").map(<[u8]>::trim_ascii_end) else { return Ok(None) };
    Ok(std::str::from_utf8(target).ok().map(|t| top.join(Path::new(t))))
}

/// A SHA-1 repository with files refs, no alternates and no replace refs:
/// what this module reads.
fn plain_repository(common: &Path) -> Result<bool, GitError> {
    let Some(Some(config)) = read_small(&common.join("config"), MAX_LIST)? else { return Ok(false) };
    let config = config.to_ascii_lowercase();
    let mentions = |word: &[u8]| config.windows(word.len()).any(|w| w == word);
    if mentions(b"objectformat") || mentions(b"refstorage") {
        return Ok(false);
    }
    // Objects found elsewhere: git would see trees this module cannot.
    if std::fs::symlink_metadata(common.join("objects/info/alternates")).is_ok() {
        return Ok(false);
    }
    let replace = common.join("refs/replace");
    if std::fs::read_dir(&replace).is_ok_and(|mut d| d.next().is_some()) {
        return Ok(false);
    }
    Ok(match read_small(&common.join("packed-refs"), MAX_LIST)? {
        Some(Some(packed)) => !packed.windows(14).any(|w| w == b" refs/replace/"),
        Some(None) => true,
        None => false,
    })
}

/// HEAD's commit: `Some(None)` on an unborn branch, `None` when this module
/// cannot tell.
fn head_commit(git_dir: &Path, common: &Path) -> Result<Option<Option<Oid>>, GitError> {
    let Some(Some(head)) = read_small(&git_dir.join("HEAD"), MAX_SMALL)? else { return Ok(None) };
    let head = head.trim_ascii_end();
    let Some(name) = head.strip_prefix(b"ref: ") else {
        return Ok(odb::parse_hex(head).map(Some));
    };
    let Ok(name_str) = std::str::from_utf8(name) else { return Ok(None) };
    if !name_str.starts_with("refs/heads/") || name_str.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        return Ok(None);
    }
    match safe::read_bounded(&common.join(name_str), MAX_SMALL) {
        Ok(text) => return Ok(odb::parse_hex(text.trim_ascii_end()).map(Some)),
        // Not there, or a directory (branches `x/y` beside an unborn `x`).
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) if safe::unsafe_file(&e).is_some_and(|u| u.what == "a directory") => {}
        Err(e) => {
            checked::<()>(Err(e))?;
            return Ok(None);
        }
    }
    let packed = match read_small(&common.join("packed-refs"), MAX_LIST)? {
        Some(Some(p)) => p,
        Some(None) => return Ok(Some(None)),
        None => return Ok(None),
    };
    for line in packed.split(|&b| b == b'\n') {
        if let Some((oid, refname)) = line.split_first_chunk::<40>()
            && refname.strip_prefix(b" ") == Some(name)
        {
            return Ok(odb::parse_hex(oid).map(Some));
        }
    }
    Ok(Some(None))
}

/// How many trees are read before leaving the rest to git: with a cache
/// tree a commit reads a few per changed directory; without one (an index
/// written entry by entry) every tree would be read, one delta chain at a
/// time, where git is quicker.
const MAX_TREES: usize = 256;

/// The longest directory path walked: no work tree holds a longer path
/// (PATH_MAX), git's index does (a path of 30,000 directories is 60 KB),
/// and the walk goes down one level per directory.
const MAX_PATH: usize = 4096;

struct Diff {
    odb: Odb,
    trees_left: usize,
    out: Vec<StagedPath>,
    /// Set when the store holds what no reader should go on with.
    refused: Option<GitError>,
}

impl Diff {
    /// An object: `None` to stop (and ask git, unless `refused` is set),
    /// `Some(None)` when the store does not have it.
    fn object(&mut self, oid: &Oid) -> Option<Option<(Kind, Vec<u8>)>> {
        match self.odb.read(oid) {
            Ok(found) => Some(found),
            Err(OdbError::Unread(_)) => None,
            Err(OdbError::Damaged { path, what }) => {
                self.refused = Some(refusal(&path, &format!("holds {what}")));
                None
            }
        }
    }

    /// A tree's entries: `None` to stop (and ask git, unless `refused` is
    /// set), also when the store does not have it.
    fn tree(&mut self, oid: &Oid) -> Option<Vec<TreeEntry>> {
        self.trees_left = self.trees_left.checked_sub(1)?;
        match self.object(oid)? {
            Some((Kind::Tree, data)) => odb::parse_tree(&data),
            Some(_) => {
                self.refused = Some(GitError::Unsafe(format!(
                    "the cache tree or a tree names {}, which is not a tree",
                    odb::hex(oid)
                )));
                None
            }
            None => None,
        }
    }

    /// Compares what git will commit for the directory `prefix` (empty, or
    /// ending in `/`) — the cache tree's `node` if it is valid and its tree
    /// exists, else the index `entries` below it — with HEAD's tree `head`
    /// for that directory.
    fn dir(
        &mut self,
        index: &Index,
        prefix: &[u8],
        entries: &[IndexEntry],
        head: Option<&Oid>,
        node: Option<CacheTree<'_>>,
    ) -> Option<()> {
        self.within_max_path(prefix)?;
        if let Some((tree, count)) = node.and_then(|n| n.valid()) {
            // git keeps the count exact: another one is not git's.
            if count != entries.len() {
                return None;
            }
            if Some(&tree) == head {
                return Some(());
            }
            // git uses the node only if its tree object exists, and may
            // find it where this module does not look (a multi-pack index,
            // a pack index of another version): then git is asked.
            let new = self.tree(&tree)?;
            let old = match head {
                Some(h) => self.tree(h)?,
                None => Vec::new(),
            };
            return self.trees(prefix, new, old);
        }
        let tree = match head {
            Some(h) => self.tree(h)?,
            None => Vec::new(),
        };
        let by_name: HashMap<&[u8], usize> = tree.iter().enumerate().map(|(k, t)| (&t.name[..], k)).collect();
        let mut seen = vec![false; tree.len()];
        // Looked up once per subdirectory: a linear search of the cache
        // tree's children each time costs quadratic time in a wide directory.
        let children: HashMap<&[u8], CacheTree<'_>> = node.map(|n| n.children().collect()).unwrap_or_default();
        let mut mark = |k: usize| !std::mem::replace(&mut seen[k], true);
        let mut i = 0;
        while i < entries.len() {
            let e = &entries[i];
            let path = index.path(e);
            let rest = path.get(prefix.len()..).filter(|r| !r.is_empty())?;
            let Some(slash) = rest.iter().position(|&b| b == b'/') else {
                match by_name.get(rest) {
                    Some(&k) if !mark(k) => return None,
                    Some(&k) if tree[k].mode == TREE_MODE => {
                        self.deleted_tree(path, &tree[k].oid)?;
                        self.added(index, std::slice::from_ref(e))?;
                    }
                    Some(&k) if tree[k].mode != e.mode || tree[k].oid != e.oid => {
                        if tree[k].mode == GITLINK || e.mode == GITLINK {
                            return None;
                        }
                        self.out.push(staged(index, e));
                    }
                    Some(_) => {}
                    None => self.added(index, std::slice::from_ref(e))?,
                }
                i += 1;
                continue;
            };
            let name = &rest[..slash];
            let sub = &path[..prefix.len() + slash + 1];
            let end = i + entries[i..].partition_point(|x| index.path(x).starts_with(sub));
            let child = children.get(name).copied();
            match by_name.get(name) {
                Some(&k) if !mark(k) => return None,
                Some(&k) if tree[k].mode == TREE_MODE => {
                    let oid = tree[k].oid;
                    self.dir(index, sub, &entries[i..end], Some(&oid), child)?;
                }
                Some(&k) => {
                    if tree[k].mode == GITLINK {
                        return None;
                    }
                    self.out.push(StagedPath { path: sub[..sub.len() - 1].to_vec(), staged: Staged::Deleted });
                    self.dir(index, sub, &entries[i..end], None, child)?;
                }
                None => self.dir(index, sub, &entries[i..end], None, child)?,
            }
            i = end;
        }
        self.unseen_deleted(prefix, &tree, &seen)
    }

    /// `None` (refused) when the directory `prefix` is longer than any
    /// work tree could hold.
    fn within_max_path(&mut self, prefix: &[u8]) -> Option<()> {
        if prefix.len() <= MAX_PATH {
            return Some(());
        }
        self.refused = Some(GitError::Unsafe(format!(
            "the commit would hold a path longer than {MAX_PATH} bytes, which no work tree can hold: {}…",
            String::from_utf8_lossy(&prefix[..60])
        )));
        None
    }

    /// Compares tree `new` (what git will commit for the directory
    /// `prefix`) with tree `old` (HEAD's, empty when HEAD has none).
    fn trees(&mut self, prefix: &[u8], new: Vec<TreeEntry>, old: Vec<TreeEntry>) -> Option<()> {
        self.within_max_path(prefix)?;
        let by_name: HashMap<&[u8], usize> = old.iter().enumerate().map(|(k, t)| (&t.name[..], k)).collect();
        let mut seen = vec![false; old.len()];
        let mut names: std::collections::HashSet<&[u8]> = std::collections::HashSet::new();
        for n in &new {
            // A name git never writes, or twice in one tree: which one
            // would be checked out is anyone's guess.
            if !names.insert(&n.name)
                || n.name.is_empty()
                || n.name.contains(&b'/')
                || n.name == b"."
                || n.name == b".."
            {
                self.refused = Some(GitError::Unsafe(format!(
                    "the tree git would commit for {:?} names {:?} twice or in a way git never writes",
                    String::from_utf8_lossy(prefix),
                    String::from_utf8_lossy(&n.name)
                )));
                return None;
            }
            let path = [prefix, &n.name].concat();
            let o = by_name.get(&n.name[..]).map(|&k| {
                seen[k] = true;
                &old[k]
            });
            if o.is_some_and(|o| o.mode == n.mode && o.oid == n.oid) {
                continue;
            }
            if n.mode == GITLINK || o.is_some_and(|o| o.mode == GITLINK) {
                return None;
            }
            let sub = [&path[..], b"/"].concat();
            match (n.mode == TREE_MODE, o) {
                (true, Some(o)) if o.mode == TREE_MODE => {
                    let (a, b) = (self.tree(&n.oid)?, self.tree(&o.oid)?);
                    self.trees(&sub, a, b)?;
                }
                (true, o) => {
                    if o.is_some() {
                        self.out.push(StagedPath { path, staged: Staged::Deleted });
                    }
                    let a = self.tree(&n.oid)?;
                    self.trees(&sub, a, Vec::new())?;
                }
                (false, Some(o)) if o.mode == TREE_MODE => {
                    self.deleted_tree(&path, &o.oid)?;
                    self.out.push(from_tree(path, n));
                }
                (false, _) => self.out.push(from_tree(path, n)),
            }
        }
        self.unseen_deleted(prefix, &old, &seen)
    }

    /// HEAD's entries of the directory `prefix` that nothing staged named
    /// (`seen[k]` false): deleted, with everything below them.
    fn unseen_deleted(&mut self, prefix: &[u8], head: &[TreeEntry], seen: &[bool]) -> Option<()> {
        for (t, _) in head.iter().zip(seen).filter(|(_, seen)| !**seen) {
            let path = [prefix, &t.name].concat();
            match t.mode {
                TREE_MODE => self.deleted_tree(&path, &t.oid)?,
                GITLINK => return None,
                _ => self.out.push(StagedPath { path, staged: Staged::Deleted }),
            }
        }
        Some(())
    }

    fn added(&mut self, index: &Index, entries: &[IndexEntry]) -> Option<()> {
        for e in entries {
            if e.mode == GITLINK {
                return None;
            }
            self.out.push(staged(index, e));
        }
        Some(())
    }

    /// Every path below HEAD's tree `oid` at `path`, as deleted.
    fn deleted_tree(&mut self, path: &[u8], oid: &Oid) -> Option<()> {
        self.within_max_path(path)?;
        for t in self.tree(oid)? {
            let sub = [path, b"/", &t.name].concat();
            match t.mode {
                TREE_MODE => self.deleted_tree(&sub, &t.oid)?,
                GITLINK => return None,
                _ => self.out.push(StagedPath { path: sub, staged: Staged::Deleted }),
            }
        }
        Some(())
    }
}

fn staged_as(mode: u32, oid: &Oid) -> Staged {
    let blob = odb::hex(oid);
    match mode {
        0o100755 => Staged::File { executable: true, blob },
        0o120000 => Staged::Symlink { blob },
        GITLINK => Staged::Submodule,
        _ => Staged::File { executable: false, blob },
    }
}

fn staged(index: &Index, e: &IndexEntry) -> StagedPath {
    StagedPath { path: index.path(e).to_vec(), staged: staged_as(e.mode, &e.oid) }
}

fn from_tree(path: Vec<u8>, t: &TreeEntry) -> StagedPath {
    StagedPath { path, staged: staged_as(t.mode, &t.oid) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Repo;

    /// What `git diff --cached` says in `dir`, with `vars` set, sorted.
    fn git_says(repo: &Repo, dir: &Path, vars: &[(&str, &Path)]) -> Vec<StagedPath> {
        let args = ["diff", "--cached", "--raw", "-z", "--no-renames", "--no-abbrev", "--no-ext-diff", "--"];
        let mut c = repo.command(dir, &args);
        c.envs(vars.iter().copied());
        let out = c.output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let mut found = crate::git::parse_raw(&out.stdout).unwrap();
        found.sort_by(|a, b| a.path.cmp(&b.path));
        found
    }

    /// The native answer, which must exist and agree with git's.
    fn agrees(repo: &Repo, what: &str) -> Vec<StagedPath> {
        let top = repo.path();
        let got = native(&top, &GitEnv::default()).unwrap().unwrap_or_else(|| panic!("{what}: left to git"));
        assert_eq!(got, git_says(repo, &top, &[]), "{what}");
        got
    }

    fn paths(found: &[StagedPath]) -> Vec<String> {
        found.iter().map(|s| String::from_utf8_lossy(&s.path).into_owned()).collect()
    }

    fn populate(repo: &Repo) {
        for d in 0..6 {
            for s in 0..4 {
                for f in 0..3 {
                    repo.write(&format!("d{d}/s{s}/f{f}.txt"), &format!("{d} {s} {f}\n{}", "text\n".repeat(50)));
                }
            }
        }
        repo.write("top.txt", "top\n");
        repo.write("a.txt", "a\n");
        repo.write("a/x", "x\n");
        repo.write("a0", "a0\n");
        repo.write("run.sh", "#!/bin/sh\n");
        repo.symlink("link", "top.txt");
        repo.write("gone/deep/file", "gone\n");
        repo.write("becomes-file/inner", "inner\n");
        repo.write("becomes-dir", "plain\n");
    }

    fn every_kind_of_change(repo: &Repo) {
        repo.write("d3/s2/f1.txt", "modified\n");
        repo.write("d5/new/n.txt", "new in a new directory\n");
        repo.write("new-top", "new\n");
        repo.chmod_x("run.sh");
        std::fs::remove_file(repo.path().join("link")).unwrap();
        repo.symlink("link", "a.txt");
        std::fs::remove_file(repo.path().join("d0/s0/f0.txt")).unwrap();
        std::fs::remove_dir_all(repo.path().join("gone")).unwrap();
        std::fs::remove_dir_all(repo.path().join("becomes-file")).unwrap();
        repo.write("becomes-file", "now a file\n");
        std::fs::remove_file(repo.path().join("becomes-dir")).unwrap();
        repo.write("becomes-dir/inside", "now a directory\n");
        repo.git(&["add", "-A"]);
    }

    #[test]
    fn every_kind_of_change_agrees_with_git_loose_packed_and_in_index_v4() {
        let repo = Repo::new();
        populate(&repo);
        repo.git(&["add", "-A"]);
        let unborn = agrees(&repo, "unborn branch: everything is added");
        assert!(unborn.len() > 70);
        repo.git(&["commit", "-q", "-m", "one"]);
        assert!(agrees(&repo, "nothing staged").is_empty());

        every_kind_of_change(&repo);
        let got = agrees(&repo, "loose objects");
        let want = [
            "a.txt", // untouched: not listed
            "becomes-dir",
            "becomes-dir/inside",
            "becomes-file",
            "becomes-file/inner",
            "d0/s0/f0.txt",
            "d3/s2/f1.txt",
            "d5/new/n.txt",
            "gone/deep/file",
            "link",
            "new-top",
            "run.sh",
        ];
        assert_eq!(paths(&got), want[1..]);
        assert_eq!(got[0].staged, Staged::Deleted, "becomes-dir was a file");
        assert!(matches!(got[10].staged, Staged::File { executable: true, .. }), "run.sh is executable now");
        assert!(matches!(got[8].staged, Staged::Symlink { .. }));

        repo.git(&["gc", "-q", "--aggressive"]);
        agrees(&repo, "packed objects");
        repo.git(&["update-index", "--index-version", "4"]);
        agrees(&repo, "index version 4");
        repo.git(&["pack-refs", "--all"]);
        assert!(!repo.path().join(".git/refs/heads/main").exists());
        agrees(&repo, "packed refs");
        let head = repo.git(&["rev-parse", "HEAD"]);
        repo.git(&["checkout", "-q", "--detach"]);
        assert_eq!(std::fs::read_to_string(repo.path().join(".git/HEAD")).unwrap(), head);
        agrees(&repo, "detached HEAD");
    }

    #[test]
    fn cache_trees_in_every_state_agree() {
        let repo = Repo::new();
        populate(&repo);
        repo.git(&["add", "-A"]);
        repo.git(&["commit", "-q", "-m", "one"]);
        // A fully valid cache tree, then one file changed below it.
        repo.git(&["read-tree", "HEAD"]);
        repo.git(&["write-tree"]);
        repo.write("d2/s1/f2.txt", "changed\n");
        repo.git(&["add", "d2/s1/f2.txt"]);
        assert_eq!(paths(&agrees(&repo, "one change")), ["d2/s1/f2.txt"]);
        // The same change with no cache tree at all (an index git rebuilt
        // entry by entry): every tree is read.
        let listing = repo.git_bytes(&["ls-files", "-s", "-z"]);
        std::fs::remove_file(repo.index()).unwrap();
        repo.git_stdin(&["update-index", "-z", "--index-info"], &listing);
        let index = index::read(&repo.index()).unwrap().unwrap();
        assert!(index.cache_tree().is_none_or(|t| t.valid().is_none()), "no valid cache tree");
        assert_eq!(paths(&agrees(&repo, "no cache tree")), ["d2/s1/f2.txt"]);
        // A change staged and then undone: git may keep the tree invalid.
        repo.git(&["reset", "-q"]);
        repo.write("d2/s1/f2.txt", &format!("2 1 2\n{}", "text\n".repeat(50)));
        repo.git(&["add", "-A"]);
        assert!(agrees(&repo, "staged and restored").is_empty());
    }

    /// A path of 30,000 directories (git's index takes it; no work tree
    /// can hold it), staged where HEAD has none of them: read on a thread
    /// with the 8 MiB stack a hook's main thread has, the hook refuses it
    /// with a message once it is longer than PATH_MAX, rather than walking
    /// down to its end, one stack frame per level, until the stack overflows.
    #[test]
    fn a_path_longer_than_any_work_tree_holds_is_refused_not_a_stack_overflow() {
        let repo = Repo::new();
        repo.write("a.txt", "a\n");
        repo.git(&["add", "-A"]);
        repo.git(&["commit", "-q", "-m", "one"]);
        let blob = repo.git_stdin(&["hash-object", "-w", "--stdin"], b"x\n");
        let stage = |levels: usize| {
            let deep = format!("100644 {}\t{}f\n", blob.trim(), "b/".repeat(levels));
            repo.git(&["rm", "-q", "--cached", "-r", "--ignore-unmatch", "b"]);
            repo.git_stdin(&["update-index", "--index-info"], deep.as_bytes());
            let top = repo.path();
            std::thread::Builder::new()
                .stack_size(8 << 20)
                .spawn(move || {
                    native(&top, &GitEnv::default())
                        .map(|o| o.map(|o| o.into_iter().map(|p| p.path.len()).collect::<Vec<_>>()))
                        .map_err(|e| e.to_string())
                })
                .unwrap()
                .join()
                .unwrap()
        };
        // Positive control: 2,000 levels (4,001 bytes) are read natively.
        assert_eq!(stage(2_000), Ok(Some(vec![4_001])));
        let err = stage(30_000).expect_err("refused");
        assert!(err.contains("longer than 4096 bytes") && err.contains("b/b/b/"), "{err}");
    }

    #[test]
    fn without_a_cache_tree_a_large_tree_is_left_to_git() {
        let repo = Repo::new();
        for d in 0..MAX_TREES {
            repo.write(&format!("many/{d}/f"), "f\n");
        }
        repo.git(&["add", "-A"]);
        repo.git(&["commit", "-q", "-m", "many trees"]);
        // `git add -A` re-adds racily clean files, invalidating their
        // directories: a fresh cache tree, then one path added.
        repo.git(&["read-tree", "HEAD"]);
        repo.write("many/0/f", "changed\n");
        repo.git(&["add", "many/0/f"]);
        agrees(&repo, "many trees, with a cache tree");
        let listing = repo.git_bytes(&["ls-files", "-s", "-z"]);
        std::fs::remove_file(repo.index()).unwrap();
        repo.git_stdin(&["update-index", "-z", "--index-info"], &listing);
        assert_eq!(native(&repo.path(), &GitEnv::default()).unwrap(), None, "over the budget");
        let via_git = staged_changes(&repo.path(), &GitEnv::default()).unwrap();
        assert_eq!(via_git, git_says(&repo, &repo.path(), &[]));
        assert_eq!(paths(&via_git), ["many/0/f"]);
    }

    #[test]
    fn a_temporary_index_and_a_linked_worktree_are_read_where_git_says() {
        let repo = Repo::new();
        populate(&repo);
        repo.git(&["add", "-A"]);
        repo.git(&["commit", "-q", "-m", "one"]);
        // `git commit PATH` commits from a temporary index, named relative to the top.
        repo.git(&["read-tree", "--index-output=.git/tmp-index", "HEAD"]);
        repo.write("d1/s1/f1.txt", "only in the temporary index\n");
        let tmp = Path::new(".git/tmp-index");
        let mut c = repo.command(&repo.path(), &["add", "d1/s1/f1.txt"]);
        assert!(c.env("GIT_INDEX_FILE", tmp).status().unwrap().success());
        assert!(agrees(&repo, "the real index has nothing staged").is_empty());
        let env = GitEnv { index_file: Some(tmp.to_path_buf()), ..GitEnv::default() };
        let got = native(&repo.path(), &env).unwrap().unwrap();
        assert_eq!(got, git_says(&repo, &repo.path(), &[("GIT_INDEX_FILE", tmp)]));
        assert_eq!(paths(&got), ["d1/s1/f1.txt"]);

        let wt = repo.path().with_file_name("wt");
        repo.git(&["worktree", "add", "-q", "-b", "side", wt.to_str().unwrap()]);
        std::fs::write(wt.join("top.txt"), "changed in the worktree\n").unwrap();
        repo.git_in(&wt, &["add", "top.txt"]);
        let by_file = native(&wt, &GitEnv::default()).unwrap().unwrap();
        assert_eq!(by_file, git_says(&repo, &wt, &[]));
        assert_eq!(paths(&by_file), ["top.txt"]);
        let git_dir = repo.path().join(".git/worktrees/wt");
        let env = GitEnv { git_dir: Some(git_dir.clone()), ..GitEnv::default() };
        assert_eq!(native(&wt, &env).unwrap().unwrap(), by_file, "GIT_DIR as git sets it for hooks");
        assert!(agrees(&repo, "the main worktree has nothing staged").is_empty());
    }

    #[test]
    fn submodules_are_read_inside_and_their_changes_are_left_to_git() {
        let sub = Repo::new();
        sub.write("s.txt", "s\n");
        sub.git(&["add", "-A"]);
        sub.git(&["commit", "-q", "-m", "sub"]);
        let repo = Repo::new();
        populate(&repo);
        let url = sub.path();
        repo.git(&["-c", "protocol.file.allow=always", "submodule", "add", "-q", url.to_str().unwrap(), "sub"]);
        repo.git(&["commit", "-q", "-m", "with a submodule"]);

        repo.write("top.txt", "changed\n");
        repo.git(&["add", "top.txt"]);
        assert_eq!(paths(&agrees(&repo, "an unchanged gitlink")), ["top.txt"]);

        let inside = repo.path().join("sub");
        std::fs::write(inside.join("s.txt"), "changed inside\n").unwrap();
        repo.git_in(&inside, &["add", "s.txt"]);
        let got = native(&inside, &GitEnv::default()).unwrap().expect("inside the submodule");
        assert_eq!(got, git_says(&repo, &inside, &[]));
        assert_eq!(paths(&got), ["s.txt"]);

        repo.git_in(&inside, &["commit", "-q", "-m", "moved"]);
        repo.git(&["add", "sub"]);
        assert_eq!(native(&repo.path(), &GitEnv::default()).unwrap(), None, "a changed gitlink");
        let via_git = staged_changes(&repo.path(), &GitEnv::default());
        assert!(via_git.is_ok());
    }

    #[test]
    fn what_only_git_can_tell_is_left_to_it() {
        let repo = Repo::new();
        populate(&repo);
        repo.git(&["add", "-A"]);
        repo.git(&["commit", "-q", "-m", "one"]);
        repo.write("top.txt", "changed\n");
        repo.git(&["add", "top.txt"]);
        agrees(&repo, "positive control");

        let redirected = GitEnv { redirected: true, ..GitEnv::default() };
        assert!(staged_changes(&repo.path(), &redirected).is_ok(), "git answers");

        let head = repo.git(&["rev-parse", "HEAD"]);
        repo.git(&["replace", "-f", head.trim(), head.trim()]);
        assert!(repo.path().join(".git/refs/replace").exists());
        assert_eq!(native(&repo.path(), &GitEnv::default()).unwrap(), None, "replace refs");
        repo.git(&["replace", "-d", head.trim()]);
        agrees(&repo, "replace refs gone");

        repo.git(&["symbolic-ref", "HEAD", "refs/remotes/elsewhere"]);
        assert_eq!(native(&repo.path(), &GitEnv::default()).unwrap(), None, "HEAD outside refs/heads");
        repo.git(&["symbolic-ref", "HEAD", "refs/heads/main"]);

        repo.git(&["update-index", "--split-index"]);
        assert_eq!(native(&repo.path(), &GitEnv::default()).unwrap(), None, "split index");
        repo.git(&["update-index", "--no-split-index"]);

        repo.git(&["config", "extensions.objectFormat", "sha1"]);
        assert_eq!(native(&repo.path(), &GitEnv::default()).unwrap(), None, "an object format named");
    }
}
