//! Finding profiles: a file path, a user profile, or a built-in one
//! (`ws_session::profiles`, with the user's profile directory).

use std::path::PathBuf;

use ws_sandbox::profile::Profile;

use crate::env;
use crate::error::CliError;

pub use ws_session::profiles::vars;

/// A profile's bytes by name ([`ws_session::profiles::load`]).
pub fn load(name: &str) -> Option<(String, Vec<u8>)> {
    ws_session::profiles::load(name, env::profile_dir().as_deref())
}

pub fn resolve(name: &str) -> Result<Profile, CliError> {
    Ok(ws_session::profiles::resolve(name, env::profile_dir().as_deref())?)
}

/// The user's profiles (name, path).
pub fn user_profiles() -> Vec<(String, PathBuf)> {
    ws_session::profiles::user_profiles(env::profile_dir().as_deref())
}
