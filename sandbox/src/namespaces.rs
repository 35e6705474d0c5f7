//! Mount and PID namespaces: the session sees only its own processes, its
//! git directories are pinned in place (not renamed, removed or replaced)
//! with what git obeys in them (`config`, `hooks/`, `info/`, …) read-only,
//! and the snapshot store is hidden.
//!
//! Shape (each step in its own process):
//! ```text
//! launcher   unshare(NEWNS | NEWPID [| NEWUSER]), map its uid to 0 in the new user ns,
//!            spawn the init below, wait, pass its status on
//! init       PID 1 of the new PID namespace: make mounts private, mount a fresh /proc,
//!            pin git directories in place and bind protected paths read-only,
//!            cover hidden ones with an empty tmpfs;
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
//!   lock-and-rename cannot replace a protected `.git/config` either; nor
//!   can a pinned `.git` be renamed away, removed or replaced by a gitfile.
//! - A control file that does not exist when the session starts
//!   (`commondir`, `config.worktree`) has nothing to bind: the session can
//!   create it. `ws_snapshot::git_guard` undoes that when the session ends.

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

/// How a protected path is mounted in the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pin {
    /// Bound onto itself, still writable: a mount point cannot be renamed,
    /// removed or replaced (`EBUSY`). For a git directory, in which git
    /// must go on writing the index, refs and objects.
    InPlace,
    /// Bound onto itself read-only: not written, renamed, removed or replaced.
    ReadOnly,
}

/// The mounts for `protect`, in the order to make them: a protected
/// directory that holds other protected paths (a git directory) is pinned
/// in place, first, shallowest first (a later bind would cover the ones
/// below it); every other path is read-only. Pure.
pub fn mount_plan(protect: &[PathBuf]) -> Vec<(PathBuf, Pin)> {
    let holds_others = |p: &PathBuf| protect.iter().any(|q| q != p && q.starts_with(p));
    let mut pinned: Vec<PathBuf> = protect.iter().filter(|p| holds_others(p)).cloned().collect();
    pinned.sort_by_key(|p| p.components().count());
    let read_only = protect.iter().filter(|p| !holds_others(p)).cloned();
    pinned.into_iter().map(|p| (p, Pin::InPlace)).chain(read_only.map(|p| (p, Pin::ReadOnly))).collect()
}

/// In the init process (PID 1 of the new namespace): private mounts, a fresh
/// /proc, `protect` pinned as [`mount_plan`] says, empty `hide`. Missing
/// paths are skipped.
pub fn set_up_mounts(protect: &[PathBuf], hide: &[PathBuf]) -> Result<(), NamespaceError> {
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |e: rustix::io::Errno| NamespaceError::Mount { path, source: e.into() }
    };
    rustix::mount::mount_change("/", MountPropagationFlags::PRIVATE | MountPropagationFlags::REC)
        .map_err(err(Path::new("/")))?;
    rustix::mount::mount("proc", "/proc", "proc", MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC, None)
        .map_err(err(Path::new("/proc")))?;
    for (p, pin) in mount_plan(protect) {
        // Not following a symlink: a `.git` that is one would pin its target.
        if std::fs::symlink_metadata(&p).is_err() {
            continue;
        }
        rustix::mount::mount_bind(&p, &p).map_err(err(&p))?;
        if pin == Pin::ReadOnly {
            let keep = locked_flags(&p);
            rustix::mount::mount_remount(&p, MountFlags::BIND | MountFlags::RDONLY | keep, "").map_err(err(&p))?;
        }
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

/// The entries of a git directory that redirect git or make it run code,
/// as far as a mount can hold them: they exist when the session starts.
/// (`ws_snapshot::git_guard` has the whole surface and undoes, when the
/// session ends, what was created on it; keep the two lists in step.)
const GIT_CONTROL: &[&str] = &[
    "config",
    "config.worktree",
    "commondir",
    "gitdir",
    "hooks",
    "info",
    "worktrees",
    "branches",
    "remotes",
    "objects/info/alternates",
    "objects/info/http-alternates",
    "refs/replace",
];

/// How deep `.git/modules` is searched for submodules' git directories
/// (names with slashes, nested submodules), and how many are pinned.
const MODULE_DEPTH: usize = 6;
const MODULE_LIMIT: usize = 256;

/// The paths inside `workspace` that a session must not rename or write
/// even though the workspace is writable: each git directory (`.git`, and
/// the submodules' below `.git/modules`), pinned in place, and in it what
/// git obeys ([`GIT_CONTROL`]), read-only. A `.git` that is a file (a
/// gitfile naming the repository elsewhere) is read-only itself.
pub fn protected_paths(workspace: &Path) -> Vec<PathBuf> {
    let git = workspace.join(".git");
    let mut v = vec![git.clone()];
    if !git.is_dir() {
        return v;
    }
    let mut dirs = vec![git.clone()];
    find_modules(&git.join("modules"), MODULE_DEPTH, &mut dirs);
    for d in dirs {
        if d != git {
            v.push(d.clone());
        }
        v.extend(GIT_CONTROL.iter().map(|c| d.join(c)));
    }
    v
}

/// Submodules' git directories below `dir` (git's own test: `HEAD`,
/// `objects/` and `refs/`), up to `depth` levels and [`MODULE_LIMIT`] in all.
fn find_modules(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        if out.len() > MODULE_LIMIT || depth == 0 {
            return;
        }
        let p = e.path();
        if !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        if p.join("HEAD").is_file() && p.join("objects").is_dir() && p.join("refs").is_dir() {
            out.push(p.clone());
            find_modules(&p.join("modules"), depth - 1, out);
        } else {
            find_modules(&p, depth - 1, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_directories_are_pinned_first_and_their_control_files_read_only() {
        let ws = Path::new("/w");
        let protect = vec![
            ws.join(".git/hooks"),
            ws.join(".git/modules/a/config"),
            ws.join(".git"),
            ws.join(".git/modules/a"),
            ws.join(".git/config"),
        ];
        let plan = mount_plan(&protect);
        assert_eq!(
            plan,
            vec![
                (ws.join(".git"), Pin::InPlace),
                (ws.join(".git/modules/a"), Pin::InPlace),
                (ws.join(".git/hooks"), Pin::ReadOnly),
                (ws.join(".git/modules/a/config"), Pin::ReadOnly),
                (ws.join(".git/config"), Pin::ReadOnly),
            ]
        );
        // A gitfile holds nothing: read-only itself.
        assert_eq!(mount_plan(&[ws.join(".git")]), vec![(ws.join(".git"), Pin::ReadOnly)]);
    }

    #[test]
    fn protected_paths_cover_each_git_directory_and_its_control_files() {
        let tmp = tempfile::tempdir().unwrap();
        let ws = tmp.path();
        for d in [".git/objects", ".git/refs", ".git/modules/lib/x/objects", ".git/modules/lib/x/refs"] {
            std::fs::create_dir_all(ws.join(d)).unwrap();
        }
        std::fs::write(ws.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
        std::fs::write(ws.join(".git/modules/lib/x/HEAD"), "ref: refs/heads/main\n").unwrap();
        let got = protected_paths(ws);
        assert_eq!(got[0], ws.join(".git"));
        for p in [".git/config", ".git/commondir", ".git/objects/info/alternates", ".git/modules/lib/x/commondir"] {
            assert!(got.contains(&ws.join(p)), "{p} missing from {got:?}");
        }
        let plan = mount_plan(&got);
        assert!(plan.contains(&(ws.join(".git/modules/lib/x"), Pin::InPlace)), "{plan:?}");
        assert!(!got.contains(&ws.join(".git/modules/lib")), "not a git directory: {got:?}");
        assert!(!got.contains(&ws.join(".git/HEAD")) && !got.contains(&ws.join(".git/refs")));
        // A gitfile: only itself.
        let other = tempfile::tempdir().unwrap();
        std::fs::write(other.path().join(".git"), "gitdir: /elsewhere\n").unwrap();
        assert_eq!(protected_paths(other.path()), vec![other.path().join(".git")]);
    }
}
