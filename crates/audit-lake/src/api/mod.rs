//! The wire protocols, on one port.
//!
//! | protocol | recognised by | service |
//! |---|---|---|
//! | awsJson1_1 | `X-Amz-Target: [com.amazonaws.cloudtrail.v20131101.]CloudTrail_20131101.<Op>` | `cloudtrail` |
//! | awsJson1_1 | `X-Amz-Target: Logs_20140328.<Op>` | `logs` (CloudWatch Logs) |
//! | restJson1 | `POST /PutAuditEvents` | `cloudtrail-data` |
//! | awsQuery | a form body (or query string) with `Action=` | `sts`, `iam` |
//! | restXml | signed for `s3` (the credential scope) | `s3`, through `s3s` ([`s3`]) |
//!
//! Every request is authenticated with SigV4 before anything else is looked at, and bodies are
//! bounded before they are buffered. Errors become protocol-shaped responses here, in one place
//! ([`error_response`]), so that botocore and aws-sdk-rust raise the modelled exception types.

mod cloudtrail;
mod cloudtrail_data;
mod iam;
mod logs;
mod query;
mod s3;
mod sts;
mod xml;

use std::sync::Arc;

use axum::{
    Router,
    body::Body,
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    response::Response,
};
use http_serve::BodyError;

use crate::{
    Lake,
    error::AwsError,
    identity::{AuthError, RequestHead},
    sigv4,
};

/// The JSON 1.1 target prefixes of CloudTrail: botocore sends the namespaced form, aws-sdk-rust
/// the bare service name.
const CLOUDTRAIL_TARGETS: [&str; 2] =
    ["com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.", "CloudTrail_20131101."];

/// The JSON 1.1 target prefix of CloudWatch Logs.
const LOGS_TARGET: &str = "Logs_20140328.";

/// What the router serves: the lake, and its S3 front.
struct Api {
    lake: Arc<Lake>,
    s3: s3s::service::S3Service,
    /// The bytes of S3 bodies that may be buffered at once, in KiB: four objects of the largest
    /// size (`max_object_bytes`). A body waits for its share before it is read.
    s3_buffers: Arc<tokio::sync::Semaphore>,
}

/// The router: everything goes through [`handle`].
pub fn router(lake: Arc<Lake>) -> Router {
    let s3 = s3::service(lake.clone());
    let s3_buffers = Arc::new(tokio::sync::Semaphore::new(4 * lake.config().max_object_bytes.div_ceil(1024)));
    Router::new().fallback(handle).with_state(Arc::new(Api { lake, s3, s3_buffers }))
}

/// Which protocol a request speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Json,
    /// awsJson1_1 of CloudWatch Logs.
    Logs,
    RestJson,
    Query,
}

impl Protocol {
    fn service(self) -> &'static [&'static str] {
        match self {
            Protocol::Json => &["cloudtrail"],
            Protocol::Logs => &["logs"],
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

async fn handle(State(api): State<Arc<Api>>, request: Request) -> Response {
    let lake = &api.lake;
    if request.uri().path() == "/metrics" && request.method() == Method::GET {
        return metrics(lake, request.headers());
    }
    let protocol = classify(request.method(), request.uri().path(), request.headers());
    // Signed for S3 and not one of the other protocols' calls (one of those signed for S3 is
    // refused below as signed for the wrong service).
    if !matches!(protocol, Some(Protocol::Json | Protocol::Logs | Protocol::RestJson))
        && let Some(access_key) = s3::s3_access_key(request.headers(), request.uri().query().unwrap_or(""))
    {
        return serve_s3(&api, &access_key, request).await;
    }
    let request_id = uuid::Uuid::new_v4().to_string();
    let (parts, body) = request.into_parts();
    let outcome = serve(lake, protocol, parts, body, &request_id).await;
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

/// An S3 request: signed by a key the lake knows (checked before a byte of the body is read), its
/// body bounded by `max_object_bytes` and buffered within the lake's share for S3 bodies, then
/// handed to s3s, which verifies the signature.
async fn serve_s3(api: &Api, access_key: &str, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let xml_error = |status: StatusCode, code: &str, message: String| {
        let xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{}</Message></Error>",
            xml::escape(&message)
        );
        Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "application/xml")
            .body(Body::from(xml))
            .expect("valid response")
    };
    if api.lake.identity().secret(access_key).is_none() {
        return xml_error(
            StatusCode::FORBIDDEN,
            "InvalidAccessKeyId",
            "The AWS Access Key Id you provided does not exist in our records.".into(),
        );
    }
    let max = api.lake.config().max_object_bytes;
    // The share this body may take: its declared length, or the largest an object may be.
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .map_or(max, |n| n.min(max));
    let share = u32::try_from(declared.div_ceil(1024).max(1)).unwrap_or(u32::MAX);
    let Ok(_buffer) = api.s3_buffers.clone().acquire_many_owned(share).await else {
        return xml_error(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", "The lake is stopping.".into());
    };
    let body = match http_serve::read_body(&parts.headers, body, max).await {
        Ok(body) => body,
        Err(BodyError::TooLarge { max }) => {
            return xml_error(
                StatusCode::BAD_REQUEST,
                "EntityTooLarge",
                format!("Your proposed upload exceeds the lake's maximum object size ({max} bytes)."),
            );
        }
        Err(BodyError::TimedOut(timeout)) => {
            return xml_error(StatusCode::BAD_REQUEST, "RequestTimeout", timeout.to_string());
        }
        Err(BodyError::Incomplete(_)) => {
            return xml_error(StatusCode::BAD_REQUEST, "IncompleteBody", "The request body could not be read.".into());
        }
    };
    let request = http::Request::from_parts(parts, s3s::Body::from(body));
    match api.s3.call(request).await {
        Ok(response) => response.map(Body::new),
        Err(err) => {
            tracing::error!(error = ?err, "The S3 front failed.");
            xml_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", "We encountered an internal error.".into())
        }
    }
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
    let expected = &lake.config().metrics_token_sha256;
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
        lake.columnar().quarantined(),
        lake.queries().running(),
        lake.store().commits(),
    );
    plain(StatusCode::OK, text)
}

fn classify(method: &Method, path: &str, headers: &HeaderMap) -> Option<Protocol> {
    if let Some(target) = headers.get("x-amz-target") {
        let logs = target.to_str().is_ok_and(|t| t.starts_with(LOGS_TARGET));
        return Some(if logs { Protocol::Logs } else { Protocol::Json });
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
    request_id: &str,
) -> Result<Reply, AwsError> {
    let query_protocol = protocol == Some(Protocol::Query);
    let head = RequestHead {
        method: &parts.method,
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        headers: &parts.headers,
    };
    // What the headers claim is checked before a byte of the body is read: a request that is not
    // signed, or signed by no key of the lake's, costs no body.
    let claim =
        lake.identity().claim(&head, protocol.map(Protocol::service)).map_err(|e| auth_error(e, query_protocol))?;
    let service = claim.service().to_owned();
    // Bounded before it is buffered: by the declared length, then while reading.
    let body =
        http_serve::read_body(&parts.headers, body, lake.config().max_body_bytes).await.map_err(|err| match err {
            BodyError::TooLarge { max } => too_large(max),
            BodyError::TimedOut(timeout) => AwsError::with_status(408, "RequestTimeout", timeout.to_string()),
            BodyError::Incomplete(_) => AwsError::client("IncompleteBody", "The request body could not be read."),
        })?;
    let caller = lake.identity().verify(claim, &head, &body).map_err(|e| auth_error(e, query_protocol))?;
    let Some(protocol) = protocol else {
        return Err(AwsError::with_status(
            404,
            "UnknownOperationException",
            format!(
                "No operation matches {} {}; the lake speaks cloudtrail and logs (X-Amz-Target), cloudtrail-data (POST /PutAuditEvents), sts and iam (Action=).",
                parts.method,
                parts.uri.path()
            ),
        ));
    };
    match protocol {
        Protocol::Json | Protocol::Logs => {
            let target = parts.headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or("");
            let operation = match protocol {
                Protocol::Logs => target.strip_prefix(LOGS_TARGET),
                _ => CLOUDTRAIL_TARGETS.iter().find_map(|prefix| target.strip_prefix(prefix)),
            };
            let Some(operation) = operation else {
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
            match protocol {
                Protocol::Logs => logs::dispatch(lake, &caller, operation, input).await.map(Reply::Json),
                _ => cloudtrail::dispatch(lake, &caller, operation, input).await.map(Reply::Json),
            }
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
        Protocol::Query => query::dispatch(lake, &caller, &service, parts.uri.query().unwrap_or(""), &body, request_id)
            .await
            .map(Reply::Xml),
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

/// An authentication failure in the protocol's words: the query protocol (STS, IAM) and the JSON
/// protocols name the same faults differently.
fn auth_error(err: AuthError, query_protocol: bool) -> AwsError {
    let pick = |query: &'static str, json: &'static str| if query_protocol { query } else { json };
    match err {
        AuthError::Missing => AwsError::with_status(
            403,
            pick("MissingAuthenticationToken", "MissingAuthenticationTokenException"),
            "Request is missing Authentication Token",
        ),
        AuthError::Incomplete(message) => {
            AwsError::client(pick("IncompleteSignature", "IncompleteSignatureException"), message)
        }
        AuthError::InvalidToken => AwsError::with_status(
            if query_protocol { 403 } else { 400 },
            pick("InvalidClientTokenId", "UnrecognizedClientException"),
            "The security token included in the request is invalid.",
        ),
        AuthError::Signature(message) => AwsError::with_status(
            if query_protocol { 403 } else { 400 },
            pick("SignatureDoesNotMatch", "InvalidSignatureException"),
            message,
        ),
        AuthError::Expired => {
            AwsError::client("ExpiredTokenException", "The security token included in the request is expired")
        }
        AuthError::PayloadMismatch => AwsError::client(
            "XAmzContentSHA256Mismatch",
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        ),
        AuthError::Internal => AwsError::internal(),
    }
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
        Protocol::Json | Protocol::Logs => builder
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
                xml::escape(&err.message)
            );
            builder.header(header::CONTENT_TYPE, "text/xml").body(Body::from(xml))
        }
    }
    .expect("valid response")
}
