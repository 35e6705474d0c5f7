//! The five measurements on one filesystem, each against a baseline timed in
//! the same run on the same tree.

use std::cell::RefCell;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::mount::{Fs, LoopMount};
use crate::report::{Row, Sample, Target};
use crate::tree::{self, Tree, TreeSpec};
use crate::util::{Env, Error, Result, human_bytes, run, run_timed, sync};

/// What to run, the same on every filesystem.
#[derive(Debug, Clone, Copy)]
pub struct Plan<'a> {
    pub ws_bin: &'a Path,
    pub env: &'a Env,
    /// Where the images go.
    pub work: &'a Path,
    pub spec: &'a TreeSpec,
    /// Counted runs per measurement (after one warm-up).
    pub runs: usize,
    pub image_size: u64,
}

/// A progress line on stderr; `group` is the filesystem or `sandbox`.
pub fn progress(group: impl fmt::Display, msg: &str) {
    eprintln!("ws-bench: [{group}] {msg}");
}

/// Runs a group's `measure` in its own scratch directory under the plan's
/// work directory, removes the directory after (saying `removing` first,
/// when given), and turns the outcome into the group's rows and errors.
pub fn in_scratch(
    plan: &Plan<'_>,
    group: &str,
    removing: Option<&str>,
    measure: impl FnOnce(&Path) -> Result<Vec<Row>>,
) -> (Vec<Row>, Vec<String>) {
    let dir = plan.work.join(group);
    let result = measure(&dir);
    if let Some(what) = removing {
        progress(group, &format!("removing the {what}…"));
    }
    if dir.exists()
        && let Err(e) = fs_err::remove_dir_all(&dir)
    {
        progress(group, &format!("warning: {e}"));
    }
    match result {
        Ok(rows) => (rows, Vec::new()),
        Err(e) => {
            progress(group, &format!("error: {e}"));
            (Vec::new(), vec![format!("{group}: {e}")])
        }
    }
}

/// A warm-up run, then `runs` counted runs; `f` gets the run index (0 is the
/// warm-up), does its own untimed setup and returns the measured value, which
/// `show` formats for the progress lines.
pub fn repeat(
    group: impl fmt::Display,
    runs: usize,
    what: &str,
    show: fn(f64) -> String,
    mut f: impl FnMut(usize) -> Result<f64>,
) -> Result<Sample> {
    let mut sample = Sample { warmup: 0.0, runs: Vec::with_capacity(runs) };
    for i in 0..=runs {
        let x = f(i).map_err(|e| Error::new(format!("{what}: {e}")))?;
        if i == 0 {
            progress(&group, &format!("{what}: warm-up {}", show(x)));
        } else {
            progress(&group, &format!("{what}: run {i}/{runs} {}", show(x)));
        }
        sample.record(i, x);
    }
    Ok(sample)
}

/// Keeps `ws`'s notes and warnings (from its stderr) for the report.
pub fn collect_notes(notes: &RefCell<Vec<String>>, group: impl fmt::Display, stderr: &[u8]) {
    let text = String::from_utf8_lossy(stderr);
    let mut notes = notes.borrow_mut();
    for line in text.lines() {
        let lower = line.to_ascii_lowercase();
        if lower.contains("note") || lower.contains("warning") {
            let note = format!("[{group}] {}", line.trim());
            if !notes.contains(&note) && notes.len() < 50 {
                notes.push(note);
            }
        }
    }
}

/// Builds a filesystem image, the tree in it, and measures; everything on the
/// image is gone (unmounted and deleted) when this returns, also on error.
pub fn bench_fs(fs: Fs, plan: &Plan<'_>, notes: &RefCell<Vec<String>>) -> Result<Vec<Row>> {
    let Plan { ws_bin, env, work, spec, runs, image_size } = *plan;
    progress(fs, &format!("creating a sparse {} {fs} image and loop-mounting it…", human_bytes(image_size)));
    let mnt = LoopMount::create(work, fs, image_size, env)?;
    let root = mnt.mountpoint.join("tree");
    progress(
        fs,
        &format!(
            "building tree on {fs}: {} files in {} dirs + {} × {}…",
            spec.small_files(),
            spec.dirs(),
            spec.big_files,
            human_bytes(spec.big_size)
        ),
    );
    let tree = tree::build(&root, spec)?;
    progress(fs, &format!("committing {} to git and packing it…", human_bytes(tree.bytes)));
    tree::commit(&tree, env)?;
    sync(env)?;
    let bench = Bench { fs, ws_bin, env, mnt: &mnt.mountpoint, tree: &tree, runs, notes };
    let rows = bench.all()?;
    let mut df = env.command("df", Path::new("/"));
    df.args(["-B1M", "--output=used,size"]).arg(&mnt.mountpoint);
    if let Ok(out) = run(&mut df) {
        let text = String::from_utf8_lossy(&out.stdout);
        let mut nums = text.lines().nth(1).unwrap_or_default().split_whitespace();
        if let (Some(used), Some(size)) = (nums.next(), nums.next()) {
            progress(fs, &format!("{used} MiB of the {size} MiB filesystem in use at the end"));
        }
    }
    progress(fs, "unmounting and deleting the image…");
    drop(mnt);
    Ok(rows)
}

struct Bench<'a> {
    fs: Fs,
    ws_bin: &'a Path,
    env: &'a Env,
    mnt: &'a Path,
    tree: &'a Tree,
    runs: usize,
    notes: &'a RefCell<Vec<String>>,
}

impl Bench<'_> {
    fn all(&self) -> Result<Vec<Row>> {
        let fs = self.fs;
        let held = |measurement: &str, ws: &Sample, baseline_name: &str, baseline: &Sample, target: Target| Row {
            fs: fs.to_string(),
            measurement: measurement.into(),
            ws: ws.clone(),
            baseline_name: baseline_name.into(),
            baseline: Some(baseline.clone()),
            target,
        };
        let row = |measurement: &str, ws: &Sample, baseline_name: &str, baseline: &Sample, target: f64| {
            held(measurement, ws, baseline_name, baseline, Target::Ratio(target))
        };
        let mut rows = Vec::new();

        // 1. First snapshot (fresh store each run) vs a reflink-if-possible copy.
        let copy = self.mnt.join("copy");
        let cp = self.repeat("cp -a --reflink=auto", |_| {
            sync(self.env)?;
            let mut c = self.env.command("cp", self.mnt);
            c.args(["-a", "--reflink=auto"]).arg(&self.tree.root).arg(&copy);
            let (d, _) = run_timed(&mut c)?;
            fs_err::remove_dir_all(&copy)?;
            Ok(d)
        })?;
        let mut store: Option<PathBuf> = None;
        let first = self.repeat("first session, fresh store", |i| {
            if let Some(old) = store.take() {
                fs_err::remove_dir_all(old)?;
            }
            let s = self.mnt.join(format!(".bench-store-{i}"));
            sync(self.env)?;
            let d = self.ws_timed(&s, &["session", "start", "--", "true"])?;
            store = Some(s);
            self.expect_clean("the first `ws session start -- true`")?;
            Ok(d)
        })?;
        let first_target = match fs {
            Fs::Btrfs => 1.2,
            Fs::Ext4 => 1.0,
        };
        rows.push(row("first session (snapshot+run+after)", &first, "cp -a --reflink=auto", &cp, first_target));
        let store = store.ok_or_else(|| Error::new("no store left from the first-session runs"))?;

        // 2. Second snapshot of the unchanged tree (stat cache warm) vs git
        // status: the issue's target, on the snapshot alone, which is what
        // `ws session show --json` reports as snapshot_ms. The whole session
        // is reported with it, held to nothing: it runs two walks (before and
        // after the command) and the sandbox, so it cannot be under one
        // `git status`, which is one walk.
        let mut snapshot_secs: Vec<f64> = Vec::new();
        let second = self.repeat("second session, unchanged tree", |_| {
            let d = self.ws_timed(&store, &["session", "start", "--", "true"])?;
            let out = crate::util::run(&mut self.ws(&store, &["session", "show", "--json"]))?;
            snapshot_secs.push(snapshot_ms(&out.stdout)? / 1000.0);
            Ok(d)
        })?;
        let git_clean = self.repeat("git status --porcelain, clean tree", |_| self.git_status(0))?;
        rows.push(held(
            "second session, unchanged tree",
            &second,
            "git status --porcelain",
            &git_clean,
            Target::Report,
        ));
        let snapshot_only = Sample { warmup: snapshot_secs[0], runs: snapshot_secs[1..].to_vec() };
        rows.push(row(
            "second snapshot alone (snapshot_ms)",
            &snapshot_only,
            "git status --porcelain",
            &git_clean,
            1.0,
        ));

        // 3. `ws diff --stat` of a session that edited 10 files vs git status.
        let edited = self.tree.spread(10);
        self.edit_session(&store, &edited)?;
        let diff = self.repeat("ws diff --stat, 10 files edited", |_| {
            let (d, out) = run_timed(&mut self.ws(&store, &["diff", "--stat"]))?;
            self.collect_notes(&out.stderr);
            if out.stdout.is_empty() {
                return Err(Error::new("`ws diff --stat` printed nothing after a session that edited 10 files"));
            }
            Ok(d)
        })?;
        let git_dirty = self.repeat("git status --porcelain, 10 files edited", |_| self.git_status(edited.len()))?;
        rows.push(row("ws diff --stat, 10 files edited", &diff, "git status --porcelain", &git_dirty, 1.0));

        // 4. Rolling back those 10 files vs the first snapshot.
        let rollback_small = self.repeat("ws rollback, 10 files edited", |i| {
            if i > 0 {
                self.edit_session(&store, &edited)?;
            }
            sync(self.env)?;
            let d = self.ws_timed(&store, &["rollback"])?;
            self.expect_clean("`ws rollback` of a session that edited 10 files")?;
            Ok(d)
        })?;
        rows.push(row("ws rollback, 10 files edited", &rollback_small, "first session (above)", &first, 0.05));

        // 5. Rolling back a session that deleted everything vs the copy.
        let rm_all = "find . -mindepth 1 -maxdepth 1 ! -name .git -exec rm -rf {} +";
        let rollback_all = self.repeat("ws rollback, whole tree deleted", |_| {
            self.ws_untimed(&store, &["session", "start", "--", "sh", "-c", rm_all])?;
            let left: Vec<_> =
                fs_err::read_dir(&self.tree.root)?.filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
            if left.len() != 1 {
                return Err(Error::new(format!(
                    "after the deleting session {} still holds {} entries (expected only .git)",
                    self.tree.root.display(),
                    left.len()
                )));
            }
            sync(self.env)?;
            let d = self.ws_timed(&store, &["rollback"])?;
            self.expect_clean("`ws rollback` of a session that deleted the whole tree")?;
            Ok(d)
        })?;
        rows.push(row("ws rollback, whole tree deleted", &rollback_all, "cp -a --reflink=auto", &cp, 1.2));

        // 6. btrfs: a read-only snapshot of the same tree made a subvolume,
        // what a session's snapshot would cost that way, against ws's own
        // snapshots (the first, which clones every file, and the second,
        // from the watch).
        if fs == Fs::Btrfs {
            let sub = self.mnt.join("subvolume");
            let btrfs = |args: &[&std::ffi::OsStr]| {
                let mut c = self.env.command("btrfs", self.mnt);
                c.args(args);
                c
            };
            run(&mut btrfs(&["subvolume".as_ref(), "create".as_ref(), sub.as_os_str()]))?;
            let mut copy = self.env.command("cp", self.mnt);
            copy.args(["-a", "--reflink=always"]).arg(self.tree.root.join(".")).arg(&sub);
            run(&mut copy)?;
            let snap = self.mnt.join("subvolume-snapshot");
            let subvolume = self.repeat("btrfs subvolume snapshot -r", |_| {
                sync(self.env)?;
                let (d, _) = run_timed(&mut btrfs(&[
                    "subvolume".as_ref(),
                    "snapshot".as_ref(),
                    "-r".as_ref(),
                    sub.as_os_str(),
                    snap.as_os_str(),
                ]))?;
                run(&mut btrfs(&["subvolume".as_ref(), "delete".as_ref(), snap.as_os_str()]))?;
                Ok(d)
            })?;
            run(&mut btrfs(&["subvolume".as_ref(), "delete".as_ref(), sub.as_os_str()]))?;
            rows.push(held(
                "read-only subvolume snapshot of the tree (`btrfs subvolume snapshot -r`)",
                &subvolume,
                "ws's second snapshot alone (above)",
                &snapshot_only,
                Target::Report,
            ));
            rows.push(held(
                "read-only subvolume snapshot of the tree (`btrfs subvolume snapshot -r`)",
                &subvolume,
                "ws's first session (above)",
                &first,
                Target::Report,
            ));
        }
        Ok(rows)
    }

    /// A warm-up run, then `self.runs` counted runs; `f` gets the run index
    /// (0 is the warm-up), does its own untimed setup and returns the time.
    fn repeat(&self, what: &str, mut f: impl FnMut(usize) -> Result<Duration>) -> Result<Sample> {
        repeat(self.fs, self.runs, what, |x| format!("{x:.3} s"), |i| f(i).map(|d| d.as_secs_f64()))
    }

    fn ws(&self, store: &Path, args: &[&str]) -> Command {
        let mut c = self.env.command(self.ws_bin, &self.tree.root);
        c.env("WS_STORE_DIR", store).args(args);
        c
    }

    fn ws_timed(&self, store: &Path, args: &[&str]) -> Result<Duration> {
        let (d, out) = run_timed(&mut self.ws(store, args))?;
        self.collect_notes(&out.stderr);
        Ok(d)
    }

    fn ws_untimed(&self, store: &Path, args: &[&str]) -> Result<()> {
        self.ws_timed(store, args).map(|_| ())
    }

    /// A session that appends a line to each of `files` (not timed).
    fn edit_session(&self, store: &Path, files: &[String]) -> Result<()> {
        let script = r#"for f in "$@"; do printf 'edited by ws-bench\n' >> "$f"; done"#;
        let mut args = vec!["session", "start", "--", "sh", "-c", script, "sh"];
        args.extend(files.iter().map(String::as_str));
        self.ws_untimed(store, &args)
    }

    /// Times `git status --porcelain`, expecting `expect` changed paths.
    fn git_status(&self, expect: usize) -> Result<Duration> {
        let mut c = self.env.command("git", &self.tree.root);
        c.args(["status", "--porcelain"]);
        let (d, out) = run_timed(&mut c)?;
        let lines = out.stdout.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count();
        if lines != expect {
            return Err(Error::new(format!(
                "`git status --porcelain` listed {lines} paths, expected {expect}:\n{}",
                String::from_utf8_lossy(&out.stdout)
            )));
        }
        Ok(d)
    }

    /// Fails unless the tree matches its commit exactly (nothing modified,
    /// untracked or ignored).
    fn expect_clean(&self, after: &str) -> Result<()> {
        let mut c = self.env.command("git", &self.tree.root);
        c.args(["status", "--porcelain", "--untracked-files=all", "--ignored"]);
        let out = run(&mut c)?;
        if !out.stdout.is_empty() {
            let text = String::from_utf8_lossy(&out.stdout);
            let shown: Vec<&str> = text.lines().take(20).collect();
            return Err(Error::new(format!(
                "after {after}, the tree {} differs from its commit ({} paths):\n{}",
                self.tree.root.display(),
                text.lines().count(),
                shown.join("\n")
            )));
        }
        Ok(())
    }

    /// Keeps `ws`'s notes and warnings for the report.
    fn collect_notes(&self, stderr: &[u8]) {
        collect_notes(self.notes, self.fs, stderr);
    }
}

/// The `"snapshot_ms": N` of `ws session show --json`, in milliseconds.
fn snapshot_ms(json: &[u8]) -> Result<f64> {
    let text = String::from_utf8_lossy(json);
    let rest = text
        .split("\"snapshot_ms\":")
        .nth(1)
        .ok_or_else(|| Error::new("`ws session show --json` has no snapshot_ms"))?;
    let digits: String = rest.trim_start().chars().take_while(char::is_ascii_digit).collect();
    digits.parse::<f64>().map_err(|_| Error::new(format!("snapshot_ms is not a number: {}", rest.trim_start())))
}
