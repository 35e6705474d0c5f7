//! `ws-watch`: what changed in a workspace between ws sessions, so that a
//! session's before-snapshot looks only there instead of walking the whole
//! tree. The watch ([`server::serve`]) runs as a process of its own; ws
//! starts it by itself and asks it ([`client::ask`]) with a token that the
//! store keeps beside its latest snapshot. Anything the watch cannot vouch
//! for makes it refuse the token, and the caller walks the whole tree.

pub mod client;
pub mod journal;
pub mod protocol;
pub mod server;

pub use journal::{Change, Token};
pub use protocol::Answer;
