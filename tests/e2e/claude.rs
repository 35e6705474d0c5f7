//! Claude Code itself (the pinned npm release `tests/agents/install.sh`
//! installs) under the built-in `claude-code` profile, against a mock of the
//! Anthropic Messages API in this file: its model traffic goes through the
//! credential route with the phantom swapped for the stored key, its Bash
//! tool runs sandboxed, and the review sees what the tool did.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::term::Tmux;

/// The release the tests pin (tests/agents/install.sh installs it).
const CLAUDE_VERSION: &str = "2.1.197";

/// The directory holding the installed agents' `bin/`.
fn agents_prefix() -> PathBuf {
    std::env::var_os("WS_TEST_AGENTS").map_or_else(|| PathBuf::from("/opt/ws-test-agents"), PathBuf::from)
}

/// `claude` of the pinned release; a missing or other one fails the test
/// with what to run (a test that skips would pass without testing).
fn claude_bin() -> PathBuf {
    static CHECKED: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    CHECKED
        .get_or_init(|| {
            let bin = agents_prefix().join("bin/claude");
            let fix = "run ./test.sh, or tests/agents/install.sh, which installs the pinned agents \
                       (WS_TEST_AGENTS names another prefix)";
            let out = Command::new(&bin)
                .arg("--version")
                .output()
                .map_err(|e| format!("Claude Code not found at {}: {e}; {fix}", bin.display()))?;
            let version = String::from_utf8_lossy(&out.stdout).into_owned();
            if !version.starts_with(CLAUDE_VERSION) {
                return Err(format!("{} is {version:?}, not {CLAUDE_VERSION}: {fix}", bin.display()));
            }
            Ok(bin)
        })
        .clone()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// One request the mock received.
#[derive(Clone, Debug)]
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The text of every `tool_result` block the request carries.
    fn tool_results(&self) -> Vec<String> {
        let v = self.json();
        let mut found = Vec::new();
        for m in v["messages"].as_array().into_iter().flatten() {
            for c in m["content"].as_array().into_iter().flatten() {
                if c["type"] == "tool_result" {
                    found.push(match &c["content"] {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    });
                }
            }
        }
        found
    }
}

/// A mock of the Anthropic Messages API on the host's loopback. A request
/// with the Bash tool and no tool result gets a streamed `tool_use` of
/// `tool_command` (when set); every other message request gets `answer`.
/// Token counting and the model list get plausible answers; anything else a
/// 404 in the API's error shape. Every request is kept.
struct Mock {
    port: u16,
    seen: Arc<Mutex<Vec<Request>>>,
}

const FINAL_ANSWER: &str = "MOCK-FINAL: the tool ran.";

impl Mock {
    fn start(tool_command: Option<String>, answer: &'static str) -> Mock {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the mock");
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let tool_command = Arc::new(tool_command);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (log, tool) = (Arc::clone(&log), Arc::clone(&tool_command));
                std::thread::spawn(move || serve(stream, &log, tool.as_deref(), answer));
            }
        });
        Mock { port, seen }
    }

    fn requests(&self) -> Vec<Request> {
        self.seen.lock().unwrap().clone()
    }

    /// One line per request, for failure messages.
    fn summary(&self) -> String {
        self.requests()
            .iter()
            .map(|r| {
                let v = r.json();
                let tools = v["tools"].as_array().map_or(0, Vec::len);
                format!(
                    "{} {} model={} stream={} tools={tools} tool_results={}\n",
                    r.method,
                    r.path,
                    v["model"],
                    v["stream"],
                    r.tool_results().len()
                )
            })
            .collect()
    }
}

/// Requests on one connection (kept alive) until the client closes it.
fn serve(stream: TcpStream, log: &Mutex<Vec<Request>>, tool: Option<&str>, answer: &str) {
    let mut out = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    while let Some(req) = read_request(&mut reader) {
        log.lock().unwrap().push(req.clone());
        let (status, content_type, body) = respond(&req, tool, answer);
        let head = format!(
            "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nrequest-id: req_mock\r\n\r\n",
            body.len()
        );
        if out.write_all(head.as_bytes()).and_then(|()| out.write_all(body.as_bytes())).is_err() {
            return;
        }
    }
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    reader.read_line(&mut line).ok().filter(|n| *n > 0)?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok().filter(|n| *n > 0)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
    let get = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if let Some(len) = get("content-length") {
        body.resize(len.parse().ok()?, 0);
        reader.read_exact(&mut body).ok()?;
    } else if get("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    Some(Request { method, path, headers, body: String::from_utf8_lossy(&body).into_owned() })
}

fn sse(event: &str, data: serde_json::Value) -> String {
    format!("event: {event}\ndata: {data}\n\n")
}

/// The mock's answer: (status line, content type, body).
fn respond(req: &Request, tool: Option<&str>, answer: &str) -> (&'static str, &'static str, String) {
    let path = req.path.split('?').next().unwrap_or("");
    if path.ends_with("/v1/messages/count_tokens") {
        return ("200 OK", "application/json", serde_json::json!({"input_tokens": 42}).to_string());
    }
    if path.ends_with("/v1/models") {
        let models = serde_json::json!({"data": [{"type": "model", "id": "claude-mock", "display_name": "Mock",
            "created_at": "2025-01-01T00:00:00Z"}], "has_more": false, "first_id": "claude-mock", "last_id": "claude-mock"});
        return ("200 OK", "application/json", models.to_string());
    }
    if req.method == "HEAD" || path == "/" {
        return ("200 OK", "text/plain", String::new());
    }
    if req.method != "POST" || !path.ends_with("/v1/messages") {
        let e = serde_json::json!({"type": "error", "error": {"type": "not_found_error", "message": format!("mock: no {path}")}});
        return ("404 Not Found", "application/json", e.to_string());
    }
    let v = req.json();
    let has_bash = v["tools"].as_array().into_iter().flatten().any(|t| t["name"] == "Bash");
    // Only the conversation's last message decides: a new prompt after a
    // finished tool call is a new turn.
    let last = v["messages"].as_array().and_then(|m| m.last()).cloned().unwrap_or_default();
    let after_tool = last["content"].as_array().into_iter().flatten().any(|c| c["type"] == "tool_result");
    let model = v["model"].clone();
    let (block, delta, stop) = match tool {
        Some(command) if has_bash && !after_tool => {
            let input = serde_json::json!({"command": command, "description": "Change the workspace as scripted"});
            (
                serde_json::json!({"type": "tool_use", "id": "toolu_mock_01", "name": "Bash", "input": {}}),
                serde_json::json!({"type": "input_json_delta", "partial_json": input.to_string()}),
                "tool_use",
            )
        }
        _ => {
            let text = if after_tool { FINAL_ANSWER } else { answer };
            (
                serde_json::json!({"type": "text", "text": ""}),
                serde_json::json!({"type": "text_delta", "text": text}),
                "end_turn",
            )
        }
    };
    let usage = serde_json::json!({"input_tokens": 12, "output_tokens": 7});
    if v["stream"] != true {
        let mut content = block.clone();
        match stop {
            "tool_use" => content["input"] = serde_json::from_str(delta["partial_json"].as_str().unwrap()).unwrap(),
            _ => content["text"] = delta["text"].clone(),
        }
        let message = serde_json::json!({"id": "msg_mock", "type": "message", "role": "assistant", "model": model,
            "content": [content], "stop_reason": stop, "stop_sequence": null, "usage": usage});
        return ("200 OK", "application/json", message.to_string());
    }
    let mut body = sse(
        "message_start",
        serde_json::json!({"type": "message_start", "message": {"id": "msg_mock", "type": "message",
            "role": "assistant", "model": model, "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 12, "output_tokens": 1}}}),
    );
    body += &sse(
        "content_block_start",
        serde_json::json!({"type": "content_block_start", "index": 0, "content_block": block}),
    );
    body += &sse("ping", serde_json::json!({"type": "ping"}));
    body += &sse("content_block_delta", serde_json::json!({"type": "content_block_delta", "index": 0, "delta": delta}));
    body += &sse("content_block_stop", serde_json::json!({"type": "content_block_stop", "index": 0}));
    body += &sse(
        "message_delta",
        serde_json::json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null},
            "usage": {"output_tokens": 7}}),
    );
    body += &sse("message_stop", serde_json::json!({"type": "message_stop"}));
    ("200 OK", "text/event-stream", body)
}

/// A profile that is `claude-code` with its route pointed at the mock (one
/// key of the inherited route, plus the stored secret's test name) and the
/// host's loopback allowed as the route's address.
fn mock_profile(dir: &Path, mock: &Mock, secret: &str) -> String {
    let path = dir.join("claude-mock.toml");
    write(
        &path,
        format!(
            "extends = \"claude-code\"\n[network]\naddresses = [\"127.0.0.1\"]\n\
             [credentials.anthropic]\nsecret = \"{secret}\"\nupstream = \"http://127.0.0.1:{}\"\n",
            mock.port
        ),
    );
    path.to_string_lossy().into_owned()
}

/// What the agent's Bash tool runs: deletes a file, edits one, commits,
/// tries a host outside the profile, and shows its environment.
const TOOL: &str = "rm gone.txt && sed -i 's/before/after/' edit.txt && git add -A && \
     git -c user.name=Agent -c user.email=agent@example.com commit -q -m 'agent commit' && echo AGENT-COMMITTED; \
     curl -sS -m 10 -o /dev/null https://example.com/ 2>&1; echo \"curl-exit=$?\"; \
     echo ENV-DUMP; env; echo ENV-END";

/// The workspace the tool works on: a git repository with a commit.
fn workspace(dir: &Path) {
    git_repo(dir);
    write(dir.join("gone.txt"), "to be deleted\n");
    write(dir.join("edit.txt"), "before\n");
    write(dir.join("kept.txt"), "untouched\n");
    commit_all(dir, "before the agent");
}

/// The phantom key the session's environment held, from the tool's output.
fn phantom_in(tool_output: &str) -> String {
    tool_output
        .lines()
        .find_map(|l| l.strip_prefix("ANTHROPIC_API_KEY="))
        .unwrap_or_else(|| panic!("no ANTHROPIC_API_KEY in the tool's environment:\n{tool_output}"))
        .to_owned()
}

/// `ws log --json` of the last session, as records.
fn log_records(run: &dyn Fn(&[&str]) -> Out) -> Vec<serde_json::Value> {
    let log = run(&["log", "--json"]).ok();
    log.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// One `claude -p` session with the scripted tool call, and everything
/// checked that does not depend on who runs it. `run` runs `ws` (as root or
/// as the user); `home` is the HOME it gets. Returns the phantom the
/// session saw.
fn print_mode_session(
    run: &dyn Fn(&[&str]) -> Out,
    mock: &Mock,
    ws: &Path,
    home: &Path,
    profile: &str,
    real: &str,
) -> String {
    let before = capture(ws, &skip_git_internals);
    // The workspace may be another user's: git would refuse to read it.
    let head = || git(ws, &["-c", "safe.directory=*", "rev-parse", "HEAD"]);
    let head_before = head();
    let already = mock.requests().len();
    let out = run(&[
        "session",
        "start",
        "--profile",
        profile,
        "--",
        "claude",
        "-p",
        "--dangerously-skip-permissions",
        "Delete gone.txt, edit edit.txt, commit, and fetch example.com.",
    ]);
    let requests: Vec<Request> = mock.requests().into_iter().skip(already).collect();
    assert_eq!(out.code, 0, "{out:?}\nthe mock saw:\n{}", mock.summary());
    // Positive control: Claude Code ran, called the tool, and its final
    // answer (given only after the tool's result arrived) came back.
    assert!(out.stdout.contains(FINAL_ANSWER), "{out:?}");
    assert!(out.stderr.contains("1 refused: example.com"), "{out:?}");

    // The model traffic: every request through the route, with the stored
    // key, never the phantom.
    let messages: Vec<&Request> = requests.iter().filter(|r| r.path.starts_with("/v1/messages")).collect();
    assert!(messages.len() >= 2, "a tool call and its answer: {}", mock.summary());
    let results: Vec<String> = requests.iter().flat_map(Request::tool_results).collect();
    assert_eq!(results.len(), 1, "one tool result: {}", mock.summary());
    let result = &results[0];
    let phantom = phantom_in(result);
    assert!(phantom.starts_with("sk-ant-ws-phantom-") && !phantom.contains(real), "{phantom}");
    for r in &requests {
        assert_eq!(r.header("x-api-key"), Some(real), "{} {} did not carry the stored key", r.method, r.path);
        assert!(!r.headers.iter().any(|(_, v)| v.contains(&phantom)), "the phantom reached the upstream: {r:?}");
    }
    // Inside: the tool ran in the session (its proxy, its flags), saw only
    // the phantom, and the outside host was refused.
    assert!(result.contains("AGENT-COMMITTED"), "{result}");
    assert!(result.contains("IS_SANDBOX=1") && result.contains("ANTHROPIC_BASE_URL=http://127.0.0.1:"), "{result}");
    assert!(result.contains("CONNECT tunnel failed, response 403") && result.contains("curl-exit=56"), "{result}");
    assert!(!result.contains(real) && !out.stdout.contains(real) && !out.stderr.contains(real), "{result}");
    // Nor did anything the agent saved (its config, transcripts, logs).
    for file in walk(home) {
        let bytes = std::fs::read(&file).unwrap_or_default();
        assert!(!String::from_utf8_lossy(&bytes).contains(real), "{} holds the real key", file.display());
    }

    // The review: the tool's changes, its refusal and the route in the log.
    assert!(!ws.join("gone.txt").exists() && std::fs::read_to_string(ws.join("edit.txt")).unwrap() == "after\n");
    let diff = run(&["diff", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&diff.stdout).unwrap();
    let changes: BTreeSet<(String, String)> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["git_internal"] == false)
        .map(|c| (c["path"].as_str().unwrap().to_owned(), c["status"].as_str().unwrap().to_owned()))
        .collect();
    for want in [("gone.txt", "deleted"), ("edit.txt", "modified"), (".git/refs/heads/main", "modified")] {
        assert!(changes.contains(&(want.0.to_owned(), want.1.to_owned())), "{want:?} not in {changes:?}");
    }
    assert!(!changes.iter().any(|(p, _)| p == "kept.txt"), "{changes:?}");
    let records = log_records(run);
    let net: Vec<&serde_json::Value> = records.iter().filter(|r| r["type"] == "net").collect();
    let routed = net.iter().filter(|r| r["rule"] == "credentials.anthropic" && r["status"] == 200).count();
    assert_eq!(routed, messages.len(), "every model request went through the route: {net:?}");
    let refused: BTreeSet<&str> =
        net.iter().filter(|r| r["decision"] == "deny").map(|r| r["host"].as_str().unwrap()).collect();
    assert_eq!(refused, BTreeSet::from(["example.com"]), "only the outside host was refused: {net:?}");
    // With CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC (passed by the profile),
    // nothing but the route and the tool's attempt left the session.
    let other: Vec<_> =
        net.iter().filter(|r| r["rule"] != "credentials.anthropic" && r["host"] != "example.com").collect();
    assert!(other.is_empty(), "requests besides the route's: {other:?}");
    let end = records.last().unwrap();
    assert!(end["type"] == "session_end" && end["complete"] == true, "{end}");

    // An exact rollback: the tree (and the branch) as before the session.
    run(&["rollback"]).ok();
    assert_same_tree(&before, &capture(ws, &skip_git_internals));
    assert_eq!(head(), head_before);
    phantom
}

/// Every regular file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                files.push(e.path());
            }
        }
    }
    files
}

fn store_secret(mut c: Command, value: &str) {
    let mut child = c
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{value}\n").as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "ws secret set: {}", String::from_utf8_lossy(&o.stderr));
}

/// The session's PATH: the pinned agents first, so `claude` is found by name.
fn session_path() -> String {
    format!("{}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", agents_prefix().join("bin").display())
}

/// As root (a container, CI): `claude -p --dangerously-skip-permissions`
/// runs (IS_SANDBOX), in a fresh home and again in the used one; the
/// stored key reaches only the mock; diff, log and rollback are exact.
#[test]
fn claude_code_as_root_gets_only_a_phantom_and_its_tool_is_reviewed() {
    claude_bin();
    let env = Env::protected();
    let ws = env.dir("ws");
    workspace(&ws);
    let mock = Mock::start(Some(TOOL.to_owned()), "MOCK: hello");
    let secret = unique("root");
    let real = "sk-ant-api03-REAL-root-7d1e5b";
    store_secret(env.command(&ws, &["secret", "set", &secret]), real);
    let profile = mock_profile(&env.dir("profiles"), &mock, &secret);
    let run = |args: &[&str]| {
        let mut c = env.command(&ws, args);
        c.env("PATH", session_path()).env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1");
        env.run(c)
    };
    assert!(!env.home.join(".claude.json").exists(), "a fresh home");
    let fresh = print_mode_session(&run, &mock, &ws, &env.home, &profile, real);
    assert!(env.home.join(".claude.json").exists() && env.home.join(".claude/projects").is_dir(), "state was saved");
    let used = print_mode_session(&run, &mock, &ws, &env.home, &profile, real);
    assert_eq!(fresh, used, "the same workspace and route: the same phantom");
    env.ws(&ws, &["secret", "rm", &secret]).ok();
}

/// As an unprivileged user with a home of their own: the same, with the
/// user's own keyring holding the key.
#[test]
fn claude_code_as_a_user_gets_only_a_phantom_and_its_tool_is_reviewed() {
    claude_bin();
    let u = crate::privilege::unprivileged();
    let ws = u.env.dir("agent-ws");
    workspace(&ws);
    let profiles = u.env.dir("agent-profiles");
    let mock = Mock::start(Some(TOOL.to_owned()), "MOCK: hello");
    let secret = unique("user");
    let real = "sk-ant-api03-REAL-user-2c9f40";
    let profile = mock_profile(&profiles, &mock, &secret);
    for p in [&ws, &profiles] {
        let st = Command::new("chown").args(["-R", "65534:65534"]).arg(p).status().unwrap();
        assert!(st.success());
    }
    let as_user = |args: &[&str]| {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]);
        c.arg(env!("CARGO_BIN_EXE_ws")).args(args).current_dir(&ws).env_clear();
        c.env("PATH", session_path()).env("HOME", &u.home).env("LANG", "C.UTF-8").env("NO_COLOR", "1");
        c.env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1");
        c
    };
    store_secret(as_user(&["secret", "set", &secret]), real);
    let run = |args: &[&str]| u.env.run(as_user(args));
    let fresh = print_mode_session(&run, &mock, &ws, &u.home, &profile, real);
    let used = print_mode_session(&run, &mock, &ws, &u.home, &profile, real);
    assert_eq!(fresh, used);
    let meta = std::fs::metadata(u.home.join(".claude.json")).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), 65534, "the agent's state is the user's");
    run(&["secret", "rm", &secret]).ok();
}

/// Where user namespaces are blocked (Ubuntu's AppArmor restriction): no
/// network namespace, so the proxy listens on the host's loopback and the
/// route's base URL carries the session's token; Landlock lets TCP reach
/// only the proxy. The same session, the same checks. The key comes from
/// an `env:` source here (a keyring inside the test's user namespace is
/// another keyring); the session's environment filter must drop it.
#[test]
fn claude_code_without_user_namespaces_gets_only_a_phantom_and_its_tool_is_reviewed() {
    claude_bin();
    let u = crate::privilege::unprivileged();
    // The fixture's workspace (where the helper runs ws) is nobody's; set it
    // up as root, then give it back.
    let st = Command::new("chown").args(["-R", "0:0"]).arg(&u.ws).status().unwrap();
    assert!(st.success());
    workspace(&u.ws);
    let profiles = u.env.dir("agent-profiles");
    let mock = Mock::start(Some(TOOL.to_owned()), "MOCK: hello");
    let real = "sk-ant-api03-REAL-nouserns-a41d";
    let profile = mock_profile(&profiles, &mock, "env:WS_E2E_CLAUDE_KEY");
    for p in [&u.ws, &profiles] {
        let st = Command::new("chown").args(["-R", "65534:65534"]).arg(p).status().unwrap();
        assert!(st.success());
    }
    let prelude =
        format!("export PATH={} WS_E2E_CLAUDE_KEY={real} CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1; ", session_path());
    let run = |args: &[&str]| crate::privilege::as_nobody_without_userns_after(&u, &prelude, args);
    let fresh = print_mode_session(&run, &mock, &u.ws, &u.home, &profile, real);
    // It was this mode: no network namespace, the TCP filter instead.
    let start = log_records(&run).into_iter().next().unwrap();
    assert!(start["layers"].to_string().contains("network: Landlock TCP filter"), "{start}");
    assert!(!start["layers"].as_array().unwrap().iter().any(|l| l == "namespaces"), "no namespaces here: {start}");
    let used = print_mode_session(&run, &mock, &u.ws, &u.home, &profile, real);
    assert_eq!(fresh, used);
}

/// `ws session start` of the interactive agent, as the pane's command; the
/// pane then says how ws exited.
fn tui_command(env: &Env, profile: &str) -> String {
    format!(
        "env -i PATH={} HOME={} LANG=C.UTF-8 TERM=xterm-256color CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 \
         {} session start --profile {profile} -- claude --dangerously-skip-permissions; echo WS-EXIT=$?; sleep 60",
        session_path(),
        env.home.display(),
        env!("CARGO_BIN_EXE_ws"),
    )
}

/// The footer of Claude Code's prompt box in bypass mode: it has rendered.
const RENDERED: &str = "bypass permissions on";

/// One interactive session under tmux: answers the first-run dialogs as a
/// user would, until the prompt box renders. Returns the session's tmux and
/// which dialogs it answered.
fn start_tui(env: &Env, ws: &Path, profile: &str) -> (Tmux, Vec<&'static str>) {
    let tmux = Tmux::start(ws, &tui_command(env, profile));
    let mut answered = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = tmux.screen();
        let tail: String = s.lines().rev().take(40).collect::<Vec<_>>().join("\n");
        if tail.contains(RENDERED) {
            return (tmux, answered);
        }
        assert!(Instant::now() < deadline, "Claude Code never rendered its prompt; the pane:\n{s}");
        assert!(!s.contains("WS-EXIT="), "the session ended before rendering:\n{s}");
        if tail.contains("Yes, I trust this folder") && !answered.contains(&"trust") {
            tmux.keys(&["Enter"]);
            answered.push("trust");
        } else if tail.contains("Detected a custom API key") && !answered.contains(&"api-key") {
            // Its default is "No"; the key is the session's phantom.
            tmux.keys(&["Up", "Enter"]);
            answered.push("api-key");
        } else if tail.contains("Yes, I accept") && !answered.contains(&"bypass") {
            tmux.keys(&["Down", "Enter"]);
            answered.push("bypass");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Ctrl-C twice (Claude Code asks for a second one) ends the agent, and
/// with it the session: ws prints its summary, the record is complete.
/// A Ctrl-C right after an answer may only dismiss what it shows, so the
/// pair is sent again (at most a few times) until the session ends.
fn end_tui(tmux: &Tmux, run: &dyn Fn(&[&str]) -> Out) {
    let mut s = String::new();
    for _ in 0..4 {
        tmux.keys(&["C-c", "C-c"]);
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline && !s.contains("WS-EXIT=") {
            std::thread::sleep(Duration::from_millis(100));
            s = tmux.screen();
        }
        if s.contains("WS-EXIT=") {
            break;
        }
    }
    assert!(s.contains("WS-EXIT=0"), "{s}");
    // The summary's session line ("made no changes" or its counts); its
    // network line only when there were requests.
    assert!(s.contains("ws: session "), "no end-of-session summary:\n{s}");
    let records = log_records(run);
    let end = records.last().unwrap();
    assert!(end["type"] == "session_end" && end["complete"] == true, "{end}");
}

/// The TUI: renders in tmux, asks for the phantom key once (the phantom is
/// stable, so the used home's second session does not ask), answers a
/// prompt with the mock's text, and Ctrl-C ends the session cleanly.
///
/// `~/.claude.json` starts as `{"hasCompletedOnboarding": true}`: the
/// onboarding's connectivity check fetches api.anthropic.com and
/// platform.claude.com directly (whatever ANTHROPIC_BASE_URL says), which
/// this test's machine may not reach; the profile allows both hosts.
#[test]
fn claude_code_tui_renders_asks_for_the_key_once_and_ctrl_c_ends_the_session() {
    claude_bin();
    let env = Env::protected();
    let ws = env.dir("ws");
    workspace(&ws);
    let mock = Mock::start(None, "MOCK-TUI-ANSWER: hello from the mock");
    let secret = unique("tui");
    let real = "sk-ant-api03-REAL-tui-51aa0c";
    store_secret(env.command(&ws, &["secret", "set", &secret]), real);
    let profile = mock_profile(&env.dir("profiles"), &mock, &secret);
    write(env.home.join(".claude.json"), "{\"hasCompletedOnboarding\": true}\n");
    let run = |args: &[&str]| env.ws(&ws, args);

    let (first, answered) = start_tui(&env, &ws, &profile);
    assert_eq!(answered, ["trust", "api-key", "bypass"], "{}", first.screen());
    first.text("Say hello");
    first.keys(&["Enter"]);
    first.wait_for("MOCK-TUI-ANSWER: hello from the mock", 20);
    end_tui(&first, &run);
    drop(first);
    // Claude Code tried to register its `claude-cli://` handler, a .desktop
    // file whose command would run outside any sandbox, was refused, and
    // left its marker for trying again in a day.
    assert!(env.home.join(".claude/.deep-link-register-failed").exists(), "no attempt seen");
    assert!(!env.home.join(".local/share/applications").exists(), "a desktop entry was planted");

    let (second, answered) = start_tui(&env, &ws, &profile);
    assert!(answered.is_empty(), "a used home asks nothing again: {answered:?}\n{}", second.screen());
    end_tui(&second, &run);

    let requests = mock.requests();
    assert!(requests.iter().any(|r| r.path.starts_with("/v1/messages")), "{}", mock.summary());
    assert!(requests.iter().all(|r| r.header("x-api-key") == Some(real)), "{}", mock.summary());
    env.ws(&ws, &["secret", "rm", &secret]).ok();
}

/// A truly fresh home: Claude Code's onboarding first checks that it can
/// reach api.anthropic.com and platform.claude.com itself (not through
/// ANTHROPIC_BASE_URL) and stops at "Unable to connect to Anthropic
/// services" when either fails. The profile lets both through: the proxy
/// allowed both (whether this machine then reaches them or not).
#[test]
fn claude_code_onboarding_reaches_both_hosts_its_first_run_check_needs() {
    claude_bin();
    let env = Env::protected();
    let ws = env.dir("ws");
    workspace(&ws);
    let mock = Mock::start(None, "MOCK: hello");
    let secret = unique("onboard");
    store_secret(env.command(&ws, &["secret", "set", &secret]), "sk-ant-api03-REAL-onboard-0b7e");
    let profile = mock_profile(&env.dir("profiles"), &mock, &secret);
    let tmux = Tmux::start(&ws, &tui_command(&env, &profile));
    // Without the hosts the check fails and Claude Code exits; with them,
    // and no way out to the internet, the same; with one, the theme comes.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut s = tmux.screen();
    while !s.contains("WS-EXIT=") && !s.contains("Choose the text style") {
        assert!(Instant::now() < deadline, "the onboarding never got past its check:\n{s}");
        std::thread::sleep(Duration::from_millis(100));
        s = tmux.screen();
    }
    for _ in 0..4 {
        if s.contains("WS-EXIT=") {
            break;
        }
        tmux.keys(&["C-c", "C-c"]);
        std::thread::sleep(Duration::from_secs(2));
        s = tmux.screen();
    }
    if !s.contains("WS-EXIT=") {
        // Past the check, onboarding may want its own answers first; what
        // this test checks is already in the log, so hang up instead.
        drop(tmux);
        std::thread::sleep(Duration::from_secs(2));
    }
    let records = log_records(&|args: &[&str]| env.ws(&ws, args));
    for host in ["api.anthropic.com", "platform.claude.com"] {
        let asked: Vec<_> = records.iter().filter(|r| r["type"] == "net" && r["host"] == host).collect();
        assert!(!asked.is_empty(), "Claude Code did not check {host}:\n{s}\n{records:?}");
        assert!(asked.iter().all(|r| r["decision"] == "allow"), "{host} was refused: {asked:?}");
    }
    env.ws(&ws, &["secret", "rm", &secret]).ok();
}
