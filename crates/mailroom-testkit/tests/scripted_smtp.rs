//! ScriptedSmtpServer against raw loopback clients: scripted replies, capabilities, hang-ups, silence, TLS mismatches, bounds, transcripts.

mod common;

use std::time::Duration;

use common::{RawClient, STEP, b64};
use mailroom_testkit::{Limits, ListenerTls, Reply, ScriptedSmtpServer, Step, TestCertificates, TranscriptEntry};

fn gmail_bad_credentials() -> Reply {
    Reply::new(
        535,
        [
            "5.7.8 Username and Password not accepted. For more information, go to",
            "5.7.8  https://support.google.com/mail/?p=BadCredentials x - gsmtp",
        ],
    )
}

#[tokio::test]
async fn multi_line_auth_reply_arrives_verbatim_after_starttls() {
    let server = ScriptedSmtpServer::builder().auth_reply(gmail_bad_credentials()).start().await.unwrap();
    let mut client = RawClient::connect_starttls(server.addr(), server.certificates()).await;
    let reply = client.command(&format!("AUTH PLAIN {}", b64("\0erp@company.com\0secret"))).await;
    assert_eq!(
        reply.raw,
        "535-5.7.8 Username and Password not accepted. For more information, go to\r\n\
         535 5.7.8  https://support.google.com/mail/?p=BadCredentials x - gsmtp\r\n"
    );
    let transcript = &server.transcripts()[0];
    assert!(transcript.client_lines().contains(&"AUTH PLAIN <credentials redacted>"));
    assert!(!format!("{transcript:?}").contains(&b64("\0erp@company.com\0secret")));
    assert!(transcript.events().contains(&"TLS established"));
}

#[tokio::test]
async fn greeting_and_capabilities_differ_before_and_after_tls() {
    let server = ScriptedSmtpServer::builder()
        .greeting(Reply::new(220, ["first line", "second line"]))
        .ehlo_greeting("scripted.example at your service")
        .capabilities_before_tls(["STARTTLS", "AUTH LOGIN"])
        .capabilities_after_tls(["AUTH XOAUTH2", "SIZE 1000"])
        .start()
        .await
        .unwrap();
    let mut client = RawClient::connect(server.addr()).await;
    assert_eq!(client.reply().await.raw, "220-first line\r\n220 second line\r\n");
    let before = client.command("EHLO client.example").await;
    assert_eq!(before.raw, "250-scripted.example at your service\r\n250-STARTTLS\r\n250 AUTH LOGIN\r\n");
    client.command("STARTTLS").await;
    let mut client = client.starttls(server.certificates()).await.unwrap();
    let after = client.command("EHLO client.example").await;
    assert_eq!(after.raw, "250-scripted.example at your service\r\n250-AUTH XOAUTH2\r\n250 SIZE 1000\r\n");
    // LOGIN is no longer offered after TLS, so it is unrecognized there.
    assert_eq!(client.command("AUTH LOGIN").await.code, 504);
}

#[tokio::test]
async fn auth_login_and_xoauth2_with_an_error_challenge() {
    let challenge = "eyJzdGF0dXMiOiI0MDAifQ==";
    let server = ScriptedSmtpServer::builder()
        .account("erp@company.com", "app-password")
        .oauth_token("erp@company.com", "good-token")
        .xoauth2_error_challenge(challenge)
        .auth_failure(Reply::line(535, "5.7.8 bad token"))
        .start()
        .await
        .unwrap();
    let mut client = RawClient::connect_starttls(server.addr(), server.certificates()).await;
    let bad = b64("user=erp@company.com\u{1}auth=Bearer stale\u{1}\u{1}");
    assert_eq!(client.command(&format!("AUTH XOAUTH2 {bad}")).await.raw, format!("334 {challenge}\r\n"));
    assert_eq!(client.command("").await.raw, "535 5.7.8 bad token\r\n");

    assert_eq!(client.command("AUTH LOGIN").await.raw, "334 VXNlcm5hbWU6\r\n");
    assert_eq!(client.command(&b64("erp@company.com")).await.raw, "334 UGFzc3dvcmQ6\r\n");
    assert_eq!(client.command(&b64("app-password")).await.code, 235);
    assert_eq!(client.command("AUTH LOGIN").await.code, 503, "already authenticated");

    let mut other = RawClient::connect_starttls(server.addr(), server.certificates()).await;
    let good = b64("user=erp@company.com\u{1}auth=Bearer good-token\u{1}\u{1}");
    assert_eq!(other.command(&format!("AUTH XOAUTH2 {good}")).await.code, 235);
    assert_eq!(other.command("MAIL FROM:<erp@company.com>").await.code, 250);
    other.command("RCPT TO:<ada@example.com>").await;
    other.command("DATA").await;
    other.send_raw(b"Subject: t\r\n\r\nx\r\n.\r\n").await;
    assert_eq!(other.reply().await.code, 250);
    let message = &server.wait_for_messages(1, STEP).await.unwrap()[0];
    assert_eq!(message.authenticated_as.as_deref(), Some("erp@company.com"));
    assert!(message.over_tls);
}

#[tokio::test]
async fn scripted_refusals_at_mail_rcpt_data_and_end_of_data() {
    let server = ScriptedSmtpServer::builder()
        .tls(ListenerTls::None)
        .reject_recipient("nobody@example.com", Reply::line(550, "5.1.1 no such user"))
        .end_of_data_reply(Reply::line(554, "5.2.252 SendAsDenied"))
        .start()
        .await
        .unwrap();
    let mut client = RawClient::connect(server.addr()).await;
    client.reply().await;
    assert_eq!(client.command("MAIL FROM:<a@example.com>").await.code, 503, "EHLO first");
    client.command("EHLO client.example").await;
    assert_eq!(client.command("STARTTLS").await.code, 502);
    assert_eq!(client.command("RCPT TO:<ada@example.com>").await.code, 503);
    client.command("MAIL FROM:<a@example.com>").await;
    assert_eq!(client.command("RCPT TO:<nobody@example.com>").await.raw, "550 5.1.1 no such user\r\n");
    assert_eq!(client.command("DATA").await.code, 554, "no valid recipients");
    client.command("RCPT TO:<ada@example.com>").await;
    client.command("DATA").await;
    client.send_raw(b"Subject: t\r\n\r\nx\r\n.\r\n").await;
    assert_eq!(client.reply().await.raw, "554 5.2.252 SendAsDenied\r\n");
    assert!(server.messages().is_empty(), "refused messages are not captured");

    let refusing = ScriptedSmtpServer::builder()
        .tls(ListenerTls::None)
        .mail_reply(Reply::line(550, "5.7.60 not your sender"))
        .data_reply(Reply::line(451, "4.3.0 try later"))
        .start()
        .await
        .unwrap();
    let mut client = RawClient::connect(refusing.addr()).await;
    client.reply().await;
    client.command("EHLO client.example").await;
    assert_eq!(client.command("MAIL FROM:<a@example.com>").await.code, 550);
    assert_eq!(client.command("RCPT TO:<b@example.com>").await.code, 503, "MAIL was refused");
}

#[tokio::test]
async fn pipelined_commands_dot_unstuffing_rset_noop_quit() {
    let server = ScriptedSmtpServer::builder().tls(ListenerTls::None).start().await.unwrap();
    let mut client = RawClient::connect(server.addr()).await;
    client.reply().await;
    client.command("EHLO client.example").await;
    client
        .send_raw(b"MAIL FROM:<erp@company.com>\r\nRCPT TO:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
        .await;
    for expected in [250, 250, 250, 354] {
        assert_eq!(client.reply().await.code, expected);
    }
    client.send_raw(b"Subject: dots\r\n\r\n..\r\n...two\r\n.x\r\nend\r\n.\r\nNOOP\r\nRSET\r\nQUIT\r\n").await;
    assert_eq!(client.reply().await.code, 250);
    assert_eq!(client.reply().await.raw, "250 2.0.0 OK\r\n");
    assert_eq!(client.reply().await.raw, "250 2.0.0 OK\r\n");
    assert_eq!(client.reply().await.code, 221);
    assert!(client.closed_without_reply().await);
    let message = &server.wait_for_messages(1, STEP).await.unwrap()[0];
    assert_eq!(message.raw, b"Subject: dots\r\n\r\n.\r\n..two\r\nx\r\nend\r\n");
    assert_eq!(message.recipients, ["a@example.com", "b@example.com"]);
}

#[tokio::test]
async fn bdat_chunks_are_assembled() {
    let server = ScriptedSmtpServer::builder().tls(ListenerTls::None).start().await.unwrap();
    let mut client = RawClient::connect(server.addr()).await;
    client.reply().await;
    client.command("EHLO client.example").await;
    client.command("MAIL FROM:<erp@company.com>").await;
    client.command("RCPT TO:<a@example.com>").await;
    client.send_raw(b"BDAT 12\r\nSubject: b\r\n").await;
    assert_eq!(client.reply().await.code, 250);
    client.send_raw(b"BDAT 7 LAST\r\n\r\n.body").await;
    assert_eq!(client.reply().await.code, 250);
    assert_eq!(server.wait_for_messages(1, STEP).await.unwrap()[0].raw, b"Subject: b\r\n\r\n.body");
}

/// Drives a plain dialogue up to `step` and checks the server hangs up there without replying.
#[tokio::test]
async fn hang_up_at_every_step_really_disconnects() {
    let steps = [
        Step::Connect,
        Step::Greeting,
        Step::Ehlo,
        Step::StartTls,
        Step::Auth,
        Step::Mail,
        Step::Rcpt,
        Step::DataCommand,
        Step::MessageBody,
    ];
    for step in steps {
        let server = ScriptedSmtpServer::builder()
            .account("erp@company.com", "pw")
            .capabilities_before_tls(["STARTTLS", "AUTH PLAIN"])
            .hang_up_at(step)
            .start()
            .await
            .unwrap();
        let mut client = RawClient::connect(server.addr()).await;
        let hung_up = 'dialogue: {
            if step == Step::Connect {
                break 'dialogue client.closed_without_reply().await;
            }
            assert_eq!(client.reply().await.code, 220, "{step:?}");
            if step == Step::Greeting {
                break 'dialogue client.closed_without_reply().await;
            }
            client.send("EHLO client.example").await;
            if step == Step::Ehlo {
                break 'dialogue client.closed_without_reply().await;
            }
            assert_eq!(client.reply().await.code, 250);
            if step == Step::StartTls {
                assert_eq!(client.command("STARTTLS").await.code, 220);
                let result = client.starttls(server.certificates()).await;
                break 'dialogue result.is_err();
            }
            client.send(&format!("AUTH PLAIN {}", b64("\0erp@company.com\0pw"))).await;
            if step == Step::Auth {
                break 'dialogue client.closed_without_reply().await;
            }
            assert_eq!(client.reply().await.code, 235);
            client.send("MAIL FROM:<erp@company.com>").await;
            if step == Step::Mail {
                break 'dialogue client.closed_without_reply().await;
            }
            assert_eq!(client.reply().await.code, 250);
            client.send("RCPT TO:<a@example.com>").await;
            if step == Step::Rcpt {
                break 'dialogue client.closed_without_reply().await;
            }
            assert_eq!(client.reply().await.code, 250);
            client.send("DATA").await;
            if step == Step::DataCommand {
                break 'dialogue client.closed_without_reply().await;
            }
            assert_eq!(client.reply().await.code, 354);
            client.send_raw(b"Subject: t\r\n\r\nbody\r\n.\r\n").await;
            client.closed_without_reply().await
        };
        assert!(hung_up, "no hang-up at {step:?}");
        let transcripts = server.wait_for_closed_connections(1, STEP).await.unwrap();
        assert!(
            transcripts[0].events().contains(&format!("hung up at {step:?}").as_str()),
            "{step:?}: {:?}",
            transcripts[0]
        );
        assert!(server.messages().is_empty(), "{step:?}: nothing may be captured");
    }
}

#[tokio::test]
async fn silent_mode_accepts_and_never_speaks() {
    let server = ScriptedSmtpServer::builder().silent().start().await.unwrap();
    let mut client = RawClient::connect(server.addr()).await;
    client.send("EHLO client.example").await;
    assert!(client.silent_for(Duration::from_millis(300)).await);
    let transcript = &server.transcripts()[0];
    assert_eq!(transcript.entries[0], TranscriptEntry::Event("connected".to_owned()));
    assert!(!transcript.closed);
    assert!(transcript.server_replies().is_empty());
}

#[tokio::test]
async fn silent_connections_end_at_the_idle_timeout() {
    let limits = Limits { idle_timeout: Duration::from_millis(150), ..Limits::default() };
    let server = ScriptedSmtpServer::builder().silent().limits(limits).start().await.unwrap();
    let mut client = RawClient::connect(server.addr()).await;
    assert!(client.closed_without_reply().await);
    let transcripts = server.wait_for_closed_connections(1, STEP).await.unwrap();
    assert!(transcripts[0].events().contains(&"idle timeout"));
}

#[tokio::test]
async fn a_tls_client_meeting_plaintext_fails_fast() {
    let garbage =
        ScriptedSmtpServer::builder().garbage(&b"220 smtp.example.com ESMTP ready\r\n"[..]).start().await.unwrap();
    let certificates = TestCertificates::generate().unwrap();
    let started = std::time::Instant::now();
    let error = RawClient::connect_tls(garbage.addr(), &certificates).await.err().expect("handshake must fail");
    assert!(started.elapsed() < Duration::from_secs(2), "failed only after {:?}", started.elapsed());
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidData, "{error}");

    // The same with a normal STARTTLS listener: its plaintext greeting is not a ServerHello.
    let starttls = ScriptedSmtpServer::builder().start().await.unwrap();
    let error = RawClient::connect_tls(starttls.addr(), &certificates).await.err().expect("handshake must fail");
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidData, "{error}");
}

#[tokio::test]
async fn implicit_tls_listener_leaves_a_plaintext_client_waiting() {
    let server = ScriptedSmtpServer::builder().tls(ListenerTls::Implicit).start().await.unwrap();
    let mut plain = RawClient::connect(server.addr()).await;
    assert!(plain.silent_for(Duration::from_millis(300)).await, "no plaintext greeting on an implicit-TLS port");

    let mut tls = RawClient::connect_tls(server.addr(), server.certificates()).await.unwrap();
    assert_eq!(tls.reply().await.code, 220);
    let ehlo = tls.command("EHLO client.example").await;
    assert!(ehlo.raw.contains("AUTH PLAIN LOGIN XOAUTH2"), "{}", ehlo.raw);
}

#[tokio::test]
async fn overlong_lines_and_oversize_messages_are_bounded() {
    let limits = Limits { max_line_length: 256, max_message_size: 64, ..Limits::default() };
    let server = ScriptedSmtpServer::builder().tls(ListenerTls::None).limits(limits).start().await.unwrap();
    let mut client = RawClient::connect(server.addr()).await;
    client.reply().await;
    client.command("EHLO client.example").await;
    assert_eq!(client.command("MAIL FROM:<a@example.com> SIZE=65").await.code, 552);
    client.command("MAIL FROM:<a@example.com>").await;
    client.command("RCPT TO:<b@example.com>").await;
    client.command("DATA").await;
    client.send_raw(format!("{}\r\n.\r\n", "y".repeat(100)).as_bytes()).await;
    assert!(client.reply().await.raw.starts_with("552 5.3.4"));
    client.send(&"z".repeat(1000)).await;
    assert!(client.reply().await.raw.starts_with("500 5.5.2"));
    assert!(client.closed_without_reply().await);
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn scripted_shutdown_frees_the_port() {
    let server = ScriptedSmtpServer::builder().silent().start().await.unwrap();
    let addr = server.addr();
    let mut client = RawClient::connect(addr).await;
    server.shutdown();
    assert!(client.closed_without_reply().await);
    assert!(std::net::TcpListener::bind(addr).is_ok());
}
