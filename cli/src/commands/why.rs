//! `ws why PATH`: would a session allow this access, and which rule decides.

use std::path::PathBuf;

use clap::Args;
use ws_sandbox::Access;

use crate::error::{CliError, exit};
use crate::workspace::Workspace;
use crate::{display, env, out, profiles};

/// Explain whether a session may read, write or execute PATH, or reach
/// HOST through its proxy, and which profile rule decides it.
///
/// Examples: ws why ~/.ssh/id_ed25519 --op read --profile rust
///           ws why --host api.github.com --profile claude-code
#[derive(Debug, Args)]
pub struct WhyArgs {
    #[arg(required_unless_present = "host", conflicts_with = "host")]
    path: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "read")]
    op: Op,
    /// A host name or address (`host` or `host:port`; default port 443) instead of a path.
    #[arg(long)]
    host: Option<String>,
    #[arg(long, default_value = "default")]
    profile: String,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Op {
    Read,
    Write,
    Exec,
}

pub fn cmd_why(args: WhyArgs) -> Result<i32, CliError> {
    let profile = profiles::resolve(&args.profile)?;
    if let Some(host) = &args.host {
        return why_host(&profile, host);
    }
    let ws = Workspace::discover(crate::env::options())?;
    let (home, tmp) = (env::home(), env::tmpdir());
    let policy = profile.fs_policy(&profiles::vars(&ws.root, &home, &tmp));
    let cwd = std::env::current_dir()?;
    let abs = cwd.join(args.path.as_deref().unwrap_or(std::path::Path::new(".")));
    // Landlock sees the resolved path: follow symlinks as the kernel would.
    let resolved = std::fs::canonicalize(&abs).unwrap_or(abs);
    let access = match args.op {
        Op::Read => Access::Read,
        Op::Write => Access::Write,
        Op::Exec => Access::Exec,
    };
    let d = policy.decide(&resolved, access);
    match d.rule {
        Some((kind, rule)) => {
            out!(
                "allowed: {} {} by filesystem.{} = {:?} (profile {})",
                access.name(),
                display::path(&resolved),
                kind.name(),
                rule.display().to_string(),
                profile.name
            );
            Ok(exit::OK)
        }
        None => {
            out!(
                "denied: {} {}: no filesystem.{} rule of profile {} covers it",
                access.name(),
                display::path(&resolved),
                access.name(),
                profile.name
            );
            Ok(exit::FAILURE)
        }
    }
}

fn why_host(profile: &ws_sandbox::Profile, host: &str) -> Result<i32, CliError> {
    let rules = crate::network::rules(profile);
    let Some((host, port)) = ws_proxy::rules::split_authority(host.trim(), 443) else {
        return Err(CliError::usage(format!("`{host}` is not a host or host:port")));
    };
    let route =
        profile.credentials.iter().find(|c| ws_proxy::Upstream::parse(&c.upstream).is_ok_and(|u| u.host == host));
    match rules.decide_host(&host, port) {
        ws_proxy::Verdict::Allow { rule } => {
            out!("allowed: {}:{port} by {rule} (profile {})", display::text(host.as_bytes()), profile.name);
            if let Ok(ip) = host.parse::<std::net::IpAddr>()
                && let Err(why) = rules.check_address(ip)
            {
                out!("but refused at connect time: {why}");
                return Ok(exit::FAILURE);
            }
            out!(
                "each address it resolves to is checked too: loopback, private and link-local ones need [network] addresses"
            );
            Ok(exit::OK)
        }
        ws_proxy::Verdict::Deny { reason, .. } => {
            out!("denied: {} (deny by default)", display::text(reason.as_bytes()));
            if let Some(c) = route {
                out!("reachable only through the credential route `{}`: http://127.0.0.1:PORT/{}/…", c.name, c.name);
            } else {
                let entry = if port == 443 || port == 80 { host.clone() } else { format!("{host}:{port}") };
                let entry = display::text(entry.as_bytes());
                // A loopback, private or link-local address is refused at
                // connect time too: the fix needs both lines.
                match host
                    .parse::<std::net::IpAddr>()
                    .ok()
                    .and_then(|ip| rules.check_address(ip).err().map(|w| (ip, w)))
                {
                    Some((ip, why)) => {
                        out!("and at connect time: {}", display::text(why.as_bytes()));
                        out!(
                            "to allow it, add to the profile:\n[network]\nhosts = [\"{entry}\"]\naddresses = [\"{ip}\"]"
                        );
                        if ip.is_loopback() {
                            out!(
                                "(that is the host's loopback, reached through the proxy; a server the session starts itself on 127.0.0.1 needs neither: NO_PROXY names loopback in a session with its own network namespace)"
                            );
                        }
                    }
                    None => out!("to allow it, add to the profile:\n[network]\nhosts = [\"{entry}\"]"),
                }
            }
            Ok(exit::FAILURE)
        }
    }
}
