//! The admin API, behind its own credential (`Authorization: Bearer <admin token>`; only its
//! SHA-256 is configured): tenants, app tokens, dead letters and replay, and Prometheus metrics.

use std::{collections::BTreeMap, sync::Arc};

use axum::{
    Json,
    body::Body,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{ApiError, RelayState, read_body};
use crate::{
    metrics::TenantGauges,
    registry::{Grant, Tenant, check_tenant, expiry_at},
};

/// Largest admin request body (a tenant, a token grant, a pause reason), read only once the admin
/// token is checked.
pub(super) const MAX_ADMIN_BODY: usize = 64 << 10;

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
    if super::console::sessions::same(&hash, expected) {
        Ok(())
    } else {
        Err(ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized", "the admin token is not valid"))
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "TenantNotFound", format!("there is no tenant {id:?}"))
}

async fn tenant_or_404(state: &RelayState, id: &str) -> Result<Tenant, ApiError> {
    state.store.tenant(id).await?.ok_or_else(|| not_found(id))
}

pub(super) async fn list_tenants(
    State(state): State<Arc<RelayState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    Ok(Json(json!({"tenants": state.store.tenants().await?})).into_response())
}

pub(super) async fn add_tenant(
    State(state): State<Arc<RelayState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let body = read_body(&headers, body, MAX_ADMIN_BODY).await?;
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
    if state.store.tenant(&tenant.id).await?.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "TenantExists",
            format!("tenant {} already exists", tenant.id),
        ));
    }
    state.store.put_tenant(&tenant).await?;
    Ok((StatusCode::CREATED, Json(json!(tenant))).into_response())
}

pub(super) async fn get_tenant(
    State(state): State<Arc<RelayState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    Ok(Json(json!(tenant_or_404(&state, &id).await?)).into_response())
}

pub(super) async fn remove_tenant(
    State(state): State<Arc<RelayState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    tenant_or_404(&state, &id).await?;
    state.store.remove_tenant(&id).await?;
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
    body: Body,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let body = read_body(&headers, body, MAX_ADMIN_BODY).await?;
    let reason = serde_json::from_slice::<PauseRequest>(&body)
        .ok()
        .and_then(|r| r.reason)
        .unwrap_or_else(|| "paused by an operator".into());
    let tenant = crate::store::hold(state.store.as_ref(), &id, &reason).await?;
    Ok(Json(json!(tenant.ok_or_else(|| not_found(&id))?)).into_response())
}

pub(super) async fn resume_tenant(
    State(state): State<Arc<RelayState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let tenant = crate::store::resume(state.store.as_ref(), &id).await?;
    Ok(Json(json!(tenant.ok_or_else(|| not_found(&id))?)).into_response())
}

/// A viewer link's request: its lifetime.
#[derive(serde::Deserialize)]
struct ViewerLinkRequest {
    expires_in_seconds: Option<i64>,
}

/// Mints a viewer link to a tenant's audit trail (read-only, signed, expiring; see
/// [`super::console::links`]), for the SaaS application to hand to the customer or embed.
pub(super) async fn mint_viewer_link(
    State(state): State<Arc<RelayState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let body = read_body(&headers, body, MAX_ADMIN_BODY).await?;
    let lifetime = if body.is_empty() {
        86_400
    } else {
        serde_json::from_slice::<ViewerLinkRequest>(&body)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "InvalidRequest", format!("the body: {e}")))?
            .expires_in_seconds
            .unwrap_or(86_400)
    };
    let max = super::console::links::MAX_LIFETIME_SECS;
    if !(1..=max).contains(&lifetime) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            format!("expires_in_seconds is {lifetime}; a viewer link lives 1 to {max} seconds (30 days)"),
        ));
    }
    let tenant = state.store.tenant(&id).await?.ok_or_else(|| not_found(&id))?;
    if !super::console::viewer::readable(&tenant) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "NoQueryableStore",
            format!(
                "tenant {id}'s events go to {}; the audit-trail viewer reads CloudTrail Lake stores only",
                tenant.destination.name()
            ),
        ));
    }
    let key = super::console::links::LinkKey::derive(state.admin_token_sha256.as_deref().unwrap_or_default());
    let expires = audit_event::EventTime::now().unix_seconds() + lifetime;
    let (token, link) = key.mint(&id, expires);
    tracing::info!(tenant = %id, link = %link.id, expires, "Minted a viewer link.");
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "tenant": id,
            "id": link.id,
            "path": format!("/console/view/{token}"),
            "expires_at": audit_event::EventTime::from_unix(expires, 0).to_string(),
        })),
    )
        .into_response())
}

pub(super) async fn issue_token(
    State(state): State<Arc<RelayState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let body = read_body(&headers, body, MAX_ADMIN_BODY).await?;
    let request: TokenRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "MalformedRequest",
            format!("the body is not a token grant {{name, source, tenants, expiresAt?}}: {e}"),
        )
    })?;
    let grant = request.grant;
    let expires_ms = request
        .expires_at
        .as_deref()
        .map(expiry_at)
        .transpose()
        .map_err(|why| ApiError::new(StatusCode::BAD_REQUEST, "InvalidGrant", format!("expiresAt: {why}")))?;
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
    let (token, record) = state.store.issue(&grant, expires_ms).await?;
    Ok((StatusCode::CREATED, Json(json!({"token": token, "grant": grant, "record": record}))).into_response())
}

/// A token to issue: its grant, and when it expires, if it does.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct TokenRequest {
    #[serde(flatten)]
    grant: Grant,
    expires_at: Option<String>,
}

pub(super) async fn list_tokens(
    State(state): State<Arc<RelayState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    Ok(Json(json!({"tokens": state.store.tokens().await?})).into_response())
}

pub(super) async fn revoke_token(
    State(state): State<Arc<RelayState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let record =
        state.store.revoke_token(&id).await?.ok_or_else(|| {
            ApiError::new(StatusCode::NOT_FOUND, "TokenNotFound", format!("there is no token {id:?}"))
        })?;
    Ok(Json(json!(record)).into_response())
}

pub(super) async fn dead_letters(
    State(state): State<Arc<RelayState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    tenant_or_404(&state, &id).await?;
    let letters: Vec<Value> = state
        .store
        .dead_letters(&id, 1000)
        .await?
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
    tenant_or_404(&state, &id).await?;
    let replayed = state.store.replay(&id).await?;
    Ok(Json(json!({"replayed": replayed})).into_response())
}

pub(super) async fn metrics(State(state): State<Arc<RelayState>>, headers: HeaderMap) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let depth = state.store.depth().await?;
    let now = audit_event::EventTime::now().unix_millis();
    let mut gauges = BTreeMap::new();
    for tenant in state.store.tenants().await? {
        let queued = depth.get(&tenant.id).copied().unwrap_or(0);
        let oldest = if queued > 0 { state.store.oldest_pending_ms(&tenant.id).await? } else { None };
        let oldest_age_seconds = oldest.map_or(0.0, |ms| (now - ms).max(0) as f64 / 1000.0);
        gauges.insert(tenant.id.clone(), TenantGauges { queued, oldest_age_seconds, paused: tenant.paused.is_some() });
    }
    let text = state.metrics.render(&gauges);
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}
