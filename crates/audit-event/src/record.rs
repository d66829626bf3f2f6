//! The stored record: what CloudTrail Lake keeps for an ingested integration event, with the fields
//! it adds around the source's `eventData`.

use serde::{Deserialize, Serialize};

use crate::{event::EventData, time::EventTime};

/// `eventCategory` of every integration event.
pub const EVENT_CATEGORY: &str = "ActivityAuditLog";
/// `eventType` of every integration event.
pub const EVENT_TYPE: &str = "ActivityLog";
/// `eventVersion` we write. CloudTrail does not document its value for integration events.
pub const EVENT_VERSION: &str = "1.0";

/// An event as stored in an event data store. `E` is the producer's `eventData`: the typed
/// [`EventData`], or its text as a `&serde_json::value::RawValue` to embed it without parsing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredRecord<E = EventData> {
    /// Version of the stored-record format.
    pub event_version: String,
    /// Always [`EVENT_CATEGORY`].
    pub event_category: String,
    /// Always [`EVENT_TYPE`].
    pub event_type: String,
    /// The unique id CloudTrail assigned (a lowercase UUID).
    #[serde(rename = "eventID")]
    pub event_id: String,
    /// `eventData.eventTime`, normalised to UTC `YYYY-MM-DDTHH:MM:SSZ`.
    pub event_time: String,
    /// The region `PutAuditEvents` was called in.
    pub aws_region: String,
    /// The account that owns the channel.
    pub recipient_account_id: String,
    /// Set when a record corrects an earlier one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addendum: Option<Addendum>,
    /// Ingestion metadata.
    pub metadata: Metadata,
    /// The source's event.
    pub event_data: E,
}

/// Why and how a record was changed after ingestion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Addendum {
    /// The reason, e.g. `UPDATED_DATA`.
    pub reason: String,
    /// The fields that changed (with `UPDATED_DATA`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_fields: Option<String>,
    /// The original `UID` (with `UPDATED_DATA`).
    #[serde(default, rename = "originalUID", skip_serializing_if = "Option::is_none")]
    pub original_uid: Option<String>,
    /// The original `eventID` (with `UPDATED_DATA`).
    #[serde(default, rename = "originalEventID", skip_serializing_if = "Option::is_none")]
    pub original_event_id: Option<String>,
}

/// `metadata` of a stored record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    /// When CloudTrail ingested the event, UTC.
    pub ingestion_time: String,
    /// The channel the event arrived on.
    #[serde(rename = "channelARN")]
    pub channel_arn: String,
}

impl<E> StoredRecord<E> {
    /// Wraps an accepted event as the lake stores it. Times are kept to the whole second, UTC.
    pub fn new(
        event_data: E,
        event_id: impl Into<String>,
        event_time: EventTime,
        aws_region: impl Into<String>,
        recipient_account_id: impl Into<String>,
        channel_arn: impl Into<String>,
        ingestion_time: EventTime,
    ) -> StoredRecord<E> {
        StoredRecord {
            event_version: EVENT_VERSION.into(),
            event_category: EVENT_CATEGORY.into(),
            event_type: EVENT_TYPE.into(),
            event_id: event_id.into(),
            event_time: EventTime::from_unix(event_time.unix_seconds(), 0).to_string(),
            aws_region: aws_region.into(),
            recipient_account_id: recipient_account_id.into(),
            addendum: None,
            metadata: Metadata {
                ingestion_time: EventTime::from_unix(ingestion_time.unix_seconds(), 0).to_string(),
                channel_arn: channel_arn.into(),
            },
            event_data,
        }
    }
}
