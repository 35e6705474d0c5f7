//! An audit record as an OTLP log record, and a batch of them as the body of
//! an OTLP/HTTP request (protobuf or JSON).
//!
//! The body of each log record is the audit log's line itself, byte for
//! byte: a collector can check the chain with nothing but BLAKE3 — the
//! `ws.audit.prev` of record N is the hash of record N-1's body, and
//! `ws.audit.hash` is the hash of its own. Names follow the OpenTelemetry
//! semantic conventions where one fits (`file.path`, `server.address`,
//! `http.request.method`, `process.pid`…); the rest are `ws.*`.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message as _;
use ws_snapshot::audit::{Event, Record};

use crate::Protocol;

/// The instrumentation scope every record is sent under.
pub const SCOPE: &str = "ws.audit";

/// What every record of one session carries besides its own fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionContext {
    pub session: String,
    pub workspace: String,
    pub profile: String,
}

/// One record as the log has it: parsed, and the exact line (no newline).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub record: Record,
    pub bytes: Vec<u8>,
}

/// The record's type as the log names it (`write`, `net`, …).
pub fn record_type(e: &Event) -> &'static str {
    match e {
        Event::SessionStart { .. } => "session_start",
        Event::Write { .. } => "write",
        Event::OutsideWrite { .. } => "outside_write",
        Event::Denial { .. } => "denial",
        Event::Net { .. } => "net",
        Event::Incomplete { .. } => "incomplete",
        Event::GitGuard { .. } => "git_guard",
        Event::SessionEnd { .. } => "session_end",
    }
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue { key: key.into(), value: Some(AnyValue { value: Some(value) }), ..KeyValue::default() }
}

fn string(key: &str, v: impl Into<String>) -> KeyValue {
    kv(key, any_value::Value::StringValue(v.into()))
}

fn int(key: &str, v: i64) -> KeyValue {
    kv(key, any_value::Value::IntValue(v))
}

fn boolean(key: &str, v: bool) -> KeyValue {
    kv(key, any_value::Value::BoolValue(v))
}

fn strings(key: &str, v: &[String]) -> KeyValue {
    let values = v.iter().map(|s| AnyValue { value: Some(any_value::Value::StringValue(s.clone())) }).collect();
    kv(key, any_value::Value::ArrayValue(ArrayValue { values }))
}

/// The attributes of one record: the session's, the chain's, the event's.
pub fn attributes(ctx: &SessionContext, line: &Line) -> Vec<KeyValue> {
    let r = &line.record;
    let mut a = vec![
        string("ws.session.id", ctx.session.as_str()),
        string("ws.workspace", ctx.workspace.as_str()),
        string("ws.profile", ctx.profile.as_str()),
        string("ws.audit.type", record_type(&r.event)),
        int("ws.audit.seq", i64::try_from(r.seq).unwrap_or(i64::MAX)),
        string("ws.audit.prev", r.prev.as_str()),
        string("ws.audit.hash", blake3::hash(&line.bytes).to_hex().as_str()),
    ];
    let process = |a: &mut Vec<KeyValue>, pid: Option<u32>, exe: &Option<String>| {
        if let Some(pid) = pid {
            a.push(int("process.pid", i64::from(pid)));
        }
        if let Some(exe) = exe {
            a.push(string("process.executable.path", exe.as_str()));
        }
    };
    match &r.event {
        Event::SessionStart { command, layers, not_enforced, .. } => {
            a.push(strings("process.command_args", command));
            a.push(strings("ws.layers", layers));
            a.push(strings("ws.not_enforced", not_enforced));
        }
        Event::Write { pid, exe, ops, path, to, dir } => {
            process(&mut a, Some(*pid), exe);
            let ops: Vec<String> = ops.iter().map(|o| o.name().to_owned()).collect();
            a.push(strings("ws.write.ops", &ops));
            a.push(string("file.path", path.as_str()));
            if let Some(to) = to {
                a.push(string("ws.write.to", to.as_str()));
            }
            a.push(boolean("ws.write.dir", *dir));
        }
        Event::OutsideWrite { path } => a.push(string("file.path", path.as_str())),
        Event::Denial { pid, exe, access, object, by } => {
            process(&mut a, *pid, exe);
            a.push(string("ws.decision", "deny"));
            a.push(strings("ws.denial.access", access));
            if let Some(o) = object {
                a.push(string("ws.denial.object", o.as_str()));
            }
            a.push(string("ws.denial.by", by.as_str()));
        }
        Event::Net { method, host, path, decision, rule, status, bytes_up, bytes_down, credential, reason } => {
            a.push(string("http.request.method", method.as_str()));
            a.push(string("server.address", host.as_str()));
            a.push(string("url.path", path.as_str()));
            a.push(string("ws.decision", decision.as_str()));
            if let Some(rule) = rule {
                a.push(string("ws.rule", rule.as_str()));
            }
            if let Some(s) = status {
                a.push(int("http.response.status_code", i64::from(*s)));
            }
            a.push(int("ws.net.bytes_up", i64::try_from(*bytes_up).unwrap_or(i64::MAX)));
            a.push(int("ws.net.bytes_down", i64::try_from(*bytes_down).unwrap_or(i64::MAX)));
            if let Some(c) = credential {
                a.push(string("ws.credential", c.as_str()));
            }
            if let Some(reason) = reason {
                a.push(string("ws.reason", reason.as_str()));
            }
        }
        Event::Incomplete { what, reason } => {
            a.push(string("ws.incomplete.what", what.as_str()));
            a.push(string("ws.reason", reason.as_str()));
        }
        Event::GitGuard { path, change, restored } => {
            a.push(string("file.path", path.as_str()));
            a.push(string("ws.git_guard.change", change.as_str()));
            a.push(boolean("ws.git_guard.restored", *restored));
        }
        Event::SessionEnd { exit_code, signal, complete } => {
            if let Some(c) = exit_code {
                a.push(int("process.exit.code", i64::from(*c)));
            }
            if let Some(s) = signal {
                a.push(int("ws.signal", i64::from(*s)));
            }
            a.push(boolean("ws.complete", *complete));
        }
    }
    a
}

/// WARN for what a reviewer should look at (a refusal, a gap in the record,
/// a repaired git control file), INFO for the rest.
pub fn severity(e: &Event) -> SeverityNumber {
    match e {
        Event::Denial { .. } | Event::Incomplete { .. } | Event::GitGuard { .. } => SeverityNumber::Warn,
        Event::Net { decision, .. } if decision != "allow" => SeverityNumber::Warn,
        Event::SessionEnd { complete: false, .. } => SeverityNumber::Warn,
        _ => SeverityNumber::Info,
    }
}

pub fn log_record(ctx: &SessionContext, line: &Line, observed_ns: u64) -> LogRecord {
    let sev = severity(&line.record.event);
    LogRecord {
        time_unix_nano: line.record.time_ms.saturating_mul(1_000_000),
        observed_time_unix_nano: observed_ns,
        severity_number: sev as i32,
        severity_text: if sev == SeverityNumber::Warn { "WARN" } else { "INFO" }.into(),
        event_name: format!("ws.audit.{}", record_type(&line.record.event)),
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(String::from_utf8_lossy(&line.bytes).into_owned())),
        }),
        attributes: attributes(ctx, line),
        ..LogRecord::default()
    }
}

/// The request carrying `lines`, all of one session.
pub fn request(
    resource: &[(String, String)],
    ctx: &SessionContext,
    lines: &[Line],
    observed_ns: u64,
) -> ExportLogsServiceRequest {
    let resource =
        Resource { attributes: resource.iter().map(|(k, v)| string(k, v.as_str())).collect(), ..Resource::default() };
    let scope = InstrumentationScope {
        name: SCOPE.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..InstrumentationScope::default()
    };
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(resource),
            scope_logs: vec![ScopeLogs {
                scope: Some(scope),
                log_records: lines.iter().map(|l| log_record(ctx, l, observed_ns)).collect(),
                ..ScopeLogs::default()
            }],
            ..ResourceLogs::default()
        }],
    }
}

/// The request's body in the chosen encoding, and its content type.
pub fn body(req: &ExportLogsServiceRequest, protocol: Protocol) -> (Vec<u8>, &'static str) {
    match protocol {
        Protocol::HttpProtobuf => (req.encode_to_vec(), "application/x-protobuf"),
        // Serializing these generated types cannot fail (no maps with
        // non-string keys, no foreign Serialize impls).
        Protocol::HttpJson => (serde_json::to_vec(req).unwrap_or_default(), "application/json"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn line(seq: u64, event: Event, prev: &str) -> Line {
        let record = Record { seq, time_ms: 1_700_000_000_123, event, prev: prev.into() };
        let bytes = serde_json::to_vec(&record).unwrap();
        Line { record, bytes }
    }

    fn ctx() -> SessionContext {
        SessionContext { session: "3fa2c81e".into(), workspace: "/src/proj".into(), profile: "default".into() }
    }

    fn attr<'a>(r: &'a LogRecord, key: &str) -> Option<&'a any_value::Value> {
        r.attributes.iter().find(|a| a.key == key).and_then(|a| a.value.as_ref()).and_then(|v| v.value.as_ref())
    }

    #[test]
    fn the_body_is_the_line_and_the_hash_is_its_blake3() {
        let l = line(0, Event::OutsideWrite { path: "a".into() }, "p");
        let r = log_record(&ctx(), &l, 5);
        let Some(any_value::Value::StringValue(body)) = r.body.as_ref().and_then(|b| b.value.as_ref()) else {
            panic!("no body")
        };
        assert_eq!(body.as_bytes(), l.bytes);
        let Some(any_value::Value::StringValue(h)) = attr(&r, "ws.audit.hash") else { panic!() };
        assert_eq!(h, blake3::hash(body.as_bytes()).to_hex().as_str());
        assert_eq!(r.time_unix_nano, 1_700_000_000_123_000_000);
        assert_eq!(r.event_name, "ws.audit.outside_write");
    }

    #[test]
    fn a_refused_request_is_a_warning_with_host_and_decision() {
        let net = Event::Net {
            method: "GET".into(),
            host: "evil.example".into(),
            path: "/x".into(),
            decision: "deny".into(),
            rule: None,
            status: Some(403),
            bytes_up: 0,
            bytes_down: 0,
            credential: None,
            reason: Some("not in the allow-list".into()),
        };
        let r = log_record(&ctx(), &line(3, net, "p"), 0);
        assert_eq!(r.severity_number, SeverityNumber::Warn as i32);
        assert_eq!(attr(&r, "server.address"), Some(&any_value::Value::StringValue("evil.example".into())));
        assert_eq!(attr(&r, "ws.decision"), Some(&any_value::Value::StringValue("deny".into())));
        assert_eq!(attr(&r, "ws.audit.seq"), Some(&any_value::Value::IntValue(3)));
        assert_eq!(attr(&r, "ws.session.id"), Some(&any_value::Value::StringValue("3fa2c81e".into())));
    }

    #[test]
    fn json_follows_the_otlp_mapping() {
        let l = line(0, Event::OutsideWrite { path: "a".into() }, "p");
        let req = request(&[("service.name".into(), "ws".into())], &ctx(), &[l], 7);
        let (b, ty) = body(&req, Protocol::HttpJson);
        assert_eq!(ty, "application/json");
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        let rl = &v["resourceLogs"][0];
        assert_eq!(rl["resource"]["attributes"][0]["value"]["stringValue"], "ws");
        let rec = &rl["scopeLogs"][0]["logRecords"][0];
        // 64-bit integers are strings in OTLP/JSON.
        assert_eq!(rec["timeUnixNano"], "1700000000123000000");
        assert_eq!(rec["severityNumber"], 9);
        assert_eq!(rl["scopeLogs"][0]["scope"]["name"], SCOPE);
        let (p, ty) = body(&req, Protocol::HttpProtobuf);
        assert_eq!(ty, "application/x-protobuf");
        assert_eq!(ExportLogsServiceRequest::decode(p.as_slice()).unwrap(), req);
    }
}
