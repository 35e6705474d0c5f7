//! Everything `ws` says to a person goes through here: messages on stderr,
//! data on stdout, colour only on a terminal and never with NO_COLOR.
//! Every message passes through [`display::message`] on its way out: a name
//! or a piece of content the caller forgot to render cannot drive the
//! terminal (see `display`).

#![allow(clippy::print_stderr)]

use std::io::{IsTerminal, Write};

use crate::display;

pub fn note(msg: &str) {
    eprintln!("ws: {}", display::message(msg));
}

pub fn warn(msg: &str) {
    eprintln!("ws: warning: {}", display::message(msg));
}

pub fn error(msg: &str, hint: Option<&str>) {
    eprintln!("ws: error: {}", display::message(msg));
    if let Some(h) = hint {
        eprintln!("ws: hint: {}", display::message(h));
    }
}

/// A question on stderr, without a newline: the answer goes on the same line.
pub fn prompt(msg: &str) {
    let mut e = std::io::stderr().lock();
    let _ = write!(e, "ws: {}", display::message(msg));
    let _ = e.flush();
}

pub fn progress_line(line: &str, tty: bool) {
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
