//! The after-snapshot from the record: when the write recorder confirms it
//! read every event of a session that has ended, the after-snapshot looks
//! only at the paths the record names (and lists the directories above
//! them), taking every other entry from the before-snapshot, instead of
//! walking the whole workspace. Anything that could hide a change from the
//! record sends it back to the full walk, and the session says why.
//!
//! What the record cannot show, and how each is covered:
//! - writes through a shared writable mapping (no event at all): the file
//!   was opened for writing, and closing it is an event (`FAN_CLOSE_WRITE`);
//!   files still open for writing or mapped shared when the session ends
//!   are found in `/proc` (the session's own processes are gone by then).
//! - writes through a name outside the workspace (a hard link): files with
//!   more than one link in the before-snapshot are looked at, and so are
//!   files whose link count changed during the session (reported by inode).
//! - another filesystem mounted inside the workspace (the recorder watches
//!   the workspace's own): full walk.
//! - an excludes file outside the workspace that changed: full walk.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use ws_snapshot::ChangedPaths;

use crate::recording::Tracked;

/// `WS_AFTER_SNAPSHOT`: how the after-snapshot is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// From the record when it can be trusted, else the full walk (default).
    Auto,
    /// Always the full walk (`walk`).
    Walk,
    /// From the record, then a full walk too, compared (`check`; for tests:
    /// a difference is reported and the walk's snapshot kept).
    Check,
}

impl Mode {
    /// The mode a `WS_AFTER_SNAPSHOT` value names; anything else is `Auto`.
    pub fn from_setting(value: Option<&str>) -> Mode {
        match value {
            Some("walk") => Mode::Walk,
            Some("check") => Mode::Check,
            _ => Mode::Auto,
        }
    }
}

/// The content of the excludes files when the before-snapshot was taken:
/// they decide what every snapshot keeps, and those outside the workspace
/// are not in the record.
#[derive(Debug, Default)]
pub struct Excludes(Vec<(PathBuf, Option<Vec<u8>>)>);

impl Excludes {
    pub fn read(files: &[PathBuf]) -> Excludes {
        Excludes(files.iter().map(|f| (f.clone(), read_small(f))).collect())
    }

    /// As the store keeps them beside its latest snapshot ([`crate::watch`]).
    pub fn pairs(&self) -> Vec<(PathBuf, Option<Vec<u8>>)> {
        self.0.clone()
    }

    pub fn from_pairs(pairs: Vec<(PathBuf, Option<Vec<u8>>)>) -> Excludes {
        Excludes(pairs)
    }

    /// The first excludes file whose content is not what it was.
    fn changed(&self) -> Option<&Path> {
        self.0.iter().find(|(f, then)| read_small(f) != *then).map(|(f, _)| f.as_path())
    }
}

/// A file's bytes, up to one more than the ignore rules would read.
fn read_small(f: &Path) -> Option<Vec<u8>> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    let file = std::fs::File::open(f).ok()?;
    file.take(ws_snapshot::IGNORE_FILE_MAX + 1).read_to_end(&mut bytes).ok()?;
    Some(bytes)
}

/// What the after-snapshot from the record rests on, gathered once the
/// session has ended and before the workspace's lock is taken (looking into
/// every process is the slow part; sessions sharing a workspace wait for
/// that lock one after the other).
#[derive(Debug)]
pub struct Evidence {
    tracked: Tracked,
    /// (device, inode) of files open for writing or mapped shared.
    open: HashSet<(u64, u64)>,
}

/// The record's account of the session, and the files open for writing now.
pub fn gather(root: &Path, record: Result<Tracked, String>, mode: Mode) -> Result<Evidence, String> {
    if mode == Mode::Walk {
        return Err("WS_AFTER_SNAPSHOT=walk".into());
    }
    let tracked = record?;
    let _root = crate::as_root("see which files are open for writing").map_err(|e| e.message)?;
    Ok(Evidence { tracked, open: open_for_writing(root)? })
}

/// Evidence from the watch between sessions ([`crate::watch`]): the paths
/// and inodes it saw change, and the files open for writing now.
pub fn evidence(root: &Path, changed: ChangedPaths, inodes: Vec<(u64, u64)>) -> Result<Evidence, String> {
    let _root = crate::as_root("see which files are open for writing").map_err(|e| e.message)?;
    let tracked = Tracked { changed, inodes, ..Tracked::default() };
    Ok(Evidence { tracked, open: open_for_writing(root)? })
}

/// Where the snapshot must look, or why it must walk everything.
pub fn plan(
    root: &Path,
    before: &ws_snapshot::Stored,
    evidence: Result<Evidence, String>,
    excludes: Option<&Excludes>,
) -> Result<ChangedPaths, String> {
    let Evidence { tracked, open } = evidence?;
    local_filesystem(root)?;
    if let Some(f) = excludes.and_then(Excludes::changed) {
        return Err(format!("the excludes file {} changed", f.display()));
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| format!("cannot read the mounts: {e}"))?;
    if let Some(m) = mounted_below(root, &ws_sandbox::recorder::mount_points(&mounts)) {
        return Err(format!(
            "a filesystem is mounted inside the workspace at {} (the recorder watches the workspace's own)",
            m.display()
        ));
    }
    let mut wanted = open;
    wanted.extend(tracked.inodes.iter().copied());
    let mut changed = tracked.changed;
    // A file with another name (maybe outside) may have been written
    // through it; one open for writing or mapped may have been written
    // without an event.
    for e in before.linked() {
        changed.add(e.path.as_bytes());
    }
    let open = before.with_inodes(&wanted).map_err(|e| format!("cannot read the snapshot's listing: {e}"))?;
    for e in &open {
        changed.add(e.path.as_bytes());
    }
    Ok(changed)
}

/// Filesystems whose every change passes through this kernel's VFS, so that
/// its events are all there is to see: (magic number, name).
const LOCAL: &[(u64, &str)] = &[
    (0xEF53, "ext4"),
    (0x5846_5342, "xfs"),
    (0x9123_683E, "btrfs"),
    (0x0102_1994, "tmpfs"),
    (0xCA45_1A4E, "bcachefs"),
    (0xF2F5_2010, "f2fs"),
];

/// Refuses a workspace on a filesystem that can change without this
/// kernel seeing it (NFS and other network filesystems, FUSE, overlayfs
/// whose lower layers can be written directly).
fn local_filesystem(root: &Path) -> Result<(), String> {
    let st = rustix::fs::statfs(root).map_err(|e| format!("cannot ask the filesystem of {}: {e}", root.display()))?;
    #[allow(clippy::unnecessary_cast)] // its width differs between architectures
    let magic = st.f_type as u64;
    if LOCAL.iter().any(|(m, _)| *m == magic) {
        Ok(())
    } else {
        Err(format!(
            "the workspace's filesystem (type {magic:#x}) is not one whose every change the recorder sees              (those are {})",
            LOCAL.iter().map(|(_, n)| *n).collect::<Vec<_>>().join(", ")
        ))
    }
}

/// The first mount point strictly inside `root`.
pub fn mounted_below<'a>(root: &Path, points: &'a [PathBuf]) -> Option<&'a Path> {
    points.iter().map(PathBuf::as_path).find(|p| p.starts_with(root) && *p != root)
}

/// Whether an open file may be one of the workspace at `root`: one whose
/// only name is outside it is not, nor one with no name left (a name moved
/// out or removed since the snapshot was seen going). `target`: the name the process's descriptor shows, which
/// is in this process's view only when the process is in this mount
/// namespace (`same_namespace`); `None` when it cannot be read.
fn may_be_inside(root: &Path, target: Option<&Path>, nlink: u64, same_namespace: bool) -> bool {
    !same_namespace || nlink > 1 || (nlink == 1 && target.is_none_or(|t| t.starts_with(root)))
}

/// The device, inode and name of a line of `/proc/PID/maps` that maps a file.
fn mapped(line: &str) -> Option<(u64, u64, &str)> {
    let mut f = line.splitn(6, ' ');
    let (_, _, _, dev, ino) = (f.next()?, f.next()?, f.next()?, f.next()?, f.next()?);
    let name = f.next().unwrap_or("").trim_start();
    let (major, minor) = dev.split_once(':')?;
    let (major, minor) = (u32::from_str_radix(major, 16).ok()?, u32::from_str_radix(minor, 16).ok()?);
    let ino = ino.parse::<u64>().ok().filter(|&i| i != 0)?;
    Some((rustix::fs::makedev(major, minor), ino, name))
}

/// [`may_be_inside`] for a mapped file known by the name a maps line
/// shows: that name, looked at, must still be the file (else it may have
/// any name, and counts as inside).
fn name_may_be_inside(root: &Path, name: &str, file: (u64, u64), same_namespace: bool) -> bool {
    use std::os::unix::fs::MetadataExt;
    let path = Path::new(name);
    if !same_namespace || path.starts_with(root) {
        return true;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if (m.dev(), m.ino()) == file => may_be_inside(root, Some(path), m.nlink(), same_namespace),
        _ => true,
    }
}

/// (device, inode) of every regular file some process holds open for
/// writing, or has mapped shared (a read-only shared mapping may have been
/// made writable and back), that may be one of the workspace at `root`
/// ([`may_be_inside`]: the others would make a session read the whole
/// listing to find they are not). Needs root to look into every process.
fn open_for_writing(root: &Path) -> Result<HashSet<(u64, u64)>, String> {
    use std::os::unix::fs::MetadataExt;
    let namespace = |pid: &str| std::fs::metadata(format!("/proc/{pid}/ns/mnt")).ok().map(|m| (m.dev(), m.ino()));
    let ours = namespace("self");
    let root_dev = std::fs::metadata(root).ok().map(|m| m.dev());
    let mut found = HashSet::new();
    let procs = std::fs::read_dir("/proc").map_err(|e| format!("cannot list /proc: {e}"))?;
    // A process that exits while being looked at holds nothing any more. One
    // that even root may not look into (EACCES: it belongs to a user
    // namespace above ours, as a container's runtime does) is not the
    // session's, and could hold a session's file only if handed one over a
    // socket: skipped, as a limit (see the README).
    let gone =
        |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound || matches!(e.raw_os_error(), Some(3 | 13));
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let base = PathBuf::from(format!("/proc/{pid}"));
        let same_namespace = ours.is_some() && namespace(&pid.to_string()) == ours;
        let inside = |link: &Path, m: &std::fs::Metadata| {
            may_be_inside(root, std::fs::read_link(link).ok().as_deref(), m.nlink(), same_namespace)
        };
        match std::fs::read_to_string(base.join("maps")) {
            Ok(maps) => {
                for line in maps.lines() {
                    let mut f = line.split_whitespace();
                    let (Some(range), Some(perms), _, _, Some(inode)) =
                        (f.next(), f.next(), f.next(), f.next(), f.next())
                    else {
                        continue;
                    };
                    if !perms.ends_with('s') || inode == "0" {
                        continue;
                    }
                    let link = base.join("map_files").join(range);
                    match std::fs::metadata(&link) {
                        Ok(m) => {
                            if inside(&link, &m) {
                                found.insert((m.dev(), m.ino()));
                            }
                        }
                        Err(e) if gone(&e) => {}
                        // Following `map_files` needs CAP_CHECKPOINT_RESTORE:
                        // a user who is not root goes by the device, inode
                        // and name the line shows.
                        Err(e) if e.raw_os_error() == Some(1) => {
                            if let Some((dev, ino, name)) = mapped(line)
                                && Some(dev) == root_dev
                                && name_may_be_inside(root, name, (dev, ino), same_namespace)
                            {
                                found.insert((dev, ino));
                            }
                        }
                        Err(e) => return Err(format!("cannot see what process {pid} has mapped: {e}")),
                    }
                }
            }
            Err(e) if gone(&e) => continue,
            Err(e) => return Err(format!("cannot see what process {pid} has mapped: {e}")),
        }
        let fds = match std::fs::read_dir(base.join("fd")) {
            Ok(fds) => fds,
            Err(e) if gone(&e) => continue,
            Err(e) => return Err(format!("cannot see the open files of process {pid}: {e}")),
        };
        for fd in fds.flatten() {
            let Ok(m) = std::fs::metadata(fd.path()) else { continue };
            if !m.is_file() || found.contains(&(m.dev(), m.ino())) {
                continue;
            }
            let info = std::fs::read_to_string(base.join("fdinfo").join(fd.file_name())).unwrap_or_default();
            let flags =
                info.lines().find_map(|l| l.strip_prefix("flags:")).and_then(|v| u32::from_str_radix(v.trim(), 8).ok());
            // Unknown flags count as writable.
            if flags.is_none_or(|f| f & 0o3 != 0) && inside(&fd.path(), &m) {
                found.insert((m.dev(), m.ino()));
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_file_whose_only_name_is_outside_is_not_the_workspaces() {
        let w = Path::new("/w");
        assert!(may_be_inside(w, Some(Path::new("/w/a")), 1, true));
        assert!(!may_be_inside(w, Some(Path::new("/x/a")), 1, true));
        assert!(!may_be_inside(w, Some(Path::new("/wx/a")), 1, true), "a sibling sharing the prefix");
        assert!(may_be_inside(w, Some(Path::new("/x/a")), 2, true), "another name may be inside");
        assert!(may_be_inside(w, Some(Path::new("/x/a")), 1, false), "a name in another namespace's view");
        assert!(may_be_inside(w, None, 1, true), "a name that could not be read");
        assert!(!may_be_inside(w, Some(Path::new("/w/a (deleted)")), 0, true), "no name left");
    }

    #[test]
    fn a_maps_line_names_its_file_by_device_inode_and_name() {
        let line = "7f10c0000000-7f10c0002000 rw-s 00000000 fd:01 1234567                    /w/mapped bin";
        assert_eq!(mapped(line), Some((rustix::fs::makedev(0xfd, 1), 1_234_567, "/w/mapped bin")));
        assert_eq!(mapped("7f10c0000000-7f10c0002000 rw-s 00000000 00:00 0 "), None, "anonymous");
        assert_eq!(mapped("garbage"), None);
        // A name that is the file's, outside, with one link: not inside.
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, "x").unwrap();
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(&f).unwrap();
        let w = Path::new("/w");
        assert!(!name_may_be_inside(w, f.to_str().unwrap(), (m.dev(), m.ino()), true));
        assert!(name_may_be_inside(w, f.to_str().unwrap(), (m.dev(), m.ino() + 1), true), "not that file any more");
        assert!(name_may_be_inside(w, "/w/x", (1, 2), true));
    }

    #[test]
    fn only_a_mount_strictly_inside_the_workspace_counts() {
        let points: Vec<PathBuf> = ["/", "/w", "/work", "/w/sub/m"].iter().map(PathBuf::from).collect();
        assert_eq!(mounted_below(Path::new("/w"), &points), Some(Path::new("/w/sub/m")));
        assert_eq!(mounted_below(Path::new("/work"), &points), None);
        assert_eq!(mounted_below(Path::new("/w/other"), &points), None);
    }

    #[test]
    fn an_excludes_file_that_changes_or_appears_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, "x\n").unwrap();
        let then = Excludes::read(&[a.clone(), b.clone()]);
        assert_eq!(then.changed(), None);
        std::fs::write(&b, "y\n").unwrap();
        assert_eq!(then.changed(), Some(b.as_path()));
        let then = Excludes::read(&[a.clone(), b.clone()]);
        std::fs::write(&a, "z\n").unwrap();
        assert_eq!(then.changed(), Some(a.as_path()));
    }
}
