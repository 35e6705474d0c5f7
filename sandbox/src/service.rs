//! The kernel-facing half of the recorder service (`ws recorder serve`): the
//! request that carries descriptors, who is asking, what a descriptor
//! stands for, and starting the write recorder inside a session's PID
//! namespace. What is admitted is decided by the caller, from the facts
//! these functions gather.
//!
//! ```text
//! client (an unprivileged ws)                      service (root)
//!   connect /run/ws/recorder.sock ───────────────▶  accept; SO_PEERCRED
//!   u32 length, JSON, SCM_RIGHTS [workspace dir, pidfd of the session's init]
//!                                                   facts of both; admit or refuse
//!   ◀──────────── JSON lines (recorder::Message) ─  recorder in the session's PID namespace
//!   shutdown(write) = stop ──────────────────────▶  the recorder drains; Done; close
//! ```
//!
//! # Security
//! - The request is read with a length bound and a deadline, and at most two
//!   descriptors are accepted; any other descriptor that arrives is closed
//!   (`MSG_CMSG_CLOEXEC`, and dropped).
//! - Facts come from the kernel, never from the request: the peer's uid from
//!   `SO_PEERCRED`, the workspace's owner from `fstat` of the descriptor, the
//!   process's uid and PID namespace from `/proc` through the pidfd, checked
//!   again after reading (a pidfd outlives its process, whose pid may be reused).
//! - The recorder is started by a thread of its own that first enters the
//!   session's PID namespace with `setns` on the pidfd (it affects that
//!   thread's children only), so nothing else of the service moves.

use std::io::{Read, Write};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

/// Largest request a client may send.
pub const MAX_REQUEST: usize = 4096;

/// Who is on the other end of a unix socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub pid: u32,
}

pub fn peer(sock: &UnixStream) -> std::io::Result<Peer> {
    let c = rustix::net::sockopt::socket_peercred(sock)?;
    Ok(Peer { uid: c.uid.as_raw(), gid: c.gid.as_raw(), pid: c.pid.as_raw_nonzero().get() as u32 })
}

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("the request is {0} bytes; at most {MAX_REQUEST} are accepted")]
    TooLong(u64),
    #[error("the request was cut short")]
    Short,
    #[error(
        "the request carries {0} descriptors; it must carry exactly two (the workspace, and the session's pidfd or the workspace's store)"
    )]
    Descriptors(usize),
    #[error("cannot read the request")]
    Io(#[from] std::io::Error),
}

/// A client's request: its body and the descriptors that came with it.
#[derive(Debug)]
pub struct Request {
    pub body: Vec<u8>,
    pub fds: Vec<OwnedFd>,
}

/// Sends a request: length, body, and the two descriptors.
pub fn send_request(sock: &UnixStream, body: &[u8], workspace: BorrowedFd, pidfd: BorrowedFd) -> std::io::Result<()> {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags, sendmsg};
    let mut frame = (body.len() as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(body);
    let fds = [workspace, pidfd];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(std::io::Error::other("no room for the descriptors"));
    }
    let sent = sendmsg(sock, &[std::io::IoSlice::new(&frame)], &mut control, SendFlags::NOSIGNAL)?;
    // The descriptors went with the first byte; the rest, if any, follows.
    (&*sock).write_all(&frame[sent..])
}

/// Reads a request within the socket's read timeout (set by the caller).
pub fn recv_request(sock: &UnixStream) -> Result<Request, RequestError> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, recvmsg};
    let mut head = [0u8; 4];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let got = loop {
        match recvmsg(sock, &mut [std::io::IoSliceMut::new(&mut head)], &mut control, RecvFlags::CMSG_CLOEXEC) {
            Ok(r) => break r.bytes,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(RequestError::Io(e.into())),
        }
    };
    let mut fds: Vec<OwnedFd> = Vec::new();
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(rights) = m {
            fds.extend(rights);
        }
    }
    if got == 0 {
        return Err(RequestError::Short);
    }
    (&*sock).read_exact(&mut head[got..]).map_err(|_| RequestError::Short)?;
    let len = u32::from_le_bytes(head) as u64;
    if len as usize > MAX_REQUEST {
        return Err(RequestError::TooLong(len));
    }
    if fds.len() != 2 {
        return Err(RequestError::Descriptors(fds.len()));
    }
    let mut body = vec![0u8; len as usize];
    (&*sock).read_exact(&mut body).map_err(|_| RequestError::Short)?;
    Ok(Request { body, fds })
}

/// What a directory descriptor stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirFacts {
    pub is_dir: bool,
    pub owner: u32,
    /// Its path in the service's mount namespace.
    pub path: PathBuf,
}

pub fn dir_facts(fd: BorrowedFd) -> std::io::Result<DirFacts> {
    let st = rustix::fs::fstat(fd)?;
    let is_dir = rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory;
    let path = std::fs::read_link(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd)))?;
    Ok(DirFacts { is_dir, owner: st.st_uid, path })
}

/// What a pidfd stands for, as the service sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessFacts {
    /// Its pid in the service's PID namespace.
    pub pid: u32,
    /// Real uid (in the initial user namespace).
    pub uid: u32,
    /// Its pid in each PID namespace from the service's down to its own
    /// (`NSpid`): one entry when it shares the service's.
    pub ns_pids: Vec<u32>,
}

/// The facts of a pidfd's process, or `None` if it is not a pidfd or its
/// process is gone.
pub fn process_facts(pidfd: BorrowedFd) -> Option<ProcessFacts> {
    let fdinfo =
        std::fs::read_to_string(format!("/proc/self/fdinfo/{}", std::os::fd::AsRawFd::as_raw_fd(&pidfd))).ok()?;
    let pid: i64 = field(&fdinfo, "Pid:")?.split_whitespace().next()?.parse().ok()?;
    // -1: the process has exited; 0: it is in a namespace the service cannot see.
    let pid = u32::try_from(pid).ok().filter(|&p| p > 0)?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let uid = field(&status, "Uid:")?.split_whitespace().next()?.parse().ok()?;
    let ns_pids = field(&status, "NSpid:")?.split_whitespace().map(str::parse).collect::<Result<Vec<u32>, _>>().ok()?;
    // Read through the pid: the pidfd must still name a live process, or
    // that pid may already be someone else's.
    alive(pidfd).then_some(ProcessFacts { pid, uid, ns_pids })
}

fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().find_map(|l| l.strip_prefix(name))
}

/// Whether a pidfd's process is still running (a pidfd polls readable once
/// it has exited).
fn alive(pidfd: BorrowedFd) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let mut fds = [PollFd::new(&pidfd, PollFlags::IN)];
    matches!(rustix::event::poll(&mut fds, Some(&Timespec { tv_sec: 0, tv_nsec: 0 })), Ok(0))
}

/// Starts `cmd` as a process of the PID and mount namespaces of `pidfd`'s
/// process: from a thread of its own, which enters the PID namespace for its
/// children (and ends after the spawn); the child enters the mount namespace
/// before it executes (a multi-threaded process cannot), so its `/proc` is
/// the session's and the pids it reads there are the ones fanotify reports.
/// `cmd`'s program must be reachable there (`/proc/self/exe` is).
#[allow(unsafe_code)]
pub fn spawn_in_session(pidfd: BorrowedFd, cmd: &mut std::process::Command) -> std::io::Result<std::process::Child> {
    use std::os::unix::process::CommandExt;
    let raw = std::os::fd::AsRawFd::as_raw_fd(&pidfd);
    // SAFETY: runs in the forked child before exec: one system call on a
    // descriptor the parent keeps open until the spawn returns; it allocates
    // nothing and takes no lock.
    unsafe {
        cmd.pre_exec(move || {
            let fd = BorrowedFd::borrow_raw(raw);
            rustix::thread::move_into_thread_name_spaces(fd, rustix::thread::ThreadNameSpaceType::MOUNT)
                .map_err(Into::into)
        });
    }
    std::thread::scope(|s| {
        s.spawn(|| {
            rustix::thread::move_into_thread_name_spaces(pidfd, rustix::thread::ThreadNameSpaceType::PROCESS_ID)?;
            cmd.spawn()
        })
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the spawning thread panicked")))
    })
}

/// The listening socket a supervisor passed (`LISTEN_FDS` socket
/// activation: the first passed descriptor, number 3), if `listen_pid` is
/// this process and it is a unix stream socket.
pub fn activated_listener(
    listen_pid: Option<u32>,
    listen_fds: Option<u32>,
) -> Option<std::os::unix::net::UnixListener> {
    if listen_pid != Some(std::process::id()) || listen_fds.unwrap_or(0) < 1 {
        return None;
    }
    let fd = crate::recorder::take_fd(3)?;
    let ok = rustix::net::sockopt::socket_type(&fd).is_ok_and(|t| t == rustix::net::SocketType::STREAM);
    let _ = rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC);
    ok.then(|| std::os::unix::net::UnixListener::from(fd))
}

/// A descriptor a parent process passed at number `fd` for this process to
/// write to (`ws session start --events-fd N`): owned from here on and
/// close-on-exec, so no process started later (the sandbox, git, helpers)
/// inherits it, and the reader sees its end when this process exits.
/// `None` for a standard stream, a number that is not open, or a directory.
/// Call it before this process opens descriptors of its own that it keeps.
pub fn passed_descriptor(fd: i32) -> Option<std::fs::File> {
    if fd < 3 {
        return None;
    }
    let fd = crate::recorder::take_fd(fd)?;
    if rustix::fs::fstat(&fd).is_ok_and(|s| rustix::fs::FileType::from_raw_mode(s.st_mode).is_dir()) {
        // Not a stream: given back unclosed, as it was passed.
        let _ = std::os::fd::IntoRawFd::into_raw_fd(fd);
        return None;
    }
    rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC).ok()?;
    Some(std::fs::File::from(fd))
}

/// A pidfd for `pid`.
pub fn pidfd(pid: u32) -> std::io::Result<OwnedFd> {
    let pid = rustix::process::Pid::from_raw(pid as i32).ok_or_else(|| std::io::Error::other("pid 0"))?;
    Ok(rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())?)
}

/// The children of `pid` (`/proc/PID/task/PID/children`).
pub fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}
