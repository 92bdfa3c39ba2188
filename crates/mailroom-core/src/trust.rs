//! The TLS trust policy every driver shares: rustls on the aws-lc-rs provider (never the process default), Mozilla's roots plus a company's own CA certificates.
//!
//! Building a client config is computation, not I/O: drivers read `ca_file` themselves and
//! hand the PEM text here, so the file's path and the driver's own error type stay theirs.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};

/// Why extra CA certificates or the client config were refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    /// The text holds no `-----BEGIN CERTIFICATE-----` block.
    #[error("it holds no -----BEGIN CERTIFICATE----- block")]
    NoCertificate,
    /// A block is not a well-formed PEM certificate.
    #[error("not a PEM certificate: {0}")]
    NotPem(String),
    /// rustls refused a certificate as a trust root.
    #[error("unusable certificate: {0}")]
    Unusable(String),
    /// rustls refused the protocol settings (a build defect).
    #[error("TLS settings refused: {0}")]
    Settings(String),
}

/// Every certificate in PEM text (a `ca_file`'s contents), in order; at least one.
pub fn certificates_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TrustError> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .map(|certificate| certificate.map_err(|e| TrustError::NotPem(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    if certificates.is_empty() {
        return Err(TrustError::NoCertificate);
    }
    Ok(certificates)
}

/// A rustls client config trusting Mozilla's roots (webpki-roots) plus `extra_roots`, on the
/// aws-lc-rs provider with its safe default protocol versions, no client certificate.
///
/// ```
/// let config = mailroom_core::trust::client_config(Vec::new()).unwrap();
/// assert!(config.alpn_protocols.is_empty());
/// ```
pub fn client_config(
    extra_roots: impl IntoIterator<Item = CertificateDer<'static>>,
) -> Result<ClientConfig, TrustError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for root in extra_roots {
        roots.add(root).map_err(|e| TrustError::Unusable(e.to_string()))?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TrustError::Settings(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_text_without_certificates_is_refused_by_reason() {
        assert_eq!(certificates_from_pem(b"just text"), Err(TrustError::NoCertificate));
        let broken = b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        assert!(matches!(certificates_from_pem(broken), Err(TrustError::NotPem(_))));
    }
}
