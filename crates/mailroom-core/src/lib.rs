//! mailroom's core: the Company Email config and its validation, secrets, the error taxonomy, messages, and the `Transport` trait. No network I/O.
//!
//! Drivers (`mailroom-smtp`, `mailroom-ews`, `mailroom-gmail`) depend on this crate and on
//! nothing of each other; the `mailroom` facade turns a [`config::CompanyEmail`] into an
//! `Arc<dyn Transport>`.

// Items are `pub` only where the crate exports them: a user sees exactly the public API.
#![warn(unreachable_pub)]

pub mod config;
#[cfg(feature = "conformance")]
pub mod conformance;
mod error;
#[cfg(feature = "layers")]
pub mod layers;
mod message;
mod provider;
mod retry;
mod scrub;
mod secret;
mod token;
mod transcript;
mod transport;
pub mod trust;
mod way_out;

pub use config::{CompanyEmail, EwsConfig, GmailConfig, ServiceConfig, SmtpConfig, TlsMode};
pub use error::{DocumentedError, ErrorKind, ErrorReport, Retry, SendError, ServerReply, ServiceKind};
pub use message::{Attachment, MessageDraft, MessageError, OutgoingMessage, mime_type_for};
pub use provider::{Preset, Provider};
pub use retry::RetryPolicy;
pub use scrub::Scrubber;
pub use secret::{REDACTED, Secret};
pub use token::{AccessToken, TokenCache, TokenSource};
pub use transcript::{Direction, Transcript, TranscriptLine};
pub use transport::{ProbeReport, ProbeStep, SendReceipt, StepOutcome, Suggestion, Transport};
pub use way_out::add_way_out;

pub use lettre::Address;
/// Re-exported so users build senders and recipients with the same types.
pub use lettre::message::Mailbox;

/// The README's example, compiled (and run where it needs no server) as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// Every variant of an enum, from strum's `VariantArray`, as the fixed-size array a public
/// `ALL` constant is (`ErrorKind::ALL`, mailroom-events' `EventKind::ALL`): the list lives
/// only in the enum's declaration. A wrong `N` fails at compile time.
///
/// ```
/// const DIGITS: [u8; 3] = mailroom_core::every_variant(&[1, 2, 3]);
/// assert_eq!(DIGITS, [1, 2, 3]);
/// ```
pub const fn every_variant<T: Copy, const N: usize>(variants: &[T]) -> [T; N] {
    assert!(variants.len() == N, "N must be the number of variants");
    let mut all = [variants[0]; N];
    let mut i = 1;
    while i < N {
        all[i] = variants[i];
        i += 1;
    }
    all
}
