//! The dispatcher: claims due messages, sends them through any `Transport` with bounded concurrency, pacing and a daily quota, and records each outcome (retry with back-off only before hand-over).

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mailroom_core::{Address, ErrorKind, OutgoingMessage, Retry, RetryPolicy, SendError, Transport};
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
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
    /// quota is used up. Messages in flight are always finished and recorded before it returns;
    /// messages claimed but not yet started are given back to the queue.
    ///
    /// Each round is one transaction ([`Store::finish_and_claim`]): it records the outcomes
    /// that arrived since the last round and claims what the free permits plus a read-ahead
    /// of `concurrency` (none when paced) can take, so the next messages are claimed while the
    /// current ones are being sent and the commit's fsync overlaps the sends instead of
    /// preceding each of them. At most `2 × concurrency` messages are claimed and unfinished
    /// at once: what a crash can leave `unknown`.
    pub async fn run(
        &self,
        options: RunOptions,
        stop: impl Future<Output = ()>,
        progress: Arc<Progress>,
    ) -> Result<RunSummary, StoreError> {
        tokio::pin!(stop);
        let concurrency = self.limits.concurrency.max(1);
        let permits = Arc::new(Semaphore::new(concurrency));
        let (outcomes_tx, mut outcomes_rx) = mpsc::unbounded_channel::<Outcome>();
        let mut pacer = Pacer::new(self.limits.rate_per_minute);
        // Paced sends are seconds apart: a read-ahead would only hold claims longer.
        let read_ahead = if pacer.is_paced() { 0 } else { concurrency };
        let mut quota = Quota::new(self.limits.daily_quota);
        // The config's max_attempts (SendingLimits) bounds the attempts; options.retry gives the schedule.
        let retry = RetryPolicy { max_attempts: self.limits.max_attempts, ..options.retry };
        let mut expired_leases = self.store.expire_leases().await?;
        let mut last_expiry = Instant::now();
        // Claimed, not yet started (at most `read_ahead` beyond the free permits).
        let mut ready: VecDeque<Claimed> = VecDeque::new();
        // Arrived, not yet recorded.
        let mut pending: Vec<Outcome> = Vec::new();
        let stopped = loop {
            if last_expiry.elapsed() >= EXPIRY_EVERY {
                expired_leases += self.store.expire_leases().await?;
                last_expiry = Instant::now();
            }
            // Start what is claimed, as far as the permits allow.
            while !ready.is_empty() {
                let Ok(permit) = permits.clone().try_acquire_owned() else { break };
                let Some(claim) = ready.pop_front() else { break };
                pacer.started_now();
                self.spawn_send(claim, permit, &retry, &outcomes_tx, &progress);
            }
            let allowance = quota.allowance(&self.store).await?;
            if allowance == 0 && ready.is_empty() {
                break StopReason::DailyQuota;
            }
            let free = permits.available_permits();
            let mut want = if pacer.is_paced() {
                usize::from(ready.is_empty() && free > 0)
            } else {
                (free + read_ahead).saturating_sub(ready.len())
            };
            want = want.min(MAX_CLAIM_BATCH).min(usize::try_from(allowance).unwrap_or(usize::MAX));
            if want > 0 && pacer.is_paced() {
                // Claim right before the send slot: the claim is what the crash rule reads.
                tokio::select! {
                    biased;
                    () = &mut stop => break StopReason::Interrupted,
                    () = pacer.wait_turn() => {}
                }
            }
            while pending.len() < MAX_FINISH_BATCH {
                match outcomes_rx.try_recv() {
                    Ok(outcome) => pending.push(outcome),
                    Err(_) => break,
                }
            }
            let mut claimed_none = false;
            if want > 0 || !pending.is_empty() {
                let claimed = self.write_round(&pending, &[], &options.worker, want, &progress).await?;
                pending.clear();
                quota.used(claimed.len() as u64);
                claimed_none = want > 0 && claimed.is_empty();
                if !claimed.is_empty() {
                    ready.extend(claimed);
                    continue;
                }
                if !claimed_none {
                    continue;
                }
            }
            if claimed_none && ready.is_empty() {
                // Nothing due. Idle only once every outcome is recorded: a retry still in
                // flight is not yet `queued`, and stopping then would strand it.
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
                    Some(outcome) = outcomes_rx.recv() => pending.push(outcome),
                    () = tokio::time::sleep(IDLE_POLL) => {}
                }
            } else {
                // Every permit is busy and the read-ahead is full: the next outcome frees a
                // permit (a send gives its permit back before it reports).
                tokio::select! {
                    biased;
                    () = &mut stop => break StopReason::Interrupted,
                    Some(outcome) = outcomes_rx.recv() => pending.push(outcome),
                }
            }
        };
        // Finish what is in flight, record every outcome, and give back what never started.
        drop(outcomes_tx);
        while let Some(outcome) = outcomes_rx.recv().await {
            pending.push(outcome);
        }
        let never_started: Vec<Claimed> = ready.into_iter().collect();
        for outcomes in pending.chunks(MAX_FINISH_BATCH) {
            self.write_round(outcomes, &[], &options.worker, 0, &progress).await?;
        }
        self.write_round(&[], &never_started, &options.worker, 0, &progress).await?;
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

    /// Sends one claimed message on its own task; its outcome comes back on `outcomes`.
    fn spawn_send(
        &self,
        claim: Claimed,
        permit: OwnedSemaphorePermit,
        retry: &RetryPolicy,
        outcomes: &mpsc::UnboundedSender<Outcome>,
        progress: &Progress,
    ) {
        progress.in_flight.fetch_add(1, Ordering::AcqRel);
        let transport = self.transport.clone();
        let outcomes = outcomes.clone();
        let retry = *retry;
        tokio::spawn(async move {
            let outcome = send_one(transport.as_ref(), claim, &retry).await;
            // The permit goes back first, so the run loop that receives this outcome can
            // start the next message at once. The receiver lives until every sender is gone.
            drop(permit);
            let _ = outcomes.send(outcome);
        });
    }

    /// One round's transaction, tried again with back-off while the database is busy or
    /// briefly unreachable: outcomes must not be lost (the messages stay `sending` until
    /// recorded, and a dead worker's become `unknown`). Counts the recorded outcomes.
    async fn write_round(
        &self,
        outcomes: &[Outcome],
        release: &[Claimed],
        worker: &str,
        want: usize,
        progress: &Progress,
    ) -> Result<Vec<Claimed>, StoreError> {
        let mut delay = Duration::from_millis(100);
        let claimed = loop {
            match self.store.finish_and_claim(outcomes, release, worker, want, self.limits.lease).await {
                Ok(claimed) => break claimed,
                Err(error) if delay < Duration::from_secs(30) => {
                    tracing::warn!(%error, "writing to the outbox failed; trying again");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(error) => return Err(error),
            }
        };
        for outcome in outcomes {
            progress.bump(outcome);
        }
        progress.in_flight.fetch_sub(outcomes.len() as u64, Ordering::AcqRel);
        Ok(claimed)
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
