//! `ws review` driven in a real terminal: tmux runs it in a pane of a
//! given size, keys go in with `send-keys`, the screen comes back with
//! `capture-pane`. Marks, search, quitting with and without applying, a
//! resize, NO_COLOR, and a session's file whose name and content are full
//! of escape sequences.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::harness::*;

/// A tmux server of the test's own, with one pane running `ws review`.
struct Tui {
    socket: PathBuf,
    rc: PathBuf,
    stderr: PathBuf,
}

impl Tui {
    fn start(env: &Env, cwd: &Path, args: &str, size: (u16, u16), no_color: bool) -> Tui {
        let dir = env.tmp.path();
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let (socket, rc, stderr) =
            (dir.join(format!("tmux-{n}.sock")), dir.join(format!("rc-{n}")), dir.join(format!("stderr-{n}")));
        let color = if no_color { "NO_COLOR=1" } else { "" };
        let script = format!(
            "env -i HOME='{}' PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin LANG=C.UTF-8 TERM=\"$TERM\" {color} '{}' review {args} 2>'{}'; echo $? > '{}'",
            env.home.display(),
            env!("CARGO_BIN_EXE_ws"),
            stderr.display(),
            rc.display()
        );
        let t = Tui { socket, rc, stderr };
        let (w, h) = (size.0.to_string(), size.1.to_string());
        let c = cwd.to_str().unwrap();
        t.tmux(&["-f", "/dev/null", "new-session", "-d", "-x", &w, "-y", &h, "-c", c, &script]);
        // OSC 52 would set a tmux buffer: the spoofing test checks none appears.
        t.tmux(&["set-option", "-g", "set-clipboard", "on"]);
        t
    }

    fn tmux(&self, args: &[&str]) -> String {
        let o = Command::new("tmux").arg("-S").arg(&self.socket).args(args).output().expect("tmux");
        assert!(o.status.success(), "tmux {args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Each key on its own, a moment apart: an Esc followed at once by a
    /// letter reads as Alt+letter, in any terminal.
    fn keys(&self, keys: &[&str]) {
        for k in keys {
            self.tmux(&["send-keys", "-t", "0", k]);
            std::thread::sleep(Duration::from_millis(120));
        }
    }

    fn text(&self, s: &str) {
        self.tmux(&["send-keys", "-t", "0", "-l", s]);
        std::thread::sleep(Duration::from_millis(120));
    }

    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", "0"])
    }

    /// The screen with its attributes as escape sequences (`-e`).
    fn screen_with_attributes(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-e", "-t", "0"])
    }

    #[track_caller]
    fn wait_for(&self, what: &dyn Fn(&str) -> bool, why: &str) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if what(&s) {
                return s;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "waited for {why}; the screen:\n{s}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    #[track_caller]
    fn wait_exit(&self) -> (i32, String) {
        let start = Instant::now();
        loop {
            if let Ok(rc) = std::fs::read_to_string(&self.rc)
                && !rc.is_empty()
            {
                let stderr = std::fs::read_to_string(&self.stderr).unwrap_or_default();
                return (rc.trim().parse().unwrap(), stderr);
            }
            assert!(start.elapsed() < Duration::from_secs(20), "ws review did not exit:\n{}", self.screen());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tui {
    fn drop(&mut self) {
        let _ = Command::new("tmux").arg("-S").arg(&self.socket).arg("kill-server").output();
    }
}

fn lines(n: usize) -> String {
    (1..=n).map(|i| format!("line {i}\n")).collect()
}

/// A workspace and a session that modified a.txt in two places (two
/// hunks), b.txt and c.txt, and created new.txt.
fn four_changes(env: &Env) -> PathBuf {
    let ws = env.dir("proj");
    write(ws.join("a.txt"), lines(30));
    write(ws.join("b.txt"), "b\n");
    write(ws.join("c.txt"), "c\n");
    let out = env.session(
        &ws,
        "sed -i 's/^line 2$/two/; s/^line 20$/twenty/' a.txt; echo more >> b.txt; echo more >> c.txt; echo new > new.txt",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    ws
}

/// The marks of the main test: hunk 2 of a.txt to roll back, b.txt to
/// approve, then a search for `c.t` and c.txt to roll back; each step
/// checked on the screen.
fn mark_everything(t: &Tui) {
    let s = t.wait_for(&|s| s.contains("diff --ws a/a.txt"), "the first screen");
    let rows: Vec<&str> = s.lines().skip(1).take(4).collect();
    assert_eq!(rows, [">  M session a.txt", "   M session b.txt", "   M session c.txt", "   A session new.txt"]);
    assert!(s.contains("@@ -1,5 +1,5 @@") && s.contains("+two"), "{s}");
    t.keys(&["Enter", "j", "r"]);
    t.wait_for(
        &|s| s.contains(">r@@ -17,7 +17,7 @@") && s.lines().nth(1) == Some(">~ M session a.txt"),
        "hunk 2 marked",
    );
    t.keys(&["Escape", "j", "a"]);
    t.wait_for(&|s| s.contains(" a M session b.txt") && s.contains(">  M session c.txt"), "b.txt marked");
    t.keys(&["g", "/"]);
    t.text("c.t");
    t.wait_for(&|s| s.lines().last().is_some_and(|l| l.starts_with("/c.t")), "the search typed");
    t.keys(&["Enter"]);
    t.wait_for(&|s| s.contains(">  M session c.txt") && s.contains("diff --ws a/c.txt"), "the search found c.txt");
    t.keys(&["r"]);
    t.wait_for(&|s| s.contains(" r M session c.txt") && s.contains(">  A session new.txt"), "c.txt marked");
    t.keys(&["q"]);
    t.wait_for(&|s| s.contains("Apply: approve 1 path · roll back 1 path, 1 hunk?"), "the question");
}

#[test]
fn review_quit_without_applying_changes_nothing_and_with_applying_exactly_the_marks() {
    let env = Env::new();
    let ws = four_changes(&env);
    let before = capture(&ws, &no_skip);
    let json_before = env.ws(&ws, &["diff", "--json"]).ok().stdout;

    let t = Tui::start(&env, &ws, "", (80, 24), true);
    mark_everything(&t);
    // Esc goes back to the screen; search again with n; then leave, no.
    t.keys(&["Escape"]);
    t.wait_for(&|s| !s.contains("Apply:"), "the question gone");
    t.keys(&["n"]);
    t.wait_for(&|s| s.contains(">r M session c.txt"), "n found c.txt again");
    t.keys(&["q"]);
    t.wait_for(&|s| s.contains("Apply:"), "the question again");
    // NO_COLOR: the screen holds no attribute at all.
    let attrs = t.screen_with_attributes();
    assert!(!attrs.contains('\u{1b}'), "NO_COLOR, yet: {attrs:?}");
    t.keys(&["n"]);
    let (code, stderr) = t.wait_exit();
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("nothing applied"), "{stderr}");
    assert_same_tree(&before, &capture(&ws, &no_skip));
    assert_eq!(env.ws(&ws, &["diff", "--json"]).ok().stdout, json_before, "the review record changed");

    let t = Tui::start(&env, &ws, "", (80, 24), true);
    mark_everything(&t);
    t.keys(&["y"]);
    let (code, stderr) = t.wait_exit();
    assert_eq!(code, 0, "{stderr}");
    let want_a = lines(30).replace("line 2\n", "two\n");
    assert_eq!(std::fs::read_to_string(ws.join("a.txt")).unwrap(), want_a, "only hunk 2 rolled back");
    assert_eq!(std::fs::read_to_string(ws.join("b.txt")).unwrap(), "b\nmore\n");
    assert_eq!(std::fs::read_to_string(ws.join("c.txt")).unwrap(), "c\n");
    assert_eq!(std::fs::read_to_string(ws.join("new.txt")).unwrap(), "new\n");
    let v: serde_json::Value = serde_json::from_str(&env.ws(&ws, &["diff", "--json"]).ok().stdout).unwrap();
    let changes = v["changes"].as_array().unwrap();
    let states: Vec<(&str, &str)> =
        changes.iter().map(|c| (c["path"].as_str().unwrap(), c["state"].as_str().unwrap())).collect();
    assert_eq!(states, [("a.txt", "pending"), ("b.txt", "approved"), ("c.txt", "rolled_back"), ("new.txt", "pending")]);
    assert_eq!(changes[0]["hunks"].as_array().unwrap().len(), 1, "hunk 1 of a.txt stays pending");
}

#[test]
fn review_rolls_back_one_hunk_and_approves_another_of_the_same_file() {
    let env = Env::new();
    let ws = env.dir("proj");
    write(ws.join("a.txt"), lines(30));
    let out = env.session(&ws, "sed -i 's/^line 2$/two/; s/^line 15$/fifteen/; s/^line 28$/twenty-eight/' a.txt");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let t = Tui::start(&env, &ws, "", (80, 24), true);
    t.wait_for(&|s| s.contains("diff --ws a/a.txt"), "the first screen");
    // Hunk 1 to roll back, hunk 2 to approve; hunk 3 left pending.
    t.keys(&["Enter", "r", "a"]);
    t.wait_for(
        &|s| s.contains("to approve 1 hunk · roll back 1 hunk") && s.contains("> @@ -25,6"),
        "hunks 1, 2 marked",
    );
    t.keys(&["k"]);
    t.wait_for(&|s| s.contains(">a@@ -12,7 +12,7 @@"), "hunk 2 shown marked");
    t.keys(&["q"]);
    t.wait_for(&|s| s.contains("Apply: approve 1 hunk · roll back 1 hunk?"), "the question");
    t.keys(&["y"]);
    let (code, stderr) = t.wait_exit();
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("rolled back hunk 1 of a.txt") && stderr.contains("approved 1 hunk of a.txt"), "{stderr}");
    let want = lines(30).replace("line 15\n", "fifteen\n").replace("line 28\n", "twenty-eight\n");
    assert_eq!(std::fs::read_to_string(ws.join("a.txt")).unwrap(), want);
    // What stays pending is hunk 3 alone.
    let diff = env.ws(&ws, &["diff"]).ok().stdout;
    assert!(diff.contains("+twenty-eight") && !diff.contains("+fifteen") && !diff.contains("+two"), "{diff}");
}

#[test]
fn review_of_a_file_changed_after_the_session_reports_the_conflict_and_keeps_it() {
    let env = Env::new();
    let ws = four_changes(&env);
    write(ws.join("c.txt"), "mine\n");
    let t = Tui::start(&env, &ws, "", (80, 24), true);
    t.wait_for(&|s| s.contains("diff --ws a/a.txt"), "the first screen");
    t.keys(&["G", "k", "r", "q"]);
    t.wait_for(&|s| s.contains("Apply: roll back 1 path?"), "the question");
    t.keys(&["y"]);
    let (code, stderr) = t.wait_exit();
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("conflict: c.txt") && stderr.contains("--force"), "{stderr}");
    assert_eq!(std::fs::read_to_string(ws.join("c.txt")).unwrap(), "mine\n");
}

#[test]
fn review_resizes_between_list_above_and_list_beside_the_diff() {
    let env = Env::new();
    let ws = four_changes(&env);
    let t = Tui::start(&env, &ws, "", (80, 24), false);
    let s = t.wait_for(&|s| s.contains("diff --ws a/a.txt"), "the first screen");
    assert!(!s.lines().nth(1).unwrap().contains("diff --ws"), "narrow: the diff is below\n{s}");
    // With colour, the screen has attributes (the check NO_COLOR passes is real).
    assert!(t.screen_with_attributes().contains('\u{1b}'), "no attributes with colour");
    t.tmux(&["resize-window", "-t", "0", "-x", "120", "-y", "30"]);
    // Both lines in one wait: under load, tmux can be captured between
    // the redraw of one line and the next.
    let wide = |s: &str| {
        s.lines().nth(2).is_some_and(|l| l.contains("diff --ws a/a.txt"))
            && s.lines().nth(1).is_some_and(|l| l.starts_with(">  M session a.txt"))
    };
    t.wait_for(&wide, "the wide layout: the list beside the diff");
    t.keys(&["q"]);
    assert_eq!(t.wait_exit().0, 0);
}

#[test]
fn review_needs_a_terminal_and_says_what_to_use_instead() {
    let env = Env::new();
    let ws = four_changes(&env);
    let out = env.ws(&ws, &["review"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("ws diff") && out.stderr.contains("-p"), "{}", out.stderr);
}

/// The agent names a file and fills it with what would drive a terminal:
/// clear the screen (CSI 2J), move the cursor (CSI H, CSI A) and erase a
/// line, set the clipboard (OSC 52, which tmux turns into a buffer), and
/// the 8-bit CSI (C1 0x9B). The review shows all of it as visible escapes
/// and the screen keeps its shape.
#[test]
fn review_shows_a_file_full_of_escape_sequences_inert() {
    let env = Env::new();
    let ws = env.dir("proj");
    write(ws.join("a.txt"), "fine\n");
    let evil = r"\033[2J\033[H\033]52;c;cHduZWQ=\007\302\233K";
    let content = r"hidden: sh\302\233K\033[1A\033[2K\033[2J\033[H\033]52;c;cHduZWQ=\007";
    let script = format!("printf '{content}\\n' > \"$(printf 'x{evil}y')\"; echo ok >> a.txt");
    let out = env.session(&ws, &script);
    assert_eq!(out.code, 0, "{}", out.stderr);

    // Positive control: the same bytes, shown raw in a tmux pane, set a buffer.
    assert!(
        std::fs::read_dir(&ws).unwrap().any(|e| e.unwrap().file_name().as_encoded_bytes().starts_with(b"x\x1b[2J")),
        "the session's file"
    );
    let control = Tui::start(&env, &ws, "", (80, 24), true);
    control.wait_for(&|s| s.contains("diff --ws"), "the first screen");
    control.tmux(&["new-window", "-d", "-c", ws.to_str().unwrap(), "cat x*; sleep 30"]);
    let start = Instant::now();
    while control.tmux(&["list-buffers"]).is_empty() {
        assert!(start.elapsed() < Duration::from_secs(10), "OSC 52 did not reach tmux's clipboard: no control");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(control);

    let t = Tui::start(&env, &ws, "", (80, 24), false);
    let s = t.wait_for(&|s| s.contains("diff --ws a/a.txt"), "the first screen");
    assert!(s.starts_with("ws review · session "), "the header was overwritten:\n{s}");
    let shown_name = r#""x\033[2J\033[H\033]52;c;cHduZWQ=\a\302\233Ky""#;
    assert_eq!(s.lines().nth(2).unwrap().trim_end(), format!("   A session {shown_name}"), "{s}");
    t.keys(&["j"]);
    let s = t.wait_for(&|s| s.contains("+hidden: sh"), "the evil file's diff");
    assert!(s.contains(r"  +hidden: sh\u{009B}K\x1b[1A\x1b[2K\x1b[2J\x1b[H\x1b]52;c;cHduZWQ=\x07"), "{s}");
    assert!(s.starts_with("ws review · session "), "the header was overwritten:\n{s}");
    assert!(s.lines().last().unwrap().starts_with("j/k move"), "the footer moved:\n{s}");
    assert_eq!(s.lines().count(), 24, "{s}");
    t.keys(&["?"]);
    t.wait_for(&|s| s.contains("ws review: keys"), "help");
    assert_eq!(t.tmux(&["list-buffers"]), "", "OSC 52 reached the clipboard");
    t.keys(&["x", "q"]);
    assert_eq!(t.wait_exit().0, 0);
}

#[test]
fn review_picks_its_session_as_ws_diff_does() {
    let env = Env::new();
    let ws = env.dir("proj");
    write(ws.join("x.txt"), "x\n");
    write(ws.join("y.txt"), "y\n");
    let first = env.ws(&ws, &["session", "start", "--name", "one", "--", "sh", "-c", "echo 1 >> x.txt"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(env.session(&ws, "echo 2 >> y.txt").code, 0);
    // The first screen, drawn without a terminal (what the benchmark times).
    let newest = env.ws(&ws, &["review", "--first-frame"]).ok().stdout;
    assert!(newest.lines().nth(1).unwrap().starts_with(">  M session y.txt"), "{newest}");
    assert!(newest.contains("+2"), "{newest}");
    let named = env.ws(&ws, &["review", "--first-frame", "one"]).ok().stdout;
    assert!(named.lines().nth(1).unwrap().starts_with(">  M session x.txt"), "{named}");
    assert_eq!(named.lines().count(), 24);
    let filtered = env.ws(&ws, &["review", "--first-frame", "one", "--", "y.txt"]).ok().stdout;
    assert!(filtered.contains("0 pending") && filtered.contains("nothing pending review"), "{filtered}");
    let unknown = env.ws(&ws, &["review", "--first-frame", "nosuch"]);
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
}

/// A file the session moved is one row, `R`, naming both paths, with the
/// rename's patch; rolling it back there brings the old path back and takes
/// the new one away.
#[test]
fn review_shows_a_rename_as_one_row_and_rolls_it_back_whole() {
    let env = Env::new();
    let ws = env.dir("proj");
    write(ws.join("old.txt"), lines(20));
    write(ws.join("other.txt"), "o\n");
    let out = env.session(&ws, "mv old.txt new.txt && sed -i 's/^line 3$/three/' new.txt && echo x >> other.txt");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let before_new = std::fs::read(ws.join("new.txt")).unwrap();
    let t = Tui::start(&env, &ws, "", (100, 24), true);
    let s = t.wait_for(&|s| s.contains("old.txt => new.txt"), "the rename's row");
    assert!(s.contains("R session old.txt => new.txt"), "{s}");
    assert!(s.contains("rename from old.txt") && s.contains("rename to new.txt") && s.contains("+three"), "{s}");
    assert!(!s.contains("D session old.txt"), "one row, not two: {s}");
    t.keys(&["r", "q"]);
    t.wait_for(&|s| s.contains("Apply: roll back 1 path?"), "the question");
    t.keys(&["y"]);
    let (code, stderr) = t.wait_exit();
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(std::fs::read_to_string(ws.join("old.txt")).unwrap(), lines(20));
    assert!(!ws.join("new.txt").exists(), "the new path stayed ({} bytes before)", before_new.len());
    assert_eq!(std::fs::read_to_string(ws.join("other.txt")).unwrap(), "o\nx\n", "only the rename was marked");
}
