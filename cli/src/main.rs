//! `ws`: run an AI coding agent (or any command) on your real workspace with
//! its permission prompts off, then review what it did and keep it or roll it
//! back, all of it or path by path.

mod commands;
mod env;
mod error;
mod export;
mod observe;
mod profiles;
mod service;
mod ui;
mod user;

// The session lifecycle lives in the library; these names are the CLI's too.
pub(crate) use ws_session::{display, network, recording, workspace};

use clap::Parser;

fn main() {
    // The session's helper processes (`__sandbox-*`) are this program too.
    ws_session::helpers::dispatch(&observe::Printer::default());
    commands::completions::answer_if_asked();
    let cli = commands::Cli::parse();
    let code = match user::adopt(cli.user()).and_then(|()| commands::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            error::report(&e);
            e.code
        }
    };
    std::process::exit(code);
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
