//! The layers around any `Transport` now live in core (feature `layers`), so a driver crate alone gets them; re-exported here for the facade's users.

pub use mailroom_core::layers::{ConcurrencyLimit, RetryLayer};
