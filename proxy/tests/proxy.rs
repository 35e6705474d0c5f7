//! The proxy against real servers on loopback: a plain HTTP upstream that
//! echoes what it got, and a TLS upstream with a certificate from a test CA.
//! Clients speak raw HTTP/1.1 over TCP, so every byte is the test's own.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Frame};
use hyper_util::rt::TokioIo;
use ws_proxy::{Cidr, Config, Credential, HttpRule, NetRules, Proxy, RequestEvent, Route, Upstream};

type Events = Arc<Mutex<Vec<RequestEvent>>>;

/// Serves `handler` on a fresh loopback port in its own thread; with `tls`,
/// over TLS with that server config.
fn serve<F>(tls: Option<Arc<rustls::ServerConfig>>, handler: F) -> u16
where
    F: Fn(
            hyper::Request<hyper::body::Incoming>,
        ) -> hyper::Response<http_body_util::combinators::UnsyncBoxBody<Bytes, std::convert::Infallible>>
        + Send
        + Sync
        + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let handler = Arc::new(handler);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let (s, _) = listener.accept().await.unwrap();
                let handler = Arc::clone(&handler);
                let tls = tls.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let handler = Arc::clone(&handler);
                        async move { Ok::<_, std::convert::Infallible>(handler(req)) }
                    });
                    let b = hyper::server::conn::http1::Builder::new();
                    match tls {
                        Some(cfg) => {
                            let Ok(s) = tokio_rustls::TlsAcceptor::from(cfg).accept(s).await else { return };
                            let _ = b.serve_connection(TokioIo::new(s), svc).await;
                        }
                        None => {
                            let _ = b.serve_connection(TokioIo::new(s), svc).await;
                        }
                    }
                });
            }
        });
    });
    port
}

fn full(s: String) -> http_body_util::combinators::UnsyncBoxBody<Bytes, std::convert::Infallible> {
    Full::new(Bytes::from(s)).boxed_unsync()
}

/// An upstream that answers with what it received, and echoes the request's
/// headers back as response headers (as some debugging endpoints do).
fn echo_upstream(tls: Option<Arc<rustls::ServerConfig>>) -> u16 {
    serve(tls, |req| {
        let mut text = format!("{} {}\n", req.method(), req.uri());
        let mut res = hyper::Response::builder().status(200);
        for (k, v) in req.headers() {
            text.push_str(&format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())));
            res = res.header(format!("x-echo-{k}"), v.clone());
        }
        res.body(full(text)).unwrap()
    })
}

struct TestCa {
    ca_pem: Vec<u8>,
    server: Arc<rustls::ServerConfig>,
}

fn test_ca() -> TestCa {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.distinguished_name.push(rcgen::DnType::CommonName, "ws test CA");
    let ca = params.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .unwrap();
    TestCa { ca_pem: ca.pem().into_bytes(), server: Arc::new(server) }
}

fn start(config: Config) -> (u16, Events, Proxy) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let events: Events = Arc::default();
    let sink = Arc::clone(&events);
    let proxy =
        Proxy::start(Config { port, ..config }, listener, Box::new(move |e| sink.lock().unwrap().push(e))).unwrap();
    (port, events, proxy)
}

fn rules(hosts: &[&str], addresses: &[&str]) -> NetRules {
    NetRules {
        origin: "profile test".into(),
        hosts: hosts.iter().map(|s| s.to_string()).collect(),
        addresses: addresses.iter().map(|s| Cidr::parse(s).unwrap()).collect(),
        http: vec![],
    }
}

fn config(rules: NetRules) -> Config {
    Config { rules, routes: vec![], auth_token: None, extra_ca_pem: vec![], port: 0, intercept_ca: None }
}

/// Sends raw bytes, returns the whole answer (the server closes).
fn exchange(port: u16, request: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn wait_events(events: &Events, n: usize) -> Vec<RequestEvent> {
    for _ in 0..200 {
        if events.lock().unwrap().len() >= n {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    events.lock().unwrap().clone()
}

#[test]
fn plain_http_is_forwarded_only_to_allowed_hosts_and_addresses() {
    let up = echo_upstream(None);
    let (port, events, _p) = start(config(rules(&["localhost:*", "127.0.0.1:*"], &["127.0.0.1"])));
    // Positive control: allowed host, allowed address.
    let ok = exchange(
        port,
        &format!("GET http://127.0.0.1:{up}/hello?x=1 HTTP/1.1\r\nHost: 127.0.0.1:{up}\r\nConnection: close\r\n\r\n"),
    );
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(ok.contains("GET /hello?x=1\n"), "origin-form upstream: {ok}");
    // Not in the allow-list.
    let denied = exchange(port, "GET http://evil.example/ HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n");
    assert!(denied.starts_with("HTTP/1.1 403"), "{denied}");
    assert!(denied.contains("evil.example is not in network.hosts of profile test"), "{denied}");
    let ev = wait_events(&events, 2);
    assert!(ev[0].allowed && ev[0].status == Some(200) && ev[0].bytes_down > 0, "{ev:?}");
    assert!(!ev[1].allowed && ev[1].rule == "deny by default" && ev[1].host == "evil.example", "{ev:?}");
}

#[test]
fn allowed_names_resolving_to_loopback_or_metadata_are_refused() {
    let up = echo_upstream(None);
    let (port, events, _p) = start(config(rules(&["localhost:*", "169.254.169.254", "127.0.0.1:*"], &[])));
    for target in [format!("localhost:{up}"), "169.254.169.254:80".to_owned(), format!("127.0.0.1:{up}")] {
        let r = exchange(port, &format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n"));
        assert!(r.starts_with("HTTP/1.1 403"), "{target}: {r}");
        assert!(r.contains("network.addresses"), "{target}: {r}");
    }
    let ev = wait_events(&events, 3);
    assert!(ev.iter().all(|e| !e.allowed && e.rule == "network.addresses"), "{ev:?}");
}

#[test]
fn connect_tunnels_bytes_both_ways() {
    let up = echo_upstream(None);
    let (port, events, p) = start(config(rules(&["localhost:*"], &["127.0.0.0/8", "::1"])));
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "CONNECT localhost:{up} HTTP/1.1\r\nHost: localhost:{up}\r\n\r\n").unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
    }
    write!(s, "GET /through-the-tunnel HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut rest = String::new();
    r.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("GET /through-the-tunnel"), "{rest}");
    drop(r);
    drop(s);
    let ev = wait_events(&events, 1);
    assert!(ev[0].allowed && ev[0].method == "CONNECT" && ev[0].bytes_up > 0 && ev[0].bytes_down > 0, "{ev:?}");
    drop(p);
}

#[test]
fn proxy_authorization_is_required_when_configured() {
    let up = echo_upstream(None);
    let mut c = config(rules(&["127.0.0.1:*"], &["127.0.0.1"]));
    c.auth_token = Some("tok-1".into());
    let (port, _events, _p) = start(c);
    use base64::Engine;
    let good = base64::engine::general_purpose::STANDARD.encode("ws:tok-1");
    let bad = base64::engine::general_purpose::STANDARD.encode("ws:tok-2");
    let req = |auth: &str| format!("GET http://127.0.0.1:{up}/ HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n");
    let ok = exchange(port, &req(&format!("Proxy-Authorization: Basic {good}\r\n")));
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(!ok.contains("tok-1"), "the proxy token is not forwarded upstream: {ok}");
    for auth in [String::new(), format!("Proxy-Authorization: Basic {bad}\r\n")] {
        let r = exchange(port, &req(&auth));
        assert!(r.starts_with("HTTP/1.1 407"), "{r}");
    }
}

fn route(name: &str, upstream: &str, phantom: &str, secret: &str) -> Route {
    Route {
        name: name.into(),
        secret_name: format!("{name}-key"),
        upstream: Upstream::parse(upstream).unwrap(),
        header: "x-api-key".into(),
        scheme: None,
        phantom: phantom.into(),
        secret: Credential::new(secret.as_bytes().to_vec()),
        limits: HttpRule { host: String::new(), methods: vec![], paths: vec!["/v1/**".into()] },
        intercept: vec![],
    }
}

#[test]
fn credential_routes_swap_the_phantom_for_the_secret_over_tls() {
    let ca = test_ca();
    let up = echo_upstream(Some(Arc::clone(&ca.server)));
    let mut c = config(rules(&[], &["127.0.0.0/8", "::1"]));
    c.extra_ca_pem = vec![ca.ca_pem.clone()];
    c.routes = vec![route("anthropic", &format!("https://localhost:{up}/api"), "ph-AAA", "sk-REAL-999")];
    let (port, events, _p) = start(c);
    let req = |key: &str, path: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nx-api-key: {key}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"
        )
    };
    let ok = exchange(port, &req("ph-AAA", "/anthropic/v1/messages?beta=1"));
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(ok.contains("POST /api/v1/messages?beta=1\n"), "{ok}");
    // The upstream saw the real key (it echoes it in its body)...
    assert!(ok.contains("x-api-key: sk-REAL-999\n"), "{ok}");
    // ...but the echoed response header does not carry it back.
    let head = ok.split("\r\n\r\n").next().unwrap();
    assert!(!head.contains("sk-REAL-999"), "{head}");
    // Absolute form addressed to the proxy itself is the same route.
    let abs = exchange(port, &req("ph-AAA", &format!("http://127.0.0.1:{port}/anthropic/v1/x")));
    assert!(abs.starts_with("HTTP/1.1 200"), "{abs}");
    // Wrong phantom, another session's phantom, the real key itself, no key.
    for key in ["ph-AAB", "ph-OTHER-SESSION", "sk-REAL-999", ""] {
        let r = exchange(port, &req(key, "/anthropic/v1/messages"));
        assert!(r.starts_with("HTTP/1.1 401"), "{key}: {r}");
        assert!(!r.contains("sk-REAL-999\n"), "{r}");
    }
    // Path outside the route's limits; unknown route.
    assert!(exchange(port, &req("ph-AAA", "/anthropic/admin")).starts_with("HTTP/1.1 403"));
    assert!(exchange(port, &req("ph-AAA", "/github/v1/x")).starts_with("HTTP/1.1 404"));
    let ev = wait_events(&events, 8);
    assert_eq!(ev[0].credential.as_deref(), Some("anthropic-key"));
    assert!(ev[0].allowed && ev[0].host == "localhost" && ev[0].path == "/api/v1/messages?beta=1", "{ev:?}");
    for e in &ev {
        assert!(!format!("{e:?}").contains("sk-REAL"), "{e:?}");
    }
}

#[test]
fn tls_upstreams_need_a_trusted_ca() {
    let ca = test_ca();
    let up = echo_upstream(Some(Arc::clone(&ca.server)));
    let mut c = config(rules(&[], &["127.0.0.0/8", "::1"]));
    c.routes = vec![route("a", &format!("https://localhost:{up}"), "ph", "sk")];
    let (port, _events, _p) = start(c);
    let r = exchange(port, "GET /a/v1/x HTTP/1.1\r\nHost: x\r\nx-api-key: ph\r\nConnection: close\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 502"), "{r}");
    assert!(r.contains("TLS"), "{r}");
}

#[test]
fn streamed_responses_are_not_buffered() {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let rx = Arc::new(Mutex::new(rx));
    let up = serve(None, move |_req| {
        let rx = Arc::clone(&rx);
        let (send, recv) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::convert::Infallible>>(4);
        std::thread::spawn(move || {
            send.blocking_send(Ok(Frame::data(Bytes::from("data: first\n\n")))).unwrap();
            // The second event waits until the client has seen the first.
            let _ = rx.lock().unwrap().recv_timeout(Duration::from_secs(10));
            let _ = send.blocking_send(Ok(Frame::data(Bytes::from("data: second\n\n"))));
        });
        hyper::Response::builder()
            .header("content-type", "text/event-stream")
            .body(channel_body(recv).boxed_unsync())
            .unwrap()
    });
    let mut c = config(rules(&[], &["127.0.0.1"]));
    c.routes = vec![route("s", &format!("http://127.0.0.1:{up}"), "ph", "sk")];
    let (port, _events, _p) = start(c);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET /s/v1/stream HTTP/1.1\r\nHost: x\r\nx-api-key: ph\r\nConnection: close\r\n\r\n").unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("data: first") {
        let n = s.read(&mut buf).expect("the first event arrives while the upstream still holds the second");
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(!String::from_utf8_lossy(&seen).contains("second"));
    tx.send(()).unwrap();
    let mut rest = String::new();
    s.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("data: second"), "{rest}");
}

/// A body whose frames come from a channel.
fn channel_body<T>(
    rx: tokio::sync::mpsc::Receiver<T>,
) -> impl hyper::body::Body<Data = Bytes, Error = std::convert::Infallible>
where
    T: Into<Result<Frame<Bytes>, std::convert::Infallible>> + Send + 'static,
{
    struct S<T>(tokio::sync::mpsc::Receiver<T>);
    impl<T: Into<Result<Frame<Bytes>, std::convert::Infallible>>> hyper::body::Body for S<T> {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            self.0.poll_recv(cx).map(|o| o.map(Into::into))
        }
    }
    S(rx)
}

/// On the host's loopback (no network namespace) anyone may connect to the
/// proxy: a route answers only under the session's token, so the phantom
/// alone (stable per workspace) is useless to another process.
#[test]
fn on_the_hosts_loopback_a_route_needs_the_session_token_too() {
    let up = echo_upstream(None);
    let mut c = config(rules(&[], &["127.0.0.1"]));
    c.auth_token = Some("tok-1".into());
    c.routes = vec![route("api", &format!("http://127.0.0.1:{up}"), "ph-1", "REAL")];
    let (port, _events, _p) = start(c);
    let req = |path: &str| {
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nx-api-key: ph-1\r\nConnection: close\r\n\r\n")
    };
    let ok = exchange(port, &req("/tok-1/api/v1/x"));
    assert!(ok.starts_with("HTTP/1.1 200") && ok.contains("REAL"), "control: {ok}");
    for path in ["/api/v1/x", "/tok-2/api/v1/x", "/tok-1"] {
        let r = exchange(port, &req(path));
        assert!(r.starts_with("HTTP/1.1 403") && !r.contains("REAL"), "{path}: {r}");
        assert!(r.contains("base URLs this session was given") && !r.contains("ws why --host"), "{r}");
    }
}

/// A TLS client through the proxy's `CONNECT` to `host`, trusting `ca_pem`.
fn tls_through(
    port: u16,
    host: &str,
    ca_pem: &[u8],
) -> Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "CONNECT {host}:443 HTTP/1.1\r\nHost: {host}:443\r\n\r\n").unwrap();
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    if !line.starts_with("HTTP/1.1 200") {
        return Err(line);
    }
    loop {
        let mut l = String::new();
        if reader.read_line(&mut l).unwrap() == 0 || l == "\r\n" {
            break;
        }
    }
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host.to_owned()).unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, s);
    // The handshake happens on first use.
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).map_err(|e| e.to_string())?;
    }
    Ok(tls)
}

fn read_all(tls: &mut impl Read) -> String {
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// An upstream speaking TLS that switches protocols for any request and then
/// echoes what it gets. It keeps each request head, and also puts it in a
/// response header (as a debugging endpoint might).
fn upgrade_upstream(server: Arc<rustls::ServerConfig>) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            let server = Arc::clone(&server);
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                let conn = rustls::ServerConnection::new(server).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, s);
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if tls.read(&mut b).unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(b[0]);
                }
                let head = String::from_utf8_lossy(&head).replace("\r\n", "|");
                log.lock().unwrap().push(head.clone());
                let _ = write!(
                    tls,
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Head: {head}\r\n\r\n"
                );
                let mut buf = [0u8; 1024];
                while let Ok(n) = tls.read(&mut buf) {
                    if n == 0 || tls.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    let _ = tls.flush();
                }
            });
        }
    });
    (port, seen)
}

fn intercepting(up: u16, upstream_ca: &[u8], host: &str) -> (Config, Arc<ws_proxy::SessionCa>) {
    let ca = Arc::new(ws_proxy::SessionCa::new(&[host.to_owned()]).unwrap());
    let mut c = config(rules(&[], &["127.0.0.0/8", "::1"]));
    c.extra_ca_pem = vec![upstream_ca.to_vec()];
    let mut r = route("openai", &format!("https://localhost:{up}/v1"), "ph-AAA", "sk-REAL-999");
    r.intercept = vec![host.to_owned()];
    // Limits are relative to the upstream URL (`…/v1`), as for base-URL routes.
    r.limits.paths = vec!["/responses".into()];
    c.routes = vec![r];
    c.intercept_ca = Some(Arc::clone(&ca));
    (c, ca)
}

/// A client that ignores base URLs calls the real host: the proxy answers
/// with the session's certificate for it, swaps the phantom for the secret
/// and sends the request, path as the client gave it, to the upstream.
#[test]
fn intercepted_hosts_are_answered_with_the_sessions_ca_and_the_phantom_swapped() {
    let upstream_ca = test_ca();
    let up = echo_upstream(Some(Arc::clone(&upstream_ca.server)));
    let (c, ca) = intercepting(up, &upstream_ca.ca_pem, "api.example.test");
    let (port, events, _p) = start(c);
    let session_ca = ca.cert_pem().into_bytes();
    let request = |key: &str| {
        format!(
            "POST /v1/responses?x=1 HTTP/1.1\r\nHost: api.example.test\r\nx-api-key: {key}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"
        )
    };
    let mut tls = tls_through(port, "api.example.test", &session_ca).unwrap();
    tls.write_all(request("ph-AAA").as_bytes()).unwrap();
    let ok = read_all(&mut tls);
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(ok.contains("POST /v1/responses?x=1\n") && ok.contains("x-api-key: sk-REAL-999\n"), "{ok}");
    assert!(!ok.split("\r\n\r\n").next().unwrap().contains("sk-REAL-999"), "the secret came back in a header: {ok}");
    // Without the phantom the request is the host's, under the host rules:
    // this host is not allowed, so it is refused (and never sees a secret).
    let mut tls = tls_through(port, "api.example.test", &session_ca).unwrap();
    tls.write_all(request("sk-user-own").as_bytes()).unwrap();
    let refused = read_all(&mut tls);
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
    // A client that trusts only the system's roots refuses the certificate;
    // the refusal is recorded with what to do.
    assert!(tls_through(port, "api.example.test", &upstream_ca.ca_pem).is_err());
    // Another host is no route's: an ordinary CONNECT, refused by the rules.
    let other = tls_through(port, "other.example.test", &session_ca).unwrap_err();
    assert!(other.starts_with("HTTP/1.1 403"), "{other}");
    let ev = wait_events(&events, 4);
    assert!(
        ev.iter().any(|e| e.credential.as_deref() == Some("openai-key")
            && e.status == Some(200)
            && e.path == "/v1/responses?x=1"),
        "{ev:?}"
    );
    assert!(ev.iter().any(|e| e.host == "api.example.test" && e.status == Some(403)), "{ev:?}");
    assert!(
        ev.iter().any(|e| e.reason.as_deref().is_some_and(|r| r.contains("refused the session's certificate"))),
        "{ev:?}"
    );
    for e in &ev {
        assert!(!format!("{e:?}").contains("sk-REAL"), "{e:?}");
    }
}

/// Codex speaks WebSocket to its API: the upgrade passes through the
/// interception (phantom swapped), and bytes then flow both ways.
#[test]
fn websocket_upgrades_pass_through_an_intercepted_route() {
    let upstream_ca = test_ca();
    let (up, seen) = upgrade_upstream(Arc::clone(&upstream_ca.server));
    let (c, ca) = intercepting(up, &upstream_ca.ca_pem, "api.example.test");
    let (port, events, _p) = start(c);
    let mut tls = tls_through(port, "api.example.test", ca.cert_pem().as_bytes()).unwrap();
    tls.write_all(
        b"GET /v1/responses HTTP/1.1\r\nHost: api.example.test\r\nx-api-key: ph-AAA\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(tls.read(&mut b).unwrap(), 1, "{}", String::from_utf8_lossy(&head));
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(head.to_ascii_lowercase().contains("upgrade: websocket"), "{head}");
    // What the upstream got: the upgrade asked for, the secret swapped in;
    // its echo of that head does not carry the secret back.
    let got = seen.lock().unwrap().join("\n");
    assert!(got.contains("x-api-key: sk-REAL-999") && got.to_ascii_lowercase().contains("upgrade: websocket"), "{got}");
    assert!(!head.contains("sk-REAL-999"), "{head}");
    tls.write_all(b"frame-one").unwrap();
    let mut echo = [0u8; 9];
    tls.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"frame-one");
    drop(tls);
    let ev = wait_events(&events, 1);
    assert_eq!(ev[0].status, Some(101), "{ev:?}");
    assert!(ev[0].bytes_up >= 9 && ev[0].bytes_down >= 9, "{ev:?}");
}

/// A client that tunnels to the proxy through the proxy (HTTPS_PROXY set,
/// and a URL naming the proxy's own port): refused as the proxy's, not as a
/// host a profile could allow, so no suggestion names the proxy's port.
#[test]
fn a_tunnel_to_the_proxy_itself_is_the_proxys_refusal() {
    let (port, events, _p) = start(config(rules(&["127.0.0.1:*"], &["127.0.0.1"])));
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").unwrap();
    let mut r = String::new();
    BufReader::new(s).read_line(&mut r).unwrap();
    assert!(r.starts_with("HTTP/1.1 403"), "{r}");
    let ev = wait_events(&events, 1);
    assert_eq!(ev[0].host, ws_proxy::server::PROXY_HOST, "{ev:?}");
}
