//! The five example events published with the seed are invalid for exactly their real defects:
//! the placeholder `eventTime` "202-07-12T10:55:00", the missing `recipientAccountId`, the
//! placeholder "UUID"/"ARN" values where the catalog types a UUID or an ARN, and AutoPatcher's
//! misspelt `noUpdatesCOunt`. The messages a user sees are pinned here.

use audit_event::{Catalog, Stage, Validator};
use expect_test::{Expect, expect};
use serde_json::value::RawValue;

fn check(app: &str, expected: Expect) {
    let path = crate::data("upstream").join(format!("{app}.example.json"));
    let text = std::fs::read_to_string(&path).unwrap();
    // The files wrap the event as {"eventData": {...}}.
    let wrapper: std::collections::BTreeMap<String, &RawValue> = serde_json::from_str(&text).unwrap();
    let catalog = Catalog::embedded();
    let validator = Validator::new(Stage::Put).with_catalog(&catalog);
    let checked = validator.validate(wrapper["eventData"].get());
    let rendered: Vec<String> = checked.violations.iter().map(ToString::to_string).collect();
    expected.assert_eq(&rendered.join("\n"));

    // As submitted to the relay, recipientAccountId is not required; the rest stays.
    let submit = Validator::new(Stage::Submit).with_catalog(&catalog);
    let submitted = submit.validate(wrapper["eventData"].get());
    assert_eq!(submitted.violations.len(), checked.violations.len() - 1);
    assert!(submitted.violations.iter().all(|v| v.path != "eventData.recipientAccountId"));
}

#[test]
fn klarity_core() {
    check(
        "klarity",
        expect![[r#"
            eventData.eventTime: "202-07-12T10:55:00" is not a valid eventTime: the year must have 4 digits, found 3 ("202"); expected YYYY-MM-DDTHH:MM:SSZ in UTC, e.g. 2024-07-12T10:55:00Z [InvalidData/event_time]
            eventData.recipientAccountId: is required but missing; add "recipientAccountId": the 12-digit AWS account id that owns the channel (the relay fills it for submitted events) [FieldNotFound/required]
            eventData.UID: "UUID" is not a UUID; Klarity Core identifies each request with a UUID such as 0190a6b2-4c1e-7a3f-9d2b-5e8f1a2b3c4d [InvalidData/catalog_uid]
            eventData.requestParameters.ruleId: is "UUID", which is not a UUID [InvalidData/catalog_parameter_type]"#]],
    );
}

#[test]
fn image_factory() {
    check(
        "imagefactory",
        expect![[r#"
            eventData.eventTime: "202-07-12T10:55:00" is not a valid eventTime: the year must have 4 digits, found 3 ("202"); expected YYYY-MM-DDTHH:MM:SSZ in UTC, e.g. 2024-07-12T10:55:00Z [InvalidData/event_time]
            eventData.recipientAccountId: is required but missing; add "recipientAccountId": the 12-digit AWS account id that owns the channel (the relay fills it for submitted events) [FieldNotFound/required]
            eventData.UID: "UUID" is not a UUID; Image Factory identifies each request with a UUID such as 0190a6b2-4c1e-7a3f-9d2b-5e8f1a2b3c4d [InvalidData/catalog_uid]
            eventData.requestParameters.templateId: is "UUID", which is not a UUID [InvalidData/catalog_parameter_type]"#]],
    );
}

#[test]
fn autobackup() {
    check(
        "autobackup",
        expect![[r#"
            eventData.eventTime: "202-07-12T10:55:00" is not a valid eventTime: the year must have 4 digits, found 3 ("202"); expected YYYY-MM-DDTHH:MM:SSZ in UTC, e.g. 2024-07-12T10:55:00Z [InvalidData/event_time]
            eventData.recipientAccountId: is required but missing; add "recipientAccountId": the 12-digit AWS account id that owns the channel (the relay fills it for submitted events) [FieldNotFound/required]
            eventData.UID: "UUID" is not a UUID; AutoBackup identifies each request with a UUID such as 0190a6b2-4c1e-7a3f-9d2b-5e8f1a2b3c4d [InvalidData/catalog_uid]
            eventData.requestParameters.resourceArn: is "ARN", which is not an ARN [InvalidData/catalog_parameter_type]
            eventData.requestParameters.backupPolicy: is "UUID", which is not a UUID [InvalidData/catalog_parameter_type]"#]],
    );
}

#[test]
fn autopatcher() {
    check(
        "autopatcher",
        expect![[r#"
            eventData.eventTime: "202-07-12T10:55:00" is not a valid eventTime: the year must have 4 digits, found 3 ("202"); expected YYYY-MM-DDTHH:MM:SSZ in UTC, e.g. 2024-07-12T10:55:00Z [InvalidData/event_time]
            eventData.recipientAccountId: is required but missing; add "recipientAccountId": the 12-digit AWS account id that owns the channel (the relay fills it for submitted events) [FieldNotFound/required]
            eventData.UID: "UUID" is not a UUID; AutoPatcher identifies each request with a UUID such as 0190a6b2-4c1e-7a3f-9d2b-5e8f1a2b3c4d [InvalidData/catalog_uid]
            eventData.requestParameters.noUpdatesCOunt: is not a request parameter of baselinePatching.completed; did you mean "noUpdatesCount"? [InvalidData/catalog_parameter_unknown]
            eventData.requestParameters.noUpdatesCount: is required by baselinePatching.completed but missing (an integer ≥ 0) [FieldNotFound/catalog_parameter_missing]"#]],
    );
}

#[test]
fn maestro() {
    check(
        "maestro",
        expect![[r#"
            eventData.eventTime: "202-07-12T10:55:00" is not a valid eventTime: the year must have 4 digits, found 3 ("202"); expected YYYY-MM-DDTHH:MM:SSZ in UTC, e.g. 2024-07-12T10:55:00Z [InvalidData/event_time]
            eventData.recipientAccountId: is required but missing; add "recipientAccountId": the 12-digit AWS account id that owns the channel (the relay fills it for submitted events) [FieldNotFound/required]
            eventData.UID: "UUID" is not a UUID; Maestro identifies each request with a UUID such as 0190a6b2-4c1e-7a3f-9d2b-5e8f1a2b3c4d [InvalidData/catalog_uid]
            eventData.requestParameters.deploymentId: is "UUID", which is not a UUID [InvalidData/catalog_parameter_type]"#]],
    );
}

/// Fixing exactly the reported defects makes each example valid: nothing else was wrong.
#[test]
fn fixing_the_reported_defects_makes_them_valid() {
    let catalog = Catalog::embedded();
    let validator = Validator::new(Stage::Put).with_catalog(&catalog);
    let uuids = [
        "6f1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f",
        "0190a6b2-4c1e-7a3f-9d2b-5e8f1a2b3c4d",
        "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
    ];
    for app in ["klarity", "imagefactory", "autobackup", "autopatcher", "maestro"] {
        let text = std::fs::read_to_string(crate::data("upstream").join(format!("{app}.example.json"))).unwrap();
        let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let event = value["eventData"].as_object_mut().unwrap();
        event.insert("eventTime".into(), "2022-07-12T10:55:00Z".into());
        event.insert("UID".into(), uuids[1].into());
        event.insert("recipientAccountId".into(), "123456789012".into());
        let params = event["requestParameters"].as_object_mut().unwrap();
        for (i, (key, v)) in params.iter_mut().enumerate() {
            if v == "UUID" {
                *v = uuids[i % uuids.len()].into();
            } else if v == "ARN" {
                *v = "arn:aws:dynamodb:eu-west-1:123456789012:table/t".into();
            }
            let _ = key;
        }
        if let Some(count) = params.remove("noUpdatesCOunt") {
            params.insert("noUpdatesCount".into(), count);
        }
        let fixed = value["eventData"].to_string();
        let checked = validator.validate(&fixed);
        assert!(checked.is_valid(), "{app}: {:?}", checked.violations);
    }
}
