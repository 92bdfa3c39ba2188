//! Real HTTPS on loopback with a certificate generated at test time (trusted through `ca_file`, or not), and the `diagnose` probe's steps and suggestions.

mod common;

use common::*;
use mailroom_core::{ErrorKind, StepOutcome, Transport};
use mailroom_ews::EwsTransport;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn step_names(report: &mailroom_core::ProbeReport) -> Vec<(&str, StepOutcome)> {
    report.steps.iter().map(|s| (s.name.as_str(), s.outcome)).collect()
}

#[tokio::test]
async fn sends_over_https_trusting_the_ca_file() {
    let (addr, ca_pem) = raw_https(Answer::Xml(fixture("create_item_success.xml"))).await;
    let (ca_path, _guard) = ca_file(&ca_pem);
    let mut trusted = config(&format!("https://localhost:{}{EWS_PATH}", addr.port()));
    trusted.ca_file = Some(ca_path);
    let transport = EwsTransport::new(sender(), &trusted).unwrap();
    transport.send(&message("over tls")).await.unwrap();
    // The pooled connection is reused for the next message.
    transport.send(&message("again")).await.unwrap();
}

#[tokio::test]
async fn an_untrusted_certificate_is_tls_certificate_on_ca_file() {
    let (addr, _ca_pem) = raw_https(Answer::Xml(fixture("create_item_success.xml"))).await;
    let transport =
        EwsTransport::new(sender(), &config(&format!("https://localhost:{}{EWS_PATH}", addr.port()))).unwrap();
    let error = transport.send(&message("untrusted")).await.unwrap_err();
    assert_eq!((error.kind(), error.field()), (ErrorKind::TlsCertificate, Some("exchange.ca_file")), "{error}");
    let probe = transport.probe().await;
    assert_eq!(
        step_names(&probe),
        [("resolve", StepOutcome::Ok), ("connect", StepOutcome::Ok), ("tls", StepOutcome::Failed)]
    );
    assert_eq!(probe.error.unwrap().kind(), ErrorKind::TlsCertificate);
}

#[tokio::test]
async fn https_to_a_plain_http_port_is_a_tls_mismatch() {
    let server = MockServer::start().await;
    let port = server.address().port();
    let transport = EwsTransport::new(sender(), &config(&format!("https://127.0.0.1:{port}{EWS_PATH}"))).unwrap();
    let error = transport.send(&message("plain")).await.unwrap_err();
    assert_eq!((error.kind(), error.field()), (ErrorKind::TlsMismatch, Some("exchange.uri")), "{error}");
}

#[tokio::test]
async fn the_probe_walks_every_step_over_https() {
    let (addr, ca_pem) = raw_https(Answer::Xml(fixture("get_folder_success.xml"))).await;
    let (ca_path, _guard) = ca_file(&ca_pem);
    let mut trusted = config(&format!("https://localhost:{}{EWS_PATH}", addr.port()));
    trusted.ca_file = Some(ca_path);
    let report = EwsTransport::new(sender(), &trusted).unwrap().probe().await;
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(
        step_names(&report),
        [
            ("resolve", StepOutcome::Ok),
            ("connect", StepOutcome::Ok),
            ("tls", StepOutcome::Ok),
            ("auth", StepOutcome::Ok),
            ("mailbox", StepOutcome::Ok),
        ]
    );
    assert!(report.steps[2].detail.contains("TLS"), "{}", report.steps[2].detail);
    assert!(report.steps[4].detail.contains("NoError"));
}

#[tokio::test]
async fn the_probe_suggests_oauth_when_the_server_wants_modern_auth() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(401)
                .append_header("www-authenticate", "Basic Realm=\"\"")
                .insert_header("ms-diagnostics-public", "000000;reason=\"Modern Auth is required.\""),
        )
        .mount(&server)
        .await;
    let report = EwsTransport::new(sender(), &config(&format!("{}{EWS_PATH}", server.uri()))).unwrap().probe().await;
    assert!(!report.is_ok());
    assert_eq!(report.steps.last().map(|s| (s.name.as_str(), s.outcome)), Some(("auth", StepOutcome::Failed)));
    assert_eq!(report.steps[2].outcome, StepOutcome::Skipped, "no TLS on loopback http://");
    assert_eq!(report.error.as_ref().unwrap().kind(), ErrorKind::AuthDisabled);
    assert_eq!(report.suggestions.len(), 1, "{:?}", report.suggestions);
    assert_eq!(report.suggestions[0].settings, [("exchange.auth", "\"oauth\"".to_owned())]);
    assert!(report.suggestions[0].summary.contains("wants OAuth"));
}

#[tokio::test]
async fn the_probe_suggests_the_usual_ews_path_on_404() {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(404)).mount(&server).await;
    let report = EwsTransport::new(sender(), &config(&format!("{}/owa/", server.uri()))).unwrap().probe().await;
    assert_eq!(report.error.as_ref().unwrap().field(), Some("exchange.uri"));
    let expected = format!("\"{}/EWS/Exchange.asmx\"", server.uri());
    assert_eq!(report.suggestions.first().map(|s| s.settings.clone()), Some(vec![("exchange.uri", expected)]));
}

/// A GetFolder answered with a relative redirect: the target is resolved against
/// exchange.uri and becomes a setting only when a GetFolder there succeeds.
#[tokio::test]
async fn a_relative_redirect_is_suggested_only_once_verified() {
    for target_works in [true, false] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(EWS_PATH))
            .respond_with(ResponseTemplate::new(302).insert_header("location", "/EWS/Exchange2.asmx"))
            .mount(&server)
            .await;
        let at_target = if target_works {
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/xml; charset=utf-8")
                .set_body_string(fixture("get_folder_success.xml"))
        } else {
            ResponseTemplate::new(404)
        };
        Mock::given(method("POST")).and(path("/EWS/Exchange2.asmx")).respond_with(at_target).mount(&server).await;
        let report =
            EwsTransport::new(sender(), &config(&format!("{}{EWS_PATH}", server.uri()))).unwrap().probe().await;
        let error = report.error.as_ref().expect("the configured URI redirects");
        assert_eq!((error.kind(), error.field()), (ErrorKind::Protocol, Some("exchange.uri")));
        let absolute = format!("{}/EWS/Exchange2.asmx", server.uri());
        assert_eq!(report.suggestions.len(), 1, "{:?}", report.suggestions);
        let suggestion = &report.suggestions[0];
        assert!(suggestion.summary.contains(&absolute), "{}", suggestion.summary);
        if target_works {
            assert_eq!(suggestion.settings, [("exchange.uri", format!("\"{absolute}\""))]);
        } else {
            assert!(suggestion.settings.is_empty(), "an unverified target is no setting: {suggestion:?}");
            assert!(suggestion.summary.contains("unverified"), "{}", suggestion.summary);
        }
        for step in &report.suggestions {
            for (_, value) in &step.settings {
                assert!(value.starts_with("\"http"), "never a relative URI: {value}");
            }
        }
        assert!(!error.remediation().iter().any(|r| r.contains("uri = \"/EWS")), "{:?}", error.remediation());
    }
}

/// A redirect to another host is never checked with the credentials, and a cleartext one
/// off loopback is never suggested at all.
#[tokio::test]
async fn redirects_elsewhere_are_never_verified_or_suggested_as_settings() {
    for (location, suggested) in
        [("https://mail2.company.com/EWS/Exchange.asmx", true), ("http://mail2.company.com/EWS/Exchange.asmx", false)]
    {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(301).insert_header("location", location))
            .mount(&server)
            .await;
        let report =
            EwsTransport::new(sender(), &config(&format!("{}{EWS_PATH}", server.uri()))).unwrap().probe().await;
        assert_eq!(
            server.received_requests().await.unwrap().len(),
            1,
            "{location}: one GetFolder, to the configured URI"
        );
        assert!(report.suggestions.iter().all(|s| s.settings.is_empty()), "{location}: {:?}", report.suggestions);
        assert_eq!(report.suggestions.len(), usize::from(suggested), "{location}: {:?}", report.suggestions);
    }
}
