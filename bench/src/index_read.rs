//! Part of the `hooks` group: the pre-commit hook's own index reader against
//! `gix-index`, the maintained reader the issue asks for unless it misses a
//! hook target by more than 1 ms, or cannot read hostile bytes safely.
//!
//! Timed in this process, on the bench repository's index and on one of
//! 200,000 entries made with `git update-index --index-info` (what the
//! `scale` group's larger tree stages): the hook's reader against
//! `gix_index::File::at` (checksum not verified, as the hook's reader does
//! not; one thread, as a hook has). Target: gix at most 1 ms slower. Then
//! the hook's hostile index fixtures (`hooks/tests/corpus/index/`, and a
//! FIFO) are given to both, each read in a process of its own (this program
//! again, as `ws-bench __read-index hook|gix PATH`) with a time limit: what
//! it said, how long it took, its peak RSS, or how it died (a reader that
//! overflows its stack aborts the whole process, so it cannot be a thread
//! of the bench).

use std::cell::RefCell;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::measure::{Plan, progress};
use crate::report::{Row, Sample, Target};
use crate::util::{Error, Result, run};

const GROUP: &str = "hooks";
/// A fixture still being read after this is reported as a hang.
const LIMIT: Duration = Duration::from_secs(10);

fn gix_options() -> gix_index::decode::Options {
    gix_index::decode::Options { thread_limit: Some(1), ..Default::default() }
}

/// Entries read by the hook's reader (`None`: it hands the index to git).
fn ours(path: &Path) -> std::io::Result<Option<usize>> {
    ws_hooks::read_index_entries(path)
}

fn gix(path: &Path) -> std::result::Result<usize, String> {
    gix_index::File::at(path, gix_index::hash::Kind::Sha1, true, gix_options())
        .map(|f| f.entries().len())
        .map_err(|e| e.to_string())
}

/// Rows for the indexes of `repo` and of a 200,000-entry repository made in `dir`.
pub fn rows(plan: &Plan<'_>, repo: &Path, dir: &Path, notes: &RefCell<Vec<String>>) -> Result<Vec<Row>> {
    let big = dir.join("index-200k");
    progress(GROUP, "an index of 200,000 entries (git update-index --index-info)…");
    synthetic_index(plan, &big, 200_000)?;
    let mut rows = Vec::new();
    for index in [repo.join(".git/index"), big.join(".git/index")] {
        let want = ours(&index)?.ok_or_else(|| Error::new(format!("the hook's reader refused {}", index.display())))?;
        let got = gix(&index).map_err(|e| Error::new(format!("gix-index refused {}: {e}", index.display())))?;
        if got != want {
            return Err(Error::new(format!("{}: gix-index read {got} entries, the hook {want}", index.display())));
        }
        let (mut hook, mut g) = (Sample::empty(), Sample::empty());
        for i in 0..=plan.runs.max(20) {
            let t = Instant::now();
            std::hint::black_box(ours(&index)?);
            hook.record(i, t.elapsed().as_secs_f64());
            let t = Instant::now();
            std::hint::black_box(gix(&index).map_err(Error::new)?);
            g.record(i, t.elapsed().as_secs_f64());
        }
        progress(
            GROUP,
            &format!(
                "index of {want} entries: hook's reader {:.2} ms, gix-index {:.2} ms",
                hook.median() * 1e3,
                g.median() * 1e3
            ),
        );
        rows.push(Row {
            fs: GROUP.into(),
            measurement: format!("index read ({want} entries) by gix-index 0.59"),
            ws: g,
            baseline_name: "the hook's own index reader".into(),
            baseline: Some(hook),
            target: Target::AddedMs(1.0),
        });
    }
    hostile(dir, notes)?;
    Ok(rows)
}

/// A repository whose index stages `n` paths (one blob), in 100 directories.
fn synthetic_index(plan: &Plan<'_>, dir: &Path, n: usize) -> Result<()> {
    fs_err::create_dir_all(dir)?;
    run(plan.env.command("git", dir).args(["init", "-q"]))?;
    let blob = run(plan.env.command("git", dir).args(["hash-object", "-w", "--stdin"]))?;
    let blob = String::from_utf8_lossy(&blob.stdout).trim().to_owned();
    let mut list = String::with_capacity(n * 80);
    for i in 0..n {
        list.push_str(&format!("100644 {blob}\td{:02}/f{i:06}.txt\n", i % 100));
    }
    let mut c = plan.env.command("git", dir);
    c.args(["update-index", "--index-info"]).stdin(std::process::Stdio::piped());
    let mut child = c.spawn().map_err(|e| Error::new(format!("cannot run git update-index: {e}")))?;
    child.stdin.take().map(|mut s| s.write_all(list.as_bytes())).transpose()?;
    let status = child.wait()?;
    if !status.success() {
        return Err(Error::new(format!("git update-index --index-info failed: {status}")));
    }
    Ok(())
}

/// The process's peak RSS so far, in KiB.
fn peak_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// `ws-bench __read-index hook|gix PATH`: one reader on one file, in a
/// process of its own; prints what it said and its peak RSS in KiB, a tab
/// between. `None` when these are not the arguments.
pub fn child(args: &[std::ffi::OsString]) -> Option<std::process::ExitCode> {
    let [_, mode, reader, path] = args else { return None };
    if mode != "__read-index" {
        return None;
    }
    let path = Path::new(path);
    let said = match reader.to_str() {
        Some("hook") => match ours(path) {
            Ok(Some(n)) => format!("{n} entries"),
            Ok(None) => "handed to git".into(),
            Err(e) => format!("error ({e})"),
        },
        Some("gix") => match gix(path) {
            Ok(n) => format!("{n} entries"),
            Err(e) => format!("refused ({})", e.lines().next().unwrap_or("")),
        },
        _ => return Some(std::process::ExitCode::FAILURE),
    };
    println!("{said}\t{}", peak_kib());
    Some(std::process::ExitCode::SUCCESS)
}

/// Reads `path` with `reader` (`hook` or `gix`) in a child process: what it
/// said, how long it took and its peak RSS, or that it hung or died.
fn attempt(path: &Path, reader: &str) -> Result<String> {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    let exe = std::env::current_exe().map_err(|e| Error::new(format!("cannot find this executable's path: {e}")))?;
    let t = Instant::now();
    let mut child = std::process::Command::new(exe)
        .arg("__read-index")
        .arg(reader)
        .arg(path)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| Error::new(format!("cannot start a reader process: {e}")))?;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if t.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(format!("HUNG (still reading after {} s)", LIMIT.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let (mut out, mut err) = (String::new(), String::new());
    child.stdout.take().map(|mut s| s.read_to_string(&mut out)).transpose()?;
    child.stderr.take().map(|mut s| s.read_to_string(&mut err)).transpose()?;
    Ok(match (status.signal(), out.trim_end().split_once('\t')) {
        (None, Some((said, kib))) if status.success() => {
            let mib = kib.parse::<u64>().unwrap_or(0) / 1024;
            format!("{said} in {ms:.1} ms, peak RSS {mib} MiB")
        }
        (Some(signal), _) => {
            let why = err.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("").trim();
            format!("DIED (signal {signal}) after {ms:.1} ms: {why}")
        }
        _ => format!("failed ({status}): {}", err.trim()),
    })
}

/// The hook's hostile index fixtures (as in `hooks/tests/corpus/index/`),
/// given to both readers.
fn hostile(dir: &Path, notes: &RefCell<Vec<String>>) -> Result<()> {
    let fixtures = dir.join("hostile-indexes");
    fs_err::create_dir_all(&fixtures)?;
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hooks/tests/corpus/index");
    let mut files: Vec<_> = fs_err::read_dir(&corpus)?.flatten().map(|e| e.path()).collect();
    files.sort_by_key(|p| p.metadata().map_or(0, |m| m.len()));
    // A FIFO in place of the index: opening it blocks until a writer comes.
    let fifo = fixtures.join("fifo");
    run(std::process::Command::new("mkfifo").arg(&fifo))?;
    files.push(fifo);
    for f in files {
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let hook = attempt(&f, "hook")?;
        let g = attempt(&f, "gix")?;
        let line = format!("hostile index {name}: hook's reader {hook}; gix-index {g}");
        progress(GROUP, &line);
        notes.borrow_mut().push(line);
    }
    Ok(())
}
