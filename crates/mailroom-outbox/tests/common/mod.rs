//! Shared by the outbox tests: messages, the SMTP driver pointed at a loopback server, and stores on real files.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mailroom_core::{Mailbox, MessageDraft, SmtpConfig, TlsMode, Transport};
use mailroom_outbox::{NewMessage, SendingLimits, Store};
use mailroom_smtp::SmtpTransport;

pub fn sender() -> Mailbox {
    "Company ERP <erp@company.com>".parse().unwrap()
}

/// A small message with a known Message-ID, to `to`.
pub fn message(n: usize, to: &str) -> NewMessage {
    let built = MessageDraft::new(sender())
        .to(to.parse().unwrap())
        .subject(format!("Order {n} confirmed"))
        .text(format!("Order {n} is confirmed.\n"))
        .message_id(format!("<order-{n}@company.com>"))
        .build()
        .unwrap();
    NewMessage::from_outgoing(&built)
}

pub fn messages(count: usize) -> Vec<NewMessage> {
    (0..count).map(|n| message(n, &format!("customer{n}@example.com"))).collect()
}

pub fn smtp_to(addr: SocketAddr, connections: usize) -> Arc<dyn Transport> {
    let config = SmtpConfig::new(addr.ip().to_string(), addr.port())
        .with_tls(TlsMode::None)
        .with_timeout(Duration::from_secs(5));
    Arc::new(SmtpTransport::builder(sender(), &config).max_connections(connections).build().unwrap())
}

pub fn limits(concurrency: usize) -> SendingLimits {
    SendingLimits {
        preset: "test",
        concurrency,
        rate_per_minute: None,
        daily_quota: None,
        max_attempts: 8,
        lease: Duration::from_secs(60),
    }
}

pub async fn sqlite_store(dir: &tempfile::TempDir) -> Store {
    Store::open(&format!("sqlite:{}", dir.path().join("outbox.db").display())).await.unwrap()
}
