//! `mailroom events`, `preview` and `send` end to end: files written, the rendered event delivered through a fake server, bad data named by field.

use mailroom_e2e::{run_mailroom, write_file};
use mailroom_testkit::FakeSmtpServer;

const USER: &str = "erp@company.com";
const PASSWORD: &str = "SENTINEL-events-pw-77aa";

fn fixture(kind: &str) -> String {
    format!("{}/fixtures/events/{kind}.json", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn events_lists_every_kind_with_its_fields() {
    let run = run_mailroom(&["events", "--json"], &[]);
    assert_eq!(run.code, 0);
    let json = run.json();
    let kinds: Vec<&str> = json["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.len(), 10);
    for kind in ["overdue_invoice_reminder", "shipment_confirmed", "packing_slip_with_invoice", "user_notification"] {
        assert!(kinds.contains(&kind), "{kind}");
    }
    let human = run_mailroom(&["events"], &[]);
    assert!(human.stdout.contains("invoice.due_date") && human.stdout.contains("required"));
}

#[test]
fn preview_writes_eml_html_and_txt() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let run = run_mailroom(
        &[
            "preview",
            "--event",
            "shipment_confirmed",
            "--data",
            &fixture("shipment_confirmed"),
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let eml = std::fs::read_to_string(out.join("shipment_confirmed.eml")).unwrap();
    assert!(eml.contains("X-ERP-Event: shipment_confirmed"));
    let html = std::fs::read_to_string(out.join("shipment_confirmed.html")).unwrap();
    assert!(html.contains("<html") && !html.contains("<script"));
    assert!(std::fs::read_to_string(out.join("shipment_confirmed.txt")).unwrap().contains("1Z"));
}

#[test]
fn missing_payload_fields_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut data: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("overdue_invoice_reminder")).unwrap()).unwrap();
    data["invoice"].as_object_mut().unwrap().remove("due_date");
    let file = write_file(dir.path(), "bad.json", &data.to_string());
    let run = run_mailroom(
        &[
            "preview",
            "--event",
            "overdue_invoice_reminder",
            "--data",
            &file,
            "--out",
            dir.path().to_str().unwrap(),
            "--json",
        ],
        &[],
    );
    assert_eq!(run.code, 2);
    assert!(run.json()["error"]["message"].as_str().unwrap().contains("invoice.due_date"), "{}", run.stdout);
    assert_eq!(run.json()["error"]["field"], "invoice.due_date", "the JSON names the field too");
}

#[tokio::test(flavor = "multi_thread")]
async fn send_delivers_the_rendered_event_with_its_attachments() {
    let server = FakeSmtpServer::builder().account(USER, PASSWORD).require_auth(true).start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = write_file(dir.path(), "ca.pem", server.ca_pem());
    let config = write_file(
        dir.path(),
        "company-email.toml",
        &format!(
            "service = \"web_mail\"\nemail_address = \"{USER}\"\ndisplay_name = \"Company ERP\"\n[web_mail]\nserver = \"localhost\"\nport = {}\nenable_ssl = true\nusername = \"{USER}\"\npassword_env = \"MAILROOM_PASSWORD\"\nca_file = \"{ca}\"\n",
            server.addr().port()
        ),
    );
    let env = [("MAILROOM_PASSWORD", PASSWORD), ("RUST_LOG", "trace")];
    let data = fixture("packing_slip_with_invoice");
    let run = run_mailroom(
        &["send", "--config", &config, "--event", "packing_slip_with_invoice", "--data", &data, "--json"],
        &env,
    );
    assert_eq!(run.code, 0, "{run:?}");
    let json = run.json();
    assert_eq!(json["event"], "packing_slip_with_invoice");
    let redirected = run_mailroom(
        &[
            "send",
            "--config",
            &config,
            "--event",
            "packing_slip_with_invoice",
            "--data",
            &data,
            "--to",
            "qa@company.com",
        ],
        &env,
    );
    assert_eq!(redirected.code, 0, "{redirected:?}");
    assert!(
        !run.stderr.contains(PASSWORD)
            && !redirected.stdout.contains(PASSWORD)
            && !redirected.stderr.contains(PASSWORD)
    );

    let received = server.wait_for_messages(2, std::time::Duration::from_secs(5)).await.unwrap();
    let first = received[0].parsed();
    assert_eq!(first.attachments.len(), 2);
    assert!(first.attachments.iter().all(|a| a.content_type == "application/pdf" && a.bytes.starts_with(b"%PDF-")));
    assert_eq!(first.header("Message-ID").map(str::trim), json["message_id"].as_str());
    assert_eq!(received[1].recipients, ["qa@company.com"], "--to sends only to the given address");
    assert_ne!(
        received[1].parsed().header("Message-ID"),
        first.header("Message-ID"),
        "a redirected test copy must not share the real send's Message-ID"
    );
    assert_eq!(received[1].parsed().to[0].address, "qa@company.com");
}

fn web_mail_config(dir: &std::path::Path, server: &FakeSmtpServer) -> String {
    let ca = write_file(dir, "ca.pem", server.ca_pem());
    write_file(
        dir,
        "company-email.toml",
        &format!(
            "service = \"web_mail\"\nemail_address = \"{USER}\"\ndisplay_name = \"Company ERP\"\n[web_mail]\nserver = \"localhost\"\nport = {}\nenable_ssl = true\nusername = \"{USER}\"\npassword_env = \"MAILROOM_PASSWORD\"\nca_file = \"{ca}\"\n",
            server.addr().port()
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn send_uses_the_same_template_overrides_and_size_limit_as_preview() {
    let server = FakeSmtpServer::builder().account(USER, PASSWORD).require_auth(true).start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = web_mail_config(dir.path(), &server);
    let templates = dir.path().join("templates");
    std::fs::create_dir_all(&templates).unwrap();
    write_file(&templates, "invoice_payment_link.subject.txt", "OVERRIDDEN subject for {{ invoice.number }}");
    let env = [("MAILROOM_PASSWORD", PASSWORD)];
    let data = fixture("invoice_payment_link");
    let templates_arg = templates.to_str().unwrap();
    let args = ["send", "--config", &config, "--event", "invoice_payment_link", "--data", &data, "--json"];
    let run = run_mailroom(&[&args[..], &["--templates", templates_arg]].concat(), &env);
    assert_eq!(run.code, 0, "{run:?}");
    let received = server.wait_for_messages(1, std::time::Duration::from_secs(5)).await.unwrap();
    let subject = received[0].parsed().subject.clone().unwrap_or_default();
    assert!(subject.starts_with("OVERRIDDEN subject for INV-"), "{subject}");

    let too_small = run_mailroom(&[&args[..], &["--max-message-bytes", "1000"]].concat(), &env);
    assert_eq!(too_small.code, 1, "{too_small:?}");
    assert_eq!(too_small.json()["error"]["kind"], "message_too_large");
}

#[test]
fn preview_as_a_configs_sender_needs_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_file(
        dir.path(),
        "company-email.toml",
        "service = \"web_mail\"\nemail_address = \"erp@company.com\"\ndisplay_name = \"Company ERP\"\n[web_mail]\nserver = \"smtp.company.com\"\nport = 587\nenable_ssl = true\nusername = \"erp@company.com\"\npassword_env = \"MAILROOM_TEST_UNSET_PASSWORD\"\n",
    );
    let out = dir.path().join("out");
    let run = run_mailroom(
        &[
            "preview",
            "--event",
            "order_released",
            "--data",
            &fixture("order_released"),
            "--out",
            out.to_str().unwrap(),
            "--config",
            &config,
            "--json",
        ],
        &[],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let eml = std::fs::read_to_string(out.join("order_released.eml")).unwrap();
    assert!(eml.contains("From: \"Company ERP\" <erp@company.com>"), "{eml}");
}
