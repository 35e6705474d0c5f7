//! What real agents need from their built-in profiles, checked without the
//! agents themselves: their files in a fresh home, the effective profile
//! shown whole, a route pointed elsewhere by one key, the session's own
//! loopback, stable phantoms.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::harness::*;

fn builtins(env: &Env, cwd: &Path) -> Vec<String> {
    let out = env.ws(cwd, &["profile", "list"]).ok();
    out.stdout
        .lines()
        .filter(|l| l.contains("(built-in)"))
        .map(|l| l.split_whitespace().next().unwrap().to_owned())
        .collect()
}

/// Claude Code saves onboarding, trust and keys in `~/.claude.json` and
/// `~/.claude/`: in a fresh home they do not exist, and a session could not
/// make them (Landlock grants what exists). The profile's `create` makes
/// them first; nothing else in the home becomes readable or writable.
#[test]
fn a_fresh_home_gets_claude_codes_files_and_nothing_else() {
    let env = Env::protected();
    let ws = env.dir("ws");
    git_repo(&ws);
    write(env.home.join("secret.txt"), "host secret\n");
    assert!(!env.home.join(".claude.json").exists() && !env.home.join(".claude").exists());
    let script = "echo control > inside.txt && echo WROTE-WORKSPACE; \
         printf 'config=%s\\n' \"$(cat ~/.claude.json)\"; \
         echo '{\"numStartups\":1}' > ~/.claude.json && echo SAVED-CONFIG; \
         mkdir -p ~/.claude/projects && echo s > ~/.claude/projects/s.jsonl && echo SAVED-SESSION; \
         echo x > ~/.cache/claude-cli-nodejs/log && echo SAVED-LOG; \
         touch ~/.bashrc 2>/dev/null && echo PLANTED-BASHRC; \
         mkdir ~/.ssh 2>/dev/null && echo MADE-SSH; \
         touch ~/.claude.json.tmp.1 2>/dev/null && echo MADE-SIBLING; \
         cat ~/secret.txt 2>/dev/null && echo READ-SECRET; \
         ls ~ >/dev/null 2>&1 && echo LISTED-HOME; \
         echo \"IS_SANDBOX=$IS_SANDBOX DISABLE_AUTOUPDATER=$DISABLE_AUTOUPDATER\"; true";
    let out = env.ws(&ws, &["session", "start", "--profile", "claude-code", "--", "bash", "-c", script]);
    assert_eq!(out.code, 0, "{out:?}");
    // Positive control: the session ran, sandboxed, and wrote its workspace.
    assert!(out.stdout.contains("WROTE-WORKSPACE"), "{out:?}");
    assert!(out.stdout.contains("config={}"), "a new .json file holds an empty object: {out:?}");
    for saved in ["SAVED-CONFIG", "SAVED-SESSION", "SAVED-LOG"] {
        assert!(out.stdout.contains(saved), "{saved}: {out:?}");
    }
    for escaped in ["PLANTED-BASHRC", "MADE-SSH", "MADE-SIBLING", "READ-SECRET", "LISTED-HOME"] {
        assert!(!out.stdout.contains(escaped), "{escaped}: {out:?}");
    }
    assert!(out.stdout.contains("IS_SANDBOX=1 DISABLE_AUTOUPDATER=1"), "{out:?}");
    // On the host, afterwards: what the agent saved is there, private and
    // the user's; nothing else appeared in the home.
    assert_eq!(std::fs::read_to_string(env.home.join(".claude.json")).unwrap(), "{\"numStartups\":1}\n");
    assert_eq!(std::fs::read_to_string(env.home.join(".claude/projects/s.jsonl")).unwrap(), "s\n");
    let meta = std::fs::metadata(env.home.join(".claude")).unwrap();
    assert_eq!((meta.mode() & 0o777, meta.uid()), (0o700, rustix::process::getuid().as_raw()));
    let mut names: Vec<String> =
        std::fs::read_dir(&env.home).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, [".cache", ".claude", ".claude.json", ".local", "secret.txt"], "{names:?}");
    assert_eq!(std::fs::read_to_string(env.home.join("secret.txt")).unwrap(), "host secret\n");
    // A used home: what is there is kept as it is.
    write(env.home.join(".claude.json"), "{\"kept\":true}");
    let kept = env.ws(&ws, &["session", "start", "--profile", "claude-code", "--", "bash", "-c", "cat ~/.claude.json"]);
    assert_eq!(kept.stdout, "{\"kept\":true}", "{kept:?}");
}

/// `ws profile show` prints every table of the effective profile, and what
/// it prints is a profile that checks clean and shows the same again.
#[test]
fn every_builtin_shows_whole_and_reads_back_the_same() {
    let env = Env::new();
    let dir = env.dir("shown");
    let names = builtins(&env, &dir);
    assert!(names.len() >= 6 && names.contains(&"claude-code".to_owned()), "{names:?}");
    for name in names {
        let shown = env.ws(&dir, &["profile", "show", &name]).ok().stdout;
        for table in ["[filesystem]", "[environment]", "[enforce]", "[resources]", "[network]"] {
            assert!(shown.contains(table), "{name}: no {table}:\n{shown}");
        }
        if name == "claude-code" || name == "codex" {
            assert!(shown.contains("[credentials."), "{name}:\n{shown}");
        }
        let file = dir.join(format!("{name}-shown.toml"));
        write(&file, &shown);
        let path = file.to_string_lossy().into_owned();
        env.ws(&dir, &["profile", "check", &path]).ok();
        let again = env.ws(&dir, &["profile", "show", &path]).ok().stdout;
        let body = |s: &str| s.lines().skip(1).collect::<Vec<_>>().join("\n");
        assert_eq!(body(&again), body(&shown), "{name}: shown again differs");
    }
}

/// Pointing Claude Code's route at a gateway takes one key; the rest of the
/// route (secret, header, variables, prefix) is inherited.
#[test]
fn one_key_points_an_inherited_route_at_a_gateway() {
    let env = Env::new();
    let dir = env.dir("p");
    let file = dir.join("gateway.toml");
    write(&file, "extends = \"claude-code\"\n[credentials.anthropic]\nupstream = \"https://gateway.example\"\n");
    let path = file.to_string_lossy().into_owned();
    env.ws(&dir, &["profile", "check", &path]).ok();
    let shown = env.ws(&dir, &["profile", "show", &path]).ok().stdout;
    let route = shown.split("[credentials.anthropic]").nth(1).unwrap_or_default();
    for line in [
        "upstream = \"https://gateway.example\"",
        "secret = \"anthropic\"",
        "header = \"x-api-key\"",
        "env = \"ANTHROPIC_API_KEY\"",
        "base_url_env = \"ANTHROPIC_BASE_URL\"",
        "prefix = \"sk-ant-\"",
    ] {
        assert!(route.contains(line), "{line} missing:\n{shown}");
    }
    // A route no profile of the chain completes is named, with its line.
    write(&file, "extends = \"default\"\n[credentials.gw]\nupstream = \"https://gateway.example\"\n");
    let bad = env.ws(&dir, &["profile", "check", &path]);
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(bad.stdout.contains(&format!("{path}:2: credentials.gw: needs secret")), "{bad:?}");
}

/// A dev server the agent starts on 127.0.0.1 inside the session is reached
/// directly (`NO_PROXY` names loopback: the session's network namespace has
/// a loopback of its own), while a server on the host's loopback stays out
/// of reach, directly and through the proxy.
#[test]
fn the_sessions_own_loopback_is_reachable_and_the_hosts_is_not() {
    let env = Env::protected();
    let ws = env.dir("ws");
    git_repo(&ws);
    let host = Upstream::start();
    let up = host.port;
    let server = "perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(LocalAddr => \"127.0.0.1:8765\", \
         Listen => 5, ReuseAddr => 1) or die \"listen: $!\"; while ($c = $s->accept) { <$c>; \
         print $c \"HTTP/1.0 200 OK\\r\\nContent-Type: text/plain\\r\\n\\r\\ndev server inside the session\\n\"; close $c }' &";
    let script = format!(
        "{server} \
         for i in $(seq 100); do curl -sS http://127.0.0.1:8765/dev 2>/dev/null && break; sleep 0.05; done; \
         curl -sS http://localhost:8765/by-name; \
         echo \"no_proxy=$no_proxy NO_PROXY=$NO_PROXY\"; \
         curl -sS -m 3 http://127.0.0.1:{up}/direct 2>&1; echo \"direct-exit=$?\"; \
         curl -sS -m 3 --noproxy '' -x \"$HTTP_PROXY\" http://127.0.0.1:{up}/via-proxy 2>&1; echo; \
         kill %1"
    );
    // The host rule lets the request reach the address check, which refuses
    // loopback: the profile does not name it in `addresses`.
    let profile = env.dir("profiles").join("hosts.toml");
    write(&profile, "extends = \"default\"\n[network]\nhosts = [\"127.0.0.1:*\"]\n");
    let profile = profile.to_string_lossy().into_owned();
    let out = env.ws(&ws, &["session", "start", "--profile", &profile, "--", "bash", "-c", &script]);
    assert_eq!(out.code, 0, "{out:?}");
    // Positive control: the agent's own server answers, by address and by name.
    assert_eq!(out.stdout.matches("dev server inside the session").count(), 2, "{out:?}");
    assert!(out.stdout.contains("no_proxy=localhost,127.0.0.1,::1 NO_PROXY=localhost,127.0.0.1,::1"), "{out:?}");
    // The host's loopback: not there directly, refused through the proxy.
    assert!(out.stdout.contains("direct-exit=7"), "{out:?}");
    assert!(out.stdout.contains("is a loopback address"), "{out:?}");
    assert!(host.requests().is_empty(), "the host's loopback server was reached: {:?}", host.requests());
}

/// The phantom key of a credential route is the same at every session of a
/// workspace (a client that remembers the key it approved does not ask
/// again), different in another workspace, refused there, and still kept
/// out of commits.
#[test]
fn phantoms_are_stable_per_workspace_and_useless_elsewhere() {
    let env = Env::protected();
    let upstream = Upstream::start();
    let profile = env.dir("profiles").join("route.toml");
    write(
        &profile,
        format!(
            "extends = \"default\"\n[network]\naddresses = [\"127.0.0.1\"]\n\
             [credentials.api]\nsecret = \"env:WS_E2E_REAL_KEY\"\nupstream = \"http://127.0.0.1:{}\"\n\
             header = \"x-api-key\"\nenv = \"API_KEY\"\nbase_url_env = \"API_BASE_URL\"\nprefix = \"sk-test-\"\n",
            upstream.port
        ),
    );
    let profile = profile.to_string_lossy().into_owned();
    let real = "sk-e2e-REAL-stable-4f1d";
    let session = |ws: &Path, key: &str| {
        let script = format!(
            "echo \"phantom=$API_KEY\"; \
             curl -sS -o /dev/null -w 'status=%{{http_code}}\\n' -H \"x-api-key: {key}\" \"$API_BASE_URL/v1/ping\""
        );
        let mut c = env.command(ws, &["session", "start", "--profile", &profile, "--", "bash", "-c", &script]);
        c.env("WS_E2E_REAL_KEY", real);
        let out = env.run(c);
        assert_eq!(out.code, 0, "{out:?}");
        let phantom = out.stdout.lines().find_map(|l| l.strip_prefix("phantom=")).unwrap().to_owned();
        let status = out.stdout.lines().find_map(|l| l.strip_prefix("status=")).unwrap().to_owned();
        (phantom, status)
    };
    let (a, b) = (env.dir("a"), env.dir("b"));
    git_repo(&a);
    git_repo(&b);
    let (first, ok) = session(&a, "$API_KEY");
    assert_eq!(ok, "200", "control: the route took the phantom");
    assert!(first.starts_with("sk-test-ws-phantom-") && !first.contains(real), "{first}");
    let (second, _) = session(&a, "$API_KEY");
    assert_eq!(first, second, "the same workspace and route: the same phantom");
    let (other, refused) = session(&b, &first);
    assert_ne!(other, first, "another workspace: another phantom");
    assert_eq!(refused, "401", "workspace a's phantom is refused in workspace b");
    let seen = upstream.requests();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen.iter().all(|r| r.contains(&format!("x-api-key: {real}")) && !r.contains(&first)), "{seen:?}");
    // The key it derives from stays in the store, out of the sessions' reach.
    let key = std::fs::read_dir(env.home.join(".local/share/ws/stores"))
        .unwrap()
        .flatten()
        .map(|s| s.path().join("phantom-key"))
        .find(|k| k.exists())
        .expect("a phantom key in a store");
    assert_eq!(std::fs::metadata(&key).unwrap().mode() & 0o777, 0o600);
    // The pre-commit hook refuses the stable phantom staged in a file.
    env.ws(&a, &["hooks", "install"]).ok();
    write(a.join("notes.txt"), "harmless\n");
    git(&a, &["add", "notes.txt"]);
    env.commit(&a, "control").ok();
    write(a.join("config.env"), format!("API_KEY={first}\n"));
    git(&a, &["add", "config.env"]);
    let leak = env.commit(&a, "leak");
    assert_ne!(leak.code, 0, "a commit holding the phantom went through: {leak:?}");
    assert!(leak.stderr.contains("phantom token `api`") && !leak.stderr.contains(&first), "{leak:?}");
}
