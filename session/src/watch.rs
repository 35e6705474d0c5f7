//! The before-snapshot from the watch (crate `ws-watch`): between sessions
//! a process of ws's own watches the workspace, and the next session's
//! before-snapshot looks only where it saw changes, taking every other entry
//! from the store's latest snapshot, instead of walking the whole tree.
//!
//! The store keeps, beside its latest snapshot, the watch's token from just
//! before that snapshot was taken (and the excludes files' content then):
//! everything the watch reports after that token is looked at again. One
//! watch serves every workspace of the machine; it starts by itself the
//! first time a session needs it (as root: its link-count mark needs
//! CAP_SYS_ADMIN), drops a workspace that went away or that nobody asked
//! about for an hour, and ends when it has none. A user who is not root
//! asks the recorder service's watch instead (`ws recorder serve`), which
//! answers only for directories the user owns.
//!
//! What the watch cannot see is covered as for the after-snapshot from the
//! record ([`crate::after::plan`]): files open for writing or mapped shared
//! now, files with several names, another filesystem mounted inside, an
//! excludes file outside the workspace that changed. Anything else it cannot
//! vouch for (restarted, overflowed, too many changes) sends the session to
//! the full walk, and `ws session show` says why.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ws_snapshot::{BeforeFrom, ChangedPaths, ManifestId, Stored};
use ws_watch::{Answer, Change, Token};

use crate::after::Excludes;
use crate::workspace::Workspace;

/// The argument that makes the helper program the watch
/// (`PROGRAM __watch SOCKET LOCK`; see [`crate::helpers`]).
pub const WATCH_ARG: &str = "__watch";

/// A workspace nobody asked about this long is no longer watched; the watch
/// ends when it watches none.
const IDLE: Duration = Duration::from_secs(3600);
/// More distinct changes than this between two sessions: the full walk.
const LIMIT: usize = 500_000;
/// How long a session waits for a watch it started to be ready.
const START_PATIENCE: Duration = Duration::from_secs(30);

/// How the before-snapshot is taken (`WS_WATCH` for the `ws` CLI).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// From the watch when it can vouch, else the full walk (default).
    #[default]
    Auto,
    /// Never start or ask the watch (`off`).
    Off,
    /// From the watch, then a full walk too, compared (`check`; for tests).
    Check,
}

impl Mode {
    /// `off`, `check`, anything else: [`Mode::Auto`].
    pub fn from_setting(v: Option<&str>) -> Mode {
        match v {
            Some("off") => Mode::Off,
            Some("check") => Mode::Check,
            _ => Mode::Auto,
        }
    }
}

/// Where the watch listens by default: root's, on no workspace's filesystem.
pub const DEFAULT_DIR: &str = "/run/ws";

/// What the before-snapshot rests on.
#[derive(Debug)]
pub struct Before {
    /// The watch's token from before the snapshot is taken: kept beside it.
    pub token: Option<Token>,
    /// Where to look, or why to walk everything.
    pub plan: Result<ChangedPaths, String>,
}

impl Before {
    pub fn from(&self) -> BeforeFrom {
        match &self.plan {
            Ok(changed) => BeforeFrom::Watch { paths: changed.len() as u64 },
            Err(reason) => BeforeFrom::Walk { reason: reason.clone() },
        }
    }
}

/// The token and excludes the store's latest snapshot was taken with.
#[derive(serde::Serialize, serde::Deserialize)]
struct Base {
    manifest: String,
    token: String,
    excludes: Vec<(PathBuf, Option<Vec<u8>>)>,
}

fn base_path(ws: &Workspace) -> PathBuf {
    ws.store.root().join("watch-base.json")
}

/// Where the watch listens, and its lock ([`crate::Options::watch_dir`]).
fn places(ws: &Workspace) -> (PathBuf, PathBuf) {
    let dir = &ws.options.watch_dir;
    (dir.join("watch.sock"), dir.join("watch.lock"))
}

/// Asks the watch (starting it if none runs) before the before-snapshot,
/// under the workspace's lock. `previous` is the store's latest snapshot.
pub fn before(ws: &Workspace, previous: Option<&Stored>) -> Before {
    if ws.options.watch == Mode::Off {
        return Before { token: None, plan: Err("WS_WATCH=off".to_string()) };
    }
    let base = std::fs::read(base_path(ws)).ok().and_then(|b| serde_json::from_slice::<Base>(&b).ok());
    let latest = previous.and_then(Stored::id).filter(|id| ws.store.latest().as_ref() == Some(*id));
    let since = match (&base, latest) {
        (Some(b), Some(id)) if b.manifest == id.0 => b.token.parse::<Token>().ok(),
        _ => None,
    };
    let answer = match ask_or_start(ws, since) {
        Ok(a) => a,
        Err(why) => return Before { token: None, plan: Err(why) },
    };
    let (token, plan) = match answer {
        // The watch could not take the workspace on: no token at all.
        Answer::Refused { now, why } if now.instance == 0 => return Before { token: None, plan: Err(why) },
        Answer::Refused { now, why } => (now, Err(why)),
        Answer::Changes { now, .. } if since.is_none() => {
            let why = if latest.is_none() {
                "no earlier snapshot of this workspace".to_string()
            } else {
                "the watch was not watching when the latest snapshot was taken".to_string()
            };
            (now, Err(why))
        }
        Answer::Changes { now, changes } => {
            let (Some(base), Some(previous)) = (base, previous) else { unreachable!("`since` needs both") };
            (now, evidence(ws, previous, changes, Excludes::from_pairs(base.excludes)))
        }
    };
    Before { token: Some(token), plan }
}

/// The watch's changes, and what it cannot see, as paths to look at.
fn evidence(
    ws: &Workspace,
    previous: &Stored,
    changes: Vec<Change>,
    excludes: Excludes,
) -> Result<ChangedPaths, String> {
    let mut changed = ChangedPaths::new();
    let mut inodes = Vec::new();
    for c in changes {
        match c {
            Change::Path(p) => changed.add(&p),
            Change::Whole(p) => changed.add_whole(&p),
            Change::Inode(dev, ino) => inodes.push((dev, ino)),
            // Never sent: the watch looks handles up before it answers.
            Change::Handle(_) => {}
        }
    }
    let evidence = crate::after::evidence(&ws.root, changed, inodes)?;
    crate::after::plan(&ws.root, previous, Ok(evidence), Some(&excludes))
}

/// Keeps, beside the store's latest snapshot `id`, the token it is good as of.
pub fn remember(ws: &Workspace, id: &ManifestId, token: Option<Token>, excludes: &Excludes) {
    let path = base_path(ws);
    let Some(token) = token else {
        let _ = std::fs::remove_file(&path);
        return;
    };
    let base = Base { manifest: id.0.clone(), token: token.to_string(), excludes: excludes.pairs() };
    write_base(&path, &base);
}

/// Rollback refreshed the store's latest snapshot (`was` before it) with
/// the stat data of the files it wrote: the token `was` is good as of holds
/// for the refreshed one too (every other entry is `was`'s, and rollback's
/// own writes came after the token, so the watch reports them).
pub fn carry(ws: &Workspace, was: Option<ManifestId>) {
    let (Some(was), Some(now)) = (was, ws.store.latest()) else { return };
    let path = base_path(ws);
    let Some(mut base) = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice::<Base>(&b).ok()) else {
        return;
    };
    if now == was || base.manifest != was.0 {
        return;
    }
    base.manifest = now.0;
    write_base(&path, &base);
}

fn write_base(path: &Path, base: &Base) {
    let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
    let written = serde_json::to_vec(base)
        .map_err(std::io::Error::other)
        .and_then(|b| std::fs::write(&tmp, b))
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        // Without it the next session walks: slower, never wrong.
        let _ = std::fs::remove_file(&tmp);
        let _ = std::fs::remove_file(path);
    }
}

fn ask_or_start(ws: &Workspace, since: Option<Token>) -> Result<Answer, String> {
    let root = crate::as_root("ask the workspace's watch").ok().filter(|_| rustix::process::geteuid().is_root());
    let Some(_root) = root else {
        // The watch's link-count mark needs root: a user who is not asks
        // the recorder service's.
        let socket = &ws.options.recorder_socket;
        let patience = Duration::from_secs(30);
        return match crate::service::ask_watch(socket, &ws.root, ws.store.root(), since, patience) {
            Ok(Some(a)) => Ok(a),
            Ok(None) => Err(format!(
                "not root, and no recorder service at {} keeps a watch (`sudo ws recorder install`)",
                socket.display()
            )),
            Err(why) if why.contains("unknown field `watch`") => {
                Err("the recorder service runs an older ws, which keeps no watch (restart it: \
                 `sudo systemctl restart ws-recorder.service`)"
                    .to_string())
            }
            Err(why) => Err(format!("the recorder service's watch: {why}")),
        };
    };
    let (socket, lock) = places(ws);
    let patience = Duration::from_secs(10);
    let ask = || ws_watch::client::ask(&socket, &ws.root, ws.store.root(), since, patience);
    if let Some(a) = ask()? {
        return Ok(a);
    }
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let exe = crate::helpers::program(&ws.options.helper);
    let spawn = || {
        std::process::Command::new(&exe)
            .arg(WATCH_ARG)
            .arg(&socket)
            .arg(&lock)
            .current_dir("/")
            // Its own process group: a Ctrl-C at the terminal is not for it.
            .process_group(0)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start the watch: {e}"))
    };
    let mut child = spawn()?;
    let started = Instant::now();
    loop {
        if let Some(a) = ask()? {
            return Ok(a);
        }
        match child.try_wait() {
            // Another watch holds the lock: one starting (it answers soon)
            // or one ending (then this one takes over): try again.
            Ok(Some(status)) if status.success() => {
                std::thread::sleep(Duration::from_millis(50));
                child = spawn()?;
            }
            Ok(Some(_)) => {
                let mut why = String::new();
                if let Some(mut e) = child.stderr.take() {
                    use std::io::Read as _;
                    let _ = (&mut e).take(4096).read_to_string(&mut why);
                }
                return Err(format!("the watch could not start: {}", why.trim()));
            }
            _ => {}
        }
        if started.elapsed() > START_PATIENCE {
            return Err(format!("the watch did not start within {} s", START_PATIENCE.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The watch a recorder service keeps for users who are not root, with
/// the same bounds as the watch process.
pub fn hosted() -> ws_watch::server::Hosted {
    ws_watch::server::Hosted::new(IDLE, LIMIT)
}

/// `PROGRAM __watch SOCKET LOCK`: the watch process; its exit status.
/// Why it could not start goes to `observer` (the helper's stderr, which
/// the session that started it reads).
pub fn serve(args: &[std::ffi::OsString], observer: &dyn crate::Observer) -> i32 {
    let [socket, lock] = args else { return 2 };
    let cfg =
        ws_watch::server::Config { socket: PathBuf::from(socket), lock: PathBuf::from(lock), idle: IDLE, limit: LIMIT };
    match ws_watch::server::serve(&cfg) {
        Ok(_) => 0,
        Err(e) => {
            observer.event(&crate::Event::Error(&crate::Error::failure(e)));
            1
        }
    }
}
