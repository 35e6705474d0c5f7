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
    let p = ws_sandbox::probe::probe();
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
            available: p.user_namespaces || p.root,
            detail: match (p.root, p.user_namespaces) {
                (true, _) => "mount + PID (root): own /proc, .git/hooks and .git/config read-only, store hidden".into(),
                (false, true) => "mount + PID through a user namespace: own /proc, .git/hooks and .git/config read-only, store hidden".into(),
                (false, false) => "user namespaces are blocked here: sessions still run (Landlock, seccomp), but see your other processes in /proc, and .git/hooks is protected only by rollback".into(),
            },
            enforced_by_ws: p.user_namespaces || p.root,
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
