//! The audit-trail viewer: one tenant's events read from the customer's own store through the
//! tenant's role chain ([`crate::trail`]). An event browser (time range, application, event type,
//! principal, free text; newest first; pages by a cursor; one event's JSON; the current filter
//! exported as CSV or NDJSON) and a CloudTrail Lake SQL editor (the catalog's sample queries,
//! saved queries, results by page, a chart of a grouped result, the store's recent queries).
//!
//! Two ways in: an operator's session (`/console/tenants/{tenant}/trail…`), or a viewer link
//! (`/console/view/{token}…`, [`super::links`]): read-only, one tenant, until it expires. Each use
//! of a link is recorded as an audit event of the vendor (`auditTrail.viewed`) in that tenant's own
//! trail.

use std::{collections::HashMap, fmt::Write as _, sync::Arc};

use axum::{
    Router,
    body::Body,
    extract::{FromRequestParts, Path, RawQuery, State},
    http::{HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use maud::{DOCTYPE, Markup, html};
use serde_json::{Map, Value, json};

use super::{Change, encode, layout, links, page, redirect, signed};
use crate::{
    api::RelayState,
    registry::{Destination, SavedQuery, Tenant},
    spool::NewEvent,
    trail::{Answer, Trail, TrailError, quote},
};

/// Events a page of the browser shows.
pub const PAGE: usize = 50;
/// Most events one export holds.
pub const MAX_EXPORT: usize = 100_000;
/// Rows a page of a query's results shows.
const RESULT_PAGE: i32 = 100;
/// The longest statement CloudTrail accepts.
const MAX_STATEMENT: usize = 10_000;
/// Most saved queries a tenant keeps.
pub const MAX_SAVED: usize = 50;
/// The event source of the vendor's own events about the trail.
const VENDOR_SOURCE: &str = "com.nordcloudapp.com.klarity";

/// The viewer's routes.
pub(super) fn routes() -> Router<Arc<RelayState>> {
    Router::new()
        .route("/console/tenants/{tenant}/trail", get(browse))
        .route("/console/tenants/{tenant}/trail/events/{event}", get(detail))
        .route("/console/tenants/{tenant}/trail/export.csv", get(export_csv))
        .route("/console/tenants/{tenant}/trail/export.ndjson", get(export_ndjson))
        .route("/console/tenants/{tenant}/trail/sql", get(sql_page))
        .route("/console/tenants/{tenant}/trail/saved", post(save_query))
        .route("/console/tenants/{tenant}/trail/saved/delete", post(delete_query))
        .route("/console/view/{token}", get(browse))
        .route("/console/view/{token}/events/{event}", get(detail))
        .route("/console/view/{token}/export.csv", get(export_csv))
        .route("/console/view/{token}/export.ndjson", get(export_ndjson))
        .route("/console/view/{token}/sql", get(sql_page))
}

/// Who is looking at which trail: an operator (with the session's CSRF token) or a viewer link.
struct Viewer {
    tenant: Tenant,
    /// Where this viewer's pages start.
    base: String,
    link: Option<links::Link>,
    csrf: Option<String>,
}

impl FromRequestParts<Arc<RelayState>> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<RelayState>) -> Result<Self, Response> {
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let (tenant_id, base, link, csrf) = match (params.get("token"), params.get("tenant")) {
            (Some(token), _) => {
                let Some(key) = super::link_key(state) else { return Err(super::disabled()) };
                let now = audit_event::EventTime::now().unix_seconds();
                let link = key.check(token, now).map_err(|refusal| refused_link(&refusal))?;
                (link.tenant.clone(), format!("/console/view/{token}"), Some(link), None)
            }
            (None, Some(tenant)) => {
                let csrf = signed(state, &parts.headers).map_err(|r| *r)?;
                (tenant.clone(), format!("/console/tenants/{tenant}/trail"), None, Some(csrf))
            }
            (None, None) => return Err(StatusCode::NOT_FOUND.into_response()),
        };
        let tenant = match state.store.tenant(&tenant_id).await {
            Ok(Some(tenant)) => tenant,
            Ok(None) => {
                return Err(page(
                    StatusCode::NOT_FOUND,
                    layout(
                        "No tenant",
                        csrf.as_deref(),
                        html! { p.notice.error role="alert" { "There is no tenant " (tenant_id) "." } },
                    ),
                ));
            }
            Err(err) => return Err(crate::api::ApiError::from(err).into_response()),
        };
        let viewer = Viewer { tenant, base, link, csrf };
        if let Some(link) = &viewer.link {
            record_use(state, &viewer.tenant, link, parts.uri.path(), parts.uri.query().unwrap_or("")).await;
        }
        Ok(viewer)
    }
}

/// The page a refused link gets.
fn refused_link(refusal: &links::Refusal) -> Response {
    let why = match refusal {
        links::Refusal::Expired { at } => {
            format!("This viewer link expired on {}. Ask for a new one.", super::when(Some(at.saturating_mul(1000))))
        }
        links::Refusal::Forged => {
            "This viewer link is not valid: it was changed, or the relay's keys were rotated. Ask for a new one."
                .to_owned()
        }
        links::Refusal::Malformed => "This is not a viewer link.".to_owned(),
    };
    tracing::warn!(reason = ?refusal, "A viewer link was refused.");
    page(StatusCode::FORBIDDEN, layout("Link refused", None, html! { p.notice.error role="alert" { (why) } }))
}

/// Records a use of `link` as the vendor's audit event in the tenant's own trail: what was looked
/// at, through which link (its id, never the link).
async fn record_use(state: &RelayState, tenant: &Tenant, link: &links::Link, path: &str, query: &str) {
    let rest = path.splitn(5, '/').nth(4).unwrap_or("");
    let (action, detail) = if rest.starts_with("events/") {
        ("event", rest.trim_start_matches("events/").to_owned())
    } else if rest.starts_with("export") {
        ("export", format!("{rest} {}", Filter::parse(query).describe()))
    } else if rest.starts_with("sql") {
        ("query", field(query, "q").unwrap_or_default())
    } else {
        ("browse", Filter::parse(query).describe())
    };
    let event = use_event(tenant, link, action, &detail, audit_event::EventTime::now());
    let uid = event["UID"].as_str().unwrap_or_default().to_owned();
    let fresh =
        NewEvent { tenant: tenant.id.clone(), source: VENDOR_SOURCE.into(), uid, event_data: event.to_string() };
    match state.store.append(vec![fresh]).await {
        Ok(_) => {
            state.metrics.tenant(&tenant.id).accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(tenant = %tenant.id, link = %link.id, action, "A viewer link was used; recorded as auditTrail.viewed.");
        }
        Err(err) => tracing::error!(error = %err, tenant = %tenant.id, "Recording a viewer link's use failed."),
    }
}

/// The `auditTrail.viewed` event of one use of `link`.
fn use_event(tenant: &Tenant, link: &links::Link, action: &str, detail: &str, now: audit_event::EventTime) -> Value {
    let detail: String = detail.chars().take(10_000).collect();
    let mut parameters = json!({
        "linkId": link.id,
        "action": action,
        "expiresAt": audit_event::EventTime::from_unix(link.expires, 0).to_string(),
    });
    if !detail.is_empty() {
        parameters["detail"] = Value::String(detail);
    }
    json!({
        "version": "v1",
        "userIdentity": {"type": "VIEWER_LINK", "principalId": format!("viewer-link:{}", link.id)},
        "eventSource": VENDOR_SOURCE,
        "eventName": "auditTrail.viewed",
        "eventTime": now.to_string(),
        "UID": uuid::Uuid::now_v7().to_string(),
        "recipientAccountId": tenant.account(),
        "requestParameters": parameters,
    })
}

/// The first value of `name` in a query string.
fn field(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.trim().to_owned())
}

/// The page around a viewer's body: the operator's console, or the viewer's own header.
fn frame(viewer: &Viewer, title: &str, body: Markup) -> Markup {
    let tabs = html! {
        nav.tabs aria-label="Audit trail" {
            a href=(viewer.base) { "Events" }
            a href={ (viewer.base) "/sql" } { "SQL" }
        }
    };
    match &viewer.csrf {
        Some(csrf) => layout(title, Some(csrf), html! { (tabs) (body) }),
        None => html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (title) " · audit trail of " (viewer.tenant.id) }
                    link rel="stylesheet" href="/console/console.css";
                }
                body {
                    header {
                        span.brand { "Audit trail of " (viewer.tenant.id) }
                        @if let Some(link) = &viewer.link {
                            span.target { "Read-only link, valid until " (super::when(Some(link.expires.saturating_mul(1000)))) }
                        }
                    }
                    main { (tabs) (body) }
                }
            }
        },
    }
}

/// A page that says why the trail cannot be read.
fn unreadable(viewer: &Viewer, err: &TrailError) -> Response {
    let status = match err {
        TrailError::NoStore { .. } => StatusCode::NOT_IMPLEMENTED,
        TrailError::Refused { .. } | TrailError::Credentials(_) => StatusCode::FORBIDDEN,
        TrailError::Query(_) | TrailError::Unreachable(_) => StatusCode::BAD_GATEWAY,
    };
    let body = html! {
        h1 { "Audit trail of " (viewer.tenant.id) }
        p.notice.error role="alert" {
            @if err.withheld() {
                "The customer's role does not allow the viewer to read this trail: " (err.to_string())
                ". Reading needs cloudtrail:GetChannel on the channel and cloudtrail:StartQuery, DescribeQuery, GetQueryResults \
                 (and ListQueries for the history) on its event data store: the policy `klarity-audit onboard` makes grants them."
            } @else {
                "The trail cannot be read: " (err.to_string()) "."
            }
        }
    };
    page(status, frame(viewer, "Audit trail", body))
}

/// The event browser's filter, from its query string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Filter {
    /// From (`YYYY-MM-DDTHH:MM`, UTC; default: 7 days ago).
    from: String,
    /// Until (exclusive; default: none).
    to: String,
    source: String,
    name: String,
    principal: String,
    text: String,
    /// The page's cursor: the last row of the page before (its eventTime and eventID).
    before: Option<(String, String)>,
}

impl Filter {
    fn parse(query: &str) -> Filter {
        let get = |name: &str| field(query, name).unwrap_or_default();
        let before = field(query, "before")
            .and_then(|b| b.split_once('|').map(|(t, id)| (t.to_owned(), id.to_owned())))
            .filter(|(t, id)| sql_time(t).is_some() && !id.is_empty());
        Filter {
            from: get("from"),
            to: get("to"),
            source: get("source"),
            name: get("name"),
            principal: get("principal"),
            text: get("text"),
            before,
        }
    }

    /// The filter as a query string (without the cursor).
    fn query(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("from", &self.from),
            ("to", &self.to),
            ("source", &self.source),
            ("name", &self.name),
            ("principal", &self.principal),
            ("text", &self.text),
        ] {
            if !v.is_empty() {
                q.append_pair(k, v);
            }
        }
        q.finish()
    }

    /// The filter in words, for the audit event of a link's use.
    fn describe(&self) -> String {
        let q = self.query();
        if q.is_empty() { "the last 7 days".to_owned() } else { q.replace('&', " ") }
    }

    /// The `WHERE` clause over `tenant`'s events, or what is wrong with the filter.
    fn clause(&self, tenant: &Tenant, now: audit_event::EventTime) -> Result<String, String> {
        let mut sql = format!("metadata.channelARN = {}", quote(&tenant.channel_arn));
        let from = if self.from.is_empty() {
            let t = audit_event::EventTime::from_unix(now.unix_seconds() - 7 * 86_400, 0).to_string();
            sql_time(&t[..16]).expect("a time")
        } else {
            sql_time(&self.from).ok_or_else(|| format!("From {:?} is not a time like 2026-12-01T00:00", self.from))?
        };
        let _ = write!(sql, " AND eventTime >= '{from}'");
        if !self.to.is_empty() {
            let to =
                sql_time(&self.to).ok_or_else(|| format!("Until {:?} is not a time like 2026-12-01T00:00", self.to))?;
            let _ = write!(sql, " AND eventTime < '{to}'");
        }
        for (value, column) in [
            (&self.source, "eventData.eventSource"),
            (&self.name, "eventData.eventName"),
            (&self.principal, "eventData.userIdentity.principalId"),
        ] {
            if !value.is_empty() {
                let _ = write!(sql, " AND {column} = {}", quote(value));
            }
        }
        if !self.text.is_empty() {
            let like = quote(&format!("%{}%", self.text.to_lowercase()));
            let _ = write!(
                sql,
                " AND (lower(eventData.eventName) LIKE {like} OR lower(eventData.userIdentity.principalId) LIKE {like} \
                 OR lower(eventData.UID) LIKE {like} OR lower(eventData.requestParameters) LIKE {like} \
                 OR lower(eventData.errorCode) LIKE {like} OR lower(eventData.sourceIPAddress) LIKE {like})"
            );
        }
        if let Some((time, id)) = &self.before {
            let time = sql_time(time).unwrap_or_default();
            let _ = write!(sql, " AND (eventTime < '{time}' OR (eventTime = '{time}' AND eventID < {}))", quote(id));
        }
        Ok(sql)
    }
}

/// `text` (`YYYY-MM-DDTHH:MM[:SS[.fff]]`, `T` or a space) as a SQL time literal's text, if it is one.
fn sql_time(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let digits = |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    let shape = b.len() >= 16
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && (b[10] == b'T' || b[10] == b' ')
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16);
    if !shape {
        return None;
    }
    let rest = &text[16..];
    let seconds = match rest.as_bytes() {
        [] => ":00".to_owned(),
        [b':', a, c, tail @ ..]
            if a.is_ascii_digit()
                && c.is_ascii_digit()
                && (tail.is_empty()
                    || (tail[0] == b'.' && tail[1..].iter().all(u8::is_ascii_digit) && tail.len() <= 7)) =>
        {
            rest.to_owned()
        }
        _ => return None,
    };
    Some(format!("{} {}{seconds}", &text[..10], &text[11..16]))
}

/// The columns the browser reads, and their names in an export.
const BROWSE_COLUMNS: &str = "eventID, eventTime, eventData.eventSource AS eventSource, eventData.eventName AS eventName, \
     eventData.userIdentity.principalId AS principalId, eventData.UID AS UID, eventData.errorCode AS errorCode";
const EVENT_COLUMNS: [(&str, &str); 18] = [
    ("eventID", "eventID"),
    ("eventTime", "eventTime"),
    ("eventData.version", "version"),
    ("eventData.userIdentity.type", "userIdentityType"),
    ("eventData.userIdentity.principalId", "principalId"),
    ("eventData.userIdentity.details", "userIdentityDetails"),
    ("eventData.userAgent", "userAgent"),
    ("eventData.eventSource", "eventSource"),
    ("eventData.eventName", "eventName"),
    ("eventData.eventTime", "eventDataTime"),
    ("eventData.UID", "UID"),
    ("eventData.requestParameters", "requestParameters"),
    ("eventData.responseElements", "responseElements"),
    ("eventData.errorCode", "errorCode"),
    ("eventData.errorMessage", "errorMessage"),
    ("eventData.sourceIPAddress", "sourceIPAddress"),
    ("eventData.recipientAccountId", "recipientAccountId"),
    ("eventData.additionalEventData", "additionalEventData"),
];

fn event_columns() -> String {
    EVENT_COLUMNS.iter().map(|(expr, name)| format!("{expr} AS {name}")).collect::<Vec<_>>().join(", ")
}

/// One row of [`EVENT_COLUMNS`] as the event it is: `{eventID, eventTime, eventData}`, the
/// store's JSON text fields as JSON where they parse.
fn event_json(row: &[String]) -> Value {
    let cell = |i: usize| row.get(i).map(String::as_str).unwrap_or("");
    let json_or_text =
        |text: &str| serde_json::from_str::<Value>(text).unwrap_or_else(|_| Value::String(text.to_owned()));
    let mut identity = Map::new();
    identity.insert("type".into(), cell(3).into());
    identity.insert("principalId".into(), cell(4).into());
    if !cell(5).is_empty() {
        identity.insert("details".into(), json_or_text(cell(5)));
    }
    let mut data = Map::new();
    data.insert("version".into(), cell(2).into());
    data.insert("userIdentity".into(), Value::Object(identity));
    for (i, name, json) in [
        (6, "userAgent", false),
        (7, "eventSource", false),
        (8, "eventName", false),
        (9, "eventTime", false),
        (10, "UID", false),
        (11, "requestParameters", true),
        (12, "responseElements", true),
        (13, "errorCode", false),
        (14, "errorMessage", false),
        (15, "sourceIPAddress", false),
        (16, "recipientAccountId", false),
        (17, "additionalEventData", true),
    ] {
        if !cell(i).is_empty() {
            data.insert(name.into(), if json { json_or_text(cell(i)) } else { cell(i).into() });
        }
    }
    json!({"eventID": cell(0), "eventTime": cell(1), "eventData": data})
}

/// Opens the viewer's trail, or the page that says why not.
async fn open(state: &RelayState, viewer: &Viewer) -> Result<Trail, Response> {
    let Some(trails) = &state.trails else {
        return Err(unreadable(
            viewer,
            &TrailError::Query("this relay has no AWS identity to read trails with".into()),
        ));
    };
    trails.open(&viewer.tenant).await.map_err(|err| unreadable(viewer, &err))
}

/// The statement of a page of the event browser: `query` is the page's query string (the filter
/// and the cursor). Public for the bench, which runs it on the lake alone as the baseline.
pub fn page_statement(
    tenant: &Tenant,
    store_id: &str,
    query: &str,
    now: audit_event::EventTime,
) -> Result<String, String> {
    browse_statement(tenant, store_id, &Filter::parse(query), now)
}

fn browse_statement(
    tenant: &Tenant,
    store_id: &str,
    filter: &Filter,
    now: audit_event::EventTime,
) -> Result<String, String> {
    let clause = filter.clause(tenant, now)?;
    Ok(format!(
        "SELECT {BROWSE_COLUMNS} FROM {store_id} WHERE {clause} ORDER BY eventTime DESC, eventID DESC LIMIT {}",
        PAGE + 1
    ))
}

async fn browse(State(state): State<Arc<RelayState>>, viewer: Viewer, RawQuery(query): RawQuery) -> Response {
    let filter = Filter::parse(query.as_deref().unwrap_or(""));
    let trail = match open(&state, &viewer).await {
        Ok(trail) => trail,
        Err(response) => return response,
    };
    let (answer, problem) =
        match browse_statement(&viewer.tenant, &trail.store_id, &filter, audit_event::EventTime::now()) {
            Ok(sql) => match trail.run(&sql, (PAGE + 1) as i32).await {
                Ok(answer) => (Some(answer), None),
                Err(err) if matches!(err, TrailError::Refused { .. }) => return unreadable(&viewer, &err),
                Err(err) => (None, Some(err.to_string())),
            },
            Err(problem) => (None, Some(problem)),
        };
    let rows = answer.as_ref().map_or(&[][..], |a| &a.rows[..a.rows.len().min(PAGE)]);
    let next = answer.as_ref().filter(|a| a.rows.len() > PAGE).and_then(|_| rows.last()).map(|last| {
        let q = filter.query();
        let cursor = encode(&format!("{}|{}", last[1], last[0]));
        format!("{}?{}{}before={cursor}", viewer.base, q, if q.is_empty() { "" } else { "&" })
    });
    let exports = filter.query();
    let exports = if exports.is_empty() { String::new() } else { format!("?{exports}") };
    let names: Vec<&str> =
        state.catalog.applications().iter().flat_map(|a| a.event_types.iter().map(|t| t.name.as_str())).collect();
    let body = html! {
        h1 { "Events of " (viewer.tenant.id) }
        p.target { "Read from the customer's own store (" (viewer.tenant.channel_arn) "), through the tenant's role." }
        form.filters method="get" action=(viewer.base) role="search" aria-label="Filter events" {
            div { label for="from" { "From (UTC)" } input #from type="datetime-local" name="from" value=(filter.from); }
            div { label for="to" { "Until (UTC)" } input #to type="datetime-local" name="to" value=(filter.to); }
            div {
                label for="source" { "Application" }
                select #source name="source" {
                    option value="" { "Any" }
                    @for app in state.catalog.applications() {
                        option value=(app.event_source) selected[filter.source == app.event_source] { (app.name) }
                    }
                }
            }
            div {
                label for="name" { "Event type" }
                select #name name="name" {
                    option value="" { "Any" }
                    @for n in &names { option value=(n) selected[filter.name == *n] { (n) } }
                }
            }
            div { label for="principal" { "Principal" } input #principal type="text" name="principal" value=(filter.principal); }
            div { label for="text" { "Text" } input #text type="search" name="text" value=(filter.text); }
            div.actions { button type="submit" { "Show" } a href=(viewer.base) { "Clear" } }
        }
        @if let Some(problem) = &problem { p.notice.error role="alert" { (problem) } }
        @if let Some(answer) = &answer {
            div.actions {
                a.button href={ (viewer.base) "/export.csv" (exports) } download { "Export CSV" }
                a.button href={ (viewer.base) "/export.ndjson" (exports) } download { "Export NDJSON" }
            }
            div.table-wrap {
                table #events {
                    caption {
                        (rows.len()) " events, newest first"
                        @if filter.before.is_some() { " (a later page)" }
                        " · " (answer.millis) " ms in the store"
                    }
                    thead { tr { th scope="col" { "Time (UTC)" } th scope="col" { "Application" } th scope="col" { "Event type" } th scope="col" { "Principal" } th scope="col" { "Error" } th scope="col" { span.visually-hidden { "Detail" } } } }
                    tbody {
                        @for row in rows {
                            tr data-event=(row[0]) {
                                td { (row[1]) }
                                td { (state.catalog.application(&row[2]).map_or(row[2].as_str(), |a| a.name.as_str())) }
                                td { code { (row[3]) } }
                                td { (row[4]) }
                                td { (row[6]) }
                                td { a href={ (viewer.base) "/events/" (encode(&row[0])) "?t=" (encode(&row[1])) } aria-label={ "Detail of " (row[3]) " at " (row[1]) } { "JSON" } }
                            }
                        }
                    }
                }
            }
            @if rows.is_empty() { p { "No events match." } }
            @if let Some(next) = &next { p { a href=(next) rel="next" { "Older events" } } }
        }
    };
    page(StatusCode::OK, frame(&viewer, "Events", body))
}

async fn detail(
    State(state): State<Arc<RelayState>>,
    viewer: Viewer,
    Path(params): Path<HashMap<String, String>>,
    RawQuery(query): RawQuery,
) -> Response {
    let event_id = params.get("event").cloned().unwrap_or_default();
    let trail = match open(&state, &viewer).await {
        Ok(trail) => trail,
        Err(response) => return response,
    };
    let at = field(query.as_deref().unwrap_or(""), "t").and_then(|t| sql_time(&t));
    let sql = format!(
        "SELECT {} FROM {} WHERE metadata.channelARN = {} AND eventID = {}{}",
        event_columns(),
        trail.store_id,
        quote(&viewer.tenant.channel_arn),
        quote(&event_id),
        at.map(|t| format!(" AND eventTime = '{t}'")).unwrap_or_default()
    );
    let found = match trail.run(&sql, 1).await {
        Ok(answer) => answer.rows.first().map(|row| event_json(row)),
        Err(err) => return unreadable(&viewer, &err),
    };
    let body = html! {
        h1 { "Event " (event_id) }
        @match &found {
            Some(event) => pre #event-json { code { (serde_json::to_string_pretty(event).unwrap_or_default()) } },
            None => p.notice.error role="alert" { "No event " (event_id) " of " (viewer.tenant.id) " is in the store." },
        }
        p { a href=(viewer.base) { "Back to the events" } }
    };
    page(if found.is_some() { StatusCode::OK } else { StatusCode::NOT_FOUND }, frame(&viewer, "Event", body))
}

async fn export_csv(state: State<Arc<RelayState>>, viewer: Viewer, query: RawQuery) -> Response {
    export(state, viewer, query, Format::Csv).await
}

async fn export_ndjson(state: State<Arc<RelayState>>, viewer: Viewer, query: RawQuery) -> Response {
    export(state, viewer, query, Format::Ndjson).await
}

#[derive(Clone, Copy)]
enum Format {
    Csv,
    Ndjson,
}

/// A CSV field, quoted when it must be (and a leading `=`, `+`, `-` or `@` defused, so a
/// spreadsheet does not run it).
fn csv_field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@']) { format!("'{text}") } else { text.to_owned() };
    if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text }
}

/// The current filter's events (at most [`MAX_EXPORT`]), newest first, streamed page by page.
async fn export(
    State(state): State<Arc<RelayState>>,
    viewer: Viewer,
    RawQuery(query): RawQuery,
    format: Format,
) -> Response {
    let mut filter = Filter::parse(query.as_deref().unwrap_or(""));
    filter.before = None;
    let clause = match filter.clause(&viewer.tenant, audit_event::EventTime::now()) {
        Ok(clause) => clause,
        Err(problem) => return (StatusCode::BAD_REQUEST, problem).into_response(),
    };
    let trail = match open(&state, &viewer).await {
        Ok(trail) => trail,
        Err(response) => return response,
    };
    let sql = format!(
        "SELECT {} FROM {} WHERE {clause} ORDER BY eventTime DESC, eventID DESC LIMIT {MAX_EXPORT}",
        event_columns(),
        trail.store_id
    );
    let first = match trail.run(&sql, 1000).await {
        Ok(answer) => answer,
        Err(err) => return unreadable(&viewer, &err),
    };
    let header_line = match format {
        Format::Csv => Some(EVENT_COLUMNS.iter().map(|(_, name)| *name).collect::<Vec<_>>().join(",") + "\n"),
        Format::Ndjson => None,
    };
    let render = move |answer: &Answer| -> String {
        let mut out = String::new();
        for row in &answer.rows {
            match format {
                Format::Csv => {
                    out.push_str(&row.iter().map(|c| csv_field(c)).collect::<Vec<_>>().join(","));
                }
                Format::Ndjson => out.push_str(&event_json(row).to_string()),
            }
            out.push('\n');
        }
        out
    };
    let head = header_line.unwrap_or_default() + &render(&first);
    let state_of_stream = (Some(head), first.query_id.clone(), first.next.clone(), trail);
    let stream = futures::stream::unfold(state_of_stream, move |(head, query_id, next, trail)| async move {
        if let Some(head) = head {
            return Some((Ok::<_, std::io::Error>(head), (None, query_id, next, trail)));
        }
        let token = next?;
        match trail.page(&query_id, Some(token), 1000).await {
            Ok(answer) => Some((Ok(render(&answer)), (None, query_id, answer.next, trail))),
            Err(err) => {
                tracing::error!(error = %err, "An export stopped: reading the next page failed.");
                Some((Err(std::io::Error::other(err.to_string())), (None, query_id, None, trail)))
            }
        }
    });
    let (kind, extension) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::Ndjson => ("application/x-ndjson", "ndjson"),
    };
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    let name = format!("attachment; filename=\"{}-events.{extension}\"", viewer.tenant.id);
    headers.insert(header::CONTENT_DISPOSITION, HeaderValue::from_str(&name).expect("a tenant id is a header value"));
    response
}

/// Whether `statement` reads only the tenant's store: every event data store id or ARN it names
/// is `store`'s. (The customer's role is the boundary; this keeps a viewer on its own tenant's
/// store when one role could read several.)
fn only_store(statement: &str, store: &str) -> bool {
    let lower = statement.to_ascii_lowercase();
    let store = store.to_ascii_lowercase();
    let ids =
        lower.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '/' || c == ':')).filter_map(|word| {
            let id = word.rsplit('/').next().unwrap_or(word);
            let uuid_like = id.len() == 36 && id.bytes().filter(|b| *b == b'-').count() == 4;
            (word.contains("eventdatastore/") || uuid_like).then_some(id)
        });
    ids.into_iter().all(|id| id == store) && lower.contains(&store)
}

/// A bar chart of a grouped result (a label column and a number column, at most 50 rows), as
/// inline SVG with the figures as text; `None` when the result is not one.
fn bar_chart(answer: &Answer) -> Option<Markup> {
    if answer.columns.len() < 2 || answer.rows.is_empty() || answer.rows.len() > 50 {
        return None;
    }
    let bars: Vec<(String, f64)> = answer
        .rows
        .iter()
        .map(|row| Some((row.first()?.clone(), row.last()?.parse::<f64>().ok()?)))
        .collect::<Option<_>>()?;
    let top = bars.iter().map(|(_, v)| *v).fold(0.0_f64, f64::max).max(1.0);
    let (w, row_h, label_w) = (640.0_f64, 22.0_f64, 220.0_f64);
    let h = row_h * bars.len() as f64 + 4.0;
    let summary = format!("{} by {}", answer.columns.last()?, answer.columns.first()?);
    Some(html! {
        figure.chart {
            svg #result-chart width=(w) height=(h) viewBox={ "0 0 " (w) " " (h) } role="img" aria-label=(summary) {
                title { (summary) }
                @for (i, (label, value)) in bars.iter().enumerate() {
                    @let y = i as f64 * row_h + 2.0;
                    text x=(label_w - 6.0) y=(y + row_h * 0.7) text-anchor="end" font-size="12" fill="#1d232b" { (label.chars().take(32).collect::<String>()) }
                    rect x=(label_w) y=(y + 3.0) width=((w - label_w - 60.0) * value / top) height=(row_h - 6.0) fill="#0b5cad" {}
                    text x=(label_w + (w - label_w - 60.0) * value / top + 4.0) y=(y + row_h * 0.7) font-size="12" fill="#1d232b" { (value) }
                }
            }
            figcaption { (summary) }
        }
    })
}

async fn sql_page(State(state): State<Arc<RelayState>>, viewer: Viewer, RawQuery(query): RawQuery) -> Response {
    let query = query.unwrap_or_default();
    let statement = field(&query, "q").unwrap_or_default();
    let (qid, next) = (field(&query, "qid"), field(&query, "next"));
    let trail = match open(&state, &viewer).await {
        Ok(trail) => trail,
        Err(response) => return response,
    };
    let runnable = statement.replace("$EDS_ID", &trail.store_id);
    let (answer, problem) = if statement.is_empty() {
        (None, None)
    } else if runnable.len() > MAX_STATEMENT {
        (
            None,
            Some(format!("The statement is {} characters; CloudTrail takes at most {MAX_STATEMENT}.", runnable.len())),
        )
    } else if !only_store(&runnable, &trail.store_id) {
        (
            None,
            Some(format!(
                "A query here reads this tenant's event data store only: FROM {} (or $EDS_ID).",
                trail.store_id
            )),
        )
    } else {
        let ran = match (qid, next) {
            // A later page of the statement shown, and of no other query.
            (Some(qid), Some(next)) => match trail.statement_of(&qid).await {
                Some(statement) if statement == runnable => trail.page(&qid, Some(next), RESULT_PAGE).await,
                _ => Err(TrailError::Query("that page belongs to another query: run the statement again".into())),
            },
            _ => trail.run(&runnable, RESULT_PAGE).await,
        };
        match ran {
            Ok(answer) => (Some(answer), None),
            Err(err) if err.withheld() => {
                return unreadable(&viewer, &err);
            }
            Err(err) => (None, Some(err.to_string())),
        }
    };
    let (browsing, reading) = (format!("SELECT {BROWSE_COLUMNS} "), format!("SELECT {} ", event_columns()));
    let history = trail.history(10, |s| s.starts_with(&browsing) || s.starts_with(&reading)).await;
    let samples: Vec<(&str, &audit_event::catalog::SampleQuery)> = state
        .catalog
        .applications()
        .iter()
        .filter(|a| viewer.tenant.applications.contains(&a.event_source))
        .flat_map(|a| a.sample_queries.iter().map(move |q| (a.name.as_str(), q)))
        .collect();
    let run_link = |sql: &str| format!("{}/sql?q={}", viewer.base, encode(sql));
    let body = html! {
        h1 { "SQL on the trail of " (viewer.tenant.id) }
        p.target { "CloudTrail Lake SQL on the event data store " code { (trail.store_id) } " (write " code { "$EDS_ID" } " for it)." }
        form.stack.wide method="get" action={ (viewer.base) "/sql" } {
            label for="q" { "Query" }
            textarea #q name="q" rows="6" spellcheck="false" required { (statement) }
            button type="submit" { "Run" }
        }
        @if let Some(problem) = &problem { p.notice.error role="alert" { (problem) } }
        @if let Some(answer) = &answer {
            @if let Some(chart) = bar_chart(answer) { (chart) }
            div.table-wrap {
                table #results {
                    caption {
                        (answer.rows.len()) " rows"
                        @if let Some(m) = answer.matched { " · " (m) " events matched" }
                        @if answer.millis > 0 { " · " (answer.millis) " ms" }
                    }
                    thead { tr { @for c in &answer.columns { th scope="col" { (c) } } } }
                    tbody { @for row in &answer.rows { tr { @for v in row { td { (v) } } } } }
                }
            }
            @if let Some(next) = &answer.next {
                p { a rel="next" href={ (viewer.base) "/sql?q=" (encode(&statement)) "&qid=" (encode(&answer.query_id)) "&next=" (encode(next)) } { "Next rows" } }
            }
            @if let Some(csrf) = &viewer.csrf {
                form.inline method="post" action={ "/console/tenants/" (viewer.tenant.id) "/trail/saved" } {
                    input type="hidden" name="csrf" value=(csrf);
                    input type="hidden" name="sql" value=(statement);
                    label for="save-name" { "Save as" }
                    input #save-name type="text" name="name" required maxlength="100";
                    button.secondary type="submit" { "Save query" }
                }
            }
        }
        h2 { "Saved queries" }
        @if viewer.tenant.saved_queries.is_empty() { p { "None yet" @if viewer.csrf.is_some() { ": run a query, then save it." } } }
        ul.saved {
            @for q in &viewer.tenant.saved_queries {
                li {
                    a href=(run_link(&q.sql)) { (q.name) }
                    @if let Some(csrf) = &viewer.csrf {
                        form.inline method="post" action={ "/console/tenants/" (viewer.tenant.id) "/trail/saved/delete" } {
                            input type="hidden" name="csrf" value=(csrf);
                            input type="hidden" name="name" value=(q.name);
                            button.secondary type="submit" aria-label={ "Delete " (q.name) } { "Delete" }
                        }
                    }
                }
            }
        }
        h2 { "Sample queries" }
        ul.samples {
            @for (app, q) in &samples {
                li { a href=(run_link(&q.sql)) { (q.name) } " — " (app) ": " (q.description) }
            }
        }
        h2 { "Recent queries on this store" }
        @match &history {
            Ok(past) if past.is_empty() => p { "None." },
            Ok(past) => ul.history {
                @for q in past {
                    li { span.target { (super::when(q.started_ms)) " · " (q.status) } a href=(run_link(&q.statement)) { code { (q.statement.chars().take(200).collect::<String>()) } } }
                }
            },
            Err(err) => p.target { "The store's history is not readable: " (err.to_string()) },
        }
    };
    page(if problem.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK }, frame(&viewer, "SQL", body))
}

async fn save_query(State(state): State<Arc<RelayState>>, Path(id): Path<String>, change: Change) -> Response {
    let name: String = change.form.get("name").map(str::trim).unwrap_or("").chars().take(100).collect();
    let sql = change.form.get("sql").map(str::trim).unwrap_or("").to_owned();
    let back = format!("/console/tenants/{id}/trail/sql");
    if name.is_empty() || sql.is_empty() || sql.len() > MAX_STATEMENT {
        return redirect(&format!("{back}?q={}", encode(&sql)));
    }
    let saved = SavedQuery { name: name.clone(), sql: sql.clone() };
    let changed = state
        .store
        .update_tenant(&id, &|t| {
            t.saved_queries.retain(|q| q.name != saved.name);
            if t.saved_queries.len() >= MAX_SAVED {
                return false;
            }
            t.saved_queries.push(saved.clone());
            true
        })
        .await;
    match changed {
        Ok(_) => {
            tracing::info!(tenant = %id, query = %name, "Saved a query from the console.");
            redirect(&format!("{back}?q={}", encode(&sql)))
        }
        Err(err) => crate::api::ApiError::from(err).into_response(),
    }
}

async fn delete_query(State(state): State<Arc<RelayState>>, Path(id): Path<String>, change: Change) -> Response {
    let name = change.form.get("name").unwrap_or("").to_owned();
    match state
        .store
        .update_tenant(&id, &|t| {
            let before = t.saved_queries.len();
            t.saved_queries.retain(|q| q.name != name);
            t.saved_queries.len() != before
        })
        .await
    {
        Ok(_) => redirect(&format!("/console/tenants/{id}/trail/sql")),
        Err(err) => crate::api::ApiError::from(err).into_response(),
    }
}

/// Whether `tenant` has a trail the viewer reads (a store with SQL).
pub(crate) fn readable(tenant: &Tenant) -> bool {
    matches!(tenant.destination, Destination::CloudtrailLake)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> Tenant {
        serde_json::from_value(json!({
            "id": "acme", "channel_arn": "arn:aws:cloudtrail:eu-west-1:123456789012:channel/c1",
            "delivery": {"mode": "resource-policy", "external_id": null}, "applications": [], "paused": null
        }))
        .unwrap()
    }

    #[test]
    fn the_filter_becomes_a_clause_scoped_to_the_channel_and_quotes_what_it_is_given() {
        let now = audit_event::EventTime::parse("2026-12-05T10:00:00Z").unwrap();
        let f = Filter::parse("principal=o%27brien&text=Disk&before=2026-12-04+09%3A00%3A00.000%7Cev-9&source=com.x");
        let clause = f.clause(&tenant(), now).unwrap();
        assert!(clause.starts_with("metadata.channelARN = 'arn:aws:cloudtrail:eu-west-1:123456789012:channel/c1'"));
        assert!(clause.contains("eventTime >= '2026-11-28 10:00:00'"), "7 days back by default: {clause}");
        assert!(clause.contains("eventData.userIdentity.principalId = 'o''brien'"), "{clause}");
        assert!(clause.contains("eventData.eventSource = 'com.x'"), "{clause}");
        assert!(clause.contains("lower(eventData.eventName) LIKE '%disk%'"), "{clause}");
        assert!(clause.contains("(eventTime < '2026-12-04 09:00:00.000' OR (eventTime = '2026-12-04 09:00:00.000' AND eventID < 'ev-9'))"), "{clause}");
        let bad = Filter::parse("from=yesterday").clause(&tenant(), now).unwrap_err();
        assert!(bad.contains("From \"yesterday\" is not a time"), "{bad}");
        let injected = Filter::parse("to=2026-12-01T00:00'%20OR%201=1--").clause(&tenant(), now);
        assert!(injected.is_err(), "a time is a time or nothing");
        assert_eq!(f.query(), "source=com.x&principal=o%27brien&text=Disk", "the cursor is not part of the filter");
    }

    #[test]
    fn an_event_row_becomes_its_json_with_json_fields_parsed() {
        let mut row: Vec<String> = vec![String::new(); EVENT_COLUMNS.len()];
        row[0] = "ev-1".into();
        row[1] = "2026-12-05 10:00:00.000".into();
        row[2] = "v1".into();
        row[3] = "USER".into();
        row[4] = "jane@example.com".into();
        row[8] = "backup.started".into();
        row[11] = r#"{"region":"eu-west-1"}"#.into();
        row[12] = "{region=eu-west-1}".into();
        let event = event_json(&row);
        assert_eq!(event["eventData"]["requestParameters"]["region"], "eu-west-1");
        assert_eq!(event["eventData"]["responseElements"], "{region=eu-west-1}", "text that is not JSON stays text");
        assert_eq!(event["eventData"]["userIdentity"]["principalId"], "jane@example.com");
        assert!(event["eventData"].get("errorCode").is_none(), "empty fields are left out");
    }

    #[test]
    fn a_statement_may_name_only_the_tenants_store_and_csv_defuses_formulas() {
        let store = "0b8d3a4c-1f2e-4d5c-9b8a-7f6e5d4c3b2a";
        assert!(only_store(&format!("SELECT count(*) FROM {store}"), store));
        assert!(only_store(&format!("SELECT * FROM {} WHERE eventData.UID = 'x'", store.to_uppercase()), store));
        let other = "11111111-2222-3333-4444-555555555555";
        assert!(!only_store(&format!("SELECT * FROM {store} UNION ALL SELECT * FROM {other}"), store));
        assert!(!only_store("SELECT 1", store), "a statement names the store");
        assert!(!only_store(&format!("SELECT * FROM arn:aws:cloudtrail:eu-west-1:1:eventdatastore/{other}"), store));
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
    }

    #[test]
    fn a_links_use_is_a_valid_audit_event_of_the_vendor() {
        let catalog = audit_event::Catalog::embedded();
        let link = links::Link { tenant: "acme".into(), expires: 1_800_000_000, id: "3f9c2a1b".into() };
        let now = audit_event::EventTime::parse("2026-12-05T10:00:00Z").unwrap();
        let event = use_event(&tenant(), &link, "query", "SELECT 1", now);
        let text = event.to_string();
        let checked = audit_event::Validator::new(audit_event::Stage::Put).with_catalog(&catalog).validate(&text);
        assert!(checked.violations.is_empty(), "{:?}", checked.violations);
        assert_eq!(event["requestParameters"]["linkId"], "3f9c2a1b");
        assert_eq!(event["userIdentity"]["principalId"], "viewer-link:3f9c2a1b");
        assert_eq!(event["recipientAccountId"], "123456789012");
    }
}
