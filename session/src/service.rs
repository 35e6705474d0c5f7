//! The client side of the recorder service (`ws recorder serve`): a
//! session of a user who is not root asks it to record the session's writes
//! and denials, and reads the record back over the connection.

use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use ws_sandbox::recorder::Message;

/// Where clients find the service unless told otherwise (`$WS_RECORDER_SOCKET`).
pub const DEFAULT_SOCKET: &str = "/run/ws/recorder.sock";

/// Whether a recorder service answers at `socket`.
pub fn reachable(socket: &Path) -> bool {
    UnixStream::connect(socket).is_ok()
}

/// A client's request body (the descriptors travel beside it).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestBody {
    pub version: u32,
    /// `ws learn`: also every path the session's processes open.
    #[serde(default)]
    pub learn: bool,
    /// Instead of recording a session: ask the service's watch what
    /// changed in the workspace since a token. The descriptors are then
    /// the workspace and its snapshot store, and the answer is the watch's
    /// ([`ws_watch::protocol`]), or a refusal line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch: Option<WatchQuestion>,
}

/// A question for the service's watch.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchQuestion {
    /// The token the store's latest snapshot is good as of; `None`: a
    /// token for now.
    pub since: Option<String>,
}

/// The protocol's version. 2: the client may send [`ws_sandbox::recorder::SYNC`]
/// once the session's processes have ended, and the service passes it on
/// to the session's recorder (which answers `synced`).
pub const VERSION: u32 = 2;
/// The oldest version a service still serves.
pub const OLDEST: u32 = 1;

/// A client's link to the service for one session: the stream of its
/// record, and the messages up to the one that said the recorder watches
/// (read here, so the stream's reader takes them first).
#[derive(Debug)]
pub struct Link {
    pub stream: UnixStream,
    pub first: Vec<Message>,
    /// The service speaks [`VERSION`] 2: it passes a sync on.
    pub syncs: bool,
}

/// Asks the service at `socket` to record the session whose init is the
/// child of `launcher`, in `workspace`. Returns once the recorder is
/// watching (or has said why it cannot).
pub fn attach(socket: &Path, workspace: &Path, launcher: u32, learn: bool) -> Result<Link, String> {
    match attach_as(socket, workspace, launcher, learn, VERSION) {
        // A service started from an older ws, still running: served as it
        // can, without the sync.
        Err(why) if why.contains(&format!("request version {VERSION} (this service speaks 1)")) => {
            attach_as(socket, workspace, launcher, learn, 1)
        }
        r => r,
    }
}

fn attach_as(socket: &Path, workspace: &Path, launcher: u32, learn: bool, version: u32) -> Result<Link, String> {
    let init = ws_sandbox::service::children(launcher)
        .first()
        .copied()
        .ok_or("the session has no init process (no PID namespace of its own)")?;
    let pidfd = ws_sandbox::service::pidfd(init).map_err(|e| format!("pidfd of the session's init: {e}"))?;
    let dir = fs_err::File::open(workspace).map_err(|e| e.to_string())?;
    let stream = UnixStream::connect(socket).map_err(|e| format!("cannot reach {}: {e}", socket.display()))?;
    let body = serde_json::to_vec(&RequestBody { version, learn, watch: None }).map_err(|e| e.to_string())?;
    ws_sandbox::service::send_request(&stream, &body, dir.file().as_fd(), pidfd.as_fd())
        .map_err(|e| format!("cannot send the request to {}: {e}", socket.display()))?;
    // Lines up to the one that says whether the recorder watches, read a
    // byte at a time, so nothing after it is taken from the stream the
    // record is read from. A word about denials alone is not that answer.
    stream.set_read_timeout(Some(Duration::from_secs(30))).map_err(|e| e.to_string())?;
    let first = read_answer(&stream)?;
    stream.set_read_timeout(None).map_err(|e| e.to_string())?;
    Ok(Link { stream, first, syncs: version >= 2 })
}

/// The largest answer of the service's watch read: beyond it the session
/// walks the workspace anyway.
const WATCH_ANSWER_MAX: u64 = 256 << 20;

/// Asks the service's watch what changed in `workspace` (whose snapshot
/// store is `store`) since `since`. `Ok(None)`: no service listens at
/// `socket`. Only a service run by root is believed.
pub fn ask_watch(
    socket: &Path,
    workspace: &Path,
    store: &Path,
    since: Option<ws_watch::Token>,
    patience: Duration,
) -> Result<Option<ws_watch::Answer>, String> {
    let Some(stream) = ws_watch::client::reach(socket, false)? else { return Ok(None) };
    let open = |p: &Path| fs_err::File::open(p).map_err(|e| e.to_string());
    let (dir, store) = (open(workspace)?, open(store)?);
    let question = WatchQuestion { since: since.map(|t| t.to_string()) };
    let body = serde_json::to_vec(&RequestBody { version: VERSION, learn: false, watch: Some(question) })
        .map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(patience)).map_err(|e| e.to_string())?;
    stream.set_write_timeout(Some(patience)).map_err(|e| e.to_string())?;
    ws_sandbox::service::send_request(&stream, &body, dir.file().as_fd(), store.file().as_fd())
        .map_err(|e| format!("cannot send the question to {}: {e}", socket.display()))?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(&stream, WATCH_ANSWER_MAX), &mut bytes)
        .map_err(|e| format!("no answer from the recorder service's watch: {e}"))?;
    if bytes.first() == Some(&b'{') {
        let line = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
        return match serde_json::from_slice::<Message>(line) {
            Ok(Message::Unavailable { reason, .. }) => Err(reason),
            _ => Err("the recorder service answered something that is not the watch's answer".into()),
        };
    }
    ws_watch::protocol::decode_answer(&bytes)
        .map(Some)
        .ok_or_else(|| "the recorder service's watch answered garbled bytes".to_string())
}

/// The service's messages up to its answer (the recorder watches, or why
/// not): a word about denials alone is not that answer.
pub fn read_answer(stream: &UnixStream) -> Result<Vec<Message>, String> {
    let mut first = Vec::new();
    loop {
        let line = read_line(stream)?;
        match serde_json::from_slice::<Message>(&line) {
            // `ws learn`: Watching comes first, once the mark is in place.
            Ok(m @ (Message::Ready | Message::Watching { .. })) => {
                first.push(m);
                break;
            }
            Ok(m @ Message::Unavailable { what: Some(_), .. }) if first.len() < 8 => first.push(m),
            Ok(Message::Unavailable { reason, .. }) => return Err(reason),
            _ => return Err("the recorder service answered something that is not a recorder message".into()),
        }
    }
    Ok(first)
}

fn read_line(stream: &UnixStream) -> Result<Vec<u8>, String> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while line.len() < 64 << 10 {
        match std::io::Read::read(&mut &*stream, &mut b) {
            Ok(1) if b[0] == b'\n' => break,
            Ok(1) => line.push(b[0]),
            Ok(_) => return Err("the recorder service closed the connection".into()),
            Err(e) => return Err(format!("no answer from the recorder service: {e}")),
        }
    }
    Ok(line)
}
