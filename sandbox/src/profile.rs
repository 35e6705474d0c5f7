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
//! ```
//! A profile that extends another adds to its lists; `enforce.require`, when
//! given, replaces the parent's. Checking reports every problem, each with its
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
}

fn line_of(src: &str, offset: usize) -> usize {
    src[..offset.min(src.len())].bytes().filter(|b| *b == b'\n').count() + 1
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
    let problem = |problems: &mut Vec<ProfileProblem>, at: usize, key: &str, msg: String| {
        problems.push(ProfileProblem { line: line_of(src, at), key: key.to_owned(), message: msg })
    };
    for (k, v) in table.get_ref().iter() {
        let key = k.get_ref().as_ref();
        let at = k.span().start;
        match (key, v.get_ref()) {
            ("extends", DeValue::String(s)) => out.extends = Some(s.to_string()),
            ("description", DeValue::String(s)) => out.description = Some(s.to_string()),
            ("extends" | "description", _) => problem(&mut problems, at, key, "must be a string".into()),
            ("resources", DeValue::Table(t)) => {
                for (k2, v2) in t.iter() {
                    let sub = format!("resources.{}", k2.get_ref());
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
                    let sub = format!("{key}.{}", k2.get_ref());
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
            ("filesystem" | "environment" | "enforce", _) => problem(&mut problems, at, key, "must be a table".into()),
            _ => problem(
                &mut problems,
                at,
                key,
                "unknown key (known: extends, description, filesystem, environment, enforce)".into(),
            ),
        }
    }
    problems.sort_by_key(|p| p.line);
    if problems.is_empty() { Ok(out) } else { Err(problems) }
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

/// Resolves profile `name`, following `extends`. `load` finds a profile's
/// text by name (user profiles first, then [`BUILTIN`]) and says where it
/// came from, for messages.
pub fn resolve(name: &str, load: &dyn Fn(&str) -> Option<(String, String)>) -> Result<Profile, ProfileError> {
    let mut chain: Vec<(String, Layered)> = Vec::new();
    let mut next = Some(name.to_owned());
    while let Some(n) = next {
        if chain.iter().any(|(c, _)| *c == n) {
            let names: Vec<&str> = chain.iter().map(|(c, _)| c.as_str()).collect();
            return Err(ProfileError::Cycle { name: n, chain: names.join(" → ") });
        }
        let (origin, src) = load(&n).ok_or_else(|| ProfileError::NotFound { name: n.clone() })?;
        let layered = parse(&src).map_err(|problems| ProfileError::Invalid { origin, problems })?;
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
    }
    Ok(p)
}

/// Loads a built-in profile by name.
pub fn builtin(name: &str) -> Option<(String, String)> {
    BUILTIN.iter().find(|(n, _)| *n == name).map(|(n, src)| (format!("(built-in {n})"), (*src).to_owned()))
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
        let load = |n: &str| -> Option<(String, String)> {
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
