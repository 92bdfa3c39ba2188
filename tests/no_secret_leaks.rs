//! A config whose secrets are sentinel strings, run through every command with and without --json and with RUST_LOG=trace, never prints a sentinel.

use mailroom_e2e::{run_mailroom, write_file};

const SENTINELS: [&str; 4] =
    ["SENTINEL-inline-pw-4f1c", "SENTINEL-env-pw-9a2e", "SENTINEL-client-secret-77b0", "SENTINEL-refresh-3c5d"];

fn configs(dir: &std::path::Path) -> Vec<String> {
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    vec![
        write_file(
            dir,
            "inline.toml",
            &format!(
                "service = \"web_mail\"\nemail_address = \"erp@company.com\"\n[web_mail]\nserver = \"127.0.0.1\"\nport = {closed_port}\nenable_ssl = false\nusername = \"erp@company.com\"\npassword = \"{}\"\ntimeout_secs = 2\n",
                SENTINELS[0]
            ),
        ),
        write_file(
            dir,
            "env.toml",
            &format!(
                "service = \"web_mail\"\nemail_address = \"erp@company.com\"\n[web_mail]\nserver = \"localhost\"\nport = {closed_port}\nenable_ssl = true\nusername = \"erp@company.com\"\npassword_env = \"MAILROOM_PASSWORD\"\ntimeout_secs = 2\n"
            ),
        ),
        write_file(
            dir,
            "exchange.toml",
            &format!(
                "service = \"exchange\"\nemail_address = \"erp@company.com\"\n[exchange]\nuri = \"http://127.0.0.1:{closed_port}/EWS/Exchange.asmx\"\ndomain = \"company.com\"\nusername = \"erp\"\npassword = \"{}\"\n",
                SENTINELS[0]
            ),
        ),
        write_file(
            dir,
            "gmail.toml",
            &format!(
                "service = \"email_services\"\nemail_address = \"erp@company.com\"\n[email_services]\nclient_id = \"1-a.apps.googleusercontent.com\"\nclient_secret = \"{}\"\nrefresh_token_env = \"MAILROOM_GOOGLE_REFRESH\"\ntoken_uri = \"http://127.0.0.1:{closed_port}/token\"\napi_base = \"http://127.0.0.1:{closed_port}/\"\n",
                SENTINELS[2]
            ),
        ),
        // Invalid on purpose: secrets must not leak from error paths either.
        write_file(
            dir,
            "invalid.toml",
            &format!(
                "service = \"web_mail\"\nemail_address = \"erp@company.com\"\n[web_mail]\nserver = \"mail.example.com\"\nport = 70000\nenable_ssl = false\nusername = \"u\"\npassword = \"{}\"\n",
                SENTINELS[0]
            ),
        ),
    ]
}

#[test]
fn no_command_ever_prints_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let data = format!("{}/fixtures/events/overdue_invoice_reminder.json", env!("CARGO_MANIFEST_DIR"));
    let out = dir.path().join("preview");
    let out = out.to_str().unwrap();
    let env = [
        ("MAILROOM_PASSWORD", SENTINELS[1]),
        ("MAILROOM_GOOGLE_REFRESH", SENTINELS[3]),
        ("RUST_LOG", "trace"),
        ("RUST_BACKTRACE", "1"),
    ];
    let mut runs = 0;
    for config in configs(dir.path()) {
        let commands: Vec<Vec<&str>> = vec![
            vec!["validate", "--config", &config],
            vec!["validate", "--config", &config, "--to", "ada@example.com"],
            vec!["diagnose", "--config", &config],
            vec!["send", "--config", &config, "--event", "overdue_invoice_reminder", "--data", &data],
            vec!["connect", "google", "--config", &config],
        ];
        for command in commands {
            for json in [false, true] {
                let mut args = command.clone();
                if json && args[0] != "connect" {
                    args.push("--json");
                }
                let run = run_mailroom(&args, &env);
                runs += 1;
                for sentinel in SENTINELS {
                    assert!(!run.stdout.contains(sentinel), "{args:?} printed {sentinel} on stdout:\n{}", run.stdout);
                    assert!(!run.stderr.contains(sentinel), "{args:?} printed {sentinel} on stderr:\n{}", run.stderr);
                }
                assert!((0..=2).contains(&run.code), "{args:?} exited {}: {}", run.code, run.stderr);
            }
        }
    }
    for args in [
        vec!["events"],
        vec!["events", "--json"],
        vec!["preview", "--event", "overdue_invoice_reminder", "--data", &data, "--out", out],
    ] {
        let run = run_mailroom(&args, &env);
        runs += 1;
        for sentinel in SENTINELS {
            assert!(!run.stdout.contains(sentinel) && !run.stderr.contains(sentinel));
        }
    }
    assert!(runs >= 50);
}
