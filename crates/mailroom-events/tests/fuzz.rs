//! Fuzz targets for the event payload loader (proptest, no nightly): arbitrary bytes, and the example payloads with their values swapped for hostile ones, are read, checked and rendered without a panic.
//!
//! Case counts are fixed so CI stays well under a minute; `MAILROOM_FUZZ_CASES=100000 cargo
//! test -p mailroom-events --test fuzz` runs longer. Failures proptest finds are saved under
//! `proptest-regressions/` and replayed first on every later run.

mod support;

use mailroom_events::EventKind;
use proptest::prelude::*;
use serde_json::Value;
use support::{fixture, renderer, sender};

fn cases(default: u32) -> ProptestConfig {
    let cases = std::env::var("MAILROOM_FUZZ_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(default);
    ProptestConfig::with_cases(cases)
}

fn kind() -> impl Strategy<Value = EventKind> {
    proptest::sample::select(EventKind::ALL.to_vec())
}

/// JSON values a hostile or careless ERP could put anywhere.
fn hostile_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("JSON has no NaN", |f| f.is_finite()).prop_map(Value::from),
        Just(Value::from(u64::MAX)),
        Just(Value::from("99999999999999999999.999")),
        Just(Value::from("-0.001")),
        Just(Value::from("9999-12-31")),
        Just(Value::from("0000-00-00")),
        Just(Value::from("€\u{0}\r\nBcc: x@evil.example")),
        Just(Value::from("https://exa mple.com/\u{202e}")),
        Just(Value::from("data:application/pdf;base64,%%%")),
        ".{0,40}".prop_map(Value::from),
        "[a-zA-Z0-9@.+ -]{0,30}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z_]{1,12}", inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// Every path to a value inside `value` (object keys and array indexes).
fn paths(value: &Value, prefix: &mut Vec<PathStep>, out: &mut Vec<Vec<PathStep>>) {
    out.push(prefix.clone());
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                prefix.push(PathStep::Key(key.clone()));
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                prefix.push(PathStep::Index(index));
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

#[derive(Clone, Debug)]
enum PathStep {
    Key(String),
    Index(usize),
}

fn at_path<'a>(value: &'a mut Value, path: &[PathStep]) -> &'a mut Value {
    path.iter().fold(value, |value, step| match step {
        PathStep::Key(key) => &mut value[key.as_str()],
        PathStep::Index(index) => &mut value[*index],
    })
}

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn fuzz_arbitrary_bytes_are_an_error_or_an_event(kind in kind(), bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = renderer().render(kind, text.as_ref(), &sender());
    }

    #[test]
    fn fuzz_example_payloads_with_hostile_values_render_or_fail_cleanly(
        kind in kind(),
        picks in proptest::collection::vec((any::<prop::sample::Index>(), hostile_value()), 1..4),
    ) {
        let mut payload = fixture(kind);
        for (pick, replacement) in picks {
            let mut all = Vec::new();
            paths(&payload, &mut Vec::new(), &mut all);
            let path = pick.get(&all).clone();
            *at_path(&mut payload, &path) = replacement;
        }
        let _ = renderer().render(kind, &payload, &sender());
    }
}
