//! Runs the scenario catalogues (fixtures/scenarios/smtp.toml and http.toml): every documented error reproduced against embedded fake servers, for all three services.

use mailroom_e2e::scenarios::{load_catalogue, run_all, table};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_is_classified_as_documented() {
    let scenarios = load_catalogue().unwrap();
    assert!(scenarios.len() >= 30, "the catalogue lost entries");
    let outcomes = run_all(&scenarios).await;
    let report = table(&outcomes);
    println!("{report}");
    let failures: Vec<_> = outcomes
        .iter()
        .filter(|o| !o.passed())
        .map(|o| format!("{}: {} ({})", o.scenario.name, o.kind, o.detail))
        .collect();
    assert!(failures.is_empty(), "{report}\nfailures:\n{}", failures.join("\n"));
}

#[test]
fn the_catalogue_covers_what_the_issue_lists() {
    let names: Vec<String> = load_catalogue().unwrap().into_iter().map(|s| s.name).collect();
    for required in [
        "gmail_bad_password",
        "gmail_app_password_required",
        "office365_bad_password",
        "office365_smtp_auth_disabled",
        "ssl_off_against_starttls_only_gmail",
        "starttls_client_to_implicit_tls_port",
        "implicit_tls_to_starttls_port",
        "ssl_on_server_without_starttls",
        "untrusted_certificate",
        "closed_port",
        "unresolvable_host",
        "sender_not_allowed_at_mail",
        "recipient_rejected",
        "message_too_large_by_size",
        "disconnect_after_message_body",
        "server_never_answers",
        "exchange_domain_with_scheme",
    ] {
        assert!(names.iter().any(|n| n == required), "missing scenario {required}");
    }
    let documented: Vec<String> = load_catalogue().unwrap().into_iter().filter_map(|s| s.documented_error).collect();
    for error in ["authentication", "server_or_port", "ssl_setting", "exchange_domain"] {
        assert!(documented.iter().any(|d| d == error), "no scenario for the documented error {error}");
    }
    let catalogue = load_catalogue().unwrap();
    for service in ["web_mail", "exchange", "email_services"] {
        for kind in ["ok", "auth_failed", "connect_failed"] {
            assert!(
                catalogue.iter().any(|s| s.service == service && s.kind == kind),
                "no {service} scenario expecting {kind}"
            );
        }
    }
}
