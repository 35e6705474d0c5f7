//! `ws secret` against real stores: the kernel's persistent keyring (as root
//! and as an unprivileged user) and a real GNOME Keyring on a test-started
//! D-Bus session bus. Values are read back through `ws_proxy::secrets`, the
//! way a session resolves them, in this test process — another process than
//! the `ws` that stored them.

use std::ffi::OsString;
use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use ws_proxy::secrets::{KeyutilsStore, SecretServiceStore, SecretSource, SecretStore};

use crate::harness::*;

const NOBODY: u32 = 65534;

fn no_env(_: &str) -> Option<OsString> {
    None
}

/// The value a session would get for `name` from `store`, read in this process.
fn resolve(store: &dyn SecretStore, name: &str) -> Result<Vec<u8>, String> {
    let source = SecretSource::parse(name).unwrap();
    source.resolve(Some(store), &no_env).map(|s| s.expose().to_vec()).map_err(|e| {
        let cause = std::error::Error::source(&e).map(|c| c.to_string()).unwrap_or_default();
        format!("{e}: {cause}")
    })
}

fn listed(out: &Out) -> Vec<String> {
    out.stdout.lines().map(str::to_owned).collect()
}

#[test]
fn keyutils_secret_set_by_one_process_is_found_by_the_next() {
    let env = Env::new();
    let dir = env.dir("anywhere");
    let name = unique("cycle");
    let value = "sk-e2e-VALUE-7f3a";
    let set = with_stdin(env.command(&dir, &["secret", "set", &name]), format!("{value}\n").as_bytes()).ok();
    assert!(set.stderr.contains("in the keyutils store"), "headless picks keyutils: {set:?}");

    let list = env.ws(&dir, &["secret", "list"]).ok();
    assert!(listed(&list).contains(&name), "{list:?}");
    let json = env.ws(&dir, &["secret", "list", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["store"], "keyutils");
    assert!(v["secrets"].as_array().unwrap().iter().any(|n| n == name.as_str()), "{v}");
    for out in [&set, &list, &json] {
        assert!(!out.stdout.contains(value) && !out.stderr.contains(value), "the value was shown: {out:?}");
    }

    // Read by another process than the one that stored it; one trailing newline dropped.
    assert_eq!(resolve(&KeyutilsStore::open().unwrap(), &name).unwrap(), value.as_bytes());

    let again = with_stdin(env.command(&dir, &["secret", "set", &name]), b"replaced").ok();
    assert!(again.stderr.contains("stored secret"), "{again:?}");
    assert_eq!(resolve(&KeyutilsStore::open().unwrap(), &name).unwrap(), b"replaced");

    env.ws(&dir, &["secret", "rm", &name]).ok();
    assert!(!listed(&env.ws(&dir, &["secret", "list"]).ok()).contains(&name));
    assert!(resolve(&KeyutilsStore::open().unwrap(), &name).unwrap_err().contains("no secret"));
    let gone = env.ws(&dir, &["secret", "rm", &name]);
    assert_eq!(gone.code, 2, "{gone:?}");
    assert!(gone.stderr.contains(&format!("no secret `{name}` in the keyutils store")), "{gone:?}");
    assert!(gone.stderr.contains("hint: `ws secret list --store keyutils`"), "{gone:?}");
}

#[test]
fn secret_values_come_from_stdin_only_and_are_never_empty() {
    let env = Env::new();
    let dir = env.dir("anywhere");
    let name = unique("stdin");
    let store = KeyutilsStore::open().unwrap();
    // On the command line, the value is refused: argv is visible to every process.
    let argv = env.ws(&dir, &["secret", "set", &name, "sk-on-argv"]);
    assert_eq!(argv.code, 2, "{argv:?}");
    assert!(argv.stderr.contains("unexpected argument"), "{argv:?}");
    for empty in [&b""[..], b"\n"] {
        let out = with_stdin(env.command(&dir, &["secret", "set", &name]), empty);
        assert_eq!(out.code, 2, "{out:?}");
        assert!(out.stderr.contains("refusing to store an empty secret") && out.stderr.contains("< FILE"), "{out:?}");
    }
    assert!(resolve(&store, &name).is_err(), "nothing was stored");
    let bad = with_stdin(env.command(&dir, &["secret", "set", "../etc"]), b"x");
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(bad.stderr.contains("invalid secret name"), "{bad:?}");
    // Control: the same command with a value on stdin stores it.
    with_stdin(env.command(&dir, &["secret", "set", &name]), b"from-stdin").ok();
    assert_eq!(resolve(&store, &name).unwrap(), b"from-stdin");
    env.ws(&dir, &["secret", "rm", &name]).ok();
}

#[test]
fn store_choice_errors_say_what_to_do() {
    let env = Env::new();
    let dir = env.dir("anywhere");
    let control = env.ws(&dir, &["secret", "list", "--store", "keyutils"]);
    assert_eq!(control.code, 0, "control: {control:?}");
    let no_bus = env.ws(&dir, &["secret", "list", "--store", "secret-service"]);
    assert_eq!(no_bus.code, 2, "{no_bus:?}");
    assert!(no_bus.stderr.contains("no D-Bus session bus") && no_bus.stderr.contains("--store keyutils"), "{no_bus:?}");
    let mut c = env.command(&dir, &["secret", "list"]);
    c.env("WS_SECRET_STORE", "vault");
    let bad = env.run(c);
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(bad.stderr.contains("WS_SECRET_STORE") && bad.stderr.contains("`keyutils` or `secret-service`"), "{bad:?}");
    let mut c = env.command(&dir, &["secret", "list"]);
    c.env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus").env("WS_SECRET_STORE", "secret-service");
    let dead = env.run(c);
    assert_eq!(dead.code, 1, "{dead:?}");
    assert!(dead.stderr.contains("cannot reach the Secret Service on unix:path=/nonexistent/bus"), "{dead:?}");
    assert!(dead.stderr.contains("gnome-keyring-daemon"), "{dead:?}");
}

/// On a terminal, `ws secret set` asks without echoing what is typed.
#[test]
fn the_terminal_prompt_does_not_echo_the_value() {
    let env = Env::new();
    let name = unique("tty");
    let cmd = format!("{} secret set {name}", env!("CARGO_BIN_EXE_ws"));
    let mut child = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .current_dir(env.tmp.path())
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", &env.home)
        .env("TERM", "xterm")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let mut stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("(input hidden): ") {
        let chunk = rx.recv_timeout(std::time::Duration::from_secs(20)).expect("no prompt on the terminal");
        seen.extend(chunk);
    }
    stdin.write_all(b"typed-at-the-tty\n").unwrap();
    let status = child.wait().unwrap();
    drop(stdin);
    while let Ok(chunk) = rx.recv_timeout(std::time::Duration::from_secs(5)) {
        seen.extend(chunk);
    }
    let text = String::from_utf8_lossy(&seen);
    assert!(status.success() && text.contains("stored secret"), "{text}");
    assert!(!text.contains("typed-at-the-tty"), "the value was echoed: {text:?}");
    let store = KeyutilsStore::open().unwrap();
    assert_eq!(resolve(&store, &name).unwrap(), b"typed-at-the-tty");
    store.remove(&name.parse().unwrap()).unwrap();
}

fn as_user(uid: u32, program: &str, args: &[&str]) -> Command {
    let mut c = Command::new("setpriv");
    c.args([format!("--reuid={uid}"), format!("--regid={uid}"), "--clear-groups".into(), "--".into()]);
    c.arg(program).args(args).current_dir("/").env_clear().env("PATH", "/usr/bin:/bin").env("LANG", "C.UTF-8");
    c
}

/// An unprivileged user gets a persistent keyring of its own: what it stores
/// another of its processes finds, and root's store does not list.
#[test]
fn an_unprivileged_user_keeps_secrets_of_its_own() {
    assert!(is_root(), "needs root to switch to an unprivileged user (the README's test command runs as root)");
    let env = Env::new();
    let ws = env!("CARGO_BIN_EXE_ws");
    let name = unique("nobody");
    let set = with_stdin(as_user(NOBODY, ws, &["secret", "set", &name]), b"nobodys-token\n").ok();
    assert!(set.stderr.contains("keyutils"), "{set:?}");
    let list = env.run(as_user(NOBODY, ws, &["secret", "list"])).ok();
    assert!(listed(&list).contains(&name) && !list.stdout.contains("nobodys-token"), "{list:?}");
    // Another process of that user, possessing its persistent keyring, reads the value.
    let desc = format!("%user:ws-secret:{name}");
    let script = format!("keyctl get_persistent @s >/dev/null && keyctl pipe {desc}");
    let read = env.run(as_user(NOBODY, "keyctl", &["session", "-", "sh", "-c", &script])).ok();
    assert_eq!(read.stdout, "nobodys-token");
    let root_list = env.ws(env.tmp.path(), &["secret", "list"]).ok();
    assert!(!listed(&root_list).contains(&name), "root's store lists nobody's secret: {root_list:?}");
    env.run(as_user(NOBODY, ws, &["secret", "rm", &name])).ok();
    let after = env.run(as_user(NOBODY, ws, &["secret", "list"])).ok();
    assert!(!listed(&after).contains(&name), "{after:?}");
}

/// A private D-Bus session bus with GNOME Keyring's Secret Service on it,
/// the login keyring created and unlocked with a password on stdin.
struct SecretServiceBus {
    daemon: Child,
    address: String,
}

impl SecretServiceBus {
    /// A session bus that activates nothing, and GNOME Keyring on it with its
    /// login collection unlocked. Returns once the keyring owns its name.
    ///
    /// `--unlock` forks and returns before the daemon has claimed
    /// `org.freedesktop.secrets`. On a bus with the system's service files, a
    /// request sent in that window activates a second daemon
    /// (`--start`, no password) that wins the name and has no login
    /// collection; hence no service directories, and the wait.
    fn start(home: &Path) -> SecretServiceBus {
        let config = home.join("session-bus.conf");
        std::fs::write(
            &config,
            "<busconfig><type>session</type><listen>unix:tmpdir=/tmp</listen><auth>EXTERNAL</auth>\
             <policy context=\"default\"><allow send_destination=\"*\" eavesdrop=\"true\"/>\
             <allow eavesdrop=\"true\"/><allow own=\"*\"/></policy></busconfig>\n",
        )
        .unwrap();
        let mut daemon = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--print-address=1"])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", home)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon (Debian package dbus-daemon; test.sh installs it)");
        let mut address = String::new();
        let mut out = daemon.stdout.take().unwrap();
        let mut byte = [0u8; 1];
        while out.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
            address.push(byte[0] as char);
        }
        assert!(address.starts_with("unix:"), "dbus-daemon printed no address: {address:?}");
        let bus = SecretServiceBus { daemon, address };
        let mut keyring = Command::new("gnome-keyring-daemon")
            .args(["--unlock", "--components=secrets"])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", home)
            .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("gnome-keyring-daemon (Debian package gnome-keyring; test.sh installs it)");
        keyring.stdin.take().unwrap().write_all(b"e2e-keyring-password").unwrap();
        assert!(keyring.wait().unwrap().success(), "gnome-keyring-daemon --unlock failed");
        // The daemon unlocks (or creates) the login collection before it
        // takes its name, so an owned name means a usable default collection.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let owned = bus.send(
                "org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.NameHasOwner",
                "string:org.freedesktop.secrets",
            );
            if String::from_utf8_lossy(&owned.stdout).contains("boolean true") {
                return bus;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "GNOME Keyring never took org.freedesktop.secrets: {owned:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// `dbus-send` of one method call with one argument on this bus.
    fn send(&self, dest: &str, path: &str, method: &str, arg: &str) -> std::process::Output {
        Command::new("dbus-send")
            .args(["--session", &format!("--dest={dest}"), "--print-reply", path, method, arg])
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .output()
            .expect("dbus-send (Debian package dbus-bin)")
    }
}

impl Drop for SecretServiceBus {
    /// GNOME Keyring exits when its bus goes away.
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

#[test]
fn secret_service_store_under_a_real_gnome_keyring() {
    let env = Env::new();
    let dir = env.dir("anywhere");
    let bus = SecretServiceBus::start(&env.home);
    let ws = |args: &[&str]| {
        let mut c = env.command(&dir, args);
        c.env("DBUS_SESSION_BUS_ADDRESS", &bus.address);
        c
    };
    let name = unique("ss");
    let set = with_stdin(ws(&["secret", "set", &name]), b"ss-token-42\n").ok();
    assert!(set.stderr.contains("in the secret-service store"), "a desktop bus picks the Secret Service: {set:?}");
    let json = env.run(ws(&["secret", "list", "--json"])).ok();
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["store"], "secret-service");
    assert!(v["secrets"].as_array().unwrap().iter().any(|n| n == name.as_str()), "{v}");
    assert!(!json.stdout.contains("ss-token-42"));
    let keyutils = env.run(ws(&["secret", "list", "--store", "keyutils"])).ok();
    assert!(!listed(&keyutils).contains(&name), "--store picks the other store: {keyutils:?}");

    let store = SecretServiceStore::connect(&bus.address).unwrap();
    assert_eq!(resolve(&store, &name).unwrap(), b"ss-token-42");

    env.run(ws(&["secret", "rm", &name])).ok();
    assert!(resolve(&store, &name).unwrap_err().contains("no secret"));
    let gone = env.run(ws(&["secret", "rm", &name]));
    assert_eq!(gone.code, 2, "{gone:?}");
    assert!(gone.stderr.contains("in the secret-service store"), "{gone:?}");

    // A locked keyring is reported with what to do, not prompted for.
    let lock = bus.send(
        "org.freedesktop.secrets",
        "/org/freedesktop/secrets",
        "org.freedesktop.Secret.Service.Lock",
        "array:objpath:/org/freedesktop/secrets/collection/login",
    );
    assert!(lock.status.success(), "{lock:?}");
    let locked = env.run(ws(&["secret", "list"]));
    assert_eq!(locked.code, 1, "{locked:?}");
    assert!(locked.stderr.contains("default collection is locked"), "{locked:?}");
    assert!(locked.stderr.contains("gnome-keyring-daemon --unlock") && locked.stderr.contains("--store keyutils"));
}

/// A credential route whose secret was stored with `ws secret set` in an
/// earlier process: the upstream gets the stored value, the session only its
/// phantom; once the secret is removed, the session is refused up front.
#[test]
fn a_stored_secret_reaches_the_upstream_and_never_the_session() {
    let env = Env::protected();
    let ws = env.dir("ws");
    git_repo(&ws);
    write(ws.join("mine.txt"), "workspace file\n");
    let upstream = Upstream::start();
    let name = unique("route");
    let real = "sk-stored-REAL-91c4";
    with_stdin(env.command(&ws, &["secret", "set", &name]), format!("{real}\n").as_bytes()).ok();
    let profile = env.dir("profiles").join("route.toml");
    write(
        &profile,
        format!(
            "extends = \"default\"\n[network]\naddresses = [\"127.0.0.1\"]\n\
             [credentials.up]\nsecret = \"{name}\"\nupstream = \"http://127.0.0.1:{}\"\n\
             header = \"x-api-key\"\nenv = \"UP_KEY\"\nbase_url_env = \"UP_BASE\"\n",
            upstream.port
        ),
    );
    let profile = profile.to_string_lossy().into_owned();
    let script = "curl -sS -H \"x-api-key: $UP_KEY\" \"$UP_BASE/v1/ping\"; echo \"phantom=$UP_KEY\"; env";
    let out = env.ws(&ws, &["session", "start", "--profile", &profile, "--", "bash", "-c", script]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("upstream saw: GET /v1/ping"), "control: the route works: {out:?}");
    let seen = upstream.requests();
    assert!(
        seen.iter().any(|h| h.contains(&format!("x-api-key: {real}"))),
        "the stored value was not injected: {seen:?}"
    );
    assert!(out.stdout.contains("UP_KEY=") && out.stdout.contains("phantom="), "{out:?}");
    assert!(!out.stdout.contains(real) && !out.stderr.contains(real), "the session saw the secret: {out:?}");

    env.ws(&ws, &["secret", "rm", &name]).ok();
    let refused = env.ws(&ws, &["session", "start", "--profile", &profile, "--", "true"]);
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(
        refused.stderr.contains(&format!("credential route `up`: no secret `{name}` in the keyutils store")),
        "{refused:?}"
    );
    assert!(refused.stderr.contains(&format!("ws secret set {name}")), "{refused:?}");
}

/// `ws secret set` teaches the pre-commit hook the secret's fingerprint
/// (never the value); `ws secret rm` takes it back.
#[test]
fn a_stored_secret_is_refused_in_a_commit_until_removed() {
    let env = Env::new();
    let repo = env.dir("repo");
    git_repo(&repo);
    env.ws(&repo, &["hooks", "install"]).ok();
    let name = unique("commit");
    let value = "sk-e2e-COMMIT-91b4d07c3e";
    with_stdin(env.command(&repo, &["secret", "set", &name]), value.as_bytes()).ok();
    let fingerprints = std::fs::read_to_string(env.home.join(".local/share/ws/secret-fingerprints.json")).unwrap();
    assert!(fingerprints.contains(&name) && !fingerprints.contains(value), "{fingerprints}");
    let commit = |file: &str, content: &str| {
        write(repo.join(file), content);
        git(&repo, &["add", file]);
        env.commit(&repo, file)
    };
    commit("plain.txt", "nothing secret\n").ok();
    let leak = commit("config.env", &format!("API_KEY={value}\n"));
    let stderr = &leak.stderr;
    assert!(leak.code != 0 && stderr.contains(&name), "{stderr}");
    assert!(!stderr.contains(value), "the refusal printed the secret: {stderr}");
    env.ws(&repo, &["secret", "rm", &name]).ok();
    env.commit(&repo, "after rm").ok();
}
