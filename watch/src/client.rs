//! Asking the watch.

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::journal::Token;
use crate::protocol::{self, Answer, Request};

/// The largest answer read: beyond it the caller walks the tree anyway.
const ANSWER_MAX: u64 = 256 << 20;

/// Asks the watch listening on `socket` about the workspace `root` (whose
/// snapshot store is `store`). `Ok(None)`: no watch listens there. Only a
/// watch run by root (or by the caller's own user) is believed.
pub fn ask(
    socket: &Path,
    root: &Path,
    store: &Path,
    since: Option<Token>,
    patience: Duration,
) -> Result<Option<Answer>, String> {
    let Some(mut stream) = reach(socket, true)? else { return Ok(None) };
    let _ = stream.set_read_timeout(Some(patience));
    let _ = stream.set_write_timeout(Some(patience));
    let request = Request { since, root: root.to_path_buf(), store: store.to_path_buf() };
    stream.write_all(&protocol::encode_request(&request)).map_err(|e| format!("cannot ask the watch: {e}"))?;
    let mut bytes = Vec::new();
    (&mut stream).take(ANSWER_MAX).read_to_end(&mut bytes).map_err(|e| format!("the watch did not answer: {e}"))?;
    protocol::decode_answer(&bytes).map(Some).ok_or_else(|| "the watch's answer is garbled".to_string())
}

/// A connection to `socket`, served by root (or, with `or_me`, by this
/// process's user). `Ok(None)`: nothing listens there.
pub fn reach(socket: &Path, or_me: bool) -> Result<Option<UnixStream>, String> {
    let stream = match UnixStream::connect(socket) {
        Ok(s) => s,
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused) => {
            return Ok(None);
        }
        Err(e) => return Err(format!("cannot reach {}: {e}", socket.display())),
    };
    let peer = rustix::net::sockopt::socket_peercred(&stream)
        .map_err(|e| format!("cannot ask who serves {}: {e}", socket.display()))?;
    let me = rustix::process::geteuid();
    let trusted = peer.uid.is_root() || (or_me && peer.uid == me);
    if !trusted {
        let whom = if or_me { "root or this user" } else { "root" };
        return Err(format!("{} is served by uid {}, not by {whom}", socket.display(), peer.uid.as_raw()));
    }
    Ok(Some(stream))
}
