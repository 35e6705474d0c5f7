//! What the session library tells, printed as `ws` says it: notes and
//! warnings on stderr, a long snapshot's progress, the session's summary.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ws_session::{Counts, Event, Observer};

use crate::{display, ui};

/// The CLI's observer.
#[derive(Debug, Default)]
pub struct Printer {
    /// When progress was last shown (off a terminal, every 5 s at most).
    progress: Mutex<Option<Instant>>,
}

impl Observer for Printer {
    fn event(&self, e: &Event<'_>) {
        match e {
            Event::Note(m) => ui::note(m),
            Event::Warning(m) => ui::warn(m),
            Event::Error(e) => ui::error_of(e.kind, &e.message, e.hint.as_deref()),
            // `ws session start --events-fd N`: the program that started ws.
            Event::Record { line, .. } => ui::machine::line(line),
            Event::Progress { what, scanned, stored_files, stored_bytes } => {
                let tty = std::io::stderr().is_terminal();
                let mut last = self.progress.lock().unwrap_or_else(|p| p.into_inner());
                if !tty && last.is_some_and(|t| t.elapsed() < Duration::from_millis(4900)) {
                    return;
                }
                *last = Some(Instant::now());
                let line = format!(
                    "ws: {what}: {} entries scanned, {} files stored ({})",
                    ui::count(*scanned),
                    ui::count(*stored_files),
                    ui::bytes(*stored_bytes),
                );
                ui::progress_line(&line, tty);
            }
            Event::ProgressEnd { .. } => {
                *self.progress.lock().unwrap_or_else(|p| p.into_inner()) = None;
                if std::io::stderr().is_terminal() {
                    ui::progress_clear();
                }
            }
            Event::Excluded { entries } => excluded(entries),
            Event::Summary { session, changes, counts, excluded } => {
                if changes.is_empty() {
                    ui::note(&format!("session {} made no changes", session.id));
                    return;
                }
                let git = inside_git(counts);
                let c = counts;
                let renamed = if c.renamed == 0 { String::new() } else { format!(", {} renamed", c.renamed) };
                ui::note(&format!(
                    "session {}: {} created, {} modified, {} deleted{renamed}{git}, {} excluded from the snapshot — review with `ws diff`, then `ws approve` or `ws rollback`",
                    session.id, c.created, c.modified, c.deleted, excluded
                ));
            }
            Event::Network { requests } => network(requests),
            _ => {}
        }
    }
}

/// ` (and N inside .git)`, or nothing.
pub fn inside_git(c: &Counts) -> String {
    if c.inside_git == 0 { String::new() } else { format!(" (and {} inside .git)", c.inside_git) }
}

fn excluded(entries: &[&ws_snapshot::Entry]) {
    use ws_snapshot::{EntryKind, ExcludeReason};
    let mut parts = Vec::new();
    for e in entries.iter().take(5) {
        if let EntryKind::Excluded { files, bytes, reason } = &e.kind {
            let name = ui::entry_name(e);
            parts.push(match reason {
                ExcludeReason::OverBudget if *files > 1 => {
                    format!("{name} ({}+ files, {}+)", ui::count(*files), ui::bytes(*bytes))
                }
                ExcludeReason::OverBudget => format!("{name} ({})", ui::bytes(*bytes)),
                ExcludeReason::Special => format!("{name} (special file)"),
                ExcludeReason::Unreadable => format!("{name} (unreadable)"),
                ExcludeReason::NoSpace => format!("{name} (not stored: the disk was full)"),
            });
        }
    }
    let more = if entries.len() > 5 { format!(" and {} more", entries.len() - 5) } else { String::new() };
    ui::note(&format!(
        "not in the snapshot (ignored by git and too large; rollback cannot restore them): {}{more}",
        parts.join(", ")
    ));
}

fn network(requests: &[ws_proxy::RequestEvent]) {
    if requests.is_empty() {
        return;
    }
    let refused: Vec<&ws_proxy::RequestEvent> = requests.iter().filter(|r| !r.allowed).collect();
    // Host names are the session's words: rendered, never raw.
    let mut hosts: Vec<String> = refused.iter().map(|r| display::text(r.host.as_bytes())).collect();
    hosts.sort_unstable();
    hosts.dedup();
    let list = if hosts.is_empty() {
        String::new()
    } else {
        let more = if hosts.len() > 5 { format!(" and {} more", hosts.len() - 5) } else { String::new() };
        format!(
            ": {}{more} — `ws why --host HOST` explains",
            hosts.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
        )
    };
    ui::note(&format!("network: {} request(s), {} refused{list}", requests.len(), refused.len()));
}
