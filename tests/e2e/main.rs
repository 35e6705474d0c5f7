//! End-to-end tests of the `ws` binary: real kernel, real git, real
//! filesystems (ext4, and btrfs/xfs loop images for the clone path).

#![allow(clippy::unwrap_used)]

mod agents;
mod audit_export;
mod bad_input;
mod claude;
mod codex;
mod completions;
mod display;
mod fast_after;
mod faults;
mod git;
mod git_redirect;
mod harness;
mod hook_attacks;
mod hooks;
mod hostile;
mod hunks;
mod kinds;
mod learn;
mod library;
mod machine;
mod many;
mod network;
mod privilege;
mod recorder;
mod recorder_service;
mod renames;
mod review;
mod sandbox;
mod secrets;
mod snapshot_attacks;
mod sudo;
mod term;
mod tui;
mod watch;
