//! TLS interception for credential routes whose clients ignore base-URL
//! variables (Codex always calls `https://api.openai.com`) or speak
//! WebSocket: the proxy answers a `CONNECT` to a route's intercepted host
//! itself, with a certificate for that host signed by a CA made for this
//! session alone, and swaps the phantom for the real key inside.
//!
//! # Security
//! - The CA's private key exists only in this process's memory, for the
//!   session's lifetime; the sandbox gets its certificate (to trust) only.
//! - The CA is name-constrained to the intercepted hosts: even if its key
//!   leaked, no client honouring name constraints would accept it for any
//!   other host.
//! - Only the hosts a route names are intercepted; every other `CONNECT`
//!   stays an opaque tunnel.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, GeneralSubtree, IsCa, KeyPair, KeyUsagePurpose,
    NameConstraints,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A session's interception CA, and the server certificates made with it.
pub struct SessionCa {
    key: KeyPair,
    cert: rcgen::Certificate,
    hosts: Vec<String>,
    /// Server configurations by host, made on first use.
    servers: Mutex<HashMap<String, Arc<rustls::ServerConfig>>>,
}

impl std::fmt::Debug for SessionCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCa").field("hosts", &self.hosts).finish_non_exhaustive()
    }
}

impl SessionCa {
    /// A new CA that can vouch for `hosts` (DNS names) and nothing else.
    pub fn new(hosts: &[String]) -> Result<SessionCa, String> {
        let key = KeyPair::generate().map_err(|e| format!("cannot make the session's CA key: {e}"))?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "ws session CA (this session only)");
        dn.push(DnType::OrganizationName, "ws");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.name_constraints = Some(NameConstraints {
            permitted_subtrees: hosts.iter().map(|h| GeneralSubtree::DnsName(h.clone())).collect(),
            excluded_subtrees: Vec::new(),
        });
        let cert = params.self_signed(&key).map_err(|e| format!("cannot make the session's CA: {e}"))?;
        Ok(SessionCa { key, cert, hosts: hosts.to_vec(), servers: Mutex::default() })
    }

    /// The CA's certificate, PEM: what the sandbox is told to trust.
    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// Whether `host` is one this CA vouches for (case-insensitive).
    pub fn covers(&self, host: &str) -> bool {
        self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
    }

    /// The TLS server configuration presenting a certificate for `host`.
    pub(crate) fn server(&self, host: &str) -> Result<Arc<rustls::ServerConfig>, String> {
        if !self.covers(host) {
            return Err(format!("the session's CA does not vouch for {host}"));
        }
        let host = host.to_ascii_lowercase();
        let mut servers = self.servers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = servers.get(&host) {
            return Ok(Arc::clone(s));
        }
        let key = KeyPair::generate().map_err(|e| format!("cannot make a key for {host}: {e}"))?;
        let mut params =
            CertificateParams::new(vec![host.clone()]).map_err(|e| format!("`{host}` is not a TLS name: {e}"))?;
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, host.clone());
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let leaf = params
            .signed_by(&key, &self.cert, &self.key)
            .map_err(|e| format!("cannot sign a certificate for {host}: {e}"))?;
        let chain = vec![CertificateDer::from(leaf.der().to_vec()), CertificateDer::from(self.cert.der().to_vec())];
        let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .map_err(|e| format!("cannot serve TLS for {host}: {e}"))?;
        // HTTP/1.1 only: the proxy reads requests with hyper's HTTP/1 server
        // (WebSocket upgrades included).
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let config = Arc::new(config);
        servers.insert(host, Arc::clone(&config));
        Ok(config)
    }
}

/// The system's trusted roots as one PEM bundle, to which a session adds its
/// CA: clients that take a replacement bundle (`SSL_CERT_FILE`) must still
/// reach every other host.
pub fn system_roots_pem() -> String {
    use base64::Engine;
    let mut out = String::new();
    for cert in rustls_native_certs::load_native_certs().certs {
        let b64 = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(line).unwrap_or_default());
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_gets_a_certificate_chained_to_the_session_ca() {
        let ca = SessionCa::new(&["api.example.com".into()]).unwrap();
        assert!(ca.covers("API.example.com") && !ca.covers("example.com"));
        assert!(ca.server("example.com").is_err(), "no certificate for a host it does not cover");
        let server = ca.server("api.example.com").unwrap();
        assert_eq!(server.alpn_protocols, vec![b"http/1.1".to_vec()]);
        // The same host is served by the same configuration.
        assert!(Arc::ptr_eq(&server, &ca.server("api.example.com").unwrap()));
        assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    }

    #[test]
    fn the_system_bundle_is_pem() {
        let pem = system_roots_pem();
        // A machine without a CA bundle gives an empty one; any content is PEM.
        assert!(pem.is_empty() || pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
    }
}
