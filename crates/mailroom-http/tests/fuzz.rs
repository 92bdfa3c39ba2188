//! Fuzz targets for the token-reply parsers every HTTP driver shares (proptest, no nightly): arbitrary bytes, and captured Google and Microsoft token replies with bytes or values changed, go through `Token::parse` (success bodies, `id_token` claims included), `TokenEndpointError::parse` (refusals), `IdClaims::from_jwt` and the bounded `Retry-After` / `expires_in` / `BackOffMilliseconds` readers without a panic, and every expiry stays within its bound.
//!
//! Case counts are fixed so CI stays well under a minute; `MAILROOM_FUZZ_CASES=100000 cargo
//! test -p mailroom-http --test fuzz` runs longer. Failures proptest finds are saved under
//! `proptest-regressions/` and replayed first on every later run.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use mailroom_http::{IdClaims, MAX_BACKOFF, MAX_TOKEN_LIFETIME, Token, TokenEndpointError};
use proptest::prelude::*;
use serde_json::Value;

fn cases(default: u32) -> ProptestConfig {
    ProptestConfig::with_cases(
        std::env::var("MAILROOM_FUZZ_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(default),
    )
}

/// Every captured token reply (`token_*.json`) of Google and Microsoft.
fn captured() -> Vec<Vec<u8>> {
    let mut replies = Vec::new();
    for provider in ["google", "microsoft"] {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures").join(provider);
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("token_") && name.ends_with(".json") {
                replies.push(std::fs::read(entry.path()).unwrap());
            }
        }
    }
    replies.sort();
    replies
}

/// A compact JWT whose payload is `payload`'s bytes.
fn jwt(payload: &[u8]) -> String {
    format!("e30.{}.sig", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload))
}

fn hostile_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        Just(Value::from(u64::MAX)),
        any::<f64>().prop_map(Value::from),
        Just(serde_json::from_str::<Value>("1e400").unwrap_or(Value::Null)),
        ".{0,30}".prop_map(Value::from),
        "[0-9]{18,40}".prop_map(Value::from),
        Just(Value::from("")),
        Just(Value::from("AADSTS")),
        Just(Value::from("ÄADSTS99999999999999999999999999: ä")),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(|bytes| Value::from(jwt(&bytes))),
        Just(Value::from(jwt(br#"{"email":"\u00e4@x","email_verified":"true","preferred_username":7}"#))),
        Just(Value::from("a.b.c.d")),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    proptest::sample::select(vec![
                        "access_token",
                        "token_type",
                        "expires_in",
                        "ext_expires_in",
                        "refresh_token",
                        "scope",
                        "id_token",
                        "error",
                        "error_description",
                        "error_codes",
                    ])
                    .prop_map(str::to_owned),
                    "[a-z_]{1,8}",
                ],
                inner,
                0..4,
            )
            .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// Replaces the value at a random place in `value` (walking down `picks`) with `replacement`.
fn replace_somewhere(value: &mut Value, picks: &[prop::sample::Index], replacement: Value) {
    let Some((pick, rest)) = picks.split_first() else {
        *value = replacement;
        return;
    };
    match value {
        Value::Object(map) if !map.is_empty() => {
            let key = pick.get(&map.keys().cloned().collect::<Vec<_>>()).clone();
            replace_somewhere(map.get_mut(&key).expect("a key of the map"), rest, replacement);
        }
        Value::Array(items) if !items.is_empty() => {
            let index = pick.index(items.len());
            replace_somewhere(&mut items[index], rest, replacement);
        }
        _ => *value = replacement,
    }
}

/// Reads `body` as a success reply and as a refusal; nothing may panic and every expiry is bounded.
fn exercise(status: u16, body: &[u8], retry_after: Option<&str>) {
    let issued = Instant::now();
    if let Some(token) = Token::parse(body) {
        assert!(!token.access.expose().is_empty(), "an empty access token is no token");
        let access = token.access_token(issued);
        if let Some(expires_at) = access.expires_at {
            assert!(expires_at.saturating_duration_since(issued) <= MAX_TOKEN_LIFETIME);
        }
        let _ = format!("{token:?}");
        if let Some(id) = &token.id {
            let _ = id.account();
        }
    }
    let refused = TokenEndpointError::parse(status, retry_after, body, SystemTime::now());
    if let Some(delay) = refused.retry_after {
        assert!(delay <= MAX_BACKOFF, "{delay:?}");
    }
    let _ = (refused.summary(), refused.to_string(), refused.is("invalid_grant"));
}

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn fuzz_arbitrary_bytes_parse(
        status in prop_oneof![proptest::sample::select(vec![200u16, 400, 401, 403, 429, 500, 503]), 100u16..600],
        body in proptest::collection::vec(any::<u8>(), 0..1024),
        retry_after in proptest::option::of(".{0,24}"),
    ) {
        exercise(status, &body, retry_after.as_deref());
    }

    #[test]
    fn fuzz_captured_replies_with_bytes_changed_parse(
        pick in any::<prop::sample::Index>(),
        status in 100u16..600,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut body = pick.get(&captured()).clone();
        for (at, byte) in edits {
            let index = at.index(body.len().max(1));
            if let Some(slot) = body.get_mut(index) {
                *slot = byte;
            }
        }
        body.truncate(cut.index(body.len() + 1));
        exercise(status, &body, None);
    }

    #[test]
    fn fuzz_captured_replies_with_values_changed_parse(
        pick in any::<prop::sample::Index>(),
        status in 100u16..600,
        path in proptest::collection::vec(any::<prop::sample::Index>(), 0..5),
        replacement in hostile_value(),
    ) {
        let original = pick.get(&captured()).clone();
        let Ok(mut value) = serde_json::from_slice::<Value>(&original) else { return Ok(()) };
        replace_somewhere(&mut value, &path, replacement);
        exercise(status, &serde_json::to_vec(&value).unwrap(), None);
    }

    #[test]
    fn fuzz_id_tokens_parse(payload in proptest::collection::vec(any::<u8>(), 0..256), raw in ".{0,64}") {
        let _ = IdClaims::from_jwt(&jwt(&payload)).map(|claims| claims.account().map(str::to_owned));
        let _ = IdClaims::from_jwt(&raw);
    }

    #[test]
    fn fuzz_server_numbers_are_bounded(
        value in prop_oneof![".{0,40}", "[0-9]{1,40}", "[0-9. +e-]{0,30}", Just("99999999999".to_owned())],
        expires_in in proptest::option::of(any::<u64>()),
    ) {
        let now = Instant::now();
        if let Some(delay) = mailroom_http::retry_after(&value, SystemTime::now()) {
            prop_assert!(delay <= MAX_BACKOFF);
        }
        if let Some(delay) = mailroom_http::backoff_millis(&value) {
            prop_assert!(delay <= MAX_BACKOFF);
        }
        if let Some(at) = mailroom_http::token_expiry(now, expires_in) {
            prop_assert!(at.saturating_duration_since(now) <= MAX_TOKEN_LIFETIME);
        }
        let _ = mailroom_http::deadline_after(now, Duration::from_secs(expires_in.unwrap_or(u64::MAX)));
    }
}
