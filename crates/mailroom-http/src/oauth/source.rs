//! `OAuthTokenSource`: core's `TokenSource` over a refresh-token or client-credentials grant, with the driver's own mapping of failures into `SendError` (its field names, its advice).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use mailroom_core::{AccessToken, Secret, SendError, TokenSource, Transcript};

use super::client::OAuthClient;
use super::error::OAuthError;

/// Maps a token failure (with the exchange's transcript) into the driver's classified error.
pub type ErrorMapper = Arc<dyn Fn(OAuthError, Transcript) -> SendError + Send + Sync>;

/// Supplies the refresh token at each refresh (from config, or re-read from a token file so
/// a new `connect` fixes a running sender).
pub type RefreshTokenProvider = Arc<dyn Fn() -> Result<Secret, SendError> + Send + Sync>;

/// Stores a rotated refresh token (the token endpoint sent a new one with a refresh: Microsoft
/// says to replace the old one with it, and a revoked old one would fail the next run).
pub type RefreshTokenSink = Arc<dyn Fn(&Secret) -> std::io::Result<()> + Send + Sync>;

enum Grant {
    Refresh(RefreshTokenProvider),
    ClientCredentials,
}

/// A [`TokenSource`] for core's `TokenCache`: refresh-token or client-credentials grants.
///
/// ```no_run
/// # fn run(client: mailroom_http::OAuthClient) {
/// use std::sync::Arc;
/// use mailroom_core::{ErrorKind, SendError, TokenCache};
/// let source = mailroom_http::OAuthTokenSource::client_credentials(
///     client,
///     vec!["https://outlook.office365.com/.default".into()],
///     Arc::new(|error, transcript| SendError::new(ErrorKind::AuthFailed, error.to_string()).with_transcript(transcript)),
/// );
/// let cache = TokenCache::new(source);
/// # }
/// ```
pub struct OAuthTokenSource {
    client: OAuthClient,
    scopes: Vec<String>,
    grant: Grant,
    map_error: ErrorMapper,
    rotated: Option<RefreshTokenSink>,
}

impl std::fmt::Debug for OAuthTokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthTokenSource")
            .field("client", &self.client)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

impl OAuthTokenSource {
    /// Tokens from the refresh-token grant; `refresh_token` is asked at every refresh.
    pub fn refresh_token(
        client: OAuthClient,
        scopes: Vec<String>,
        refresh_token: RefreshTokenProvider,
        map_error: ErrorMapper,
    ) -> Self {
        OAuthTokenSource { client, scopes, grant: Grant::Refresh(refresh_token), map_error, rotated: None }
    }

    /// Tokens from the client-credentials grant.
    pub fn client_credentials(client: OAuthClient, scopes: Vec<String>, map_error: ErrorMapper) -> Self {
        OAuthTokenSource { client, scopes, grant: Grant::ClientCredentials, map_error, rotated: None }
    }

    /// Where a rotated refresh token goes (e.g. [`crate::replace_refresh_token`] on the token
    /// file). A failure to store it is logged, not returned: the access token is good, and
    /// the old refresh token may still work.
    pub fn store_rotated_refresh_tokens(mut self, sink: RefreshTokenSink) -> Self {
        self.rotated = Some(sink);
        self
    }

    /// Stores a rotated refresh token in the token file at `path`
    /// ([`crate::replace_refresh_token`]: atomic, 0600, the file's other fields kept).
    pub fn store_rotated_refresh_tokens_in(self, path: PathBuf) -> Self {
        self.store_rotated_refresh_tokens(Arc::new(move |new| crate::replace_refresh_token(&path, new.expose())))
    }

    /// The OAuth client.
    pub fn client(&self) -> &OAuthClient {
        &self.client
    }

    /// One grant, with its transcript (for probes that show the exchange).
    pub async fn grant(&self, transcript: &mut Transcript) -> Result<super::Token, Result<OAuthError, SendError>> {
        let scopes: Vec<&str> = self.scopes.iter().map(String::as_str).collect();
        match &self.grant {
            Grant::Refresh(provider) => {
                let refresh = provider().map_err(Err)?;
                let token = self.client.refresh(&refresh, &scopes, transcript).await.map_err(Ok)?;
                if let (Some(sink), Some(new)) = (&self.rotated, &token.refresh)
                    && new.expose() != refresh.expose()
                {
                    match sink(new) {
                        Ok(()) => tracing::debug!("stored the rotated refresh token"),
                        Err(error) => {
                            tracing::warn!(%error, "the token endpoint rotated the refresh token, and the new one could not be stored; the next run may need `mailroom connect` again")
                        }
                    }
                }
                Ok(token)
            }
            Grant::ClientCredentials => self.client.client_credentials(&scopes, transcript).await.map_err(Ok),
        }
    }

    /// Maps a failure with the driver's mapper.
    pub fn map_error(&self, error: OAuthError, transcript: Transcript) -> SendError {
        (self.map_error)(error, transcript)
    }
}

#[async_trait]
impl TokenSource for OAuthTokenSource {
    async fn fetch_token(&self) -> Result<AccessToken, SendError> {
        let mut transcript = Transcript::new();
        let issued = Instant::now();
        match self.grant(&mut transcript).await {
            Ok(token) => {
                tracing::debug!(expires_in = ?token.expires_in, scope = ?token.scope, "access token fetched");
                Ok(token.access_token(issued))
            }
            Err(Ok(error)) => {
                tracing::debug!(%error, "token request failed");
                Err((self.map_error)(error, transcript))
            }
            Err(Err(error)) => Err(error),
        }
    }
}
