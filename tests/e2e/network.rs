//! The session's network: deny by default, the proxy as the only way out,
//! and no way around it. Every upstream is a real server on the host's
//! loopback; the attacks run inside `ws session start`, after a positive
//! control through the proxy.

use std::net::UdpSocket;
use std::path::PathBuf;
use std::time::Duration;

use crate::harness::*;

struct Fixture {
    env: Env,
    ws: PathBuf,
    upstream: Upstream,
}

fn fixture() -> Fixture {
    let env = Env::protected();
    let ws = env.dir("ws");
    git_repo(&ws);
    write(ws.join("mine.txt"), "workspace file\n");
    Fixture { env, ws, upstream: Upstream::start() }
}

fn profile(f: &Fixture, name: &str, body: &str) -> String {
    let p = f.env.dir("profiles").join(format!("{name}.toml"));
    write(&p, format!("extends = \"default\"\n{body}"));
    p.to_string_lossy().into_owned()
}

fn session(f: &Fixture, profile: &str, script: &str) -> Out {
    f.env.ws(&f.ws, &["session", "start", "--profile", profile, "--", "bash", "-c", script])
}

#[test]
fn the_proxy_is_the_only_way_out() {
    let f = fixture();
    let up = f.upstream.port;
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let udp_port = udp.local_addr().unwrap().port();
    let p = profile(&f, "loopback", "[network]\nhosts = [\"127.0.0.1:*\"]\naddresses = [\"127.0.0.1\"]\n");
    let script = format!(
        "curl -sS http://127.0.0.1:{up}/control; \
         echo; curl -sS http://not-allowed.example/ 2>&1; \
         curl -sS https://not-allowed.example/ 2>&1; echo \"https-exit=$?\"; \
         curl -sS --noproxy '*' -m 3 http://127.0.0.1:{up}/bypass 2>&1; echo \"bypass-exit=$?\"; \
         (exec 3<>/dev/tcp/127.0.0.1/{up} && echo DIRECT-TCP-CONNECTED) 2>&1; \
         (echo dns-exfil > /dev/udp/127.0.0.1/{udp_port} && echo UDP-SENT) 2>&1; \
         env | grep -i -E '^(no_proxy|https?_proxy)=' | sort"
    );
    let out = session(&f, &p, &script);
    assert_eq!(out.code, 0, "{out:?}");
    // Positive control: the allowed request went through the proxy.
    assert!(out.stdout.contains("upstream saw: GET /control HTTP/1.1"), "control: {out:?}");
    // A host outside the allow-list: refused with a body that names the rule.
    assert!(
        out.stdout.contains("refused (deny by default): not-allowed.example is not in network.hosts of profile"),
        "{out:?}"
    );
    assert!(out.stdout.contains("CONNECT tunnel failed, response 403"), "{out:?}");
    // Bypassing the proxy reaches nothing: the session's 127.0.0.1 is its own.
    assert!(!out.stdout.contains("bypass-exit=0") && !out.stdout.contains("DIRECT-TCP-CONNECTED"), "{out:?}");
    let seen = f.upstream.requests();
    assert_eq!(seen.len(), 1, "only the control reached the upstream: {seen:?}");
    let mut buf = [0u8; 64];
    assert!(udp.recv_from(&mut buf).is_err(), "a UDP datagram left the session");
    // The proxy is announced under every name, and nothing is exempt.
    assert!(out.stdout.contains("HTTPS_PROXY=http://127.0.0.1:"), "{out:?}");
    assert!(!out.stdout.to_ascii_lowercase().contains("no_proxy="), "{out:?}");
    assert!(out.stderr.contains("network: 3 request(s), 2 refused: not-allowed.example"), "{}", out.stderr);
}

#[test]
fn allowed_names_that_resolve_to_loopback_or_metadata_are_refused() {
    let f = fixture();
    let up = f.upstream.port;
    // Control first: with the address allowed, the same name goes through.
    let open = profile(&f, "open", "[network]\nhosts = [\"localhost:*\"]\naddresses = [\"127.0.0.1\", \"::1\"]\n");
    let ok = session(&f, &open, &format!("curl -sS -p http://localhost:{up}/tunnel-control"));
    assert!(ok.stdout.contains("upstream saw: GET /tunnel-control"), "control: {ok:?}");
    let strict = profile(&f, "strict", "[network]\nhosts = [\"localhost:*\", \"169.254.169.254\"]\n");
    let out = session(
        &f,
        &strict,
        &format!(
            "curl -sS -p http://localhost:{up}/should-not-arrive 2>&1; echo; \
             curl -sS -m 5 http://169.254.169.254/latest/meta-data/ 2>&1; echo; \
             curl -sS -m 5 https://169.254.169.254/ 2>&1; true"
        ),
    );
    assert!(out.stdout.contains("CONNECT tunnel failed, response 403"), "{out:?}");
    assert!(out.stdout.contains("is a link-local (cloud metadata lives here) address"), "{out:?}");
    assert_eq!(f.upstream.requests().len(), 1, "only the control arrived");
}

/// A DNS name the profile allows, which resolves to the metadata address
/// (DNS rebinding, a poisoned resolver): ws runs in a mount namespace of the
/// test's own where /etc/hosts says so, and the proxy's resolver believes it.
#[test]
fn an_allowed_name_resolving_to_the_metadata_address_is_refused() {
    assert!(is_root(), "needs root for a private /etc/hosts");
    let f = fixture();
    let hosts = f.env.dir("etc").join("hosts");
    write(&hosts, "127.0.0.1 localhost\n169.254.169.254 metadata.ws-test.example\n127.0.0.1 rebind.ws-test.example\n");
    let p = profile(
        &f,
        "named",
        "[network]\nhosts = [\"metadata.ws-test.example\", \"rebind.ws-test.example:*\"]\naddresses = []\n",
    );
    let up = f.upstream.port;
    let script = format!(
        "curl -sS -m 5 https://metadata.ws-test.example/latest/ 2>&1; echo; \
         curl -sS -m 5 http://metadata.ws-test.example/latest/meta-data/ 2>&1; echo; \
         curl -sS -m 5 http://rebind.ws-test.example:{up}/rebound 2>&1; true"
    );
    let ws_bin = env!("CARGO_BIN_EXE_ws");
    let mut c = std::process::Command::new("unshare");
    c.args(["-m", "sh", "-c", "mount --make-rprivate / && mount --bind \"$0\" /etc/hosts && exec \"$@\""])
        .arg(&hosts)
        .args([ws_bin, "session", "start", "--profile", &p, "--", "bash", "-c", &script])
        .current_dir(&f.ws)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .env("HOME", &f.env.home)
        .env("NO_COLOR", "1");
    let out = f.env.run(c);
    assert_eq!(out.code, 0, "{out:?}");
    // The names resolved (else the refusal would say so), and every address
    // was refused: the tunnel (curl shows only its status) and plain HTTP.
    assert!(out.stdout.contains("CONNECT tunnel failed, response 403"), "{out:?}");
    assert!(out.stdout.contains("169.254.169.254 is a link-local (cloud metadata lives here) address"), "{out:?}");
    assert!(out.stdout.contains("127.0.0.1 is a loopback address"), "{out:?}");
    assert!(f.upstream.requests().is_empty(), "{:?}", f.upstream.requests());
}

const REAL: &str = "sk-test-REAL-5f2a9c1e7b";

#[test]
fn credential_routes_swap_a_phantom_and_the_real_key_never_enters() {
    let f = fixture();
    let up = f.upstream.port;
    let p = profile(
        &f,
        "cred",
        &format!(
            "[network]\naddresses = [\"127.0.0.1\"]\n\
             [credentials.api]\nsecret = \"env:WS_E2E_REAL_KEY\"\nupstream = \"http://127.0.0.1:{up}/base\"\n\
             header = \"x-api-key\"\nenv = \"API_KEY\"\nbase_url_env = \"API_BASE_URL\"\nprefix = \"sk-test-\"\n"
        ),
    );
    let script = "printenv; cat /proc/self/environ | tr '\\0' '\\n'; echo; \
         echo \"phantom=$API_KEY\"; echo \"base=$API_BASE_URL\"; \
         curl -sS -D - -H \"x-api-key: $API_KEY\" \"$API_BASE_URL/v1/messages\"; echo; \
         curl -sS -o /dev/null -w 'wrong=%{http_code}\\n' -H 'x-api-key: sk-test-ws-phantom-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' \"$API_BASE_URL/v1/messages\"; \
         curl -sS -o /dev/null -w 'none=%{http_code}\\n' \"$API_BASE_URL/v1/messages\"; \
         echo \"$API_KEY\" > phantom.txt; true";
    let mut c = f.env.command(&f.ws, &["session", "start", "--profile", &p, "--", "bash", "-c", script]);
    c.env("WS_E2E_REAL_KEY", REAL);
    let out = f.env.run(c);
    assert_eq!(out.code, 0, "{out:?}");
    // Positive control: the request arrived upstream, with the real key in
    // place of the phantom, under the route's base path.
    let seen = f.upstream.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].starts_with("GET /base/v1/messages HTTP/1.1"), "{seen:?}");
    assert!(seen[0].contains(&format!("x-api-key: {REAL}")), "{seen:?}");
    let phantom = out.stdout.lines().find_map(|l| l.strip_prefix("phantom=")).unwrap().to_owned();
    assert!(phantom.starts_with("sk-test-ws-phantom-") && phantom != REAL, "{phantom}");
    assert!(out.stdout.contains("upstream saw: GET /base/v1/messages"), "{out:?}");
    // The phantom of another session and no key at all are refused.
    assert!(out.stdout.contains("wrong=401") && out.stdout.contains("none=401"), "{out:?}");
    // The upstream echoed the real key in a response header: removed on the way back.
    assert!(out.stdout.contains("x-echo-x-api-key: [removed by ws"), "{out:?}");
    // Nowhere in the sandbox: not in its environment, its output, or its files.
    assert!(!out.stdout.contains(REAL), "the real key reached the sandbox: {out:?}");
    assert!(std::fs::read_to_string(f.ws.join("phantom.txt")).unwrap().contains("ws-phantom"), "control");
    for dir in [&f.ws, &f.env.home] {
        let grep = std::process::Command::new("grep").args(["-rqF", REAL]).arg(dir).status().unwrap();
        assert_eq!(grep.code(), Some(1), "the real key is in a file under {}", dir.display());
    }
    // The phantom the agent wrote down never reaches a commit either.
    f.env.ws(&f.ws, &["approve"]).ok();
    f.env.ws(&f.ws, &["hooks", "install"]).ok();
    write(f.ws.join("notes.txt"), "harmless\n");
    git(&f.ws, &["add", "notes.txt"]);
    f.env.commit(&f.ws, "control").ok();
    git(&f.ws, &["add", "phantom.txt"]);
    let leak = f.env.commit(&f.ws, "leak");
    let stderr = &leak.stderr;
    assert_ne!(leak.code, 0, "a commit holding the phantom token went through: {stderr}");
    assert!(stderr.contains("phantom token `api`"), "{stderr}");
    assert!(!stderr.contains(&phantom), "the refusal must not print the token: {stderr}");
}
