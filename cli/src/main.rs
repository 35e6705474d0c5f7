//! `ws`: run an AI coding agent (or any command) on your real workspace with
//! its permission prompts off, then review what it did and keep it or roll it
//! back, all of it or path by path.

mod after;
mod commands;
mod display;
mod env;
mod error;
mod export;
mod git_guard;
mod network;
mod profiles;
mod recording;
mod service;
mod ui;
mod user;
mod watch;
mod workspace;

use clap::Parser;

use crate::error::exit;

pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    match args.get(1).and_then(|a| a.to_str()) {
        Some(ws_sandbox::exec::LAUNCHER_ARG) => std::process::exit(sandboxed(&args[2..], false)),
        Some(ws_sandbox::exec::INIT_ARG) => std::process::exit(sandboxed(&args[2..], true)),
        // Exiting closes what `recorder::release` handed over.
        Some(ws_sandbox::recorder::RELEASE_ARG) => std::process::exit(0),
        Some(watch::WATCH_ARG) => std::process::exit(watch::serve(&args[2..])),
        Some(ws_sandbox::recorder::RECORDER_ARG) => {
            std::process::exit(ws_sandbox::recorder::run(&args.get(2).map(|a| a.to_string_lossy()).unwrap_or_default()))
        }
        _ => {}
    }
    commands::completions::answer_if_asked();
    let cli = commands::Cli::parse();
    let code = match user::adopt(cli.user()).and_then(|()| commands::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            ui::error(&e.message, e.hint.as_deref());
            e.code
        }
    };
    std::process::exit(code);
}

/// The launcher or the session's init (`ws __sandbox-exec|__sandbox-init
/// SPEC -- CMD…`): confine, run CMD, return its exit code.
fn sandboxed(args: &[std::ffi::OsString], init: bool) -> i32 {
    let (Some(spec), Some(sep)) = (args.first(), args.get(1)) else { return exit::NOT_STARTED };
    if sep != "--" || args.len() < 3 {
        return exit::NOT_STARTED;
    }
    let spec = spec.to_string_lossy();
    let degraded = |layer: &str, why: &dyn std::error::Error| {
        ui::warn(&format!("running without {layer}: {}", error::chain(why)));
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
        Err(ws_sandbox::exec::LaunchError::NotStarted) => exit::NOT_STARTED,
        Err(e) => {
            let (hint, code) = launch_failure(&e);
            ui::error(&error::chain(&e), Some(&hint));
            code
        }
    }
}

/// The advice and exit status for a launch that failed: a command that
/// cannot be found or run is the shell's 127 or 126, with advice about the
/// command (Landlock refuses to run what the profile's `exec` does not
/// name); a layer that cannot be set up is about the machine.
fn launch_failure(e: &ws_sandbox::exec::LaunchError) -> (String, i32) {
    use ws_sandbox::exec::LaunchError;
    match e {
        LaunchError::Exec { program, source } if source.kind() == std::io::ErrorKind::NotFound => {
            (format!("check the name; inside the session `{program}` is looked up in the session's PATH"), 127)
        }
        LaunchError::Exec { program, .. } => (
            format!(
                "`{program}` is not executable, or the profile does not let a session run it: \
                 `ws why {program} --op exec` says which rule decides; [filesystem] exec grants a directory"
            ),
            126,
        ),
        _ => (
            "`ws doctor` shows what this machine can enforce; --allow-degraded runs without a missing layer".into(),
            exit::NOT_STARTED,
        ),
    }
}

/// Writes to stdout; a closed pipe (`ws diff | head`) ends the program quietly.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit($crate::error::exit::OK);
            }
        }
    }};
}
