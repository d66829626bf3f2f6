//! Hostile queries against the lake as it ships (`klarity-audit lake`), run under an address-space
//! limit as a container would run it: each must end as a `FAILED` (or `TIMED_OUT`) query with a
//! message, the process must live on, and another account's query must still answer.

use std::time::{Duration, Instant};

use audit_lake::config::{VENDOR_ACCESS_KEY_ID, VENDOR_SECRET_ACCESS_KEY};
use serde_json::{Value, json};

use crate::support::{Dir, LakeProcess, lake_call_as};

const CUSTOMER: (&str, &str) =
    (audit_lake::config::CUSTOMER_ACCESS_KEY_ID, audit_lake::config::CUSTOMER_SECRET_ACCESS_KEY);
const VENDOR: (&str, &str) = (VENDOR_ACCESS_KEY_ID, VENDOR_SECRET_ACCESS_KEY);

/// Creates a store and a channel for `keys`' account and puts `count` events into it; returns the
/// store id.
fn store_with_events(endpoint: &str, keys: (&str, &str), account: &str, count: usize) -> String {
    let call = |service: &str, target: &str, body: &str| {
        let (status, body) = lake_call_as(endpoint, keys, service, target, body);
        assert_eq!(status, 200, "{target}: {body}");
        serde_json::from_str::<Value>(&body).unwrap()
    };
    let store = call(
        "cloudtrail",
        "CreateEventDataStore",
        r#"{"Name":"bounds","MultiRegionEnabled":false,"AdvancedEventSelectors":[{"Name":"a","FieldSelectors":[{"Field":"eventCategory","Equals":["ActivityAuditLog"]}]}]}"#,
    );
    let store_arn = store["EventDataStoreArn"].as_str().unwrap().to_owned();
    let channel = call(
        "cloudtrail",
        "CreateChannel",
        &json!({"Name": "bounds", "Source": "Custom", "Destinations": [{"Type": "EVENT_DATA_STORE", "Location": store_arn}]})
            .to_string(),
    );
    let channel_arn = channel["ChannelArn"].as_str().unwrap();
    let path = format!("/PutAuditEvents?channelArn={}", channel_arn.replace(':', "%3A").replace('/', "%2F"));
    for chunk in 0..count.div_ceil(100) {
        let events: Vec<Value> = (chunk * 100..((chunk + 1) * 100).min(count))
            .map(|i| {
                let data = json!({
                    "version": "v1",
                    "userIdentity": {"type": "USER", "principalId": format!("user-{}", i % 7)},
                    "eventSource": "com.nordcloudapp.com.autobackup",
                    "eventName": "backup.completed",
                    "eventTime": "2026-11-24T10:55:00Z",
                    "UID": format!("uid-{i:05}"),
                    "recipientAccountId": account
                });
                json!({"id": format!("e{i}"), "eventData": data.to_string()})
            })
            .collect();
        let out = call("cloudtrail-data", &path, &json!({"auditEvents": events}).to_string());
        assert!(out["failed"].as_array().unwrap().is_empty(), "{out}");
    }
    store_arn.rsplit('/').next().unwrap().to_owned()
}

/// Runs a query to its end; returns (status, error message, rows).
fn run_query(endpoint: &str, keys: (&str, &str), sql: &str, within: Duration) -> (String, String, Vec<Value>) {
    let id = start_query(endpoint, keys, sql);
    wait_query(endpoint, keys, &id, sql, within)
}

/// Starts a query; returns its id.
fn start_query(endpoint: &str, keys: (&str, &str), sql: &str) -> String {
    let (status, body) =
        lake_call_as(endpoint, keys, "cloudtrail", "StartQuery", &json!({"QueryStatement": sql}).to_string());
    assert_eq!(status, 200, "StartQuery {sql}: {body}");
    serde_json::from_str::<Value>(&body).unwrap()["QueryId"].as_str().unwrap().to_owned()
}

/// Waits for query `id` to end; returns (status, error message, rows).
fn wait_query(
    endpoint: &str,
    keys: (&str, &str),
    id: &str,
    sql: &str,
    within: Duration,
) -> (String, String, Vec<Value>) {
    let started = Instant::now();
    loop {
        let (status, body) =
            lake_call_as(endpoint, keys, "cloudtrail", "DescribeQuery", &json!({"QueryId": id}).to_string());
        assert_eq!(status, 200, "DescribeQuery: {body}");
        let described: Value = serde_json::from_str(&body).unwrap();
        let state = described["QueryStatus"].as_str().unwrap().to_owned();
        if !matches!(state.as_str(), "QUEUED" | "RUNNING") {
            let message = described["ErrorMessage"].as_str().unwrap_or("").to_owned();
            let rows = if state == "FINISHED" {
                let (_, body) =
                    lake_call_as(endpoint, keys, "cloudtrail", "GetQueryResults", &json!({"QueryId": id}).to_string());
                serde_json::from_str::<Value>(&body).unwrap()["QueryResultRows"].as_array().cloned().unwrap_or_default()
            } else {
                Vec::new()
            };
            return (state, message, rows);
        }
        assert!(started.elapsed() < within, "{sql} still {state} after {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn hostile_queries_fail_alone_and_the_process_lives_on() {
    let dir = Dir::new();
    // 8 GiB of address space, as the finding ran it; the pool and the spill space are kept small
    // so that the joins below reach them in seconds.
    let mut lake = LakeProcess::start_with(
        &dir.path().join("lake"),
        None,
        &[
            ("KLARITY_LAKE__QUERY__MEMORY_LIMIT_BYTES", "134217728"),
            ("KLARITY_LAKE__QUERY__SPILL_LIMIT_BYTES", "134217728"),
            ("KLARITY_LAKE__QUERY__TIMEOUT_SECS", "60"),
        ],
        Some(8 << 20),
    );
    let endpoint = lake.endpoint.clone();
    let customer = store_with_events(&endpoint, CUSTOMER, "123456789012", 1000);
    let vendor = store_with_events(&endpoint, VENDOR, "855341727128", 50);
    let limit = Duration::from_secs(120);

    let hostile = [
        // One value of 1.4 GB per row, 432 GB in all: refused before anything is allocated.
        (format!("SELECT max(length(repeat(eventID, 40000000))) FROM {customer}"), "repeat"),
        (format!("SELECT max(length(lpad(eventID, 2000000000, 'x'))) FROM {customer}"), "lpad"),
        // Doubling through nested concatenation: each level's input is bounded.
        (
            format!(
                "WITH a AS (SELECT eventID || eventID || eventID || eventID AS x FROM {customer}), \
                 b AS (SELECT x || x || x || x || x || x || x || x AS x FROM a), \
                 c AS (SELECT x || x || x || x || x || x || x || x AS x FROM b), \
                 d AS (SELECT x || x || x || x || x || x || x || x AS x FROM c), \
                 e AS (SELECT x || x || x || x || x || x || x || x AS x FROM d), \
                 f AS (SELECT x || x || x || x || x || x || x || x AS x FROM e), \
                 g AS (SELECT x || x || x || x || x || x || x || x AS x FROM f) \
                 SELECT max(length(x)) FROM g"
            ),
            "bytes",
        ),
        // A thousand million rows to sort: the pool and the spill space run out, not the process.
        (
            format!(
                "SELECT a.eventID, b.eventID, c.eventID FROM {customer} a CROSS JOIN {customer} b \
                 CROSS JOIN {customer} c ORDER BY a.eventID, b.eventID, c.eventID"
            ),
            "",
        ),
        // Recursion without an end.
        (
            format!(
                "WITH RECURSIVE t(n) AS (SELECT count(*) FROM {customer} UNION ALL SELECT n + 1 FROM t) \
                 SELECT count(*) FROM t"
            ),
            "recursi",
        ),
    ];
    // All at once; meanwhile the other account's query answers.
    let started: Vec<String> = hostile.iter().map(|(sql, _)| start_query(&endpoint, CUSTOMER, sql)).collect();
    let (state, message, rows) = run_query(&endpoint, VENDOR, &format!("SELECT count(*) AS n FROM {vendor}"), limit);
    assert_eq!(state, "FINISHED", "{message}");
    assert_eq!(rows[0][0]["n"], "50");
    for ((sql, says), id) in hostile.iter().zip(&started) {
        let (state, message, _) = wait_query(&endpoint, CUSTOMER, id, sql, limit);
        assert!(lake.exited().is_none(), "the lake died on {sql}: {:?}", lake.exited());
        assert!(matches!(state.as_str(), "FAILED" | "TIMED_OUT"), "{sql}: {state} {message}");
        assert!(!message.is_empty(), "{sql}: no message");
        assert!(message.to_lowercase().contains(says), "{sql}: {message:?} does not mention {says:?}");
        eprintln!("{state}: {message}");
    }

    // And after, every account's queries answer.
    let (state, message, rows) =
        run_query(&endpoint, CUSTOMER, &format!("SELECT count(DISTINCT eventData.UID) AS n FROM {customer}"), limit);
    assert_eq!(state, "FINISHED", "{message}");
    assert_eq!(rows[0][0]["n"], "1000");
    assert!(lake.exited().is_none());
}
