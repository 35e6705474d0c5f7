//! Errors, the hermetic environment for child processes, running and timing commands.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Error(String);

impl Error {
    pub fn new(msg: impl Into<String>) -> Error {
        Error(msg.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        // fs-err's io errors already name the path.
        Error(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, Error>;

static INTERRUPTED: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// Turns SIGINT/SIGTERM/SIGHUP into a flag checked between steps, so that an
/// interrupted run still unwinds through the guards that unmount the images.
pub fn install_signal_flag() -> Result<()> {
    let flag = INTERRUPTED.get_or_init(|| Arc::new(AtomicBool::new(false)));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP] {
        signal_hook::flag::register(sig, Arc::clone(flag))
            .map_err(|e| Error::new(format!("cannot install a handler for signal {sig}: {e}")))?;
    }
    Ok(())
}

pub fn check_interrupted() -> Result<()> {
    match INTERRUPTED.get() {
        Some(flag) if flag.load(Ordering::Relaxed) => Err(Error::new("interrupted")),
        _ => Ok(()),
    }
}

/// The environment every child process gets: nothing of the caller's but PATH.
#[derive(Debug, Clone)]
pub struct Env {
    pub home: PathBuf,
    path: OsString,
}

impl Env {
    pub fn new(home: PathBuf) -> Env {
        let path = std::env::var_os("PATH")
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
        Env { home, path }
    }

    /// A command with a scrubbed environment (git hermetic: no system or
    /// global config), running in `cwd`.
    pub fn command(&self, program: impl AsRef<OsStr>, cwd: &Path) -> Command {
        let mut c = Command::new(program);
        c.current_dir(cwd)
            .env_clear()
            .env("PATH", &self.path)
            .env("HOME", &self.home)
            .env("LC_ALL", "C")
            .env("NO_COLOR", "1")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .stdin(Stdio::null());
        c
    }
}

/// `program arg arg…` for messages, shortened when long.
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        let a = a.to_string_lossy();
        if a.is_empty() || a.contains([' ', '\'', '"', '$', ';']) {
            s.push('\'');
            s.push_str(&a.replace('\'', "'\\''"));
            s.push('\'');
        } else {
            s.push_str(&a);
        }
    }
    if s.chars().count() > 240 {
        s = s.chars().take(240).collect::<String>() + "…";
    }
    s
}

fn tail(bytes: &[u8], max_lines: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(max_lines);
    lines[start..].join("\n")
}

/// Runs `cmd` with its output captured, and returns its wall time (spawn to
/// exit) and output; a non-zero exit is an error carrying its stderr.
pub fn run_timed(cmd: &mut Command) -> Result<(Duration, Output)> {
    check_interrupted()?;
    let start = Instant::now();
    let out = cmd.output().map_err(|e| Error::new(format!("cannot run `{}`: {e}", describe(cmd))))?;
    let elapsed = start.elapsed();
    check_interrupted()?;
    if !out.status.success() {
        let cwd = cmd.get_current_dir().map(|d| d.display().to_string()).unwrap_or_else(|| ".".into());
        let mut msg = format!("`{}` (in {cwd}) failed: {}", describe(cmd), out.status);
        let stderr = tail(&out.stderr, 30);
        let stdout = tail(&out.stdout, 10);
        if !stderr.is_empty() {
            msg.push_str(&format!("\n--- stderr ---\n{stderr}"));
        }
        if !stdout.is_empty() {
            msg.push_str(&format!("\n--- stdout ---\n{stdout}"));
        }
        return Err(Error::new(msg));
    }
    Ok((elapsed, out))
}

pub fn run(cmd: &mut Command) -> Result<Output> {
    run_timed(cmd).map(|(_, out)| out)
}

/// Flushes dirty pages so that one run's writeback does not land in the next
/// run's time. The page cache stays warm.
pub fn sync(env: &Env) -> Result<()> {
    run(&mut env.command("sync", Path::new("/"))).map(|_| ())
}

pub fn human_bytes(n: u64) -> String {
    const MIB: u64 = 1 << 20;
    if n >= MIB { format!("{} MiB", n / MIB) } else { format!("{n} B") }
}
