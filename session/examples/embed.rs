//! Embedding ws: run `true` in a session of a workspace, count its audit
//! records as they are written, list what it changed, and roll it back.
//!
//! `cargo run -p ws-session --example embed -- [HELPER] [DIR]`: HELPER is
//! the program the sandbox re-executes (an installed `ws`; by default this
//! example itself, which answers through `helpers::dispatch`), DIR the
//! workspace (default: the current directory). Run as root, or as a user
//! whose machine lets ws confine a session (`ws doctor`).

#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ws_session::review::Review;
use ws_session::{Event, Observer, Options, Run, Workspace};

/// Counts the audit records as they are appended to the session's log.
#[derive(Debug, Default)]
struct CountRecords(AtomicUsize);

impl Observer for CountRecords {
    fn event(&self, e: &Event<'_>) {
        match e {
            Event::Record { .. } => {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
            Event::Warning(w) => println!("warning: {w}"),
            _ => {}
        }
    }
}

fn main() -> Result<(), ws_session::Error> {
    // A session's helpers are this program too (when no HELPER is given).
    ws_session::helpers::dispatch(&ws_session::Quiet);
    let mut args = std::env::args_os().skip(1);
    let helper = args.next().filter(|a| !a.is_empty()).map(std::path::PathBuf::from);
    let dir = args.next().map(std::path::PathBuf::from).unwrap_or_else(|| ".".into());
    let home = std::env::var_os("HOME").map_or_else(|| "/root".into(), std::path::PathBuf::from);

    let records = Arc::new(CountRecords::default());
    let options = Options { helper, observer: records.clone(), ..Options::from_home(home) };
    let ws = Workspace::open(&dir, options)?;
    let command = ["true".into()];
    let ran = ws_session::run_session(ws, Run::new(&command))?;
    println!(
        "session {} exited {}: {} audit records seen as they were written",
        ran.session.id,
        ran.code,
        records.0.load(Ordering::Relaxed)
    );

    let mut review = Review::open(&ran.ws, Some(&ran.session.id))?;
    for c in &review.changes {
        println!("changed: {}", c.path.display());
    }
    let rolled = review.rollback(&ran.ws, &[], false)?;
    if let Some(conflict) = rolled.conflict_error() {
        return Err(conflict);
    }
    println!("rolled back {} paths", rolled.outcome.restored.len());
    Ok(())
}
