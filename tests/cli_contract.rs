//! End-to-end checks of the CLI contract (DESIGN.md §5): exit codes, the JSON object, config errors.

use mailroom_e2e::{run_mailroom, write_file};

const EXCHANGE_BAD_DOMAIN: &str = r#"
service = "exchange"
email_address = "erp@company.com"
[exchange]
uri = "https://mail.company.com/EWS/Exchange.asmx"
domain = "https://company.com/"
username = "erp"
password_env = "MAILROOM_PASSWORD"
"#;

#[test]
fn exchange_domain_in_url_form_is_the_documented_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_file(dir.path(), "exchange.toml", EXCHANGE_BAD_DOMAIN);
    for command in ["validate", "diagnose"] {
        let run = run_mailroom(&[command, "--config", &config, "--json"], &[("MAILROOM_PASSWORD", "pw")]);
        assert_eq!(run.code, 1, "{command}: {run:?}");
        let json = run.json();
        assert_eq!(json["ok"], false);
        assert_eq!(json["error"]["kind"], "invalid_config");
        assert_eq!(json["error"]["field"], "exchange.domain");
        assert_eq!(json["error"]["documented_error"], "exchange_domain");
        let message = json["error"]["message"].as_str().unwrap();
        assert!(message.contains("company.com") && message.contains("https://company.com/"), "{message}");
    }
}

#[test]
fn every_config_error_is_listed_in_json_and_for_people() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_file(
        dir.path(),
        "bad.toml",
        "service = \"web_mail\"\nemail_address = \"nope\"\n[web_mail]\nserver = \"smtp.gmail.com:587\"\nport = 0\n",
    );
    let run = run_mailroom(&["validate", "--config", &config, "--json"], &[]);
    assert_eq!(run.code, 1);
    let json = run.json();
    let fields: Vec<&str> = json["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["email_address", "web_mail.server", "web_mail.port"]);

    let human = run_mailroom(&["validate", "--config", &config], &[]);
    assert_eq!(human.code, 1);
    assert!(human.stdout.contains("The config has 3 problems"), "{}", human.stdout);
    assert!(human.stdout.contains("web_mail.server"));
    assert!(!human.stdout.contains('\x1b'), "no colour codes when piped");
}

#[test]
fn unreadable_or_non_toml_config_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    let run = run_mailroom(&["validate", "--config", missing.to_str().unwrap(), "--json"], &[]);
    assert_eq!(run.code, 2);
    assert_eq!(run.json()["error"]["kind"], "usage");

    let garbage = write_file(dir.path(), "garbage.toml", "service = = web_mail\n");
    let run = run_mailroom(&["diagnose", "--config", &garbage], &[]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("line 1"), "{}", run.stderr);
}

#[test]
fn usage_errors_with_json_still_print_one_json_object() {
    let run = run_mailroom(&["validate", "--json"], &[]);
    assert_eq!(run.code, 2);
    let json = run.json();
    assert_eq!(json["ok"], false);
    assert_eq!(json["error"]["kind"], "usage");
    assert!(json["error"]["message"].as_str().unwrap().contains("--config"), "{json}");
    let run = run_mailroom(&["send", "--bogus", "--json"], &[]);
    assert_eq!((run.code, run.json()["error"]["kind"].as_str()), (2, Some("usage")));
}

#[test]
fn usage_errors_exit_2() {
    let run = run_mailroom(&["validate"], &[]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("--config"));
    let run = run_mailroom(&["--help"], &[]);
    assert_eq!(run.code, 0);
    for command in ["validate", "diagnose", "send", "preview", "connect", "events"] {
        assert!(run.stdout.contains(command), "--help lacks {command}");
    }
}
