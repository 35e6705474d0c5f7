//! The launcher and the session's init: restrict, then become the command.
//!
//! `ws` starts a sandboxed command by running itself as
//! `ws __sandbox-exec SPEC -- CMD ARGS…` with the scrubbed environment.
//! Without namespaces the launcher applies Landlock and seccomp to itself and
//! `execve`s CMD. With them it unshares, then runs `ws __sandbox-init SPEC --
//! CMD…` as PID 1 of the new PID namespace, which sets up the mounts, applies
//! the same restrictions, runs CMD and reaps orphans until CMD exits. If a layer
//! that [`LaunchSpec::require`] names cannot be enforced, CMD does not run
//! (unless [`LaunchSpec::allow_degraded`]).

use std::ffi::OsString;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::policy::FsPolicy;

/// The hidden arguments `ws` answers to.
pub const LAUNCHER_ARG: &str = "__sandbox-exec";
pub const INIT_ARG: &str = "__sandbox-init";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LaunchSpec {
    pub fs: FsPolicy,
    pub landlock: bool,
    pub seccomp: bool,
    pub namespaces: Option<NamespaceSpec>,
    /// `cgroup.procs` files of the session's cgroups, joined first of all.
    #[serde(default)]
    pub cgroup_procs: Vec<PathBuf>,
    /// Layers that must be enforced (by name), or the command does not run.
    pub require: Vec<String>,
    pub allow_degraded: bool,
    /// The write recorder, run by init inside the PID namespace (root only).
    #[serde(default)]
    pub recorder: Option<crate::recorder::RecorderSpec>,
    /// The recorder service records the session, from a recorder it puts
    /// into the session's namespaces: when the command exits, init ends
    /// every other process of the session (sparing that recorder) and says
    /// whether they all ended, so the supervisor can ask the service's
    /// recorder to confirm it read every event.
    #[serde(default)]
    pub recorded_from_outside: bool,
    #[serde(default)]
    pub net: NetSpec,
    /// The session's end of [`Control::pair`], inherited by the launcher and
    /// init.
    #[serde(default)]
    pub control_fd: Option<i32>,
    /// The user the command runs as when `ws` runs as root for one
    /// (`sudo ws`): init (or the launcher without one) switches to them for
    /// good after the mounts and the recorder, before it restricts itself.
    #[serde(default)]
    pub run_as: Option<RunAs>,
}

/// A user's ids, for [`LaunchSpec::run_as`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

impl RunAs {
    fn switch(&self) -> Result<(), LaunchError> {
        crate::privilege::drop_to(self.uid, self.gid, &self.groups)
            .map_err(|source| LaunchError::User { uid: self.uid, source })
    }
}

/// The supervisor's hold on a session's start and end. The command starts
/// only when the supervisor says so, after it has snapshotted the workspace
/// with the write recorder already watching; after the command the session's
/// processes stay frozen and the recorder keeps watching until the supervisor
/// has taken the after-snapshot. So every write to the workspace between the
/// two snapshots is seen by the recorder, and one by another process (another
/// session in the same workspace) is known to be not this session's.
///
/// ```text
/// session (init, or the launcher without one)     supervisor
///   recorder ready ─────────── 'R' ───────────▶   snapshot
///   start the command ◀─────── 'G' ────────────   (closed: do not start)
///   command exited, rest ended ─── 'X' code signal ▶ after-snapshot
///   recorder drains, exit ◀─── 'E' ────────────   (or closed)
/// ```
/// Without init the launcher becomes the command, so its end closes at
/// `exec` and the supervisor learns the exit from the launcher's status.
#[derive(Debug)]
pub struct Control {
    sock: std::os::unix::net::UnixStream,
    /// Supervisor: init said every other process of the session ended.
    ended: bool,
}

impl Control {
    /// The supervisor's end, and the session's (inheritable by the launcher;
    /// close it once the launcher is spawned).
    pub fn pair() -> std::io::Result<(Control, std::os::fd::OwnedFd)> {
        let (a, b) = std::os::unix::net::UnixStream::pair()?;
        let b = std::os::fd::OwnedFd::from(b);
        rustix::io::fcntl_setfd(&b, rustix::io::FdFlags::empty())?;
        Ok((Control { sock: a, ended: false }, b))
    }

    fn adopt(fd: i32) -> Option<Control> {
        let fd = crate::recorder::take_fd(fd)?;
        // Nothing this process starts (recorder, command) may inherit it.
        rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC).ok()?;
        Some(Control { sock: std::os::unix::net::UnixStream::from(fd), ended: false })
    }

    fn send(&mut self, bytes: &[u8]) -> bool {
        use std::io::Write as _;
        self.sock.write_all(bytes).is_ok()
    }

    fn receive(&mut self, buf: &mut [u8]) -> bool {
        use std::io::Read as _;
        loop {
            match self.sock.read_exact(buf) {
                Ok(()) => return true,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return false,
            }
        }
    }

    /// Supervisor: waits until the session is ready to start the command.
    /// `false`: its end closed first (the launcher failed; it said why).
    pub fn wait_ready(&mut self) -> bool {
        let mut b = [0u8];
        self.receive(&mut b) && b[0] == b'R'
    }

    /// Supervisor: start the command.
    pub fn go(&mut self) -> bool {
        self.send(b"G")
    }

    /// Supervisor: waits until the command has exited and the rest of the
    /// session is frozen or ended ([`Control::session_ended`]):
    /// `(code, signal)`. `None`: the end closed instead (no init: wait for
    /// the launcher, which became the command).
    pub fn wait_exit(&mut self) -> Option<(Option<i32>, Option<i32>)> {
        let mut b = [0u8; 10];
        if !self.receive(&mut b) || b[0] != b'X' {
            return None;
        }
        let word = |at: usize| i32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let (code, signal) = (word(1), word(5));
        self.ended = b[9] == 1;
        Some(((signal == 0).then_some(code), (signal != 0).then_some(signal)))
    }

    /// Supervisor, after [`Control::wait_exit`]: init ended every other
    /// process of the session and reaped them (with
    /// [`LaunchSpec::recorded_from_outside`]; they are stopped otherwise).
    pub fn session_ended(&self) -> bool {
        self.ended
    }

    /// Supervisor: the after-snapshot is taken; the session may end.
    pub fn end(mut self) {
        let _ = self.send(b"E");
    }

    /// Session: ready; waits for the go. `false`: the supervisor refused or is gone.
    fn ready_wait_go(&mut self) -> bool {
        let mut b = [0u8];
        self.send(b"R") && self.receive(&mut b) && b[0] == b'G'
    }

    /// Session: the command exited; waits for the supervisor's end (or its death).
    fn exited(mut self, code: i32, signal: i32, ended: bool) {
        let mut msg = vec![b'X'];
        msg.extend_from_slice(&code.to_le_bytes());
        msg.extend_from_slice(&signal.to_le_bytes());
        msg.push(u8::from(ended));
        let mut b = [0u8];
        if self.send(&msg) {
            let _ = self.receive(&mut b);
        }
    }
}

/// The session did not start the command: the supervisor refused or went
/// away before the go.
fn not_started() -> LaunchError {
    LaunchError::NotStarted
}

/// How the session's network is confined. Either way the proxy is the only
/// way out.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct NetSpec {
    /// A network namespace of the session's own (needs [`NamespaceSpec`]).
    pub namespace: Option<NetnsSpec>,
    /// Where the session shares the host's network (no namespace, or it
    /// could not be made): TCP connections only to these ports (the proxy's),
    /// no UDP or raw sockets. Empty: no connections at all.
    pub connect_ports: Vec<u16>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NetnsSpec {
    /// The proxy's port on the session's loopback.
    pub port: u16,
    /// The inherited end of [`crate::netns::channel`].
    pub channel_fd: i32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NamespaceSpec {
    /// Made read-only inside the session.
    pub protect: Vec<PathBuf>,
    /// Covered by an empty, read-only tmpfs inside the session.
    pub hide: Vec<PathBuf>,
    /// Whether a user namespace is needed (not root).
    pub user_ns: bool,
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("cannot read the sandbox specification")]
    Spec(#[from] serde_json::Error),
    #[error("the profile requires Landlock, which this machine cannot enforce")]
    Landlock(#[source] crate::landlock::LandlockError),
    #[error("the profile requires seccomp, which this machine cannot enforce")]
    Seccomp(#[source] crate::seccomp::SeccompError),
    #[error("the profile requires namespaces, which this machine does not allow")]
    Namespaces(#[source] crate::namespaces::NamespaceError),
    #[error("cannot set up the session's namespaces")]
    Mounts(#[source] crate::namespaces::NamespaceError),
    #[error("cannot enter the session's cgroup")]
    Cgroup(#[source] crate::cgroups::CgroupError),
    #[error("cannot set up the session's network")]
    Network(#[source] crate::netns::NetnsError),
    #[error("cannot confine the session's network to its proxy")]
    NetworkFilter(#[source] crate::landlock::LandlockError),
    #[error("cannot switch to uid {uid} to run the command")]
    User { uid: u32, source: std::io::Error },
    #[error("cannot run {program}")]
    Exec { program: String, source: std::io::Error },
    /// The supervisor gave no go: it refused (and says why itself) or was
    /// killed. Nothing ran.
    #[error("the command did not run: the supervisor did not give the go (it failed or was killed)")]
    NotStarted,
}

fn required(spec: &LaunchSpec, layer: &str) -> bool {
    spec.require.iter().any(|r| r == layer) && !spec.allow_degraded
}

/// Applies Landlock and seccomp to this process. `own_network`: the
/// process is in the session's network namespace; otherwise TCP goes only
/// to the proxy's port and other sockets are denied.
fn restrict(spec: &LaunchSpec, own_network: bool) -> Result<(), LaunchError> {
    let ports = (!own_network).then_some(spec.net.connect_ports.as_slice());
    if spec.landlock {
        match crate::landlock::restrict(&spec.fs, ports) {
            Ok(_) => {}
            Err(e @ crate::landlock::LandlockError::NoNetwork(_)) => {
                if required(spec, "network") {
                    return Err(LaunchError::NetworkFilter(e));
                }
                // Degraded on purpose: the filesystem rules still apply.
                if let Err(e) = crate::landlock::restrict(&spec.fs, None)
                    && required(spec, "landlock")
                {
                    return Err(LaunchError::Landlock(e));
                }
            }
            Err(e) if required(spec, "landlock") => return Err(LaunchError::Landlock(e)),
            Err(_) => {}
        }
    } else if !own_network && required(spec, "network") {
        return Err(LaunchError::NetworkFilter(crate::landlock::LandlockError::NoNetwork(0)));
    }
    if spec.seccomp
        && let Err(e) = crate::seccomp::install(!own_network)
        && required(spec, "seccomp")
    {
        return Err(LaunchError::Seccomp(e));
    }
    Ok(())
}

/// Marks every descriptor but stdin, stdout and stderr close-on-exec, so the
/// command inherits none of them: neither one of ws's, nor one the caller of
/// `ws` left open. Landlock checks a file when it is opened; a descriptor
/// opened before (say, for writing to a file outside the workspace) would
/// carry its access past the sandbox.
#[allow(unsafe_code)]
fn inherit_only_stdio() {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC closes nothing; it sets a
    // flag on open descriptors, which no Rust object's validity depends on.
    let r = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) };
    if r == 0 {
        return;
    }
    // Before Linux 5.11: every descriptor number up to the limit, one by one.
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current.unwrap_or(1 << 20);
    for fd in 3..limit.min(1 << 20) as i32 {
        // SAFETY: F_SETFD on a number that may not be open: EBADF at worst;
        // it only sets the close-on-exec flag.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
}

/// In the launcher, inside the new network namespace: loopback up, the
/// proxy's socket made and sent out.
fn set_up_network(channel: &std::os::fd::OwnedFd, port: u16) -> Result<(), crate::netns::NetnsError> {
    crate::netns::loopback_up()?;
    let listener = crate::netns::proxy_listener(port)?;
    crate::netns::send_listener(channel, &listener)
}

/// Keeps a supervising process alive through Ctrl-C and Ctrl-\ (the command
/// gets them from the terminal itself) and passes SIGTERM and SIGHUP on to
/// the child named by [`SignalRelay::forward_to`]. Installed before the child
/// is spawned, so no signal in between kills the supervisor; handlers (unlike
/// SIG_IGN) are reset by exec, so the child keeps default behaviour. Stops
/// when dropped.
///
/// It also remembers the first of these signals ([`SignalRelay::received`]):
/// before the command starts nobody else would act on it (the session's
/// init ignores what it has no handler for), so the supervisor must.
#[derive(Debug)]
pub struct SignalRelay {
    child: std::sync::Arc<std::sync::atomic::AtomicI32>,
    received: std::sync::Arc<std::sync::atomic::AtomicI32>,
    handle: signal_hook::iterator::Handle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SignalRelay {
    pub fn install() -> std::io::Result<SignalRelay> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
        use std::sync::atomic::Ordering;
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGQUIT, SIGTERM, SIGHUP])?;
        let child = std::sync::Arc::new(std::sync::atomic::AtomicI32::new(0));
        let received = std::sync::Arc::new(std::sync::atomic::AtomicI32::new(0));
        let target = std::sync::Arc::clone(&child);
        let first = std::sync::Arc::clone(&received);
        let handle = signals.handle();
        let thread = std::thread::spawn(move || {
            for sig in signals.forever() {
                let _ = first.compare_exchange(0, sig, Ordering::Relaxed, Ordering::Relaxed);
                if (sig == SIGTERM || sig == SIGHUP)
                    && let Some(pid) = rustix::process::Pid::from_raw(target.load(Ordering::Relaxed))
                    && let Some(s) = rustix::process::Signal::from_named_raw(sig)
                {
                    let _ = rustix::process::kill_process(pid, s);
                }
            }
        });
        Ok(SignalRelay { child, received, handle, thread: Some(thread) })
    }

    pub fn forward_to(&self, pid: u32) {
        self.child.store(pid as i32, std::sync::atomic::Ordering::Relaxed);
    }

    /// The first of SIGINT, SIGQUIT, SIGTERM and SIGHUP this process got
    /// since [`SignalRelay::install`], if any.
    pub fn received(&self) -> Option<i32> {
        Some(self.received.load(std::sync::atomic::Ordering::Relaxed)).filter(|&s| s != 0)
    }
}

impl Drop for SignalRelay {
    fn drop(&mut self) {
        self.handle.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How long a session has to end after its supervisor died (init passes the
/// SIGTERM on to the command) before the launcher kills its init, and with
/// it every process of the session's PID namespace.
const ORPHAN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Waits for `child` while passing SIGTERM and SIGHUP on to it and surviving
/// Ctrl-C. After `unshare(CLONE_NEWPID)` this process may not create threads,
/// so instead of a signal thread: flag-setting handlers, and `poll` on a pidfd,
/// which a signal always interrupts (poll is never restarted). Once `parent`
/// (the supervisor) is gone, the child (init) gets [`ORPHAN_GRACE`], then
/// SIGKILL: a command that ignores SIGTERM must not go on writing unwatched.
fn wait_passing_signals(
    child: &mut std::process::Child,
    parent: Option<rustix::process::Pid>,
) -> std::io::Result<std::process::ExitStatus> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
    let term = Arc::new(AtomicBool::new(false));
    let hup = Arc::new(AtomicBool::new(false));
    let ignored = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(SIGTERM, Arc::clone(&term))?;
    signal_hook::flag::register(SIGHUP, Arc::clone(&hup))?;
    signal_hook::flag::register(SIGINT, Arc::clone(&ignored))?;
    signal_hook::flag::register(SIGQUIT, ignored)?;
    let pid =
        rustix::process::Pid::from_raw(child.id() as i32).ok_or_else(|| std::io::Error::other("child has no pid"))?;
    let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())?;
    let mut deadline: Option<std::time::Instant> = None;
    loop {
        for (flag, sig) in [(&term, rustix::process::Signal::TERM), (&hup, rustix::process::Signal::HUP)] {
            if flag.swap(false, Ordering::Relaxed) {
                let _ = rustix::process::kill_process(pid, sig);
            }
        }
        if deadline.is_none() && rustix::process::getppid() != parent {
            deadline = Some(std::time::Instant::now() + ORPHAN_GRACE);
        }
        let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
        if left == Some(std::time::Duration::ZERO) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
        let timeout = left
            .filter(|l| !l.is_zero())
            .map(|l| rustix::event::Timespec { tv_sec: l.as_secs() as i64, tv_nsec: i64::from(l.subsec_nanos()) });
        let mut fds = [rustix::event::PollFd::new(&pidfd, rustix::event::PollFlags::IN)];
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            Ok(0) | Err(rustix::io::Errno::INTR) => continue,
            Ok(_) => return child.wait(),
            Err(e) => return Err(e.into()),
        }
    }
}

fn status_code(s: std::process::ExitStatus) -> i32 {
    s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))
}

/// The launcher. Returns an exit code, or an error before CMD could run.
/// `degraded` hears of a layer given up because the profile does not require
/// it (or `allow_degraded`), so the caller can say so.
pub fn launch(
    spec_json: &str,
    program: &OsString,
    args: &[OsString],
    degraded: &dyn Fn(&str, &dyn std::error::Error),
) -> Result<i32, LaunchError> {
    let spec: LaunchSpec = serde_json::from_str(spec_json)?;
    let supervisor = rustix::process::getppid();
    // The session ends with its supervisor (kill -9 of `ws`): unsupervised,
    // its writes would go on after the next `ws rollback` took the session's
    // after-snapshot. SIGTERM reaches init (which passes it on; a session
    // that ignores it is killed whole after ORPHAN_GRACE) or, without init,
    // the command this process becomes (the setting survives exec).
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM));
    // Closed on exec from here on: nothing the launcher runs inherits it.
    let channel = match &spec.net.namespace {
        Some(n) => Some(crate::netns::adopt_channel(n.channel_fd).map_err(LaunchError::Network)?),
        None => None,
    };
    // Into the cgroup before anything else exists, so every process of the
    // session is counted.
    crate::cgroups::join(&spec.cgroup_procs).map_err(LaunchError::Cgroup)?;
    if let Some(ns) = &spec.namespaces {
        match crate::namespaces::unshare(ns.user_ns, channel.is_some(), ns.uid, ns.gid) {
            Ok(()) => {
                if let (Some(ch), Some(n)) = (&channel, &spec.net.namespace) {
                    set_up_network(ch, n.port).map_err(LaunchError::Network)?;
                }
                drop(channel);
                let me =
                    std::env::current_exe().map_err(|source| LaunchError::Exec { program: "ws".into(), source })?;
                let mut init = Command::new(me)
                    .arg(INIT_ARG)
                    .arg(spec_json)
                    .arg("--")
                    .arg(program)
                    .args(args)
                    .spawn()
                    .map_err(|source| LaunchError::Exec { program: "ws init".into(), source })?;
                // init holds the control channel now; without this copy, its
                // death closes it for the supervisor to see.
                drop(spec.control_fd.and_then(crate::recorder::take_fd));
                let status = wait_passing_signals(&mut init, supervisor)
                    .map_err(|source| LaunchError::Exec { program: "ws init".into(), source })?;
                return Ok(status_code(status));
            }
            Err(e) if required(&spec, "namespaces") => return Err(LaunchError::Namespaces(e)),
            Err(e) => degraded("namespaces", &e),
        }
    }
    // Without a namespace of its own the session shares the host's network;
    // the supervisor sees the channel close and serves no proxy there.
    drop(channel);
    // No PID namespace, so no recorder: the command must not inherit its pipe.
    crate::recorder::close_on_exec(spec.recorder.as_ref());
    if let Some(user) = &spec.run_as {
        user.switch()?;
    }
    restrict(&spec, false)?;
    // The supervisor snapshots, then gives the go; the channel closes as
    // this process becomes the command.
    if let Some(mut c) = spec.control_fd.and_then(Control::adopt)
        && !c.ready_wait_go()
    {
        return Err(not_started());
    }
    inherit_only_stdio();
    let err = Command::new(program).args(args).exec();
    Err(LaunchError::Exec { program: program.to_string_lossy().into_owned(), source: err })
}

/// PID 1 of the session's namespaces. Returns CMD's exit code.
pub fn init(spec_json: &str, program: &OsString, args: &[OsString]) -> Result<i32, LaunchError> {
    let spec: LaunchSpec = serde_json::from_str(spec_json)?;
    // If the launcher dies (killed with the supervisor), the session ends
    // gracefully: SIGTERM here is passed on to the command.
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM));
    let control = spec.control_fd.and_then(Control::adopt);
    // The write recorder places its mark while the mounts are set up; it
    // needs CAP_SYS_ADMIN, so it starts before init restricts itself.
    let recorder = spec.recorder.as_ref().and_then(crate::recorder::spawn);
    if let Some(ns) = &spec.namespaces {
        crate::namespaces::set_up_mounts(&ns.protect, &ns.hide).map_err(LaunchError::Mounts)?;
        if ns.user_ns {
            crate::namespaces::become_user(ns.uid, ns.gid).map_err(LaunchError::Mounts)?;
        }
    }
    // Root was for the mounts and the recorder (started above); the rest of
    // the session, init included, is the user's.
    if let Some(user) = &spec.run_as {
        user.switch()?;
    }
    // init runs only where the launcher's unshare succeeded, which included
    // the network namespace if the spec asked for one.
    restrict(&spec, spec.net.namespace.is_some())?;
    let mut recorder = recorder.and_then(crate::recorder::Starting::ready);
    let mut control = control;
    if let Some(c) = &mut control
        && !c.ready_wait_go()
    {
        if let Some(r) = recorder {
            r.finish();
        }
        return Err(not_started());
    }
    let relay = SignalRelay::install().map_err(|source| LaunchError::Exec { program: "ws init".into(), source })?;
    inherit_only_stdio();
    let child = Command::new(program)
        .args(args)
        .spawn()
        .map_err(|source| LaunchError::Exec { program: program.to_string_lossy().into_owned(), source })?;
    let pid = child.id();
    relay.forward_to(pid);
    // As PID 1, reap every orphan until the command itself exits.
    let (code, signal) = loop {
        match rustix::process::wait(rustix::process::WaitOptions::empty()) {
            Ok(Some((p, status))) if p.as_raw_nonzero().get() as u32 == pid => {
                break match (status.exit_status(), status.terminating_signal()) {
                    (Some(c), _) => (c, 0),
                    (None, Some(sig)) => (128 + sig, sig),
                    _ => (1, 0),
                };
            }
            Ok(_) => continue,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => break (1, 0),
        }
    };
    if let Some(c) = control {
        // Nothing of the session may write while the supervisor takes its
        // after-snapshot. With a recorder, what is left is ended and the
        // recorder confirms it has read every event of the session (so the
        // after-snapshot may look only where the record says); the
        // recorder keeps watching for writes from outside.
        // The recorder service's recorder, put here from outside, is
        // asked by the supervisor once init says the rest has ended.
        let mut ended = false;
        match &mut recorder {
            Some(r) => r.end(std::time::Duration::from_secs(2)),
            None if spec.recorded_from_outside => {
                ended = crate::recorder::end_others(std::time::Duration::from_secs(2))
            }
            None => crate::recorder::freeze_session(None),
        }
        c.exited(code, signal, ended);
    }
    if let Some(r) = recorder {
        r.finish();
    }
    Ok(code)
}
