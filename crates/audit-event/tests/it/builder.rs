//! The typed builder makes valid events without JSON, and refuses invalid ones with violations.

use std::net::{IpAddr, Ipv4Addr};

use audit_event::{Catalog, EventData, EventTime, Rule, Stage, UserIdentity, Validator};

#[test]
fn builds_a_valid_event_for_every_application() {
    let catalog = Catalog::embedded();
    let time = EventTime::parse("2024-07-12T10:55:00Z").unwrap();
    let events = [
        EventData::builder("com.nordcloudapp.com.klarity", "account.added")
            .param("accountId", "123456789012")
            .param("provider", "AWS"),
        EventData::builder("com.nordcloudapp.com.imagefactory", "image.failed")
            .param("templateId", "3b9d6c1e-2f4a-4b8c-9d0e-1f2a3b4c5d6e")
            .param("osType", "Linux")
            .param("osVersion", "22.04")
            .param("hardening", "None")
            .error("BuildFailed", "timeout"),
        EventData::builder("com.nordcloudapp.com.autobackup", "backup.completed")
            .param("resourceType", "RDS")
            .param("resourceArn", "arn:aws:rds:eu-west-1:123456789012:db:orders")
            .param("region", "eu-west-1")
            .param("backupPolicy", "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d")
            .response("recoveryPointArn", "arn:aws:backup:eu-west-1:123456789012:recovery-point:x"),
        EventData::builder("com.nordcloudapp.com.autopatcher", "baselinePatching.started").param("machinesCount", 12),
        EventData::builder("com.nordcloudapp.com.maestro", "deployment.completed")
            .param("deploymentId", "5c4b3a29-1807-4f6e-9d5c-4b3a29180706")
            .param("deploymentName", "lz")
            .param("awsAccountId", "123456789012")
            .param("organizationId", "1000000000001"),
    ];
    for builder in events {
        let event = builder
            .user(UserIdentity::new("USER", "jane@example.com"))
            .time(time)
            .source_ip(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10)))
            .user_agent("klarity/1.0")
            .additional("requestId", "r-1")
            .build_for(&catalog)
            .unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(event.event_time, "2024-07-12T10:55:00Z");
        assert_eq!(event.version, "v1");
        // UIDs are fresh UUID v7s.
        assert_eq!(uuid_version(&event.uid), 7);
        // The JSON round-trips through the owned type and validates as sent once the relay fills
        // recipientAccountId.
        let mut sent = event.clone();
        sent.recipient_account_id = Some("123456789012".into());
        let json = sent.to_json();
        assert_eq!(serde_json::from_str::<EventData>(&json).unwrap(), sent);
        assert!(Validator::new(Stage::Put).with_catalog(&catalog).validate(&json).is_valid());
    }
}

fn uuid_version(s: &str) -> u32 {
    s.chars().nth(14).and_then(|c| c.to_digit(16)).unwrap_or(0)
}

#[test]
fn refuses_incomplete_events_with_every_violation() {
    let catalog = Catalog::embedded();
    let err = EventData::builder("com.nordcloudapp.com.autopatcher", "baselinePatching.completed")
        .param("machinesCount", 30)
        .param("noUpdatesCOunt", 7)
        .build_for(&catalog)
        .unwrap_err();
    let rules: Vec<(&str, Rule)> = err.violations.iter().map(|v| (v.path.as_str(), v.rule)).collect();
    assert_eq!(
        rules,
        vec![
            ("eventData.userIdentity.type", Rule::Required),
            ("eventData.userIdentity.principalId", Rule::Required),
            ("eventData.requestParameters.noUpdatesCOunt", Rule::CatalogParameterUnknown),
            ("eventData.requestParameters.noUpdatesCount", Rule::CatalogParameterMissing),
            ("eventData.requestParameters.skippedCount", Rule::CatalogParameterMissing),
            ("eventData.requestParameters.updatedCount", Rule::CatalogParameterMissing),
        ]
    );
    assert!(
        err.to_string()
            .starts_with("invalid event: eventData.userIdentity.type: is empty; a non-empty string is required"),
        "{err}"
    );
}

#[test]
fn without_a_catalog_only_the_schema_is_checked() {
    let event = EventData::builder("com.example.custom", "thing.happened")
        .user(UserIdentity::new("USER", "u"))
        .uid("request-1")
        .build()
        .unwrap();
    assert_eq!(event.uid, "request-1");
    let err = EventData::builder("", "x").user(UserIdentity::new("USER", "u")).build().unwrap_err();
    assert_eq!(err.violations[0].path, "eventData.eventSource");
}
