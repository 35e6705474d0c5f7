//! One OTLP/HTTP request: a POST over a fresh connection (plain TCP, or TLS
//! with the system's roots), every step under one deadline.
//!
//! A connection per request keeps the client small and its failure modes
//! few; batches go out at most about once a second.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::ExportError;

/// Where the log records go: `http://HOST:PORT/PATH` or `https://…`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// With the query, if any; `/` at least.
    pub path: String,
}

impl Endpoint {
    /// Parses an `http` or `https` URL (no user info; IPv6 hosts in brackets).
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else {
            return Err(format!("{url}: not an http:// or https:// URL"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(format!("{url}: expected http(s)://HOST[:PORT][/PATH]"));
        }
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| format!("{url}: unclosed [ in the host"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| format!("{url}: bad port {p:?}"))?,
                None if after.is_empty() => default_port,
                None => return Err(format!("{url}: unexpected {after:?} after the host")),
            };
            (h.to_owned(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), p.parse().map_err(|_| format!("{url}: bad port {p:?}"))?),
                None => (authority.to_owned(), default_port),
            }
        };
        Ok(Endpoint { tls, host, port, path: path.to_owned() })
    }

    /// The endpoint with `suffix` appended to its path (`/v1/logs` to a base
    /// endpoint), with exactly one `/` between them.
    pub fn join(&self, suffix: &str) -> Endpoint {
        let base = self.path.trim_end_matches('/');
        Endpoint { path: format!("{base}/{}", suffix.trim_start_matches('/')), ..self.clone() }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}{}", self.host, self.port, self.path)
        } else {
            write!(f, "{scheme}://{}:{}{}", self.host, self.port, self.path)
        }
    }
}

/// The TLS configuration with the system's trust roots, built once.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, ExportError> {
    static CONFIG: std::sync::OnceLock<Result<Arc<rustls::ClientConfig>, String>> = std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err("no trusted CA certificates found on this system".into());
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|b| Arc::new(b.with_root_certificates(roots).with_no_client_auth()))
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(ExportError::Tls)
}

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

/// POSTs `body` and returns the status code and the start of the answer's
/// body (for the error message). Fails if the whole exchange does not fit
/// in `timeout`.
pub fn post(
    endpoint: &Endpoint,
    headers: &[(String, String)],
    content_type: &str,
    body: &[u8],
    timeout: Duration,
) -> Result<(u16, String), ExportError> {
    let deadline = Instant::now() + timeout;
    let left = || deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
    let addrs: Vec<_> = (endpoint.host.as_str(), endpoint.port)
        .to_socket_addrs()
        .map_err(|e| ExportError::Connect(format!("cannot resolve {}: {e}", endpoint.host)))?
        .collect();
    let mut last = None;
    let mut tcp = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, left()) {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let tcp = tcp.ok_or_else(|| {
        ExportError::Connect(last.map_or_else(|| format!("{} resolves to nothing", endpoint.host), |e| e.to_string()))
    })?;
    let _ = tcp.set_nodelay(true);
    let timed_out = |e: std::io::Error| {
        if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) {
            ExportError::Timeout(timeout)
        } else {
            ExportError::Io(e.to_string())
        }
    };
    tcp.set_write_timeout(Some(left())).map_err(timed_out)?;
    tcp.set_read_timeout(Some(left())).map_err(timed_out)?;
    let mut stream: Box<dyn Stream> = if endpoint.tls {
        let name = rustls::pki_types::ServerName::try_from(endpoint.host.clone())
            .map_err(|e| ExportError::Tls(format!("{}: {e}", endpoint.host)))?;
        let conn = rustls::ClientConnection::new(tls_config()?, name).map_err(|e| ExportError::Tls(e.to_string()))?;
        Box::new(rustls::StreamOwned::new(conn, tcp))
    } else {
        Box::new(tcp)
    };
    let host = if endpoint.host.contains(':') { format!("[{}]", endpoint.host) } else { endpoint.host.clone() };
    let mut head = format!(
        "POST {} HTTP/1.1\r\nHost: {host}:{}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nUser-Agent: ws/{}\r\nConnection: close\r\n",
        endpoint.path,
        endpoint.port,
        body.len(),
        env!("CARGO_PKG_VERSION")
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body))
        .and_then(|()| stream.flush())
        .map_err(timed_out)?;
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).map_err(timed_out)?;
    if status_line.is_empty() {
        return Err(ExportError::Io("the collector closed the connection without an answer".into()));
    }
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ExportError::Io(format!("not an HTTP answer: {:?}", status_line.trim_end())))?;
    // The answer's body is read only for an error message, and only so far.
    let mut line = String::new();
    while reader.read_line(&mut line).map_err(timed_out)? > 2 {
        line.clear();
    }
    let mut text = Vec::new();
    let _ = reader.take(512).read_to_end(&mut text);
    Ok((status, String::from_utf8_lossy(&text).trim().to_owned()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn endpoints_parse_and_join() {
        let e = Endpoint::parse("http://collector:4318").unwrap();
        assert_eq!(e, Endpoint { tls: false, host: "collector".into(), port: 4318, path: "/".into() });
        assert_eq!(e.join("v1/logs").to_string(), "http://collector:4318/v1/logs");
        let e = Endpoint::parse("https://otel.example/base/").unwrap();
        assert_eq!((e.port, e.join("/v1/logs").path.as_str()), (443, "/base/v1/logs"));
        let e = Endpoint::parse("http://[::1]:4318/v1/logs").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("::1", 4318));
        assert_eq!(e.to_string(), "http://[::1]:4318/v1/logs");
        for bad in ["grpc://x:4317", "collector:4318", "http://", "http://u@h/", "http://h:port/"] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }
}
