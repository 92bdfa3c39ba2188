//! `Secret`: a password, token or client secret that never shows itself in Debug, Display or serde output.

use std::fmt;

/// What every redacted rendering of a [`Secret`] prints instead of the value.
pub const REDACTED: &str = "[redacted]";

/// A secret string (password, OAuth token, client secret).
///
/// `Debug`, `Display` and `Serialize` print [`REDACTED`]; the value is reachable only
/// through [`Secret::expose`], so every place that uses it is greppable.
///
/// ```
/// use mailroom_core::Secret;
/// let password = Secret::new("hunter2");
/// assert_eq!(format!("{password:?}"), "Secret([redacted])");
/// assert_eq!(password.to_string(), "[redacted]");
/// assert_eq!(password.expose(), "hunter2");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value itself. Call it only where the value must go on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({REDACTED})")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn no_rendering_reveals_the_value(value in "[a-zA-Z0-9!@#$%^&*]{6,40}") {
            let secret = Secret::new(value.clone());
            let debug = format!("{secret:?} {secret:#?}");
            let display = secret.to_string();
            let json = serde_json::to_string(&secret).unwrap();
            for rendered in [debug, display, json] {
                prop_assert!(!rendered.contains(&value), "{rendered} reveals the secret");
            }
            prop_assert_eq!(secret.expose(), value.as_str());
        }
    }

    #[test]
    fn a_struct_holding_a_secret_debugs_without_it() {
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Holder {
            password: Secret,
        }
        let holder = Holder { password: Secret::new("sentinel-7f3a") };
        assert!(!format!("{holder:?}").contains("sentinel-7f3a"));
    }
}
