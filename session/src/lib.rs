//! The `ws` session lifecycle as a library: find a workspace, snapshot it,
//! run a command in its sandbox with its recorders, take the after-snapshot,
//! and review what changed (diff, approve, roll back, the audit log).
//!
//! The `ws` CLI is one program built on it; an agent framework can be
//! another. The library never prints and never reads the environment: what
//! it would say goes to an [`Observer`] as [`Event`]s, and what `ws` reads
//! from `WS_*`, `HOME`, `TMPDIR`… comes in [`Options`]. Failures are
//! [`Error`]s with an [`ErrorKind`], the message and a hint naming the fix.
//!
//! # Helper processes
//!
//! A session's sandbox is set up by re-executing a program as a helper
//! (`PROGRAM __sandbox-exec SPEC -- CMD…`, and the recorder's entry points).
//! That program is [`Options::helper`]; when it is `None`, the running
//! program itself, which must then call [`helpers::dispatch`] first thing
//! in `main`:
//!
//! ```no_run
//! // First thing in `main`: returns at once unless this process is one of
//! // the session's helpers, which it runs and exits.
//! ws_session::helpers::dispatch(&ws_session::Quiet);
//! ```
//!
//! A program that cannot (a Python interpreter, a test harness) names an
//! installed `ws` as its helper: `Options { helper: Some("/usr/bin/ws".into()), .. }`.
//!
//! # Embedding
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use ws_session::{Event, Observer, Options, Run, Workspace};
//!
//! struct CountRecords(AtomicUsize);
//! impl Observer for CountRecords {
//!     fn event(&self, e: &Event<'_>) {
//!         if let Event::Record { .. } = e {
//!             self.0.fetch_add(1, Ordering::Relaxed);
//!         }
//!     }
//! }
//!
//! # fn main() -> Result<(), ws_session::Error> {
//! ws_session::helpers::dispatch(&ws_session::Quiet);
//! let records = Arc::new(CountRecords(AtomicUsize::new(0)));
//! let options = Options { observer: records.clone(), ..Options::from_home("/home/me".into()) };
//! let ws = Workspace::open("/home/me/project".as_ref(), options)?;
//! let ran = ws_session::run_session(ws, Run::new(&["true".into()]))?;
//! println!("exit {}, {} records", ran.code, records.0.load(Ordering::Relaxed));
//! let mut review = ws_session::review::Review::open(&ran.ws, Some(&ran.session.id))?;
//! println!("{} changes", review.changes.len());
//! let rolled = review.rollback(&ran.ws, &[], false)?;
//! if let Some(conflict) = rolled.conflict_error() {
//!     return Err(conflict);
//! }
//! # Ok(()) }
//! ```

pub mod after;
pub mod display;
mod error;
pub mod export;
pub mod gc;
pub mod git_guard;
pub mod helpers;
pub mod learn;
pub mod log;
pub mod network;
mod observer;
pub mod patch;
pub mod profiles;
pub mod recording;
pub mod review;
mod run;
mod sandbox;
pub mod service;
pub mod watch;
pub mod workspace;

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

pub use error::{Error, ErrorKind, chain, disk_full};
pub use observer::{Event, Observer, Quiet};
pub use run::{Counts, NOT_STARTED, Ran, Run, check_runnable, counts, git_internal, pending_or_newest, run_session};
pub use workspace::Workspace;

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Where things are and how to behave: what the `ws` CLI reads from the
/// environment (`HOME`, `TMPDIR`, `XDG_*`, `WS_*`), given by the program.
#[derive(Clone)]
pub struct Options {
    /// Where workspace stores go unless a workspace's filesystem needs its
    /// own (`WS_STORE_DIR`, else `$XDG_DATA_HOME/ws/stores`, else
    /// `~/.local/share/ws/stores`). `None`: no workspace can be opened.
    pub store_parent: Option<PathBuf>,
    /// The user's home (`$HOME` in profiles; `~/.gitconfig`).
    pub home: Option<PathBuf>,
    /// The temporary directory the sandbox may write to (`$TMPDIR` in profiles).
    pub tmpdir: Option<PathBuf>,
    /// git's configuration directory (`$XDG_CONFIG_HOME`, else `~/.config`).
    pub config_home: Option<PathBuf>,
    /// git's global excludes file when `core.excludesFile` is unset.
    pub default_global_excludes: Option<PathBuf>,
    /// The user's profiles (`~/.config/ws/profiles`).
    pub profile_dir: Option<PathBuf>,
    /// How after-snapshots are taken (`WS_AFTER_SNAPSHOT`).
    pub after_snapshot: after::Mode,
    /// How before-snapshots are taken (`WS_WATCH`): from the watch
    /// between sessions when it can vouch for what changed.
    pub watch: watch::Mode,
    /// Where the watch listens (`WS_WATCH_DIR`, else [`watch::DEFAULT_DIR`]).
    pub watch_dir: PathBuf,
    /// The recorder service's socket (`WS_RECORDER_SOCKET`), for sessions
    /// of users who are not root.
    pub recorder_socket: PathBuf,
    /// The program the sandbox re-executes as its helper (see the crate
    /// docs); `None`: this program, which calls [`helpers::dispatch`].
    pub helper: Option<PathBuf>,
    /// The user the session's command runs as when this process is root
    /// acting for someone (`sudo ws`, `--user`).
    pub run_as: Option<ws_sandbox::privilege::User>,
    /// Told of everything that happens.
    pub observer: Arc<dyn Observer>,
    /// Where credential routes' secrets come from (the secret store, the
    /// variables `env:VAR` names); `None`: a route naming a stored secret
    /// is refused and `env:` finds nothing, `file:` and `cmd:` still work.
    pub secrets: Option<Arc<dyn Secrets>>,
}

impl Options {
    /// Options for a user whose home is `home`, with `ws`'s defaults for
    /// the rest (no `TMPDIR`, nothing from the environment).
    pub fn from_home(home: PathBuf) -> Options {
        Options {
            store_parent: Some(home.join(".local/share/ws/stores")),
            config_home: Some(home.join(".config")),
            default_global_excludes: Some(home.join(".config/git/ignore")),
            profile_dir: Some(home.join(".config/ws/profiles")),
            home: Some(home),
            tmpdir: None,
            after_snapshot: after::Mode::Auto,
            watch: watch::Mode::Auto,
            watch_dir: PathBuf::from(watch::DEFAULT_DIR),
            recorder_socket: PathBuf::from(service::DEFAULT_SOCKET),
            helper: None,
            run_as: None,
            observer: Arc::new(Quiet),
            secrets: None,
        }
    }

    pub(crate) fn note(&self, msg: &str) {
        self.observer.event(&Event::Note(msg));
    }

    pub(crate) fn warn(&self, msg: &str) {
        self.observer.event(&Event::Warning(msg));
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("store_parent", &self.store_parent)
            .field("home", &self.home)
            .field("tmpdir", &self.tmpdir)
            .field("profile_dir", &self.profile_dir)
            .field("after_snapshot", &self.after_snapshot)
            .field("watch", &self.watch)
            .field("watch_dir", &self.watch_dir)
            .field("recorder_socket", &self.recorder_socket)
            .field("helper", &self.helper)
            .field("run_as", &self.run_as)
            .finish_non_exhaustive()
    }
}

/// Where a credential route's secret comes from, outside the sandbox: the
/// secret store (`ws secret set`) and the variables `env:VAR` names.
pub trait Secrets: Send + Sync {
    /// The secret store, opened when a route names a stored secret.
    fn store(&self) -> Result<Box<dyn ws_proxy::secrets::SecretStore>, Error>;
    /// A store's failure, with what to do about it.
    fn store_error(&self, e: ws_proxy::secrets::StoreError, kind: ws_proxy::secrets::StoreKind) -> Error;
    /// The variable `env:VAR` names.
    fn var(&self, name: &str) -> Option<OsString>;
}

/// Root for one privileged step (`what` names it in an error); back to the
/// user when the guard drops. Plainly root or plainly a user: nothing to do.
pub fn as_root(what: &str) -> Result<ws_sandbox::privilege::Elevated, Error> {
    ws_sandbox::privilege::elevate().map_err(|e| Error::failure(format!("cannot {what}: {}", chain(&e))))
}
