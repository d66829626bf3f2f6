//! The class of inputs behind the poison event: JSON strings whose `\u` escapes may encode half a
//! UTF-16 surrogate pair. Across the validator, the lake's storage and its compactor:
//!
//! - the validator accepts an event exactly when every string of it decodes (what serde_json, and
//!   so every reader downstream, requires);
//! - whatever is stored (an older lake stored such texts; the test writes them past validation,
//!   the fault injected), the compactor converts every readable event, sets every unreadable one
//!   aside, and queries count exactly the readable ones, before and after the files are written.

use audit_event::{Stage, Validator};
use proptest::prelude::*;

use crate::support::{TestLake, Who, store_and_channel_kept};

/// One piece of a JSON string's text: plain characters or an escape, valid as JSON syntax, with
/// surrogate escapes (paired, lone high, lone low) frequent.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z@. ]{1,4}",
        (0xD800u32..0xDC00).prop_map(|u| format!("\\u{u:04x}")),
        (0xDC00u32..0xE000).prop_map(|u| format!("\\u{u:04X}")),
        ((0xD800u32..0xDC00), (0xDC00u32..0xE000)).prop_map(|(h, l)| format!("\\u{h:04x}\\u{l:04x}")),
        (0x20u32..0xD800).prop_map(|u| format!("\\u{u:04x}")),
        Just("\\\\u00".to_owned()),
        Just("\\\\".to_owned()),
        Just("\\n\\\"".to_owned()),
    ]
}

fn string_text() -> impl Strategy<Value = String> {
    prop::collection::vec(piece(), 0..6).prop_map(|p| p.concat())
}

/// An event with `principal` as the principalId's text, `key` and `value` as a requestParameters
/// member's key and value texts.
fn event(uid: usize, principal: &str, key: &str, value: &str) -> String {
    format!(
        r#"{{"version":"v1","userIdentity":{{"type":"USER","principalId":"p{principal}"}},"eventSource":"com.example.app","eventName":"thing.done","eventTime":"2026-11-24T10:00:00Z","UID":"u-{uid}","requestParameters":{{"k{key}":"{value}"}},"recipientAccountId":"123456789012"}}"#
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_validator_accepts_exactly_the_events_whose_strings_decode(
        principal in string_text(), key in string_text(), value in string_text()
    ) {
        let text = event(1, &principal, &key, &value);
        let decodes = serde_json::from_str::<serde_json::Value>(&text).is_ok();
        let checked = Validator::new(Stage::Put).validate(&text);
        prop_assert_eq!(checked.is_valid(), decodes, "{} -> {:?}", text, checked.violations);
        if !decodes {
            prop_assert!(checked.violations.iter().all(|v| v.rule == audit_event::Rule::Surrogate
                || v.rule == audit_event::Rule::Json), "{:?}", checked.violations);
        }
    }
}

#[test]
fn stored_events_of_the_class_are_converted_or_set_aside_never_stuck() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig { cases: 12, ..ProptestConfig::default() });
    let texts = prop::collection::vec((string_text(), string_text(), string_text()), 1..24);
    runner
        .run(&texts, |fields| {
            runtime.block_on(async {
                let lake = TestLake::start_with(tempfile::tempdir().unwrap(), |c| c.columnar.flush_rows = 5).await;
                let (arn, channel_arn) = store_and_channel_kept(&lake, "class", Some(3653)).await;
                let store_id = arn.rsplit('/').next().unwrap().to_owned();
                let channel = lake.lake.store().channel(&channel_arn).unwrap();
                let events: Vec<audit_lake::store::NewEvent> = fields
                    .iter()
                    .enumerate()
                    .map(|(i, (p, k, v))| audit_lake::store::NewEvent {
                        entry_id: format!("e{i}"),
                        event_id: uuid::Uuid::new_v4().to_string(),
                        event_time_ms: 1_795_000_000_000 + i as i64,
                        event_data: event(i, p, k, v),
                    })
                    .collect();
                // Only principalId is decoded when records are built; the maps stay JSON text.
                let readable = fields
                    .iter()
                    .filter(|(p, _, _)| serde_json::from_str::<String>(&format!("\"p{p}\"")).is_ok())
                    .count();
                let status = Default::default();
                lake.lake
                    .store()
                    .put_events(&channel, vec![store_id.clone()], 1_795_000_000_000, events, status)
                    .await
                    .unwrap();
                let ct = lake.cloudtrail(Who::Customer);
                let count = format!("SELECT count(*) FROM {store_id}");
                let counted = |rows: Vec<Vec<String>>| rows[0][0].parse::<usize>().unwrap();
                prop_assert_eq!(counted(query_rows(&ct, &count).await), readable);
                lake.lake.columnar().flush_all().map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(counted(query_rows(&ct, &count).await), readable);
                prop_assert_eq!(lake.lake.columnar().quarantined() as usize, fields.len() - readable);
                // Every readable map stays queryable through the JSON functions.
                let keys = format!("SELECT count(element_at(eventData.requestParameters, 'x')) FROM {store_id}");
                prop_assert_eq!(counted(query_rows(&ct, &keys).await), 0);
                lake.stop().await;
                Ok(())
            })
        })
        .unwrap();
}

/// A query's rows; panics when it does not finish.
async fn query_rows(ct: &aws_sdk_cloudtrail::Client, sql: &str) -> Vec<Vec<String>> {
    let id = ct.start_query().query_statement(sql).send().await.unwrap().query_id().unwrap().to_owned();
    for _ in 0..3000 {
        let out = ct.get_query_results().query_id(&id).send().await.unwrap();
        match out.query_status() {
            Some(aws_sdk_cloudtrail::types::QueryStatus::Finished) => {
                return out
                    .query_result_rows()
                    .iter()
                    .map(|row| row.iter().map(|cell| cell.values().next().unwrap().clone()).collect())
                    .collect();
            }
            Some(aws_sdk_cloudtrail::types::QueryStatus::Queued | aws_sdk_cloudtrail::types::QueryStatus::Running) => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            other => panic!("{sql}: {other:?} {:?}", out.error_message()),
        }
    }
    panic!("{sql} did not finish");
}
