//! TLS for the SMTP driver: one rustls client config (aws-lc-rs provider, webpki roots plus the config's `ca_file`) and the handshake.

use std::path::Path;
use std::sync::Arc;

use mailroom_core::trust::{self, TrustError};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;

use crate::error::SmtpError;

/// Builds the client config: core's trust policy with every certificate in `ca_file` added.
pub(crate) fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, SmtpError> {
    let mut extra_roots = Vec::new();
    if let Some(path) = ca_file {
        let ca_error = |reason: String| SmtpError::CaFile { path: path.display().to_string(), reason };
        let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
        extra_roots = trust::certificates_from_pem(&pem).map_err(|e| ca_error(e.to_string()))?;
    }
    let config = trust::client_config(extra_roots).map_err(|e| match e {
        TrustError::Settings(reason) => SmtpError::Tls { reason, cause: crate::error::TlsFailure::Other },
        other => SmtpError::CaFile {
            path: ca_file.map(|p| p.display().to_string()).unwrap_or_default(),
            reason: other.to_string(),
        },
    })?;
    Ok(Arc::new(config))
}

/// The name the server's certificate must carry: the DNS name or IP address as configured.
pub(crate) fn server_name(host: &str) -> Result<ServerName<'static>, SmtpError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(bare.to_owned())
        .map_err(|e| SmtpError::Resolve { host: host.to_owned(), reason: format!("not a valid TLS server name: {e}") })
}
