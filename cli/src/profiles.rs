//! Finding profiles: a file path, a user profile, or a built-in one.

use std::path::{Path, PathBuf};

use ws_sandbox::profile::{self, Profile};

use crate::env;
use crate::error::CliError;

/// Loads a profile's bytes by name: `NAME.toml` in the user's profile
/// directory first, then the built-ins. A name with a `/` or ending in
/// `.toml` is a file path. Bytes, not text: a file that is not UTF-8 is
/// reported by the checker with its position, not mistaken for a missing one.
pub fn load(name: &str) -> Option<(String, Vec<u8>)> {
    if name.contains('/') || name.ends_with(".toml") {
        let bytes = fs_err::read(name).ok()?;
        return Some((name.to_owned(), bytes));
    }
    if let Some(dir) = env::profile_dir() {
        let p = dir.join(format!("{name}.toml"));
        if let Ok(bytes) = std::fs::read(&p) {
            return Some((p.display().to_string(), bytes));
        }
    }
    profile::builtin(name)
}

pub fn resolve(name: &str) -> Result<Profile, CliError> {
    profile::resolve(name, &load).map_err(|e| {
        let hint = match &e {
            profile::ProfileError::NotFound { .. } => {
                let dir = env::profile_dir()
                    .map(|d| d.display().to_string())
                    .unwrap_or_else(|| "~/.config/ws/profiles".into());
                format!("`ws profile list` shows the profiles; your own go in {dir}/NAME.toml")
            }
            _ => "`ws profile check FILE` lists every problem".to_owned(),
        };
        CliError::usage(e.to_string()).kind(crate::error::Kind::BadProfile).hint(hint)
    })
}

/// The user's profiles (name, path).
pub fn user_profiles() -> Vec<(String, PathBuf)> {
    let Some(dir) = env::profile_dir() else { return vec![] };
    let Ok(rd) = std::fs::read_dir(&dir) else { return vec![] };
    let mut v: Vec<(String, PathBuf)> = rd
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            if p.extension()? != "toml" {
                return None;
            }
            Some((p.file_stem()?.to_string_lossy().into_owned(), p.clone()))
        })
        .collect();
    v.sort();
    v
}

pub fn vars<'a>(workspace: &'a Path, home: &'a Option<PathBuf>, tmp: &'a Option<PathBuf>) -> profile::Vars<'a> {
    profile::Vars { workspace, home: home.as_deref(), tmpdir: tmp.as_deref() }
}
