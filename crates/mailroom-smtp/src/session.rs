//! One SMTP session on a socket we own: connect, greeting, EHLO, STARTTLS or implicit TLS, AUTH, then messages — every step under its own deadline, with a redacted transcript.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use mailroom_core::{OutgoingMessage, Secret, TlsMode, TokenCache, TokenSource, Transcript};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::error::{SmtpError, Step, TlsFailure, tls_failure_of};
use crate::reply::{Reply, read_reply};

/// Everything needed to open sessions to one server; shared by all pooled sessions.
#[derive(Clone)]
pub(crate) struct SessionSettings {
    /// Server host name or IP.
    pub host: String,
    /// Port.
    pub port: u16,
    /// TLS mode.
    pub tls: TlsMode,
    /// Per-step deadline.
    pub timeout: Duration,
    /// The EHLO name.
    pub hello_name: String,
    /// Login, if any.
    pub login: Option<Login>,
    /// Allow AUTH without TLS to a non-loopback server.
    pub allow_plaintext_auth: bool,
    /// rustls client config.
    pub tls_config: Arc<ClientConfig>,
    /// The name the certificate must carry.
    pub server_name: ServerName<'static>,
    /// How the host name is resolved.
    pub resolver: Resolver,
}

/// How server names become addresses.
#[derive(Clone, Debug, Default)]
pub enum Resolver {
    /// The operating system's resolver.
    #[default]
    System,
    /// Only these names resolve (case-insensitive); any other name fails as unknown, without
    /// asking DNS. IP literals always work. Hermetic tests use this.
    Static(Arc<std::collections::HashMap<String, Vec<std::net::IpAddr>>>),
}

impl Resolver {
    /// A static resolver that knows only these names, each with one address.
    ///
    /// ```
    /// use mailroom_smtp::Resolver;
    /// let hermetic = Resolver::only([("localhost", [127, 0, 0, 1].into())]);
    /// # let _ = hermetic;
    /// ```
    pub fn only<'a>(names: impl IntoIterator<Item = (&'a str, std::net::IpAddr)>) -> Resolver {
        let mut table: std::collections::HashMap<String, Vec<std::net::IpAddr>> = std::collections::HashMap::new();
        for (name, ip) in names {
            table.entry(name.to_ascii_lowercase()).or_default().push(ip);
        }
        Resolver::Static(Arc::new(table))
    }

    async fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<std::net::SocketAddr>> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
            return Ok(vec![(ip, port).into()]);
        }
        match self {
            Resolver::System => tokio::net::lookup_host((bare, port)).await.map(Iterator::collect),
            Resolver::Static(names) => names
                .get(&bare.trim_end_matches('.').to_ascii_lowercase())
                .map(|ips| ips.iter().map(|ip| (*ip, port).into()).collect())
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "name or service not known")),
        }
    }
}

/// How to log in.
#[derive(Clone)]
pub(crate) enum Login {
    /// PLAIN or LOGIN with a password.
    Password {
        /// User name.
        username: String,
        /// Password.
        password: Secret,
    },
    /// XOAUTH2 with a token from a provider.
    OAuth {
        /// User name (the mailbox).
        username: String,
        /// Where tokens come from (cached, refreshed early and once on rejection).
        tokens: Arc<TokenCache<Arc<dyn TokenSource>>>,
    },
}

/// What the server's EHLO reply says it can do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Capabilities {
    /// STARTTLS offered.
    pub starttls: bool,
    /// PIPELINING offered (RFC 2920).
    pub pipelining: bool,
    /// 8BITMIME offered.
    pub eight_bit_mime: bool,
    /// SMTPUTF8 offered.
    pub smtputf8: bool,
    /// SIZE limit, when given.
    pub size: Option<u64>,
    /// AUTH mechanisms, upper case.
    pub auth: Vec<String>,
}

impl Capabilities {
    /// Parses an EHLO reply (the first line is the server's name).
    pub(crate) fn parse(reply: &Reply) -> Capabilities {
        let mut caps = Capabilities::default();
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split_whitespace();
            let Some(keyword) = words.next() else { continue };
            match keyword.to_ascii_uppercase().as_str() {
                "STARTTLS" => caps.starttls = true,
                "PIPELINING" => caps.pipelining = true,
                "8BITMIME" => caps.eight_bit_mime = true,
                "SMTPUTF8" => caps.smtputf8 = true,
                "SIZE" => caps.size = words.next().and_then(|n| n.parse().ok()).filter(|n| *n > 0),
                "AUTH" => caps.auth.extend(words.map(str::to_ascii_uppercase)),
                // The pre-RFC form `AUTH=LOGIN PLAIN`: the first mechanism is glued to the keyword.
                keyword if keyword.starts_with("AUTH=") => {
                    let first = keyword.strip_prefix("AUTH=").unwrap_or_default();
                    let rest = words.map(str::to_ascii_uppercase);
                    caps.auth.extend(std::iter::once(first.to_owned()).filter(|m| !m.is_empty()).chain(rest));
                }
                _ => {}
            }
        }
        // Keep the server's order (it lists its preference first), drop every repeat.
        let mut seen = std::collections::HashSet::new();
        caps.auth.retain(|mechanism| seen.insert(mechanism.clone()));
        caps
    }
}

/// The socket: plain TCP or TLS over TCP.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Between STARTTLS's 220 and the end of the handshake; never read or written.
    Upgrading,
}

fn upgrading_error() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the stream is being upgraded to TLS")
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut TaskContext<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Upgrading => Poll::Ready(Err(upgrading_error())),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut TaskContext<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Upgrading => Poll::Ready(Err(upgrading_error())),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Upgrading => Poll::Ready(Err(upgrading_error())),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Upgrading => Poll::Ready(Ok(())),
        }
    }
}

/// Records each finished step for the probe.
pub(crate) trait StepObserver: Send {
    /// A step finished (successfully) after `elapsed`, with a short description.
    fn step_done(&mut self, step: Step, elapsed: Duration, detail: String);
}

impl StepObserver for () {
    fn step_done(&mut self, _: Step, _: Duration, _: String) {}
}

async fn within<T>(
    step: Step,
    limit: Duration,
    future: impl Future<Output = Result<T, SmtpError>>,
) -> Result<T, SmtpError> {
    tokio::time::timeout(limit, future).await.unwrap_or(Err(SmtpError::Timeout { step, limit }))
}

/// An open, greeted, (encrypted,) (authenticated) SMTP session.
pub(crate) struct Session {
    io: BufReader<Stream>,
    capabilities: Capabilities,
    transcript: Transcript,
    timeout: Duration,
    /// When the session last finished a message (for idle expiry).
    pub last_used: Instant,
    /// The connection has carried a transaction: RSET before the next one (pipelined with
    /// MAIL when the server offers PIPELINING, so it costs no round trip).
    needs_reset: bool,
    /// The server is waiting for message data we will not send: the connection must be dropped.
    abandoned: bool,
}

/// A session that could not be opened: the error and the transcript up to it.
pub(crate) struct OpenFailure {
    /// What failed.
    pub error: SmtpError,
    /// The redacted transcript so far.
    pub transcript: Transcript,
    /// The token that was rejected, if XOAUTH2 failed (so the caller can refresh it once).
    pub rejected_token: Option<Secret>,
}

impl Session {
    /// Connects and walks the session up to a logged-in, ready state.
    pub(crate) async fn open(
        settings: &SessionSettings,
        observer: &mut dyn StepObserver,
    ) -> Result<Session, OpenFailure> {
        let mut transcript = Transcript::new();
        let mut rejected_token = None;
        match Self::open_steps(settings, observer, &mut transcript, &mut rejected_token).await {
            Ok(session) => Ok(session),
            Err(error) => Err(OpenFailure { error, transcript, rejected_token }),
        }
    }

    async fn open_steps(
        settings: &SessionSettings,
        observer: &mut dyn StepObserver,
        transcript: &mut Transcript,
        rejected_token: &mut Option<Secret>,
    ) -> Result<Session, SmtpError> {
        let limit = settings.timeout;
        let started = Instant::now();
        let addresses: Vec<std::net::SocketAddr> = within(Step::Resolve, limit, async {
            settings
                .resolver
                .resolve(&settings.host, settings.port)
                .await
                .map_err(|e| SmtpError::Resolve { host: settings.host.clone(), reason: e.to_string() })
        })
        .await?;
        if addresses.is_empty() {
            return Err(SmtpError::Resolve { host: settings.host.clone(), reason: "no addresses".into() });
        }
        observer.step_done(
            Step::Resolve,
            started.elapsed(),
            addresses.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
        );

        let started = Instant::now();
        // Each address gets its own deadline: an unreachable first address (often IPv6 that
        // silently drops packets) must not use up the time of the ones after it.
        let mut last_error = None;
        let mut connected = None;
        for address in &addresses {
            match tokio::time::timeout(limit, TcpStream::connect(address)).await {
                Ok(Ok(tcp)) => {
                    connected = Some(tcp);
                    break;
                }
                Ok(Err(error)) => last_error = Some(error),
                Err(_) => last_error = Some(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
            }
        }
        let tcp = match (connected, last_error) {
            (Some(tcp), _) => tcp,
            (None, Some(error)) if error.kind() == io::ErrorKind::TimedOut => {
                return Err(SmtpError::Timeout { step: Step::Connect, limit });
            }
            (None, error) => {
                return Err(SmtpError::Connect {
                    target: format!("{}:{}", settings.host, settings.port),
                    source: error.unwrap_or_else(|| io::Error::other("no address")),
                });
            }
        };
        // lettre's Nagle trap: without NODELAY every message waits for a delayed ACK (~40 ms).
        let _ = tcp.set_nodelay(true);
        let peer_address = tcp.peer_addr().map_err(|e| SmtpError::Io { step: Step::Connect, reason: e.to_string() })?;
        let peer = peer_address.to_string();
        transcript.note(&format!("connected to {peer}"));
        observer.step_done(Step::Connect, started.elapsed(), peer);

        let stream = if settings.tls == TlsMode::Implicit {
            let started = Instant::now();
            let tls = handshake(settings, tcp).await?;
            transcript.note("TLS established (implicit)");
            observer.step_done(Step::TlsHandshake, started.elapsed(), "implicit TLS established".into());
            Stream::Tls(Box::new(tls))
        } else {
            Stream::Plain(tcp)
        };
        let mut session = Session {
            io: BufReader::with_capacity(8 * 1024, stream),
            capabilities: Capabilities::default(),
            transcript: std::mem::take(transcript),
            timeout: limit,
            last_used: Instant::now(),
            needs_reset: false,
            abandoned: false,
        };
        let result = session.greet_and_login(settings, peer_address, observer, rejected_token).await;
        match result {
            Ok(()) => Ok(session),
            Err(error) => {
                *transcript = std::mem::take(&mut session.transcript);
                Err(error)
            }
        }
    }

    async fn greet_and_login(
        &mut self,
        settings: &SessionSettings,
        peer: std::net::SocketAddr,
        observer: &mut dyn StepObserver,
        rejected_token: &mut Option<Secret>,
    ) -> Result<(), SmtpError> {
        let started = Instant::now();
        let greeting = if settings.tls == TlsMode::Implicit {
            self.read(Step::Greeting).await?
        } else {
            // A silent server may be waiting for a TLS ClientHello (port 465 style). Rather than
            // wait out the whole deadline, ask it on a second connection once it stays quiet.
            tokio::select! {
                biased;
                reply = self.read(Step::Greeting) => reply?,
                true = expects_tls_handshake(settings, peer) => {
                    self.transcript.note("no greeting; a second connection completes a TLS handshake");
                    return Err(SmtpError::ExpectsTls);
                }
            }
        };
        if greeting.code != 220 {
            return Err(SmtpError::Refused { step: Step::Greeting, reply: greeting });
        }
        observer.step_done(Step::Greeting, started.elapsed(), greeting.wire_lines().next().unwrap_or_default());

        self.ehlo(settings, observer).await?;
        if settings.tls == TlsMode::Starttls {
            if !self.capabilities.starttls {
                return Err(SmtpError::StartTlsNotOffered);
            }
            let started = Instant::now();
            let reply = self.command(Step::StartTls, "STARTTLS\r\n").await?;
            if reply.code != 220 {
                return Err(SmtpError::Refused { step: Step::StartTls, reply });
            }
            if !self.io.buffer().is_empty() {
                // Bytes sent before the handshake could be injected commands (CVE-2011-0411 class).
                return Err(SmtpError::NotSmtp {
                    step: Step::StartTls,
                    line: "data after the STARTTLS reply, before the TLS handshake".into(),
                });
            }
            let stream = std::mem::replace(self.io.get_mut(), Stream::Upgrading);
            let Stream::Plain(tcp) = stream else { unreachable!("STARTTLS runs on a plain stream") };
            let tls = handshake(settings, tcp).await?;
            *self.io.get_mut() = Stream::Tls(Box::new(tls));
            self.transcript.note("TLS established (STARTTLS)");
            observer.step_done(Step::StartTls, started.elapsed(), "STARTTLS, TLS established".into());
            self.ehlo(settings, observer).await?;
        }
        if let Some(login) = &settings.login {
            let encrypted = matches!(self.io.get_ref(), Stream::Tls(_));
            if !encrypted && !cleartext_auth_allowed(&settings.host, peer.ip(), settings.allow_plaintext_auth) {
                return Err(SmtpError::PlaintextAuthRefused { host: settings.host.clone() });
            }
            if self.capabilities.auth.is_empty() {
                return Err(SmtpError::NoAuthOffered { starttls_offered: self.capabilities.starttls });
            }
            let started = Instant::now();
            let mechanism = self.authenticate(login, rejected_token).await?;
            observer.step_done(Step::Auth, started.elapsed(), format!("AUTH {mechanism} accepted"));
        }
        Ok(())
    }

    async fn ehlo(&mut self, settings: &SessionSettings, observer: &mut dyn StepObserver) -> Result<(), SmtpError> {
        let started = Instant::now();
        let reply = self.command(Step::Ehlo, &format!("EHLO {}\r\n", settings.hello_name)).await?;
        if reply.code != 250 {
            return Err(SmtpError::Refused { step: Step::Ehlo, reply });
        }
        self.capabilities = Capabilities::parse(&reply);
        let auth = if self.capabilities.auth.is_empty() {
            "no AUTH".to_owned()
        } else {
            format!("AUTH {}", self.capabilities.auth.join(" "))
        };
        let tls = if self.capabilities.starttls { ", STARTTLS" } else { "" };
        observer.step_done(Step::Ehlo, started.elapsed(), format!("{auth}{tls}"));
        Ok(())
    }

    async fn authenticate(
        &mut self,
        login: &Login,
        rejected_token: &mut Option<Secret>,
    ) -> Result<Mechanism, SmtpError> {
        let offers = |name: &str| self.capabilities.auth.iter().any(|m| m == name);
        let (mechanism, credentials, token) = match login {
            Login::Password { username, password } => {
                let mechanism = if offers("PLAIN") {
                    Mechanism::Plain
                } else if offers("LOGIN") {
                    Mechanism::Login
                } else {
                    return Err(SmtpError::NoCommonMechanism { offered: self.capabilities.auth.join(" ") });
                };
                (mechanism, Credentials::new(username.clone(), password.expose().to_owned()), None)
            }
            Login::OAuth { username, tokens } => {
                if !offers("XOAUTH2") {
                    return Err(SmtpError::NoCommonMechanism { offered: self.capabilities.auth.join(" ") });
                }
                let token = within(Step::Auth, self.timeout, async {
                    tokens.token().await.map_err(|e| SmtpError::Token(Box::new(e)))
                })
                .await?;
                (Mechanism::Xoauth2, Credentials::new(username.clone(), token.expose().to_owned()), Some(token))
            }
        };
        let encode = |challenge: Option<&str>| -> Result<String, SmtpError> {
            let response = mechanism.response(&credentials, challenge).map_err(|e| SmtpError::NotSmtp {
                step: Step::Auth,
                line: format!("unexpected AUTH challenge: {e}"),
            })?;
            Ok(BASE64.encode(response))
        };
        let mut reply = if mechanism.supports_initial_response() {
            let line = format!("AUTH {mechanism} {}\r\n", encode(None)?);
            self.send_secret(Step::Auth, &line, &format!("AUTH {mechanism}")).await?
        } else {
            self.command(Step::Auth, &format!("AUTH {mechanism}\r\n")).await?
        };
        for _ in 0..4 {
            if reply.code != 334 {
                break;
            }
            if mechanism == Mechanism::Xoauth2 {
                // Google sends its error as a 334 challenge; the protocol wants an empty answer before the 535.
                reply = self.send_secret(Step::Auth, "\r\n", "").await?;
                *rejected_token = token.clone();
                continue;
            }
            let challenge = reply
                .lines
                .first()
                .and_then(|c| BASE64.decode(c.trim()).ok())
                .and_then(|c| String::from_utf8(c).ok())
                .unwrap_or_default();
            let line = format!("{}\r\n", encode(Some(&challenge))?);
            reply = self.send_secret(Step::Auth, &line, "").await?;
        }
        if reply.code == 235 {
            Ok(mechanism)
        } else {
            if mechanism == Mechanism::Xoauth2 {
                *rejected_token = token;
            }
            Err(SmtpError::Refused { step: Step::Auth, reply })
        }
    }

    /// Sends a line holding credentials; the transcript keeps only `visible`.
    async fn send_secret(&mut self, step: Step, line: &str, visible: &str) -> Result<Reply, SmtpError> {
        self.transcript.client_redacted(visible.trim());
        self.write(step, line.as_bytes()).await?;
        self.read(step).await
    }

    async fn command(&mut self, step: Step, line: &str) -> Result<Reply, SmtpError> {
        self.transcript.client(line);
        self.write(step, line.as_bytes()).await?;
        self.read(step).await
    }

    async fn write(&mut self, step: Step, bytes: &[u8]) -> Result<(), SmtpError> {
        let stream = self.io.get_mut();
        within(step, self.timeout, async {
            stream.write_all(bytes).await.map_err(|e| SmtpError::from_write(step, e))?;
            stream.flush().await.map_err(|e| SmtpError::from_write(step, e))
        })
        .await
    }

    async fn read(&mut self, step: Step) -> Result<Reply, SmtpError> {
        self.read_within(step, self.timeout).await
    }

    async fn read_within(&mut self, step: Step, limit: Duration) -> Result<Reply, SmtpError> {
        let io = &mut self.io;
        let reply =
            within(step, limit, async { read_reply(io).await.map_err(|e| SmtpError::from_read(step, e)) }).await?;
        for line in reply.wire_lines() {
            self.transcript.server(&line);
        }
        Ok(reply)
    }

    /// What the server said it supports (after TLS, when TLS is on).
    pub(crate) fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    /// Takes the transcript recorded since the last call.
    pub(crate) fn take_transcript(&mut self) -> Transcript {
        std::mem::take(&mut self.transcript)
    }

    /// True when the idle connection shows no sign of having been closed: nothing readable
    /// without waiting (a 421 or EOF would be). Costs no round trip.
    pub(crate) fn looks_alive(&mut self) -> bool {
        if !self.io.buffer().is_empty() {
            return false;
        }
        let mut scratch = [0u8; 256];
        let mut buffer = ReadBuf::new(&mut scratch);
        let mut cx = TaskContext::from_waker(Waker::noop());
        match Pin::new(self.io.get_mut()).poll_read(&mut cx, &mut buffer) {
            Poll::Pending => true,
            Poll::Ready(Ok(())) => {
                if !buffer.filled().is_empty() {
                    self.transcript.server(&String::from_utf8_lossy(buffer.filled()));
                }
                false
            }
            Poll::Ready(Err(_)) => false,
        }
    }

    /// Sends one message. Uses PIPELINING when offered (RSET, MAIL, RCPT…, DATA in one write).
    pub(crate) async fn send(&mut self, message: &OutgoingMessage) -> Result<Reply, SmtpError> {
        if let Some(limit) = self.capabilities.size
            && message.len() as u64 > limit
        {
            return Err(SmtpError::TooLarge { size: message.len(), limit });
        }
        let mut parameters = String::new();
        if self.capabilities.size.is_some() {
            parameters.push_str(&format!(" SIZE={}", message.len()));
        }
        if !message.bytes().is_ascii() && self.capabilities.eight_bit_mime {
            parameters.push_str(" BODY=8BITMIME");
        }
        let non_ascii_address = !message.envelope_from().to_string().is_ascii()
            || message.recipients().iter().any(|r| !r.to_string().is_ascii());
        if non_ascii_address && self.capabilities.smtputf8 {
            parameters.push_str(" SMTPUTF8");
        }
        let mail = format!("MAIL FROM:<{}>{parameters}\r\n", message.envelope_from());
        let rcpts: Vec<String> = message.recipients().iter().map(|r| format!("RCPT TO:<{r}>\r\n")).collect();

        if self.capabilities.pipelining {
            self.send_pipelined(&mail, &rcpts).await?;
        } else {
            if self.needs_reset {
                self.expect_ok(Step::Rset, "RSET\r\n").await?;
            }
            self.expect_ok(Step::Mail, &mail).await?;
            self.needs_reset = true;
            for rcpt in &rcpts {
                self.expect_ok(Step::Rcpt, rcpt).await?;
            }
            let reply = self.command(Step::Data, "DATA\r\n").await?;
            if reply.code != 354 {
                return Err(SmtpError::Refused { step: Step::Data, reply });
            }
        }

        self.transcript.client(&format!("[message: {} bytes]", message.len()));
        let body = dot_stuff(message.bytes());
        // A large message on a slow uplink takes longer than one step's deadline: the
        // deadline applies to each chunk (no progress for `timeout_secs`), not to the whole.
        for chunk in body.chunks(BODY_CHUNK) {
            let stream = self.io.get_mut();
            within(Step::Body, self.timeout, async {
                stream.write_all(chunk).await.map_err(|e| SmtpError::from_write(Step::Body, e))
            })
            .await?;
        }
        let stream = self.io.get_mut();
        within(Step::Body, self.timeout, async {
            stream.flush().await.map_err(|e| SmtpError::from_write(Step::Body, e))
        })
        .await?;
        let reply = self.read_within(Step::FinalReply, final_reply_deadline(self.timeout)).await?;
        self.last_used = Instant::now();
        if !reply.is_completion() {
            return Err(SmtpError::Refused { step: Step::FinalReply, reply });
        }
        Ok(reply)
    }

    async fn expect_ok(&mut self, step: Step, line: &str) -> Result<(), SmtpError> {
        let reply = self.command(step, line).await?;
        if reply.is_completion() { Ok(()) } else { Err(SmtpError::Refused { step, reply }) }
    }

    async fn send_pipelined(&mut self, mail: &str, rcpts: &[String]) -> Result<(), SmtpError> {
        let mut batch = String::with_capacity(64 + mail.len() + rcpts.iter().map(String::len).sum::<usize>());
        let reset = self.needs_reset;
        if reset {
            batch.push_str("RSET\r\n");
        }
        batch.push_str(mail);
        for rcpt in rcpts {
            batch.push_str(rcpt);
        }
        batch.push_str("DATA\r\n");
        for line in batch.split_inclusive("\r\n") {
            self.transcript.client(line);
        }
        self.write(Step::Mail, batch.as_bytes()).await?;
        self.needs_reset = true;
        // Every pipelined command gets a reply; read them all before judging, or the next
        // transaction on this connection would read this one's replies.
        let rset_reply = if reset { Some(self.read(Step::Rset).await?) } else { None };
        let mail_reply = self.read(Step::Mail).await?;
        let mut rcpt_refusal = None;
        for _ in rcpts {
            let reply = self.read(Step::Rcpt).await?;
            if !reply.is_completion() && rcpt_refusal.is_none() {
                rcpt_refusal = Some(reply);
            }
        }
        let data_reply = self.read(Step::Data).await?;
        let refusal = match rset_reply {
            Some(reply) if !reply.is_completion() => Some(SmtpError::Refused { step: Step::Rset, reply }),
            _ if !mail_reply.is_completion() => Some(SmtpError::Refused { step: Step::Mail, reply: mail_reply }),
            _ => rcpt_refusal.map(|reply| SmtpError::Refused { step: Step::Rcpt, reply }),
        };
        match (refusal, data_reply.code) {
            (None, 354) => Ok(()),
            (None, _) => Err(SmtpError::Refused { step: Step::Data, reply: data_reply }),
            (Some(refusal), 354) => {
                // DATA was accepted for the other recipients: ending it would deliver an empty
                // message, so the connection is abandoned instead (the caller drops it).
                self.abandoned = true;
                Err(refusal)
            }
            (Some(refusal), _) => Err(refusal),
        }
    }

    /// Whether the session can be reused after `error` (a clean refusal before DATA).
    pub(crate) fn reusable_after(&self, error: &SmtpError) -> bool {
        let clean_refusal = match error {
            SmtpError::Refused { step: Step::Mail | Step::Rcpt | Step::Rset | Step::Data, .. } => true,
            SmtpError::Refused { step: Step::FinalReply, reply } => reply.code / 100 == 5,
            SmtpError::TooLarge { .. } => true,
            _ => false,
        };
        clean_refusal && !self.abandoned
    }

    /// Checks that the server accepts `sender` in MAIL FROM, then resets; sends no message.
    pub(crate) async fn check_sender(&mut self, sender: &lettre::Address) -> Result<Reply, SmtpError> {
        let reply = self.command(Step::Mail, &format!("MAIL FROM:<{sender}>\r\n")).await?;
        if !reply.is_completion() {
            return Err(SmtpError::Refused { step: Step::Mail, reply });
        }
        self.expect_ok(Step::Rset, "RSET\r\n").await?;
        Ok(reply)
    }

    /// Says QUIT and closes, waiting at most one second.
    pub(crate) async fn quit(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            let _ = self.io.get_mut().write_all(b"QUIT\r\n").await;
            let _ = self.io.get_mut().flush().await;
            let _ = read_reply(&mut self.io).await;
            let _ = self.io.get_mut().shutdown().await;
        })
        .await;
    }
}

/// Whether a password may go over an unencrypted connection to `host`, connected at `peer`.
///
/// Without the config's explicit opt-in, both the name and the address actually connected to
/// must be loopback: a name such as `mail.localhost` goes through DNS like any other and may
/// lead anywhere.
fn cleartext_auth_allowed(host: &str, peer: std::net::IpAddr, allowed_by_config: bool) -> bool {
    allowed_by_config || (mailroom_core::config::checks::is_loopback_host(host) && peer.to_canonical().is_loopback())
}

async fn handshake(settings: &SessionSettings, tcp: TcpStream) -> Result<TlsStream<TcpStream>, SmtpError> {
    let connector = TlsConnector::from(settings.tls_config.clone());
    within(Step::TlsHandshake, settings.timeout, async {
        connector.connect(settings.server_name.clone(), tcp).await.map_err(|e| {
            let cause = tls_failure_of(&e);
            let closed = matches!(e.kind(), io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset);
            if closed && cause == TlsFailure::Other {
                SmtpError::Closed { step: Step::TlsHandshake }
            } else {
                SmtpError::Tls { reason: e.to_string(), cause }
            }
        })
    })
    .await
}

/// The body is written in chunks of this size, each under the step deadline.
const BODY_CHUNK: usize = 64 * 1024;

/// The wait for the reply to the end of the message: servers scan content before answering
/// (RFC 5321 §4.5.3.2.6 suggests up to 10 minutes), so at least a minute, never less than
/// six step deadlines. Giving up earlier would turn a slow scan into `delivery_unknown`.
fn final_reply_deadline(step: Duration) -> Duration {
    (step * 6).max(Duration::from_secs(60))
}

/// How long a server may stay silent before we check whether it waits for TLS instead.
const TLS_SNIFF_DELAY: Duration = Duration::from_millis(600);

/// True when `peer` completes (or gets as far as certificates in) a TLS handshake: the port
/// expects implicit TLS. Resolves to false as soon as that is known not to be the case.
async fn expects_tls_handshake(settings: &SessionSettings, peer: std::net::SocketAddr) -> bool {
    tokio::time::sleep(TLS_SNIFF_DELAY).await;
    let limit = settings.timeout.min(Duration::from_secs(2));
    let attempt = async {
        let tcp = TcpStream::connect(peer).await.ok()?;
        let _ = tcp.set_nodelay(true);
        let connector = TlsConnector::from(settings.tls_config.clone());
        Some(match connector.connect(settings.server_name.clone(), tcp).await {
            Ok(_) => true,
            Err(error) => tls_failure_of(&error).is_certificate() || is_alert(&error),
        })
    };
    matches!(tokio::time::timeout(limit, attempt).await, Ok(Some(true)))
}

fn is_alert(error: &io::Error) -> bool {
    error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
        .is_some_and(|e| matches!(e, rustls::Error::AlertReceived(_)))
}

/// Dot-stuffs a message (RFC 5321 §4.5.2) and appends the end-of-data marker.
pub(crate) fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 64);
    let mut at_line_start = true;
    for &byte in message {
        if at_line_start && byte == b'.' {
            out.push(b'.');
        }
        out.push(byte);
        at_line_start = byte == b'\n';
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn unstuff(data: &[u8]) -> Vec<u8> {
        let data = data.strip_suffix(b".\r\n").expect("terminator");
        let mut out = Vec::new();
        for line in data.split_inclusive(|b| *b == b'\n') {
            out.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
        }
        out
    }

    proptest! {
        #[test]
        fn dot_stuffing_round_trips(lines in proptest::collection::vec("[.a-z ]{0,12}", 1..12)) {
            let message: String = lines.iter().map(|l| format!("{l}\r\n")).collect();
            let stuffed = dot_stuff(message.as_bytes());
            prop_assert!(!stuffed[..stuffed.len() - 3].windows(5).any(|w| w == b"\r\n.\r\n"), "early terminator");
            prop_assert_eq!(unstuff(&stuffed), message.as_bytes());
        }
    }

    fn ehlo(lines: &[&str]) -> Reply {
        Reply { code: 250, lines: lines.iter().map(|l| (*l).to_owned()).collect() }
    }

    #[test]
    fn capabilities_keep_every_mechanism_of_an_auth_equals_line_and_drop_every_duplicate() {
        // Old servers (and Outlook clients' expectations) advertise `AUTH=LOGIN PLAIN` beside `AUTH LOGIN PLAIN`.
        let caps =
            Capabilities::parse(&ehlo(&["mx.example", "AUTH LOGIN PLAIN", "SIZE 1000", "AUTH=LOGIN plain XOAUTH2"]));
        assert_eq!(caps.auth, ["LOGIN", "PLAIN", "XOAUTH2"]);
        let caps = Capabilities::parse(&ehlo(&["mx.example", "AUTH=CRAM-MD5 LOGIN", "AUTH PLAIN CRAM-MD5 LOGIN"]));
        assert_eq!(caps.auth, ["CRAM-MD5", "LOGIN", "PLAIN"]);
    }

    #[test]
    fn a_loopback_looking_name_on_a_non_loopback_peer_gets_no_cleartext_auth() {
        // `*.localhost` and `localhost` are resolved like any other name; what counts is where the socket went.
        let public: std::net::IpAddr = [192, 0, 2, 7].into();
        assert!(!cleartext_auth_allowed("localhost", public, false));
        assert!(!cleartext_auth_allowed("mail.localhost", public, false));
        assert!(!cleartext_auth_allowed("127.0.0.1", "::ffff:192.0.2.7".parse().unwrap(), false));
        assert!(cleartext_auth_allowed("localhost", [127, 0, 0, 1].into(), false));
        assert!(cleartext_auth_allowed("localhost", "::1".parse().unwrap(), false));
        assert!(cleartext_auth_allowed("mail.localhost", "::ffff:127.0.0.1".parse().unwrap(), false));
        assert!(
            !cleartext_auth_allowed("mail.example", [127, 0, 0, 1].into(), false),
            "the name must say loopback too"
        );
        assert!(cleartext_auth_allowed("mail.example", public, true), "allow_plaintext_auth is the explicit opt-in");
    }

    #[test]
    fn capabilities_parse_gmail_after_tls() {
        let reply = Reply {
            code: 250,
            lines: [
                "smtp.gmail.com at your service",
                "SIZE 35882577",
                "8BITMIME",
                "AUTH LOGIN PLAIN XOAUTH2 PLAIN-CLIENTTOKEN OAUTHBEARER XOAUTH",
                "ENHANCEDSTATUSCODES",
                "PIPELINING",
                "CHUNKING",
                "SMTPUTF8",
            ]
            .map(String::from)
            .to_vec(),
        };
        let caps = Capabilities::parse(&reply);
        assert_eq!(caps.size, Some(35_882_577));
        assert!(caps.pipelining && caps.eight_bit_mime && caps.smtputf8 && !caps.starttls);
        assert_eq!(caps.auth[..3], ["LOGIN", "PLAIN", "XOAUTH2"]);
    }
}
