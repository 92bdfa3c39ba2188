//! `GmailTransport`: the Email Services `Transport` — media upload of the message bytes to `users.messages.send`, Bearer tokens from the cache, one refresh-and-retry on 401, and the reply classification.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use mailroom_core::config::GmailConfig;
use mailroom_core::{
    Mailbox, OutgoingMessage, ProbeReport, Secret, SendError, SendReceipt, ServerReply, ServiceKind, TokenCache,
    Transcript, Transport,
};
use mailroom_http::OAuthTokenSource;

use crate::error::{
    ApiError, Endpoint, GmailError, retry_after_header, retry_after_in_message, scrub, scrubbed_snippet,
};
use crate::http::{self, Reply};
use crate::probe;

/// The largest upload the Gmail API's media endpoint takes for `messages.send`: 35 MB.
pub const MAX_UPLOAD_BYTES: usize = 35 * 1024 * 1024;

/// The send path under `api_base`.
const SEND_PATH: &str = "upload/gmail/v1/users/me/messages/send";

/// Sends mail through the Gmail API as the Google account the refresh token belongs to.
///
/// ```
/// use mailroom_core::{CompanyEmail, ServiceConfig, Transport};
/// use mailroom_gmail::GmailTransport;
///
/// let toml = r#"
///     service = "email_services"
///     email_address = "erp@company.com"
///     display_name = "Company ERP"
///     [email_services]
///     client_id = "1234-abc.apps.googleusercontent.com"
///     client_secret_env = "MAILROOM_GOOGLE_SECRET"
///     refresh_token_env = "MAILROOM_GOOGLE_REFRESH"
/// "#;
/// let loaded = CompanyEmail::from_toml(toml, &|_| Some("from-the-environment".into())).unwrap();
/// let ServiceConfig::EmailServices(gmail) = &loaded.config.service else { unreachable!() };
/// let transport = GmailTransport::builder(loaded.config.sender.clone(), gmail)
///     .upload_timeout(std::time::Duration::from_secs(120))
///     .build()
///     .unwrap();
/// assert_eq!(transport.service().as_str(), "email_services");
/// // transport.send(&message).await sends; nothing touches the network before that.
/// ```
#[derive(Clone)]
pub struct GmailTransport {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) http: mailroom_http::HttpClient,
    pub(crate) sender: Mailbox,
    pub(crate) send_url: url::Url,
    pub(crate) source: Arc<OAuthTokenSource>,
    pub(crate) tokens: TokenCache<Arc<OAuthTokenSource>>,
    pub(crate) timeout: Duration,
    pub(crate) upload_timeout: Duration,
}

impl std::fmt::Debug for GmailTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GmailTransport")
            .field("sender", &self.inner.sender.email.to_string())
            .field("send_url", &self.inner.send_url.as_str())
            .field("token_uri", &self.inner.source.client().endpoints().token.as_str())
            .field("client_id", &self.inner.source.client().client_id())
            .finish_non_exhaustive()
    }
}

/// Configures a [`GmailTransport`] beyond what the config file says.
pub struct GmailTransportBuilder {
    sender: Mailbox,
    config: GmailConfig,
    upload_timeout: Option<Duration>,
    roots_pem: Vec<Vec<u8>>,
}

impl GmailTransportBuilder {
    /// How long an upload may take until Gmail's answer, after which the send is
    /// `delivery_unknown` (default: max(6 × `timeout_secs`, 60 s), as Gmail scans content
    /// before it answers). Connecting is bounded by `timeout_secs` alone.
    pub fn upload_timeout(mut self, timeout: Duration) -> Self {
        self.upload_timeout = Some(timeout);
        self
    }

    /// Also trusts the CA certificates in `pem` (a TLS-inspecting proxy, a test server).
    pub fn trust_root_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.roots_pem.push(pem.into());
        self
    }

    /// Builds the transport. Nothing touches the network (or the token file) until the
    /// first send or probe.
    pub fn build(self) -> Result<GmailTransport, SendError> {
        let mut roots = Vec::new();
        for pem in &self.roots_pem {
            let certificates = mailroom_core::trust::certificates_from_pem(pem).map_err(|e| {
                SendError::new(mailroom_core::ErrorKind::InvalidConfig, format!("an extra root is refused: {e}"))
            })?;
            roots.extend(certificates);
        }
        let setup_failed =
            |e: String| SendError::new(mailroom_core::ErrorKind::InvalidConfig, format!("cannot set up HTTPS: {e}"));
        // One client per proxy decision: loopback endpoints go direct, the rest honour the
        // environment's proxy (see http::bypasses_proxy). Shared when both endpoints agree.
        let http = http::client_for(&self.config.api_base, self.config.timeout, &roots).map_err(setup_failed)?;
        let token_http = if http::bypasses_proxy(&self.config.token_uri) == http::bypasses_proxy(&self.config.api_base)
            && self.config.token_uri.scheme() == self.config.api_base.scheme()
        {
            http.clone()
        } else {
            http::client_for(&self.config.token_uri, self.config.timeout, &roots).map_err(setup_failed)?
        };
        let client = crate::token::google_oauth_client_on(
            token_http,
            &self.config.token_uri,
            None,
            &self.config.client_id,
            &self.config.client_secret,
            self.config.timeout,
        );
        let source = Arc::new(crate::token::token_source(client, &self.config)?);
        let timeout = self.config.timeout;
        Ok(GmailTransport {
            inner: Arc::new(Inner {
                http,
                sender: self.sender,
                send_url: endpoint_url(&self.config.api_base, SEND_PATH, Some("uploadType=media")),
                tokens: TokenCache::new(source.clone()),
                source,
                timeout,
                upload_timeout: self.upload_timeout.unwrap_or((timeout * 6).max(Duration::from_secs(60))),
            }),
        })
    }
}

/// `base` + `path`, keeping any path prefix of `base` (a proxy mount point).
fn endpoint_url(base: &url::Url, path: &str, query: Option<&str>) -> url::Url {
    let mut url = base.clone();
    let joined = format!("{}/{path}", base.path().trim_end_matches('/'));
    url.set_path(&joined);
    url.set_query(query);
    url
}

impl GmailTransport {
    /// A transport for `config`, sending as `sender`.
    pub fn new(sender: Mailbox, config: &GmailConfig) -> Result<GmailTransport, SendError> {
        Self::builder(sender, config).build()
    }

    /// A builder for the upload deadline and extra trusted roots.
    pub fn builder(sender: Mailbox, config: &GmailConfig) -> GmailTransportBuilder {
        GmailTransportBuilder { sender, config: config.clone(), upload_timeout: None, roots_pem: Vec::new() }
    }

    /// One upload of `body` with `token`; the reply as read, or the transport failure.
    async fn upload(&self, body: Vec<u8>, token: &Secret, transcript: &mut Transcript) -> Result<Reply, GmailError> {
        let what = format!("the message ({} bytes)", body.len());
        let upload = http::Upload {
            url: &self.inner.send_url,
            token,
            body,
            what: &what,
            timeout: self.inner.upload_timeout,
            delivers: true,
        };
        http::post_message(&self.inner.http, upload, transcript).await
    }
}

#[async_trait]
impl Transport for GmailTransport {
    fn service(&self) -> ServiceKind {
        ServiceKind::EmailServices
    }

    async fn send(&self, message: &OutgoingMessage) -> Result<SendReceipt, SendError> {
        // Gmail takes recipients from the headers only: Bcc travels as a `Bcc:` field.
        let mut body = message.bytes_with_bcc_field();
        let mut transcript = Transcript::new();
        if body.len() > MAX_UPLOAD_BYTES {
            return Err(GmailError::TooLarge { size: body.len(), limit: MAX_UPLOAD_BYTES }.into_send_error(transcript));
        }
        let mut token = self.inner.tokens.token().await?;
        let mut refreshed = false;
        loop {
            // Only an upload that may be repeated (a token not yet refreshed) keeps a copy.
            let payload = if refreshed { std::mem::take(&mut body) } else { body.clone() };
            let reply = match self.upload(payload, &token, &mut transcript).await {
                Ok(reply) => reply,
                Err(error) => {
                    transcript.note(&error.to_string());
                    tracing::debug!(%error, "Gmail upload failed");
                    return Err(error.into_send_error(transcript));
                }
            };
            let status = reply.status;
            let outcome = interpret(reply, SystemTime::now(), &[token.expose()]);
            match &outcome {
                Ok((_, shown)) | Err((_, shown)) => transcript.server(&format!("HTTP {status} {shown}")),
            }
            match outcome {
                Ok((id, _)) => {
                    tracing::debug!(gmail_id = %id, "Gmail accepted the message");
                    return Ok(SendReceipt {
                        message_id: message.message_id().to_owned(),
                        server_reply: Some(ServerReply::http(status, None, format!("Gmail message id {id}"))),
                        service_id: Some(id),
                    });
                }
                Err((GmailError::Api { status: 401, .. }, _)) if !refreshed => {
                    // The cache thought the token valid (revoked, clock skew): refresh once, retry once.
                    tracing::debug!("Gmail rejected the access token; refreshing it once");
                    self.inner.tokens.invalidate(&token).await;
                    token = self.inner.tokens.token().await?;
                    refreshed = true;
                }
                Err((error, _)) => return Err(error.into_send_error(transcript)),
            }
        }
    }

    async fn probe(&self) -> ProbeReport {
        probe::probe(self).await
    }
}

/// What the API said: the message id, or the error; each with the reply as shown in a
/// transcript (secrets scrubbed).
pub(crate) fn interpret(
    reply: Reply,
    now: SystemTime,
    secrets: &[&str],
) -> Result<(String, String), (GmailError, String)> {
    let status = reply.status;
    let body = match reply.body {
        Ok(body) => body,
        Err(cut) if (200..300).contains(&status) => {
            let what = format!("the reply was cut off ({cut})");
            return Err((GmailError::AcceptedUnconfirmed { status, what }, "(cut off)".into()));
        }
        Err(cut) => format!("(reply body cut off: {cut})").into_bytes(),
    };
    let shown = scrubbed_snippet(&body, secrets);
    if (200..300).contains(&status) {
        let id = serde_json::from_slice::<serde_json::Value>(&body).ok().and_then(|v| {
            v.get("id").and_then(serde_json::Value::as_str).filter(|id| !id.is_empty()).map(str::to_owned)
        });
        return match id {
            Some(id) => Ok((id, shown)),
            None => {
                let what = format!("its reply holds no message id: {shown}");
                Err((GmailError::AcceptedUnconfirmed { status, what }, shown))
            }
        };
    }
    // Scrubbed before parsing: a non-JSON body becomes a cut snippet, which must not keep
    // part of an echoed secret.
    let body = scrub(&String::from_utf8_lossy(&body), secrets).into_bytes();
    let mut error = ApiError::parse(&body);
    error.message = scrub(&error.message, secrets);
    if !error.parsed && !matches!(status, 401 | 413 | 429 | 500..=599) {
        let what = format!("not a Google API error reply: {}", error.message);
        return Err((GmailError::Malformed { endpoint: Endpoint::Api, status: Some(status), what }, shown));
    }
    let from_header = reply.retry_after.as_deref().and_then(|v| retry_after_header(v, now));
    let from_message = retry_after_in_message(&error.message, now);
    let retry_at = from_message.as_ref().map(|(_, at)| at.clone());
    let retry_after = match (from_header, from_message.map(|(wait, _)| wait)) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    Err((GmailError::Api { status, error: Box::new(error), retry_after, retry_at }, shown))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, body: Vec<u8>, retry_after: Option<String>) -> Reply {
        Reply { status, retry_after, body: Ok(body) }
    }

    proptest::proptest! {
        /// Whatever Google (or anything in its place) answers, parsing and classifying never
        /// panics, and the result is a receipt or a classified error.
        #[test]
        fn arbitrary_replies_never_panic(
            status in 100u16..600,
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..512),
            retry_after in proptest::option::of("[ -~]{0,40}"),
        ) {
            let now = SystemTime::now();
            let outcome = interpret(reply(status, body.clone(), retry_after), now, &["secret-token"]);
            if let Err((error, _)) = outcome {
                let _ = error.into_send_error(Transcript::new()).report();
            }
            let _ = crate::error::TokenErrorBody::parse(&body);
        }

        /// The upload carries the whole message, so an error reply to it is automatically
        /// retried (temporary) only when Gmail cannot have accepted the message: 429, 503, or
        /// a 4xx throttling refusal (403 `userRateLimitExceeded`). Never a 500/502/504.
        #[test]
        fn upload_errors_are_temporary_only_for_429_503_and_4xx_throttling(
            status in 300u16..600,
            reason in proptest::sample::select(vec![
                "backendError", "rateLimitExceeded", "userRateLimitExceeded", "dailyLimitExceeded",
                "quotaExceeded", "RESOURCE_EXHAUSTED", "RATE_LIMIT_EXCEEDED", "internalError",
                "forbidden", "insufficientPermissions", "invalidArgument", "",
            ]),
            json_body in proptest::bool::ANY,
            garbage in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
            retry_after in proptest::option::of("[0-9]{1,3}"),
        ) {
            let body = if json_body {
                serde_json::to_vec(&serde_json::json!({"error": {"code": status, "message": "x", "errors": [{"reason": reason}], "status": reason}})).unwrap()
            } else {
                garbage
            };
            let Err((error, _)) = interpret(reply(status, body, retry_after), SystemTime::now(), &[]) else {
                return Ok(());
            };
            let error = error.into_send_error(Transcript::new());
            if error.retry().is_temporary() {
                let throttling_refusal = (400..500).contains(&status) && error.kind() == mailroom_core::ErrorKind::RateLimited;
                proptest::prop_assert!(matches!(status, 429 | 503) || throttling_refusal, "HTTP {} {} is temporary: {}", status, reason, error);
            }
            if status >= 500 && status != 503 {
                proptest::prop_assert_eq!(error.retry(), mailroom_core::Retry::Permanent);
                proptest::prop_assert_eq!(mailroom_core::RetryPolicy::default().delay_before_retry(1, &error), None);
            }
        }

        /// JSON-shaped replies with arbitrary field types and values never panic either.
        #[test]
        fn arbitrary_json_replies_never_panic(
            status in 100u16..600,
            message in ".{0,80}",
            reason in proptest::option::of("[a-zA-Z_]{0,30}"),
            numeric in proptest::num::i64::ANY,
        ) {
            let bodies = [
                serde_json::json!({"error": {"code": numeric, "message": message, "errors": [{"reason": reason}], "status": reason, "details": [{"reason": numeric, "metadata": {"activationUrl": message}}]}}),
                serde_json::json!({"error": {"message": numeric, "errors": message}}),
                serde_json::json!({"error": message, "error_description": numeric}),
                serde_json::json!({"access_token": message, "expires_in": numeric, "scope": numeric}),
                serde_json::json!({"id": message, "threadId": numeric}),
                serde_json::json!([message, numeric]),
            ];
            for body in bodies {
                let body = serde_json::to_vec(&body).unwrap();
                if let Err((error, _)) = interpret(reply(status, body.clone(), Some(message.clone())), SystemTime::now(), &[]) {
                    let _ = error.into_send_error(Transcript::new()).remediation();
                }
                    let _ = crate::error::retry_after_in_message(&message, SystemTime::now());
            }
        }
    }

    #[test]
    fn endpoint_urls_keep_a_proxy_prefix() {
        let base: url::Url = "https://proxy.example/google/".parse().unwrap();
        assert_eq!(
            endpoint_url(&base, SEND_PATH, Some("uploadType=media")).as_str(),
            "https://proxy.example/google/upload/gmail/v1/users/me/messages/send?uploadType=media"
        );
        let base: url::Url = "https://gmail.googleapis.com".parse().unwrap();
        assert_eq!(
            endpoint_url(&base, SEND_PATH, None).as_str(),
            "https://gmail.googleapis.com/upload/gmail/v1/users/me/messages/send"
        );
    }
}
