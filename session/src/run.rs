//! A session's run: snapshot, sandbox, record, run the command, take the
//! after-snapshot, and leave its changes pending review.

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;

use serde::Serialize;
use ws_snapshot::{Change, ChangeKind, ChangeState, ExitStatus, Session, SessionState};

use crate::sandbox::Sandbox;
use crate::{Error, ErrorKind, Event, Workspace};

/// The exit status of a session whose command could not be started.
pub const NOT_STARTED: i32 = 125;

/// A session to run: what `ws session start` and `ws learn` share.
#[derive(Debug)]
pub struct Run<'a> {
    pub name: Option<String>,
    pub profile: &'a str,
    pub allow_degraded: bool,
    pub command: &'a [OsString],
    /// `ws learn`: filesystem reads and the network open but recorded.
    pub learn: bool,
    /// Where audit records also go besides the session's log.
    pub exports: crate::export::Settings,
    /// The environment the session's is made from: the profile keeps what
    /// its `env_allow` names (`ws` passes its own; `PATH` finds the command).
    pub env: Vec<(OsString, OsString)>,
    /// Where the command starts: `None`, the workspace's root (`ws` passes
    /// the directory it was started in).
    pub cwd: Option<std::path::PathBuf>,
}

impl<'a> Run<'a> {
    /// `command` under profile `default`, with an empty environment but
    /// for a standard `PATH`.
    pub fn new(command: &'a [OsString]) -> Run<'a> {
        Run {
            name: None,
            profile: "default",
            allow_degraded: false,
            command,
            learn: false,
            exports: crate::export::Settings::default(),
            env: vec![("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into())],
            cwd: None,
        }
    }
}

/// A session that ran.
#[derive(Debug)]
pub struct Ran {
    /// The exit code to pass on.
    pub code: i32,
    pub ws: Workspace,
    pub session: Session,
    /// The profile the session was started with (for `ws learn`, the base).
    pub profile: ws_sandbox::Profile,
    pub requests: Vec<ws_proxy::RequestEvent>,
    pub learning: Option<crate::recording::Learning>,
}

/// Snapshots the workspace, runs the command in its sandbox with its
/// recorders, and leaves the session pending review.
pub fn run_session(ws: Workspace, run: Run) -> Result<Ran, Error> {
    let Some(program) = run.command.first() else { return Err(Error::usage("no command to run")) };
    check_runnable(program, &run.env)?;
    let mut sandbox = Sandbox::prepare(&ws, run.profile, run.allow_degraded, run.learn, &run.env)?;
    // Ctrl-C and Ctrl-\ reach the command through the terminal's process
    // group; ws only has to survive them to record the session.
    let relay = ws_sandbox::exec::SignalRelay::install()
        .map_err(|e| Error::failure(format!("cannot set up signal handling: {e}")))?;

    // The sandbox and its recorders start first and wait: the snapshot is
    // taken with the write recorder already watching, and the command
    // starts after it (ws_sandbox::exec::Control).
    let mut recorders = {
        let _root = crate::as_root("set up the session's recorders")?;
        let helper = crate::helpers::program(&ws.options.helper);
        crate::recording::Recorders::prepare(
            &ws.root,
            &mut sandbox.spec,
            run.learn,
            &ws.options.recorder_socket,
            &helper,
        )?
    };
    let (mut control, session_end) = ws_sandbox::exec::Control::pair()
        .map_err(|e| Error::failure(format!("cannot create the session's control channel: {e}")))?;
    sandbox.spec.control_fd = Some(std::os::fd::AsRawFd::as_raw_fd(&session_end));
    let mut child = {
        // The launcher needs root for the namespaces and the recorder; it
        // runs the command as the user (`LaunchSpec::run_as`).
        let _root = crate::as_root("start the sandbox")?;
        let mut command = sandbox.command(run.command);
        command.current_dir(run.cwd.as_deref().unwrap_or(&ws.root));
        recorders.spawn(&mut command, Some(session_end))
    }
    .map_err(|e| Error::new(ErrorKind::CommandNotRun, format!("cannot start the sandbox: {e}")).status(NOT_STARTED))?;
    relay.forward_to(child.id());
    // Read while the sandbox starts: the before-snapshot's stat cache. Any
    // stored manifest serves (the walk checks every entry against the file's
    // stat data), so this one need not be read under the workspace's lock.
    let reading = std::time::Instant::now();
    let previous = ws.latest_stored();
    let read_cache = reading.elapsed();
    if !control.wait_ready() {
        // The launcher could not set the sandbox up, and said why; nothing
        // was snapshotted, nothing ran.
        let code = child.wait().ok().and_then(|s| s.code()).unwrap_or(NOT_STARTED);
        // A Ctrl-C reaches the launcher too, and may end it early.
        stop_if_signalled(&relay)?;
        return Err(Error::new(
            ErrorKind::SandboxUnavailable,
            "the session did not start: its sandbox could not be set up (the reason is above); nothing was snapshotted",
        )
        .status(code));
    }
    // Not root: the recorder service watches from here on, before the snapshot.
    recorders.attach_service(&ws.root, run.learn);

    let mut excludes_then = crate::after::Excludes::default();
    let excludes = &mut excludes_then;
    let mut watch_token = None;
    let token = &mut watch_token;
    let snapped = (|| {
        let _lock = ws.lock()?;
        // Waiting for another ws's lock, or a long snapshot, is where a
        // user gives up: a signal then stops the session before it starts.
        stop_if_signalled(&relay)?;
        let previous = previous; // moved in: freed once the snapshot is taken
        let started = std::time::Instant::now();
        // What the excludes files say now: should one change by the end, the
        // after-snapshot walks everything (those outside are not recorded).
        *excludes = crate::after::Excludes::read(ws.exclude_files());
        let watched = crate::watch::before(&ws, previous.as_ref());
        let (id, before) = ws.before_snapshot(previous, &watched)?;
        crate::watch::remember(&ws, &id, watched.token, excludes);
        *token = watched.token;
        // The stat cache's read counts as the snapshot's, though it ran
        // while the sandbox started.
        let snapshot_ms = (started.elapsed() + read_cache).as_millis() as u64;
        let session = Session {
            id: Session::new_id(),
            name: run.name.clone(),
            workspace: ws.root.display().to_string(),
            command: run.command.iter().map(|a| a.to_string_lossy().into_owned()).collect(),
            started_ms: crate::now_ms(),
            ended_ms: None,
            supervisor_pid: std::process::id(),
            state: SessionState::Running,
            exit: None,
            before: id.0.clone(),
            after: None,
            snapshot_ms: Some(snapshot_ms),
            after_snapshot_ms: None,
            recording: None,
            after_from: None,
            before_from: Some(watched.from()),
        };
        stop_if_signalled(&relay)?;
        ws.store.save_session(&session)?;
        crate::network::record_phantoms(&ws.store, &session.id, &sandbox.net.phantoms)?;
        let excluded = report_excluded(&ws, &before);
        Ok::<_, Error>((session, excluded, before))
    })();
    let (mut session, excluded, mut before) = match snapped {
        Ok((s, e, b)) => (s, e, Some(b)),
        Err(e) => {
            // No go: the command never starts.
            drop(control);
            let _ = child.wait();
            return Err(e);
        }
    };

    // The audit log and the recorders (recording.rs): recording before the command starts.
    let network = sandbox.net.mode.name();
    let profile_label = if run.learn { format!("{} (ws learn)", run.profile) } else { run.profile.to_owned() };
    let exports = crate::export::start(
        &crate::export::context(&session.id, &session.workspace, &profile_label),
        &run.exports,
        &ws.options,
    );
    // Each record goes to the exports and to the observer as it is written.
    let to_exports = exports.observer();
    let observer = Arc::clone(&ws.options.observer);
    let observe: ws_snapshot::audit::Observer = Box::new(move |record, line| {
        if let Some(export) = &to_exports {
            export(record, line);
        }
        observer.event(&Event::Record { record, line });
    });
    let mut record = recorders.start(&ws.store, &session, &profile_label, &sandbox.spec, network, Some(observe))?;
    let git_guard = crate::git_guard::GitGuard::start(&ws.root);
    // The last moment a signal can stop the command from starting: after
    // the go, SIGTERM and SIGHUP are the command's (relayed), Ctrl-C too.
    let stopped = relay.received();
    let started = stopped.is_none() && control.go();
    if started {
        match sandbox.net.start(record.log(), Arc::clone(&ws.options.observer)) {
            Ok(None) => {}
            Ok(Some(warning)) => ws.warn(&warning),
            // Nobody serves the session's proxy socket: its network is closed.
            Err(e) => ws.warn(&format!("{}; the session runs with its network closed", e.message)),
        }
    }
    // With init, it says when the command has exited and holds the rest of
    // the session frozen, the recorder watching, until the after-snapshot.
    let held = if stopped.is_none() { control.wait_exit() } else { None };
    if held.is_some() {
        record.sync_service(control.session_ended());
    }
    let after = if held.is_some() {
        let evidence = crate::after::gather(
            &ws.root,
            record.changed(std::time::Duration::from_secs(5)),
            ws.options.after_snapshot,
        );
        let lock = ws.lock()?;
        let exit = held.map(|(code, signal)| ExitStatus { code, signal });
        let after = ws.finish_session(&mut session, before.take(), exit, evidence, Some(&excludes_then));
        crate::gc::auto(&ws, &lock);
        Some(after)
    } else {
        None
    };
    record.end_service();
    control.end();
    let status = child.wait();
    drop(relay);
    let requests = sandbox.net.stop();
    let profile = std::mem::take(&mut sandbox.profile);
    {
        let _root = crate::as_root("remove the session's cgroup")?;
        drop(sandbox); // removes the session's cgroup, now that its processes are gone
    }

    let (exit_status, code) = match (held, &status, stopped) {
        // Told to end (`control.end()`) before the go: nothing ran.
        (_, _, Some(sig)) => (None, 128 + sig),
        (Some((code, signal)), _, None) => {
            (Some(ExitStatus { code, signal }), code.unwrap_or_else(|| 128 + signal.unwrap_or(0)))
        }
        (None, Ok(s), None) => (
            Some(ExitStatus { code: s.code(), signal: s.signal() }),
            s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)),
        ),
        (None, Err(e), None) => {
            let e = Error::new(ErrorKind::CommandNotRun, format!("cannot run {}: {e}", program.to_string_lossy()))
                .status(NOT_STARTED);
            ws.options.observer.event(&Event::Error(&e));
            (None, NOT_STARTED)
        }
    };
    // Without init the after-snapshot comes now, the log still open: no
    // process of the session is left in its PID namespace (or, without one,
    // the command has exited) when git's control surface is put back.
    let mut after = after.unwrap_or_else(|| {
        ws.lock().and_then(|_lock| {
            let why = match stopped {
                Some(sig) => format!("stopped by {} before the command started", signal_name(sig)),
                None => {
                    "the session did not hold itself for the after-snapshot (no PID namespace, or its init died)".into()
                }
            };
            ws.finish_session(&mut session, before.take(), exit_status, Err(why), None)
        })
    });
    if let Ok(changes) = &mut after {
        git_guard.finish(&ws, &mut session, changes, &record.log());
        // The after-snapshot is the store's latest: good as of the token the
        // before-snapshot was taken with (what changed since, the session's
        // writes among it, is looked at again next time).
        if let Some(id) = session.after.clone().map(ws_snapshot::ManifestId)
            && ws.store.latest().as_ref() == Some(&id)
        {
            crate::watch::remember(&ws, &id, watch_token, &excludes_then);
        }
    }
    let (recording, learning) = record.finish(exit_status);
    crate::recording::report(&ws.store, &session, &recording, &ws.options);
    exports.finish(&session.id, &ws.options);
    session.recording = Some(recording);
    let changes = after?;
    ws.store.save_session(&session)?;
    if let Some(sig) = stopped {
        ws.warn(&format!("stopped by {} before the command started: the command did not run", signal_name(sig)));
    }
    let counts = counts(&changes);
    ws.options.observer.event(&Event::Summary { session: &session, changes: &changes, counts: &counts, excluded });
    if !requests.is_empty() {
        ws.options.observer.event(&Event::Network { requests: &requests });
    }
    Ok(Ran { code, ws, session, profile, requests, learning })
}

/// A signal (Ctrl-C, SIGTERM…) before the command started: the session
/// stops there, and the command never runs. `ws` exits as a shell would
/// for a command the signal killed (128 + the signal).
fn stop_if_signalled(relay: &ws_sandbox::exec::SignalRelay) -> Result<(), Error> {
    match relay.received() {
        Some(sig) => Err(Error::new(
            ErrorKind::CommandNotRun,
            format!("stopped by {} before the command started: nothing ran", signal_name(sig)),
        )
        .status(128 + sig)),
        None => Ok(()),
    }
}

fn signal_name(sig: i32) -> String {
    match sig {
        1 => "SIGHUP".into(),
        2 => "SIGINT (Ctrl-C)".into(),
        3 => "SIGQUIT (Ctrl-\\)".into(),
        15 => "SIGTERM".into(),
        n => format!("signal {n}"),
    }
}

/// Refuses before snapshotting when the command cannot be found at all:
/// `env`'s `PATH` is searched for a bare name.
pub fn check_runnable(program: &OsString, env: &[(OsString, OsString)]) -> Result<(), Error> {
    use std::os::unix::ffi::OsStrExt;
    let name = program.as_bytes();
    if name.contains(&b'/') {
        // A path: it must exist before anything is snapshotted. Whether it
        // may run is the sandbox's to say (Landlock), after.
        return match std::fs::metadata(program) {
            Ok(m) if m.is_dir() => {
                Err(Error::new(ErrorKind::CommandNotRun, format!("{} is a directory", program.to_string_lossy()))
                    .hint("give the command to run, not its directory")
                    .status(126))
            }
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(Error::new(ErrorKind::CommandNotRun, format!("command not found: {}", program.to_string_lossy()))
                    .hint("check the path (relative paths start from the current directory)")
                    .status(127))
            }
            Err(_) => Ok(()),
        };
    }
    let path = env.iter().rev().find(|(k, _)| k == "PATH").map(|(_, v)| v.clone()).unwrap_or_default();
    let found = std::env::split_paths(&path).any(|d| {
        let p = d.join(program);
        std::fs::metadata(&p).is_ok_and(|m| m.is_file())
    });
    if found {
        Ok(())
    } else {
        Err(Error::new(ErrorKind::CommandNotRun, format!("command not found: {}", program.to_string_lossy()))
            .hint("check the name, or give its full path")
            .status(127))
    }
}

/// Tells the observer what the before-snapshot left out; returns how many.
fn report_excluded(ws: &Workspace, m: &ws_snapshot::Stored) -> usize {
    let excluded = m.excluded();
    if !excluded.is_empty() {
        ws.options.observer.event(&Event::Excluded { entries: &excluded });
    }
    excluded.len()
}

#[derive(Debug, Default, Serialize, Clone, Copy)]
pub struct Counts {
    pub created: usize,
    pub modified: usize,
    pub deleted: usize,
    /// Moves: a deleted and a created path paired, counted once here and
    /// in neither `created` nor `deleted`.
    pub renamed: usize,
    pub pending: usize,
    pub approved: usize,
    pub rolled_back: usize,
    /// Changes inside `.git/objects`, `.git/logs` and `.git/index` (what a
    /// commit writes), counted here only: `ws diff` does not list them.
    pub inside_git: usize,
}

/// The one count of a session's changes that every view gives (the summary
/// at its end, `ws session show`, `ws session list`, `--json`): paths as
/// `ws diff` lists them, git's internals apart.
pub fn counts(changes: &[Change]) -> Counts {
    let (internal, visible): (Vec<Change>, Vec<Change>) = changes.iter().cloned().partition(|c| git_internal(&c.path));
    let changes = &visible[..];
    let mut c = Counts { inside_git: internal.len(), ..Counts::default() };
    for ch in changes {
        match ch.kind() {
            ChangeKind::Added => c.created += 1,
            ChangeKind::Modified => c.modified += 1,
            ChangeKind::Removed => c.deleted += 1,
        }
        match ch.state {
            ChangeState::Pending => c.pending += 1,
            ChangeState::Approved => c.approved += 1,
            ChangeState::RolledBack => c.rolled_back += 1,
        }
    }
    let all: Vec<usize> = (0..changes.len()).collect();
    for row in ws_snapshot::renames::rows(changes, &all, 0) {
        if let ws_snapshot::renames::Row::Renamed { .. } = row {
            c.renamed += 1;
            c.created -= 1;
            c.deleted -= 1;
        }
    }
    c
}

/// Whether a path is inside git's internals (`.git/objects`, `.git/logs`,
/// `.git/index`: what a commit writes), which `ws diff` leaves out.
pub fn git_internal(p: &ws_snapshot::RelPath) -> bool {
    !matches!(ws_snapshot::git_class(p), ws_snapshot::GitClass::Normal)
}

/// The session `id` names; without one, the newest pending session, else the newest.
pub fn pending_or_newest(ws: &Workspace, id: Option<&str>) -> Result<Session, Error> {
    Ok(match id {
        Some(id) => ws.store.resolve_session(Some(id))?,
        None => match ws.store.resolve_session(None) {
            Ok(s) => s,
            Err(_) => ws
                .store
                .sessions()?
                .into_iter()
                .filter_map(Result::ok)
                .next_back()
                .ok_or_else(|| Error::new(ErrorKind::UnknownSession, "this workspace has no sessions yet"))?,
        },
    })
}
