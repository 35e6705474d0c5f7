//! Audit export: the session's records, as they are written, also sent to
//! an OpenTelemetry collector when the `OTEL_EXPORTER_OTLP_*` variables name
//! one, and to journald when asked (`--audit-sink journald`). The local log
//! stays the record; export never fails or holds up a session, it says what
//! it could not send.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ws_otlp::journal::Journal;
use ws_otlp::{Config, Exporter, Line, Report, SessionContext};
use ws_snapshot::audit::Record;

use crate::{env, ui};

/// The most a session's end waits for its last records to reach a
/// collector that is answering (one that is not is not waited for).
const FINAL_FLUSH: Duration = Duration::from_secs(5);

/// Where audit records go besides the local log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AuditSink {
    /// Structured entries in the systemd journal (`journalctl WS_SESSION=ID`).
    Journald,
}

/// The sinks named by `--audit-sink` and by `WS_AUDIT_SINK` (a comma-separated
/// list: the setting for every session of a machine or container image).
pub fn sinks(flags: &[AuditSink]) -> Result<Vec<AuditSink>, String> {
    let mut all = flags.to_vec();
    if let Some(v) = env::var_os(env::WS_AUDIT_SINK) {
        for name in v.to_string_lossy().split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "journald" => all.push(AuditSink::Journald),
                other => return Err(format!("{}={other}: unknown audit sink (known: journald)", env::WS_AUDIT_SINK)),
            }
        }
    }
    all.dedup();
    Ok(all)
}

/// The OTLP configuration from the environment; `None` when off.
pub fn config() -> Result<Option<Config>, String> {
    let host = fs_err::read_to_string("/proc/sys/kernel/hostname").ok();
    Config::from_vars(env::otel_var, host.as_deref().map(str::trim))
        .map_err(|e| format!("audit export: {}", crate::error::chain(&e)))
}

pub fn context(session: &str, workspace: &str, profile: &str) -> SessionContext {
    SessionContext { session: session.into(), workspace: workspace.into(), profile: profile.into() }
}

/// A running session's exports.
#[derive(Debug, Default)]
pub struct Exports {
    otlp: Option<Exporter>,
    journal: Option<Arc<Journal>>,
}

/// Starts the session's exports. A bad variable or a missing journal is a
/// warning: the session runs, its log kept locally.
pub fn start(ctx: &SessionContext, sinks: &[AuditSink]) -> Exports {
    let otlp = match config() {
        Ok(Some(c)) => Some(Exporter::start(c, ctx.clone())),
        Ok(None) => None,
        Err(e) => {
            ui::warn(&format!("{e}; the session's audit log is kept locally only"));
            None
        }
    };
    let journal = sinks.contains(&AuditSink::Journald).then(|| open_journal(ctx)).flatten();
    Exports { otlp, journal }
}

fn open_journal(ctx: &SessionContext) -> Option<Arc<Journal>> {
    let path = Path::new(ws_otlp::journal::SOCKET);
    match Journal::open(path, ctx.clone()) {
        Ok(j) => Some(Arc::new(j)),
        Err(e) => {
            ui::warn(&format!(
                "audit sink journald: no journal at {} ({e}); the session's audit log is kept locally only",
                path.display()
            ));
            None
        }
    }
}

impl Exports {
    /// The audit log's observer that hands each record to every sink.
    pub fn observer(&self) -> Option<ws_snapshot::audit::Observer> {
        // `ws session start --events-fd N`: the program that started ws.
        let events = ui::machine::has_events();
        if self.otlp.is_none() && self.journal.is_none() && !events {
            return None;
        }
        let sink = self.otlp.as_ref().map(Exporter::sink);
        let journal = self.journal.clone();
        Some(Box::new(move |record: &Record, line: &[u8]| {
            if events {
                ui::machine::line(line);
            }
            let line = Line { record: record.clone(), bytes: line.to_vec() };
            if let Some(j) = &journal {
                j.send(&line);
            }
            if let Some(s) = &sink {
                s.offer(line);
            }
        }))
    }

    /// Ends the exports at the session's end and says what was not sent.
    pub fn finish(self, session: &str) {
        if let Some(j) = &self.journal {
            say(&j.report(), session, "the journal", "--journald");
        }
        if let Some(exporter) = self.otlp {
            let endpoint = exporter.endpoint().to_owned();
            say(&exporter.finish(FINAL_FLUSH), session, &endpoint, "--otlp");
        }
    }
}

/// Where the records went, or how many did not and how to send them again.
pub fn say(report: &Report, session: &str, to: &str, flag: &str) {
    if report.missing() == 0 {
        ui::note(&format!("audit export: {} records sent to {to}", report.offered));
    } else {
        ui::warn(&format!(
            "audit export: {} of {} records NOT sent to {to}: {} — the local log is complete; `ws audit export {session} {flag}` sends it again",
            report.missing(),
            report.offered,
            report.error.as_deref().unwrap_or("the collector did not confirm them in time"),
        ));
    }
}

/// Sends a finished session's log to the journal now.
pub fn journal_all(ctx: &SessionContext, lines: &[Line]) -> Result<Report, String> {
    let path = Path::new(ws_otlp::journal::SOCKET);
    let journal = Journal::open(path, ctx.clone()).map_err(|e| format!("no journal at {}: {e}", path.display()))?;
    for l in lines {
        journal.send(l);
    }
    Ok(journal.report())
}
