//! `ws audit verify`: check a session's audit log against its hash chain.

use clap::{Args, Subcommand};

use crate::commands::log::session_or_newest;
use crate::error::{CliError, exit};
use crate::out;
use crate::workspace::Workspace;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    Verify(VerifyArgs),
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
    }
}

fn cmd_verify(args: VerifyArgs) -> Result<i32, CliError> {
    use ws_snapshot::audit::AuditError;
    let ws = Workspace::discover()?;
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
