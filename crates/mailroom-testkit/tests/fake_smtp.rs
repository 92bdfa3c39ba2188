//! FakeSmtpServer against real clients on loopback: STARTTLS, AUTH, capture and parsing, refusals, mailin's quirks, shutdown.

mod common;

use std::time::Duration;

use common::{RawClient, STEP, b64, lettre_tls_parameters, lettre_transport};
use lettre::message::{Attachment, MultiPart, SinglePart, header::ContentType};
use lettre::transport::smtp::authentication::Mechanism;
use lettre::transport::smtp::client::Tls;
use lettre::{AsyncTransport, Message};
use mailroom_core::conformance::ReceivedMessage;
use mailroom_testkit::FakeSmtpServer;

fn invoice_message() -> Message {
    Message::builder()
        .from("Company ERP <erp@company.com>".parse().unwrap())
        .to("Ada Lovelace <ada@example.com>".parse().unwrap())
        .cc("books@example.com".parse().unwrap())
        .subject("Invoice INV-1042 is overdue")
        .multipart(
            MultiPart::mixed()
                .multipart(
                    MultiPart::alternative()
                        .singlepart(SinglePart::plain("Please pay INV-1042.\n.leading dot".to_owned()))
                        .singlepart(SinglePart::html("<p>Please pay <b>INV-1042</b>.</p>".to_owned())),
                )
                .singlepart(
                    Attachment::new("INV-1042.pdf".to_owned())
                        .body(b"%PDF-1.4 fake".to_vec(), ContentType::parse("application/pdf").unwrap()),
                ),
        )
        .unwrap()
}

#[tokio::test]
async fn starttls_auth_and_a_multipart_message_are_captured_and_parsed() {
    let server = FakeSmtpServer::builder().account("erp@company.com", "app-password").start().await.unwrap();
    let transport = lettre_transport(
        server.addr(),
        Tls::Required(lettre_tls_parameters(server.ca_pem())),
        Some(("erp@company.com", "app-password")),
        Mechanism::Plain,
    );
    let response = transport.send(invoice_message()).await.unwrap();
    assert_eq!(response.code().to_string(), "250");

    let messages = server.wait_for_messages(1, STEP).await.unwrap();
    let message = &messages[0];
    assert_eq!(message.envelope_from, "erp@company.com");
    assert_eq!(message.recipients, ["ada@example.com", "books@example.com"]);
    assert_eq!(message.authenticated_as.as_deref(), Some("erp@company.com"));
    assert!(message.over_tls);

    let parsed = message.parsed();
    assert_eq!(parsed.subject.as_deref(), Some("Invoice INV-1042 is overdue"));
    assert_eq!(parsed.from[0].address, "erp@company.com");
    assert_eq!(parsed.from[0].name.as_deref(), Some("Company ERP"));
    assert_eq!(parsed.to[0].address, "ada@example.com");
    assert_eq!(parsed.cc[0].address, "books@example.com");
    assert!(parsed.header("date").is_some(), "{:?}", parsed.headers);
    assert_eq!(parsed.header("MIME-Version"), Some("1.0"));
    let text = parsed.text.unwrap();
    assert!(text.contains("Please pay INV-1042.\r\n.leading dot"), "{text:?}");
    assert!(parsed.html.unwrap().contains("<b>INV-1042</b>"));
    assert_eq!(parsed.attachments.len(), 1);
    assert_eq!(parsed.attachments[0].filename.as_deref(), Some("INV-1042.pdf"));
    assert_eq!(parsed.attachments[0].content_type, "application/pdf");
    assert_eq!(parsed.attachments[0].bytes, b"%PDF-1.4 fake");

    let received = ReceivedMessage::from(message);
    assert_eq!(received.envelope_from.as_deref(), Some("erp@company.com"));
    assert_eq!(received.bytes, message.raw);
}

#[tokio::test]
async fn auth_login_works_and_wrong_passwords_are_refused() {
    let server = FakeSmtpServer::builder().account("erp@company.com", "app-password").start().await.unwrap();
    let tls = || Tls::Required(lettre_tls_parameters(server.ca_pem()));
    let good = lettre_transport(server.addr(), tls(), Some(("erp@company.com", "app-password")), Mechanism::Login);
    good.send(invoice_message()).await.unwrap();
    let bad = lettre_transport(server.addr(), tls(), Some(("erp@company.com", "wrong")), Mechanism::Login);
    let error = bad.send(invoice_message()).await.unwrap_err();
    assert_eq!(error.status().map(|c| c.to_string()).as_deref(), Some("535"), "{error}");
    assert_eq!(server.messages().len(), 1);
}

#[tokio::test]
async fn mailin_quirks_auth_only_after_tls_and_503_for_mail_before_auth() {
    let server = FakeSmtpServer::builder().account("erp@company.com", "app-password").start().await.unwrap();
    let mut client = RawClient::connect(server.addr()).await;
    assert_eq!(client.reply().await.raw, "220 localhost ESMTP\r\n");
    let ehlo = client.command("EHLO client.example").await;
    assert!(ehlo.raw.contains("STARTTLS") && !ehlo.raw.contains("AUTH"), "{}", ehlo.raw);
    let auth = client.command(&format!("AUTH PLAIN {}", b64("\0erp@company.com\0app-password"))).await;
    assert_eq!(auth.code, 503);
    assert_eq!(client.command("STARTTLS").await.code, 220);
    let mut client = client.starttls(server.certificates()).await.unwrap();
    let ehlo = client.command("EHLO client.example").await;
    assert!(ehlo.raw.contains("AUTH PLAIN LOGIN") && !ehlo.raw.contains("STARTTLS"), "{}", ehlo.raw);
    assert_eq!(client.command("MAIL FROM:<erp@company.com>").await.raw, "503 Bad sequence of commands\r\n");
    let auth = client.command(&format!("AUTH PLAIN {}", b64("\0erp@company.com\0app-password"))).await;
    assert_eq!(auth.code, 235);
    assert_eq!(client.command("MAIL FROM:<erp@company.com>").await.code, 250);
}

#[tokio::test]
async fn rset_keeps_the_login_as_rfc_5321_says() {
    let server = FakeSmtpServer::builder().account("erp@company.com", "app-password").start().await.unwrap();
    let mut client = RawClient::connect_starttls(server.addr(), server.certificates()).await;
    let auth = client.command(&format!("AUTH PLAIN {}", b64("\0erp@company.com\0app-password"))).await;
    assert_eq!(auth.code, 235);
    assert_eq!(client.command("MAIL FROM:<erp@company.com>").await.code, 250);
    assert_eq!(client.command("RSET").await.code, 250);
    assert_eq!(client.command("MAIL FROM:<erp@company.com>").await.code, 250, "still logged in after RSET");
}

#[tokio::test]
async fn rejected_recipients_get_550_5_1_1_and_others_still_arrive() {
    let server =
        FakeSmtpServer::builder().starttls(false).reject_recipient("nobody@example.com").start().await.unwrap();
    let mut client = RawClient::connect(server.addr()).await;
    client.reply().await;
    client.command("EHLO client.example").await;
    client.command("MAIL FROM:<erp@company.com>").await;
    let refused = client.command("RCPT TO:<nobody@example.com>").await;
    assert_eq!(refused.code, 550);
    assert!(refused.raw.starts_with("550 5.1.1 "), "{}", refused.raw);
    assert_eq!(client.command("RCPT TO:<ada@example.com>").await.code, 250);
    assert_eq!(client.command("DATA").await.code, 354);
    client.send_raw(b"Subject: hi\r\n\r\n..dot\r\n.\r\n").await;
    assert_eq!(client.reply().await.code, 250);
    let messages = server.wait_for_messages(1, STEP).await.unwrap();
    assert_eq!(messages[0].recipients, ["ada@example.com"]);
    assert_eq!(messages[0].raw, b"Subject: hi\r\n\r\n.dot\r\n");
    assert!(!messages[0].over_tls);
    assert_eq!(messages[0].authenticated_as, None);
}

#[tokio::test]
async fn oversize_messages_get_552_and_the_session_goes_on() {
    let server = FakeSmtpServer::builder().starttls(false).max_message_size(100).start().await.unwrap();
    let mut client = RawClient::connect(server.addr()).await;
    client.reply().await;
    client.command("EHLO client.example").await;
    client.command("MAIL FROM:<erp@company.com>").await;
    client.command("RCPT TO:<ada@example.com>").await;
    client.command("DATA").await;
    client.send_raw(format!("Subject: big\r\n\r\n{}\r\n.\r\n", "x".repeat(200)).as_bytes()).await;
    let refused = client.reply().await;
    assert!(refused.raw.starts_with("552 5.3.4 "), "{}", refused.raw);
    // mailin would stay in its DATA state after a refusal here; the kit keeps the session usable.
    assert_eq!(client.command("MAIL FROM:<erp@company.com>").await.code, 250);
    client.command("RCPT TO:<ada@example.com>").await;
    client.command("DATA").await;
    client.send_raw(b"Subject: small\r\n\r\nok\r\n.\r\n").await;
    assert_eq!(client.reply().await.code, 250);
    assert_eq!(client.command("QUIT").await.code, 221);
    assert_eq!(server.wait_for_messages(1, STEP).await.unwrap().len(), 1);
}

#[tokio::test]
async fn optional_auth_lets_unauthenticated_clients_send_after_tls() {
    let server =
        FakeSmtpServer::builder().account("erp@company.com", "app-password").require_auth(false).start().await.unwrap();
    let transport =
        lettre_transport(server.addr(), Tls::Required(lettre_tls_parameters(server.ca_pem())), None, Mechanism::Plain);
    transport.send(invoice_message()).await.unwrap();
    let messages = server.wait_for_messages(1, STEP).await.unwrap();
    assert_eq!(messages[0].authenticated_as, None);
    assert!(messages[0].over_tls);
}

#[tokio::test]
async fn without_tls_auth_is_offered_in_plaintext() {
    let server =
        FakeSmtpServer::builder().starttls(false).account("erp@company.com", "app-password").start().await.unwrap();
    let transport =
        lettre_transport(server.addr(), Tls::None, Some(("erp@company.com", "app-password")), Mechanism::Plain);
    transport.send(invoice_message()).await.unwrap();
    let messages = server.wait_for_messages(1, STEP).await.unwrap();
    assert_eq!(messages[0].authenticated_as.as_deref(), Some("erp@company.com"));
    assert!(!messages[0].over_tls);
}

#[tokio::test]
async fn implicit_tls_mode_speaks_tls_from_the_first_byte() {
    let server = FakeSmtpServer::builder().implicit_tls(true).start().await.unwrap();
    let transport =
        lettre_transport(server.addr(), Tls::Wrapper(lettre_tls_parameters(server.ca_pem())), None, Mechanism::Plain);
    transport.send(invoice_message()).await.unwrap();
    assert!(server.wait_for_messages(1, STEP).await.unwrap()[0].over_tls);
}

#[tokio::test]
async fn shutdown_closes_connections_and_frees_the_port() {
    let server = FakeSmtpServer::builder().start().await.unwrap();
    let addr = server.addr();
    let mut client = RawClient::connect(addr).await;
    client.reply().await;
    server.shutdown();
    assert!(client.closed_without_reply().await, "open connections are closed");
    let rebound = std::net::TcpListener::bind(addr);
    assert!(rebound.is_ok(), "port still taken: {rebound:?}");
    drop(rebound);

    let dropped = FakeSmtpServer::builder().start().await.unwrap();
    let addr = dropped.addr();
    drop(dropped);
    assert!(std::net::TcpListener::bind(addr).is_ok());
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "nobody listens any more");
}

#[tokio::test]
async fn waiting_for_messages_that_never_come_is_bounded() {
    let server = FakeSmtpServer::builder().start().await.unwrap();
    let started = std::time::Instant::now();
    assert!(server.wait_for_messages(1, Duration::from_millis(50)).await.is_err());
    assert!(started.elapsed() < Duration::from_secs(2));
}
