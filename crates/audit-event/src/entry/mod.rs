//! The `PutAuditEvents` wire types (request entries and results) and the request-level rules:
//! entry ids, 1–100 entries, at most 1 MiB, no duplicate ids, and checksums.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::{
    checksum, limits,
    validate::{Checked, Validator},
    violation::{Rule, Violation, quote},
};

/// One entry of a `PutAuditEvents` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    /// The caller's id for the entry: 1–128 of `[-_A-Za-z0-9]`. Results refer to it.
    pub id: String,
    /// The `eventData` JSON object, as a string.
    pub event_data: String,
    /// base64(SHA-256(`event_data`)); verified by CloudTrail when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_data_checksum: Option<String>,
}

impl AuditEvent {
    /// An entry with its checksum set, as the relay always sends them.
    pub fn new(id: impl Into<String>, event_data: impl Into<String>) -> AuditEvent {
        let event_data = event_data.into();
        let event_data_checksum = Some(checksum::checksum(event_data.as_bytes()));
        AuditEvent { id: id.into(), event_data, event_data_checksum }
    }

    /// Validates the entry: its checksum (when present) and its `eventData`.
    pub fn validate<'a>(&'a self, validator: &Validator<'_>) -> Checked<'a> {
        let mut checked = validator.validate(&self.event_data);
        if let Some(claimed) = &self.event_data_checksum
            && !checksum::verify(self.event_data.as_bytes(), claimed)
        {
            checked.violations.insert(
                0,
                Violation {
                    path: "eventDataChecksum".into(),
                    rule: Rule::Checksum,
                    message: format!(
                        "{} is not base64(SHA-256(eventData)); the eventData bytes hash to {}",
                        quote(claimed),
                        checksum::checksum(self.event_data.as_bytes())
                    ),
                    offset: None,
                },
            );
        }
        checked
    }
}

/// The body of a `PutAuditEvents` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PutAuditEventsRequest {
    /// 1 to 100 entries.
    pub audit_events: Vec<AuditEvent>,
}

/// The body of a `PutAuditEvents` response (HTTP 200, even when entries failed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutAuditEventsResponse {
    /// Entries CloudTrail stored.
    pub successful: Vec<AuditEventResultEntry>,
    /// Entries CloudTrail refused.
    pub failed: Vec<ResultErrorEntry>,
}

/// A stored entry: the caller's id and the `eventID` CloudTrail assigned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEventResultEntry {
    /// The entry's id from the request.
    pub id: String,
    /// The id CloudTrail assigned to the stored event.
    #[serde(rename = "eventID")]
    pub event_id: String,
}

/// A refused entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultErrorEntry {
    /// The entry's id from the request.
    pub id: String,
    /// One of the per-entry codes ([`crate::ErrorCode`], or `Throttling`, `InternalFailure`, ...).
    pub error_code: String,
    /// Why.
    pub error_message: String,
}

/// A rule that applies to a whole `PutAuditEvents` request; breaking it fails the whole call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestRule {
    /// No entries.
    NoEvents,
    /// More than 100 entries.
    TooManyEvents,
    /// The serialized request exceeds 1 MiB.
    TooLarge,
    /// An entry id is empty, too long or has characters outside `[-_A-Za-z0-9]`.
    EntryId,
    /// Two entries share an id.
    DuplicateId,
}

impl RequestRule {
    /// The error code of the failed call: `DuplicatedAuditEventId` as modelled, else the
    /// generic `ValidationException` AWS uses for constraint violations.
    pub fn code(self) -> &'static str {
        match self {
            RequestRule::DuplicateId => "DuplicatedAuditEventId",
            _ => "ValidationException",
        }
    }
}

/// A broken request-level rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestViolation {
    /// The rule.
    pub rule: RequestRule,
    /// Where (`auditEvents` or `auditEvents[3].id`).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// Checks an entry id: 1–128 characters of `[-_A-Za-z0-9]`. The error completes "the id …".
pub fn check_entry_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("is empty; it must be 1 to 128 characters".into());
    }
    if id.len() > limits::MAX_ENTRY_ID_LEN {
        return Err(format!("is {} characters long; the limit is {}", id.chars().count(), limits::MAX_ENTRY_ID_LEN));
    }
    if let Some(bad) = id.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_')) {
        return Err(format!("{} contains {bad:?}; only letters, digits, '-' and '_' are allowed", quote(id)));
    }
    Ok(())
}

/// Checks the request-level rules of a `PutAuditEvents` request whose body was `body_len` bytes.
pub fn check_request(request: &PutAuditEventsRequest, body_len: usize) -> Vec<RequestViolation> {
    let mut found = Vec::new();
    let mut push = |rule, path: String, message: String| found.push(RequestViolation { rule, path, message });
    let n = request.audit_events.len();
    if n == 0 {
        push(RequestRule::NoEvents, "auditEvents".into(), "is empty; send 1 to 100 events".into());
    }
    if n > limits::MAX_EVENTS_PER_REQUEST {
        push(
            RequestRule::TooManyEvents,
            "auditEvents".into(),
            format!("has {n} events; one request carries at most {}", limits::MAX_EVENTS_PER_REQUEST),
        );
    }
    if body_len > limits::MAX_REQUEST_BYTES {
        push(
            RequestRule::TooLarge,
            "auditEvents".into(),
            format!("the request is {body_len} bytes; the limit is {} bytes (1 MiB)", limits::MAX_REQUEST_BYTES),
        );
    }
    let mut seen = HashSet::with_capacity(n);
    let mut reported = HashSet::new();
    for (i, entry) in request.audit_events.iter().enumerate() {
        if let Err(why) = check_entry_id(&entry.id) {
            push(RequestRule::EntryId, format!("auditEvents[{i}].id"), why);
        }
        if !seen.insert(entry.id.as_str()) && reported.insert(entry.id.as_str()) {
            push(
                RequestRule::DuplicateId,
                format!("auditEvents[{i}].id"),
                format!("{} is used by more than one entry; ids must be unique within a request", quote(&entry.id)),
            );
        }
    }
    found
}

#[cfg(test)]
mod tests;
