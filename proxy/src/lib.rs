//! The per-session network proxy of `ws`, and the secrets it injects.
//!
//! This crate never prints, never reads the environment and never exits: the
//! caller passes in what it needs (which store, the session bus's address, a
//! way to look up variables) and decides what to tell the user.

pub mod secrets;
