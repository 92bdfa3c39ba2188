//! The Company Email form: the values on the page (a draft), the write-only secrets, and how they become a config file's TOML text plus its secrets file.

use std::collections::BTreeMap;
use std::path::Path;

use mailroom_core::{Secret, TlsMode};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The environment variable the saved config names for the Web Mail and Exchange password.
pub(crate) const PASSWORD_ENV: &str = "MAILROOM_PASSWORD";
/// The environment variable the saved config names for the Google client secret.
pub(crate) const GOOGLE_SECRET_ENV: &str = "MAILROOM_GOOGLE_SECRET";
/// The environment variable the saved config names for the Microsoft (Entra ID) client secret.
pub(crate) const MS_SECRET_ENV: &str = "MAILROOM_MS_SECRET";

/// What the browser posts: the page's values, its secrets, the CSRF token and the button.
/// Unknown fields are refused, so a misspelt field can never be silently ignored; the
/// checkbox is absent when unticked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Posted {
    pub(crate) csrf: String,
    #[serde(default)]
    pub(crate) action: String,
    #[serde(default)]
    service: String,
    #[serde(default)]
    email_address: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    smtp_server: String,
    #[serde(default)]
    smtp_port: String,
    #[serde(default)]
    smtp_enable_ssl: Option<String>,
    #[serde(default)]
    smtp_username: String,
    #[serde(default)]
    smtp_tls: String,
    #[serde(default)]
    smtp_ca_file: String,
    #[serde(default)]
    ews_uri: String,
    #[serde(default)]
    ews_domain: String,
    #[serde(default)]
    ews_username: String,
    #[serde(default)]
    ews_ca_file: String,
    #[serde(default)]
    google_client_id: String,
    #[serde(default)]
    ms_tenant: String,
    #[serde(default)]
    ms_client_id: String,
    #[serde(default)]
    ms_auth: String,
    #[serde(default)]
    ms_authority: String,
    #[serde(default)]
    ms_api_base: String,
    #[serde(default)]
    timeout_secs: String,
    #[serde(default)]
    pub(crate) smtp_password: String,
    #[serde(default)]
    pub(crate) ews_password: String,
    #[serde(default)]
    pub(crate) google_client_secret: String,
    #[serde(default)]
    pub(crate) ms_client_secret: String,
}

impl std::fmt::Debug for Posted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Posted").field("action", &self.action).finish_non_exhaustive()
    }
}

/// The values on the page, secrets excepted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Draft {
    pub(crate) service: String,
    pub(crate) email_address: String,
    pub(crate) display_name: String,
    pub(crate) smtp_server: String,
    pub(crate) smtp_port: String,
    pub(crate) smtp_enable_ssl: bool,
    pub(crate) smtp_username: String,
    /// `auto` (from Enable SSL and the port), `starttls`, `implicit` or `none`.
    pub(crate) smtp_tls: String,
    pub(crate) smtp_ca_file: String,
    pub(crate) ews_uri: String,
    pub(crate) ews_domain: String,
    pub(crate) ews_username: String,
    pub(crate) ews_ca_file: String,
    pub(crate) google_client_id: String,
    /// Microsoft 365 (Graph): directory (tenant) ID or verified domain.
    pub(crate) ms_tenant: String,
    /// Microsoft 365: the Application (client) ID.
    pub(crate) ms_client_id: String,
    /// Microsoft 365: `application` or `delegated`.
    pub(crate) ms_auth: String,
    /// Microsoft 365: the sign-in host (empty: login.microsoftonline.com).
    pub(crate) ms_authority: String,
    /// Microsoft 365: the Graph API base (empty: graph.microsoft.com).
    pub(crate) ms_api_base: String,
    pub(crate) timeout_secs: String,
}

/// The service types of the page, in the seed's order, with the seed's names; Email
/// Services comes in two providers (`microsoft` is `service = "email_services"` with
/// `provider = "microsoft"` in the config).
pub(crate) const SERVICES: &[(&str, &str)] = &[
    ("web_mail", "Web Mail"),
    ("exchange", "Exchange"),
    ("email_services", "Email Services: Google"),
    ("microsoft", "Email Services: Microsoft 365"),
];

/// How mailroom signs in to Microsoft 365 (DESIGN §7).
pub(crate) const MS_AUTH_CHOICES: &[(&str, &str)] = &[
    ("application", "Application: the app's own Mail.Send permission (client secret; an administrator consents once)"),
    ("delegated", "Delegated: the Company Email account signs in once with Connect"),
];

/// The TLS choices of the advanced section.
pub(crate) const TLS_CHOICES: &[(&str, &str)] = &[
    ("auto", "From Enable SSL (port 465: implicit TLS, otherwise STARTTLS)"),
    ("starttls", "STARTTLS"),
    ("implicit", "Implicit TLS"),
    ("none", "None"),
];

fn clean(value: &str) -> String {
    value.trim().to_owned()
}

impl Posted {
    /// The page's values, trimmed; an unknown service or TLS choice falls back to the default.
    pub(crate) fn draft(&self) -> Draft {
        let service = if SERVICES.iter().any(|(name, _)| *name == self.service) { &self.service } else { "web_mail" };
        let smtp_tls = if TLS_CHOICES.iter().any(|(name, _)| *name == self.smtp_tls) { &self.smtp_tls } else { "auto" };
        Draft {
            service: service.to_owned(),
            email_address: clean(&self.email_address),
            display_name: clean(&self.display_name),
            smtp_server: clean(&self.smtp_server),
            smtp_port: clean(&self.smtp_port),
            smtp_enable_ssl: self.smtp_enable_ssl.is_some(),
            smtp_username: clean(&self.smtp_username),
            smtp_tls: smtp_tls.to_owned(),
            smtp_ca_file: clean(&self.smtp_ca_file),
            ews_uri: clean(&self.ews_uri),
            ews_domain: clean(&self.ews_domain),
            ews_username: clean(&self.ews_username),
            ews_ca_file: clean(&self.ews_ca_file),
            google_client_id: clean(&self.google_client_id),
            ms_tenant: clean(&self.ms_tenant),
            ms_client_id: clean(&self.ms_client_id),
            ms_auth: if MS_AUTH_CHOICES.iter().any(|(name, _)| *name == self.ms_auth) {
                self.ms_auth.clone()
            } else {
                "application".into()
            },
            ms_authority: clean(&self.ms_authority),
            ms_api_base: clean(&self.ms_api_base),
            timeout_secs: clean(&self.timeout_secs),
        }
    }
}

/// The write-only fields: what was typed (or saved) for each, never sent back to the browser.
#[derive(Clone, Default)]
pub(crate) struct SecretFields {
    pub(crate) smtp_password: Option<Secret>,
    pub(crate) ews_password: Option<Secret>,
    pub(crate) google_client_secret: Option<Secret>,
    pub(crate) ms_client_secret: Option<Secret>,
}

impl std::fmt::Debug for SecretFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretFields")
            .field("smtp_password", &self.smtp_password.is_some())
            .field("ews_password", &self.ews_password.is_some())
            .field("google_client_secret", &self.google_client_secret.is_some())
            .field("ms_client_secret", &self.ms_client_secret.is_some())
            .finish()
    }
}

impl SecretFields {
    /// Typed values replace what was known; an empty field keeps it.
    pub(crate) fn overlay(&mut self, posted: &Posted) {
        for (slot, typed) in [
            (&mut self.smtp_password, &posted.smtp_password),
            (&mut self.ews_password, &posted.ews_password),
            (&mut self.google_client_secret, &posted.google_client_secret),
            (&mut self.ms_client_secret, &posted.ms_client_secret),
        ] {
            if !typed.is_empty() {
                *slot = Some(Secret::new(typed.as_str()));
            }
        }
    }

    /// Each field from `self`, else from `fallback`.
    pub(crate) fn or(&self, fallback: &SecretFields) -> SecretFields {
        SecretFields {
            smtp_password: self.smtp_password.clone().or_else(|| fallback.smtp_password.clone()),
            ews_password: self.ews_password.clone().or_else(|| fallback.ews_password.clone()),
            google_client_secret: self.google_client_secret.clone().or_else(|| fallback.google_client_secret.clone()),
            ms_client_secret: self.ms_client_secret.clone().or_else(|| fallback.ms_client_secret.clone()),
        }
    }
}

/// A config built from the page: the config file's text (no secret in it) and the secrets
/// file's variables.
pub(crate) struct Built {
    pub(crate) text: String,
    pub(crate) secrets: BTreeMap<&'static str, Secret>,
}

impl Built {
    /// SHA-256 over the text and the secrets: Save compares it with the last successful Validate.
    pub(crate) fn fingerprint(&self) -> [u8; 32] {
        let mut hash = Sha256::new();
        hash.update(self.text.as_bytes());
        for (name, value) in &self.secrets {
            hash.update([0]);
            hash.update(name.as_bytes());
            hash.update([0]);
            hash.update(value.expose().as_bytes());
        }
        hash.finalize().into()
    }

    /// The environment lookup the loader gets: only the page's own secrets.
    pub(crate) fn env(&self) -> impl Fn(&str) -> Option<String> + '_ {
        |name| self.secrets.get(name).map(|s| s.expose().to_owned())
    }
}

/// Keys of each section the form manages; any other key found in the existing config is kept.
const MANAGED: &[(&str, &[&str])] = &[
    (
        "web_mail",
        &["server", "port", "enable_ssl", "tls", "username", "password", "password_env", "ca_file", "timeout_secs"],
    ),
    ("exchange", &["uri", "domain", "username", "password", "password_env", "ca_file", "timeout_secs"]),
    ("email_services", &["provider", "client_id", "client_secret", "client_secret_env", "timeout_secs"]),
    (
        "microsoft",
        &[
            "provider",
            "tenant",
            "client_id",
            "client_secret",
            "client_secret_env",
            "auth",
            "authority",
            "api_base",
            "timeout_secs",
        ],
    ),
];

/// The config section a page service type is written to.
pub(crate) fn section_of(service: &str) -> &str {
    if service == "microsoft" { "email_services" } else { service }
}

/// The page service type of a config: its `service`, with Email Services split by provider.
fn service_of(table: &toml::Table) -> String {
    let service = text_of(table.get("service"));
    let provider = table.get("email_services").and_then(|s| s.get("provider")).and_then(toml::Value::as_str);
    if service == "email_services" && provider == Some("microsoft") { "microsoft".into() } else { service }
}

/// The top-level keys the page writes; the other services' sections are dropped (only the
/// chosen one is written), anything else in an existing config is kept.
const TOP_LEVEL: &[&str] = &["service", "email_address", "display_name", "web_mail", "exchange", "email_services"];

/// Inline secrets are never copied from the existing file into the one Save writes.
const INLINE_SECRETS: &[&str] = &["password", "client_secret", "refresh_token"];

fn number_or_text(value: &str) -> toml::Value {
    value.parse::<i64>().map(toml::Value::Integer).unwrap_or_else(|_| toml::Value::String(value.to_owned()))
}

/// The config for `draft` with `secrets`, keeping what `base` (the existing config file)
/// has beyond the form's fields. A token file the existing config does not name is
/// `{token_stem}.google-token.json` (or `.microsoft-token.json`) beside it.
pub(crate) fn build(draft: &Draft, secrets: &SecretFields, base: &toml::Table, token_stem: &str) -> Built {
    let mut table = toml::Table::new();
    let mut env = BTreeMap::new();
    // Sections the page does not edit ([outbox], …) are kept as they are.
    for (key, value) in base {
        if !TOP_LEVEL.contains(&key.as_str()) {
            table.insert(key.clone(), value.clone());
        }
    }
    let service = draft.service.as_str();
    let section_name = section_of(service);
    table.insert("service".into(), section_name.into());
    table.insert("email_address".into(), draft.email_address.clone().into());
    if !draft.display_name.is_empty() {
        table.insert("display_name".into(), draft.display_name.clone().into());
    }
    let managed = MANAGED.iter().find(|(name, _)| *name == service).map(|(_, keys)| *keys).unwrap_or_default();
    let mut section = toml::Table::new();
    // The other provider's keys (Google's endpoints, …) would not load: kept only for the same one.
    let base_is_microsoft =
        base.get("email_services").and_then(|section| section.get("provider")).and_then(toml::Value::as_str)
            == Some("microsoft");
    let same_provider = section_name != "email_services" || base_is_microsoft == (service == "microsoft");
    if let Some(toml::Value::Table(existing)) = base.get(section_name).filter(|_| same_provider) {
        for (key, value) in existing {
            if !managed.contains(&key.as_str()) && !INLINE_SECRETS.contains(&key.as_str()) {
                section.insert(key.clone(), value.clone());
            }
        }
    }
    fn text(section: &mut toml::Table, key: &str, value: &str) {
        if !value.is_empty() {
            section.insert(key.into(), value.to_owned().into());
        }
    }
    match service {
        "web_mail" => {
            text(&mut section, "server", &draft.smtp_server);
            if !draft.smtp_port.is_empty() {
                section.insert("port".into(), number_or_text(&draft.smtp_port));
            }
            section.insert("enable_ssl".into(), draft.smtp_enable_ssl.into());
            if draft.smtp_tls != "auto" {
                section.insert("tls".into(), draft.smtp_tls.clone().into());
            }
            text(&mut section, "username", &draft.smtp_username);
            text(&mut section, "ca_file", &draft.smtp_ca_file);
            if let Some(password) = &secrets.smtp_password {
                section.insert("password_env".into(), PASSWORD_ENV.into());
                env.insert(PASSWORD_ENV, password.clone());
            }
        }
        "exchange" => {
            text(&mut section, "uri", &draft.ews_uri);
            text(&mut section, "domain", &draft.ews_domain);
            text(&mut section, "username", &draft.ews_username);
            text(&mut section, "ca_file", &draft.ews_ca_file);
            if let Some(password) = &secrets.ews_password {
                section.insert("password_env".into(), PASSWORD_ENV.into());
                env.insert(PASSWORD_ENV, password.clone());
            }
        }
        "microsoft" => {
            section.insert("provider".into(), "microsoft".into());
            text(&mut section, "tenant", &draft.ms_tenant);
            text(&mut section, "client_id", &draft.ms_client_id);
            section.insert("auth".into(), draft.ms_auth.clone().into());
            if let Some(secret) = &secrets.ms_client_secret {
                section.insert("client_secret_env".into(), MS_SECRET_ENV.into());
                env.insert(MS_SECRET_ENV, secret.clone());
            }
            text(&mut section, "authority", &draft.ms_authority);
            text(&mut section, "api_base", &draft.ms_api_base);
            if draft.ms_auth == "delegated" {
                if !section.contains_key("token_file") && !section.contains_key("refresh_token_env") {
                    section.insert("token_file".into(), format!("{token_stem}.microsoft-token.json").into());
                }
            } else {
                for key in ["token_file", "refresh_token_env"] {
                    section.remove(key);
                }
            }
        }
        _ => {
            section.insert("provider".into(), "gmail".into());
            text(&mut section, "client_id", &draft.google_client_id);
            if let Some(secret) = &secrets.google_client_secret {
                section.insert("client_secret_env".into(), GOOGLE_SECRET_ENV.into());
                env.insert(GOOGLE_SECRET_ENV, secret.clone());
            }
            if !section.contains_key("token_file") && !section.contains_key("refresh_token_env") {
                section.insert("token_file".into(), format!("{token_stem}.google-token.json").into());
            }
        }
    }
    if !draft.timeout_secs.is_empty() {
        section.insert("timeout_secs".into(), number_or_text(&draft.timeout_secs));
    }
    table.insert(section_name.into(), toml::Value::Table(section));
    let text = format!(
        "# Company Email for mailroom, written by `mailroom serve` after a successful Validate.\n\
         # Secrets are in the secrets file beside this one (its *_env variables).\n{}",
        toml::to_string(&table).expect("a TOML table of strings, numbers and tables serialises")
    );
    Built { text, secrets: env }
}

fn text_of(value: Option<&toml::Value>) -> String {
    match value {
        Some(toml::Value::String(s)) => s.clone(),
        Some(toml::Value::Integer(n)) => n.to_string(),
        Some(toml::Value::Boolean(b)) => b.to_string(),
        _ => String::new(),
    }
}

impl Draft {
    /// The values of an existing config (secrets left out); unknown or odd values are shown
    /// as text so the person can correct them.
    pub(crate) fn from_table(table: &toml::Table) -> Draft {
        let section = |name: &str| table.get(name).and_then(toml::Value::as_table).cloned().unwrap_or_default();
        let smtp = section("web_mail");
        let ews = section("exchange");
        let google = section("email_services");
        let service = service_of(table);
        let microsoft = service == "microsoft";
        let timeout_section = match service.as_str() {
            "exchange" => &ews,
            "email_services" | "microsoft" => &google,
            _ => &smtp,
        };
        let ms = |key: &str| if microsoft { text_of(google.get(key)) } else { String::new() };
        Draft {
            service: if SERVICES.iter().any(|(name, _)| *name == service) {
                service.clone()
            } else {
                "web_mail".into()
            },
            email_address: text_of(table.get("email_address")),
            display_name: text_of(table.get("display_name")),
            smtp_server: text_of(smtp.get("server")),
            smtp_port: text_of(smtp.get("port")),
            smtp_enable_ssl: smtp.get("enable_ssl").and_then(toml::Value::as_bool).unwrap_or(true),
            smtp_username: text_of(smtp.get("username")),
            smtp_tls: match smtp.get("tls").and_then(toml::Value::as_str) {
                Some(tls @ ("starttls" | "implicit" | "none")) => tls.to_owned(),
                _ => "auto".into(),
            },
            smtp_ca_file: text_of(smtp.get("ca_file")),
            ews_uri: match text_of(ews.get("uri")) {
                uri if uri.is_empty() => Draft::fresh().ews_uri,
                uri => uri,
            },
            ews_domain: text_of(ews.get("domain")),
            ews_username: text_of(ews.get("username")),
            ews_ca_file: text_of(ews.get("ca_file")),
            google_client_id: if microsoft { String::new() } else { text_of(google.get("client_id")) },
            ms_tenant: ms("tenant"),
            ms_client_id: ms("client_id"),
            ms_auth: match ms("auth").as_str() {
                "delegated" => "delegated".into(),
                _ => "application".into(),
            },
            ms_authority: ms("authority"),
            ms_api_base: ms("api_base"),
            timeout_secs: text_of(timeout_section.get("timeout_secs")),
        }
    }

    /// The Web Mail defaults of a fresh page.
    pub(crate) fn fresh() -> Draft {
        Draft {
            service: "web_mail".into(),
            smtp_port: "587".into(),
            smtp_enable_ssl: true,
            smtp_tls: "auto".into(),
            ews_uri: "https://outlook.office365.com/EWS/Exchange.asmx".into(),
            ms_auth: "application".into(),
            ..Draft::default()
        }
    }

    /// Fills server, port and SSL for a provider preset (`gmail`, `office365`), or switches
    /// to Email Services: Microsoft 365 (`graph`).
    pub(crate) fn apply_preset(&mut self, preset: &str) -> bool {
        if preset == "graph" {
            self.service = "microsoft".into();
            return true;
        }
        let (server, port) = match preset {
            "gmail" => ("smtp.gmail.com", 587),
            "office365" => ("smtp.office365.com", 587),
            _ => return false,
        };
        self.service = "web_mail".into();
        self.smtp_server = server.into();
        self.smtp_port = port.to_string();
        self.smtp_enable_ssl = true;
        self.smtp_tls = "auto".into();
        if self.smtp_username.is_empty() {
            self.smtp_username = self.email_address.clone();
        }
        true
    }

    /// Applies a diagnose suggestion's settings (`web_mail.port=587;web_mail.tls="starttls"`),
    /// expressed in the page's own terms (Enable SSL where it says the same); `Err` names a
    /// setting the page does not have.
    pub(crate) fn apply_fix(&mut self, settings: &str) -> Result<(), String> {
        let mut port = self.smtp_port.parse::<u16>().ok();
        let mut tls = None;
        for setting in settings.split(';').filter(|s| !s.is_empty()) {
            let (field, value) = setting.split_once('=').ok_or_else(|| format!("\"{setting}\" is not field=value"))?;
            match field {
                "web_mail.port" => port = Some(value.parse().map_err(|_| format!("\"{value}\" is not a port"))?),
                "web_mail.tls" => {
                    tls = Some(match value.trim_matches('"') {
                        "starttls" => TlsMode::Starttls,
                        "implicit" => TlsMode::Implicit,
                        "none" => TlsMode::None,
                        other => return Err(format!("\"{other}\" is not a TLS mode")),
                    })
                }
                other => return Err(format!("the page has no setting {other}")),
            }
        }
        if let Some(port) = port {
            self.smtp_port = port.to_string();
        }
        if let Some(tls) = tls {
            let port = port.unwrap_or(587);
            if TlsMode::from_enable_ssl(true, port) == tls {
                (self.smtp_enable_ssl, self.smtp_tls) = (true, "auto".into());
            } else if tls == TlsMode::None {
                (self.smtp_enable_ssl, self.smtp_tls) = (false, "auto".into());
            } else {
                (self.smtp_enable_ssl, self.smtp_tls) = (true, tls.as_str().into());
            }
        }
        Ok(())
    }
}

/// The secrets an existing config already has: inline values or its `*_env` variables,
/// looked up in the process environment and then in the secrets file.
pub(crate) fn saved_secrets(base: &toml::Table, secrets_file: &Path) -> SecretFields {
    let file = mailroom::read_secrets_file(secrets_file).unwrap_or_default();
    let lookup = |section: &str, key: &str| -> Option<Secret> {
        let section = base.get(section)?.as_table()?;
        if let Some(value) = section.get(key).and_then(toml::Value::as_str).filter(|v| !v.is_empty()) {
            return Some(Secret::new(value));
        }
        let name = section.get(&format!("{key}_env"))?.as_str()?;
        std::env::var(name).ok().filter(|v| !v.is_empty()).map(Secret::new).or_else(|| file.get(name).cloned())
    };
    let microsoft = service_of(base) == "microsoft";
    let email_services_secret = lookup("email_services", "client_secret");
    let (google_client_secret, ms_client_secret) =
        if microsoft { (None, email_services_secret) } else { (email_services_secret, None) };
    SecretFields {
        smtp_password: lookup("web_mail", "password"),
        ews_password: lookup("exchange", "password"),
        google_client_secret,
        ms_client_secret,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web_mail() -> Draft {
        Draft {
            email_address: "erp@company.com".into(),
            smtp_server: "smtp.company.com".into(),
            smtp_username: "erp@company.com".into(),
            ..Draft::fresh()
        }
    }

    #[test]
    fn the_config_text_has_no_secret_and_loads_with_the_secrets() {
        let secrets = SecretFields { smtp_password: Some(Secret::new("s3cr3t-\"pw")), ..SecretFields::default() };
        let built = build(&web_mail(), &secrets, &toml::Table::new(), "company-email");
        assert!(!built.text.contains("s3cr3t"), "{}", built.text);
        let loaded = mailroom::load_config_text(&built.text, Path::new("."), &built.env()).unwrap();
        assert_eq!(loaded.config.sender.email.to_string(), "erp@company.com");
        assert_eq!(Draft::from_table(&built.text.parse().unwrap()), web_mail());
    }

    #[test]
    fn the_fingerprint_covers_values_and_secrets() {
        let one = SecretFields { smtp_password: Some(Secret::new("a")), ..SecretFields::default() };
        let two = SecretFields { smtp_password: Some(Secret::new("b")), ..SecretFields::default() };
        let base = toml::Table::new();
        let first = build(&web_mail(), &one, &base, "t").fingerprint();
        assert_eq!(first, build(&web_mail(), &one, &base, "t").fingerprint());
        assert_ne!(first, build(&web_mail(), &two, &base, "t").fingerprint());
        let other_port = Draft { smtp_port: "465".into(), ..web_mail() };
        assert_ne!(first, build(&other_port, &one, &base, "t").fingerprint());
    }

    #[test]
    fn keys_beyond_the_form_are_kept_but_inline_secrets_are_not() {
        let base: toml::Table =
            "[web_mail]\nallow_plaintext_auth = true\npassword = \"inline\"\nserver = \"old\"\n[exchange]\npassword = \"other\"\n[outbox]\nrate_per_minute = 30\n"
                .parse()
                .unwrap();
        let built = build(&web_mail(), &SecretFields::default(), &base, "t");
        assert!(built.text.contains("allow_plaintext_auth = true"), "{}", built.text);
        assert!(built.text.contains("[outbox]\nrate_per_minute = 30"), "{}", built.text);
        assert!(!built.text.contains("other") && !built.text.contains("[exchange]"), "{}", built.text);
        assert!(!built.text.contains("inline") && !built.text.contains("old"), "{}", built.text);
    }

    #[test]
    fn microsoft_is_email_services_with_its_own_secret_and_no_google_keys() {
        let draft = Draft {
            service: "microsoft".into(),
            email_address: "erp@company.com".into(),
            ms_tenant: "company.onmicrosoft.com".into(),
            ms_client_id: "11111111-2222-3333-4444-555555555555".into(),
            // Web Mail's values are not written for another service.
            smtp_port: String::new(),
            ..Draft::fresh()
        };
        let secrets = SecretFields { ms_client_secret: Some(Secret::new("ms-secret")), ..SecretFields::default() };
        let google: toml::Table =
            "service = \"email_services\"\n[email_services]\nprovider = \"gmail\"\ntoken_uri = \"http://127.0.0.1:1/token\"\ntoken_file = \"g.json\"\n"
                .parse()
                .unwrap();
        let built = build(&draft, &secrets, &google, "company-email");
        assert!(!built.text.contains("token_uri") && !built.text.contains("g.json"), "{}", built.text);
        assert!(!built.text.contains("ms-secret"));
        let loaded = mailroom::load_config_text(&built.text, Path::new("."), &built.env()).unwrap();
        assert!(matches!(loaded.config.service, mailroom_core::ServiceConfig::Graph(_)));
        assert_eq!(Draft::from_table(&built.text.parse().unwrap()), draft);

        let delegated = Draft { ms_auth: "delegated".into(), ..draft };
        let built = build(&delegated, &SecretFields::default(), &toml::Table::new(), "company-email");
        assert!(built.text.contains("token_file = \"company-email.microsoft-token.json\""), "{}", built.text);
    }

    #[test]
    fn fixes_speak_in_enable_ssl_where_they_can() {
        let mut draft = Draft { smtp_enable_ssl: false, ..web_mail() };
        draft.apply_fix("web_mail.tls=\"starttls\"").unwrap();
        assert_eq!((draft.smtp_enable_ssl, draft.smtp_tls.as_str()), (true, "auto"));
        draft.apply_fix("web_mail.port=465;web_mail.tls=\"implicit\"").unwrap();
        assert_eq!((draft.smtp_port.as_str(), draft.smtp_enable_ssl, draft.smtp_tls.as_str()), ("465", true, "auto"));
        draft.apply_fix("web_mail.port=2525;web_mail.tls=\"implicit\"").unwrap();
        assert_eq!(draft.smtp_tls, "implicit");
        assert!(draft.apply_fix("web_mail.server=\"evil\"").is_err());
    }
}
