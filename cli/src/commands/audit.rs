//! `ws audit verify`: check a session's audit log against its hash chain.
//! `ws audit export --otlp`: send it to an OpenTelemetry collector again.

use clap::{Args, Subcommand};

use crate::commands::log::session_or_newest;
use crate::error::{CliError, exit};
use crate::out;
use crate::workspace::Workspace;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    Verify(VerifyArgs),
    Export(ExportArgs),
}

/// Send a session's audit log to an OpenTelemetry collector or the journal (again).
///
/// Sessions send their records as they happen when OTEL_EXPORTER_OTLP_ENDPOINT
/// (or OTEL_EXPORTER_OTLP_LOGS_ENDPOINT) is set; a session that could not
/// send them all says so. This sends every record of the log, in order, the
/// same way: a collector tells a record sent twice by its `ws.session.id` and
/// `ws.audit.seq`. The log is verified first; a damaged one is not sent.
/// Exit status 0 when the collector accepted every record, 1 otherwise.
///
/// `--journald` writes the records as structured journal entries
/// (`journalctl WS_SESSION=ID`) where a journal socket exists.
///
/// Example: OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318 ws audit export 3fa2 --otlp
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("to").required(true).multiple(true).args(["otlp", "journald"])))]
pub struct ExportArgs {
    /// Session id (a unique prefix is enough) or name; default: the newest session.
    #[arg(add = clap_complete::ArgValueCompleter::new(crate::commands::completions::session_ids))]
    id: Option<String>,
    /// To the OTLP/HTTP endpoint the OTEL_EXPORTER_OTLP_* variables name.
    #[arg(long)]
    otlp: bool,
    /// To the systemd journal (/run/systemd/journal/socket).
    #[arg(long)]
    journald: bool,
}

/// Check that a session's audit log is exactly as ws wrote it.
///
/// Every record carries the BLAKE3 hash of the one before it, and the log is
/// sealed when the session ends: an edited, removed, reordered or inserted
/// record, or records cut off or added at the end, make this fail and name the
/// first record (by line) that does not fit. Exit status 0 when intact, 1 when not.
///
/// Example: ws audit verify 3fa2
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Session id (a unique prefix is enough) or name; default: the newest session.
    #[arg(add = clap_complete::ArgValueCompleter::new(crate::commands::completions::session_ids))]
    id: Option<String>,
}

pub fn run(c: AuditCommand) -> Result<i32, CliError> {
    match c {
        AuditCommand::Verify(a) => cmd_verify(a),
        AuditCommand::Export(a) => cmd_export(a),
    }
}

fn cmd_verify(args: VerifyArgs) -> Result<i32, CliError> {
    use ws_snapshot::audit::AuditError;
    let ws = Workspace::discover(crate::env::options())?;
    let session = session_or_newest(&ws, args.id.as_deref())?;
    let path = ws.store.audit_log_path(&session.id);
    match ws_snapshot::audit::verify(&path, &session.id) {
        Ok(s) => {
            let end = if s.sealed { "sealed" } else { "not sealed (the session is running or was interrupted)" };
            out!(
                "audit log of session {}: intact, {} records ({} writes, {} denials, {} network requests), {end}",
                session.id,
                s.records,
                s.writes,
                s.denials,
                s.net
            );
            for gap in &s.incomplete {
                out!("incomplete: {}", crate::display::text(gap.as_bytes()));
            }
            Ok(exit::OK)
        }
        Err(AuditError::Damaged { path, source }) => Err(CliError::failure(format!(
            "the audit log of session {} was changed after ws wrote it: {source}",
            session.id
        ))
        .hint(format!("the log is {}; the records before line {} are intact", path.display(), source.line))),
        Err(AuditError::Open { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Err(CliError::usage(format!("session {} has no audit log", session.id))
                .hint("sessions started before ws kept audit logs have none"))
        }
        Err(e) => Err(CliError::failure(crate::error::chain(&e))),
    }
}

fn cmd_export(args: ExportArgs) -> Result<i32, CliError> {
    let config = if args.otlp {
        Some(crate::export::config().map_err(CliError::usage)?.ok_or_else(|| {
            CliError::usage("audit export: no collector named").hint(
                "set OTEL_EXPORTER_OTLP_ENDPOINT (e.g. http://localhost:4318) or OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
            )
        })?)
    } else {
        None
    };
    let ws = Workspace::discover(crate::env::options())?;
    let session = session_or_newest(&ws, args.id.as_deref())?;
    let path = ws.store.audit_log_path(&session.id);
    // What is sent is what `ws audit verify` vouches for.
    ws_snapshot::audit::verify(&path, &session.id).map_err(|e| {
        CliError::failure(format!("not sending the audit log of session {}: {}", session.id, crate::error::chain(&e)))
            .hint(format!("`ws audit verify {}` says what is wrong with it", session.id))
    })?;
    let bytes = fs_err::read(&path).map_err(CliError::from)?;
    let mut lines = Vec::new();
    let mut profile = String::new();
    for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let record = ws_snapshot::audit::parse_line(line)
            .ok_or_else(|| CliError::failure(format!("{}: a line changed while it was read", path.display())))?;
        if let ws_snapshot::audit::Event::SessionStart { profile: p, .. } = &record.event {
            profile.clone_from(p);
        }
        lines.push(ws_otlp::Line { record, bytes: line.to_vec() });
    }
    let ctx = crate::export::context(&session.id, &session.workspace, &profile);
    let mut all_sent = true;
    if args.journald {
        let report = crate::export::journal_all(&ctx, &lines).map_err(CliError::failure)?;
        crate::export::say(&report, &session.id, "the journal", "--journald");
        all_sent &= report.missing() == 0;
    }
    if let Some(config) = config {
        let report = ws_otlp::export_all(&config, &ctx, &lines);
        crate::export::say(&report, &session.id, &config.endpoint.to_string(), "--otlp");
        all_sent &= report.missing() == 0;
    }
    Ok(if all_sent { exit::OK } else { exit::FAILURE })
}
