//! Loading a Company Email config from TOML: every field read by hand so that every problem is reported at once, with its dotted field name.

use std::path::PathBuf;
use std::time::Duration;

use lettre::message::Mailbox;
use serde::Serialize;

use super::checks;
use super::field::{Field, KeySet};
use super::{
    CompanyEmail, DEFAULT_TIMEOUT, EwsAuth, EwsConfig, GmailConfig, OutboxConfig, ServiceConfig, SmtpConfig, TlsMode,
};
use crate::error::{ErrorKind, SendError};
use crate::provider::Provider;
use crate::secret::Secret;

mod oauth;

/// Every field name a config can have, dotted (CONTRACT: these are the JSON `field` values):
/// the names of [`Field::ALL`], in the same order.
pub const FIELDS: &[&str] = &Field::NAMES;

/// Google's OAuth2 authorization endpoint.
pub(super) const GOOGLE_AUTH_URI: &str = "https://accounts.google.com/o/oauth2/v2/auth";
/// Google's OAuth2 token endpoint.
pub(super) const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// The Gmail API base.
pub(super) const GMAIL_API_BASE: &str = "https://gmail.googleapis.com";

/// How serious a config issue is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The config cannot be used until it is fixed.
    Error,
    /// The config works, but probably not as meant.
    Warning,
}

/// One problem with one field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConfigIssue {
    /// The dotted field name, e.g. `web_mail.port`.
    pub field: &'static str,
    /// What is wrong and what to enter instead. Never contains a secret value.
    pub message: String,
    /// Error or warning.
    pub severity: Severity,
}

impl std::fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl ConfigIssue {
    /// This issue as an `invalid_config` [`SendError`] naming the same [`Field`] (none when
    /// `field` is not one of [`FIELDS`]).
    pub fn to_send_error(&self) -> SendError {
        let error = SendError::new(ErrorKind::InvalidConfig, self.message.clone());
        match Field::from_name(self.field) {
            Some(field) => error.with_field(field),
            None => error,
        }
    }
}

/// A config that loaded, with the warnings found on the way.
#[derive(Clone, Debug)]
pub struct LoadedConfig {
    /// The validated config.
    pub config: CompanyEmail,
    /// Things that work but look unintended (inline secrets, unusual port/TLS pairs, …).
    pub warnings: Vec<ConfigIssue>,
    /// The `[outbox]` section (all defaults when absent).
    pub outbox: OutboxConfig,
}

/// Why a config could not be loaded.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ConfigProblems {
    /// The text is not TOML.
    Syntax {
        /// The parser's message.
        message: String,
        /// 1-based line of the problem, when known.
        line: Option<usize>,
        /// 1-based column of the problem, when known.
        column: Option<usize>,
    },
    /// The TOML is fine but fields are wrong: every error found, plus the warnings.
    Invalid {
        /// Every error, in file order of the fields.
        errors: Vec<ConfigIssue>,
        /// Every warning.
        warnings: Vec<ConfigIssue>,
    },
}

impl ConfigProblems {
    /// The first error as an `invalid_config` [`SendError`] (a syntax error has no field).
    pub fn first_error(&self) -> SendError {
        match self {
            ConfigProblems::Syntax { .. } => SendError::new(ErrorKind::InvalidConfig, self.to_string()),
            ConfigProblems::Invalid { errors, .. } => errors
                .first()
                .map(ConfigIssue::to_send_error)
                .unwrap_or_else(|| SendError::new(ErrorKind::InvalidConfig, "invalid config")),
        }
    }
}

impl std::fmt::Display for ConfigProblems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigProblems::Syntax { message, line: Some(line), column } => {
                write!(f, "the config is not valid TOML at line {line}")?;
                if let Some(column) = column {
                    write!(f, ", column {column}")?;
                }
                write!(f, ": {message}")
            }
            ConfigProblems::Syntax { message, .. } => {
                write!(f, "the config is not valid TOML: {message}")
            }
            ConfigProblems::Invalid { errors, .. } => {
                write!(f, "{} config error(s)", errors.len())?;
                for error in errors {
                    write!(f, "; {error}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ConfigProblems {}

/// The dotted name of `key` in `section` (itself dotted for nested sections such as
/// `web_mail.oauth`), as a `'static` str from [`Field`].
pub(super) fn field(section: &str, key: &str) -> &'static str {
    let dotted = if section.is_empty() { key.to_owned() } else { format!("{section}.{key}") };
    Field::from_name(&dotted).unwrap_or_else(|| panic!("{dotted} is not a config Field")).name()
}

#[derive(Clone, Copy)]
struct Section<'t> {
    name: &'static str,
    table: &'t toml::Table,
}

struct Loader<'e> {
    issues: Vec<ConfigIssue>,
    env: &'e dyn Fn(&str) -> Option<String>,
}

impl Loader<'_> {
    fn error(&mut self, field: &'static str, message: impl Into<String>) {
        self.issues.push(ConfigIssue { field, message: message.into(), severity: Severity::Error });
    }

    fn warn(&mut self, field: &'static str, message: impl Into<String>) {
        self.issues.push(ConfigIssue { field, message: message.into(), severity: Severity::Warning });
    }

    fn has_error(&self, field: &'static str) -> bool {
        self.issues.iter().any(|i| i.field == field && i.severity == Severity::Error)
    }

    fn check_unknown_keys(&mut self, section: &Section<'_>, allowed: &[&str]) {
        let anchor = if section.name.is_empty() { "service" } else { section.name };
        let anchor = field("", anchor);
        for key in section.table.keys() {
            if allowed.contains(&key.as_str()) {
                continue;
            }
            let place = if section.name.is_empty() { String::new() } else { format!(" in [{}]", section.name) };
            let closest = allowed.iter().min_by_key(|candidate| strsim::levenshtein(key, candidate));
            let message = match closest {
                Some(candidate) if strsim::levenshtein(key, candidate) <= 2 => {
                    format!("unknown setting \"{key}\"{place}: did you mean \"{candidate}\"?")
                }
                _ => format!("unknown setting \"{key}\"{place}: the known ones are {}", allowed.join(", ")),
            };
            self.error(anchor, message);
        }
    }

    fn string(&mut self, section: &Section<'_>, key: &str) -> Option<String> {
        let name = field(section.name, key);
        let value = section.table.get(key)?;
        let Some(text) = value.as_str() else {
            self.error(name, format!("must be text in quotes, e.g. {key} = \"…\" (found {})", value.type_str()));
            return None;
        };
        if let Err(message) = checks::check_no_control_chars(text) {
            self.error(name, message);
            return None;
        }
        Some(text.to_owned())
    }

    fn required_string(&mut self, section: &Section<'_>, key: &str, example: &str) -> Option<String> {
        let value = self.string(section, key);
        let name = field(section.name, key);
        match value {
            Some(text) if text.trim().is_empty() => {
                self.error(name, format!("is empty: enter {example}"));
                None
            }
            None if !section.table.contains_key(key) => {
                self.error(name, format!("is missing: add {key} = {example}"));
                None
            }
            other => other,
        }
    }

    fn boolean(&mut self, section: &Section<'_>, key: &str, default: bool) -> bool {
        let name = field(section.name, key);
        match section.table.get(key) {
            None => default,
            Some(toml::Value::Boolean(value)) => *value,
            Some(other) => {
                self.error(name, format!("must be true or false, without quotes (found {})", describe(other)));
                default
            }
        }
    }

    fn integer(
        &mut self,
        section: &Section<'_>,
        key: &str,
        range: std::ops::RangeInclusive<i64>,
        example: i64,
    ) -> Option<i64> {
        let name = field(section.name, key);
        match section.table.get(key)? {
            toml::Value::Integer(value) if range.contains(value) => Some(*value),
            toml::Value::Integer(value) => {
                self.error(
                    name,
                    format!("{value} is out of range: enter a number from {} to {}", range.start(), range.end()),
                );
                None
            }
            toml::Value::String(text) if text.trim().parse::<i64>().is_ok() => {
                self.error(name, format!("must be a number without quotes: {key} = {}", text.trim()));
                None
            }
            other => {
                self.error(name, format!("must be a whole number, e.g. {key} = {example} (found {})", describe(other)));
                None
            }
        }
    }

    fn timeout(&mut self, section: &Section<'_>) -> Duration {
        self.integer(section, "timeout_secs", 1..=600, 10)
            .map(|secs| Duration::from_secs(secs as u64))
            .unwrap_or(DEFAULT_TIMEOUT)
    }

    fn path(&mut self, section: &Section<'_>, key: &str) -> Option<PathBuf> {
        let value = self.string(section, key)?;
        if value.trim().is_empty() {
            self.error(field(section.name, key), "is empty: remove it or enter a file path");
            return None;
        }
        Some(PathBuf::from(value))
    }

    /// Reads `key` (inline secret) or `key_env` (environment variable name); never echoes a value.
    fn secret(&mut self, section: &Section<'_>, key: &str) -> Option<Secret> {
        let inline_name = field(section.name, key);
        let env_key = format!("{key}_env");
        let env_name = field(section.name, &env_key);
        let has_inline = section.table.contains_key(key);
        let has_env = section.table.contains_key(env_key.as_str());
        if has_inline && has_env {
            self.error(inline_name, format!("set either {key} or {env_key}, not both"));
            return None;
        }
        if has_inline {
            let Some(value) = section.table.get(key).and_then(toml::Value::as_str) else {
                self.error(inline_name, format!("must be text in quotes: {key} = \"…\""));
                return None;
            };
            if let Err(message) = checks::check_no_control_chars(value) {
                self.error(inline_name, message);
                return None;
            }
            if value.is_empty() {
                self.error(inline_name, format!("is empty: enter the {key}, or use {env_key}"));
                return None;
            }
            self.warn(
                inline_name,
                format!("the {key} is stored in the config file in clear text: prefer {env_key} = \"VARIABLE_NAME\" and keep the value in the environment"),
            );
            return Some(Secret::new(value));
        }
        if has_env {
            let variable = self.string(section, &env_key)?;
            let valid_name = !variable.is_empty()
                && !variable.starts_with(|c: char| c.is_ascii_digit())
                && variable.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid_name {
                // Never quoted: a common slip is to paste the secret itself here.
                self.error(env_name, format!("is not an environment variable name: {env_key} holds the name of a variable (letters, digits and underscores, e.g. MAILROOM_PASSWORD), not the {key} itself"));
                return None;
            }
            // Quote the name only when it looks like one (upper case), for the same reason.
            let conventional = variable.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            let shown = if conventional { variable.clone() } else { format!("named in {env_key}") };
            return match (self.env)(&variable) {
                Some(value) if !value.is_empty() => {
                    if let Err(message) = checks::check_no_control_chars(&value) {
                        self.error(env_name, format!("the value of the environment variable {shown} {message}"));
                        return None;
                    }
                    Some(Secret::new(value))
                }
                Some(_) => {
                    self.error(env_name, format!("the environment variable {shown} is empty: set it to the {key}"));
                    None
                }
                None if conventional => {
                    self.error(env_name, format!("the environment variable {variable} is not set: export {variable}=… before running mailroom, or put {key} = \"…\" in the file"));
                    None
                }
                None => {
                    self.error(env_name, format!("the environment variable named in {env_key} is not set (names are usually upper case, e.g. MAILROOM_PASSWORD): {env_key} holds the name of a variable, not the {key} itself"));
                    None
                }
            };
        }
        None
    }

    fn section<'t>(&mut self, root: &'t toml::Table, name: &'static str) -> Option<Section<'t>> {
        match root.get(name)? {
            toml::Value::Table(table) => Some(Section { name, table }),
            other => {
                self.error(field("", name), format!("must be a [{name}] section (found {})", describe(other)));
                None
            }
        }
    }
}

fn describe(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => format!("the text \"{s}\""),
        other => format!("{} {other}", other.type_str()),
    }
}

pub(super) fn load(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<LoadedConfig, ConfigProblems> {
    let root: toml::Table = toml::from_str(text).map_err(|e| {
        let (line, column) = match e.span() {
            Some(span) => {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                (Some(line), Some(column))
            }
            None => (None, None),
        };
        ConfigProblems::Syntax { message: e.message().to_owned(), line, column }
    })?;

    let mut loader = Loader { issues: Vec::new(), env };
    let top = Section { name: "", table: &root };
    loader.check_unknown_keys(&top, &Field::keys_of(KeySet::Top));

    let service = loader.required_string(&top, "service", "\"web_mail\" (or \"exchange\", \"email_services\")");
    let address = loader
        .required_string(&top, "email_address", "\"erp@company.com\"")
        .and_then(|text| checks::check_address(&text).map_err(|m| loader.error(Field::EmailAddress.name(), m)).ok());
    let display_name = loader.string(&top, "display_name");
    if display_name.as_ref().is_some_and(|name| name.chars().count() > 200) {
        loader.error(
            Field::DisplayName.name(),
            "is longer than 200 characters: use a short name such as \"Company ERP\"",
        );
    }

    let web_mail = loader.section(&root, "web_mail");
    let exchange = loader.section(&root, "exchange");
    let email_services = loader.section(&root, "email_services");
    let outbox = loader.section(&root, "outbox").map(|section| load_outbox(&mut loader, &section)).unwrap_or_default();

    let service_config = match service.as_deref() {
        Some("web_mail") => load_required(&mut loader, web_mail, "web_mail", load_smtp).map(ServiceConfig::WebMail),
        Some("exchange") => load_required(&mut loader, exchange, "exchange", load_ews).map(ServiceConfig::Exchange),
        Some("email_services") => {
            load_required(&mut loader, email_services, "email_services", oauth::load_email_services)
        }
        Some(other) => {
            let hint = match other.to_ascii_lowercase().replace([' ', '-'], "_").as_str() {
                "webmail" | "web_mail" | "smtp" => " (did you mean \"web_mail\"?)",
                "ews" | "exchange" => " (did you mean \"exchange\"?)",
                "gmail" | "email_services" | "emailservices" => " (did you mean \"email_services\"?)",
                _ => "",
            };
            loader.error(
                Field::Service.name(),
                format!(
                    "\"{other}\" is not a service type{hint}: use \"web_mail\", \"exchange\" or \"email_services\""
                ),
            );
            None
        }
        None => None,
    };

    if let Some(chosen) = service.as_deref() {
        for (name, present) in [
            ("web_mail", web_mail.is_some()),
            ("exchange", exchange.is_some()),
            ("email_services", email_services.is_some()),
        ] {
            if present && name != chosen && ["web_mail", "exchange", "email_services"].contains(&chosen) {
                loader.warn(field("", name), format!("[{name}] is ignored because service = \"{chosen}\""));
            }
        }
    }

    let (errors, warnings): (Vec<_>, Vec<_>) =
        loader.issues.into_iter().partition(|issue| issue.severity == Severity::Error);
    match (address, service_config) {
        (Some(address), Some(service)) if errors.is_empty() => Ok(LoadedConfig {
            config: CompanyEmail {
                sender: Mailbox::new(display_name.filter(|n| !n.trim().is_empty()), address),
                service,
            },
            warnings,
            outbox,
        }),
        _ => Err(ConfigProblems::Invalid { errors, warnings }),
    }
}

fn load_required<T>(
    loader: &mut Loader<'_>,
    section: Option<Section<'_>>,
    name: &'static str,
    read: fn(&mut Loader<'_>, &Section<'_>) -> Option<T>,
) -> Option<T> {
    match section {
        Some(section) => read(loader, &section),
        None => {
            loader.error(field("", name), format!("service = \"{name}\" needs a [{name}] section with its settings"));
            None
        }
    }
}

fn load_smtp(loader: &mut Loader<'_>, section: &Section<'_>) -> Option<SmtpConfig> {
    loader.check_unknown_keys(section, &Field::keys_of(KeySet::WebMail));
    let server = loader.required_string(section, "server", "\"smtp.company.com\"").filter(|server| {
        match checks::check_server_host(server) {
            Ok(()) => true,
            Err(message) => {
                loader.error(Field::WebMailServer.name(), message);
                false
            }
        }
    });
    let port = loader.integer(section, "port", 1..=65535, 587).map(|p| p as u16);
    if !section.table.contains_key("port") {
        loader.error(Field::WebMailPort.name(), "is missing: add port = 587 (STARTTLS) or port = 465 (implicit TLS)");
    }
    let enable_ssl = loader.boolean(section, "enable_ssl", true);
    let explicit_tls = loader.string(section, "tls").and_then(|tls| match tls.as_str() {
        "starttls" => Some(TlsMode::Starttls),
        "implicit" => Some(TlsMode::Implicit),
        "none" => Some(TlsMode::None),
        other => {
            loader.error(
                Field::WebMailTls.name(),
                format!(
                    "\"{other}\" is not a TLS mode: use \"starttls\" (port 587), \"implicit\" (port 465) or \"none\""
                ),
            );
            None
        }
    });
    let username = loader.string(section, "username").filter(|u| !u.trim().is_empty());
    let (uses_oauth, oauth) = oauth::load_smtp_oauth(loader, section, username.is_some());
    let password = loader.secret(section, "password");
    let ca_file = loader.path(section, "ca_file");
    let timeout = loader.timeout(section);
    let allow_plaintext_auth = loader.boolean(section, "allow_plaintext_auth", false);

    let port = port?;
    let tls = explicit_tls.unwrap_or(TlsMode::from_enable_ssl(enable_ssl, port));
    if let Some(explicit) = explicit_tls
        && (explicit == TlsMode::None) == enable_ssl
    {
        loader.warn(
            Field::WebMailTls.name(),
            format!("tls = \"{}\" overrides enable_ssl = {enable_ssl}", explicit.as_str()),
        );
    }
    match (tls, port) {
        (TlsMode::Implicit, 587) => loader.warn(Field::WebMailTls.name(), "tls = \"implicit\" with port 587: port 587 normally uses STARTTLS (tls = \"starttls\"); implicit TLS is usually on port 465"),
        (TlsMode::Starttls, 465) => loader.warn(Field::WebMailTls.name(), "tls = \"starttls\" with port 465: port 465 normally expects implicit TLS from the first byte (tls = \"implicit\")"),
        (TlsMode::None, 465) => loader.warn(Field::WebMailEnableSsl.name(), "SSL is off with port 465: port 465 expects implicit TLS, so the connection will stall"),
        _ => {}
    }
    match (&username, &password) {
        _ if uses_oauth => {}
        (None, Some(_)) => loader.error(
            Field::WebMailUsername.name(),
            "a password is set but no user name: add username = \"erp@company.com\" (usually the full email address)",
        ),
        (Some(_), None)
            if !loader.has_error(Field::WebMailPasswordEnv.name())
                && !loader.has_error(Field::WebMailPassword.name()) =>
        {
            loader.error(
                Field::WebMailPassword.name(),
                "a user name is set but no password: add password_env = \"MAILROOM_PASSWORD\" (or password = \"…\")",
            )
        }
        _ => {}
    }
    let server = server?;
    if tls == TlsMode::None && password.is_some() && !allow_plaintext_auth && !checks::is_loopback_host(&server) {
        loader.error(
            Field::WebMailEnableSsl.name(),
            format!("SSL is off but a password is set: mailroom will not send the password unencrypted to {server}. Turn enable_ssl on, or for a trusted internal relay set allow_plaintext_auth = true"),
        );
    }
    if Provider::detect(&server).is_some_and(|p| p.preset().implicit_tls_port.is_none()) && port == 465 {
        loader.warn(
            Field::WebMailPort.name(),
            format!("{server} does not offer port 465: use port 587 with enable_ssl = true"),
        );
    }
    if uses_oauth && tls == TlsMode::None && !allow_plaintext_auth && !checks::is_loopback_host(&server) {
        loader.error(
            Field::WebMailEnableSsl.name(),
            format!("SSL is off but auth = \"oauth\": mailroom will not send an access token unencrypted to {server}. Turn enable_ssl on"),
        );
    }
    Some(SmtpConfig {
        server,
        port,
        enable_ssl,
        tls,
        username,
        password,
        ca_file,
        timeout,
        allow_plaintext_auth,
        oauth,
    })
}

fn load_ews(loader: &mut Loader<'_>, section: &Section<'_>) -> Option<EwsConfig> {
    loader.check_unknown_keys(section, &Field::keys_of(KeySet::Exchange));
    let uri = loader
        .required_string(section, "uri", "\"https://outlook.office365.com/EWS/Exchange.asmx\"")
        .and_then(|uri| checks::check_endpoint(&uri).map_err(|m| loader.error(Field::ExchangeUri.name(), m)).ok());
    if let Some(uri) = &uri
        && !uri.path().to_ascii_lowercase().ends_with(".asmx")
    {
        loader.warn(Field::ExchangeUri.name(), format!("{uri} does not end in Exchange.asmx: the EWS endpoint is usually https://mail.company.com/EWS/Exchange.asmx"));
    }
    let domain = loader.required_string(section, "domain", "\"company.com\"");
    let domain = match domain {
        Some(domain) => match checks::check_exchange_domain(&domain) {
            Ok(()) => Some(domain.trim().trim_end_matches('.').to_ascii_lowercase()),
            Err(message) => {
                loader.error(Field::ExchangeDomain.name(), message);
                None
            }
        },
        None => None,
    };
    let username = loader.required_string(section, "username", "\"erp\"");
    if username.as_deref().is_some_and(|u| u.contains('\\')) {
        loader.error(
            Field::ExchangeUsername.name(),
            "enter the user name alone, without DOMAIN\\ (the domain has its own field)",
        );
    }
    let auth = match loader.string(section, "auth").as_deref() {
        None | Some("basic") => EwsAuth::Basic,
        Some("ntlm") => EwsAuth::Ntlm,
        Some("oauth") => EwsAuth::Oauth,
        Some(other) => {
            loader.error(
                Field::ExchangeAuth.name(),
                format!("\"{other}\" is not an authentication method: use \"basic\", \"ntlm\" or \"oauth\""),
            );
            EwsAuth::Basic
        }
    };
    let password = loader.secret(section, "password");
    let client_id = loader.string(section, "client_id");
    let client_secret = loader.secret(section, "client_secret");
    let tenant = loader.string(section, "tenant");
    match auth {
        EwsAuth::Basic | EwsAuth::Ntlm => {
            if password.is_none()
                && !loader.has_error(Field::ExchangePasswordEnv.name())
                && !loader.has_error(Field::ExchangePassword.name())
            {
                loader.error(
                    Field::ExchangePassword.name(),
                    "is missing: add password_env = \"MAILROOM_PASSWORD\" (or password = \"…\")",
                );
            }
        }
        EwsAuth::Oauth => {
            if client_id.is_none() {
                loader.error(
                    Field::ExchangeClientId.name(),
                    "auth = \"oauth\" needs the application (client) ID from the Azure app registration",
                );
            }
            if tenant.is_none() {
                loader.error(
                    Field::ExchangeTenant.name(),
                    "auth = \"oauth\" needs the tenant ID or domain, e.g. tenant = \"company.onmicrosoft.com\"",
                );
            }
            if client_secret.is_none() && !loader.has_error(Field::ExchangeClientSecretEnv.name()) {
                loader.error(
                    Field::ExchangeClientSecret.name(),
                    "auth = \"oauth\" needs client_secret_env = \"VARIABLE\" (or client_secret = \"…\")",
                );
            }
        }
    }
    if auth == EwsAuth::Basic && uri.as_ref().is_some_and(|u| u.host_str() == Some("outlook.office365.com")) {
        loader.warn(
            Field::ExchangeAuth.name(),
            "Exchange Online turned Basic authentication off in 2022: use auth = \"oauth\"",
        );
    }
    let ca_file = loader.path(section, "ca_file");
    let timeout = loader.timeout(section);
    Some(EwsConfig {
        uri: uri?,
        domain: domain?,
        username: username?,
        password,
        auth,
        client_id,
        client_secret,
        tenant,
        ca_file,
        timeout,
    })
}

fn load_gmail(loader: &mut Loader<'_>, section: &Section<'_>) -> Option<GmailConfig> {
    loader.check_unknown_keys(section, &Field::keys_of(KeySet::Gmail));
    let google = oauth::load_google(loader, section);
    let api_base = oauth::endpoint(loader, section, "api_base", GMAIL_API_BASE);
    let timeout = loader.timeout(section);
    let google = google?;
    Some(GmailConfig {
        client_id: google.client_id,
        client_secret: google.client_secret,
        refresh_token: google.refresh_token,
        token_file: google.token_file,
        auth_uri: google.auth_uri,
        token_uri: google.token_uri,
        api_base: api_base?,
        timeout,
    })
}

fn load_outbox(loader: &mut Loader<'_>, section: &Section<'_>) -> OutboxConfig {
    loader.check_unknown_keys(section, &Field::keys_of(KeySet::Outbox));
    let url = loader.string(section, "url").filter(|url| {
        let url = url.trim();
        let sqlite_path = url.strip_prefix("sqlite:").map(|rest| rest.trim_start_matches("//"));
        let known = match sqlite_path {
            Some(path) => !path.is_empty(),
            None => ["postgres://", "postgresql://"].iter().any(|scheme| url.len() > scheme.len() && url.starts_with(scheme)),
        };
        if !known {
            loader.error(
                Field::OutboxUrl.name(),
                "is not an outbox database: use \"sqlite:mailroom-outbox.db\" (a file, relative to this config file) or \"postgres://user@host/db\" (several workers)",
            );
        }
        known
    });
    let mut number = |key: &str, range: std::ops::RangeInclusive<i64>, example: i64| {
        loader.integer(section, key, range, example).and_then(|n| u32::try_from(n).ok())
    };
    OutboxConfig {
        url,
        concurrency: number("concurrency", 1..=256, 4),
        rate_per_minute: number("rate_per_minute", 1..=1_000_000, 30),
        daily_quota: number("daily_quota", 1..=100_000_000, 2000),
        max_attempts: number("max_attempts", 1..=100, 8),
        lease_secs: number("lease_secs", 1..=86_400, 300),
    }
}
