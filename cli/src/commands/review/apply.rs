//! Carrying out the marks of `ws review`, once the user said yes: through
//! the calls `ws approve` and `ws rollback` make (paths and `--hunk`), which
//! report conflicts as they always do (a path changed after the session is
//! left alone; exit 3).
//!
//! The session is loaded again under the store's lock, and a path whose
//! pending change is no longer the one the user looked at (another `ws`
//! acted on it meanwhile) keeps its marks unapplied rather than applying
//! them to hunks the user never saw. On one path, marked hunks are rolled
//! back first; the hunks to approve are then found again by what they take
//! out and put in, as rolling back renumbers those that remain.

use std::collections::HashMap;

use ws_snapshot::{Change, ChangeState, HunkPick, RelPath, SessionState};

use super::Listed;
use super::model::Plan;
use crate::commands::approve::plural;
use crate::commands::rollback;
use crate::error::{CliError, exit};
use crate::workspace::Workspace;
use crate::{display, ui};
use ws_session::patch::{self, Patch, PatchHunk};

pub(crate) fn apply(
    ws: &Workspace,
    session_id: &str,
    plan: &Plan,
    listed: &[Listed],
    patches: &HashMap<usize, Patch>,
) -> Result<i32, CliError> {
    let lock = ws.lock()?;
    let mut session = ws.store.resolve_session(Some(session_id))?;
    let mut changes = ws.session_changes(&mut session)?;
    ws_snapshot::finish_hunk_rollback(&ws.store, &ws.root, &mut session, &mut changes)?;
    let mut code = exit::OK;
    let path_of = |row: usize| listed[row].change.path.clone();

    // A mark applies only to the change the user saw.
    let still_pending =
        |changes: &[Change], p: &RelPath| changes.iter().any(|c| &c.path == p && c.state == ChangeState::Pending);
    let mut stale = Vec::new();
    let mut keep = |changes: &[Change], row: usize| -> bool {
        let p = path_of(row);
        if let Some((old, _)) = &listed[row].from {
            // A rename is marked by path only; both halves must still wait.
            let same = still_pending(changes, &p) && still_pending(changes, &old.path);
            if !same {
                stale.push(p);
            }
            return same;
        }
        let same = still_pending(changes, &p)
            && patches.get(&row).is_none_or(|seen| {
                let now = changes.iter().find(|c| c.path == p).map(|c| patch::patch(&ws.store, c));
                matches!(now, Some(Ok(now)) if now.hunks.iter().map(|h| h.hunk).eq(seen.hunks.iter().map(|h| h.hunk)))
            });
        if !same {
            stale.push(p);
        }
        same
    };
    let approve_paths: Vec<RelPath> =
        plan.approve_paths.iter().copied().filter(|&r| keep(&changes, r)).map(path_of).collect();
    let rollback_paths: Vec<RelPath> =
        plan.rollback_paths.iter().copied().filter(|&r| keep(&changes, r)).map(path_of).collect();
    let rollback_hunks: Vec<(usize, Vec<usize>)> =
        plan.rollback_hunks.iter().filter(|(r, _)| keep(&changes, *r)).cloned().collect();
    let approve_hunks: Vec<(usize, Vec<usize>)> = plan
        .approve_hunks
        .iter()
        .filter(|(r, _)| rollback_hunks.iter().any(|(q, _)| q == r) || keep(&changes, *r))
        .cloned()
        .collect();
    stale.sort();
    stale.dedup();
    for p in &stale {
        ui::warn(&format!(
            "{}: its pending change is not the one shown any more (reviewed meanwhile?); its marks were not applied",
            display::name(p.as_bytes())
        ));
        code = exit::FAILURE;
    }

    if !approve_paths.is_empty() {
        let done = ws_snapshot::approve(&ws.store, &mut session, &mut changes, &approve_paths)?;
        ui::note(&format!("approved {} change{} of session {}", done.len(), plural(done.len()), session.id));
    }
    if !rollback_hunks.is_empty() {
        let picks =
            rollback_hunks.iter().map(|(r, ids)| HunkPick { path: path_of(*r), ids: ids.clone(), split: false });
        let c = rollback::rollback_hunks(ws, &mut session, &mut changes, picks.collect(), false, false)?;
        code = code.max(c);
    }
    for (row, ids) in &approve_hunks {
        let p = path_of(*row);
        let Some(seen) = patches.get(row) else { continue };
        let wanted: Vec<&PatchHunk> = ids.iter().filter_map(|id| seen.hunks.get(id - 1)).collect();
        let now = match changes.iter().find(|c| c.path == p && c.state == ChangeState::Pending) {
            Some(c) => patch::patch(&ws.store, c)?,
            None => continue,
        };
        let Some(ids) = find_again(&wanted, &now.hunks) else {
            ui::warn(&format!(
                "{}: after rolling back some of its hunks, those to approve no longer stand apart; approve them with `ws review` again",
                display::name(p.as_bytes())
            ));
            code = code.max(exit::FAILURE);
            continue;
        };
        let pick = HunkPick { path: p.clone(), ids: ids.clone(), split: false };
        ws_snapshot::approve_hunks(&ws.store, &mut session, &mut changes, &[pick])?;
        // Not the ids: a rollback on the same file may have renumbered them.
        ui::note(&format!("approved {} hunk{} of {}", ids.len(), plural(ids.len()), display::name(p.as_bytes())));
    }
    if !rollback_paths.is_empty() {
        let c = rollback::rollback_paths(ws, &lock, &mut session, &mut changes, &rollback_paths, false)?;
        code = code.max(c);
    } else if session.state == SessionState::Closed {
        ui::note(&format!("session {} is closed: every change is reviewed", session.id));
    }
    Ok(code)
}

/// The ids, among `now`, of the hunks that take out and put in what each of
/// `wanted` did (each used once, in order); `None` if one is not there.
fn find_again(wanted: &[&PatchHunk], now: &[PatchHunk]) -> Option<Vec<usize>> {
    let mut used = vec![false; now.len()];
    let mut ids = Vec::new();
    for w in wanted {
        let k = (0..now.len()).find(|&k| !used[k] && now[k].removed == w.removed && now[k].added == w.added)?;
        used[k] = true;
        ids.push(now[k].hunk.id);
    }
    Some(ids)
}

#[cfg(test)]
mod tests {
    use ws_snapshot::hunks::Hunk;

    use super::*;

    fn ph(id: usize, removed: &str, added: &str) -> PatchHunk {
        PatchHunk {
            hunk: Hunk { id, old_start: id, old_lines: 1, new_start: id, new_lines: 1 },
            line: 0,
            removed: removed.into(),
            added: added.into(),
        }
    }

    #[test]
    fn hunks_are_found_again_by_content_after_renumbering() {
        let seen = [ph(1, "a", "A"), ph(2, "b", "B"), ph(3, "c", "C")];
        // Hunk 2 was rolled back: 3 is now 2.
        let now = [ph(1, "a", "A"), ph(2, "c", "C")];
        assert_eq!(find_again(&[&seen[2]], &now), Some(vec![2]));
        assert_eq!(find_again(&[&seen[0], &seen[2]], &now), Some(vec![1, 2]));
        assert_eq!(find_again(&[&seen[1]], &now), None);
        // Two equal hunks are two, not one found twice.
        let twins = [ph(1, "x", "y"), ph(2, "x", "y")];
        assert_eq!(find_again(&[&twins[0], &twins[1]], &twins), Some(vec![1, 2]));
        assert_eq!(find_again(&[&twins[0], &twins[1]], &twins[..1]), None);
    }
}
