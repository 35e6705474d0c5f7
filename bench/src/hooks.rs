//! The `hooks` group: what ws's git hooks add to `git commit`.
//!
//! One committed repository of the benchmark tree's small files (20,000 by
//! default), without an image, below the work directory. ws state as a user
//! would have it: one session approved, one still pending (on another file),
//! and one stored secret in the fingerprint file, so the hooks do all their
//! work (staged diff, session change sets, a secret scan of the staged blob,
//! the trailer hand-off). Each run edits and stages one file (not timed),
//! then times `git commit` of it, in turn without hooks, with two hooks that
//! only `exit 0` (what having any hooks costs git), and after
//! `ws hooks install`. Target: ≤ 1.2× against no hooks (the issue's), and
//! against the no-op hooks (what ws's own work adds). Afterwards, a commit of
//! the pending session's file must be refused, proving the hooks ran.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::measure::{Plan, collect_notes, in_scratch, progress};
use crate::report::{Row, Sample, Target};
use crate::tree::{self, Tree, TreeSpec};
use crate::util::{Error, Result, describe, run, run_timed, sync};

/// Counted runs at least: a commit is fast.
pub const MIN_RUNS: usize = 10;
const GROUP: &str = "hooks";

/// Runs the group: its row, or what failed. The repository is removed afterwards.
pub fn bench(plan: &Plan<'_>, notes: &RefCell<Vec<String>>) -> (Vec<Row>, Vec<String>) {
    in_scratch(plan, GROUP, Some("repository"), |dir| {
        let mut rows = Hooks::create(plan, notes, dir).and_then(|h| h.rows())?;
        rows.extend(crate::index_read::rows(plan, &dir.join("repo"), dir, notes)?);
        Ok(rows)
    })
}

struct Hooks<'a> {
    plan: &'a Plan<'a>,
    notes: &'a RefCell<Vec<String>>,
    tree: Tree,
    store: PathBuf,
    runs: usize,
}

impl<'a> Hooks<'a> {
    fn create(plan: &'a Plan<'a>, notes: &'a RefCell<Vec<String>>, dir: &Path) -> Result<Hooks<'a>> {
        let spec = TreeSpec { big_files: 0, big_size: 0, ..*plan.spec };
        progress(GROUP, &format!("building a {}-file repository…", spec.small_files()));
        fs_err::create_dir_all(dir)?;
        let tree = tree::build(&dir.join("repo"), &spec)?;
        tree::commit(&tree, plan.env)?;
        let h = Hooks { plan, notes, tree, store: dir.join("store"), runs: plan.runs.max(MIN_RUNS) };
        progress(GROUP, "one session approved, one pending, one stored secret…");
        let [approved, pending] = [h.file(0), h.file(1)];
        h.ws(&["session", "start", "--", "sh", "-c", &format!("echo agent >> {approved}")])?;
        h.ws(&["approve"])?;
        h.ws(&["session", "start", "--", "sh", "-c", &format!("echo agent >> {pending}")])?;
        let fingerprints = plan.env.home.join(".local/share/ws/secret-fingerprints.json");
        let mut file = ws_hooks::FingerprintFile::load(&fingerprints).map_err(|e| Error::new(e.to_string()))?;
        file.add(ws_hooks::Fingerprint::of("WS_BENCH_SECRET", b"ws-bench-0123456789abcdefghijklmnop"));
        file.save(&fingerprints).map_err(|e| Error::new(e.to_string()))?;
        sync(plan.env)?;
        Ok(h)
    }

    /// The `i`-th of the tree's small files, spread over the tree.
    fn file(&self, i: usize) -> String {
        let spread = self.tree.spread(3);
        spread.get(i).cloned().unwrap_or_else(|| self.tree.small_files[i].clone())
    }

    /// `program` in the repository, with ws's store and the bench's HOME.
    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = self.plan.env.command(program, &self.tree.root);
        c.env("WS_STORE_DIR", &self.store);
        c
    }

    fn ws(&self, args: &[&str]) -> Result<()> {
        let mut c = self.command(self.plan.ws_bin);
        c.args(args);
        let out = run(&mut c)?;
        collect_notes(self.notes, GROUP, &out.stderr);
        Ok(())
    }

    fn git(&self, args: &[&str]) -> Command {
        let mut c = self.command("git");
        c.args(["-c", "user.name=ws-bench", "-c", "user.email=ws-bench@example.invalid", "-c", "commit.gpgsign=false"]);
        c.args(args);
        c
    }

    /// Edits and stages the third file (not timed), then times its commit.
    fn commit(&self, n: &mut usize) -> Result<f64> {
        let path = self.file(2);
        *n += 1;
        fs_err::write(self.tree.root.join(&path), format!("edit {n}\n"))?;
        run(&mut self.git(&["add", "--", &path]))?;
        let (d, out) = run_timed(&mut self.git(&["commit", "-q", "-m", &format!("bench commit {n}")]))?;
        collect_notes(self.notes, GROUP, &out.stderr);
        Ok(d.as_secs_f64())
    }

    /// Installs two hooks that do nothing (`exit 0`): what any pre-commit and
    /// prepare-commit-msg cost git (it re-reads the index after pre-commit).
    fn noop_hooks(&self, on: bool) -> Result<()> {
        let dir = self.tree.root.join(".git/hooks");
        for name in ["pre-commit", "prepare-commit-msg"] {
            let path = dir.join(name);
            if on {
                fs_err::write(&path, "#!/bin/sh\nexit 0\n")?;
                fs_err::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
            } else {
                fs_err::remove_file(&path)?;
            }
        }
        Ok(())
    }

    /// Commits without hooks, with hooks that do nothing, and with ws's, in
    /// turn (installing and removing between, not timed), so that load from
    /// elsewhere on the machine falls on all alike: (none, no-op, ws).
    fn rounds(&self) -> Result<[Sample; 3]> {
        let mut n = 0;
        let empty = Sample { warmup: 0.0, runs: Vec::with_capacity(self.runs) };
        let mut samples = [empty.clone(), empty.clone(), empty];
        for i in 0..=self.runs {
            let plain = self.commit(&mut n)?;
            self.noop_hooks(true)?;
            let noop = self.commit(&mut n);
            self.noop_hooks(false)?;
            let noop = noop?;
            self.ws(&["hooks", "install"])?;
            let hooked = self.commit(&mut n);
            self.ws(&["hooks", "uninstall"])?;
            let hooked = hooked?;
            let show = |x: f64| format!("{:.2} ms", x * 1000.0);
            let run = if i == 0 { "warm-up".to_owned() } else { format!("run {i}/{}", self.runs) };
            progress(
                GROUP,
                &format!(
                    "git commit of 1 file: {run}: {} without hooks, {} with no-op hooks, {} with ws's",
                    show(plain),
                    show(noop),
                    show(hooked)
                ),
            );
            for (sample, x) in samples.iter_mut().zip([plain, noop, hooked]) {
                sample.record(i, x);
            }
        }
        Ok(samples)
    }

    fn rows(&self) -> Result<Vec<Row>> {
        let files = self.tree.small_files.len();
        let [without, noop, with] = self.rounds()?;
        self.ws(&["hooks", "install"])?;
        let refused = self.expect_refusal();
        self.ws(&["hooks", "uninstall"])?;
        refused?;
        let row = |baseline_name: &str, baseline: Sample| Row {
            fs: GROUP.into(),
            measurement: format!("git commit of 1 file, {files}-file repo, ws hooks installed"),
            ws: with.clone(),
            baseline_name: baseline_name.into(),
            baseline: Some(baseline),
            target: Target::Ratio(1.2),
        };
        Ok(vec![row("git commit without hooks", without), row("git commit with no-op hooks", noop)])
    }

    /// The pending session's file must not commit: the hooks did run.
    fn expect_refusal(&self) -> Result<()> {
        let pending = self.file(1);
        run(&mut self.git(&["add", "--", &pending]))?;
        let mut c = self.git(&["commit", "-q", "-m", "must be refused"]);
        let out = c.output().map_err(|e| Error::new(format!("cannot run `{}`: {e}", describe(&c))))?;
        if out.status.success() {
            return Err(Error::new(format!(
                "the hooks let a pending session's change of {pending} be committed: the timings measured nothing"
            )));
        }
        run(&mut self.git(&["reset", "-q", "--", &pending]))?;
        Ok(())
    }
}
