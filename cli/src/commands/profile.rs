//! `ws profile list | show NAME | check FILE`.

use clap::{Args, Subcommand};

use crate::error::{CliError, exit};
use crate::{out, profiles};

#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// List the built-in profiles and yours (~/.config/ws/profiles/NAME.toml).
    List,
    /// Show a profile with `extends` resolved: what it allows and requires.
    Show(ShowArgs),
    /// Check a profile file and report every problem with its line and key.
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    name: String,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    file: std::path::PathBuf,
}

pub fn run(c: ProfileCommand) -> Result<i32, CliError> {
    match c {
        ProfileCommand::List => {
            for (name, src) in ws_sandbox::profile::BUILTIN {
                let desc = ws_sandbox::profile::resolve(name, &ws_sandbox::profile::builtin)
                    .ok()
                    .and_then(|p| p.description)
                    .unwrap_or_default();
                let _ = src;
                out!("{name:<12} (built-in) {desc}");
            }
            for (name, path) in profiles::user_profiles() {
                out!("{name:<12} {}", path.display());
            }
            Ok(exit::OK)
        }
        ProfileCommand::Show(a) => {
            let p = profiles::resolve(&a.name)?;
            out!("# profile {} (from {})", p.name, p.chain.join(" → "));
            if let Some(d) = &p.description {
                out!("description = {d:?}");
            }
            out!("[filesystem]");
            out!("read = {:?}", p.read);
            out!("write = {:?}", p.write);
            out!("exec = {:?}", p.exec);
            out!("[environment]");
            out!("allow = {:?}", p.env_allow);
            out!("[enforce]");
            out!("require = {:?}", p.require.iter().map(|l| l.name()).collect::<Vec<_>>());
            Ok(exit::OK)
        }
        ProfileCommand::Check(a) => {
            let bytes = fs_err::read(&a.file).map_err(CliError::from)?;
            let problems = ws_sandbox::profile::check_bytes(&bytes);
            if problems.is_empty() {
                crate::ui::note(&format!("{}: no problems", a.file.display()));
                return Ok(exit::OK);
            }
            for p in &problems {
                out!("{}:{}: {}: {}", a.file.display(), p.line, p.key, p.message);
            }
            Err(CliError::usage(format!("{} has {} problem(s)", a.file.display(), problems.len())))
        }
    }
}
