//! Where a workspace may have changed since a snapshot, as a complete record
//! of its writes names it: what lets a snapshot look only there
//! ([`crate::SnapshotOptions::scope`]) instead of walking the whole tree.
//!
//! The walk still starts at the root. It lists every directory a changed
//! path is in (so a name that came or went is seen), passes through the
//! directories above them (looking only at the subdirectories on the way,
//! with every directory's ignore rules applied as a full walk applies them:
//! no name in them came or went, or the record would say so), and walks
//! whole every subtree that arrived or whose rules changed; any other
//! directory's entries are the base snapshot's. A directory on the way
//! that is not one any more is listed after all.

use std::collections::{BTreeSet, HashMap};

use crate::manifest::{Entry, Manifest};
use crate::path::RelPath;

/// A snapshot that looks only where [`ChangedPaths`] says, taking every other
/// entry from `base` (the snapshot the changes are relative to).
#[derive(Clone, Copy, Debug)]
pub struct Scope<'a> {
    pub base: &'a Manifest,
    pub changed: &'a ChangedPaths,
    /// `Some`: `base` is what the walk needs of this stored snapshot
    /// ([`crate::Stored::partial`]), only the directories it lists: whether
    /// anything changed is known from it, and a new snapshot is a layer
    /// over the stored one's whole base, or merged with the whole of it.
    pub stored: Option<&'a crate::Stored>,
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

    /// How the walk treats a directory it found (`parent_whole`: in one it
    /// walks whole): `None` — nothing below it changed, its entries are the
    /// base's; else how it is looked at ([`Visit`]).
    pub(crate) fn visit(&self, dir: &RelPath, parent_whole: bool) -> Option<Visit> {
        if parent_whole || self.whole.contains(dir.as_bytes()) {
            return Some(Visit::Whole);
        }
        if self.paths.contains(dir.as_bytes()) {
            return Some(Visit::List);
        }
        let (direct, names) = self.on_the_way(dir.as_bytes());
        match (direct, names.is_empty()) {
            (true, _) => Some(Visit::List),
            (false, false) => Some(Visit::Pass),
            (false, true) => None,
        }
    }

    /// How the walk treats the root.
    pub(crate) fn root_visit(&self) -> Visit {
        match self.visit(&RelPath::root(), false) {
            Some(v) => v,
            // Nothing changed: nothing of it to look at.
            None => Visit::Pass,
        }
    }

    /// The names in `dir` on the way to a change below it, and whether a
    /// path names an entry of `dir` itself. Each name's subtree is jumped
    /// over: this costs the names, not the paths below them.
    pub(crate) fn on_the_way(&self, dir: &[u8]) -> (bool, Vec<Vec<u8>>) {
        let prefix = crate::manifest::dir_prefix(dir);
        let mut names = Vec::new();
        let mut from = prefix.clone();
        while let Some(p) = self.paths.range(from.clone()..).next().filter(|p| p.starts_with(&prefix)) {
            let rest = &p[prefix.len()..];
            let Some(slash) = rest.iter().position(|b| *b == b'/') else { return (true, names) };
            names.push(rest[..slash].to_vec());
            // Past `name/…`: `name0` follows every path below `name`.
            from = [&p[..prefix.len() + slash], &[b'/' + 1][..]].concat();
        }
        (false, names)
    }

    fn below(&self, dir: &[u8]) -> bool {
        if dir.is_empty() {
            return !self.paths.is_empty();
        }
        let prefix = [dir, b"/"].concat();
        self.paths.range(prefix.clone()..).next().is_some_and(|p| p.starts_with(&prefix))
    }
}

/// How a scoped walk looks at a directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Visit {
    /// Only on the way to changes below it: its subdirectories on the way
    /// are looked at, and nothing else of it (no entry of it changed, or
    /// the record would name one).
    Pass,
    /// Listed: something in it changed.
    List,
    /// Walked whole, everything below it.
    Whole,
}

/// What a scoped walk answers for in its base, and what it found there.
///
/// The walk visits some directories (`visited`: every one on the way to a
/// change, and everything below one it walks whole) and takes each other
/// subtree from the base. It answers for the base's entries in a directory
/// it listed, for the subdirectories on the way in one it passed through,
/// below one it walked whole, and below one it looked at that is no longer
/// a directory it kept; every other entry of the base is the snapshot's as
/// it is. So an untouched subtree is never copied, compared
/// or sorted: whether anything changed costs what the walk listed.
pub(crate) struct Scoped {
    /// Per entry of the base: the walk answers for it.
    answered: Vec<bool>,
    /// What the walk found, sorted by path.
    listed: Vec<Entry>,
    /// Directories of the base the walk looked at, neither walked nor
    /// found again as directories: nothing below them is left.
    gone: Vec<Vec<u8>>,
}

impl Scoped {
    pub(crate) fn new(base: &Manifest, visited: &[(RelPath, Visit)], mut listed: Vec<Entry>) -> Scoped {
        listed.sort_unstable_by(|a, b| a.path.cmp(&b.path));
        let visits: HashMap<&[u8], Visit> = visited.iter().map(|(p, v)| (p.as_bytes(), *v)).collect();
        let found = |p: &[u8]| listed.binary_search_by(|e| e.path.as_bytes().cmp(p));
        let kept_dir = |p: &[u8]| !visits.contains_key(p) && found(p).is_ok_and(|i| listed[i].is_dir());
        let mut answered = vec![false; base.entries.len()];
        let mut gone = Vec::new();
        for (dir, visit) in visited {
            let range = base.below_range(dir.as_bytes());
            if *visit == Visit::Whole {
                answered[range].fill(true);
                continue;
            }
            // Its children, jumping over their subtrees (which need not
            // follow them: `a-b` sorts between `a` and `a/x`).
            let skip = if dir.is_root() { 0 } else { dir.as_bytes().len() + 1 };
            let mut i = range.start;
            while i < range.end {
                let path = base.entries[i].path.as_bytes();
                if let Some(slash) = path[skip..].iter().position(|b| *b == b'/') {
                    // Below a child already decided.
                    i = base.below_range(&path[..skip + slash]).end.max(i + 1);
                    continue;
                }
                // Passed through: only the children on the way were looked at.
                if *visit == Visit::Pass && !visits.contains_key(path) && found(path).is_err() {
                    i += 1;
                    continue;
                }
                answered[i] = true;
                if !visits.contains_key(path) && !kept_dir(path) {
                    // Gone, or no longer a directory: nothing below it is left.
                    answered[base.below_range(path)].fill(true);
                    if base.entries[i].is_dir() {
                        gone.push(path.to_vec());
                    }
                }
                i += 1;
            }
        }
        Scoped { answered, listed, gone }
    }

    /// Directories of the base that are gone ([`Scoped::gone`]).
    pub(crate) fn gone(&self) -> &[Vec<u8>] {
        &self.gone
    }

    /// What the walk found, for another base.
    pub(crate) fn listed(self) -> Vec<Entry> {
        self.listed
    }

    /// The base's entries the walk answers for, and what it found there:
    /// everything a change set against the base needs (every other entry
    /// is the same on both sides).
    pub(crate) fn region(&self, base: &Manifest) -> (Vec<Entry>, Vec<Entry>) {
        (answered(base, &self.answered, true).cloned().collect(), self.listed.clone())
    }

    /// The walk found exactly what the base holds where it looked.
    pub(crate) fn unchanged(&self, base: &Manifest) -> bool {
        let mut mine = answered(base, &self.answered, true);
        self.listed.iter().all(|l| mine.next() == Some(l)) && mine.next().is_none()
    }

    /// The whole snapshot: the base's entries the walk does not answer for,
    /// and what it found, in path order.
    pub(crate) fn merge(self, base: &Manifest) -> Vec<Entry> {
        let mut out = Vec::with_capacity(base.entries.len() + self.listed.len());
        let mut kept = answered(base, &self.answered, false).peekable();
        for l in self.listed {
            while let Some(k) = kept.next_if(|k| k.path < l.path) {
                out.push(k.clone());
            }
            out.push(l);
        }
        out.extend(kept.cloned());
        out
    }
}

/// The entries of `base` a walk answers for (`yes`), or those it does not,
/// by [`Scoped::answered`]'s marks.
fn answered<'a>(base: &'a Manifest, marks: &'a [bool], yes: bool) -> impl Iterator<Item = &'a Entry> {
    base.entries.iter().zip(marks).filter(move |(_, a)| **a == yes).map(|(e, _)| e)
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
        // Only on the way: passed through, not listed.
        assert_eq!(c.root_visit(), Visit::Pass);
        assert_eq!(c.visit(&rel("a"), false), Some(Visit::Pass));
        assert_eq!(c.on_the_way(b""), (false, vec![b"a".to_vec()]));
        // The changed path's directory is listed.
        assert_eq!(c.visit(&rel("a/b"), false), Some(Visit::List));
        // Should the changed path be a directory (a chmod), it is listed, not walked.
        assert_eq!(c.visit(&rel("a/b/f"), false), Some(Visit::List));
        assert_eq!(c.visit(&rel("a/b/f/g"), false), None);
        assert_eq!(c.visit(&rel("a/c"), false), None);
        // Byte order puts "a-b" and "a.b" between "a" and "a/": not below "a".
        assert_eq!(c.visit(&rel("a-b"), false), None);
        let mut d = ChangedPaths::new();
        d.add(b"a-b/x");
        assert_eq!(d.visit(&rel("a"), false), None);
        assert_eq!(d.visit(&rel("a-b"), false), Some(Visit::List));
        // Paths deeper only pass through it; one in it lists it, whatever
        // else is below it.
        let mut e = ChangedPaths::new();
        e.add(b"a-b/x/y");
        e.add(b"a-b/y/z");
        assert_eq!(e.visit(&rel("a-b"), false), Some(Visit::Pass));
        e.add(b"a-b/y0");
        assert_eq!(e.visit(&rel("a-b"), false), Some(Visit::List));
    }

    /// The names on the way are found by jumping over each one's subtree,
    /// in byte order (`y-1` and `y0` sort around `y/…`).
    #[test]
    fn the_names_on_the_way_jump_over_their_subtrees() {
        let mut c = ChangedPaths::new();
        for p in ["d/y/a", "d/y/b/c", "d/y-1/q", "d/y0/r", "d/z/deep/er", "e/f"] {
            c.add(p.as_bytes());
        }
        let names = |d: &str| {
            c.on_the_way(d.as_bytes()).1.into_iter().map(|n| String::from_utf8(n).unwrap()).collect::<Vec<_>>()
        };
        assert_eq!(names("d"), ["y-1", "y", "y0", "z"]);
        assert_eq!(names(""), ["d", "e"]);
        // A path directly in it: listed (the names then do not matter).
        assert!(c.on_the_way(b"d/y").0);
        assert_eq!(names("d/z"), ["deep"]);
    }

    #[test]
    fn a_whole_subtree_is_walked_whole_and_so_is_everything_below_it() {
        let mut c = ChangedPaths::new();
        c.add_whole(b"moved");
        assert_eq!(c.visit(&rel("moved"), false), Some(Visit::Whole));
        assert_eq!(c.visit(&rel("moved/deep"), true), Some(Visit::Whole));
        assert_eq!(c.visit(&rel("other"), false), None);
        assert_ne!(c.root_visit(), Visit::Whole);
    }

    #[test]
    fn a_changed_gitignore_walks_its_directory_whole() {
        let mut c = ChangedPaths::new();
        c.add(b"src/.gitignore");
        assert_eq!(c.visit(&rel("src"), false), Some(Visit::Whole));
        c.add(b".gitignore");
        assert_eq!(c.root_visit(), Visit::Whole);
    }

    #[test]
    fn a_lossy_name_walks_the_directory_above_it_whole() {
        let mut c = ChangedPaths::new();
        c.add("d/bad\u{FFFD}name/f".as_bytes());
        assert_eq!(c.visit(&rel("d"), false), Some(Visit::Whole));
        let mut r = ChangedPaths::new();
        r.add("\u{FFFD}".as_bytes());
        assert_eq!(r.root_visit(), Visit::Whole);
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
        let taken = crate::take_snapshot(store, &opts).unwrap();
        match taken.taken {
            crate::Taken::Base => scope.unwrap().base.clone(),
            crate::Taken::Whole(m) => m,
            crate::Taken::Layered => store.manifest(&taken.id).unwrap(),
        }
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
        let scoped = snap(&store, &root, Some(&before), Some(Scope { base: &before, changed: &told, stored: None }));
        assert_eq!(differences(&store, &scoped, &full, 10).unwrap(), Vec::<String>::new());
        // Not told about the new tree: it is missing, and that is seen.
        let mut short = told.clone();
        short.whole.remove(b"new".as_slice());
        short.paths.remove(b"new".as_slice());
        let missed = snap(&store, &root, Some(&before), Some(Scope { base: &before, changed: &short, stored: None }));
        let d = differences(&store, &missed, &full, 10).unwrap();
        assert!(d.iter().any(|l| l.starts_with("new")), "{d:?}");
        // Not told about the write: the stale entry is seen as different.
        let mut quiet = told.clone();
        quiet.paths.remove(b"a/b/one".as_slice());
        let stale = snap(&store, &root, Some(&before), Some(Scope { base: &before, changed: &quiet, stored: None }));
        let d = differences(&store, &stale, &full, 10).unwrap();
        assert!(d.iter().any(|l| l.starts_with("a/b/one")), "{d:?}");
    }

    /// Siblings whose names sort between a directory and its children
    /// (`a-b`, `a.c` sort between `a` and `a/x`), a directory gone, one
    /// turned into a file, one into a symlink, untouched subtrees beside
    /// them: the scoped snapshot merges the base around what it listed and
    /// equals the full walk; told nothing changed where nothing did, it is
    /// the base itself.
    #[test]
    fn a_scoped_snapshot_keeps_untouched_subtrees_around_interleaved_names() {
        let dir = tempfile::tempdir().unwrap();
        let (root, store_dir) = (dir.path().join("ws"), dir.path().join("store"));
        for f in ["a/x/1", "a/y/2", "a-b/3", "a-b/deep/4", "a.c/5", "a0/6", "a/a-b/7", "a/a0/8", "z/9", "z/z/10"] {
            std::fs::create_dir_all(root.join(f).parent().unwrap()).unwrap();
            std::fs::write(root.join(f), f).unwrap();
        }
        let store = crate::Store::open_or_create(&store_dir, &root).unwrap();
        // Past the filesystem clock's tick: no entry of `before` is racy.
        std::thread::sleep(std::time::Duration::from_millis(50));
        let before = snap(&store, &root, None, None);
        // Nothing changed, nothing told: the base, not a copy.
        let none = ChangedPaths::new();
        let opts = crate::SnapshotOptions {
            workspace: &root,
            budget: crate::Budget::default(),
            exclude_files: vec![],
            previous: Some(&before),
            progress: None,
            scope: Some(Scope { base: &before, changed: &none, stored: None }),
        };
        let same = crate::take_snapshot(&store, &opts).unwrap();
        assert!(matches!(same.taken, crate::Taken::Base) && Some(&same.id) == before.id.as_ref());
        std::fs::write(root.join("a/x/1"), "changed, longer").unwrap();
        std::fs::remove_dir_all(root.join("a-b")).unwrap();
        std::fs::remove_dir_all(root.join("a.c")).unwrap();
        std::fs::write(root.join("a.c"), "now a file").unwrap();
        std::fs::remove_dir_all(root.join("a/a-b")).unwrap();
        std::os::unix::fs::symlink("x", root.join("a/a-b")).unwrap();
        let mut told = ChangedPaths::new();
        for p in ["a/x/1", "a-b", "a.c", "a/a-b"] {
            told.add(p.as_bytes());
        }
        // Through the stored manifest's index: only the directories listed
        // are read, and the merge takes the rest from the whole of it.
        let stored = crate::Stored::open(&store, before.id.as_ref().unwrap()).unwrap();
        assert!(matches!(stored, crate::Stored::Indexed(_)));
        let partial = stored.partial(&told).unwrap();
        assert!(partial.get(&rel("z")).is_some() && partial.get(&rel("a/y")).is_some());
        assert!(
            partial.get(&rel("z/9")).is_none() && partial.get(&rel("a/y/2")).is_none(),
            "read an untouched listing"
        );
        let through_index =
            snap(&store, &root, Some(&partial), Some(Scope { base: &partial, changed: &told, stored: Some(&stored) }));
        let full = snap(&store, &root, Some(&before), None);
        let scoped = snap(&store, &root, Some(&before), Some(Scope { base: &before, changed: &told, stored: None }));
        assert_eq!(differences(&store, &scoped, &full, 10).unwrap(), Vec::<String>::new());
        assert_eq!(differences(&store, &through_index, &full, 10).unwrap(), Vec::<String>::new());
        assert!(scoped.get(&rel("a/y/2")).is_some() && scoped.get(&rel("z/z/10")).is_some());
        assert!(scoped.get(&rel("a-b/deep/4")).is_none() && scoped.get(&rel("a/a-b/7")).is_none());
    }

    /// A change deep down passes through the directories above it: only
    /// the subdirectories on the way are looked at and read from the base,
    /// not their siblings; a directory on the way that is gone (the record
    /// missed it) lists its parent after all. Each equals a full walk.
    #[test]
    fn a_deep_change_passes_through_the_directories_above_it() {
        let dir = tempfile::tempdir().unwrap();
        let (root, store_dir) = (dir.path().join("ws"), dir.path().join("store"));
        for t in 0..3 {
            for d in 0..4 {
                for f in 0..3 {
                    let p = root.join(format!("t{t}/d{d}/f{f}"));
                    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                    std::fs::write(p, "x").unwrap();
                }
            }
        }
        std::fs::write(root.join("t1/.gitignore"), "*.log\n").unwrap();
        let store = crate::Store::open_or_create(&store_dir, &root).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let before = snap(&store, &root, None, None);
        let stored = crate::Stored::open(&store, before.id.as_ref().unwrap()).unwrap();
        std::fs::write(root.join("t1/d2/f0"), "changed, longer").unwrap();
        // Ignored by t1's rules, which apply though t1 is not listed.
        std::fs::write(root.join("t1/d2/new.log"), "ignored").unwrap();
        let mut told = ChangedPaths::new();
        told.add(b"t1/d2/f0");
        told.add(b"t1/d2/new.log");
        let partial = stored.partial(&told).unwrap();
        let read: Vec<&str> = partial.entries.iter().map(|e| std::str::from_utf8(e.path.as_bytes()).unwrap()).collect();
        assert_eq!(read, ["t1", "t1/d2", "t1/d2/f0", "t1/d2/f1", "t1/d2/f2"], "read beside the way");
        let full = snap(&store, &root, Some(&before), None);
        let through =
            snap(&store, &root, Some(&partial), Some(Scope { base: &partial, changed: &told, stored: Some(&stored) }));
        assert_eq!(differences(&store, &through, &full, 10).unwrap(), Vec::<String>::new());
        // Kept, ignored (within the budget), as the full walk keeps it.
        assert!(through.get(&rel("t1/d2/new.log")).is_some());
        let merged = snap(&store, &root, Some(&before), Some(Scope { base: &before, changed: &told, stored: None }));
        assert_eq!(differences(&store, &merged, &full, 10).unwrap(), Vec::<String>::new());

        // t2 removed, the record naming only a change below it.
        let base = stored_after(&store, &through);
        std::fs::remove_dir_all(root.join("t2")).unwrap();
        let mut missed = ChangedPaths::new();
        missed.add(b"t2/d0/f0");
        let partial = base.partial(&missed).unwrap();
        let after =
            snap(&store, &root, Some(&partial), Some(Scope { base: &partial, changed: &missed, stored: Some(&base) }));
        let full = snap(&store, &root, Some(&before), None);
        assert_eq!(differences(&store, &after, &full, 10).unwrap(), Vec::<String>::new());
        assert!(after.get(&rel("t2")).is_none() && after.get(&rel("t0/d0/f0")).is_some());
    }

    /// What rollback makes the latest snapshot: a layer with the restored
    /// entries and without the removed ones (a file, a directory and what
    /// was below it), whose whole listing is the one written whole before.
    #[test]
    fn a_refreshed_snapshot_is_a_layer_equal_to_the_whole_listing() {
        let dir = tempfile::tempdir().unwrap();
        let (root, store_dir) = (dir.path().join("ws"), dir.path().join("store"));
        for f in ["a/b/f1", "a/b/f2", "a/c/g", "d/h", "e/x/y", "e/z"] {
            std::fs::create_dir_all(root.join(f).parent().unwrap()).unwrap();
            std::fs::write(root.join(f), f).unwrap();
        }
        let store = crate::Store::open_or_create(&store_dir, &root).unwrap();
        let before = snap(&store, &root, None, None);
        let stored = stored_after(&store, &before);
        let mut updated = std::collections::HashMap::new();
        let mut f1 = before.get(&rel("a/b/f1")).unwrap().clone();
        f1.stat.size = 99;
        updated.insert(rel("a/b/f1"), Some(f1));
        updated.insert(rel("a/c/g"), None);
        for p in ["e", "e/x", "e/x/y", "e/z"] {
            updated.insert(rel(p), None);
        }
        let new_dir = Entry { path: rel("n"), ..before.get(&rel("d")).unwrap().clone() };
        let new_file = Entry { path: rel("n/m"), ..before.get(&rel("d/h")).unwrap().clone() };
        updated.insert(rel("n"), Some(new_dir));
        updated.insert(rel("n/m"), Some(new_file));
        let id = crate::snapshot::refreshed_layer(&store, &stored, &updated, before.started_ns).unwrap().unwrap();
        let layered = stored_after(&store, &Manifest { id: Some(id), ..Manifest::default() });
        assert!(matches!(layered, crate::Stored::Layered(_)), "written whole");
        let mut expected = before.clone();
        expected.entries.retain(|e| !updated.contains_key(&e.path));
        expected.entries.extend(updated.values().flatten().cloned());
        expected.sort();
        let got = layered.whole().unwrap();
        let paths = |m: &Manifest| {
            m.entries.iter().map(|e| String::from_utf8_lossy(e.path.as_bytes()).into_owned()).collect::<Vec<_>>()
        };
        assert_eq!(paths(&got), paths(&expected));
        assert_eq!(got.entries, expected.entries);
    }

    fn stored_after(store: &crate::Store, m: &Manifest) -> crate::Stored {
        crate::Stored::open(store, m.id.as_ref().unwrap()).unwrap()
    }

    /// Snapshots told where the changes are, one after another, each read
    /// through the one before: they are stored as one layer over the first
    /// whole one (joined, not stacked), each equals a full walk, and the
    /// region each reports gives the same change set as the whole listings.
    #[test]
    fn layers_over_a_whole_snapshot_equal_full_walks_session_after_session() {
        let dir = tempfile::tempdir().unwrap();
        let (root, store_dir) = (dir.path().join("ws"), dir.path().join("store"));
        for d in 0..30 {
            for f in 0..40 {
                let p = root.join(format!("d{d}/sub/f{f}"));
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(p, format!("{d} {f}")).unwrap();
            }
        }
        let store = crate::Store::open_or_create(&store_dir, &root).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let first = snap(&store, &root, None, None);
        type Step = (&'static str, Box<dyn Fn(&std::path::Path)>, Vec<&'static str>, Vec<&'static str>);
        let steps: Vec<Step> = vec![
            (
                "an edit",
                Box::new(|r| std::fs::write(r.join("d1/sub/f1"), "edited").unwrap()),
                vec!["d1/sub/f1"],
                vec![],
            ),
            (
                "a directory gone and one made",
                Box::new(|r| {
                    std::fs::remove_dir_all(r.join("d2")).unwrap();
                    std::fs::create_dir_all(r.join("new/deep")).unwrap();
                    std::fs::write(r.join("new/deep/n"), "n").unwrap();
                }),
                vec!["d2"],
                vec!["new"],
            ),
            (
                "the edit undone, a directory made a file",
                Box::new(|r| {
                    std::fs::write(r.join("d1/sub/f1"), "1 1").unwrap();
                    std::fs::remove_dir_all(r.join("d3/sub")).unwrap();
                    std::fs::write(r.join("d3/sub"), "now a file").unwrap();
                }),
                vec!["d1/sub/f1", "d3/sub"],
                vec![],
            ),
        ];
        let mut previous = first.clone();
        for (name, change, paths, wholes) in steps {
            change(&root);
            let mut told = ChangedPaths::new();
            for p in paths {
                told.add(p.as_bytes());
            }
            for w in wholes {
                told.add_whole(w.as_bytes());
            }
            let stored = crate::Stored::open(&store, previous.id.as_ref().unwrap()).unwrap();
            let partial = stored.partial(&told).unwrap();
            let opts = crate::SnapshotOptions {
                workspace: &root,
                budget: crate::Budget::default(),
                exclude_files: vec![],
                previous: Some(&partial),
                progress: None,
                scope: Some(Scope { base: &partial, changed: &told, stored: Some(&stored) }),
            };
            let taken = crate::take_snapshot(&store, &opts).unwrap();
            assert!(matches!(taken.taken, crate::Taken::Layered), "{name}: not a layer");
            let now = store.manifest(&taken.id).unwrap();
            let full = snap(&store, &root, Some(&now), None);
            assert_eq!(differences(&store, &now, &full, 10).unwrap(), Vec::<String>::new(), "{name}");
            let layered = crate::Stored::open(&store, &taken.id).unwrap();
            let crate::Stored::Layered(l) = &layered else { panic!("{name}: not read as a layer") };
            assert_eq!(l.base.id, *first.id.as_ref().unwrap(), "{name}: a layer over a layer");
            let (was, after) = taken.region.unwrap();
            let side = |entries| Manifest { entries, ..Manifest::default() };
            let from_region = crate::compute_changes(&store, &side(was), &side(after)).unwrap();
            let from_wholes = crate::compute_changes(&store, &previous, &now).unwrap();
            let paths = |c: &[crate::Change]| c.iter().map(|c| c.path.clone()).collect::<Vec<_>>();
            assert_eq!(paths(&from_region), paths(&from_wholes), "{name}");
            assert!(!from_wholes.is_empty(), "{name}: nothing changed (the step tests nothing)");
            previous = now;
        }
    }
}
