//! `ws learn`'s computations: the open policy a learning session runs
//! with, the denials of a session and the profile lines that would allow
//! them, and the profile learned from what a session used.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ws_sandbox::learn::{self, Entry, Learned, Observed};
use ws_sandbox::{Access, FsPolicy};
use ws_snapshot::audit::Event;
use ws_snapshot::{Session, Store};

use crate::{Error, Ran};

/// The filesystem policy of a learning session: the base's, plus reading and
/// executing everywhere and writing where a user's tools keep their state.
pub fn open_policy(mut fs: FsPolicy, home: &Option<PathBuf>, tmp: &Option<PathBuf>) -> FsPolicy {
    fs.read.push("/".into());
    fs.exec.push("/".into());
    fs.write.extend(home.iter().chain(tmp).cloned());
    fs.write.extend(["/tmp", "/var/tmp", "/dev"].map(PathBuf::from));
    fs
}

/// The proxy's rules in a learning session: every host and address.
pub fn open_rules() -> ws_proxy::NetRules {
    ws_proxy::NetRules {
        origin: "ws learn (every host allowed and recorded)".into(),
        hosts: vec!["*:*".into()],
        addresses: ["0.0.0.0/0", "::/0"].into_iter().filter_map(ws_proxy::Cidr::parse).collect(),
        http: Vec::new(),
    }
}

/// The profile `ws learn` writes: `base_name` (the profile the learning session
/// extended, by name) with what the session used beyond it.
pub fn learned_profile(ran: &Ran, base_name: &str) -> Result<(String, Learned), Error> {
    let (home, tmp) = (ran.ws.options.home.clone(), ran.ws.options.tmpdir.clone());
    let vars = crate::profiles::vars(&ran.ws.root, &home, &tmp);
    let base = ran.profile.fs_policy(&vars);
    let mut notes = Vec::new();
    let mut observed: Vec<Observed> = Vec::new();
    match &ran.learning {
        Some(l) => {
            observed.extend(l.accessed.iter().cloned());
            notes.push(format!("Watched: {}.", l.watched.join(", ")));
            for s in &l.skipped {
                notes.push(format!("Not watched (accesses there are not in this profile): {s}"));
            }
        }
        None => notes.push(
            "Files opened: NOT observed (fanotify needs root). Only the network part below was learned; \
             run `sudo -E ws learn …` to learn the filesystem too."
                .into(),
        ),
    }
    // What the learning session itself was refused (writes outside the open areas).
    for d in denials(&ran.ws.store, &ran.session) {
        if let Denied::Fs { path, access, count } = d {
            observed.push(Observed { path, access, count });
        }
    }
    if ran.session.recording.as_ref().is_some_and(|r| r.denials == "none") && ran.learning.is_some() {
        notes.push(
            "Denials: not recorded (kernel audit is off); writes outside the workspace, home and temporary \
             directories were refused without a trace — `ws doctor` says how to turn audit on."
                .into(),
        );
    }
    let mut learned = learn::learn(&base, &vars, &observed);
    let rules = crate::network::rules(&ran.profile);
    let mut seen: BTreeMap<(String, u16), u64> = BTreeMap::new();
    for r in ran.requests.iter().filter(|r| r.allowed && r.credential.is_none()) {
        *seen.entry((r.host.clone(), r.port)).or_insert(0) += 1;
    }
    for ((host, port), count) in seen {
        let entry = learn::host_entry(&host, port);
        if let ws_proxy::Verdict::Deny { .. } = rules.decide_host(&host, port) {
            learn::add(&mut learned.hosts, entry.clone(), count, None, None);
        }
        for ip in addresses_of(&host, port) {
            if let Err(why) = rules.check_address(ip) {
                let class = why.split(" is a ").nth(1).and_then(|w| w.split(" address").next()).unwrap_or("private");
                let why = format!("{class}; {entry} resolves to it");
                learn::add(&mut learned.addresses, ip.to_string(), count, None, Some(why));
            }
        }
    }
    let command: Vec<String> = ran.session.command.clone();
    let header = vec![
        format!("Learned by `ws learn` from `{}` (session {}).", command.join(" "), ran.session.id),
        format!("It extends profile `{}` with what the command used beyond it; each comment", base_name),
        "says how often. Review it: every line is something the command really did.".into(),
    ];
    let mut shown = command.join(" ");
    if shown.chars().count() > 60 {
        shown = format!("{}…", shown.chars().take(59).collect::<String>());
    }
    let description = format!("{}, plus what `{shown}` used (learned)", base_name);
    let text = learn::render(base_name, &description, &header, &learned, &notes);
    Ok((text, learned))
}

/// The addresses a host resolves to, as the proxy would have connected.
fn addresses_of(host: &str, port: u16) -> Vec<IpAddr> {
    use std::net::ToSocketAddrs;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return vec![ip];
    }
    let mut v: Vec<IpAddr> = (bare, port).to_socket_addrs().map(|a| a.map(|s| s.ip()).collect()).unwrap_or_default();
    v.sort();
    v.dedup();
    v
}

/// One kind of denial of a session, with how often it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denied {
    Fs {
        path: PathBuf,
        access: Access,
        count: u64,
    },
    /// A request the proxy refused: `host` as recorded (`h` or `h:port`).
    Host {
        host: String,
        count: u64,
    },
    /// A host that resolved to an address the profile does not allow.
    Address {
        ip: IpAddr,
        host: String,
        count: u64,
    },
    /// Refused by a layer no profile line changes (`net.connect_tcp` outside the proxy, …).
    Other {
        what: String,
        count: u64,
    },
}

/// A session's denials from its audit log, grouped.
pub fn denials(store: &Store, session: &Session) -> Vec<Denied> {
    let Ok(records) = ws_snapshot::audit::read(&store.audit_log_path(&session.id)) else { return Vec::new() };
    let mut out: Vec<Denied> = Vec::new();
    let mut bump = |d: Denied| {
        let same = out.iter_mut().find(|o| match (o, &d) {
            (Denied::Fs { path: a, access: x, .. }, Denied::Fs { path: b, access: y, .. }) => a == b && x == y,
            (Denied::Host { host: a, .. }, Denied::Host { host: b, .. }) => a == b,
            (Denied::Address { ip: a, .. }, Denied::Address { ip: b, .. }) => a == b,
            (Denied::Other { what: a, .. }, Denied::Other { what: b, .. }) => a == b,
            _ => false,
        });
        match same {
            Some(Denied::Fs { count, .. } | Denied::Host { count, .. })
            | Some(Denied::Address { count, .. } | Denied::Other { count, .. }) => *count += 1,
            None => out.push(d),
        }
    };
    for r in records {
        match r.event {
            Event::Denial { access, object, by, .. } => {
                let kinds: Vec<Access> = access.iter().filter_map(|a| learn::access_of(a)).collect();
                match (object, kinds.is_empty()) {
                    (Some(path), false) if path.starts_with('/') => {
                        let mut kinds = kinds;
                        kinds.sort();
                        kinds.dedup();
                        for access in kinds {
                            bump(Denied::Fs { path: PathBuf::from(&path), access, count: 1 });
                        }
                    }
                    (object, _) => bump(Denied::Other {
                        what: format!("{} {} ({by})", access.join(","), object.unwrap_or_default()),
                        count: 1,
                    }),
                }
            }
            Event::Net { decision, host, reason, credential: None, .. } if decision == "deny" => {
                // The proxy's words for an address refusal: "IP is a CLASS address; …".
                let ip = reason
                    .as_deref()
                    .and_then(|r| r.split_once(" is a "))
                    .filter(|(_, rest)| rest.contains(" address"))
                    .and_then(|(w, _)| w.parse::<IpAddr>().ok());
                match ip {
                    Some(ip) => bump(Denied::Address { ip, host, count: 1 }),
                    None => bump(Denied::Host { host, count: 1 }),
                }
            }
            _ => {}
        }
    }
    out
}

/// A denial and the profile line that would allow it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Suggestion {
    /// What was refused, for people.
    pub denied: String,
    pub count: u64,
    /// `filesystem.read`, `network.hosts`, `network.addresses`; none when no
    /// line should allow it.
    pub key: Option<String>,
    pub value: Option<String>,
    /// Why there is no line, when there is none.
    pub note: Option<String>,
}

pub fn suggestions(denied: &[Denied], workspace: &Path, options: &crate::Options) -> Vec<Suggestion> {
    let (home, tmp) = (options.home.clone(), options.tmpdir.clone());
    let vars = crate::profiles::vars(workspace, &home, &tmp);
    let line = |denied: String, count: u64, key: &str, value: String| Suggestion {
        denied,
        count,
        key: Some(key.to_owned()),
        value: Some(value),
        note: None,
    };
    let none = |denied: String, count: u64, note: String| Suggestion {
        denied,
        count,
        key: None,
        value: None,
        note: Some(note),
    };
    let mut out = Vec::new();
    for d in denied {
        match d {
            // Nothing a profile should allow: no line, no note.
            Denied::Fs { path, .. } if learn::is_noise(path) => {}
            Denied::Other { what, .. } if what.starts_with("ptrace") => {}
            // A request for the session's own proxy (a route, or a tunnel to
            // its port): the session's setup, not a host to allow.
            Denied::Host { host, .. } if host == ws_proxy::server::PROXY_HOST => {}
            Denied::Fs { path, access, count } => {
                let denied = format!("{} {}", access.name(), path.display());
                out.push(match learn::entry_for(path, &vars) {
                    Entry::Path(v) => line(denied, *count, &format!("filesystem.{}", access.name()), v),
                    Entry::TooBroad(v) => {
                        none(denied, *count, format!("allowing it would take `{v}`, too broad for a profile line"))
                    }
                });
            }
            Denied::Host { host, count } => {
                out.push(line(format!("connect {host}"), *count, "network.hosts", host.clone()));
                // A private address named directly needs its range allowed too.
                let (name, _) = ws_proxy::rules::split_authority(host, 443).unwrap_or((host.clone(), 443));
                if let Ok(ip) = name.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>()
                    && let Some(class) = ws_proxy::rules::non_public(ip)
                {
                    out.push(line(
                        format!("connect {host} (a {class} address)"),
                        *count,
                        "network.addresses",
                        ip.to_string(),
                    ));
                }
            }
            Denied::Address { ip, host, count } => out.push(line(
                format!("connect {host} (resolves to {ip})"),
                *count,
                "network.addresses",
                ip.to_string(),
            )),
            Denied::Other { what, count } => out.push(none(what.clone(), *count, "no profile line allows this".into())),
        }
    }
    out
}

/// `KEY += "VALUE"`, as `ws session show` prints a suggestion.
pub fn line(s: &Suggestion) -> String {
    match (&s.key, &s.value, &s.note) {
        (Some(k), Some(v), _) => format!("{k} += {}", learn::quote(v)),
        (_, _, Some(n)) => format!("({n})"),
        _ => String::new(),
    }
}

/// The profile a session ran with, from its audit log (for `ws learn`, the base).
pub fn profile_of(store: &Store, session: &Session) -> Option<String> {
    let records = ws_snapshot::audit::read(&store.audit_log_path(&session.id)).ok()?;
    records.into_iter().find_map(|r| match r.event {
        Event::SessionStart { profile, .. } => Some(profile.trim_end_matches(" (ws learn)").to_owned()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sessions_own_proxy_is_no_host_to_allow() {
        let denied = [
            Denied::Host { host: ws_proxy::server::PROXY_HOST.into(), count: 3 },
            Denied::Host { host: "example.com".into(), count: 1 },
        ];
        let s = suggestions(&denied, Path::new("/w"), &crate::Options::from_home("/h".into()));
        assert_eq!(s.len(), 1, "{s:?}");
        assert_eq!(s[0].value.as_deref(), Some("example.com"));
    }
}
