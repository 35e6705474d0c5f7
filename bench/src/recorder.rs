//! The `recorder` group: what recording every write costs. A tarball of
//! 20,000 small files (200 directories) is extracted inside a session, where
//! fanotify records every write, and outside any session; both times are
//! taken by the same script around `tar -xf` (not the session's snapshots);
//! each run times both, alternating which goes first. Target: inside ≤ 1.10 × outside. Every
//! run inside must record exactly one `create` per extracted file (counted in
//! `ws log --json`), or the row fails. Runs as root (fanotify needs it), in a
//! scratch directory below the work directory, removed afterwards.

use std::cell::RefCell;
use std::path::Path;

use crate::measure::{Plan, collect_notes, in_scratch, progress};
use crate::report::{Row, Sample, Target};
use crate::util::{Error, Result, check_interrupted, run};

const GROUP: &str = "recorder";
const DIRS: usize = 200;
const FILES_PER_DIR: usize = 100;
/// Prints the nanoseconds `tar -xf` took.
const SCRIPT: &str =
    "mkdir out && s=$(date +%s%N) && tar -xf files.tar -C out && e=$(date +%s%N) && echo elapsed=$((e - s))";

pub fn bench(plan: &Plan<'_>, notes: &RefCell<Vec<String>>) -> (Vec<Row>, Vec<String>) {
    in_scratch(plan, GROUP, Some("workspace"), |dir| measure(plan, notes, dir).map(|row| vec![row]))
}

pub fn elapsed(stdout: &[u8]) -> Result<f64> {
    let text = String::from_utf8_lossy(stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("elapsed="))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .map(|ns| ns as f64 / 1e9)
        .ok_or_else(|| Error::new(format!("the script printed no elapsed time: {text}")))
}

fn measure(plan: &Plan<'_>, notes: &RefCell<Vec<String>>, dir: &Path) -> Result<Row> {
    let files = DIRS * FILES_PER_DIR;
    progress(GROUP, &format!("building a tarball of {files} files…"));
    let src = dir.join("src");
    let ws = dir.join("ws");
    let store = dir.join("store");
    fs_err::create_dir_all(&ws)?;
    for d in 0..DIRS {
        let sub = src.join(format!("d{d:03}"));
        fs_err::create_dir_all(&sub)?;
        for f in 0..FILES_PER_DIR {
            fs_err::write(sub.join(format!("f{f:03}.txt")), format!("file {d}/{f}\n"))?;
        }
    }
    let mut tar = plan.env.command("tar", dir);
    tar.arg("-cf").arg(ws.join("files.tar")).arg("-C").arg(&src).arg(".");
    run(&mut tar)?;
    fs_err::remove_dir_all(&src)?;

    let sh = || {
        let mut c = plan.env.command("sh", &ws);
        c.env("PATH", "/usr/bin:/bin").env("WS_STORE_DIR", &store);
        c
    };
    let mut inside = Sample::empty();
    let mut outside = Sample::empty();
    for i in 0..=plan.runs {
        check_interrupted()?;
        let out = ws.join("out");
        if out.exists() {
            fs_err::remove_dir_all(&out)?;
        }
        // Alternate which goes first, so that a trend in the machine's load
        // does not favour either side.
        let outside_run = |out: &Path| -> Result<f64> {
            let o = elapsed(&run(sh().args(["-c", SCRIPT]))?.stdout)?;
            fs_err::remove_dir_all(out)?;
            Ok(o)
        };
        let mut o = if i % 2 == 0 { Some(outside_run(&out)?) } else { None };
        let mut session = sh();
        session.args(["-c", "exec \"$0\" session start -- sh -c \"$1\""]).arg(plan.ws_bin).arg(SCRIPT);
        let res = run(&mut session)?;
        collect_notes(notes, GROUP, &res.stderr);
        let x = elapsed(&res.stdout)?;
        let mut log = sh();
        log.args(["-c", "exec \"$0\" log --json"]).arg(plan.ws_bin);
        let log = run(&mut log)?;
        let created = String::from_utf8_lossy(&log.stdout)
            .lines()
            .filter(|l| l.contains("\"type\":\"write\"") && l.contains("\"create\"") && l.contains("\"path\":\"out/d"))
            .filter(|l| !l.contains("\"dir\":true"))
            .count();
        if created != files {
            return Err(Error::new(format!("run {i}: {created} creates recorded for {files} files extracted")));
        }
        let mut approve = sh();
        approve.args(["-c", "exec \"$0\" approve >/dev/null 2>&1"]).arg(plan.ws_bin);
        run(&mut approve)?;
        let o = match o.take() {
            Some(o) => o,
            None => {
                fs_err::remove_dir_all(&out)?;
                outside_run(&out)?
            }
        };
        let what = if i == 0 { "warm-up".to_string() } else { format!("run {i}/{}", plan.runs) };
        progress(GROUP, &format!("{what}: inside {x:.3} s, outside {o:.3} s, {created} creates recorded"));
        inside.record(i, x);
        outside.record(i, o);
    }
    Ok(Row {
        fs: GROUP.into(),
        measurement: format!("tar -xf of {files} files in a session, every create recorded"),
        ws: inside,
        baseline_name: "tar -xf outside".into(),
        baseline: Some(outside),
        target: Target::Ratio(1.10),
    })
}
