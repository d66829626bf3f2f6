//! What a validation finds wrong: a [`Violation`] names the field (as a JSON path), the [`Rule`]
//! broken, the `PutAuditEvents` per-entry [`ErrorCode`] it corresponds to, and a human message.

use std::fmt;

use serde::Serialize;

/// The per-entry error codes of `PutAuditEvents` (`failed[].errorCode`), as CloudTrail documents them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum ErrorCode {
    /// A required field is missing (or empty).
    FieldNotFound,
    /// A field is longer, or an object larger, than its limit.
    FieldTooLong,
    /// A value has the wrong type or form, or the JSON is malformed.
    InvalidData,
    /// `eventDataChecksum` does not match the SHA-256 of `eventData`.
    InvalidChecksum,
    /// `recipientAccountId` is not the account that owns the channel.
    InvalidRecipient,
    /// `eventSource` is not acceptable (here: unknown to the catalog).
    InvalidEventSource,
}

impl ErrorCode {
    /// The code exactly as `PutAuditEvents` returns it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::FieldNotFound => "FieldNotFound",
            ErrorCode::FieldTooLong => "FieldTooLong",
            ErrorCode::InvalidData => "InvalidData",
            ErrorCode::InvalidChecksum => "InvalidChecksum",
            ErrorCode::InvalidRecipient => "InvalidRecipient",
            ErrorCode::InvalidEventSource => "InvalidEventSource",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every rule the validator checks. The first group is CloudTrail's integration schema; the
/// `Catalog*` group is added by the application catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// The text is not well-formed JSON.
    Json,
    /// `eventData` (or a nested object) is not a JSON object.
    NotObject,
    /// A string holds a `\u` escape of half a UTF-16 surrogate pair without its other half,
    /// which stands for no character (JSON parsers refuse it when they read the string).
    Surrogate,
    /// A required field is missing, null or empty.
    Required,
    /// A field has the wrong JSON type.
    Type,
    /// A string field is longer than its limit (in characters).
    MaxLength,
    /// An object field serializes to more bytes than its limit.
    MaxSize,
    /// The whole `eventData` is larger than a `PutAuditEvents` request may be.
    EventSize,
    /// A field the integration schema does not have.
    UnknownField,
    /// The same key appears twice in one object.
    DuplicateKey,
    /// `eventTime` is not a UTC timestamp in an accepted form.
    EventTime,
    /// `sourceIPAddress` is not an IPv4 or IPv6 address.
    IpAddress,
    /// `recipientAccountId` is not a 12-digit AWS account id.
    AccountId,
    /// `recipientAccountId` differs from the account that owns the channel.
    Recipient,
    /// `eventDataChecksum` does not match.
    Checksum,
    /// `eventSource` is not an application of the catalog.
    CatalogEventSource,
    /// `eventName` is not an event type of its application.
    CatalogEventName,
    /// `UID` does not have the form the application's catalog entry requires.
    CatalogUid,
    /// A required request parameter of the event type is missing.
    CatalogParameterMissing,
    /// A request parameter the event type does not define.
    CatalogParameterUnknown,
    /// A request parameter has the wrong type or form.
    CatalogParameterType,
}

impl Rule {
    /// Every rule, for exhaustive tests and documentation.
    pub const ALL: [Rule; 21] = [
        Rule::Json,
        Rule::NotObject,
        Rule::Surrogate,
        Rule::Required,
        Rule::Type,
        Rule::MaxLength,
        Rule::MaxSize,
        Rule::EventSize,
        Rule::UnknownField,
        Rule::DuplicateKey,
        Rule::EventTime,
        Rule::IpAddress,
        Rule::AccountId,
        Rule::Recipient,
        Rule::Checksum,
        Rule::CatalogEventSource,
        Rule::CatalogEventName,
        Rule::CatalogUid,
        Rule::CatalogParameterMissing,
        Rule::CatalogParameterUnknown,
        Rule::CatalogParameterType,
    ];

    /// The `PutAuditEvents` per-entry error code this rule corresponds to.
    pub fn code(self) -> ErrorCode {
        use ErrorCode::*;
        match self {
            Rule::Required | Rule::CatalogParameterMissing => FieldNotFound,
            Rule::MaxLength | Rule::MaxSize | Rule::EventSize => FieldTooLong,
            Rule::Checksum => InvalidChecksum,
            Rule::Recipient => InvalidRecipient,
            Rule::CatalogEventSource => InvalidEventSource,
            Rule::Json
            | Rule::NotObject
            | Rule::Surrogate
            | Rule::Type
            | Rule::UnknownField
            | Rule::DuplicateKey
            | Rule::EventTime
            | Rule::IpAddress
            | Rule::AccountId
            | Rule::CatalogEventName
            | Rule::CatalogUid
            | Rule::CatalogParameterUnknown
            | Rule::CatalogParameterType => InvalidData,
        }
    }

    /// The rule's stable snake_case name, as used in JSON output.
    pub fn name(self) -> &'static str {
        match self {
            Rule::Json => "json",
            Rule::NotObject => "not_object",
            Rule::Surrogate => "lone_surrogate",
            Rule::Required => "required",
            Rule::Type => "type",
            Rule::MaxLength => "max_length",
            Rule::MaxSize => "max_size",
            Rule::EventSize => "event_size",
            Rule::UnknownField => "unknown_field",
            Rule::DuplicateKey => "duplicate_key",
            Rule::EventTime => "event_time",
            Rule::IpAddress => "ip_address",
            Rule::AccountId => "account_id",
            Rule::Recipient => "recipient",
            Rule::Checksum => "checksum",
            Rule::CatalogEventSource => "catalog_event_source",
            Rule::CatalogEventName => "catalog_event_name",
            Rule::CatalogUid => "catalog_uid",
            Rule::CatalogParameterMissing => "catalog_parameter_missing",
            Rule::CatalogParameterUnknown => "catalog_parameter_unknown",
            Rule::CatalogParameterType => "catalog_parameter_type",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One thing wrong with an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// JSON path of the offending field, rooted at `eventData` (e.g. `eventData.userIdentity.type`).
    pub path: String,
    /// The rule broken.
    pub rule: Rule,
    /// What is wrong with the value, for a human.
    pub message: String,
    /// Byte offset in the validated text of the offending value (or of the object a missing field
    /// belongs to), when known. Callers turn it into a line and column.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<usize>,
}

impl Violation {
    /// The `PutAuditEvents` per-entry error code of this violation.
    pub fn code(&self) -> ErrorCode {
        self.rule.code()
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} [{}/{}]", self.path, self.message, self.code(), self.rule)
    }
}

/// Quotes a value for a message, shortened so a huge value never floods the output.
pub(crate) fn quote(value: &str) -> String {
    const MAX: usize = 64;
    if value.chars().count() <= MAX {
        format!("{value:?}")
    } else {
        let head: String = value.chars().take(MAX).collect();
        format!("{head:?}… ({} characters)", value.chars().count())
    }
}
