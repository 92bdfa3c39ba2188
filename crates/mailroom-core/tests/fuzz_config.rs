//! Fuzz target for the config loader (proptest, no nightly): arbitrary bytes, and the example configs with hostile values and keys put in, load or fail with field errors — never a panic, and never with a secret in the errors.
//!
//! Case counts are fixed so CI stays well under a minute; `MAILROOM_FUZZ_CASES=100000 cargo
//! test -p mailroom-core --test fuzz_config` runs longer. Failures proptest finds are saved
//! under `proptest-regressions/` and replayed first on every later run.

use std::path::PathBuf;

use mailroom_core::CompanyEmail;
use mailroom_core::config::{ConfigProblems, FIELDS};
use proptest::prelude::*;
use toml::{Table, Value};

/// The value every `*_env` lookup returns: it must never appear in an error or a warning.
const SENTINEL: &str = "sentinel-env-secret-4b1d";

fn cases(default: u32) -> ProptestConfig {
    ProptestConfig::with_cases(
        std::env::var("MAILROOM_FUZZ_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(default),
    )
}

fn example(name: &str) -> Table {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/config").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    toml::from_str(&text).unwrap()
}

fn load(text: &str) -> Result<(), String> {
    let env = |_: &str| Some(SENTINEL.to_owned());
    let outcome = CompanyEmail::from_toml(text, &env);
    let shown = match &outcome {
        Ok(loaded) => format!("{:?} {:?}", loaded.config, loaded.warnings),
        Err(problems @ ConfigProblems::Syntax { .. }) => format!("{problems} {problems:?}"),
        Err(problems @ ConfigProblems::Invalid { errors, .. }) => {
            for issue in errors {
                let error = issue.to_send_error();
                if let Some(field) = error.field()
                    && !FIELDS.contains(&field)
                    && field != "service"
                {
                    return Err(format!("an error names `{field}`, which is not in FIELDS: {issue}"));
                }
            }
            format!("{problems} {problems:?} {:?}", problems.first_error().report())
        }
        Err(problems) => format!("{problems} {problems:?}"),
    };
    if shown.contains(SENTINEL) {
        return Err(format!("a secret from the environment is shown: {shown}"));
    }
    Ok(())
}

/// TOML values a careless or hostile hand could write.
fn hostile_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(Value::Integer),
        Just(Value::Integer(i64::MAX)),
        Just(Value::Integer(-1)),
        Just(Value::Integer(65536)),
        any::<bool>().prop_map(Value::Boolean),
        any::<f64>().prop_map(Value::Float),
        ".{0,40}".prop_map(Value::String),
        "[a-z0-9.:/_@-]{0,40}".prop_map(Value::String),
        Just(Value::String("http://[::1]:0/EWS/Exchange.asmx".into())),
        Just(Value::String("https://user:pw@outlook.office365.com/EWS/Exchange.asmx".into())),
        Just(Value::String("\u{0}\r\nBcc: x@evil.example".into())),
        Just(Value::String("xn--80ak6aa92e.com".into())),
        Just(Value::String("ÄÖÜ.example".into())),
        Just(Value::String("../../../../etc/passwd".into())),
    ];
    leaf.prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z_]{1,10}", inner, 0..4)
                .prop_map(|map| Value::Table(map.into_iter().collect())),
        ]
    })
}

/// A key from the config's vocabulary (so the loader's per-field checks are reached), or any.
fn key() -> impl Strategy<Value = String> {
    let known: Vec<String> = FIELDS.iter().map(|f| f.rsplit('.').next().unwrap_or(f).to_owned()).collect();
    prop_oneof![3 => proptest::sample::select(known), 1 => "[a-z_]{1,16}"]
}

/// Puts `value` at `key`, at the top level or in one of the sections.
fn put(table: &mut Table, pick: prop::sample::Index, key: String, value: Value) {
    let sections: Vec<String> = table.iter().filter(|(_, v)| v.is_table()).map(|(k, _)| k.clone()).collect();
    let target = if sections.is_empty() || pick.index(2) == 0 {
        table
    } else {
        table.get_mut(pick.get(&sections)).and_then(Value::as_table_mut).expect("a section")
    };
    target.insert(key, value);
}

proptest! {
    #![proptest_config(cases(1024))]

    #[test]
    fn fuzz_arbitrary_bytes_load_or_fail_with_field_errors(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let text = String::from_utf8_lossy(&bytes);
        load(&text).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn fuzz_tomlish_text_loads_or_fails(text in "([a-z_\\[\\]. =\"'#0-9\\n{},-]|service|web_mail|exchange|email_services|password_env){0,200}") {
        load(&text).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn fuzz_example_configs_with_hostile_values_load_or_fail_with_field_errors(
        example_name in proptest::sample::select(vec!["web_mail.toml", "exchange.toml", "email_services.toml"]),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), key(), hostile_value()), 1..5),
    ) {
        let mut table = example(example_name);
        for (pick, key, value) in edits {
            put(&mut table, pick, key, value);
        }
        let text = toml::to_string(&table).expect("a table serializes");
        load(&text).map_err(TestCaseError::fail)?;
    }
}
