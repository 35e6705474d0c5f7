//! Part of the `hooks` group: the pre-commit hook's own index reader against
//! `gix-index`, the maintained reader the issue asks for unless it misses a
//! hook target by more than 1 ms.
//!
//! Timed in this process, on the bench repository's index and on one of
//! 200,000 entries made with `git update-index --index-info` (what the
//! `scale` group's larger tree stages): the hook's reader against
//! `gix_index::File::at` (checksum not verified, as the hook's reader does
//! not; one thread, as a hook has). Target: gix at most 1 ms slower. Then
//! the hook's hostile index fixtures are given to both, each on its own
//! thread with a time limit: the time, and how much the process's peak RSS
//! grew (fixtures run smallest first, so a growth is that fixture's).

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
            measurement: format!("index read ({want} entries) by gix-index 0.58"),
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

/// Reads `path` with `read` on its own thread: what it said, how long it
/// took (or that it hung), and the growth of the peak RSS.
fn attempt(path: &Path, read: fn(&Path) -> String) -> String {
    let before = peak_kib();
    let (tx, rx) = std::sync::mpsc::channel();
    let p = path.to_path_buf();
    let t = Instant::now();
    // A hung reader's thread is left behind: the bench ends with the process.
    std::thread::spawn(move || {
        let said = std::panic::catch_unwind(|| read(&p)).unwrap_or_else(|_| "panicked".into());
        let _ = tx.send(said);
    });
    match rx.recv_timeout(LIMIT) {
        Ok(said) => format!(
            "{said} in {:.1} ms, peak RSS +{} MiB",
            t.elapsed().as_secs_f64() * 1e3,
            peak_kib().saturating_sub(before) / 1024
        ),
        Err(_) => format!("HUNG (still reading after {} s)", LIMIT.as_secs()),
    }
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
        let hook = attempt(&f, |p| match ours(p) {
            Ok(Some(n)) => format!("{n} entries"),
            Ok(None) => "handed to git".into(),
            Err(e) => format!("error ({e})"),
        });
        let g = attempt(&f, |p| match gix(p) {
            Ok(n) => format!("{n} entries"),
            Err(e) => format!("refused ({})", e.lines().next().unwrap_or("")),
        });
        let line = format!("hostile index {name}: hook's reader {hook}; gix-index {g}");
        progress(GROUP, &line);
        notes.borrow_mut().push(line);
    }
    Ok(())
}
