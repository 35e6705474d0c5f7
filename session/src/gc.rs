//! The collection of unreferenced store objects that runs by itself.

use std::time::{Duration, Instant};

use ws_snapshot::{GcOptions, StoreLock};

use crate::Workspace;

/// Sessions closed between automatic collections.
const AUTO_EVERY: usize = 10;
/// How long an automatic collection may run; the rest waits for the next.
const AUTO_BUDGET: Duration = Duration::from_secs(2);

/// The collection that runs by itself (at session end and after a rollback
/// that closes a session), under the lock the caller holds. Best effort: a
/// failure is a warning, never the command's failure.
pub fn auto(ws: &Workspace, lock: &StoreLock) {
    if !ws_snapshot::gc_due(&ws.store, AUTO_EVERY) {
        return;
    }
    let opts = GcOptions { dry_run: false, deadline: Some(Instant::now() + AUTO_BUDGET) };
    match ws_snapshot::gc(&ws.store, lock, opts) {
        Ok(out) => {
            if !out.stopped_early {
                let _ = ws_snapshot::gc_done(&ws.store);
            }
        }
        Err(e) => ws.warn(&format!("the automatic `ws gc` stopped: {e}; run `ws gc` to see why")),
    }
}
