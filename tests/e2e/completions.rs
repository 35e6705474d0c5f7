//! Shell completion and man pages: the script `ws completions bash` prints,
//! sourced into a real bash and called as bash calls it at a Tab, completes
//! subcommands and the ids and names of real sessions; the man pages render
//! with groff without a warning.

use std::path::Path;
use std::process::Command;

use crate::harness::*;

/// Sources the completion script into `bash` and completes `words` with the
/// cursor on the last word, as bash does at a Tab; returns COMPREPLY.
fn complete(env: &Env, cwd: &Path, script: &Path, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let cword = words.len() - 1;
    let cur = words[cword];
    let prev = if cword > 0 { words[cword - 1] } else { "" };
    let body = format!(
        "source '{}' || exit 99\n\
         complete -p ws >/dev/null || exit 98\n\
         COMP_WORDS=({}); COMP_CWORD={cword}; COMP_TYPE=9; COMP_LINE=\"${{COMP_WORDS[*]}}\"; COMP_POINT=${{#COMP_LINE}}\n\
         _clap_complete_ws ws '{cur}' '{prev}'\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        quoted.join(" ")
    );
    let mut c = Command::new("bash");
    c.args(["--norc", "--noprofile", "-c", &body])
        .current_dir(cwd)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", &env.home)
        .env("LANG", "C.UTF-8");
    let out = env.run(c);
    assert_eq!(out.code, 0, "bash completion failed: {}", out.stderr);
    out.stdout.lines().filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

fn bash_script(env: &Env, cwd: &Path) -> std::path::PathBuf {
    let script = env.tmp.path().join("ws.bash");
    let out = env.ws(cwd, &["completions", "bash"]).ok();
    assert!(out.stdout.contains("WS_COMPLETE"), "{}", out.stdout);
    write(&script, out.stdout);
    script
}

fn session_ids(env: &Env, ws: &Path) -> Vec<String> {
    let list = env.ws(ws, &["session", "list", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    let all = v.as_array().or_else(|| v["sessions"].as_array()).expect("a list of sessions");
    all.iter().map(|s| s["id"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn bash_completes_subcommands_and_their_options() {
    let env = Env::new();
    let ws = env.dir("proj");
    let script = bash_script(&env, &ws);
    let mut se = complete(&env, &ws, &script, &["ws", "se"]);
    se.sort();
    assert_eq!(se, ["secret", "session"]);
    assert_eq!(complete(&env, &ws, &script, &["ws", "session", "st"]), ["start"]);
    assert_eq!(complete(&env, &ws, &script, &["ws", "diff", "--na"]), ["--name-status"]);
    assert_eq!(complete(&env, &ws, &script, &["ws", "completions", "fi"]), ["fish"]);
}

#[test]
fn bash_completes_session_ids_and_names_from_the_store() {
    let env = Env::new();
    let ws = env.dir("proj");
    write(ws.join("a"), "a\n");
    env.ws(&ws, &["session", "start", "--name", "refactor", "--", "sh", "-c", "echo b > b"]).ok();
    env.session(&ws, "echo c > c").ok();
    let ids = session_ids(&env, &ws);
    assert_eq!(ids.len(), 2, "{ids:?}");
    let script = bash_script(&env, &ws);

    // A prefix of one id completes to that id (unless both share it).
    let (first, second) = (&ids[0], &ids[1]);
    let shared = first.chars().zip(second.chars()).take_while(|(a, b)| a == b).count();
    let prefix = &first[..shared + 1];
    assert_eq!(complete(&env, &ws, &script, &["ws", "diff", prefix]), [first.as_str()]);
    assert_eq!(complete(&env, &ws, &script, &["ws", "log", prefix]), [first.as_str()]);
    assert_eq!(complete(&env, &ws, &script, &["ws", "audit", "verify", prefix]), [first.as_str()]);
    // An empty word offers every session (newest first) and its name.
    let all = complete(&env, &ws, &script, &["ws", "session", "show", ""]);
    assert_eq!(all[..3], [second.as_str(), first.as_str(), "refactor"], "{all:?}");
    // approve/rollback's first word may be a session or a path.
    assert_eq!(complete(&env, &ws, &script, &["ws", "approve", "ref"]), ["refactor"]);
    let rb = complete(&env, &ws, &script, &["ws", "rollback", ""]);
    assert!(rb.contains(first) && rb.iter().any(|c| c == "a" || c == "a "), "{rb:?}");
    // From a subdirectory the workspace is found as every command finds it.
    let sub = ws.join("src");
    std::fs::create_dir(&sub).unwrap();
    assert_eq!(complete(&env, &sub, &script, &["ws", "diff", prefix]), [first.as_str()]);
}

#[test]
fn completing_outside_a_workspace_creates_no_store() {
    let env = Env::new();
    let elsewhere = env.dir("elsewhere");
    let script = bash_script(&env, &elsewhere);
    // Positive control: the script answers here (subcommands complete).
    assert_eq!(complete(&env, &elsewhere, &script, &["ws", "dif"]), ["diff"]);
    assert!(complete(&env, &elsewhere, &script, &["ws", "diff", ""]).iter().all(|c| c.starts_with('-')));
    assert!(!env.home.join(".local/share/ws").exists(), "a Tab must not create a store");
}

#[test]
fn a_session_command_full_of_escapes_is_described_inertly() {
    let env = Env::new();
    let ws = env.dir("proj");
    write(ws.join("a"), "a\n");
    env.ws(&ws, &["session", "start", "--", "sh", "-c", "true", "\x1b]52;c;cHduZWQ=\x07\x1b[2J"]).ok();
    let id = session_ids(&env, &ws).remove(0);
    // fish shows a candidate's description: the session's state and command.
    let mut c = env.command(&ws, &["--", "ws", "diff", ""]);
    c.env("WS_COMPLETE", "fish");
    let out = env.run(c);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let line = out.stdout.lines().find(|l| l.starts_with(&id)).unwrap_or_else(|| panic!("{}", out.stdout));
    assert!(line.contains("closed: sh -c true "), "{line:?}");
    assert!(!line.contains('\x1b') && !line.contains('\x07'), "{line:?}");
}

#[test]
fn every_shell_gets_a_script_that_calls_ws_back() {
    let env = Env::new();
    let ws = env.dir("proj");
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = env.ws(&ws, &["completions", shell]).ok();
        assert!(out.stdout.contains("WS_COMPLETE"), "{shell}: {}", out.stdout);
        assert!(out.stdout.contains(env!("CARGO_BIN_EXE_ws")), "{shell}: {}", out.stdout);
    }
    let bad = env.ws(&ws, &["completions", "tcsh"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
}

/// groff's output of a page, asserting it warned about nothing.
fn render(page: &Path) -> String {
    let o = Command::new("groff").args(["-man", "-Tutf8", "-ww", "-rLL=100n"]).arg(page).output().expect("groff");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && stderr.is_empty(), "groff on {}: {stderr}", page.display());
    // Strip the overstrike bold and underline groff makes for a terminal.
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let mut plain = String::new();
    for c in text.chars() {
        if c == '\u{8}' {
            plain.pop();
        } else {
            plain.push(c);
        }
    }
    plain
}

#[test]
fn man_pages_render_with_groff() {
    let env = Env::new();
    let ws = env.dir("proj");
    let page = env.tmp.path().join("ws.1");
    write(&page, env.ws(&ws, &["man"]).ok().stdout);
    let top = render(&page);
    assert!(top.contains("NAME") && top.contains("ws - Run an AI coding agent"), "{top}");
    assert!(top.contains("session") && top.contains("rollback") && top.contains("completions"), "{top}");

    let dir = env.tmp.path().join("man1");
    env.ws(&ws, &["man", "--dir", dir.to_str().unwrap()]).ok();
    let start = render(&dir.join("ws-session-start.1"));
    assert!(start.contains("ws-session-start") && start.contains("--profile"), "{start}");
    assert!(start.contains("--allow-degraded"), "{start}");
    let pages = std::fs::read_dir(&dir).unwrap().count();
    assert!(pages >= 30, "one page per command, got {pages}");
}
