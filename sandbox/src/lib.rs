//! Kernel enforcement for `ws` sessions.
//!
//! Policy is decided by pure functions over typed inputs ([`profile`],
//! [`env`], [`policy`], [`learn`], [`seccomp::denied_syscalls`]); the code that applies
//! it ([`landlock`], [`seccomp`], [`exec`]) is thin and fails closed: when a
//! layer the profile requires cannot be enforced, nothing runs.
//!
//! # Security
//! The sandboxed command is started by `ws` re-executing itself as a small
//! launcher ([`exec::launch`]) that, where it can, moves into new mount and
//! PID namespaces and runs the session's init ([`exec::init`], PID 1 there),
//! which sets up the mounts and restricts *itself* (no_new_privs, Landlock,
//! seccomp) before it starts the command, so every restriction is inherited
//! and none can be dropped. No code of the command's runs before the
//! restrictions are in force.
//!
//! This crate is the only one of the workspace allowed `unsafe` (the workspace
//! denies it; items here allow it, each block with a `SAFETY:` comment): asking
//! the kernel its Landlock ABI, `unshare`, bringing up the session's loopback
//! and adopting the descriptor the supervisor handed down ([`netns`]), and
//! fanotify's calls and event records ([`fanotify`], [`recorder`]).
//! `landlock`, `seccompiler` and `rustix` offer safe calls for everything else.

pub mod audit_netlink;
pub mod cgroups;
pub mod env;
pub mod exec;
pub mod fanotify;
pub mod landlock;
pub mod learn;
pub mod namespaces;
pub mod netns;
pub mod policy;
pub mod precreate;
pub mod privilege;
pub mod probe;
pub mod profile;
pub mod recorder;
pub mod seccomp;
pub mod service;

pub use policy::{Access, Creation, Decision, FsPolicy};
pub use profile::{Profile, ProfileError, ProfileProblem};
