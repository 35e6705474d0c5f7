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
    /// Hosts whose HTTPS connections the proxy answers itself (with the
    /// session's CA), for clients that ignore base-URL variables.
    pub intercept: Vec<String>,
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

    /// Whether connections to `host` are this route's to answer.
    pub fn intercepts(&self, host: &str) -> bool {
        self.intercept.iter().any(|h| h.eq_ignore_ascii_case(host))
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

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// The phantom token of one credential route of one workspace: `prefix`,
/// `ws-phantom-`, then 40 letters and digits derived from the workspace's
/// key (random, kept where sessions cannot read it) and the route. Stable,
/// so that a client that remembers a key (Claude Code asks once whether to
/// use a custom key) does not ask at every session; a different workspace
/// or route gets an unrelated one. It never holds anything of the real
/// secret, and only a proxy of a session of that workspace swaps it. Pure.
pub fn stable_phantom(prefix: &str, workspace_key: &[u8; 32], route: &[&str]) -> String {
    let mut h = blake3::Hasher::new_keyed(workspace_key);
    h.update(b"ws phantom token 1");
    for part in route {
        // Length-prefixed, so that no two routes hash the same bytes.
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    // Rejection sampling from the XOF: no bias toward some letters.
    let mut reader = h.finalize_xof();
    let mut body = String::with_capacity(40);
    let mut byte = [0u8; 1];
    while body.len() < 40 {
        reader.fill(&mut byte);
        if usize::from(byte[0]) < ALPHABET.len() * 4 {
            body.push(ALPHABET[usize::from(byte[0]) % ALPHABET.len()] as char);
        }
    }
    format!("{prefix}ws-phantom-{body}")
}

/// Where a proxy on the host's loopback (no network namespace) takes route
/// requests only under the session's token, `/TOKEN/route/…`: the rest of
/// the path, or `None`. Compared in constant time. Pure.
pub fn strip_session_token(path: &str, token: &str) -> Option<String> {
    let p = path.strip_prefix('/')?;
    let end = p.find(['/', '?']).unwrap_or(p.len());
    let (given, rest) = p.split_at(end);
    (constant_time_eq(given.as_bytes(), token.as_bytes()) && rest.starts_with('/')).then(|| rest.to_owned())
}

/// A fresh phantom token: `prefix` then 40 random letters and digits.
pub fn phantom_token(prefix: &str) -> String {
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
    fn stable_phantoms_follow_the_workspace_and_the_route() {
        let (k1, k2) = ([1u8; 32], [2u8; 32]);
        let route = ["anthropic", "https://api.anthropic.com", "x-api-key"];
        let a = stable_phantom("sk-ant-", &k1, &route);
        assert_eq!(a, stable_phantom("sk-ant-", &k1, &route), "stable");
        assert!(a.starts_with("sk-ant-ws-phantom-") && a.len() == 7 + 11 + 40, "{a}");
        assert!(a["sk-ant-ws-phantom-".len()..].bytes().all(|b| b.is_ascii_alphanumeric()), "{a}");
        assert_ne!(a, stable_phantom("sk-ant-", &k2, &route), "another workspace");
        assert_ne!(a, stable_phantom("sk-ant-", &k1, &["anthropic", "https://gateway.example", "x-api-key"]));
        assert_ne!(stable_phantom("", &k1, &["ab", "c"]), stable_phantom("", &k1, &["a", "bc"]), "unambiguous");
    }

    #[test]
    fn host_loopback_routes_need_the_session_token() {
        assert_eq!(strip_session_token("/tok/anthropic/v1/messages", "tok"), Some("/anthropic/v1/messages".into()));
        for bad in
            ["/anthropic/v1/messages", "/tok", "/tok?x", "/to/anthropic", "/tokk/anthropic", "tok/anthropic", "/"]
        {
            assert_eq!(strip_session_token(bad, "tok"), None, "{bad}");
        }
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
            intercept: vec![],
        };
        assert!(r.accepts(b"Bearer p-123"));
        for bad in [&b"Bearer p-124"[..], b"p-123", b"Bearer real", b"", b"Bearer p-1234"] {
            assert!(!r.accepts(bad));
        }
        assert_eq!(r.upstream_value(), b"Bearer real");
        assert_eq!(format!("{:?}", r.secret), "Credential(<4 bytes>)");
    }
}
