//! The `many` group: 100 sessions at once (20 with `--quick`), each writing
//! 100 files and making 10 requests through its proxy to an upstream on
//! loopback, against the same 100 scripts run at once with no `ws` (requests
//! straight to the upstream):
//!
//! - wall time, every session in a workspace of its own, vs the scripts;
//! - wall time, every session in one shared workspace, vs the scripts;
//! - memory: with all sessions alive at once (each waits, its work done, for
//!   the bench's word), the proportional set size (PSS: shared pages split
//!   among their users) of every `ws` process (supervisors with their
//!   proxies, launchers, inits, recorders), per session. Target ≤ 10 MiB;
//!   the total is in the progress lines.
//!
//! Wall-time rows report their ratio and are held to no target (the figures
//! are what is asked for). Every session and script must succeed, or the
//! group fails. Runs as root (the write recorder needs it).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::measure::{Plan, in_scratch, progress};
use crate::report::{Row, Sample, Target};
use crate::util::{Error, Result, check_interrupted};

const GROUP: &str = "many";

pub fn bench(plan: &Plan<'_>, quick: bool) -> (Vec<Row>, Vec<String>) {
    let n = if quick { 20 } else { 100 };
    in_scratch(plan, GROUP, None, |dir| measure(plan, dir, n))
}

/// Session `i`'s work: 100 files in `s{i}`, then 10 requests (through the
/// proxy inside a session, where `HTTP_PROXY` points at it).
fn script(i: usize, port: u16) -> String {
    let outputs: String = (0..10).map(|_| "-o /dev/null ").collect();
    let urls: Vec<String> = (0..10).map(|k| format!("http://127.0.0.1:{port}/s{i}/r{k}")).collect();
    format!(
        "mkdir s{i} && i=0; while [ $i -lt 100 ]; do i=$((i+1)); echo s{i}-$i > s{i}/f$i; done; curl -sf {outputs}{}",
        urls.join(" ")
    )
}

struct Setup<'a> {
    plan: &'a Plan<'a>,
    store: PathBuf,
    profile: PathBuf,
    port: u16,
}

impl Setup<'_> {
    fn sh(&self, cwd: &Path, script: &str) -> Command {
        let mut c = self.plan.env.command("sh", cwd);
        c.env("WS_STORE_DIR", &self.store).arg("-c").arg(script).stdout(Stdio::null()).stderr(Stdio::piped());
        c
    }

    fn session(&self, cwd: &Path, script: &str) -> Command {
        let mut c = self.plan.env.command(self.plan.ws_bin, cwd);
        c.env("WS_STORE_DIR", &self.store)
            .arg("session")
            .arg("start")
            .arg("--profile")
            .arg(&self.profile)
            .args(["--", "sh", "-c", script])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        c
    }
}

fn spawn_all(cmds: Vec<Command>) -> Result<Vec<Child>> {
    cmds.into_iter().map(|mut c| c.spawn().map_err(|e| Error::new(format!("cannot start a session: {e}")))).collect()
}

fn wait_all(children: Vec<Child>) -> Result<()> {
    let mut failed = None;
    for c in children {
        let out = c.wait_with_output()?;
        if !out.status.success() && failed.is_none() {
            failed = Some(format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim()));
        }
    }
    match failed {
        Some(f) => Err(Error::new(format!("a session failed: {f}"))),
        None => Ok(()),
    }
}

/// The workspaces of one round: `n` of their own, or one shared by all.
fn workspaces(root: &Path, n: usize, shared: bool) -> Result<Vec<PathBuf>> {
    if shared {
        fs_err::create_dir_all(root)?;
        return Ok(vec![root.to_path_buf(); n]);
    }
    (0..n)
        .map(|i| {
            let w = root.join(format!("w{i}"));
            fs_err::create_dir_all(&w)?;
            Ok(w)
        })
        .collect()
}

/// Wall time of `n` sessions (or plain scripts) at once, spawn to last exit.
fn round(s: &Setup<'_>, root: &Path, n: usize, shared: bool, with_ws: bool) -> Result<f64> {
    check_interrupted()?;
    let spaces = workspaces(root, n, shared)?;
    let cmds: Vec<Command> = spaces
        .iter()
        .enumerate()
        .map(|(i, w)| if with_ws { s.session(w, &script(i, s.port)) } else { s.sh(w, &script(i, s.port)) })
        .collect();
    let t = Instant::now();
    wait_all(spawn_all(cmds)?)?;
    let elapsed = t.elapsed().as_secs_f64();
    fs_err::remove_dir_all(root)?;
    Ok(elapsed)
}

fn measure(plan: &Plan<'_>, dir: &Path, n: usize) -> Result<Vec<Row>> {
    let port = crate::network::upstream()?;
    fs_err::create_dir_all(dir)?;
    let profile = dir.join("many.toml");
    fs_err::write(
        &profile,
        format!("extends = \"default\"\n[network]\nhosts = [\"127.0.0.1:{port}\"]\naddresses = [\"127.0.0.1\"]\n"),
    )?;
    let s = Setup { plan, store: dir.join("store"), profile, port };
    let mut rows = Vec::new();
    for shared in [false, true] {
        let layout = if shared { "one shared workspace" } else { "a workspace each" };
        let mut with = Sample { warmup: 0.0, runs: Vec::new() };
        let mut without = Sample { warmup: 0.0, runs: Vec::new() };
        for r in 0..=plan.runs {
            let x = round(&s, &dir.join("round"), n, shared, true)?;
            let o = round(&s, &dir.join("round"), n, shared, false)?;
            let what = if r == 0 { "warm-up".to_string() } else { format!("run {r}/{}", plan.runs) };
            progress(GROUP, &format!("{layout}, {what}: {n} sessions {x:.2} s, {n} scripts without ws {o:.2} s"));
            if r == 0 {
                (with.warmup, without.warmup) = (x, o);
            } else {
                with.runs.push(x);
                without.runs.push(o);
            }
        }
        rows.push(Row {
            fs: GROUP.into(),
            measurement: format!("{n} sessions at once, {layout}: 100 files + 10 requests each"),
            ws: with,
            baseline_name: format!("{n} scripts at once, no ws"),
            baseline: Some(without),
            target: Target::Report,
        });
    }
    rows.push(memory(&s, &dir.join("alive"), n)?);
    Ok(rows)
}

/// PSS of every `ws` process while `n` sessions are alive at once, in MiB
/// per session.
fn memory(s: &Setup<'_>, root: &Path, n: usize) -> Result<Row> {
    fs_err::create_dir_all(root)?;
    let cmds: Vec<Command> = (0..n)
        .map(|i| {
            s.session(root, &format!("{}; touch s{i}/done; while [ ! -e go ]; do sleep 0.1; done", script(i, s.port)))
        })
        .collect();
    let children = spawn_all(cmds)?;
    let t = Instant::now();
    while (0..n).any(|i| !root.join(format!("s{i}/done")).exists()) {
        if t.elapsed() > Duration::from_secs(600) {
            fs_err::write(root.join("go"), "")?;
            let _ = wait_all(children);
            return Err(Error::new("the sessions did not all finish their work within 10 minutes"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (pss, rss, procs) = ws_memory(s.plan.ws_bin);
    fs_err::write(root.join("go"), "")?;
    wait_all(children)?;
    let per = pss as f64 / n as f64 / 1024.0;
    progress(
        GROUP,
        &format!(
            "{n} sessions alive: {procs} ws processes, PSS {:.1} MiB in all ({per:.2} MiB per session), RSS {:.1} MiB summed",
            pss as f64 / 1024.0,
            rss as f64 / 1024.0
        ),
    );
    Ok(Row {
        fs: GROUP.into(),
        measurement: format!("memory per session, {n} alive at once (PSS of all ws processes / {n})"),
        ws: Sample { warmup: per, runs: vec![per] },
        baseline_name: String::new(),
        baseline: None,
        target: Target::Mib(10.0),
    })
}

/// (PSS kB, RSS kB, processes) summed over the processes running `ws_bin`.
fn ws_memory(ws_bin: &Path) -> (u64, u64, usize) {
    let mut total = (0, 0, 0);
    let Ok(proc) = std::fs::read_dir("/proc") else { return total };
    for e in proc.flatten() {
        let pid = e.path();
        let exe = std::fs::read_link(pid.join("exe")).ok();
        if exe.as_deref() != Some(ws_bin) {
            continue;
        }
        let Ok(rollup) = std::fs::read_to_string(pid.join("smaps_rollup")) else { continue };
        let field = |name: &str| {
            rollup
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                .unwrap_or(0)
        };
        total.0 += field("Pss:");
        total.1 += field("Rss:");
        total.2 += 1;
    }
    total
}
