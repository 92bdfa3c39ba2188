//! The captured identity-platform and Graph replies of fixtures/microsoft, classified: kind, field to change, retry, and the remediation that names the fix.

use std::time::Duration;

use mailroom_core::config::MicrosoftAuth;
use mailroom_core::{ErrorKind, Retry, SendError};
use mailroom_graph::{ApiError, Context, GraphError, IdentityError, Resource, Step};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../../fixtures/microsoft/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn context(auth: MicrosoftAuth) -> Context {
    Context {
        section: "email_services",
        auth,
        tenant: "company.onmicrosoft.com".into(),
        mailbox: "erp@company.com".into(),
        resource: Resource::Graph,
    }
}

fn token(status: u16, name: &str, auth: MicrosoftAuth) -> SendError {
    let identity = IdentityError::from_body(status, &fixture(name), None).expect("an identity error body");
    GraphError::Identity(identity).classify(&context(auth))
}

fn graph(step: Step, status: u16, name: &str, retry_after: Option<Duration>) -> SendError {
    let api = ApiError::from_body(status, &fixture(name), retry_after);
    GraphError::Api { step, error: api }.classify(&context(MicrosoftAuth::Application))
}

fn advice(error: &SendError) -> String {
    error.remediation().join("\n")
}

#[test]
fn wrong_client_secret_names_the_secret_value() {
    let error = token(401, "token_7000215_invalid_secret.json", MicrosoftAuth::Application);
    assert_eq!((error.kind(), error.field()), (ErrorKind::AuthFailed, Some("email_services.client_secret")));
    assert!(advice(&error).contains("Value (not its Secret ID)"), "{}", advice(&error));
    let reply = error.server_reply().unwrap();
    assert_eq!((reply.code, reply.enhanced.as_deref()), (Some(401), Some("AADSTS7000215")));
    assert!(!reply.text.contains("Trace ID"), "the trailer is cut: {}", reply.text);
}

#[test]
fn expired_client_secret_says_create_a_new_one_with_the_date_when_given() {
    let error = token(401, "token_7000222_expired_secret.json", MicrosoftAuth::Application);
    assert_eq!((error.kind(), error.field()), (ErrorKind::AuthFailed, Some("email_services.client_secret")));
    assert!(advice(&error).starts_with("The client secret expired: create a new one"), "{}", advice(&error));

    let dated = br#"{"error":"invalid_client","error_description":"AADSTS7000222: The provided client secret keys for app 'x' are expired on 2026-11-30. Visit the Azure portal.","error_codes":[7000222]}"#;
    let error = GraphError::Identity(IdentityError::from_body(401, dated, None).unwrap())
        .classify(&context(MicrosoftAuth::Application));
    assert!(
        advice(&error).starts_with("The client secret expired on 2026-11-30: create a new one"),
        "{}",
        advice(&error)
    );
}

#[test]
fn unknown_app_and_unknown_tenant_name_their_fields() {
    let app = token(400, "token_700016_unknown_app.json", MicrosoftAuth::Application);
    assert_eq!((app.kind(), app.field()), (ErrorKind::AuthFailed, Some("email_services.client_id")));
    assert!(advice(&app).contains("Application (client) ID"));
    let tenant = token(400, "token_90002_unknown_tenant.json", MicrosoftAuth::Application);
    assert_eq!((tenant.kind(), tenant.field()), (ErrorKind::AuthFailed, Some("email_services.tenant")));
    assert!(advice(&tenant).contains("Directory (tenant) ID"));
}

#[test]
fn missing_consent_says_grant_admin_consent_for_the_permission() {
    let error = token(400, "token_65001_consent_required.json", MicrosoftAuth::Application);
    assert_eq!(error.kind(), ErrorKind::PermissionDenied);
    assert!(advice(&error).contains("Grant admin consent for Mail.Send"), "{}", advice(&error));
    let smtp =
        Context { section: "web_mail.oauth", resource: Resource::OutlookSmtp, ..context(MicrosoftAuth::Application) };
    let identity = IdentityError::from_body(400, &fixture("token_65001_consent_required.json"), None).unwrap();
    let error = GraphError::Identity(identity).classify(&smtp);
    assert_eq!(error.field(), Some("web_mail.oauth.client_id"));
    assert!(advice(&error).contains("Grant admin consent for SMTP.SendAsApp"), "{}", advice(&error));
}

#[test]
fn expired_refresh_token_asks_to_connect_again() {
    let error = token(400, "token_700082_refresh_expired.json", MicrosoftAuth::Delegated);
    assert_eq!((error.kind(), error.field()), (ErrorKind::OauthReconnectRequired, Some("email_services.token_file")));
    assert!(advice(&error).contains("mailroom connect microsoft"), "{}", advice(&error));
    assert_eq!(error.documented_error(), None);
}

#[test]
fn graph_401_is_auth_failed_and_invalid_audience_points_at_the_endpoints() {
    let error = graph(Step::SendMail, 401, "graph_401_invalid_token.json", None);
    assert_eq!((error.kind(), error.field()), (ErrorKind::AuthFailed, Some("email_services.client_id")));
    let audience = graph(Step::SendMail, 401, "graph_401_invalid_audience.json", None);
    assert_eq!(audience.field(), Some("email_services.api_base"));
}

#[test]
fn access_denied_separates_missing_consent_from_an_access_policy() {
    let consent = graph(Step::SendMail, 403, "graph_403_access_denied.json", None);
    assert_eq!((consent.kind(), consent.field()), (ErrorKind::PermissionDenied, Some("email_services.auth")));
    assert!(advice(&consent).contains("Grant admin consent for Mail.Send"));
    let policy = graph(Step::SendMail, 403, "graph_403_access_policy.json", None);
    assert_eq!((policy.kind(), policy.field()), (ErrorKind::PermissionDenied, Some("email_address")));
    assert!(advice(&policy).contains("Test-ApplicationAccessPolicy -Identity erp@company.com"), "{}", advice(&policy));
}

#[test]
fn mailbox_errors_name_the_sender() {
    for (status, name, kind) in [
        (403, "graph_403_send_as_denied.json", ErrorKind::SenderNotAllowed),
        (404, "graph_404_mailbox_not_enabled.json", ErrorKind::SenderNotAllowed),
        (404, "graph_404_resource_not_found.json", ErrorKind::SenderNotAllowed),
    ] {
        let error = graph(Step::SendMail, status, name, None);
        assert_eq!((error.kind(), error.field()), (kind, Some("email_address")), "{name}");
        assert!(advice(&error).contains("erp@company.com"), "{name}");
    }
    let licence = graph(Step::SendMail, 404, "graph_404_mailbox_not_enabled.json", None);
    assert!(advice(&licence).contains("licence"));
    let me = graph(Step::SendMail, 400, "graph_400_me_with_app_token.json", None);
    assert_eq!((me.kind(), me.field()), (ErrorKind::InvalidConfig, Some("email_services.auth")));
}

#[test]
fn message_errors() {
    let mime = graph(Step::SendMail, 400, "graph_400_invalid_mime.json", None);
    assert_eq!(mime.kind(), ErrorKind::Protocol);
    let recipients = graph(Step::SendMail, 400, "graph_400_invalid_recipients.json", None);
    assert_eq!(recipients.kind(), ErrorKind::RecipientRejected);
    let large = graph(Step::SendMail, 413, "graph_413_too_large.json", None);
    assert_eq!(large.kind(), ErrorKind::MessageTooLarge);
    let bare = GraphError::Api { step: Step::SendMail, error: ApiError::from_body(413, b"<html>", None) }
        .classify(&context(MicrosoftAuth::Application));
    assert_eq!(bare.kind(), ErrorKind::MessageTooLarge);
}

#[test]
fn throttling_carries_the_hint_and_a_504_after_the_message_is_delivery_unknown() {
    let hint = mailroom_graph::retry_after_seconds("2.128");
    let throttled = graph(Step::SendMail, 429, "graph_429_throttled.json", hint);
    assert_eq!(throttled.kind(), ErrorKind::RateLimited);
    assert_eq!(throttled.retry(), Retry::Temporary { after: Some(Duration::from_millis(2128)) });
    let app = graph(Step::SendMail, 429, "graph_429_application_throttled.json", None);
    assert_eq!(app.retry(), Retry::Temporary { after: None });
    let unhealthy = graph(Step::SendMail, 503, "graph_503_unhealthy.json", Some(Duration::from_secs(5)));
    assert_eq!(
        (unhealthy.kind(), unhealthy.retry()),
        (ErrorKind::ServiceUnavailable, Retry::Temporary { after: Some(Duration::from_secs(5)) })
    );
    let gateway = GraphError::Api { step: Step::SendMail, error: ApiError::from_body(504, b"", None) }
        .classify(&context(MicrosoftAuth::Application));
    assert_eq!(gateway.kind(), ErrorKind::DeliveryUnknown);
    assert!(!gateway.retry().is_temporary());
    let probe = GraphError::Api { step: Step::Probe, error: ApiError::from_body(504, b"", None) }
        .classify(&context(MicrosoftAuth::Application));
    assert_eq!(probe.kind(), ErrorKind::ServiceUnavailable);
}

#[test]
fn retry_after_is_bounded_and_never_panics() {
    for value in
        ["", "x", "-3", "NaN", "inf", "1e400", "Wed, 21 Oct 2015 07:28:00 GMT", "18446744073709551616", "0.0001"]
    {
        if let Some(delay) = mailroom_graph::retry_after_seconds(value) {
            assert!(delay <= mailroom_graph::MAX_RETRY_AFTER, "{value}");
        }
    }
}

#[test]
fn no_body_shape_panics() {
    for body in [&b""[..], b"{}", b"{\"error\":1}", b"{\"error\":{\"code\":5}}", b"\xff\xfe", b"[]"] {
        for status in [0, 200, 401, 403, 429, 503, 504, 999] {
            let _ = GraphError::Api { step: Step::SendMail, error: ApiError::from_body(status, body, None) }
                .classify(&context(MicrosoftAuth::Delegated));
            if let Some(identity) = IdentityError::from_body(status, body, None) {
                let _ = GraphError::Identity(identity).classify(&context(MicrosoftAuth::Delegated));
            }
        }
    }
}
