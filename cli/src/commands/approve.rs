//! `ws approve`: keep the session's version of some or all paths.

use std::path::PathBuf;

use clap::Args;

use crate::commands::session_and_paths;
use crate::error::{CliError, exit};
use crate::ui;
use crate::workspace::Workspace;

/// Keep what the session did: mark its changes (all, or those under PATHS) approved.
///
/// Approving changes nothing on disk; it records that you reviewed the change,
/// so `ws rollback` leaves it alone. The session closes when every change is
/// approved or rolled back.
///
/// Examples: ws approve · ws approve src/ README.md · ws approve 3fa2 src/lib.rs
#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// [ID] [PATHS…]: an optional session id or name, then paths (relative to
    /// the current directory). Default: the newest pending session, all paths.
    #[arg(value_name = "ID|PATH")]
    targets: Vec<PathBuf>,
}

pub fn cmd_approve(args: ApproveArgs) -> Result<i32, CliError> {
    let ws = Workspace::discover()?;
    let _lock = ws.lock()?;
    let (mut session, paths) = session_and_paths(&ws, args.targets)?;
    let mut changes = ws.session_changes(&mut session)?;
    let approved = ws_snapshot::approve(&ws.store, &mut session, &mut changes, &paths)?;
    if approved.is_empty() {
        ui::note(&format!("nothing to approve: those changes of session {} are already reviewed", session.id));
    } else {
        ui::note(&format!(
            "approved {} change{} of session {}",
            approved.len(),
            if approved.len() == 1 { "" } else { "s" },
            session.id
        ));
    }
    if session.state == ws_snapshot::SessionState::Closed {
        ui::note(&format!("session {} is closed: every change is reviewed", session.id));
    }
    Ok(exit::OK)
}
