//! The machine interface the Python SDK drives: `ws session start
//! --events-fd N` and `WS_MESSAGES=json`.

use std::path::Path;

use crate::harness::*;

/// `ws session start --events-fd 3 ARGS…` with descriptor 3 a file: (the
/// run, the lines written to 3).
fn start_with_events(env: &Env, ws: &Path, args: &[&str]) -> (Out, Vec<serde_json::Value>) {
    let events = env.tmp.path().join("events.jsonl");
    // sh -c SCRIPT WS ARGS…: the script runs ws with descriptor 3 open.
    let mut c = std::process::Command::new("sh");
    c.arg("-c")
        .arg(r#"exec "$0" session start --events-fd 3 "$@" 3>"$EVENTS""#)
        .arg(env!("CARGO_BIN_EXE_ws"))
        .args(args)
        .current_dir(ws)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .env("HOME", &env.home)
        .env("LANG", "C.UTF-8")
        .env("NO_COLOR", "1")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("EVENTS", &events)
        .stdin(std::process::Stdio::null());
    let out = env.run(c);
    let text = std::fs::read_to_string(&events).unwrap_or_default();
    let lines = text.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    (out, lines)
}

#[test]
fn session_start_events_fd_streams_the_log_then_the_session_and_nothing_on_stdout() {
    let env = Env::new();
    let ws = env.dir("proj");
    write(ws.join("a"), "a");
    let (out, lines) = start_with_events(&env, &ws, &["--", "sh", "-c", "echo b > a; echo from-the-command"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // stdout is the command's alone, stderr has nothing of ws's.
    assert_eq!(out.stdout, "from-the-command\n");
    assert!(!out.stderr.contains("ws:"), "{}", out.stderr);
    let records: Vec<&serde_json::Value> = lines.iter().filter(|l| l.get("seq").is_some()).collect();
    let session = lines.last().unwrap().get("session").expect("the last line is the session");
    let id = session["id"].as_str().unwrap();
    assert_eq!(session["state"], "pending");
    assert_eq!(session["exit_code"], 0);
    assert_eq!(session["changes"]["modified"], 1);
    // The records are exactly `ws log --json`'s lines.
    let log = env.ws(&ws, &["log", id, "--json"]).ok();
    let logged: Vec<serde_json::Value> = log.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.into_iter().cloned().collect::<Vec<_>>(), logged);
    // ws's own words came as messages, the summary among them.
    assert!(lines.iter().any(|l| l["message"]["text"].as_str().is_some_and(|t| t.contains(&format!("session {id}")))));
}

#[test]
fn session_start_events_fd_ends_with_the_error_and_its_kind() {
    let env = Env::new();
    let ws = env.dir("proj");
    write(ws.join("a"), "a");
    let (out, lines) = start_with_events(&env, &ws, &["--profile", "no-such", "--", "true"]);
    assert_eq!(out.code, 2);
    assert_eq!(out.stderr, "");
    let error = &lines.last().unwrap()["error"];
    assert_eq!(error["kind"], "bad_profile");
    assert_eq!(error["message"], "profile `no-such` not found");
    assert!(error["hint"].as_str().unwrap().contains("ws profile list"));
    let (out, lines) = start_with_events(&env, &ws, &["--", "no-such-command"]);
    assert_eq!(out.code, 127);
    assert_eq!(lines.last().unwrap()["error"]["kind"], "command_not_run");
}

#[test]
fn session_start_events_fd_refuses_a_descriptor_it_was_not_given() {
    let env = Env::new();
    let ws = env.dir("proj");
    let out = env.ws(&ws, &["session", "start", "--events-fd", "9", "--", "true"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--events-fd 9: not an open descriptor"), "{}", out.stderr);
    assert!(env.ws(&ws, &["session", "list", "--json"]).ok().stdout.trim() == "[]");
}

#[test]
fn json_messages_give_each_error_its_kind_for_every_command_after_a_session() {
    let env = Env::new();
    let ws = env.dir("proj");
    write(ws.join("a"), "a");
    env.session(&ws, "echo b > a").ok();
    let json = |args: &[&str]| {
        let mut c = env.command(&ws, args);
        c.env("WS_MESSAGES", "json");
        env.run(c)
    };
    let unknown = json(&["diff", "zzzz"]);
    assert_eq!(unknown.code, 2);
    let e: serde_json::Value = serde_json::from_str(unknown.stderr.trim()).unwrap();
    assert_eq!(e["error"]["kind"], "unknown_session");
    assert_eq!(e["error"]["message"], "no session matches `zzzz` in this workspace");
    write(ws.join("a"), "edited after");
    let conflict = json(&["rollback"]);
    assert_eq!(conflict.code, 3);
    let last: serde_json::Value = serde_json::from_str(conflict.stderr.lines().last().unwrap()).unwrap();
    assert_eq!(last["error"]["kind"], "conflict");
    assert_eq!(last["error"]["message"], "1 path was not rolled back");
    // Every line is an object: nothing for people in between.
    assert!(
        conflict.stderr.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "{}",
        conflict.stderr
    );
}
