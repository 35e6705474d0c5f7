//! The review loop: start a session, see its changes, approve some, roll back the rest.

use crate::harness::*;

#[test]
fn session_records_changes_and_passes_exit_status_through() {
    let env = Env::new();
    let ws = env.dir("proj");
    write(ws.join("keep.txt"), "one\ntwo\nthree\n");
    write(ws.join("gone.txt"), "bye\n");
    let out = env.session(&ws, "echo four >> keep.txt; rm gone.txt; echo hi > new.txt; exit 7");
    assert_eq!(out.code, 7, "{}", out.stderr);
    assert!(out.stderr.contains("1 created, 1 modified, 1 deleted"), "{}", out.stderr);

    let ns = env.ws(&ws, &["diff", "--name-status"]).ok();
    assert_eq!(ns.stdout, "D\tgone.txt\nM\tkeep.txt\nA\tnew.txt\n");

    let patch = env.ws(&ws, &["diff", "--", "keep.txt"]).ok();
    assert!(
        patch.stdout.contains("--- a/keep.txt\n+++ b/keep.txt\n@@ -1,3 +1,4 @@\n one\n two\n three\n+four\n"),
        "{}",
        patch.stdout
    );

    let stat = env.ws(&ws, &["diff", "--stat"]).ok();
    assert!(stat.stdout.contains("3 files changed, 2 insertions(+), 1 deletion(-)"), "{}", stat.stdout);

    let json = env.ws(&ws, &["diff", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let statuses: Vec<(&str, &str)> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["path"].as_str().unwrap(), c["status"].as_str().unwrap()))
        .collect();
    assert_eq!(statuses, [("gone.txt", "deleted"), ("keep.txt", "modified"), ("new.txt", "added")]);
}

#[test]
fn signal_death_is_reported_as_128_plus_signal() {
    let env = Env::new();
    let ws = env.dir("proj");
    write(ws.join("a"), "a");
    let out = env.session(&ws, "echo x > b; kill -9 $$");
    assert_eq!(out.code, 128 + 9, "{}", out.stderr);
    let ns = env.ws(&ws, &["diff", "--name-status"]).ok();
    assert_eq!(ns.stdout, "A\tb\n");
}

#[test]
fn approve_some_paths_roll_back_the_rest() {
    let env = Env::new();
    let ws = env.dir("proj");
    write(ws.join("src/lib.rs"), "fn a() {}\n");
    write(ws.join("src/main.rs"), "fn main() {}\n");
    write(ws.join("README"), "readme\n");
    env.session(&ws, "echo '// ok' >> src/lib.rs; echo '// bad' >> src/main.rs; rm README").ok();

    let out = env.ws(&ws, &["approve", "src/lib.rs"]).ok();
    assert!(out.stderr.contains("approved 1 change"), "{}", out.stderr);
    env.ws(&ws, &["rollback"]).ok();

    assert_eq!(std::fs::read_to_string(ws.join("src/lib.rs")).unwrap(), "fn a() {}\n// ok\n");
    assert_eq!(std::fs::read_to_string(ws.join("src/main.rs")).unwrap(), "fn main() {}\n");
    assert_eq!(std::fs::read_to_string(ws.join("README")).unwrap(), "readme\n");

    let list = env.ws(&ws, &["session", "list", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(v[0]["state"], "closed");
    assert_eq!(v[0]["changes"]["approved"], 1);
    assert_eq!(v[0]["changes"]["rolled_back"], 2);
}

#[test]
fn rollback_by_directory_from_a_subdirectory() {
    let env = Env::new();
    let ws = env.dir("proj");
    write(ws.join("a/x"), "x");
    write(ws.join("b/y"), "y");
    env.session(&ws, "echo X > a/x; echo Y > b/y; mkdir a/new; echo n > a/new/f").ok();
    env.ws(&ws.join("a"), &["rollback", "."]).ok();
    assert_eq!(std::fs::read_to_string(ws.join("a/x")).unwrap(), "x");
    assert!(!ws.join("a/new").exists());
    assert_eq!(std::fs::read_to_string(ws.join("b/y")).unwrap(), "Y\n");
    let ns = env.ws(&ws, &["diff", "--name-status"]).ok();
    assert!(ns.stdout.contains("M\tb/y"), "{}", ns.stdout);
}

#[test]
fn sessions_are_found_by_id_prefix_and_name() {
    let env = Env::new();
    let ws = env.dir("proj");
    write(ws.join("f"), "0");
    env.ws(&ws, &["session", "start", "--name", "first", "--", "sh", "-c", "echo 1 > f"]).ok();
    env.ws(&ws, &["session", "start", "--name", "second", "--", "sh", "-c", "echo 2 > g"]).ok();
    let first = env.ws(&ws, &["diff", "first", "--name-status"]).ok();
    assert_eq!(first.stdout, "M\tf\n");
    let list = env.ws(&ws, &["session", "list", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    let id = v[1]["id"].as_str().unwrap().to_owned();
    let second = env.ws(&ws, &["diff", &id[..5], "--name-status"]).ok();
    assert_eq!(second.stdout, "A\tg\n");
    // Without an id, the newest pending session.
    assert_eq!(env.ws(&ws, &["diff", "--name-status"]).ok().stdout, "A\tg\n");
    let show = env.ws(&ws, &["session", "show", "first", "--json"]).ok();
    let s: serde_json::Value = serde_json::from_str(&show.stdout).unwrap();
    assert_eq!(s["name"], "first");
    assert_eq!(s["changes"]["modified"], 1);
}

#[test]
fn rollback_touches_only_what_the_session_changed() {
    use std::os::unix::fs::MetadataExt;
    let env = Env::new();
    let ws = env.dir("proj");
    for i in 0..500 {
        write(ws.join(format!("d{}/f{i}", i % 20)), format!("{i}\n"));
    }
    let stamp = |p: &std::path::Path| {
        let m = std::fs::symlink_metadata(p).unwrap();
        (m.ino(), m.ctime(), m.ctime_nsec())
    };
    let untouched: Vec<_> = (10..500).map(|i| ws.join(format!("d{}/f{i}", i % 20))).collect();
    let before: Vec<_> = untouched.iter().map(|p| stamp(p)).collect();
    env.session(&ws, "for i in 0 1 2 3 4 5 6 7 8 9; do echo edit >> d$i/f$i; done").ok();
    env.ws(&ws, &["rollback"]).ok();
    let after: Vec<_> = untouched.iter().map(|p| stamp(p)).collect();
    assert_eq!(before, after, "rollback rewrote files the session never touched");
    for i in 0..10 {
        assert_eq!(std::fs::read_to_string(ws.join(format!("d{i}/f{i}"))).unwrap(), format!("{i}\n"));
    }
}

#[test]
fn unchanged_files_are_not_stored_twice() {
    let env = Env::new();
    let ws = env.dir("proj");
    for i in 0..200 {
        write(ws.join(format!("f{i}")), format!("content {i}\n"));
    }
    let stores = env.home.join(".local/share/ws/stores");
    env.session(&ws, "true").ok();
    let first = store_objects(&stores).len();
    assert_eq!(first, 200);
    env.session(&ws, "echo more >> f0").ok();
    // One new object for the edited file's after-state; nothing else re-stored.
    assert_eq!(store_objects(&stores).len(), 201);
    // f0 was written just before the after-snapshot, so its entry is racy and
    // the next snapshot copies it once more; after that it is trusted.
    env.session(&ws, "true").ok();
    let settled = store_objects(&stores).len();
    assert!(settled <= 202, "{settled} objects");
    env.session(&ws, "true").ok();
    assert_eq!(store_objects(&stores).len(), settled);
}

#[test]
fn binary_files_and_symlinks_diff_like_git() {
    let env = Env::new();
    let ws = env.dir("proj");
    write(ws.join("blob.bin"), b"\x00\x01\x02binary");
    std::os::unix::fs::symlink("old-target", ws.join("link")).unwrap();
    env.session(&ws, "printf '\\000\\377changed' > blob.bin; ln -sfn new-target link; chmod +x blob.bin").ok();
    let patch = env.ws(&ws, &["diff"]).ok();
    assert!(
        patch.stdout.contains("old mode 100644\nnew mode 100755\nBinary files a/blob.bin and b/blob.bin differ"),
        "{}",
        patch.stdout
    );
    assert!(patch.stdout.contains("--- a/link\n+++ b/link\n@@ -1 +1 @@\n-old-target\n\\ No newline at end of file\n+new-target\n\\ No newline at end of file\n"), "{}", patch.stdout);
    let json = env.ws(&ws, &["diff", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["changes"][0]["path"], "blob.bin");
    assert!(v["changes"][0]["insertions"].is_null(), "binary files have no line counts");
}

#[test]
fn colour_only_on_request_of_a_terminal() {
    let env = Env::new();
    let ws = env.dir("proj");
    write(ws.join("f"), "a\n");
    env.session(&ws, "echo b > f").ok();
    let piped = env.ws(&ws, &["diff"]).ok();
    assert!(!piped.stdout.contains('\x1b'), "colour escapes in piped output");
    // Under a real pseudo-terminal (script(1)), colour appears.
    let mut c = env.command(&ws, &[]);
    let ws_bin = c.get_program().to_owned();
    c = std::process::Command::new("script");
    c.args(["-qec"]).arg(format!("{} diff", ws_bin.to_string_lossy())).arg("/dev/null");
    c.current_dir(&ws).env_clear().env("HOME", &env.home).env("PATH", "/usr/bin:/bin").env("TERM", "xterm");
    let tty = env.run(c);
    assert!(tty.stdout.contains("\x1b[31m-a") && tty.stdout.contains("\x1b[32m+b"), "{:?}", tty.stdout);
}

/// Restored files have new inodes and ctimes; rollback refreshes the stat
/// cache so the next session does not copy them all again.
#[test]
fn the_session_after_a_rollback_copies_nothing_again() {
    let env = Env::new();
    let ws = env.dir("proj");
    for i in 0..300 {
        write(ws.join(format!("d{}/f{i}", i % 10)), format!("{i}\n"));
    }
    let stores = env.home.join(".local/share/ws/stores");
    env.session(&ws, "true").ok();
    env.session(&ws, "rm -rf d*").ok();
    env.ws(&ws, &["rollback"]).ok();
    let objects = store_objects(&stores).len();
    env.session(&ws, "true").ok();
    assert_eq!(store_objects(&stores).len(), objects, "the next snapshot re-copied restored files");
}

#[test]
fn session_records_how_long_its_snapshots_took() {
    let env = Env::new();
    let ws = env.dir("proj");
    write(ws.join("f"), "x");
    env.session(&ws, "true").ok();
    let show = env.ws(&ws, &["session", "show", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&show.stdout).unwrap();
    assert!(v["snapshot_ms"].is_u64() && v["after_snapshot_ms"].is_u64(), "{v}");
}
