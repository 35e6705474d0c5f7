//! Resource limits for a session: memory and number of processes.
//!
//! cgroup v2 where this process's cgroup has the `memory`/`pids` controllers
//! delegated to it; otherwise the cgroup v1 `memory` and `pids` hierarchies
//! (root only). The session's launcher moves itself into the cgroup before it
//! starts anything, so every process of the session is inside.
//!
//! # Security
//! Limits are written before any session process exists; the session cannot
//! leave its cgroup (it cannot write cgroup files: Landlock denies /sys/fs/cgroup
//! writes, and the mount namespace does not matter for that).

use std::path::{Path, PathBuf};

/// Limits a profile asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    pub memory_max: Option<u64>,
    pub pids_max: Option<u64>,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        self.memory_max.is_none() && self.pids_max.is_none()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error(
        "no cgroup hierarchy here can take {what} limits (cgroup v2 without delegated {what} controller, and no cgroup v1 {what} hierarchy this user may write)"
    )]
    Unavailable { what: &'static str },
    #[error("cannot set up the session's cgroup at {path}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// The cgroup directories of one session; removed when dropped (or with
/// [`SessionCgroup::remove`]), so an early error leaves nothing behind.
#[derive(Debug)]
pub struct SessionCgroup {
    dirs: Vec<PathBuf>,
}

/// This process's cgroup path in the hierarchy named `controller` (v1) or
/// the unified one (`controller` empty), from /proc/self/cgroup.
fn own_path(controller: &str) -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        let hit = if controller.is_empty() { ctrls.is_empty() } else { ctrls.split(',').any(|c| c == controller) };
        hit.then(|| path.to_owned())
    })
}

fn v2_dir() -> Option<PathBuf> {
    let own = own_path("")?;
    for mount in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
        let base = Path::new(mount).join(own.trim_start_matches('/'));
        if base.join("cgroup.subtree_control").exists() {
            return Some(base);
        }
    }
    None
}

fn v2_has(dir: &Path, controller: &str) -> bool {
    std::fs::read_to_string(dir.join("cgroup.subtree_control"))
        .is_ok_and(|s| s.split_whitespace().any(|c| c == controller))
}

fn v1_dir(controller: &str) -> Option<PathBuf> {
    let own = own_path(controller)?;
    let dir = Path::new("/sys/fs/cgroup").join(controller).join(own.trim_start_matches('/'));
    dir.join("cgroup.procs").exists().then_some(dir)
}

/// Which mechanism would carry each limit here. Pure apart from reading /proc and /sys.
pub fn describe() -> Option<String> {
    if let Some(d) = v2_dir() {
        let c: Vec<&str> = ["memory", "pids"].into_iter().filter(|c| v2_has(&d, c)).collect();
        if !c.is_empty() {
            return Some(format!("cgroup v2 ({})", c.join(", ")));
        }
    }
    let v1: Vec<&str> = ["memory", "pids"].into_iter().filter(|c| v1_dir(c).is_some()).collect();
    (!v1.is_empty() && crate::privilege::root_available()).then(|| format!("cgroup v1 ({})", v1.join(", ")))
}

fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    std::fs::write(path, value).map_err(|source| CgroupError::Io { path: path.to_path_buf(), source })
}

fn make(dir: &Path) -> Result<(), CgroupError> {
    std::fs::create_dir(dir).map_err(|source| CgroupError::Io { path: dir.to_path_buf(), source })
}

/// Creates the session's cgroup(s) named `name` with `limits` applied.
pub fn create(name: &str, limits: Limits) -> Result<SessionCgroup, CgroupError> {
    let mut cg = SessionCgroup { dirs: Vec::new() };
    let wanted = [("memory", limits.memory_max), ("pids", limits.pids_max)];
    if let Some(base) = v2_dir()
        && wanted.iter().all(|(c, v)| v.is_none() || v2_has(&base, c))
    {
        let dir = base.join(name);
        make(&dir)?;
        cg.dirs.push(dir.clone());
        if let Some(m) = limits.memory_max {
            write(&dir.join("memory.max"), &m.to_string())?;
            write(&dir.join("memory.swap.max"), "0").ok();
        }
        if let Some(p) = limits.pids_max {
            write(&dir.join("pids.max"), &p.to_string())?;
        }
        return Ok(cg);
    }
    for (controller, value) in wanted {
        let Some(v) = value else { continue };
        let base = v1_dir(controller).ok_or(CgroupError::Unavailable { what: controller })?;
        let dir = base.join(name);
        if let Err(e) = make(&dir) {
            cg.remove();
            return Err(e);
        }
        cg.dirs.push(dir.clone());
        let file = if controller == "memory" { "memory.limit_in_bytes" } else { "pids.max" };
        if let Err(e) = write(&dir.join(file), &v.to_string()) {
            cg.remove();
            return Err(e);
        }
        if controller == "memory" {
            let _ = std::fs::write(dir.join("memory.memsw.limit_in_bytes"), v.to_string());
        }
    }
    Ok(cg)
}

impl SessionCgroup {
    /// The `cgroup.procs` files the launcher writes its pid to.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("cgroup.procs")).collect()
    }

    /// Removes the cgroups (once the session's processes are gone; a cgroup
    /// that still holds a process stays, harmlessly).
    pub fn remove(&self) {
        for d in self.dirs.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
    }
}

impl Drop for SessionCgroup {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Moves this process into the session's cgroups.
pub fn join(procs_files: &[PathBuf]) -> Result<(), CgroupError> {
    let me = std::process::id().to_string();
    procs_files.iter().try_for_each(|f| write(f, &me))
}

/// Parses a size: bytes, or a number with K, M or G (powers of 1024). Pure.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last()? {
        (i, 'K' | 'k') => (&s[..i], 1u64 << 10),
        (i, 'M' | 'm') => (&s[..i], 1 << 20),
        (i, 'G' | 'g') => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    num.trim().parse::<u64>().ok()?.checked_mul(mult).filter(|v| *v > 0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_sizes() {
        assert_eq!(super::parse_size("512M"), Some(512 << 20));
        assert_eq!(super::parse_size("2G"), Some(2 << 30));
        assert_eq!(super::parse_size("4096"), Some(4096));
        assert_eq!(super::parse_size("0"), None);
        assert_eq!(super::parse_size("lots"), None);
    }
}
