//! Renames: a deleted path and a created one that hold the same content, or
//! content similar enough, are shown and reviewed as one move, as git's
//! `-M` does.
//!
//! Pairing is a pure function of the change list ([`pair_renames`]); content
//! is asked for only where sizes could match, through [`RenameContents`], so
//! the cost follows the created and deleted files, and is bounded: files
//! larger than [`RenameOptions::max_size`] are paired only when identical,
//! and when there are more than [`RenameOptions::max_candidates`] squared
//! (deleted × created) pairs to score (git's `diff.renameLimit`), or more
//! than [`RenameOptions::max_work`] bytes in them, only identical files are
//! paired.
//!
//! A pairing never hides a change: both halves stay in the change list,
//! each marking the other ([`Change::rename`]), and [`rows`] shows a rename
//! only when both halves are shown.

use std::collections::HashMap;

use crate::changes::{Change, ChangeKind, ChangeState, object_hash};
use crate::error::StoreError;
use crate::git::{GitClass, git_class};
use crate::manifest::{Entry, EntryKind};
use crate::path::RelPath;
use crate::store::Store;

/// Git's default for `-M`: half the content kept.
pub const DEFAULT_MIN_SIMILARITY: u8 = 50;

/// The other half of a rename, on both halves: on the deleted path, where
/// its content went; on the created path, where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rename {
    pub other: RelPath,
    /// Percent of the content kept: 100 only for identical content.
    pub similarity: u8,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenameOptions {
    /// Least similarity (percent) for a pair of different contents.
    pub min_similarity: u8,
    /// Files larger than this are paired only when identical.
    pub max_size: u64,
    /// Similarity is scored only when deleted × created files are at most
    /// this squared (git's `diff.renameLimit`).
    pub max_candidates: usize,
    /// And only when the pairs to score hold at most this many bytes
    /// (both sides of each pair counted): 1,000 × 1,000 pairs of 1 MiB
    /// files would be 2 TB to compare.
    pub max_work: u64,
}

impl Default for RenameOptions {
    fn default() -> Self {
        RenameOptions {
            min_similarity: DEFAULT_MIN_SIMILARITY,
            max_size: 1 << 20,
            max_candidates: 1000,
            max_work: 1 << 30,
        }
    }
}

/// A deleted change (`from`) and a created one (`to`), by index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pair {
    pub from: usize,
    pub to: usize,
    pub similarity: u8,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pairing {
    pub pairs: Vec<Pair>,
    /// Similarity was not scored: too many candidates. Only identical
    /// content was paired.
    pub similarity_skipped: bool,
}

/// Where pairing gets content from: the store, or a test's map.
pub trait RenameContents {
    type Error;
    /// The BLAKE3 hash of a file entry's content.
    fn hash(&mut self, e: &Entry) -> Result<[u8; 32], Self::Error>;
    /// A file entry's content; asked only for files within the size cap.
    fn read(&mut self, e: &Entry) -> Result<Vec<u8>, Self::Error>;
}

/// What a rename half may be: a pending, non-empty file or a symlink, not
/// git's own bookkeeping (objects move about inside `.git` all the time).
fn eligible(c: &Change, e: Option<&Entry>) -> bool {
    c.state == ChangeState::Pending
        && git_class(&c.path) == GitClass::Normal
        && e.is_some_and(|e| match e.kind {
            EntryKind::File { .. } => e.stat.size > 0,
            EntryKind::Symlink { .. } => true,
            _ => false,
        })
}

/// Pairs deleted with created paths: identical content first (same file
/// name preferred, then path order), then, among the rest, the most similar
/// pairs at or above `opts.min_similarity`, best first. Each path is in one
/// pair at most.
pub fn pair_renames<C: RenameContents>(
    changes: &[Change],
    opts: &RenameOptions,
    contents: &mut C,
) -> Result<Pairing, C::Error> {
    let sources: Vec<usize> = (0..changes.len())
        .filter(|&i| changes[i].kind() == ChangeKind::Removed && eligible(&changes[i], changes[i].before.as_ref()))
        .collect();
    let dests: Vec<usize> = (0..changes.len())
        .filter(|&i| changes[i].kind() == ChangeKind::Added && eligible(&changes[i], changes[i].after.as_ref()))
        .collect();
    let mut out = Pairing::default();
    if sources.is_empty() || dests.is_empty() {
        return Ok(out);
    }
    let side = |i: usize| -> &Entry {
        let c = &changes[i];
        c.before.as_ref().or(c.after.as_ref()).unwrap_or_else(|| unreachable!("eligible changes have their side"))
    };
    let mut used = vec![false; changes.len()];
    let mut hashes: HashMap<usize, [u8; 32]> = HashMap::new();
    let mut hash_of = |i: usize, contents: &mut C| -> Result<[u8; 32], C::Error> {
        if let Some(h) = hashes.get(&i) {
            return Ok(*h);
        }
        let h = contents.hash(side(i))?;
        hashes.insert(i, h);
        Ok(h)
    };
    // Identical content: files meet by size before any is read.
    let mut files_by_size: HashMap<u64, Vec<usize>> = HashMap::new();
    let mut links_by_target: HashMap<&[u8], Vec<usize>> = HashMap::new();
    for &s in &sources {
        let e = side(s);
        match &e.kind {
            EntryKind::Symlink { target } => links_by_target.entry(target).or_default().push(s),
            _ => files_by_size.entry(e.stat.size).or_default().push(s),
        }
    }
    for &d in &dests {
        let e = side(d);
        let mut same: Vec<usize> = match &e.kind {
            EntryKind::Symlink { target } => links_by_target.get(target.as_slice()).cloned().unwrap_or_default(),
            _ => {
                let Some(bucket) = files_by_size.get(&e.stat.size) else { continue };
                let h = hash_of(d, contents)?;
                let mut v = Vec::new();
                for &s in bucket {
                    if !used[s] && hash_of(s, contents)? == h {
                        v.push(s);
                    }
                }
                v
            }
        };
        same.retain(|&s| !used[s]);
        let name = changes[d].path.file_name();
        if let Some(&s) = same.iter().find(|&&s| changes[s].path.file_name() == name).or(same.first()) {
            used[s] = true;
            used[d] = true;
            out.pairs.push(Pair { from: s, to: d, similarity: 100 });
        }
    }
    // Similar content, among files within the size cap.
    let small = |i: &usize| {
        let e = side(*i);
        !used[*i] && matches!(e.kind, EntryKind::File { .. }) && e.stat.size <= opts.max_size
    };
    let sources: Vec<usize> = sources.iter().copied().filter(small).collect();
    let dests: Vec<usize> = dests.iter().copied().filter(small).collect();
    if sources.is_empty() || dests.is_empty() || opts.min_similarity > 100 {
        return Ok(out);
    }
    let limit = opts.max_candidates.saturating_mul(opts.max_candidates);
    if sources.len().saturating_mul(dests.len()) > limit {
        out.similarity_skipped = true;
        return Ok(out);
    }
    // Pairs too different in size to reach the threshold are cut (as git
    // does) before anything is read; the rest must fit the work budget.
    let mut candidates: Vec<(usize, usize, u64)> = Vec::new();
    let mut work: u64 = 0;
    for &d in &dests {
        for &s in &sources {
            let (ds, ss) = (side(d).stat.size, side(s).stat.size);
            let (big, delta) = (ds.max(ss), ds.abs_diff(ss));
            if u128::from(big) * u128::from(100 - opts.min_similarity) >= u128::from(delta) * 100 {
                candidates.push((d, s, big));
                work = work.saturating_add(ds + ss);
            }
        }
    }
    if work > opts.max_work {
        out.similarity_skipped = true;
        return Ok(out);
    }
    let mut prints: HashMap<usize, Fingerprint> = HashMap::new();
    let mut scored: Vec<Pair> = Vec::new();
    for (d, s, big) in candidates {
        for i in [d, s] {
            if let std::collections::hash_map::Entry::Vacant(v) = prints.entry(i) {
                v.insert(fingerprint(&contents.read(side(i))?));
            }
        }
        let kept = prints[&s].common(&prints[&d]);
        let similarity = ((u128::from(kept) * 100 / u128::from(big.max(1))).min(99)) as u8;
        if similarity >= opts.min_similarity {
            scored.push(Pair { from: s, to: d, similarity });
        }
    }
    // Best first; for equal scores the same file name, then path order.
    scored.sort_by_key(|p| {
        let same_name = changes[p.from].path.file_name() == changes[p.to].path.file_name();
        (std::cmp::Reverse(p.similarity), !same_name, p.to, p.from)
    });
    for p in scored {
        if !used[p.from] && !used[p.to] {
            used[p.from] = true;
            used[p.to] = true;
            out.pairs.push(p);
        }
    }
    Ok(out)
}

/// Content as chunks (a line, or 64 bytes at most) counted by bytes, the
/// way git's `diffcore-delta` estimates what a file kept of another.
struct Fingerprint(Vec<(u64, u64)>);

fn fingerprint(bytes: &[u8]) -> Fingerprint {
    let mut counts: HashMap<u64, u64> = HashMap::new();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' || i + 1 - start == 64 || i + 1 == bytes.len() {
            *counts.entry(fnv1a(&bytes[start..=i])).or_default() += (i + 1 - start) as u64;
            start = i + 1;
        }
    }
    let mut v: Vec<(u64, u64)> = counts.into_iter().collect();
    v.sort_unstable();
    Fingerprint(v)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

impl Fingerprint {
    /// Bytes of content the two have in common, chunk by chunk.
    fn common(&self, other: &Fingerprint) -> u64 {
        let (mut i, mut j, mut n) = (0, 0, 0);
        while i < self.0.len() && j < other.0.len() {
            match self.0[i].0.cmp(&other.0[j].0) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    n += self.0[i].1.min(other.0[j].1);
                    i += 1;
                    j += 1;
                }
            }
        }
        n
    }
}

/// Marks each pair on both its halves, clearing any earlier marks.
pub fn apply_pairing(changes: &mut [Change], pairing: &Pairing) {
    for c in changes.iter_mut() {
        c.rename = None;
    }
    for p in &pairing.pairs {
        let (from, to) = (changes[p.from].path.clone(), changes[p.to].path.clone());
        changes[p.from].rename = Some(Rename { other: to, similarity: p.similarity });
        changes[p.to].rename = Some(Rename { other: from, similarity: p.similarity });
    }
}

/// Content from the store, hashes cached in the entries they came from.
struct StoreContents<'a>(&'a Store);

impl RenameContents for StoreContents<'_> {
    type Error = StoreError;
    fn hash(&mut self, e: &Entry) -> Result<[u8; 32], StoreError> {
        object_hash(self.0, &mut e.clone())
    }
    fn read(&mut self, e: &Entry) -> Result<Vec<u8>, StoreError> {
        match &e.kind {
            EntryKind::File { object, .. } => self.0.read_object(object),
            _ => Ok(Vec::new()),
        }
    }
}

/// Finds the renames among `changes` with content from `store`, and marks
/// them on the changes.
pub fn find_renames(store: &Store, changes: &mut [Change], opts: &RenameOptions) -> Result<Pairing, StoreError> {
    let pairing = pair_renames(changes, opts, &mut StoreContents(store))?;
    apply_pairing(changes, &pairing);
    Ok(pairing)
}

/// One line of a review: a change alone, or a rename (both halves).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Row {
    One(usize),
    Renamed { from: usize, to: usize, similarity: u8 },
}

/// The rows showing the changes `shown` (indices, in order): a rename where
/// both halves are shown, in the same state, and at least `min_similarity`
/// similar (above 100: no renames), at the place of its created half;
/// every other change alone. Every shown change is in exactly one row.
pub fn rows(changes: &[Change], shown: &[usize], min_similarity: u16) -> Vec<Row> {
    let index: HashMap<&RelPath, usize> = shown.iter().map(|&i| (&changes[i].path, i)).collect();
    let partner = |i: usize| -> Option<(usize, u8)> {
        let c = &changes[i];
        let r = c.rename.as_ref()?;
        let &j = index.get(&r.other)?;
        let o = &changes[j];
        let back = o.rename.as_ref().is_some_and(|b| b.other == c.path && b.similarity == r.similarity);
        let kinds = matches!(
            (c.kind(), o.kind()),
            (ChangeKind::Removed, ChangeKind::Added) | (ChangeKind::Added, ChangeKind::Removed)
        );
        (back && kinds && o.state == c.state && u16::from(r.similarity) >= min_similarity).then_some((j, r.similarity))
    };
    let mut out = Vec::with_capacity(shown.len());
    for &i in shown {
        match (changes[i].kind(), partner(i)) {
            (ChangeKind::Removed, Some(_)) => {}
            (ChangeKind::Added, Some((from, similarity))) => out.push(Row::Renamed { from, to: i, similarity }),
            _ => out.push(Row::One(i)),
        }
    }
    out
}

/// The partners of the changes `picked` that are renames: acting on one
/// half of a rename acts on both.
pub fn with_partners(changes: &[Change], picked: &mut Vec<usize>) {
    let index: HashMap<&RelPath, usize> = changes.iter().enumerate().map(|(i, c)| (&c.path, i)).collect();
    let mut extra = Vec::new();
    for &i in picked.iter() {
        if let Some(r) = &changes[i].rename
            && let Some(&j) = index.get(&r.other)
            && changes[j].state == changes[i].state
        {
            extra.push(j);
        }
    }
    picked.extend(extra);
    picked.sort_unstable();
    picked.dedup();
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::{BTreeSet, HashMap};
    use std::convert::Infallible;

    use proptest::prelude::*;

    use super::*;
    use crate::stat::FileStat;
    use crate::store::ObjectId;

    /// Content by object id, counting what pairing asked for.
    #[derive(Clone, Debug, Default)]
    struct Mem {
        objects: HashMap<ObjectId, Vec<u8>>,
        reads: usize,
        hashes: usize,
    }

    impl RenameContents for Mem {
        type Error = Infallible;
        fn hash(&mut self, e: &Entry) -> Result<[u8; 32], Infallible> {
            self.hashes += 1;
            Ok(*blake3::hash(self.content(e)).as_bytes())
        }
        fn read(&mut self, e: &Entry) -> Result<Vec<u8>, Infallible> {
            self.reads += 1;
            Ok(self.content(e).to_vec())
        }
    }

    impl Mem {
        fn content(&self, e: &Entry) -> &[u8] {
            match &e.kind {
                EntryKind::File { object, .. } => &self.objects[object],
                _ => b"",
            }
        }

        fn file(&mut self, path: &str, content: &[u8]) -> Entry {
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&(self.objects.len() as u64 + 1).to_le_bytes());
            let object = ObjectId::from_bytes(id);
            self.objects.insert(object, content.to_vec());
            Entry {
                path: RelPath::from_bytes(path.as_bytes()).unwrap(),
                kind: EntryKind::File { object, hash: None },
                stat: FileStat { mode: 0o100644, size: content.len() as u64, ..FileStat::default() },
                racy: false,
            }
        }
    }

    fn deleted(e: Entry) -> Change {
        Change { path: e.path.clone(), before: Some(e), after: None, state: ChangeState::Pending, rename: None }
    }

    fn created(e: Entry) -> Change {
        Change { path: e.path.clone(), before: None, after: Some(e), state: ChangeState::Pending, rename: None }
    }

    fn lines(n: usize, tag: &str) -> Vec<u8> {
        (0..n).map(|i| format!("line {i} of {tag}\n")).collect::<String>().into_bytes()
    }

    fn names(changes: &[Change], p: &Pairing) -> Vec<(String, String, u8)> {
        p.pairs.iter().map(|q| (changes[q.from].path.display(), changes[q.to].path.display(), q.similarity)).collect()
    }

    #[test]
    fn identical_content_pairs_preferring_the_same_file_name() {
        let mut m = Mem::default();
        let body = lines(10, "x");
        let mut cs = vec![
            deleted(m.file("a/one", &body)),
            deleted(m.file("a/two", &body)),
            created(m.file("b/two", &body)),
            created(m.file("b/zzz", &body)),
        ];
        cs.sort_by(|x, y| x.path.cmp(&y.path));
        let p = pair_renames(&cs, &RenameOptions::default(), &mut m).unwrap();
        assert_eq!(names(&cs, &p), [("a/two".into(), "b/two".into(), 100), ("a/one".into(), "b/zzz".into(), 100)]);
        assert_eq!(m.reads, 0, "identical files are found by hash, not read");
    }

    #[test]
    fn similar_content_pairs_above_the_threshold_and_not_below() {
        let mut m = Mem::default();
        let old = lines(20, "x");
        let mut edited = old.clone();
        edited.extend_from_slice(b"one more line\n");
        let other = lines(20, "y");
        let cs = vec![deleted(m.file("a", &old)), created(m.file("b", &edited)), created(m.file("c", &other))];
        let p = pair_renames(&cs, &RenameOptions::default(), &mut m).unwrap();
        assert_eq!(names(&cs, &p), [("a".into(), "b".into(), 94)]);
        let strict = RenameOptions { min_similarity: 95, ..Default::default() };
        assert!(pair_renames(&cs, &strict, &mut m).unwrap().pairs.is_empty());
    }

    #[test]
    fn files_over_the_size_cap_pair_only_when_identical() {
        let mut m = Mem::default();
        let old = lines(100, "x");
        let mut edited = old.clone();
        edited.push(b'!');
        let cs = vec![
            deleted(m.file("a", &old)),
            created(m.file("b", &edited)),
            deleted(m.file("c", &old[1..])),
            created(m.file("d", &old[1..])),
        ];
        let opts = RenameOptions { max_size: 100, ..Default::default() };
        let p = pair_renames(&cs, &opts, &mut m).unwrap();
        assert_eq!(names(&cs, &p), [("c".into(), "d".into(), 100)]);
        assert_eq!(m.reads, 0, "nothing over the cap is read");
        let p = pair_renames(&cs, &RenameOptions::default(), &mut m).unwrap();
        assert_eq!(p.pairs.len(), 2, "under the default cap the edited pair is found: {p:?}");
    }

    #[test]
    fn too_many_candidates_skip_similarity_but_not_identical_files() {
        let mut m = Mem::default();
        let mut cs = Vec::new();
        for i in 0..3 {
            cs.push(deleted(m.file(&format!("old{i}"), &lines(10, &format!("{i}")))));
            let mut e = lines(10, &format!("{i}"));
            e.extend_from_slice(b"edit\n");
            cs.push(created(m.file(&format!("new{i}"), &e)));
        }
        cs.push(deleted(m.file("same-old", b"same\n")));
        cs.push(created(m.file("same-new", b"same\n")));
        let opts = RenameOptions { max_candidates: 2, ..Default::default() };
        let p = pair_renames(&cs, &opts, &mut m).unwrap();
        assert!(p.similarity_skipped);
        assert_eq!(names(&cs, &p), [("same-old".into(), "same-new".into(), 100)]);
        assert_eq!(m.reads, 0);
        let p = pair_renames(&cs, &RenameOptions::default(), &mut m).unwrap();
        assert!(!p.similarity_skipped && p.pairs.len() == 4, "{p:?}");
        // Nine pairs of about 130 + 135 bytes each to score: over a budget of 1,000.
        let reads = m.reads;
        let p = pair_renames(&cs, &RenameOptions { max_work: 1000, ..Default::default() }, &mut m).unwrap();
        assert!(p.similarity_skipped && p.pairs.len() == 1, "{p:?}");
        assert_eq!(m.reads, reads, "nothing read over the budget");
    }

    #[test]
    fn empty_files_git_internals_and_reviewed_changes_are_not_renames() {
        let mut m = Mem::default();
        let mut approved = deleted(m.file("c", b"c\n"));
        approved.state = ChangeState::Approved;
        let cs = vec![
            deleted(m.file("a", b"")),
            created(m.file("b", b"")),
            approved,
            created(m.file("d", b"c\n")),
            deleted(m.file(".git/objects/aa/bb", b"obj")),
            created(m.file(".git/objects/cc/dd", b"obj")),
        ];
        assert!(pair_renames(&cs, &RenameOptions::default(), &mut m).unwrap().pairs.is_empty());
    }

    #[test]
    fn a_rename_is_one_row_only_when_both_halves_are_shown_in_the_same_state() {
        let mut m = Mem::default();
        let mut cs = vec![deleted(m.file("a", b"x\n")), created(m.file("b", b"x\n")), created(m.file("c", b"y\n"))];
        let p = pair_renames(&cs, &RenameOptions::default(), &mut m).unwrap();
        apply_pairing(&mut cs, &p);
        assert_eq!(cs[1].renamed_from().unwrap().other.display(), "a");
        assert_eq!(cs[0].renamed_to().unwrap().other.display(), "b");
        assert_eq!(rows(&cs, &[0, 1, 2], 0), [Row::Renamed { from: 0, to: 1, similarity: 100 }, Row::One(2)]);
        assert_eq!(rows(&cs, &[1, 2], 0), [Row::One(1), Row::One(2)], "the old path is not shown");
        assert_eq!(rows(&cs, &[0, 1], 101), [Row::One(0), Row::One(1)], "renames turned off");
        cs[0].state = ChangeState::RolledBack;
        assert_eq!(rows(&cs, &[0, 1], 0), [Row::One(0), Row::One(1)], "halves reviewed apart");
        let mut picked = vec![1];
        with_partners(&cs, &mut picked);
        assert_eq!(picked, [1], "a reviewed half is not pulled in");
        cs[0].state = ChangeState::Pending;
        with_partners(&cs, &mut picked);
        assert_eq!(picked, [0, 1]);
    }

    /// A change list over a few names and contents: files deleted, created
    /// or modified, a few empty, a few symlinks, some reviewed already.
    fn change_list() -> impl Strategy<Value = (Vec<Change>, Mem)> {
        let one = (0..4usize, 0..5usize, 0..3u8, 0..6usize, prop::option::of(0..20usize), 0..10u8);
        prop::collection::vec(one, 0..16).prop_map(|spec| {
            let mut m = Mem::default();
            let mut seen = BTreeSet::new();
            let mut out = Vec::new();
            for (dir, name, side, content, edit, other) in spec {
                let path = format!("d{dir}/f{name}");
                if !seen.insert(path.clone()) {
                    continue;
                }
                let mut body = if content == 5 { Vec::new() } else { lines(20, &content.to_string()) };
                if let Some(l) = edit.filter(|_| !body.is_empty()) {
                    let mut ls: Vec<String> = String::from_utf8(body).unwrap().lines().map(String::from).collect();
                    ls[l] = "edited".into();
                    body = ls.iter().map(|l| format!("{l}\n")).collect::<String>().into_bytes();
                }
                let mut e = m.file(&path, &body);
                if other == 9 {
                    e.kind = EntryKind::Symlink { target: format!("t{content}").into_bytes() };
                }
                let mut c = match side {
                    0 => deleted(e),
                    1 => created(e),
                    _ => {
                        let b = m.file(&path, b"before\n");
                        Change { before: Some(b), ..created(e) }
                    }
                };
                if other == 8 {
                    c.state = ChangeState::Approved;
                }
                out.push(c);
            }
            out.sort_by(|a, b| a.path.cmp(&b.path));
            (out, m)
        })
    }

    fn content_key(m: &Mem, e: &Entry) -> Vec<u8> {
        match &e.kind {
            EntryKind::Symlink { target } => [b"link:".as_slice(), target].concat(),
            _ => [b"file:".as_slice(), m.content(e)].concat(),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn pairings_find_every_exact_rename_hide_nothing_and_pair_each_path_once(
            (cs, mut m) in change_list(), min in 1..=100u8,
        ) {
            let opts = RenameOptions { min_similarity: min, ..Default::default() };
            let p = pair_renames(&cs, &opts, &mut m).unwrap();
            // No path in two pairs; a pair is an eligible deletion and creation.
            let mut used = BTreeSet::new();
            for q in &p.pairs {
                prop_assert!(used.insert(q.from) && used.insert(q.to), "{:?}", p);
                prop_assert!(eligible(&cs[q.from], cs[q.from].before.as_ref()) && cs[q.from].kind() == ChangeKind::Removed);
                prop_assert!(eligible(&cs[q.to], cs[q.to].after.as_ref()) && cs[q.to].kind() == ChangeKind::Added);
                let (a, b) = (content_key(&m, cs[q.from].before.as_ref().unwrap()), content_key(&m, cs[q.to].after.as_ref().unwrap()));
                prop_assert_eq!(q.similarity == 100, a == b, "100% means identical");
                prop_assert!(q.similarity >= min);
            }
            // Exact renames always found: for every content, as many exact
            // pairs as the fewer of its deletions and creations.
            let mut src: HashMap<Vec<u8>, usize> = HashMap::new();
            let mut dst: HashMap<Vec<u8>, usize> = HashMap::new();
            for c in &cs {
                if c.kind() == ChangeKind::Removed && eligible(c, c.before.as_ref()) {
                    *src.entry(content_key(&m, c.before.as_ref().unwrap())).or_default() += 1;
                }
                if c.kind() == ChangeKind::Added && eligible(c, c.after.as_ref()) {
                    *dst.entry(content_key(&m, c.after.as_ref().unwrap())).or_default() += 1;
                }
            }
            for (k, n) in &src {
                let exact = p.pairs.iter().filter(|q| q.similarity == 100
                    && content_key(&m, cs[q.from].before.as_ref().unwrap()) == *k).count();
                prop_assert_eq!(exact, (*n).min(dst.get(k).copied().unwrap_or(0)));
            }
            // Nothing hidden: every change is in exactly one row, and the
            // rename rows are the pairs.
            let mut marked = cs.clone();
            apply_pairing(&mut marked, &p);
            let all: Vec<usize> = (0..cs.len()).collect();
            let rs = rows(&marked, &all, 0);
            let mut covered: Vec<usize> = rs.iter().flat_map(|r| match *r {
                Row::One(i) => vec![i],
                Row::Renamed { from, to, .. } => vec![from, to],
            }).collect();
            covered.sort_unstable();
            prop_assert_eq!(&covered, &all);
            prop_assert_eq!(rs.iter().filter(|r| matches!(r, Row::Renamed { .. })).count(), p.pairs.len());
            // A stricter threshold only drops pairs (what `ws diff -M` relies on).
            if min >= DEFAULT_MIN_SIMILARITY {
                let base = pair_renames(&cs, &RenameOptions::default(), &mut m).unwrap();
                let mut kept: Vec<Pair> = base.pairs.into_iter().filter(|q| q.similarity >= min).collect();
                let mut got = p.pairs.clone();
                kept.sort_by_key(|q| (q.from, q.to));
                got.sort_by_key(|q| (q.from, q.to));
                prop_assert_eq!(kept, got);
            }
        }
    }
}
