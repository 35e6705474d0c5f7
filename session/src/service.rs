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
}

/// The protocol's version.
pub const VERSION: u32 = 1;

/// A client's link to the service for one session: the stream of its
/// record, and the messages up to the one that said the recorder watches
/// (read here, so the stream's reader takes them first).
#[derive(Debug)]
pub struct Link {
    pub stream: UnixStream,
    pub first: Vec<Message>,
}

/// Asks the service at `socket` to record the session whose init is the
/// child of `launcher`, in `workspace`. Returns once the recorder is
/// watching (or has said why it cannot).
pub fn attach(socket: &Path, workspace: &Path, launcher: u32, learn: bool) -> Result<Link, String> {
    let init = ws_sandbox::service::children(launcher)
        .first()
        .copied()
        .ok_or("the session has no init process (no PID namespace of its own)")?;
    let pidfd = ws_sandbox::service::pidfd(init).map_err(|e| format!("pidfd of the session's init: {e}"))?;
    let dir = fs_err::File::open(workspace).map_err(|e| e.to_string())?;
    let stream = UnixStream::connect(socket).map_err(|e| format!("cannot reach {}: {e}", socket.display()))?;
    let body = serde_json::to_vec(&RequestBody { version: VERSION, learn }).map_err(|e| e.to_string())?;
    ws_sandbox::service::send_request(&stream, &body, dir.file().as_fd(), pidfd.as_fd())
        .map_err(|e| format!("cannot send the request to {}: {e}", socket.display()))?;
    // Lines up to the one that says whether the recorder watches, read a
    // byte at a time, so nothing after it is taken from the stream the
    // record is read from. A word about denials alone is not that answer.
    stream.set_read_timeout(Some(Duration::from_secs(30))).map_err(|e| e.to_string())?;
    let first = read_answer(&stream)?;
    stream.set_read_timeout(None).map_err(|e| e.to_string())?;
    Ok(Link { stream, first })
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
