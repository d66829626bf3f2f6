//! The wire protocols, on one port.
//!
//! | protocol | recognised by | service |
//! |---|---|---|
//! | awsJson1_1 | `X-Amz-Target: [com.amazonaws.cloudtrail.v20131101.]CloudTrail_20131101.<Op>` | `cloudtrail` |
//! | restJson1 | `POST /PutAuditEvents` | `cloudtrail-data` |
//! | awsQuery | a form body (or query string) with `Action=` | `sts`, `iam` |
//!
//! Every request is authenticated with SigV4 before anything else is looked at, and bodies are
//! bounded before they are buffered. Errors become protocol-shaped responses here, in one place
//! ([`error_response`]), so that botocore and aws-sdk-rust raise the modelled exception types.

pub mod sigv4;

mod cloudtrail;
mod cloudtrail_data;
mod iam;
mod query;
mod sts;

use std::sync::Arc;

use axum::{
    Router,
    body::Body,
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    response::Response,
};
use http_serve::BodyError;

use crate::{Lake, error::AwsError, identity::Caller};

/// The JSON 1.1 target prefixes of CloudTrail: botocore sends the namespaced form, aws-sdk-rust
/// the bare service name.
const CLOUDTRAIL_TARGETS: [&str; 2] =
    ["com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.", "CloudTrail_20131101."];

/// The router: everything goes through [`handle`].
pub fn router(lake: Arc<Lake>) -> Router {
    Router::new().fallback(handle).with_state(lake)
}

/// Which protocol a request speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Json,
    RestJson,
    Query,
}

impl Protocol {
    fn service(self) -> &'static [&'static str] {
        match self {
            Protocol::Json => &["cloudtrail"],
            Protocol::RestJson => &["cloudtrail-data"],
            Protocol::Query => &["sts", "iam"],
        }
    }
}

/// A successful answer before encoding.
pub(crate) enum Reply {
    /// A JSON body (for the JSON protocols).
    Json(serde_json::Value),
    /// A JSON body already serialized (hot paths that skip building a `Value`).
    JsonText(String),
    /// An XML body (for the query protocol).
    Xml(String),
}

async fn handle(State(lake): State<Arc<Lake>>, request: Request) -> Response {
    if request.uri().path() == "/metrics" && request.method() == Method::GET {
        return metrics(&lake, request.headers());
    }
    let request_id = uuid::Uuid::new_v4().to_string();
    let (parts, body) = request.into_parts();
    let protocol = classify(&parts.method, parts.uri.path(), &parts.headers);
    let outcome = serve(&lake, protocol, parts, body).await;
    let mut response = match outcome {
        Ok(reply) => ok_response(protocol, reply),
        Err(err) => {
            if err.is_client() {
                tracing::debug!(code = err.code, message = %err.message, request_id, "Refused a request.");
            }
            error_response(protocol.unwrap_or(Protocol::Json), &err, &request_id)
        }
    };
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-amzn-requestid", value);
    }
    response
}

/// `GET /metrics`: the lake's own counters as Prometheus text, for the bearer of the metrics token
/// (not an AWS API: scrapers do not sign requests).
fn metrics(lake: &Lake, headers: &HeaderMap) -> Response {
    let plain = |status: StatusCode, text: String| {
        Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "text/plain; version=0.0.4")
            .body(Body::from(text))
            .expect("valid response")
    };
    let expected = &lake.config.metrics_token_sha256;
    if expected.is_empty() {
        return plain(StatusCode::NOT_FOUND, "metrics are disabled: set metrics_token_sha256\n".into());
    }
    let presented =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let hash = presented.map(|t| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(t.trim().as_bytes())));
    if !hash.is_some_and(|h| sigv4::constant_time_eq(h.as_bytes(), expected.to_ascii_lowercase().as_bytes())) {
        return plain(StatusCode::UNAUTHORIZED, "send the metrics token as 'Authorization: Bearer <token>'\n".into());
    }
    let text = format!(
        "# HELP klarity_lake_quarantined_events Stored events that cannot be read, left out of files and queries since the lake started.\n\
         # TYPE klarity_lake_quarantined_events gauge\n\
         klarity_lake_quarantined_events {}\n\
         # HELP klarity_lake_queries_running Queries planned or running now.\n\
         # TYPE klarity_lake_queries_running gauge\n\
         klarity_lake_queries_running {}\n\
         # HELP klarity_lake_commits_total Commits of the storage writer since the lake started.\n\
         # TYPE klarity_lake_commits_total counter\n\
         klarity_lake_commits_total {}\n",
        lake.columnar.quarantined(),
        lake.queries.running(),
        lake.store.commits(),
    );
    plain(StatusCode::OK, text)
}

fn classify(method: &Method, path: &str, headers: &HeaderMap) -> Option<Protocol> {
    if headers.contains_key("x-amz-target") {
        return Some(Protocol::Json);
    }
    if path == "/PutAuditEvents" {
        return Some(Protocol::RestJson);
    }
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if path == "/" && (form || *method == Method::GET) {
        return Some(Protocol::Query);
    }
    None
}

async fn serve(
    lake: &Lake,
    protocol: Option<Protocol>,
    parts: axum::http::request::Parts,
    body: Body,
) -> Result<Reply, AwsError> {
    // What the headers claim is checked before a byte of the body is read: a request that is not
    // signed, or signed by no key of the lake's, costs no body.
    let claimed = claim(lake, protocol, &parts)?;
    // Bounded before it is buffered: by the declared length, then while reading.
    let body =
        http_serve::read_body(&parts.headers, body, lake.config.max_body_bytes).await.map_err(|err| match err {
            BodyError::TooLarge { max } => too_large(max),
            BodyError::TimedOut(timeout) => AwsError::with_status(408, "RequestTimeout", timeout.to_string()),
            BodyError::Incomplete(_) => AwsError::client("IncompleteBody", "The request body could not be read."),
        })?;
    let (caller, service) = verify(lake, claimed, &parts, &body)?;
    let Some(protocol) = protocol else {
        return Err(AwsError::with_status(
            404,
            "UnknownOperationException",
            format!(
                "No operation matches {} {}; the lake speaks cloudtrail (X-Amz-Target), cloudtrail-data (POST /PutAuditEvents), sts and iam (Action=).",
                parts.method,
                parts.uri.path()
            ),
        ));
    };
    match protocol {
        Protocol::Json => {
            let target = parts.headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or("");
            let Some(operation) = CLOUDTRAIL_TARGETS.iter().find_map(|prefix| target.strip_prefix(prefix)) else {
                return Err(AwsError::client("UnknownOperationException", format!("Unknown target {target:?}.")));
            };
            let content_type = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
            if !content_type.starts_with("application/x-amz-json-1.1")
                && !content_type.starts_with("application/x-amz-json-1.0")
            {
                return Err(AwsError::client(
                    "SerializationException",
                    format!("Content-Type {content_type:?} is not supported; use application/x-amz-json-1.1."),
                ));
            }
            let input = parse_json_object(&body)?;
            cloudtrail::dispatch(lake, &caller, operation, input).await.map(Reply::Json)
        }
        Protocol::RestJson => {
            if parts.method != Method::POST {
                return Err(AwsError::with_status(405, "MethodNotAllowedException", "PutAuditEvents takes POST."));
            }
            let content_type =
                parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/json");
            if !content_type.starts_with("application/json") {
                return Err(AwsError::with_status(
                    415,
                    "UnsupportedMediaTypeException",
                    format!("Content-Type {content_type:?} is not supported; use application/json."),
                ));
            }
            cloudtrail_data::put_audit_events(lake, &caller, parts.uri.query().unwrap_or(""), &body)
                .await
                .map(Reply::JsonText)
        }
        Protocol::Query => {
            query::dispatch(lake, &caller, &service, parts.uri.query().unwrap_or(""), &body).await.map(Reply::Xml)
        }
    }
}

fn too_large(max: usize) -> AwsError {
    AwsError::with_status(
        413,
        "RequestEntityTooLargeException",
        format!("The request body exceeds the lake's limit of {max} bytes."),
    )
}

fn parse_json_object(body: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>, AwsError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) { b"{}".as_slice() } else { body };
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(_) => Err(AwsError::client("SerializationException", "The request body must be a JSON object.")),
        Err(err) => {
            Err(AwsError::client("SerializationException", format!("The request body is not valid JSON: {err}.")))
        }
    }
}

/// A request's signature as its headers state it, with the key that must have made it: checked
/// before the body is read ([`claim`]), verified over the body after ([`verify`]).
struct Claimed<'a> {
    auth: sigv4::Authorization<'a>,
    amz_date: &'a str,
    key: [u8; 32],
    session: Option<crate::store::model::Session>,
    query_protocol: bool,
    now: i64,
}

/// Headers that choose what a request does: each must be signed when it is sent (AWS's rule for
/// `x-amz-*`; `X-Amz-Target` picks the operation and `Content-Type` the protocol).
fn steers(name: &str) -> bool {
    name.starts_with("x-amz-") || name == "content-type"
}

/// The payload hashes a client may claim without hashing the body, which these services refuse.
const UNHASHED_PAYLOADS: [&str; 2] = ["UNSIGNED-PAYLOAD", "STREAMING-"];

/// Checks everything of a request's signature that its headers hold: the `Authorization` header's
/// form, the key, the scope, the date, that every header steering the request is signed, and that
/// the payload is claimed as its hash.
fn claim<'a>(
    lake: &Lake,
    protocol: Option<Protocol>,
    parts: &'a axum::http::request::Parts,
) -> Result<Claimed<'a>, AwsError> {
    let query_protocol = protocol == Some(Protocol::Query);
    let Some(header) = parts.headers.get(header::AUTHORIZATION) else {
        let code = if query_protocol { "MissingAuthenticationToken" } else { "MissingAuthenticationTokenException" };
        return Err(AwsError::with_status(403, code, "Request is missing Authentication Token"));
    };
    let header = header
        .to_str()
        .map_err(|_| AwsError::client("IncompleteSignatureException", "The Authorization header is not ASCII."))?;
    let incomplete = |m: String| {
        AwsError::client(if query_protocol { "IncompleteSignature" } else { "IncompleteSignatureException" }, m)
    };
    let auth = sigv4::parse_authorization(header).map_err(|e| match e {
        sigv4::SigError::Malformed(m) => incomplete(m),
        _ => incomplete("The Authorization header is not a SigV4 signature.".into()),
    })?;
    let invalid_token = || invalid_token(query_protocol);
    let session = if lake.identity.knows(auth.access_key_id) {
        None
    } else {
        match lake.store.session(auth.access_key_id) {
            Some(session) => Some(session),
            None => return Err(invalid_token()),
        }
    };
    let signature_error = |m: String| signature_error(query_protocol, m);
    if let Some(protocol) = protocol
        && !protocol.service().contains(&auth.service)
    {
        return Err(signature_error(format!(
            "Credential should be scoped to correct service: '{}'.",
            protocol.service()[0]
        )));
    }
    let amz_date = parts.headers.get("x-amz-date").and_then(|v| v.to_str().ok()).ok_or_else(|| {
        incomplete("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.".into())
    })?;
    let signed_at = sigv4::parse_amz_date(amz_date)
        .ok_or_else(|| incomplete(format!("X-Amz-Date {amz_date:?} is not YYYYMMDDTHHMMSSZ.")))?;
    if &amz_date[..8] != auth.date {
        return Err(signature_error(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}'.",
            auth.date,
            &amz_date[..8]
        )));
    }
    let now = audit_event::EventTime::now().unix_seconds();
    let skew = lake.config.max_clock_skew.as_secs() as i64;
    if now - signed_at > skew {
        return Err(signature_error(format!(
            "Signature expired: {amz_date} is now earlier than {} ({} - {} min.)",
            sigv4_time(now - skew),
            sigv4_time(now),
            skew / 60
        )));
    }
    if signed_at - now > skew {
        return Err(signature_error(format!(
            "Signature not yet current: {amz_date} is still later than {} ({} + {} min.)",
            sigv4_time(now + skew),
            sigv4_time(now),
            skew / 60
        )));
    }
    for name in parts.headers.keys().map(|n| n.as_str()).filter(|n| steers(n)) {
        if !auth.signed_headers.contains(&name) {
            return Err(incomplete(format!(
                "The '{name}' header must be signed: list it in SignedHeaders, or do not send it."
            )));
        }
    }
    if let Some(claimed) = parts.headers.get("x-amz-content-sha256") {
        let claimed = claimed.to_str().unwrap_or("");
        if UNHASHED_PAYLOADS.iter().any(|p| claimed.starts_with(p)) {
            return Err(incomplete(format!(
                "x-amz-content-sha256 is {claimed:?}; {} signs its payload: send the hex SHA-256 of the body, or leave the header out.",
                auth.service
            )));
        }
    }
    let key = match &session {
        Some(session) => sigv4::signing_key(&session.secret_access_key, auth.date, auth.region, auth.service),
        None => lake
            .identity
            .signing_key(auth.access_key_id, auth.date, auth.region, auth.service)
            .ok_or_else(AwsError::internal)?,
    };
    Ok(Claimed { auth, amz_date, key, session, query_protocol, now })
}

fn invalid_token(query_protocol: bool) -> AwsError {
    if query_protocol {
        AwsError::with_status(403, "InvalidClientTokenId", "The security token included in the request is invalid.")
    } else {
        AwsError::with_status(
            400,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )
    }
}

fn signature_error(query_protocol: bool, message: String) -> AwsError {
    if query_protocol {
        AwsError::with_status(403, "SignatureDoesNotMatch", message)
    } else {
        AwsError::with_status(400, "InvalidSignatureException", message)
    }
}

/// Verifies the claimed signature over the request with its body, and resolves the caller.
fn verify(
    lake: &Lake,
    claimed: Claimed<'_>,
    parts: &axum::http::request::Parts,
    body: &[u8],
) -> Result<(Caller, String), AwsError> {
    let Claimed { auth, amz_date, key, session, query_protocol, now } = claimed;
    // The payload hash is always the body's own: a claimed one must be it.
    if let Some(claimed) = parts.headers.get("x-amz-content-sha256") {
        let computed = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(body));
        if !claimed.to_str().unwrap_or("").eq_ignore_ascii_case(&computed) {
            return Err(AwsError::client(
                "XAmzContentSHA256Mismatch",
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            ));
        }
    }
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .filter_map(|(name, value)| value.to_str().ok().map(|v| (name.as_str().to_owned(), v.to_owned())))
        .collect();
    let signable = sigv4::Signable {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        headers: &headers,
        body,
    };
    sigv4::verify(&signable, &auth, amz_date, &key).map_err(|e| match e {
        sigv4::SigError::Malformed(m) => AwsError::client(
            if query_protocol { "IncompleteSignature" } else { "IncompleteSignatureException" },
            m,
        ),
        _ => signature_error(
            query_protocol,
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.".into(),
        ),
    })?;
    let token = parts.headers.get("x-amz-security-token").and_then(|v| v.to_str().ok());
    let service = auth.service.to_owned();
    let Some(session) = session else {
        // A long-term key never carries a session token.
        if token.is_some() {
            return Err(invalid_token(query_protocol));
        }
        let caller = lake.identity.caller(auth.access_key_id, auth.region).ok_or_else(AwsError::internal)?;
        return Ok((caller, service));
    };
    let presented = token.map(|t| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(t.as_bytes())));
    if presented.as_deref() != Some(session.token_sha256.as_str()) {
        return Err(invalid_token(query_protocol));
    }
    if now >= session.expires {
        return Err(AwsError::client("ExpiredTokenException", "The security token included in the request is expired"));
    }
    Ok((Caller::for_session(&session, auth.region), service))
}

fn sigv4_time(secs: i64) -> String {
    let t = audit_event::EventTime::from_unix(secs, 0).to_string();
    t.replace(['-', ':'], "")
}

fn ok_response(protocol: Option<Protocol>, reply: Reply) -> Response {
    let (content_type, body) = match (protocol, reply) {
        (Some(Protocol::RestJson), Reply::Json(v)) => ("application/json", v.to_string()),
        (_, Reply::Json(v)) => ("application/x-amz-json-1.1", v.to_string()),
        (Some(Protocol::RestJson), Reply::JsonText(t)) => ("application/json", t),
        (_, Reply::JsonText(t)) => ("application/x-amz-json-1.1", t),
        (_, Reply::Xml(x)) => ("text/xml", x),
    };
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .expect("valid response")
}

/// Encodes an error the way the protocol's SDK parsers expect.
fn error_response(protocol: Protocol, err: &AwsError, request_id: &str) -> Response {
    let status = StatusCode::from_u16(err.status).unwrap_or(StatusCode::BAD_REQUEST);
    let builder = Response::builder().status(status);
    match protocol {
        Protocol::Json => builder
            .header(header::CONTENT_TYPE, "application/x-amz-json-1.1")
            .body(Body::from(serde_json::json!({"__type": err.code, "message": err.message}).to_string())),
        Protocol::RestJson => builder
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-amzn-errortype", err.code)
            .body(Body::from(serde_json::json!({"message": err.message}).to_string())),
        Protocol::Query => {
            let kind = if err.is_client() { "Sender" } else { "Receiver" };
            let xml = format!(
                "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>{kind}</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>",
                err.code,
                xml_escape(&err.message)
            );
            builder.header(header::CONTENT_TYPE, "text/xml").body(Body::from(xml))
        }
    }
    .expect("valid response")
}

/// Escapes text for XML content.
pub(crate) fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
}
