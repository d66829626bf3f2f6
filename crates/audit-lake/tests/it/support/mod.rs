//! A lake per test: started on 127.0.0.1:0 in a temp dir; SDK clients for its accounts.

use std::{path::Path, sync::Arc};

use audit_lake::{
    Lake, LakeConfig,
    config::{CUSTOMER_ACCESS_KEY_ID, CUSTOMER_SECRET_ACCESS_KEY, VENDOR_ACCESS_KEY_ID, VENDOR_SECRET_ACCESS_KEY},
};
use aws_sdk_cloudtrail::config::{BehaviorVersion, Credentials, Region};
use tokio::{sync::oneshot, task::JoinHandle};

pub(crate) const CUSTOMER: &str = "123456789012";

/// A running lake.
pub(crate) struct TestLake {
    pub(crate) endpoint: String,
    pub(crate) lake: Arc<Lake>,
    dir: Option<tempfile::TempDir>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    /// The next channel source [`TestLake::next_source`] hands out.
    sources: std::sync::atomic::AtomicUsize,
}

impl TestLake {
    pub(crate) async fn start() -> TestLake {
        TestLake::start_in(tempfile::tempdir().unwrap()).await
    }

    /// Starts a lake on an existing data directory (to test restarts).
    pub(crate) async fn start_in(dir: tempfile::TempDir) -> TestLake {
        TestLake::start_with(dir, |_| {}).await
    }

    /// Starts a lake on `dir` with its configuration changed by `adjust`.
    pub(crate) async fn start_with(dir: tempfile::TempDir, adjust: impl FnOnce(&mut LakeConfig)) -> TestLake {
        let mut config = LakeConfig { data_dir: dir.path().join("lake"), ..LakeConfig::default() };
        adjust(&mut config);
        let lake = Lake::open(config).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel();
        let serving = lake.clone();
        let task = tokio::spawn(async move {
            audit_lake::serve(serving, listener, async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        TestLake {
            endpoint,
            lake,
            dir: Some(dir),
            shutdown: Some(tx),
            task: Some(task),
            sources: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Stops the lake and returns its data directory.
    pub(crate) async fn stop(mut self) -> tempfile::TempDir {
        let _ = self.shutdown.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap();
        self.dir.take().unwrap()
    }

    /// A channel source not used yet on this lake (an account has one channel per source, and the
    /// sources are `Custom` and AWS's partner names).
    pub(crate) fn next_source(&self) -> &'static str {
        let n = self.sources.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        audit_lake::ops::trail::CHANNEL_SOURCES[n % audit_lake::ops::trail::CHANNEL_SOURCES.len()]
    }

    pub(crate) fn db(&self) -> std::path::PathBuf {
        self.lake.store().path().to_owned()
    }

    pub(crate) fn cloudtrail(&self, who: Who) -> aws_sdk_cloudtrail::Client {
        self.cloudtrail_in(who, "us-east-1")
    }

    pub(crate) fn cloudtrail_in(&self, who: Who, region: &str) -> aws_sdk_cloudtrail::Client {
        let (id, secret) = who.keys();
        let config = aws_sdk_cloudtrail::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .endpoint_url(&self.endpoint)
            .credentials_provider(Credentials::new(id, secret, None, None, "test"))
            .retry_config(aws_sdk_cloudtrail::config::retry::RetryConfig::disabled())
            .build();
        aws_sdk_cloudtrail::Client::from_conf(config)
    }

    pub(crate) fn data(&self, who: Who) -> aws_sdk_cloudtraildata::Client {
        self.data_in(who, "us-east-1")
    }

    pub(crate) fn data_in(&self, who: Who, region: &str) -> aws_sdk_cloudtraildata::Client {
        let (id, secret) = who.keys();
        let config = aws_sdk_cloudtraildata::Config::builder()
            .behavior_version(aws_sdk_cloudtraildata::config::BehaviorVersion::latest())
            .region(aws_sdk_cloudtraildata::config::Region::new(region.to_owned()))
            .endpoint_url(&self.endpoint)
            .credentials_provider(aws_sdk_cloudtraildata::config::Credentials::new(id, secret, None, None, "test"))
            .retry_config(aws_sdk_cloudtraildata::config::retry::RetryConfig::disabled())
            .build();
        aws_sdk_cloudtraildata::Client::from_conf(config)
    }
}

/// Credentials of a session from `AssumeRole`.
#[derive(Clone, Debug)]
pub(crate) struct SessionKeys {
    pub(crate) id: String,
    pub(crate) secret: String,
    pub(crate) token: String,
}

impl TestLake {
    pub(crate) fn sts(&self, who: Who) -> aws_sdk_sts::Client {
        let (id, secret) = who.keys();
        self.sts_with(id, secret, None)
    }

    pub(crate) fn sts_with(&self, id: &str, secret: &str, token: Option<String>) -> aws_sdk_sts::Client {
        let config = aws_sdk_sts::Config::builder()
            .behavior_version(aws_sdk_sts::config::BehaviorVersion::latest())
            .region(aws_sdk_sts::config::Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(aws_sdk_sts::config::Credentials::new(id, secret, token, None, "test"))
            .retry_config(aws_sdk_sts::config::retry::RetryConfig::disabled())
            .build();
        aws_sdk_sts::Client::from_conf(config)
    }

    pub(crate) fn sts_session(&self, s: &SessionKeys) -> aws_sdk_sts::Client {
        self.sts_with(&s.id, &s.secret, Some(s.token.clone()))
    }

    pub(crate) fn iam(&self, who: Who) -> aws_sdk_iam::Client {
        let (id, secret) = who.keys();
        self.iam_with(id, secret, None)
    }

    pub(crate) fn iam_with(&self, id: &str, secret: &str, token: Option<String>) -> aws_sdk_iam::Client {
        let config = aws_sdk_iam::Config::builder()
            .behavior_version(aws_sdk_iam::config::BehaviorVersion::latest())
            .region(aws_sdk_iam::config::Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(aws_sdk_iam::config::Credentials::new(id, secret, token, None, "test"))
            .retry_config(aws_sdk_iam::config::retry::RetryConfig::disabled())
            .build();
        aws_sdk_iam::Client::from_conf(config)
    }

    pub(crate) fn data_session(&self, s: &SessionKeys) -> aws_sdk_cloudtraildata::Client {
        let config = aws_sdk_cloudtraildata::Config::builder()
            .behavior_version(aws_sdk_cloudtraildata::config::BehaviorVersion::latest())
            .region(aws_sdk_cloudtraildata::config::Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(aws_sdk_cloudtraildata::config::Credentials::new(
                &s.id,
                &s.secret,
                Some(s.token.clone()),
                None,
                "test",
            ))
            .retry_config(aws_sdk_cloudtraildata::config::retry::RetryConfig::disabled())
            .build();
        aws_sdk_cloudtraildata::Client::from_conf(config)
    }

    pub(crate) fn cloudtrail_session(&self, s: &SessionKeys) -> aws_sdk_cloudtrail::Client {
        let config = aws_sdk_cloudtrail::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(Credentials::new(&s.id, &s.secret, Some(s.token.clone()), None, "test"))
            .retry_config(aws_sdk_cloudtrail::config::retry::RetryConfig::disabled())
            .build();
        aws_sdk_cloudtrail::Client::from_conf(config)
    }
}

/// Which account's keys a client uses.
#[derive(Clone, Copy)]
pub(crate) enum Who {
    Customer,
    Vendor,
    /// An access key the lake does not know.
    Stranger,
    /// The customer's key id with a wrong secret.
    WrongSecret,
}

impl Who {
    fn keys(self) -> (&'static str, &'static str) {
        match self {
            Who::Customer => (CUSTOMER_ACCESS_KEY_ID, CUSTOMER_SECRET_ACCESS_KEY),
            Who::Vendor => (VENDOR_ACCESS_KEY_ID, VENDOR_SECRET_ACCESS_KEY),
            Who::Stranger => ("AKIAUNKNOWNKEY000001", "unknown-secret-unknown-secret"),
            Who::WrongSecret => (CUSTOMER_ACCESS_KEY_ID, "not-the-right-secret-at-all"),
        }
    }
}

/// The error code of an SDK error.
pub(crate) fn code<E, R>(err: aws_sdk_cloudtrail::error::SdkError<E, R>) -> String
where
    E: aws_sdk_cloudtrail::error::ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    match err {
        aws_sdk_cloudtrail::error::SdkError::ServiceError(e) => e.err().code().unwrap_or("<none>").to_owned(),
        other => format!("<not a service error: {other:?}>"),
    }
}

/// Creates an ActivityAuditLog store and a channel to it; returns (store ARN, channel ARN).
pub(crate) async fn store_and_channel(lake: &TestLake, name: &str) -> (String, String) {
    store_and_channel_kept(lake, name, None).await
}

/// The same, with a retention period in days (the lake's default when `None`).
pub(crate) async fn store_and_channel_kept(
    lake: &TestLake,
    name: &str,
    retention_days: Option<i32>,
) -> (String, String) {
    let ct = lake.cloudtrail(Who::Customer);
    let selectors: Vec<aws_sdk_cloudtrail::types::AdvancedEventSelector> = activity_selectors();
    let store = ct
        .create_event_data_store()
        .name(format!("{name}-store"))
        .set_advanced_event_selectors(Some(selectors))
        .multi_region_enabled(false)
        .set_retention_period(retention_days)
        .send()
        .await
        .unwrap();
    let store_arn = store.event_data_store_arn().unwrap().to_owned();
    let channel = ct
        .create_channel()
        .name(format!("{name}-channel"))
        .source(lake.next_source())
        .destinations(
            aws_sdk_cloudtrail::types::Destination::builder()
                .r#type(aws_sdk_cloudtrail::types::DestinationType::EventDataStore)
                .location(&store_arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    (store_arn, channel.channel_arn().unwrap().to_owned())
}

pub(crate) fn activity_selectors() -> Vec<aws_sdk_cloudtrail::types::AdvancedEventSelector> {
    vec![
        aws_sdk_cloudtrail::types::AdvancedEventSelector::builder()
            .name("integrations")
            .field_selectors(
                aws_sdk_cloudtrail::types::AdvancedFieldSelector::builder()
                    .field("eventCategory")
                    .equals("ActivityAuditLog")
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap(),
    ]
}

/// A valid eventData for the customer's channel, with a distinct UID.
pub(crate) fn event_data(n: usize) -> String {
    serde_json::json!({
        "version": "v1",
        "userIdentity": {"type": "USER", "principalId": "jane@example.com"},
        "eventSource": "com.nordcloudapp.com.autobackup",
        "eventName": "backup.started",
        "eventTime": "2024-07-12T10:55:00Z",
        "UID": format!("0190a6b4-2222-7a3f-9d2b-{n:012}"),
        "requestParameters": {"resourceType": "DynamoDB"},
        "recipientAccountId": CUSTOMER
    })
    .to_string()
}

pub(crate) fn entry(id: &str, data: &str) -> aws_sdk_cloudtraildata::types::AuditEvent {
    aws_sdk_cloudtraildata::types::AuditEvent::builder()
        .id(id)
        .event_data(data)
        .event_data_checksum(audit_event::checksum::checksum(data.as_bytes()))
        .build()
        .unwrap()
}

/// The stored records of a store (by ARN), as JSON values.
pub(crate) fn records(db: &Path, store_arn: &str) -> Vec<serde_json::Value> {
    let id = store_arn.rsplit('/').next().unwrap();
    let mut out = Vec::new();
    audit_lake::columnar::scan_store(db, id, |r| {
        out.push(serde_json::from_str(r).unwrap());
        true
    })
    .unwrap();
    out
}

/// `PutAuditEvents` with one entry `id` holding `event_data(n)`.
pub(crate) trait PutOne {
    async fn put_one(
        &self,
        channel: &str,
        id: &str,
        n: usize,
    ) -> Result<
        aws_sdk_cloudtraildata::operation::put_audit_events::PutAuditEventsOutput,
        aws_sdk_cloudtraildata::error::SdkError<
            aws_sdk_cloudtraildata::operation::put_audit_events::PutAuditEventsError,
            aws_sdk_cloudtraildata::config::http::HttpResponse,
        >,
    >;
}

impl PutOne for aws_sdk_cloudtraildata::Client {
    async fn put_one(
        &self,
        channel: &str,
        id: &str,
        n: usize,
    ) -> Result<
        aws_sdk_cloudtraildata::operation::put_audit_events::PutAuditEventsOutput,
        aws_sdk_cloudtraildata::error::SdkError<
            aws_sdk_cloudtraildata::operation::put_audit_events::PutAuditEventsError,
            aws_sdk_cloudtraildata::config::http::HttpResponse,
        >,
    > {
        self.put_audit_events().channel_arn(channel).audit_events(entry(id, &event_data(n))).send().await
    }
}

/// A trust policy naming `principal`, with an `sts:ExternalId` condition when given.
pub(crate) fn trust(principal: &str, external_id: Option<&str>) -> String {
    let condition = external_id
        .map(|id| format!(r#","Condition":{{"StringEquals":{{"sts:ExternalId":"{id}"}}}}"#))
        .unwrap_or_default();
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{principal}"}},"Action":"sts:AssumeRole"{condition}}}]}}"#
    )
}

/// An identity policy allowing `action` on `resource`.
pub(crate) fn allow(action: &str, resource: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"{action}","Resource":"{resource}"}}]}}"#
    )
}
