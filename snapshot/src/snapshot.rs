//! Taking a snapshot: walk, store what changed, write the manifest, make it durable.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::budget::Budget;
use crate::error::SnapshotError;
use crate::ignore_rules::{BadIgnoreFile, IgnoreRules};
use crate::manifest::{Manifest, ManifestId};
use crate::path::share_prefixes;
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
    /// Look only where a complete record of writes says the workspace
    /// changed since `scope.base`; every other entry is the base's.
    pub scope: Option<crate::changed::Scope<'a>>,
}

/// What a snapshot took.
#[derive(Debug)]
pub enum Taken {
    /// Its scope's base ([`SnapshotOptions::scope`]), found unchanged where
    /// the walk looked: the caller holds it already.
    Base,
    /// A new manifest, held whole.
    Whole(Manifest),
    /// A new manifest stored as a layer over the whole one its scope's base
    /// was read from ([`crate::Stored::open`] reads it).
    Layered,
}

impl Taken {
    /// The new manifest when it is held whole.
    pub fn into_whole(self) -> Option<Manifest> {
        match self {
            Taken::Whole(m) => Some(m),
            _ => None,
        }
    }
}

#[derive(Debug)]
pub struct SnapshotOutcome {
    pub id: ManifestId,
    /// What was taken, and whether it is held here.
    pub taken: Taken,
    /// With a scope, when something changed: the base's entries where the
    /// walk looked, and what it found there. Every other entry of the new
    /// manifest is the base's, so a change set against the base needs only
    /// these ([`crate::compute_changes`] of the two).
    pub region: Option<(Vec<crate::manifest::Entry>, Vec<crate::manifest::Entry>)>,
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
    let started_ns = fs_now(store)?;
    let own = Progress::default();
    let progress = opts.progress.unwrap_or(&own);
    let before_files = progress.stored_files.load(Ordering::Relaxed);
    let before_bytes = progress.stored_bytes.load(Ordering::Relaxed);
    let created = Mutex::new(Vec::new());
    // Until a manifest names them, the objects this snapshot stored are
    // nobody's: on failure (a full disk, most often) they are removed, so
    // the space is there again for the review that follows.
    let written = walk(store, opts, started_ns, progress, Some(&created))
        .and_then(|(found, bad)| put_manifest(store, opts, started_ns, found).map(|m| (m, bad)));
    let created = created.into_inner().unwrap_or_else(|p| p.into_inner());
    let (manifest, bad_ignore_files) = match written {
        Ok(w) => w,
        Err(e) => {
            for id in &created {
                let _ = std::fs::remove_file(store.object_path(id));
            }
            return Err(e);
        }
    };
    let (id, taken, region) = match manifest {
        Put::Base(id) => (id, Taken::Base, None),
        Put::Layered(id, region) => (id, Taken::Layered, Some(region)),
        Put::New(m, region) => {
            (m.id.clone().unwrap_or_else(|| unreachable!("put_manifest sets the id")), Taken::Whole(m), region)
        }
    };
    if !created.is_empty() {
        // Objects are written without fsync each; one syncfs makes them all
        // durable before the manifest that names them becomes the latest.
        store.sync()?;
    }
    store.set_latest(&id)?;
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    Ok(SnapshotOutcome {
        id,
        region,
        taken,
        stored_files: load(&progress.stored_files) - before_files,
        stored_bytes: load(&progress.stored_bytes) - before_bytes,
        clone: store.clone_support(),
        bad_ignore_files,
    })
}

enum Put {
    /// The scope's base, with this id: nothing new.
    Base(ManifestId),
    /// A new manifest, and with a scope the region it differs in
    /// ([`SnapshotOutcome::region`]).
    New(Manifest, Option<Region>),
    /// A layer over the scope's stored base, with the region it differs in.
    Layered(ManifestId, Region),
}

type Region = (Vec<crate::manifest::Entry>, Vec<crate::manifest::Entry>);

/// The manifest of a walk's entries, stored (unless the previous one is the
/// same), with its id set.
fn put_manifest(store: &Store, opts: &SnapshotOptions, started_ns: i64, found: Found) -> Result<Put, SnapshotError> {
    let mut region = None;
    let mut manifest = match (opts.scope, found.visited) {
        (Some(scope), Some(visited)) => {
            let scoped = crate::changed::Scoped::new(scope.base, &visited, found.entries);
            if let Some(id) = scope.base.id.as_ref().filter(|_| scoped.unchanged(scope.base)) {
                return Ok(Put::Base(id.clone()));
            }
            let entries = match scope.stored {
                Some(stored) => {
                    if let Some(put) = put_layer(store, stored, scope.base, &visited, &scoped, started_ns)? {
                        return Ok(put);
                    }
                    // Too much for a layer: merged around the whole stored base.
                    let whole = stored.whole().map_err(crate::StoreError::from)?;
                    let scoped = crate::changed::Scoped::new(&whole, &visited, scoped.listed());
                    region = Some(scoped.region(&whole));
                    scoped.merge(&whole)
                }
                None => {
                    region = Some(scoped.region(scope.base));
                    scoped.merge(scope.base)
                }
            };
            let mut m = Manifest { started_ns, entries, id: None };
            share_prefixes(m.entries.iter_mut().map(|e| &mut e.path));
            m
        }
        _ => {
            let mut m = Manifest { started_ns, entries: found.entries, id: None };
            m.sort();
            m
        }
    };
    // An unchanged workspace yields the same entries: that is the previous
    // manifest, already stored; nothing to encode or write.
    // (A partial stat cache is not the previous manifest: not compared.)
    let unchanged = opts.previous.filter(|prev| {
        prev.id.is_some() && opts.scope.is_none_or(|s| s.stored.is_none()) && prev.entries == manifest.entries
    });
    let id = match unchanged {
        Some(prev) => {
            manifest.started_ns = prev.started_ns;
            prev.id.clone().unwrap_or_else(|| unreachable!("filtered on id"))
        }
        None => store.put_manifest(&manifest)?,
    };
    manifest.id = Some(id);
    Ok(Put::New(manifest, region))
}

/// A scoped walk's findings as a layer over the whole snapshot `stored`
/// rests on (joined with the layer already over it): `None` when `stored`
/// is held whole, or the layer would not be small beside it
/// ([`crate::layer::Layer::fits`]). `partial` is what the walk was given
/// of `stored` ([`crate::Stored::partial`]).
fn put_layer(
    store: &Store,
    stored: &crate::Stored,
    partial: &Manifest,
    visited: &[(crate::path::RelPath, crate::changed::Visit)],
    scoped: &crate::changed::Scoped,
    started_ns: i64,
) -> Result<Option<Put>, SnapshotError> {
    let Some((base, older)) = stored.layering() else { return Ok(None) };
    let (mut was, now) = scoped.region(partial);
    use crate::changed::Visit;
    let walked_whole: std::collections::HashSet<&[u8]> =
        visited.iter().filter(|(_, v)| *v == Visit::Whole).map(|(p, _)| p.as_bytes()).collect();
    let (mut listed, mut passed) = (std::collections::HashSet::new(), std::collections::HashSet::new());
    // The topmost directories walked whole say it for all below them; a
    // gone one holds nothing below it.
    let mut whole: std::collections::HashSet<Vec<u8>> = scoped.gone().iter().cloned().collect();
    for (dir, v) in visited {
        match v {
            Visit::List => {
                listed.insert(dir.as_bytes().to_vec());
            }
            Visit::Pass => {
                passed.insert(dir.as_bytes().to_vec());
            }
            Visit::Whole if !dir.parent().is_some_and(|p| walked_whole.contains(p.as_bytes())) => {
                whole.insert(dir.as_bytes().to_vec());
            }
            Visit::Whole => {}
        }
    }
    let layer = crate::layer::Layer::new(listed, whole, passed, now.clone());
    let Some(layer) = layer.joined(older, base.count) else { return Ok(None) };
    // Below a gone directory, the walk was given nothing: the stored ones.
    for g in scoped.gone() {
        was.extend(stored.below(g).map_err(crate::StoreError::from)?);
    }
    was.sort_by(|a, b| a.path.cmp(&b.path));
    was.dedup_by(|a, b| a.path == b.path);
    let id = store.put_manifest_bytes(&layer.encode(&base.id, started_ns))?;
    Ok(Some(Put::Layered(id, (was, now))))
}

/// The snapshot `stored` with `updated` put in (each path's entry now, or
/// none), as a layer over the whole snapshot it rests on (joined with the
/// layer already over it): what a rollback makes the latest snapshot, so
/// that rolling back ten files does not write a million entries. `None`
/// when `stored` is held whole or the layer would not be small beside it.
pub(crate) fn refreshed_layer(
    store: &Store,
    stored: &crate::Stored,
    updated: &std::collections::HashMap<crate::path::RelPath, Option<crate::manifest::Entry>>,
    started_ns: i64,
) -> Result<Option<ManifestId>, crate::StoreError> {
    use std::collections::{BTreeMap, HashSet};
    let Some((base, older)) = stored.layering() else { return Ok(None) };
    let parent = |p: &crate::path::RelPath| p.parent().unwrap_or_default().as_bytes().to_vec();
    // A path gone: its directory's listing is the layer's, read once (the
    // shallower first); a directory gone holds nothing below it, so none
    // below it is listed.
    let mut gone_in: Vec<Vec<u8>> = updated.iter().filter(|(_, e)| e.is_none()).map(|(p, _)| parent(p)).collect();
    gone_in.sort_by_key(|d| (d.iter().filter(|b| **b == b'/').count(), d.clone()));
    gone_in.dedup();
    let (mut listed, mut whole) = (HashSet::new(), HashSet::<Vec<u8>>::new());
    let below_gone = |whole: &HashSet<Vec<u8>>, p: &[u8]| {
        whole.iter().any(|w| p.len() > w.len() && p.starts_with(w) && p[w.len()] == b'/')
    };
    let mut entries = BTreeMap::new();
    for dir in gone_in {
        if whole.contains(&dir) || below_gone(&whole, &dir) {
            continue;
        }
        for e in stored.children(&dir)? {
            if e.is_dir() && updated.get(&e.path).is_some_and(Option::is_none) {
                whole.insert(e.path.as_bytes().to_vec());
            }
            entries.insert(e.path.clone(), e);
        }
        listed.insert(dir);
    }
    // A path back: in a directory listed, or one passed through.
    let mut passed = HashSet::new();
    for (p, e) in updated {
        match e {
            Some(e) if !below_gone(&whole, p.as_bytes()) => {
                if !listed.contains(&parent(p)) {
                    passed.insert(parent(p));
                }
                entries.insert(p.clone(), e.clone());
            }
            _ => {
                entries.remove(p);
            }
        }
    }
    let layer = crate::layer::Layer::new(listed, whole, passed, entries.into_values().collect());
    let Some(layer) = layer.joined(older, base.count) else { return Ok(None) };
    Ok(Some(store.put_manifest_bytes(&layer.encode(&base.id, started_ns))?))
}

/// What a walk found: every entry, or with a scope the entries of the
/// directories it listed (`visited`).
struct Found {
    entries: Vec<crate::manifest::Entry>,
    visited: Option<Vec<(crate::path::RelPath, crate::changed::Visit)>>,
}

/// Describes the workspace as a snapshot would, writing nothing to the store:
/// for when the store's disk is full ([`SnapshotError::is_no_space`]). Files
/// the stat cache (`opts.previous`) vouches for, or whose content is still
/// their previous object's, keep that object; any other file is
/// `Excluded { NoSpace }`, so that a change set against the before-snapshot
/// still lists every changed path and rollback can put each back. The
/// manifest is not stored (`id` is `None`).
pub fn walk_unstored(store: &Store, opts: &SnapshotOptions) -> Result<(Manifest, Vec<BadIgnoreFile>), SnapshotError> {
    let started_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    let own = Progress::default();
    // Every entry, whatever the options' scope: this manifest is not merged with a base.
    let unscoped = SnapshotOptions {
        workspace: opts.workspace,
        budget: opts.budget,
        exclude_files: opts.exclude_files.clone(),
        previous: opts.previous,
        progress: opts.progress,
        scope: None,
    };
    let (found, bad) = walk(store, &unscoped, started_ns, opts.progress.unwrap_or(&own), None)?;
    let mut manifest = Manifest { started_ns, entries: found.entries, id: None };
    manifest.sort();
    Ok((manifest, bad))
}

fn walk(
    store: &Store,
    opts: &SnapshotOptions,
    started_ns: i64,
    progress: &Progress,
    created: Option<&Mutex<Vec<crate::store::ObjectId>>>,
) -> Result<(Found, Vec<BadIgnoreFile>), SnapshotError> {
    let root = opts.workspace;
    let meta = std::fs::metadata(root).map_err(|source| SnapshotError::Walk { path: root.to_path_buf(), source })?;
    if !meta.is_dir() {
        return Err(SnapshotError::NotADirectory { path: root.to_path_buf() });
    }
    let excludes: Vec<&Path> = opts.exclude_files.iter().map(PathBuf::as_path).collect();
    let (rules, mut bad_ignore_files) = IgnoreRules::new(root, &excludes);
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
        store_content: created.is_some(),
        verify_cache: opts.previous.is_some_and(|p| p.id.is_none() || p.id != store.latest()),
        created: Default::default(),
        bad_ignores: Default::default(),
        scope: opts.scope,
        visited: Default::default(),
    };
    let entries = walk.run();
    if let Some(c) = created {
        crate::store::lock(c).append(&mut crate::store::lock(&walk.created));
    }
    let entries = entries?;
    bad_ignore_files.append(&mut walk.bad_ignores.into_inner().unwrap_or_else(|p| p.into_inner()));
    bad_ignore_files.sort_by(|a, b| a.path.cmp(&b.path));
    let visited = opts.scope.map(|_| walk.visited.into_inner().unwrap_or_else(|p| p.into_inner()));
    Ok((Found { entries, visited }, bad_ignore_files))
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
