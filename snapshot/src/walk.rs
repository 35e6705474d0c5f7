//! The parallel walk that takes a snapshot.
//!
//! Directories are jobs on a shared queue served by a few threads (the work is
//! mostly waiting on the filesystem, so more threads than cores pay off). Each
//! file is `lstat`ed once; if the previous manifest has the same path with the
//! same stat data and it was not racy, its object is reused without reading a
//! byte — an unchanged workspace costs one directory walk.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;

use rustix::fs::{AtFlags, Dir, FileType, Mode as Mode0, OFlags};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use crate::budget::Budget;
use crate::changed::{Scope, Visit};
use crate::error::SnapshotError;
use crate::ignore_rules::{BadIgnoreFile, IgnoreRules, IgnoreStack};
use crate::manifest::{Entry, EntryKind, ExcludeReason, Manifest, find};
use crate::path::RelPath;
use crate::snapshot::Progress;
use crate::stat::FileStat;
use crate::store::{ObjectId, Store, lock, worker_threads};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Ordinary workspace directory: ignore rules apply.
    Normal,
    /// Inside `.git`, or inside an ignored directory the budget admitted:
    /// everything is kept, no rules are consulted.
    KeepAll,
}

struct Job {
    abs: PathBuf,
    rel: RelPath,
    ignores: Option<Arc<IgnoreStack>>,
    mode: Mode,
    /// Everything below is walked (always, without a [`Scope`]).
    whole: bool,
    /// Only on the way to changes below ([`Visit::Pass`]): the
    /// subdirectories on the way are looked at, not the listing.
    pass: bool,
    /// Deep in a tree: the parent directory, still open, and this
    /// directory's name in it. Opening by the full path makes the kernel
    /// walk every level again, which costs O(depth) per directory and
    /// O(depth²) for a deep chain (20,000 levels: minutes).
    parent: Option<(Arc<Held>, Vec<u8>)>,
    /// Entries of this directory and of ancestors it continues a chain of
    /// (each one's first subdirectory), with their paths' lengths: their
    /// paths become views of the bytes of the deepest directory of the
    /// chain, so a chain N deep holds one path buffer, not N of them.
    chain: Vec<(usize, Entry)>,
    depth: usize,
}

/// Below this depth directories are opened by path (the parent is not held).
const HOLD_FROM_DEPTH: usize = 16;
/// At most this many parent directories held open at once, over all walks
/// of the process (a wide tree deep down must not exhaust descriptors):
/// beyond, directories are opened by path again.
const MAX_HELD: usize = 256;
static HELD: AtomicUsize = AtomicUsize::new(0);

/// A directory kept open for its children's jobs.
struct Held(OwnedFd);

impl Held {
    fn dup(fd: BorrowedFd<'_>) -> Option<Arc<Held>> {
        if HELD.fetch_add(1, Ordering::AcqRel) >= MAX_HELD {
            HELD.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        match rustix::io::fcntl_dupfd_cloexec(fd, 0) {
            Ok(fd) => Some(Arc::new(Held(fd))),
            Err(_) => {
                HELD.fetch_sub(1, Ordering::AcqRel);
                None
            }
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        HELD.fetch_sub(1, Ordering::AcqRel);
    }
}

pub(crate) struct Walk<'a> {
    pub store: &'a Store,
    pub root: &'a Path,
    pub rules: &'a IgnoreRules,
    pub budget: Budget,
    pub previous: Option<&'a Manifest>,
    pub started_ns: i64,
    pub progress: &'a Progress,
    /// (dev, ino) of directories never to enter: the store and its parent.
    pub skip: Vec<(u64, u64)>,
    /// Objects of multiply-linked inodes seen so far, so each inode is stored once.
    pub links: Mutex<HashMap<(u64, u64), StoredObject>>,
    /// Name prefixes of the work files of rollbacks under way (interrupted):
    /// those names alone are left out. See [`crate::store::WorkToken`].
    pub work_prefixes: Vec<Vec<u8>>,
    /// False for [`crate::walk_unstored`]: nothing is written to the store;
    /// a file the stat cache cannot vouch for is compared with its previous
    /// object by content, and is `Excluded { NoSpace }` if it differs.
    pub store_content: bool,
    /// The stat cache is not the latest manifest (read before the lock, and
    /// another snapshot became the latest meanwhile): `ws gc` may have
    /// freed its objects since, so each one it vouches for is checked.
    pub verify_cache: bool,
    /// Objects this walk stored: removed again if the snapshot fails, so a
    /// full disk gets its space back (no manifest names them).
    pub created: Mutex<Vec<ObjectId>>,
    /// `.gitignore` files whose rules could not be read safely.
    pub bad_ignores: Mutex<Vec<BadIgnoreFile>>,
    /// Look only where these changed; take the rest from the base.
    pub scope: Option<Scope<'a>>,
    /// With a scope: the directories listed, and whether wholly (what the
    /// walk answers for, see [`crate::changed::Scoped`]).
    pub visited: Mutex<Vec<(RelPath, Visit)>>,
}

/// Gives the entries of a chain that ends at `dir` (no subdirectory carried
/// it on) their paths, as views of `dir`'s bytes.
fn end_chain(chain: Option<Vec<(usize, Entry)>>, dir: &RelPath, out: &mut Batch<'_>) {
    for (len, e) in chain.into_iter().flatten() {
        out.push(Entry { path: dir.ancestor(len), ..e });
    }
}

pub(crate) type StoredObject = (ObjectId, Option<[u8; 32]>);

/// Entries a worker gathers before adding them to the shared list.
const BATCH: usize = 512;

/// A worker's entries not yet in [`Shared::entries`].
struct Batch<'s> {
    entries: Vec<Entry>,
    all: &'s Mutex<Vec<Entry>>,
}

impl Batch<'_> {
    fn push(&mut self, e: Entry) {
        if self.entries.len() == BATCH {
            self.flush();
        }
        self.entries.push(e);
    }

    fn flush(&mut self) {
        lock(self.all).append(&mut self.entries);
    }
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    /// Mirrors `Queue::idle` so busy workers can check it without the lock.
    idle: AtomicUsize,
    threads: usize,
    failed: AtomicBool,
    error: Mutex<Option<SnapshotError>>,
    /// Every entry found, in no order. Sized from the previous snapshot so
    /// that it does not grow: the walk's memory is this list and a batch
    /// per worker (merging per-worker lists had both at once).
    entries: Mutex<Vec<Entry>>,
}

struct Queue {
    jobs: Vec<Job>,
    idle: usize,
    done: bool,
}

impl Walk<'_> {
    pub fn run(&self) -> Result<Vec<Entry>, SnapshotError> {
        let threads = worker_threads();
        let root = Job {
            abs: self.root.to_path_buf(),
            rel: RelPath::root(),
            ignores: None,
            mode: Mode::Normal,
            parent: None,
            whole: self.scope.is_none_or(|s| s.changed.root_visit() == Visit::Whole),
            pass: self.scope.is_some_and(|s| s.changed.root_visit() == Visit::Pass),
            chain: Vec::new(),
            depth: 0,
        };
        let shared = Shared {
            queue: Mutex::new(Queue { jobs: vec![root], idle: 0, done: false }),
            ready: Condvar::new(),
            idle: AtomicUsize::new(0),
            threads,
            failed: AtomicBool::new(false),
            error: Mutex::new(None),
            // A scoped walk finds what it lists, not the whole tree.
            entries: Mutex::new(Vec::with_capacity(match (self.scope, self.previous) {
                (None, Some(m)) => m.entries.len() + m.entries.len() / 16,
                _ => 0,
            })),
        };
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| self.worker(&shared));
            }
        });
        if let Some(e) = lock(&shared.error).take() {
            return Err(e);
        }
        if shared.failed.load(Ordering::Relaxed) {
            return Err(SnapshotError::Walk {
                path: self.root.to_path_buf(),
                source: io::Error::other("a walker thread panicked"),
            });
        }
        Ok(shared.entries.into_inner().unwrap_or_else(|p| p.into_inner()))
    }

    /// Takes a job from the shared queue, waiting while others may still
    /// produce some. `None` when the walk is over.
    fn next_shared(&self, shared: &Shared) -> Option<Job> {
        let mut q = lock(&shared.queue);
        loop {
            if q.done || shared.failed.load(Ordering::Relaxed) {
                return None;
            }
            if let Some(job) = q.jobs.pop() {
                return Some(job);
            }
            q.idle += 1;
            shared.idle.store(q.idle, Ordering::Relaxed);
            if q.idle == shared.threads {
                q.done = true;
                shared.ready.notify_all();
                return None;
            }
            q = shared.ready.wait(q).unwrap_or_else(|p| p.into_inner());
            q.idle -= 1;
            shared.idle.store(q.idle, Ordering::Relaxed);
        }
    }

    /// Each worker walks depth-first from its own stack and hands half of it
    /// to the shared queue only when another worker is idle, so the lock is
    /// taken rarely. Its entries go to the shared list a [`BATCH`] at a time.
    fn worker(&self, shared: &Shared) {
        let mut out = Batch { entries: Vec::with_capacity(BATCH), all: &shared.entries };
        let mut local: Vec<Job> = Vec::new();
        loop {
            let Some(job) = local.pop().or_else(|| self.next_shared(shared)) else {
                out.flush();
                return;
            };
            let result =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.visit(job, &mut local, &mut out)));
            let failed = match result {
                Ok(Ok(())) => false,
                Ok(Err(e)) => {
                    lock(&shared.error).get_or_insert(e);
                    true
                }
                Err(_) => true,
            };
            if failed {
                shared.failed.store(true, Ordering::Relaxed);
                let _q = lock(&shared.queue);
                shared.ready.notify_all();
                return;
            }
            if local.len() > 1 && shared.idle.load(Ordering::Relaxed) > 0 {
                let give = local.split_off(local.len() / 2);
                let mut q = lock(&shared.queue);
                q.jobs.extend(give);
                shared.ready.notify_all();
            }
        }
    }

    fn visit(&self, job: Job, local: &mut Vec<Job>, out: &mut Batch<'_>) -> Result<(), SnapshotError> {
        let walk_err =
            |path: &Path, e: rustix::io::Errno| SnapshotError::Walk { path: path.to_path_buf(), source: e.into() };
        // O_NOFOLLOW: a directory swapped for a symlink since we saw it is
        // not entered. Entries are then examined relative to this descriptor.
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        // Reached piece by piece past PATH_MAX: a tree may nest deeper than
        // one system call can name.
        let opened = match &job.parent {
            Some((dir, name)) => rustix::fs::openat(dir.0.as_fd(), OsStr::from_bytes(name), flags, Mode0::empty()),
            None => crate::longpath::at(&job.abs, |dir, name| rustix::fs::openat(dir, name, flags, Mode0::empty())),
        };
        // The parent is not needed once this directory is open.
        let mut job = Job { parent: None, ..job };
        // Carried on by the first subdirectory, or ended here.
        let mut chain = Some(std::mem::take(&mut job.chain));
        let dir_fd = match opened {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR | rustix::io::Errno::LOOP) => {
                end_chain(chain, &job.rel, out);
                return Ok(());
            }
            Err(e) => return Err(walk_err(&job.abs, e)),
        };
        // Passed through: the subdirectories on the way, each still one
        // (else the record missed how it went: the directory is listed).
        let passed = match self.scope.filter(|_| job.pass) {
            Some(scope) => {
                let (_, names) = scope.changed.on_the_way(job.rel.as_bytes());
                let still = |n: &Vec<u8>| {
                    rustix::fs::statat(&dir_fd, n.as_slice(), AtFlags::SYMLINK_NOFOLLOW)
                        .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory)
                };
                names.iter().all(still).then_some(names)
            }
            None => None,
        };
        if self.scope.is_some() {
            let visit = match (job.whole, &passed) {
                (true, _) => Visit::Whole,
                (false, Some(_)) => Visit::Pass,
                (false, None) => Visit::List,
            };
            lock(&self.visited).push((job.rel.clone(), visit));
        }
        let passing = passed.is_some();
        let mut dir = Dir::new(dir_fd).map_err(|e| walk_err(&job.abs, e))?;
        let names = match passed {
            Some(names) => names,
            None => {
                let mut names: Vec<Vec<u8>> = Vec::new();
                while let Some(entry) = dir.read() {
                    let entry = entry.map_err(|e| walk_err(&job.abs, e))?;
                    let name = entry.file_name().to_bytes();
                    if name != b"." && name != b".." {
                        names.push(name.to_vec());
                    }
                }
                names
            }
        };
        let dir_fd = dir.fd().map_err(|e| walk_err(&job.abs, e))?;
        // The previous snapshot's entries below this directory: where the
        // stat cache looks its children up.
        let previous = self.previous.map_or(&[][..], |m| m.below(&job.rel));
        let mut ignores = job.ignores.clone();
        // Held for the subdirectories' jobs, deep down (made on the first).
        let mut here: Option<Option<Arc<Held>>> = None;
        let deep = job.depth >= HOLD_FROM_DEPTH;
        // Passed through, it is not listed: its rules still apply below.
        let has_ignore_file = job.mode == Mode::Normal
            && match passing {
                true => rustix::fs::statat(dir_fd, ".gitignore", AtFlags::SYMLINK_NOFOLLOW).is_ok(),
                false => names.iter().any(|n| n == b".gitignore"),
            };
        if has_ignore_file {
            let (pushed, bad) = self.rules.push(ignores, dir_fd, &job.abs);
            ignores = pushed;
            lock(&self.bad_ignores).extend(bad);
        }
        for name in names {
            if !self.work_prefixes.is_empty() && self.work_prefixes.iter().any(|p| name.starts_with(p)) {
                continue;
            }
            // The full path is only needed for ignore rules, subdirectories and
            // errors: not built for every file of an unchanged tree.
            let abs = || job.abs.join(OsStr::from_bytes(&name));
            let st = match rustix::fs::statat(dir_fd, name.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(rustix::io::Errno::NOENT) => continue,
                Err(e) => return Err(walk_err(&abs(), e)),
            };
            let rel = job.rel.join(&name);
            self.progress.files.fetch_add(1, Ordering::Relaxed);
            let stat = FileStat::from_stat(&st);
            let ft = FileType::from_raw_mode(st.st_mode);
            let is_dir = ft == FileType::Directory;
            if is_dir && self.skip.contains(&(stat.dev, stat.ino)) {
                continue;
            }
            let mut mode = job.mode;
            if job.mode == Mode::Normal {
                if is_dir && name == b".git" {
                    mode = Mode::KeepAll;
                } else if self.rules.is_ignored(ignores.as_ref(), &abs(), is_dir) {
                    // Once excluded, a path stays excluded while it exists: a
                    // session that shrinks `target/` below the budget must not
                    // make it look created, and rollback cannot restore it.
                    let was_excluded = find(previous, &rel).is_some_and(Entry::is_excluded);
                    let over_budget =
                        |files, bytes| EntryKind::Excluded { reason: ExcludeReason::OverBudget, files, bytes };
                    if is_dir {
                        let (files, bytes, fits) = self.measure(&abs());
                        if !fits || was_excluded {
                            out.push(self.entry(rel, over_budget(files, bytes), stat));
                            continue;
                        }
                        mode = Mode::KeepAll;
                    } else if was_excluded || (ft == FileType::RegularFile && !self.budget.admits_file(stat.size)) {
                        out.push(self.entry(rel, over_budget(1, stat.size), stat));
                        continue;
                    }
                }
            }
            match ft {
                FileType::Directory => {
                    let entry = self.entry(rel.clone(), EntryKind::Dir, stat);
                    let visit = match &self.scope {
                        Some(scope) => scope.changed.visit(&rel, job.whole).ok_or(()),
                        None => Ok(Visit::Whole),
                    };
                    match visit {
                        Ok(visit) => {
                            let parent = if deep {
                                here.get_or_insert_with(|| Held::dup(dir_fd)).clone().map(|h| (h, name.clone()))
                            } else {
                                None
                            };
                            let mut carried = chain.take().unwrap_or_default();
                            carried.push((rel.as_bytes().len(), Entry { path: RelPath::root(), ..entry }));
                            local.push(Job {
                                abs: abs(),
                                rel,
                                ignores: ignores.clone(),
                                mode,
                                whole: visit == Visit::Whole,
                                pass: visit == Visit::Pass,
                                parent,
                                chain: carried,
                                depth: job.depth + 1,
                            })
                        }
                        // Nothing below it changed: what the base holds below
                        // it is still there (and stays there, not copied).
                        Err(_) => out.push(entry),
                    }
                }
                FileType::Symlink => {
                    let target = match rustix::fs::readlinkat(dir_fd, name.as_slice(), Vec::new()) {
                        Ok(t) => t.into_bytes(),
                        Err(rustix::io::Errno::NOENT) => continue,
                        Err(e) => return Err(walk_err(&abs(), e)),
                    };
                    out.push(self.entry(rel, EntryKind::Symlink { target }, stat));
                }
                FileType::RegularFile => match self.file_kind(dir_fd, &name, find(previous, &rel), stat) {
                    Ok(Some((kind, stat))) => out.push(self.entry(rel, kind, stat)),
                    Ok(None) => {}
                    Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                        let kind =
                            EntryKind::Excluded { reason: ExcludeReason::Unreadable, files: 1, bytes: stat.size };
                        out.push(self.entry(rel, kind, stat));
                    }
                    Err(source) => return Err(SnapshotError::Store { path: abs(), source }),
                },
                _ => {
                    let kind = EntryKind::Excluded { reason: ExcludeReason::Special, files: 1, bytes: 0 };
                    out.push(self.entry(rel, kind, stat));
                }
            }
        }
        end_chain(chain, &job.rel, out);
        Ok(())
    }

    fn entry(&self, path: RelPath, kind: EntryKind, stat: FileStat) -> Entry {
        let racy = stat.mtime_ns >= self.started_ns || stat.ctime_ns >= self.started_ns;
        Entry { path, kind, stat, racy }
    }

    /// The object for a regular file: the previous snapshot's if the stat
    /// cache vouches for it (`previous`: its entry there), else a fresh clone
    /// or copy. `None` when the file vanished meanwhile.
    fn file_kind(
        &self,
        dir_fd: BorrowedFd<'_>,
        name: &[u8],
        previous: Option<&Entry>,
        stat: FileStat,
    ) -> io::Result<Option<(EntryKind, FileStat)>> {
        if let Some(prev) = previous
            && let EntryKind::File { object, hash } = &prev.kind
            && !prev.racy
            && prev.stat.unchanged(&stat)
            && (!self.verify_cache || self.store.object_path(object).exists())
        {
            return Ok(Some((EntryKind::File { object: *object, hash: *hash }, stat)));
        }
        let linked = stat.nlink > 1;
        if linked && let Some((object, hash)) = lock(&self.links).get(&(stat.dev, stat.ino)).cloned() {
            return Ok(Some((EntryKind::File { object, hash }, stat)));
        }
        // O_NOFOLLOW: the name was a regular file at lstat; if it is swapped for
        // a symlink now, refuse rather than copy whatever it points to.
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY;
        let src = match rustix::fs::openat(dir_fd, name, flags, Mode0::empty()) {
            Ok(fd) => File::from(fd),
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if !self.store_content {
            return self.file_kind_unstored(&src, previous, stat).map(Some);
        }
        // A file being written while we copy it: copy again until its stat
        // data holds still across the copy, so the object is never torn.
        let mut stat = stat;
        for attempt in 0.. {
            let object = self.store.put_object(&src, stat.size)?;
            lock(&self.created).push(object);
            let hash = None;
            self.progress.stored_files.fetch_add(1, Ordering::Relaxed);
            self.progress.stored_bytes.fetch_add(stat.size, Ordering::Relaxed);
            let after = FileStat::from_metadata(&src.metadata()?);
            if after == stat || attempt == 3 {
                // After 3 tries the entry keeps the older stat data, so the
                // next comparison sees a change and looks at the content again.
                if linked {
                    lock(&self.links).insert((stat.dev, stat.ino), (object, hash));
                }
                return Ok(Some((EntryKind::File { object, hash }, stat)));
            }
            stat = after;
        }
        unreachable!()
    }

    /// [`Walk::file_kind`] without writing: the previous object if the
    /// content is still its content, else "changed, not stored".
    fn file_kind_unstored(
        &self,
        src: &File,
        previous: Option<&Entry>,
        stat: FileStat,
    ) -> io::Result<(EntryKind, FileStat)> {
        if let Some(prev) = previous
            && let EntryKind::File { object, hash } = &prev.kind
            && prev.stat.size == stat.size
        {
            let mut prev = prev.clone();
            let then = crate::changes::object_hash(self.store, &mut prev).map_err(io::Error::other)?;
            if crate::copy::hash_file(src, stat.size)? == then {
                return Ok((EntryKind::File { object: *object, hash: hash.or(Some(then)) }, stat));
            }
        }
        Ok((EntryKind::Excluded { reason: ExcludeReason::NoSpace, files: 1, bytes: stat.size }, stat))
    }

    /// Counts an ignored directory until it exceeds the budget.
    /// Returns (files, bytes, fits).
    fn measure(&self, dir: &Path) -> (u64, u64, bool) {
        let (mut files, mut bytes) = (0u64, 0u64);
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in rd.flatten() {
                let Ok(m) = e.metadata() else { continue };
                files += 1;
                if m.is_dir() {
                    stack.push(e.path());
                } else if m.is_file() {
                    bytes += m.size();
                }
                if !self.budget.admits_dir(files, bytes) {
                    return (files, bytes, false);
                }
            }
        }
        (files, bytes, true)
    }
}

#[cfg(test)]
mod tests {
    use crate::snapshot::{SnapshotOptions, take_snapshot};
    use crate::{Budget, EntryKind, RelPath, Store};

    fn snap(store: &Store, root: &std::path::Path, previous: Option<&crate::Manifest>) -> crate::Manifest {
        let opts = SnapshotOptions {
            workspace: root,
            budget: Budget::default(),
            exclude_files: vec![],
            previous,
            progress: None,
            scope: None,
        };
        take_snapshot(store, &opts).unwrap().taken.into_whole().expect("no scope")
    }

    fn object(m: &crate::Manifest, p: &str) -> crate::ObjectId {
        match &m.get(&RelPath::from_bytes(p.as_bytes()).unwrap()).unwrap().kind {
            EntryKind::File { object, .. } => *object,
            k => panic!("{p} is {k:?}"),
        }
    }

    /// The stat cache must not vouch for an entry marked racy, even when its
    /// stat data is identical (a same-size rewrite within one clock tick).
    #[test]
    fn racy_entries_are_never_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let (root, store_dir) = (dir.path().join("ws"), dir.path().join("store"));
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("f"), "AAAA").unwrap();
        let store = Store::open_or_create(&store_dir, &root).unwrap();
        let mut first = snap(&store, &root, None);
        for e in &mut first.entries {
            e.racy = false;
        }
        // Trusted: an unchanged file reuses the object without reading.
        let trusted = snap(&store, &root, Some(&first));
        assert_eq!(object(&trusted, "f"), object(&first, "f"));
        // Same stat data, but flagged racy: the content is read again. Point the
        // cached entry at bogus content to prove the cache was not used.
        let mut forged = first.clone();
        std::fs::write(root.join("g"), "BBBB").unwrap();
        let bogus = store.put_object(&std::fs::File::open(root.join("g")).unwrap(), 4).unwrap();
        for e in &mut forged.entries {
            if e.path.as_bytes() == b"f" {
                e.kind = EntryKind::File { object: bogus, hash: None };
                e.racy = true;
            }
        }
        let again = snap(&store, &root, Some(&forged));
        assert_ne!(object(&again, "f"), bogus, "a racy cache entry was trusted");
        // And a non-racy forged entry *is* trusted (so the test above can fail).
        for e in &mut forged.entries {
            e.racy = false;
        }
        let trusting = snap(&store, &root, Some(&forged));
        assert_eq!(object(&trusting, "f"), bogus);
    }

    #[test]
    fn entries_older_than_the_walk_are_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let (root, store_dir) = (dir.path().join("ws"), dir.path().join("store"));
        std::fs::create_dir(&root).unwrap();
        let store = Store::open_or_create(&store_dir, &root).unwrap();
        std::fs::write(root.join("old"), "x").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(30));
        let m = snap(&store, &root, None);
        let old = m.get(&RelPath::from_bytes(b"old").unwrap()).unwrap();
        assert!(!old.racy, "a file older than the walk was marked racy");
        assert!(old.stat.mtime_ns < m.started_ns);
    }

    /// An agent cannot hide a file by naming it like ws's work files: only
    /// names carrying the token of a rollback under way are left out.
    #[test]
    fn ws_tmp_names_without_a_live_work_token_are_snapshotted() {
        let dir = tempfile::tempdir().unwrap();
        let (root, store_dir) = (dir.path().join("ws"), dir.path().join("store"));
        std::fs::create_dir_all(root.join(".ws-tmp-dir")).unwrap();
        std::fs::write(root.join(".ws-tmp-1-2-3"), "hidden?").unwrap();
        std::fs::write(root.join(".ws-tmp-dir/inside"), "hidden?").unwrap();
        let store = Store::open_or_create(&store_dir, &root).unwrap();
        let token = store.begin_work().unwrap();
        let ours = format!(".ws-tmp-{token}-1-2-3");
        std::fs::write(root.join(&ours), "work file").unwrap();
        // A forged token: right shape, not registered.
        let forged = format!(".ws-tmp-{}-1-2-3", "0".repeat(32));
        std::fs::write(root.join(&forged), "hidden?").unwrap();
        let m = snap(&store, &root, None);
        let has = |p: &str| m.get(&RelPath::from_bytes(p.as_bytes()).unwrap()).is_some();
        assert!(has(".ws-tmp-1-2-3") && has(".ws-tmp-dir/inside") && has(&forged));
        assert!(!has(&ours), "a live rollback's work file was snapshotted");
        // Once the rollback is over, its names are ordinary names.
        store.end_work(&token).unwrap();
        let m = snap(&store, &root, None);
        assert!(m.get(&RelPath::from_bytes(ours.as_bytes()).unwrap()).is_some());
    }

    /// The description of a workspace on a full disk: what the stat cache or
    /// the content vouches for keeps its object, anything else is listed as
    /// not stored, and nothing is written to the store.
    #[test]
    fn an_unstored_walk_writes_nothing_and_marks_what_changed() {
        let dir = tempfile::tempdir().unwrap();
        let (root, store_dir) = (dir.path().join("ws"), dir.path().join("store"));
        std::fs::create_dir(&root).unwrap();
        for f in ["same", "touched", "changed"] {
            std::fs::write(root.join(f), f).unwrap();
        }
        let store = Store::open_or_create(&store_dir, &root).unwrap();
        let first = snap(&store, &root, None);
        let objects = || {
            std::fs::read_dir(store_dir.join("objects"))
                .unwrap()
                .flatten()
                .map(|d| std::fs::read_dir(d.path()).map_or(0, |r| r.count()))
                .sum::<usize>()
        };
        let stored = objects();
        std::fs::write(root.join("touched"), "touched").unwrap(); // same bytes, new mtime
        std::fs::write(root.join("changed"), "CHANGED").unwrap();
        std::fs::write(root.join("new"), "new").unwrap();
        let opts = SnapshotOptions {
            workspace: &root,
            budget: Budget::default(),
            exclude_files: vec![],
            previous: Some(&first),
            progress: None,
            scope: None,
        };
        let (m, _) = crate::walk_unstored(&store, &opts).unwrap();
        assert_eq!(objects(), stored, "the unstored walk wrote objects");
        assert!(m.id.is_none());
        let kind = |p: &str| m.get(&RelPath::from_bytes(p.as_bytes()).unwrap()).unwrap().kind.clone();
        assert_eq!(object(&m, "same"), object(&first, "same"));
        assert_eq!(object(&m, "touched"), object(&first, "touched"));
        for p in ["changed", "new"] {
            assert!(
                matches!(kind(p), EntryKind::Excluded { reason: crate::ExcludeReason::NoSpace, .. }),
                "{p}: {:?}",
                kind(p)
            );
        }
    }
}
