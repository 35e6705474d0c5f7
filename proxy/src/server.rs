//! The proxy itself: one per session, on its own thread with a
//! single-threaded tokio runtime, serving a listening socket it is given
//! (inside the session's network namespace, or on the host's loopback).
//!
//! Three kinds of request arrive:
//! - `CONNECT host:port` — an opaque tunnel (HTTPS); the host is checked, then
//!   every resolved address, then bytes are copied both ways;
//! - `GET http://host/path` (absolute form) — plain HTTP, checked down to
//!   method and path, forwarded;
//! - `GET /route/path` (origin form, the base URL given for a credential
//!   route) — the phantom token is checked and swapped for the real secret,
//!   and the request goes to the route's upstream over TLS.
//!
//! Every request ends as one [`RequestEvent`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::route::Route;
use crate::rules::{NetRules, Verdict, split_authority};

type ResBody = UnsyncBoxBody<Bytes, hyper::Error>;

/// One request, as the audit log records it. Never carries a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestEvent {
    pub time_ms: u64,
    pub method: String,
    pub host: String,
    pub port: u16,
    pub path: String,
    pub allowed: bool,
    pub rule: String,
    /// Why a request was refused or failed.
    pub reason: Option<String>,
    pub status: Option<u16>,
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// The credential route used, by secret name.
    pub credential: Option<String>,
}

/// Receives every [`RequestEvent`]; called on the proxy's thread.
pub type EventSink = Box<dyn Fn(RequestEvent) + Send + Sync>;

#[derive(Debug)]
pub struct Config {
    pub rules: NetRules,
    pub routes: Vec<Route>,
    /// When set, proxy requests must carry `Proxy-Authorization` with this
    /// token (the session shares the host's loopback with other processes).
    pub auth_token: Option<String>,
    /// Extra CA certificates (PEM) trusted for credential-route upstreams,
    /// besides the system's roots.
    pub extra_ca_pem: Vec<Vec<u8>>,
    /// The port the sandbox reaches the proxy at, to recognise requests for
    /// credential routes sent in absolute form.
    pub port: u16,
    /// The session's interception CA, when a route intercepts a host.
    pub intercept_ca: Option<Arc<crate::intercept::SessionCa>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot start the proxy's runtime")]
    Runtime(#[source] std::io::Error),
    #[error("cannot serve the proxy's socket")]
    Listener(#[source] std::io::Error),
}

/// A running proxy. Stops when dropped.
#[derive(Debug)]
pub struct Proxy {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// CONNECT tunnels still running on their own threads.
    tunnels: Arc<AtomicU64>,
}

impl Proxy {
    /// Serves `listener` until the returned handle is dropped.
    pub fn start(config: Config, listener: std::net::TcpListener, sink: EventSink) -> Result<Proxy, ProxyError> {
        listener.set_nonblocking(true).map_err(ProxyError::Listener)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .max_blocking_threads(4)
            .thread_keep_alive(Duration::from_secs(2))
            .build()
            .map_err(ProxyError::Runtime)?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let tunnels = Arc::new(AtomicU64::new(0));
        let shared = Arc::new(Shared {
            config,
            sink,
            tls: std::sync::OnceLock::new(),
            pool: Mutex::default(),
            tunnels: Arc::clone(&tunnels),
        });
        let listener = {
            let _guard = runtime.enter();
            tokio::net::TcpListener::from_std(listener).map_err(ProxyError::Listener)?
        };
        let thread = std::thread::Builder::new()
            .name("ws-proxy".into())
            .spawn(move || {
                runtime.block_on(async move {
                    tokio::select! {
                        _ = stopped => {}
                        _ = accept_loop(listener, shared) => {}
                    }
                });
                runtime.shutdown_timeout(Duration::from_millis(200));
            })
            .map_err(ProxyError::Runtime)?;
        Ok(Proxy { stop: Some(stop), thread: Some(thread), tunnels })
    }
}

impl Drop for Proxy {
    /// Stops serving. Tunnels whose clients are gone end by themselves; they
    /// get a moment to do so, so that their records are not lost.
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        for _ in 0..100 {
            if self.tunnels.load(Ordering::Acquire) == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

struct Shared {
    config: Config,
    sink: EventSink,
    tls: std::sync::OnceLock<Result<tokio_rustls::TlsConnector, String>>,
    tunnels: Arc<AtomicU64>,
    /// Idle upstream connections by (tls, host, port).
    pool: Mutex<HashMap<PoolKey, Vec<Sender>>>,
}

async fn accept_loop(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            // Out of descriptors or the like: wait rather than spin.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let shared = Arc::clone(&shared);
                async move { Ok::<_, std::convert::Infallible>(handle(shared, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .preserve_header_case(true)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn text(status: StatusCode, body: String) -> Response<ResBody> {
    let mut r = Response::new(Full::new(Bytes::from(body)).map_err(|never| match never {}).boxed_unsync());
    *r.status_mut() = status;
    r.headers_mut().insert(hyper::header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

/// The event for a request, filled in as it goes.
struct Pending {
    event: RequestEvent,
    up: Arc<AtomicU64>,
    down: Arc<AtomicU64>,
}

impl Pending {
    fn new(method: &str, host: &str, port: u16, path: &str) -> Pending {
        Pending {
            event: RequestEvent {
                time_ms: now_ms(),
                method: method.to_owned(),
                host: host.to_owned(),
                port,
                path: path.to_owned(),
                allowed: false,
                rule: String::new(),
                reason: None,
                status: None,
                bytes_up: 0,
                bytes_down: 0,
                credential: None,
            },
            up: Arc::default(),
            down: Arc::default(),
        }
    }

    fn finish(mut self, shared: &Shared) {
        self.event.bytes_up = self.up.load(Ordering::Relaxed);
        self.event.bytes_down = self.down.load(Ordering::Relaxed);
        (shared.sink)(self.event);
    }

    /// Refuses the request: 403 (or `status`) with a body that says why and
    /// what would allow it.
    fn refuse(mut self, shared: &Shared, status: StatusCode, rule: &str, reason: String) -> Response<ResBody> {
        self.event.allowed = false;
        self.event.rule = rule.to_owned();
        self.event.status = Some(status.as_u16());
        let what = format!("{} {}{}", self.event.method, self.event.host, self.event.path);
        // Advice that fits the refusal: a wrong key is not a host problem.
        let advice = if rule.starts_with("credentials.") {
            "A credential route takes only the phantom key this session was given (in the variable its profile names; `ws profile show` lists the route) and the methods and paths the route allows.".to_owned()
        } else if rule == "proxy authorization" || rule == "no route" || rule == "malformed" {
            "Use the proxy and base URLs from the session's environment (HTTP_PROXY, the routes' *_BASE_URL variables)."
                .to_owned()
        } else {
            format!(
                "The session's network is deny-by-default; `ws why --host {}` explains, and a profile's [network] hosts / addresses allow more.",
                self.event.host
            )
        };
        let body = format!("ws proxy: {what} refused ({rule}): {reason}.\n{advice}\n");
        self.event.reason = Some(reason);
        let mut r = text(status, body);
        if let Ok(v) = HeaderValue::from_str(rule) {
            r.headers_mut().insert(HeaderName::from_static("x-ws-rule"), v);
        }
        self.finish(shared);
        r
    }

    fn fail(mut self, shared: &Shared, reason: String) -> Response<ResBody> {
        self.event.status = Some(502);
        let body = format!("ws proxy: cannot reach {}:{}: {reason}\n", self.event.host, self.event.port);
        self.event.reason = Some(reason);
        self.finish(shared);
        text(StatusCode::BAD_GATEWAY, body)
    }
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<ResBody> {
    if req.method() == Method::CONNECT {
        return connect(shared, req).await;
    }
    let uri = req.uri().clone();
    let path = uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "/".into());
    match uri.authority() {
        Some(a) if !is_self(&shared.config, a.as_str()) => forward_plain(shared, req).await,
        _ => match &shared.config.auth_token {
            // On the host's loopback anyone may connect: a route answers
            // only under the session's token, so a phantom (stable per
            // workspace) is of no use to another process of the machine.
            Some(token) => match crate::route::strip_session_token(&path, token) {
                Some(rest) => forward_route(shared, req, rest).await,
                None => {
                    let p = Pending::new(req.method().as_str(), PROXY_HOST, shared.config.port, "/…");
                    p.refuse(
                        &shared,
                        StatusCode::FORBIDDEN,
                        "proxy authorization",
                        "credential routes are reached only at the base URLs this session was given".into(),
                    )
                }
            },
            None => forward_route(shared, req, path).await,
        },
    }
}

/// The host an event names when a request was for the proxy itself (a
/// route, or a tunnel to its own port), not for a host of the network.
pub const PROXY_HOST: &str = "(proxy)";

fn is_self(config: &Config, authority: &str) -> bool {
    matches!(split_authority(authority, 80), Some((h, p)) if p == config.port && (h == "127.0.0.1" || h == "localhost" || h == "::1"))
}

/// Checks `Proxy-Authorization` when the proxy needs it.
fn authorized(config: &Config, headers: &HeaderMap) -> bool {
    let Some(token) = &config.auth_token else { return true };
    let Some(v) = headers.get(hyper::header::PROXY_AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let given = if let Some(b) = v.strip_prefix("Basic ") {
        use base64::Engine;
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b.trim()) else { return false };
        let s = String::from_utf8_lossy(&raw).into_owned();
        s.split_once(':').map(|(_, p)| p.to_owned()).unwrap_or_default()
    } else if let Some(b) = v.strip_prefix("Bearer ") {
        b.trim().to_owned()
    } else {
        return false;
    };
    crate::route::constant_time_eq(given.as_bytes(), token.as_bytes())
}

fn proxy_auth_required(mut p: Pending, shared: &Shared) -> Response<ResBody> {
    p.event.rule = "proxy authorization".into();
    p.event.status = Some(407);
    p.event.reason = Some("missing or wrong Proxy-Authorization".into());
    p.finish(shared);
    let mut r = text(
        StatusCode::PROXY_AUTHENTICATION_REQUIRED,
        "ws proxy: this proxy serves one ws session; use the HTTP(S)_PROXY address the session was given\n".into(),
    );
    r.headers_mut().insert(hyper::header::PROXY_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"ws\""));
    r
}

/// Resolves `host` and connects to the first address the rules allow.
async fn dial(rules: &NetRules, host: &str, port: u16) -> Result<TcpStream, DialError> {
    let addrs: Vec<SocketAddr> = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => match tokio::time::timeout(Duration::from_secs(10), tokio::net::lookup_host((host, port))).await {
            Ok(Ok(a)) => a.collect(),
            Ok(Err(e)) => return Err(DialError::Unreachable(format!("cannot resolve {host}: {e}"))),
            Err(_) => return Err(DialError::Unreachable(format!("resolving {host} timed out"))),
        },
    };
    let mut refused = None;
    let mut last = None;
    for a in addrs {
        if let Err(why) = rules.check_address(a.ip()) {
            refused.get_or_insert(why);
            continue;
        }
        match tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(a)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Ok(Err(e)) => last = Some(format!("{a}: {e}")),
            Err(_) => last = Some(format!("{a}: connection timed out")),
        }
    }
    match (last, refused) {
        (Some(e), _) => Err(DialError::Unreachable(e)),
        (None, Some(why)) => Err(DialError::Refused(why)),
        (None, None) => Err(DialError::Unreachable(format!("{host} has no address"))),
    }
}

enum DialError {
    /// An address the rules do not allow.
    Refused(String),
    Unreachable(String),
}

async fn connect(shared: Arc<Shared>, req: Request<Incoming>) -> Response<ResBody> {
    let authority = req.uri().authority().map(|a| a.as_str().to_owned()).unwrap_or_default();
    let (host, port) = split_authority(&authority, 443).unwrap_or_else(|| (authority.clone(), 0));
    let mut p = Pending::new("CONNECT", &host, port, "");
    if !authorized(&shared.config, req.headers()) {
        return proxy_auth_required(p, &shared);
    }
    if port == 0 {
        return p.refuse(&shared, StatusCode::BAD_REQUEST, "malformed", format!("`{authority}` is not host:port"));
    }
    if is_self(&shared.config, &authority) {
        // A client tunnelling to the proxy through the proxy: no profile
        // line is about this, so it is not the host's refusal.
        p.event.host = PROXY_HOST.into();
        let reason = "a tunnel through the proxy to the proxy itself".into();
        return p.refuse(&shared, StatusCode::FORBIDDEN, "no route", reason);
    }
    if port == 443
        && shared.config.intercept_ca.is_some()
        && let Some(idx) = shared.config.routes.iter().position(|r| r.intercepts(&host))
    {
        return intercept(shared, req, p, idx, host);
    }
    let rule = match shared.config.rules.decide_host(&host, port) {
        Verdict::Allow { rule } => rule,
        Verdict::Deny { rule, reason } => return p.refuse(&shared, StatusCode::FORBIDDEN, &rule, reason),
    };
    let upstream = match dial(&shared.config.rules, &host, port).await {
        Ok(s) => s,
        Err(DialError::Refused(why)) => {
            return p.refuse(&shared, StatusCode::FORBIDDEN, "network.addresses", why);
        }
        Err(DialError::Unreachable(why)) => {
            p.event.allowed = true;
            p.event.rule = rule;
            return p.fail(&shared, why);
        }
    };
    p.event.allowed = true;
    p.event.rule = rule;
    p.event.status = Some(200);
    let shared2 = Arc::clone(&shared);
    tokio::spawn(async move {
        let Ok(upgraded) = hyper::upgrade::on(req).await else {
            p.finish(&shared2);
            return;
        };
        // The plain-TCP case, always ours: hand both sockets to the splice
        // tunnel, after the bytes the client sent behind its CONNECT.
        match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => {
                let slot = Mutex::new(Some(p));
                shared2.tunnels.fetch_add(1, Ordering::AcqRel);
                let finish = Arc::new(move |up: u64, down: u64| {
                    if let Some(p) = slot.lock().unwrap_or_else(|e| e.into_inner()).take() {
                        p.up.store(up, Ordering::Relaxed);
                        p.down.store(down, Ordering::Relaxed);
                        p.finish(&shared2);
                        shared2.tunnels.fetch_sub(1, Ordering::AcqRel);
                    }
                });
                let f = Arc::clone(&finish);
                if splice_tunnel(parts, upstream, Box::new(move |u, d| f(u, d))).is_err() {
                    finish(0, 0);
                }
            }
            Err(upgraded) => {
                let mut client = TokioIo::new(upgraded);
                let mut upstream = upstream;
                if let Ok((up, down)) =
                    tokio::io::copy_bidirectional_with_sizes(&mut client, &mut upstream, 256 * 1024, 256 * 1024).await
                {
                    p.up.store(up, Ordering::Relaxed);
                    p.down.store(down, Ordering::Relaxed);
                }
                p.finish(&shared2);
            }
        }
    });
    Response::new(http_body_util::Empty::new().map_err(|never| match never {}).boxed_unsync())
}

/// The plain-TCP case, always ours: both sockets go to the splice tunnel,
/// after the bytes the client already sent behind its CONNECT.
fn splice_tunnel(
    parts: hyper::upgrade::Parts<TokioIo<TcpStream>>,
    upstream: TcpStream,
    done: Box<dyn FnOnce(u64, u64) + Send>,
) -> std::io::Result<()> {
    let early = parts.read_buf;
    let client = parts.io.into_inner().into_std()?;
    let upstream = upstream.into_std()?;
    client.set_nonblocking(false)?;
    upstream.set_nonblocking(false)?;
    std::io::Write::write_all(&mut &upstream, &early)?;
    let sent_early = early.len() as u64;
    crate::tunnel::spawn(client, upstream, Box::new(move |up, down| done(up + sent_early, down)))
}

/// Headers that belong to one hop, never forwarded.
const HOP: &[&str] = &[
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn strip_hop_headers(h: &mut HeaderMap) {
    let listed: Vec<HeaderName> = h
        .get_all(hyper::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_ascii_lowercase()).collect::<Vec<_>>())
        .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
        .collect();
    for n in listed {
        h.remove(n);
    }
    for n in HOP {
        h.remove(*n);
    }
}

async fn forward_plain(shared: Arc<Shared>, req: Request<Incoming>) -> Response<ResBody> {
    let uri = req.uri().clone();
    let authority = uri.authority().map(|a| a.as_str().to_owned()).unwrap_or_default();
    let (host, port) = split_authority(&authority, 80).unwrap_or_else(|| (authority.clone(), 0));
    let path = uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "/".into());
    let p = Pending::new(req.method().as_str(), &host, port, &path);
    if !authorized(&shared.config, req.headers()) {
        return proxy_auth_required(p, &shared);
    }
    if uri.scheme_str() != Some("http") || port == 0 {
        return p.refuse(
            &shared,
            StatusCode::BAD_REQUEST,
            "malformed",
            format!("only http:// URLs are proxied in the clear (got {uri}); use CONNECT for https"),
        );
    }
    as_is(shared, req, p, false, &host, port, &path).await
}

/// A request that is no route's, to `host:port` under the host rules (down
/// to method and path), sent on unchanged but for its hop-by-hop headers.
async fn as_is(
    shared: Arc<Shared>,
    mut req: Request<Incoming>,
    p: Pending,
    tls: bool,
    host: &str,
    port: u16,
    path: &str,
) -> Response<ResBody> {
    let rule = match shared.config.rules.decide_request(host, port, req.method().as_str(), path) {
        Verdict::Allow { rule } => rule,
        Verdict::Deny { rule, reason } => return p.refuse(&shared, StatusCode::FORBIDDEN, &rule, reason),
    };
    let upgrade = take_upgrade(&mut req);
    strip_hop_headers(req.headers_mut());
    *req.uri_mut() = match path.parse() {
        Ok(u) => u,
        Err(_) => return p.refuse(&shared, StatusCode::BAD_REQUEST, "malformed", format!("bad path {path}")),
    };
    send(shared, req, p, rule, tls, host, port, None, upgrade).await
}

async fn forward_route(shared: Arc<Shared>, mut req: Request<Incoming>, path: String) -> Response<ResBody> {
    let Some((name, rest)) = crate::route::split_route_path(&path) else {
        let p = Pending::new(req.method().as_str(), PROXY_HOST, shared.config.port, &path);
        return p.refuse(&shared, StatusCode::NOT_FOUND, "no route", "the path names no credential route".into());
    };
    let Some(idx) = shared.config.routes.iter().position(|r| r.name == name) else {
        let p = Pending::new(req.method().as_str(), PROXY_HOST, shared.config.port, &path);
        let known: Vec<&str> = shared.config.routes.iter().map(|r| r.name.as_str()).collect();
        return p.refuse(
            &shared,
            StatusCode::NOT_FOUND,
            "no route",
            format!(
                "no credential route `{name}` (routes: {})",
                if known.is_empty() { "none".into() } else { known.join(", ") }
            ),
        );
    };
    let route = &shared.config.routes[idx];
    let up = route.upstream.clone();
    let full_path = format!("{}{rest}", up.base_path);
    let mut p = Pending::new(req.method().as_str(), &up.host, up.port, &full_path);
    p.event.credential = Some(route.secret_name.clone());
    let rule = format!("credentials.{}", route.name);
    let carried = req.headers().get(route.header.as_str()).map(|v| v.as_bytes().to_vec());
    if !carried.as_deref().is_some_and(|v| route.accepts(v)) {
        return p.refuse(
            &shared,
            StatusCode::UNAUTHORIZED,
            &rule,
            format!("the request does not carry this session's phantom token in `{}`", route.header),
        );
    }
    let rest_path = rest.split('?').next().unwrap_or("/").to_owned();
    if let Some(reason) = route.limits.refuses(req.method().as_str(), &rest_path) {
        return p.refuse(&shared, StatusCode::FORBIDDEN, &rule, reason);
    }
    let upgrade = take_upgrade(&mut req);
    if let Err(why) = swap_secret(route, &mut req, &full_path) {
        return p.fail(&shared, why);
    }
    send(Arc::clone(&shared), req, p, rule, up.https, &up.host, up.port, Some(idx), upgrade).await
}

/// Replaces the phantom with the real secret and points the request at
/// `path` on the upstream; hop-by-hop headers go.
fn swap_secret(route: &Route, req: &mut Request<Incoming>, path: &str) -> Result<(), String> {
    strip_hop_headers(req.headers_mut());
    let Ok(mut secret) = HeaderValue::from_bytes(&route.upstream_value()) else {
        return Err(format!("the secret for route `{}` is not a valid header value", route.name));
    };
    secret.set_sensitive(true);
    req.headers_mut().insert(HeaderName::from_bytes(route.header.as_bytes()).expect("checked when parsed"), secret);
    *req.uri_mut() = path.parse().map_err(|_| format!("bad path {path}"))?;
    Ok(())
}

/// Answers a `CONNECT` to a host a route intercepts: TLS with a certificate
/// from the session's CA, then each request inside is served as the route's
/// (phantom swapped) or, carrying no phantom, as an ordinary request to the
/// host under the host rules.
fn intercept(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    mut p: Pending,
    idx: usize,
    host: String,
) -> Response<ResBody> {
    let Some(ca) = shared.config.intercept_ca.clone() else {
        return p.fail(&shared, "no interception CA".into());
    };
    tokio::spawn(async move {
        let Ok(upgraded) = hyper::upgrade::on(req).await else { return };
        let rule = format!("credentials.{}", shared.config.routes[idx].name);
        let tls = match ca.server(&host) {
            Ok(server) => tokio_rustls::TlsAcceptor::from(server).accept(TokioIo::new(upgraded)).await.map_err(|e| {
                format!(
                    "the client refused the session's certificate for {host} ({e}): it must trust the session's CA \
                     (SSL_CERT_FILE, NODE_EXTRA_CA_CERTS and the like name it)"
                )
            }),
            Err(e) => Err(e),
        };
        let tls = match tls {
            Ok(t) => t,
            Err(why) => {
                p.event.rule = rule;
                p.event.reason = Some(why);
                p.finish(&shared);
                return;
            }
        };
        let service = hyper::service::service_fn(move |req| {
            let (shared, host) = (Arc::clone(&shared), host.clone());
            async move { Ok::<_, std::convert::Infallible>(forward_intercepted(shared, req, idx, &host).await) }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .preserve_header_case(true)
            .serve_connection(TokioIo::new(tls), service)
            .with_upgrades()
            .await;
    });
    Response::new(http_body_util::Empty::new().map_err(|never| match never {}).boxed_unsync())
}

/// One request inside an intercepted connection to `host`.
async fn forward_intercepted(
    shared: Arc<Shared>,
    mut req: Request<Incoming>,
    idx: usize,
    host: &str,
) -> Response<ResBody> {
    let route = &shared.config.routes[idx];
    let path = req.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "/".into());
    let method = req.method().as_str().to_owned();
    let carried = req.headers().get(route.header.as_str()).map(|v| v.as_bytes().to_vec());
    if !carried.as_deref().is_some_and(|v| route.accepts(v)) {
        // Not the route's: the client's own credential (a subscription
        // login, say) goes to the host as it would through a tunnel, if the
        // host rules allow the host.
        let p = Pending::new(&method, host, 443, &path);
        return as_is(Arc::clone(&shared), req, p, true, host, 443, &path).await;
    }
    // The client's path is kept as it is: it speaks the upstream's API.
    let up = route.upstream.clone();
    let mut p = Pending::new(&method, &up.host, up.port, &path);
    p.event.credential = Some(route.secret_name.clone());
    let rule = format!("credentials.{}", route.name);
    let relative = path.split('?').next().unwrap_or("/");
    let relative = relative.strip_prefix(up.base_path.as_str()).filter(|r| r.is_empty() || r.starts_with('/'));
    let Some(relative) = relative else {
        let reason = format!("the path is not under the route's upstream {}", route.upstream.base_path);
        return p.refuse(&shared, StatusCode::FORBIDDEN, &rule, reason);
    };
    let relative = if relative.is_empty() { "/" } else { relative };
    if let Some(reason) = route.limits.refuses(&method, relative) {
        return p.refuse(&shared, StatusCode::FORBIDDEN, &rule, reason);
    }
    let upgrade = take_upgrade(&mut req);
    if let Err(why) = swap_secret(route, &mut req, &path) {
        return p.fail(&shared, why);
    }
    send(Arc::clone(&shared), req, p, rule, up.https, &up.host, up.port, Some(idx), upgrade).await
}

/// A request asking to switch protocols (a WebSocket): the client's side of
/// the upgrade, and the protocol asked for.
struct Upgrade {
    client: hyper::upgrade::OnUpgrade,
    protocol: HeaderValue,
}

fn take_upgrade(req: &mut Request<Incoming>) -> Option<Upgrade> {
    let protocol = req.headers().get(hyper::header::UPGRADE)?.clone();
    let asked = req
        .headers()
        .get_all(hyper::header::CONNECTION)
        .iter()
        .any(|v| v.to_str().is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade"))));
    asked.then(|| Upgrade { client: hyper::upgrade::on(&mut *req), protocol })
}

type ForwardBody = Counted<Incoming>;
type Sender = hyper::client::conn::http1::SendRequest<ForwardBody>;
/// Upstream connections are shared by (tls, host, port).
type PoolKey = (bool, String, u16);

/// Sends `req` to `host:port` (a pooled connection if one is idle), and
/// streams the answer back. `scrub` names the route whose secret must not
/// appear in the response headers.
#[allow(clippy::too_many_arguments)]
async fn send(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    mut p: Pending,
    rule: String,
    tls: bool,
    host: &str,
    port: u16,
    scrub: Option<usize>,
    upgrade: Option<Upgrade>,
) -> Response<ResBody> {
    p.event.allowed = true;
    p.event.rule = rule;
    let authority =
        if (tls && port == 443) || (!tls && port == 80) { host.to_owned() } else { format!("{host}:{port}") };
    let (mut parts, body) = req.into_parts();
    if let Ok(v) = HeaderValue::from_str(&authority) {
        parts.headers.insert(hyper::header::HOST, v);
    }
    if let Some(u) = &upgrade {
        parts.headers.insert(hyper::header::CONNECTION, HeaderValue::from_static("upgrade"));
        parts.headers.insert(hyper::header::UPGRADE, u.protocol.clone());
    }
    let req = Request::from_parts(parts, Counted { inner: body, count: Arc::clone(&p.up) });
    let key = (tls, host.to_owned(), port);
    // An upgraded connection is the client's alone: never from the pool.
    let idle = if upgrade.is_none() { take_idle(&shared, &key) } else { None };
    let mut sender = match idle {
        Some(s) => s,
        None => match open(&shared, tls, host, port).await {
            Ok(s) => s,
            Err(DialError::Refused(why)) => return p.refuse(&shared, StatusCode::FORBIDDEN, "network.addresses", why),
            Err(DialError::Unreachable(why)) => return p.fail(&shared, why),
        },
    };
    let res = match sender.send_request(req).await {
        Ok(r) => r,
        Err(e) => return p.fail(&shared, e.to_string()),
    };
    if let Some(u) = upgrade {
        if res.status() == StatusCode::SWITCHING_PROTOCOLS {
            return switched(shared, p, u, res, scrub);
        }
    } else {
        put_idle(&shared, key, sender);
    }
    let (mut parts, body) = res.into_parts();
    strip_hop_headers(&mut parts.headers);
    if let Some(idx) = scrub {
        scrub_secret(&mut parts.headers, shared.config.routes[idx].secret.expose());
    }
    p.event.status = Some(parts.status.as_u16());
    let down = Arc::clone(&p.down);
    let body = Finishing { inner: Counted { inner: body, count: down }, done: Some((p, Arc::clone(&shared))) };
    Response::from_parts(parts, body.boxed_unsync())
}

/// The upstream agreed to switch protocols: the client gets the 101, and the
/// two upgraded connections are joined until either side ends.
fn switched(
    shared: Arc<Shared>,
    mut p: Pending,
    upgrade: Upgrade,
    mut res: Response<Incoming>,
    scrub: Option<usize>,
) -> Response<ResBody> {
    let upstream = hyper::upgrade::on(&mut res);
    let (mut parts, _) = res.into_parts();
    strip_hop_headers(&mut parts.headers);
    if let Some(idx) = scrub {
        scrub_secret(&mut parts.headers, shared.config.routes[idx].secret.expose());
    }
    parts.headers.insert(hyper::header::CONNECTION, HeaderValue::from_static("upgrade"));
    parts.headers.insert(hyper::header::UPGRADE, upgrade.protocol);
    p.event.status = Some(101);
    tokio::spawn(async move {
        if let (Ok(client), Ok(upstream)) = (upgrade.client.await, upstream.await) {
            let (client_r, client_w) = tokio::io::split(TokioIo::new(client));
            let (upstream_r, upstream_w) = tokio::io::split(TokioIo::new(upstream));
            tokio::join!(pump(client_r, upstream_w, &p.up), pump(upstream_r, client_w, &p.down));
        }
        p.finish(&shared);
    });
    Response::from_parts(parts, http_body_util::Empty::new().map_err(|never| match never {}).boxed_unsync())
}

/// Copies until EOF or an error, counting as it goes (a connection that
/// ends in a reset still reports what it carried); then shuts `w`.
async fn pump(mut r: impl tokio::io::AsyncRead + Unpin, mut w: impl tokio::io::AsyncWrite + Unpin, count: &AtomicU64) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = r.read(&mut buf).await {
        if n == 0 || w.write_all(&buf[..n]).await.is_err() {
            break;
        }
        count.fetch_add(n as u64, Ordering::Relaxed);
    }
    let _ = w.shutdown().await;
}

fn take_idle(shared: &Shared, key: &PoolKey) -> Option<Sender> {
    let mut pool = shared.pool.lock().unwrap_or_else(|e| e.into_inner());
    let list = pool.get_mut(key)?;
    list.retain(|s| !s.is_closed());
    let i = list.iter().position(|s| s.is_ready())?;
    Some(list.swap_remove(i))
}

fn put_idle(shared: &Shared, key: PoolKey, s: Sender) {
    let mut pool = shared.pool.lock().unwrap_or_else(|e| e.into_inner());
    let list = pool.entry(key).or_default();
    if list.len() < 8 {
        list.push(s);
    }
}

async fn open(shared: &Shared, tls: bool, host: &str, port: u16) -> Result<Sender, DialError> {
    let tcp = dial(&shared.config.rules, host, port).await?;
    let handshake_err = |e: hyper::Error| DialError::Unreachable(e.to_string());
    if !tls {
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.map_err(handshake_err)?;
        tokio::spawn(conn.with_upgrades());
        return Ok(sender);
    }
    let connector = shared
        .tls
        .get_or_init(|| crate::tls::connector(&shared.config.extra_ca_pem))
        .clone()
        .map_err(DialError::Unreachable)?;
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| DialError::Unreachable(format!("{host} is not a TLS server name: {e}")))?;
    let stream = connector
        .connect(name, tcp)
        .await
        .map_err(|e| DialError::Unreachable(format!("TLS with {host}:{port} failed: {e}")))?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(handshake_err)?;
    tokio::spawn(conn.with_upgrades());
    Ok(sender)
}

/// Replaces any occurrence of `secret` in header values (an upstream that
/// echoes request headers back must not hand the sandbox the real key).
fn scrub_secret(headers: &mut HeaderMap, secret: &[u8]) {
    if secret.is_empty() {
        return;
    }
    for v in headers.values_mut() {
        let b = v.as_bytes();
        if b.windows(secret.len()).any(|w| w == secret) {
            *v = HeaderValue::from_static("[removed by ws: contained a credential]");
        }
    }
}

/// A body that counts the bytes passing through it.
pub(crate) struct Counted<B> {
    inner: B,
    count: Arc<AtomicU64>,
}

impl<B: Body<Data = Bytes> + Unpin> Body for Counted<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(f))) = &r
            && let Some(d) = f.data_ref()
        {
            self.count.fetch_add(d.len() as u64, Ordering::Relaxed);
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that reports its request's event when it ends or is
/// dropped (the client hung up).
struct Finishing<B> {
    inner: B,
    done: Option<(Pending, Arc<Shared>)>,
}

impl<B: Body<Data = Bytes> + Unpin> Body for Finishing<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for Finishing<B> {
    fn drop(&mut self) {
        if let Some((p, shared)) = self.done.take() {
            p.finish(&shared);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_headers_go_including_those_connection_names() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("close, x-private"));
        h.insert("x-private", HeaderValue::from_static("1"));
        h.insert("proxy-authorization", HeaderValue::from_static("Basic abc"));
        h.insert("x-keep", HeaderValue::from_static("1"));
        strip_hop_headers(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-keep"));
    }

    #[test]
    fn secrets_echoed_in_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert("x-echo", HeaderValue::from_static("Bearer sk-real-123"));
        h.insert("x-other", HeaderValue::from_static("fine"));
        scrub_secret(&mut h, b"sk-real-123");
        assert!(!h.get("x-echo").unwrap().as_bytes().windows(11).any(|w| w == b"sk-real-123"));
        assert_eq!(h.get("x-other").unwrap(), "fine");
    }
}
