//! Real repositories made by the machine's git, for tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A repository in a temporary directory, with git run in a clean environment.
pub struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    pub fn new() -> Repo {
        let repo = Repo { dir: tempfile::tempdir().unwrap() };
        std::fs::create_dir(repo.path()).unwrap();
        repo.git(&["init", "-q", "-b", "main"]);
        repo
    }

    /// The work tree's top.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    pub fn index(&self) -> PathBuf {
        self.path().join(".git/index")
    }

    pub fn command(&self, dir: &Path, args: &[&str]) -> Command {
        let mut c = Command::new("git");
        c.args(args)
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
            .stdin(Stdio::null());
        c
    }

    fn run(mut c: Command, args: &[&str]) -> std::process::Output {
        let out = c.output().unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out
    }

    pub fn git_bytes(&self, args: &[&str]) -> Vec<u8> {
        Repo::run(self.command(&self.path(), args), args).stdout
    }

    pub fn git(&self, args: &[&str]) -> String {
        String::from_utf8(self.git_bytes(args)).unwrap()
    }

    /// Runs git in `dir` (a linked worktree, a submodule).
    pub fn git_in(&self, dir: &Path, args: &[&str]) -> String {
        String::from_utf8(Repo::run(self.command(dir, args), args).stdout).unwrap()
    }

    pub fn git_status(&self, args: &[&str]) -> bool {
        self.command(&self.path(), args).output().unwrap().status.success()
    }

    pub fn git_stdin(&self, args: &[&str], input: &[u8]) -> String {
        use std::io::Write;
        let mut c = self.command(&self.path(), args);
        let mut child = c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn write(&self, rel: &str, content: &str) {
        let path = self.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    pub fn chmod_x(&self, rel: &str) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(self.path().join(rel), std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    pub fn symlink(&self, rel: &str, target: &str) {
        std::os::unix::fs::symlink(target, self.path().join(rel)).unwrap();
    }
}

pub fn hex(oid: &[u8; 20]) -> String {
    crate::odb::hex(oid)
}
