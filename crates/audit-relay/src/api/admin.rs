//! The admin API, behind its own credential (`Authorization: Bearer <admin token>`; only its
//! SHA-256 is configured): tenants, app tokens, dead letters and replay, and Prometheus metrics.

use std::sync::{Arc, atomic::Ordering};

use axum::{
    Json,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{ApiError, RelayState};
use crate::registry::{Grant, Tenant, check_tenant};

fn authorize(state: &RelayState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = &state.admin_token_sha256 else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "AdminDisabled",
            "the admin API is disabled: no admin token is configured",
        ));
    };
    let presented =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let Some(token) = presented else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "send the admin token as 'Authorization: Bearer <token>'",
        ));
    };
    let hash = hex::encode(Sha256::digest(token.trim().as_bytes()));
    if hash.len() == expected.len() && hash.bytes().zip(expected.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0 {
        Ok(())
    } else {
        Err(ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized", "the admin token is not valid"))
    }
}

fn tenant_or_404(state: &RelayState, id: &str) -> Result<Tenant, ApiError> {
    state
        .registry
        .tenant(id)?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "TenantNotFound", format!("there is no tenant {id:?}")))
}

pub(super) async fn list_tenants(
    State(state): State<Arc<RelayState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    Ok(Json(json!({"tenants": state.registry.tenants()?})).into_response())
}

pub(super) async fn add_tenant(
    State(state): State<Arc<RelayState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let tenant: Tenant = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(StatusCode::BAD_REQUEST, "MalformedRequest", format!("the body is not a tenant: {e}"))
    })?;
    check_tenant(&tenant).map_err(|m| ApiError::new(StatusCode::BAD_REQUEST, "InvalidTenant", m))?;
    if let Some(unknown) = tenant.applications.iter().find(|a| state.catalog.application(a).is_none()) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidTenant",
            format!("{unknown:?} is not an event source of the catalog"),
        ));
    }
    if state.registry.tenant(&tenant.id)?.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "TenantExists",
            format!("tenant {} already exists", tenant.id),
        ));
    }
    state.registry.put_tenant(&tenant)?;
    Ok((StatusCode::CREATED, Json(json!(tenant))).into_response())
}

pub(super) async fn get_tenant(
    State(state): State<Arc<RelayState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    Ok(Json(json!(tenant_or_404(&state, &id)?)).into_response())
}

pub(super) async fn remove_tenant(
    State(state): State<Arc<RelayState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    tenant_or_404(&state, &id)?;
    state.registry.remove_tenant(&id)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
pub(super) struct PauseRequest {
    reason: Option<String>,
}

pub(super) async fn pause_tenant(
    State(state): State<Arc<RelayState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let mut tenant = tenant_or_404(&state, &id)?;
    let reason = serde_json::from_slice::<PauseRequest>(&body)
        .ok()
        .and_then(|r| r.reason)
        .unwrap_or_else(|| "paused by an operator".into());
    tenant.paused = Some(reason);
    state.registry.put_tenant(&tenant)?;
    Ok(Json(json!(tenant)).into_response())
}

pub(super) async fn resume_tenant(
    State(state): State<Arc<RelayState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let mut tenant = tenant_or_404(&state, &id)?;
    tenant.paused = None;
    state.registry.put_tenant(&tenant)?;
    Ok(Json(json!(tenant)).into_response())
}

pub(super) async fn issue_token(
    State(state): State<Arc<RelayState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let grant: Grant = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "MalformedRequest",
            format!("the body is not a token grant {{name, source, tenants}}: {e}"),
        )
    })?;
    if state.catalog.application(&grant.source).is_none() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidGrant",
            format!("{:?} is not an event source of the catalog", grant.source),
        ));
    }
    if grant.tenants.is_empty() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "InvalidGrant", "a token needs tenants (ids, or \"*\")"));
    }
    let token = state.registry.issue_token(&grant)?;
    Ok((StatusCode::CREATED, Json(json!({"token": token, "grant": grant}))).into_response())
}

pub(super) async fn dead_letters(
    State(state): State<Arc<RelayState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    tenant_or_404(&state, &id)?;
    let letters: Vec<Value> = state
        .spool
        .dead_letters(&id, 1000)?
        .into_iter()
        .map(|d| json!({"uid": d.uid, "eventSource": d.source, "id": d.entry_id, "errorCode": d.code, "errorMessage": d.message, "attempts": d.attempts}))
        .collect();
    Ok(Json(json!({"deadLetters": letters})).into_response())
}

pub(super) async fn replay(
    State(state): State<Arc<RelayState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    tenant_or_404(&state, &id)?;
    let replayed = state.spool.replay(&id).await?;
    Ok(Json(json!({"replayed": replayed})).into_response())
}

pub(super) async fn metrics(State(state): State<Arc<RelayState>>, headers: HeaderMap) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let (pending, delivered, dead) = state.spool.counts()?;
    let tenants = state.registry.tenants()?;
    let paused = tenants.iter().filter(|t| t.paused.is_some()).count();
    let m = &state.metrics;
    let text = format!(
        "# HELP klarity_relay_events_accepted_total Events accepted (made durable).\n# TYPE klarity_relay_events_accepted_total counter\nklarity_relay_events_accepted_total {}\n\
         # HELP klarity_relay_events_rejected_total Events refused at ingest for a validation error.\n# TYPE klarity_relay_events_rejected_total counter\nklarity_relay_events_rejected_total {}\n\
         # HELP klarity_relay_events_duplicate_total Resubmitted events (same tenant, source and UID).\n# TYPE klarity_relay_events_duplicate_total counter\nklarity_relay_events_duplicate_total {}\n\
         # HELP klarity_relay_spool_events Events in the spool by state.\n# TYPE klarity_relay_spool_events gauge\nklarity_relay_spool_events{{state=\"pending\"}} {pending}\nklarity_relay_spool_events{{state=\"delivered\"}} {delivered}\nklarity_relay_spool_events{{state=\"dead\"}} {dead}\n\
         # HELP klarity_relay_tenants Tenants by state.\n# TYPE klarity_relay_tenants gauge\nklarity_relay_tenants{{state=\"active\"}} {}\nklarity_relay_tenants{{state=\"paused\"}} {paused}\n",
        m.accepted.load(Ordering::Relaxed),
        m.rejected.load(Ordering::Relaxed),
        m.duplicates.load(Ordering::Relaxed),
        tenants.len() - paused,
    );
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}
