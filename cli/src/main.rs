//! `ws`: run an AI coding agent (or any command) on your real workspace with
//! its permission prompts off, then review what it did and keep it or roll it
//! back, all of it or path by path.

mod commands;
mod env;
mod error;
mod profiles;
mod ui;
mod workspace;

use clap::Parser;

use crate::error::exit;

pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The hidden launcher argument: `ws __sandbox-exec SPEC -- CMD ARGS…`.
pub const LAUNCHER: &str = "__sandbox-exec";

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == LAUNCHER) {
        std::process::exit(launch(&args[2..]));
    }
    let cli = commands::Cli::parse();
    let code = match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            ui::error(&e.message, e.hint.as_deref());
            e.code
        }
    };
    std::process::exit(code);
}

/// Becomes the sandboxed command; returns only on failure.
fn launch(args: &[std::ffi::OsString]) -> i32 {
    let (Some(spec), Some(sep)) = (args.first(), args.get(1)) else { return exit::NOT_STARTED };
    if sep != "--" || args.len() < 3 {
        return exit::NOT_STARTED;
    }
    let (e, degraded) = ws_sandbox::exec::enter(&spec.to_string_lossy(), &args[2], &args[3..]);
    let _ = degraded;
    ui::error(
        &error::chain(&e),
        Some("`ws doctor` shows what this machine can enforce; --allow-degraded runs without the missing layer"),
    );
    match &e {
        ws_sandbox::exec::LaunchError::Exec { source, .. } if source.kind() == std::io::ErrorKind::NotFound => 127,
        ws_sandbox::exec::LaunchError::Exec { .. } => 126,
        _ => exit::NOT_STARTED,
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
