//! The driver over HTTPS: a certificate generated at test time (testkit's throw-away CA) in front of the wiremock fake, trusted through the builder, and refused when not trusted.

mod common;

use common::*;
use mailroom_core::{ErrorKind, Transport};
use mailroom_gmail::GmailTransport;
use mailroom_testkit::TestCertificates;
use tokio::net::{TcpListener, TcpStream};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer};

/// Terminates TLS on a loopback port and forwards the plaintext to `backend`; returns the
/// `https://localhost:PORT` base URL.
async fn tls_front(certificates: &TestCertificates, backend: std::net::SocketAddr) -> String {
    let acceptor = tokio_rustls::TlsAcceptor::from(certificates.server_config().unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        for _ in 0..32 {
            let Ok((stream, _)) = listener.accept().await else { return };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else { return };
                let Ok(mut plain) = TcpStream::connect(backend).await else { return };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    format!("https://localhost:{port}")
}

async fn fake_google() -> MockServer {
    let server = MockServer::start().await;
    mount_token_ok(&server).await;
    Mock::given(method("POST")).and(path(SEND_PATH)).respond_with(FakeGmail::default()).mount(&server).await;
    server
}

#[tokio::test]
async fn sends_over_https_to_a_server_whose_ca_is_trusted() {
    let certificates = TestCertificates::generate().unwrap();
    let server = fake_google().await;
    let base = tls_front(&certificates, *server.address()).await;
    let transport =
        GmailTransport::builder(sender(), &config(&base, &base)).trust_root_pem(certificates.ca_pem()).build().unwrap();
    let receipt = transport.send(&message()).await.unwrap();
    assert!(receipt.service_id.is_some());
    assert!(transport.probe().await.is_ok());
}

#[tokio::test]
async fn an_untrusted_certificate_is_tls_certificate_on_the_endpoint_field() {
    let certificates = TestCertificates::generate().unwrap();
    let server = fake_google().await;
    let base = tls_front(&certificates, *server.address()).await;
    let error = GmailTransport::new(sender(), &config(&base, &base)).unwrap().send(&message()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::TlsCertificate, "{error}");
    assert_eq!(error.field(), Some("email_services.token_uri"));
    assert!(server.received_requests().await.unwrap().is_empty());
}

/// True when any remediation step tells the user to set `ca_file`, which [email_services] lacks.
fn advises_ca_file(error: &mailroom_core::SendError) -> bool {
    error.remediation().iter().any(|step| step.contains("ca_file"))
}

#[tokio::test]
async fn a_plain_http_server_on_an_https_endpoint_is_tls_mismatch_not_a_certificate_problem() {
    let server = fake_google().await;
    let plain = format!("https://localhost:{}", server.address().port());
    // On token_uri.
    let error =
        GmailTransport::new(sender(), &config(&plain, &server.uri())).unwrap().send(&message()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::TlsMismatch, "{error}");
    assert_eq!(error.field(), Some("email_services.token_uri"));
    assert!(!advises_ca_file(&error), "{:?}", error.remediation());
    assert!(error.remediation()[0].contains("email_services.token_uri"), "{:?}", error.remediation());
    // On api_base (the token endpoint is fine): nothing was sent, so not delivery_unknown.
    let error =
        GmailTransport::new(sender(), &config(&server.uri(), &plain)).unwrap().send(&message()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::TlsMismatch, "{error}");
    assert_eq!(error.field(), Some("email_services.api_base"));
    assert!(!advises_ca_file(&error), "{:?}", error.remediation());
    // And in the diagnose probe.
    let report = GmailTransport::new(sender(), &config(&plain, &plain)).unwrap().probe().await;
    assert_eq!(report.error.as_ref().map(|e| e.kind()), Some(ErrorKind::TlsMismatch));
}

#[tokio::test]
async fn an_untrusted_certificate_gets_no_ca_file_advice() {
    let certificates = TestCertificates::generate().unwrap();
    let server = fake_google().await;
    let base = tls_front(&certificates, *server.address()).await;
    let error = GmailTransport::new(sender(), &config(&base, &base)).unwrap().send(&message()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::TlsCertificate, "{error}");
    assert!(!advises_ca_file(&error), "{:?}", error.remediation());
}

#[test]
fn garbage_extra_roots_are_refused_at_build() {
    let server_uri = "http://127.0.0.1:9";
    let error = GmailTransport::builder(sender(), &config(server_uri, server_uri))
        .trust_root_pem("not a pem")
        .build()
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidConfig);
}
