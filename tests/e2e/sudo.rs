//! `sudo ws …`: root for recording, namespaces and cgroups; everything else —
//! the command, its files, the profiles, the store — the user's. The tests
//! run `ws` as root with the variables sudo sets (`SUDO_UID`, `SUDO_GID`,
//! `SUDO_USER`, and root's `HOME`), or with `--user NAME`, for a real user
//! they create once (with a home directory and a supplementary group); the
//! user's own `ws` runs through `setpriv` with the user's ids and groups.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::*;

const USER: &str = "ws-e2e-sudo";
const EXTRA_GROUP: &str = "ws-e2e-extra";

pub(crate) struct TestUser {
    pub uid: u32,
    pub gid: u32,
    pub extra_gid: u32,
    pub home: PathBuf,
}

fn id(args: &[&str]) -> u32 {
    let o = Command::new("id").args(args).arg(USER).output().unwrap();
    String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
}

/// The test user, made once per machine (kept: other runs reuse it).
pub(crate) fn test_user() -> TestUser {
    static MADE: std::sync::Once = std::sync::Once::new();
    assert!(is_root(), "needs root (the README's test command runs as root)");
    MADE.call_once(|| {
        let _ = Command::new("groupadd").args(["-f", EXTRA_GROUP]).status();
        if !Command::new("id").arg(USER).output().unwrap().status.success() {
            let s =
                Command::new("useradd").args(["-m", "-U", "-G", EXTRA_GROUP, "-s", "/bin/sh", USER]).status().unwrap();
            assert!(s.success(), "useradd {USER}");
        }
    });
    let extra = Command::new("getent").args(["group", EXTRA_GROUP]).output().unwrap();
    let extra_gid = String::from_utf8_lossy(&extra.stdout).split(':').nth(2).unwrap().trim().parse().unwrap();
    let passwd = Command::new("getent").args(["passwd", USER]).output().unwrap();
    let home = PathBuf::from(String::from_utf8_lossy(&passwd.stdout).trim().split(':').nth(5).unwrap());
    TestUser { uid: id(&["-u"]), gid: id(&["-g"]), extra_gid, home }
}

fn chown(u: &TestUser, p: &Path) {
    let s = Command::new("chown").arg("-R").arg(format!("{}:{}", u.uid, u.gid)).arg(p).status().unwrap();
    assert!(s.success());
}

/// A workspace in the user's home, theirs, with a tracked file.
fn user_workspace(u: &TestUser) -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("ws-e2e-").tempdir_in(&u.home).unwrap();
    git_repo(dir.path());
    write(dir.path().join("mine.txt"), "the user's file\n");
    chown(u, dir.path());
    dir
}

/// `ws ARGS` as root, as `sudo` leaves it: root's HOME, the SUDO_ variables.
fn as_sudo(env: &Env, u: &TestUser, cwd: &Path, args: &[&str]) -> Out {
    let mut c = env.command(cwd, args);
    c.env("SUDO_UID", u.uid.to_string()).env("SUDO_GID", u.gid.to_string()).env("SUDO_USER", USER);
    env.run(c)
}

/// `ws ARGS` as the user themselves.
fn as_user(env: &Env, u: &TestUser, cwd: &Path, args: &[&str]) -> Out {
    let mut c = Command::new("setpriv");
    c.args([format!("--reuid={}", u.uid), format!("--regid={}", u.gid), "--init-groups".into(), "--".into()]);
    c.arg(env!("CARGO_BIN_EXE_ws")).args(args).current_dir(cwd).env_clear();
    c.env("PATH", "/usr/bin:/bin").env("HOME", &u.home).env("NO_COLOR", "1").env("LANG", "C.UTF-8");
    env.run(c)
}

/// Every file under `dir` (not following symlinks) with an owner other than `uid`.
fn not_owned_by(dir: &Path, uid: u32) -> Vec<PathBuf> {
    let mut bad = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let m = e.path().symlink_metadata().unwrap();
            if m.uid() != uid {
                bad.push(e.path());
            }
            if m.is_dir() {
                todo.push(e.path());
            }
        }
    }
    bad
}

/// What the command reports about itself.
const WHO: &str = "echo uid=$(id -u) gid=$(id -g) groups=\"$(id -G)\"; \
                   echo home=$HOME user=$USER logname=$LOGNAME; grep CapEff /proc/self/status; \
                   cat \"$HOME/notes/n.txt\"; echo made > made.txt; mkdir -p sub/deep && echo x > sub/deep/f; \
                   rm mine.txt; (sleep 0.1; echo late > sub/late.txt) & wait; \
                   cat /root/.bashrc >/dev/null 2>&1 && echo READ-ROOT; cat \"$HOME/.ssh/id_ed25519\" 2>&1; true";

#[test]
fn sudo_runs_the_command_as_the_user_with_their_profile_and_store_and_root_only_records() {
    let _audit = AuditOn::new();
    let u = test_user();
    let env = Env::protected();
    let ws = user_workspace(&u);
    let ws = ws.path();
    // The user's own profile, found in their home although HOME is root's.
    let profile_name = format!("sudo-e2e-{}", std::process::id());
    let profile = u.home.join(format!(".config/ws/profiles/{profile_name}.toml"));
    write(&profile, "extends = \"default\"\n[filesystem]\nread = [\"$HOME/notes\"]\n");
    write(u.home.join("notes/n.txt"), "THE USER'S NOTE\n");
    write(u.home.join(".ssh/id_ed25519"), "USER-SECRET\n");
    for p in [u.home.join(".config"), u.home.join("notes"), u.home.join(".ssh")] {
        chown(&u, &p);
    }

    let out = as_sudo(&env, &u, ws, &["session", "start", "--profile", &profile_name, "--", "sh", "-c", WHO]);
    assert_eq!(out.code, 0, "{out:?}");
    let groups = out.stdout.lines().find_map(|l| l.split("groups=").nth(1)).unwrap_or_default().to_owned();
    assert!(out.stdout.contains(&format!("uid={} gid={}", u.uid, u.gid)), "runs as the user: {out:?}");
    assert!(groups.split(' ').any(|g| g == u.extra_gid.to_string()), "supplementary groups: {out:?}");
    assert!(
        out.stdout.contains(&format!("home={} user={USER} logname={USER}", u.home.display())),
        "the user's login environment: {out:?}"
    );
    assert!(out.stdout.contains("CapEff:\t0000000000000000"), "no capability left: {out:?}");
    assert!(out.stdout.contains("THE USER'S NOTE"), "the user's profile applied: {out:?}");
    // Still sandboxed: the user's secrets and root's files stay closed.
    assert!(!out.stdout.contains("USER-SECRET") && !out.stdout.contains("READ-ROOT"), "{out:?}");
    // Files the command made are the user's.
    for f in ["made.txt", "sub/deep/f", "sub/late.txt", "sub"] {
        assert_eq!(ws.join(f).symlink_metadata().unwrap().uid(), u.uid, "{f} belongs to the user");
    }
    // The store is the user's, in their home, and all theirs; root's HOME got nothing.
    let stores = u.home.join(".local/share/ws");
    assert!(stores.is_dir(), "the user's store");
    assert_eq!(not_owned_by(&stores, u.uid), Vec::<PathBuf>::new(), "store files not the user's");
    assert!(!env.home.join(".local/share/ws").exists(), "nothing in root's home");

    // The user's own ws, without sudo, finds the session and its full record.
    let show = as_user(&env, &u, ws, &["session", "show", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&show.stdout).unwrap();
    assert_eq!(v["recording"]["writes"], "fanotify", "{v}");
    assert_eq!(v["record_complete"], true, "{v}");
    assert_eq!(v["changes"]["created"], 5, "made.txt, sub/, sub/deep/, sub/deep/f, sub/late.txt: {v}");
    let log = as_user(&env, &u, ws, &["log", "--json"]).ok();
    let written: Vec<serde_json::Value> = log
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["type"] == "write")
        .collect();
    for f in ["made.txt", "sub/deep/f", "sub/late.txt"] {
        assert!(written.iter().any(|r| r["path"] == f && r["pid"].as_u64().unwrap_or(0) > 0), "{f} in {log:?}");
    }
    assert!(
        log.stdout.lines().any(|l| l.contains("\"type\":\"denial\"") && l.contains("id_ed25519")),
        "the denied read of the user's key is recorded: {log:?}"
    );
    let diff = as_user(&env, &u, ws, &["diff", "--name-status"]).ok();
    for line in ["A\tmade.txt", "D\tmine.txt", "A\tsub/deep/f"] {
        assert!(diff.stdout.contains(line), "{line}: {diff:?}");
    }
    // And rolls it back as themselves.
    as_user(&env, &u, ws, &["rollback"]).ok();
    assert!(!ws.join("made.txt").exists() && !ws.join("sub").exists());
    assert_eq!(std::fs::read_to_string(ws.join("mine.txt")).unwrap(), "the user's file\n");
    assert_eq!(ws.join("mine.txt").metadata().unwrap().uid(), u.uid);
    // The next `sudo ws` session takes its before-snapshot from root's
    // watch (the first started it), equal to a full walk, and what it keeps
    // in the store is still the user's.
    let mut c = env.command(ws, &["session", "start", "--", "sh", "-c", "echo again > made-again.txt"]);
    c.env("SUDO_UID", u.uid.to_string()).env("SUDO_GID", u.gid.to_string()).env("SUDO_USER", USER);
    c.env("WS_WATCH", "check");
    let again = env.run(c);
    assert!(again.stderr.contains("the snapshot from the watch equals a full walk"), "{again:?}");
    let show = as_user(&env, &u, ws, &["session", "show", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&show.stdout).unwrap();
    assert_eq!(v["before_snapshot"]["from"], "watch", "{v}");
    assert_eq!(not_owned_by(&stores, u.uid), Vec::<PathBuf>::new(), "store files not the user's");
    let _ = std::fs::remove_file(profile);
}

#[test]
fn user_flag_runs_as_the_named_user_and_needs_root() {
    let u = test_user();
    let env = Env::protected();
    let ws = user_workspace(&u);
    let ws = ws.path();
    let out = env.ws(ws, &["--user", USER, "session", "start", "--", "sh", "-c", "id -u > who.txt"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(std::fs::read_to_string(ws.join("who.txt")).unwrap().trim(), u.uid.to_string());
    assert_eq!(ws.join("who.txt").metadata().unwrap().uid(), u.uid);
    let show = as_user(&env, &u, ws, &["session", "show", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&show.stdout).unwrap();
    assert_eq!(v["recording"]["writes"], "fanotify", "{v}");

    // Without root, --user is refused before anything runs.
    let refused = as_user(&env, &u, ws, &["--user", "root", "session", "start", "--", "true"]);
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(refused.stderr.contains("--user root needs root"), "{refused:?}");
    let unknown = env.ws(ws, &["--user", "no-such-user-ws", "session", "list"]);
    assert_eq!(unknown.code, 2, "{unknown:?}");
    assert!(unknown.stderr.contains("no user no-such-user-ws"), "{unknown:?}");
}

#[test]
fn root_without_sudo_runs_as_root() {
    let env = Env::protected();
    let ws = env.dir("ws");
    git_repo(&ws);
    let out = env.session(&ws, "id -u > who.txt");
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(std::fs::read_to_string(ws.join("who.txt")).unwrap().trim(), "0");
}
