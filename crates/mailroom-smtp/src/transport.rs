//! `SmtpTransport`: the Web Mail `Transport` — a pool of sessions (idle expiry, zero-round-trip liveness check, transparent reconnect of stale ones), a concurrency limit, and the probe.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use mailroom_core::{
    Mailbox, OutgoingMessage, ProbeReport, SendError, SendReceipt, ServiceKind, SmtpConfig, TokenCache, TokenSource,
    Transcript, Transport,
};
use tokio::sync::Semaphore;

use crate::error::{Context, SmtpError};
use crate::probe;
use crate::session::{Login, Resolver, Session, SessionSettings, StepObserver};
use crate::tls;

/// Sends mail through one SMTP server as the Company Email.
///
/// ```no_run
/// use mailroom_core::{CompanyEmail, MessageDraft, ServiceConfig, Transport};
/// use mailroom_smtp::SmtpTransport;
/// # async fn run(config: CompanyEmail) -> Result<(), mailroom_core::SendError> {
/// let ServiceConfig::WebMail(smtp) = &config.service else { unreachable!() };
/// let transport = SmtpTransport::new(config.sender.clone(), smtp)?;
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
pub struct SmtpTransport {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) settings: SessionSettings,
    pub(crate) context: Context,
    pub(crate) sender: Mailbox,
    idle: Mutex<Vec<Session>>,
    permits: Semaphore,
    idle_timeout: Duration,
}

impl std::fmt::Debug for SmtpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpTransport")
            .field("server", &self.shared.settings.host)
            .field("port", &self.shared.settings.port)
            .field("tls", &self.shared.settings.tls)
            .finish_non_exhaustive()
    }
}

/// Configures an [`SmtpTransport`] beyond what the config file says.
pub struct SmtpTransportBuilder {
    sender: Mailbox,
    config: SmtpConfig,
    max_connections: usize,
    idle_timeout: Duration,
    tokens: Option<Arc<dyn TokenSource>>,
    hello_name: Option<String>,
    resolver: Resolver,
}

impl SmtpTransportBuilder {
    /// At most this many connections at once (default 4).
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.max_connections = connections.max(1);
        self
    }

    /// Idle connections older than this are closed instead of reused (default 60 s).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Logs in with XOAUTH2 using tokens from `tokens` instead of the password.
    pub fn xoauth2(mut self, tokens: Arc<dyn TokenSource>) -> Self {
        self.tokens = Some(tokens);
        self
    }

    /// The EHLO name (default: the sender's domain).
    pub fn hello_name(mut self, name: impl Into<String>) -> Self {
        self.hello_name = Some(name.into());
        self
    }

    /// How the server name is resolved (default: the system resolver). Tests use
    /// [`Resolver::only`] so that an unknown name fails without asking DNS.
    pub fn resolver(mut self, resolver: Resolver) -> Self {
        self.resolver = resolver;
        self
    }

    /// Builds the transport; reads `ca_file`. No connection is made until the first send.
    pub fn build(self) -> Result<SmtpTransport, SendError> {
        let context = Context::of(&self.config);
        let fail = |error: SmtpError| error.into_send_error(&context, mailroom_core::Transcript::new());
        let tls_config = tls::client_config(self.config.ca_file.as_deref()).map_err(fail)?;
        let server_name = tls::server_name(&self.config.server).map_err(fail)?;
        let login = match (self.tokens, &self.config.username, &self.config.password) {
            (Some(tokens), Some(username), _) => {
                Some(Login::OAuth { username: username.clone(), tokens: Arc::new(TokenCache::new(tokens)) })
            }
            (Some(tokens), None, _) => Some(Login::OAuth {
                username: self.sender.email.to_string(),
                tokens: Arc::new(TokenCache::new(tokens)),
            }),
            (None, Some(username), Some(password)) => {
                Some(Login::Password { username: username.clone(), password: password.clone() })
            }
            _ => None,
        };
        let settings = SessionSettings {
            host: self.config.server.clone(),
            port: self.config.port,
            tls: self.config.tls,
            timeout: self.config.timeout,
            hello_name: self.hello_name.unwrap_or_else(|| self.sender.email.domain().to_owned()),
            login,
            allow_plaintext_auth: self.config.allow_plaintext_auth,
            tls_config,
            server_name,
            resolver: self.resolver,
        };
        Ok(SmtpTransport {
            shared: Arc::new(Shared {
                settings,
                context,
                sender: self.sender,
                idle: Mutex::new(Vec::new()),
                permits: Semaphore::new(self.max_connections),
                idle_timeout: self.idle_timeout,
            }),
        })
    }
}

impl SmtpTransport {
    /// A transport for `config`, sending as `sender`.
    pub fn new(sender: Mailbox, config: &SmtpConfig) -> Result<SmtpTransport, SendError> {
        Self::builder(sender, config).build()
    }

    /// A builder for pool size, XOAUTH2 and the EHLO name.
    pub fn builder(sender: Mailbox, config: &SmtpConfig) -> SmtpTransportBuilder {
        SmtpTransportBuilder {
            sender,
            config: config.clone(),
            max_connections: 4,
            idle_timeout: Duration::from_secs(60),
            tokens: None,
            hello_name: None,
            resolver: Resolver::System,
        }
    }

    /// Says QUIT on every idle connection.
    pub async fn close(&self) {
        let idle: Vec<Session> = std::mem::take(&mut *self.shared.idle.lock().expect("pool lock"));
        for session in idle {
            session.quit().await;
        }
    }

    fn take_idle(&self) -> Option<Session> {
        let mut idle = self.shared.idle.lock().expect("pool lock");
        while let Some(mut session) = idle.pop() {
            if session.last_used.elapsed() < self.shared.idle_timeout && session.looks_alive() {
                return Some(session);
            }
            tracing::debug!("dropping a stale pooled SMTP connection");
        }
        None
    }

    fn put_idle(&self, session: Session) {
        self.shared.idle.lock().expect("pool lock").push(session);
    }

    pub(crate) async fn open(shared: &Shared, observer: &mut dyn StepObserver) -> Result<Session, SendError> {
        Self::open_classifiable(shared, observer)
            .await
            .map_err(|(error, transcript)| error.into_send_error(&shared.context, transcript))
    }

    /// Opens a session; the error keeps its protocol step for the probe.
    pub(crate) async fn open_classifiable(
        shared: &Shared,
        observer: &mut dyn StepObserver,
    ) -> Result<Session, (SmtpError, Transcript)> {
        match Session::open(&shared.settings, observer).await {
            Ok(session) => Ok(session),
            Err(failure) => {
                // One refresh for a rejected XOAUTH2 token, then the error stands.
                if let (Some(rejected), Some(Login::OAuth { tokens, .. })) =
                    (&failure.rejected_token, &shared.settings.login)
                {
                    tokens.invalidate(rejected).await;
                    return Session::open(&shared.settings, observer)
                        .await
                        .map_err(|again| (again.error, again.transcript));
                }
                Err((failure.error, failure.transcript))
            }
        }
    }
}

#[async_trait]
impl Transport for SmtpTransport {
    fn service(&self) -> ServiceKind {
        ServiceKind::WebMail
    }

    async fn send(&self, message: &OutgoingMessage) -> Result<SendReceipt, SendError> {
        let _permit = self.shared.permits.acquire().await.expect("the semaphore is never closed");
        let mut retried_stale = false;
        loop {
            let (mut session, reused) = match self.take_idle() {
                Some(mut session) => {
                    session.take_transcript();
                    (session, true)
                }
                None => (Self::open(&self.shared, &mut ()).await?, false),
            };
            match session.send(message).await {
                Ok(reply) => {
                    self.put_idle(session);
                    return Ok(SendReceipt {
                        message_id: message.message_id().to_owned(),
                        service_id: None,
                        server_reply: Some(reply.to_server_reply()),
                    });
                }
                Err(error) if reused && !retried_stale && error.is_stale_connection() => {
                    // The server closed the pooled connection before we handed anything over.
                    tracing::debug!("pooled SMTP connection was stale ({error}); reconnecting");
                    retried_stale = true;
                }
                Err(error) => {
                    let transcript = session.take_transcript();
                    if session.reusable_after(&error) {
                        self.put_idle(session);
                    }
                    return Err(error.into_send_error(&self.shared.context, transcript));
                }
            }
        }
    }

    async fn probe(&self) -> ProbeReport {
        probe::probe(&self.shared).await
    }

    /// Says `QUIT` on every idle pooled connection (all at once, each waiting at most a
    /// second for the server's 221) and closes them; sends in flight are not interrupted.
    async fn close(&self) {
        let idle: Vec<Session> = std::mem::take(&mut *self.shared.idle.lock().expect("pool lock"));
        let quits: Vec<_> = idle.into_iter().map(|session| tokio::spawn(session.quit())).collect();
        for quit in quits {
            let _ = quit.await;
        }
    }
}
