//! The limits of CloudTrail Lake's `PutAuditEvents` and integration event schema, in one place.
//!
//! CloudTrail writes "100 kB" and "28 kB"; we read kB as KiB (1,024 bytes), measured on the JSON
//! text of the object as submitted.

/// Most entries in one `PutAuditEvents` request.
pub const MAX_EVENTS_PER_REQUEST: usize = 100;
/// Most bytes of one serialized `PutAuditEvents` request body (1 MiB).
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;
/// Longest `AuditEvent.id`, in characters.
pub const MAX_ENTRY_ID_LEN: usize = 128;
/// Largest `eventData.requestParameters`, in bytes.
pub const MAX_REQUEST_PARAMETERS_BYTES: usize = 100 * 1024;
/// Largest `eventData.responseElements`, in bytes.
pub const MAX_RESPONSE_ELEMENTS_BYTES: usize = 100 * 1024;
/// Largest `eventData.additionalEventData`, in bytes.
pub const MAX_ADDITIONAL_EVENT_DATA_BYTES: usize = 28 * 1024;
