//! TLS configuration: for providers (client side: rustls with the ring provider, the webpki
//! roots, plus an optional per-provider CA file) and for clients (`[server.tls]`: the
//! certificate chain and key, read and checked when the config is loaded).

use std::path::Path;
use std::sync::Arc;

/// Build the client config for one provider. `ca_file` adds PEM certificates to the roots.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let pem =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut added = 0usize;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.map_err(|e| format!("bad PEM in {}: {e}", path.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("unusable certificate in {}: {e}", path.display()))?;
            added += 1;
        }
        if added == 0 {
            return Err(format!("no certificates in {}", path.display()));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// ALPN protocols the server offers. HTTP/1.1 only: a client that offers only others (h2) is
/// refused with the `no_application_protocol` alert (RFC 7301 §3.2) rather than served a
/// protocol it did not ask for. A client that sends no ALPN at all gets HTTP/1.1.
pub const SERVER_ALPN: &[&[u8]] = &[b"http/1.1"];

/// Which file a server TLS error is about (the error names that key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsFile {
    /// `server.tls.cert`
    Cert,
    /// `server.tls.key`
    Key,
}

/// Build the server config from a PEM certificate chain (leaf first) and a PEM private key
/// (PKCS#8, PKCS#1 RSA or SEC1 EC): both read now, the key checked against the leaf. TLS 1.3
/// and 1.2, ring.
pub fn server_config(
    cert: &Path,
    key: &Path,
) -> Result<Arc<rustls::ServerConfig>, (TlsFile, String)> {
    let cert_err = |m: String| (TlsFile::Cert, m);
    let key_err = |m: String| (TlsFile::Key, m);
    let pem = std::fs::read(cert)
        .map_err(|e| cert_err(format!("cannot read {}: {e}", cert.display())))?;
    let chain = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_err(format!("bad PEM in {}: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(cert_err(format!(
            "no certificate in {} (expected PEM `BEGIN CERTIFICATE` blocks, leaf first)",
            cert.display()
        )));
    }
    let pem =
        std::fs::read(key).map_err(|e| key_err(format!("cannot read {}: {e}", key.display())))?;
    let private = rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| key_err(format!("bad PEM in {}: {e}", key.display())))?
        .ok_or_else(|| {
            key_err(format!(
                "no private key in {} (expected a PEM PKCS#8, RSA or EC private key; encrypted \
                 keys are not supported)",
                key.display()
            ))
        })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| cert_err(format!("TLS setup: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => key_err(format!(
                "the private key in {} does not belong to the certificate in {}",
                key.display(),
                cert.display()
            )),
            rustls::Error::InvalidCertificate(why) => cert_err(format!(
                "unusable certificate in {}: {why:?}",
                cert.display()
            )),
            other => key_err(format!(
                "unusable private key in {}: {other}",
                key.display()
            )),
        })?;
    cfg.alpn_protocols = SERVER_ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(cfg))
}
