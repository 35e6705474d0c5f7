//! TLS to credential-route upstreams: rustls with the system's roots plus
//! any CA the profile names.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// A connector trusting the system's roots and `extra_ca_pem`. Built on the
/// first TLS request, not at session start (reading the system's roots costs
/// milliseconds a session without credential routes should not pay).
pub(crate) fn connector(extra_ca_pem: &[Vec<u8>]) -> Result<tokio_rustls::TlsConnector, String> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    for pem in extra_ca_pem {
        let mut any = false;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| format!("a CA file of the profile is not valid PEM: {e}"))?;
            roots.add(cert).map_err(|e| format!("a CA certificate of the profile was rejected: {e}"))?;
            any = true;
        }
        if !any {
            return Err("a CA file of the profile holds no certificate".into());
        }
    }
    if roots.is_empty() {
        return Err("no trusted CA certificates: install the system's CA bundle (ca-certificates)".into());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}
