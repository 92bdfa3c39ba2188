//! Provider presets: well-known SMTP services recognised from the server name, with their settings and provider-specific advice.

/// A mail provider mailroom knows the settings and quirks of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Provider {
    /// Google Workspace / Gmail (`smtp.gmail.com`).
    Gmail,
    /// Microsoft 365 / Exchange Online (`smtp.office365.com`).
    Office365,
    /// Outlook.com / Hotmail consumer accounts (`smtp-mail.outlook.com`).
    OutlookCom,
    /// Yahoo Mail (`smtp.mail.yahoo.com`).
    Yahoo,
    /// iCloud Mail (`smtp.mail.me.com`).
    ICloud,
    /// Zoho Mail (`smtp.zoho.com`, `smtppro.zoho.com`, regional variants).
    Zoho,
    /// Fastmail (`smtp.fastmail.com`).
    Fastmail,
    /// Amazon SES SMTP interface (`email-smtp.<region>.amazonaws.com`).
    AmazonSes,
}

/// How a provider expects SMTP submission to be configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Preset {
    /// Which provider.
    pub provider: Provider,
    /// The name people know it by.
    pub name: &'static str,
    /// The canonical outgoing server.
    pub server: &'static str,
    /// STARTTLS submission port (587), if offered.
    pub starttls_port: Option<u16>,
    /// Implicit-TLS port (465), if offered.
    pub implicit_tls_port: Option<u16>,
    /// What the password field must hold for this provider.
    pub password_advice: &'static str,
}

const PRESETS: &[Preset] = &[
    Preset {
        provider: Provider::Gmail,
        name: "Gmail",
        server: "smtp.gmail.com",
        starttls_port: Some(587),
        implicit_tls_port: Some(465),
        password_advice: "Gmail accepts only a 16-character App Password for SMTP: Google Account → Security → turn on 2-Step Verification → App passwords → generate one for \"Mail\" → paste it (without spaces) into the password field.",
    },
    Preset {
        provider: Provider::Office365,
        name: "Microsoft 365",
        server: "smtp.office365.com",
        starttls_port: Some(587),
        implicit_tls_port: None,
        password_advice: "Microsoft 365 needs the mailbox's own password with the full email address as user name, and SMTP AUTH enabled for that mailbox (Microsoft 365 admin center → Users → Active users → the user → Mail → Manage email apps → Authenticated SMTP).",
    },
    Preset {
        provider: Provider::OutlookCom,
        name: "Outlook.com",
        server: "smtp-mail.outlook.com",
        starttls_port: Some(587),
        implicit_tls_port: None,
        password_advice: "Outlook.com accounts with two-step verification need an app password: account.microsoft.com → Security → Advanced security options → App passwords → create a new app password.",
    },
    Preset {
        provider: Provider::Yahoo,
        name: "Yahoo Mail",
        server: "smtp.mail.yahoo.com",
        starttls_port: Some(587),
        implicit_tls_port: Some(465),
        password_advice: "Yahoo Mail needs an app password: Account Info → Account Security → Generate app password → paste it into the password field.",
    },
    Preset {
        provider: Provider::ICloud,
        name: "iCloud Mail",
        server: "smtp.mail.me.com",
        starttls_port: Some(587),
        implicit_tls_port: None,
        password_advice: "iCloud Mail needs an app-specific password: appleid.apple.com → Sign-In and Security → App-Specific Passwords → generate → paste it into the password field.",
    },
    Preset {
        provider: Provider::Zoho,
        name: "Zoho Mail",
        server: "smtp.zoho.com",
        starttls_port: Some(587),
        implicit_tls_port: Some(465),
        password_advice: "Zoho Mail with two-factor authentication needs an application-specific password: Zoho Accounts → Security → App Passwords → generate → paste it into the password field.",
    },
    Preset {
        provider: Provider::Fastmail,
        name: "Fastmail",
        server: "smtp.fastmail.com",
        starttls_port: Some(587),
        implicit_tls_port: Some(465),
        password_advice: "Fastmail needs an app password with SMTP access: Settings → Privacy & Security → Integrations → New app password → access: SMTP.",
    },
    Preset {
        provider: Provider::AmazonSes,
        name: "Amazon SES",
        server: "email-smtp.us-east-1.amazonaws.com",
        starttls_port: Some(587),
        implicit_tls_port: Some(465),
        password_advice: "Amazon SES needs SMTP credentials, not IAM access keys: SES console → SMTP settings → Create SMTP credentials → use that SMTP user name and password; the sender address must be a verified identity.",
    },
];

impl Provider {
    /// Recognises a provider from an SMTP server name (case-insensitive).
    ///
    /// ```
    /// use mailroom_core::Provider;
    /// assert_eq!(Provider::detect("SMTP.gmail.com"), Some(Provider::Gmail));
    /// assert_eq!(Provider::detect("email-smtp.eu-west-1.amazonaws.com"), Some(Provider::AmazonSes));
    /// assert_eq!(Provider::detect("mail.example.com"), None);
    /// ```
    pub fn detect(server: &str) -> Option<Provider> {
        let host = server.trim().trim_end_matches('.').to_ascii_lowercase();
        let provider = match host.as_str() {
            "smtp.gmail.com" | "smtp.googlemail.com" | "smtp-relay.gmail.com" => Provider::Gmail,
            "smtp.office365.com" | "smtp-legacy.office365.com" => Provider::Office365,
            "smtp-mail.outlook.com" | "smtp.live.com" => Provider::OutlookCom,
            "smtp.mail.yahoo.com" => Provider::Yahoo,
            "smtp.mail.me.com" => Provider::ICloud,
            "smtp.fastmail.com" => Provider::Fastmail,
            _ if host.starts_with("email-smtp.") && host.ends_with(".amazonaws.com") => Provider::AmazonSes,
            _ if host.ends_with(".zoho.com")
                || host.ends_with(".zoho.eu")
                || host.ends_with(".zoho.in")
                || host.ends_with(".zoho.com.au") =>
            {
                Provider::Zoho
            }
            _ => return None,
        };
        Some(provider)
    }

    /// This provider's preset.
    pub fn preset(self) -> &'static Preset {
        PRESETS.iter().find(|preset| preset.provider == self).expect("every provider has a preset")
    }

    /// Every preset, in a stable order.
    pub fn presets() -> &'static [Preset] {
        PRESETS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_is_detected_from_its_own_server() {
        for preset in Provider::presets() {
            assert_eq!(Provider::detect(preset.server), Some(preset.provider), "{}", preset.name);
            assert_eq!(preset.provider.preset().name, preset.name);
        }
    }
}
