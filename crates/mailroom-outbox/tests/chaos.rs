//! The chaos run (issue 9): thousands of messages from a real SQLite outbox through the real SMTP driver to a loopback server that defers 5 %, rejects 1 % for good and drops the connection after the data of 1 %; nothing is lost, nothing goes out twice, and every `unknown` is a drop after the data.
//!
//! Size: `MAILROOM_CHAOS_MESSAGES` (default 10,000, the figure); seed:
//! `MAILROOM_CHAOS_SEED` (default: from the clock, printed so a failure can be replayed).

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use mailroom_core::RetryPolicy;
use mailroom_outbox::{Dispatcher, RunOptions, State, StopReason, bulk_retry};
use mailroom_testkit::{ChaosSmtpServer, Fate};

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_messages_through_refusals_and_drops_none_lost_none_twice() {
    let size = env_number("MAILROOM_CHAOS_MESSAGES", 10_000) as usize;
    let clock = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_secs());
    let seed = env_number("MAILROOM_CHAOS_SEED", clock);
    eprintln!("chaos run: {size} messages, seed {seed} (replay with MAILROOM_CHAOS_SEED={seed})");

    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir).await;
    let all = messages(size);
    for chunk in all.chunks(2_000) {
        store.enqueue(chunk).await.unwrap();
    }
    let server =
        ChaosSmtpServer::builder().defer_rate(0.05).reject_rate(0.01).drop_rate(0.01).seed(seed).start().await.unwrap();
    let retry = RetryPolicy {
        initial_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        ..bulk_retry(8)
    };
    let options = RunOptions { retry, max_wait: Duration::from_secs(5), ..RunOptions::until_empty("chaos") };
    let dispatcher = Dispatcher::new(store.clone(), smtp_to(server.addr(), 8), limits(8));
    let started = Instant::now();
    let summary = dispatcher.run(options, std::future::pending(), Arc::default()).await.unwrap();
    eprintln!("chaos run: {summary:?} in {:.1} s", started.elapsed().as_secs_f64());
    assert_eq!(summary.stopped, StopReason::Empty);

    // The server's log, by Message-ID: every fate each message met.
    let mut fates: HashMap<String, Vec<Fate>> = HashMap::new();
    for arrival in server.arrivals() {
        fates.entry(arrival.message_id).or_default().push(arrival.fate);
    }
    let listed = store.list(None, size + 1).await.unwrap();
    assert_eq!(listed.len(), size, "every message is in the outbox");
    let mut by_state: HashMap<State, u64> = HashMap::new();
    for message in &listed {
        *by_state.entry(message.state).or_default() += 1;
        let seen = fates.get(&message.message_id).cloned().unwrap_or_default();
        let count = |fate: Fate| seen.iter().filter(|f| **f == fate).count();
        let (accepted, dropped, rejected) = (count(Fate::Accepted), count(Fate::Dropped), count(Fate::Rejected));
        let kind = message.error.as_ref().and_then(|e| e["kind"].as_str()).unwrap_or("");
        match message.state {
            State::Sent => assert_eq!(
                (accepted, dropped, seen.last()),
                (1, 0, Some(&Fate::Accepted)),
                "{} is sent: accepted exactly once, never dropped ({seen:?})",
                message.message_id
            ),
            // Every unknown is explained: the server dropped the connection after its data,
            // once, and it was not sent again on its own.
            State::Unknown => {
                assert_eq!(
                    (accepted, dropped, seen.last()),
                    (0, 1, Some(&Fate::Dropped)),
                    "{}: {seen:?}",
                    message.message_id
                );
                assert_eq!(kind, "delivery_unknown", "{}", message.message_id);
            }
            State::Failed => {
                assert_eq!(
                    (accepted, dropped),
                    (0, 0),
                    "{}: a failed message never reached a mailbox ({seen:?})",
                    message.message_id
                );
                let explained = (rejected == 1 && seen.last() == Some(&Fate::Rejected) && kind == "permission_denied")
                    || (seen.len() == 8 && seen.iter().all(|f| *f == Fate::Deferred));
                assert!(explained, "{} failed without a permanent refusal: {kind} {seen:?}", message.message_id);
            }
            State::Queued | State::Sending => panic!("{} is still {}: lost", message.message_id, message.state),
        }
    }
    // Nothing arrived that the outbox does not know, and the server's tallies match the table.
    assert_eq!(fates.len(), size, "every message reached the server, and only these");
    let tally = |fate: Fate| server.arrivals().iter().filter(|a| a.fate == fate).count() as u64;
    let state = |s: State| by_state.get(&s).copied().unwrap_or(0);
    assert_eq!(tally(Fate::Accepted), state(State::Sent));
    assert_eq!(tally(Fate::Dropped), state(State::Unknown));
    assert_eq!(tally(Fate::Deferred), summary.retried, "every deferral was retried, nothing else was");
    assert_eq!(
        (summary.sent, summary.unknown, summary.failed),
        (state(State::Sent), state(State::Unknown), state(State::Failed))
    );
    // The mix is what the server was told to do (loose bounds: these are random draws).
    let share = |n: u64| n as f64 / size as f64;
    if size >= 1_000 {
        assert!((0.003..0.03).contains(&share(state(State::Unknown))), "{by_state:?}");
        assert!((0.003..0.03).contains(&share(state(State::Failed))), "{by_state:?}");
        assert!((0.02..0.10).contains(&share(summary.retried)), "{summary:?}");
    }
    eprintln!(
        "chaos run: sent {} · unknown {} (each a drop after DATA) · failed {} (permanent) · retried {} · 0 lost · 0 twice",
        state(State::Sent),
        state(State::Unknown),
        state(State::Failed),
        summary.retried
    );
}
