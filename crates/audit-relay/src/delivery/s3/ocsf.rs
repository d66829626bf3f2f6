//! Events as OCSF 1.3 API Activity (class 6003), written as zstd Parquet for Amazon Security Lake's
//! custom sources. `docs/destinations.md` documents the mapping; in short:
//!
//! | OCSF | from the event |
//! |---|---|
//! | `time`, `metadata.original_time` | `eventTime` (ms since the epoch; the text) |
//! | `metadata.uid` | `UID` |
//! | `metadata.logged_time` | when the relay accepted it |
//! | `metadata.version`, `metadata.product` | `1.3.0`; Klarity Suite by Nordcloud |
//! | `api.operation`, `api.service.name` | `eventName`, `eventSource` |
//! | `activity_id` (`type_uid` = 600300 + it) | the verb of `eventName`: Create/Add/Register/… 1, Get/List/Describe/… 2, Update/Set/Put/… 3, Delete/Remove/… 4, else 99 |
//! | `status_id`, `status`, `status_code`, `status_detail`, `api.response.error`/`message` | 1 Success, or 2 Failure with `errorCode` and `errorMessage` |
//! | `actor.user.uid`, `.type`, `.name`, `.account.uid` | `userIdentity.principalId`, `.type`, `details.userName` (or `email`, `name`), `recipientAccountId` |
//! | `src_endpoint.ip`, `src_endpoint.svc_name` | `sourceIPAddress`; `eventSource` |
//! | `http_request.user_agent` | `userAgent` |
//! | `cloud.provider`, `.region`, `.account.uid` | `AWS`; the tenant's region; `recipientAccountId` |
//! | `unmapped` (map of JSON texts) | `requestParameters`, `responseElements`, `additionalEventData`, `userIdentity.details` |
//!
//! `category_uid` is 6 (Application Activity), `class_uid` 6003, `severity_id` 1 (Informational).

use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, Schema};
use serde_json::{Map, Value, json};

use crate::{registry::Tenant, spool::Pending};

/// The OCSF version written.
pub const OCSF_VERSION: &str = "1.3.0";

fn utf8(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}

fn int(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Int32, nullable)
}

fn object(name: &str, nullable: bool, fields: Vec<Field>) -> Field {
    Field::new(name, DataType::Struct(Fields::from(fields)), nullable)
}

/// The Parquet schema: the class's required attributes (not null) and the recommended and optional
/// ones the events fill.
pub fn schema() -> Arc<Schema> {
    let account = || object("account", true, vec![utf8("uid")]);
    let unmapped = Field::new_map(
        "unmapped",
        "entries",
        Field::new("key", DataType::Utf8, false),
        Field::new("value", DataType::Utf8, true),
        false,
        true,
    );
    Arc::new(Schema::new(vec![
        int("activity_id", false),
        utf8("activity_name"),
        int("category_uid", false),
        utf8("category_name"),
        int("class_uid", false),
        utf8("class_name"),
        Field::new("type_uid", DataType::Int64, false),
        utf8("type_name"),
        int("severity_id", false),
        utf8("severity"),
        int("status_id", true),
        utf8("status"),
        utf8("status_code"),
        utf8("status_detail"),
        Field::new("time", DataType::Int64, false),
        object(
            "metadata",
            false,
            vec![
                Field::new("version", DataType::Utf8, false),
                utf8("uid"),
                object("product", false, vec![utf8("name"), utf8("vendor_name")]),
                utf8("original_time"),
                Field::new("logged_time", DataType::Int64, true),
            ],
        ),
        object(
            "api",
            false,
            vec![
                Field::new("operation", DataType::Utf8, false),
                object("service", true, vec![utf8("name")]),
                object("response", true, vec![utf8("error"), utf8("message")]),
            ],
        ),
        object("actor", false, vec![object("user", true, vec![utf8("uid"), utf8("type"), utf8("name"), account()])]),
        object("src_endpoint", false, vec![utf8("ip"), utf8("svc_name")]),
        object("http_request", true, vec![utf8("user_agent")]),
        object("cloud", false, vec![Field::new("provider", DataType::Utf8, false), utf8("region"), account()]),
        unmapped,
    ]))
}

/// The OCSF activity of an API operation, by the verb it starts with.
pub fn activity(event_name: &str) -> (i32, &'static str) {
    const VERBS: [(&[&str], i32, &str); 4] = [
        (&["Create", "Add", "Register", "Import", "Upload", "Attach", "Launch", "Issue"], 1, "Create"),
        (&["Get", "List", "Describe", "Read", "Search", "Lookup", "Export", "Download", "View"], 2, "Read"),
        (
            &[
                "Update", "Modify", "Set", "Put", "Change", "Edit", "Enable", "Disable", "Rename", "Assign", "Grant",
                "Revoke", "Restore", "Approve",
            ],
            3,
            "Update",
        ),
        (&["Delete", "Remove", "Deregister", "Detach", "Terminate", "Purge", "Unregister"], 4, "Delete"),
    ];
    // A verb counts when the next character starts a new word (`CreateBackup`, not `Settle`).
    let starts = |verb: &str| {
        event_name
            .strip_prefix(verb)
            .is_some_and(|rest| rest.is_empty() || !rest.starts_with(|c: char| c.is_lowercase()))
    };
    VERBS.iter().find(|(verbs, ..)| verbs.iter().any(|v| starts(v))).map_or((99, "Other"), |(_, id, name)| (*id, *name))
}

/// One event as an OCSF API Activity object.
pub fn event(tenant: &Tenant, pending: &Pending) -> Value {
    let e: Map<String, Value> = match serde_json::from_str(&pending.event_data) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let field = |name: &str| text(e.get(name));
    let identity = e.get("userIdentity").and_then(Value::as_object);
    let details = identity.and_then(|i| i.get("details")).and_then(Value::as_object);
    let event_name = field("eventName").unwrap_or_default();
    let (activity_id, activity_name) = activity(&event_name);
    let account = field("recipientAccountId").unwrap_or_else(|| tenant.account().to_owned());
    let error = field("errorCode");
    let mut unmapped = Map::new();
    for name in ["requestParameters", "responseElements", "additionalEventData"] {
        if let Some(value) = e.get(name).filter(|v| !v.is_null()) {
            unmapped.insert(name.into(), Value::String(value.to_string()));
        }
    }
    if let Some(details) = details {
        unmapped.insert("userIdentity.details".into(), Value::String(Value::Object(details.clone()).to_string()));
    }
    json!({
        "activity_id": activity_id,
        "activity_name": if activity_id == 99 { event_name.clone() } else { activity_name.to_owned() },
        "category_uid": 6,
        "category_name": "Application Activity",
        "class_uid": 6003,
        "class_name": "API Activity",
        "type_uid": 600_300 + i64::from(activity_id),
        "type_name": format!("API Activity: {activity_name}"),
        "severity_id": 1,
        "severity": "Informational",
        "status_id": if error.is_some() { 2 } else { 1 },
        "status": if error.is_some() { "Failure" } else { "Success" },
        "status_code": error,
        "status_detail": field("errorMessage"),
        "time": field("eventTime")
            .and_then(|t| audit_event::EventTime::parse(&t).ok())
            .map_or(pending.accepted_ms, audit_event::EventTime::unix_millis),
        "metadata": {
            "version": OCSF_VERSION,
            "uid": field("UID"),
            "product": {"name": "Klarity Suite", "vendor_name": "Nordcloud"},
            "original_time": field("eventTime"),
            "logged_time": pending.accepted_ms,
        },
        "api": {
            "operation": event_name,
            "service": {"name": field("eventSource")},
            "response": {"error": error, "message": field("errorMessage")},
        },
        "actor": {"user": {
            "uid": text(identity.and_then(|i| i.get("principalId"))),
            "type": text(identity.and_then(|i| i.get("type"))),
            "name": details.and_then(|d| ["userName", "email", "name"].iter().find_map(|k| text(d.get(*k)))),
            "account": {"uid": account},
        }},
        "src_endpoint": {"ip": field("sourceIPAddress"), "svc_name": field("eventSource")},
        "http_request": {"user_agent": field("userAgent")},
        "cloud": {"provider": "AWS", "region": tenant.region(), "account": {"uid": account}},
        "unmapped": unmapped,
    })
}

/// Events (sorted by time) as one zstd Parquet file.
pub fn parquet(tenant: &Tenant, events: &[Pending]) -> Result<Vec<u8>, String> {
    let schema = schema();
    let mut decoder = arrow_json::ReaderBuilder::new(schema.clone())
        .with_batch_size(events.len().max(1))
        .build_decoder()
        .map_err(|e| e.to_string())?;
    let rows: Vec<Value> = events.iter().map(|p| event(tenant, p)).collect();
    decoder.serialize(&rows).map_err(|e| e.to_string())?;
    let properties = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::ZSTD(
            parquet::basic::ZstdLevel::try_new(3).map_err(|e| e.to_string())?,
        ))
        .set_created_by(format!("klarity-audit {}", env!("CARGO_PKG_VERSION")))
        .build();
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(Vec::new(), schema, Some(properties)).map_err(|e| e.to_string())?;
    while let Some(batch) = decoder.flush().map_err(|e| e.to_string())? {
        writer.write(&batch).map_err(|e| e.to_string())?;
    }
    writer.into_inner().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activities_follow_the_verb_of_the_operation() {
        assert_eq!(activity("CreateBackupPolicy"), (1, "Create"));
        assert_eq!(activity("ListImages"), (2, "Read"));
        assert_eq!(activity("UpdatePatchPlan"), (3, "Update"));
        assert_eq!(activity("DeleteUser"), (4, "Delete"));
        assert_eq!(activity("Settle"), (99, "Other"));
        assert_eq!(activity("Login"), (99, "Other"));
    }
}
