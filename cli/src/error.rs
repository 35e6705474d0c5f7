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
/// SDK's exception classes): stable snake_case names, documented in the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Bad input: flags, a path the session did not change, a hunk id.
    Usage,
    /// No session has that id or name (or none is pending).
    UnknownSession,
    /// Paths changed since the session ended were left alone.
    Conflict,
    /// The sandbox cannot be what the profile requires on this machine.
    SandboxUnavailable,
    /// The profile cannot be found or read.
    BadProfile,
    /// No workspace here: `/`, not writable, nowhere to keep snapshots.
    NotAWorkspace,
    /// The command was not found or could not be executed.
    CommandNotRun,
    /// The disk is full.
    DiskFull,
    /// Any other failure (I/O, a damaged store).
    Failure,
}

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
    pub fn kind(mut self, kind: Kind) -> Self {
        self.kind = Some(kind);
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

/// The message of an error and all its causes, joined as `a: b: c`.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let msg = c.to_string();
        if !s.ends_with(&msg) {
            s.push_str(": ");
            s.push_str(&msg);
        }
        cur = c.source();
    }
    s
}

fn from_chain(code: i32, e: &dyn std::error::Error) -> CliError {
    CliError { code, message: chain(e), hint: None, kind: None }
}

fn disk_full(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&dyn std::error::Error> = Some(e);
    while let Some(c) = cur {
        if let Some(io) = c.downcast_ref::<std::io::Error>()
            && io.raw_os_error() == Some(28)
        {
            return true;
        }
        cur = c.source();
    }
    false
}

impl From<ws_snapshot::SnapshotError> for CliError {
    fn from(e: ws_snapshot::SnapshotError) -> Self {
        let err = from_chain(exit::FAILURE, &e);
        if disk_full(&e) {
            err.kind(Kind::DiskFull).hint("the disk holding the snapshot store is full; free space and start the session again (the workspace was not touched)")
        } else {
            err
        }
    }
}

impl From<ws_snapshot::StoreError> for CliError {
    fn from(e: ws_snapshot::StoreError) -> Self {
        match &e {
            ws_snapshot::StoreError::Object { path, .. } => from_chain(exit::FAILURE, &e)
                .hint(format!("the snapshot store is damaged: {}", repair_object(path, "run the command again"))),
            _ => from_chain(exit::FAILURE, &e),
        }
    }
}

/// What to do about a store object that cannot be read.
fn repair_object(object: &std::path::Path, then: &str) -> String {
    format!(
        "make {} (and the directories above it) readable again, or put it back from a backup, then {then}",
        object.display()
    )
}

impl From<ws_snapshot::SessionError> for CliError {
    fn from(e: ws_snapshot::SessionError) -> Self {
        use ws_snapshot::SessionError as E;
        match &e {
            E::Unknown { .. } | E::Ambiguous { .. } => from_chain(exit::USAGE, &e)
                .kind(Kind::UnknownSession)
                .hint("`ws session list` shows the sessions of this workspace"),
            E::NonePending => from_chain(exit::USAGE, &e)
                .kind(Kind::UnknownSession)
                .hint("`ws session list` shows every session; name one by its id"),
            E::DamagedJournal { path, .. } => from_chain(exit::FAILURE, &e).hint(format!(
                "the changes it was rolling back are still pending: remove {} and run `ws rollback` without paths to roll back every pending change",
                path.display()
            )),
            _ => from_chain(exit::FAILURE, &e),
        }
    }
}

impl From<ws_snapshot::ReviewError> for CliError {
    fn from(e: ws_snapshot::ReviewError) -> Self {
        use ws_snapshot::ReviewError as E;
        match e {
            E::NotChanged { .. } => {
                from_chain(exit::USAGE, &e).hint("`ws diff --name-status` lists the paths the session changed")
            }
            E::Hunk { .. } => from_chain(exit::USAGE, &e)
                .hint("`ws diff --json PATH` lists its hunks; created, deleted and binary files are reviewed by path"),
            E::Session(s) => s.into(),
            E::Object { ref object, .. } => from_chain(exit::FAILURE, &e).hint(format!(
                "the snapshot store is damaged there and this path was left as the session left it: {}",
                repair_object(object, "run `ws rollback` again to finish")
            )),
            E::Store(ws_snapshot::StoreError::Object { ref path, .. }) => from_chain(exit::FAILURE, &e).hint(format!(
                "the snapshot store is damaged: {}",
                repair_object(path, "run `ws rollback` again to finish")
            )),
            _ => {
                let err = from_chain(exit::FAILURE, &e);
                if disk_full(&e) {
                    err.kind(Kind::DiskFull)
                        .hint("the disk is full; free space, then run `ws rollback` again to finish")
                } else {
                    err.hint("run `ws rollback` again to finish; what is done stays done")
                }
            }
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        let err = from_chain(exit::FAILURE, &e);
        if disk_full(&e) { err.kind(Kind::DiskFull) } else { err }
    }
}
