//! Rendering every event kind from its fixture: snapshots, MIME structure, Message-IDs, escaping, links, attachments, size limits.

mod support;

use std::collections::BTreeSet;

use base64::Engine as _;
use mail_parser::{MessageParser, MimeHeaders};
use mailroom_core::ErrorKind;
use mailroom_events::{Event, EventError, EventKind, FieldType, Renderer};
use serde_json::{Value, json};
use support::{fixture, fixture_text, renderer, sender};

#[test]
fn every_kind_renders_from_its_fixture() {
    let renderer = renderer();
    for kind in EventKind::ALL {
        let rendered = renderer.render(kind, &fixture_text(kind), &sender()).unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(rendered.kind, kind);
        assert!(!rendered.subject.is_empty() && !rendered.subject.contains('\n'));
        assert!(rendered.text.contains("Northwind Traders"), "{kind}");
        assert!(rendered.html.starts_with("<!DOCTYPE html>"), "{kind}");
        assert!(rendered.message_id().ends_with("@northwind.example>"));
        let eml = String::from_utf8_lossy(rendered.message.bytes()).into_owned();
        assert!(eml.contains(&format!("X-ERP-Event: {kind}\r\n")), "{kind}: {eml}");
    }
}

/// Golden files of subject and text; `UPDATE_SNAPSHOTS=1 cargo test -p mailroom-events` rewrites them.
#[test]
fn subject_and_text_match_the_snapshots() {
    let renderer = renderer();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots");
    let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some_and(|v| v != "0");
    let mut mismatches = Vec::new();
    for kind in EventKind::ALL {
        let rendered = renderer.render(kind, &fixture_text(kind), &sender()).unwrap();
        let actual = format!("Subject: {}\n\n{}", rendered.subject, rendered.text);
        let path = dir.join(format!("{kind}.txt"));
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("{}: {e}; run UPDATE_SNAPSHOTS=1 cargo test -p mailroom-events to create it", path.display())
        });
        if expected != actual {
            mismatches.push(format!("--- {}\n{expected}\n+++ rendered\n{actual}", path.display()));
        }
    }
    assert!(mismatches.is_empty(), "snapshots differ (UPDATE_SNAPSHOTS=1 to accept):\n{}", mismatches.join("\n"));
}

#[test]
fn the_eml_parses_back_with_the_right_headers_parts_and_attachments() {
    let renderer = renderer();
    for kind in EventKind::ALL {
        let data = fixture(kind);
        let rendered = renderer.render(kind, &data, &sender()).unwrap();
        let preview = rendered.preview();
        assert_eq!(preview.file_stem, kind.as_str());
        let parsed =
            MessageParser::default().parse(&preview.eml).unwrap_or_else(|| panic!("{kind}: the .eml does not parse"));

        let from = parsed.from().and_then(|a| a.first()).unwrap();
        assert_eq!(from.address(), Some("erp@northwind.example"));
        assert_eq!(from.name(), Some("Northwind ERP"));
        let to = parsed.to().and_then(|a| a.first()).unwrap();
        assert_eq!(to.address(), data["recipient"]["email"].as_str());
        assert_eq!(to.name(), data["recipient"]["name"].as_str());
        let cc: Vec<&str> = parsed.cc().map(|a| a.iter().filter_map(|m| m.address()).collect()).unwrap_or_default();
        let expected_cc: Vec<&str> =
            data["recipient"]["cc"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(cc, expected_cc, "{kind}");
        assert_eq!(rendered.recipients().len(), 1 + expected_cc.len(), "envelope has To and Cc");
        let reply_to = parsed.reply_to().and_then(|a| a.first()).unwrap();
        assert_eq!(reply_to.address(), Some("help@northwind.example"));
        assert_eq!(parsed.subject(), Some(rendered.subject.as_str()));
        assert_eq!(parsed.message_id().map(|id| format!("<{id}>")), Some(rendered.message_id().to_owned()));
        let event_header = parsed.header("X-ERP-Event").and_then(|h| h.as_text()).map(str::trim);
        assert_eq!(event_header, Some(kind.as_str()));
        assert_eq!(parsed.date().map(|d| d.to_rfc3339()), Some("2026-11-26T09:00:00Z".to_owned()));

        let text = parsed.body_text(0).unwrap();
        assert_eq!(text.replace("\r\n", "\n").trim_end(), rendered.text.trim_end());
        let html = parsed.body_html(0).unwrap();
        assert_eq!(html.replace("\r\n", "\n").trim_end(), rendered.html.trim_end());

        let attachments: Vec<_> = parsed.attachments().collect();
        if kind == EventKind::PackingSlipWithInvoice {
            assert_eq!(attachments.len(), 2);
            for (attachment, field) in attachments.iter().zip(["packing_slip_pdf", "invoice_pdf"]) {
                assert_eq!(attachment.attachment_name(), data[field]["filename"].as_str());
                let content_type = attachment.content_type().unwrap();
                assert_eq!((content_type.ctype(), content_type.subtype()), ("application", Some("pdf")));
                let expected = base64::engine::general_purpose::STANDARD
                    .decode(data[field]["content_base64"].as_str().unwrap())
                    .unwrap();
                assert_eq!(attachment.contents(), expected.as_slice());
            }
            assert_eq!(rendered.attachments.len(), 2);
            assert_eq!(rendered.attachments[0].content_type, "application/pdf");
        } else {
            assert!(attachments.is_empty(), "{kind} has no attachments");
        }
    }
}

#[test]
fn fixture_pdfs_are_well_formed() {
    let data = fixture(EventKind::PackingSlipWithInvoice);
    for field in ["packing_slip_pdf", "invoice_pdf"] {
        let bytes =
            base64::engine::general_purpose::STANDARD.decode(data[field]["content_base64"].as_str().unwrap()).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("%PDF-1.4\n") && text.ends_with("%%EOF\n"));
        // startxref must point at the xref table: readers seek there first.
        let startxref: usize = text.rsplit("startxref\n").next().unwrap().lines().next().unwrap().parse().unwrap();
        assert!(text[startxref..].starts_with("xref\n"), "{field}");
    }
}

#[test]
fn message_ids_are_deterministic_per_event_and_stage() {
    let renderer = renderer();
    let kind = EventKind::OverdueInvoiceReminder;
    let data = fixture(kind);
    let first = renderer.render(kind, &data, &sender()).unwrap();
    let again = Renderer::new().render(kind, &data, &sender()).unwrap();
    assert_eq!(first.message_id(), again.message_id());

    let mut next_stage = data.clone();
    next_stage["reminder_stage"] = json!(30);
    next_stage["as_of"] = json!("2026-12-11");
    let later = renderer.render(kind, &next_stage, &sender()).unwrap();
    assert_ne!(first.message_id(), later.message_id());

    // The recipient's details do not identify the event.
    let mut other_name = data.clone();
    other_name["recipient"]["name"] = json!("A. Lovelace");
    let renamed = renderer.render(kind, &other_name, &sender()).unwrap();
    assert_eq!(first.message_id(), renamed.message_id());

    let mut other_invoice = data;
    other_invoice["invoice"]["number"] = json!("INV-1002");
    let other = renderer.render(kind, &other_invoice, &sender()).unwrap();
    assert_ne!(first.message_id(), other.message_id());

    let ids: BTreeSet<String> = EventKind::ALL
        .iter()
        .map(|&kind| renderer.render(kind, &fixture(kind), &sender()).unwrap().message_id().to_owned())
        .collect();
    assert_eq!(ids.len(), EventKind::ALL.len(), "one id per event");
}

#[test]
fn html_escapes_payload_text_and_text_parts_keep_it_verbatim() {
    let renderer = renderer();
    let hostile = "<script>alert(1)</script>";
    for kind in EventKind::ALL {
        let mut data = fixture(kind);
        data["recipient"]["name"] = json!(hostile);
        data["company"]["name"] = json!("Tom & Jerry's \"Traders\"");
        let rendered = renderer.render(kind, &data, &sender()).unwrap();
        assert!(!rendered.html.contains("<script"), "{kind}: {}", rendered.html);
        assert!(rendered.html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{kind}");
        assert!(rendered.html.contains("Tom &amp; Jerry&#x27;s &quot;Traders&quot;"));
        assert!(rendered.text.contains(hostile), "text is not HTML");
        assert_eq!(rendered.to.name.as_deref(), Some(hostile));
    }
    let mut data = fixture(EventKind::UserNotification);
    data["title"] = json!("Approve <b>PO-5001</b>");
    let rendered = renderer.render(EventKind::UserNotification, &data, &sender()).unwrap();
    assert_eq!(rendered.subject, "Approve <b>PO-5001</b>");
    assert!(rendered.html.contains("Approve &lt;b&gt;PO-5001&lt;/b&gt;"));
}

#[test]
fn the_html_follows_the_mail_layout_rules() {
    let renderer = renderer();
    for kind in EventKind::ALL {
        let rendered = renderer.render(kind, &fixture_text(kind), &sender()).unwrap();
        // Folded lines break only where a space was: compare on one line.
        let html = &rendered.html.replace('\n', " ");
        let locale = fixture(kind)["locale"].as_str().unwrap().to_owned();
        assert!(html.contains(&format!("<html lang=\"{locale}\"")), "{kind}");
        assert!(html.contains("role=\"presentation\""));
        assert!(html.contains("max-width:600px"));
        assert!(
            html.contains(&format!(
                "<title>{}</title>",
                rendered.subject.replace('&', "&amp;").replace('\'', "&#x27;")
            )),
            "{kind}"
        );
        assert!(
            rendered.html.lines().filter(|line| line.len() > 72).count() == 0,
            "{kind}: lines over 72 bytes make lettre quoted-printable-encode the part"
        );
        assert!(!html.to_ascii_lowercase().contains("<script"));
        assert!(!html.contains("javascript:"));
        for img in html.split("<img").skip(1) {
            let tag = img.split('>').next().unwrap();
            assert!(tag.contains("alt=\""), "{kind}: image without alt text");
        }
        // The preheader is the first, hidden, element of the body.
        let body = html.split("<body").nth(1).unwrap();
        let after_body_tag = body.split_once('>').unwrap().1;
        assert!(after_body_tag.trim_start().starts_with("<div style=\"display:none;"), "{kind}");
    }
}

#[test]
fn payment_links_are_a_button_and_plain_text() {
    let renderer = renderer();
    for (kind, url) in [
        (EventKind::DepositPaymentLink, "https://pay.northwind.example/d/SO-1002?t=91bc"),
        (EventKind::InvoicePaymentLink, "https://pay.northwind.example/i/INV-1002?t=c04e"),
    ] {
        let rendered = renderer.render(kind, &fixture_text(kind), &sender()).unwrap();
        let html = rendered.html.replace('\n', " ");
        assert!(html.contains(&format!("<a href=\"{url}\" target=\"_blank\"")), "{kind}: button");
        assert!(html.contains(&format!("> {url}</a>")), "{kind}: link as text");
        assert!(rendered.text.contains(&format!("\n{url}\n")), "{kind}: text link");
    }
}

#[test]
fn links_that_are_not_absolute_https_are_refused_naming_the_field() {
    let cases = [
        ("http://pay.northwind.example/i/1", "http: scheme"),
        ("javascript:alert(1)", "javascript: scheme"),
        ("/pay/INV-1002", "relative URL"),
        ("pay.northwind.example/i/1", "relative URL"),
        ("https://bank.example@evil.example/", "user name or password"),
        ("https://", "not a URL"),
    ];
    for kind in [EventKind::DepositPaymentLink, EventKind::InvoicePaymentLink] {
        for (url, expected) in cases {
            let mut data = fixture(kind);
            data["payment_url"] = json!(url);
            let error = Event::from_value(kind, &data).unwrap_err();
            assert_eq!(error.field(), Some("payment_url"), "{url}: {error}");
            let message = error.to_string();
            assert!(message.starts_with(&format!("the {kind} data field `payment_url` is invalid: ")), "{message}");
            assert!(message.contains(expected), "{url}: {message}");
        }
    }
    let mut data = fixture(EventKind::ShipmentConfirmed);
    data["shipment"]["tracking_url"] = json!("ftp://ups.example/1Z");
    let error = Event::from_value(EventKind::ShipmentConfirmed, &data).unwrap_err();
    assert_eq!(error.field(), Some("shipment.tracking_url"));
}

/// Every leaf and container path of a JSON value, with `[]` for list elements.
fn json_paths(value: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                out.insert(path.clone());
                json_paths(child, &path, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                json_paths(item, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn the_field_lists_match_the_fixtures_exactly() {
    for kind in EventKind::ALL {
        let mut in_fixture = BTreeSet::new();
        json_paths(&fixture(kind), "", &mut in_fixture);
        let listed: BTreeSet<String> = kind.fields().iter().map(|f| f.name.to_owned()).collect();
        let unlisted: Vec<_> = in_fixture.difference(&listed).collect();
        assert!(unlisted.is_empty(), "{kind}: fixture fields missing from fields(): {unlisted:?}");
        let not_exercised: Vec<_> = listed.difference(&in_fixture).collect();
        assert!(not_exercised.is_empty(), "{kind}: fields() lists fields the fixture lacks: {not_exercised:?}");
    }
}

/// Removes the field at a spec path (`[]` = first element) from `value`; false if absent.
fn remove_path(value: &mut Value, path: &str) -> bool {
    let (parent, leaf) = match path.rsplit_once('.') {
        Some((parent, leaf)) => (Some(parent), leaf),
        None => (None, path),
    };
    let mut target = value;
    if let Some(parent) = parent {
        for part in parent.split('.') {
            let (key, element) = match part.strip_suffix("[]") {
                Some(key) => (key, true),
                None => (part, false),
            };
            target = &mut target[key];
            if element {
                target = &mut target[0];
            }
        }
    }
    target.as_object_mut().is_some_and(|map| map.remove(leaf).is_some())
}

#[test]
fn each_required_field_is_reported_by_name_when_missing_and_optional_ones_may_be() {
    for kind in EventKind::ALL {
        for field in kind.fields() {
            let mut data = fixture(kind);
            assert!(remove_path(&mut data, field.name), "{kind}: {}", field.name);
            let result = Event::from_value(kind, &data);
            if field.required {
                let error = result.expect_err(field.name);
                let expected_path = field.name.replace("[]", "[0]");
                assert!(
                    matches!(&error, EventError::MissingField { field, .. } if *field == expected_path),
                    "{kind}: removing {} gave {error}",
                    field.name
                );
                assert_eq!(
                    error.to_string(),
                    format!("the {kind} data is missing the required field `{expected_path}`")
                );
            } else {
                result.unwrap_or_else(|e| panic!("{kind}: {} is optional, yet: {e}", field.name));
            }
        }
    }
}

#[test]
fn unknown_fields_are_refused_by_path() {
    let kind = EventKind::OverdueInvoiceReminder;
    let mut data = fixture(kind);
    data["reminder_stgae"] = json!(7);
    let error = Event::from_value(kind, &data).unwrap_err();
    assert!(matches!(&error, EventError::UnknownField { field, .. } if field == "reminder_stgae"), "{error}");
    assert!(error.to_string().contains("reminder_stage"), "lists the expected fields: {error}");

    let mut data = fixture(kind);
    data["invoice"]["lines"][1]["discount"] = json!("5.00");
    let error = Event::from_value(kind, &data).unwrap_err();
    assert_eq!(error.field(), Some("invoice.lines[1].discount"), "{error}");
}

#[test]
fn bad_values_name_the_field_and_say_why() {
    let cases: [(EventKind, &str, Value, &str, &str); 14] = [
        (EventKind::OverdueInvoiceReminder, "/invoice/amount_due", json!(1250.5), "invoice.amount_due", "binary float"),
        (EventKind::OverdueInvoiceReminder, "/invoice/due_date", json!("11/11/2026"), "invoice.due_date", "YYYY-MM-DD"),
        (EventKind::OverdueInvoiceReminder, "/as_of", json!("2026-11-11"), "as_of", "not overdue yet"),
        (EventKind::OverdueInvoiceReminder, "/currency", json!("USX"), "currency", "ISO 4217"),
        (EventKind::OverdueInvoiceReminder, "/locale", json!("tlh"), "locale", "en-US, en-GB"),
        (
            EventKind::InvoicePaymentLink,
            "/currency",
            json!("JPY"),
            "invoice.amount_due",
            "more decimal places than JPY allows (0)",
        ),
        (EventKind::BillPaymentConfirmed, "/payment/amount", json!("3420.00"), "payment.amount", "add up to €3,420.50"),
        (
            EventKind::DepositPaymentLink,
            "/deposit_amount",
            json!("5000.00"),
            "deposit_amount",
            "more than the order total £4,800.00",
        ),
        (
            EventKind::UserNotification,
            "/recipient/email",
            json!("grace at northwind"),
            "recipient.email",
            "not an e-mail address",
        ),
        (EventKind::UserNotification, "/message", json!("Hello\u{0}world"), "message", "control character"),
        (
            EventKind::OverdueInvoiceReminder,
            "/invoice/lines/0/description",
            json!("tab\u{b}"),
            "invoice.lines[0].description",
            "control character",
        ),
        (EventKind::OverdueInvoiceReminder, "/company/name", json!("Northwind\nTraders"), "company.name", "one line"),
        (
            EventKind::OverdueInvoiceReminder,
            "/recipient/name",
            json!("Ada\r\nBcc: x@evil.example"),
            "recipient.name",
            "one line",
        ),
        (
            EventKind::OverdueInvoiceReminder,
            "/invoice/lines/0/quantity",
            json!(1_234_567_890_123_456_789_u64),
            "invoice.lines[0].quantity",
            "more than 18 digits",
        ),
    ];
    for (kind, pointer, value, field, reason) in cases {
        let mut data = fixture(kind);
        *data.pointer_mut(pointer).unwrap() = value;
        let error = Event::from_value(kind, &data).unwrap_err();
        assert_eq!(error.field(), Some(field), "{kind} {pointer}: {error}");
        assert_eq!(error.event_kind(), Some(kind));
        assert!(error.to_string().contains(reason), "{kind} {pointer}: {error}");
    }
}

#[test]
fn malformed_json_is_reported_with_its_position() {
    let error = Event::from_json(EventKind::GoodsReceived, "{\"recipient\": ").unwrap_err();
    assert!(matches!(error, EventError::InvalidJson { .. }), "{error}");
    assert!(error.to_string().contains("line 1"), "{error}");
    for not_an_object in ["[1, 2]", "42", "\"text\""] {
        let error = Event::from_json(EventKind::GoodsReceived, not_an_object).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the goods_received data is not valid JSON: expected a JSON object holding the payload's fields"
        );
        let value: Value = serde_json::from_str(not_an_object).unwrap();
        assert!(matches!(Event::from_value(EventKind::GoodsReceived, &value), Err(EventError::InvalidJson { .. })));
    }
    let trailing = format!("{} {{}}", fixture_text(EventKind::GoodsReceived));
    assert!(matches!(Event::from_json(EventKind::GoodsReceived, &trailing), Err(EventError::InvalidJson { .. })));
}

#[test]
fn money_and_dates_follow_the_payload_locale_and_currency() {
    let renderer = renderer();
    let rendered = renderer
        .render(EventKind::DepositPaymentLink, &fixture_text(EventKind::DepositPaymentLink), &sender())
        .unwrap();
    assert_eq!(rendered.subject, "Deposit of £1,200.00 for order SO-1002");
    assert!(rendered.text.contains("by 2 December 2026"), "{}", rendered.text);

    let mut data = fixture(EventKind::InvoicePaymentLink);
    data["currency"] = json!("JPY");
    data["invoice"]["amount_due"] = json!("1234567");
    let rendered = renderer.render(EventKind::InvoicePaymentLink, &data, &sender()).unwrap();
    assert_eq!(rendered.subject, "Invoice INV-1002 from Northwind Traders: ¥1,234,567 due December 26, 2026");
    data["currency"] = json!("KWD");
    data["locale"] = json!("de-DE");
    data["invoice"]["amount_due"] = json!("1234.5");
    let rendered = renderer.render(EventKind::InvoicePaymentLink, &data, &sender()).unwrap();
    assert_eq!(rendered.subject, "Invoice INV-1002 from Northwind Traders: 1.234,500\u{a0}KWD due 26. Dezember 2026");
    assert!(rendered.html.contains("<html lang=\"de-DE\""));
}

fn with_pdf_names(slip: &str, invoice: &str) -> Value {
    let mut data = fixture(EventKind::PackingSlipWithInvoice);
    data["packing_slip_pdf"]["filename"] = json!(slip);
    data["invoice_pdf"]["filename"] = json!(invoice);
    data
}

#[test]
fn attachment_names_survive_non_ascii_and_length() {
    let renderer = renderer();
    let slip = "Lieferschein Größe XL – Bestellung SO-1001 für Müller & Söhne GmbH, Lager Nürnberg, Rampe 7.pdf";
    let invoice = format!("請求書 INV-1001 {}.pdf", "x".repeat(120));
    let data = with_pdf_names(slip, &invoice);
    let rendered = renderer.render(EventKind::PackingSlipWithInvoice, &data, &sender()).unwrap();
    let bytes = rendered.message.bytes();
    assert!(bytes.is_ascii(), "headers and names are 7-bit encoded (RFC 2231/2047)");
    assert!(bytes.split(|&b| b == b'\n').all(|line| line.len() <= 998), "RFC 5322 line length");
    let parsed = MessageParser::default().parse(bytes).unwrap();
    let names: Vec<_> = parsed.attachments().filter_map(|a| a.attachment_name()).collect();
    assert_eq!(names, [slip, invoice.as_str()]);
    assert!(rendered.html.contains("Lieferschein Größe XL"));
}

#[test]
fn attachments_must_be_pdfs_with_plain_file_names() {
    for (slip, content, reason) in [
        ("../../etc/passwd.pdf", None, "not a bare file name"),
        ("slip.docx", None, "does not end in .pdf"),
        ("slip.pdf", Some("PK\u{3}\u{4} not a pdf"), "not a PDF"),
    ] {
        let mut data = with_pdf_names(slip, "Invoice.pdf");
        if let Some(content) = content {
            data["packing_slip_pdf"]["content_base64"] =
                json!(base64::engine::general_purpose::STANDARD.encode(content));
        }
        let error = Event::from_value(EventKind::PackingSlipWithInvoice, &data).unwrap_err();
        assert_eq!(error.field(), Some("packing_slip_pdf"), "{error}");
        assert!(error.to_string().contains(reason), "{error}");
    }
    let mut data = fixture(EventKind::PackingSlipWithInvoice);
    data["invoice_pdf"]["content_base64"] = json!("not base64!");
    let error = Event::from_value(EventKind::PackingSlipWithInvoice, &data).unwrap_err();
    assert_eq!(error.field(), Some("invoice_pdf.content_base64"), "{error}");
}

fn packing_slip_with_pdfs_of(size: usize) -> Value {
    let mut pdf = b"%PDF-1.4\n".to_vec();
    pdf.resize(size, b'A');
    let encoded = base64::engine::general_purpose::STANDARD.encode(&pdf);
    let mut data = fixture(EventKind::PackingSlipWithInvoice);
    data["packing_slip_pdf"]["content_base64"] = json!(encoded);
    data["invoice_pdf"]["content_base64"] = json!(encoded);
    data
}

#[test]
fn messages_over_the_size_limit_are_refused_as_message_too_large() {
    let data = packing_slip_with_pdfs_of(200_000);
    let kind = EventKind::PackingSlipWithInvoice;

    // Refused before rendering: the attachments alone exceed the limit.
    let error = renderer().with_max_message_bytes(300_000).render(kind, &data, &sender()).unwrap_err();
    let EventError::MessageTooLarge { size, limit, .. } = error else { panic!("{error}") };
    assert_eq!((size, limit), (400_000, 300_000));
    let send_error = error.send_error().unwrap();
    assert_eq!(send_error.kind(), ErrorKind::MessageTooLarge);
    assert_eq!(send_error.kind().as_str(), "message_too_large");
    assert!(send_error.detail().contains("over the 300000-byte limit"));

    // Refused after building: the encoded files fit, the whole message does not.
    let full = renderer().render(kind, &data, &sender()).unwrap();
    let error = renderer().with_max_message_bytes(full.message.len() - 1).render(kind, &data, &sender()).unwrap_err();
    assert!(matches!(error, EventError::MessageTooLarge { size, .. } if size == full.message.len()), "{error}");

    // At the limit exactly, it goes.
    assert!(renderer().with_max_message_bytes(full.message.len()).render(kind, &data, &sender()).is_ok());
    assert!(EventError::MissingField { kind, field: "x".into() }.send_error().is_none());
}

#[test]
fn event_kinds_list_their_fields_for_the_cli() {
    let fields = EventKind::PackingSlipWithInvoice.fields();
    let content = fields.iter().find(|f| f.name == "invoice_pdf.content_base64").unwrap();
    assert_eq!(content.field_type, FieldType::Base64);
    assert!(content.required);
    let currency = fields.iter().find(|f| f.name == "currency").unwrap();
    assert_eq!(currency.field_type.as_str(), "currency (ISO 4217 code)");
    assert!(!EventKind::UserNotification.fields().iter().any(|f| f.name == "currency"));
}

#[test]
fn mailto_links_cannot_add_header_fields() {
    let mut data = fixture(EventKind::InvoicePaymentLink);
    data["company"]["support_email"] = json!("help?bcc=spy@evil.example");
    let rendered = renderer().render(EventKind::InvoicePaymentLink, &data, &sender()).unwrap();
    assert!(rendered.html.contains("href=\"mailto:help%3Fbcc=spy@evil.example\""), "{}", rendered.html);
    assert!(!rendered.html.contains("mailto:help?"));
}
