//! Crashes and races: nothing is lost, and ordinary `ws` commands recover.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use crate::harness::*;

fn big_workspace(env: &Env) -> std::path::PathBuf {
    let ws = env.dir("proj");
    for i in 0..4000 {
        write(ws.join(format!("d{}/f{i}", i % 80)), format!("content of file {i}\n").repeat(20));
    }
    ws
}

/// `kill -9` of `ws rollback` at many instants; `ws rollback` again then
/// ends in exactly the snapshot state.
#[test]
fn rollback_killed_at_any_instant_is_finished_by_the_next_rollback() {
    let env = Env::new();
    let ws = big_workspace(&env);
    let before = capture(&ws, &no_skip);
    let mut interrupted = 0;
    for seed in 0..8u64 {
        env.session(&ws, "rm -rf d1* d2* d3*; for i in 1 2 3 4 5 6 7 8 9; do echo x >> d4$i/f4$i 2>/dev/null; done; echo junk > d5/new").ok();
        // Spread the kill over the rollback's lifetime, deterministically per seed.
        let delay = Duration::from_micros(2_000 + seed.wrapping_mul(7919) % 60_000);
        let mut child = env.command(&ws, &["rollback"]).spawn().unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let status = child.wait().unwrap();
        if !status.success() {
            interrupted += 1;
        }
        let again = env.ws(&ws, &["rollback"]);
        // Either the killed run finished first (nothing pending) or this one finishes it.
        assert!(again.code == 0 || again.stderr.contains("no session of this workspace is pending"), "{again:?}");
        assert_same_tree(&before, &capture(&ws, &no_skip));
    }
    assert!(interrupted > 0, "no rollback was actually interrupted; the test proved nothing");
}

/// A deleted tree comes back built under a work name and renamed into place
/// when complete. `kill -9` while it is being built: its path shows nothing
/// (no partial file under its name), only the work tree, which the next
/// rollback ignores, sweeps and builds again.
#[test]
fn rollback_killed_while_rebuilding_a_deleted_tree_leaves_only_its_work_tree() {
    let env = Env::new();
    let ws = env.dir("proj");
    for i in 0..3000 {
        write(ws.join(format!("tree/d{}/f{i}", i % 60)), format!("content of file {i}\n").repeat(20));
    }
    write(ws.join("keep.txt"), "kept\n");
    let before = capture(&ws, &no_skip);
    let work_tree = |ws: &Path| {
        std::fs::read_dir(ws)
            .unwrap()
            .flatten()
            .find(|e| e.file_name().as_bytes().starts_with(b".ws-tmp-") && e.file_type().is_ok_and(|t| t.is_dir()))
    };
    let mut caught = None;
    for _ in 0..10 {
        env.session(&ws, "rm -rf tree").ok();
        let mut child = env.command(&ws, &["rollback"]).spawn().unwrap();
        let mut seen = None;
        while seen.is_none() && child.try_wait().unwrap().is_none() {
            // Partly filled: some directory below the top has files.
            seen =
                work_tree(&ws).filter(|w| std::fs::read_dir(w.path().join("d0")).is_ok_and(|mut d| d.next().is_some()));
        }
        let _ = child.kill();
        let status = child.wait().unwrap();
        if seen.is_some() && !status.success() && work_tree(&ws).is_some() {
            caught = seen.map(|w| w.path());
            break;
        }
        env.ws(&ws, &["rollback"]);
    }
    let work = caught.expect("no rollback was killed while a work tree was being built; the test proved nothing");
    assert!(!ws.join("tree").exists(), "the tree's path shows a partial tree");
    let names: Vec<_> = std::fs::read_dir(&ws).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(names.len(), 2, "only keep.txt and the work tree: {names:?}");
    assert!(work.join("d0").is_dir());
    let again = env.ws(&ws, &["rollback"]).ok();
    assert!(again.stderr.contains("finished an interrupted rollback"), "{}", again.stderr);
    // Also: the work tree is gone (capture lists every name).
    assert_same_tree(&before, &capture(&ws, &no_skip));
}

/// The supervisor dies while the command runs: the session is not lost; the
/// next command takes its after-snapshot and the review goes on.
#[test]
fn supervisor_killed_during_the_session_leaves_a_reviewable_session() {
    let env = Env::new();
    let ws = env.dir("proj");
    write(ws.join("a"), "a\n");
    let mut child = env
        .command(&ws, &["session", "start", "--", "sh", "-c", "echo changed > a; echo new > b; sleep 30"])
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if ws.join("b").exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(ws.join("b").exists(), "the session never ran");
    child.kill().unwrap();
    child.wait().unwrap();
    let list = env.ws(&ws, &["session", "list", "--json"]).ok();
    assert!(list.stdout.contains("\"interrupted\""), "{}", list.stdout);
    let ns = env.ws(&ws, &["diff", "--name-status"]).ok();
    assert!(ns.stderr.contains("was interrupted"), "{}", ns.stderr);
    assert_eq!(ns.stdout, "M\ta\nA\tb\n");
    env.ws(&ws, &["rollback"]).ok();
    assert_eq!(std::fs::read_to_string(ws.join("a")).unwrap(), "a\n");
    assert!(!ws.join("b").exists());
}

#[test]
fn two_rollbacks_at_once_do_not_interfere() {
    let env = Env::new();
    let ws = big_workspace(&env);
    let before = capture(&ws, &no_skip);
    env.session(&ws, "rm -rf d1* d2*; echo new > newfile").ok();
    let a = env.command(&ws, &["rollback"]).output().unwrap();
    let _ = a;
    env.session(&ws, "rm -rf d3* d4*").ok();
    let c1 = env.command(&ws, &["rollback"]).spawn().unwrap();
    let c2 = env.command(&ws, &["rollback"]).spawn().unwrap();
    let (o1, o2) = (c1.wait_with_output().unwrap(), c2.wait_with_output().unwrap());
    let codes = [o1.status.code(), o2.status.code()];
    assert!(codes.contains(&Some(0)), "neither rollback succeeded: {codes:?}");
    assert_same_tree(&before, &capture(&ws, &no_skip));
}

#[test]
fn full_disk_during_snapshot_refuses_to_start_and_touches_nothing() {
    let fs = LoopFs::new("small-ext4");
    let env = Env::new();
    let ws = fs.dir("proj");
    // 14 MiB of distinct data on a 24 MiB filesystem: a copy cannot fit.
    for i in 0..14 {
        let data: Vec<u8> =
            (0..(1 << 20)).map(|j: u32| (j.wrapping_mul(2654435761).wrapping_add(i) >> 13) as u8).collect();
        write(ws.join(format!("blob{i}")), data);
    }
    let before = capture(&ws, &no_skip);
    let out = env.session(&ws, "touch ran");
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("No space left") && out.stderr.contains("disk"), "{}", out.stderr);
    assert!(!ws.join("ran").exists(), "the command ran without a snapshot");
    assert_same_tree(&before, &capture(&ws, &no_skip));
}
