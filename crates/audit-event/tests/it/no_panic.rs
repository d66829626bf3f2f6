//! Whatever arrives, the validator answers with violations and never panics: arbitrary bytes,
//! arbitrary JSON, and random edits of valid events.

use audit_event::{AuditEvent, Catalog, Stage, Validator};
use proptest::prelude::*;
use serde_json::{Map, Value};

/// Checks the invariants every answer keeps.
fn answer(text: &str) {
    let catalog = Catalog::embedded();
    for validator in [
        Validator::new(Stage::Put).with_catalog(&catalog).with_channel_owner("123456789012"),
        Validator::new(Stage::Submit),
    ] {
        let checked = validator.validate(text);
        for v in &checked.violations {
            assert!(v.path.starts_with("eventData"), "{v}");
            assert!(!v.message.is_empty(), "{v}");
            assert!(v.offset.is_none_or(|at| at <= text.len()), "{v} offset beyond {}", text.len());
        }
    }
    let entry = AuditEvent { id: "x".into(), event_data: text.to_owned(), event_data_checksum: Some("bad".into()) };
    assert!(!entry.validate(&Validator::new(Stage::Put)).is_valid());
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        ".{0,40}".prop_map(Value::String),
        prop_oneof![
            Just("2024-07-12T10:55:00Z"),
            Just("202-07-12T10:55:00"),
            Just("0190a6b4-2222-7a3f-9d2b-5e8f1a2b3c4d"),
            Just("com.nordcloudapp.com.autobackup"),
            Just("backup.started"),
            Just("123456789012"),
            Just("::1"),
        ]
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..8)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Keys that hit the schema often, and arbitrary ones.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "version",
            "userIdentity",
            "type",
            "principalId",
            "details",
            "userAgent",
            "eventSource",
            "eventName",
            "eventTime",
            "UID",
            "requestParameters",
            "responseElements",
            "errorCode",
            "errorMessage",
            "sourceIPAddress",
            "recipientAccountId",
            "additionalEventData",
            "machinesCount",
            "resourceArn",
            "region",
            "backupPolicy",
        ])
        .prop_map(str::to_owned),
        ".{0,12}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
        answer(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn arbitrary_json_objects(pairs in prop::collection::vec((key(), json_value()), 0..20)) {
        let object: Map<String, Value> = pairs.into_iter().collect();
        answer(&Value::Object(object).to_string());
    }

    #[test]
    fn arbitrary_json_values(value in json_value()) {
        answer(&value.to_string());
    }

    #[test]
    fn edited_valid_events(example in 0usize..15, edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8)) {
        let catalog = Catalog::embedded();
        let examples: Vec<String> = catalog.applications().iter()
            .flat_map(|a| a.event_types.iter().map(|t| Value::Object(t.example.clone()).to_string()))
            .collect();
        let mut bytes = examples[example % examples.len()].clone().into_bytes();
        for (at, byte, op) in edits {
            let i = at.index(bytes.len().max(1));
            match op {
                0 if i < bytes.len() => { bytes.remove(i); }
                1 => bytes.insert(i.min(bytes.len()), byte),
                _ if i < bytes.len() => bytes[i] = byte,
                _ => {}
            }
        }
        answer(&String::from_utf8_lossy(&bytes));
    }
}
