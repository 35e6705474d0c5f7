//! Credential routes: the sandbox holds a phantom token, the proxy swaps it
//! for the real secret on the way out. Pure parts, tested here.

use crate::rules::HttpRule;

/// Bytes of a real credential. Overwritten when dropped; never printed.
pub struct Credential(Vec<u8>);

impl Credential {
    pub fn new(bytes: Vec<u8>) -> Credential {
        Credential(bytes)
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Credential {
    fn drop(&mut self) {
        for b in self.0.iter_mut() {
            // black_box keeps the writes from being optimised away.
            *std::hint::black_box(b) = 0;
        }
    }
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credential(<{} bytes>)", self.0.len())
    }
}

/// Where a route forwards to: `https://api.anthropic.com/v1`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    pub https: bool,
    pub host: String,
    pub port: u16,
    /// Prefix of every forwarded path, without a trailing `/` (may be empty).
    pub base_path: String,
}

impl Upstream {
    pub fn parse(url: &str) -> Result<Upstream, String> {
        let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(format!("`{url}` must start with https:// (or http://)"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if path.contains(['?', '#']) {
            return Err(format!("`{url}` must not carry a query or fragment"));
        }
        let (host, port) = crate::rules::split_authority(authority, if https { 443 } else { 80 })
            .ok_or_else(|| format!("`{url}` has no valid host"))?;
        Ok(Upstream { https, host, port, base_path: path.trim_end_matches('/').to_owned() })
    }

    /// `host` or `host:port` as a Host header says it.
    pub fn authority(&self) -> String {
        let default = if self.https { 443 } else { 80 };
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        if self.port == default { host } else { format!("{host}:{}", self.port) }
    }
}

/// One credential route, reached at `http://127.0.0.1:PORT/<name>/…`.
#[derive(Debug)]
pub struct Route {
    pub name: String,
    /// Name of the secret, for audit records (never its value).
    pub secret_name: String,
    pub upstream: Upstream,
    /// Lower-case header carrying the credential (`x-api-key`, `authorization`).
    pub header: String,
    /// Scheme before the token (`Bearer`), if the header has one.
    pub scheme: Option<String>,
    pub phantom: String,
    pub secret: Credential,
    /// Methods and path globs (relative to the route) allowed; empty: any.
    pub limits: HttpRule,
}

impl Route {
    /// The header value the sandbox sends, and the one upstream gets.
    pub fn sandbox_value(&self) -> String {
        match &self.scheme {
            Some(s) => format!("{s} {}", self.phantom),
            None => self.phantom.clone(),
        }
    }

    pub fn upstream_value(&self) -> Vec<u8> {
        let mut v = match &self.scheme {
            Some(s) => format!("{s} ").into_bytes(),
            None => Vec::new(),
        };
        v.extend_from_slice(self.secret.expose());
        v
    }

    /// Whether `value` (the route header as the sandbox sent it) carries this
    /// session's phantom. Compared in constant time.
    pub fn accepts(&self, value: &[u8]) -> bool {
        constant_time_eq(value, self.sandbox_value().as_bytes())
    }
}

/// Splits `/name/rest?q` into the route name and the rest (`/rest?q`). Pure.
pub fn split_route_path(path_and_query: &str) -> Option<(&str, String)> {
    let p = path_and_query.strip_prefix('/')?;
    let end = p.find(['/', '?']).unwrap_or(p.len());
    let (name, rest) = p.split_at(end);
    if name.is_empty() {
        return None;
    }
    let rest = if rest.starts_with('?') || rest.is_empty() { format!("/{rest}") } else { rest.to_owned() };
    Some((name, rest))
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A fresh phantom token: `prefix` then 40 random letters and digits.
pub fn phantom_token(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut raw = [0u8; 40];
    fill_random(&mut raw);
    // 62 does not divide 256; the bias is far below what matters for a token
    // that is only ever compared, never derived from.
    let body: String = raw.iter().map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char).collect();
    format!("{prefix}ws-phantom-{body}")
}

pub(crate) fn fill_random(buf: &mut [u8]) {
    let mut filled = 0;
    while filled < buf.len() {
        match rustix::rand::getrandom(&mut buf[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => continue,
            // getrandom only fails this way before the kernel's pool is
            // initialised, which is long past once a session runs.
            Err(e) => panic!("the kernel refused random bytes: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_parse() {
        let u = Upstream::parse("https://api.anthropic.com").unwrap();
        assert_eq!((u.https, u.host.as_str(), u.port, u.base_path.as_str()), (true, "api.anthropic.com", 443, ""));
        assert_eq!(u.authority(), "api.anthropic.com");
        let u = Upstream::parse("http://127.0.0.1:8080/v1/").unwrap();
        assert_eq!((u.https, u.port, u.base_path.as_str()), (false, 8080, "/v1"));
        assert_eq!(u.authority(), "127.0.0.1:8080");
        for bad in ["ftp://x", "https://", "https://h/p?q=1", "api.anthropic.com"] {
            assert!(Upstream::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn route_paths_split() {
        assert_eq!(
            split_route_path("/anthropic/v1/messages?beta=true"),
            Some(("anthropic", "/v1/messages?beta=true".into()))
        );
        assert_eq!(split_route_path("/anthropic"), Some(("anthropic", "/".into())));
        assert_eq!(split_route_path("/anthropic?x"), Some(("anthropic", "/?x".into())));
        assert_eq!(split_route_path("/"), None);
        assert_eq!(split_route_path("anthropic"), None);
    }

    #[test]
    fn phantoms_are_fresh_and_prefixed() {
        let a = phantom_token("ghp_");
        let b = phantom_token("ghp_");
        assert!(a.starts_with("ghp_ws-phantom-") && a.len() == 4 + 11 + 40);
        assert_ne!(a, b);
    }

    #[test]
    fn routes_accept_only_their_phantom() {
        let r = Route {
            name: "a".into(),
            secret_name: "a".into(),
            upstream: Upstream::parse("https://x.example").unwrap(),
            header: "authorization".into(),
            scheme: Some("Bearer".into()),
            phantom: "p-123".into(),
            secret: Credential::new(b"real".to_vec()),
            limits: HttpRule::default(),
        };
        assert!(r.accepts(b"Bearer p-123"));
        for bad in [&b"Bearer p-124"[..], b"p-123", b"Bearer real", b"", b"Bearer p-1234"] {
            assert!(!r.accepts(bad));
        }
        assert_eq!(r.upstream_value(), b"Bearer real");
        assert_eq!(format!("{:?}", r.secret), "Credential(<4 bytes>)");
    }
}
