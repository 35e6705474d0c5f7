//! A stored manifest read in part: its index, the entries of files with
//! several names and the excluded ones, then only the blocks a session asks
//! about. A session on a large, little-changed workspace reads what it
//! looks at, not the whole listing ([`crate::changed::Scoped`]); each block
//! is checked against the BLAKE3 the index holds for it, and the index
//! against its own.

use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::ManifestError;
use crate::layer::Layer;
use crate::manifest::{
    BLOCK, Entry, HEADER, MAGIC, Manifest, ManifestId, Reader, TAIL, decode_entries, decode_entry, dir_prefix,
};
use crate::path::{FrontDecoder, RelPath};

/// One block of entries, as the index describes it.
#[derive(Debug)]
struct Block {
    /// The last path before the block (the root for the first): where its
    /// front coding starts.
    seed: RelPath,
    offset: u64,
    len: u64,
    count: u32,
    hash: [u8; 16],
}

/// A manifest read through its index ([`crate::Store::manifest_file`]).
#[derive(Debug)]
pub struct ManifestFile {
    pub id: ManifestId,
    pub started_ns: i64,
    /// Entries in all.
    pub count: u64,
    /// Files with several names ([`crate::manifest::is_linked`]), sorted.
    pub linked: Vec<Entry>,
    /// Excluded entries, sorted.
    pub excluded: Vec<Entry>,
    path: PathBuf,
    file: std::fs::File,
    blocks: Vec<Block>,
    /// The blocks read last.
    cache: Mutex<Vec<(usize, Arc<Vec<Entry>>)>>,
}

/// Blocks kept decoded.
const CACHED: usize = 8;

impl ManifestFile {
    /// `Ok(None)`: a manifest of a format without an index (read it whole).
    pub fn open(path: &Path, id: ManifestId) -> Result<Option<ManifestFile>, ManifestError> {
        let read = |source| ManifestError::Read { path: path.to_path_buf(), source };
        let corrupt = |offset, what| ManifestError::Corrupt { path: path.to_path_buf(), offset, what };
        let file = std::fs::File::open(path).map_err(read)?;
        let size = file.metadata().map_err(read)?.len();
        let mut head = [0u8; HEADER];
        if size < (head.len() + TAIL + 32) as u64 {
            return Ok(None);
        }
        file.read_exact_at(&mut head, 0).map_err(read)?;
        if &head[..MAGIC.len()] != MAGIC {
            return Ok(None);
        }
        let started_ns = i64::from_le_bytes(head[8..16].try_into().unwrap_or_default());
        let count = u64::from_le_bytes(head[16..24].try_into().unwrap_or_default());
        let tail_at = size - (TAIL + 32) as u64;
        let mut tail = [0u8; TAIL];
        file.read_exact_at(&mut tail, tail_at).map_err(read)?;
        let word = |i: usize| u64::from_le_bytes(tail[i * 8..i * 8 + 8].try_into().unwrap_or_default());
        let (index_at, linked_at, excluded_at) = (word(0), word(1), word(2));
        let in_order =
            HEADER as u64 <= index_at && index_at <= linked_at && linked_at <= excluded_at && excluded_at <= tail_at;
        if !in_order {
            return Err(corrupt(tail_at as usize, "index offsets out of order"));
        }
        // The index and the entries it keeps whole: bounded by the file.
        let mut meta = vec![0u8; (tail_at - index_at) as usize];
        file.read_exact_at(&mut meta, index_at).map_err(read)?;
        if blake3::Hasher::new().update(&head).update(&meta).finalize().as_bytes()[..] != tail[24..] {
            return Err(corrupt(index_at as usize, "index checksum mismatch"));
        }
        let at = |pos: u64| (pos - index_at) as usize;
        let located = |(o, w): (usize, &'static str)| corrupt(index_at as usize + o, w);
        let mut r = Reader { buf: &meta[..at(linked_at)], pos: 0 };
        let n = r.u64().map_err(located)?;
        if n > count || n > meta.len() as u64 {
            return Err(corrupt(index_at as usize, "more blocks than entries"));
        }
        let mut seeds = FrontDecoder::default();
        let mut rest = Vec::with_capacity(n as usize);
        for k in 0..n {
            if k > 0 {
                r.front_coded(&mut seeds).map_err(located)?;
            }
            let (offset, len, count) =
                (r.u64().map_err(located)?, r.u64().map_err(located)?, r.u32().map_err(located)?);
            rest.push((offset, len, count, r.array16().map_err(located)?));
        }
        if r.pos != r.buf.len() {
            return Err(corrupt(index_at as usize + r.pos, "trailing bytes after the index"));
        }
        let mut blocks = Vec::with_capacity(rest.len());
        let mut expect = HEADER as u64;
        let mut total = 0u64;
        for (seed, (offset, len, n, hash)) in std::iter::once(RelPath::root()).chain(seeds.finish()).zip(rest) {
            // Blocks follow each other from the header to the index.
            if offset != expect || offset.checked_add(len).is_none_or(|end| end > index_at) || n as usize > BLOCK {
                return Err(corrupt(index_at as usize, "a block out of place"));
            }
            expect = offset + len;
            total += u64::from(n);
            blocks.push(Block { seed, offset, len, count: n, hash });
        }
        if expect != index_at || total != count {
            return Err(corrupt(index_at as usize, "the blocks do not cover the entries"));
        }
        let whole = |buf: &[u8], base: u64| -> Result<Vec<Entry>, ManifestError> {
            let mut r = Reader { buf, pos: 0 };
            let n = r.u64().map_err(|(o, w)| corrupt(base as usize + o, w))?;
            let mut out = Vec::new();
            for _ in 0..n.min(count) {
                out.push(decode_entry(&mut r).map_err(|(o, w)| corrupt(base as usize + o, w))?);
            }
            if r.pos != buf.len() {
                return Err(corrupt(base as usize + r.pos, "trailing bytes after kept entries"));
            }
            Ok(out)
        };
        let linked = whole(&meta[at(linked_at)..at(excluded_at)], linked_at)?;
        let excluded = whole(&meta[at(excluded_at)..], excluded_at)?;
        Ok(Some(ManifestFile {
            id,
            started_ns,
            count,
            linked,
            excluded,
            path: path.to_path_buf(),
            file,
            blocks,
            cache: Mutex::new(Vec::new()),
        }))
    }

    /// The entries of block `k`, read and checked.
    fn block(&self, k: usize) -> Result<Arc<Vec<Entry>>, ManifestError> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = cache.iter().position(|(b, _)| *b == k) {
            let hit = cache.remove(i);
            cache.push(hit.clone());
            return Ok(hit.1);
        }
        let b = &self.blocks[k];
        let corrupt = |offset: usize, what| ManifestError::Corrupt { path: self.path.clone(), offset, what };
        let mut buf = vec![0u8; b.len as usize];
        self.file
            .read_exact_at(&mut buf, b.offset)
            .map_err(|source| ManifestError::Read { path: self.path.clone(), source })?;
        if blake3::hash(&buf).as_bytes()[..16] != b.hash {
            return Err(corrupt(b.offset as usize, "block checksum mismatch"));
        }
        let mut r = Reader { buf: &buf, pos: 0 };
        let entries = Vec::with_capacity(b.count as usize);
        let entries = decode_entries(&mut r, b.seed.as_bytes(), u64::from(b.count), entries)
            .map_err(|(o, w)| corrupt(b.offset as usize + o, w))?;
        if r.pos != buf.len() {
            return Err(corrupt(b.offset as usize + r.pos, "trailing bytes in a block"));
        }
        let sorted = entries.windows(2).all(|w| w[0].path < w[1].path)
            && entries.first().is_none_or(|e| e.path > b.seed || k == 0)
            && self.blocks.get(k + 1).is_none_or(|next| entries.last().is_some_and(|e| e.path == next.seed));
        if !sorted {
            return Err(corrupt(b.offset as usize, "entries out of order"));
        }
        let entries = Arc::new(entries);
        if cache.len() == CACHED {
            cache.remove(0);
        }
        cache.push((k, entries.clone()));
        Ok(entries)
    }

    /// The block where `path` is, or would be.
    fn block_of(&self, path: &[u8]) -> usize {
        self.blocks.partition_point(|b| b.seed.as_bytes() < path).saturating_sub(1)
    }

    pub fn get(&self, path: &RelPath) -> Result<Option<Entry>, ManifestError> {
        if self.blocks.is_empty() {
            return Ok(None);
        }
        let block = self.block(self.block_of(path.as_bytes()))?;
        Ok(crate::manifest::find(&block, path).cloned())
    }

    /// Calls `f` with the entries from the first one at or after `from`, in
    /// order, until it answers `false`.
    pub fn scan(&self, from: &[u8], mut f: impl FnMut(&Entry) -> bool) -> Result<(), ManifestError> {
        if self.blocks.is_empty() {
            return Ok(());
        }
        for k in self.block_of(from)..self.blocks.len() {
            let block = self.block(k)?;
            let start = block.partition_point(|e| e.path.as_bytes() < from);
            for e in &block[start..] {
                if !f(e) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// The entries below `dir` (every entry for the root).
    pub fn below(&self, dir: &[u8]) -> Result<Vec<Entry>, ManifestError> {
        let prefix = dir_prefix(dir);
        let mut out = Vec::new();
        self.scan(&prefix, |e| {
            let inside = e.path.as_bytes().starts_with(&prefix);
            if inside {
                out.push(e.clone());
            }
            inside
        })?;
        Ok(out)
    }

    /// The entries directly in `dir`, each subtree below them jumped over.
    pub fn children(&self, dir: &[u8]) -> Result<Vec<Entry>, ManifestError> {
        let prefix = dir_prefix(dir);
        let mut out = Vec::new();
        let mut from = prefix.clone();
        loop {
            let mut next: Option<Vec<u8>> = None;
            self.scan(&from, |e| {
                let p = e.path.as_bytes();
                if !p.starts_with(&prefix) {
                    return false;
                }
                match p[prefix.len()..].iter().position(|b| *b == b'/') {
                    // Below a child: continue after that child's subtree
                    // (`c/` is followed by nothing below `c` from `c0`).
                    Some(slash) => {
                        let mut past = p[..prefix.len() + slash].to_vec();
                        past.push(b'/' + 1);
                        next = Some(past);
                        false
                    }
                    None => {
                        out.push(e.clone());
                        true
                    }
                }
            })?;
            match next {
                Some(n) => from = n,
                None => return Ok(out),
            }
        }
    }

    /// Reads every entry (the whole manifest, checked block by block).
    pub fn read_all(&self) -> Result<Manifest, ManifestError> {
        let mut entries = Vec::with_capacity(self.count.min(1 << 24) as usize);
        for k in 0..self.blocks.len() {
            entries.extend(self.block(k)?.iter().cloned());
        }
        Ok(Manifest { started_ns: self.started_ns, entries, id: Some(self.id.clone()) })
    }
}

/// A stored snapshot as a session holds it: through its index, as a layer
/// over an indexed one, or whole (a manifest of an older format, or one
/// just taken).
#[derive(Debug)]
pub enum Stored {
    Indexed(ManifestFile),
    Layered(Box<Layered>),
    Whole(Manifest),
}

/// A snapshot stored as a [`Layer`] over an indexed whole one.
#[derive(Debug)]
pub struct Layered {
    pub id: ManifestId,
    pub started_ns: i64,
    pub base: ManifestFile,
    pub(crate) layer: Layer,
}

impl Layered {
    /// The layer `id` from its bytes, over its base (which must be indexed:
    /// a layer is never over another).
    pub(crate) fn decode(store: &crate::Store, id: &ManifestId, bytes: &[u8]) -> Result<Layered, crate::StoreError> {
        let path = store.manifest_path(id);
        let (base, started_ns, layer) = Layer::decode(bytes, &path)?;
        let base = store.manifest_file(&base)?.ok_or(ManifestError::Corrupt {
            path,
            offset: 0,
            what: "a layer over a manifest without an index",
        })?;
        Ok(Layered { id: id.clone(), started_ns, base, layer })
    }

    /// The layer's own entries.
    pub(crate) fn layer_entries(&self) -> &[Entry] {
        &self.layer.entries
    }

    /// Every entry.
    pub(crate) fn read_all(&self) -> Result<Manifest, ManifestError> {
        let mut entries = Vec::with_capacity(self.base.count.min(1 << 24) as usize + self.layer.entries.len());
        let mut mine = self.layer.entries.iter().peekable();
        self.base.scan(b"", |e| {
            if !self.layer.answers(e.path.as_bytes()) {
                while let Some(l) = mine.next_if(|l| l.path < e.path) {
                    entries.push(l.clone());
                }
                entries.push(e.clone());
            }
            true
        })?;
        entries.extend(mine.cloned());
        Ok(Manifest { started_ns: self.started_ns, entries, id: Some(self.id.clone()) })
    }

    /// Of the base's entries `base` (its linked or excluded ones), those the
    /// layer does not answer for, then the layer's own that `pick` takes.
    fn kept<'a>(&'a self, base: &'a [Entry], pick: fn(&Entry) -> bool) -> impl Iterator<Item = &'a Entry> {
        let mine = self.layer.entries.iter().filter(move |e| pick(e));
        base.iter().filter(|e| !self.layer.answers(e.path.as_bytes())).chain(mine)
    }

    /// The base's entries it does not answer for, with its own: both sorted.
    fn over(&self, base: Vec<Entry>, mine: impl Iterator<Item = Entry>) -> Vec<Entry> {
        let mut out: Vec<Entry> = base.into_iter().filter(|e| !self.layer.answers(e.path.as_bytes())).collect();
        out.extend(mine);
        out.sort_unstable_by(|a, b| a.path.cmp(&b.path));
        out
    }
}

impl Stored {
    /// The stored manifest `id`: through its index when it has one.
    pub fn open(store: &crate::Store, id: &ManifestId) -> Result<Stored, crate::StoreError> {
        if let Some(layered) = store.layer(id)? {
            return Ok(Stored::Layered(Box::new(layered)));
        }
        Ok(match store.manifest_file(id)? {
            Some(f) => Stored::Indexed(f),
            None => Stored::Whole(store.manifest(id)?),
        })
    }

    /// When the walk that took it started (what is racy against it).
    pub fn started_ns(&self) -> i64 {
        match self {
            Stored::Indexed(f) => f.started_ns,
            Stored::Layered(l) => l.started_ns,
            Stored::Whole(m) => m.started_ns,
        }
    }

    pub fn id(&self) -> Option<&ManifestId> {
        match self {
            Stored::Indexed(f) => Some(&f.id),
            Stored::Layered(l) => Some(&l.id),
            Stored::Whole(m) => m.id.as_ref(),
        }
    }

    /// Files with several names ([`crate::manifest::is_linked`]).
    pub fn linked(&self) -> Vec<&Entry> {
        match self {
            Stored::Indexed(f) => f.linked.iter().collect(),
            Stored::Layered(l) => l.kept(&l.base.linked, crate::manifest::is_linked).collect(),
            Stored::Whole(m) => m.entries.iter().filter(|e| crate::manifest::is_linked(e)).collect(),
        }
    }

    pub fn excluded(&self) -> Vec<&Entry> {
        match self {
            Stored::Indexed(f) => f.excluded.iter().collect(),
            Stored::Layered(l) => {
                let mut v: Vec<&Entry> = l.kept(&l.base.excluded, Entry::is_excluded).collect();
                v.sort_by(|a, b| a.path.cmp(&b.path));
                v
            }
            Stored::Whole(m) => m.excluded().collect(),
        }
    }

    /// The entries (but directories) of the files `inodes` names, by
    /// (device, inode). Through an index this reads the whole listing, so
    /// only when there are some to find.
    pub fn with_inodes(&self, inodes: &std::collections::HashSet<(u64, u64)>) -> Result<Vec<Entry>, ManifestError> {
        let wanted = |e: &Entry| !e.is_dir() && inodes.contains(&(e.stat.dev, e.stat.ino));
        if inodes.is_empty() {
            return Ok(Vec::new());
        }
        let scan = |f: &ManifestFile, keep: &dyn Fn(&Entry) -> bool| -> Result<Vec<Entry>, ManifestError> {
            let mut out = Vec::new();
            f.scan(b"", |e| {
                if wanted(e) && keep(e) {
                    out.push(e.clone());
                }
                true
            })?;
            Ok(out)
        };
        match self {
            Stored::Whole(m) => Ok(m.entries.iter().filter(|e| wanted(e)).cloned().collect()),
            Stored::Indexed(f) => scan(f, &|_| true),
            Stored::Layered(l) => {
                let mut out = scan(&l.base, &|e| !l.layer.answers(e.path.as_bytes()))?;
                out.extend(l.layer.entries.iter().filter(|e| wanted(e)).cloned());
                Ok(out)
            }
        }
    }

    /// The entry at `path`.
    pub(crate) fn get(&self, path: &RelPath) -> Result<Option<Entry>, ManifestError> {
        match self {
            Stored::Indexed(f) => f.get(path),
            Stored::Layered(l) => match l.layer.get(path.as_bytes()) {
                Some(mine) => Ok(mine.cloned()),
                None => l.base.get(path),
            },
            Stored::Whole(m) => Ok(crate::manifest::find(&m.entries, path).cloned()),
        }
    }

    /// The entries directly in `dir`.
    pub(crate) fn children(&self, dir: &[u8]) -> Result<Vec<Entry>, ManifestError> {
        match self {
            Stored::Indexed(f) => f.children(dir),
            Stored::Layered(l) if l.layer.answers_below(dir) => Ok(l.layer.children(dir).cloned().collect()),
            // Those it passed through are the layer's, the others the base's.
            Stored::Layered(l) => Ok(l.over(l.base.children(dir)?, l.layer.children(dir).cloned())),
            Stored::Whole(m) => {
                let r = m.below_range(dir);
                Ok(m.entries[r]
                    .iter()
                    .filter(|e| e.path.parent().is_some_and(|p| p.as_bytes() == dir))
                    .cloned()
                    .collect())
            }
        }
    }

    /// The entries below `dir`.
    pub(crate) fn below(&self, dir: &[u8]) -> Result<Vec<Entry>, ManifestError> {
        match self {
            Stored::Indexed(f) => f.below(dir),
            Stored::Layered(l) => Ok(l.over(l.base.below(dir)?, l.layer.below(dir).cloned())),
            Stored::Whole(m) => Ok(m.entries[m.below_range(dir)].to_vec()),
        }
    }

    /// The whole snapshot this one's entries come from, and the layer over
    /// it if any: what a new layer is put over.
    pub(crate) fn layering(&self) -> Option<(&ManifestFile, Option<&Layer>)> {
        match self {
            Stored::Indexed(f) => Some((f, None)),
            Stored::Layered(l) => Some((&l.base, Some(&l.layer))),
            Stored::Whole(_) => None,
        }
    }

    /// What a snapshot looking only where `changed` says needs of this one,
    /// as its stat cache and its scope's base: the entries of every
    /// directory it will list (those on the way to a change, and all below
    /// one it walks whole). Whole, it is all of it.
    pub fn partial(&self, changed: &crate::ChangedPaths) -> Result<std::borrow::Cow<'_, Manifest>, ManifestError> {
        let (id, started_ns) = match self {
            Stored::Whole(m) => return Ok(std::borrow::Cow::Borrowed(m)),
            Stored::Indexed(f) => (&f.id, f.started_ns),
            Stored::Layered(l) => (&l.id, l.started_ns),
        };
        use crate::changed::Visit;
        let mut entries = Vec::new();
        let mut dirs = vec![(RelPath::root(), changed.root_visit())];
        while let Some((dir, visit)) = dirs.pop() {
            let found = match visit {
                Visit::Whole => {
                    entries.extend(self.below(dir.as_bytes())?);
                    continue;
                }
                Visit::List => self.children(dir.as_bytes())?,
                // Its subdirectories on the way (should the walk find the
                // directory changed after all, it lists it, as new).
                Visit::Pass => {
                    let mut on_the_way = Vec::new();
                    for name in changed.on_the_way(dir.as_bytes()).1 {
                        on_the_way.extend(self.get(&dir.join(&name))?);
                    }
                    on_the_way
                }
            };
            for e in found {
                if e.is_dir()
                    && let Some(visit) = changed.visit(&e.path, false)
                {
                    dirs.push((e.path.clone(), visit));
                }
                entries.push(e);
            }
        }
        let mut m = Manifest { started_ns, entries, id: Some(id.clone()) };
        m.sort();
        Ok(std::borrow::Cow::Owned(m))
    }

    /// Every entry (read through the index, or as held).
    pub fn whole(&self) -> Result<std::borrow::Cow<'_, Manifest>, ManifestError> {
        match self {
            Stored::Indexed(f) => f.read_all().map(std::borrow::Cow::Owned),
            Stored::Layered(l) => l.read_all().map(std::borrow::Cow::Owned),
            Stored::Whole(m) => Ok(std::borrow::Cow::Borrowed(m)),
        }
    }

    pub fn into_whole(self) -> Result<Manifest, ManifestError> {
        match self {
            Stored::Indexed(f) => f.read_all(),
            Stored::Layered(l) => l.read_all(),
            Stored::Whole(m) => Ok(m),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::manifest::EntryKind;
    use crate::stat::FileStat;

    /// A tree of several blocks whose names sort between a directory and
    /// its children (`d-1` between `d` and `d/…`), a deep chain, linked and
    /// excluded entries.
    fn sample() -> Manifest {
        let mut m = Manifest::default();
        let stat = |nlink| FileStat { dev: 1, ino: 2, mode: 0o100644, nlink, size: 3, mtime_ns: 4, ctime_ns: 5 };
        let dir = |p: &str| Entry {
            path: RelPath::from_bytes(p.as_bytes()).unwrap(),
            kind: EntryKind::Dir,
            stat: FileStat { mode: 0o40755, ..stat(1) },
            racy: false,
        };
        let file = |p: String, nlink| Entry {
            path: RelPath::from_bytes(p.as_bytes()).unwrap(),
            kind: EntryKind::Symlink { target: p.as_bytes().to_vec() },
            stat: stat(nlink),
            racy: false,
        };
        for d in ["d", "d-1", "d.x", "d0", "e"] {
            m.entries.push(dir(d));
            for s in ["s", "s-t", "s0"] {
                m.entries.push(dir(&format!("{d}/{s}")));
                for i in 0..150 {
                    m.entries.push(file(format!("{d}/{s}/f{i}"), if i % 50 == 0 { 2 } else { 1 }));
                }
            }
        }
        let mut chain = String::from("z");
        m.entries.push(dir(&chain));
        for _ in 0..700 {
            chain.push_str("/z");
            m.entries.push(dir(&chain));
        }
        m.entries.push(Entry {
            path: RelPath::from_bytes(b"x-excluded").unwrap(),
            kind: EntryKind::Excluded { reason: crate::ExcludeReason::OverBudget, files: 9, bytes: 9 },
            stat: stat(1),
            racy: false,
        });
        m.sort();
        m
    }

    fn written(m: &Manifest, bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let _ = m;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m");
        std::fs::write(&path, bytes).unwrap();
        (dir, path)
    }

    fn children_of(m: &Manifest, dir: &[u8]) -> Vec<Entry> {
        m.entries.iter().filter(|e| e.path.parent().unwrap_or_default().as_bytes() == dir).cloned().collect()
    }

    #[test]
    fn reads_in_part_what_the_whole_manifest_holds() {
        let m = sample();
        assert!(m.entries.len() > 4 * BLOCK);
        let (_d, path) = written(&m, &m.encode());
        let f = ManifestFile::open(&path, ManifestId("m".into())).unwrap().unwrap();
        assert_eq!(f.count, m.entries.len() as u64);
        assert_eq!(f.read_all().unwrap().entries, m.entries);
        for e in &m.entries {
            assert_eq!(f.get(&e.path).unwrap().as_ref(), Some(e));
        }
        assert_eq!(f.get(&RelPath::from_bytes(b"d/s/nothing").unwrap()).unwrap(), None);
        let dirs: Vec<&[u8]> = std::iter::once(&b""[..])
            .chain(m.entries.iter().filter(|e| e.is_dir()).map(|e| e.path.as_bytes()))
            .collect();
        for d in dirs {
            assert_eq!(f.children(d).unwrap(), children_of(&m, d), "{}", String::from_utf8_lossy(d));
            let below = m.below(&RelPath::from_bytes(d).unwrap_or_default()).to_vec();
            assert_eq!(f.below(d).unwrap(), below);
        }
        let linked: Vec<Entry> = m.entries.iter().filter(|e| crate::manifest::is_linked(e)).cloned().collect();
        assert_eq!(f.linked, linked);
        assert_eq!(f.excluded, m.excluded().cloned().collect::<Vec<_>>());
    }

    #[test]
    fn a_manifest_without_an_index_is_read_whole_instead() {
        let m = sample();
        let (_d, path) = written(&m, &m.encode_v3());
        assert!(ManifestFile::open(&path, ManifestId("m".into())).unwrap().is_none());
        assert_eq!(Manifest::decode(&m.encode_v3(), &path).unwrap(), m);
    }

    /// A flipped bit anywhere is found where it is read: in the index and
    /// kept entries when opened, in a block when that block is read.
    #[test]
    fn every_bit_flip_is_found_by_what_reads_it() {
        let m = sample();
        let bytes = m.encode();
        let step = (bytes.len() / 301).max(1);
        for i in (8..bytes.len() - 32).step_by(step) {
            let mut b = bytes.clone();
            b[i] ^= 0x04;
            let (_d, path) = written(&m, &b);
            let read = ManifestFile::open(&path, ManifestId("m".into())).and_then(|f| match f {
                Some(f) => f.read_all().map(|all| all.entries),
                None => Ok(Vec::new()),
            });
            assert!(read.is_err(), "flip at {i}");
        }
    }
}
