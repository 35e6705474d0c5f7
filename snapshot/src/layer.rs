//! A snapshot stored as what changed over a whole one: the directories a
//! scoped walk listed or passed through, and what it found there
//! (`WSLAYER2`; `WSLAYER1`, without directories passed through, is read).
//!
//! A layer answers for the entries of its base whose parent it `listed`
//! (their listing is the layer's), for those it holds in a directory it
//! `passed` through (the subdirectories on the way to a change), and for
//! every entry below a directory in `whole` (walked whole, or gone); every
//! other entry is the base's. Two
//! layers over one base are one: their sets joined, the older one's entries
//! kept where the newer does not answer. So a session that changes ten
//! files in a workspace of a million stores and reads what it changed, and
//! the listing of the directories on the way, not the million.
//!
//! A layer is kept only while it is small beside its base (see
//! [`Layer::fits`]); past that the whole snapshot is written again.

use std::collections::HashSet;
use std::path::Path;

use crate::error::ManifestError;
use crate::manifest::{Entry, ManifestId, Reader, Writer, decode_entries, encode_entries};
use crate::path::RelPath;

pub(crate) const MAGIC: &[u8; 8] = b"WSLAYER2";
/// Layers without directories passed through.
const MAGIC_1: &[u8; 8] = b"WSLAYER1";

/// Directories a layer may name at most, and how deep: a layer past these
/// is written as a whole snapshot (its lookups cost its depth).
const DIRS_MAX: usize = 65_536;
const DEPTH_MAX: usize = 64;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Layer {
    /// Directories whose children are the layer's.
    listed: HashSet<Vec<u8>>,
    /// Directories everything below which is the layer's.
    whole: HashSet<Vec<u8>>,
    /// Directories passed through: the children of theirs the layer holds
    /// are the layer's, the others the base's.
    passed: HashSet<Vec<u8>>,
    /// Components of the deepest directory named.
    depth: usize,
    /// What is there, sorted by path.
    pub(crate) entries: Vec<Entry>,
}

fn components(p: &[u8]) -> usize {
    if p.is_empty() { 0 } else { 1 + p.iter().filter(|b| **b == b'/').count() }
}

fn parent(p: &[u8]) -> &[u8] {
    p.iter().rposition(|b| *b == b'/').map_or(&[][..], |i| &p[..i])
}

impl Layer {
    pub(crate) fn new(
        listed: HashSet<Vec<u8>>,
        whole: HashSet<Vec<u8>>,
        passed: HashSet<Vec<u8>>,
        entries: Vec<Entry>,
    ) -> Layer {
        let depth = listed.iter().chain(&whole).chain(&passed).map(|p| components(p)).max().unwrap_or(0);
        Layer { listed, whole, passed, depth, entries }
    }

    /// Whether the entry at `path` is the layer's to give (or to leave out).
    pub(crate) fn answers(&self, path: &[u8]) -> bool {
        let dir = parent(path);
        self.listed.contains(dir)
            || self.whole.contains(&b""[..])
            || (self.passed.contains(dir) && self.holds(path))
            || self.under_whole(path)
    }

    /// Whether the layer has an entry at `path`.
    fn holds(&self, path: &[u8]) -> bool {
        self.find(path).is_some()
    }

    /// The layer's entry at `path`, whether it answers for it or not.
    fn find(&self, path: &[u8]) -> Option<&Entry> {
        self.entries.binary_search_by(|e| e.path.as_bytes().cmp(path)).ok().map(|i| &self.entries[i])
    }

    /// Whether a directory above `path` is in `whole`.
    fn under_whole(&self, path: &[u8]) -> bool {
        // Its directories, down to the deepest the layer names.
        let mut seen = 0;
        for (i, b) in path.iter().enumerate() {
            if *b == b'/' {
                if self.whole.contains(&path[..i]) {
                    return true;
                }
                seen += 1;
                if seen >= self.depth {
                    break;
                }
            }
        }
        false
    }

    /// Whether the children of `dir` are all the layer's.
    pub(crate) fn answers_below(&self, dir: &[u8]) -> bool {
        self.listed.contains(dir)
            || self.whole.contains(&b""[..])
            || (!dir.is_empty() && self.under_whole(&[dir, b"/x"].concat()))
    }

    /// The layer's entries directly in `dir`.
    pub(crate) fn children<'a>(&'a self, dir: &'a [u8]) -> impl Iterator<Item = &'a Entry> {
        self.below(dir).filter(move |e| parent(e.path.as_bytes()) == dir)
    }

    /// The layer's entries below `dir` (every one for the root).
    pub(crate) fn below(&self, dir: &[u8]) -> impl Iterator<Item = &Entry> {
        let prefix = crate::manifest::dir_prefix(dir);
        let start = self.entries.partition_point(|e| e.path.as_bytes() < prefix.as_slice());
        self.entries[start..].iter().take_while(move |e| e.path.as_bytes().starts_with(&prefix))
    }

    /// The layer's entry at `path`, when it answers for it (`Some(None)`:
    /// there is none).
    pub(crate) fn get(&self, path: &[u8]) -> Option<Option<&Entry>> {
        self.answers(path).then(|| self.find(path))
    }

    /// This layer with `newer` over it.
    pub(crate) fn then(self, newer: Layer) -> Layer {
        let mut entries: Vec<Entry> = self.entries.into_iter().filter(|e| !newer.answers(e.path.as_bytes())).collect();
        entries.extend(newer.entries);
        entries.sort_unstable_by(|a, b| a.path.cmp(&b.path));
        let mut listed = self.listed;
        listed.extend(newer.listed);
        let mut whole = self.whole;
        whole.extend(newer.whole);
        let mut passed = self.passed;
        passed.extend(newer.passed);
        Layer::new(listed, whole, passed, entries)
    }

    /// This layer over `older` (the one already over the same base), when
    /// the two are small enough beside a base of `base_entries` to be kept
    /// as a layer.
    pub(crate) fn joined(self, older: Option<&Layer>, base_entries: u64) -> Option<Layer> {
        let layer = match older {
            Some(o) => o.clone().then(self),
            None => self,
        };
        layer.fits(base_entries).then_some(layer)
    }

    /// Small enough beside a base of `base_entries` to be kept as a layer.
    pub(crate) fn fits(&self, base_entries: u64) -> bool {
        self.listed.len() + self.whole.len() + self.passed.len() <= DIRS_MAX
            && self.depth <= DEPTH_MAX
            && (self.entries.len() as u64) <= (base_entries / 8).max(4096)
    }

    pub(crate) fn encode(&self, base: &ManifestId, started_ns: i64) -> Vec<u8> {
        self.encode_as(MAGIC, &[&self.listed, &self.whole, &self.passed], base, started_ns)
    }

    /// The layer's bytes, under `magic`, with these of its sets.
    fn encode_as(&self, magic: &[u8; 8], sets: &[&HashSet<Vec<u8>>], base: &ManifestId, started_ns: i64) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(64 + self.entries.len() * 96));
        w.0.extend_from_slice(magic);
        w.i64(started_ns);
        w.bytes(base.0.as_bytes());
        for set in sets {
            let mut sorted: Vec<&Vec<u8>> = set.iter().collect();
            sorted.sort();
            w.u64(sorted.len() as u64);
            for p in sorted {
                w.bytes(p);
            }
        }
        w.u64(self.entries.len() as u64);
        encode_entries(&mut w, RelPath::root(), &self.entries);
        w.sealed()
    }

    /// (base, started_ns, layer) from a layer's bytes.
    pub(crate) fn decode(bytes: &[u8], origin: &Path) -> Result<(ManifestId, i64, Layer), ManifestError> {
        let corrupt = |offset, what| ManifestError::Corrupt { path: origin.to_path_buf(), offset, what };
        if bytes.len() < MAGIC.len() + 32 || !is_layer(bytes) {
            return Err(corrupt(0, "not a ws layer"));
        }
        let sets_held = if bytes.starts_with(MAGIC_1) { 2 } else { 3 };
        let (body, sum) = bytes.split_at(bytes.len() - 32);
        if blake3::hash(body).as_bytes() != sum {
            return Err(corrupt(body.len(), "checksum mismatch (truncated or edited)"));
        }
        let at = |(o, w): (usize, &'static str)| corrupt(o, w);
        let mut r = Reader { buf: body, pos: MAGIC.len() };
        let started_ns = r.i64().map_err(at)?;
        let base = r.bytes().map_err(at)?;
        let base = std::str::from_utf8(base)
            .ok()
            .filter(|b| b.len() == 32 && b.bytes().all(|c| c.is_ascii_hexdigit()))
            .ok_or_else(|| corrupt(MAGIC.len() + 8, "invalid base id"))?;
        let mut sets = [HashSet::new(), HashSet::new(), HashSet::new()];
        for set in sets.iter_mut().take(sets_held) {
            let n = r.u64().map_err(at)?;
            for _ in 0..n.min(body.len() as u64) {
                let p = r.bytes().map_err(at)?;
                if !p.is_empty() && RelPath::from_bytes(p).is_none() {
                    return Err(corrupt(r.pos, "invalid directory"));
                }
                set.insert(p.to_vec());
            }
        }
        let count = r.u64().map_err(at)?;
        // Each entry takes bytes: a count past them fails on the way.
        let entries = decode_entries(&mut r, b"", count, Vec::new()).map_err(at)?;
        if r.pos != body.len() || entries.len() as u64 != count {
            return Err(corrupt(r.pos, "trailing bytes after the last entry"));
        }
        if !entries.windows(2).all(|w| w[0].path < w[1].path) {
            return Err(corrupt(MAGIC.len(), "entries out of order"));
        }
        let [listed, whole, passed] = sets;
        let layer = Layer::new(listed, whole, passed, entries);
        if layer.depth > DEPTH_MAX || layer.listed.len() + layer.whole.len() + layer.passed.len() > DIRS_MAX {
            return Err(corrupt(MAGIC.len(), "a layer past its bounds"));
        }
        if layer.entries.iter().any(|e| !layer.answers(e.path.as_bytes())) {
            return Err(corrupt(MAGIC.len(), "an entry the layer does not answer for"));
        }
        Ok((ManifestId(base.to_string()), started_ns, layer))
    }
}

/// Whether `bytes` are a layer's.
pub(crate) fn is_layer(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC) || bytes.starts_with(MAGIC_1)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::manifest::EntryKind;
    use crate::stat::FileStat;

    fn set(ps: &[&str]) -> HashSet<Vec<u8>> {
        ps.iter().map(|p| p.as_bytes().to_vec()).collect()
    }

    fn entry(p: &str) -> Entry {
        Entry {
            path: RelPath::from_bytes(p.as_bytes()).unwrap(),
            kind: EntryKind::Dir,
            stat: FileStat::default(),
            racy: false,
        }
    }

    #[test]
    fn a_layer_answers_for_the_listings_it_holds_and_below_what_it_holds_whole() {
        let l = Layer::new(set(&["", "a", "a/b"]), set(&["a/gone", "n"]), set(&[]), vec![entry("a"), entry("a/b")]);
        for yes in ["a", "z", "a/b", "a/c", "a/b/c", "a/gone/x", "a/gone/x/y", "n/q"] {
            assert!(l.answers(yes.as_bytes()), "{yes}");
        }
        for no in ["a/c/d", "z/y", "a/gonex/y", "nn/q", "a/b/c/d"] {
            assert!(!l.answers(no.as_bytes()), "{no}");
        }
        assert!(l.answers_below(b"a") && l.answers_below(b"n") && l.answers_below(b"a/gone/x"));
        assert!(!l.answers_below(b"a/c"));
    }

    /// A directory passed through: the layer answers for the children it
    /// holds there (those on the way), the base for the others.
    #[test]
    fn a_layer_answers_in_a_passed_directory_for_what_it_holds() {
        let l = Layer::new(set(&["t/d"]), set(&[]), set(&["", "t"]), vec![entry("t"), entry("t/d"), entry("t/d/f")]);
        for yes in ["t", "t/d", "t/d/f", "t/d/new"] {
            assert!(l.answers(yes.as_bytes()), "{yes}");
        }
        for no in ["u", "t/e", "t/x", "t/e/f"] {
            assert!(!l.answers(no.as_bytes()), "{no}");
        }
        // A child named like answers_below's probe is no reason to answer below.
        let x = Layer::new(set(&[]), set(&[]), set(&["p"]), vec![entry("p/x")]);
        assert!(x.answers(b"p/x") && !x.answers_below(b"p") && !x.answers(b"p/y"));
        let kids: Vec<&[u8]> = l.children(b"t").map(|e| e.path.as_bytes()).collect();
        assert_eq!(kids, [&b"t/d"[..]]);
        assert_eq!(l.get(b"t/d").map(|e| e.map(|e| e.path.as_bytes().to_vec())), Some(Some(b"t/d".to_vec())));
        assert_eq!(l.get(b"t/e"), None);
        assert_eq!(l.get(b"t/d/gone"), Some(None));
        // Joined: an older layer's passed entries stay where the newer does not answer.
        let newer =
            Layer::new(set(&["t/e"]), set(&[]), set(&["", "t"]), vec![entry("t"), entry("t/e"), entry("t/e/g")]);
        let both = l.clone().then(newer);
        let paths: Vec<&[u8]> = both.entries.iter().map(|e| e.path.as_bytes()).collect();
        assert_eq!(paths, [&b"t"[..], b"t/d", b"t/d/f", b"t/e", b"t/e/g"]);
        assert!(both.answers(b"t/d") && both.answers(b"t/e") && !both.answers(b"t/x"));
    }

    /// A layer written before directories were passed through is read.
    #[test]
    fn a_first_version_layer_is_read() {
        let l = Layer::new(set(&["", "a"]), set(&["a/w"]), set(&[]), vec![entry("a"), entry("a/b"), entry("a/w")]);
        let id = ManifestId("0123456789abcdef0123456789abcdef".into());
        let bytes = l.encode_as(MAGIC_1, &[&l.listed, &l.whole], &id, 7);
        assert!(is_layer(&bytes));
        assert_eq!(Layer::decode(&bytes, Path::new("l")).unwrap(), (id, 7, l));
    }

    #[test]
    fn two_layers_are_one_with_the_newer_over_the_older() {
        let old = Layer::new(set(&["", "a"]), set(&[]), set(&[]), vec![entry("a"), entry("a/x"), entry("b")]);
        let new = Layer::new(set(&["", "b"]), set(&["a"]), set(&[]), vec![entry("a"), entry("b"), entry("b/y")]);
        let both = old.then(new);
        let paths: Vec<&[u8]> = both.entries.iter().map(|e| e.path.as_bytes()).collect();
        assert_eq!(paths, [&b"a"[..], b"b", b"b/y"], "a/x is below a, which the newer holds whole");
        assert!(both.answers(b"a/anything/deep") && both.answers(b"b/z") && !both.answers(b"c/d"));
    }

    #[test]
    fn layers_round_trip_and_damage_is_refused() {
        let l = Layer::new(
            set(&["", "a"]),
            set(&["a/w"]),
            set(&["p"]),
            vec![entry("a"), entry("a/b"), entry("a/w"), entry("p/q")],
        );
        let id = ManifestId("0123456789abcdef0123456789abcdef".into());
        let bytes = l.encode(&id, 7);
        assert_eq!(Layer::decode(&bytes, Path::new("l")).unwrap(), (id, 7, l));
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x20;
            assert!(Layer::decode(&b, Path::new("l")).is_err(), "flip at {i}");
        }
        // An entry it does not answer for (written by no layer of ours).
        let odd = Layer::new(set(&["a"]), set(&[]), set(&[]), vec![entry("c/d")]);
        let bytes = odd.encode(&ManifestId("0123456789abcdef0123456789abcdef".into()), 0);
        assert!(Layer::decode(&bytes, Path::new("l")).is_err());
    }
}
