//! Reading commits and trees from a SHA-1 repository's object store, natively:
//! loose objects and pack files (version 2 index, offset and reference
//! deltas). An object not found here — an alternate store, a promisor
//! remote, a pack with an old index — is `None`, and the caller asks git.
//!
//! Every byte here may have been written by an agent. So every file is
//! opened as [`crate::safe`] opens them (never a FIFO or a device, never
//! more than its bound), no allocation follows a size the data claims
//! beyond [`MAX_OBJECT`], inflating stops at the size the object declares,
//! and a delta chain is followed iteratively, at most [`MAX_DELTA_DEPTH`]
//! deep, never through the same entry twice and within [`BUDGET`] bytes of
//! work: a hostile store is [`OdbError::Damaged`], never a crash or a hang.

use std::collections::HashSet;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::index::{Oid, varint};
use crate::safe;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Commit,
    Tree,
    Blob,
    Tag,
}

impl Kind {
    fn from_pack(t: u8) -> Option<Kind> {
        Some(match t {
            1 => Kind::Commit,
            2 => Kind::Tree,
            3 => Kind::Blob,
            4 => Kind::Tag,
            _ => return None,
        })
    }

    fn from_name(name: &[u8]) -> Option<Kind> {
        Some(match name {
            b"commit" => Kind::Commit,
            b"tree" => Kind::Tree,
            b"blob" => Kind::Blob,
            b"tag" => Kind::Tag,
            _ => return None,
        })
    }
}

/// Why an object could not be read.
#[derive(Debug, thiserror::Error)]
pub enum OdbError {
    /// Not readable here (larger than read natively, an I/O error): git may read it.
    #[error(transparent)]
    Unread(io::Error),
    /// Damaged or built to hurt a reader: a delta chain that loops or never
    /// ends, sizes that do not add up, a FIFO or a device where a file
    /// belongs. git may block or fail on it too.
    #[error("{} holds {what}", path.display())]
    Damaged { path: PathBuf, what: String },
}

impl From<io::Error> for OdbError {
    fn from(e: io::Error) -> OdbError {
        match safe::unsafe_file(&e) {
            Some(u) => OdbError::Damaged { path: u.path.clone(), what: u.what.clone() },
            None => OdbError::Unread(e),
        }
    }
}

fn damaged(path: &Path, what: impl Into<String>) -> OdbError {
    OdbError::Damaged { path: path.to_path_buf(), what: what.into() }
}

/// The largest object read natively (commits and trees; git's largest
/// trees are a few megabytes): a larger one is left to git.
pub const MAX_OBJECT: usize = 64 << 20;
/// Deeper chains than git ever writes (`pack.depth` is capped at 4095) are damage.
const MAX_DELTA_DEPTH: usize = 4096;
/// Bytes inflated and rebuilt for one object, its whole delta chain included.
const BUDGET: usize = 256 << 20;

/// A pack whose index has been opened: the fan-out table, read once.
#[derive(Debug)]
struct Pack {
    idx: File,
    idx_path: PathBuf,
    pack: File,
    pack_path: PathBuf,
    fanout: [u32; 256],
}

const IDX_MAGIC: [u8; 4] = [0xff, b't', b'O', b'c'];
const IDX_HEADER_LEN: u64 = 8;
const FANOUT_LEN: u64 = 256 * 4;

impl Pack {
    fn open(idx_path: &Path) -> Result<Option<Pack>, OdbError> {
        let (idx, len) = safe::open_regular(idx_path)?;
        let mut head = [0u8; (IDX_HEADER_LEN + FANOUT_LEN) as usize];
        if len < head.len() as u64 {
            return Err(damaged(idx_path, "a pack index too short for its header"));
        }
        idx.read_exact_at(&mut head, 0)?;
        if head[..4] != IDX_MAGIC || head[4..8] != [0, 0, 0, 2] {
            return Ok(None);
        }
        let mut fanout = [0u32; 256];
        for (i, f) in fanout.iter_mut().enumerate() {
            let at = 8 + i * 4;
            *f = u32::from_be_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]);
        }
        // The table the lookups trust: counts that only grow, and names,
        // CRCs and offsets of every object within the file.
        let total = u64::from(fanout[255]);
        if fanout.windows(2).any(|w| w[0] > w[1]) || IDX_HEADER_LEN + FANOUT_LEN + total * 28 + 40 > len {
            return Err(damaged(idx_path, "a pack index whose fan-out table does not fit it"));
        }
        let pack_path = idx_path.with_extension("pack");
        let (pack, _) = safe::open_regular(&pack_path)?;
        Ok(Some(Pack { idx, idx_path: idx_path.to_path_buf(), pack, pack_path, fanout }))
    }

    /// Where `oid` starts in the pack, if this pack has it.
    fn offset(&self, oid: &Oid) -> Result<Option<u64>, OdbError> {
        let first = usize::from(oid[0]);
        let lo = if first == 0 { 0 } else { self.fanout[first - 1] };
        let hi = self.fanout[first];
        let total = u64::from(self.fanout[255]);
        if hi <= lo {
            return Ok(None);
        }
        let names_at = IDX_HEADER_LEN + FANOUT_LEN;
        // A name at a time: the fan-out may put every object of a sparse,
        // terabyte-long index in one bucket, which is never read whole.
        let (mut a, mut b) = (u64::from(lo), u64::from(hi));
        let mut name = [0u8; 20];
        let n = loop {
            if a >= b {
                return Ok(None);
            }
            let mid = a + (b - a) / 2;
            self.idx.read_exact_at(&mut name, names_at + mid * 20)?;
            match name.cmp(oid) {
                std::cmp::Ordering::Less => a = mid + 1,
                std::cmp::Ordering::Greater => b = mid,
                std::cmp::Ordering::Equal => break mid,
            }
        };
        // After the names: a CRC-32 per object, then 4-byte offsets; an
        // offset with the top bit set indexes the table of 8-byte ones.
        let offsets_at = names_at + total * 20 + total * 4;
        let mut small = [0u8; 4];
        self.idx.read_exact_at(&mut small, offsets_at + n * 4)?;
        let small = u32::from_be_bytes(small);
        if small & 0x8000_0000 == 0 {
            return Ok(Some(u64::from(small)));
        }
        let mut large = [0u8; 8];
        self.idx
            .read_exact_at(&mut large, offsets_at + total * 4 + u64::from(small & 0x7fff_ffff) * 8)
            .map_err(|_| damaged(&self.idx_path, "an offset past the end of the pack index"))?;
        Ok(Some(u64::from_be_bytes(large)))
    }
}

/// A repository's object store (its `objects` directory).
#[derive(Debug)]
pub struct Odb {
    objects: PathBuf,
    packs: Option<Vec<Pack>>,
}

/// One link of a delta chain being followed.
enum Step {
    /// The base is at this offset of this pack.
    Packed(usize, u64),
    /// The base is this object, wherever it is.
    Named(Oid),
}

impl Odb {
    pub fn new(objects: &Path) -> Odb {
        Odb { objects: objects.to_path_buf(), packs: None }
    }

    fn packs(&mut self) -> Result<&[Pack], OdbError> {
        if self.packs.is_none() {
            let mut packs = Vec::new();
            let dir = self.objects.join("pack");
            let listing = match std::fs::read_dir(&dir) {
                Ok(l) => Some(l),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(e.into()),
            };
            for entry in listing.into_iter().flatten() {
                let path = entry?.path();
                if path.extension().is_some_and(|e| e == "idx")
                    && let Some(p) = Pack::open(&path)?
                {
                    packs.push(p);
                }
            }
            self.packs = Some(packs);
        }
        Ok(self.packs.as_deref().unwrap_or_default())
    }

    fn find_packed(&mut self, oid: &Oid) -> Result<Option<(usize, u64)>, OdbError> {
        for (i, p) in self.packs()?.iter().enumerate() {
            if let Some(offset) = p.offset(oid)? {
                return Ok(Some((i, offset)));
            }
        }
        Ok(None)
    }

    /// The object `oid`: its kind and content; `None` if it is not here.
    pub fn read(&mut self, oid: &Oid) -> Result<Option<(Kind, Vec<u8>)>, OdbError> {
        let mut budget = BUDGET;
        let mut deltas: Vec<Vec<u8>> = Vec::new();
        let mut seen: HashSet<(usize, u64)> = HashSet::new();
        let mut step = Step::Named(*oid);
        let (kind, mut data) = loop {
            let (pack, offset) = match step {
                Step::Packed(pack, offset) => (pack, offset),
                Step::Named(oid) => match self.find_packed(&oid)? {
                    Some(found) => found,
                    None => match self.read_loose(&oid, &mut budget)? {
                        Some(found) => break found,
                        None => return Ok(None),
                    },
                },
            };
            let path = self.packs()?[pack].pack_path.clone();
            if !seen.insert((pack, offset)) {
                return Err(damaged(&path, format!("a delta chain that loops (at offset {offset})")));
            }
            if deltas.len() >= MAX_DELTA_DEPTH {
                return Err(damaged(&path, format!("a delta chain deeper than {MAX_DELTA_DEPTH}")));
            }
            match self.read_entry(pack, offset, &mut budget)? {
                Entry::Whole(kind, data) => break (kind, data),
                Entry::Delta(delta, next) => {
                    deltas.push(delta);
                    step = next;
                }
            }
        };
        for delta in deltas.iter().rev() {
            data = apply_delta(&data, delta, &mut budget).map_err(|what| damaged(&self.objects, what))?;
        }
        // git does not check an object against its name when it reads it,
        // and which copy it reads (two packs may hold one name) is its
        // business: only the content that has this name is taken.
        if object_id(kind, &data) != *oid {
            return Err(damaged(&self.objects, format!("an object {} whose content has another name", hex(oid))));
        }
        Ok(Some((kind, data)))
    }

    fn read_loose(&self, oid: &Oid, budget: &mut usize) -> Result<Option<(Kind, Vec<u8>)>, OdbError> {
        let name = hex(oid);
        let path = self.objects.join(&name[..2]).join(&name[2..]);
        // Deflate never grows data much: a larger file is not an object
        // read here.
        let bytes = match safe::read_bounded(&path, (MAX_OBJECT + MAX_OBJECT / 16 + 1024) as u64) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let (kind, data) = inflate_loose(&bytes).map_err(|what| damaged(&path, what))?;
        take(budget, data.len()).map_err(OdbError::Unread)?;
        Ok(Some((kind, data)))
    }

    /// The pack entry at `offset`: a whole object, or a delta and where its base is.
    fn read_entry(&mut self, pack: usize, offset: u64, budget: &mut usize) -> Result<Entry, OdbError> {
        let p = &self.packs()?[pack];
        let path = &p.pack_path;
        let mut head = [0u8; 32];
        let n = read_some_at(&p.pack, &mut head, offset)?;
        let head = &head[..n];
        let bad = || damaged(path, format!("a damaged pack entry at offset {offset}"));
        // Type and size: 3 bits and 4, then 7 bits a byte while the top bit is set.
        let mut c = *head.first().ok_or_else(bad)?;
        let kind = (c >> 4) & 7;
        let mut size = u64::from(c & 0x0f);
        let mut i = 1;
        let mut shift = 4;
        while c & 0x80 != 0 {
            c = *head.get(i).ok_or_else(bad)?;
            size |= u64::from(c & 0x7f).checked_shl(shift).filter(|_| shift < 64).ok_or_else(bad)?;
            shift += 7;
            i += 1;
        }
        let size = usize::try_from(size).ok().filter(|&s| s <= MAX_OBJECT).ok_or_else(|| {
            OdbError::Unread(io::Error::other(format!(
                "the pack entry at offset {offset} of {} claims {size} bytes, more than read natively",
                path.display()
            )))
        })?;
        take(budget, size).map_err(OdbError::Unread)?;
        match kind {
            6 => {
                let (back, n) = varint(&head[i..]).ok_or_else(bad)?;
                // git refuses a base at or after the delta itself too.
                let base = offset.checked_sub(back).filter(|&b| b > 0 && back > 0).ok_or_else(bad)?;
                let delta = inflate_at(&p.pack, path, offset + (i + n) as u64, size)?;
                Ok(Entry::Delta(delta, Step::Packed(pack, base)))
            }
            7 => {
                let base_oid: Oid = head.get(i..i + 20).and_then(|b| b.try_into().ok()).ok_or_else(bad)?;
                let delta = inflate_at(&p.pack, path, offset + (i + 20) as u64, size)?;
                Ok(Entry::Delta(delta, Step::Named(base_oid)))
            }
            t => {
                let kind = Kind::from_pack(t).ok_or_else(bad)?;
                Ok(Entry::Whole(kind, inflate_at(&p.pack, path, offset + i as u64, size)?))
            }
        }
    }
}

enum Entry {
    Whole(Kind, Vec<u8>),
    Delta(Vec<u8>, Step),
}

/// git's SHA-1 object name of `data` as a `kind` object.
pub fn object_id(kind: Kind, data: &[u8]) -> Oid {
    let name = match kind {
        Kind::Commit => "commit",
        Kind::Tree => "tree",
        Kind::Blob => "blob",
        Kind::Tag => "tag",
    };
    let mut h = sha1_smol::Sha1::new();
    h.update(format!("{name} {}\0", data.len()).as_bytes());
    h.update(data);
    h.digest().bytes()
}

/// Counts `n` bytes of work against `budget`.
fn take(budget: &mut usize, n: usize) -> io::Result<()> {
    *budget = budget
        .checked_sub(n)
        .ok_or_else(|| io::Error::other(format!("an object costing more than {BUDGET} bytes to rebuild")))?;
    Ok(())
}

/// A loose object's kind and content: inflated no further than the size its
/// header declares (a zlib bomb stops there), which is at most [`MAX_OBJECT`].
pub(crate) fn inflate_loose(bytes: &[u8]) -> Result<(Kind, Vec<u8>), String> {
    use miniz_oxide::inflate::{TINFLStatus, decompress_to_vec_zlib_with_limit};
    // "commit 67108864\0": the header fits in 32 bytes.
    const HEADER_MAX: usize = 32;
    let start = match decompress_to_vec_zlib_with_limit(bytes, HEADER_MAX) {
        Ok(all) => all,
        Err(e) if e.status == TINFLStatus::HasMoreOutput => e.output,
        Err(_) => return Err("an object that does not inflate".into()),
    };
    let nul = start.iter().position(|&b| b == 0).ok_or("an object without a header")?;
    let (kind, size) = std::str::from_utf8(&start[..nul])
        .ok()
        .and_then(|h| h.split_once(' '))
        .and_then(|(k, s)| Some((Kind::from_name(k.as_bytes())?, s.parse::<usize>().ok()?)))
        .ok_or("an object with a damaged header")?;
    if size > MAX_OBJECT {
        return Err(format!("an object claiming {size} bytes, more than read natively"));
    }
    let want = nul + 1 + size;
    let data = match decompress_to_vec_zlib_with_limit(bytes, want) {
        Ok(all) if all.len() == want => all,
        Ok(_) => return Err("an object shorter than its header says".into()),
        Err(e) if e.status == TINFLStatus::HasMoreOutput => {
            return Err("an object longer than its header says".into());
        }
        Err(_) => return Err("an object that does not inflate".into()),
    };
    Ok((kind, data[nul + 1..].to_vec()))
}

fn read_some_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], offset + n as u64)? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Inflates the zlib stream at `offset` into exactly `size` bytes (at most
/// [`MAX_OBJECT`], checked by the caller).
fn inflate_at(file: &File, path: &Path, offset: u64, size: usize) -> Result<Vec<u8>, OdbError> {
    // Deflate never grows data by more than 5 bytes per stored block of at
    // least 16 KiB, plus the zlib header and checksum.
    let mut input = vec![0u8; size + size / 1024 + 64];
    let n = read_some_at(file, &mut input, offset)?;
    let out = miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(&input[..n], size)
        .map_err(|_| damaged(path, format!("a pack entry at offset {offset} that does not inflate to its size")))?;
    if out.len() != size {
        return Err(damaged(path, format!("a pack entry at offset {offset} of the wrong size")));
    }
    Ok(out)
}

/// git's delta format: the base's and the result's sizes, then copies from
/// the base and inserted literals. The result is never larger than it
/// declares, nor than [`MAX_OBJECT`], whatever the copies say.
pub(crate) fn apply_delta(base: &[u8], delta: &[u8], budget: &mut usize) -> Result<Vec<u8>, String> {
    let bad = || "a damaged delta".to_owned();
    let size = |pos: &mut usize| -> Option<usize> {
        let mut v = 0usize;
        let mut shift = 0;
        loop {
            let c = *delta.get(*pos)?;
            *pos += 1;
            v |= usize::from(c & 0x7f).checked_shl(shift).filter(|_| shift < usize::BITS)?;
            shift += 7;
            if c & 0x80 == 0 {
                return Some(v);
            }
        }
    };
    let mut pos = 0;
    if size(&mut pos).ok_or_else(bad)? != base.len() {
        return Err("a delta for another base".into());
    }
    let want = size(&mut pos).ok_or_else(bad)?;
    if want > MAX_OBJECT {
        return Err(format!("a delta claiming {want} bytes"));
    }
    take(budget, want).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(want);
    while pos < delta.len() {
        let op = delta[pos];
        pos += 1;
        let piece = if op & 0x80 != 0 {
            let mut field = |bits: u8, first_shift: u32| -> Option<usize> {
                let mut v = 0usize;
                for k in 0..bits {
                    if op & (1 << (first_shift + u32::from(k))) != 0 {
                        v |= usize::from(*delta.get(pos)?) << (8 * k);
                        pos += 1;
                    }
                }
                Some(v)
            };
            let from = field(4, 0).ok_or_else(bad)?;
            let mut len = field(3, 4).ok_or_else(bad)?;
            if len == 0 {
                len = 0x10000;
            }
            base.get(from..from.checked_add(len).ok_or_else(bad)?).ok_or_else(bad)?
        } else if op != 0 {
            let piece = delta.get(pos..pos + usize::from(op)).ok_or_else(bad)?;
            pos += usize::from(op);
            piece
        } else {
            return Err(bad());
        };
        if out.len() + piece.len() > want {
            return Err("a delta longer than it declares".into());
        }
        out.extend_from_slice(piece);
    }
    if out.len() != want {
        return Err("a delta shorter than it declares".into());
    }
    Ok(out)
}

pub fn hex(oid: &Oid) -> String {
    oid.iter().map(|b| format!("{b:02x}")).collect()
}

/// A 40-digit hexadecimal object name.
pub fn parse_hex(text: &[u8]) -> Option<Oid> {
    if text.len() != 40 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; 20];
    for (o, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        *o = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

/// One entry of a tree object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeEntry {
    pub name: Vec<u8>,
    /// As git canonicalises it: 0o040000, 0o100644, 0o100755, 0o120000 or 0o160000.
    pub mode: u32,
    pub oid: Oid,
}

pub const TREE_MODE: u32 = 0o040000;

/// The entries of a tree object's content (`MODE NAME\0OID`…).
pub fn parse_tree(data: &[u8]) -> Option<Vec<TreeEntry>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let space = pos + data[pos..].iter().position(|&b| b == b' ')?;
        let nul = space + data[space..].iter().position(|&b| b == 0)?;
        let mode = u32::from_str_radix(std::str::from_utf8(&data[pos..space]).ok()?, 8).ok()?;
        let oid: Oid = data.get(nul + 1..nul + 21)?.try_into().ok()?;
        // As git's canon_mode: any regular file is 644 or 755.
        let mode = match mode & 0o170000 {
            0o100000 => 0o100000 | if mode & 0o100 != 0 { 0o755 } else { 0o644 },
            0o120000 | 0o040000 => mode & 0o170000,
            _ => 0o160000,
        };
        out.push(TreeEntry { name: data[space + 1..nul].to_vec(), mode, oid });
        pos = nul + 21;
    }
    Some(out)
}

/// The tree a commit object's content names.
pub fn commit_tree(data: &[u8]) -> Option<Oid> {
    parse_hex(data.strip_prefix(b"tree ")?.get(..40)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Repo;

    fn oid(repo: &Repo, spec: &str) -> Oid {
        parse_hex(repo.git(&["rev-parse", spec]).trim().as_bytes()).unwrap()
    }

    /// Every object `git cat-file` lists, read natively and compared.
    fn check_all(repo: &Repo) -> usize {
        let mut odb = Odb::new(&repo.path().join(".git/objects"));
        let list = repo.git(&["cat-file", "--batch-all-objects", "--batch-check=%(objectname) %(objecttype)"]);
        let mut n = 0;
        for line in list.lines() {
            let (name, kind) = line.split_once(' ').unwrap();
            let id = parse_hex(name.as_bytes()).unwrap();
            let (k, data) = odb.read(&id).unwrap().unwrap_or_else(|| panic!("{name} not found"));
            assert_eq!(Some(k), Kind::from_name(kind.as_bytes()), "{name}");
            assert_eq!(data, repo.git_bytes(&["cat-file", kind, name]), "{name}");
            n += 1;
        }
        n
    }

    fn history(repo: &Repo) {
        // Many similar versions of a few trees and files: gc deltifies them.
        for i in 0..30 {
            for d in 0..4 {
                repo.write(&format!("d{d}/f{}.txt", i % 7), &format!("line\n{}\n{i}\n", "text ".repeat(200)));
            }
            if i % 5 == 0 {
                repo.write(&format!("big{i}.bin"), &"x".repeat(70_000 + i));
            }
            repo.git(&["add", "-A"]);
            repo.git(&["commit", "-q", "-m", &format!("c{i}")]);
        }
    }

    #[test]
    fn loose_and_packed_objects_with_deltas_read_as_git_reads_them() {
        let repo = Repo::new();
        history(&repo);
        assert!(check_all(&repo) > 100, "loose objects");
        repo.git(&["gc", "-q", "--aggressive"]);
        let verify = repo.git(&["verify-pack", "-v", &glob_one(&repo, ".idx")]);
        assert!(verify.contains("chain length"), "the pack holds deltas: {verify}");
        assert!(check_all(&repo) > 100, "packed objects");
        // Some loose, some packed.
        repo.write("late.txt", "late\n");
        repo.git(&["add", "late.txt"]);
        repo.git(&["commit", "-q", "-m", "late"]);
        check_all(&repo);
    }

    #[test]
    fn thin_style_reference_deltas_resolve() {
        // `git index-pack --fix-thin` keeps REF_DELTA entries when told to
        // pack with --no-reuse-delta and without offset deltas.
        let repo = Repo::new();
        history(&repo);
        let objects = repo.git(&["rev-list", "--objects", "--all"]);
        let names: String = objects.lines().map(|l| format!("{}\n", &l[..40])).collect();
        let prefix = repo.path().join(".git/objects/pack/refdelta");
        repo.git_stdin(&["pack-objects", "-q", "--no-reuse-delta", prefix.to_str().unwrap()], names.as_bytes());
        repo.git(&["prune-packed"]);
        let verify = repo.git(&["verify-pack", "-v", &glob_one(&repo, ".idx")]);
        assert!(verify.contains("chain length"), "deltas: {verify}");
        check_all(&repo);
    }

    #[test]
    fn trees_and_commits_parse() {
        let repo = Repo::new();
        repo.write("b/x", "x\n");
        repo.write("a", "a\n");
        repo.chmod_x("a");
        repo.symlink("l", "a");
        repo.git(&["add", "-A"]);
        repo.git(&["commit", "-q", "-m", "one"]);
        let mut odb = Odb::new(&repo.path().join(".git/objects"));
        let (kind, commit) = odb.read(&oid(&repo, "HEAD")).unwrap().unwrap();
        assert_eq!(kind, Kind::Commit);
        let tree = commit_tree(&commit).unwrap();
        assert_eq!(tree, oid(&repo, "HEAD^{tree}"));
        let (_, data) = odb.read(&tree).unwrap().unwrap();
        let entries = parse_tree(&data).unwrap();
        let got: Vec<(&[u8], u32)> = entries.iter().map(|e| (&e.name[..], e.mode)).collect();
        assert_eq!(got, [(&b"a"[..], 0o100755), (b"b", TREE_MODE), (b"l", 0o120000)]);
        assert_eq!(entries[1].oid, oid(&repo, "HEAD:b"));
        assert_eq!(odb.read(&[7; 20]).unwrap(), None, "an object that is not there");
    }

    #[test]
    fn deltas_apply_and_bad_ones_are_refused() {
        let base = b"0123456789abcdef";
        // Sizes 16 -> 9; copy 4 bytes from 10; insert "xyz"; copy 2 from 0.
        let delta = [16, 9, 0x91, 10, 4, 3, b'x', b'y', b'z', 0x90, 2];
        let b = &mut BUDGET.clone();
        assert_eq!(apply_delta(base, &delta, b).unwrap(), b"abcdxyz01");
        assert!(apply_delta(b"short", &delta, b).is_err(), "base size");
        assert!(apply_delta(base, &[16, 9, 0x91, 14, 4], b).is_err(), "copy past the base");
        assert!(apply_delta(base, &[16, 1, 0], b).is_err(), "opcode 0");
        // Copies adding up to more than the result declares stop there.
        let mut greedy = vec![16, 4];
        greedy.extend([0x90u8, 16].repeat(1000));
        assert!(apply_delta(base, &greedy, b).is_err());
        // A declared size beyond what is read here is refused unallocated.
        assert!(apply_delta(base, &[16, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01], b).is_err());
    }

    fn glob_one(repo: &Repo, ext: &str) -> String {
        let dir = repo.path().join(".git/objects/pack");
        let found: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(ext))
            .collect();
        assert_eq!(found.len(), 1, "{found:?}");
        found[0].to_string_lossy().into_owned()
    }
}
