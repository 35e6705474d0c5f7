//! The launcher: restrict this process, then become the command.
//!
//! `ws` starts a sandboxed command by running itself as
//! `ws __sandbox-exec SPEC -- CMD ARGS…` with the scrubbed environment. The
//! launcher applies every layer to itself and `execve`s CMD; if a layer that
//! [`LaunchSpec::require`] names cannot be enforced, it does not run CMD at
//! all (unless [`LaunchSpec::allow_degraded`]).

use std::ffi::OsString;
use std::os::unix::process::CommandExt;

use serde::{Deserialize, Serialize};

use crate::policy::FsPolicy;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LaunchSpec {
    pub fs: FsPolicy,
    pub landlock: bool,
    pub seccomp: bool,
    /// Layers that must be enforced (by name), or the command does not run.
    pub require: Vec<String>,
    pub allow_degraded: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("cannot read the sandbox specification")]
    Spec(#[from] serde_json::Error),
    #[error("the profile requires Landlock, which this machine cannot enforce")]
    Landlock(#[source] crate::landlock::LandlockError),
    #[error("the profile requires seccomp, which this machine cannot enforce")]
    Seccomp(#[source] crate::seccomp::SeccompError),
    #[error("cannot run {program}")]
    Exec { program: String, source: std::io::Error },
}

/// Layers given up because of `allow_degraded`, to be reported by the caller.
pub type Degraded = Vec<String>;

/// Applies the spec to this process. Returns the layers that were dropped
/// (only ever non-empty with `allow_degraded`).
pub fn enforce(spec: &LaunchSpec) -> Result<Degraded, LaunchError> {
    let mut degraded = Vec::new();
    let required = |l: &str| spec.require.iter().any(|r| r == l) && !spec.allow_degraded;
    if spec.landlock
        && let Err(e) = crate::landlock::restrict(&spec.fs)
    {
        if required("landlock") {
            return Err(LaunchError::Landlock(e));
        }
        degraded.push("landlock".to_owned());
    }
    if spec.seccomp
        && let Err(e) = crate::seccomp::install()
    {
        if required("seccomp") {
            return Err(LaunchError::Seccomp(e));
        }
        degraded.push("seccomp".to_owned());
    }
    Ok(degraded)
}

/// Restricts this process according to `spec_json`, then replaces it with
/// `program`. Returns only on failure.
pub fn enter(spec_json: &str, program: &OsString, args: &[OsString]) -> (LaunchError, Degraded) {
    let spec: LaunchSpec = match serde_json::from_str(spec_json) {
        Ok(s) => s,
        Err(e) => return (e.into(), vec![]),
    };
    let degraded = match enforce(&spec) {
        Ok(d) => d,
        Err(e) => return (e, vec![]),
    };
    let err = std::process::Command::new(program).args(args).exec();
    (LaunchError::Exec { program: program.to_string_lossy().into_owned(), source: err }, degraded)
}
