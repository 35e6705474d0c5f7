//! Taking a snapshot: walk, store what changed, write the manifest, make it durable.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::budget::Budget;
use crate::error::SnapshotError;
use crate::ignore_rules::{BadIgnoreFile, IgnoreRules};
use crate::manifest::{Manifest, ManifestId};
use crate::store::{CloneSupport, Store};
use crate::walk::Walk;

/// Counters a caller may watch from another thread to show progress.
#[derive(Debug, Default)]
pub struct Progress {
    pub files: AtomicU64,
    pub stored_files: AtomicU64,
    pub stored_bytes: AtomicU64,
}

#[derive(Debug)]
pub struct SnapshotOptions<'a> {
    /// Canonical path of the workspace root.
    pub workspace: &'a Path,
    pub budget: Budget,
    /// Exclude files beyond `.gitignore`s: `.git/info/exclude`, the user's
    /// global excludes file. Missing files are fine.
    pub exclude_files: Vec<PathBuf>,
    /// The stat cache: usually the store's latest manifest.
    pub previous: Option<&'a Manifest>,
    pub progress: Option<&'a Progress>,
}

#[derive(Debug)]
pub struct SnapshotOutcome {
    pub id: ManifestId,
    pub manifest: Manifest,
    /// Files whose content was cloned or copied (not vouched for by the stat cache).
    pub stored_files: u64,
    pub stored_bytes: u64,
    pub clone: CloneSupport,
    /// Ignore files whose rules were not applied because they could not be
    /// read safely (a FIFO, a device, a symbolic link in the work tree, too
    /// large): the snapshot holds what they would have excluded.
    pub bad_ignore_files: Vec<BadIgnoreFile>,
}

/// Snapshots the workspace into the store and makes it the latest manifest.
/// Never writes to the workspace.
pub fn take_snapshot(store: &Store, opts: &SnapshotOptions) -> Result<SnapshotOutcome, SnapshotError> {
    let root = opts.workspace;
    let meta = std::fs::metadata(root).map_err(|source| SnapshotError::Walk { path: root.to_path_buf(), source })?;
    if !meta.is_dir() {
        return Err(SnapshotError::NotADirectory { path: root.to_path_buf() });
    }
    let started_ns = fs_now(store)?;
    let excludes: Vec<&Path> = opts.exclude_files.iter().map(PathBuf::as_path).collect();
    let (rules, mut bad_ignore_files) = IgnoreRules::new(root, &excludes);
    let own = Progress::default();
    let progress = opts.progress.unwrap_or(&own);
    let before_files = progress.stored_files.load(Ordering::Relaxed);
    let before_bytes = progress.stored_bytes.load(Ordering::Relaxed);
    let mut skip = Vec::new();
    for dir in [Some(store.root()), store.root().parent()].into_iter().flatten() {
        if let Ok(m) = std::fs::metadata(dir) {
            skip.push((m.dev(), m.ino()));
        }
    }
    let walk = Walk {
        store,
        root,
        rules: &rules,
        budget: opts.budget,
        previous: opts.previous,
        started_ns,
        progress,
        skip,
        links: Default::default(),
        work_prefixes: store.work_prefixes(),
        bad_ignores: Default::default(),
    };
    let entries = walk.run()?;
    bad_ignore_files.append(&mut walk.bad_ignores.into_inner().unwrap_or_else(|p| p.into_inner()));
    bad_ignore_files.sort_by(|a, b| a.path.cmp(&b.path));
    let mut manifest = Manifest { started_ns, entries, id: None };
    manifest.sort();
    // An unchanged workspace yields the same entries: that is the previous
    // manifest, already stored; nothing to encode or write.
    let unchanged = opts.previous.filter(|prev| prev.id.is_some() && prev.entries == manifest.entries);
    let id = match unchanged {
        Some(prev) => {
            manifest.started_ns = prev.started_ns;
            prev.id.clone().unwrap_or_else(|| unreachable!("filtered on id"))
        }
        None => store.put_manifest(&manifest)?,
    };
    manifest.id = Some(id.clone());
    let stored_files = progress.stored_files.load(Ordering::Relaxed) - before_files;
    if stored_files > 0 {
        // Objects are written without fsync each; one syncfs makes them all
        // durable before the manifest that names them becomes the latest.
        store.sync()?;
    }
    store.set_latest(&id)?;
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    Ok(SnapshotOutcome {
        id,
        manifest,
        stored_files,
        stored_bytes: load(&progress.stored_bytes) - before_bytes,
        clone: store.clone_support(),
        bad_ignore_files,
    })
}

/// The filesystem's idea of "now": the mtime of a file created in the store.
/// File timestamps come from the kernel's coarse clock, so comparing them with
/// this (rather than with `SystemTime::now()`) makes the racy check exact.
pub(crate) fn fs_now(store: &Store) -> Result<i64, SnapshotError> {
    let path = store.tmp_path();
    let probe = || -> io::Result<i64> {
        let f = std::fs::File::create(&path)?;
        let m = f.metadata()?;
        Ok(m.mtime() * 1_000_000_000 + m.mtime_nsec())
    };
    let r = probe();
    let _ = std::fs::remove_file(&path);
    r.map_err(|source| SnapshotError::Store { path, source })
}
