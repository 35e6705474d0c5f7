//! Terminal programs in a real terminal: a tmux server of the test's own
//! (its own socket, so nothing of the machine's tmux is touched), driven by
//! send-keys and read by capture-pane.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::unique;

/// A tmux server of the test's own, killed on drop.
pub struct Tmux {
    socket: String,
}

impl Tmux {
    pub fn start(cwd: &Path, command: &str) -> Tmux {
        let socket = unique("tmux");
        let st = Command::new("tmux")
            .args(["-L", &socket, "-f", "/dev/null", "new-session", "-d", "-s", "t", "-x", "120", "-y", "40"])
            .arg("-c")
            .arg(cwd)
            .arg(command)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("TERM", "xterm-256color")
            .status()
            .expect("tmux (test.sh installs it)");
        assert!(st.success(), "tmux new-session failed");
        Tmux { socket }
    }

    /// The pane with its scrollback.
    pub fn screen(&self) -> String {
        let o = Command::new("tmux").args(["-L", &self.socket, "capture-pane", "-p", "-S", "-200", "-t", "t"]).output();
        o.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default()
    }

    pub fn keys(&self, keys: &[&str]) {
        for k in keys {
            let st = Command::new("tmux").args(["-L", &self.socket, "send-keys", "-t", "t", k]).status().unwrap();
            assert!(st.success());
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    pub fn text(&self, text: &str) {
        let st = Command::new("tmux").args(["-L", &self.socket, "send-keys", "-t", "t", "-l", text]).status().unwrap();
        assert!(st.success());
    }

    /// Waits until the pane shows `what`.
    #[track_caller]
    pub fn wait_for(&self, what: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.screen();
            if s.contains(what) {
                return s;
            }
            assert!(Instant::now() < deadline, "{what:?} never appeared; the pane:\n{s}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Presses `keys` until the pane shows `text`: a key sent while a
    /// screen is still being drawn can be lost.
    #[track_caller]
    pub fn press_until(&self, keys: &[&str], text: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            self.keys(keys);
            for _ in 0..10 {
                std::thread::sleep(Duration::from_millis(200));
                let s = self.screen();
                if s.contains(text) {
                    std::thread::sleep(Duration::from_millis(700));
                    return s;
                }
            }
            assert!(Instant::now() < deadline, "{text:?} never appeared; the pane:\n{}", self.screen());
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["-L", &self.socket, "kill-server"]).status();
    }
}
