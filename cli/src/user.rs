//! Whom `ws` acts for. Run by root for a user — by `sudo` (`SUDO_UID`) or
//! with `--user NAME` — `ws` acts as that user from the start: their home,
//! profiles and store, files created as theirs, and the session's command
//! run as them. Root is taken back only for the steps that need it
//! ([`as_root`]). Run by root with neither (a container, CI), nothing changes.

use std::sync::OnceLock;

use ws_sandbox::privilege::{Elevated, User};

use crate::error::CliError;

static ACTING_FOR: OnceLock<User> = OnceLock::new();

/// Decides whom this process acts for and switches to them. Call before any
/// thread starts.
pub fn adopt(flag: Option<&str>) -> Result<(), CliError> {
    let root = rustix::process::geteuid().is_root();
    let user = match flag {
        Some(name) if !root => {
            return Err(CliError::usage(format!("--user {name} needs root: it runs the session's command as {name}"))
                .hint(format!("run `sudo ws --user {name} …`, or leave --user out to act as yourself")));
        }
        Some(name) => User::by_name(name).map_err(|e| {
            CliError::usage(crate::error::chain(&e)).hint("name a user that exists (`getent passwd NAME`)")
        })?,
        None if !root => return Ok(()),
        None => match sudo_uid() {
            Some(uid) => User::by_uid(uid).map_err(|e| {
                CliError::usage(format!("SUDO_UID={uid}: {}", crate::error::chain(&e)))
                    .hint("unset SUDO_UID to run as root, or pass --user NAME")
            })?,
            None => return Ok(()),
        },
    };
    if user.uid == 0 {
        return Ok(());
    }
    ws_sandbox::privilege::act_as(&user).map_err(|e| CliError::failure(crate::error::chain(&e)))?;
    ws_sandbox::privilege::set_login_env(&user);
    let _ = ACTING_FOR.set(user);
    Ok(())
}

/// The uid `sudo` ran `ws` for, if not root.
fn sudo_uid() -> Option<u32> {
    crate::env::var_os(crate::env::SUDO_UID)?.to_str()?.parse().ok().filter(|&u| u != 0)
}

/// The user `ws` acts for as root, if it does.
pub fn acting_for() -> Option<&'static User> {
    ACTING_FOR.get()
}

/// Root for one privileged step (`what` names it in an error); back to the
/// user when the guard drops. Plainly root or plainly a user: nothing to do.
pub fn as_root(what: &str) -> Result<Elevated, CliError> {
    ws_sandbox::privilege::elevate()
        .map_err(|e| CliError::failure(format!("cannot {what}: {}", crate::error::chain(&e))))
}
