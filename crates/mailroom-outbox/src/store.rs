//! The outbox store: one table (`mailroom_outbox`, schema in `migrations/`) on SQLite or PostgreSQL behind one type, with idempotent enqueue, leased claims and the crash rule.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The `url` is neither `sqlite:…` nor `postgres://…`.
    #[error("outbox.url \"{0}\" is not a database URL: use sqlite:PATH or postgres://user@host/db")]
    BadUrl(String),
    /// Opening, migrating or querying the database failed.
    #[error("the outbox database failed: {0}")]
    Database(#[from] sqlx::Error),
    /// The schema migrations could not be applied.
    #[error("the outbox schema could not be migrated: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// No message has this id.
    #[error("no message with id {0} in the outbox")]
    NotFound(i64),
    /// The message is not in the state the operation needs.
    #[error("message {id} is {state}, not {expected}")]
    WrongState {
        /// The message.
        id: i64,
        /// Its state.
        state: String,
        /// The state the operation needs.
        expected: &'static str,
    },
}

/// Where a message is in its life (CONTRACT: DESIGN.md §8; the `state` column's values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Waiting to be sent, not before its `not_before` time.
    Queued,
    /// Claimed by a worker under a lease.
    Sending,
    /// Accepted by the service (the receipt is kept).
    Sent,
    /// Refused for a permanent reason (the classified error is kept).
    Failed,
    /// Possibly delivered: held for a person's decision (`resolve`), never resent on its own.
    Unknown,
}

impl State {
    /// Every state, in life order.
    pub const ALL: [State; 5] = [State::Queued, State::Sending, State::Sent, State::Failed, State::Unknown];

    /// The column value.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Sending => "sending",
            State::Sent => "sent",
            State::Failed => "failed",
            State::Unknown => "unknown",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for State {
    type Err = String;
    fn from_str(text: &str) -> Result<State, String> {
        State::ALL
            .into_iter()
            .find(|state| state.as_str() == text)
            .ok_or_else(|| format!("\"{text}\" is not a state: use queued, sending, sent, failed or unknown"))
    }
}

/// A message to store: the idempotency key is its Message-ID.
#[derive(Clone, Debug)]
pub struct NewMessage {
    /// The Message-ID header value (with angle brackets): the idempotency key.
    pub message_id: String,
    /// The ERP event kind, when the message is an event.
    pub event_kind: Option<String>,
    /// The ERP document (invoice number…), when known: the reminder history reads it.
    pub document: Option<String>,
    /// The reminder stage, for staged events.
    pub stage: Option<u32>,
    /// The SMTP envelope sender.
    pub envelope_from: String,
    /// The envelope recipients.
    pub recipients: Vec<String>,
    /// The RFC 5322 bytes.
    pub message: Vec<u8>,
}

impl NewMessage {
    /// A message to store from a built [`mailroom_core::OutgoingMessage`].
    pub fn from_outgoing(message: &mailroom_core::OutgoingMessage) -> NewMessage {
        NewMessage {
            message_id: message.message_id().to_owned(),
            event_kind: None,
            document: None,
            stage: None,
            envelope_from: message.envelope_from().to_string(),
            recipients: message.recipients().iter().map(ToString::to_string).collect(),
            message: message.bytes().to_vec(),
        }
    }
}

/// What enqueueing one message did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Enqueued {
    /// The row id (the existing one for a duplicate).
    pub id: i64,
    /// True when the Message-ID was already in the outbox: nothing was added.
    pub duplicate: bool,
}

/// A message claimed for sending under a lease.
#[derive(Clone, Debug)]
pub struct Claimed {
    /// Row id.
    pub id: i64,
    /// The claim this worker holds; outcomes are recorded only with it.
    pub claim_token: i64,
    /// Attempts including this one.
    pub attempts: u32,
    /// The Message-ID.
    pub message_id: String,
    /// Envelope sender.
    pub envelope_from: String,
    /// Envelope recipients.
    pub recipients: Vec<String>,
    /// RFC 5322 bytes.
    pub message: Vec<u8>,
}

/// How a send attempt ended, to be recorded.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// Accepted: the receipt as JSON.
    Sent {
        /// Row id.
        id: i64,
        /// The claim it was sent under.
        claim_token: i64,
        /// The receipt, JSON.
        receipt: String,
    },
    /// Refused before hand-over, temporarily: back to `queued`.
    Retry {
        /// Row id.
        id: i64,
        /// The claim it was tried under.
        claim_token: i64,
        /// Not before this time (ms since the epoch).
        not_before_ms: i64,
        /// The classified error, JSON.
        error: String,
    },
    /// Refused for good.
    Failed {
        /// Row id.
        id: i64,
        /// The claim it was tried under.
        claim_token: i64,
        /// The classified error, JSON.
        error: String,
    },
    /// The connection was lost after hand-over: held for a person.
    Unknown {
        /// Row id.
        id: i64,
        /// The claim it was tried under.
        claim_token: i64,
        /// The classified error, JSON.
        error: String,
    },
}

/// How many messages are in each state (CONTRACT: `outbox status --json` `counts`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Waiting.
    pub queued: u64,
    /// Claimed.
    pub sending: u64,
    /// Accepted.
    pub sent: u64,
    /// Refused for good.
    pub failed: u64,
    /// Held for a person.
    pub unknown: u64,
}

impl Counts {
    /// Every message.
    pub fn total(&self) -> u64 {
        self.queued + self.sending + self.sent + self.failed + self.unknown
    }

    /// The messages in `state`.
    pub fn of(&self, state: State) -> u64 {
        match state {
            State::Queued => self.queued,
            State::Sending => self.sending,
            State::Sent => self.sent,
            State::Failed => self.failed,
            State::Unknown => self.unknown,
        }
    }

    fn add(&mut self, state: &str, count: u64) {
        match state {
            "queued" => self.queued += count,
            "sending" => self.sending += count,
            "sent" => self.sent += count,
            "failed" => self.failed += count,
            _ => self.unknown += count,
        }
    }
}

/// One message as `outbox list` shows it (without its bytes).
#[derive(Clone, Debug, Serialize)]
pub struct Listed {
    /// Row id.
    pub id: i64,
    /// The Message-ID.
    pub message_id: String,
    /// Event kind, if any.
    pub event: Option<String>,
    /// Envelope recipients.
    pub recipients: Vec<String>,
    /// The decoded `Subject:` header of the stored message, if it has one within its first
    /// 16 KiB.
    pub subject: Option<String>,
    /// State.
    pub state: State,
    /// Attempts so far.
    pub attempts: u32,
    /// Not before (ms since the epoch), for queued messages.
    pub not_before_ms: i64,
    /// When it was sent (ms since the epoch).
    pub sent_ms: Option<i64>,
    /// The last classified error (JSON object), if any.
    pub error: Option<serde_json::Value>,
}

/// A person's decision on an `unknown` message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// It did arrive: mark it sent.
    Sent,
    /// It did not arrive: send it again.
    Resend,
}

/// Which database a store runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// SQLite file (one machine).
    Sqlite,
    /// PostgreSQL (several workers, several machines).
    Postgres,
}

#[derive(Clone, Debug)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The outbox table on SQLite or PostgreSQL.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use mailroom_outbox::{NewMessage, Store};
/// let dir = tempfile::tempdir()?;
/// let store = Store::open(&format!("sqlite:{}", dir.path().join("outbox.db").display())).await?;
/// let message = NewMessage {
///     message_id: "<order-1@company.com>".into(), event_kind: None, document: None, stage: None,
///     envelope_from: "erp@company.com".into(), recipients: vec!["ada@example.com".into()],
///     message: b"Subject: hi\r\n\r\nhello\r\n".to_vec(),
/// };
/// let first = store.enqueue(&[message.clone()]).await?;
/// let again = store.enqueue(&[message]).await?;
/// assert!(!first[0].duplicate && again[0].duplicate);
/// assert_eq!(store.counts().await?.queued, 1);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Store {
    pool: Pool,
}

/// Runs `$body` with `$pool` bound to whichever pool the store has, and `$sql` picking the
/// text for that database: the statements differ only where the dialects do.
macro_rules! on_pool {
    ($self:expr, |$pool:ident, $pg:ident| $body:expr) => {
        match &$self.pool {
            Pool::Sqlite($pool) => {
                #[allow(unused_variables)]
                let $pg = false;
                $body
            }
            Pool::Postgres($pool) => {
                #[allow(unused_variables)]
                let $pg = true;
                $body
            }
        }
    };
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// How much of a stored message [`Store::list`] reads to find its `Subject:` header.
const SUBJECT_SCAN_BYTES: usize = 16 * 1024;

/// The decoded `Subject:` of a message's first bytes (folded lines and RFC 2047 words
/// decoded); `None` without one. The bytes are untrusted: anything that is not a header
/// section simply has no subject.
fn subject_of(head: &[u8]) -> Option<String> {
    let message = mail_parser::MessageParser::new().parse_headers(head)?;
    message.subject().map(|subject| subject.trim().to_owned())
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Messages per multi-row `INSERT` in [`Store::enqueue`] (7 parameters each: 700, well under
/// SQLite's oldest limit of 999 parameters per statement).
const ROWS_PER_INSERT: usize = 100;

/// `INSERT … VALUES (…), (…) ON CONFLICT (message_id) DO NOTHING RETURNING id, message_id` for
/// `rows` messages, numbered parameters in the order [`Store::enqueue`] binds them.
fn insert_rows_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO mailroom_outbox (message_id, event_kind, document, stage, envelope_from, recipients, message, state, not_before_ms) VALUES ",
    );
    for row in 0..rows {
        let first = row * 7 + 1;
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for column in 0..7 {
            if column > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("${}", first + column));
        }
        sql.push_str(", 'queued', 0)");
    }
    sql.push_str(" ON CONFLICT (message_id) DO NOTHING RETURNING id, message_id");
    sql
}

const COLUMNS_CLAIMED: &str = "id, claim_token, attempts, message_id, envelope_from, recipients, message";

impl Store {
    /// Opens (creating a SQLite file if needed) and migrates the outbox at `url`:
    /// `sqlite:PATH` (WAL, `synchronous = FULL`) or `postgres://user@host:port/db`.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        let pool = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // FULL: a claim must survive a power cut, or the message could go out twice.
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(30))
                // Statement journals (a multi-row INSERT may need to undo itself) in memory,
                // not in temp files: they never hold committed data, so durability is unchanged.
                .pragma("temp_store", "memory");
            let pool = SqlitePoolOptions::new().max_connections(4).connect_with(options).await?;
            // sqlx locks PostgreSQL migrations but not SQLite's: two processes opening a new
            // file at once both try to create the table, and one fails. Its transaction rolls
            // back; trying again finds the migration applied.
            let mut attempt = 0;
            loop {
                match sqlx::migrate!("./migrations/sqlite").run(&pool).await {
                    Ok(()) => break,
                    Err(_) if attempt < 10 => {
                        attempt += 1;
                        tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
                    }
                    Err(error) => return Err(error.into()),
                }
            }
            Pool::Sqlite(pool)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(options)
                .await?;
            sqlx::migrate!("./migrations/postgres").run(&pool).await?;
            Pool::Postgres(pool)
        } else {
            return Err(StoreError::BadUrl(url.to_owned()));
        };
        Ok(Store { pool })
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Closes the pool (waits for connections to be returned).
    pub async fn close(&self) {
        on_pool!(self, |pool, _pg| pool.close().await)
    }

    /// Stores messages in one transaction; a Message-ID already present (in the outbox or
    /// earlier in `messages`) is a duplicate and changes nothing. Returns one [`Enqueued`] per
    /// message, in order. Rows go in multi-row `INSERT … ON CONFLICT DO NOTHING` statements of
    /// [`ROWS_PER_INSERT`]: one statement (one round trip) per hundred messages, not per message.
    pub async fn enqueue(&self, messages: &[NewMessage]) -> Result<Vec<Enqueued>, StoreError> {
        let mut results = Vec::with_capacity(messages.len());
        on_pool!(self, |pool, _pg| {
            let mut tx = pool.begin().await?;
            for part in messages.chunks(ROWS_PER_INSERT) {
                let sql = insert_rows_sql(part.len());
                let mut insert = sqlx::query(&sql);
                for message in part {
                    insert = insert
                        .bind(&message.message_id)
                        .bind(&message.event_kind)
                        .bind(&message.document)
                        .bind(message.stage.and_then(|s| i32::try_from(s).ok()))
                        .bind(&message.envelope_from)
                        .bind(message.recipients.join("\n"))
                        .bind(&message.message);
                }
                let mut inserted = HashMap::new();
                for row in insert.fetch_all(&mut *tx).await? {
                    inserted.insert(row.try_get::<String, _>("message_id")?, row.try_get::<i64, _>("id")?);
                }
                // What was not inserted now was already stored: look its ids up in one query.
                let mut stored = HashMap::new();
                let missing: Vec<&str> =
                    part.iter().map(|m| m.message_id.as_str()).filter(|id| !inserted.contains_key(*id)).collect();
                if !missing.is_empty() {
                    let placeholders = (1..=missing.len()).map(|n| format!("${n}")).collect::<Vec<_>>().join(", ");
                    let sql =
                        format!("SELECT id, message_id FROM mailroom_outbox WHERE message_id IN ({placeholders})");
                    let mut existing = sqlx::query(&sql);
                    for message_id in &missing {
                        existing = existing.bind(*message_id);
                    }
                    for row in existing.fetch_all(&mut *tx).await? {
                        stored.insert(row.try_get::<String, _>("message_id")?, row.try_get::<i64, _>("id")?);
                    }
                }
                for message in part {
                    // The first occurrence of a Message-ID inserted now is new; any later one
                    // (the same event twice in one batch) is its duplicate.
                    let result = match inserted.remove(&message.message_id) {
                        Some(id) => {
                            stored.insert(message.message_id.clone(), id);
                            Enqueued { id, duplicate: false }
                        }
                        None => match stored.get(&message.message_id) {
                            Some(&id) => Enqueued { id, duplicate: true },
                            None => return Err(StoreError::Database(sqlx::Error::RowNotFound)),
                        },
                    };
                    results.push(result);
                }
            }
            tx.commit().await?;
        });
        Ok(results)
    }

    /// Claims up to `limit` due messages for `worker` under a lease of `lease`: they become
    /// `sending` with a fresh claim token and one more attempt. On PostgreSQL rows another
    /// worker holds are skipped (`FOR UPDATE SKIP LOCKED`); SQLite has one writer at a time.
    pub async fn claim(&self, worker: &str, limit: usize, lease: Duration) -> Result<Vec<Claimed>, StoreError> {
        self.finish_and_claim(&[], &[], worker, limit, lease).await
    }

    /// Records outcomes in one transaction. An outcome counts only under its claim token, and
    /// only while the message is `sending` or was judged `unknown` by the crash rule for that
    /// same claim (the worker knows better than the rule); a person's decision is never overwritten.
    pub async fn finish(&self, outcomes: &[Outcome]) -> Result<(), StoreError> {
        self.finish_and_claim(outcomes, &[], "", 0, Duration::ZERO).await.map(drop)
    }

    /// One transaction (one commit, one fsync) that records `outcomes` as [`Store::finish`]
    /// does, gives back `release` (claimed by this worker but never started: `queued` again,
    /// the claim's attempt not counted), then claims up to `limit` due messages as
    /// [`Store::claim`] does. The dispatcher's whole write path: a worker pays one commit per
    /// round, not one per claim plus one per outcome batch.
    pub async fn finish_and_claim(
        &self,
        outcomes: &[Outcome],
        release: &[Claimed],
        worker: &str,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Claimed>, StoreError> {
        const SENT: &str = "UPDATE mailroom_outbox SET state = 'sent', sent_ms = $1, receipt = $2, error = NULL, lease_until_ms = NULL \
             WHERE id = $3 AND claim_token = $4 AND state IN ('sending', 'unknown')";
        const RETRY: &str = "UPDATE mailroom_outbox SET state = 'queued', not_before_ms = $1, error = $2, lease_until_ms = NULL, claim_token = NULL \
             WHERE id = $3 AND claim_token = $4 AND state IN ('sending', 'unknown')";
        const FAILED: &str = "UPDATE mailroom_outbox SET state = 'failed', error = $1, lease_until_ms = NULL \
             WHERE id = $2 AND claim_token = $3 AND state IN ('sending', 'unknown')";
        const UNKNOWN: &str = "UPDATE mailroom_outbox SET state = 'unknown', error = $1, lease_until_ms = NULL \
             WHERE id = $2 AND claim_token = $3 AND state IN ('sending', 'unknown')";
        const RELEASE: &str = "UPDATE mailroom_outbox SET state = 'queued', attempts = attempts - 1, lease_until_ms = NULL, claim_token = NULL \
             WHERE id = $1 AND claim_token = $2 AND state = 'sending'";
        if outcomes.is_empty() && release.is_empty() && limit == 0 {
            return Ok(Vec::new());
        }
        let now = now_ms();
        let token = fastrand::i64(1..i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut rows = on_pool!(self, |pool, pg| {
            let mut tx = pool.begin().await?;
            for outcome in outcomes {
                let query = match outcome {
                    Outcome::Sent { id, claim_token, receipt } => {
                        sqlx::query(SENT).bind(now).bind(receipt).bind(id).bind(claim_token)
                    }
                    Outcome::Retry { id, claim_token, not_before_ms, error } => {
                        sqlx::query(RETRY).bind(not_before_ms).bind(error).bind(id).bind(claim_token)
                    }
                    Outcome::Failed { id, claim_token, error } => {
                        sqlx::query(FAILED).bind(error).bind(id).bind(claim_token)
                    }
                    Outcome::Unknown { id, claim_token, error } => {
                        sqlx::query(UNKNOWN).bind(error).bind(id).bind(claim_token)
                    }
                };
                query.execute(&mut *tx).await?;
            }
            for claim in release {
                sqlx::query(RELEASE).bind(claim.id).bind(claim.claim_token).execute(&mut *tx).await?;
            }
            let claimed = if limit > 0 {
                let lock = if pg { "FOR UPDATE SKIP LOCKED" } else { "" };
                let sql = format!(
                    "UPDATE mailroom_outbox SET state = 'sending', attempts = attempts + 1, claimed_by = $1, claim_token = $2, \
                     lease_until_ms = $3, last_attempt_ms = $4 \
                     WHERE id IN (SELECT id FROM mailroom_outbox WHERE state = 'queued' AND not_before_ms <= $4 ORDER BY id LIMIT $5 {lock}) \
                     RETURNING {COLUMNS_CLAIMED}"
                );
                sqlx::query(&sql)
                    .bind(worker)
                    .bind(token)
                    .bind(now.saturating_add(millis(lease)))
                    .bind(now)
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await?
                    .iter()
                    .map(|row| {
                        Ok(Claimed {
                            id: row.try_get("id")?,
                            claim_token: row.try_get("claim_token")?,
                            attempts: u32::try_from(row.try_get::<i32, _>("attempts")?).unwrap_or(0),
                            message_id: row.try_get("message_id")?,
                            envelope_from: row.try_get("envelope_from")?,
                            recipients: split_recipients(row.try_get("recipients")?),
                            message: row.try_get("message")?,
                        })
                    })
                    .collect::<Result<Vec<_>, sqlx::Error>>()?
            } else {
                Vec::new()
            };
            tx.commit().await?;
            claimed
        });
        rows.sort_by_key(|claimed| claimed.id);
        Ok(rows)
    }

    /// §8's crash rule: a `sending` message whose lease has expired may have been handed over
    /// (a message is claimed only shortly before its send starts), so it becomes `unknown`,
    /// held for a person. Returns how many.
    pub async fn expire_leases(&self) -> Result<u64, StoreError> {
        const EXPIRE: &str = "UPDATE mailroom_outbox SET state = 'unknown', error = $1 \
             WHERE state = 'sending' AND lease_until_ms < $2";
        let error = serde_json::json!({
            "kind": "delivery_unknown",
            "message": "The worker sending this message stopped (crash, kill or lost database connection) before it recorded the result, and its lease expired: the message may or may not have been delivered.",
            "remediation": ["Check the recipient's mailbox or the service's sent items for this Message-ID, then run `mailroom outbox resolve ID --sent` if it arrived or `--resend` if it did not."],
            "retryable": false,
        })
        .to_string();
        let now = now_ms();
        let affected =
            on_pool!(self, |pool, _pg| sqlx::query(EXPIRE).bind(&error).bind(now).execute(pool).await?.rows_affected());
        Ok(affected)
    }

    /// How many messages are in each state.
    pub async fn counts(&self) -> Result<Counts, StoreError> {
        const COUNT: &str = "SELECT state, COUNT(*) AS n FROM mailroom_outbox GROUP BY state";
        let mut counts = Counts::default();
        on_pool!(self, |pool, _pg| {
            for row in sqlx::query(COUNT).fetch_all(pool).await? {
                let state: String = row.try_get("state")?;
                let n: i64 = row.try_get("n")?;
                counts.add(&state, u64::try_from(n).unwrap_or(0));
            }
        });
        Ok(counts)
    }

    /// The earliest `not_before` (ms) of a queued message, if any is queued.
    pub async fn next_due_ms(&self) -> Result<Option<i64>, StoreError> {
        const NEXT: &str = "SELECT MIN(not_before_ms) FROM mailroom_outbox WHERE state = 'queued'";
        Ok(on_pool!(self, |pool, _pg| sqlx::query_scalar::<_, Option<i64>>(NEXT).fetch_one(pool).await?))
    }

    /// Messages that may have reached the service since `since_ms` (claimed then, and now
    /// `sending`, `sent` or `unknown`): what a daily quota counts.
    pub async fn handed_over_since(&self, since_ms: i64) -> Result<u64, StoreError> {
        const COUNT: &str = "SELECT COUNT(*) FROM mailroom_outbox WHERE last_attempt_ms >= $1 AND state IN ('sending', 'sent', 'unknown')";
        let n: i64 = on_pool!(self, |pool, _pg| sqlx::query_scalar(COUNT).bind(since_ms).fetch_one(pool).await?);
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Up to `limit` messages, newest first, optionally in one state.
    pub async fn list(&self, state: Option<State>, limit: usize) -> Result<Vec<Listed>, StoreError> {
        let filter = if state.is_some() { "WHERE state = $2" } else { "" };
        let sql = format!(
            "SELECT id, message_id, event_kind, recipients, substr(message, 1, {SUBJECT_SCAN_BYTES}) AS head, \
             state, attempts, not_before_ms, sent_ms, error \
             FROM mailroom_outbox {filter} ORDER BY id DESC LIMIT $1"
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let listed = on_pool!(self, |pool, _pg| {
            let mut query = sqlx::query(&sql).bind(limit);
            if let Some(state) = state {
                query = query.bind(state.as_str());
            }
            query
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| {
                    let state: String = row.try_get("state")?;
                    let error: Option<String> = row.try_get("error")?;
                    Ok(Listed {
                        id: row.try_get("id")?,
                        message_id: row.try_get("message_id")?,
                        event: row.try_get("event_kind")?,
                        recipients: split_recipients(row.try_get("recipients")?),
                        subject: row.try_get::<Option<Vec<u8>>, _>("head")?.as_deref().and_then(subject_of),
                        state: state.parse().unwrap_or(State::Unknown),
                        attempts: u32::try_from(row.try_get::<i32, _>("attempts")?).unwrap_or(0),
                        not_before_ms: row.try_get("not_before_ms")?,
                        sent_ms: row.try_get("sent_ms")?,
                        error: error.and_then(|text| serde_json::from_str(&text).ok()),
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        Ok(listed)
    }

    /// Puts a `failed` message back to `queued` (attempts start again).
    pub async fn retry(&self, id: i64) -> Result<(), StoreError> {
        const RETRY: &str = "UPDATE mailroom_outbox SET state = 'queued', attempts = 0, not_before_ms = 0, claim_token = NULL \
             WHERE id = $1 AND state = 'failed'";
        self.change_state(id, RETRY, "failed").await
    }

    /// A person's decision on an `unknown` message: `sent` (it arrived) or back to `queued`.
    pub async fn resolve(&self, id: i64, resolution: Resolution) -> Result<(), StoreError> {
        const SENT: &str = "UPDATE mailroom_outbox SET state = 'sent', sent_ms = COALESCE(last_attempt_ms, 0), claim_token = NULL \
             WHERE id = $1 AND state = 'unknown'";
        const RESEND: &str = "UPDATE mailroom_outbox SET state = 'queued', not_before_ms = 0, claim_token = NULL \
             WHERE id = $1 AND state = 'unknown'";
        let sql = match resolution {
            Resolution::Sent => SENT,
            Resolution::Resend => RESEND,
        };
        self.change_state(id, sql, "unknown").await
    }

    async fn change_state(&self, id: i64, sql: &str, expected: &'static str) -> Result<(), StoreError> {
        const STATE: &str = "SELECT state FROM mailroom_outbox WHERE id = $1";
        on_pool!(self, |pool, _pg| {
            let changed = sqlx::query(sql).bind(id).execute(pool).await?.rows_affected();
            if changed == 0 {
                let state: Option<String> = sqlx::query_scalar(STATE).bind(id).fetch_optional(pool).await?;
                return Err(match state {
                    None => StoreError::NotFound(id),
                    Some(state) => StoreError::WrongState { id, state, expected },
                });
            }
        });
        Ok(())
    }

    /// The `(document, stage)` of every message of `event_kind` in the outbox, whatever its
    /// state: the history the reminder schedule reads (a queued or unknown reminder counts as
    /// sent, so it is never scheduled twice).
    pub async fn event_history(&self, event_kind: &str) -> Result<Vec<(String, u32)>, StoreError> {
        const HISTORY: &str = "SELECT document, stage FROM mailroom_outbox WHERE event_kind = $1 AND document IS NOT NULL AND stage IS NOT NULL";
        let rows = on_pool!(self, |pool, _pg| {
            sqlx::query(HISTORY)
                .bind(event_kind)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| {
                    let document: String = row.try_get("document")?;
                    let stage: i32 = row.try_get("stage")?;
                    Ok((document, u32::try_from(stage).unwrap_or(0)))
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        Ok(rows)
    }
}

fn split_recipients(text: String) -> Vec<String> {
    text.split('\n').filter(|r| !r.is_empty()).map(str::to_owned).collect()
}
