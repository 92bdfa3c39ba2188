//! The outbox on a real PostgreSQL 15 cluster the test starts itself (as the `postgres` user, on a free loopback port, in a temp dir): idempotent enqueue and two dispatchers sharing one table through `FOR UPDATE SKIP LOCKED` claims.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use mailroom_core::RetryPolicy;
use mailroom_outbox::{Dispatcher, RunOptions, Store, bulk_retry};
use mailroom_testkit::{ChaosSmtpServer, PostgresCluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_one_postgres_table_and_send_each_message_once() {
    let Some(cluster) = PostgresCluster::for_tests().unwrap() else { return };
    let store = Store::open(&cluster.url()).await.unwrap();
    let first = store.enqueue(&messages(200)).await.unwrap();
    assert!(first.iter().all(|e| !e.duplicate));
    let again = store.enqueue(&messages(200)).await.unwrap();
    assert!(again.iter().all(|e| e.duplicate), "the same Message-IDs are duplicates");

    let server = ChaosSmtpServer::builder().defer_rate(0.1).seed(7).start().await.unwrap();
    let options = |worker: &str| {
        let retry = RetryPolicy {
            initial_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
            ..bulk_retry(8)
        };
        RunOptions { retry, max_wait: Duration::from_secs(5), ..RunOptions::until_empty(worker) }
    };
    let second_store = Store::open(&cluster.url()).await.unwrap();
    let one = Dispatcher::new(store.clone(), smtp_to(server.addr(), 4), limits(4));
    let two = Dispatcher::new(second_store, smtp_to(server.addr(), 4), limits(4));
    let (a, b) = tokio::join!(
        one.run(options("w1"), std::future::pending(), Arc::default()),
        two.run(options("w2"), std::future::pending(), Arc::default()),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.sent + b.sent, 200, "{a:?} {b:?}");
    let delivered = server.delivered_counts();
    assert_eq!(delivered.len(), 200);
    assert!(delivered.values().all(|n| *n == 1), "no message was claimed twice");
    assert_eq!(store.counts().await.unwrap().sent, 200);
    let newest = store.list(None, 1).await.unwrap();
    assert_eq!(newest[0].subject.as_deref(), Some("Order 199 confirmed"), "substr() on bytea reads the subject");
}
