//! Every config field as a typed name: the one list the loader's known keys, [`super::FIELDS`] and the dotted names in errors come from.

use crate::error::ServiceKind;

/// A table of keys the loader accepts: the top level, or one section as its provider reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeySet {
    /// The top level of the file.
    Top,
    /// `[web_mail]`.
    WebMail,
    /// `[web_mail.oauth]` with `provider = "gmail"`.
    WebMailOAuthGoogle,
    /// `[web_mail.oauth]` with `provider = "microsoft"`.
    WebMailOAuthMicrosoft,
    /// `[exchange]`.
    Exchange,
    /// `[email_services]` with `provider = "gmail"` (the default).
    Gmail,
    /// `[email_services]` with `provider = "microsoft"`.
    Graph,
    /// `[outbox]`.
    Outbox,
}

macro_rules! config_fields {
    ($( $variant:ident = $name:literal in [$($set:ident),+] ),+ $(,)?) => {
        /// One config field (CONTRACT: its dotted [`Field::name`] is the JSON `field` value).
        ///
        /// ```
        /// use mailroom_core::config::Field;
        /// assert_eq!(Field::WebMailPasswordEnv.name(), "web_mail.password_env");
        /// assert_eq!(Field::from_name("exchange.domain"), Some(Field::ExchangeDomain));
        /// assert_eq!(Field::WebMailOauthClientId.key(), "client_id");
        /// assert_eq!(Field::WebMailOauthClientId.section(), "web_mail.oauth");
        /// ```
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Field {
            $(
                #[doc = concat!("`", $name, "`")]
                $variant,
            )+
        }

        impl Field {
            /// Every field, in the order of DESIGN.md §4.
            pub const ALL: [Field; [$(stringify!($variant)),+].len()] = [$(Field::$variant),+];

            /// Every dotted name, in the order of [`Field::ALL`].
            pub const NAMES: [&'static str; [$(stringify!($variant)),+].len()] = [$($name),+];

            /// The dotted name, e.g. `web_mail.port`.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Field::$variant => $name,)+
                }
            }

            /// The loader's key tables this field is a key of.
            pub(crate) const fn key_sets(self) -> &'static [KeySet] {
                match self {
                    $(Field::$variant => &[$(KeySet::$set),+],)+
                }
            }
        }
    };
}

config_fields! {
    Service = "service" in [Top],
    EmailAddress = "email_address" in [Top],
    DisplayName = "display_name" in [Top],
    WebMail = "web_mail" in [Top],
    WebMailServer = "web_mail.server" in [WebMail],
    WebMailPort = "web_mail.port" in [WebMail],
    WebMailEnableSsl = "web_mail.enable_ssl" in [WebMail],
    WebMailTls = "web_mail.tls" in [WebMail],
    WebMailUsername = "web_mail.username" in [WebMail],
    WebMailPassword = "web_mail.password" in [WebMail],
    WebMailPasswordEnv = "web_mail.password_env" in [WebMail],
    WebMailCaFile = "web_mail.ca_file" in [WebMail],
    WebMailTimeoutSecs = "web_mail.timeout_secs" in [WebMail],
    WebMailAllowPlaintextAuth = "web_mail.allow_plaintext_auth" in [WebMail],
    WebMailAuth = "web_mail.auth" in [WebMail],
    WebMailOauth = "web_mail.oauth" in [WebMail],
    WebMailOauthProvider = "web_mail.oauth.provider" in [WebMailOAuthMicrosoft, WebMailOAuthGoogle],
    WebMailOauthTenant = "web_mail.oauth.tenant" in [WebMailOAuthMicrosoft],
    WebMailOauthClientId = "web_mail.oauth.client_id" in [WebMailOAuthMicrosoft, WebMailOAuthGoogle],
    WebMailOauthClientSecret = "web_mail.oauth.client_secret" in [WebMailOAuthMicrosoft, WebMailOAuthGoogle],
    WebMailOauthClientSecretEnv = "web_mail.oauth.client_secret_env" in [WebMailOAuthMicrosoft, WebMailOAuthGoogle],
    WebMailOauthAuth = "web_mail.oauth.auth" in [WebMailOAuthMicrosoft],
    WebMailOauthRefreshToken = "web_mail.oauth.refresh_token" in [WebMailOAuthMicrosoft, WebMailOAuthGoogle],
    WebMailOauthRefreshTokenEnv = "web_mail.oauth.refresh_token_env" in [WebMailOAuthMicrosoft, WebMailOAuthGoogle],
    WebMailOauthTokenFile = "web_mail.oauth.token_file" in [WebMailOAuthMicrosoft, WebMailOAuthGoogle],
    WebMailOauthAuthority = "web_mail.oauth.authority" in [WebMailOAuthMicrosoft],
    WebMailOauthAuthUri = "web_mail.oauth.auth_uri" in [WebMailOAuthGoogle],
    WebMailOauthTokenUri = "web_mail.oauth.token_uri" in [WebMailOAuthGoogle],
    Exchange = "exchange" in [Top],
    ExchangeUri = "exchange.uri" in [Exchange],
    ExchangeDomain = "exchange.domain" in [Exchange],
    ExchangeUsername = "exchange.username" in [Exchange],
    ExchangePassword = "exchange.password" in [Exchange],
    ExchangePasswordEnv = "exchange.password_env" in [Exchange],
    ExchangeAuth = "exchange.auth" in [Exchange],
    ExchangeClientId = "exchange.client_id" in [Exchange],
    ExchangeClientSecret = "exchange.client_secret" in [Exchange],
    ExchangeClientSecretEnv = "exchange.client_secret_env" in [Exchange],
    ExchangeTenant = "exchange.tenant" in [Exchange],
    ExchangeCaFile = "exchange.ca_file" in [Exchange],
    ExchangeTimeoutSecs = "exchange.timeout_secs" in [Exchange],
    EmailServices = "email_services" in [Top],
    EmailServicesProvider = "email_services.provider" in [Graph, Gmail],
    EmailServicesClientId = "email_services.client_id" in [Graph, Gmail],
    EmailServicesClientSecret = "email_services.client_secret" in [Graph, Gmail],
    EmailServicesClientSecretEnv = "email_services.client_secret_env" in [Graph, Gmail],
    EmailServicesRefreshToken = "email_services.refresh_token" in [Graph, Gmail],
    EmailServicesRefreshTokenEnv = "email_services.refresh_token_env" in [Graph, Gmail],
    EmailServicesTokenFile = "email_services.token_file" in [Graph, Gmail],
    EmailServicesAuthUri = "email_services.auth_uri" in [Gmail],
    EmailServicesTokenUri = "email_services.token_uri" in [Gmail],
    EmailServicesApiBase = "email_services.api_base" in [Graph, Gmail],
    EmailServicesTimeoutSecs = "email_services.timeout_secs" in [Graph, Gmail],
    EmailServicesTenant = "email_services.tenant" in [Graph],
    EmailServicesAuth = "email_services.auth" in [Graph],
    EmailServicesAuthority = "email_services.authority" in [Graph],
    Outbox = "outbox" in [Top],
    OutboxUrl = "outbox.url" in [Outbox],
    OutboxConcurrency = "outbox.concurrency" in [Outbox],
    OutboxRatePerMinute = "outbox.rate_per_minute" in [Outbox],
    OutboxDailyQuota = "outbox.daily_quota" in [Outbox],
    OutboxMaxAttempts = "outbox.max_attempts" in [Outbox],
    OutboxLeaseSecs = "outbox.lease_secs" in [Outbox],
}

impl Field {
    /// The field with this dotted name.
    pub fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|field| field.name() == name)
    }

    /// The key inside its section (`client_id` for `web_mail.oauth.client_id`).
    pub fn key(self) -> &'static str {
        self.name().rsplit_once('.').map_or(self.name(), |(_, key)| key)
    }

    /// The dotted section it is in (`web_mail.oauth`), empty for a top-level key.
    pub fn section(self) -> &'static str {
        self.name().rsplit_once('.').map_or("", |(section, _)| section)
    }

    /// The service whose settings this field is part of (a section's own name included:
    /// `exchange` is Exchange); `None` for the top-level keys and `[outbox]`.
    pub fn service(self) -> Option<ServiceKind> {
        match self.name().split('.').next() {
            Some("web_mail") => Some(ServiceKind::WebMail),
            Some("exchange") => Some(ServiceKind::Exchange),
            Some("email_services") => Some(ServiceKind::EmailServices),
            _ => None,
        }
    }

    /// The field `key` of the dotted `section` (`""` for the top level).
    pub fn of(section: &str, key: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|field| field.section() == section && field.key() == key)
    }

    /// The keys of one of the loader's tables, in [`Field::ALL`] order.
    pub(crate) fn keys_of(set: KeySet) -> Vec<&'static str> {
        Field::ALL.into_iter().filter(|field| field.key_sets().contains(&set)).map(Field::key).collect()
    }
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl serde::Serialize for Field {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_each_is_found_by_its_section_and_key() {
        for field in Field::ALL {
            assert_eq!(Field::from_name(field.name()), Some(field));
            assert_eq!(Field::of(field.section(), field.key()), Some(field), "{field}");
        }
    }

    #[test]
    fn the_key_tables_are_the_ones_the_design_lists() {
        assert_eq!(
            Field::keys_of(KeySet::Top),
            ["service", "email_address", "display_name", "web_mail", "exchange", "email_services", "outbox"]
        );
        assert_eq!(
            Field::keys_of(KeySet::WebMailOAuthGoogle),
            [
                "provider",
                "client_id",
                "client_secret",
                "client_secret_env",
                "refresh_token",
                "refresh_token_env",
                "token_file",
                "auth_uri",
                "token_uri"
            ]
        );
        assert!(Field::keys_of(KeySet::Graph).contains(&"tenant"));
        assert!(!Field::keys_of(KeySet::Gmail).contains(&"tenant"));
        // Every section key is in some table, and a section's own field is a top-level key.
        for field in Field::ALL {
            assert!(!field.key_sets().is_empty());
            if field.section().is_empty() {
                assert_eq!(field.key_sets(), [KeySet::Top]);
            }
        }
    }
}
