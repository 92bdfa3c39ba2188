//! `GraphError`: what the Microsoft identity platform and Microsoft Graph answered, classified into core's kinds with the field to change and the Entra admin-centre step that fixes it.

use std::time::{Duration, SystemTime};

use mailroom_core::config::{Field, MicrosoftKey};
use mailroom_core::config::{MicrosoftAuth, MicrosoftOAuth};
use mailroom_core::{ErrorKind, Retry, SendError, ServerReply};
use mailroom_http::TokenEndpointError;
use serde::Deserialize;

/// The longest server back-off hint that is honoured as given; longer ones are capped here
/// (a hint is untrusted input).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Reads a `Retry-After` header: seconds, possibly decimal (`2.128` is in Microsoft's own
/// sample), bounded by [`MAX_RETRY_AFTER`]. HTTP dates and garbage give `None`.
///
/// ```
/// use std::time::Duration;
/// use mailroom_graph::retry_after_seconds;
/// assert_eq!(retry_after_seconds("2.128"), Some(Duration::from_millis(2128)));
/// assert_eq!(retry_after_seconds("10"), Some(Duration::from_secs(10)));
/// assert_eq!(retry_after_seconds("1e300"), Some(mailroom_graph::MAX_RETRY_AFTER));
/// assert_eq!(retry_after_seconds("-1"), None);
/// ```
pub fn retry_after_seconds(value: &str) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit() || b == b'.' || b == b'e' || b == b'+') {
        return None;
    }
    let seconds: f64 = value.parse().ok()?;
    if !seconds.is_finite() || seconds < 0.0 {
        return None;
    }
    Some(Duration::try_from_secs_f64(seconds).unwrap_or(MAX_RETRY_AFTER).min(MAX_RETRY_AFTER))
}

/// Which Microsoft 365 service the token is for; it decides which permission the advice names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    /// Microsoft Graph `sendMail`: `Mail.Send` (application or delegated).
    Graph,
    /// Exchange Online SMTP (XOAUTH2): `SMTP.SendAsApp` (application) or `SMTP.Send` (delegated).
    OutlookSmtp,
}

impl Resource {
    /// The permission the app needs for this resource and sign-in.
    pub fn permission(self, auth: MicrosoftAuth) -> &'static str {
        match (self, auth) {
            (Resource::Graph, _) => "Mail.Send",
            (Resource::OutlookSmtp, MicrosoftAuth::Application) => "SMTP.SendAsApp",
            (Resource::OutlookSmtp, MicrosoftAuth::Delegated) => "SMTP.Send",
        }
    }

    /// Where the permission is found in Entra admin centre's "Add a permission" dialog.
    fn api_name(self) -> &'static str {
        match self {
            Resource::Graph => "Microsoft Graph",
            Resource::OutlookSmtp => "APIs my organization uses → Office 365 Exchange Online",
        }
    }
}

/// What a classification needs to know about the config: which section, sign-in, mailbox.
#[derive(Clone, Debug)]
pub struct Context {
    /// `email_services` or `web_mail.oauth`: where the OAuth keys live.
    pub section: &'static str,
    /// Application or delegated.
    pub auth: MicrosoftAuth,
    /// The tenant as configured.
    pub tenant: String,
    /// The Company Email address.
    pub mailbox: String,
    /// The service the token is for.
    pub resource: Resource,
}

impl Context {
    /// The context of `oauth` sending as `mailbox` through `resource`.
    pub fn new(oauth: &MicrosoftOAuth, mailbox: impl Into<String>, resource: Resource) -> Context {
        Context {
            section: oauth.section,
            auth: oauth.auth,
            tenant: oauth.tenant.clone(),
            mailbox: mailbox.into(),
            resource,
        }
    }

    /// The config field of `key` in this context's section.
    pub(crate) fn field(&self, key: MicrosoftKey) -> Field {
        key.field_in(self.section)
    }

    fn permission(&self) -> &'static str {
        self.resource.permission(self.auth)
    }

    fn grant_consent(&self) -> String {
        let kind = match self.auth {
            MicrosoftAuth::Application => "Application permissions",
            MicrosoftAuth::Delegated => "Delegated permissions",
        };
        format!(
            "Grant admin consent for {permission}: Entra admin centre → Identity → Applications → App registrations → your app → API permissions → Add a permission → {api} → {kind} → {permission} → Add permissions, then \"Grant admin consent for {tenant}\" (a Global Administrator or Privileged Role Administrator can).",
            permission = self.permission(),
            api = self.resource.api_name(),
            tenant = self.tenant,
        )
    }

    fn connect_again(&self) -> String {
        format!(
            "Run `mailroom connect microsoft --config FILE` and sign in as {} again; the new refresh token replaces the old one (in {} or {}).",
            self.mailbox,
            self.field(MicrosoftKey::TokenFile),
            self.field(MicrosoftKey::RefreshTokenEnv)
        )
    }
}

/// An error reply of the identity platform's token endpoint (`{authority}/{tenant}/oauth2/v2.0/token`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityError {
    /// HTTP status.
    pub status: u16,
    /// The OAuth `error` (`invalid_client`, `invalid_grant`, …).
    pub error: String,
    /// `error_description`, starting with `AADSTSnnnn:`; scrubbed of secrets by the caller.
    pub description: String,
    /// The AADSTS code: `error_codes[0]`, else the number after `AADSTS` in the description.
    pub code: Option<u32>,
    /// The server's back-off hint.
    pub retry_after: Option<Duration>,
}

impl IdentityError {
    /// Reads a token-endpoint error body (JSON); `None` when it is not one.
    ///
    /// ```
    /// use mailroom_graph::IdentityError;
    /// let body = br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.","error_codes":[7000215]}"#;
    /// let error = IdentityError::from_body(401, body, None).unwrap();
    /// assert_eq!(error.code, Some(7000215));
    /// ```
    pub fn from_body(status: u16, body: &[u8], retry_after: Option<Duration>) -> Option<IdentityError> {
        // The parser the token exchange itself uses (mailroom-http), so what is tested here is
        // what classifies a live refusal.
        let refusal = TokenEndpointError::parse(status, None, body, SystemTime::now());
        refusal.error.as_ref()?;
        Some(IdentityError { retry_after, ..crate::token::identity_error(&refusal) })
    }

    /// The description without its `Trace ID: … Correlation ID: … Timestamp: …` trailer.
    pub fn summary(&self) -> &str {
        let text = self.description.as_str();
        let end = text.find("Trace ID:").unwrap_or(text.len());
        text[..end].trim_end_matches(['\r', '\n', ' '])
    }

    fn reply(&self) -> ServerReply {
        let enhanced = match self.code {
            Some(code) => format!("AADSTS{code}"),
            None => self.error.clone(),
        };
        ServerReply { code: Some(self.status), enhanced: Some(enhanced), text: self.summary().to_owned() }
    }
}

/// The expiry date a description states (`… expired on 2025-03-01 …`), if it states one.
fn expiry_date(description: &str) -> Option<&str> {
    let lower = description.to_ascii_lowercase();
    for marker in ["expired on ", "expired at ", "expiry date ", "expired since "] {
        if let Some(index) = lower.find(marker) {
            let start = index + marker.len();
            let rest = description.get(start..)?;
            let date = rest.split([' ', ',', '\r', '\n', '\'', '"']).next().unwrap_or("");
            let date = date.trim_end_matches('.');
            if date.len() >= 8 && date.starts_with(|c: char| c.is_ascii_digit()) {
                return Some(date);
            }
        }
    }
    None
}

/// An error reply of Microsoft Graph (`{"error":{"code":…,"message":…}}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// `error.code` (`ErrorAccessDenied`, …); empty when the body had none.
    pub code: String,
    /// `error.message`.
    pub message: String,
    /// The `Retry-After` hint, bounded.
    pub retry_after: Option<Duration>,
}

#[derive(Deserialize)]
struct ApiBody {
    error: ApiBodyError,
}

#[derive(Deserialize)]
struct ApiBodyError {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

impl ApiError {
    /// Reads a Graph error body; a body that is not Graph's JSON keeps its status and no code.
    ///
    /// ```
    /// use mailroom_graph::ApiError;
    /// let error = ApiError::from_body(403, br#"{"error":{"code":"ErrorSendAsDenied","message":"no"}}"#, None);
    /// assert_eq!(error.code, "ErrorSendAsDenied");
    /// ```
    pub fn from_body(status: u16, body: &[u8], retry_after: Option<Duration>) -> ApiError {
        match serde_json::from_slice::<ApiBody>(body) {
            Ok(parsed) => ApiError { status, code: parsed.error.code, message: parsed.error.message, retry_after },
            Err(_) => ApiError { status, code: String::new(), message: String::new(), retry_after },
        }
    }

    fn reply(&self) -> ServerReply {
        ServerReply {
            code: Some(self.status),
            enhanced: (!self.code.is_empty()).then(|| self.code.clone()),
            text: self.message.clone(),
        }
    }
}

/// Which Graph request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// `POST …/sendMail`.
    SendMail,
    /// `POST …/messages` (the draft of a large message).
    CreateDraft,
    /// An upload session or one of its ranges.
    Upload,
    /// `POST …/messages/{id}/send`.
    SendDraft,
    /// The diagnosis: reading the mailbox.
    Probe,
}

impl Step {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Step::SendMail => "sendMail",
            Step::CreateDraft => "creating the draft",
            Step::Upload => "uploading an attachment",
            Step::SendDraft => "sending the draft",
            Step::Probe => "reading the mailbox",
        }
    }
}

/// Everything the Graph driver can fail with. [`GraphError::classify`] maps it into core's kinds.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// The token endpoint refused.
    #[error("the Microsoft identity platform refused the sign-in ({})", .0.error)]
    Identity(IdentityError),
    /// Graph answered an error.
    #[error("Microsoft Graph answered HTTP {} {} while {}", .error.status, .error.code, .step.describe())]
    Api {
        /// Which request.
        step: Step,
        /// The reply.
        error: ApiError,
    },
    /// A reply that is not what Graph sends.
    #[error("unexpected reply while {}: {detail}", .step.describe())]
    Unexpected {
        /// Which request.
        step: Step,
        /// What was wrong with it.
        detail: String,
    },
    /// The message is larger than one Graph request can carry and cannot be split: what is
    /// left without its file attachments (uploaded separately to a draft) is still too large.
    #[error(
        "the message is {size} bytes, above the {limit} bytes one Graph request can carry (4,000,000 bytes after base64), and {why}"
    )]
    TooLarge {
        /// The message size.
        size: usize,
        /// The limit.
        limit: usize,
        /// Why the draft + upload-session path cannot take it.
        why: &'static str,
    },
}

impl GraphError {
    /// The error in core's terms: kind, field to change, server reply, retry, remediation.
    pub fn classify(self, context: &Context) -> SendError {
        let error = match &self {
            GraphError::Identity(identity) => classify_identity(identity, context),
            GraphError::Api { step, error } => classify_api(*step, error, context),
            GraphError::Unexpected { .. } => SendError::new(ErrorKind::Protocol, self.to_string())
                .with_field(Field::EmailServicesApiBase)
                .with_hint(format!("Check {}: it must be Microsoft Graph (https://graph.microsoft.com) or a proxy that forwards to it unchanged.", Field::EmailServicesApiBase)),
            GraphError::TooLarge { .. } => SendError::new(ErrorKind::MessageTooLarge, self.to_string())
                .with_field(Field::Service)
                .with_hint("A larger message goes to Graph as a draft whose file attachments are uploaded one by one (upload sessions for files from 3 MB), so attachments up to the mailbox's limit (35 MB by default) are fine; but the text, HTML and other non-file parts must fit in one request of 4,000,000 bytes of base64 (3,000,000 bytes). Shorten the text or send its bulk as an attachment, or send such messages through Web Mail with auth = \"oauth\" (smtp.office365.com, port 587, [web_mail.oauth] with this app registration and SMTP.Send or SMTP.SendAsApp; README: Microsoft 365).")
                .with_complete_hints(),
        };
        error.with_source(self)
    }
}

/// Classifies an identity-platform error by AADSTS code first, then the OAuth `error`.
pub fn classify_identity(identity: &IdentityError, context: &Context) -> SendError {
    let field = |key| context.field(key);
    let detail = format!("Microsoft sign-in failed: {}", identity.summary());
    let error = |kind| SendError::new(kind, detail.clone()).with_reply(identity.reply());
    let app_overview = "Entra admin centre → Identity → Applications → App registrations → your app";
    let secrets = format!("{app_overview} → Certificates & secrets");
    match identity.code {
        Some(7000215) => error(ErrorKind::AuthFailed).with_field(field(MicrosoftKey::ClientSecret)).with_hint(format!(
            "The client secret is wrong: copy the secret's Value (not its Secret ID) from {secrets} into the variable {} names. A Value is shown only right after it is created: if it is gone, create a new client secret.",
            field(MicrosoftKey::ClientSecretEnv)
        )),
        Some(7000222) => {
            let when = expiry_date(&identity.description).map(|date| format!(" on {date}")).unwrap_or_default();
            error(ErrorKind::AuthFailed).with_field(field(MicrosoftKey::ClientSecret)).with_hint(format!(
                "The client secret expired{when}: create a new one in {secrets} → New client secret, put its Value in the variable {} names, and delete the expired one.",
                field(MicrosoftKey::ClientSecretEnv)
            ))
        }
        Some(7000216 | 7000218) => error(ErrorKind::AuthFailed).with_field(field(MicrosoftKey::ClientSecret)).with_hint(format!(
            "This app registration needs its client secret: set {} to a variable holding a secret's Value from {secrets}.",
            field(MicrosoftKey::ClientSecretEnv)
        )),
        Some(700025) => error(ErrorKind::AuthFailed).with_field(field(MicrosoftKey::ClientSecret)).with_hint(format!(
            "The app registration is a public client (Mobile and desktop applications), which must not send a secret: remove {} and {}.",
            field(MicrosoftKey::ClientSecret),
            field(MicrosoftKey::ClientSecretEnv)
        )),
        Some(700016) => error(ErrorKind::AuthFailed).with_field(field(MicrosoftKey::ClientId)).with_hint(format!(
            "No app with this Application (client) ID in the directory {}: copy the Application (client) ID from {app_overview} → Overview, and check that tenant is the directory the app is registered in (an app from another directory needs an administrator of {} to consent first).",
            context.tenant, context.tenant
        )),
        Some(90002 | 900023 | 90033) => error(ErrorKind::AuthFailed).with_field(field(MicrosoftKey::Tenant)).with_hint(format!(
            "Microsoft does not know the tenant \"{}\": enter the Directory (tenant) ID from {app_overview} → Overview, or a verified domain of it (e.g. company.onmicrosoft.com).",
            context.tenant
        )),
        Some(9001023) => error(ErrorKind::AuthFailed).with_field(field(MicrosoftKey::Tenant)).with_hint(format!(
            "This sign-in needs your own tenant, not common or consumers: set {} to the Directory (tenant) ID.",
            field(MicrosoftKey::Tenant)
        )),
        Some(65001) => error(ErrorKind::PermissionDenied).with_field(field(MicrosoftKey::ClientId)).with_hint(context.grant_consent()),
        Some(70011 | 1002012) => error(ErrorKind::PermissionDenied).with_field(field(MicrosoftKey::Auth)).with_hint(format!(
            "The scope was refused: check that the app registration has the {} permission and that auth = \"{}\" matches the kind of permission granted (Application or Delegated).",
            context.permission(),
            context.auth.as_str()
        )),
        Some(700082 | 70008 | 50173 | 9002313 | 50076 | 50079) if context.auth == MicrosoftAuth::Delegated => {
            let why = match identity.code {
                Some(700082 | 70008) => "The refresh token expired after 90 days without use.",
                Some(50173) => "The refresh token was revoked (the password was changed or reset, or sessions were revoked).",
                Some(50076 | 50079) => "The tenant now requires multifactor authentication for this account.",
                _ => "The refresh token is not valid.",
            };
            error(ErrorKind::OauthReconnectRequired).with_field(field(MicrosoftKey::TokenFile)).with_hint(format!("{why} {}", context.connect_again()))
        }
        _ => classify_identity_by_error(identity, context, error(kind_for_oauth_error(identity))),
    }
}

fn kind_for_oauth_error(identity: &IdentityError) -> ErrorKind {
    match (identity.status, identity.error.as_str()) {
        (429, _) => ErrorKind::RateLimited,
        (_, "temporarily_unavailable") | (500..=599, _) => ErrorKind::ServiceUnavailable,
        (_, "invalid_grant" | "interaction_required") => ErrorKind::OauthReconnectRequired,
        (_, "invalid_client" | "unauthorized_client") | (401, _) => ErrorKind::AuthFailed,
        (_, "invalid_scope" | "consent_required") => ErrorKind::PermissionDenied,
        _ => ErrorKind::Protocol,
    }
}

fn classify_identity_by_error(identity: &IdentityError, context: &Context, error: SendError) -> SendError {
    let field = |key| context.field(key);
    match error.kind() {
        ErrorKind::RateLimited | ErrorKind::ServiceUnavailable => {
            error.with_retry(Retry::Temporary { after: identity.retry_after }).with_field(field(MicrosoftKey::Authority))
        }
        ErrorKind::OauthReconnectRequired if context.auth == MicrosoftAuth::Delegated => {
            error.with_field(field(MicrosoftKey::TokenFile)).with_hint(context.connect_again())
        }
        ErrorKind::OauthReconnectRequired | ErrorKind::AuthFailed => error.with_field(field(MicrosoftKey::ClientSecret)).with_hint(format!(
            "Check {}, {} and {} against Entra admin centre → App registrations → your app (Overview, and Certificates & secrets).",
            field(MicrosoftKey::Tenant),
            field(MicrosoftKey::ClientId),
            field(MicrosoftKey::ClientSecretEnv)
        )),
        ErrorKind::PermissionDenied => error.with_field(field(MicrosoftKey::ClientId)).with_hint(context.grant_consent()),
        _ => error.with_field(field(MicrosoftKey::Authority)).with_hint(format!(
            "The sign-in endpoint answered something unexpected: check {} (https://login.microsoftonline.com unless a national cloud or proxy is used).",
            field(MicrosoftKey::Authority)
        )),
    }
}

/// Classifies a Graph error by `error.code` first, then the status.
pub fn classify_api(step: Step, api: &ApiError, context: &Context) -> SendError {
    let field = |key| context.field(key);
    let detail = match api.message.is_empty() {
        true => format!("Microsoft Graph answered HTTP {} while {}", api.status, step.describe()),
        false => format!("Microsoft Graph refused {}: {}", step.describe(), api.message),
    };
    let error = |kind| SendError::new(kind, detail.clone()).with_reply(api.reply());
    let mailbox = &context.mailbox;
    let lower = api.message.to_ascii_lowercase();
    match (api.status, api.code.as_str()) {
        (_, "InvalidAuthenticationToken") | (401, _) => {
            let audience = lower.contains("audience");
            error(ErrorKind::AuthFailed).with_field(if audience { Field::EmailServicesApiBase } else { field(MicrosoftKey::ClientId) }).with_hint(if audience {
                format!("Graph refused a token issued for another service: {} and {} must belong to the same cloud (https://login.microsoftonline.com with https://graph.microsoft.com).", field(MicrosoftKey::Authority), Field::EmailServicesApiBase)
            } else {
                format!("Graph refused the access token even after a fresh sign-in: check that {} is the app registration that holds {} and that the tenant is {}.", field(MicrosoftKey::ClientId), context.permission(), context.tenant)
            })
        }
        (_, "ErrorAccessDenied")
            if lower.contains("accesspolicy") || lower.contains("[raop]") || lower.contains("odata is disabled") =>
        {
            error(ErrorKind::PermissionDenied).with_field(Field::EmailAddress).with_hint(format!(
                "The app may send only for the mailboxes its application access policy (or RBAC for Applications scope) includes, and {mailbox} is not one of them: in Exchange Online PowerShell, add {mailbox} to the mail-enabled security group the policy names (New-ApplicationAccessPolicy -AppId <client_id> -PolicyScopeGroupId <group> -AccessRight RestrictAccess), check with Test-ApplicationAccessPolicy -Identity {mailbox} -AppId <client_id>; changes can take an hour to apply."
            ))
        }
        (_, "ErrorAccessDenied" | "Authorization_RequestDenied" | "AccessDenied") | (403, "")
            if matches!(step, Step::CreateDraft | Step::Upload) =>
        {
            // Microsoft: drafts and upload sessions need Mail.ReadWrite; Mail.Send only sends.
            let hint = match context.auth {
                MicrosoftAuth::Application => format!(
                    "Messages above 3,000,000 bytes go to Graph as a draft with attachment uploads, which needs the application permission Mail.ReadWrite besides Mail.Send: Entra admin centre → Identity → Applications → App registrations → your app → API permissions → Add a permission → Microsoft Graph → Application permissions → Mail.ReadWrite, then \"Grant admin consent for {}\" (an application access policy limits it to the same mailboxes as Mail.Send). Or send such messages through Web Mail with auth = \"oauth\".",
                    context.tenant
                ),
                MicrosoftAuth::Delegated => "Messages above 3,000,000 bytes go to Graph as a draft with attachment uploads, which needs the delegated permission Mail.ReadWrite: add it under the app registration's API permissions (Microsoft Graph → Delegated permissions → Mail.ReadWrite), then run `mailroom connect microsoft` again so the account consents to it (a refresh token granted before mailroom asked for Mail.ReadWrite does not carry it). Or send such messages through Web Mail with auth = \"oauth\" (35 MB).".to_owned(),
            };
            error(ErrorKind::PermissionDenied).with_field(field(MicrosoftKey::Auth)).with_hint(hint)
        }
        (_, "ErrorAccessDenied" | "Authorization_RequestDenied" | "AccessDenied") | (403, "") => {
            let hint = match context.auth {
                MicrosoftAuth::Application => format!(
                    "{} A Delegated Mail.Send does not work with auth = \"application\".",
                    context.grant_consent()
                ),
                MicrosoftAuth::Delegated => format!(
                    "The signed-in account may not send as {mailbox}: add the Delegated permission Mail.Send to the app (Entra admin centre → App registrations → your app → API permissions), then {}",
                    context.connect_again()
                ),
            };
            error(ErrorKind::PermissionDenied).with_field(field(MicrosoftKey::Auth)).with_hint(hint)
        }
        (_, "ErrorSendAsDenied") => error(ErrorKind::SenderNotAllowed).with_field(Field::EmailAddress).with_hint(format!(
            "The account Graph signs in as may not send as {mailbox}: use that account's own address as email_address, or have an Exchange administrator grant it Send As on {mailbox} (Exchange admin centre → Recipients → Mailboxes → {mailbox} → Delegation → Send as)."
        )),
        (_, "MailboxNotEnabledForRESTAPI" | "MailboxNotSupportedForRESTAPI") => {
            error(ErrorKind::SenderNotAllowed).with_field(Field::EmailAddress).with_hint(format!(
                "{mailbox} has no Exchange Online mailbox that Graph can use: it is unlicensed, inactive, soft-deleted or hosted on-premises. Assign it a licence with Exchange Online (Microsoft 365 admin centre → Users → Active users → {mailbox} → Licenses and apps), or for an on-premises mailbox use service = \"exchange\"."
            ))
        }
        (_, "ResourceNotFound" | "ErrorInvalidUser" | "Request_ResourceNotFound") => {
            error(ErrorKind::SenderNotAllowed).with_field(Field::EmailAddress).with_hint(format!(
                "Graph finds no mailbox {mailbox} in the tenant {}: check email_address (the mailbox's primary address or user principal name) and tenant.",
                context.tenant
            ))
        }
        (400, "BadRequest") if lower.contains("/me request") => error(ErrorKind::InvalidConfig)
            .with_field(field(MicrosoftKey::Auth))
            .with_hint("An application token cannot use /me: set auth = \"application\" (mailroom then sends to /users/{email_address}), or sign in with auth = \"delegated\"."),
        (_, "ErrorInvalidRecipients" | "ErrorInvalidRecipientsMessage") => error(ErrorKind::RecipientRejected),
        (_, "ErrorMessageSizeExceeded" | "RequestEntityTooLarge" | "ErrorRequestEntityTooLarge") | (413, _) => {
            error(ErrorKind::MessageTooLarge).with_hint("Microsoft 365 refused the message size: its default limit is 35 MB (the mailbox's MaxSendSize); send large files as links.")
        }
        (_, "ErrorInvalidMimeContent" | "ErrorMimeContentInvalidBase64String" | "ErrorMimeContentInvalid") => {
            error(ErrorKind::Protocol).with_hint("Graph could not read the message's MIME content: this is a mailroom bug, please report it with the transcript.")
        }
        (429, _) | (_, "ApplicationThrottled" | "TooManyRequests" | "ErrorTooManyObjectsOpened" | "MailboxConcurrency") => {
            error(ErrorKind::RateLimited).with_retry(Retry::Temporary { after: api.retry_after })
        }
        (504, _) if matches!(step, Step::SendMail | Step::SendDraft) => SendError::new(
            ErrorKind::DeliveryUnknown,
            format!("Microsoft Graph timed out (HTTP 504) after it had the whole message while {}: it may or may not have been delivered (Graph has delivered mail it answered 504 to)", step.describe()),
        )
        .with_reply(api.reply()),
        (503, _) => error(ErrorKind::ServiceUnavailable).with_retry(Retry::Temporary { after: api.retry_after }),
        (500..=599, _) if matches!(step, Step::SendMail | Step::SendDraft) => {
            error(ErrorKind::ServiceUnavailable).with_retry(Retry::Permanent)
        }
        (500..=599, _) => error(ErrorKind::ServiceUnavailable).with_retry(Retry::Temporary { after: api.retry_after }),
        _ => error(ErrorKind::Protocol).with_field(Field::EmailServicesApiBase),
    }
}
