//! `EwsTransport`: the Exchange `Transport` — builds the `CreateItem` for a message, authenticates (Basic, or OAuth client credentials with impersonation), posts it, and classifies the reply.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mailroom_core::config::EwsAuth;
use mailroom_core::config::Field;
use mailroom_core::{
    Mailbox, OutgoingMessage, ProbeReport, Secret, SendError, SendReceipt, ServerReply, ServiceKind, TokenCache,
    TokenSource, Transcript, Transport,
};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};
use tokio::sync::Semaphore;
use url::Url;

use crate::envelope;
use crate::error::{At, Context, EwsError};
use crate::http::{self, Header, Http, HttpReply, Post};
use crate::oauth;
use crate::probe;
use crate::soap::{self, Disposition, Operation};

/// At most this many requests in flight per transport: Exchange Online allows 27 concurrent
/// EWS connections per account (`ErrorExceededConnectionCount` beyond), on-premises
/// throttling policies are often lower.
const MAX_IN_FLIGHT: usize = 10;

/// How requests are authenticated.
pub(crate) enum Login {
    /// HTTP Basic with `user@domain` and the password.
    Basic { username: String, password: Secret },
    /// Bearer tokens (app-only), impersonating the sender.
    OAuth { tokens: TokenCache<Arc<dyn TokenSource>> },
}

/// Sends the Company Email's messages through Exchange Web Services.
///
/// Each message goes out as one SOAP `CreateItem` whose `t:MimeContent` is the base64 of
/// [`OutgoingMessage::bytes`], byte for byte, with `MessageDisposition="SendOnly"`: a system
/// sender sends thousands of notifications, and saving each in Sent Items would fill the
/// mailbox (a full mailbox then refuses to send), cost a store write per message, and need
/// folder rights the sending account may not have; the ERP keeps its own record of what it
/// sent (the receipt's Message-ID). Use [`EwsTransportBuilder::save_copy`] when the mailbox
/// should keep copies (`SendAndSaveCopy` into Sent Items).
///
/// Bcc recipients are listed as `t:BccRecipients` next to the unchanged MIME, because
/// Exchange takes a MIME message's recipients from its To/Cc headers and core keeps Bcc out
/// of the headers.
///
/// ```no_run
/// use mailroom_core::{CompanyEmail, MessageDraft, ServiceConfig, Transport};
/// use mailroom_ews::EwsTransport;
/// # async fn run(config: CompanyEmail) -> Result<(), mailroom_core::SendError> {
/// let ServiceConfig::Exchange(ews) = &config.service else { unreachable!() };
/// let transport = EwsTransport::new(config.sender.clone(), ews)?;
/// let message = MessageDraft::new(config.sender.clone())
///     .to("ada@example.com".parse().unwrap())
///     .subject("Hello")
///     .text("Hi")
///     .build()
///     .unwrap();
/// let receipt = transport.send(&message).await?;
/// println!("sent {}", receipt.message_id);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct EwsTransport {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) http: Http,
    pub(crate) uri: Url,
    pub(crate) login: Login,
    pub(crate) context: Context,
    pub(crate) disposition: Disposition,
    pub(crate) tls: rustls::ClientConfig,
    /// `timeout_secs`: connecting (TCP and TLS), DNS in the probe, and every reply but the
    /// one to `CreateItem`.
    pub(crate) timeout: Duration,
    /// The reply deadline of `CreateItem`.
    pub(crate) send_timeout: Duration,
    permits: Semaphore,
    /// The schema version requests ask for: [`soap::SERVER_VERSION`] until a mailbox on an
    /// older Exchange refuses it and names its own.
    schema: std::sync::Mutex<&'static str>,
}

impl std::fmt::Debug for EwsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EwsTransport")
            .field("uri", &self.shared.context.uri)
            .field("auth", &self.shared.context.auth)
            .field("login", &self.shared.context.login)
            .field("sender", &self.shared.context.sender)
            .field("disposition", &self.shared.disposition)
            .finish_non_exhaustive()
    }
}

/// Configures an [`EwsTransport`] beyond what the config file says.
///
/// ```
/// use std::time::Duration;
/// use mailroom_core::{EwsConfig, Secret};
/// use mailroom_ews::EwsTransport;
///
/// let config = EwsConfig::new("https://outlook.office365.com/EWS/Exchange.asmx".parse().unwrap(), "company.com", "erp")
///     .with_oauth("11111111-2222-3333-4444-555555555555", Secret::new("app-secret"), "company.onmicrosoft.com")
///     .with_timeout(Duration::from_secs(10));
/// // Building reads ca_file but makes no connection.
/// let transport = EwsTransport::builder("Company ERP <erp@company.com>".parse().unwrap(), &config)
///     .save_copy(true)
///     .build()
///     .unwrap();
/// assert!(!format!("{transport:?}").contains("app-secret"));
/// ```
pub struct EwsTransportBuilder {
    sender: Mailbox,
    config: mailroom_core::config::EwsConfig,
    token_endpoint: Option<Url>,
    tokens: Option<Arc<dyn TokenSource>>,
    save_copy: bool,
    send_timeout: Option<Duration>,
}

impl std::fmt::Debug for EwsTransportBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EwsTransportBuilder")
            .field("sender", &self.sender.email.to_string())
            .field("uri", &http::shown(&self.config.uri))
            .field("auth", &self.config.auth)
            .field("save_copy", &self.save_copy)
            .finish_non_exhaustive()
    }
}

impl EwsTransportBuilder {
    /// The OAuth token endpoint (default
    /// `https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token`): for tests, proxies
    /// and national clouds. `http://` is accepted only for loopback hosts.
    pub fn token_endpoint(mut self, endpoint: Url) -> Self {
        self.token_endpoint = Some(endpoint);
        self
    }

    /// Gets OAuth access tokens from `tokens` instead of the client-credentials grant
    /// (implies `auth = "oauth"` behaviour: Bearer header plus impersonation of the sender).
    pub fn token_source(mut self, tokens: Arc<dyn TokenSource>) -> Self {
        self.tokens = Some(tokens);
        self
    }

    /// Keeps a copy of every sent message in the sender's Sent Items
    /// (`MessageDisposition="SendAndSaveCopy"`; default `SendOnly`).
    pub fn save_copy(mut self, save: bool) -> Self {
        self.save_copy = save;
        self
    }

    /// How long to wait for Exchange's answer to a `CreateItem` once connected; past it the
    /// send is `delivery_unknown` (default: max(6 × `timeout_secs`, 60 s), as Exchange
    /// scans content before it answers, like the SMTP and Gmail drivers). Connecting (TCP
    /// and TLS handshake) and every other request are bounded by `timeout_secs`.
    pub fn send_timeout(mut self, timeout: Duration) -> Self {
        self.send_timeout = Some(timeout);
        self
    }

    /// Builds the transport; reads `ca_file`. No connection is made until the first request.
    pub fn build(self) -> Result<EwsTransport, SendError> {
        let config = self.config;
        let oauth = config.auth == EwsAuth::Oauth || self.tokens.is_some();
        let username = if config.username.contains('@') {
            config.username.clone()
        } else {
            format!("{}@{}", config.username, config.domain)
        };
        let context = Context {
            uri: http::shown(&config.uri),
            host: config.uri.host_str().unwrap_or_default().to_owned(),
            auth: if oauth { EwsAuth::Oauth } else { config.auth },
            login: if oauth {
                config.client_id.clone().unwrap_or_else(|| "(token source)".into())
            } else {
                username.clone()
            },
            sender: self.sender.email.to_string(),
        };
        let fail = |error: EwsError| error.into_send_error(&context, At::Probe, Transcript::new());
        if config.auth == EwsAuth::Ntlm && self.tokens.is_none() {
            return Err(fail(EwsError::Config {
                field: Field::ExchangeAuth,
                reason: "auth = \"ntlm\" is not supported by mailroom: use auth = \"basic\" over HTTPS (enable Basic authentication on the EWS virtual directory) or auth = \"oauth\" (Exchange Online, hybrid Modern Auth)".into(),
            }));
        }
        let roots = http::ca_roots(config.ca_file.as_deref()).map_err(fail)?;
        let tls = http::tls_config(config.ca_file.as_deref(), roots.clone()).map_err(fail)?;
        let http_client = Http::new(&roots, config.timeout, &config.uri).map_err(fail)?;
        let login = if oauth {
            let tokens: Arc<dyn TokenSource> = match self.tokens {
                Some(tokens) => tokens,
                None => {
                    let missing = |field: Field, what: &str| {
                        fail(EwsError::Config { field, reason: format!("auth = \"oauth\" needs {what}") })
                    };
                    let client_id = config
                        .client_id
                        .clone()
                        .ok_or_else(|| missing(Field::ExchangeClientId, "the application (client) ID"))?;
                    let client_secret = config
                        .client_secret
                        .clone()
                        .ok_or_else(|| missing(Field::ExchangeClientSecret, "the client secret"))?;
                    let endpoint = match self.token_endpoint {
                        Some(endpoint) => {
                            mailroom_core::config::checks::check_endpoint(endpoint.as_str()).map_err(|reason| {
                                fail(EwsError::Config {
                                    field: Field::ExchangeTenant,
                                    reason: format!("token endpoint: {reason}"),
                                })
                            })?
                        }
                        None => {
                            let tenant = config
                                .tenant
                                .clone()
                                .ok_or_else(|| missing(Field::ExchangeTenant, "the tenant ID or domain"))?;
                            oauth::token_endpoint(tenant.trim())
                        }
                    };
                    Arc::new(
                        oauth::client_credentials(
                            endpoint,
                            &roots,
                            client_id,
                            client_secret,
                            context.clone(),
                            config.timeout,
                        )
                        .map_err(fail)?,
                    )
                }
            };
            Login::OAuth { tokens: TokenCache::new(tokens) }
        } else {
            let password = config.password.clone().ok_or_else(|| {
                fail(EwsError::Config {
                    field: Field::ExchangePassword,
                    reason: "auth = \"basic\" needs a password: add password_env = \"MAILROOM_PASSWORD\"".into(),
                })
            })?;
            Login::Basic { username, password }
        };
        Ok(EwsTransport {
            shared: Arc::new(Shared {
                http: http_client,
                uri: config.uri.clone(),
                login,
                context,
                disposition: if self.save_copy { Disposition::SendAndSaveCopy } else { Disposition::SendOnly },
                tls,
                timeout: config.timeout,
                send_timeout: self.send_timeout.unwrap_or((config.timeout * 6).max(Duration::from_secs(60))),
                permits: Semaphore::new(MAX_IN_FLIGHT),
                schema: std::sync::Mutex::new(soap::SERVER_VERSION),
            }),
        })
    }
}

impl EwsTransport {
    /// A transport for `config`, sending as `sender`.
    pub fn new(sender: Mailbox, config: &mailroom_core::config::EwsConfig) -> Result<EwsTransport, SendError> {
        Self::builder(sender, config).build()
    }

    /// A builder for the token endpoint, a custom token source and Sent Items copies.
    pub fn builder(sender: Mailbox, config: &mailroom_core::config::EwsConfig) -> EwsTransportBuilder {
        EwsTransportBuilder {
            sender,
            config: config.clone(),
            token_endpoint: None,
            tokens: None,
            save_copy: false,
            send_timeout: None,
        }
    }
}

impl Shared {
    /// The address impersonated (OAuth app-only tokens act as no user until told which).
    pub(crate) fn impersonated(&self) -> Option<&str> {
        match self.login {
            Login::OAuth { .. } => Some(self.context.sender.as_str()),
            Login::Basic { .. } => None,
        }
    }

    /// Posts one SOAP request to `uri` with authentication; a Bearer token Exchange rejects
    /// (401) is refreshed once. Returns the reply, or the token error as a `SendError`.
    pub(crate) async fn call(
        &self,
        uri: &Url,
        operation: Operation,
        mut body: Vec<u8>,
        what: &str,
        transcript: &mut Transcript,
    ) -> Result<Result<HttpReply, EwsError>, SendError> {
        let mut refreshed = false;
        loop {
            let mut headers = vec![
                Header::new(CONTENT_TYPE, HeaderValue::from_static("text/xml; charset=utf-8")),
                Header::new(ACCEPT, HeaderValue::from_static("text/xml")),
                Header::new(
                    HeaderName::from_static("soapaction"),
                    HeaderValue::from_str(&operation.soap_action()).expect("ASCII constant"),
                ),
            ];
            let token = match &self.login {
                Login::Basic { username, password } => {
                    headers.push(Header::secret(AUTHORIZATION, basic_authorization(username, password)));
                    None
                }
                Login::OAuth { tokens } => {
                    let token = tokens.token().await?;
                    let Ok(value) = HeaderValue::from_str(&format!("Bearer {}", token.expose())) else {
                        return Err(SendError::new(
                            mailroom_core::ErrorKind::Protocol,
                            "the token endpoint issued an access token that cannot go in an HTTP header",
                        ));
                    };
                    headers.push(Header::secret(AUTHORIZATION, value));
                    // Exchange Online routes impersonated requests by this header.
                    if let Ok(anchor) = HeaderValue::from_str(&self.context.sender) {
                        headers.push(Header::new(HeaderName::from_static("x-anchormailbox"), anchor));
                    }
                    Some(token)
                }
            };
            // Only a request that may be repeated (a Bearer token not yet refreshed) keeps a
            // copy of the body; a multi-megabyte message is not copied for nothing.
            let payload = if token.is_some() && !refreshed { body.clone() } else { std::mem::take(&mut body) };
            let reply_timeout = match operation {
                Operation::CreateItem => self.send_timeout,
                _ => self.timeout,
            };
            let delivers = operation == Operation::CreateItem;
            let request = Post { url: uri, headers, body: payload, what, reply_timeout, delivers };
            let reply = self.http.post(request, transcript).await;
            match (&reply, &self.login, token) {
                (Ok(HttpReply { status: 401, .. }), Login::OAuth { tokens }, Some(token)) if !refreshed => {
                    transcript.note("Exchange rejected the access token: fetching a new one once");
                    tokens.invalidate(&token).await;
                    refreshed = true;
                }
                _ => return Ok(reply),
            }
        }
    }

    fn classify(&self, at: At, transcript: Transcript, error: EwsError) -> SendError {
        tracing::debug!(error = %error, %at, "EWS request failed");
        error.into_send_error(&self.context, at, transcript)
    }

    fn schema(&self) -> &'static str {
        *self.schema.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs one operation against the configured URI to a successful response message;
    /// `request` writes the body for a schema version.
    pub(crate) async fn run(
        &self,
        operation: Operation,
        request: &(dyn Fn(&str) -> Vec<u8> + Sync),
        what: &str,
        at: At,
        transcript: &mut Transcript,
    ) -> Result<(u16, crate::reply::ResponseMessage), SendError> {
        self.run_at(&self.uri, operation, request, what, at, transcript).await
    }

    /// Runs one operation against `uri` (the probe checks a redirect target on the same
    /// origin with it). A schema version the mailbox refuses is replaced once by the one the
    /// server names (Exchange refuses it before doing anything, so repeating is safe), and
    /// kept for the requests after.
    pub(crate) async fn run_at(
        &self,
        uri: &Url,
        operation: Operation,
        request: &(dyn Fn(&str) -> Vec<u8> + Sync),
        what: &str,
        at: At,
        transcript: &mut Transcript,
    ) -> Result<(u16, crate::reply::ResponseMessage), SendError> {
        let _permit = self.permits.acquire().await.expect("the semaphore is never closed");
        let mut schema = self.schema();
        let mut retried = false;
        loop {
            let reply = match self.call(uri, operation, request(schema), what, transcript).await? {
                Ok(reply) => reply,
                Err(error) => return Err(self.classify(at, std::mem::take(transcript), error)),
            };
            http::record_body(&reply, transcript);
            match EwsError::check_reply(uri, &reply) {
                Ok(message) => return Ok((reply.status, message)),
                Err(EwsError::SchemaVersion { retry_with, .. }) if !retried && retry_with != schema => {
                    transcript
                        .note(&format!("the mailbox refuses schema version {schema}: asking again with {retry_with}"));
                    *self.schema.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = retry_with;
                    schema = retry_with;
                    retried = true;
                }
                Err(error) => return Err(self.classify(at, std::mem::take(transcript), error)),
            }
        }
    }
}

fn basic_authorization(username: &str, password: &Secret) -> HeaderValue {
    use base64::Engine as _;
    let mut credentials = String::with_capacity(username.len() + password.expose().len() + 1);
    credentials.push_str(username);
    credentials.push(':');
    credentials.push_str(password.expose());
    let encoded = base64::engine::general_purpose::STANDARD.encode(credentials.as_bytes());
    HeaderValue::from_str(&format!("Basic {encoded}")).expect("base64 is a valid header value")
}

#[async_trait]
impl Transport for EwsTransport {
    fn service(&self) -> ServiceKind {
        ServiceKind::Exchange
    }

    async fn send(&self, message: &OutgoingMessage) -> Result<SendReceipt, SendError> {
        let shared = &self.shared;
        let bcc = envelope::bcc_recipients(message.bytes(), message.recipients().iter().map(|a| a.as_ref()));
        let body = |version: &str| {
            soap::create_item(version, message.bytes(), &bcc, shared.disposition, shared.impersonated())
        };
        let what = format!(
            "CreateItem {:?}: MimeContent of a {}-byte message{}",
            shared.disposition,
            message.len(),
            if bcc.is_empty() { String::new() } else { format!(", {} Bcc recipient(s)", bcc.len()) }
        );
        let mut transcript = Transcript::new();
        let (status, response) = shared.run(Operation::CreateItem, &body, &what, At::Send, &mut transcript).await?;
        tracing::debug!(message_id = message.message_id(), "EWS CreateItem succeeded");
        Ok(SendReceipt {
            message_id: message.message_id().to_owned(),
            service_id: response.id.clone(),
            server_reply: Some(ServerReply::http(
                status,
                Some(response.code()),
                response.text.clone().unwrap_or_default(),
            )),
        })
    }

    async fn probe(&self) -> ProbeReport {
        probe::probe(&self.shared).await
    }
}
