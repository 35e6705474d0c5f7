//! What this machine can enforce, for `ws doctor` and for deciding a
//! session's layers before it starts.

use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct Probe {
    /// Landlock ABI version the kernel offers (0 when unavailable).
    pub landlock_abi: i32,
    pub seccomp: bool,
    /// Whether this process may create user namespaces (needed, without root,
    /// for mount/pid/net namespaces).
    pub user_namespaces: bool,
    pub root: bool,
}

/// The running kernel's Landlock ABI, 0 if Landlock is off.
pub fn landlock_abi() -> i32 {
    // The crate reports the ABI it negotiated on a probe ruleset.
    use landlock::{ABI, Access, AccessFs, Ruleset, RulesetAttr};
    for (abi, n) in [
        (ABI::V10, 10),
        (ABI::V9, 9),
        (ABI::V8, 8),
        (ABI::V7, 7),
        (ABI::V6, 6),
        (ABI::V5, 5),
        (ABI::V4, 4),
        (ABI::V3, 3),
        (ABI::V2, 2),
        (ABI::V1, 1),
    ] {
        let hard = Ruleset::default()
            .set_compatibility(landlock::CompatLevel::HardRequirement)
            .handle_access(AccessFs::from_all(abi))
            .and_then(|r| r.create());
        if hard.is_ok() {
            return n;
        }
    }
    0
}

use landlock::Compatible as _;

/// Whether seccomp filters can be installed (`PR_GET_SECCOMP` answers).
pub fn seccomp_available() -> bool {
    std::fs::read_to_string("/proc/self/status").map(|s| s.lines().any(|l| l.starts_with("Seccomp:"))).unwrap_or(false)
}

/// Whether an unprivileged user namespace can be created here, asked of a
/// child so this process stays as it is.
pub fn user_namespaces() -> bool {
    std::process::Command::new("unshare")
        .args(["--user", "--map-root-user", "true"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub fn probe() -> Probe {
    Probe {
        landlock_abi: landlock_abi(),
        seccomp: seccomp_available(),
        user_namespaces: user_namespaces(),
        root: rustix::process::geteuid().is_root(),
    }
}
