//! What the agent leaves for the snapshot engine to read: ignore files that
//! are FIFOs or links to `/dev/zero`, names that look like ws's own work
//! files, sparse giants, hard links leading out of the workspace. Each attack
//! runs inside a real `ws session start`; the host-side commands after it
//! (the after-snapshot, `ws diff`, `ws rollback`, the next session) must
//! finish, see everything, and put everything back.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::harness::*;

/// Runs `ws ARGS` in `cwd` and fails, rather than hangs, if it has not
/// finished within `secs`: the attacks here are about blocking forever.
fn ws_within(env: &Env, cwd: &Path, args: &[&str], secs: u64) -> Out {
    let out = env.tmp.path().join("out");
    let err = env.tmp.path().join("err");
    let mut c = env.command(cwd, args);
    c.stdout(Stdio::from(std::fs::File::create(&out).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(&err).unwrap()));
    let mut child = c.spawn().unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`ws {}` did not finish within {secs} s; stderr so far:\n{}",
                args.join(" "),
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Out {
        code: status.code().unwrap_or(-1),
        stdout: std::fs::read_to_string(&out).unwrap(),
        stderr: std::fs::read_to_string(&err).unwrap(),
    }
}

/// The paths `ws diff --json` lists, which must come within `secs`.
fn diff_paths(env: &Env, ws: &Path, secs: u64) -> Vec<String> {
    let diff = ws_within(env, ws, &["diff", "--json"], secs).ok();
    let v: serde_json::Value = serde_json::from_str(&diff.stdout).unwrap();
    v["changes"].as_array().unwrap().iter().map(|c| c["path"].as_str().unwrap().to_owned()).collect()
}

fn repo(env: &Env) -> std::path::PathBuf {
    let ws = env.dir("ws");
    git_repo(&ws);
    write(ws.join("app.py"), "print('hi')\n");
    write(ws.join(".gitignore"), "*.log\n");
    write(ws.join("sub/.gitignore"), "*.tmp\n");
    commit_all(&ws, "init");
    ws
}

#[test]
fn gitignore_fifo_and_exclude_linked_to_dev_zero_block_no_host_command() {
    let env = Env::new();
    let ws = repo(&env);
    let before = capture(&ws, &skip_git_internals);
    // The agent: a FIFO for the top `.gitignore` (which would hold every
    // snapshot's read forever), a link to /dev/zero for a nested one and for
    // `.git/info/exclude` (read without end), and a file to hide.
    let script = "rm .gitignore && mkfifo .gitignore && rm sub/.gitignore && ln -s /dev/zero sub/.gitignore \
                  && mkdir -p .git/info && ln -sf /dev/zero .git/info/exclude; echo evil > payload.log; \
                  echo ran > ran";
    let s = ws_within(&env, &ws, &["session", "start", "--", "sh", "-c", script], 120);
    assert_eq!(s.code, 0, "{s:?}");
    assert!(ws.join("ran").exists(), "the session did not run");
    let fifo = std::fs::symlink_metadata(ws.join(".gitignore")).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(&fifo.file_type()), "the agent could not make the FIFO");
    assert!(s.stderr.contains(".gitignore is a FIFO"), "the bad ignore file was not reported: {}", s.stderr);
    assert!(s.stderr.contains("sub/.gitignore is a symbolic link"), "{}", s.stderr);

    // The review sees the file the FIFO's old rules would have hidden.
    let paths = diff_paths(&env, &ws, 60);
    for p in ["payload.log", ".gitignore", "sub/.gitignore", "ran"] {
        assert!(paths.iter().any(|x| x == p), "{p} missing from ws diff: {paths:?}");
    }

    ws_within(&env, &ws, &["rollback"], 60).ok();
    assert_same_tree(&before, &capture(&ws, &skip_git_internals));
    // And the next session's snapshots finish too.
    let next = ws_within(&env, &ws, &["session", "start", "--", "true"], 60);
    assert_eq!(next.code, 0, "{next:?}");
}

/// The agent leaves `.gitignore`s of 1 MiB of globs (`*.log`, then
/// `**/a*b*c*…` lines: 442,000 wildcards each) in four directories. Each
/// compiled would take seconds and a GiB of memory in every later snapshot;
/// instead each is reported and its rules are not applied, so every
/// host-side command finishes at once and the review sees what they hid.
#[test]
fn gitignores_of_a_megabyte_of_globs_are_refused_not_compiled() {
    let env = Env::new();
    let ws = repo(&env);
    let before = capture(&ws, &skip_git_internals);
    let script = "for d in . sub d1 d2; do mkdir -p $d; \
                  awk 'BEGIN { print \"*.log\"; for (i = 0; i < 34000; i++) printf \"**/a*b*c*d*e*f*g*h*%d*j*k*\\n\", i }' \
                  > $d/.gitignore; echo evil > $d/payload.log; done";
    let s = ws_within(&env, &ws, &["session", "start", "--", "sh", "-c", script], 60);
    assert_eq!(s.code, 0, "{s:?}");
    let size = std::fs::metadata(ws.join("d2/.gitignore")).unwrap().len();
    assert!((900_000..=1 << 20).contains(&size), "the agent's file is {size} bytes");
    assert_eq!(s.stderr.matches("wildcards, more than").count(), 4, "{}", s.stderr);
    let paths = diff_paths(&env, &ws, 30);
    for p in ["payload.log", "sub/payload.log", "d1/payload.log", "d2/.gitignore"] {
        assert!(paths.iter().any(|x| x == p), "{p} missing from ws diff: {paths:?}");
    }
    ws_within(&env, &ws, &["rollback"], 30).ok();
    assert_same_tree(&before, &capture(&ws, &skip_git_internals));
}

#[test]
fn files_named_like_ws_work_files_are_reviewed_and_rolled_back() {
    let env = Env::new();
    let ws = repo(&env);
    let before = capture(&ws, &skip_git_internals);
    // The old exemption was the prefix alone; a forged token has the shape
    // of a real one.
    let forged = format!(".ws-tmp-{}-1-2-3", "a".repeat(32));
    let script = format!(
        "echo payload > .ws-tmp-1-2-3 && mkdir -p .ws-tmp-tree/deep && echo payload > .ws-tmp-tree/deep/x \
         && echo payload > sub/.ws-tmp-9 && echo payload > {forged} && echo ran > ran"
    );
    env.session(&ws, &script).ok();
    assert!(ws.join("ran").exists() && ws.join(".ws-tmp-1-2-3").exists(), "the session did not run");

    let diff = env.ws(&ws, &["diff", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&diff.stdout).unwrap();
    let paths: Vec<&str> = v["changes"].as_array().unwrap().iter().map(|c| c["path"].as_str().unwrap()).collect();
    for p in [".ws-tmp-1-2-3", ".ws-tmp-tree/deep/x", "sub/.ws-tmp-9", forged.as_str(), "ran"] {
        assert!(paths.contains(&p), "{p} is hidden from ws diff: {paths:?}");
    }
    env.ws(&ws, &["rollback"]).ok();
    assert_same_tree(&before, &capture(&ws, &skip_git_internals));
}

#[test]
fn a_one_tib_sparse_file_costs_its_data_at_session_end_diff_and_rollback() {
    let env = Env::new();
    let ws = repo(&env);
    // The user's 1 TiB file of holes; the agent changes one byte of it, so
    // the review must compare two 1 TiB versions of the same size.
    let f = std::fs::File::create(ws.join("huge.img")).unwrap();
    f.set_len(1 << 40).unwrap();
    drop(f);
    let before = capture_sizes(&ws);
    let script = "printf x | dd of=huge.img bs=1 seek=123456789 conv=notrunc status=none && echo ran > ran";
    let s = ws_within(&env, &ws, &["session", "start", "--", "sh", "-c", script], 60);
    assert_eq!(s.code, 0, "{s:?}");
    assert!(ws.join("ran").exists(), "the session did not run");
    let diff = ws_within(&env, &ws, &["diff", "--stat"], 60).ok();
    assert!(diff.stdout.contains("huge.img"), "{}", diff.stdout);
    ws_within(&env, &ws, &["rollback"], 60).ok();
    assert_eq!(capture_sizes(&ws), before);
    // The byte is gone: the data of the file is holes again.
    let mut byte = [1u8];
    std::os::unix::fs::FileExt::read_exact_at(&std::fs::File::open(ws.join("huge.img")).unwrap(), &mut byte, 123456789)
        .unwrap();
    assert_eq!(byte, [0]);
}

/// Paths and sizes under `root` outside `.git` (a 1 TiB file cannot be
/// hashed by `capture`: that is the point).
fn capture_sizes(root: &Path) -> Vec<(std::path::PathBuf, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let m = e.metadata().unwrap();
            if e.file_name() == ".git" {
                continue;
            }
            if m.is_dir() {
                stack.push(e.path());
            }
            out.push((e.path(), if m.is_dir() { 0 } else { m.len() }));
        }
    }
    out.sort();
    out
}

/// The agent fills the disk the store shares with the workspace: the
/// after-snapshot cannot store its files. The session must still be
/// reviewable and rolled back without the user freeing space by hand.
#[test]
fn full_disk_during_the_after_snapshot_leaves_a_session_diff_and_rollback_can_handle() {
    let fs = LoopFs::new("small-ext4");
    let env = Env::new();
    let ws = fs.dir("proj");
    write(ws.join("app.py"), "print('hi')\n");
    write(ws.join("keep.txt"), "kept\n");
    let before = capture(&ws, &no_skip);
    // 14 MiB of fresh data on a 24 MiB filesystem: its copy cannot fit too.
    let script = "head -c 7340032 /dev/urandom > big1 && head -c 7340032 /dev/urandom > big2 \
                  && echo \"print('evil')\" > app.py && echo ran > ran";
    let s = ws_within(&env, &ws, &["session", "start", "--", "sh", "-c", script], 120);
    assert!(ws.join("ran").exists(), "the session did not run: {s:?}");
    assert_eq!(s.code, 0, "{s:?}");
    assert!(s.stderr.contains("is full"), "the full disk was not reported: {}", s.stderr);

    let paths = diff_paths(&env, &ws, 60);
    for p in ["big1", "big2", "app.py", "ran"] {
        assert!(paths.iter().any(|x| x == p), "{p} missing from ws diff: {paths:?}");
    }
    ws_within(&env, &ws, &["diff"], 60).ok();
    ws_within(&env, &ws, &["rollback"], 60).ok();
    assert_same_tree(&before, &capture(&ws, &no_skip));
}

/// The user keeps a hard link to a workspace file elsewhere; the agent
/// writes the file in place, which changes the outside name too. Rollback
/// cannot restore that name: the session end and the rollback say so,
/// naming the path and the link count.
#[test]
fn a_write_through_a_hard_link_to_outside_is_reported_at_session_end_and_rollback() {
    let env = Env::new();
    let ws = env.dir("ws");
    let elsewhere = env.dir("elsewhere");
    write(ws.join("settings.conf"), "safe=1\n");
    write(ws.join("app.py"), "print('hi')\n");
    std::fs::hard_link(ws.join("settings.conf"), elsewhere.join("settings.conf")).unwrap();
    let before = capture(&ws, &no_skip);
    let s = env.session(&ws, "echo safe=0 > settings.conf && echo ran > ran").ok();
    assert!(ws.join("ran").exists(), "the session did not run");
    // The attack worked: the outside name shows the agent's write.
    assert_eq!(std::fs::read_to_string(elsewhere.join("settings.conf")).unwrap(), "safe=0\n");
    let warned =
        |stderr: &str| stderr.contains("settings.conf is a hard link") && stderr.contains("2 names, 1 of them outside");
    assert!(warned(&s.stderr), "the session end said nothing: {}", s.stderr);
    let r = env.ws(&ws, &["rollback"]).ok();
    assert!(warned(&r.stderr), "the rollback said nothing: {}", r.stderr);
    assert_same_tree(&before, &capture(&ws, &no_skip));
    // An ordinary rollback reports no link.
    env.session(&ws, "echo x >> app.py").ok();
    let r = env.ws(&ws, &["rollback"]).ok();
    assert!(!r.stderr.contains("hard link"), "{}", r.stderr);
}

/// Whether some store object holds exactly `content`.
fn stored(env: &Env, content: &[u8]) -> bool {
    store_objects(&env.home.join(".local/share/ws/stores"))
        .iter()
        .any(|(p, size)| *size == content.len() as u64 && std::fs::read(p).unwrap() == content)
}

/// Repeated sessions used to keep every object forever. `ws gc` frees a
/// closed session's content and keeps what a pending session needs: the
/// pending one still diffs and rolls back exactly after it.
#[test]
fn ws_gc_frees_closed_sessions_and_keeps_what_pending_ones_need() {
    let env = Env::new();
    let ws = repo(&env);
    let before = capture(&ws, &skip_git_internals);
    env.session(&ws, "echo closed-session-content > closed.txt").ok();
    env.ws(&ws, &["rollback"]).ok();
    env.session(&ws, "echo pending-session-content > pending.txt && echo more >> app.py").ok();
    assert!(stored(&env, b"closed-session-content\n") && stored(&env, b"pending-session-content\n"));

    let dry = env.ws(&ws, &["gc", "--dry-run", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&dry.stdout).unwrap();
    assert!(v["freed_objects"].as_u64().unwrap() >= 1, "{v}");
    assert_eq!(v["pending_sessions"], 1, "{v}");
    assert!(stored(&env, b"closed-session-content\n"), "a dry run removed objects");

    let gc = env.ws(&ws, &["gc"]).ok();
    assert!(gc.stdout.starts_with("freed "), "{}", gc.stdout);
    assert!(!stored(&env, b"closed-session-content\n"), "the closed session's content was kept");
    assert!(stored(&env, b"pending-session-content\n"), "the pending session's content was freed");
    let again: serde_json::Value = serde_json::from_str(&env.ws(&ws, &["gc", "--json"]).ok().stdout).unwrap();
    assert_eq!(again["freed_objects"], 0, "{again}");

    // The pending session is whole: its diff shows content, rollback is exact.
    let diff = env.ws(&ws, &["diff"]).ok();
    assert!(diff.stdout.contains("+more"), "{}", diff.stdout);
    env.ws(&ws, &["rollback"]).ok();
    assert_same_tree(&before, &capture(&ws, &skip_git_internals));
    // And the stat cache still serves: the next session snapshots and rolls back.
    env.session(&ws, "echo x > y").ok();
    env.ws(&ws, &["rollback"]).ok();
    assert_same_tree(&before, &capture(&ws, &skip_git_internals));
}

#[test]
fn closed_sessions_are_collected_by_themselves_every_ten() {
    let env = Env::new();
    let ws = repo(&env);
    for i in 0..10 {
        env.session(&ws, &format!("echo auto-gc-{i} > f{i}")).ok();
        env.ws(&ws, &["rollback"]).ok();
        if i == 0 {
            assert!(stored(&env, b"auto-gc-0\n"), "the session stored nothing");
        }
    }
    for i in 0..10 {
        assert!(!stored(&env, format!("auto-gc-{i}\n").as_bytes()), "session {i}'s content is still stored");
    }
}
