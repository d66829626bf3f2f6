//! The integration event as owned Rust types ([`EventData`]) and a typed builder
//! ([`EventBuilder`]) so that application code never writes JSON by hand.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    catalog::Catalog,
    error::InvalidEvent,
    time::EventTime,
    validate::{Stage, Validator},
};

/// The `eventData` of an integration event: what the source application provides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventData {
    /// Version of the event from its source (Klarity applications use `v1`).
    pub version: String,
    /// Who made the request.
    pub user_identity: UserIdentity,
    /// The agent through which the request was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// The application's event source.
    pub event_source: String,
    /// The event type.
    pub event_name: String,
    /// When it happened, UTC.
    pub event_time: String,
    /// The source's unique id of the request.
    #[serde(rename = "UID")]
    pub uid: String,
    /// Parameters of the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_parameters: Option<Map<String, Value>>,
    /// The response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_elements: Option<Map<String, Value>>,
    /// Error code, when the request failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// Error message, when the request failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// IPv4 or IPv6 address the request came from.
    #[serde(default, rename = "sourceIPAddress", skip_serializing_if = "Option::is_none")]
    pub source_ip_address: Option<String>,
    /// The AWS account that owns the channel (filled by the relay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_account_id: Option<String>,
    /// Anything else worth recording.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_event_data: Option<Map<String, Value>>,
}

/// `eventData.userIdentity`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserIdentity {
    /// Kind of identity, e.g. `USER` or `SERVICE` (free-form, at most 128 characters).
    #[serde(rename = "type")]
    pub kind: String,
    /// Unique id of the actor.
    pub principal_id: String,
    /// More about the identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Map<String, Value>>,
}

impl UserIdentity {
    /// An identity of `kind` (e.g. `USER`) for `principal_id`.
    pub fn new(kind: impl Into<String>, principal_id: impl Into<String>) -> Self {
        UserIdentity { kind: kind.into(), principal_id: principal_id.into(), details: None }
    }
}

impl EventData {
    /// Starts building an event of `event_name` from `event_source`.
    pub fn builder(event_source: impl Into<String>, event_name: impl Into<String>) -> EventBuilder {
        EventBuilder::new(event_source, event_name)
    }

    /// The event as compact JSON, the form sent as `AuditEvent.eventData`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("EventData always serializes")
    }
}

/// Builds an [`EventData`], filling sensible defaults: version `v1`, `eventTime` now, and a
/// fresh UUID v7 as `UID`. [`EventBuilder::build`] validates the result.
///
/// ```
/// use audit_event::{Catalog, EventData, UserIdentity};
///
/// let catalog = Catalog::embedded();
/// let event = EventData::builder("com.nordcloudapp.com.autopatcher", "baselinePatching.started")
///     .user(UserIdentity::new("SERVICE", "autopatcher-orchestrator"))
///     .param("machinesCount", 30)
///     .build_for(&catalog)
///     .unwrap();
/// assert_eq!(event.version, "v1");
/// ```
#[derive(Debug, Clone)]
pub struct EventBuilder {
    event: EventData,
}

impl EventBuilder {
    /// A builder for `event_name` from `event_source`.
    pub fn new(event_source: impl Into<String>, event_name: impl Into<String>) -> Self {
        EventBuilder {
            event: EventData {
                version: "v1".into(),
                user_identity: UserIdentity::new("", ""),
                user_agent: None,
                event_source: event_source.into(),
                event_name: event_name.into(),
                event_time: EventTime::now().to_string(),
                uid: uuid::Uuid::now_v7().to_string(),
                request_parameters: None,
                response_elements: None,
                error_code: None,
                error_message: None,
                source_ip_address: None,
                recipient_account_id: None,
                additional_event_data: None,
            },
        }
    }

    /// Sets the version (default `v1`).
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.event.version = version.into();
        self
    }

    /// Sets who acted.
    pub fn user(mut self, identity: UserIdentity) -> Self {
        self.event.user_identity = identity;
        self
    }

    /// Sets when it happened (default: now).
    pub fn time(mut self, time: EventTime) -> Self {
        self.event.event_time = time.to_string();
        self
    }

    /// Sets the source's request id (default: a new UUID v7). Keep it stable across retries.
    pub fn uid(mut self, uid: impl Into<String>) -> Self {
        self.event.uid = uid.into();
        self
    }

    /// Adds a request parameter.
    pub fn param(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.event.request_parameters.get_or_insert_with(Map::new).insert(key.into(), value.into());
        self
    }

    /// Adds a response element.
    pub fn response(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.event.response_elements.get_or_insert_with(Map::new).insert(key.into(), value.into());
        self
    }

    /// Adds a field of `additionalEventData`.
    pub fn additional(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.event.additional_event_data.get_or_insert_with(Map::new).insert(key.into(), value.into());
        self
    }

    /// Records that the request failed.
    pub fn error(mut self, code: impl Into<String>, message: impl Into<String>) -> Self {
        self.event.error_code = Some(code.into());
        self.event.error_message = Some(message.into());
        self
    }

    /// Sets the address the request came from.
    pub fn source_ip(mut self, ip: IpAddr) -> Self {
        self.event.source_ip_address = Some(ip.to_string());
        self
    }

    /// Sets the user agent.
    pub fn user_agent(mut self, agent: impl Into<String>) -> Self {
        self.event.user_agent = Some(agent.into());
        self
    }

    /// Sets the recipient account (the relay does this for applications).
    pub fn recipient(mut self, account_id: impl Into<String>) -> Self {
        self.event.recipient_account_id = Some(account_id.into());
        self
    }

    /// Finishes, checking CloudTrail's schema as an application submits to the relay.
    pub fn build(self) -> Result<EventData, InvalidEvent> {
        self.build_with(&Validator::new(Stage::Submit))
    }

    /// Finishes, checking the schema and `catalog` as an application submits to the relay.
    pub fn build_for(self, catalog: &Catalog) -> Result<EventData, InvalidEvent> {
        self.build_with(&Validator::new(Stage::Submit).with_catalog(catalog))
    }

    /// Finishes, checking with `validator`.
    pub fn build_with(self, validator: &Validator<'_>) -> Result<EventData, InvalidEvent> {
        let json = self.event.to_json();
        let checked = validator.validate(&json);
        if checked.is_valid() { Ok(self.event) } else { Err(InvalidEvent { violations: checked.violations }) }
    }
}
