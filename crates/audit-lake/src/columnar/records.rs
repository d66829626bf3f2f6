//! Stored records as Arrow: the schema of an event data store's table and the builder that turns
//! the lake's rows (ids, times, channel, the producer's `eventData` text) into record batches.
//!
//! The schema is CloudTrail Lake's stored-record schema for non-AWS events (the reference's
//! §1.4) with the field names in the case the events use: `eventID`, `eventTime` (a timestamp, the
//! only column of that type), `eventData.userIdentity.principalId`, ... The SQL front end matches
//! names case-insensitively, so `eventdata.useridentity.principalid` reads the same column.
//!
//! `requestParameters`, `responseElements`, `additionalEventData` and `userIdentity.details` are
//! CloudTrail's `map<string,string>`. They are kept as the JSON text of the object: the SQL front
//! end reads a key with `element_at(m, 'key')` or `m['key']` (a string value as the string, any
//! other value as its JSON text, a missing key as NULL — what the map would give), and nested
//! struct leaves stay plain columns, so a query reads only the leaves it names. Each request
//! parameter the catalog declares is also a leaf of `eventData` of its own (see [`super::params`]).

use std::sync::{Arc, OnceLock};

use datafusion::arrow::{
    array::{ArrayRef, RecordBatch, StringBuilder, StructArray, TimestampMillisecondBuilder},
    buffer::NullBuffer,
    datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit},
};
use serde::Deserialize;
use serde_json::value::RawValue;

pub use crate::store::Row;

use super::params;
use audit_event::{
    EventTime,
    record::{EVENT_CATEGORY, EVENT_TYPE, EVENT_VERSION},
};

/// The fields kept as JSON text (CloudTrail's `map<string,string>` columns).
pub const JSON_FIELDS: [&str; 4] = ["requestParameters", "responseElements", "additionalEventData", "details"];

fn utf8(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

fn user_identity_fields() -> Fields {
    Fields::from(vec![utf8("type", false), utf8("principalId", false), utf8("details", true)])
}

/// `eventData`'s fields, with a parameter column for each of `keys`. Each may be NULL (absent
/// ones are; present ones are checked at ingestion): the struct a query builds for a file written
/// with other parameter columns (`sql::store_frame`) has nullable fields only, and both must be
/// one type for a query to read them together without converting whole structs.
fn event_data_fields(keys: &[String]) -> Fields {
    let mut fields = vec![
        utf8("version", true),
        Field::new("userIdentity", DataType::Struct(user_identity_fields()), true),
        utf8("userAgent", true),
        utf8("eventSource", true),
        utf8("eventName", true),
        utf8("eventTime", true),
        utf8("UID", true),
        utf8("requestParameters", true),
        utf8("responseElements", true),
        utf8("errorCode", true),
        utf8("errorMessage", true),
        utf8("sourceIPAddress", true),
        utf8("recipientAccountId", true),
        utf8("additionalEventData", true),
    ];
    fields.extend(keys.iter().map(|k| utf8(&params::column(k), true)));
    Fields::from(fields)
}

fn addendum_fields() -> Fields {
    Fields::from(vec![
        utf8("reason", true),
        utf8("updatedFields", true),
        utf8("originalUID", true),
        utf8("originalEventID", true),
    ])
}

fn metadata_fields() -> Fields {
    Fields::from(vec![utf8("ingestionTime", false), utf8("channelARN", false)])
}

/// The Arrow schema of every event data store's table, as files are written now (with a parameter
/// column for each of [`params::keys`]).
pub fn schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA.get_or_init(|| schema_with(params::keys())).clone()
}

/// The schema with parameter columns for `keys` only: that of a file written when the catalog
/// declared those.
pub fn schema_with(keys: &[String]) -> SchemaRef {
    Arc::new(Schema::new(vec![
        utf8("eventVersion", false),
        utf8("eventCategory", false),
        utf8("eventType", false),
        utf8("eventID", false),
        Field::new("eventTime", DataType::Timestamp(TimeUnit::Millisecond, None), false),
        utf8("awsRegion", false),
        utf8("recipientAccountId", false),
        Field::new("addendum", DataType::Struct(addendum_fields()), true),
        Field::new("metadata", DataType::Struct(metadata_fields()), false),
        Field::new("eventData", DataType::Struct(event_data_fields(keys)), false),
    ]))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventDataIn<'a> {
    #[serde(borrow)]
    version: Option<Text<'a>>,
    #[serde(borrow)]
    user_identity: Option<IdentityIn<'a>>,
    #[serde(borrow)]
    user_agent: Option<Text<'a>>,
    #[serde(borrow)]
    event_source: Option<Text<'a>>,
    #[serde(borrow)]
    event_name: Option<Text<'a>>,
    #[serde(borrow)]
    event_time: Option<Text<'a>>,
    #[serde(borrow, rename = "UID")]
    uid: Option<Text<'a>>,
    #[serde(borrow)]
    request_parameters: Option<&'a RawValue>,
    #[serde(borrow)]
    response_elements: Option<&'a RawValue>,
    #[serde(borrow)]
    error_code: Option<Text<'a>>,
    #[serde(borrow)]
    error_message: Option<Text<'a>>,
    #[serde(borrow, rename = "sourceIPAddress")]
    source_ip_address: Option<Text<'a>>,
    #[serde(borrow)]
    recipient_account_id: Option<Text<'a>>,
    #[serde(borrow)]
    additional_event_data: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IdentityIn<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Text<'a>>,
    #[serde(borrow)]
    principal_id: Option<Text<'a>>,
    #[serde(borrow)]
    details: Option<&'a RawValue>,
}

/// A JSON string, borrowed when it has no escapes.
#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] std::borrow::Cow<'a, str>);

fn text<'a>(value: &'a Option<Text<'_>>) -> Option<&'a str> {
    value.as_ref().map(|t| t.0.as_ref())
}

/// The JSON text of a map column, or NULL for an absent or `null` value.
fn json(value: Option<&RawValue>) -> Option<&str> {
    value.map(RawValue::get).filter(|s| *s != "null")
}

/// A stored event's fields, decoded.
fn parse(row: Row<'_>) -> Result<EventDataIn<'_>, String> {
    serde_json::from_str(row.event_data).map_err(|e| format!("event {} does not decode: {e}", row.event_id))
}

/// Builds record batches of [`schema`] from [`Row`]s.
pub struct RecordsBuilder {
    event_version: StringBuilder,
    event_category: StringBuilder,
    event_type: StringBuilder,
    event_id: StringBuilder,
    event_time: TimestampMillisecondBuilder,
    aws_region: StringBuilder,
    recipient: StringBuilder,
    ingestion_time: StringBuilder,
    channel_arn: StringBuilder,
    data: [StringBuilder; 13],
    identity: [StringBuilder; 3],
    /// One per key of [`params::keys`].
    params: Vec<StringBuilder>,
    rows: usize,
    /// The last ingestion second and its text (rows of one commit share it).
    ingestion_text: (i64, String),
    /// Scratch space of [`params::values`], kept between rows.
    values: Vec<Option<std::borrow::Cow<'static, str>>>,
    seen: Vec<bool>,
}

/// Positions of the `eventData` string leaves in [`RecordsBuilder::data`] (the struct's fields
/// but `userIdentity`).
const DATA_LEAVES: usize = 13;

impl Default for RecordsBuilder {
    fn default() -> Self {
        RecordsBuilder {
            event_version: StringBuilder::new(),
            event_category: StringBuilder::new(),
            event_type: StringBuilder::new(),
            event_id: StringBuilder::new(),
            event_time: TimestampMillisecondBuilder::new(),
            aws_region: StringBuilder::new(),
            recipient: StringBuilder::new(),
            ingestion_time: StringBuilder::new(),
            channel_arn: StringBuilder::new(),
            data: std::array::from_fn(|_| StringBuilder::new()),
            identity: std::array::from_fn(|_| StringBuilder::new()),
            params: params::keys().iter().map(|_| StringBuilder::new()).collect(),
            rows: 0,
            ingestion_text: (i64::MIN, String::new()),
            values: Vec::new(),
            seen: Vec::new(),
        }
    }
}

impl RecordsBuilder {
    /// A builder whose buffers have room for `rows` rows like those of `sizes`' batch (its bytes
    /// per row, with an eighth to spare), so that building the batch never reallocates: a growing
    /// buffer copies itself into fresh memory, and the kernel zeroes every fresh page (growth cost
    /// the compactor a third of its time). Room not written to takes no memory.
    pub fn with_sizes(sizes: &Sizes, rows: usize) -> RecordsBuilder {
        let mut next = sizes.0.iter().map(|&(built, bytes)| {
            let per_row = bytes.div_ceil(built.max(1));
            StringBuilder::with_capacity(rows, (per_row * rows).saturating_add(per_row * rows / 8 + 1024))
        });
        let mut take = || next.next().unwrap_or_default();
        RecordsBuilder {
            event_version: take(),
            event_category: take(),
            event_type: take(),
            event_id: take(),
            aws_region: take(),
            recipient: take(),
            ingestion_time: take(),
            channel_arn: take(),
            data: std::array::from_fn(|_| take()),
            identity: std::array::from_fn(|_| take()),
            params: params::keys().iter().map(|_| take()).collect(),
            event_time: TimestampMillisecondBuilder::with_capacity(rows),
            ..RecordsBuilder::default()
        }
    }

    /// Rows appended since the last [`RecordsBuilder::finish`].
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether no row was appended since the last [`RecordsBuilder::finish`].
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends one stored event. The `eventData` was validated at ingestion; a stored text that
    /// does not decode as an event (an older lake's, or a damaged one) is reported, and nothing is
    /// appended.
    pub fn append(&mut self, row: Row<'_>) -> Result<(), String> {
        let data = parse(row)?;
        let mut arn = row.channel_arn.split(':');
        let (region, account) = (arn.nth(3).unwrap_or(""), arn.next().unwrap_or(""));
        self.event_version.append_value(EVENT_VERSION);
        self.event_category.append_value(EVENT_CATEGORY);
        self.event_type.append_value(EVENT_TYPE);
        self.event_id.append_value(row.event_id);
        self.event_time.append_value(row.event_time_ms.div_euclid(1000) * 1000);
        self.aws_region.append_value(region);
        self.recipient.append_value(account);
        let second = row.ingestion_time_ms.div_euclid(1000);
        if self.ingestion_text.0 != second {
            self.ingestion_text = (second, EventTime::from_unix(second, 0).to_string());
        }
        self.ingestion_time.append_value(&self.ingestion_text.1);
        self.channel_arn.append_value(row.channel_arn);

        let identity = data.user_identity.as_ref();
        self.identity[0].append_value(identity.and_then(|i| text(&i.kind)).unwrap_or(""));
        self.identity[1].append_value(identity.and_then(|i| text(&i.principal_id)).unwrap_or(""));
        self.identity[2].append_option(json(identity.and_then(|i| i.details)));

        let leaves: [Option<&str>; DATA_LEAVES] = [
            Some(text(&data.version).unwrap_or("")),
            text(&data.user_agent),
            Some(text(&data.event_source).unwrap_or("")),
            Some(text(&data.event_name).unwrap_or("")),
            Some(text(&data.event_time).unwrap_or("")),
            Some(text(&data.uid).unwrap_or("")),
            json(data.request_parameters),
            json(data.response_elements),
            text(&data.error_code),
            text(&data.error_message),
            text(&data.source_ip_address),
            text(&data.recipient_account_id),
            json(data.additional_event_data),
        ];
        for (builder, value) in self.data.iter_mut().zip(leaves) {
            builder.append_option(value);
        }
        let mut values: Vec<Option<std::borrow::Cow<'_, str>>> = std::mem::take(&mut self.values);
        let mut seen = std::mem::take(&mut self.seen);
        params::values(json(data.request_parameters), &mut values, &mut seen);
        for (builder, value) in self.params.iter_mut().zip(values.drain(..)) {
            builder.append_option(value);
        }
        // Kept for the next row, empty (their borrows end here).
        self.values = values.into_iter().map(|_| None).collect();
        self.seen = seen;
        self.rows += 1;
        Ok(())
    }

    /// The rows appended so far as one batch, and the sizes of its buffers; the builder starts
    /// over empty.
    pub fn finish_sized(&mut self) -> (RecordBatch, Sizes) {
        let strings = [
            &self.event_version,
            &self.event_category,
            &self.event_type,
            &self.event_id,
            &self.aws_region,
            &self.recipient,
            &self.ingestion_time,
            &self.channel_arn,
        ];
        let sizes = strings
            .into_iter()
            .chain(&self.data)
            .chain(&self.identity)
            .chain(&self.params)
            .map(|b| (datafusion::arrow::array::ArrayBuilder::len(b), b.values_slice().len()))
            .collect();
        (self.finish(), Sizes(sizes))
    }

    /// The rows appended so far as one batch; the builder starts over empty.
    pub fn finish(&mut self) -> RecordBatch {
        let rows = std::mem::take(&mut self.rows);
        let identity = StructArray::new(
            user_identity_fields(),
            self.identity.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef).collect(),
            None,
        );
        let mut data: Vec<ArrayRef> = self.data.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef).collect();
        data.insert(1, Arc::new(identity));
        data.extend(self.params.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
        let event_data = StructArray::new(event_data_fields(params::keys()), data, None);
        let addendum = StructArray::new(
            addendum_fields(),
            (0..4).map(|_| Arc::new(StringBuilder::new().finish_null(rows)) as ArrayRef).collect(),
            Some(NullBuffer::new_null(rows)),
        );
        let metadata = StructArray::new(
            metadata_fields(),
            vec![Arc::new(self.ingestion_time.finish()), Arc::new(self.channel_arn.finish())],
            None,
        );
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.event_version.finish()),
            Arc::new(self.event_category.finish()),
            Arc::new(self.event_type.finish()),
            Arc::new(self.event_id.finish()),
            Arc::new(self.event_time.finish()),
            Arc::new(self.aws_region.finish()),
            Arc::new(self.recipient.finish()),
            Arc::new(addendum),
            Arc::new(metadata),
            Arc::new(event_data),
        ];
        RecordBatch::try_new(schema(), columns).expect("the builder follows the schema")
    }
}

/// Row `row` of an `eventData` struct column as the JSON object the event sent (its fields in
/// schema order; absent and `null` fields left out; map fields embedded as their JSON text; the
/// parameter columns, copies of `requestParameters` keys, left out).
pub fn event_data_json(event_data: &StructArray, row: usize) -> String {
    use datafusion::arrow::array::{Array, AsArray};
    fn object(array: &StructArray, row: usize, out: &mut String) {
        out.push('{');
        let mut first = true;
        for (field, column) in array.fields().iter().zip(array.columns()) {
            if column.is_null(row) || params::is_column(field.name()) {
                continue;
            }
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str(&serde_json::to_string(field.name()).expect("a string serializes"));
            out.push(':');
            match column.data_type() {
                DataType::Struct(_) => object(column.as_struct(), row, out),
                DataType::Utf8 if JSON_FIELDS.contains(&field.name().as_str()) => {
                    out.push_str(column.as_string::<i32>().value(row));
                }
                DataType::Utf8 => {
                    out.push_str(
                        &serde_json::to_string(column.as_string::<i32>().value(row)).expect("a string serializes"),
                    );
                }
                // No other type is written; a file that had one would not read as a store's.
                _ => out.push_str("null"),
            }
        }
        out.push('}');
    }
    let mut out = String::new();
    object(event_data, row, &mut out);
    out
}

/// The row count and value bytes of each of a builder's string buffers.
#[derive(Debug, Clone, Default)]
pub struct Sizes(Vec<(usize, usize)>);

impl Sizes {
    /// The rows of the batch measured.
    pub fn rows(&self) -> usize {
        self.0.first().map_or(0, |s| s.0)
    }
}

trait FinishNull {
    fn finish_null(self, rows: usize) -> datafusion::arrow::array::StringArray;
}

impl FinishNull for StringBuilder {
    fn finish_null(mut self, rows: usize) -> datafusion::arrow::array::StringArray {
        self.append_nulls(rows);
        self.finish()
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Array, AsArray};

    use super::*;

    #[test]
    fn a_row_fills_every_column_and_maps_stay_json() {
        let mut builder = RecordsBuilder::default();
        let data = r#"{"version":"1","userIdentity":{"type":"USER","principalId":"alice","details":{"org":"nc"}},
            "eventSource":"core.klarity.nordcloud.com","eventName":"DeleteRule","eventTime":"2026-01-02T03:04:05Z",
            "UID":"u-1","requestParameters":{"ruleId":"r-1","n":3},"recipientAccountId":"123456789012"}"#;
        builder
            .append(Row {
                event_id: "e-1",
                event_time_ms: 1_767_323_045_678,
                ingestion_time_ms: 1_767_323_050_000,
                channel_arn: "arn:aws:cloudtrail:eu-west-1:123456789012:channel/c-1",
                event_data: data,
            })
            .unwrap();
        let batch = builder.finish();
        assert_eq!(batch.num_rows(), 1);
        assert!(builder.is_empty());
        let region = batch.column_by_name("awsRegion").unwrap().as_string::<i32>();
        assert_eq!(region.value(0), "eu-west-1");
        let event_data = batch.column_by_name("eventData").unwrap().as_struct();
        let params = event_data.column_by_name("requestParameters").unwrap().as_string::<i32>();
        assert_eq!(params.value(0), r#"{"ruleId":"r-1","n":3}"#);
        assert!(event_data.column_by_name("responseElements").unwrap().is_null(0));
        let identity = event_data.column_by_name("userIdentity").unwrap().as_struct();
        assert_eq!(identity.column_by_name("principalId").unwrap().as_string::<i32>().value(0), "alice");
        assert!(batch.column_by_name("addendum").unwrap().is_null(0));
        let time = batch.column_by_name("eventTime").unwrap();
        assert_eq!(
            time.as_primitive::<datafusion::arrow::datatypes::TimestampMillisecondType>().value(0),
            1_767_323_045_000
        );
    }

    #[test]
    fn a_sized_builder_builds_the_same_batch() {
        let data = r#"{"version":"1","userIdentity":{"type":"USER","principalId":"p"},"eventSource":"s","eventName":"n","eventTime":"t","UID":"u","requestParameters":{"a":1}}"#;
        let row = Row {
            event_id: "e",
            event_time_ms: 5000,
            ingestion_time_ms: 7000,
            channel_arn: "arn:aws:cloudtrail:r:1:channel/c",
            event_data: data,
        };
        let mut first = RecordsBuilder::default();
        first.append(row).unwrap();
        first.append(row).unwrap();
        let (batch, sizes) = first.finish_sized();
        let mut sized = RecordsBuilder::with_sizes(&sizes, 2);
        sized.append(row).unwrap();
        sized.append(row).unwrap();
        assert_eq!(sized.finish(), batch);
    }

    #[test]
    fn a_stored_text_that_is_not_an_event_is_reported() {
        let mut builder = RecordsBuilder::default();
        let row = Row { event_id: "e-9", event_time_ms: 0, ingestion_time_ms: 0, channel_arn: "", event_data: "[1]" };
        let err = builder.append(row).unwrap_err();
        assert!(err.contains("e-9"), "{err}");
        assert!(builder.is_empty());
    }
}
