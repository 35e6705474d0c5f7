//! The `sandbox` group: what confinement adds to a small, unchanged workspace.
//! It runs once per invocation (not per filesystem), without a loop image, in
//! a scratch directory below the work directory that is removed afterwards:
//!
//! - `ws session start -- true` in a committed 200-file git repository whose
//!   snapshot is warm (a session already ran there), against spawning `true`
//!   the same way: added milliseconds, target ≤ 30 ms.
//! - The same session run in-process through the library
//!   (`ws_session::run_session`, the `ws` binary as its helper): the
//!   lifecycle's own cost, without the CLI's process start and parsing.
//! - The launcher alone, `ws __sandbox-exec SPEC -- /bin/true`, with the mount
//!   and PID namespaces and without them (Landlock and seccomp only), against
//!   `/bin/true`: added milliseconds, target ≤ 5 ms each.
//! - The peak RSS of `ws session start -- true` as GNU `/usr/bin/time -f %M`
//!   reports it (the largest of ws and the processes it waited for), in that
//!   workspace and in one of the benchmark tree's small files (no big ones):
//!   target ≤ 20 MiB. Nothing is installed when /usr/bin/time is missing.
//!
//! Every run must exit 0. Each row is the median of `max(--runs, 10)` runs
//! after a warm-up. ws runs with PATH=/usr/bin:/bin and its own store.

use std::cell::RefCell;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::measure::{Plan, collect_notes, progress, repeat};
use crate::report::{Row, Sample, Target, json_str};
use crate::tree::{self, TreeSpec};
use crate::util::{Env, Error, Result, check_interrupted, run, run_timed, sync};

/// Counted runs at least, whatever `--runs` says: these commands are fast.
pub const MIN_RUNS: usize = 10;
const GROUP: &str = "sandbox";
const SESSION: [&str; 4] = ["session", "start", "--", "true"];

/// Runs the group; returns its rows and, separately, what failed (one
/// failed row does not stop the others).
pub fn bench(plan: &Plan<'_>, notes: &RefCell<Vec<String>>) -> (Vec<Row>, Vec<String>) {
    let dir = plan.work.join(GROUP);
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    let mut fail = |what: &str, e: Error| {
        progress(GROUP, &format!("error: {what}: {e}"));
        errors.push(format!("{GROUP}: {what}: {e}"));
    };
    let small_spec = TreeSpec { top_dirs: 2, sub_dirs: 20, files_per_dir: 5, ..no_big(plan) };
    match Workspace::create(plan.env, &dir, "small", small_spec) {
        Err(e) => fail("building the 200-file workspace", e),
        Ok(small) => {
            let b = Sandbox { plan, notes, runs: plan.runs.max(MIN_RUNS), ws: &small };
            let steps: [(&str, &dyn Fn() -> Result<Row>); 5] = [
                ("session start", &|| b.session_row()),
                ("session lifecycle in-process", &|| b.library_row()),
                ("launcher with namespaces", &|| b.launcher_row(true)),
                ("launcher without namespaces", &|| b.launcher_row(false)),
                ("peak RSS, 200 files", &|| b.rss_row()),
            ];
            for (what, step) in steps {
                if check_interrupted().is_err() {
                    break;
                }
                step().map_or_else(|e| fail(what, e), |row| rows.push(row));
            }
            // The same in a workspace the size of the benchmark tree.
            let spec = no_big(plan);
            let what = format!("peak RSS, {} files", spec.small_files());
            if check_interrupted().is_ok() {
                let large = Workspace::create(plan.env, &dir, "large", spec);
                large.and_then(|l| Sandbox { ws: &l, ..b }.rss_row()).map_or_else(|e| fail(&what, e), |r| rows.push(r));
            }
        }
    }
    progress(GROUP, "removing the workspaces…");
    if dir.exists()
        && let Err(e) = fs_err::remove_dir_all(&dir)
    {
        progress(GROUP, &format!("warning: {e}"));
    }
    (rows, errors)
}

/// The benchmark tree's small files and directories, without the big files.
fn no_big(plan: &Plan<'_>) -> TreeSpec {
    TreeSpec { big_files: 0, big_size: 0, ..*plan.spec }
}

/// A committed git repository of small files and the store ws uses for it.
#[derive(Debug)]
struct Workspace {
    root: PathBuf,
    store: PathBuf,
    files: usize,
}

impl Workspace {
    fn create(env: &Env, dir: &Path, name: &str, spec: TreeSpec) -> Result<Workspace> {
        progress(GROUP, &format!("building a {}-file workspace in git…", spec.small_files()));
        fs_err::create_dir_all(dir)?;
        let tree = tree::build(&dir.join(name), &spec)?;
        tree::commit(&tree, env)?;
        sync(env)?;
        let files = tree.small_files.len();
        Ok(Workspace { root: tree.root, store: dir.join(format!("{name}-store")), files })
    }
}

#[derive(Debug, Clone, Copy)]
struct Sandbox<'a> {
    plan: &'a Plan<'a>,
    notes: &'a RefCell<Vec<String>>,
    runs: usize,
    ws: &'a Workspace,
}

impl Sandbox<'_> {
    /// `program` in the workspace, in the bench's scrubbed environment with
    /// PATH=/usr/bin:/bin and the workspace's store.
    fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = self.plan.env.command(program, &self.ws.root);
        c.env("PATH", "/usr/bin:/bin").env("WS_STORE_DIR", &self.ws.store);
        c
    }

    fn ws(&self, args: &[&str]) -> Command {
        let mut c = self.command(self.plan.ws_bin);
        c.args(args);
        c
    }

    /// Median wall time of `make()`'s command, which must exit 0.
    fn time(&self, what: &str, make: impl Fn() -> Command) -> Result<Sample> {
        repeat(
            GROUP,
            self.runs,
            what,
            |x| format!("{:.2} ms", x * 1000.0),
            |_| {
                let (d, out) = run_timed(&mut make())?;
                collect_notes(self.notes, GROUP, &out.stderr);
                Ok(d.as_secs_f64())
            },
        )
    }

    fn added(&self, measurement: String, ws: Sample, baseline_name: &str, baseline: Sample, max_ms: f64) -> Row {
        Row {
            fs: GROUP.into(),
            measurement,
            ws,
            baseline_name: baseline_name.into(),
            baseline: Some(baseline),
            target: Target::AddedMs(max_ms),
        }
    }

    /// A session already ran, so the snapshot is warm.
    fn warm(&self) -> Result<()> {
        let out = run(&mut self.ws(&SESSION))?;
        collect_notes(self.notes, GROUP, &out.stderr);
        Ok(())
    }

    fn session_row(&self) -> Result<Row> {
        self.warm()?;
        let ws = self.time("ws session start -- true", || self.ws(&SESSION))?;
        let base = self.time("true", || self.command("true"))?;
        let name = format!("session start -- true, unchanged {}-file workspace", self.ws.files);
        Ok(self.added(name, ws, "true", base, 30.0))
    }

    /// `true` in a session run by the library in this process, the `ws`
    /// binary its helper, in the same workspace and store as `session_row`.
    fn library_row(&self) -> Result<Row> {
        let lib = |e: ws_session::Error| Error::new(format!("ws_session: {}", e.message));
        let mut options = ws_session::Options::from_home(self.ws.store.clone());
        options.store_parent = Some(self.ws.store.clone());
        options.helper = Some(self.plan.ws_bin.to_path_buf());
        let command = [std::ffi::OsString::from("true")];
        let once = || -> Result<f64> {
            check_interrupted()?;
            let start = std::time::Instant::now();
            let ws = ws_session::Workspace::open(&self.ws.root, options.clone()).map_err(lib)?;
            let mut run = ws_session::Run::new(&command);
            run.env = vec![("PATH".into(), "/usr/bin:/bin".into())];
            let ran = ws_session::run_session(ws, run).map_err(lib)?;
            let elapsed = start.elapsed();
            if ran.code != 0 {
                return Err(Error::new(format!("the session's `true` exited {}", ran.code)));
            }
            Ok(elapsed.as_secs_f64())
        };
        let what = "ws_session::run_session(true)";
        let ws = repeat(GROUP, self.runs, what, |x| format!("{:.2} ms", x * 1000.0), |_| once())?;
        let base = self.time("true", || self.command("true"))?;
        let name = format!("session lifecycle in-process (library), unchanged {}-file workspace", self.ws.files);
        Ok(self.added(name, ws, "true", base, 30.0))
    }

    /// The launcher's specification, as `ws session start` would write it
    /// for root: the workspace writable, its hooks and config protected.
    fn spec(&self, namespaces: bool) -> Result<String> {
        let root = self.ws.root.to_str().ok_or_else(|| Error::new("the workspace path is not UTF-8"))?;
        // Protected paths must exist for the bind mounts.
        fs_err::create_dir_all(self.ws.root.join(".git/hooks"))?;
        let w = json_str(root);
        let sub = |p: &str| json_str(&format!("{root}/{p}"));
        let ns = if namespaces {
            format!(
                r#"{{"protect":[{},{}],"hide":[],"user_ns":false,"uid":0,"gid":0}}"#,
                sub(".git/hooks"),
                sub(".git/config")
            )
        } else {
            "null".into()
        };
        Ok(format!(
            r#"{{"fs":{{"read":["/usr","/bin","/lib","/lib64","/etc"],"write":[{w},"/dev/null"],"exec":["/usr","/bin","/lib","/lib64"]}},"landlock":true,"seccomp":true,"namespaces":{ns},"require":["landlock","seccomp"],"allow_degraded":false}}"#
        ))
    }

    fn launcher_row(&self, namespaces: bool) -> Result<Row> {
        let spec = self.spec(namespaces)?;
        let launch = || {
            let mut c = self.ws(&["__sandbox-exec"]);
            c.args([spec.as_str(), "--", "/bin/true"]);
            c
        };
        let label = if namespaces { "with namespaces" } else { "Landlock+seccomp only" };
        let ws = self.time(&format!("ws __sandbox-exec SPEC -- /bin/true, {label}"), launch)?;
        let base = self.time("/bin/true", || self.command("/bin/true"))?;
        Ok(self.added(format!("sandbox setup alone, {label}"), ws, "/bin/true", base, 5.0))
    }

    /// Peak RSS of `ws session start -- true` in MiB, per GNU time.
    fn rss_row(&self) -> Result<Row> {
        let time = Path::new("/usr/bin/time");
        if !time.is_file() {
            return Err(Error::new(
                "/usr/bin/time (GNU time) is missing, and ws-bench installs nothing: install GNU time for this row",
            ));
        }
        self.warm()?;
        let what = format!("peak RSS of ws session start -- true, {} files", self.ws.files);
        let ws = repeat(
            GROUP,
            self.runs,
            &what,
            |x| format!("{x:.1} MiB"),
            |_| {
                let mut c = self.command(time);
                c.args(["-f", "%M"]).arg(self.plan.ws_bin).args(SESSION);
                let out = run(&mut c)?;
                let stderr = String::from_utf8_lossy(&out.stderr);
                collect_notes(self.notes, GROUP, &out.stderr);
                let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default();
                let kib: u64 = last.trim().parse().map_err(|_| {
                    Error::new(format!("cannot read a KiB count from the last line of GNU time's output:\n{stderr}"))
                })?;
                Ok(kib as f64 / 1024.0)
            },
        )?;
        Ok(Row {
            fs: GROUP.into(),
            measurement: format!("supervisor peak RSS, unchanged {}-file workspace", self.ws.files),
            ws,
            baseline_name: "-".into(),
            baseline: None,
            target: Target::Mib(20.0),
        })
    }
}
