//! The hermetic test environment: a fake HOME, a cleared environment, the
//! real `ws` binary, real git, and real filesystems on loop images.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub struct Env {
    pub tmp: tempfile::TempDir,
    pub home: PathBuf,
}

#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<std::process::Output> for Out {
    fn from(o: std::process::Output) -> Out {
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// Runs `c` with `input` on its standard input. A command that refuses its
/// arguments exits without reading it: that is not an error here.
pub fn with_stdin(mut c: Command, input: &[u8]) -> Out {
    use std::io::Write;
    let mut child = c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let _ = child.stdin.take().unwrap().write_all(input);
    Out::from(child.wait_with_output().unwrap())
}

impl Out {
    #[track_caller]
    pub fn ok(self) -> Out {
        assert_eq!(self.code, 0, "ws failed:\nstdout: {}\nstderr: {}", self.stdout, self.stderr);
        self
    }
}

impl Env {
    pub fn new() -> Env {
        Env::new_in(&std::env::temp_dir())
    }

    /// An environment outside /tmp (which the default profile may write),
    /// so that HOME is as protected as a real home directory.
    pub fn protected() -> Env {
        Env::new_in(Path::new("/var/tmp"))
    }

    fn new_in(base: &Path) -> Env {
        let tmp = tempfile::Builder::new().prefix("ws-e2e-").tempdir_in(base).expect("tempdir");
        let home = tmp.path().join("home");
        std::fs::create_dir(&home).expect("home");
        Env { tmp, home }
    }

    /// A fresh directory on the machine's root filesystem (ext4 here).
    pub fn dir(&self, name: &str) -> PathBuf {
        let d = self.tmp.path().join(name);
        std::fs::create_dir_all(&d).expect("mkdir");
        d
    }

    pub fn command(&self, cwd: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ws"));
        c.args(args)
            .current_dir(cwd)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .env("HOME", &self.home)
            .env("LANG", "C.UTF-8")
            .env("NO_COLOR", "1")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .stdin(Stdio::null());
        c
    }

    pub fn ws(&self, cwd: &Path, args: &[&str]) -> Out {
        self.run(self.command(cwd, args))
    }

    pub fn run(&self, mut c: Command) -> Out {
        let o = c.output().expect("run ws");
        Out::from(o)
    }

    /// git with this environment's HOME (so hooks find the stores `ws`
    /// made), a hermetic configuration, and its result returned rather than
    /// asserted.
    pub fn git(&self, dir: &Path, args: &[&str]) -> Out {
        let mut c = Command::new("git");
        c.args(["-c", "user.name=Test", "-c", "user.email=test@example.com", "-c", "init.defaultBranch=main"])
            .args(["-c", "protocol.file.allow=always", "-c", "commit.gpgsign=false"])
            .args(args)
            .current_dir(dir)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .env("HOME", &self.home)
            .env("LANG", "C.UTF-8")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .stdin(Stdio::null());
        self.run(c)
    }

    /// `git commit -q -m MSG` through whatever hooks are installed.
    pub fn commit(&self, dir: &Path, msg: &str) -> Out {
        self.git(dir, &["commit", "-q", "-m", msg])
    }

    /// `ws session start -- sh -c SCRIPT` in `cwd`.
    pub fn session(&self, cwd: &Path, script: &str) -> Out {
        self.ws(cwd, &["session", "start", "--", "sh", "-c", script])
    }
}

/// Runs git with a hermetic configuration.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com", "-c", "init.defaultBranch=main"])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("git");
    assert!(o.status.success(), "git {args:?} failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn git_repo(dir: &Path) {
    git(dir, &["init", "-q"]);
}

pub fn commit_all(dir: &Path, msg: &str) {
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", msg]);
}

pub fn write(path: impl AsRef<Path>, content: impl AsRef<[u8]>) {
    let path = path.as_ref();
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).expect("mkdir");
    }
    std::fs::write(path, content).expect("write");
}

/// One node of a captured tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    File { mode: u32, hash: [u8; 32], size: u64 },
    Symlink { target: Vec<u8> },
    Dir { mode: u32 },
}

/// Everything about a tree that must round-trip: kinds, modes, bytes, symlink
/// targets (never followed) and which paths are hard links of each other.
#[derive(Debug, PartialEq, Eq)]
pub struct Tree {
    pub nodes: BTreeMap<Vec<u8>, Node>,
    pub link_groups: Vec<Vec<Vec<u8>>>,
}

pub fn capture(root: &Path, skip: &dyn Fn(&[u8]) -> bool) -> Tree {
    let mut nodes = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), Vec<Vec<u8>>> = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        for e in std::fs::read_dir(&dir).expect("read_dir") {
            let e = e.expect("entry");
            let r = rel.join(e.file_name());
            let key = r.as_os_str().as_bytes().to_vec();
            if skip(&key) {
                continue;
            }
            let m = std::fs::symlink_metadata(e.path()).expect("lstat");
            let node = if m.file_type().is_symlink() {
                Node::Symlink {
                    target: std::fs::read_link(e.path()).expect("readlink").as_os_str().as_bytes().to_vec(),
                }
            } else if m.is_dir() {
                stack.push(r.clone());
                Node::Dir { mode: m.mode() & 0o7777 }
            } else {
                if m.nlink() > 1 {
                    inodes.entry((m.dev(), m.ino())).or_default().push(key.clone());
                }
                Node::File { mode: m.mode() & 0o7777, hash: hash_path(&e.path()), size: m.size() }
            };
            nodes.insert(key, node);
        }
    }
    let mut link_groups: Vec<Vec<Vec<u8>>> = inodes
        .into_values()
        .filter(|g| g.len() > 1)
        .map(|mut g| {
            g.sort();
            g
        })
        .collect();
    link_groups.sort();
    Tree { nodes, link_groups }
}

pub fn hash_path(p: &Path) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update_reader(std::fs::File::open(p).expect("open")).expect("read");
    *h.finalize().as_bytes()
}

pub fn no_skip(_: &[u8]) -> bool {
    false
}

/// Skips git's own bookkeeping that a rollback keeps on purpose.
pub fn skip_git_internals(p: &[u8]) -> bool {
    p.starts_with(b".git/objects")
        || p.starts_with(b".git/logs")
        || p == b".git/index"
        || p == b".git/COMMIT_EDITMSG"
        || p == b".git/ORIG_HEAD"
}

#[track_caller]
pub fn assert_same_tree(before: &Tree, after: &Tree) {
    if before == after {
        return;
    }
    let show = |k: &Vec<u8>| String::from_utf8_lossy(k).into_owned();
    for (k, v) in &before.nodes {
        match after.nodes.get(k) {
            None => panic!("{} missing after rollback (was {v:?})", show(k)),
            Some(w) if w != v => panic!("{} differs: was {v:?}, now {w:?}", show(k)),
            _ => {}
        }
    }
    for k in after.nodes.keys() {
        assert!(before.nodes.contains_key(k), "{} exists after rollback but was not in the snapshot", show(k));
    }
    assert_eq!(before.link_groups, after.link_groups, "hard-link groups differ");
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A real filesystem on a loop image, unmounted and deleted on drop.
pub struct LoopFs {
    pub mnt: PathBuf,
    _dir: tempfile::TempDir,
}

impl LoopFs {
    pub fn new(kind: &str) -> LoopFs {
        assert!(
            is_root(),
            "this test mounts a {kind} loop image and needs root: run the README's test command (CI runs as root)"
        );
        let dir = tempfile::Builder::new().prefix("ws-loop-").tempdir_in("/var/tmp").expect("tempdir");
        let img = dir.path().join("fs.img");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).expect("mnt");
        let size: u64 = match kind {
            "small-ext4" => 24 << 20,
            _ => 600 << 20,
        };
        std::fs::File::create(&img).expect("img").set_len(size).expect("truncate");
        let mkfs: Vec<&str> = match kind {
            "btrfs" => vec!["mkfs.btrfs", "-q", "-f"],
            "xfs" => vec!["mkfs.xfs", "-q", "-f", "-m", "reflink=1"],
            "ext4" | "small-ext4" => vec!["mkfs.ext4", "-q", "-F"],
            // An inode per 4 KiB: room for many small files and their copies.
            "ext4-many-files" => vec!["mkfs.ext4", "-q", "-F", "-i", "4096"],
            other => panic!("unknown filesystem {other}"),
        };
        let st = Command::new(mkfs[0])
            .args(&mkfs[1..])
            .arg(&img)
            .status()
            .expect("mkfs (is btrfs-progs/xfsprogs installed? the README's test command installs them)");
        assert!(st.success(), "{} failed", mkfs[0]);
        let st = Command::new("mount").args(["-o", "loop"]).arg(&img).arg(&mnt).status().expect("mount");
        assert!(st.success(), "mount of {kind} image failed");
        LoopFs { mnt, _dir: dir }
    }

    pub fn dir(&self, name: &str) -> PathBuf {
        let d = self.mnt.join(name);
        std::fs::create_dir_all(&d).expect("mkdir");
        d
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mnt).status();
        let _ = Command::new("umount").arg("-l").arg(&self.mnt).stderr(Stdio::null()).status();
    }
}

/// Every object file (path and size) of the stores under `stores`.
pub fn store_objects(stores: &Path) -> Vec<(PathBuf, u64)> {
    let mut found = Vec::new();
    let mut stack = vec![stores.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.parent().and_then(|q| q.parent()).and_then(Path::file_name) == Some(OsStr::new("objects")) {
                let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                found.push((p, size));
            }
        }
    }
    found
}

/// A plain-HTTP server on the host's loopback that answers every request
/// with 200 and the request line, and echoes the request's headers back as
/// `x-echo-*` response headers. It remembers every request head it saw.
pub struct Upstream {
    pub port: u16,
    pub seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Upstream {
    pub fn start() -> Upstream {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind upstream");
        let port = listener.local_addr().unwrap().port();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = std::sync::Arc::clone(&seen);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let log = std::sync::Arc::clone(&log);
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut head = String::new();
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                            break;
                        }
                        head.push_str(&line);
                    }
                    let request_line = head.lines().next().unwrap_or("").to_owned();
                    let echo: String = head
                        .lines()
                        .skip(1)
                        .filter_map(|l| l.split_once(": "))
                        .map(|(k, v)| format!("x-echo-{}: {v}\r\n", k.to_ascii_lowercase()))
                        .collect();
                    log.lock().unwrap().push(head);
                    let body = format!("upstream saw: {request_line}\n");
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\n{echo}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                });
            }
        });
        Upstream { port, seen }
    }

    pub fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

/// Kernel audit switched on, with room for bursts in its backlog, while any
/// test holds one of these; as it was after the last (tests run in parallel).
pub struct AuditOn;

/// (users, the audit state before the first).
static AUDIT_USERS: std::sync::Mutex<(usize, Option<ws_sandbox::audit_netlink::Status>)> =
    std::sync::Mutex::new((0, None));

/// The backlog the tests give the kernel's audit queue, as `ws doctor`
/// advises: tests deny in bursts, in parallel, and a record dropped while a
/// session runs makes its record incomplete.
const AUDIT_BACKLOG: u32 = 8192;

impl AuditOn {
    pub fn new() -> AuditOn {
        let mut users = AUDIT_USERS.lock().unwrap_or_else(|e| e.into_inner());
        if users.0 == 0 {
            let was = ws_sandbox::audit_netlink::status().expect("audit status");
            if was.enabled == 0 {
                ws_sandbox::audit_netlink::set_enabled(true).expect("enable audit");
            }
            if was.backlog_limit != 0 && was.backlog_limit < AUDIT_BACKLOG {
                ws_sandbox::audit_netlink::set_backlog_limit(AUDIT_BACKLOG).expect("raise the audit backlog");
            }
            users.1 = Some(was);
        }
        users.0 += 1;
        AuditOn
    }
}

impl Drop for AuditOn {
    fn drop(&mut self) {
        let mut users = AUDIT_USERS.lock().unwrap_or_else(|e| e.into_inner());
        users.0 -= 1;
        if users.0 == 0
            && let Some(was) = users.1.take()
        {
            if was.enabled == 0 {
                let _ = ws_sandbox::audit_netlink::set_enabled(false);
            }
            let _ = ws_sandbox::audit_netlink::set_backlog_limit(was.backlog_limit);
        }
    }
}

/// A name no other test (or earlier run) uses: for secrets, sockets, users.
pub fn unique(tag: &str) -> String {
    let nonce = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("e2e-{tag}-{}-{nonce}", std::process::id())
}
