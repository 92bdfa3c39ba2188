//! Fuzz targets for the Microsoft identity-platform and Graph JSON error parsers (proptest, no nightly): arbitrary bytes, and captured replies of `fixtures/microsoft` with bytes or values changed, go through `IdentityError::from_body`, `ApiError::from_body`, `retry_after_seconds` and the classification into core's kinds without a panic.
//!
//! Case counts are fixed so CI stays well under a minute; `MAILROOM_FUZZ_CASES=100000 cargo
//! test -p mailroom-graph --test fuzz` runs longer. Failures proptest finds are saved under
//! `proptest-regressions/` and replayed first on every later run.

use std::path::PathBuf;
use std::time::Duration;

use mailroom_core::config::MicrosoftAuth;
use mailroom_graph::{
    ApiError, Context, GraphError, IdentityError, MAX_RETRY_AFTER, Resource, Step, retry_after_seconds,
};
use proptest::prelude::*;
use serde_json::Value;

fn cases(default: u32) -> ProptestConfig {
    ProptestConfig::with_cases(
        std::env::var("MAILROOM_FUZZ_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(default),
    )
}

/// Every captured Microsoft reply under `fixtures/microsoft/`.
fn captured() -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/microsoft");
    let mut replies: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .filter(|entry| entry.path().extension().is_some_and(|e| e == "json"))
        .map(|entry| std::fs::read(entry.path()).unwrap())
        .collect();
    replies.sort();
    replies
}

fn hostile_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        Just(Value::from(u64::MAX)),
        Just(Value::from(4_294_967_296u64)),
        any::<f64>().prop_map(Value::from),
        ".{0,30}".prop_map(Value::from),
        Just(Value::from("AADSTS")),
        Just(Value::from("AADSTS99999999999999999999999: x")),
        Just(Value::from("ÄADSTS7000222: expired on ")),
        Just(Value::from("The secret expired on 2025-03-01ä. Trace ID:")),
        Just(Value::from("[RAOP] \u{feff}ä\u{0}")),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    proptest::sample::select(vec![
                        "error",
                        "error_description",
                        "error_codes",
                        "suberror",
                        "code",
                        "message",
                        "innerError",
                        "request-id",
                        "date",
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

fn context(auth: MicrosoftAuth, resource: Resource) -> Context {
    Context {
        section: "email_services",
        auth,
        tenant: "company.onmicrosoft.com".into(),
        mailbox: "erp@company.com".into(),
        resource,
    }
}

/// Parses `body` both ways and classifies it in every context and step; nothing may panic.
fn exercise(status: u16, body: &[u8], retry_after: Option<Duration>) {
    let contexts = [
        context(MicrosoftAuth::Application, Resource::Graph),
        context(MicrosoftAuth::Delegated, Resource::Graph),
        context(MicrosoftAuth::Application, Resource::OutlookSmtp),
    ];
    let identity = IdentityError::from_body(status, body, retry_after);
    if let Some(identity) = &identity {
        let _ = identity.summary();
    }
    let api = ApiError::from_body(status, body, retry_after);
    for context in &contexts {
        if let Some(identity) = &identity {
            let error = GraphError::Identity(identity.clone()).classify(context);
            let _ = (error.report(), error.remediation(), error.user_message(), error.retry());
        }
        for step in [Step::SendMail, Step::CreateDraft, Step::Upload, Step::SendDraft, Step::Probe] {
            let error = GraphError::Api { step, error: api.clone() }.classify(context);
            let _ = (error.report(), error.remediation(), error.user_message(), error.retry());
        }
    }
}

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn fuzz_arbitrary_bytes_parse_and_classify(
        status in prop_oneof![proptest::sample::select(vec![400u16, 401, 403, 404, 413, 429, 500, 503, 504]), 100u16..600],
        body in proptest::collection::vec(any::<u8>(), 0..1024),
    ) {
        exercise(status, &body, None);
    }

    #[test]
    fn fuzz_captured_replies_with_bytes_changed_parse_and_classify(
        pick in any::<prop::sample::Index>(),
        status in 100u16..600,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        cut in any::<prop::sample::Index>(),
        retry_after in proptest::option::of(any::<u64>()),
    ) {
        let mut body = pick.get(&captured()).clone();
        for (at, byte) in edits {
            let index = at.index(body.len().max(1));
            if let Some(slot) = body.get_mut(index) {
                *slot = byte;
            }
        }
        body.truncate(cut.index(body.len() + 1));
        exercise(status, &body, retry_after.map(Duration::from_secs));
    }

    #[test]
    fn fuzz_captured_replies_with_values_changed_parse_and_classify(
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
    fn fuzz_retry_after_is_bounded(value in prop_oneof![".{0,24}", "[0-9.e+]{0,24}"]) {
        if let Some(delay) = retry_after_seconds(&value) {
            prop_assert!(delay <= MAX_RETRY_AFTER);
        }
        if let Some(delay) = mailroom_http::retry_after(&value, std::time::SystemTime::now()) {
            prop_assert!(delay <= mailroom_http::MAX_BACKOFF);
        }
    }
}
