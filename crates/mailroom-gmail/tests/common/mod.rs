//! Shared helpers for the Gmail driver's tests: fixtures, configs pointed at wiremock, a fake Gmail responder, and raw loopback servers for failures wiremock cannot play.
#![allow(dead_code, missing_docs)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mailroom_core::config::GmailConfig;
use mailroom_core::{Mailbox, MessageDraft, OutgoingMessage, Secret};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub const CLIENT_ID: &str = "1234567890-fixture.apps.googleusercontent.com";
pub const CLIENT_SECRET: &str = "GOCSPX-sentinel-client-secret-7f3a";
pub const REFRESH_TOKEN: &str = "1//sentinel-refresh-token-91bc";
pub const ACCESS_TOKEN: &str = "ya29.a0-fixture-access-token";
pub const SEND_PATH: &str = "/upload/gmail/v1/users/me/messages/send";

/// A fixture body from `fixtures/google/`.
pub fn fixture(name: &str) -> String {
    let path = format!("{}/../../fixtures/google/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A fixture as JSON, so wiremock answers with `application/json` (DESIGN.md §6: set_body_json).
pub fn json(name: &str) -> serde_json::Value {
    serde_json::from_str(&fixture(name)).unwrap()
}

pub fn sender() -> Mailbox {
    "Company ERP <erp@company.com>".parse().unwrap()
}

pub fn config(token_base: &str, api_base: &str) -> GmailConfig {
    GmailConfig::new(CLIENT_ID, Secret::new(CLIENT_SECRET))
        .with_refresh_token(Secret::new(REFRESH_TOKEN))
        .with_endpoints(
            format!("{token_base}/o/oauth2/v2/auth").parse().unwrap(),
            format!("{token_base}/token").parse().unwrap(),
        )
        .with_api_base(api_base.parse().unwrap())
        .with_timeout(Duration::from_secs(2))
}

pub fn message() -> OutgoingMessage {
    MessageDraft::new(sender())
        .to("Ada Lovelace <ada@example.com>".parse().unwrap())
        .subject("Invoice INV-1001 is overdue")
        .text("Please pay invoice INV-1001.")
        .build()
        .unwrap()
}

/// Mounts a token endpoint answering the refresh-token grant with `token_refreshed.json`.
pub async fn mount_token_ok(server: &MockServer) {
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("grant_type=refresh_token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json("token_refreshed.json")))
        .mount(server)
        .await;
}

/// Answers like Gmail's send endpoint: 400 "Recipient address required" for a message
/// without To/Cc/Bcc, else 200 with a fresh id.
#[derive(Default)]
pub struct FakeGmail {
    next: AtomicUsize,
}

impl Respond for FakeGmail {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if recipients_of(&request.body).is_empty() {
            return ResponseTemplate::new(400).set_body_json(json("api_400_recipient_required.json"));
        }
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        let id = format!("18e1c0ffee{n:06x}");
        ResponseTemplate::new(200).set_body_json(serde_json::json!({"id": id, "threadId": id, "labelIds": ["SENT"]}))
    }
}

/// The header block of an uploaded message, unfolded into (lower-case name, value) pairs.
pub fn header_fields(bytes: &[u8]) -> Vec<(String, String)> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(bytes.len());
    let text = String::from_utf8_lossy(&bytes[..end]);
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in text.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = fields.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            fields.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    fields
}

/// The addresses in To, Cc and Bcc, as Gmail reads them.
pub fn recipients_of(bytes: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for (name, value) in header_fields(bytes) {
        if matches!(name.as_str(), "to" | "cc" | "bcc") {
            for part in value.split(',') {
                let part = part.trim();
                let address = match (part.rfind('<'), part.rfind('>')) {
                    (Some(open), Some(close)) if open < close => &part[open + 1..close],
                    _ => part,
                };
                if address.contains('@') {
                    out.push(address.to_ascii_lowercase());
                }
            }
        }
    }
    out
}

/// The message as Gmail delivers it: the `Bcc:` field removed.
pub fn without_bcc(bytes: &[u8]) -> Vec<u8> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n").map_or(bytes.len(), |e| e + 2);
    let mut out = Vec::with_capacity(bytes.len());
    let mut skipping = false;
    let mut offset = 0;
    for line in bytes[..end].split_inclusive(|b| *b == b'\n') {
        let continuation = line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
        if !continuation {
            skipping = line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"bcc:");
        }
        if !skipping {
            out.extend_from_slice(line);
        }
        offset += line.len();
    }
    out.extend_from_slice(&bytes[offset..]);
    out
}

/// A raw HTTP/1.1 server on loopback for one scripted failure per connection: it reads the
/// request head and `Content-Length` body, waits `delay`, then writes `reply` (nothing when
/// `None`) and closes.
pub async fn raw_server(reply: Option<&'static [u8]>, delay: Duration) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        for _ in 0..16 {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let mut data = Vec::new();
                let mut buffer = [0u8; 8192];
                loop {
                    let Ok(n) = stream.read(&mut buffer).await else { return };
                    if n == 0 {
                        return;
                    }
                    data.extend_from_slice(&buffer[..n]);
                    if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if data.len() >= end + 4 + length {
                            break;
                        }
                    }
                }
                tokio::time::sleep(delay).await;
                if let Some(reply) = reply {
                    let _ = stream.write_all(reply).await;
                }
                let _ = stream.shutdown().await;
            });
        }
    });
    format!("http://{address}")
}

/// A loopback address nothing listens on.
pub async fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{address}")
}
