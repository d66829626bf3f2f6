//! `klarity-audit validate`.

use expect_test::expect;

use crate::support::{Dir, upstream_dir};

/// A complete AutoBackup event as sent to PutAuditEvents, on one line.
const VALID: &str = r#"{"version":"v1","userIdentity":{"type":"SERVICE","principalId":"autobackup-scheduler"},"eventSource":"com.nordcloudapp.com.autobackup","eventName":"backup.started","eventTime":"2024-07-12T10:55:00Z","UID":"0190a6b4-2222-7a3f-9d2b-5e8f1a2b3c4d","requestParameters":{"resourceType":"DynamoDB","resourceArn":"arn:aws:dynamodb:eu-west-1:123456789012:table/orders","region":"eu-west-1","backupPolicy":"9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"},"recipientAccountId":"123456789012"}"#;

#[test]
fn the_upstream_examples_are_invalid_with_positions() {
    let dir = Dir::new();
    let upstream = upstream_dir();
    let file = upstream.join("autopatcher.example.json");
    let out = dir.run(&["validate", file.to_str().unwrap()], None);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let shown = out.stdout.replace(&format!("{}/", upstream.display()), "");
    expect![[r#"
        autopatcher.example.json:2:18: eventData.recipientAccountId: is required but missing; add "recipientAccountId": the 12-digit AWS account id that owns the channel (the relay fills it for submitted events) [FieldNotFound/required]
        autopatcher.example.json:10:22: eventData.eventTime: "202-07-12T10:55:00" is not a valid eventTime: the year must have 4 digits, found 3 ("202"); expected YYYY-MM-DDTHH:MM:SSZ in UTC, e.g. 2024-07-12T10:55:00Z [InvalidData/event_time]
        autopatcher.example.json:11:16: eventData.UID: "UUID" is not a UUID; AutoPatcher identifies each request with a UUID such as 0190a6b2-4c1e-7a3f-9d2b-5e8f1a2b3c4d [InvalidData/catalog_uid]
        autopatcher.example.json:12:30: eventData.requestParameters.noUpdatesCount: is required by baselinePatching.completed but missing (an integer ≥ 0) [FieldNotFound/catalog_parameter_missing]
        autopatcher.example.json:16:31: eventData.requestParameters.noUpdatesCOunt: is not a request parameter of baselinePatching.completed; did you mean "noUpdatesCount"? [InvalidData/catalog_parameter_unknown]
        1 event in 1 file: 0 valid, 1 invalid (5 problems)
    "#]]
    .assert_eq(&shown);

    // The whole directory: five files, five invalid events.
    let out = dir.run(&["validate", upstream.to_str().unwrap()], None);
    assert_eq!(out.code, 1);
    assert!(out.stdout.ends_with("5 events in 5 files: 0 valid, 5 invalid (22 problems)\n"), "{}", out.stdout);
}

#[test]
fn ndjson_from_stdin_valid_and_invalid_lines() {
    let dir = Dir::new();
    let input = format!("{VALID}\n\n{VALID}\n");
    let out = dir.run(&["validate", "-"], Some(&input));
    assert_eq!((out.code, out.stdout.as_str()), (0, "2 events in 1 file: all valid\n"), "{}", out.stderr);

    let broken = format!(
        "{VALID}\n{{\"version\": }}\n{}\n",
        VALID.replace("eu-west-1\",\"backupPolicy", "Ireland\",\"backupPolicy")
    );
    let out = dir.run(&["validate", "-"], Some(&broken));
    assert_eq!(out.code, 1);
    expect![[r#"
        <stdin>:2:13: not well-formed JSON: expected value [InvalidData/json]
        <stdin>:3:370: eventData.requestParameters.region: is "Ireland", which is not an AWS region [InvalidData/catalog_parameter_type]
        3 events in 1 file: 1 valid, 2 invalid (2 problems)
    "#]]
    .assert_eq(&out.stdout);
}

#[test]
fn a_json_array_and_the_submit_stage() {
    let dir = Dir::new();
    let submitted = VALID.replace(",\"recipientAccountId\":\"123456789012\"", "");
    let file = dir.write("events.json", &format!("[\n{submitted},\n{submitted}\n]"));
    let out = dir.run(&["validate", "--stage", "submit", file.to_str().unwrap()], None);
    assert_eq!(out.code, 0, "{}", out.stdout);
    let out = dir.run(&["validate", file.to_str().unwrap()], None);
    assert_eq!(out.code, 1);
    assert_eq!(out.stdout.matches("eventData.recipientAccountId: is required but missing").count(), 2);
    assert!(out.stdout.contains("events.json:2:1:"), "{}", out.stdout);
    assert!(out.stdout.contains("events.json:3:1:"), "{}", out.stdout);
}

#[test]
fn recipient_must_match_the_channel_owner() {
    let dir = Dir::new();
    let out = dir.run(&["validate", "--recipient", "999999999999", "-"], Some(VALID));
    assert_eq!(out.code, 1);
    assert!(out.stdout.contains("[InvalidRecipient/recipient]"), "{}", out.stdout);
    let out = dir.run(&["validate", "--recipient", "12345", "-"], Some(VALID));
    assert_eq!(out.code, 2);
    assert_eq!(out.stderr, "error: --recipient \"12345\" is not an AWS account id (12 digits)\n");
}

#[test]
fn put_audit_events_bodies_and_entries() {
    let dir = Dir::new();
    let event_data = serde_json::to_string(VALID).unwrap();
    let body = format!(
        r#"{{"auditEvents":[
  {{"id":"a","eventData":{event_data}}},
  {{"id":"a","eventData":{event_data},"eventDataChecksum":"AAAA"}},
  {{"id":"bad id","eventData":"{{}}"}}
]}}"#
    );
    let file = dir.write("request.json", &body);
    let out = dir.run(&["validate", "--json", file.to_str().unwrap()], None);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let problems: Vec<(String, String, u64)> = report["events"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| {
            e["problems"].as_array().unwrap().iter().map(|p| {
                (
                    p["path"].as_str().unwrap().to_owned(),
                    p["code"].as_str().unwrap().to_owned(),
                    p["line"].as_u64().unwrap(),
                )
            })
        })
        .filter(|(path, _, _)| !path.starts_with("auditEvents[2].eventData."))
        .collect();
    assert_eq!(
        problems,
        vec![
            ("auditEvents[1].id".to_owned(), "DuplicatedAuditEventId".to_owned(), 1),
            ("auditEvents[2].id".to_owned(), "ValidationException".to_owned(), 1),
            ("auditEvents[1].eventDataChecksum".to_owned(), "InvalidChecksum".to_owned(), 3),
            ("auditEvents[2].id".to_owned(), "ValidationException".to_owned(), 4),
        ]
    );
    assert_eq!(report["summary"]["events"], 4);
    assert_eq!(report["valid"], false);

    // A single entry, with a correct checksum.
    let entry = serde_json::json!({"id": "e-1", "eventData": VALID, "eventDataChecksum": audit_event_checksum(VALID)})
        .to_string();
    let out = dir.run(&["validate", "-"], Some(&entry));
    assert_eq!(out.code, 0, "{}", out.stdout);
}

fn audit_event_checksum(data: &str) -> String {
    audit_event::checksum::checksum(data.as_bytes())
}

#[test]
fn json_report_shape() {
    let dir = Dir::new();
    let out = dir.run(&["validate", "--json", "-"], Some("{\"version\":\"v1\"}"));
    assert_eq!(out.code, 1);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let first = &report["events"][0];
    assert_eq!(first["file"], "<stdin>");
    assert_eq!(first["valid"], false);
    let problem = &first["problems"][0];
    for key in ["path", "rule", "code", "message", "line", "column"] {
        assert!(!problem[key].is_null(), "{key} missing in {problem}");
    }
    assert_eq!(
        report["summary"],
        serde_json::json!({"files": 1, "events": 1, "valid": 0, "invalid": 1, "problems": 6})
    );
}

#[test]
fn without_the_catalog_other_sources_pass() {
    let dir = Dir::new();
    let custom = VALID.replace("com.nordcloudapp.com.autobackup", "com.example.billing");
    let out = dir.run(&["validate", "-"], Some(&custom));
    assert_eq!(out.code, 1);
    assert!(out.stdout.contains("[InvalidEventSource/catalog_event_source]"), "{}", out.stdout);
    let out = dir.run(&["validate", "--no-catalog", "-"], Some(&custom));
    assert_eq!(out.code, 0, "{}", out.stdout);
}

#[test]
fn quiet_prints_only_the_summary() {
    let dir = Dir::new();
    let out = dir.run(&["validate", "-q", upstream_dir().to_str().unwrap()], None);
    assert_eq!((out.code, out.stdout.as_str()), (1, "5 events in 5 files: 0 valid, 5 invalid (22 problems)\n"));
}

#[test]
fn errors_exit_2_with_a_reason() {
    let dir = Dir::new();
    let out = dir.run(&["validate", "missing.json"], None);
    assert_eq!(out.code, 2);
    assert!(out.stderr.starts_with("error: opening missing.json: "), "{}", out.stderr);
    let out = dir.run(&["validate", "-"], Some("   \n"));
    assert_eq!(out.code, 1);
    assert!(out.stdout.contains("holds no events"), "{}", out.stdout);
    let out = dir.run(&["validate"], None);
    assert_eq!(out.code, 2, "clap usage error");
}

/// The README's main command: every event type of the catalog, valid as sent to PutAuditEvents.
#[test]
fn the_shipped_example_events_cover_the_catalog_and_are_valid() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/events.ndjson");
    let out = Dir::new().run(&["validate", examples.to_str().unwrap()], None);
    assert_eq!((out.code, out.stdout.as_str()), (0, "16 events in 1 file: all valid\n"), "{}", out.stderr);
    let text = std::fs::read_to_string(&examples).unwrap();
    let mut seen: Vec<(String, String)> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|e| (e["eventSource"].as_str().unwrap().to_owned(), e["eventName"].as_str().unwrap().to_owned()))
        .collect();
    seen.sort();
    let catalog = audit_event::Catalog::embedded();
    let mut all: Vec<(String, String)> = catalog
        .applications()
        .iter()
        .flat_map(|a| a.event_types.iter().map(move |t| (a.event_source.clone(), t.name.clone())))
        .collect();
    all.sort();
    assert_eq!(seen, all);
}
