//! `ws`: run an AI coding agent (or any command) on your real workspace with
//! its permission prompts off, then review what it did and keep it or roll it
//! back, all of it or path by path.

mod commands;
mod env;
mod error;
mod ui;
mod workspace;

use clap::Parser;

use crate::error::exit;

pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn main() {
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

#[allow(dead_code)]
const _: i32 = exit::FAILURE;
