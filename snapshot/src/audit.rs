//! The audit log of one session: append-only JSON lines, hash-chained.
//!
//! ```text
//! sessions/SID/audit.jsonl   one record per line
//! sessions/SID/audit.seal    {"records":N,"last":"<hash of line N>"}, written when the session ends
//! ```
//! Every record carries `seq` (0, 1, 2, … in file order) and `prev`: the
//! BLAKE3 hash, in hex, of the exact bytes of the line before it (without its
//! newline); the first record's `prev` is the hash of [`genesis`]`(session id)`,
//! so a log cannot be passed off as another session's. [`verify`] walks the
//! chain and names the first record that does not fit: an edited record breaks
//! the link of the one after it, a removed, inserted or reordered one breaks
//! the `seq` sequence, and the seal catches what the chain alone cannot — a
//! record appended after the end, an edit of the last record, or records cut
//! off the end.
//!
//! The chain proves the log has not been changed since it was written; it is
//! not a signature: someone able to write the store can rewrite the whole
//! chain. What keeps the session itself from doing so is that the store is
//! hidden from it.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::store::Store;

pub const LOG_FILE: &str = "audit.jsonl";
pub const SEAL_FILE: &str = "audit.seal";

/// One line of the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub seq: u64,
    /// Unix time in milliseconds.
    pub time_ms: u64,
    #[serde(flatten)]
    pub event: Event,
    /// BLAKE3 (hex) of the previous line's bytes.
    pub prev: String,
}

/// What a record says happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    SessionStart {
        session: String,
        profile: String,
        command: Vec<String>,
        /// Enforcement layers actually applied (`landlock`, `seccomp`, `namespaces`, …).
        layers: Vec<String>,
        /// Layers the profile asks for that were given up (`--allow-degraded`).
        #[serde(default)]
        not_enforced: Vec<String>,
        recording: Recording,
    },
    /// A change to the filesystem made by a process of the session.
    Write {
        /// The writer's pid inside the session's PID namespace.
        pid: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exe: Option<String>,
        /// What happened: `create`, `modify`, `close_write`, `delete`, `rename`, `attrib`.
        ops: Vec<WriteOp>,
        /// Workspace-relative path (for a rename: the old name).
        path: String,
        /// A rename's new name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<String>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        dir: bool,
    },
    /// A workspace path changed during the session by a process outside it
    /// (the user's editor): reported once per path, never the session's.
    OutsideWrite { path: String },
    /// An access the sandbox refused.
    Denial {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pid: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exe: Option<String>,
        /// Kernel names of the blocked accesses (`fs.write_file`, `net.connect_tcp`, …).
        access: Vec<String>,
        /// The object: a path (for create/remove the directory), or `addr:port`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        object: Option<String>,
        /// Which layer refused (`landlock`, `proxy`, …).
        by: String,
    },
    /// A network request through the session's proxy.
    Net {
        method: String,
        host: String,
        path: String,
        /// `allow` or `deny`.
        decision: String,
        /// The profile rule that decided it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rule: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<u16>,
        #[serde(default)]
        bytes_up: u64,
        #[serde(default)]
        bytes_down: u64,
        /// The credential injected, by name (never its value).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        credential: Option<String>,
        /// Why it was refused or failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The record stopped being complete here: events were lost.
    Incomplete {
        /// `writes`, `denials` or `net`.
        what: String,
        reason: String,
    },
    /// A path on git's control surface the session created, changed or
    /// deleted (or its git directory, replaced), which ws put back as the
    /// before-snapshot had it when the session ended (see `git_guard`).
    GitGuard {
        /// Workspace-relative path.
        path: String,
        /// `created`, `modified`, `deleted` or `replaced`.
        change: String,
        /// Whether ws restored it; `false`: it is still as the session left it.
        restored: bool,
    },
    SessionEnd {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signal: Option<i32>,
        /// Whether every recorder ran to the end without losing events.
        complete: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteOp {
    Create,
    Modify,
    CloseWrite,
    Delete,
    Rename,
    Attrib,
}

impl WriteOp {
    pub fn name(self) -> &'static str {
        match self {
            WriteOp::Create => "create",
            WriteOp::Modify => "modify",
            WriteOp::CloseWrite => "close_write",
            WriteOp::Delete => "delete",
            WriteOp::Rename => "rename",
            WriteOp::Attrib => "attrib",
        }
    }
}

/// Which recorders ran for a session, and what they could not capture.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recording {
    /// The write recorder: `fanotify` (every write, attributed), or `none`
    /// (the snapshot diff alone says what changed, all of it counted as the
    /// session's).
    pub writes: String,
    /// The denial recorder: `landlock-audit`, or `none`.
    pub denials: String,
    /// Where both come from when not from the session itself: the recorder
    /// service (`recorder service /run/ws/recorder.sock`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// What is not recorded and why (a recorder that could not run).
    #[serde(default)]
    pub gaps: Vec<String>,
    /// Events a running recorder lost (queue overflow, crash): the record
    /// is incomplete.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lost: Vec<String>,
}

impl Recording {
    /// Whether every recorder that ran recorded to the end without loss.
    pub fn complete(&self) -> bool {
        self.lost.is_empty()
    }
}

/// What a verified log contains.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub records: u64,
    /// Whether the log was sealed (its session ended) and matches its seal.
    pub sealed: bool,
    pub writes: u64,
    pub denials: u64,
    pub net: u64,
    /// Reasons of `incomplete` records.
    pub incomplete: Vec<String>,
}

/// The end of a finished log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seal {
    pub records: u64,
    pub last: String,
}

/// Where and why a log fails verification. `line` is 1-based.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("record at line {line}: {why}")]
pub struct VerifyError {
    pub line: u64,
    pub why: Tamper,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Tamper {
    #[error("is not a valid record: {why}")]
    NotARecord {
        /// The parser's complaint, with the column where it stopped.
        why: String,
    },
    #[error("is cut short (no end of line)")]
    CutShort,
    #[error("does not start the chain of session {session} (edited, or the log of another session)")]
    WrongStart { session: String },
    #[error("was changed after it was written (line {next} no longer chains to it)")]
    Edited { next: u64 },
    #[error("has seq {found} where {expected} belongs: {} removed", range(*.expected, *.found))]
    Removed { expected: u64, found: u64 },
    #[error("has seq {found} where {expected} belongs: records were reordered")]
    Reordered { expected: u64, found: u64 },
    #[error("has seq {found} where {expected} belongs: a record was inserted or duplicated")]
    Inserted { expected: u64, found: u64 },
    #[error("was appended after the log was sealed with {sealed} records")]
    Appended { sealed: u64 },
    #[error("is the last, but the log was sealed with {sealed} records: the rest were removed")]
    Truncated { sealed: u64 },
    #[error("is the last and was changed after the log was sealed")]
    EditedLast,
}

fn range(from: u64, to: u64) -> String {
    if to == from + 1 { format!("record {from} was") } else { format!("records {from}..{} were", to - 1) }
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot open the audit log {path}")]
    Open { path: PathBuf, source: std::io::Error },
    #[error("cannot write the audit log {path}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("the audit log {path} is damaged")]
    Damaged { path: PathBuf, source: VerifyError },
    #[error("cannot read the audit seal {path}")]
    ReadSeal { path: PathBuf, source: std::io::Error },
    #[error("the audit seal {path} is damaged: {what}")]
    DamagedSeal { path: PathBuf, what: String },
}

/// `prev` of a session's first record.
pub fn genesis(session: &str) -> String {
    blake3::hash(format!("ws audit log 1\0{session}").as_bytes()).to_hex().to_string()
}

fn line_hash(line: &[u8]) -> String {
    blake3::hash(line).to_hex().to_string()
}

/// Told of every record appended, with its exact line (no newline), in the
/// log's order: it is called under the log's lock, so it must not block
/// (the OTLP exporter only queues).
pub type Observer = Box<dyn Fn(&Record, &[u8]) + Send + Sync>;

/// An open audit log, appended to by one process (share it between threads).
pub struct AuditLog {
    path: PathBuf,
    inner: Mutex<Tail>,
    observer: Option<Observer>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").field("path", &self.path).field("observed", &self.observer.is_some()).finish()
    }
}

#[derive(Debug)]
struct Tail {
    out: BufWriter<File>,
    next: u64,
    prev: String,
}

impl AuditLog {
    /// Starts a new, empty log; fails if one exists.
    pub fn create(path: &Path, session: &str) -> Result<AuditLog, AuditError> {
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|source| AuditError::Open { path: path.to_path_buf(), source })?;
        let tail = Tail { out: BufWriter::new(file), next: 0, prev: genesis(session) };
        Ok(AuditLog { path: path.to_path_buf(), inner: Mutex::new(tail), observer: None })
    }

    /// Opens an existing log to append to it (after verifying it); creates it
    /// if it does not exist.
    pub fn open(path: &Path, session: &str) -> Result<AuditLog, AuditError> {
        if !path.exists() {
            return AuditLog::create(path, session);
        }
        let (summary, last) = walk(path, session, None)?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|source| AuditError::Open { path: path.to_path_buf(), source })?;
        let tail =
            Tail { out: BufWriter::new(file), next: summary.records, prev: last.unwrap_or_else(|| genesis(session)) };
        Ok(AuditLog { path: path.to_path_buf(), inner: Mutex::new(tail), observer: None })
    }

    /// The log with `observer` told of every record appended from now on.
    pub fn observed(mut self, observer: Observer) -> AuditLog {
        self.observer = Some(observer);
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn tail(&self) -> std::sync::MutexGuard<'_, Tail> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Appends one record (buffered: see [`AuditLog::flush`]); returns its seq.
    pub fn append(&self, time_ms: u64, event: Event) -> Result<u64, AuditError> {
        let mut t = self.tail();
        let record = Record { seq: t.next, time_ms, event, prev: std::mem::take(&mut t.prev) };
        let line = serde_json::to_vec(&record).map_err(|e| self.write_error(e.into()))?;
        t.prev = line_hash(&line);
        t.next += 1;
        t.out.write_all(&line).and_then(|()| t.out.write_all(b"\n")).map_err(|e| self.write_error(e))?;
        if let Some(observe) = &self.observer {
            observe(&record, &line);
        }
        Ok(record.seq)
    }

    pub fn flush(&self) -> Result<(), AuditError> {
        self.tail().out.flush().map_err(|e| self.write_error(e))
    }

    /// Flushes, syncs and writes the seal: nothing may be appended after.
    pub fn seal(&self) -> Result<Seal, AuditError> {
        let mut t = self.tail();
        t.out.flush().and_then(|()| t.out.get_ref().sync_all()).map_err(|e| self.write_error(e))?;
        let seal = Seal { records: t.next, last: t.prev.clone() };
        let seal_path = self.path.with_file_name(SEAL_FILE);
        let tmp = self.path.with_file_name(format!("{SEAL_FILE}.tmp"));
        let json = serde_json::to_vec(&seal).map_err(|e| self.write_error(e.into()))?;
        std::fs::write(&tmp, json)
            .and_then(|()| std::fs::rename(&tmp, &seal_path))
            .map_err(|source| AuditError::Write { path: seal_path, source })?;
        Ok(seal)
    }

    pub fn records(&self) -> u64 {
        self.tail().next
    }

    fn write_error(&self, source: std::io::Error) -> AuditError {
        AuditError::Write { path: self.path.clone(), source }
    }
}

/// Parses one line of a log (without its newline).
pub fn parse_line(line: &[u8]) -> Option<Record> {
    parse_record(line).ok()
}

/// Parses one line, or says why it is not a record and at which column.
fn parse_record(line: &[u8]) -> Result<Record, Tamper> {
    serde_json::from_slice(line).map_err(|e| Tamper::NotARecord { why: json_problem(&e) })
}

/// serde_json's message with its position as a column: each record is one
/// line, so its "line 1" would only mislead next to the log's line number.
fn json_problem(e: &serde_json::Error) -> String {
    let full = e.to_string();
    let what = full.rsplit_once(" at line ").map_or(full.as_str(), |(what, _)| what);
    // A type error found at the first character is reported at column 0.
    format!("{what} at column {}", e.column().max(1))
}

/// Reads a log's seal: `None` if the log was never sealed (its session is
/// running, or its supervisor died). A seal that exists but cannot be read
/// or parsed is an error, never taken for an unsealed log: that would hide
/// records cut off the end.
pub fn read_seal(log: &Path) -> Result<Option<Seal>, AuditError> {
    let path = log.with_file_name(SEAL_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(AuditError::ReadSeal { path, source }),
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        let what = e.to_string();
        AuditError::DamagedSeal { path, what }
    })
}

/// Verifies the log at `log` (and its seal, if there is one) for `session`.
pub fn verify(log: &Path, session: &str) -> Result<Summary, AuditError> {
    let seal = read_seal(log)?;
    walk(log, session, seal.as_ref()).map(|(s, _)| s)
}

/// The records of a log, for reading (no verification of the chain). A line
/// that is not a record is an error naming it; a last line without its
/// newline is left out: a writer killed mid-append leaves one.
pub fn read(log: &Path) -> Result<Vec<Record>, AuditError> {
    let bytes = std::fs::read(log).map_err(|source| AuditError::Open { path: log.to_path_buf(), source })?;
    records(log, &bytes)
}

/// Parses a log's lines; a damaged one is an error naming its line.
fn records(log: &Path, bytes: &[u8]) -> Result<Vec<Record>, AuditError> {
    let damaged = |i: usize, why| AuditError::Damaged {
        path: log.to_path_buf(),
        source: VerifyError { line: i as u64 + 1, why },
    };
    bytes
        .split_inclusive(|b| *b == b'\n')
        .enumerate()
        .filter_map(|(i, raw)| raw.strip_suffix(b"\n").map(|line| (i, line)))
        .map(|(i, line)| parse_record(line).map_err(|why| damaged(i, why)))
        .collect()
}

/// The records of a log, for reading, if it holds a record of type `kind`
/// (`"outside_write"`); `None` if it holds none. The tag is looked for in the
/// bytes first, which spares parsing a long log of writes to learn that it
/// holds no record of that type: a record's tag is its one place where
/// `"type":"…"` can occur, since JSON escapes every quote inside a string.
pub fn read_if_any(log: &Path, kind: &str) -> Result<Option<Vec<Record>>, AuditError> {
    let bytes = std::fs::read(log).map_err(|source| AuditError::Open { path: log.to_path_buf(), source })?;
    let tag = format!("\"type\":\"{kind}\"");
    if !bytes.windows(tag.len()).any(|w| w == tag.as_bytes()) {
        return Ok(None);
    }
    records(log, &bytes).map(Some)
}

/// Checks the chain; returns the summary and the hash of the last line.
fn walk(path: &Path, session: &str, seal: Option<&Seal>) -> Result<(Summary, Option<String>), AuditError> {
    let file = File::open(path).map_err(|source| AuditError::Open { path: path.to_path_buf(), source })?;
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let mut reader = BufReader::new(file);
    loop {
        let mut line = Vec::new();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|source| AuditError::Open { path: path.to_path_buf(), source })?;
        if n == 0 {
            break;
        }
        lines.push(line);
    }
    check(&lines, session, seal).map_err(|source| AuditError::Damaged { path: path.to_path_buf(), source })
}

/// The chain rules over the raw lines (each with its newline, if it has one).
fn check(lines: &[Vec<u8>], session: &str, seal: Option<&Seal>) -> Result<(Summary, Option<String>), VerifyError> {
    let fail = |i: usize, why: Tamper| VerifyError { line: i as u64 + 1, why };
    let mut records = Vec::with_capacity(lines.len());
    for (i, raw) in lines.iter().enumerate() {
        let Some(body) = raw.strip_suffix(b"\n") else { return Err(fail(i, Tamper::CutShort)) };
        records.push(parse_record(body).map_err(|why| fail(i, why))?);
    }
    let mut summary = Summary::default();
    let mut prev = genesis(session);
    for (i, r) in records.iter().enumerate() {
        let expected = i as u64;
        if let Some(s) = seal
            && expected >= s.records
        {
            return Err(fail(i, Tamper::Appended { sealed: s.records }));
        }
        if r.seq != expected {
            let why = if r.seq < expected {
                Tamper::Inserted { expected, found: r.seq }
            } else if records[i + 1..].iter().any(|later| later.seq == expected) {
                Tamper::Reordered { expected, found: r.seq }
            } else {
                Tamper::Removed { expected, found: r.seq }
            };
            return Err(fail(i, why));
        }
        if r.prev != prev {
            return Err(if i == 0 {
                fail(0, Tamper::WrongStart { session: session.to_owned() })
            } else {
                fail(i - 1, Tamper::Edited { next: i as u64 + 1 })
            });
        }
        prev = line_hash(&lines[i][..lines[i].len() - 1]);
        match &r.event {
            Event::Write { .. } => summary.writes += 1,
            // A change to git's control surface undone is a refusal too.
            Event::Denial { .. } | Event::GitGuard { .. } => summary.denials += 1,
            Event::Net { .. } => summary.net += 1,
            Event::Incomplete { what, reason } => summary.incomplete.push(format!("{what}: {reason}")),
            Event::SessionStart { .. } | Event::SessionEnd { .. } | Event::OutsideWrite { .. } => {}
        }
    }
    summary.records = records.len() as u64;
    if let Some(s) = seal {
        if summary.records < s.records {
            let last = records.len().saturating_sub(1);
            return Err(fail(last, Tamper::Truncated { sealed: s.records }));
        }
        if prev != s.last {
            return Err(fail(records.len().saturating_sub(1), Tamper::EditedLast));
        }
        summary.sealed = true;
    }
    Ok((summary, (!records.is_empty()).then_some(prev)))
}

impl Store {
    /// The audit log of a session.
    pub fn audit_log_path(&self, session: &str) -> PathBuf {
        self.sessions_dir().join(session).join(LOG_FILE)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const SID: &str = "0badcafe";

    fn write(i: u64) -> Event {
        Event::Write {
            pid: 2,
            exe: Some("/bin/sh".into()),
            ops: vec![WriteOp::Create],
            path: format!("f{i}"),
            to: None,
            dir: false,
        }
    }

    /// A sealed log of `n` records; returns its path and lines.
    fn sample(dir: &Path, n: u64, seal: bool) -> (PathBuf, Vec<Vec<u8>>) {
        let path = dir.join(LOG_FILE);
        let log = AuditLog::create(&path, SID).unwrap();
        log.append(
            1,
            Event::SessionStart {
                session: SID.into(),
                profile: "default".into(),
                command: vec!["sh".into()],
                layers: vec!["landlock".into()],
                not_enforced: vec![],
                recording: Recording { writes: "fanotify".into(), denials: "none".into(), ..Recording::default() },
            },
        )
        .unwrap();
        for i in 1..n.saturating_sub(1) {
            log.append(1 + i, write(i)).unwrap();
        }
        log.append(n, Event::SessionEnd { exit_code: Some(0), signal: None, complete: true }).unwrap();
        if seal {
            log.seal().unwrap();
        } else {
            log.flush().unwrap();
        }
        let lines = std::fs::read(&path).unwrap().split_inclusive(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
        (path, lines)
    }

    #[test]
    fn the_observer_sees_every_record_as_written_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
        let s2 = std::sync::Arc::clone(&seen);
        let path = dir.path().join(LOG_FILE);
        let log = AuditLog::create(&path, SID).unwrap().observed(Box::new(move |r: &Record, line: &[u8]| {
            s2.lock().unwrap().push((r.seq, line.to_vec()));
        }));
        for i in 0..5 {
            log.append(i, write(i)).unwrap();
        }
        log.seal().unwrap();
        let on_disk: Vec<Vec<u8>> = std::fs::read(&path)
            .unwrap()
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        let seen = seen.lock().unwrap();
        assert_eq!(seen.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
        assert_eq!(seen.iter().map(|(_, l)| l.clone()).collect::<Vec<_>>(), on_disk);
    }

    fn rewrite(path: &Path, lines: &[Vec<u8>]) {
        std::fs::write(path, lines.concat()).unwrap();
    }

    fn failure(path: &Path) -> VerifyError {
        match verify(path, SID) {
            Err(AuditError::Damaged { source, .. }) => source,
            other => panic!("expected a damaged log, got {other:?}"),
        }
    }

    #[test]
    fn intact_logs_verify_sealed_or_not() {
        let d = tempfile::tempdir().unwrap();
        let (path, lines) = sample(d.path(), 6, true);
        let s = verify(&path, SID).unwrap();
        assert_eq!((s.records, s.writes, s.sealed), (6, 4, true));
        assert_eq!(lines.len(), 6);
        let first: serde_json::Value = serde_json::from_slice(&lines[1]).unwrap();
        assert_eq!(first["type"], "write");
        assert_eq!(first["seq"], 1);
        assert_eq!(first["prev"], line_hash(&lines[0][..lines[0].len() - 1]));

        let d2 = tempfile::tempdir().unwrap();
        let (path, _) = sample(d2.path(), 3, false);
        let s = verify(&path, SID).unwrap();
        assert_eq!((s.records, s.sealed), (3, false));
    }

    #[test]
    fn every_single_byte_edit_of_every_record_is_named() {
        let d = tempfile::tempdir().unwrap();
        let (path, lines) = sample(d.path(), 5, true);
        for i in 0..lines.len() {
            // Change one character inside a string value: still valid JSON.
            let at = lines[i].windows(3).position(|w| w == b"\":\"").map(|p| p + 3).unwrap();
            let mut edited = lines.clone();
            edited[i][at] = if edited[i][at] == b'x' { b'y' } else { b'x' };
            rewrite(&path, &edited);
            let e = failure(&path);
            assert_eq!(e.line, i as u64 + 1, "edit of line {} reported as {e}", i + 1);
        }
        // A numeric field, the seq itself, and a line that is no longer JSON.
        let mut edited = lines.clone();
        edited[2] = String::from_utf8(edited[2].clone()).unwrap().replace("\"time_ms\":3", "\"time_ms\":4").into();
        rewrite(&path, &edited);
        assert_eq!(failure(&path).line, 3);
        let mut edited = lines.clone();
        edited[3][0] = b'[';
        rewrite(&path, &edited);
        let e = failure(&path);
        assert_eq!(e.line, 4);
        assert!(matches!(&e.why, Tamper::NotARecord { why } if why.ends_with("at column 1")), "{e}");
    }

    #[test]
    fn a_removed_record_is_named() {
        let d = tempfile::tempdir().unwrap();
        let (path, lines) = sample(d.path(), 6, true);
        for i in 0..lines.len() - 1 {
            let mut cut = lines.clone();
            cut.remove(i);
            rewrite(&path, &cut);
            let e = failure(&path);
            assert_eq!(e.line, i as u64 + 1, "{e}");
            assert!(
                matches!(e.why, Tamper::Removed { expected, found } if expected == i as u64 && found == i as u64 + 1)
            );
        }
    }

    #[test]
    fn reordered_and_duplicated_records_are_named() {
        let d = tempfile::tempdir().unwrap();
        let (path, lines) = sample(d.path(), 6, true);
        let mut swapped = lines.clone();
        swapped.swap(2, 3);
        rewrite(&path, &swapped);
        assert_eq!(failure(&path), VerifyError { line: 3, why: Tamper::Reordered { expected: 2, found: 3 } });
        let mut dup = lines.clone();
        dup.insert(3, lines[2].clone());
        rewrite(&path, &dup);
        assert_eq!(failure(&path), VerifyError { line: 4, why: Tamper::Inserted { expected: 3, found: 2 } });
    }

    #[test]
    fn a_record_forged_into_the_sequence_breaks_the_chain() {
        // Renumbering every later record keeps seq consistent; the chain still breaks.
        let d = tempfile::tempdir().unwrap();
        let (path, lines) = sample(d.path(), 5, false);
        let mut forged: Vec<Vec<u8>> = lines[..2].to_vec();
        let fake = Record { seq: 2, time_ms: 9, event: write(99), prev: "0".repeat(64) };
        forged.push([serde_json::to_vec(&fake).unwrap(), b"\n".to_vec()].concat());
        rewrite(&path, &forged);
        assert_eq!(failure(&path), VerifyError { line: 2, why: Tamper::Edited { next: 3 } });
    }

    #[test]
    fn truncation_appending_and_a_last_edit_are_caught_by_the_seal() {
        let d = tempfile::tempdir().unwrap();
        let (path, lines) = sample(d.path(), 5, true);
        rewrite(&path, &lines[..3]);
        assert_eq!(failure(&path), VerifyError { line: 3, why: Tamper::Truncated { sealed: 5 } });
        rewrite(&path, &lines[..0]);
        assert!(matches!(failure(&path).why, Tamper::Truncated { sealed: 5 }));

        // Cut in the middle of a line.
        let mut cut = lines.concat();
        cut.truncate(cut.len() - 10);
        std::fs::write(&path, &cut).unwrap();
        assert_eq!(failure(&path), VerifyError { line: 5, why: Tamper::CutShort });

        // A correctly chained record appended after the seal.
        rewrite(&path, &lines);
        let log = AuditLog::open(&path, SID).unwrap();
        log.append(7, write(7)).unwrap();
        log.flush().unwrap();
        assert_eq!(failure(&path), VerifyError { line: 6, why: Tamper::Appended { sealed: 5 } });

        // The last record edited and the chain fixed up cannot match the seal.
        let mut edited = lines.clone();
        edited[4] = String::from_utf8(edited[4].clone()).unwrap().replace("\"exit_code\":0", "\"exit_code\":1").into();
        rewrite(&path, &edited);
        assert_eq!(failure(&path), VerifyError { line: 5, why: Tamper::EditedLast });
    }

    #[test]
    fn a_log_does_not_verify_as_another_sessions() {
        let d = tempfile::tempdir().unwrap();
        let (path, _) = sample(d.path(), 3, false);
        match verify(&path, "other") {
            Err(AuditError::Damaged { source, .. }) => {
                assert_eq!(source, VerifyError { line: 1, why: Tamper::WrongStart { session: "other".into() } })
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reopening_continues_the_chain() {
        let d = tempfile::tempdir().unwrap();
        let (path, _) = sample(d.path(), 3, false);
        let log = AuditLog::open(&path, SID).unwrap();
        assert_eq!(log.records(), 3);
        log.append(5, write(5)).unwrap();
        log.seal().unwrap();
        assert_eq!(verify(&path, SID).unwrap().records, 4);
        assert!(AuditLog::create(&path, SID).is_err(), "create must not clobber a log");
    }

    #[test]
    fn records_round_trip_every_event_type() {
        let events = vec![
            Event::Denial {
                pid: Some(3),
                exe: None,
                access: vec!["fs.write_file".into()],
                object: Some("/etc/passwd".into()),
                by: "landlock".into(),
            },
            Event::Net {
                method: "GET".into(),
                host: "example.com".into(),
                path: "/".into(),
                decision: "deny".into(),
                rule: None,
                status: Some(403),
                bytes_up: 1,
                bytes_down: 2,
                credential: Some("anthropic".into()),
                reason: None,
            },
            Event::Incomplete { what: "writes".into(), reason: "fanotify queue overflow".into() },
            Event::Write {
                pid: 1,
                exe: None,
                ops: vec![WriteOp::Rename],
                path: "a".into(),
                to: Some("b/a".into()),
                dir: true,
            },
        ];
        for e in events {
            let r = Record { seq: 1, time_ms: 2, event: e, prev: "p".into() };
            let s = serde_json::to_vec(&r).unwrap();
            assert_eq!(parse_line(&s).unwrap(), r, "{}", String::from_utf8_lossy(&s));
        }
    }
}
