//! The SMTP driver against hostile servers on loopback: replies cut mid-line, a 10 MB line, endless continuation lines, one byte per second, invalid UTF-8 and an absurd back-off; each ends in a classified error within its deadline.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mailroom_core::{ErrorKind, Mailbox, MessageDraft, Secret, SendError, SmtpConfig, TlsMode, Transport};
use mailroom_smtp::SmtpTransport;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// The step deadline of every test here.
const STEP: Duration = Duration::from_secs(2);
/// No test may take longer than this, whatever the server does.
const WALL: Duration = Duration::from_secs(20);

fn sender() -> Mailbox {
    "Company ERP <erp@company.com>".parse().unwrap()
}

/// A plain-text config for `port` on loopback, with a password (AUTH is allowed in clear
/// text only to loopback).
fn config(port: u16) -> SmtpConfig {
    SmtpConfig::new("127.0.0.1", port)
        .with_tls(TlsMode::None)
        .with_login("erp@company.com", Secret::new("sentinel-password-hostile"))
        .with_timeout(STEP)
}

/// Serves every connection with `behaviour` until the test ends.
async fn hostile<F, Fut>(behaviour: F) -> u16
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let behaviour = Arc::new(behaviour);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(behaviour(stream));
        }
    });
    port
}

/// Sends one message to the server on `port`, bounded by [`WALL`]; returns the error and how long it took.
async fn send_to(port: u16) -> (SendError, Duration) {
    let transport = SmtpTransport::new(sender(), &config(port)).unwrap();
    let message = MessageDraft::new(sender())
        .to("ada@example.com".parse().unwrap())
        .subject("hostile")
        .text("hi")
        .build()
        .unwrap();
    let started = Instant::now();
    let outcome =
        tokio::time::timeout(WALL, transport.send(&message)).await.expect("the send ends within its deadlines");
    (outcome.expect_err("a hostile server accepts nothing"), started.elapsed())
}

/// Answers EHLO with `ehlo` and every other command with `other`, after a normal greeting.
async fn converse(stream: TcpStream, ehlo: &'static [u8], other: &'static [u8]) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let _ = write.write_all(b"220 mx.hostile.test ESMTP\r\n").await;
    while let Ok(Some(line)) = lines.next_line().await {
        let reply = if line.to_ascii_uppercase().starts_with("EHLO") { ehlo } else { other };
        if write.write_all(reply).await.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn a_greeting_cut_mid_line_is_a_closed_connection() {
    let port = hostile(|mut stream: TcpStream| async move {
        let _ = stream.write_all(b"220 mx.hostile.te").await;
        let _ = stream.shutdown().await;
    })
    .await;
    let (error, elapsed) = send_to(port).await;
    assert_eq!(error.kind(), ErrorKind::ServiceUnavailable, "{error}");
    assert!(elapsed < STEP, "{elapsed:?}");
}

#[tokio::test]
async fn an_ehlo_reply_cut_mid_line_on_a_socket_left_open_runs_into_the_deadline() {
    let port = hostile(|stream: TcpStream| converse(stream, b"250-mx.hostile.test\r\n250-PIPELI", b"")).await;
    // The server stops writing but keeps the socket open: the step deadline ends it.
    let (error, elapsed) = send_to(port).await;
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");
    assert!(elapsed < STEP * 2, "{elapsed:?}");
}

#[tokio::test]
async fn a_ten_megabyte_line_is_refused_after_the_first_kilobytes() {
    let port = hostile(|mut stream: TcpStream| async move {
        let _ = stream.write_all(b"220 ").await;
        let chunk = vec![b'a'; 64 * 1024];
        for _ in 0..160 {
            if stream.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = stream.write_all(b"\r\n").await;
    })
    .await;
    let (error, elapsed) = send_to(port).await;
    assert_eq!(error.kind(), ErrorKind::Protocol, "{error}");
    assert!(error.detail().contains("longer than"), "{error}");
    assert!(elapsed < STEP, "{elapsed:?}");
}

#[tokio::test]
async fn endless_continuation_lines_are_refused_after_a_bounded_count() {
    let port = hostile(|mut stream: TcpStream| async move {
        loop {
            if stream.write_all(b"220-still greeting you\r\n").await.is_err() {
                return;
            }
        }
    })
    .await;
    let (error, elapsed) = send_to(port).await;
    assert_eq!(error.kind(), ErrorKind::Protocol, "{error}");
    assert!(elapsed < STEP, "{elapsed:?}");
}

#[tokio::test]
async fn a_server_trickling_one_byte_per_second_runs_into_the_step_deadline() {
    let port = hostile(|mut stream: TcpStream| async move {
        for byte in b"220 mx.hostile.test ESMTP\r\n" {
            if stream.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
    .await;
    let (error, elapsed) = send_to(port).await;
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");
    assert!(elapsed >= STEP && elapsed < STEP + Duration::from_secs(2), "{elapsed:?}");
}

#[tokio::test]
async fn invalid_utf8_in_replies_is_kept_lossily_and_classified() {
    let port = hostile(|stream: TcpStream| {
        converse(
            stream,
            b"250-mx.\xff\xfe.test\r\n250 AUTH PLAIN \xc3\x28\r\n",
            b"535 5.7.8 \xff\xfe bad \xe2\x82 credentials\r\n",
        )
    })
    .await;
    let (error, elapsed) = send_to(port).await;
    assert_eq!(error.kind(), ErrorKind::AuthFailed, "{error}");
    let reply = error.server_reply().expect("the reply is kept");
    assert!(reply.text.contains('\u{fffd}') && reply.text.contains("credentials"), "{reply:?}");
    assert!(elapsed < STEP, "{elapsed:?}");
}

#[tokio::test]
async fn an_absurd_back_off_in_a_throttling_reply_is_not_waited_for() {
    let port = hostile(|stream: TcpStream| {
        converse(
            stream,
            b"250-mx.hostile.test\r\n250 AUTH PLAIN\r\n",
            b"421 4.7.0 Try again in 99999999999 seconds; Retry-After: 99999999999\r\n",
        )
    })
    .await;
    let (error, elapsed) = send_to(port).await;
    assert!(matches!(error.kind(), ErrorKind::RateLimited | ErrorKind::ServiceUnavailable), "{error}");
    if let mailroom_core::Retry::Temporary { after: Some(after) } = error.retry() {
        assert!(after <= Duration::from_secs(3600), "{after:?}");
    }
    assert!(
        mailroom_core::RetryPolicy::default()
            .delay_before_retry(1, &error)
            .is_none_or(|d| d <= Duration::from_secs(60))
    );
    assert!(elapsed < STEP, "{elapsed:?}");
}
