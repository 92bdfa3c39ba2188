//! A mocked Microsoft 365 on wiremock: the identity platform's authorize (a redirect back with a code), token and device-code endpoints and Graph's `sendMail`, mailbox, drafts, attachments and upload sessions, answering with the captured replies of `fixtures/microsoft` (each with its source in SOURCES.md).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

macro_rules! fixtures {
    ($($name:literal),* $(,)?) => {
        /// Every fixture by file name.
        const FIXTURES: &[(&str, &str)] = &[$(($name, include_str!(concat!("../fixtures/microsoft/", $name)))),*];
    };
}

fixtures!(
    "token_client_credentials.json",
    "token_refreshed.json",
    "token_7000215_invalid_secret.json",
    "token_7000222_expired_secret.json",
    "token_700016_unknown_app.json",
    "token_90002_unknown_tenant.json",
    "token_65001_consent_required.json",
    "token_700082_refresh_expired.json",
    "token_device_pending.json",
    "token_device_declined.json",
    "graph_401_invalid_token.json",
    "graph_401_invalid_audience.json",
    "graph_403_access_denied.json",
    "graph_403_access_policy.json",
    "graph_403_send_as_denied.json",
    "graph_404_mailbox_not_enabled.json",
    "graph_404_resource_not_found.json",
    "graph_400_me_with_app_token.json",
    "graph_400_invalid_mime.json",
    "graph_400_invalid_recipients.json",
    "graph_413_too_large.json",
    "graph_429_throttled.json",
    "graph_429_application_throttled.json",
    "graph_503_unhealthy.json",
    "graph_sent_items.json",
    "graph_draft_created.json",
    "graph_upload_session.json",
);

/// Graph's upload sessions take ranges in multiples of 320 KiB (all but the last).
const UPLOAD_RANGE_UNIT: usize = 327_680;

/// One draft created through `POST …/messages`, as the mock holds it.
#[derive(Clone)]
pub struct GraphDraft {
    /// The id Graph gave it.
    pub id: String,
    /// The MIME it was created from (base64 decoded).
    pub mime: Vec<u8>,
    /// Files attached afterwards, in the order they were complete.
    pub attachments: Vec<GraphAttachment>,
    /// How many `POST …/messages/{id}/send` it got.
    pub sends: usize,
    /// Whether it was deleted.
    pub deleted: bool,
}

impl std::fmt::Debug for GraphDraft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphDraft")
            .field("id", &self.id)
            .field("mime_bytes", &self.mime.len())
            .field("attachments", &self.attachments)
            .field("sends", &self.sends)
            .field("deleted", &self.deleted)
            .finish()
    }
}

/// A file attached to a draft, with one POST or through an upload session.
#[derive(Clone)]
pub struct GraphAttachment {
    /// `name`.
    pub name: String,
    /// `contentType`.
    pub content_type: String,
    /// `isInline`.
    pub is_inline: bool,
    /// `contentId`.
    pub content_id: Option<String>,
    /// The file's bytes (decoded, or reassembled from the ranges).
    pub bytes: Vec<u8>,
    /// The `Content-Range`s `(first, last, total)` of an upload session in order; empty for a POST.
    pub ranges: Vec<(usize, usize, usize)>,
}

impl std::fmt::Debug for GraphAttachment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphAttachment")
            .field("name", &self.name)
            .field("content_type", &self.content_type)
            .field("size", &self.bytes.len())
            .field("ranges", &self.ranges)
            .finish_non_exhaustive()
    }
}

/// An upload session in progress.
struct Upload {
    draft: usize,
    authtoken: String,
    size: usize,
    attachment: GraphAttachment,
}

/// A captured reply body of `fixtures/microsoft` by file name.
///
/// ```
/// assert!(mailroom_testkit::microsoft_fixture("token_7000215_invalid_secret.json").unwrap().contains("AADSTS7000215"));
/// ```
pub fn microsoft_fixture(name: &str) -> Option<&'static str> {
    FIXTURES.iter().find(|(file, _)| *file == name).map(|(_, body)| *body)
}

/// A scripted failure: every matching request gets `status` with the fixture's body.
#[derive(Clone, Debug)]
pub struct MicrosoftFault {
    /// HTTP status.
    pub status: u16,
    /// A fixture file name (`token_…json`, `graph_…json`), or `None` for an empty body.
    pub fixture: Option<String>,
    /// A `Retry-After` header to send.
    pub retry_after: Option<String>,
    /// How many requests get it (then the happy path resumes); `None` for all.
    pub times: Option<usize>,
}

impl MicrosoftFault {
    /// Every request gets `status` with `fixture`.
    pub fn always(status: u16, fixture: &str) -> MicrosoftFault {
        MicrosoftFault { status, fixture: Some(fixture.to_owned()), retry_after: None, times: None }
    }

    /// With a `Retry-After` header.
    pub fn retry_after(mut self, value: &str) -> MicrosoftFault {
        self.retry_after = Some(value.to_owned());
        self
    }

    /// Only for the next `times` requests.
    pub fn times(mut self, times: usize) -> MicrosoftFault {
        self.times = Some(times);
        self
    }
}

/// The app registration and mailbox the mock knows.
#[derive(Clone, Debug)]
pub struct MicrosoftTenant {
    /// Tenant in the URL path (`company.onmicrosoft.com`).
    pub tenant: String,
    /// Application (client) ID.
    pub client_id: String,
    /// The client secret it accepts (confidential client), or `None` (public client).
    pub client_secret: Option<String>,
    /// The Company Email mailbox.
    pub mailbox: String,
    /// A refresh token it accepts for `mailbox` (delegated).
    pub refresh_token: String,
}

impl MicrosoftTenant {
    /// The defaults the e2e tests use: `company.onmicrosoft.com`, a GUID client ID, secret
    /// `right-secret`, mailbox `erp@company.com`, refresh token `right-refresh-token`.
    pub fn company() -> MicrosoftTenant {
        MicrosoftTenant {
            tenant: "company.onmicrosoft.com".into(),
            client_id: "11111111-2222-3333-4444-555555555555".into(),
            client_secret: Some("right-secret".into()),
            mailbox: "erp@company.com".into(),
            refresh_token: "right-refresh-token".into(),
        }
    }
}

#[derive(Default)]
struct State {
    graph_tokens: HashSet<String>,
    outlook_tokens: HashSet<String>,
    delegated_tokens: HashSet<String>,
    refresh_tokens: HashMap<String, String>,
    issued: usize,
    token_fault: Option<MicrosoftFault>,
    graph_fault: Option<MicrosoftFault>,
    sent: Vec<Vec<u8>>,
    token_requests: Vec<HashMap<String, String>>,
    /// The account the next sign-in (browser or device) is made with; `None`: the mailbox.
    signs_in_as: Option<String>,
    /// The next sign-in is declined (`access_denied` / `authorization_declined`).
    declines: bool,
    /// The PKCE challenge, redirect and scope of each authorization code issued.
    codes: HashMap<String, (String, String, String)>,
    /// The scope asked for at the device code endpoint.
    device_scope: String,
    /// Device polls answered `authorization_pending` so far.
    device_polls: usize,
    /// A used refresh token stops working (the rotation case: only the new one is valid).
    revoke_used_refresh_tokens: bool,
    drafts: Vec<GraphDraft>,
    uploads: HashMap<String, Upload>,
    /// Upload-session PUTs received so far.
    upload_puts: usize,
    /// The PUT (0-based count) that fails, and its status.
    upload_fault: Option<(usize, u16)>,
    /// How long `send` of a draft takes to answer.
    draft_send_delay: Option<Duration>,
}

/// The identity platform and Graph of one tenant on a loopback port.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use mailroom_testkit::{MicrosoftTenant, MockMicrosoft365};
/// let mock = MockMicrosoft365::start(MicrosoftTenant::company()).await;
/// assert!(mock.uri().starts_with("http://127.0.0.1:"));
/// assert!(mock.sent().is_empty());
/// # }
/// ```
pub struct MockMicrosoft365 {
    server: MockServer,
    tenant: MicrosoftTenant,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for MockMicrosoft365 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockMicrosoft365").field("uri", &self.server.uri()).finish_non_exhaustive()
    }
}

impl MockMicrosoft365 {
    /// Starts the mock for `tenant`.
    pub async fn start(tenant: MicrosoftTenant) -> MockMicrosoft365 {
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(State::default()));
        state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .refresh_tokens
            .insert(tenant.refresh_token.clone(), tenant.mailbox.clone());
        let responder = Responder { tenant: tenant.clone(), state: state.clone() };
        let base = format!("/{}/oauth2/v2.0", tenant.tenant);
        Mock::given(method("POST"))
            .and(path(format!("{base}/token")))
            .respond_with(responder.clone())
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path(format!("{base}/authorize")))
            .respond_with(responder.clone())
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path(format!("{base}/devicecode")))
            .respond_with(responder.clone())
            .mount(&server)
            .await;
        Mock::given(path_regex("^/upload/")).respond_with(responder.clone()).mount(&server).await;
        Mock::given(path_regex("^/v1\\.0/")).respond_with(responder).mount(&server).await;
        MockMicrosoft365 { server, tenant, state }
    }

    /// `http://127.0.0.1:PORT`: both the authority and the Graph API base.
    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// The tenant it plays.
    pub fn tenant(&self) -> &MicrosoftTenant {
        &self.tenant
    }

    /// Makes the token endpoint answer `fault`.
    pub fn token_fault(&self, fault: MicrosoftFault) {
        self.state().token_fault = Some(fault);
    }

    /// Makes Graph answer `fault`.
    pub fn graph_fault(&self, fault: MicrosoftFault) {
        self.state().graph_fault = Some(fault);
    }

    /// The next sign-ins (browser or device code) are made as `account` instead of the mailbox.
    pub fn sign_in_as(&self, account: &str) {
        self.state().signs_in_as = Some(account.to_owned());
    }

    /// The next sign-ins are declined by the user (`error=access_denied` on the redirect,
    /// `authorization_declined` when polling a device code).
    pub fn decline_sign_in(&self) {
        self.state().declines = true;
    }

    /// A refresh token works once: refreshing returns a new one and revokes the one used
    /// (so a client that does not store the rotated token fails on its next run).
    pub fn revoke_used_refresh_tokens(&self) {
        self.state().revoke_used_refresh_tokens = true;
    }

    /// How many device code polls were answered `authorization_pending`.
    pub fn device_polls_pending(&self) -> usize {
        self.state().device_polls
    }

    /// The drafts created for messages above one request, with their attachments.
    pub fn drafts(&self) -> Vec<GraphDraft> {
        self.state().drafts.clone()
    }

    /// The upload-session PUT number `index` (0-based, over all sessions) answers `status`.
    pub fn fail_upload_put(&self, index: usize, status: u16) {
        self.state().upload_fault = Some((index, status));
    }

    /// `POST …/messages/{id}/send` answers only after `delay`.
    pub fn delay_draft_send(&self, delay: Duration) {
        self.state().draft_send_delay = Some(delay);
    }

    /// The MIME messages Graph accepted through `sendMail` (base64 decoded), in order; larger
    /// messages are in [`MockMicrosoft365::drafts`].
    pub fn sent(&self) -> Vec<Vec<u8>> {
        self.state().sent.clone()
    }

    /// The form fields of every token request, in order.
    pub fn token_requests(&self) -> Vec<HashMap<String, String>> {
        self.state().token_requests.clone()
    }

    /// Every request the server received.
    pub async fn requests(&self) -> Vec<Request> {
        self.server.received_requests().await.unwrap_or_default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The authorization code the mock exchanges for tokens of `account` (the test plays the
    /// browser: it sends this code to the loopback redirect).
    pub fn code_for(account: &str) -> String {
        format!("code.{account}")
    }
}

#[derive(Clone)]
struct Responder {
    tenant: MicrosoftTenant,
    state: Arc<Mutex<State>>,
}

fn json(status: u16, body: &str) -> ResponseTemplate {
    // set_body_string would set text/plain over any content-type set before it.
    ResponseTemplate::new(status).set_body_raw(body.as_bytes().to_vec(), "application/json; charset=utf-8")
}

fn fixture(status: u16, name: &str) -> ResponseTemplate {
    json(status, microsoft_fixture(name).unwrap_or("{}"))
}

/// An unsigned JWT carrying the account's `email` and `preferred_username` (the shape of an id_token).
fn id_token(account: &str) -> String {
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = engine.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let claims =
        engine.encode(serde_json::json!({"email": account, "preferred_username": account, "sub": "mock"}).to_string());
    format!("{header}.{claims}.")
}

/// The PKCE S256 challenge of `verifier` (RFC 7636 §4.2).
fn s256(verifier: &str) -> String {
    use sha2::Digest as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
}

impl Responder {
    /// The sign-in page, played: the user signs in at once and the browser is sent back to
    /// `redirect_uri` with a code (or `error=access_denied`), as Entra does with a 302.
    fn authorize(&self, request: &Request, state: &mut State) -> ResponseTemplate {
        let query: HashMap<String, String> = request.url.query_pairs().into_owned().collect();
        let get = |name: &str| query.get(name).map(String::as_str).unwrap_or_default();
        let Ok(mut redirect) = url::Url::parse(get("redirect_uri")) else {
            return json(
                400,
                r#"{"error":"invalid_request","error_description":"AADSTS90102: 'redirect_uri' value must be a valid absolute URI.","error_codes":[90102]}"#,
            );
        };
        let loopback = matches!(redirect.host_str(), Some("localhost" | "127.0.0.1")) && redirect.scheme() == "http";
        if get("client_id") != self.tenant.client_id || !loopback {
            return json(
                400,
                r#"{"error":"invalid_request","error_description":"AADSTS50011: The redirect URI specified in the request does not match the redirect URIs configured for the application.","error_codes":[50011]}"#,
            );
        }
        if get("response_type") != "code" || get("code_challenge_method") != "S256" || get("code_challenge").is_empty()
        {
            return json(
                400,
                r#"{"error":"invalid_request","error_description":"AADSTS9002325: Proof Key for Code Exchange is required for cross-origin authorization code redemption.","error_codes":[9002325]}"#,
            );
        }
        if state.declines {
            redirect
                .query_pairs_mut()
                .append_pair("error", "access_denied")
                .append_pair("error_description", "AADSTS65004: User declined to consent to access the app.")
                .append_pair("state", get("state"));
        } else {
            let account = state.signs_in_as.clone().unwrap_or_else(|| self.tenant.mailbox.clone());
            let code = MockMicrosoft365::code_for(&account);
            state.codes.insert(
                code.clone(),
                (get("code_challenge").to_owned(), get("redirect_uri").to_owned(), get("scope").to_owned()),
            );
            redirect.query_pairs_mut().append_pair("code", &code).append_pair("state", get("state"));
        }
        ResponseTemplate::new(302).insert_header("location", redirect.as_str())
    }

    fn fault(slot: &mut Option<MicrosoftFault>) -> Option<ResponseTemplate> {
        let fault = slot.clone()?;
        match fault.times {
            Some(0) => {
                *slot = None;
                return None;
            }
            Some(n) => slot.as_mut().map(|f| f.times = Some(n - 1)).unwrap_or(()),
            None => {}
        }
        let mut reply = match &fault.fixture {
            Some(name) => fixture(fault.status, name),
            None => ResponseTemplate::new(fault.status),
        };
        if let Some(after) = &fault.retry_after {
            reply = reply.insert_header("retry-after", after.as_str());
        }
        Some(reply)
    }

    fn token(&self, request: &Request, state: &mut State) -> ResponseTemplate {
        let form: HashMap<String, String> = url::form_urlencoded::parse(&request.body).into_owned().collect();
        state.token_requests.push(form.clone());
        if let Some(reply) = Self::fault(&mut state.token_fault) {
            return reply;
        }
        let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
        if request.url.path().ends_with("/devicecode") {
            state.device_scope = field("scope").to_owned();
            state.device_polls = 0;
            return json(
                200,
                &serde_json::json!({"device_code": "device-code-1", "user_code": "ABCD-EFGH", "verification_uri": "https://microsoft.com/devicelogin", "expires_in": 900, "interval": 1, "message": "To sign in, use a web browser to open the page https://microsoft.com/devicelogin and enter the code ABCD-EFGH to authenticate."}).to_string(),
            );
        }
        if field("client_id") != self.tenant.client_id {
            return fixture(400, "token_700016_unknown_app.json");
        }
        let secret = form.get("client_secret");
        let grant = field("grant_type");
        let secret_ok = match (&self.tenant.client_secret, secret) {
            (Some(expected), Some(given)) => expected == given,
            (Some(_), None) => grant != "client_credentials",
            (None, _) => true,
        };
        if !secret_ok {
            return fixture(401, "token_7000215_invalid_secret.json");
        }
        if grant == "urn:ietf:params:oauth:grant-type:device_code" {
            // The user needs a moment: the first poll is pending (RFC 8628 §3.5).
            if state.device_polls == 0 {
                state.device_polls += 1;
                return fixture(400, "token_device_pending.json");
            }
            if state.declines {
                return fixture(400, "token_device_declined.json");
            }
        }
        // A code or device code is redeemed for the scope it was issued for.
        let issued_scope = match grant {
            "urn:ietf:params:oauth:grant-type:device_code" => state.device_scope.clone(),
            "authorization_code" => {
                state.codes.get(field("code")).map(|(_, _, scope)| scope.clone()).unwrap_or_default()
            }
            _ => String::new(),
        };
        let scope = if issued_scope.is_empty() { field("scope") } else { issued_scope.as_str() };
        let outlook = scope.contains("outlook.office365.com");
        state.issued += 1;
        let access = format!("mock-access-{}-{}", if outlook { "outlook" } else { "graph" }, state.issued);
        let account = match grant {
            "client_credentials" => {
                if !scope.ends_with("/.default") {
                    return json(
                        400,
                        r#"{"error":"invalid_scope","error_description":"AADSTS1002012: The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).","error_codes":[1002012]}"#,
                    );
                }
                if outlook {
                    state.outlook_tokens.insert(access.clone())
                } else {
                    state.graph_tokens.insert(access.clone())
                };
                let body = microsoft_fixture("token_client_credentials.json").unwrap_or("{}");
                let mut value: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
                value["access_token"] = serde_json::Value::String(access);
                return json(200, &value.to_string());
            }
            "refresh_token" => {
                let used = field("refresh_token");
                let account = match state.refresh_tokens.get(used) {
                    Some(account) => account.clone(),
                    None => return fixture(400, "token_700082_refresh_expired.json"),
                };
                if state.revoke_used_refresh_tokens {
                    state.refresh_tokens.remove(used);
                }
                account
            }
            "authorization_code" => {
                if field("code_verifier").is_empty() {
                    return json(
                        400,
                        r#"{"error":"invalid_grant","error_description":"AADSTS501481: The Code_Verifier does not match the code_challenge supplied in the authorization request.","error_codes":[501481]}"#,
                    );
                }
                // A code from the mock's own authorize page must match its PKCE challenge and
                // redirect; a code made up by a test (`code_for`) is taken as it is.
                if let Some((challenge, redirect, _)) = state.codes.remove(field("code"))
                    && (s256(field("code_verifier")) != challenge || field("redirect_uri") != redirect)
                {
                    return json(
                        400,
                        r#"{"error":"invalid_grant","error_description":"AADSTS501481: The Code_Verifier does not match the code_challenge supplied in the authorization request.","error_codes":[501481]}"#,
                    );
                }
                match field("code").strip_prefix("code.") {
                    Some(account) => account.to_owned(),
                    None => return fixture(400, "token_700082_refresh_expired.json"),
                }
            }
            "urn:ietf:params:oauth:grant-type:device_code" => {
                state.signs_in_as.clone().unwrap_or_else(|| self.tenant.mailbox.clone())
            }
            _ => {
                return json(
                    400,
                    r#"{"error":"unsupported_grant_type","error_description":"AADSTS70003: The app requested an unsupported grant type.","error_codes":[70003]}"#,
                );
            }
        };
        if outlook {
            state.outlook_tokens.insert(access.clone())
        } else {
            state.delegated_tokens.insert(access.clone())
        };
        let refresh = format!("mock-refresh-{}", state.issued);
        state.refresh_tokens.insert(refresh.clone(), account.clone());
        let body = microsoft_fixture("token_refreshed.json").unwrap_or("{}");
        let mut value: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        value["access_token"] = serde_json::Value::String(access);
        value["refresh_token"] = serde_json::Value::String(refresh);
        value["scope"] = serde_json::Value::String(scope.to_owned());
        if scope.split(' ').any(|s| s == "openid") {
            value["id_token"] = serde_json::Value::String(id_token(&account));
        }
        json(200, &value.to_string())
    }

    fn graph(&self, request: &Request, state: &mut State) -> ResponseTemplate {
        let token = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default()
            .to_owned();
        let delegated = state.delegated_tokens.contains(&token);
        if state.outlook_tokens.contains(&token) {
            return fixture(401, "graph_401_invalid_audience.json");
        }
        if !delegated && !state.graph_tokens.contains(&token) {
            return fixture(401, "graph_401_invalid_token.json");
        }
        let path = request.url.path().to_owned();
        let me = path.starts_with("/v1.0/me/");
        if me && !delegated {
            return fixture(400, "graph_400_me_with_app_token.json");
        }
        let user_prefix = format!("/v1.0/users/{}/", self.tenant.mailbox);
        if !me && !path.starts_with(&user_prefix) {
            return fixture(404, "graph_404_resource_not_found.json");
        }
        if let Some(reply) = Self::fault(&mut state.graph_fault) {
            return reply;
        }
        let rest = if me { &path["/v1.0/me/".len()..] } else { &path[user_prefix.len()..] };
        match (request.method.as_str(), rest) {
            ("POST", "sendMail") => match mime_body(request) {
                Some(mime) => {
                    state.sent.push(mime);
                    ResponseTemplate::new(202).insert_header("request-id", format!("mock-request-{}", state.sent.len()))
                }
                None => fixture(400, "graph_400_invalid_mime.json"),
            },
            ("GET", "mailFolders/sentitems") => fixture(200, "graph_sent_items.json"),
            ("POST", "messages") => Self::create_draft(request, state),
            (method, rest) if rest.starts_with("messages/") => {
                let segments: Vec<&str> = rest["messages/".len()..].split('/').collect();
                Self::draft_request(request, method, &segments, state)
            }
            _ => json(400, r#"{"error":{"code":"BadRequest","message":"Unsupported request."}}"#),
        }
    }
}

fn graph_error(status: u16, code: &str, message: &str) -> ResponseTemplate {
    json(status, &serde_json::json!({"error": {"code": code, "message": message}}).to_string())
}

/// The MIME message of a `sendMail` or draft request: a `text/plain` body of base64 (Graph's
/// MIME form); `None` for anything else, which Graph refuses as invalid MIME.
fn mime_body(request: &Request) -> Option<Vec<u8>> {
    let text_plain =
        request.headers.get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("text/plain"));
    let compact: Vec<u8> = request.body.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
    text_plain.then(|| base64::engine::general_purpose::STANDARD.decode(&compact).ok()).flatten()
}

/// `bytes a-b/total`.
fn content_range(value: &str) -> Option<(usize, usize, usize)> {
    let (range, total) = value.strip_prefix("bytes ")?.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    Some((first.parse().ok()?, last.parse().ok()?, total.parse().ok()?))
}

impl Responder {
    /// `POST …/messages` with base64 MIME (`text/plain`): a draft.
    fn create_draft(request: &Request, state: &mut State) -> ResponseTemplate {
        let Some(mime) = mime_body(request) else {
            return fixture(400, "graph_400_invalid_mime.json");
        };
        if request.body.len() > 4_000_000 {
            return fixture(413, "graph_413_too_large.json");
        }
        let id = format!("AAMkAGUwNjQ4ZjIx{:04}AAA=", state.drafts.len() + 1);
        state.drafts.push(GraphDraft { id: id.clone(), mime, attachments: Vec::new(), sends: 0, deleted: false });
        let mut created: serde_json::Value =
            serde_json::from_str(microsoft_fixture("graph_draft_created.json").unwrap_or("{}")).unwrap_or_default();
        created["id"] = id.into();
        json(201, &created.to_string())
    }

    /// Requests on one draft: attachments, upload sessions, send, delete.
    fn draft_request(request: &Request, method: &str, segments: &[&str], state: &mut State) -> ResponseTemplate {
        let Some(index) = state.drafts.iter().position(|d| d.id == segments[0] && !d.deleted) else {
            return graph_error(404, "ErrorItemNotFound", "The specified object was not found in the store.");
        };
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let text = |value: &serde_json::Value, key: &str| value[key].as_str().map(str::to_owned);
        match (method, &segments[1..]) {
            ("DELETE", []) => {
                state.drafts[index].deleted = true;
                ResponseTemplate::new(204)
            }
            ("POST", ["send"]) => {
                state.drafts[index].sends += 1;
                let reply = ResponseTemplate::new(202).insert_header("request-id", format!("mock-draft-send-{index}"));
                match state.draft_send_delay {
                    Some(delay) => reply.set_delay(delay),
                    None => reply,
                }
            }
            ("POST", ["attachments"]) => {
                if request.body.len() > 4_000_000 {
                    return fixture(413, "graph_413_too_large.json");
                }
                let bytes =
                    text(&body, "contentBytes").and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok());
                let (Some("#microsoft.graph.fileAttachment"), Some(name), Some(bytes)) =
                    (body["@odata.type"].as_str(), text(&body, "name"), bytes)
                else {
                    return graph_error(400, "ErrorInvalidRequest", "The attachment is not a valid file attachment.");
                };
                let size = bytes.len();
                state.drafts[index].attachments.push(GraphAttachment {
                    name: name.clone(),
                    content_type: text(&body, "contentType").unwrap_or_default(),
                    is_inline: body["isInline"].as_bool().unwrap_or(false),
                    content_id: text(&body, "contentId"),
                    bytes,
                    ranges: Vec::new(),
                });
                json(201, &serde_json::json!({"@odata.type": "#microsoft.graph.fileAttachment", "id": format!("att-{size}"), "name": name, "size": size}).to_string())
            }
            ("POST", ["attachments", "createUploadSession"]) => {
                let item = &body["AttachmentItem"];
                let (Some("file"), Some(name), Some(size)) =
                    (item["attachmentType"].as_str(), text(item, "name"), item["size"].as_u64())
                else {
                    return graph_error(
                        400,
                        "ErrorInvalidRequest",
                        "AttachmentItem needs attachmentType, name and size.",
                    );
                };
                let session = format!("session-{}", state.uploads.len() + 1);
                let authtoken = format!("mock-authtoken-{}-eyJhbGciOi", state.uploads.len() + 1);
                // wiremock's request URL has no port: the Host header has the server's address.
                let host = request.headers.get("host").and_then(|v| v.to_str().ok()).unwrap_or("127.0.0.1");
                let upload_url =
                    format!("http://{host}/upload/api/v2.0/AttachmentSessions/{session}?authtoken={authtoken}");
                let attachment = GraphAttachment {
                    name,
                    content_type: text(item, "contentType").unwrap_or_default(),
                    is_inline: item["isInline"].as_bool().unwrap_or(false),
                    content_id: text(item, "contentId"),
                    bytes: Vec::new(),
                    ranges: Vec::new(),
                };
                let size = usize::try_from(size).unwrap_or(usize::MAX);
                state.uploads.insert(session, Upload { draft: index, authtoken, size, attachment });
                let mut reply: serde_json::Value =
                    serde_json::from_str(microsoft_fixture("graph_upload_session.json").unwrap_or("{}"))
                        .unwrap_or_default();
                reply["uploadUrl"] = upload_url.into();
                json(201, &reply.to_string())
            }
            _ => json(400, r#"{"error":{"code":"BadRequest","message":"Unsupported request."}}"#),
        }
    }

    /// A PUT of one range to an upload session's pre-authenticated URL.
    fn upload(request: &Request, state: &mut State) -> ResponseTemplate {
        let put = state.upload_puts;
        state.upload_puts += 1;
        if request.method.as_str() != "PUT" {
            return graph_error(405, "ErrorInvalidRequest", "Only PUT is supported on an upload session.");
        }
        if request.headers.contains_key("authorization") {
            // Microsoft: an Authorization header on the upload URL makes the PUT fail with 401.
            return graph_error(
                401,
                "InvalidAuthenticationToken",
                "Authorization header must not be sent to the upload URL.",
            );
        }
        let session = request.url.path().rsplit('/').next().unwrap_or_default().to_owned();
        let authtoken = request.url.query_pairs().find(|(k, _)| k == "authtoken").map(|(_, v)| v.into_owned());
        let Some(upload) = state.uploads.get_mut(&session).filter(|u| Some(&u.authtoken) == authtoken.as_ref()) else {
            return graph_error(401, "InvalidAuthenticationToken", "The upload session token is not valid.");
        };
        if let Some((index, status)) = state.upload_fault
            && index == put
        {
            return graph_error(status, "ErrorInternalServerError", "The upload failed.");
        }
        let range = request.headers.get("content-range").and_then(|v| v.to_str().ok()).and_then(content_range);
        let length = request.headers.get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
        let received = upload.attachment.bytes.len();
        let Some((first, last, total)) = range.filter(|&(first, last, total)| {
            let count = last.saturating_sub(first) + 1;
            first == received
                && last >= first
                && total == upload.size
                && count == request.body.len()
                && length == Some(count)
                && (last + 1 == total || count % UPLOAD_RANGE_UNIT == 0)
        }) else {
            return graph_error(400, "InvalidRange", "The Content-Range does not match the next expected range.");
        };
        upload.attachment.bytes.extend_from_slice(&request.body);
        upload.attachment.ranges.push((first, last, total));
        if last + 1 < total {
            let next = last + 1;
            return json(
                200,
                &serde_json::json!({"expirationDateTime": "2026-12-01T10:17:12.4550183Z", "nextExpectedRanges": [next.to_string()]}).to_string(),
            );
        }
        let draft = upload.draft;
        let attachment = upload.attachment.clone();
        state.uploads.remove(&session);
        state.drafts[draft].attachments.push(attachment);
        ResponseTemplate::new(201)
    }
}

impl Respond for Responder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if request.url.path().starts_with("/upload/") {
            Self::upload(request, &mut state)
        } else if request.url.path().starts_with("/v1.0/") {
            self.graph(request, &mut state)
        } else if request.url.path().ends_with("/authorize") {
            self.authorize(request, &mut state)
        } else {
            self.token(request, &mut state)
        }
    }
}
