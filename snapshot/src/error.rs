//! Error types, one per operation. A message names the path it concerns and
//! never repeats its `source`; the CLI prints the chain.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the snapshot store at {path}")]
    Create { path: PathBuf, source: io::Error },
    #[error("cannot lock the snapshot store at {path}")]
    Lock { path: PathBuf, source: io::Error },
    #[error("the snapshot store at {path} belongs to workspace {other}, not this one")]
    WrongWorkspace { path: PathBuf, other: String },
    #[error("I/O error on {path}")]
    Io { path: PathBuf, source: io::Error },
    #[error("cannot read {path}, an object of the snapshot store")]
    Object { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest {path} is damaged at byte {offset}: {what}")]
    Corrupt { path: PathBuf, offset: usize, what: &'static str },
    #[error("cannot read manifest {path}")]
    Read { path: PathBuf, source: io::Error },
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("cannot read {path}")]
    Walk { path: PathBuf, source: io::Error },
    #[error("cannot store a copy of {path} in the snapshot store")]
    Store { path: PathBuf, source: io::Error },
    #[error(transparent)]
    StoreState(#[from] StoreError),
    #[error("the workspace {path} is not a directory")]
    NotADirectory { path: PathBuf },
}

impl SnapshotError {
    /// Whether the store's disk (or the user's quota) was full: the case
    /// where [`crate::walk_unstored`] can still describe the workspace.
    pub fn is_no_space(&self) -> bool {
        let io = match self {
            SnapshotError::Store { source, .. } => Some(source),
            SnapshotError::StoreState(StoreError::Io { source, .. } | StoreError::Create { source, .. }) => {
                Some(source)
            }
            _ => None,
        };
        io.and_then(io::Error::raw_os_error).is_some_and(|e| {
            e == rustix::io::Errno::NOSPC.raw_os_error() || e == rustix::io::Errno::DQUOT.raw_os_error()
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("no session matches `{id}` in this workspace")]
    Unknown { id: String },
    #[error("`{id}` matches several sessions: {candidates}")]
    Ambiguous { id: String, candidates: String },
    #[error("no session of this workspace is pending review")]
    NonePending,
    #[error("session record {path} is damaged: {what}")]
    Corrupt { path: PathBuf, what: String },
    #[error("the journal of an interrupted rollback, {path}, is damaged: {what}")]
    DamagedJournal { path: PathBuf, what: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("session {session} did not change {path}")]
    NotChanged { session: String, path: String },
    #[error("cannot restore {path}")]
    Restore { path: PathBuf, source: io::Error },
    #[error("cannot read {object}, the snapshot store's copy of {path}")]
    Object { object: PathBuf, path: PathBuf, source: io::Error },
    #[error("cannot remove {path}")]
    Remove { path: PathBuf, source: io::Error },
    #[error("cannot read {path} to compare it with the snapshot")]
    Compare { path: PathBuf, source: io::Error },
    #[error("cannot review {path} by hunk: {what}")]
    Hunk { path: String, what: String },
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An object of the store that cannot be read, carried inside the
/// `io::Error` of the copy that needed it, so that the path being restored
/// and the object it needed are both named.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {object}")]
pub(crate) struct UnreadableObject {
    pub object: PathBuf,
    pub source: io::Error,
}

impl ReviewError {
    /// Restoring `path` failed: names the store object when that was what
    /// could not be read.
    pub(crate) fn restore(path: PathBuf, source: io::Error) -> Self {
        if !source.get_ref().is_some_and(|e| e.is::<UnreadableObject>()) {
            return ReviewError::Restore { path, source };
        }
        let kind = source.kind();
        match source.into_inner().map(|e| e.downcast::<UnreadableObject>()) {
            Some(Ok(u)) => ReviewError::Object { object: u.object, path, source: u.source },
            // Not taken: checked above.
            Some(Err(other)) => ReviewError::Restore { path, source: io::Error::new(kind, other) },
            None => ReviewError::Restore { path, source: kind.into() },
        }
    }

    /// The same error naming `path`: rollback works on a reachable form of
    /// a path too long for one system call (`/proc/self/fd/N/NAME`), and the
    /// user must see the workspace path instead.
    pub(crate) fn shown_as(self, path: &std::path::Path) -> Self {
        let path = path.to_path_buf();
        match self {
            ReviewError::Restore { source, .. } => ReviewError::Restore { path, source },
            ReviewError::Object { object, source, .. } => ReviewError::Object { object, path, source },
            ReviewError::Remove { source, .. } => ReviewError::Remove { path, source },
            ReviewError::Compare { source, .. } => ReviewError::Compare { path, source },
            other => other,
        }
    }
}
