//! One table row (at least) per rule: the mutation of a valid event and exactly the violations
//! (path, rule) it must produce.

use serde_json::{Value, json};

use super::*;
use crate::{Catalog, ErrorCode};

/// A complete, valid AutoBackup event (valid for the catalog too).
fn base() -> Value {
    json!({
        "version": "v1",
        "userIdentity": {"type": "USER", "principalId": "jane@example.com", "details": {"team": "ops"}},
        "userAgent": "klarity/1.0",
        "eventSource": "com.nordcloudapp.com.autobackup",
        "eventName": "backup.started",
        "eventTime": "2024-07-12T10:55:00Z",
        "UID": "0190a6b4-2222-7a3f-9d2b-5e8f1a2b3c4d",
        "requestParameters": {
            "resourceType": "DynamoDB",
            "resourceArn": "arn:aws:dynamodb:eu-west-1:123456789012:table/orders",
            "region": "eu-west-1",
            "backupPolicy": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
        },
        "responseElements": {"ok": true},
        "errorCode": "None",
        "errorMessage": "none",
        "sourceIPAddress": "203.0.113.10",
        "recipientAccountId": "123456789012",
        "additionalEventData": {"k": "v"}
    })
}

/// `base()` with the value at a dotted path replaced (`Some`) or removed (`None`).
fn with(path: &str, value: Option<Value>) -> Value {
    let mut event = base();
    let mut parts: Vec<&str> = path.split('.').collect();
    let last = parts.pop().unwrap();
    let mut cursor = &mut event;
    for p in parts {
        cursor = cursor.get_mut(p).unwrap_or_else(|| panic!("no {p} in base event"));
    }
    let object = cursor.as_object_mut().unwrap();
    match value {
        Some(v) => {
            object.insert(last.to_owned(), v);
        }
        None => {
            object.remove(last);
        }
    }
    event
}

/// Validates and keeps only the (owned) violations, so callers may pass temporaries.
fn run(validator: &Validator<'_>, text: &str) -> Vec<Violation> {
    validator.validate(text).violations
}

fn violations(validator: &Validator<'_>, text: &str) -> Vec<(String, Rule)> {
    validator.validate(text).violations.into_iter().map(|v| (v.path, v.rule)).collect()
}

#[track_caller]
fn check(validator: &Validator<'_>, text: &str, expected: &[(&str, Rule)]) {
    let got = violations(validator, text);
    let expected: Vec<(String, Rule)> = expected.iter().map(|(p, r)| ((*p).to_owned(), *r)).collect();
    assert_eq!(got, expected, "input: {}", &text[..text.len().min(300)]);
}

fn schema() -> Validator<'static> {
    Validator::new(Stage::Put)
}

#[test]
fn the_base_event_is_valid_in_every_mode() {
    let catalog = Catalog::embedded();
    let text = base().to_string();
    for validator in [
        Validator::new(Stage::Put),
        Validator::new(Stage::Submit),
        Validator::new(Stage::Put).with_catalog(&catalog),
        Validator::new(Stage::Put).with_catalog(&catalog).with_channel_owner("123456789012"),
    ] {
        check(&validator, &text, &[]);
    }
}

#[test]
fn malformed_json_and_non_objects() {
    check(&schema(), "{", &[("eventData", Rule::Json)]);
    check(&schema(), r#"{"version": }"#, &[("eventData", Rule::Json)]);
    check(&schema(), "", &[("eventData", Rule::Json)]);
    check(&schema(), "{} trailing", &[("eventData", Rule::Json)]);
    check(&schema(), "[]", &[("eventData", Rule::NotObject)]);
    check(&schema(), "42", &[("eventData", Rule::NotObject)]);
    check(&schema(), r#""text""#, &[("eventData", Rule::NotObject)]);
    check(&schema(), "null", &[("eventData", Rule::NotObject)]);

    let v = run(&schema(), "{\n  \"version\": \"v1\",\n}");
    assert_eq!(v[0].offset, Some(21), "points at the closing brace after the trailing comma");
    assert!(v[0].message.starts_with("is not well-formed JSON: trailing comma"), "{}", v[0].message);
}

#[test]
fn every_required_field() {
    let required = [
        "version",
        "userIdentity",
        "userIdentity.type",
        "userIdentity.principalId",
        "eventSource",
        "eventName",
        "eventTime",
        "UID",
        "recipientAccountId",
    ];
    for path in required {
        let full = format!("eventData.{path}");
        // Missing, null, and (for strings) empty: all FieldNotFound.
        check(&schema(), &with(path, None).to_string(), &[(&full, Rule::Required)]);
        check(&schema(), &with(path, Some(Value::Null)).to_string(), &[(&full, Rule::Required)]);
        if path != "userIdentity" {
            check(&schema(), &with(path, Some(json!(""))).to_string(), &[(&full, Rule::Required)]);
        }
    }
    let missing = run(&schema(), &with("UID", None).to_string());
    assert_eq!(missing[0].code(), ErrorCode::FieldNotFound);
    assert_eq!(
        missing[0].message,
        "is required but missing; add \"UID\": the source's unique id of the request, e.g. a UUID"
    );
}

#[test]
fn optional_fields_may_be_absent_or_null() {
    for path in [
        "userAgent",
        "requestParameters",
        "responseElements",
        "errorCode",
        "errorMessage",
        "sourceIPAddress",
        "additionalEventData",
        "userIdentity.details",
    ] {
        check(&schema(), &with(path, None).to_string(), &[]);
        check(&schema(), &with(path, Some(Value::Null)).to_string(), &[]);
    }
}

#[test]
fn recipient_is_optional_only_when_submitted_to_the_relay() {
    let text = with("recipientAccountId", None).to_string();
    check(&Validator::new(Stage::Submit), &text, &[]);
    check(&Validator::new(Stage::Put), &text, &[("eventData.recipientAccountId", Rule::Required)]);
    // When present it is checked in both stages.
    let bad = with("recipientAccountId", Some(json!("1234"))).to_string();
    check(&Validator::new(Stage::Submit), &bad, &[("eventData.recipientAccountId", Rule::AccountId)]);
}

#[test]
fn wrong_types() {
    let cases = [
        ("version", json!(1)),
        ("userIdentity", json!("jane")),
        ("userIdentity.type", json!(["USER"])),
        ("userIdentity.principalId", json!(42)),
        ("userIdentity.details", json!("x")),
        ("userAgent", json!(true)),
        ("eventSource", json!({})),
        ("eventName", json!(1.5)),
        ("eventTime", json!(1_720_781_700)),
        ("UID", json!(7)),
        ("requestParameters", json!([1, 2])),
        ("responseElements", json!("ok")),
        ("errorCode", json!(500)),
        ("errorMessage", json!(false)),
        ("sourceIPAddress", json!(3_405_803_786u32)),
        ("recipientAccountId", json!(123_456_789_012u64)),
        ("additionalEventData", json!(1)),
    ];
    for (path, value) in cases {
        let full = format!("eventData.{path}");
        check(&schema(), &with(path, Some(value)).to_string(), &[(&full, Rule::Type)]);
    }
    let v = run(&schema(), &with("eventTime", Some(json!(5))).to_string());
    assert_eq!(v[0].message, "must be a string, found a number");
}

#[test]
fn every_length_limit_at_and_over_its_boundary() {
    let limits = [
        ("version", 256),
        ("userIdentity.type", 128),
        ("userIdentity.principalId", 1024),
        ("userAgent", 1024),
        ("eventSource", 1024),
        ("eventName", 1024),
        ("UID", 1024),
        ("errorCode", 256),
        ("errorMessage", 256),
    ];
    for (path, max) in limits {
        let full = format!("eventData.{path}");
        check(&schema(), &with(path, Some(json!("x".repeat(max)))).to_string(), &[]);
        // Characters, not bytes: `max` two-byte characters still fit.
        check(&schema(), &with(path, Some(json!("é".repeat(max)))).to_string(), &[]);
        check(&schema(), &with(path, Some(json!("x".repeat(max + 1)))).to_string(), &[(&full, Rule::MaxLength)]);
        let v = run(&schema(), &with(path, Some(json!("é".repeat(max + 1)))).to_string());
        assert_eq!(v[0].rule, Rule::MaxLength);
        assert_eq!(v[0].code(), ErrorCode::FieldTooLong);
        assert_eq!(v[0].message, format!("is {} characters long; the limit is {max}", max + 1));
    }
}

#[test]
fn object_size_limits() {
    /// An object whose JSON text is exactly `bytes` long: {"p":"xxxx"}.
    fn object_of(bytes: usize) -> Value {
        json!({"p": "x".repeat(bytes - 8)})
    }
    assert_eq!(object_of(100).to_string().len(), 100);
    for (path, max) in
        [("requestParameters", 100 * 1024), ("responseElements", 100 * 1024), ("additionalEventData", 28 * 1024)]
    {
        let full = format!("eventData.{path}");
        check(&schema(), &with(path, Some(object_of(max))).to_string(), &[]);
        check(&schema(), &with(path, Some(object_of(max + 1))).to_string(), &[(&full, Rule::MaxSize)]);
    }
    let v = run(&schema(), &with("additionalEventData", Some(object_of(30_000))).to_string());
    assert_eq!(v[0].code(), ErrorCode::FieldTooLong);
    assert_eq!(
        v[0].message,
        "is 30000 bytes of JSON; the limit is 28672 bytes (28 KiB), and CloudTrail rejects larger content"
    );
}

#[test]
fn an_event_larger_than_a_request_is_refused_unparsed() {
    let huge = format!("{{\"version\":\"{}\"}}", "x".repeat(limits::MAX_REQUEST_BYTES));
    check(&schema(), &huge, &[("eventData", Rule::EventSize)]);
}

#[test]
fn unknown_fields_are_named_with_a_suggestion() {
    let v = run(&schema(), &with("sourceIpAddress", Some(json!("1.2.3.4"))).to_string());
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].path, "eventData.sourceIpAddress");
    assert_eq!(v[0].rule, Rule::UnknownField);
    assert_eq!(v[0].message, "is not a field of the integration event schema; did you mean \"sourceIPAddress\"?");

    check(
        &schema(),
        &with("userIdentity.role", Some(json!("admin"))).to_string(),
        &[("eventData.userIdentity.role", Rule::UnknownField)],
    );
    let v = run(&schema(), &with("tenant", Some(json!("acme"))).to_string());
    assert!(v[0].message.contains("the fields are version, userIdentity,"), "{}", v[0].message);
    // A wrongly cased required field: unknown, and the real one missing.
    let mut event = with("UID", None);
    event["uid"] = json!("x");
    check(&schema(), &event.to_string(), &[("eventData.uid", Rule::UnknownField), ("eventData.UID", Rule::Required)]);
}

#[test]
fn duplicate_keys() {
    let text = base().to_string().replacen("\"version\":\"v1\"", "\"version\":\"v1\",\"version\":\"v2\"", 1);
    check(&schema(), &text, &[("eventData.version", Rule::DuplicateKey)]);
    // In requestParameters when the catalog types them (the object is parsed then anyway).
    let text =
        base().to_string().replacen("\"region\":\"eu-west-1\"", "\"region\":\"eu-west-1\",\"region\":\"us-east-1\"", 1);
    catalog_check(&text, &[("eventData.requestParameters.region", Rule::DuplicateKey)]);
    check(&schema(), &text, &[]);
    // Many keys take the sorting path.
    let mut params: Vec<String> = (0..40).map(|i| format!("\"k{i}\":{i}")).collect();
    params.push("\"k7\":0".into());
    let mut event = with("requestParameters", None).to_string();
    event.insert_str(1, &format!("\"requestParameters\":{{{}}},", params.join(",")));
    let found = violations(&Validator::new(Stage::Put).with_catalog(&Catalog::embedded()), &event);
    assert!(found.contains(&("eventData.requestParameters.k7".into(), Rule::DuplicateKey)), "{found:?}");
    assert_eq!(found.iter().filter(|(_, r)| *r == Rule::DuplicateKey).count(), 1);
    // Free-form objects are not parsed, so their duplicate keys pass.
    let text = base().to_string().replacen("\"ok\":true", "\"ok\":true,\"ok\":false", 1);
    check(&schema(), &text, &[]);
}

#[test]
fn event_time() {
    check(&schema(), &with("eventTime", Some(json!("2024-07-12T10:55:00"))).to_string(), &[]);
    check(&schema(), &with("eventTime", Some(json!("2024-07-12T10:55:00.123Z"))).to_string(), &[]);
    for bad in ["202-07-12T10:55:00", "2024-07-12", "12/07/2024 10:55", "2024-07-12T10:55:00+01:00", "yesterday"] {
        check(&schema(), &with("eventTime", Some(json!(bad))).to_string(), &[("eventData.eventTime", Rule::EventTime)]);
    }
    let text = base().to_string();
    let checked = schema().validate(&text);
    assert_eq!(checked.event_time.map(EventTime::unix_seconds), Some(1_720_781_700));
}

#[test]
fn source_ip_address() {
    for ok in ["203.0.113.10", "::1", "2001:db8::8a2e:370:7334", "::ffff:192.0.2.1"] {
        check(&schema(), &with("sourceIPAddress", Some(json!(ok))).to_string(), &[]);
    }
    for bad in ["300.1.1.1", "example.com", "1.2.3", "2001:db8:::1", " 1.2.3.4", "10.0.0.1/8"] {
        check(
            &schema(),
            &with("sourceIPAddress", Some(json!(bad))).to_string(),
            &[("eventData.sourceIPAddress", Rule::IpAddress)],
        );
    }
}

#[test]
fn recipient_account() {
    for bad in ["12345678901", "1234567890123", "12345678901a", "123 456 789 0"] {
        check(
            &schema(),
            &with("recipientAccountId", Some(json!(bad))).to_string(),
            &[("eventData.recipientAccountId", Rule::AccountId)],
        );
    }
    let owned = Validator::new(Stage::Put).with_channel_owner("999999999999");
    check(&owned, &base().to_string(), &[("eventData.recipientAccountId", Rule::Recipient)]);
    let v = run(&owned, &base().to_string());
    assert_eq!(v[0].code(), ErrorCode::InvalidRecipient);
    assert_eq!(
        v[0].message,
        "\"123456789012\" is not the account that owns the channel (999999999999); CloudTrail requires them to be equal"
    );
}

#[test]
fn all_violations_are_reported_at_once() {
    let event = json!({"version": 2, "userIdentity": {}, "eventSource": "", "eventTime": "soon", "UID": "x", "sourceIPAddress": "nowhere"});
    check(
        &schema(),
        &event.to_string(),
        &[
            ("eventData.version", Rule::Type),
            ("eventData.userIdentity.type", Rule::Required),
            ("eventData.userIdentity.principalId", Rule::Required),
            ("eventData.eventSource", Rule::Required),
            ("eventData.eventName", Rule::Required),
            ("eventData.eventTime", Rule::EventTime),
            ("eventData.sourceIPAddress", Rule::IpAddress),
            ("eventData.recipientAccountId", Rule::Required),
        ],
    );
}

#[test]
fn offsets_point_at_the_value() {
    let text = "{\n  \"version\": 7\n}";
    let v = run(&schema(), text);
    let version = v.iter().find(|v| v.path == "eventData.version").unwrap();
    assert_eq!(version.offset, Some(text.find('7').unwrap()));
    // Strings with escapes still map back to the input.
    let text = with("eventTime", Some(json!("bad\"time"))).to_string();
    let v = run(&schema(), &text);
    assert_eq!(v[0].offset, Some(text.find("\"bad").unwrap()));
}

#[test]
fn fields_are_returned_for_later_stages() {
    let text = base().to_string();
    let checked = schema().validate(&text);
    assert_eq!(checked.event_source.as_deref(), Some("com.nordcloudapp.com.autobackup"));
    assert_eq!(checked.event_name.as_deref(), Some("backup.started"));
    assert_eq!(checked.uid.as_deref(), Some("0190a6b4-2222-7a3f-9d2b-5e8f1a2b3c4d"));
    assert_eq!(checked.recipient_account_id.as_deref(), Some("123456789012"));
}

// The catalog's rules.

fn catalog_check(text: &str, expected: &[(&str, Rule)]) {
    let catalog = Catalog::embedded();
    check(&Validator::new(Stage::Put).with_catalog(&catalog), text, expected);
}

#[test]
fn catalog_unknown_event_source_suggests_the_reserved_one() {
    let catalog = Catalog::embedded();
    let validator = Validator::new(Stage::Put).with_catalog(&catalog);
    // The anchors note that the reserved sources were once written without ".com".
    let v = run(&validator, &with("eventSource", Some(json!("com.nordcloudapp.autobackup"))).to_string());
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].rule, Rule::CatalogEventSource);
    assert_eq!(v[0].code(), ErrorCode::InvalidEventSource);
    assert!(v[0].message.contains("did you mean \"com.nordcloudapp.com.autobackup\"?"), "{}", v[0].message);
    catalog_check(
        &with("eventSource", Some(json!("com.example.other"))).to_string(),
        &[("eventData.eventSource", Rule::CatalogEventSource)],
    );
}

#[test]
fn catalog_unknown_event_name() {
    catalog_check(
        &with("eventName", Some(json!("backup.deleted"))).to_string(),
        &[("eventData.eventName", Rule::CatalogEventName)],
    );
    let catalog = Catalog::embedded();
    let v = run(
        &Validator::new(Stage::Put).with_catalog(&catalog),
        &with("eventName", Some(json!("backup.start"))).to_string(),
    );
    assert_eq!(
        v[0].message,
        "\"backup.start\" is not an event type of AutoBackup (com.nordcloudapp.com.autobackup); did you mean \"backup.started\"? (known: backup.started, backup.failed, backup.completed)"
    );
}

#[test]
fn catalog_uid_must_be_a_uuid() {
    catalog_check(&with("UID", Some(json!("UUID"))).to_string(), &[("eventData.UID", Rule::CatalogUid)]);
    catalog_check(&with("UID", Some(json!("0190A6B4-2222-7A3F-9D2B-5E8F1A2B3C4D"))).to_string(), &[]);
    // Without the catalog any non-empty UID is fine.
    check(&schema(), &with("UID", Some(json!("UUID"))).to_string(), &[]);
}

#[test]
fn catalog_parameters_missing_unknown_and_mistyped() {
    catalog_check(
        &with("requestParameters.backupPolicy", None).to_string(),
        &[("eventData.requestParameters.backupPolicy", Rule::CatalogParameterMissing)],
    );
    catalog_check(
        &with("requestParameters", None).to_string(),
        &[
            ("eventData.requestParameters.backupPolicy", Rule::CatalogParameterMissing),
            ("eventData.requestParameters.region", Rule::CatalogParameterMissing),
            ("eventData.requestParameters.resourceArn", Rule::CatalogParameterMissing),
            ("eventData.requestParameters.resourceType", Rule::CatalogParameterMissing),
        ],
    );
    catalog_check(
        &with("requestParameters.size", Some(json!(3))).to_string(),
        &[("eventData.requestParameters.size", Rule::CatalogParameterUnknown)],
    );
    let mistyped = [
        ("requestParameters.backupPolicy", json!("UUID")),
        ("requestParameters.backupPolicy", json!(12)),
        ("requestParameters.resourceArn", json!("ARN")),
        ("requestParameters.resourceArn", json!("arn:aws:dynamodb")),
        ("requestParameters.resourceArn", json!("arn:nope:dynamodb:eu-west-1:123456789012:table/x")),
        ("requestParameters.region", json!("Europe")),
        ("requestParameters.region", json!("eu_west_1")),
        ("requestParameters.resourceType", json!("x".repeat(129))),
    ];
    for (path, value) in mistyped {
        let full = format!("eventData.{path}");
        catalog_check(&with(path, Some(value)).to_string(), &[(&full, Rule::CatalogParameterType)]);
    }
}

#[test]
fn catalog_parameter_types_of_other_applications() {
    let catalog = Catalog::embedded();
    let validator = Validator::new(Stage::Submit).with_catalog(&catalog);
    let patch = |params: Value| {
        json!({"version": "v1", "userIdentity": {"type": "SERVICE", "principalId": "p"},
               "eventSource": "com.nordcloudapp.com.autopatcher", "eventName": "baselinePatching.completed",
               "eventTime": "2024-07-12T03:10:00Z", "UID": "0190a6b5-3333-7a3f-9d2b-5e8f1a2b3c4f", "requestParameters": params})
        .to_string()
    };
    let ok = json!({"machinesCount": 30, "updatedCount": 20, "skippedCount": 3, "noUpdatesCount": 7});
    check(&validator, &patch(ok.clone()), &[]);
    for (key, value, message) in [
        ("machinesCount", json!("30"), "must be an integer ≥ 0, found a string"),
        ("machinesCount", json!(30.5), "must be an integer ≥ 0, found 30.5"),
        ("machinesCount", json!(-1), "is -1; it must be an integer ≥ 0"),
        ("machinesCount", json!(null), "must be an integer ≥ 0, found null"),
    ] {
        let mut params = ok.clone();
        params[key] = value;
        let v = run(&validator, &patch(params));
        assert_eq!(v.len(), 1, "{key}: {:?}", v);
        assert_eq!(v[0].rule, Rule::CatalogParameterType);
        assert_eq!(v[0].message, message);
    }

    let deploy = |params: Value| {
        json!({"version": "v1", "userIdentity": {"type": "USER", "principalId": "p"},
               "eventSource": "com.nordcloudapp.com.maestro", "eventName": "deployment.created",
               "eventTime": "2024-07-12T10:55:00Z", "UID": "0190a6b6-4444-7a3f-9d2b-5e8f1a2b3c4d", "requestParameters": params})
        .to_string()
    };
    let ok = json!({"deploymentId": "5c4b3a29-1807-4f6e-9d5c-4b3a29180706", "deploymentName": "lz", "awsAccountId": "123456789012", "organizationId": "1"});
    check(&validator, &deploy(ok.clone()), &[]);
    let mut bad = ok.clone();
    bad["awsAccountId"] = json!("00000000000");
    check(&validator, &deploy(bad), &[("eventData.requestParameters.awsAccountId", Rule::CatalogParameterType)]);

    let image = json!({"version": "v1", "userIdentity": {"type": "USER", "principalId": "p"},
        "eventSource": "com.nordcloudapp.com.imagefactory", "eventName": "image.created",
        "eventTime": "2024-07-12T10:55:00Z", "UID": "0190a6b3-1111-7a3f-9d2b-5e8f1a2b3c4d",
        "requestParameters": {"templateId": "3b9d6c1e-2f4a-4b8c-9d0e-1f2a3b4c5d6e", "osType": "windows", "osVersion": "2019", "hardening": "Level_1"}});
    let v = run(&validator, &image.to_string());
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].message, "is \"windows\"; it must be one of Windows, Linux; did you mean \"Windows\"?");
}

#[test]
fn catalog_violations_come_with_schema_violations() {
    let mut event = with("requestParameters.resourceArn", Some(json!("ARN")));
    event["eventTime"] = json!("202-07-12T10:55:00");
    catalog_check(
        &event.to_string(),
        &[
            ("eventData.eventTime", Rule::EventTime),
            ("eventData.requestParameters.resourceArn", Rule::CatalogParameterType),
        ],
    );
}

#[test]
fn helpers() {
    assert!(is_uuid("0190a6b4-2222-7a3f-9d2b-5e8f1a2b3c4d"));
    assert!(!is_uuid("0190a6b4-2222-7a3f-9d2b-5e8f1a2b3c4"));
    assert!(!is_uuid("0190a6b4x2222-7a3f-9d2b-5e8f1a2b3c4d"));
    assert!(!is_uuid("0190a6b4-2222-7a3f-9d2b-5e8f1a2b3c4g"));
    assert!(is_account_id("000000000000"));
    assert!(!is_account_id("٠١٢٣٤٥٦٧٨٩٠١"));
    assert_eq!(offset_of_line_column("ab\ncd", 2, 2), Some(4));
    assert_eq!(offset_of_line_column("ab", 5, 1), None);
}

/// Every rule has at least one failing case here, and the table covers `Rule::ALL`: adding a rule
/// without a failing case fails this test. Each case must produce exactly its rule.
#[test]
fn every_rule_has_a_failing_case() {
    use crate::AuditEvent;

    let catalog = Catalog::embedded();
    let validator = Validator::new(Stage::Put).with_catalog(&catalog).with_channel_owner("123456789012");
    let dup = base().to_string().replacen("\"version\":\"v1\"", "\"version\":\"v1\",\"version\":\"v2\"", 1);
    let cases: Vec<(Rule, String)> = vec![
        (Rule::Json, "{\"version\":".into()),
        (Rule::NotObject, "[1]".into()),
        (Rule::Surrogate, base().to_string().replacen("jane@example.com", "jane\\ud800", 1)),
        (Rule::Required, with("version", None).to_string()),
        (Rule::Type, with("version", Some(json!(1))).to_string()),
        (Rule::MaxLength, with("errorCode", Some(json!("E".repeat(257)))).to_string()),
        (Rule::MaxSize, with("additionalEventData", Some(json!({"p": "x".repeat(28 * 1024)}))).to_string()),
        (Rule::EventSize, " ".repeat(limits::MAX_REQUEST_BYTES + 1)),
        (Rule::UnknownField, with("tenantId", Some(json!("acme"))).to_string()),
        (Rule::DuplicateKey, dup),
        (Rule::EventTime, with("eventTime", Some(json!("202-07-12T10:55:00"))).to_string()),
        (Rule::IpAddress, with("sourceIPAddress", Some(json!("10.0.0.256"))).to_string()),
        (Rule::AccountId, with("recipientAccountId", Some(json!("42"))).to_string()),
        (Rule::Recipient, with("recipientAccountId", Some(json!("210987654321"))).to_string()),
        (Rule::CatalogEventSource, with("eventSource", Some(json!("com.example.x"))).to_string()),
        (Rule::CatalogEventName, with("eventName", Some(json!("backup.paused"))).to_string()),
        (Rule::CatalogUid, with("UID", Some(json!("UUID"))).to_string()),
        (Rule::CatalogParameterMissing, with("requestParameters.region", None).to_string()),
        (Rule::CatalogParameterUnknown, with("requestParameters.regoin", Some(json!("eu-west-1"))).to_string()),
        (Rule::CatalogParameterType, with("requestParameters.backupPolicy", Some(json!("UUID"))).to_string()),
    ];
    let mut covered: Vec<Rule> = Vec::new();
    for (rule, text) in &cases {
        let found: Vec<Rule> = validator.validate(text).violations.iter().map(|v| v.rule).collect();
        assert_eq!(found, vec![*rule], "case for {rule}");
        covered.push(*rule);
    }
    // The checksum rule applies to PutAuditEvents entries.
    let mut entry = AuditEvent::new("e1", base().to_string());
    entry.event_data_checksum = Some("AAAA".into());
    let found: Vec<Rule> = entry.validate(&validator).violations.iter().map(|v| v.rule).collect();
    assert_eq!(found, vec![Rule::Checksum]);
    covered.push(Rule::Checksum);

    for rule in Rule::ALL {
        assert!(covered.contains(&rule), "no failing case for rule {rule}");
        assert!(!rule.name().is_empty());
    }
}

#[test]
fn absent_keys_are_told_apart_from_null_ones() {
    let text = with("UID", None).to_string();
    let checked = schema().validate(&text);
    assert!(checked.absent.uid && !checked.absent.recipient_account_id);
    let text = with("UID", Some(Value::Null)).to_string();
    assert!(!schema().validate(&text).absent.uid);
    let text = with("recipientAccountId", None).to_string();
    assert!(schema().validate(&text).absent.recipient_account_id);
}

/// A `\u` escape of half a UTF-16 surrogate pair decodes to no character: serde_json refuses it
/// when it reads the string, so an event holding one would poison every reader downstream. Every
/// string is checked, wherever it is (keys, nested objects, free-form maps).
#[test]
fn lone_surrogate_escapes_are_refused_wherever_they_are() {
    let catalog = Catalog::embedded();
    let validator = Validator::new(Stage::Put).with_catalog(&catalog).with_channel_owner("123456789012");
    let text = base().to_string();
    let cases = [
        (
            "\"principalId\":\"jane@example.com\"",
            "\"principalId\":\"ops\\ud800x\"",
            "eventData.userIdentity.principalId",
        ),
        (
            "\"principalId\":\"jane@example.com\"",
            "\"principalId\":\"ops\\udc00\"",
            "eventData.userIdentity.principalId",
        ),
        ("\"team\":\"ops\"", "\"team\":\"ops\\uD83D\"", "eventData.userIdentity.details.team"),
        ("\"k\":\"v\"", "\"k\\udfff\":\"v\"", "eventData.additionalEventData"),
        ("\"ok\":true", "\"ok\":[\"\\ud83d\\u0041\"]", "eventData.responseElements.ok"),
        ("\"userAgent\":\"klarity/1.0\"", "\"userAgent\":\"\\\\ud800\\ud800\"", "eventData.userAgent"),
    ];
    for (from, to, path) in cases {
        let poisoned = text.replacen(from, to, 1);
        assert_ne!(poisoned, text, "{to}");
        let checked = validator.validate(&poisoned);
        let found: Vec<(&str, Rule, ErrorCode)> =
            checked.violations.iter().map(|v| (v.path.as_str(), v.rule, v.code())).collect();
        assert_eq!(found, vec![(path, Rule::Surrogate, ErrorCode::InvalidData)], "{to}");
        assert!(serde_json::from_str::<Value>(&poisoned).is_err(), "serde_json refuses it too: {to}");
    }
    // Pairs, and escaped backslashes before a `u`, are fine.
    for fine in
        ["\"principalId\":\"ops\\ud83d\\ude00\"", "\"principalId\":\"ops\\\\ud800\"", "\"principalId\":\"\\u00e9\""]
    {
        let text = text.replacen("\"principalId\":\"jane@example.com\"", fine, 1);
        assert_eq!(run(&validator, &text), vec![], "{fine}");
    }
}
