//! The retry layer around the real SMTP driver: throttling is retried with back-off, a permanent refusal is not.

use std::sync::Arc;
use std::time::Duration;

use mailroom::RetryLayer;
use mailroom_core::{ErrorKind, Mailbox, MessageDraft, RetryPolicy, SmtpConfig, TlsMode, Transport};
use mailroom_smtp::SmtpTransport;
use mailroom_testkit::{ListenerTls, Reply, ScriptedSmtpServer};

fn transport(port: u16) -> Arc<dyn Transport> {
    let config = SmtpConfig::new("127.0.0.1", port).with_tls(TlsMode::None).with_timeout(Duration::from_secs(3));
    Arc::new(SmtpTransport::new(sender(), &config).unwrap())
}

fn sender() -> Mailbox {
    "ERP <erp@company.com>".parse().unwrap()
}

fn mail_commands(server: &ScriptedSmtpServer) -> usize {
    server.transcripts().iter().map(|t| t.client_lines().iter().filter(|l| l.starts_with("MAIL FROM")).count()).sum()
}

const FAST: RetryPolicy = RetryPolicy {
    max_attempts: 3,
    initial_delay: Duration::from_millis(10),
    max_delay: Duration::from_millis(50),
    max_hinted_delay: Duration::from_secs(1),
    retry_connect_failures: false,
};

/// Sends one message through the retry layer to a server that answers MAIL with `mail_reply`;
/// returns the final error and how many MAIL commands the server saw.
async fn send_against(mail_reply: Reply) -> (mailroom_core::SendError, usize) {
    let server = ScriptedSmtpServer::builder().tls(ListenerTls::None).mail_reply(mail_reply).start().await.unwrap();
    let layer = RetryLayer::new(transport(server.addr().port()), FAST);
    let message =
        MessageDraft::new(sender()).to("a@example.com".parse().unwrap()).subject("s").text("t").build().unwrap();
    let error = layer.send(&message).await.unwrap_err();
    (error, mail_commands(&server))
}

#[tokio::test]
async fn throttling_is_retried_up_to_the_policy_limit() {
    let (error, attempts) = send_against(Reply::line(421, "4.7.0 Try again later, closing connection.")).await;
    assert_eq!(error.kind(), ErrorKind::RateLimited);
    assert_eq!(attempts, 3, "three attempts in all");
}

#[tokio::test]
async fn a_permanent_refusal_is_not_retried() {
    let (error, attempts) =
        send_against(Reply::line(550, "5.7.60 SMTP; Client does not have permissions to send as this sender")).await;
    assert_eq!(error.kind(), ErrorKind::SenderNotAllowed);
    assert_eq!(attempts, 1);
}
