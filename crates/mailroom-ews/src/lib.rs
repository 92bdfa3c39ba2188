//! mailroom's Exchange (EWS) driver: sends the Company Email's messages through Exchange Web Services and classifies every failure.
//!
//! Hand-built SOAP over reqwest + quick-xml, as DESIGN.md §6 asks:
//!
//! - one `CreateItem` per message, `MessageDisposition="SendOnly"`, the message's RFC 5322
//!   bytes unchanged as base64 `t:MimeContent` (Bcc recipients, which core keeps out of the
//!   headers, listed as `t:BccRecipients`); see [`EwsTransport`] for why `SendOnly`;
//! - envelope namespace `http://schemas.xmlsoap.org/soap/envelope/`, `RequestServerVersion`
//!   `Exchange2010_SP2`, elements in schema order, XML written with quick-xml's writer and read
//!   with its reader by local name (any prefix), never with `format!` or string search;
//! - rustls on aws-lc-rs (the workspace's one provider) trusting Mozilla's roots plus
//!   `ca_file`; `timeout_secs` bounds connecting (TCP connect and TLS handshake together) and
//!   every reply but `CreateItem`'s, which may take max(6 × `timeout_secs`, 60 s) because
//!   Exchange scans content before answering ([`EwsTransportBuilder::send_timeout`]);
//!   redirects never followed (a redirect to `/ews/genericerrorpage.htm` is Exchange's way
//!   of saying "temporarily broken"); `http://` and loopback endpoints (core's rule,
//!   `*.localhost` included) never go through a proxy, and localhost names are resolved to
//!   loopback by the driver itself;
//! - `auth = "basic"` (user name @ domain), or `auth = "oauth"`: Azure AD client credentials,
//!   a Bearer token from core's single-flight `TokenCache` (refreshed once when Exchange
//!   rejects it) and `ExchangeImpersonation` of the sender. `auth = "ntlm"` is refused with
//!   `invalid_config` on `exchange.auth`: no NTLM crate we trust, and Basic over HTTPS or OAuth
//!   cover the same servers;
//! - every reply classified into core's kinds with the field to change: 401 challenges say
//!   *why* (Basic disabled, OAuth only, Windows auth only), `ErrorServerBusy` carries its
//!   `BackOffMilliseconds`, a connection lost or a reply deadline passed after the whole
//!   `CreateItem` was sent is `delivery_unknown`. Only refusals Exchange makes before acting
//!   (HTTP 429 and 503, `ErrorServerBusy` and the other throttling codes) are retryable after
//!   a `CreateItem`: a 500, 502 or 504 or an internal-error code may come after the message
//!   was submitted, so it is `service_unavailable` that is never resent automatically.
//!
//! Errors carry a redacted transcript (request line and headers, `Authorization: Basic
//! [redacted]`, status, selected reply headers and the reply body); request bodies are never
//! recorded, and every secret the request carried (password, `user:password` and its base64,
//! the `Authorization` value, client secret, access token, raw and escaped) is scrubbed from
//! whatever the server sends back before any of it is kept, so a server echoing the request
//! leaks nothing. The probe behind `mailroom diagnose` is in [`Transport::probe`](mailroom_core::Transport::probe).

// Items are `pub` only where the crate exports them: a user sees exactly the public API.
#![warn(unreachable_pub)]

mod envelope;
mod error;
mod http;
mod oauth;
mod probe;
mod reply;
mod soap;
mod transport;

pub use transport::{EwsTransport, EwsTransportBuilder};

/// The README's example, compiled (and run where it needs no server) as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
