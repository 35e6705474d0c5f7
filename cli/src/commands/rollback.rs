//! `ws rollback`: put paths back as the snapshot had them.

use std::path::PathBuf;

use clap::Args;
use ws_snapshot::{ManifestId, RollbackOptions};

use crate::commands::session_and_paths;
use crate::error::{CliError, exit};
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
/// Examples: ws rollback · ws rollback src/generated/ · ws rollback 3fa2 --force
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// [ID] [PATHS…]: an optional session id or name, then paths (relative to
    /// the current directory). Default: the newest pending session, all paths.
    #[arg(value_name = "ID|PATH")]
    targets: Vec<PathBuf>,
    /// Also overwrite paths that changed after the session ended.
    #[arg(long)]
    force: bool,
}

pub fn cmd_rollback(args: RollbackArgs) -> Result<i32, CliError> {
    let ws = Workspace::discover()?;
    let _lock = ws.lock()?;
    let (mut session, paths) = session_and_paths(&ws, args.targets)?;
    let mut changes = ws.session_changes(&mut session)?;
    let before = ws.store.manifest(&ManifestId(session.before.clone()))?;
    let out = ws_snapshot::rollback(
        &ws.store,
        &ws.root,
        &mut session,
        &mut changes,
        &before,
        &paths,
        &RollbackOptions { force: args.force },
    )?;
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
    for p in &out.overwritten {
        ui::warn(&format!("{p} had changed after the session; overwritten with the snapshot's version"));
    }
    for p in &out.unrestorable {
        ui::warn(&format!("{p} was excluded from the snapshot and cannot be restored"));
    }
    if !out.conflicts.is_empty() {
        for (p, why) in &out.conflicts {
            ui::warn(&format!("conflict: {p}: {why}; left as it is"));
        }
        ui::error(
            &format!(
                "{} path{} not rolled back",
                out.conflicts.len(),
                if out.conflicts.len() == 1 { " was" } else { "s were" }
            ),
            Some("inspect them, then `ws rollback --force PATH` to overwrite, or `ws approve PATH` to keep them"),
        );
        return Ok(exit::CONFLICT);
    }
    if session.state == ws_snapshot::SessionState::Closed {
        ui::note(&format!("session {} is closed: every change is reviewed", session.id));
    }
    Ok(exit::OK)
}
