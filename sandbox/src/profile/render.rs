//! A resolved profile as TOML: what `ws profile show` prints. It parses back
//! (without `extends`) to the same profile, so it can be saved and edited.

use std::fmt::Write as _;

use super::Profile;

/// A TOML basic string: quotes, backslashes and control characters escaped.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn list<S: AsRef<str>>(items: &[S]) -> String {
    let inner: Vec<String> = items.iter().map(|s| quote(s.as_ref())).collect();
    format!("[{}]", inner.join(", "))
}

/// A key as TOML writes it: bare when it can be.
fn key(k: &str) -> String {
    if !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        k.to_owned()
    } else {
        quote(k)
    }
}

/// A size as `[resources] memory_max` reads it, in the largest whole unit.
fn size(bytes: u64) -> String {
    for (unit, shift) in [("G", 30), ("M", 20), ("K", 10)] {
        if bytes.is_multiple_of(1u64 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// The whole effective profile, `extends` resolved: every table, every key.
pub fn to_toml(p: &Profile) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# profile {} (from {}), with `extends` resolved", p.name, p.chain.join(" → "));
    if let Some(d) = &p.description {
        let _ = writeln!(o, "description = {}", quote(d));
    }
    let _ = writeln!(o, "\n[filesystem]");
    let _ = writeln!(o, "read = {}", list(&p.read));
    let _ = writeln!(o, "write = {}", list(&p.write));
    let _ = writeln!(o, "exec = {}", list(&p.exec));
    let _ = writeln!(o, "create = {}", list(&p.create));
    let _ = writeln!(o, "\n[environment]");
    let _ = writeln!(o, "allow = {}", list(&p.env_allow));
    let set: Vec<String> = p.env_set.iter().map(|(k, v)| format!("{} = {}", key(k), quote(v))).collect();
    let _ = writeln!(o, "set = {{ {} }}", set.join(", "));
    let _ = writeln!(o, "\n[enforce]");
    let require: Vec<&str> = p.require.iter().map(|l| l.name()).collect();
    let _ = writeln!(o, "require = {}", list(&require));
    let _ = writeln!(o, "\n[resources]");
    match p.limits.memory_max {
        Some(m) => {
            let _ = writeln!(o, "memory_max = {}", quote(&size(m)));
        }
        None => {
            let _ = writeln!(o, "# memory_max: no limit");
        }
    }
    match p.limits.pids_max {
        Some(n) => {
            let _ = writeln!(o, "pids_max = {n}");
        }
        None => {
            let _ = writeln!(o, "# pids_max: no limit");
        }
    }
    let _ = writeln!(o, "\n[network]");
    let _ = writeln!(o, "hosts = {}", list(&p.network.hosts));
    let _ = writeln!(o, "addresses = {}", list(&p.network.addresses));
    let _ = writeln!(o, "ca_files = {}", list(&p.network.ca_files));
    for h in &p.network.http {
        let _ = writeln!(o, "\n[[network.http]]");
        let _ = writeln!(o, "host = {}", quote(&h.host));
        let _ = writeln!(o, "methods = {}", list(&h.methods));
        let _ = writeln!(o, "paths = {}", list(&h.paths));
    }
    if p.credentials.is_empty() {
        let _ = writeln!(o, "\n# [credentials]: none");
    }
    for c in &p.credentials {
        let _ = writeln!(o, "\n[credentials.{}]", key(&c.name));
        let _ = writeln!(o, "secret = {}", quote(&c.secret));
        let _ = writeln!(o, "upstream = {}", quote(&c.upstream));
        let _ = writeln!(o, "header = {}", quote(&c.header));
        if let Some(v) = &c.scheme {
            let _ = writeln!(o, "scheme = {}", quote(v));
        }
        match c.env.as_slice() {
            [] => {}
            [one] => {
                let _ = writeln!(o, "env = {}", quote(one));
            }
            many => {
                let _ = writeln!(o, "env = {}", list(many));
            }
        }
        if let Some(v) = &c.base_url_env {
            let _ = writeln!(o, "base_url_env = {}", quote(v));
        }
        if !c.intercept.is_empty() {
            let _ = writeln!(o, "intercept = {}", list(&c.intercept));
        }
        if !c.prefix.is_empty() {
            let _ = writeln!(o, "prefix = {}", quote(&c.prefix));
        }
        let _ = writeln!(o, "methods = {}", list(&c.methods));
        let _ = writeln!(o, "paths = {}", list(&c.paths));
        let _ = writeln!(o, "optional = {}", c.optional);
    }
    o
}

#[cfg(test)]
mod tests {
    use super::super::{BUILTIN, builtin, resolve};
    use super::*;

    /// `show`'s text, loaded as a profile of its own, is the same profile.
    fn round_trip(p: &Profile) -> Profile {
        let text = to_toml(p);
        let load = |n: &str| -> Option<(String, Vec<u8>)> {
            (n == "shown").then(|| ("shown.toml".to_owned(), text.clone().into_bytes()))
        };
        let mut back = resolve("shown", &load).unwrap_or_else(|e| panic!("{e}\n{text}"));
        back.name = p.name.clone();
        back.chain = p.chain.clone();
        back
    }

    #[test]
    fn every_builtin_shows_whole_and_parses_back_to_itself() {
        for (name, _) in BUILTIN {
            let p = resolve(name, &builtin).unwrap();
            let text = to_toml(&p);
            for table in ["[filesystem]", "[environment]", "[enforce]", "[resources]", "[network]"] {
                assert!(text.contains(table), "{name}: {table} missing:\n{text}");
            }
            assert_eq!(round_trip(&p), p, "{name}:\n{text}");
        }
    }

    #[test]
    fn every_field_survives_including_awkward_strings() {
        let p = Profile {
            name: "x".into(),
            description: Some("quotes \" and \\ and\nnewline\u{7}".into()),
            read: vec!["/a b".into()],
            create: vec!["$HOME/.t/".into(), "$HOME/.t.json".into()],
            env_set: [("IS_SANDBOX".into(), "1".into()), ("A_B".into(), "x\"y".into())].into(),
            limits: crate::cgroups::Limits { memory_max: Some(3 << 20), pids_max: Some(7) },
            network: super::super::Network {
                hosts: vec!["h.example".into()],
                addresses: vec!["10.0.0.0/8".into()],
                ca_files: vec!["$HOME/ca.pem".into()],
                http: vec![super::super::HttpSpec {
                    host: "r.example".into(),
                    methods: vec!["GET".into()],
                    paths: vec!["/v2/**".into()],
                }],
            },
            credentials: vec![super::super::CredentialSpec {
                name: "gh".into(),
                secret: "cmd:pass show gh".into(),
                upstream: "https://api.github.com".into(),
                header: "authorization".into(),
                scheme: Some("Bearer".into()),
                env: vec!["GITHUB_TOKEN".into()],
                intercept: vec![],
                base_url_env: None,
                prefix: "ghp_".into(),
                methods: vec!["POST".into()],
                paths: vec!["/v1/**".into()],
                optional: true,
            }],
            ..Profile::default()
        };
        assert_eq!(round_trip(&p), p, "{}", to_toml(&p));
    }
}
