//! Loading the OAuth settings: `[email_services]` for Gmail or Microsoft Graph, and `[web_mail] auth = "oauth"` with its `[web_mail.oauth]` section.

use super::{GOOGLE_AUTH_URI, GOOGLE_TOKEN_URI};
use super::{Loader, Section, field, load_gmail};
use crate::config::ServiceConfig;
use crate::config::checks;
use crate::config::field::{Field, KeySet};
use crate::config::oauth::{
    GRAPH_API_BASE, GoogleOAuth, GraphConfig, MICROSOFT_AUTHORITY, MicrosoftAuth, MicrosoftOAuth, SmtpOAuth,
};

#[derive(Clone, Copy, PartialEq, Eq)]
enum OAuthProvider {
    Gmail,
    Microsoft,
}

/// Reads `provider`: `gmail` (the default in `[email_services]`) or `microsoft`.
fn provider(loader: &mut Loader<'_>, section: &Section<'_>, default: Option<OAuthProvider>) -> Option<OAuthProvider> {
    let name = field(section.name, "provider");
    match loader.string(section, "provider").as_deref() {
        None => {
            if default.is_none() && !section.table.contains_key("provider") {
                loader.error(name, "is missing: add provider = \"microsoft\" (Microsoft 365, smtp.office365.com) or provider = \"gmail\" (smtp.gmail.com)");
            }
            default
        }
        Some("gmail") => Some(OAuthProvider::Gmail),
        Some("microsoft") => Some(OAuthProvider::Microsoft),
        Some(other) => {
            let hint = match other.to_ascii_lowercase().replace([' ', '-', '_'], "").as_str() {
                "google" | "googlemail" | "googleworkspace" => " (did you mean \"gmail\"?)",
                "microsoft365" | "office365" | "o365" | "m365" | "outlook" | "graph" | "entra" | "azure"
                | "exchangeonline" => " (did you mean \"microsoft\"?)",
                _ => "",
            };
            loader.error(name, format!("\"{other}\" is not a provider{hint}: use \"gmail\" or \"microsoft\""));
            None
        }
    }
}

/// `[email_services]`: the Gmail API or Microsoft Graph, by `provider`.
pub(super) fn load_email_services(loader: &mut Loader<'_>, section: &Section<'_>) -> Option<ServiceConfig> {
    match provider(loader, section, Some(OAuthProvider::Gmail))? {
        OAuthProvider::Gmail => load_gmail(loader, section).map(ServiceConfig::EmailServices),
        OAuthProvider::Microsoft => {
            loader.check_unknown_keys(section, &Field::keys_of(KeySet::Graph));
            let oauth = load_microsoft(loader, section);
            let api_base = endpoint(loader, section, "api_base", GRAPH_API_BASE);
            let timeout = loader.timeout(section);
            Some(ServiceConfig::Graph(GraphConfig { oauth: oauth?, api_base: api_base?, timeout }))
        }
    }
}

/// `[web_mail] auth` and `[web_mail.oauth]`: whether XOAUTH2 is chosen, and its settings
/// when they are valid.
pub(super) fn load_smtp_oauth(
    loader: &mut Loader<'_>,
    web_mail: &Section<'_>,
    has_username: bool,
) -> (bool, Option<SmtpOAuth>) {
    let oauth_table = match web_mail.table.get("oauth") {
        None => None,
        Some(toml::Value::Table(table)) => Some(table),
        Some(_) => {
            loader.error(
                Field::WebMailOauth.name(),
                "must be a [web_mail.oauth] section with provider, client_id, … (see DESIGN §4)",
            );
            None
        }
    };
    match loader.string(web_mail, "auth").as_deref() {
        None | Some("password") => {
            if web_mail.table.contains_key("oauth") {
                loader.warn(
                    Field::WebMailOauth.name(),
                    "[web_mail.oauth] is ignored because auth is not \"oauth\": add auth = \"oauth\" under [web_mail] to sign in with it",
                );
            }
            return (false, None);
        }
        Some("oauth") => {}
        Some(other) => {
            loader.error(
                Field::WebMailAuth.name(),
                format!("\"{other}\" is not a sign-in method: use \"password\" (the default) or \"oauth\" (XOAUTH2 with a [web_mail.oauth] section)"),
            );
            return (false, None);
        }
    }
    if !has_username {
        loader.error(
            Field::WebMailUsername.name(),
            "auth = \"oauth\" needs username = the mailbox the token signs in as (usually the Company Email address)",
        );
    }
    if web_mail.table.contains_key("password") || web_mail.table.contains_key("password_env") {
        loader.error(
            Field::WebMailPassword.name(),
            "auth = \"oauth\" signs in with an access token, not a password: remove password / password_env",
        );
    }
    let Some(table) = oauth_table else {
        if !web_mail.table.contains_key("oauth") {
            loader.error(
                Field::WebMailOauth.name(),
                "auth = \"oauth\" needs a [web_mail.oauth] section: provider = \"microsoft\" with tenant, client_id, client_secret_env and auth, or provider = \"gmail\" with client_id, client_secret_env and token_file",
            );
        }
        return (true, None);
    };
    let section = Section { name: "web_mail.oauth", table };
    let oauth = match provider(loader, &section, None) {
        Some(OAuthProvider::Microsoft) => {
            loader.check_unknown_keys(&section, &Field::keys_of(KeySet::WebMailOAuthMicrosoft));
            load_microsoft(loader, &section).map(SmtpOAuth::Microsoft)
        }
        Some(OAuthProvider::Gmail) => {
            loader.check_unknown_keys(&section, &Field::keys_of(KeySet::WebMailOAuthGoogle));
            load_google(loader, &section).map(SmtpOAuth::Google)
        }
        None => None,
    };
    (true, oauth)
}

pub(super) fn endpoint(loader: &mut Loader<'_>, section: &Section<'_>, key: &str, default: &str) -> Option<url::Url> {
    let value = loader.string(section, key).unwrap_or_else(|| default.to_owned());
    checks::check_endpoint(&value).map_err(|m| loader.error(field(section.name, key), m)).ok()
}

/// A Google OAuth client: client ID and secret, a refresh token, endpoints.
pub(super) fn load_google(loader: &mut Loader<'_>, section: &Section<'_>) -> Option<GoogleOAuth> {
    let client_id = loader.required_string(section, "client_id", "\"1234-abc.apps.googleusercontent.com\"");
    if client_id.as_deref().is_some_and(|id| !id.trim().ends_with(".apps.googleusercontent.com")) {
        loader.error(field(section.name, "client_id"), "is not a Google OAuth client ID: copy it from Google Cloud console → APIs & Services → Credentials; it ends in .apps.googleusercontent.com");
    }
    let client_secret = loader.secret(section, "client_secret");
    if client_secret.is_none()
        && !loader.has_error(field(section.name, "client_secret_env"))
        && !loader.has_error(field(section.name, "client_secret"))
    {
        loader.error(
            field(section.name, "client_secret"),
            "is missing: add client_secret_env = \"MAILROOM_GOOGLE_SECRET\" (or client_secret = \"…\")",
        );
    }
    let (refresh_token, token_file) = refresh_token(loader, section, "google");
    let auth_uri = endpoint(loader, section, "auth_uri", GOOGLE_AUTH_URI);
    let token_uri = endpoint(loader, section, "token_uri", GOOGLE_TOKEN_URI);
    Some(GoogleOAuth {
        client_id: client_id?.trim().to_owned(),
        client_secret: client_secret?,
        refresh_token,
        token_file,
        auth_uri: auth_uri?,
        token_uri: token_uri?,
    })
}

/// `refresh_token(_env)` or `token_file`, exactly one of them.
fn refresh_token(
    loader: &mut Loader<'_>,
    section: &Section<'_>,
    provider: &str,
) -> (Option<crate::Secret>, Option<std::path::PathBuf>) {
    let refresh_token = loader.secret(section, "refresh_token");
    let token_file = loader.path(section, "token_file");
    if refresh_token.is_some() && token_file.is_some() {
        loader.error(field(section.name, "token_file"), "set either token_file or refresh_token(_env), not both");
    }
    if refresh_token.is_none()
        && token_file.is_none()
        && !loader.has_error(field(section.name, "refresh_token_env"))
        && !loader.has_error(field(section.name, "refresh_token"))
    {
        loader.error(field(section.name, "refresh_token_env"), format!("no refresh token: add token_file = \"{provider}-token.json\" and run `mailroom connect {provider} --config FILE` to sign in and allow access"));
    }
    (refresh_token, token_file)
}

/// A GUID in its 8-4-4-4-12 form.
fn is_guid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Checks a tenant: a directory (tenant) ID, a verified domain, or (delegated only) `organizations`.
fn check_tenant(tenant: &str, auth: Option<MicrosoftAuth>) -> Result<(), String> {
    let lower = tenant.to_ascii_lowercase();
    match lower.as_str() {
        "organizations" if auth != Some(MicrosoftAuth::Application) => return Ok(()),
        "organizations" | "common" | "consumers" => {
            return Err(format!(
                "\"{tenant}\" is not one directory: enter your own tenant, the Directory (tenant) ID from Entra admin centre → App registrations → your app → Overview, or a verified domain such as company.onmicrosoft.com"
            ));
        }
        _ => {}
    }
    if is_guid(&lower) {
        return Ok(());
    }
    let looks_like_domain = lower.contains('.')
        && !lower.starts_with('.')
        && !lower.ends_with('.')
        && !lower.contains("..")
        && lower.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if looks_like_domain {
        Ok(())
    } else {
        Err(format!(
            "\"{tenant}\" is neither a Directory (tenant) ID (a GUID from Entra admin centre → App registrations → your app → Overview) nor a verified domain such as company.onmicrosoft.com"
        ))
    }
}

/// An Entra ID app registration: tenant, client ID, secret, application or delegated.
pub(super) fn load_microsoft(loader: &mut Loader<'_>, section: &Section<'_>) -> Option<MicrosoftOAuth> {
    let name = |key: &str| field(section.name, key);
    let auth = match loader.string(section, "auth").as_deref() {
        Some("application") => Some(MicrosoftAuth::Application),
        Some("delegated") => Some(MicrosoftAuth::Delegated),
        Some(other) => {
            loader.error(name("auth"), format!("\"{other}\" is not a Microsoft sign-in: use \"application\" (the app's own permission, client credentials) or \"delegated\" (the Company Email account signs in with `mailroom connect microsoft`)"));
            None
        }
        None if !section.table.contains_key("auth") => {
            loader.error(name("auth"), "is missing: add auth = \"application\" (the app's own permission, granted by an administrator) or auth = \"delegated\" (the Company Email account signs in with `mailroom connect microsoft`)");
            None
        }
        None => None,
    };
    let tenant =
        loader.required_string(section, "tenant", "\"company.onmicrosoft.com\" (or the Directory (tenant) ID)");
    let tenant = tenant.map(|t| t.trim().to_owned()).filter(|tenant| match check_tenant(tenant, auth) {
        Ok(()) => true,
        Err(message) => {
            loader.error(name("tenant"), message);
            false
        }
    });
    let client_id = loader.required_string(
        section,
        "client_id",
        "\"00000000-0000-0000-0000-000000000000\" (the Application (client) ID)",
    );
    let client_id = client_id.map(|id| id.trim().to_ascii_lowercase()).filter(|id| {
        if is_guid(id) {
            true
        } else {
            loader.error(name("client_id"), "is not an Application (client) ID: copy the GUID shown as Application (client) ID in Entra admin centre → App registrations → your app → Overview (not the secret's ID, not the object ID)");
            false
        }
    });
    let client_secret = loader.secret(section, "client_secret");
    let (mut refresh_token, mut token_file) = (None, None);
    match auth {
        Some(MicrosoftAuth::Application) => {
            if client_secret.is_none()
                && !loader.has_error(name("client_secret_env"))
                && !loader.has_error(name("client_secret"))
            {
                loader.error(name("client_secret"), "auth = \"application\" needs the client secret: add client_secret_env = \"MAILROOM_MS_SECRET\" with a secret's Value from Entra admin centre → App registrations → your app → Certificates & secrets");
            }
            for key in ["refresh_token", "refresh_token_env", "token_file"] {
                if section.table.contains_key(key) {
                    loader.error(
                        name(key),
                        format!("{key} is only used with auth = \"delegated\": remove it, or set auth = \"delegated\""),
                    );
                }
            }
        }
        Some(MicrosoftAuth::Delegated) => {
            (refresh_token, token_file) = self::refresh_token(loader, section, "microsoft");
        }
        None => {}
    }
    let authority = endpoint(loader, section, "authority", MICROSOFT_AUTHORITY);
    Some(MicrosoftOAuth {
        tenant: tenant?,
        client_id: client_id?,
        client_secret,
        auth: auth?,
        refresh_token,
        token_file,
        authority: authority?,
        section: section.name,
    })
}
