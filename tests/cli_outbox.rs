//! `mailroom outbox …` and `mailroom reminders` as a user runs them (CONTRACT §5): the real binary, a SQLite file, a loopback SMTP server counting by Message-ID.

use std::path::Path;

use mailroom_e2e::{outbox_config as config, run_mailroom, user_notification, write_file};
use mailroom_testkit::ChaosSmtpServer;
use serde_json::{Value, json};

fn batch(dir: &Path, lines: impl IntoIterator<Item = Value>) -> String {
    let text: String = lines.into_iter().map(|line| format!("{line}\n")).collect();
    write_file(dir, "batch.jsonl", &text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_run_status_list_retry_and_resolve() {
    let server = ChaosSmtpServer::builder().refuse_recipients_containing("nobody").start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), server.addr().port(), "max_attempts = 3");
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/events/user_notification.json");

    let single =
        ["outbox", "enqueue", "--config", &config, "--event", "user_notification", "--data", fixture, "--json"];
    let first = run_mailroom(&single, &[]);
    assert_eq!(first.code, 0, "{first:?}");
    let first = first.json();
    assert_eq!(
        (first["ok"].clone(), first["enqueued"].clone(), first["duplicates"].clone()),
        (json!(true), json!(1), json!(0))
    );
    let again = run_mailroom(&single, &[]).json();
    assert_eq!((again["enqueued"].clone(), again["duplicates"].clone()), (json!(0), json!(1)));
    assert_eq!(again["ids"], first["ids"], "the duplicate is the same message");
    // The default SQLite file lives beside the config when url is not set.
    assert!(dir.path().join("mailroom-outbox.db").exists());

    let lines = (101..=120).map(|n| {
        let email = if n == 107 { "nobody@example.com".to_owned() } else { format!("user{n}@example.com") };
        json!({"event": "user_notification", "data": user_notification(n, &email)})
    });
    let batch_file = batch(
        dir.path(),
        lines.chain([json!({"event": "user_notification", "data": user_notification(101, "x@example.com")})]),
    );
    let enqueued =
        run_mailroom(&["outbox", "enqueue", "--config", &config, "--batch", &batch_file, "--json"], &[]).json();
    assert_eq!((enqueued["enqueued"].clone(), enqueued["duplicates"].clone()), (json!(20), json!(1)));
    assert_eq!(enqueued["ids"].as_array().unwrap().len(), 21);

    let status = run_mailroom(&["outbox", "status", "--config", &config, "--json"], &[]).json();
    assert_eq!(
        status,
        json!({"ok": true, "counts": {"queued": 21, "sending": 0, "sent": 0, "failed": 0, "unknown": 0}})
    );

    let run = run_mailroom(&["outbox", "run", "--config", &config, "--until-empty", "--json"], &[]);
    assert_eq!(run.code, 1, "a failed message makes the run not ok: {run:?}");
    let summary = run.json();
    assert_eq!(summary["ok"], json!(false));
    assert_eq!(
        (summary["sent"].clone(), summary["failed"].clone(), summary["unknown"].clone(), summary["queued"].clone()),
        (json!(20), json!(1), json!(0), json!(0))
    );
    assert!(summary["elapsed_ms"].is_u64());
    let delivered = server.delivered_counts();
    assert_eq!(delivered.len(), 20);
    assert!(delivered.values().all(|n| *n == 1));

    let failed = run_mailroom(&["outbox", "list", "--config", &config, "--state", "failed", "--json"], &[]).json();
    let failed = failed["messages"].as_array().unwrap().clone();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["error"]["kind"], "recipient_rejected");
    assert_eq!(failed[0]["recipients"], json!(["nobody@example.com"]));
    let id = failed[0]["id"].to_string();
    let people = run_mailroom(&["outbox", "list", "--config", &config, "--state", "failed"], &[]);
    assert!(people.stdout.contains("recipient_rejected"), "{}", people.stdout);

    let retried = run_mailroom(&["outbox", "retry", "--config", &config, &id, "--json"], &[]);
    assert_eq!(retried.code, 0, "{retried:?}");
    assert_eq!(retried.json()["state"], "queued");
    let twice = run_mailroom(&["outbox", "retry", "--config", &config, &id, "--json"], &[]);
    assert_eq!(twice.code, 2, "{twice:?}");
    assert_eq!(twice.json()["error"]["kind"], "usage");
    let missing = run_mailroom(&["outbox", "resolve", "--config", &config, "99999", "--sent", "--json"], &[]);
    assert_eq!(missing.code, 2);
    let undecided = run_mailroom(&["outbox", "resolve", "--config", &config, &id, "--json"], &[]);
    assert_eq!(undecided.code, 2, "--sent or --resend is required: {undecided:?}");
    let bad_state = run_mailroom(&["outbox", "list", "--config", &config, "--state", "lost", "--json"], &[]);
    assert_eq!(bad_state.code, 2);

    let table = run_mailroom(&["outbox", "status", "--config", &config], &[]);
    assert!(table.stdout.contains("queued") && table.stdout.contains("       1"), "{}", table.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_batch_line_is_named_and_a_bad_outbox_url_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), 2525, "url = \"sqlite:queue/outbox.db\"");
    std::fs::create_dir(dir.path().join("queue")).unwrap();
    let lines = [
        json!({"event": "user_notification", "data": user_notification(1, "a@example.com")}),
        json!({"event": "user_notification", "data": {"title": 5}}),
    ];
    let batch_file = batch(dir.path(), lines);
    let bad = run_mailroom(&["outbox", "enqueue", "--config", &config, "--batch", &batch_file, "--json"], &[]);
    assert_eq!(bad.code, 2, "{bad:?}");
    let message = bad.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("line 2"), "{message}");
    assert!(dir.path().join("queue/outbox.db").exists(), "a relative url is relative to the config file");

    let wrong = config_with(dir.path(), "url = \"mysql://x\"");
    let refused = run_mailroom(&["outbox", "status", "--config", &wrong, "--json"], &[]);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert_eq!(refused.json()["errors"][0]["field"], "outbox.url");
}

fn config_with(dir: &Path, outbox: &str) -> String {
    config(dir, 2525, outbox)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reminders_go_out_once_however_often_and_wherever_the_job_runs() {
    let server = ChaosSmtpServer::builder().start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), server.addr().port(), "");
    let invoices = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/outbox/invoices.json");
    let job = |today: &'static str| {
        let config = config.clone();
        std::thread::spawn(move || {
            run_mailroom(&["reminders", "--config", &config, "--invoices", invoices, "--today", today, "--json"], &[])
        })
    };
    // Two machines start the daily job at the same moment.
    let (a, b) = (job("2026-11-25"), job("2026-11-25"));
    let (a, b) = (a.join().unwrap(), b.join().unwrap());
    assert_eq!((a.code, b.code), (0, 0), "{a:?}\n{b:?}");
    let (a, b) = (a.json(), b.json());
    // INV-1001 is 14 days overdue, INV-1002 5 days, INV-1003 is paid, INV-1004 not yet due.
    let total = a["enqueued"].as_u64().unwrap() + b["enqueued"].as_u64().unwrap();
    assert_eq!(total, 2, "{a}\n{b}");
    // Whichever job ran first (or both, one getting duplicates), the new messages are these two.
    let mut stages: Vec<(Value, Value)> = [&a, &b]
        .iter()
        .flat_map(|job| job["reminders"].as_array().unwrap().clone())
        .filter(|r| r["duplicate"] == json!(false))
        .map(|r| (r["invoice"].clone(), r["stage"].clone()))
        .collect();
    stages.sort_by_key(|(invoice, _)| invoice.to_string());
    assert_eq!(stages, [(json!("INV-1001"), json!(14)), (json!("INV-1002"), json!(1))]);
    // The same day again: nothing is due any more.
    let rerun = job("2026-11-25").join().unwrap().json();
    assert_eq!((rerun["enqueued"].clone(), rerun["reminders"].clone()), (json!(0), json!([])));
    let run = run_mailroom(&["outbox", "run", "--config", &config, "--until-empty", "--json"], &[]);
    assert_eq!(run.json()["sent"], 2, "{run:?}");
    // A week later INV-1002 reaches stage 7; INV-1001 stays at 14 until day 30.
    let later = job("2026-11-27").join().unwrap().json();
    assert_eq!(later["enqueued"], 1);
    assert_eq!(later["reminders"][0]["stage"], 7);
    run_mailroom(&["outbox", "run", "--config", &config, "--until-empty", "--json"], &[]);
    let delivered = server.delivered_counts();
    assert_eq!(delivered.len(), 3);
    assert!(delivered.values().all(|n| *n == 1), "{delivered:?}");
    let mut recipients: Vec<String> = server.arrivals().iter().map(|a| a.recipients.join(",")).collect();
    recipients.sort();
    assert_eq!(recipients, ["ada@example.com", "grace@example.com", "grace@example.com"]);
}
