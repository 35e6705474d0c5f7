//! Profiles from what a command did: the profile entry that allows an
//! observed (or denied) access, generalised the way a person would write it,
//! and the text of a learned profile. Pure functions; `ws learn` and
//! `ws profile suggest` feed them what the recorders and the proxy saw.
//!
//! Generalising a path (see [`entry_for`]):
//! - inside the workspace or `$TMPDIR`: the variable itself;
//! - in the home directory: the first two levels (`$HOME/.cargo/registry`,
//!   `$HOME/src/other-repo`), so a toolchain's cache is one directory; but a
//!   path among the well-known secret stores (`.ssh`, `.aws`, `.gnupg`, …) is
//!   kept exact, and nothing that would contain one is ever proposed;
//! - elsewhere: the first two levels (`/opt/tool`), three under `/var`,
//!   `/srv`, `/mnt`, `/media`, `/run` and other users' homes;
//! - never `/` or `$HOME` (or `/home`, `/root`) wholesale: such an access is
//!   reported as too broad instead.

use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

use crate::policy::{Access, FsPolicy};
use crate::profile::Vars;

/// Home-relative paths that hold credentials: proposed exactly, never as
/// part of a wider directory.
pub const SENSITIVE: &[&str] = &[
    ".ssh",
    ".gnupg",
    ".aws",
    ".azure",
    ".kube",
    ".docker",
    ".netrc",
    ".git-credentials",
    ".pgpass",
    ".password-store",
    ".vault-token",
    ".npmrc",
    ".pypirc",
    ".cargo/credentials",
    ".cargo/credentials.toml",
    ".config/gh",
    ".config/gcloud",
    ".config/hub",
    ".local/share/keyrings",
];

/// A profile entry for an access, or why there is none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// The value to add to `filesystem.<access>`.
    Path(String),
    /// Allowing it would take a rule this wide (the value shown).
    TooBroad(String),
}

/// The kernel's name of a Landlock filesystem right (`fs.read_file`, as
/// audit reports it) as the profile access that grants it.
pub fn access_of(right: &str) -> Option<Access> {
    match right.strip_prefix("fs.")? {
        "execute" => Some(Access::Exec),
        "read_file" | "read_dir" => Some(Access::Read),
        "write_file" | "truncate" | "refer" | "ioctl_dev" | "remove_dir" | "remove_file" => Some(Access::Write),
        r if r.starts_with("make_") => Some(Access::Write),
        _ => None,
    }
}

fn normal(p: &Path) -> Vec<&std::ffi::OsStr> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s),
            _ => None,
        })
        .collect()
}

fn join(var: &str, parts: &[&std::ffi::OsStr]) -> String {
    let mut s = var.to_owned();
    for p in parts {
        s.push('/');
        s.push_str(&p.to_string_lossy());
    }
    s
}

/// The profile entry that allows `path` (absolute), generalised (see the
/// A denied path no profile line should name: a file already deleted (the
/// kernel names an unlinked file `PATH (deleted)`), or one process's entry
/// in `/proc` (`/proc/129/…`: its number changes every run, and another
/// process's entry is out of reach on purpose). Pure.
pub fn is_noise(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt as _;
    if path.as_os_str().as_bytes().ends_with(b" (deleted)") {
        return true;
    }
    let mut parts = path.components().skip(1);
    let proc_dir = parts.next().is_some_and(|c| c.as_os_str() == "proc");
    let per_process = parts.next().is_some_and(|c| {
        let b = c.as_os_str().as_bytes();
        b == b"self" || b == b"thread-self" || (!b.is_empty() && b.iter().all(u8::is_ascii_digit))
    });
    proc_dir && per_process
}

/// module's documentation).
pub fn entry_for(path: &Path, vars: &Vars) -> Entry {
    let mut best: Option<(&str, &Path)> = None;
    for (var, base) in [("$WORKSPACE", Some(vars.workspace)), ("$TMPDIR", vars.tmpdir), ("$HOME", vars.home)] {
        if let Some(b) = base
            && path.starts_with(b)
            && best.is_none_or(|(_, prev)| b.components().count() > prev.components().count())
        {
            best = Some((var, b));
        }
    }
    match best {
        Some(("$HOME", home)) => in_home("$HOME", &normal(path.strip_prefix(home).unwrap_or(path))),
        Some((var, _)) => Entry::Path(var.to_owned()),
        None => {
            let parts = normal(path);
            let Some(first) = parts.first() else { return Entry::TooBroad("/".into()) };
            // Somebody else's home directory: the same care as for ours.
            if *first == "root" {
                return in_home("/root", &parts[1..]);
            }
            if *first == "home" {
                return match parts.get(1) {
                    Some(user) => in_home(&join("/home", &[user]), &parts[2..]),
                    None => Entry::TooBroad("/home".into()),
                };
            }
            let deep = ["var", "srv", "mnt", "media", "run"].iter().any(|d| *first == *d);
            let mut take = parts.len().min(if deep { 3 } else { 2 });
            // Never a directory that holds the home directory: one level deeper.
            while take < parts.len() && vars.home.is_some_and(|h| h.starts_with(join("", &parts[..take]))) {
                take += 1;
            }
            Entry::Path(join("", &parts[..take]))
        }
    }
}

/// The entry for `rel` inside a home directory spelled `home`.
fn in_home(home: &str, rel: &[&std::ffi::OsStr]) -> Entry {
    if rel.is_empty() {
        return Entry::TooBroad(home.to_owned());
    }
    let rel_path: PathBuf = rel.iter().collect();
    if SENSITIVE.iter().any(|s| rel_path.starts_with(s)) {
        return Entry::Path(join(home, rel));
    }
    let take = rel.len().min(2);
    let anchor: PathBuf = rel[..take].iter().collect();
    if SENSITIVE.iter().any(|s| Path::new(s).starts_with(&anchor)) {
        return Entry::TooBroad(join(home, &rel[..take]));
    }
    Entry::Path(join(home, &rel[..take]))
}

/// What a command was seen doing to one path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// Absolute. For writes: the file written, or the directory an entry was
    /// created in, removed from or renamed in.
    pub path: PathBuf,
    pub access: Access,
    pub count: u64,
}

/// One line of a learned profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub value: String,
    pub count: u64,
    /// One of the paths (or hosts) it stands for, when it stands for others.
    pub example: Option<String>,
    pub why: Option<String>,
}

/// A profile extending a base with exactly what was observed beyond it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Learned {
    pub read: Vec<Line>,
    pub write: Vec<Line>,
    pub exec: Vec<Line>,
    pub hosts: Vec<Line>,
    pub addresses: Vec<Line>,
    /// Accesses no profile line should allow (`read $HOME`), with counts.
    pub too_broad: Vec<Line>,
}

/// Collects the entries that `base` does not already allow, generalised,
/// merged (an entry inside another of the same access, or a read inside a
/// write, is dropped) and sorted.
pub fn learn(base: &FsPolicy, vars: &Vars, observed: &[Observed]) -> Learned {
    let mut out = Learned::default();
    for o in observed {
        if base.decide(&o.path, o.access).allowed {
            continue;
        }
        let shown = o.path.to_string_lossy().into_owned();
        let (list, value) = match entry_for(&o.path, vars) {
            Entry::Path(v) => (
                match o.access {
                    Access::Read => &mut out.read,
                    Access::Write => &mut out.write,
                    Access::Exec => &mut out.exec,
                },
                v,
            ),
            Entry::TooBroad(v) => (&mut out.too_broad, format!("{} {v}", o.access.name())),
        };
        add(list, value, o.count, Some(shown), None);
    }
    let writes: Vec<String> = out.write.iter().map(|l| l.value.clone()).collect();
    for list in [&mut out.read, &mut out.write, &mut out.exec] {
        merge(list);
    }
    out.read.retain(|l| !writes.iter().any(|w| Path::new(&l.value).starts_with(w)));
    out.too_broad.sort_by(|a, b| a.value.cmp(&b.value));
    out
}

/// Adds `count` uses of `value` to a list (one line per value).
pub fn add(list: &mut Vec<Line>, value: String, count: u64, example: Option<String>, why: Option<String>) {
    match list.iter_mut().find(|l| l.value == value) {
        Some(l) => {
            l.count += count;
            if l.example.is_none() || l.example.as_deref() == Some(value.as_str()) {
                l.example = example.filter(|e| *e != value);
            }
            l.why = l.why.take().or(why);
        }
        None => list.push(Line { example: example.filter(|e| *e != value), value, count, why }),
    }
}

/// Folds entries covered by a wider one of the same list into it.
fn merge(list: &mut Vec<Line>) {
    list.sort_by(|a, b| a.value.cmp(&b.value));
    let mut kept: Vec<Line> = Vec::new();
    for l in list.drain(..) {
        match kept.iter_mut().find(|k| Path::new(&l.value).starts_with(&k.value)) {
            Some(k) => k.count += l.count,
            None => kept.push(l),
        }
    }
    *list = kept;
}

/// A profile line's TOML value: a basic string.
pub fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(q, "\\u{:04X}", c as u32);
            }
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

fn uses(n: u64, what: &str) -> String {
    if n == 1 { format!("1 {what}") } else { format!("{n} {what}s") }
}

/// The learned profile as TOML: `extends = base`, each entry with a
/// comment saying how often it was used, and the notes (what could not be
/// observed, what was too broad to allow) as comments.
pub fn render(base: &str, description: &str, header: &[String], l: &Learned, notes: &[String]) -> String {
    let mut s = String::new();
    for h in header {
        let _ = writeln!(s, "# {h}");
    }
    let _ = writeln!(s, "extends = {}", quote(base));
    let _ = writeln!(s, "description = {}", quote(description));
    let array = |s: &mut String, key: &str, lines: &[Line], unit: &str| {
        if lines.is_empty() {
            let _ = writeln!(s, "{key} = []");
            return;
        }
        let _ = writeln!(s, "{key} = [");
        for line in lines {
            let mut comment = uses(line.count, unit);
            if let Some(e) = &line.example {
                let _ = write!(comment, ", e.g. {e}");
            }
            if let Some(w) = &line.why {
                let _ = write!(comment, "; {w}");
            }
            let _ = writeln!(s, "  {},  # {comment}", quote(&line.value));
        }
        let _ = writeln!(s, "]");
    };
    s.push_str("\n[filesystem]\n");
    array(&mut s, "read", &l.read, "open");
    array(&mut s, "write", &l.write, "write");
    array(&mut s, "exec", &l.exec, "exec");
    s.push_str("\n[network]\n");
    array(&mut s, "hosts", &l.hosts, "request");
    if !l.addresses.is_empty() {
        array(&mut s, "addresses", &l.addresses, "connection");
    }
    if !l.too_broad.is_empty() {
        s.push_str("\n# Used but not allowed here: no profile line should open this much (run with it denied,\n");
        s.push_str("# or name a narrower path yourself):\n");
        for t in &l.too_broad {
            let e = t.example.as_deref().map(|e| format!(", e.g. {e}")).unwrap_or_default();
            let _ = writeln!(s, "#   {} ({}{e})", t.value, uses(t.count, "use"));
        }
    }
    if !notes.is_empty() {
        s.push('\n');
        for n in notes {
            let _ = writeln!(s, "# {n}");
        }
    }
    s
}

/// A `[network] hosts` entry for a request to `host` on `port`.
pub fn host_entry(host: &str, port: u16) -> String {
    match port {
        80 | 443 => host.to_owned(),
        p => format!("{host}:{p}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deleted_files_and_process_entries_are_noise() {
        for noise in
            ["/var/tmp/#2162691 (deleted)", "/proc/129", "/proc/129/mem", "/proc/self/fd/3", "/proc/thread-self"]
        {
            assert!(is_noise(Path::new(noise)), "{noise}");
        }
        for real in ["/proc/sys/kernel/x", "/proc", "/var/tmp/x", "/home/u/.ssh/id_ed25519", "/procs/1"] {
            assert!(!is_noise(Path::new(real)), "{real}");
        }
    }

    fn vars() -> (PathBuf, Option<PathBuf>, Option<PathBuf>) {
        ("/home/u/proj".into(), Some("/home/u".into()), Some("/tmp/u".into()))
    }

    fn entry(p: &str) -> Entry {
        let (w, h, t) = vars();
        entry_for(Path::new(p), &Vars { workspace: &w, home: h.as_deref(), tmpdir: t.as_deref() })
    }

    fn path(s: &str) -> Entry {
        Entry::Path(s.into())
    }

    #[test]
    fn paths_generalise_to_the_directories_a_person_would_name() {
        assert_eq!(entry("/home/u/proj/src/main.rs"), path("$WORKSPACE"));
        assert_eq!(entry("/tmp/u/cc123.o"), path("$TMPDIR"));
        assert_eq!(entry("/home/u/.cargo/registry/index/x/y"), path("$HOME/.cargo/registry"));
        assert_eq!(entry("/home/u/.rustup/toolchains/stable/bin/rustc"), path("$HOME/.rustup/toolchains"));
        assert_eq!(entry("/home/u/.gitconfig"), path("$HOME/.gitconfig"));
        assert_eq!(entry("/home/u/upstream/repo.git/objects/pack/p.idx"), path("$HOME/upstream/repo.git"));
        assert_eq!(entry("/opt/tool/lib/x.so"), path("/opt/tool"));
        assert_eq!(entry("/srv/repos/origin.git/HEAD"), path("/srv/repos/origin.git"));
        assert_eq!(entry("/var/cache/apt/pkgcache.bin"), path("/var/cache/apt"));
        assert_eq!(entry("/data"), path("/data"));
        let (w, t) = (PathBuf::from("/var/tmp/t1/ws"), None);
        let home = Some(PathBuf::from("/var/tmp/t1/home"));
        let v = Vars { workspace: &w, home: home.as_deref(), tmpdir: t };
        assert_eq!(entry_for(Path::new("/var/tmp/t1/up/.git/HEAD"), &v), path("/var/tmp/t1/up"), "beside the home");
    }

    #[test]
    fn secrets_stay_exact_and_nothing_wholesale() {
        assert_eq!(entry("/home/u/.ssh/id_ed25519"), path("$HOME/.ssh/id_ed25519"));
        assert_eq!(entry("/home/u/.ssh"), path("$HOME/.ssh"), "listing the directory names only it");
        assert_eq!(entry("/home/u/.config/gh/hosts.yml"), path("$HOME/.config/gh/hosts.yml"));
        assert_eq!(entry("/home/u/.cargo/credentials.toml"), path("$HOME/.cargo/credentials.toml"));
        assert_eq!(entry("/home/u/.config"), Entry::TooBroad("$HOME/.config".into()), "holds .config/gh");
        assert_eq!(entry("/home/u/.cargo"), Entry::TooBroad("$HOME/.cargo".into()), "holds the credentials");
        assert_eq!(entry("/home/u/.config/nvim/init.lua"), path("$HOME/.config/nvim"));
        assert_eq!(entry("/home/u"), Entry::TooBroad("$HOME".into()));
        assert_eq!(entry("/"), Entry::TooBroad("/".into()));
        assert_eq!(entry("/home"), Entry::TooBroad("/home".into()));
        assert_eq!(entry("/root/.ssh/id_rsa"), path("/root/.ssh/id_rsa"));
        assert_eq!(entry("/root"), Entry::TooBroad("/root".into()));
        assert_eq!(entry("/home/other/x/y/z"), path("/home/other/x/y"));
        assert_eq!(entry("/home/other/.aws/credentials"), path("/home/other/.aws/credentials"));
    }

    #[test]
    fn kernel_rights_map_to_profile_accesses() {
        assert_eq!(access_of("fs.execute"), Some(Access::Exec));
        assert_eq!(access_of("fs.read_dir"), Some(Access::Read));
        assert_eq!(access_of("fs.make_reg"), Some(Access::Write));
        assert_eq!(access_of("fs.remove_file"), Some(Access::Write));
        assert_eq!(access_of("net.connect_tcp"), None);
    }

    #[test]
    fn learning_keeps_only_what_the_base_lacks_merged() {
        let (w, h, t) = vars();
        let v = Vars { workspace: &w, home: h.as_deref(), tmpdir: t.as_deref() };
        let base = FsPolicy {
            read: vec!["/usr".into(), "/etc".into()],
            write: vec![w.clone(), "/tmp".into()],
            exec: vec!["/usr".into()],
            create: vec![],
        };
        let o = |p: &str, access: Access, count: u64| Observed { path: p.into(), access, count };
        let l = learn(
            &base,
            &v,
            &[
                o("/usr/lib/x.so", Access::Read, 9),
                o("/home/u/proj/a", Access::Write, 3),
                o("/home/u/.cargo/registry/index/a", Access::Read, 2),
                o("/home/u/.cargo/registry/cache/b", Access::Write, 1),
                o("/home/u/.cargo/bin/cargo", Access::Exec, 1),
                o("/home/u/.cargo/bin/cargo", Access::Read, 1),
                o("/opt/tool/bin/t", Access::Exec, 4),
                o("/home/u", Access::Read, 2),
            ],
        );
        let values = |ls: &[Line]| ls.iter().map(|l| (l.value.clone(), l.count)).collect::<Vec<_>>();
        assert_eq!(values(&l.read), vec![("$HOME/.cargo/bin".into(), 1)], "the registry read is inside its write");
        assert_eq!(values(&l.write), vec![("$HOME/.cargo/registry".into(), 1)]);
        assert_eq!(values(&l.exec), vec![("$HOME/.cargo/bin".into(), 1), ("/opt/tool".into(), 4)]);
        assert_eq!(values(&l.too_broad), vec![("read $HOME".into(), 2)]);
        let text = render("default", "learned", &["Learned".into()], &l, &["a note".into()]);
        assert!(text.contains("extends = \"default\""), "{text}");
        assert!(text.contains("\"/opt/tool\",  # 4 execs, e.g. /opt/tool/bin/t"), "{text}");
        assert!(text.contains("#   read $HOME (2 uses"), "{text}");
        let problems = crate::profile::check(&text);
        assert!(problems.is_empty(), "{problems:?}\n{text}");
    }

    #[test]
    fn quoting_survives_hostile_names() {
        let text = format!("x = {}", quote("a\"b\\c\nd\u{1}"));
        let v: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(v["x"].as_str(), Some("a\"b\\c\nd\u{1}"));
    }
}
