use super::*;
use crate::{Rule, Stage, Validator, checksum::checksum};

const EVENT: &str = r#"{"version":"v1","userIdentity":{"type":"USER","principalId":"p"},"eventSource":"s","eventName":"n","eventTime":"2024-07-12T10:55:00Z","UID":"u","recipientAccountId":"123456789012"}"#;

#[test]
fn a_new_entry_carries_its_checksum_and_is_valid() {
    let entry = AuditEvent::new("e1", EVENT);
    assert_eq!(entry.event_data_checksum.as_deref(), Some(checksum(EVENT.as_bytes()).as_str()));
    assert!(entry.validate(&Validator::new(Stage::Put)).is_valid());
}

#[test]
fn a_wrong_checksum_is_invalid_checksum() {
    let mut entry = AuditEvent::new("e1", EVENT);
    entry.event_data_checksum = Some(checksum(b"something else"));
    let checked = entry.validate(&Validator::new(Stage::Put));
    assert_eq!(checked.violations.len(), 1);
    assert_eq!(checked.violations[0].rule, Rule::Checksum);
    assert_eq!(checked.violations[0].code().as_str(), "InvalidChecksum");
    assert_eq!(checked.violations[0].path, "eventDataChecksum");
    // Absent is fine: the checksum is optional.
    entry.event_data_checksum = None;
    assert!(entry.validate(&Validator::new(Stage::Put)).is_valid());
}

#[test]
fn entry_ids() {
    for ok in ["a", "0190a6b4-2222-7a3f-9d2b-5e8f1a2b3c4d", "A_b-9", &"x".repeat(128)] {
        assert_eq!(check_entry_id(ok), Ok(()), "{ok}");
    }
    let cases = [
        ("", "is empty; it must be 1 to 128 characters"),
        (&"x".repeat(129) as &str, "is 129 characters long; the limit is 128"),
        ("ev 1", "\"ev 1\" contains ' '; only letters, digits, '-' and '_' are allowed"),
        ("ev.1", "\"ev.1\" contains '.'; only letters, digits, '-' and '_' are allowed"),
        ("évé", "\"évé\" contains 'é'; only letters, digits, '-' and '_' are allowed"),
    ];
    for (id, why) in cases {
        assert_eq!(check_entry_id(id), Err(why.to_owned()), "{id:?}");
    }
}

fn request(ids: &[&str]) -> PutAuditEventsRequest {
    PutAuditEventsRequest { audit_events: ids.iter().map(|id| AuditEvent::new(*id, EVENT)).collect() }
}

fn rules(request: &PutAuditEventsRequest, body_len: usize) -> Vec<(RequestRule, String)> {
    check_request(request, body_len).into_iter().map(|v| (v.rule, v.path)).collect()
}

#[test]
fn request_rules() {
    assert_eq!(rules(&request(&["a", "b"]), 1000), vec![]);
    assert_eq!(rules(&request(&[]), 20), vec![(RequestRule::NoEvents, "auditEvents".into())]);

    let hundred: Vec<String> = (0..100).map(|i| format!("e{i}")).collect();
    let ids: Vec<&str> = hundred.iter().map(String::as_str).collect();
    assert_eq!(rules(&request(&ids), 1000), vec![]);
    let hundred_one: Vec<String> = (0..101).map(|i| format!("e{i}")).collect();
    let ids: Vec<&str> = hundred_one.iter().map(String::as_str).collect();
    assert_eq!(rules(&request(&ids), 1000), vec![(RequestRule::TooManyEvents, "auditEvents".into())]);

    assert_eq!(rules(&request(&["a"]), limits::MAX_REQUEST_BYTES), vec![]);
    assert_eq!(
        rules(&request(&["a"]), limits::MAX_REQUEST_BYTES + 1),
        vec![(RequestRule::TooLarge, "auditEvents".into())]
    );

    assert_eq!(
        rules(&request(&["a", "b", "a", "a", "c d"]), 1000),
        vec![
            (RequestRule::DuplicateId, "auditEvents[2].id".into()),
            (RequestRule::EntryId, "auditEvents[4].id".into())
        ]
    );
    assert_eq!(RequestRule::DuplicateId.code(), "DuplicatedAuditEventId");
    assert_eq!(RequestRule::TooManyEvents.code(), "ValidationException");
}

#[test]
fn wire_names_match_the_api() {
    let entry = AuditEvent::new("e1", "{}");
    let json = serde_json::to_value(PutAuditEventsRequest { audit_events: vec![entry] }).unwrap();
    assert!(json["auditEvents"][0]["eventDataChecksum"].is_string());
    assert_eq!(json["auditEvents"][0]["eventData"], "{}");
    let response: PutAuditEventsResponse = serde_json::from_str(
        r#"{"successful":[{"id":"e1","eventID":"7c1d3f4e-0000-4000-8000-000000000001"}],"failed":[{"id":"e2","errorCode":"InvalidData","errorMessage":"bad"}]}"#,
    )
    .unwrap();
    assert_eq!(response.successful[0].event_id, "7c1d3f4e-0000-4000-8000-000000000001");
    assert_eq!(response.failed[0].error_code, "InvalidData");
}
