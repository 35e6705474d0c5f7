//! The helper processes a session runs: its sandbox is set up by
//! re-executing a program with one of these first arguments:
//!
//! - `__sandbox-exec SPEC -- CMD…`: the launcher, which confines itself
//!   (namespaces, Landlock, seccomp, cgroup) and becomes CMD;
//! - `__sandbox-init SPEC -- CMD…`: the session's init (PID 1 of its PID
//!   namespace), which runs CMD and holds the session for its end;
//! - `__sandbox-record SPEC`: the write recorder (fanotify), started by init;
//! - `__sandbox-release`: closes the recorder's group off the supervisor's
//!   path (it only exits);
//! - `__watch SOCKET LOCK`: the watch between sessions ([`crate::watch`]),
//!   started by the first session that asks for it and left running.
//!
//! The program is [`crate::Options::helper`] when set (an installed `ws`
//! answers them all), else the running program, which must then answer them
//! by calling [`dispatch`] first thing in `main`. The launcher re-executes
//! itself for init and the recorder, so one program answers for a session.

use crate::{Error, ErrorKind, Event, Observer};

/// The argument that starts the launcher.
pub const LAUNCHER: &str = ws_sandbox::exec::LAUNCHER_ARG;
/// The argument that starts the session's init.
pub const INIT: &str = ws_sandbox::exec::INIT_ARG;
/// The argument that starts the write recorder.
pub const RECORDER: &str = ws_sandbox::recorder::RECORDER_ARG;
/// The argument that releases the recorder's group.
pub const RELEASE: &str = ws_sandbox::recorder::RELEASE_ARG;
/// The argument that starts the watch between sessions.
pub const WATCH: &str = crate::watch::WATCH_ARG;

/// Whether this process was started as one of a session's helpers.
pub fn is_helper() -> bool {
    let arg = std::env::args_os().nth(1);
    matches!(arg.as_deref().and_then(|a| a.to_str()), Some(LAUNCHER | INIT | RECORDER | RELEASE | WATCH))
}

/// If this process is one of a session's helpers, runs it and exits with
/// its status; else returns at once. Call it first thing in `main`, before
/// any thread starts. What the launcher has to say (a layer running
/// degraded, a command that cannot run) goes to `observer`, in this
/// process: the session's stderr is the place to print it.
pub fn dispatch(observer: &dyn Observer) {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    match args.get(1).and_then(|a| a.to_str()) {
        Some(LAUNCHER) => std::process::exit(sandboxed(&args[2..], false, observer)),
        Some(INIT) => std::process::exit(sandboxed(&args[2..], true, observer)),
        // Exiting closes what `recorder::release` handed over.
        Some(RELEASE) => std::process::exit(0),
        Some(WATCH) => std::process::exit(crate::watch::serve(&args[2..], observer)),
        Some(RECORDER) => {
            std::process::exit(ws_sandbox::recorder::run(&args.get(2).map(|a| a.to_string_lossy()).unwrap_or_default()))
        }
        _ => {}
    }
}

/// The helper program: `helper` if given, else this program.
pub fn program(helper: &Option<std::path::PathBuf>) -> std::path::PathBuf {
    match helper {
        Some(p) => p.clone(),
        None => std::env::current_exe().unwrap_or_else(|_| "/proc/self/exe".into()),
    }
}

/// The launcher or the session's init (`PROGRAM __sandbox-exec|__sandbox-init
/// SPEC -- CMD…`): confine, run CMD, return its exit code.
fn sandboxed(args: &[std::ffi::OsString], init: bool, observer: &dyn Observer) -> i32 {
    let not_started = crate::run::NOT_STARTED;
    let (Some(spec), Some(sep)) = (args.first(), args.get(1)) else { return not_started };
    if sep != "--" || args.len() < 3 {
        return not_started;
    }
    let spec = spec.to_string_lossy();
    let degraded = |layer: &str, why: &dyn std::error::Error| {
        observer.event(&Event::Warning(&format!("running without {layer}: {}", crate::chain(why))));
    };
    let result = if init {
        ws_sandbox::exec::init(&spec, &args[2], &args[3..])
    } else {
        ws_sandbox::exec::launch(&spec, &args[2], &args[3..], &degraded)
    };
    match result {
        Ok(code) => code,
        // The supervisor refused and says why (a full disk during the
        // snapshot…), or was killed: a word from here would only mislead.
        Err(ws_sandbox::exec::LaunchError::NotStarted) => not_started,
        Err(e) => {
            let error = launch_failure(&e);
            observer.event(&Event::Error(&error));
            error.status.unwrap_or(not_started)
        }
    }
}

/// The error for a launch that failed: a command that cannot be found or
/// run is the shell's 127 or 126, with advice about the command (Landlock
/// refuses to run what the profile's `exec` does not name); a layer that
/// cannot be set up is about the machine.
pub fn launch_failure(e: &ws_sandbox::exec::LaunchError) -> Error {
    use ws_sandbox::exec::LaunchError;
    let message = crate::chain(e);
    match e {
        LaunchError::Exec { program, source } if source.kind() == std::io::ErrorKind::NotFound => {
            Error::new(ErrorKind::CommandNotRun, message)
                .hint(format!("check the name; inside the session `{program}` is looked up in the session's PATH"))
                .status(127)
        }
        LaunchError::Exec { program, .. } => Error::new(ErrorKind::CommandNotRun, message)
            .hint(format!(
                "`{program}` is not executable, or the profile does not let a session run it: \
                 `ws why {program} --op exec` says which rule decides; [filesystem] exec grants a directory"
            ))
            .status(126),
        _ => Error::new(ErrorKind::SandboxUnavailable, message)
            .hint("`ws doctor` shows what this machine can enforce; --allow-degraded runs without a missing layer")
            .status(crate::run::NOT_STARTED),
    }
}
