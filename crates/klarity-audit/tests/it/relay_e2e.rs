//! The relay end to end, over the official AWS SDK, into the local lake: two tenants, one per
//! delivery mode (channel resource policy with an external ID; the customer's role assumed with
//! its external ID), events of all five applications through the ingest API, each delivered once
//! into the right store.

use std::{sync::Arc, time::Duration};

use audit_event::Catalog;
use audit_lake::{Lake, LakeConfig};
use audit_relay::{
    api::{RelayState, router},
    delivery::{Deliverer, DeliveryConfig, credentials::BaseCredentials, retry::RetryPolicy},
    registry::{DeliveryMode, Grant, Registry, Tenant},
    spool::Spool,
};
use axum::{body::Body, http::Request};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::support::{lake_call, urlencode};

/// A store and a channel of the customer account; returns (store id, channel ARN).
pub(crate) fn store_and_channel(endpoint: &str, name: &str) -> (String, String) {
    // One channel per source and account: names pick distinct sources.
    let sources = audit_lake::ops::trail::CHANNEL_SOURCES;
    let source = sources[name.bytes().map(usize::from).sum::<usize>() % sources.len()];
    let (status, body) = lake_call(
        endpoint,
        "cloudtrail",
        "CreateEventDataStore",
        &format!(
            r#"{{"Name":"{name}","MultiRegionEnabled":false,"AdvancedEventSelectors":[{{"Name":"a","FieldSelectors":[{{"Field":"eventCategory","Equals":["ActivityAuditLog"]}}]}}]}}"#
        ),
    );
    assert_eq!(status, 200, "{body}");
    let arn = serde_json::from_str::<Value>(&body).unwrap()["EventDataStoreArn"].as_str().unwrap().to_owned();
    let (status, body) = lake_call(
        endpoint,
        "cloudtrail",
        "CreateChannel",
        &format!(
            r#"{{"Name":"{name}","Source":"{source}","Destinations":[{{"Type":"EVENT_DATA_STORE","Location":"{arn}"}}]}}"#
        ),
    );
    assert_eq!(status, 200, "{body}");
    (
        arn.rsplit('/').next().unwrap().to_owned(),
        serde_json::from_str::<Value>(&body).unwrap()["ChannelArn"].as_str().unwrap().to_owned(),
    )
}

/// Starts the lake in-process; returns its endpoint. It stops with `stop`.
pub(crate) async fn start_lake(dir: &std::path::Path, stop: &tokio_util::sync::CancellationToken) -> String {
    start_lake_quota(dir, stop, 0).await
}

/// [`start_lake`], enforcing `PutAuditEvents` at `tps` calls a second per account and region (0: not).
async fn start_lake_quota(dir: &std::path::Path, stop: &tokio_util::sync::CancellationToken, tps: u32) -> String {
    start_lake_with(dir, stop, tps, 0).await
}

/// [`start_lake_quota`], its queries answering for an event only `visibility_delay_secs` after
/// ingesting it (as CloudTrail Lake on AWS does, after minutes).
async fn start_lake_with(
    dir: &std::path::Path,
    stop: &tokio_util::sync::CancellationToken,
    tps: u32,
    visibility_delay_secs: u64,
) -> String {
    let mut config = LakeConfig { data_dir: dir.join("lake"), ..LakeConfig::default() };
    config.quotas.put_audit_events_tps = tps;
    config.query.visibility_delay_secs = visibility_delay_secs;
    let lake = Lake::open(config).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let stopped = stop.clone();
    tokio::spawn(audit_lake::serve(lake, listener, async move { stopped.cancelled().await }));
    endpoint
}

/// The relay's parts over `dir/relay`, delivering to `endpoint` with the vendor's local keys.
pub(crate) fn relay(
    dir: &std::path::Path,
    endpoint: &str,
    catalog: Arc<Catalog>,
) -> (Arc<RelayState>, Spool, Registry, Arc<Deliverer>) {
    relay_spacing(dir, endpoint, catalog, 100)
}

/// [`relay`], spacing its calls at `tps` a second per account and region (0: not at all).
pub(crate) fn relay_spacing(
    dir: &std::path::Path,
    endpoint: &str,
    catalog: Arc<Catalog>,
    tps: u32,
) -> (Arc<RelayState>, Spool, Registry, Arc<Deliverer>) {
    relay_with(dir, endpoint, catalog, tps, Duration::ZERO)
}

/// [`relay_spacing`], a CloudTrail Lake tenant waiting `lookup_delay` more after a crash before it
/// looks up what was in flight.
fn relay_with(
    dir: &std::path::Path,
    endpoint: &str,
    catalog: Arc<Catalog>,
    tps: u32,
    lookup_delay: Duration,
) -> (Arc<RelayState>, Spool, Registry, Arc<Deliverer>) {
    let registry = Registry::open(&dir.join("relay")).unwrap();
    let spool = Spool::open(&dir.join("relay/spool"), 1 << 30).unwrap();
    let metrics = Arc::new(audit_relay::metrics::Metrics::default());
    let store: audit_relay::store::Store =
        Arc::new(audit_relay::store::sqlite::SqliteStore::new(spool.clone(), registry.clone()));
    let state = Arc::new(RelayState {
        store: store.clone(),
        catalog,
        max_body_bytes: 5 << 20,
        max_events: 1000,
        admin_token_sha256: None,
        metrics: metrics.clone(),
        console: audit_relay::api::console::sessions::Sessions::new(""),
        verify_with: None,
        trails: None,
    });
    let deliverer = Deliverer::new(
        store,
        DeliveryConfig {
            endpoint_url: Some(endpoint.to_owned()),
            credentials: BaseCredentials::Static {
                access_key_id: audit_lake::config::VENDOR_ACCESS_KEY_ID.into(),
                secret_access_key: audit_lake::config::VENDOR_SECRET_ACCESS_KEY.into(),
                session_token: None,
            },
            retry: RetryPolicy { base: Duration::from_millis(20), cap: Duration::from_millis(500) },
            idle_poll: Duration::from_millis(20),
            probe_interval: Duration::from_millis(200),
            tenant_scan: Duration::from_millis(100),
            attempt_timeout: Duration::from_secs(3),
            lookup_delay,
            concurrency: 4,
            put_audit_events_tps: tps,
        },
        metrics,
    );
    (state, spool, registry, deliverer)
}

/// Posts one event with `token` into `tenant`; returns the status and body.
pub(crate) async fn post(state: &Arc<RelayState>, tenant: &str, token: &str, event: &Value) -> (u16, Value) {
    let request = Request::post(format!("/v1/tenants/{tenant}/events"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Body::from(event.to_string()))
        .unwrap();
    let response = router(state.clone()).oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    (status, serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap())
}

/// Waits (bounded) until `done` holds.
pub(crate) async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_of_every_application_reach_the_right_store_once_in_both_modes() {
    let dir = tempfile::tempdir().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let endpoint = start_lake(dir.path(), &stop).await;

    // The customer's side (setup over plain signed HTTP; blocking calls on a worker are fine here).
    let e = endpoint.clone();
    let (store_a, channel_a, store_b, channel_b) = tokio::task::spawn_blocking(move || {
        let (store_a, channel_a) = store_and_channel(&e, "tenanta");
        let (store_b, channel_b) = store_and_channel(&e, "tenantb");
        // Tenant A: a channel policy for the vendor with an external ID.
        let policy = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"855341727128"}},"Action":"cloudtrail-data:PutAuditEvents","Resource":"{channel_a}","Condition":{{"StringEquals":{{"cloudtrail:ExternalId":"ext-a-123"}}}}}}]}}"#
        );
        let (status, body) = lake_call(&e, "cloudtrail", "PutResourcePolicy", &json!({"ResourceArn": channel_a, "ResourcePolicy": policy}).to_string());
        assert_eq!(status, 200, "{body}");
        // Tenant B: the customer's role, trusting the vendor under an external ID.
        let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::855341727128:root"},"Action":"sts:AssumeRole","Condition":{"StringEquals":{"sts:ExternalId":"ext-b-456"}}}]}"#;
        let (status, body) = lake_call(&e, "iam", "", &format!("Action=CreateRole&Version=2010-05-08&RoleName=CTEventPublisher&AssumeRolePolicyDocument={}", urlencode(trust)));
        assert_eq!(status, 200, "{body}");
        let permissions = format!(r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"cloudtrail-data:PutAuditEvents","Resource":"{channel_b}"}}]}}"#);
        let (status, body) = lake_call(
            &e,
            "iam",
            "",
            &format!("Action=PutRolePolicy&Version=2010-05-08&RoleName=CTEventPublisher&PolicyName=publish&PolicyDocument={}", urlencode(&permissions)),
        );
        assert_eq!(status, 200, "{body}");
        (store_a, channel_a, store_b, channel_b)
    })
    .await
    .unwrap();

    // The vendor's relay.
    let catalog = Arc::new(Catalog::embedded());
    let sources: Vec<String> = catalog.applications().iter().map(|a| a.event_source.clone()).collect();
    let (state, spool, registry, deliverer) = relay(dir.path(), &endpoint, catalog.clone());
    registry
        .put_tenant(&Tenant {
            id: "tenant-a".into(),
            channel_arn: channel_a.clone(),
            destination: Default::default(),
            delivery: DeliveryMode::ResourcePolicy { external_id: Some("ext-a-123".into()) },
            applications: sources.clone(),
            paused: None,
            held: false,
            saved_queries: Vec::new(),
        })
        .unwrap();
    registry
        .put_tenant(&Tenant {
            id: "tenant-b".into(),
            channel_arn: channel_b.clone(),
            destination: Default::default(),
            delivery: DeliveryMode::AssumeRole {
                role_arn: "arn:aws:iam::123456789012:role/CTEventPublisher".into(),
                external_id: Some("ext-b-456".into()),
                proxy_role_arn: None,
            },
            applications: sources.clone(),
            paused: None,
            held: false,
            saved_queries: Vec::new(),
        })
        .unwrap();
    let tokens: Vec<(String, String)> = sources
        .iter()
        .map(|s| {
            (
                s.clone(),
                registry.issue_token(&Grant { name: s.clone(), source: s.clone(), tenants: vec!["*".into()] }).unwrap(),
            )
        })
        .collect();
    let delivering = tokio::spawn(deliverer.run(stop.clone()));

    // Every event type of every application, into both tenants; each example once more (a resubmission).
    let mut expected_a = Vec::new();
    let mut expected_b = Vec::new();
    for app in catalog.applications() {
        let token = &tokens.iter().find(|(s, _)| *s == app.event_source).unwrap().1;
        for (n, t) in app.event_types.iter().enumerate() {
            for (tenant, expected) in [("tenant-a", &mut expected_a), ("tenant-b", &mut expected_b)] {
                let mut event = Value::Object(t.example.clone());
                let uid = format!("{}-{tenant}-{n}", &t.example["UID"].as_str().unwrap()[..23])
                    .replace("-tenant-a-", "-aaaa")
                    .replace("-tenant-b-", "-bbbb");
                let uid = format!("{uid:0<36}");
                event["UID"] = json!(uid);
                for attempt in 0..2 {
                    let (status, body) = post(&state, tenant, token, &event).await;
                    assert_eq!(status, 202, "{body}");
                    assert_eq!(body["accepted"][0]["duplicate"], attempt == 1);
                }
                expected.push(uid);
            }
        }
    }

    // Wait for delivery.
    eventually("every event is delivered", || spool.counts().unwrap().0 == 0).await;
    assert_eq!(spool.counts().unwrap(), (0, 32, 0));
    stop.cancel();
    delivering.await.unwrap();

    let db = dir.path().join("lake").join(audit_lake::store::DB_FILE);
    for (store, expected) in [(&store_a, &expected_a), (&store_b, &expected_b)] {
        let mut uids = Vec::new();
        audit_lake::columnar::scan_store(&db, store, |record| {
            let value: Value = serde_json::from_str(record).unwrap();
            assert_eq!(value["recipientAccountId"], "123456789012");
            assert_eq!(value["eventData"]["recipientAccountId"], "123456789012");
            uids.push(value["eventData"]["UID"].as_str().unwrap().to_owned());
            true
        })
        .unwrap();
        uids.sort();
        let mut expected = expected.clone();
        expected.sort();
        assert_eq!(uids, expected, "store {store} holds exactly its tenant's events, once each");
    }
}

/// A channel that refuses the relay (no resource policy yet) pauses its tenant with the reason and
/// keeps the events; once the customer adds the policy, the paused tenant's probe succeeds and
/// delivery resumes by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_channel_pauses_its_tenant_until_it_works_again() {
    let dir = tempfile::tempdir().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let endpoint = start_lake(dir.path(), &stop).await;
    let e = endpoint.clone();
    let (store, channel) = tokio::task::spawn_blocking(move || store_and_channel(&e, "breaker")).await.unwrap();

    let catalog = Arc::new(Catalog::embedded());
    let (state, spool, registry, deliverer) = relay(dir.path(), &endpoint, catalog);
    let source = "com.nordcloudapp.com.maestro";
    registry
        .put_tenant(&Tenant {
            id: "breaker".into(),
            channel_arn: channel.clone(),
            destination: Default::default(),
            delivery: DeliveryMode::ResourcePolicy { external_id: Some("ext-c-789".into()) },
            applications: vec![source.into()],
            paused: None,
            held: false,
            saved_queries: Vec::new(),
        })
        .unwrap();
    let token = registry
        .issue_token(&Grant { name: "m".into(), source: source.into(), tenants: vec!["breaker".into()] })
        .unwrap();
    let delivering = tokio::spawn(deliverer.run(stop.clone()));
    for n in 0..3 {
        let event = json!({"version": "v1", "userIdentity": {"type": "USER", "principalId": "p"}, "eventSource": source,
            "eventName": "deployment.created", "eventTime": "2024-07-12T10:55:00Z", "UID": format!("0190a6b6-4444-7a3f-9d2b-{n:012}"),
            "requestParameters": {"deploymentId": "5c4b3a29-1807-4f6e-9d5c-4b3a29180706", "deploymentName": "lz", "awsAccountId": "123456789012", "organizationId": "1"}});
        assert_eq!(post(&state, "breaker", &token, &event).await.0, 202);
    }

    eventually("the tenant is paused", || registry.tenant("breaker").unwrap().unwrap().paused.is_some()).await;
    let reason = registry.tenant("breaker").unwrap().unwrap().paused.unwrap();
    assert!(reason.contains("ChannelInsufficientPermission"), "{reason}");
    assert_eq!(spool.counts().unwrap(), (3, 0, 0), "nothing is lost or dead-lettered while paused");

    // The customer adds the channel policy; the probe finds the channel working.
    let e = endpoint.clone();
    let c = channel.clone();
    tokio::task::spawn_blocking(move || {
        let policy = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"855341727128"}},"Action":"cloudtrail-data:PutAuditEvents","Resource":"{c}","Condition":{{"StringEquals":{{"cloudtrail:ExternalId":"ext-c-789"}}}}}}]}}"#
        );
        let (status, body) = lake_call(&e, "cloudtrail", "PutResourcePolicy", &json!({"ResourceArn": c, "ResourcePolicy": policy}).to_string());
        assert_eq!(status, 200, "{body}");
    })
    .await
    .unwrap();
    eventually("the events are delivered", || spool.counts().unwrap() == (0, 3, 0)).await;
    eventually("the tenant is active again", || registry.tenant("breaker").unwrap().unwrap().paused.is_none()).await;

    // An operator's pause holds: the channel works, yet nothing is sent (not even a probe) until the
    // operator resumes the tenant.
    registry.hold("breaker", "customer migrating").unwrap().unwrap();
    for n in 3..5 {
        let event = json!({"version": "v1", "userIdentity": {"type": "USER", "principalId": "p"}, "eventSource": source,
            "eventName": "deployment.created", "eventTime": "2024-07-12T10:55:00Z", "UID": format!("0190a6b6-4444-7a3f-9d2b-{n:012}"),
            "requestParameters": {"deploymentId": "5c4b3a29-1807-4f6e-9d5c-4b3a29180706", "deploymentName": "lz", "awsAccountId": "123456789012", "organizationId": "1"}});
        assert_eq!(post(&state, "breaker", &token, &event).await.0, 202);
    }
    tokio::time::sleep(Duration::from_millis(1000)).await; // five probe intervals
    assert_eq!(spool.counts().unwrap(), (2, 3, 0), "a held tenant is not delivered to");
    let held = registry.tenant("breaker").unwrap().unwrap();
    assert_eq!((held.paused.as_deref(), held.held), (Some("customer migrating"), true), "nor resumed by delivery");
    registry.resume("breaker").unwrap().unwrap();
    eventually("the held events are delivered after the resume", || spool.counts().unwrap() == (0, 5, 0)).await;
    stop.cancel();
    delivering.await.unwrap();

    let db = dir.path().join("lake").join(audit_lake::store::DB_FILE);
    assert_eq!(audit_lake::columnar::scan_store(&db, &store, |_| true).unwrap(), 5);
}

/// The crash window, made deterministic: events are accepted while delivery is held, then the
/// lake is given the first 120 of them as the relay's own batches would have given them (the
/// same eventData, other entry ids, so the lake's de-duplication cannot hide a second copy), and
/// the relay "dies": it never records a clean stop. On restart it looks them up in the customer's
/// store, records them as delivered with the eventIDs the store gave them, and sends only the
/// other 130. The store ends with every event once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_crash_events_the_store_already_holds_are_not_sent_again() {
    let restarted = crash_and_restart(0, Duration::ZERO, 0).await;
    assert_eq!((restarted.copies, restarted.found), (250, 120), "every event once, the 120 found");
}

/// The same crash, but the customer's store fails the look-up for now (its first queries are
/// answered 503 by a fault-injecting proxy, a test double in front of the lake): nothing is sent
/// until a look-up works, so still nothing is stored twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_crash_a_look_up_that_fails_for_now_is_tried_again_before_anything_is_sent() {
    let restarted = crash_and_restart(3, Duration::ZERO, 0).await;
    assert_eq!((restarted.copies, restarted.found), (250, 120), "every event once, the 120 found");
}

/// A store and channel named `name` in the lake at `endpoint`, and the customer's role
/// `CTEventPublisher` (external ID `ext-c-789`) with onboard's least-privilege policy: publish into
/// the channel, read it, query its store. Returns (store id, channel ARN).
fn publisher_role(e: &str, name: &str) -> (String, String) {
    let (store, channel) = store_and_channel(e, name);
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::855341727128:root"},"Action":"sts:AssumeRole","Condition":{"StringEquals":{"sts:ExternalId":"ext-c-789"}}}]}"#;
    let (status, body) = lake_call(
        e,
        "iam",
        "",
        &format!(
            "Action=CreateRole&Version=2010-05-08&RoleName=CTEventPublisher&AssumeRolePolicyDocument={}",
            urlencode(trust)
        ),
    );
    assert_eq!(status, 200, "{body}");
    let store_arn = format!("arn:aws:cloudtrail:us-east-1:123456789012:eventdatastore/{store}");
    let permissions = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "cloudtrail-data:PutAuditEvents", "Resource": channel},
        {"Effect": "Allow", "Action": "cloudtrail:GetChannel", "Resource": channel},
        {"Effect": "Allow", "Action": ["cloudtrail:StartQuery", "cloudtrail:DescribeQuery", "cloudtrail:GetQueryResults"], "Resource": store_arn}
    ]});
    let (status, body) = lake_call(
        e,
        "iam",
        "",
        &format!(
            "Action=PutRolePolicy&Version=2010-05-08&RoleName=CTEventPublisher&PolicyName=publish&PolicyDocument={}",
            urlencode(&permissions.to_string())
        ),
    );
    assert_eq!(status, 200, "{body}");
    (store, channel)
}

/// A CloudTrail Lake tenant `id` publishing `source` into `channel` through [`publisher_role`]'s
/// role; `held` by an operator (paused) or delivering.
fn publisher_tenant(id: &str, channel: &str, source: &str, held: bool) -> Tenant {
    Tenant {
        id: id.into(),
        channel_arn: channel.into(),
        destination: Default::default(),
        delivery: DeliveryMode::AssumeRole {
            role_arn: "arn:aws:iam::123456789012:role/CTEventPublisher".into(),
            external_id: Some("ext-c-789".into()),
            proxy_role_arn: None,
        },
        applications: vec![source.into()],
        paused: held.then(|| "held by the test".into()),
        held,
        saved_queries: Vec::new(),
    }
}

/// STS that never answers an `AssumeRole` (a fault-injecting proxy, a test double in front of the
/// lake, holds the first one open) fails the call after the attempt timeout instead of holding the
/// tenant's delivery forever: delivery tries again, and every event arrives once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assume_role_call_that_never_answers_is_given_up_and_tried_again() {
    use crate::relay_faults::{Act, start_planned_proxy};
    let dir = tempfile::tempdir().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let endpoint = start_lake(dir.path(), &stop).await;
    let e = endpoint.clone();
    let (store, channel) = tokio::task::spawn_blocking(move || publisher_role(&e, "hung-sts")).await.unwrap();
    let hung = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = hung.clone();
    let proxy = start_planned_proxy(
        &tokio::runtime::Handle::current(),
        endpoint.trim_start_matches("http://").to_owned(),
        vec![()],
        // STS's calls are the ones to "/" without a target header (CloudTrail's carry one).
        |head| head.starts_with("POST / ") && !head.to_ascii_lowercase().contains("x-amz-target"),
        |()| Act::Hang,
        move |(), _, _, _| {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        },
    );
    let catalog = Arc::new(Catalog::embedded());
    let maestro = catalog.applications().iter().find(|a| a.event_source == "com.nordcloudapp.com.maestro").unwrap();
    let (state, spool, registry, deliverer) = relay(dir.path(), &proxy, catalog.clone());
    registry.put_tenant(&publisher_tenant("hung", &channel, &maestro.event_source, false)).unwrap();
    let token = registry
        .issue_token(&Grant { name: "m".into(), source: maestro.event_source.clone(), tenants: vec!["hung".into()] })
        .unwrap();
    for n in 0..5 {
        let mut event = Value::Object(maestro.event_types[0].example.clone());
        event["UID"] = json!(format!("0190a6b9-dddd-7a3f-9d2b-{n:012}"));
        event["eventTime"] = json!(audit_event::EventTime::now().to_string());
        let (status, body) = post(&state, "hung", &token, &event).await;
        assert_eq!(status, 202, "{body}");
    }
    let delivering = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(deliverer.run(delivering.clone()));
    eventually("the events are delivered after the hung call is given up", || spool.counts().unwrap() == (0, 5, 0))
        .await;
    delivering.cancel();
    task.await.unwrap();
    assert_eq!(hung.load(std::sync::atomic::Ordering::SeqCst), 1, "an AssumeRole call was held");
    let db = dir.path().join("lake").join(audit_lake::store::DB_FILE);
    assert_eq!(audit_lake::columnar::scan_store(&db, &store, |_| true).unwrap(), 5);
    stop.cancel();
}

/// The same crash, the relay told that the customer's store answers for an event only 4 s after
/// ingesting it (as CloudTrail Lake on AWS does, after minutes): it waits that long more before
/// looking up, and so before sending anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_crash_a_cloudtrail_tenant_waits_the_lookup_delay_before_it_looks_up() {
    let restarted = crash_and_restart(0, Duration::from_secs(4), 0).await;
    // One attempt timeout (3 s) since the last write before the crash, plus the delay: at least
    // the delay (the test posted its events in under a second before).
    assert!(restarted.waited >= Duration::from_secs(5), "delivery waited {:?}", restarted.waited);
    assert_eq!((restarted.copies, restarted.found), (250, 120), "every event once, the 120 found");
}

/// A lake that answers queries for an event only some time after ingesting it, as CloudTrail Lake
/// on AWS does after minutes: a relay that looks up at once after a crash finds nothing and stores
/// the 120 events that were in flight twice; one whose look-up delay is longer than the lake's
/// finds them all. (Margins for a loaded machine: the first lake answers an hour late, so the look-up
/// can never come late enough; the second 8 s late, against a wait of 12 s.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_a_store_that_answers_late_the_look_up_waits_or_events_are_stored_twice() {
    let at_once = crash_and_restart(0, Duration::ZERO, 3600).await;
    assert_eq!((at_once.copies, at_once.found), (370, 0), "looked up at once: the 120 sent again");
    let waiting = crash_and_restart(0, Duration::from_secs(12), 8).await;
    assert_eq!((waiting.copies, waiting.found), (250, 120), "looked up after the delay: every event once");
}

/// What a crash and restart ([`crash_and_restart`]) came to.
struct Restarted {
    /// From the restart until every event was settled.
    waited: Duration,
    /// Events in the store (250 accepted; more when some were stored twice).
    copies: usize,
    /// Events the look-up found stored (120 were, before the crash).
    found: u64,
}

/// The crash window of the tests above; after the restart, the first `failing` StartQuery calls
/// are answered 503 and the relay waits `lookup_delay` more before looking up, over a lake whose
/// queries answer for an event `visibility_delay_secs` after ingesting it.
async fn crash_and_restart(failing: usize, lookup_delay: Duration, visibility_delay_secs: u64) -> Restarted {
    let dir = tempfile::tempdir().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let endpoint = start_lake_with(dir.path(), &stop, 0, visibility_delay_secs).await;
    let e = endpoint.clone();
    let (store, channel) = tokio::task::spawn_blocking(move || publisher_role(&e, "crashy")).await.unwrap();

    let catalog = Arc::new(Catalog::embedded());
    let maestro = catalog.applications().iter().find(|a| a.event_source == "com.nordcloudapp.com.maestro").unwrap();
    let example = Value::Object(maestro.event_types[0].example.clone());
    let uid = |n: usize| format!("0190a6b9-cccc-7a3f-9d2b-{n:012}");
    let mut stored_before = std::collections::HashMap::new();
    {
        let (state, spool, registry, _deliverer) = relay(dir.path(), &endpoint, catalog.clone());
        registry.put_tenant(&publisher_tenant("crashy", &channel, &maestro.event_source, true)).unwrap();
        let token = registry
            .issue_token(&Grant {
                name: "m".into(),
                source: maestro.event_source.clone(),
                tenants: vec!["crashy".into()],
            })
            .unwrap();
        for n in 0..250 {
            let mut event = example.clone();
            event["UID"] = json!(uid(n));
            event["eventTime"] = json!(audit_event::EventTime::now().to_string());
            let (status, body) = post(&state, "crashy", &token, &event).await;
            assert_eq!(status, 202, "{body}");
        }
        // What the crash left: the lake stored the relay's first batches; the spool never heard.
        let in_flight = spool.pending("crashy", 0, 120).unwrap();
        let data = aws_sdk_cloudtraildata::Client::from_conf(
            aws_sdk_cloudtraildata::Config::builder()
                .behavior_version(aws_sdk_cloudtraildata::config::BehaviorVersion::latest())
                .region(aws_sdk_cloudtraildata::config::Region::new("us-east-1"))
                .endpoint_url(&endpoint)
                .credentials_provider(aws_sdk_cloudtraildata::config::Credentials::new(
                    audit_lake::config::CUSTOMER_ACCESS_KEY_ID,
                    audit_lake::config::CUSTOMER_SECRET_ACCESS_KEY,
                    None,
                    None,
                    "test",
                ))
                .build(),
        );
        for chunk in in_flight.chunks(100) {
            let entries = chunk
                .iter()
                .map(|p| {
                    audit_relay::delivery::sdk_entry(audit_event::AuditEvent::new(
                        format!("other-{}", p.seq),
                        p.event_data.clone(),
                    ))
                    .unwrap()
                })
                .collect();
            let out =
                data.put_audit_events().channel_arn(&channel).set_audit_events(Some(entries)).send().await.unwrap();
            assert!(out.failed().is_empty(), "{:?}", out.failed());
            for (p, s) in chunk.iter().zip(out.successful()) {
                let sent: Value = serde_json::from_str(&p.event_data).unwrap();
                stored_before.insert(sent["UID"].as_str().unwrap().to_owned(), s.event_id().to_owned());
            }
        }
        assert_eq!(stored_before.len(), 120);
        drop((state, spool, registry));
    }

    // The restart: the spool knows the last run did not stop cleanly.
    let injected = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let through = if failing == 0 {
        endpoint.clone()
    } else {
        use crate::relay_faults::{Act, answer, headers_of, start_planned_proxy};
        let counted = injected.clone();
        start_planned_proxy(
            &tokio::runtime::Handle::current(),
            endpoint.trim_start_matches("http://").to_owned(),
            vec![(); failing],
            |head| {
                headers_of(head)
                    .iter()
                    .any(|(k, v)| k.eq_ignore_ascii_case("x-amz-target") && v.ends_with(".StartQuery"))
            },
            |()| Act::Answer(answer("503 Service Unavailable", "ServiceUnavailableException")),
            move |(), _, _, _| {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            },
        )
    };
    let (state, spool, registry, deliverer) = relay_with(dir.path(), &through, catalog.clone(), 100, lookup_delay);
    assert!(spool.crashed());
    registry.resume("crashy").unwrap();
    let delivering = tokio_util::sync::CancellationToken::new();
    let started = std::time::Instant::now();
    let task = tokio::spawn(deliverer.run(delivering.clone()));
    let db = dir.path().join("lake").join(audit_lake::store::DB_FILE);
    // Operators see the wait (the console, /metrics), while nothing is sent.
    let looking = || state.metrics.tenant("crashy").looking_up_since();
    eventually("the tenant shows it is looking up", || looking().is_some()).await;
    eventually("all 250 events are settled", || spool.pending("crashy", 0, 1).unwrap().is_empty()).await;
    let waited = started.elapsed();
    assert_eq!(looking(), None, "the look-up is over");
    delivering.cancel();
    task.await.unwrap();

    let mut uids = Vec::new();
    audit_lake::columnar::scan_store(&db, &store, |record| {
        let record: Value = serde_json::from_str(record).unwrap();
        uids.push(record["eventData"]["UID"].as_str().unwrap().to_owned());
        true
    })
    .unwrap();
    uids.sort();
    let expected: Vec<String> = (0..250).map(uid).collect();
    let mut unique = uids.clone();
    unique.dedup();
    assert_eq!(unique, expected, "every event is in the store");
    assert_eq!(injected.load(std::sync::atomic::Ordering::SeqCst), failing, "the look-ups failed as planned");
    let found = state.metrics.tenant("crashy").found.load(std::sync::atomic::Ordering::Relaxed);
    if found > 0 {
        for (uid, event_id) in &stored_before {
            let status = spool.status("crashy", &maestro.event_source, uid).unwrap().unwrap();
            assert_eq!(
                status.event_id.as_deref(),
                Some(event_id.as_str()),
                "{uid} is recorded with the eventID the store gave it"
            );
        }
    }
    stop.cancel();
    Restarted { waited, copies: uids.len(), found }
}

/// CloudTrail's quota, enforced by the lake at 5 calls a second: a relay that spaces its calls
/// within it is (all but) never throttled; one that does not is throttled again and again and backs
/// off. Either way every event is delivered, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn within_the_quota_calls_are_spaced_not_throttled_and_every_event_arrives_once() {
    let mut retried = Vec::new();
    // (A low quota, so that even a slow machine's relay goes over it when it does not space.)
    for spacing in [5, 0] {
        let dir = tempfile::tempdir().unwrap();
        let stop = tokio_util::sync::CancellationToken::new();
        let endpoint = start_lake_quota(dir.path(), &stop, 5).await;
        let e = endpoint.clone();
        let (store, channel) = tokio::task::spawn_blocking(move || {
            let (store, channel) = store_and_channel(&e, "quota");
            let policy = format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"855341727128"}},"Action":"cloudtrail-data:PutAuditEvents","Resource":"{channel}","Condition":{{"StringEquals":{{"cloudtrail:ExternalId":"ext-q"}}}}}}]}}"#
            );
            let (status, body) = lake_call(&e, "cloudtrail", "PutResourcePolicy", &json!({"ResourceArn": channel, "ResourcePolicy": policy}).to_string());
            assert_eq!(status, 200, "{body}");
            (store, channel)
        })
        .await
        .unwrap();
        let catalog = Arc::new(Catalog::embedded());
        let (state, spool, registry, deliverer) = relay_spacing(dir.path(), &endpoint, catalog, spacing);
        let source = "com.nordcloudapp.com.maestro";
        registry
            .put_tenant(&Tenant {
                id: "quota".into(),
                channel_arn: channel,
                destination: Default::default(),
                delivery: DeliveryMode::ResourcePolicy { external_id: Some("ext-q".into()) },
                applications: vec![source.into()],
                paused: Some("held until every event is in".into()),
                held: true,
                saved_queries: Vec::new(),
            })
            .unwrap();
        let token = registry
            .issue_token(&Grant { name: "m".into(), source: source.into(), tenants: vec!["quota".into()] })
            .unwrap();
        // 4,000 events: 40 calls of 100, eight times the quota's burst.
        for chunk in 0..40 {
            let events: Vec<Value> = (0..100)
                .map(|i| json!({"version": "v1", "userIdentity": {"type": "USER", "principalId": "p"}, "eventSource": source,
                    "eventName": "deployment.created", "eventTime": "2024-07-12T10:55:00Z",
                    "UID": format!("0190a6b6-5555-7a3f-9d2b-{:012}", chunk * 100 + i),
                    "requestParameters": {"deploymentId": "5c4b3a29-1807-4f6e-9d5c-4b3a29180706", "deploymentName": "lz",
                        "awsAccountId": "123456789012", "organizationId": "1"}}))
                .collect();
            assert_eq!(post(&state, "quota", &token, &Value::Array(events)).await.0, 202);
        }
        registry.resume("quota").unwrap().unwrap();
        let delivering = tokio::spawn(deliverer.run(stop.clone()));
        eventually("every event is delivered", || spool.counts().unwrap() == (0, 4000, 0)).await;
        stop.cancel();
        delivering.await.unwrap();
        let db = dir.path().join("lake").join(audit_lake::store::DB_FILE);
        let count = audit_lake::columnar::scan_store(&db, &store, |_| true).unwrap();
        assert_eq!(count, 4000, "every event once (spacing {spacing})");
        retried.push(state.metrics.tenant("quota").retried.load(std::sync::atomic::Ordering::Relaxed));
    }
    eprintln!("events retried, spaced and not: {retried:?}");
    // Spaced: at most a call's events retried (jitter); unspaced: throttled call after call.
    assert!(retried[0] <= 100, "spaced within the quota, the relay was throttled: {retried:?}");
    assert!(retried[1] >= 500, "without spacing the lake throttles the relay: {retried:?}");
}

/// The console's viewer reads a tenant's store through the tenant's role chain: a role without
/// the reading permissions is named as withheld (the call, the refusal); once the customer grants
/// them, the tenant's events are read back and the query is in the store's history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trail_is_read_through_the_tenants_role_and_a_withheld_permission_is_named() {
    use audit_relay::trail::Trails;
    let dir = tempfile::tempdir().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let endpoint = start_lake(dir.path(), &stop).await;
    let e = endpoint.clone();
    let (store, channel) = tokio::task::spawn_blocking(move || {
        let (store, channel) = store_and_channel(&e, "viewer");
        let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::855341727128:root"},"Action":"sts:AssumeRole","Condition":{"StringEquals":{"sts:ExternalId":"ext-v"}}}]}"#;
        let (status, body) = lake_call(&e, "iam", "", &format!("Action=CreateRole&Version=2010-05-08&RoleName=Reader&AssumeRolePolicyDocument={}", urlencode(trust)));
        assert_eq!(status, 200, "{body}");
        let publish = format!(r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"cloudtrail-data:PutAuditEvents","Resource":"{channel}"}}]}}"#);
        let (status, body) = lake_call(&e, "iam", "", &format!("Action=PutRolePolicy&Version=2010-05-08&RoleName=Reader&PolicyName=publish&PolicyDocument={}", urlencode(&publish)));
        assert_eq!(status, 200, "{body}");
        (store, channel)
    })
    .await
    .unwrap();
    let catalog = Arc::new(Catalog::embedded());
    let (state, spool, registry, deliverer) = relay(dir.path(), &endpoint, catalog);
    let source = "com.nordcloudapp.com.maestro";
    let tenant = Tenant {
        id: "viewer".into(),
        channel_arn: channel.clone(),
        destination: Default::default(),
        delivery: DeliveryMode::AssumeRole {
            role_arn: "arn:aws:iam::123456789012:role/Reader".into(),
            external_id: Some("ext-v".into()),
            proxy_role_arn: None,
        },
        applications: vec![source.into()],
        paused: None,
        held: false,
        saved_queries: Vec::new(),
    };
    registry.put_tenant(&tenant).unwrap();
    let token = registry
        .issue_token(&Grant { name: "m".into(), source: source.into(), tenants: vec!["viewer".into()] })
        .unwrap();
    let delivering = tokio::spawn(deliverer.run(stop.clone()));
    for n in 0..3 {
        let event = json!({"version": "v1", "userIdentity": {"type": "USER", "principalId": "p"}, "eventSource": source,
            "eventName": "deployment.created", "eventTime": audit_event::EventTime::now().to_string(), "UID": format!("0190a6b6-6666-7a3f-9d2b-{n:012}"),
            "requestParameters": {"deploymentId": "5c4b3a29-1807-4f6e-9d5c-4b3a29180706", "deploymentName": "lz", "awsAccountId": "123456789012", "organizationId": "1"}});
        assert_eq!(post(&state, "viewer", &token, &event).await.0, 202);
    }
    eventually("the events are delivered", || spool.counts().unwrap() == (0, 3, 0)).await;

    let vendor = BaseCredentials::Static {
        access_key_id: audit_lake::config::VENDOR_ACCESS_KEY_ID.into(),
        secret_access_key: audit_lake::config::VENDOR_SECRET_ACCESS_KEY.into(),
        session_token: None,
    };
    let trails = Trails::new(vendor, Some(endpoint.clone()));
    let withheld = trails.open(&tenant).await.err().expect("the role may not read the channel");
    assert!(withheld.withheld(), "{withheld}");
    assert!(withheld.to_string().starts_with("GetChannel was refused"), "{withheld}");

    // The customer grants what `onboard`'s least-privilege policy grants for reading.
    let (e, c, s) = (endpoint.clone(), channel.clone(), store.clone());
    tokio::task::spawn_blocking(move || {
        let region = c.split(':').nth(3).unwrap();
        let read = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"cloudtrail:GetChannel","Resource":"{c}"}},{{"Effect":"Allow","Action":["cloudtrail:StartQuery","cloudtrail:DescribeQuery","cloudtrail:GetQueryResults","cloudtrail:ListQueries"],"Resource":"arn:aws:cloudtrail:{region}:123456789012:eventdatastore/{s}"}}]}}"#
        );
        let (status, body) = lake_call(&e, "iam", "", &format!("Action=PutRolePolicy&Version=2010-05-08&RoleName=Reader&PolicyName=read&PolicyDocument={}", urlencode(&read)));
        assert_eq!(status, 200, "{body}");
    })
    .await
    .unwrap();
    let trail = trails.open(&tenant).await.unwrap();
    assert_eq!(trail.store_id, store);
    let statement =
        format!("SELECT eventData.UID FROM {store} WHERE metadata.channelARN = '{channel}' ORDER BY eventData.UID");
    let answer = trail.run(&statement, 10).await.unwrap();
    let uids: Vec<&str> = answer.rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(
        uids,
        [
            "0190a6b6-6666-7a3f-9d2b-000000000000",
            "0190a6b6-6666-7a3f-9d2b-000000000001",
            "0190a6b6-6666-7a3f-9d2b-000000000002"
        ]
    );
    // The viewer pages a query only when the page's query is the statement shown.
    assert_eq!(trail.statement_of(&answer.query_id).await.as_deref(), Some(statement.as_str()));
    assert_eq!(trail.statement_of("no-such-query").await, None);
    let history = trail.history(10, |_| false).await.unwrap();
    assert!(history.iter().any(|q| q.statement == statement && q.status == "FINISHED"), "{history:?}");
    stop.cancel();
    delivering.await.unwrap();
}
