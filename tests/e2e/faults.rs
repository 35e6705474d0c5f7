//! Crashes and races: nothing is lost, and ordinary `ws` commands recover.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::harness::*;

fn big_workspace(env: &Env) -> PathBuf {
    fill_big_workspace(env.dir("proj"))
}

fn fill_big_workspace(ws: PathBuf) -> PathBuf {
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
    // Up to 20 s: the whole suite beside it can slow a session's start.
    for _ in 0..800 {
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

/// Two `ws rollback` of the same session at once, a few rounds: one does
/// the work, the other waits for the store's lock and finds nothing left.
#[test]
fn two_rollbacks_at_once_do_not_interfere() {
    let env = Env::new();
    let ws = big_workspace(&env);
    let before = capture(&ws, &no_skip);
    for round in 0..3 {
        env.session(&ws, &format!("rm -rf d{round}* d{}*; echo new > newfile{round}", round + 4)).ok();
        let spawn = || env.command(&ws, &["rollback"]).stderr(std::process::Stdio::piped()).spawn().unwrap();
        let (c1, c2) = (spawn(), spawn());
        let (o1, o2) = (c1.wait_with_output().unwrap(), c2.wait_with_output().unwrap());
        let codes = [o1.status.code(), o2.status.code()];
        assert!(codes.contains(&Some(0)), "round {round}: neither rollback succeeded: {codes:?}");
        for o in [&o1, &o2] {
            let stderr = String::from_utf8_lossy(&o.stderr);
            assert!(
                o.status.success() || stderr.contains("no session of this workspace is pending"),
                "round {round}: {stderr}"
            );
        }
        assert_same_tree(&before, &capture(&ws, &no_skip));
    }
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
    // One error, the supervisor's: the sandbox it gave no go to says nothing.
    assert_eq!(out.stderr.matches("error:").count(), 1, "{}", out.stderr);
    assert!(!ws.join("ran").exists(), "the command ran without a snapshot");
    assert_same_tree(&before, &capture(&ws, &no_skip));
}

/// Whether process `pid` holds a flock (the store's lock: `ws` takes it
/// for exactly the snapshot before a session). Waiters (`->`) do not count.
fn holds_lock(pid: u32) -> bool {
    let locks = std::fs::read_to_string("/proc/locks").unwrap_or_default();
    locks.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.get(1) == Some(&"FLOCK") && f.get(4) == Some(&pid.to_string().as_str())
    })
}

/// The live processes below `pid` (the session's launcher, init, command…).
fn descendants(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let mut stack = vec![pid];
    while let Some(p) = stack.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else { continue };
        for t in tasks.flatten() {
            let children = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            for c in children.split_whitespace().filter_map(|c| c.parse::<u32>().ok()) {
                found.push(c);
                stack.push(c);
            }
        }
    }
    found
}

/// Whether `pid` runs (a zombie does not).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')))
}

/// Waits until the processes `pids` have ended; kills them and fails if
/// they outlive `limit`.
#[track_caller]
fn wait_ended(pids: &[u32], limit: Duration) {
    let start = Instant::now();
    while pids.iter().any(|&p| alive(p)) {
        if start.elapsed() > limit {
            let left: Vec<u32> = pids.iter().copied().filter(|&p| alive(p)).collect();
            for &p in &left {
                if let Some(pid) = rustix::process::Pid::from_raw(p as i32) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                }
            }
            panic!("the session's processes {left:?} outlived its supervisor by {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn sessions(env: &Env, ws: &Path) -> Vec<serde_json::Value> {
    let list = env.ws(ws, &["session", "list", "--json"]).ok();
    serde_json::from_str(&list.stdout).unwrap()
}

/// Ctrl-C or SIGTERM to `ws session start` before its command starts —
/// here while it waits for the workspace's lock, which the test holds, as
/// another `ws` would — stops the session there: the command never runs,
/// `ws` says so and exits 128 + the signal, and no session is left pending.
/// (Before, the signal was forwarded to the session's init, which ignored
/// it, and the command ran once the lock came free.)
#[test]
fn a_signal_before_the_command_starts_stops_the_session_and_nothing_runs() {
    let env = Env::new();
    let ws = env.dir("proj");
    write(ws.join("a"), "a\n");
    env.ws(&ws, &["session", "start", "--", "true"]).ok();
    let stores = env.home.join(".local/share/ws/stores");
    let store = std::fs::read_dir(&stores).unwrap().next().unwrap().unwrap().path();
    let before = capture(&ws, &no_skip);
    let known = sessions(&env, &ws).len();
    // Starts a session while the test holds the store's lock; once its
    // sandbox waits for the snapshot, sends `signal` (if any), then lets go.
    let attempt = |signal: Option<rustix::process::Signal>| {
        let lock = std::fs::File::options().write(true).open(store.join("lock")).unwrap();
        lock.lock().unwrap();
        let mut child = env
            .command(&ws, &["session", "start", "--", "sh", "-c", "echo ran > ran"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while descendants(child.id()).is_empty() && start.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(300));
        assert!(child.try_wait().unwrap().is_none(), "ws did not wait for the lock");
        let session_processes = descendants(child.id());
        assert!(!session_processes.is_empty(), "the sandbox never started");
        if let Some(sig) = signal {
            rustix::process::kill_process(rustix::process::Pid::from_raw(child.id() as i32).unwrap(), sig).unwrap();
            std::thread::sleep(Duration::from_millis(300));
        }
        drop(lock);
        let out = Out::from(child.wait_with_output().unwrap());
        wait_ended(&session_processes, Duration::from_secs(10));
        out
    };
    // Positive control: without a signal the session waits, then runs.
    let out = attempt(None);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(std::fs::read_to_string(ws.join("ran")).unwrap(), "ran\n");
    env.ws(&ws, &["rollback"]).ok();
    assert_same_tree(&before, &capture(&ws, &no_skip));
    let known = known + 1;
    for (signal, code, name) in
        [(rustix::process::Signal::TERM, 143, "SIGTERM"), (rustix::process::Signal::INT, 130, "SIGINT (Ctrl-C)")]
    {
        let out = attempt(Some(signal));
        assert_eq!(out.code, code, "{out:?}");
        assert!(out.stderr.contains(&format!("stopped by {name} before the command started")), "{}", out.stderr);
        assert!(!ws.join("ran").exists(), "{name}: the command ran");
        assert_same_tree(&before, &capture(&ws, &no_skip));
        assert_eq!(sessions(&env, &ws).len(), known, "{name}: a session was left");
        let pending = env.ws(&ws, &["rollback"]);
        assert!(pending.stderr.contains("no session of this workspace is pending"), "{pending:?}");
    }
}

/// `kill -9` of `ws session start` at many instants while it takes the
/// snapshot (every file new, so every file is copied): the command never
/// runs, the workspace is untouched, the half-made snapshot is not taken
/// for a complete one, the store is not left locked, and the next session
/// and its rollback work.
#[test]
fn supervisor_killed_during_the_snapshot_leaves_workspace_and_store_usable() {
    // A filesystem of its own: the snapshot's syncfs then waits for this
    // test's writes only, not for whatever else the machine is doing.
    let fs = LoopFs::new("ext4-many-files");
    let env = Env::new();
    let ws = fs.dir("proj");
    let script = "rm -rf d1*; echo x >> d42/f42; echo junk > new";
    let mut landed = 0;
    for seed in 0..8u64 {
        // New content every round: the stat cache vouches for nothing.
        for i in 0..4000 {
            write(ws.join(format!("d{}/f{i}", i % 80)), format!("round {seed}: content of file {i}\n").repeat(20));
        }
        let before = capture(&ws, &no_skip);
        let known = sessions(&env, &ws).len();
        let mut child = env.command(&ws, &["session", "start", "--", "sh", "-c", script]).spawn().unwrap();
        let start = Instant::now();
        while !holds_lock(child.id())
            && child.try_wait().unwrap().is_none()
            && start.elapsed() < Duration::from_secs(20)
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        // Spread over the snapshot's first 150 ms (about its length here),
        // deterministically per seed. The lock is taken again for the
        // after-snapshot: a kill counts as during the snapshot only if the
        // lock was never let go.
        let delay = Duration::from_micros(seed * 18_000 + seed.wrapping_mul(7919) % 9_000);
        let deadline = Instant::now() + delay;
        let mut released = false;
        while Instant::now() < deadline {
            released |= !holds_lock(child.id());
            std::thread::sleep(Duration::from_micros(200));
        }
        let during = !released && holds_lock(child.id());
        let session_processes = descendants(child.id());
        let _ = child.kill();
        child.wait().unwrap();
        wait_ended(&session_processes, Duration::from_secs(10));
        let listed = sessions(&env, &ws);
        if during {
            landed += 1;
            // The command never ran: nothing to undo.
            assert_same_tree(&before, &capture(&ws, &no_skip));
            assert!(listed.len() <= known + 1, "{listed:?}");
        }
        let rollback = env.ws(&ws, &["rollback"]);
        assert!(
            rollback.code == 0 || rollback.stderr.contains("no session of this workspace is pending"),
            "seed {seed}: {rollback:?}"
        );
        assert_same_tree(&before, &capture(&ws, &no_skip));
        // The next session snapshots afresh (or from a complete snapshot)
        // and its rollback ends exactly where it started.
        let out = env.session(&ws, script).ok();
        assert!(out.stderr.contains("review with `ws diff`"), "{}", out.stderr);
        env.ws(&ws, &["rollback"]).ok();
        assert_same_tree(&before, &capture(&ws, &no_skip));
    }
    env.ws(&ws, &["session", "start", "--", "true"]).ok();
    assert!(landed > 0, "no kill landed during a snapshot; the test proved nothing");
}

/// `kill -9` of `ws session start` at many instants while its command
/// writes and deletes in a loop: the session ends with its supervisor, and
/// `ws rollback` restores exactly the state before it.
#[test]
fn supervisor_killed_at_any_instant_of_the_session_is_rolled_back_exactly() {
    // A filesystem of its own, so that syncfs waits for this test only.
    let fs = LoopFs::new("ext4-many-files");
    let env = Env::new();
    let ws = fill_big_workspace(fs.dir("proj"));
    let before = capture(&ws, &no_skip);
    // Forever, until the session ends: writes, appends, deletions, new trees.
    let script = "rm -rf d7; i=0; while :; do i=$((i+1)); echo $i >> d4/f4; echo $i > new$((i % 5)); \
                  rm -f d5/f$((i * 80 + 5)); mkdir -p t/$((i % 9)); echo $i > t/$((i % 9))/f; done";
    for seed in 0..6u64 {
        let mut child = env.command(&ws, &["session", "start", "--", "sh", "-c", script]).spawn().unwrap();
        let start = Instant::now();
        while !ws.join("t").exists() && start.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(ws.join("t").exists(), "seed {seed}: the session never ran");
        std::thread::sleep(Duration::from_micros(seed.wrapping_mul(7919 * 37) % 300_000));
        let session_processes = descendants(child.id());
        child.kill().unwrap();
        child.wait().unwrap();
        wait_ended(&session_processes, Duration::from_secs(10));
        let listed = sessions(&env, &ws);
        assert_eq!(listed.last().unwrap()["state"], "interrupted", "seed {seed}: {listed:?}");
        let out = env.ws(&ws, &["rollback"]).ok();
        assert!(out.stderr.contains("was interrupted"), "{}", out.stderr);
        assert_same_tree(&before, &capture(&ws, &no_skip));
    }
}

/// A command that ignores SIGTERM does not outlive its supervisor either:
/// the session gets a few seconds, then its PID namespace is killed whole,
/// and `ws rollback` restores exactly.
#[test]
fn a_command_ignoring_sigterm_ends_soon_after_its_supervisor() {
    let env = Env::new();
    let ws = env.dir("proj");
    write(ws.join("a"), "a\n");
    let before = capture(&ws, &no_skip);
    let script = "trap '' TERM; echo up > started; while :; do echo x >> a; sleep 0.05; done";
    let mut child = env.command(&ws, &["session", "start", "--", "sh", "-c", script]).spawn().unwrap();
    let start = Instant::now();
    while !ws.join("started").exists() && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(ws.join("started").exists(), "the session never ran");
    let session_processes = descendants(child.id());
    child.kill().unwrap();
    child.wait().unwrap();
    let killed = Instant::now();
    wait_ended(&session_processes, Duration::from_secs(20));
    // Positive control: SIGTERM alone did not stop it (the trap held), so
    // what ended it was the launcher's escalation.
    assert!(killed.elapsed() >= Duration::from_secs(3), "ended after {:?}: the trap did not hold", killed.elapsed());
    let out = env.ws(&ws, &["rollback"]).ok();
    assert!(out.stderr.contains("was interrupted"), "{}", out.stderr);
    assert_same_tree(&before, &capture(&ws, &no_skip));
}

/// `kill -9` of `ws session start` at many instants of its after-snapshot
/// (the command appended to every file, so every file is copied): the
/// session is left interrupted, and `ws rollback` takes the after-snapshot
/// again and restores exactly the state before the session.
#[test]
fn supervisor_killed_during_the_after_snapshot_is_rolled_back_exactly() {
    let fs = LoopFs::new("ext4-many-files");
    let env = Env::new();
    let ws = fill_big_workspace(fs.dir("proj"));
    let before = capture(&ws, &no_skip);
    let mut landed = 0;
    for seed in 0..5u64 {
        let mut child = env
            .command(&ws, &["session", "start", "--", "sh", "-c", "for f in d*/f*; do echo more >> $f; done"])
            .spawn()
            .unwrap();
        // The lock is held for the snapshot, let go while the command runs,
        // and taken again for the after-snapshot.
        let start = Instant::now();
        let mut phase = 0; // 0: not yet locked, 1: snapshot, 2: command, 3: after-snapshot
        while phase < 3 && child.try_wait().unwrap().is_none() && start.elapsed() < Duration::from_secs(30) {
            let held = holds_lock(child.id());
            phase = match (phase, held) {
                (0, true) => 1,
                (1, false) => 2,
                (2, true) => 3,
                (p, _) => p,
            };
            std::thread::sleep(Duration::from_micros(200));
        }
        let deadline = Instant::now() + Duration::from_micros(seed * 25_000 + seed.wrapping_mul(7919) % 10_000);
        let mut released = false;
        while Instant::now() < deadline {
            released |= !holds_lock(child.id());
            std::thread::sleep(Duration::from_micros(200));
        }
        let during = phase == 3 && !released && holds_lock(child.id());
        let session_processes = descendants(child.id());
        let _ = child.kill();
        child.wait().unwrap();
        wait_ended(&session_processes, Duration::from_secs(10));
        if during {
            landed += 1;
            let listed = sessions(&env, &ws);
            assert_eq!(listed.last().unwrap()["state"], "interrupted", "seed {seed}: {listed:?}");
        }
        let out = env.ws(&ws, &["rollback"]).ok();
        assert!(!during || out.stderr.contains("was interrupted"), "{}", out.stderr);
        assert_same_tree(&before, &capture(&ws, &no_skip));
    }
    assert!(landed > 0, "no kill landed during an after-snapshot; the test proved nothing");
}

/// The command dies of a signal (its own `kill -KILL $$`, a SIGSEGV, or a
/// SIGKILL from outside by pid): `ws` exits 128+N, the session is pending
/// review with its changes and the signal, and rollback restores exactly.
#[test]
fn command_killed_by_a_signal_passes_the_status_and_leaves_a_reviewable_session() {
    let env = Env::new();
    let ws = env.dir("proj");
    write(ws.join("a"), "a\n");
    write(ws.join("gone/g"), "g\n");
    let before = capture(&ws, &no_skip);
    let changes = "echo changed > a; rm -r gone; echo new > b";
    let check = |out: Out, signal: i32| {
        assert_eq!(out.code, 128 + signal, "{out:?}");
        let show = env.ws(&ws, &["session", "show", "--json"]).ok();
        let show: serde_json::Value = serde_json::from_str(&show.stdout).unwrap();
        assert_eq!(show["state"], "pending", "{show}");
        assert_eq!(show["exit_signal"], signal, "{show}");
        let ns = env.ws(&ws, &["diff", "--name-status"]).ok();
        let mut lines: Vec<&str> = ns.stdout.lines().collect();
        lines.sort_unstable();
        assert_eq!(lines, ["A\tb", "D\tgone", "D\tgone/g", "M\ta"], "{}", ns.stdout);
        env.ws(&ws, &["rollback"]).ok();
        assert_same_tree(&before, &capture(&ws, &no_skip));
    };
    check(env.session(&ws, &format!("{changes}; kill -KILL $$")), 9);
    check(env.session(&ws, &format!("{changes}; ulimit -c 0; kill -SEGV $$")), 11);

    // From outside: the command is `sleep` (sh execs it), found by its pid.
    let child = env
        .command(&ws, &["session", "start", "--", "sh", "-c", &format!("{changes}; exec sleep 47.25")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let sleeper = loop {
        let found = descendants(child.id())
            .into_iter()
            .find(|p| std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| c == b"sleep\x0047.25\x00"));
        if let Some(p) = found {
            break p;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "the command never started");
        std::thread::sleep(Duration::from_millis(5));
    };
    let pid = rustix::process::Pid::from_raw(sleeper as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
    let o = child.wait_with_output().unwrap();
    let out = Out::from(o);
    check(out, 9);
}

/// The disk fills up while a rollback writes: it fails naming the path and
/// the full disk, leaves no partial file under a real name, and once space
/// is freed `ws rollback` ends exactly in the snapshot state.
#[test]
fn full_disk_during_rollback_fails_cleanly_and_the_next_rollback_finishes() {
    let fs = LoopFs::new("small-ext4");
    let env = Env::new();
    let ws = fs.dir("proj");
    // Files restored one by one, and a deleted tree rebuilt under a work name.
    for i in 0..6u32 {
        let data: Vec<u8> =
            (0..(1 << 20)).map(|j: u32| (j.wrapping_mul(2654435761).wrapping_add(i) >> 13) as u8).collect();
        let dir = if i % 2 == 0 { "" } else { "tree/" };
        write(ws.join(format!("{dir}blob{i}")), data);
        write(ws.join(format!("tree/small/s{i}")), format!("small {i}\n"));
    }
    let before = capture(&ws, &no_skip);
    env.session(&ws, "rm blob* && rm -r tree && echo new > new").ok();
    // Fill the disk from outside the session, leaving room for the store's
    // journal but not for a megabyte file.
    let filler_path = fs.mnt.join("filler");
    {
        use std::io::Write;
        let mut filler = std::fs::File::create(&filler_path).unwrap();
        let chunk = vec![0x5au8; 64 << 10];
        while filler.write_all(&chunk).is_ok() {}
        let _ = filler.sync_all();
        let len = filler.metadata().unwrap().len();
        filler.set_len(len.saturating_sub(256 << 10)).unwrap();
        filler.sync_all().unwrap();
    }
    let out = env.ws(&ws, &["rollback"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("No space left") && out.stderr.contains("blob"), "{}", out.stderr);
    assert!(out.stderr.contains("free space"), "{}", out.stderr);
    let now = capture(&ws, &no_skip);
    for (path, node) in &now.nodes {
        let name = String::from_utf8_lossy(path);
        if let Some(was) = before.nodes.get(path) {
            assert_eq!(was, node, "{name} is half-restored");
        } else {
            assert!(name == "new" || name.starts_with(".ws-tmp-"), "{name} should not exist");
        }
    }
    std::fs::remove_file(&filler_path).unwrap();
    env.ws(&ws, &["rollback"]).ok();
    assert_same_tree(&before, &capture(&ws, &no_skip));
}

/// A store object that cannot be read in ways that bind root too (its
/// fan-out directory replaced by a file; the object replaced by a
/// directory): rollback fails naming the object and what to do, the
/// workspace is no worse, and after the repair `ws rollback` finishes.
#[test]
fn unreadable_store_object_fails_the_rollback_by_name_and_the_repaired_store_finishes_it() {
    let env = Env::new();
    let ws = env.dir("proj");
    let precious = b"precious, found in one object only\n";
    write(ws.join("precious"), precious);
    write(ws.join("other"), "other\n");
    write(ws.join("tree/deep/f"), "in a tree\n");
    let before = capture(&ws, &no_skip);
    let stores = env.home.join(".local/share/ws/stores");
    for fan_out_damaged in [true, false] {
        env.session(&ws, "rm precious other && rm -r tree && echo new > new").ok();
        let after = capture(&ws, &no_skip);
        // Every copy of it (a restore may leave one behind for the next snapshot).
        let objects: Vec<PathBuf> = store_objects(&stores)
            .into_iter()
            .map(|(p, _)| p)
            .filter(|p| std::fs::read(p).is_ok_and(|c| c == precious))
            .collect();
        assert!(!objects.is_empty(), "no object holds `precious`");
        let mut damaged: Vec<PathBuf> = objects
            .iter()
            .map(|o| if fan_out_damaged { o.parent().unwrap().to_path_buf() } else { o.clone() })
            .collect();
        damaged.sort();
        damaged.dedup();
        for d in &damaged {
            std::fs::rename(d, d.with_extension("aside")).unwrap();
            if fan_out_damaged {
                write(d, "not a directory\n");
            } else {
                std::fs::create_dir(d).unwrap();
            }
        }

        let out = env.ws(&ws, &["rollback"]);
        assert_eq!(out.code, 1, "{out:?}");
        assert!(
            objects.iter().any(|o| out.stderr.contains(&o.display().to_string())) && out.stderr.contains("precious"),
            "{}",
            out.stderr
        );
        assert!(out.stderr.contains("run `ws rollback` again"), "{}", out.stderr);
        // No worse: every path is as the snapshot or as the session left it.
        let now = capture(&ws, &no_skip);
        for (path, node) in &now.nodes {
            let name = String::from_utf8_lossy(path);
            assert!(
                before.nodes.get(path) == Some(node)
                    || after.nodes.get(path) == Some(node)
                    || name.starts_with(".ws-tmp-"),
                "{name} is neither as before nor as after the session"
            );
        }
        assert!(!ws.join("precious").exists());

        for d in &damaged {
            if fan_out_damaged {
                std::fs::remove_file(d).unwrap();
            } else {
                std::fs::remove_dir(d).unwrap();
            }
            std::fs::rename(d.with_extension("aside"), d).unwrap();
        }
        env.ws(&ws, &["rollback"]).ok();
        assert_same_tree(&before, &capture(&ws, &no_skip));
    }
}

/// The store's objects directory unreadable to the user `ws` runs as
/// (permissions do not bind root, so as `nobody`): rollback fails naming
/// the object, the workspace is no worse, and once the directory is
/// readable again `ws rollback` finishes exactly.
#[test]
fn unreadable_objects_directory_fails_an_unprivileged_rollback_by_name() {
    use crate::privilege::{as_nobody, unprivileged};
    use std::os::unix::fs::PermissionsExt;
    let u = unprivileged();
    write(u.ws.join("precious"), "precious\n");
    write(u.ws.join("tree/f"), "in a tree\n");
    std::process::Command::new("chown").args(["-R", "65534:65534"]).arg(&u.ws).status().unwrap();
    let before = capture(&u.ws, &no_skip);
    let out = as_nobody(&u, &u.ws, &["session", "start", "--", "sh", "-c", "rm -r precious tree; echo new > new"]);
    assert_eq!(out.code, 0, "{out:?}");
    let after = capture(&u.ws, &no_skip);
    let stores = u.home.join(".local/share/ws/stores");
    let (object, _) = store_objects(&stores).into_iter().next().expect("the session stored objects");
    let objects = object.parent().and_then(Path::parent).unwrap().to_path_buf();
    std::fs::set_permissions(&objects, std::fs::Permissions::from_mode(0o000)).unwrap();

    let out = as_nobody(&u, &u.ws, &["rollback"]);
    assert_eq!(out.code, 1, "{out:?}");
    let shown = objects.display().to_string();
    assert!(out.stderr.contains(&shown) && out.stderr.contains("Permission denied"), "{}", out.stderr);
    assert!(out.stderr.contains("readable again") && out.stderr.contains("`ws rollback` again"), "{}", out.stderr);
    let now = capture(&u.ws, &no_skip);
    for (path, node) in &now.nodes {
        let name = String::from_utf8_lossy(path);
        assert!(
            before.nodes.get(path) == Some(node) || after.nodes.get(path) == Some(node) || name.starts_with(".ws-tmp-"),
            "{name} is neither as before nor as after the session"
        );
    }

    std::fs::set_permissions(&objects, std::fs::Permissions::from_mode(0o700)).unwrap();
    let out = as_nobody(&u, &u.ws, &["rollback"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_same_tree(&before, &capture(&u.ws, &no_skip));
}

/// `timeout` signals its whole process group (so does a closed terminal):
/// the command ends of it, and the recorder — in that group too — must not:
/// it drains the last events, and the record stays complete.
#[test]
fn a_session_ended_by_timeout_keeps_a_complete_record() {
    let env = Env::new();
    let ws = env.dir("proj");
    write(ws.join("a"), "a\n");
    for signal in ["TERM", "HUP"] {
        let mut c =
            env.command(&ws, &["session", "start", "--", "sh", "-c", "echo changed > a; echo new > b; sleep 30"]);
        let ws_bin = c.get_program().to_owned();
        let args: Vec<_> = c.get_args().map(|a| a.to_owned()).collect();
        let mut t = std::process::Command::new("timeout");
        t.args(["-s", signal, "3"]).arg(ws_bin).args(args).current_dir(&ws).env_clear();
        for (k, v) in c.get_envs() {
            if let Some(v) = v {
                t.env(k, v);
            }
        }
        c = t;
        let out = env.run(c);
        assert_eq!(out.code, 124, "{out:?}");
        let show = env.ws(&ws, &["session", "show", "--json"]).ok();
        let show: serde_json::Value = serde_json::from_str(&show.stdout).unwrap();
        assert_eq!(show["record_complete"], true, "{signal}: {show}");
        assert!(!out.stderr.contains("INCOMPLETE"), "{signal}: {out:?}");
        let ns = env.ws(&ws, &["diff", "--name-status"]).ok();
        assert!(ns.stdout.contains("M\ta") && ns.stdout.contains("A\tb"), "{signal}: {}", ns.stdout);
        env.ws(&ws, &["rollback"]).ok();
    }
}
