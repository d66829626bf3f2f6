//! The awsQuery protocol's pieces shared by `sts` and `iam`: decoding a form into an operation's
//! typed input, and the XML of answers.

use std::collections::HashMap;

use serde::de::DeserializeOwned;

use crate::{error::AwsError, ops::Page};

/// Decodes an operation's input from the form's parameters (the members are PascalCase strings;
/// numbers are parsed by [`number`]). A missing member is IAM's and STS's `ValidationError`,
/// naming it.
pub(super) fn decode<T: DeserializeOwned>(params: &HashMap<String, String>) -> Result<T, AwsError> {
    let members = params.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect();
    serde_json::from_value(serde_json::Value::Object(members)).map_err(|err| {
        let text = err.to_string();
        match text.strip_prefix("missing field `").and_then(|rest| rest.strip_suffix('`')) {
            Some(member) => AwsError::client(
                "ValidationError",
                format!(
                    "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
                    lower_first(member)
                ),
            ),
            None => AwsError::client("ValidationError", format!("The request is not valid: {text}.")),
        }
    })
}

/// A number member of a form.
pub(super) fn number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    let text: Option<String> = serde::Deserialize::deserialize(deserializer)?;
    text.map(|t| t.parse().map_err(|_| serde::de::Error::custom(format!("{t:?} is not a whole number")))).transpose()
}

/// IAM's paging members.
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Paging {
    #[serde(default, deserialize_with = "number")]
    max_items: Option<i64>,
    marker: Option<String>,
}

impl From<Paging> for Page {
    fn from(p: Paging) -> Page {
        Page { max_items: p.max_items, marker: p.marker }
    }
}

/// The members of a list page's answer: `IsTruncated` and `Marker`.
pub(super) fn truncation(marker: &Option<String>) -> String {
    match marker {
        Some(marker) => format!("<IsTruncated>true</IsTruncated><Marker>{}</Marker>", escape(marker)),
        None => "<IsTruncated>false</IsTruncated>".into(),
    }
}

fn lower_first(name: &str) -> String {
    let mut chars = name.chars();
    chars.next().map(|c| c.to_ascii_lowercase().to_string() + chars.as_str()).unwrap_or_default()
}

/// A response document in the query protocol's shape, carrying the request's id (the same one the
/// `x-amzn-RequestId` header carries).
pub(super) fn response(action: &str, namespace: &str, result: &str, request_id: &str) -> String {
    let result = if result.is_empty() { String::new() } else { format!("<{action}Result>{result}</{action}Result>") };
    format!(
        "<{action}Response xmlns=\"{namespace}\">{result}<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{action}Response>"
    )
}

/// ISO 8601 in UTC, as the query protocol's timestamps.
pub(super) fn iso(secs: i64) -> String {
    audit_event::EventTime::from_unix(secs, 0).to_string()
}

/// Escapes text for XML content.
pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
}
