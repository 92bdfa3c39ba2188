//! `cargo xtask bench smtp`: 1 KB messages through mailroom's SMTP driver and, in the same run, stock lettre's pooled `AsyncSmtpTransport`, over 1 and 10 connections, plain and STARTTLS; Postfix's `smtp-source` (plain) as the outside anchor where installed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lettre::AsyncTransport;
use mailroom_core::{Mailbox, MessageDraft, OutgoingMessage, SmtpConfig, TlsMode, Transport};
use mailroom_smtp::SmtpTransport;
use mailroom_testkit::SmtpSink;

/// How long each row sends for, after a warm-up.
const WINDOW: Duration = Duration::from_secs(2);

struct Row {
    name: &'static str,
    connections: usize,
    tls: bool,
    messages: u64,
    elapsed: Duration,
}

impl Row {
    fn per_second(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64()
    }
}

fn one_kb_message(sender: &Mailbox) -> OutgoingMessage {
    let body: String = "The quick brown fox jumps over the lazy dog. ".repeat(18);
    MessageDraft::new(sender.clone())
        .to("bench@example.com".parse().expect("static address"))
        .subject("mailroom bench: 1 KB")
        .text(body)
        .build()
        .expect("the bench message builds")
}

/// Sends through `send` from `connections` tasks until the window closes; returns the count.
async fn drive<F, Fut>(connections: usize, send: F) -> Result<(u64, Duration), String>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    let send = Arc::new(send);
    for _ in 0..connections.max(20) {
        send().await?;
    }
    let started = Instant::now();
    let deadline = started + WINDOW;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let send = send.clone();
        tasks.spawn(async move {
            let mut sent = 0u64;
            while Instant::now() < deadline {
                send().await?;
                sent += 1;
            }
            Ok::<u64, String>(sent)
        });
    }
    let mut total = 0;
    while let Some(result) = tasks.join_next().await {
        total += result.map_err(|e| e.to_string())??;
    }
    Ok((total, started.elapsed()))
}

async fn ours(
    target: std::net::SocketAddr,
    tls: bool,
    ca_file: Option<&std::path::Path>,
    connections: usize,
) -> Result<(u64, Duration), String> {
    let sender: Mailbox = "Bench <bench@company.com>".parse().expect("static address");
    let server = if tls { "localhost".to_owned() } else { target.ip().to_string() };
    let mut config = SmtpConfig::new(server, target.port())
        .with_tls(if tls { TlsMode::Starttls } else { TlsMode::None })
        .with_timeout(Duration::from_secs(10));
    config.ca_file = ca_file.map(ToOwned::to_owned);
    let transport = Arc::new(
        SmtpTransport::builder(sender.clone(), &config)
            .max_connections(connections)
            .build()
            .map_err(|e| e.to_string())?,
    );
    let message = Arc::new(one_kb_message(&sender));
    drive(connections, move || {
        let transport = transport.clone();
        let message = message.clone();
        async move { transport.send(&message).await.map(|_| ()).map_err(|e| e.to_string()) }
    })
    .await
}

async fn stock_lettre(
    target: std::net::SocketAddr,
    tls: bool,
    ca_pem: Option<&str>,
    connections: usize,
) -> Result<(u64, Duration), String> {
    use lettre::transport::smtp::PoolConfig;
    use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
    let mut builder = lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous(if tls {
        "localhost".to_owned()
    } else {
        target.ip().to_string()
    })
    .port(target.port())
    .timeout(Some(Duration::from_secs(10)))
    .pool_config(PoolConfig::new().max_size(connections as u32));
    if tls {
        let pem = ca_pem.ok_or("no CA for the TLS sink")?;
        let certificate = Certificate::from_pem(pem.as_bytes()).map_err(|e| e.to_string())?;
        let parameters = TlsParameters::builder("localhost".to_owned())
            .add_root_certificate(certificate)
            .build_rustls()
            .map_err(|e| e.to_string())?;
        builder = builder.tls(Tls::Required(parameters));
    }
    let transport = Arc::new(builder.build());
    let sender: Mailbox = "Bench <bench@company.com>".parse().expect("static address");
    let message = Arc::new(
        lettre::Message::builder()
            .from(sender)
            .to("bench@example.com".parse().expect("static address"))
            .subject("mailroom bench: 1 KB")
            .body("The quick brown fox jumps over the lazy dog. ".repeat(18))
            .map_err(|e| e.to_string())?,
    );
    drive(connections, move || {
        let transport = transport.clone();
        let message = message.clone();
        async move { transport.send((*message).clone()).await.map(|_| ()).map_err(|e| e.to_string()) }
    })
    .await
}

/// Runs the SMTP bench. `sink`: an external plain sink (HOST:PORT) instead of the testkit's.
pub fn run(sink: Option<String>, json: bool) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let scratch = std::env::temp_dir().join(format!("mailroom-bench-{}", std::process::id()));
        std::fs::create_dir_all(&scratch).map_err(|e| e.to_string())?;
        let plain_sink = match &sink {
            Some(_) => None,
            None => Some(SmtpSink::builder().start().await.map_err(|e| e.to_string())?),
        };
        let plain_target: std::net::SocketAddr = match (&sink, &plain_sink) {
            (Some(address), _) => address.parse().map_err(|e| format!("--sink {address}: {e}"))?,
            (None, Some(sink)) => sink.addr(),
            (None, None) => unreachable!(),
        };
        let tls_sink = match &sink {
            Some(_) => None,
            None => Some(SmtpSink::builder().starttls(true).start().await.map_err(|e| e.to_string())?),
        };
        let ca_file = scratch.join("sink-ca.pem");
        if let Some(tls_sink) = &tls_sink {
            std::fs::write(&ca_file, tls_sink.ca_pem()).map_err(|e| e.to_string())?;
        }

        let mut rows = Vec::new();
        for connections in [1, 10] {
            let (messages, elapsed) = stock_lettre(plain_target, false, None, connections).await?;
            rows.push(Row { name: "stock_lettre_pooled", connections, tls: false, messages, elapsed });
            let (messages, elapsed) = ours(plain_target, false, None, connections).await?;
            rows.push(Row { name: "mailroom_smtp", connections, tls: false, messages, elapsed });
            if let Some(tls_sink) = &tls_sink {
                let (messages, elapsed) =
                    stock_lettre(tls_sink.addr(), true, Some(tls_sink.ca_pem()), connections).await?;
                rows.push(Row { name: "stock_lettre_pooled", connections, tls: true, messages, elapsed });
                let (messages, elapsed) = ours(tls_sink.addr(), true, Some(&ca_file), connections).await?;
                rows.push(Row { name: "mailroom_smtp", connections, tls: true, messages, elapsed });
            }
            if let Some(program) = crate::bench_outbox::smtp_source_path() {
                // smtp-source sends a count, not for a window: about what ours sends in one.
                let ours = rows.iter().find(|r| r.name == "mailroom_smtp" && r.connections == connections && !r.tls);
                let count = ours.map_or(10_000, |r| (r.messages as usize).clamp(1_000, 200_000));
                let anchor = crate::bench_outbox::smtp_source(&program, plain_target, connections, count)?;
                rows.push(Row {
                    name: "smtp-source",
                    connections,
                    tls: false,
                    messages: anchor.messages,
                    elapsed: anchor.elapsed,
                });
            }
        }
        let _ = std::fs::remove_dir_all(&scratch);
        print_rows(&rows, json);
        Ok(())
    })
}

fn print_rows(rows: &[Row], json: bool) {
    if json {
        for row in rows {
            println!(
                "{}",
                serde_json::json!({"name": row.name, "connections": row.connections, "tls": row.tls, "messages": row.messages, "msgs_per_sec": (row.per_second() * 10.0).round() / 10.0})
            );
        }
        return;
    }
    println!(
        "{:<22} {:>11} {:>5} {:>9} {:>12} {:>18} {:>14}",
        "name", "connections", "tls", "messages", "msgs/s", "vs stock lettre", "vs plain (ours)"
    );
    for row in rows {
        let baseline = rows
            .iter()
            .find(|b| b.name == "stock_lettre_pooled" && b.connections == row.connections && b.tls == row.tls);
        let ratio = baseline.map(|b| format!("{:.1}x", row.per_second() / b.per_second())).unwrap_or_default();
        let plain = rows.iter().find(|p| p.name == row.name && p.connections == row.connections && !p.tls);
        let tls_ratio = match (row.tls, plain) {
            (true, Some(plain)) => format!("{:.0}%", 100.0 * row.per_second() / plain.per_second()),
            _ => String::new(),
        };
        println!(
            "{:<22} {:>11} {:>5} {:>9} {:>12.0} {:>18} {:>14}",
            row.name,
            row.connections,
            row.tls,
            row.messages,
            row.per_second(),
            ratio,
            tls_ratio
        );
    }
}
