//! `ws gc`: free the store's objects that no pending session needs.

use clap::Args;
use serde::Serialize;
use ws_snapshot::GcOptions;

use crate::error::{CliError, exit};
use crate::out;
use crate::ui;
use crate::workspace::Workspace;

/// Free snapshot content that no pending session needs.
///
/// A closed session's content (every change approved or rolled back) is
/// needed by nobody: its objects are removed. Kept: the objects of every
/// session still pending review, and those of the latest snapshot (the stat
/// cache). Session records stay, so `ws log` still lists them; `ws diff` of a
/// closed session can no longer show file contents. Runs by itself, for at
/// most 2 s, after every 10 sessions closed.
///
/// Examples: ws gc · ws gc --dry-run · ws gc --json
#[derive(Debug, Args)]
pub struct GcArgs {
    /// Say what would be freed; remove nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct GcJson {
    dry_run: bool,
    freed_objects: u64,
    freed_bytes: u64,
    kept_objects: u64,
    pending_sessions: usize,
}

pub fn cmd_gc(args: GcArgs) -> Result<i32, CliError> {
    let ws = Workspace::discover(crate::env::options())?;
    let lock = ws.lock()?;
    let out = ws_snapshot::gc(&ws.store, &lock, GcOptions { dry_run: args.dry_run, deadline: None })?;
    if !args.dry_run {
        ws_snapshot::gc_done(&ws.store)?;
    }
    if args.json {
        let j = GcJson {
            dry_run: args.dry_run,
            freed_objects: out.freed_objects,
            freed_bytes: out.freed_bytes,
            kept_objects: out.kept_objects,
            pending_sessions: out.pending_sessions,
        };
        out!("{}", serde_json::to_string(&j).map_err(|e| CliError::failure(e.to_string()))?);
        return Ok(exit::OK);
    }
    out!(
        "{} {} object{} ({}) of closed sessions; kept {} needed by {} pending session{} and the latest snapshot",
        if args.dry_run { "would free" } else { "freed" },
        ui::count(out.freed_objects),
        if out.freed_objects == 1 { "" } else { "s" },
        ui::bytes(out.freed_bytes),
        ui::count(out.kept_objects),
        out.pending_sessions,
        if out.pending_sessions == 1 { "" } else { "s" },
    );
    Ok(exit::OK)
}

pub use ws_session::gc::auto;
