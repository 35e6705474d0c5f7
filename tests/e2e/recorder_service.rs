//! The recorder service (`ws recorder serve`): full recording for sessions
//! of users who are not root. The tests run the real service as root on a
//! socket of their own, sessions as `nobody` and as a second user (both at
//! once), and hostile clients as `nobody` (a small Python client that sends
//! what `ws` would not: garbage, a huge length, descriptors it does not own).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::privilege::{Unprivileged, unprivileged};

const NOBODY: u32 = 65534;

/// `ws recorder serve` on a socket of the test's own, killed when dropped.
struct Service {
    child: Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Service {
    fn start() -> Service {
        let dir = tempfile::Builder::new().prefix("ws-e2e-svc-").tempdir_in("/var/tmp").unwrap();
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let socket = dir.path().join("recorder.sock");
        let child = Command::new(env!("CARGO_BIN_EXE_ws"))
            .args(["recorder", "serve", "--socket"])
            .arg(&socket)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for(|| socket.exists(), "the service's socket");
        Service { child, socket, _dir: dir }
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for(mut cond: impl FnMut() -> bool, what: &str) {
    let until = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `ws ARGS` as `uid` (with its groups), HOME `home`, reaching the service.
fn ws_as(uid: u32, home: &Path, cwd: &Path, socket: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("setpriv");
    c.args([format!("--reuid={uid}"), format!("--regid={uid}"), "--init-groups".into(), "--".into()]);
    if uid == NOBODY {
        c = Command::new("setpriv");
        c.args([format!("--reuid={uid}"), format!("--regid={uid}"), "--clear-groups".into(), "--".into()]);
    }
    c.arg(env!("CARGO_BIN_EXE_ws")).args(args).current_dir(cwd).env_clear();
    c.env("PATH", "/usr/bin:/bin").env("HOME", home).env("NO_COLOR", "1").env("LANG", "C.UTF-8");
    c.env("WS_RECORDER_SOCKET", socket);
    c
}

fn run(env: &Env, c: Command) -> Out {
    env.run(c)
}

fn log_records(out: &Out) -> Vec<serde_json::Value> {
    out.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// A session script: many files written by grandchildren, a denied read,
/// and a pause (a marker, then waiting for `go`) in which root writes too.
const WRITER: &str = "d=out-$(id -u); mkdir $d; for i in $(seq 1 60); do sh -c \"sh -c 'echo $i > $d/f$i'\"; done; \
                      cat \"$HOME/secret.txt\" 2>/dev/null; touch paused; \
                      while [ ! -e go ]; do sleep 0.02; done; echo after > $d/after";

struct Workspace {
    uid: u32,
    home: PathBuf,
    ws: PathBuf,
    _env: Option<Env>,
    _keep: Option<tempfile::TempDir>,
}

fn nobody_workspace(u: &Unprivileged) -> Workspace {
    write(u.home.join("secret.txt"), "NOBODY-SECRET\n");
    Command::new("chown").args(["65534:65534"]).arg(u.home.join("secret.txt")).status().unwrap();
    Workspace { uid: NOBODY, home: u.home.clone(), ws: u.ws.clone(), _env: None, _keep: None }
}

fn second_user_workspace() -> Workspace {
    let u = crate::sudo::test_user();
    let dir = tempfile::Builder::new().prefix("ws-e2e-svc-").tempdir_in(&u.home).unwrap();
    git_repo(dir.path());
    write(dir.path().join("mine.txt"), "second user's file\n");
    write(u.home.join("secret.txt"), "SECOND-SECRET\n");
    for p in [dir.path().to_path_buf(), u.home.join("secret.txt")] {
        Command::new("chown").arg("-R").arg(format!("{}:{}", u.uid, u.gid)).arg(p).status().unwrap();
    }
    Workspace { uid: u.uid, home: u.home.clone(), ws: dir.path().to_path_buf(), _env: None, _keep: Some(dir) }
}

#[test]
fn two_users_at_once_get_every_write_of_their_own_session_and_nothing_else() {
    let _audit = AuditOn::new();
    let svc = Service::start();
    let u = unprivileged();
    let a = nobody_workspace(&u);
    let b = second_user_workspace();
    let env = Env::new();

    let start = |w: &Workspace| {
        let mut c = ws_as(w.uid, &w.home, &w.ws, &svc.socket, &["session", "start", "--", "sh", "-c", WRITER]);
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        c.spawn().unwrap()
    };
    let (ca, cb) = (start(&a), start(&b));
    for w in [&a, &b] {
        wait_for(|| w.ws.join("paused").exists(), "the session's pause");
        // Root writes in the workspace during the session: not the session's.
        write(w.ws.join("by-root.txt"), "root was here\n");
        write(w.ws.join("go"), "");
    }
    for (w, c) in [(&a, ca), (&b, cb)] {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let show = run(&env, ws_as(w.uid, &w.home, &w.ws, &svc.socket, &["session", "show", "--json"])).ok();
        let v: serde_json::Value = serde_json::from_str(&show.stdout).unwrap();
        assert_eq!(v["recording"]["writes"], "fanotify", "{v}");
        assert_eq!(v["recording"]["denials"], "landlock-audit", "{v}");
        assert!(v["recording"]["via"].as_str().unwrap().contains("recorder service"), "{v}");
        assert_eq!(v["record_complete"], true, "{v}");
        let human = run(&env, ws_as(w.uid, &w.home, &w.ws, &svc.socket, &["session", "show"])).ok();
        assert!(human.stdout.contains("through the recorder service"), "{}", human.stdout);

        let log = run(&env, ws_as(w.uid, &w.home, &w.ws, &svc.socket, &["log", "--json"])).ok();
        let records = log_records(&log);
        let written =
            |p: &str| records.iter().any(|r| r["type"] == "write" && r["path"] == p && r["pid"].as_u64() > Some(0));
        let dir = format!("out-{}", w.uid);
        for i in 1..=60 {
            assert!(written(&format!("{dir}/f{i}")), "{dir}/f{i} by a grandchild is in its log");
        }
        assert!(written(&format!("{dir}/after")));
        // Root's writes are someone else's: by path, never as the session's.
        assert!(!records.iter().any(|r| r["type"] == "write" && r["path"] == "by-root.txt"), "{}", log.stdout);
        assert!(records.iter().any(|r| r["type"] == "outside_write" && r["path"] == "by-root.txt"), "{}", log.stdout);
        // Nothing of the other session's.
        let other = if w.uid == a.uid { b.uid } else { a.uid };
        assert!(!log.stdout.contains(&format!("out-{other}")), "{}", log.stdout);
        assert!(
            records
                .iter()
                .any(|r| r["type"] == "denial" && r["object"].as_str().is_some_and(|o| o.ends_with("secret.txt"))),
            "the denied read is recorded: {}",
            log.stdout
        );
        // Rollback takes back the session's writes and leaves root's alone.
        run(&env, ws_as(w.uid, &w.home, &w.ws, &svc.socket, &["rollback"])).ok();
        assert!(!w.ws.join(&dir).exists());
        assert_eq!(std::fs::read_to_string(w.ws.join("by-root.txt")).unwrap(), "root was here\n");
    }
}

/// A hostile client, run as `nobody` with Python: `MODE ARGS…`; prints what
/// the service answered (or `closed`).
const CLIENT: &str = r#"
import os, socket, struct, sys, time, json
path, mode = sys.argv[1], sys.argv[2]
def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    return s
def answer(s):
    s.settimeout(15)
    data = b''
    try:
        while not data.endswith(b'\n'):
            b = s.recv(65536)
            if not b:
                break
            data += b
    except Exception as e:
        return 'error ' + str(e)
    return data.decode(errors='replace').strip() or 'closed'
def request(s, body, fds):
    frame = struct.pack('<I', len(body)) + body
    s.sendmsg([frame], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack('%di' % len(fds), *fds))] if fds else [])
if mode == 'garbage':
    s = connect(); s.sendall(b'GET / HTTP/1.1\r\n\r\n' * 10); print(answer(s))
elif mode == 'huge':
    s = connect()
    ws = os.open(sys.argv[3], os.O_RDONLY | os.O_DIRECTORY)
    pid = os.pidfd_open(os.getpid())
    s.sendmsg([struct.pack('<I', 1 << 30)], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack('2i', ws, pid))])
    print(answer(s))
elif mode == 'session':
    s = connect()
    ws = os.open(sys.argv[3], os.O_RDONLY | os.O_DIRECTORY)
    pid = os.pidfd_open(int(sys.argv[4]))
    request(s, json.dumps({'version': 1}).encode(), [ws, pid])
    print(answer(s))
elif mode == 'watch':
    s = connect()
    ws = os.open(sys.argv[3], os.O_RDONLY | os.O_DIRECTORY)
    store = os.open(sys.argv[4], os.O_RDONLY | os.O_DIRECTORY)
    since = sys.argv[5] if len(sys.argv) > 5 else None
    request(s, json.dumps({'version': 1, 'watch': {'since': since}}).encode(), [ws, store])
    print(answer(s))
elif mode == 'nofds':
    s = connect(); request(s, json.dumps({'version': 1}).encode(), []); print(answer(s))
elif mode == 'hold':
    import resource
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    held, refused = [], 0
    for i in range(int(sys.argv[3])):
        try:
            held.append(connect())
        except Exception:
            refused += 1
    time.sleep(float(sys.argv[4]))
    print('held', len(held), 'refused', refused)
"#;

fn client(svc: &Service, args: &[&str]) -> String {
    let o = Command::new("setpriv")
        .args([format!("--reuid={NOBODY}"), format!("--regid={NOBODY}"), "--clear-groups".into(), "--".into()])
        .args(["/usr/bin/python3", "-c", CLIENT])
        .arg(&svc.socket)
        .args(args)
        .env_clear()
        .output()
        .unwrap();
    assert!(o.status.success(), "client {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A process as `uid` in a PID namespace of its own (its init is `sleep`),
/// or in none: its pid as the host sees it.
fn sleeper(uid: u32, own_pid_ns: bool) -> (Child, u32) {
    let mut c = Command::new("setpriv");
    c.args([format!("--reuid={uid}"), format!("--regid={uid}"), "--clear-groups".into(), "--".into()]);
    if own_pid_ns {
        c.args(["unshare", "--user", "--map-root-user", "--pid", "--fork", "sleep", "30"]);
    } else {
        c.args(["sleep", "30"]);
    }
    let child = c.spawn().unwrap();
    let pid = if own_pid_ns {
        let parent = child.id();
        let mut found = 0;
        wait_for(
            || {
                found = std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children"))
                    .unwrap_or_default()
                    .split_whitespace()
                    .next()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(0);
                found != 0
            },
            "the namespace's init",
        );
        found
    } else {
        child.id()
    };
    (child, pid)
}

#[test]
fn hostile_clients_are_refused_and_the_service_keeps_serving_others() {
    let mut svc = Service::start();
    let u = unprivileged();
    let ws = u.ws.to_str().unwrap().to_owned();
    // Positive control: a well-formed request for nobody's own namespace init is served.
    let (mut own, own_pid) = sleeper(NOBODY, true);
    let served = client(&svc, &["session", &ws, &own_pid.to_string()]);
    assert!(served.contains("\"m\":\"ready\""), "{served}");

    let refused = |answer: &str, why: &str| {
        assert!(answer.contains("recorder service refused") && answer.contains(why), "want {why:?}: {answer}")
    };
    refused(&client(&svc, &["garbage"]), "");
    refused(&client(&svc, &["huge", &ws]), "at most 4096");
    refused(&client(&svc, &["nofds"]), "exactly two");
    // A workspace that is not nobody's.
    refused(&client(&svc, &["session", "/etc", &own_pid.to_string()]), "belongs to uid 0");
    // nobody's own process, but in no PID namespace of its own.
    let (mut shared, shared_pid) = sleeper(NOBODY, false);
    refused(&client(&svc, &["session", &ws, &shared_pid.to_string()]), "not in a PID namespace of its own");
    // Root's namespace init, passed by nobody.
    let (mut roots, roots_pid) = sleeper(0, true);
    refused(&client(&svc, &["session", &ws, &roots_pid.to_string()]), "runs as uid 0");
    for c in [&mut own, &mut shared, &mut roots] {
        let _ = c.kill();
        let _ = c.wait();
    }

    // A thousand connections from nobody: it gets its share, the rest is refused
    // at once; meanwhile another user's session is recorded in full.
    let flood = Command::new("setpriv")
        .args([format!("--reuid={NOBODY}"), format!("--regid={NOBODY}"), "--clear-groups".into(), "--".into()])
        .args(["/usr/bin/python3", "-c", CLIENT])
        .arg(&svc.socket)
        .args(["hold", "1000", "3"])
        .env_clear()
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let b = second_user_workspace();
    let env = Env::new();
    let out = run(
        &env,
        ws_as(b.uid, &b.home, &b.ws, &svc.socket, &["session", "start", "--", "sh", "-c", "echo x > during-flood"]),
    );
    assert_eq!(out.code, 0, "{out:?}");
    let show = run(&env, ws_as(b.uid, &b.home, &b.ws, &svc.socket, &["session", "show", "--json"])).ok();
    let v: serde_json::Value = serde_json::from_str(&show.stdout).unwrap();
    assert_eq!(v["recording"]["writes"], "fanotify", "the other user is served during the flood: {v}");
    assert_eq!(v["record_complete"], true, "{v}");
    let flooded = flood.wait_with_output().unwrap();
    assert!(String::from_utf8_lossy(&flooded.stdout).contains("held"), "{flooded:?}");
    assert!(svc.alive(), "the service survived every client");
}

#[test]
fn a_service_killed_mid_session_leaves_an_incomplete_record_and_a_session_that_rolls_back() {
    let mut svc = Service::start();
    let u = unprivileged();
    let env = Env::new();
    let script = "echo one > one.txt; touch paused; while [ ! -e go ]; do sleep 0.02; done; echo two > two.txt";
    let mut c = ws_as(NOBODY, &u.home, &u.ws, &svc.socket, &["session", "start", "--", "sh", "-c", script]);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let session = c.spawn().unwrap();
    wait_for(|| u.ws.join("paused").exists(), "the session's pause");
    let _ = svc.child.kill();
    let _ = svc.child.wait();
    write(u.ws.join("go"), "");
    let o = session.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "the session itself finishes: {stderr}");
    assert!(stderr.contains("INCOMPLETE"), "{stderr}");
    let show = run(&env, ws_as(NOBODY, &u.home, &u.ws, &svc.socket, &["session", "show", "--json"])).ok();
    let v: serde_json::Value = serde_json::from_str(&show.stdout).unwrap();
    assert_eq!(v["record_complete"], false, "{v}");
    assert!(v["recording"]["lost"].to_string().contains("recorder stopped"), "{v}");
    run(&env, ws_as(NOBODY, &u.home, &u.ws, &svc.socket, &["rollback"])).ok();
    assert!(!u.ws.join("one.txt").exists() && !u.ws.join("two.txt").exists());
    assert_eq!(std::fs::read_to_string(u.ws.join("mine.txt")).unwrap(), "workspace file\n");
}

#[test]
fn socket_activation_serves_and_the_installed_units_verify() {
    let dir = tempfile::Builder::new().prefix("ws-e2e-act-").tempdir_in("/var/tmp").unwrap();
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let socket = dir.path().join("recorder.sock");
    let mut activator = Command::new("systemd-socket-activate")
        .arg("-l")
        .arg(&socket)
        .arg(env!("CARGO_BIN_EXE_ws"))
        .args(["recorder", "serve"])
        .env_clear()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(|| socket.exists(), "the activation socket");
    std::fs::set_permissions(&socket, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    let u = unprivileged();
    let env = Env::new();
    let out = run(
        &env,
        ws_as(NOBODY, &u.home, &u.ws, &socket, &["session", "start", "--", "sh", "-c", "echo a > activated"]),
    );
    assert_eq!(out.code, 0, "{out:?}");
    let log = run(&env, ws_as(NOBODY, &u.home, &u.ws, &socket, &["log", "--json"])).ok();
    assert!(log_records(&log).iter().any(|r| r["type"] == "write" && r["path"] == "activated"), "{}", log.stdout);
    let _ = activator.kill();
    let _ = activator.wait();

    let units = tempfile::tempdir().unwrap();
    env.ws(dir.path(), &["recorder", "install", "--no-start", "--unit-dir", units.path().to_str().unwrap()]).ok();
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(units.path().join("ws-recorder.socket"))
        .arg(units.path().join("ws-recorder.service"))
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stderr));
    assert!(verify.stderr.is_empty(), "systemd-analyze warns: {}", String::from_utf8_lossy(&verify.stderr));
    env.ws(dir.path(), &["recorder", "uninstall", "--no-start", "--unit-dir", units.path().to_str().unwrap()]).ok();
    assert!(!units.path().join("ws-recorder.service").exists());
}

#[test]
fn without_a_service_an_unprivileged_session_says_how_to_get_one() {
    let u = unprivileged();
    let env = Env::new();
    let missing = u.env.tmp.path().join("no-such.sock");
    let out = run(&env, ws_as(NOBODY, &u.home, &u.ws, &missing, &["session", "start", "--", "true"]));
    assert_eq!(out.code, 0, "{out:?}");
    // No watch between sessions either: the next session walks, and says why.
    let show = run(&env, ws_as(NOBODY, &u.home, &u.ws, &missing, &["session", "show", "--json"])).ok();
    let v: serde_json::Value = serde_json::from_str(&show.stdout).unwrap();
    assert_eq!(v["before_snapshot"]["from"], "walk", "{v}");
    assert!(v["before_snapshot"]["reason"].as_str().unwrap().contains("sudo ws recorder install"), "{v}");
    let doctor = run(&env, ws_as(NOBODY, &u.home, &u.ws, &missing, &["doctor"])).ok();
    assert!(doctor.stdout.contains("sudo ws recorder install"), "{}", doctor.stdout);
}

#[test]
fn unprivileged_learn_through_the_service_learns_the_files_the_command_opened() {
    let svc = Service::start();
    let u = unprivileged();
    let env = Env::new();
    write(u.home.join("notes/n.txt"), "a note\n");
    Command::new("chown").args(["-R", "65534:65534"]).arg(u.home.join("notes")).status().unwrap();
    let out = run(
        &env,
        ws_as(NOBODY, &u.home, &u.ws, &svc.socket, &["learn", "--", "sh", "-c", "cat \"$HOME/notes/n.txt\""]),
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.stderr.contains("cannot be observed"), "{}", out.stderr);
    assert!(out.stdout.contains("\"$HOME/notes/n.txt\""), "the read is learned: {}", out.stdout);
}

#[test]
fn without_user_namespaces_the_service_cannot_tell_the_session_apart_and_the_record_says_why() {
    let svc = Service::start();
    let u = unprivileged();
    let prelude = format!("export WS_RECORDER_SOCKET='{}'; ", svc.socket.display());
    let out = crate::privilege::as_nobody_without_userns_after(
        &u,
        &prelude,
        &["session", "start", "--", "sh", "-c", "echo x > made.txt"],
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(u.ws.join("made.txt").exists(), "positive control: the command ran");
    let show = crate::privilege::as_nobody_without_userns_after(&u, &prelude, &["session", "show", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&show.stdout).unwrap();
    assert_eq!(v["recording"]["writes"], "none", "{v}");
    assert!(v["recording"]["gaps"].to_string().contains("no PID namespace"), "the gap says why: {v}");
    assert_eq!(v["changes"]["created"], 1, "the snapshot diff is still the record: {v}");
    // The service's watch needs no namespace: the next session's
    // before-snapshot comes from it, equal to a full walk.
    let again = crate::privilege::as_nobody_without_userns_after(
        &u,
        &format!("{prelude}export WS_WATCH=check; "),
        &["session", "start", "--", "true"],
    );
    assert_eq!(again.code, 0, "{again:?}");
    assert!(again.stderr.contains("the snapshot from the watch equals a full walk"), "{}", again.stderr);
}

/// `ws` as nobody, HOME `home`, in `ws`, reaching the service.
fn nobody_ws(svc: &Service, home: &Path, ws: &Path) -> impl Fn(&[&str]) -> Command {
    let (socket, home, ws) = (svc.socket.clone(), home.to_path_buf(), ws.to_path_buf());
    move |args: &[&str]| ws_as(NOBODY, &home, &ws, &socket, args)
}

/// A user who is not root gets the before-snapshot from the recorder
/// service's watch. Every way a file can change between two sessions (the
/// after-snapshot's cases, run by that user on the host), and a hard link
/// made outside and written through: the next session's before-snapshot,
/// from the service's watch, equals a full walk (`WS_WATCH=check`), and
/// `ws session show` says it came from the watch and named something.
#[test]
fn unprivileged_sessions_take_the_before_snapshot_from_the_services_watch() {
    let svc = Service::start();
    let u = unprivileged();
    let env = Env::new();
    let mut all = crate::fast_after::cases();
    all.push((
        "a hard link made outside, written through",
        "echo changed >> ../outside/shared && ln src/b.txt ../outside/fresh && echo through >> ../outside/fresh".into(),
    ));
    let mut failed = Vec::new();
    for (i, (name, script)) in all.iter().enumerate() {
        let (ws, outside) = (u.env.dir(&format!("c{i}/ws")), u.env.dir(&format!("c{i}/outside")));
        crate::fast_after::prepare(&ws, &outside, name.contains("excluded"));
        Command::new("chown").args(["-R", "65534:65534"]).arg(u.env.tmp.path().join(format!("c{i}"))).status().unwrap();
        let host = |script: &str| {
            let mut c = Command::new("setpriv");
            c.args([format!("--reuid={NOBODY}"), format!("--regid={NOBODY}"), "--clear-groups".into(), "--".into()]);
            c.args(["sh", "-c", script]).current_dir(&ws).env("HOME", &u.home);
            c
        };
        if let Err(e) = crate::watch::between_via(&env, script, &nobody_ws(&svc, &u.home, &ws), &host) {
            failed.push(format!("{name}: {e}"));
        }
    }
    assert!(failed.is_empty(), "{} of {} cases failed:\n{}", failed.len(), all.len(), failed.join("\n\n"));
}

/// The service's watch answers a user about their own directories only,
/// and never with a name outside them: another user's directory is
/// refused; a directory inside the workspace swapped again and again for a
/// symbolic link to a directory the user cannot read, while root writes
/// there, never makes the watch report a name written there. Positive
/// control: the user's own write in the workspace is reported.
#[test]
fn the_services_watch_answers_only_for_the_users_own_directory_and_nothing_outside() {
    let svc = Service::start();
    let u = unprivileged();
    let ws = u.ws.to_str().unwrap().to_owned();
    let home = u.home.to_str().unwrap().to_owned();
    let refused = client(&svc, &["watch", "/etc", &home]);
    assert!(refused.contains("recorder service refused") && refused.contains("belongs to uid 0"), "{refused}");
    let first = client(&svc, &["watch", &ws, &home]);
    let token = first.strip_prefix("ok ").map(|t| t.trim().to_owned()).unwrap_or_else(|| panic!("no token: {first}"));

    let private = u.env.dir("private");
    std::fs::create_dir_all(private.join("inner")).unwrap();
    std::fs::set_permissions(&private, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (private, stop) = (private.clone(), std::sync::Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = std::fs::write(private.join(format!("inner/SECRET-NAME-{i}")), "x");
                i += 1;
            }
        })
    };
    let swap = format!(
        "end=$(($(date +%s)+3)); while [ $(date +%s) -lt $end ]; do \
         mkdir -p x/inner; rm -rf x; ln -s '{}' x; rm x; done; echo mine > mine-now.txt",
        private.display()
    );
    let o = Command::new("setpriv")
        .args([format!("--reuid={NOBODY}"), format!("--regid={NOBODY}"), "--clear-groups".into(), "--".into()])
        .args(["sh", "-c", &swap])
        .current_dir(&u.ws)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    let since = client(&svc, &["watch", &ws, &home, &token]);
    assert!(since.starts_with("ok ") && since.contains("mine-now.txt"), "positive control: {since}");
    assert!(!since.contains("SECRET-NAME"), "a name outside the workspace was reported: {since}");
}

/// Sessions the service records take their after-snapshot from the record,
/// as root's do: every way to change a file, done by `nobody`'s session
/// (writers it leaves behind are ended by init, then the service's
/// recorder confirms it read every event): the after-snapshot from the
/// record equals a full walk (`WS_AFTER_SNAPSHOT=check`), and `ws session
/// show` says it came from the record and named something.
#[test]
fn unprivileged_sessions_take_the_after_snapshot_from_the_services_record() {
    let svc = Service::start();
    let u = unprivileged();
    let env = Env::new();
    let cases = crate::fast_after::cases();
    let mut failed = Vec::new();
    for (i, (name, script)) in cases.iter().enumerate() {
        let (ws, outside) = (u.env.dir(&format!("c{i}/ws")), u.env.dir(&format!("c{i}/outside")));
        crate::fast_after::prepare(&ws, &outside, name.contains("excluded"));
        Command::new("chown").args(["-R", "65534:65534"]).arg(u.env.tmp.path().join(format!("c{i}"))).status().unwrap();
        if let Err(e) = crate::fast_after::checked_via(&env, script, &nobody_ws(&svc, &u.home, &ws)) {
            failed.push(format!("{name}: {e}"));
        }
    }
    assert!(failed.is_empty(), "{} of {} cases failed:\n{}", failed.len(), cases.len(), failed.join("\n\n"));
}

/// A recorder service started from an older ws (version 1: no watch, no
/// sync), played by a small root server that answers as that version did.
const OLD_SERVICE: &str = r#"
import os, socket, struct, sys, json, array
path = sys.argv[1]
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(path); os.chmod(path, 0o666); srv.listen(16)
def line(c, m):
    c.sendall((json.dumps(m) + '\n').encode())
def serve(c):
    fds = array.array('i')
    msg, anc, _, _ = c.recvmsg(4, socket.CMSG_SPACE(2 * fds.itemsize))
    n = struct.unpack('<I', msg)[0]
    body = b''
    while len(body) < n:
        body += c.recv(n - len(body))
    for level, kind, data in anc:
        for fd in array.array('i', data[:len(data) - len(data) % 4]):
            os.close(fd)
    req = json.loads(body)
    refused = lambda why: line(c, {'m': 'unavailable', 'what': None, 'reason': 'the recorder service refused: ' + why})
    if 'watch' in req:
        refused('the request is not a ws recorder request: unknown field `watch`, expected `version` or `learn`')
    elif req['version'] != 1:
        refused('request version %d (this service speaks 1): upgrade ws' % req['version'])
    else:
        print('served version 1', flush=True)
        line(c, {'m': 'ready'})
        while c.recv(64):
            pass
        line(c, {'m': 'done', 'events': 0})
    c.close()
import threading
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;

/// A service still running an older ws (after an upgrade, before it is
/// restarted): the session is still recorded through it, at the version it
/// speaks, and the snapshots it cannot vouch for are full walks whose
/// reason names the fix.
#[test]
fn a_service_from_an_older_ws_still_records_and_the_walks_say_to_restart_it() {
    let u = unprivileged();
    let env = Env::new();
    let dir = u.env.dir("old-service");
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let socket = dir.join("recorder.sock");
    let mut old = Command::new("python3")
        .args(["-c", OLD_SERVICE])
        .arg(&socket)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(|| socket.exists(), "the old service's socket");
    let out = run(&env, ws_as(NOBODY, &u.home, &u.ws, &socket, &["session", "start", "--", "sh", "-c", "echo x > y"]));
    let _ = old.kill();
    let served = old.wait_with_output().unwrap();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(String::from_utf8_lossy(&served.stdout).contains("served version 1"), "{served:?}");
    let show = run(&env, ws_as(NOBODY, &u.home, &u.ws, &socket, &["session", "show", "--json"])).ok();
    let v: serde_json::Value = serde_json::from_str(&show.stdout).unwrap();
    assert!(v["recording"]["via"].as_str().unwrap_or("").contains("recorder service"), "{v}");
    for which in ["before_snapshot", "after_snapshot"] {
        assert_eq!(v[which]["from"], "walk", "{v}");
        let why = v[which]["reason"].as_str().unwrap_or("");
        assert!(why.contains("older ws") && why.contains("systemctl restart ws-recorder.service"), "{which}: {v}");
    }
}
