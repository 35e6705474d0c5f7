//! `ws rollback`: put paths back as the snapshot had them.

use std::path::PathBuf;

use clap::Args;

use crate::commands::session_and_paths;
use crate::error::{CliError, exit};
use crate::recording::{Attribution, Origin};
use crate::ui;
use crate::workspace::Workspace;

/// Undo what the session did: restore the snapshot's version of its changes
/// (all, or those under PATHS).
///
/// Only the session's changes are touched. A path changed again after the
/// session ended is a conflict: it is left alone and listed, unless --force.
/// Commits the session made leave the branch (refs are restored) but stay in
/// the reflog. An interrupted rollback (crash, kill -9) is finished by running
/// `ws rollback` again. Exit status 3 means some paths were conflicts.
///
/// `--hunk PATH:ID` rolls back single hunks of a modified text file (ids as
/// `ws diff --json` gives them); the rest of the file stays as the session
/// left it, and what remains pending is renumbered.
///
/// Examples: ws rollback · ws rollback src/generated/ · ws rollback 3fa2 --force · ws rollback --hunk src/lib.rs:2
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// [ID] [PATHS…]: an optional session id or name, then paths (relative to
    /// the current directory). Default: the newest pending session, all paths.
    #[arg(value_name = "ID|PATH", add = clap_complete::ArgValueCompleter::new(crate::commands::completions::session_ids_or_paths))]
    targets: Vec<PathBuf>,
    /// Also overwrite paths that changed after the session ended.
    #[arg(long)]
    force: bool,
    /// Roll back only these hunks of a modified text file: PATH:ID[,ID…] (repeatable).
    #[arg(long, value_name = "PATH:ID", conflicts_with = "patch")]
    hunk: Vec<String>,
    /// Walk the hunks (of PATHS, or all) and choose, as `git add -p`: y n q a d s ?
    #[arg(short, long)]
    patch: bool,
}

pub fn cmd_rollback(mut args: RollbackArgs) -> Result<i32, CliError> {
    let ws = Workspace::discover(crate::env::options())?;
    let lock = ws.lock()?;
    let (mut session, paths) = session_and_paths(&ws, std::mem::take(&mut args.targets))?;
    let mut changes = ws.session_changes(&mut session)?;
    if ws_snapshot::finish_hunk_rollback(&ws.store, &ws.root, &mut session, &mut changes)? {
        ui::note("recorded an interrupted hunk rollback that had written its file");
    }
    if args.patch {
        let mut input = std::io::stdin().lock();
        let picks = crate::commands::interactive::walk(
            &ws.store,
            &changes,
            &paths,
            crate::commands::interactive::Verb::Rollback,
            &mut input,
        )?;
        if picks.is_empty() {
            ui::note("nothing rolled back");
            return Ok(exit::OK);
        }
        return rollback_hunks(&ws, &mut session, &mut changes, picks, args.force, true);
    }
    if !args.hunk.is_empty() {
        if !paths.is_empty() {
            return Err(CliError::usage("--hunk names its paths itself: give no other paths")
                .hint("e.g. ws rollback --hunk src/lib.rs:2 --hunk README.md:1,3"));
        }
        let picks = crate::commands::hunk_picks(&ws, &args.hunk)?;
        return rollback_hunks(&ws, &mut session, &mut changes, picks, args.force, false);
    }
    rollback_paths(&ws, &lock, &mut session, &mut changes, &paths, args.force)
}

/// `ws rollback [PATHS…]` once the session is loaded: restores, then says
/// what was restored, left alone and in conflict, as every rollback does
/// (`ws review` applies its marks through here too).
pub(crate) fn rollback_paths(
    ws: &Workspace,
    lock: &ws_snapshot::StoreLock,
    session: &mut ws_snapshot::Session,
    changes: &mut [ws_snapshot::Change],
    paths: &[ws_snapshot::RelPath],
    force: bool,
) -> Result<i32, CliError> {
    let rolled = ws_session::review::rollback_paths(ws, session, changes, paths, force)?;
    let (out, linked) = (&rolled.outcome, &rolled.linked);
    if out.resumed > 0 {
        ui::note(&format!("finished an interrupted rollback of {} paths", out.resumed));
    }
    ui::note(&format!(
        "rolled back {} path{} of session {}",
        out.restored.len(),
        if out.restored.len() == 1 { "" } else { "s" },
        session.id
    ));
    if out.kept_git > 0 {
        ui::note(&format!(
            "kept {} git objects and reflogs the session added, so its commits stay reachable from the reflog",
            out.kept_git
        ));
    }
    let restored: std::collections::HashSet<_> = out.restored.iter().collect();
    for link in ws_snapshot::outside_links(linked, changes, |c| restored.contains(&c.path)) {
        ui::warn(&crate::display::text(link.to_string().as_bytes()));
    }
    for p in &out.overwritten {
        let p = crate::display::name(p.as_bytes());
        ui::warn(&format!("{p} had changed after the session; overwritten with the snapshot's version"));
    }
    for p in &out.unrestorable {
        let p = crate::display::name(p.as_bytes());
        ui::warn(&format!("{p} was excluded from the snapshot and cannot be restored"));
    }
    let outside = &rolled.outside;
    if !outside.is_empty() {
        ui::note(&format!(
            "left {} path{} alone: changed during the session by a process outside it (e.g. your editor): {}",
            outside.len(),
            if outside.len() == 1 { "" } else { "s" },
            list(outside)
        ));
    }
    let conflicts = &rolled.conflicts;
    if !conflicts.is_empty() {
        for (p, why) in conflicts {
            ui::warn(&format!("conflict: {}: {why}; left as it is", crate::display::name(p.as_bytes())));
        }
        if let Some(e) = rolled.conflict_error() {
            ui::error_of(e.kind, &e.message, e.hint.as_deref());
        }
        return Ok(exit::CONFLICT);
    }
    if session.state == ws_snapshot::SessionState::Closed {
        crate::commands::gc::auto(ws, lock);
        ui::note(&format!("session {} is closed: every change is reviewed", session.id));
    }
    Ok(exit::OK)
}

/// The first few paths, for a message.
fn list(paths: &[ws_snapshot::RelPath]) -> String {
    let mut s: Vec<String> = paths.iter().take(5).map(|p| crate::display::name(p.as_bytes())).collect();
    if paths.len() > 5 {
        s.push(format!("and {} more", paths.len() - 5));
    }
    s.join(", ")
}

/// `ws rollback --hunk`: the named hunks back to the snapshot's version.
/// `chosen`: the hunks were chosen interactively (their ids are not the
/// user's words, so the message does not repeat them).
pub(crate) fn rollback_hunks(
    ws: &Workspace,
    session: &mut ws_snapshot::Session,
    changes: &mut [ws_snapshot::Change],
    mut picks: Vec<ws_snapshot::HunkPick>,
    force: bool,
    chosen: bool,
) -> Result<i32, CliError> {
    let who = Attribution::load(&ws.store, session, &*ws.options.observer);
    for p in &picks {
        if who.origin_of(&p.path) == Origin::Outside {
            return Err(CliError::usage(format!(
                "{} was changed outside the session, not by it: `ws rollback` leaves it alone",
                crate::display::name(p.path.as_bytes())
            )));
        }
    }
    // As for paths: one both the session and someone else wrote is a conflict.
    let mut both = Vec::new();
    if !force {
        picks.retain(|p| {
            let mixed = who.origin_of(&p.path) == Origin::Both;
            if mixed {
                both.push((p.path.clone(), "changed both by the session and by a process outside it".to_owned()));
            }
            !mixed
        });
    }
    let mut out = ws_snapshot::rollback_hunks(&ws.store, &ws.root, session, changes, &picks, force)?;
    out.conflicts.extend(both);
    for (p, ids) in &out.done {
        let what = if chosen {
            "chosen hunks".to_owned()
        } else {
            format!("hunk{} {}", crate::commands::approve::plural(ids.len()), crate::commands::approve::ids_list(ids))
        };
        ui::note(&format!("rolled back {what} of {}", crate::display::name(p.as_bytes())));
    }
    for p in &out.overwritten {
        let p = crate::display::name(p.as_bytes());
        ui::warn(&format!("{p} had changed after the session; those later edits are overwritten"));
    }
    if !out.conflicts.is_empty() {
        for (p, why) in &out.conflicts {
            ui::warn(&format!("conflict: {}: {why}; left as it is", crate::display::name(p.as_bytes())));
        }
        ui::error_of(
            crate::error::Kind::Conflict,
            &format!(
                "{} path{} not rolled back",
                out.conflicts.len(),
                if out.conflicts.len() == 1 { " was" } else { "s were" }
            ),
            Some(
                "inspect them, then `ws rollback --force --hunk PATH:ID` to overwrite, or `ws approve PATH` to keep them",
            ),
        );
        return Ok(exit::CONFLICT);
    }
    Ok(exit::OK)
}
