//! Where a workspace's store lives.
//!
//! Clones need the store on the workspace's filesystem. The caller offers a
//! preferred directory (the user's data directory); if that is on another
//! filesystem, the store goes to `.ws-UID` at the top of the workspace's
//! filesystem — the convention the freedesktop trash uses (`.Trash-UID`) for
//! the same reason — and only if that cannot be created does it stay in the
//! preferred place and copy instead of clone.

use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorePlacement {
    pub dir: PathBuf,
    /// False when the store ended up on another filesystem than the workspace
    /// (files are copied, not cloned).
    pub same_filesystem: bool,
}

/// A stable key for a workspace path (used as its store's directory name).
pub fn workspace_key(workspace: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let h = blake3::hash(workspace.as_os_str().as_bytes());
    let name: String = workspace
        .file_name()
        .map(|n| {
            n.to_string_lossy()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .take(24)
                .collect()
        })
        .unwrap_or_default();
    format!("{}-{}", if name.is_empty() { "root" } else { &name }, crate::store::hex(&h.as_bytes()[..6]))
}

/// Chooses the store directory for `workspace` (canonical). `preferred` is the
/// parent directory for stores the caller would like (e.g. `~/.local/share/ws/stores`).
pub fn choose_store_dir(workspace: &Path, preferred: &Path, uid: u32) -> StorePlacement {
    let key = workspace_key(workspace);
    let dev = |p: &Path| std::fs::metadata(p).ok().map(|m| m.dev());
    let ws_dev = dev(workspace);
    let pref_dev = nearest_existing(preferred).and_then(|p| dev(&p));
    if ws_dev.is_some() && ws_dev == pref_dev {
        return StorePlacement { dir: preferred.join(&key), same_filesystem: true };
    }
    if let Some(top) = mount_top(workspace) {
        let base = top.join(format!(".ws-{uid}"));
        let made = std::fs::DirBuilder::new().mode(0o700).create(&base);
        let usable = match made {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                std::fs::metadata(&base).is_ok_and(|m| m.is_dir() && m.uid() == uid && m.mode() & 0o077 == 0)
            }
            Err(_) => false,
        };
        if usable && dev(&base) == ws_dev {
            return StorePlacement { dir: base.join(&key), same_filesystem: true };
        }
    }
    StorePlacement { dir: preferred.join(&key), same_filesystem: false }
}

/// The store already serving `workspace`, if there is one. Creates nothing.
pub fn existing_store_dir(workspace: &Path, preferred: &Path, uid: u32) -> Option<PathBuf> {
    let key = workspace_key(workspace);
    let candidates =
        [Some(preferred.join(&key)), mount_top(workspace).map(|t| t.join(format!(".ws-{uid}")).join(&key))];
    candidates.into_iter().flatten().find(|d| d.join("STORE").is_file())
}

fn nearest_existing(p: &Path) -> Option<PathBuf> {
    let mut cur = Some(p);
    while let Some(c) = cur {
        if c.exists() {
            return Some(c.to_path_buf());
        }
        cur = c.parent();
    }
    None
}

/// The topmost directory above `path` on the same filesystem.
fn mount_top(path: &Path) -> Option<PathBuf> {
    let dev = std::fs::metadata(path).ok()?.dev();
    let mut top = path.to_path_buf();
    while let Some(parent) = top.parent() {
        if std::fs::metadata(parent).ok()?.dev() != dev {
            break;
        }
        top = parent.to_path_buf();
    }
    Some(top)
}
