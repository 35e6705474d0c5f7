//! The per-session network proxy of `ws`: deny by default, host globs and
//! request rules ([`rules`]), resolved addresses checked before connecting,
//! and credential routes that swap a phantom token for the real secret
//! ([`route`]). The proxy ([`server::Proxy`]) serves a listening socket the
//! caller gives it — created inside the session's network namespace where
//! there is one — and reports every request as a [`server::RequestEvent`].
//! The real secrets come from a store or a profile's explicit source
//! ([`secrets`]), resolved outside the sandbox.
//!
//! This crate never prints, never reads the environment and never exits: the
//! caller passes in what it needs and decides what to tell the user.
//!
//! # Security
//! - Nothing is reachable unless a rule allows it; every refusal names its rule.
//! - A name is resolved once; each address is checked and the connection goes
//!   to that address, so DNS cannot move an allowed name onto loopback or the
//!   cloud metadata service.
//! - The real secret exists only in this process; the sandbox holds a random
//!   per-session phantom, accepted only on the route it was made for.

pub mod intercept;
pub mod route;
pub mod rules;
pub mod secrets;
pub mod server;
mod tls;
mod tunnel;

pub use intercept::SessionCa;
pub use route::{Credential, Route, Upstream};
pub use rules::{Cidr, HttpRule, NetRules, Verdict};
pub use server::{Config, EventSink, Proxy, ProxyError, RequestEvent};
