//! What the hooks ask git: where hooks go, what is staged (where
//! [`crate::staged`] cannot read it natively), the staged bytes, and adding
//! trailers. Every call runs the machine's `git` in the repository, with the
//! environment git gave the hook (`GIT_INDEX_FILE` for `git commit -a` and
//! partial commits, `GIT_DIR` in worktrees).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A repository as the hooks see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Repo {
    /// The top of the work tree (a linked worktree's or submodule's own).
    pub top: PathBuf,
    /// Where git looks for hooks: `core.hooksPath` if set, else the common
    /// git directory's `hooks` (shared by every worktree).
    pub hooks_dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot run git")]
    Spawn { source: io::Error },
    #[error("`git {args}` failed in {dir}: {stderr}")]
    Failed { args: String, dir: PathBuf, stderr: String },
    #[error("cannot read the output of `git {args}` in {dir}")]
    Output { args: String, dir: PathBuf, source: io::Error },
    #[error("`git {args}` in {dir} printed something unexpected: {what}")]
    Unexpected { args: String, dir: PathBuf, what: String },
    /// The repository holds what neither ws nor git should read (a FIFO
    /// where a file belongs, a delta chain that loops, a forged tree).
    #[error("the repository is not safe to read: {0}")]
    Unsafe(String),
    /// The tree git would commit has a version of `path` that the index
    /// entries (what `git diff --cached` and `git status` show) do not:
    /// the index's cache tree was written by something other than git.
    #[error("the index's cache tree would commit {path} in a version that is not staged")]
    ForgedCacheTree { path: String },
}

fn git(dir: &Path, args: &[&str]) -> Result<Vec<u8>, GitError> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| GitError::Spawn { source })?;
    if !out.status.success() {
        return Err(GitError::Failed {
            args: args.join(" "),
            dir: dir.to_path_buf(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(out.stdout)
}

fn unexpected(dir: &Path, args: &[&str], what: impl Into<String>) -> GitError {
    GitError::Unexpected { args: args.join(" "), dir: dir.to_path_buf(), what: what.into() }
}

/// The repository around `dir` and its effective hooks directory.
pub fn locate(dir: &Path) -> Result<Repo, GitError> {
    let args = ["rev-parse", "--path-format=absolute", "--show-toplevel", "--git-path", "hooks"];
    let out = git(dir, &args)?;
    let text = String::from_utf8(out).map_err(|_| unexpected(dir, &args, "a path that is not UTF-8"))?;
    let mut lines = text.lines();
    match (lines.next(), lines.next()) {
        (Some(top), Some(hooks)) => Ok(Repo { top: PathBuf::from(top), hooks_dir: PathBuf::from(hooks) }),
        _ => Err(unexpected(dir, &args, text.trim())),
    }
}

/// The full object name `rev` resolves to, if it does.
pub fn resolve(top: &Path, rev: &str) -> Result<Option<String>, GitError> {
    match git(top, &["rev-parse", "--verify", "--quiet", &format!("{rev}^{{commit}}")]) {
        Ok(out) => Ok(Some(String::from_utf8_lossy(&out).trim().to_owned())),
        Err(GitError::Failed { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The empty tree's object name in this repository's hash.
pub fn empty_tree(top: &Path) -> Result<String, GitError> {
    let out = git(top, &["hash-object", "-t", "tree", "/dev/null"])?;
    Ok(String::from_utf8_lossy(&out).trim().to_owned())
}

/// What the index holds for a path the commit changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Staged {
    /// The commit deletes the path.
    Deleted,
    File {
        executable: bool,
        blob: String,
    },
    Symlink {
        blob: String,
    },
    /// A submodule commit (gitlink).
    Submodule,
}

impl Staged {
    /// The blob holding the staged bytes (a file's content, a symlink's target).
    pub fn blob(&self) -> Option<&str> {
        match self {
            Staged::File { blob, .. } | Staged::Symlink { blob } => Some(blob),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StagedPath {
    /// Relative to the top of the work tree, as git spells it (raw bytes).
    pub path: Vec<u8>,
    pub staged: Staged,
}

/// The paths whose staged version differs from `base` (default: HEAD, or
/// nothing on an unborn branch). Renames are a deletion and an addition.
pub fn staged_paths(top: &Path, base: Option<&str>) -> Result<Vec<StagedPath>, GitError> {
    let mut args = vec!["diff", "--cached", "--raw", "-z", "--no-renames", "--no-abbrev", "--no-ext-diff"];
    args.extend(base);
    args.push("--");
    let out = git(top, &args)?;
    parse_raw(&out).map_err(|what| unexpected(top, &args, what))
}

/// Checks that every change in `committed` (what git will commit) is a
/// change the index entries stage, `entry` telling what they stage for a path.
pub(crate) fn committed_as_staged(
    committed: &[StagedPath],
    entry: impl Fn(&[u8]) -> Option<Staged>,
) -> Result<(), GitError> {
    for c in committed {
        let agrees = match (&c.staged, entry(&c.path)) {
            (Staged::Deleted, None | Some(Staged::Deleted)) => true,
            (s, Some(e)) => *s == e,
            (_, None) => false,
        };
        if !agrees {
            return Err(GitError::ForgedCacheTree { path: String::from_utf8_lossy(&c.path).into_owned() });
        }
    }
    Ok(())
}

/// What git will commit, as git tells it: `git write-tree` names the tree
/// (the cache tree where it is valid, the index entries elsewhere — what
/// `git commit` records), `git diff-tree` compares it with HEAD's tree.
pub fn committed_tree_paths(top: &Path) -> Result<Vec<StagedPath>, GitError> {
    let out = git(top, &["write-tree"])?;
    let tree = String::from_utf8_lossy(&out).trim().to_owned();
    let base = match resolve(top, "HEAD")? {
        Some(head) => head,
        None => empty_tree(top)?,
    };
    let args = ["diff-tree", "-r", "-z", "--no-renames", "--no-abbrev", &base, &tree];
    let out = git(top, &args)?;
    parse_raw(&out).map_err(|what| unexpected(top, &args, what))
}

/// Parses `git diff --raw -z` output: `:OLDMODE NEWMODE OLD NEW STATUS\0PATH\0`.
pub(crate) fn parse_raw(out: &[u8]) -> Result<Vec<StagedPath>, String> {
    let mut fields = out.split(|&b| b == 0);
    let mut paths = Vec::new();
    while let Some(header) = fields.next() {
        if header.is_empty() {
            break;
        }
        let header = std::str::from_utf8(header).map_err(|_| "a header that is not UTF-8".to_owned())?;
        let parts: Vec<&str> = header.trim_start_matches(':').split(' ').collect();
        let [_, new_mode, _, new_blob, status] = parts[..] else {
            return Err(format!("a header {header:?}"));
        };
        let path = fields.next().ok_or_else(|| format!("no path after {header:?}"))?.to_vec();
        let blob = new_blob.to_owned();
        let staged = match (status.as_bytes().first(), new_mode) {
            (Some(b'D'), _) => Staged::Deleted,
            (_, "100644") => Staged::File { executable: false, blob },
            (_, "100755") => Staged::File { executable: true, blob },
            (_, "120000") => Staged::Symlink { blob },
            (_, "160000") => Staged::Submodule,
            _ => return Err(format!("a mode {new_mode} in {header:?}")),
        };
        paths.push(StagedPath { path, staged });
    }
    Ok(paths)
}

/// A staged version's bytes: whole up to [`MAX_WHOLE`], else a stream.
pub enum Content<'a> {
    Whole(&'a [u8]),
    Stream(&'a mut dyn Read),
}

impl std::fmt::Debug for Content<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Content::Whole(b) => write!(f, "Whole({} bytes)", b.len()),
            Content::Stream(_) => f.write_str("Stream"),
        }
    }
}

/// The most bytes of one staged version held in memory at once.
pub const MAX_WHOLE: usize = 64 << 20;

/// A `git cat-file --batch` of the repository, started before it is needed
/// so that its start overlaps other work.
#[derive(Debug)]
pub struct BlobReader {
    top: PathBuf,
    child: Child,
}

const CAT_FILE: [&str; 2] = ["cat-file", "--batch"];

impl BlobReader {
    pub fn spawn(top: &Path) -> Result<BlobReader, GitError> {
        let child = Command::new("git")
            .args(CAT_FILE)
            .current_dir(top)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| GitError::Spawn { source })?;
        Ok(BlobReader { top: top.to_path_buf(), child })
    }

    /// Streams the content of `blobs` (in order) to `each`.
    pub fn read(
        mut self,
        blobs: &[&str],
        mut each: impl FnMut(usize, Content<'_>) -> io::Result<()>,
    ) -> Result<(), GitError> {
        let top = self.top.clone();
        let output_err = |source| GitError::Output { args: CAT_FILE.join(" "), dir: top.clone(), source };
        let (Some(mut stdin), Some(stdout)) = (self.child.stdin.take(), self.child.stdout.take()) else {
            return Err(output_err(io::Error::other("no pipe to git")));
        };
        let names: Vec<u8> = blobs.iter().flat_map(|b| [b.as_bytes(), b"\n"]).flatten().copied().collect();
        // A writer thread: git answers while it reads, so one thread doing
        // both could fill both pipes and wait forever.
        let result = std::thread::scope(|s| {
            let writer = s.spawn(move || stdin.write_all(&names));
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let mut buf = Vec::new();
            for (i, blob) in blobs.iter().enumerate() {
                line.clear();
                reader.read_line(&mut line).map_err(output_err)?;
                let header: Vec<&str> = line.trim_end().split(' ').collect();
                let size = match header[..] {
                    [name, "blob", size] if name == *blob => size.parse::<u64>().ok(),
                    _ => None,
                };
                let Some(size) = size else {
                    return Err(unexpected(&top, &CAT_FILE, format!("{:?} for blob {blob}", line.trim_end())));
                };
                // A large blob is handed over as a stream: a 3 GiB staged
                // file never lands in memory.
                match usize::try_from(size).ok().filter(|&s| s <= MAX_WHOLE) {
                    Some(size) => {
                        buf.clear();
                        buf.resize(size + 1, 0);
                        reader.read_exact(&mut buf).map_err(output_err)?;
                        each(i, Content::Whole(&buf[..size])).map_err(output_err)?;
                    }
                    None => {
                        let mut stream = (&mut reader).take(size);
                        each(i, Content::Stream(&mut stream)).map_err(output_err)?;
                        io::copy(&mut stream, &mut io::sink()).map_err(output_err)?;
                        if stream.limit() > 0 {
                            return Err(output_err(io::ErrorKind::UnexpectedEof.into()));
                        }
                        reader.read_exact(&mut [0u8; 1]).map_err(output_err)?;
                    }
                }
            }
            writer.join().unwrap_or_else(|_| Err(io::Error::other("writer thread panicked"))).map_err(output_err)
        });
        let status = self.child.wait().map_err(output_err)?;
        result?;
        if !status.success() {
            let mut stderr = String::new();
            if let Some(mut e) = self.child.stderr.take() {
                let _ = e.read_to_string(&mut stderr);
            }
            return Err(GitError::Failed { args: CAT_FILE.join(" "), dir: self.top.clone(), stderr });
        }
        Ok(())
    }
}

impl Drop for BlobReader {
    fn drop(&mut self) {
        // Unused, or read to the end: closing its stdin ends it either way.
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// git's object name for a blob of `content` in a SHA-1 repository.
pub fn blob_id_sha1(content: &[u8]) -> String {
    let mut h = sha1_smol::Sha1::new();
    h.update(format!("blob {}\0", content.len()).as_bytes());
    h.update(content);
    h.digest().to_string()
}

/// Streams the staged bytes of `entries` (a file's content, a symlink's
/// target; entries without a blob are skipped) to `each`, by index. Where the
/// work tree holds exactly the staged blob — its git object name says so —
/// the bytes come from there and git is not started; the rest come from one
/// `git cat-file --batch`.
pub fn read_staged(
    top: &Path,
    entries: &[&StagedPath],
    mut each: impl FnMut(usize, Content<'_>) -> io::Result<()>,
) -> Result<(), GitError> {
    use crate::safe::{Found, Tree};
    let mut rest: Vec<usize> = Vec::new();
    // Paths are resolved below the top without following a symlink, as git
    // stages them; a FIFO, a device or a file over the bound is left to git,
    // which reads the staged blob from its store.
    let tree = Tree::open(top).ok();
    let output_err = |source| GitError::Output { args: "(work tree)".into(), dir: top.to_path_buf(), source };
    for (k, e) in entries.iter().enumerate() {
        let Some(blob) = e.staged.blob() else { continue };
        let found = tree.as_ref().map(|t| t.read(&e.path, MAX_WHOLE as u64));
        let bytes = match (&e.staged, found) {
            (Staged::File { .. }, Some(Ok(Found::File(b)))) => Some(b),
            (Staged::Symlink { .. }, Some(Ok(Found::Symlink(b)))) => Some(b),
            _ => None,
        };
        match bytes {
            // Object names of SHA-256 repositories are 64 digits: git reads those.
            Some(b) if blob.len() == 40 && blob_id_sha1(&b) == blob => {
                each(k, Content::Whole(&b)).map_err(output_err)?
            }
            _ => rest.push(k),
        }
    }
    let blobs: Vec<&str> = rest.iter().filter_map(|&k| entries[k].staged.blob()).collect();
    read_blobs(top, &blobs, |j, content| each(rest[j], content))
}

/// Streams the content of `blobs` (in order) to `each`, through one
/// `git cat-file --batch`.
pub fn read_blobs(
    top: &Path,
    blobs: &[&str],
    each: impl FnMut(usize, Content<'_>) -> io::Result<()>,
) -> Result<(), GitError> {
    if blobs.is_empty() {
        return Ok(());
    }
    BlobReader::spawn(top)?.read(blobs, each)
}

/// What one staged version holds: its BLAKE3 and the stored secrets in it,
/// each with the line it first occurs on.
#[derive(Debug)]
pub struct Examined<'a> {
    pub blake3: [u8; 32],
    pub secrets: Vec<(&'a crate::Fingerprint, usize)>,
}

/// Reads the staged bytes of `entries` (see [`read_staged`]) and tells
/// `each`, by index, what each holds — a large one in pieces, never whole.
pub fn examine_staged<'a>(
    top: &Path,
    entries: &[&StagedPath],
    fps: &'a [crate::Fingerprint],
    mut each: impl FnMut(usize, Examined<'a>),
) -> Result<(), GitError> {
    read_staged(top, entries, |k, content| {
        each(k, examine(content, fps)?);
        Ok(())
    })
}

fn examine<'a>(content: Content<'_>, fps: &'a [crate::Fingerprint]) -> io::Result<Examined<'a>> {
    match content {
        Content::Whole(bytes) => {
            let secrets = crate::find(bytes, fps)
                .into_iter()
                .map(|f| (f.fingerprint, bytes[..f.offset].iter().filter(|&&b| b == b'\n').count() + 1))
                .collect();
            Ok(Examined { blake3: *blake3::hash(bytes).as_bytes(), secrets })
        }
        Content::Stream(read) => {
            let mut hasher = blake3::Hasher::new();
            let mut scanner = crate::fingerprint::Scanner::new(fps);
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = match read.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                hasher.update(&buf[..n]);
                scanner.feed(&buf[..n]);
            }
            Ok(Examined { blake3: *hasher.finalize().as_bytes(), secrets: scanner.finish() })
        }
    }
}

/// Adds `Key: value` trailers to the message file, each unless the message
/// already has that exact trailer (an amended commit keeps one of each).
pub fn add_trailers(top: &Path, message: &Path, trailers: &[String]) -> Result<(), GitError> {
    if trailers.is_empty() {
        return Ok(());
    }
    let message = message.to_string_lossy();
    let mut args = vec!["interpret-trailers", "--in-place", "--if-exists", "addIfDifferent"];
    for t in trailers {
        args.extend(["--trailer", t.as_str()]);
    }
    args.push(&message);
    git(top, &args).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_raw_diff_output() {
        let z = "0".repeat(40);
        let a = "a".repeat(40);
        let raw = format!(
            ":000000 100644 {z} {a} A\0new file\0:100644 100755 {a} {a} M\0bin/run\0:100644 000000 {a} {z} D\0gone\0\
             :000000 120000 {z} {a} A\0link\0:000000 160000 {z} {a} A\0sub\0"
        );
        let got = parse_raw(raw.as_bytes()).unwrap();
        // `printf 'hello\n' | git hash-object --stdin`
        assert_eq!(blob_id_sha1(b"hello\n"), "ce013625030ba8dba906f756967f9e9ca394464a");
        let want = [
            ("new file", Staged::File { executable: false, blob: a.clone() }),
            ("bin/run", Staged::File { executable: true, blob: a.clone() }),
            ("gone", Staged::Deleted),
            ("link", Staged::Symlink { blob: a.clone() }),
            ("sub", Staged::Submodule),
        ];
        assert_eq!(got.len(), want.len());
        for (g, (p, s)) in got.iter().zip(want) {
            assert_eq!(g.path, p.as_bytes());
            assert_eq!(g.staged, s);
        }
        assert!(parse_raw(b"").unwrap().is_empty());
        assert!(parse_raw(b":garbage\0x\0").is_err());
    }
}
