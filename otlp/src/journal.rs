//! Audit records as structured journal entries, over journald's native
//! protocol: one datagram per record to `/run/systemd/journal/socket`.
//!
//! Fields are the OTLP attributes renamed the journal's way (`ws.session.id`
//! is `WS_SESSION`, `file.path` is `WS_FILE_PATH`; a list repeats its
//! field), plus `MESSAGE`, `PRIORITY`, `SYSLOG_IDENTIFIER=ws` and
//! `WS_RECORD`, the log's line. Sending never blocks: a datagram the socket
//! will not take at once is counted as not sent.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use opentelemetry_proto::tonic::common::v1::any_value::Value;

use crate::encode::{Line, SessionContext, attributes, record_type, severity};
use crate::exporter::Report;

pub const SOCKET: &str = "/run/systemd/journal/socket";

/// The journal's name for an attribute: upper case, `_` for `.`, `WS_`
/// first (never `_`: those fields are the journal's own, trusted ones).
pub fn field_name(key: &str) -> String {
    if key == "ws.session.id" {
        return "WS_SESSION".into();
    }
    let rest = key.strip_prefix("ws.").unwrap_or(key);
    let mut name = String::from("WS_");
    name.extend(rest.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }));
    name.truncate(64);
    name
}

fn field(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    if value.contains(&b'\n') {
        // The binary form: the name, a newline, the length (64-bit little endian), the bytes.
        out.push(b'\n');
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
        out.extend_from_slice(value);
    } else {
        out.push(b'=');
        out.extend_from_slice(value);
    }
    out.push(b'\n');
}

/// One record as a native-protocol datagram.
pub fn entry(ctx: &SessionContext, line: &Line) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.bytes.len() * 2 + 256);
    let attrs = attributes(ctx, line);
    let find = |k: &str| {
        attrs.iter().find(|a| a.key == k).and_then(|a| a.value.as_ref()).and_then(|v| match &v.value {
            Some(Value::StringValue(s)) => Some(s.clone()),
            _ => None,
        })
    };
    let what = find("file.path")
        .or_else(|| find("server.address").map(|h| format!("{h}{}", find("url.path").unwrap_or_default())))
        .or_else(|| find("ws.denial.object"))
        .unwrap_or_default();
    let kind = record_type(&line.record.event);
    let decision = find("ws.decision").map(|d| format!(" ({d})")).unwrap_or_default();
    field(&mut out, "MESSAGE", format!("ws session {}: {kind} {what}{decision}", ctx.session).trim_end().as_bytes());
    let warn = severity(&line.record.event) == opentelemetry_proto::tonic::logs::v1::SeverityNumber::Warn;
    field(&mut out, "PRIORITY", if warn { b"4" } else { b"6" });
    field(&mut out, "SYSLOG_IDENTIFIER", b"ws");
    for a in &attrs {
        let name = field_name(&a.key);
        match a.value.as_ref().and_then(|v| v.value.as_ref()) {
            Some(Value::StringValue(s)) => field(&mut out, &name, s.as_bytes()),
            Some(Value::IntValue(i)) => field(&mut out, &name, i.to_string().as_bytes()),
            Some(Value::BoolValue(b)) => field(&mut out, &name, b.to_string().as_bytes()),
            Some(Value::ArrayValue(list)) => {
                for v in &list.values {
                    if let Some(Value::StringValue(s)) = &v.value {
                        field(&mut out, &name, s.as_bytes());
                    }
                }
            }
            _ => {}
        }
    }
    field(&mut out, "WS_RECORD", &line.bytes);
    out
}

/// A session's connection to the journal.
#[derive(Debug)]
pub struct Journal {
    socket: UnixDatagram,
    path: PathBuf,
    ctx: SessionContext,
    offered: AtomicU64,
    sent: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Journal {
    /// Fails when there is no journal to talk to (no socket at `path`).
    pub fn open(path: &Path, ctx: SessionContext) -> std::io::Result<Journal> {
        std::fs::symlink_metadata(path)?;
        let socket = UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        Ok(Journal {
            socket,
            path: path.to_path_buf(),
            ctx,
            offered: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            first_error: Mutex::new(None),
        })
    }

    pub fn send(&self, line: &Line) {
        self.offered.fetch_add(1, Ordering::SeqCst);
        match self.socket.send_to(&entry(&self.ctx, line), &self.path) {
            Ok(_) => {
                self.sent.fetch_add(1, Ordering::SeqCst);
            }
            Err(e) => {
                let mut first = self.first_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if first.is_none() {
                    *first = Some(format!("{}: {e}", self.path.display()));
                }
            }
        }
    }

    pub fn report(&self) -> Report {
        Report {
            offered: self.offered.load(Ordering::SeqCst),
            exported: self.sent.load(Ordering::SeqCst),
            error: self.first_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use ws_snapshot::audit::{Event, Record};

    use super::*;

    #[test]
    fn fields_in_the_native_protocol() {
        let record = Record {
            seq: 4,
            time_ms: 1,
            event: Event::Denial {
                pid: Some(7),
                exe: None,
                access: vec!["fs.read_file".into(), "fs.write_file".into()],
                object: Some("/home/u/.ssh/id\nx".into()),
                by: "landlock".into(),
            },
            prev: "p".into(),
        };
        let bytes = serde_json::to_vec(&record).unwrap();
        let ctx = SessionContext { session: "3fa2".into(), workspace: "/w".into(), profile: "default".into() };
        let e = entry(&ctx, &Line { record, bytes: bytes.clone() });
        let text = String::from_utf8_lossy(&e);
        assert!(text.starts_with("MESSAGE\n"), "a message with a newline is binary: {text}");
        assert!(text.contains("\nPRIORITY=4\n") && text.contains("\nWS_SESSION=3fa2\n"), "{text}");
        assert!(text.contains("\nWS_AUDIT_SEQ=4\n") && text.contains("\nWS_DECISION=deny\n"), "{text}");
        assert!(text.contains("\nWS_DENIAL_ACCESS=fs.read_file\nWS_DENIAL_ACCESS=fs.write_file\n"), "{text}");
        assert!(text.contains("\nWS_PROCESS_PID=7\n"), "{text}");
        // The object holds a newline: length-prefixed, the bytes exact.
        let mut object = b"\nWS_DENIAL_OBJECT\n".to_vec();
        object.extend_from_slice(&17u64.to_le_bytes());
        object.extend_from_slice(b"/home/u/.ssh/id\nx\n");
        assert!(e.windows(object.len()).any(|w| w == object.as_slice()));
        assert!(e.ends_with(&[b"WS_RECORD=".as_slice(), &bytes, b"\n"].concat()));
        assert_eq!(field_name("http.request.method"), "WS_HTTP_REQUEST_METHOD");
    }
}
