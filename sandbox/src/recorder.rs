//! The write recorder: a process in the session's PID namespace that reads
//! fanotify events for the workspace's filesystem and streams the session's
//! writes to the supervisor.
//!
//! ```text
//! supervisor ──pipe (fd in LaunchSpec)──▶ launcher ──▶ init (PID 1) ──spawns──▶ ws __sandbox-record
//!     ▲                                                   │ stdin: closed = stop
//!     └──────────── JSON lines (Message) on its stdout ───┘ stderr: "ready" once marked
//! ```
//! Attribution is race-free because fanotify reports each writer's pid as
//! seen from the *reader's* PID namespace: writers outside the session (the
//! user's editor, the supervisor writing the store) report pid 0. No `/proc`
//! walk, no window in which a short-lived process is missed.
//!
//! # Security
//! The recorder runs unconfined (it needs CAP_SYS_ADMIN for the mark and
//! CAP_DAC_READ_SEARCH for `open_by_handle_at`) but it only reads: events,
//! `/proc/PID/exe` links and directory handles. It is not dumpable, so a
//! process of the session cannot open its fds through `/proc`, and Landlock
//! keeps the session from ptracing or signalling processes outside its domain.
//! The pipe to the supervisor is never inherited by the command: init hands
//! it to the recorder and keeps no copy. A recorder that is killed ends its
//! stream without [`Message::Done`], which the supervisor records as a gap.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::io::{BufRead, Write};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use serde::{Deserialize, Serialize};

use crate::fanotify;

/// The hidden argument `ws` answers to as the recorder.
pub const RECORDER_ARG: &str = "__sandbox-record";

/// The byte init writes to the recorder's stdin to ask for [`Message::Synced`]
/// (the recorder service passes on the same byte from its client).
pub const SYNC: u8 = b'S';

/// The hidden argument of [`release`]'s helper, which exits at once.
pub const RELEASE_ARG: &str = "__sandbox-release";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecorderSpec {
    /// The write end of the supervisor's pipe, inherited by the launcher and init.
    pub fd: i32,
    pub workspace: PathBuf,
    /// The fanotify group the supervisor made ([`new_group`]), inherited
    /// like `fd`. The supervisor keeps a copy, so the recorder's exit is not
    /// the group's last close, which waits for the kernel to free its mark.
    #[serde(default)]
    pub group: Option<i32>,
    /// `ws learn`: also record every path the session opens for reading,
    /// writing or executing, on every filesystem that can be watched.
    #[serde(default)]
    pub learn: bool,
}

/// What the recorder tells the supervisor, one JSON object per line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "m", rename_all = "snake_case")]
pub enum Message {
    /// The mark is in place; every later write is seen.
    Ready,
    /// No recording: the mark could not be placed (`what`: `writes` unless
    /// said; the recorder service says so of `denials` too).
    Unavailable {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        what: Option<String>,
        reason: String,
    },
    /// A write by a process of the session; paths relative to the workspace.
    Write {
        time_ms: u64,
        pid: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exe: Option<String>,
        ops: Vec<Op>,
        path: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<String>,
        #[serde(default)]
        dir: bool,
    },
    /// A workspace path written by a process outside the session (reported
    /// once; again if it later names a directory, `dir`).
    Outside {
        path: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        dir: bool,
    },
    /// The link count of a file that still exists changed (a hard link was
    /// made or removed, anywhere on the filesystem): its names are not in
    /// the event, and one may be in the workspace. Reported once per inode.
    Inode { dev: u64, ino: u64 },
    /// An event of the workspace's filesystem the recorder could not turn
    /// into a path with certainty (a directory gone before its event was
    /// read, an event of a kind it does not expect). The record of writes is
    /// still what it saw, but not proof that nothing else changed.
    Unmapped { reason: String },
    /// Sent when init asks ([`Running::end`]): every process of the session
    /// is gone and every event queued until then has been read and sent.
    Synced,
    /// Events were lost from here on (`what`: `writes` unless said).
    Lost {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        what: Option<String>,
        reason: String,
    },
    /// A Landlock denial of the session's (from the recorder service, which
    /// reads the kernel's audit records for sessions not run as root).
    Denial {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exe: Option<String>,
        access: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        object: Option<String>,
    },
    /// `ws learn`: the filesystems whose accesses are recorded, and those
    /// that cannot be (with the reason).
    Watching { filesystems: Vec<String>, skipped: Vec<String> },
    /// `ws learn`: how often the session accessed a path (absolute): opened
    /// it for reading (a directory: listed it), executed it, or wrote it (a
    /// file written, or a directory an entry was made in or removed from).
    /// Sent once per path and access, before [`Message::Done`].
    Accessed { path: String, access: crate::policy::Access, count: u64 },
    /// The stream ended normally after draining every queued event.
    Done { events: u64 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Create,
    Modify,
    CloseWrite,
    Delete,
    Rename,
    Attrib,
}

/// The operations an event mask stands for, in a fixed order.
pub fn ops(mask: u64) -> Vec<Op> {
    [
        (libc::FAN_CREATE, Op::Create),
        (libc::FAN_MODIFY, Op::Modify),
        (libc::FAN_CLOSE_WRITE, Op::CloseWrite),
        (libc::FAN_DELETE, Op::Delete),
        (libc::FAN_RENAME, Op::Rename),
        (libc::FAN_ATTRIB, Op::Attrib),
    ]
    .into_iter()
    .filter(|(bit, _)| mask & bit != 0)
    .map(|(_, op)| op)
    .collect()
}

/// In the launcher when it runs the command without a PID namespace: no
/// recorder will run, and the command must not inherit the pipe or the group.
pub fn close_on_exec(spec: Option<&RecorderSpec>) {
    if let Some(s) = spec {
        let _ = take_fd(s.fd);
        let _ = s.group.and_then(take_fd);
    }
}

/// In the supervisor: the write recorder's fanotify group, made here so that
/// this process holds it too (see [`RecorderSpec::group`]). Creating it
/// needs CAP_SYS_ADMIN, as marking it does.
pub fn new_group() -> std::io::Result<OwnedFd> {
    fanotify::Group::new().map(OwnedFd::from)
}

/// In the supervisor once the recorder is done: closes its copy of the group
/// in a helper process nobody waits for. The group's last close waits for
/// the kernel to free the mark the recorder removed (an SRCU grace period,
/// up to tens of ms), which would otherwise delay the end of `ws`. Closes it
/// here when the helper cannot start.
pub fn release(group: OwnedFd) {
    let Ok(me) = std::env::current_exe() else { return };
    release_by(group, &me);
}

/// [`release`], the helper being `program` (a `ws` binary, or any program
/// that answers [`RELEASE_ARG`] by exiting): for a supervisor that is not
/// itself such a program.
pub fn release_by(group: OwnedFd, program: &std::path::Path) {
    let me = program;
    if rustix::io::fcntl_setfd(&group, rustix::io::FdFlags::empty()).is_err() {
        return;
    }
    // Inherited by the helper alone: no other thread of the supervisor
    // starts processes once the session has ended.
    let helper =
        Command::new(me).arg(RELEASE_ARG).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn();
    drop(group);
    // Not waited for (its exit is the wait): should this process end first,
    // it is reaped as an orphan, by init or the nearest subreaper.
    drop(helper);
}

#[allow(unsafe_code)]
pub(crate) fn take_fd(fd: i32) -> Option<OwnedFd> {
    if rustix::io::fcntl_getfd(
        // SAFETY: only asks whether `fd` is open; borrowed for this call alone.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
    )
    .is_err()
    {
        return None;
    }
    // SAFETY: the supervisor passed this fd number down for the recorder
    // alone; nothing else in this process uses or closes it, so this becomes
    // its only owner (dropping it closes it).
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The recorder as init sees it.
#[derive(Debug)]
pub struct Running {
    child: Child,
    stop: Option<ChildStdin>,
}

/// The recorder while it places its mark.
#[derive(Debug)]
pub struct Starting {
    child: Child,
}

/// In init, first of all: starts the recorder with the pipe as its stdout.
/// It places its mark while init sets up the mounts; [`Starting::ready`]
/// waits for it. `None` when it could not start (the supervisor then sees
/// the stream end without a word and records that).
pub fn spawn(spec: &RecorderSpec) -> Option<Starting> {
    // init's copy of the group closes when this returns: only the recorder
    // inherits it, never the command.
    let group = spec.group.and_then(take_fd);
    let out = take_fd(spec.fd)?;
    let me = std::env::current_exe().ok()?;
    let json = serde_json::to_string(spec).ok()?;
    let child = Command::new(me)
        .arg(RECORDER_ARG)
        .arg(json)
        .stdin(Stdio::piped())
        .stdout(Stdio::from(out))
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    drop(group);
    Some(Starting { child })
}

impl Starting {
    /// Waits until the mark is in place (before the command starts). `None`
    /// when the recorder could not place it (it has told the supervisor why).
    pub fn ready(mut self) -> Option<Running> {
        let mut status = String::new();
        if let Some(err) = self.child.stderr.take() {
            let _ = std::io::BufReader::new(err).read_line(&mut status);
        }
        if status.trim() != "ready" {
            let _ = self.child.wait();
            return None;
        }
        let stop = self.child.stdin.take();
        Some(Running { child: self.child, stop })
    }
}

impl Running {
    /// In init once the command has exited: ends every other process of the
    /// session (none may write while the supervisor looks; killed rather
    /// than stopped, so that every file they held is closed and its
    /// `FAN_CLOSE_WRITE` queued), reaps them, and then asks the recorder to
    /// read every queued event and say so ([`Message::Synced`]). When they
    /// do not all end within `patience`, they are left stopped and no sync
    /// is asked for: the supervisor then walks the whole workspace.
    pub fn end(&mut self, patience: std::time::Duration) {
        if end_session(self.child.id(), patience)
            && let Some(stop) = &mut self.stop
        {
            let _ = stop.write_all(&[SYNC]);
            let _ = stop.flush();
        }
    }

    /// In init once the command has exited: freezes what is left of the
    /// session (so nothing writes unseen between the drain and the end),
    /// lets the recorder drain every queued event, and waits for it.
    pub fn finish(mut self) {
        self.freeze();
        drop(self.stop.take());
        let _ = self.child.wait();
    }

    /// In init: stops every other process of the session (they may not
    /// write while the supervisor looks), except the recorder.
    pub fn freeze(&self) {
        freeze_session(Some(self.child.id()));
    }
}

/// In init (PID 1 of the session's PID namespace, with the namespace's own
/// `/proc`): stops every other process of the session but `spare` (the
/// recorder). Each is signalled by pid, never with `kill(-1)`: the recorder
/// is outside the session's Landlock domain, so a signal reaching for it is
/// a denial the kernel would log for every session. Listed again until a
/// pass finds no new process, so a child forked meanwhile is stopped too.
pub fn freeze_session(spare: Option<u32>) {
    use rustix::process::{Pid, Signal, kill_process};
    let mut stopped: HashSet<u32> = HashSet::new();
    loop {
        let Ok(dir) = std::fs::read_dir("/proc") else { return };
        let pids: Vec<u32> = dir
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .filter(|&p| p != 1 && Some(p) != spare && !stopped.contains(&p) && !entered_from_outside(p))
            .collect();
        if pids.is_empty() {
            return;
        }
        for p in pids {
            if let Some(pid) = Pid::from_raw(p as i32) {
                let _ = kill_process(pid, Signal::STOP);
            }
            stopped.insert(p);
        }
    }
}

/// In init, for a session the recorder service records: ends every other
/// process of the session but the service's recorder ([`end_session`]).
/// `false`: some are left, stopped.
pub fn end_others(patience: std::time::Duration) -> bool {
    end_session(0, patience)
}

/// In init: kills every other process of the session but `spare` (the
/// recorder) and reaps them, until none is left or `patience` runs out
/// (`false`; whatever is left is stopped). A process is gone from `/proc`
/// only once reaped, and by then it has closed every file it held.
fn end_session(spare: u32, patience: std::time::Duration) -> bool {
    use rustix::process::{Pid, Signal, WaitOptions, kill_process};
    let deadline = std::time::Instant::now() + patience;
    loop {
        let Ok(dir) = std::fs::read_dir("/proc") else { return false };
        let pids: Vec<u32> = dir
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .filter(|&p| p != 1 && p != spare && !entered_from_outside(p))
            .collect();
        if pids.is_empty() {
            return true;
        }
        if std::time::Instant::now() > deadline {
            freeze_session(Some(spare));
            return false;
        }
        for &p in &pids {
            if let Some(pid) = Pid::from_raw(p as i32) {
                let _ = kill_process(pid, Signal::KILL);
            }
        }
        // Orphans are init's to reap; the recorder, a child too, is spared
        // by waiting for the others by pid.
        let mut reaped = false;
        for &p in &pids {
            if let Some(pid) = Pid::from_raw(p as i32)
                && let Ok(Some(_)) = rustix::process::waitpid(Some(pid), WaitOptions::NOHANG)
            {
                reaped = true;
            }
        }
        if !reaped {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}

/// Whether a process of the session's PID namespace was put there from
/// outside (the recorder service's recorder): its parent is outside the
/// namespace, so it has none here. Every process of the session descends
/// from init (PID 1), which adopts orphans.
fn entered_from_outside(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // pid (comm) state ppid …: comm may hold spaces and parentheses.
    let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
    ppid == Some(0)
}

/// The recorder process (`ws __sandbox-record SPEC`). Returns its exit code.
pub fn run(spec_json: &str) -> i32 {
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
    // A signal for the whole process group (`timeout`, a closed terminal,
    // Ctrl-C) is meant for the command; this process must outlive it to
    // drain the last events, and ends when init closes its stdin.
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP, signal_hook::consts::SIGINT] {
        let _ = signal_hook::flag::register(sig, std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)));
    }
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let mut status = std::io::stderr();
    let started = serde_json::from_str::<RecorderSpec>(spec_json)
        .map_err(|e| format!("bad recorder specification: {e}"))
        .and_then(|spec| Recorder::new(&spec.workspace, spec.group.and_then(take_fd)).map(|r| (r, spec.learn)));
    let (mut rec, learn) = match started {
        Ok(r) => r,
        Err(reason) => {
            send(&mut out, &Message::Unavailable { what: None, reason });
            let _ = out.flush();
            let _ = writeln!(status, "failed");
            return 0;
        }
    };
    let mut access = learn.then(Accesses::watch);
    if let Some(a) = &access {
        send(&mut out, &Message::Watching { filesystems: a.watched.clone(), skipped: a.skipped.clone() });
    }
    send(&mut out, &Message::Ready);
    let _ = out.flush();
    let _ = writeln!(status, "ready");
    let stdin = std::io::stdin();
    let mut buf = vec![0u8; 256 << 10];
    let mut synced = false;
    loop {
        let (fan_ready, said) = {
            use rustix::event::{PollFd, PollFlags};
            let mut fds = vec![PollFd::new(&rec.group, PollFlags::IN)];
            fds.extend(access.iter().flat_map(|a| a.groups.iter()).map(|g| PollFd::new(&g.group, PollFlags::IN)));
            fds.push(PollFd::from_borrowed_fd(stdin.as_fd(), PollFlags::IN));
            match rustix::event::poll(&mut fds, None) {
                Ok(_) => {
                    let (last, rest) = fds.split_last().expect("stdin is polled");
                    (rest.iter().any(|f| !f.revents().is_empty()), !last.revents().is_empty())
                }
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => {
                    send(&mut out, &Message::Lost { what: None, reason: format!("cannot wait for events: {e}") });
                    return 1;
                }
            }
        };
        let mut said = said;
        if fan_ready && !said {
            // Let events gather: bigger batches cost fewer reads, and the
            // kernel merges repeated events on a file (create, modify,
            // close) that are still queued. A word from init cuts the wait
            // short: the session's end waits for this process.
            use rustix::event::{PollFd, PollFlags, Timespec};
            let mut fds = [PollFd::from_borrowed_fd(stdin.as_fd(), PollFlags::IN)];
            let gather = Timespec { tv_sec: 0, tv_nsec: 10_000_000 };
            said = matches!(rustix::event::poll(&mut fds, Some(&gather)), Ok(n) if n > 0);
        }
        let (stop, sync) = if said { read_word(&stdin) } else { (false, false) };
        if fan_ready || stop || sync {
            let drained = rec.drain(&mut buf, &mut out).and_then(|_| match &mut access {
                Some(a) => a.drain(&mut buf),
                None => Ok(()),
            });
            if let Err(e) = drained {
                send(&mut out, &Message::Lost { what: None, reason: format!("cannot read events: {e}") });
                let _ = out.flush();
                return 1;
            }
        }
        if sync && !synced {
            // Init asks once every process of the session is gone: the
            // queue held all their events, and the drain above read it dry.
            synced = true;
            send(&mut out, &Message::Synced);
            let _ = out.flush();
        }
        if stop {
            // The session's processes are stopped or gone: everything they
            // wrote is queued, and was just drained.
            if let Some(a) = access.take() {
                for ((path, access), count) in a.counts {
                    send(&mut out, &Message::Accessed { path: lossy(&path), access, count });
                }
            }
            // The group outlives this process in the supervisor; without its
            // mark, the kernel frees the mark off every critical path.
            let _ = rec.group.unmark_filesystem(&rec.root, fanotify::WRITE_EVENTS);
            send(&mut out, &Message::Done { events: rec.events });
            let _ = out.flush();
            return 0;
        }
    }
}

/// What init said on stdin: `(stop, sync)`. End of file (init closed it,
/// or died) is the stop; the byte [`SYNC`] asks for [`Message::Synced`].
fn read_word(stdin: &std::io::Stdin) -> (bool, bool) {
    let mut word = [0u8; 16];
    loop {
        match rustix::io::read(stdin.as_fd(), &mut word) {
            Ok(0) => return (true, false),
            Ok(n) => return (false, word[..n].contains(&SYNC)),
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return (true, false),
        }
    }
}

fn send(out: &mut impl Write, m: &Message) {
    if let Ok(mut line) = serde_json::to_vec(m) {
        line.push(b'\n');
        let _ = out.write_all(&line);
    }
}

struct Recorder {
    group: fanotify::Group,
    root: PathBuf,
    mount: OwnedFd,
    /// The workspace root's handle: always known, as the empty path.
    root_handle: Option<fanotify::Handle>,
    /// Directory handle → path relative to the workspace, as the kernel
    /// last said. Asked when first seen, not listed up front (so the
    /// recorder's start costs nothing per directory), and forgotten when a
    /// directory is moved in, out or within the workspace: each path is
    /// where the directory was at its event or later, never before.
    here: HashMap<fanotify::Handle, PathBuf>,
    /// Directories the kernel placed outside the workspace (forgotten when
    /// one is moved into it).
    elsewhere: HashSet<fanotify::Handle>,
    /// Events in directories removed before they were read.
    unplaced: Unplaced<Pending>,
    /// Outside writes already reported (and whether as a directory's arrival).
    outside: HashSet<(PathBuf, bool)>,
    /// Files whose link count changed, already looked at.
    inodes_seen: HashSet<fanotify::Handle>,
    events: u64,
    /// Events that could not be kept waiting (more than [`Unplaced::LIMIT`]): said once.
    overflowed: bool,
}

/// Directories placed at most (beyond, all are asked again).
const PLACES_KEPT: usize = 65_536;

/// An event waiting for its directory's place, and what it becomes.
enum Pending {
    Write { time_ms: u64, pid: u32, exe: Option<String>, ops: Vec<Op>, name: Vec<u8>, dir: bool },
    Outside { name: Vec<u8>, whole: bool },
}

impl Recorder {
    fn new(workspace: &Path, inherited: Option<OwnedFd>) -> Result<Recorder, String> {
        let group = match inherited {
            // Close-on-exec again: nothing the recorder starts may have it.
            Some(fd) => rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC)
                .map(|_| fanotify::Group::from_fd(fd))
                .map_err(|e| format!("the inherited fanotify group: {e}"))?,
            None => fanotify::Group::new().map_err(|e| format!("fanotify_init: {e}"))?,
        };
        group.mark_filesystem(workspace, fanotify::WRITE_EVENTS).map_err(|e| match e.raw_os_error() {
            Some(libc::EXDEV) => format!(
                "{} is on a btrfs subvolume, which fanotify can only watch through the filesystem's top-level mount",
                workspace.display()
            ),
            Some(libc::EPERM) => "watching a filesystem needs CAP_SYS_ADMIN (root)".to_owned(),
            _ => format!("cannot watch the filesystem of {}: {e}", workspace.display()),
        })?;
        let mount = rustix::fs::open(
            workspace,
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC | rustix::fs::OFlags::DIRECTORY,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| format!("cannot open {}: {e}", workspace.display()))?;
        let mut r = Recorder {
            group,
            root: workspace.to_path_buf(),
            mount,
            root_handle: fanotify::name_to_handle(workspace).ok(),
            here: HashMap::new(),
            elsewhere: HashSet::new(),
            unplaced: Unplaced::default(),
            outside: HashSet::new(),
            inodes_seen: HashSet::new(),
            events: 0,
            overflowed: false,
        };
        r.forget(true, true);
        Ok(r)
    }

    /// Forgets the places of directories in the workspace (keeping the
    /// root's), and with `elsewhere` those outside it.
    fn forget(&mut self, here: bool, elsewhere: bool) {
        if here {
            self.here.clear();
            if let Some(h) = &self.root_handle {
                self.here.insert(h.clone(), PathBuf::new());
            }
        }
        if elsewhere {
            self.elsewhere.clear();
        }
    }

    /// Where the directory `handle` is: in the workspace (its path), not in
    /// it, or removed. What the kernel cannot answer is said with `out`
    /// (the record then vouches for nothing) and taken as outside.
    fn place(&mut self, handle: &[u8], out: &mut Vec<Message>) -> Place {
        if let Some(p) = self.here.get(handle) {
            return Place::Here(p.clone());
        }
        if self.elsewhere.contains(handle) {
            return Place::Elsewhere;
        }
        match where_now(self.mount.as_fd(), handle) {
            Ok(Some(abs)) => {
                if self.here.len() + self.elsewhere.len() >= PLACES_KEPT {
                    self.forget(true, true);
                }
                match abs.strip_prefix(&self.root) {
                    Ok(p) => {
                        self.here.insert(handle.to_vec(), p.to_path_buf());
                        Place::Here(p.to_path_buf())
                    }
                    Err(_) => {
                        self.elsewhere.insert(handle.to_vec());
                        Place::Elsewhere
                    }
                }
            }
            Ok(None) => Place::Removed,
            Err(e) => {
                out.push(Message::Unmapped { reason: format!("cannot find a directory by its handle: {e}") });
                Place::Elsewhere
            }
        }
    }

    fn drain(&mut self, buf: &mut [u8], out: &mut impl Write) -> std::io::Result<()> {
        loop {
            let n = match self.group.read(buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0);
            let mut exes: HashMap<i32, Option<String>> = HashMap::new();
            let batch: Vec<fanotify::Event> = fanotify::events(&buf[..n]).collect();
            let mut messages = Vec::new();
            for ev in batch {
                self.message(&ev, now, &mut exes, &mut messages);
                for m in messages.drain(..) {
                    send(out, &m);
                }
            }
            out.flush()?;
        }
        Ok(())
    }

    fn message(
        &mut self,
        ev: &fanotify::Event<'_>,
        now: u64,
        exes: &mut HashMap<i32, Option<String>>,
        out: &mut Vec<Message>,
    ) {
        if ev.mask & libc::FAN_Q_OVERFLOW != 0 {
            out.push(Message::Lost { what: None, reason: "the fanotify event queue overflowed".into() });
            return;
        }
        let Some((dh, name)) = ev.dir else {
            out.extend(self.nameless(ev));
            return;
        };
        let is_dir = ev.mask & libc::FAN_ONDIR != 0;
        let ours = ev.pid != 0;
        if ours {
            self.events += 1;
        }
        let from = self.place(dh, out);
        let renamed = ev.mask & libc::FAN_RENAME != 0;
        let dest = match ev.new_dir {
            Some((nh, nname)) if renamed => Some((self.place(nh, out), nh, nname)),
            _ => None,
        };
        if renamed && dest.is_none() {
            out.push(Message::Unmapped { reason: "a rename event without its new name".into() });
            return;
        }
        if is_dir && (renamed || ev.mask & libc::FAN_DELETE != 0) {
            // A directory moved or removed: its name in this event places what
            // waits for it; and every path learnt below a moved one is stale.
            if let Some(t) = ev.target {
                let (parent, parent_place, last) = match &dest {
                    Some((p, nh, nname)) => (*nh, p.clone(), *nname),
                    None => (dh, from.clone(), name),
                };
                for (path, pending) in self.unplaced.named(t, parent, last, &parent_place) {
                    out.extend(self.placed(path, pending));
                }
            }
            if let Some((to, ..)) = &dest {
                // Moved from one place outside to another: nothing here moved.
                let into = matches!(to, Place::Here(_));
                self.forget(into || from != Place::Elsewhere, into);
            }
        }
        let dest = dest.map(|(p, _, nname)| p.join(nname));
        if !ours {
            self.outside_event(ev, from.join(name), dest, dh, name, is_dir, out);
            return;
        }
        let mut ops = ops(ev.mask);
        let mut to = None;
        let path = match (from.join(name), dest) {
            (from, None) => from,
            (Place::Here(f), Some(Place::Here(d))) => {
                to = Some(d);
                Place::Here(f)
            }
            // Moved into or out of the workspace (or a directory removed
            // since): a create or a delete here.
            (_, Some(Place::Here(d))) => {
                out.extend(self.write(ev, now, exes, vec![Op::Create], d, None, is_dir));
                return;
            }
            (Place::Here(f), Some(_)) => {
                ops = vec![Op::Delete];
                Place::Here(f)
            }
            // From and to no place in the workspace that is still there.
            (_, Some(_)) => return,
        };
        match path {
            Place::Here(path) => out.extend(self.write(ev, now, exes, ops, path, to, is_dir)),
            Place::Elsewhere => {}
            Place::Removed => {
                let exe = exe_of(exes, ev.pid);
                let pending =
                    Pending::Write { time_ms: now, pid: ev.pid as u32, exe, ops, name: name.to_vec(), dir: is_dir };
                self.wait(dh, pending, out);
            }
        }
    }

    /// Keeps an event of a removed directory until an event names it.
    fn wait(&mut self, dir: &[u8], pending: Pending, out: &mut Vec<Message>) {
        if !self.unplaced.wait(dir, pending) && !std::mem::replace(&mut self.overflowed, true) {
            out.push(Message::Lost {
                what: None,
                reason: format!(
                    "more than {} events in directories removed before they were read",
                    Unplaced::<Pending>::LIMIT
                ),
            });
        }
    }

    /// What a waiting event says, now that its directory is placed.
    fn placed(&mut self, dir: PathBuf, pending: Pending) -> Option<Message> {
        match pending {
            Pending::Write { time_ms, pid, exe, ops, name, dir: is_dir } => {
                Some(Message::Write { time_ms, pid, exe, ops, path: lossy(&join(&dir, &name)), to: None, dir: is_dir })
            }
            Pending::Outside { name, whole } => self.outside_once(join(&dir, &name), whole),
        }
    }

    fn outside_once(&mut self, path: PathBuf, whole: bool) -> Option<Message> {
        self.outside.insert((path.clone(), whole)).then(|| Message::Outside { path: lossy(&path), dir: whole })
    }

    /// A write by a process outside the session, placed like the session's
    /// (most of the filesystem the mark sees is not the workspace).
    #[allow(clippy::too_many_arguments)]
    fn outside_event(
        &mut self,
        ev: &fanotify::Event<'_>,
        from: Place,
        dest: Option<Place>,
        dh: &[u8],
        name: &[u8],
        is_dir: bool,
        out: &mut Vec<Message>,
    ) {
        // A directory made or moved here: what it holds came with it.
        let whole = is_dir && ev.mask & (libc::FAN_CREATE | libc::FAN_RENAME) != 0;
        if matches!(from, Place::Removed) && dest.is_none() {
            self.wait(dh, Pending::Outside { name: name.to_vec(), whole }, out);
        }
        for place in std::iter::once(from).chain(dest) {
            if let Place::Here(path) = place {
                out.extend(self.outside_once(path, whole));
            }
        }
    }

    /// An event that names no directory. The kernel sends those for a
    /// file's link count changing (`link`, `unlink`, a rename over it):
    /// its names are not in the event, so the file is named by its inode.
    fn nameless(&mut self, ev: &fanotify::Event<'_>) -> Option<Message> {
        let Some(target) = ev.target else {
            return Some(Message::Unmapped { reason: format!("an event (mask {:#x}) naming nothing", ev.mask) });
        };
        if ev.mask & !(libc::FAN_ATTRIB | libc::FAN_ONDIR) != 0 {
            return Some(Message::Unmapped { reason: format!("an event (mask {:#x}) without a name", ev.mask) });
        }
        if !self.inodes_seen.insert(target.to_vec()) {
            return None;
        }
        match fanotify::open_by_handle(self.mount.as_fd(), target) {
            Ok(fd) => match rustix::fs::fstat(&fd) {
                // No name left anywhere, or its one name outside the
                // workspace: nothing of it is in the workspace.
                Ok(st) if st.st_nlink == 0 => None,
                Ok(st)
                    if st.st_nlink == 1
                        && fanotify::checked_name(fd.as_fd()).is_some_and(|n| !n.starts_with(&self.root)) =>
                {
                    None
                }
                #[allow(clippy::unnecessary_cast)] // field widths differ between architectures
                Ok(st) => Some(Message::Inode { dev: st.st_dev as u64, ino: st.st_ino as u64 }),
                Err(e) => Some(Message::Unmapped { reason: format!("cannot stat a file whose links changed: {e}") }),
            },
            // Gone: its last name went, with an event of its own.
            Err(e) if e.raw_os_error() == Some(libc::ESTALE) || e.raw_os_error() == Some(libc::ENOENT) => None,
            Err(e) => Some(Message::Unmapped { reason: format!("cannot open a file whose links changed: {e}") }),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        ev: &fanotify::Event<'_>,
        now: u64,
        exes: &mut HashMap<i32, Option<String>>,
        ops: Vec<Op>,
        path: PathBuf,
        to: Option<PathBuf>,
        dir: bool,
    ) -> Option<Message> {
        let exe = exe_of(exes, ev.pid);
        Some(Message::Write {
            time_ms: now,
            pid: ev.pid as u32,
            exe,
            ops,
            path: lossy(&path),
            to: to.map(|t| lossy(&t)),
            dir,
        })
    }
}

/// The executable of `pid`, asked once per batch of events.
fn exe_of(exes: &mut HashMap<i32, Option<String>>, pid: i32) -> Option<String> {
    exes.entry(pid).or_insert_with(|| std::fs::read_link(format!("/proc/{pid}/exe")).ok().map(|p| lossy(&p))).clone()
}

/// Where a directory is, as far as the recorder can tell.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Place {
    /// In the workspace, at this path (relative to it).
    Here(PathBuf),
    /// Not in the workspace.
    Elsewhere,
    /// Removed: its events wait for one that names it ([`Unplaced`]).
    Removed,
}

impl Place {
    /// The place of an entry `name` of this directory.
    fn join(&self, name: &[u8]) -> Place {
        match self {
            Place::Here(d) => Place::Here(join(d, name)),
            other => other.clone(),
        }
    }
}

/// Where the directory behind `handle` is now, as this process sees it;
/// `None` once it has been removed.
fn where_now(mount: std::os::fd::BorrowedFd<'_>, handle: &[u8]) -> std::io::Result<Option<PathBuf>> {
    let fd = match fanotify::open_by_handle(mount, handle) {
        Ok(fd) => fd,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ESTALE | libc::ENOENT)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let link = std::fs::read_link(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd)))?;
    // Its links are counted after its name was read: a directory with links
    // then was not removed when it was named. (The " (deleted)" the kernel
    // appends to a removed one's name is no proof: a name may end so.)
    let st = rustix::fs::fstat(&fd)?;
    Ok((st.st_nlink > 0).then_some(link))
}

/// Events in directories removed before the recorder asked where they were
/// (a `rm -rf` is over before its first events are read). Each waits for an
/// event that names its directory: the directory's own removal or move
/// (which carries its handle), in a directory placed by then or named in
/// turn. So the record names what was written in a tree removed since,
/// under the name the tree had last. Whatever still waits at the end was in
/// a directory never named in the workspace: not the session's to record.
struct Unplaced<T> {
    waiting: HashMap<fanotify::Handle, Vec<T>>,
    /// Removed directories named in a directory removed too: that one's
    /// handle → (theirs, their name in it).
    below: HashMap<fanotify::Handle, Vec<(fanotify::Handle, Vec<u8>)>>,
    count: usize,
}

impl<T> Default for Unplaced<T> {
    fn default() -> Self {
        Unplaced { waiting: HashMap::new(), below: HashMap::new(), count: 0 }
    }
}

impl<T> Unplaced<T> {
    /// Events kept waiting at most.
    const LIMIT: usize = 1 << 20;

    /// Keeps `item` until `dir` is named; `false` (dropped) past [`Self::LIMIT`].
    fn wait(&mut self, dir: &[u8], item: T) -> bool {
        if self.count >= Self::LIMIT {
            return false;
        }
        self.count += 1;
        self.waiting.entry(dir.to_vec()).or_default().push(item);
        true
    }

    /// `dir` is named `name` in `parent`, which is at `place`: what waited
    /// for it (and for directories named below it) with their directories'
    /// paths. Should `parent` be removed too, `dir` waits for it.
    fn named(&mut self, dir: &[u8], parent: &[u8], name: &[u8], place: &Place) -> Vec<(PathBuf, T)> {
        let mut found = Vec::new();
        if !self.waiting.contains_key(dir) && !self.below.contains_key(dir) {
            return found;
        }
        let start = match place {
            Place::Removed if parent != dir => {
                self.below.entry(parent.to_vec()).or_default().push((dir.to_vec(), name.to_vec()));
                return found;
            }
            Place::Here(p) => Some(join(p, name)),
            _ => None,
        };
        let mut stack = vec![(dir.to_vec(), start)];
        while let Some((h, path)) = stack.pop() {
            let items = self.waiting.remove(&h).unwrap_or_default();
            self.count -= items.len();
            if let Some(p) = &path {
                found.extend(items.into_iter().map(|i| (p.clone(), i)));
            }
            for (child, n) in self.below.remove(&h).unwrap_or_default() {
                stack.push((child, path.as_ref().map(|p| join(p, &n))));
            }
        }
        found
    }
}

/// Filesystem types with nothing a profile names (or that cannot be watched).
const PSEUDO: &[&str] = &[
    "proc",
    "sysfs",
    "cgroup",
    "cgroup2",
    "devpts",
    "mqueue",
    "bpf",
    "tracefs",
    "debugfs",
    "securityfs",
    "pstore",
    "configfs",
    "fusectl",
    "hugetlbfs",
    "autofs",
    "binfmt_misc",
    "nsfs",
    "efivarfs",
    "selinuxfs",
    "rpc_pipefs",
];

/// Access events: what `ws learn` subscribes to on every filesystem.
const ACCESS_EVENTS: u64 = libc::FAN_OPEN
    | libc::FAN_OPEN_EXEC
    | libc::FAN_CLOSE_WRITE
    | libc::FAN_CREATE
    | libc::FAN_DELETE
    | libc::FAN_RENAME
    | libc::FAN_ONDIR;

/// `ws learn`'s access recorder: one group per watched filesystem, so that
/// each group's handles are opened through that filesystem's mount.
struct Accesses {
    groups: Vec<AccessGroup>,
    watched: Vec<String>,
    skipped: Vec<String>,
    counts: std::collections::BTreeMap<(PathBuf, crate::policy::Access), u64>,
    me: i32,
}

struct AccessGroup {
    group: fanotify::Group,
    mount: OwnedFd,
    dirs: HashMap<fanotify::Handle, Option<PathBuf>>,
}

impl Accesses {
    /// Marks every filesystem mounted here (one mount of each: the one
    /// showing its root, else the first), skipping pseudo filesystems.
    fn watch() -> Accesses {
        use std::os::unix::fs::MetadataExt;
        let mut a = Accesses {
            groups: Vec::new(),
            watched: Vec::new(),
            skipped: Vec::new(),
            counts: Default::default(),
            me: std::process::id() as i32,
        };
        let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut mounts = mountinfo(&text);
        // Whole-filesystem mounts first, so each device is watched through one.
        mounts.sort_by_key(|m| m.root != Path::new("/"));
        let mut seen = HashSet::new();
        for m in mounts {
            if PSEUDO.contains(&m.fstype.as_str()) {
                continue;
            }
            let Ok(dev) = std::fs::metadata(&m.point).map(|md| md.dev()) else { continue };
            if !seen.insert(dev) {
                continue;
            }
            let shown = format!("{} ({})", m.point.display(), m.fstype);
            let marked = fanotify::Group::new().and_then(|group| {
                group.mark_filesystem(&m.point, ACCESS_EVENTS)?;
                let mount = rustix::fs::open(
                    &m.point,
                    rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC | rustix::fs::OFlags::DIRECTORY,
                    rustix::fs::Mode::empty(),
                )?;
                Ok(AccessGroup { group, mount, dirs: HashMap::new() })
            });
            match marked {
                Ok(g) => {
                    a.groups.push(g);
                    a.watched.push(shown);
                }
                Err(e) => a.skipped.push(format!("{shown}: {e}")),
            }
        }
        a
    }

    fn drain(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
        use crate::policy::Access;
        for g in &mut self.groups {
            loop {
                let n = match g.group.read(buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                for ev in fanotify::events(&buf[..n]) {
                    if ev.mask & libc::FAN_Q_OVERFLOW != 0 {
                        return Err(std::io::Error::other("the fanotify access queue overflowed"));
                    }
                    // Not the session (0), its init (1), or this recorder.
                    if ev.pid <= 1 || ev.pid == self.me {
                        continue;
                    }
                    let Some((dh, name)) = ev.dir else { continue };
                    let Some(dir) = g.dir(dh) else { continue };
                    let path = join(&dir, name);
                    let mut hit = |p: PathBuf, acc: Access| *self.counts.entry((p, acc)).or_insert(0) += 1;
                    if ev.mask & libc::FAN_OPEN_EXEC != 0 {
                        hit(path.clone(), Access::Exec);
                    }
                    if ev.mask & libc::FAN_OPEN != 0 && ev.mask & libc::FAN_OPEN_EXEC == 0 {
                        hit(path.clone(), Access::Read);
                    }
                    if ev.mask & libc::FAN_CLOSE_WRITE != 0 {
                        hit(path.clone(), Access::Write);
                    }
                    if ev.mask & (libc::FAN_CREATE | libc::FAN_DELETE | libc::FAN_RENAME) != 0 {
                        hit(dir.clone(), Access::Write);
                    }
                    if ev.mask & libc::FAN_RENAME != 0
                        && let Some((nh, _)) = ev.new_dir
                        && let Some(to) = g.dir(nh)
                    {
                        hit(to, Access::Write);
                    }
                }
            }
        }
        Ok(())
    }
}

impl AccessGroup {
    /// A directory handle's absolute path, as this process sees it.
    fn dir(&mut self, handle: &[u8]) -> Option<PathBuf> {
        if let Some(p) = self.dirs.get(handle) {
            return p.clone();
        }
        // A directory removed since: its path is gone with it.
        let found = where_now(self.mount.as_fd(), handle).ok().flatten();
        self.dirs.insert(handle.to_vec(), found.clone());
        found
    }
}

/// The mount points `/proc/self/mountinfo` (its text) lists.
pub fn mount_points(text: &str) -> Vec<PathBuf> {
    mountinfo(text).into_iter().map(|m| m.point).collect()
}

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, PartialEq, Eq)]
struct Mount {
    root: PathBuf,
    point: PathBuf,
    fstype: String,
}

fn mountinfo(text: &str) -> Vec<Mount> {
    // Spaces and other bytes in paths are written as octal escapes (`\040`).
    fn unescape(s: &str) -> PathBuf {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'\\'
                && let Some(oct) = b.get(i + 1..i + 4)
                && let Ok(v) = u8::from_str_radix(std::str::from_utf8(oct).unwrap_or("x"), 8)
            {
                out.push(v);
                i += 4;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        PathBuf::from(OsString::from(std::ffi::OsStr::from_bytes(&out)))
    }
    text.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let f: Vec<&str> = left.split(' ').collect();
            Some(Mount {
                root: unescape(f.get(3)?),
                point: unescape(f.get(4)?),
                fstype: right.split(' ').next()?.to_owned(),
            })
        })
        .collect()
}

fn join(dir: &Path, name: &[u8]) -> PathBuf {
    if name == b"." || name.is_empty() {
        dir.to_path_buf()
    } else {
        dir.join(OsString::from(std::ffi::OsStr::from_bytes(name)))
    }
}

fn lossy(p: &Path) -> String {
    String::from_utf8_lossy(p.as_os_str().as_bytes()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_map_to_ops_in_order() {
        assert_eq!(ops(libc::FAN_CLOSE_WRITE | libc::FAN_MODIFY), vec![Op::Modify, Op::CloseWrite]);
        assert_eq!(ops(libc::FAN_DELETE | libc::FAN_ONDIR), vec![Op::Delete]);
        assert!(ops(libc::FAN_Q_OVERFLOW).is_empty());
    }

    #[test]
    fn mountinfo_lines_parse_with_escapes() {
        let text = "36 35 98:0 / /mnt/my\\040disk rw,noatime master:1 - ext4 /dev/root rw\n\
                    40 35 0:5 /sub /srv rw shared:2 - btrfs /dev/loop0 rw\n";
        let m = mountinfo(text);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].point, PathBuf::from("/mnt/my disk"));
        assert_eq!(m[0].fstype, "ext4");
        assert_eq!(m[1].root, PathBuf::from("/sub"));
    }

    #[test]
    fn names_join_and_dot_means_the_directory() {
        assert_eq!(join(Path::new("a"), b"."), PathBuf::from("a"));
        assert_eq!(join(Path::new(""), b"f"), PathBuf::from("f"));
        assert_eq!(join(Path::new("a/b"), b"c"), PathBuf::from("a/b/c"));
    }

    fn placed(found: Vec<(PathBuf, &str)>) -> Vec<String> {
        let mut v: Vec<String> = found.into_iter().map(|(d, i)| format!("{}:{i}", d.display())).collect();
        v.sort();
        v
    }

    /// `rm -rf tree` read after the fact: the files' deletions wait in
    /// their removed directories, which are named by their own removals,
    /// innermost first, the last in a directory still there.
    #[test]
    fn events_in_a_removed_tree_are_placed_when_its_top_is_named() {
        let mut u = Unplaced::default();
        let here = Place::Here(PathBuf::new());
        assert!(u.wait(b"D1", "f1") && u.wait(b"D1", "f2") && u.wait(b"D2", "g") && u.wait(b"T", "x"));
        // Named in the removed `T`: nothing placed yet.
        assert!(u.named(b"D1", b"T", b"d1", &Place::Removed).is_empty());
        assert!(u.named(b"D2", b"T", b"d2", &Place::Removed).is_empty());
        let found = u.named(b"T", b"ROOT", b"tree", &here);
        assert_eq!(placed(found), ["tree/d1:f1", "tree/d1:f2", "tree/d2:g", "tree:x"]);
        assert_eq!(u.count, 0);
        assert!(u.waiting.is_empty() && u.below.is_empty());
        // A directory nothing waits for is not kept.
        assert!(u.named(b"E", b"T2", b"e", &Place::Removed).is_empty());
        assert!(u.below.is_empty());
    }

    #[test]
    fn events_in_a_removed_directory_outside_are_dropped() {
        let mut u = Unplaced::default();
        assert!(u.wait(b"D", "f") && u.wait(b"C", "g"));
        assert!(u.named(b"C", b"D", b"c", &Place::Removed).is_empty());
        assert!(u.named(b"D", b"TMP", b"d", &Place::Elsewhere).is_empty());
        assert_eq!(u.count, 0);
        assert!(u.waiting.is_empty() && u.below.is_empty());
    }

    /// Named twice (moved, then removed), and in a cycle of removed
    /// directories (each once the other's parent): placed once, no loop.
    #[test]
    fn a_directory_named_twice_or_in_a_cycle_is_placed_once() {
        let mut u = Unplaced::default();
        assert!(u.wait(b"A", "f"));
        assert!(u.named(b"A", b"B", b"a", &Place::Removed).is_empty());
        assert!(u.named(b"B", b"A", b"b", &Place::Removed).is_empty());
        assert!(u.named(b"A", b"B", b"a2", &Place::Removed).is_empty());
        let found = u.named(b"B", b"ROOT", b"top", &Place::Here(PathBuf::from("w")));
        // Under the name it had last.
        assert_eq!(placed(found), ["w/top/a2:f"]);
        assert_eq!(u.count, 0);
    }

    #[test]
    fn waiting_events_are_bounded() {
        let mut u = Unplaced { count: Unplaced::<&str>::LIMIT - 1, ..Default::default() };
        assert!(u.wait(b"D", "last"));
        assert!(!u.wait(b"D", "over"));
        assert_eq!(u.waiting[b"D".as_slice()], ["last"]);
    }
}
