//! OAuth2 client credentials against the Microsoft identity platform (`/{tenant}/oauth2/v2.0/token`, scope `https://outlook.office365.com/.default`), on mailroom-http's OAuth client; failures mapped into `EwsError` and classified at the token step.

use std::sync::Arc;
use std::time::Duration;

use mailroom_core::{Secret, Transcript};
use mailroom_http::{Endpoints, OAuthClient, OAuthError, OAuthTokenSource};
use url::Url;

use crate::error::{At, Context, EwsError, HttpSummary};
use crate::http::{self, Http};

/// The resource every EWS app-only token is for.
pub(crate) const EWS_SCOPE: &str = "https://outlook.office365.com/.default";

/// The Microsoft identity platform's v2 token endpoint for `tenant`.
pub(crate) fn token_endpoint(tenant: &str) -> Url {
    let authority = Url::parse(mailroom_http::MICROSOFT_AUTHORITY).expect("static URL");
    Endpoints::microsoft(&authority, tenant).token
}

/// The client-credentials token source of one app registration, for core's `TokenCache`.
pub(crate) fn client_credentials(
    endpoint: Url,
    extra_roots: &[rustls::pki_types::CertificateDer<'static>],
    client_id: String,
    client_secret: Secret,
    context: Context,
    timeout: Duration,
) -> Result<OAuthTokenSource, EwsError> {
    // Its own client: proxy use and loopback pinning are per endpoint.
    let http = Http::new(extra_roots, timeout, &endpoint)?.client().clone();
    let client =
        OAuthClient::new(http, Endpoints::token_only(endpoint), client_id, Some(client_secret)).reply_timeout(timeout);
    let map = move |error: OAuthError, transcript: Transcript| {
        let error = from_oauth(error, timeout);
        tracing::debug!(error = %error, "EWS OAuth token request failed");
        error.into_send_error(&context, At::Token, transcript)
    };
    Ok(OAuthTokenSource::client_credentials(client, vec![EWS_SCOPE.to_owned()], Arc::new(map)))
}

/// mailroom-http's token failure in this driver's words.
fn from_oauth(error: OAuthError, timeout: Duration) -> EwsError {
    match error {
        OAuthError::Http(error) => http::from_http(error, timeout),
        OAuthError::Refused { refusal, .. } => match &refusal.error {
            Some(code) => {
                let description = refusal.description.as_deref().unwrap_or_default();
                let description = description.lines().next().unwrap_or_default().trim().to_owned();
                EwsError::TokenRefused { status: refusal.status, error: code.clone(), description }
            }
            // Not an OAuth error body (a proxy's HTML page, a 503…): classified by status.
            None => EwsError::Status {
                status: refusal.status,
                summary: HttpSummary {
                    reason: http::reason_phrase(refusal.status),
                    retry_after: refusal.retry_after,
                    cas_error: None,
                    excerpt: refusal.body_snippet.clone().unwrap_or_default(),
                },
            },
        },
        OAuthError::Malformed { status, reason, .. } => EwsError::TokenMalformed { status, reason },
        other => EwsError::Client(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tenant_is_one_escaped_path_segment() {
        assert_eq!(
            token_endpoint("company.onmicrosoft.com").as_str(),
            "https://login.microsoftonline.com/company.onmicrosoft.com/oauth2/v2.0/token"
        );
        assert_eq!(token_endpoint("a/b?c").as_str(), "https://login.microsoftonline.com/a%2Fb%3Fc/oauth2/v2.0/token");
    }
}
