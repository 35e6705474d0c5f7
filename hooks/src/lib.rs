//! Git hooks for ws: nothing an agent wrote reaches a commit unreviewed.
//!
//! - [`install`] / [`uninstall`] put `pre-commit` and `prepare-commit-msg`
//!   scripts into the repository's effective hooks directory ([`locate`]),
//!   chaining a hook that was there and restoring it exactly.
//! - [`staged_changes`] and [`read_staged`] tell what a commit is about to
//!   record — read from the index, HEAD's trees and the work tree without
//!   starting git wherever the repository allows, else from git
//!   ([`staged_paths`], [`read_blobs`]); [`policy`] decides whether a staged
//!   version carries a session's change.
//! - [`Fingerprint`], [`FingerprintFile`] and [`scan`] find stored secrets
//!   and phantom tokens in staged content without keeping them in clear.
//!
//! This crate never prints, never reads the environment and never exits; the
//! CLI decides what to check and what to tell the user.

mod fingerprint;
mod git;
pub mod handoff;
#[cfg(test)]
mod hostile;
mod index;
mod install;
mod odb;
pub mod policy;
pub mod safe;
mod staged;
#[cfg(test)]
mod testing;

pub use fingerprint::{Fingerprint, FingerprintFile, FingerprintFileError, Found, MIN_SCANNED_LEN, find, scan};
pub use git::{
    BlobReader, Content, Examined, GitError, MAX_WHOLE, Repo, Staged, StagedPath, add_trailers, blob_id_sha1,
    empty_tree, examine_staged, locate, read_blobs, read_staged, resolve, staged_paths,
};
pub use handoff::{HANDOFF_NAME, discard_trailers, handoff_path, save_trailers, take_trailers};
pub use index::entry_count as read_index_entries;
pub use install::{
    CHAINED_SUFFIX, HOOKS, HookOutcome, InstallError, Installed, UninstallError, Uninstalled, hook_script, install,
    is_ours, uninstall,
};
pub use policy::Version;
pub use staged::{GitEnv, staged_changes};
