//! Where a workspace may have changed since a snapshot, as a complete record
//! of its writes names it: what lets a snapshot look only there
//! ([`crate::SnapshotOptions::scope`]) instead of walking the whole tree.
//!
//! The walk still starts at the root and lists every directory on the way
//! to a changed path (so a name that came or went is seen, with the ignore
//! rules of every directory above it applied as a full walk applies them),
//! and walks whole every subtree that arrived or whose rules changed; any
//! other directory's entries are the base snapshot's.

use std::collections::BTreeSet;

use crate::manifest::Manifest;
use crate::path::RelPath;

/// A snapshot that looks only where [`ChangedPaths`] says, taking every other
/// entry from `base` (the snapshot the changes are relative to).
#[derive(Clone, Copy, Debug)]
pub struct Scope<'a> {
    pub base: &'a Manifest,
    pub changed: &'a ChangedPaths,
}

/// Paths that may differ from the base snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChangedPaths {
    /// Looked at again: their own entries, and their parents' listings.
    paths: BTreeSet<Vec<u8>>,
    /// Walked entirely (a directory made or moved here, one whose
    /// `.gitignore` changed).
    whole: BTreeSet<Vec<u8>>,
}

/// The replacement character a lossy conversion to UTF-8 leaves: a path
/// holding it may not be the name on disk.
const LOSSY: &[u8] = "\u{FFFD}".as_bytes();

impl ChangedPaths {
    pub fn new() -> ChangedPaths {
        ChangedPaths::default()
    }

    /// A path whose entry may have changed (made, written, removed, renamed
    /// from or to, its metadata changed).
    pub fn add(&mut self, path: &[u8]) {
        match exact(path) {
            Some(p) if p.file_name() == b".gitignore" => {
                // Its rules decide what is kept below its directory.
                self.add_whole(p.parent().unwrap_or_default().as_bytes());
            }
            Some(p) => {
                self.paths.insert(p.as_bytes().to_vec());
            }
            None => self.add_whole(&usable_prefix(path)),
        }
    }

    /// A path whose whole subtree may have changed.
    pub fn add_whole(&mut self, path: &[u8]) {
        let p = match exact(path) {
            Some(p) => p.as_bytes().to_vec(),
            None => usable_prefix(path),
        };
        self.paths.insert(p.clone());
        self.whole.insert(p);
    }

    /// How many paths (and subtrees) are looked at.
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// Whether `path` or anything below it is named.
    pub fn touches(&self, path: &[u8]) -> bool {
        self.below(path) || self.paths.contains(path)
    }

    /// How the walk treats a directory it found in a directory it lists
    /// (`parent_whole`: that one is walked whole): `None` — nothing below it
    /// changed, its entries are the base's; `Some(whole)` — listed, and
    /// with `whole` everything below it too.
    pub(crate) fn visit(&self, dir: &RelPath, parent_whole: bool) -> Option<bool> {
        if parent_whole || self.whole.contains(dir.as_bytes()) {
            return Some(true);
        }
        self.touches(dir.as_bytes()).then_some(false)
    }

    /// Whether the root itself is walked whole.
    pub(crate) fn root_whole(&self) -> bool {
        self.whole.contains(&Vec::new())
    }

    fn below(&self, dir: &[u8]) -> bool {
        if dir.is_empty() {
            return !self.paths.is_empty();
        }
        let prefix = [dir, b"/"].concat();
        self.paths.range(prefix.clone()..).next().is_some_and(|p| p.starts_with(&prefix))
    }
}

/// `path` as a workspace path, when it surely names what is on disk.
fn exact(path: &[u8]) -> Option<RelPath> {
    if path.windows(LOSSY.len()).any(|w| w == LOSSY) {
        return None;
    }
    RelPath::from_bytes(path)
}

/// The directory above the first component that is not surely a name on
/// disk (or not a valid name): walking it whole finds whatever was meant.
fn usable_prefix(path: &[u8]) -> Vec<u8> {
    let mut kept: Vec<&[u8]> = Vec::new();
    for c in path.split(|b| *b == b'/') {
        if c.is_empty() || c == b"." || c == b".." || c.contains(&0) || c.windows(LOSSY.len()).any(|w| w == LOSSY) {
            break;
        }
        kept.push(c);
    }
    kept.join(&b'/')
}

/// Where two descriptions of the same workspace disagree: paths present in
/// one only, or whose entries differ in anything but the racy mark (files
/// stored as different objects are compared by content). For checking one
/// way of taking a snapshot against another; at most `limit` are named.
pub fn differences(
    store: &crate::Store,
    a: &Manifest,
    b: &Manifest,
    limit: usize,
) -> Result<Vec<String>, crate::StoreError> {
    use crate::manifest::EntryKind;
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    let name = |p: &RelPath| String::from_utf8_lossy(p.as_bytes()).into_owned();
    while (i < a.entries.len() || j < b.entries.len()) && out.len() < limit {
        let (x, y) = (a.entries.get(i), b.entries.get(j));
        match (x, y) {
            (Some(x), Some(y)) if x.path == y.path => {
                let same = x.stat == y.stat
                    && match (&x.kind, &y.kind) {
                        (EntryKind::File { object: o1, .. }, EntryKind::File { object: o2, .. }) if o1 != o2 => {
                            let (mut x, mut y) = (x.clone(), y.clone());
                            crate::changes::object_hash(store, &mut x)? == crate::changes::object_hash(store, &mut y)?
                        }
                        (EntryKind::File { .. }, EntryKind::File { .. }) => true,
                        (k1, k2) => k1 == k2,
                    };
                if !same {
                    out.push(format!("{}: {:?} {:?} / {:?} {:?}", name(&x.path), x.kind, x.stat, y.kind, y.stat));
                }
                i += 1;
                j += 1;
            }
            (Some(x), y) if y.is_none_or(|y| x.path < y.path) => {
                out.push(format!("{}: only in the first", name(&x.path)));
                i += 1;
            }
            (_, Some(y)) => {
                out.push(format!("{}: only in the second", name(&y.path)));
                j += 1;
            }
            _ => break,
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(s: &str) -> RelPath {
        RelPath::from_bytes(s.as_bytes()).unwrap()
    }

    #[test]
    fn a_changed_path_opens_its_ancestors_and_nothing_beside_them() {
        let mut c = ChangedPaths::new();
        c.add(b"a/b/f");
        assert_eq!(c.visit(&rel("a"), false), Some(false));
        assert_eq!(c.visit(&rel("a/b"), false), Some(false));
        // Should the changed path be a directory (a chmod), it is listed, not walked.
        assert_eq!(c.visit(&rel("a/b/f"), false), Some(false));
        assert_eq!(c.visit(&rel("a/b/f/g"), false), None);
        assert_eq!(c.visit(&rel("a/c"), false), None);
        // Byte order puts "a-b" and "a.b" between "a" and "a/": not below "a".
        assert_eq!(c.visit(&rel("a-b"), false), None);
        let mut d = ChangedPaths::new();
        d.add(b"a-b/x");
        assert_eq!(d.visit(&rel("a"), false), None);
        assert_eq!(d.visit(&rel("a-b"), false), Some(false));
    }

    #[test]
    fn a_whole_subtree_is_walked_whole_and_so_is_everything_below_it() {
        let mut c = ChangedPaths::new();
        c.add_whole(b"moved");
        assert_eq!(c.visit(&rel("moved"), false), Some(true));
        assert_eq!(c.visit(&rel("moved/deep"), true), Some(true));
        assert_eq!(c.visit(&rel("other"), false), None);
        assert!(!c.root_whole());
    }

    #[test]
    fn a_changed_gitignore_walks_its_directory_whole() {
        let mut c = ChangedPaths::new();
        c.add(b"src/.gitignore");
        assert_eq!(c.visit(&rel("src"), false), Some(true));
        c.add(b".gitignore");
        assert!(c.root_whole());
    }

    #[test]
    fn a_lossy_name_walks_the_directory_above_it_whole() {
        let mut c = ChangedPaths::new();
        c.add("d/bad\u{FFFD}name/f".as_bytes());
        assert_eq!(c.visit(&rel("d"), false), Some(true));
        let mut r = ChangedPaths::new();
        r.add("\u{FFFD}".as_bytes());
        assert!(r.root_whole());
    }

    fn snap(
        store: &crate::Store,
        root: &std::path::Path,
        previous: Option<&Manifest>,
        scope: Option<Scope<'_>>,
    ) -> Manifest {
        let opts = crate::SnapshotOptions {
            workspace: root,
            budget: crate::Budget::default(),
            exclude_files: vec![],
            previous,
            progress: None,
            scope,
        };
        crate::take_snapshot(store, &opts).unwrap().manifest
    }

    /// A snapshot told where the changes are equals a full walk; told too
    /// little, it misses them, and [`differences`] names what it missed
    /// (so the end-to-end equivalence checks built on it can fail).
    #[test]
    fn a_scoped_snapshot_equals_the_full_walk_only_when_told_every_change() {
        let dir = tempfile::tempdir().unwrap();
        let (root, store_dir) = (dir.path().join("ws"), dir.path().join("store"));
        for f in ["a/b/one", "a/b/two", "a/c/three", "d/four", "top"] {
            std::fs::create_dir_all(root.join(f).parent().unwrap()).unwrap();
            std::fs::write(root.join(f), f).unwrap();
        }
        std::fs::write(root.join(".gitignore"), "*.log\n").unwrap();
        let store = crate::Store::open_or_create(&store_dir, &root).unwrap();
        let before = snap(&store, &root, None, None);
        std::fs::write(root.join("a/b/one"), "changed, longer").unwrap();
        std::fs::remove_file(root.join("d/four")).unwrap();
        std::fs::rename(root.join("a/c"), root.join("moved")).unwrap();
        std::fs::create_dir_all(root.join("new/deep")).unwrap();
        std::fs::write(root.join("new/deep/f"), "f").unwrap();
        let mut told = ChangedPaths::new();
        for p in ["a/b/one", "d/four", "a/c"] {
            told.add(p.as_bytes());
        }
        told.add_whole(b"moved");
        told.add_whole(b"new");
        let full = snap(&store, &root, Some(&before), None);
        let scoped = snap(&store, &root, Some(&before), Some(Scope { base: &before, changed: &told }));
        assert_eq!(differences(&store, &scoped, &full, 10).unwrap(), Vec::<String>::new());
        // Not told about the new tree: it is missing, and that is seen.
        let mut short = told.clone();
        short.whole.remove(b"new".as_slice());
        short.paths.remove(b"new".as_slice());
        let missed = snap(&store, &root, Some(&before), Some(Scope { base: &before, changed: &short }));
        let d = differences(&store, &missed, &full, 10).unwrap();
        assert!(d.iter().any(|l| l.starts_with("new")), "{d:?}");
        // Not told about the write: the stale entry is seen as different.
        let mut quiet = told.clone();
        quiet.paths.remove(b"a/b/one".as_slice());
        let stale = snap(&store, &root, Some(&before), Some(Scope { base: &before, changed: &quiet }));
        let d = differences(&store, &stale, &full, 10).unwrap();
        assert!(d.iter().any(|l| l.starts_with("a/b/one")), "{d:?}");
    }
}
