//! What a session may reach: pure decisions over hosts, addresses, methods
//! and paths. Nothing here does I/O.
//!
//! # Security
//! - Deny by default: a host is reachable only if a glob of the profile names it.
//! - Names are checked, then resolved, then every resolved address is checked
//!   ([`NetRules::check_address`]); the connection goes to a checked address,
//!   never to a second resolution of the name.
//! - Loopback, private, link-local (cloud metadata), shared, multicast and
//!   unspecified addresses are refused unless a range of the profile names
//!   them. IPv4-mapped and NAT64 IPv6 addresses are judged by the IPv4
//!   address they carry.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address range, `10.0.0.0/8` or a single address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max)?,
            None => max,
        };
        Some(Cidr { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, unmap(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - self.prefix) };
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = if self.prefix == 0 { 0 } else { u128::MAX << (128 - self.prefix) };
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The IPv4 address an IPv6 address stands for, if any (`::ffff:a.b.c.d`,
/// NAT64 `64:ff9b::a.b.c.d`).
fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [a, b] = s[6].to_be_bytes();
                let [c, d] = s[7].to_be_bytes();
                return IpAddr::V4(Ipv4Addr::new(a, b, c, d));
            }
            IpAddr::V6(v6)
        }
        v4 => v4,
    }
}

/// Why an address is not public. Pure.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match unmap(ip) {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            if v4.is_loopback() {
                Some("loopback")
            } else if v4.is_private() {
                Some("private")
            } else if v4.is_link_local() {
                Some("link-local (cloud metadata lives here)")
            } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
                Some("shared (carrier-grade NAT)")
            } else if o[0] == 0 || v4.is_broadcast() {
                Some("unspecified")
            } else if v4.is_multicast() || o[0] >= 240 {
                Some("multicast or reserved")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let s0 = v6.segments()[0];
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if (s0 & 0xfe00) == 0xfc00 {
                Some("private (unique local)")
            } else if (s0 & 0xffc0) == 0xfe80 {
                Some("link-local")
            } else if v6.is_multicast() {
                Some("multicast")
            } else if v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
                Some("cloud metadata")
            } else {
                None
            }
        }
    }
}

/// Matches `text` against a glob: `*` stands for any run of characters other
/// than `sep`, `**` for any run at all. Hosts are matched case-insensitively
/// with no separator (`*.example.com` covers `a.b.example.com`). Pure.
pub fn glob(pattern: &str, text: &str, sep: Option<u8>) -> bool {
    fn go(p: &[u8], t: &[u8], sep: Option<u8>) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some(b'*') => {
                let (any, rest) = if p.get(1) == Some(&b'*') { (true, &p[2..]) } else { (false, &p[1..]) };
                for i in 0..=t.len() {
                    if go(rest, &t[i..], sep) {
                        return true;
                    }
                    if i < t.len() && !any && Some(t[i]) == sep {
                        return false;
                    }
                }
                false
            }
            Some(c) => t.first() == Some(c) && go(&p[1..], &t[1..], sep),
        }
    }
    go(pattern.as_bytes(), text.as_bytes(), sep)
}

fn host_glob(pattern: &str, host: &str) -> bool {
    glob(&pattern.to_ascii_lowercase(), &host.trim_end_matches('.').to_ascii_lowercase(), None)
}

/// Which ports a `network.hosts` entry allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ports {
    /// No port given: the web's, 80 and 443.
    Web,
    Any,
    One(u16),
}

/// Splits a `network.hosts` entry into its host glob and ports:
/// `github.com`, `github.com:22`, `127.0.0.1:*`, `[::1]:8080`. Pure.
fn host_entry(entry: &str) -> (&str, Ports) {
    let port = |p: &str| match p {
        "*" => Some(Ports::Any),
        p => p.parse().ok().map(Ports::One),
    };
    if let Some(rest) = entry.strip_prefix('[')
        && let Some((h, after)) = rest.split_once(']')
    {
        return (h, after.strip_prefix(':').and_then(port).unwrap_or(Ports::Web));
    }
    match entry.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => match port(p) {
            Some(ports) => (h, ports),
            None => (entry, Ports::Web),
        },
        _ => (entry, Ports::Web),
    }
}

/// Method and path limits for plain-HTTP requests to some hosts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpRule {
    /// Host glob the rule applies to.
    pub host: String,
    /// Allowed methods (upper case); empty: any.
    pub methods: Vec<String>,
    /// Allowed path globs (`*` within a segment, `**` across); empty: any.
    pub paths: Vec<String>,
}

impl HttpRule {
    /// `None` if the request passes, else why not.
    pub fn refuses(&self, method: &str, path: &str) -> Option<String> {
        if !self.methods.is_empty() && !self.methods.iter().any(|m| m.eq_ignore_ascii_case(method)) {
            return Some(format!("method {method} is not among {}", self.methods.join(", ")));
        }
        let path = path.split('?').next().unwrap_or(path);
        if !self.paths.is_empty() && !self.paths.iter().any(|p| glob(p, path, Some(b'/'))) {
            return Some(format!("path {path} matches none of {}", self.paths.join(", ")));
        }
        None
    }
}

/// A session's network rules.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetRules {
    /// Where the rules came from, for messages (`profile claude-code`).
    pub origin: String,
    /// Host globs that may be reached.
    pub hosts: Vec<String>,
    /// Non-public ranges that may be reached anyway.
    pub addresses: Vec<Cidr>,
    pub http: Vec<HttpRule>,
}

/// A decision and the rule that made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow { rule: String },
    Deny { rule: String, reason: String },
}

impl Verdict {
    pub fn rule(&self) -> &str {
        match self {
            Verdict::Allow { rule } | Verdict::Deny { rule, .. } => rule,
        }
    }
}

impl NetRules {
    /// May the session reach `host:port` at all? An entry without a port
    /// allows 80 and 443 only (`host:22`, `host:*` for others). Pure.
    pub fn decide_host(&self, host: &str, port: u16) -> Verdict {
        let mut host_only = None;
        for entry in &self.hosts {
            let (glob, ports) = host_entry(entry);
            if !host_glob(glob, host) {
                continue;
            }
            let fits = match ports {
                Ports::Web => port == 80 || port == 443,
                Ports::Any => true,
                Ports::One(p) => p == port,
            };
            if fits {
                return Verdict::Allow { rule: format!("network.hosts \"{entry}\"") };
            }
            host_only.get_or_insert(entry);
        }
        match host_only {
            Some(entry) => Verdict::Deny {
                rule: format!("network.hosts \"{entry}\""),
                reason: format!(
                    "port {port} of {host} is not allowed: \"{entry}\" covers {} (write \"{host}:{port}\" to allow it)",
                    match host_entry(entry).1 {
                        Ports::One(p) => format!("port {p} only"),
                        _ => "ports 80 and 443 only".into(),
                    }
                ),
            },
            None => Verdict::Deny {
                rule: "deny by default".into(),
                reason: format!("{host} is not in network.hosts of {}", self.origin),
            },
        }
    }

    /// May the session send `method path` to `host:port` over plain HTTP? Pure.
    pub fn decide_request(&self, host: &str, port: u16, method: &str, path: &str) -> Verdict {
        let v = self.decide_host(host, port);
        if let Verdict::Deny { .. } = v {
            return v;
        }
        for r in self.http.iter().filter(|r| host_glob(&r.host, host)) {
            if let Some(reason) = r.refuses(method, path) {
                return Verdict::Deny { rule: format!("network.http \"{}\"", r.host), reason };
            }
        }
        v
    }

    /// Whether a resolved address may be connected to. Pure.
    pub fn check_address(&self, ip: IpAddr) -> Result<(), String> {
        let Some(class) = non_public(ip) else { return Ok(()) };
        if self.addresses.iter().any(|c| c.contains(ip)) {
            return Ok(());
        }
        Err(format!("{ip} is a {class} address; network.addresses of {} does not allow it", self.origin))
    }
}

/// Splits `host:port` (with `[v6]:port`) and lower-cases the host. Pure.
pub fn split_authority(authority: &str, default_port: u16) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        (h.to_owned(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), p.parse().ok()?),
            None => (authority.to_owned(), default_port),
        }
    };
    if host.is_empty() || host.contains(['/', '@', ' ']) {
        return None;
    }
    Some((host.to_ascii_lowercase(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> NetRules {
        NetRules {
            origin: "profile t".into(),
            hosts: vec!["api.example.com".into(), "*.github.com".into(), "localhost".into()],
            addresses: vec![Cidr::parse("10.1.0.0/16").unwrap()],
            http: vec![HttpRule {
                host: "api.example.com".into(),
                methods: vec!["GET".into()],
                paths: vec!["/v1/*/items".into(), "/pub/**".into()],
            }],
        }
    }

    #[test]
    fn hosts_are_denied_by_default_and_globs_allow() {
        let r = rules();
        assert!(matches!(r.decide_host("api.example.com", 443), Verdict::Allow { .. }));
        assert!(matches!(r.decide_host("API.Example.COM.", 80), Verdict::Allow { .. }));
        assert!(matches!(r.decide_host("codeload.github.com", 443), Verdict::Allow { .. }));
        assert!(matches!(r.decide_host("a.b.github.com", 443), Verdict::Allow { .. }));
        for h in ["github.com", "evil.example", "api.example.com.evil.net", "xgithub.com", "", "github.com.evil"] {
            match r.decide_host(h, 443) {
                Verdict::Deny { reason, rule } => {
                    assert_eq!(rule, "deny by default");
                    assert!(reason.contains("profile t"), "{reason}");
                }
                v => panic!("{h}: {v:?}"),
            }
        }
    }

    #[test]
    fn ports_other_than_the_webs_must_be_named() {
        let r = NetRules {
            hosts: vec!["a.example".into(), "b.example:22".into(), "c.example:*".into(), "[::1]:8080".into()],
            ..NetRules::default()
        };
        let allowed = |h: &str, p: u16| matches!(r.decide_host(h, p), Verdict::Allow { .. });
        assert!(allowed("a.example", 443) && allowed("a.example", 80));
        assert!(!allowed("a.example", 22) && !allowed("a.example", 8443));
        assert!(allowed("b.example", 22) && !allowed("b.example", 443));
        assert!(allowed("c.example", 1) && allowed("c.example", 65535));
        assert!(allowed("::1", 8080) && !allowed("::1", 443));
        match r.decide_host("a.example", 22) {
            Verdict::Deny { reason, .. } => assert!(reason.contains("\"a.example:22\""), "{reason}"),
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn http_rules_limit_methods_and_paths() {
        let r = rules();
        assert!(matches!(r.decide_request("api.example.com", 80, "GET", "/v1/x/items?q=1"), Verdict::Allow { .. }));
        assert!(matches!(r.decide_request("api.example.com", 80, "GET", "/pub/a/b/c"), Verdict::Allow { .. }));
        for (m, p) in [("POST", "/v1/x/items"), ("GET", "/v1/x/y/items"), ("GET", "/v2"), ("GET", "/pubx")] {
            assert!(matches!(r.decide_request("api.example.com", 80, m, p), Verdict::Deny { .. }), "{m} {p}");
        }
        // Other hosts have no http rule.
        assert!(matches!(r.decide_request("x.github.com", 80, "DELETE", "/"), Verdict::Allow { .. }));
    }

    #[test]
    fn non_public_addresses_are_refused_unless_named() {
        let r = rules();
        for ip in [
            "127.0.0.1",
            "127.8.9.10",
            "::1",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "fe80::1",
            "fc00::1",
            "fd00:ec2::254",
            "::",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(r.check_address(ip).is_err(), "{ip}");
        }
        for ip in ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "10.1.2.3", "::ffff:10.1.9.9"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(r.check_address(ip).is_ok(), "{ip}");
        }
    }

    #[test]
    fn cidrs_parse_and_contain() {
        assert!(Cidr::parse("127.0.0.1").unwrap().contains("127.0.0.1".parse().unwrap()));
        assert!(!Cidr::parse("127.0.0.1").unwrap().contains("127.0.0.2".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains("8.8.8.8".parse().unwrap()));
        assert!(Cidr::parse("::1/128").unwrap().contains("::1".parse().unwrap()));
        for bad in ["10.0.0.0/33", "x", "1.2.3.4/", "::/129", ""] {
            assert!(Cidr::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn globs() {
        assert!(glob("/a/*/c", "/a/b/c", Some(b'/')));
        assert!(!glob("/a/*/c", "/a/b/x/c", Some(b'/')));
        assert!(glob("/a/**", "/a/b/x/c", Some(b'/')));
        assert!(glob("**", "", Some(b'/')));
        assert!(glob("*", "anything.at.all", None));
        assert!(!glob("a", "ab", None));
    }

    #[test]
    fn authorities_split() {
        assert_eq!(split_authority("Example.com:443", 80), Some(("example.com".into(), 443)));
        assert_eq!(split_authority("example.com", 80), Some(("example.com".into(), 80)));
        assert_eq!(split_authority("[::1]:8080", 80), Some(("::1".into(), 8080)));
        assert_eq!(split_authority("[::1]", 80), Some(("::1".into(), 80)));
        for bad in ["", ":80", "a:b", "user@host:1", "[::1", "h:99999"] {
            assert_eq!(split_authority(bad, 80), None, "{bad}");
        }
    }
}
