//! The one error type of the library: what went wrong, in the words the
//! `ws` CLI prints (a message and a hint naming the fix), and a kind a
//! program can branch on. The CLI picks its exit code from the kind.

use std::fmt;

/// What kind of failure an [`Error`] is: stable, for programs to branch on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Bad input: a path the session did not change, a bad flag or value.
    Usage,
    /// No session by that id or name (or more than one), or none pending.
    UnknownSession,
    /// A rollback left paths as they were: they changed after the session.
    Conflict,
    /// This machine cannot confine the session as its profile requires, or
    /// the sandbox could not be set up; nothing ran.
    SandboxUnavailable,
    /// The profile cannot be found or read, or says something invalid.
    BadProfile,
    /// No workspace here: `/`, a directory not writable, nowhere for a store.
    NotAWorkspace,
    /// The command could not be run at all (not found: 127; not executable
    /// or not allowed: 126; the sandbox could not start it: 125).
    CommandNotRun,
    /// The disk holding the snapshot store (or the workspace) is full.
    DiskFull,
    /// Anything else: I/O, a damaged store.
    Failure,
}

impl ErrorKind {
    /// The kind's snake_case name (`"unknown_session"`), as machine
    /// interfaces (the Python package) name it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Usage => "usage",
            ErrorKind::UnknownSession => "unknown_session",
            ErrorKind::Conflict => "conflict",
            ErrorKind::SandboxUnavailable => "sandbox_unavailable",
            ErrorKind::BadProfile => "bad_profile",
            ErrorKind::NotAWorkspace => "not_a_workspace",
            ErrorKind::CommandNotRun => "command_not_run",
            ErrorKind::DiskFull => "disk_full",
            ErrorKind::Failure => "failure",
        }
    }

    /// Every kind, for tables and tests.
    pub const ALL: [ErrorKind; 9] = [
        ErrorKind::Usage,
        ErrorKind::UnknownSession,
        ErrorKind::Conflict,
        ErrorKind::SandboxUnavailable,
        ErrorKind::BadProfile,
        ErrorKind::NotAWorkspace,
        ErrorKind::CommandNotRun,
        ErrorKind::DiskFull,
        ErrorKind::Failure,
    ];
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure of the session lifecycle: its kind, the message (the error and
/// its causes, `a: b: c`) and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    pub hint: Option<String>,
    /// The exit status the failure itself gave, when it came from the
    /// session's launcher or names the shell's status for a command that
    /// could not run (126, 127); `None` otherwise.
    pub status: Option<i32>,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, message: message.into(), hint: None, status: None }
    }
    pub fn usage(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Usage, message)
    }
    pub fn failure(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Failure, message)
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    pub fn kind(mut self, kind: ErrorKind) -> Self {
        self.kind = kind;
        self
    }
    pub fn status(mut self, status: i32) -> Self {
        self.status = Some(status);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

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

fn from_chain(kind: ErrorKind, e: &dyn std::error::Error) -> Error {
    Error::new(kind, chain(e))
}

/// Whether an error or one of its causes is ENOSPC.
pub fn disk_full(e: &(dyn std::error::Error + 'static)) -> bool {
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

impl From<ws_snapshot::SnapshotError> for Error {
    fn from(e: ws_snapshot::SnapshotError) -> Self {
        if disk_full(&e) {
            from_chain(ErrorKind::DiskFull, &e)
                .hint("the disk holding the snapshot store is full; free space and start the session again (the workspace was not touched)")
        } else {
            from_chain(ErrorKind::Failure, &e)
        }
    }
}

impl From<ws_snapshot::StoreError> for Error {
    fn from(e: ws_snapshot::StoreError) -> Self {
        match &e {
            ws_snapshot::StoreError::Object { path, .. } => from_chain(ErrorKind::Failure, &e)
                .hint(format!("the snapshot store is damaged: {}", repair_object(path, "run the command again"))),
            _ => from_chain(ErrorKind::Failure, &e),
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

impl From<ws_snapshot::SessionError> for Error {
    fn from(e: ws_snapshot::SessionError) -> Self {
        use ws_snapshot::SessionError as E;
        match &e {
            E::Unknown { .. } | E::Ambiguous { .. } => from_chain(ErrorKind::UnknownSession, &e)
                .hint("`ws session list` shows the sessions of this workspace"),
            E::NonePending => from_chain(ErrorKind::UnknownSession, &e)
                .hint("`ws session list` shows every session; name one by its id"),
            E::DamagedJournal { path, .. } => from_chain(ErrorKind::Failure, &e).hint(format!(
                "the changes it was rolling back are still pending: remove {} and run `ws rollback` without paths to roll back every pending change",
                path.display()
            )),
            _ => from_chain(ErrorKind::Failure, &e),
        }
    }
}

impl From<ws_snapshot::ReviewError> for Error {
    fn from(e: ws_snapshot::ReviewError) -> Self {
        use ws_snapshot::ReviewError as E;
        match e {
            E::NotChanged { .. } => {
                from_chain(ErrorKind::Usage, &e).hint("`ws diff --name-status` lists the paths the session changed")
            }
            E::Hunk { .. } => from_chain(ErrorKind::Usage, &e)
                .hint("`ws diff --json PATH` lists its hunks; created, deleted and binary files are reviewed by path"),
            E::Session(s) => s.into(),
            E::Object { ref object, .. } => from_chain(ErrorKind::Failure, &e).hint(format!(
                "the snapshot store is damaged there and this path was left as the session left it: {}",
                repair_object(object, "run `ws rollback` again to finish")
            )),
            E::Store(ws_snapshot::StoreError::Object { ref path, .. }) => from_chain(ErrorKind::Failure, &e).hint(
                format!("the snapshot store is damaged: {}", repair_object(path, "run `ws rollback` again to finish")),
            ),
            _ => {
                if disk_full(&e) {
                    from_chain(ErrorKind::DiskFull, &e)
                        .hint("the disk is full; free space, then run `ws rollback` again to finish")
                } else {
                    from_chain(ErrorKind::Failure, &e)
                        .hint("run `ws rollback` again to finish; what is done stays done")
                }
            }
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        let kind = if e.raw_os_error() == Some(28) { ErrorKind::DiskFull } else { ErrorKind::Failure };
        from_chain(kind, &e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_are_snake_case_and_distinct() {
        let names: std::collections::BTreeSet<&str> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), ErrorKind::ALL.len());
        assert!(names.iter().all(|n| n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')));
        assert_eq!(ErrorKind::UnknownSession.as_str(), "unknown_session");
        assert_eq!(ErrorKind::SandboxUnavailable.as_str(), "sandbox_unavailable");
    }

    #[test]
    fn a_full_disk_is_its_own_kind() {
        let e: Error = std::io::Error::from_raw_os_error(28).into();
        assert_eq!(e.kind, ErrorKind::DiskFull);
        let e: Error = std::io::Error::from_raw_os_error(2).into();
        assert_eq!(e.kind, ErrorKind::Failure);
    }
}
