//! The supervisor's side of a session's record: the audit log, and the
//! recorders that feed it. The log is written by this process alone; other
//! parts of the supervisor (the proxy) append through [`SessionRecord::log`].

use std::collections::BTreeSet;
use std::io::BufRead;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ws_sandbox::recorder::{Message, Op};
use ws_snapshot::audit::{AuditLog, Event, Recording, WriteOp};
use ws_snapshot::{Session, Store};

use crate::Error;

/// A session's record while it runs: the audit log and the threads feeding it.
#[derive(Debug)]
pub struct SessionRecord {
    log: Arc<AuditLog>,
    recording: Recording,
    reader: Option<std::thread::JoinHandle<Stream>>,
    denials: Option<Denials>,
    /// The write recorder's fanotify group, released once it is done.
    group: Option<OwnedFd>,
    /// The program that releases it ([`crate::helpers`]).
    helper: std::path::PathBuf,
    /// The recorder service's link, shut down to end the record.
    link: Option<std::os::unix::net::UnixStream>,
    /// The service passes a sync on to its recorder ([`SessionRecord::sync_service`]).
    syncs: bool,
    /// Whether the service's recorder was asked to confirm it read every
    /// event of the ended session, or why not.
    service_sync: Option<Result<(), String>>,
    /// The write stream, once ended early ([`SessionRecord::end_service`]).
    ended: Option<Stream>,
    /// Where the stream says the workspace changed.
    tracker: Arc<Tracker>,
}

/// The recorders, decided and set up before the launcher starts (it must
/// inherit the write recorder's pipe); they record once [`Recorders::start`]
/// has the session's audit log.
#[derive(Debug)]
pub struct Recorders {
    recording: Recording,
    /// The write end of the recorder's pipe and a copy of its fanotify
    /// group, until the launcher has them.
    inherited: Vec<OwnedFd>,
    read_end: Option<OwnedFd>,
    /// The supervisor's own copy of the group (see `RecorderSpec::group`).
    group: Option<OwnedFd>,
    denials: Option<(ws_sandbox::audit_netlink::Reader, u32)>,
    launcher: u32,
    /// Not root: the recorder service's socket, until [`Recorders::attach_service`].
    service: Option<std::path::PathBuf>,
    /// The program that releases the recorder's group ([`crate::helpers`]).
    helper: std::path::PathBuf,
    /// The link to the service: shut down to end the record.
    link: Option<std::os::unix::net::UnixStream>,
    /// The service passes a sync on to its recorder.
    syncs: bool,
    /// Messages read before the stream's reader started.
    first: Vec<Message>,
}

/// The denial recorder: a thread reading Landlock's audit records.
#[derive(Debug)]
struct Denials {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Stream>,
}

/// What the write recorder's stream says about where the workspace changed,
/// as it arrives: for an after-snapshot that looks only there.
#[derive(Debug, Default)]
pub struct Tracked {
    pub changed: ws_snapshot::ChangedPaths,
    /// Files whose link count changed (their names are not known).
    pub inodes: Vec<(u64, u64)>,
    /// Why the record is not proof of where the workspace changed.
    pub doubts: Vec<String>,
    /// The recorder read every event of the session, which has ended.
    pub synced: bool,
    /// The stream ended.
    pub ended: bool,
}

#[derive(Debug, Default)]
struct Tracker {
    state: std::sync::Mutex<Tracked>,
    changed: std::sync::Condvar,
}

impl Tracker {
    fn update(&self, f: impl FnOnce(&mut Tracked)) {
        let mut t = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut t);
        self.changed.notify_all();
    }

    fn note(&self, m: &Message) {
        self.update(|t| match m {
            Message::Write { path, to, dir, ops, .. } => {
                // A directory made or moved here brought what it holds.
                if *dir && ops.contains(&Op::Create) {
                    t.changed.add_whole(path.as_bytes());
                } else {
                    t.changed.add(path.as_bytes());
                }
                if let Some(to) = to {
                    if *dir { t.changed.add_whole(to.as_bytes()) } else { t.changed.add(to.as_bytes()) }
                }
            }
            Message::Outside { path, dir } => {
                if *dir {
                    t.changed.add_whole(path.as_bytes())
                } else {
                    t.changed.add(path.as_bytes())
                }
            }
            Message::Inode { dev, ino } => t.inodes.push((*dev, *ino)),
            Message::Unmapped { reason } => t.doubts.push(reason.clone()),
            Message::Lost { reason, .. } => t.doubts.push(format!("events were lost: {reason}")),
            Message::Synced => t.synced = true,
            _ => {}
        });
    }
}

/// What came out of the write recorder.
#[derive(Debug, Default)]
struct Stream {
    ready: bool,
    /// The recorder service could not record denials (it said why in `gaps`).
    no_denials: bool,
    done: bool,
    gaps: Vec<String>,
    lost: Vec<String>,
    learning: Option<Learning>,
}

/// What `ws learn`'s access recorder saw.
#[derive(Debug, Default)]
pub struct Learning {
    /// Filesystems watched, and those that could not be (with the reason).
    pub watched: Vec<String>,
    pub skipped: Vec<String>,
    pub accessed: Vec<ws_sandbox::learn::Observed>,
}

impl Recorders {
    /// Decides which recorders run, adding the write recorder to `spec`
    /// (and with `learn`, its access recording).
    pub fn prepare(
        workspace: &std::path::Path,
        spec: &mut ws_sandbox::exec::LaunchSpec,
        learn: bool,
        socket: &std::path::Path,
        helper: &std::path::Path,
    ) -> Result<Recorders, Error> {
        let mut recording = Recording { writes: "none".into(), denials: "none".into(), ..Recording::default() };
        let (mut inherited, mut read_end, mut group) = (Vec::new(), None, None);
        let root = ws_sandbox::privilege::root_available();
        let socket = socket.to_path_buf();
        let mut service = None;
        if !root && spec.namespaces.is_some() && socket.exists() {
            // Recorded by the service once the session's init is up.
            recording.writes = "fanotify".into();
            recording.denials = "landlock-audit".into();
            recording.via = Some(format!("recorder service {}", socket.display()));
            spec.recorded_from_outside = true;
            service = Some(socket);
        } else if spec.namespaces.is_none() && (root || socket.exists()) {
            // A recorder could run (root, or the service), but nothing tells
            // the session's writers from everyone else's.
            recording.gaps.push(
                "writes: not recorded (no PID namespace to tell the session's writers apart); the snapshot diff is the record"
                    .into(),
            );
        } else if !root {
            recording.gaps.push(
                "writes: not recorded as they happen (fanotify needs root); the snapshot diff is the record, \
                 and every change in it counts as the session's"
                    .into(),
            );
        } else {
            let (r, w) =
                std::io::pipe().map_err(|e| Error::failure(format!("cannot create the recorder's pipe: {e}")))?;
            let (r, w) = (OwnedFd::from(r), OwnedFd::from(w));
            // Should this fail, the recorder makes its own group and says
            // why if that fails too.
            group = ws_sandbox::recorder::new_group().ok();
            let copy = group.as_ref().and_then(|g| g.try_clone().ok());
            spec.recorder = Some(ws_sandbox::recorder::RecorderSpec {
                fd: std::os::fd::AsRawFd::as_raw_fd(&w),
                workspace: workspace.to_path_buf(),
                group: copy.as_ref().map(std::os::fd::AsRawFd::as_raw_fd),
                learn,
            });
            recording.writes = "fanotify".into();
            inherited.push(w);
            inherited.extend(copy);
            read_end = Some(r);
        }
        let denials = if spec.landlock && service.is_none() { start_denials(&mut recording) } else { None };
        Ok(Recorders {
            recording,
            inherited,
            read_end,
            group,
            denials,
            launcher: 0,
            service,
            helper: helper.to_path_buf(),
            link: None,
            syncs: false,
            first: Vec::new(),
        })
    }

    /// Not root, with the recorder service: asks it to record the session,
    /// whose init is up (and waiting for the go). Says in the record why
    /// not, if it will not.
    pub fn attach_service(&mut self, workspace: &std::path::Path, learn: bool) {
        let Some(socket) = self.service.take() else { return };
        match crate::service::attach(&socket, workspace, self.launcher, learn) {
            Ok(link) => match link.stream.try_clone() {
                Ok(copy) => {
                    self.read_end = Some(OwnedFd::from(copy));
                    self.link = Some(link.stream);
                    self.syncs = link.syncs;
                    self.first.extend(link.first);
                }
                Err(e) => self.not_served(&format!("cannot keep the link to the recorder service: {e}")),
            },
            Err(why) => self.not_served(&why),
        }
    }

    fn not_served(&mut self, why: &str) {
        let r = &mut self.recording;
        r.writes = "none".into();
        r.denials = "none".into();
        r.via = None;
        r.gaps.push(format!("writes and denials: not recorded: {why}"));
    }

    /// Spawns the launcher so that it inherits the recorder's pipe and group
    /// and `also` (and nothing else of ours); they are closed here after.
    pub fn spawn(
        &mut self,
        cmd: &mut std::process::Command,
        also: Option<OwnedFd>,
    ) -> std::io::Result<std::process::Child> {
        for fd in self.inherited.iter().chain(also.iter()) {
            // Inherited across exec by the launcher only.
            rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty())?;
        }
        let child = cmd.spawn();
        self.inherited.clear();
        drop(also);
        if let Ok(c) = &child {
            self.launcher = c.id();
        }
        child
    }

    /// Creates the session's audit log, records the session's start, and
    /// starts copying what the recorders see into it (and, with `export`,
    /// every record to the exporter as it is written).
    pub fn start(
        self,
        store: &Store,
        session: &Session,
        profile: &str,
        spec: &ws_sandbox::exec::LaunchSpec,
        network: &str,
        observer: Option<ws_snapshot::audit::Observer>,
    ) -> Result<SessionRecord, Error> {
        let Recorders {
            recording,
            inherited,
            read_end,
            group,
            denials,
            launcher,
            service: _,
            helper,
            link,
            syncs,
            first,
        } = self;
        drop(inherited);
        let path = store.audit_log_path(&session.id);
        let mut log = AuditLog::create(&path, &session.id).map_err(|e| Error::failure(crate::chain(&e)))?;
        if let Some(observer) = observer {
            log = log.observed(observer);
        }
        let mut layers = Vec::new();
        for (on, name) in [
            (spec.landlock, "landlock"),
            (spec.seccomp, "seccomp"),
            // Asked for always; had only as root or where user namespaces
            // may be made (else the launcher runs without, and says so).
            (
                spec.namespaces.as_ref().is_some_and(|n| !n.user_ns || ws_sandbox::probe::user_namespaces()),
                "namespaces",
            ),
            (!spec.cgroup_procs.is_empty(), "cgroups"),
        ] {
            if on {
                layers.push(name.to_owned());
            }
        }
        let not_enforced = spec.require.iter().filter(|r| !layers.contains(r) && *r != "network").cloned().collect();
        layers.push(format!("network: {network}"));
        log.append(
            crate::now_ms(),
            Event::SessionStart {
                session: session.id.clone(),
                profile: profile.to_owned(),
                command: session.command.clone(),
                layers,
                not_enforced,
                recording: recording.clone(),
            },
        )
        .and_then(|_| log.flush())
        .map_err(|e| Error::failure(crate::chain(&e)))?;
        let log = Arc::new(log);
        let denials = denials.map(|(reader, lost_before)| {
            let stop = Arc::new(AtomicBool::new(false));
            let (st, lg) = (Arc::clone(&stop), Arc::clone(&log));
            let thread = std::thread::spawn(move || {
                let mut emit = |d: Denied| {
                    let _ = lg.append(crate::now_ms(), d.event());
                };
                let lost = read_denials(reader, lost_before, &|creator| ours(creator, launcher), &st, &mut emit);
                let _ = lg.flush();
                Stream { lost: lost.into_iter().map(|l| format!("denials: {l}")).collect(), ..Stream::default() }
            });
            Denials { stop, thread }
        });
        let tracker = Arc::new(Tracker::default());
        let reader = read_end.map(|r| {
            let log = Arc::clone(&log);
            let tracker = Arc::clone(&tracker);
            std::thread::spawn(move || {
                let s = read_stream(first, r, &log, &tracker);
                tracker.update(|t| t.ended = true);
                s
            })
        });
        Ok(SessionRecord {
            log,
            recording,
            reader,
            denials,
            group,
            helper,
            link,
            syncs,
            service_sync: None,
            ended: None,
            tracker,
        })
    }
}

impl SessionRecord {
    /// The audit log, to append other records (network requests) to.
    pub fn log(&self) -> Arc<AuditLog> {
        Arc::clone(&self.log)
    }

    /// Where the session (and anyone else) changed the workspace, once the
    /// recorder has confirmed it read every event of the ended session; why
    /// not, when the record cannot be trusted to say so. Waits at most
    /// `patience` for the confirmation.
    pub fn changed(&self, patience: std::time::Duration) -> Result<Tracked, String> {
        if self.recording.writes != "fanotify" {
            return Err("no write recorder ran".into());
        }
        if self.recording.via.is_some() {
            match &self.service_sync {
                Some(Ok(())) => {}
                Some(Err(why)) => return Err(why.clone()),
                None => {
                    return Err("the recorder service's recorder was not asked to confirm it read every event".into());
                }
            }
        }
        if !self.recording.complete() {
            return Err(format!("the record is incomplete: {}", self.recording.lost.join("; ")));
        }
        let deadline = std::time::Instant::now() + patience;
        let mut t = self.tracker.state.lock().unwrap_or_else(|p| p.into_inner());
        while !t.synced && !t.ended {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            t = self.tracker.changed.wait_timeout(t, left).unwrap_or_else(|p| p.into_inner()).0;
        }
        if let Some(d) = t.doubts.first() {
            return Err(format!("the record is not proof of every change: {d}"));
        }
        if !t.synced {
            return Err("the recorder did not confirm it had read every event of the session".into());
        }
        Ok(std::mem::take(&mut *t))
    }

    /// With the recorder service, once the command has exited: asks the
    /// service's recorder to read every queued event and say so, as init
    /// asks its own, provided init ended every other process of the
    /// session (`ended`: they can write no more) and the service passes
    /// the request on.
    pub fn sync_service(&mut self, ended: bool) {
        let Some(link) = &self.link else { return };
        self.service_sync = Some(if !self.syncs {
            Err("the recorder service runs an older ws, which does not confirm it read every event (restart it: \
                 `sudo systemctl restart ws-recorder.service`)"
                .into())
        } else if !ended {
            Err("the session's processes did not all end when its command did".into())
        } else {
            use std::io::Write as _;
            (&*link)
                .write_all(&[ws_sandbox::recorder::SYNC])
                .map_err(|e| format!("cannot ask the recorder service to confirm it read every event: {e}"))
        });
    }

    /// With the recorder service: has it drain and end its recorder now,
    /// while the session's init still holds the session's PID namespace
    /// open (its end kills every process there, the recorder too), and
    /// waits for the stream's end.
    pub fn end_service(&mut self) {
        let Some(link) = self.link.take() else { return };
        let _ = link.shutdown(std::net::Shutdown::Write);
        if let Some(t) = self.reader.take() {
            self.ended = Some(t.join().unwrap_or_else(|_| reader_failed()));
        }
    }

    /// Ends the record: waits for the recorder's stream to end, appends the
    /// session's end, seals the log. Returns what ran and what was missed,
    /// and for `ws learn` what the access recorder saw.
    pub fn finish(mut self, exit: Option<ws_snapshot::ExitStatus>) -> (Recording, Option<Learning>) {
        let mut learning = None;
        self.end_service();
        let stream =
            self.ended.take().or_else(|| self.reader.take().map(|t| t.join().unwrap_or_else(|_| reader_failed())));
        if let Some(s) = stream {
            self.recording.gaps.extend(s.gaps);
            self.recording.lost.extend(s.lost);
            if !s.ready {
                self.recording.writes = "none".into();
            }
            if s.no_denials {
                self.recording.denials = "none".into();
            }
            learning = s.learning;
        }
        // The recorder has removed its mark and exited (or never started).
        if let Some(g) = self.group.take() {
            ws_sandbox::recorder::release_by(g, &self.helper);
        }
        if let Some(d) = self.denials.take() {
            d.stop.store(true, Ordering::Relaxed);
            let s = d.thread.join().unwrap_or_else(|_| Stream {
                lost: vec!["denials: the reader of the audit records failed".into()],
                ..Stream::default()
            });
            self.recording.gaps.extend(s.gaps);
            self.recording.lost.extend(s.lost);
        }
        let complete = self.recording.complete();
        let end =
            Event::SessionEnd { exit_code: exit.and_then(|e| e.code), signal: exit.and_then(|e| e.signal), complete };
        let sealed = self.log.append(crate::now_ms(), end).and_then(|_| self.log.seal());
        if let Err(e) = sealed {
            self.recording.lost.push(format!("audit log: {}", crate::chain(&e)));
        }
        (self.recording, learning)
    }
}

fn reader_failed() -> Stream {
    Stream { lost: vec!["writes: the supervisor's reader of the recorder failed".into()], ..Stream::default() }
}

/// Joins the audit log's multicast group, or says in `recording` why denials
/// will not be recorded. Returns the reader and the kernel's lost-record count.
fn start_denials(recording: &mut Recording) -> Option<(ws_sandbox::audit_netlink::Reader, u32)> {
    let why = if !ws_sandbox::privilege::root_available() {
        "reading the kernel's audit records needs root".to_string()
    } else if ws_sandbox::probe::landlock_abi() < 7 {
        "Landlock audit needs ABI 7 (Linux 6.15+)".into()
    } else {
        match ws_sandbox::audit_netlink::status() {
            Ok(st) if st.enabled == 0 => {
                "kernel audit is disabled (enable it with `auditctl -e 1`; see `ws doctor`)".into()
            }
            Err(e) => format!("cannot ask the kernel's audit state: {e}"),
            Ok(st) => match ws_sandbox::audit_netlink::Reader::open() {
                Ok(r) => {
                    recording.denials = "landlock-audit".into();
                    return Some((r, st.lost));
                }
                Err(e) => format!("cannot join the audit log's multicast group: {e}"),
            },
        }
    };
    recording.gaps.push(format!("denials: not recorded: {why}"));
    None
}

/// Whether the process that created a Landlock domain is the session's
/// launcher or its init (the launcher's child).
fn ours(creator: u32, launcher: u32) -> bool {
    if launcher == 0 {
        return false;
    }
    if creator == launcher {
        return true;
    }
    let stat = std::fs::read_to_string(format!("/proc/{creator}/stat")).unwrap_or_default();
    // pid (comm) state ppid …: comm may hold spaces and parentheses.
    let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
    ppid == Some(launcher)
}

/// Reads Landlock denials until told to stop and the group has been quiet
/// for a moment; appends those of the session's domain to the log.
pub fn read_denials(
    mut reader: ws_sandbox::audit_netlink::Reader,
    lost_before: u32,
    is_ours: &dyn Fn(u32) -> bool,
    stop: &AtomicBool,
    emit: &mut dyn FnMut(Denied),
) -> Vec<String> {
    use std::collections::HashMap;
    use ws_sandbox::audit_netlink as an;
    let mut lost = Vec::new();
    // Domain id → whether it is the session's domain.
    let mut domains: HashMap<String, bool> = HashMap::new();
    // Denials waiting for their domain's verdict or their SYSCALL record:
    // (denial, exe of the denied process).
    let mut waiting: Vec<(an::Denial, Option<String>)> = Vec::new();
    let mut dropped = false;
    let mut flush = |waiting: &mut Vec<(an::Denial, Option<String>)>, domains: &HashMap<String, bool>, all: bool| {
        waiting.retain(|(d, exe)| match domains.get(&d.domain) {
            Some(true) if exe.is_some() || all => {
                emit(Denied { exe: exe.clone(), access: d.blockers.clone(), object: d.object.clone() });
                false
            }
            Some(false) => false,
            _ => !all,
        });
    };
    loop {
        // Short waits: once the session ends, a quiet 50 ms ends the reading
        // (the kernel delivers audit records within milliseconds).
        let recs = match reader.next(std::time::Duration::from_millis(50)) {
            Ok(r) => r,
            Err(e) if e.raw_os_error() == Some(105) => {
                // ENOBUFS: the socket overflowed; records were dropped.
                dropped = true;
                continue;
            }
            Err(e) => {
                lost.push(format!("cannot read the audit records: {e}"));
                break;
            }
        };
        if recs.is_empty() && stop.load(Ordering::Relaxed) {
            break;
        }
        for (kind, text) in recs {
            match kind {
                an::LANDLOCK_ACCESS => {
                    if let Some(d) = an::parse_access(&text)
                        && domains.get(&d.domain) != Some(&false)
                    {
                        waiting.push((d, None));
                    }
                }
                an::LANDLOCK_DOMAIN => {
                    if let Some(d) = an::parse_domain(&text)
                        && let Some(pid) = d.allocated_by
                    {
                        domains.insert(d.domain, is_ours(pid));
                    }
                }
                an::SYSCALL => {
                    let serial = an::serial(&text);
                    for (_, exe) in waiting.iter_mut().filter(|(d, _)| d.serial.is_some() && d.serial == serial) {
                        *exe = an::syscall_exe(&text);
                    }
                }
                _ => {}
            }
        }
        flush(&mut waiting, &domains, false);
    }
    flush(&mut waiting, &domains, true);
    let lost_after = ws_sandbox::audit_netlink::status().map(|st| st.lost).unwrap_or(lost_before);
    if dropped {
        lost.push("the audit socket overflowed; some records were dropped".into());
    }
    if lost_after > lost_before {
        lost.push(format!(
            "the kernel dropped {} audit records during the session (some may be this session's; \
             `auditctl -b 8192` gives its audit queue room for bursts)",
            lost_after - lost_before
        ));
    }
    lost
}

/// A Landlock denial of the session's, as [`read_denials`] finds it.
#[derive(Debug)]
pub struct Denied {
    pub exe: Option<String>,
    pub access: Vec<String>,
    pub object: Option<String>,
}

impl Denied {
    fn event(self) -> Event {
        Event::Denial { pid: None, exe: self.exe, access: self.access, object: self.object, by: "landlock".into() }
    }
}

/// Tells the user what the record holds once the session has ended, and
/// warns when it is incomplete.
pub fn report(store: &Store, session: &Session, recording: &Recording, options: &crate::Options) {
    let path = store.audit_log_path(&session.id);
    match ws_snapshot::audit::verify(&path, &session.id) {
        Ok(s) => {
            let writes = if recording.writes == "none" {
                "writes not recorded live (the snapshot diff is the record)".to_string()
            } else {
                format!("{} writes", crate::display::count(s.writes))
            };
            let denials = if recording.denials == "none" {
                "denials not captured (`ws session show` says why)".to_string()
            } else {
                format!("{} denials", crate::display::count(s.denials))
            };
            options.note(&format!("audit log: {writes}, {denials} — `ws log {}`", session.id));
        }
        Err(e) => options.warn(&crate::chain(&e)),
    }
    if !recording.complete() {
        options.warn(&format!("the record of session {} is INCOMPLETE: {}", session.id, recording.lost.join("; ")));
    }
}

/// Ends the record of a session whose supervisor died: says so in the log,
/// seals it, and returns the session's recording marked incomplete.
pub fn close_orphaned(store: &Store, session: &Session) -> Recording {
    let path = store.audit_log_path(&session.id);
    let started = ws_snapshot::audit::read(&path).ok().and_then(|rs| {
        rs.into_iter().find_map(|r| match r.event {
            Event::SessionStart { recording, .. } => Some(recording),
            _ => None,
        })
    });
    let mut recording =
        started.unwrap_or_else(|| Recording { writes: "none".into(), denials: "none".into(), ..Recording::default() });
    let reason = "the supervisor died before the session ended: what happened after is not recorded".to_string();
    recording.lost.push(reason.clone());
    if let Ok(log) = AuditLog::open(&path, &session.id) {
        let _ = log.append(crate::now_ms(), Event::Incomplete { what: "all".into(), reason });
        let _ = log.append(crate::now_ms(), Event::SessionEnd { exit_code: None, signal: None, complete: false });
        let _ = log.seal();
    }
    recording
}

fn op(o: Op) -> WriteOp {
    match o {
        Op::Create => WriteOp::Create,
        Op::Modify => WriteOp::Modify,
        Op::CloseWrite => WriteOp::CloseWrite,
        Op::Delete => WriteOp::Delete,
        Op::Rename => WriteOp::Rename,
        Op::Attrib => WriteOp::Attrib,
    }
}

/// Copies the recorder's messages into the log until the stream ends.
fn read_stream(first: Vec<Message>, pipe: OwnedFd, log: &AuditLog, tracker: &Tracker) -> Stream {
    let mut s = Stream::default();
    let lost = |s: &mut Stream, what: &str, reason: String| {
        let _ = log.append(crate::now_ms(), Event::Incomplete { what: what.into(), reason: reason.clone() });
        s.lost.push(format!("{what}: {reason}"));
    };
    let mut reader = std::io::BufReader::with_capacity(1 << 16, std::fs::File::from(pipe));
    let mut first = first.into_iter();
    loop {
        // Flushed whenever the recorder has nothing more queued, so that
        // `ws log --follow` keeps up and a crash loses little.
        if reader.buffer().is_empty() {
            let _ = log.flush();
        }
        let m = match first.next() {
            Some(m) => m,
            None => {
                let mut line = Vec::new();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                if line.last() == Some(&b'\n') {
                    line.pop();
                }
                let Ok(m) = serde_json::from_slice::<Message>(&line) else {
                    lost(&mut s, "writes", "the recorder sent a line that is not a message".into());
                    continue;
                };
                m
            }
        };
        tracker.note(&m);
        let appended = match m {
            Message::Ready => {
                s.ready = true;
                Ok(0)
            }
            Message::Unavailable { what, reason } => {
                let what = what.unwrap_or_else(|| "writes".into());
                s.no_denials |= what == "denials";
                s.gaps.push(format!("{what}: not recorded: {reason}"));
                Ok(0)
            }
            Message::Write { time_ms, pid, exe, ops, path, to, dir } => {
                log.append(time_ms, Event::Write { pid, exe, ops: ops.into_iter().map(op).collect(), path, to, dir })
            }
            Message::Outside { path, .. } => log.append(crate::now_ms(), Event::OutsideWrite { path }),
            Message::Inode { .. } | Message::Unmapped { .. } | Message::Synced => Ok(0),
            Message::Lost { what, reason } => {
                lost(&mut s, what.as_deref().unwrap_or("writes"), reason);
                Ok(0)
            }
            Message::Denial { exe, access, object } => {
                log.append(crate::now_ms(), Denied { exe, access, object }.event())
            }
            Message::Done { .. } => {
                s.done = true;
                Ok(0)
            }
            Message::Watching { filesystems, skipped } => {
                s.learning = Some(Learning { watched: filesystems, skipped, accessed: Vec::new() });
                Ok(0)
            }
            Message::Accessed { path, access, count } => {
                if let Some(l) = &mut s.learning {
                    l.accessed.push(ws_sandbox::learn::Observed { path: path.into(), access, count });
                }
                Ok(0)
            }
        };
        if let Err(e) = appended {
            s.lost.push(format!("audit log: {}", crate::chain(&e)));
            break;
        }
    }
    if s.ready && !s.done {
        lost(&mut s, "writes", "the recorder stopped before the session ended (killed or crashed)".into());
    } else if !s.ready && s.gaps.is_empty() {
        s.gaps.push("writes: the recorder did not start".into());
    }
    let _ = log.flush();
    s
}

/// Who changed what during a session, from its audit log.
#[derive(Debug, Default)]
pub struct Attribution {
    /// Whether a write recorder ran; without one every change is the session's.
    pub recorded: bool,
    session: BTreeSet<String>,
    /// Directories the session created, removed or moved: everything below is its doing.
    session_dirs: BTreeSet<String>,
    outside: BTreeSet<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Session,
    Outside,
    Both,
}

impl Attribution {
    pub fn load(store: &Store, session: &Session, observer: &dyn crate::Observer) -> Attribution {
        let mut a = Attribution {
            recorded: session.recording.as_ref().is_some_and(|r| r.writes == "fanotify"),
            ..Attribution::default()
        };
        if !a.recorded {
            return a;
        }
        // Only a write from outside can make a change anything but the
        // session's: a log without one (the usual case) needs no parsing.
        let records = match ws_snapshot::audit::read_if_any(&store.audit_log_path(&session.id), "outside_write") {
            Ok(Some(records)) => records,
            Ok(None) => return a,
            Err(e) => {
                // Without the record, nothing proves a change was someone
                // else's: every change counts as the session's.
                let warning = format!("{}; every change counts as the session's", crate::chain(&e));
                observer.event(&crate::Event::Warning(&warning));
                a.recorded = false;
                return a;
            }
        };
        for r in records {
            match r.event {
                Event::Write { path, to, dir, .. } => {
                    if dir {
                        a.session_dirs.insert(path.clone());
                        a.session_dirs.extend(to.clone());
                    }
                    a.session.insert(path);
                    a.session.extend(to);
                }
                Event::OutsideWrite { path } => {
                    a.outside.insert(path);
                }
                _ => {}
            }
        }
        a
    }

    pub fn origin_of(&self, path: &ws_snapshot::RelPath) -> Origin {
        self.origin(&String::from_utf8_lossy(path.as_bytes()))
    }

    pub fn origin(&self, path: &str) -> Origin {
        // Without evidence of an outside writer a change is the session's: the
        // snapshot diff is the ground truth, and a write the recorder could
        // not name (a hard link's other name) must still be rolled back.
        if !self.recorded || !self.outside.contains(path) {
            return Origin::Session;
        }
        let by_session = self.session.contains(path)
            || std::path::Path::new(path).ancestors().skip(1).any(|a| {
                let a = a.to_string_lossy();
                !a.is_empty() && self.session_dirs.contains(a.as_ref())
            });
        if by_session { Origin::Both } else { Origin::Outside }
    }
}

/// A proxy request as an audit record (never carries a secret's value).
pub fn net_event(r: &ws_proxy::RequestEvent) -> Event {
    Event::Net {
        method: r.method.clone(),
        host: if matches!(r.port, 80 | 443) { r.host.clone() } else { format!("{}:{}", r.host, r.port) },
        path: r.path.clone(),
        decision: if r.allowed { "allow" } else { "deny" }.into(),
        rule: (!r.rule.is_empty()).then(|| r.rule.clone()),
        status: r.status,
        bytes_up: r.bytes_up,
        bytes_down: r.bytes_down,
        credential: r.credential.clone(),
        reason: r.reason.clone(),
    }
}
