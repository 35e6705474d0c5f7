//! Renames: a file the session moved is reviewed as one move — in every
//! form of `ws diff`, and by `ws rollback` and `ws approve` named by either
//! path — with git's own `-M` as the judge of what is a rename.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use crate::display::assert_inert;
use crate::harness::*;

fn numbered(n: usize, word: &str) -> String {
    (1..=n).map(|i| format!("{word} {i}\n")).collect()
}

/// `git diff --cached -M --name-status` of the workspace as it is now
/// against its last commit: what git calls these changes.
fn git_says(env: &Env, ws: &Path) -> String {
    env.git(ws, &["add", "-A"]).ok();
    let out = env.git(ws, &["diff", "--cached", "-M", "--name-status"]).ok().stdout;
    env.git(ws, &["reset", "-q"]).ok();
    out
}

fn json(env: &Env, ws: &Path) -> serde_json::Value {
    serde_json::from_str(&env.ws(ws, &["diff", "--json"]).ok().stdout).unwrap()
}

#[test]
fn moved_files_are_renames_in_name_status_stat_json_and_patch_as_git_sees_them() {
    let env = Env::new();
    let ws = env.dir("proj");
    git_repo(&ws);
    write(ws.join("a"), numbered(20, "a"));
    write(ws.join("s1"), "moved into a new directory\n");
    write(ws.join("big"), numbered(30, "line"));
    write(ws.join("src"), (1..=20).map(|i| format!("fn f{i}() {{ body({i}); }}\n")).collect::<String>());
    commit_all(&ws, "base");
    let out = env.session(
        &ws,
        "mv a b && mkdir d && mv s1 d/s1 && mv big big2 && sed -i 's/^line 5$/edited/' big2 \
         && mv src dst && sed -i -e 's/body(3)/other(3)/' -e '$a extra line' dst",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("1 created, 0 modified, 0 deleted, 4 renamed"), "{}", out.stderr);

    let ns = env.ws(&ws, &["diff", "--name-status"]).ok().stdout;
    assert_eq!(ns, "R100\ta\tb\nR096\tbig\tbig2\nA\td\nR100\ts1\td/s1\nR092\tsrc\tdst\n");
    // Git pairs the same paths with the same similarities (it does not list
    // directories).
    let git: String = ns.lines().filter(|l| !l.starts_with("A\td")).map(|l| format!("{l}\n")).collect();
    let mut theirs: Vec<&str> = git_says(&env, &ws).leak().lines().collect();
    let mut ours: Vec<&str> = git.lines().collect();
    theirs.sort_unstable();
    ours.sort_unstable();
    assert_eq!(ours, theirs);

    let stat = env.ws(&ws, &["diff", "--stat"]).ok().stdout;
    for line in [" a => b ", " big => big2 |    2 +-", " s1 => d/s1 ", " src => dst  |    3 ++-"] {
        assert!(stat.contains(line), "{line:?} in\n{stat}");
    }
    assert!(stat.contains("4 files changed, 3 insertions(+), 2 deletions(-)"), "{stat}");

    let patch = env.ws(&ws, &["diff", "--", "big2"]).ok().stdout;
    assert!(
        patch.starts_with(
            "diff --ws a/big b/big2\nsimilarity index 96%\nrename from big\nrename to big2\n--- a/big\n+++ b/big2\n@@ -2,7 +2,7 @@\n line 2\n"
        ),
        "naming the new path shows the rename:\n{patch}"
    );
    assert!(patch.contains("\n-line 5\n+edited\n"), "{patch}");
    let exact = env.ws(&ws, &["diff", "--", "a"]).ok().stdout;
    assert_eq!(exact, "diff --ws a/a b/b\nsimilarity index 100%\nrename from a\nrename to b\n", "by the old path");

    let v = json(&env, &ws);
    let rows = v["changes"].as_array().unwrap();
    assert_eq!(rows.len(), 5, "{v:#}");
    let big2 = rows.iter().find(|c| c["path"] == "big2").unwrap();
    assert_eq!((&big2["status"], &big2["from"], &big2["similarity"]), (&"renamed".into(), &"big".into(), &96.into()));
    assert_eq!((&big2["insertions"], &big2["deletions"]), (&1.into(), &1.into()));
    assert_eq!(big2["hunks"][0]["old_start"], 2, "hunks of a similar rename: old content against new");
    let b = rows.iter().find(|c| c["path"] == "b").unwrap();
    assert_eq!((&b["from"], &b["similarity"], &b["hunks"]), (&"a".into(), &100.into(), &serde_json::json!([])));

    // -M: stricter drops pairs, --no-renames drops them all.
    let strict = env.ws(&ws, &["diff", "--name-status", "-M95%"]).ok().stdout;
    assert!(
        strict.contains("R096\tbig\tbig2") && strict.contains("D\tsrc\n") && strict.contains("A\tdst\n"),
        "{strict}"
    );
    let none = env.ws(&ws, &["diff", "--name-status", "--no-renames"]).ok().stdout;
    assert_eq!(none.lines().filter(|l| l.starts_with('R')).count(), 0, "{none}");
    assert_eq!(none.lines().count(), 9, "every half listed: {none}");
}

#[test]
fn git_mv_in_a_session_is_a_rename() {
    let env = Env::new();
    let ws = env.dir("proj");
    git_repo(&ws);
    write(ws.join("lib.rs"), numbered(10, "fn"));
    commit_all(&ws, "base");
    env.session(&ws, "git mv lib.rs core.rs").ok();
    let ns = env.ws(&ws, &["diff", "--name-status"]).ok().stdout;
    assert_eq!(ns, "R100\tlib.rs\tcore.rs\n");
    assert!(git_says(&env, &ws).contains("R100\tlib.rs\tcore.rs"));
}

#[test]
fn rolling_back_a_rename_by_its_new_path_brings_the_old_back_and_removes_the_new() {
    let env = Env::new();
    let ws = env.dir("proj");
    write(ws.join("a"), numbered(20, "a"));
    write(ws.join("keep"), "k\n");
    env.session(&ws, "mkdir d && mv a d/b && echo more >> d/b && echo x >> keep").ok();
    let ns = env.ws(&ws, &["diff", "--name-status"]).ok().stdout;
    assert_eq!(ns, "A\td\nR094\ta\td/b\nM\tkeep\n");

    let out = env.ws(&ws, &["rollback", "d/b"]).ok();
    assert!(out.stderr.contains("rolled back 2 paths"), "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(ws.join("a")).unwrap(), numbered(20, "a"), "the old path is back");
    assert!(!ws.join("d/b").exists(), "the new path is gone");
    assert_eq!(std::fs::read_to_string(ws.join("keep")).unwrap(), "k\nx\n", "other changes untouched");
    let v = json(&env, &ws);
    let states: Vec<(&str, &str, &str)> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["path"].as_str().unwrap(), c["status"].as_str().unwrap(), c["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [("d", "added", "pending"), ("d/b", "renamed", "rolled_back"), ("keep", "modified", "pending")]);
}

#[test]
fn approving_a_rename_by_its_old_path_approves_both_and_whole_session_rollback_undoes_the_rest() {
    let env = Env::new();
    let ws = env.dir("proj");
    write(ws.join("x"), "x\n");
    write(ws.join("y"), "y\n");
    env.session(&ws, "mv x x2 && mv y y2").ok();
    let hunk = env.ws(&ws, &["rollback", "--hunk", "x2:1"]);
    assert_ne!(hunk.code, 0);
    assert!(hunk.stderr.contains("x2 by hunk: it is half of a rename (with x)"), "{}", hunk.stderr);
    assert!(ws.join("x2").exists() && !ws.join("x").exists(), "nothing changed");
    let out = env.ws(&ws, &["approve", "x"]).ok();
    assert!(out.stderr.contains("approved 2 changes"), "{}", out.stderr);
    assert_eq!(env.ws(&ws, &["diff", "--name-status"]).ok().stdout, "R100\ty\ty2\n");
    env.ws(&ws, &["rollback"]).ok();
    assert!(ws.join("x2").exists() && !ws.join("x").exists(), "the approved move stays");
    assert!(ws.join("y").exists() && !ws.join("y2").exists(), "the other is undone");
    assert_eq!(std::fs::read_to_string(ws.join("y")).unwrap(), "y\n");
}

#[test]
fn a_moved_file_whose_old_path_was_recreated_is_no_rename() {
    let env = Env::new();
    let ws = env.dir("proj");
    write(ws.join("a"), numbered(20, "a"));
    env.session(&ws, "mv a b && echo new > a").ok();
    assert_eq!(env.ws(&ws, &["diff", "--name-status"]).ok().stdout, "M\ta\nA\tb\n");
    env.ws(&ws, &["rollback", "b"]).ok();
    assert!(!ws.join("b").exists());
    assert_eq!(std::fs::read_to_string(ws.join("a")).unwrap(), "new\n", "only b was named: a keeps the session's");
}

#[test]
fn rename_names_full_of_escape_sequences_are_shown_inert() {
    let env = Env::new();
    let ws = env.dir("proj");
    let old: &[u8] = b"old\x1b[2K\x1b[1Aname";
    let new: &[u8] = b"new\x1b]52;c;Y3VybA==\x07\xe2\x80\xae.txt";
    let to_os = |b: &[u8]| std::ffi::OsStr::from_bytes(b).to_owned();
    std::fs::write(ws.join(to_os(old)), numbered(10, "l")).unwrap();
    std::fs::write(
        ws.join("script"),
        [b"mv old* \"$(printf 'new\\033]52;c;Y3VybA==\\007\\342\\200\\256.txt')\"".as_slice()].concat(),
    )
    .unwrap();
    env.session(&ws, "sh ./script && rm script").ok();
    assert!(ws.join(to_os(new)).exists(), "the session made the name");
    let q_old = "\"old\\033[2K\\033[1Aname\"";
    let q_new = "\"new\\033]52;c;Y3VybA==\\a\\342\\200\\256.txt\"";
    for args in [&["diff"][..], &["diff", "--stat"], &["diff", "--name-status"]] {
        let o = env.command(&ws, args).output().unwrap();
        assert!(o.status.success());
        assert_inert(&format!("{args:?}"), &o.stdout);
        assert_inert(&format!("{args:?}"), &o.stderr);
        let s = String::from_utf8(o.stdout).unwrap();
        assert!(s.contains(q_old) && s.contains(q_new), "{args:?}:\n{s}");
    }
    let v = json(&env, &ws);
    let r = v["changes"].as_array().unwrap().iter().find(|c| c["status"] == "renamed").unwrap().clone();
    assert_eq!(r["from"].as_str().unwrap().as_bytes(), old, "--json keeps the exact bytes");
    assert_eq!(r["path"].as_str().unwrap().as_bytes(), new);
}

/// `kill -9` of `ws rollback NEW-PATH` at many instants, over hundreds of
/// moved files: the next `ws rollback NEW-PATH` ends in exactly the
/// snapshot's tree (both halves of every rename in one journal).
#[test]
fn rollback_of_renames_killed_at_any_instant_is_finished_by_the_next() {
    let env = Env::new();
    let ws = env.dir("proj");
    for i in 0..800 {
        write(ws.join(format!("d{}/f{i}", i % 40)), format!("content of file {i}\n").repeat(20));
    }
    let before = capture(&ws, &no_skip);
    let mut interrupted = 0;
    for seed in 0..5u64 {
        env.session(&ws, "mkdir moved && for d in d1*; do mv $d moved/; done").ok();
        let ns = env.ws(&ws, &["diff", "--name-status"]).ok().stdout;
        assert_eq!(ns.lines().filter(|l| l.starts_with("R100\td1")).count(), 220, "{}", &ns[..300]);
        let delay = Duration::from_micros(1_000 + seed.wrapping_mul(7919) % 25_000);
        let mut child = env.command(&ws, &["rollback", "moved"]).spawn().unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        if !child.wait().unwrap().success() {
            interrupted += 1;
        }
        let again = env.ws(&ws, &["rollback", "moved"]);
        assert!(again.code == 0 || again.stderr.contains("no session of this workspace is pending"), "{again:?}");
        assert_same_tree(&before, &capture(&ws, &no_skip));
    }
    assert!(interrupted > 0, "no rollback was actually interrupted; the test proved nothing");
}
