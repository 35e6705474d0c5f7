//! Reading commits and trees from a SHA-1 repository's object store with
//! `gix-odb`: loose objects, packs and their deltas. An
//! object not found is `None`, and the caller asks git.
//!
//! Every byte here may have been written by an agent. `gix-odb` detects
//! delta cycles and refuses any allocation over [`ALLOC_LIMIT`]; around it,
//! this module checks that every file in `objects/pack` and the loose file
//! it reads is a regular file ([`crate::safe`]: never a FIFO, a device or a
//! kernel file), reads an object's header before the object (more than
//! [`MAX_OBJECT`] bytes is left to git, a chain deeper than git writes is
//! damage), and takes only content that has the name it was asked for: a
//! hostile store is [`OdbError::Damaged`], never a crash or a hang.

use std::io;
use std::path::{Path, PathBuf};

use gix_object::Find;
use gix_odb::Header;

use crate::index::Oid;
use crate::safe;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Commit,
    Tree,
    Blob,
    Tag,
}

impl Kind {
    fn of(kind: gix_object::Kind) -> Kind {
        match kind {
            gix_object::Kind::Commit => Kind::Commit,
            gix_object::Kind::Tree => Kind::Tree,
            gix_object::Kind::Blob => Kind::Blob,
            gix_object::Kind::Tag => Kind::Tag,
        }
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

/// The largest object read natively (commits and trees; git's largest
/// trees are a few megabytes): a larger one is left to git.
pub const MAX_OBJECT: usize = 16 << 20;
/// The most `gix-odb` allocates at once for one object: a delta's base,
/// its result and its instructions together. A chain is rebuilt one delta
/// at a time, so one read costs at most [`MAX_DELTA_DEPTH`] times this in
/// copying (measured: 4,000 deltas of 16 MiB each, 5.3 s, where git itself
/// takes 6.9 s on the same object).
const ALLOC_LIMIT: usize = 2 * MAX_OBJECT;
/// A file of `objects/pack` longer than this must have at least half its
/// length on disk: git writes packs and indexes whole.
const SPARSE_FROM: u64 = 1 << 20;
/// Deeper chains than git ever writes (`pack.depth` is capped at 4095) are damage.
const MAX_DELTA_DEPTH: u32 = 4095;

/// A repository's object store (its `objects` directory), opened on the
/// first read.
pub struct Odb {
    objects: PathBuf,
    store: Option<gix_odb::Handle>,
}

impl std::fmt::Debug for Odb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Odb").field("objects", &self.objects).finish_non_exhaustive()
    }
}

impl Odb {
    pub fn new(objects: &Path) -> Odb {
        Odb { objects: objects.to_path_buf(), store: None }
    }

    fn store(&mut self) -> Result<&gix_odb::Handle, OdbError> {
        match &mut self.store {
            Some(store) => Ok(store),
            slot @ None => Ok(slot.insert(open_store(&self.objects)?)),
        }
    }

    /// The object `oid`: its kind and content; `None` if it is not here.
    pub fn read(&mut self, oid: &Oid) -> Result<Option<(Kind, Vec<u8>)>, OdbError> {
        let name = hex(oid);
        let loose = self.objects.join(&name[..2]).join(&name[2..]);
        match safe::open_regular(&loose) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        let id = gix_hash::ObjectId::from_bytes_or_panic(oid);
        let objects = self.objects.clone();
        let damage = |what: String| damaged(&holder(&objects, &id, &loose), what);
        let failed = |e: gix_error::Error| gix_failure(&holder(&objects, &id, &loose), &format!("object {name}"), e);
        let store = self.store()?;
        let Some(header) = store.try_header(&id).map_err(failed)? else { return Ok(None) };
        if header.num_deltas().is_some_and(|n| n > MAX_DELTA_DEPTH) {
            return Err(damage(format!("object {name} at the end of a delta chain deeper than {MAX_DELTA_DEPTH}")));
        }
        if header.size() > MAX_OBJECT as u64 {
            return Err(OdbError::Unread(io::Error::other(format!(
                "object {name} is {} bytes, more than read natively",
                header.size()
            ))));
        }
        let mut buf = Vec::new();
        let Some(data) = store.try_find(&id, &mut buf).map_err(failed)? else { return Ok(None) };
        let kind = Kind::of(data.kind);
        // git does not check an object against its name when it reads it,
        // and which copy it reads (two packs may hold one name) is its
        // business: only the content that has this name is taken.
        if object_id(kind, data.data) != *oid {
            return Err(damage(format!("an object {name} whose content has another name")));
        }
        Ok(Some((kind, buf)))
    }
}

/// The store at `objects`, after checking that `objects/pack` holds only
/// regular files, none of them sparse: `gix-odb` skips a FIFO or a device
/// there (git would block on it), and reads a pack index's whole offset
/// table when it opens it (a sparse index claiming 2^31 objects took it
/// 7.7 s).
fn open_store(objects: &Path) -> Result<gix_odb::Handle, OdbError> {
    match std::fs::read_dir(objects.join("pack")) {
        Ok(listing) => {
            for entry in listing {
                let path = entry?.path();
                let (_, st) = safe::open_regular_stat(&path)?;
                let (len, on_disk) = (st.st_size as u64, st.st_blocks as u64 * 512);
                if len > SPARSE_FROM && on_disk < len / 2 {
                    return Err(damaged(&path, format!("a sparse file ({len} bytes long, {on_disk} on disk)")));
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    let options = gix_odb::store::init::Options {
        alloc_limit_bytes: Some(ALLOC_LIMIT),
        // A multi-pack index names its packs by paths, which could lead
        // out of `objects/pack` to files not checked above; every pack it
        // lists keeps its own index there.
        use_multi_pack_index: false,
        ..Default::default()
    };
    let store = gix_odb::at_opts(objects, gix_hash::Kind::Sha1, None, options)?;
    // gix-odb loads pack indexes one at a time, looking at loose objects in
    // between; git looks in every pack first. Loaded all, gix reads the
    // copy git reads.
    store.packed_object_count().map_err(|e| gix_failure(&objects.join("pack"), "a pack index", e))?;
    Ok(store)
}

fn damaged(path: &Path, what: impl Into<String>) -> OdbError {
    OdbError::Damaged { path: path.to_path_buf(), what: what.into() }
}

/// What `gix-odb` said about `what` (an object, a pack index), held in
/// `path`: damaged data (a delta cycle, a truncated pack, a bad header) is
/// damage; anything else (over a limit, an I/O error) is left to git.
fn gix_failure(path: &Path, what: &str, e: gix_error::Error) -> OdbError {
    if e.is_corrupted() && !e.is_resource_exhausted() {
        return damaged(path, format!("{what}, which cannot be read: {e}"));
    }
    OdbError::Unread(io::Error::other(format!("{what} in {}: {e}", path.display())))
}

/// The file holding `id` for a message the user acts on: the pack whose
/// index names it, else its loose file, else the objects directory.
fn holder(objects: &Path, id: &gix_hash::oid, loose: &Path) -> PathBuf {
    let packs = std::fs::read_dir(objects.join("pack")).into_iter().flatten().flatten().map(|e| e.path());
    for idx in packs.filter(|p| p.extension().is_some_and(|e| e == "idx")) {
        if gix_pack::index::File::at(&idx, gix_hash::Kind::Sha1).is_ok_and(|f| f.lookup(id).is_some()) {
            return idx.with_extension("pack");
        }
    }
    if loose.exists() { loose.to_path_buf() } else { objects.to_path_buf() }
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

/// The entries of a tree object's content, `None` if it does not parse.
/// Modes as git canonicalises them: any regular file is 644 or 755, an
/// unknown type a submodule.
pub fn parse_tree(data: &[u8]) -> Option<Vec<TreeEntry>> {
    gix_object::TreeRefIter::from_bytes(data, gix_hash::Kind::Sha1)
        .map(|entry| {
            let entry = entry.ok()?;
            let mode = match entry.mode.kind() {
                gix_object::tree::EntryKind::Tree => TREE_MODE,
                gix_object::tree::EntryKind::Blob => 0o100644,
                gix_object::tree::EntryKind::BlobExecutable => 0o100755,
                gix_object::tree::EntryKind::Link => 0o120000,
                gix_object::tree::EntryKind::Commit => 0o160000,
            };
            let oid: Oid = entry.oid.as_bytes().try_into().ok()?;
            Some(TreeEntry { name: entry.filename.to_vec(), mode, oid })
        })
        .collect()
}

/// The tree a commit object's content names.
pub fn commit_tree(data: &[u8]) -> Option<Oid> {
    let tree = gix_object::CommitRefIter::from_bytes(data, gix_hash::Kind::Sha1).tree_id().ok()?;
    tree.as_bytes().try_into().ok()
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
            assert_eq!(format!("{k:?}").to_lowercase(), kind, "{name}");
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
    fn a_repository_with_a_multi_pack_index_reads_through_each_packs_own_index() {
        let repo = Repo::new();
        history(&repo);
        repo.git(&["repack", "-q", "-d"]);
        repo.write("late.txt", "late\n");
        repo.git(&["add", "late.txt"]);
        repo.git(&["commit", "-q", "-m", "late"]);
        repo.git(&["repack", "-q"]);
        repo.git(&["multi-pack-index", "write"]);
        assert!(repo.path().join(".git/objects/pack/multi-pack-index").exists());
        assert!(check_all(&repo) > 100);
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
