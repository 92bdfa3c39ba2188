//! The SMTP driver against the testkit's real servers on loopback: conformance suite, pool behaviour, XOAUTH2 refresh, redaction, deadlines and the probe.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use mailroom_core::conformance::{ConformanceHarness, ReceivedMessage, run_suite};
use mailroom_core::{
    AccessToken, ErrorKind, Mailbox, MessageDraft, Secret, SendError, SmtpConfig, TlsMode, TokenSource, Transport,
};
use mailroom_smtp::{Resolver, SmtpTransport};
use mailroom_testkit::{FakeSmtpServer, Fault, Limits, ListenerTls, Persona, ScriptedSmtpServer};

const USER: &str = "erp@company.com";
const PASSWORD: &str = "sentinel-password-5be1";

fn sender() -> Mailbox {
    "Company ERP <erp@company.com>".parse().unwrap()
}

fn config(port: u16, tls: TlsMode, ca_file: Option<&std::path::Path>) -> SmtpConfig {
    let config = SmtpConfig::new("localhost", port)
        .with_tls(tls)
        .with_login(USER, Secret::new(PASSWORD))
        .with_timeout(Duration::from_secs(3));
    match ca_file {
        Some(path) => config.with_ca_file(path),
        None => config,
    }
}

/// A config for `port` that trusts `ca_pem` (written to a temporary file, kept alive by the guard).
fn trusting(port: u16, tls: TlsMode, ca_pem: &str) -> (SmtpConfig, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, ca_pem).unwrap();
    (config(port, tls, Some(&path)), dir)
}

fn message(subject: &str) -> mailroom_core::OutgoingMessage {
    MessageDraft::new(sender()).to("ada@example.com".parse().unwrap()).subject(subject).text("hello").build().unwrap()
}

struct Harness {
    server: FakeSmtpServer,
    transport: Arc<SmtpTransport>,
}

#[async_trait]
impl ConformanceHarness for Harness {
    fn transport(&self) -> Arc<dyn Transport> {
        self.transport.clone()
    }
    fn sender(&self) -> Mailbox {
        sender()
    }
    async fn received(&self) -> Vec<ReceivedMessage> {
        self.server.messages().iter().map(ReceivedMessage::from).collect()
    }
    fn rejected_recipient(&self) -> Option<mailroom_core::Address> {
        Some("nobody@example.com".parse().unwrap())
    }
}

#[tokio::test]
async fn the_core_conformance_suite_passes_over_starttls_with_auth() {
    let server = FakeSmtpServer::builder()
        .account(USER, PASSWORD)
        .require_auth(true)
        .reject_recipient("nobody@example.com")
        .start()
        .await
        .unwrap();
    let (smtp, _ca) = trusting(server.addr().port(), TlsMode::Starttls, server.ca_pem());
    let transport = SmtpTransport::new(sender(), &smtp).unwrap();
    let harness = Harness { server, transport: Arc::new(transport) };
    let passed = run_suite(&harness).await.unwrap();
    assert_eq!(passed.len(), 6, "{passed:?}");
    assert!(harness.server.messages().iter().all(|m| m.over_tls && m.authenticated_as.as_deref() == Some(USER)));
}

#[tokio::test]
async fn the_conformance_suite_passes_over_implicit_tls() {
    let server = FakeSmtpServer::builder()
        .implicit_tls(true)
        .starttls(false)
        .account(USER, PASSWORD)
        .reject_recipient("nobody@example.com")
        .start()
        .await
        .unwrap();
    let (smtp, _ca) = trusting(server.addr().port(), TlsMode::Implicit, server.ca_pem());
    let transport = SmtpTransport::new(sender(), &smtp).unwrap();
    let harness = Harness { server, transport: Arc::new(transport) };
    run_suite(&harness).await.unwrap();
}

#[tokio::test]
async fn pooled_connections_are_reused_and_a_closed_one_is_replaced_transparently() {
    let limits = Limits { idle_timeout: Duration::from_millis(300), ..Limits::default() };
    let server = ScriptedSmtpServer::builder()
        .tls(ListenerTls::StartTls)
        .account(USER, PASSWORD)
        .limits(limits)
        .start()
        .await
        .unwrap();
    let (smtp, _ca) = trusting(server.addr().port(), TlsMode::Starttls, server.ca_pem());
    let transport = SmtpTransport::new(sender(), &smtp).unwrap();
    for n in 0..3 {
        transport.send(&message(&format!("pooled {n}"))).await.unwrap();
    }
    assert_eq!(server.transcripts().len(), 1, "three sends, one connection");
    let first_connection = &server.transcripts()[0];
    let commands: Vec<&str> = first_connection
        .client_lines()
        .into_iter()
        .filter(|l| l.starts_with("RSET") || l.starts_with("MAIL"))
        .collect();
    assert_eq!(commands.iter().filter(|c| c.starts_with("RSET")).count(), 2, "RSET between messages: {commands:?}");
    // The server hangs up on the idle connection (as real servers do with 421 after a while).
    tokio::time::sleep(Duration::from_millis(700)).await;
    transport.send(&message("after idle close")).await.unwrap();
    assert_eq!(server.messages().len(), 4);
    assert_eq!(server.transcripts().len(), 2, "the stale connection was replaced by a new one");
}

struct CountingTokens {
    calls: AtomicUsize,
}

#[async_trait]
impl TokenSource for CountingTokens {
    async fn fetch_token(&self) -> Result<AccessToken, SendError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(AccessToken {
            token: Secret::new(format!("token-{n}")),
            expires_at: Some(Instant::now() + Duration::from_secs(3600)),
        })
    }
}

#[tokio::test]
async fn a_rejected_xoauth2_token_is_refreshed_exactly_once() {
    let server = Persona::gmail_587().fault(Fault::OAuthTokenRejected).start().await.unwrap();
    let tokens = Arc::new(CountingTokens { calls: AtomicUsize::new(0) });
    let (mut smtp, _ca) = trusting(server.addr().port(), TlsMode::Starttls, server.ca_pem());
    smtp.password = None;
    let transport = SmtpTransport::builder(sender(), &smtp).xoauth2(tokens.clone()).build().unwrap();
    let error = transport.send(&message("oauth")).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::AuthFailed);
    assert_eq!(tokens.calls.load(Ordering::SeqCst), 2, "one refresh after the rejection, no more");
    let transcript = error.transcript().unwrap().to_string();
    assert!(!transcript.contains("token-0") && !transcript.contains("token-1"), "{transcript}");
}

#[tokio::test]
async fn xoauth2_succeeds_with_an_accepted_token() {
    let server = Persona::gmail_587().oauth_token(USER, "token-0").start().await.unwrap();
    let (mut smtp, _ca) = trusting(server.addr().port(), TlsMode::Starttls, server.ca_pem());
    smtp.password = None;
    let tokens = Arc::new(CountingTokens { calls: AtomicUsize::new(0) });
    let transport = SmtpTransport::builder(sender(), &smtp).xoauth2(tokens).build().unwrap();
    transport.send(&message("oauth ok")).await.unwrap();
    assert_eq!(server.messages().len(), 1);
}

#[tokio::test]
async fn credentials_never_appear_in_errors_or_transcripts() {
    let server = Persona::gmail_587().fault(Fault::BadPassword).start().await.unwrap();
    let (smtp, _ca) = trusting(server.addr().port(), TlsMode::Starttls, server.ca_pem());
    let transport = SmtpTransport::new(sender(), &smtp).unwrap();
    let error = transport.send(&message("bad password")).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::AuthFailed);
    let everything = format!(
        "{error} {error:?} {} {}",
        serde_json::to_string(&error.report()).unwrap(),
        error.transcript().unwrap()
    );
    assert!(!everything.contains(PASSWORD));
    use base64::Engine;
    let plain = base64::engine::general_purpose::STANDARD.encode(format!("\0{USER}\0{PASSWORD}"));
    assert!(!everything.contains(&plain), "the AUTH PLAIN payload leaked");
    assert!(error.transcript().unwrap().to_string().contains("C: AUTH PLAIN [redacted]"));
    assert!(error.server_reply().unwrap().text.contains("BadCredentials"), "the multi-line reply is kept whole");
}

#[tokio::test]
async fn no_password_is_sent_in_clear_text_to_a_non_loopback_name() {
    let server = ScriptedSmtpServer::builder()
        .tls(ListenerTls::None)
        .capabilities_before_tls(["AUTH PLAIN LOGIN"])
        .account(USER, PASSWORD)
        .start()
        .await
        .unwrap();
    let mut smtp = config(server.addr().port(), TlsMode::None, None);
    smtp.server = "alias.mailroom.test".into();
    let transport = SmtpTransport::builder(sender(), &smtp)
        .resolver(Resolver::only([("alias.mailroom.test", [127, 0, 0, 1].into())]))
        .build()
        .unwrap();
    let error = transport.send(&message("plaintext")).await.unwrap_err();
    assert_eq!((error.kind(), error.field()), (ErrorKind::SecureConnectionRequired, Some("web_mail.enable_ssl")));
    let client_lines: Vec<String> = server
        .transcripts()
        .iter()
        .flat_map(|t| t.client_lines().into_iter().map(str::to_owned).collect::<Vec<_>>())
        .collect();
    assert!(client_lines.iter().all(|l| !l.starts_with("AUTH")), "{client_lines:?}");
}

#[tokio::test]
async fn a_silent_server_is_bounded_by_the_deadline() {
    let server = ScriptedSmtpServer::builder().silent().start().await.unwrap();
    let mut smtp = config(server.addr().port(), TlsMode::Starttls, None);
    smtp.timeout = Duration::from_secs(1);
    let transport = SmtpTransport::new(sender(), &smtp).unwrap();
    let started = Instant::now();
    let error = transport.send(&message("silence")).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout);
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
}

#[tokio::test]
async fn diagnose_finds_the_working_tls_mode_on_the_same_port() {
    let server = Persona::gmail_465().account(USER, PASSWORD).start().await.unwrap();
    let (smtp, _ca) = trusting(server.addr().port(), TlsMode::Starttls, server.ca_pem());
    let transport = SmtpTransport::new(sender(), &smtp).unwrap();
    let report = transport.probe().await;
    assert!(!report.is_ok());
    assert_eq!(report.error.as_ref().unwrap().kind(), ErrorKind::TlsMismatch);
    let summaries: Vec<&str> = report.suggestions.iter().map(|s| s.summary.as_str()).collect();
    let expected = format!("port {} expects implicit TLS: set tls = \"implicit\"", server.addr().port());
    assert!(summaries.contains(&expected.as_str()), "{summaries:?}");
    let steps: Vec<&str> = report.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(steps, ["resolve", "connect", "greeting"]);
}

#[tokio::test]
async fn diagnose_walks_every_step_on_a_working_config() {
    let server = Persona::gmail_587().account(USER, PASSWORD).start().await.unwrap();
    let (smtp, _ca) = trusting(server.addr().port(), TlsMode::Starttls, server.ca_pem());
    let transport = SmtpTransport::new(sender(), &smtp).unwrap();
    let report = transport.probe().await;
    assert!(report.is_ok(), "{:?}", report.error);
    let steps: Vec<&str> = report.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(steps, ["resolve", "connect", "greeting", "ehlo", "starttls", "ehlo", "auth", "mail from"]);
    assert!(server.messages().is_empty(), "diagnose sends no mail");
}

#[tokio::test]
async fn close_says_quit_on_every_pooled_connection() {
    let server =
        ScriptedSmtpServer::builder().tls(ListenerTls::StartTls).account(USER, PASSWORD).start().await.unwrap();
    let (smtp, _ca) = trusting(server.addr().port(), TlsMode::Starttls, server.ca_pem());
    let transport = Arc::new(SmtpTransport::builder(sender(), &smtp).max_connections(2).build().unwrap());
    let (a, b) = (message("one"), message("two"));
    let (first, second) = tokio::join!(transport.send(&a), transport.send(&b));
    first.unwrap();
    second.unwrap();
    assert_eq!(server.transcripts().len(), 2, "two sends at once, two connections");
    let layered: Arc<dyn Transport> =
        Arc::new(mailroom_core::layers::RetryLayer::new(transport.clone(), mailroom_core::RetryPolicy::default()));
    layered.close().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    for transcript in server.transcripts() {
        assert_eq!(transcript.client_lines().last().copied(), Some("QUIT"), "{:?}", transcript.client_lines());
    }
    transport.send(&message("after close")).await.unwrap();
    assert_eq!(server.transcripts().len(), 3, "a send after close opens a new connection");
}

#[tokio::test]
async fn a_concurrency_limit_of_one_serialises_sends_onto_one_connection() {
    let server =
        ScriptedSmtpServer::builder().tls(ListenerTls::StartTls).account(USER, PASSWORD).start().await.unwrap();
    let (smtp, _ca) = trusting(server.addr().port(), TlsMode::Starttls, server.ca_pem());
    let transport = Arc::new(SmtpTransport::builder(sender(), &smtp).max_connections(4).build().unwrap());
    let limited = mailroom_core::layers::ConcurrencyLimit::new(transport, 1);
    let m: Vec<_> = (0..4).map(|n| message(&format!("limited {n}"))).collect();
    let outcomes = tokio::join!(limited.send(&m[0]), limited.send(&m[1]), limited.send(&m[2]), limited.send(&m[3]));
    for outcome in [outcomes.0, outcomes.1, outcomes.2, outcomes.3] {
        outcome.unwrap();
    }
    assert_eq!(server.transcripts().len(), 1, "one send at a time reuses one connection");
    assert_eq!(server.messages().len(), 4);
}
