//! Finding the workspace and its store, and the steps every command shares.

use std::path::{Component, Path, PathBuf};
use std::sync::{OnceLock, mpsc};
use std::time::Duration;

use ws_snapshot::{
    AfterFrom, Budget, Change, Manifest, ManifestId, Progress, RelPath, Session, SessionState, SnapshotOptions,
    SnapshotOutcome, Store, StoreLock, Stored,
};

use crate::{Error, ErrorKind, Event, Options, display};

#[derive(Debug)]
pub struct Workspace {
    pub root: PathBuf,
    /// The git directory when the workspace is a repository.
    pub git_dir: Option<PathBuf>,
    pub store: Store,
    pub same_filesystem: bool,
    /// What the workspace was opened with: where things are, and who is told.
    pub options: Options,
    excludes: OnceLock<Vec<PathBuf>>,
}

/// The git top-level above `cwd`; else the nearest directory above it that
/// already has a store (so `ws diff` works from a subdirectory); else `cwd`.
fn find_root(cwd: &Path, store_parent: &Path, uid: u32) -> (PathBuf, Option<PathBuf>) {
    for dir in cwd.ancestors() {
        let dot_git = dir.join(".git");
        if dot_git.is_dir() {
            return (dir.to_path_buf(), Some(dot_git));
        }
        if dot_git.is_file() {
            // A worktree or submodule: `.git` names the real git directory.
            // Read as the hook reads what an agent may have written: a
            // regular file, no symlink followed, a few KiB at most.
            let gitdir = ws_hooks::safe::read_bounded(&dot_git, 4096)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.lines().find_map(|l| l.strip_prefix("gitdir: ").map(|p| dir.join(p.trim()))));
            return (dir.to_path_buf(), gitdir);
        }
    }
    let known = cwd.ancestors().find(|d| ws_snapshot::existing_store_dir(d, store_parent, uid).is_some());
    (known.unwrap_or(cwd).to_path_buf(), None)
}

impl Workspace {
    /// The workspace around the current directory ([`Workspace::open`]).
    pub fn discover(options: Options) -> Result<Workspace, Error> {
        let cwd = std::env::current_dir()
            .map_err(|e| Error::failure(format!("cannot determine the current directory: {e}")))?;
        Workspace::open(&cwd, options)
    }

    /// The workspace around `dir`: the git top-level above it; else the
    /// nearest directory above it that already has a store; else `dir`.
    /// Creates its store if it has none.
    pub fn open(dir: &Path, options: Options) -> Result<Workspace, Error> {
        let cwd = fs_err::canonicalize(dir).map_err(Error::from)?;
        let parent = options.store_parent.clone().ok_or_else(|| {
            Error::new(
                ErrorKind::NotAWorkspace,
                "cannot tell where to keep snapshots: neither HOME nor WS_STORE_DIR is set",
            )
            .hint("set WS_STORE_DIR to a directory you own")
        })?;
        let uid = rustix::process::getuid().as_raw();
        let (root, git_dir) = find_root(&cwd, &parent, uid);
        if root == Path::new("/") {
            return Err(Error::new(ErrorKind::NotAWorkspace, "refusing to use / as a workspace")
                .hint("cd into the project you want the agent to work on"));
        }
        if rustix::fs::access(&root, rustix::fs::Access::WRITE_OK).is_err() {
            return Err(Error::new(
                ErrorKind::NotAWorkspace,
                format!("the workspace {} is not writable by you", root.display()),
            )
            .hint("ws protects a workspace you work in: cd into your project first"));
        }
        let placement = ws_snapshot::choose_store_dir(&root, &parent, uid);
        let store = Store::open_or_create(&placement.dir, &root).map_err(|e| {
            Error::from(e)
                .hint(format!("set WS_STORE_DIR to a writable directory on the same filesystem as {}", root.display()))
        })?;
        Ok(Workspace {
            root,
            git_dir,
            store,
            same_filesystem: placement.same_filesystem,
            options,
            excludes: OnceLock::new(),
        })
    }

    /// The workspace around `dir` if it already has a store; creates
    /// nothing (shell completion asks at every Tab, anywhere).
    pub fn existing(dir: &Path, options: Options) -> Option<Workspace> {
        let cwd = fs_err::canonicalize(dir).ok()?;
        let parent = options.store_parent.clone()?;
        let uid = rustix::process::getuid().as_raw();
        let (root, git_dir) = find_root(&cwd, &parent, uid);
        let dir = ws_snapshot::existing_store_dir(&root, &parent, uid)?;
        let dev = |p: &Path| std::fs::metadata(p).ok().map(|m| std::os::unix::fs::MetadataExt::dev(&m));
        let same_filesystem = dev(&dir) == dev(&root);
        let store = Store::open_or_create(&dir, &root).ok()?;
        Some(Workspace { root, git_dir, store, same_filesystem, options, excludes: OnceLock::new() })
    }

    /// Tells the workspace's observer.
    pub fn note(&self, msg: &str) {
        self.options.note(msg);
    }

    pub fn warn(&self, msg: &str) {
        self.options.warn(msg);
    }

    pub fn lock(&self) -> Result<StoreLock, Error> {
        Ok(self.store.lock()?)
    }

    /// Exclude files beyond `.gitignore`s; asks git once per process.
    pub fn exclude_files(&self) -> &[PathBuf] {
        self.excludes.get_or_init(|| {
            let mut v = Vec::new();
            if let Some(g) = &self.git_dir {
                v.push(g.join("info/exclude"));
            }
            v.extend(global_excludes_file(self.git_dir.as_deref(), &self.options));
            v
        })
    }

    fn snapshot_options<'a>(&'a self, previous: Option<&'a Manifest>, progress: &'a Progress) -> SnapshotOptions<'a> {
        SnapshotOptions {
            workspace: &self.root,
            budget: Budget::default(),
            exclude_files: self.exclude_files().to_vec(),
            previous,
            progress: Some(progress),
            scope: None,
        }
    }

    /// Takes a snapshot, showing progress on stderr when it takes a while.
    fn try_snapshot(
        &self,
        previous: Option<&Manifest>,
        what: &str,
    ) -> Result<SnapshotOutcome, ws_snapshot::SnapshotError> {
        self.try_snapshot_in(previous, None, what)
    }

    /// [`Workspace::try_snapshot`], looking only where `scope` says.
    fn try_snapshot_in(
        &self,
        previous: Option<&Manifest>,
        scope: Option<ws_snapshot::Scope<'_>>,
        what: &str,
    ) -> Result<SnapshotOutcome, ws_snapshot::SnapshotError> {
        let progress = Progress::default();
        let mut opts = self.snapshot_options(previous, &progress);
        opts.scope = scope;
        let (done, finished) = mpsc::channel::<()>();
        let outcome = std::thread::scope(|s| {
            let shown = &progress;
            let obs = &*self.options.observer;
            s.spawn(move || show_progress(shown, &finished, what, obs));
            let r = ws_snapshot::take_snapshot(&self.store, &opts);
            drop(done);
            r
        })?;
        if !self.same_filesystem && outcome.stored_files > 0 {
            self.notice_copy_once();
        }
        for bad in &outcome.bad_ignore_files {
            self.warn(&display::text(bad.to_string().as_bytes()));
        }
        Ok(outcome)
    }

    fn notice_copy_once(&self) {
        let marker = self.store.root().join("copy-notice");
        if !marker.exists() {
            self.note(&format!(
                "the snapshot store {} is on another filesystem than the workspace, so files are copied, not cloned \
                 (set WS_STORE_DIR to a directory on the workspace's filesystem to clone)",
                self.store.root().display()
            ));
            let _ = std::fs::write(marker, b"");
        }
    }

    /// The latest manifest as a session reads it: through its index.
    pub fn latest_stored(&self) -> Option<Stored> {
        self.store.latest().and_then(|id| Stored::open(&self.store, &id).ok())
    }

    /// Loads a session's change set. A session whose supervisor died is
    /// finished here: its after-snapshot is taken now.
    pub fn session_changes(&self, session: &mut Session) -> Result<Vec<Change>, Error> {
        if session.orphaned() {
            self.note(&format!(
                "session {} was interrupted (its supervisor, pid {}, is gone); taking its after-snapshot now",
                session.id, session.supervisor_pid
            ));
            session.recording = Some(crate::recording::close_orphaned(&self.store, session));
            let why = "the session's supervisor died before it ended".to_string();
            let mut changes = self.finish_session(session, None, None, Err(why), None)?;
            crate::git_guard::after_orphan(self, session, &mut changes);
            return Ok(changes);
        }
        if session.state == SessionState::Running {
            return Err(Error::usage(format!("session {} is still running", session.id))
                .hint("review it after its command exits"));
        }
        Ok(self.store.load_changes(&session.id)?)
    }

    /// Takes the after-snapshot and records the change set.
    pub fn finish_session(
        &self,
        session: &mut Session,
        before: Option<Stored>,
        exit: Option<ws_snapshot::ExitStatus>,
        evidence: Result<crate::after::Evidence, String>,
        excludes: Option<&crate::after::Excludes>,
    ) -> Result<Vec<Change>, Error> {
        let before = match before {
            Some(m) => m,
            None => Stored::open(&self.store, &ManifestId(session.before.clone()))?,
        };
        let started = std::time::Instant::now();
        // The newest manifest is the better stat cache: where sessions share
        // the workspace, it knows the files the others wrote meanwhile, which
        // `before` does not (each would be read and stored again).
        let latest =
            self.store.latest().filter(|id| before.id() != Some(id)).and_then(|id| self.store.manifest(&id).ok());
        let plan = crate::after::plan(&self.root, &before, evidence, excludes);
        session.after_from = Some(match &plan {
            Ok(changed) => AfterFrom::Record { paths: changed.len() as u64 },
            Err(reason) => AfterFrom::Walk { reason: reason.clone() },
        });
        let taken = self.after_snapshot(&before, latest.as_ref(), &plan);
        let (after_id, after, region) = match taken {
            Ok(after) => (Some(after.id), after.taken, after.region),
            // A full disk must not leave the session unreviewable: the
            // workspace is described without storing, every changed path is
            // listed, and rollback can put each back from the before-snapshot.
            Err(e) if e.is_no_space() => {
                self.warn(&format!(
                    "the disk of the snapshot store {} is full: the after-snapshot of session {} cannot keep the \
                     session's new content. `ws diff` lists every path it changed (its new content: not stored) \
                     and `ws rollback` puts them back; `ws approve` keeps them",
                    self.store.root().display(),
                    session.id
                ));
                let progress = Progress::default();
                let whole = before.whole().map_err(ws_snapshot::StoreError::from)?;
                let previous = latest.as_ref().unwrap_or(&whole);
                let (m, _) =
                    ws_snapshot::walk_unstored(&self.store, &self.snapshot_options(Some(previous), &progress))?;
                session.after_from = Some(AfterFrom::Walk { reason: "the snapshot store's disk is full".into() });
                (None, ws_snapshot::Taken::Whole(m), None)
            }
            Err(e) => return Err(e.into()),
        };
        session.after_snapshot_ms = Some(started.elapsed().as_millis() as u64);
        let mut changes = match (after, region) {
            // The workspace is as `before` where the record says to look.
            (ws_snapshot::Taken::Base, _) => Vec::new(),
            // Where the record said to look: the rest is `before`'s.
            (_, Some((was, now))) => {
                let side = |entries| Manifest { entries, ..Manifest::default() };
                ws_snapshot::compute_changes(&self.store, &side(was), &side(now))?
            }
            (taken, None) => {
                let whole = before.whole().map_err(ws_snapshot::StoreError::from)?;
                let after = match taken {
                    ws_snapshot::Taken::Whole(m) => m,
                    _ => self.store.manifest(after_id.as_ref().unwrap_or_else(|| unreachable!("a layer is stored")))?,
                };
                ws_snapshot::compute_changes(&self.store, &whole, &after)?
            }
        };
        // Renames are found once, here, so that every review command pairs
        // the same paths. Failing to find them loses nothing: each half
        // stays a change of its own.
        match ws_snapshot::find_renames(&self.store, &mut changes, &ws_snapshot::RenameOptions::default()) {
            Ok(p) if p.similarity_skipped => self.note(
                "too many files created and deleted to compare them all: only identical ones are shown as renames",
            ),
            Ok(_) => {}
            Err(e) => self.warn(&format!("renames not detected: {}", crate::chain(&e))),
        }
        for link in ws_snapshot::outside_links(before.linked(), &changes, |_| true) {
            self.warn(&display::text(link.to_string().as_bytes()));
        }
        self.store.save_changes(&session.id, &changes)?;
        session.after = after_id.map(|id| id.0);
        session.ended_ms = Some(crate::now_ms());
        session.exit = exit;
        session.state = SessionState::Pending;
        self.store.save_session(session)?;
        self.store.settle(session, &changes)?;
        Ok(changes)
    }

    /// `WS_AFTER_SNAPSHOT=check`, `WS_WATCH=check`: takes a full walk after
    /// the snapshot `what` took from `source` (the record, the watch) and
    /// compares them; any difference is reported and the walk's snapshot is
    /// the one kept.
    fn check(
        &self,
        fast: &Manifest,
        previous: &Manifest,
        what: &str,
        source: &str,
    ) -> Result<SnapshotOutcome, ws_snapshot::SnapshotError> {
        let full = self.try_snapshot(Some(previous), &format!("{what} check"))?;
        let ws_snapshot::Taken::Whole(walked) = &full.taken else {
            unreachable!("a snapshot without a scope has its own manifest")
        };
        match ws_snapshot::differences(&self.store, fast, walked, 10) {
            Ok(d) if d.is_empty() => self.note(&format!(
                "{what} check: the snapshot from {source} equals a full walk ({} entries)",
                walked.entries.len()
            )),
            Ok(d) => self.warn(&format!(
                "{what} check FAILED: the snapshot from {source} differs from a full walk: {}",
                display::text(d.join("; ").as_bytes())
            )),
            Err(e) => self.warn(&format!("{what} check: cannot compare: {e}")),
        }
        Ok(full)
    }

    /// The after-snapshot of a session whose before-snapshot is `before`:
    /// looking only where the record says (`plan`) when it can vouch, read
    /// through the before-snapshot's index, unless `latest` (another
    /// session's newer snapshot) is the better stat cache: then both are
    /// read whole.
    fn after_snapshot(
        &self,
        before: &Stored,
        latest: Option<&Manifest>,
        plan: &Result<ws_snapshot::ChangedPaths, String>,
    ) -> Result<SnapshotOutcome, ws_snapshot::SnapshotError> {
        let check = self.options.after_snapshot == crate::after::Mode::Check;
        let taken = match (plan, latest) {
            (Ok(changed), None) => self.scoped_snapshot(before, changed, "after-snapshot")?,
            (plan, latest) => {
                let whole = before.whole().map_err(ws_snapshot::StoreError::from)?;
                let scope =
                    plan.as_ref().ok().map(|changed| ws_snapshot::Scope { base: &whole, changed, stored: None });
                self.try_snapshot_in(Some(latest.unwrap_or(&whole)), scope, "after-snapshot")?
            }
        };
        if plan.is_ok() && check {
            let whole = before.whole().map_err(ws_snapshot::StoreError::from)?;
            let fast = self.held(&taken, &whole)?;
            return self.check(&fast, latest.unwrap_or(&whole), "after-snapshot", "the record");
        }
        Ok(taken)
    }

    /// What `taken` took, whole (`base`: its scope's base).
    fn held<'a>(
        &self,
        taken: &'a SnapshotOutcome,
        base: &'a Manifest,
    ) -> Result<std::borrow::Cow<'a, Manifest>, ws_snapshot::StoreError> {
        Ok(match &taken.taken {
            ws_snapshot::Taken::Base => std::borrow::Cow::Borrowed(base),
            ws_snapshot::Taken::Whole(m) => std::borrow::Cow::Borrowed(m),
            ws_snapshot::Taken::Layered => std::borrow::Cow::Owned(self.store.manifest(&taken.id)?),
        })
    }

    /// A snapshot looking only where `changed` says, against `base` (the
    /// stat cache too), read through its index.
    fn scoped_snapshot(
        &self,
        base: &Stored,
        changed: &ws_snapshot::ChangedPaths,
        what: &str,
    ) -> Result<SnapshotOutcome, ws_snapshot::SnapshotError> {
        let partial = base.partial(changed).map_err(ws_snapshot::StoreError::from)?;
        let stored = matches!(partial, std::borrow::Cow::Owned(_)).then_some(base);
        let scope = ws_snapshot::Scope { base: &partial, changed, stored };
        self.try_snapshot_in(Some(&partial), Some(scope), what)
    }

    /// The before-snapshot: looking only where the watch saw changes when it
    /// can vouch for them ([`crate::watch`]), else the whole workspace. An
    /// unchanged workspace's is `previous` itself, its id the same.
    pub fn before_snapshot(
        &self,
        previous: Option<Stored>,
        watched: &crate::watch::Before,
    ) -> Result<(ManifestId, Stored), Error> {
        let check = self.options.watch == crate::watch::Mode::Check;
        let taken = match (&watched.plan, &previous) {
            (Ok(changed), Some(stored)) => {
                let taken = self.scoped_snapshot(stored, changed, "snapshot")?;
                if check {
                    let whole = stored.whole().map_err(ws_snapshot::StoreError::from)?;
                    let fast = self.held(&taken, &whole)?;
                    self.check(&fast, &whole, "before-snapshot", "the watch")?
                } else {
                    taken
                }
            }
            _ => {
                let whole = previous.as_ref().map(Stored::whole).transpose().map_err(ws_snapshot::StoreError::from)?;
                self.try_snapshot_in(whole.as_deref(), None, "snapshot")?
            }
        };
        match (taken.taken, previous) {
            (ws_snapshot::Taken::Whole(m), _) => Ok((taken.id, Stored::Whole(m))),
            (ws_snapshot::Taken::Layered, _) => Ok((taken.id.clone(), Stored::open(&self.store, &taken.id)?)),
            (ws_snapshot::Taken::Base, Some(base)) => Ok((taken.id, base)),
            (ws_snapshot::Taken::Base, None) => unreachable!("a snapshot without a base has its own manifest"),
        }
    }

    /// Turns user paths (relative to the current directory) into workspace paths.
    pub fn rel_paths(&self, paths: &[PathBuf]) -> Result<Vec<RelPath>, Error> {
        let cwd = std::env::current_dir()?;
        let cwd = fs_err::canonicalize(&cwd).unwrap_or(cwd);
        paths
            .iter()
            .map(|p| {
                let abs = normalize(&cwd.join(p));
                RelPath::from_path_under(&self.root, &abs).ok_or_else(|| {
                    Error::usage(format!("{} is outside the workspace {}", p.display(), self.root.display()))
                })
            })
            .collect()
    }
}

/// Resolves `.` and `..` without touching the filesystem (the path may have
/// been deleted by the session).
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

/// `core.excludesFile` from the user's git configuration, else git's default.
/// Asking git costs a process; when no configuration file mentions the key,
/// git's default is the answer and git is not asked.
///
/// A config file is read only if it is a regular file (a FIFO planted as
/// `.git/config` must not block ws), and at most 1 MiB of it. Symlinks are
/// followed: `~/.gitconfig` often is one.
fn read_config(path: &Path) -> Option<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file =
        std::fs::File::options().read(true).custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32).open(path).ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut out = Vec::new();
    file.take(1 << 20).read_to_end(&mut out).ok()?;
    Some(out)
}

fn global_excludes_file(git_dir: Option<&Path>, options: &Options) -> Option<PathBuf> {
    let mut configs: Vec<PathBuf> = Vec::new();
    configs.extend(options.home.as_ref().map(|h| h.join(".gitconfig")));
    configs.extend(options.config_home.as_ref().map(|d| d.join("git/config")));
    configs.extend(git_dir.map(|g| g.join("config")));
    configs.push(PathBuf::from("/etc/gitconfig"));
    let mentioned = configs.iter().any(|c| {
        read_config(c).is_some_and(|t| {
            let t = String::from_utf8_lossy(&t).to_ascii_lowercase();
            t.contains("excludesfile") || t.contains("[include") || t.contains("[includeif")
        })
    });
    if !mentioned {
        return options.default_global_excludes.clone();
    }
    let mut cmd = std::process::Command::new("git");
    if let Some(g) = git_dir {
        cmd.arg("--git-dir").arg(g);
    }
    cmd.args(["config", "--path", "--get", "core.excludesFile"]);
    let configured = cmd
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| PathBuf::from(s.trim_end_matches('\n')))
        .filter(|p| p.is_absolute());
    configured.or_else(|| options.default_global_excludes.clone())
}

/// Tells `observer` how the snapshot is going, every 200 ms once it has
/// taken a second.
fn show_progress(progress: &Progress, finished: &mpsc::Receiver<()>, what: &str, observer: &dyn crate::Observer) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut wait = Duration::from_secs(1);
    let mut shown = false;
    // The sender is dropped when the snapshot ends: that wakes us at once.
    while let Err(mpsc::RecvTimeoutError::Timeout) = finished.recv_timeout(wait) {
        wait = Duration::from_millis(200);
        observer.event(&Event::Progress {
            what,
            scanned: progress.files.load(Relaxed),
            stored_files: progress.stored_files.load(Relaxed),
            stored_bytes: progress.stored_bytes.load(Relaxed),
        });
        shown = true;
    }
    if shown {
        observer.event(&Event::ProgressEnd { what });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_is_read_only_if_it_is_a_regular_file_and_only_so_much() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("config");
        rustix::fs::mknodat(rustix::fs::CWD, &fifo, rustix::fs::FileType::Fifo, rustix::fs::Mode::from(0o600), 0)
            .unwrap();
        let started = std::time::Instant::now();
        assert_eq!(read_config(&fifo), None, "a FIFO is not read (nor waited on)");
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; (1 << 20) + 10]).unwrap();
        assert_eq!(read_config(&big).map(|b| b.len()), Some(1 << 20));
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&big, &link).unwrap();
        assert!(read_config(&link).is_some(), "symlinks are followed (~/.gitconfig often is one)");
    }
}
