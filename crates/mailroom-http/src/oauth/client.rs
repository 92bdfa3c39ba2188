//! `OAuthClient`: one OAuth client registration at one authorization server, and its grants (refresh token, client credentials, authorization code with PKCE, device code) on oauth2 5 over our HTTP client.

use std::time::{Duration, SystemTime};

use mailroom_core::{Secret, Transcript};
use oauth2::basic::{BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse};
use oauth2::{
    AuthType, ClientId, ClientSecret, EndpointNotSet, EndpointSet, RequestTokenError, StandardRevocableToken, TokenUrl,
};

use super::Endpoints;
use super::adapter::Adapter;
use super::error::{OAuthError, TokenEndpointError};
use super::reply::{Token, TokenReply};
use crate::HttpClient;

/// oauth2's client with only the token endpoint set.
type TokenOnlyClient = oauth2::Client<
    BasicErrorResponse,
    TokenReply,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// The longest poll interval and device-code lifetime believed from a server.
const MAX_POLL_INTERVAL: Duration = Duration::from_secs(60);
const MAX_DEVICE_CODE_LIFETIME: Duration = Duration::from_secs(3600);

/// One OAuth client (client ID, optional secret) at one authorization server, talking through
/// an [`HttpClient`] with a reply deadline per request.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use mailroom_core::{Secret, Transcript};
/// use mailroom_http::{ClientOptions, Endpoints, HttpClient, OAuthClient};
///
/// let endpoints = Endpoints::microsoft(&"https://login.microsoftonline.com".parse()?, "company.onmicrosoft.com");
/// let http = HttpClient::for_endpoint(&endpoints.token, &ClientOptions::new("mailroom/0.1"))?;
/// let client = OAuthClient::new(http, endpoints, "00000000-0000-0000-0000-000000000000", Some(Secret::new("secret")))
///     .reply_timeout(Duration::from_secs(10));
/// let mut transcript = Transcript::new();
/// let token = client.client_credentials(&["https://graph.microsoft.com/.default"], &mut transcript).await?;
/// println!("token for {:?} s", token.expires_in);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct OAuthClient {
    pub(crate) http: HttpClient,
    pub(crate) endpoints: Endpoints,
    pub(crate) client_id: String,
    pub(crate) client_secret: Option<Secret>,
    pub(crate) reply_timeout: Duration,
}

impl std::fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthClient")
            .field("token_endpoint", &crate::shown(&self.endpoints.token))
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// A device authorization in progress (RFC 8628): show the user the code and the page.
pub struct DeviceAuthorization {
    details: oauth2::StandardDeviceAuthorizationResponse,
    /// The code the user types.
    pub user_code: String,
    /// The page where the user types it.
    pub verification_uri: String,
    /// The server's own instruction text (Microsoft sends one), if any.
    pub message: Option<String>,
    /// How long the code is valid (bounded).
    pub expires_in: Duration,
}

impl std::fmt::Debug for DeviceAuthorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceAuthorization")
            .field("user_code", &self.user_code)
            .field("verification_uri", &self.verification_uri)
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

impl OAuthClient {
    /// A client of `endpoints` with `client_id` and, for confidential clients, `client_secret`
    /// (sent in the form body). Reply deadline: 10 s.
    pub fn new(
        http: HttpClient,
        endpoints: Endpoints,
        client_id: impl Into<String>,
        client_secret: Option<Secret>,
    ) -> OAuthClient {
        OAuthClient {
            http,
            endpoints,
            client_id: client_id.into(),
            client_secret,
            reply_timeout: Duration::from_secs(10),
        }
    }

    /// How long each token request may take once connected.
    pub fn reply_timeout(mut self, timeout: Duration) -> Self {
        self.reply_timeout = timeout;
        self
    }

    /// The endpoints.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// The client ID.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    pub(crate) fn adapter(&self) -> Adapter<'_> {
        Adapter::new(&self.http, self.reply_timeout, self.client_secret.as_ref().map(|s| s.expose().to_owned()))
    }

    pub(crate) fn token_client(&self) -> TokenOnlyClient {
        let mut client = oauth2::Client::new(ClientId::new(self.client_id.clone()))
            .set_auth_type(AuthType::RequestBody)
            .set_token_uri(TokenUrl::from_url(self.endpoints.token.clone()));
        if let Some(secret) = &self.client_secret {
            client = client.set_client_secret(ClientSecret::new(secret.expose().to_owned()));
        }
        client
    }

    /// The refresh-token grant.
    pub async fn refresh(
        &self,
        refresh_token: &Secret,
        scopes: &[&str],
        transcript: &mut Transcript,
    ) -> Result<Token, OAuthError> {
        let adapter = self.adapter();
        let refresh = oauth2::RefreshToken::new(refresh_token.expose().to_owned());
        let client = self.token_client();
        let request = client
            .exchange_refresh_token(&refresh)
            .add_scopes(scopes.iter().map(|s| oauth2::Scope::new((*s).to_owned())));
        let result = request.request_async(&adapter).await;
        self.finish(result, &adapter, transcript).await
    }

    /// The client-credentials grant (an application's own token, e.g. `https://graph.microsoft.com/.default`).
    pub async fn client_credentials(&self, scopes: &[&str], transcript: &mut Transcript) -> Result<Token, OAuthError> {
        let adapter = self.adapter();
        let client = self.token_client();
        let request =
            client.exchange_client_credentials().add_scopes(scopes.iter().map(|s| oauth2::Scope::new((*s).to_owned())));
        let result = request.request_async(&adapter).await;
        self.finish(result, &adapter, transcript).await
    }

    /// The authorization-code grant with the PKCE verifier, for the `redirect_uri` the code was issued to.
    pub async fn exchange_code(
        &self,
        code: &Secret,
        pkce_verifier: &Secret,
        redirect_uri: &str,
        transcript: &mut Transcript,
    ) -> Result<Token, OAuthError> {
        let adapter = self.adapter();
        let redirect =
            oauth2::RedirectUrl::new(redirect_uri.to_owned()).map_err(|e| OAuthError::Setup(e.to_string()))?;
        let client = self.token_client().set_redirect_uri(redirect);
        let request = client
            .exchange_code(oauth2::AuthorizationCode::new(code.expose().to_owned()))
            .set_pkce_verifier(oauth2::PkceCodeVerifier::new(pkce_verifier.expose().to_owned()));
        let result = request.request_async(&adapter).await;
        self.finish(result, &adapter, transcript).await
    }

    /// Starts the device code flow: asks the device authorization endpoint for a user code.
    pub async fn start_device(
        &self,
        scopes: &[&str],
        transcript: &mut Transcript,
    ) -> Result<DeviceAuthorization, OAuthError> {
        let Some(device) = self.endpoints.device.clone() else {
            return Err(OAuthError::Setup("this authorization server has no device code endpoint".into()));
        };
        let adapter = self.adapter();
        let client =
            self.token_client().set_device_authorization_url(oauth2::DeviceAuthorizationUrl::from_url(device.clone()));
        let request =
            client.exchange_device_code().add_scopes(scopes.iter().map(|s| oauth2::Scope::new((*s).to_owned())));
        let result: Result<oauth2::StandardDeviceAuthorizationResponse, _> = request.request_async(&adapter).await;
        let outcome = match result {
            Ok(details) => Ok(details),
            Err(error) => Err(self.failure(error, &adapter, &device)),
        };
        append(transcript, adapter.take_transcript().await);
        let details = bounded(outcome?)?;
        let message = adapter
            .last_reply()
            .and_then(|r| serde_json::from_str::<serde_json::Value>(&r.body).ok())
            .and_then(|v| v.get("message").and_then(serde_json::Value::as_str).map(str::to_owned));
        Ok(DeviceAuthorization {
            user_code: details.user_code().secret().to_owned(),
            verification_uri: details.verification_uri().to_string(),
            message,
            expires_in: details.expires_in(),
            details,
        })
    }

    /// Polls the token endpoint until the user finished signing in, the code expired, `wait`
    /// passed, or the endpoint refused. `authorization_pending` and `slow_down` keep polling;
    /// transport failures that polling cannot cure (TLS, pinning, not HTTP) or three in a row
    /// end it with that failure.
    pub async fn poll_device(
        &self,
        authorization: &DeviceAuthorization,
        wait: Duration,
        transcript: &mut Transcript,
    ) -> Result<Token, OAuthError> {
        let adapter = self.adapter();
        let client = self.token_client();
        let request = client.exchange_device_access_token(&authorization.details);
        let sleep = |interval: Duration| tokio::time::sleep(interval.min(MAX_POLL_INTERVAL));
        let wait = wait.min(authorization.expires_in);
        let polling = request.request_async(&adapter, sleep, Some(wait));
        let result = tokio::select! {
            result = polling => Some(result),
            () = adapter.fatal.notified() => None,
        };
        let outcome = match result {
            Some(Ok(reply)) => Token::from_reply(reply).ok_or_else(|| OAuthError::Malformed {
                endpoint: crate::shown(&self.endpoints.token),
                status: 200,
                reason: "the reply has an empty access_token".into(),
            }),
            Some(Err(RequestTokenError::ServerResponse(refusal)))
                if *refusal.error() == oauth2::DeviceCodeErrorResponseType::ExpiredToken =>
            {
                Err(OAuthError::DeviceCodeExpired)
            }
            Some(Err(error)) => Err(self.failure(error, &adapter, &self.endpoints.token)),
            None => Err(match adapter.last_failure() {
                Some(failure) => OAuthError::Http(failure),
                None => OAuthError::Setup("polling stopped".into()),
            }),
        };
        append(transcript, adapter.take_transcript().await);
        outcome
    }

    /// Turns oauth2's result into ours, with the transcript of the exchange.
    async fn finish<TE: oauth2::ErrorResponse + 'static>(
        &self,
        result: Result<TokenReply, RequestTokenError<crate::HttpError, TE>>,
        adapter: &Adapter<'_>,
        transcript: &mut Transcript,
    ) -> Result<Token, OAuthError> {
        let outcome = match result {
            Ok(reply) => Token::from_reply(reply).ok_or_else(|| OAuthError::Malformed {
                endpoint: crate::shown(&self.endpoints.token),
                status: adapter.last_reply().map_or(200, |r| r.status),
                reason: "the reply has an empty access_token".into(),
            }),
            Err(error) => Err(self.failure(error, adapter, &self.endpoints.token)),
        };
        append(transcript, adapter.take_transcript().await);
        outcome
    }

    /// Classifies a failed oauth2 request from the reply our adapter recorded (status,
    /// `Retry-After`, raw body), not from oauth2's status-less error.
    fn failure<TE: oauth2::ErrorResponse + 'static>(
        &self,
        error: RequestTokenError<crate::HttpError, TE>,
        adapter: &Adapter<'_>,
        endpoint: &url::Url,
    ) -> OAuthError {
        let endpoint = crate::shown(endpoint);
        if let RequestTokenError::Request(http) = error {
            return OAuthError::Http(http);
        }
        let Some(reply) = adapter.last_reply() else {
            return OAuthError::Setup(error.to_string());
        };
        if (200..300).contains(&reply.status) {
            // oauth2 could not read a success reply: wrong content type, not JSON, no access_token.
            let why = match &error {
                RequestTokenError::Parse(parse, _) => format!("not a token reply ({})", parse.inner()),
                other => other.to_string(),
            };
            return OAuthError::Malformed {
                endpoint,
                status: reply.status,
                reason: format!("{why}: {}", super::error::snippet(reply.body.as_bytes())),
            };
        }
        let mut refusal = TokenEndpointError::parse(
            reply.status,
            reply.retry_after.as_deref(),
            reply.body.as_bytes(),
            SystemTime::now(),
        );
        refusal.body_error = reply.body_error;
        OAuthError::Refused { endpoint, refusal: Box::new(refusal) }
    }
}

/// The device authorization with its interval and lifetime within bounds: oauth2 adds 5 s to
/// the interval on `slow_down` and converts the lifetime to chrono, so a huge value from the
/// server would overflow there.
fn bounded(
    details: oauth2::StandardDeviceAuthorizationResponse,
) -> Result<oauth2::StandardDeviceAuthorizationResponse, OAuthError> {
    if details.interval() <= MAX_POLL_INTERVAL && details.expires_in() <= MAX_DEVICE_CODE_LIFETIME {
        return Ok(details);
    }
    let mut value = serde_json::to_value(&details).map_err(|e| OAuthError::Setup(e.to_string()))?;
    value["interval"] = details.interval().min(MAX_POLL_INTERVAL).as_secs().into();
    value["expires_in"] = details.expires_in().min(MAX_DEVICE_CODE_LIFETIME).as_secs().into();
    serde_json::from_value(value).map_err(|e| OAuthError::Setup(e.to_string()))
}

fn append(into: &mut Transcript, from: Transcript) {
    for line in from.lines() {
        match line.direction {
            mailroom_core::Direction::Client => into.client(&line.text),
            mailroom_core::Direction::Server => into.server(&line.text),
            _ => into.note(&line.text),
        }
    }
}
