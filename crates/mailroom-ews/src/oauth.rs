//! OAuth2 client credentials against Azure AD v2 (`/{tenant}/oauth2/v2.0/token`, scope `https://outlook.office365.com/.default`): a core `TokenSource` on the driver's own HTTP client.
//!
//! Why not the `oauth2` crate: the grant is one form POST and one JSON reply, and oauth2 5.0
//! is built on reqwest 0.12 while this driver uses reqwest 0.13 (DESIGN.md §6). Doing the
//! POST here keeps one HTTP stack, one TLS config (with `ca_file`), no redirects, our
//! deadline and our error classification (AADSTS codes → the field to change), for about
//! the size of the adapter oauth2 would need.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use mailroom_core::{AccessToken, Secret, SendError, TokenSource, Transcript};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use url::Url;

use crate::error::{At, Context, EwsError};
use crate::http::{self, Header, Http, Post};

/// The resource every EWS app-only token is for.
pub(crate) const EWS_SCOPE: &str = "https://outlook.office365.com/.default";

/// Azure AD's v2 token endpoint for `tenant`.
pub(crate) fn token_endpoint(tenant: &str) -> Url {
    let mut url = Url::parse("https://login.microsoftonline.com/").expect("static URL");
    url.path_segments_mut().expect("https URLs have paths").extend([tenant, "oauth2", "v2.0", "token"]);
    url
}

/// Client credentials for one app registration.
pub(crate) struct ClientCredentials {
    pub http: Http,
    pub endpoint: Url,
    pub client_id: String,
    pub client_secret: Secret,
    pub context: Context,
    /// The reply deadline (`timeout_secs`).
    pub timeout: Duration,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("endpoint", &http::shown(&self.endpoint))
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

#[derive(serde::Deserialize)]
struct TokenReply {
    access_token: Option<String>,
    expires_in: Option<serde_json::Value>,
    error: Option<String>,
    error_description: Option<String>,
}

impl ClientCredentials {
    async fn fetch(&self, transcript: &mut Transcript) -> Result<AccessToken, EwsError> {
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", &self.client_id)
            .append_pair("client_secret", self.client_secret.expose())
            .append_pair("scope", EWS_SCOPE)
            .finish();
        let headers = vec![
            Header::new(CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded")),
            Header::new(ACCEPT, HeaderValue::from_static("application/json")),
        ];
        let what = format!(
            "grant_type=client_credentials&client_id={}&client_secret=[redacted]&scope={EWS_SCOPE}",
            self.client_id
        );
        let request = Post {
            url: &self.endpoint,
            headers,
            body: form.into_bytes(),
            what: &what,
            reply_timeout: self.timeout,
            secrets: &[self.client_secret.expose()],
        };
        let reply = self.http.post(request, transcript).await?;
        let status = reply.status;
        let parsed: Result<TokenReply, _> = serde_json::from_slice(&reply.body);
        match parsed {
            Ok(TokenReply { access_token: Some(token), expires_in, .. }) if (200..300).contains(&status) => {
                transcript.server("{\"access_token\": [redacted], …}");
                // Azure AD v2 sends a number; v1 and some proxies send a string.
                let seconds = match expires_in {
                    Some(serde_json::Value::Number(n)) => n.as_u64(),
                    Some(serde_json::Value::String(s)) => s.parse().ok(),
                    _ => None,
                };
                Ok(AccessToken {
                    token: Secret::new(token),
                    expires_at: seconds.map(|s| Instant::now() + Duration::from_secs(s)),
                })
            }
            Ok(TokenReply { error: Some(error), error_description, .. }) => {
                reply.record_body(transcript);
                // Scrubbed whole, before the first line is taken.
                let description = reply.scrubber.scrub(&error_description.unwrap_or_default());
                let description = description.lines().next().unwrap_or_default().trim().to_owned();
                Err(EwsError::TokenRefused { status, error: reply.scrubber.scrub(&error), description })
            }
            Ok(_) => {
                reply.record_body(transcript);
                Err(EwsError::TokenMalformed { status, reason: "no access_token and no error".into() })
            }
            Err(_) if status >= 300 => {
                reply.record_body(transcript);
                // Not JSON (a proxy's HTML page, a 503…): classify by status.
                let summary =
                    crate::error::HttpSummary::of(&reply.reason, &reply.headers, &reply.body, &reply.scrubber);
                Err(EwsError::Status { status, summary })
            }
            Err(e) => {
                reply.record_body(transcript);
                Err(EwsError::TokenMalformed { status, reason: format!("not JSON: {e}") })
            }
        }
    }
}

#[async_trait]
impl TokenSource for ClientCredentials {
    async fn fetch_token(&self) -> Result<AccessToken, SendError> {
        let mut transcript = Transcript::new();
        self.fetch(&mut transcript).await.map_err(|error| {
            tracing::debug!(error = %error, "EWS OAuth token request failed");
            error.into_send_error(&self.context, At::Token, transcript)
        })
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
