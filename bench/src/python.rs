//! The `python` group: what the Python SDK adds to a session. In one
//! committed 200-file git repository, `Workspace.run(["true"])` against `ws
//! session start -- true`, both from one Python process that stays up (an
//! agent loop's cost per call: the interpreter's start is not counted),
//! alternating which goes first. Two rows: wall time, and CPU time (the
//! process's own and its children's, from `getrusage`), which a loaded
//! machine disturbs far less. Target: ≤ 1.1 ×. The package is imported
//! from this checkout's `python/` and drives the bench's ws (`WS_BINARY`);
//! `$WS_BENCH_PYTHON` names the interpreter (default `python3`).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Stdio;

use crate::measure::{Plan, in_scratch, progress};
use crate::report::{Row, Sample, Target};
use crate::util::{Error, Result, check_interrupted, run};

const GROUP: &str = "python";
const FILES: usize = 200;

/// Reads `py` or `cli` lines; runs one session for each (through the SDK,
/// or `ws session start -- true` as a subprocess) and answers its wall and
/// CPU seconds.
const DRIVER: &str = r#"
import os, resource, subprocess, sys, time
from ws_sandbox import Workspace
ws = Workspace(sys.argv[1])
def cpu():
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime
def sdk():
    s = ws.run(["true"])
    if s.exit_code != 0 or s.state != "closed":
        sys.exit(f"unexpected session: {s!r}")
def cli():
    subprocess.run([os.environ["WS_BINARY"], "session", "start", "--", "true"], cwd=ws.path, check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
for line in sys.stdin:
    c, t = cpu(), time.perf_counter()
    (sdk if line.strip() == "py" else cli)()
    print(time.perf_counter() - t, cpu() - c, flush=True)
"#;

pub fn bench(plan: &Plan<'_>) -> (Vec<Row>, Vec<String>) {
    in_scratch(plan, GROUP, None, |dir| measure(plan, dir))
}

fn measure(plan: &Plan<'_>, dir: &Path) -> Result<Vec<Row>> {
    progress(GROUP, &format!("a committed workspace of {FILES} files…"));
    let ws = dir.join("ws");
    for i in 0..FILES {
        let sub = ws.join(format!("d{}", i / 20));
        fs_err::create_dir_all(&sub)?;
        fs_err::write(sub.join(format!("f{i}.txt")), format!("file {i}\n"))?;
    }
    for args in
        [&["init", "-q"][..], &["add", "-A"], &["-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "x"]]
    {
        run(plan.env.command("git", &ws).args(args))?;
    }
    let python = std::env::var_os("WS_BENCH_PYTHON").unwrap_or_else(|| "python3".into());
    let package = Path::new(env!("CARGO_MANIFEST_DIR")).join("../python");
    let mut driver = plan
        .env
        .command(&python, &ws)
        .args(["-c", DRIVER])
        .arg(&ws)
        .env("PYTHONPATH", &package)
        .env("WS_BINARY", plan.ws_bin)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| Error::new(format!("cannot start {}: {e}", python.to_string_lossy())))?;
    let mut to_driver = driver.stdin.take().ok_or_else(|| Error::new("no stdin"))?;
    let mut from_driver = BufReader::new(driver.stdout.take().ok_or_else(|| Error::new("no stdout"))?);
    let mut ask = |what: &str| -> Result<(f64, f64)> {
        writeln!(to_driver, "{what}")?;
        let mut line = String::new();
        from_driver.read_line(&mut line)?;
        let mut numbers = line.split_whitespace().map(str::parse::<f64>);
        match (numbers.next(), numbers.next()) {
            (Some(Ok(wall)), Some(Ok(cpu))) => Ok((wall, cpu)),
            _ => Err(Error::new("the Python driver failed (its error is above)")),
        }
    };
    // Sessions of `true` change nothing (closed at once): every run starts
    // from the same state.
    let runs = plan.runs.max(10);
    let (mut py_wall, mut cli_wall, mut py_cpu, mut cli_cpu) =
        (Sample::empty(), Sample::empty(), Sample::empty(), Sample::empty());
    for i in 0..=runs {
        check_interrupted()?;
        let (p, c) = if i % 2 == 0 {
            let c = ask("cli")?;
            (ask("py")?, c)
        } else {
            let p = ask("py")?;
            (p, ask("cli")?)
        };
        let what = if i == 0 { "warm-up".to_string() } else { format!("run {i}/{runs}") };
        progress(
            GROUP,
            &format!(
                "{what}: Workspace.run {:.1} ms ({:.1} ms CPU), ws session start {:.1} ms ({:.1} ms CPU)",
                p.0 * 1e3,
                p.1 * 1e3,
                c.0 * 1e3,
                c.1 * 1e3
            ),
        );
        py_wall.record(i, p.0);
        py_cpu.record(i, p.1);
        cli_wall.record(i, c.0);
        cli_cpu.record(i, c.1);
    }
    drop(to_driver);
    let _ = driver.wait();
    let row = |what: &str, ws: Sample, baseline: Sample| Row {
        fs: GROUP.into(),
        measurement: format!("`Workspace.run([\"true\"])` from Python, {what}, committed {FILES}-file workspace"),
        ws,
        baseline_name: "ws session start -- true".into(),
        baseline: Some(baseline),
        target: Target::Ratio(1.1),
    };
    Ok(vec![row("wall time", py_wall, cli_wall), row("CPU time", py_cpu, cli_cpu)])
}
