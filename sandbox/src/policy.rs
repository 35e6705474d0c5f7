//! The filesystem policy of a session, and the decision for one path.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    Read,
    Write,
    Exec,
}

impl Access {
    pub fn name(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
            Access::Exec => "exec",
        }
    }
}

/// Directories (and files) under which each kind of access is allowed.
/// Everything else is denied. Paths are absolute, variables expanded.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsPolicy {
    pub read: Vec<PathBuf>,
    pub write: Vec<PathBuf>,
    pub exec: Vec<PathBuf>,
    /// Paths made before the session when missing, so that the session can
    /// write them (each is also in `write`): Landlock grants only what
    /// exists, and granting the parent would let the session create any
    /// name there (`~/.bashrc`).
    #[serde(default)]
    pub create: Vec<Creation>,
}

/// One path to make when missing, as the user the session runs as.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Creation {
    pub path: PathBuf,
    /// A directory (mode 0700), else a file (mode 0600).
    pub dir: bool,
    /// The existing directory (the home directory) below which missing
    /// components are made; nothing is made outside it.
    pub within: PathBuf,
}

/// Why a path is allowed or denied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The rule that allows it (`filesystem.write = "/home/u/proj"`), if any.
    pub rule: Option<(Access, PathBuf)>,
}

impl FsPolicy {
    fn list(&self, a: Access) -> &[PathBuf] {
        match a {
            Access::Read => &self.read,
            Access::Write => &self.write,
            Access::Exec => &self.exec,
        }
    }

    /// Decides `access` to `path` (absolute, already resolved): allowed when a
    /// rule of that access — or, for reading, of writing, which implies it —
    /// covers the path. The most specific covering rule is reported. Pure.
    pub fn decide(&self, path: &Path, access: Access) -> Decision {
        let kinds: &[Access] = match access {
            Access::Read => &[Access::Read, Access::Write],
            other => std::slice::from_ref(match other {
                Access::Write => &Access::Write,
                _ => &Access::Exec,
            }),
        };
        let best = kinds
            .iter()
            .flat_map(|k| self.list(*k).iter().map(move |p| (*k, p)))
            .filter(|(_, p)| path.starts_with(p))
            .max_by_key(|(_, p)| p.components().count());
        Decision { allowed: best.is_some(), rule: best.map(|(k, p)| (k, p.clone())) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> FsPolicy {
        FsPolicy {
            read: vec!["/usr".into(), "/etc".into(), "/home/u/.cargo".into()],
            write: vec!["/home/u/proj".into(), "/tmp".into()],
            exec: vec!["/usr".into(), "/home/u/proj".into()],
            create: vec![],
        }
    }

    #[test]
    fn decides_with_the_most_specific_rule() {
        let p = policy();
        let d = p.decide(Path::new("/home/u/proj/src/main.rs"), Access::Write);
        assert!(d.allowed);
        assert_eq!(d.rule, Some((Access::Write, PathBuf::from("/home/u/proj"))));
        assert!(p.decide(Path::new("/home/u/proj/x"), Access::Read).allowed, "write implies read");
        assert!(!p.decide(Path::new("/home/u/.ssh/id_ed25519"), Access::Read).allowed);
        assert!(!p.decide(Path::new("/home/u/.bashrc"), Access::Write).allowed);
        assert!(!p.decide(Path::new("/etc/passwd"), Access::Write).allowed);
        assert!(!p.decide(Path::new("/tmp/x"), Access::Exec).allowed);
        assert!(!p.decide(Path::new("/usrlocal"), Access::Read).allowed, "prefixes are by component");
        assert_eq!(
            p.decide(Path::new("/home/u/.cargo/bin/cargo"), Access::Read).rule,
            Some((Access::Read, PathBuf::from("/home/u/.cargo")))
        );
    }
}
