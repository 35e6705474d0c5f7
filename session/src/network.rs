//! A session's network: how it is confined, its proxy, its phantom tokens,
//! and the environment that points the sandbox at them.
//!
//! Two modes, chosen by what the machine allows:
//! - **namespace** (root, or unprivileged user namespaces): the session gets a
//!   network namespace with only loopback; the proxy's socket is created in
//!   there by the launcher and served from outside;
//! - **filtered** (no namespaces): the proxy listens on the host's loopback
//!   and requires a per-session `Proxy-Authorization` token; Landlock lets
//!   TCP reach only the proxy's port and seccomp denies UDP and raw sockets.

use std::ffi::OsString;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ws_proxy::RequestEvent;
use ws_sandbox::Profile;
use ws_sandbox::exec::{NetSpec, NetnsSpec};

use crate::Error;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Namespace,
    Filtered,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Namespace => "network namespace (only loopback; the proxy is the way out)",
            Mode::Filtered => "Landlock TCP filter + seccomp (TCP to the proxy's port only; no UDP)",
        }
    }

    /// Which mode this machine gives. Pure.
    pub fn choose(namespaces: bool, landlock_abi: i32) -> Option<Mode> {
        if namespaces {
            Some(Mode::Namespace)
        } else if landlock_abi >= 4 {
            Some(Mode::Filtered)
        } else {
            None
        }
    }
}

pub type Events = Arc<Mutex<Vec<RequestEvent>>>;

/// The loopback names a client should reach directly, not through the proxy.
pub const LOOPBACK_NO_PROXY: &str = "localhost,127.0.0.1,::1";

/// `NO_PROXY` for the session, if any. Pure.
///
/// In a network namespace the session's loopback is its own: a dev server
/// the agent starts there is reached directly, and the host's loopback is
/// not there to be reached at all (the proxy listens on the session's
/// loopback too, and the credential routes' base URLs point at it, so their
/// traffic still goes through it). Unless the profile lets the proxy reach
/// loopback (`addresses = ["127.0.0.1"]`): then `127.0.0.1` means the
/// host's, through the proxy, as asked. Without a namespace the loopback is
/// the host's, shared with every other program: a direct connection is
/// refused anyway (Landlock lets TCP reach only the proxy's port), and
/// through the proxy loopback is refused unless the profile names it, so
/// nothing is exempt.
pub fn no_proxy(mode: Mode, addresses: &[ws_proxy::Cidr]) -> Option<&'static str> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let loopback = [IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::LOCALHOST)];
    let proxied_loopback = addresses.iter().any(|c| loopback.iter().any(|ip| c.contains(*ip)));
    (mode == Mode::Namespace && !proxied_loopback).then_some(LOOPBACK_NO_PROXY)
}

/// A credential route and the variables that tell the sandbox about it.
#[derive(Debug)]
pub struct RouteSetup {
    pub route: ws_proxy::Route,
    /// Get the phantom token.
    pub env: Vec<String>,
    /// Gets `http://127.0.0.1:PORT/<route>`.
    pub base_url_env: Option<String>,
}

/// Where a workspace's store keeps the key its phantom tokens derive from.
fn phantom_key_file(store: &ws_snapshot::Store) -> std::path::PathBuf {
    store.root().join("phantom-key")
}

/// The workspace's phantom key: 32 random bytes in its store (which no
/// session can read), made on first use. Made under a temporary name and
/// linked into place, so two sessions starting at once agree on one key.
pub fn phantom_key(store: &ws_snapshot::Store) -> Result<[u8; 32], Error> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = phantom_key_file(store);
    let read = |p: &std::path::Path| -> Result<Option<[u8; 32]>, Error> {
        match std::fs::read(p) {
            Ok(b) => <[u8; 32]>::try_from(b.as_slice()).map(Some).map_err(|_| {
                Error::failure(format!("{} is damaged (not 32 bytes)", p.display()))
                    .hint("remove it: the next session makes a new key (and new phantom keys)")
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::failure(format!("cannot read {}: {e}", p.display()))),
        }
    };
    if let Some(k) = read(&path)? {
        return Ok(k);
    }
    let mut key = [0u8; 32];
    rustix::rand::getrandom(&mut key, rustix::rand::GetRandomFlags::empty())
        .map_err(|e| Error::failure(format!("no random bytes for the phantom key: {e}")))?;
    let tmp = store.root().join(format!("phantom-key.{}.tmp", std::process::id()));
    let made = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(&key).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::hard_link(&tmp, &path));
    let _ = std::fs::remove_file(&tmp);
    match made {
        Ok(()) => Ok(key),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            read(&path)?.ok_or_else(|| Error::failure(format!("{} vanished", path.display())))
        }
        Err(e) => Err(Error::failure(format!("cannot write {}: {e}", path.display()))),
    }
}

/// The profile's credential routes, each with the phantom token of this
/// workspace and route, each real secret fetched here, outside the sandbox.
pub fn routes(
    profile: &Profile,
    store: &ws_snapshot::Store,
    options: &crate::Options,
) -> Result<Vec<RouteSetup>, Error> {
    let mut out = Vec::new();
    let key = if profile.credentials.is_empty() { [0u8; 32] } else { phantom_key(store)? };
    for c in &profile.credentials {
        let upstream = ws_proxy::Upstream::parse(&c.upstream)
            .map_err(|e| Error::usage(format!("profile `{}`: credentials.{}.upstream: {e}", profile.name, c.name)))?;
        let Some(secret) = resolve_secret(c, options)? else { continue };
        out.push(RouteSetup {
            route: ws_proxy::Route {
                name: c.name.clone(),
                secret_name: c.secret.clone(),
                upstream,
                header: c.header.clone(),
                scheme: c.scheme.clone(),
                phantom: ws_proxy::route::stable_phantom(&c.prefix, &key, &[&c.name, &c.upstream, &c.header]),
                secret: ws_proxy::Credential::new(secret),
                limits: ws_proxy::HttpRule { host: String::new(), methods: c.methods.clone(), paths: c.paths.clone() },
                intercept: c.intercept.clone(),
            },
            env: c.env.clone(),
            base_url_env: c.base_url_env.clone(),
        });
    }
    Ok(out)
}

#[derive(Debug)]
pub struct SessionNetwork {
    pub mode: Mode,
    /// Added to the sandbox's scrubbed environment.
    pub env: Vec<(OsString, OsString)>,
    pub spec: NetSpec,
    /// Phantom tokens handed to the sandbox (for the pre-commit hook's scan).
    pub phantoms: Vec<(String, String)>,
    /// The session's interception CA and the files that carry its
    /// certificate into the sandbox, when a route intercepts a host.
    pub intercept: Option<Intercept>,
    events: Events,
    config: Option<ws_proxy::Config>,
    host_listener: Option<TcpListener>,
    channel: Option<OwnedFd>,
    child_channel: Option<OwnedFd>,
    proxy: Option<ws_proxy::Proxy>,
}

/// A random port in 40000..60000 for the proxy inside the session's own
/// namespace (always free there; away from common dev-server ports).
fn random_port() -> u16 {
    let mut b = [0u8; 2];
    let _ = rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty());
    40_000 + u16::from_le_bytes(b) % 20_000
}

impl SessionNetwork {
    /// Builds the proxy's configuration and the sandbox's environment for
    /// `mode`. `routes` are the profile's credential routes, secrets resolved.
    pub fn prepare(
        mode: Mode,
        rules: ws_proxy::NetRules,
        routes: Vec<RouteSetup>,
        extra_ca_pem: Vec<Vec<u8>>,
        tmpdir: Option<&std::path::Path>,
    ) -> Result<SessionNetwork, Error> {
        let (port, spec, host_listener, channel, child_channel, auth_token) = match mode {
            Mode::Namespace => {
                let port = random_port();
                let (ours, theirs) = ws_sandbox::netns::channel().map_err(|e| {
                    Error::failure(format!("cannot prepare the session's network: {}", crate::chain(&e)))
                })?;
                let spec = NetSpec {
                    namespace: Some(NetnsSpec { port, channel_fd: theirs.as_raw_fd() }),
                    connect_ports: vec![],
                };
                (port, spec, None, Some(ours), Some(theirs), None)
            }
            Mode::Filtered => {
                let l = TcpListener::bind("127.0.0.1:0")
                    .map_err(|e| Error::failure(format!("cannot listen on 127.0.0.1 for the session's proxy: {e}")))?;
                let port = l.local_addr().map(|a| a.port()).unwrap_or(0);
                let spec = NetSpec { namespace: None, connect_ports: vec![port] };
                (port, spec, Some(l), None, None, Some(ws_proxy::route::phantom_token("")))
            }
        };
        let exempt = no_proxy(mode, &rules.addresses);
        let proxy_url = match &auth_token {
            Some(t) => format!("http://ws:{t}@127.0.0.1:{port}"),
            None => format!("http://127.0.0.1:{port}"),
        };
        let mut env: Vec<(OsString, OsString)> = Vec::new();
        for k in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"] {
            env.push((k.into(), proxy_url.clone().into()));
        }
        if let Some(exempt) = exempt {
            env.push(("NO_PROXY".into(), exempt.into()));
            env.push(("no_proxy".into(), exempt.into()));
        }
        let mut phantoms = Vec::new();
        for r in &routes {
            phantoms.push((r.route.name.clone(), r.route.phantom.clone()));
            for e in &r.env {
                env.push((e.into(), r.route.phantom.clone().into()));
            }
            if let Some(b) = &r.base_url_env {
                // On the host's loopback (no namespace) the proxy answers a
                // route only under the session's token.
                let under = auth_token.as_ref().map(|t| format!("/{t}")).unwrap_or_default();
                env.push((b.into(), format!("http://127.0.0.1:{port}{under}/{}", r.route.name).into()));
            }
        }
        if let Some(t) = &auth_token {
            phantoms.push((PROXY_TOKEN.into(), t.clone()));
        }
        let routes: Vec<ws_proxy::Route> = routes.into_iter().map(|r| r.route).collect();
        let intercept = Intercept::prepare(&routes, tmpdir)?;
        if let Some(i) = &intercept {
            env.extend(i.env());
        }
        let intercept_ca = intercept.as_ref().map(|i| Arc::clone(&i.ca));
        let config = ws_proxy::Config { rules, routes, auth_token, extra_ca_pem, port, intercept_ca };
        Ok(SessionNetwork {
            mode,
            intercept,
            env,
            spec,
            phantoms,
            events: Arc::default(),
            config: Some(config),
            host_listener,
            channel,
            child_channel,
            proxy: None,
        })
    }

    /// After the launcher is spawned: receive the socket from inside the
    /// session (namespace mode) and start serving. Returns a warning when
    /// the session runs without a proxy (its network is then closed).
    pub fn start(
        &mut self,
        log: Arc<ws_snapshot::audit::AuditLog>,
        observer: Arc<dyn crate::Observer>,
    ) -> Result<Option<String>, Error> {
        drop(self.child_channel.take());
        let listener = match (self.host_listener.take(), &self.channel) {
            (Some(l), _) => Some(l),
            (None, Some(ch)) => ws_sandbox::netns::receive_listener(ch, Duration::from_secs(30))
                .map_err(|e| Error::failure(format!("cannot start the session's proxy: {}", crate::chain(&e))))?,
            (None, None) => None,
        };
        self.channel = None;
        let Some(listener) = listener else {
            return Ok(Some("the session has no network namespace, so no proxy: its network is closed".into()));
        };
        let Some(config) = self.config.take() else { return Ok(None) };
        // Each request goes into the audit log as it ends (`ws log --follow`
        // shows it live), and is kept for the session's summary.
        let events = Arc::clone(&self.events);
        let sink: ws_proxy::EventSink = Box::new(move |e| {
            let logged = log.append(e.time_ms, crate::recording::net_event(&e)).and_then(|_| log.flush());
            if let Err(err) = logged {
                observer.event(&crate::Event::Warning(&format!(
                    "a network request was not recorded: {}",
                    crate::chain(&err)
                )));
            }
            events.lock().unwrap_or_else(|p| p.into_inner()).push(e);
        });
        let proxy = ws_proxy::Proxy::start(config, listener, sink)
            .map_err(|e| Error::failure(format!("cannot start the session's proxy: {}", crate::chain(&e))))?;
        self.proxy = Some(proxy);
        Ok(None)
    }

    /// Stops the proxy and returns every request seen (tunnels whose clients
    /// are gone get a moment to end and report).
    pub fn stop(&mut self) -> Vec<RequestEvent> {
        drop(self.proxy.take());
        std::mem::take(&mut *self.events.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// A session's interception CA: its key stays in the proxy; its certificate
/// goes into the sandbox in two files in a private temporary directory
/// (removed with the session): `ca.pem` alone, for clients that add to the
/// system's roots, and `bundle.pem`, the system's roots plus it, for clients
/// that take a replacement.
#[derive(Debug)]
pub struct Intercept {
    pub ca: Arc<ws_proxy::SessionCa>,
    pub dir: tempfile::TempDir,
}

impl Intercept {
    /// `None` when no route (with its secret present) intercepts a host.
    fn prepare(routes: &[ws_proxy::Route], tmpdir: Option<&std::path::Path>) -> Result<Option<Intercept>, Error> {
        let mut hosts: Vec<String> = routes.iter().flat_map(|r| r.intercept.iter().cloned()).collect();
        hosts.sort();
        hosts.dedup();
        if hosts.is_empty() {
            return Ok(None);
        }
        let ca = ws_proxy::SessionCa::new(&hosts).map_err(Error::failure)?;
        let tmp = tmpdir.map_or_else(|| std::path::PathBuf::from("/tmp"), std::path::Path::to_path_buf);
        let dir = tempfile::Builder::new().prefix("ws-session-ca-").tempdir_in(&tmp).map_err(|e| {
            Error::failure(format!("cannot make a directory for the session's CA in {}: {e}", tmp.display()))
                .hint("set TMPDIR to a writable directory")
        })?;
        let pem = ca.cert_pem();
        let bundle = format!("{}{pem}", ws_proxy::intercept::system_roots_pem());
        for (name, text) in [("ca.pem", &pem), ("bundle.pem", &bundle)] {
            let path = dir.path().join(name);
            fs_err::write(&path, text).map_err(|e| Error::failure(format!("cannot write the session's CA: {e}")))?;
        }
        Ok(Some(Intercept { ca: Arc::new(ca), dir }))
    }

    /// What tells the session's clients to trust the CA: Node.js (and
    /// Claude Code's runtime) adds `NODE_EXTRA_CA_CERTS` to its roots;
    /// OpenSSL, Python, curl, Go and Codex take a bundle.
    fn env(&self) -> Vec<(OsString, OsString)> {
        let ca = self.dir.path().join("ca.pem");
        let bundle = self.dir.path().join("bundle.pem");
        let mut v: Vec<(OsString, OsString)> = vec![("NODE_EXTRA_CA_CERTS".into(), ca.into_os_string())];
        for k in ["SSL_CERT_FILE", "CODEX_CA_CERTIFICATE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"] {
            v.push((k.into(), bundle.clone().into_os_string()));
        }
        v
    }
}

/// Where a workspace's store keeps the fingerprints of the phantom tokens
/// its sessions were given (for the pre-commit hook).
pub fn phantom_file(store: &ws_snapshot::Store) -> std::path::PathBuf {
    store.root().join("phantom-fingerprints.json")
}

/// The name under which the proxy's own token is among the phantoms.
const PROXY_TOKEN: &str = "proxy-authorization";

/// How many phantom fingerprints a store keeps: the newest.
const PHANTOMS_KEPT: usize = 500;

/// Adds this session's phantom tokens to the store's fingerprint file. Call
/// with the store locked.
pub fn record_phantoms(store: &ws_snapshot::Store, session: &str, phantoms: &[(String, String)]) -> Result<(), Error> {
    if phantoms.is_empty() {
        return Ok(());
    }
    let path = phantom_file(store);
    let mut file = ws_hooks::FingerprintFile::load(&path).map_err(|e| Error::failure(crate::chain(&e)))?;
    for (what, token) in phantoms {
        // A route's phantom is the workspace's, the same at every session:
        // one fingerprint, replaced rather than added again.
        let name = if what == PROXY_TOKEN {
            format!("the proxy token of session {session}")
        } else {
            format!("the phantom token `{what}` of this workspace")
        };
        file.add(ws_hooks::Fingerprint::of(&name, token.as_bytes()));
    }
    let excess = file.fingerprints.len().saturating_sub(PHANTOMS_KEPT);
    file.fingerprints.drain(..excess);
    file.save(&path).map_err(|e| Error::failure(crate::chain(&e)))
}

/// The profile's `[network]` as the proxy's rules; bad entries were refused
/// when the profile was checked.
pub fn rules(profile: &Profile) -> ws_proxy::NetRules {
    ws_proxy::NetRules {
        origin: format!("profile {}", profile.name),
        hosts: profile.network.hosts.clone(),
        addresses: profile.network.addresses.iter().filter_map(|a| ws_proxy::Cidr::parse(a)).collect(),
        http: profile
            .network
            .http
            .iter()
            .map(|h| ws_proxy::HttpRule { host: h.host.clone(), methods: h.methods.clone(), paths: h.paths.clone() })
            .collect(),
    }
}

/// Fetches the real secret of a credential route, outside the sandbox: from
/// the secret store (`ws secret set`), or the profile's `env:`, `file:` or
/// `cmd:` source.
/// `Ok(None)`: the route is optional and its stored secret does not exist
/// (said in a note).
pub fn resolve_secret(
    c: &ws_sandbox::profile::CredentialSpec,
    options: &crate::Options,
) -> Result<Option<Vec<u8>>, Error> {
    use ws_proxy::secrets::{SecretError, SecretSource, StoreError};
    let in_route = |mut e: Error| {
        e.message = format!("credential route `{}`: {}", c.name, e.message);
        e
    };
    let source = SecretSource::parse(&c.secret).map_err(|e| {
        in_route(Error::usage(e.to_string()))
            .hint("`secret` is a stored name (`ws secret set NAME`), `env:VAR`, `file:/ABS/PATH` or `cmd:COMMAND`")
    })?;
    let secrets = options.secrets.as_deref();
    let store = if source.needs_store() {
        let Some(secrets) = secrets else {
            return Err(in_route(Error::usage("no secret store was given to this program"))
                .hint("use a `file:` or `cmd:` source, or run the session with `ws`"));
        };
        Some(secrets.store().map_err(in_route)?)
    } else {
        None
    };
    let var = |name: &str| secrets.and_then(|s| s.var(name));
    let secret = match source.resolve(store.as_deref(), &var) {
        Ok(s) => s,
        Err(SecretError::Store { source: StoreError::NotFound { store: kind, name }, .. }) if c.optional => {
            options.note(&format!(
                "credential route `{}` is off: no secret `{name}` in the {kind} store (`ws secret set {name}` turns it on)",
                c.name
            ));
            return Ok(None);
        }
        Err(SecretError::Store { source: StoreError::NotFound { store: kind, name }, .. }) => {
            return Err(in_route(Error::usage(format!("no secret `{name}` in the {kind} store")))
                .hint(format!("store it with `ws secret set {name}` (the value on stdin)")));
        }
        Err(SecretError::Store { source, .. }) => {
            let kind = store.as_ref().map_or(ws_proxy::secrets::StoreKind::Keyutils, |s| s.kind());
            return Err(in_route(match secrets {
                Some(s) => s.store_error(source, kind),
                None => Error::failure(crate::chain(&source)),
            }));
        }
        Err(other) => return Err(in_route(Error::usage(crate::chain(&other)))),
    };
    Ok(Some(secret.expose().to_vec()))
}

#[cfg(test)]
mod tests {
    use super::Mode;

    #[test]
    fn only_a_sessions_own_loopback_is_exempt_from_the_proxy() {
        use super::{LOOPBACK_NO_PROXY, no_proxy};
        let cidrs = |l: &[&str]| l.iter().filter_map(|c| ws_proxy::Cidr::parse(c)).collect::<Vec<_>>();
        assert_eq!(no_proxy(Mode::Namespace, &[]), Some(LOOPBACK_NO_PROXY));
        assert_eq!(no_proxy(Mode::Namespace, &cidrs(&["10.0.0.0/8"])), Some(LOOPBACK_NO_PROXY));
        // The profile asks for the host's loopback through the proxy.
        assert_eq!(no_proxy(Mode::Namespace, &cidrs(&["127.0.0.1"])), None);
        assert_eq!(no_proxy(Mode::Namespace, &cidrs(&["::/0"])), None);
        // Without a namespace the loopback is the host's: nothing is exempt.
        assert_eq!(no_proxy(Mode::Filtered, &[]), None);
    }

    #[test]
    fn the_mode_follows_the_machine() {
        assert_eq!(Mode::choose(true, 0), Some(Mode::Namespace));
        assert_eq!(Mode::choose(false, 4), Some(Mode::Filtered));
        assert_eq!(Mode::choose(false, 3), None);
    }
}
