//! Approve and roll back: the two ways a change leaves the pending state.
//!
//! Rollback touches only the paths the session changed, so its cost follows
//! the change set, not the workspace. Before touching a path it checks that the
//! path is still as the session left it; anything changed since is a conflict
//! and left alone unless forced. Every step makes one path equal to its
//! snapshot state with a single rename, and each step first checks whether
//! that is already so — which is what lets a rollback interrupted at any
//! instant (kill -9, power loss) be finished by running it again. A missing
//! directory is one step for its whole tree: built under a work name, renamed
//! in when complete (see `rebuild`).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::changes::{Change, ChangeState, lstat, object_hash};
use crate::copy::hash_file;
use crate::error::{ReviewError, StoreError};
use crate::git::{GitClass, git_class};
use crate::longpath::Reachable;
use crate::manifest::{Entry, EntryKind};
use crate::path::RelPath;
use crate::rebuild::{Built, NewTrees, fill_file};
use crate::session::{Journal, Session};
use crate::snapshot::fs_now;
use crate::stat::FileStat;
use crate::store::{Store, lock, owner_alive, work_prefix, worker_threads};

#[derive(Debug, Default)]
pub struct RollbackOptions {
    /// Overwrite paths changed after the session ended.
    pub force: bool,
    /// Changes to leave alone even when picked: those the session did not
    /// make (a recorder saw someone else make them during it).
    pub leave: HashSet<RelPath>,
    /// Remove the git objects the session added too (normally kept, so that
    /// the reflog can bring its commits back): for a pack git cannot read.
    pub drop_new_objects: bool,
}

#[derive(Debug, Default)]
pub struct RollbackOutcome {
    /// Paths put back to their snapshot state (restored, recreated or removed).
    pub restored: Vec<RelPath>,
    /// Paths left alone because they changed after the session ended.
    pub conflicts: Vec<(RelPath, String)>,
    /// Paths that cannot come back: excluded from the snapshot by the budget.
    pub unrestorable: Vec<RelPath>,
    /// Git objects and reflog entries the session added, kept on purpose.
    pub kept_git: usize,
    /// Rolled back although changed after the session (forced, or `.git/index`).
    pub overwritten: Vec<RelPath>,
    /// The changes of an interrupted rollback that this one finished first.
    pub resumed: usize,
}

/// Selects the pending changes under `paths` (all pending ones if empty),
/// and the other half of each rename among them: a rename named by either
/// path is approved or rolled back whole (the old path back, the new gone).
/// Naming a path the session did not change is an error, not a silent no-op.
fn select(session: &Session, changes: &[Change], paths: &[RelPath]) -> Result<Vec<usize>, ReviewError> {
    let mut picked = Vec::new();
    for p in paths {
        let hit = changes.iter().any(|c| c.path.starts_with(p));
        if !hit {
            return Err(ReviewError::NotChanged { session: session.id.clone(), path: p.display() });
        }
    }
    for (i, c) in changes.iter().enumerate() {
        if c.state == ChangeState::Pending && (paths.is_empty() || paths.iter().any(|p| c.path.starts_with(p))) {
            picked.push(i);
        }
    }
    crate::renames::with_partners(changes, &mut picked);
    Ok(picked)
}

/// Approves the pending changes under `paths`: the workspace keeps the
/// session's version. Returns the approved paths.
pub fn approve(
    store: &Store,
    session: &mut Session,
    changes: &mut [Change],
    paths: &[RelPath],
) -> Result<Vec<RelPath>, ReviewError> {
    let picked = select(session, changes, paths)?;
    for &i in &picked {
        changes[i].state = ChangeState::Approved;
    }
    store.save_changes(&session.id, changes)?;
    store.settle(session, changes)?;
    Ok(picked.iter().map(|&i| changes[i].path.clone()).collect())
}

/// Rolls back the pending changes under `paths` (all if empty). Finishes an
/// interrupted rollback of this session first. `linked`: the files of the
/// session's before-snapshot with several names ([`Store::linked`]), where
/// a restored file finds the siblings it shared its inode with.
pub fn rollback(
    store: &Store,
    workspace: &Path,
    session: &mut Session,
    changes: &mut [Change],
    linked: &[Entry],
    paths: &[RelPath],
    opts: &RollbackOptions,
) -> Result<RollbackOutcome, ReviewError> {
    let mut outcome = RollbackOutcome::default();
    if let Some(j) = store.read_journal(&session.id)? {
        let pending: Vec<usize> =
            j.indices.into_iter().filter(|&i| i < changes.len() && changes[i].state == ChangeState::Pending).collect();
        outcome.resumed = pending.len();
        // The interrupted run's work names carry its token: registered again
        // (in case its marker was lost) so that they stay out of snapshots
        // until swept.
        if !j.work.is_empty() {
            store.register_work(&j.work)?;
        }
        Rollback::new(store, workspace, linked, j.force, &j.work, &mut outcome).run(changes, &pending)?;
        sync_workspace(workspace);
        store.save_changes(&session.id, changes)?;
        store.sync()?;
        store.clear_journal(&session.id)?;
        if !j.work.is_empty() {
            store.end_work(&j.work)?;
        }
    }
    let mut picked = select(session, changes, paths)?;
    picked.retain(|&i| !opts.leave.contains(&changes[i].path));
    // A restored path needs its parent: pull in removed ancestors.
    let chosen: HashSet<RelPath> = picked.iter().map(|&i| changes[i].path.clone()).collect();
    let by_path: HashMap<&RelPath, usize> = changes.iter().enumerate().map(|(i, c)| (&c.path, i)).collect();
    let mut extra = Vec::new();
    // Each ancestor is looked at once: the walk up stops at one that is
    // picked or already seen, whose own walk covers the rest. Without that,
    // a tree 10,000 deep costs 10,000² lookups of paths 20,000 bytes long.
    let mut seen: HashSet<RelPath> = HashSet::new();
    for &i in &picked {
        let mut p = changes[i].path.parent();
        while let Some(anc) = p {
            if anc.is_root() || chosen.contains(&anc) || !seen.insert(anc.clone()) {
                break;
            }
            if let Some(&k) = by_path.get(&anc)
                && changes[k].state == ChangeState::Pending
                && changes[k].before.as_ref().is_some_and(Entry::is_dir)
            {
                extra.push(k);
            }
            p = anc.parent();
        }
    }
    picked.extend(extra);
    picked.sort_unstable();
    picked.dedup();
    if !picked.is_empty() {
        let work = store.begin_work()?;
        store
            .write_journal(&session.id, &Journal { indices: picked.clone(), force: opts.force, work: work.clone() })?;
        let mut rb = Rollback::new(store, workspace, linked, opts.force, &work, &mut outcome);
        rb.drop_new_objects = opts.drop_new_objects;
        let made = rb.run(changes, &picked)?;
        // What was restored reaches the disk before the change set says so:
        // after a power cut, a change marked rolled back must not have lost
        // its files. The stat cache is refreshed meanwhile.
        std::thread::scope(|s| {
            s.spawn(|| sync_workspace(workspace));
            refresh_stat_cache(store, workspace, changes, &picked, &made);
        });
        store.save_changes(&session.id, changes)?;
        store.sync()?;
        store.clear_journal(&session.id)?;
        store.end_work(&work)?;
    }
    store.settle(session, changes)?;
    Ok(outcome)
}

/// Points the stat cache at what rollback restored, so the next snapshot
/// trusts those files instead of copying them again (a restored file has a
/// new inode and ctime). Best effort: on any failure the cache is merely
/// colder. Waits for the filesystem clock to tick past the last restore so
/// the refreshed entries are not racy. `made`: the stats rollback read as it
/// made entries, which nothing has changed since (see [`Rollback::run`]).
fn refresh_stat_cache(
    store: &Store,
    root: &Path,
    changes: &[Change],
    picked: &[usize],
    made: &HashMap<usize, FileStat>,
) {
    let Some(latest) = store.latest().and_then(|id| crate::Stored::open(store, &id).ok()) else { return };
    let Ok(last_write) = fs_now(store) else { return };
    let mut now = last_write;
    for _ in 0..50 {
        if now > last_write {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
        match fs_now(store) {
            Ok(t) => now = t,
            Err(_) => return,
        }
    }
    if now <= last_write {
        return;
    }
    let mut updated: HashMap<RelPath, Option<Entry>> = HashMap::new();
    for &i in picked {
        let c = &changes[i];
        if c.state != ChangeState::RolledBack {
            continue;
        }
        let fresh = c.before.as_ref().filter(|b| !b.is_excluded()).and_then(|b| {
            if let Some(&stat) = made.get(&i) {
                return Some(Entry { stat, racy: stat.mtime_ns >= now || stat.ctime_ns >= now, ..b.clone() });
            }
            let reach = Reachable::new(&c.path.to_path(root)).ok()?;
            let m = std::fs::symlink_metadata(&*reach).ok()?;
            let stat = FileStat::from_metadata(&m);
            let same_kind = match b.kind {
                EntryKind::File { .. } => m.is_file(),
                EntryKind::Symlink { .. } => m.file_type().is_symlink(),
                EntryKind::Dir => m.is_dir(),
                EntryKind::Excluded { .. } => false,
            };
            same_kind.then(|| Entry { stat, racy: stat.mtime_ns >= now || stat.ctime_ns >= now, ..b.clone() })
        });
        if fresh.is_some() || c.before.is_none() {
            updated.insert(c.path.clone(), fresh);
        }
    }
    let started_ns = latest.started_ns().max(now);
    // As a layer: what rollback wrote, not the whole listing again.
    match crate::snapshot::refreshed_layer(store, &latest, &updated, started_ns) {
        Ok(Some(id)) => {
            let _ = store.set_latest(&id);
            return;
        }
        Ok(None) => {}
        Err(_) => return,
    }
    let Ok(mut latest) = latest.into_whole() else { return };
    latest.entries.retain(|e| !updated.contains_key(&e.path));
    latest.entries.extend(updated.into_values().flatten());
    latest.sort();
    latest.started_ns = started_ns;
    if let Ok(id) = store.put_manifest(&latest) {
        let _ = store.set_latest(&id);
    }
}

fn sync_workspace(root: &Path) {
    if let Ok(f) = File::open(root) {
        let _ = rustix::fs::syncfs(&f);
    }
}

struct Rollback<'a> {
    store: &'a Store,
    root: &'a Path,
    /// The before-snapshot's files with several names (hard-link siblings).
    linked: &'a [Entry],
    force: bool,
    /// See [`RollbackOptions::drop_new_objects`].
    drop_new_objects: bool,
    out: &'a mut RollbackOutcome,
    /// Restored hard-link groups: (dev, ino) in the snapshot → a path now holding it.
    links: Mutex<HashMap<(u64, u64), PathBuf>>,
    /// New trees begun by the current level of directories: (path, work path).
    new_tops: Mutex<Vec<(RelPath, PathBuf)>>,
    /// `.ws-tmp-TOKEN-`: what this rollback's work names begin with.
    work_prefix: Vec<u8>,
}

/// What rolling back one change came to.
enum Step {
    AlreadyDone,
    Restored,
    /// Restored although it had changed after the session (forced, or `.git/index`).
    Overwritten,
    Conflict,
    Unrestorable,
    KeptGit,
}

fn panicked() -> ReviewError {
    ReviewError::Restore { path: PathBuf::new(), source: io::Error::other("a restore thread panicked") }
}

/// Whether a workspace path, whose `lstat` is `cur` (`None`: absent), is
/// as the entry `want` describes (`None`: absent).
pub(crate) fn matches_now(
    store: &Store,
    abs: &Path,
    cur: Option<&std::fs::Metadata>,
    want: Option<&Entry>,
) -> Result<bool, ReviewError> {
    let cmp_err = |source| ReviewError::Compare { path: abs.to_path_buf(), source };
    let (cur, want) = match (cur, want) {
        (None, None) => return Ok(true),
        (None, Some(_)) | (Some(_), None) => return Ok(false),
        (Some(c), Some(w)) => (c, w),
    };
    let stat = FileStat::from_metadata(cur);
    let ft = cur.file_type();
    Ok(match &want.kind {
        EntryKind::Dir => ft.is_dir(),
        EntryKind::Excluded { .. } => true,
        EntryKind::Symlink { target } => {
            ft.is_symlink() && std::fs::read_link(abs).map_err(cmp_err)?.as_os_str().as_bytes() == target.as_slice()
        }
        EntryKind::File { .. } => {
            if !ft.is_file() || stat.perm() != want.stat.perm() || stat.size != want.stat.size {
                false
            } else if !want.racy && stat == want.stat {
                true
            } else {
                let mut w = want.clone();
                let h = object_hash(store, &mut w)?;
                let f = File::open(abs).map_err(cmp_err)?;
                hash_file(&f, stat.size).map_err(cmp_err)? == h
            }
        }
    })
}

fn category(e: &Entry) -> u8 {
    match e.kind {
        EntryKind::File { .. } => 0,
        EntryKind::Symlink { .. } => 1,
        EntryKind::Dir => 2,
        EntryKind::Excluded { .. } => 3,
    }
}

impl<'a> Rollback<'a> {
    fn new(
        store: &'a Store,
        root: &'a Path,
        linked: &'a [Entry],
        force: bool,
        work: &str,
        out: &'a mut RollbackOutcome,
    ) -> Self {
        // A journal from before work tokens: its work names had none.
        let work_prefix = if work.is_empty() { b".ws-tmp-".to_vec() } else { work_prefix(work) };
        Rollback {
            work_prefix,
            store,
            root,
            linked,
            force,
            drop_new_objects: false,
            out,
            links: Mutex::new(HashMap::new()),
            new_tops: Mutex::new(Vec::new()),
        }
    }

    /// Rolls back the changes `picked`. Returns the stats of the entries it
    /// made in new trees, read right after each was complete: files and
    /// symlinks, which nothing later touches (phase 3 changes directories;
    /// putting a tree in place changes only its top).
    fn run(&mut self, changes: &mut [Change], picked: &[usize]) -> Result<HashMap<usize, FileStat>, ReviewError> {
        let mut done: Vec<usize> = Vec::new();
        // Phase 1, deepest first: take away what the session created, or what
        // replaced an entry of another kind.
        let mut removals: Vec<usize> = picked
            .iter()
            .copied()
            .filter(|&i| {
                let c = &changes[i];
                match (&c.before, &c.after) {
                    (None, Some(_)) => true,
                    (Some(b), Some(a)) => category(b) != category(a),
                    _ => false,
                }
            })
            .collect();
        removals.sort_by_cached_key(|&i| std::cmp::Reverse(changes[i].path.depth()));
        let mut blocked: HashSet<usize> = HashSet::new();
        for &i in &removals {
            let c = &changes[i];
            if c.before.is_none() && git_class(&c.path) == GitClass::Objects && !self.drop_new_objects {
                self.out.kept_git += 1;
                done.push(i);
                continue;
            }
            let shown = c.path.to_path(self.root);
            let reach =
                Reachable::new(&shown).map_err(|source| ReviewError::Compare { path: shown.clone(), source })?;
            let abs: &Path = &reach;
            let cur = lstat(abs).map_err(|source| ReviewError::Compare { path: shown.clone(), source })?;
            if cur.is_none() {
                if c.before.is_none() {
                    done.push(i);
                }
                continue;
            }
            let now_is = |want| matches_now(self.store, abs, cur.as_ref(), want).map_err(|e| e.shown_as(&shown));
            if !self.force && !now_is(c.after.as_ref())? {
                if c.before.is_some() && now_is(c.before.as_ref())? {
                    continue; // already restored by an earlier, interrupted run
                }
                self.out.conflicts.push((c.path.clone(), "changed after the session ended".into()));
                blocked.insert(i);
                continue;
            }
            let r = match c.after.as_ref().map(|a| &a.kind) {
                Some(EntryKind::Dir) => match std::fs::remove_dir(abs) {
                    Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty => {
                        self.out
                            .conflicts
                            .push((c.path.clone(), "directory holds files the session did not create".into()));
                        blocked.insert(i);
                        continue;
                    }
                    r => r,
                },
                Some(EntryKind::Excluded { .. }) => remove_any(abs),
                _ => std::fs::remove_file(abs),
            };
            match r {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(ReviewError::Remove { path: shown, source }),
            }
            if c.before.is_none() {
                self.out.restored.push(c.path.clone());
                done.push(i);
            }
        }

        // Phase 2: bring back snapshot entries. Directories first, shallowest
        // first, so every file has its parent; then files and symlinks, in
        // parallel (each is independent); hard links last, since each needs
        // its already-restored sibling. A missing directory comes back as a
        // new tree (see [`NewTrees`]), put in place before the hard links.
        let mut restores: Vec<usize> =
            picked.iter().copied().filter(|&i| changes[i].before.is_some() && !blocked.contains(&i)).collect();
        restores.sort_by_cached_key(|&i| changes[i].path.depth());
        let is_dir = |i: &usize| changes[*i].before.as_ref().is_some_and(Entry::is_dir);
        let linked = |i: &usize| changes[*i].before.as_ref().is_some_and(|b| b.stat.nlink > 1 && !b.is_dir());
        let dirs: Vec<usize> = restores.iter().copied().filter(is_dir).collect();
        let links: Vec<usize> = restores.iter().copied().filter(linked).collect();
        let files: Vec<usize> = restores.iter().copied().filter(|i| !is_dir(i) && !linked(i)).collect();
        let mut trees = NewTrees::default();
        let mut made = HashMap::new();
        let built = self.build(changes, (&dirs, &files), &mut trees, &mut made);
        let mut steps = match built.and_then(|steps| trees.put_in_place().map(|()| steps)) {
            Ok(steps) => steps,
            Err(e) => {
                trees.discard();
                return Err(e);
            }
        };
        for &i in &links {
            steps.push((i, self.step(&changes[i])?));
        }
        let mut dir_modes: Vec<(PathBuf, u32, usize)> = Vec::new();
        for (i, step) in steps {
            let c = &changes[i];
            match step {
                Step::Conflict => {
                    self.out.conflicts.push((c.path.clone(), "changed after the session ended".into()));
                    continue;
                }
                Step::Unrestorable => self.out.unrestorable.push(c.path.clone()),
                Step::KeptGit => self.out.kept_git += 1,
                Step::AlreadyDone => {}
                Step::Restored => self.out.restored.push(c.path.clone()),
                Step::Overwritten => {
                    self.out.overwritten.push(c.path.clone());
                    self.out.restored.push(c.path.clone());
                }
            }
            if let Some(b) = c.before.as_ref().filter(|b| b.is_dir()) {
                dir_modes.push((c.path.to_path(self.root), b.stat.perm(), c.path.depth()));
            }
            done.push(i);
        }
        // Phase 3, deepest first: directory permissions last, so a read-only
        // directory does not stop its own children from coming back.
        dir_modes.sort_by_key(|d| std::cmp::Reverse(d.2));
        for (abs, perm, _) in dir_modes {
            Reachable::new(&abs)
                .and_then(|reach| std::fs::set_permissions(&*reach, std::fs::Permissions::from_mode(perm)))
                .map_err(|source| ReviewError::Restore { path: abs.clone(), source })?;
        }
        for i in done {
            changes[i].state = ChangeState::RolledBack;
        }
        self.sweep_tmp(changes, picked, &trees);
        Ok(made)
    }

    /// Phase 2 up to the hard links: the directories, level by level, then
    /// the files and symlinks. What lies below a new tree's top is built by
    /// [`NewTrees::build`], which reads the stats it adds to `made`; the
    /// rest goes through [`Self::step`].
    fn build(
        &self,
        changes: &[Change],
        (dirs, files): (&[usize], &[usize]),
        trees: &mut NewTrees,
        made: &mut HashMap<usize, FileStat>,
    ) -> Result<Vec<(usize, Step)>, ReviewError> {
        let mut steps = Vec::with_capacity(dirs.len() + files.len());
        let mut below: Vec<(usize, &Entry)> = Vec::new();
        let mut others: Vec<usize> = Vec::new();
        for level in dirs.chunk_by(|a, b| changes[*a].path.depth() == changes[*b].path.depth()) {
            others.clear();
            for &i in level {
                match changes[i].before.as_ref().filter(|_| trees.holds(&changes[i].path)) {
                    Some(b) => {
                        trees.adopt(b.path.clone());
                        below.push((i, b));
                    }
                    None => others.push(i),
                }
            }
            steps.extend(in_parallel(&others, PER_THREAD, |&i| Ok((i, self.step(&changes[i])?)))?);
            for (path, work) in lock(&self.new_tops).drain(..) {
                let abs = path.to_path(self.root);
                trees.add_top(path, work, abs);
            }
        }
        others.clear();
        for &i in files {
            match changes[i].before.as_ref().filter(|_| trees.holds(&changes[i].path)) {
                Some(b) => below.push((i, b)),
                None => others.push(i),
            }
        }
        for (i, built) in trees.build(self.store, &below)? {
            match built {
                Built::Made(stat) => {
                    steps.push((i, Step::Restored));
                    made.extend(stat.map(|s| (i, s)));
                }
                Built::Excluded => steps.push((i, Step::Unrestorable)),
            }
        }
        steps.extend(in_parallel(&others, PER_THREAD, |&i| Ok((i, self.step(&changes[i])?)))?);
        Ok(steps)
    }

    /// Decides and performs the rollback of one change with a snapshot side.
    fn step(&self, c: &Change) -> Result<Step, ReviewError> {
        let Some(before) = c.before.as_ref() else { return Ok(Step::AlreadyDone) };
        if before.is_excluded() {
            return Ok(Step::Unrestorable);
        }
        let shown = c.path.to_path(self.root);
        let reach = Reachable::new(&shown).map_err(|source| ReviewError::Compare { path: shown.clone(), source })?;
        self.step_at(c, before, &shown, &reach).map_err(|e| e.shown_as(&shown))
    }

    /// [`Self::step`] on `abs`, a form of `shown` that system calls accept.
    fn step_at(&self, c: &Change, before: &Entry, shown: &Path, abs: &Path) -> Result<Step, ReviewError> {
        let class = git_class(&c.path);
        let cur = lstat(abs).map_err(|source| ReviewError::Compare { path: abs.to_path_buf(), source })?;
        if matches_now(self.store, abs, cur.as_ref(), Some(before))? {
            return Ok(Step::AlreadyDone);
        }
        if class == GitClass::Reflog && appended_to(self.store, abs, before)? {
            return Ok(Step::KeptGit);
        }
        let replaced_kind = c.after.as_ref().is_some_and(|a| category(a) != category(before));
        let as_left = replaced_kind || matches_now(self.store, abs, cur.as_ref(), c.after.as_ref())?;
        let step = match (as_left, class == GitClass::Index || self.force) {
            (true, _) => Step::Restored,
            (false, true) => Step::Overwritten,
            (false, false) => return Ok(Step::Conflict),
        };
        self.restore(shown, abs, before, cur.is_none())?;
        Ok(step)
    }

    /// Makes `abs` (a reachable form of `shown`) equal to the snapshot entry
    /// `e`, atomically per path. `absent`: the path did not exist when the
    /// step looked (saves a stat).
    fn restore(&self, shown: &Path, abs: &Path, e: &Entry, absent: bool) -> Result<(), ReviewError> {
        let err = |source| ReviewError::restore(abs.to_path_buf(), source);
        match &e.kind {
            EntryKind::Dir => {
                match lstat(abs).map_err(err)? {
                    Some(m) if m.is_dir() => return Ok(()),
                    Some(_) => std::fs::remove_file(abs).map_err(err)?,
                    None => {}
                }
                // The top of a new tree (see `rebuild`), made writable;
                // phase 3 sets the snapshot's mode after the children are back.
                let work = tmp_beside(&self.work_prefix, abs);
                std::fs::DirBuilder::new().mode(0o700).create(&work).map_err(err)?;
                lock(&self.new_tops).push((e.path.clone(), work));
                Ok(())
            }
            EntryKind::Symlink { target } => {
                let tmp = tmp_beside(&self.work_prefix, abs);
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(target), &tmp).map_err(err)?;
                self.place(&tmp, abs)
            }
            EntryKind::File { object, .. } => {
                let tmp = tmp_beside(&self.work_prefix, abs);
                let key = (e.stat.dev, e.stat.ino);
                if e.stat.nlink > 1
                    && let Some(sibling) = self.hard_link_sibling(key, &e.path)
                    && Reachable::new(&sibling).and_then(|s| std::fs::hard_link(&*s, &tmp)).is_ok()
                {
                    return self.place(&tmp, abs);
                }
                let fill = |dst: &File| fill_file(self.store, dst, e, object);
                if absent && self.create_unnamed_then_link(abs, &fill).map_err(err)? {
                    if e.stat.nlink > 1 {
                        lock(&self.links).insert(key, shown.to_path_buf());
                    }
                    return Ok(());
                }
                let filled = File::options().write(true).create_new(true).mode(0o600).open(&tmp).and_then(|f| fill(&f));
                if let Err(source) = filled {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(ReviewError::restore(abs.to_path_buf(), source));
                }
                self.place(&tmp, abs)?;
                if e.stat.nlink > 1 {
                    lock(&self.links).insert(key, shown.to_path_buf());
                }
                Ok(())
            }
            EntryKind::Excluded { .. } => Ok(()),
        }
    }

    /// Restores a file where nothing exists: written as an unnamed inode
    /// (`O_TMPFILE`) and given its name only when complete, so a crash never
    /// leaves a partial file under the name — one directory insertion instead
    /// of a temporary name and a rename. `Ok(false)` where the filesystem or
    /// a missing /proc does not allow it; the caller falls back.
    fn create_unnamed_then_link(&self, abs: &Path, fill: &dyn Fn(&File) -> io::Result<()>) -> io::Result<bool> {
        use rustix::fs::{AtFlags, CWD, Mode, OFlags};
        let parent = abs.parent().unwrap_or(self.root);
        let fd = match rustix::fs::open(
            parent,
            OFlags::TMPFILE | OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        ) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::ISDIR | rustix::io::Errno::INVAL) => {
                return Ok(false);
            }
            Err(e) => return Err(e.into()),
        };
        let dst = File::from(fd);
        fill(&dst)?;
        let proc_path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&dst));
        match rustix::fs::linkat(CWD, proc_path.as_str(), CWD, abs, AtFlags::SYMLINK_FOLLOW) {
            Ok(()) => Ok(true),
            Err(rustix::io::Errno::NOENT) if !Path::new("/proc/self/fd").exists() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Another path of the same snapshot inode that now holds the snapshot
    /// content: restored in this run, or untouched by the session.
    fn hard_link_sibling(&self, key: (u64, u64), path: &RelPath) -> Option<PathBuf> {
        if let Some(p) = lock(&self.links).get(&key) {
            return Some(p.clone());
        }
        let sib = self
            .linked
            .iter()
            .find(|o| o.path != *path && (o.stat.dev, o.stat.ino) == key && matches!(o.kind, EntryKind::File { .. }))?;
        let abs = sib.path.to_path(self.root);
        let m = std::fs::symlink_metadata(&*Reachable::new(&abs).ok()?).ok()?;
        (m.ino() == sib.stat.ino
            && m.dev() == sib.stat.dev
            && FileStat::from_metadata(&m).ctime_ns == sib.stat.ctime_ns)
            .then_some(abs)
    }

    fn place(&self, tmp: &Path, abs: &Path) -> Result<(), ReviewError> {
        std::fs::rename(tmp, abs).map_err(|source| {
            let _ = std::fs::remove_file(tmp);
            ReviewError::Restore { path: abs.to_path_buf(), source }
        })
    }

    /// Removes work files and unfinished new trees that an interrupted
    /// rollback left in the directories it was working in; not in those of
    /// this run's new trees, which did not exist before it.
    fn sweep_tmp(&self, changes: &[Change], picked: &[usize], trees: &NewTrees) {
        let dirs: HashSet<RelPath> =
            picked.iter().filter_map(|&i| changes[i].path.parent()).filter(|d| !trees.has_dir(d)).collect();
        for d in dirs {
            let Ok(reach) = Reachable::new(&d.to_path(self.root)) else {
                continue;
            };
            let Ok(rd) = std::fs::read_dir(&*reach) else {
                continue;
            };
            for e in rd.flatten() {
                let name = e.file_name();
                let Some(rest) = name.as_bytes().strip_prefix(self.work_prefix.as_slice()) else {
                    continue;
                };
                if owner_alive(rest) {
                    continue;
                }
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    let _ = std::fs::remove_dir_all(e.path());
                } else {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
}

/// Whether the reflog at `abs` is the snapshot's with entries appended.
/// The agent may have made it anything: it is opened without following a
/// link or blocking on a FIFO, must be a regular file longer than the
/// snapshot's, and only the snapshot's length of it is read, a piece at a
/// time — never the whole of a 1 TiB file.
fn appended_to(store: &Store, abs: &Path, before: &Entry) -> Result<bool, ReviewError> {
    use std::io::Read;
    let EntryKind::File { object, .. } = &before.kind else {
        return Ok(false);
    };
    let flags = rustix::fs::OFlags::RDONLY
        | rustix::fs::OFlags::NOFOLLOW
        | rustix::fs::OFlags::NONBLOCK
        | rustix::fs::OFlags::NOCTTY
        | rustix::fs::OFlags::CLOEXEC;
    let Ok(fd) = rustix::fs::open(abs, flags, rustix::fs::Mode::empty()) else {
        return Ok(false);
    };
    let now = File::from(fd);
    let Ok(meta) = now.metadata() else { return Ok(false) };
    let path = store.object_path(object);
    let obj_err = |source| StoreError::Object { path: path.clone(), source };
    let then = File::open(&path).map_err(obj_err)?;
    let then_len = then.metadata().map_err(obj_err)?.len();
    if !meta.is_file() || meta.len() <= then_len {
        return Ok(false);
    }
    let (mut a, mut b) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    let (mut now, mut then) = ((&now).take(then_len), (&then).take(then_len));
    loop {
        let n = then.read(&mut a).map_err(obj_err)?;
        if n == 0 {
            return Ok(true);
        }
        if now.read_exact(&mut b[..n]).is_err() || a[..n] != b[..n] {
            return Ok(false);
        }
    }
}

fn remove_any(abs: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(abs) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(abs),
        Ok(_) => std::fs::remove_file(abs),
        Err(e) => Err(e),
    }
}

/// A work name beside `abs`: `prefix` (`.ws-tmp-TOKEN-`) then the owner's
/// pid (for the sweep) and what makes it unique.
pub(crate) fn tmp_beside(prefix: &[u8], abs: &Path) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let pid = *PID.get_or_init(std::process::id);
    let name = format!("{}{pid}-{n}-{nanos}", String::from_utf8_lossy(prefix));
    abs.with_file_name(name)
}

/// Entries per restore thread at least: fewer are not worth a thread.
const PER_THREAD: usize = 32;

/// Runs `f` on every item on up to [`worker_threads`] threads, at least
/// `per_thread` items each, every thread taking the next item not yet taken;
/// results in no particular order. Stops at the first error.
pub(crate) fn in_parallel<T: Sync, R: Send>(
    items: &[T],
    per_thread: usize,
    f: impl Fn(&T) -> Result<R, ReviewError> + Sync,
) -> Result<Vec<R>, ReviewError> {
    let threads = worker_threads().min(items.len().div_ceil(per_thread.max(1)));
    if threads < 2 {
        return items.iter().map(&f).collect();
    }
    let next = AtomicUsize::new(0);
    let parts: Vec<Result<Vec<R>, ReviewError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(k) else { return Ok(out) };
                        match f(item) {
                            Ok(r) => out.push(r),
                            Err(e) => {
                                next.store(items.len(), Ordering::Relaxed);
                                return Err(e);
                            }
                        }
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(panicked()))).collect()
    });
    let mut out = Vec::with_capacity(items.len());
    for part in parts {
        out.extend(part?);
    }
    Ok(out)
}
