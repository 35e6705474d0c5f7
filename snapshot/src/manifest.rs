//! Manifests: the complete listing of one snapshot, and their binary form.
//!
//! The encoding is length-prefixed little-endian with a trailing BLAKE3 of the
//! body, so a damaged or truncated manifest is detected and the error names the
//! byte where reading stopped. Paths are raw bytes: any name the kernel allows
//! round-trips. Each path is front-coded against the one before it (the
//! directory they share, then the rest), so a tree N directories deep costs
//! O(N) bytes, not the O(N²) of a full path per entry.
//!
//! After the entries, an index lets a session read only the entries it
//! needs ([`crate::ManifestFile`]): for every [`BLOCK`] entries, the path
//! before them (front-coded against the one before it), where they are and
//! a BLAKE3 of their bytes; then the entries of files with several names
//! and the excluded entries, which a session needs whole; then where each
//! of those parts starts and a BLAKE3 of all three and the header. The trailing BLAKE3 of
//! everything stays: a manifest read whole is checked whole.

use std::path::Path;

use crate::error::ManifestError;
use crate::path::{FrontDecoder, RelPath, front_code, share_prefixes};
use crate::stat::FileStat;
use crate::store::ObjectId;

pub(crate) const MAGIC: &[u8; 8] = b"WSMANIF4";
/// Manifests without an index: read (the latest snapshot and pending
/// sessions may name them), never written.
const MAGIC_V3: &[u8; 8] = b"WSMANIF3";
/// Manifests with a full path per entry, written before front coding: read,
/// never written.
const MAGIC_V2: &[u8; 8] = b"WSMANIF2";

/// Entries per indexed block.
pub(crate) const BLOCK: usize = 64;
/// Magic, start time and entry count.
pub(crate) const HEADER: usize = 8 + 8 + 8;
/// The index's offsets and hash before the trailing BLAKE3: three u64 and 32 bytes.
pub(crate) const TAIL: usize = 3 * 8 + 32;

/// Content-derived id of a manifest (hex of a BLAKE3 prefix).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ManifestId(pub String);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExcludeReason {
    /// Ignored by git and over the [`crate::Budget`].
    OverBudget,
    /// A socket, FIFO or device node: not content a snapshot can keep.
    Special,
    /// The walk could not read it (permission denied).
    Unreadable,
    /// Changed, but its content could not be stored: the disk was full
    /// (a snapshot taken by [`crate::walk_unstored`]).
    NoSpace,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    File {
        object: ObjectId,
        /// BLAKE3 of the content, when the content was read (copy path) or
        /// compared; the clone path never reads content it does not need.
        hash: Option<[u8; 32]>,
    },
    Symlink {
        target: Vec<u8>,
    },
    Dir,
    /// Left out of the snapshot; counts are lower bounds when the walk stopped early.
    Excluded {
        reason: ExcludeReason,
        files: u64,
        bytes: u64,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub path: RelPath,
    pub kind: EntryKind,
    pub stat: FileStat,
    /// Modified so close to the snapshot that a later change could keep the
    /// same timestamps: never trusted by the stat cache.
    pub racy: bool,
}

impl Entry {
    pub fn is_dir(&self) -> bool {
        matches!(self.kind, EntryKind::Dir)
    }

    pub fn is_excluded(&self) -> bool {
        matches!(self.kind, EntryKind::Excluded { .. })
    }

    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            EntryKind::File { .. } => "file",
            EntryKind::Symlink { .. } => "symlink",
            EntryKind::Dir => "directory",
            EntryKind::Excluded { .. } => "excluded",
        }
    }

    /// Same kind, same permissions, same symlink target: everything but the
    /// bytes of a regular file, which need [`EntryKind::File::hash`] or a read.
    pub fn same_shape(&self, other: &Entry) -> bool {
        match (&self.kind, &other.kind) {
            (EntryKind::File { .. }, EntryKind::File { .. }) => {
                self.stat.perm() == other.stat.perm() && self.stat.size == other.stat.size
            }
            (EntryKind::Symlink { target: a }, EntryKind::Symlink { target: b }) => a == b,
            (EntryKind::Dir, EntryKind::Dir) => self.stat.perm() == other.stat.perm(),
            (EntryKind::Excluded { .. }, EntryKind::Excluded { .. }) => true,
            _ => false,
        }
    }
}

/// One snapshot: entries sorted by path bytes, and the filesystem time at which
/// the walk began (entries modified at or after it are racy).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    pub started_ns: i64,
    pub entries: Vec<Entry>,
    /// The id it is stored under, when it was read from a store.
    pub id: Option<ManifestId>,
}

/// The entry for `path` in `entries`, sorted by path (a whole manifest or a
/// run of it from [`Manifest::below`]).
pub fn find<'a>(entries: &'a [Entry], path: &RelPath) -> Option<&'a Entry> {
    entries.binary_search_by(|e| e.path.cmp(path)).ok().map(|i| &entries[i])
}

impl Manifest {
    pub fn get(&self, path: &RelPath) -> Option<&Entry> {
        find(&self.entries, path)
    }

    /// The entries below directory `dir` (every entry for the root): a
    /// contiguous run, as entries sort by their paths' bytes and every path
    /// that starts with `dir/` sorts together. Looking a directory's children
    /// up in it costs a few comparisons instead of a search of everything.
    pub fn below(&self, dir: &RelPath) -> &[Entry] {
        &self.entries[self.below_range(dir.as_bytes())]
    }

    /// Where [`Manifest::below`]'s entries are, by index.
    pub fn below_range(&self, dir: &[u8]) -> std::ops::Range<usize> {
        let prefix = dir_prefix(dir);
        let start = self.entries.partition_point(|e| e.path.as_bytes() < prefix.as_slice());
        let len = self.entries[start..].partition_point(|e| e.path.as_bytes().starts_with(&prefix));
        start..start + len
    }

    /// Sorts the entries by path, and makes each path that is a prefix of
    /// the next a view of its bytes (a chain of directories holds one buffer).
    pub fn sort(&mut self) {
        self.entries.sort_unstable_by(|a, b| a.path.cmp(&b.path));
        share_prefixes(self.entries.iter_mut().map(|e| &mut e.path));
    }

    pub fn excluded(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(|e| e.is_excluded())
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(64 + self.entries.len() * 96));
        w.0.extend_from_slice(MAGIC);
        w.i64(self.started_ns);
        w.u64(self.entries.len() as u64);
        let mut prev = RelPath::root();
        // (the path before the block, where it starts, its length, entries, hash)
        let mut blocks = Vec::with_capacity(self.entries.len().div_ceil(BLOCK));
        for block in self.entries.chunks(BLOCK) {
            let (seed, start) = (prev.clone(), w.0.len());
            prev = encode_entries(&mut w, prev, block);
            let hash = blake3::hash(&w.0[start..]);
            blocks.push((seed, start, w.0.len() - start, block.len(), hash));
        }
        let index_at = w.0.len();
        w.u64(blocks.len() as u64);
        let mut prev_seed = RelPath::root();
        for (seed, start, len, count, hash) in &blocks {
            // The first block's seed is the root: no path to code.
            if !seed.is_root() {
                w.front_coded(&prev_seed, seed);
            }
            w.u64(*start as u64);
            w.u64(*len as u64);
            w.u32(*count as u32);
            w.0.extend_from_slice(&hash.as_bytes()[..16]);
            prev_seed = seed.clone();
        }
        let linked_at = w.0.len();
        let linked: Vec<&Entry> = self.entries.iter().filter(|e| is_linked(e)).collect();
        w.u64(linked.len() as u64);
        for e in linked {
            encode_entry_full(&mut w, e);
        }
        let excluded_at = w.0.len();
        let excluded: Vec<&Entry> = self.excluded().collect();
        w.u64(excluded.len() as u64);
        for e in excluded {
            encode_entry_full(&mut w, e);
        }
        // The header too: a session reading in part reads it with the index.
        let meta = blake3::Hasher::new().update(&w.0[..HEADER]).update(&w.0[index_at..]).finalize();
        w.u64(index_at as u64);
        w.u64(linked_at as u64);
        w.u64(excluded_at as u64);
        w.0.extend_from_slice(meta.as_bytes());
        w.sealed()
    }

    /// The format before the index, for tests of reading it.
    #[cfg(test)]
    pub(crate) fn encode_v3(&self) -> Vec<u8> {
        let mut w = Writer(MAGIC_V3.to_vec());
        w.i64(self.started_ns);
        w.u64(self.entries.len() as u64);
        encode_entries(&mut w, RelPath::root(), &self.entries);
        w.sealed()
    }

    /// The format before front coding (a full path per entry), for tests of
    /// reading it.
    #[cfg(test)]
    pub(crate) fn encode_v2(&self) -> Vec<u8> {
        let mut w = Writer(MAGIC_V2.to_vec());
        w.i64(self.started_ns);
        w.u64(self.entries.len() as u64);
        for e in &self.entries {
            encode_entry_full(&mut w, e);
        }
        w.sealed()
    }

    pub fn decode(bytes: &[u8], origin: &Path) -> Result<Manifest, ManifestError> {
        let corrupt = |offset, what| ManifestError::Corrupt { path: origin.to_path_buf(), offset, what };
        let indexed = bytes.starts_with(MAGIC);
        let front_coded = indexed || bytes.starts_with(MAGIC_V3);
        if bytes.len() < MAGIC.len() + 32 || !(front_coded || bytes.starts_with(MAGIC_V2)) {
            return Err(corrupt(0, "not a ws manifest"));
        }
        let (body, sum) = bytes.split_at(bytes.len() - 32);
        if blake3::hash(body).as_bytes() != sum {
            return Err(corrupt(body.len(), "checksum mismatch (truncated or edited)"));
        }
        // The entries end where the index starts (its content is derived from them).
        let body = if indexed {
            let tail = body.len().checked_sub(TAIL).ok_or((0, "no index")).map_err(|(o, w)| corrupt(o, w))?;
            let index_at = Reader { buf: body, pos: tail }.u64().map_err(|(o, w)| corrupt(o, w))?;
            let index_at = usize::try_from(index_at).ok().filter(|i| *i <= tail && *i >= MAGIC.len());
            &body[..index_at.ok_or_else(|| corrupt(tail, "index out of bounds"))?]
        } else {
            body
        };
        let mut r = Reader { buf: body, pos: MAGIC.len() };
        let started_ns = r.i64().map_err(|(o, w)| corrupt(o, w))?;
        let count = r.u64().map_err(|(o, w)| corrupt(o, w))?;
        // Bounded by the bytes there are, not by the count claimed.
        let mut entries = Vec::with_capacity(count.min(body.len() as u64 / MIN_ENTRY) as usize);
        if front_coded {
            entries = decode_entries(&mut r, b"", count, entries).map_err(|(o, w)| corrupt(o, w))?;
        } else {
            for _ in 0..count {
                entries.push(decode_entry(&mut r).map_err(|(o, w)| corrupt(o, w))?);
            }
        }
        if r.pos != body.len() {
            return Err(corrupt(r.pos, "trailing bytes after the last entry"));
        }
        let sorted = entries.windows(2).all(|w| w[0].path < w[1].path);
        if !sorted {
            return Err(corrupt(MAGIC.len(), "entries out of order"));
        }
        Ok(Manifest { started_ns, entries, id: None })
    }
}

/// What every path below `dir` starts with (nothing for the root).
pub(crate) fn dir_prefix(dir: &[u8]) -> Vec<u8> {
    if dir.is_empty() { Vec::new() } else { [dir, b"/"].concat() }
}

/// The fewest bytes an entry takes (front-coded path of one byte, stat
/// data, racy flag, the directory kind): what a claimed count is checked against.
const MIN_ENTRY: u64 = 4 + 4 + 1 + 8 * 6 + 4 + 1 + 1;

/// An entry with its full path (the format before front coding, and the
/// index's linked and excluded entries).
pub(crate) fn encode_entry_full(w: &mut Writer, e: &Entry) {
    w.bytes(e.path.as_bytes());
    encode_body(w, e);
}

/// A file the snapshot found with several names: a session looks at it
/// every time, whatever the record says (a name outside may have written it).
pub(crate) fn is_linked(e: &Entry) -> bool {
    !e.is_dir() && e.stat.nlink > 1
}

/// Entries one after the other, each path front-coded against the one
/// before (`prev` for the first: the root for a whole listing); the last path.
pub(crate) fn encode_entries(w: &mut Writer, mut prev: RelPath, entries: &[Entry]) -> RelPath {
    for e in entries {
        w.front_coded(&prev, &e.path);
        encode_body(w, e);
        prev = e.path.clone();
    }
    prev
}

/// `count` entries as [`encode_entries`] wrote them after the path `seed`,
/// appended to `into` (sized by the caller from the bytes there are).
pub(crate) fn decode_entries(
    r: &mut Reader,
    seed: &[u8],
    count: u64,
    mut into: Vec<Entry>,
) -> DecodeResult<Vec<Entry>> {
    let mut paths = FrontDecoder::seeded(seed);
    let first = into.len();
    for _ in 0..count {
        r.front_coded(&mut paths)?;
        into.push(decode_body(r, RelPath::root())?);
    }
    for (e, path) in into[first..].iter_mut().zip(paths.finish()) {
        e.path = path;
    }
    Ok(into)
}

/// Everything of an entry but its path (shared by the change set's format).
pub(crate) fn encode_body(w: &mut Writer, e: &Entry) {
    let s = &e.stat;
    w.u64(s.dev);
    w.u64(s.ino);
    w.u32(s.mode);
    w.u64(s.nlink);
    w.u64(s.size);
    w.i64(s.mtime_ns);
    w.i64(s.ctime_ns);
    w.u8(u8::from(e.racy));
    match &e.kind {
        EntryKind::File { object, hash } => {
            w.u8(0);
            w.0.extend_from_slice(object.as_bytes());
            match hash {
                Some(h) => {
                    w.u8(1);
                    w.0.extend_from_slice(h);
                }
                None => w.u8(0),
            }
        }
        EntryKind::Symlink { target } => {
            w.u8(1);
            w.bytes(target);
        }
        EntryKind::Dir => w.u8(2),
        EntryKind::Excluded { reason, files, bytes } => {
            w.u8(3);
            w.u8(match reason {
                ExcludeReason::OverBudget => 0,
                ExcludeReason::Special => 1,
                ExcludeReason::Unreadable => 2,
                ExcludeReason::NoSpace => 3,
            });
            w.u64(*files);
            w.u64(*bytes);
        }
    }
}

pub(crate) type DecodeResult<T> = Result<T, (usize, &'static str)>;

/// An entry with its full path: the format before front coding.
pub(crate) fn decode_entry(r: &mut Reader) -> DecodeResult<Entry> {
    let at = r.pos;
    let path = RelPath::from_bytes(r.bytes()?).ok_or((at, "invalid path"))?;
    if path.is_root() {
        return Err((at, "empty path"));
    }
    decode_body(r, path)
}

/// Everything of an entry but its path.
pub(crate) fn decode_body(r: &mut Reader, path: RelPath) -> DecodeResult<Entry> {
    let stat = FileStat {
        dev: r.u64()?,
        ino: r.u64()?,
        mode: r.u32()?,
        nlink: r.u64()?,
        size: r.u64()?,
        mtime_ns: r.i64()?,
        ctime_ns: r.i64()?,
    };
    let racy = r.u8()? != 0;
    let tag_at = r.pos;
    let kind = match r.u8()? {
        0 => {
            let object = ObjectId::from_bytes(r.array16()?);
            let hash = match r.u8()? {
                0 => None,
                1 => Some(r.array32()?),
                _ => return Err((r.pos - 1, "invalid hash flag")),
            };
            EntryKind::File { object, hash }
        }
        1 => EntryKind::Symlink { target: r.bytes()?.to_vec() },
        2 => EntryKind::Dir,
        3 => {
            let reason = match r.u8()? {
                0 => ExcludeReason::OverBudget,
                1 => ExcludeReason::Special,
                2 => ExcludeReason::Unreadable,
                3 => ExcludeReason::NoSpace,
                _ => return Err((r.pos - 1, "invalid exclusion reason")),
            };
            EntryKind::Excluded { reason, files: r.u64()?, bytes: r.u64()? }
        }
        _ => return Err((tag_at, "invalid entry kind")),
    };
    Ok(Entry { path, kind, stat, racy })
}

pub(crate) struct Writer(pub Vec<u8>);

impl Writer {
    /// The bytes written, with a BLAKE3 of them after.
    pub fn sealed(mut self) -> Vec<u8> {
        let sum = blake3::hash(&self.0);
        self.0.extend_from_slice(sum.as_bytes());
        self.0
    }
}

impl Writer {
    pub fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
    /// `path` front-coded against `prev` (see [`front_code`]).
    pub fn front_coded(&mut self, prev: &RelPath, path: &RelPath) {
        let (shared, rest) = front_code(prev, path);
        self.u32(shared as u32);
        self.bytes(rest);
    }
}

pub(crate) struct Reader<'a> {
    pub buf: &'a [u8],
    pub pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> DecodeResult<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or((self.pos, "length overflow"))?;
        let s = self.buf.get(self.pos..end).ok_or((self.pos, "unexpected end"))?;
        self.pos = end;
        Ok(s)
    }
    pub fn u8(&mut self) -> DecodeResult<u8> {
        Ok(self.take(1)?[0])
    }
    pub fn u32(&mut self) -> DecodeResult<u32> {
        let mut a = [0; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(a))
    }
    pub fn u64(&mut self) -> DecodeResult<u64> {
        let mut a = [0; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
    pub fn i64(&mut self) -> DecodeResult<i64> {
        Ok(self.u64()? as i64)
    }
    pub fn array16(&mut self) -> DecodeResult<[u8; 16]> {
        let mut a = [0; 16];
        a.copy_from_slice(self.take(16)?);
        Ok(a)
    }
    pub fn array32(&mut self) -> DecodeResult<[u8; 32]> {
        let mut a = [0; 32];
        a.copy_from_slice(self.take(32)?);
        Ok(a)
    }
    pub fn bytes(&mut self) -> DecodeResult<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    /// The next front-coded path, into `paths`.
    pub fn front_coded(&mut self, paths: &mut FrontDecoder) -> DecodeResult<()> {
        let at = self.pos;
        let shared = self.u32()? as usize;
        let rest = self.bytes()?;
        paths.push(shared, rest).map_err(|what| (at, what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        let stat = FileStat { dev: 1, ino: 2, mode: 0o100755, nlink: 1, size: 3, mtime_ns: 4, ctime_ns: 5 };
        Manifest {
            id: None,
            started_ns: 42,
            entries: vec![
                Entry {
                    path: RelPath::from_bytes(b"a\nb").unwrap(),
                    kind: EntryKind::File {
                        object: ObjectId::parse("0123456789abcdef0123456789abcdef").unwrap(),
                        hash: Some([7; 32]),
                    },
                    stat,
                    racy: true,
                },
                Entry { path: RelPath::from_bytes(b"d").unwrap(), kind: EntryKind::Dir, stat, racy: false },
                Entry {
                    path: RelPath::from_bytes(b"l\xff").unwrap(),
                    kind: EntryKind::Symlink { target: b"/etc/passwd".to_vec() },
                    stat,
                    racy: false,
                },
                Entry {
                    path: RelPath::from_bytes(b"target").unwrap(),
                    kind: EntryKind::Excluded { reason: ExcludeReason::OverBudget, files: 9, bytes: 10 },
                    stat,
                    racy: false,
                },
            ],
        }
    }

    #[test]
    fn below_a_directory_is_every_path_under_it_and_nothing_else() {
        let stat = FileStat { dev: 1, ino: 2, mode: 0o40755, nlink: 1, size: 0, mtime_ns: 0, ctime_ns: 0 };
        // Names that sort between `d` and `d/…` (`-` and `.` are below `/`)
        // or after it (`0`), and a deeper path.
        let names: [&[u8]; 9] = [b"c", b"d", b"d-x", b"d.y", b"d/a", b"d/a/b", b"d/z", b"d0", b"e"];
        let mut m = Manifest {
            id: None,
            started_ns: 0,
            entries: names
                .iter()
                .map(|n| Entry { path: RelPath::from_bytes(n).unwrap(), kind: EntryKind::Dir, stat, racy: false })
                .collect(),
        };
        m.sort();
        let paths = |dir: &[u8]| -> Vec<Vec<u8>> {
            let dir = if dir.is_empty() { RelPath::root() } else { RelPath::from_bytes(dir).unwrap() };
            m.below(&dir).iter().map(|e| e.path.as_bytes().to_vec()).collect()
        };
        assert_eq!(paths(b"d"), [b"d/a".to_vec(), b"d/a/b".to_vec(), b"d/z".to_vec()]);
        assert_eq!(paths(b"d/a"), [b"d/a/b".to_vec()]);
        assert!(paths(b"c").is_empty() && paths(b"nowhere").is_empty());
        assert_eq!(paths(b"").len(), names.len());
        let d = RelPath::from_bytes(b"d").unwrap();
        assert!(find(m.below(&d), &RelPath::from_bytes(b"d/z").unwrap()).is_some());
        assert!(find(m.below(&d), &RelPath::from_bytes(b"d0").unwrap()).is_none());
    }

    #[test]
    fn round_trips() {
        let m = sample();
        let back = Manifest::decode(&m.encode(), Path::new("m")).unwrap();
        assert_eq!(back, m);
    }

    /// A chain of directories N deep (and a file at its bottom and beside
    /// each level): the manifest holds each name once, and the decoded
    /// chain shares one buffer, so bytes grow with N, not N².
    #[test]
    fn a_deep_chain_costs_its_entry_count_not_its_depth_squared() {
        const N: usize = 5_000;
        let stat = FileStat { dev: 1, ino: 2, mode: 0o40755, nlink: 1, size: 0, mtime_ns: 0, ctime_ns: 0 };
        let mut m = Manifest::default();
        let mut dir = RelPath::root();
        for _ in 0..N {
            dir = dir.join(b"d");
            m.entries.push(Entry { path: dir.clone(), kind: EntryKind::Dir, stat, racy: false });
        }
        let file =
            Entry { path: dir.join(b"bottom"), kind: EntryKind::Symlink { target: b"x".to_vec() }, stat, racy: false };
        m.entries.push(file);
        m.sort();
        let shared = m.entries[..N].iter().all(|e| e.path.buffer_len() == m.entries[N].path.buffer_len());
        assert!(shared, "sorting left the chain in separate buffers");
        let bytes = m.encode();
        assert!(bytes.len() < (N + 1) * 80, "{} bytes for {} entries", bytes.len(), N + 1);
        let back = Manifest::decode(&bytes, Path::new("m")).unwrap();
        assert_eq!(back, m);
        let held: usize =
            back.entries.iter().map(|e| e.path.buffer_len()).collect::<std::collections::BTreeSet<_>>().iter().sum();
        assert!(held <= 2 * N + 7, "{held} bytes of paths held for a chain of {N}");
    }

    #[test]
    fn manifests_with_full_paths_still_read() {
        let m = sample();
        assert_eq!(Manifest::decode(&m.encode_v2(), Path::new("m")).unwrap(), m);
    }

    /// Front coding against a path that is not a directory of the previous
    /// one (`ab` after `a`: no shared directory) and names that sort
    /// between a directory and its children (`d-x` between `d` and `d/a`).
    #[test]
    fn front_coding_shares_whole_directories_only() {
        let p = |b: &[u8]| RelPath::from_bytes(b).unwrap();
        assert_eq!(front_code(&p(b"a"), &p(b"ab")), (0, &b"ab"[..]));
        assert_eq!(front_code(&p(b"a"), &p(b"a/b")), (1, &b"b"[..]));
        assert_eq!(front_code(&p(b"d/a/b"), &p(b"d/z")), (1, &b"z"[..]));
        assert_eq!(front_code(&p(b"d/ab"), &p(b"d/a/c")), (1, &b"a/c"[..]));
        assert_eq!(front_code(&RelPath::root(), &p(b"x")), (0, &b"x"[..]));
        let mut d = FrontDecoder::default();
        assert!(d.push(0, b"d").is_ok() && d.push(1, b"a").is_ok());
        assert!(d.push(2, b"x").is_err(), "shared a part of a name");
        assert!(d.push(4, b"x").is_err(), "shared more than the previous path");
        assert!(d.push(1, b"").is_err() && d.push(1, b"..").is_err() && d.push(0, b"a//b").is_err());
        assert!(d.push(1, b"z/y").is_ok());
        let got: Vec<_> = d.finish().iter().map(|p| p.as_bytes().to_vec()).collect();
        assert_eq!(got, [b"d".to_vec(), b"d/a".to_vec(), b"d/z/y".to_vec()]);
    }

    #[test]
    fn every_truncation_and_bit_flip_is_an_error_not_a_panic() {
        let bytes = sample().encode();
        for n in 0..bytes.len() {
            assert!(Manifest::decode(&bytes[..n], Path::new("m")).is_err());
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            assert!(Manifest::decode(&b, Path::new("m")).is_err(), "flip at {i} accepted");
        }
    }
}
