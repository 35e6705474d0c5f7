//! Recording: every write of a session in `ws log` with its path and
//! operation (fanotify, root), nothing written by others attributed to it,
//! and an audit log whose tampering `ws audit verify` names.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::harness::*;

const TREE_DIRS: usize = 10;
const TREE_FILES: usize = 100;

/// The session's write records from `ws log --json`: (ops, path, to, pid).
fn writes(env: &Env, ws: &Path) -> Vec<(Vec<String>, String, Option<String>, u64)> {
    let log = env.ws(ws, &["log", "--json"]).ok();
    log.stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["type"] == "write")
        .map(|v| {
            let ops = v["ops"].as_array().unwrap().iter().map(|o| o.as_str().unwrap().to_owned()).collect();
            (
                ops,
                v["path"].as_str().unwrap().to_owned(),
                v["to"].as_str().map(str::to_owned),
                v["pid"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn has(w: &[(Vec<String>, String, Option<String>, u64)], op: &str, path: &str) -> bool {
    w.iter().any(|(ops, p, _, _)| p == path && ops.iter().any(|o| o == op))
}

/// Creates, appends, truncates, renames across directories, chmods,
/// symlinks, deletes and `rm -rf`s a tree of 1,000 files, from the shell,
/// a forked subshell and exec'd grandchildren; checks every step is logged.
fn every_step_is_logged(ws: &Path, env: &Env) {
    write(ws.join("existing.txt"), "one\n");
    write(ws.join("trunc.txt"), "some content\n");
    write(ws.join("gone.txt"), "delete me\n");
    write(ws.join("a/moving.txt"), "moving\n");
    for d in 0..TREE_DIRS {
        for f in 0..TREE_FILES {
            write(ws.join(format!("tree/d{d}/f{f}")), "x");
        }
    }
    let script = "set -e; echo new > created.txt; (echo two >> existing.txt); sh -c ': > trunc.txt'; \
                  mkdir b; mv a/moving.txt b/moved.txt; sh -c 'chmod 600 created.txt; ln -s created.txt link'; \
                  rm gone.txt; sh -c 'exec rm -rf tree'";
    env.session(ws, script).ok();
    let w = writes(env, ws);
    assert!(has(&w, "create", "created.txt"), "create missing: {w:?}");
    assert!(has(&w, "modify", "existing.txt"), "append missing");
    assert!(has(&w, "modify", "trunc.txt"), "truncate missing");
    assert!(has(&w, "create", "b"), "mkdir missing");
    assert!(
        w.iter()
            .any(|(ops, p, to, _)| ops == &["rename"] && p == "a/moving.txt" && to.as_deref() == Some("b/moved.txt")),
        "rename across directories missing: {w:?}"
    );
    assert!(has(&w, "attrib", "created.txt"), "chmod missing");
    assert!(has(&w, "create", "link"), "symlink missing");
    assert!(has(&w, "delete", "gone.txt"), "delete missing");
    let deleted: BTreeSet<&str> =
        w.iter().filter(|(ops, ..)| ops.iter().any(|o| o == "delete")).map(|(_, p, ..)| p.as_str()).collect();
    for d in 0..TREE_DIRS {
        assert!(deleted.contains(format!("tree/d{d}").as_str()), "rm -rf of tree/d{d} missing");
        for f in 0..TREE_FILES {
            assert!(deleted.contains(format!("tree/d{d}/f{f}").as_str()), "rm -rf of tree/d{d}/f{f} missing");
        }
    }
    assert!(deleted.contains("tree"));
    assert!(w.iter().all(|(.., pid)| *pid > 1), "every write has the writer's pid inside the session");
    let show = env.ws(ws, &["session", "show"]).ok();
    assert!(show.stdout.contains("writes by fanotify") && show.stdout.contains("record     complete"), "{show:?}");
    let verify = env.ws(ws, &["audit", "verify"]).ok();
    assert!(verify.stdout.contains("intact") && verify.stdout.contains("sealed"), "{verify:?}");
}

#[test]
fn every_write_is_logged_on_ext4() {
    assert!(is_root(), "fanotify filesystem marks need root (the README's test command runs as root)");
    let env = Env::protected();
    every_step_is_logged(&env.dir("ws"), &env);
}

#[test]
fn every_write_is_logged_on_btrfs() {
    let fs = LoopFs::new("btrfs");
    let env = Env::protected();
    every_step_is_logged(&fs.dir("ws"), &env);
}

#[test]
fn every_write_is_logged_on_xfs() {
    let fs = LoopFs::new("xfs");
    let env = Env::protected();
    every_step_is_logged(&fs.dir("ws"), &env);
}

/// What the script run in a session tries with a descriptor it did not open
/// (fd 7); then `ls -l` lists the shell's descriptors, on the shell's own
/// stdout (a redirection would add one to the shell while it lists).
pub(crate) const FD_PROBE: &str = "echo written > proof.txt; echo pwned >&7; ls -l /proc/$$/fd";

/// The descriptor numbers in [`FD_PROBE`]'s output (`… N -> TARGET` lines).
pub(crate) fn fds_listed(out: &str) -> BTreeSet<u32> {
    out.lines().filter_map(|l| l.split_once(" -> ")?.0.rsplit(' ').next()?.parse().ok()).collect()
}

/// An agent that finds a descriptor it did not open could use it past the
/// sandbox: the recorder's fanotify group (every write on the filesystem),
/// its pipe to the supervisor (forged records), or one the caller of `ws`
/// left open, here for appending to a file outside the workspace (Landlock
/// checks a file when it is opened, not when it is written). The command
/// holds stdin, stdout and stderr, nothing else.
#[test]
fn the_session_holds_no_descriptor_but_stdio() {
    assert!(is_root(), "fanotify filesystem marks need root (the README's test command runs as root)");
    let env = Env::protected();
    let ws = env.dir("ws");
    let outside = env.dir("outside").join("log");
    write(&outside, "before\n");
    // The caller's shell opens fd 7 on the outside file, then runs `inner`.
    let with_fd7 = |inner: &std::process::Command| {
        let mut c = std::process::Command::new("sh");
        c.args(["-c", "exec 7>>\"$0\"; exec \"$@\""]).arg(&outside).arg(inner.get_program()).args(inner.get_args());
        c.current_dir(&ws).env_clear().stdin(std::process::Stdio::null());
        for (k, v) in inner.get_envs() {
            if let Some(v) = v {
                c.env(k, v);
            }
        }
        env.run(c)
    };
    // Control: without ws, the script has fd 7 and writes through it.
    let direct = with_fd7(std::process::Command::new("sh").args(["-c", FD_PROBE]).env("PATH", "/usr/bin:/bin"));
    assert!(fds_listed(&direct.stdout).contains(&7), "the caller's fd reaches a plain child: {direct:?}");
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "before\npwned\n");
    write(&outside, "before\n");
    std::fs::remove_file(ws.join("proof.txt")).unwrap();

    let inside = with_fd7(&env.command(&ws, &["session", "start", "--", "sh", "-c", FD_PROBE]));
    // Control: the recorder ran, holding its pipe and group, and saw the write.
    assert!(has(&writes(&env, &ws), "create", "proof.txt"), "the recorder saw no write: {inside:?}");
    assert_eq!(fds_listed(&inside.stdout), BTreeSet::from([0, 1, 2]), "{inside:?}");
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "before\n", "written through fd 7: {inside:?}");
}

/// The recorder asks where a directory is when its first event is read,
/// not before the session. A tree written and removed within one read
/// (its directories gone by then) is still logged by its names; a
/// directory whose name ends as the kernel marks removed ones is not taken
/// for removed.
#[test]
fn writes_in_a_tree_removed_before_they_are_read_are_logged_by_their_names() {
    assert!(is_root(), "fanotify filesystem marks need root");
    let env = Env::protected();
    let ws = env.dir("ws");
    write(ws.join("old/a/b/kept.txt"), "kept\n");
    write(ws.join("old (deleted)/f.txt"), "one\n");
    let out = env.session(&ws, "echo new > old/a/b/new.txt && rm -rf old && echo two >> 'old (deleted)/f.txt'");
    out.ok();
    let w = writes(&env, &ws);
    // Positive control: the write in the directory still there.
    assert!(has(&w, "modify", "old (deleted)/f.txt"), "{w:?}");
    for (op, path) in [
        ("create", "old/a/b/new.txt"),
        ("delete", "old/a/b/new.txt"),
        ("delete", "old/a/b/kept.txt"),
        ("delete", "old/a/b"),
        ("delete", "old/a"),
        ("delete", "old"),
    ] {
        assert!(has(&w, op, path), "{op} {path} missing: {w:?}");
    }
    let show = env.ws(&ws, &["session", "show", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&show.stdout).unwrap();
    assert_eq!(v["after_snapshot"]["from"], "record", "{}", v["after_snapshot"]);
    let diff = env.ws(&ws, &["diff", "--name-status"]).ok();
    assert!(diff.stdout.contains("old (deleted)/f.txt") && diff.stdout.contains("old/a/b/kept.txt"), "{diff:?}");
}

#[test]
fn writes_from_outside_the_session_are_not_its_and_are_not_rolled_back() {
    assert!(is_root(), "fanotify filesystem marks need root");
    let env = Env::protected();
    let ws = env.dir("ws");
    write(ws.join("base.txt"), "base\n");
    let started = ws.join("session-started");
    let done = ws.join("outside-done");
    // The outside writer waits until the session runs, writes 1,000 files,
    // then lets the session finish.
    let writer = {
        let (ws, started, done) = (ws.clone(), started.clone(), done.clone());
        std::thread::spawn(move || {
            let t = std::time::Instant::now();
            while !started.exists() {
                assert!(t.elapsed().as_secs() < 60, "the session never started");
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            for i in 0..1000 {
                std::fs::write(ws.join(format!("editor-{i}.txt")), format!("{i}\n")).unwrap();
            }
            // A directory of its own, created during the session.
            std::fs::create_dir(ws.join("editor-dir")).unwrap();
            for i in 0..10 {
                std::fs::write(ws.join(format!("editor-dir/{i}.txt")), "x").unwrap();
            }
            std::fs::write(&done, "").unwrap();
        })
    };
    let out = env.session(
        &ws,
        "echo agent > agent.txt; : > session-started; while [ ! -e outside-done ]; do sleep 0.05; done; echo agent2 > agent2.txt",
    );
    writer.join().unwrap();
    out.ok();
    let w = writes(&env, &ws);
    // Positive control: the session's own writes are there.
    assert!(has(&w, "create", "agent.txt") && has(&w, "create", "agent2.txt"), "{w:?}");
    let theirs: Vec<_> = w.iter().filter(|(_, p, ..)| p.starts_with("editor-") || p == "outside-done").collect();
    assert!(
        theirs.is_empty(),
        "outside writes attributed to the session: {} of them, e.g. {:?}",
        theirs.len(),
        theirs.first()
    );
    let diff = env.ws(&ws, &["diff", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&diff.stdout).unwrap();
    let by = |p: &str| {
        v["changes"].as_array().unwrap().iter().find(|c| c["path"] == p).map(|c| c["by"].as_str().unwrap().to_owned())
    };
    assert_eq!(by("agent.txt").as_deref(), Some("session"));
    assert_eq!(by("editor-7.txt").as_deref(), Some("outside"));
    let rb = env.ws(&ws, &["rollback"]).ok();
    // 1,000 files, the marker, the directory and its 10 files.
    assert!(rb.stderr.contains("left 1012 paths alone"), "{rb:?}");
    assert!(
        !ws.join("agent.txt").exists() && !ws.join("agent2.txt").exists(),
        "the session's files were not rolled back"
    );
    for i in 0..1000 {
        assert!(ws.join(format!("editor-{i}.txt")).exists(), "editor-{i}.txt was rolled back");
    }
    assert!(ws.join("editor-dir/9.txt").exists(), "a directory made outside the session was rolled back");
}

fn log_file(env: &Env) -> PathBuf {
    let stores = env.home.join(".local/share/ws/stores");
    let mut stack = vec![stores];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == "audit.jsonl") {
                return p;
            }
        }
    }
    panic!("no audit log under {}", env.home.display());
}

#[test]
fn a_tampered_log_fails_verification_at_the_record() {
    let env = Env::protected();
    let ws = env.dir("ws");
    env.session(&ws, "echo a > a.txt; echo b > b.txt; rm a.txt").ok();
    // Positive control: the untouched log verifies.
    env.ws(&ws, &["audit", "verify"]).ok();
    let path = log_file(&env);
    let original = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = original.lines().collect();
    assert!(lines.len() >= 3, "{original}");

    // Edit the second record: reported at line 2.
    let mut edited: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    edited[1] = edited[1].replacen("\"time_ms\":", "\"time_ms\":1", 1);
    std::fs::write(&path, edited.join("\n") + "\n").unwrap();
    let out = env.ws(&ws, &["audit", "verify"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("record at line 2: was changed"), "{out:?}");

    // Remove the second record.
    let removed: Vec<&str> = lines.iter().enumerate().filter(|(i, _)| *i != 1).map(|(_, l)| *l).collect();
    std::fs::write(&path, removed.join("\n") + "\n").unwrap();
    let out = env.ws(&ws, &["audit", "verify"]);
    assert!(out.code == 1 && out.stderr.contains("line 2") && out.stderr.contains("removed"), "{out:?}");

    // Cut off the end.
    std::fs::write(&path, lines[..lines.len() - 1].join("\n") + "\n").unwrap();
    let out = env.ws(&ws, &["audit", "verify"]);
    assert!(out.code == 1 && out.stderr.contains("were removed"), "{out:?}");

    // Restored, it verifies again; `ws log` shows it.
    std::fs::write(&path, &original).unwrap();
    env.ws(&ws, &["audit", "verify"]).ok();
    let log = env.ws(&ws, &["log"]).ok();
    assert!(log.stdout.contains("start") && log.stdout.contains("end          exit 0"), "{log:?}");
}

#[test]
fn unprivileged_sessions_say_no_write_recorder_ran() {
    assert!(is_root(), "needs root to switch to an unprivileged user");
    let env = Env::protected();
    let home = env.dir("nobody-home");
    let ws = env.dir("ws");
    write(ws.join("f.txt"), "x\n");
    for p in [env.tmp.path(), &home, &ws] {
        std::process::Command::new("chown").args(["-R", "65534:65534"]).arg(p).status().unwrap();
    }
    let nobody = |args: &[&str]| {
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]).arg(env!("CARGO_BIN_EXE_ws")).args(args);
        c.current_dir(&ws).env_clear().env("PATH", "/usr/bin:/bin").env("HOME", &home).env("NO_COLOR", "1");
        env.run(c)
    };
    nobody(&["session", "start", "--", "sh", "-c", "echo y > g.txt"]).ok();
    let show = nobody(&["session", "show"]).ok();
    assert!(show.stdout.contains("writes by none"), "{show:?}");
    assert!(show.stdout.contains("every change counts as the session's"), "{show:?}");
    nobody(&["audit", "verify"]).ok();
}

#[test]
fn a_denied_write_is_a_denial_record() {
    assert!(is_root(), "reading the kernel's audit records needs root");
    let _audit = AuditOn::new();
    let env = Env::protected();
    let ws = env.dir("ws");
    let outside = env.home.join("planted.txt");
    let script = format!("echo ok > control.txt; echo x > {} 2>/dev/null; sh -c 'exec true'", outside.display());
    env.session(&ws, &script).ok();
    // Positive control: the session ran and its write was recorded.
    assert_eq!(std::fs::read_to_string(ws.join("control.txt")).unwrap(), "ok\n");
    assert!(!outside.exists(), "the write outside the workspace was not denied");
    let log = env.ws(&ws, &["log", "--json"]).ok();
    let records: Vec<serde_json::Value> = log.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(records.iter().any(|r| r["type"] == "write" && r["path"] == "control.txt"), "{}", log.stdout);
    assert_eq!(records[0]["recording"]["denials"], "landlock-audit", "{}", log.stdout);
    let denial = records.iter().find(|r| r["type"] == "denial").unwrap_or_else(|| panic!("no denial: {}", log.stdout));
    assert_eq!(denial["by"], "landlock");
    assert_eq!(denial["object"], env.home.to_str().unwrap(), "{denial}");
    assert!(denial["access"].as_array().unwrap().iter().any(|a| a == "fs.make_reg"), "{denial}");
    let denials = records.iter().filter(|r| r["type"] == "denial").count();
    assert_eq!(denials, 1, "only the command's one denial, none of ws's own: {}", log.stdout);
    let human = env.ws(&ws, &["log"]).ok();
    assert!(human.stdout.contains("DENIED       fs.make_reg"), "{}", human.stdout);
}

/// The pid of the running `ws __sandbox-record` whose workspace is `ws`.
fn recorder_pid(ws: &Path) -> Option<i32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        let text = String::from_utf8_lossy(&cmdline);
        (text.contains("__sandbox-record") && text.contains(ws.to_str()?)).then_some(pid)
    })
}

/// A session that writes `first`, waits until the test creates `go` in the
/// workspace, then writes `last`.
fn waiting_session(
    env: &Env,
    ws: &std::path::Path,
    first: &str,
    last: &str,
    output: fn() -> std::process::Stdio,
) -> std::process::Child {
    let script = format!("echo a > {first}; while [ ! -e go ]; do sleep 0.05; done; echo b > {last}");
    env.command(ws, &["session", "start", "--", "sh", "-c", &script]).stdout(output()).stderr(output()).spawn().unwrap()
}

#[test]
fn a_recorder_that_dies_marks_the_record_incomplete() {
    assert!(is_root(), "fanotify filesystem marks need root");
    let env = Env::protected();
    let ws = env.dir("ws");
    let child = waiting_session(&env, &ws, "a.txt", "b.txt", std::process::Stdio::piped);
    let t = std::time::Instant::now();
    let pid = loop {
        if ws.join("a.txt").exists()
            && let Some(p) = recorder_pid(&ws)
        {
            break p;
        }
        assert!(t.elapsed().as_secs() < 30, "no recorder found for the session");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    // The session ran (a.txt) and has its recorder: kill that, as a crash would.
    std::process::Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap();
    std::fs::write(ws.join("go"), "").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let show = env.ws(&ws, &["session", "show"]).ok();
    assert!(show.stdout.contains("record     INCOMPLETE: writes: the recorder stopped"), "{}", show.stdout);
    let log = env.ws(&ws, &["log"]).ok();
    assert!(log.stdout.contains("INCOMPLETE   writes from here on"), "{}", log.stdout);
    assert!(log.stdout.contains("record INCOMPLETE"), "{}", log.stdout);
    let json = env.ws(&ws, &["session", "show", "--json"]).ok();
    assert!(json.stdout.contains("\"record_complete\": false"), "{}", json.stdout);
}

#[test]
fn a_supervisor_that_dies_leaves_an_incomplete_sealed_record() {
    let env = Env::protected();
    let ws = env.dir("ws");
    let mut child =
        env.command(&ws, &["session", "start", "--", "sh", "-c", "echo a > a.txt; sleep 30"]).spawn().unwrap();
    let t = std::time::Instant::now();
    while !ws.join("a.txt").exists() {
        assert!(t.elapsed().as_secs() < 30, "the session never ran");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let show = env.ws(&ws, &["session", "show"]).ok();
    assert!(show.stdout.contains("INCOMPLETE: the supervisor died"), "{}", show.stdout);
    let log = env.ws(&ws, &["log"]).ok();
    assert!(log.stdout.contains("record INCOMPLETE"), "{}", log.stdout);
    env.ws(&ws, &["audit", "verify"]).ok();
}

#[test]
fn log_follow_shows_records_while_the_session_runs_and_ends_with_it() {
    assert!(is_root(), "fanotify filesystem marks need root");
    let env = Env::protected();
    let ws = env.dir("ws");
    let session = waiting_session(&env, &ws, "first.txt", "last.txt", std::process::Stdio::null);
    let t = std::time::Instant::now();
    while !ws.join("first.txt").exists() {
        assert!(t.elapsed().as_secs() < 30, "the session never ran");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let follow = env
        .command(&ws, &["log", "--follow"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Give --follow time to print what is there and start waiting.
    std::thread::sleep(std::time::Duration::from_millis(500));
    std::fs::write(ws.join("go"), "").unwrap();
    let mut session = session;
    assert!(session.wait().unwrap().success());
    let out = follow.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("first.txt") && text.contains("last.txt"), "{text}");
    assert!(text.lines().last().unwrap_or_default().contains("end          exit 0"), "{text}");
}

#[test]
fn proxy_requests_are_audit_records() {
    let env = Env::protected();
    let ws = env.dir("ws");
    let out = env.ws(
        &ws,
        &[
            "session",
            "start",
            "--",
            "sh",
            "-c",
            "echo ok > control.txt; curl -sS http://not-allowed.example/some/path 2>&1; true",
        ],
    );
    out.ok();
    assert!(ws.join("control.txt").exists(), "control: the session did not run");
    let log = env.ws(&ws, &["log", "--json"]).ok();
    let net: Vec<serde_json::Value> = log
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["type"] == "net")
        .collect();
    assert_eq!(net.len(), 1, "{}", log.stdout);
    assert_eq!(net[0]["host"], "not-allowed.example");
    assert_eq!(net[0]["path"], "/some/path");
    assert_eq!(net[0]["decision"], "deny");
    env.ws(&ws, &["audit", "verify"]).ok();
}
