//! Audit export: the session's records, as they are written, also sent to
//! an OpenTelemetry collector and to journald when the program asks
//! ([`Settings`]; the `ws` CLI reads them from `OTEL_EXPORTER_OTLP_*`,
//! `--audit-sink` and `WS_AUDIT_SINK`). The local log stays the record;
//! export never fails or holds up a session, it says what it could not send.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ws_otlp::journal::Journal;
use ws_otlp::{Config, Exporter, Line, Report, SessionContext};
use ws_snapshot::audit::Record;

use crate::Options;

/// The most a session's end waits for its last records to reach a
/// collector that is answering (one that is not is not waited for).
const FINAL_FLUSH: Duration = Duration::from_secs(5);

/// Where a session's audit records go besides the local log.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Structured entries in the systemd journal (`journalctl WS_SESSION=ID`).
    pub journald: bool,
    /// An OTLP collector; `Err`: its configuration is bad (said as a
    /// warning at the session's start, which runs with its log kept locally).
    pub otlp: Result<Option<Config>, String>,
}

impl Default for Settings {
    /// No export: the local log only.
    fn default() -> Self {
        Settings { journald: false, otlp: Ok(None) }
    }
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

/// Starts the session's exports. A bad configuration or a missing journal
/// is a warning: the session runs, its log kept locally.
pub fn start(ctx: &SessionContext, settings: &Settings, options: &Options) -> Exports {
    let otlp = match &settings.otlp {
        Ok(Some(c)) => Some(Exporter::start(c.clone(), ctx.clone())),
        Ok(None) => None,
        Err(e) => {
            options.warn(&format!("{e}; the session's audit log is kept locally only"));
            None
        }
    };
    let journal = settings.journald.then(|| open_journal(ctx, options)).flatten();
    Exports { otlp, journal }
}

fn open_journal(ctx: &SessionContext, options: &Options) -> Option<Arc<Journal>> {
    let path = Path::new(ws_otlp::journal::SOCKET);
    match Journal::open(path, ctx.clone()) {
        Ok(j) => Some(Arc::new(j)),
        Err(e) => {
            options.warn(&format!(
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
        if self.otlp.is_none() && self.journal.is_none() {
            return None;
        }
        let sink = self.otlp.as_ref().map(Exporter::sink);
        let journal = self.journal.clone();
        Some(Box::new(move |record: &Record, line: &[u8]| {
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
    pub fn finish(self, session: &str, options: &Options) {
        let say = |report: &Report, to: &str, flag: &str| match outcome(report, session, to, flag) {
            (true, msg) => options.note(&msg),
            (false, msg) => options.warn(&msg),
        };
        if let Some(j) = &self.journal {
            say(&j.report(), "the journal", "--journald");
        }
        if let Some(exporter) = self.otlp {
            let endpoint = exporter.endpoint().to_owned();
            say(&exporter.finish(FINAL_FLUSH), &endpoint, "--otlp");
        }
    }
}

/// Where the records went (`true`), or how many did not and how to send
/// them again (`false`, a warning).
pub fn outcome(report: &Report, session: &str, to: &str, flag: &str) -> (bool, String) {
    if report.missing() == 0 {
        (true, format!("audit export: {} records sent to {to}", report.offered))
    } else {
        (
            false,
            format!(
                "audit export: {} of {} records NOT sent to {to}: {} — the local log is complete; `ws audit export {session} {flag}` sends it again",
                report.missing(),
                report.offered,
                report.error.as_deref().unwrap_or("the collector did not confirm them in time"),
            ),
        )
    }
}
