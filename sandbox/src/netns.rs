//! The session's own network namespace: only a loopback interface, on which
//! the proxy's listening socket is created and handed to the supervisor
//! outside, which serves it. From inside, `127.0.0.1` is the session's own
//! loopback: host services on localhost are out of reach and UDP, DNS and
//! ICMP go nowhere.
//!
//! ```text
//! supervisor   channel() → keeps one end, the launcher inherits the other
//! launcher     unshare(… | CLONE_NEWNET); loopback_up(); proxy_listener(port);
//!              send_listener(channel) → closes the channel
//! supervisor   receive_listener(channel) → serves the socket from the host's namespace
//! ```
//!
//! # Security
//! - The listening socket belongs to the session's namespace: connections to
//!   it can only come from inside. The proxy's outgoing connections are made
//!   by the supervisor, in the host's namespace, after its checks.
//! - The channel is a unix socket pair; the launcher marks its end
//!   close-on-exec before anything else, so the command never inherits it.

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

use rustix::net::{AddressFamily, SocketFlags, SocketType};

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("cannot bring up the session's loopback interface")]
    Loopback(#[source] std::io::Error),
    #[error("cannot listen on 127.0.0.1:{port} inside the session")]
    Listen { port: u16, source: std::io::Error },
    #[error("cannot pass the proxy's socket out of the session")]
    Channel(#[source] std::io::Error),
}

/// A socket pair: the supervisor's end (close-on-exec) and the end the
/// launcher inherits (not close-on-exec; its number goes into the spec).
pub fn channel() -> Result<(OwnedFd, OwnedFd), NetnsError> {
    let (ours, theirs) =
        rustix::net::socketpair(AddressFamily::UNIX, SocketType::SEQPACKET, SocketFlags::CLOEXEC, None)
            .map_err(|e| NetnsError::Channel(e.into()))?;
    rustix::io::fcntl_setfd(&theirs, rustix::io::FdFlags::empty()).map_err(|e| NetnsError::Channel(e.into()))?;
    Ok((ours, theirs))
}

/// In the launcher: takes the inherited channel end and keeps it from
/// reaching anything the launcher runs.
#[allow(unsafe_code)]
pub fn adopt_channel(fd: i32) -> Result<OwnedFd, NetnsError> {
    let bad = || NetnsError::Channel(std::io::Error::from_raw_os_error(libc::EBADF));
    if fd < 0 {
        return Err(bad());
    }
    // SAFETY: borrowed only for this F_SETFD, which fails with EBADF (and we
    // stop) if nothing is open at that number.
    let probe = unsafe { BorrowedFd::borrow_raw(fd) };
    rustix::io::fcntl_setfd(probe, rustix::io::FdFlags::CLOEXEC).map_err(|_| bad())?;
    // SAFETY: `fd` is open (checked above); the supervisor created it for
    // this process and named it in our spec; nothing else here owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Brings `lo` up in the current (new) network namespace.
#[allow(unsafe_code)]
pub fn loopback_up() -> Result<(), NetnsError> {
    let sock = rustix::net::socket(AddressFamily::INET, SocketType::DGRAM, None)
        .map_err(|e| NetnsError::Loopback(e.into()))?;
    // SAFETY: ifreq is plain old data for which all-zero bytes are valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads ifr_name and writes ifru_flags of `req`,
    // which we own and which lives across the call; `sock` is open.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(NetnsError::Loopback(std::io::Error::last_os_error()));
    }
    // SAFETY: the kernel filled ifru_flags above; reading the union's flags
    // member is what SIOCGIFFLAGS defines.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    req.ifr_ifru.ifru_flags = flags | (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    // SAFETY: SIOCSIFFLAGS reads ifr_name and ifru_flags of `req`; as above.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(NetnsError::Loopback(std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Listens on `127.0.0.1:port` (in the session's namespace, where the port
/// is always free).
pub fn proxy_listener(port: u16) -> Result<TcpListener, NetnsError> {
    TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
        .map_err(|source| NetnsError::Listen { port, source })
}

/// Sends `listener` over the channel.
pub fn send_listener(channel: &OwnedFd, listener: &TcpListener) -> Result<(), NetnsError> {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    let fds = [listener.as_fd()];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut buf = SendAncillaryBuffer::new(&mut space);
    buf.push(SendAncillaryMessage::ScmRights(&fds));
    rustix::net::sendmsg(channel, &[std::io::IoSlice::new(b"L")], &mut buf, SendFlags::empty())
        .map_err(|e| NetnsError::Channel(e.into()))?;
    Ok(())
}

/// In the supervisor: waits up to `timeout` for the listener. `Ok(None)` if
/// the launcher closed the channel without sending one (it could not create
/// the namespace).
pub fn receive_listener(channel: &OwnedFd, timeout: Duration) -> Result<Option<TcpListener>, NetnsError> {
    use rustix::event::{PollFd, PollFlags, Timespec};
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    let mut fds = [PollFd::new(channel, PollFlags::IN)];
    let ts = Timespec { tv_sec: timeout.as_secs() as i64, tv_nsec: timeout.subsec_nanos() as i64 };
    loop {
        match rustix::event::poll(&mut fds, Some(&ts)) {
            Ok(0) => {
                return Err(NetnsError::Channel(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the session's launcher did not answer",
                )));
            }
            Ok(_) => break,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(NetnsError::Channel(e.into())),
        }
    }
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut buf = RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0u8; 1];
    let msg =
        rustix::net::recvmsg(channel, &mut [std::io::IoSliceMut::new(&mut byte)], &mut buf, RecvFlags::CMSG_CLOEXEC)
            .map_err(|e| NetnsError::Channel(e.into()))?;
    if msg.bytes == 0 {
        return Ok(None);
    }
    for m in buf.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = m
            && let Some(fd) = fds.next()
        {
            return Ok(Some(TcpListener::from(fd)));
        }
    }
    Err(NetnsError::Channel(std::io::Error::other("the launcher's message carried no socket")))
}
