//! Audit export over OTLP/HTTP, against a collector written here: a real
//! HTTP server on loopback that decodes what it gets (JSON by hand, protobuf
//! with the reference types) or misbehaves (down, 500, never answers).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prost::Message as _;

use crate::harness::*;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Ok,
    Fail500,
    /// Reads the request and never answers (for at most 30 s).
    Hang,
}

#[derive(Debug)]
struct Request {
    path: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

struct Collector {
    port: u16,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Collector {
    fn start(mode: Mode) -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let store = Arc::clone(&requests);
        std::thread::spawn(move || {
            // Bounded: the collector serves for ten minutes at most. (A
            // minute was too short: the test of a collector down, failing
            // and stuck starts all three, then runs 30 sessions, which on a
            // loaded machine took longer, and the last collector had stopped
            // accepting before its turn.)
            listener.set_nonblocking(true).unwrap();
            let end = Instant::now() + Duration::from_secs(600);
            while Instant::now() < end {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let store = Arc::clone(&store);
                        std::thread::spawn(move || serve(conn, mode, &store));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Collector { port, requests }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

fn serve(conn: TcpStream, mode: Mode, store: &Mutex<Vec<Request>>) {
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or_default().to_owned();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.trim_end().split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let len: usize = headers.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
    let mut body = vec![0; len];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let mut conn = conn;
    match mode {
        Mode::Ok => {
            store.lock().unwrap().push(Request { path, headers, body });
            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}");
        }
        Mode::Fail500 => {
            store.lock().unwrap().push(Request { path, headers, body });
            let _ = conn.write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops");
        }
        Mode::Hang => {
            store.lock().unwrap().push(Request { path, headers, body });
            std::thread::sleep(Duration::from_secs(30));
        }
    }
}

/// One log record as the collector decoded it.
#[derive(Debug)]
struct Got {
    body: String,
    attrs: BTreeMap<String, String>,
    resource: BTreeMap<String, String>,
    severity: i64,
    event: String,
}

fn decode_json(body: &[u8]) -> Vec<Got> {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    let scalar = |v: &serde_json::Value| -> String {
        let (k, x) = v.as_object().unwrap().iter().next().unwrap();
        match (k.as_str(), x) {
            ("stringValue", serde_json::Value::String(s)) => s.clone(),
            ("arrayValue", a) => a["values"].as_array().map_or(0, Vec::len).to_string() + " values",
            (_, x) => x.to_string().trim_matches('"').to_owned(),
        }
    };
    let kv = |list: &serde_json::Value| -> BTreeMap<String, String> {
        list.as_array()
            .into_iter()
            .flatten()
            .map(|a| (a["key"].as_str().unwrap().to_owned(), scalar(&a["value"])))
            .collect()
    };
    let mut out = Vec::new();
    for rl in v["resourceLogs"].as_array().unwrap() {
        let resource = kv(&rl["resource"]["attributes"]);
        for sl in rl["scopeLogs"].as_array().unwrap() {
            assert_eq!(sl["scope"]["name"], "ws.audit");
            for r in sl["logRecords"].as_array().unwrap() {
                // OTLP/JSON: 64-bit integers are decimal strings.
                assert!(r["timeUnixNano"].as_str().unwrap().parse::<u64>().unwrap() > 1_600_000_000_000_000_000);
                out.push(Got {
                    body: r["body"]["stringValue"].as_str().unwrap().to_owned(),
                    attrs: kv(&r["attributes"]),
                    resource: resource.clone(),
                    severity: r["severityNumber"].as_i64().unwrap(),
                    event: r["eventName"].as_str().unwrap_or_default().to_owned(),
                });
            }
        }
    }
    out
}

fn decode_protobuf(body: &[u8]) -> Vec<Got> {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value::Value};
    let req = ExportLogsServiceRequest::decode(body).unwrap();
    let scalar = |v: &Option<Value>| match v {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::ArrayValue(a)) => format!("{} values", a.values.len()),
        other => format!("{other:?}"),
    };
    let kv = |list: &[KeyValue]| -> BTreeMap<String, String> {
        list.iter().map(|a| (a.key.clone(), scalar(&a.value.as_ref().unwrap().value))).collect()
    };
    let mut out = Vec::new();
    for rl in &req.resource_logs {
        let resource = kv(&rl.resource.as_ref().unwrap().attributes);
        for sl in &rl.scope_logs {
            assert_eq!(sl.scope.as_ref().unwrap().name, "ws.audit");
            for r in &sl.log_records {
                assert!(r.time_unix_nano > 1_600_000_000_000_000_000);
                out.push(Got {
                    body: scalar(&r.body.as_ref().unwrap().value),
                    attrs: kv(&r.attributes),
                    resource: resource.clone(),
                    severity: i64::from(r.severity_number),
                    event: r.event_name.clone(),
                });
            }
        }
    }
    out
}

fn local_lines(env: &Env, ws: &Path) -> Vec<String> {
    let out = env.ws(ws, &["log", "--json"]).ok();
    out.stdout.lines().map(str::to_owned).collect()
}

fn session_id(env: &Env, ws: &Path) -> String {
    let v: serde_json::Value = serde_json::from_str(&env.ws(ws, &["session", "show", "--json"]).ok().stdout).unwrap();
    v["id"].as_str().or_else(|| v["session"]["id"].as_str()).unwrap().to_owned()
}

fn session_id_of_newest(env: &Env, ws: &Path) -> String {
    let v: serde_json::Value = serde_json::from_str(&env.ws(ws, &["session", "list", "--json"]).ok().stdout).unwrap();
    let all = v.as_array().or_else(|| v["sessions"].as_array()).unwrap();
    all.last().unwrap()["id"].as_str().unwrap().to_owned()
}

fn exporting(env: &Env, ws: &Path, url: &str, protocol: &str, args: &[&str]) -> std::process::Command {
    let mut c = env.command(ws, args);
    c.env("OTEL_EXPORTER_OTLP_ENDPOINT", url)
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
        .env("OTEL_EXPORTER_OTLP_HEADERS", "Authorization=Bearer%20t0ken,X-Scope-OrgID=agents")
        .env("OTEL_RESOURCE_ATTRIBUTES", "k8s.pod.name=agent-7,deployment.environment=ci");
    c
}

/// Every record of a session arrives once, in order, with its attributes
/// and the chain a collector can check with BLAKE3 alone.
fn every_record_arrives_once_in_order(protocol: &str) {
    let env = Env::new();
    let ws = env.dir("proj");
    write(ws.join("keep"), "k\n");
    let collector = Collector::start(Mode::Ok);
    let script = "echo a > one; echo b > two; mkdir d; echo c > d/three; rm keep";
    let out =
        env.run(exporting(&env, &ws, &collector.url(), protocol, &["session", "start", "--", "sh", "-c", script]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let local = local_lines(&env, &ws);
    let id = session_id(&env, &ws);
    assert!(local.len() >= 7, "start, writes, end: {local:?}");
    assert!(
        out.stderr.contains(&format!("audit export: {} records sent to {}/v1/logs", local.len(), collector.url())),
        "{}",
        out.stderr
    );

    let requests = collector.requests.lock().unwrap();
    let content_type = if protocol == "http/json" { "application/json" } else { "application/x-protobuf" };
    let mut got = Vec::new();
    for r in requests.iter() {
        assert_eq!(r.path, "/v1/logs");
        assert_eq!(r.headers.get("content-type").map(String::as_str), Some(content_type));
        assert_eq!(r.headers.get("authorization").map(String::as_str), Some("Bearer t0ken"));
        assert_eq!(r.headers.get("x-scope-orgid").map(String::as_str), Some("agents"));
        got.extend(if protocol == "http/json" { decode_json(&r.body) } else { decode_protobuf(&r.body) });
    }
    let bodies: Vec<&str> = got.iter().map(|g| g.body.as_str()).collect();
    assert_eq!(bodies, local, "every record once, in order, byte for byte");

    let mut prev_hash: Option<String> = None;
    for (i, g) in got.iter().enumerate() {
        let record: serde_json::Value = serde_json::from_str(&g.body).unwrap();
        let a = &g.attrs;
        assert_eq!(a["ws.session.id"], id);
        assert_eq!(a["ws.workspace"], ws.canonicalize().unwrap().to_str().unwrap());
        assert_eq!(a["ws.profile"], "default");
        assert_eq!(a["ws.audit.seq"], i.to_string());
        assert_eq!(a["ws.audit.type"], record["type"].as_str().unwrap());
        assert_eq!(g.event, format!("ws.audit.{}", record["type"].as_str().unwrap()));
        assert_eq!(a["ws.audit.prev"], record["prev"].as_str().unwrap());
        assert_eq!(a["ws.audit.hash"], blake3::hash(g.body.as_bytes()).to_hex().as_str());
        if let Some(h) = &prev_hash {
            assert_eq!(&a["ws.audit.prev"], h, "record {i} chains to the one before");
        }
        prev_hash = Some(a["ws.audit.hash"].clone());
        if record["type"] == "write" {
            assert_eq!(a["file.path"], record["path"].as_str().unwrap());
            assert!(a.contains_key("process.pid"), "{a:?}");
        }
        assert_eq!(g.severity, 9, "INFO: nothing refused here");
        assert_eq!(g.resource["service.name"], "ws");
        assert_eq!(g.resource["k8s.pod.name"], "agent-7");
        assert_eq!(g.resource["deployment.environment"], "ci");
        assert!(g.resource.contains_key("host.name") && g.resource.contains_key("service.version"));
    }
    let paths: Vec<&str> = got.iter().filter_map(|g| g.attrs.get("file.path").map(String::as_str)).collect();
    for p in ["one", "two", "d/three", "keep"] {
        assert!(paths.contains(&p), "{p} in {paths:?}");
    }
    assert_eq!(got.last().unwrap().attrs["ws.complete"], "true");
    drop(requests);

    // Re-sent on demand: the same records again, now all at once.
    let before = collector.requests.lock().unwrap().len();
    let again = env.run(exporting(&env, &ws, &collector.url(), protocol, &["audit", "export", &id, "--otlp"]));
    assert_eq!(again.code, 0, "{}", again.stderr);
    let requests = collector.requests.lock().unwrap();
    let resent: Vec<String> = requests[before..]
        .iter()
        .flat_map(|r| if protocol == "http/json" { decode_json(&r.body) } else { decode_protobuf(&r.body) })
        .map(|g| g.body)
        .collect();
    assert_eq!(resent, local);
}

#[test]
fn otlp_json_every_record_arrives_once_in_order_with_attributes() {
    every_record_arrives_once_in_order("http/json");
}

#[test]
fn otlp_protobuf_every_record_arrives_once_in_order_with_attributes() {
    every_record_arrives_once_in_order("http/protobuf");
}

/// A port nothing listens on (bound, then closed).
fn dead_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn timed(env: &Env, c: std::process::Command) -> (Out, Duration) {
    let t = Instant::now();
    let out = env.run(c);
    (out, t.elapsed())
}

#[test]
fn a_collector_down_failing_or_stuck_costs_the_session_nothing_and_loses_nothing_locally() {
    let env = Env::new();
    let ws = env.dir("proj");
    write(ws.join("a"), "a\n");
    let script = "sleep 1; echo x >> a";
    let run = |url: Option<&str>| {
        let args = ["session", "start", "--", "sh", "-c", script];
        let c = match url {
            Some(u) => exporting(&env, &ws, u, "http/protobuf", &args),
            None => env.command(&ws, &args),
        };
        let (out, took) = timed(&env, c);
        assert_eq!(out.code, 0, "{}", out.stderr);
        (out, took)
    };
    let down = format!("http://127.0.0.1:{}", dead_port());
    let failing = Collector::start(Mode::Fail500);
    let stuck = Collector::start(Mode::Hang);
    // Five runs with export against five without, interleaved, the fastest
    // of each compared: the machine is shared, and the claim is about what
    // export costs, not about the neighbours' load.
    for (name, url) in [("down", down.as_str()), ("500", &failing.url()), ("stuck", &stuck.url())] {
        let (mut with, mut without) = (Duration::MAX, Duration::MAX);
        for _ in 0..5 {
            without = without.min(run(None).1);
            env.ws(&ws, &["approve"]).ok();
            let (out, took) = run(Some(url));
            with = with.min(took);
            let local = local_lines(&env, &ws);
            let id = session_id(&env, &ws);
            // The local log is complete and intact: sealed, the session's end in it.
            let verified = env.ws(&ws, &["audit", "verify", &id]).ok();
            assert!(verified.stdout.contains(", sealed"), "{}", verified.stdout);
            assert!(local.last().unwrap().contains("\"type\":\"session_end\""), "{local:?}");
            let n = local.len();
            assert!(
                out.stderr.contains(&format!("audit export: {n} of {n} records NOT sent")),
                "{name}: the missing count: {}",
                out.stderr
            );
            assert!(out.stderr.contains(&format!("`ws audit export {id} --otlp`")), "{name}: {}", out.stderr);
            env.ws(&ws, &["approve"]).ok();
        }
        eprintln!("{name}: {with:?} with export, {without:?} without (fastest of 5)");
        // 5 % of a session plus 100 ms for the shared machine's jitter (CI
        // runs this beside the whole suite): what it must catch is export
        // holding the session up — a retry loop, the 5 s flush — not noise.
        let bound = without.mul_f64(1.05) + Duration::from_millis(100);
        assert!(with <= bound, "{name}: {with:?} with export vs {without:?} without");
    }
    // The collector that answered 500 saw every record once (OTLP does not
    // retry a 500); the stuck one got each session's first request only.
    let mut seen: Vec<(String, String)> = failing
        .requests
        .lock()
        .unwrap()
        .iter()
        .flat_map(|r| decode_protobuf(&r.body))
        .map(|g| (g.attrs["ws.session.id"].clone(), g.attrs["ws.audit.seq"].clone()))
        .collect();
    let all = seen.len();
    seen.sort();
    seen.dedup();
    assert_eq!((all, seen.len()), (15, 15), "five sessions of three records, each sent once");
    assert_eq!(stuck.requests.lock().unwrap().len(), 5);

    // `ws audit export` to a collector that is down fails, saying so.
    let id = session_id_of_newest(&env, &ws);
    let again = env.run(exporting(&env, &ws, &down, "http/json", &["audit", "export", &id, "--otlp"]));
    assert_eq!(again.code, 1, "{}", again.stderr);
    assert!(again.stderr.contains("NOT sent") && again.stderr.contains("cannot connect"), "{}", again.stderr);
}

#[test]
fn a_bad_otel_variable_is_a_warning_and_grpc_is_refused_with_the_fix() {
    let env = Env::new();
    let ws = env.dir("proj");
    write(ws.join("a"), "a\n");
    let mut c = env.command(&ws, &["session", "start", "--", "sh", "-c", "echo x >> a"]);
    c.env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317").env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc");
    let out = env.run(c);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("OTEL_EXPORTER_OTLP_PROTOCOL=grpc") && out.stderr.contains("http/protobuf"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("kept locally only"), "{}", out.stderr);
    let no_endpoint = env.ws(&ws, &["audit", "export", "--otlp"]);
    assert_eq!(no_endpoint.code, 2, "{}", no_endpoint.stderr);
    assert!(no_endpoint.stderr.contains("OTEL_EXPORTER_OTLP_ENDPOINT"), "{}", no_endpoint.stderr);
}

/// A real journald of the test's own, in a private mount namespace (tmpfs on
/// /run/systemd and /run/log), so the machine's journal, if any, is untouched.
#[test]
fn journald_gets_every_record_as_a_structured_entry() {
    let journald = ["/lib/systemd/systemd-journald", "/usr/lib/systemd/systemd-journald"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    let Some(journald) = journald else {
        eprintln!("skipped: no systemd-journald on this machine");
        return;
    };
    if !is_root() {
        eprintln!("skipped: a private journal needs root (mount namespace)");
        return;
    }
    let env = Env::new();
    let ws = env.dir("proj");
    write(ws.join("a"), "a\n");
    let script = format!(
        r#"set -e
mount --make-rprivate /
mkdir -p /run/systemd /run/log
mount -t tmpfs tmpfs /run/systemd
mount -t tmpfs tmpfs /run/log
mkdir -p /run/systemd/journal
{journald} & jd=$!
trap 'kill $jd' EXIT
for i in $(seq 100); do [ -S /run/systemd/journal/socket ] && break; sleep 0.05; done
"$1" session start --audit-sink journald -- sh -c 'echo x >> a; echo y > b' 2>session.err
# journald reads its socket asynchronously: wait (bounded) for the session's end.
for i in $(seq 100); do
  journalctl -o json --no-pager SYSLOG_IDENTIFIER=ws > journal.json
  grep -q '"WS_AUDIT_TYPE":"session_end"' journal.json && break
  sleep 0.1
done
"#
    );
    let mut c = Command::new("unshare");
    c.args(["-m", "sh", "-c", &script, "sh", env!("CARGO_BIN_EXE_ws")])
        .current_dir(&ws)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .env("HOME", &env.home)
        .env("LANG", "C.UTF-8")
        .env("NO_COLOR", "1");
    let out = env.run(c);
    let stderr = std::fs::read_to_string(ws.join("session.err")).unwrap_or_default();
    assert_eq!(out.code, 0, "{}\n{}\n{stderr}", out.stdout, out.stderr);
    std::fs::remove_file(ws.join("session.err")).unwrap();
    let journal = std::fs::read_to_string(ws.join("journal.json")).unwrap();
    std::fs::remove_file(ws.join("journal.json")).unwrap();

    let local = local_lines(&env, &ws);
    let id = session_id(&env, &ws);
    assert!(stderr.contains(&format!("audit export: {} records sent to the journal", local.len())), "{stderr}");
    let entries: Vec<serde_json::Value> = journal.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let records: Vec<&str> = entries.iter().map(|e| e["WS_RECORD"].as_str().unwrap()).collect();
    assert_eq!(records, local, "every record once, in order, byte for byte");
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e["WS_SESSION"], id.as_str());
        assert_eq!(e["WS_PROFILE"], "default");
        assert_eq!(e["WS_AUDIT_SEQ"], i.to_string());
        assert_eq!(e["WS_AUDIT_HASH"], blake3::hash(records[i].as_bytes()).to_hex().as_str());
        assert_eq!(e["PRIORITY"], "6");
        assert!(e["MESSAGE"].as_str().unwrap().starts_with(&format!("ws session {id}: ")), "{e}");
    }
    let paths: Vec<&str> = entries.iter().filter_map(|e| e["WS_FILE_PATH"].as_str()).collect();
    assert!(paths.contains(&"a") && paths.contains(&"b"), "{paths:?}");
}

#[test]
fn journald_asked_for_without_a_journal_is_a_warning() {
    if Path::new("/run/systemd/journal/socket").exists() {
        eprintln!("skipped: this machine has a journal");
        return;
    }
    let env = Env::new();
    let ws = env.dir("proj");
    write(ws.join("a"), "a\n");
    let mut c = env.command(&ws, &["session", "start", "--", "sh", "-c", "echo x >> a"]);
    c.env("WS_AUDIT_SINK", "journald");
    let out = env.run(c);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("audit sink journald: no journal at /run/systemd/journal/socket"), "{}", out.stderr);
    let bad = env.ws(&ws, &["session", "start", "--audit-sink", "syslog", "--", "true"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
}
