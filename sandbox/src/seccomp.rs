//! The seccomp filter: system calls a sandboxed command never needs and an
//! attacker would love.
//!
//! # Security
//! - Denied calls fail with `EPERM` (programs handle that) rather than killing
//!   the process.
//! - `ioctl` is denied only for `TIOCSTI` (pushing keystrokes into the user's
//!   terminal) and `TIOCLINUX`; the request is compared as the 32-bit value the
//!   kernel uses, so setting high bits cannot slip past the filter.
//! - The filter is installed after `no_new_privs` (set by Landlock) and is
//!   inherited across `execve` and `fork`; it cannot be removed.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule, TargetArch,
};

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("seccomp does not support this architecture ({0})")]
    Arch(String),
    #[error("cannot build the seccomp filter")]
    Build(#[from] seccompiler::BackendError),
    #[error("cannot install the seccomp filter")]
    Install(#[from] seccompiler::Error),
}

/// Calls denied outright, with why. Pure.
pub fn denied_syscalls() -> Vec<(&'static str, i64)> {
    vec![
        // The kernel keyring holds secrets (ssh-agent-less keys, kerberos, ws's own store).
        ("keyctl", libc::SYS_keyctl),
        ("add_key", libc::SYS_add_key),
        ("request_key", libc::SYS_request_key),
        // Reading or steering other processes.
        ("ptrace", libc::SYS_ptrace),
        ("process_vm_readv", libc::SYS_process_vm_readv),
        ("process_vm_writev", libc::SYS_process_vm_writev),
        // Kernel attack surface and observation.
        ("bpf", libc::SYS_bpf),
        ("perf_event_open", libc::SYS_perf_event_open),
        ("io_uring_setup", libc::SYS_io_uring_setup),
        ("io_uring_enter", libc::SYS_io_uring_enter),
        ("io_uring_register", libc::SYS_io_uring_register),
        ("userfaultfd", libc::SYS_userfaultfd),
        // Changing what the filesystem looks like.
        ("mount", libc::SYS_mount),
        ("umount2", libc::SYS_umount2),
        ("pivot_root", libc::SYS_pivot_root),
        ("fsopen", libc::SYS_fsopen),
        ("fsmount", libc::SYS_fsmount),
        ("move_mount", libc::SYS_move_mount),
        ("open_tree", libc::SYS_open_tree),
        // Reaching files by handle bypasses path-based rules.
        ("open_by_handle_at", libc::SYS_open_by_handle_at),
        // The machine itself.
        ("kexec_load", libc::SYS_kexec_load),
        ("kexec_file_load", libc::SYS_kexec_file_load),
        ("init_module", libc::SYS_init_module),
        ("finit_module", libc::SYS_finit_module),
        ("delete_module", libc::SYS_delete_module),
        ("reboot", libc::SYS_reboot),
        ("swapon", libc::SYS_swapon),
        ("swapoff", libc::SYS_swapoff),
    ]
}

/// `ioctl` requests denied. Pure.
pub fn denied_ioctls() -> Vec<(&'static str, u64)> {
    #[allow(clippy::unnecessary_cast)] // the constants are c_ulong: u64 here, u32 on 32-bit targets
    let v = vec![("TIOCSTI", libc::TIOCSTI as u64), ("TIOCLINUX", libc::TIOCLINUX as u64)];
    v
}

/// Sockets denied when the session shares the host's network (no namespace
/// of its own): everything but TCP, so the only way out is the proxy's port,
/// which Landlock enforces. `(domain, Some(type))` or `(domain, None)` for
/// every type. Pure.
pub fn denied_sockets(shared_network: bool) -> Vec<(&'static str, i32, Option<i32>)> {
    if !shared_network {
        return vec![];
    }
    vec![
        ("UDP over IPv4 (DNS exfiltration)", libc::AF_INET, Some(libc::SOCK_DGRAM)),
        ("UDP over IPv6", libc::AF_INET6, Some(libc::SOCK_DGRAM)),
        ("raw IPv4", libc::AF_INET, Some(libc::SOCK_RAW)),
        ("raw IPv6", libc::AF_INET6, Some(libc::SOCK_RAW)),
        ("SCTP-style IPv4", libc::AF_INET, Some(libc::SOCK_SEQPACKET)),
        ("SCTP-style IPv6", libc::AF_INET6, Some(libc::SOCK_SEQPACKET)),
        ("packet sockets", libc::AF_PACKET, None),
    ]
}

/// The compiled filter for this machine's architecture.
pub fn program(shared_network: bool) -> Result<BpfProgram, SeccompError> {
    let arch =
        TargetArch::try_from(std::env::consts::ARCH).map_err(|_| SeccompError::Arch(std::env::consts::ARCH.into()))?;
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        denied_syscalls().into_iter().map(|(_, nr)| (nr, vec![])).collect();
    let ioctl_rules = denied_ioctls()
        .into_iter()
        .map(|(_, req)| {
            SeccompCondition::new(1, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, req)
                .and_then(|c| SeccompRule::new(vec![c]))
        })
        .collect::<Result<Vec<_>, _>>()?;
    rules.insert(libc::SYS_ioctl, ioctl_rules);
    // The type argument carries SOCK_NONBLOCK/SOCK_CLOEXEC in its high bits;
    // only the low four bits name the type.
    let socket_rules = denied_sockets(shared_network)
        .into_iter()
        .map(|(_, domain, ty)| {
            let mut c = vec![SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, domain as u64)?];
            if let Some(ty) = ty {
                c.push(SeccompCondition::new(1, SeccompCmpArgLen::Dword, SeccompCmpOp::MaskedEq(0xf), ty as u64)?);
            }
            SeccompRule::new(c)
        })
        .collect::<Result<Vec<_>, _>>()?;
    if !socket_rules.is_empty() {
        rules.insert(libc::SYS_socket, socket_rules);
    }
    let filter = SeccompFilter::new(rules, SeccompAction::Allow, SeccompAction::Errno(libc::EPERM as u32), arch)?;
    Ok(filter.try_into()?)
}

/// Installs the filter on the calling thread.
pub fn install(shared_network: bool) -> Result<(), SeccompError> {
    let prog = program(shared_network)?;
    seccompiler::apply_filter(&prog)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_filter_compiles_and_covers_the_keyring() {
        let prog = super::program(false).unwrap();
        assert!(super::program(true).unwrap().len() > prog.len());
        assert!(!prog.is_empty());
        let names: Vec<&str> = super::denied_syscalls().iter().map(|(n, _)| *n).collect();
        for must in
            ["keyctl", "add_key", "request_key", "ptrace", "bpf", "mount", "io_uring_setup", "open_by_handle_at"]
        {
            assert!(names.contains(&must), "{must}");
        }
    }
}
