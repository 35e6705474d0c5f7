//! The `network` group: what the session's proxy costs, measured against the
//! same work done directly, in the same run, all on loopback:
//!
//! - 1,000 sequential small GETs on one keep-alive connection, through the
//!   proxy (absolute-form, forwarded over a pooled upstream connection) vs
//!   straight to the upstream: ratio, target ≤ 1.3;
//! - the same with a new connection per request (as `curl` in a loop does);
//! - for reference, the keep-alive run through a minimal blocking forwarder
//!   (no rules, no audit, one upstream connection per client): the floor any
//!   proxy sits on, since every request crosses loopback twice;
//! - a 200 MiB HTTPS download through a CONNECT tunnel vs directly (TLS to a
//!   loopback upstream with a CA made for the run): throughput ratio (direct
//!   time / tunnel time), target ≥ 0.8 — shown inverted, as tunnel time /
//!   direct time ≤ 1.25;
//! - for reference, the same download in the clear: on loopback the copy is
//!   all the work there is, so the tunnel's second crossing shows whole;
//! - 100 idle proxies in one process: resident memory added per proxy,
//!   target ≤ 5 MiB.
//!
//! The proxy is the `ws-proxy` library itself, as a session runs it (its own
//! thread and single-threaded runtime), serving a loopback listener.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Instant;

use crate::measure::{progress, repeat};
use crate::report::{Row, Sample, Target};
use crate::util::{Error, Result, check_interrupted};

const GROUP: &str = "network";
const REQUESTS: usize = 1000;
const DOWNLOAD: u64 = 200 << 20;

pub fn bench(runs: usize) -> (Vec<Row>, Vec<String>) {
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    let steps: [(&str, &dyn Fn() -> Result<Row>); 6] = [
        ("1,000 requests, keep-alive", &|| requests_row(runs, true)),
        ("1,000 requests, keep-alive, minimal forwarder", &|| floor_row(runs)),
        ("1,000 requests, a connection each", &|| requests_row(runs, false)),
        ("200 MiB through CONNECT, TLS", &|| download_row(runs, true)),
        ("200 MiB through CONNECT, in the clear", &|| download_row(runs, false)),
        ("100 idle proxies", &idle_row),
    ];
    for (what, step) in steps {
        if check_interrupted().is_err() {
            break;
        }
        match step() {
            Ok(r) => rows.push(r),
            Err(e) => {
                progress(GROUP, &format!("error: {what}: {e}"));
                errors.push(format!("{GROUP}: {what}: {e}"));
            }
        }
    }
    (rows, errors)
}

/// An HTTP/1.1 server on loopback: keep-alive, answers every request with a
/// 2-byte body; `/big` streams [`DOWNLOAD`] bytes.
pub(crate) fn upstream() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let port = l.local_addr()?.port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = s.set_nodelay(true);
                let Ok(w) = s.try_clone() else { return };
                serve(s, w);
            });
        }
    });
    Ok(port)
}

/// [`upstream`] over TLS, with a certificate for `localhost` that `ca`
/// signed.
fn tls_upstream(ca: &TestCa) -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let port = l.local_addr()?.port();
    let config = Arc::clone(&ca.server);
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let config = Arc::clone(&config);
            std::thread::spawn(move || {
                let _ = s.set_nodelay(true);
                let Ok(conn) = rustls::ServerConnection::new(config) else { return };
                let tls = SharedTls(Arc::new(std::sync::Mutex::new(rustls::StreamOwned::new(conn, s))));
                serve(tls.clone(), tls);
            });
        }
    });
    Ok(port)
}

/// One TLS stream read and written from two handles (never at once: the
/// server reads a request, then writes its answer).
#[derive(Clone)]
struct SharedTls(Arc<std::sync::Mutex<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>>);

impl Read for SharedTls {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).read(buf)
    }
}

impl Write for SharedTls {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).flush()
    }
}

fn serve(r: impl Read, w: impl Write) {
    let mut w = std::io::BufWriter::with_capacity(256 << 10, w);
    let mut r = BufReader::new(r);
    loop {
        let mut first = String::new();
        if r.read_line(&mut first).unwrap_or(0) == 0 {
            return;
        }
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
        }
        if first.contains(" /big ") {
            let chunk = vec![7u8; 1 << 20];
            let _ = write!(w, "HTTP/1.1 200 OK\r\nContent-Length: {DOWNLOAD}\r\n\r\n");
            for _ in 0..(DOWNLOAD >> 20) {
                if w.write_all(&chunk).is_err() {
                    return;
                }
            }
        } else {
            let _ = w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        }
        if w.flush().is_err() {
            return;
        }
    }
}

fn proxy(upstream_allowed: bool) -> Result<(u16, ws_proxy::Proxy)> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let port = l.local_addr()?.port();
    let rules = ws_proxy::NetRules {
        origin: "the benchmark".into(),
        hosts: if upstream_allowed { vec!["127.0.0.1:*".into()] } else { vec![] },
        addresses: ws_proxy::Cidr::parse("127.0.0.1").into_iter().collect(),
        http: vec![],
    };
    let config =
        ws_proxy::Config { rules, routes: vec![], auth_token: None, extra_ca_pem: vec![], port, intercept_ca: None };
    let p = ws_proxy::Proxy::start(config, l, Box::new(|_| {})).map_err(|e| Error::new(e.to_string()))?;
    Ok((port, p))
}

/// Reads one response with a Content-Length body; returns the body length.
fn read_response(r: &mut BufReader<impl Read>) -> Result<u64> {
    let mut len = None;
    let mut status = String::new();
    r.read_line(&mut status)?;
    if !status.starts_with("HTTP/1.1 200") {
        return Err(Error::new(format!("unexpected answer: {status:?}")));
    }
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(Error::new("connection closed mid-response"));
        }
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse::<u64>().ok();
        }
    }
    let len = len.ok_or_else(|| Error::new("no content-length"))?;
    std::io::copy(&mut r.by_ref().take(len), &mut std::io::sink())?;
    Ok(len)
}

fn connect(port: u16) -> Result<(TcpStream, BufReader<TcpStream>)> {
    let s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_nodelay(true)?;
    let r = BufReader::with_capacity(256 << 10, s.try_clone()?);
    Ok((s, r))
}

/// `REQUESTS` GETs to the upstream, via `proxy_port` if given.
fn run_requests(up: u16, proxy_port: Option<u16>, keep_alive: bool) -> Result<f64> {
    let target = if proxy_port.is_some() { format!("http://127.0.0.1:{up}/small") } else { "/small".into() };
    let port = proxy_port.unwrap_or(up);
    let request = format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{up}\r\n\r\n");
    let started = Instant::now();
    let mut conn = if keep_alive { Some(connect(port)?) } else { None };
    for _ in 0..REQUESTS {
        let (mut s, mut r) = match conn.take() {
            Some(c) => c,
            None => connect(port)?,
        };
        s.write_all(request.as_bytes())?;
        read_response(&mut r)?;
        if keep_alive {
            conn = Some((s, r));
        }
    }
    Ok(started.elapsed().as_secs_f64())
}

fn requests_row(runs: usize, keep_alive: bool) -> Result<Row> {
    let up = upstream()?;
    let (port, _proxy) = proxy(true)?;
    let how = if keep_alive { "one keep-alive connection" } else { "a new connection each" };
    let secs = |x: f64| format!("{:.1} ms", x * 1000.0);
    let ws = repeat(GROUP, runs, &format!("1,000 GETs through the proxy, {how}"), secs, |_| {
        run_requests(up, Some(port), keep_alive)
    })?;
    let base = repeat(GROUP, runs, &format!("1,000 GETs direct, {how}"), secs, |_| run_requests(up, None, keep_alive))?;
    Ok(Row {
        fs: GROUP.into(),
        measurement: format!("1,000 small requests through the proxy, {how}"),
        ws,
        baseline_name: "the same, direct".into(),
        baseline: Some(base),
        target: Target::Ratio(1.3),
    })
}

/// A forward proxy stripped to the bone, for [`floor_row`]: a thread per
/// client connection, one upstream connection each, requests without bodies,
/// responses with a Content-Length. What it costs is what two loopback
/// crossings cost.
fn forwarder(up: u16) -> Result<u16> {
    fn serve(client: TcpStream, up: u16) -> Result<()> {
        let (mut upw, mut upr) = connect(up)?;
        let mut w = std::io::BufWriter::new(client.try_clone()?);
        let mut r = BufReader::new(client);
        let mut head = Vec::new();
        loop {
            head.clear();
            loop {
                let start = head.len();
                if r.read_until(b'\n', &mut head)? == 0 {
                    return Ok(());
                }
                if &head[start..] == b"\r\n" {
                    break;
                }
            }
            // Absolute-form to origin-form, as a proxy must.
            let origin = format!("http://127.0.0.1:{up}");
            let at = head.windows(origin.len()).position(|w| w == origin.as_bytes()).unwrap_or(0);
            let rewritten = if at > 0 { [&head[..at], &head[at + origin.len()..]].concat() } else { head.clone() };
            upw.write_all(&rewritten)?;
            let mut status = Vec::new();
            upr.read_until(b'\n', &mut status)?;
            w.write_all(&status)?;
            let mut len = 0u64;
            loop {
                let mut line = String::new();
                if upr.read_line(&mut line)? == 0 {
                    return Err(Error::new("upstream closed mid-response"));
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                w.write_all(line.as_bytes())?;
                if line == "\r\n" {
                    break;
                }
            }
            std::io::copy(&mut upr.by_ref().take(len), &mut w)?;
            w.flush()?;
        }
    }
    let l = TcpListener::bind("127.0.0.1:0")?;
    let port = l.local_addr()?.port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let _ = s.set_nodelay(true);
            std::thread::spawn(move || serve(s, up));
        }
    });
    Ok(port)
}

/// The keep-alive run through [`forwarder`] vs direct: reported, held to
/// nothing; it shows how far under its target any proxy could get.
fn floor_row(runs: usize) -> Result<Row> {
    let up = upstream()?;
    let port = forwarder(up)?;
    let secs = |x: f64| format!("{:.1} ms", x * 1000.0);
    let floor = repeat(GROUP, runs, "1,000 GETs through a minimal forwarder, keep-alive", secs, |_| {
        run_requests(up, Some(port), true)
    })?;
    let base = repeat(GROUP, runs, "1,000 GETs direct, keep-alive", secs, |_| run_requests(up, None, true))?;
    Ok(Row {
        fs: GROUP.into(),
        measurement: "for reference: the same through a minimal blocking forwarder, one keep-alive connection".into(),
        ws: floor,
        baseline_name: "the same, direct".into(),
        baseline: Some(base),
        target: Target::Report,
    })
}

/// A CA made for the run, and a server certificate for `localhost` it signed.
struct TestCa {
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
}

fn test_ca() -> Result<TestCa> {
    let err = |e: rcgen::Error| Error::new(format!("making the test CA: {e}"));
    let tls_err = |e: rustls::Error| Error::new(format!("TLS configuration: {e}"));
    let ca_key = rcgen::KeyPair::generate().map_err(err)?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.distinguished_name.push(rcgen::DnType::CommonName, "ws-bench CA");
    let ca = params.self_signed(&ca_key).map_err(err)?;
    let leaf_key = rcgen::KeyPair::generate().map_err(err)?;
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .map_err(err)?
        .signed_by(&leaf_key, &ca, &ca_key)
        .map_err(err)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(tls_err)?
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .map_err(tls_err)?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).map_err(tls_err)?;
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_err)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TestCa { server: Arc::new(server), client: Arc::new(client) })
}

/// Downloads `/big`, through a CONNECT tunnel when `proxy_port` is given,
/// over TLS when `tls` is.
fn run_download(up: u16, proxy_port: Option<u16>, tls: Option<&Arc<rustls::ClientConfig>>) -> Result<f64> {
    let started = Instant::now();
    let (mut s, mut r) = connect(proxy_port.unwrap_or(up))?;
    if proxy_port.is_some() {
        write!(s, "CONNECT 127.0.0.1:{up} HTTP/1.1\r\nHost: 127.0.0.1:{up}\r\n\r\n")?;
        let mut line = String::new();
        r.read_line(&mut line)?;
        if !line.starts_with("HTTP/1.1 200") {
            return Err(Error::new(format!("CONNECT refused: {line:?}")));
        }
        while line != "\r\n" {
            line.clear();
            r.read_line(&mut line)?;
        }
    }
    let request = b"GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let n = match tls {
        None => {
            s.write_all(request)?;
            read_response(&mut r)?
        }
        Some(config) => {
            // The proxy sends nothing after its answer until the server
            // does, so the reader holds no TLS bytes yet.
            drop(r);
            let name = rustls::pki_types::ServerName::try_from("localhost").map_err(|e| Error::new(e.to_string()))?;
            let conn = rustls::ClientConnection::new(Arc::clone(config), name)
                .map_err(|e| Error::new(format!("TLS client: {e}")))?;
            let mut tls = rustls::StreamOwned::new(conn, s);
            tls.write_all(request)?;
            read_response(&mut BufReader::with_capacity(256 << 10, tls))?
        }
    };
    if n != DOWNLOAD {
        return Err(Error::new(format!("downloaded {n} bytes, not {DOWNLOAD}")));
    }
    Ok(started.elapsed().as_secs_f64())
}

fn download_row(runs: usize, tls: bool) -> Result<Row> {
    let ca = if tls { Some(test_ca()?) } else { None };
    let up = match &ca {
        Some(ca) => tls_upstream(ca)?,
        None => upstream()?,
    };
    let client = ca.as_ref().map(|ca| &ca.client);
    let (port, _proxy) = proxy(true)?;
    let secs = |x: f64| format!("{:.0} ms", x * 1000.0);
    let how = if tls { "HTTPS" } else { "in the clear" };
    let ws = repeat(GROUP, runs, &format!("200 MiB through a CONNECT tunnel, {how}"), secs, |_| {
        run_download(up, Some(port), client)
    })?;
    let base = repeat(GROUP, runs, &format!("200 MiB direct, {how}"), secs, |_| run_download(up, None, client))?;
    Ok(Row {
        fs: GROUP.into(),
        measurement: if tls {
            "200 MiB HTTPS download through CONNECT (time; throughput ≥ 0.8 ⇔ ≤ 1.25)".into()
        } else {
            "for reference: the same download in the clear (loopback copy only)".into()
        },
        ws,
        baseline_name: "the same, direct".into(),
        baseline: Some(base),
        target: if tls { Target::Ratio(1.25) } else { Target::Report },
    })
}

fn rss_kib() -> Result<u64> {
    let status = fs_err::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| Error::new("no VmRSS in /proc/self/status"))
}

/// Resident memory added per idle proxy, over 100 of them, after each has
/// served one request (so its runtime is warm, as in a session).
fn idle_row() -> Result<Row> {
    progress(GROUP, "starting 100 proxies…");
    let up = upstream()?;
    // Warm the allocator and the code pages with one proxy first.
    let (warm_port, warm) = proxy(true)?;
    run_requests(up, Some(warm_port), true)?;
    drop(warm);
    let before = rss_kib()?;
    let mut proxies = Vec::new();
    for _ in 0..100 {
        let (port, p) = proxy(true)?;
        let (mut s, mut r) = connect(port)?;
        write!(s, "GET http://127.0.0.1:{up}/small HTTP/1.1\r\nHost: 127.0.0.1:{up}\r\nConnection: close\r\n\r\n")?;
        read_response(&mut r)?;
        proxies.push(p);
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let per = (rss_kib()?.saturating_sub(before)) as f64 / 100.0 / 1024.0;
    progress(GROUP, &format!("{per:.2} MiB per idle proxy"));
    drop(proxies);
    Ok(Row {
        fs: GROUP.into(),
        measurement: "resident memory per idle proxy (100 at once)".into(),
        ws: Sample { warmup: per, runs: vec![per] },
        baseline_name: "-".into(),
        baseline: None,
        target: Target::Mib(5.0),
    })
}
