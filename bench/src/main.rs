#![allow(clippy::print_stdout, clippy::print_stderr)]
//! `ws-bench`: times `ws` against baselines measured in the same run on the
//! same tree (`cp -a --reflink=auto`, `git status`), on fresh btrfs and ext4
//! loop images; then, once, the `sandbox` group (see [`sandbox`]): what
//! confinement adds to a session in a small workspace, the launcher alone,
//! and the supervisor's peak RSS; then `hooks` (what ws's git hooks add to a
//! `git commit`), `network` (the session proxy vs direct requests),
//! `recorder` (recording every write), `many` (100 sessions at once) and
//! `service` (the recorder service for sessions not run as root), `review`
//! (`ws review`'s first screen against `ws diff --stat`) and `scale`
//! (20,000 and 200,000 files: the after-snapshot from the record).
//! `--fs` picks among them (default: all). One table of ratios for the
//! whole project. Run as root:
//!
//! ```text
//! cargo build --release -p ws && cargo run --release -p ws-bench -- [--quick] [--out FILE] [--fs sandbox]
//! ```
//!
//! Prints a table (stdout) and progress (stderr); exits 0 even when a target
//! is missed, non-zero only when something failed.

mod hooks;
mod index_read;
mod many;
mod measure;
mod mount;
mod network;
mod python;
mod recorder;
mod report;
mod review;
mod sandbox;
mod scale;
mod service;
mod tree;
mod util;

use std::cell::RefCell;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::ExitCode;

use mount::{Fs, WorkDir};
use report::{Meta, Row};
use tree::TreeSpec;
use util::{Env, Error, Result};

const USAGE: &str = "\
usage: ws-bench [--quick] [--million] [--out FILE] [--runs N] [--fs btrfs,ext4,sandbox,hooks,network,recorder,many,service,review,scale,python]

  --quick        2,000 files in 400 dirs + 3 × 20 MiB, 1 run after the warm-up
  --million      the scale group also at 1,000,000 files (opt-in: building and
                 committing them takes minutes and about 8 GiB of disk)
  --out FILE     also write the results as JSON to FILE
  --runs N       counted runs per measurement, after one warm-up (default 3, --quick 1;
                 at least 10 in the sandbox group)
  --fs LIST      what to measure (default all of btrfs,ext4,sandbox,hooks,network,recorder,many,service,review,scale,python): the filesystems, and
                 `sandbox`, run once without an image: session start in an unchanged
                 200-file workspace and the launcher alone (added ms vs `true`), and
                 ws's peak RSS per /usr/bin/time (200 files and the tree's small files);
                 `hooks`, run once without an image: `git commit` of one file in a
                 repository of the tree's small files, ws's hooks installed vs none
                 (at least 10 runs); and `network`: the session proxy vs direct
                 requests on loopback; `recorder`: tar -xf of 20,000 files inside a
                 session vs outside, every create counted in `ws log`; `many`: 100 sessions
                 at once (20 with --quick), 100 files and 10 proxied requests each, in a
                 workspace each and in one shared workspace, vs the same scripts without ws,
                 and the PSS of every ws process per session while all are alive;
                 `service`: `ws recorder serve`, started by the bench on a socket of its own:
                 a session as nobody recorded by it vs as root with the in-session recorder
                 (the tree's small files, tar -xf of half as many; whole session and tar
                 alone); one that changes nothing, from the service's watch and record, vs
                 full walks and vs root's; and the service's VmRSS with 100 sessions (20 with
                 --quick) attached;
                 `review`: `ws review`'s first screen (drawn headless, --first-frame) on a
                 session that changed 5,000 files, vs `ws diff --stat` on it;
                 `scale`: committed workspaces of 20,000 and 200,000 files (2,000 and 20,000
                 with --quick): a second session and a 10-file edit session, after-snapshot
                 from the record vs the full walk, vs `git status --porcelain`; peak RSS;
                 `python`: the Python SDK's `Workspace.run([\"true\"])` vs `ws session start
                 -- true`, both from one warm interpreter (python/ of this checkout,
                 $WS_BENCH_PYTHON or python3), in one committed 200-file workspace: wall
                 and CPU time (at least 10 runs)

Runs as root (it makes and loop-mounts filesystem images under /var/tmp, or
$WS_BENCH_TMPDIR; the sandbox and hooks groups' repositories go there too). The ws binary
is $WS_BIN, else `ws` next to this executable.";

#[derive(Debug)]
struct Args {
    quick: bool,
    out: Option<PathBuf>,
    runs: Option<usize>,
    fs: Vec<Fs>,
    /// Whether to run the sandbox group.
    sandbox: bool,
    /// Whether to run the hooks group (`git commit` with ws's hooks, no image).
    hooks: bool,
    /// Whether to run the network group.
    network: bool,
    /// Whether to run the recorder group.
    recorder: bool,
    /// Whether to run the many group.
    many: bool,
    /// Whether to run the service group (the recorder service).
    service: bool,
    /// Whether to run the review group (`ws review`'s first screen).
    review: bool,
    /// Whether to run the scale group (20,000 and 200,000 files).
    scale: bool,
    /// The scale group at 1,000,000 files too.
    million: bool,
    /// Whether to run the python group (the SDK's cost per session).
    python: bool,
}

fn parse_args() -> Result<Option<Args>> {
    let mut args = Args {
        quick: false,
        out: None,
        runs: None,
        fs: Fs::ALL.to_vec(),
        sandbox: true,
        hooks: true,
        network: true,
        recorder: true,
        many: true,
        service: true,
        review: true,
        scale: true,
        million: false,
        python: true,
    };
    let mut it = std::env::args_os().skip(1);
    while let Some(arg) = it.next() {
        let arg = arg.to_str().ok_or_else(|| Error::new(format!("argument {arg:?} is not UTF-8")))?.to_string();
        let mut value = |name: &str| it.next().ok_or_else(|| Error::new(format!("{name} needs a value\n\n{USAGE}")));
        match arg.as_str() {
            "--quick" => args.quick = true,
            "--million" => args.million = true,
            "--out" => args.out = Some(PathBuf::from(value("--out")?)),
            "--runs" => {
                let v = value("--runs")?;
                let n = v.to_str().and_then(|s| s.parse::<usize>().ok()).filter(|&n| n > 0);
                args.runs = Some(n.ok_or_else(|| Error::new(format!("--runs wants a positive number, not {v:?}")))?);
            }
            "--fs" => {
                let v = value("--fs")?;
                let v = v.to_string_lossy();
                args.fs.clear();
                args.sandbox = false;
                args.hooks = false;
                args.network = false;
                args.recorder = false;
                args.many = false;
                args.service = false;
                args.review = false;
                args.scale = false;
                args.python = false;
                for s in v.split(',').map(str::trim) {
                    match Fs::parse(s) {
                        Some(fs) => args.fs.push(fs),
                        None if s == "sandbox" => args.sandbox = true,
                        None if s == "hooks" => args.hooks = true,
                        None if s == "network" => args.network = true,
                        None if s == "recorder" => args.recorder = true,
                        None if s == "many" => args.many = true,
                        None if s == "service" => args.service = true,
                        None if s == "review" => args.review = true,
                        None if s == "scale" => args.scale = true,
                        None if s == "python" => args.python = true,
                        None => {
                            return Err(Error::new(format!(
                                "unknown --fs entry {s:?} (btrfs, ext4, sandbox, hooks, network, recorder, many, service, review, scale, python)"
                            )));
                        }
                    }
                }
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            other => return Err(Error::new(format!("unknown argument {other:?}\n\n{USAGE}"))),
        }
    }
    Ok(Some(args))
}

/// `$WS_BIN`, else `ws` next to this executable (`target/release/ws`).
fn locate_ws() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("WS_BIN").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return fs_err::canonicalize(&p)
            .ok()
            .filter(|p| p.is_file())
            .ok_or_else(|| Error::new(format!("WS_BIN={} does not name a file", p.display())));
    }
    let exe = std::env::current_exe().map_err(|e| Error::new(format!("cannot find this executable's path: {e}")))?;
    let dir = exe.parent().ok_or_else(|| Error::new(format!("{} has no parent directory", exe.display())))?;
    let ws = dir.join("ws");
    if ws.is_file() {
        Ok(ws)
    } else {
        Err(Error::new(format!(
            "no ws binary at {}: run `cargo build --release -p ws` first (or set WS_BIN to the ws binary)",
            ws.display()
        )))
    }
}

fn main() -> ExitCode {
    // A hostile index read in a process of its own (the `hooks` group).
    if let Some(code) = index_read::child(&std::env::args_os().collect::<Vec<_>>()) {
        return code;
    }
    match real_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ws-bench: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn real_main() -> Result<ExitCode> {
    let Some(args) = parse_args()? else {
        return Ok(ExitCode::SUCCESS);
    };
    if fs_err::metadata("/proc/self")?.uid() != 0 {
        return Err(Error::new(
            "must run as root: it makes filesystems and loop-mounts them, and the sandbox group launches as uid 0",
        ));
    }
    let ws_bin = locate_ws()?;
    util::install_signal_flag()?;
    let spec = if args.quick { TreeSpec::quick() } else { TreeSpec::full() };
    let runs = args.runs.unwrap_or(if args.quick { 1 } else { 3 });

    let work = WorkDir::create()?;
    let home = work.path.join("home");
    fs_err::create_dir(&home)?;
    let env = Env::new(home);
    let plan = measure::Plan { ws_bin: &ws_bin, env: &env, work: &work.path, spec: &spec, runs, image_size: 4 << 30 };
    eprintln!("ws-bench: ws is {}; scratch directory {}", ws_bin.display(), work.path.display());

    let notes = RefCell::new(Vec::new());
    let mut rows: Vec<Row> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    for &fs in &args.fs {
        match measure::bench_fs(fs, &plan, &notes) {
            Ok(r) => rows.extend(r),
            Err(e) => {
                eprintln!("ws-bench: error on {fs}: {e}");
                errors.push(format!("{fs}: {e}"));
                if util::check_interrupted().is_err() {
                    break;
                }
            }
        }
    }
    let sandbox_runs = args.sandbox.then(|| runs.max(sandbox::MIN_RUNS));
    if args.sandbox && util::check_interrupted().is_ok() {
        let (r, e) = sandbox::bench(&plan, &notes);
        rows.extend(r);
        errors.extend(e);
    }
    if args.hooks && util::check_interrupted().is_ok() {
        let (r, e) = hooks::bench(&plan, &notes);
        rows.extend(r);
        errors.extend(e);
    }
    if args.network && util::check_interrupted().is_ok() {
        let (r, e) = network::bench(runs);
        rows.extend(r);
        errors.extend(e);
    }
    if args.recorder && util::check_interrupted().is_ok() {
        let (r, e) = recorder::bench(&plan, &notes);
        rows.extend(r);
        errors.extend(e);
    }
    if args.many && util::check_interrupted().is_ok() {
        let (r, e) = many::bench(&plan, args.quick);
        rows.extend(r);
        errors.extend(e);
    }
    if args.service && util::check_interrupted().is_ok() {
        let (r, e) = service::bench(&plan, &notes, args.quick);
        rows.extend(r);
        errors.extend(e);
    }
    if args.review && util::check_interrupted().is_ok() {
        let (r, e) = review::bench(&plan);
        rows.extend(r);
        errors.extend(e);
    }
    if args.scale && util::check_interrupted().is_ok() {
        let (r, e) = scale::bench(&plan, &notes, args.quick, args.million);
        rows.extend(r);
        errors.extend(e);
    }
    if args.python && util::check_interrupted().is_ok() {
        let (r, e) = python::bench(&plan);
        rows.extend(r);
        errors.extend(e);
    }
    drop(work);

    let kernel = fs_err::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()).unwrap_or_default();
    let meta = Meta {
        quick: args.quick,
        runs,
        small_files: spec.small_files(),
        dirs: spec.dirs(),
        big_files: spec.big_files,
        big_size: spec.big_size,
        ws_bin: ws_bin.display().to_string(),
        kernel,
        sandbox_runs,
    };
    let quick = if args.quick { " --quick" } else { "" };
    if !args.fs.is_empty() {
        println!(
            "ws-bench{quick}: {} files in {} dirs + {} × {}, in git; kernel {}; median of {runs} run(s) after 1 warm-up, page cache warm",
            meta.small_files,
            meta.dirs,
            meta.big_files,
            util::human_bytes(meta.big_size),
            meta.kernel,
        );
    }
    if let Some(n) = sandbox_runs {
        println!(
            "ws-bench{quick} sandbox: committed workspaces of 200 and {} small files; kernel {}; median of {n} runs after 1 warm-up",
            meta.small_files, meta.kernel,
        );
    }
    if args.hooks {
        println!(
            "ws-bench{quick} hooks: a committed repository of {} small files, one session approved and one pending, \
             one stored secret; median of {} runs after 1 warm-up",
            meta.small_files,
            runs.max(hooks::MIN_RUNS),
        );
    }
    print!("{}", report::table(&rows));
    let notes = notes.into_inner();
    for n in &notes {
        println!("note from ws: {n}");
    }
    for e in &errors {
        println!("ERROR {e}");
    }
    if let Some(out) = &args.out {
        fs_err::write(out, report::json(&meta, &rows, &errors, &notes))?;
        eprintln!("ws-bench: wrote {}", out.display());
    }
    Ok(if errors.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
