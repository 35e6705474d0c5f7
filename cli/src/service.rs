//! The recorder service (`ws recorder serve`): root records sessions that
//! are not root's — their writes (fanotify, attributed by the session's PID
//! namespace, as the in-session recorder does) and their Landlock denials
//! (audit) — and streams each session only its own record.
//!
//! Access control ([`admit`], pure): a request names a workspace (an open
//! directory) and a session (a pidfd of its init, PID 1 of a PID namespace
//! of its own). Both must be the peer's (`SO_PEERCRED`): the directory
//! owned by it, the process running as it. The recorder then watches that
//! workspace from inside that session's namespaces: paths outside the
//! workspace are dropped, writers outside the session are pid 0 and
//! reported by path only. Nothing but JSON lines goes back: never a
//! descriptor, a file handle, or a name outside the workspace (with `ws
//! learn`: the paths the session's own processes opened).
//!
//! The service also keeps the watch between sessions for those users
//! ([`ws_watch::server::Hosted`]): a question names a workspace and its
//! store (open directories), the workspace must be the peer's
//! ([`admit_watch`]), and the answer holds only paths inside it.

use std::io::{BufRead, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use ws_sandbox::recorder::Message;
use ws_sandbox::service::{DirFacts, Peer, ProcessFacts};

pub use ws_session::service::DEFAULT_SOCKET;
use ws_session::service::{OLDEST, RequestBody, VERSION, WatchQuestion};
use ws_watch::server::Hosted;

/// Connections served at once, in all and per user: a user cannot take
/// every slot, and can still run 100 sessions at once (the `many` and
/// `service` benchmarks), with room to spare.
const MAX_CONNECTIONS: usize = 512;
const MAX_PER_USER: usize = 128;
/// How long a client has to send its request.
const REQUEST_DEADLINE: Duration = Duration::from_secs(5);

pub fn socket_path() -> PathBuf {
    crate::env::path(crate::env::WS_RECORDER_SOCKET).unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))
}

/// Whether a recorder service answers at [`socket_path`].
pub fn reachable() -> bool {
    UnixStream::connect(socket_path()).is_ok()
}

/// Why a request is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the workspace descriptor is not a directory")]
    NotADirectory,
    #[error("the workspace belongs to uid {owner}, not to you (uid {peer})")]
    WorkspaceNotYours { owner: u32, peer: u32 },
    #[error("the session's process runs as uid {uid}, not as you (uid {peer})")]
    ProcessNotYours { uid: u32, peer: u32 },
    #[error("the process is not in a PID namespace of its own, so its writes cannot be told from others'")]
    SharedPidNamespace,
    #[error("the process is not its PID namespace's init (pid 1 there)")]
    NotInit,
    #[error("the store descriptor is not a directory")]
    StoreNotADirectory,
}

/// Whether `peer` may have the record of the session `process` in
/// `workspace`. Pure. Root may ask for any.
pub fn admit(peer: &Peer, workspace: &DirFacts, process: &ProcessFacts) -> Result<(), Refusal> {
    if !workspace.is_dir {
        return Err(Refusal::NotADirectory);
    }
    if peer.uid != 0 && workspace.owner != peer.uid {
        return Err(Refusal::WorkspaceNotYours { owner: workspace.owner, peer: peer.uid });
    }
    if peer.uid != 0 && process.uid != peer.uid {
        return Err(Refusal::ProcessNotYours { uid: process.uid, peer: peer.uid });
    }
    if process.ns_pids.len() < 2 {
        return Err(Refusal::SharedPidNamespace);
    }
    if process.ns_pids.last() != Some(&1) {
        return Err(Refusal::NotInit);
    }
    Ok(())
}

/// Whether `peer` may ask the service's watch about `workspace`, whose
/// snapshot store is `store`. Pure. The workspace must be the peer's (the
/// answer names what changed in it); the store only says what not to
/// watch. Root may ask about any.
pub fn admit_watch(peer: &Peer, workspace: &DirFacts, store: &DirFacts) -> Result<(), Refusal> {
    if !workspace.is_dir {
        return Err(Refusal::NotADirectory);
    }
    if !store.is_dir {
        return Err(Refusal::StoreNotADirectory);
    }
    if peer.uid != 0 && workspace.owner != peer.uid {
        return Err(Refusal::WorkspaceNotYours { owner: workspace.owner, peer: peer.uid });
    }
    Ok(())
}

/// Connection slots, in all and per uid.
#[derive(Debug, Default)]
struct Slots {
    by_uid: Mutex<std::collections::HashMap<u32, usize>>,
}

impl Slots {
    fn take(&self, uid: u32) -> bool {
        let mut m = self.by_uid.lock().unwrap_or_else(|e| e.into_inner());
        let total: usize = m.values().sum();
        let mine = m.entry(uid).or_default();
        if total >= MAX_CONNECTIONS || *mine >= MAX_PER_USER {
            return false;
        }
        *mine += 1;
        true
    }

    fn give_back(&self, uid: u32) {
        let mut m = self.by_uid.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&uid) {
            *n -= 1;
            if *n == 0 {
                m.remove(&uid);
            }
        }
    }
}

/// What the service reports of its work (the binary prints it).
pub trait Journal: Sync {
    fn note(&self, line: &str);
}

/// Serves until the listener fails. Each connection gets a thread.
pub fn serve(listener: UnixListener, journal: &'static dyn Journal) -> std::io::Result<()> {
    let slots: &'static Slots = Box::leak(Box::default());
    let watch: &'static Hosted = Box::leak(Box::new(ws_session::watch::hosted()));
    for conn in listener.incoming() {
        let conn = match conn {
            Ok(c) => c,
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::MFILE.raw_os_error()) => {
                // Out of descriptors: let some sessions end before accepting more.
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            Err(_) => continue,
        };
        let Ok(peer) = ws_sandbox::service::peer(&conn) else { continue };
        if !slots.take(peer.uid) {
            refuse(&conn, "the recorder service is serving as many sessions as it may; try again later");
            journal.note(&format!("refused uid {} (pid {}): no connection slot left", peer.uid, peer.pid));
            continue;
        }
        let spawned = std::thread::Builder::new().stack_size(256 << 10).spawn(move || {
            if let Err(why) = handle(&conn, &peer, watch, journal) {
                refuse(&conn, &why);
                journal.note(&format!("refused uid {} (pid {}): {why}", peer.uid, peer.pid));
            }
            slots.give_back(peer.uid);
        });
        if spawned.is_err() {
            slots.give_back(peer.uid);
        }
    }
    Ok(())
}

fn send(conn: &UnixStream, m: &Message) {
    if let Ok(mut line) = serde_json::to_vec(m) {
        line.push(b'\n');
        let _ = (&*conn).write_all(&line);
    }
}

fn refuse(conn: &UnixStream, why: &str) {
    send(conn, &Message::Unavailable { what: None, reason: format!("the recorder service refused: {why}") });
}

/// One session: check the request, start its recorders, stream their
/// lines until the client says stop (or goes away).
fn handle(conn: &UnixStream, peer: &Peer, watch: &Hosted, journal: &dyn Journal) -> Result<(), String> {
    conn.set_read_timeout(Some(REQUEST_DEADLINE)).map_err(|e| e.to_string())?;
    let req = ws_sandbox::service::recv_request(conn).map_err(|e| crate::error::chain(&e))?;
    let body: RequestBody =
        serde_json::from_slice(&req.body).map_err(|e| format!("the request is not a ws recorder request: {e}"))?;
    if !(OLDEST..=VERSION).contains(&body.version) {
        return Err(format!("request version {} (this service speaks {VERSION}): upgrade ws", body.version));
    }
    if let Some(question) = body.watch {
        return answer_watch(conn, peer, req.fds, &question, watch);
    }
    let [workspace, pidfd]: [OwnedFd; 2] = req.fds.try_into().map_err(|_| "two descriptors expected".to_string())?;
    let dir =
        ws_sandbox::service::dir_facts(workspace.as_fd()).map_err(|e| format!("the workspace descriptor: {e}"))?;
    let process = ws_sandbox::service::process_facts(pidfd.as_fd())
        .ok_or("the second descriptor is not a pidfd of a running process")?;
    admit(peer, &dir, &process).map_err(|e| e.to_string())?;
    conn.set_read_timeout(None).map_err(|e| e.to_string())?;
    journal.note(&format!("recording {} for uid {} (session init pid {})", dir.path.display(), peer.uid, process.pid));

    let spec =
        ws_sandbox::recorder::RecorderSpec { fd: -1, workspace: dir.path.clone(), group: None, learn: body.learn };
    let spec = serde_json::to_string(&spec).map_err(|e| e.to_string())?;
    let mut cmd = std::process::Command::new("/proc/self/exe");
    cmd.arg(ws_sandbox::recorder::RECORDER_ARG)
        .arg(spec)
        .env_clear()
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    // Everything that can fail is done before the recorder starts: from
    // then on it must be reaped, or the session's init cannot finish exiting.
    let out = conn.try_clone().map_err(|e| e.to_string())?;
    let mut recorder = ws_sandbox::service::spawn_in_session(pidfd.as_fd(), &mut cmd)
        .map_err(|e| format!("cannot start a recorder in the session: {e}"))?;
    drop(pidfd);

    // Lines from the recorder and the denial reader, written by one thread.
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let writer = std::thread::Builder::new().stack_size(128 << 10).spawn(move || {
        for line in rx {
            if (&out).write_all(&line).is_err() {
                break;
            }
        }
    });
    let mut stop_recorder = recorder.stdin.take();
    // The audit reader is open before the client can see the recorder's
    // first line (after which the session's command runs).
    let stop = Arc::new(AtomicBool::new(false));
    let (denials, mut no_denials) = start_denials(process.pid, Arc::clone(&stop), tx.clone());
    let copy_tx = tx.clone();
    // Reaps the recorder as soon as it ends: the session's init cannot
    // finish exiting while a process of its namespace is left unreaped.
    let copier = std::thread::Builder::new().stack_size(128 << 10).spawn(move || {
        if let Some(stdout) = recorder.stdout.take() {
            let mut r = std::io::BufReader::new(stdout);
            loop {
                let mut line = Vec::new();
                match r.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if copy_tx.send(line).is_err() {
                            break;
                        }
                        // Why denials are not recorded goes after the
                        // recorder's first line: the client takes its first
                        // line for the answer to its request.
                        if let Some(why) = no_denials.take() {
                            let _ = copy_tx.send(why);
                        }
                    }
                }
            }
        }
        let _ = recorder.wait();
    });
    drop(tx);

    // The client shuts its writing side down (or dies) to end the session's
    // record. Before that (version 2) it may ask for a sync once the
    // session's processes have ended: passed on as init would.
    let mut b = [0u8; 64];
    loop {
        match std::io::Read::read(&mut &*conn, &mut b) {
            Ok(0) | Err(_) => break,
            Ok(n) if body.version >= 2 && b[..n].contains(&ws_sandbox::recorder::SYNC) => {
                if let Some(stdin) = &mut stop_recorder {
                    let _ = stdin.write_all(&[ws_sandbox::recorder::SYNC]);
                    let _ = stdin.flush();
                }
            }
            Ok(_) => continue,
        }
    }
    drop(stop_recorder); // the recorder's stop: it drains and says Done
    if let Ok(c) = copier {
        let _ = c.join();
    }
    stop.store(true, Ordering::Relaxed);
    if let Some(d) = denials {
        let _ = d.join();
    }
    if let Ok(w) = writer {
        let _ = w.join();
    }
    let _ = conn.shutdown(std::net::Shutdown::Both);
    Ok(())
}

/// A question for the watch: the workspace and its store (descriptors),
/// checked, then asked about by the path the workspace's descriptor has
/// here and held to that directory (device and inode).
fn answer_watch(
    conn: &UnixStream,
    peer: &Peer,
    fds: Vec<OwnedFd>,
    question: &WatchQuestion,
    watch: &Hosted,
) -> Result<(), String> {
    let [workspace, store]: [OwnedFd; 2] = fds.try_into().map_err(|_| "two descriptors expected".to_string())?;
    let facts = |fd: &OwnedFd, what: &str| {
        ws_sandbox::service::dir_facts(fd.as_fd()).map_err(|e| format!("the {what} descriptor: {e}"))
    };
    let (dir, store_dir) = (facts(&workspace, "workspace")?, facts(&store, "store")?);
    admit_watch(peer, &dir, &store_dir).map_err(|e| e.to_string())?;
    let since = match &question.since {
        None => None,
        Some(t) => Some(t.parse::<ws_watch::Token>().map_err(|_| "the watch token is garbled".to_string())?),
    };
    let st = rustix::fs::fstat(&workspace).map_err(|e| format!("the workspace descriptor: {e}"))?;
    #[allow(clippy::unnecessary_cast)] // widths differ between architectures
    let root_is = (st.st_dev as u64, st.st_ino as u64);
    let request = ws_watch::protocol::Request { since, root: dir.path, store: store_dir.path };
    let answer = watch.ask(request, root_is, peer.uid, Duration::from_secs(30))?;
    let _ = (&*conn).write_all(&ws_watch::protocol::encode_answer(&answer));
    let _ = conn.shutdown(std::net::Shutdown::Both);
    Ok(())
}

/// The session's Landlock denials, from the kernel's audit records: those
/// of domains its init created. Returns the reading thread, or the line
/// saying why there is none.
fn start_denials(
    init: u32,
    stop: Arc<AtomicBool>,
    tx: mpsc::Sender<Vec<u8>>,
) -> (Option<std::thread::JoinHandle<()>>, Option<Vec<u8>>) {
    let line = |m: &Message| {
        let mut l = serde_json::to_vec(m).unwrap_or_default();
        l.push(b'\n');
        l
    };
    let why = if ws_sandbox::probe::landlock_abi() < 7 {
        Some("Landlock audit needs ABI 7 (Linux 6.15+)".to_string())
    } else {
        match ws_sandbox::audit_netlink::status() {
            Ok(st) if st.enabled == 0 => {
                Some("kernel audit is disabled (enable it with `auditctl -e 1`; see `ws doctor`)".into())
            }
            Err(e) => Some(format!("cannot ask the kernel's audit state: {e}")),
            Ok(st) => match ws_sandbox::audit_netlink::Reader::open() {
                Ok(reader) => {
                    let lost_before = st.lost;
                    let thread = std::thread::Builder::new().stack_size(256 << 10).spawn(move || {
                        let mut emit = |d: crate::recording::Denied| {
                            let _ = tx.send(line(&Message::Denial { exe: d.exe, access: d.access, object: d.object }));
                        };
                        let lost = crate::recording::read_denials(
                            reader,
                            lost_before,
                            &|creator| creator == init,
                            &stop,
                            &mut emit,
                        );
                        for reason in lost {
                            let _ = tx.send(line(&Message::Lost { what: Some("denials".into()), reason }));
                        }
                    });
                    match thread {
                        Ok(t) => return (Some(t), None),
                        Err(e) => Some(format!("cannot start the thread reading the audit log: {e}")),
                    }
                }
                Err(e) => Some(format!("cannot join the audit log's multicast group: {e}")),
            },
        }
    };
    (None, why.map(|why| line(&Message::Unavailable { what: Some("denials".into()), reason: why })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ws_session::service::read_answer;

    fn peer(uid: u32) -> Peer {
        Peer { uid, gid: uid, pid: 4242 }
    }
    fn dir(owner: u32) -> DirFacts {
        DirFacts { is_dir: true, owner, path: "/home/me/project".into() }
    }
    fn init(uid: u32) -> ProcessFacts {
        ProcessFacts { pid: 5000, uid, ns_pids: vec![5000, 1] }
    }

    #[test]
    fn a_user_may_record_their_own_session_in_their_own_workspace() {
        assert_eq!(admit(&peer(1000), &dir(1000), &init(1000)), Ok(()));
        assert_eq!(admit(&peer(0), &dir(1000), &init(1000)), Ok(()), "root may ask for any");
    }

    #[test]
    fn anything_not_the_peers_is_refused() {
        assert_eq!(
            admit(&peer(1000), &dir(1001), &init(1000)),
            Err(Refusal::WorkspaceNotYours { owner: 1001, peer: 1000 })
        );
        assert_eq!(admit(&peer(1000), &dir(1000), &init(0)), Err(Refusal::ProcessNotYours { uid: 0, peer: 1000 }));
        let mut file = dir(1000);
        file.is_dir = false;
        assert_eq!(admit(&peer(1000), &file, &init(1000)), Err(Refusal::NotADirectory));
    }

    #[test]
    fn only_the_init_of_a_pid_namespace_of_its_own_is_a_session() {
        let shared = ProcessFacts { pid: 5000, uid: 1000, ns_pids: vec![5000] };
        assert_eq!(admit(&peer(1000), &dir(1000), &shared), Err(Refusal::SharedPidNamespace));
        let child = ProcessFacts { pid: 5001, uid: 1000, ns_pids: vec![5001, 7] };
        assert_eq!(admit(&peer(1000), &dir(1000), &child), Err(Refusal::NotInit));
        let nested = ProcessFacts { pid: 5002, uid: 1000, ns_pids: vec![5002, 9, 1] };
        assert_eq!(admit(&peer(1000), &dir(1000), &nested), Ok(()));
    }

    #[test]
    fn the_watch_answers_a_user_about_their_own_workspace_only() {
        let store = dir(1000);
        assert_eq!(admit_watch(&peer(1000), &dir(1000), &store), Ok(()));
        assert_eq!(admit_watch(&peer(0), &dir(1001), &store), Ok(()), "root may ask about any");
        assert_eq!(
            admit_watch(&peer(1000), &dir(1001), &store),
            Err(Refusal::WorkspaceNotYours { owner: 1001, peer: 1000 })
        );
        let mut file = dir(1000);
        file.is_dir = false;
        assert_eq!(admit_watch(&peer(1000), &file, &store), Err(Refusal::NotADirectory));
        assert_eq!(admit_watch(&peer(1000), &dir(1000), &file), Err(Refusal::StoreNotADirectory));
        // The store only says what not to watch: anyone's directory does.
        assert_eq!(admit_watch(&peer(1000), &dir(1000), &dir(0)), Ok(()));
    }

    #[test]
    fn connection_slots_are_bounded_per_user_and_in_all() {
        let s = Slots::default();
        for _ in 0..MAX_PER_USER {
            assert!(s.take(1000));
        }
        assert!(!s.take(1000), "one user cannot take more");
        assert!(s.take(1001), "another user still can");
        s.give_back(1000);
        assert!(s.take(1000));
    }

    #[test]
    fn a_word_about_denials_before_the_answer_is_kept_and_not_taken_for_it() {
        use std::io::Write as _;
        let (client, mut service) = UnixStream::pair().unwrap();
        let denials = Message::Unavailable { what: Some("denials".into()), reason: "audit is off".into() };
        for m in [&denials, &Message::Ready, &Message::Done { events: 0 }] {
            let mut line = serde_json::to_vec(m).unwrap();
            line.push(b'\n');
            service.write_all(&line).unwrap();
        }
        assert_eq!(read_answer(&client).unwrap(), vec![denials, Message::Ready]);
        // Nothing after the answer was taken from the stream.
        let mut rest = String::new();
        drop(service);
        std::io::Read::read_to_string(&mut &client, &mut rest).unwrap();
        assert_eq!(rest, "{\"m\":\"done\",\"events\":0}\n");

        let (client, mut service) = UnixStream::pair().unwrap();
        let refused = Message::Unavailable { what: None, reason: "the recorder service refused: no".into() };
        service.write_all(&[serde_json::to_vec(&refused).unwrap(), b"\n".to_vec()].concat()).unwrap();
        assert_eq!(read_answer(&client), Err("the recorder service refused: no".into()));
    }

    #[test]
    fn a_request_body_with_unknown_keys_is_refused() {
        assert!(serde_json::from_slice::<RequestBody>(br#"{"version":1,"learn":true}"#).is_ok());
        assert!(serde_json::from_slice::<RequestBody>(br#"{"version":1,"workspace":"/etc"}"#).is_err());
        let watch: RequestBody = serde_json::from_slice(br#"{"version":2,"watch":{"since":null}}"#).unwrap();
        assert!(watch.watch.is_some_and(|w| w.since.is_none()));
        assert!(serde_json::from_slice::<RequestBody>(br#"{"version":2,"watch":{"path":"/etc"}}"#).is_err());
    }
}
