//! Microsoft Graph driver: mail from the Company Email through Graph `sendMail` in MIME form (larger mail as a draft plus attachment uploads), signed in as the app (client credentials) or as the account (refresh token).
//!
//! This is the way that keeps working for Microsoft 365 after Exchange Online blocked EWS
//! (October 2026) and switched off SMTP basic authentication. Every identity-platform
//! (`AADSTS…`) and Graph (`error.code`) error is classified into core's kinds by
//! [`GraphError::classify`], with the field to change and the Entra admin-centre step.
//!
//! [`MicrosoftSignIn`] is `mailroom connect microsoft`: authorization code + PKCE on a
//! loopback redirect, or the device code flow; it refuses an account that is not the Company
//! Email address and writes the refresh token to `token_file` (atomic, owner-only).

#![warn(unreachable_pub)]

mod connect;
mod error;
mod split;
mod token;
mod transport;

pub use connect::{BrowserSignIn, ConnectError, Connected, DeviceSignIn, MicrosoftSignIn};
pub use token::{
    classify_token_failure, identity_error, load_refresh_token, oauth_client, save_refresh_token, scopes, token_source,
};
pub use transport::{GraphTransport, MAX_REQUEST_BYTES, UPLOAD_CHUNK_BYTES, UPLOAD_SESSION_FROM};

pub use error::{
    ApiError, Context, GraphError, IdentityError, MAX_RETRY_AFTER, Resource, Step, classify_api, classify_identity,
    retry_after_seconds,
};
