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
#[non_exhaustive]
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

/// What kind of TLS handshake failure a rustls error is, for classification: a peer that
/// does not speak TLS is a setting mismatch (`tls_mismatch`), the rest certificate trouble.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsFailure {
    /// The peer sent bytes that are not TLS (a plaintext greeting, plain HTTP).
    NotTls,
    /// The certificate is not for this host name.
    WrongHost,
    /// The certificate is expired or not yet valid.
    Expired,
    /// The certificate chain is not trusted.
    Untrusted,
    /// Anything else (alerts, protocol versions, …).
    Other,
}

impl TlsFailure {
    /// The kind of `error`.
    pub fn of(error: &rustls::Error) -> TlsFailure {
        use rustls::{CertificateError, Error as TlsError};
        match error {
            TlsError::InvalidMessage(_)
            | TlsError::InappropriateMessage { .. }
            | TlsError::InappropriateHandshakeMessage { .. } => TlsFailure::NotTls,
            TlsError::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            ) => TlsFailure::WrongHost,
            TlsError::InvalidCertificate(
                CertificateError::Expired
                | CertificateError::ExpiredContext { .. }
                | CertificateError::NotValidYet
                | CertificateError::NotValidYetContext { .. },
            ) => TlsFailure::Expired,
            TlsError::InvalidCertificate(_) => TlsFailure::Untrusted,
            _ => TlsFailure::Other,
        }
    }

    /// Whether the certificate was refused (as opposed to the peer not speaking TLS, or another failure).
    pub fn is_certificate(self) -> bool {
        matches!(self, TlsFailure::WrongHost | TlsFailure::Expired | TlsFailure::Untrusted)
    }
}

/// The rustls error in `error`'s chain, looking inside `io::Error`s too (their `source()`
/// skips the error they wrap, and HTTP and TLS stacks nest them).
pub fn find_rustls_error<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut current = Some(error);
    for _ in 0..16 {
        let cause = current?;
        if let Some(tls) = cause.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(inner) = cause.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            let inner: &(dyn std::error::Error + 'static) = inner;
            if let Some(tls) = find_rustls_error(inner) {
                return Some(tls);
            }
        }
        current = cause.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rustls_errors_are_found_inside_io_errors_and_classified() {
        use rustls::{CertificateError, InvalidMessage};
        let not_tls = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidMessage(InvalidMessage::InvalidContentType),
        );
        let outer = std::io::Error::other(not_tls);
        let found = find_rustls_error(&outer).map(TlsFailure::of);
        assert_eq!(found, Some(TlsFailure::NotTls));
        let expired = rustls::Error::InvalidCertificate(CertificateError::Expired);
        assert_eq!(TlsFailure::of(&expired), TlsFailure::Expired);
        assert!(TlsFailure::of(&expired).is_certificate());
        assert_eq!(find_rustls_error(&std::io::Error::other("plain")), None);
    }

    #[test]
    fn pem_text_without_certificates_is_refused_by_reason() {
        assert_eq!(certificates_from_pem(b"just text"), Err(TrustError::NoCertificate));
        let broken = b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        assert!(matches!(certificates_from_pem(broken), Err(TrustError::NotPem(_))));
    }
}
