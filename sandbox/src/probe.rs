//! What this machine can enforce, for `ws doctor` and for deciding a
//! session's layers before it starts.
//!
//! # Security
//! Probes only ask; they change nothing about the calling process. The user
//! namespace probe runs in a child (`unshare --user true`), so this process
//! stays single-threaded-safe and unconfined.

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
    /// Whether root may create mount and PID namespaces here: false in a
    /// container whose seccomp profile denies unshare(2) (Docker's default
    /// without CAP_SYS_ADMIN). Meaningful only with `root`.
    pub root_namespaces: bool,
}

/// The running kernel's Landlock ABI version, 0 if Landlock is off.
///
/// Asked of the kernel directly: a probe ruleset would only tell which access
/// rights exist, and several ABIs add none (V8 adds a flag).
#[allow(unsafe_code)]
pub fn landlock_abi() -> i32 {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: landlock_create_ruleset(NULL, 0, VERSION) reads no memory (the
    // attribute pointer is NULL with size 0, as the VERSION flag requires)
    // and creates no descriptor; it only returns the ABI version or -1.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    i32::try_from(v).unwrap_or(0).max(0)
}

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

/// Whether root can have a session's mount and PID namespaces here, asked
/// of a child that unshares them (as root: the saved uid allows it when ws
/// acts for a sudo user) and then runs `true`. Only a child changes.
#[allow(unsafe_code)]
pub fn root_namespaces() -> bool {
    use std::os::unix::process::CommandExt;
    // The common case costs no child: no seccomp filter on this process and
    // CAP_SYS_ADMIN among its permitted capabilities (effective or not:
    // acting for a sudo user, ws takes it back for the launch) — nothing of
    // the kind that denies root its namespaces (a container's profile) is there.
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        let field = |name: &str| status.lines().find_map(|l| l.strip_prefix(name)).map(str::trim);
        let unfiltered = field("Seccomp:") == Some("0");
        let sys_admin =
            field("CapPrm:").and_then(|c| u64::from_str_radix(c, 16).ok()).is_some_and(|c| c & (1 << 21) != 0);
        if unfiltered && sys_admin {
            return true;
        }
    }
    let mut c = std::process::Command::new("true");
    c.uid(0)
        .gid(0)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: between fork and exec the child only makes the unshare system
    // call (async-signal-safe, no allocation); a failure fails the spawn.
    unsafe {
        c.pre_exec(|| {
            rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS | rustix::thread::UnshareFlags::NEWPID)
                .map_err(std::io::Error::from)
        });
    }
    c.status().is_ok_and(|s| s.success())
}

pub fn probe() -> Probe {
    let root = crate::privilege::root_available();
    Probe {
        landlock_abi: landlock_abi(),
        seccomp: seccomp_available(),
        user_namespaces: user_namespaces(),
        root,
        root_namespaces: root && root_namespaces(),
    }
}

/// Whether fanotify filesystem marks can be used (they need CAP_SYS_ADMIN).
pub fn fanotify() -> bool {
    crate::privilege::root_available() && std::path::Path::new("/proc/sys/fs/fanotify").exists()
}

/// The kernel keyring (keyutils) is present.
pub fn keyutils() -> bool {
    std::path::Path::new("/proc/keys").exists()
}
