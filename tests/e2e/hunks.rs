//! Review by hunk: `ws diff --json` hunks, `ws rollback --hunk`, `ws approve --hunk`.

use std::path::Path;
use std::time::Instant;

use crate::harness::*;

/// Thirty numbered lines, `line N` each.
fn thirty() -> Vec<String> {
    (1..=30).map(|i| format!("line {i}")).collect()
}

fn text(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// The session's file: lines 2, 15 and 28 edited, three hunks apart.
fn edited() -> Vec<String> {
    let mut v = thirty();
    v[1] = "agent two".into();
    v[14] = "agent fifteen".into();
    v[27] = "agent twenty-eight".into();
    v
}

const EDIT: &str =
    "sed -i -e 's/^line 2$/agent two/' -e 's/^line 15$/agent fifteen/' -e 's/^line 28$/agent twenty-eight/' f";

/// (id, old_start, old_lines, new_start, new_lines)
type HunkRow = (u64, u64, u64, u64, u64);

/// Each hunk of `path` as `ws diff --json` lists it, and the change's state.
fn hunks(env: &Env, ws: &Path, path: &str) -> (Vec<HunkRow>, String) {
    let out = env.ws(ws, &["diff", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let c = v["changes"].as_array().unwrap().iter().find(|c| c["path"] == path).expect("change listed");
    let hs = c["hunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            let n = |k: &str| h[k].as_u64().unwrap();
            (n("id"), n("old_start"), n("old_lines"), n("new_start"), n("new_lines"))
        })
        .collect();
    (hs, c["state"].as_str().unwrap().to_owned())
}

#[test]
fn rolling_back_the_middle_hunk_restores_only_it_and_renumbers_the_rest() {
    let env = Env::new();
    let ws = env.dir("proj");
    write(ws.join("f"), text(&thirty()));
    env.session(&ws, EDIT).ok();
    assert_eq!(std::fs::read_to_string(ws.join("f")).unwrap(), text(&edited()), "the session edited three lines");

    let (hs, state) = hunks(&env, &ws, "f");
    assert_eq!(state, "pending");
    assert_eq!(hs, [(1, 1, 5, 1, 5), (2, 12, 7, 12, 7), (3, 25, 6, 25, 6)]);
    // The human diff shows the same three blocks with the same headers.
    let patch = env.ws(&ws, &["diff"]).ok().stdout;
    let headers: Vec<&str> = patch.lines().filter(|l| l.starts_with("@@")).collect();
    assert_eq!(headers, ["@@ -1,5 +1,5 @@", "@@ -12,7 +12,7 @@", "@@ -25,6 +25,6 @@"], "{patch}");

    let out = env.ws(&ws, &["rollback", "--hunk", "f:2"]).ok();
    assert!(out.stderr.contains("rolled back hunk 2 of f"), "{}", out.stderr);
    let mut want = edited();
    want[14] = "line 15".into();
    assert_eq!(std::fs::read(ws.join("f")).unwrap(), text(&want).into_bytes(), "only the middle hunk came back");

    let (hs, state) = hunks(&env, &ws, "f");
    assert_eq!(state, "pending");
    assert_eq!(hs, [(1, 1, 5, 1, 5), (2, 25, 6, 25, 6)], "what is left is renumbered 1, 2");

    // The rest, by their new ids: the file is the snapshot's again and the
    // session is closed.
    env.ws(&ws, &["rollback", "--hunk", "f:1,2"]).ok();
    assert_eq!(std::fs::read(ws.join("f")).unwrap(), text(&thirty()).into_bytes());
    let list = env.ws(&ws, &["session", "list", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(v[0]["state"], "closed", "{}", list.stdout);
    assert_eq!(v[0]["changes"]["rolled_back"], 1);
}

#[test]
fn a_file_edited_after_the_session_is_a_hunk_conflict_unless_forced() {
    let env = Env::new();
    let ws = env.dir("proj");
    write(ws.join("f"), text(&thirty()));
    env.session(&ws, EDIT).ok();
    let mut mine = edited();
    mine[20] = "my own edit".into();
    write(ws.join("f"), text(&mine));

    let out = env.ws(&ws, &["rollback", "--hunk", "f:2"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("conflict: f: changed after the session ended"), "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(ws.join("f")).unwrap(), text(&mine), "left as it is");

    let out = env.ws(&ws, &["rollback", "--force", "--hunk", "f:2"]).ok();
    assert!(out.stderr.contains("overwritten"), "{}", out.stderr);
    let mut want = edited();
    want[14] = "line 15".into();
    assert_eq!(
        std::fs::read_to_string(ws.join("f")).unwrap(),
        text(&want),
        "forced: the session's version less hunk 2"
    );
}

#[test]
fn bad_hunk_ids_and_created_files_are_refused_and_change_nothing() {
    let env = Env::new();
    let ws = env.dir("proj");
    write(ws.join("f"), text(&thirty()));
    env.session(&ws, &format!("{EDIT}; echo new > g")).ok();
    for (spec, says) in [
        ("f:4", "has no hunk 4 (it has 3)"),
        ("f:0", "no hunk 0"),
        ("g:1", "created or deleted"),
        ("f", "expected PATH:ID"),
    ] {
        let out = env.ws(&ws, &["rollback", "--hunk", spec]);
        assert_eq!(out.code, 2, "{spec}: {out:?}");
        assert!(out.stderr.contains(says), "{spec}: {}", out.stderr);
    }
    // f:1 is valid but f:9 is not: the whole command changes nothing.
    assert_eq!(env.ws(&ws, &["rollback", "--hunk", "f:1", "--hunk", "f:9"]).code, 2);
    assert_eq!(std::fs::read_to_string(ws.join("f")).unwrap(), text(&edited()));
    assert_eq!(hunks(&env, &ws, "f").0.len(), 3);
}

#[test]
fn approving_hunks_leaves_the_rest_pending_and_the_hook_still_refuses_them() {
    let env = Env::new();
    let ws = env.dir("repo");
    env.git(&ws, &["init", "-q"]).ok();
    write(ws.join("f"), text(&thirty()));
    env.git(&ws, &["add", "-A"]).ok();
    env.commit(&ws, "base").ok();
    env.ws(&ws, &["hooks", "install"]).ok();
    env.session(&ws, EDIT).ok();

    let out = env.ws(&ws, &["approve", "--hunk", "f:1,3"]).ok();
    assert!(out.stderr.contains("approved hunks 1,3 of f"), "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(ws.join("f")).unwrap(), text(&edited()), "approving changes nothing on disk");
    let (hs, state) = hunks(&env, &ws, "f");
    assert_eq!((hs, state.as_str()), (vec![(1, 12, 7, 12, 7)], "pending"), "only the middle hunk is pending");

    // The file as the session left it carries the pending hunk: refused.
    env.git(&ws, &["add", "f"]).ok();
    let refused = env.commit(&ws, "agent");
    assert_ne!(refused.code, 0, "{refused:?}");
    assert!(refused.stderr.contains("  f (session"), "{}", refused.stderr);

    // Rolling the path back keeps the approved hunks (the reviewed version),
    // and that version commits.
    env.ws(&ws, &["rollback", "f"]).ok();
    let mut reviewed = edited();
    reviewed[14] = "line 15".into();
    assert_eq!(std::fs::read_to_string(ws.join("f")).unwrap(), text(&reviewed));
    env.git(&ws, &["add", "f"]).ok();
    env.commit(&ws, "reviewed").ok();
}

/// `kill -9` of `ws rollback --hunk` at many instants: afterwards the change
/// set agrees with the disk — the file holds either the session's version
/// (three hunks pending) or the one with hunk 2 taken back (two pending) —
/// and rolling back what is pending gives the snapshot's bytes exactly,
/// with no conflict and no work file left behind.
#[test]
fn hunk_rollback_killed_at_any_instant_leaves_a_consistent_review() {
    let env = Env::new();
    let ws = env.dir("proj");
    // Large enough that diffing, writing and syncing take a while to hit.
    let original: String = (1..=200_000).map(|i| format!("line {i}\n")).collect();
    write(ws.join("f"), &original);
    let edit = "sed -i -e 's/^line 1000$/agent a/' -e 's/^line 100000$/agent b/' -e 's/^line 199000$/agent c/' f";

    env.session(&ws, edit).ok();
    let started = Instant::now();
    env.ws(&ws, &["rollback", "--hunk", "f:2"]).ok();
    let took = started.elapsed();
    env.ws(&ws, &["rollback"]).ok();
    assert_eq!(std::fs::read_to_string(ws.join("f")).unwrap(), original);

    let (mut interrupted, mut landed_after_write) = (0, 0);
    for seed in 0..10u32 {
        env.session(&ws, edit).ok();
        let delay = took * (seed + 1) / 11;
        let mut child =
            env.command(&ws, &["rollback", "--hunk", "f:2"]).stderr(std::process::Stdio::null()).spawn().unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        if !child.wait().unwrap().success() {
            interrupted += 1;
        }
        let (hs, state) = hunks(&env, &ws, "f");
        assert_eq!(state, "pending");
        let now = std::fs::read_to_string(ws.join("f")).unwrap();
        match hs.len() {
            3 => assert!(now.contains("agent b\n"), "three hunks pending, so hunk 2 is still on disk"),
            2 => {
                assert!(!now.contains("agent b\n") && now.contains("agent a\n"), "two pending, so hunk 2 is gone");
                landed_after_write += 1;
            }
            n => panic!("{n} hunks pending"),
        }
        let ids: Vec<String> = hs.iter().map(|h| h.0.to_string()).collect();
        env.ws(&ws, &["rollback", "--hunk", &format!("f:{}", ids.join(","))]).ok();
        assert_eq!(std::fs::read_to_string(ws.join("f")).unwrap(), original, "seed {seed}");
        let debris: Vec<_> = std::fs::read_dir(&ws)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".ws-tmp-"))
            .collect();
        assert!(debris.is_empty(), "seed {seed}: work files left: {debris:?}");
    }
    assert!(interrupted > 0, "no hunk rollback was actually interrupted; the test proved nothing");
    eprintln!(
        "one hunk rollback: {took:?}; {interrupted} of 10 killed, {landed_after_write} after the file was written"
    );
}

/// `ws ARGS` with `input` on its standard input.
fn ws_answering(env: &Env, ws: &Path, args: &[&str], input: &str) -> Out {
    use std::io::Write;
    let mut c = env.command(ws, args);
    c.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    Out::from(o)
}

#[test]
fn rollback_p_walks_the_hunks_with_git_keys() {
    let env = Env::new();
    let ws = env.dir("proj");
    write(ws.join("f"), text(&thirty()));
    env.session(&ws, EDIT).ok();
    // `?` prints help and asks again; then n, y, n.
    let out = ws_answering(&env, &ws, &["rollback", "-p"], "?\nn\ny\nn\n").ok();
    assert!(out.stderr.contains("(1/3) Roll back this hunk [y,n,q,a,d,?]? "), "{}", out.stderr);
    assert!(
        out.stderr.contains("d - do not roll back this hunk or any of the later hunks in the file"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stderr.matches("(1/3)").count(), 2, "asked again after ?");
    assert!(out.stderr.contains("(3/3)"), "{}", out.stderr);
    assert!(
        out.stdout.contains("@@ -12,7 +12,7 @@\n line 12\n line 13\n line 14\n-line 15\n+agent fifteen\n"),
        "{}",
        out.stdout
    );
    let mut want = edited();
    want[14] = "line 15".into();
    assert_eq!(std::fs::read(ws.join("f")).unwrap(), text(&want).into_bytes());
    assert_eq!(hunks(&env, &ws, "f").0.len(), 2);

    // q at once: nothing changes.
    let out = ws_answering(&env, &ws, &["rollback", "-p"], "q\n").ok();
    assert!(out.stderr.contains("nothing rolled back"), "{}", out.stderr);
    assert_eq!(std::fs::read(ws.join("f")).unwrap(), text(&want).into_bytes());
}

#[test]
fn approve_p_splits_a_hunk_and_keeps_one_change_of_it() {
    let env = Env::new();
    let ws = env.dir("proj");
    write(ws.join("f"), text(&thirty()));
    // Lines 2 and 5: one hunk (3 equal lines apart), two changes.
    env.session(&ws, "sed -i -e 's/^line 2$/agent two/' -e 's/^line 5$/agent five/' f").ok();
    assert_eq!(hunks(&env, &ws, "f").0.len(), 1);
    let out = ws_answering(&env, &ws, &["approve", "-p"], "s\ny\nn\n").ok();
    assert!(out.stderr.contains("(1/1) Approve this hunk [y,n,q,a,d,s,?]? "), "{}", out.stderr);
    assert!(out.stderr.contains("split into 2 hunks") && out.stderr.contains("(2/2)"), "{}", out.stderr);
    let (hs, state) = hunks(&env, &ws, "f");
    assert_eq!(state, "pending");
    assert_eq!(hs, [(1, 2, 7, 2, 7)], "only the change at line 5 is pending");
    let patch = env.ws(&ws, &["diff"]).ok().stdout;
    assert!(
        patch.contains("-line 5\n+agent five\n") && patch.contains("\n agent two\n"),
        "approved: context now: {patch}"
    );
    assert!(!patch.contains("+agent two"), "{patch}");
}

#[test]
fn p_goes_through_paths_in_order_and_shows_no_escape_sequence() {
    let env = Env::new();
    let ws = env.dir("proj");
    write(ws.join("a"), "one\n");
    write(ws.join("b"), "two\n");
    env.session(&ws, "printf 'ONE\\n' > a; printf 'TWO \\033[2J\\033]52;c;cm0gLXJmIH4=\\007\\n' > b").ok();
    // d for a (the first path), y for b.
    let out = ws_answering(&env, &ws, &["rollback", "-p"], "d\ny\n").ok();
    assert!(!out.stdout.contains('\x1b') && !out.stderr.contains('\x1b'), "{out:?}");
    assert!(out.stdout.contains("+TWO "), "the line is shown, escaped: {}", out.stdout);
    let (ia, ib) = (out.stdout.find("a/a").unwrap(), out.stdout.find("a/b").unwrap());
    assert!(ia < ib, "path order: {}", out.stdout);
    assert_eq!(std::fs::read_to_string(ws.join("a")).unwrap(), "ONE\n");
    assert_eq!(std::fs::read_to_string(ws.join("b")).unwrap(), "two\n");
}
