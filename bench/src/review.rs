//! The `review` group: how soon `ws review` shows its first screen on a
//! session that changed 5,000 files, against `ws diff --stat` on the same
//! session (which reads both versions of every file to count lines).
//! `ws review --first-frame` loads the session, draws the first screen
//! (80×24) to a headless backend, prints it and exits: what a terminal
//! would show, without one. Each run times both, alternating which goes
//! first. Target: ≤ 1.0 × `ws diff --stat`. The first screen must show the
//! first path, or the row fails.

use std::path::Path;

use crate::measure::{Plan, in_scratch, progress};
use crate::report::{Row, Sample, Target};
use crate::util::{Error, Result, check_interrupted, run, run_timed};

const GROUP: &str = "review";
const DIRS: usize = 50;
const FILES_PER_DIR: usize = 100;
/// Lines per file: a small source file.
const LINES: usize = 40;

pub fn bench(plan: &Plan<'_>) -> (Vec<Row>, Vec<String>) {
    in_scratch(plan, GROUP, Some("workspace"), |dir| measure(plan, dir).map(|row| vec![row]))
}

fn measure(plan: &Plan<'_>, dir: &Path) -> Result<Row> {
    let files = DIRS * FILES_PER_DIR;
    progress(GROUP, &format!("a workspace of {files} files, and a session that edits every one…"));
    let ws = dir.join("ws");
    let store = dir.join("store");
    let body: String = (1..=LINES).map(|i| format!("    let line_{i} = compute({i});\n")).collect();
    for d in 0..DIRS {
        let sub = ws.join(format!("d{d:02}"));
        fs_err::create_dir_all(&sub)?;
        for f in 0..FILES_PER_DIR {
            fs_err::write(sub.join(format!("f{f:03}.rs")), &body)?;
        }
    }
    fs_err::create_dir_all(&store)?;
    let ws_cmd = |args: &[&str]| {
        let mut c = plan.env.command(plan.ws_bin, &ws);
        c.args(args).env("WS_STORE_DIR", &store);
        c
    };
    // One line changed in the middle of each file: a hunk each.
    run(&mut ws_cmd(&[
        "session",
        "start",
        "--",
        "sh",
        "-c",
        "sed -i 's/line_20 = compute(20)/line_20 = compute(21)/' d*/f*.rs",
    ]))?;

    let mut review = Sample::empty();
    let mut stat = Sample::empty();
    for i in 0..=plan.runs {
        check_interrupted()?;
        let time_review = || -> Result<f64> {
            let (t, out) = run_timed(&mut ws_cmd(&["review", "--first-frame"]))?;
            let screen = String::from_utf8_lossy(&out.stdout);
            if !screen.lines().nth(1).is_some_and(|l| l.contains("d00/f000.rs")) || !screen.contains("@@") {
                return Err(Error::new(format!("the first screen does not show the first path's diff:\n{screen}")));
            }
            Ok(t.as_secs_f64())
        };
        let time_stat = || -> Result<f64> {
            let (t, out) = run_timed(&mut ws_cmd(&["diff", "--stat"]))?;
            let text = String::from_utf8_lossy(&out.stdout);
            if !text.contains(&format!("{files} files changed")) {
                return Err(Error::new(format!("ws diff --stat did not list {files} files")));
            }
            Ok(t.as_secs_f64())
        };
        // Alternate which goes first, so that a trend in the machine's load
        // does not favour either side.
        let (r, s) = if i % 2 == 0 {
            let s = time_stat()?;
            (time_review()?, s)
        } else {
            let r = time_review()?;
            (r, time_stat()?)
        };
        let what = if i == 0 { "warm-up".to_string() } else { format!("run {i}/{}", plan.runs) };
        progress(GROUP, &format!("{what}: review's first screen {:.1} ms, diff --stat {:.1} ms", r * 1e3, s * 1e3));
        review.record(i, r);
        stat.record(i, s);
    }
    Ok(Row {
        fs: GROUP.into(),
        measurement: format!("`ws review` first screen, a session that changed {files} files"),
        ws: review,
        baseline_name: "ws diff --stat".into(),
        baseline: Some(stat),
        target: Target::Ratio(1.0),
    })
}
