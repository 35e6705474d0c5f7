//! `ws log`: the audit log of a session, as a person reads it or as JSON lines.

use clap::Args;
use ws_snapshot::audit::{Event, Record};

use crate::error::{CliError, exit};
use crate::workspace::Workspace;
use crate::{display, out};

/// Show what a session did: every write, denial and network request, in order.
///
/// Each line is one record of the session's audit log: its time (UTC), what
/// happened, the path or host, and the process (pid inside the session, and
/// its executable). `ws audit verify` checks the log has not been changed.
///
/// Examples: ws log · ws log 3fa2 --json · ws log --follow
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Session id (a unique prefix is enough) or name; default: the newest session.
    #[arg(add = clap_complete::ArgValueCompleter::new(crate::commands::completions::session_ids))]
    id: Option<String>,
    /// The records as they are stored: one JSON object per line (stable; see the README).
    #[arg(long)]
    json: bool,
    /// Keep printing new records while the session runs.
    #[arg(long, short)]
    follow: bool,
}

pub(crate) use ws_session::log::session_or_newest;

pub fn cmd_log(args: LogArgs) -> Result<i32, CliError> {
    let ws = Workspace::discover(crate::env::options())?;
    let session = session_or_newest(&ws, args.id.as_deref())?;
    let ending = ws_session::log::read(&ws, &session, args.follow, |line| {
        show(line, args.json);
        true
    })?;
    if ending == ws_session::log::Ending::Incomplete {
        crate::ui::warn(&format!(
            "the log of session {} has no end record: its supervisor died, so the record is INCOMPLETE",
            session.id
        ));
    }
    Ok(exit::OK)
}

/// Prints one line.
fn show(line: &[u8], json: bool) {
    if json {
        out!("{}", String::from_utf8_lossy(line));
        return;
    }
    match ws_snapshot::audit::parse_line(line) {
        Some(r) => out!("{}", describe(&r)),
        None => out!("?             (a damaged record: `ws audit verify` says more)"),
    }
}

/// One record as a line for people (or, for a session's start with gaps,
/// a line each). Paths, executables and denied objects are names
/// (`display::name`: quoted when unusual, never two lines); hosts, request
/// paths and every other word a session could have chosen are `display::text`.
pub(crate) fn describe(r: &Record) -> String {
    let t = clock(r.time_ms);
    let txt = |s: &str| display::text(s.as_bytes());
    let name = |s: &str| display::name(s.as_bytes());
    let who = |pid: Option<u32>, exe: &Option<String>| match (pid, exe.as_deref().map(name)) {
        (Some(p), Some(e)) => format!("  (pid {p} {e})"),
        (Some(p), None) => format!("  (pid {p})"),
        (None, Some(e)) => format!("  ({e})"),
        (None, None) => String::new(),
    };
    let list = |l: &[String]| l.iter().map(|s| txt(s)).collect::<Vec<_>>().join(", ");
    match &r.event {
        Event::SessionStart { session, profile, layers, not_enforced, recording, .. } => {
            let mut s = format!(
                "{t}  start        session {}, profile {}; enforced: {}; writes recorded by {}, denials by {}",
                txt(session),
                txt(profile),
                if layers.is_empty() { "nothing".into() } else { list(layers) },
                txt(&recording.writes),
                txt(&recording.denials)
            );
            if let Some(via) = &recording.via {
                s.push_str(&format!(" (through the {})", txt(via)));
            }
            if !not_enforced.is_empty() {
                s.push_str(&format!("; NOT enforced: {}", list(not_enforced)));
            }
            for g in &recording.gaps {
                s.push_str(&format!("\n{t}  gap          {}", txt(g)));
            }
            s
        }
        Event::Write { pid, exe, ops, path, to, dir } => {
            let ops: Vec<&str> = ops.iter().map(|o| o.name()).collect();
            let slash = if *dir { "/" } else { "" };
            let target = match to {
                Some(to) => format!("{} -> {}", name(&format!("{path}{slash}")), name(&format!("{to}{slash}"))),
                None => name(&format!("{path}{slash}")),
            };
            format!("{t}  {:<12} {target}{}", ops.join(","), who(Some(*pid), exe))
        }
        Event::OutsideWrite { path } => {
            format!("{t}  (not session) {}  changed by a process outside the session", name(path))
        }
        Event::Denial { pid, exe, access, object, by } => format!(
            "{t}  DENIED       {} {}  by {}{}",
            txt(&access.join(",")),
            object.as_deref().map_or_else(|| "?".to_owned(), name),
            txt(by),
            who(*pid, exe)
        ),
        Event::Net { method, host, path, decision, rule, status, bytes_up, bytes_down, credential, reason } => {
            let mut s = format!("{t}  net {:<8} {} {}{}", txt(decision), txt(method), txt(host), txt(path));
            if let Some(st) = status {
                s.push_str(&format!(" -> {st}"));
            }
            s.push_str(&format!(" ({bytes_up} B up, {bytes_down} B down)"));
            if let Some(c) = credential {
                s.push_str(&format!(" credential {}", txt(c)));
            }
            if let Some(rule) = rule {
                s.push_str(&format!(" rule {}", txt(rule)));
            }
            if let Some(r) = reason {
                s.push_str(&format!(": {}", txt(r)));
            }
            s
        }
        Event::GitGuard { path, change, restored } => {
            let done = if *restored { "restored as before the session" } else { "NOT restored: do not run git here" };
            format!("{t}  GIT GUARD    {}  {} by the session (git's control surface); {done}", name(path), txt(change))
        }
        Event::Incomplete { what, reason } => {
            format!("{t}  INCOMPLETE   {} from here on: {}", txt(what), txt(reason))
        }
        Event::SessionEnd { exit_code, signal, complete } => {
            let how = match (exit_code, signal) {
                (Some(c), _) => format!("exit {c}"),
                (_, Some(s)) => format!("killed by signal {s}"),
                _ => "not started".into(),
            };
            let rec = if *complete { "record complete" } else { "record INCOMPLETE" };
            format!("{t}  end          {how}; {rec}")
        }
    }
}

/// `HH:MM:SS.mmm`, UTC.
fn clock(ms: u64) -> String {
    let s = ms / 1000;
    format!("{:02}:{:02}:{:02}.{:03}", (s / 3600) % 24, (s / 60) % 60, s % 60, ms % 1000)
}
