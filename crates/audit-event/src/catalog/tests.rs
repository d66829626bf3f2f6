use serde_json::Value;

use super::*;
use crate::validate::{Stage, Validator};

/// The seed's applications, event sources and event types (seed README and its sources/ docs).
const SEED: [(&str, &str, &[&str]); 5] = [
    (
        "Klarity Core",
        "com.nordcloudapp.com.klarity",
        &["discoveryRule.created", "discoveryRule.deleted", "account.added", "account.deleted", "auditTrail.viewed"],
    ),
    ("Image Factory", "com.nordcloudapp.com.imagefactory", &["image.created", "image.distributed", "image.failed"]),
    ("AutoBackup", "com.nordcloudapp.com.autobackup", &["backup.started", "backup.failed", "backup.completed"]),
    (
        "AutoPatcher",
        "com.nordcloudapp.com.autopatcher",
        &["baselinePatching.started", "baselinePatching.failed", "baselinePatching.completed"],
    ),
    ("Maestro", "com.nordcloudapp.com.maestro", &["deployment.created", "deployment.completed"]),
];

#[test]
fn the_embedded_catalog_holds_exactly_the_seed_applications() {
    let catalog = Catalog::embedded();
    assert_eq!(catalog.applications().len(), SEED.len());
    for (name, source, types) in SEED {
        let app = catalog.application(source).unwrap_or_else(|| panic!("{source} missing"));
        assert_eq!(app.name, name);
        let names: Vec<&str> = app.event_types.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, types, "{source}");
        assert_eq!(app.uid, UidFormat::Uuid);
        assert!(!app.sample_queries.is_empty(), "{source} has sample queries for the console's SQL editor");
        for q in &app.sample_queries {
            assert!(q.sql.contains(source), "{source}'s sample {:?} reads its own events", q.name);
        }
        for t in &app.event_types {
            assert!(!t.description.is_empty(), "{}: {} has no description", source, t.name);
            assert!(!t.parameters.is_empty(), "{}: {} has no parameters", source, t.name);
        }
    }
}

#[test]
fn the_request_parameters_follow_the_upstream_examples() {
    let catalog = Catalog::embedded();
    let params = |source: &str, ty: &str| -> Vec<(String, &'static str, bool)> {
        let t = catalog.application(source).unwrap().event_type(ty).unwrap();
        t.parameters.iter().map(|p| (p.name.clone(), p.kind.name(), p.required)).collect()
    };
    let owned =
        |v: &[(&str, &'static str, bool)]| v.iter().map(|(n, k, r)| ((*n).to_owned(), *k, *r)).collect::<Vec<_>>();
    assert_eq!(
        params("com.nordcloudapp.com.klarity", "discoveryRule.created"),
        owned(&[
            ("application", "string", true),
            ("environment", "string", true),
            ("ruleId", "uuid", true),
            ("ruleName", "string", true)
        ])
    );
    assert_eq!(
        params("com.nordcloudapp.com.imagefactory", "image.created"),
        owned(&[
            ("hardening", "enum", true),
            ("osType", "enum", true),
            ("osVersion", "string", true),
            ("templateId", "uuid", true)
        ])
    );
    assert_eq!(
        params("com.nordcloudapp.com.autobackup", "backup.started"),
        owned(&[
            ("backupPolicy", "uuid", true),
            ("region", "aws-region", true),
            ("resourceArn", "arn", true),
            ("resourceType", "string", true)
        ])
    );
    assert_eq!(
        params("com.nordcloudapp.com.autopatcher", "baselinePatching.completed"),
        owned(&[
            ("machinesCount", "integer", true),
            ("noUpdatesCount", "integer", true),
            ("skippedCount", "integer", true),
            ("updatedCount", "integer", true)
        ])
    );
    assert_eq!(
        params("com.nordcloudapp.com.maestro", "deployment.created"),
        owned(&[
            ("awsAccountId", "account-id", true),
            ("deploymentId", "uuid", true),
            ("deploymentName", "string", true),
            ("organizationId", "string", true)
        ])
    );
}

#[test]
fn every_example_is_valid_as_submitted_and_as_put() {
    let catalog = Catalog::embedded();
    let submit = Validator::new(Stage::Submit).with_catalog(&catalog);
    let put = Validator::new(Stage::Put).with_catalog(&catalog).with_channel_owner("123456789012");
    let mut count = 0;
    for app in catalog.applications() {
        for t in &app.event_types {
            assert_eq!(t.example.get("eventSource"), Some(&Value::String(app.event_source.clone())));
            assert_eq!(t.example.get("eventName"), Some(&Value::String(t.name.clone())));
            let text = Value::Object(t.example.clone()).to_string();
            let checked = submit.validate(&text);
            assert!(checked.is_valid(), "{} {}: {:?}", app.event_source, t.name, checked.violations);
            // As the relay sends it: recipientAccountId filled in.
            let mut complete = t.example.clone();
            complete.insert("recipientAccountId".into(), Value::String("123456789012".into()));
            let text = Value::Object(complete).to_string();
            let checked = put.validate(&text);
            assert!(checked.is_valid(), "{} {}: {:?}", app.event_source, t.name, checked.violations);
            // And an example without recipientAccountId is incomplete for PutAuditEvents.
            let text = Value::Object(t.example.clone()).to_string();
            assert!(!put.validate(&text).is_valid());
            count += 1;
        }
    }
    assert_eq!(count, 16);
}

/// A sixth application, kept as a data file like the real ones (`tests/data/catalog-extra/`).
const SIXTH: &str = include_str!("../../tests/data/catalog-extra/costguard.toml");

#[test]
fn a_sixth_application_is_one_more_file() {
    let mut files: Vec<(&str, &str)> = Catalog::embedded_files().to_vec();
    files.push(("costguard.toml", SIXTH));
    let catalog = Catalog::from_files(files).unwrap();
    assert_eq!(catalog.applications().len(), 6);
    let app = catalog.application("com.nordcloudapp.com.costguard").unwrap();
    assert_eq!(app.file, "costguard.toml");
    let validator = Validator::new(Stage::Submit).with_catalog(&catalog);
    let event = r#"{"version":"v1","userIdentity":{"type":"SERVICE","principalId":"c"},"eventSource":"com.nordcloudapp.com.costguard",
        "eventName":"budget.exceeded","eventTime":"2024-07-12T10:55:00Z","UID":"0190a6b7-5555-7a3f-9d2b-5e8f1a2b3c4d",
        "requestParameters":{"budgetId":"0190a6b7-5555-7a3f-9d2b-5e8f1a2b3c4e","percent":1001,"notified":"yes","at":"noon"}}"#;
    let found: Vec<(String, String)> =
        validator.validate(event).violations.into_iter().map(|v| (v.path, v.message)).collect();
    assert_eq!(
        found,
        vec![
            ("eventData.requestParameters.percent".into(), "is 1001; it must be an integer from 0 to 1000".into()),
            ("eventData.requestParameters.notified".into(), "must be a boolean, found a string".into()),
            ("eventData.requestParameters.at".into(), "is \"noon\", which is not a UTC timestamp".into()),
        ]
    );
    // The five-application catalog does not know the sixth source.
    let five = Catalog::embedded();
    assert!(!Validator::new(Stage::Submit).with_catalog(&five).validate(event).violations.is_empty());
}

#[track_caller]
fn load_error(text: &str) -> String {
    match Catalog::from_files([("bad.toml", text)]) {
        Ok(_) => panic!("loaded: {text}"),
        Err(err) => err.to_string(),
    }
}

#[test]
fn broken_files_are_refused_with_a_reason() {
    let ok = SIXTH;
    let cases: Vec<(String, &str)> = vec![
        ("application = ".into(), "catalog file bad.toml: "),
        (
            ok.replace("application = \"CostGuard\"", "application = \"CostGuard\"\nowner = \"me\""),
            "unknown field `owner`",
        ),
        (ok.replace("type = \"boolean\"", "type = \"bool\""), "parameter \"notified\": unknown type \"bool\""),
        (ok.replace("min = 0, max = 1000", "min = 10, max = 1"), "min 10 is greater than max 1"),
        (
            ok.replace("type = \"uuid\", required = true }", "type = \"uuid\", required = true, max_length = 3 }"),
            "max_length does not apply to type \"uuid\"",
        ),
        (
            ok.replace("[event_types.request_parameters]", "parameters = \"nope\"\n[event_types.request_parameters]"),
            "parameters = \"nope\" names no [parameter_sets.nope]",
        ),
        (
            ok.replace("percent = 120", "percent = -5"),
            "the example of budget.exceeded is invalid: eventData.requestParameters.percent: is -5",
        ),
        (
            ok.replace("eventTime = \"2024-07-12T10:55:00Z\"", "eventTime = \"2024-07-12\""),
            "the example of budget.exceeded is invalid: eventData.eventTime",
        ),
        (
            ok.replace("version = \"v1\"", "version = \"v1\"\neventSource = \"com.other\""),
            "the example's eventSource is \"com.other\"",
        ),
        (
            ok.replace("event_source = \"com.nordcloudapp.com.costguard\"", "event_source = \"\""),
            "event_source must be 1 to 1024 characters",
        ),
        (
            format!(
                "{ok}\n[[event_types]]\nname = \"budget.exceeded\"\ndescription = \"again\"\n[event_types.example]\nversion = \"v1\"\n"
            ),
            "event type \"budget.exceeded\": is defined twice",
        ),
        (
            "application = \"A\"\nevent_source = \"a\"\ndescription = \"d\"\nevent_types = []".into(),
            "at least one [[event_types]]",
        ),
        (ok.replace("type = \"boolean\" }", "type = \"enum\" }"), "an enum needs a non-empty values list"),
    ];
    for (text, expected) in cases {
        let err = load_error(&text);
        assert!(err.contains(expected), "expected {expected:?} in {err:?}");
    }
}

#[test]
fn two_files_cannot_claim_one_source() {
    let err = Catalog::from_files([("a.toml", SIXTH), ("b.toml", SIXTH)]).unwrap_err();
    assert_eq!(err.to_string(), "event source com.nordcloudapp.com.costguard is defined by both a.toml and b.toml");
    assert_eq!(Catalog::from_files([]).unwrap_err().to_string(), "the catalog has no application files");
}

#[test]
fn arn_and_region_shapes() {
    for ok in [
        "arn:aws:dynamodb:eu-west-1:123456789012:table/orders",
        "arn:aws:iam::123456789012:role/x",
        "arn:aws:s3:::bucket",
        "arn:aws-cn:ec2:cn-north-1:123456789012:instance/i-1",
    ] {
        assert!(is_arn(ok), "{ok}");
    }
    for bad in [
        "ARN",
        "arn:aws:dynamodb",
        "arn:aws::eu-west-1:123456789012:table/x",
        "arn:aws:s3:::",
        "arn:gcp:s3:::b",
        "arn:aws:iam::1234:role/x",
    ] {
        assert!(!is_arn(bad), "{bad}");
    }
    for ok in ["eu-west-1", "us-east-1", "us-gov-west-1", "ap-southeast-5", "eu-central-2"] {
        assert!(is_region(ok), "{ok}");
    }
    for bad in ["eu-west", "EU-WEST-1", "europe-west-1", "eu-west-100", "eu--1", "us-east-1a"] {
        assert!(!is_region(bad), "{bad}");
    }
}

#[test]
fn source_suggestions() {
    let catalog = Catalog::embedded();
    assert_eq!(catalog.suggest_source("com.nordcloudapp.klarity"), Some("com.nordcloudapp.com.klarity"));
    assert_eq!(catalog.suggest_source("COM.NORDCLOUDAPP.COM.MAESTRO"), Some("com.nordcloudapp.com.maestro"));
    assert_eq!(catalog.suggest_source("com.example.billing"), None);
}

#[test]
fn a_sample_query_must_be_a_select_on_eds_id() {
    let app = |sql: &str| {
        format!(
            "application = \"A\"\nevent_source = \"com.example.a\"\ndescription = \"d\"\n\n[[event_types]]\nname = \"x.y\"\n\
             description = \"d\"\n[event_types.example]\nversion = \"v1\"\nuserIdentity = {{ type = \"USER\", principalId = \"p\" }}\n\
             eventTime = \"2024-07-12T10:55:00Z\"\nUID = \"u1\"\n\n[[sample_queries]]\nname = \"q\"\ndescription = \"d\"\nsql = \"{sql}\"\n"
        )
    };
    assert!(Catalog::from_files([("a.toml", app("SELECT count(*) FROM $EDS_ID").as_str())]).is_ok());
    let err = Catalog::from_files([("a.toml", app("DELETE FROM $EDS_ID").as_str())]).unwrap_err().to_string();
    assert!(err.contains("a SELECT statement"), "{err}");
    let err = Catalog::from_files([("a.toml", app("SELECT 1 FROM store").as_str())]).unwrap_err().to_string();
    assert!(err.contains("$EDS_ID"), "{err}");
}
