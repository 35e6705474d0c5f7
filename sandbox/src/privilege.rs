//! Who a session runs as when `ws` itself runs as root for a user
//! (`sudo ws …`): the user from the password database, and the switches
//! between acting as that user and taking root back for what needs it.
//!
//! Shape:
//! ```text
//! ws (sudo)      act_as(user): ruid=euid=user, saved uid root; groups, gids likewise
//!                Elevated (a guard): euid root for one privileged step, then back
//! launcher       started while elevated: root, as today
//! init           after its mounts and the recorder: drop_to(user) for good,
//!                then Landlock and seccomp, then the command
//! ```
//!
//! # Security
//! - Acting as the user, `ws` creates every file (the store, the session's
//!   record, restored files) as the user, so the user's own `ws diff` and
//!   `ws rollback` can use them and nothing in their home ends up root's.
//! - Only the saved set-user-ID keeps root. A program `ws` executes while
//!   acting as the user loses it at `execve` (the kernel copies the
//!   effective uid into the saved one), so a helper (`git`, a `cmd:` secret
//!   source) never holds root.
//! - glibc applies `setresuid`, `setresgid` and `setgroups` to every thread of
//!   the process (its set-ID broadcast), so no thread is left behind with
//!   other credentials; `ws` calls [`act_as`] before it starts any thread.
//! - The command gets `drop_to`: real, effective and saved ids all the user's,
//!   no capability left, `no_new_privs` set; it is checked after the switch,
//!   and a failure stops the session before the command runs.

use std::ffi::{CStr, CString, OsString};
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A user from the password database.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups, as `initgroups` would set them (the primary
    /// group included).
    pub groups: Vec<u32>,
    pub home: PathBuf,
    pub shell: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    #[error("no user {0} in the password database")]
    NoSuchUser(String),
    #[error("cannot read the password database")]
    Lookup(#[source] std::io::Error),
    #[error("cannot switch to user {user}")]
    Switch { user: String, source: std::io::Error },
    #[error("cannot take root back for a privileged step")]
    Elevate(#[source] std::io::Error),
}

enum Key<'a> {
    Uid(u32),
    Name(&'a CStr),
}

impl User {
    pub fn by_uid(uid: u32) -> Result<User, PrivilegeError> {
        lookup(Key::Uid(uid))?.ok_or_else(|| PrivilegeError::NoSuchUser(format!("with uid {uid}")))
    }

    pub fn by_name(name: &str) -> Result<User, PrivilegeError> {
        let c = CString::new(name).map_err(|_| PrivilegeError::NoSuchUser(format!("{name:?}")))?;
        lookup(Key::Name(&c))?.ok_or_else(|| PrivilegeError::NoSuchUser(name.to_owned()))
    }

    /// The environment a login of this user has: `HOME`, `USER`, `LOGNAME`,
    /// `SHELL`. Pure.
    pub fn login_env(&self) -> Vec<(OsString, OsString)> {
        vec![
            ("HOME".into(), self.home.clone().into_os_string()),
            ("USER".into(), self.name.clone().into()),
            ("LOGNAME".into(), self.name.clone().into()),
            ("SHELL".into(), self.shell.clone().into_os_string()),
        ]
    }
}

/// `getpwuid_r`/`getpwnam_r`, then `getgrouplist`.
#[allow(unsafe_code)]
fn lookup(key: Key) -> Result<Option<User>, PrivilegeError> {
    let mut buf: Vec<libc::c_char> = vec![0; 4096];
    loop {
        // SAFETY: `passwd` is plain data the call fills in; every pointer in
        // it points into `buf`, which outlives their use below (copied out
        // before `buf` is resized or dropped).
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: valid pointers to `pw`, `buf` (with its true length) and
        // `found`; the name is a NUL-terminated C string.
        let rc = unsafe {
            match key {
                Key::Uid(uid) => libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut found),
                Key::Name(name) => libc::getpwnam_r(name.as_ptr(), &mut pw, buf.as_mut_ptr(), buf.len(), &mut found),
            }
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 {
            return Err(PrivilegeError::Lookup(std::io::Error::from_raw_os_error(rc)));
        }
        if found.is_null() {
            return Ok(None);
        }
        // SAFETY: the call succeeded, so these fields point at NUL-terminated
        // strings inside `buf` (or are null, checked).
        let text = |p: *const libc::c_char| -> Vec<u8> {
            if p.is_null() { Vec::new() } else { unsafe { CStr::from_ptr(p) }.to_bytes().to_vec() }
        };
        let name_bytes = text(pw.pw_name);
        let name = String::from_utf8_lossy(&name_bytes).into_owned();
        let home = PathBuf::from(OsString::from_vec(text(pw.pw_dir)));
        let shell = match text(pw.pw_shell) {
            s if s.is_empty() => PathBuf::from("/bin/sh"),
            s => PathBuf::from(OsString::from_vec(s)),
        };
        let (uid, gid) = (pw.pw_uid, pw.pw_gid);
        let groups = group_list(&name_bytes, gid)?;
        return Ok(Some(User { name, uid, gid, groups, home, shell }));
    }
}

#[allow(unsafe_code)]
fn group_list(name: &[u8], gid: u32) -> Result<Vec<u32>, PrivilegeError> {
    let c = CString::new(name).map_err(|_| PrivilegeError::NoSuchUser(String::from_utf8_lossy(name).into_owned()))?;
    let mut n: libc::c_int = 32;
    loop {
        let mut groups: Vec<libc::gid_t> = vec![0; n as usize];
        let asked = n;
        // SAFETY: `groups` has room for `n` entries, and the call writes at
        // most that many; it sets `n` to the number it has (or needs).
        let rc = unsafe { libc::getgrouplist(c.as_ptr(), gid, groups.as_mut_ptr(), &mut n) };
        if rc >= 0 {
            groups.truncate(n.max(0) as usize);
            return Ok(groups);
        }
        if n <= asked {
            // It failed without saying how many it needs: grow anyway.
            n = asked * 2;
        }
        if n > 1 << 16 {
            return Err(PrivilegeError::Lookup(std::io::Error::other("too many groups")));
        }
    }
}

/// Whether this process can act as root: it is root, or it acts as a user
/// with root kept as its saved set-user-ID ([`act_as`]).
pub fn root_available() -> bool {
    let (_, e, s) = resuid();
    e == 0 || s == 0
}

/// The user this process acts as for root ([`act_as`]), if it does.
pub fn acting_as() -> Option<u32> {
    let (r, e, s) = resuid();
    (s == 0 && e != 0).then_some(r)
}

fn resuid() -> (u32, u32, u32) {
    let r = rustix::process::getuid().as_raw();
    let e = rustix::process::geteuid().as_raw();
    (r, e, saved_uid().unwrap_or(e))
}

/// The saved set-user-ID, from `/proc/self/status` (`Uid:` real effective
/// saved filesystem).
fn saved_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

fn check(rc: libc::c_int) -> std::io::Result<()> {
    if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

/// For the rest of this (root, still single-threaded) process: act as
/// `user` — real and effective ids and groups the user's — keeping root
/// only as the saved set-user-ID, for [`Elevated`].
#[allow(unsafe_code)]
pub fn act_as(user: &User) -> Result<(), PrivilegeError> {
    let fail = |source| PrivilegeError::Switch { user: user.name.clone(), source };
    // SAFETY: plain system calls (through glibc, which applies them to every
    // thread) on integers and a slice that outlives the call.
    unsafe {
        check(libc::setgroups(user.groups.len(), user.groups.as_ptr())).map_err(fail)?;
        check(libc::setresgid(user.gid, user.gid, 0)).map_err(fail)?;
        check(libc::setresuid(user.uid, user.uid, 0)).map_err(fail)?;
    }
    Ok(())
}

/// Gives this process the user's login variables (`HOME`, `USER`,
/// `LOGNAME`, `SHELL`), so every program it runs for them (git, a `cmd:`
/// secret source) finds their configuration rather than root's. Call with
/// [`act_as`], before any thread starts.
#[allow(unsafe_code)]
pub fn set_login_env(user: &User) {
    for (k, v) in user.login_env() {
        // SAFETY: called while the process is still single-threaded (before
        // the command line is acted on), so no other thread reads the
        // environment during the write.
        unsafe { std::env::set_var(k, v) };
    }
}

/// Root again for one privileged step (making the write recorder's group,
/// joining the audit multicast group, making a cgroup, starting the
/// launcher), back to the user when dropped. Does nothing where the process
/// is plainly root or plainly a user.
#[derive(Debug)]
#[must_use = "root is given back when the guard is dropped"]
pub struct Elevated {
    back_to: Option<(u32, u32)>,
}

/// See [`Elevated`].
#[allow(unsafe_code)]
pub fn elevate() -> Result<Elevated, PrivilegeError> {
    let Some(uid) = acting_as() else { return Ok(Elevated { back_to: None }) };
    let gid = rustix::process::getegid().as_raw();
    // SAFETY: plain system calls on integers; root is the saved uid (and
    // gid), which an unprivileged process may always switch back to.
    unsafe {
        check(libc::setresuid(u32::MAX, 0, u32::MAX)).map_err(PrivilegeError::Elevate)?;
        check(libc::setresgid(u32::MAX, 0, u32::MAX)).map_err(PrivilegeError::Elevate)?;
    }
    Ok(Elevated { back_to: Some((uid, gid)) })
}

impl Drop for Elevated {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        if let Some((uid, gid)) = self.back_to {
            // SAFETY: plain system calls on integers. Failing to give root
            // back must not go unnoticed: abort rather than go on as root.
            let ok = unsafe {
                libc::setresgid(u32::MAX, gid, u32::MAX) == 0 && libc::setresuid(u32::MAX, uid, u32::MAX) == 0
            };
            if !ok {
                std::process::abort();
            }
        }
    }
}

/// For good, in the session's init before it restricts itself: `uid`,
/// `gid` and `groups` real, effective and saved; no capability; no way back.
#[allow(unsafe_code)]
pub fn drop_to(uid: u32, gid: u32, groups: &[u32]) -> std::io::Result<()> {
    rustix::thread::set_no_new_privs(true)?;
    // SAFETY: plain system calls (applied to every thread by glibc) on
    // integers and a slice that outlives the call.
    unsafe {
        check(libc::setgroups(groups.len(), groups.as_ptr()))?;
        check(libc::setresgid(gid, gid, gid))?;
        check(libc::setresuid(uid, uid, uid))?;
    }
    // Fail closed: the switch must have happened, all the way.
    let (r, e, s) = resuid();
    if (r, e, s) != (uid, uid, uid) || rustix::process::getegid().as_raw() != gid {
        return Err(std::io::Error::other(format!("still uid {r}/{e}/{s} after switching to {uid}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_in_the_password_database() {
        let root = User::by_uid(0).unwrap();
        assert_eq!(root.name, "root");
        assert_eq!(root.uid, 0);
        assert!(root.home.is_absolute());
        assert_eq!(User::by_name("root").unwrap(), root);
        assert!(matches!(User::by_name("no-such-user-ws-test"), Err(PrivilegeError::NoSuchUser(_))));
        assert!(matches!(User::by_name("nul\0name"), Err(PrivilegeError::NoSuchUser(_))));
    }

    #[test]
    fn a_login_environment_names_the_user() {
        let u = User {
            name: "me".into(),
            uid: 1000,
            gid: 1000,
            groups: vec![1000, 27],
            home: "/home/me".into(),
            shell: "/bin/zsh".into(),
        };
        let env = u.login_env();
        assert!(env.contains(&("HOME".into(), "/home/me".into())));
        assert!(env.contains(&("LOGNAME".into(), "me".into())));
        assert!(env.contains(&("SHELL".into(), "/bin/zsh".into())));
    }
}
