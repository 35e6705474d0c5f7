//! What happens during the lifecycle, told as it happens: the library never
//! prints. The `ws` CLI's observer prints each event as `ws` always has; a
//! program embedding the library shows, logs or forwards them as it likes.

use ws_proxy::RequestEvent;
use ws_snapshot::audit::Record;
use ws_snapshot::{Change, Entry, Session};

use crate::Counts;

/// One thing that happened. Text in `Note`, `Warning` and `Error` is the
/// sentence `ws` prints (without its `ws: ` prefix); names and other text
/// a session chose are in it raw, so render it before a terminal sees it.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event<'a> {
    /// Something worth saying (`ws: …`).
    Note(&'a str),
    /// Something less than it should be, the operation going on: a layer
    /// running degraded, a record not kept, a damaged file skipped.
    Warning(&'a str),
    /// A failure the operation reports and goes past (the session's
    /// launcher could not run the command; it exits with `error.status`).
    Error(&'a crate::Error),
    /// A long snapshot's progress, about every 200 ms once it has taken a
    /// second. `what` is `snapshot`, `after-snapshot`…
    Progress { what: &'a str, scanned: u64, stored_files: u64, stored_bytes: u64 },
    /// The snapshot whose progress was shown has ended.
    ProgressEnd { what: &'a str },
    /// An audit record, as it is appended to the session's log (`line` is
    /// its JSON line, as in the log). Called from the thread that wrote it.
    Record { record: &'a Record, line: &'a [u8] },
    /// What the before-snapshot left out (too large and ignored by git,
    /// special files…): rollback cannot restore these.
    Excluded { entries: &'a [&'a Entry] },
    /// The session has ended and its changes are recorded.
    Summary { session: &'a Session, changes: &'a [Change], counts: &'a Counts, excluded: usize },
    /// The session's network requests, once it has ended (none: not sent).
    Network { requests: &'a [RequestEvent] },
}

/// Told of every [`Event`]; called from the lifecycle's threads (the
/// recorders, the proxy), so it must be `Send + Sync` and should be quick.
pub trait Observer: Send + Sync {
    fn event(&self, event: &Event<'_>) {
        let _ = event;
    }
}

/// The observer that ignores everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct Quiet;

impl Observer for Quiet {}

impl<F: Fn(&Event<'_>) + Send + Sync> Observer for F {
    fn event(&self, event: &Event<'_>) {
        self(event)
    }
}
