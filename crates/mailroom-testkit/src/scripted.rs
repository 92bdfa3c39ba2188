//! `ScriptedSmtpServer`: a tokio SMTP responder whose every reply, capability list and failure point is configurable.
//!
//! It covers what mailin cannot: multi-line replies, a chosen greeting, capabilities that
//! differ before and after TLS, implicit TLS, XOAUTH2 error challenges, scripted refusals at
//! any step, hanging up at any step, staying silent, or answering a TLS client in plaintext.
//! Apart from what the script changes it behaves like a correct server: dot-unstuffing, RSET,
//! NOOP, QUIT, pipelined commands, BDAT, bounded reads.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use rustls::ServerConfig;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::capture::MessageStore;
use crate::conn::{Io, Limits, ReadError, SmtpStream, accept_tls};
use crate::host::ServerHost;
use crate::reply::Reply;
use crate::tls::TestCertificates;
use crate::{CapturedMessage, KitError};

/// How the listener uses TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListenerTls {
    /// Plaintext only; STARTTLS is refused.
    None,
    /// Plaintext greeting, upgrade on STARTTLS (port 587 style).
    StartTls,
    /// TLS from the first byte (port 465 style).
    Implicit,
}

/// A point in the SMTP dialogue where the server can hang up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    /// Right after accepting the TCP connection (before any TLS handshake or greeting).
    Connect,
    /// Right after sending the greeting.
    Greeting,
    /// On receiving EHLO/HELO, without replying.
    Ehlo,
    /// After the positive reply to STARTTLS, in the middle of the handshake (after the ClientHello).
    StartTls,
    /// On receiving AUTH, without replying.
    Auth,
    /// On receiving MAIL, without replying.
    Mail,
    /// On receiving the first RCPT, without replying.
    Rcpt,
    /// On receiving DATA (or the first BDAT), without replying.
    DataCommand,
    /// After the whole message body arrived, before the final reply: delivery is unknown to the client.
    MessageBody,
}

/// What the server does with a connection at all.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Behaviour {
    Smtp,
    Silent,
    Garbage(Vec<u8>),
}

/// Configures a [`ScriptedSmtpServer`]; every setting has a conventional default.
#[derive(Clone, Debug)]
pub struct ScriptedSmtpServerBuilder {
    script: Script,
    bind: SocketAddr,
}

#[derive(Clone, Debug)]
struct Script {
    hostname: String,
    greeting: Reply,
    ehlo_greeting: String,
    capabilities_before_tls: Vec<String>,
    capabilities_after_tls: Vec<String>,
    tls: ListenerTls,
    starttls_reply: Reply,
    tls_required: Option<Reply>,
    auth_required: Option<Reply>,
    accounts: Vec<(String, String)>,
    oauth_tokens: Vec<(String, String)>,
    auth_success: Reply,
    auth_failure: Reply,
    auth_reply: Option<Reply>,
    password_auth_reply: Option<Reply>,
    mechanism_replies: HashMap<String, Reply>,
    xoauth2_error_challenge: Option<String>,
    unrecognized_mechanism: Reply,
    mail_reply: Reply,
    rcpt_reply: Reply,
    rejected_recipients: HashMap<String, Reply>,
    data_reply: Reply,
    end_of_data_reply: Reply,
    quit_reply: Reply,
    hang_up_at: Option<Step>,
    behaviour: Behaviour,
    limits: Limits,
}

impl Default for ScriptedSmtpServerBuilder {
    fn default() -> Self {
        let limits = Limits::default();
        Self {
            script: Script {
                hostname: "localhost".to_owned(),
                greeting: Reply::line(220, "localhost ESMTP scripted"),
                ehlo_greeting: "localhost".to_owned(),
                capabilities_before_tls: vec![
                    "PIPELINING".to_owned(),
                    "8BITMIME".to_owned(),
                    "ENHANCEDSTATUSCODES".to_owned(),
                    "STARTTLS".to_owned(),
                ],
                capabilities_after_tls: vec![
                    "PIPELINING".to_owned(),
                    "8BITMIME".to_owned(),
                    "ENHANCEDSTATUSCODES".to_owned(),
                    "AUTH PLAIN LOGIN XOAUTH2".to_owned(),
                ],
                tls: ListenerTls::StartTls,
                starttls_reply: Reply::line(220, "2.0.0 Ready to start TLS"),
                tls_required: None,
                auth_required: None,
                accounts: Vec::new(),
                oauth_tokens: Vec::new(),
                auth_success: Reply::line(235, "2.7.0 Authentication successful"),
                auth_failure: Reply::line(535, "5.7.8 Authentication credentials invalid"),
                auth_reply: None,
                password_auth_reply: None,
                mechanism_replies: HashMap::new(),
                xoauth2_error_challenge: None,
                unrecognized_mechanism: Reply::line(504, "5.7.4 Unrecognized authentication type"),
                mail_reply: Reply::line(250, "2.1.0 OK"),
                rcpt_reply: Reply::line(250, "2.1.5 OK"),
                rejected_recipients: HashMap::new(),
                data_reply: Reply::line(354, "End data with <CR><LF>.<CR><LF>"),
                end_of_data_reply: Reply::line(250, "2.0.0 OK: queued"),
                quit_reply: Reply::line(221, "2.0.0 Bye"),
                hang_up_at: None,
                behaviour: Behaviour::Smtp,
                limits,
            },
            bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
        }
    }
}

impl ScriptedSmtpServerBuilder {
    /// The server name; also sets the default greeting and the first EHLO line.
    pub fn hostname(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.script.greeting = Reply::line(220, format!("{name} ESMTP scripted"));
        self.script.ehlo_greeting = name.clone();
        self.script.hostname = name;
        self
    }

    /// The greeting (default `220 localhost ESMTP scripted`).
    pub fn greeting(mut self, reply: Reply) -> Self {
        self.script.greeting = reply;
        self
    }

    /// The text of the first EHLO line (default: the hostname).
    pub fn ehlo_greeting(mut self, text: impl Into<String>) -> Self {
        self.script.ehlo_greeting = text.into();
        self
    }

    /// Capability lines offered in EHLO before TLS (on a plaintext listener: always).
    ///
    /// The `AUTH` line, if any, decides which mechanisms AUTH accepts at that stage.
    pub fn capabilities_before_tls<I, S>(mut self, lines: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.script.capabilities_before_tls = lines.into_iter().map(Into::into).collect();
        self
    }

    /// Capability lines offered in EHLO once TLS is up.
    pub fn capabilities_after_tls<I, S>(mut self, lines: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.script.capabilities_after_tls = lines.into_iter().map(Into::into).collect();
        self
    }

    /// Plaintext, STARTTLS (default) or implicit TLS.
    pub fn tls(mut self, tls: ListenerTls) -> Self {
        self.script.tls = tls;
        self
    }

    /// The positive reply to STARTTLS (default `220 2.0.0 Ready to start TLS`).
    pub fn starttls_reply(mut self, reply: Reply) -> Self {
        self.script.starttls_reply = reply;
        self
    }

    /// Answers AUTH and MAIL sent before TLS with this reply (e.g. `530 5.7.0 Must issue a STARTTLS command first`).
    pub fn tls_required(mut self, reply: Reply) -> Self {
        self.script.tls_required = Some(reply);
        self
    }

    /// Answers MAIL sent before a successful AUTH with this reply (default: AUTH is optional).
    pub fn auth_required(mut self, reply: Reply) -> Self {
        self.script.auth_required = Some(reply);
        self
    }

    /// An account accepted by AUTH PLAIN and AUTH LOGIN.
    pub fn account(mut self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.script.accounts.push((username.into(), password.into()));
        self
    }

    /// A bearer token accepted by AUTH XOAUTH2 for this user.
    pub fn oauth_token(mut self, username: impl Into<String>, token: impl Into<String>) -> Self {
        self.script.oauth_tokens.push((username.into(), token.into()));
        self
    }

    /// The reply to valid credentials (default `235 2.7.0 Authentication successful`).
    pub fn auth_success(mut self, reply: Reply) -> Self {
        self.script.auth_success = reply;
        self
    }

    /// The reply to invalid credentials (default `535 5.7.8 Authentication credentials invalid`).
    pub fn auth_failure(mut self, reply: Reply) -> Self {
        self.script.auth_failure = reply;
        self
    }

    /// Ends every AUTH exchange with this reply after reading the credentials, whatever they are.
    pub fn auth_reply(mut self, reply: Reply) -> Self {
        self.script.auth_reply = Some(reply);
        self
    }

    /// Ends every password AUTH (PLAIN, LOGIN) with this reply after reading the credentials;
    /// XOAUTH2 goes on as usual (Microsoft 365's `550 5.7.30` for basic authentication).
    pub fn password_auth_reply(mut self, reply: Reply) -> Self {
        self.script.password_auth_reply = Some(reply);
        self
    }

    /// Answers `AUTH <mechanism>` at once with this reply, before any credentials.
    pub fn mechanism_reply(mut self, mechanism: &str, reply: Reply) -> Self {
        self.script.mechanism_replies.insert(mechanism.to_ascii_uppercase(), reply);
        self
    }

    /// On a rejected XOAUTH2 token, sends `334 <challenge>` first, reads the client's (empty)
    /// line, then the failure reply — as Gmail does. `challenge` is the base64 text.
    pub fn xoauth2_error_challenge(mut self, challenge: impl Into<String>) -> Self {
        self.script.xoauth2_error_challenge = Some(challenge.into());
        self
    }

    /// The reply to a mechanism not offered in the current EHLO (default `504 5.7.4 Unrecognized authentication type`).
    pub fn unrecognized_mechanism(mut self, reply: Reply) -> Self {
        self.script.unrecognized_mechanism = reply;
        self
    }

    /// The reply to a well-formed MAIL (default `250 2.1.0 OK`); a negative one refuses the sender.
    pub fn mail_reply(mut self, reply: Reply) -> Self {
        self.script.mail_reply = reply;
        self
    }

    /// The reply to a well-formed RCPT (default `250 2.1.5 OK`).
    pub fn rcpt_reply(mut self, reply: Reply) -> Self {
        self.script.rcpt_reply = reply;
        self
    }

    /// Refuses this recipient at RCPT with `reply`.
    pub fn reject_recipient(mut self, address: impl Into<String>, reply: Reply) -> Self {
        self.script.rejected_recipients.insert(address.into().to_ascii_lowercase(), reply);
        self
    }

    /// The reply to DATA (default 354); anything but 354 refuses the data.
    pub fn data_reply(mut self, reply: Reply) -> Self {
        self.script.data_reply = reply;
        self
    }

    /// The reply after the message body (default `250 2.0.0 OK: queued`); only positive ones capture the message.
    pub fn end_of_data_reply(mut self, reply: Reply) -> Self {
        self.script.end_of_data_reply = reply;
        self
    }

    /// The reply to QUIT (default `221 2.0.0 Bye`).
    pub fn quit_reply(mut self, reply: Reply) -> Self {
        self.script.quit_reply = reply;
        self
    }

    /// Hangs up at `step` on every connection (see [`Step`] for exactly when).
    pub fn hang_up_at(mut self, step: Step) -> Self {
        self.script.hang_up_at = Some(step);
        self
    }

    /// Accepts connections and never sends a byte (reads and discards until the client leaves or the idle timeout).
    pub fn silent(mut self) -> Self {
        self.script.behaviour = Behaviour::Silent;
        self
    }

    /// Sends these bytes on connect, then reads and discards — e.g. a plaintext greeting where
    /// the client expects a TLS ServerHello, or random noise.
    pub fn garbage(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.script.behaviour = Behaviour::Garbage(bytes.into());
        self
    }

    /// Line length, message size and idle bounds (message size also refuses `SIZE=` above it).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.script.limits = limits;
        self
    }

    /// Listens on `::1` instead of `127.0.0.1`.
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

    /// Generates certificates, binds an ephemeral loopback port and serves on a dedicated thread.
    pub async fn start(self) -> Result<ScriptedSmtpServer, KitError> {
        let certificates = TestCertificates::generate()?;
        let tls_config = certificates.server_config()?;
        let store = MessageStore::default();
        let transcripts = TranscriptStore::default();
        let shared = Arc::new(Shared {
            script: self.script,
            tls_config,
            store: store.clone(),
            transcripts: transcripts.clone(),
        });
        let host = ServerHost::start("scripted-smtp", self.bind, 1, move |tcp, peer| {
            serve_connection(tcp, peer, shared.clone())
        })?;
        Ok(ScriptedSmtpServer { host, certificates, store, transcripts })
    }
}

/// A scripted SMTP server on an ephemeral loopback port.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), mailroom_testkit::KitError> {
/// use mailroom_testkit::{Reply, ScriptedSmtpServer, Step};
///
/// let server = ScriptedSmtpServer::builder()
///     .auth_reply(Reply::new(535, [
///         "5.7.8 Username and Password not accepted. For more information, go to",
///         "5.7.8  https://support.google.com/mail/?p=BadCredentials x - gsmtp",
///     ]))
///     .hang_up_at(Step::MessageBody)
///     .start()
///     .await?;
/// // Point the client at server.addr(), trusting server.ca_pem(); afterwards inspect
/// // server.transcripts() to see exactly what was said on each connection.
/// assert!(server.transcripts().is_empty());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ScriptedSmtpServer {
    host: ServerHost,
    certificates: TestCertificates,
    store: MessageStore,
    transcripts: TranscriptStore,
}

impl ScriptedSmtpServer {
    /// Starts a script with conventional defaults (STARTTLS, AUTH optional, everything accepted).
    pub fn builder() -> ScriptedSmtpServerBuilder {
        ScriptedSmtpServerBuilder::default()
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.host.addr()
    }

    /// The CA that signed the server's certificate, PEM-encoded.
    pub fn ca_pem(&self) -> &str {
        self.certificates.ca_pem()
    }

    /// The generated certificates (e.g. for [`TestCertificates::client_config`]).
    pub fn certificates(&self) -> &TestCertificates {
        &self.certificates
    }

    /// Every message accepted so far.
    pub fn messages(&self) -> Vec<CapturedMessage> {
        self.store.snapshot()
    }

    /// Waits until at least `count` messages were accepted, at most `timeout`.
    pub async fn wait_for_messages(&self, count: usize, timeout: Duration) -> Result<Vec<CapturedMessage>, KitError> {
        self.store.wait_for(count, timeout).await
    }

    /// The transcript of every connection so far, in order of arrival.
    pub fn transcripts(&self) -> Vec<ConnectionTranscript> {
        self.transcripts.snapshot()
    }

    /// Waits until at least `count` connections have *ended*, at most `timeout`, and returns all transcripts.
    pub async fn wait_for_closed_connections(
        &self,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<ConnectionTranscript>, KitError> {
        self.transcripts.wait_for_closed(count, timeout).await
    }

    /// Stops accepting, closes every connection and releases the port before returning.
    pub fn shutdown(mut self) {
        self.host.shutdown();
    }
}

/// One line of a connection transcript.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TranscriptEntry {
    /// A line the client sent (CRLF removed; credentials redacted).
    Client(String),
    /// A reply the server sent (all its lines, CRLF-separated, final CRLF removed).
    Server(String),
    /// Something that happened: TLS established, hang-up, idle timeout, message accepted…
    Event(String),
}

/// What was said on one connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionTranscript {
    /// The client's address.
    pub peer: SocketAddr,
    /// Everything in order.
    pub entries: Vec<TranscriptEntry>,
    /// Whether the connection has ended.
    pub closed: bool,
}

impl ConnectionTranscript {
    /// The client's lines, in order.
    pub fn client_lines(&self) -> Vec<&str> {
        self.entries
            .iter()
            .filter_map(|entry| match entry {
                TranscriptEntry::Client(line) => Some(line.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The server's replies, in order.
    pub fn server_replies(&self) -> Vec<&str> {
        self.entries
            .iter()
            .filter_map(|entry| match entry {
                TranscriptEntry::Server(reply) => Some(reply.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The events, in order.
    pub fn events(&self) -> Vec<&str> {
        self.entries
            .iter()
            .filter_map(|entry| match entry {
                TranscriptEntry::Event(event) => Some(event.as_str()),
                _ => None,
            })
            .collect()
    }
}

#[derive(Clone, Debug)]
struct TranscriptStore {
    connections: Arc<Mutex<Vec<Arc<Mutex<ConnectionTranscript>>>>>,
    closed: Arc<watch::Sender<usize>>,
}

impl Default for TranscriptStore {
    fn default() -> Self {
        Self { connections: Arc::default(), closed: Arc::new(watch::Sender::new(0)) }
    }
}

impl TranscriptStore {
    fn open(&self, peer: SocketAddr) -> Arc<Mutex<ConnectionTranscript>> {
        let transcript = Arc::new(Mutex::new(ConnectionTranscript {
            peer,
            entries: vec![TranscriptEntry::Event("connected".to_owned())],
            closed: false,
        }));
        self.connections.lock().unwrap_or_else(|e| e.into_inner()).push(transcript.clone());
        transcript
    }

    fn snapshot(&self) -> Vec<ConnectionTranscript> {
        self.connections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|t| t.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .collect()
    }

    fn mark_closed(&self, transcript: &Mutex<ConnectionTranscript>) {
        transcript.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
        let closed = self.snapshot().iter().filter(|t| t.closed).count();
        self.closed.send_replace(closed);
    }

    async fn wait_for_closed(&self, count: usize, timeout: Duration) -> Result<Vec<ConnectionTranscript>, KitError> {
        let mut receiver = self.closed.subscribe();
        match tokio::time::timeout(timeout, receiver.wait_for(|n| *n >= count)).await {
            Ok(Ok(_)) => Ok(self.snapshot()),
            Ok(Err(_)) | Err(_) => Err(KitError::Timeout {
                waited_for: format!("{count} closed connection(s)"),
                after: timeout,
                got: format!("{} closed", *self.closed.borrow()),
            }),
        }
    }
}

struct Shared {
    script: Script,
    tls_config: Arc<ServerConfig>,
    store: MessageStore,
    transcripts: TranscriptStore,
}

/// Marks the transcript closed however the connection task ends (including abort at shutdown).
struct CloseGuard {
    shared: Arc<Shared>,
    transcript: Arc<Mutex<ConnectionTranscript>>,
}

impl Drop for CloseGuard {
    fn drop(&mut self) {
        self.shared.transcripts.mark_closed(&self.transcript);
    }
}

async fn serve_connection(tcp: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let transcript = shared.transcripts.open(peer);
    let _guard = CloseGuard { shared: shared.clone(), transcript: transcript.clone() };
    let note = |text: String| {
        transcript.lock().unwrap_or_else(|e| e.into_inner()).entries.push(TranscriptEntry::Event(text));
    };
    let script = &shared.script;
    if script.hang_up_at == Some(Step::Connect) {
        note("hung up at Connect".to_owned());
        return;
    }
    match &script.behaviour {
        Behaviour::Smtp => {}
        Behaviour::Silent => {
            note("silent".to_owned());
            let outcome = discard_until_closed(tcp, script.limits.idle_timeout).await;
            note(outcome.to_owned());
            return;
        }
        Behaviour::Garbage(bytes) => {
            use tokio::io::AsyncWriteExt;
            let mut tcp = tcp;
            let _ = tcp.write_all(bytes).await;
            note(format!("sent {} garbage bytes", bytes.len()));
            let outcome = discard_until_closed(tcp, script.limits.idle_timeout).await;
            note(outcome.to_owned());
            return;
        }
    }
    let io = if script.tls == ListenerTls::Implicit {
        match accept_tls(tcp, shared.tls_config.clone(), script.limits.idle_timeout).await {
            Ok(tls) => {
                note("TLS established".to_owned());
                Io::Tls(Box::new(tls))
            }
            Err(error) => {
                note(format!("TLS handshake failed: {error}"));
                return;
            }
        }
    } else {
        Io::Plain(tcp)
    };
    let mut session = Session {
        shared: shared.clone(),
        stream: SmtpStream::new(io, script.limits),
        transcript: transcript.clone(),
        greeted: false,
        authenticated_as: None,
        envelope_from: None,
        recipients: Vec::new(),
        chunks: Vec::new(),
    };
    let end = session.run().await;
    session.event(end.describe());
    match end {
        End::HangUp(_) => session.stream.abort(),
        End::Quit | End::LineTooLong => session.stream.close().await,
        End::ClientGone | End::Idle | End::Failed(_) => {}
    }
}

async fn discard_until_closed(mut tcp: TcpStream, idle: Duration) -> &'static str {
    let mut buffer = [0u8; 4096];
    loop {
        match tokio::time::timeout(idle, tcp.read(&mut buffer)).await {
            Err(_) => return "idle timeout",
            Ok(Ok(0)) | Ok(Err(_)) => return "closed by client",
            Ok(Ok(_)) => {}
        }
    }
}

/// How a session ended.
enum End {
    HangUp(Step),
    Quit,
    LineTooLong,
    ClientGone,
    Idle,
    Failed(String),
}

impl End {
    fn describe(&self) -> String {
        match self {
            End::HangUp(step) => format!("hung up at {step:?}"),
            End::Quit => "closed after QUIT".to_owned(),
            End::LineTooLong => "closed: line too long".to_owned(),
            End::ClientGone => "closed by client".to_owned(),
            End::Idle => "idle timeout".to_owned(),
            End::Failed(error) => format!("failed: {error}"),
        }
    }
}

impl From<ReadError> for End {
    fn from(error: ReadError) -> Self {
        match error {
            ReadError::Closed => End::ClientGone,
            ReadError::Idle => End::Idle,
            ReadError::LineTooLong => End::LineTooLong,
            ReadError::Io(error) => End::Failed(error.to_string()),
        }
    }
}

struct Session {
    shared: Arc<Shared>,
    stream: SmtpStream,
    transcript: Arc<Mutex<ConnectionTranscript>>,
    greeted: bool,
    authenticated_as: Option<String>,
    envelope_from: Option<String>,
    recipients: Vec<String>,
    /// BDAT chunks received so far for the current message.
    chunks: Vec<u8>,
}

/// Credentials as a mechanism delivered them.
enum Credentials {
    Password { username: String, password: String },
    Bearer { username: String, token: String },
    Unsupported,
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(text.trim()).ok()
}

fn parse_path<'a>(args: &'a str, keyword: &str) -> Option<(&'a str, &'a str)> {
    let rest = args.trim_start();
    if rest.len() < keyword.len() || !rest[..keyword.len()].eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = rest[keyword.len()..].trim_start();
    let rest = rest.strip_prefix('<')?;
    let close = rest.find('>')?;
    Some((&rest[..close], rest[close + 1..].trim()))
}

impl Session {
    fn script(&self) -> &Script {
        &self.shared.script
    }

    fn record(&self, entry: TranscriptEntry) {
        self.transcript.lock().unwrap_or_else(|e| e.into_inner()).entries.push(entry);
    }

    fn event(&self, text: impl Into<String>) {
        self.record(TranscriptEntry::Event(text.into()));
    }

    fn reply(&mut self, reply: &Reply) {
        let rendered = reply.render();
        self.stream.queue(rendered.as_bytes());
        self.record(TranscriptEntry::Server(rendered.trim_end_matches("\r\n").to_owned()));
    }

    fn reply_line(&mut self, code: u16, text: &str) {
        self.reply(&Reply::line(code, text));
    }

    /// Fills `{user}` (the authenticated user) and `{sender}` (the envelope sender) into a reply,
    /// as O365's SendAsDenied names both.
    fn personalize(&self, reply: &Reply, sender: &str) -> Reply {
        let user = self.authenticated_as.as_deref().unwrap_or("anonymous");
        Reply {
            code: reply.code,
            lines: reply.lines.iter().map(|line| line.replace("{user}", user).replace("{sender}", sender)).collect(),
        }
    }

    fn hangs_up_at(&self, step: Step) -> bool {
        self.script().hang_up_at == Some(step)
    }

    fn capabilities(&self) -> &[String] {
        if self.stream.is_tls() {
            &self.script().capabilities_after_tls
        } else {
            &self.script().capabilities_before_tls
        }
    }

    fn offered_mechanisms(&self) -> Vec<String> {
        self.capabilities()
            .iter()
            .find_map(|line| {
                let upper = line.to_ascii_uppercase();
                upper
                    .strip_prefix("AUTH ")
                    .or_else(|| upper.strip_prefix("AUTH="))
                    .map(|list| list.split_whitespace().map(str::to_owned).collect())
            })
            .unwrap_or_default()
    }

    fn reset_transaction(&mut self) {
        self.envelope_from = None;
        self.recipients.clear();
        self.chunks.clear();
    }

    async fn read_client_line(&mut self, redact: bool) -> Result<String, End> {
        let line = self.stream.read_line().await?;
        let text = String::from_utf8_lossy(line).trim_end_matches(['\r', '\n']).to_owned();
        let shown = if redact { "<credentials redacted>".to_owned() } else { text.clone() };
        self.record(TranscriptEntry::Client(shown));
        Ok(text)
    }

    async fn run(&mut self) -> End {
        let greeting = self.script().greeting.clone();
        self.reply(&greeting);
        if self.hangs_up_at(Step::Greeting) {
            let _ = self.stream.flush().await;
            return End::HangUp(Step::Greeting);
        }
        loop {
            let line = match self.stream.read_line().await {
                Ok(line) => String::from_utf8_lossy(line).trim_end_matches(['\r', '\n']).to_owned(),
                Err(ReadError::LineTooLong) => {
                    self.reply_line(500, "5.5.2 Line too long");
                    return End::LineTooLong;
                }
                Err(error) => return error.into(),
            };
            let (verb, args) = match line.split_once(' ') {
                Some((verb, args)) => (verb.to_ascii_uppercase(), args.to_owned()),
                None => (line.to_ascii_uppercase(), String::new()),
            };
            let shown = if verb == "AUTH" {
                // Keep the mechanism, never the credentials.
                let mechanism = args.split_whitespace().next().unwrap_or("");
                let initial = args.split_whitespace().nth(1).is_some();
                format!("AUTH {mechanism}{}", if initial { " <credentials redacted>" } else { "" })
            } else {
                line.clone()
            };
            self.record(TranscriptEntry::Client(shown));
            let outcome = match verb.as_str() {
                "EHLO" | "HELO" => self.ehlo(&verb, &args),
                "STARTTLS" => self.starttls().await,
                "AUTH" => self.auth(&args).await,
                "MAIL" => self.mail(&args),
                "RCPT" => self.rcpt(&args),
                "DATA" => self.data().await,
                "BDAT" => self.bdat(&args).await,
                "RSET" => {
                    self.reset_transaction();
                    self.reply_line(250, "2.0.0 OK");
                    Ok(())
                }
                "NOOP" => {
                    self.reply_line(250, "2.0.0 OK");
                    Ok(())
                }
                "VRFY" => {
                    self.reply_line(252, "2.5.0 Cannot VRFY user");
                    Ok(())
                }
                "QUIT" => {
                    let reply = self.script().quit_reply.clone();
                    self.reply(&reply);
                    return End::Quit;
                }
                "" => {
                    self.reply_line(500, "5.5.2 Empty command");
                    Ok(())
                }
                _ => {
                    self.reply_line(502, "5.5.2 Command unrecognized");
                    Ok(())
                }
            };
            if let Err(end) = outcome {
                return end;
            }
        }
    }

    fn ehlo(&mut self, verb: &str, args: &str) -> Result<(), End> {
        if self.hangs_up_at(Step::Ehlo) {
            return Err(End::HangUp(Step::Ehlo));
        }
        if args.trim().is_empty() {
            self.reply_line(501, "5.5.4 Domain name required");
            return Ok(());
        }
        self.reset_transaction();
        self.greeted = true;
        let reply = if verb == "HELO" {
            Reply::line(250, self.script().ehlo_greeting.clone())
        } else {
            let mut lines = vec![self.script().ehlo_greeting.clone()];
            lines.extend(self.capabilities().iter().cloned());
            Reply::new(250, lines)
        };
        self.reply(&reply);
        Ok(())
    }

    async fn starttls(&mut self) -> Result<(), End> {
        if self.stream.is_tls() {
            self.reply_line(503, "5.5.1 TLS already active");
            return Ok(());
        }
        if self.script().tls != ListenerTls::StartTls {
            self.reply_line(502, "5.5.1 STARTTLS not supported");
            return Ok(());
        }
        let reply = self.script().starttls_reply.clone();
        self.reply(&reply);
        if reply.code != 220 {
            return Ok(());
        }
        if self.hangs_up_at(Step::StartTls) {
            self.stream.flush().await.map_err(|e| End::Failed(e.to_string()))?;
            // Wait for the ClientHello so the hang-up lands inside the handshake.
            let _ = tokio::time::timeout(Duration::from_secs(2), self.stream.receive_any()).await;
            return Err(End::HangUp(Step::StartTls));
        }
        let config = self.shared.tls_config.clone();
        match self.stream.start_tls(config).await {
            Ok(()) => {
                self.event("TLS established");
                // RFC 3207: forget everything learnt before the handshake.
                self.greeted = false;
                self.authenticated_as = None;
                self.reset_transaction();
                Ok(())
            }
            Err(error) => Err(End::Failed(format!("TLS handshake failed: {error}"))),
        }
    }

    async fn auth(&mut self, args: &str) -> Result<(), End> {
        if self.hangs_up_at(Step::Auth) {
            return Err(End::HangUp(Step::Auth));
        }
        let mut words = args.split_whitespace();
        let mechanism = words.next().unwrap_or("").to_ascii_uppercase();
        let initial = words.next().map(str::to_owned);
        if !self.greeted {
            self.reply_line(503, "5.5.1 EHLO first");
            return Ok(());
        }
        if self.authenticated_as.is_some() {
            self.reply_line(503, "5.5.1 Already authenticated");
            return Ok(());
        }
        if !self.stream.is_tls()
            && let Some(reply) = self.script().tls_required.clone()
        {
            self.reply(&reply);
            return Ok(());
        }
        if let Some(reply) = self.script().mechanism_replies.get(&mechanism).cloned() {
            self.reply(&reply);
            return Ok(());
        }
        if !self.offered_mechanisms().contains(&mechanism) {
            let reply = self.script().unrecognized_mechanism.clone();
            self.reply(&reply);
            return Ok(());
        }
        let Some(credentials) = self.read_credentials(&mechanism, initial).await? else {
            return Ok(());
        };
        let valid_user = match &credentials {
            Credentials::Password { username, password } => {
                self.script().accounts.iter().any(|(u, p)| u == username && p == password).then(|| username.clone())
            }
            Credentials::Bearer { username, token } => {
                self.script().oauth_tokens.iter().any(|(u, t)| u == username && t == token).then(|| username.clone())
            }
            Credentials::Unsupported => None,
        };
        let password_reply = match &credentials {
            Credentials::Password { .. } => self.script().password_auth_reply.clone(),
            _ => None,
        };
        let final_reply = match (self.script().auth_reply.as_ref().or(password_reply.as_ref()), &valid_user) {
            (Some(scripted), _) => scripted.clone(),
            (None, Some(_)) => self.script().auth_success.clone(),
            (None, None) => self.script().auth_failure.clone(),
        };
        let challenge = self.script().xoauth2_error_challenge.clone();
        if let (false, "XOAUTH2", Some(challenge)) = (final_reply.is_positive(), mechanism.as_str(), challenge) {
            self.reply_line(334, &challenge);
            self.read_client_line(false).await?;
        }
        if final_reply.is_positive() {
            // A scripted success logs the client in as whoever it claimed to be.
            let claimed = match credentials {
                Credentials::Password { username, .. } | Credentials::Bearer { username, .. } => Some(username),
                Credentials::Unsupported => None,
            };
            self.authenticated_as = valid_user.or(claimed);
        }
        self.reply(&final_reply);
        Ok(())
    }

    /// Runs the mechanism's exchange; `None` when it was cancelled or malformed (already answered).
    async fn read_credentials(&mut self, mechanism: &str, initial: Option<String>) -> Result<Option<Credentials>, End> {
        let mut responses = Vec::new();
        let prompts: &[&str] = match mechanism {
            "LOGIN" => &["VXNlcm5hbWU6", "UGFzc3dvcmQ6"],
            _ => &[""],
        };
        if let Some(initial) = initial {
            // `=` is the empty initial response (RFC 4954).
            responses.push(if initial == "=" { String::new() } else { initial });
        }
        while responses.len() < prompts.len() {
            let prompt = prompts[responses.len()];
            self.reply(&Reply::line(334, prompt));
            let line = self.read_client_line(true).await?;
            if line.trim() == "*" {
                self.reply_line(501, "5.7.0 Authentication cancelled");
                return Ok(None);
            }
            responses.push(line);
        }
        let mut decoded = Vec::new();
        for response in &responses {
            match decode_base64(response) {
                Some(bytes) => decoded.push(String::from_utf8_lossy(&bytes).into_owned()),
                None => {
                    self.reply_line(501, "5.5.2 Cannot decode base64 response");
                    return Ok(None);
                }
            }
        }
        let credentials = match mechanism {
            "PLAIN" => {
                let mut parts = decoded[0].split('\0');
                let _authorization = parts.next();
                match (parts.next(), parts.next()) {
                    (Some(username), Some(password)) => {
                        Credentials::Password { username: username.to_owned(), password: password.to_owned() }
                    }
                    _ => Credentials::Unsupported,
                }
            }
            "LOGIN" => Credentials::Password { username: decoded[0].clone(), password: decoded[1].clone() },
            "XOAUTH2" => {
                let mut username = None;
                let mut token = None;
                for field in decoded[0].split('\u{1}') {
                    if let Some(user) = field.strip_prefix("user=") {
                        username = Some(user.to_owned());
                    } else if let Some(auth) = field.strip_prefix("auth=") {
                        token =
                            auth.strip_prefix("Bearer ").or_else(|| auth.strip_prefix("bearer ")).map(str::to_owned);
                    }
                }
                match (username, token) {
                    (Some(username), Some(token)) => Credentials::Bearer { username, token },
                    _ => Credentials::Unsupported,
                }
            }
            _ => Credentials::Unsupported,
        };
        Ok(Some(credentials))
    }

    fn mail(&mut self, args: &str) -> Result<(), End> {
        if self.hangs_up_at(Step::Mail) {
            return Err(End::HangUp(Step::Mail));
        }
        if !self.greeted {
            self.reply_line(503, "5.5.1 EHLO/HELO first");
            return Ok(());
        }
        if !self.stream.is_tls()
            && let Some(reply) = self.script().tls_required.clone()
        {
            self.reply(&reply);
            return Ok(());
        }
        if self.authenticated_as.is_none()
            && let Some(reply) = self.script().auth_required.clone()
        {
            self.reply(&reply);
            return Ok(());
        }
        if self.envelope_from.is_some() {
            self.reply_line(503, "5.5.1 Sender already specified");
            return Ok(());
        }
        let Some((address, parameters)) = parse_path(args, "FROM:") else {
            self.reply_line(501, "5.5.4 Syntax: MAIL FROM:<address>");
            return Ok(());
        };
        let declared_size = parameters.split_whitespace().find_map(|p| {
            let (key, value) = p.split_once('=')?;
            key.eq_ignore_ascii_case("SIZE").then(|| value.parse::<usize>().ok()).flatten()
        });
        if declared_size.is_some_and(|size| size > self.stream.limits().max_message_size) {
            self.reply_line(552, "5.3.4 Message size exceeds fixed maximum message size");
            return Ok(());
        }
        let address = address.to_owned();
        let reply = self.personalize(&self.script().mail_reply, &address);
        self.reply(&reply);
        if reply.is_positive() {
            self.envelope_from = Some(address);
            self.recipients.clear();
        }
        Ok(())
    }

    fn rcpt(&mut self, args: &str) -> Result<(), End> {
        if self.hangs_up_at(Step::Rcpt) {
            return Err(End::HangUp(Step::Rcpt));
        }
        if self.envelope_from.is_none() {
            self.reply_line(503, "5.5.1 Need MAIL before RCPT");
            return Ok(());
        }
        let Some((address, _)) = parse_path(args, "TO:") else {
            self.reply_line(501, "5.5.4 Syntax: RCPT TO:<address>");
            return Ok(());
        };
        let address = address.to_owned();
        let reply = match self.script().rejected_recipients.get(&address.to_ascii_lowercase()) {
            Some(rejection) => rejection.clone(),
            None => self.script().rcpt_reply.clone(),
        };
        self.reply(&reply);
        if reply.is_positive() {
            self.recipients.push(address);
        }
        Ok(())
    }

    fn ready_for_data(&mut self) -> bool {
        if self.envelope_from.is_none() {
            self.reply_line(503, "5.5.1 Need MAIL command");
            return false;
        }
        if self.recipients.is_empty() {
            self.reply_line(554, "5.5.1 No valid recipients");
            return false;
        }
        true
    }

    async fn data(&mut self) -> Result<(), End> {
        if self.hangs_up_at(Step::DataCommand) {
            return Err(End::HangUp(Step::DataCommand));
        }
        if !self.ready_for_data() {
            return Ok(());
        }
        let reply = self.script().data_reply.clone();
        self.reply(&reply);
        if reply.code != 354 {
            return Ok(());
        }
        let cap = self.stream.limits().max_message_size;
        let mut body = Vec::new();
        let mut size = 0usize;
        loop {
            let line = self.stream.read_line().await?;
            if line == b".\r\n" || line == b".\n" {
                break;
            }
            // Dot-unstuffing: a leading dot was doubled by the client.
            let line = line.strip_prefix(b".").unwrap_or(line);
            size = size.saturating_add(line.len());
            if size <= cap {
                body.extend_from_slice(line);
            }
        }
        self.finish_message(body, size)
    }

    async fn bdat(&mut self, args: &str) -> Result<(), End> {
        let mut words = args.split_whitespace();
        let Some(chunk) = words.next().and_then(|n| n.parse::<usize>().ok()) else {
            self.reply_line(501, "5.5.4 Syntax: BDAT <size> [LAST]");
            return Ok(());
        };
        let last = words.next().is_some_and(|w| w.eq_ignore_ascii_case("LAST"));
        if self.hangs_up_at(Step::DataCommand) && self.chunks.is_empty() {
            return Err(End::HangUp(Step::DataCommand));
        }
        let ready = self.ready_for_data();
        let cap = self.stream.limits().max_message_size;
        // The chunk must be consumed even when refused, or its bytes would be read as commands.
        let first_chunk = self.chunks.is_empty();
        let mut body = std::mem::take(&mut self.chunks);
        let mut size = body.len();
        self.stream
            .read_exact_into(chunk, |bytes| {
                size = size.saturating_add(bytes.len());
                if size <= cap {
                    body.extend_from_slice(bytes);
                }
            })
            .await?;
        self.event(format!("BDAT chunk of {chunk} bytes{}", if first_chunk { "" } else { " (continued)" }));
        if !ready {
            return Ok(());
        }
        if !last {
            self.chunks = body;
            self.reply_line(250, &format!("2.0.0 {chunk} octets received"));
            return Ok(());
        }
        self.finish_message(body, size)
    }

    fn finish_message(&mut self, body: Vec<u8>, size: usize) -> Result<(), End> {
        self.event(format!("message body: {size} bytes"));
        if self.hangs_up_at(Step::MessageBody) {
            return Err(End::HangUp(Step::MessageBody));
        }
        if size > self.stream.limits().max_message_size {
            self.reset_transaction();
            self.reply_line(552, "5.3.4 Message size exceeds fixed maximum message size");
            return Ok(());
        }
        let sender = self.envelope_from.clone().unwrap_or_default();
        let reply = self.personalize(&self.script().end_of_data_reply, &sender);
        self.reply(&reply);
        if reply.is_positive() {
            let message = CapturedMessage {
                envelope_from: self.envelope_from.clone().unwrap_or_default(),
                recipients: self.recipients.clone(),
                raw: body,
                authenticated_as: self.authenticated_as.clone(),
                over_tls: self.stream.is_tls(),
            };
            self.shared.store.push(message);
            self.event("message accepted");
        }
        self.reset_transaction();
        Ok(())
    }
}
