//! Reading commits and trees from a SHA-1 repository's object store, natively:
//! loose objects and pack files (version 2 index, offset and reference
//! deltas). An object not found here — an alternate store, a promisor
//! remote, a pack with an old index — is `None`, and the caller asks git.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::index::{Oid, varint};

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

/// A pack whose index has been opened: the fan-out table, read once.
#[derive(Debug)]
struct Pack {
    idx: File,
    pack: File,
    fanout: [u32; 256],
}

const IDX_MAGIC: [u8; 4] = [0xff, b't', b'O', b'c'];
const IDX_HEADER_LEN: u64 = 8;
const FANOUT_LEN: u64 = 256 * 4;
/// Deeper chains than git ever writes (its default is 50) mean a cycle.
const MAX_DELTA_DEPTH: usize = 10_000;

impl Pack {
    fn open(idx_path: &Path) -> io::Result<Option<Pack>> {
        let idx = File::open(idx_path)?;
        let mut head = [0u8; (IDX_HEADER_LEN + FANOUT_LEN) as usize];
        idx.read_exact_at(&mut head, 0)?;
        if head[..4] != IDX_MAGIC || head[4..8] != [0, 0, 0, 2] {
            return Ok(None);
        }
        let mut fanout = [0u32; 256];
        for (i, f) in fanout.iter_mut().enumerate() {
            let at = 8 + i * 4;
            *f = u32::from_be_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]);
        }
        let pack = File::open(idx_path.with_extension("pack"))?;
        Ok(Some(Pack { idx, pack, fanout }))
    }

    /// Where `oid` starts in the pack, if this pack has it.
    fn offset(&self, oid: &Oid) -> io::Result<Option<u64>> {
        let first = usize::from(oid[0]);
        let lo = if first == 0 { 0 } else { self.fanout[first - 1] };
        let hi = self.fanout[first];
        let total = u64::from(self.fanout[255]);
        if hi <= lo {
            return Ok(None);
        }
        let names_at = IDX_HEADER_LEN + FANOUT_LEN;
        let mut names = vec![0u8; (hi - lo) as usize * 20];
        self.idx.read_exact_at(&mut names, names_at + u64::from(lo) * 20)?;
        let Ok(k) = names.chunks_exact(20).collect::<Vec<_>>().binary_search(&&oid[..]) else { return Ok(None) };
        let n = u64::from(lo) + k as u64;
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
        self.idx.read_exact_at(&mut large, offsets_at + total * 4 + u64::from(small & 0x7fff_ffff) * 8)?;
        Ok(Some(u64::from_be_bytes(large)))
    }
}

/// A repository's object store (its `objects` directory).
#[derive(Debug)]
pub struct Odb {
    objects: PathBuf,
    packs: Option<Vec<Pack>>,
}

impl Odb {
    pub fn new(objects: &Path) -> Odb {
        Odb { objects: objects.to_path_buf(), packs: None }
    }

    fn packs(&mut self) -> io::Result<&[Pack]> {
        if self.packs.is_none() {
            let mut packs = Vec::new();
            let dir = self.objects.join("pack");
            let listing = match std::fs::read_dir(&dir) {
                Ok(l) => Some(l),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(e),
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

    /// The object `oid`: its kind and content; `None` if it is not here.
    pub fn read(&mut self, oid: &Oid) -> io::Result<Option<(Kind, Vec<u8>)>> {
        let mut found = None;
        for (i, p) in self.packs()?.iter().enumerate() {
            if let Some(offset) = p.offset(oid)? {
                found = Some((i, offset));
                break;
            }
        }
        match found {
            Some((pack, offset)) => self.read_packed(pack, offset, 0),
            None => self.read_loose(oid),
        }
    }

    fn read_loose(&self, oid: &Oid) -> io::Result<Option<(Kind, Vec<u8>)>> {
        let name = hex(oid);
        let path = self.objects.join(&name[..2]).join(&name[2..]);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let data = miniz_oxide::inflate::decompress_to_vec_zlib(&bytes).map_err(|_| corrupt(&path))?;
        let nul = data.iter().position(|&b| b == 0).ok_or_else(|| corrupt(&path))?;
        let (kind, size) = std::str::from_utf8(&data[..nul])
            .ok()
            .and_then(|h| h.split_once(' '))
            .and_then(|(k, s)| Some((Kind::from_name(k.as_bytes())?, s.parse::<usize>().ok()?)))
            .ok_or_else(|| corrupt(&path))?;
        if data.len() - nul - 1 != size {
            return Err(corrupt(&path));
        }
        Ok(Some((kind, data[nul + 1..].to_vec())))
    }

    fn read_packed(&mut self, pack: usize, offset: u64, depth: usize) -> io::Result<Option<(Kind, Vec<u8>)>> {
        if depth > MAX_DELTA_DEPTH {
            return Err(io::Error::other("a delta chain without end in a pack"));
        }
        let p = &self.packs()?[pack];
        let mut head = [0u8; 32];
        let n = read_some_at(&p.pack, &mut head, offset)?;
        let head = &head[..n];
        let bad = || io::Error::other(format!("a damaged pack entry at offset {offset}"));
        // Type and size: 3 bits and 4, then 7 bits a byte while the top bit is set.
        let mut c = *head.first().ok_or_else(bad)?;
        let kind = (c >> 4) & 7;
        let mut size = u64::from(c & 0x0f);
        let mut i = 1;
        let mut shift = 4;
        while c & 0x80 != 0 {
            c = *head.get(i).ok_or_else(bad)?;
            size |= u64::from(c & 0x7f).checked_shl(shift).ok_or_else(bad)?;
            shift += 7;
            i += 1;
        }
        let size = usize::try_from(size).map_err(|_| bad())?;
        match kind {
            6 => {
                let (back, n) = varint(&head[i..]).ok_or_else(bad)?;
                let base = offset.checked_sub(back).filter(|&b| b > 0).ok_or_else(bad)?;
                let delta = inflate_at(&p.pack, offset + (i + n) as u64, size)?;
                let Some((kind, base)) = self.read_packed(pack, base, depth + 1)? else { return Ok(None) };
                Ok(Some((kind, apply_delta(&base, &delta).ok_or_else(bad)?)))
            }
            7 => {
                let base_oid: Oid = head.get(i..i + 20).and_then(|b| b.try_into().ok()).ok_or_else(bad)?;
                let delta = inflate_at(&p.pack, offset + (i + 20) as u64, size)?;
                let Some((kind, base)) = self.read(&base_oid)? else { return Ok(None) };
                Ok(Some((kind, apply_delta(&base, &delta).ok_or_else(bad)?)))
            }
            t => {
                let kind = Kind::from_pack(t).ok_or_else(bad)?;
                Ok(Some((kind, inflate_at(&p.pack, offset + i as u64, size)?)))
            }
        }
    }
}

fn corrupt(path: &Path) -> io::Error {
    io::Error::other(format!("a damaged object in {}", path.display()))
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

/// Inflates the zlib stream at `offset` into exactly `size` bytes.
fn inflate_at(file: &File, offset: u64, size: usize) -> io::Result<Vec<u8>> {
    // Deflate never grows data by more than 5 bytes per stored block of at
    // least 16 KiB, plus the zlib header and checksum.
    let mut input = vec![0u8; size + size / 1024 + 64];
    let n = read_some_at(file, &mut input, offset)?;
    let out = miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(&input[..n], size)
        .map_err(|_| io::Error::other(format!("cannot inflate the pack entry at offset {offset}")))?;
    if out.len() != size {
        return Err(io::Error::other(format!("the pack entry at offset {offset} has the wrong size")));
    }
    Ok(out)
}

/// git's delta format: the base's and the result's sizes, then copies from
/// the base and inserted literals.
fn apply_delta(base: &[u8], delta: &[u8]) -> Option<Vec<u8>> {
    let size = |pos: &mut usize| -> Option<usize> {
        let mut v = 0usize;
        let mut shift = 0;
        loop {
            let c = *delta.get(*pos)?;
            *pos += 1;
            v |= usize::from(c & 0x7f).checked_shl(shift)?;
            shift += 7;
            if c & 0x80 == 0 {
                return Some(v);
            }
        }
    };
    let mut pos = 0;
    if size(&mut pos)? != base.len() {
        return None;
    }
    let want = size(&mut pos)?;
    let mut out = Vec::with_capacity(want);
    while pos < delta.len() {
        let op = delta[pos];
        pos += 1;
        if op & 0x80 != 0 {
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
            let from = field(4, 0)?;
            let mut len = field(3, 4)?;
            if len == 0 {
                len = 0x10000;
            }
            out.extend_from_slice(base.get(from..from.checked_add(len)?)?);
        } else if op != 0 {
            out.extend_from_slice(delta.get(pos..pos + usize::from(op))?);
            pos += usize::from(op);
        } else {
            return None;
        }
    }
    (out.len() == want).then_some(out)
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
        assert_eq!(apply_delta(base, &delta).unwrap(), b"abcdxyz01");
        assert_eq!(apply_delta(b"short", &delta), None, "base size");
        assert_eq!(apply_delta(base, &[16, 9, 0x91, 14, 4]), None, "copy past the base");
        assert_eq!(apply_delta(base, &[16, 1, 0]), None, "opcode 0");
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
