//! The watch itself: one process (ws starts it by itself, as git starts its
//! fsmonitor daemon) that watches every workspace it was asked about
//! between sessions, and answers "what changed in this workspace since
//! this token" on a Unix socket.
//!
//! - Names: inotify, one watch per directory of each workspace (a directory
//!   on another filesystem, or the snapshot store, is not watched). A
//!   directory made or moved in is reported whole at once, and watched
//!   (with what it holds) once events stop for half a second, or before
//!   the next answer, whichever comes first: a burst (a rollback, a
//!   checkout) is walked once after it, not directory by directory while
//!   it runs. One moved away stops being watched and is reported whole.
//! - Links: a file a workspace names may be written through a name outside
//!   it. Such a file either had several names at the last snapshot (the
//!   caller looks at those every time) or gets one later, which changes its
//!   link count: a fanotify mark on each workspace's filesystem for
//!   attribute changes reports its handle, looked up (to its path, or device and inode)
//!   when a session asks (this needs root). The handles are kept once, in a
//!   journal every workspace's token reads (by the watch's one clock), so
//!   a filesystem's attribute churn costs the same with one workspace as
//!   with a hundred. One process for all workspaces: one notification group
//!   and one inotify instance, of the 128 the kernel allows a user.
//! - Order: every event is queued by the kernel before the write that
//!   caused it returns, so draining both queues after a request arrived
//!   sees every change made before it was sent.
//! - Doubt: a queue overflow, a directory that cannot be watched, too many
//!   changes kept, attribute events not read in time: every token given
//!   until then is refused from then on, and the caller walks.
//! - Memory follows the changes since each workspace's last answer: once a
//!   journal holds more than [`KEEP`] changes, those before the oldest
//!   token still expected (the last one each workspace was given) are
//!   forgotten.
//! - A workspace whose directory went away, or that nobody asked about for
//!   the idle time, is dropped; with none left for that long, the watch ends.
//! - Asked only by ws: a process in another mount namespace (a session's)
//!   gets no answer, and the watch takes at most half the directory watches
//!   the kernel allows root, whatever it is asked.
//!
//! The process holds no descriptor on a workspace's filesystem but while it
//! answers about that workspace (marks do not keep a filesystem from being
//! unmounted).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read as _, Write as _};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd as _, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use rustix::fs::inotify::{self, ReadFlags, WatchFlags};
use ws_sandbox::fanotify;

use crate::journal::{Change, Clock, Journal};
use crate::protocol::{self, Answer, Request};

#[derive(Clone, Debug)]
pub struct Config {
    /// Where to listen.
    pub socket: PathBuf,
    /// Held (flock) while serving: one watch per machine.
    pub lock: PathBuf,
    /// A workspace nobody asked about this long is dropped; the watch ends
    /// when it has none.
    pub idle: Duration,
    /// At most this many distinct changes kept per workspace between snapshots.
    pub limit: usize,
}

/// How long a request waits for the attribute events before it to be read.
const CATCH_UP: Duration = Duration::from_secs(2);
/// A journal holding fewer changes than this keeps them all, even those
/// before the last answer (a session that asked and then failed may ask
/// with its older token again).
pub const KEEP: usize = 4096;

/// Runs the watch until nobody has asked it anything for `idle`.
/// `Ok(false)`: another watch already serves.
pub fn serve(cfg: &Config) -> Result<bool, String> {
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&cfg.lock)
        .map_err(|e| format!("cannot open {}: {e}", cfg.lock.display()))?;
    if rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
        return Ok(false);
    }
    let mut watch = Watch::new(cfg.idle, cfg.limit, 2)?;
    let _ = std::fs::remove_file(&cfg.socket);
    let listener =
        UnixListener::bind(&cfg.socket).map_err(|e| format!("cannot listen on {}: {e}", cfg.socket.display()))?;
    let served = listener
        .set_nonblocking(true)
        .map_err(|e| e.to_string())
        .and_then(|()| watch.run(&Source::Socket { listener: &listener, path: &cfg.socket }));
    // Ours while the lock is held: nobody asks a watch that has ended.
    let _ = std::fs::remove_file(&cfg.socket);
    served.map(|()| true)
}

/// A watch inside this process, for a server that has checked who asks
/// and what they may have (the recorder service asks it for users who are
/// not root): started by the first question, it ends when idle as the
/// watch process does, and the next question starts another (whose tokens
/// are another instance's: that session walks).
pub struct Hosted {
    idle: Duration,
    limit: usize,
    link: Mutex<Option<HostedLink>>,
}

impl std::fmt::Debug for Hosted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hosted").field("idle", &self.idle).field("limit", &self.limit).finish_non_exhaustive()
    }
}

struct HostedLink {
    questions: mpsc::Sender<Question>,
    wake: Arc<OwnedFd>,
}

impl Drop for HostedLink {
    /// Wakes the watch, which finds nobody can ask it any more and ends.
    fn drop(&mut self) {
        let (tx, _) = mpsc::channel();
        drop(std::mem::replace(&mut self.questions, tx));
        let _ = rustix::io::write(&*self.wake, &1u64.to_ne_bytes());
    }
}

/// A question asked through [`Hosted`].
struct Question {
    request: Request,
    /// The device and inode the workspace's root must have: the directory
    /// the asker holds, not whatever its path names by now.
    root_is: (u64, u64),
    /// Who asks: the directories watched for one user are bounded.
    uid: u32,
    reply: mpsc::SyncSender<Answer>,
}

impl Hosted {
    pub fn new(idle: Duration, limit: usize) -> Hosted {
        Hosted { idle, limit, link: Mutex::new(None) }
    }

    /// What changed in the workspace `request` names since its token,
    /// provided its root is still the directory `root_is` (device, inode)
    /// the asker was checked against: a path that names another directory
    /// by now is refused, and no directory below it is reached through a
    /// symbolic link. `uid`: whom the server answers; the directories
    /// watched for one user are at most half of what the watch takes, so
    /// one user cannot leave none for others. `Err`: the watch could not
    /// start or did not answer within `patience`.
    pub fn ask(&self, request: Request, root_is: (u64, u64), uid: u32, patience: Duration) -> Result<Answer, String> {
        // Twice at most: a watch that ended (idle) before or while it was
        // asked drops the question, and another one is started.
        for _ in 0..2 {
            let (tx, rx) = mpsc::sync_channel(1);
            let question = Question { request: request.clone(), root_is, uid, reply: tx };
            let asked = {
                let mut link = self.link.lock().unwrap_or_else(|p| p.into_inner());
                let l = match link.take() {
                    Some(l) => l,
                    None => self.start()?,
                };
                if l.questions.send(question).is_err() {
                    continue;
                }
                let _ = rustix::io::write(&*l.wake, &1u64.to_ne_bytes());
                let asked = Some(Arc::as_ptr(&l.wake));
                *link = Some(l);
                asked
            };
            match rx.recv_timeout(patience) {
                Ok(a) => return Ok(a),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // That watch ended with the question unanswered: not
                    // asked again (unless another asker started a new one).
                    let mut link = self.link.lock().unwrap_or_else(|p| p.into_inner());
                    if link.as_ref().map(|l| Arc::as_ptr(&l.wake)) == asked {
                        *link = None;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(format!("the watch did not answer within {} s", patience.as_secs()));
                }
            }
        }
        Err("the watch ended twice while asked".to_string())
    }

    fn start(&self) -> Result<HostedLink, String> {
        let mut watch = Watch::new(self.idle, self.limit, 4)?;
        let wake =
            rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK)
                .map_err(|e| format!("cannot start the watch (eventfd): {e}"))?;
        let wake = Arc::new(wake);
        let (tx, rx) = mpsc::channel();
        let theirs = Arc::clone(&wake);
        std::thread::Builder::new()
            .name("watch".into())
            .spawn(move || {
                // Ends when idle; questions still queued then are dropped
                // with it, and their askers start another.
                let source = Source::Hosted { wake: &theirs, questions: &rx, closed: std::cell::Cell::new(false) };
                let _ = watch.run(&source);
            })
            .map_err(|e| format!("cannot start the watch's thread: {e}"))?;
        Ok(HostedLink { questions: tx, wake })
    }
}

/// Where questions come from.
enum Source<'a> {
    /// The watch process's socket: ws's own processes ask there.
    Socket { listener: &'a UnixListener, path: &'a Path },
    /// Another part of this process ([`Hosted`]); `closed`: its asker is gone.
    Hosted { wake: &'a OwnedFd, questions: &'a mpsc::Receiver<Question>, closed: std::cell::Cell<bool> },
}

enum Asked {
    Stream(UnixStream),
    Question(Question),
}

impl Source<'_> {
    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Source::Socket { listener, .. } => listener.as_fd(),
            Source::Hosted { wake, .. } => wake.as_fd(),
        }
    }

    /// The questions asked so far.
    fn take(&self) -> Vec<Asked> {
        match self {
            Source::Socket { listener, .. } => {
                std::iter::from_fn(|| listener.accept().ok()).map(|(s, _)| Asked::Stream(s)).collect()
            }
            Source::Hosted { wake, questions, closed } => {
                let mut count = [0u8; 8];
                let _ = rustix::io::read(wake, &mut count);
                let mut asked = Vec::new();
                loop {
                    match questions.try_recv() {
                        Ok(q) => asked.push(Asked::Question(q)),
                        Err(mpsc::TryRecvError::Empty) => break,
                        Err(mpsc::TryRecvError::Disconnected) => {
                            closed.set(true);
                            break;
                        }
                    }
                }
                asked
            }
        }
    }

    /// Nobody can ask any more.
    fn gone(&self) -> bool {
        match self {
            Source::Socket { path, .. } => !path.exists(),
            Source::Hosted { closed, .. } => closed.get(),
        }
    }
}

/// One watched workspace.
struct Space {
    root: PathBuf,
    /// The root's device and inode when it was taken on: a path that names
    /// another directory later is not this workspace.
    root_id: (u64, u64),
    /// The user it is watched for (through [`Hosted`]); `None`: ws's own.
    owner: Option<u32>,
    dev: u64,
    skip: Vec<(u64, u64)>,
    journal: Journal,
    last_asked: Instant,
    /// The clock at its last answer: the token it is expected to ask with next.
    given: u64,
}

/// Everything the watch noted, by one clock.
struct Journals {
    clock: Clock,
    spaces: HashMap<u64, Space>,
    /// The handles of files whose attributes changed, on every marked
    /// filesystem: one journal for all workspaces.
    handles: Journal,
}

impl Journals {
    fn note(&mut self, id: u64, change: Change) {
        if let Some(s) = self.spaces.get_mut(&id) {
            s.journal.note(change, &mut self.clock);
        }
    }

    fn blind(&mut self, id: u64, why: String) {
        if let Some(s) = self.spaces.get_mut(&id) {
            s.journal.blind(why, &mut self.clock);
        }
    }

    /// Path events were lost: no workspace's token holds.
    fn lose_paths(&mut self, why: &str) {
        for s in self.spaces.values_mut() {
            s.journal.lose(why.to_string(), &mut self.clock);
        }
    }

    /// Forgets what no workspace is expected to ask about again.
    fn forget(&mut self) {
        for s in self.spaces.values_mut() {
            s.journal.forget(s.given, KEEP);
        }
        let oldest = self.spaces.values().map(|s| s.given).min().unwrap_or(self.clock.now());
        self.handles.forget(oldest, KEEP);
    }
}

struct Watch {
    idle: Duration,
    limit: usize,
    names: Names,
    links: Links,
    journals: Journals,
    next_id: u64,
}

impl Watch {
    /// A watch taking at most 1/`share` of the directory watches the
    /// kernel allows its user.
    fn new(idle: Duration, limit: usize, share: usize) -> Result<Watch, String> {
        let group =
            fanotify::Group::new().map_err(|e| format!("cannot watch link counts (fanotify needs root): {e}"))?;
        Ok(Watch {
            idle,
            limit,
            names: Names::new(share)?,
            links: Links { group, marked: HashSet::new() },
            journals: Journals {
                clock: Clock::default(),
                spaces: HashMap::new(),
                handles: Journal::new(instance()?, limit.min(HANDLES_KEPT)),
            },
            next_id: 0,
        })
    }

    fn run(&mut self, source: &Source) -> Result<(), String> {
        let mut last_asked = Instant::now();
        let mut buf = vec![MaybeUninit::<u8>::uninit(); 64 * 1024];
        let mut fbuf = vec![0u8; 64 * 1024];
        loop {
            let mut fds = [
                rustix::event::PollFd::new(&self.names.fd, rustix::event::PollFlags::IN),
                rustix::event::PollFd::new(&self.links.group, rustix::event::PollFlags::IN),
                rustix::event::PollFd::from_borrowed_fd(source.fd(), rustix::event::PollFlags::IN),
            ];
            // Directories made in a burst are walked once it is over.
            let tick = match self.names.pending.is_empty() {
                true => rustix::event::Timespec { tv_sec: 1, tv_nsec: 0 },
                false => rustix::event::Timespec { tv_sec: 0, tv_nsec: QUIET_NS },
            };
            let quiet = match rustix::event::poll(&mut fds, Some(&tick)) {
                Ok(n) => n == 0,
                Err(rustix::io::Errno::INTR) => false,
                Err(e) => return Err(format!("poll: {e}")),
            };
            let mut asked = !fds[2].revents().is_empty();
            if !asked && fds[..2].iter().any(|f| !f.revents().is_empty()) {
                // Let events gather: one wake a batch, not one a file (a
                // build makes thousands a second). A request cuts it short.
                let mut l = [rustix::event::PollFd::from_borrowed_fd(source.fd(), rustix::event::PollFlags::IN)];
                let gather = rustix::event::Timespec { tv_sec: 0, tv_nsec: GATHER_NS };
                asked = matches!(rustix::event::poll(&mut l, Some(&gather)), Ok(n) if n > 0);
            }
            self.names.drain(&mut buf, &mut self.journals);
            if quiet {
                self.names.walk_pending(&mut self.journals);
            }
            // Between requests, a bounded turn: a request waiting is served soon.
            self.links.drain(&mut fbuf, &mut self.journals, Instant::now() + Duration::from_millis(200));
            if asked {
                for asked in source.take() {
                    // Everything written before the question was asked is queued by now.
                    self.names.drain(&mut buf, &mut self.journals);
                    // Watched before the answer's token: what changes in
                    // them after it has events (before it, they are whole).
                    self.names.walk_pending(&mut self.journals);
                    let caught_up = self.links.drain(&mut fbuf, &mut self.journals, Instant::now() + CATCH_UP);
                    match asked {
                        Asked::Stream(stream) => self.answer(stream, caught_up),
                        Asked::Question(q) => {
                            let reply = self.reply(&q.request, Some((q.root_is, q.uid)), caught_up);
                            let _ = q.reply.try_send(reply);
                        }
                    }
                    last_asked = Instant::now();
                }
            }
            self.drop_spaces();
            self.journals.forget();
            if self.journals.spaces.is_empty() && last_asked.elapsed() > self.idle || source.gone() {
                return Ok(());
            }
        }
    }

    /// Drops the workspaces that went away or that nobody asks about.
    fn drop_spaces(&mut self) {
        let idle = self.idle;
        let gone: Vec<u64> = self
            .journals
            .spaces
            .iter()
            .filter(|(id, s)| s.last_asked.elapsed() > idle || !self.names.watches_root(**id))
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            self.names.forget_space(id);
            self.journals.spaces.remove(&id);
        }
    }

    /// Reads a question from the watch's socket and answers it.
    fn answer(&mut self, mut stream: UnixStream, caught_up: bool) {
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while line.len() < protocol::REQUEST_MAX && !line.ends_with(b"\n") {
            match stream.read(&mut byte) {
                Ok(1) => line.push(byte[0]),
                _ => return,
            }
        }
        let Some(request) = protocol::decode_request(&line) else { return };
        if !same_mount_namespace(&stream) {
            // A session's process (in a mount namespace of its own) may
            // reach the socket; what it asks for would make the watch walk
            // and watch trees of its choosing. Only ws itself asks.
            return;
        }
        let reply = self.reply(&request, None, caught_up);
        let _ = stream.write_all(&protocol::encode_answer(&reply));
    }

    /// The answer to `request`; `asker`: the device and inode its root
    /// must have, and the user asking (none: ws's own process asks).
    fn reply(&mut self, request: &Request, asker: Option<((u64, u64), u32)>, caught_up: bool) -> Answer {
        let id = self.space(request, asker);
        let journals = &mut self.journals;
        match id.and_then(|id| journals.spaces.get_mut(&id).ok_or_else(String::new)) {
            Err(why) => Answer::Refused { now: crate::journal::Token { instance: 0, seq: 0 }, why },
            Ok(space) => {
                space.last_asked = Instant::now();
                let now = space.journal.now(&journals.clock);
                space.given = now.seq;
                match request.since {
                    None => Answer::Changes { now, changes: Vec::new() },
                    Some(_) if !caught_up => Answer::Refused {
                        now,
                        why: format!(
                            "the watch could not read the filesystem's attribute changes within {} s",
                            CATCH_UP.as_secs()
                        ),
                    },
                    Some(t) => {
                        let handles = &journals.handles;
                        let seen = space.journal.since(t, &journals.clock).and_then(|mut changes| {
                            changes.extend(handles.since(handles.at(t), &journals.clock)?);
                            Ok(changes)
                        });
                        match seen {
                            Ok(changes) => match resolve(&space.root, changes) {
                                Ok(changes) => Answer::Changes { now, changes },
                                Err(why) => Answer::Refused { now, why },
                            },
                            Err(why) => Answer::Refused { now, why: why.to_string() },
                        }
                    }
                }
            }
        }
    }

    /// The workspace a request names, watched from now on if it was not.
    /// `asker`: the device and inode its root must have (a workspace
    /// watched at that path for another directory is dropped), and who
    /// asks.
    fn space(&mut self, r: &Request, asker: Option<((u64, u64), u32)>) -> Result<u64, String> {
        let (root_is, owner) = (asker.map(|a| a.0), asker.map(|a| a.1));
        let replaced = || format!("{} is no longer the directory asked about", r.root.display());
        // Asked for a directory: its path must still name it.
        let checked = match root_is {
            Some(want) => match open_identified(&r.root) {
                Ok((fd, id)) if id == want => Some((fd, id)),
                _ => return Err(replaced()),
            },
            None => None,
        };
        let mut found = self.journals.spaces.iter().find(|(_, s)| s.root == r.root).map(|(id, _)| *id);
        if let (Some(id), Some(want)) = (found, root_is)
            && self.journals.spaces.get(&id).is_some_and(|s| s.root_id != want)
        {
            self.names.forget_space(id);
            self.journals.spaces.remove(&id);
            found = None;
        }
        if let Some(id) = found {
            return Ok(id);
        }
        let (root, root_id) = match checked {
            Some(c) => c,
            None => open_identified(&r.root).map_err(|e| format!("{}: {e}", r.root.display()))?,
        };
        let dev = root_id.0;
        // Through the descriptor: the filesystem of the directory checked.
        self.links
            .mark(&fd_path(root.as_fd()), dev)
            .map_err(|e| format!("cannot watch the link counts on {}'s filesystem: {e}", r.root.display()))?;
        drop(root);
        let skip = [Some(r.store.as_path()), r.store.parent()]
            .into_iter()
            .flatten()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| (m.dev(), m.ino()))
            .collect();
        let id = self.next_id;
        self.next_id += 1;
        let space = Space {
            root: r.root.clone(),
            root_id,
            owner,
            dev,
            skip,
            journal: Journal::new(instance()?, self.limit),
            last_asked: Instant::now(),
            given: self.journals.clock.now(),
        };
        self.journals.spaces.insert(id, space);
        self.names.add_tree(id, b"", &mut self.journals);
        if !self.names.watches_root(id) {
            self.names.forget_space(id);
            self.journals.spaces.remove(&id);
            return Err(format!("cannot watch {}", r.root.display()));
        }
        Ok(id)
    }
}

/// How the watch opens directories: for listing, never through a symbolic
/// link at the end, and without touching their access time (a listing
/// would otherwise dirty every directory a burst just made: the watch
/// runs as root, which may ask that of any directory).
const DIR_FLAGS: rustix::fs::OFlags = rustix::fs::OFlags::RDONLY
    .union(rustix::fs::OFlags::DIRECTORY)
    .union(rustix::fs::OFlags::NOFOLLOW)
    .union(rustix::fs::OFlags::CLOEXEC)
    .union(rustix::fs::OFlags::NOATIME);

/// A directory opened as [`DIR_FLAGS`] says.
fn open_dir(path: &Path) -> rustix::io::Result<OwnedFd> {
    rustix::fs::open(path, DIR_FLAGS, rustix::fs::Mode::empty())
}

/// A directory opened as [`open_dir`] does, and its device and inode.
fn open_identified(path: &Path) -> rustix::io::Result<(OwnedFd, (u64, u64))> {
    let fd = open_dir(path)?;
    let st = rustix::fs::fstat(&fd)?;
    Ok((fd, dev_ino(&st)))
}

/// A file's device and inode, as `std`'s metadata gives them.
#[allow(clippy::unnecessary_cast)] // widths differ between architectures
fn dev_ino(st: &rustix::fs::Stat) -> (u64, u64) {
    (st.st_dev as u64, st.st_ino as u64)
}

/// A random journal instance: tokens of another watch are never believed.
fn instance() -> Result<u64, String> {
    let mut instance = [0u8; 8];
    rustix::rand::getrandom(&mut instance, rustix::rand::GetRandomFlags::empty())
        .map_err(|e| format!("cannot draw a journal's instance: {e}"))?;
    Ok(u64::from_ne_bytes(instance))
}

/// The name of an open descriptor that the kernel resolves to it alone.
fn fd_path(fd: BorrowedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// The attribute side: the handles of files whose attributes changed, noted
/// once in the shared journal as they come and looked up (to a path, or
/// device and inode) only when a session asks (a handle names one inode for
/// good: it carries its generation).
struct Links {
    group: fanotify::Group,
    /// Devices whose filesystem is marked.
    marked: HashSet<u64>,
}

/// How long events may gather before they are read (10 ms).
const GATHER_NS: i64 = 10_000_000;
/// How long without events ends a burst, after which the directories it
/// made are walked (half a second).
const QUIET_NS: i64 = 500_000_000;

/// Attribute changes the shared journal keeps at most: a workspace asked
/// once and not since holds back what may be forgotten, so past this many
/// the journal loses them (every workspace walks once) rather than grow.
const HANDLES_KEPT: usize = 100_000;

impl Links {
    fn mark(&mut self, root: &Path, dev: u64) -> std::io::Result<()> {
        if !self.marked.contains(&dev) {
            self.group.mark_filesystem(root, libc::FAN_ATTRIB)?;
            self.marked.insert(dev);
        }
        Ok(())
    }

    /// Reads the attribute events queued so far and notes their handles in
    /// the shared journal. `false` when the queue was not emptied by
    /// `deadline` (events come faster than they are read).
    fn drain(&mut self, buf: &mut [u8], journals: &mut Journals, deadline: Instant) -> bool {
        loop {
            if Instant::now() > deadline {
                return false;
            }
            match self.group.read(buf) {
                Ok(0) => return true,
                Ok(n) => {
                    for ev in fanotify::events(&buf[..n]) {
                        if ev.mask & libc::FAN_Q_OVERFLOW != 0 {
                            journals
                                .handles
                                .lose("the kernel dropped attribute events".to_string(), &mut journals.clock);
                        }
                        if let Some(h) = ev.target {
                            journals.handles.note(Change::Handle(h.to_vec()), &mut journals.clock);
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    journals.handles.lose(format!("cannot read attribute events: {e}"), &mut journals.clock);
                    return true;
                }
            }
        }
    }
}

/// The changes of an answer for the workspace at `root`, handles looked
/// up on its filesystem: one of another filesystem names nothing there
/// (ESTALE), or another file, which is only looked at once more. A file
/// with one name, inside the workspace, is named by that path (looking
/// it up by inode would take the caller's whole listing); one with no
/// name left, or its one name outside the workspace, is skipped (its
/// names were seen going, or it is none of the workspace's); any other,
/// by device and inode.
fn resolve(root: &Path, changes: Vec<Change>) -> Result<Vec<Change>, String> {
    if !changes.iter().any(|c| matches!(c, Change::Handle(_))) {
        return Ok(changes);
    }
    let mount = std::fs::File::open(root).map_err(|e| format!("cannot open {}: {e}", root.display()))?;
    let mut out = Vec::with_capacity(changes.len());
    let mut seen = HashSet::new();
    for c in changes {
        let Change::Handle(h) = c else {
            out.push(c);
            continue;
        };
        let fd = match fanotify::open_by_handle(mount.as_fd(), &h) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ESTALE) => continue,
            Err(e) => return Err(format!("cannot look up a file whose attributes changed: {e}")),
        };
        let Ok(st) = rustix::fs::fstat(&fd) else { continue };
        if !rustix::fs::FileType::from_raw_mode(st.st_mode).is_file() || st.st_nlink == 0 {
            continue;
        }
        // Its one name, as this process sees it, checked: a file whose
        // only name is outside the workspace is none of its own (a
        // store's manifest replaced, a build elsewhere), and one inside
        // is looked at by that name. A file shown detached from the tree
        // goes by its inode.
        if st.st_nlink == 1
            && let Some(name) = fanotify::checked_name(fd.as_fd())
        {
            if let Ok(rel) = name.strip_prefix(root) {
                out.push(Change::Path(rel.as_os_str().as_bytes().to_vec()));
            }
            continue;
        }
        let inode = dev_ino(&st);
        if seen.insert(inode) {
            out.push(Change::Inode(inode.0, inode.1));
        }
    }
    Ok(out)
}

/// The peer is in this process's mount namespace (not a session's).
fn same_mount_namespace(stream: &UnixStream) -> bool {
    let Ok(peer) = rustix::net::sockopt::socket_peercred(stream) else { return false };
    let ns = |pid: &str| std::fs::metadata(format!("/proc/{pid}/ns/mnt")).ok().map(|m| (m.dev(), m.ino()));
    let theirs = ns(&peer.pid.as_raw_nonzero().to_string());
    theirs.is_some() && theirs == ns("self")
}

const MASK: WatchFlags = WatchFlags::MODIFY
    .union(WatchFlags::ATTRIB)
    .union(WatchFlags::CLOSE_WRITE)
    .union(WatchFlags::CREATE)
    .union(WatchFlags::DELETE)
    .union(WatchFlags::DELETE_SELF)
    .union(WatchFlags::MOVE_SELF)
    .union(WatchFlags::MOVED_FROM)
    .union(WatchFlags::MOVED_TO)
    // Watched through `/proc/self/fd/N`: that name is followed to the
    // directory the descriptor holds, which was opened without following.
    .union(WatchFlags::ONLYDIR);

/// The inotify side: a watch per directory, and the path it stands for in
/// each workspace (one directory may be in two nested workspaces; inotify
/// gives it one watch).
struct Names {
    fd: OwnedFd,
    paths: HashMap<i32, Vec<(u64, Vec<u8>)>>,
    /// The same by workspace and path: a subtree is a range, found without
    /// looking at every directory watched.
    dirs: HashMap<u64, BTreeMap<Vec<u8>, i32>>,
    /// Directories watched at most (a share of what the kernel allows the
    /// user): a tree beyond it is walked by its sessions instead.
    budget: usize,
    /// Directories made or moved in, reported whole, not watched yet: they
    /// are walked once events stop coming for a moment, or before a
    /// question is answered ([`Names::walk_pending`]). A burst (a
    /// rollback, a checkout, an unpacked archive) is then walked once,
    /// after it, instead of directory by directory while it runs, and
    /// what it writes in them raises no event meanwhile. Nothing is
    /// missed: until a directory is watched, the journal holds it whole.
    pending: std::collections::BTreeSet<(u64, Vec<u8>)>,
}

impl Names {
    fn new(share: usize) -> Result<Names, String> {
        let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)
            .map_err(|e| format!("cannot start watching (inotify): {e}"))?;
        let allowed = std::fs::read_to_string("/proc/sys/fs/inotify/max_user_watches")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(8192);
        Ok(Names {
            fd,
            paths: HashMap::new(),
            dirs: HashMap::new(),
            budget: allowed / share.max(1),
            pending: std::collections::BTreeSet::new(),
        })
    }

    fn watches_root(&self, id: u64) -> bool {
        self.dirs.get(&id).is_some_and(|d| d.contains_key(&b""[..]))
    }

    /// Watches `rel` and every directory below it, in workspace `id`.
    /// Every directory is opened from the workspace's root (checked to be
    /// the one taken on) without following a symbolic link or leaving the
    /// mount, and watched and listed through that descriptor: a directory
    /// swapped for a link while it is reached is not watched (its parent's
    /// events say it changed), so no name outside the workspace is
    /// reported as one in it.
    fn add_tree(&mut self, id: u64, rel: &[u8], journals: &mut Journals) {
        let Some(space) = journals.spaces.get(&id) else { return };
        let (dev, skip, owner) = (space.dev, space.skip.clone(), space.owner);
        // What the owner's workspaces take already: one user gets at most
        // half of the watch's directories.
        let mut theirs: usize = match owner {
            Some(uid) => journals
                .spaces
                .iter()
                .filter(|(_, s)| s.owner == Some(uid))
                .map(|(sid, _)| self.dirs.get(sid).map_or(0, BTreeMap::len))
                .sum(),
            None => 0,
        };
        let top = match open_identified(&space.root) {
            Ok((fd, id)) if id == space.root_id => fd,
            Ok(_) => return journals.blind(id, format!("{} is another directory now", space.root.display())),
            Err(e) => return journals.blind(id, format!("cannot open {}: {e}", space.root.display())),
        };
        let mut stack = vec![rel.to_vec()];
        while let Some(dir) = stack.pop() {
            if self.paths.len() >= self.budget {
                journals.blind(id, format!("more directories than the watch takes ({})", self.budget));
                return;
            }
            if owner.is_some() && theirs >= self.budget / 2 {
                journals.blind(id, format!("more directories than the watch takes for one user ({})", self.budget / 2));
                return;
            }
            let opened;
            let fd = if dir.is_empty() {
                top.as_fd()
            } else {
                match open_beneath(&top, &dir) {
                    Ok(fd) => {
                        opened = fd;
                        opened.as_fd()
                    }
                    // Gone, replaced, or not the workspace's own: its
                    // parent's events say so, or the session looks.
                    Err(
                        rustix::io::Errno::NOENT
                        | rustix::io::Errno::NOTDIR
                        | rustix::io::Errno::LOOP
                        | rustix::io::Errno::XDEV,
                    ) => continue,
                    Err(e) => {
                        journals.blind(id, format!("cannot open {}: {e}", String::from_utf8_lossy(&dir)));
                        continue;
                    }
                }
            };
            match inotify::add_watch(&self.fd, fd_path(fd), MASK) {
                // Watched at this path already, and listed then: whatever
                // came into it since has its own events (a burst reports a
                // directory made inside one the watch has just walked).
                Ok(wd) if self.dirs.get(&id).and_then(|d| d.get(&dir)) == Some(&wd) => continue,
                Ok(wd) => {
                    self.link(id, dir.clone(), wd);
                    theirs += 1;
                }
                Err(e) => {
                    journals.blind(id, format!("cannot watch {}: {e}", String::from_utf8_lossy(&dir)));
                    continue;
                }
            }
            let entries = match rustix::fs::Dir::read_from(fd) {
                Ok(entries) => entries,
                Err(e) => {
                    journals.blind(id, format!("cannot list {}: {e}", String::from_utf8_lossy(&dir)));
                    continue;
                }
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_bytes();
                let maybe_dir =
                    matches!(entry.file_type(), rustix::fs::FileType::Directory | rustix::fs::FileType::Unknown);
                if name == b"." || name == b".." || !maybe_dir {
                    continue;
                }
                let Ok(st) = rustix::fs::statat(fd, entry.file_name(), rustix::fs::AtFlags::SYMLINK_NOFOLLOW) else {
                    continue;
                };
                let at = dev_ino(&st);
                if !rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir() || at.0 != dev || skip.contains(&at) {
                    continue;
                }
                stack.push(join(&dir, name));
            }
        }
    }

    /// Watches the directories made or moved in since the last call (and
    /// what they hold), each once: one below another walked now is walked
    /// with it.
    fn walk_pending(&mut self, journals: &mut Journals) {
        let pending = std::mem::take(&mut self.pending);
        let mut walked: HashSet<(u64, &[u8])> = HashSet::new();
        for (id, path) in &pending {
            let covered =
                path.iter().enumerate().filter(|(_, b)| **b == b'/').any(|(i, _)| walked.contains(&(*id, &path[..i])));
            if covered {
                continue;
            }
            self.add_tree(*id, path, journals);
            walked.insert((*id, path));
        }
    }

    /// Watch `wd` stands for `dir` in workspace `id` (and for no other path there).
    fn link(&mut self, id: u64, dir: Vec<u8>, wd: i32) {
        let at = self.paths.entry(wd).or_default();
        let before: Vec<Vec<u8>> = at.iter().filter(|(s, _)| *s == id).map(|(_, p)| p.clone()).collect();
        at.retain(|(s, _)| *s != id);
        at.push((id, dir.clone()));
        let dirs = self.dirs.entry(id).or_default();
        for p in before {
            dirs.remove(&p);
        }
        if let Some(old) = dirs.insert(dir.clone(), wd)
            && old != wd
        {
            self.unlink(id, &dir, old);
        }
    }

    /// Watch `wd` no longer stands for `dir` in workspace `id`; it ends
    /// when it stands for nothing.
    fn unlink(&mut self, id: u64, dir: &[u8], wd: i32) {
        let Some(at) = self.paths.get_mut(&wd) else { return };
        at.retain(|(s, p)| !(*s == id && p == dir));
        if at.is_empty() {
            self.paths.remove(&wd);
            let _ = inotify::remove_watch(&self.fd, wd);
        }
    }

    /// Stops watching `rel` and everything below it, in workspace `id`.
    fn remove_tree(&mut self, id: u64, rel: &[u8]) {
        let Some(dirs) = self.dirs.get_mut(&id) else { return };
        let gone: Vec<(Vec<u8>, i32)> =
            subtree(dirs, rel).into_iter().filter_map(|p| dirs.remove(&p).map(|wd| (p, wd))).collect();
        for (p, wd) in gone {
            self.unlink(id, &p, wd);
        }
    }

    /// Stops watching workspace `id`.
    fn forget_space(&mut self, id: u64) {
        self.remove_tree(id, b"");
        self.dirs.remove(&id);
    }

    fn drain(&mut self, buf: &mut [MaybeUninit<u8>], journals: &mut Journals) {
        let mut events = Vec::new();
        {
            let mut reader = inotify::Reader::new(&self.fd, buf);
            loop {
                match reader.next() {
                    Ok(ev) => events.push((
                        ev.wd(),
                        ev.events(),
                        ev.file_name().map(|n| n.to_bytes().to_vec()).filter(|n| !n.is_empty()),
                    )),
                    Err(rustix::io::Errno::WOULDBLOCK) => break,
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(e) => {
                        journals.lose_paths(&format!("cannot read the watch's events: {e}"));
                        break;
                    }
                }
            }
        }
        for (wd, mask, name) in events {
            if mask.contains(ReadFlags::QUEUE_OVERFLOW) {
                journals.lose_paths("the kernel's event queue overflowed");
                continue;
            }
            for (id, dir) in self.paths.get(&wd).cloned().unwrap_or_default() {
                self.on_event(wd, id, dir, mask, name.as_deref(), journals);
            }
        }
    }

    fn on_event(
        &mut self,
        wd: i32,
        id: u64,
        dir: Vec<u8>,
        mask: ReadFlags,
        name: Option<&[u8]>,
        journals: &mut Journals,
    ) {
        if mask.intersects(ReadFlags::IGNORED | ReadFlags::UNMOUNT) {
            // The directory is gone (or its filesystem): its parent said so.
            for (id, p) in self.paths.remove(&wd).unwrap_or_default() {
                if let Some(dirs) = self.dirs.get_mut(&id)
                    && dirs.get(&p) == Some(&wd)
                {
                    dirs.remove(&p);
                }
            }
            return;
        }
        if name.is_none() && mask.intersects(ReadFlags::DELETE_SELF | ReadFlags::MOVE_SELF) {
            if dir.is_empty() {
                // The workspace itself: dropped (and walked if it comes back).
                self.remove_tree(id, b"");
            }
            return;
        }
        let path = match name {
            Some(n) => join(&dir, n),
            None => dir,
        };
        let is_dir = mask.contains(ReadFlags::ISDIR);
        if is_dir && mask.intersects(ReadFlags::CREATE | ReadFlags::MOVED_TO) {
            self.pending.insert((id, path.clone()));
            journals.note(id, Change::Whole(path));
        } else if is_dir && mask.intersects(ReadFlags::MOVED_FROM | ReadFlags::DELETE) {
            self.remove_tree(id, &path);
            journals.note(id, Change::Whole(path));
        } else {
            journals.note(id, Change::Path(path));
        }
    }
}

/// The directory `rel` below `top`, with no symbolic link on the way, not
/// above `top`, and on its mount. A rename racing the lookup makes the
/// kernel refuse it (`EAGAIN`): tried again a few times.
fn open_beneath(top: &OwnedFd, rel: &[u8]) -> rustix::io::Result<OwnedFd> {
    use rustix::fs::{Mode, ResolveFlags};
    let flags = DIR_FLAGS;
    let how = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_XDEV;
    let mut tries = 0;
    loop {
        match rustix::fs::openat2(top, rel, flags, Mode::empty(), how) {
            Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) if tries < 8 => tries += 1,
            r => return r,
        }
    }
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    if dir.is_empty() {
        return name.to_vec();
    }
    let mut p = dir.to_vec();
    p.push(b'/');
    p.extend_from_slice(name);
    p
}

/// The paths of `dirs` that are `rel` or below it, by component (`a-b` and
/// `ab` are not below `a`, though they sort among its children).
fn subtree<V>(dirs: &BTreeMap<Vec<u8>, V>, rel: &[u8]) -> Vec<Vec<u8>> {
    if rel.is_empty() {
        return dirs.keys().cloned().collect();
    }
    let (mut lo, mut hi) = (rel.to_vec(), rel.to_vec());
    lo.push(b'/');
    hi.push(b'/' + 1);
    let own = dirs.contains_key(rel).then(|| rel.to_vec());
    own.into_iter().chain(dirs.range(lo..hi).map(|(p, _)| p.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_join_and_nest_by_component() {
        assert_eq!(join(b"", b"a"), b"a");
        assert_eq!(join(b"a/b", b"c"), b"a/b/c");
        let dirs: BTreeMap<Vec<u8>, ()> =
            ["", "a", "a-b", "a/b", "a/b/c", "a0", "ab", "b"].iter().map(|p| (p.as_bytes().to_vec(), ())).collect();
        let below = |rel: &str| -> Vec<String> {
            subtree(&dirs, rel.as_bytes()).iter().map(|p| String::from_utf8_lossy(p).into_owned()).collect()
        };
        assert_eq!(below("a"), ["a", "a/b", "a/b/c"]);
        assert_eq!(below("a/b"), ["a/b", "a/b/c"]);
        assert_eq!(below("x"), Vec::<String>::new());
        assert_eq!(below("").len(), dirs.len());
    }

    /// Workspace `id` at `root`, watched for `owner`.
    fn space(journals: &mut Journals, id: u64, root: &Path, owner: Option<u32>) {
        let st = std::fs::metadata(root).unwrap();
        let space = Space {
            root: root.to_path_buf(),
            root_id: (st.dev(), st.ino()),
            owner,
            dev: st.dev(),
            skip: Vec::new(),
            journal: Journal::new(7, 1000),
            last_asked: Instant::now(),
            given: 0,
        };
        journals.spaces.insert(id, space);
    }

    /// One user's workspaces take at most half of the directories the
    /// watch takes (the service's watch serves every user): past that
    /// their sessions walk, and another user's workspace is still watched.
    #[test]
    fn one_user_cannot_take_every_directory_the_watch_has() {
        let tmp = tempfile::tempdir().unwrap();
        let mk = |name: &str, dirs: usize| {
            let root = tmp.path().join(name);
            std::fs::create_dir_all(&root).unwrap();
            for i in 0..dirs {
                std::fs::create_dir_all(root.join(format!("d{i}"))).unwrap();
            }
            root
        };
        let mut names = Names::new(2).unwrap();
        names.budget = 10;
        let mut journals = Journals { clock: Clock::default(), spaces: HashMap::new(), handles: Journal::new(1, 10) };
        for (id, (root, owner)) in [(mk("a", 8), 1), (mk("b", 3), 2), (mk("c", 0), 1)].into_iter().enumerate() {
            space(&mut journals, id as u64, &root, Some(owner));
        }
        let t = journals.spaces[&0].journal.now(&journals.clock);
        for id in 0..3 {
            names.add_tree(id, b"", &mut journals);
        }
        let watched = |id: u64| names.dirs.get(&id).map_or(0, BTreeMap::len);
        assert_eq!((watched(0), watched(1), watched(2)), (5, 4, 0));
        let refused = |id: u64| journals.spaces[&id].journal.since(t, &journals.clock).is_err();
        assert!(refused(0) && refused(2), "user 1's workspaces walk");
        assert!(!refused(1), "user 2's is still watched");
    }

    /// A directory that is a symbolic link by the time the watch reaches
    /// it (a workspace's owner swapping it while the watch walks a tree
    /// just made) is not followed: nothing outside the workspace is
    /// watched, and a name made there is never reported as the
    /// workspace's. Positive control: a real directory beside it is.
    #[test]
    fn a_directory_swapped_for_a_link_is_not_followed_out_of_the_workspace() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("ws");
        std::fs::create_dir_all(root.join("real/below")).unwrap();
        std::fs::create_dir_all(tmp.path().join("private/inner")).unwrap();
        std::os::unix::fs::symlink(tmp.path().join("private"), root.join("link")).unwrap();
        let mut names = Names::new(2).unwrap();
        let mut journals = Journals { clock: Clock::default(), spaces: HashMap::new(), handles: Journal::new(1, 10) };
        space(&mut journals, 0, &root, None);
        names.add_tree(0, b"", &mut journals);
        // As if `link` and `link/inner` had been reported made, and swapped
        // for the link before the watch reached them.
        names.add_tree(0, b"link", &mut journals);
        names.add_tree(0, b"link/inner", &mut journals);
        let watched: Vec<&[u8]> = names.dirs[&0].keys().map(Vec::as_slice).collect();
        assert_eq!(watched, [&b""[..], b"real", b"real/below"]);
        let t = journals.spaces[&0].journal.now(&journals.clock);
        std::fs::write(tmp.path().join("private/inner/secret-name"), "x").unwrap();
        std::fs::write(root.join("real/below/mine"), "x").unwrap();
        let mut buf = vec![MaybeUninit::<u8>::uninit(); 4096];
        names.drain(&mut buf, &mut journals);
        let seen = journals.spaces[&0].journal.since(t, &journals.clock).unwrap();
        assert!(seen.contains(&Change::Path(b"real/below/mine".to_vec())), "{seen:?}");
        assert!(!seen.iter().any(|c| format!("{c:?}").contains("secret")), "{seen:?}");
    }

    /// The watch a server hosts answers for the directory the asker holds:
    /// what changed there since its token; a path that names another
    /// directory by now (renamed away, another made in its place) is
    /// refused, not answered for the new one.
    #[test]
    fn a_hosted_watch_answers_for_the_directory_asked_about_and_no_other() {
        assert!(
            rustix::process::geteuid().is_root(),
            "the watch's attribute mark needs CAP_SYS_ADMIN (the README's test command runs as root)"
        );
        let tmp = tempfile::tempdir().unwrap();
        let (root, store) = (tmp.path().join("ws"), tmp.path().join("store"));
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::create_dir_all(&store).unwrap();
        let id = |p: &Path| {
            let m = std::fs::metadata(p).unwrap();
            (m.dev(), m.ino())
        };
        let hosted = Hosted::new(Duration::from_secs(60), 1000);
        let ask = |since, root_is| {
            hosted.ask(
                Request { since, root: root.clone(), store: store.clone() },
                root_is,
                1000,
                Duration::from_secs(10),
            )
        };
        let Ok(Answer::Changes { now, changes }) = ask(None, id(&root)) else { panic!("no token") };
        assert!(changes.is_empty());
        std::fs::write(root.join("src/new.txt"), "x").unwrap();
        let Ok(Answer::Changes { changes, .. }) = ask(Some(now), id(&root)) else { panic!("no changes") };
        assert!(changes.contains(&Change::Path(b"src/new.txt".to_vec())), "{changes:?}");

        let old = id(&root);
        std::fs::rename(&root, tmp.path().join("moved")).unwrap();
        std::fs::create_dir_all(&root).unwrap();
        match ask(Some(now), old) {
            Ok(Answer::Refused { now, why }) => {
                assert_eq!(now.instance, 0, "nothing taken on");
                assert!(why.contains("no longer the directory"), "{why}");
            }
            other => panic!("answered for another directory: {other:?}"),
        }
        // The new directory, asked about as itself: watched from now on,
        // the old token refused.
        match ask(Some(now), id(&root)) {
            Ok(Answer::Refused { now: fresh, .. }) => assert_ne!(fresh.instance, now.instance),
            other => panic!("the old token was believed: {other:?}"),
        }
    }

    /// Directories made in a burst are reported whole and watched only
    /// once the burst is over, but always before the next answer's token:
    /// a write in them right after that answer is in the one after.
    #[test]
    fn a_directory_made_in_a_burst_is_watched_by_the_next_answer() {
        assert!(rustix::process::geteuid().is_root(), "the watch's attribute mark needs CAP_SYS_ADMIN");
        let tmp = tempfile::tempdir().unwrap();
        let (root, store) = (tmp.path().join("ws"), tmp.path().join("store"));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&store).unwrap();
        let m = std::fs::metadata(&root).unwrap();
        let hosted = Hosted::new(Duration::from_secs(60), 1000);
        let ask = |since| {
            let r = Request { since, root: root.clone(), store: store.clone() };
            match hosted.ask(r, (m.dev(), m.ino()), 1000, Duration::from_secs(10)) {
                Ok(Answer::Changes { now, changes }) => (now, changes),
                other => panic!("{other:?}"),
            }
        };
        let (t0, _) = ask(None);
        std::fs::create_dir_all(root.join("new/deeper")).unwrap();
        std::fs::write(root.join("new/deeper/during"), "x").unwrap();
        let (t1, seen) = ask(Some(t0));
        assert!(seen.contains(&Change::Whole(b"new".to_vec())), "{seen:?}");
        std::fs::write(root.join("new/deeper/after"), "x").unwrap();
        let (_, seen) = ask(Some(t1));
        assert_eq!(seen, vec![Change::Path(b"new/deeper/after".to_vec())]);
    }

    /// A file changed outside the workspace (a store's manifest replaced,
    /// a build elsewhere on the filesystem) is none of its changes: no
    /// inode for the caller to look up in its whole listing. One inside is
    /// named by its path, one with a second name by its inode.
    #[test]
    fn handles_resolve_to_paths_inside_and_nothing_outside() {
        assert!(
            rustix::process::geteuid().is_root(),
            "open_by_handle_at needs CAP_DAC_READ_SEARCH (the README's test command runs as root)"
        );
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("ws");
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::write(root.join("src/in.txt"), "in").unwrap();
        std::fs::write(root.join("linked.txt"), "two names").unwrap();
        std::fs::hard_link(root.join("linked.txt"), tmp.path().join("other-name")).unwrap();
        std::fs::write(tmp.path().join("outside.txt"), "out").unwrap();
        let handle = |p: &Path| Change::Handle(fanotify::name_to_handle(p).unwrap());
        let got = resolve(
            &root,
            vec![
                handle(&tmp.path().join("outside.txt")),
                handle(&root.join("src/in.txt")),
                handle(&root.join("linked.txt")),
            ],
        )
        .unwrap();
        let st = std::fs::metadata(root.join("linked.txt")).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(got, vec![Change::Path(b"src/in.txt".to_vec()), Change::Inode(st.dev(), st.ino())]);
    }
}
