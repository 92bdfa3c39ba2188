//! The way out of a dead end: when Microsoft 365 refuses EWS or SMTP passwords, or Gmail refuses a password, the remediation gains a ready config snippet for the same sender that keeps working.

use crate::config::{CompanyEmail, ServiceConfig};
use crate::error::{ErrorKind, SendError};
use crate::provider::Provider;

/// The Application (client) ID placeholder of the snippets.
const CLIENT_ID_PLACEHOLDER: &str = "00000000-0000-0000-0000-000000000000";

/// Adds the way out to `error` when it is one of the dead ends: Exchange Online refusing EWS,
/// Microsoft 365 refusing SMTP basic authentication (`535 5.7.139`, `550 5.7.30`), Gmail
/// refusing a password. Other errors come back unchanged.
///
/// ```
/// use mailroom_core::config::{CompanyEmail, Field};
/// use mailroom_core::{ErrorKind, SendError, ServerReply, add_way_out};
/// let toml = r#"
///     service = "web_mail"
///     email_address = "erp@company.com"
///     [web_mail]
///     server = "smtp.office365.com"
///     port = 587
///     username = "erp@company.com"
///     password_env = "P"
/// "#;
/// let config = CompanyEmail::from_toml(toml, &|_| Some("pw".into())).unwrap().config;
/// let refused = SendError::new(ErrorKind::AuthDisabled, "refused")
///     .with_field(Field::WebMailAuth)
///     .with_reply(ServerReply::smtp(550, ["5.7.30 Basic authentication is not supported for Client Submission."]));
/// let advice = add_way_out(&config, refused).remediation().join("\n");
/// assert!(advice.contains("auth = \"oauth\""));
/// assert!(advice.contains("provider = \"microsoft\""));
/// ```
pub fn add_way_out(config: &CompanyEmail, error: SendError) -> SendError {
    let enhanced = error.server_reply().and_then(|reply| reply.enhanced.clone()).unwrap_or_default();
    let sender = Sender::of(config);
    match (&config.service, error.kind()) {
        (ServiceConfig::WebMail(smtp), ErrorKind::AuthDisabled)
            if smtp.oauth.is_none()
                && (smtp.provider() == Some(Provider::Office365) || matches!(enhanced.as_str(), "5.7.30" | "5.7.139")) =>
        {
            if enhanced == "5.7.139" {
                error.with_hint(format!(
                    "SMTP AUTH is off for this tenant, and XOAUTH2 on SMTP needs it too. Microsoft Graph needs no SMTP AUTH: register an app in Entra admin centre with the Mail.Send application permission (README: Microsoft 365), then use\n{}",
                    sender.graph(None)
                ))
            } else {
                error
                    .with_hint(format!(
                        "Microsoft 365 no longer accepts passwords on SMTP (basic authentication is retired for Client Submission); OAuth keeps working. On the same server, with an Entra app that has SMTP.SendAsApp (README: Microsoft 365):\n{}",
                        sender.smtp_oauth_microsoft(&smtp.server, smtp.port)
                    ))
                    .with_hint(format!("Or through Microsoft Graph (Mail.Send application permission):\n{}", sender.graph(None)))
                    .with_complete_hints()
            }
        }
        (ServiceConfig::Exchange(ews), ErrorKind::AuthDisabled) => {
            // A loopback test server or a proxy hides the host: on-premises servers then read the
            // advice as conditional.
            let online = is_exchange_online(ews.uri.host_str());
            let condition = if online { "" } else { "If this is Exchange Online (Microsoft 365): " };
            let client_id = ews.client_id.as_deref();
            let allow = format!(
                "{}ntil EWS is removed from Exchange Online on 1 April 2027, an administrator can let this app through: Set-OrganizationConfig -EwsEnabled $true -EwsAllowedAppIDs @{{Add=\"{}\"}} (Exchange Online PowerShell; apps not on EWSAllowedAppIDs are blocked since 1 October 2026).",
                if online { "U" } else { "If this is Exchange Online (Microsoft 365): u" },
                client_id.unwrap_or("<Application (client) ID>")
            );
            error
                .with_hint(format!(
                    "{condition}Exchange Online no longer serves EWS to this app. The way that keeps working is Microsoft Graph, with the Mail.Send application permission (README: Microsoft 365):\n{}",
                    sender.graph(Some((ews.tenant.as_deref(), client_id)))
                ))
                .with_hint(allow)
        }
        (ServiceConfig::WebMail(smtp), ErrorKind::AuthFailed | ErrorKind::AppPasswordRequired)
            if smtp.oauth.is_none() && (smtp.provider() == Some(Provider::Gmail) || is_google_reply(&error)) =>
        {
            error.with_hint(format!(
                "Or sign in with OAuth instead of a password (no App Password needed): create a Desktop-app OAuth client in Google Cloud console, then use\n{}\nand run `mailroom connect google --config FILE`; or use Email Services (the Gmail API):\n{}",
                sender.smtp_oauth_google(&smtp.server, smtp.port),
                sender.gmail()
            ))
        }
        _ => error,
    }
}

/// Whether the reply is Google's (its texts end in `gsmtp` or link to support.google.com),
/// for relays whose host name is not smtp.gmail.com.
fn is_google_reply(error: &SendError) -> bool {
    error.server_reply().is_some_and(|reply| reply.text.contains("gsmtp") || reply.text.contains("support.google.com"))
}

fn is_exchange_online(host: Option<&str>) -> bool {
    let host = host.unwrap_or_default().to_ascii_lowercase();
    ["office365.com", "outlook.com", "office.com"]
        .iter()
        .any(|domain| host == *domain || host.ends_with(&format!(".{domain}")))
}

/// The sender's lines of a snippet, TOML-quoted.
struct Sender {
    header: String,
    domain: String,
    address: String,
}

impl Sender {
    fn of(config: &CompanyEmail) -> Sender {
        let address = config.sender.email.to_string();
        let mut header = String::new();
        let quoted = |text: &str| toml::Value::String(text.to_owned()).to_string();
        header.push_str(&format!("email_address = {}\n", quoted(&address)));
        if let Some(name) = &config.sender.name {
            header.push_str(&format!("display_name = {}\n", quoted(name)));
        }
        Sender { header, domain: config.sender.email.domain().to_owned(), address }
    }

    fn graph(&self, ews: Option<(Option<&str>, Option<&str>)>) -> String {
        let (tenant, client_id) = ews.unwrap_or((None, None));
        format!(
            "service = \"email_services\"\n{}[email_services]\nprovider = \"microsoft\"\ntenant = {}\nclient_id = \"{}\"\nclient_secret_env = \"MAILROOM_MS_SECRET\"\nauth = \"application\"",
            self.header,
            toml::Value::String(tenant.unwrap_or(&self.domain).to_owned()),
            client_id.unwrap_or(CLIENT_ID_PLACEHOLDER)
        )
    }

    fn smtp_oauth_microsoft(&self, server: &str, port: u16) -> String {
        format!(
            "service = \"web_mail\"\n{}[web_mail]\nserver = {}\nport = {port}\nenable_ssl = true\nusername = {}\nauth = \"oauth\"\n[web_mail.oauth]\nprovider = \"microsoft\"\ntenant = {}\nclient_id = \"{CLIENT_ID_PLACEHOLDER}\"\nclient_secret_env = \"MAILROOM_MS_SECRET\"\nauth = \"application\"",
            self.header,
            toml::Value::String(server.to_owned()),
            toml::Value::String(self.address.clone()),
            toml::Value::String(self.domain.clone()),
        )
    }

    fn smtp_oauth_google(&self, server: &str, port: u16) -> String {
        format!(
            "service = \"web_mail\"\n{}[web_mail]\nserver = {}\nport = {port}\nenable_ssl = true\nusername = {}\nauth = \"oauth\"\n[web_mail.oauth]\nprovider = \"gmail\"\nclient_id = \"1234-abc.apps.googleusercontent.com\"\nclient_secret_env = \"MAILROOM_GOOGLE_SECRET\"\ntoken_file = \"google-token.json\"",
            self.header,
            toml::Value::String(server.to_owned()),
            toml::Value::String(self.address.clone()),
        )
    }

    fn gmail(&self) -> String {
        format!(
            "service = \"email_services\"\n{}[email_services]\nprovider = \"gmail\"\nclient_id = \"1234-abc.apps.googleusercontent.com\"\nclient_secret_env = \"MAILROOM_GOOGLE_SECRET\"\ntoken_file = \"google-token.json\"",
            self.header
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ServerReply;

    fn config(text: &str) -> CompanyEmail {
        CompanyEmail::from_toml(text, &|_| Some("secret".into())).unwrap().config
    }

    const O365: &str = "service = \"web_mail\"\nemail_address = \"erp@company.com\"\ndisplay_name = \"Company \\\"ERP\\\"\"\n[web_mail]\nserver = \"smtp.office365.com\"\nport = 587\nusername = \"erp@company.com\"\npassword_env = \"P\"\n";

    /// Every snippet the advice offers loads as a config (with its secrets provided).
    fn snippets_load(advice: &[String]) -> usize {
        let mut count = 0;
        for step in advice {
            for (index, _) in step.match_indices("service = ") {
                let end = step[index..].find("\nand run").map_or(step.len(), |e| index + e);
                let end = step[index..end].find("\nor use").map_or(end, |e| index + e);
                let snippet = &step[index..end];
                CompanyEmail::from_toml(snippet, &|_| Some("secret".into()))
                    .unwrap_or_else(|e| panic!("{e}\n{snippet}"));
                count += 1;
            }
        }
        count
    }

    #[test]
    fn basic_auth_retired_offers_oauth_on_the_same_server_and_graph() {
        let refused = SendError::new(ErrorKind::AuthDisabled, "x").with_reply(ServerReply::smtp(
            550,
            ["5.7.30 Basic authentication is not supported for Client Submission."],
        ));
        let advice = add_way_out(&config(O365), refused).remediation();
        assert_eq!(advice.len(), 2, "only the way out, not 'enable SMTP AUTH': {advice:?}");
        assert_eq!(snippets_load(&advice), 2);
        assert!(advice[0].contains("server = \"smtp.office365.com\"") && advice[0].contains("display_name = "));
    }

    #[test]
    fn smtp_auth_disabled_offers_graph() {
        let refused = SendError::new(ErrorKind::AuthDisabled, "x")
            .with_reply(ServerReply::smtp(535, ["5.7.139 Authentication unsuccessful"]));
        let advice = add_way_out(&config(O365), refused).remediation();
        assert!(advice[0].contains("provider = \"microsoft\"") && advice[0].contains("tenant = \"company.com\""));
        assert_eq!(snippets_load(&advice), 1);
    }

    #[test]
    fn exchange_online_refusal_offers_graph_and_names_ews_allowed_app_ids() {
        let text = "service = \"exchange\"\nemail_address = \"erp@company.com\"\n[exchange]\nuri = \"https://outlook.office365.com/EWS/Exchange.asmx\"\ndomain = \"company.com\"\nusername = \"erp\"\nauth = \"oauth\"\nclient_id = \"11111111-2222-3333-4444-555555555555\"\ntenant = \"company.onmicrosoft.com\"\nclient_secret_env = \"S\"\n";
        let advice = add_way_out(&config(text), SendError::new(ErrorKind::AuthDisabled, "403")).remediation();
        assert!(advice[0].contains("client_id = \"11111111-2222-3333-4444-555555555555\""));
        assert!(advice[0].contains("tenant = \"company.onmicrosoft.com\""));
        assert!(advice[1].contains("EwsAllowedAppIDs") && advice[1].contains("1 April 2027"));
        assert_eq!(snippets_load(&advice), 1);
        assert!(advice[0].starts_with("Exchange Online no longer serves EWS"), "{}", advice[0]);
        let elsewhere = text.replace("outlook.office365.com", "127.0.0.1");
        let advice = add_way_out(&config(&elsewhere), SendError::new(ErrorKind::AuthDisabled, "403")).remediation();
        assert!(advice[0].starts_with("If this is Exchange Online (Microsoft 365): Exchange Online"), "{}", advice[0]);
    }

    #[test]
    fn gmail_password_refusals_offer_oauth() {
        let text = O365.replace("smtp.office365.com", "smtp.gmail.com");
        let advice = add_way_out(&config(&text), SendError::new(ErrorKind::AppPasswordRequired, "534")).remediation();
        assert!(advice.iter().any(|step| step.contains("provider = \"gmail\"")));
        assert_eq!(snippets_load(&advice), 2);
        let untouched = add_way_out(&config(&text), SendError::new(ErrorKind::RecipientRejected, "550")).remediation();
        assert!(!untouched.join("\n").contains("service = "));
    }
}
