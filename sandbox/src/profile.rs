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
//! [environment]
//! allow = ["CARGO_HOME", "RUST_*"]
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
//! prefix = "sk-ant-"              # optional: phantom starts with it, for clients that check formats
//! methods = ["POST"]              # optional limits, paths relative to the upstream URL
//! paths = ["/v1/**"]
//! optional = true                 # a stored secret that is missing skips the route (default: refuse)
//! ```
//! A profile that extends another adds to its lists (a credential route of
//! the same name replaces the parent's); `enforce.require`, when given,
//! replaces the parent's. Checking reports every problem, each with its
//! line and key, not just the first.

use std::collections::BTreeSet;
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
    pub env_allow: Vec<String>,
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
    pub env: Option<String>,
    pub base_url_env: Option<String>,
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
    env_allow: Vec<String>,
    require: Option<BTreeSet<Layer>>,
    memory_max: Option<u64>,
    pids_max: Option<u64>,
    network: Network,
    credentials: Vec<CredentialSpec>,
}

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
                    const KNOWN: &[&str] = &[
                        "filesystem.read",
                        "filesystem.write",
                        "filesystem.exec",
                        "environment.allow",
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
                        "filesystem.read" | "filesystem.write" | "filesystem.exec" => {
                            for (item, at3) in &items {
                                if let Err(msg) = check_path(item, &sub) {
                                    problem(&mut problems, *at3, &sub, msg);
                                }
                            }
                            let list = items.into_iter().map(|(s, _)| s);
                            match sub.as_str() {
                                "filesystem.read" => out.read.extend(list),
                                "filesystem.write" => out.write.extend(list),
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
    problems.sort_by_key(|p| p.line);
    if problems.is_empty() { Ok(out) } else { Err(problems) }
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
) -> Option<CredentialSpec> {
    let base = format!("credentials.{}", shown(name));
    let before = problems.len();
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        push(problems, src, at, &base, "route names are letters, digits, `-` and `_` (they become a URL path)".into());
    }
    let mut c = CredentialSpec { name: name.to_owned(), ..CredentialSpec::default() };
    for (k, v) in t.iter() {
        let key = format!("{base}.{}", shown(k.get_ref()));
        let field = k.get_ref().to_string();
        let at2 = k.span().start;
        match (field.as_str(), v.get_ref()) {
            ("optional", DeValue::Boolean(b)) => c.optional = *b,
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
                        if field == "env" { c.env = Some(s) } else { c.base_url_env = Some(s) }
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
                "unknown key or wrong type (known: secret, upstream, header, scheme, env, base_url_env, prefix, methods, paths, optional)"
                    .into(),
            ),
        }
    }
    for (missing, what) in
        [(c.secret.is_empty(), "secret"), (c.upstream.is_empty(), "upstream"), (c.header.is_empty(), "header")]
    {
        if missing {
            push(problems, src, at, &base, format!("needs {what} = \"…\""));
        }
    }
    (problems.len() == before).then_some(c)
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
    let mut chain: Vec<(String, Layered)> = Vec::new();
    let mut next = Some(name.to_owned());
    while let Some(n) = next {
        if chain.iter().any(|(c, _)| *c == n) {
            let names: Vec<&str> = chain.iter().map(|(c, _)| c.as_str()).collect();
            return Err(ProfileError::Cycle { name: n, chain: names.join(" → ") });
        }
        let (origin, src) = load(&n).ok_or_else(|| ProfileError::NotFound { name: n.clone() })?;
        let layered = utf8(&src)
            .map_err(|p| vec![p])
            .and_then(parse)
            .map_err(|problems| ProfileError::Invalid { origin, problems })?;
        next = layered.extends.clone();
        chain.push((n, layered));
    }
    let mut p = Profile { name: name.to_owned(), ..Profile::default() };
    for (n, l) in chain.into_iter().rev() {
        p.chain.push(n);
        p.description = l.description.or(p.description);
        p.read.extend(l.read);
        p.write.extend(l.write);
        p.exec.extend(l.exec);
        p.env_allow.extend(l.env_allow);
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
            p.credentials.retain(|old| old.name != c.name);
            p.credentials.push(c);
        }
    }
    Ok(p)
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
        FsPolicy { read: list(&self.read), write: list(&self.write), exec: list(&self.exec) }
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
        assert_eq!(c.credentials.len(), 1, "a route of the same name replaces the parent's");
        assert_eq!(c.credentials[0].upstream, "https://ghe.example");
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
