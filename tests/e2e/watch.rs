//! The before-snapshot from the watch. Between two sessions a process on
//! the host changes the workspace, in every way a file can change (the
//! after-snapshot's cases, run outside any session); the next session's
//! before-snapshot, taken from what the watch saw, equals a full walk of
//! the same tree (`WS_WATCH=check` takes both, one after the other, and
//! compares every entry). Positive control in each case: `ws session show
//! --json` says the watch was used and named something to look at. What the
//! watch cannot vouch for sends the session to the full walk, which `ws
//! session show` names.

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::Command;

use crate::fast_after::{cases, prepare};
use crate::harness::*;

/// How the session whose output `out` is took its before-snapshot.
fn before_snapshot(env: &Env, ws: &Path, out: &Out) -> serde_json::Value {
    before_snapshot_via(env, out, &|args| env.command(ws, args))
}

/// The same, `ws` run by `ws_cmd`.
pub(crate) fn before_snapshot_via(env: &Env, out: &Out, ws_cmd: &dyn Fn(&[&str]) -> Command) -> serde_json::Value {
    let id = out.stderr.split("`ws log ").nth(1).and_then(|s| s.split('`').next()).expect("the session's id");
    let show = env.run(ws_cmd(&["session", "show", id, "--json"])).ok();
    let v: serde_json::Value = serde_json::from_str(&show.stdout).unwrap();
    v["before_snapshot"].clone()
}

/// Stops (`STOP`), resumes or kills every process of a process group.
fn signal_group(pgid: u32, signal: &str) {
    let _ = Command::new("kill").args([&format!("-{signal}"), "--", &format!("-{pgid}")]).output();
}

/// Session one (which starts the watch), `script` on the host, then session
/// two with the check on; `Err` says what went wrong.
fn between(env: &Env, ws: &Path, script: &str) -> Result<(), String> {
    let host = |script: &str| {
        let mut c = Command::new("sh");
        c.args(["-c", script]).current_dir(ws);
        c
    };
    between_via(env, script, &|args| env.command(ws, args), &host)
}

/// [`between`], `ws` run by `ws_cmd` and the host's script by `host`.
pub(crate) fn between_via(
    env: &Env,
    script: &str,
    ws_cmd: &dyn Fn(&[&str]) -> Command,
    host: &dyn Fn(&str) -> Command,
) -> Result<(), String> {
    let first = env.run(ws_cmd(&["session", "start", "--", "true"]));
    if first.code != 0 {
        return Err(format!("the first session failed: {first:?}"));
    }
    // Its own process group: writers it leaves in the background are
    // stopped (files still open, mapped) while session two looks.
    let host = host(script).process_group(0).spawn().unwrap();
    let pgid = host.id();
    let status = host.wait_with_output().unwrap().status;
    signal_group(pgid, "STOP");
    let mut c = ws_cmd(&["session", "start", "--", "true"]);
    c.env("WS_WATCH", "check");
    let second = env.run(c);
    signal_group(pgid, "KILL");
    if !status.success() {
        return Err(format!("the host's script failed: {status}"));
    }
    if second.code != 0 {
        return Err(format!("the second session failed: {second:?}"));
    }
    let b = before_snapshot_via(env, &second, ws_cmd);
    if second.stderr.contains("check FAILED")
        || !second.stderr.contains("the snapshot from the watch equals a full walk")
    {
        return Err(format!("not equal to a full walk ({b}):\n{}", second.stderr));
    }
    if b["from"] != "watch" {
        return Err(format!("the before-snapshot was not taken from the watch: {b}"));
    }
    if b["paths"].as_u64().unwrap_or(0) == 0 {
        return Err("the watch named no path (the case tests nothing)".into());
    }
    Ok(())
}

#[test]
fn the_before_snapshot_from_the_watch_equals_a_full_walk_for_every_kind_of_change_between_sessions() {
    assert!(is_root(), "the watch needs root");
    let mut all = cases();
    all.push((
        "a hard link made outside, written through",
        "echo changed >> ../outside/shared && ln src/b.txt ../outside/fresh && echo through >> ../outside/fresh".into(),
    ));
    let mut failed = Vec::new();
    for (name, script) in &all {
        let env = Env::new();
        let (ws, outside) = (env.dir("ws"), env.dir("outside"));
        prepare(&ws, &outside, name.contains("excluded"));
        if let Err(e) = between(&env, &ws, script) {
            failed.push(format!("{name}: {e}"));
        }
    }
    assert!(failed.is_empty(), "{} of {} cases failed:\n{}", failed.len(), all.len(), failed.join("\n\n"));
}

/// The same on the clone filesystems, a workspace per case on one image.
#[test]
fn the_before_snapshot_from_the_watch_equals_a_full_walk_on_btrfs() {
    let fs = LoopFs::new("btrfs");
    let env = Env::protected();
    let mut failed = Vec::new();
    for (i, (name, script)) in cases().iter().enumerate().filter(|(_, (n, _))| !n.contains("excluded")) {
        let (ws, outside) = (fs.dir(&format!("ws{i}")), fs.dir(&format!("outside{i}")));
        prepare(&ws, &outside, false);
        if let Err(e) = between(&env, &ws, script) {
            failed.push(format!("{name}: {e}"));
        }
    }
    assert!(failed.is_empty(), "btrfs: {} cases failed:\n{}", failed.len(), failed.join("\n\n"));
}

/// One watch for many workspaces keeps the filesystem's attribute changes
/// once, and each workspace's token still finds its own: twelve workspaces,
/// 20,000 attribute changes outside all of them, then a hard link made
/// outside to a file of one workspace and written through. That
/// workspace's next before-snapshot, from the watch, equals a full walk;
/// so does another's, which changed nothing; and the watch's memory is
/// that of the changes, not of the changes times the workspaces.
#[test]
fn one_watch_for_many_workspaces_sees_a_link_made_outside_any_of_them() {
    assert!(is_root(), "the watch needs root");
    let env = Env::new();
    let dir = env.dir("watch");
    let outside = env.dir("outside");
    let spaces: Vec<_> = (0..12).map(|i| env.dir(&format!("ws{i}"))).collect();
    let session = |ws: &Path, check: bool| {
        let mut c = env.command(ws, &["session", "start", "--", "true"]);
        c.env("WS_WATCH_DIR", &dir);
        if check {
            c.env("WS_WATCH", "check");
        }
        env.run(c).ok()
    };
    for (i, ws) in spaces.iter().enumerate() {
        prepare(ws, &env.dir(&format!("outside{i}")), false);
        session(ws, false);
    }
    let pattern = format!("__watch {}", dir.join("watch.sock").display());
    let pid = String::from_utf8(Command::new("pgrep").args(["-f", &pattern]).output().unwrap().stdout).unwrap();
    let pid = pid.trim().to_string();
    let rss_kib = || -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    };
    let before = rss_kib();
    let churn = outside.join("churn");
    std::fs::create_dir(&churn).unwrap();
    for i in 0..20_000 {
        write(churn.join(format!("f{i}")), "x");
    }
    // `chmod` changes attributes only: no path of any workspace.
    let chmod = Command::new("chmod").args(["-R", "a+x"]).arg(&churn).status().unwrap();
    assert!(chmod.success());
    let target = &spaces[5];
    std::fs::hard_link(target.join("src/b.txt"), outside.join("fresh")).unwrap();
    let mut f = std::fs::OpenOptions::new().append(true).open(outside.join("fresh")).unwrap();
    std::io::Write::write_all(&mut f, b"through\n").unwrap();
    drop(f);
    for ws in [target, &spaces[2]] {
        let o = session(ws, true);
        assert!(o.stderr.contains("the snapshot from the watch equals a full walk"), "{}", o.stderr);
        let b = before_snapshot(&env, ws, &o);
        assert_eq!(b["from"], "watch", "{b}");
        if ws == target {
            assert!(b["paths"].as_u64().unwrap_or(0) > 0, "the linked file was not named: {b}");
        }
    }
    // 20,000 handles kept once are a few MiB; twelve times over, far more.
    let grown = rss_kib().saturating_sub(before);
    assert!(grown < 12 * 1024, "the watch grew by {grown} KiB for 20,000 attribute changes");
    Command::new("kill").args(["-KILL", &pid]).status().unwrap();
}

/// What the watch cannot vouch for sends the session to the full walk, and
/// `ws session show` says why: the first session, `WS_WATCH=off`, a watch
/// that was restarted, one that lost events, an excludes file outside the
/// workspace that changed. A rollback between sessions keeps the watch.
#[test]
fn the_full_walk_is_taken_and_named_when_the_watch_cannot_vouch_for_the_tree() {
    assert!(is_root(), "the watch needs root");
    let env = Env::new();
    let (ws, outside) = (env.dir("ws"), env.dir("outside"));
    prepare(&ws, &outside, false);
    // A watch of this test's own, which it kills and stops.
    let dir = env.dir("watch");
    let session = |script: &str, watch: Option<&str>| {
        let mut c = env.command(&ws, &["session", "start", "--", "sh", "-c", script]);
        c.env("WS_WATCH_DIR", &dir);
        if let Some(w) = watch {
            c.env("WS_WATCH", w);
        }
        env.run(c).ok()
    };
    let walked = |out: &Out, why: &str| {
        let b = before_snapshot(&env, &ws, out);
        assert!(b["from"] == "walk" && b["reason"].as_str().unwrap_or("").contains(why), "{why}: {b}");
    };
    let watched = |out: &Out| {
        let b = before_snapshot(&env, &ws, out);
        assert_eq!(b["from"], "watch", "{b}");
    };
    let o = session("echo 1 >> src/a.txt", None);
    walked(&o, "no earlier snapshot");
    let text = env.ws(&ws, &["session", "show"]).ok();
    assert!(text.stdout.contains("snapshot   full walk: no earlier snapshot"), "{}", text.stdout);
    env.ws(&ws, &["approve"]).ok();
    // Positive control: the next session takes it from the watch.
    let o = session("echo 2 >> src/a.txt", None);
    watched(&o);
    let text = env.ws(&ws, &["session", "show"]).ok();
    assert!(text.stdout.contains("snapshot   from the watch ("), "{}", text.stdout);
    // Rolled back between sessions: still from the watch, and right.
    env.ws(&ws, &["rollback"]).ok();
    let o = session("true", Some("check"));
    assert!(o.stderr.contains("the snapshot from the watch equals a full walk"), "{}", o.stderr);
    watched(&o);

    let o = session("true", Some("off"));
    walked(&o, "WS_WATCH=off");
    // The next one has no token for the walk's snapshot (the watch was not asked).
    let o = session("true", None);
    walked(&o, "the watch was not watching when the latest snapshot was taken");
    let o = session("true", None);
    watched(&o);

    let pattern = format!("__watch {}", dir.join("watch.sock").display());
    let killed = Command::new("pkill").args(["-KILL", "-f", &pattern]).status().unwrap();
    assert!(killed.success(), "no watch process listens in {}", dir.display());
    let o = session("true", None);
    walked(&o, "the watch was restarted");
    let o = session("true", None);
    watched(&o);

    // A watch that cannot read its events in time loses some: stopped while
    // 30,000 files are made, more events than the kernel queues.
    let stopped = Command::new("pkill").args(["-STOP", "-f", &pattern]).status().unwrap();
    assert!(stopped.success());
    for i in 0..30_000 {
        std::fs::write(ws.join(format!("target/many{i}")), "x").unwrap();
    }
    Command::new("pkill").args(["-CONT", "-f", &pattern]).status().unwrap();
    let o = session("true", Some("check"));
    walked(&o, "overflowed");
    let o = session("true", None);
    watched(&o);

    // The global excludes file (outside the workspace) changed.
    write(env.home.join(".config/git/ignore"), "*.md\n");
    let o = session("true", None);
    walked(&o, "the excludes file");
    Command::new("pkill").args(["-KILL", "-f", &pattern]).status().unwrap();
}

/// An agent that reaches the watch's socket from inside its session (a root
/// session: the socket's directory is not hidden from it) and asks it to
/// watch `/` gets no answer, and the watch takes nothing on. Positive
/// control: the same socket answers ws's own question from the host.
#[test]
fn a_session_cannot_make_the_watch_watch_a_tree_of_its_choosing() {
    assert!(is_root(), "the watch needs root");
    let env = Env::new();
    let ws = env.dir("ws");
    git_repo(&ws);
    write(ws.join("a.txt"), "a\n");
    commit_all(&ws, "base");
    let dir = env.dir("watch");
    let sock = dir.join("watch.sock");
    let mut c = env.command(&ws, &["session", "start", "--", "true"]);
    c.env("WS_WATCH_DIR", &dir);
    env.run(c).ok();
    let hex = |p: &Path| p.as_os_str().as_encoded_bytes().iter().map(|b| format!("{b:02x}")).collect::<String>();
    let ask = "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\nprint('connected')\n\
               s.sendall(sys.argv[2].encode())\ns.settimeout(5)\nr=s.recv(100)\nprint('reply', r[:2].decode() or '-')\n";
    let script = dir.join("ask.py");
    std::fs::write(&script, ask).unwrap();
    // Positive control: ws's own question, from the host.
    let host = Command::new("python3")
        .arg(&script)
        .arg(&sock)
        .arg(format!("now {} {}\n", hex(&ws), hex(&env.home)))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&host.stdout), "connected\nreply ok\n", "{host:?}");
    // The attack, from inside a session.
    let attack = format!("python3 '{}' '{}' 'now 2f {}\n'", script.display(), sock.display(), hex(&env.home));
    let o = env.session(&ws, &attack);
    assert!(o.stdout.contains("connected"), "the socket was not reachable (the test tests nothing): {o:?}");
    assert!(o.stdout.contains("reply -"), "the watch answered a session: {o:?}");
    // The watch took nothing on: its inotify watches are ws's workspace's
    // directories only (a handful), not the machine's.
    let pid = String::from_utf8(
        Command::new("pgrep").args(["-f", &format!("__watch {}", sock.display())]).output().unwrap().stdout,
    )
    .unwrap();
    let pid = pid.trim();
    let watches: usize = std::fs::read_dir(format!("/proc/{pid}/fdinfo"))
        .unwrap()
        .flatten()
        .map(|f| std::fs::read_to_string(f.path()).unwrap_or_default().matches("inotify wd:").count())
        .sum();
    assert!(watches > 0 && watches < 50, "{watches} directories watched");
    Command::new("kill").args(["-KILL", pid]).status().unwrap();
}
