//! SmtpSink counts what real clients send (pipelined raw client, lettre with STARTTLS and AUTH); an ignored test measures throughput.

mod common;

use std::time::{Duration, Instant};

use common::{RawClient, STEP, b64, lettre_tls_parameters, lettre_transport};
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Mechanism;
use lettre::transport::smtp::client::{AsyncSmtpConnection, Tls};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncTransport, Message};
use mailroom_testkit::SmtpSink;

#[tokio::test]
async fn pipelined_messages_are_counted_with_their_unstuffed_size() {
    let sink = SmtpSink::builder().start().await.unwrap();
    let mut client = RawClient::connect(sink.addr()).await;
    assert_eq!(client.reply().await.code, 220);
    let ehlo = client.command("EHLO client.example").await;
    assert!(ehlo.raw.contains("PIPELINING") && !ehlo.raw.contains("AUTH"), "{}", ehlo.raw);
    let one = b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\nSubject: x\r\n\r\n..dot\r\n.\r\n";
    client.send_raw(&[&one[..], &one[..], &one[..]].concat()).await;
    for _ in 0..3 {
        for expected in [250, 250, 354, 250] {
            assert_eq!(client.reply().await.code, expected);
        }
    }
    assert_eq!(client.command("RCPT TO:<b@example.com>").await.code, 503, "no transaction open");
    assert_eq!(client.command("QUIT").await.code, 221);
    sink.wait_for_count(3, STEP).await.unwrap();
    assert_eq!(sink.count(), 3);
    assert_eq!(sink.bytes(), 3 * "Subject: x\r\n\r\n.dot\r\n".len() as u64);
    assert!(sink.wait_for_count(4, Duration::from_millis(30)).await.is_err());
}

#[tokio::test]
async fn starttls_and_any_credentials_are_accepted() {
    let sink = SmtpSink::builder().starttls(true).accept_any_auth(true).start().await.unwrap();
    for mechanism in [Mechanism::Plain, Mechanism::Login] {
        let transport = lettre_transport(
            sink.addr(),
            Tls::Required(lettre_tls_parameters(sink.ca_pem())),
            Some(("anyone", "anything")),
            mechanism,
        );
        let message = Message::builder()
            .from("erp@company.com".parse().unwrap())
            .to("ada@example.com".parse().unwrap())
            .subject("sink")
            .body("x".repeat(1000))
            .unwrap();
        transport.send(message).await.unwrap();
    }
    sink.wait_for_count(2, STEP).await.unwrap();

    let mut client = RawClient::connect(sink.addr()).await;
    client.reply().await;
    client.command("EHLO client.example").await;
    assert_eq!(client.command("AUTH PLAIN").await.code, 334);
    assert_eq!(client.command(&b64("\0u\0p")).await.code, 235);
}

#[tokio::test]
async fn sink_shutdown_frees_the_port() {
    let sink = SmtpSink::builder().start().await.unwrap();
    let addr = sink.addr();
    sink.shutdown();
    assert!(std::net::TcpListener::bind(addr).is_ok());
}

/// Throughput figure (not asserted): `cargo test -p mailroom-testkit --release --test sink -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, prints a figure"]
async fn measure_sink_throughput() {
    const CONNECTIONS: usize = 10;
    const RUN: Duration = Duration::from_secs(3);
    let mut builder = SmtpSink::builder();
    if let Some(threads) = std::env::var("SINK_THREADS").ok().and_then(|t| t.parse().ok()) {
        builder = builder.worker_threads(threads);
    }
    let sink = builder.start().await.unwrap();
    let addr = sink.addr();
    let body =
        format!("From: erp@company.com\r\nTo: ada@example.com\r\nSubject: bench\r\n\r\n{}\r\n", "x".repeat(1024 - 70));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            tcp.set_nodelay(true).unwrap();
            let mut connection =
                AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &ClientId::Domain("bench".into()))
                    .await
                    .unwrap();
            let envelope =
                Envelope::new(Some("erp@company.com".parse().unwrap()), vec!["ada@example.com".parse().unwrap()])
                    .unwrap();
            let mut sent = 0u64;
            while started.elapsed() < RUN {
                connection.send(&envelope, body.as_bytes()).await.unwrap();
                sent += 1;
            }
            connection.quit().await.unwrap();
            sent
        }));
    }
    let mut sent = 0;
    for task in tasks {
        sent += task.await.unwrap();
    }
    let elapsed = started.elapsed();
    sink.wait_for_count(sent, STEP).await.unwrap();
    println!(
        "sink: {sent} messages of {} bytes over {CONNECTIONS} connections in {elapsed:.2?} = {:.0} msg/s",
        body.len(),
        sent as f64 / elapsed.as_secs_f64()
    );
}
