//! `ws why PATH`: would a session allow this access, and which rule decides.

use std::path::PathBuf;

use clap::Args;
use ws_sandbox::Access;

use crate::error::{CliError, exit};
use crate::workspace::Workspace;
use crate::{env, out, profiles};

/// Explain whether a session may read, write or execute PATH, and which
/// profile rule decides it.
///
/// Example: ws why ~/.ssh/id_ed25519 --op read --profile rust
#[derive(Debug, Args)]
pub struct WhyArgs {
    path: PathBuf,
    #[arg(long, value_enum, default_value = "read")]
    op: Op,
    #[arg(long, default_value = "default")]
    profile: String,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Op {
    Read,
    Write,
    Exec,
}

pub fn cmd_why(args: WhyArgs) -> Result<i32, CliError> {
    let ws = Workspace::discover()?;
    let profile = profiles::resolve(&args.profile)?;
    let (home, tmp) = (env::home(), env::tmpdir());
    let policy = profile.fs_policy(&profiles::vars(&ws.root, &home, &tmp));
    let cwd = std::env::current_dir()?;
    let abs = cwd.join(&args.path);
    // Landlock sees the resolved path: follow symlinks as the kernel would.
    let resolved = std::fs::canonicalize(&abs).unwrap_or(abs);
    let access = match args.op {
        Op::Read => Access::Read,
        Op::Write => Access::Write,
        Op::Exec => Access::Exec,
    };
    let d = policy.decide(&resolved, access);
    match d.rule {
        Some((kind, rule)) => {
            out!(
                "allowed: {} {} by filesystem.{} = {:?} (profile {})",
                access.name(),
                resolved.display(),
                kind.name(),
                rule.display().to_string(),
                profile.name
            );
            Ok(exit::OK)
        }
        None => {
            out!(
                "denied: {} {}: no filesystem.{} rule of profile {} covers it",
                access.name(),
                resolved.display(),
                access.name(),
                profile.name
            );
            Ok(exit::FAILURE)
        }
    }
}
