//! mailroom's Web Mail (SMTP) driver: sends the Company Email's messages through any SMTP server and classifies every failure.
//!
//! Built on lettre's SMTP protocol pieces (AUTH mechanisms, addresses) on a socket this crate
//! owns, because the stock client falls into the traps measured in DESIGN.md §6:
//!
//! - TCP_NODELAY is set, so a message does not wait ~40 ms for a delayed ACK;
//! - every step (DNS, connect, greeting, EHLO, STARTTLS, TLS handshake, AUTH, MAIL, RCPT,
//!   DATA, final reply) has its own deadline: a STARTTLS client on an implicit-TLS port fails
//!   in `timeout_secs`, it does not hang;
//! - STARTTLS and implicit TLS use rustls with the aws-lc-rs provider, trusting Mozilla's
//!   roots plus the config's `ca_file`;
//! - pooled connections are checked before reuse without a round trip, and a stale one is
//!   replaced transparently (the message was not handed over yet);
//! - RSET, MAIL, RCPT and DATA are pipelined when the server offers PIPELINING;
//! - multi-line replies are kept whole; XOAUTH2's error challenge is answered and the token
//!   refreshed once; AUTH is never sent in clear text except to loopback or when allowed.
//!
//! Errors are [`SmtpError`] internally and [`mailroom_core::SendError`] outside, with the
//! config field to change and a redacted transcript.

// Items are `pub` only where the crate exports them: a user sees exactly the public API.
#![warn(unreachable_pub)]

mod error;
mod probe;
mod reply;
mod session;
mod tls;
mod transport;

// `SmtpReply` and `SmtpStep`, not `Reply` and `Step`: mailroom-testkit exports its own
// `Reply` and `Step` (what a scripted server says and when), and tests use both crates.
pub use error::{SmtpError, Step as SmtpStep, TlsFailure};
pub use reply::Reply as SmtpReply;
pub use session::Resolver;
pub use transport::{SmtpTransport, SmtpTransportBuilder};

/// The README's example, compiled (and run where it needs no server) as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
