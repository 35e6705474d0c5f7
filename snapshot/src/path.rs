//! Workspace-relative paths as raw bytes, so that names which are not UTF-8 (or
//! that hold newlines) round-trip exactly.

use std::cmp::Ordering;
use std::ffi::OsStr;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A path relative to the workspace root: components joined by `/`, no leading
/// or trailing slash, never `.` or `..`. The root itself is the empty path.
///
/// The bytes are a prefix of a shared buffer: a directory's path can be a view
/// of its descendant's (see [`share_prefixes`]), so a tree N directories deep
/// holds its paths in O(N) bytes, not O(N²). Cloning is a reference count.
#[derive(Clone, Default)]
pub struct RelPath {
    buf: Arc<[u8]>,
    len: usize,
}

impl PartialEq for RelPath {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && (Arc::ptr_eq(&self.buf, &other.buf) || self.as_bytes() == other.as_bytes())
    }
}

impl Eq for RelPath {}

impl PartialOrd for RelPath {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for RelPath {
    fn cmp(&self, other: &Self) -> Ordering {
        // Views of one buffer: one is a prefix of the other.
        if Arc::ptr_eq(&self.buf, &other.buf) {
            return self.len.cmp(&other.len);
        }
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl Hash for RelPath {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

/// Makes each path that is a prefix of the next one in `paths` a view of
/// that one's bytes (sorted paths: a directory and its first descendant), so
/// that a chain of directories shares one buffer. Equal values before and
/// after; only the memory they hold changes.
pub(crate) fn share_prefixes<'a>(paths: impl DoubleEndedIterator<Item = &'a mut RelPath>) {
    let mut longer: Option<RelPath> = None;
    for p in paths.rev() {
        match &longer {
            Some(l) if l.len > p.len && l.buf[..p.len] == *p.as_bytes() => {
                if !Arc::ptr_eq(&l.buf, &p.buf) {
                    *p = RelPath { buf: l.buf.clone(), len: p.len };
                }
            }
            _ => longer = Some(p.clone()),
        }
    }
}

/// Front coding of a path against the one written before it: the length of
/// the directory they share (0 for none) and the rest of `next` after that
/// directory and its `/`. A path below the previous one (a directory's first
/// child) costs its own name, so a deep chain costs O(entries), not O(depth²).
pub(crate) fn front_code<'a>(prev: &RelPath, next: &'a RelPath) -> (usize, &'a [u8]) {
    let (p, n) = (prev.as_bytes(), next.as_bytes());
    let mut k = if Arc::ptr_eq(&prev.buf, &next.buf) {
        p.len().min(n.len())
    } else {
        p.iter().zip(n).take_while(|(a, b)| a == b).count()
    };
    // Back to a whole directory of both: O(one name).
    while k > 0 {
        if n.get(k) == Some(&b'/') && (k == p.len() || p[k] == b'/') {
            return (k, &n[k + 1..]);
        }
        k -= 1;
    }
    (0, n)
}

/// Rebuilds front-coded paths ([`front_code`]), checking each as
/// [`RelPath::from_bytes`] would in time linear in its coded size. Paths
/// that extend the one before share its buffer.
#[derive(Default)]
pub(crate) struct FrontDecoder {
    cur: Vec<u8>,
    /// Lengths of the decoded paths that are prefixes of `cur`, not yet built.
    pending: Vec<usize>,
    done: Vec<RelPath>,
}

impl FrontDecoder {
    /// A decoder whose previous path is `seed` (not itself one of its paths).
    pub fn seeded(seed: &[u8]) -> FrontDecoder {
        FrontDecoder { cur: seed.to_vec(), pending: Vec::new(), done: Vec::new() }
    }

    pub fn push(&mut self, shared: usize, rest: &[u8]) -> Result<(), &'static str> {
        if shared > self.cur.len() || (shared > 0 && shared < self.cur.len() && self.cur[shared] != b'/') {
            return Err("shared prefix is not a directory of the previous path");
        }
        if rest.is_empty() || RelPath::from_bytes(rest).is_none() {
            return Err("invalid path");
        }
        if shared < self.cur.len() {
            self.flush();
            self.cur.truncate(shared);
        }
        if shared > 0 {
            self.cur.push(b'/');
        }
        self.cur.extend_from_slice(rest);
        self.pending.push(self.cur.len());
        Ok(())
    }

    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let buf: Arc<[u8]> = Arc::from(&self.cur[..]);
        self.done.extend(self.pending.drain(..).map(|len| RelPath { buf: buf.clone(), len }));
    }

    /// The paths, in the order pushed.
    pub fn finish(mut self) -> Vec<RelPath> {
        self.flush();
        self.done
    }
}

impl RelPath {
    pub fn root() -> Self {
        Self::default()
    }

    fn owned(bytes: Vec<u8>) -> Self {
        RelPath { len: bytes.len(), buf: Arc::from(bytes) }
    }

    /// Bytes held for this path (shared with every view of the same buffer).
    #[cfg(test)]
    pub(crate) fn buffer_len(&self) -> usize {
        self.buf.len()
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
        valid.then(|| Self::owned(bytes.to_vec()))
    }

    /// The path of `full` relative to `root`, if `full` lies inside it.
    pub fn from_path_under(root: &Path, full: &Path) -> Option<Self> {
        let rest = full.strip_prefix(root).ok()?;
        Self::from_bytes(rest.as_os_str().as_bytes())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    pub fn is_root(&self) -> bool {
        self.len == 0
    }

    pub fn join(&self, name: &[u8]) -> RelPath {
        let mut v = Vec::with_capacity(self.len + 1 + name.len());
        v.extend_from_slice(self.as_bytes());
        if !v.is_empty() {
            v.push(b'/');
        }
        v.extend_from_slice(name);
        Self::owned(v)
    }

    /// The ancestor whose path is this one's first `len` bytes (`len` at a
    /// `/` or the whole path): a view of the same bytes, nothing copied.
    pub(crate) fn ancestor(&self, len: usize) -> RelPath {
        debug_assert!(len == self.len || self.as_bytes().get(len) == Some(&b'/'));
        RelPath { buf: self.buf.clone(), len: len.min(self.len) }
    }

    /// The parent directory: a view of the same bytes, nothing copied.
    pub fn parent(&self) -> Option<RelPath> {
        if self.is_root() {
            return None;
        }
        Some(match self.as_bytes().iter().rposition(|b| *b == b'/') {
            Some(i) => RelPath { buf: self.buf.clone(), len: i },
            None => RelPath::root(),
        })
    }

    pub fn file_name(&self) -> &[u8] {
        match self.as_bytes().iter().rposition(|b| *b == b'/') {
            Some(i) => &self.as_bytes()[i + 1..],
            None => self.as_bytes(),
        }
    }

    pub fn depth(&self) -> usize {
        if self.is_root() { 0 } else { 1 + self.as_bytes().iter().filter(|b| **b == b'/').count() }
    }

    /// True when `self` is `other` or lies below it.
    pub fn starts_with(&self, other: &RelPath) -> bool {
        if other.is_root() {
            return true;
        }
        self.as_bytes().starts_with(other.as_bytes()) && (self.len == other.len || self.as_bytes()[other.len] == b'/')
    }

    pub fn components(&self) -> impl Iterator<Item = &[u8]> {
        self.as_bytes().split(|b| *b == b'/').filter(|c| !c.is_empty())
    }

    pub fn to_path(&self, root: &Path) -> PathBuf {
        if self.is_root() { root.to_path_buf() } else { root.join(OsStr::from_bytes(self.as_bytes())) }
    }

    /// The path as UTF-8 if it is valid UTF-8.
    pub fn to_str(&self) -> Option<&str> {
        std::str::from_utf8(self.as_bytes()).ok()
    }

    /// A form for humans, quoted the way git quotes unusual names: control
    /// characters, `"` and `\` escaped, bytes that are not UTF-8 as octal.
    pub fn display(&self) -> String {
        let needs_quotes = self.as_bytes().iter().any(|b| *b < 0x20 || *b == 0x7f || *b == b'"' || *b == b'\\')
            || std::str::from_utf8(self.as_bytes()).is_err();
        if !needs_quotes {
            return String::from_utf8_lossy(self.as_bytes()).into_owned();
        }
        let mut out = String::from("\"");
        for chunk in self.as_bytes().utf8_chunks() {
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
