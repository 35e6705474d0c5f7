//! The three privilege modes: root; unprivileged with user namespaces;
//! unprivileged with user-namespace creation blocked. CI runs as root; these
//! tests drop to `nobody` themselves. To block user namespaces without
//! touching the machine, the last mode runs `ws` inside a user namespace of
//! the test's own whose `user.max_user_namespaces` is 0: nothing below it may
//! create another, exactly as on a machine that forbids them.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::harness::*;

const NOBODY: u32 = 65534;

pub(crate) struct Unprivileged {
    pub env: Env,
    pub home: PathBuf,
    pub ws: PathBuf,
}

pub(crate) fn unprivileged() -> Unprivileged {
    assert!(is_root(), "needs root to switch to an unprivileged user (the README's test command runs as root)");
    let env = Env::protected();
    let home = env.dir("nobody-home");
    let ws = env.dir("ws");
    git_repo(&ws);
    write(ws.join("mine.txt"), "workspace file\n");
    write(home.join(".ssh/id_ed25519"), "SECRET-SSH\n");
    for p in [env.tmp.path(), &home, &ws] {
        std::process::Command::new("chown").args(["-R", "65534:65534"]).arg(p).status().unwrap();
    }
    Unprivileged { env, home, ws }
}

pub(crate) fn as_nobody(u: &Unprivileged, cwd: &Path, args: &[&str]) -> Out {
    let mut wrapped = std::process::Command::new("setpriv");
    wrapped.args([format!("--reuid={NOBODY}"), format!("--regid={NOBODY}"), "--clear-groups".into(), "--".into()]);
    wrapped.arg(env!("CARGO_BIN_EXE_ws")).args(args);
    wrapped.current_dir(cwd).env_clear();
    wrapped.env("PATH", "/usr/bin:/bin").env("HOME", &u.home).env("NO_COLOR", "1").env("LANG", "C.UTF-8");
    u.env.run(wrapped)
}

/// What every mode must still give, checked from inside: the command ran and
/// wrote the workspace (control), and HOME's secrets are unreadable.
const PROBE: &str = "cat mine.txt && echo ok > control.txt; id -u; cat \"$HOME/.ssh/id_ed25519\" 2>&1; \
                     ps -eo pid= | wc -l | sed 's/^/procs=/'; echo hook > .git/hooks/pre-commit 2>&1 && echo HOOK-WRITTEN; true";

fn common(out: &Out, ws: &Path) {
    assert!(out.stdout.contains("workspace file") && ws.join("control.txt").exists(), "control: {out:?}");
    assert!(!out.stdout.contains("SECRET-SSH"), "HOME was readable: {out:?}");
}

fn procs(out: &Out) -> usize {
    out.stdout.lines().find_map(|l| l.strip_prefix("procs=")).and_then(|n| n.trim().parse().ok()).expect("procs line")
}

#[test]
fn root_sessions_get_namespaces() {
    let env = Env::protected();
    let ws = env.dir("ws");
    git_repo(&ws);
    write(ws.join("mine.txt"), "workspace file\n");
    write(env.home.join(".ssh/id_ed25519"), "SECRET-SSH\n");
    let script = format!("{PROBE}; git config core.hooksPath /tmp/evil 2>&1; ls \"$HOME/.local/share/ws/stores\" 2>&1");
    let out = env.session(&ws, &script);
    common(&out, &ws);
    assert!(out.stdout.contains("\n0\n"), "root stays root: {out:?}");
    assert!(procs(&out) <= 6, "ps sees processes outside the session: {out:?}");
    assert!(!out.stdout.contains("HOOK-WRITTEN") && out.stderr.contains("Read-only file system"), "{out:?}");
    assert!(out.stdout.contains("could not write config file .git/config"), "{out:?}");
    assert!(!std::fs::read_to_string(ws.join(".git/config")).unwrap().contains("evil"));
}

#[test]
fn unprivileged_with_user_namespaces_gets_every_layer() {
    let u = unprivileged();
    let out = as_nobody(&u, &u.ws, &["session", "start", "--", "sh", "-c", PROBE]);
    assert_eq!(out.code, 0, "{out:?}");
    common(&out, &u.ws);
    assert!(out.stdout.contains(&format!("\n{NOBODY}\n")), "the command must see the user it is, not root: {out:?}");
    assert!(procs(&out) <= 6, "ps sees processes outside the session: {out:?}");
    assert!(!out.stdout.contains("HOOK-WRITTEN"), ".git/hooks was writable: {out:?}");
    assert!(!out.stderr.contains("running without"), "{}", out.stderr);
    let doctor = as_nobody(&u, &u.ws, &["doctor", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&doctor.stdout).unwrap();
    let ns = v["layers"].as_array().unwrap().iter().find(|l| l["layer"] == "namespaces").unwrap().clone();
    assert_eq!(ns["available"], true, "{ns}");
}

/// Runs `ws ARGS` as nobody inside a user namespace that may not create any
/// other: the test (root outside) maps uids 0 and 65534 into it, the shell in
/// it (root there) sets `user.max_user_namespaces` to 0, then drops to nobody.
pub(crate) fn as_nobody_without_userns(u: &Unprivileged, args: &[&str]) -> Out {
    as_nobody_without_userns_after(u, "", args)
}

/// [`as_nobody_without_userns`], with the shell running `prelude` first
/// (as root in the namespace, before it drops to nobody).
pub(crate) fn as_nobody_without_userns_after(u: &Unprivileged, prelude: &str, args: &[&str]) -> Out {
    let ws_bin = env!("CARGO_BIN_EXE_ws");
    let quoted: Vec<String> = args.iter().map(|a| format!("'{}'", a.replace('\'', "'\\''"))).collect();
    let inner = format!(
        "echo 0 > /proc/sys/user/max_user_namespaces || exit 90; {prelude}\
         exec setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups -- {ws_bin} {}",
        quoted.join(" ")
    );
    // The outer shell started before its uid was mapped, so it holds no
    // capabilities; once the map is written, exec'ing again as the now-mapped
    // root gives them back.
    let mut child = std::process::Command::new("unshare")
        .args(["--user", "sh", "-c", "read go; exec sh -c \"$1\"", "sh", &inner])
        .current_dir(&u.ws)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", &u.home)
        .env("NO_COLOR", "1")
        .env("LANG", "C.UTF-8")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // `unshare` execs sh once the namespace exists; wait until it has.
    let own = std::fs::read_link("/proc/self/ns/user").unwrap();
    for _ in 0..400 {
        if std::fs::read_link(format!("/proc/{pid}/ns/user")).is_ok_and(|ns| ns != own) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    for map in ["uid_map", "gid_map"] {
        std::fs::write(format!("/proc/{pid}/{map}"), format!("0 0 1\n{NOBODY} {NOBODY} 1\n")).unwrap();
    }
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let o = child.wait_with_output().unwrap();
    Out::from(o)
}

#[test]
fn unprivileged_without_user_namespaces_degrades_loudly_and_rollback_restores_hooks() {
    let u = unprivileged();
    let before = capture(&u.ws, &no_skip);
    let doctor = as_nobody_without_userns(&u, &["doctor"]);
    assert!(doctor.stdout.contains("user namespaces are blocked here"), "{doctor:?}");
    let out = as_nobody_without_userns(&u, &["session", "start", "--", "sh", "-c", PROBE]);
    assert_eq!(out.code, 0, "{out:?}");
    common(&out, &u.ws);
    assert!(out.stderr.contains("running without namespaces"), "the weaker mode must be said: {}", out.stderr);
    assert!(
        out.stdout.contains("HOOK-WRITTEN"),
        "without namespaces .git/hooks is writable; this test relies on that: {out:?}"
    );
    // A profile that requires namespaces is refused here, before anything runs.
    let strict = u.env.dir("p").join("strict.toml");
    write(&strict, "extends = \"default\"\n[enforce]\nrequire = [\"landlock\", \"seccomp\", \"namespaces\"]\n");
    std::process::Command::new("chown").args(["-R", "65534:65534"]).arg(strict.parent().unwrap()).status().unwrap();
    let refused = as_nobody_without_userns(
        &u,
        &["session", "start", "--profile", strict.to_str().unwrap(), "--", "touch", "ran"],
    );
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(
        refused.stderr.contains("requires namespaces") && refused.stderr.contains("--allow-degraded"),
        "{}",
        refused.stderr
    );
    assert!(!u.ws.join("ran").exists());
    // Rollback is the protection left: the planted hook goes away.
    let rb = as_nobody_without_userns(&u, &["rollback"]);
    assert_eq!(rb.code, 0, "{rb:?}");
    assert!(!u.ws.join(".git/hooks/pre-commit").exists());
    assert_same_tree(&before, &capture(&u.ws, &no_skip));
}

#[test]
fn a_directory_you_cannot_write_is_refused() {
    let u = unprivileged();
    // Positive control: the same user starts a session in its own workspace.
    as_nobody(&u, &u.ws, &["session", "start", "--", "true"]).ok();
    let readonly = u.env.tmp.path().join("readonly");
    std::fs::create_dir(&readonly).unwrap(); // root's, mode 755
    let out = as_nobody(&u, &readonly, &["session", "start", "--", "true"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("is not writable by you") && out.stderr.contains("readonly"), "{}", out.stderr);
}

/// The network attack run in every mode: a control through the proxy, then
/// a direct connection to a host service, a UDP datagram, and the proxy
/// used without the session's credentials.
fn network_probe(upstream: u16, udp: u16) -> String {
    format!(
        "curl -sS http://127.0.0.1:{upstream}/control; echo; \
         curl -sS --noproxy '*' -m 3 http://127.0.0.1:{upstream}/bypass 2>&1; echo \"bypass-exit=$?\"; \
         (echo exfil > /dev/udp/127.0.0.1/{udp} && echo UDP-SENT) 2>&1; \
         bare=$(echo \"$HTTP_PROXY\" | sed 's|//.*@|//|'); \
         curl -sS -o /dev/null -w 'no-token-status=%{{http_code}}\\n' -x \"$bare\" http://127.0.0.1:{upstream}/no-token 2>&1; true"
    )
}

fn network_profile(u: &Unprivileged) -> String {
    let p = u.env.dir("netprofile").join("loopback.toml");
    write(&p, "extends = \"default\"\n[network]\nhosts = [\"127.0.0.1:*\"]\naddresses = [\"127.0.0.1\"]\n");
    std::process::Command::new("chown").args(["-R", "65534:65534"]).arg(p.parent().unwrap()).status().unwrap();
    p.to_string_lossy().into_owned()
}

/// The unprivileged fixture, a loopback upstream and UDP listener outside,
/// a profile that allows the upstream, and the probe that attacks them.
struct NetworkAttack {
    u: Unprivileged,
    upstream: Upstream,
    udp: std::net::UdpSocket,
    profile: String,
    probe: String,
}

fn network_attack() -> NetworkAttack {
    let u = unprivileged();
    let upstream = Upstream::start();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(std::time::Duration::from_millis(300))).unwrap();
    let profile = network_profile(&u);
    let probe = network_probe(upstream.port, udp.local_addr().unwrap().port());
    NetworkAttack { u, upstream, udp, profile, probe }
}

fn assert_network_confined(out: &Out, upstream: &Upstream, udp: &std::net::UdpSocket) {
    assert!(out.stdout.contains("upstream saw: GET /control"), "control through the proxy: {out:?}");
    assert!(!out.stdout.contains("bypass-exit=0") && !out.stdout.contains("/bypass"), "{out:?}");
    let seen: Vec<String> = upstream.requests().into_iter().filter(|r| !r.starts_with("GET /no-token ")).collect();
    assert_eq!(seen.len(), 1, "only the control reached the upstream: {seen:?}");
    let mut buf = [0u8; 16];
    assert!(udp.recv_from(&mut buf).is_err(), "a UDP datagram left the session: {out:?}");
}

#[test]
fn unprivileged_sessions_get_a_network_namespace() {
    let NetworkAttack { u, upstream, udp, profile: p, probe } = network_attack();
    let out = as_nobody(&u, &u.ws, &["session", "start", "--profile", &p, "--", "bash", "-c", &probe]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_network_confined(&out, &upstream, &udp);
    // The proxy's socket lives in the session's namespace: nothing outside
    // can reach it, so it needs no token.
    assert!(out.stdout.contains("no-token-status=200"), "{out:?}");
}

#[test]
fn without_user_namespaces_landlock_and_seccomp_confine_the_network() {
    let NetworkAttack { u, upstream, udp, profile: p, probe } = network_attack();
    let out = as_nobody_without_userns(&u, &["session", "start", "--profile", &p, "--", "bash", "-c", &probe]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_network_confined(&out, &upstream, &udp);
    // Landlock refuses the direct connection; seccomp refuses the UDP socket;
    // the proxy refuses a client without the session's token.
    assert!(out.stdout.contains("Permission denied") || out.stdout.contains("Operation not permitted"), "{out:?}");
    assert!(!out.stdout.contains("UDP-SENT"), "{out:?}");
    assert!(out.stdout.contains("no-token-status=407"), "{out:?}");
}

/// The user's runtime directory (D-Bus session bus with the Secret Service,
/// keyring and agent sockets) is hidden from the session: a socket there
/// answers the same user outside (control) and is unreachable inside.
#[test]
fn the_users_runtime_directory_is_hidden() {
    use std::os::unix::net::{UnixListener, UnixStream};
    let u = unprivileged();
    let run = PathBuf::from(format!("/run/user/{NOBODY}"));
    let created = !run.exists();
    std::fs::create_dir_all(&run).unwrap();
    std::process::Command::new("chown").arg(format!("{NOBODY}:{NOBODY}")).arg(&run).status().unwrap();
    let sock = run.join(format!("ws-e2e-bus-{}", std::process::id()));
    let listener = UnixListener::bind(&sock).unwrap();
    std::process::Command::new("chown").arg(format!("{NOBODY}:{NOBODY}")).arg(&sock).status().unwrap();
    UnixStream::connect(&sock).expect("control: the socket answers outside the session");
    let probe = format!(
        "cat mine.txt; perl -MSocket -e 'socket(my $s, PF_UNIX, SOCK_STREAM, 0) or die; \
         print connect($s, pack_sockaddr_un(\"{}\")) ? \"bus=connected\\n\" : \"bus=failed\\n\"'",
        sock.display()
    );
    let out = as_nobody(&u, &u.ws, &["session", "start", "--", "sh", "-c", &probe]);
    drop(listener);
    let _ = std::fs::remove_file(&sock);
    if created {
        let _ = std::fs::remove_dir(&run);
    }
    assert!(out.stdout.contains("workspace file"), "control inside: {out:?}");
    assert!(out.stdout.contains("bus=failed"), "the runtime directory's socket was reachable: {out:?}");
}

/// Unprivileged, `ws learn` cannot see the files a command opens (fanotify
/// needs root): it says so, in both unprivileged modes, and still learns
/// the network, which its own proxy sees whole.
#[test]
fn unprivileged_learning_says_what_it_cannot_observe_and_learns_the_network() {
    let u = unprivileged();
    let server = Upstream::start();
    let script = format!("cat mine.txt && curl -sf http://127.0.0.1:{}/learn > got.txt", server.port);
    for (n, mode) in ["with user namespaces", "without user namespaces"].into_iter().enumerate() {
        let file = u.env.tmp.path().join(format!("learned-{n}.toml"));
        let args = ["learn", "--out", file.to_str().unwrap(), "--", "sh", "-c", &script];
        let out = if n == 0 { as_nobody(&u, &u.ws, &args) } else { as_nobody_without_userns(&u, &args) };
        assert_eq!(out.code, 0, "{mode}: {out:?}");
        assert!(out.stdout.contains("workspace file"), "{mode}: control: {out:?}");
        assert_eq!(std::fs::read_to_string(u.ws.join("got.txt")).unwrap(), "upstream saw: GET /learn HTTP/1.1\n");
        assert!(out.stderr.contains("the files the command opens cannot be observed"), "{mode}: {out:?}");
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains("# Files opened: NOT observed (fanotify needs root)"), "{mode}:\n{text}");
        assert!(text.contains(&format!("\"127.0.0.1:{}\",  # 1 request", server.port)), "{mode}:\n{text}");
        assert!(text.contains("\"127.0.0.1\",  # 1 connection"), "{mode}:\n{text}");
    }
    assert_eq!(server.requests().len(), 2);
}

/// Without namespaces the launcher becomes the command: it too passes on
/// no descriptor but stdin, stdout and stderr, even one its caller left
/// open for writing outside the workspace (see
/// `recorder::the_session_holds_no_descriptor_but_stdio` for the other modes).
#[test]
fn unprivileged_without_user_namespaces_passes_on_no_descriptor() {
    use crate::recorder::{FD_PROBE, fds_listed};
    let u = unprivileged();
    let outside = u.env.dir("outside").join("log");
    write(&outside, "before\n");
    let prelude = format!("exec 7>>'{}'; ", outside.display());
    // Control: a plain child of the same shell (nobody, no ws) has fd 7 and writes through it.
    let plain = std::process::Command::new("sh")
        .args([
            "-c",
            &format!("{prelude}exec setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups -- sh -c \"$0\""),
        ])
        .arg(FD_PROBE)
        .current_dir(&u.ws)
        .output()
        .unwrap();
    let plain = String::from_utf8_lossy(&plain.stdout).into_owned();
    assert!(fds_listed(&plain).contains(&7), "the caller's fd reaches a plain child: {plain}");
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "before\npwned\n");
    write(&outside, "before\n");
    std::fs::remove_file(u.ws.join("proof.txt")).unwrap();

    let out = as_nobody_without_userns_after(&u, &prelude, &["session", "start", "--", "sh", "-c", FD_PROBE]);
    assert!(out.stderr.contains("running without namespaces"), "the launcher path: {out:?}");
    assert!(u.ws.join("proof.txt").exists(), "control: the command ran: {out:?}");
    assert_eq!(fds_listed(&out.stdout), std::collections::BTreeSet::from([0, 1, 2]), "{out:?}");
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "before\n", "written through fd 7: {out:?}");
}

/// `ws` in a container like Docker's default: root, but a seccomp profile
/// that refuses every new namespace (unshare, setns, clone with a
/// CLONE_NEW* flag; clone3 ENOSYS) — `tests/e2e/no_namespaces_seccomp.py`
/// installs one. ws must run with the layers it can get (Landlock,
/// seccomp, the network through its proxy by Landlock's TCP filter), say
/// which it lacks, and refuse a profile that requires namespaces.
#[test]
fn in_a_container_that_denies_namespaces_ws_runs_with_what_it_can_get_and_says_so() {
    let env = Env::protected();
    let ws = env.dir("ws");
    git_repo(&ws);
    write(ws.join("mine.txt"), "workspace file\n");
    write(env.home.join(".ssh/id_ed25519"), "SECRET-SSH\n");
    let filter = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/e2e/no_namespaces_seccomp.py");
    let contained = |args: &[&str]| {
        let plain = env.command(&ws, args);
        let mut c = std::process::Command::new("python3");
        c.arg(&filter).arg(plain.get_program()).args(plain.get_args()).current_dir(&ws).env_clear();
        for (k, v) in plain.get_envs() {
            if let Some(v) = v {
                c.env(k, v);
            }
        }
        env.run(c)
    };
    // Control: the filter does refuse namespaces.
    let probe =
        std::process::Command::new("python3").arg(&filter).args(["unshare", "--mount", "true"]).output().unwrap();
    assert!(!probe.status.success(), "the filter let unshare through");

    let doctor = contained(&["doctor"]).stdout;
    let row = |name: &str| doctor.lines().find(|l| l.starts_with(name)).unwrap_or_default().to_owned();
    assert!(row("namespaces ").contains(" no ") && row("namespaces ").contains("seccomp profile"), "{doctor}");
    assert!(row("network ").contains("Landlock TCP filter"), "{doctor}");

    let script = "cat mine.txt && echo ok > control.txt; cat \"$HOME/.ssh/id_ed25519\" 2>&1; \
                  curl -sS -m 10 -o /dev/null https://example.com/ 2>&1; true";
    let out = contained(&["session", "start", "--", "sh", "-c", script]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("workspace file") && ws.join("control.txt").exists(), "control: {out:?}");
    assert!(!out.stdout.contains("SECRET-SSH"), "Landlock still holds: {out:?}");
    assert!(out.stdout.contains("response 403"), "the network goes through the proxy and is refused: {out:?}");
    assert!(out.stderr.contains("running without namespaces") && out.stderr.contains("seccomp profile"), "{out:?}");
    assert!(!out.stderr.contains("network is closed"), "the filtered mode serves the proxy: {out:?}");
    contained(&["rollback"]).ok();
    assert!(!ws.join("control.txt").exists());

    let strict = env.dir("profiles").join("strict.toml");
    write(&strict, "extends = \"default\"\n[enforce]\nrequire = [\"landlock\", \"seccomp\", \"namespaces\"]\n");
    let refused = contained(&["session", "start", "--profile", strict.to_str().unwrap(), "--", "true"]);
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(refused.stderr.contains("requires namespaces"), "{refused:?}");
}
