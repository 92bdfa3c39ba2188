//! Test kit for mailroom and for other projects' tests: fake SMTP servers on loopback that capture, refuse, misbehave and imitate Gmail and Office 365.
//!
//! - [`FakeSmtpServer`]: a well-behaved server (mailin's state machine) with STARTTLS or
//!   implicit TLS on a certificate generated at start, AUTH PLAIN/LOGIN accounts, refused
//!   recipients and a size limit; it captures every accepted message ([`CapturedMessage`],
//!   parsed with [`CapturedMessage::parsed`]).
//! - [`ScriptedSmtpServer`]: every reply, capability list and failure point scripted —
//!   multi-line replies ([`Reply`]), XOAUTH2 error challenges, hang-ups at any [`Step`],
//!   silence, plaintext where TLS is expected — with a per-connection transcript.
//! - [`Persona`]: Gmail 587, Gmail 465 and Office 365 587 built from the providers' real
//!   replies (`fixtures/smtp/*.toml`), each with [`Fault`] modes.
//! - [`SmtpSink`]: a fast counting sink for throughput measurements.
//! - [`HostileHttpServer`]: a raw HTTP server that reads each request and then misbehaves
//!   ([`HostileReply`]: cut bodies, 10 MB lines, endless chunks, trickles, silence).
//! - `MockMicrosoft365` (feature `microsoft`): the Microsoft identity platform and Graph on
//!   wiremock, answering with captured replies.
//! - [`ChaosSmtpServer`]: refuses, throttles and drops connections after the data on purpose,
//!   and logs every message by Message-ID with its fate and arrival time (outbox tests).
//! - [`PostgresCluster`]: a private PostgreSQL cluster on a free loopback port (outbox tests
//!   and benches; Debian's server binaries, run as the `postgres` user).
//!
//! Every server listens on an ephemeral loopback port, runs on its own thread and runtime,
//! bounds every wait, and releases its port when shut down or dropped. TLS uses rustls with
//! the aws-lc-rs provider, chosen explicitly (never the process default).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), mailroom_testkit::KitError> {
//! use mailroom_testkit::{Fault, Persona};
//!
//! let gmail = Persona::gmail_587()
//!     .account("erp@company.com", "abcdefghijklmnop")
//!     .fault(Fault::AppPasswordRequired)
//!     .start()
//!     .await?;
//! // Point the driver at gmail.addr() with gmail.ca_pem() as an extra root: its AUTH gets
//! // "534-5.7.9 Application-specific password required. …".
//! assert!(gmail.addr().ip().is_loopback());
//! # Ok(()) }
//! ```

// Items are `pub` only where the crate exports them: a user sees exactly the public API.
#![warn(unreachable_pub)]

mod capture;
mod chaos;
mod conn;
mod fake;
mod host;
mod hostile_http;
#[cfg(feature = "microsoft")]
mod microsoft;
mod persona;
mod postgres;
mod reply;
mod scripted;
mod sink;
mod tls;

use std::time::Duration;

pub use capture::{CapturedMessage, ParsedAddress, ParsedAttachment, ParsedMessage};
pub use chaos::{Arrival, ChaosSmtpServer, ChaosSmtpServerBuilder, Fate};
pub use conn::Limits;
pub use fake::{FakeSmtpServer, FakeSmtpServerBuilder};
pub use hostile_http::{HANG_BOUND, HostileHttpServer, HostileReply, assert_never_retried, send_expecting_error};
#[cfg(feature = "microsoft")]
pub use microsoft::{
    GraphAttachment, GraphDraft, MicrosoftFault, MicrosoftTenant, MockMicrosoft365, microsoft_fixture,
};
pub use persona::{Fault, Persona};
pub use postgres::{PostgresCluster, PostgresClusterBuilder};
pub use reply::Reply;
pub use scripted::{
    ConnectionTranscript, ListenerTls, ScriptedSmtpServer, ScriptedSmtpServerBuilder, Step, TranscriptEntry,
};
pub use sink::{SmtpSink, SmtpSinkBuilder};
pub use tls::{TestCertificates, localhost_server_name};

/// Why the kit could not do what a test asked.
#[derive(Debug, thiserror::Error)]
pub enum KitError {
    /// A socket or thread operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What the kit was doing.
        context: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Certificate generation or TLS configuration failed.
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// A bounded wait ended before the condition was met.
    #[error("timed out after {after:?} waiting for {waited_for} (got {got})")]
    Timeout {
        /// What was awaited.
        waited_for: String,
        /// How long the kit waited.
        after: Duration,
        /// What there was instead.
        got: String,
    },
    /// A persona fixture is malformed or incomplete.
    #[error("persona fixture {name}: {reason}")]
    Fixture {
        /// The fixture's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The persona has no captured reply for this fault, so it cannot reproduce it faithfully.
    #[error("persona {persona} cannot produce fault {fault:?}: {reason}")]
    FaultNotAvailable {
        /// The persona's name.
        persona: String,
        /// The fault asked for.
        fault: Fault,
        /// Why not.
        reason: String,
    },
    /// A private PostgreSQL cluster could not be set up or started.
    #[error("PostgreSQL: {0}")]
    Postgres(String),
}

impl KitError {
    pub(crate) fn io(context: &'static str, source: std::io::Error) -> Self {
        Self::Io { context, source }
    }
}

/// The README's example, compiled (and run where it needs no server) as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
