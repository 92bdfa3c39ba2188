//! Helpers shared by the EWS driver's tests: configs with sentinel secrets, the fixtures, a wiremock EWS that decodes what it receives, and tiny raw HTTP(S) servers for what wiremock cannot do.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use mailroom_core::config::EwsConfig;
use mailroom_core::{Mailbox, MessageDraft, OutgoingMessage, Secret};
use quick_xml::Reader;
use quick_xml::events::Event;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use wiremock::{Request, Respond, ResponseTemplate};

pub const PASSWORD: &str = "sentinel-password-7f3a";
pub const CLIENT_SECRET: &str = "sentinel-client-secret-91c2";
pub const EWS_PATH: &str = "/EWS/Exchange.asmx";

pub fn sender() -> Mailbox {
    "Company ERP <erp@company.com>".parse().unwrap()
}

pub fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/ews").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A Basic-auth config for `uri` with the sentinel password.
pub fn config(uri: &str) -> EwsConfig {
    EwsConfig::new(uri.parse().unwrap(), "company.com", "erp")
        .with_password(Secret::new(PASSWORD))
        .with_timeout(Duration::from_secs(5))
}

/// An OAuth config for `uri` with the sentinel client secret.
pub fn oauth_config(uri: &str) -> EwsConfig {
    EwsConfig::new(uri.parse().unwrap(), "company.com", "erp")
        .with_oauth("11111111-2222-3333-4444-555555555555", Secret::new(CLIENT_SECRET), "company.onmicrosoft.com")
        .with_timeout(Duration::from_secs(5))
}

pub fn message(subject: &str) -> OutgoingMessage {
    MessageDraft::new(sender()).to("ada@example.com".parse().unwrap()).subject(subject).text("hello").build().unwrap()
}

/// What a CreateItem / GetFolder request held, read back with quick-xml.
#[derive(Debug, Default)]
pub struct Decoded {
    /// Local name of the operation element (`CreateItem`, `GetFolder`).
    pub operation: String,
    pub disposition: Option<String>,
    pub server_version: Option<String>,
    pub impersonated: Option<String>,
    pub mime: Option<Vec<u8>>,
    pub bcc: Vec<String>,
    pub envelope_namespace: Option<String>,
    /// Local names in document order.
    pub elements: Vec<String>,
}

/// Parses a request body; panics (fails the test) if it is not well-formed.
pub fn decode(body: &[u8]) -> Decoded {
    let text = std::str::from_utf8(body).expect("the request is UTF-8");
    let mut reader = Reader::from_str(text);
    let mut decoded = Decoded::default();
    let mut stack: Vec<String> = Vec::new();
    let mut buffer = String::new();
    loop {
        match reader.read_event().expect("the request is well-formed XML") {
            Event::Start(start) => {
                stack.push(open(&mut decoded, &start));
                buffer.clear();
            }
            Event::Empty(start) => {
                open(&mut decoded, &start);
            }
            Event::Text(text) => buffer.push_str(&text.xml10_content()),
            Event::GeneralRef(reference) => match reference.resolve_char_ref().unwrap() {
                Some(c) => buffer.push(c),
                None => {
                    buffer.push_str(quick_xml::escape::resolve_predefined_entity(&reference).expect("known entity"))
                }
            },
            Event::End(_) => {
                let name = stack.pop().expect("balanced");
                match name.as_str() {
                    "MimeContent" => {
                        let bytes = base64::engine::general_purpose::STANDARD
                            .decode(buffer.trim())
                            .expect("MimeContent is base64");
                        decoded.mime = Some(bytes);
                    }
                    "EmailAddress" if stack.iter().any(|s| s == "BccRecipients") => decoded.bcc.push(buffer.clone()),
                    "SmtpAddress" | "PrimarySmtpAddress" => decoded.impersonated = Some(buffer.clone()),
                    _ => {}
                }
                buffer.clear();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert!(stack.is_empty(), "unclosed elements {stack:?}");
    decoded
}

fn open(decoded: &mut Decoded, start: &quick_xml::events::BytesStart<'_>) -> String {
    let name = start.local_name().as_ref().to_owned();
    let attr = |wanted: &str| {
        start
            .attributes()
            .flatten()
            .find(|a| a.key.as_ref() == wanted)
            .map(|a| a.normalized_value(quick_xml::XmlVersion::Implicit1_0).unwrap().into_owned())
    };
    match name.as_str() {
        "Envelope" => decoded.envelope_namespace = attr("xmlns:soap"),
        "RequestServerVersion" => decoded.server_version = attr("Version"),
        "CreateItem" | "GetFolder" => {
            decoded.operation = name.clone();
            decoded.disposition = attr("MessageDisposition");
        }
        _ => {}
    }
    decoded.elements.push(name.clone());
    name
}

/// The recipients Exchange would deliver a decoded CreateItem to: the MIME's To and Cc
/// plus the explicit BccRecipients.
pub fn delivered_to(decoded: &Decoded) -> Vec<String> {
    let mime = decoded.mime.as_deref().unwrap_or_default();
    let parsed = mail_parser::MessageParser::default().parse(mime).expect("MimeContent is a message");
    let mut recipients = Vec::new();
    for list in [parsed.to(), parsed.cc()].into_iter().flatten() {
        for address in list.iter() {
            if let Some(email) = address.address() {
                recipients.push(email.to_ascii_lowercase());
            }
        }
    }
    recipients.extend(decoded.bcc.iter().map(|b| b.to_ascii_lowercase()));
    recipients
}

fn soap_action(request: &Request) -> String {
    request.headers.get("soapaction").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

/// A wiremock responder that behaves like a working Exchange: CreateItem succeeds (or
/// fails with ErrorInvalidRecipients for `rejected`), GetFolder succeeds.
pub struct Exchange {
    pub rejected: Option<String>,
}

impl Respond for Exchange {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let action = soap_action(request);
        let xml = |name: &str| {
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/xml; charset=utf-8")
                .set_body_string(fixture(name))
        };
        if action.ends_with("/GetFolder\"") {
            return xml("get_folder_success.xml");
        }
        if !action.ends_with("/CreateItem\"") {
            return ResponseTemplate::new(400);
        }
        let decoded = decode(&request.body);
        if let Some(rejected) = &self.rejected
            && delivered_to(&decoded).contains(rejected)
        {
            return xml("create_item_invalid_recipients.xml");
        }
        xml("create_item_success.xml")
    }
}

/// Reads one HTTP/1.1 request (headers and a Content-Length body) from `stream`.
pub async fn read_request<S: AsyncRead + Unpin>(stream: &mut S) -> Option<(String, Vec<u8>)> {
    let mut data = Vec::new();
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&data[..header_end]).into_owned();
    let length = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length").then(|| value.trim().parse::<usize>().ok()).flatten()
        })
        .unwrap_or(0);
    while data.len() < header_end + length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&chunk[..n]);
    }
    Some((head, data[header_end..header_end + length].to_vec()))
}

/// How a raw server answers each request.
#[derive(Clone)]
pub enum Answer {
    /// A 200 with this XML body.
    Xml(String),
    /// Read the whole request, then close without a reply.
    Hangup,
    /// Read the whole request, then keep the connection open without a word.
    Silent,
    /// Answer with this status and a page quoting the request's headers and body verbatim,
    /// as some proxies' and servers' error pages do; `soap` wraps the quote in a SOAP fault.
    Echo { status: u16, soap: bool },
}

async fn answer<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, answer: Answer) {
    while let Some((head, body)) = read_request(&mut stream).await {
        match &answer {
            Answer::Silent => {
                tokio::time::sleep(Duration::from_secs(120)).await;
                return;
            }
            Answer::Echo { status, soap } => {
                let quoted = format!("{head}{}", String::from_utf8_lossy(&body));
                let (content_type, page) = if *soap {
                    let escaped = quoted.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
                    (
                        "text/xml; charset=utf-8",
                        format!(
                            r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>Bad request: {escaped}</faultstring></s:Fault></s:Body></s:Envelope>"#
                        ),
                    )
                } else {
                    ("text/html", format!("<html><body><h1>Bad Request</h1><pre>{quoted}</pre></body></html>"))
                };
                let reply = format!(
                    "HTTP/1.1 {status} Whatever\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                    page.len()
                );
                let _ = stream.write_all(reply.as_bytes()).await;
                return;
            }
            Answer::Xml(body) => {
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/xml; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                if stream.write_all(reply.as_bytes()).await.is_err() {
                    return;
                }
            }
            Answer::Hangup => return,
        }
    }
}

/// A raw HTTP server on loopback (for a hang-up after the request, which wiremock cannot do).
pub async fn raw_http(reply: Answer) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        for _ in 0..16 {
            let Ok((stream, _)) = listener.accept().await else { return };
            tokio::spawn(answer(stream, reply.clone()));
        }
    });
    addr
}

/// A loopback listener that accepts connections and never sends a byte (an https:// URI
/// pointing at a port that does not speak first: the TLS handshake never completes).
pub async fn silent_listener() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    addr
}

/// A raw HTTPS server on loopback with a certificate generated now; returns its address and
/// the CA (PEM) that signed it.
pub async fn raw_https(reply: Answer) -> (std::net::SocketAddr, String) {
    let certs = mailroom_testkit::TestCertificates::generate().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(certs.server_config().unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        for _ in 0..16 {
            let Ok((stream, _)) = listener.accept().await else { return };
            let acceptor = acceptor.clone();
            let reply = reply.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(stream).await {
                    answer(tls, reply).await;
                }
            });
        }
    });
    (addr, certs.ca_pem().to_owned())
}

/// Writes `pem` to a temporary file; keep the guard alive while the config is used.
pub fn ca_file(pem: &str) -> (PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, pem).unwrap();
    (path, dir)
}

/// Captures everything `tracing` logs at TRACE level while `f` runs.
pub struct LogCapture(pub Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
