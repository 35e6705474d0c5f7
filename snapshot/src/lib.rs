//! Copy-on-write snapshots of a workspace, and the review loop over them.
//!
//! A [`Store`] holds, for one workspace, content objects (cloned with `FICLONE`
//! where the filesystem allows it, copied and BLAKE3-addressed elsewhere),
//! manifests (one per snapshot: every path with its kind, mode and stat data) and
//! sessions (a snapshot before a command, one after, and the change set between
//! them, each change pending, approved or rolled back).
//!
//! This crate never prints, never reads the environment and never exits: the
//! caller decides where the store lives and what to tell the user.

pub mod audit;
mod budget;
mod changed;
mod changes;
mod copy;
mod error;
mod gc;
mod git;
pub mod git_guard;
#[cfg(test)]
mod hostile;
pub mod hunks;
mod ignore_rules;
mod layer;
mod longpath;
mod manifest;
mod manifest_file;
mod partial;
mod path;
mod place;
mod rebuild;
pub mod renames;
mod restore;
mod session;
mod snapshot;
mod stat;
mod store;
mod walk;

pub use budget::Budget;
pub use changed::{ChangedPaths, Scope, differences};
pub use changes::{Change, ChangeKind, ChangeState, OutsideLink, compute_changes, outside_links};
pub use error::{ManifestError, ReviewError, SessionError, SnapshotError, StoreError};
pub use gc::{GcOptions, GcOutcome, gc, gc_done, gc_due};
pub use git::{GitClass, git_class};
pub use ignore_rules::{BadIgnoreFile, IGNORE_FILE_MAX, IgnoreFileProblem};
pub use manifest::{Entry, EntryKind, ExcludeReason, Manifest, ManifestId};
pub use manifest_file::{Layered, ManifestFile, Stored};
pub use partial::{HunkOutcome, HunkPick, approve_hunks, finish_hunk_rollback, rollback_hunks};
pub use path::RelPath;
pub use place::{StorePlacement, choose_store_dir, existing_store_dir, workspace_key};
pub use renames::{Rename, RenameOptions, find_renames};
pub use restore::{RollbackOptions, RollbackOutcome, approve, rollback};
pub use session::{AfterFrom, BeforeFrom, ExitStatus, Session, SessionId, SessionState};
pub use snapshot::{Progress, SnapshotOptions, SnapshotOutcome, Taken, take_snapshot, walk_unstored};
pub use stat::FileStat;
pub use store::{CloneSupport, ObjectId, Store, StoreLock};
