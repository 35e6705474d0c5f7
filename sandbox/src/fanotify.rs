//! fanotify with file handles and names: a thin wrapper over the syscalls.
//!
//! A group reports, per event, the directory's file handle and the entry's
//! name (`FAN_REPORT_DFID_NAME`), the target's own handle (`FAN_REPORT_FID`,
//! `FAN_REPORT_TARGET_FID`: a created directory's handle is learnt when it is
//! created, so later events inside it resolve even after it is gone), and for
//! `FAN_RENAME` both the old and the new directory and name. Handles are
//! turned into paths by the caller ([`name_to_handle`], [`open_by_handle`]).
//!
//! # Security
//! Needs CAP_SYS_ADMIN (a filesystem mark). The group's fd is close-on-exec,
//! so no process the session starts inherits it. Parsing trusts only the
//! lengths the kernel wrote and checks every one of them against the buffer:
//! a malformed record ends the batch, it is never read past.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Every change to the tree: what the recorder subscribes to.
pub const WRITE_EVENTS: u64 = libc::FAN_CREATE
    | libc::FAN_MODIFY
    | libc::FAN_CLOSE_WRITE
    | libc::FAN_DELETE
    | libc::FAN_RENAME
    | libc::FAN_ATTRIB
    | libc::FAN_ONDIR;

#[derive(Debug)]
pub struct Group {
    fd: OwnedFd,
}

impl Group {
    /// A notification group reporting directory handles and names, with an
    /// unlimited queue (so no event is dropped while the reader is busy).
    #[allow(unsafe_code)]
    pub fn new() -> io::Result<Group> {
        let flags = libc::FAN_CLASS_NOTIF
            | libc::FAN_CLOEXEC
            | libc::FAN_NONBLOCK
            | libc::FAN_UNLIMITED_QUEUE
            | libc::FAN_REPORT_DFID_NAME_TARGET;
        // SAFETY: fanotify_init takes two integer flag sets and returns a new
        // fd or -1; nothing is borrowed.
        let fd = unsafe { libc::fanotify_init(flags, (libc::O_RDONLY | libc::O_CLOEXEC) as u32) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by the kernel and is owned by no one else.
        Ok(Group { fd: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    /// A group made by [`Group::new`] in another process and inherited.
    pub fn from_fd(fd: OwnedFd) -> Group {
        Group { fd }
    }

    /// Marks the whole filesystem that holds `path` for `mask`.
    pub fn mark_filesystem(&self, path: &Path, mask: u64) -> io::Result<()> {
        self.filesystem_mark(libc::FAN_MARK_ADD, path, mask)
    }

    /// Removes the mark [`Group::mark_filesystem`] placed. The kernel frees
    /// it later, off this thread; a group's last close instead waits for
    /// every mark being freed (an SRCU grace period, up to tens of ms).
    pub fn unmark_filesystem(&self, path: &Path, mask: u64) -> io::Result<()> {
        self.filesystem_mark(libc::FAN_MARK_REMOVE, path, mask)
    }

    #[allow(unsafe_code)]
    fn filesystem_mark(&self, op: u32, path: &Path, mask: u64) -> io::Result<()> {
        let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: `c` is a NUL-terminated string that outlives the call; the
        // group fd is valid for the lifetime of `self`.
        let r = unsafe {
            libc::fanotify_mark(self.fd.as_raw_fd(), op | libc::FAN_MARK_FILESYSTEM, mask, libc::AT_FDCWD, c.as_ptr())
        };
        if r < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
    }

    /// Reads queued events into `buf`; `WouldBlock` when there are none.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        rustix::io::read(&self.fd, buf).map_err(io::Error::from)
    }
}

impl From<Group> for OwnedFd {
    fn from(g: Group) -> OwnedFd {
        g.fd
    }
}

impl AsFd for Group {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A file handle as the kernel encodes it (`struct file_handle`: length,
/// type, bytes), kept whole: it is the key of the path cache.
pub type Handle = Vec<u8>;

/// One event of a group made by [`Group::new`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Event<'a> {
    pub mask: u64,
    /// The writer, as seen from the reader's PID namespace: 0 when the writer
    /// is not in it (or one below it).
    pub pid: i32,
    /// Directory and name (`DFID_NAME`); for `FAN_RENAME`, the old ones.
    pub dir: Option<(&'a [u8], &'a [u8])>,
    /// For `FAN_RENAME`: the new directory and name.
    pub new_dir: Option<(&'a [u8], &'a [u8])>,
    /// The object itself (`FID`).
    pub target: Option<&'a [u8]>,
}

const META_LEN: usize = std::mem::size_of::<libc::fanotify_event_metadata>();

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Splits a buffer filled by [`Group::read`] into events.
pub fn events(buf: &[u8]) -> impl Iterator<Item = Event<'_>> {
    let mut rest = buf;
    std::iter::from_fn(move || {
        let event_len = u32_at(rest, 0)? as usize;
        let metadata_len = u16_at(rest, 6)? as usize;
        if event_len < META_LEN || event_len > rest.len() || metadata_len < META_LEN || metadata_len > event_len {
            return None;
        }
        let (this, next) = rest.split_at(event_len);
        rest = next;
        let mut ev = Event { mask: u64_at(this, 8)?, pid: u32_at(this, 20)? as i32, ..Event::default() };
        // An fd-mode event would carry an open fd here; a FID group never does.
        let mut info = &this[metadata_len..];
        while info.len() >= 4 {
            let kind = info[0];
            let len = u16_at(info, 2)? as usize;
            if len < 4 || len > info.len() {
                break;
            }
            let (rec, more) = info.split_at(len);
            info = more;
            // header(4) fsid(8) then struct file_handle: handle_bytes(4) type(4) f_handle.
            let Some(hbytes) = u32_at(rec, 12) else { continue };
            let hend = 20 + hbytes as usize;
            let Some(handle) = rec.get(12..hend) else { continue };
            let name = || {
                let tail = rec.get(hend..).unwrap_or_default();
                &tail[..tail.iter().position(|b| *b == 0).unwrap_or(tail.len())]
            };
            match kind {
                libc::FAN_EVENT_INFO_TYPE_FID => ev.target = Some(handle),
                libc::FAN_EVENT_INFO_TYPE_DFID_NAME | libc::FAN_EVENT_INFO_TYPE_OLD_DFID_NAME => {
                    ev.dir = Some((handle, name()))
                }
                libc::FAN_EVENT_INFO_TYPE_DFID => ev.dir = Some((handle, b".")),
                libc::FAN_EVENT_INFO_TYPE_NEW_DFID_NAME => ev.new_dir = Some((handle, name())),
                _ => {}
            }
        }
        Some(ev)
    })
}

/// The handle of `path` (not following a final symlink), as a group reports it.
#[allow(unsafe_code)]
pub fn name_to_handle(path: &Path) -> io::Result<Handle> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut buf = [0u8; 8 + libc::MAX_HANDLE_SZ as usize];
    buf[..4].copy_from_slice(&(libc::MAX_HANDLE_SZ as u32).to_ne_bytes());
    let mut mount_id: libc::c_int = 0;
    // SAFETY: `buf` is a `struct file_handle` with room for MAX_HANDLE_SZ
    // bytes, as its handle_bytes field says; `c` and `mount_id` outlive the call.
    let r = unsafe { libc::name_to_handle_at(libc::AT_FDCWD, c.as_ptr(), buf.as_mut_ptr().cast(), &mut mount_id, 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let len = u32_at(&buf, 0).unwrap_or(0) as usize;
    Ok(buf[..8 + len.min(libc::MAX_HANDLE_SZ as usize)].to_vec())
}

/// Opens (`O_PATH`) the object a handle names, on the filesystem of `mount`.
/// Needs CAP_DAC_READ_SEARCH; `ESTALE` when the object no longer exists.
///
/// `ENOMEM` is asked again, for up to [`ENOMEM_RETRIES`] ms: when the file
/// is gone and a file being created right now took its inode number, the
/// kernel's inode cache says so (`iget_locked` finds the new inode still
/// being made and returns nothing) and ext4 turns that into `ENOMEM`. Once
/// the new file is made, the old handle's generation no longer matches:
/// `ESTALE`. A real shortage of memory stays `ENOMEM`.
pub fn open_by_handle(mount: BorrowedFd<'_>, handle: &[u8]) -> io::Result<OwnedFd> {
    let mut tries = 0;
    loop {
        match open_by_handle_once(mount, handle) {
            Err(e) if e.raw_os_error() == Some(libc::ENOMEM) && tries < ENOMEM_RETRIES => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            r => return r,
        }
    }
}

/// How many times [`open_by_handle`] asks again after `ENOMEM`, 1 ms apart.
const ENOMEM_RETRIES: u32 = 100;

#[allow(unsafe_code)]
fn open_by_handle_once(mount: BorrowedFd<'_>, handle: &[u8]) -> io::Result<OwnedFd> {
    if handle.len() < 8 || handle.len() > 8 + libc::MAX_HANDLE_SZ as usize {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    // An aligned copy: the kernel reads a struct file_handle.
    let mut buf = vec![0u32; (8 + libc::MAX_HANDLE_SZ as usize) / 4];
    // SAFETY: `buf` holds at least `handle.len()` bytes and u8 has no alignment needs.
    let bytes = unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<u8>(), buf.len() * 4) };
    bytes[..handle.len()].copy_from_slice(handle);
    // SAFETY: `buf` is a valid struct file_handle whose handle_bytes field
    // (copied from the kernel's own encoding) fits the buffer; `mount` is a
    // live fd for the duration of the call.
    let fd =
        unsafe { libc::open_by_handle_at(mount.as_raw_fd(), buf.as_mut_ptr().cast(), libc::O_PATH | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new fd from the kernel, owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The name of an open file, checked: the path the kernel shows for `fd`,
/// if that path names this very file now. A file opened by its handle may
/// be shown detached from the tree, by a path that is not its name: then
/// `None`, as when it has no name left or the name moved meanwhile.
pub fn checked_name(fd: BorrowedFd<'_>) -> Option<std::path::PathBuf> {
    let shown = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()?;
    let named = rustix::fs::lstat(&shown).ok()?;
    let st = rustix::fs::fstat(fd).ok()?;
    (named.st_dev == st.st_dev && named.st_ino == st.st_ino).then_some(shown)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn info(kind: u8, handle: &[u8], name: &[u8]) -> Vec<u8> {
        let mut body = vec![0u8; 8]; // fsid
        body.extend_from_slice(&((handle.len() - 8) as u32).to_ne_bytes());
        body.extend_from_slice(&handle[4..8]);
        body.extend_from_slice(&handle[8..]);
        body.extend_from_slice(name);
        body.push(0);
        while !body.len().is_multiple_of(4) {
            body.push(0);
        }
        let mut rec = vec![kind, 0];
        rec.extend_from_slice(&((body.len() + 4) as u16).to_ne_bytes());
        rec.extend_from_slice(&body);
        rec
    }

    fn event(mask: u64, pid: i32, infos: &[Vec<u8>]) -> Vec<u8> {
        let body: Vec<u8> = infos.concat();
        let mut m = Vec::new();
        m.extend_from_slice(&((META_LEN + body.len()) as u32).to_ne_bytes());
        m.push(3); // version
        m.push(0);
        m.extend_from_slice(&(META_LEN as u16).to_ne_bytes());
        m.extend_from_slice(&mask.to_ne_bytes());
        m.extend_from_slice(&(-1i32).to_ne_bytes());
        m.extend_from_slice(&pid.to_ne_bytes());
        m.extend_from_slice(&body);
        m
    }

    fn handle(n: u8) -> Vec<u8> {
        let mut h = 8u32.to_ne_bytes().to_vec();
        h.extend_from_slice(&1i32.to_ne_bytes());
        h.extend_from_slice(&[n; 8]);
        h
    }

    #[test]
    fn parses_names_renames_and_targets_and_stops_at_garbage() {
        let mut buf = event(
            libc::FAN_CREATE,
            7,
            &[info(libc::FAN_EVENT_INFO_TYPE_DFID_NAME, &handle(1), b"a.txt"), info(1, &handle(2), b"")],
        );
        buf.extend(event(
            libc::FAN_RENAME,
            0,
            &[
                info(libc::FAN_EVENT_INFO_TYPE_OLD_DFID_NAME, &handle(1), b"old"),
                info(libc::FAN_EVENT_INFO_TYPE_NEW_DFID_NAME, &handle(3), b"new"),
            ],
        ));
        buf.extend_from_slice(&[0xff; 10]);
        let evs: Vec<Event> = events(&buf).collect();
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[0].pid, 7);
        assert_eq!(evs[0].dir, Some((&handle(1)[..], &b"a.txt"[..])));
        assert_eq!(evs[0].target, Some(&handle(2)[..]));
        assert_eq!(evs[1].mask, libc::FAN_RENAME);
        assert_eq!(evs[1].dir.unwrap().1, b"old");
        assert_eq!(evs[1].new_dir, Some((&handle(3)[..], &b"new"[..])));
        // A length that points past the buffer ends the batch.
        let mut bad = event(libc::FAN_CREATE, 1, &[]);
        bad[0] = 200;
        assert_eq!(events(&bad).count(), 0);
    }
}
