//! One module per command; this is the dispatcher.

mod approve;
mod audit;
pub(crate) mod completions;
mod diff;
mod doctor;
mod gc;
mod hooks;
mod interactive;
pub(crate) mod learn;
mod log;
mod profile;
mod recorder;
mod review;
mod rollback;
pub(crate) mod secret;
pub(crate) mod session;
mod why;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use ws_snapshot::{RelPath, Session};

use crate::error::CliError;
use crate::workspace::Workspace;

/// Run an AI coding agent on your real workspace, safely.
///
/// `ws session start -- CMD` snapshots the workspace (the git top-level, else
/// the current directory), runs CMD, and leaves what it changed pending
/// review. `ws diff` shows the changes; `ws approve` keeps them; `ws rollback`
/// restores the snapshot — all of it, or path by path.
#[derive(Debug, Parser)]
#[command(name = "ws", version, max_term_width = 100)]
pub struct Cli {
    /// Run by root: act for this user — their home, profiles and store, and
    /// the session's command run as them (root kept only for recording,
    /// namespaces and cgroups). `sudo ws …` implies the user who ran sudo.
    #[arg(long, global = true, value_name = "NAME")]
    user: Option<String>,
    #[command(subcommand)]
    command: Command,
}

impl Cli {
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start, list and inspect sessions.
    #[command(subcommand)]
    Session(session::SessionCommand),
    Diff(diff::DiffArgs),
    Approve(approve::ApproveArgs),
    Rollback(rollback::RollbackArgs),
    Review(review::ReviewArgs),
    Gc(gc::GcArgs),
    /// List, show and check sandbox profiles.
    #[command(subcommand)]
    Profile(profile::ProfileCommand),
    Doctor(doctor::DoctorArgs),
    /// Store, list and remove the credentials that profiles inject.
    #[command(subcommand)]
    Secret(secret::SecretCommand),
    Learn(learn::LearnArgs),
    Why(why::WhyArgs),
    Log(log::LogArgs),
    /// Check a session's audit log.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Git hooks that refuse commits of unreviewed agent changes and of secrets.
    #[command(subcommand)]
    Hooks(hooks::HooksCommand),
    /// The recorder service: full recording for sessions of users who are not root.
    #[command(subcommand)]
    Recorder(recorder::RecorderCommand),
    Completions(completions::CompletionsArgs),
    Man(completions::ManArgs),
}

pub fn run(cli: Cli) -> Result<i32, CliError> {
    match cli.command {
        Command::Session(c) => session::run(c),
        Command::Diff(a) => diff::cmd_diff(a),
        Command::Approve(a) => approve::cmd_approve(a),
        Command::Rollback(a) => rollback::cmd_rollback(a),
        Command::Review(a) => review::cmd_review(a),
        Command::Gc(a) => gc::cmd_gc(a),
        Command::Profile(c) => profile::run(c),
        Command::Doctor(a) => doctor::cmd_doctor(a),
        Command::Secret(c) => secret::run(c),
        Command::Learn(a) => learn::cmd_learn(a),
        Command::Why(a) => why::cmd_why(a),
        Command::Log(a) => log::cmd_log(a),
        Command::Audit(c) => audit::run(c),
        Command::Hooks(c) => hooks::run(c),
        Command::Recorder(c) => recorder::run(c),
        Command::Completions(a) => completions::cmd_completions(a),
        Command::Man(a) => completions::cmd_man(a),
    }
}

/// Splits `[ID] [PATHS…]`: the first word is a session id (or name) if it
/// names a session and is not also a path that exists.
pub(crate) fn session_and_paths(ws: &Workspace, mut words: Vec<PathBuf>) -> Result<(Session, Vec<RelPath>), CliError> {
    let named = words.first().and_then(|w| {
        let s = w.to_string_lossy();
        let could_be_id = std::fs::symlink_metadata(w).is_err() && !s.contains('/');
        could_be_id.then(|| ws.store.resolve_session(Some(&s)).ok()).flatten()
    });
    let session = match named {
        Some(s) => {
            words.remove(0);
            s
        }
        None => ws.store.resolve_session(None)?,
    };
    let paths = ws.rel_paths(&words)?;
    Ok((session, paths))
}

/// Parses `--hunk PATH:ID[,ID…]` values into picks (paths relative to the
/// current directory). The id list follows the last `:`, so paths may hold `:`.
pub(crate) fn hunk_picks(ws: &Workspace, specs: &[String]) -> Result<Vec<ws_snapshot::HunkPick>, CliError> {
    let mut picks = Vec::new();
    for spec in specs {
        let bad = || {
            CliError::usage(format!("--hunk {spec}: expected PATH:ID[,ID…], e.g. src/lib.rs:2,3"))
                .hint("`ws diff --json PATH` lists a file's hunks and their ids")
        };
        let (path, ids) = spec.rsplit_once(':').ok_or_else(bad)?;
        let ids: Vec<usize> =
            ids.split(',').map(|i| i.trim().parse::<usize>()).collect::<Result<_, _>>().map_err(|_| bad())?;
        if path.is_empty() || ids.is_empty() {
            return Err(bad());
        }
        let rel = ws.rel_paths(&[PathBuf::from(path)])?;
        let Some(path) = rel.into_iter().next() else { return Err(bad()) };
        picks.push(ws_snapshot::HunkPick { path, ids, split: false });
    }
    Ok(picks)
}
