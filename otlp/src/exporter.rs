//! The background exporter: a bounded queue, one thread, batches, retries.
//!
//! Offering a record never blocks: a full queue drops it and counts it. The
//! thread sends the first batch at once (so a collector that is down or
//! stuck is known early), then a batch when it is full or has waited
//! `delay`. A failed batch is retried with doubling pauses when OTLP allows
//! it; while the collector does not answer at all, each batch gets one try.
//! At the end, [`Exporter::finish`] waits for what is left only while the
//! collector keeps answering, and at most its bound: a collector that is
//! down or stuck costs the session nothing.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::encode::{Line, SessionContext, body, request};
use crate::{Config, ExportError};

/// A request unanswered this long (or four times the slowest answer so
/// far, if longer) means the collector is stuck.
const STALL: Duration = Duration::from_millis(250);
const ATTEMPTS: u32 = 4;
const FIRST_PAUSE: Duration = Duration::from_millis(200);

/// What became of a session's records.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Records handed to the exporter.
    pub offered: u64,
    /// Records the collector accepted (answered 2xx).
    pub exported: u64,
    /// The first thing that went wrong, if anything did.
    pub error: Option<String>,
}

impl Report {
    pub fn missing(&self) -> u64 {
        self.offered.saturating_sub(self.exported)
    }
}

#[derive(Debug, Default)]
struct State {
    in_flight_since: Option<Instant>,
    /// The last attempt got no answer at all (refused, timed out, cut).
    down: bool,
    slowest_answer: Duration,
    first_error: Option<String>,
    done: bool,
}

#[derive(Debug, Default)]
struct Shared {
    offered: AtomicU64,
    exported: AtomicU64,
    ending: AtomicBool,
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn note_error(&self, e: impl Into<String>) {
        let mut st = self.state();
        if st.first_error.is_none() {
            st.first_error = Some(e.into());
        }
    }

    fn report(&self) -> Report {
        Report {
            offered: self.offered.load(Ordering::SeqCst),
            exported: self.exported.load(Ordering::SeqCst),
            error: self.state().first_error.clone(),
        }
    }
}

/// Hands records to the exporter; cheap to clone, never blocks.
#[derive(Clone, Debug)]
pub struct Sink {
    tx: SyncSender<Line>,
    shared: Arc<Shared>,
    capacity: usize,
}

impl Sink {
    pub fn offer(&self, line: Line) {
        self.shared.offered.fetch_add(1, Ordering::SeqCst);
        match self.tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.shared.note_error(format!("more than {} records waited to be sent", self.capacity));
            }
            Err(TrySendError::Disconnected(_)) => self.shared.note_error("the exporter stopped"),
        }
    }
}

#[derive(Debug)]
pub struct Exporter {
    sink: Sink,
    shared: Arc<Shared>,
    endpoint: String,
}

impl Exporter {
    /// Starts the thread that sends what the [`Sink`] is offered.
    pub fn start(config: Config, ctx: SessionContext) -> Exporter {
        let endpoint = config.endpoint.to_string();
        let (tx, rx) = std::sync::mpsc::sync_channel(config.max_queue);
        let shared = Arc::new(Shared::default());
        let sink = Sink { tx, shared: Arc::clone(&shared), capacity: config.max_queue };
        let thread_shared = Arc::clone(&shared);
        let spawned = std::thread::Builder::new().name("ws-otlp".into()).spawn(move || {
            run(&config, &ctx, &rx, &thread_shared);
            thread_shared.state().done = true;
            thread_shared.changed.notify_all();
        });
        if let Err(e) = spawned {
            shared.note_error(format!("cannot start the exporter's thread: {e}"));
            shared.state().done = true;
        }
        Exporter { sink, shared, endpoint }
    }

    /// Where the records go, for messages.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn sink(&self) -> Sink {
        self.sink.clone()
    }

    /// Sends what is still queued, waiting at most `bound`, and only while
    /// the collector answers; then says what became of the records. The
    /// thread is left to the process's exit if it is not done.
    pub fn finish(self, bound: Duration) -> Report {
        self.shared.ending.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + bound;
        let mut st = self.shared.state();
        loop {
            let now = Instant::now();
            let stuck = st.in_flight_since.is_some_and(|t| now - t > STALL.max(st.slowest_answer * 4));
            if st.done || st.down || stuck || now >= deadline {
                break;
            }
            let wait = (deadline - now).min(Duration::from_millis(10));
            st = self.shared.changed.wait_timeout(st, wait).unwrap_or_else(std::sync::PoisonError::into_inner).0;
        }
        drop(st);
        self.shared.report()
    }
}

fn run(config: &Config, ctx: &SessionContext, rx: &Receiver<Line>, shared: &Shared) {
    let mut batch: Vec<Line> = Vec::new();
    let mut batch_started = Instant::now();
    let mut sent_any = false;
    let push = |batch: &mut Vec<Line>, line: Line, started: &mut Instant| {
        if batch.is_empty() {
            *started = Instant::now();
        }
        batch.push(line);
    };
    loop {
        let ending = shared.ending.load(Ordering::SeqCst);
        let mut disconnected = false;
        while batch.len() < config.max_batch {
            match rx.try_recv() {
                Ok(l) => push(&mut batch, l, &mut batch_started),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    disconnected = true;
                    break;
                }
            }
        }
        let due = batch.len() >= config.max_batch || ending || disconnected || !sent_any;
        if !batch.is_empty() && (due || batch_started.elapsed() >= config.delay) {
            send(config, ctx, &batch, shared, &shared.ending);
            sent_any = true;
            batch.clear();
            continue;
        }
        if ending || disconnected {
            return;
        }
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(l) => push(&mut batch, l, &mut batch_started),
            Err(_) => continue,
        }
    }
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// One attempt: the request, its answer, and what it says of the collector.
fn attempt(config: &Config, ctx: &SessionContext, lines: &[Line], shared: &Shared) -> Result<(), ExportError> {
    let (bytes, content_type) = body(&request(&config.resource, ctx, lines, now_ns()), config.protocol);
    let started = Instant::now();
    shared.state().in_flight_since = Some(started);
    let result = crate::http::post(&config.endpoint, &config.headers, content_type, &bytes, config.timeout).and_then(
        |(status, body)| match status {
            200..=299 => Ok(()),
            _ => Err(ExportError::Status { status, body }),
        },
    );
    let mut st = shared.state();
    st.in_flight_since = None;
    st.down = matches!(result, Err(ExportError::Connect(_) | ExportError::Timeout(_) | ExportError::Io(_)));
    if !st.down {
        st.slowest_answer = st.slowest_answer.max(started.elapsed());
    }
    drop(st);
    shared.changed.notify_all();
    result
}

/// Sends one batch, retrying what OTLP allows; counts what was accepted.
/// Pauses end early once `ending` is set: the session is over and will
/// not wait for a collector that needs them.
fn send(config: &Config, ctx: &SessionContext, lines: &[Line], shared: &Shared, ending: &AtomicBool) -> bool {
    let attempts = if shared.state().down { 1 } else { ATTEMPTS };
    let mut pause = FIRST_PAUSE;
    for n in 1..=attempts {
        match attempt(config, ctx, lines, shared) {
            Ok(()) => {
                shared.exported.fetch_add(lines.len() as u64, Ordering::SeqCst);
                return true;
            }
            Err(e) => {
                // Kept even if a retry succeeds: said only if records are missing.
                shared.note_error(e.to_string());
                if n == attempts || !e.retryable() {
                    return false;
                }
                let until = Instant::now() + pause;
                while Instant::now() < until && !ending.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(10));
                }
                if ending.load(Ordering::SeqCst) && shared.state().down {
                    return false;
                }
                pause *= 2;
            }
        }
    }
    false
}

/// Sends a whole log now (`ws audit export`), batch after batch, each with
/// its retries; stops at the first batch the collector could not be reached
/// for, as the rest would fare no better.
pub fn export_all(config: &Config, ctx: &SessionContext, lines: &[Line]) -> Report {
    let shared = Shared::default();
    shared.offered.store(lines.len() as u64, Ordering::SeqCst);
    let never = AtomicBool::new(false);
    for chunk in lines.chunks(config.max_batch.max(1)) {
        if !send(config, ctx, chunk, &shared, &never) && shared.state().down {
            break;
        }
    }
    shared.report()
}
