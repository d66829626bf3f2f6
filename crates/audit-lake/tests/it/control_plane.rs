//! Event data stores, channels and resource policies: every operation and each modelled error.

use aws_sdk_cloudtrail::{
    operation::{
        create_channel::CreateChannelError, delete_event_data_store::DeleteEventDataStoreError,
        get_event_data_store::GetEventDataStoreError,
    },
    types::{Destination, DestinationType},
};

use crate::support::{TestLake, Who, activity_selectors, code, store_and_channel};

fn destination(location: &str) -> Destination {
    Destination::builder().r#type(DestinationType::EventDataStore).location(location).build().unwrap()
}

#[tokio::test]
async fn event_data_store_lifecycle() {
    let lake = TestLake::start().await;
    let ct = lake.cloudtrail(Who::Customer);

    let created = ct
        .create_event_data_store()
        .name("audit")
        .set_advanced_event_selectors(Some(activity_selectors()))
        .multi_region_enabled(false)
        .retention_period(90)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().map(|s| s.as_str()), Some("CREATED"));
    assert_eq!(created.retention_period(), Some(90));
    assert_eq!(created.termination_protection_enabled(), Some(true));
    assert_eq!(created.multi_region_enabled(), Some(false));
    assert!(created.created_timestamp().is_some());
    let arn = created.event_data_store_arn().unwrap().to_owned();
    assert!(arn.starts_with("arn:aws:cloudtrail:us-east-1:123456789012:eventdatastore/"), "{arn}");
    let id = arn.rsplit('/').next().unwrap().to_owned();
    assert_eq!(id.len(), 36);

    // Get by ARN and by id.
    for key in [&arn, &id] {
        let got = ct.get_event_data_store().event_data_store(key).send().await.unwrap();
        assert_eq!(got.name(), Some("audit"));
        assert_eq!(got.status().map(|s| s.as_str()), Some("ENABLED"));
        assert_eq!(got.billing_mode().map(|b| b.as_str()), Some("EXTENDABLE_RETENTION_PRICING"));
    }

    // Defaults when nothing is given.
    let plain = ct.create_event_data_store().name("management").send().await.unwrap();
    assert_eq!(plain.retention_period(), Some(366));
    assert_eq!(plain.multi_region_enabled(), Some(true));

    let err = ct.create_event_data_store().name("audit").send().await.unwrap_err();
    assert_eq!(code(err), "EventDataStoreAlreadyExistsException");
    let err = ct.create_event_data_store().name("x").send().await.unwrap_err();
    assert_eq!(code(err), "InvalidParameterException");
    let err = ct.create_event_data_store().name("short-retention").retention_period(3).send().await.unwrap_err();
    assert_eq!(code(err), "InvalidParameterException");

    // Update.
    let updated = ct
        .update_event_data_store()
        .event_data_store(&arn)
        .name("audit-renamed")
        .retention_period(120)
        .termination_protection_enabled(false)
        .send()
        .await
        .unwrap();
    assert_eq!(
        (updated.name(), updated.retention_period(), updated.termination_protection_enabled()),
        (Some("audit-renamed"), Some(120), Some(false))
    );
    let err = ct.update_event_data_store().event_data_store(&arn).send().await.unwrap_err();
    assert_eq!(code(err), "InvalidParameterException", "at least one optional parameter");

    // Delete: protected, in use by a channel, then pending deletion.
    let err =
        ct.delete_event_data_store().event_data_store(plain.event_data_store_arn().unwrap()).send().await.unwrap_err();
    assert!(matches!(
        err.into_service_error(),
        DeleteEventDataStoreError::EventDataStoreTerminationProtectedException(_)
    ));
    let channel =
        ct.create_channel().name("chan").source("Custom").destinations(destination(&id)).send().await.unwrap();
    let err = ct.delete_event_data_store().event_data_store(&arn).send().await.unwrap_err();
    assert!(matches!(err.into_service_error(), DeleteEventDataStoreError::ChannelExistsForEdsException(_)));
    ct.delete_channel().channel(channel.channel_arn().unwrap()).send().await.unwrap();
    ct.delete_event_data_store().event_data_store(&arn).send().await.unwrap();
    let got = ct.get_event_data_store().event_data_store(&arn).send().await.unwrap();
    assert_eq!(got.status().map(|s| s.as_str()), Some("PENDING_DELETION"));
    let err = ct.update_event_data_store().event_data_store(&arn).retention_period(30).send().await.unwrap_err();
    assert_eq!(code(err), "InactiveEventDataStoreException");

    // Not found and invalid ARNs.
    let err =
        ct.get_event_data_store().event_data_store("00000000-0000-0000-0000-000000000000").send().await.unwrap_err();
    assert!(matches!(err.into_service_error(), GetEventDataStoreError::EventDataStoreNotFoundException(_)));
    let err = ct
        .get_event_data_store()
        .event_data_store("arn:aws:cloudtrail:us-east-1:123456789012:trail/x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(err), "EventDataStoreARNInvalidException");
    // Another account's store is not visible.
    let err = lake.cloudtrail(Who::Vendor).get_event_data_store().event_data_store(&arn).send().await.unwrap_err();
    assert_eq!(code(err), "EventDataStoreNotFoundException");
    // Nor another region's.
    let err = lake
        .cloudtrail_in(Who::Customer, "eu-west-1")
        .get_event_data_store()
        .event_data_store(&id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(err), "EventDataStoreNotFoundException");
}

#[tokio::test]
async fn selectors_limits_and_paging() {
    let lake = TestLake::start().await;
    let ct = lake.cloudtrail(Who::Customer);
    let bad = aws_sdk_cloudtrail::types::AdvancedEventSelector::builder()
        .field_selectors(
            aws_sdk_cloudtrail::types::AdvancedFieldSelector::builder()
                .field("eventCategory")
                .starts_with("Activity")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let err =
        ct.create_event_data_store().name("bad-selectors").advanced_event_selectors(bad).send().await.unwrap_err();
    assert_eq!(code(err), "InvalidEventSelectorsException");

    for i in 0..10 {
        ct.create_event_data_store().name(format!("store-{i:02}")).send().await.unwrap();
    }
    let err = ct.create_event_data_store().name("store-10").send().await.unwrap_err();
    assert_eq!(code(err), "EventDataStoreMaxLimitExceededException");

    // Pages of 4: 4 + 4 + 2, in creation order.
    let mut names = Vec::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let page = ct.list_event_data_stores().max_results(4).set_next_token(token.clone()).send().await.unwrap();
        names.extend(page.event_data_stores().iter().map(|s| s.name().unwrap().to_owned()));
        pages += 1;
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names, (0..10).map(|i| format!("store-{i:02}")).collect::<Vec<_>>());
    let err = ct.list_event_data_stores().max_results(0).send().await.unwrap_err();
    assert_eq!(code(err), "InvalidMaxResultsException");
    let err = ct.list_event_data_stores().next_token("page-999").send().await.unwrap_err();
    assert_eq!(code(err), "InvalidNextTokenException");
    // The vendor sees none of them.
    assert!(lake.cloudtrail(Who::Vendor).list_event_data_stores().send().await.unwrap().event_data_stores().is_empty());
}

#[tokio::test]
async fn channel_lifecycle() {
    let lake = TestLake::start().await;
    let ct = lake.cloudtrail(Who::Customer);
    let (store_arn, channel_arn) = store_and_channel(&lake, "klarity").await;

    let got = ct.get_channel().channel(&channel_arn).send().await.unwrap();
    assert_eq!(got.name(), Some("klarity-channel"));
    assert_eq!(got.destinations()[0].location(), store_arn);
    assert!(got.ingestion_status().is_some());
    // By id too.
    let id = channel_arn.rsplit('/').next().unwrap();
    assert_eq!(ct.get_channel().channel(id).send().await.unwrap().channel_arn(), Some(channel_arn.as_str()));

    // One channel per source.
    let err = ct
        .create_channel()
        .name("again")
        .source("Custom")
        .destinations(destination(&store_arn))
        .send()
        .await
        .unwrap_err();
    assert!(matches!(err.into_service_error(), CreateChannelError::ChannelAlreadyExistsException(_)));
    // Only ActivityAuditLog stores.
    let management = ct.create_event_data_store().name("management").send().await.unwrap();
    let err = ct
        .create_channel()
        .name("wrong-store")
        .source("Custom")
        .destinations(destination(management.event_data_store_arn().unwrap()))
        .send()
        .await
        .unwrap_err();
    assert!(matches!(err.into_service_error(), CreateChannelError::InvalidEventDataStoreCategoryException(_)));
    let err = ct
        .create_channel()
        .name("no-store")
        .source("Custom")
        .destinations(destination("00000000-0000-0000-0000-000000000000"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(err), "EventDataStoreNotFoundException");

    let listed = ct.list_channels().send().await.unwrap();
    assert_eq!(listed.channels().len(), 1);
    let updated = ct.update_channel().channel(&channel_arn).name("klarity-renamed").send().await.unwrap();
    assert_eq!(updated.name(), Some("klarity-renamed"));

    let err = ct
        .get_channel()
        .channel("arn:aws:cloudtrail:us-east-1:123456789012:eventdatastore/x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(err), "ChannelARNInvalidException");
    ct.delete_channel().channel(&channel_arn).send().await.unwrap();
    let err = ct.get_channel().channel(&channel_arn).send().await.unwrap_err();
    assert_eq!(code(err), "ChannelNotFoundException");
}

#[tokio::test]
async fn resource_policies() {
    let lake = TestLake::start().await;
    let ct = lake.cloudtrail(Who::Customer);
    let (store_arn, channel_arn) = store_and_channel(&lake, "policy").await;
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"Klarity","Effect":"Allow","Principal":{{"AWS":["arn:aws:iam::855341727128:root"]}},"Action":"cloudtrail-data:PutAuditEvents","Resource":"{channel_arn}","Condition":{{"StringEquals":{{"cloudtrail:ExternalId":"ext-12345"}}}}}}]}}"#
    );

    let err = ct.get_resource_policy().resource_arn(&channel_arn).send().await.unwrap_err();
    assert_eq!(code(err), "ResourcePolicyNotFoundException");
    let put = ct.put_resource_policy().resource_arn(&channel_arn).resource_policy(&policy).send().await.unwrap();
    assert_eq!(put.resource_policy(), Some(policy.as_str()));
    let got = ct.get_resource_policy().resource_arn(&channel_arn).send().await.unwrap();
    assert_eq!(got.resource_policy(), Some(policy.as_str()));

    for bad in [
        "not json".to_owned(),
        policy.replace("cloudtrail-data:PutAuditEvents", "cloudtrail:*"),
        policy.replace(&channel_arn, "arn:aws:cloudtrail:us-east-1:123456789012:channel/other"),
        policy.replace(r#""Principal":{"AWS":["arn:aws:iam::855341727128:root"]},"#, ""),
        r#"{"Version":"2012-10-17","Statement":[]}"#.to_owned(),
    ] {
        let err = ct.put_resource_policy().resource_arn(&channel_arn).resource_policy(&bad).send().await.unwrap_err();
        assert_eq!(code(err), "ResourcePolicyNotValidException", "{bad}");
    }
    // A channel's policy does not fit an event data store (whose policies grant queries).
    let err = ct.put_resource_policy().resource_arn(&store_arn).resource_policy(&policy).send().await.unwrap_err();
    assert_eq!(code(err), "ResourcePolicyNotValidException");
    let err = ct
        .put_resource_policy()
        .resource_arn("arn:aws:cloudtrail:us-east-1:123456789012:trail/x")
        .resource_policy(&policy)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(err), "ResourceTypeNotSupportedException");
    let err = ct
        .put_resource_policy()
        .resource_arn("arn:aws:cloudtrail:us-east-1:123456789012:channel/00000000-0000-0000-0000-000000000000")
        .resource_policy(&policy)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(err), "ResourceNotFoundException");
    let err = ct.put_resource_policy().resource_arn("nonsense").resource_policy(&policy).send().await.unwrap_err();
    assert_eq!(code(err), "ResourceARNNotValidException");

    ct.delete_resource_policy().resource_arn(&channel_arn).send().await.unwrap();
    let err = ct.delete_resource_policy().resource_arn(&channel_arn).send().await.unwrap_err();
    assert_eq!(code(err), "ResourcePolicyNotFoundException");
}

#[tokio::test]
async fn unknown_keys_and_bad_signatures_are_refused() {
    let lake = TestLake::start().await;
    let err = lake.cloudtrail(Who::Stranger).list_event_data_stores().send().await.unwrap_err();
    assert_eq!(code(err), "UnrecognizedClientException");
    let err = lake.cloudtrail(Who::WrongSecret).list_event_data_stores().send().await.unwrap_err();
    assert_eq!(code(err), "InvalidSignatureException");
    let err = lake
        .data(Who::WrongSecret)
        .put_audit_events()
        .channel_arn("x")
        .audit_events(crate::support::entry("a", "{}"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(err), "InvalidSignatureException");
}

#[tokio::test]
async fn channel_limits_sources_and_inactive_stores() {
    let lake = TestLake::start().await;
    let ct = lake.cloudtrail(Who::Customer);
    let store = ct
        .create_event_data_store()
        .name("limits")
        .set_advanced_event_selectors(Some(activity_selectors()))
        .termination_protection_enabled(false)
        .send()
        .await
        .unwrap();
    let store_arn = store.event_data_store_arn().unwrap().to_owned();

    let err = ct
        .create_channel()
        .name("bad-source")
        .source("has spaces")
        .destinations(destination(&store_arn))
        .send()
        .await
        .unwrap_err();
    assert!(matches!(err.into_service_error(), CreateChannelError::InvalidSourceException(_)));

    // Custom and every partner source AWS lists (Nordcloud's is IBMMulticloud) are taken, once each;
    // a name AWS does not list is not.
    for (i, source) in audit_lake::ops::trail::CHANNEL_SOURCES.iter().enumerate() {
        ct.create_channel()
            .name(format!("chan-{i:02}"))
            .source(*source)
            .destinations(destination(&store_arn))
            .send()
            .await
            .unwrap();
    }
    let err = ct
        .create_channel()
        .name("chan-unknown")
        .source("NordcloudKlarity")
        .destinations(destination(&store_arn))
        .send()
        .await
        .unwrap_err();
    assert!(matches!(err.into_service_error(), CreateChannelError::InvalidSourceException(_)));
    let err = ct
        .create_channel()
        .name("chan-again")
        .source("IBMMulticloud")
        .destinations(destination(&store_arn))
        .send()
        .await
        .unwrap_err();
    assert!(matches!(err.into_service_error(), CreateChannelError::ChannelAlreadyExistsException(_)));

    // Paging channels, and a bad token.
    let first = ct.list_channels().max_results(10).send().await.unwrap();
    assert_eq!(first.channels().len(), 10);
    assert!(first.next_token().is_some());
    let err = ct.list_channels().next_token("nonsense").send().await.unwrap_err();
    assert_eq!(code(err), "InvalidNextTokenException");

    // A store pending deletion cannot become a destination.
    let other = ct
        .create_event_data_store()
        .name("going")
        .set_advanced_event_selectors(Some(activity_selectors()))
        .termination_protection_enabled(false)
        .send()
        .await
        .unwrap();
    ct.delete_event_data_store().event_data_store(other.event_data_store_arn().unwrap()).send().await.unwrap();
    let channel =
        ct.list_channels().max_results(1).send().await.unwrap().channels()[0].channel_arn().unwrap().to_owned();
    let err = ct
        .update_channel()
        .channel(&channel)
        .destinations(destination(other.event_data_store_arn().unwrap()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(err), "InactiveEventDataStoreException");
}
