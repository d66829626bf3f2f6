//! One tenant's page: what it is (destination, role, external ID, applications, state), its
//! update (the same rules as `tenants update`: [`crate::registry::update_tenant`]), and viewer
//! links to its audit trail.

use std::sync::Arc;

use axum::{
    Router,
    extract::{Path, RawQuery, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use maud::html;

use super::{Change, Signed, done, encode, layout, links, page, redirect, state_of, target_of, viewer, when};
use crate::{
    api::RelayState,
    registry::{DeliveryMode, Destination, DestinationChange, DestinationKind, ObjectFormat, update_tenant},
};

/// The tenant page's routes.
pub(super) fn routes() -> Router<Arc<RelayState>> {
    Router::new()
        .route("/console/tenants/{tenant}", get(tenant_page))
        .route("/console/tenants/{tenant}/update", post(update))
        .route("/console/tenants/{tenant}/viewer-links", post(mint_link))
}

/// Lifetimes a viewer link may be minted with: (form value in seconds, words).
const LIFETIMES: [(i64, &str); 4] =
    [(3_600, "1 hour"), (86_400, "1 day"), (7 * 86_400, "7 days"), (30 * 86_400, "30 days")];

async fn tenant_page(
    State(state): State<Arc<RelayState>>,
    Signed(csrf): Signed,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    render(&state, &csrf, &id, done(query), None, StatusCode::OK).await
}

/// The page of tenant `id`, with a notice, and a viewer link just minted (shown this once).
async fn render(
    state: &RelayState,
    csrf: &str,
    id: &str,
    notice: Option<String>,
    minted: Option<(String, links::Link)>,
    status: StatusCode,
) -> Response {
    let tenant = match state.store.tenant(id).await {
        Ok(Some(tenant)) => tenant,
        Ok(None) => {
            return page(
                StatusCode::NOT_FOUND,
                layout(
                    "No tenant",
                    Some(csrf),
                    html! { p.notice.error role="alert" { "There is no tenant " (id) "." } },
                ),
            );
        }
        Err(err) => return crate::api::ApiError::from(err).into_response(),
    };
    let (class, text, reason) = state_of(&tenant);
    let (role, external_id, proxy) = match &tenant.delivery {
        DeliveryMode::AssumeRole { role_arn, external_id, proxy_role_arn } => {
            (Some(role_arn.as_str()), external_id.as_deref(), proxy_role_arn.as_deref())
        }
        DeliveryMode::ResourcePolicy { external_id } => (None, external_id.as_deref(), None),
    };
    let s3 = match &tenant.destination {
        Destination::S3 { region, account, prefix, format, rollover_secs } => {
            Some((region.as_str(), account.as_str(), prefix.as_str(), *format, *rollover_secs))
        }
        _ => None,
    };
    let body = html! {
        h1 { "Tenant " (id) }
        @if let Some(notice) = &notice { p.notice role="status" { (notice) } }
        @if let Some((token, link)) = &minted {
            div.notice role="status" {
                p { "A read-only link to the audit trail of " (id) ", valid until " (when(Some(link.expires * 1000))) ". It is shown this once; every use is recorded in the tenant's trail (auditTrail.viewed, link " (link.id) ")." }
                p { code #viewer-link { "/console/view/" (token) } }
            }
        }
        dl.facts {
            dt { "State" } dd { span class=(class) { (text) } @if let Some(reason) = reason { span.reason { (reason) } } }
            dt { "Destination" } dd { (tenant.destination.name()) span.target { (target_of(&tenant)) } }
            dt { "Region, account" } dd { (tenant.region()) ", " (tenant.account()) }
            dt { "Delivery" } dd { @if role.is_some() { "Assumes the customer's role" } @else { "The channel's resource policy" } }
            @if let Some(role) = role { dt { "Role" } dd #current-role-arn { (role) } }
            @if let Some(proxy) = proxy { dt { "Proxy role" } dd { (proxy) } }
            dt { "External ID" } dd #current-external-id { (external_id.unwrap_or("—")) }
            dt { "Applications" } dd { (tenant.applications.join(", ")) }
        }
        p.actions {
            a href={ "/console/tenants/" (id) "/dead-letters" } { "Dead letters" }
            @if viewer::readable(&tenant) { a href={ "/console/tenants/" (id) "/trail" } { "Audit trail" } }
        }
        @if viewer::readable(&tenant) {
            h2 { "Viewer link" }
            form.inline method="post" action={ "/console/tenants/" (id) "/viewer-links" } {
                input type="hidden" name="csrf" value=(csrf);
                label for="lifetime" { "A read-only link to this audit trail, valid for" }
                select #lifetime name="lifetime" {
                    @for (secs, words) in LIFETIMES { option value=(secs) selected[secs == 86_400] { (words) } }
                }
                button type="submit" { "Mint viewer link" }
            }
        }
        h2 { "Update" }
        p { "Leave a field empty to keep it. The rules are those of " code { "klarity-audit tenants update" } ", whose option each field shows." }
        form.stack method="post" action={ "/console/tenants/" (id) "/update" } {
            input type="hidden" name="csrf" value=(csrf);
            label for="destination" { "Destination (--destination)" }
            select #destination name="destination" {
                option value="" { "Keep, or infer from the ARN given" }
                option value="cloudtrail-lake" { "cloudtrail-lake" }
                option value="cloudwatch-logs" { "cloudwatch-logs" }
                option value="s3" { "s3" }
            }
            label for="channel-arn" { "Channel ARN (--channel-arn)" }
            input #channel-arn type="text" name="channel-arn" placeholder=(if matches!(tenant.destination, Destination::CloudtrailLake) { tenant.channel_arn.as_str() } else { "" });
            label for="log-group-arn" { "Log group ARN (--log-group-arn)" }
            input #log-group-arn type="text" name="log-group-arn";
            label for="log-stream" { "Log stream (--log-stream)" }
            input #log-stream type="text" name="log-stream";
            label for="bucket-arn" { "Bucket ARN (--bucket-arn)" }
            input #bucket-arn type="text" name="bucket-arn";
            label for="region" { "Bucket region (--region)" }
            input #region type="text" name="region" placeholder=(s3.map_or("", |s| s.0));
            label for="account" { "Bucket account (--account)" }
            input #account type="text" name="account" placeholder=(s3.map_or("", |s| s.1));
            label for="prefix" { "Key prefix (--prefix)" }
            input #prefix type="text" name="prefix" placeholder=(s3.map_or("", |s| s.2));
            label for="format" { "Object format (--format)" }
            select #format name="format" {
                option value="" { "Keep" }
                option value="ndjson" { "ndjson" }
                option value="ocsf-parquet" { "ocsf-parquet" }
            }
            label for="rollover" { "Rollover, seconds (--rollover)" }
            input #rollover type="text" inputmode="numeric" name="rollover" placeholder=(s3.map_or(String::new(), |s| s.4.to_string()));
            @if role.is_some() {
                label for="role-arn" { "Role ARN (--role-arn)" }
                input #role-arn type="text" name="role-arn" placeholder=(role.unwrap_or(""));
            }
            label for="new-external-id" { "External ID (--external-id)" }
            input #new-external-id type="text" name="external-id" autocomplete="off";
            fieldset {
                legend { "Applications (--apps)" }
                @for app in state.catalog.applications() {
                    label.check {
                        input type="checkbox" name="app" value=(app.event_source) checked[tenant.applications.contains(&app.event_source)];
                        " " (app.name)
                    }
                }
            }
            button type="submit" { "Update " (id) }
        }
    };
    page(status, layout(&format!("Tenant {id}"), Some(csrf), body))
}

async fn update(State(state): State<Arc<RelayState>>, Path(id): Path<String>, change: Change) -> Response {
    let csrf = state.console.csrf(&change.session).unwrap_or_default();
    let form = &change.form;
    let given = |name: &str| form.get(name).map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
    let rollover = match given("rollover").map(|r| r.parse::<u64>()) {
        Some(Err(_)) => {
            let problem = "Rollover must be a whole number of seconds.".to_owned();
            return render(&state, &csrf, &id, Some(problem), None, StatusCode::BAD_REQUEST).await;
        }
        Some(Ok(r)) => Some(r),
        None => None,
    };
    let to = DestinationChange {
        kind: given("destination").and_then(|d| match d.as_str() {
            "cloudtrail-lake" => Some(DestinationKind::CloudtrailLake),
            "cloudwatch-logs" => Some(DestinationKind::CloudwatchLogs),
            "s3" => Some(DestinationKind::S3),
            _ => None,
        }),
        channel_arn: given("channel-arn"),
        log_group_arn: given("log-group-arn"),
        log_stream: given("log-stream"),
        bucket_arn: given("bucket-arn"),
        region: given("region"),
        account: given("account"),
        prefix: given("prefix"),
        format: given("format").and_then(|f| match f.as_str() {
            "ndjson" => Some(ObjectFormat::Ndjson),
            "ocsf-parquet" => Some(ObjectFormat::OcsfParquet),
            _ => None,
        }),
        rollover,
    };
    let apps = form.all("app");
    let unknown: Vec<&String> = apps.iter().filter(|a| state.catalog.application(a).is_none()).collect();
    if !unknown.is_empty() || apps.is_empty() {
        let problem = if apps.is_empty() {
            "Enable at least one application.".to_owned()
        } else {
            format!("Not event sources of the catalog: {unknown:?}.")
        };
        return render(&state, &csrf, &id, Some(problem), None, StatusCode::BAD_REQUEST).await;
    }
    let tenant = match state.store.tenant(&id).await {
        Ok(Some(tenant)) => tenant,
        Ok(None) => return redirect(&format!("/console?done={}", encode(&format!("There is no tenant {id}.")))),
        Err(err) => return crate::api::ApiError::from(err).into_response(),
    };
    let mut updated = tenant.clone();
    if let Err(problem) =
        update_tenant(&mut updated, &to, given("role-arn").as_deref(), given("external-id").as_deref(), Some(apps))
    {
        let problem = format!("Not updated: {problem}.");
        return render(&state, &csrf, &id, Some(problem), None, StatusCode::BAD_REQUEST).await;
    }
    let stored = state
        .store
        .update_tenant(&id, &|t| {
            t.channel_arn = updated.channel_arn.clone();
            t.destination = updated.destination.clone();
            t.delivery = updated.delivery.clone();
            t.applications = updated.applications.clone();
            true
        })
        .await;
    match stored {
        Ok(_) => {
            tracing::info!(tenant = %id, destination = updated.destination.name(), "Updated a tenant from the console.");
            let what =
                format!("Updated {id}: its events go to {} ({}).", updated.destination.name(), target_of(&updated));
            redirect(&format!("/console/tenants/{id}?done={}", encode(&what)))
        }
        Err(err) => crate::api::ApiError::from(err).into_response(),
    }
}

async fn mint_link(State(state): State<Arc<RelayState>>, Path(id): Path<String>, change: Change) -> Response {
    let csrf = state.console.csrf(&change.session).unwrap_or_default();
    let Some(key) = super::link_key(&state) else { return super::disabled() };
    let lifetime = change
        .form
        .get("lifetime")
        .and_then(|l| l.parse::<i64>().ok())
        .filter(|l| (1..=links::MAX_LIFETIME_SECS).contains(l))
        .unwrap_or(86_400);
    match state.store.tenant(&id).await {
        Ok(Some(_)) => {}
        Ok(None) => return redirect(&format!("/console?done={}", encode(&format!("There is no tenant {id}.")))),
        Err(err) => return crate::api::ApiError::from(err).into_response(),
    }
    let expires = audit_event::EventTime::now().unix_seconds() + lifetime;
    let (token, link) = key.mint(&id, expires);
    tracing::info!(tenant = %id, link = %link.id, expires, "Minted a viewer link from the console.");
    render(&state, &csrf, &id, None, Some((token, link)), StatusCode::OK).await
}
