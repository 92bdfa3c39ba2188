//! `GraphTransport`: the Company Email's messages through Graph `sendMail` in MIME form (base64 of the unchanged bytes, `text/plain`, 202 with an empty body), larger ones as a draft plus attachment uploads, with one token refresh on a 401, and a probe that signs in and reads the mailbox without sending.

mod draft;

pub use draft::{UPLOAD_CHUNK_BYTES, UPLOAD_SESSION_FROM};

use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use base64::Engine;
use mailroom_core::config::Field;
use mailroom_core::config::{GraphConfig, MicrosoftAuth};
use mailroom_core::{
    ErrorKind, Mailbox, OutgoingMessage, ProbeReport, SendError, SendReceipt, ServerReply, ServiceKind, StepOutcome,
    TokenCache, Transcript, Transport,
};
use mailroom_http::{ClientOptions, Header, HttpClient, HttpError, OAuthTokenSource, Reply, Request};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};

use crate::error::{ApiError, Context, GraphError, Resource, Step};
use crate::token::token_source;

/// The largest request mailroom sends to Graph (its limit is about 4 MB, base64 included):
/// messages up to 3,000,000 bytes go in one `sendMail`; larger ones as a draft of at most this
/// size whose file attachments are uploaded separately.
pub const MAX_REQUEST_BYTES: usize = 4_000_000;

/// Sends through Microsoft Graph as the Company Email.
///
/// ```
/// use mailroom_core::config::{CompanyEmail, ServiceConfig};
/// use mailroom_graph::GraphTransport;
/// let toml = r#"
///     service = "email_services"
///     email_address = "erp@company.com"
///     [email_services]
///     provider = "microsoft"
///     tenant = "company.onmicrosoft.com"
///     client_id = "11111111-2222-3333-4444-555555555555"
///     client_secret_env = "S"
///     auth = "application"
/// "#;
/// let config = CompanyEmail::from_toml(toml, &|_| Some("secret".into())).unwrap().config;
/// let ServiceConfig::Graph(graph) = &config.service else { unreachable!() };
/// let transport = GraphTransport::new(config.sender.clone(), graph).unwrap();
/// assert_eq!(transport.send_url().as_str(), "https://graph.microsoft.com/v1.0/users/erp@company.com/sendMail");
/// ```
pub struct GraphTransport {
    http: HttpClient,
    tokens: TokenCache<OAuthTokenSource>,
    send_url: url::Url,
    messages_url: url::Url,
    mailbox_url: url::Url,
    context: Context,
    timeout: Duration,
    send_timeout: Option<Duration>,
}

impl std::fmt::Debug for GraphTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphTransport")
            .field("send_url", &mailroom_http::shown(&self.send_url))
            .field("auth", &self.context.auth)
            .finish_non_exhaustive()
    }
}

impl GraphTransport {
    /// A transport sending as `sender` with `config`. No request is made until the first send or probe.
    pub fn new(sender: Mailbox, config: &GraphConfig) -> Result<GraphTransport, SendError> {
        let mailbox = sender.email.to_string();
        let context = Context::new(&config.oauth, mailbox.clone(), Resource::Graph);
        let base = config.api_base.as_str().trim_end_matches('/');
        let user = match config.oauth.auth {
            MicrosoftAuth::Application => format!("users/{}", encode_segment(&mailbox)),
            MicrosoftAuth::Delegated => "me".to_owned(),
        };
        let parse = |suffix: &str| {
            url::Url::parse(&format!("{base}/v1.0/{user}/{suffix}"))
                .map_err(|e| SendError::invalid_config(Field::EmailServicesApiBase, e.to_string()))
        };
        let send_url = parse("sendMail")?;
        let messages_url = parse("messages")?;
        let mailbox_url = parse("mailFolders/sentitems?$select=id,displayName")?;
        let options =
            ClientOptions::new(concat!("mailroom/", env!("CARGO_PKG_VERSION"))).connect_timeout(config.timeout);
        let http = HttpClient::for_endpoint(&send_url, &options)
            .map_err(|e| SendError::invalid_config(Field::EmailServicesApiBase, e.to_string()))?;
        let tokens = TokenCache::new(token_source(&config.oauth, &mailbox, Resource::Graph, config.timeout)?);
        Ok(GraphTransport {
            http,
            tokens,
            send_url,
            messages_url,
            mailbox_url,
            context,
            timeout: config.timeout,
            send_timeout: None,
        })
    }

    /// Where messages are posted: `{api_base}/v1.0/users/{email_address}/sendMail`
    /// (application) or `{api_base}/v1.0/me/sendMail` (delegated).
    pub fn send_url(&self) -> &url::Url {
        &self.send_url
    }

    /// How long to wait for Graph's answer to a `sendMail` once connected; past it the send
    /// is `delivery_unknown` (default: max(6 × `timeout_secs`, 60 s)). Tests of slow servers
    /// set it short.
    pub fn with_send_timeout(mut self, timeout: Duration) -> Self {
        self.send_timeout = Some(timeout);
        self
    }

    /// The reply deadline of a send: servers scan content before answering, so giving up
    /// early would turn a slow scan into `delivery_unknown`.
    fn send_deadline(&self) -> Duration {
        self.send_timeout.unwrap_or_else(|| (self.timeout * 6).max(Duration::from_secs(60)))
    }

    async fn post_mime(
        &self,
        token: &mailroom_core::Secret,
        body: &[u8],
        transcript: &mut Transcript,
    ) -> Result<Reply, HttpError> {
        let request = Request::post(&self.send_url)
            .header(bearer(token))
            .header(Header::new(CONTENT_TYPE, HeaderValue::from_static("text/plain")))
            .body(body.to_vec(), "the message, base64 (MIME form)")
            .reply_timeout(self.send_deadline())
            .delivers(true);
        self.http.send(request, transcript).await
    }

    fn classify_http(&self, error: HttpError, step: Step) -> SendError {
        let failure = error.failure();
        let kind = failure.kind();
        let mut classified = SendError::new(kind, format!("Microsoft Graph while {}: {error}", step_name(step)));
        if !matches!(kind, ErrorKind::DeliveryUnknown) {
            classified = classified.with_field(Field::EmailServicesApiBase);
        }
        if kind == ErrorKind::DeliveryUnknown {
            classified = classified.with_retry(mailroom_core::Retry::Permanent);
        }
        classified.with_source(error)
    }

    fn classify_reply(&self, reply: &Reply, step: Step) -> SendError {
        let retry_after = reply.header("retry-after").and_then(|v| mailroom_http::retry_after(v, SystemTime::now()));
        let body = reply.scrubber.scrub(&String::from_utf8_lossy(&reply.body));
        let api = ApiError::from_body(reply.status, body.as_bytes(), retry_after);
        GraphError::Api { step, error: api }.classify(&self.context)
    }
}

fn step_name(step: Step) -> &'static str {
    match step {
        Step::SendMail => "sending",
        other => other.describe(),
    }
}

fn bearer(token: &mailroom_core::Secret) -> Header {
    let value = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
        .unwrap_or_else(|_| HeaderValue::from_static("Bearer invalid"));
    Header::secret(AUTHORIZATION, value)
}

/// A mailbox address as one URL path segment.
fn encode_segment(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>().replace("%40", "@").replace('+', "%20")
}

#[async_trait]
impl Transport for GraphTransport {
    fn service(&self) -> ServiceKind {
        ServiceKind::EmailServices
    }

    async fn send(&self, message: &OutgoingMessage) -> Result<SendReceipt, SendError> {
        // Graph reads the MIME form's recipients from its headers only: Bcc travels as a field.
        let mime = message.bytes_with_bcc_field();
        let body = base64::engine::general_purpose::STANDARD.encode(&mime).into_bytes();
        if body.len() > MAX_REQUEST_BYTES {
            drop(body);
            return self.send_as_draft(message, &mime).await;
        }
        let mut transcript = Transcript::new();
        let mut refreshed = false;
        loop {
            let token = self.tokens.token().await?;
            let reply = match self.post_mime(&token, &body, &mut transcript).await {
                Ok(reply) => reply,
                Err(error) => return Err(self.classify_http(error, Step::SendMail).with_transcript(transcript)),
            };
            if reply.status == 202 || reply.is_success() {
                let request_id = reply.header("request-id").map(str::to_owned);
                return Ok(SendReceipt {
                    message_id: message.message_id().to_owned(),
                    service_id: request_id,
                    server_reply: Some(ServerReply::http(reply.status, None, reply.reason.clone())),
                });
            }
            // A 401 means the request was not acted on: one fresh token, then the verdict.
            if reply.status == 401 && !refreshed {
                refreshed = true;
                self.tokens.invalidate(&token).await;
                tracing::debug!("Graph refused the access token; refreshing once");
                continue;
            }
            return Err(self.classify_reply(&reply, Step::SendMail).with_transcript(transcript));
        }
    }

    async fn probe(&self) -> ProbeReport {
        let mut report = ProbeReport::default();
        let started = Instant::now();
        let token = match self.tokens.token().await {
            Ok(token) => {
                report.step(
                    "token",
                    StepOutcome::Ok,
                    started.elapsed(),
                    format!("signed in ({})", self.context.auth.as_str()),
                );
                token
            }
            Err(error) => {
                report.step("token", StepOutcome::Failed, started.elapsed(), error.detail().to_owned());
                report.step("mailbox", StepOutcome::Skipped, Duration::ZERO, "needs a token");
                report.error = Some(error);
                return report;
            }
        };
        let started = Instant::now();
        let mut transcript = Transcript::new();
        let request = Request::get(&self.mailbox_url)
            .header(bearer(&token))
            .header(Header::new(HeaderName::from_static("accept"), HeaderValue::from_static("application/json")))
            .reply_timeout(self.timeout);
        match self.http.send(request, &mut transcript).await {
            Ok(reply) if reply.is_success() => {
                report.step(
                    "mailbox",
                    StepOutcome::Ok,
                    started.elapsed(),
                    format!("{} reachable (Sent Items)", self.context.mailbox),
                );
            }
            // Mail.Send alone may not read folders: that is not a fault of the sending path.
            Ok(reply)
                if reply.status == 403
                    && self.context.auth == MicrosoftAuth::Application
                    && !String::from_utf8_lossy(&reply.body).contains("AccessPolicy") =>
            {
                report.step(
                    "mailbox",
                    StepOutcome::Skipped,
                    started.elapsed(),
                    "the app may not read the mailbox (Mail.Send alone does not allow it): whether it may send is only known by sending; run validate",
                );
            }
            Ok(reply) => {
                let error = self.classify_reply(&reply, Step::Probe).with_transcript(transcript);
                report.step("mailbox", StepOutcome::Failed, started.elapsed(), error.detail().to_owned());
                report.error = Some(error);
            }
            Err(error) => {
                let error = self.classify_http(error, Step::Probe).with_transcript(transcript);
                report.step("mailbox", StepOutcome::Failed, started.elapsed(), error.detail().to_owned());
                report.error = Some(error);
            }
        }
        report
    }
}
