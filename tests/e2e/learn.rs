//! `ws learn` and the profile lines suggested for denials: a real workload
//! (a git clone over the file transport and a request to a loopback HTTP
//! server) learned, then run under the learned profile with no denial, and a
//! variant that also reads ~/.ssh denied, with the line that would allow it.

use std::path::Path;

use crate::harness::*;

fn records(env: &Env, ws: &Path) -> Vec<serde_json::Value> {
    let log = env.ws(ws, &["log", "--json"]).ok();
    log.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn a_learned_profile_runs_its_workload_with_no_denial_and_nothing_more() {
    assert!(is_root(), "learning what a command opens needs root (fanotify), and so do audit records");
    let _audit = AuditOn::new();
    let env = Env::protected();
    let upstream_repo = env.dir("upstream");
    git_repo(&upstream_repo);
    write(upstream_repo.join("lib.rs"), "pub fn f() {}\n");
    commit_all(&upstream_repo, "first");
    write(env.home.join(".ssh/id_ed25519"), "SECRET-SSH-KEY\n");
    let server = Upstream::start();
    let workload = format!(
        "git clone -q file://{} clone && curl -sf http://127.0.0.1:{}/ping > got.txt",
        upstream_repo.display(),
        server.port
    );
    let learned = env.tmp.path().join("learned.toml");
    let learned_s = learned.to_str().unwrap();

    // Learn.
    let ws1 = env.dir("ws1");
    let out = env.ws(&ws1, &["learn", "--out", learned_s, "--", "sh", "-c", &workload]).ok();
    assert!(ws1.join("clone/lib.rs").exists() && ws1.join("got.txt").exists(), "control: {out:?}");
    let text = std::fs::read_to_string(&learned).unwrap();
    let upstream_entry = format!("\"{}\"", upstream_repo.display());
    assert!(
        text.contains(&format!("{upstream_entry},  # ")),
        "the clone's source is learned as one directory:\n{text}"
    );
    assert!(text.contains(&format!("\"127.0.0.1:{}\",  # 1 request", server.port)), "{text}");
    assert!(text.contains("\"127.0.0.1\",  # 1 connection; loopback"), "{text}");
    assert!(text.starts_with("# Learned by `ws learn`") && text.contains("extends = \"default\""), "{text}");
    for never in ["\"/\"", "\"$HOME\"", ".ssh", "\"/var\"", "\"/var/tmp\""] {
        assert!(!text.contains(never), "{never} in the learned profile:\n{text}");
    }
    env.ws(&ws1, &["profile", "check", learned_s]).ok();
    // A learning session is a session: its changes are pending review.
    let show = env.ws(&ws1, &["session", "show", "--json"]).ok();
    assert!(show.stdout.contains("\"state\": \"pending\""), "{}", show.stdout);

    // The same workload under the learned profile: it works, nothing is denied.
    let ws2 = env.dir("ws2");
    let profile_args = ["session", "start", "--profile", learned_s, "--", "sh", "-c"];
    let out = env.ws(&ws2, &[&profile_args[..], &[workload.as_str()]].concat()).ok();
    assert_eq!(std::fs::read_to_string(ws2.join("got.txt")).unwrap(), "upstream saw: GET /ping HTTP/1.1\n", "{out:?}");
    assert!(ws2.join("clone/lib.rs").exists(), "{out:?}");
    let recs = records(&env, &ws2);
    assert_eq!(recs[0]["recording"]["denials"], "landlock-audit", "denials would have been seen");
    let denied: Vec<&serde_json::Value> =
        recs.iter().filter(|r| r["type"] == "denial" || (r["type"] == "net" && r["decision"] == "deny")).collect();
    assert!(denied.is_empty(), "the learned profile was not enough: {denied:?}");

    // Under the base profile the same workload is refused (the profile
    // really adds something).
    let ws3 = env.dir("ws3");
    let base = env.ws(&ws3, &["session", "start", "--", "sh", "-c", &workload]);
    assert_ne!(base.code, 0, "the default profile alone let the workload through: {base:?}");

    // And a variant that also reads ~/.ssh is denied, with the line that would allow it.
    let ws4 = env.dir("ws4");
    let thief = format!("{workload}; cat \"$HOME/.ssh/id_ed25519\" > stolen.txt 2>/dev/null; true");
    let out = env.ws(&ws4, &[&profile_args[..], &[thief.as_str()]].concat()).ok();
    assert!(ws4.join("got.txt").exists(), "control: {out:?}");
    assert!(!std::fs::read_to_string(ws4.join("stolen.txt")).unwrap().contains("SECRET"), "the key was read");
    let key = env.home.join(".ssh/id_ed25519");
    let recs = records(&env, &ws4);
    assert!(
        recs.iter().any(|r| r["type"] == "denial" && r["object"] == key.to_str().unwrap()),
        "no denial recorded for the key: {recs:?}"
    );
    let show = env.ws(&ws4, &["session", "show"]).ok();
    let line = format!("denied     read {} → filesystem.read += \"$HOME/.ssh/id_ed25519\"", key.display());
    assert!(show.stdout.contains(&line), "{}", show.stdout);
    let json = env.ws(&ws4, &["session", "show", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert!(v["denials"].as_array().unwrap().iter().any(|d| d["value"] == "$HOME/.ssh/id_ed25519"), "{}", json.stdout);
    // `ws profile suggest` prints it as a patch to the learned profile…
    let patch = env.ws(&ws4, &["profile", "suggest"]).ok();
    assert!(patch.stdout.starts_with("--- a/learned.toml\n+++ b/learned.toml\n"), "{}", patch.stdout);
    assert!(
        patch.stdout.lines().any(|l| l.starts_with('+') && l.contains("$HOME/.ssh/id_ed25519")),
        "{}",
        patch.stdout
    );
    let before = std::fs::read_to_string(&learned).unwrap();
    // …that `patch` applies, giving what --apply writes.
    let applied = env.tmp.path().join("applied");
    std::fs::create_dir(&applied).unwrap();
    std::fs::copy(&learned, applied.join("learned.toml")).unwrap();
    let mut p = std::process::Command::new("patch");
    p.args(["-s", "-p1", "-d"]).arg(&applied).stdin(std::process::Stdio::piped());
    let mut child = p.spawn().unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), patch.stdout.as_bytes()).unwrap();
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success(), "patch refused the suggestion");
    env.ws(&ws4, &["profile", "suggest", "--apply"]).ok();
    let after = std::fs::read_to_string(&learned).unwrap();
    assert_ne!(before, after);
    assert_eq!(after, std::fs::read_to_string(applied.join("learned.toml")).unwrap());
    env.ws(&ws4, &["profile", "check", learned_s]).ok();
}

#[test]
fn a_denied_host_gets_its_line_and_a_builtin_profile_a_new_file() {
    let env = Env::protected();
    let ws = env.dir("ws");
    let server = Upstream::start();
    // Through the proxy explicitly: with NO_PROXY naming loopback, curl
    // would look for the server on the session's own loopback.
    let script =
        format!("curl -s --noproxy '' -o /dev/null -w '%{{http_code}}' http://127.0.0.1:{}/x; echo", server.port);
    let out = env.session(&ws, &script).ok();
    assert!(out.stdout.contains("403"), "control: the proxy answered and refused: {out:?}");
    let show = env.ws(&ws, &["session", "show"]).ok();
    let p = server.port;
    for line in [
        format!("denied     connect 127.0.0.1:{p} → network.hosts += \"127.0.0.1:{p}\""),
        format!("denied     connect 127.0.0.1:{p} (a loopback address) → network.addresses += \"127.0.0.1\""),
    ] {
        assert!(show.stdout.contains(&line), "{line} not in:\n{}", show.stdout);
    }
    let patch = env.ws(&ws, &["profile", "suggest"]).ok();
    assert!(patch.stdout.starts_with("--- /dev/null\n+++ b/default-local.toml\n"), "{}", patch.stdout);
    assert!(patch.stdout.contains("+extends = \"default\""), "{}", patch.stdout);
    assert!(patch.stdout.contains(&format!("+hosts = [\"127.0.0.1:{p}\"]")), "{}", patch.stdout);
    assert!(patch.stdout.contains("+addresses = [\"127.0.0.1\"]"), "{}", patch.stdout);
    assert!(server.requests().is_empty(), "the refused request reached the server");
}
