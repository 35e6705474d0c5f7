//! `ws learn`, and the profile lines that would allow a session's denials
//! (`ws session show`, `ws profile suggest`). The generalising itself is
//! `ws_sandbox::learn`, pure and tested there; this module gathers what the
//! recorders, the proxy and the audit log saw.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::Args;

use crate::error::CliError;
use crate::ui;
use ws_session::Run;
use ws_session::learn::learned_profile;
pub use ws_session::learn::{denials, line, profile_of, suggestions};

/// Run a command with reads and the network open but recorded, and write a
/// profile that allows exactly what it did.
///
/// The workspace is snapshotted as for any session (review and roll back
/// afterwards as usual). The command may read and execute anything, write
/// in the workspace, the home and temporary directories, and reach any host
/// through the session's proxy; every path it opens and every host it
/// contacts is recorded. The profile printed extends --profile with what that
/// profile did not already allow, generalised (the workspace as $WORKSPACE,
/// home paths as $HOME/…, toolchain caches as directories, never `/` or
/// `$HOME` wholesale, secret stores like ~/.ssh only file by file), each
/// entry with a comment saying how often it was used.
///
/// Only run commands you trust to read your files: that is what learning
/// means. Seeing every file opened needs root (fanotify); without it only
/// the network part is learned, and the profile says so.
///
/// Example: ws learn --profile rust --out ~/.config/ws/profiles/myproj.toml -- cargo build
#[derive(Debug, Args)]
pub struct LearnArgs {
    /// The profile to extend: what it allows is not repeated.
    #[arg(long, default_value = "default")]
    profile: String,
    /// Write the learned profile to FILE (refused if it exists, unless
    /// --force) instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Overwrite the file --out names.
    #[arg(long)]
    force: bool,
    /// A label for the session (`ws diff LABEL`).
    #[arg(long)]
    name: Option<String>,
    /// Run even if a layer the profile requires is missing on this machine.
    #[arg(long)]
    allow_degraded: bool,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<OsString>,
}

pub fn cmd_learn(args: LearnArgs) -> Result<i32, CliError> {
    if let Some(out) = &args.out
        && out.exists()
        && !args.force
    {
        return Err(CliError::usage(format!("{} exists; ws learn does not overwrite it", out.display()))
            .hint("pass --force to replace it, or choose another --out"));
    }
    let root = ws_sandbox::privilege::root_available();
    if !root && !crate::service::reachable() {
        ui::warn(&format!(
            "not root and no recorder service at {}: the files the command opens cannot be observed \
             (fanotify needs root); only its network use is learned — run `sudo ws learn …`, or start the \
             service (`sudo ws recorder install`), for a complete profile",
            crate::service::socket_path().display()
        ));
    }
    let run = Run {
        name: args.name.clone(),
        profile: &args.profile,
        allow_degraded: args.allow_degraded,
        exports: crate::export::settings(&[])?,
        command: &args.command,
        learn: true,
        env: std::env::vars_os().collect(),
        cwd: std::env::current_dir().ok(),
    };
    let ran = crate::commands::session::start(run)?;
    let (text, learned) = learned_profile(&ran, &args.profile)?;
    match &args.out {
        Some(out) => {
            write_new(out, text.as_bytes())
                .map_err(|e| CliError::failure(format!("cannot write {}: {e}", out.display())))?;
            let n = learned.read.len() + learned.write.len() + learned.exec.len();
            ui::note(&format!(
                "learned profile written to {} ({n} filesystem entries, {} hosts beyond profile `{}`); use it with `ws session start --profile {}`",
                out.display(),
                learned.hosts.len(),
                args.profile,
                out.display()
            ));
        }
        // On stdout it is for reading: a character a terminal would obey or
        // hide is shown (`display`); --out writes the exact bytes.
        None => {
            for line in text.trim_end().lines() {
                crate::out!("{}", crate::display::text(line.as_bytes()));
            }
        }
    }
    Ok(ran.code)
}

/// Writes `path` whole or not at all (a temporary file renamed over it).
pub fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.ws-learn-{}", std::process::id()));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// `text` (a profile) with each `(section.key, value)` added to its array,
/// keeping the file's own formatting and comments; values already there are
/// not repeated.
pub fn add_lines(text: &str, lines: &[(String, String)]) -> Result<String, String> {
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| e.to_string())?;
    for (key, value) in lines {
        let (section, field) = key.split_once('.').ok_or_else(|| format!("bad key {key}"))?;
        let table = doc
            .entry(section)
            .or_insert_with(|| toml_edit::Item::Table(toml_edit::Table::new()))
            .as_table_like_mut()
            .ok_or_else(|| format!("`{section}` is not a table"))?;
        let item = table.entry(field).or_insert(toml_edit::Item::Value(toml_edit::Array::new().into()));
        let array = item.as_array_mut().ok_or_else(|| format!("`{key}` is not an array"))?;
        if !array.iter().any(|v| v.as_str() == Some(value)) {
            array.push(value.as_str());
        }
    }
    Ok(doc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_added_to_the_profile_keeping_its_comments() {
        let text = "# mine\nextends = \"rust\"\n\n[filesystem]\nread = [\"/opt/a\"]  # tools\n";
        let lines = [
            ("filesystem.read".to_owned(), "$HOME/.ssh/config".to_owned()),
            ("filesystem.read".to_owned(), "/opt/a".to_owned()),
            ("network.hosts".to_owned(), "example.com:8443".to_owned()),
        ];
        let new = add_lines(text, &lines).unwrap();
        assert!(new.starts_with("# mine\nextends = \"rust\""), "{new}");
        assert!(new.contains("# tools"), "{new}");
        assert!(new.contains(r#"read = ["/opt/a", "$HOME/.ssh/config"]"#), "{new}");
        assert!(new.contains("[network]\nhosts = [\"example.com:8443\"]"), "{new}");
        assert!(ws_sandbox::profile::check(&new).is_empty(), "{new}");
        assert!(add_lines("[filesystem\n", &lines).is_err());
        assert!(add_lines("filesystem = 3\n", &lines).is_err());
    }
}
