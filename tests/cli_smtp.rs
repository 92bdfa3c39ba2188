//! `mailroom validate` / `diagnose` against the testkit's provider personas: the JSON contract with real (captured) replies, validate-then-save, and no secret in any output.

use mailroom_e2e::{run_mailroom, write_file};
use mailroom_testkit::{Fault, Persona, ScriptedSmtpServer};

const USER: &str = "erp@company.com";
const PASSWORD: &str = "SENTINEL-persona-pw-0c9d";

async fn persona(persona: Persona, fault: Fault) -> ScriptedSmtpServer {
    persona.account(USER, PASSWORD).fault(fault).start().await.unwrap()
}

fn write_config(dir: &std::path::Path, server: &ScriptedSmtpServer, tls: &str) -> String {
    let ca = write_file(dir, "ca.pem", server.ca_pem());
    write_file(
        dir,
        "company-email.toml",
        &format!(
            "service = \"web_mail\"\nemail_address = \"{USER}\"\ndisplay_name = \"Company ERP\"\n[web_mail]\nserver = \"localhost\"\nport = {}\nenable_ssl = true\ntls = \"{tls}\"\nusername = \"{USER}\"\npassword_env = \"MAILROOM_PASSWORD\"\nca_file = \"{ca}\"\ntimeout_secs = 5\n",
            server.addr().port()
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn gmail_app_password_required_in_the_json_contract() {
    let server = persona(Persona::gmail_587(), Fault::AppPasswordRequired).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &server, "starttls");
    let run = run_mailroom(&["validate", "--config", &config, "--json"], &[("MAILROOM_PASSWORD", PASSWORD)]);
    assert_eq!(run.code, 1, "{run:?}");
    let json = run.json();
    assert_eq!(json["ok"], false);
    assert_eq!(json["service"], "web_mail");
    assert!(json["elapsed_ms"].is_u64());
    let error = &json["error"];
    assert_eq!(error["kind"], "app_password_required");
    assert_eq!(error["documented_error"], "authentication");
    assert_eq!(error["field"], "web_mail.password");
    assert_eq!(error["retryable"], false);
    assert_eq!(error["server_reply"]["code"], 534);
    assert_eq!(error["server_reply"]["enhanced"], "5.7.9");
    assert!(error["server_reply"]["text"].as_str().unwrap().contains("Application-specific password required"));
    let message = error["message"].as_str().unwrap();
    assert!(message.starts_with("Cannot complete the request. Cannot send a test mail."), "{message}");
    assert!(message.contains("The server response was: 5.7.9 Application-specific password required."), "{message}");
    let remediation = error["remediation"].to_string();
    assert!(remediation.contains("2-Step Verification") && remediation.contains("App passwords"), "{remediation}");
    assert!(!run.stdout.contains(PASSWORD) && !run.stderr.contains(PASSWORD));
}

#[tokio::test(flavor = "multi_thread")]
async fn office365_smtp_auth_disabled_for_people() {
    let server = persona(Persona::office365_587(), Fault::SmtpAuthDisabled).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &server, "starttls");
    let run =
        run_mailroom(&["validate", "--config", &config], &[("MAILROOM_PASSWORD", PASSWORD), ("RUST_LOG", "trace")]);
    assert_eq!(run.code, 1, "{run:?}");
    for needle in [
        "Cannot complete the request",
        "Field to change: web_mail.username",
        "Server reply: 535 5.7.139",
        "Authenticated SMTP",
        "C: AUTH LOGIN\n",
        "S: 334 VXNlcm5hbWU6",
        "C: [redacted]",
    ] {
        assert!(run.stdout.contains(needle), "missing {needle:?} in:\n{}", run.stdout);
    }
    assert!(
        !run.stdout.contains(PASSWORD) && !run.stderr.contains(PASSWORD),
        "the password leaked with RUST_LOG=trace"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn save_only_after_a_successful_validate() {
    let good = persona(Persona::gmail_587(), Fault::None).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &good, "starttls");
    let saved = dir.path().join("saved.toml");
    let run = run_mailroom(
        &["validate", "--config", &config, "--save", saved.to_str().unwrap(), "--json"],
        &[("MAILROOM_PASSWORD", PASSWORD)],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let json = run.json();
    assert_eq!(json["ok"], true);
    assert!(json["message_id"].as_str().unwrap().ends_with("@company.com>"));
    assert_eq!(std::fs::read_to_string(&saved).unwrap(), std::fs::read_to_string(&config).unwrap());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&saved).unwrap().permissions().mode() & 0o777,
            0o600,
            "a saved config may hold a password"
        );
    }
    let received = good.messages();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].recipients, [USER], "the test mail goes to the sender itself");

    let bad = persona(Persona::gmail_587(), Fault::BadPassword).await;
    let bad_dir = tempfile::tempdir().unwrap();
    let bad_config = write_config(bad_dir.path(), &bad, "starttls");
    let not_saved = bad_dir.path().join("saved.toml");
    let run = run_mailroom(
        &["validate", "--config", &bad_config, "--save", not_saved.to_str().unwrap()],
        &[("MAILROOM_PASSWORD", PASSWORD)],
    );
    assert_eq!(run.code, 1);
    assert!(!not_saved.exists(), "a failed validate must not save");
}

#[tokio::test(flavor = "multi_thread")]
async fn diagnose_reports_steps_and_the_working_setting() {
    let server = persona(Persona::gmail_465(), Fault::None).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &server, "starttls");
    let run = run_mailroom(&["diagnose", "--config", &config, "--json"], &[("MAILROOM_PASSWORD", PASSWORD)]);
    assert_eq!(run.code, 1, "{run:?}");
    let json = run.json();
    assert_eq!(json["error"]["kind"], "tls_mismatch");
    assert_eq!(json["error"]["documented_error"], "ssl_setting");
    let steps: Vec<&str> = json["steps"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(steps, ["resolve", "connect", "greeting"]);
    let suggestions = json["suggestions"].to_string();
    assert!(suggestions.contains("expects implicit TLS: set tls = \\\"implicit\\\""), "{suggestions}");
    assert!(server.messages().is_empty());
}
