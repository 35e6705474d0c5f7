//! The one error type of the CLI: it classifies library errors, and picks the
//! exit code in one place.

use std::fmt;

/// Exit codes, documented in the README.
pub mod exit {
    pub const OK: i32 = 0;
    /// An operation failed (I/O, a damaged store).
    pub const FAILURE: i32 = 1;
    /// Bad input: unknown session, a path the session did not change, bad flags.
    pub const USAGE: i32 = 2;
    /// A rollback finished but left conflicts (paths changed after the session).
    pub const CONFLICT: i32 = 3;
    /// `ws session start` could not run the command at all.
    pub const NOT_STARTED: i32 = 125;
}

/// What went wrong, for programs (`{"error": {"kind": …}}`, the Python
/// SDK's exception classes): the library's kinds, whose snake_case names
/// (`ErrorKind::as_str`) the README documents.
pub use ws_session::ErrorKind as Kind;

#[derive(Debug)]
pub struct CliError {
    pub code: i32,
    pub message: String,
    pub hint: Option<String>,
    /// Set where the error is made when the exit code does not say it.
    pub kind: Option<Kind>,
}

impl CliError {
    pub fn usage(message: impl Into<String>) -> Self {
        CliError { code: exit::USAGE, message: message.into(), hint: None, kind: None }
    }
    pub fn failure(message: impl Into<String>) -> Self {
        CliError { code: exit::FAILURE, message: message.into(), hint: None, kind: None }
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    pub fn code(mut self, code: i32) -> Self {
        self.code = code;
        self
    }
    /// The kind as set, else as the exit code tells it.
    pub fn kind_or_default(&self) -> Kind {
        self.kind.unwrap_or(match self.code {
            exit::USAGE => Kind::Usage,
            exit::CONFLICT => Kind::Conflict,
            exit::NOT_STARTED => Kind::SandboxUnavailable,
            126 | 127 => Kind::CommandNotRun,
            _ => Kind::Failure,
        })
    }
}

/// Reports an error the way the user asked: `ws: error:` lines, or one
/// `{"error": {"kind", "message", "hint"}}` object (see `ui::machine`).
pub fn report(e: &CliError) {
    crate::ui::error_of(e.kind_or_default(), &e.message, e.hint.as_deref());
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

pub use ws_session::chain;

impl From<ws_session::Error> for CliError {
    /// The one place the exit code is picked from a library error's kind.
    fn from(e: ws_session::Error) -> Self {
        use ws_session::ErrorKind as K;
        let by_kind = match e.kind {
            K::Usage | K::UnknownSession | K::BadProfile | K::NotAWorkspace | K::SandboxUnavailable => exit::USAGE,
            K::Conflict => exit::CONFLICT,
            K::CommandNotRun => exit::NOT_STARTED,
            K::DiskFull | K::Failure => exit::FAILURE,
            _ => exit::FAILURE,
        };
        CliError { code: e.status.unwrap_or(by_kind), message: e.message, hint: e.hint, kind: Some(e.kind) }
    }
}

/// The library's classifications of the snapshot store's errors, for the
/// commands that call the store directly.
macro_rules! via_library {
    ($($t:ty),*) => {$(
        impl From<$t> for CliError {
            fn from(e: $t) -> Self {
                ws_session::Error::from(e).into()
            }
        }
    )*};
}

via_library!(
    ws_snapshot::SnapshotError,
    ws_snapshot::StoreError,
    ws_snapshot::SessionError,
    ws_snapshot::ReviewError,
    std::io::Error
);

#[cfg(test)]
mod tests {
    use super::*;
    use ws_session::{Error, ErrorKind};

    #[test]
    fn exit_codes_follow_the_kind_unless_the_failure_gave_its_own() {
        let code = |e: Error| CliError::from(e).code;
        assert_eq!(code(Error::new(ErrorKind::Usage, "x")), exit::USAGE);
        assert_eq!(code(Error::new(ErrorKind::UnknownSession, "x")), exit::USAGE);
        assert_eq!(code(Error::new(ErrorKind::BadProfile, "x")), exit::USAGE);
        assert_eq!(code(Error::new(ErrorKind::SandboxUnavailable, "x")), exit::USAGE);
        assert_eq!(code(Error::new(ErrorKind::Conflict, "x")), exit::CONFLICT);
        assert_eq!(code(Error::new(ErrorKind::CommandNotRun, "x")), exit::NOT_STARTED);
        assert_eq!(code(Error::new(ErrorKind::CommandNotRun, "x").status(127)), 127);
        assert_eq!(code(Error::new(ErrorKind::DiskFull, "x")), exit::FAILURE);
        assert_eq!(code(Error::new(ErrorKind::Failure, "x")), exit::FAILURE);
        let e = CliError::from(Error::usage("m").hint("h"));
        assert_eq!((e.message.as_str(), e.hint.as_deref()), ("m", Some("h")));
    }
}
