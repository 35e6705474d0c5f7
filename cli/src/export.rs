//! Audit export: the session's records, as they are written, also sent to
//! an OpenTelemetry collector when the `OTEL_EXPORTER_OTLP_*` variables name
//! one, and to journald when asked (`--audit-sink journald`). The local log
//! stays the record; export never fails or holds up a session, it says what
//! it could not send.

use std::path::Path;

use ws_otlp::journal::Journal;
use ws_otlp::{Config, Line, Report, SessionContext};

use crate::error::CliError;
use crate::{env, ui};

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

pub use ws_session::export::context;

/// Where a session's records go besides its log: `--audit-sink`,
/// `WS_AUDIT_SINK` and the OTLP variables.
pub fn settings(flags: &[AuditSink]) -> Result<ws_session::export::Settings, CliError> {
    let sinks = sinks(flags).map_err(CliError::usage)?;
    Ok(ws_session::export::Settings { journald: sinks.contains(&AuditSink::Journald), otlp: config() })
}

/// Where the records went, or how many did not and how to send them again.
pub fn say(report: &Report, session: &str, to: &str, flag: &str) {
    match ws_session::export::outcome(report, session, to, flag) {
        (true, msg) => ui::note(&msg),
        (false, msg) => ui::warn(&msg),
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
