//! `ws approve`: keep the session's version of some or all paths.

use std::path::PathBuf;

use clap::Args;

use crate::commands::{interactive, session_and_paths};
use crate::error::{CliError, exit};
use crate::ui;
use crate::workspace::Workspace;

/// Keep what the session did: mark its changes (all, or those under PATHS) approved.
///
/// Approving changes nothing on disk; it records that you reviewed the change,
/// so `ws rollback` leaves it alone. The session closes when every change is
/// approved or rolled back.
///
/// `--hunk PATH:ID` approves single hunks (ids as `ws diff --json` gives
/// them): the snapshot version with those hunks applied becomes the reviewed
/// version, the rest stays pending (and a later rollback of the path keeps
/// the approved hunks).
///
/// Examples: ws approve · ws approve src/ README.md · ws approve 3fa2 src/lib.rs · ws approve --hunk src/lib.rs:1,3
#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// [ID] [PATHS…]: an optional session id or name, then paths (relative to
    /// the current directory). Default: the newest pending session, all paths.
    #[arg(value_name = "ID|PATH", add = clap_complete::ArgValueCompleter::new(crate::commands::completions::session_ids_or_paths))]
    targets: Vec<PathBuf>,
    /// Approve only these hunks of a modified text file: PATH:ID[,ID…] (repeatable).
    #[arg(long, value_name = "PATH:ID", conflicts_with = "patch")]
    hunk: Vec<String>,
    /// Walk the hunks (of PATHS, or all) and choose, as `git add -p`: y n q a d s ?
    #[arg(short, long)]
    patch: bool,
}

pub fn cmd_approve(args: ApproveArgs) -> Result<i32, CliError> {
    let ws = Workspace::discover(crate::env::options())?;
    let _lock = ws.lock()?;
    let (mut session, paths) = session_and_paths(&ws, args.targets)?;
    let mut changes = ws.session_changes(&mut session)?;
    ws_snapshot::finish_hunk_rollback(&ws.store, &ws.root, &mut session, &mut changes)?;
    if !args.hunk.is_empty() || args.patch {
        let picks = if args.patch {
            let mut input = std::io::stdin().lock();
            let picks = interactive::walk(&ws.store, &changes, &paths, interactive::Verb::Approve, &mut input)?;
            if picks.is_empty() {
                ui::note("nothing approved");
                return Ok(exit::OK);
            }
            picks
        } else {
            if !paths.is_empty() {
                return Err(CliError::usage("--hunk names its paths itself: give no other paths")
                    .hint("e.g. ws approve --hunk src/lib.rs:1 --hunk README.md:2"));
            }
            crate::commands::hunk_picks(&ws, &args.hunk)?
        };
        let done = ws_snapshot::approve_hunks(&ws.store, &mut session, &mut changes, &picks)?;
        for (p, ids) in &done {
            ui::note(&format!(
                "approved hunk{} {} of {}",
                plural(ids.len()),
                ids_list(ids),
                crate::display::name(p.as_bytes())
            ));
        }
        if session.state == ws_snapshot::SessionState::Closed {
            ui::note(&format!("session {} is closed: every change is reviewed", session.id));
        }
        return Ok(exit::OK);
    }
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

pub(crate) fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

pub(crate) fn ids_list(ids: &[usize]) -> String {
    ids.iter().map(usize::to_string).collect::<Vec<_>>().join(",")
}
