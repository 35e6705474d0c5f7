//! Everything `ws` says to a person goes through here: messages on stderr,
//! data on stdout, colour only on a terminal and never with NO_COLOR.
//! Every message passes through [`display::message`] on its way out: a name
//! or a piece of content the caller forgot to render cannot drive the
//! terminal (see `display`).

#![allow(clippy::print_stderr)]

use std::io::{IsTerminal, Write};
use std::sync::{Mutex, OnceLock};

use crate::display;
use crate::error::Kind;

pub fn note(msg: &str) {
    if !machine::message("note", msg) {
        eprintln!("ws: {}", display::message(msg));
    }
}

pub fn warn(msg: &str) {
    if !machine::message("warning", msg) {
        eprintln!("ws: warning: {}", display::message(msg));
    }
}

/// An error for a person; for a program, `{"error": …}` of kind `failure`
/// (an error with another kind goes through `error::report`).
pub fn error(msg: &str, hint: Option<&str>) {
    error_of(Kind::Failure, msg, hint);
}

pub fn error_of(kind: Kind, msg: &str, hint: Option<&str>) {
    if machine::error(kind, msg, hint) {
        return;
    }
    eprintln!("ws: error: {}", display::message(msg));
    if let Some(h) = hint {
        eprintln!("ws: hint: {}", display::message(h));
    }
}

/// ws driven by a program (the Python SDK): its messages as JSON lines,
/// on stderr with `WS_MESSAGES=json`, or on the events descriptor of
/// `ws session start --events-fd N`, after the audit records written so
/// far. The text is the one a person would read (`display::message`).
pub mod machine {
    use super::*;

    /// The events descriptor, once `--events-fd` handed it over; `None`
    /// after a write failed (the reader is gone: nothing more is sent).
    static EVENTS: OnceLock<Mutex<Option<std::fs::File>>> = OnceLock::new();

    /// Sends this process's messages, and [`line`]s, to `file` from now on.
    pub fn events_to(file: std::fs::File) {
        let _ = EVENTS.set(Mutex::new(Some(file)));
    }

    pub fn has_events() -> bool {
        EVENTS.get().is_some()
    }

    /// Writes one line (no newline in it) to the events descriptor, in one
    /// `write` so lines from several threads never interleave.
    pub fn line(bytes: &[u8]) {
        let Some(events) = EVENTS.get() else { return };
        let mut guard = events.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(f) = guard.as_mut() {
            let mut buf = Vec::with_capacity(bytes.len() + 1);
            buf.extend_from_slice(bytes);
            buf.push(b'\n');
            if f.write_all(&buf).is_err() {
                *guard = None;
            }
        }
    }

    fn emit(value: &serde_json::Value) -> bool {
        let bytes = serde_json::to_vec(value).unwrap_or_default();
        if has_events() {
            line(&bytes);
            true
        } else if crate::env::json_messages() {
            let mut e = std::io::stderr().lock();
            let _ = e.write_all(&bytes).and_then(|()| e.write_all(b"\n"));
            true
        } else {
            false
        }
    }

    /// `{"message": {"level", "text"}}`; false when a person is told instead.
    pub fn message(level: &str, msg: &str) -> bool {
        emit(&serde_json::json!({ "message": { "level": level, "text": display::message(msg) } }))
    }

    /// `{"error": {"kind", "message", "hint"}}`; false when a person is told instead.
    pub fn error(kind: Kind, msg: &str, hint: Option<&str>) -> bool {
        emit(&serde_json::json!({ "error": {
            "kind": kind.as_str(),
            "message": display::message(msg),
            "hint": hint.map(display::message),
        } }))
    }
}

/// A question on stderr, without a newline: the answer goes on the same line.
pub fn prompt(msg: &str) {
    let mut e = std::io::stderr().lock();
    let _ = write!(e, "ws: {}", display::message(msg));
    let _ = e.flush();
}

pub fn progress_line(line: &str, tty: bool) {
    if machine::has_events() || crate::env::json_messages() {
        return; // a program reads the records, not a progress line
    }
    let line = display::message(line);
    let mut e = std::io::stderr().lock();
    if tty {
        let _ = write!(e, "\r\x1b[2K{line}");
    } else {
        let _ = writeln!(e, "{line}");
    }
    let _ = e.flush();
}

pub fn progress_clear() {
    let mut e = std::io::stderr().lock();
    let _ = write!(e, "\r\x1b[2K");
    let _ = e.flush();
}

pub fn stdout_color() -> bool {
    std::io::stdout().is_terminal() && !crate::env::no_color()
}

pub use ws_session::display::{bytes, count, entry_name};

#[cfg(test)]
mod tests {
    #[test]
    fn formats_counts_and_sizes() {
        assert_eq!(super::count(0), "0");
        assert_eq!(super::count(1234567), "1,234,567");
        assert_eq!(super::bytes(512), "512 B");
        assert_eq!(super::bytes(3 << 20), "3.0 MiB");
    }
}
