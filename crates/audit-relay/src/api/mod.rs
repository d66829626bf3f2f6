//! The ingest API (axum).
//!
//! - `POST /v1/tenants/{tenant}/events`: one `eventData` object, a JSON array of them, or
//!   `{"events": [...]}`; `Authorization: Bearer <app token>`. Each event is completed
//!   (`UID` when absent, a UUID v7; `recipientAccountId` from the tenant's channel), validated
//!   against CloudTrail's schema and the catalog, and the valid ones are made durable before the
//!   answer: `202` with per-event results, or `400` when none was accepted.
//! - `GET /v1/tenants/{tenant}/events/{uid}`: the delivery status of an event of the token's
//!   application.
//! - `GET /healthz`: liveness; `GET /readyz`: the store (spool or database) answers and has room. Neither returns data nor needs a
//!   credential, so orchestrators can probe them.
//! - `/v1/admin/...` and `GET /metrics`: the admin API ([`admin`]), behind its own credential.
//!
//! - `GET /openapi.json`: this API, described (`api/openapi.json`).
//!
//! Errors become JSON `{"error": {"code", "message"}}` in one place ([`ApiError`]).

mod admin;
pub mod console;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use audit_event::{Catalog, Stage, Validator};
use axum::{
    Json, Router,
    body::{Body, Bytes},
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use http_serve::BodyError;
use serde_json::{Value, json, value::RawValue};

use crate::{
    error::SpoolError,
    metrics::Metrics,
    registry::{Grant, Tenant, TokenCheck},
    spool::{NewEvent, State as EventState},
    store::Store,
};

/// The OpenAPI 3.1 description of this API.
pub const OPENAPI: &str = include_str!("openapi.json");

/// What the API needs.
pub struct RelayState {
    /// Where accepted events go, and tenants and tokens.
    pub store: Store,
    /// The application catalog events are checked against.
    pub catalog: Arc<Catalog>,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Most events in one request.
    pub max_events: usize,
    /// SHA-256 (hex) of the admin token; `None` disables the admin API.
    pub admin_token_sha256: Option<String>,
    /// Per-tenant counters, shared with delivery, for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The web console's sessions.
    pub console: console::sessions::Sessions,
    /// The relay's own identity and endpoint, for checking a tenant from the console (`None`: the
    /// console cannot).
    pub verify_with: Option<(crate::delivery::credentials::BaseCredentials, Option<String>)>,
    /// Reads tenants' audit trails for the console's viewer (`None`: the viewer cannot).
    pub trails: Option<Arc<crate::trail::Trails>>,
}

/// The router.
pub fn router(state: Arc<RelayState>) -> Router {
    Router::new()
        .route("/v1/tenants/{tenant}/events", post(ingest))
        .route("/v1/tenants/{tenant}/events/{uid}", get(status))
        .route("/healthz", get(|| async { "ok" }))
        .route("/openapi.json", get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }))
        .route("/readyz", get(ready))
        .route("/metrics", get(admin::metrics))
        .route("/v1/admin/tenants", get(admin::list_tenants).post(admin::add_tenant))
        .route("/v1/admin/tenants/{tenant}", get(admin::get_tenant).delete(admin::remove_tenant))
        .route("/v1/admin/tenants/{tenant}/pause", post(admin::pause_tenant))
        .route("/v1/admin/tenants/{tenant}/resume", post(admin::resume_tenant))
        .route("/v1/admin/tenants/{tenant}/dead-letters", get(admin::dead_letters))
        .route("/v1/admin/tenants/{tenant}/viewer-links", post(admin::mint_viewer_link))
        .route("/v1/admin/tenants/{tenant}/dead-letters/replay", post(admin::replay))
        .route("/v1/admin/tokens", get(admin::list_tokens).post(admin::issue_token))
        .route("/v1/admin/tokens/{id}", axum::routing::delete(admin::revoke_token))
        .merge(console::routes())
        .with_state(state)
}

async fn ready(State(state): State<Arc<RelayState>>) -> Response {
    let not_ready = |text: &'static str| {
        let mut response = (StatusCode::SERVICE_UNAVAILABLE, text).into_response();
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        response
    };
    match state.store.check().await {
        Ok(()) => "ready".into_response(),
        Err(err) if err.is_storage_full() => not_ready("the spool's disk is full"),
        Err(SpoolError::Unavailable(why)) => {
            tracing::warn!(reason = %why, "The relay's database is unavailable.");
            not_ready("the relay's database is unavailable")
        }
        Err(err) => {
            tracing::error!(error = %err, "The spool does not answer.");
            not_ready("the spool does not answer")
        }
    }
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response =
            (self.status, Json(json!({"error": {"code": self.code, "message": self.message}}))).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<SpoolError> for ApiError {
    fn from(err: SpoolError) -> ApiError {
        match err {
            SpoolError::Full { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "SpoolFull",
                "the relay's spool is full; nothing was accepted from this request, retry later",
            ),
            SpoolError::Unavailable(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Unavailable",
                "the relay's database is unavailable; nothing was accepted from this request, retry later",
            ),
            full if full.is_storage_full() => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "StorageFull",
                "the relay's disk is full; nothing was accepted from this request, retry later",
            ),
            other => {
                tracing::error!(error = %other, source = ?std::error::Error::source(&other), "Spool failure.");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    "the relay failed to store the events; retry",
                )
            }
        }
    }
}

/// The token's grant, and the tenant it may publish into.
async fn authorize(state: &RelayState, headers: &HeaderMap, tenant_id: &str) -> Result<(Grant, Tenant), ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "send an app token as 'Authorization: Bearer <token>'",
            )
        })?;
    let unauthorized = |message: String| ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized", message);
    let grant = match state.store.check_token(token.trim()).await? {
        TokenCheck::Valid(grant) => grant,
        TokenCheck::Unknown => return Err(unauthorized("the token is not valid".into())),
        TokenCheck::Revoked(at) => return Err(unauthorized(format!("the token was revoked at {}", time(at)))),
        TokenCheck::Expired(at) => return Err(unauthorized(format!("the token expired at {}", time(at)))),
    };
    // Whether another tenant exists is none of this token's business: the same answer either way.
    if !grant.covers(tenant_id) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!("this token may not publish into tenant {tenant_id:?}"),
        ));
    }
    let tenant = state.store.tenant(tenant_id).await?.ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, "TenantNotFound", format!("there is no tenant {tenant_id:?}"))
    })?;
    if !tenant.applications.contains(&grant.source) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!("application {} is not enabled for tenant {}", grant.source, tenant.id),
        ));
    }
    Ok((grant, tenant))
}

/// Reads a request body of at most `max` bytes ([`http_serve::read_body`]), its errors in the
/// API's shape.
pub(super) async fn read_body(headers: &HeaderMap, body: Body, max: usize) -> Result<Bytes, ApiError> {
    http_serve::read_body(headers, body, max).await.map_err(|err| {
        let (status, code) = match err {
            BodyError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "RequestTooLarge"),
            BodyError::TimedOut(_) => (StatusCode::REQUEST_TIMEOUT, "RequestTimeout"),
            BodyError::Incomplete(_) => (StatusCode::BAD_REQUEST, "IncompleteBody"),
        };
        ApiError::new(status, code, err.to_string())
    })
}

async fn ingest(
    State(state): State<Arc<RelayState>>,
    Path(tenant_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (grant, tenant) = authorize(&state, &headers, &tenant_id).await?;
    let bytes = read_body(&headers, body, state.max_body_bytes).await?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "MalformedJson", format!("the body is not UTF-8: {e}")))?;
    let events = split_events(text)?;
    if events.is_empty() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "MalformedRequest", "the request holds no events"));
    }
    if events.len() > state.max_events {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "TooManyEvents",
            format!("{} events in one request; the limit is {}", events.len(), state.max_events),
        ));
    }

    // One pass per event, on the text as sent (no DOM): checked as submitted, with the catalog and
    // the tenant's account; then the fields the relay provides are spliced in when absent.
    let submit = Validator::new(Stage::Submit).with_catalog(&state.catalog).with_channel_owner(tenant.account());
    let put = Validator::new(Stage::Put).with_catalog(&state.catalog).with_channel_owner(tenant.account());
    let mut rejected = Vec::new();
    let mut fresh = Vec::new();
    let mut uids = Vec::new();
    for (index, raw) in events.into_iter().enumerate() {
        if !raw.starts_with('{') {
            rejected.push(rejection(
                index,
                None,
                vec![problem("eventData", "not_object", "InvalidData", "each event must be a JSON object")],
            ));
            continue;
        }
        let prepared = prepare(raw, &submit, &put, tenant.account());
        if let Some(source) = prepared.event_source.as_deref()
            && source != grant.source
        {
            let message = format!(
                "{source:?} is not the application of this token ({}); each token publishes one application",
                grant.source
            );
            rejected.push(rejection(
                index,
                prepared.uid,
                vec![problem("eventData.eventSource", "token_application", "InvalidEventSource", &message)],
            ));
            continue;
        }
        let (uid, text) = match prepared.outcome {
            Ok(ready) => ready,
            Err(violations) => {
                let problems =
                    violations.iter().map(|v| problem(&v.path, v.rule.name(), v.code().as_str(), &v.message)).collect();
                rejected.push(rejection(index, prepared.uid, problems));
                continue;
            }
        };
        uids.push((index, uid.clone()));
        fresh.push(NewEvent { tenant: tenant.id.clone(), source: grant.source.clone(), uid, event_data: text });
    }
    let accepted = if fresh.is_empty() { Vec::new() } else { state.store.append(fresh).await? };
    {
        use std::sync::atomic::Ordering::Relaxed;
        let duplicates = accepted.iter().filter(|a| a.duplicate).count() as u64;
        let metrics = state.metrics.tenant(&tenant.id);
        metrics.accepted.fetch_add(accepted.len() as u64 - duplicates, Relaxed);
        metrics.duplicates.fetch_add(duplicates, Relaxed);
        metrics.rejected.fetch_add(rejected.len() as u64, Relaxed);
    }
    let accepted: Vec<AcceptedEvent> = uids
        .into_iter()
        .zip(accepted)
        .map(|((index, uid), a)| AcceptedEvent {
            index,
            uid,
            id: a.entry_id,
            duplicate: a.duplicate,
            state: state_name(a.state),
        })
        .collect();
    let status = if accepted.is_empty() { StatusCode::BAD_REQUEST } else { StatusCode::ACCEPTED };
    Ok((status, Json(IngestAnswer { accepted, rejected })).into_response())
}

async fn status(
    State(state): State<Arc<RelayState>>,
    Path((tenant_id, uid)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (grant, tenant) = authorize(&state, &headers, &tenant_id).await?;
    let Some(status) = state.store.status(&tenant.id, &grant.source, &uid).await? else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "EventNotFound",
            format!("no event {uid:?} of {} in tenant {}", grant.source, tenant.id),
        ));
    };
    Ok(Json(json!({
        "uid": uid,
        "id": status.entry_id,
        "state": state_name(status.state),
        "eventID": status.event_id,
        "attempts": status.attempts,
        "errorCode": status.error_code,
        "errorMessage": status.error_message,
        "acceptedAt": time(status.accepted_ms),
    }))
    .into_response())
}

/// One event as submitted, checked and completed for `PutAuditEvents` ([`prepare`]).
#[derive(Debug)]
pub struct Prepared {
    /// Its `eventSource`, when it has one.
    pub event_source: Option<String>,
    /// The UID it was given with, if any.
    pub uid: Option<String>,
    /// Its UID (the given one, or a new UUIDv7) and its text with `UID` and `recipientAccountId`
    /// added when absent; or what is wrong with it.
    pub outcome: Result<(String, String), Vec<audit_event::Violation>>,
}

/// Checks one submitted event (a JSON object's text) as the relay accepts it — against the
/// contract as submitted (`submit`, with the catalog and the channel owner's `account`), the
/// complete contract (`put`) when a field it adds is present but empty — and adds the fields a
/// publisher may leave out: `UID` (a new UUIDv7) and `recipientAccountId` (`account`). The relay's
/// ingest and `klarity-audit send --direct` both use it, so both accept the same events.
pub fn prepare(raw: &str, submit: &Validator, put: &Validator, account: &str) -> Prepared {
    let checked = submit.validate(raw);
    let given_uid = checked.uid.as_deref().map(str::to_owned);
    let event_source = checked.event_source.as_deref().map(str::to_owned);
    let mut violations = checked.violations;
    if checked.absent.uid {
        // The relay provides it.
        violations.retain(|v| !(v.path == "eventData.UID" && v.rule == audit_event::Rule::Required));
    }
    if !checked.absent.recipient_account_id && checked.recipient_account_id.is_none() {
        // Present but null or empty: only the complete contract says what is wrong.
        violations = put.validate(raw).violations;
    }
    if !violations.is_empty() {
        return Prepared { event_source, uid: given_uid, outcome: Err(violations) };
    }
    let uid = given_uid.clone().unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let text = splice(
        raw,
        checked.absent.uid.then_some(("UID", uid.as_str())),
        checked.absent.recipient_account_id.then_some(("recipientAccountId", account)),
    );
    Prepared { event_source, uid: given_uid, outcome: Ok((uid, text)) }
}

/// The ingest answer, serialized straight from these (a `Value` per event cost a map each).
#[derive(serde::Serialize)]
struct IngestAnswer {
    accepted: Vec<AcceptedEvent>,
    rejected: Vec<Value>,
}

/// One accepted event in the ingest answer.
#[derive(serde::Serialize)]
struct AcceptedEvent {
    index: usize,
    uid: String,
    id: String,
    duplicate: bool,
    state: &'static str,
}

/// The events of a request body: an array, `{"events": [...]}`, or one object; each event's text,
/// borrowed from the body and known to be well-formed JSON (the validator parses it once more,
/// for what it says).
fn split_events(text: &str) -> Result<Vec<&str>, ApiError> {
    fn texts(events: Vec<&RawValue>) -> Vec<&str> {
        events.into_iter().map(RawValue::get).collect()
    }
    let malformed = |e: serde_json::Error| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "MalformedJson",
            format!("the body is not valid JSON at line {}, column {}: {e}", e.line(), e.column()),
        )
    };
    let shape = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "MalformedRequest",
            "send an eventData object, an array of them, or {\"events\": [...]}",
        )
    };
    // One pass over the body in the common case (an array); the first byte says which shape to parse.
    match text.trim_start().as_bytes().first() {
        Some(b'[') => serde_json::from_str(text).map(texts).map_err(malformed),
        Some(b'{') => {
            let members: std::collections::HashMap<std::borrow::Cow<'_, str>, &RawValue> =
                serde_json::from_str(text).map_err(malformed)?;
            match members.get("events") {
                Some(events) if events.get().starts_with('[') => {
                    serde_json::from_str(events.get()).map(texts).map_err(malformed)
                }
                Some(_) => Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "MalformedRequest",
                    "\"events\" must be an array of eventData objects",
                )),
                // The body is the one event, and the parse above found it well-formed.
                None => Ok(vec![text.trim()]),
            }
        }
        Some(_) => {
            // Not an array or an object: the parser's message says what it is, or where it breaks.
            serde_json::from_str::<&RawValue>(text).map_err(malformed)?;
            Err(shape())
        }
        None => Err(ApiError::new(StatusCode::BAD_REQUEST, "MalformedJson", "the body is empty")),
    }
}

/// Adds `"key":"value"` members right after the object's `{` (the keys are known to be absent and
/// the values are plain ids, so nothing needs escaping).
fn splice(object: &str, first: Option<(&str, &str)>, second: Option<(&str, &str)>) -> String {
    let added: Vec<String> = [first, second].into_iter().flatten().map(|(k, v)| format!("\"{k}\":\"{v}\"")).collect();
    if added.is_empty() {
        return object.to_owned();
    }
    let rest = &object[1..];
    let separator = if rest.trim_start().starts_with('}') { "" } else { "," };
    let mut out = String::with_capacity(object.len() + 96);
    out.push('{');
    out.push_str(&added.join(","));
    out.push_str(separator);
    out.push_str(rest);
    out
}

/// A time in milliseconds since the epoch, as RFC 3339 UTC.
fn time(ms: i64) -> String {
    audit_event::EventTime::from_unix(ms.div_euclid(1000), 0).to_string()
}

fn state_name(state: EventState) -> &'static str {
    match state {
        EventState::Pending => "pending",
        EventState::Delivered => "delivered",
        EventState::Dead => "dead",
    }
}

fn problem(path: &str, rule: &str, code: &str, message: &str) -> Value {
    json!({"path": path, "rule": rule, "code": code, "message": message})
}

fn rejection(index: usize, uid: Option<String>, errors: Vec<Value>) -> Value {
    json!({"index": index, "uid": uid, "errors": errors})
}
