//! The scratch directory and the loop-mounted filesystem images, both removed
//! by their `Drop` (so also on error and on panic).

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::util::{Env, Error, Result, run};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fs {
    Btrfs,
    Ext4,
}

impl Fs {
    pub const ALL: [Fs; 2] = [Fs::Btrfs, Fs::Ext4];

    pub fn name(self) -> &'static str {
        match self {
            Fs::Btrfs => "btrfs",
            Fs::Ext4 => "ext4",
        }
    }

    pub fn parse(s: &str) -> Option<Fs> {
        Fs::ALL.into_iter().find(|f| f.name() == s)
    }

    fn mkfs(self, env: &Env, image: &Path) -> Command {
        match self {
            Fs::Btrfs => {
                let mut c = env.command("mkfs.btrfs", Path::new("/"));
                c.args(["-q", "-f"]).arg(image);
                c
            }
            Fs::Ext4 => {
                let mut c = env.command("mkfs.ext4", Path::new("/"));
                // No lazy init: its background writes would land in the timings.
                c.args(["-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0"]).arg(image);
                c
            }
        }
    }
}

impl fmt::Display for Fs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A fresh directory under /var/tmp (or `$WS_BENCH_TMPDIR`), removed on drop
/// unless something is still mounted below it.
#[derive(Debug)]
pub struct WorkDir {
    pub path: PathBuf,
}

impl WorkDir {
    pub fn create() -> Result<WorkDir> {
        let base = std::env::var_os("WS_BENCH_TMPDIR")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/var/tmp"));
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let path = base.join(format!("ws-bench.{}.{nanos:08x}", std::process::id()));
        fs_err::create_dir(&path)?;
        Ok(WorkDir { path })
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let left = mounts_under(&self.path);
        if !left.is_empty() {
            eprintln!(
                "ws-bench: warning: leaving {} in place: still mounted below it: {}",
                self.path.display(),
                left.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
            );
            return;
        }
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            eprintln!("ws-bench: warning: cannot remove {}: {e}", self.path.display());
        }
    }
}

/// Mount points at or below `dir`, from /proc/self/mountinfo.
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_mountinfo(p)))
        .filter(|p| p.starts_with(dir))
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A sparse image file holding a fresh filesystem, loop-mounted. Dropping it
/// unmounts (the loop device is auto-cleared), then deletes the image.
#[derive(Debug)]
pub struct LoopMount {
    pub mountpoint: PathBuf,
    image: PathBuf,
    mounted: bool,
}

impl LoopMount {
    pub fn create(work: &Path, fs: Fs, size: u64, env: &Env) -> Result<LoopMount> {
        let image = work.join(format!("{fs}.img"));
        let mountpoint = work.join(format!("{fs}.mnt"));
        let file = fs_err::File::create(&image)?;
        // Sparse: only what the filesystem writes takes space.
        file.set_len(size)?;
        drop(file);
        let mut guard = LoopMount { mountpoint, image, mounted: false };
        fs_err::create_dir(&guard.mountpoint)?;
        run(&mut fs.mkfs(env, &guard.image))?;
        let mut mount = env.command("mount", Path::new("/"));
        mount.args(["-t", fs.name(), "-o", "loop"]).arg(&guard.image).arg(&guard.mountpoint);
        run(&mut mount)?;
        guard.mounted = true;
        Ok(guard)
    }

    fn unmount(&mut self) -> std::result::Result<(), Error> {
        let _ = Command::new("sync").stdin(Stdio::null()).status();
        let mut last = String::new();
        for attempt in 0..5 {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(300));
            }
            match Command::new("umount").arg(&self.mountpoint).stdin(Stdio::null()).output() {
                Ok(o) if o.status.success() => return Ok(()),
                Ok(o) => last = String::from_utf8_lossy(&o.stderr).trim().to_string(),
                Err(e) => last = e.to_string(),
            }
        }
        // Still busy: detach it lazily so nothing stays reachable.
        match Command::new("umount").arg("-l").arg(&self.mountpoint).stdin(Stdio::null()).status() {
            Ok(s) if s.success() => {
                Err(Error::new(format!("{} was busy ({last}); detached it lazily", self.mountpoint.display())))
            }
            _ => Err(Error::new(format!("cannot unmount {}: {last}", self.mountpoint.display()))),
        }
    }

    /// Detaches any loop device still backed by the image (autoclear should
    /// have done it already).
    fn detach_loops(&self) {
        let Ok(out) = Command::new("losetup").arg("-j").arg(&self.image).stdin(Stdio::null()).output() else {
            return;
        };
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some(dev) = line.split(':').next().filter(|d| d.starts_with("/dev/")) {
                let _ = Command::new("losetup").arg("-d").arg(dev).stdin(Stdio::null()).status();
            }
        }
    }
}

impl Drop for LoopMount {
    fn drop(&mut self) {
        if self.mounted {
            match self.unmount() {
                Ok(()) => self.mounted = false,
                Err(e) => {
                    eprintln!("ws-bench: warning: {e}");
                    if !mounts_under(&self.mountpoint).is_empty() {
                        return;
                    }
                    self.mounted = false;
                }
            }
            self.detach_loops();
        }
        let _ = std::fs::remove_dir(&self.mountpoint);
        if let Err(e) = std::fs::remove_file(&self.image) {
            eprintln!("ws-bench: warning: cannot remove {}: {e}", self.image.display());
        }
    }
}
