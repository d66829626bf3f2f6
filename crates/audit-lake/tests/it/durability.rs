//! A restart keeps stores, channels, policies, events and the de-duplication ledger.

use crate::support::{PutOne, TestLake, Who, records, store_and_channel};

#[tokio::test]
async fn a_restart_keeps_everything() {
    let lake = TestLake::start().await;
    let (store_arn, channel_arn) = store_and_channel(&lake, "restart").await;
    let policy = format!(
        r#"{{"Statement":[{{"Effect":"Allow","Principal":{{"AWS":"855341727128"}},"Action":"cloudtrail-data:PutAuditEvents","Resource":"{channel_arn}"}}]}}"#
    );
    lake.cloudtrail(Who::Customer)
        .put_resource_policy()
        .resource_arn(&channel_arn)
        .resource_policy(&policy)
        .send()
        .await
        .unwrap();
    let out = lake.data(Who::Customer).put_one(&channel_arn, "kept", 1).await.unwrap();
    let event_id = out.successful()[0].event_id().to_owned();
    let dir = lake.stop().await;

    let lake = TestLake::start_in(dir).await;
    let ct = lake.cloudtrail(Who::Customer);
    assert_eq!(
        ct.get_event_data_store().event_data_store(&store_arn).send().await.unwrap().name(),
        Some("restart-store")
    );
    let channel = ct.get_channel().channel(&channel_arn).send().await.unwrap();
    assert_eq!(channel.ingestion_status().unwrap().latest_ingestion_success_event_id(), Some(event_id.as_str()));
    assert_eq!(
        ct.get_resource_policy().resource_arn(&channel_arn).send().await.unwrap().resource_policy(),
        Some(policy.as_str())
    );
    let again = lake.data(Who::Vendor).put_one(&channel_arn, "kept", 1).await.unwrap();
    assert_eq!(again.successful()[0].event_id(), event_id, "the ledger survived the restart");
    assert_eq!(records(&lake.db(), &store_arn).len(), 1);
}
