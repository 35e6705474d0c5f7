//! Review by hunk: roll back or approve some `@@` blocks of a text change.
//!
//! State is kept in the change itself, so everything else (diff, path
//! rollback, approve, the pre-commit hook) works on it unchanged:
//! - rolling back hunks writes the file with those hunks taken back; that
//!   content becomes the change's `after` (the session's version for review),
//!   so what stays pending is the diff from the snapshot to it, renumbered;
//! - approving hunks makes the snapshot version with those hunks applied the
//!   change's `before` (the reviewed version, like git's index for
//!   `git add -p`): what stays pending is the diff from it to the file, and a
//!   later rollback of the path restores the reviewed version.
//!
//! A hunk rollback is crash-safe: the new content goes into the store first,
//! then a journal names it, then the file is written under a work name,
//! flushed and renamed over the path. Whoever finds the journal next keeps
//! the change set true to the disk: if the file holds the journaled content
//! the change takes it, else the rename never happened and nothing did.

use std::fs::File;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::changes::{Change, ChangeState, lstat};
use crate::error::{ReviewError, StoreError};
use crate::hunks::{self, MAX_TEXT};
use crate::longpath::Reachable;
use crate::manifest::{Entry, EntryKind};
use crate::path::RelPath;
use crate::restore::{matches_now, tmp_beside};

/// The work file of a hunk rollback, beside its target. Not a `.ws-tmp-`
/// name: snapshots skip none of these, and one left by a crash is removed
/// by the next review command (all of which hold the store's lock, as the
/// rollback that made it did).
const HUNK_WORK_PREFIX: &[u8] = b".ws-hunk-";
use crate::session::Session;
use crate::stat::FileStat;
use crate::store::{ObjectId, Store, hex};

/// Hunks of one path, by the ids `ws diff --json` gives them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HunkPick {
    pub path: RelPath,
    pub ids: Vec<usize>,
    /// The ids number single changes ([`hunks::split_patch`]), as a `-p`
    /// walk that split hunks decides them, rather than hunks.
    pub split: bool,
}

#[derive(Debug, Default)]
pub struct HunkOutcome {
    /// Paths whose hunks were rolled back, with the ids.
    pub done: Vec<(RelPath, Vec<usize>)>,
    /// Paths left alone: changed after the session ended.
    pub conflicts: Vec<(RelPath, String)>,
    /// Rolled back although changed after the session (forced): the later
    /// edits are gone.
    pub overwritten: Vec<RelPath>,
    /// An interrupted hunk rollback whose file was found written, recorded now.
    pub resumed: bool,
}

/// The hunk rollback under way.
#[derive(Serialize, Deserialize)]
struct HunkJournal {
    index: usize,
    /// Hex of the path's bytes, checked against the change at `index`.
    path: String,
    object: String,
    hash: String,
    /// The work file's name, removed if a crash left it.
    tmp: String,
}

const JOURNAL: &str = "hunk.journal";

fn not_hunkable(path: &RelPath, what: impl Into<String>) -> ReviewError {
    ReviewError::Hunk { path: path.display(), what: what.into() }
}

/// The pending change of `path` and its two contents, when it is a text
/// change between regular files.
fn texts(store: &Store, changes: &[Change], path: &RelPath) -> Result<(usize, Vec<u8>, Vec<u8>), ReviewError> {
    let Some(i) = changes.iter().position(|c| &c.path == path) else {
        return Err(not_hunkable(path, "the session did not change it"));
    };
    let c = &changes[i];
    if c.state != ChangeState::Pending {
        return Err(not_hunkable(path, "its change is already reviewed"));
    }
    if let Some(r) = &c.rename {
        let what = format!("it is half of a rename (with {}): review the rename by path", r.other.display());
        return Err(not_hunkable(path, what));
    }
    let (Some(b), Some(a)) = (&c.before, &c.after) else {
        return Err(not_hunkable(path, "it was created or deleted, which is one change, not hunks"));
    };
    let (EntryKind::File { object: ob, .. }, EntryKind::File { object: oa, .. }) = (&b.kind, &a.kind) else {
        return Err(not_hunkable(path, "it is not a regular file on both sides"));
    };
    if b.stat.size > MAX_TEXT || a.stat.size > MAX_TEXT {
        return Err(not_hunkable(path, "it is too large to diff line by line"));
    }
    let (old, new) = (store.read_object(ob)?, store.read_object(oa)?);
    if !hunks::is_text(&old) || !hunks::is_text(&new) {
        return Err(not_hunkable(path, "it is binary"));
    }
    Ok((i, old, new))
}

/// Resolves picks to (change index, old, new, ids), checking every id first
/// so that a typo changes nothing.
type Resolved = (usize, Vec<u8>, Vec<u8>, Vec<usize>, bool);

fn resolve(store: &Store, changes: &[Change], picks: &[HunkPick]) -> Result<Vec<Resolved>, ReviewError> {
    let mut out: Vec<Resolved> = Vec::new();
    for p in picks {
        let (i, old, new) = texts(store, changes, &p.path)?;
        let n = if p.split { hunks::hunk_of_changes(&old, &new).len() } else { hunks::hunks(&old, &new).len() };
        let unit = if p.split { "change" } else { "hunk" };
        if let Some(bad) = p.ids.iter().find(|&&id| id == 0 || id > n) {
            return Err(not_hunkable(&p.path, format!("it has no {unit} {bad} (it has {n})")));
        }
        match out.iter_mut().find(|r| r.0 == i) {
            Some(r) if r.4 == p.split => r.3.extend(&p.ids),
            Some(_) => return Err(not_hunkable(&p.path, "hunks and split changes cannot be mixed")),
            None => out.push((i, old, new, p.ids.clone(), p.split)),
        }
    }
    for r in &mut out {
        r.3.sort_unstable();
        r.3.dedup();
    }
    Ok(out)
}

fn pick(old: &[u8], new: &[u8], split: bool, take_new: impl Fn(usize) -> bool) -> Vec<u8> {
    if split { hunks::combine_changes(old, new, take_new) } else { hunks::combine(old, new, take_new) }
}

/// Approves hunks: the reviewed version becomes the change's base. Nothing
/// on disk changes. Returns the paths and ids approved.
pub fn approve_hunks(
    store: &Store,
    session: &mut Session,
    changes: &mut [Change],
    picks: &[HunkPick],
) -> Result<Vec<(RelPath, Vec<usize>)>, ReviewError> {
    let mut done = Vec::new();
    for (i, old, new, ids, split) in resolve(store, changes, picks)? {
        let reviewed = pick(&old, &new, split, |id| ids.contains(&id));
        let c = &mut changes[i];
        let Some(before) = c.before.as_mut() else { continue };
        if reviewed == new && before.stat.perm() == c.after.as_ref().map_or(0, |a| a.stat.perm()) {
            c.state = ChangeState::Approved;
        } else {
            let object =
                store.put_bytes(&reviewed).map_err(|source| StoreError::Io { path: store.root().into(), source })?;
            // Not the snapshot's inode any more: no hard-link sibling may
            // stand in for it, and the stat cache must not trust it.
            before.kind = EntryKind::File { object, hash: Some(*blake3::hash(&reviewed).as_bytes()) };
            before.stat.size = reviewed.len() as u64;
            before.stat.nlink = 1;
            before.racy = true;
        }
        done.push((c.path.clone(), ids));
    }
    store.sync()?;
    store.save_changes(&session.id, changes)?;
    store.settle(session, changes)?;
    Ok(done)
}

/// Rolls back hunks of modified text files, each path as one atomic step.
/// A file changed since the session ended is a conflict unless `force`.
pub fn rollback_hunks(
    store: &Store,
    workspace: &Path,
    session: &mut Session,
    changes: &mut [Change],
    picks: &[HunkPick],
    force: bool,
) -> Result<HunkOutcome, ReviewError> {
    let mut out =
        HunkOutcome { resumed: finish_hunk_rollback(store, workspace, session, changes)?, ..Default::default() };
    if store.rollback_interrupted(&session.id) {
        return Err(ReviewError::Hunk {
            path: picks.first().map_or_else(String::new, |p| p.path.display()),
            what: "a rollback of this session was interrupted; run `ws rollback` to finish it first".into(),
        });
    }
    for (i, old, new, ids, split) in resolve(store, changes, picks)? {
        let path = changes[i].path.clone();
        let shown = path.to_path(workspace);
        let reach = Reachable::new(&shown).map_err(|source| ReviewError::Compare { path: shown.clone(), source })?;
        let abs: &Path = &reach;
        let cur = lstat(abs).map_err(|source| ReviewError::Compare { path: shown.clone(), source })?;
        let as_left =
            matches_now(store, abs, cur.as_ref(), changes[i].after.as_ref()).map_err(|e| e.shown_as(&shown))?;
        if !as_left {
            if !force {
                out.conflicts.push((path, "changed after the session ended".into()));
                continue;
            }
            out.overwritten.push(path.clone());
        }
        let content = pick(&old, &new, split, |id| !ids.contains(&id));
        let perm = changes[i].after.as_ref().map_or(0o644, |a| a.stat.perm());
        let err = |source| ReviewError::restore(shown.clone(), source);
        let object =
            store.put_bytes(&content).map_err(|source| StoreError::Io { path: store.root().into(), source })?;
        let hash = *blake3::hash(&content).as_bytes();
        let tmp = tmp_beside(HUNK_WORK_PREFIX, abs);
        let journal = HunkJournal {
            index: i,
            path: hex(path.as_bytes()),
            object: object.to_hex(),
            hash: hex(&hash),
            tmp: hex(tmp.file_name().map_or(&[][..], |n| n.as_bytes())),
        };
        write_journal(store, &session.id, &journal)?;
        store.sync()?;
        let written = (|| {
            let mut f = File::options().write(true).create_new(true).mode(0o600).open(&tmp)?;
            f.write_all(&content)?;
            if let Some(m) = cur.as_ref() {
                // Root reviewing a user's workspace keeps the file the user's.
                let _ = rustix::fs::fchown(
                    &f,
                    Some(rustix::fs::Uid::from_raw(m.uid())),
                    Some(rustix::fs::Gid::from_raw(m.gid())),
                );
            }
            f.set_permissions(std::fs::Permissions::from_mode(perm))?;
            f.sync_all()?;
            std::fs::rename(&tmp, abs)?;
            if let Some(dir) = abs.parent() {
                File::open(dir)?.sync_all()?;
            }
            Ok(())
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            clear_journal(store, &session.id)?;
            return Err(err(e));
        }
        record(abs, &mut changes[i], object, hash, &old).map_err(err)?;
        store.save_changes(&session.id, changes)?;
        clear_journal(store, &session.id)?;
        out.done.push((path, ids));
    }
    store.settle(session, changes)?;
    Ok(out)
}

/// Makes the file now at `abs`, which holds `object`'s content, the change's
/// `after`; the change is rolled back when that content is the snapshot's.
fn record(abs: &Path, c: &mut Change, object: ObjectId, hash: [u8; 32], old: &[u8]) -> std::io::Result<()> {
    let m = std::fs::symlink_metadata(abs)?;
    let stat = FileStat::from_metadata(&m);
    let same_mode = c.before.as_ref().is_some_and(|b| b.stat.perm() == stat.perm());
    if same_mode && stat.size == old.len() as u64 && hash == *blake3::hash(old).as_bytes() {
        c.state = ChangeState::RolledBack;
    }
    c.after =
        Some(Entry { path: c.path.clone(), kind: EntryKind::File { object, hash: Some(hash) }, stat, racy: true });
    Ok(())
}

/// Finishes an interrupted hunk rollback of the session, if there is one:
/// returns whether its file had been written (and is now recorded).
pub fn finish_hunk_rollback(
    store: &Store,
    workspace: &Path,
    session: &mut Session,
    changes: &mut [Change],
) -> Result<bool, ReviewError> {
    let path = store.sessions_dir().join(&session.id).join(JOURNAL);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(source) => return Err(StoreError::Io { path, source }.into()),
    };
    let j: HunkJournal =
        serde_json::from_slice(&bytes).map_err(|e| StoreError::Io { path: path.clone(), source: e.into() })?;
    let mut resumed = false;
    let c = changes.get(j.index).filter(|c| hex(c.path.as_bytes()) == j.path && c.state == ChangeState::Pending);
    if let (Some(c), Some(object)) = (c, ObjectId::parse(&j.object)) {
        let shown = c.path.to_path(workspace);
        let reach = Reachable::new(&shown).map_err(|source| ReviewError::Compare { path: shown.clone(), source })?;
        if let Ok(now) = std::fs::read(&*reach)
            && hex(blake3::hash(&now).as_bytes()) == j.hash
        {
            let old = match c.before.as_ref().map(|b| &b.kind) {
                Some(EntryKind::File { object, .. }) => store.read_object(object)?,
                _ => Vec::new(),
            };
            let hash = *blake3::hash(&now).as_bytes();
            record(&reach, &mut changes[j.index], object, hash, &old)
                .map_err(|source| ReviewError::restore(shown.clone(), source))?;
            store.save_changes(&session.id, changes)?;
            resumed = true;
        }
        if let Some(dir) = reach.parent() {
            let tmp = dir.join(std::ffi::OsStr::from_bytes(&unhex(&j.tmp)));
            if !j.tmp.is_empty() {
                let _ = std::fs::remove_file(tmp);
            }
        }
    }
    clear_journal(store, &session.id)?;
    store.settle(session, changes)?;
    Ok(resumed)
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2).filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()).collect()
}

fn write_journal(store: &Store, id: &str, j: &HunkJournal) -> Result<(), StoreError> {
    let path = store.sessions_dir().join(id).join(JOURNAL);
    let json = serde_json::to_vec(j).map_err(|e| StoreError::Io { path: path.clone(), source: e.into() })?;
    store.write_atomic(&path, &json)
}

fn clear_journal(store: &Store, id: &str) -> Result<(), StoreError> {
    let path = store.sessions_dir().join(id).join(JOURNAL);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(StoreError::Io { path, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changes::compute_changes;
    use crate::session::SessionState;
    use crate::snapshot::{SnapshotOptions, take_snapshot};

    const OLD: &str = "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\n14\n15\n16\n17\n18\n19\n20\n";
    const NEW: &str = "1\nA\n3\n4\n5\n6\n7\n8\n9\n10\nB\n12\n13\n14\n15\n16\n17\n18\nC\n20\n";

    /// A workspace whose file `f` a session changed from OLD to NEW.
    fn reviewed_session(dir: &Path) -> (Store, std::path::PathBuf, Session, Vec<Change>) {
        let ws = dir.join("ws");
        std::fs::create_dir_all(&ws).unwrap();
        std::fs::write(ws.join("f"), OLD).unwrap();
        let store = Store::open_or_create(&dir.join("store"), &ws).unwrap();
        let snap = |previous| {
            let opts = SnapshotOptions {
                workspace: &ws,
                budget: crate::Budget::default(),
                exclude_files: vec![],
                previous,
                progress: None,
                scope: None,
            };
            take_snapshot(&store, &opts).unwrap().taken.into_whole().expect("no scope")
        };
        let before = snap(None);
        std::fs::write(ws.join("f"), NEW).unwrap();
        let after = snap(None);
        let changes = compute_changes(&store, &before, &after).unwrap();
        let session = Session {
            id: "s1".into(),
            name: None,
            workspace: ws.display().to_string(),
            command: vec![],
            started_ms: 0,
            ended_ms: Some(1),
            supervisor_pid: 1,
            state: SessionState::Pending,
            exit: None,
            before: String::new(),
            after: None,
            snapshot_ms: None,
            after_snapshot_ms: None,
            recording: None,
            after_from: None,
            before_from: None,
        };
        store.save_session(&session).unwrap();
        store.save_changes("s1", &changes).unwrap();
        (store, ws, session, changes)
    }

    fn after_content(store: &Store, c: &Change) -> Vec<u8> {
        match &c.after.as_ref().unwrap().kind {
            EntryKind::File { object, .. } => store.read_object(object).unwrap(),
            k => panic!("{k:?}"),
        }
    }

    /// The journal a hunk rollback of hunk 2 writes before touching the file.
    fn journal_for_hunk_2(store: &Store, ws: &Path) -> (Vec<u8>, HunkJournal) {
        let content = hunks::combine(OLD.as_bytes(), NEW.as_bytes(), |id| id != 2);
        let object = store.put_bytes(&content).unwrap();
        let tmp = tmp_beside(HUNK_WORK_PREFIX, &ws.join("f"));
        let j = HunkJournal {
            index: 0,
            path: hex(b"f"),
            object: object.to_hex(),
            hash: hex(blake3::hash(&content).as_bytes()),
            tmp: hex(tmp.file_name().unwrap().as_bytes()),
        };
        (content, j)
    }

    #[test]
    fn killed_after_the_rename_the_next_command_records_the_file() {
        let d = tempfile::tempdir().unwrap();
        let (store, ws, mut session, mut changes) = reviewed_session(d.path());
        let (content, j) = journal_for_hunk_2(&store, &ws);
        write_journal(&store, "s1", &j).unwrap();
        std::fs::write(ws.join("f"), &content).unwrap(); // the rename happened; the change set was not saved
        assert!(finish_hunk_rollback(&store, &ws, &mut session, &mut changes).unwrap());
        assert_eq!(after_content(&store, &changes[0]), content);
        assert_eq!(store.load_changes("s1").unwrap(), changes, "saved");
        assert_eq!(hunks::hunks(OLD.as_bytes(), &content).len(), 2);
        assert!(!store.sessions_dir().join("s1").join(JOURNAL).exists());
        // And the rest rolls back without a conflict: the record is the disk.
        let pick = HunkPick { path: RelPath::from_bytes(b"f").unwrap(), ids: vec![1, 2], split: false };
        let out = rollback_hunks(&store, &ws, &mut session, &mut changes, &[pick], false).unwrap();
        assert!(out.conflicts.is_empty(), "{:?}", out.conflicts);
        assert_eq!(std::fs::read_to_string(ws.join("f")).unwrap(), OLD);
        assert_eq!(changes[0].state, ChangeState::RolledBack);
    }

    #[test]
    fn killed_before_the_rename_nothing_happened_and_the_work_file_goes() {
        let d = tempfile::tempdir().unwrap();
        let (store, ws, mut session, mut changes) = reviewed_session(d.path());
        let (content, j) = journal_for_hunk_2(&store, &ws);
        write_journal(&store, "s1", &j).unwrap();
        let tmp = ws.join(std::ffi::OsStr::from_bytes(&unhex(&j.tmp)));
        std::fs::write(&tmp, &content[..5]).unwrap(); // half-written work file
        let saved = changes.clone();
        assert!(!finish_hunk_rollback(&store, &ws, &mut session, &mut changes).unwrap());
        assert_eq!(changes, saved, "the change set still says what the disk holds");
        assert_eq!(std::fs::read_to_string(ws.join("f")).unwrap(), NEW);
        assert!(!tmp.exists(), "work file removed");
        assert!(!store.sessions_dir().join("s1").join(JOURNAL).exists());
    }

    #[test]
    fn approved_hunks_become_the_base_and_a_path_rollback_keeps_them() {
        let d = tempfile::tempdir().unwrap();
        let (store, ws, mut session, mut changes) = reviewed_session(d.path());
        let pick = HunkPick { path: RelPath::from_bytes(b"f").unwrap(), ids: vec![1, 3], split: false };
        approve_hunks(&store, &mut session, &mut changes, &[pick]).unwrap();
        let reviewed = hunks::combine(OLD.as_bytes(), NEW.as_bytes(), |id| id != 2);
        let base = match &changes[0].before.as_ref().unwrap().kind {
            EntryKind::File { object, .. } => store.read_object(object).unwrap(),
            k => panic!("{k:?}"),
        };
        assert_eq!(base, reviewed);
        assert_eq!(changes[0].state, ChangeState::Pending);
        assert_eq!(std::fs::read_to_string(ws.join("f")).unwrap(), NEW, "nothing on disk changed");
        let manifest = crate::Manifest::default();
        let linked: Vec<Entry> = manifest.entries.iter().filter(|e| crate::manifest::is_linked(e)).cloned().collect();
        crate::rollback(&store, &ws, &mut session, &mut changes, &linked, &[], &Default::default()).unwrap();
        assert_eq!(std::fs::read(ws.join("f")).unwrap(), reviewed);
    }
}
