//! HTTPS to upstreams and to the fleet's peers, with Pingora's rustls connector.
//!
//! The PEM files are read once, when the config is loaded, and everything Pingora would
//! otherwise find wrong only when it connects — or panic over (a certificate that is not DER,
//! a key rustls cannot read) — is refused there, at the key, as a config error. Each endpoint is
//! verified against its own host name as written in `endpoints` (or the IP address), unless
//! `sni` names another.

use crate::config::UpstreamTlsConfig;
use pingora::protocols::tls::CaType;
use pingora::upstreams::peer::HttpPeer;
use pingora::utils::tls::{CertKey, WrappedX509};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;

/// A cluster's TLS settings, loaded.
pub struct UpstreamTls {
    ca: Option<Arc<CaType>>,
    sni: Option<String>,
    client: Option<Arc<CertKey>>,
}

impl UpstreamTls {
    /// Read the files `config` names; a problem is `(key, message)`.
    pub fn load(config: &UpstreamTlsConfig) -> Result<Self, (&'static str, String)> {
        let ca = match &config.ca {
            Some(path) => {
                let certs = certificates(path).map_err(|e| ("ca", e))?;
                let certs: Vec<WrappedX509> = certs
                    .into_iter()
                    .map(wrap)
                    .collect::<Result<_, _>>()
                    .map_err(|e| ("ca", e))?;
                Some(Arc::from(certs.into_boxed_slice()))
            }
            None => None,
        };
        let client = match (&config.cert, &config.key) {
            (Some(cert), Some(key)) => {
                let chain = certificates(cert).map_err(|e| ("cert", e))?;
                for c in &chain {
                    wrap(c.clone()).map_err(|e| ("cert", e))?;
                }
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| ("key", format!("cannot read a private key from {key}: {e}")))?;
                let der = key.secret_der().to_vec();
                Some(Arc::new(CertKey::new(chain, der)))
            }
            (None, None) => None,
            (Some(_), None) => return Err(("key", "a client certificate needs its key".into())),
            (None, Some(_)) => return Err(("cert", "a key needs its client certificate".into())),
        };
        Ok(Self {
            ca,
            sni: config.sni.clone(),
            client,
        })
    }

    /// Make `peer` (an endpoint at `host`) speak TLS as configured.
    pub fn apply(&self, peer: &mut HttpPeer, host: &str) {
        peer.scheme = pingora::upstreams::peer::Scheme::HTTPS;
        peer.sni = self.sni.clone().unwrap_or_else(|| host.to_string());
        peer.options.ca = self.ca.clone();
        peer.client_cert_key = self.client.clone();
    }
}

/// The DER certificates of a PEM file, at least one.
fn certificates(path: &str) -> Result<Vec<Vec<u8>>, String> {
    let certs: Vec<Vec<u8>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read {path}: {e}"))?
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{path}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{path} holds no PEM certificate"));
    }
    Ok(certs)
}

/// Pingora's wrapper of a certificate, which panics on DER it cannot parse: parsed first here.
fn wrap(der: Vec<u8>) -> Result<WrappedX509, String> {
    use x509_parser::prelude::FromDer;
    x509_parser::certificate::X509Certificate::from_der(&der)
        .map_err(|e| format!("a certificate that is not valid X.509: {e}"))?;
    Ok(WrappedX509::new(der, pingora::utils::tls::parse_x509))
}
