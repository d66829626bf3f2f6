//! The ingest API through `oneshot` (no socket): authentication, isolation, validation,
//! completion of UID and recipientAccountId, idempotency, limits.

use axum::{body::Body, http::Request};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sha2::Digest;
use tower::ServiceExt;

use super::*;
use crate::{registry::DeliveryMode, spool::Outcome};

const BACKUP: &str = "com.nordcloudapp.com.autobackup";
const ADMIN: &str = "kadmin_test_token_0123456789";
const MAESTRO: &str = "com.nordcloudapp.com.maestro";

struct Setup {
    _dir: tempfile::TempDir,
    state: Arc<RelayState>,
    spool: crate::spool::Spool,
    registry: crate::registry::Registry,
    backup: String,
    maestro: String,
    backup_t1: String,
}

fn setup(spool_bytes: u64) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let registry = crate::registry::Registry::open(dir.path()).unwrap();
    for (id, account, apps) in [("t1", "123456789012", vec![BACKUP, MAESTRO]), ("t2", "210987654321", vec![BACKUP])] {
        let tenant = Tenant {
            id: id.into(),
            channel_arn: format!("arn:aws:cloudtrail:eu-west-1:{account}:channel/c-{id}"),
            destination: Default::default(),
            delivery: DeliveryMode::ResourcePolicy { external_id: Some("ext".into()) },
            applications: apps.into_iter().map(str::to_owned).collect(),
            paused: None,
            held: false,
            saved_queries: Vec::new(),
        };
        crate::registry::check_tenant(&tenant).unwrap();
        registry.put_tenant(&tenant).unwrap();
    }
    let grant = |name: &str, source: &str, tenants: &[&str]| Grant {
        name: name.into(),
        source: source.into(),
        tenants: tenants.iter().map(|t| (*t).to_owned()).collect(),
    };
    let backup = registry.issue_token(&grant("backup", BACKUP, &["*"])).unwrap();
    let maestro = registry.issue_token(&grant("maestro", MAESTRO, &["t1", "t2"])).unwrap();
    let backup_t1 = registry.issue_token(&grant("backup-t1", BACKUP, &["t1"])).unwrap();
    let spool = crate::spool::Spool::open(&dir.path().join("spool"), spool_bytes).unwrap();
    let state = Arc::new(RelayState {
        store: Arc::new(crate::store::sqlite::SqliteStore::new(spool.clone(), registry.clone())),
        catalog: Arc::new(Catalog::embedded()),
        max_body_bytes: 256 * 1024,
        max_events: 10,
        admin_token_sha256: Some(hex::encode(sha2::Sha256::digest(ADMIN.as_bytes()))),
        metrics: Default::default(),
        console: super::console::sessions::Sessions::new(""),
        verify_with: None,
        trails: None,
    });
    Setup { _dir: dir, state, spool, registry, backup, maestro, backup_t1 }
}

fn backup_event(uid: Option<&str>) -> Value {
    let mut event = json!({
        "version": "v1",
        "userIdentity": {"type": "SERVICE", "principalId": "autobackup-scheduler"},
        "eventSource": BACKUP,
        "eventName": "backup.started",
        "eventTime": "2024-07-12T10:55:00Z",
        "requestParameters": {"resourceType": "DynamoDB", "resourceArn": "arn:aws:dynamodb:eu-west-1:123456789012:table/orders", "region": "eu-west-1", "backupPolicy": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"}
    });
    if let Some(uid) = uid {
        event["UID"] = json!(uid);
    }
    event
}

async fn call(s: &Setup, method: &str, uri: &str, token: Option<&str>, body: &str) -> (StatusCode, HeaderMap, Value) {
    let mut request = Request::builder().method(method).uri(uri).header("content-type", "application/json");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = router(s.state.clone()).oneshot(request.body(Body::from(body.to_owned())).unwrap()).await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn post(s: &Setup, tenant: &str, token: &str, body: &Value) -> (StatusCode, Value) {
    let (status, _, value) =
        call(s, "POST", &format!("/v1/tenants/{tenant}/events"), Some(token), &body.to_string()).await;
    (status, value)
}

#[tokio::test]
async fn a_valid_event_is_completed_and_made_durable() {
    let s = setup(1 << 30);
    let (status, body) = post(&s, "t1", &s.backup, &backup_event(Some("0190a6b4-2222-7a3f-9d2b-000000000001"))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["accepted"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(s.spool.status("t1", BACKUP, "0190a6b4-2222-7a3f-9d2b-000000000001").unwrap().unwrap().entry_id, id);
    assert_eq!(body["accepted"][0]["state"], "pending");
    assert_eq!(body["rejected"], json!([]));
    let pending = s.spool.pending("t1", 0, 10).unwrap();
    let stored: Value = serde_json::from_str(&pending[0].event_data).unwrap();
    assert_eq!(stored["recipientAccountId"], "123456789012", "filled from the tenant's channel");

    // Without a UID the relay generates a UUID v7.
    let (status, body) = post(&s, "t1", &s.backup, &backup_event(None)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let uid = body["accepted"][0]["uid"].as_str().unwrap();
    assert!(audit_event::validate::is_uuid(uid) && uid.as_bytes()[14] == b'7', "{uid}");
}

#[tokio::test]
async fn tokens_are_bound_to_one_application_and_their_tenants() {
    let s = setup(1 << 30);
    let event = backup_event(Some("0190a6b4-2222-7a3f-9d2b-000000000002"));
    for (token, tenant, expected) in [
        (None, "t1", StatusCode::UNAUTHORIZED),
        (Some("kat_forged"), "t1", StatusCode::UNAUTHORIZED),
        (Some(s.backup.as_str()), "nope", StatusCode::NOT_FOUND),
        (Some(s.backup_t1.as_str()), "t2", StatusCode::FORBIDDEN),
        // A tenant the token does not cover gets the same answer whether it exists or not.
        (Some(s.backup_t1.as_str()), "nope", StatusCode::FORBIDDEN),
        (Some(s.maestro.as_str()), "t2", StatusCode::FORBIDDEN),
    ] {
        let (status, headers, body) =
            call(&s, "POST", &format!("/v1/tenants/{tenant}/events"), token, &event.to_string()).await;
        assert_eq!(status, expected, "{token:?} → {tenant}: {body}");
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
        if expected == StatusCode::UNAUTHORIZED {
            assert_eq!(headers.get("www-authenticate").unwrap(), "Bearer");
        }
    }
    // App A's token cannot publish app B's events.
    let (status, body) = post(&s, "t1", &s.maestro, &event).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["rejected"][0]["errors"][0]["code"], "InvalidEventSource");
    assert_eq!(s.spool.counts().unwrap(), (0, 0, 0), "nothing was stored");
    // The right token into the other tenant it covers.
    let (status, _) = post(&s, "t2", &s.backup, &event).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(s.spool.pending("t2", 0, 10).unwrap().len(), 1);
    assert!(s.spool.pending("t1", 0, 10).unwrap().is_empty());
}

#[tokio::test]
async fn resubmission_returns_the_first_result() {
    let s = setup(1 << 30);
    let event = backup_event(Some("0190a6b4-2222-7a3f-9d2b-000000000003"));
    let (_, first) = post(&s, "t1", &s.backup, &event).await;
    let (status, again) = post(&s, "t1", &s.backup, &event).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(again["accepted"][0]["id"], first["accepted"][0]["id"]);
    assert_eq!(again["accepted"][0]["duplicate"], true);
    assert_eq!(s.spool.counts().unwrap().0, 1);
}

#[tokio::test]
async fn invalid_events_get_every_violation_and_valid_ones_still_pass() {
    let s = setup(1 << 30);
    let mut bad = backup_event(Some("UUID"));
    bad["eventTime"] = json!("202-07-12T10:55:00");
    bad["recipientAccountId"] = json!("999999999999");
    let good = backup_event(Some("0190a6b4-2222-7a3f-9d2b-000000000004"));
    let (status, body) = post(&s, "t1", &s.backup, &json!({"events": [bad, good, 42]})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["accepted"].as_array().unwrap().len(), 1);
    assert_eq!(body["accepted"][0]["index"], 1);
    let errors: Vec<(String, String)> = body["rejected"][0]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["path"].as_str().unwrap().to_owned(), e["code"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        errors,
        vec![
            ("eventData.eventTime".into(), "InvalidData".into()),
            ("eventData.recipientAccountId".into(), "InvalidRecipient".into()),
            ("eventData.UID".into(), "InvalidData".into()),
        ]
    );
    assert_eq!(body["rejected"][1]["index"], 2);
    assert_eq!(body["rejected"][1]["errors"][0]["rule"], "not_object");
}

#[tokio::test]
async fn body_forms_and_limits() {
    let s = setup(1 << 30);
    let array = json!([
        backup_event(Some("0190a6b4-2222-7a3f-9d2b-000000000005")),
        backup_event(Some("0190a6b4-2222-7a3f-9d2b-000000000006"))
    ]);
    let (status, body) = post(&s, "t1", &s.backup, &array).await;
    assert_eq!((status, body["accepted"].as_array().unwrap().len()), (StatusCode::ACCEPTED, 2));

    let (status, _, body) = call(&s, "POST", "/v1/tenants/t1/events", Some(&s.backup), "{\n  \"version\": }").await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("MalformedJson")));
    assert!(body["error"]["message"].as_str().unwrap().contains("line 2"), "{body}");
    let (status, _, body) = call(&s, "POST", "/v1/tenants/t1/events", Some(&s.backup), "[]").await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("MalformedRequest")));
    for (text, code) in
        [("", "MalformedJson"), (" \n ", "MalformedJson"), ("\"x\"", "MalformedRequest"), ("[1,", "MalformedJson")]
    {
        let (status, _, body) = call(&s, "POST", "/v1/tenants/t1/events", Some(&s.backup), text).await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some(code)), "{text:?}: {body}");
    }
    // One object (with whitespace around it), and the {"events": [...]} form.
    let one = format!("\n {} \n", backup_event(Some("0190a6b4-2222-7a3f-9d2b-000000000007")));
    let (status, _, body) = call(&s, "POST", "/v1/tenants/t1/events", Some(&s.backup), &one).await;
    assert_eq!((status, body["accepted"].as_array().map(Vec::len)), (StatusCode::ACCEPTED, Some(1)), "{body}");
    let wrapped = json!({"events": [backup_event(Some("0190a6b4-2222-7a3f-9d2b-000000000008"))]});
    let (status, body) = post(&s, "t1", &s.backup, &wrapped).await;
    assert_eq!((status, body["accepted"].as_array().map(Vec::len)), (StatusCode::ACCEPTED, Some(1)), "{body}");

    let eleven: Vec<Value> = (0..11).map(|i| backup_event(Some(&format!("0190a6b4-2222-7a3f-9d2b-{i:012}")))).collect();
    let (status, body) = post(&s, "t1", &s.backup, &json!(eleven)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("TooManyEvents")));
    let huge = format!("[{}]", "1,".repeat(200_000) + "1");
    let (status, _, body) = call(&s, "POST", "/v1/tenants/t1/events", Some(&s.backup), &huge).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("RequestTooLarge")));
}

#[tokio::test]
async fn delivery_status() {
    let s = setup(1 << 30);
    let uid = "0190a6b4-2222-7a3f-9d2b-000000000007";
    post(&s, "t1", &s.backup, &backup_event(Some(uid))).await;
    let (status, _, body) = call(&s, "GET", &format!("/v1/tenants/t1/events/{uid}"), Some(&s.backup), "").await;
    assert_eq!((status, body["state"].as_str()), (StatusCode::OK, Some("pending")));
    let seq = s.spool.pending("t1", 0, 1).unwrap()[0].seq;
    s.spool
        .settle(vec![Outcome::Delivered { seq, event_id: "4cb788f9-f541-4c33-bac1-8a1f0b477a3d".into() }])
        .await
        .unwrap();
    let (_, _, body) = call(&s, "GET", &format!("/v1/tenants/t1/events/{uid}"), Some(&s.backup), "").await;
    assert_eq!(
        (body["state"].as_str(), body["eventID"].as_str()),
        (Some("delivered"), Some("4cb788f9-f541-4c33-bac1-8a1f0b477a3d"))
    );
    // Another application's token does not see it.
    let (status, _, _) = call(&s, "GET", &format!("/v1/tenants/t1/events/{uid}"), Some(&s.maestro), "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_full_spool_answers_503() {
    let s = setup(1);
    let (status, headers, body) = call(
        &s,
        "POST",
        "/v1/tenants/t1/events",
        Some(&s.backup),
        &backup_event(Some("0190a6b4-2222-7a3f-9d2b-000000000008")).to_string(),
    )
    .await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("SpoolFull")));
    assert_eq!(headers.get("retry-after").unwrap(), "5");
}

#[tokio::test]
async fn the_admin_api_needs_its_own_token() {
    let s = setup(1 << 30);
    for (token, expected) in [
        (None, StatusCode::UNAUTHORIZED),
        (Some(s.backup.as_str()), StatusCode::UNAUTHORIZED),
        (Some("kadmin_wrong"), StatusCode::UNAUTHORIZED),
        (Some(ADMIN), StatusCode::OK),
    ] {
        for uri in ["/v1/admin/tenants", "/metrics"] {
            let (status, _, _) = call(&s, "GET", uri, token, "").await;
            assert_eq!(status, expected, "{uri} with {token:?}");
        }
    }
    // A body is read only once the admin token is checked, and is bounded.
    let big = format!("{{\"reason\":\"{}\"}}", "x".repeat(super::admin::MAX_ADMIN_BODY));
    let (status, _, _) = call(&s, "POST", "/v1/admin/tenants/t1/pause", None, &big).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, body) = call(&s, "POST", "/v1/admin/tenants/t1/pause", Some(ADMIN), &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"]["code"], "RequestTooLarge");
    assert!(s.registry.tenant("t1").unwrap().unwrap().paused.is_none(), "an oversized pause must not pause");
    // Health and readiness carry no data and need no credential.
    for uri in ["/healthz", "/readyz"] {
        let response = router(s.state.clone()).oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{uri}");
    }
}

#[tokio::test]
async fn tenants_tokens_and_dead_letters_over_the_admin_api() {
    let s = setup(1 << 30);
    let tenant = json!({"id": "t3", "channel_arn": "arn:aws:cloudtrail:eu-north-1:333344445555:channel/c3",
        "delivery": {"mode": "assume-role", "role_arn": "arn:aws:iam::333344445555:role/CTEventPublisher", "external_id": "x", "proxy_role_arn": null},
        "applications": [BACKUP], "paused": null});
    let (status, _, body) = call(&s, "POST", "/v1/admin/tenants", Some(ADMIN), &tenant.to_string()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _, _) = call(&s, "POST", "/v1/admin/tenants", Some(ADMIN), &tenant.to_string()).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let mut bad = tenant.clone();
    bad["id"] = json!("t4");
    bad["channel_arn"] = json!("nope");
    let (status, _, body) = call(&s, "POST", "/v1/admin/tenants", Some(ADMIN), &bad.to_string()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("InvalidTenant")));

    let (status, _, body) =
        call(&s, "POST", "/v1/admin/tenants/t3/pause", Some(ADMIN), r#"{"reason":"maintenance"}"#).await;
    assert_eq!((status, body["paused"].as_str()), (StatusCode::OK, Some("maintenance")));
    let (_, _, body) = call(&s, "POST", "/v1/admin/tenants/t3/resume", Some(ADMIN), "").await;
    assert!(body["paused"].is_null());

    let (status, _, body) = call(
        &s,
        "POST",
        "/v1/admin/tokens",
        Some(ADMIN),
        &json!({"name": "b3", "source": BACKUP, "tenants": ["t3"]}).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    let mut event = backup_event(Some("0190a6b4-2222-7a3f-9d2b-000000000009"));
    event["requestParameters"]["resourceArn"] = json!("arn:aws:dynamodb:eu-north-1:333344445555:table/t");
    let (status, body) = post(&s, "t3", &token, &event).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");

    // A dead letter, listed and replayed.
    let seq = s.spool.pending("t3", 0, 1).unwrap()[0].seq;
    s.spool.settle(vec![Outcome::Dead { seq, code: "InvalidData".into(), message: "refused".into() }]).await.unwrap();
    let (_, _, body) = call(&s, "GET", "/v1/admin/tenants/t3/dead-letters", Some(ADMIN), "").await;
    assert_eq!(body["deadLetters"][0]["errorCode"], "InvalidData");
    let (_, _, body) = call(&s, "POST", "/v1/admin/tenants/t3/dead-letters/replay", Some(ADMIN), "").await;
    assert_eq!(body["replayed"], 1);
    assert_eq!(s.spool.pending("t3", 0, 10).unwrap().len(), 1);

    let response = router(s.state.clone())
        .oneshot(
            Request::get("/metrics").header("authorization", format!("Bearer {ADMIN}")).body(Body::empty()).unwrap(),
        )
        .await
        .unwrap();
    let text = String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    for line in [
        "klarity_relay_events_accepted_total{tenant=\"t3\"} 1",
        "klarity_relay_queue_depth{tenant=\"t3\"} 1",
        "klarity_relay_tenant_paused{tenant=\"t3\"} 0",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
    let age = text.lines().find_map(|l| l.strip_prefix("klarity_relay_oldest_queued_age_seconds{tenant=\"t3\"} "));
    assert!(age.is_some_and(|a| a.parse::<f64>().is_ok_and(|a| (0.0..60.0).contains(&a))), "{text}");

    let (status, _, _) = call(&s, "DELETE", "/v1/admin/tenants/t3", Some(ADMIN), "").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = call(&s, "GET", "/v1/admin/tenants/t3", Some(ADMIN), "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_openapi_document_describes_every_route() {
    let s = setup(1 << 30);
    let response =
        router(s.state.clone()).oneshot(Request::get("/openapi.json").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let doc: Value = serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let routes = [
        ("post", "/v1/tenants/{tenant}/events"),
        ("get", "/v1/tenants/{tenant}/events/{uid}"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
        ("get", "/openapi.json"),
        ("get", "/v1/admin/tenants"),
        ("post", "/v1/admin/tenants"),
        ("get", "/v1/admin/tenants/{tenant}"),
        ("delete", "/v1/admin/tenants/{tenant}"),
        ("post", "/v1/admin/tenants/{tenant}/pause"),
        ("post", "/v1/admin/tenants/{tenant}/resume"),
        ("get", "/v1/admin/tenants/{tenant}/dead-letters"),
        ("post", "/v1/admin/tenants/{tenant}/dead-letters/replay"),
        ("post", "/v1/admin/tenants/{tenant}/viewer-links"),
        ("get", "/v1/admin/tokens"),
        ("post", "/v1/admin/tokens"),
        ("delete", "/v1/admin/tokens/{id}"),
    ];
    let documented: usize = doc["paths"].as_object().unwrap().values().map(|ops| ops.as_object().unwrap().len()).sum();
    assert_eq!(documented, routes.len(), "every documented operation is a route");
    for (method, path) in routes {
        assert!(doc["paths"][path][method].is_object(), "{method} {path} is not documented");
        // And the route exists: it does not answer 404/405 for lack of a handler.
        let uri = path.replace("{tenant}", "t1").replace("{uid}", "u").replace("{id}", "tok_0");
        let response = router(s.state.clone())
            .oneshot(Request::builder().method(method.to_uppercase().as_str()).uri(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        // Without credentials every route answers (401, or 200 for the open ones); a missing route
        // would be 404 and a missing method 405.
        let status = response.status();
        assert!(
            status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: {status}"
        );
    }
}

#[test]
fn splicing_adds_members_after_the_opening_brace() {
    assert_eq!(splice(r#"{"a":1}"#, Some(("UID", "u")), None), r#"{"UID":"u","a":1}"#);
    assert_eq!(
        splice(r#"{"a":1}"#, Some(("UID", "u")), Some(("recipientAccountId", "1"))),
        r#"{"UID":"u","recipientAccountId":"1","a":1}"#
    );
    assert_eq!(splice("{ }", None, Some(("recipientAccountId", "1"))), r#"{"recipientAccountId":"1" }"#);
    assert_eq!(splice("{\n  \"a\": 1\n}", Some(("UID", "u")), None), "{\"UID\":\"u\",\n  \"a\": 1\n}");
    assert_eq!(splice(r#"{"a":1}"#, None, None), r#"{"a":1}"#);
    for spliced in
        [splice("{ }", Some(("UID", "u")), None), splice(r#"{"a":{"b":[1]}}"#, Some(("UID", "u")), Some(("x", "y")))]
    {
        serde_json::from_str::<Value>(&spliced).unwrap();
    }
}

#[tokio::test]
async fn a_null_recipient_is_refused_not_filled() {
    let s = setup(1 << 30);
    let mut event = backup_event(Some("0190a6b4-2222-7a3f-9d2b-000000000010"));
    event["recipientAccountId"] = Value::Null;
    let (status, body) = post(&s, "t1", &s.backup, &event).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["rejected"][0]["errors"][0]["path"], "eventData.recipientAccountId");
}

/// An event holding half a UTF-16 surrogate pair is refused at the door (it would poison every
/// reader downstream), with the field, the rule and the code CloudTrail would give.
#[tokio::test]
async fn a_lone_surrogate_escape_is_refused() {
    let s = setup(64 << 20);
    let text = backup_event(Some("0190a6b4-2222-7a3f-9d2b-00000000dead")).to_string().replacen(
        "autobackup-scheduler",
        "ops\\ud800x",
        1,
    );
    let (status, _, answer) = call(&s, "POST", "/v1/tenants/t1/events", Some(&s.backup), &text).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let error = &answer["rejected"][0]["errors"][0];
    assert_eq!(error["path"], "eventData.userIdentity.principalId", "{answer}");
    assert_eq!(error["rule"], "lone_surrogate");
    assert_eq!(error["code"], "InvalidData");
    assert_eq!(s.spool.depth().get("t1").copied().unwrap_or(0), 0, "nothing was stored");
}

/// Tokens are listed (never shown), revoked and expire over the admin API; a revoked or expired
/// token is refused from its next request on, with the reason.
#[tokio::test]
async fn tokens_are_listed_revoked_and_expire() {
    let s = setup(1 << 30);
    let admin = Some(ADMIN);
    let (status, _, body) = call(&s, "GET", "/v1/admin/tokens", admin, "").await;
    assert_eq!(status, StatusCode::OK);
    let tokens = body["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 3);
    let listed = body.to_string();
    for token in [&s.backup, &s.maestro, &s.backup_t1] {
        assert!(!listed.contains(token.as_str()), "a listing never shows a token");
    }
    let record = tokens.iter().find(|t| t["name"] == "backup-t1").unwrap();
    assert_eq!(record["hint"], s.backup_t1[..12]);
    assert!(record["createdMs"].as_i64().is_some() && record["revokedMs"].is_null());
    let id = record["id"].as_str().unwrap().to_owned();

    let event = backup_event(Some("0190a6b4-2222-7a3f-9d2b-00000000a001"));
    assert_eq!(post(&s, "t1", &s.backup_t1, &event).await.0, StatusCode::ACCEPTED);
    let (status, _, body) = call(&s, "DELETE", &format!("/v1/admin/tokens/{id}"), admin, "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["revokedMs"].as_i64().is_some());
    let (status, body) = post(&s, "t1", &s.backup_t1, &event).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["error"]["message"].as_str().unwrap().starts_with("the token was revoked at "), "{body}");
    assert_eq!(call(&s, "DELETE", "/v1/admin/tokens/tok_000000000000", admin, "").await.0, StatusCode::NOT_FOUND);
    // The other tokens still work.
    assert_eq!(
        post(&s, "t1", &s.backup, &backup_event(Some("0190a6b4-2222-7a3f-9d2b-00000000a002"))).await.0,
        StatusCode::ACCEPTED
    );

    // An expiring token works until its time.
    let grant = json!({"name": "short", "source": BACKUP, "tenants": ["t1"], "expiresAt": "2099-01-01T00:00:00Z"});
    let (status, _, body) = call(&s, "POST", "/v1/admin/tokens", admin, &grant.to_string()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    assert_eq!(body["record"]["expiresMs"], 4_070_908_800_000i64);
    assert_eq!(
        post(&s, "t1", &token, &backup_event(Some("0190a6b4-2222-7a3f-9d2b-00000000a003"))).await.0,
        StatusCode::ACCEPTED
    );
    let past = json!({"name": "past", "source": BACKUP, "tenants": ["t1"], "expiresAt": "2020-01-01T00:00:00Z"});
    let (status, _, body) = call(&s, "POST", "/v1/admin/tokens", admin, &past.to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    match s.registry.check_token_at(&token, 4_070_908_800_000).unwrap() {
        crate::registry::TokenCheck::Expired(at) => assert_eq!(at, 4_070_908_800_000),
        other => panic!("{other:?}"),
    }
}

/// A token's last use is written at most once a minute: a busy token costs no write per request.
#[test]
fn a_token_s_last_use_is_written_at_most_once_a_minute() {
    let dir = tempfile::tempdir().unwrap();
    let registry = crate::registry::Registry::open(dir.path()).unwrap();
    let grant = Grant { name: "n".into(), source: BACKUP.into(), tenants: vec!["*".into()] };
    let token = registry.issue_token(&grant).unwrap();
    let last_used = || registry.tokens().unwrap()[0].last_used_ms;
    assert_eq!(last_used(), None);
    let t0 = 1_800_000_000_000;
    for (at, written) in
        [(t0, t0), (t0 + 1_000, t0), (t0 + 59_999, t0), (t0 + 60_000, t0 + 60_000), (t0 + 61_000, t0 + 60_000)]
    {
        assert!(matches!(registry.check_token_at(&token, at).unwrap(), crate::registry::TokenCheck::Valid(_)));
        assert_eq!(last_used(), Some(written), "at {at}");
    }
    assert_eq!(registry.check_token_at("kat_other", t0).unwrap(), crate::registry::TokenCheck::Unknown);
}

/// A console request with the form `body` and the `cookie`; (status, Location, Set-Cookie).
async fn console(s: &Setup, method: &str, uri: &str, cookie: Option<&str>, body: &str) -> (StatusCode, String, String) {
    let mut request =
        Request::builder().method(method).uri(uri).header("content-type", "application/x-www-form-urlencoded");
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let response = router(s.state.clone()).oneshot(request.body(Body::from(body.to_owned())).unwrap()).await.unwrap();
    let header = |name| response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    (response.status(), header(header::LOCATION), header(header::SET_COOKIE))
}

/// A tenant that waits for a look-up of what may already be stored says so on the console's
/// tenants page, and `/metrics` counts it.
#[tokio::test]
async fn a_tenant_looking_up_what_may_be_stored_says_so_on_the_console_and_in_metrics() {
    let s = setup(1 << 30);
    let (_, _, cookie) = console(&s, "POST", "/console/sign-in", None, &format!("token={ADMIN}")).await;
    let session = cookie.split(';').next().unwrap().to_owned();
    let page = || async {
        let request = Request::get("/console").header("cookie", &session).body(Body::empty()).unwrap();
        let response = router(s.state.clone()).oneshot(request).await.unwrap();
        String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
    };
    let metrics = || async {
        let request =
            Request::get("/metrics").header("authorization", format!("Bearer {ADMIN}")).body(Body::empty()).unwrap();
        let response = router(s.state.clone()).oneshot(request).await.unwrap();
        String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
    };
    let said = "what may already be stored before sending it again";
    assert!(!page().await.contains(said));
    s.state.metrics.tenant("t1").looking_up(true);
    assert!(page().await.contains(said));
    assert!(metrics().await.contains("klarity_relay_tenant_looking_up{tenant=\"t1\"} 1"));
    s.state.metrics.tenant("t1").looking_up(false);
    assert!(!page().await.contains(said));
    assert!(metrics().await.contains("klarity_relay_tenant_looking_up{tenant=\"t1\"} 0"));
}

#[tokio::test]
async fn the_console_needs_a_session_and_every_change_its_csrf_token() {
    let s = setup(1 << 30);
    // No session: every page and change sends to the sign-in page, and changes nothing.
    assert_eq!(console(&s, "GET", "/console", None, "").await.1, "/console/sign-in");
    assert_eq!(console(&s, "POST", "/console/tenants/t1/pause", None, "reason=x").await.1, "/console/sign-in");
    assert!(s.state.store.tenant("t1").await.unwrap().unwrap().paused.is_none());
    // A wrong token opens none; the admin token opens one, in a cookie scripts cannot read.
    let (status, _, cookie) = console(&s, "POST", "/console/sign-in", None, "token=nope").await;
    assert_eq!((status, cookie.as_str()), (StatusCode::UNAUTHORIZED, ""));
    let (status, location, cookie) = console(&s, "POST", "/console/sign-in", None, &format!("token={ADMIN}")).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/console"));
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Path=/console"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_owned();
    assert_eq!(console(&s, "GET", "/console", Some(&session), "").await.0, StatusCode::OK);
    // A change with the cookie but without the session's CSRF token is refused.
    let (status, ..) = console(&s, "POST", "/console/tenants/t1/pause", Some(&session), "reason=x&csrf=forged").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(s.state.store.tenant("t1").await.unwrap().unwrap().paused.is_none());
    let id = session.split_once('=').unwrap().1;
    let csrf = s.state.console.csrf(id).unwrap();
    let (status, location, _) =
        console(&s, "POST", "/console/tenants/t1/pause", Some(&session), &format!("reason=moving&csrf={csrf}")).await;
    assert_eq!((status, location.starts_with("/console?done=")), (StatusCode::SEE_OTHER, true));
    let tenant = s.state.store.tenant("t1").await.unwrap().unwrap();
    assert_eq!((tenant.paused.as_deref(), tenant.held), (Some("moving"), true));
}

#[tokio::test]
async fn viewer_links_are_minted_by_the_admin_api_and_open_only_their_tenant_read_only() {
    let s = setup(1 << 30);
    let mint = |body: &'static str| {
        let s = &s;
        async move { call(s, "POST", "/v1/admin/tenants/t1/viewer-links", Some(ADMIN), body).await }
    };
    assert_eq!(call(&s, "POST", "/v1/admin/tenants/t1/viewer-links", None, "").await.0, StatusCode::UNAUTHORIZED);
    let (status, _, body) = mint(r#"{"expires_in_seconds": 0}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"].as_str().unwrap().contains("1 to 2592000"), "{body}");
    assert_eq!(call(&s, "POST", "/v1/admin/tenants/nope/viewer-links", Some(ADMIN), "").await.0, StatusCode::NOT_FOUND);
    let (status, _, link) = mint(r#"{"expires_in_seconds": 60}"#).await;
    assert_eq!(status, StatusCode::CREATED, "{link}");
    let path = link["path"].as_str().unwrap().to_owned();
    assert!(path.starts_with("/console/view/kvl_"), "{path}");

    // The link opens t1's viewer (this relay has no AWS identity, so the page says it cannot read
    // the store), and its use is an event in t1's own queue.
    let (status, ..) = console(&s, "GET", &path, None, "").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "the link is admitted; reading needs an AWS identity");
    let pending = s.spool.pending("t1", 0, 10).unwrap();
    assert_eq!(pending.len(), 1, "one use, one auditTrail.viewed event");
    let event: Value = serde_json::from_str(&pending[0].event_data).unwrap();
    assert_eq!(
        (event["eventName"].as_str(), event["requestParameters"]["action"].as_str()),
        (Some("auditTrail.viewed"), Some("browse"))
    );
    assert_eq!(event["requestParameters"]["linkId"], link["id"]);

    // Another tenant's name in it breaks its signature; a link reaches no operator page or change.
    let token = path.trim_start_matches("/console/view/kvl_");
    let (payload, tag) = token.split_once('.').unwrap();
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let text = String::from_utf8(engine.decode(payload).unwrap()).unwrap().replacen("t1.", "t2.", 1);
    let forged = format!("/console/view/kvl_{}.{tag}", engine.encode(text));
    assert_eq!(console(&s, "GET", &forged, None, "").await.0, StatusCode::FORBIDDEN);
    assert!(s.spool.pending("t2", 0, 10).unwrap().is_empty(), "a refused link records nothing");
    assert_eq!(console(&s, "POST", &format!("{path}/sql"), None, "q=x").await.0, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(console(&s, "GET", "/console/tenants/t1/trail", None, "").await.1, "/console/sign-in");
}

#[test]
fn a_tenant_is_updated_by_the_rules_the_cli_uses() {
    use crate::registry::{DestinationChange, ObjectFormat, update_tenant};
    let mut tenant = Tenant {
        id: "acme".into(),
        channel_arn: "arn:aws:logs:eu-west-1:123456789012:log-group:audit".into(),
        destination: crate::registry::Destination::CloudwatchLogs { log_stream: "s".into() },
        delivery: DeliveryMode::AssumeRole {
            role_arn: "arn:aws:iam::123456789012:role/Logs".into(),
            external_id: Some("e".into()),
            proxy_role_arn: None,
        },
        applications: vec![BACKUP.into()],
        paused: None,
        held: false,
        saved_queries: Vec::new(),
    };
    // To S3, with the customer's S3 role: the bucket's account defaults to the role's.
    let to = DestinationChange {
        bucket_arn: Some("audit-bucket".into()),
        region: Some("eu-west-1".into()),
        ..Default::default()
    };
    update_tenant(&mut tenant, &to, Some("arn:aws:iam::123456789012:role/S3"), None, None).unwrap();
    assert_eq!(tenant.channel_arn, "arn:aws:s3:::audit-bucket");
    match &tenant.destination {
        crate::registry::Destination::S3 { account, format, prefix, .. } => {
            assert_eq!(
                (account.as_str(), *format, prefix.as_str()),
                ("123456789012", ObjectFormat::Ndjson, "klarity-audit/")
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(&tenant.delivery, DeliveryMode::AssumeRole { role_arn, external_id, .. }
        if role_arn.ends_with("role/S3") && external_id.as_deref() == Some("e")),
        "the external ID stays"
    );
    // A setting of another destination is refused by its option's name; a bad role by its rule.
    let err = update_tenant(
        &mut tenant.clone(),
        &DestinationChange { log_stream: Some("x".into()), ..Default::default() },
        None,
        None,
        None,
    )
    .unwrap_err();
    assert!(err.contains("--log-stream is a setting of cloudwatch-logs"), "{err}");
    let err =
        update_tenant(&mut tenant.clone(), &DestinationChange::default(), Some("arn:aws:iam::1:user/x"), None, None)
            .unwrap_err();
    assert!(err.contains("is not arn:aws:iam::<account>:role/<name>"), "{err}");
    // A tenant publishing through a channel policy has no role to change.
    let mut policy = tenant.clone();
    policy.delivery = DeliveryMode::ResourcePolicy { external_id: None };
    let err =
        update_tenant(&mut policy, &DestinationChange::default(), Some("arn:aws:iam::123456789012:role/R"), None, None)
            .unwrap_err();
    assert!(err.contains("has no role to change"), "{err}");
}
