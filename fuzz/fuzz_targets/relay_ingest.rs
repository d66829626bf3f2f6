//! The relay's ingest API, in process (the router, no socket), on any request body: the first byte
//! picks the endpoint and credentials, the rest is the body. Whatever arrives, the relay answers
//! with one of its documented statuses and a JSON body, never a 500 and never a panic.
#![no_main]

use std::sync::{Arc, OnceLock};

use audit_event::Catalog;
use audit_relay::{
    api::{RelayState, router},
    registry::{DeliveryMode, Grant, Registry, Tenant},
    spool::Spool,
};
use axum::body::Body;
use http::{Request, StatusCode};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

const BACKUP: &str = "com.nordcloudapp.com.autobackup";

struct Relay {
    _dir: tempfile::TempDir,
    runtime: tokio::runtime::Runtime,
    app: axum::Router,
    token: String,
}

fn relay() -> &'static Relay {
    static RELAY: OnceLock<Relay> = OnceLock::new();
    RELAY.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        let registry = Registry::open(dir.path()).expect("the registry");
        registry
            .put_tenant(&Tenant {
                id: "t1".into(),
                channel_arn: "arn:aws:cloudtrail:eu-west-1:123456789012:channel/c-t1".into(),
                delivery: DeliveryMode::ResourcePolicy { external_id: Some("ext".into()) },
                applications: vec![BACKUP.into()],
                paused: None,
                held: true,
            })
            .expect("a tenant");
        let token = registry
            .issue_token(&Grant { name: "fuzz".into(), source: BACKUP.into(), tenants: vec!["t1".into()] })
            .expect("a token");
        let spool = Spool::open(&dir.path().join("spool"), 1 << 30).expect("the spool");
        let state = Arc::new(RelayState {
            spool,
            registry,
            catalog: Arc::new(Catalog::embedded()),
            max_body_bytes: 256 * 1024,
            max_events: 100,
            admin_token_sha256: Some(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"admin"))),
            metrics: Default::default(),
        });
        Relay { _dir: dir, runtime, app: router(state), token }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else { return };
    let relay = relay();
    let (method, path, auth) = match pick % 6 {
        0 | 1 => ("POST", "/v1/tenants/t1/events", format!("Bearer {}", relay.token)),
        2 => ("POST", "/v1/tenants/t2/events", format!("Bearer {}", relay.token)),
        3 => ("POST", "/v1/tenants/t1/events", "Bearer kat_not_a_token".to_owned()),
        4 => ("POST", "/v1/admin/tenants", "Bearer admin".to_owned()),
        _ => ("POST", "/v1/admin/tokens", "Bearer admin".to_owned()),
    };
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", auth)
        .header("content-type", if pick & 0x80 == 0 { "application/json" } else { "text/plain" })
        .body(Body::from(body.to_vec()))
        .expect("a request");
    let response = relay.runtime.block_on(relay.app.clone().oneshot(request)).expect("infallible");
    let status = response.status();
    assert!(
        [
            StatusCode::OK,
            StatusCode::CREATED,
            StatusCode::ACCEPTED,
            StatusCode::BAD_REQUEST,
            StatusCode::UNAUTHORIZED,
            StatusCode::FORBIDDEN,
            StatusCode::NOT_FOUND,
            StatusCode::CONFLICT,
            StatusCode::PAYLOAD_TOO_LARGE,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            StatusCode::UNPROCESSABLE_ENTITY,
        ]
        .contains(&status),
        "status {status}"
    );
    let bytes = relay.runtime.block_on(axum::body::to_bytes(response.into_body(), 1 << 24)).expect("a body");
    if !bytes.is_empty() {
        serde_json::from_slice::<serde_json::Value>(&bytes).expect("a JSON body");
    }
});
