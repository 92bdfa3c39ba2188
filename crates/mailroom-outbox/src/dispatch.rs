//! The dispatcher: claims due messages, sends them through any `Transport` with bounded concurrency, pacing and a daily quota, and records each outcome (retry with back-off only before hand-over).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mailroom_core::{Address, ErrorKind, OutgoingMessage, Retry, RetryPolicy, SendError, Transport};
use serde::Serialize;
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::time::Instant;

use crate::limits::{Pacer, SendingLimits};
use crate::store::{Claimed, Outcome, Store, StoreError, now_ms};

/// The most messages claimed in one statement (one write, one fsync, for the whole batch).
const MAX_CLAIM_BATCH: usize = 64;
/// The most outcomes written in one transaction.
const MAX_FINISH_BATCH: usize = 512;
/// How often an idle worker looks for new messages.
const IDLE_POLL: Duration = Duration::from_millis(250);
/// How often the crash rule is applied while running.
const EXPIRY_EVERY: Duration = Duration::from_secs(5);
/// The longest server back-off hint honoured; a longer one is cut to this (the message waits,
/// queued, and is tried again then).
const MAX_HINT: Duration = Duration::from_secs(6 * 60 * 60);

/// How a run ends and what it may do.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// This worker's name (recorded in `claimed_by`).
    pub worker: String,
    /// Stop when nothing is left to send now and no retry is due within `max_wait`.
    pub until_empty: bool,
    /// With `until_empty`: how long to wait for a queued retry before stopping anyway.
    pub max_wait: Duration,
    /// The back-off schedule for errors raised before hand-over; its `max_attempts` is
    /// replaced by [`SendingLimits::max_attempts`], the config's one bound.
    pub retry: RetryPolicy,
}

impl RunOptions {
    /// Options for a run that stops when the outbox is empty, with the usual back-off.
    pub fn until_empty(worker: impl Into<String>) -> RunOptions {
        RunOptions { worker: worker.into(), until_empty: true, max_wait: Duration::from_secs(60), retry: bulk_retry(8) }
    }
}

/// The back-off policy for outbox sends: the core policy, connect failures included (a bulk
/// run meets flaky networks more often than wrong hosts), hints up to an hour waited for
/// before the message is rescheduled rather than held in memory.
pub fn bulk_retry(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        initial_delay: Duration::from_millis(500),
        max_delay: Duration::from_secs(300),
        max_hinted_delay: Duration::from_secs(3600),
        retry_connect_failures: true,
    }
}

/// Live counters of a run, for progress display (read them while [`Dispatcher::run`] runs).
#[derive(Debug, Default)]
pub struct Progress {
    /// Accepted.
    pub sent: AtomicU64,
    /// Refused for good.
    pub failed: AtomicU64,
    /// Held for a person.
    pub unknown: AtomicU64,
    /// Sent back to the queue after a temporary refusal.
    pub retried: AtomicU64,
    /// Claimed and not yet recorded.
    pub in_flight: AtomicU64,
}

impl Progress {
    fn bump(&self, outcome: &Outcome) {
        let counter = match outcome {
            Outcome::Sent { .. } => &self.sent,
            Outcome::Failed { .. } => &self.failed,
            Outcome::Unknown { .. } => &self.unknown,
            Outcome::Retry { .. } => &self.retried,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Why a run stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// Nothing left to send (with `until_empty`).
    Empty,
    /// The daily quota is used up; the rest stays queued for tomorrow.
    DailyQuota,
    /// Asked to stop (Ctrl-C).
    Interrupted,
}

/// What a run did (CONTRACT: `outbox run --json`).
#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    /// Messages this run sent.
    pub sent: u64,
    /// Messages this run failed for good.
    pub failed: u64,
    /// Messages this run left `unknown`.
    pub unknown: u64,
    /// Temporary refusals sent back to the queue.
    pub retried: u64,
    /// Messages still queued in the outbox when it stopped.
    pub queued: u64,
    /// Why it stopped.
    pub stopped: StopReason,
    /// Leases the crash rule judged (messages of a stopped worker, now `unknown`).
    pub expired_leases: u64,
}

/// Sends what the outbox holds through one transport.
///
/// ```no_run
/// # async fn demo(store: mailroom_outbox::Store, transport: std::sync::Arc<dyn mailroom_core::Transport>,
/// #               limits: mailroom_outbox::SendingLimits) -> Result<(), mailroom_outbox::StoreError> {
/// use mailroom_outbox::{Dispatcher, RunOptions};
/// let dispatcher = Dispatcher::new(store, transport, limits);
/// let summary = dispatcher.run(RunOptions::until_empty("worker-1"), std::future::pending(), Default::default()).await?;
/// println!("{} sent, {} still queued", summary.sent, summary.queued);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Dispatcher {
    store: Store,
    transport: Arc<dyn Transport>,
    limits: SendingLimits,
}

impl Dispatcher {
    /// A dispatcher for `store` sending through `transport` within `limits`.
    pub fn new(store: Store, transport: Arc<dyn Transport>, limits: SendingLimits) -> Dispatcher {
        Dispatcher { store, transport, limits }
    }

    /// Runs until `stop` completes, or (with `until_empty`) nothing is left, or the daily
    /// quota is used up. Messages in flight are always finished and recorded before it returns.
    pub async fn run(
        &self,
        options: RunOptions,
        stop: impl Future<Output = ()>,
        progress: Arc<Progress>,
    ) -> Result<RunSummary, StoreError> {
        tokio::pin!(stop);
        let concurrency = self.limits.concurrency.max(1);
        let permits = Arc::new(Semaphore::new(concurrency));
        let (outcomes_tx, outcomes_rx) = mpsc::unbounded_channel::<Outcome>();
        let recorded = Arc::new(Notify::new());
        let writer = tokio::spawn(write_outcomes(self.store.clone(), outcomes_rx, recorded.clone(), progress.clone()));
        let mut pacer = Pacer::new(self.limits.rate_per_minute);
        let mut quota = Quota::new(self.limits.daily_quota);
        // The config's max_attempts (SendingLimits) bounds the attempts; options.retry gives the schedule.
        let retry = RetryPolicy { max_attempts: self.limits.max_attempts, ..options.retry };
        let mut expired_leases = self.store.expire_leases().await?;
        let mut last_expiry = Instant::now();
        let stopped = loop {
            if last_expiry.elapsed() >= EXPIRY_EVERY {
                expired_leases += self.store.expire_leases().await?;
                last_expiry = Instant::now();
            }
            let allowance = quota.allowance(&self.store).await?;
            if allowance == 0 {
                break StopReason::DailyQuota;
            }
            // Wait for room (or the stop signal) before claiming: a message is claimed only
            // right before its send starts, which is what makes the crash rule exact enough.
            let first = tokio::select! {
                biased;
                () = &mut stop => break StopReason::Interrupted,
                permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            };
            let mut held = vec![first];
            if pacer.is_paced() {
                tokio::select! {
                    biased;
                    () = &mut stop => break StopReason::Interrupted,
                    () = pacer.wait_turn() => {}
                }
            } else {
                let want = allowance.min(MAX_CLAIM_BATCH as u64) as usize;
                while held.len() < want {
                    match permits.clone().try_acquire_owned() {
                        Ok(permit) => held.push(permit),
                        Err(_) => break,
                    }
                }
            }
            let claimed = self.store.claim(&options.worker, held.len(), self.limits.lease).await?;
            quota.used(claimed.len() as u64);
            if claimed.is_empty() {
                drop(held);
                // Idle only once every outcome is recorded: a retry still in the writer's
                // hands is not yet `queued`, and stopping then would strand it.
                let idle = progress.in_flight.load(Ordering::Acquire) == 0;
                if options.until_empty && idle {
                    match self.store.next_due_ms().await? {
                        None => break StopReason::Empty,
                        Some(due) if due.saturating_sub(now_ms()) > millis(options.max_wait) => {
                            break StopReason::Empty;
                        }
                        Some(_) => {}
                    }
                }
                tokio::select! {
                    biased;
                    () = &mut stop => break StopReason::Interrupted,
                    () = recorded.notified() => {}
                    () = tokio::time::sleep(IDLE_POLL) => {}
                }
                continue;
            }
            pacer.started_now();
            for (claim, permit) in claimed.into_iter().zip(held.drain(..)) {
                progress.in_flight.fetch_add(1, Ordering::AcqRel);
                let transport = self.transport.clone();
                let outcomes = outcomes_tx.clone();
                tokio::spawn(async move {
                    let outcome = send_one(transport.as_ref(), claim, &retry).await;
                    // The writer holds the receiver until every sender is gone.
                    let _ = outcomes.send(outcome);
                    drop(permit);
                });
            }
        };
        // Finish what is in flight, then let the writer drain and stop.
        let _all = permits.acquire_many(concurrency as u32).await.expect("the semaphore is never closed");
        drop(outcomes_tx);
        match writer.await {
            Ok(written) => written?,
            Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
            Err(_) => {}
        }
        let queued = self.store.counts().await?.queued;
        Ok(RunSummary {
            sent: progress.sent.load(Ordering::Relaxed),
            failed: progress.failed.load(Ordering::Relaxed),
            unknown: progress.unknown.load(Ordering::Relaxed),
            retried: progress.retried.load(Ordering::Relaxed),
            queued,
            stopped,
            expired_leases,
        })
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// The daily quota: what the outbox says was handed over since UTC midnight, re-read every
/// few seconds (other workers share the quota), plus what this worker claimed since.
struct Quota {
    limit: Option<u64>,
    counted: u64,
    read_at: Option<(Instant, i64)>,
}

impl Quota {
    fn new(limit: Option<u32>) -> Quota {
        Quota { limit: limit.map(u64::from), counted: 0, read_at: None }
    }

    async fn allowance(&mut self, store: &Store) -> Result<u64, StoreError> {
        let Some(limit) = self.limit else { return Ok(u64::MAX) };
        let day_start = now_ms() - now_ms().rem_euclid(86_400_000);
        let stale = match self.read_at {
            None => true,
            Some((at, day)) => at.elapsed() > Duration::from_secs(5) || day != day_start,
        };
        if stale {
            self.counted = store.handed_over_since(day_start).await?;
            self.read_at = Some((Instant::now(), day_start));
        }
        Ok(limit.saturating_sub(self.counted))
    }

    fn used(&mut self, claimed: u64) {
        self.counted = self.counted.saturating_add(claimed);
    }
}

/// Sends one claimed message and decides what becomes of it.
async fn send_one(transport: &dyn Transport, claim: Claimed, retry: &RetryPolicy) -> Outcome {
    let (id, claim_token, attempts) = (claim.id, claim.claim_token, claim.attempts);
    let message = match outgoing(claim) {
        Ok(message) => message,
        Err(error) => return Outcome::Failed { id, claim_token, error: error_json(&error) },
    };
    match transport.send(&message).await {
        Ok(receipt) => {
            Outcome::Sent { id, claim_token, receipt: serde_json::to_string(&receipt).unwrap_or_else(|_| "{}".into()) }
        }
        Err(error) => decide(id, claim_token, attempts, &error, retry),
    }
}

/// What a send error makes of a message: `unknown` after a possible hand-over, `queued` again
/// for a temporary refusal while attempts remain, otherwise `failed`.
fn decide(id: i64, claim_token: i64, attempts: u32, error: &SendError, retry: &RetryPolicy) -> Outcome {
    let json = error_json(error);
    if error.kind() == ErrorKind::DeliveryUnknown {
        return Outcome::Unknown { id, claim_token, error: json };
    }
    let delay = retry.delay_before_retry(attempts, error).or_else(|| {
        // A hint longer than the policy waits for: the message waits queued instead, up to
        // MAX_HINT (a server's number is untrusted).
        let retryable = matches!(error.kind(), ErrorKind::RateLimited | ErrorKind::ServiceUnavailable);
        match error.retry() {
            Retry::Temporary { after: Some(hint) } if retryable && attempts < retry.max_attempts => {
                Some(hint.min(MAX_HINT))
            }
            _ => None,
        }
    });
    match delay {
        Some(delay) => {
            Outcome::Retry { id, claim_token, not_before_ms: now_ms().saturating_add(millis(delay)), error: json }
        }
        None => Outcome::Failed { id, claim_token, error: json },
    }
}

fn error_json(error: &SendError) -> String {
    let mut report = error.report();
    report.transcript = None;
    serde_json::to_string(&report).unwrap_or_else(|_| "{}".into())
}

fn outgoing(claim: Claimed) -> Result<OutgoingMessage, SendError> {
    let bad = |what: String| {
        SendError::new(ErrorKind::Protocol, format!("the stored message {} cannot be sent: {what}", claim.id))
            .with_retry(Retry::Permanent)
    };
    let from: Address = claim
        .envelope_from
        .parse()
        .map_err(|_| bad(format!("envelope_from {:?} is not an address", claim.envelope_from)))?;
    let recipients = claim
        .recipients
        .iter()
        .map(|r| r.parse::<Address>().map_err(|_| bad(format!("recipient {r:?} is not an address"))))
        .collect::<Result<Vec<_>, _>>()?;
    OutgoingMessage::from_parts(from, recipients, claim.message, claim.message_id).map_err(|e| bad(format!("{e}")))
}

/// Writes outcomes in batches: whatever arrived while the previous batch was being written
/// goes in the next transaction (one commit, one fsync, for many messages).
async fn write_outcomes(
    store: Store,
    mut outcomes: mpsc::UnboundedReceiver<Outcome>,
    recorded: Arc<Notify>,
    progress: Arc<Progress>,
) -> Result<(), StoreError> {
    let mut batch = Vec::with_capacity(MAX_FINISH_BATCH);
    while let Some(first) = outcomes.recv().await {
        batch.push(first);
        while batch.len() < MAX_FINISH_BATCH {
            match outcomes.try_recv() {
                Ok(outcome) => batch.push(outcome),
                Err(_) => break,
            }
        }
        let mut delay = Duration::from_millis(100);
        loop {
            match store.finish(&batch).await {
                Ok(()) => break,
                // A busy or briefly unreachable database must not lose outcomes: the
                // messages stay `sending` until recorded, and a dead worker's become `unknown`.
                Err(error) if delay < Duration::from_secs(30) => {
                    tracing::warn!(%error, "recording outcomes failed; trying again");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(error) => return Err(error),
            }
        }
        for outcome in &batch {
            progress.bump(outcome);
        }
        progress.in_flight.fetch_sub(batch.len() as u64, Ordering::AcqRel);
        batch.clear();
        recorded.notify_one();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_errors_before_hand_over_go_back_to_the_queue() {
        let policy = bulk_retry(3);
        let busy = SendError::new(ErrorKind::RateLimited, "451 4.7.0 try later");
        assert!(matches!(decide(1, 9, 1, &busy, &policy), Outcome::Retry { .. }));
        assert!(matches!(decide(1, 9, 3, &busy, &policy), Outcome::Failed { .. }), "attempts used up");
        let lost = SendError::new(ErrorKind::DeliveryUnknown, "connection lost after DATA");
        assert!(matches!(decide(1, 9, 1, &lost, &policy), Outcome::Unknown { .. }));
        let rejected = SendError::new(ErrorKind::RecipientRejected, "550 5.1.1");
        assert!(matches!(decide(1, 9, 1, &rejected, &policy), Outcome::Failed { .. }));
    }

    #[test]
    fn long_server_hints_are_honoured_up_to_a_bound() {
        let policy = bulk_retry(3);
        let quota = SendError::new(ErrorKind::RateLimited, "daily limit")
            .with_retry(Retry::Temporary { after: Some(Duration::from_secs(7200)) });
        let Outcome::Retry { not_before_ms, .. } = decide(1, 9, 1, &quota, &policy) else { panic!("retried") };
        let wait = not_before_ms - now_ms();
        assert!((7_190_000..=7_200_000).contains(&wait), "{wait}");
        let absurd = SendError::new(ErrorKind::RateLimited, "x")
            .with_retry(Retry::Temporary { after: Some(Duration::from_secs(u64::MAX / 4)) });
        let Outcome::Retry { not_before_ms, .. } = decide(1, 9, 1, &absurd, &policy) else { panic!("retried") };
        assert!(not_before_ms - now_ms() <= millis(MAX_HINT));
    }
}
