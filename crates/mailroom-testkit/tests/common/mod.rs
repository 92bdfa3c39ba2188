//! Loopback clients for the kit's own tests: a raw line-level SMTP client (plain, STARTTLS, implicit TLS) and lettre helpers.
#![allow(dead_code)] // each test binary uses a different subset

use std::net::SocketAddr;
use std::time::Duration;

use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, Tokio1Executor};
use mailroom_testkit::{TestCertificates, localhost_server_name};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Every wait in these tests is bounded by this.
pub const STEP: Duration = Duration::from_secs(5);

pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// A reply as read off the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireReply {
    pub code: u16,
    /// The exact bytes, every line with its CRLF.
    pub raw: String,
}

impl WireReply {
    pub fn text(&self) -> String {
        self.raw.lines().map(|line| &line[4.min(line.len())..]).collect::<Vec<_>>().join("\n")
    }
}

pub struct RawClient {
    stream: BufReader<Box<dyn Stream>>,
}

async fn tls_connect(io: Box<dyn Stream>, certificates: &TestCertificates) -> std::io::Result<Box<dyn Stream>> {
    let connector = TlsConnector::from(certificates.client_config());
    let tls = tokio::time::timeout(STEP, connector.connect(localhost_server_name(), io))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "handshake timed out"))??;
    Ok(Box::new(tls))
}

impl RawClient {
    pub async fn connect(addr: SocketAddr) -> Self {
        let tcp =
            tokio::time::timeout(STEP, TcpStream::connect(addr)).await.expect("connect timed out").expect("connect");
        tcp.set_nodelay(true).unwrap();
        Self { stream: BufReader::new(Box::new(tcp)) }
    }

    pub async fn connect_tls(addr: SocketAddr, certificates: &TestCertificates) -> std::io::Result<Self> {
        let tcp = TcpStream::connect(addr).await?;
        let tls = tls_connect(Box::new(tcp), certificates).await?;
        Ok(Self { stream: BufReader::new(tls) })
    }

    pub async fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes()).await;
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        let stream = self.stream.get_mut();
        tokio::time::timeout(STEP, async {
            stream.write_all(bytes).await?;
            stream.flush().await
        })
        .await
        .expect("write timed out")
        .expect("write");
    }

    /// The next reply; `None` when the server closed the connection.
    pub async fn try_reply(&mut self) -> Option<WireReply> {
        let mut raw = String::new();
        loop {
            let mut line = String::new();
            let read = tokio::time::timeout(STEP, self.stream.read_line(&mut line))
                .await
                .expect("the server did not answer in time");
            match read {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
            assert!(line.ends_with("\r\n"), "reply line without CRLF: {line:?}");
            raw.push_str(&line);
            if line.as_bytes().get(3) == Some(&b' ') || line.len() == 5 {
                let code = line[..3].parse().expect("numeric reply code");
                return Some(WireReply { code, raw });
            }
            assert_eq!(line.as_bytes().get(3), Some(&b'-'), "bad reply line {line:?}");
        }
    }

    pub async fn reply(&mut self) -> WireReply {
        self.try_reply().await.expect("the server closed the connection")
    }

    pub async fn command(&mut self, line: &str) -> WireReply {
        self.send(line).await;
        self.reply().await
    }

    /// Whether the server closes the connection (EOF) within the bounded wait, sending nothing.
    pub async fn closed_without_reply(&mut self) -> bool {
        let mut buffer = [0u8; 64];
        match tokio::time::timeout(STEP, self.stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => true,
            Ok(Ok(n)) => panic!("unexpected bytes: {:?}", String::from_utf8_lossy(&buffer[..n])),
            Err(_) => false,
        }
    }

    /// Whether nothing at all arrives within `wait` (and the connection stays open).
    pub async fn silent_for(&mut self, wait: Duration) -> bool {
        let mut buffer = [0u8; 64];
        tokio::time::timeout(wait, self.stream.read(&mut buffer)).await.is_err()
    }

    pub async fn starttls(self, certificates: &TestCertificates) -> std::io::Result<Self> {
        assert!(self.stream.buffer().is_empty(), "bytes after the STARTTLS reply");
        let io = self.stream.into_inner();
        Ok(Self { stream: BufReader::new(tls_connect(io, certificates).await?) })
    }

    /// Greeting, EHLO, STARTTLS, EHLO again.
    pub async fn connect_starttls(addr: SocketAddr, certificates: &TestCertificates) -> Self {
        let mut client = Self::connect(addr).await;
        assert_eq!(client.reply().await.code, 220);
        assert_eq!(client.command("EHLO client.example").await.code, 250);
        assert_eq!(client.command("STARTTLS").await.code, 220);
        let mut client = client.starttls(certificates).await.expect("STARTTLS handshake");
        assert_eq!(client.command("EHLO client.example").await.code, 250);
        client
    }
}

pub fn b64(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

pub fn lettre_tls_parameters(ca_pem: &str) -> TlsParameters {
    TlsParameters::builder("localhost".to_owned())
        .certificate_store(CertificateStore::None)
        .add_root_certificate(Certificate::from_pem(ca_pem.as_bytes()).expect("CA PEM"))
        .build_rustls()
        .expect("TLS parameters")
}

/// A lettre transport to 127.0.0.1:`port` with the given TLS mode and optional credentials.
pub fn lettre_transport(
    addr: SocketAddr,
    tls: Tls,
    credentials: Option<(&str, &str)>,
    mechanism: Mechanism,
) -> AsyncSmtpTransport<Tokio1Executor> {
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(addr.ip().to_string())
        .port(addr.port())
        .tls(tls)
        .timeout(Some(STEP));
    if let Some((user, password)) = credentials {
        builder =
            builder.credentials(Credentials::new(user.to_owned(), password.to_owned())).authentication(vec![mechanism]);
    }
    builder.build()
}
