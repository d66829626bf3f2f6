//! The awsQuery protocol (`Action=` forms): `sts` and `iam`, chosen by the signing scope's service.

use std::collections::HashMap;

use crate::{Lake, error::AwsError, identity::Caller};

pub(super) async fn dispatch(
    lake: &Lake,
    caller: &Caller,
    service: &str,
    query: &str,
    body: &[u8],
) -> Result<String, AwsError> {
    let mut params: HashMap<String, String> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    params.extend(form_urlencoded::parse(body).into_owned());
    let action = params.get("Action").cloned().unwrap_or_default();
    if action.is_empty() {
        return Err(AwsError::client("MissingAction", "The request must contain the parameter Action."));
    }
    match service {
        "iam" => super::iam::dispatch(lake, caller, &action, &params).await,
        _ => super::sts::dispatch(lake, caller, &action, &params).await,
    }
}

/// A response document in the query protocol's shape.
pub(super) fn response(action: &str, namespace: &str, result: &str) -> String {
    let result = if result.is_empty() { String::new() } else { format!("<{action}Result>{result}</{action}Result>") };
    format!(
        "<{action}Response xmlns=\"{namespace}\">{result}<ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></{action}Response>",
        uuid::Uuid::new_v4()
    )
}

/// A required parameter, or `ValidationError` naming it.
pub(super) fn required<'p>(params: &'p HashMap<String, String>, name: &str) -> Result<&'p str, AwsError> {
    params.get(name).map(String::as_str).filter(|v| !v.is_empty()).ok_or_else(|| {
        AwsError::client(
            "ValidationError",
            format!(
                "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
                lower_first(name)
            ),
        )
    })
}

fn lower_first(name: &str) -> String {
    let mut chars = name.chars();
    chars.next().map(|c| c.to_ascii_lowercase().to_string() + chars.as_str()).unwrap_or_default()
}

/// ISO 8601 in UTC, as the query protocol's timestamps.
pub(super) fn iso(secs: i64) -> String {
    audit_event::EventTime::from_unix(secs, 0).to_string()
}

/// Seconds since the epoch, now.
pub(super) fn now() -> i64 {
    audit_event::EventTime::now().unix_seconds()
}

/// Random upper-case letters and digits, for generated ids and keys.
pub(super) fn random_id(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for byte in uuid::Uuid::new_v4().as_bytes() {
            if out.len() < len {
                out.push(ALPHABET[(*byte as usize) % ALPHABET.len()] as char);
            }
        }
    }
    out
}
