//! `ws session start | list | show`.

use std::ffi::OsString;

use clap::{Args, Subcommand};
use serde::Serialize;
use ws_snapshot::{Change, Session, SessionState};

use crate::error::{CliError, exit};
use crate::workspace::Workspace;
use crate::{display, out, ui};

#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    Start(StartArgs),
    List(ListArgs),
    Show(ShowArgs),
}

/// Snapshot the workspace, run a command, and leave its changes pending review.
///
/// The workspace is the git top-level above the current directory, else the
/// current directory. The command's exit status is passed through (128+N if
/// it died of signal N; 125 if ws could not start it). Ctrl-C goes to the
/// command; ws stays to record what it changed.
///
/// Example: ws session start --profile claude-code --name refactor -- claude --dangerously-skip-permissions
#[derive(Debug, Args)]
pub struct StartArgs {
    /// A label to find the session by later (`ws diff refactor`).
    #[arg(long)]
    name: Option<String>,
    /// The sandbox profile: a built-in (`ws profile list`), one of yours in
    /// ~/.config/ws/profiles/NAME.toml, or a path to a .toml file.
    #[arg(long, default_value = "default")]
    profile: String,
    /// Run even if a layer the profile requires is missing on this machine
    /// (the session record says what was not enforced). Never implied.
    #[arg(long)]
    allow_degraded: bool,
    /// Also send every audit record here as it is written (repeatable;
    /// WS_AUDIT_SINK=journald for every session). OTLP export is on when
    /// OTEL_EXPORTER_OTLP_ENDPOINT is set.
    #[arg(long, value_enum, value_name = "SINK")]
    audit_sink: Vec<crate::export::AuditSink>,
    /// For programs that drive ws (the Python SDK): write JSON lines to
    /// this inherited descriptor instead of messages to stderr — each audit
    /// record as it is written (as `ws log --json` prints it), ws's messages
    /// (`{"message": …}`), and last `{"session": …}` (as `ws session show
    /// --json`) or `{"error": {"kind", "message", "hint"}}`.
    #[arg(long, value_name = "FD")]
    events_fd: Option<i32>,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<OsString>,
}

/// List the sessions of this workspace, oldest first.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Machine-readable output (stable; documented in the README).
    #[arg(long)]
    json: bool,
}

/// Show one session: command, times, exit status, change counts, exclusions.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Session id (a unique prefix is enough) or name; default: the newest pending one.
    #[arg(add = clap_complete::ArgValueCompleter::new(crate::commands::completions::session_ids))]
    id: Option<String>,
    #[arg(long)]
    json: bool,
}

pub fn run(c: SessionCommand) -> Result<i32, CliError> {
    match c {
        SessionCommand::Start(a) => cmd_start(a),
        SessionCommand::List(a) => cmd_list(a),
        SessionCommand::Show(a) => cmd_show(a),
    }
}

fn cmd_start(args: StartArgs) -> Result<i32, CliError> {
    if let Some(fd) = args.events_fd {
        // First: before ws opens descriptors of its own that could take the number.
        let file = ws_sandbox::service::passed_descriptor(fd).ok_or_else(|| {
            CliError::usage(format!("--events-fd {fd}: not an open descriptor this process inherited"))
                .hint("pass a pipe's write end, number 3 or above, open in ws")
        })?;
        ui::machine::events_to(file);
    }
    let run = ws_session::Run {
        name: args.name,
        profile: &args.profile,
        allow_degraded: args.allow_degraded,
        command: &args.command,
        learn: false,
        exports: crate::export::settings(&args.audit_sink)?,
        env: std::env::vars_os().collect(),
        cwd: std::env::current_dir().ok(),
    };
    let ran = start(run)?;
    if ui::machine::has_events() {
        let changes = ran.ws.store.load_changes(&ran.session.id).ok();
        let summary = serde_json::json!({ "session": session_json(&ran.ws, &ran.session, changes.as_deref()) });
        ui::machine::line(&serde_json::to_vec(&summary).unwrap_or_default());
    }
    Ok(ran.code)
}

/// Runs a session in the workspace around the current directory: a command
/// that cannot be found is refused before the workspace is looked for.
pub fn start(run: ws_session::Run) -> Result<ws_session::Ran, CliError> {
    if let Some(program) = run.command.first() {
        ws_session::check_runnable(program, &run.env)?;
    }
    let ws = Workspace::discover(crate::env::options())?;
    Ok(ws_session::run_session(ws, run)?)
}

pub use ws_session::{counts, pending_or_newest};

#[derive(Serialize)]
struct SessionJson<'a> {
    id: &'a str,
    name: Option<&'a str>,
    state: &'static str,
    workspace: &'a str,
    command: &'a [String],
    started_ms: u64,
    ended_ms: Option<u64>,
    exit_code: Option<i32>,
    exit_signal: Option<i32>,
    snapshot_ms: Option<u64>,
    after_snapshot_ms: Option<u64>,
    /// How the before-snapshot was taken: `{"from": "watch", "paths": N}`
    /// or `{"from": "walk", "reason": …}` (null for old sessions).
    before_snapshot: Option<&'a ws_snapshot::BeforeFrom>,
    /// How the after-snapshot was taken: `{"from": "record", "paths": N}`
    /// or `{"from": "walk", "reason": …}` (null for old sessions).
    after_snapshot: Option<&'a ws_snapshot::AfterFrom>,
    rollback_interrupted: bool,
    changes: Option<ws_session::Counts>,
    /// Which recorders ran, what they could not record, and events lost.
    recording: Option<&'a ws_snapshot::audit::Recording>,
    /// Whether the record is complete (no recorder lost events).
    record_complete: bool,
}

fn state_name(ws: &Workspace, s: &Session) -> &'static str {
    if s.orphaned() {
        "interrupted"
    } else if ws.store.rollback_interrupted(&s.id) {
        "rollback-interrupted"
    } else {
        match s.state {
            SessionState::Running => "running",
            SessionState::Pending => "pending",
            SessionState::Closed => "closed",
        }
    }
}

fn session_json<'a>(ws: &Workspace, s: &'a Session, changes: Option<&[Change]>) -> SessionJson<'a> {
    SessionJson {
        id: &s.id,
        name: s.name.as_deref(),
        state: state_name(ws, s),
        workspace: &s.workspace,
        command: &s.command,
        started_ms: s.started_ms,
        ended_ms: s.ended_ms,
        exit_code: s.exit.and_then(|e| e.code),
        exit_signal: s.exit.and_then(|e| e.signal),
        snapshot_ms: s.snapshot_ms,
        after_snapshot_ms: s.after_snapshot_ms,
        before_snapshot: s.before_from.as_ref(),
        after_snapshot: s.after_from.as_ref(),
        rollback_interrupted: ws.store.rollback_interrupted(&s.id),
        changes: changes.map(counts),
        recording: s.recording.as_ref(),
        record_complete: s.recording.as_ref().is_none_or(ws_snapshot::audit::Recording::complete),
    }
}

fn cmd_list(args: ListArgs) -> Result<i32, CliError> {
    let ws = Workspace::discover(crate::env::options())?;
    let mut rows = Vec::new();
    for r in ws.store.sessions()? {
        match r {
            Ok(s) => {
                let changes = ws.store.load_changes(&s.id).ok();
                rows.push((s, changes));
            }
            Err(e) => ui::warn(&crate::error::chain(&e)),
        }
    }
    if args.json {
        let v: Vec<_> = rows.iter().map(|(s, c)| session_json(&ws, s, c.as_deref())).collect();
        out!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(exit::OK);
    }
    if rows.is_empty() {
        ui::note(&format!("no sessions yet in {}; start one with `ws session start -- CMD`", ws.root.display()));
        return Ok(exit::OK);
    }
    out!("{:<9} {:<20} {:<17} {:>8}  {}", "ID", "STATE", "STARTED", "PENDING", "COMMAND");
    for (s, c) in &rows {
        let pending = c.as_deref().map(|c| counts(c).pending.to_string()).unwrap_or_else(|| "-".into());
        let label = match &s.name {
            Some(n) => format!("[{}] {}", display::text(n.as_bytes()), command_line(&s.command)),
            None => command_line(&s.command),
        };
        out!("{:<9} {:<20} {:<17} {:>8}  {}", s.id, state_name(&ws, s), time(s.started_ms), pending, label);
    }
    Ok(exit::OK)
}

fn cmd_show(args: ShowArgs) -> Result<i32, CliError> {
    let ws = Workspace::discover(crate::env::options())?;
    let mut s = pending_or_newest(&ws, args.id.as_deref())?;
    let changes = if s.state == SessionState::Running && !s.orphaned() {
        None
    } else {
        let _lock = ws.lock()?;
        Some(ws.session_changes(&mut s)?)
    };
    let excluded = crate::commands::diff::excluded_of(&ws.store, &s.before)?;
    let denied = ws_session::learn::denials(&ws.store, &s);
    let suggestions = ws_session::learn::suggestions(&denied, &ws.root, &ws.options);
    if args.json {
        #[derive(Serialize)]
        struct Show<'a> {
            #[serde(flatten)]
            session: SessionJson<'a>,
            excluded: Vec<crate::commands::diff::ExcludedJson>,
            /// Each denial, with the profile line that would allow it.
            denials: Vec<ws_session::learn::Suggestion>,
        }
        let show = Show {
            session: session_json(&ws, &s, changes.as_deref()),
            excluded: crate::commands::diff::excluded_json(&excluded),
            denials: suggestions,
        };
        out!("{}", serde_json::to_string_pretty(&show).unwrap_or_default());
        return Ok(exit::OK);
    }
    // Everything below that a session or its command chose goes through
    // `display`: names quoted, other text with its control bytes shown.
    let txt = |s: &str| display::text(s.as_bytes());
    out!("session    {}{}", s.id, s.name.as_ref().map(|n| format!(" [{}]", txt(n))).unwrap_or_default());
    out!("state      {}", state_name(&ws, &s));
    out!("workspace  {}", display::name(s.workspace.as_bytes()));
    out!("command    {}", command_line(&s.command));
    out!("started    {}", time(s.started_ms));
    if let Some(e) = s.ended_ms {
        out!("ended      {}", time(e));
    }
    if let Some(e) = s.exit {
        match (e.code, e.signal) {
            (Some(c), _) => out!("exit       {c}"),
            (_, Some(sig)) => out!("exit       killed by signal {sig}"),
            _ => {}
        }
    }
    if let Some(c) = &changes {
        let n = counts(c);
        out!(
            "changes    {} created, {} modified, {} deleted{}{} ({} pending, {} approved, {} rolled back)",
            n.created,
            n.modified,
            n.deleted,
            if n.renamed == 0 { String::new() } else { format!(", {} renamed", n.renamed) },
            crate::observe::inside_git(&n),
            n.pending,
            n.approved,
            n.rolled_back
        );
    }
    match &s.before_from {
        Some(ws_snapshot::BeforeFrom::Watch { paths }) => {
            out!("snapshot   from the watch ({} paths){}", paths, ms(s.snapshot_ms))
        }
        Some(ws_snapshot::BeforeFrom::Walk { reason }) => {
            out!("snapshot   full walk: {}{}", txt(reason), ms(s.snapshot_ms))
        }
        None => {}
    }
    match &s.after_from {
        Some(ws_snapshot::AfterFrom::Record { paths }) => {
            out!("after-snap from the record ({} paths){}", paths, ms(s.after_snapshot_ms))
        }
        Some(ws_snapshot::AfterFrom::Walk { reason }) => {
            out!("after-snap full walk: {}{}", txt(reason), ms(s.after_snapshot_ms))
        }
        None => {}
    }
    if let Some(r) = &s.recording {
        show_recording(&ws, &s, r, changes.as_deref());
    }
    for d in &suggestions {
        let times = if d.count > 1 { format!(" ({}×)", d.count) } else { String::new() };
        out!("denied     {}{times} → {}", txt(&d.denied), txt(&ws_session::learn::line(d)));
    }
    if suggestions.iter().any(|d| d.key.is_some()) {
        out!("suggest    `ws profile suggest {}` prints these lines as a patch to the session's profile", s.id);
    }
    for e in &excluded {
        out!("excluded   {} (not in the snapshot; rollback cannot restore it)", ui::entry_name(e));
    }
    if ws.store.rollback_interrupted(&s.id) {
        out!("note       a rollback was interrupted; `ws rollback {}` finishes it", s.id);
    }
    Ok(exit::OK)
}

fn ms(v: Option<u64>) -> String {
    v.map(|v| format!(", {v} ms")).unwrap_or_default()
}

/// A command and its arguments for a line of text: each argument rendered
/// (`display::text`), joined by spaces.
fn command_line(command: &[String]) -> String {
    command.iter().map(|a| display::text(a.as_bytes())).collect::<Vec<_>>().join(" ")
}

/// What was recorded, and whose the changes are.
fn show_recording(ws: &Workspace, s: &Session, r: &ws_snapshot::audit::Recording, changes: Option<&[Change]>) {
    use crate::recording::{Attribution, Origin};
    let txt = |s: &str| display::text(s.as_bytes());
    let via = r.via.as_deref().map(|v| format!(" (through the {})", txt(v))).unwrap_or_default();
    out!("recorded   writes by {}, denials by {}{via}", txt(&r.writes), txt(&r.denials));
    for g in &r.gaps {
        out!("gap        {}", txt(g));
    }
    if r.complete() {
        out!("record     complete");
    } else {
        out!("record     INCOMPLETE: {}", txt(&r.lost.join("; ")));
    }
    if let Some(changes) = changes {
        let who = Attribution::load(&ws.store, s, &*ws.options.observer);
        if who.recorded {
            let (mut own, mut outside, mut both) = (0, 0, 0);
            for c in changes {
                match who.origin_of(&c.path) {
                    Origin::Session => own += 1,
                    Origin::Outside => outside += 1,
                    Origin::Both => both += 1,
                }
            }
            out!("by         {own} by the session, {outside} outside it (another process), {both} by both");
        } else {
            out!("by         every change counts as the session's (no write recorder ran)");
        }
    }
}

/// Local-independent UTC time, `YYYY-MM-DD HH:MM`.
pub fn time(ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}", rem / 3600, (rem % 3600) / 60)
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_utc_time() {
        assert_eq!(super::time(0), "1970-01-01 00:00");
        assert_eq!(super::time(1_795_000_000_000), "2026-11-18 11:06"); // date -u -d @1795000000
    }
}
