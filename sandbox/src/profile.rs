//! Profiles: TOML files naming what a session may read, write and execute,
//! which environment variables pass, and which layers must be enforced.
//!
//! ```toml
//! extends = "default"            # optional: start from another profile
//! description = "…"
//! [filesystem]
//! read  = ["$HOME/.rustup"]      # $WORKSPACE, $HOME and $TMPDIR are expanded
//! write = ["$HOME/.cargo/registry"]
//! exec  = ["$HOME/.cargo/bin"]
//! create = ["$HOME/.claude/", "$HOME/.claude.json"]  # made when missing (below $HOME), then writable
//! [environment]
//! allow = ["CARGO_HOME", "RUST_*"]
//! set = { IS_SANDBOX = "1" }      # given to the session as is
//! [enforce]
//! require = ["landlock", "seccomp"]
//! [resources]                     # optional cgroup limits
//! memory_max = "4G"
//! pids_max = 1024
//! [network]                       # deny by default; everything goes through the session's proxy
//! hosts = ["github.com", "*.githubusercontent.com"]
//! addresses = ["10.20.0.0/16"]    # non-public ranges the hosts may resolve to
//! ca_files = ["$HOME/corp-ca.pem"] # trusted for credential upstreams, besides the system's roots
//! [[network.http]]                # plain-HTTP method/path limits per host glob
//! host = "registry.example"
//! methods = ["GET"]
//! paths = ["/v2/**"]
//! [credentials.anthropic]         # the sandbox gets a phantom; the proxy injects the real key
//! secret = "anthropic"            # a stored secret (`ws secret set`), or env:VAR, file:PATH, cmd:COMMAND
//! upstream = "https://api.anthropic.com"
//! header = "x-api-key"            # scheme = "Bearer" for `Authorization: Bearer …`
//! env = "ANTHROPIC_API_KEY"       # gets the phantom token
//! base_url_env = "ANTHROPIC_BASE_URL"  # gets http://127.0.0.1:PORT/anthropic
//! intercept = ["api.anthropic.com"] # HTTPS to these hosts is answered by the proxy (session CA), phantom swapped there
//! prefix = "sk-ant-"              # optional: phantom starts with it, for clients that check formats
//! methods = ["POST"]              # optional limits, paths relative to the upstream URL
//! paths = ["/v1/**"]
//! optional = true                 # a stored secret that is missing skips the route (default: refuse)
//! ```
//! A profile that extends another adds to its lists; a key it gives in a
//! table (`description`, `[resources]`, `[environment] set`, a credential
//! route's `upstream`) replaces the parent's value of that key and keeps the
//! rest; `enforce.require`, when given, replaces the parent's. Checking
//! reports every problem, each with its line and key, not just the first.
//!
//! `filesystem.create`: Landlock can grant only what exists, and cannot
//! grant "create exactly this name" in a directory; granting the parent
//! (`$HOME`) would let the session create any name there (`~/.bashrc`). So
//! each path listed is made before the session when missing — a directory
//! when it ends in `/`, else a file (`{}` for `.json`, else empty) — as the
//! user, private, below `$HOME` only, never through a symbolic link
//! ([`crate::precreate`]); it is then writable like a `write` path.

mod render;
pub use render::to_toml;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

use crate::policy::FsPolicy;

/// The profiles that ship with `ws`.
pub const BUILTIN: &[(&str, &str)] = &[
    ("default", include_str!("../profiles/default.toml")),
    ("claude-code", include_str!("../profiles/claude-code.toml")),
    ("codex", include_str!("../profiles/codex.toml")),
    ("rust", include_str!("../profiles/rust.toml")),
    ("node", include_str!("../profiles/node.toml")),
    ("python", include_str!("../profiles/python.toml")),
];

/// An enforcement layer a profile can require.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Layer {
    Landlock,
    Seccomp,
    /// Mount and PID namespaces (root, or unprivileged user namespaces).
    Namespaces,
}

impl Layer {
    pub fn name(self) -> &'static str {
        match self {
            Layer::Landlock => "landlock",
            Layer::Seccomp => "seccomp",
            Layer::Namespaces => "namespaces",
        }
    }

    fn parse(s: &str) -> Option<Layer> {
        match s {
            "landlock" => Some(Layer::Landlock),
            "seccomp" => Some(Layer::Seccomp),
            "namespaces" => Some(Layer::Namespaces),
            _ => None,
        }
    }
}

/// A resolved profile: `extends` applied, paths still with their variables.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Profile {
    pub name: String,
    pub description: Option<String>,
    /// The chain of profiles this one was built from, base first.
    pub chain: Vec<String>,
    pub read: Vec<String>,
    pub write: Vec<String>,
    pub exec: Vec<String>,
    /// Made when missing (directories end in `/`), then writable.
    pub create: Vec<String>,
    pub env_allow: Vec<String>,
    /// Variables given to the session with these values.
    pub env_set: BTreeMap<String, String>,
    pub require: BTreeSet<Layer>,
    pub limits: crate::cgroups::Limits,
    pub network: Network,
    /// Credential routes, by name.
    pub credentials: Vec<CredentialSpec>,
}

/// The `[network]` table: what the session's proxy lets through.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Network {
    /// Host globs.
    pub hosts: Vec<String>,
    /// Non-public address ranges allowed anyway (`127.0.0.1`, `10.0.0.0/8`).
    pub addresses: Vec<String>,
    /// CA certificate files (PEM), with variables, for credential upstreams.
    pub ca_files: Vec<String>,
    pub http: Vec<HttpSpec>,
}

/// Plain-HTTP limits for one host glob.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpSpec {
    pub host: String,
    pub methods: Vec<String>,
    pub paths: Vec<String>,
}

/// One `[credentials.NAME]` route.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CredentialSpec {
    pub name: String,
    /// Where the real secret comes from: a stored secret's name, or
    /// `env:VAR`, `file:PATH`, `cmd:COMMAND`.
    pub secret: String,
    pub upstream: String,
    /// Lower-case header name.
    pub header: String,
    pub scheme: Option<String>,
    /// Variables that get the phantom (Codex reads `CODEX_API_KEY` where
    /// other OpenAI clients read `OPENAI_API_KEY`).
    pub env: Vec<String>,
    pub base_url_env: Option<String>,
    /// Hosts whose HTTPS connections the proxy answers itself, with a CA
    /// only this session trusts, swapping the phantom there: for clients
    /// that ignore base-URL variables or speak WebSocket.
    pub intercept: Vec<String>,
    pub prefix: String,
    pub methods: Vec<String>,
    pub paths: Vec<String>,
    /// A stored secret that does not exist skips the route (with a note)
    /// instead of refusing the session.
    pub optional: bool,
}

/// One problem in a profile file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileProblem {
    pub line: usize,
    pub key: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("profile `{name}` not found")]
    NotFound { name: String },
    #[error("profile `{name}` extends itself (through {chain})")]
    Cycle { name: String, chain: String },
    #[error("profile {origin} has {} problem(s):\n{}", problems.len(), render(origin, problems))]
    Invalid { origin: String, problems: Vec<ProfileProblem> },
}

fn render(origin: &str, problems: &[ProfileProblem]) -> String {
    problems.iter().map(|p| format!("  {origin}:{}: {}: {}", p.line, p.key, p.message)).collect::<Vec<_>>().join("\n")
}

/// One profile file, parsed but not resolved.
#[derive(Clone, Debug, Default)]
struct Layered {
    extends: Option<String>,
    description: Option<String>,
    read: Vec<String>,
    write: Vec<String>,
    exec: Vec<String>,
    create: Vec<String>,
    env_allow: Vec<String>,
    env_set: BTreeMap<String, String>,
    require: Option<BTreeSet<Layer>>,
    memory_max: Option<u64>,
    pids_max: Option<u64>,
    network: Network,
    credentials: Vec<RouteLayer>,
}

/// A credential route as one file gives it: the keys it sets, over what the
/// profiles it extends set.
#[derive(Clone, Debug, Default)]
struct RouteLayer {
    spec: CredentialSpec,
    keys: BTreeSet<&'static str>,
    line: usize,
}

/// The keys of a credential route, and those it cannot do without.
const ROUTE_KEYS: &[&str] = &[
    "secret",
    "upstream",
    "header",
    "scheme",
    "env",
    "base_url_env",
    "intercept",
    "prefix",
    "methods",
    "paths",
    "optional",
];
const ROUTE_REQUIRED: &[&str] = &["secret", "upstream", "header"];

/// The 1-based line of byte `offset`. Counted on bytes: a parser's span may
/// end inside a multi-byte character, where slicing the `str` would panic.
fn line_of(src: &str, offset: usize) -> usize {
    let bytes = src.as_bytes();
    bytes[..offset.min(bytes.len())].iter().filter(|b| **b == b'\n').count() + 1
}

/// A file that is not UTF-8 cannot be TOML: one problem, at the first bad byte.
fn utf8(src: &[u8]) -> Result<&str, ProfileProblem> {
    std::str::from_utf8(src).map_err(|e| {
        let at = e.valid_up_to();
        ProfileProblem {
            line: src[..at].iter().filter(|b| **b == b'\n').count() + 1,
            key: "(encoding)".into(),
            message: format!("byte {at} is not UTF-8 (profiles are UTF-8 text)"),
        }
    })
}

/// Parses and checks one profile file's text. Every problem is collected.
fn parse(src: &str) -> Result<Layered, Vec<ProfileProblem>> {
    let (table, errors) = DeTable::parse_recoverable(src);
    let mut problems: Vec<ProfileProblem> = errors
        .iter()
        .map(|e| ProfileProblem {
            line: e.span().map_or(1, |s| line_of(src, s.start)),
            key: "(syntax)".into(),
            message: e.message().to_owned(),
        })
        .collect();
    let mut out = Layered::default();
    let problem =
        |problems: &mut Vec<ProfileProblem>, at: usize, key: &str, msg: String| push(problems, src, at, key, msg);
    for (k, v) in table.get_ref().iter() {
        let key = k.get_ref().as_ref();
        let at = k.span().start;
        match (key, v.get_ref()) {
            ("extends", DeValue::String(s)) => out.extends = Some(s.to_string()),
            ("description", DeValue::String(s)) => out.description = Some(s.to_string()),
            ("extends" | "description", _) => problem(&mut problems, at, key, "must be a string".into()),
            ("resources", DeValue::Table(t)) => {
                for (k2, v2) in t.iter() {
                    let sub = format!("resources.{}", shown(k2.get_ref()));
                    let at2 = k2.span().start;
                    match (sub.as_str(), v2.get_ref()) {
                        ("resources.memory_max", DeValue::String(v)) => match crate::cgroups::parse_size(v) {
                            Some(n) => out.memory_max = Some(n),
                            None => problem(
                                &mut problems,
                                at2,
                                &sub,
                                format!("`{v}` is not a size (like \"512M\" or \"2G\")"),
                            ),
                        },
                        ("resources.pids_max", DeValue::Integer(i)) => match i.as_str().parse::<u64>() {
                            Ok(n) if n > 0 => out.pids_max = Some(n),
                            _ => problem(&mut problems, at2, &sub, "must be a positive whole number".into()),
                        },
                        ("resources.memory_max", _) => {
                            problem(&mut problems, at2, &sub, "must be a size string like \"512M\"".into())
                        }
                        ("resources.pids_max", _) => {
                            problem(&mut problems, at2, &sub, "must be a positive whole number".into())
                        }
                        _ => problem(
                            &mut problems,
                            at2,
                            &sub,
                            "unknown key (known: resources.memory_max, resources.pids_max)".into(),
                        ),
                    }
                }
            }
            ("filesystem" | "environment" | "enforce", DeValue::Table(t)) => {
                for (k2, v2) in t.iter() {
                    let sub = format!("{key}.{}", shown(k2.get_ref()));
                    let at2 = k2.span().start;
                    if sub == "environment.set" {
                        parse_env_set(src, v2.get_ref(), at2, &mut out.env_set, &mut problems);
                        continue;
                    }
                    const KNOWN: &[&str] = &[
                        "filesystem.read",
                        "filesystem.write",
                        "filesystem.exec",
                        "filesystem.create",
                        "environment.allow",
                        "environment.set",
                        "enforce.require",
                    ];
                    if !KNOWN.contains(&sub.as_str()) {
                        problem(&mut problems, at2, &sub, format!("unknown key (known: {})", KNOWN.join(", ")));
                        continue;
                    }
                    let Some(items) = strings(v2.get_ref()) else {
                        problem(&mut problems, at2, &sub, "must be an array of strings".into());
                        continue;
                    };
                    match sub.as_str() {
                        "filesystem.read" | "filesystem.write" | "filesystem.exec" | "filesystem.create" => {
                            for (item, at3) in &items {
                                let bad = match sub.as_str() {
                                    "filesystem.create" => check_create(item),
                                    _ => check_path(item, &sub),
                                };
                                if let Err(msg) = bad {
                                    problem(&mut problems, *at3, &sub, msg);
                                }
                            }
                            let list = items.into_iter().map(|(s, _)| s);
                            match sub.as_str() {
                                "filesystem.read" => out.read.extend(list),
                                "filesystem.write" => out.write.extend(list),
                                "filesystem.create" => out.create.extend(list),
                                _ => out.exec.extend(list),
                            }
                        }
                        "environment.allow" => {
                            for (item, at3) in &items {
                                let name = item.trim_end_matches('*');
                                if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                                    problem(
                                        &mut problems,
                                        *at3,
                                        &sub,
                                        format!(
                                            "`{item}` is not a variable name (letters, digits, `_`, optional trailing `*`)"
                                        ),
                                    );
                                } else if !item.ends_with('*') && crate::env::is_secret_name(item) {
                                    problem(
                                        &mut problems,
                                        *at3,
                                        &sub,
                                        format!(
                                            "`{item}` looks like a secret and never passes into the sandbox; give it to the session as a credential route instead"
                                        ),
                                    );
                                }
                            }
                            out.env_allow.extend(items.into_iter().map(|(s, _)| s));
                        }
                        "enforce.require" => {
                            let mut set = BTreeSet::new();
                            for (item, at3) in &items {
                                match Layer::parse(item) {
                                    Some(l) => {
                                        set.insert(l);
                                    }
                                    None => problem(
                                        &mut problems,
                                        *at3,
                                        &sub,
                                        format!("unknown layer `{item}` (known: landlock, seccomp, namespaces)"),
                                    ),
                                }
                            }
                            out.require = Some(set);
                        }
                        _ => unreachable!("checked against KNOWN"),
                    }
                }
            }
            ("network", DeValue::Table(t)) => parse_network(src, t, &mut out.network, &mut problems),
            ("credentials", DeValue::Table(t)) => {
                for (k2, v2) in t.iter() {
                    let name = k2.get_ref().to_string();
                    let at2 = k2.span().start;
                    let DeValue::Table(route) = v2.get_ref() else {
                        problem(&mut problems, at2, &format!("credentials.{name}"), "must be a table".into());
                        continue;
                    };
                    if let Some(c) = parse_credential(src, &name, at2, route, &mut problems) {
                        out.credentials.push(c);
                    }
                }
            }
            ("filesystem" | "environment" | "enforce" | "network" | "credentials", _) => {
                problem(&mut problems, at, key, "must be a table".into())
            }
            _ => problem(
                &mut problems,
                at,
                key,
                "unknown key (known: extends, description, filesystem, environment, enforce, resources, network, credentials)"
                    .into(),
            ),
        }
    }
    // A profile that extends another may give only some keys of a route;
    // what the whole chain still lacks is reported when it is resolved.
    if out.extends.is_none() {
        for r in &out.credentials {
            for missing in missing_route_keys(r) {
                problems.push(ProfileProblem {
                    line: r.line,
                    key: format!("credentials.{}", shown(&r.spec.name)),
                    message: format!("needs {missing} = \"…\""),
                });
            }
        }
    }
    problems.sort_by_key(|p| p.line);
    if problems.is_empty() { Ok(out) } else { Err(problems) }
}

fn missing_route_keys(r: &RouteLayer) -> impl Iterator<Item = &'static str> + '_ {
    ROUTE_REQUIRED.iter().copied().filter(|k| !r.keys.contains(k))
}

/// `[environment] set = { NAME = "value" }`.
fn parse_env_set(
    src: &str,
    v: &DeValue,
    at: usize,
    out: &mut BTreeMap<String, String>,
    problems: &mut Vec<ProfileProblem>,
) {
    let key = "environment.set";
    let DeValue::Table(t) = v else {
        push(problems, src, at, key, "must be a table of strings (`set = { NAME = \"value\" }`)".into());
        return;
    };
    for (k, v) in t.iter() {
        let name = k.get_ref().to_string();
        let at2 = k.span().start;
        let DeValue::String(value) = v.get_ref() else {
            push(problems, src, at2, key, format!("`{name}` must be a string"));
            continue;
        };
        let upper = name.to_ascii_uppercase();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            push(problems, src, at2, key, format!("`{name}` is not a variable name (letters, digits, `_`)"));
        } else if crate::env::is_secret_name(&name) {
            push(
                problems,
                src,
                at2,
                key,
                format!("`{name}` looks like a secret; a profile does not hold secrets: use a credential route"),
            );
        } else if upper.ends_with("_PROXY") || upper == "NO_PROXY" {
            push(problems, src, at2, key, format!("`{name}` is set by ws: the session's proxy is its only way out"));
        } else {
            out.insert(name, value.to_string());
        }
    }
}

/// A `filesystem.create` path: below `$HOME` (the workspace and the
/// temporary directories are writable already), `/` at the end for a
/// directory.
fn check_create(p: &str) -> Result<(), String> {
    check_path(p.trim_end_matches('/'), "filesystem.write")?;
    let rest = p.strip_prefix("$HOME/").map(|r| r.trim_end_matches('/')).unwrap_or_default();
    if rest.is_empty() || rest.split('/').any(|c| c.is_empty() || c == ".") {
        return Err(format!(
            "`{p}` must name a path below $HOME (like \"$HOME/.tool/\" for a directory, \"$HOME/.tool.json\" for a file)"
        ));
    }
    Ok(())
}

type Table<'a> = toml::de::DeTable<'a>;

/// A key as a message shows it: an empty one (`"" = 1`, or `= 1` after a
/// syntax error) as `""`, so that `network.""` does not read as `network.`.
fn shown(key: &str) -> std::borrow::Cow<'_, str> {
    if key.is_empty() { "\"\"".into() } else { key.into() }
}

fn push(problems: &mut Vec<ProfileProblem>, src: &str, at: usize, key: &str, message: String) {
    problems.push(ProfileProblem { line: line_of(src, at), key: shown(key).into_owned(), message });
}

fn parse_network(src: &str, t: &Table, out: &mut Network, problems: &mut Vec<ProfileProblem>) {
    for (k, v) in t.iter() {
        let key = format!("network.{}", shown(k.get_ref()));
        let at = k.span().start;
        match key.as_str() {
            "network.hosts" | "network.addresses" | "network.ca_files" => {
                let Some(items) = strings(v.get_ref()) else {
                    push(problems, src, at, &key, "must be an array of strings".into());
                    continue;
                };
                for (item, at2) in &items {
                    let bad = match key.as_str() {
                        "network.hosts" => check_host_glob(item),
                        "network.addresses" => check_cidr(item),
                        _ => check_path(item, "filesystem.read").err(),
                    };
                    if let Some(msg) = bad {
                        push(problems, src, *at2, &key, msg);
                    }
                }
                let list = items.into_iter().map(|(s, _)| s);
                match key.as_str() {
                    "network.hosts" => out.hosts.extend(list),
                    "network.addresses" => out.addresses.extend(list),
                    _ => out.ca_files.extend(list),
                }
            }
            "network.http" => {
                let DeValue::Array(a) = v.get_ref() else {
                    push(problems, src, at, &key, "must be an array of tables ([[network.http]])".into());
                    continue;
                };
                for item in a.iter() {
                    let DeValue::Table(rule) = item.get_ref() else {
                        push(problems, src, item.span().start, &key, "must be a table".into());
                        continue;
                    };
                    let mut spec = HttpSpec::default();
                    for (k2, v2) in rule.iter() {
                        let sub = format!("network.http.{}", shown(k2.get_ref()));
                        let at2 = k2.span().start;
                        match (sub.as_str(), v2.get_ref()) {
                            ("network.http.host", DeValue::String(h)) => match check_host_glob(h) {
                                Some(msg) => push(problems, src, at2, &sub, msg),
                                None => spec.host = h.to_string(),
                            },
                            ("network.http.methods" | "network.http.paths", v) => match strings(v) {
                                Some(items) if sub.ends_with("methods") => {
                                    spec.methods = items.into_iter().map(|(s, _)| s.to_ascii_uppercase()).collect()
                                }
                                Some(items) => spec.paths = items.into_iter().map(|(s, _)| s).collect(),
                                None => push(problems, src, at2, &sub, "must be an array of strings".into()),
                            },
                            _ => push(
                                problems,
                                src,
                                at2,
                                &sub,
                                "unknown key or wrong type (known: host = \"…\", methods = […], paths = […])".into(),
                            ),
                        }
                    }
                    if spec.host.is_empty() {
                        push(problems, src, item.span().start, &key, "needs host = \"…\"".into());
                    } else {
                        out.http.push(spec);
                    }
                }
            }
            _ => push(problems, src, at, &key, "unknown key (known: hosts, addresses, ca_files, http)".into()),
        }
    }
}

fn parse_credential(
    src: &str,
    name: &str,
    at: usize,
    t: &Table,
    problems: &mut Vec<ProfileProblem>,
) -> Option<RouteLayer> {
    let base = format!("credentials.{}", shown(name));
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        push(problems, src, at, &base, "route names are letters, digits, `-` and `_` (they become a URL path)".into());
    }
    let mut c = CredentialSpec { name: name.to_owned(), ..CredentialSpec::default() };
    let mut keys = BTreeSet::new();
    for (k, v) in t.iter() {
        let key = format!("{base}.{}", shown(k.get_ref()));
        let field = k.get_ref().to_string();
        let at2 = k.span().start;
        if let Some(known) = ROUTE_KEYS.iter().find(|r| **r == field) {
            keys.insert(*known);
        }
        match (field.as_str(), v.get_ref()) {
            ("optional", DeValue::Boolean(b)) => c.optional = *b,
            ("env", DeValue::Array(_)) => match strings(v.get_ref()) {
                Some(items) => {
                    for (s, _) in items {
                        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                            push(problems, src, at2, &key, format!("`{s}` is not a variable name"));
                        }
                        c.env.push(s);
                    }
                }
                None => push(problems, src, at2, &key, "must be a variable name or an array of them".into()),
            },
            ("intercept", v) => match strings(v) {
                Some(items) => {
                    for (h, _) in items {
                        let name = h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
                        if h.is_empty() || !name || h.contains('*') || h.parse::<std::net::IpAddr>().is_ok() {
                            push(problems, src, at2, &key, format!("`{h}` is not a host name (no globs, no addresses)"));
                        }
                        c.intercept.push(h.to_ascii_lowercase());
                    }
                }
                None => push(problems, src, at2, &key, "must be an array of host names".into()),
            },
            ("methods" | "paths", v) => match strings(v) {
                Some(items) if field == "methods" => {
                    c.methods = items.into_iter().map(|(s, _)| s.to_ascii_uppercase()).collect()
                }
                Some(items) => c.paths = items.into_iter().map(|(s, _)| s).collect(),
                None => push(problems, src, at2, &key, "must be an array of strings".into()),
            },
            (
                "secret" | "upstream" | "header" | "scheme" | "env" | "base_url_env" | "prefix",
                DeValue::String(s),
            ) => {
                let s = s.to_string();
                match field.as_str() {
                    "secret" => c.secret = s,
                    "upstream" => {
                        if !(s.starts_with("https://") || s.starts_with("http://")) {
                            push(problems, src, at2, &key, format!("`{s}` must be an https:// URL"));
                        }
                        c.upstream = s;
                    }
                    "header" => {
                        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                            push(problems, src, at2, &key, format!("`{s}` is not a header name"));
                        }
                        c.header = s.to_ascii_lowercase();
                    }
                    "scheme" => c.scheme = Some(s),
                    "env" | "base_url_env" => {
                        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                            push(problems, src, at2, &key, format!("`{s}` is not a variable name"));
                        }
                        if field == "env" { c.env = vec![s] } else { c.base_url_env = Some(s) }
                    }
                    _ => {
                        if !s.bytes().all(|b| b.is_ascii_graphic()) {
                            push(problems, src, at2, &key, "must be printable ASCII".into());
                        }
                        c.prefix = s
                    }
                }
            }
            _ => push(
                problems,
                src,
                at2,
                &key,
                "unknown key or wrong type (known: secret, upstream, header, scheme, env, base_url_env, intercept, prefix, methods, paths, optional)"
                    .into(),
            ),
        }
    }
    // Kept with its problems, so that a missing key is reported too.
    Some(RouteLayer { spec: c, keys, line: line_of(src, at) })
}

/// `None` if `h` is a usable host glob, else why not.
fn check_host_glob(h: &str) -> Option<String> {
    let ok = !h.is_empty()
        && h.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.*:[]".contains(&b))
        && !h.contains("://")
        && !h.contains('/');
    (!ok).then(|| {
        format!("`{h}` is not a host name or glob (like \"github.com\" or \"*.example.com\"; no scheme, no path)")
    })
}

/// `None` if `c` is an address or a CIDR range, else why not.
fn check_cidr(c: &str) -> Option<String> {
    let (addr, prefix) = c.split_once('/').map_or((c, None), |(a, p)| (a, Some(p)));
    let Ok(ip) = addr.parse::<std::net::IpAddr>() else {
        return Some(format!("`{c}` is not an address or range (like \"127.0.0.1\" or \"10.0.0.0/8\")"));
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    match prefix.map(|p| p.parse::<u8>()) {
        None => None,
        Some(Ok(p)) if p <= max => None,
        _ => Some(format!("`{c}` has a bad prefix length (0 to {max})")),
    }
}

fn strings(v: &DeValue) -> Option<Vec<(String, usize)>> {
    let DeValue::Array(a) = v else { return None };
    a.iter()
        .map(|item| match item.get_ref() {
            DeValue::String(s) => Some((s.to_string(), item.span().start)),
            _ => None,
        })
        .collect()
}

/// A path rule must be absolute or start with a known variable, and must not
/// open the whole filesystem or the whole home directory for writing.
fn check_path(p: &str, key: &str) -> Result<(), String> {
    let known = ["$WORKSPACE", "$HOME", "$TMPDIR"];
    let var_ok = match p.strip_prefix('$') {
        Some(_) => known.iter().any(|k| p == *k || p.starts_with(&format!("{k}/"))),
        None => p.starts_with('/'),
    };
    if !var_ok {
        return Err(format!("`{p}` must be absolute or start with $WORKSPACE, $HOME or $TMPDIR"));
    }
    if p.split('/').any(|c| c == "..") {
        return Err(format!("`{p}` contains `..`"));
    }
    if p == "/" || (key != "filesystem.read" && (p == "$HOME" || p == "$HOME/")) {
        return Err(format!("`{p}` would open everything; name the directories the agent needs"));
    }
    if p == "$HOME" {
        return Err(
            "`$HOME` would expose every secret in your home directory; name the directories the agent needs".into()
        );
    }
    Ok(())
}

/// Checks a profile file's text and reports every problem.
pub fn check(src: &str) -> Vec<ProfileProblem> {
    parse(src).err().unwrap_or_default()
}

/// Checks a profile file's bytes: [`check`], after making sure they are UTF-8.
pub fn check_bytes(src: &[u8]) -> Vec<ProfileProblem> {
    match utf8(src) {
        Ok(text) => check(text),
        Err(p) => vec![p],
    }
}

/// Finds a profile's bytes by name, with where they came from (a path, or
/// `(built-in NAME)`) for messages.
pub type Loader<'a> = dyn Fn(&str) -> Option<(String, Vec<u8>)> + 'a;

/// Resolves profile `name`, following `extends`. `load` finds a profile's
/// bytes by name (user profiles first, then [`BUILTIN`]) and says where it
/// came from, for messages.
pub fn resolve(name: &str, load: &Loader<'_>) -> Result<Profile, ProfileError> {
    let mut chain: Vec<(String, String, Layered)> = Vec::new();
    let mut next = Some(name.to_owned());
    while let Some(n) = next {
        if chain.iter().any(|(c, _, _)| *c == n) {
            let names: Vec<&str> = chain.iter().map(|(c, _, _)| c.as_str()).collect();
            return Err(ProfileError::Cycle { name: n, chain: names.join(" → ") });
        }
        let (origin, src) = load(&n).ok_or_else(|| ProfileError::NotFound { name: n.clone() })?;
        let layered = utf8(&src)
            .map_err(|p| vec![p])
            .and_then(parse)
            .map_err(|problems| ProfileError::Invalid { origin: origin.clone(), problems })?;
        next = layered.extends.clone();
        chain.push((n, origin, layered));
    }
    let mut p = Profile { name: name.to_owned(), ..Profile::default() };
    // Each route as the chain so far gives it, with the file and line that
    // last touched it (for a key still missing at the end).
    let mut routes: Vec<(RouteLayer, String)> = Vec::new();
    for (n, origin, l) in chain.into_iter().rev() {
        p.chain.push(n);
        p.description = l.description.or(p.description);
        p.read.extend(l.read);
        p.write.extend(l.write);
        p.exec.extend(l.exec);
        p.create.extend(l.create);
        p.env_allow.extend(l.env_allow);
        p.env_set.extend(l.env_set);
        if let Some(r) = l.require {
            p.require = r;
        }
        p.limits.memory_max = l.memory_max.or(p.limits.memory_max);
        p.limits.pids_max = l.pids_max.or(p.limits.pids_max);
        p.network.hosts.extend(l.network.hosts);
        p.network.addresses.extend(l.network.addresses);
        p.network.ca_files.extend(l.network.ca_files);
        p.network.http.extend(l.network.http);
        for c in l.credentials {
            match routes.iter_mut().find(|(r, _)| r.spec.name == c.spec.name) {
                Some((base, at)) => {
                    override_keys(&mut base.spec, &c.spec, &c.keys);
                    base.keys.extend(c.keys.iter().copied());
                    base.line = c.line;
                    *at = origin.clone();
                }
                None => routes.push((c, origin.clone())),
            }
        }
    }
    for (r, origin) in routes {
        let problems: Vec<ProfileProblem> = missing_route_keys(&r)
            .map(|k| ProfileProblem {
                line: r.line,
                key: format!("credentials.{}", r.spec.name),
                message: format!("needs {k} = \"…\" (neither this profile nor those it extends give it)"),
            })
            .collect();
        if !problems.is_empty() {
            return Err(ProfileError::Invalid { origin, problems });
        }
        p.credentials.push(r.spec);
    }
    Ok(p)
}

/// Sets the `keys` of `base` to their values in `over`.
fn override_keys(base: &mut CredentialSpec, over: &CredentialSpec, keys: &BTreeSet<&'static str>) {
    for k in keys {
        match *k {
            "secret" => base.secret = over.secret.clone(),
            "upstream" => base.upstream = over.upstream.clone(),
            "header" => base.header = over.header.clone(),
            "scheme" => base.scheme = over.scheme.clone(),
            "env" => base.env = over.env.clone(),
            "base_url_env" => base.base_url_env = over.base_url_env.clone(),
            "intercept" => base.intercept = over.intercept.clone(),
            "prefix" => base.prefix = over.prefix.clone(),
            "methods" => base.methods = over.methods.clone(),
            "paths" => base.paths = over.paths.clone(),
            "optional" => base.optional = over.optional,
            _ => {}
        }
    }
}

/// Loads a built-in profile by name.
pub fn builtin(name: &str) -> Option<(String, Vec<u8>)> {
    BUILTIN.iter().find(|(n, _)| *n == name).map(|(n, src)| (format!("(built-in {n})"), src.as_bytes().to_vec()))
}

/// Where `$WORKSPACE`, `$HOME` and `$TMPDIR` point for one session.
#[derive(Clone, Debug)]
pub struct Vars<'a> {
    pub workspace: &'a Path,
    pub home: Option<&'a Path>,
    pub tmpdir: Option<&'a Path>,
}

fn expand(p: &str, v: &Vars) -> Option<PathBuf> {
    let sub = |var: &str, val: Option<&Path>| -> Option<Option<PathBuf>> {
        let rest = p.strip_prefix(var)?;
        let base = val?;
        Some(Some(if rest.is_empty() { base.to_path_buf() } else { base.join(rest.trim_start_matches('/')) }))
    };
    if let Some(r) = sub("$WORKSPACE", Some(v.workspace)) {
        return r;
    }
    if let Some(r) = sub("$HOME", v.home) {
        return r;
    }
    if let Some(r) = sub("$TMPDIR", v.tmpdir) {
        return r;
    }
    (!p.starts_with('$')).then(|| PathBuf::from(p))
}

impl Profile {
    /// The filesystem policy for a session: variables expanded; rules whose
    /// variable is unset are dropped (a rule can only ever allow).
    pub fn fs_policy(&self, vars: &Vars) -> FsPolicy {
        let list = |l: &[String]| -> Vec<PathBuf> {
            let mut v: Vec<PathBuf> = l.iter().filter_map(|p| expand(p, vars)).collect();
            v.sort();
            v.dedup();
            v
        };
        let create: Vec<crate::policy::Creation> = match vars.home {
            Some(home) => self
                .create
                .iter()
                .filter_map(|c| {
                    Some(crate::policy::Creation {
                        path: expand(c.trim_end_matches('/'), vars)?,
                        dir: c.ends_with('/'),
                        within: home.to_path_buf(),
                    })
                })
                .collect(),
            None => vec![],
        };
        let mut write = self.write.clone();
        write.extend(self.create.iter().map(|c| c.trim_end_matches('/').to_owned()));
        FsPolicy { read: list(&self.read), write: list(&write), exec: list(&self.exec), create }
    }

    /// The CA files of `[network] ca_files`, variables expanded.
    pub fn ca_files(&self, vars: &Vars) -> Vec<PathBuf> {
        self.network.ca_files.iter().filter_map(|p| expand(p, vars)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_parse_and_resolve() {
        for (name, _) in BUILTIN {
            let p = resolve(name, &builtin).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(p.require.contains(&Layer::Landlock), "{name}");
            assert_eq!(p.chain[0], "default");
        }
        let rust = resolve("rust", &builtin).unwrap();
        assert!(rust.read.contains(&"$HOME/.rustup".to_owned()) && rust.read.contains(&"/usr".to_owned()));
    }

    #[test]
    fn check_reports_every_problem_with_line_and_key() {
        let src = "extends = 3\n[filesystem]\nread = [\"relative/path\", \"/ok\"]\nwrite = [\"$HOME\"]\nexec = \"/usr\"\n[environment]\nallow = [\"GITHUB_TOKEN\", \"bad name\"]\n[enforce]\nrequire = [\"apparmor\"]\ncolour = true\n";
        let problems = check(src);
        let got: Vec<(usize, &str)> = problems.iter().map(|p| (p.line, p.key.as_str())).collect();
        assert_eq!(
            got,
            [
                (1, "extends"),
                (3, "filesystem.read"),
                (4, "filesystem.write"),
                (5, "filesystem.exec"),
                (7, "environment.allow"),
                (7, "environment.allow"),
                (9, "enforce.require"),
                (10, "enforce.colour"),
            ],
            "{problems:#?}"
        );
    }

    #[test]
    fn syntax_errors_name_their_line() {
        let problems = check("[filesystem]\nread = [\"/usr\"\n");
        assert!(!problems.is_empty());
        assert_eq!(problems[0].key, "(syntax)");
    }

    #[test]
    fn extends_adds_and_cycles_are_refused() {
        let load = |n: &str| -> Option<(String, Vec<u8>)> {
            match n {
                "a" => Some(("a.toml".into(), "extends = \"b\"\n[filesystem]\nread = [\"/a\"]\n".into())),
                "b" => Some(("b.toml".into(), "extends = \"a\"\n".into())),
                "c" => Some(("c.toml".into(), "extends = \"default\"\n[enforce]\nrequire = []\n".into())),
                other => builtin(other),
            }
        };
        assert!(matches!(resolve("a", &load), Err(ProfileError::Cycle { .. })));
        let c = resolve("c", &load).unwrap();
        assert!(c.require.is_empty(), "a child's require replaces the parent's");
        assert!(c.write.contains(&"$WORKSPACE".to_owned()));
        assert!(matches!(resolve("nope", &load), Err(ProfileError::NotFound { .. })));
    }

    #[test]
    fn network_and_credentials_parse_and_extend() {
        let load = |n: &str| -> Option<(String, Vec<u8>)> {
            match n {
                "net" => Some((
                    "net.toml".into(),
                    r#"extends = "default"
[network]
hosts = ["github.com", "*.githubusercontent.com"]
addresses = ["127.0.0.1", "10.0.0.0/8"]
[[network.http]]
host = "registry.example"
methods = ["get"]
paths = ["/v2/**"]
[credentials.gh]
secret = "env:GH_REAL"
upstream = "https://api.github.com"
header = "Authorization"
scheme = "Bearer"
env = "GITHUB_TOKEN"
prefix = "ghp_"
"#
                    .into(),
                )),
                "child" => Some((
                    "child.toml".into(),
                    "extends = \"net\"\n[network]\nhosts = [\"example.org\"]\n[credentials.gh]\nsecret = \"gh\"\nupstream = \"https://ghe.example\"\nheader = \"authorization\"\n".into(),
                )),
                other => builtin(other),
            }
        };
        let p = resolve("net", &load).unwrap();
        assert_eq!(p.network.hosts, ["github.com", "*.githubusercontent.com"]);
        assert_eq!(p.network.http[0].methods, ["GET"]);
        let gh = &p.credentials[0];
        assert_eq!(
            (gh.header.as_str(), gh.scheme.as_deref(), gh.prefix.as_str()),
            ("authorization", Some("Bearer"), "ghp_")
        );
        let c = resolve("child", &load).unwrap();
        assert_eq!(c.network.hosts.len(), 3, "lists add up");
        assert_eq!(c.credentials.len(), 1, "a route of the same name is the parent's, with the child's keys");
        assert_eq!(c.credentials[0].upstream, "https://ghe.example");
        assert_eq!(c.credentials[0].secret, "gh");
        assert_eq!(c.credentials[0].scheme.as_deref(), Some("Bearer"), "keys the child does not give are kept");
    }

    #[test]
    fn an_extending_profile_overrides_one_key_of_an_inherited_route() {
        let load = |n: &str| -> Option<(String, Vec<u8>)> {
            match n {
                "gateway" => Some((
                    "gateway.toml".into(),
                    "extends = \"claude-code\"\n[credentials.anthropic]\nupstream = \"https://gateway.example\"\n[environment]\nset = { IS_SANDBOX = \"0\" }\n".into(),
                )),
                "half" => Some(("half.toml".into(), "extends = \"default\"\n[credentials.new]\nupstream = \"https://x.example\"\n".into())),
                other => builtin(other),
            }
        };
        let base = resolve("claude-code", &builtin).unwrap();
        let p = resolve("gateway", &load).unwrap();
        let (b, g) = (&base.credentials[0], &p.credentials[0]);
        assert_eq!(g.upstream, "https://gateway.example");
        assert_eq!(
            CredentialSpec { upstream: b.upstream.clone(), ..g.clone() },
            *b,
            "everything but the upstream is inherited"
        );
        assert_eq!(
            p.env_set.get("IS_SANDBOX").map(String::as_str),
            Some("0"),
            "a key of a table replaces the parent's"
        );
        // A route that the whole chain leaves without a secret or header is refused,
        // naming the file and line that gave it.
        let Err(ProfileError::Invalid { origin, problems }) = resolve("half", &load) else { panic!() };
        assert_eq!(origin, "half.toml");
        let got: Vec<(usize, &str)> = problems.iter().map(|p| (p.line, p.message.as_str())).collect();
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got.iter().all(|(line, _)| *line == 2), "{got:?}");
        assert!(
            check("extends = \"x\"\n[credentials.a]\nupstream = \"https://x\"\n").is_empty(),
            "checked when resolved"
        );
        assert_eq!(check("[credentials.a]\nupstream = \"https://x\"\n").len(), 2, "no parent: checked at once");
    }

    #[test]
    fn create_paths_are_below_home_and_become_writable() {
        let src = "[filesystem]\ncreate = [\"$HOME/.t/\", \"$HOME/.t.json\", \"$WORKSPACE/x\", \"/etc/x\", \"$HOME/\", \"$HOME/../x\"]\n";
        let bad: Vec<String> = check(src).into_iter().map(|p| p.message).collect();
        assert_eq!(bad.len(), 4, "{bad:#?}");
        let load = |n: &str| -> Option<(String, Vec<u8>)> {
            match n {
                "c" => Some(("c.toml".into(), "[filesystem]\ncreate = [\"$HOME/.t/\", \"$HOME/.t.json\"]\n".into())),
                other => builtin(other),
            }
        };
        let p = resolve("c", &load).unwrap();
        let vars = Vars { workspace: Path::new("/w"), home: Some(Path::new("/h")), tmpdir: None };
        let fs = p.fs_policy(&vars);
        assert_eq!(fs.write, [PathBuf::from("/h/.t"), PathBuf::from("/h/.t.json")]);
        let made: Vec<(PathBuf, bool)> = fs.create.iter().map(|c| (c.path.clone(), c.dir)).collect();
        assert_eq!(made, [(PathBuf::from("/h/.t"), true), (PathBuf::from("/h/.t.json"), false)]);
        assert!(fs.create.iter().all(|c| c.within == Path::new("/h")));
        let no_home = Vars { workspace: Path::new("/w"), home: None, tmpdir: None };
        assert!(p.fs_policy(&no_home).create.is_empty());
    }

    #[test]
    fn environment_set_refuses_secrets_and_proxies() {
        let src = "[environment]\nset = { IS_SANDBOX = \"1\", MY_TOKEN = \"x\", HTTPS_PROXY = \"y\", \"bad name\" = \"z\", N = 1 }\n";
        assert_eq!(check(src).len(), 4, "{:#?}", check(src));
    }

    #[test]
    fn bad_network_and_credentials_are_reported_with_lines() {
        let src = "[network]\nhosts = [\"https://x.com/\"]\naddresses = [\"10.0.0.0/40\", \"nope\"]\ncolour = 1\n[[network.http]]\nmethods = [\"GET\"]\n[credentials.a]\nupstream = \"ftp://x\"\nheader = \"x api\"\n";
        let got: Vec<(usize, String)> = check(src).into_iter().map(|p| (p.line, p.key)).collect();
        assert_eq!(
            got,
            [
                (2, "network.hosts".to_owned()),
                (3, "network.addresses".to_owned()),
                (3, "network.addresses".to_owned()),
                (4, "network.colour".to_owned()),
                (5, "network.http".to_owned()),
                (7, "credentials.a".to_owned()),
                (8, "credentials.a.upstream".to_owned()),
                (9, "credentials.a.header".to_owned()),
            ]
        );
    }

    #[test]
    fn expands_variables_and_drops_unset_ones() {
        let p = resolve("rust", &builtin).unwrap();
        let vars = Vars { workspace: Path::new("/w"), home: None, tmpdir: None };
        let fs = p.fs_policy(&vars);
        assert!(fs.write.contains(&PathBuf::from("/w")));
        assert!(!fs.read.iter().any(|r| r.to_string_lossy().contains('$')));
        let vars = Vars { workspace: Path::new("/w"), home: Some(Path::new("/h")), tmpdir: Some(Path::new("/t")) };
        let fs = p.fs_policy(&vars);
        assert!(fs.read.contains(&PathBuf::from("/h/.rustup")) && fs.write.contains(&PathBuf::from("/t")));
    }
}
