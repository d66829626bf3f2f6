//! `PutAuditEvents`: authorization (owner, resource policy with external ID), request rules,
//! per-entry validation, de-duplication and fan-out to every destination store.

use aws_sdk_cloudtraildata::{operation::put_audit_events::PutAuditEventsError, types::AuditEvent};

use crate::support::{CUSTOMER, PutOne, TestLake, Who, code, entry, event_data, records, store_and_channel};

async fn partner_policy(lake: &TestLake, channel_arn: &str, external_id: &str) {
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::855341727128:root"}},"Action":"cloudtrail-data:PutAuditEvents","Resource":"{channel_arn}","Condition":{{"StringEquals":{{"cloudtrail:ExternalId":"{external_id}"}}}}}}]}}"#
    );
    lake.cloudtrail(Who::Customer)
        .put_resource_policy()
        .resource_arn(channel_arn)
        .resource_policy(policy)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn the_owner_and_an_allowed_partner_publish() {
    let lake = TestLake::start().await;
    let (store_arn, channel_arn) = store_and_channel(&lake, "seed").await;

    let out = lake.data(Who::Customer).put_one(&channel_arn, "e1", 1).await.unwrap();
    assert_eq!(out.successful().len(), 1);
    assert!(out.failed().is_empty());
    let event_id = out.successful()[0].event_id().to_owned();
    assert_eq!(event_id.len(), 36);
    assert_eq!(event_id, event_id.to_lowercase());

    // Without a policy the vendor may not publish.
    let err = lake
        .data(Who::Vendor)
        .put_audit_events()
        .channel_arn(&channel_arn)
        .external_id("ext-12345")
        .audit_events(entry("v1", &event_data(2)))
        .send()
        .await
        .unwrap_err();
    assert!(matches!(err.into_service_error(), PutAuditEventsError::ChannelInsufficientPermission(_)));

    partner_policy(&lake, &channel_arn, "ext-12345").await;
    let out = lake
        .data(Who::Vendor)
        .put_audit_events()
        .channel_arn(&channel_arn)
        .external_id("ext-12345")
        .audit_events(entry("v1", &event_data(2)))
        .send()
        .await
        .unwrap();
    assert_eq!(out.successful().len(), 1, "{:?}", out.failed());
    for wrong in [Some("ext-99999"), None] {
        let err = lake
            .data(Who::Vendor)
            .put_audit_events()
            .channel_arn(&channel_arn)
            .set_external_id(wrong.map(str::to_owned))
            .audit_events(entry("v2", &event_data(3)))
            .send()
            .await
            .unwrap_err();
        assert!(matches!(err.into_service_error(), PutAuditEventsError::ChannelInsufficientPermission(_)), "{wrong:?}");
    }
    // The owner still publishes with a policy in place, with or without an external id.
    lake.data(Who::Customer).put_one(&channel_arn, "e2", 4).await.unwrap();

    // The stored records carry what CloudTrail adds.
    let stored = records(&lake.db(), &store_arn);
    assert_eq!(stored.len(), 3);
    let first = &stored[0];
    assert_eq!(first["eventID"], event_id.as_str());
    assert_eq!(first["eventCategory"], "ActivityAuditLog");
    assert_eq!(first["eventType"], "ActivityLog");
    assert_eq!(first["awsRegion"], "us-east-1");
    assert_eq!(first["recipientAccountId"], CUSTOMER);
    assert_eq!(first["eventTime"], "2024-07-12T10:55:00Z");
    assert_eq!(first["metadata"]["channelARN"], channel_arn.as_str());
    assert!(first["metadata"]["ingestionTime"].as_str().unwrap().ends_with('Z'));
    assert_eq!(first["eventData"]["UID"], "0190a6b4-2222-7a3f-9d2b-000000000001");

    // GetChannel reports the latest ingestion.
    let channel = lake.cloudtrail(Who::Customer).get_channel().channel(&channel_arn).send().await.unwrap();
    let status = channel.ingestion_status().unwrap();
    assert!(status.latest_ingestion_success_time().is_some());
    assert_eq!(status.latest_ingestion_success_event_id(), stored[2]["eventID"].as_str());
}

#[tokio::test]
async fn per_entry_failures_carry_the_cloudtrail_codes() {
    let lake = TestLake::start().await;
    let (store_arn, channel_arn) = store_and_channel(&lake, "entries").await;
    let good = event_data(1);
    let wrong_checksum = AuditEvent::builder()
        .id("bad-checksum")
        .event_data(event_data(2))
        .event_data_checksum(audit_event::checksum::checksum(b"other"))
        .build()
        .unwrap();
    let no_checksum = AuditEvent::builder().id("no-checksum").event_data(event_data(3)).build().unwrap();
    let missing = entry("missing", r#"{"version":"v1"}"#);
    let recipient = entry("recipient", &event_data(4).replace(CUSTOMER, "210987654321"));
    let too_long = entry("too-long", &event_data(5).replace("\"v1\"", &format!("\"{}\"", "v".repeat(257))));
    let bad_time = entry("bad-time", &event_data(6).replace("2024-07-12T10:55:00Z", "202-07-12T10:55:00"));
    let not_json = entry("not-json", "not json");
    let out = lake
        .data(Who::Customer)
        .put_audit_events()
        .channel_arn(&channel_arn)
        .audit_events(entry("good", &good))
        .audit_events(wrong_checksum)
        .audit_events(no_checksum)
        .audit_events(missing)
        .audit_events(recipient)
        .audit_events(too_long)
        .audit_events(bad_time)
        .audit_events(not_json)
        .send()
        .await
        .unwrap();
    let ok: Vec<&str> = out.successful().iter().map(|s| s.id()).collect();
    assert_eq!(ok, vec!["good", "no-checksum"]);
    let failed: Vec<(&str, &str)> = out.failed().iter().map(|f| (f.id(), f.error_code())).collect();
    assert_eq!(
        failed,
        vec![
            ("bad-checksum", "InvalidChecksum"),
            ("missing", "FieldNotFound"),
            ("recipient", "InvalidRecipient"),
            ("too-long", "FieldTooLong"),
            ("bad-time", "InvalidData"),
            ("not-json", "InvalidData"),
        ]
    );
    assert!(out.failed()[2].error_message().contains("is not the account that owns the channel (123456789012)"));
    assert!(out.failed().iter().all(|f| f.error_message().len() <= 1024));
    assert_eq!(records(&lake.db(), &store_arn).len(), 2);
}

#[tokio::test]
async fn request_level_errors() {
    let lake = TestLake::start().await;
    let (_, channel_arn) = store_and_channel(&lake, "requests").await;
    let data = lake.data(Who::Customer);

    let err = data
        .put_audit_events()
        .channel_arn(&channel_arn)
        .audit_events(entry("same", &event_data(1)))
        .audit_events(entry("same", &event_data(2)))
        .send()
        .await
        .unwrap_err();
    assert!(matches!(err.into_service_error(), PutAuditEventsError::DuplicatedAuditEventId(_)));

    let many: Vec<AuditEvent> = (0..101).map(|i| entry(&format!("e{i}"), &event_data(i))).collect();
    let err = data.put_audit_events().channel_arn(&channel_arn).set_audit_events(Some(many)).send().await.unwrap_err();
    assert_eq!(code(err), "ValidationException");

    let err = data
        .put_audit_events()
        .channel_arn("arn:aws:cloudtrail:us-east-1:123456789012:channel/00000000-0000-0000-0000-000000000000")
        .audit_events(entry("a", &event_data(1)))
        .send()
        .await
        .unwrap_err();
    assert!(matches!(err.into_service_error(), PutAuditEventsError::ChannelNotFound(_)));
    let err = data
        .put_audit_events()
        .channel_arn("arn:aws:s3:::bucket")
        .audit_events(entry("a", &event_data(1)))
        .send()
        .await
        .unwrap_err();
    assert!(matches!(err.into_service_error(), PutAuditEventsError::InvalidChannelArn(_)));
    // The channel exists in us-east-1 only.
    let err = lake.data_in(Who::Customer, "eu-west-1").put_one(&channel_arn, "a", 1).await.unwrap_err();
    assert_eq!(code(err), "ChannelNotFound");
    // By id within the owner's account.
    let id = channel_arn.rsplit('/').next().unwrap();
    let out =
        data.put_audit_events().channel_arn(id).audit_events(entry("by-id", &event_data(7))).send().await.unwrap();
    assert_eq!(out.successful().len(), 1);
    // An entry id outside [-_A-Za-z0-9].
    let err = data.put_one(&channel_arn, "has space", 8).await.unwrap_err();
    assert_eq!(code(err), "ValidationException");
}

#[tokio::test]
async fn a_repeated_entry_id_is_stored_once_and_keeps_its_event_id() {
    let lake = TestLake::start().await;
    let (store_arn, channel_arn) = store_and_channel(&lake, "dedup").await;
    let data = lake.data(Who::Customer);
    let first = data.put_one(&channel_arn, "retry-me", 1).await.unwrap();
    let again = data
        .put_audit_events()
        .channel_arn(&channel_arn)
        .audit_events(entry("retry-me", &event_data(1)))
        .audit_events(entry("new", &event_data(2)))
        .send()
        .await
        .unwrap();
    assert_eq!(first.successful()[0].event_id(), again.successful()[0].event_id());
    assert_eq!(again.successful().len(), 2);
    assert_eq!(records(&lake.db(), &store_arn).len(), 2);
}

#[tokio::test]
async fn every_destination_store_receives_the_event() {
    let lake = TestLake::start().await;
    let ct = lake.cloudtrail(Who::Customer);
    let (first_store, channel_arn) = store_and_channel(&lake, "fanout").await;
    let second = ct
        .create_event_data_store()
        .name("second")
        .set_advanced_event_selectors(Some(crate::support::activity_selectors()))
        .send()
        .await
        .unwrap();
    let second_store = second.event_data_store_arn().unwrap().to_owned();
    let destinations = [&first_store, &second_store].map(|arn| {
        aws_sdk_cloudtrail::types::Destination::builder()
            .r#type(aws_sdk_cloudtrail::types::DestinationType::EventDataStore)
            .location(arn.as_str())
            .build()
            .unwrap()
    });
    ct.update_channel().channel(&channel_arn).set_destinations(Some(destinations.to_vec())).send().await.unwrap();
    lake.data(Who::Customer).put_one(&channel_arn, "both", 1).await.unwrap();
    let (a, b) = (records(&lake.db(), &first_store), records(&lake.db(), &second_store));
    assert_eq!((a.len(), b.len()), (1, 1));
    assert_eq!(a[0]["eventID"], b[0]["eventID"]);
}
