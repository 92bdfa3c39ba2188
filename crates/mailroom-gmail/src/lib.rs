//! mailroom's Email Services (Gmail API) driver — not implemented yet.
//!
//! It will hold the Google OAuth2 loopback consent flow (oauth2 crate), a refresh-token
//! `TokenSource` behind `mailroom_core::TokenCache`, the media upload send
//! (`/upload/gmail/v1/users/me/messages/send?uploadType=media`, `message/rfc822`), and a
//! mapping of Google's error shapes (`invalid_grant`, `insufficientPermissions`,
//! `rateLimitExceeded`, …) into `mailroom_core::ErrorKind`. Until then the `mailroom` facade
//! reports Email Services configs as "driver not available" (exit 2) after validating them.
