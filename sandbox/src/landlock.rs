//! Applying the filesystem policy with Landlock, and scoping signals and
//! abstract unix sockets to the sandbox.
//!
//! # Security
//! - Everything not named by a rule is denied, for every access right the
//!   running kernel knows (the best ABI is negotiated; `handle_access` with
//!   the newest rights, downgraded by the crate to what the kernel supports).
//! - `restrict_self` also sets `no_new_privs`, so setuid binaries cannot
//!   regain rights.
//! - If the kernel enforces nothing, [`restrict`] fails: the caller decides
//!   (fail closed unless degraded mode was explicitly allowed).
//! - Rules name paths that exist at launch; a missing path is skipped, since a
//!   rule can only ever allow. The paths of [`FsPolicy::create`] are made
//!   first ([`crate::precreate`]), so that the session can write them.

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath, PathFd, Ruleset,
    RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope,
};

use crate::policy::FsPolicy;

/// The newest ABI this crate knows; the kernel may give less.
const WANTED: ABI = ABI::V10;

#[derive(Debug, thiserror::Error)]
pub enum LandlockError {
    #[error(
        "Landlock is not available on this kernel (needs Linux 5.13+ with CONFIG_SECURITY_LANDLOCK and `landlock` in the lsm= list)"
    )]
    NotEnforced,
    #[error("cannot set up the Landlock ruleset")]
    Ruleset(#[from] landlock::RulesetError),
    #[error("this kernel's Landlock cannot restrict TCP connections (needs ABI 4, Linux 6.7+; it has ABI {0})")]
    NoNetwork(i32),
}

/// What was enforced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enforced {
    Fully,
    /// Enforced, but some requested rights are unknown to this kernel.
    Partially,
}

fn read() -> BitFlags<AccessFs> {
    AccessFs::ReadFile | AccessFs::ReadDir
}

/// Restricts the calling thread (and what it executes) to `policy`. With
/// `connect_ports`, outgoing TCP connections are allowed to those ports only
/// (the session's proxy); that part is never best-effort: without it the
/// call fails.
pub fn restrict(policy: &FsPolicy, connect_ports: Option<&[u16]>) -> Result<Enforced, LandlockError> {
    let all = AccessFs::from_all(WANTED);
    let write = all & !(read() | AccessFs::Execute);
    let mut ruleset = Ruleset::default().set_compatibility(CompatLevel::BestEffort).handle_access(all)?;
    if connect_ports.is_some() {
        let abi = crate::probe::landlock_abi();
        if abi < 4 {
            return Err(LandlockError::NoNetwork(abi));
        }
        ruleset = ruleset.handle_access(AccessNet::ConnectTcp)?;
    }
    let mut ruleset = ruleset.scope(Scope::AbstractUnixSocket | Scope::Signal)?.create()?;
    for port in connect_ports.unwrap_or_default() {
        ruleset = ruleset.add_rule(NetPort::new(*port, AccessNet::ConnectTcp))?;
    }
    crate::precreate::create_missing(&policy.create);
    let rules = [(&policy.read, read()), (&policy.write, read() | write), (&policy.exec, read() | AccessFs::Execute)];
    for (paths, access) in rules {
        for p in paths {
            // A path that does not exist grants nothing.
            let Ok(fd) = PathFd::new(p) else { continue };
            ruleset = ruleset.add_rule(PathBeneath::new(fd, access))?;
        }
    }
    // Denials of the command (run after an exec) reach the audit log too
    // (ABI 7; ignored by older kernels).
    let ruleset = ruleset.log_new_exec(true)?;
    let status = ruleset.restrict_self()?;
    match status.ruleset {
        RulesetStatus::FullyEnforced => Ok(Enforced::Fully),
        RulesetStatus::PartiallyEnforced => Ok(Enforced::Partially),
        _ => Err(LandlockError::NotEnforced),
    }
}
