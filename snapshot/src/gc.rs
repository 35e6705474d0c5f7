//! Freeing the store: the objects no pending session and no stat cache needs.
//!
//! An object is needed while a manifest that someone may still read names
//! it: the before- and after-snapshots of every session not yet closed (its
//! diff and rollback read them), the objects in those sessions' change sets,
//! and the latest manifest (the stat cache, from which the next snapshot
//! reuses objects without reading). A closed session's objects are needed by
//! nobody: every change in it was approved (the workspace has the content)
//! or rolled back (the workspace has the before content, now under the
//! latest manifest). Its record and manifests stay, for `ws log` and `ws
//! session show`; only content goes.
//!
//! The caller holds the store's lock ([`StoreLock`]): no snapshot or
//! rollback writes a manifest meanwhile. A damaged session record stops the
//! collection (what it needs cannot be known), never turns into "needs
//! nothing".

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::time::Instant;

use crate::error::{SessionError, StoreError};
use crate::manifest::{EntryKind, ManifestId};
use crate::session::SessionState;
use crate::store::{ObjectId, Store, StoreLock};

#[derive(Debug, Default, Clone, Copy)]
pub struct GcOptions {
    /// Count what would be freed, remove nothing.
    pub dry_run: bool,
    /// Stop removing at this instant (what is left is freed by the next run).
    pub deadline: Option<Instant>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcOutcome {
    /// Objects removed (or, dry run, that would be).
    pub freed_objects: u64,
    /// Disk space they held (allocated blocks, so sparse files count what they take).
    pub freed_bytes: u64,
    /// Objects kept because something needs them.
    pub kept_objects: u64,
    /// The sessions not yet closed whose objects were kept.
    pub pending_sessions: usize,
    /// Whether the deadline stopped it before the end.
    pub stopped_early: bool,
}

/// Adds the objects manifest `id` names, read block by block through its
/// index when it has one (a whole listing of a large workspace is not held).
fn add_manifest(keep: &mut HashSet<ObjectId>, store: &Store, id: &ManifestId) -> Result<(), StoreError> {
    let mut add = |e: &crate::Entry| {
        if let EntryKind::File { object, .. } = &e.kind {
            keep.insert(*object);
        }
    };
    let scan = |f: &crate::ManifestFile, add: &mut dyn FnMut(&crate::Entry), hidden: &dyn Fn(&crate::Entry) -> bool| {
        f.scan(b"", |e| {
            if !hidden(e) {
                add(e);
            }
            true
        })
    };
    match crate::Stored::open(store, id)? {
        crate::Stored::Indexed(f) => scan(&f, &mut add, &|_| false)?,
        // The base's objects but those the layer hides (a file rollback
        // removed: nobody reads it through this snapshot; the base, should
        // a session still need it as itself, is kept whole for it).
        crate::Stored::Layered(l) => {
            scan(&l.base, &mut add, &|e| l.layer.answers(e.path.as_bytes()))?;
            l.layer_entries().iter().for_each(add);
        }
        crate::Stored::Whole(m) => m.entries.iter().for_each(add),
    }
    Ok(())
}

/// The objects someone still needs (see the module documentation).
fn needed(store: &Store) -> Result<(HashSet<ObjectId>, usize), SessionError> {
    let mut keep = HashSet::new();
    let mut pending = 0;
    if let Some(id) = store.latest() {
        add_manifest(&mut keep, store, &id)?;
    }
    for s in store.sessions()? {
        let s = s?;
        if s.state == SessionState::Closed && !store.rollback_interrupted(&s.id) {
            continue;
        }
        pending += 1;
        for id in std::iter::once(&s.before).chain(s.after.as_ref()) {
            add_manifest(&mut keep, store, &ManifestId(id.clone()))?;
        }
        // A running session has no change set yet.
        if s.state != SessionState::Running {
            for c in store.load_changes(&s.id)? {
                for e in [&c.before, &c.after].into_iter().flatten() {
                    if let EntryKind::File { object, .. } = &e.kind {
                        keep.insert(*object);
                    }
                }
            }
        }
    }
    Ok((keep, pending))
}

/// Removes the objects nobody needs. The lock proves the caller holds the
/// store's lock.
pub fn gc(store: &Store, _lock: &StoreLock, opts: GcOptions) -> Result<GcOutcome, SessionError> {
    let (keep, pending_sessions) = needed(store)?;
    let mut out = GcOutcome { pending_sessions, ..GcOutcome::default() };
    let objects = store.root().join("objects");
    let io = |path: &std::path::Path, source| StoreError::Io { path: path.to_path_buf(), source };
    let mut fans: Vec<_> =
        fs_err::read_dir(&objects).map_err(|source| io(&objects, source))?.flatten().map(|e| e.path()).collect();
    fans.sort();
    for fan in fans {
        let Ok(rd) = std::fs::read_dir(&fan) else { continue };
        for e in rd.flatten() {
            let name = e.file_name();
            // Only names that are object ids: anything else is not ours to remove.
            let Some(id) = name.to_str().and_then(ObjectId::parse) else { continue };
            if keep.contains(&id) {
                out.kept_objects += 1;
                continue;
            }
            if opts.deadline.is_some_and(|d| Instant::now() >= d) {
                out.stopped_early = true;
                return Ok(out);
            }
            let blocks = e.metadata().map_or(0, |m| m.blocks() * 512);
            if !opts.dry_run {
                match std::fs::remove_file(e.path()) {
                    Ok(()) => {}
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(source) => return Err(io(&e.path(), source).into()),
                }
            }
            out.freed_objects += 1;
            out.freed_bytes += blocks;
        }
    }
    Ok(out)
}

/// Whether a collection is due at session end: every `every` snapshots
/// closed sessions named since the last one (counted by the stamp
/// `gc-closed` in the store). Sessions that changed nothing, in a
/// workspace nothing changed, name the same one: they free nothing, and
/// collecting after them would cost a large workspace's listing for nothing.
pub fn gc_due(store: &Store, every: usize) -> bool {
    let closed = closed_sessions(store);
    let last = std::fs::read_to_string(store.root().join("gc-closed"))
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(0);
    closed >= last + every
}

/// Records that a collection ran (see [`gc_due`]).
pub fn gc_done(store: &Store) -> Result<(), StoreError> {
    let closed = closed_sessions(store);
    store.write_atomic(&store.root().join("gc-closed"), closed.to_string().as_bytes())
}

/// How many distinct snapshots closed sessions name.
fn closed_sessions(store: &Store) -> usize {
    let Ok(sessions) = store.sessions() else { return 0 };
    let mut named = HashSet::new();
    for s in sessions.iter().flatten().filter(|s| s.state == SessionState::Closed) {
        named.insert(s.before.as_str());
        named.extend(s.after.as_deref());
    }
    named.len()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// What a damaged record's session needs cannot be known: nothing is
    /// removed, the collection is an error naming the record.
    #[test]
    fn a_damaged_session_record_stops_the_collection() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        std::fs::create_dir(&ws).unwrap();
        let store = Store::open_or_create(&dir.path().join("store"), &ws).unwrap();
        std::fs::write(ws.join("f"), "content").unwrap();
        let object = store.put_object(&std::fs::File::open(ws.join("f")).unwrap(), 7).unwrap();
        let lock = store.lock().unwrap();
        let dry = gc(&store, &lock, GcOptions { dry_run: true, deadline: None }).unwrap();
        assert_eq!(dry.freed_objects, 1, "the unreferenced object is free (so the test below can fail)");
        let s = store.sessions_dir().join("s1");
        std::fs::create_dir_all(&s).unwrap();
        std::fs::write(s.join("session.json"), "{ damaged").unwrap();
        let e = gc(&store, &lock, GcOptions::default()).unwrap_err();
        assert!(e.to_string().contains("session.json"), "{e}");
        assert!(store.object_path(&object).exists());
    }
}
