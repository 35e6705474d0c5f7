//! Mount and PID namespaces: the session sees only its own processes, and
//! paths inside writable trees (`.git/hooks`, `.git/config`) are read-only
//! while the snapshot store is hidden.
//!
//! Shape (each step in its own process):
//! ```text
//! launcher   unshare(NEWNS | NEWPID [| NEWUSER]), map its uid to 0 in the new user ns,
//!            spawn the init below, wait, pass its status on
//! init       PID 1 of the new PID namespace: make mounts private, mount a fresh /proc,
//!            bind protected paths read-only, cover hidden ones with an empty tmpfs;
//!            without root, enter a nested user namespace that maps the real uid back
//!            (tools see the user they are, not root); apply Landlock and seccomp;
//!            spawn the command and reap every orphan until it exits
//! ```
//!
//! # Security
//! - Mounts are made private first, so nothing done here propagates to the host.
//! - A read-only bind keeps the flags the kernel locked on the original mount
//!   (nosuid, nodev, noexec), as it must in a user namespace.
//! - The seccomp filter, installed after the mounts, denies `mount` and
//!   `umount2`, so the command cannot undo them; Landlock forbids mount changes too.
//! - Renaming onto a mount point fails (`EBUSY`), so `git config`'s
//!   lock-and-rename cannot replace a protected `.git/config` either.

use std::path::{Path, PathBuf};

use rustix::mount::{MountFlags, MountPropagationFlags};
use rustix::thread::UnshareFlags;

#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error("cannot create namespaces (unshare)")]
    Unshare(#[source] std::io::Error),
    #[error("cannot write {path}")]
    Map { path: String, source: std::io::Error },
    #[error("cannot set up the session's mounts at {path}")]
    Mount { path: PathBuf, source: std::io::Error },
}

fn write_map(path: &str, content: &str) -> Result<(), NamespaceError> {
    std::fs::write(path, content).map_err(|source| NamespaceError::Map { path: path.to_owned(), source })
}

/// Moves this (single-threaded) process into new namespaces (with `net`, a
/// network namespace too). Without root, a new user namespace makes that
/// possible; `uid`/`gid` are mapped to 0.
#[allow(unsafe_code)]
pub fn unshare(user_ns: bool, net: bool, uid: u32, gid: u32) -> Result<(), NamespaceError> {
    let mut flags = UnshareFlags::NEWNS | UnshareFlags::NEWPID;
    if user_ns {
        flags |= UnshareFlags::NEWUSER;
    }
    if net {
        flags |= UnshareFlags::NEWNET;
    }
    // SAFETY: the only hazard rustix names is UnshareFlags::FILES (threads
    // seeing descriptors from another table); it is not passed. The callers
    // (the launcher and init) are single-threaded when they call this, as
    // NEWUSER requires.
    unsafe { rustix::thread::unshare_unsafe(flags) }.map_err(|e| NamespaceError::Unshare(e.into()))?;
    if user_ns {
        write_map("/proc/self/setgroups", "deny")?;
        write_map("/proc/self/uid_map", &format!("0 {uid} 1"))?;
        write_map("/proc/self/gid_map", &format!("0 {gid} 1"))?;
    }
    Ok(())
}

/// In the init process: a nested user namespace in which the real uid and
/// gid are themselves again (and hold no capabilities).
#[allow(unsafe_code)]
pub fn become_user(uid: u32, gid: u32) -> Result<(), NamespaceError> {
    // SAFETY: as in `unshare`: no FILES flag, and init is single-threaded here.
    unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWUSER) }.map_err(|e| NamespaceError::Unshare(e.into()))?;
    write_map("/proc/self/setgroups", "deny")?;
    write_map("/proc/self/uid_map", &format!("{uid} 0 1"))?;
    write_map("/proc/self/gid_map", &format!("{gid} 0 1"))?;
    Ok(())
}

/// The flags a bind remount must keep: those the kernel locks on a mount
/// inherited into a user namespace.
fn locked_flags(path: &Path) -> MountFlags {
    let Ok(vfs) = rustix::fs::statvfs(path) else { return MountFlags::empty() };
    let f = vfs.f_flag;
    let mut m = MountFlags::empty();
    if f.contains(rustix::fs::StatVfsMountFlags::NOSUID) {
        m |= MountFlags::NOSUID;
    }
    if f.contains(rustix::fs::StatVfsMountFlags::NODEV) {
        m |= MountFlags::NODEV;
    }
    if f.contains(rustix::fs::StatVfsMountFlags::NOEXEC) {
        m |= MountFlags::NOEXEC;
    }
    if f.contains(rustix::fs::StatVfsMountFlags::NOATIME) {
        m |= MountFlags::NOATIME;
    }
    if f.contains(rustix::fs::StatVfsMountFlags::RELATIME) {
        m |= MountFlags::RELATIME;
    }
    m
}

/// In the init process (PID 1 of the new namespace): private mounts, a fresh
/// /proc, read-only `protect`, empty `hide`. Missing paths are skipped.
pub fn set_up_mounts(protect: &[PathBuf], hide: &[PathBuf]) -> Result<(), NamespaceError> {
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |e: rustix::io::Errno| NamespaceError::Mount { path, source: e.into() }
    };
    rustix::mount::mount_change("/", MountPropagationFlags::PRIVATE | MountPropagationFlags::REC)
        .map_err(err(Path::new("/")))?;
    rustix::mount::mount("proc", "/proc", "proc", MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC, None)
        .map_err(err(Path::new("/proc")))?;
    for p in protect.iter().filter(|p| p.exists()) {
        rustix::mount::mount_bind(p, p).map_err(err(p))?;
        let keep = locked_flags(p);
        rustix::mount::mount_remount(p, MountFlags::BIND | MountFlags::RDONLY | keep, "").map_err(err(p))?;
    }
    for p in hide.iter().filter(|p| p.is_dir()) {
        rustix::mount::mount(
            "none",
            p,
            "tmpfs",
            MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
            Some(c"mode=0,size=4k"),
        )
        .map_err(err(p))?;
        rustix::mount::mount_remount(
            p,
            MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
            "mode=0,size=4k",
        )
        .map_err(err(p))?;
    }
    Ok(())
}

/// The paths inside `workspace` that a session must not write even though
/// the workspace is writable: what git runs or obeys. Pure.
pub fn protected_paths(workspace: &Path) -> Vec<PathBuf> {
    let git = workspace.join(".git");
    let mut v = vec![git.join("hooks"), git.join("config")];
    if let Ok(rd) = std::fs::read_dir(git.join("modules")) {
        for e in rd.flatten() {
            v.push(e.path().join("hooks"));
            v.push(e.path().join("config"));
        }
    }
    v
}
