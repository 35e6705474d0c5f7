//! Bad input gets a clear error that names what is wrong, and loses nothing.

use crate::harness::*;

#[test]
fn unknown_session_id_is_a_usage_error() {
    let env = Env::new();
    let ws = env.dir("proj");
    write(ws.join("a"), "a");
    env.session(&ws, "echo b > a").ok();
    let out = env.ws(&ws, &["diff", "zzzz"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("no session matches `zzzz`") && out.stderr.contains("ws session list"),
        "{}",
        out.stderr
    );
}

#[test]
fn approving_a_path_the_session_did_not_touch_names_it() {
    let env = Env::new();
    let ws = env.dir("proj");
    write(ws.join("a"), "a");
    write(ws.join("untouched"), "u");
    env.session(&ws, "echo b > a").ok();
    let out = env.ws(&ws, &["approve", "untouched"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("did not change untouched"), "{}", out.stderr);
    let outside = env.ws(&ws, &["rollback", "/etc/passwd"]);
    assert_eq!(outside.code, 2);
    assert!(outside.stderr.contains("/etc/passwd is outside the workspace"), "{}", outside.stderr);
    // Nothing was decided: the change is still pending and rolls back.
    env.ws(&ws, &["rollback"]).ok();
    assert_eq!(std::fs::read_to_string(ws.join("a")).unwrap(), "a");
}

#[test]
fn a_file_changed_after_the_session_is_a_conflict_unless_forced() {
    let env = Env::new();
    let ws = env.dir("proj");
    write(ws.join("agent.txt"), "orig\n");
    write(ws.join("both.txt"), "orig\n");
    env.session(&ws, "echo agent >> agent.txt; echo agent >> both.txt").ok();
    write(ws.join("both.txt"), "the user's later edit\n");
    let out = env.ws(&ws, &["rollback"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("conflict: both.txt"), "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(ws.join("agent.txt")).unwrap(), "orig\n");
    assert_eq!(std::fs::read_to_string(ws.join("both.txt")).unwrap(), "the user's later edit\n");
    env.ws(&ws, &["rollback", "--force", "both.txt"]).ok();
    assert_eq!(std::fs::read_to_string(ws.join("both.txt")).unwrap(), "orig\n");
}

#[test]
fn command_not_found_refuses_before_snapshotting() {
    let env = Env::new();
    let ws = env.dir("proj");
    let out = env.ws(&ws, &["session", "start", "--", "no-such-agent-xyz"]);
    assert_eq!(out.code, 127);
    assert!(out.stderr.contains("command not found: no-such-agent-xyz"), "{}", out.stderr);
    assert!(!env.home.join(".local/share/ws").exists(), "a store was created for nothing");
    // A path that does not exist, or a directory: the same, before anything.
    for (cmd, code, says) in
        [("/no/such/agent", 127, "command not found: /no/such/agent"), ("/tmp", 126, "/tmp is a directory")]
    {
        let out = env.ws(&ws, &["session", "start", "--", cmd]);
        assert_eq!(out.code, code, "{out:?}");
        assert!(out.stderr.contains(says), "{out:?}");
        assert!(!out.stderr.contains("--allow-degraded"), "advice about another problem: {out:?}");
        assert!(!env.home.join(".local/share/ws").exists(), "a store was created for nothing");
    }
}

/// A file that exists but cannot run (not executable, or outside what the
/// profile lets a session run): the shell's 126, with advice about the
/// command, not about the machine's layers.
#[test]
fn a_command_that_cannot_run_is_126_with_advice_about_it() {
    let env = Env::new();
    let ws = env.dir("proj");
    write(ws.join("notes.txt"), "not a program\n");
    let out = env.ws(&ws, &["session", "start", "--", "./notes.txt"]);
    assert_eq!(out.code, 126, "{out:?}");
    assert!(out.stderr.contains("ws why ./notes.txt --op exec"), "{out:?}");
    assert!(!out.stderr.contains("--allow-degraded"), "{out:?}");
}

#[test]
fn help_teaches() {
    let env = Env::new();
    let ws = env.dir("proj");
    let out = env.ws(&ws, &["rollback", "--help"]).ok();
    assert!(out.stdout.contains("Examples:") && out.stdout.contains("--force"), "{}", out.stdout);
}

/// A workspace of 300k files: progress on stderr while the snapshot runs, and
/// the budget still leaves out the large ignored tree.
#[test]
fn a_huge_workspace_shows_progress_and_respects_the_budget() {
    let env = Env::new();
    let ws = env.dir("huge");
    git_repo(&ws);
    write(ws.join(".gitignore"), "node_modules/\n");
    for d in 0..3000 {
        let dir = ws.join(format!("src/m{d}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..100 {
            std::fs::File::create(dir.join(format!("f{f}"))).unwrap();
        }
    }
    for f in 0..5000 {
        write(ws.join(format!("node_modules/pkg{}/i{f}.js", f % 50)), "x");
    }
    let out = env.session(&ws, "echo edit > src/m7/f7").ok();
    assert!(
        out.stderr.contains("ws: snapshot: ") && out.stderr.contains("entries scanned"),
        "no progress shown:\n{}",
        out.stderr
    );
    assert!(out.stderr.contains("node_modules/ (2,001+ files"), "{}", out.stderr);
    assert!(out.stderr.contains("0 created, 1 modified, 0 deleted"), "{}", out.stderr);
    env.ws(&ws, &["rollback"]).ok();
    assert_eq!(std::fs::metadata(ws.join("src/m7/f7")).unwrap().len(), 0);
}
