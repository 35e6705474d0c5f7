//! Reviewing a session: approving changes (keeping them) and rolling them
//! back, path by path or all, with the checks `ws approve` and `ws rollback`
//! make. The CLI says what happened; so can any program, from the values
//! returned.

use std::collections::HashSet;

use ws_snapshot::{Change, ChangeState, ManifestId, RelPath, RollbackOptions, Session, StoreLock};

use crate::recording::{Attribution, Origin};
use crate::{Error, ErrorKind, Workspace};

/// A session and its changes, loaded under the workspace's lock for review.
#[derive(Debug)]
pub struct Review {
    pub session: Session,
    pub changes: Vec<Change>,
    /// An interrupted hunk rollback had written its file: now recorded.
    pub finished_hunks: bool,
    lock: StoreLock,
}

impl Review {
    /// The pending changes (under `paths`, when some are given) as the
    /// patch `ws diff` prints, without colour: renames paired, every name
    /// and line rendered inert ([`crate::display`]).
    pub fn diff(&self, ws: &Workspace, paths: &[ws_snapshot::RelPath]) -> Result<String, Error> {
        let shown: Vec<usize> = self
            .changes
            .iter()
            .enumerate()
            .filter(|(_, c)| c.state == ws_snapshot::ChangeState::Pending)
            .filter(|(_, c)| paths.is_empty() || paths.iter().any(|p| c.path.starts_with(p)))
            .map(|(i, _)| i)
            .collect();
        let min = u16::from(ws_snapshot::renames::DEFAULT_MIN_SIMILARITY);
        let mut out = String::new();
        for row in ws_snapshot::renames::rows(&self.changes, &shown, min) {
            out.push_str(&crate::patch::text_of(&ws.store, &crate::patch::View::of(&self.changes, row))?);
        }
        Ok(out)
    }

    /// Locks the workspace and loads session `id` (a unique id prefix or a
    /// name; `None`: the newest pending session), finishing what an
    /// interrupted run left (its after-snapshot, a hunk rollback).
    pub fn open(ws: &Workspace, id: Option<&str>) -> Result<Review, Error> {
        let lock = ws.lock()?;
        Review::of(ws, lock, ws.store.resolve_session(id)?)
    }

    /// [`Review::open`] for a session already resolved, under `lock`.
    pub fn of(ws: &Workspace, lock: StoreLock, mut session: Session) -> Result<Review, Error> {
        let mut changes = ws.session_changes(&mut session)?;
        let finished_hunks = ws_snapshot::finish_hunk_rollback(&ws.store, &ws.root, &mut session, &mut changes)?;
        Ok(Review { session, changes, finished_hunks, lock })
    }

    /// The lock the review holds.
    pub fn lock(&self) -> &StoreLock {
        &self.lock
    }

    /// Keeps the pending changes under `paths` (all with none); returns the
    /// paths approved.
    pub fn approve(&mut self, ws: &Workspace, paths: &[RelPath]) -> Result<Vec<RelPath>, Error> {
        let approved = ws_snapshot::approve(&ws.store, &mut self.session, &mut self.changes, paths)?;
        Ok(approved.into_iter().collect())
    }

    /// Rolls back the pending changes under `paths` (all with none); see
    /// [`rollback_paths`]. Conflicts are in the outcome, not an error.
    pub fn rollback(&mut self, ws: &Workspace, paths: &[RelPath], force: bool) -> Result<RolledBack, Error> {
        rollback_paths(ws, &mut self.session, &mut self.changes, paths, force)
    }

    /// Whether every change is reviewed.
    pub fn closed(&self) -> bool {
        self.session.state == ws_snapshot::SessionState::Closed
    }
}

/// What a rollback did and left.
#[derive(Debug)]
pub struct RolledBack {
    pub outcome: ws_snapshot::RollbackOutcome,
    /// The before-snapshot's files with several names (for
    /// [`ws_snapshot::outside_links`]).
    pub linked: Vec<ws_snapshot::Entry>,
    /// Paths (under those asked for) changed during the session only by a
    /// process outside it: not the session's to undo, left alone.
    pub outside: Vec<RelPath>,
    /// Every path left as it is and why: changed after the session, or by
    /// both the session and a process outside it (unless forced).
    pub conflicts: Vec<(RelPath, String)>,
}

impl RolledBack {
    /// The rollback as an error when it left conflicts ([`ErrorKind::Conflict`]).
    pub fn conflict_error(&self) -> Option<Error> {
        let n = self.conflicts.len();
        (n > 0).then(|| {
            Error::new(
                ErrorKind::Conflict,
                format!("{n} path{} not rolled back", if n == 1 { " was" } else { "s were" }),
            )
            .hint("inspect them, then `ws rollback --force PATH` to overwrite, or `ws approve PATH` to keep them")
        })
    }
}

/// Rolls back `session`'s pending changes under `paths` (all with none),
/// under the workspace's lock. Changes a recorder saw made only outside the
/// session are not its to undo; those both made are conflicts unless `force`.
pub fn rollback_paths(
    ws: &Workspace,
    session: &mut Session,
    changes: &mut [Change],
    paths: &[RelPath],
    force: bool,
) -> Result<RolledBack, Error> {
    let linked = ws.store.linked(&ManifestId(session.before.clone()))?;
    let who = Attribution::load(&ws.store, session, &*ws.options.observer);
    let mut outside = Vec::new();
    let mut both = Vec::new();
    for c in changes.iter().filter(|c| c.state == ChangeState::Pending) {
        match who.origin_of(&c.path) {
            Origin::Session => {}
            Origin::Outside => outside.push(c.path.clone()),
            Origin::Both => both.push(c.path.clone()),
        }
    }
    let mut leave: HashSet<_> = outside.iter().cloned().collect();
    if !force {
        leave.extend(both.iter().cloned());
    }
    let latest = ws.store.latest();
    let outcome = ws_snapshot::rollback(
        &ws.store,
        &ws.root,
        session,
        changes,
        &linked,
        paths,
        &RollbackOptions { force, leave, drop_new_objects: false },
    )?;
    crate::watch::carry(ws, latest);
    let asked = |p: &RelPath| paths.is_empty() || paths.iter().any(|q| p.starts_with(q));
    let outside: Vec<_> = outside.into_iter().filter(|p| asked(p)).collect();
    let mut conflicts = outcome.conflicts.clone();
    if !force {
        conflicts.extend(
            both.into_iter()
                .filter(|p| asked(p))
                .map(|p| (p, "changed both by the session and by a process outside it".into())),
        );
    }
    Ok(RolledBack { outcome, linked, outside, conflicts })
}
