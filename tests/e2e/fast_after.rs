//! The after-snapshot from the record. For every way a file can change, the
//! snapshot that looks only where the session's record says equals a full
//! walk of the same tree: `WS_AFTER_SNAPSHOT=check` takes both, one after
//! the other, and compares every entry (kind, mode, size, times, inode, link
//! count, content). Positive control in each case: `ws session show --json`
//! says the record was used (the comparison ran; otherwise there is nothing
//! to compare). What the record cannot vouch for must send the session to
//! the full walk, and `ws session show` must say why.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::*;

const IGNORED_FILES: usize = 2_100;

/// A repository with files in nested directories, a symlink, an empty
/// directory, an executable, a file hard-linked to one outside the
/// workspace, ignored files and an ignored directory over the budget
/// (excluded, with `excluded`). `outside` is beside it, in the temporary directory the
/// default profile lets a session write.
fn prepared(env: &Env, excluded: bool) -> (PathBuf, PathBuf) {
    let (ws, outside) = (env.dir("ws"), env.dir("outside"));
    prepare(&ws, &outside, excluded);
    (ws, outside)
}

pub(crate) fn prepare(ws: &Path, outside: &Path, excluded: bool) {
    git_repo(ws);
    for (p, c) in [
        ("src/a.txt", "alpha\n"),
        ("src/b.txt", "bravo\n"),
        ("src/sub/c.txt", "charlie\n"),
        ("src/sub/deeper/d.txt", "delta\n"),
        ("docs/e.md", "echo\n"),
        ("bin/tool", "#!/bin/sh\n"),
        (".gitignore", "*.log\ntarget/\n"),
        ("debug.log", "ignored but kept\n"),
        ("mapped.bin", &"m".repeat(8192)),
        // A name the kernel gives removed directories.
        ("kept (deleted)/f.txt", "kept\n"),
    ] {
        write(ws.join(p), c);
    }
    for i in 0..if excluded { IGNORED_FILES } else { 3 } {
        write(ws.join(format!("target/t{i}")), "t");
    }
    std::fs::create_dir(ws.join("empty")).unwrap();
    std::os::unix::fs::symlink("src/a.txt", ws.join("link")).unwrap();
    write(outside.join("shared"), "shared\n");
    std::fs::hard_link(outside.join("shared"), ws.join("shared")).unwrap();
    commit_all(ws, "base");
}

/// Runs `script` in a session with the check on; `Err` says what went wrong.
fn checked(env: &Env, ws: &Path, script: &str) -> Result<(), String> {
    checked_via(env, script, &|args| env.command(ws, args))
}

/// [`checked`], `ws` run by `ws_cmd`.
pub(crate) fn checked_via(env: &Env, script: &str, ws_cmd: &dyn Fn(&[&str]) -> Command) -> Result<(), String> {
    let mut c = ws_cmd(&["session", "start", "--", "sh", "-c", script]);
    c.env("WS_AFTER_SNAPSHOT", "check");
    let o = env.run(c);
    if o.code != 0 {
        return Err(format!("the session failed: {o:?}"));
    }
    let show = env.run(ws_cmd(&["session", "show", "--json"])).ok();
    let v: serde_json::Value = serde_json::from_str(&show.stdout).unwrap();
    if o.stderr.contains("check FAILED") || !o.stderr.contains("equals a full walk") {
        return Err(format!("not equal to a full walk ({}):\n{}", v["after_snapshot"], o.stderr));
    }
    if v["after_snapshot"]["from"] != "record" {
        return Err(format!("the after-snapshot was not taken from the record: {}", v["after_snapshot"]));
    }
    // The record named something to look at (a change in the diff or not:
    // times and extended attributes are compared by the check, not listed).
    if v["after_snapshot"]["paths"].as_u64().unwrap_or(0) == 0 {
        return Err("the record named no path (the case tests nothing)".into());
    }
    Ok(())
}

/// Every way to change a file, one fresh workspace each.
#[test]
fn the_after_snapshot_from_the_record_equals_a_full_walk_for_every_kind_of_change() {
    assert!(is_root(), "fanotify filesystem marks need root");
    let cases = cases();
    let mut failed = Vec::new();
    for (name, script) in &cases {
        let env = Env::new();
        let (ws, _) = prepared(&env, name.contains("excluded"));
        if let Err(e) = checked(&env, &ws, script) {
            failed.push(format!("{name}: {e}"));
        }
    }
    assert!(failed.is_empty(), "{} of {} cases failed:\n{}", failed.len(), cases.len(), failed.join("\n\n"));
}

/// The same on the clone filesystems (whose file handles and device
/// numbers differ from ext4's), a workspace per case on one image.
fn on_loop_image(kind: &str) {
    let fs = LoopFs::new(kind);
    let env = Env::protected();
    let cases = cases();
    let mut failed = Vec::new();
    for (i, (name, script)) in cases.iter().enumerate().filter(|(_, (n, _))| !n.contains("excluded")) {
        let (ws, outside) = (fs.dir(&format!("ws{i}")), fs.dir(&format!("outside{i}")));
        prepare(&ws, &outside, false);
        if let Err(e) = checked(&env, &ws, script) {
            failed.push(format!("{name}: {e}"));
        }
    }
    assert!(failed.is_empty(), "{kind}: {} cases failed:\n{}", failed.len(), failed.join("\n\n"));
}

#[test]
fn the_after_snapshot_from_the_record_equals_a_full_walk_on_btrfs() {
    on_loop_image("btrfs");
}

#[test]
fn the_after_snapshot_from_the_record_equals_a_full_walk_on_xfs() {
    on_loop_image("xfs");
}

pub(crate) fn cases() -> Vec<(&'static str, String)> {
    let py = "/usr/bin/python3";
    vec![
        ("write", "echo more >> src/a.txt".into()),
        ("O_TRUNC", ": > src/b.txt".into()),
        ("truncate(2)", "perl -e 'truncate(\"src/sub/c.txt\", 3) or die'".into()),
        ("ftruncate, longer", "truncate -s 100000 src/a.txt".into()),
        (
            "mmap shared write, then msync and close",
            format!(
                "{py} -c 'import mmap; f=open(\"mapped.bin\",\"r+b\"); m=mmap.mmap(f.fileno(),0); \
                 m[0:5]=b\"HELLO\"; m.flush(); m.close(); f.close()'"
            ),
        ),
        (
            "mmap write after close, mapping kept past the command's exit",
            format!(
                "{py} -c 'import mmap,time; f=open(\"mapped.bin\",\"r+b\"); m=mmap.mmap(f.fileno(),0); f.close(); \
                 m[100:105]=b\"LATER\"; open(\"ready\",\"w\").close(); time.sleep(600)' & \
                 while [ ! -e ready ]; do sleep 0.01; done"
            ),
        ),
        ("rename over", "echo new > fresh && mv fresh src/b.txt".into()),
        ("link and unlink", "ln src/a.txt src/a-link.txt && rm docs/e.md".into()),
        ("mkdir and rmdir", "mkdir -p new/deeper && echo x > new/deeper/f && rmdir empty".into()),
        ("rm -rf a tree", "rm -rf src".into()),
        ("rename a directory", "mv src/sub moved-sub && echo x > moved-sub/late.txt".into()),
        (
            "a write, then its directory's parent moved away and another put in its place",
            "echo x >> src/sub/c.txt && mv src away && mkdir src && mv away/sub src/sub2 && echo y >> src/sub2/deeper/d.txt"
                .into(),
        ),
        ("directories swapped, written after", "mv src/sub s1 && mv docs src/sub && echo y >> src/sub/e.md && echo z >> s1/c.txt".into()),
        (
            "a tree written, then removed",
            "mkdir -p src/sub/deeper/x && echo 1 > src/sub/deeper/x/f && echo 2 >> src/sub/c.txt && rm -rf src/sub".into(),
        ),
        ("a directory whose name ends as a removed one's", "echo more >> 'kept (deleted)/f.txt'".into()),
        ("chmod", "chmod 600 src/a.txt && chmod 700 src/sub && chmod -x bin/tool".into()),
        ("utimes", "touch -d 2001-02-03 src/a.txt && touch -m -d 2002-02-03 src/sub".into()),
        ("xattr", format!("{py} -c 'import os; os.setxattr(\"src/b.txt\", \"user.test\", b\"1\")'")),
        ("symlink swap", "ln -s src/b.txt link.new && mv -T link.new link".into()),
        ("a file replaced by a directory", "rm src/a.txt && mkdir src/a.txt && echo in > src/a.txt/f".into()),
        ("a .gitignore that changes what is kept", "echo '*.md' >> .gitignore && echo x > notes.md".into()),
        ("a write in an excluded directory", "echo x > target/t5 && echo y > target/new".into()),
        ("a git commit", "git add -A >/dev/null && git -c user.name=a -c user.email=a@b commit -qm x --allow-empty".into()),
        (
            "a name that is not UTF-8",
            "d=$(printf 'dir\\377'); mkdir \"$d\" && echo x > \"$d/$(printf 'f\\376')\" && echo y > \"$(printf 'top\\375')\"".into(),
        ),
        (
            "a background writer that writes past the command's exit",
            "(exec 3>>src/a.txt; : > ready; while true; do echo tick >&3; sleep 0.005; done) & \
             while [ ! -e ready ]; do sleep 0.01; done; sleep 0.1"
                .into(),
        ),
        (
            "a writer killed mid-write",
            "dd if=/dev/zero of=big.bin bs=64k count=100000 2>/dev/null & sleep 0.2; kill -9 $!; wait".into(),
        ),
    ]
}

/// A file the workspace shares with a name outside it: written through the
/// outside name (no event names the workspace's), and linked to a new
/// outside name during the session and written through that.
#[test]
fn writes_through_a_hard_link_outside_the_workspace_are_in_the_after_snapshot() {
    assert!(is_root(), "fanotify filesystem marks need root");
    let env = Env::new();
    let (ws, outside) = prepared(&env, false);
    let (shared, fresh) = (outside.join("shared"), outside.join("fresh-link"));
    let script = format!(
        "echo changed >> '{}' && ln src/b.txt '{}' && echo through >> '{}'",
        shared.display(),
        fresh.display(),
        fresh.display()
    );
    checked(&env, &ws, &script).unwrap();
    let diff = env.ws(&ws, &["diff", "--name-status"]).ok();
    // Positive control: the changes are in the review, by their workspace names.
    assert!(diff.stdout.contains("shared") && diff.stdout.contains("src/b.txt"), "{diff:?}");
}

/// Writes by a process outside the session while it runs (an editor):
/// files, a directory made, one renamed in from outside the workspace.
#[test]
fn writes_from_outside_the_session_are_in_the_after_snapshot_from_the_record() {
    assert!(is_root(), "fanotify filesystem marks need root");
    let env = Env::new();
    let (ws, outside) = prepared(&env, false);
    let writer = {
        let (ws, outside) = (ws.clone(), outside.clone());
        std::thread::spawn(move || {
            let t = std::time::Instant::now();
            while !ws.join("go").exists() {
                assert!(t.elapsed().as_secs() < 60, "the session never started");
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            std::fs::write(ws.join("docs/e.md"), "edited outside\n").unwrap();
            std::fs::create_dir(ws.join("editor-dir")).unwrap();
            std::fs::write(ws.join("editor-dir/x"), "x").unwrap();
            write(outside.join("tree/inner/f"), "came in");
            std::fs::rename(outside.join("tree"), ws.join("arrived")).unwrap();
            std::fs::write(ws.join("src/sub/deeper/d.txt"), "edited before its parent moved\n").unwrap();
            std::fs::rename(ws.join("src/sub"), ws.join("src/sub-renamed")).unwrap();
            std::fs::write(ws.join("src/sub-renamed/deeper/d.txt"), "and after\n").unwrap();
            std::fs::write(ws.join("done"), "").unwrap();
        })
    };
    let r = checked(&env, &ws, "echo agent > agent.txt; : > go; while [ ! -e done ]; do sleep 0.01; done");
    writer.join().unwrap();
    r.unwrap();
}

/// What the record cannot vouch for sends the session to the full walk,
/// and `ws session show` says why: forced, and a filesystem mounted inside.
#[test]
fn the_full_walk_is_taken_and_named_when_the_record_cannot_vouch_for_the_tree() {
    assert!(is_root(), "fanotify filesystem marks need root");
    let env = Env::new();
    let (ws, _) = prepared(&env, false);
    let reason = |env: &Env| {
        let show = env.ws(&ws, &["session", "show", "--json"]).ok();
        let v: serde_json::Value = serde_json::from_str(&show.stdout).unwrap();
        (v["after_snapshot"]["from"].as_str().unwrap_or("").to_owned(), v["after_snapshot"].to_string())
    };
    // Positive control: this workspace takes the fast path.
    env.session(&ws, "echo 1 >> src/a.txt").ok();
    assert_eq!(reason(&env).0, "record", "{}", reason(&env).1);
    let text = env.ws(&ws, &["session", "show"]).ok();
    assert!(text.stdout.contains("after-snap from the record ("), "{}", text.stdout);

    let mut c = env.command(&ws, &["session", "start", "--", "sh", "-c", "echo 2 >> src/a.txt"]);
    c.env("WS_AFTER_SNAPSHOT", "walk");
    env.run(c).ok();
    let (from, all) = reason(&env);
    assert!(from == "walk" && all.contains("WS_AFTER_SNAPSHOT=walk"), "{all}");
    let text = env.ws(&ws, &["session", "show"]).ok();
    assert!(text.stdout.contains("after-snap full walk: WS_AFTER_SNAPSHOT=walk"), "{}", text.stdout);

    let mnt = ws.join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = std::process::Command::new("mount").args(["-t", "tmpfs", "tmpfs"]).arg(&mnt).status().unwrap();
    assert!(mounted.success());
    let r = env.session(&ws, "echo 3 >> src/a.txt");
    let _ = std::process::Command::new("umount").arg(&mnt).status();
    r.ok();
    let (from, all) = reason(&env);
    assert!(from == "walk" && all.contains("mounted inside the workspace"), "{all}");
}
