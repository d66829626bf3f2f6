//! The web console at `/console`, for operators: server-rendered HTML (maud, checked and escaped at
//! compile time), one embedded stylesheet, no script yet and no external request. Every page needs a
//! session ([`sessions`]) opened with the admin token or `serve`'s one-time link; every change is a
//! form `POST` carrying the session's CSRF token, answered with a redirect.
//!
//! Pages: the tenants (state with the reason of a pause, destination, queue depth, age of the
//! oldest queued event, counters), with pause and resume; a tenant's dead letters, with replay;
//! app tokens (issued and shown once, listed, revoked); the catalog.

pub mod links;
pub mod sessions;
mod tenant;
pub mod viewer;

use std::{collections::HashMap, fmt::Write as _, sync::Arc};

use axum::{
    Router,
    body::Body,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use maud::{DOCTYPE, Markup, html};

use super::{RelayState, read_body};
use crate::registry::{Destination, Tenant};

/// The session cookie's name.
const COOKIE: &str = "klarity_console";
/// Largest form a console page posts.
const MAX_FORM: usize = 16 << 10;
const CSS: &str = include_str!("console.css");

/// The console's routes.
pub(super) fn routes() -> Router<Arc<RelayState>> {
    Router::new()
        .route("/console", get(tenants_page))
        .route("/console/", get(tenants_page))
        .route("/console/sign-in", get(sign_in_page).post(sign_in))
        .route("/console/sign-out", post(sign_out))
        .route("/console/tenants/{tenant}/pause", post(pause))
        .route("/console/tenants/{tenant}/resume", post(resume))
        .route("/console/tenants/{tenant}/dead-letters", get(dead_letters_page))
        .route("/console/tenants/{tenant}/replay", post(replay))
        .route("/console/tenants/{tenant}/events", get(event_page))
        .route("/console/tenants/{tenant}/verify", post(verify))
        .route("/console/tokens", get(tokens_page).post(issue_token))
        .route("/console/tokens/{id}/revoke", post(revoke_token))
        .route("/console/catalog", get(catalog_page))
        .route("/console/console.css", get(|| async { ([(header::CONTENT_TYPE, "text/css")], CSS) }))
        .merge(tenant::routes())
        .merge(viewer::routes())
}

/// The key viewer links are signed with: derived from the admin token's hash (`None`: no admin
/// token, no console).
fn link_key(state: &RelayState) -> Option<links::LinkKey> {
    state.admin_token_sha256.as_deref().map(links::LinkKey::derive)
}

/// A page, with the headers every console answer carries: no caching, no framing, no script or
/// style from anywhere but here, no referrer.
fn page(status: StatusCode, markup: Markup) -> Response {
    let mut response = (status, markup).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

fn redirect(to: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    response.headers_mut().insert(header::LOCATION, HeaderValue::from_str(to).expect("a console path"));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn layout(title: &str, csrf: Option<&str>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · klarity-audit console" }
                link rel="stylesheet" href="/console/console.css";
            }
            body {
                header {
                    span.brand { "klarity-audit" }
                    @if let Some(csrf) = csrf {
                        nav aria-label="Console" {
                            a href="/console" { "Tenants" }
                            a href="/console/tokens" { "App tokens" }
                            a href="/console/catalog" { "Catalog" }
                        }
                        form.inline method="post" action="/console/sign-out" {
                            input type="hidden" name="csrf" value=(csrf);
                            button.secondary type="submit" { "Sign out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// The session id the request's cookie carries.
fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE).and_then(|rest| rest.strip_prefix('=')))
        .map(str::to_owned)
}

/// The open session of a request: its id and CSRF token.
fn session(state: &RelayState, headers: &HeaderMap) -> Option<(String, String)> {
    let id = session_id(headers)?;
    let csrf = state.console.csrf(&id)?;
    Some((id, csrf))
}

/// A refusal, answered instead of a page.
type Refusal = Box<Response>;

/// A posted form's fields, in order (a name may repeat, as checkboxes do).
struct Form(Vec<(String, String)>);

impl Form {
    /// The first value of `name`.
    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Every value of `name`.
    fn all(&self, name: &str) -> Vec<String> {
        self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).collect()
    }
}

/// A form's fields.
async fn form(headers: &HeaderMap, body: Body) -> Result<Form, Refusal> {
    match read_body(headers, body, MAX_FORM).await {
        Ok(bytes) => Ok(Form(form_urlencoded::parse(&bytes).into_owned().collect())),
        Err(err) => Err(Box::new(err.into_response())),
    }
}

/// A change's form, when the request has a session and the form carries its CSRF token: the
/// session id and the fields.
async fn change(state: &RelayState, headers: &HeaderMap, body: Body) -> Result<(String, Form), Refusal> {
    let fields = form(headers, body).await?;
    let Some((id, csrf)) = session(state, headers) else {
        return Err(Box::new(redirect("/console/sign-in")));
    };
    match fields.get("csrf") {
        Some(presented) if sessions::same(presented, &csrf) => Ok((id, fields)),
        _ => Err(Box::new(page(
            StatusCode::FORBIDDEN,
            layout(
                "Refused",
                Some(&csrf),
                html! { p.notice.error role="alert" { "The form was not sent from this console (its CSRF token is missing or wrong): reload the page and try again." } },
            ),
        ))),
    }
}

/// A signed-in page's request: the session's CSRF token (else the sign-in page, or "disabled").
struct Signed(String);

impl axum::extract::FromRequestParts<Arc<RelayState>> for Signed {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &Arc<RelayState>,
    ) -> Result<Self, Response> {
        signed(state, &parts.headers).map(Signed).map_err(|refusal| *refusal)
    }
}

/// A change: its session id and form, the form's CSRF token checked (else the refusal).
struct Change {
    session: String,
    form: Form,
}

impl axum::extract::FromRequest<Arc<RelayState>> for Change {
    type Rejection = Response;

    async fn from_request(request: axum::extract::Request, state: &Arc<RelayState>) -> Result<Self, Response> {
        let (parts, body) = request.into_parts();
        change(state, &parts.headers, body).await.map(|(session, form)| Change { session, form }).map_err(|r| *r)
    }
}

fn disabled() -> Response {
    page(
        StatusCode::NOT_FOUND,
        layout(
            "Console disabled",
            None,
            html! { p.notice.error { "The console is disabled: the relay has no admin token (admin_token_sha256)." } },
        ),
    )
}

async fn sign_in_page(State(state): State<Arc<RelayState>>, RawQuery(query): RawQuery) -> Response {
    if state.admin_token_sha256.is_none() {
        return disabled();
    }
    let code = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned());
    if let Some(code) = code {
        if state.console.redeem(&code) {
            return signed_in(&state);
        }
        return sign_in_form(
            StatusCode::UNAUTHORIZED,
            Some("This sign-in link was used already or is too old: sign in with the admin token."),
        );
    }
    sign_in_form(StatusCode::OK, None)
}

fn sign_in_form(status: StatusCode, problem: Option<&str>) -> Response {
    page(
        status,
        layout(
            "Sign in",
            None,
            html! {
                div.card {
                    h1 { "Sign in" }
                    @if let Some(problem) = problem {
                        p.notice.error role="alert" { (problem) }
                    }
                    form method="post" action="/console/sign-in" {
                        label for="token" { "Admin token" }
                        input #token type="password" name="token" autocomplete="current-password" required;
                        button type="submit" { "Sign in" }
                    }
                }
            },
        ),
    )
}

async fn sign_in(State(state): State<Arc<RelayState>>, headers: HeaderMap, body: Body) -> Response {
    let Some(expected) = &state.admin_token_sha256 else { return disabled() };
    let fields = match form(&headers, body).await {
        Ok(fields) => fields,
        Err(response) => return *response,
    };
    let token = fields.get("token").map(str::trim).unwrap_or("");
    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(token.as_bytes()));
    if token.is_empty() || !sessions::same(&hash, expected) {
        tracing::warn!("A console sign-in with a wrong admin token was refused.");
        return sign_in_form(StatusCode::UNAUTHORIZED, Some("That is not the admin token."));
    }
    signed_in(&state)
}

/// A new session: its cookie, and on to the tenants.
fn signed_in(state: &RelayState) -> Response {
    let id = state.console.open();
    let mut response = redirect("/console");
    let cookie =
        format!("{COOKIE}={id}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}", sessions::IDLE.as_secs());
    response.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).expect("a cookie"));
    tracing::info!("An operator signed in to the console.");
    response
}

async fn sign_out(State(state): State<Arc<RelayState>>, Change { session: id, .. }: Change) -> Response {
    state.console.close(&id);
    let mut response = redirect("/console/sign-in");
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("klarity_console=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}

/// What a tenant's state is, in words: its class and text, and the reason of a pause.
fn state_of(tenant: &Tenant) -> (&'static str, &'static str, Option<&str>) {
    match (&tenant.paused, tenant.held) {
        (None, _) => ("state-active", "Active", None),
        (Some(reason), true) => ("state-held", "Paused by an operator", Some(reason)),
        (Some(reason), false) => ("state-paused", "Paused: the destination refuses (probing)", Some(reason)),
    }
}

/// Where a tenant's events go, in words.
fn target_of(tenant: &Tenant) -> String {
    match &tenant.destination {
        Destination::CloudtrailLake => tenant.channel_arn.clone(),
        Destination::CloudwatchLogs { log_stream } => {
            format!("{} (stream {log_stream})", tenant.log_group().unwrap_or_default())
        }
        Destination::S3 { prefix, format, .. } => {
            format!("s3://{}/{prefix} ({})", tenant.bucket().unwrap_or_default(), format.name())
        }
    }
}

/// A tenant's last hour as a small chart (inline SVG: no script), accepted solid, delivered dashed,
/// failed dotted, with its figures as text for whoever does not see it.
fn chart(minutes: &[crate::metrics::Minute], now_minute: i64) -> Markup {
    let (w, h, slots) = (180.0_f64, 36.0_f64, 60.0_f64);
    let (a, d, f) =
        minutes.iter().fold((0u64, 0u64, 0u64), |(a, d, f), m| (a + m.accepted, d + m.delivered, f + m.failed));
    let top = minutes.iter().map(|m| m.accepted.max(m.delivered).max(m.failed)).max().unwrap_or(0).max(1) as f64;
    let line = |value: fn(&crate::metrics::Minute) -> u64| -> String {
        let mut points = String::new();
        for m in minutes {
            let x = w - (now_minute - m.minute) as f64 * (w / slots) - w / slots / 2.0;
            let y = h - 2.0 - value(m) as f64 / top * (h - 4.0);
            let _ = write!(points, "{x:.1},{y:.1} ");
        }
        points
    };
    let summary = format!("Last hour: {a} accepted, {d} delivered, {f} failed");
    html! {
        svg.chart width=(w) height=(h) viewBox={ "0 0 " (w) " " (h) } role="img" aria-label=(summary) {
            title { (summary) }
            line x1="0" y1=(h - 1.0) x2=(w) y2=(h - 1.0) stroke="#d6dbe1" {}
            polyline points=(line(|m| m.accepted)) fill="none" stroke="#0b5cad" stroke-width="1.5" {}
            polyline points=(line(|m| m.delivered)) fill="none" stroke="#1f6f3a" stroke-width="1.5" stroke-dasharray="4 2" {}
            polyline points=(line(|m| m.failed)) fill="none" stroke="#a4261d" stroke-width="1.5" stroke-dasharray="1 2" {}
            // A minute alone (a line needs two) still shows, as dots.
            @if minutes.len() == 1 {
                @for (value, colour) in [(minutes[0].accepted, "#0b5cad"), (minutes[0].delivered, "#1f6f3a"), (minutes[0].failed, "#a4261d")] {
                    circle cx=(w - w / slots / 2.0) cy=(h - 2.0 - value as f64 / top * (h - 4.0)) r="2" fill=(colour) {}
                }
            }
        }
        span.target { (a) " in · " (d) " out · " (f) " failed" }
    }
}

/// A duration in the largest unit that fits, as people read it.
fn age(ms: i64) -> String {
    let secs = ms.max(0) / 1000;
    let mut out = String::new();
    match secs {
        0..60 => write!(out, "{secs} s"),
        60..3600 => write!(out, "{} min", secs / 60),
        3600..86_400 => write!(out, "{} h {} min", secs / 3600, secs % 3600 / 60),
        _ => write!(out, "{} d {} h", secs / 86_400, secs % 86_400 / 3600),
    }
    .expect("writing to a string");
    out
}

async fn tenants_page(
    State(state): State<Arc<RelayState>>,
    Signed(csrf): Signed,
    RawQuery(query): RawQuery,
) -> Response {
    let tenants = match state.store.tenants().await {
        Ok(tenants) => tenants,
        Err(err) => return super::ApiError::from(err).into_response(),
    };
    let depth = state.store.depth().await.unwrap_or_default();
    let now = audit_event::EventTime::now().unix_millis();
    let mut oldest = HashMap::new();
    for t in &tenants {
        if let Ok(Some(ms)) = state.store.oldest_pending_ms(&t.id).await {
            oldest.insert(t.id.clone(), now - ms);
        }
    }
    let notice = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "done")
        .map(|(_, v)| v.into_owned());
    let body = html! {
        h1 { "Tenants" }
        @if let Some(notice) = notice {
            p.notice role="status" { (notice) }
        }
        div.table-wrap {
            table {
                caption { (tenants.len()) " tenants; the charts count what this relay did each minute: accepted (solid), delivered (dashed), failed (dotted)" }
                thead {
                    tr {
                        th scope="col" { "Tenant" }
                        th scope="col" { "Destination" }
                        th scope="col" { "State" }
                        th scope="col" { "Queued" }
                        th scope="col" { "Oldest queued" }
                        th scope="col" { "Last hour, per minute" }
                        th scope="col" { "Action" }
                    }
                }
                tbody {
                    @for t in &tenants {
                        @let (class, text, reason) = state_of(t);
                        tr data-tenant=(t.id) {
                            th scope="row" { a href={ "/console/tenants/" (t.id) } { (t.id) } }
                            td { (t.destination.name()) span.target { (target_of(t)) } }
                            td {
                                span class=(class) { (text) }
                                @if let Some(reason) = reason { span.reason { (reason) } }
                                @if let Some(since) = state.metrics.tenant(&t.id).looking_up_since() {
                                    span.reason.looking-up {
                                        "Looking up, for " (age(now - since)) ", what may already be stored before sending it again"
                                    }
                                }
                                @if let Some((at, error)) = state.metrics.tenant(&t.id).last_error() {
                                    span.reason.last-error { "Last error " (age(now - at)) " ago: " (error) }
                                }
                            }
                            td.num { (depth.get(&t.id).copied().unwrap_or(0)) }
                            td.num { (oldest.get(&t.id).map_or("—".to_owned(), |ms| age(*ms))) }
                            td { (chart(&state.metrics.per_minute(&t.id, now.div_euclid(60_000)), now.div_euclid(60_000))) }
                            td {
                                form.inline method="post" action={ "/console/tenants/" (t.id) "/verify" } {
                                    input type="hidden" name="csrf" value=(csrf);
                                    button.secondary type="submit" aria-label={ "Verify " (t.id) } { "Verify" }
                                }
                                @if t.held {
                                    form.inline method="post" action={ "/console/tenants/" (t.id) "/resume" } {
                                        input type="hidden" name="csrf" value=(csrf);
                                        button type="submit" aria-label={ "Resume " (t.id) } { "Resume" }
                                    }
                                } @else {
                                    form.inline method="post" action={ "/console/tenants/" (t.id) "/pause" } {
                                        input type="hidden" name="csrf" value=(csrf);
                                        label.visually-hidden for={ "reason-" (t.id) } { "Why pause " (t.id) }
                                        input id={ "reason-" (t.id) } type="text" name="reason" placeholder="Why (optional)";
                                        button.secondary type="submit" aria-label={ "Pause " (t.id) } { "Pause" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    page(StatusCode::OK, layout("Tenants", Some(&csrf), body))
}

async fn pause(
    State(state): State<Arc<RelayState>>,
    Path(id): Path<String>,
    Change { form: fields, .. }: Change,
) -> Response {
    let reason = fields.get("reason").map(str::trim).filter(|r| !r.is_empty()).unwrap_or("paused by an operator");
    let reason: String = reason.chars().take(500).collect();
    match crate::store::hold(state.store.as_ref(), &id, &reason).await {
        Ok(Some(_)) => {
            tracing::info!(tenant = %id, reason = %reason, "Paused a tenant from the console.");
            redirect(&format!("/console?done={}", encode(&format!("Paused {id}: {reason}."))))
        }
        Ok(None) => redirect(&format!("/console?done={}", encode(&format!("There is no tenant {id}.")))),
        Err(err) => super::ApiError::from(err).into_response(),
    }
}

async fn resume(State(state): State<Arc<RelayState>>, Path(id): Path<String>, _change: Change) -> Response {
    match crate::store::resume(state.store.as_ref(), &id).await {
        Ok(Some(_)) => {
            tracing::info!(tenant = %id, "Resumed a tenant from the console.");
            redirect(&format!("/console?done={}", encode(&format!("Resumed {id}."))))
        }
        Ok(None) => redirect(&format!("/console?done={}", encode(&format!("There is no tenant {id}.")))),
        Err(err) => super::ApiError::from(err).into_response(),
    }
}

/// Most dead letters a page shows.
const DEAD_LETTERS_SHOWN: usize = 200;

/// A signed-in page's CSRF token, or the redirect to sign in.
fn signed(state: &RelayState, headers: &HeaderMap) -> Result<String, Refusal> {
    if state.admin_token_sha256.is_none() {
        return Err(Box::new(disabled()));
    }
    session(state, headers).map(|(_, csrf)| csrf).ok_or_else(|| Box::new(redirect("/console/sign-in")))
}

async fn dead_letters_page(
    State(state): State<Arc<RelayState>>,
    Signed(csrf): Signed,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let letters = match state.store.dead_letters(&id, DEAD_LETTERS_SHOWN).await {
        Ok(letters) => letters,
        Err(err) => return super::ApiError::from(err).into_response(),
    };
    let notice = done(query);
    let body = html! {
        h1 { "Dead letters of " (id) }
        (lookup_form(&id, ""))
        @if let Some(notice) = notice { p.notice role="status" { (notice) } }
        p { "Events the destination refused for good, with its code and message. Replaying puts them back in the queue with their entry ids; they are delivered again, or refused again." }
        @if letters.is_empty() {
            p { "None." }
        } @else {
            form method="post" action={ "/console/tenants/" (id) "/replay" } {
                            input type="hidden" name="csrf" value=(csrf);
                            div.actions {
                                button type="submit" name="all" value="1" { "Replay all " (letters.len()) }
                                button.secondary type="submit" { "Replay selected" }
                            }
            div.table-wrap {
                table {
                    caption { "The oldest " (letters.len()) " (at most " (DEAD_LETTERS_SHOWN) ")" }
                    thead { tr { th scope="col" { span.visually-hidden { "Select" } } th scope="col" { "UID" } th scope="col" { "Event source" } th scope="col" { "Code" } th scope="col" { "Message" } th scope="col" { "Attempts" } } }
                    tbody {
                        @for l in &letters {
                            tr data-uid=(l.uid) {
                                td {
                                    input type="checkbox" name="uid" value=(l.uid) id={ "pick-" (l.uid) };
                                    label.visually-hidden for={ "pick-" (l.uid) } { "Select " (l.uid) }
                                }
                                th scope="row" { (l.uid) }
                                td { (l.source) }
                                td { (l.code) }
                                td { (l.message) }
                                td.num { (l.attempts) }
                            }
                        }
                    }
                }
            }
            }
        }
    };
    page(StatusCode::OK, layout("Dead letters", Some(&csrf), body))
}

async fn replay(
    State(state): State<Arc<RelayState>>,
    Path(id): Path<String>,
    Change { form: fields, .. }: Change,
) -> Response {
    let chosen = fields.all("uid");
    if fields.get("all").is_none() && chosen.is_empty() {
        let back = format!("/console/tenants/{id}/dead-letters");
        return redirect(&format!("{back}?done={}", encode("Select the dead letters to replay, or replay all.")));
    }
    let replayed = if fields.get("all").is_some() {
        state.store.replay(&id).await
    } else {
        state.store.replay_only(&id, chosen).await
    };
    match replayed {
        Ok(n) => {
            tracing::info!(tenant = %id, replayed = n, "Replayed a tenant's dead letters from the console.");
            let back = format!("/console/tenants/{id}/dead-letters");
            redirect(&format!(
                "{back}?done={}",
                encode(&format!("Replayed {n} dead letters of {id}; they are queued again."))
            ))
        }
        Err(err) => super::ApiError::from(err).into_response(),
    }
}

/// Checks a tenant end to end (a canary through its destination, as `tenants verify` does) and
/// shows what worked and what did not.
async fn verify(State(state): State<Arc<RelayState>>, Path(id): Path<String>, change: Change) -> Response {
    let csrf = state.console.csrf(&change.session).unwrap_or_default();
    let tenant = match state.store.tenant(&id).await {
        Ok(Some(tenant)) => tenant,
        Ok(None) => return redirect(&format!("/console?done={}", encode(&format!("There is no tenant {id}.")))),
        Err(err) => return super::ApiError::from(err).into_response(),
    };
    let Some((base, endpoint)) = state.verify_with.clone() else {
        return redirect(&format!("/console?done={}", encode("This relay cannot check tenants from the console.")));
    };
    let verdict = crate::delivery::verify::verify(&tenant, base, endpoint).await;
    tracing::info!(tenant = %id, works = verdict.problem.is_none(), "Checked a tenant from the console.");
    let body = html! {
        h1 { "Checking " (id) }
        ul.checks {
            @for check in &verdict.checks { li { span.state-active { "ok " } (check) } }
            @if let Some(problem) = &verdict.problem { li { span.state-paused { "failed " } (problem) } }
        }
        @match &verdict.problem {
            None => p.notice role="status" { "Tenant " (id) " works: a canary event reached its destination (it stays there, named integration.verified)." },
            Some(_) => p.notice.error role="alert" { "Tenant " (id) " does not work yet: see above." },
        }
        p { a href="/console" { "Back to the tenants" } }
    };
    page(StatusCode::OK, layout("Verify", Some(&csrf), body))
}

/// The form that looks an event of tenant `id` up by its UID.
fn lookup_form(id: &str, uid: &str) -> Markup {
    html! {
        form.inline method="get" action={ "/console/tenants/" (id) "/events" } role="search" {
            label for="uid" { "Find an event by UID" }
            input #uid type="text" name="uid" value=(uid) required;
            button.secondary type="submit" { "Find" }
        }
    }
}

/// One event's delivery status, looked up by UID among the tenant's applications.
async fn event_page(
    State(state): State<Arc<RelayState>>,
    Signed(csrf): Signed,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let uid = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "uid")
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default();
    let tenant = match state.store.tenant(&id).await {
        Ok(Some(tenant)) => tenant,
        Ok(None) => {
            return page(
                StatusCode::NOT_FOUND,
                layout("No tenant", Some(&csrf), html! { p.notice.error { "There is no tenant " (id) "." } }),
            );
        }
        Err(err) => return super::ApiError::from(err).into_response(),
    };
    let mut found = None;
    for source in &tenant.applications {
        match state.store.status(&id, source, &uid).await {
            Ok(Some(status)) => {
                found = Some((source.clone(), status));
                break;
            }
            Ok(None) => {}
            Err(err) => return super::ApiError::from(err).into_response(),
        }
    }
    let body = html! {
        h1 { "Event " (uid) " of " (id) }
        (lookup_form(&id, &uid))
        @match &found {
            None => p.notice.error role="alert" { "No event with this UID was accepted for " (id) " (from any of its applications)." },
            Some((source, status)) => {
                dl.facts {
                    dt { "State" } dd #event-state { (super::state_name(status.state)) }
                    dt { "Event source" } dd { (source) }
                    dt { "Entry id" } dd { code { (status.entry_id) } }
                    dt { "Accepted" } dd { (when(Some(status.accepted_ms))) }
                    dt { "Attempts" } dd { (status.attempts) }
                    @if let Some(event_id) = &status.event_id { dt { "Stored as" } dd { code { (event_id) } } }
                    @if let Some(code) = &status.error_code { dt { "Last error" } dd { (code) @if let Some(m) = &status.error_message { ": " (m) } } }
                }
            }
        }
        p { a href={ "/console/tenants/" (id) "/dead-letters" } { "Dead letters of " (id) } }
    };
    page(if found.is_some() { StatusCode::OK } else { StatusCode::NOT_FOUND }, layout("Event", Some(&csrf), body))
}

/// The `done` notice a redirect carries.
fn done(query: Option<String>) -> Option<String> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes()).find(|(k, _)| k == "done").map(|(_, v)| v.into_owned())
}

/// A time in milliseconds, as people read it (UTC, to the minute).
fn when(ms: Option<i64>) -> String {
    ms.map_or("—".to_owned(), |ms| {
        let t = audit_event::EventTime::from_unix(ms.div_euclid(1000), 0).to_string();
        format!("{} {} UTC", &t[..10], &t[11..16])
    })
}

fn tokens_body(
    state: &RelayState,
    csrf: &str,
    tokens: &[crate::registry::TokenRecord],
    notice: Option<&str>,
    issued: Option<&str>,
) -> Markup {
    let now = audit_event::EventTime::now().unix_millis();
    html! {
        h1 { "App tokens" }
        @if let Some(notice) = notice { p.notice role="status" { (notice) } }
        @if let Some(token) = issued {
            div.notice role="status" {
                p { "The new token, shown this once (the relay keeps only its hash): copy it now." }
                p { code #new-token { (token) } }
            }
        }
        div.table-wrap {
            table {
                caption { (tokens.len()) " tokens, oldest first" }
                thead { tr {
                    th scope="col" { "Id" } th scope="col" { "Name" } th scope="col" { "Event source" } th scope="col" { "Tenants" }
                    th scope="col" { "Issued" } th scope="col" { "Expires" } th scope="col" { "Last used" } th scope="col" { "State" } th scope="col" { "Action" }
                } }
                tbody {
                    @for t in tokens {
                        @let revoked = t.revoked_ms.is_some();
                        @let expired = t.expires_ms.is_some_and(|e| e <= now);
                        tr data-token=(t.id) {
                            th scope="row" { (t.id) @if let Some(hint) = &t.hint { span.target { (hint) "…" } } }
                            td { (t.grant.name) }
                            td { (t.grant.source) }
                            td { (t.grant.tenants.join(", ")) }
                            td { (when(t.created_ms)) }
                            td { (when(t.expires_ms)) }
                            td { (when(t.last_used_ms)) }
                            td {
                                @if revoked { span.state-paused { "Revoked " (when(t.revoked_ms)) } }
                                @else if expired { span.state-held { "Expired" } }
                                @else { span.state-active { "Active" } }
                            }
                            td {
                                @if !revoked {
                                    form.inline method="post" action={ "/console/tokens/" (t.id) "/revoke" } {
                                        input type="hidden" name="csrf" value=(csrf);
                                        button.secondary type="submit" aria-label={ "Revoke " (t.id) } { "Revoke" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Issue a token" }
        form.stack method="post" action="/console/tokens" {
            input type="hidden" name="csrf" value=(csrf);
            label for="token-name" { "Name" }
            input #token-name type="text" name="name" required placeholder="AutoBackup production";
            label for="token-source" { "Event source (the one application it publishes)" }
            select #token-source name="source" required {
                @for app in state.catalog.applications() {
                    option value=(app.event_source) { (app.name) " — " (app.event_source) }
                }
            }
            label for="token-tenants" { "Tenants (ids separated by commas, or * for all)" }
            input #token-tenants type="text" name="tenants" required;
            label for="token-expires" { "Expires (optional, e.g. 2027-01-01T00:00:00Z)" }
            input #token-expires type="text" name="expires";
            button type="submit" { "Issue" }
        }
    }
}

async fn tokens_page(
    State(state): State<Arc<RelayState>>,
    Signed(csrf): Signed,
    RawQuery(query): RawQuery,
) -> Response {
    match state.store.tokens().await {
        Ok(tokens) => page(
            StatusCode::OK,
            layout("App tokens", Some(&csrf), tokens_body(&state, &csrf, &tokens, done(query).as_deref(), None)),
        ),
        Err(err) => super::ApiError::from(err).into_response(),
    }
}

async fn issue_token(State(state): State<Arc<RelayState>>, Change { session: id, form: fields }: Change) -> Response {
    let csrf = state.console.csrf(&id).unwrap_or_default();
    let field = |name: &str| fields.get(name).map(|v| v.trim().to_owned()).unwrap_or_default();
    let grant = crate::registry::Grant {
        name: field("name"),
        source: field("source"),
        tenants: field("tenants").split(',').map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()).collect(),
    };
    let problem = if grant.name.is_empty() {
        Some("Give the token a name.".to_owned())
    } else if state.catalog.application(&grant.source).is_none() {
        Some(format!("{:?} is not an event source of the catalog.", grant.source))
    } else if grant.tenants.is_empty() {
        Some("Name the tenants it may publish into, or * for all.".to_owned())
    } else {
        None
    };
    let expires = match field("expires") {
        text if text.is_empty() => Ok(None),
        text => crate::registry::expiry_at(&text).map(Some),
    };
    let outcome = match (problem, expires) {
        (Some(problem), _) | (None, Err(problem)) => Err(problem),
        (None, Ok(expires)) => state.store.issue(&grant, expires).await.map_err(|e| e.to_string()),
    };
    let tokens = state.store.tokens().await.unwrap_or_default();
    match outcome {
        Ok((token, record)) => {
            tracing::info!(token = %record.id, source = %grant.source, "Issued an app token from the console.");
            let notice = format!("Issued {} for {}.", record.id, grant.source);
            page(
                StatusCode::OK,
                layout("App tokens", Some(&csrf), tokens_body(&state, &csrf, &tokens, Some(&notice), Some(&token))),
            )
        }
        Err(problem) => page(
            StatusCode::BAD_REQUEST,
            layout(
                "App tokens",
                Some(&csrf),
                html! {
                    p.notice.error role="alert" { "The token was not issued: " (problem) }
                    (tokens_body(&state, &csrf, &tokens, None, None))
                },
            ),
        ),
    }
}

async fn revoke_token(State(state): State<Arc<RelayState>>, Path(id): Path<String>, _change: Change) -> Response {
    match state.store.revoke_token(&id).await {
        Ok(Some(_)) => {
            tracing::info!(token = %id, "Revoked an app token from the console.");
            redirect(&format!(
                "/console/tokens?done={}",
                encode(&format!("Revoked {id}: it is refused from the next request on."))
            ))
        }
        Ok(None) => redirect(&format!("/console/tokens?done={}", encode(&format!("There is no token {id}.")))),
        Err(err) => super::ApiError::from(err).into_response(),
    }
}

async fn catalog_page(State(state): State<Arc<RelayState>>, Signed(csrf): Signed) -> Response {
    let body = html! {
        h1 { "Catalog" }
        p { "The applications that publish, their event source, and each event type's typed parameters, with an example." }
        @for app in state.catalog.applications() {
            section aria-labelledby={ "app-" (app.event_source) } {
                h2 id={ "app-" (app.event_source) } { (app.name) " " span.target { (app.event_source) } }
                p { (app.description) }
                @for t in &app.event_types {
                    details {
                        summary { code { (t.name) } " — " (t.description) }
                        @if !t.parameters.is_empty() {
                            div.table-wrap {
                                table {
                                    thead { tr { th scope="col" { "Parameter" } th scope="col" { "Type" } th scope="col" { "Required" } th scope="col" { "Meaning" } } }
                                    tbody {
                                        @for p in &t.parameters {
                                            tr { th scope="row" { code { (p.name) } } td { (p.kind) } td { @if p.required { "yes" } @else { "no" } } td { (p.description) } }
                                        }
                                    }
                                }
                            }
                        }
                        pre { code { (serde_json::to_string_pretty(&t.example).unwrap_or_default()) } }
                    }
                }
            }
        }
    };
    page(StatusCode::OK, layout("Catalog", Some(&csrf), body))
}

fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
