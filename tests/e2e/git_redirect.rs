//! Git cannot be redirected: a session that points git at a config of its
//! own (`commondir`, `config.worktree`, a renamed or replaced `.git`, a
//! gitfile) must not get its `core.fsmonitor` command run by the reviewer's
//! next `git status` on the host. Each attack runs inside a real
//! `ws session start` after a positive control (the agent commits there);
//! the command it plants would create a marker outside the workspace, where
//! the session cannot write; and each test proves the trap itself works by
//! springing it on a scratch repository.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::*;
use crate::privilege::{Unprivileged, as_nobody, as_nobody_without_userns, unprivileged};

/// The agent's commit, first in every session: git keeps working.
const CONTROL: &str = "echo agent-$$ >> agent.txt && git add agent.txt && \
                       git -c user.name=agent -c user.email=agent@example.com commit -q -m agent && echo COMMITTED";

/// A git directory the agent controls in /tmp (writable in the session),
/// whose config runs a command, and the marker that command makes.
struct Trap {
    evil: PathBuf,
    marker: PathBuf,
}

impl Trap {
    /// `marker_dir`: outside the workspace, not writable by the session,
    /// writable by the reviewer.
    fn new(marker_dir: &Path) -> Trap {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let evil = PathBuf::from(format!("/tmp/ws-e2e-evil-{}-{n}", std::process::id()));
        Trap { evil, marker: marker_dir.join(format!("fsmonitor-ran-{n}")) }
    }

    /// The config line that runs the command (`; :` swallows git's arguments).
    fn fsmonitor(&self) -> String {
        format!("\\tfsmonitor = \"touch {}; :\"\\n", self.marker.display())
    }

    /// Shell for the agent: make the evil git directory.
    fn plant(&self) -> String {
        format!(
            "git init -q --bare {e} && printf '[core]\\n\\tbare = false\\n{f}' > {e}/config",
            e = self.evil.display(),
            f = self.fsmonitor()
        )
    }

    /// Proves the trap works: a scratch repository sent to the evil
    /// directory by `commondir` makes the reviewer's `git status` run it.
    fn spring(&self, scratch: &Path, git: &dyn Fn(&Path, &[&str]) -> Out) {
        assert!(!self.marker.exists(), "the marker exists before the control");
        git(scratch, &["init", "-q"]).ok();
        write(scratch.join(".git/commondir"), format!("{}\n", self.evil.display()));
        git(scratch, &["status"]);
        assert!(self.marker.exists(), "control: the planted fsmonitor runs when git is sent there");
        std::fs::remove_file(&self.marker).unwrap();
    }
}

impl Drop for Trap {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.evil);
    }
}

/// What every attack must leave: the reviewer's `git status` runs nothing,
/// `.git` is a directory with its history, nothing the session planted is
/// left, the record says what was undone and still verifies.
fn assert_not_redirected(trap: &Trap, ws: &Path, status: &Out, out: &Out, log: &Out, verify: &Out) {
    assert_eq!(status.code, 0, "the reviewer's git status: {status:?}");
    assert!(!trap.marker.exists(), "the agent's fsmonitor ran on the host: {out:?}");
    assert!(ws.join(".git").is_dir() && ws.join(".git/HEAD").is_file(), "{out:?}");
    for f in ["commondir", "config.worktree", "gitdir", "objects/info/alternates", "info/attributes"] {
        assert!(!ws.join(".git").join(f).exists(), ".git/{f} was left: {out:?}");
    }
    let config = std::fs::read_to_string(ws.join(".git/config")).unwrap();
    assert!(!config.contains("fsmonitor"), "{config}");
    assert!(out.stderr.contains("changed git's control surface"), "the summary must say: {}", out.stderr);
    assert!(log.stdout.contains("GIT GUARD"), "{}", log.stdout);
    assert_eq!(verify.code, 0, "{verify:?}");
}

fn root_repo(env: &Env) -> PathBuf {
    let ws = env.dir("ws");
    git_repo(&ws);
    write(ws.join("mine.txt"), "workspace file\n");
    commit_all(&ws, "init");
    ws
}

#[test]
fn commondir_pointing_at_the_agents_config_runs_nothing_on_the_host() {
    let env = Env::protected();
    let ws = root_repo(&env);
    let trap = Trap::new(env.tmp.path());
    let script =
        format!("{CONTROL}; {} && echo {} > .git/commondir && echo PLANTED", trap.plant(), trap.evil.display());
    let out = env.session(&ws, &script);
    assert!(out.stdout.contains("COMMITTED") && out.stdout.contains("PLANTED"), "{out:?}");
    let status = env.git(&ws, &["status"]);
    let (log, verify) = (env.ws(&ws, &["log"]), env.ws(&ws, &["audit", "verify"]));
    assert_not_redirected(&trap, &ws, &status, &out, &log, &verify);
    assert!(log.stdout.contains(".git/commondir  created"), "{}", log.stdout);
    // Only the control surface was undone: the agent's commit stays for review.
    assert!(env.git(&ws, &["log", "--format=%s"]).stdout.contains("agent"));
    trap.spring(&env.dir("scratch"), &|d, a| env.git(d, a));
}

#[test]
fn config_worktree_where_the_user_enabled_worktree_config_runs_nothing() {
    let env = Env::protected();
    let ws = root_repo(&env);
    // The user's own setting: git then reads .git/config.worktree.
    env.git(&ws, &["config", "extensions.worktreeConfig", "true"]).ok();
    let trap = Trap::new(env.tmp.path());
    let script = format!("{CONTROL}; printf '[core]\\n{}' > .git/config.worktree && echo PLANTED", trap.fsmonitor());
    let out = env.session(&ws, &script);
    assert!(out.stdout.contains("COMMITTED") && out.stdout.contains("PLANTED"), "{out:?}");
    let status = env.git(&ws, &["status"]);
    let (log, verify) = (env.ws(&ws, &["log"]), env.ws(&ws, &["audit", "verify"]));
    assert_not_redirected(&trap, &ws, &status, &out, &log, &verify);
    // Control: the same file, written by hand, is obeyed.
    write(ws.join(".git/config.worktree"), format!("[core]\n\tfsmonitor = \"touch {}; :\"\n", trap.marker.display()));
    env.git(&ws, &["status"]);
    assert!(trap.marker.exists(), "control: git reads config.worktree here");
}

#[test]
fn git_directory_cannot_be_renamed_removed_or_replaced_in_a_session() {
    let env = Env::protected();
    let ws = root_repo(&env);
    let trap = Trap::new(env.tmp.path());
    let script = format!(
        "{CONTROL}; {plant}; mv .git .git-old 2>&1; rm -rf .git 2>/dev/null; \
         printf 'gitdir: {e}\\n' > .git 2>&1; printf '[core]\\n{f}' >> .git/config 2>&1; \
         echo '* -diff' > .git/info/attributes 2>&1; true",
        plant = trap.plant(),
        e = trap.evil.display(),
        f = trap.fsmonitor()
    );
    let out = env.session(&ws, &script);
    assert!(out.stdout.contains("COMMITTED"), "{out:?}");
    assert!(out.stdout.contains("cannot move '.git' to '.git-old': Device or resource busy"), "{out:?}");
    assert!(out.stderr.contains("cannot create .git: Is a directory"), "the gitfile cannot replace .git: {out:?}");
    assert!(out.stderr.contains(".git/config: Read-only file system"), "{out:?}");
    assert!(out.stderr.contains(".git/info/attributes: Read-only file system"), "{out:?}");
    assert!(!ws.join(".git-old").exists());
    let status = env.git(&ws, &["status"]);
    let (log, verify) = (env.ws(&ws, &["log"]), env.ws(&ws, &["audit", "verify"]));
    // `rm -rf` emptied what was not protected (HEAD, refs, objects): git
    // would not take .git for a repository any more, so it came back whole.
    assert!(log.stdout.contains(".git  replaced"), "{}", log.stdout);
    assert_not_redirected(&trap, &ws, &status, &out, &log, &verify);
    assert!(env.git(&ws, &["log", "--format=%s"]).stdout.contains("init"));
    trap.spring(&env.dir("scratch"), &|d, a| env.git(d, a));
}

#[test]
fn alternates_created_in_a_session_are_removed() {
    let env = Env::protected();
    let ws = root_repo(&env);
    let trap = Trap::new(env.tmp.path());
    let script = format!(
        "{CONTROL}; {}; mkdir -p .git/objects/info && echo {}/objects > .git/objects/info/alternates && echo PLANTED",
        trap.plant(),
        trap.evil.display()
    );
    let out = env.session(&ws, &script);
    assert!(out.stdout.contains("COMMITTED") && out.stdout.contains("PLANTED"), "{out:?}");
    let status = env.git(&ws, &["status"]);
    let (log, verify) = (env.ws(&ws, &["log"]), env.ws(&ws, &["audit", "verify"]));
    assert_not_redirected(&trap, &ws, &status, &out, &log, &verify);
    assert!(log.stdout.contains(".git/objects/info/alternates  created"), "{}", log.stdout);
}

fn nobody_repo() -> Unprivileged {
    let u = unprivileged();
    git_as_nobody(&u, &u.ws, &["add", "-A"]).ok();
    git_as_nobody(&u, &u.ws, &["commit", "-q", "-m", "init"]).ok();
    u
}

/// The reviewer, as the same unprivileged user (git refuses a repository
/// another user owns, which would spring no trap at all).
fn git_as_nobody(u: &Unprivileged, dir: &Path, args: &[&str]) -> Out {
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--", "git"])
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", &u.home)
        .env("GIT_CONFIG_NOSYSTEM", "1");
    u.env.run(c)
}

#[test]
fn without_user_namespaces_each_redirect_is_undone_when_the_session_ends() {
    let u = nobody_repo();
    let trap = Trap::new(u.env.tmp.path());
    let (e, f) = (trap.evil.display(), trap.fsmonitor());
    let attacks = [
        ("commondir", format!("{}; echo {e} > .git/commondir", trap.plant())),
        (
            "config.worktree",
            format!("git config extensions.worktreeConfig true && printf '[core]\\n{f}' > .git/config.worktree"),
        ),
        ("rename and init", format!("mv .git .git-old && git init -q && printf '[core]\\n{f}' >> .git/config")),
        ("gitfile", format!("{}; rm -rf .git && printf 'gitdir: {e}\\n' > .git", trap.plant())),
    ];
    for (name, attack) in attacks {
        let _ = std::fs::remove_dir_all(&trap.evil);
        let script = format!("{CONTROL}; {attack} && echo PLANTED; true");
        let out = as_nobody_without_userns(&u, &["session", "start", "--", "sh", "-c", &script]);
        assert!(out.stderr.contains("running without namespaces"), "{name}: the mode under test: {out:?}");
        assert!(out.stdout.contains("COMMITTED") && out.stdout.contains("PLANTED"), "{name}: {out:?}");
        let status = git_as_nobody(&u, &u.ws, &["status"]);
        let log = as_nobody_without_userns(&u, &["log"]);
        let verify = as_nobody_without_userns(&u, &["audit", "verify"]);
        assert_not_redirected(&trap, &u.ws, &status, &out, &log, &verify);
        assert!(git_as_nobody(&u, &u.ws, &["log", "--format=%s"]).stdout.contains("init"), "{name}");
        assert!(!git_as_nobody(&u, &u.ws, &["config", "extensions.worktreeConfig"]).stdout.contains("true"));
    }
    let scratch = u.env.dir("scratch");
    Command::new("chown").args(["65534:65534"]).arg(&scratch).status().unwrap();
    trap.spring(&scratch, &|d, a| git_as_nobody(&u, d, a));
}

#[test]
fn with_user_namespaces_git_is_pinned_and_commondir_undone() {
    let u = nobody_repo();
    let trap = Trap::new(u.env.tmp.path());
    let script = format!(
        "{CONTROL}; mv .git .git-old 2>&1; {}; echo {} > .git/commondir && echo PLANTED",
        trap.plant(),
        trap.evil.display()
    );
    let out = as_nobody(&u, &u.ws, &["session", "start", "--", "sh", "-c", &script]);
    assert!(!out.stderr.contains("running without"), "the mode under test: {out:?}");
    assert!(out.stdout.contains("COMMITTED") && out.stdout.contains("PLANTED"), "{out:?}");
    assert!(out.stdout.contains("Device or resource busy"), "{out:?}");
    let status = git_as_nobody(&u, &u.ws, &["status"]);
    let (log, verify) = (as_nobody(&u, &u.ws, &["log"]), as_nobody(&u, &u.ws, &["audit", "verify"]));
    assert_not_redirected(&trap, &u.ws, &status, &out, &log, &verify);
    let scratch = u.env.dir("scratch");
    Command::new("chown").args(["65534:65534"]).arg(&scratch).status().unwrap();
    trap.spring(&scratch, &|d, a| git_as_nobody(&u, d, a));
}

/// The supervisor is killed (`kill -9`) after the agent planted
/// `commondir`: no session end ran the guard, so the first ws command that
/// takes the orphan's after-snapshot (here `ws diff`) undoes it before it
/// returns, and says so in its output and the record.
#[test]
fn a_killed_supervisors_session_is_guarded_by_the_next_ws_command() {
    let env = Env::protected();
    let ws = root_repo(&env);
    let trap = Trap::new(env.tmp.path());
    let script = format!(
        "{CONTROL}; {} && echo {} > .git/commondir && echo PLANTED > planted.txt; sleep 60",
        trap.plant(),
        trap.evil.display()
    );
    let mut child = env
        .command(&ws, &["session", "start", "--", "sh", "-c", &script])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..400 {
        if ws.join("planted.txt").exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    assert!(ws.join("planted.txt").exists() && ws.join(".git/commondir").exists(), "control: the agent planted it");
    child.kill().unwrap();
    child.wait().unwrap();
    let diff = env.ws(&ws, &["diff", "--name-status"]);
    assert_eq!(diff.code, 0, "{diff:?}");
    assert!(diff.stderr.contains("was interrupted"), "{diff:?}");
    assert!(diff.stderr.contains("changed git's control surface"), "{diff:?}");
    let status = env.git(&ws, &["status"]);
    let (log, verify) = (env.ws(&ws, &["log"]), env.ws(&ws, &["audit", "verify"]));
    assert_not_redirected(&trap, &ws, &status, &diff, &log, &verify);
    trap.spring(&env.dir("scratch"), &|d, a| env.git(d, a));
}
