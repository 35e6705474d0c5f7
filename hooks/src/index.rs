//! git's index file, read natively: the staged entries and the cache tree.
//!
//! Only what a commit hook needs, and only what this reader fully
//! understands: versions 2 to 4 of a SHA-1 repository, one stage per path.
//! Anything else — a split index (`link`), a sparse index (`sdir`), any
//! other required extension, an unmerged or intent-to-add entry, a mode git
//! does not stage — makes [`read`] answer `None`, and the caller asks git.
//! The trailing checksum is not verified: git reads the same file to make
//! the commit and refuses a damaged one itself.
//!
//! The file is read through one small buffer, not whole: a commit hook runs
//! on every commit, and a 20,000-file index read into fresh memory spent
//! more time faulting its pages in (and unmapping them) than parsing. What
//! is kept is the paths, back to back, an entry record each, and the cache
//! tree's bytes.

use std::io::{self, Read};
use std::path::Path;

/// A SHA-1 object name.
pub type Oid = [u8; 20];

/// One staged path; [`Index::path`] spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    name_start: u32,
    name_end: u32,
    /// 0o100644, 0o100755, 0o120000 or 0o160000.
    pub mode: u32,
    pub oid: Oid,
}

/// One directory of the cache tree, as stored: pre-order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct TreeNode {
    name_start: usize,
    name_end: usize,
    valid: Option<(Oid, usize)>,
    /// How many nodes that follow are below this one.
    descendants: usize,
}

/// A directory of the cache tree (`TREE` extension): the tree object git
/// knows the directory's entries make, while it still knows it.
#[derive(Clone, Copy, Debug)]
pub struct CacheTree<'a> {
    index: &'a Index,
    at: usize,
}

impl<'a> CacheTree<'a> {
    /// The tree's object name and how many index entries it covers; `None`
    /// when an entry below changed since git last wrote the tree.
    pub fn valid(&self) -> Option<(Oid, usize)> {
        self.index.tree[self.at].valid
    }

    /// The subdirectory `name`, if the cache tree has it.
    #[cfg(test)]
    pub fn child(&self, name: &[u8]) -> Option<CacheTree<'a>> {
        self.children().find(|(n, _)| *n == name).map(|(_, c)| c)
    }

    /// The subdirectories the cache tree has here, by name (in git's order
    /// for them: shorter names first).
    pub fn children(&self) -> impl Iterator<Item = (&'a [u8], CacheTree<'a>)> + use<'a> {
        let index = self.index;
        let end = self.at + 1 + index.tree[self.at].descendants;
        let mut k = self.at + 1;
        std::iter::from_fn(move || {
            (k < end).then(|| {
                let n = &index.tree[k];
                let found = (&index.tree_bytes[n.name_start..n.name_end], CacheTree { index, at: k });
                k += 1 + n.descendants;
                found
            })
        })
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Index {
    /// In git's order (by path bytes).
    pub entries: Vec<IndexEntry>,
    /// Every entry's path, back to back.
    names: Vec<u8>,
    /// The `TREE` extension's bytes, which [`TreeNode`]s name into.
    tree_bytes: Vec<u8>,
    /// The cache tree's nodes (none when the index has no cache tree).
    tree: Vec<TreeNode>,
}

impl Index {
    pub fn path(&self, e: &IndexEntry) -> &[u8] {
        &self.names[e.name_start as usize..e.name_end as usize]
    }

    /// The cache tree's root, if the index has one.
    pub fn cache_tree(&self) -> Option<CacheTree<'_>> {
        (!self.tree.is_empty()).then_some(CacheTree { index: self, at: 0 })
    }
}

const HEADER_LEN: usize = 12;
const CHECKSUM_LEN: usize = 20;
/// ctime, mtime (seconds and nanoseconds), dev, ino, mode, uid, gid, size; oid; flags.
const ENTRY_FIXED_LEN: usize = 40 + 20 + 2;
/// Longer than any path git writes (its own limit is 4095 bytes in the
/// flags, PATH_MAX in practice): a longer name is a damaged file.
const MAX_NAME_LEN: usize = 1 << 16;
/// The most path bytes kept for an index of `len` bytes: a version 4
/// entry names its path as the previous one plus a suffix, so each can be
/// longer than the one before while taking a few bytes of the file, and
/// without a bound N entries would spell O(N²) bytes. An honest index of
/// paths PATH_MAX long compresses about 64 to 1.
fn names_max(len: usize) -> usize {
    len.saturating_mul(80).saturating_add(1 << 20)
}
/// What is read from the file at a time.
const CHUNK: usize = 128 << 10;

const FLAG_EXTENDED: u16 = 0x4000;
/// The flags' bits for the path's length, which all set mean 4095 bytes
/// or more: then the NUL ends it.
const NAME_MASK: u16 = 0x0fff;
const FLAG_STAGE: u16 = 0x3000;
const EXT_INTENT_TO_ADD: u16 = 0x2000;
/// Extended flags this reader knows: skip-worktree (harmless to a commit) and intent-to-add.
const EXT_KNOWN: u16 = 0x4000 | EXT_INTENT_TO_ADD;

/// Reads the index at `path`: `Ok(None)` when it holds something this
/// reader does not handle (then git must be asked).
///
/// Opened as [`crate::safe`] opens files (never a FIFO or a device) and read
/// no further than the file's length says, whatever the entries claim.
pub fn read(path: &Path) -> io::Result<Option<Index>> {
    let (file, len) = crate::safe::open_regular(path)?;
    parse_from(file.take(len), len)
}

/// How many entries [`read`] finds in the index at `path` (`None`: it
/// would ask git): for the bench's comparison with other readers.
pub fn entry_count(path: &Path) -> io::Result<Option<usize>> {
    Ok(read(path)?.map(|index| index.entries.len()))
}

/// Parses an index file's bytes; `None` for anything unsupported or damaged.
#[cfg(test)]
pub fn parse(bytes: Vec<u8>) -> Option<Index> {
    parse_from(&bytes[..], bytes.len() as u64).ok().flatten()
}

/// A reader's bytes through one buffer, in windows as long as the parser
/// asks for.
struct Window<R> {
    src: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
}

impl<R: Read> Window<R> {
    fn new(src: R) -> Window<R> {
        Window { src, buf: vec![0; CHUNK], start: 0, end: 0, eof: false }
    }

    /// The next `n` bytes (or fewer, up to the end of the file) and what is
    /// buffered behind them, without consuming them.
    #[inline]
    fn peek(&mut self, n: usize) -> io::Result<&[u8]> {
        if self.end - self.start < n && !self.eof {
            self.refill(n)?;
        }
        Ok(&self.buf[self.start..self.end])
    }

    /// Moves what is buffered to the front and reads until `n` bytes are,
    /// or the file ends.
    #[cold]
    fn refill(&mut self, n: usize) -> io::Result<()> {
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        if self.buf.len() < n {
            self.buf.resize(n, 0);
        }
        while self.end < n {
            match self.src.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(k) => self.end += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Exactly the next `n` bytes, or `None` at the end of the file.
    fn exact(&mut self, n: usize) -> io::Result<Option<&[u8]>> {
        let got = self.peek(n)?;
        Ok((got.len() >= n).then(|| &got[..n]))
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
    }

    /// How far after `from` the next NUL is, looking no further than
    /// [`MAX_NAME_LEN`].
    fn find_nul(&mut self, from: usize) -> io::Result<Option<usize>> {
        let mut want = from + 64;
        loop {
            let got = self.peek(want)?;
            if let Some(at) = got.get(from..).and_then(|rest| rest.iter().position(|&b| b == 0)) {
                return Ok(Some(at));
            }
            if got.len() < want || want > from + MAX_NAME_LEN {
                return Ok(None);
            }
            want = from + (want - from) * 4;
        }
    }
}

/// Parses an index file read from `src`, `len` bytes long as far as its
/// size says: `Ok(None)` for anything unsupported or damaged, `Err` when
/// reading fails.
fn parse_from(src: impl Read, len: u64) -> io::Result<Option<Index>> {
    let mut w = Window::new(src);
    let Some(header) = w.exact(HEADER_LEN)? else { return Ok(None) };
    if &header[..4] != b"DIRC" {
        return Ok(None);
    }
    let (Some(version), Some(count)) = (be32(header, 4), be32(header, 8)) else { return Ok(None) };
    if !(2..=4).contains(&version) {
        return Ok(None);
    }
    w.consume(HEADER_LEN);
    let count = count as usize;
    // No more than the file could hold, however many it claims (an entry
    // takes 64 bytes at least). Paths are shorter than the file but in
    // version 4: room never written is never touched, so never paid for.
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    let mut entries: Vec<IndexEntry> = Vec::with_capacity(count.min(len / 64));
    let mut names: Vec<u8> = Vec::with_capacity(len);
    let mut previous = 0..0;
    for _ in 0..count {
        let Some(entry) = read_entry(&mut w, version, &mut names, names_max(len), previous.clone())? else {
            return Ok(None);
        };
        let name = entry.name_start as usize..entry.name_end as usize;
        if name.is_empty() || (!entries.is_empty() && names[previous.clone()] >= names[name.clone()]) {
            return Ok(None);
        }
        previous = name;
        entries.push(entry);
    }
    let mut tree_bytes = Vec::new();
    let mut tree = Vec::new();
    loop {
        // What is left: extensions (8-byte header, then data), then the checksum.
        // (Fewer bytes than asked for only at the end of the file.)
        let left = w.peek(8 + CHECKSUM_LEN)?;
        if left.len() == CHECKSUM_LEN {
            break;
        }
        if left.len() < 8 + CHECKSUM_LEN {
            return Ok(None);
        }
        let signature: [u8; 4] = [left[0], left[1], left[2], left[3]];
        let Some(size) = be32(left, 4) else { return Ok(None) };
        let size = size as usize;
        w.consume(8);
        match &signature {
            b"TREE" => {
                tree_bytes.clear();
                if !copy_exact(&mut w, size, Some(&mut tree_bytes))? {
                    return Ok(None);
                }
                let Some(nodes) = parse_cache_tree(&tree_bytes) else { return Ok(None) };
                tree = nodes;
            }
            // Optional extensions (an upper-case first letter) do not change
            // what is staged; required ones (split or sparse index) would.
            [b'A'..=b'Z', ..] => {
                if !copy_exact(&mut w, size, None)? {
                    return Ok(None);
                }
            }
            _ => return Ok(None),
        }
    }
    Ok(Some(Index { entries, names, tree_bytes, tree }))
}

/// One entry, its path appended to `names`; `None` when it is damaged or
/// not what this reader handles. `previous` is the last entry's path in
/// `names` (version 4 compresses a path against it).
fn read_entry<R: Read>(
    w: &mut Window<R>,
    version: u32,
    names: &mut Vec<u8>,
    names_cap: usize,
    previous: std::ops::Range<usize>,
) -> io::Result<Option<IndexEntry>> {
    let Some(fixed) = w.exact(ENTRY_FIXED_LEN + 2)? else { return Ok(None) };
    let (Some(mode), Ok(oid)) = (be32(fixed, 24), <Oid>::try_from(&fixed[40..60])) else { return Ok(None) };
    let flags = u16::from_be_bytes([fixed[60], fixed[61]]);
    let mut head = ENTRY_FIXED_LEN;
    if flags & FLAG_EXTENDED != 0 {
        let ext = u16::from_be_bytes([fixed[62], fixed[63]]);
        if version < 3 || ext & !EXT_KNOWN != 0 || ext & EXT_INTENT_TO_ADD != 0 {
            return Ok(None);
        }
        head += 2;
    }
    if flags & FLAG_STAGE != 0 || !matches!(mode, 0o100644 | 0o100755 | 0o120000 | 0o160000) {
        return Ok(None);
    }
    let name_start = names.len();
    if version == 4 {
        // The path is the previous one less its last N bytes, plus a suffix.
        let Some((strip, n)) = w.peek(head + 16)?.get(head..).and_then(varint) else { return Ok(None) };
        let Some(keep) = usize::try_from(strip).ok().and_then(|s| previous.len().checked_sub(s)) else {
            return Ok(None);
        };
        let Some(suffix_len) = w.find_nul(head + n)? else { return Ok(None) };
        if keep + suffix_len > MAX_NAME_LEN || names.len() + keep + suffix_len > names_cap {
            return Ok(None);
        }
        names.extend_from_within(previous.start..previous.start + keep);
        let suffix_at = w.start + head + n;
        names.extend_from_slice(&w.buf[suffix_at..suffix_at + suffix_len]);
        w.consume(head + n + suffix_len + 1);
    } else {
        // The flags hold the path's length when it is under 4095 bytes.
        let name_len = match flags & NAME_MASK {
            NAME_MASK => match w.find_nul(head)? {
                Some(n) => n,
                None => return Ok(None),
            },
            n => usize::from(n),
        };
        // Padded with 1 to 8 NULs to a multiple of 8 bytes.
        let len = (head + name_len + 8) / 8 * 8;
        if w.exact(len)?.is_none_or(|e| e[head + name_len] != 0) {
            return Ok(None);
        }
        let name_at = w.start + head;
        names.extend_from_slice(&w.buf[name_at..name_at + name_len]);
        w.consume(len);
    }
    let (Ok(name_start), Ok(name_end)) = (u32::try_from(name_start), u32::try_from(names.len())) else {
        return Ok(None);
    };
    Ok(Some(IndexEntry { name_start, name_end, mode, oid }))
}

/// Moves the next `n` bytes of `w` into `out` (or past them); `false` when
/// the file ends first.
fn copy_exact<R: Read>(w: &mut Window<R>, mut n: usize, mut out: Option<&mut Vec<u8>>) -> io::Result<bool> {
    while n > 0 {
        let got = w.peek(n.min(CHUNK))?;
        let k = got.len().min(n);
        if k == 0 {
            return Ok(false);
        }
        if let Some(out) = out.as_deref_mut() {
            out.extend_from_slice(&got[..k]);
        }
        w.consume(k);
        n -= k;
    }
    Ok(true)
}

fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// git's offset varint (index v4 and pack deltas' base offsets): the value and its length.
pub(crate) fn varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut i = 0;
    let mut c = *bytes.first()?;
    let mut value = u64::from(c & 0x7f);
    while c & 0x80 != 0 {
        i += 1;
        c = *bytes.get(i)?;
        value = value.checked_add(1)?.checked_mul(128)? | u64::from(c & 0x7f);
    }
    Some((value, i + 1))
}

/// The deepest cache tree read: git writes one level per directory, and
/// no work tree nests 4,096 directories (PATH_MAX is 4,096 bytes).
const MAX_TREE_DEPTH: usize = 4096;

/// The `TREE` extension's `data`: pre-order nodes
/// of `NAME\0COUNT SUBTREES\n[OID]`, COUNT being -1 for an invalidated tree
/// (then no OID); the root's name is empty.
///
/// Read with a stack of its own, not by recursion: git's own reader (and
/// `gix-index`'s) recurse once per level, and a 280 KB extension nesting
/// 40,000 levels overflows their stacks.
fn parse_cache_tree(data: &[u8]) -> Option<Vec<TreeNode>> {
    let mut nodes = Vec::new();
    let mut pos = 0;
    // The nodes still open: their index, and how many subtrees they have
    // that are not read yet.
    let mut open: Vec<(usize, usize)> = Vec::new();
    loop {
        let (node, subtrees) = cache_tree_node(data, &mut pos)?;
        open.push((nodes.len(), subtrees));
        nodes.push(node);
        if open.len() > MAX_TREE_DEPTH + 1 {
            return None;
        }
        // The next node read is a subtree of the innermost node with one
        // left; those with none left are complete.
        loop {
            match open.last_mut() {
                None => {
                    return (nodes[0].name_start == nodes[0].name_end && pos == data.len()).then_some(nodes);
                }
                Some((at, 0)) => {
                    let at = *at;
                    nodes[at].descendants = nodes.len() - at - 1;
                    open.pop();
                }
                Some((_, left)) => {
                    *left -= 1;
                    break;
                }
            }
        }
    }
}

/// One node at `pos`, which moves past it: the node (no descendants yet)
/// and how many subtrees follow it.
fn cache_tree_node(data: &[u8], pos: &mut usize) -> Option<(TreeNode, usize)> {
    let rest = data.get(*pos..)?;
    let nul = rest.iter().position(|&b| b == 0)?;
    let (count, count_len) = decimal(rest.get(nul + 1..)?, b' ')?;
    let (subtrees, subtrees_len) = decimal(rest.get(nul + 1 + count_len..)?, b'\n')?;
    let subtrees = usize::try_from(subtrees).ok()?;
    let (name_start, name_end) = (*pos, *pos + nul);
    *pos += nul + 1 + count_len + subtrees_len;
    let valid = if count >= 0 {
        let oid: Oid = data.get(*pos..*pos + 20)?.try_into().ok()?;
        *pos += 20;
        Some((oid, usize::try_from(count).ok()?))
    } else {
        None
    };
    Some((TreeNode { name_start, name_end, valid, descendants: 0 }, subtrees))
}

/// A decimal number (`-` allowed first) ended by `end`, at the start of
/// `bytes`: its value and the bytes it took, `end` included.
fn decimal(bytes: &[u8], end: u8) -> Option<(i64, usize)> {
    let negative = bytes.first() == Some(&b'-');
    let first = usize::from(negative);
    let mut value: i64 = 0;
    for (i, &b) in bytes.iter().enumerate().skip(first) {
        match b {
            b'0'..=b'9' => value = value.checked_mul(10)?.checked_add(i64::from(b - b'0'))?,
            _ if b == end && i > first => return Some((if negative { -value } else { value }, i + 1)),
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Repo, hex};

    fn oid_of(repo: &Repo, spec: &str) -> Oid {
        crate::odb::parse_hex(repo.git(&["rev-parse", spec]).trim().as_bytes()).unwrap()
    }

    type Listed = (Vec<u8>, u32, Oid);

    fn listed(index: &Index) -> Vec<Listed> {
        index.entries.iter().map(|e| (index.path(e).to_vec(), e.mode, e.oid)).collect()
    }

    /// What `git ls-files -s` says.
    fn ls_files(repo: &Repo) -> Vec<Listed> {
        let out = repo.git_bytes(&["ls-files", "-s", "-z"]);
        out.split(|&b| b == 0)
            .filter(|l| !l.is_empty())
            .map(|l| {
                let tab = l.iter().position(|&b| b == b'\t').unwrap();
                let head = std::str::from_utf8(&l[..tab]).unwrap();
                let mut f = head.split(' ');
                let mode = u32::from_str_radix(f.next().unwrap(), 8).unwrap();
                let oid = crate::odb::parse_hex(f.next().unwrap().as_bytes()).unwrap();
                (l[tab + 1..].to_vec(), mode, oid)
            })
            .collect()
    }

    fn populate(repo: &Repo) {
        repo.write("a.txt", "a\n");
        repo.write("a-b/x", "x\n");
        repo.write("a/b/c.txt", "c\n");
        repo.write("a/b/d.txt", "d\n");
        repo.write("a0", "zero\n");
        repo.write("bin/run", "#!/bin/sh\n");
        repo.chmod_x("bin/run");
        repo.symlink("link", "a.txt");
        repo.write("dir with spaces/ünïcode.txt", "u\n");
        repo.git(&["add", "-A"]);
        repo.git(&["commit", "-q", "-m", "one"]);
    }

    #[test]
    fn entries_match_git_ls_files_in_every_index_version() {
        let repo = Repo::new();
        populate(&repo);
        for version in ["2", "3", "4", "2"] {
            repo.git(&["update-index", "--index-version", version]);
            let index = read(&repo.index()).unwrap().expect("a supported index");
            assert_eq!(listed(&index), ls_files(&repo), "version {version}");
        }
        // Version 3 on disk: an extended flag (skip-worktree) is set.
        repo.git(&["update-index", "--skip-worktree", "a0"]);
        let bytes = std::fs::read(repo.index()).unwrap();
        assert_eq!(be32(&bytes, 4), Some(3));
        assert_eq!(listed(&parse(bytes).unwrap()), ls_files(&repo));
    }

    /// A reader that hands out a few bytes per call, as a pipe or a slow
    /// disk may: every entry and extension then straddles a refill.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.1.min(buf.len()).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn an_index_larger_than_the_buffer_reads_the_same_in_any_slicing() {
        let repo = Repo::new();
        // ~3,000 entries with long paths (one longer than the first look
        // for its end): several buffers' worth in every version.
        for d in 0..30 {
            for f in 0..100 {
                repo.write(
                    &format!("directory-number-{d:03}/a-rather-long-file-name-to-fill-the-index-{f:04}.txt"),
                    "x\n",
                );
            }
        }
        let segments: Vec<String> = (0..40).map(|i| format!("segment-{i:02}")).collect();
        let long = format!("deep/{}/end.txt", segments.join("/"));
        repo.write(&long, "long\n");
        repo.git(&["add", "-A"]);
        repo.git(&["commit", "-q", "-m", "many"]);
        let expected = ls_files(&repo);
        assert_eq!(expected.len(), 3001);
        for version in ["2", "3", "4"] {
            repo.git(&["update-index", "--index-version", version]);
            if version == "3" {
                repo.git(&["update-index", "--skip-worktree", &long]);
            }
            // Fills the cache tree again (the flag's change emptied it).
            repo.git(&["write-tree"]);
            let bytes = std::fs::read(repo.index()).unwrap();
            assert!(bytes.len() > CHUNK || version == "4", "version {version}: {} bytes", bytes.len());
            let whole = read(&repo.index()).unwrap().expect("a supported index");
            assert_eq!(listed(&whole), expected, "version {version}");
            for step in [1, 7, 4096] {
                let sliced = parse_from(Trickle(&bytes, step), bytes.len() as u64).unwrap().unwrap();
                assert_eq!(sliced, whole, "version {version}, {step} bytes a read");
            }
            let root = whole.cache_tree().expect("a cache tree");
            assert_eq!(root.valid(), Some((oid_of(&repo, "HEAD^{tree}"), 3001)), "version {version}");
        }
    }

    #[test]
    fn a_path_longer_than_its_flags_can_say_is_read_to_its_nul() {
        let repo = Repo::new();
        populate(&repo);
        // 5,000 bytes: the flags say 4095 ("or more"), and no file system
        // would take it, so it is staged without a file.
        let blob = repo.git_stdin(&["hash-object", "-w", "--stdin"], b"deep\n");
        let segments: Vec<String> = (0..20).map(|i| format!("{i:02}{}", "x".repeat(248))).collect();
        let long = format!("{}/end", segments.join("/"));
        assert!(long.len() > 5000);
        repo.git(&["update-index", "--add", "--cacheinfo", &format!("100644,{},{long}", blob.trim())]);
        for version in ["2", "4"] {
            repo.git(&["update-index", "--index-version", version]);
            let index = read(&repo.index()).unwrap().expect("a supported index");
            assert_eq!(listed(&index), ls_files(&repo), "version {version}");
            assert!(index.entries.iter().any(|e| index.path(e) == long.as_bytes()));
        }
    }

    #[test]
    fn the_cache_tree_names_the_trees_git_wrote_and_forgets_changed_ones() {
        let repo = Repo::new();
        populate(&repo);
        // A fresh cache tree: git write-tree fills it.
        repo.git(&["read-tree", "HEAD"]);
        repo.git(&["write-tree"]);
        let index = read(&repo.index()).unwrap().unwrap();
        let root = index.cache_tree().expect("a cache tree");
        assert_eq!(root.valid(), Some((oid_of(&repo, "HEAD^{tree}"), index.entries.len())));
        let b = root.child(b"a").unwrap().child(b"b").unwrap();
        assert_eq!(b.valid(), Some((oid_of(&repo, "HEAD:a/b"), 2)));
        assert!(root.child(b"b").is_none() && b.child(b"c.txt").is_none());
        let spaced = root.child("dir with spaces".as_bytes()).unwrap();
        assert_eq!(spaced.valid(), Some((oid_of(&repo, "HEAD:dir with spaces"), 1)));

        repo.write("a/b/c.txt", "changed\n");
        repo.git(&["add", "a/b/c.txt"]);
        let index = read(&repo.index()).unwrap().unwrap();
        let root = index.cache_tree().unwrap();
        assert_eq!(root.valid(), None);
        let a = root.child(b"a").unwrap();
        assert_eq!(a.valid(), None);
        assert_eq!(a.child(b"b").unwrap().valid(), None);
        assert_eq!(root.child(b"bin").unwrap().valid(), Some((oid_of(&repo, "HEAD:bin"), 1)));
        // The same in version 4, whose paths are rebuilt.
        repo.git(&["update-index", "--index-version", "4"]);
        let v4 = read(&repo.index()).unwrap().unwrap();
        assert_eq!(listed(&v4), listed(&index));
        assert_eq!(v4.cache_tree().unwrap().child(b"bin").unwrap().valid(), Some((oid_of(&repo, "HEAD:bin"), 1)));
        assert!(hex(&oid_of(&repo, "HEAD:bin")).len() == 40);
    }

    #[test]
    fn split_sparse_intent_to_add_and_unmerged_indexes_are_left_to_git() {
        let repo = Repo::new();
        populate(&repo);
        assert!(read(&repo.index()).unwrap().is_some(), "positive control");

        repo.write("new.txt", "new\n");
        repo.git(&["add", "-N", "new.txt"]);
        assert!(read(&repo.index()).unwrap().is_none(), "intent-to-add");
        repo.git(&["rm", "-q", "--cached", "new.txt"]);
        assert!(read(&repo.index()).unwrap().is_some());

        repo.git(&["update-index", "--split-index"]);
        assert!(read(&repo.index()).unwrap().is_none(), "split index");
        repo.git(&["update-index", "--no-split-index"]);
        assert!(read(&repo.index()).unwrap().is_some());

        repo.git(&["sparse-checkout", "set", "--cone", "--sparse-index", "a"]);
        assert!(read(&repo.index()).unwrap().is_none(), "sparse index");
        repo.git(&["sparse-checkout", "disable"]);
        assert!(read(&repo.index()).unwrap().is_some());

        // An unmerged path: two stages of one file.
        let base = repo.git(&["rev-parse", "HEAD"]);
        repo.git(&["checkout", "-q", "-b", "other"]);
        repo.write("a.txt", "other\n");
        repo.git(&["commit", "-q", "-am", "other"]);
        repo.git(&["checkout", "-q", base.trim()]);
        repo.write("a.txt", "mine\n");
        repo.git(&["commit", "-q", "-am", "mine"]);
        let _ = repo.git_status(&["merge", "-q", "other"]);
        assert!(!repo.git(&["ls-files", "-u"]).is_empty(), "a conflict");
        assert!(read(&repo.index()).unwrap().is_none(), "unmerged");
    }

    #[test]
    fn damaged_indexes_are_not_guessed_at() {
        let repo = Repo::new();
        populate(&repo);
        let bytes = std::fs::read(repo.index()).unwrap();
        assert!(parse(bytes.clone()).is_some());
        for cut in [0, 4, 12, 40, bytes.len() / 2, bytes.len() - 21] {
            assert!(parse(bytes[..cut].to_vec()).is_none(), "cut at {cut}");
        }
        let mut wrong = bytes.clone();
        wrong[11] = 200;
        assert!(parse(wrong).is_none(), "more entries than there are");
        let mut wrong = bytes.clone();
        wrong[7] = 9;
        assert!(parse(wrong).is_none(), "version 9");
        // An unknown required extension before the checksum.
        let mut ext = bytes[..bytes.len() - 20].to_vec();
        ext.extend_from_slice(b"zzzz\0\0\0\0");
        ext.extend_from_slice(&[0; 20]);
        assert!(parse(ext).is_none());
        let mut optional = bytes[..bytes.len() - 20].to_vec();
        optional.extend_from_slice(b"ZZZZ\0\0\0\0");
        optional.extend_from_slice(&[0; 20]);
        assert!(parse(optional).is_some());
    }

    #[test]
    fn the_cache_tree_counts_are_decimals_ended_where_git_ends_them() {
        assert_eq!(decimal(b"12 3\n", b' '), Some((12, 3)));
        assert_eq!(decimal(b"-1 0\n", b' '), Some((-1, 3)));
        assert_eq!(decimal(b"0\n", b'\n'), Some((0, 2)));
        for bad in [&b" 1"[..], b"-", b"- ", b"1x ", b"12", b"", b"99999999999999999999 "] {
            assert_eq!(decimal(bad, b' '), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    /// A chain of `depth` directories below the root, each `a`, every
    /// level invalid but the deepest; then a sibling at the root.
    fn nested(depth: usize) -> Vec<u8> {
        let mut t = b"\0-1 2\n".to_vec();
        for _ in 0..depth - 1 {
            t.extend_from_slice(b"a\0-1 1\n");
        }
        t.extend_from_slice(b"a\x001 0\n");
        t.extend_from_slice(&[7; 20]);
        t.extend_from_slice(b"b\0-1 0\n");
        t
    }

    #[test]
    fn a_cache_tree_is_read_to_4096_levels_without_recursion_and_refused_deeper() {
        // On a thread with a small stack: a reader that recursed per level
        // would overflow it long before 4,096 levels.
        std::thread::Builder::new()
            .stack_size(64 << 10)
            .spawn(|| {
                let nodes = parse_cache_tree(&nested(MAX_TREE_DEPTH)).expect("4,096 levels are read");
                assert_eq!(nodes.len(), MAX_TREE_DEPTH + 2);
                assert_eq!(nodes[0].descendants, MAX_TREE_DEPTH + 1, "the root holds every other node");
                assert_eq!(nodes[1].descendants, MAX_TREE_DEPTH - 1, "the chain holds its own levels only");
                assert_eq!(nodes[MAX_TREE_DEPTH].valid, Some(([7; 20], 1)), "the deepest level is valid");
                assert_eq!(nodes[MAX_TREE_DEPTH + 1].descendants, 0, "the sibling comes after the chain");
                assert_eq!(parse_cache_tree(&nested(MAX_TREE_DEPTH + 1)), None, "deeper is damage");
                assert_eq!(parse_cache_tree(&nested(1_000_000)), None);
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn varints_decode_as_git_writes_them() {
        assert_eq!(varint(&[0x05]), Some((5, 1)));
        assert_eq!(varint(&[0x80, 0x00]), Some((128, 2)));
        assert_eq!(varint(&[0xff, 0x7f]), Some((16511, 2)));
        assert_eq!(varint(&[0x80]), None);
    }
}
