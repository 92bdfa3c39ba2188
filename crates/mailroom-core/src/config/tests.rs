//! Tests for config loading: every field, every rule, all problems reported at once.

use super::*;
use proptest::prelude::*;

const WEB_MAIL: &str = r#"
service = "web_mail"
email_address = "erp@company.com"
display_name = "Company ERP"
[web_mail]
server = "smtp.gmail.com"
port = 587
enable_ssl = true
username = "erp@company.com"
password_env = "MAILROOM_PASSWORD"
"#;

const EXCHANGE: &str = r#"
service = "exchange"
email_address = "erp@company.com"
[exchange]
uri = "https://mail.company.com/EWS/Exchange.asmx"
domain = "company.com"
username = "erp"
password_env = "MAILROOM_PASSWORD"
"#;

const GMAIL: &str = r#"
service = "email_services"
email_address = "erp@company.com"
[email_services]
provider = "gmail"
client_id = "1234-abc.apps.googleusercontent.com"
client_secret_env = "MAILROOM_GOOGLE_SECRET"
refresh_token_env = "MAILROOM_GOOGLE_REFRESH"
"#;

const GRAPH_APP: &str = r#"
service = "email_services"
email_address = "erp@company.com"
[email_services]
provider = "microsoft"
tenant = "company.onmicrosoft.com"
client_id = "11111111-2222-3333-4444-555555555555"
client_secret_env = "MAILROOM_MS_SECRET"
auth = "application"
"#;

const GRAPH_DELEGATED: &str = r#"
service = "email_services"
email_address = "erp@company.com"
[email_services]
provider = "microsoft"
tenant = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
client_id = "11111111-2222-3333-4444-555555555555"
auth = "delegated"
token_file = "microsoft-token.json"
"#;

const SMTP_OAUTH_MICROSOFT: &str = r#"
service = "web_mail"
email_address = "erp@company.com"
[web_mail]
server = "smtp.office365.com"
port = 587
enable_ssl = true
username = "erp@company.com"
auth = "oauth"
[web_mail.oauth]
provider = "microsoft"
tenant = "company.onmicrosoft.com"
client_id = "11111111-2222-3333-4444-555555555555"
client_secret_env = "MAILROOM_MS_SECRET"
auth = "application"
"#;

const SMTP_OAUTH_GOOGLE: &str = r#"
service = "web_mail"
email_address = "erp@company.com"
[web_mail]
server = "smtp.gmail.com"
port = 587
enable_ssl = true
username = "erp@company.com"
auth = "oauth"
[web_mail.oauth]
provider = "gmail"
client_id = "1234-abc.apps.googleusercontent.com"
client_secret_env = "MAILROOM_GOOGLE_SECRET"
refresh_token_env = "MAILROOM_GOOGLE_REFRESH"
"#;

fn env(name: &str) -> Option<String> {
    match name {
        "MAILROOM_PASSWORD" => Some("sentinel-password-91".into()),
        "MAILROOM_GOOGLE_SECRET" => Some("sentinel-client-secret".into()),
        "MAILROOM_GOOGLE_REFRESH" => Some("sentinel-refresh".into()),
        "MAILROOM_MS_SECRET" => Some("sentinel-ms-secret".into()),
        "MAILROOM_MS_REFRESH" => Some("sentinel-ms-refresh".into()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

fn load(text: &str) -> Result<LoadedConfig, ConfigProblems> {
    CompanyEmail::from_toml(text, &env)
}

/// Replaces `key = …` in the text (or appends under the section when absent).
fn with(base: &str, key: &str, value: Option<&str>) -> String {
    let mut out = Vec::new();
    let mut replaced = false;
    for line in base.lines() {
        if line.split('=').next().map(str::trim) == Some(key) {
            replaced = true;
            if let Some(value) = value {
                out.push(format!("{key} = {value}"));
            }
        } else {
            out.push(line.to_owned());
        }
    }
    if !replaced && let Some(value) = value {
        out.push(format!("{key} = {value}"));
    }
    out.join("\n")
}

fn errors(text: &str) -> Vec<ConfigIssue> {
    match load(text) {
        Err(ConfigProblems::Invalid { errors, .. }) => errors,
        Err(other) => panic!("expected field errors, got {other}"),
        Ok(_) => panic!("expected field errors, the config loaded:\n{text}"),
    }
}

fn warnings(text: &str) -> Vec<ConfigIssue> {
    load(text).unwrap_or_else(|e| panic!("{e}\n{text}")).warnings
}

fn assert_error(text: &str, field: &str, needle: &str) {
    let errors = errors(text);
    assert!(
        errors.iter().any(|e| e.field == field && e.message.contains(needle)),
        "no {field} error containing {needle:?} in {errors:#?}"
    );
}

#[test]
fn the_three_examples_load() {
    let web = load(WEB_MAIL).unwrap();
    let ServiceConfig::WebMail(smtp) = &web.config.service else { panic!() };
    assert_eq!((smtp.server.as_str(), smtp.port, smtp.tls), ("smtp.gmail.com", 587, TlsMode::Starttls));
    assert_eq!(smtp.password.as_ref().unwrap().expose(), "sentinel-password-91");
    assert_eq!(smtp.timeout, DEFAULT_TIMEOUT);
    assert_eq!(web.config.sender.to_string(), "Company ERP <erp@company.com>");
    assert!(web.warnings.is_empty(), "{:?}", web.warnings);

    let ews = load(EXCHANGE).unwrap();
    let ServiceConfig::Exchange(ews) = &ews.config.service else { panic!() };
    assert_eq!((ews.domain.as_str(), ews.auth), ("company.com", EwsAuth::Basic));

    let gmail = load(GMAIL).unwrap();
    let ServiceConfig::EmailServices(gmail) = &gmail.config.service else { panic!() };
    assert_eq!(gmail.token_uri.as_str(), "https://oauth2.googleapis.com/token");
}

#[test]
fn the_fixture_configs_load() {
    for name in ["web_mail.toml", "exchange.toml", "email_services.toml", "microsoft_graph.toml", "web_mail_oauth.toml"]
    {
        let path = format!("{}/../../fixtures/config/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        load(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn top_level_fields() {
    assert_error(&with(WEB_MAIL, "service", Some("\"smtp\"")), "service", "did you mean \"web_mail\"");
    assert_error(&with(WEB_MAIL, "service", None), "service", "is missing");
    assert_error(&with(WEB_MAIL, "service", Some("3")), "service", "must be text");
    assert_error(
        &with(WEB_MAIL, "email_address", Some("\"erp-at-company.com\"")),
        "email_address",
        "not an email address",
    );
    assert_error(
        &with(WEB_MAIL, "email_address", Some("\"Company <erp@company.com>\"")),
        "email_address",
        "bare address",
    );
    assert_error(&with(WEB_MAIL, "email_address", None), "email_address", "is missing");
    assert_error(&with(WEB_MAIL, "display_name", Some("\"ERP\\r\\nBcc: x@y.z\"")), "display_name", "line break");
    assert_error(
        &with(WEB_MAIL, "display_name", Some(&format!("\"{}\"", "x".repeat(201)))),
        "display_name",
        "longer than 200",
    );
    assert_error(&format!("colour = 1\n{WEB_MAIL}"), "service", "unknown setting \"colour\"");
    assert_error(
        "service = \"exchange\"\nemail_address = \"erp@company.com\"",
        "exchange",
        "needs a [exchange] section",
    );
}

#[test]
fn web_mail_fields() {
    assert_error(
        &with(WEB_MAIL, "server", Some("\"smtp://smtp.gmail.com:587\"")),
        "web_mail.server",
        "enter smtp.gmail.com, not smtp://smtp.gmail.com:587",
    );
    assert_error(&with(WEB_MAIL, "server", Some("\"\"")), "web_mail.server", "is empty");
    assert_error(&with(WEB_MAIL, "server", None), "web_mail.server", "is missing");
    assert_error(&with(WEB_MAIL, "port", Some("0")), "web_mail.port", "out of range");
    assert_error(&with(WEB_MAIL, "port", Some("65536")), "web_mail.port", "out of range");
    assert_error(&with(WEB_MAIL, "port", Some("\"587\"")), "web_mail.port", "without quotes");
    assert_error(&with(WEB_MAIL, "port", Some("587.5")), "web_mail.port", "whole number");
    assert_error(&with(WEB_MAIL, "port", None), "web_mail.port", "is missing");
    assert_error(&with(WEB_MAIL, "enable_ssl", Some("\"yes\"")), "web_mail.enable_ssl", "true or false");
    assert_error(&with(WEB_MAIL, "tls", Some("\"ssl\"")), "web_mail.tls", "not a TLS mode");
    assert_error(&with(WEB_MAIL, "username", Some("\"erp\\n@company.com\"")), "web_mail.username", "line break");
    assert_error(&with(WEB_MAIL, "username", None), "web_mail.username", "no user name");
    assert_error(&with(WEB_MAIL, "password_env", None), "web_mail.password", "no password");
    assert_error(
        &with(WEB_MAIL, "password_env", Some("\"NOT_SET_ANYWHERE\"")),
        "web_mail.password_env",
        "NOT_SET_ANYWHERE is not set",
    );
    assert_error(&with(WEB_MAIL, "password_env", Some("\"EMPTY\"")), "web_mail.password_env", "is empty");
    assert_error(
        &with(WEB_MAIL, "password_env", Some("\"1-bad name\"")),
        "web_mail.password_env",
        "not an environment variable name",
    );
    assert_error(&with(WEB_MAIL, "password", Some("\"inline\"")), "web_mail.password", "not both");
    assert_error(&with(WEB_MAIL, "ca_file", Some("\"\"")), "web_mail.ca_file", "is empty");
    assert_error(&with(WEB_MAIL, "timeout_secs", Some("0")), "web_mail.timeout_secs", "out of range");
    assert_error(&with(WEB_MAIL, "allow_plaintext_auth", Some("1")), "web_mail.allow_plaintext_auth", "true or false");
    assert_error(&with(WEB_MAIL, "pasword_env", Some("\"X\"")), "web_mail", "did you mean \"password_env\"");
}

#[test]
fn tls_consistency() {
    let implicit_587 = with(WEB_MAIL, "tls", Some("\"implicit\""));
    let ServiceConfig::WebMail(smtp) = load(&implicit_587).unwrap().config.service else { panic!() };
    assert_eq!(smtp.tls, TlsMode::Implicit);
    assert!(warnings(&implicit_587).iter().any(|w| w.field == "web_mail.tls" && w.message.contains("587")));

    let port_465 = with(WEB_MAIL, "port", Some("465"));
    let ServiceConfig::WebMail(smtp) = load(&port_465).unwrap().config.service else { panic!() };
    assert_eq!(smtp.tls, TlsMode::Implicit, "enable_ssl with 465 means implicit TLS");

    let plaintext = with(WEB_MAIL, "enable_ssl", Some("false"));
    assert_error(&plaintext, "web_mail.enable_ssl", "will not send the password unencrypted");
    let allowed = with(&plaintext, "allow_plaintext_auth", Some("true"));
    let ServiceConfig::WebMail(smtp) = load(&allowed).unwrap().config.service else { panic!() };
    assert_eq!(smtp.tls, TlsMode::None);
    let loopback = with(&plaintext, "server", Some("\"127.0.0.1\""));
    assert!(load(&loopback).is_ok(), "plaintext AUTH to loopback is fine");

    let overridden = with(WEB_MAIL, "tls", Some("\"none\""));
    let overridden = with(&overridden, "server", Some("\"localhost\""));
    assert!(warnings(&overridden).iter().any(|w| w.message.contains("overrides enable_ssl")));

    let office_465 = with(&with(WEB_MAIL, "server", Some("\"smtp.office365.com\"")), "port", Some("465"));
    assert!(warnings(&office_465).iter().any(|w| w.field == "web_mail.port"));
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = r#"
service = "web_mail"
email_address = "nope"
[web_mail]
server = "https://smtp.gmail.com/"
port = 70000
enable_ssl = "yes"
username = "erp@company.com"
password_env = "NOT_SET_ANYWHERE"
timeout_secs = -1
"#;
    let fields: Vec<&str> = errors(text).iter().map(|e| e.field).collect();
    for field in [
        "email_address",
        "web_mail.server",
        "web_mail.port",
        "web_mail.enable_ssl",
        "web_mail.password_env",
        "web_mail.timeout_secs",
    ] {
        assert!(fields.contains(&field), "{field} missing from {fields:?}");
    }
}

#[test]
fn exchange_fields() {
    let bad_domain = with(EXCHANGE, "domain", Some("\"https://company.com/\""));
    let errs = errors(&bad_domain);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].field, "exchange.domain");
    assert!(errs[0].message.contains("enter company.com, not https://company.com/"));
    let as_error = ConfigProblems::Invalid { errors: errs, warnings: vec![] }.first_error();
    assert_eq!(as_error.documented_error(), Some(crate::DocumentedError::ExchangeDomain));

    assert_error(&with(EXCHANGE, "domain", None), "exchange.domain", "is missing");
    assert_error(
        &with(EXCHANGE, "uri", Some("\"http://mail.company.com/EWS/Exchange.asmx\"")),
        "exchange.uri",
        "https://",
    );
    assert_error(&with(EXCHANGE, "uri", Some("\"mail.company.com\"")), "exchange.uri", "not a URL");
    assert_error(&with(EXCHANGE, "uri", None), "exchange.uri", "is missing");
    assert!(load(&with(EXCHANGE, "uri", Some("\"http://127.0.0.1:9/EWS/Exchange.asmx\""))).is_ok());
    assert!(
        warnings(&with(EXCHANGE, "uri", Some("\"https://mail.company.com/owa\"")))
            .iter()
            .any(|w| w.field == "exchange.uri")
    );
    assert_error(&with(EXCHANGE, "username", Some("\"COMPANY\\\\erp\"")), "exchange.username", "without DOMAIN");
    assert_error(&with(EXCHANGE, "username", None), "exchange.username", "is missing");
    assert_error(&with(EXCHANGE, "password_env", None), "exchange.password", "is missing");
    assert_error(&with(EXCHANGE, "auth", Some("\"kerberos\"")), "exchange.auth", "not an authentication method");
    let oauth = with(&with(EXCHANGE, "auth", Some("\"oauth\"")), "password_env", None);
    assert_error(&oauth, "exchange.client_id", "client) ID");
    assert_error(&oauth, "exchange.tenant", "tenant");
    assert_error(&oauth, "exchange.client_secret", "client_secret_env");
    let complete = format!(
        "{oauth}\nclient_id = \"abc\"\ntenant = \"company.onmicrosoft.com\"\nclient_secret_env = \"MAILROOM_GOOGLE_SECRET\""
    );
    assert!(load(&complete).is_ok());
    assert_error(&with(EXCHANGE, "ca_file", Some("5")), "exchange.ca_file", "must be text");
    assert_error(&with(EXCHANGE, "timeout_secs", Some("601")), "exchange.timeout_secs", "out of range");
    assert_error(
        &with(EXCHANGE, "client_secret", Some("\"a\\u0000b\"")),
        "exchange.client_secret",
        "control character",
    );
    let online = with(EXCHANGE, "uri", Some("\"https://outlook.office365.com/EWS/Exchange.asmx\""));
    assert!(warnings(&online).iter().any(|w| w.field == "exchange.auth"));
}

#[test]
fn email_services_fields() {
    assert_error(
        &with(GMAIL, "provider", Some("\"outlook\"")),
        "email_services.provider",
        "did you mean \"microsoft\"",
    );
    assert_error(
        &with(GMAIL, "provider", Some("\"yahoo\"")),
        "email_services.provider",
        "use \"gmail\" or \"microsoft\"",
    );
    assert_error(&with(GMAIL, "client_id", Some("\"abc\"")), "email_services.client_id", "apps.googleusercontent.com");
    assert_error(&with(GMAIL, "client_id", None), "email_services.client_id", "is missing");
    assert_error(&with(GMAIL, "client_secret_env", None), "email_services.client_secret", "is missing");
    assert_error(
        &with(GMAIL, "client_secret_env", Some("\"UNSET_X\"")),
        "email_services.client_secret_env",
        "UNSET_X is not set",
    );
    assert_error(
        &with(GMAIL, "refresh_token_env", None),
        "email_services.refresh_token_env",
        "mailroom connect google",
    );
    assert_error(&with(GMAIL, "refresh_token", Some("\"inline\"")), "email_services.refresh_token", "not both");
    assert_error(&with(GMAIL, "token_file", Some("\"t.json\"")), "email_services.token_file", "not both");
    assert!(load(&with(&with(GMAIL, "refresh_token_env", None), "token_file", Some("\"t.json\""))).is_ok());
    assert_error(
        &with(GMAIL, "auth_uri", Some("\"http://accounts.google.com/\"")),
        "email_services.auth_uri",
        "https://",
    );
    assert_error(&with(GMAIL, "token_uri", Some("\"ftp://x.y/\"")), "email_services.token_uri", "use https://");
    assert_error(&with(GMAIL, "api_base", Some("\"not a url\"")), "email_services.api_base", "not a URL");
    assert!(load(&with(GMAIL, "api_base", Some("\"http://[::1]:8080/\""))).is_ok());
    assert_error(&with(GMAIL, "timeout_secs", Some("\"ten\"")), "email_services.timeout_secs", "whole number");
}

#[test]
fn microsoft_graph_loads_for_application_and_delegated_auth() {
    let app = load(GRAPH_APP).unwrap();
    assert_eq!(app.config.service_kind().as_str(), "email_services");
    let ServiceConfig::Graph(graph) = &app.config.service else { panic!("{:?}", app.config.service) };
    assert_eq!(graph.oauth.auth, MicrosoftAuth::Application);
    assert_eq!(graph.oauth.client_secret.as_ref().unwrap().expose(), "sentinel-ms-secret");
    assert_eq!(graph.api_base.as_str(), "https://graph.microsoft.com/");
    assert_eq!(
        graph.oauth.endpoint("token").as_str(),
        "https://login.microsoftonline.com/company.onmicrosoft.com/oauth2/v2.0/token"
    );
    assert_eq!(graph.oauth.field(super::MicrosoftKey::ClientSecret).name(), "email_services.client_secret");
    assert!(app.warnings.is_empty(), "{:?}", app.warnings);

    let delegated = load(GRAPH_DELEGATED).unwrap();
    let ServiceConfig::Graph(graph) = &delegated.config.service else { panic!() };
    assert_eq!(graph.oauth.auth, MicrosoftAuth::Delegated);
    assert!(graph.oauth.client_secret.is_none(), "a public client needs no secret");
    assert_eq!(graph.oauth.token_file.as_deref(), Some(std::path::Path::new("microsoft-token.json")));

    let proxied = with(GRAPH_APP, "authority", Some("\"http://127.0.0.1:9/prefix/\""));
    let ServiceConfig::Graph(graph) = load(&proxied).unwrap().config.service else { panic!() };
    assert_eq!(
        graph.oauth.endpoint("devicecode").as_str(),
        "http://127.0.0.1:9/prefix/company.onmicrosoft.com/oauth2/v2.0/devicecode"
    );
}

#[test]
fn microsoft_graph_fields() {
    let f = "email_services.";
    let check = |text: &str, key: &str, needle: &str| assert_error(text, &format!("{f}{key}"), needle);
    check(&with(GRAPH_APP, "provider", Some("\"office365\"")), "provider", "did you mean \"microsoft\"");
    check(&with(GRAPH_APP, "auth", None), "auth", "is missing");
    check(&with(GRAPH_APP, "auth", Some("\"app\"")), "auth", "\"application\"");
    check(&with(GRAPH_APP, "tenant", None), "tenant", "is missing");
    check(&with(GRAPH_APP, "tenant", Some("\"common\"")), "tenant", "not one directory");
    check(&with(GRAPH_APP, "tenant", Some("\"company\"")), "tenant", "verified domain");
    assert!(load(&with(GRAPH_DELEGATED, "tenant", Some("\"organizations\""))).is_ok());
    check(&with(GRAPH_APP, "tenant", Some("\"organizations\"")), "tenant", "not one directory");
    check(&with(GRAPH_APP, "client_id", Some("\"my-app\"")), "client_id", "Application (client) ID");
    check(&with(GRAPH_APP, "client_secret_env", None), "client_secret", "Certificates & secrets");
    check(&with(GRAPH_APP, "client_secret_env", Some("\"UNSET_MS\"")), "client_secret_env", "UNSET_MS is not set");
    check(&with(GRAPH_APP, "token_file", Some("\"t.json\"")), "token_file", "only used with auth = \"delegated\"");
    check(&with(GRAPH_DELEGATED, "token_file", None), "refresh_token_env", "mailroom connect microsoft");
    assert!(
        load(&with(&with(GRAPH_DELEGATED, "token_file", None), "refresh_token_env", Some("\"MAILROOM_MS_REFRESH\"")))
            .is_ok()
    );
    check(&with(GRAPH_APP, "authority", Some("\"http://login.example.com\"")), "authority", "https://");
    check(&with(GRAPH_APP, "api_base", Some("\"nope\"")), "api_base", "not a URL");
    check(&with(GRAPH_APP, "timeout_secs", Some("0")), "timeout_secs", "out of range");
    assert_error(&with(GRAPH_APP, "tennant", Some("\"x.com\"")), "email_services", "did you mean \"tenant\"");
    assert_error(
        &with(GRAPH_APP, "auth_uri", Some("\"https://x.y/\"")),
        "email_services",
        "unknown setting \"auth_uri\"",
    );

    // Every problem at once.
    let broken =
        with(&with(&with(GRAPH_APP, "tenant", Some("\"x\"")), "client_id", Some("\"y\"")), "client_secret_env", None);
    let fields: Vec<_> = errors(&broken).into_iter().map(|e| e.field).collect();
    assert_eq!(fields, ["email_services.tenant", "email_services.client_id", "email_services.client_secret"]);
}

#[test]
fn web_mail_oauth_loads_for_microsoft_and_google() {
    let microsoft = load(SMTP_OAUTH_MICROSOFT).unwrap();
    let ServiceConfig::WebMail(smtp) = &microsoft.config.service else { panic!() };
    let Some(SmtpOAuth::Microsoft(oauth)) = &smtp.oauth else { panic!("{:?}", smtp.oauth) };
    assert_eq!((oauth.auth, oauth.section), (MicrosoftAuth::Application, "web_mail.oauth"));
    assert_eq!(oauth.field(super::MicrosoftKey::Tenant).name(), "web_mail.oauth.tenant");
    assert!(smtp.password.is_none());
    assert!(microsoft.warnings.is_empty(), "{:?}", microsoft.warnings);

    let google = load(SMTP_OAUTH_GOOGLE).unwrap();
    let ServiceConfig::WebMail(smtp) = &google.config.service else { panic!() };
    let Some(SmtpOAuth::Google(oauth)) = &smtp.oauth else { panic!() };
    assert_eq!(oauth.token_uri.as_str(), "https://oauth2.googleapis.com/token");
    assert_eq!(oauth.refresh_token.as_ref().unwrap().expose(), "sentinel-refresh");

    let password = load(WEB_MAIL).unwrap();
    let ServiceConfig::WebMail(smtp) = &password.config.service else { panic!() };
    assert!(smtp.oauth.is_none());
}

#[test]
fn web_mail_oauth_fields() {
    assert_error(
        &with(SMTP_OAUTH_MICROSOFT, "auth", Some("\"token\"")),
        "web_mail.auth",
        "\"password\" (the default) or \"oauth\"",
    );
    let no_section = SMTP_OAUTH_MICROSOFT.split("[web_mail.oauth]").next().unwrap();
    assert_error(no_section, "web_mail.oauth", "needs a [web_mail.oauth] section");
    assert_error(&with(SMTP_OAUTH_MICROSOFT, "username", None), "web_mail.username", "auth = \"oauth\" needs username");
    let with_password =
        no_section.to_owned() + "password_env = \"MAILROOM_PASSWORD\"\n" + &SMTP_OAUTH_MICROSOFT[no_section.len()..];
    assert_error(&with_password, "web_mail.password", "not a password");
    assert_error(&with(SMTP_OAUTH_MICROSOFT, "provider", None), "web_mail.oauth.provider", "is missing");
    assert_error(&with(SMTP_OAUTH_MICROSOFT, "tenant", Some("\"nope\"")), "web_mail.oauth.tenant", "verified domain");
    assert_error(
        &with(SMTP_OAUTH_MICROSOFT, "client_secret_env", None),
        "web_mail.oauth.client_secret",
        "auth = \"application\" needs",
    );
    assert_error(
        &with(SMTP_OAUTH_MICROSOFT, "clientid", Some("\"x\"")),
        "web_mail.oauth",
        "did you mean \"client_id\"",
    );
    assert_error(
        &with(SMTP_OAUTH_GOOGLE, "client_id", Some("\"abc\"")),
        "web_mail.oauth.client_id",
        "apps.googleusercontent.com",
    );
    assert_error(
        &with(SMTP_OAUTH_GOOGLE, "refresh_token_env", None),
        "web_mail.oauth.refresh_token_env",
        "mailroom connect google",
    );
    assert_error(&with(SMTP_OAUTH_GOOGLE, "tenant", Some("\"x.com\"")), "web_mail.oauth", "unknown setting \"tenant\"");
    assert_error(
        &with(SMTP_OAUTH_GOOGLE, "enable_ssl", Some("false")),
        "web_mail.enable_ssl",
        "access token unencrypted",
    );
    let password_with_oauth = with(SMTP_OAUTH_GOOGLE, "auth", None).replace(
        "username = \"erp@company.com\"",
        "username = \"erp@company.com\"\npassword_env = \"MAILROOM_PASSWORD\"",
    );
    assert!(
        warnings(&password_with_oauth).iter().any(|w| w.field == "web_mail.oauth" && w.message.contains("ignored"))
    );
}

#[test]
fn inline_secrets_warn_and_ignored_sections_warn() {
    let inline = with(WEB_MAIL, "password_env", None) + "\npassword = \"inline-secret\"";
    let warns = warnings(&inline);
    assert!(warns.iter().any(|w| w.field == "web_mail.password" && w.message.contains("clear text")));
    assert!(warns.iter().all(|w| !w.message.contains("inline-secret")));
    let extra = format!("{WEB_MAIL}\n[exchange]\ndomain = \"x\"");
    assert!(warnings(&extra).iter().any(|w| w.field == "exchange" && w.message.contains("ignored")));
}

#[test]
fn syntax_errors_give_line_and_column() {
    match load("service = \"web_mail\"\nport = = 5\n") {
        Err(ConfigProblems::Syntax { line, .. }) => assert_eq!(line, Some(2)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_declared_field_is_reachable() {
    // Each FIELDS entry must be reported by some input; guards against typos in field names.
    for field in FIELDS {
        let (section, key) = field.split_once('.').unwrap_or(("", field));
        super::load::FIELDS.iter().find(|f| *f == field).unwrap();
        assert!(
            !key.is_empty()
                && (section.is_empty() || ["web_mail", "exchange", "email_services", "outbox"].contains(&section)),
            "{field}"
        );
    }
}

proptest! {
    #[test]
    fn secrets_never_appear_in_issues(secret in "[A-Za-z0-9]{12,24}", port in -5i64..70000) {
        let text = format!("service = \"web_mail\"\nemail_address = \"erp@company.com\"\n[web_mail]\nserver = \"mail.example.com\"\nport = {port}\nenable_ssl = false\nusername = \"u\"\npassword = \"{secret}\"\n");
        let rendered = match CompanyEmail::from_toml(&text, &env) {
            Ok(loaded) => format!("{:?} {:?}", loaded.config, loaded.warnings),
            Err(problems) => format!("{problems} {problems:?} {:?}", problems.first_error().report()),
        };
        prop_assert!(!rendered.contains(&secret));
    }

    #[test]
    fn loading_never_panics(text in "\\PC{0,200}") {
        let _ = CompanyEmail::from_toml(&text, &env);
    }

    #[test]
    fn any_valid_port_loads_and_any_invalid_one_is_named(port in -100_000i64..200_000) {
        let text = with(WEB_MAIL, "port", Some(&port.to_string()));
        let result = load(&text);
        if (1..=65535).contains(&port) {
            prop_assert!(result.is_ok());
        } else {
            let is_port_error = matches!(&result, Err(ConfigProblems::Invalid { errors, .. }) if errors.iter().any(|e| e.field == "web_mail.port"));
            prop_assert!(is_port_error);
        }
    }
}

#[test]
fn the_outbox_section_is_optional_and_every_key_is_checked() {
    assert_eq!(load(WEB_MAIL).unwrap().outbox, OutboxConfig::default());
    let full = format!(
        "{WEB_MAIL}\n[outbox]\nurl = \"postgres://mailroom@127.0.0.1/erp\"\nconcurrency = 8\nrate_per_minute = 30\ndaily_quota = 2000\nmax_attempts = 5\nlease_secs = 120\n"
    );
    let outbox = load(&full).unwrap().outbox;
    assert_eq!(outbox.url.as_deref(), Some("postgres://mailroom@127.0.0.1/erp"));
    assert_eq!(
        (outbox.concurrency, outbox.rate_per_minute, outbox.daily_quota, outbox.max_attempts, outbox.lease_secs),
        (Some(8), Some(30), Some(2000), Some(5), Some(120))
    );
    let sqlite = format!("{WEB_MAIL}\n[outbox]\nurl = \"sqlite:outbox.db\"\n");
    assert_eq!(load(&sqlite).unwrap().outbox.url.as_deref(), Some("sqlite:outbox.db"));

    let outbox_with = |body: &str| format!("{WEB_MAIL}\n[outbox]\n{body}\n");
    assert_error(&outbox_with("url = \"mysql://x/y\""), "outbox.url", "sqlite:");
    assert_error(&outbox_with("url = \"sqlite:\""), "outbox.url", "postgres://");
    assert_error(&outbox_with("url = 5"), "outbox.url", "text in quotes");
    assert_error(&outbox_with("concurrency = 0"), "outbox.concurrency", "out of range");
    assert_error(&outbox_with("rate_per_minute = \"30\""), "outbox.rate_per_minute", "without quotes");
    assert_error(&outbox_with("daily_quota = -1"), "outbox.daily_quota", "out of range");
    assert_error(&outbox_with("max_attempts = 1000"), "outbox.max_attempts", "out of range");
    assert_error(&outbox_with("lease_secs = 1.5"), "outbox.lease_secs", "whole number");
    assert_error(&outbox_with("rate_per_minut = 30"), "outbox", "did you mean \"rate_per_minute\"");
    assert_error(&format!("outbox = 3\n{WEB_MAIL}"), "outbox", "[outbox] section");
    // Every problem at once, each with its dotted name.
    let all = errors(&outbox_with("concurrency = 0\nmax_attempts = 0\nlease_secs = 0"));
    let fields: Vec<_> = all.iter().map(|e| e.field).collect();
    assert_eq!(fields, ["outbox.concurrency", "outbox.max_attempts", "outbox.lease_secs"]);
}
