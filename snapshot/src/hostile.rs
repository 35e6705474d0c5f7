//! Hostile store files: manifests, change sets, rollback journals, audit
//! logs and seals that are random bytes, truncated, flipped, or re-sealed
//! after a mutation (so that the decoder behind the checksum is reached).
//! No reader may panic, and every error must name the file and a position
//! inside it (a byte offset, or a line).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use ws_testkit::{apply, damage};

use crate::audit::{self, AuditError, AuditLog, Event, Recording, WriteOp};
use crate::changes::{Change, ChangeKind, ChangeState, decode_changes, encode_changes, encode_changes_v3};
use crate::error::{ManifestError, SessionError, StoreError};
use crate::manifest::{Entry, EntryKind, ExcludeReason, Manifest};
use crate::path::RelPath;
use crate::renames::Rename;
use crate::stat::FileStat;
use crate::store::{ObjectId, Store};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// A path component: any bytes but NUL and `/`, never `.` or `..`.
fn component() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>().prop_filter("no NUL or /", |b| *b != 0 && *b != b'/'), 1..12)
        .prop_filter("not . or ..", |c| c != b"." && c != b"..")
}

/// Random names, or names from a few that sort around `/` (`a-b`, `a.b`,
/// `a0`) so that paths share directories and chains, as front coding meets
/// them in a real tree.
fn rel_path() -> impl Strategy<Value = RelPath> {
    let few = prop::sample::select(vec![&b"a"[..], b"b", b"a-b", b"a.b", b"a0", b"ab"]).prop_map(<[u8]>::to_vec);
    prop_oneof![prop::collection::vec(component(), 1..4), prop::collection::vec(few, 1..8),]
        .prop_map(|cs| RelPath::from_bytes(&cs.join(&b'/')).unwrap())
}

fn entry_kind() -> impl Strategy<Value = EntryKind> {
    prop_oneof![
        (any::<[u8; 16]>(), any::<Option<[u8; 32]>>())
            .prop_map(|(o, hash)| EntryKind::File { object: ObjectId::from_bytes(o), hash }),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(|target| EntryKind::Symlink { target }),
        Just(EntryKind::Dir),
        (0..4u8, any::<u64>(), any::<u64>()).prop_map(|(r, files, bytes)| EntryKind::Excluded {
            reason: [
                ExcludeReason::OverBudget,
                ExcludeReason::Special,
                ExcludeReason::Unreadable,
                ExcludeReason::NoSpace
            ][r as usize],
            files,
            bytes,
        }),
    ]
}

fn entry() -> impl Strategy<Value = Entry> {
    (rel_path(), entry_kind(), any::<(u64, u64, u32, u64, u64, i64, i64)>(), any::<bool>()).prop_map(
        |(path, kind, (dev, ino, mode, nlink, size, mtime_ns, ctime_ns), racy)| Entry {
            path,
            kind,
            stat: FileStat { dev, ino, mode, nlink, size, mtime_ns, ctime_ns },
            racy,
        },
    )
}

fn manifest() -> impl Strategy<Value = Manifest> {
    (any::<i64>(), prop::collection::vec(entry(), 0..12)).prop_map(|(started_ns, entries)| {
        let mut m = Manifest { started_ns, entries, id: None };
        m.sort();
        m.entries.dedup_by(|a, b| a.path == b.path);
        m
    })
}

fn changes() -> impl Strategy<Value = Vec<Change>> {
    let change = (entry(), 0..3u8, 0..3u8, entry_kind()).prop_map(|(e, sides, state, other)| {
        let after = Entry { kind: other, ..e.clone() };
        let (before, after) = match sides {
            0 => (Some(e), None),
            1 => (None, Some(after)),
            _ => (Some(e), Some(after)),
        };
        let path = before.as_ref().or(after.as_ref()).unwrap().path.clone();
        let state = [ChangeState::Pending, ChangeState::Approved, ChangeState::RolledBack][state as usize];
        Change { path, before, after, state, rename: None }
    });
    // The first deletion and creation, when their paths are unique, made a
    // rename, so that damage reaches the rename records too.
    (prop::collection::vec(change, 0..8), 1..=100u8).prop_map(|(mut cs, similarity)| {
        let unique = |p: &RelPath, cs: &[Change]| cs.iter().filter(|c| &c.path == p).count() == 1;
        let from = cs.iter().position(|c| c.kind() == ChangeKind::Removed && unique(&c.path, &cs));
        let to = cs.iter().position(|c| c.kind() == ChangeKind::Added && unique(&c.path, &cs));
        if let (Some(f), Some(t)) = (from, to) {
            let (fp, tp) = (cs[f].path.clone(), cs[t].path.clone());
            cs[f].rename = Some(Rename { other: tp, similarity });
            cs[t].rename = Some(Rename { other: fp, similarity });
        }
        cs
    })
}

/// Replaces the trailing BLAKE3 with the hash of the (damaged) body, as
/// someone who knows the format would: the checksum no longer stops the
/// damage, the decoder has to.
fn reseal(bytes: &mut [u8]) {
    if bytes.len() < 32 {
        return;
    }
    let body = bytes.len() - 32;
    let sum = *blake3::hash(&bytes[..body]).as_bytes();
    bytes[body..].copy_from_slice(&sum);
}

#[track_caller]
fn assert_names_file_and_byte(e: &ManifestError, origin: &Path, len: usize) {
    let ManifestError::Corrupt { path, offset, .. } = e else { panic!("{e}") };
    assert_eq!(path, origin);
    assert!(*offset <= len, "offset {offset} past the end ({len}): {e}");
    let msg = e.to_string();
    assert!(msg.contains(&origin.display().to_string()) && msg.contains(&format!("byte {offset}")), "{msg}");
}

/// Decodes hostile bytes as a manifest: an error naming file and byte, or a
/// manifest that keeps the type's promises (sorted, valid relative paths).
fn decode_manifest(bytes: &[u8]) {
    let origin = Path::new("/store/manifests/hostile");
    let whole = Manifest::decode(bytes, origin);
    match &whole {
        Err(e) => assert_names_file_and_byte(e, origin, bytes.len()),
        Ok(m) => {
            assert!(m.entries.windows(2).all(|w| w[0].path < w[1].path));
            for e in &m.entries {
                assert!(!e.path.is_root() && RelPath::from_bytes(e.path.as_bytes()).as_ref() == Some(&e.path));
            }
        }
    }
    // Read through its index, it reads the same, or fails, or (damage only
    // the whole file's checksum sees, which a reader in part never reads)
    // reads what the index and its blocks vouch for.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m");
    std::fs::write(&path, bytes).unwrap();
    let id = crate::ManifestId("hostile".into());
    if let Ok(Some(f)) = crate::ManifestFile::open(&path, id)
        && let Ok(read) = f.read_all()
    {
        assert!(read.entries.windows(2).all(|w| w[0].path < w[1].path), "read in part out of order");
        if let Ok(m) = &whole {
            assert_eq!(read.entries, m.entries, "read in part, not whole");
        }
    }
}

fn decode_change_set(bytes: &[u8]) {
    let origin = Path::new("/store/sessions/s/changes");
    match decode_changes(bytes, origin) {
        Err(e) => assert_names_file_and_byte(&e, origin, bytes.len()),
        Ok(cs) => {
            for c in cs {
                assert!(c.before.is_some() || c.after.is_some());
                for side in [&c.before, &c.after].into_iter().flatten() {
                    assert_eq!(side.path, c.path);
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn manifests_round_trip(m in manifest()) {
        prop_assert_eq!(&Manifest::decode(&m.encode(), Path::new("m")).unwrap(), &m);
        prop_assert_eq!(&Manifest::decode(&m.encode_v2(), Path::new("m")).unwrap(), &m);
    }

    #[test]
    fn random_bytes_are_no_manifest_and_no_change_set(mut bytes in prop::collection::vec(any::<u8>(), 0..300), magic in 0..6usize) {
        // Past the magic number of each format, so the length fields are what is random.
        let magics: [&[u8]; 5] = [b"WSMANIF3", b"WSMANIF2", b"WSCHANG4", b"WSCHANG3", b"WSCHANG2"];
        if let Some(m) = magics.get(magic) {
            bytes.splice(0..0, m.iter().copied());
        }
        decode_manifest(&bytes);
        reseal(&mut bytes);
        decode_manifest(&bytes);
        decode_change_set(&bytes);
    }

    #[test]
    fn damaged_manifests_are_errors_naming_file_and_byte(m in manifest(), d in damage(), old in any::<bool>()) {
        let mut bytes = if old { m.encode_v2() } else { m.encode() };
        apply(&mut bytes, &d);
        decode_manifest(&bytes);
        reseal(&mut bytes);
        decode_manifest(&bytes);
    }

    #[test]
    fn damaged_change_sets_are_errors_naming_file_and_byte(cs in changes(), d in damage(), old in any::<bool>()) {
        let mut bytes = if old { encode_changes_v3(&cs, true) } else { encode_changes(&cs) };
        prop_assert_eq!(&decode_changes(&bytes, Path::new("c")).unwrap(), &cs);
        apply(&mut bytes, &d);
        decode_change_set(&bytes);
        reseal(&mut bytes);
        decode_change_set(&bytes);
    }
}

/// A store with one session directory, for the readers that take a store.
fn store_with_session(dir: &Path) -> (Store, PathBuf) {
    let ws = dir.join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    let store = Store::open_or_create(&dir.join("store"), &ws).unwrap();
    let session = store.sessions_dir().join("s1");
    std::fs::create_dir_all(&session).unwrap();
    (store, session)
}

fn journal_text() -> impl Strategy<Value = Vec<u8>> {
    let work = prop_oneof![Just(String::new()), "[0-9a-f]{32}", "[0-9a-f./]{0,34}", any::<String>()];
    let valid = (prop::collection::vec(any::<usize>(), 0..6), any::<bool>(), work)
        .prop_map(|(i, f, work)| serde_json::to_vec(&crate::session::Journal { indices: i, force: f, work }).unwrap());
    prop_oneof![
        2 => (valid, damage()).prop_map(|(mut b, d)| {
            apply(&mut b, &d);
            b
        }),
        1 => prop::collection::vec(any::<u8>(), 0..60),
        1 => "\\{\"indices\": ?\\[[-0-9e., ]{0,20}\\]?, ?\"force\": ?(true|false|null|1)\\}?".prop_map(String::into_bytes),
    ]
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn damaged_journals_are_errors_naming_file_and_line(text in journal_text()) {
        let d = tempfile::tempdir().unwrap();
        let (store, session) = store_with_session(d.path());
        let path = session.join("rollback.journal");
        std::fs::write(&path, &text).unwrap();
        match store.read_journal("s1") {
            Ok(j) => {
                let j = j.unwrap();
                prop_assert!(j.work.is_empty() || crate::store::is_work_token(&j.work), "{:?}", j.work);
            }
            Err(SessionError::DamagedJournal { path: p, what }) => {
                prop_assert_eq!(&p, &path);
                prop_assert!(what.contains(" at line ") || what.contains("EOF"), "{}", what);
                let msg = SessionError::DamagedJournal { path: p, what }.to_string();
                prop_assert!(msg.contains(&path.display().to_string()));
            }
            Err(e) => prop_assert!(false, "{}", e),
        }
    }
}

#[test]
fn a_journal_that_cannot_be_read_is_an_error_and_none_is_no_rollback() {
    let d = tempfile::tempdir().unwrap();
    let (store, session) = store_with_session(d.path());
    assert!(store.read_journal("s1").unwrap().is_none());
    std::fs::create_dir(session.join("rollback.journal")).unwrap();
    match store.read_journal("s1") {
        Err(SessionError::Store(StoreError::Io { path, .. })) => assert_eq!(path, session.join("rollback.journal")),
        other => panic!("{other:?}"),
    }
}

const SID: &str = "5e5510a1";

/// A sealed log of `n` records of every event type.
fn sealed_log(dir: &Path, n: u64) -> PathBuf {
    let path = dir.join(audit::LOG_FILE);
    let log = AuditLog::create(&path, SID).unwrap();
    let recording = Recording { writes: "fanotify".into(), denials: "none".into(), ..Recording::default() };
    let start = Event::SessionStart {
        session: SID.into(),
        profile: "default".into(),
        command: vec!["sh".into(), "-c".into(), "x\ny".into()],
        layers: vec!["landlock".into()],
        not_enforced: vec![],
        recording,
    };
    log.append(1, start).unwrap();
    for i in 1..n {
        let event = match i % 4 {
            0 => Event::Write {
                pid: 2,
                exe: Some("/bin/sh".into()),
                ops: vec![WriteOp::Create, WriteOp::CloseWrite],
                path: format!("dir/f\u{e9}{i}"),
                to: None,
                dir: false,
            },
            1 => Event::Denial {
                pid: None,
                exe: None,
                access: vec!["fs.read".into()],
                object: None,
                by: "landlock".into(),
            },
            2 => Event::OutsideWrite { path: format!("o{i}") },
            _ => Event::Net {
                method: "GET".into(),
                host: "example.com".into(),
                path: "/".into(),
                decision: "deny".into(),
                rule: None,
                status: Some(403),
                bytes_up: 0,
                bytes_down: 0,
                credential: None,
                reason: Some("not allowed".into()),
            },
        };
        log.append(1 + i, event).unwrap();
    }
    log.append(n + 1, Event::SessionEnd { exit_code: Some(0), signal: None, complete: true }).unwrap();
    log.seal().unwrap();
    path
}

/// An error with its sources, as the CLI prints it.
fn chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        cur = s.source();
    }
    msg
}

/// Verifies and reads a damaged log: intact, or an error naming the log and
/// a line that exists; never a panic.
fn check_log(path: &Path, lines: u64) {
    let named = |e: &AuditError| {
        let msg = chain(e);
        assert!(msg.contains(&path.display().to_string()) || msg.contains(audit::SEAL_FILE), "{msg}");
    };
    match audit::verify(path, SID) {
        Ok(s) => assert!(s.records <= lines + 1),
        Err(e @ AuditError::Damaged { .. }) => {
            named(&e);
            let AuditError::Damaged { source, .. } = &e else { unreachable!() };
            assert!((1..=lines.max(1)).contains(&source.line), "line {} of {lines}: {e}", source.line);
        }
        Err(e @ AuditError::DamagedSeal { .. }) => {
            named(&e);
            assert!(e.to_string().contains(" at line "), "{e}");
        }
        Err(e) => panic!("{e}"),
    }
    match audit::read(path) {
        Ok(_) => {}
        Err(e @ AuditError::Damaged { .. }) => named(&e),
        Err(e) => panic!("{e}"),
    }
    // Reopening to append verifies first: never appends to a damaged chain.
    let _ = AuditLog::open(path, SID);
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn damaged_audit_logs_are_named_by_line(n in 1..12u64, d in damage(), seal_damage in prop::option::weighted(0.2, damage())) {
        let dir = tempfile::tempdir().unwrap();
        let path = sealed_log(dir.path(), n);
        let mut bytes = std::fs::read(&path).unwrap();
        apply(&mut bytes, &d);
        std::fs::write(&path, &bytes).unwrap();
        if let Some(sd) = seal_damage {
            let seal = path.with_file_name(audit::SEAL_FILE);
            let mut s = std::fs::read(&seal).unwrap();
            apply(&mut s, &sd);
            std::fs::write(&seal, &s).unwrap();
        }
        let lines = bytes.iter().filter(|b| **b == b'\n').count() as u64 + 1;
        check_log(&path, lines);
    }

    #[test]
    fn random_bytes_are_no_audit_log(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(audit::LOG_FILE);
        std::fs::write(&path, &bytes).unwrap();
        let lines = bytes.iter().filter(|b| **b == b'\n').count() as u64 + 1;
        check_log(&path, lines);
    }
}

#[test]
fn a_damaged_seal_is_an_error_not_an_unsealed_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = sealed_log(dir.path(), 4);
    let seal = path.with_file_name(audit::SEAL_FILE);
    // Records cut off the end, and the seal that would say so made unreadable as JSON.
    let bytes = std::fs::read(&path).unwrap();
    let first_two: usize = bytes.split_inclusive(|b| *b == b'\n').take(2).map(<[u8]>::len).sum();
    std::fs::write(&path, &bytes[..first_two]).unwrap();
    std::fs::write(&seal, b"{\"records\":5,\"last\":").unwrap();
    match audit::verify(&path, SID) {
        Err(AuditError::DamagedSeal { path: p, what }) => {
            assert_eq!(p, seal);
            assert!(what.contains("line 1 column 20"), "{what}");
        }
        other => panic!("a damaged seal let the cut log through: {other:?}"),
    }
}

#[test]
fn reading_names_a_damaged_line_and_tolerates_a_cut_last_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = sealed_log(dir.path(), 4);
    let mut bytes = std::fs::read(&path).unwrap();
    // A writer killed mid-append leaves a last line without its newline.
    bytes.extend_from_slice(b"{\"seq\":6,\"ti");
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(audit::read(&path).unwrap().len(), 5);
    // A complete line that is not a record is named, with its column.
    let third = bytes.split_inclusive(|b| *b == b'\n').take(2).map(<[u8]>::len).sum::<usize>();
    bytes[third + 1] = b'!';
    std::fs::write(&path, &bytes).unwrap();
    match audit::read(&path) {
        Err(AuditError::Damaged { path: p, source }) => {
            assert_eq!((p, source.line), (path.clone(), 3));
            assert!(source.to_string().ends_with("at column 2"), "{source}");
        }
        other => panic!("{other:?}"),
    }
}

/// The corpus kept in the repository (`tests/corpus/`): manifests and change
/// sets in every format, valid and hostile, each replayed through its reader.
fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// Every corpus file through its reader: an error naming the file and a
/// byte, or a value that keeps the type's promises, each within a bound.
#[test]
fn the_kept_corpus_replays_bounded_and_without_a_panic() {
    let mut seen = 0;
    for (kind, decode) in [("manifest", decode_manifest as fn(&[u8])), ("changes", decode_change_set)] {
        let dir = corpus_dir().join(kind);
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            let started = std::time::Instant::now();
            decode(&bytes);
            let took = started.elapsed();
            assert!(took < std::time::Duration::from_secs(2), "{}: {took:?}", path.display());
            seen += 1;
        }
    }
    assert!(seen >= 20, "the corpus is missing: {seen} files");
    // The valid ones decode (positive control), every other one is refused.
    let valid = [
        "v4-sample",
        "v4-deep-chain-1000",
        "v3-sample",
        "v2-sample",
        "v3-deep-chain-1000",
        "v4-rename-pair",
        "v3-rename-pair",
        "v2-plain",
    ];
    for kind in ["manifest", "changes"] {
        for entry in std::fs::read_dir(corpus_dir().join(kind)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let bytes = std::fs::read(&path).unwrap();
            let ok = match kind {
                "manifest" => Manifest::decode(&bytes, &path).map(drop),
                _ => decode_changes(&bytes, &path).map(drop),
            };
            assert_eq!(ok.is_ok(), valid.contains(&name.as_str()), "{kind}/{name}: {ok:?}");
        }
    }
}

/// Writes the corpus again (after a format change):
/// `cargo test -p ws-snapshot -- --ignored write_the_corpus`.
#[test]
#[ignore = "writes tests/corpus/"]
fn write_the_corpus() {
    use crate::manifest::Writer;
    let stat = FileStat { dev: 1, ino: 2, mode: 0o100644, nlink: 1, size: 3, mtime_ns: 4, ctime_ns: 5 };
    let p = |b: &[u8]| RelPath::from_bytes(b).unwrap();
    let file = |path: &[u8]| Entry {
        path: p(path),
        kind: EntryKind::File { object: ObjectId::from_bytes([7; 16]), hash: Some([9; 32]) },
        stat,
        racy: false,
    };
    let dir = |path: RelPath| Entry { path, kind: EntryKind::Dir, stat, racy: false };
    let mut sample = Manifest {
        started_ns: 42,
        id: None,
        entries: vec![
            file(b"a\nb"),
            dir(p(b"d")),
            file(b"d-x"),
            file(b"d/a"),
            file(b"d/a.b/c"),
            Entry { path: p(b"l\xff"), kind: EntryKind::Symlink { target: b"/etc/passwd".to_vec() }, stat, racy: true },
            Entry {
                path: p(b"target"),
                kind: EntryKind::Excluded { reason: ExcludeReason::OverBudget, files: 9, bytes: 10 },
                stat,
                racy: false,
            },
        ],
    };
    sample.sort();
    let mut chain = Manifest::default();
    let mut at = RelPath::root();
    for _ in 0..1000 {
        at = at.join(b"d");
        chain.entries.push(dir(at.clone()));
    }
    chain.sort();
    // A manifest body by hand: header, then (shared, rest) pairs with a
    // directory entry's fields each, resealed.
    let hand = |magic: &[u8], count: u64, paths: &[(u32, &[u8])]| {
        let mut w = Writer(magic.to_vec());
        w.i64(0);
        w.u64(count);
        for (shared, rest) in paths {
            if magic == b"WSMANIF2" {
                w.bytes(rest);
            } else {
                w.u32(*shared);
                w.bytes(rest);
            }
            crate::manifest::encode_body(&mut w, &dir(RelPath::root()));
        }
        w.sealed()
    };
    let mut truncated = sample.encode_v3();
    truncated.truncate(truncated.len() / 2);
    let mut v4_truncated = sample.encode();
    v4_truncated.truncate(v4_truncated.len() / 2);
    // The index said to start past the end of the file, resealed.
    let mut v4_index_past_end = sample.encode();
    let tail = v4_index_past_end.len() - 32 - crate::manifest::TAIL;
    v4_index_past_end[tail..tail + 8].copy_from_slice(&u64::MAX.to_le_bytes());
    v4_index_past_end.truncate(v4_index_past_end.len() - 32);
    reseal_append(&mut v4_index_past_end);
    let mut trailing = sample.encode_v3();
    trailing.truncate(trailing.len() - 32);
    trailing.push(0);
    reseal_append(&mut trailing);
    let manifests: Vec<(&str, Vec<u8>)> = vec![
        ("v4-sample", sample.encode()),
        ("v4-deep-chain-1000", chain.encode()),
        ("v4-truncated", v4_truncated),
        ("v4-index-past-the-end", v4_index_past_end),
        ("v3-sample", sample.encode_v3()),
        ("v2-sample", sample.encode_v2()),
        ("v3-deep-chain-1000", chain.encode_v3()),
        ("v3-count-claims-2^62", hand(b"WSMANIF3", 1 << 62, &[(0, b"a")])),
        ("v2-count-claims-2^62", hand(b"WSMANIF2", 1 << 62, &[(0, b"a")])),
        ("v3-shared-past-previous", hand(b"WSMANIF3", 2, &[(0, b"a"), (9, b"b")])),
        ("v3-shared-inside-a-name", hand(b"WSMANIF3", 2, &[(0, b"ab/c"), (1, b"x")])),
        ("v3-rest-dotdot", hand(b"WSMANIF3", 2, &[(0, b"a"), (1, b"..")])),
        ("v3-rest-empty", hand(b"WSMANIF3", 2, &[(0, b"a"), (1, b"")])),
        ("v3-rest-with-nul", hand(b"WSMANIF3", 1, &[(0, b"a\0b")])),
        ("v3-rest-absolute", hand(b"WSMANIF3", 1, &[(0, b"/etc/passwd")])),
        ("v3-out-of-order", hand(b"WSMANIF3", 2, &[(0, b"b"), (0, b"a")])),
        ("v3-duplicate", hand(b"WSMANIF3", 2, &[(0, b"a"), (0, b"a")])),
        ("v3-first-shares", hand(b"WSMANIF3", 1, &[(1, b"a")])),
        ("v2-absolute", hand(b"WSMANIF2", 1, &[(0, b"/etc/passwd")])),
        ("v2-dotdot", hand(b"WSMANIF2", 1, &[(0, b"a/../../x")])),
        ("v3-truncated", truncated),
        ("v3-trailing-byte", trailing),
        ("empty-file", Vec::new()),
    ];
    let e = |path: &[u8]| file(path);
    let rename = |other: &[u8]| Some(Rename { other: p(other), similarity: 87 });
    let pair = vec![
        Change {
            path: p(b"a"),
            before: Some(e(b"a")),
            after: None,
            state: ChangeState::Pending,
            rename: rename(b"d/b"),
        },
        Change {
            path: p(b"d/b"),
            before: None,
            after: Some(e(b"d/b")),
            state: ChangeState::Approved,
            rename: rename(b"a"),
        },
    ];
    let plain: Vec<Change> = pair.iter().map(|c| Change { rename: None, ..c.clone() }).collect();
    let mut unpaired = pair.clone();
    unpaired[1].rename = None;
    let count_huge = {
        let mut b = encode_changes(&pair);
        b[8..16].copy_from_slice(&(1u64 << 62).to_le_bytes());
        reseal(&mut b);
        b
    };
    // One pending change of path "a" (sharing `shared` bytes with the
    // previous path, which there is none of), with neither side nor rename.
    let one_change = |shared: u32| {
        let mut w = Writer(b"WSCHANG4".to_vec());
        w.u64(1);
        w.u8(0);
        w.u32(shared);
        w.bytes(b"a");
        w.u8(0);
        w.u8(0);
        w.u8(0);
        reseal_append(&mut w.0);
        w.0
    };
    let (neither, shared_past) = (one_change(0), one_change(5));
    let changes: Vec<(&str, Vec<u8>)> = vec![
        ("v4-rename-pair", encode_changes(&pair)),
        ("v3-rename-pair", encode_changes_v3(&pair, true)),
        ("v2-plain", encode_changes_v3(&plain, false)),
        ("v4-rename-unpaired", encode_changes(&unpaired)),
        ("v4-count-claims-2^62", count_huge),
        ("v4-neither-side", neither),
        ("v4-shared-past-previous", shared_past),
    ];
    for (kind, files) in [("manifest", manifests), ("changes", changes)] {
        let dir = corpus_dir().join(kind);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in files {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
}

/// Appends the BLAKE3 of `bytes` (a body without its checksum).
fn reseal_append(bytes: &mut Vec<u8>) {
    let sum = *blake3::hash(bytes).as_bytes();
    bytes.extend_from_slice(&sum);
}
