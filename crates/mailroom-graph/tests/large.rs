//! Messages above one Graph request against the testkit's mocked Microsoft 365: a draft from the MIME without its files, a small file in one POST, a large one through an upload session in 320 KiB-multiple ranges to its pre-authenticated URL, then one `send`; a failed range deletes the draft and sends nothing; a `send` without an answer is `delivery_unknown`; the session's `authtoken` is never shown.

use std::time::{Duration, Instant};

use mailroom_core::config::{CompanyEmail, ServiceConfig};
use mailroom_core::{Attachment, ErrorKind, MessageDraft, OutgoingMessage, SendError, Transport};
use mailroom_graph::{GraphTransport, UPLOAD_CHUNK_BYTES};
use mailroom_testkit::{GraphDraft, MicrosoftFault, MicrosoftTenant, MockMicrosoft365};

mod common;
use common::{config, transport};

/// The secret part of the mock's upload URLs.
const AUTHTOKEN: &str = "mock-authtoken-";

/// Bytes that base64 cannot compress and a shifted copy would not match.
fn file(size: usize, seed: u32) -> Vec<u8> {
    let mut state = seed.wrapping_mul(2_654_435_761).max(1);
    (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

fn message(config: &CompanyEmail, files: Vec<Attachment>) -> OutgoingMessage {
    let mut draft = MessageDraft::new(config.sender.clone())
        .to("customer@example.com".parse().unwrap())
        .bcc("audit@company.com".parse().unwrap())
        .subject("Statement with scans")
        .text("Please find the statement and the scans attached.");
    for file in files {
        draft = draft.attach(file);
    }
    draft.build().unwrap()
}

fn only_draft(mock: &MockMicrosoft365) -> GraphDraft {
    let drafts = mock.drafts();
    assert_eq!(drafts.len(), 1, "{drafts:?}");
    drafts.into_iter().next().unwrap()
}

fn assert_no_authtoken(error: &SendError) {
    let shown = format!(
        "{error}\n{error:?}\n{}\n{}",
        error.transcript().map(ToString::to_string).unwrap_or_default(),
        serde_json::to_string(&error.report()).unwrap()
    );
    assert!(!shown.contains(AUTHTOKEN), "the upload URL's authtoken is shown: {shown}");
}

#[tokio::test]
async fn an_8_mb_message_goes_as_a_draft_a_post_an_upload_session_and_one_send() {
    for (auth, user) in [("application", "/v1.0/users/erp@company.com"), ("delegated", "/v1.0/me")] {
        let started = Instant::now();
        let mock = MockMicrosoft365::start(MicrosoftTenant::company()).await;
        let config = config(&mock, auth);
        let scan = file(5_700_000, 1);
        let photo = file(200_000, 2);
        let message = message(
            &config,
            vec![Attachment::guess("photo.png", photo.clone()), Attachment::guess("scan.pdf", scan.clone())],
        );
        assert!(message.len() > 7_800_000, "{}", message.len());

        let receipt = transport(&config).send(&message).await.unwrap_or_else(|e| panic!("{auth}: {e:?}"));
        assert_eq!(receipt.message_id, message.message_id());
        assert!(mock.sent().is_empty(), "nothing went through sendMail");

        let draft = only_draft(&mock);
        assert_eq!((draft.sends, draft.deleted), (1, false), "{auth}");
        // The draft is the same message without its files: headers, Message-ID and Bcc kept.
        assert!(draft.mime.starts_with(b"Bcc: audit@company.com\r\n"), "{auth}");
        let parsed = mail_parser::MessageParser::default().parse(&draft.mime[..]).unwrap();
        assert_eq!(Some(format!("<{}>", parsed.message_id().unwrap())).as_deref(), Some(message.message_id()));
        assert_eq!(parsed.attachment_count(), 0, "{auth}");
        assert_eq!(parsed.body_text(0).as_deref(), Some("Please find the statement and the scans attached."));
        assert!(draft.mime.len() < 10_000, "{}", draft.mime.len());

        assert_eq!(draft.attachments.len(), 2, "{:?}", draft.attachments);
        let posted = &draft.attachments[0];
        assert_eq!((posted.name.as_str(), posted.content_type.as_str()), ("photo.png", "image/png"));
        assert!(posted.ranges.is_empty(), "a small file goes in one POST");
        assert_eq!(posted.bytes, photo);
        let uploaded = &draft.attachments[1];
        assert_eq!((uploaded.name.as_str(), uploaded.content_type.as_str()), ("scan.pdf", "application/pdf"));
        assert!(uploaded.ranges.len() >= 2, "{:?}", uploaded.ranges);
        let mut next = 0;
        for (index, &(first, last, total)) in uploaded.ranges.iter().enumerate() {
            assert_eq!((first, total), (next, scan.len()), "contiguous ranges of the whole file");
            let count = last + 1 - first;
            assert!(count <= UPLOAD_CHUNK_BYTES);
            if index + 1 < uploaded.ranges.len() {
                assert_eq!(count % 327_680, 0, "every range but the last is a multiple of 320 KiB");
            }
            next = last + 1;
        }
        assert_eq!(next, scan.len(), "the ranges add up to the decoded file");
        assert_eq!(uploaded.bytes, scan, "the reassembled file is the original");

        let requests = mock.requests().await;
        let puts: Vec<_> = requests.iter().filter(|r| r.method.as_str() == "PUT").collect();
        assert_eq!(puts.len(), uploaded.ranges.len());
        assert!(puts.iter().all(|r| !r.headers.contains_key("authorization")), "no Authorization to the upload URL");
        let loopback = mock.uri().trim_start_matches("http://").to_owned();
        assert!(
            puts.iter().all(|r| r.headers.get("host").is_some_and(|h| h == loopback.as_str())),
            "the upload URL is the mock's"
        );
        let paths: Vec<String> = requests
            .iter()
            .filter(|r| r.url.path().starts_with("/v1.0/"))
            .map(|r| format!("{} {}", r.method, r.url.path()))
            .collect();
        let id = &draft.id;
        assert_eq!(
            paths,
            [
                format!("POST {user}/messages"),
                format!("POST {user}/messages/{id}/attachments"),
                format!("POST {user}/messages/{id}/attachments/createUploadSession"),
                format!("POST {user}/messages/{id}/send"),
            ],
            "{auth}"
        );
        eprintln!("{auth}: {} bytes sent as a draft in {:?}", message.len(), started.elapsed());
    }
}

#[tokio::test]
async fn a_failed_range_deletes_the_draft_and_never_sends() {
    for (status, kind) in [(500, ErrorKind::ServiceUnavailable), (413, ErrorKind::MessageTooLarge)] {
        let mock = MockMicrosoft365::start(MicrosoftTenant::company()).await;
        let config = config(&mock, "application");
        mock.fail_upload_put(1, status);
        let message = message(&config, vec![Attachment::guess("scan.pdf", file(3_500_000, 3))]);
        let error = transport(&config).send(&message).await.unwrap_err();
        assert_eq!(error.kind(), kind, "{error:?}");
        assert_ne!(error.kind(), ErrorKind::DeliveryUnknown);
        assert_no_authtoken(&error);
        let transcript = error.transcript().unwrap().to_string();
        assert!(transcript.contains("PUT /upload/") && transcript.contains("[redacted]"), "{transcript}");
        assert!(transcript.contains("the unsent draft was deleted"), "{transcript}");

        let draft = only_draft(&mock);
        assert_eq!((draft.sends, draft.deleted), (0, true), "the draft was deleted and never sent");
        let requests = mock.requests().await;
        assert!(!requests.iter().any(|r| r.url.path().ends_with("/send")), "send was never called");
        assert_eq!(requests.iter().filter(|r| r.method.as_str() == "DELETE").count(), 1, "one DELETE of the draft");
    }
}

#[tokio::test]
async fn a_draft_send_without_an_answer_is_delivery_unknown() {
    let mock = MockMicrosoft365::start(MicrosoftTenant::company()).await;
    let config = config(&mock, "application");
    mock.delay_draft_send(Duration::from_secs(10));
    let message = message(&config, vec![Attachment::guess("scan.pdf", file(3_500_000, 4))]);
    // The request deadline is the connect deadline plus the reply deadline: both short here.
    let ServiceConfig::Graph(mut graph) = config.service.clone() else { panic!("not graph") };
    graph.timeout = Duration::from_millis(500);
    let transport =
        GraphTransport::new(config.sender.clone(), &graph).unwrap().with_send_timeout(Duration::from_secs(1));
    let started = Instant::now();
    let error = transport.send(&message).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::DeliveryUnknown, "{error:?}");
    assert!(!error.retry().is_temporary());
    assert!(started.elapsed() < Duration::from_secs(3), "the send deadline held: {:?}", started.elapsed());
    assert_no_authtoken(&error);
    let draft = only_draft(&mock);
    assert_eq!((draft.sends, draft.deleted), (1, false), "a draft that may have gone out is left alone");
}

#[tokio::test]
async fn a_message_whose_text_alone_is_too_large_is_refused_before_any_request() {
    let mock = MockMicrosoft365::start(MicrosoftTenant::company()).await;
    let config = config(&mock, "application");
    let big = MessageDraft::new(config.sender.clone())
        .to("customer@example.com".parse().unwrap())
        .subject("Statement")
        .text("x".repeat(3_100_000))
        .attach(Attachment::guess("scan.pdf", file(1_000, 5)))
        .build()
        .unwrap();
    let error = transport(&config).send(&big).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::MessageTooLarge);
    assert!(error.detail().contains("non-file parts alone"), "{}", error.detail());
    assert!(mock.requests().await.is_empty(), "nothing was sent, not even a token request");
}

#[tokio::test]
async fn an_app_with_mail_send_only_is_told_that_drafts_need_mail_read_write() {
    let mock = MockMicrosoft365::start(MicrosoftTenant::company()).await;
    let config = config(&mock, "application");
    mock.graph_fault(MicrosoftFault::always(403, "graph_403_access_denied.json"));
    let message = message(&config, vec![Attachment::guess("scan.pdf", file(3_500_000, 6))]);
    let error = transport(&config).send(&message).await.unwrap_err();
    assert_eq!((error.kind(), error.field()), (ErrorKind::PermissionDenied, Some("email_services.auth")));
    assert!(error.remediation().iter().any(|hint| hint.contains("Mail.ReadWrite")), "{:?}", error.remediation());
    assert!(mock.drafts().is_empty());
}
