//! The `scale` group: what a session costs as the workspace grows, at
//! 20,000 and 200,000 committed small files (2,000 and 20,000 with
//! `--quick`; 1,000,000 too with `--million`), on the machine's own filesystem (the work directory), as root
//! with the write recorder on. For each size: a second `ws session start --
//! true` (nothing changed) and a session that edits 10 files (rolled back,
//! untimed, after each run), each with the before-snapshot from the watch
//! and the after-snapshot from the record (the default) and with both full
//! walks (`WS_WATCH=off WS_AFTER_SNAPSHOT=walk`, what every session did
//! before), against `git status --porcelain` on the same tree; each snapshot
//! alone (as `ws session show --json` reports it), fast vs walk; the
//! supervisor's peak RSS (GNU time); and the 10-file edit at the large size
//! against the small one.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::measure::{Plan, collect_notes, progress, repeat};
use crate::report::{Row, Sample, Target};
use crate::util::{Error, Result, run, run_timed};

const GROUP: &str = "scale";
const FILES_PER_DIR: usize = 100;
const DIRS_PER_TOP: usize = 50;
const EDITED: usize = 10;

pub fn bench(plan: &Plan<'_>, notes: &RefCell<Vec<String>>, quick: bool, million: bool) -> (Vec<Row>, Vec<String>) {
    let sizes: &[usize] = match (quick, million) {
        (true, _) => &[2_000, 20_000],
        (false, false) => &[20_000, 200_000],
        (false, true) => &[20_000, 200_000, 1_000_000],
    };
    let (mut rows, mut errors) = (Vec::new(), Vec::new());
    let mut edits: Vec<(usize, Sample)> = Vec::new();
    for &n in sizes {
        let dir = plan.work.join(format!("{GROUP}-{n}"));
        match measure(plan, notes, &dir, n) {
            Ok((r, edit)) => {
                rows.extend(r);
                edits.push((n, edit));
            }
            Err(e) => {
                progress(GROUP, &format!("error at {n} files: {e}"));
                errors.push(format!("{GROUP} {n}: {e}"));
            }
        }
        progress(GROUP, "removing the workspace…");
        if dir.exists()
            && let Err(e) = fs_err::remove_dir_all(&dir)
        {
            progress(GROUP, &format!("warning: {e}"));
        }
    }
    if let [(small, s), (large, l), ..] = edits.as_slice() {
        rows.push(Row {
            fs: GROUP.into(),
            measurement: format!(
                "{EDITED}-file edit session at {large} files vs at {small} (from the watch and the record)"
            ),
            ws: l.clone(),
            baseline_name: format!("the same at {small}"),
            baseline: Some(s.clone()),
            target: Target::Ratio(1.5),
        });
    }
    (rows, errors)
}

struct Scale<'a> {
    plan: &'a Plan<'a>,
    notes: &'a RefCell<Vec<String>>,
    ws: PathBuf,
    store: PathBuf,
    files: Vec<String>,
}

impl Scale<'_> {
    fn ws(&self, walk: bool) -> Command {
        let mut c = self.plan.env.command(self.plan.ws_bin, &self.ws);
        c.env("WS_STORE_DIR", &self.store);
        if walk {
            c.env("WS_AFTER_SNAPSHOT", "walk").env("WS_WATCH", "off");
        }
        c
    }

    /// One session of `script` under GNU time: (seconds, peak RSS in MiB,
    /// (before-snapshot ms, after-snapshot ms), how they were taken).
    fn session(&self, walk: bool, script: &str) -> Result<(f64, f64, (f64, f64), String)> {
        let mut c = self.plan.env.command("/usr/bin/time", &self.ws);
        c.env("WS_STORE_DIR", &self.store);
        if walk {
            c.env("WS_AFTER_SNAPSHOT", "walk").env("WS_WATCH", "off");
        }
        c.args(["-f", "rss=%M"]).arg(self.plan.ws_bin).args(["session", "start", "--", "sh", "-c", script]);
        let (t, out) = run_timed(&mut c)?;
        collect_notes(self.notes, GROUP, &out.stderr);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let kib: f64 = stderr
            .lines()
            .find_map(|l| l.strip_prefix("rss="))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| Error::new(format!("GNU time printed no peak RSS:\n{stderr}")))?;
        let show = run(self.ws(false).args(["session", "show", "--json"]))?;
        let v: serde_json::Value = serde_json::from_slice(&show.stdout)
            .map_err(|e| Error::new(format!("`ws session show --json` is not JSON: {e}")))?;
        let ms = (v["snapshot_ms"].as_f64().unwrap_or(f64::NAN), v["after_snapshot_ms"].as_f64().unwrap_or(f64::NAN));
        let how = format!(
            "{}+{}",
            v["before_snapshot"]["from"].as_str().unwrap_or("?"),
            v["after_snapshot"]["from"].as_str().unwrap_or("?")
        );
        let pending = v["changes"]["pending"].as_u64().unwrap_or(0);
        if pending > 0 {
            run(self.ws(false).args(["rollback"]))?;
        }
        Ok((t.as_secs_f64(), kib / 1024.0, ms, how))
    }
}

fn ms(x: f64) -> String {
    format!("{:.0} ms", x * 1000.0)
}

#[allow(clippy::type_complexity)]
fn measure(plan: &Plan<'_>, notes: &RefCell<Vec<String>>, dir: &Path, n: usize) -> Result<(Vec<Row>, Sample)> {
    if !Path::new("/usr/bin/time").is_file() {
        return Err(Error::new("/usr/bin/time (GNU time) is missing, and ws-bench installs nothing"));
    }
    progress(GROUP, &format!("building and committing {n} files…"));
    let ws = dir.join("ws");
    let mut files = Vec::with_capacity(n);
    for i in 0..n {
        let (d, f) = (i / FILES_PER_DIR, i % FILES_PER_DIR);
        let rel = format!("t{:03}/d{:02}/f{f:02}.txt", d / DIRS_PER_TOP, d % DIRS_PER_TOP);
        if f == 0 {
            fs_err::create_dir_all(ws.join(&rel).parent().unwrap_or(&ws))?;
        }
        fs_err::write(ws.join(&rel), format!("file {i}\n"))?;
        files.push(rel);
    }
    let git = |args: &[&str]| -> Result<()> {
        let mut c = plan.env.command("git", &ws);
        c.args(["-c", "user.name=b", "-c", "user.email=b@b", "-c", "init.defaultBranch=main"])
            // No `git gc --auto` in the background (tens of thousands of
            // loose objects ask for one): it would write the workspace
            // while sessions run, and cost what it costs.
            .args(["-c", "gc.auto=0", "-c", "maintenance.auto=false"])
            .args(args);
        run(&mut c).map(|_| ())
    };
    git(&["init", "-q"])?;
    git(&["add", "-A"])?;
    git(&["commit", "-q", "-m", "tree"])?;
    let s = Scale { plan, notes, ws: ws.clone(), store: dir.join("store"), files };
    progress(GROUP, &format!("{n} files: the first session (stores every file)…"));
    s.session(false, "true")?;
    progress(GROUP, &format!("{n} files: waiting for the watch to catch up with building the tree…"));
    settle_watch();
    let step = s.files.len() / EDITED;
    let edit: String = (0..EDITED).map(|i| format!("echo edit >> {}; ", s.files[i * step])).collect();

    let status = repeat(GROUP, plan.runs, &format!("{n}: git status --porcelain"), ms, |_| {
        let mut c = plan.env.command("git", &ws);
        c.args(["status", "--porcelain"]);
        run_timed(&mut c).map(|(t, _)| t.as_secs_f64())
    })?;
    let mut rows = Vec::new();
    let mut edit_record = None;
    let (mut before_alone, mut after_alone): (Vec<Sample>, Vec<Sample>) = (Vec::new(), Vec::new());
    for walk in [false, true] {
        let label = if walk { "full walks" } else { "from the watch and the record" };
        let (mut rss, mut before, mut after) = (Vec::new(), Vec::new(), Vec::new());
        let mut how = String::new();
        let second = repeat(GROUP, plan.runs, &format!("{n}: second session start -- true, {label}"), ms, |i| {
            let (t, r, a, h) = s.session(walk, "true")?;
            if i > 0 {
                rss.push(r);
                before.push(a.0 / 1000.0);
                after.push(a.1 / 1000.0);
            }
            how = h;
            Ok(t)
        })?;
        if how != if walk { "walk+walk" } else { "watch+record" } {
            return Err(Error::new(format!("the snapshots were taken by {how:?}, not as asked ({label})")));
        }
        let edited = repeat(GROUP, plan.runs, &format!("{n}: {EDITED}-file edit session, {label}"), ms, |_| {
            s.session(walk, &edit).map(|(t, ..)| t)
        })?;
        rows.push(Row {
            fs: GROUP.into(),
            measurement: format!("{n} files: second `session start -- true`, snapshots {label}"),
            ws: second,
            baseline_name: "git status --porcelain".into(),
            baseline: Some(status.clone()),
            // The target, from 200,000 files up, with the watch and the record.
            target: if n >= 200_000 && !walk { Target::Ratio(0.25) } else { Target::Report },
        });
        rows.push(Row {
            fs: GROUP.into(),
            measurement: format!("{n} files: {EDITED}-file edit session, snapshots {label}"),
            ws: edited.clone(),
            baseline_name: "git status --porcelain".into(),
            baseline: Some(status.clone()),
            target: Target::Report,
        });
        rows.push(Row {
            fs: GROUP.into(),
            measurement: format!("{n} files: supervisor peak RSS, second session, snapshots {label}"),
            ws: Sample { warmup: 0.0, runs: rss },
            baseline_name: "-".into(),
            baseline: None,
            target: Target::Mib(32.0),
        });
        before_alone.push(Sample { warmup: 0.0, runs: before });
        after_alone.push(Sample { warmup: 0.0, runs: after });
        if !walk {
            edit_record = Some(edited);
        }
    }
    if let [watch, walk] = before_alone.as_slice() {
        rows.push(Row {
            fs: GROUP.into(),
            measurement: format!("{n} files: the before-snapshot alone (unchanged tree), from the watch"),
            ws: watch.clone(),
            baseline_name: "the full walk".into(),
            baseline: Some(walk.clone()),
            target: Target::Report,
        });
    }
    if let [record, walk] = after_alone.as_slice() {
        rows.push(Row {
            fs: GROUP.into(),
            measurement: format!("{n} files: the after-snapshot alone (unchanged tree), from the record"),
            ws: record.clone(),
            baseline_name: "the full walk".into(),
            baseline: Some(walk.clone()),
            target: Target::Report,
        });
    }
    let edit = edit_record.ok_or_else(|| Error::new("no edit sample"))?;
    Ok((rows, edit))
}

/// Waits (at most a minute) until no `ws __watch` daemon has used CPU for
/// half a second: building and committing the tree floods it with events,
/// which it may still be reading when the timed runs start, on the same
/// cores.
fn settle_watch() {
    let cpu = || -> u64 {
        let Ok(procs) = std::fs::read_dir("/proc") else { return 0 };
        procs
            .flatten()
            .filter(|p| std::fs::read(p.path().join("cmdline")).is_ok_and(|c| c.windows(7).any(|w| w == b"__watch")))
            .filter_map(|p| std::fs::read_to_string(p.path().join("stat")).ok())
            .filter_map(|stat| {
                // pid (comm) state … utime stime: fields 14 and 15, after the comm.
                let rest = stat.rsplit_once(')')?.1;
                let f: Vec<&str> = rest.split_whitespace().collect();
                Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
            })
            .sum()
    };
    let start = std::time::Instant::now();
    let mut last = cpu();
    while start.elapsed() < std::time::Duration::from_secs(60) {
        std::thread::sleep(std::time::Duration::from_millis(500));
        let now = cpu();
        if now == last {
            return;
        }
        last = now;
    }
}
