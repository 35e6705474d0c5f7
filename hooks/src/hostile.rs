//! The hook's readers against a repository an agent wrote: attack fixtures
//! (delta cycles, impossible sizes, a zlib bomb, a FIFO pack, a forged cache
//! tree), generated here so that the corpus is the code, and fuzzing of
//! every reader of git's bytes (index, loose objects, packs, deltas) with
//! random, truncated and mutated inputs: never a panic, an abort or a hang,
//! and never more memory than the bounds say.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use ws_testkit::{apply, damage, pack_entry_header};

use crate::index::{self, Oid};
use crate::odb::{self, Kind, Odb, OdbError};
use crate::staged::{GitEnv, native};
use crate::testing::{Repo, hex};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

fn zlib(data: &[u8]) -> Vec<u8> {
    miniz_oxide::deflate::compress_to_vec_zlib(data, 6)
}

/// git's offset encoding of an OFS_DELTA's distance back to its base.
fn ofs(back: u64) -> Vec<u8> {
    let mut out = vec![(back & 0x7f) as u8];
    let mut v = back >> 7;
    while v > 0 {
        v -= 1;
        out.insert(0, 0x80 | (v & 0x7f) as u8);
        v >>= 7;
    }
    out
}

/// A delta turning `base_len` bytes into `literal`.
fn delta(base_len: usize, literal: &[u8]) -> Vec<u8> {
    assert!(base_len < 128 && literal.len() < 128);
    let mut d = vec![base_len as u8, literal.len() as u8, literal.len() as u8];
    d.extend_from_slice(literal);
    d
}

/// Writes `objects/pack/pack-NAME.{pack,idx}` with `entries` (object name,
/// the entry's bytes) laid out in order after the pack header. Checksums
/// are zeros: the reader does not check them (git does, when it indexes).
pub(crate) fn write_pack(objects: &Path, name: &str, entries: &[(Oid, Vec<u8>)]) -> (PathBuf, PathBuf) {
    let dir = objects.join("pack");
    std::fs::create_dir_all(&dir).unwrap();
    let mut pack = b"PACK\0\0\0\x02".to_vec();
    pack.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    let mut at = Vec::new();
    for (oid, bytes) in entries {
        at.push((*oid, pack.len() as u32));
        pack.extend_from_slice(bytes);
    }
    pack.extend_from_slice(&[0; 20]);
    at.sort();
    let mut idx = vec![0xff, b't', b'O', b'c', 0, 0, 0, 2];
    for b in 0..256usize {
        let n = at.iter().filter(|(o, _)| usize::from(o[0]) <= b).count() as u32;
        idx.extend_from_slice(&n.to_be_bytes());
    }
    for (o, _) in &at {
        idx.extend_from_slice(o);
    }
    idx.extend(std::iter::repeat_n(0u8, at.len() * 4));
    for (_, off) in &at {
        idx.extend_from_slice(&off.to_be_bytes());
    }
    idx.extend_from_slice(&[0; 40]);
    let (p, i) = (dir.join(format!("pack-{name}.pack")), dir.join(format!("pack-{name}.idx")));
    std::fs::write(&p, pack).unwrap();
    std::fs::write(&i, idx).unwrap();
    (p, i)
}

/// The pack with a REF_DELTA naming itself (`x`), two naming each other
/// (`y`, `z`) and an OFS_DELTA pointing at its own offset (`w`).
pub(crate) fn cycle_pack(objects: &Path) -> [Oid; 4] {
    let (x, y, z, w) = ([0x11; 20], [0x22; 20], [0x33; 20], [0x44; 20]);
    let d = zlib(&delta(5, b"hello"));
    let ref_delta = |base: Oid| [pack_entry_header(7, 8), base.to_vec(), d.clone()].concat();
    let ofs_self = [pack_entry_header(6, 8), ofs(0), d.clone()].concat();
    write_pack(objects, "cycles", &[(x, ref_delta(x)), (y, ref_delta(z)), (z, ref_delta(y)), (w, ofs_self)]);
    [x, y, z, w]
}

/// `bytes` as the loose object `oid` of the store at `objects`.
fn put_loose(objects: &Path, oid: &Oid, bytes: &[u8]) {
    let name = hex(oid);
    std::fs::create_dir_all(objects.join(&name[..2])).unwrap();
    std::fs::write(objects.join(&name[..2]).join(&name[2..]), bytes).unwrap();
}

/// A pack holding the blob "hello" and, as `oid`, an offset delta on it
/// whose (uncompressed) bytes are `delta`.
fn delta_pack(objects: &Path, oid: Oid, delta: &[u8]) {
    let base = [pack_entry_header(3, 5), zlib(b"hello")].concat();
    let entry = [pack_entry_header(6, delta.len() as u64), ofs(base.len() as u64), zlib(delta)].concat();
    write_pack(objects, "delta", &[(odb::object_id(Kind::Blob, b"hello"), base), (oid, entry)]);
}

fn damage_of(r: Result<Option<(Kind, Vec<u8>)>, OdbError>) -> String {
    match r {
        Err(OdbError::Damaged { what, .. }) => what,
        other => panic!("not damage: {other:?}"),
    }
}

#[test]
fn delta_cycles_and_self_references_are_damage_not_an_abort() {
    let dir = tempfile::tempdir().unwrap();
    let [x, y, z, w] = cycle_pack(dir.path());
    let mut odb = Odb::new(dir.path());
    let started = Instant::now();
    assert!(damage_of(odb.read(&x)).contains("cycle"));
    assert!(damage_of(odb.read(&y)).contains("cycle"));
    assert!(damage_of(odb.read(&z)).contains("cycle"));
    assert!(damage_of(odb.read(&w)).contains("ofs-delta"));
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
}

#[test]
fn a_chain_deeper_than_git_writes_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    // A blob, then 5,000 offset deltas each on the one before: small bytes,
    // a deep chain.
    let mut entries = vec![(odb::object_id(Kind::Blob, b"hello"), [pack_entry_header(3, 5), zlib(b"hello")].concat())];
    let mut sizes = vec![entries[0].1.len() as u64];
    for i in 1..5000u32 {
        let content = format!("h{i:04}");
        let back = *sizes.last().unwrap();
        let bytes = [pack_entry_header(6, 8), ofs(back), zlib(&delta(5, content.as_bytes()))].concat();
        sizes.push(bytes.len() as u64);
        entries.push((odb::object_id(Kind::Blob, content.as_bytes()), bytes));
    }
    write_pack(dir.path(), "deep", &entries);
    let mut odb = Odb::new(dir.path());
    let shallow = entries[100].0;
    assert_eq!(odb.read(&shallow).unwrap().unwrap(), (Kind::Blob, b"h0100".to_vec()), "positive control");
    let deep = entries[4999].0;
    assert!(damage_of(odb.read(&deep)).contains("deeper"));
}

#[test]
fn sizes_no_reader_could_allocate_are_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let huge = 1u64 << 50;
    let whole = [pack_entry_header(1, huge), zlib(b"tree x")].concat();
    // A delta on a real base whose result claims 2^50 bytes.
    let base = [pack_entry_header(3, 5), zlib(b"hello")].concat();
    let mut big_delta = vec![5u8];
    let mut v = huge;
    while v >= 0x80 {
        big_delta.push((v as u8) | 0x80);
        v >>= 7;
    }
    big_delta.push(v as u8);
    let d = zlib(&big_delta);
    let delta_entry = [pack_entry_header(6, big_delta.len() as u64), ofs(base.len() as u64), d].concat();
    let [a, b, c] = [[0x0a; 20], odb::object_id(Kind::Blob, b"hello"), [0x0c; 20]];
    write_pack(dir.path(), "huge", &[(a, whole), (b, base), (c, delta_entry)]);
    let mut odb = Odb::new(dir.path());
    let started = Instant::now();
    assert!(matches!(odb.read(&a), Err(OdbError::Unread(_))), "left to git");
    assert_eq!(odb.read(&b).unwrap().unwrap().1, b"hello", "positive control");
    assert!(matches!(odb.read(&c), Err(OdbError::Unread(_))), "left to git");
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
}

#[test]
fn a_sparse_pack_index_claiming_billions_of_objects_is_damage_without_reading_it() {
    let dir = tempfile::tempdir().unwrap();
    let hello = odb::object_id(Kind::Blob, b"hello");
    let (_, idx) = write_pack(dir.path(), "sparse", &[(hello, [pack_entry_header(3, 5), zlib(b"hello")].concat())]);
    // 2^31 objects, all in the last bucket; the file as long as they need
    // (sparse: it costs no blocks).
    let total: u64 = 1 << 31;
    let mut head = vec![0xff, b't', b'O', b'c', 0, 0, 0, 2];
    for b in 0..256u32 {
        head.extend_from_slice(&(if b == 255 { total as u32 } else { 0 }).to_be_bytes());
    }
    let f = std::fs::File::create(&idx).unwrap();
    f.set_len(8 + 1024 + total * 28 + 40).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &head, 0).unwrap();
    let started = Instant::now();
    let mut odb = Odb::new(dir.path());
    assert!(damage_of(odb.read(&[0xff; 20])).contains("sparse"), "gix-odb would read its offsets, 8 GiB of holes");
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// A loose object whose header says 10 bytes and which inflates to 8 MiB.
pub(crate) fn zlib_bomb() -> Vec<u8> {
    let mut body = b"blob 10\0".to_vec();
    body.resize(8 << 20, 0);
    zlib(&body)
}

/// The zlib stream of `prefix` then `mib` MiB of zeros, compressed as it
/// goes (about 1 KiB a MiB).
fn zlib_zeros(prefix: &[u8], mib: usize) -> Vec<u8> {
    use miniz_oxide::deflate::core::{
        CompressorOxide, TDEFLFlush, compress_to_output, create_comp_flags_from_zip_params,
    };
    let mut c = CompressorOxide::new(create_comp_flags_from_zip_params(9, 1, 0));
    let mut out = Vec::new();
    let zeros = vec![0u8; 1 << 20];
    let pieces = std::iter::once((prefix, TDEFLFlush::None))
        .chain(std::iter::repeat_n((&zeros[..], TDEFLFlush::None), mib))
        .chain(std::iter::once((&[][..], TDEFLFlush::Finish)));
    for (data, flush) in pieces {
        compress_to_output(&mut c, data, flush, |o| {
            out.extend_from_slice(o);
            true
        });
    }
    out
}

/// A loose object honestly claiming 1 GiB of zeros, in about 1 MiB.
fn honest_bomb() -> Vec<u8> {
    zlib_zeros(b"blob 1073741824\0", 1024)
}

#[test]
fn loose_zlib_bombs_are_refused_unallocated() {
    let dir = tempfile::tempdir().unwrap();
    let bomb = zlib_bomb();
    assert!(bomb.len() < 64 << 10, "{} bytes", bomb.len());
    let (lying, claiming, honest, fine) = ([0x5a; 20], [0x5b; 20], [0x5c; 20], odb::object_id(Kind::Blob, b"hi"));
    put_loose(dir.path(), &lying, &bomb);
    put_loose(dir.path(), &claiming, &zlib(b"tree 1099511627776\0"));
    put_loose(dir.path(), &honest, &honest_bomb());
    put_loose(dir.path(), &fine, &zlib(b"blob 2\0hi"));
    let mut odb = Odb::new(dir.path());
    assert_eq!(odb.read(&fine).unwrap(), Some((Kind::Blob, b"hi".to_vec())), "positive control");
    let started = Instant::now();
    // 10 bytes declared, 8 MiB inflated: stops at the declared size.
    assert!(!damage_of(odb.read(&lying)).is_empty());
    // More than is read natively, whether it could inflate to it or not:
    // left to git, without allocating it.
    assert!(matches!(odb.read(&claiming), Err(OdbError::Unread(_))));
    assert!(matches!(odb.read(&honest), Err(OdbError::Unread(_))));
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
}

#[test]
fn a_small_delta_on_a_base_bomb_is_refused_unallocated() {
    // A 1 GiB blob of zeros in ~1 MiB, and a 5-byte delta on it: gix-odb
    // without a limit takes 2 GiB to read the 5 bytes.
    let dir = tempfile::tempdir().unwrap();
    let stream = zlib_zeros(b"", 1024);
    let base = [pack_entry_header(3, 1 << 30), stream].concat();
    let mut d = vec![0x80, 0x80, 0x80, 0x80, 0x04, 5];
    d.extend_from_slice(&[0x90, 5]);
    let entry = [pack_entry_header(6, d.len() as u64), ofs(base.len() as u64), zlib(&d)].concat();
    let small = odb::object_id(Kind::Blob, &[0; 5]);
    write_pack(dir.path(), "bomb", &[([0xbb; 20], base), (small, entry)]);
    let started = Instant::now();
    let mut odb = Odb::new(dir.path());
    assert!(matches!(odb.read(&small), Err(OdbError::Unread(_))), "left to git");
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    // Positive control: the same delta on a small base reads.
    let dir = tempfile::tempdir().unwrap();
    let base = [pack_entry_header(3, 8), zlib(&[0; 8])].concat();
    let d = [8, 5, 0x90, 5];
    let entry = [pack_entry_header(6, d.len() as u64), ofs(base.len() as u64), zlib(&d)].concat();
    write_pack(dir.path(), "small", &[(odb::object_id(Kind::Blob, &[0; 8]), base), (small, entry)]);
    assert_eq!(Odb::new(dir.path()).read(&small).unwrap(), Some((Kind::Blob, vec![0; 5])));
}

#[test]
fn an_object_whose_content_has_another_name_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    let good = b"tree 0\0".to_vec();
    let oid = odb::object_id(Kind::Tree, b"");
    let name = hex(&oid);
    std::fs::create_dir_all(dir.path().join(&name[..2])).unwrap();
    let path = dir.path().join(&name[..2]).join(&name[2..]);
    std::fs::write(&path, zlib(&good)).unwrap();
    assert_eq!(Odb::new(dir.path()).read(&oid).unwrap().unwrap(), (Kind::Tree, Vec::new()), "positive control");
    // The empty tree's name over a tree with an entry: what git, which
    // does not check, would read as that tree.
    let mut evil = b"tree 29\x00100644 x\x00".to_vec();
    evil.extend_from_slice(&[0x42; 20]);
    std::fs::write(&path, zlib(&evil)).unwrap();
    assert!(damage_of(Odb::new(dir.path()).read(&oid)).contains("another name"));
}

#[test]
fn a_packed_copy_is_read_before_a_loose_one_as_git_reads_it() {
    // An honest loose tree, and a pack copy under the same name holding an
    // entry more: git reads the pack's (it looks in packs first, and does
    // not check names), so that is the copy the hook must judge.
    let dir = tempfile::tempdir().unwrap();
    let oid = odb::object_id(Kind::Tree, b"");
    put_loose(dir.path(), &oid, &zlib(b"tree 0\0"));
    assert_eq!(Odb::new(dir.path()).read(&oid).unwrap(), Some((Kind::Tree, Vec::new())), "positive control");
    let mut evil = b"100644 x\0".to_vec();
    evil.extend_from_slice(&[0x42; 20]);
    write_pack(dir.path(), "forged", &[(oid, [pack_entry_header(2, evil.len() as u64), zlib(&evil)].concat())]);
    assert!(damage_of(Odb::new(dir.path()).read(&oid)).contains("another name"));
}

#[test]
fn a_fifo_in_place_of_a_pack_is_damage_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let hello = odb::object_id(Kind::Blob, b"hello");
    let (pack, _) = write_pack(dir.path(), "fifo", &[(hello, [pack_entry_header(3, 5), zlib(b"hello")].concat())]);
    let mut odb = Odb::new(dir.path());
    assert!(odb.read(&hello).unwrap().is_some(), "positive control");
    std::fs::remove_file(&pack).unwrap();
    rustix::fs::mknodat(rustix::fs::CWD, &pack, rustix::fs::FileType::Fifo, rustix::fs::Mode::from_raw_mode(0o600), 0)
        .unwrap();
    let mut odb = Odb::new(dir.path());
    assert!(damage_of(odb.read(&hello)).contains("FIFO"));
}

/// `index` with the cache-tree node of directory `dir` naming `tree`, and
/// its checksum made right again: what an agent able to write `.git/index`
/// can do.
pub(crate) fn forge_cache_tree(index: &[u8], dir: &[u8], tree: &Oid) -> Vec<u8> {
    let body = &index[..index.len() - 20];
    let ext = body.windows(4).rposition(|w| w == b"TREE").expect("a cache tree");
    let needle = [dir, b"\0"].concat();
    let at = ext + body[ext..].windows(needle.len()).position(|w| w == needle).expect("the node");
    let oid_at = at + body[at..].iter().position(|&b| b == b'\n').unwrap() + 1;
    let mut out = body.to_vec();
    out[oid_at..oid_at + 20].copy_from_slice(tree);
    let sum = sha1_smol::Sha1::from(&out).digest().bytes();
    out.extend_from_slice(&sum);
    out
}

fn oid(repo: &Repo, spec: &str) -> Oid {
    odb::parse_hex(repo.git(&["rev-parse", spec]).trim().as_bytes()).unwrap()
}

#[test]
fn a_forged_cache_tree_committing_unstaged_content_is_refused() {
    let repo = Repo::new();
    repo.write("src/app.txt", "good\n");
    repo.write("base.txt", "base\n");
    repo.git(&["add", "-A"]);
    repo.git(&["commit", "-q", "-m", "one"]);
    // The agent's tree for src/, written to the store, then the index put back.
    repo.write("src/app.txt", "evil\n");
    repo.git(&["add", "-A"]);
    let evil_root = repo.git(&["write-tree"]);
    let evil_src = oid(&repo, &format!("{}:src", evil_root.trim()));
    repo.write("src/app.txt", "good\n");
    repo.git(&["read-tree", "HEAD"]);
    let index_bytes = std::fs::read(repo.index()).unwrap();
    std::fs::write(repo.index(), forge_cache_tree(&index_bytes, b"src", &evil_src)).unwrap();
    // The user stages a change of their own elsewhere.
    repo.write("mine.txt", "mine\n");
    repo.git(&["add", "mine.txt"]);
    // Positive control: git would commit the agent's src/app.txt, which
    // `git diff --cached` does not show.
    let committed = repo.git(&["write-tree"]);
    assert_eq!(oid(&repo, &format!("{}:src", committed.trim())), evil_src, "git trusts the cache tree");
    assert!(!repo.git(&["diff", "--cached", "--name-only"]).contains("src/app.txt"));
    let e = native(&repo.path(), &GitEnv::default()).unwrap_err();
    assert!(e.to_string().contains("src/app.txt"), "{e}");
    // Through git (the fallback) too.
    let redirected = GitEnv { redirected: true, ..GitEnv::default() };
    let e = crate::staged_changes(&repo.path(), &redirected).unwrap_err();
    assert!(e.to_string().contains("src/app.txt"), "{e}");
    // An honest index passes both ways.
    repo.git(&["read-tree", "HEAD"]);
    repo.git(&["add", "mine.txt"]);
    assert_eq!(native(&repo.path(), &GitEnv::default()).unwrap().unwrap().len(), 1);
    assert_eq!(crate::staged_changes(&repo.path(), &redirected).unwrap().len(), 1);
}

#[test]
fn a_delta_cycle_behind_head_refuses_the_commit_with_its_path() {
    let repo = Repo::new();
    repo.write("a.txt", "a\n");
    repo.git(&["add", "-A"]);
    repo.git(&["commit", "-q", "-m", "one"]);
    repo.write("b.txt", "b\n");
    repo.git(&["add", "b.txt"]);
    assert!(native(&repo.path(), &GitEnv::default()).unwrap().is_some(), "positive control");
    // HEAD's commit object replaced by a pack entry that is a delta on itself.
    let head = oid(&repo, "HEAD");
    let name = hex(&head);
    std::fs::remove_file(repo.path().join(".git/objects").join(&name[..2]).join(&name[2..])).unwrap();
    let d = zlib(&delta(5, b"hello"));
    write_pack(
        &repo.path().join(".git/objects"),
        "evil",
        &[(head, [pack_entry_header(7, 8), head.to_vec(), d].concat())],
    );
    let e = native(&repo.path(), &GitEnv::default()).unwrap_err();
    assert!(e.to_string().contains("cycle") && e.to_string().contains("pack-evil.pack"), "{e}");
}

/// A real repository's bytes to mutate: its index (version 2 and 4), a
/// loose tree and a pack with deltas, made once.
struct Seeds {
    index_v2: Vec<u8>,
    index_v4: Vec<u8>,
    loose: Vec<u8>,
    loose_oid: Oid,
    pack: Vec<u8>,
    idx: Vec<u8>,
    packed: Vec<Oid>,
}

fn seeds() -> &'static Seeds {
    static SEEDS: OnceLock<Seeds> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let repo = Repo::new();
        for i in 0..6 {
            repo.write(&format!("d{}/f{i}.txt", i % 2), &format!("{}\n{i}\n", "text ".repeat(40)));
            repo.git(&["add", "-A"]);
            repo.git(&["commit", "-q", "-m", &format!("c{i}")]);
        }
        let tree = oid(&repo, "HEAD^{tree}");
        let name = hex(&tree);
        let loose = std::fs::read(repo.path().join(".git/objects").join(&name[..2]).join(&name[2..])).unwrap();
        let index_v2 = std::fs::read(repo.index()).unwrap();
        repo.git(&["update-index", "--index-version", "4"]);
        let index_v4 = std::fs::read(repo.index()).unwrap();
        repo.git(&["gc", "-q", "--aggressive"]);
        let dir = repo.path().join(".git/objects/pack");
        let find = |ext: &str| {
            let p = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| p.extension() == Some(ext.as_ref()));
            std::fs::read(p.unwrap()).unwrap()
        };
        let list = repo.git(&["rev-list", "--objects", "--all"]);
        let packed = list.lines().map(|l| odb::parse_hex(&l.as_bytes()[..40]).unwrap()).collect();
        Seeds { index_v2, index_v4, loose, loose_oid: tree, pack: find("pack"), idx: find("idx"), packed }
    })
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn random_bytes_never_crash_the_index_reader(bytes in prop::collection::vec(any::<u8>(), 0..600), magic in any::<bool>()) {
        let mut bytes = bytes;
        if magic && bytes.len() >= 12 {
            bytes[..8].copy_from_slice(b"DIRC\0\0\0\x02");
        }
        let _ = index::parse(bytes);
    }

    #[test]
    fn damaged_indexes_never_crash_the_reader(v4 in any::<bool>(), d in damage()) {
        let s = seeds();
        let mut bytes = if v4 { s.index_v4.clone() } else { s.index_v2.clone() };
        apply(&mut bytes, &d);
        if let Some(index) = index::parse(bytes) {
            for e in &index.entries {
                prop_assert!(!index.path(e).is_empty());
            }
        }
    }

    #[test]
    fn damaged_loose_objects_never_crash_the_reader(d in damage(), random in prop::collection::vec(any::<u8>(), 0..200)) {
        let s = seeds();
        let mut bytes = s.loose.clone();
        apply(&mut bytes, &d);
        let dir = tempfile::tempdir().unwrap();
        put_loose(dir.path(), &s.loose_oid, &bytes);
        put_loose(dir.path(), &[1; 20], &random);
        put_loose(dir.path(), &[2; 20], &zlib(&random));
        let mut odb = Odb::new(dir.path());
        for oid in [s.loose_oid, [1; 20], [2; 20]] {
            if let Ok(Some((_, data))) = odb.read(&oid) {
                prop_assert!(data.len() <= odb::MAX_OBJECT);
            }
        }
    }

    #[test]
    fn random_and_damaged_trees_and_commits_never_crash_their_parsers(
        bytes in prop::collection::vec(any::<u8>(), 0..300),
        d in damage(),
    ) {
        let _ = odb::parse_tree(&bytes);
        let _ = odb::commit_tree(&bytes);
        let mut tree = b"100644 a\x00".to_vec();
        tree.extend_from_slice(&[7; 20]);
        tree.extend_from_slice(b"40000 dir\x00");
        tree.extend_from_slice(&[8; 20]);
        apply(&mut tree, &d);
        if let Some(entries) = odb::parse_tree(&tree) {
            prop_assert!(entries.len() <= tree.len() / 22 + 1);
        }
    }

    #[test]
    fn random_deltas_on_a_real_base_never_crash_the_reader(
        delta in prop::collection::vec(any::<u8>(), 0..64),
        sized in any::<bool>(),
    ) {
        let mut delta = delta;
        // Half of them with the base's right size, so that their
        // instructions are applied.
        if sized && !delta.is_empty() {
            delta[0] = 5;
        }
        let dir = tempfile::tempdir().unwrap();
        delta_pack(dir.path(), [0xde; 20], &delta);
        let started = Instant::now();
        // No content is named 0xde…: a delta that applies is refused by
        // its name, one that does not by its bytes; never a panic.
        let read = Odb::new(dir.path()).read(&[0xde; 20]);
        prop_assert!(!matches!(read, Ok(Some(_))), "{read:?}");
        prop_assert!(started.elapsed() < Duration::from_secs(2));
    }
}

proptest! {
    // Each case writes a pack and reads every object: fewer, larger cases.
    #![proptest_config(config(48))]

    #[test]
    fn damaged_packs_and_pack_indexes_never_crash_or_hang_the_reader(dp in damage(), di in damage(), which in 0..3u8) {
        let s = seeds();
        let dir = tempfile::tempdir().unwrap();
        let packs = dir.path().join("pack");
        std::fs::create_dir(&packs).unwrap();
        let (mut pack, mut idx) = (s.pack.clone(), s.idx.clone());
        if which != 1 {
            apply(&mut pack, &dp);
        }
        if which != 0 {
            apply(&mut idx, &di);
        }
        std::fs::write(packs.join("pack-x.pack"), pack).unwrap();
        std::fs::write(packs.join("pack-x.idx"), idx).unwrap();
        let mut odb = Odb::new(dir.path());
        let started = Instant::now();
        for oid in &s.packed {
            if let Ok(Some((_, data))) = odb.read(oid) {
                prop_assert!(data.len() <= odb::MAX_OBJECT);
            }
        }
        prop_assert!(started.elapsed() < Duration::from_secs(5));
    }
}

fn test_fingerprint(name: &str, secret: &[u8]) -> crate::Fingerprint {
    crate::Fingerprint::of(name, secret)
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn secrets_found_in_pieces_are_the_ones_found_whole(
        filler in prop::collection::vec(prop_oneof![Just(b'\n'), Just(b'a'), any::<u8>()], 0..400),
        at in prop::collection::vec(any::<prop::sample::Index>(), 0..3),
        pieces in prop::collection::vec(1usize..50, 1..20),
    ) {
        let secrets: [&[u8]; 3] = [b"sk-secret-one-1234", b"another-token-xyz", b"short123"];
        let fps: Vec<crate::Fingerprint> =
            secrets.iter().enumerate().map(|(i, s)| test_fingerprint(&format!("s{i}"), s)).collect();
        let mut content = filler;
        for (k, i) in at.iter().enumerate() {
            let pos = i.index(content.len() + 1);
            content.splice(pos..pos, secrets[k].iter().copied());
        }
        let whole: Vec<(String, usize)> = crate::find(&content, &fps)
            .into_iter()
            .map(|f| (f.fingerprint.name.clone(), content[..f.offset].iter().filter(|&&b| b == b'\n').count() + 1))
            .collect();
        let mut scanner = crate::fingerprint::Scanner::new(&fps);
        let mut rest = &content[..];
        for n in pieces.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (piece, tail) = rest.split_at((*n).min(rest.len()));
            scanner.feed(piece);
            rest = tail;
        }
        let mut streamed: Vec<(String, usize)> = scanner.finish().into_iter().map(|(f, l)| (f.name.clone(), l)).collect();
        let mut whole = whole;
        whole.sort();
        streamed.sort();
        prop_assert_eq!(streamed, whole);
    }
}

#[test]
fn a_staged_blob_larger_than_is_held_whole_is_examined_in_pieces() {
    let repo = Repo::new();
    let secret = b"sk-large-file-secret-0042";
    let mut content = vec![b'x'; crate::MAX_WHOLE + 1000];
    content[10] = b'\n';
    content.extend_from_slice(b"\nKEY=");
    content.extend_from_slice(secret);
    std::fs::write(repo.path().join("big.bin"), &content).unwrap();
    repo.git(&["add", "big.bin"]);
    let blob = repo.git(&["rev-parse", ":big.bin"]).trim().to_owned();
    let staged =
        crate::StagedPath { path: b"big.bin".to_vec(), staged: crate::Staged::File { executable: false, blob } };
    let fps = [test_fingerprint("big", secret)];
    let mut got = Vec::new();
    crate::examine_staged(&repo.path(), &[&staged], &fps, |k, e| {
        got.push((k, e.blake3, e.secrets.len(), e.secrets.first().map(|s| s.1)))
    })
    .unwrap();
    assert_eq!(got, [(0, *blake3::hash(&content).as_bytes(), 1, Some(3))]);
}

/// The corpus kept in the repository (`tests/corpus/`): the attack fixtures
/// above as files, replayed through every reader.
fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// The name of a loose object file's content (inflated here, by the test).
fn loose_name(bytes: &[u8]) -> Oid {
    let all = miniz_oxide::inflate::decompress_to_vec_zlib(bytes).unwrap();
    let nul = all.iter().position(|&b| b == 0).unwrap();
    let kind = match all.split(|&b| b == b' ').next().unwrap() {
        b"tree" => Kind::Tree,
        b"commit" => Kind::Commit,
        b"blob" => Kind::Blob,
        _ => Kind::Tag,
    };
    odb::object_id(kind, &all[nul + 1..])
}

fn corpus_files(kind: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(corpus_dir().join(kind)).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

/// Each corpus file through its reader: no panic, an answer within 5 s,
/// and nothing larger than the reader's bounds.
#[test]
fn the_kept_corpus_replays_bounded_and_without_a_panic() {
    let within = |what: &Path, started: Instant| {
        assert!(started.elapsed() < Duration::from_secs(5), "{}: {:?}", what.display(), started.elapsed());
    };
    let mut seen = 0;
    for f in corpus_files("index") {
        let started = Instant::now();
        let by_path = index::read(&f).unwrap();
        assert_eq!(by_path, index::parse(std::fs::read(&f).unwrap()), "{}", f.display());
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(by_path.is_some(), name.starts_with("real-"), "{name}: read natively or handed to git");
        within(&f, started);
        seen += 1;
    }
    for f in corpus_files("loose") {
        let started = Instant::now();
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&f).unwrap();
        // A real object is read under its own name.
        let oid = if name.starts_with("real-") { loose_name(&bytes) } else { [0x5a; 20] };
        let dir = tempfile::tempdir().unwrap();
        put_loose(dir.path(), &oid, &bytes);
        match Odb::new(dir.path()).read(&oid) {
            Ok(Some((_, data))) => assert!(name.starts_with("real-") && data.len() <= odb::MAX_OBJECT, "{name}"),
            other => assert!(!name.starts_with("real-"), "{name}: {other:?}"),
        }
        within(&f, started);
        seen += 1;
    }
    for f in corpus_files("delta") {
        let started = Instant::now();
        let dir = tempfile::tempdir().unwrap();
        let oid = odb::object_id(Kind::Blob, b"hello world");
        delta_pack(dir.path(), oid, &std::fs::read(&f).unwrap());
        let out = Odb::new(dir.path()).read(&oid);
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(matches!(out, Ok(Some(_))), name.starts_with("real-"), "{name}: {out:?}");
        within(&f, started);
        seen += 1;
    }
    for dir in corpus_files("pack") {
        let started = Instant::now();
        let oids = std::fs::read_to_string(dir.join("oids")).unwrap();
        let mut odb = Odb::new(&dir);
        let mut read = 0;
        for line in oids.lines() {
            let oid = odb::parse_hex(line.as_bytes()).unwrap();
            if let Ok(Some((_, data))) = odb.read(&oid) {
                assert!(data.len() <= odb::MAX_OBJECT);
                read += 1;
            }
        }
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        // A truncated pack still gives what lies before the cut.
        if !name.starts_with("truncated") {
            assert_eq!(read > 0, name.starts_with("real-"), "{name}: {read} objects read");
        }
        within(&dir, started);
        seen += 1;
    }
    assert!(seen >= 15, "the corpus is missing: {seen} fixtures");
}

/// Writes the corpus again: `cargo test -p ws-hooks -- --ignored write_the_corpus`.
#[test]
#[ignore = "writes tests/corpus/"]
fn write_the_corpus() {
    let root = corpus_dir();
    let _ = std::fs::remove_dir_all(&root);
    let put = |kind: &str, name: &str, bytes: &[u8]| {
        std::fs::create_dir_all(root.join(kind)).unwrap();
        std::fs::write(root.join(kind).join(name), bytes).unwrap();
    };
    let s = seeds();
    // Index files.
    put("index", "real-v2", &s.index_v2);
    put("index", "real-v4", &s.index_v4);
    let header = |version: u32, count: u32| {
        [b"DIRC".to_vec(), version.to_be_bytes().to_vec(), count.to_be_bytes().to_vec()].concat()
    };
    put("index", "count-claims-2^32-1", &[header(2, u32::MAX), vec![0; 20]].concat());
    let entry = |flags: u16| {
        let mut e = vec![0u8; 24];
        e.extend_from_slice(&0o100644u32.to_be_bytes());
        e.extend_from_slice(&[0; 12]);
        e.extend_from_slice(&[0x42; 20]);
        e.extend_from_slice(&flags.to_be_bytes());
        e
    };
    let no_nul = [header(2, 1), entry(0x0fff), vec![b'a'; 70_000], vec![0; 20]].concat();
    put("index", "name-without-nul-past-64KiB", &no_nul);
    let unmerged = [header(2, 1), entry(0x1001), b"a\0\0\0\0\0\0\0".to_vec(), vec![0; 20]].concat();
    put("index", "unmerged-stage", &unmerged);
    let mut strip = [header(4, 2), entry(1), vec![0], b"a\0".to_vec()].concat();
    strip.extend([entry(1), vec![9], b"b\0".to_vec(), vec![0; 20]].concat());
    put("index", "v4-strips-more-than-the-previous-path", &strip);
    // Each path the previous one plus 32 bytes: 2,048 entries of ~100 bytes
    // would spell 64 MiB of paths.
    let mut grow = header(4, 2048);
    for _ in 0..2048 {
        grow.extend(entry(0));
        grow.push(0);
        grow.extend_from_slice(&[b'x'; 32]);
        grow.push(0);
    }
    grow.extend_from_slice(&[0; 20]);
    put("index", "v4-each-path-longer-than-the-last", &grow);
    let mut ext = s.index_v2[..s.index_v2.len() - 20].to_vec();
    ext.extend_from_slice(b"TREE\xff\xff\xff\xff");
    ext.extend_from_slice(&[0; 20]);
    put("index", "extension-claiming-4GiB", &ext);
    put("index", "truncated", &s.index_v2[..s.index_v2.len() / 2]);
    // A cache tree 40,000 directories deep in 280 KB, its checksum right:
    // git itself and `gix-index` (0.58, 0.59) recurse once per level and overflow
    // their stacks (both crash on it); the hook's reader stops at 4,096.
    let mut tree = b"\0-1 1\n".to_vec();
    for _ in 0..40_000 {
        tree.extend_from_slice(b"a\0-1 1\n");
    }
    tree.extend_from_slice(b"a\0-1 0\n");
    let mut deep = header(2, 0);
    deep.extend_from_slice(b"TREE");
    deep.extend_from_slice(&u32::try_from(tree.len()).unwrap().to_be_bytes());
    deep.extend_from_slice(&tree);
    let sum = sha1_smol::Sha1::from(&deep).digest().bytes();
    deep.extend_from_slice(&sum);
    put("index", "cache-tree-nested-40000-deep", &deep);
    // Loose objects.
    put("loose", "real-tree", &s.loose);
    put("loose", "zlib-bomb-8MiB-behind-a-10-byte-header", &zlib_bomb());
    put("loose", "header-claiming-1TiB", &zlib(b"tree 1099511627776\0"));
    put("loose", "not-zlib", b"definitely not zlib");
    put("loose", "no-header-end", &zlib(&[b'b'; 200]));
    // Deltas on the base "hello".
    put("delta", "real-hello-world", &delta(5, b"hello world"));
    let mut huge = vec![5u8];
    let mut v = 1u64 << 50;
    while v >= 0x80 {
        huge.push((v as u8) | 0x80);
        v >>= 7;
    }
    huge.push(v as u8);
    put("delta", "result-claiming-2^50", &huge);
    put("delta", "copy-past-the-base", &[5, 10, 0x91, 0, 10]);
    put("delta", "base-size-wrong", &[9, 1, 1, b'x']);
    // Packs: each directory an objects directory, with the names to read.
    let pack = |name: &str, write: &dyn Fn(&Path) -> Vec<Oid>| {
        let dir = root.join("pack").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let oids = write(&dir);
        let list: String = oids.iter().map(|o| format!("{}\n", hex(o))).collect();
        std::fs::write(dir.join("oids"), list).unwrap();
    };
    pack("real-gc", &|dir| {
        std::fs::create_dir_all(dir.join("pack")).unwrap();
        std::fs::write(dir.join("pack/pack-x.pack"), &s.pack).unwrap();
        std::fs::write(dir.join("pack/pack-x.idx"), &s.idx).unwrap();
        s.packed.clone()
    });
    pack("ref-delta-cycles-and-ofs-self", &|dir| cycle_pack(dir).to_vec());
    pack("truncated", &|dir| {
        std::fs::create_dir_all(dir.join("pack")).unwrap();
        std::fs::write(dir.join("pack/pack-x.pack"), &s.pack[..s.pack.len() / 2]).unwrap();
        std::fs::write(dir.join("pack/pack-x.idx"), &s.idx).unwrap();
        s.packed.iter().rev().take(8).copied().collect()
    });
    pack("entry-claiming-2^50", &|dir| {
        let whole = [pack_entry_header(3, 1 << 50), zlib(b"hello")].concat();
        write_pack(dir, "huge", &[([0x0a; 20], whole)]);
        vec![[0x0a; 20]]
    });
    pack("delta-chain-5000-deep", &|dir| {
        let mut entries =
            vec![(odb::object_id(Kind::Blob, b"hello"), [pack_entry_header(3, 5), zlib(b"hello")].concat())];
        let mut last = entries[0].1.len() as u64;
        for i in 1..5000u32 {
            let content = format!("h{i:04}");
            let bytes = [pack_entry_header(6, 8), ofs(last), zlib(&delta(5, content.as_bytes()))].concat();
            last = bytes.len() as u64;
            entries.push((odb::object_id(Kind::Blob, content.as_bytes()), bytes));
        }
        write_pack(dir, "deep", &entries);
        vec![entries[4999].0]
    });
}
