//! The `service` group: the recorder service (`ws recorder serve`), which
//! records the sessions of users who are not root. The bench starts the
//! service itself, as root, on a socket of its own below the work
//! directory, and stops it afterwards; sessions run as `nobody` (`setpriv`)
//! in workspaces `nobody` owns and find the service by `WS_RECORDER_SOCKET`.
//!
//! - time: a session as `nobody`, recorded by the service, against the same
//!   session as root with the in-session recorder, each in a committed
//!   workspace of the tree's small files (20,000; 2,000 with `--quick`) whose
//!   command extracts a tarball of half as many files. Both are timed in the
//!   same run, alternating which goes first; the whole session (spawn to
//!   exit: snapshots, sandbox, recording and its drain) and, from inside,
//!   `tar -xf` alone. Target ≤ 1.10× for both. Every run must record one
//!   `create` per extracted file (`ws log --json`), with the record marked
//!   complete and, as `nobody`, made by the service; else the row fails. Each
//!   run is rolled back afterwards, so every run starts from the same tree.
//!   Then a session that changes nothing (`true`) on each side, timed the
//!   same way: both of its snapshots must come from what changed (the
//!   service keeps the watch between nobody's sessions, and confirms its
//!   record as init does root's), else the row fails; against the same as
//!   `nobody` with both snapshots full walks (target ≤ 0.5×) and against
//!   root's (at most 10 ms added: the service starts its recorder in the
//!   session's namespaces before the snapshot, a few ms whatever the size).
//! - memory: 100 sessions (20 with `--quick`) as `nobody` at once, a small
//!   workspace each, all attached to one freshly started service (one
//!   recorder child of the service per session) and waiting; the service's
//!   VmRSS then is the row (target ≤ 64 MiB), VmHWM is in the progress line.
//!   Once released, every session must succeed with a complete record made
//!   by the service.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::measure::{Plan, collect_notes, progress};
use crate::report::{Row, Sample, Target};
use crate::tree::{self, TreeSpec};
use crate::util::{Error, Result, check_interrupted, run, run_timed};

const GROUP: &str = "service";
const NOBODY: &str = "65534";
/// Prints the nanoseconds `tar -xf` took.
const SCRIPT: &str =
    "mkdir out && s=$(date +%s%N) && tar -xf files.tar -C out && e=$(date +%s%N) && echo elapsed=$((e - s))";

pub fn bench(plan: &Plan<'_>, notes: &RefCell<Vec<String>>, quick: bool) -> (Vec<Row>, Vec<String>) {
    let dir = plan.work.join(GROUP);
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    let mut fail = |e: Error| {
        progress(GROUP, &format!("error: {e}"));
        errors.push(format!("{GROUP}: {e}"));
    };
    match setup(&dir) {
        Ok(()) => {
            match time(plan, notes, &dir.join("time")) {
                Ok(r) => rows.extend(r),
                Err(e) => fail(e),
            }
            if check_interrupted().is_ok() {
                match memory(plan, &dir.join("memory"), if quick { 20 } else { 100 }) {
                    Ok(r) => rows.push(r),
                    Err(e) => fail(e),
                }
            }
        }
        Err(e) => fail(e),
    }
    progress(GROUP, "removing the workspaces…");
    if dir.exists()
        && let Err(e) = fs_err::remove_dir_all(&dir)
    {
        progress(GROUP, &format!("warning: {e}"));
    }
    (rows, errors)
}

/// The group's directory, and the work directory above it, open to
/// `nobody` (its workspaces and the service's socket are below).
fn setup(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs_err::create_dir_all(dir)?;
    for d in [dir, dir.parent().unwrap_or(dir)] {
        fs_err::set_permissions(d, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

fn chown_nobody(plan: &Plan<'_>, path: &Path) -> Result<()> {
    run(plan.env.command("chown", Path::new("/")).args(["-R", &format!("{NOBODY}:{NOBODY}")]).arg(path)).map(|_| ())
}

/// `ws recorder serve` on a socket of its own, killed when dropped.
struct Service {
    child: Child,
    socket: PathBuf,
    log: PathBuf,
}

impl Service {
    fn start(plan: &Plan<'_>, dir: &Path) -> Result<Service> {
        let socket = dir.join("recorder.sock");
        let log = dir.join("service.log");
        let mut cmd = plan.env.command(plan.ws_bin, dir);
        cmd.args(["recorder", "serve", "--socket"]).arg(&socket).stdout(Stdio::null()).stderr(
            std::fs::File::create(&log).map_err(|e| Error::new(format!("cannot create {}: {e}", log.display())))?,
        );
        let child = cmd.spawn().map_err(|e| Error::new(format!("cannot start `ws recorder serve`: {e}")))?;
        let mut svc = Service { child, socket, log };
        let t = Instant::now();
        while !svc.socket.exists() {
            if t.elapsed() > Duration::from_secs(20) || !svc.alive() {
                return Err(svc.failed("did not make its socket within 20 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(svc)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// An error about the service, with the end of what it printed.
    fn failed(&self, what: &str) -> Error {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect();
        Error::new(format!("the recorder service {what}; it printed:\n{}", tail.join("\n")))
    }

    /// Its recorder processes: one per session it records.
    fn recorders(&self) -> usize {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", self.pid())) else { return 0 };
        tasks
            .flatten()
            .map(|t| std::fs::read_to_string(t.path().join("children")).unwrap_or_default().split_whitespace().count())
            .sum()
    }

    /// `VmRSS` and `VmHWM` in MiB.
    fn memory(&self) -> Result<(f64, f64)> {
        let status = fs_err::read_to_string(format!("/proc/{}/status", self.pid()))?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
                .map(|kb| kb / 1024.0)
                .ok_or_else(|| Error::new(format!("no {name} in /proc/{}/status", self.pid())))
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// Stops it; an error if it had died on its own.
    fn stop(mut self) -> Result<()> {
        if !self.alive() {
            return Err(self.failed("died during the run"));
        }
        Ok(())
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Who runs a session, and where.
struct Side<'a> {
    plan: &'a Plan<'a>,
    /// Runs as `nobody`, recorded by the service at this socket; else as root.
    service: Option<&'a Path>,
    ws: PathBuf,
    home: PathBuf,
}

impl Side<'_> {
    fn name(&self) -> &'static str {
        if self.service.is_some() { "nobody, service" } else { "root, in-session" }
    }

    /// `ws ARGS` as this side's user, in its workspace.
    fn ws(&self, args: &[&str]) -> Command {
        let mut c = match self.service {
            Some(socket) => {
                let mut c = self.plan.env.command("setpriv", &self.ws);
                c.args([&format!("--reuid={NOBODY}"), &format!("--regid={NOBODY}"), "--clear-groups", "--"])
                    .arg(self.plan.ws_bin)
                    .env("WS_RECORDER_SOCKET", socket);
                c
            }
            None => self.plan.env.command(self.plan.ws_bin, &self.ws),
        };
        c.args(args).env("PATH", "/usr/bin:/bin").env("HOME", &self.home).env("WS_STORE_DIR", self.home.join("store"));
        c
    }

    /// Checks the last session's record: complete, every write recorded
    /// live, by the recorder this side should have.
    fn check_complete(&self) -> Result<()> {
        let show = run(&mut self.ws(&["session", "show", "--json"]))?;
        let v: serde_json::Value = serde_json::from_slice(&show.stdout)
            .map_err(|e| Error::new(format!("`ws session show --json` is not JSON: {e}")))?;
        let rec = &v["recording"];
        let by_service = rec["via"].as_str().is_some_and(|s| s.contains("recorder service"));
        if v["record_complete"] != true || rec["writes"] != "fanotify" || by_service != self.service.is_some() {
            return Err(Error::new(format!(
                "{} in {}: the record is incomplete or not the expected recorder's: {}",
                self.name(),
                self.ws.display(),
                serde_json::json!({"recording": rec, "record_complete": v["record_complete"]})
            )));
        }
        Ok(())
    }

    /// Checks the last session's record ([`Side::check_complete`]);
    /// returns its `create`s of files under `out/`.
    fn check_record(&self) -> Result<usize> {
        self.check_complete()?;
        let log = run(&mut self.ws(&["log", "--json"]))?;
        let mut created = 0;
        for line in String::from_utf8_lossy(&log.stdout).lines() {
            let r: serde_json::Value = serde_json::from_str(line)
                .map_err(|e| Error::new(format!("a `ws log --json` line is not JSON: {e}")))?;
            if r["type"] == "write"
                && r["ops"].as_array().is_some_and(|ops| ops.iter().any(|o| o == "create"))
                && r["path"].as_str().is_some_and(|p| p.starts_with("out/d"))
                && r["dir"] != true
            {
                created += 1;
            }
        }
        Ok(created)
    }

    /// One session running [`SCRIPT`]: its wall time and `tar -xf`'s, in
    /// seconds; then checks its record and rolls it back.
    fn session(&self, files: usize, notes: &RefCell<Vec<String>>) -> Result<(f64, f64)> {
        check_interrupted()?;
        let (wall, out) = run_timed(self.ws(&["session", "start", "--", "sh", "-c", SCRIPT]).stdout(Stdio::piped()))?;
        collect_notes(notes, GROUP, &out.stderr);
        let tar = crate::recorder::elapsed(&out.stdout)?;
        let created = self.check_record()?;
        if created != files {
            return Err(Error::new(format!("{}: {created} creates recorded for {files} files extracted", self.name())));
        }
        run(&mut self.ws(&["rollback"]))?;
        if self.ws.join("out").exists() {
            return Err(Error::new(format!("{}: `ws rollback` left out/ in place", self.name())));
        }
        Ok((wall.as_secs_f64(), tar))
    }
}

impl Side<'_> {
    /// One session that changes nothing (`true`): its wall time, in
    /// seconds. Both of its snapshots must come from what changed (the
    /// watch and the record), else the row fails.
    /// With `walks`, both snapshots are full walks instead (`WS_WATCH=off`,
    /// `WS_AFTER_SNAPSHOT=walk`).
    fn unchanged(&self, notes: &RefCell<Vec<String>>, walks: bool) -> Result<f64> {
        check_interrupted()?;
        let mut cmd = self.ws(&["session", "start", "--", "true"]);
        if walks {
            cmd.env("WS_WATCH", "off").env("WS_AFTER_SNAPSHOT", "walk");
        }
        let (wall, out) = run_timed(cmd.stdout(Stdio::piped()))?;
        collect_notes(notes, GROUP, &out.stderr);
        let show = run(&mut self.ws(&["session", "show", "--json"]))?;
        let v: serde_json::Value = serde_json::from_slice(&show.stdout)
            .map_err(|e| Error::new(format!("`ws session show --json` is not JSON: {e}")))?;
        if walks {
            return Ok(wall.as_secs_f64());
        }
        if v["before_snapshot"]["from"] != "watch" || v["after_snapshot"]["from"] != "record" {
            return Err(Error::new(format!(
                "{}: a session that changed nothing walked the workspace: before {}, after {}",
                self.name(),
                v["before_snapshot"],
                v["after_snapshot"]
            )));
        }
        Ok(wall.as_secs_f64())
    }
}

/// The workspace (the tree's small files and a tarball of half as many,
/// committed), as root's and as a copy `nobody` owns.
fn workspaces(plan: &Plan<'_>, dir: &Path) -> Result<(PathBuf, PathBuf, usize)> {
    let spec = TreeSpec { big_files: 0, big_size: 0, ..*plan.spec };
    let files = spec.small_files() / 2;
    progress(GROUP, &format!("building a {}-file workspace and a tarball of {files} files…", spec.small_files()));
    fs_err::create_dir_all(dir)?;
    let src = dir.join("src");
    for f in 0..files {
        let sub = src.join(format!("d{:03}", f / 100));
        if f % 100 == 0 {
            fs_err::create_dir_all(&sub)?;
        }
        fs_err::write(sub.join(format!("f{:03}.txt", f % 100)), format!("file {f}\n"))?;
    }
    let root_ws = dir.join("ws-root");
    let t = tree::build(&root_ws, &spec)?;
    run(plan.env.command("tar", dir).arg("-cf").arg(root_ws.join("files.tar")).arg("-C").arg(&src).arg("."))?;
    fs_err::remove_dir_all(&src)?;
    tree::commit(&t, plan.env)?;
    let nobody_ws = dir.join("ws-nobody");
    run(plan.env.command("cp", dir).arg("-a").arg(&root_ws).arg(&nobody_ws))?;
    chown_nobody(plan, &nobody_ws)?;
    Ok((root_ws, nobody_ws, files))
}

/// Run `i` of both sides, `nobody`'s and `root`'s, in turn: which goes
/// first alternates, so that a trend in the machine's load favours neither.
fn alternating<T>(
    i: usize,
    mut nobody: impl FnMut() -> Result<T>,
    mut root: impl FnMut() -> Result<T>,
) -> Result<(T, T)> {
    if i.is_multiple_of(2) {
        let r = root()?;
        Ok((nobody()?, r))
    } else {
        let s = nobody()?;
        Ok((s, root()?))
    }
}

/// The time rows: whole session and `tar -xf` alone, nobody with the
/// service vs root with the in-session recorder.
fn time(plan: &Plan<'_>, notes: &RefCell<Vec<String>>, dir: &Path) -> Result<Vec<Row>> {
    let (root_ws, nobody_ws, files) = workspaces(plan, dir)?;
    for h in ["home-root", "home-nobody"] {
        fs_err::create_dir_all(dir.join(h).join("store"))?;
    }
    chown_nobody(plan, &dir.join("home-nobody"))?;
    let svc = Service::start(plan, dir)?;
    let nobody = Side { plan, service: Some(&svc.socket), ws: nobody_ws, home: dir.join("home-nobody") };
    let root = Side { plan, service: None, ws: root_ws, home: dir.join("home-root") };
    let empty = Sample::empty;
    let (mut wall_svc, mut wall_root, mut tar_svc, mut tar_root) = (empty(), empty(), empty(), empty());
    for i in 0..=plan.runs {
        let (s, r) = alternating(i, || nobody.session(files, notes), || root.session(files, notes))?;
        let what = if i == 0 { "warm-up (first snapshots)".to_string() } else { format!("run {i}/{}", plan.runs) };
        progress(
            GROUP,
            &format!(
                "{what}: session as nobody, service {:.3} s (tar {:.3} s); as root, in-session {:.3} s (tar {:.3} s); \
                 {files} creates recorded by each",
                s.0, s.1, r.0, r.1
            ),
        );
        for (sample, x) in [(&mut wall_svc, s.0), (&mut wall_root, r.0), (&mut tar_svc, s.1), (&mut tar_root, r.1)] {
            sample.record(i, x);
        }
    }
    // A session that changes nothing, after those: from the watch and the
    // record on both sides (the service keeps the watch for nobody).
    let (mut quiet_svc, mut quiet_root, mut walked) = (empty(), empty(), empty());
    for i in 0..=plan.runs {
        let (s, r) = alternating(i, || nobody.unchanged(notes, false), || root.unchanged(notes, false))?;
        progress(GROUP, &format!("unchanged session {i}/{}: as nobody, service {s:.3} s; as root {r:.3} s", plan.runs));
        quiet_svc.record(i, s);
        quiet_root.record(i, r);
    }
    // After those (a walk's snapshot has no watch token: the next session
    // from the watch would walk once).
    for i in 0..=plan.runs {
        let w = nobody.unchanged(notes, true)?;
        progress(GROUP, &format!("unchanged session {i}/{}: as nobody, full walks {w:.3} s", plan.runs));
        walked.record(i, w);
    }
    svc.stop()?;
    let n = plan.spec.small_files();
    let quiet = format!("session as nobody that changes nothing (`true`), {n}-file workspace");
    Ok(vec![
        Row {
            fs: GROUP.into(),
            measurement: format!("{quiet}, snapshots from the service's watch and record"),
            ws: quiet_svc.clone(),
            baseline_name: "the same with full walks".into(),
            baseline: Some(walked),
            target: Target::Ratio(0.5),
        },
        Row {
            fs: GROUP.into(),
            measurement: format!("{quiet}, the same, added to root's (the service's attach)"),
            ws: quiet_svc,
            baseline_name: "as root, from root's watch and the in-session record".into(),
            baseline: Some(quiet_root),
            target: Target::AddedMs(10.0),
        },
        Row {
            fs: GROUP.into(),
            measurement: format!(
                "session as nobody recorded by the service, {n}-file workspace, tar -xf of {files} files (whole session)"
            ),
            ws: wall_svc,
            baseline_name: "as root, in-session recorder".into(),
            baseline: Some(wall_root),
            target: Target::Ratio(1.10),
        },
        Row {
            fs: GROUP.into(),
            measurement: format!("the same, the {files} writes alone (tar -xf timed inside)"),
            ws: tar_svc,
            baseline_name: "as root, in-session recorder".into(),
            baseline: Some(tar_root),
            target: Target::Ratio(1.10),
        },
    ])
}

/// The service's VmRSS with `n` sessions as nobody attached at once.
fn memory(plan: &Plan<'_>, dir: &Path, n: usize) -> Result<Row> {
    progress(GROUP, &format!("starting {n} sessions as nobody at once, a workspace each…"));
    let home = dir.join("home-nobody");
    fs_err::create_dir_all(home.join("store"))?;
    let spaces: Vec<PathBuf> = (0..n).map(|i| dir.join("spaces").join(format!("w{i:03}"))).collect();
    for w in &spaces {
        fs_err::create_dir_all(w)?;
        fs_err::write(w.join("file.txt"), "a file\n")?;
    }
    // The service's socket stays in a directory of root's.
    chown_nobody(plan, &home)?;
    chown_nobody(plan, &dir.join("spaces"))?;
    let mut svc = Service::start(plan, dir)?;
    let socket = svc.socket.clone();
    let script = "touch started; while [ ! -e go ]; do sleep 0.1; done";
    let mut children = Vec::new();
    let mut sides = Vec::new();
    for w in &spaces {
        let side = Side { plan, service: Some(&socket), ws: w.clone(), home: home.clone() };
        let mut cmd = side.ws(&["session", "start", "--", "sh", "-c", script]);
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        children.push(cmd.spawn().map_err(|e| Error::new(format!("cannot start a session: {e}")))?);
        sides.push(side);
    }
    let release = |children: Vec<Child>| -> Result<()> {
        for w in &spaces {
            fs_err::write(w.join("go"), "")?;
        }
        let mut failed = None;
        for c in children {
            let out = c.wait_with_output()?;
            if !out.status.success() && failed.is_none() {
                failed = Some(format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim()));
            }
        }
        failed.map_or(Ok(()), |f| Err(Error::new(format!("a session failed: {f}"))))
    };
    // A session's command starts once the service has answered its request,
    // so when every command has started, every session is attached, or refused.
    let t = Instant::now();
    let mut all_started: Option<Instant> = None;
    let attached = loop {
        let started = spaces.iter().filter(|w| w.join("started").exists()).count();
        let attached = svc.recorders();
        if started == n && attached >= n {
            break attached;
        }
        if started == n {
            all_started.get_or_insert_with(Instant::now);
        }
        let late = t.elapsed() > Duration::from_secs(600)
            || all_started.is_some_and(|s| s.elapsed() > Duration::from_secs(20));
        if late || check_interrupted().is_err() || !svc.alive() {
            let err = svc.failed(&format!(
                "records {attached} of {n} sessions ({started} started) after {:.0} s",
                t.elapsed().as_secs_f64()
            ));
            let _ = release(children);
            // Why: the record of a session the service does not record.
            let why = sides.iter().find_map(|s| s.check_complete().err()).map(|e| format!("\n{e}"));
            return Err(Error::new(format!("{err}{}", why.unwrap_or_default())));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let (rss, hwm) = svc.memory()?;
    let fds = std::fs::read_dir(format!("/proc/{}/fd", svc.pid())).map(Iterator::count).unwrap_or(0);
    let threads = fs_err::read_to_string(format!("/proc/{}/status", svc.pid()))?
        .lines()
        .find_map(|l| l.strip_prefix("Threads:").map(|v| v.trim().to_string()))
        .unwrap_or_default();
    progress(
        GROUP,
        &format!(
            "{n} sessions attached after {:.1} s: service VmRSS {rss:.1} MiB, VmHWM {hwm:.1} MiB, {threads} threads, \
             {fds} descriptors, {attached} recorders",
            t.elapsed().as_secs_f64()
        ),
    );
    release(children)?;
    for side in &sides {
        side.check_complete()?;
    }
    progress(GROUP, &format!("all {n} records complete, made by the service"));
    if !svc.alive() {
        return Err(svc.failed("died during the run"));
    }
    svc.stop()?;
    Ok(Row {
        fs: GROUP.into(),
        measurement: format!("service RSS, {n} sessions as nobody attached (VmRSS; peak VmHWM {hwm:.1} MiB)"),
        ws: Sample { warmup: rss, runs: vec![rss] },
        baseline_name: String::new(),
        baseline: None,
        target: Target::Mib(64.0),
    })
}
