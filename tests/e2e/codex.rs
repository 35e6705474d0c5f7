//! The real Codex CLI from npm (installed by `tests/agents/install.sh`)
//! under the built-in `codex` profile, against a mock of the OpenAI
//! Responses API that the test runs (`tests/agents/mock_openai.py`).
//!
//! Codex ignores `OPENAI_BASE_URL` and opens a WebSocket to
//! `api.openai.com` itself, so the route reaches it only by interception:
//! the session's proxy answers `CONNECT api.openai.com:443` with a
//! certificate from the session's own CA, swaps the phantom for the real key
//! and sends the request on to the route's upstream — here the mock, with a
//! certificate from a CA the test makes. The mock's first answer is a tool
//! call running the test's shell command; its second quotes the output.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::term::Tmux;

const REAL_KEY: &str = "sk-REAL-openai-7f3c91d2";

/// Where the pinned agents are (`tests/agents/install.sh`).
pub(crate) fn agent_bin(name: &str) -> PathBuf {
    let prefix = std::env::var_os("WS_TEST_AGENTS").map(PathBuf::from).unwrap_or_else(|| "/opt/ws-test-agents".into());
    let bin = prefix.join("bin").join(name);
    assert!(bin.exists(), "{} is missing: run ./test.sh (tests/agents/install.sh installs the agents)", bin.display());
    bin
}

/// The mock API: a Python process serving HTTPS on loopback.
struct Mock {
    child: Child,
    port: u16,
    log: PathBuf,
    ca: PathBuf,
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Mock {
    /// Starts the mock in `dir`; the tool call it sends runs `command`.
    fn start(dir: &Path, command: &str) -> Mock {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, "ws e2e mock CA");
        let ca = params.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf =
            rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap().signed_by(&key, &ca, &ca_key).unwrap();
        write(dir.join("ca.pem"), ca.pem());
        write(dir.join("leaf.pem"), leaf.pem());
        write(dir.join("leaf.key"), key.serialize_pem());
        write(dir.join("command.sh"), command);
        let (log, port_file) = (dir.join("requests.jsonl"), dir.join("port"));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/agents/mock_openai.py");
        let child = Command::new("python3")
            .arg(script)
            .args([dir.join("leaf.pem"), dir.join("leaf.key"), dir.join("command.sh"), log.clone(), port_file.clone()])
            .stdin(Stdio::null())
            .spawn()
            .expect("python3 (test.sh installs it)");
        let start = Instant::now();
        let port = loop {
            if let Ok(p) = std::fs::read_to_string(&port_file) {
                break p.trim().parse().unwrap();
            }
            assert!(start.elapsed() < Duration::from_secs(20), "the mock did not start");
            std::thread::sleep(Duration::from_millis(50));
        };
        Mock { child, port, log, ca: dir.join("ca.pem") }
    }

    fn requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// What the tool call printed, as Codex sent it back.
    fn tool_output(&self) -> String {
        self.requests()
            .iter()
            .filter_map(|r| r["tool_output"].as_str().map(str::to_owned))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The built-in `codex` profile with the route pointed at the mock: one key
/// of the inherited route changes, plus what the test machine needs.
fn profile(dir: &Path, mock: &Mock) -> String {
    let agents = agent_bin("codex").parent().unwrap().parent().unwrap().to_path_buf();
    let path = dir.join("codex-mock.toml");
    write(
        &path,
        format!(
            "extends = \"codex\"\n\
             [filesystem]\nread = [\"{a}\"]\nexec = [\"{a}\"]\n\
             [network]\naddresses = [\"127.0.0.1\"]\nca_files = [\"{ca}\"]\n\
             [credentials.openai]\nsecret = \"env:WS_E2E_OPENAI_KEY\"\nupstream = \"https://localhost:{port}/v1\"\n",
            a = agents.display(),
            ca = mock.ca.display(),
            port = mock.port
        ),
    );
    path.to_string_lossy().into_owned()
}

/// What the agent's tool call does: deletes, edits, creates, commits, tries
/// a host outside the profile and shows what key it holds. curl's error goes
/// to the same stream as its result: on two, the agent's tool may
/// interleave them mid-word ("respon…outside=000…se 403").
const SCRIPT: &str = "echo hello > made.txt; rm gone.txt; echo edit >> keep.txt; \
     git add -A && git -c user.name=agent -c user.email=agent@example.com commit -qm agent && echo COMMITTED; \
     curl -sS -m 10 -o /dev/null -w 'outside=%{http_code}\\n' https://example.com/ 2>&1; \
     echo \"keys=$OPENAI_API_KEY,$CODEX_API_KEY\"; env | grep -c REAL-openai | sed 's/^/real-in-env=/'";

fn workspace(env: &Env) -> PathBuf {
    let ws = env.dir("ws");
    git_repo(&ws);
    write(ws.join("keep.txt"), "keep\n");
    write(ws.join("gone.txt"), "gone\n");
    commit_all(&ws, "init");
    ws
}

/// `ws ARGS…` as some user in the workspace: root here, `nobody` below.
type Run<'a> = &'a dyn Fn(&[&str]) -> Out;

/// `codex exec` in a session, as `run` runs ws.
fn codex_exec(run: Run, profile: &str) -> Out {
    let codex = agent_bin("codex");
    run(&[
        "session",
        "start",
        "--profile",
        profile,
        "--",
        codex.to_str().unwrap(),
        "exec",
        "--skip-git-repo-check",
        "--dangerously-bypass-approvals-and-sandbox",
        "make the change",
    ])
}

fn check_session(run: Run, mock: &Mock, out: &Out) {
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("MOCK-DONE"), "Codex did not finish the conversation: {out:?}");
    let requests = mock.requests();
    // The model traffic went through the interception: the WebSocket, with
    // the real key — which the sandbox never held.
    assert!(
        requests.iter().any(|r| r["websocket"] == true && r["authorization"] == format!("Bearer {REAL_KEY}")),
        "{requests:?}"
    );
    assert!(
        requests.iter().all(|r| r["authorization"].is_null() || r["authorization"] == format!("Bearer {REAL_KEY}"))
    );
    let tool = mock.tool_output();
    assert!(tool.contains("COMMITTED"), "control: the tool ran in the workspace: {tool}");
    assert!(
        tool.contains("response 403") && tool.contains("outside=000"),
        "a host outside the profile was reachable: {tool}"
    );
    assert!(tool.contains("keys=sk-") && !tool.contains(REAL_KEY), "{tool}");
    assert!(tool.contains("real-in-env=0"), "{tool}");
    assert!(!out.stdout.contains(REAL_KEY) && !out.stderr.contains(REAL_KEY));

    let diff = run(&["diff", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&diff.stdout).unwrap();
    let status = |p: &str| {
        v["changes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["path"] == p)
            .map(|c| c["status"].as_str().unwrap().to_owned())
    };
    assert_eq!(status("made.txt").as_deref(), Some("added"), "{v}");
    assert_eq!(status("gone.txt").as_deref(), Some("deleted"), "{v}");
    assert_eq!(status("keep.txt").as_deref(), Some("modified"), "{v}");

    let log = run(&["log", "--json"]).ok().stdout;
    let records: Vec<serde_json::Value> = log.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(
        records.iter().any(|r| r["type"] == "net" && r["host"] == "example.com" && r["decision"] == "deny"),
        "the refusal is not in the log: {log}"
    );
    assert!(
        records.iter().any(|r| r["type"] == "net" && r["rule"] == "credentials.openai" && r["status"] == 101),
        "the route's WebSocket is not in the log: {log}"
    );
    assert!(!log.contains(REAL_KEY));
}

/// `codex exec` as root, in a fresh home and then in the home the first
/// session left (its `~/.codex`): the agent runs, its key is swapped in the
/// proxy, its tools run sandboxed, and rollback restores the workspace.
#[test]
fn codex_runs_with_its_key_swapped_by_interception_and_rolls_back() {
    let env = Env::protected();
    let ws = workspace(&env);
    let mock = Mock::start(&env.dir("mock"), SCRIPT);
    let profile = profile(&env.dir("profiles"), &mock);
    let before = capture(&ws, &skip_git_internals);
    let head = git(&ws, &["rev-parse", "HEAD"]);
    for round in ["a fresh home", "a used home"] {
        let run = |args: &[&str]| {
            let mut c = env.command(&ws, args);
            c.env("WS_E2E_OPENAI_KEY", REAL_KEY);
            env.run(c)
        };
        let out = codex_exec(&run, &profile);
        check_session(&run, &mock, &out);
        assert!(env.home.join(".codex").is_dir(), "{round}: Codex kept no state");
        env.ws(&ws, &["rollback"]).ok();
        assert_same_tree(&before, &capture(&ws, &skip_git_internals));
        assert_eq!(git(&ws, &["rev-parse", "HEAD"]), head, "{round}: the agent's commit survived the rollback");
        let _ = std::fs::remove_file(&mock.log);
    }
}

/// Codex's own TUI in a real terminal: its first-run sign-in finds the
/// phantom in OPENAI_API_KEY, a prompt runs a tool through the mock, and
/// Ctrl-C ends Codex and, with it, the session, whose change is recorded.
/// (`--no-daemon`: Codex's TUI otherwise copies a server binary into
/// `~/.codex/packages` and runs it from there, which the profile does not
/// let a session do: the session could plant a binary you run later.)
#[test]
fn codexs_tui_renders_works_and_ctrl_c_ends_the_session() {
    let env = Env::protected();
    let ws = workspace(&env);
    let mock = Mock::start(&env.dir("mock"), "echo tui > tui.txt; echo TUI-RAN");
    let profile = profile(&env.dir("profiles"), &mock);
    let command = format!(
        "env -i PATH=/usr/bin:/bin HOME={home} TERM=xterm-256color LANG=C.UTF-8 WS_E2E_OPENAI_KEY={REAL_KEY} \
         {ws_bin} session start --profile {profile} -- {codex} --no-daemon --dangerously-bypass-approvals-and-sandbox; \
         echo WS-EXIT=$?; sleep 60",
        home = env.home.display(),
        ws_bin = env!("CARGO_BIN_EXE_ws"),
        codex = agent_bin("codex").display(),
    );
    let tmux = Tmux::start(&ws, &command);
    // First run: sign in with the key the environment holds (the phantom).
    tmux.wait_for("Choose how you want to use Codex", 60);
    // One Down at a time until the third option is chosen: a key sent
    // before the menu reads input is lost (seen under load), and Enter on
    // the second option asks OpenAI's real host for a device code.
    tmux.press_until(&["Down"], "> 3. Sign in another way", 20);
    tmux.press_until(&["Enter"], "Pay for what you use", 20);
    let s = tmux.press_until(&["Enter"], "Detected OPENAI_API_KEY", 20);
    assert!(s.contains("sk-ws-phantom-") && !s.contains(REAL_KEY), "{s}");
    tmux.press_until(&["Enter"], "Trust this folder", 20);
    tmux.press_until(&["Enter"], "Ask Codex", 20);
    tmux.text("make the change");
    tmux.wait_for("make the change", 20);
    tmux.press_until(&["Enter"], "MOCK-DONE", 60);
    tmux.keys(&["C-c"]);
    std::thread::sleep(Duration::from_millis(500));
    tmux.keys(&["C-c"]);
    let s = tmux.wait_for("WS-EXIT=", 30);
    assert!(s.contains("WS-EXIT=0"), "{s}");
    assert!(s.contains("1 created"), "the session's summary: {s}");
    assert!(!s.contains(REAL_KEY));
    assert!(mock.requests().iter().any(|r| r["authorization"] == format!("Bearer {REAL_KEY}")));
    let diff = env.ws(&ws, &["diff", "--name-status"]).ok().stdout;
    assert!(diff.contains("tui.txt"), "{diff}");
    let show = env.ws(&ws, &["session", "show"]).ok().stdout;
    assert!(!show.contains("incomplete"), "{show}");
}

/// The same as an unprivileged user (`nobody`, with a home of its own), with
/// user namespaces and where they are blocked (the proxy then on the host's
/// loopback, the interception behind the session's proxy token).
#[test]
fn codex_as_a_user_runs_with_its_key_swapped_by_interception() {
    let u = crate::privilege::unprivileged();
    let ws = u.env.dir("agent-ws");
    git_repo(&ws);
    write(ws.join("keep.txt"), "keep\n");
    write(ws.join("gone.txt"), "gone\n");
    commit_all(&ws, "init");
    let mock = Mock::start(&u.env.dir("mock"), SCRIPT);
    let profile = profile(&u.env.dir("agent-profiles"), &mock);
    let st = Command::new("chown").args(["-R", "65534:65534"]).arg(&ws).status().unwrap();
    assert!(st.success());
    let before = capture(&ws, &skip_git_internals);
    let as_user = |args: &[&str]| {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]);
        c.arg(env!("CARGO_BIN_EXE_ws")).args(args).current_dir(&ws).env_clear();
        c.env("PATH", "/usr/bin:/bin").env("HOME", &u.home).env("LANG", "C.UTF-8").env("NO_COLOR", "1");
        c.env("WS_E2E_OPENAI_KEY", REAL_KEY);
        u.env.run(c)
    };
    let out = codex_exec(&as_user, &profile);
    check_session(&as_user, &mock, &out);
    as_user(&["rollback"]).ok();
    assert_same_tree(&before, &capture(&ws, &skip_git_internals));
    assert!(u.home.join(".codex").is_dir());

    let prelude = format!("export PATH=/usr/bin:/bin WS_E2E_OPENAI_KEY={REAL_KEY}; ");
    let no_userns = |args: &[&str]| crate::privilege::as_nobody_without_userns_after(&u, &prelude, args);
    let _ = std::fs::remove_file(&mock.log);
    let st = Command::new("chown").args(["-R", "65534:65534"]).arg(&u.ws).status().unwrap();
    assert!(st.success());
    let out = codex_exec(&no_userns, &profile);
    assert!(out.code == 0 && out.stdout.contains("MOCK-DONE"), "{out:?}");
    assert!(
        mock.requests().iter().any(|r| r["authorization"] == format!("Bearer {REAL_KEY}")),
        "{:?}",
        mock.requests()
    );
    assert!(!mock.tool_output().contains(REAL_KEY));
}
