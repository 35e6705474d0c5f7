//! Landlock denials from the kernel's audit log: a reader on the audit
//! netlink multicast group `AUDIT_NLGRP_READLOG`, and parsers for the
//! Landlock records (1423 `LANDLOCK_ACCESS`, 1424 `LANDLOCK_DOMAIN`) and the
//! `SYSCALL` record that follows each denial.
//!
//! The multicast group is read-only and coexists with a running auditd (which
//! holds the single unicast daemon slot; this never takes it). Records only
//! flow while audit is enabled (`auditctl -e 1`, or booting with `audit=1`).
//!
//! # Security
//! Needs CAP_AUDIT_READ (root) to join the group. No `unsafe`: rustix's
//! netlink sockets. Records are parsed as untrusted text (an `exe` or `comm`
//! is whatever the process named itself), never interpreted further.

use std::collections::HashMap;
use std::io;
use std::os::fd::OwnedFd;
use std::time::Duration;

use rustix::net::netlink::SocketAddrNetlink;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType, netlink};

pub const AUDIT_GET: u16 = 1000;
pub const AUDIT_SET: u16 = 1001;
pub const SYSCALL: u16 = 1300;
pub const EOE: u16 = 1320;
pub const LANDLOCK_ACCESS: u16 = 1423;
pub const LANDLOCK_DOMAIN: u16 = 1424;
const AUDIT_NLGRP_READLOG: u32 = 1;
const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const AUDIT_STATUS_ENABLED: u32 = 1;
const AUDIT_STATUS_BACKLOG_LIMIT: u32 = 4;

/// The kernel's audit state (`struct audit_status`, the fields used here).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    /// 0 off, 1 on, 2 on and locked.
    pub enabled: u32,
    /// The registered audit daemon (0: none).
    pub pid: u32,
    /// Records the kernel dropped since boot.
    pub lost: u32,
    /// How many records may wait for delivery before the kernel drops new
    /// ones (`auditctl -b`; 0: no limit).
    pub backlog_limit: u32,
}

fn socket() -> io::Result<OwnedFd> {
    Ok(rustix::net::socket_with(AddressFamily::NETLINK, SocketType::RAW, SocketFlags::CLOEXEC, Some(netlink::AUDIT))?)
}

fn request(kind: u16, flags: u16, payload: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(NLMSG_HDRLEN + payload.len());
    m.extend_from_slice(&((NLMSG_HDRLEN + payload.len()) as u32).to_ne_bytes());
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
    m.extend_from_slice(&1u32.to_ne_bytes()); // seq
    m.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it
    m.extend_from_slice(payload);
    m
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Asks the kernel whether audit is enabled. Needs CAP_AUDIT_CONTROL on
/// older kernels; `PermissionDenied` tells the caller it cannot know.
pub fn status() -> io::Result<Status> {
    let fd = socket()?;
    rustix::net::sendto(&fd, &request(AUDIT_GET, 0, &[]), SendFlags::empty(), &SocketAddrNetlink::new(0, 0))?;
    rustix::net::sockopt::set_socket_timeout(&fd, rustix::net::sockopt::Timeout::Recv, Some(Duration::from_secs(2)))?;
    let mut buf = vec![0u8; 8192];
    for _ in 0..4 {
        let (n, _) = rustix::net::recv(&fd, &mut buf[..], RecvFlags::empty())?;
        for (kind, body) in messages(&buf[..n]) {
            match kind {
                AUDIT_GET => {
                    return Ok(Status {
                        enabled: u32_at(body, 4).unwrap_or(0),
                        pid: u32_at(body, 12).unwrap_or(0),
                        lost: u32_at(body, 24).unwrap_or(0),
                        backlog_limit: u32_at(body, 20).unwrap_or(0),
                    });
                }
                NLMSG_ERROR => {
                    let errno = u32_at(body, 0).map(|e| -(e as i32)).unwrap_or(0);
                    if errno != 0 {
                        return Err(io::Error::from_raw_os_error(errno));
                    }
                }
                _ => {}
            }
        }
    }
    Err(io::Error::other("no answer from the kernel's audit subsystem"))
}

/// Turns audit on or off (what `auditctl -e` does). Needs CAP_AUDIT_CONTROL.
pub fn set_enabled(on: bool) -> io::Result<()> {
    set(AUDIT_STATUS_ENABLED, 4, u32::from(on))
}

/// Sets how many records may wait for delivery before the kernel drops new
/// ones (what `auditctl -b` does). Needs CAP_AUDIT_CONTROL.
pub fn set_backlog_limit(limit: u32) -> io::Result<()> {
    set(AUDIT_STATUS_BACKLOG_LIMIT, 20, limit)
}

/// One field of `struct audit_status`, named by its mask bit and offset.
fn set(mask: u32, offset: usize, value: u32) -> io::Result<()> {
    let fd = socket()?;
    let mut status = [0u8; 40];
    status[..4].copy_from_slice(&mask.to_ne_bytes());
    status[offset..offset + 4].copy_from_slice(&value.to_ne_bytes());
    rustix::net::sendto(
        &fd,
        &request(AUDIT_SET, NLM_F_ACK, &status),
        SendFlags::empty(),
        &SocketAddrNetlink::new(0, 0),
    )?;
    rustix::net::sockopt::set_socket_timeout(&fd, rustix::net::sockopt::Timeout::Recv, Some(Duration::from_secs(2)))?;
    let mut buf = vec![0u8; 8192];
    let (n, _) = rustix::net::recv(&fd, &mut buf[..], RecvFlags::empty())?;
    for (kind, body) in messages(&buf[..n]) {
        if kind == NLMSG_ERROR {
            let errno = u32_at(body, 0).map(|e| -(e as i32)).unwrap_or(0);
            return if errno == 0 { Ok(()) } else { Err(io::Error::from_raw_os_error(errno)) };
        }
    }
    Ok(())
}

/// The netlink messages of one datagram: (type, payload).
fn messages(buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut rest = buf;
    while rest.len() >= NLMSG_HDRLEN {
        let len = u32_at(rest, 0).unwrap_or(0) as usize;
        let kind = u16::from_ne_bytes([rest[4], rest[5]]);
        // Unicast audit records may carry the payload length only (the
        // kernel's "length quirk"): then the datagram is one message.
        let end = if len < NLMSG_HDRLEN || len > rest.len() { rest.len() } else { len };
        out.push((kind, &rest[NLMSG_HDRLEN..end]));
        let aligned = (end + 3) & !3;
        if aligned >= rest.len() {
            break;
        }
        rest = &rest[aligned..];
    }
    out
}

/// A member of the audit log's multicast group.
#[derive(Debug)]
pub struct Reader {
    fd: OwnedFd,
    buf: Vec<u8>,
}

impl Reader {
    /// Joins `AUDIT_NLGRP_READLOG`. Needs CAP_AUDIT_READ.
    pub fn open() -> io::Result<Reader> {
        let fd = socket()?;
        rustix::net::bind(&fd, &SocketAddrNetlink::new(0, AUDIT_NLGRP_READLOG))?;
        // Room for bursts: a denial storm (or many sessions ending at once,
        // every reader getting every record) must not overflow the socket.
        // Root may pass the system's cap (`net.core.rmem_max`, 208 KiB by
        // default, a few hundred records); the capped size otherwise.
        if rustix::net::sockopt::set_socket_recv_buffer_size_force(&fd, 8 << 20).is_err() {
            let _ = rustix::net::sockopt::set_socket_recv_buffer_size(&fd, 8 << 20);
        }
        Ok(Reader { fd, buf: vec![0u8; 64 << 10] })
    }

    /// The next records (type, text), waiting at most `timeout`; empty when
    /// none came. `ENOBUFS` means records were dropped (the socket overflowed).
    pub fn next(&mut self, timeout: Duration) -> io::Result<Vec<(u16, String)>> {
        use rustix::event::{PollFd, PollFlags, Timespec};
        let ts = Timespec { tv_sec: timeout.as_secs() as i64, tv_nsec: i64::from(timeout.subsec_nanos()) };
        let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
        match rustix::event::poll(&mut fds, Some(&ts)) {
            Ok(0) | Err(rustix::io::Errno::INTR) => return Ok(Vec::new()),
            Ok(_) => {}
            Err(e) => return Err(e.into()),
        }
        let (n, _) = rustix::net::recv(&self.fd, &mut self.buf[..], RecvFlags::DONTWAIT)?;
        Ok(messages(&self.buf[..n])
            .into_iter()
            .map(|(k, body)| {
                let text = body.split(|b| *b == 0).next().unwrap_or_default();
                (k, String::from_utf8_lossy(text).into_owned())
            })
            .collect())
    }
}

/// `audit(1700000000.123:456): …` → serial 456.
pub fn serial(text: &str) -> Option<u64> {
    let inner = text.strip_prefix("audit(")?;
    let end = inner.find(')')?;
    inner[..end].split(':').nth(1)?.parse().ok()
}

/// The `key=value` fields of a record; quoted values unquoted, hex-encoded
/// values (audit's encoding of strings with spaces) left as they are.
pub fn fields(text: &str) -> HashMap<&str, &str> {
    let body = text.find("): ").map(|i| &text[i + 3..]).unwrap_or(text);
    let mut out = HashMap::new();
    let mut rest = body.trim_start();
    while let Some(eq) = rest.find('=') {
        let key = &rest[..eq];
        let after = &rest[eq + 1..];
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            match q.find('"') {
                Some(end) => (&q[..end], &q[end + 1..]),
                None => (q, ""),
            }
        } else {
            match after.find(' ') {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            }
        };
        if !key.contains(' ') {
            out.insert(key, value);
        }
        rest = next.trim_start();
    }
    out
}

/// One Landlock denial (record 1423).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denial {
    pub serial: Option<u64>,
    /// The domain that denied it (hex, as the kernel writes it).
    pub domain: String,
    /// `fs.write_file`, `net.connect_tcp`, `scope.signal`, …
    pub blockers: Vec<String>,
    /// A path (for create/remove: the directory), `addr:port`, or a target pid.
    pub object: Option<String>,
}

pub fn parse_access(text: &str) -> Option<Denial> {
    let f = fields(text);
    let object = if let Some(p) = f.get("path") {
        Some(hex_decode(p).unwrap_or_else(|| (*p).to_owned()))
    } else if let (Some(a), Some(p)) = (f.get("daddr"), f.get("dest")) {
        Some(format!("{a}:{p}"))
    } else if let (Some(a), Some(p)) = (f.get("saddr"), f.get("src")) {
        Some(format!("{a}:{p}"))
    } else {
        f.get("opid").map(|p| format!("pid {p}"))
    };
    Some(Denial {
        serial: serial(text),
        domain: (*f.get("domain")?).to_owned(),
        blockers: f.get("blockers")?.split(',').map(str::to_owned).collect(),
        object,
    })
}

/// A domain record (1424): `status=allocated` names the process that created
/// the domain (its pid in the initial PID namespace).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Domain {
    pub domain: String,
    pub allocated_by: Option<u32>,
}

pub fn parse_domain(text: &str) -> Option<Domain> {
    let f = fields(text);
    let allocated = f.get("status").is_some_and(|s| *s == "allocated");
    Some(Domain {
        domain: (*f.get("domain")?).to_owned(),
        allocated_by: if allocated { f.get("pid").and_then(|p| p.parse().ok()) } else { None },
    })
}

/// The executable of a SYSCALL record.
pub fn syscall_exe(text: &str) -> Option<String> {
    fields(text).get("exe").map(|e| hex_decode(e).unwrap_or_else(|| (*e).to_owned()))
}

/// Audit writes a string with unusual characters as bare uppercase hex.
fn hex_decode(s: &str) -> Option<String> {
    if s.len() < 2 || !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
    {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect();
    bytes.map(|b| String::from_utf8_lossy(&b).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_landlock_records_as_the_kernel_writes_them() {
        let d = parse_access(
            "audit(1764200000.123:77): domain=1b454d968 blockers=fs.make_reg path=\"/tmp/lltest/ro\" dev=\"vda\" ino=10011209",
        );
        assert_eq!(
            d,
            Some(Denial {
                serial: Some(77),
                domain: "1b454d968".into(),
                blockers: vec!["fs.make_reg".into()],
                object: Some("/tmp/lltest/ro".into())
            })
        );
        let net =
            parse_access("audit(1.2:3): domain=1b454d969 blockers=net.connect_tcp daddr=127.0.0.1 dest=41115").unwrap();
        assert_eq!(net.object.as_deref(), Some("127.0.0.1:41115"));
        let many =
            parse_access("audit(1.2:4): domain=1 blockers=fs.write_file,fs.remove_dir,fs.refer path=2F612062").unwrap();
        assert_eq!(many.blockers.len(), 3);
        assert_eq!(many.object.as_deref(), Some("/a b"));
        assert_eq!(
            parse_domain(
                "audit(1.2:5): domain=1b454d968 status=allocated mode=enforcing pid=5141 uid=0 exe=\"/x/ll\" comm=\"ll\""
            ),
            Some(Domain { domain: "1b454d968".into(), allocated_by: Some(5141) })
        );
        assert_eq!(
            parse_domain("audit(1.2:6): domain=1b454d968 status=deallocated denials=5").unwrap().allocated_by,
            None
        );
        assert_eq!(
            syscall_exe("audit(1.2:3): arch=c000003e syscall=257 success=no exit=-13 pid=9 exe=\"/usr/bin/touch\"")
                .as_deref(),
            Some("/usr/bin/touch")
        );
        assert_eq!(parse_access("audit(1.2:3): something=else"), None);
    }

    #[test]
    fn splits_datagrams_into_messages_including_the_length_quirk() {
        let mut one = request(LANDLOCK_ACCESS, 0, b"domain=1 blockers=fs.x\0\0");
        one.extend(request(EOE, 0, b"x\0\0\0"));
        let m = messages(&one);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].0, LANDLOCK_ACCESS);
        assert_eq!(m[1].0, EOE);
        let mut quirk = request(SYSCALL, 0, b"pid=1");
        quirk[..4].copy_from_slice(&5u32.to_ne_bytes());
        assert_eq!(messages(&quirk), vec![(SYSCALL, &b"pid=1"[..])]);
    }
}
