//! `ws hooks`: real git commits through the installed hooks, with a user's
//! own hooks, `core.hooksPath`, a linked worktree and a submodule.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::*;

#[track_caller]
fn git_ok(env: &Env, dir: &Path, args: &[&str]) -> String {
    env.git(dir, args).ok().stdout
}

fn repo(env: &Env, name: &str) -> PathBuf {
    let dir = env.dir(name);
    git_ok(env, &dir, &["init", "-q"]);
    write(dir.join("base.txt"), "base\n");
    git_ok(env, &dir, &["add", "-A"]);
    git_ok(env, &dir, &["commit", "-q", "-m", "base"]);
    dir
}

fn head(env: &Env, dir: &Path) -> String {
    git_ok(env, dir, &["rev-parse", "HEAD"])
}

fn message(env: &Env, dir: &Path) -> String {
    git_ok(env, dir, &["log", "-1", "--format=%B"])
}

fn session_id(out: &Out) -> String {
    let line = out.stderr.lines().find_map(|l| l.strip_prefix("ws: session ")).expect("session summary");
    line.split(':').next().unwrap().to_owned()
}

fn stores(env: &Env) -> PathBuf {
    env.home.join(".local/share/ws/stores")
}

/// Every file of a hooks directory: name, bytes (a symlink's target) and mode.
fn hook_files(dir: &Path) -> Vec<(String, Vec<u8>, u32)> {
    use std::os::unix::fs::MetadataExt;
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let m = std::fs::symlink_metadata(e.path()).unwrap();
            let bytes = if m.file_type().is_symlink() {
                std::fs::read_link(e.path()).unwrap().into_os_string().into_encoded_bytes()
            } else {
                std::fs::read(e.path()).unwrap()
            };
            (e.file_name().to_string_lossy().into_owned(), bytes, m.mode())
        })
        .collect();
    v.sort();
    v
}

fn executable(path: &Path, script: &str) {
    write(path, script);
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn an_unapproved_agent_change_is_refused_and_committed_after_approve_with_a_trailer() {
    let env = Env::new();
    let ws = repo(&env, "repo");
    env.ws(&ws, &["hooks", "install"]).ok();
    let out = env.session(&ws, "echo agent > f");
    let id = session_id(&out.ok());

    // Positive control: with the session pending, a commit of the user's own
    // file goes through the hooks and is not refused.
    write(ws.join("mine.txt"), "mine\n");
    git_ok(&env, &ws, &["add", "mine.txt"]);
    env.commit(&ws, "mine").ok();
    assert!(!message(&env, &ws).contains("Ws-Session"), "the user's commit carries no session");
    // pre-commit told prepare-commit-msg so, which used that up without starting ws.
    assert_eq!(std::fs::read(ws.join(".git/ws-trailers")).unwrap(), b"");

    git_ok(&env, &ws, &["add", "f"]);
    let before = head(&env, &ws);
    let refused = env.commit(&ws, "agent");
    assert_ne!(refused.code, 0, "{refused:?}");
    assert!(refused.stderr.contains(&format!("  f (session {id})")), "{}", refused.stderr);
    assert!(refused.stderr.contains("ws diff") && refused.stderr.contains("ws approve"), "{}", refused.stderr);
    assert_eq!(head(&env, &ws), before, "nothing was committed");

    // The user edits the agent's file before committing: still its work.
    write(ws.join("f"), "agent\nand mine\n");
    git_ok(&env, &ws, &["add", "f"]);
    assert_ne!(env.commit(&ws, "agent").code, 0);
    write(ws.join("f"), "agent\n");
    git_ok(&env, &ws, &["add", "f"]);

    env.ws(&ws, &["approve"]).ok();
    env.commit(&ws, "agent").ok();
    let msg = message(&env, &ws);
    assert_eq!(msg.matches(&format!("Ws-Session: {id}")).count(), 1, "{msg}");

    // Amending keeps exactly one trailer, with the message edited or not
    // (`--amend -m` replaces the whole message, trailers included, as git does).
    git_ok(&env, &ws, &["commit", "-q", "--amend", "--no-edit"]);
    assert_eq!(message(&env, &ws).matches("Ws-Session:").count(), 1, "{}", message(&env, &ws));
    git_ok(&env, &ws, &["-c", "core.editor=sed -i 1s/agent/reworded/", "commit", "-q", "--amend"]);
    let msg = message(&env, &ws);
    assert!(msg.starts_with("reworded") && msg.matches(&format!("Ws-Session: {id}")).count() == 1, "{msg}");

    // A later commit that changes the file again is not attributed.
    write(ws.join("f"), "rewritten by me\n");
    git_ok(&env, &ws, &["add", "f"]);
    env.commit(&ws, "mine again").ok();
    assert!(!message(&env, &ws).contains("Ws-Session"));
}

#[test]
fn a_deletion_by_the_agent_is_refused_and_restoring_the_file_passes() {
    let env = Env::new();
    let ws = repo(&env, "repo");
    env.ws(&ws, &["hooks", "install"]).ok();
    env.session(&ws, "rm base.txt").ok();
    git_ok(&env, &ws, &["add", "-A"]);
    let refused = env.commit(&ws, "agent deleted");
    assert!(refused.code != 0 && refused.stderr.contains("  base.txt (session"), "{refused:?}");
    // Staging the version from before the session carries nothing of it.
    git_ok(&env, &ws, &["checkout", "HEAD", "--", "base.txt"]);
    write(ws.join("other.txt"), "x\n");
    git_ok(&env, &ws, &["add", "-A"]);
    env.commit(&ws, "other").ok();
}

#[test]
fn the_users_hooks_still_run_first_can_still_refuse_and_come_back_exactly() {
    let env = Env::new();
    let ws = repo(&env, "repo");
    let hooks = ws.join(".git/hooks");
    let log = env.tmp.path().join("hook.log");
    executable(
        &hooks.join("pre-commit"),
        &format!(
            "#!/bin/sh\necho \"user pre-commit $#\" >> {log}\n[ -e {fail} ] && exit 7\nexit 0\n",
            log = log.display(),
            fail = env.tmp.path().join("fail").display()
        ),
    );
    executable(&hooks.join("prepare-commit-msg"), "#!/bin/sh\necho 'Signed-off-by: User <u@example.com>' >> \"$1\"\n");
    std::fs::set_permissions(hooks.join("prepare-commit-msg"), std::fs::Permissions::from_mode(0o700)).unwrap();
    let before = hook_files(&hooks);

    let out = env.ws(&ws, &["hooks", "install"]).ok();
    assert!(out.stderr.contains("pre-commit.ws-chained"), "{}", out.stderr);
    assert_eq!(env.ws(&ws, &["hooks", "install"]).ok().stderr.matches("already installed").count(), 2);

    // A clean commit: both of the user's hooks ran, and nothing of ws's state was made.
    write(ws.join("a.txt"), "a\n");
    git_ok(&env, &ws, &["add", "a.txt"]);
    env.commit(&ws, "a").ok();
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "user pre-commit 0\n");
    assert!(message(&env, &ws).contains("Signed-off-by: User"), "{}", message(&env, &ws));
    assert!(!stores(&env).exists(), "the hooks created a store in a repository that never used ws");

    // The user's hook refusing still stops the commit, with its status, before ws runs.
    std::fs::write(env.tmp.path().join("fail"), "").unwrap();
    write(ws.join("b.txt"), "b\n");
    git_ok(&env, &ws, &["add", "b.txt"]);
    let refused = env.commit(&ws, "b");
    assert_ne!(refused.code, 0);
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 2, "the user's hook ran again");
    std::fs::remove_file(env.tmp.path().join("fail")).unwrap();

    // With a pending session: the user's hook runs, then ws refuses.
    let id = session_id(&env.session(&ws, "echo agent >> b.txt").ok());
    git_ok(&env, &ws, &["add", "b.txt"]);
    let refused = env.commit(&ws, "b");
    assert!(refused.code != 0 && refused.stderr.contains("b.txt (session"), "{refused:?}");
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 3);
    env.ws(&ws, &["approve"]).ok();
    env.commit(&ws, "b").ok();
    // The user's line first, ws's trailer after it.
    let msg = message(&env, &ws);
    let (user, ours) = (msg.find("Signed-off-by: User").unwrap(), msg.find(&format!("Ws-Session: {id}")).unwrap());
    assert!(user < ours, "{msg}");

    let out = env.ws(&ws, &["hooks", "uninstall"]).ok();
    assert_eq!(out.stderr.matches("the previous hook is back").count(), 2, "{}", out.stderr);
    assert_eq!(hook_files(&hooks), before, "uninstall restores the hooks exactly (bytes and modes)");
    env.ws(&ws, &["hooks", "uninstall"]).ok();
    assert_eq!(hook_files(&hooks), before);
}

#[test]
fn core_hooks_path_is_where_the_hooks_go() {
    let env = Env::new();
    let ws = repo(&env, "repo");
    git_ok(&env, &ws, &["config", "core.hooksPath", "tools/hooks"]);
    std::fs::create_dir_all(ws.join("tools/hooks")).unwrap();
    let sub = ws.join("deep/dir");
    std::fs::create_dir_all(&sub).unwrap();
    let out = env.ws(&sub, &["hooks", "install"]).ok();
    assert!(out.stderr.contains("puts the hooks in the work tree"), "{}", out.stderr);
    assert!(ws.join("tools/hooks/pre-commit").exists() && ws.join("tools/hooks/prepare-commit-msg").exists());
    assert!(!ws.join(".git/hooks/pre-commit").exists());
    git_ok(&env, &ws, &["add", "tools"]);
    env.commit(&ws, "hooks").ok();

    env.session(&ws, "echo agent > f").ok();
    git_ok(&env, &ws, &["add", "f"]);
    assert_ne!(env.commit(&ws, "agent").code, 0, "the hook in core.hooksPath ran and refused");
    env.ws(&ws, &["approve"]).ok();
    env.commit(&ws, "agent").ok();

    env.ws(&ws, &["hooks", "uninstall"]).ok();
    assert_eq!(std::fs::read_dir(ws.join("tools/hooks")).unwrap().count(), 0);
}

#[test]
fn a_linked_worktree_shares_the_hooks_and_has_its_own_sessions() {
    let env = Env::new();
    let main = repo(&env, "main");
    let wt = env.tmp.path().join("wt");
    git_ok(&env, &main, &["worktree", "add", "-q", wt.to_str().unwrap()]);
    env.ws(&wt, &["hooks", "install"]).ok();
    assert!(main.join(".git/hooks/pre-commit").exists(), "worktrees use the common hooks directory");

    env.session(&wt, "echo agent > f").ok();
    git_ok(&env, &wt, &["add", "f"]);
    let refused = env.commit(&wt, "agent");
    assert!(refused.code != 0 && refused.stderr.contains("  f (session"), "{refused:?}");

    // The main checkout has no session: the same path commits there.
    write(main.join("f"), "agent\n");
    git_ok(&env, &main, &["add", "f"]);
    env.commit(&main, "in main").ok();

    // Approving does not touch the index; a commit that skips pre-commit
    // still gets its trailer from prepare-commit-msg.
    env.ws(&wt, &["approve"]).ok();
    git_ok(&env, &wt, &["commit", "-q", "--no-verify", "-m", "agent"]);
    assert!(message(&env, &wt).contains("Ws-Session:"), "{}", message(&env, &wt));
}

#[test]
fn a_running_session_holds_commits_until_it_ends() {
    let env = Env::new();
    let ws = repo(&env, "repo");
    env.ws(&ws, &["hooks", "install"]).ok();
    // Staged before the session: a file written during it would be one of
    // its changes (the snapshot diff cannot tell who wrote it).
    write(ws.join("mine.txt"), "mine\n");
    git_ok(&env, &ws, &["add", "mine.txt"]);
    let go = env.tmp.path().join("go");
    let script = format!("echo agent > f; while [ ! -e {} ]; do sleep 0.05; done", go.display());
    let running = env.command(&ws, &["session", "start", "--", "sh", "-c", &script]).spawn().unwrap();
    let mut running = scopeguard(running);
    while !ws.join("f").exists() {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let refused = env.commit(&ws, "mine");
    assert!(refused.code != 0 && refused.stderr.contains("is still running"), "{refused:?}");
    std::fs::write(&go, "").unwrap();
    assert!(running.0.wait().unwrap().success());
    // Positive control: once it ended, the same commit goes through.
    env.commit(&ws, "mine").ok();
}

/// Kills the session if the test fails before it ends.
struct Guard(std::process::Child);

fn scopeguard(c: std::process::Child) -> Guard {
    Guard(c)
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_submodule_commit_is_checked_against_the_superprojects_sessions() {
    let env = Env::new();
    let upstream = repo(&env, "upstream");
    let sup = repo(&env, "super");
    git_ok(&env, &sup, &["submodule", "add", "-q", upstream.to_str().unwrap(), "sub"]);
    git_ok(&env, &sup, &["commit", "-q", "-m", "add sub"]);
    let sub = sup.join("sub");
    let out = env.ws(&sub, &["hooks", "install"]).ok();
    assert!(out.stderr.contains(".git/modules/sub/hooks/pre-commit"), "{}", out.stderr);

    // The session ran on the superproject and wrote into the submodule.
    let id = session_id(&env.session(&sup, "echo agent > sub/f").ok());
    git_ok(&env, &sub, &["add", "f"]);
    let refused = env.commit(&sub, "agent");
    assert!(refused.code != 0 && refused.stderr.contains("  f (session"), "{refused:?}");
    env.ws(&sup, &["approve"]).ok();
    env.commit(&sub, "agent").ok();
    assert!(message(&env, &sub).contains(&format!("Ws-Session: {id}")), "{}", message(&env, &sub));
}

#[test]
fn a_staged_secret_is_refused_by_hash_and_never_printed() {
    let env = Env::new();
    let ws = repo(&env, "repo");
    let secret = "sk-test-Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5";
    let path = env.home.join(".local/share/ws/secret-fingerprints.json");
    let mut file = ws_hooks::FingerprintFile::load(&path).unwrap();
    file.add(ws_hooks::Fingerprint::of("ANTHROPIC_API_KEY", secret.as_bytes()));
    file.save(&path).unwrap();
    assert!(!std::fs::read_to_string(&path).unwrap().contains(secret));
    env.ws(&ws, &["hooks", "install"]).ok();

    // Positive control: the same file without the secret commits.
    write(ws.join("config.env"), "# settings\nMODEL=opus\nKEY=changeme\n");
    git_ok(&env, &ws, &["add", "config.env"]);
    env.commit(&ws, "config").ok();

    write(ws.join("config.env"), format!("# settings\nMODEL=opus\nKEY={secret}\n"));
    git_ok(&env, &ws, &["add", "config.env"]);
    let before = head(&env, &ws);
    let refused = env.commit(&ws, "leak");
    assert_ne!(refused.code, 0, "{refused:?}");
    assert!(refused.stderr.contains("config.env, line 3: the secret `ANTHROPIC_API_KEY`"), "{}", refused.stderr);
    assert!(!refused.stderr.contains(secret) && !refused.stdout.contains(secret));
    assert_eq!(head(&env, &ws), before);
    // Staged, then taken out of the work tree only: what is staged counts.
    write(ws.join("config.env"), "# settings\nMODEL=opus\nKEY=changeme\n");
    let refused = env.commit(&ws, "leak");
    assert!(refused.code != 0 && refused.stderr.contains("ANTHROPIC_API_KEY"), "{refused:?}");
    write(ws.join("config.env"), format!("# settings\nMODEL=opus\nKEY={secret}\n"));
    // `git commit -a` stages through a temporary index: still seen.
    git_ok(&env, &ws, &["reset", "-q"]);
    assert_ne!(env.git(&ws, &["commit", "-q", "-a", "-m", "leak"]).code, 0);
    assert!(!stores(&env).exists(), "checking secrets made no store");
}

#[test]
fn a_hook_whose_ws_binary_is_gone_says_so_and_refuses() {
    let env = Env::new();
    let ws = repo(&env, "repo");
    let bin = env.dir("bin").join("ws");
    if std::fs::hard_link(env!("CARGO_BIN_EXE_ws"), &bin).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_ws"), &bin).unwrap();
    }
    let mut install = Command::new(&bin);
    install.args(["hooks", "install"]).current_dir(&ws).env_clear().env("HOME", &env.home).env("PATH", "/usr/bin:/bin");
    env.run(install).ok();
    assert!(std::fs::read_to_string(ws.join(".git/hooks/pre-commit")).unwrap().contains(bin.to_str().unwrap()));
    write(ws.join("a.txt"), "a\n");
    git_ok(&env, &ws, &["add", "a.txt"]);
    std::fs::remove_file(&bin).unwrap();
    let refused = env.commit(&ws, "a");
    assert_ne!(refused.code, 0);
    assert!(refused.stderr.contains("which is not there any more"), "{}", refused.stderr);
    assert!(refused.stderr.contains("ws hooks install"), "{}", refused.stderr);
    // Installing with a ws that exists repairs it.
    env.ws(&ws, &["hooks", "install"]).ok();
    env.commit(&ws, "a").ok();
}
