//! The mailroom facade: load a Company Email config, get a transport for it, validate before saving.
//!
//! Library users, the `mailroom` CLI (`mailroom-cli`) and the web console call [`load_config_file`] and [`transport_for`].

#![warn(unreachable_pub)]

mod copy;
mod facade;
mod layers;
mod outbox;
mod secrets;
mod smtp_oauth;

pub use copy::redirect_event;
pub use facade::{
    LoadError, VALIDATE_MAX_BACKOFF, ValidatedConfig, load_config_file, load_config_file_with_text, load_config_text,
    load_sender_file, test_message, transport_for, validate,
};
pub use layers::{ConcurrencyLimit, RetryLayer, WayOutLayer};
pub use outbox::{
    DEFAULT_OUTBOX_FILE, PlannedReminder, RemindersError, event_message, open_outbox, outbox_url, plan_reminders,
    render_for_outbox, sqlite_outbox_file,
};
pub use secrets::{SecretsFileError, format_secrets, parse_secrets, read_secrets_file, secrets_path_for};

/// The README's example, compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
