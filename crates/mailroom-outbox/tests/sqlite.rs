//! The outbox on a real SQLite file with the real SMTP driver and loopback servers: idempotent enqueue, dispatch, retries, unknowns, the crash rule, quota and pacing.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use mailroom_core::RetryPolicy;
use mailroom_outbox::{Dispatcher, Progress, Resolution, RunOptions, State, StopReason, StoreError, bulk_retry};
use mailroom_testkit::{ChaosSmtpServer, Fate};

fn quick(worker: &str) -> RunOptions {
    let retry = RetryPolicy {
        initial_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        ..bulk_retry(8)
    };
    RunOptions { retry, max_wait: Duration::from_secs(5), ..RunOptions::until_empty(worker) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_is_idempotent_on_the_message_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir).await;
    let first = store.enqueue(&messages(3)).await.unwrap();
    assert!(first.iter().all(|e| !e.duplicate));
    let mut again = messages(4);
    again.push(message(0, "someone-else@example.com"));
    let second = store.enqueue(&again).await.unwrap();
    let duplicates: Vec<bool> = second.iter().map(|e| e.duplicate).collect();
    assert_eq!(duplicates, [true, true, true, false, true]);
    assert_eq!(second[0].id, first[0].id);
    assert_eq!(second[4].id, first[0].id, "same Message-ID, same message, whatever the recipient");
    assert_eq!(store.counts().await.unwrap().queued, 4);
    // Many messages at once go in multi-row INSERTs of 100: a Message-ID repeated within one
    // call, in the same statement or a later one, is the first one's duplicate.
    let mut many = messages(250);
    many.insert(150, message(120, "again@example.com"));
    many.insert(10, message(5, "again@example.com"));
    let third = store.enqueue(&many).await.unwrap();
    assert_eq!(third.len(), 252);
    let repeated: Vec<usize> = (0..third.len()).filter(|&i| third[i].duplicate).collect();
    assert_eq!(repeated, [0, 1, 2, 3, 10, 151], "the four stored before, then the two repeats");
    assert_eq!(third[10].id, third[5].id, "order-5 again");
    assert_eq!(third[151].id, third[121].id, "order-120 again");
    assert_eq!(third[0].id, first[0].id);
    assert_eq!(store.counts().await.unwrap().queued, 250);
    // The file is WAL and survives reopening.
    drop(store);
    let reopened = sqlite_store(&dir).await;
    assert_eq!(reopened.counts().await.unwrap().queued, 250);
    assert!(dir.path().join("outbox.db-wal").exists());
}

/// An ERP inserting a row itself (ARCHITECTURE.md "The outbox table") fills only the required
/// columns; the defaults fill the rest, `created_ms` included: written with `julianday`, not
/// `unixepoch('subsec')`, so an ERP's own SQLite older than 3.42 can insert too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insert_of_only_the_required_columns_gets_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir).await;
    let erp = sqlx::SqlitePool::connect(&format!("sqlite:{}", dir.path().join("outbox.db").display())).await.unwrap();
    let before = mailroom_outbox::now_ms();
    sqlx::query(
        "INSERT INTO mailroom_outbox (message_id, envelope_from, recipients, message) \
         VALUES ('<erp-1@company.com>', 'erp@company.com', 'ada@example.com', CAST('Subject: hi\r\n\r\nhello\r\n' AS BLOB)) \
         ON CONFLICT (message_id) DO NOTHING",
    )
    .execute(&erp)
    .await
    .unwrap();
    let after = mailroom_outbox::now_ms();
    let (state, attempts, not_before_ms, created_ms): (String, i64, i64, i64) = sqlx::query_as(
        "SELECT state, attempts, not_before_ms, created_ms FROM mailroom_outbox WHERE message_id = '<erp-1@company.com>'",
    )
    .fetch_one(&erp)
    .await
    .unwrap();
    assert_eq!((state.as_str(), attempts, not_before_ms), ("queued", 0, 0));
    // julianday keeps milliseconds; the float arithmetic may land one below.
    assert!((before - 1..=after).contains(&created_ms), "{before} <= {created_ms} <= {after}");
    erp.close().await;
    assert_eq!(store.counts().await.unwrap().queued, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_goes_out_once_through_temporary_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir).await;
    let server = ChaosSmtpServer::builder().defer_rate(0.3).seed(3).start().await.unwrap();
    store.enqueue(&messages(60)).await.unwrap();
    let dispatcher = Dispatcher::new(store.clone(), smtp_to(server.addr(), 4), limits(4));
    let summary = dispatcher.run(quick("w1"), std::future::pending(), Arc::default()).await.unwrap();
    assert_eq!((summary.sent, summary.failed, summary.unknown, summary.queued), (60, 0, 0, 0), "{summary:?}");
    assert!(summary.retried > 5, "the server deferred about 30%: {summary:?}");
    assert_eq!(summary.stopped, StopReason::Empty);
    let delivered = server.delivered_counts();
    assert_eq!(delivered.len(), 60);
    assert!(delivered.values().all(|n| *n == 1));
    let deferred = server.arrivals().iter().filter(|a| a.fate == Fate::Deferred).count() as u64;
    assert_eq!(deferred, summary.retried, "every deferral was retried, nothing else was");
    let counts = store.counts().await.unwrap();
    assert_eq!((counts.sent, counts.total()), (60, 60));
    let listed = store.list(Some(State::Sent), 100).await.unwrap();
    assert!(listed.iter().any(|m| m.attempts > 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_refusals_fail_with_the_classified_error_and_can_be_retried() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir).await;
    let server = ChaosSmtpServer::builder().refuse_recipients_containing("nobody").start().await.unwrap();
    store.enqueue(&[message(1, "ada@example.com"), message(2, "nobody@example.com")]).await.unwrap();
    let dispatcher = Dispatcher::new(store.clone(), smtp_to(server.addr(), 2), limits(2));
    let summary = dispatcher.run(quick("w1"), std::future::pending(), Arc::default()).await.unwrap();
    assert_eq!((summary.sent, summary.failed), (1, 1));
    let failed = store.list(Some(State::Failed), 10).await.unwrap();
    let error = failed[0].error.as_ref().unwrap();
    assert_eq!(error["kind"], "recipient_rejected");
    assert_eq!(error["server_reply"]["code"], 550);
    assert_eq!(failed[0].attempts, 1, "a permanent refusal is not retried");
    store.retry(failed[0].id).await.unwrap();
    assert_eq!(store.counts().await.unwrap().queued, 1);
    let not_failed = store.retry(failed[0].id).await.unwrap_err();
    assert!(matches!(not_failed, StoreError::WrongState { expected: "failed", .. }), "{not_failed}");
    assert!(matches!(store.retry(999).await.unwrap_err(), StoreError::NotFound(999)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_lost_after_the_data_is_unknown_and_never_resent_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir).await;
    let server = ChaosSmtpServer::builder().drop_rate(1.0).start().await.unwrap();
    store.enqueue(&messages(3)).await.unwrap();
    let dispatcher = Dispatcher::new(store.clone(), smtp_to(server.addr(), 2), limits(2));
    let summary = dispatcher.run(quick("w1"), std::future::pending(), Arc::default()).await.unwrap();
    assert_eq!((summary.sent, summary.unknown, summary.retried), (0, 3, 0));
    // A second run finds nothing to send.
    let again = dispatcher.run(quick("w1"), std::future::pending(), Arc::default()).await.unwrap();
    assert_eq!(again.unknown + again.sent, 0);
    assert_eq!(server.arrivals().len(), 3);
    let unknown = store.list(Some(State::Unknown), 10).await.unwrap();
    assert!(unknown.iter().all(|m| m.error.as_ref().unwrap()["kind"] == "delivery_unknown"));
    store.resolve(unknown[0].id, Resolution::Sent).await.unwrap();
    store.resolve(unknown[1].id, Resolution::Resend).await.unwrap();
    let counts = store.counts().await.unwrap();
    assert_eq!((counts.sent, counts.queued, counts.unknown), (1, 1, 1));
    assert!(matches!(
        store.resolve(unknown[0].id, Resolution::Resend).await.unwrap_err(),
        StoreError::WrongState { expected: "unknown", .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_becomes_unknown_and_a_late_outcome_still_counts() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir).await;
    store.enqueue(&messages(2)).await.unwrap();
    let claimed = store.claim("crashed-worker", 1, Duration::from_millis(1)).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(store.counts().await.unwrap().sending, 1);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(store.expire_leases().await.unwrap(), 1);
    let counts = store.counts().await.unwrap();
    assert_eq!((counts.unknown, counts.queued), (1, 1), "the claimed one may have gone out; the other never left");
    // The worker was only slow: its outcome under the same claim still counts.
    let late =
        mailroom_outbox::Outcome::Sent { id: claimed[0].id, claim_token: claimed[0].claim_token, receipt: "{}".into() };
    store.finish(&[late]).await.unwrap();
    assert_eq!(store.counts().await.unwrap().sent, 1);
    // A stale claim token changes nothing.
    let stale = mailroom_outbox::Outcome::Failed { id: claimed[0].id, claim_token: 1, error: "{}".into() };
    store.finish(&[stale]).await.unwrap();
    assert_eq!(store.counts().await.unwrap().sent, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_quota_stops_the_run_and_leaves_the_rest_queued() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir).await;
    let server = ChaosSmtpServer::builder().start().await.unwrap();
    store.enqueue(&messages(10)).await.unwrap();
    let mut limits = limits(4);
    limits.daily_quota = Some(6);
    let dispatcher = Dispatcher::new(store.clone(), smtp_to(server.addr(), 4), limits);
    let summary = dispatcher.run(quick("w1"), std::future::pending(), Arc::default()).await.unwrap();
    assert_eq!((summary.sent, summary.queued, summary.stopped), (6, 4, StopReason::DailyQuota));
    // The quota is the day's, not the run's: a second run sends nothing.
    let again = dispatcher.run(quick("w1"), std::future::pending(), Arc::default()).await.unwrap();
    assert_eq!((again.sent, again.queued, again.stopped), (0, 4, StopReason::DailyQuota));
    assert_eq!(server.arrivals().len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_per_minute_spaces_the_sends_at_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir).await;
    let server = ChaosSmtpServer::builder().start().await.unwrap();
    store.enqueue(&messages(10)).await.unwrap();
    let mut limits = limits(4);
    limits.rate_per_minute = Some(300); // one every 200 ms
    let dispatcher = Dispatcher::new(store.clone(), smtp_to(server.addr(), 4), limits);
    let summary = dispatcher.run(quick("w1"), std::future::pending(), Arc::default()).await.unwrap();
    assert_eq!(summary.sent, 10);
    let times: Vec<_> = server.arrivals().iter().map(|a| a.at).collect();
    // The pacer spaces send starts; arrivals also carry the send's own latency (the first
    // one opens the connection). Tolerance: 100 ms between any two arrivals k apart, which
    // must span at least k intervals minus that.
    let interval = Duration::from_millis(200);
    let tolerance = Duration::from_millis(100);
    for k in 1..times.len() {
        for i in 0..times.len() - k {
            let span = times[i + k] - times[i];
            assert!(span + tolerance >= interval * k as u32, "{} sends in {span:?}", k + 1);
        }
    }
    let total = *times.last().unwrap() - times[0];
    assert!(total < interval * 9 + Duration::from_millis(600), "paced, not slowed down further: {total:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_signal_finishes_what_is_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir).await;
    let server = ChaosSmtpServer::builder().reply_delay(Duration::from_millis(50)).start().await.unwrap();
    store.enqueue(&messages(40)).await.unwrap();
    let dispatcher = Dispatcher::new(store.clone(), smtp_to(server.addr(), 2), limits(2));
    let progress = Arc::new(Progress::default());
    let stop = tokio::time::sleep(Duration::from_millis(300));
    let options = RunOptions { until_empty: false, ..quick("w1") };
    let summary = dispatcher.run(options, stop, progress).await.unwrap();
    assert_eq!(summary.stopped, StopReason::Interrupted);
    let counts = store.counts().await.unwrap();
    assert_eq!(counts.sending, 0, "nothing left claimed");
    assert_eq!(counts.sent, summary.sent);
    assert_eq!(counts.sent + counts.queued, 40);
    assert!(summary.sent > 0 && summary.sent < 40, "{summary:?}");
    // Messages claimed ahead of the sends but never started went back as they were.
    let queued = store.list(Some(State::Queued), 100).await.unwrap();
    assert!(queued.iter().all(|m| m.attempts == 0), "{queued:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listing_shows_each_message_subject_decoded() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir).await;
    let accented = mailroom_core::MessageDraft::new(sender())
        .to("ada@example.com".parse().unwrap())
        .subject("Rechnung Nr. 7 – fällig seit 14 Tagen")
        .text("Hallo\n")
        .message_id("<accented@company.com>")
        .build()
        .unwrap();
    let no_headers = mailroom_outbox::NewMessage {
        message_id: "<raw@company.com>".into(),
        message: b"\xff\xfe not a header section".to_vec(),
        ..message(9, "bob@example.com")
    };
    store
        .enqueue(&[message(1, "ada@example.com"), mailroom_outbox::NewMessage::from_outgoing(&accented), no_headers])
        .await
        .unwrap();
    let listed = store.list(None, 10).await.unwrap();
    let subjects: Vec<Option<&str>> = listed.iter().map(|m| m.subject.as_deref()).collect();
    assert_eq!(subjects, [None, Some("Rechnung Nr. 7 – fällig seit 14 Tagen"), Some("Order 1 confirmed")]);
}
