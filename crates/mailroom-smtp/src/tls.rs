//! TLS for the SMTP driver: one rustls client config (aws-lc-rs provider, webpki roots plus the config's `ca_file`) and the handshake.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};

use crate::error::SmtpError;

/// Builds the client config: Mozilla's roots (webpki-roots) plus every certificate in `ca_file`.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, SmtpError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let ca_error = |reason: String| SmtpError::CaFile { path: path.display().to_string(), reason };
        let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
        let mut added = 0;
        for certificate in CertificateDer::pem_slice_iter(&pem) {
            let certificate = certificate.map_err(|e| ca_error(format!("not a PEM certificate: {e}")))?;
            roots.add(certificate).map_err(|e| ca_error(format!("unusable certificate: {e}")))?;
            added += 1;
        }
        if added == 0 {
            return Err(ca_error("it holds no -----BEGIN CERTIFICATE----- block".into()));
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SmtpError::Tls { reason: e.to_string(), cause: crate::error::TlsFailure::Other })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The name the server's certificate must carry: the DNS name or IP address as configured.
pub fn server_name(host: &str) -> Result<ServerName<'static>, SmtpError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(bare.to_owned())
        .map_err(|e| SmtpError::Resolve { host: host.to_owned(), reason: format!("not a valid TLS server name: {e}") })
}
