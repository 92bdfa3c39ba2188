//! mailroom's durable outbox (DESIGN.md §8): every message is stored under its Message-ID before it is sent, then a dispatcher sends it through any `Transport` within the provider's limits, and no crash loses a message or sends it twice on its own.
//!
//! - [`Store`] — the `mailroom_outbox` table on SQLite (one machine, the default; WAL) or
//!   PostgreSQL (several workers; `FOR UPDATE SKIP LOCKED` claims). The schema is versioned
//!   by embedded migrations and documented in ARCHITECTURE.md, so an ERP may insert rows in
//!   its own business transaction.
//! - [`Dispatcher`] — claims due messages under a lease, sends with bounded concurrency, a
//!   per-minute pace and a daily quota ([`limits`]: provider presets, `[outbox]` overrides),
//!   retries temporary refusals raised before hand-over with core's back-off (server hints
//!   honoured), and holds `delivery_unknown` as [`State::Unknown`] for a person to resolve.
//! - The crash rule: a message is claimed only shortly before its send starts (at most
//!   `concurrency` claimed ahead of the sends), so a `sending` message whose lease expired
//!   may have been delivered and becomes `unknown` ([`Store::expire_leases`]); one that was
//!   never claimed is still `queued`.
//!
//! States: `queued` → `sending` → `sent` | `failed` | `unknown` (and `queued` again after a
//! temporary refusal, `retry` of a failed one, or `resolve --resend`).

#![warn(unreachable_pub)]

mod dispatch;
pub mod limits;
mod store;

pub use dispatch::{Dispatcher, Progress, RunOptions, RunSummary, StopReason, bulk_retry};
pub use limits::SendingLimits;
pub use store::{
    Backend, Claimed, Counts, Enqueued, Listed, NewMessage, Outcome, Resolution, State, Store, StoreError, now_ms,
};
