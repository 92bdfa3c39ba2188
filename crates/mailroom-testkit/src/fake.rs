//! `FakeSmtpServer`: a well-behaved SMTP server for driver tests — mailin's state machine behind a tokio loop we can stop.
//!
//! mailin-embedded's `Server::serve()` blocks in `TcpListener::incoming()` forever and keeps
//! sessions on a scoped thread pool with five-minute socket timeouts; there is no way to stop
//! it or release its port. It also loads certificates from files and builds its rustls config
//! with the process-default crypto provider. So this server keeps the part of mailin-embedded
//! that defines its behaviour — the `mailin` session state machine (mailin 0.6.5, the same
//! engine mailin-embedded 0.8.3 drives) — and replaces its I/O loop with [`ServerHost`], which
//! owns the listener, bounds every wait and shuts down synchronously.
//!
//! mailin's behaviour, kept on purpose because real drivers meet it: a fixed EHLO
//! (`8BITMIME`, `STARTTLS` until TLS is up, `AUTH PLAIN LOGIN` only once AUTH is allowed),
//! single-line replies, AUTH only after TLS (unless plaintext auth is enabled), `503 Bad
//! sequence of commands` (not 530) for MAIL before AUTH, and `500 Syntax error` for MAIL
//! parameters other than `BODY=` (so `SIZE=`/`SMTPUTF8` are refused) and for the null sender `<>`.

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use mailin::{Action, AuthMechanism, Handler, Response, SessionBuilder};
use rustls::ServerConfig;
use tokio::net::TcpStream;

use crate::capture::MessageStore;
use crate::conn::{Io, Limits, ReadError, SmtpStream, accept_tls};
use crate::host::ServerHost;
use crate::reply::Reply;
use crate::tls::TestCertificates;
use crate::{CapturedMessage, KitError};

/// Configures a [`FakeSmtpServer`]; see there for an example.
#[derive(Clone, Debug)]
pub struct FakeSmtpServerBuilder {
    hostname: String,
    starttls: bool,
    implicit_tls: bool,
    plaintext_auth: Option<bool>,
    accounts: Vec<(String, String)>,
    require_auth: Option<bool>,
    max_message_size: Option<usize>,
    rejected_recipients: HashSet<String>,
    limits: Limits,
    bind: SocketAddr,
}

impl Default for FakeSmtpServerBuilder {
    fn default() -> Self {
        Self {
            hostname: "localhost".to_owned(),
            starttls: true,
            implicit_tls: false,
            plaintext_auth: None,
            accounts: Vec::new(),
            require_auth: None,
            max_message_size: None,
            rejected_recipients: HashSet::new(),
            limits: Limits::default(),
            bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
        }
    }
}

impl FakeSmtpServerBuilder {
    /// The name in the greeting (`220 <name> ESMTP`). Default `localhost`.
    pub fn hostname(mut self, name: impl Into<String>) -> Self {
        self.hostname = name.into();
        self
    }

    /// Offers STARTTLS (default on). The certificate is generated at start; see [`FakeSmtpServer::ca_pem`].
    pub fn starttls(mut self, enabled: bool) -> Self {
        self.starttls = enabled;
        self
    }

    /// Speaks TLS from the first byte (port-465 style) instead of offering STARTTLS.
    pub fn implicit_tls(mut self, enabled: bool) -> Self {
        self.implicit_tls = enabled;
        self
    }

    /// Adds an account for AUTH PLAIN and AUTH LOGIN. Configuring any account enables AUTH.
    pub fn account(mut self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.accounts.push((username.into(), password.into()));
        self
    }

    /// Whether MAIL needs a successful AUTH first. Default: true when accounts are configured;
    /// without accounts there is no AUTH at all and this has no effect.
    ///
    /// With `false` and accounts configured, clients may still authenticate, and unauthenticated
    /// clients may send wherever mailin would accept AUTH (after STARTTLS, or anywhere with
    /// [`plaintext_auth`](Self::plaintext_auth)).
    pub fn require_auth(mut self, required: bool) -> Self {
        self.require_auth = Some(required);
        self
    }

    /// Offers and accepts AUTH before TLS. Default: on when the server has no TLS at all
    /// (otherwise nobody could authenticate), off when it offers STARTTLS.
    pub fn plaintext_auth(mut self, allowed: bool) -> Self {
        self.plaintext_auth = Some(allowed);
        self
    }

    /// Refuses messages larger than `bytes` with `552 5.3.4` after their data.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = Some(bytes);
        self
    }

    /// Refuses this recipient with `550 5.1.1` at RCPT.
    pub fn reject_recipient(mut self, address: impl Into<String>) -> Self {
        self.rejected_recipients.insert(address.into().to_ascii_lowercase());
        self
    }

    /// Line length, memory and idle bounds (defaults: 8 KiB lines, 64 MiB messages, 30 s idle).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Listens on `::1` instead of `127.0.0.1` (still an ephemeral port).
    pub fn ipv6(mut self) -> Self {
        self.bind = SocketAddr::new(IpAddr::V6(std::net::Ipv6Addr::LOCALHOST), 0);
        self
    }

    /// Listens on this loopback port instead of an ephemeral one (for running it by hand,
    /// e.g. `cargo xtask fake-smtp --port 2525`; tests should keep the ephemeral default).
    pub fn port(mut self, port: u16) -> Self {
        self.bind.set_port(port);
        self
    }

    /// Generates the certificates, binds an ephemeral loopback port and starts serving on a
    /// dedicated thread. Needs no particular runtime: the future completes without waiting.
    pub async fn start(self) -> Result<FakeSmtpServer, KitError> {
        let certificates = TestCertificates::generate()?;
        let tls_config = certificates.server_config()?;
        let uses_tls = self.starttls || self.implicit_tls;
        let plaintext_auth = self.plaintext_auth.unwrap_or(!uses_tls);
        let offers_auth = !self.accounts.is_empty();
        let require_auth = self.require_auth.unwrap_or(offers_auth);

        let mut session_builder = SessionBuilder::new(self.hostname.clone());
        if self.starttls && !self.implicit_tls {
            session_builder.enable_start_tls();
        }
        if offers_auth {
            session_builder.enable_auth(AuthMechanism::Plain).enable_auth(AuthMechanism::Login);
            if plaintext_auth {
                session_builder.insecure_enable_plaintext_auth();
            }
        }
        let mut limits = self.limits;
        if let Some(max) = self.max_message_size {
            // Keep reading oversize messages to their end, but never buffer more than the cap.
            limits.max_message_size = limits.max_message_size.min(max.saturating_add(1));
        }
        let store = MessageStore::default();
        let config = Arc::new(FakeConfig {
            session_builder,
            implicit_tls: self.implicit_tls,
            tls_config,
            accounts: self.accounts,
            anonymous_token: (!require_auth && offers_auth).then(anonymous_token),
            max_message_size: self.max_message_size,
            rejected_recipients: self.rejected_recipients,
            limits,
            store: store.clone(),
        });
        let host =
            ServerHost::start("fake-smtp", self.bind, 1, move |tcp, peer| serve_connection(tcp, peer, config.clone()))?;
        Ok(FakeSmtpServer { host, certificates, store })
    }
}

/// A fake SMTP server on an ephemeral loopback port, capturing every accepted message.
///
/// Dropping it (or calling [`shutdown`](Self::shutdown)) closes the listener and every
/// connection before returning, so the port is free again.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), mailroom_testkit::KitError> {
/// use mailroom_testkit::FakeSmtpServer;
///
/// let server = FakeSmtpServer::builder()
///     .account("erp@company.com", "app-password")
///     .reject_recipient("nobody@example.com")
///     .max_message_size(10 * 1024 * 1024)
///     .start()
///     .await?;
/// let (addr, ca_pem) = (server.addr(), server.ca_pem()); // point the client here, trust the CA
/// assert!(addr.ip().is_loopback() && ca_pem.contains("BEGIN CERTIFICATE"));
/// // … send with the driver under test, then:
/// // let messages = server.wait_for_messages(1, std::time::Duration::from_secs(5)).await?;
/// // assert_eq!(messages[0].parsed().subject.as_deref(), Some("Invoice overdue"));
/// assert!(server.messages().is_empty());
/// server.shutdown();
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct FakeSmtpServer {
    host: ServerHost,
    certificates: TestCertificates,
    store: MessageStore,
}

impl FakeSmtpServer {
    /// Starts configuring a server (STARTTLS on, no AUTH, no limits beyond memory bounds).
    pub fn builder() -> FakeSmtpServerBuilder {
        FakeSmtpServerBuilder::default()
    }

    /// The address the server listens on (loopback, ephemeral port).
    pub fn addr(&self) -> SocketAddr {
        self.host.addr()
    }

    /// The CA that signed the server's certificate, PEM-encoded, for clients to trust.
    pub fn ca_pem(&self) -> &str {
        self.certificates.ca_pem()
    }

    /// The generated certificates (e.g. for [`TestCertificates::client_config`]).
    pub fn certificates(&self) -> &TestCertificates {
        &self.certificates
    }

    /// Every message accepted so far, in order of acceptance.
    pub fn messages(&self) -> Vec<CapturedMessage> {
        self.store.snapshot()
    }

    /// Waits until at least `count` messages were accepted, at most `timeout`.
    pub async fn wait_for_messages(&self, count: usize, timeout: Duration) -> Result<Vec<CapturedMessage>, KitError> {
        self.store.wait_for(count, timeout).await
    }

    /// Stops accepting, closes every connection and releases the port before returning.
    pub fn shutdown(mut self) {
        self.host.shutdown();
    }
}

struct FakeConfig {
    session_builder: SessionBuilder,
    implicit_tls: bool,
    tls_config: Arc<ServerConfig>,
    accounts: Vec<(String, String)>,
    /// Set when AUTH is optional: the loop authenticates silently with it on the client's behalf,
    /// because mailin itself always requires AUTH once mechanisms are enabled.
    anonymous_token: Option<String>,
    max_message_size: Option<usize>,
    rejected_recipients: HashSet<String>,
    limits: Limits,
    store: MessageStore,
}

const ANONYMOUS_USER: &str = "mailroom-testkit-anonymous";

fn anonymous_token() -> String {
    // Unguessable enough for a test server: clients must not be able to log in as "anonymous".
    let state = RandomState::new();
    format!("{:016x}{:016x}", state.hash_one(1u8), RandomState::new().hash_one(2u8))
}

#[derive(Default)]
struct ConnectionState {
    envelope_from: String,
    recipients: Vec<String>,
    data: Vec<u8>,
    data_size: usize,
    authenticated_as: Option<String>,
    anonymous: bool,
    over_tls: bool,
    /// A reply the loop sends instead of mailin's: mailin keeps a session in its DATA state
    /// after a negative end-of-data reply, so refusals there are reported as OK to mailin.
    reply_override: Option<Reply>,
}

struct FakeHandler {
    config: Arc<FakeConfig>,
    state: Arc<Mutex<ConnectionState>>,
}

impl FakeHandler {
    fn state(&self) -> std::sync::MutexGuard<'_, ConnectionState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn check_credentials(&mut self, username: &str, password: &str) -> Response {
        if let Some(token) = &self.config.anonymous_token
            && username == ANONYMOUS_USER
            && password == token
        {
            self.state().anonymous = true;
            return mailin::response::AUTH_OK;
        }
        let valid = self.config.accounts.iter().any(|(user, pass)| user == username && pass == password);
        if valid {
            self.state().authenticated_as = Some(username.to_owned());
            Response::custom(235, "2.7.0 Authentication successful".to_owned())
        } else {
            Response::custom(535, "5.7.8 Authentication credentials invalid".to_owned())
        }
    }
}

impl Handler for FakeHandler {
    fn mail(&mut self, _ip: IpAddr, _domain: &str, from: &str) -> Response {
        let mut state = self.state();
        state.envelope_from = from.to_owned();
        state.recipients.clear();
        Response::custom(250, "2.1.0 OK".to_owned())
    }

    fn rcpt(&mut self, to: &str) -> Response {
        if self.config.rejected_recipients.contains(&to.to_ascii_lowercase()) {
            return Response::custom(550, format!("5.1.1 <{to}>: Recipient address rejected: User unknown"));
        }
        self.state().recipients.push(to.to_owned());
        Response::custom(250, "2.1.5 OK".to_owned())
    }

    fn data_start(&mut self, _domain: &str, _from: &str, _is8bit: bool, _to: &[String]) -> Response {
        let mut state = self.state();
        state.data.clear();
        state.data_size = 0;
        mailin::response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let memory_cap = self.config.limits.max_message_size;
        let mut state = self.state();
        state.data_size = state.data_size.saturating_add(buf.len());
        if state.data_size <= memory_cap {
            state.data.extend_from_slice(buf);
        }
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let mut state = self.state();
        let limit = self.config.max_message_size.unwrap_or(self.config.limits.max_message_size);
        if state.data_size > limit {
            state.data = Vec::new();
            state.reply_override = Some(Reply::line(552, "5.3.4 Message size exceeds fixed maximum message size"));
            return mailin::response::OK;
        }
        let message = CapturedMessage {
            envelope_from: state.envelope_from.clone(),
            recipients: std::mem::take(&mut state.recipients),
            raw: std::mem::take(&mut state.data),
            authenticated_as: state.authenticated_as.clone(),
            over_tls: state.over_tls,
        };
        drop(state);
        self.config.store.push(message);
        Response::custom(250, "2.0.0 OK: queued".to_owned())
    }

    fn auth_plain(&mut self, _authz: &str, authentication_id: &str, password: &str) -> Response {
        self.check_credentials(authentication_id, password)
    }

    fn auth_login(&mut self, username: &str, password: &str) -> Response {
        self.check_credentials(username, password)
    }
}

fn is_mail_command(line: &[u8]) -> bool {
    line.len() >= 5 && line[..5].eq_ignore_ascii_case(b"MAIL ")
}

async fn serve_connection(tcp: TcpStream, peer: SocketAddr, config: Arc<FakeConfig>) {
    let limits = config.limits;
    let io = if config.implicit_tls {
        match accept_tls(tcp, config.tls_config.clone(), limits.idle_timeout).await {
            Ok(tls) => Io::Tls(Box::new(tls)),
            Err(error) => {
                tracing::debug!(%peer, %error, "implicit TLS handshake failed");
                return;
            }
        }
    } else {
        Io::Plain(tcp)
    };
    let mut stream = SmtpStream::new(io, limits);
    let state = Arc::new(Mutex::new(ConnectionState { over_tls: stream.is_tls(), ..ConnectionState::default() }));
    let handler = FakeHandler { config: config.clone(), state: state.clone() };
    let mut session = config.session_builder.build(peer.ip(), handler);
    if stream.is_tls() {
        session.tls_active();
    }
    queue_response(&mut stream, &session.greeting());
    loop {
        let response = match stream.read_line().await {
            Ok(line) => {
                let wants_anonymous = {
                    let state = state.lock().unwrap_or_else(|e| e.into_inner());
                    config.anonymous_token.is_some()
                        && state.authenticated_as.is_none()
                        && !state.anonymous
                        && is_mail_command(line)
                };
                if let (true, Some(token)) = (wants_anonymous, &config.anonymous_token) {
                    silent_login(&mut session, ANONYMOUS_USER, token);
                }
                let response = session.process(line);
                if is_rset_command(line) {
                    // mailin forgets the login on RSET (RFC 5321 §4.1.1.5 keeps it): log the
                    // client back in as whoever it was, so a pooled connection stays usable.
                    let login = {
                        let state = state.lock().unwrap_or_else(|e| e.into_inner());
                        match (&state.authenticated_as, state.anonymous, &config.anonymous_token) {
                            (Some(user), _, _) => config.accounts.iter().find(|(u, _)| u == user).cloned(),
                            (None, true, Some(token)) => Some((ANONYMOUS_USER.to_owned(), token.clone())),
                            _ => None,
                        }
                    };
                    if let Some((user, password)) = login {
                        silent_login(&mut session, &user, &password);
                    }
                }
                response
            }
            Err(ReadError::LineTooLong) => {
                stream.queue(b"500 5.5.2 Line too long\r\n");
                stream.close().await;
                return;
            }
            Err(ReadError::Closed | ReadError::Idle | ReadError::Io(_)) => return,
        };
        let replacement = state.lock().unwrap_or_else(|e| e.into_inner()).reply_override.take();
        match replacement {
            Some(reply) => stream.queue(reply.render().as_bytes()),
            None => queue_response(&mut stream, &response),
        }
        match response.action {
            Action::Reply | Action::NoReply => {}
            Action::Close => {
                stream.close().await;
                return;
            }
            Action::UpgradeTls => {
                if let Err(error) = stream.start_tls(config.tls_config.clone()).await {
                    tracing::debug!(%peer, %error, "STARTTLS handshake failed");
                    return;
                }
                state.lock().unwrap_or_else(|e| e.into_inner()).over_tls = true;
                session.tls_active();
            }
        }
    }
}

fn is_rset_command(line: &[u8]) -> bool {
    line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"RSET")
}

/// Feeds mailin an AUTH PLAIN the client never sent; its reply goes nowhere.
fn silent_login(session: &mut mailin::Session<FakeHandler>, user: &str, password: &str) {
    let credentials = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
    let _ = session.process(format!("AUTH PLAIN {credentials}\r\n").as_bytes());
}

fn queue_response(stream: &mut SmtpStream, response: &Response) {
    let mut bytes = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = response.write_to(&mut bytes);
    stream.queue(&bytes);
}
