//! Workspace-relative paths as raw bytes, so that names which are not UTF-8 (or
//! that hold newlines) round-trip exactly.

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// A path relative to the workspace root: components joined by `/`, no leading
/// or trailing slash, never `.` or `..`. The root itself is the empty path.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct RelPath(Vec<u8>);

impl RelPath {
    pub fn root() -> Self {
        RelPath(Vec::new())
    }

    /// Builds a relative path from bytes, refusing anything that could escape
    /// the workspace (absolute, `..`, empty components, NUL).
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.is_empty() {
            return Some(Self::root());
        }
        if bytes.contains(&0) {
            return None;
        }
        let valid = bytes.split(|b| *b == b'/').all(|c| !c.is_empty() && c != b"." && c != b"..");
        valid.then(|| RelPath(bytes.to_vec()))
    }

    /// The path of `full` relative to `root`, if `full` lies inside it.
    pub fn from_path_under(root: &Path, full: &Path) -> Option<Self> {
        let rest = full.strip_prefix(root).ok()?;
        Self::from_bytes(rest.as_os_str().as_bytes())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    pub fn join(&self, name: &[u8]) -> RelPath {
        let mut v = Vec::with_capacity(self.0.len() + 1 + name.len());
        v.extend_from_slice(&self.0);
        if !v.is_empty() {
            v.push(b'/');
        }
        v.extend_from_slice(name);
        RelPath(v)
    }

    pub fn parent(&self) -> Option<RelPath> {
        if self.0.is_empty() {
            return None;
        }
        Some(match self.0.iter().rposition(|b| *b == b'/') {
            Some(i) => RelPath(self.0[..i].to_vec()),
            None => RelPath::root(),
        })
    }

    pub fn file_name(&self) -> &[u8] {
        match self.0.iter().rposition(|b| *b == b'/') {
            Some(i) => &self.0[i + 1..],
            None => &self.0,
        }
    }

    pub fn depth(&self) -> usize {
        if self.0.is_empty() { 0 } else { 1 + self.0.iter().filter(|b| **b == b'/').count() }
    }

    /// True when `self` is `other` or lies below it.
    pub fn starts_with(&self, other: &RelPath) -> bool {
        if other.0.is_empty() {
            return true;
        }
        self.0.starts_with(&other.0) && (self.0.len() == other.0.len() || self.0[other.0.len()] == b'/')
    }

    pub fn components(&self) -> impl Iterator<Item = &[u8]> {
        self.0.split(|b| *b == b'/').filter(|c| !c.is_empty())
    }

    pub fn to_path(&self, root: &Path) -> PathBuf {
        if self.0.is_empty() { root.to_path_buf() } else { root.join(OsStr::from_bytes(&self.0)) }
    }

    /// The path as UTF-8 if it is valid UTF-8.
    pub fn to_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// A form for humans, quoted the way git quotes unusual names: control
    /// characters, `"` and `\` escaped, bytes that are not UTF-8 as octal.
    pub fn display(&self) -> String {
        let needs_quotes = self.0.iter().any(|b| *b < 0x20 || *b == 0x7f || *b == b'"' || *b == b'\\')
            || std::str::from_utf8(&self.0).is_err();
        if !needs_quotes {
            return String::from_utf8_lossy(&self.0).into_owned();
        }
        let mut out = String::from("\"");
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                match c {
                    '\n' => out.push_str("\\n"),
                    '\t' => out.push_str("\\t"),
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\{:03o}", c as u32)),
                    c => out.push(c),
                }
            }
            for b in chunk.invalid() {
                out.push_str(&format!("\\{b:03o}"));
            }
        }
        out.push('"');
        out
    }
}

impl fmt::Debug for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display())
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_escapes() {
        assert!(RelPath::from_bytes(b"/etc").is_none());
        assert!(RelPath::from_bytes(b"a/../b").is_none());
        assert!(RelPath::from_bytes(b"a//b").is_none());
        assert!(RelPath::from_bytes(b"a/\0").is_none());
        assert!(RelPath::from_bytes(b"a/b\nc").is_some());
    }

    #[test]
    fn starts_with_is_component_wise() {
        let p = RelPath::from_bytes(b"src/main.rs").unwrap();
        assert!(p.starts_with(&RelPath::from_bytes(b"src").unwrap()));
        assert!(!p.starts_with(&RelPath::from_bytes(b"sr").unwrap()));
        assert!(p.starts_with(&RelPath::root()));
    }

    #[test]
    fn display_quotes_like_git() {
        assert_eq!(RelPath::from_bytes(b"a\nb").unwrap().display(), "\"a\\nb\"");
        assert_eq!(RelPath::from_bytes(b"x\xff").unwrap().display(), "\"x\\377\"");
        assert_eq!(RelPath::from_bytes(b"plain.txt").unwrap().display(), "plain.txt");
    }

    #[test]
    fn parent_and_name() {
        let p = RelPath::from_bytes(b"a/b/c").unwrap();
        assert_eq!(p.parent().unwrap().as_bytes(), b"a/b");
        assert_eq!(p.file_name(), b"c");
        assert_eq!(p.depth(), 3);
        assert_eq!(RelPath::from_bytes(b"c").unwrap().parent(), Some(RelPath::root()));
    }
}
