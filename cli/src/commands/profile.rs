//! `ws profile list | show NAME | check FILE | suggest [ID]`.

use clap::{Args, Subcommand};

use crate::error::{CliError, exit};
use crate::{display, out, profiles};

#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// List the built-in profiles and yours (~/.config/ws/profiles/NAME.toml).
    List,
    /// Show a profile with `extends` resolved, whole, as TOML: what it allows
    /// and requires, its network, credential routes and resources. Saved to
    /// a file, it loads back to the same profile.
    Show(ShowArgs),
    /// Check a profile file and report every problem with its line and key.
    Check(CheckArgs),
    Suggest(SuggestArgs),
}

/// Print, as a patch to the session's profile, the lines that would have
/// allowed what the session was denied.
///
/// Filesystem denials come from the kernel's audit records (`ws doctor` says
/// how to turn them on), network ones from the session's proxy. Paths are
/// generalised as `ws learn` does; secret stores like ~/.ssh only file by
/// file, and nothing as wide as `/` or `$HOME` is ever proposed. For a
/// built-in profile the patch creates NAME-local.toml in your profile
/// directory, extending it. Review the patch: a denial may be the sandbox
/// doing its job.
///
/// Example: ws profile suggest > fix.patch && (cd ~/.config/ws/profiles && patch -p1 < ~/fix.patch)
#[derive(Debug, Args)]
pub struct SuggestArgs {
    /// Session id (a unique prefix is enough) or name; default: the newest
    /// pending one, else the newest.
    #[arg(add = clap_complete::ArgValueCompleter::new(crate::commands::completions::session_ids))]
    id: Option<String>,
    /// Apply the patch to the profile file instead of printing it.
    #[arg(long)]
    apply: bool,
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
            // The whole effective profile, as TOML that `ws profile check`
            // accepts and that loads back to the same profile.
            out!("{}", ws_sandbox::profile::to_toml(&p).trim_end());
            Ok(exit::OK)
        }
        ProfileCommand::Check(a) => {
            let bytes = fs_err::read(&a.file).map_err(CliError::from)?;
            let file = a.file.display().to_string();
            let mut problems = ws_sandbox::profile::check_bytes(&bytes);
            if problems.is_empty() {
                // What only the whole chain shows: a parent that is missing,
                // a credential route that no profile of the chain completes.
                let load = |n: &str| if n == file { Some((file.clone(), bytes.clone())) } else { profiles::load(n) };
                match ws_sandbox::profile::resolve(&file, &load) {
                    Ok(_) => {}
                    Err(ws_sandbox::ProfileError::Invalid { origin, problems: theirs }) if origin == file => {
                        problems = theirs
                    }
                    Err(e) => return Err(CliError::usage(format!("{file}: {e}"))),
                }
            }
            if problems.is_empty() {
                crate::ui::note(&format!("{file}: no problems"));
                return Ok(exit::OK);
            }
            for p in &problems {
                out!("{file}:{}: {}: {}", p.line, p.key, p.message);
            }
            Err(CliError::usage(format!("{file} has {} problem(s)", problems.len())))
        }
        ProfileCommand::Suggest(a) => suggest(a),
    }
}

fn suggest(a: SuggestArgs) -> Result<i32, CliError> {
    use crate::commands::learn;
    let ws = crate::workspace::Workspace::discover(crate::env::options())?;
    let session = crate::commands::session::pending_or_newest(&ws, a.id.as_deref())?;
    let suggestions = learn::suggestions(&learn::denials(&ws.store, &session), &ws.root, &ws.options);
    let lines: Vec<(String, String)> =
        suggestions.iter().filter_map(|s| Some((s.key.clone()?, s.value.clone()?))).collect();
    for s in suggestions.iter().filter(|s| s.key.is_none()) {
        crate::ui::note(&format!(
            "denied {}: {}",
            display::text(s.denied.as_bytes()),
            display::text(learn::line(s).as_bytes())
        ));
    }
    if lines.is_empty() {
        crate::ui::note(&format!("session {}: no denial that a profile line would allow", session.id));
        return Ok(exit::OK);
    }
    let name = learn::profile_of(&ws.store, &session).unwrap_or_else(|| "default".into());
    let (origin, text) = profiles::load(&name)
        .ok_or_else(|| CliError::usage(format!("profile `{name}` of session {} no longer exists", session.id)))?;
    let builtin = origin.starts_with("(built-in");
    let (path, old) = if builtin {
        let dir = crate::env::profile_dir()
            .ok_or_else(|| CliError::usage("no profile directory: neither XDG_CONFIG_HOME nor HOME is set"))?;
        let path = dir.join(format!("{name}-local.toml"));
        if path.exists() {
            let text = fs_err::read_to_string(&path).map_err(CliError::from)?;
            (path, text)
        } else {
            (path, format!("extends = \"{name}\"\n"))
        }
    } else {
        let text = String::from_utf8(text).map_err(|_| {
            CliError::usage(format!("profile {origin} is not UTF-8")).hint(format!("see `ws profile check {origin}`"))
        })?;
        (std::path::PathBuf::from(&origin), text)
    };
    let new = learn::add_lines(&old, &lines).map_err(|e| {
        CliError::usage(format!("cannot edit {}: {e}", path.display()))
            .hint("fix it with `ws profile check FILE` first")
    })?;
    let file = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let existed = path.exists();
    if a.apply {
        learn::write_new(&path, new.as_bytes())
            .map_err(|e| CliError::failure(format!("cannot write {}: {e}", path.display())))?;
        crate::ui::note(&format!("{} now allows {} more thing(s)", path.display(), lines.len()));
        if builtin && !existed {
            crate::ui::note(&format!("use it with `ws session start --profile {name}-local`"));
        }
        return Ok(exit::OK);
    }
    let diff = similar::TextDiff::from_lines(old.as_str(), new.as_str());
    let from = if existed { format!("a/{file}") } else { "/dev/null".to_owned() };
    let patch = diff.unified_diff().context_radius(3).header(&from, &format!("b/{file}")).to_string();
    let patch = if existed {
        patch
    } else {
        // A new file: every line is added.
        let body: String = new.lines().map(|l| format!("+{l}\n")).collect();
        format!("--- /dev/null\n+++ b/{file}\n@@ -0,0 +1,{} @@\n{body}", new.lines().count())
    };
    // The values come from what the session was denied: its words. TOML has
    // already escaped their control bytes; `display` shows any bidirectional
    // or invisible character left (the line then no longer parses, which
    // `ws profile check` reports: a person must look at it).
    for line in patch.trim_end().lines() {
        out!("{}", display::text(line.as_bytes()));
    }
    let dir = path.parent().map(|d| d.display().to_string()).unwrap_or_default();
    crate::ui::note(&format!(
        "apply with `ws profile suggest {} --apply`, or `patch -p1 -d {dir} < PATCH`",
        session.id
    ));
    Ok(exit::OK)
}
