//! `ws doctor`: what this machine can enforce, and what a session will.

use clap::Args;
use serde::Serialize;

use crate::error::{CliError, exit};
use crate::out;

/// Show which enforcement layers this machine gives, and what
/// `ws session start` will enforce here.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Row {
    layer: &'static str,
    available: bool,
    detail: String,
    enforced_by_ws: bool,
}

pub fn cmd_doctor(args: DoctorArgs) -> Result<i32, CliError> {
    // Acting for a user under sudo: probe with root's eyes, as a session would.
    let _root = crate::user::as_root("probe the kernel")?;
    let p = ws_sandbox::probe::probe();
    let namespaces = p.root_namespaces || p.user_namespaces;
    let network = crate::network::Mode::choose(namespaces, p.landlock_abi);
    let rows = vec![
        Row {
            layer: "landlock",
            available: p.landlock_abi > 0,
            detail: if p.landlock_abi > 0 {
                format!(
                    "ABI {}{}",
                    p.landlock_abi,
                    if p.landlock_abi >= 6 { " (signal and abstract-socket scoping)" } else { "" }
                )
            } else {
                "not available: needs Linux 5.13+ with landlock in the lsm= boot parameter".into()
            },
            enforced_by_ws: p.landlock_abi > 0,
        },
        Row {
            layer: "seccomp",
            available: p.seccomp,
            detail: "denies keyring, ptrace, bpf, perf, io_uring, mount, module and kexec calls, TIOCSTI/TIOCLINUX"
                .into(),
            enforced_by_ws: p.seccomp,
        },
        Row {
            layer: "no_new_privs",
            available: true,
            detail: "setuid binaries cannot gain rights".into(),
            enforced_by_ws: true,
        },
        Row {
            layer: "environment",
            available: true,
            detail: "allow-list; secret-looking variables never pass".into(),
            enforced_by_ws: true,
        },
        Row {
            layer: "namespaces",
            available: namespaces,
            detail: match (p.root, p.root_namespaces, p.user_namespaces) {
                (true, true, _) => "mount + PID (root): own /proc, .git/hooks and .git/config read-only, store hidden".into(),
                (_, _, true) => "mount + PID through a user namespace: own /proc, .git/hooks and .git/config read-only, store hidden".into(),
                (true, false, false) => "root may not create namespaces here (a container's seccomp profile, or no CAP_SYS_ADMIN): sessions still run (Landlock, seccomp), but see other processes in /proc, and .git's control files are protected only by the check at the session's end; profiles that require namespaces are refused".into(),
                (false, _, false) => "user namespaces are blocked here: sessions still run (Landlock, seccomp), but see your other processes in /proc, and .git/hooks is protected only by rollback".into(),
            },
            enforced_by_ws: namespaces,
        },
        Row {
            layer: "network",
            available: network.is_some(),
            detail: match network {
                Some(m) => format!("{}; deny by default, every request through the session's proxy", m.name()),
                None => "cannot be confined here: needs user namespaces, or Landlock ABI 4 (Linux 6.7+)".into(),
            },
            enforced_by_ws: network.is_some(),
        },
        audit_row(p.landlock_abi, p.root),
        Row {
            layer: "fanotify",
            available: ws_sandbox::probe::fanotify(),
            detail: if ws_sandbox::probe::fanotify() {
                "root sessions record every write (pid, executable, operation, path) in the audit log; `ws log` shows it".into()
            } else {
                "needs root (CAP_SYS_ADMIN): unprivileged sessions are recorded by the snapshot diff alone, every change counted as the session's".into()
            },
            enforced_by_ws: ws_sandbox::probe::fanotify(),
        },
        recorder_row(p.root),
        Row {
            layer: "cgroups",
            available: ws_sandbox::cgroups::describe().is_some(),
            detail: match ws_sandbox::cgroups::describe() {
                Some(c) => format!("{c}: a profile's [resources] memory_max / pids_max are enforced"),
                None => "no delegated cgroup memory/pids controller: profiles with [resources] are refused (or --allow-degraded)".into(),
            },
            enforced_by_ws: ws_sandbox::cgroups::describe().is_some(),
        },
        clone_row(),
        Row {
            layer: "keyring",
            available: ws_sandbox::probe::keyutils() || crate::env::session_bus().is_some(),
            detail: format!(
                "kernel keyutils: {}; Secret Service (D-Bus session bus): {} — where `ws secret set` keeps credentials; the sandbox cannot reach either (seccomp denies keyctl, no session bus inside)",
                if ws_sandbox::probe::keyutils() { "yes" } else { "no" },
                if crate::env::session_bus().is_some() { "yes" } else { "no" }
            ),
            enforced_by_ws: ws_sandbox::probe::keyutils() || crate::env::session_bus().is_some(),
        },
    ];
    if args.json {
        #[derive(Serialize)]
        struct Doc<'a> {
            root: bool,
            layers: &'a [Row],
        }
        out!("{}", serde_json::to_string_pretty(&Doc { root: p.root, layers: &rows }).unwrap_or_default());
        return Ok(exit::OK);
    }
    out!("{:<16} {:<10} {:<9} DETAIL", "LAYER", "AVAILABLE", "ENFORCED");
    for r in &rows {
        out!(
            "{:<16} {:<10} {:<9} {}",
            r.layer,
            if r.available { "yes" } else { "no" },
            if r.enforced_by_ws { "yes" } else { "not yet" },
            r.detail
        );
    }
    Ok(exit::OK)
}

/// Whether snapshots of the workspace here are clones or copies.
/// Which recorder a session started now gets.
fn recorder_row(root: bool) -> Row {
    let socket = crate::service::socket_path();
    let (available, detail) = if root {
        let who = match crate::user::acting_for() {
            Some(u) => format!("ws itself, as root for {} (sudo): the command runs as {}", u.name, u.name),
            None => "ws itself, as root".into(),
        };
        (true, format!("{who}; writes by fanotify, denials by Landlock audit"))
    } else if crate::service::reachable() {
        (true, format!("the recorder service at {}: writes and denials, as for root", socket.display()))
    } else {
        (
            false,
            format!(
                "none for sessions not run as root: no recorder service at {} — `sudo ws recorder install` (systemd), \
                 or run `sudo ws recorder serve`; or start sessions with `sudo ws`, which runs the command as you",
                socket.display()
            ),
        )
    };
    Row { layer: "recorder", available, detail, enforced_by_ws: available }
}

/// Whether Landlock denials reach the session's audit log, and how to make them.
fn audit_row(abi: i32, root: bool) -> Row {
    let status = ws_sandbox::audit_netlink::status();
    let enabled = status.as_ref().is_ok_and(|s| s.enabled > 0);
    let (available, detail) = if abi < 7 {
        (false, "needs Landlock ABI 7 (Linux 6.15+): denials are not recorded".to_string())
    } else if !root {
        (false, "reading the kernel's audit records needs root (CAP_AUDIT_READ): denials are not recorded".into())
    } else if !enabled {
        (
            false,
            "kernel audit is disabled, so denials are not recorded: enable it with `auditctl -e 1` (package auditd), \
             or boot with audit=1"
                .into(),
        )
    } else {
        let daemon = match &status {
            Ok(s) if s.pid != 0 => format!(" (alongside the audit daemon, pid {})", s.pid),
            _ => String::new(),
        };
        let backlog = match &status {
            Ok(s) if s.backlog_limit != 0 && s.backlog_limit < 1024 => format!(
                "; the kernel's audit backlog holds only {} records, so a burst of denials past it is dropped and \
                 the sessions running then are marked incomplete: raise it with `auditctl -b 8192`",
                s.backlog_limit
            ),
            _ => String::new(),
        };
        (true, format!("Landlock denials are read from the audit log's multicast group{daemon}{backlog}"))
    };
    Row { layer: "landlock audit", available, detail, enforced_by_ws: available }
}

fn clone_row() -> Row {
    let found = crate::workspace::Workspace::discover(crate::env::options())
        .ok()
        .map(|ws| (ws.same_filesystem, ws.store.probe_clone()));
    let (available, detail) = match found {
        Some((true, Ok(true))) => (true, "snapshots of this workspace are clones (FICLONE): metadata only".to_owned()),
        Some((true, Ok(false))) => {
            (false, "this filesystem cannot clone (ext4?): snapshots copy, sparse-aware".to_owned())
        }
        Some((false, _)) => (false, "the store is on another filesystem than the workspace: snapshots copy".to_owned()),
        Some((_, Err(e))) => (false, format!("cannot probe: {e}")),
        None => (false, "not in a workspace (run ws doctor inside your project to see)".to_owned()),
    };
    Row { layer: "clone", available, detail, enforced_by_ws: available }
}
