//! `ws completions SHELL` and `ws man`: shell completion scripts and man
//! pages, generated from the same command definitions as `--help`.
//!
//! Completion is dynamic: the script a shell sources calls `ws` back at
//! every Tab (`WS_COMPLETE=SHELL ws -- WORDS…`, answered in `main` before
//! anything else runs), so a session id or name is completed from the
//! workspace's store as it is now, in all five shells, with one definition.
//! Answering reads the store and creates nothing.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use clap::{Args, CommandFactory, ValueEnum};
use clap_complete::engine::{CompletionCandidate, PathCompleter, ValueCompleter as _};
use clap_complete::env::EnvCompleter;

use crate::env;
use crate::error::{CliError, exit};
use crate::workspace::Workspace;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Elvish,
    Powershell,
}

/// Print the shell code that completes ws's commands, options, session ids
/// and names.
///
/// The code calls `ws` back at each Tab, so session ids come from the
/// workspace you are in. Load it at shell start-up rather than saving it to a
/// file (the protocol between the two may change between ws versions):
///
///   bash:       echo 'source <(ws completions bash)' >> ~/.bashrc
///   zsh:        echo 'source <(ws completions zsh)' >> ~/.zshrc
///   fish:       echo 'ws completions fish | source' >> ~/.config/fish/config.fish
///   elvish:     echo 'eval (ws completions elvish | slurp)' >> ~/.config/elvish/rc.elv
///   powershell: echo 'ws completions powershell | Out-String | Invoke-Expression' >> $PROFILE
///
/// `WS_COMPLETE=bash ws` prints the same as `ws completions bash`.
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct CompletionsArgs {
    shell: Shell,
}

/// Print ws's man page (ws.1), or write one page per command into a directory.
///
/// With --dir, writes ws.1, ws-session.1, ws-session-start.1, … (the pages
/// a package installs into /usr/share/man/man1).
///
/// Examples: ws man | man -l - · ws man --dir /usr/local/share/man/man1
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write one page per command into this directory (created if missing).
    #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    dir: Option<PathBuf>,
}

/// The command tree, as completion and man pages see it.
pub fn command() -> clap::Command {
    crate::commands::Cli::command()
}

/// Answers a shell's completion request if this process is one (`WS_COMPLETE`
/// set); returns otherwise. Exits when it answered.
pub fn answer_if_asked() {
    clap_complete::CompleteEnv::with_factory(command).var(env::WS_COMPLETE).bin("ws").complete();
}

pub fn cmd_completions(args: CompletionsArgs) -> Result<i32, CliError> {
    let shell: &dyn EnvCompleter = match args.shell {
        Shell::Bash => &clap_complete::env::Bash,
        Shell::Zsh => &clap_complete::env::Zsh,
        Shell::Fish => &clap_complete::env::Fish,
        Shell::Elvish => &clap_complete::env::Elvish,
        Shell::Powershell => &clap_complete::env::Powershell,
    };
    let mut script = Vec::new();
    shell
        .write_registration(env::WS_COMPLETE, "ws", "ws", &completer_path(), &mut script)
        .map_err(|e| CliError::failure(format!("cannot write the completion script: {e}")))?;
    write_stdout(&script)
}

/// The program the script calls back: this `ws` as it was invoked (`ws` is
/// looked up in PATH at each Tab; a relative path is made absolute, as the
/// shell may be elsewhere by then), the same rule as `WS_COMPLETE=SHELL ws`.
fn completer_path() -> String {
    let arg0 = std::env::args_os().next().unwrap_or_else(|| OsString::from("ws"));
    let path = PathBuf::from(&arg0);
    let path = match std::env::current_dir() {
        Ok(cwd) if path.components().count() > 1 && path.is_relative() => cwd.join(path),
        _ => path,
    };
    path.to_string_lossy().into_owned()
}

pub fn cmd_man(args: ManArgs) -> Result<i32, CliError> {
    let mut cmd = command().disable_help_subcommand(true);
    cmd.build();
    match args.dir {
        None => {
            let page = render(&clap_mangen::Man::new(cmd))
                .map_err(|e| CliError::failure(format!("cannot render the man page: {e}")))?;
            write_stdout(page.as_bytes())
        }
        Some(dir) => {
            fs_err::create_dir_all(&dir).map_err(CliError::from)?;
            let mut written = 0;
            write_pages(&cmd, &dir, &mut written)?;
            crate::ui::note(&format!("wrote {written} man pages into {}", dir.display()));
            Ok(exit::OK)
        }
    }
}

fn write_pages(cmd: &clap::Command, dir: &Path, written: &mut usize) -> Result<(), CliError> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, dir, written)?;
    }
    let man = clap_mangen::Man::new(cmd.clone());
    let path = dir.join(man.get_filename());
    let page = render(&man).map_err(|e| CliError::failure(format!("cannot render {}: {e}", path.display())))?;
    fs_err::write(&path, page).map_err(CliError::from)?;
    *written += 1;
    Ok(())
}

/// The page in roff, with every character outside ASCII as a groff escape
/// (`—` as `\[u2014]`): the help text has dashes and ellipses, and a
/// formatter not told the input's encoding (groff without preconv) would
/// otherwise print mojibake.
fn render(man: &clap_mangen::Man) -> std::io::Result<String> {
    let mut page = Vec::new();
    man.render(&mut page)?;
    let page = String::from_utf8(page).map_err(std::io::Error::other)?;
    let mut out = String::with_capacity(page.len());
    for c in page.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            out.push_str(&format!("\\[u{:04X}]", u32::from(c)));
        }
    }
    Ok(out)
}

fn write_stdout(bytes: &[u8]) -> Result<i32, CliError> {
    use std::io::Write as _;
    match std::io::stdout().lock().write_all(bytes) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(CliError::failure(format!("cannot write to stdout: {e}")))
        }
        _ => Ok(exit::OK),
    }
}

/// Completes a session id or name (`ws diff 3f<Tab>`): the sessions of the
/// workspace around the current directory, newest first, each with its
/// state and command as the description.
pub fn session_ids(current: &OsStr) -> Vec<CompletionCandidate> {
    session_candidates(current)
}

/// Completes a word of `ws approve|rollback [ID] [PATHS…]`: session ids and
/// names, and paths.
pub fn session_ids_or_paths(current: &OsStr) -> Vec<CompletionCandidate> {
    let mut all = session_candidates(current);
    all.extend(PathCompleter::any().complete(current));
    all
}

fn session_candidates(current: &OsStr) -> Vec<CompletionCandidate> {
    let Some(ws) = std::env::current_dir().ok().and_then(|d| Workspace::existing(&d, crate::env::options())) else {
        return Vec::new();
    };
    let Ok(sessions) = ws.store.sessions() else { return Vec::new() };
    let current = current.to_string_lossy();
    let mut out = Vec::new();
    for s in sessions.into_iter().rev().filter_map(Result::ok) {
        let state = match s.state {
            ws_snapshot::SessionState::Running if s.orphaned() => "interrupted",
            ws_snapshot::SessionState::Running => "running",
            ws_snapshot::SessionState::Pending => "pending",
            ws_snapshot::SessionState::Closed => "closed",
        };
        // The description is agent-controlled text (the command): rendered inert.
        let help = crate::display::text(format!("{state}: {}", s.command.join(" ")).as_bytes());
        if s.id.starts_with(&*current) {
            out.push(CompletionCandidate::new(&s.id).help(Some(help.clone().into())));
        }
        if let Some(name) = s.name.as_deref().filter(|n| n.starts_with(&*current)) {
            out.push(CompletionCandidate::new(name).help(Some(format!("{} {help}", s.id).into())));
        }
    }
    out
}
