//! Validation of `eventData` against CloudTrail's integration event schema and, optionally, the
//! application catalog.
//!
//! [`Validator::validate`] reads the event once, borrowing from the input, and returns *every*
//! violation it finds together with the fields the relay and the lake need next ([`Checked`]).
//! Bad input is data, not an error: nothing here panics or fails on any input.

use std::{borrow::Cow, fmt, net::IpAddr};

use serde_json::value::RawValue;

use crate::{
    catalog::{Catalog, UidFormat},
    limits,
    raw::{self, Kind, Members, Object},
    suggest::{did_you_mean, suggest},
    time::{EVENT_TIME_FORM, EventTime},
    violation::{Rule, Violation, quote},
};

/// Which contract an event is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stage {
    /// As an application submits it to the relay: `recipientAccountId` may be absent, because the
    /// relay fills it from the tenant's channel.
    Submit,
    /// As sent to `PutAuditEvents`: complete, `recipientAccountId` required.
    #[default]
    Put,
}

/// Checks events. Cheap to build; holds only references and settings.
#[derive(Debug, Clone, Default)]
pub struct Validator<'c> {
    catalog: Option<&'c Catalog>,
    stage: Stage,
    channel_owner: Option<String>,
}

/// The outcome of validating one `eventData`: the violations, and the fields later stages need
/// (each `None` when absent or unusable).
#[derive(Debug, Clone, Default)]
pub struct Checked<'a> {
    /// Every violation found, in field order. Empty means valid.
    pub violations: Vec<Violation>,
    /// `eventSource`.
    pub event_source: Option<Cow<'a, str>>,
    /// `eventName`.
    pub event_name: Option<Cow<'a, str>>,
    /// `UID`.
    pub uid: Option<Cow<'a, str>>,
    /// `recipientAccountId`.
    pub recipient_account_id: Option<Cow<'a, str>>,
    /// `eventTime`, parsed.
    pub event_time: Option<EventTime>,
    /// Which fields the relay may fill were absent as keys (not merely null), so that it can add
    /// them to the text without duplicating a key.
    pub absent: Absent,
}

/// Fields that were absent from the object (the key not there at all).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Absent {
    /// `UID`.
    pub uid: bool,
    /// `recipientAccountId`.
    pub recipient_account_id: bool,
}

impl Checked<'_> {
    /// Whether no rule was broken.
    pub fn is_valid(&self) -> bool {
        self.violations.is_empty()
    }
}

/// What a known field must hold.
#[derive(Clone, Copy)]
enum Shape {
    /// A string of at most this many characters.
    Text(usize),
    /// A UTC timestamp string.
    Time,
    /// An IPv4 or IPv6 address string.
    Ip,
    /// A 12-digit account id string.
    Account,
    /// A JSON object of at most this many bytes.
    Object(Option<usize>),
    /// The `userIdentity` object.
    Identity,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Presence {
    Required,
    Optional,
    /// Required when sent to `PutAuditEvents`, optional when submitted to the relay.
    RequiredAtPut,
}

struct Field {
    name: &'static str,
    shape: Shape,
    presence: Presence,
    /// What to put there, for the message about a missing field.
    hint: &'static str,
}

const fn field(name: &'static str, shape: Shape, presence: Presence, hint: &'static str) -> Field {
    Field { name, shape, presence, hint }
}

use Presence::{Optional, Required, RequiredAtPut};

/// The integration event schema (`eventData`), in CloudTrail's order.
const EVENT_FIELDS: [Field; 14] = [
    field("version", Shape::Text(256), Required, "the event's version from its source, e.g. \"v1\""),
    field("userIdentity", Shape::Identity, Required, "an object with \"type\" and \"principalId\""),
    field("userAgent", Shape::Text(1024), Optional, ""),
    field(
        "eventSource",
        Shape::Text(1024),
        Required,
        "the application's event source, e.g. \"com.nordcloudapp.com.autobackup\"",
    ),
    field("eventName", Shape::Text(1024), Required, "the event type, e.g. \"backup.started\""),
    field("eventTime", Shape::Time, Required, "when it happened, YYYY-MM-DDTHH:MM:SSZ in UTC"),
    field("UID", Shape::Text(1024), Required, "the source's unique id of the request, e.g. a UUID"),
    field("requestParameters", Shape::Object(Some(limits::MAX_REQUEST_PARAMETERS_BYTES)), Optional, ""),
    field("responseElements", Shape::Object(Some(limits::MAX_RESPONSE_ELEMENTS_BYTES)), Optional, ""),
    field("errorCode", Shape::Text(256), Optional, ""),
    field("errorMessage", Shape::Text(256), Optional, ""),
    field("sourceIPAddress", Shape::Ip, Optional, ""),
    field(
        "recipientAccountId",
        Shape::Account,
        RequiredAtPut,
        "the 12-digit AWS account id that owns the channel (the relay fills it for submitted events)",
    ),
    field("additionalEventData", Shape::Object(Some(limits::MAX_ADDITIONAL_EVENT_DATA_BYTES)), Optional, ""),
];

/// `eventData.userIdentity`.
const IDENTITY_FIELDS: [Field; 3] = [
    field("type", Shape::Text(128), Required, "the kind of identity, e.g. \"USER\" or \"SERVICE\""),
    field("principalId", Shape::Text(1024), Required, "the actor's unique id, e.g. an e-mail address"),
    field("details", Shape::Object(None), Optional, ""),
];

const IDX_EVENT_SOURCE: usize = 3;
const IDX_EVENT_NAME: usize = 4;
const IDX_UID: usize = 6;
const IDX_REQUEST_PARAMETERS: usize = 7;
const IDX_RECIPIENT: usize = 12;

impl<'c> Validator<'c> {
    /// A validator for `stage`, with no catalog and no known channel owner.
    pub fn new(stage: Stage) -> Self {
        Validator { catalog: None, stage, channel_owner: None }
    }

    /// Also checks events against the application catalog.
    pub fn with_catalog(mut self, catalog: &'c Catalog) -> Self {
        self.catalog = Some(catalog);
        self
    }

    /// Requires `recipientAccountId`, when present, to equal this account (the channel's owner).
    pub fn with_channel_owner(mut self, account_id: impl Into<String>) -> Self {
        self.channel_owner = Some(account_id.into());
        self
    }

    /// The stage this validator checks for.
    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// The catalog this validator checks against, if any.
    pub fn catalog(&self) -> Option<&'c Catalog> {
        self.catalog
    }

    /// Validates one `eventData` JSON text. Never panics; every problem becomes a [`Violation`].
    pub fn validate<'a>(&self, text: &'a str) -> Checked<'a> {
        let mut run = Run { text, violations: Vec::new(), parse_parameters: self.catalog.is_some() };
        let mut checked = Checked::default();

        if text.len() > limits::MAX_REQUEST_BYTES {
            run.push(
                "eventData",
                Rule::EventSize,
                format!(
                    "is {} bytes; one event cannot exceed the {} bytes a PutAuditEvents request may carry",
                    text.len(),
                    limits::MAX_REQUEST_BYTES
                ),
                Some(0),
            );
            checked.violations = run.violations;
            return checked;
        }
        let Some(object) = run.parse_root(text) else {
            checked.violations = run.violations;
            return checked;
        };

        run.check_escapes(&object, text);
        let slots = run.fields(&object, "eventData", &EVENT_FIELDS, text);
        checked.absent = Absent { uid: slots[IDX_UID].is_none(), recipient_account_id: slots[IDX_RECIPIENT].is_none() };
        // requestParameters: `None` absent, `Some(None)` unusable, `Some(Some(members))` parsed.
        let mut request_parameters = None;
        for (spec, slot) in EVENT_FIELDS.iter().zip(slots.iter()) {
            let presence = match (spec.presence, self.stage) {
                (RequiredAtPut, Stage::Put) => Required,
                (RequiredAtPut, Stage::Submit) => Optional,
                (p, _) => p,
            };
            let path = FieldPath { parent: "eventData", name: spec.name };
            let value = run.check_field(&path, spec, presence, *slot, text);
            match (spec.shape, value) {
                (Shape::Time, FieldValue::Time(t)) => checked.event_time = Some(t),
                (Shape::Account, FieldValue::Text(account)) => {
                    if let Some(owner) = &self.channel_owner
                        && account != owner.as_str()
                    {
                        run.push(
                                &path,
                                Rule::Recipient,
                                format!(
                                    "{} is not the account that owns the channel ({owner}); CloudTrail requires them to be equal",
                                    quote(&account)
                                ),
                                slot.and_then(|raw| raw::offset_in(text, raw.get())),
                            );
                    }
                    checked.recipient_account_id = Some(account);
                }
                (_, FieldValue::Members(members)) => request_parameters = Some(Some(members)),
                (Shape::Object(_), FieldValue::Invalid) => request_parameters = Some(None),
                (_, FieldValue::Text(s)) => match spec.name {
                    "eventSource" => checked.event_source = Some(s),
                    "eventName" => checked.event_name = Some(s),
                    "UID" => checked.uid = Some(s),
                    _ => {}
                },
                _ => {}
            }
        }

        if let Some(catalog) = self.catalog {
            run.check_catalog(catalog, &checked, &slots, request_parameters, text);
        }
        checked.violations = run.violations;
        checked
    }
}

/// The value of a known field once checked, for the caller to keep.
enum FieldValue<'a> {
    Absent,
    Invalid,
    Text(Cow<'a, str>),
    Time(EventTime),
    /// The members of `requestParameters`, parsed once for the catalog's checks.
    Members(Members<'a>),
    Other,
}

/// A field's JSON path, formatted only when a violation needs it.
struct FieldPath<'p> {
    parent: &'p str,
    name: &'p str,
}

impl fmt::Display for FieldPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.parent, self.name)
    }
}

/// The state of one validation: the input text and the violations so far.
struct Run<'t> {
    text: &'t str,
    violations: Vec<Violation>,
    /// Whether `requestParameters` is parsed (for the catalog's checks and its duplicate keys).
    parse_parameters: bool,
}

impl<'t> Run<'t> {
    fn push(&mut self, path: impl fmt::Display, rule: Rule, message: String, offset: Option<usize>) {
        self.violations.push(Violation { path: path.to_string(), rule, message, offset });
    }

    fn offset(&self, raw: &RawValue) -> Option<usize> {
        raw::offset_in(self.text, raw.get())
    }

    /// Parses the root object, or records why it is not one.
    fn parse_root(&mut self, text: &'t str) -> Option<Object<'t>> {
        match serde_json::from_str::<Object<'t>>(text) {
            Ok(object) => Some(object),
            Err(err) => {
                let offset = offset_of_line_column(text, err.line(), err.column());
                if err.is_data() {
                    let kind = serde_json::from_str::<&RawValue>(text)
                        .map(Kind::of)
                        .map(Kind::described)
                        .unwrap_or("something else");
                    self.push("eventData", Rule::NotObject, format!("must be a JSON object, found {kind}"), Some(0));
                } else {
                    self.push(
                        "eventData",
                        Rule::Json,
                        format!("is not well-formed JSON: {}", json_reason(&err)),
                        offset,
                    );
                }
                None
            }
        }
    }

    /// Reports each field whose strings (keys or values, at any depth) hold a `\u` escape of a
    /// lone UTF-16 surrogate. serde_json checks escapes only when it decodes a string, and the
    /// validator reads most values raw, so this is one scan of the text for backslashes.
    fn check_escapes(&mut self, object: &Object<'t>, text: &'t str) {
        let mut reported: Vec<String> = Vec::new();
        for (at, escape) in lone_surrogates(text) {
            let path = path_at(object, text, at, "eventData".to_owned());
            if reported.contains(&path) {
                continue;
            }
            let message = format!(
                "holds {escape:?} at byte {at}, half of a UTF-16 surrogate pair without its other half, which stands for \
                 no character; send characters outside the Basic Multilingual Plane as a pair (\\ud83d\\ude00) or \
                 as UTF-8"
            );
            self.push(&path, Rule::Surrogate, message, Some(at));
            reported.push(path);
        }
    }

    /// Sorts an object's members into the known fields' slots and reports duplicate and unknown keys.
    fn fields<'a>(
        &mut self,
        object: &Object<'a>,
        parent: &str,
        specs: &[Field],
        text: &str,
    ) -> Vec<Option<&'a RawValue>> {
        let mut slots = vec![None; specs.len()];
        for (key, raw) in &object.members {
            match specs.iter().position(|spec| spec.name == key.as_ref()) {
                Some(i) => {
                    if slots[i].is_none() {
                        slots[i] = Some(*raw);
                    } else {
                        self.push(
                            format_args!("{parent}.{key}"),
                            Rule::DuplicateKey,
                            "appears more than once in the object; each field may appear once".into(),
                            raw::offset_in(text, raw.get()),
                        );
                    }
                }
                None => {
                    let hint = did_you_mean(suggest(key, specs.iter().map(|s| s.name)));
                    let known = if hint.is_empty() {
                        format!("; the fields are {}", specs.iter().map(|s| s.name).collect::<Vec<_>>().join(", "))
                    } else {
                        String::new()
                    };
                    self.push(
                        format_args!("{parent}.{key}"),
                        Rule::UnknownField,
                        format!("is not a field of the integration event schema{hint}{known}"),
                        raw::offset_in(text, raw.get()),
                    );
                }
            }
        }
        slots
    }

    /// Checks one known field; returns its value when the caller may want it.
    fn check_field<'a>(
        &mut self,
        path: &FieldPath<'_>,
        spec: &Field,
        presence: Presence,
        slot: Option<&'a RawValue>,
        text: &'a str,
    ) -> FieldValue<'a> {
        let shape = spec.shape;
        let expected = match shape {
            Shape::Object(_) | Shape::Identity => "an object",
            _ => "a string",
        };
        let raw = match slot {
            Some(raw) if Kind::of(raw) != Kind::Null => raw,
            Some(raw) => {
                if presence == Required {
                    self.push(path, Rule::Required, format!("is null; {expected} is required"), self.offset(raw));
                }
                return FieldValue::Absent;
            }
            None => {
                if presence == Required {
                    self.push(
                        path,
                        Rule::Required,
                        format!("is required but missing; add {:?}: {}", spec.name, spec.hint),
                        None,
                    );
                }
                return FieldValue::Absent;
            }
        };
        let offset = self.offset(raw);
        let kind = Kind::of(raw);
        match shape {
            Shape::Object(max) => {
                if kind != Kind::Object {
                    self.push(path, Rule::Type, format!("must be a JSON object, found {}", kind.described()), offset);
                    return FieldValue::Invalid;
                }
                if let Some(max) = max {
                    let size = raw.get().len();
                    if size > max {
                        self.push(
                            path,
                            Rule::MaxSize,
                            format!("is {size} bytes of JSON; the limit is {max} bytes ({} KiB), and CloudTrail rejects larger content", max / 1024),
                            offset,
                        );
                    }
                }
                // Free-form objects are only size-checked; requestParameters is parsed when the
                // catalog types it, and then its duplicate keys are reported too.
                if !(self.parse_parameters && spec.name == "requestParameters") {
                    return FieldValue::Other;
                }
                let Some(object) = raw::object(raw) else {
                    return FieldValue::Invalid;
                };
                for (key, dup) in object.duplicates() {
                    self.push(
                        format_args!("{path}.{key}"),
                        Rule::DuplicateKey,
                        "appears more than once in the object; each key may appear once".into(),
                        self.offset(dup),
                    );
                }
                FieldValue::Members(object.members)
            }
            Shape::Identity => {
                if kind != Kind::Object {
                    self.push(
                        path,
                        Rule::Type,
                        format!("must be a JSON object with \"type\" and \"principalId\", found {}", kind.described()),
                        offset,
                    );
                    return FieldValue::Invalid;
                }
                let Some(object) = raw::object(raw) else {
                    return FieldValue::Invalid;
                };
                let slots = self.fields(&object, "eventData.userIdentity", &IDENTITY_FIELDS, text);
                for (spec, slot) in IDENTITY_FIELDS.iter().zip(slots) {
                    let child = FieldPath { parent: "eventData.userIdentity", name: spec.name };
                    let value = self.check_field(&child, spec, spec.presence, slot, text);
                    if matches!(value, FieldValue::Absent) && spec.presence == Required && slot.is_none() {
                        // Point a missing member at the object it belongs to.
                        if let Some(last) = self.violations.last_mut() {
                            last.offset = last.offset.or(offset);
                        }
                    }
                }
                FieldValue::Other
            }
            Shape::Text(_) | Shape::Time | Shape::Ip | Shape::Account => {
                if kind != Kind::String {
                    self.push(path, Rule::Type, format!("must be a string, found {}", kind.described()), offset);
                    return FieldValue::Invalid;
                }
                let Some(value) = raw::string(raw) else {
                    return FieldValue::Invalid;
                };
                if value.is_empty() {
                    if presence == Required {
                        self.push(path, Rule::Required, "is empty; a non-empty string is required".into(), offset);
                    }
                    return FieldValue::Invalid;
                }
                self.check_text(path, shape, value, offset)
            }
        }
    }

    fn check_text<'a>(
        &mut self,
        path: &FieldPath<'_>,
        shape: Shape,
        value: Cow<'a, str>,
        offset: Option<usize>,
    ) -> FieldValue<'a> {
        match shape {
            Shape::Text(max) => {
                if value.len() > max {
                    let chars = value.chars().count();
                    if chars > max {
                        self.push(
                            path,
                            Rule::MaxLength,
                            format!("is {chars} characters long; the limit is {max}"),
                            offset,
                        );
                        return FieldValue::Invalid;
                    }
                }
                FieldValue::Text(value)
            }
            Shape::Time => match EventTime::parse(&value) {
                Ok(time) => FieldValue::Time(time),
                Err(why) => {
                    self.push(
                        path,
                        Rule::EventTime,
                        format!("{} is not a valid eventTime: {why}; expected {EVENT_TIME_FORM}", quote(&value)),
                        offset,
                    );
                    FieldValue::Invalid
                }
            },
            Shape::Ip => {
                if value.parse::<IpAddr>().is_err() {
                    self.push(
                        path,
                        Rule::IpAddress,
                        format!("{} is not an IPv4 or IPv6 address", quote(&value)),
                        offset,
                    );
                    return FieldValue::Invalid;
                }
                FieldValue::Text(value)
            }
            Shape::Account => {
                if !is_account_id(&value) {
                    self.push(
                        path,
                        Rule::AccountId,
                        format!("{} is not an AWS account id; it must be exactly 12 digits", quote(&value)),
                        offset,
                    );
                    return FieldValue::Invalid;
                }
                FieldValue::Text(value)
            }
            Shape::Object(_) | Shape::Identity => FieldValue::Other,
        }
    }

    /// The catalog's rules: a known event source, an event type of that source, the UID form and
    /// the typed request parameters.
    fn check_catalog(
        &mut self,
        catalog: &Catalog,
        checked: &Checked<'_>,
        slots: &[Option<&RawValue>],
        request_parameters: Option<Option<Members<'_>>>,
        text: &str,
    ) {
        let Some(source) = checked.event_source.as_deref() else {
            return;
        };
        let source_offset = slots[IDX_EVENT_SOURCE].and_then(|raw| raw::offset_in(text, raw.get()));
        let Some(app) = catalog.application(source) else {
            let hint = did_you_mean(catalog.suggest_source(source));
            let known = catalog.applications().iter().map(|a| a.event_source.as_str()).collect::<Vec<_>>().join(", ");
            self.push(
                "eventData.eventSource",
                Rule::CatalogEventSource,
                format!("{} is not an event source of the catalog{hint} (known: {known})", quote(source)),
                source_offset,
            );
            return;
        };

        if let (UidFormat::Uuid, Some(uid)) = (app.uid, checked.uid.as_deref())
            && !is_uuid(uid)
        {
            self.push(
                    "eventData.UID",
                    Rule::CatalogUid,
                    format!(
                        "{} is not a UUID; {} identifies each request with a UUID such as 0190a6b2-4c1e-7a3f-9d2b-5e8f1a2b3c4d",
                        quote(uid),
                        app.name
                    ),
                    slots[IDX_UID].and_then(|raw| raw::offset_in(text, raw.get())),
                );
        }

        let Some(name) = checked.event_name.as_deref() else {
            return;
        };
        let Some(event_type) = app.event_type(name) else {
            let names: Vec<&str> = app.event_types.iter().map(|t| t.name.as_str()).collect();
            let hint = did_you_mean(suggest(name, names.iter().copied()));
            self.push(
                "eventData.eventName",
                Rule::CatalogEventName,
                format!(
                    "{} is not an event type of {} ({source}){hint} (known: {})",
                    quote(name),
                    app.name,
                    names.join(", ")
                ),
                slots[IDX_EVENT_NAME].and_then(|raw| raw::offset_in(text, raw.get())),
            );
            return;
        };

        // Request parameters. A null or absent object means no parameters were given; an unusable
        // one was already reported.
        let params_offset = slots[IDX_REQUEST_PARAMETERS].and_then(|raw| raw::offset_in(text, raw.get()));
        let given = match request_parameters {
            Some(Some(members)) => members,
            Some(None) => return,
            None => Vec::new(),
        };
        for (key, raw) in &given {
            let path = FieldPath { parent: "eventData.requestParameters", name: key };
            match event_type.parameter(key) {
                Some(param) => {
                    if let Err(why) = param.kind.check(raw) {
                        self.push(&path, Rule::CatalogParameterType, why, raw::offset_in(text, raw.get()));
                    }
                }
                None => {
                    let hint = did_you_mean(suggest(key, event_type.parameters.iter().map(|p| p.name.as_str())));
                    let known = if hint.is_empty() {
                        let names: Vec<&str> = event_type.parameters.iter().map(|p| p.name.as_str()).collect();
                        if names.is_empty() {
                            "; it takes no request parameters".to_owned()
                        } else {
                            format!("; its parameters are {}", names.join(", "))
                        }
                    } else {
                        String::new()
                    };
                    self.push(
                        &path,
                        Rule::CatalogParameterUnknown,
                        format!("is not a request parameter of {}{hint}{known}", event_type.name),
                        raw::offset_in(text, raw.get()),
                    );
                }
            }
        }
        for param in event_type.parameters.iter().filter(|p| p.required) {
            if !given.iter().any(|(key, _)| key.as_ref() == param.name) {
                self.push(
                    format!("eventData.requestParameters.{}", param.name),
                    Rule::CatalogParameterMissing,
                    format!("is required by {} but missing ({})", event_type.name, param.kind.describe()),
                    params_offset,
                );
            }
        }
    }
}

/// Whether `s` is exactly 12 ASCII digits.
pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `s` is a UUID in the 8-4-4-4-12 hexadecimal form (either case).
pub fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// The byte offset of a 1-based line and column reported by serde_json.
/// The byte offsets and texts of the `\uXXXX` escapes in `text` (well-formed JSON) that encode
/// half a surrogate pair without the other half right after (a high one) or before (a low one).
fn lone_surrogates(text: &str) -> Vec<(usize, &str)> {
    let bytes = text.as_bytes();
    let unit = |at: usize| -> Option<u16> {
        let digits = text.get(at + 2..at + 6)?;
        (bytes.get(at + 1) == Some(&b'u')).then(|| u16::from_str_radix(digits, 16).ok()).flatten()
    };
    let mut found = Vec::new();
    let mut from = 0;
    // memchr's vectorized search: the standard library's scanned a word at a time, 9 % of a
    // validation in a profile of the `validate` bench.
    while let Some(found_at) = bytes.get(from..).and_then(|rest| memchr::memchr(b'\\', rest)) {
        let at = from + found_at;
        // Every backslash in well-formed JSON starts an escape; `\\` is two bytes, `\uXXXX` six.
        let Some(code) = unit(at) else {
            from = at + 2;
            continue;
        };
        from = at + 6;
        match code {
            0xD800..=0xDBFF => match unit(at + 6) {
                Some(0xDC00..=0xDFFF) => from = at + 12,
                _ => found.push((at, &text[at..at + 6])),
            },
            0xDC00..=0xDFFF => found.push((at, &text[at..at + 6])),
            _ => {}
        }
    }
    found
}

/// The JSON path of the field of `object` (at `path`) whose value holds byte `at` of `text`,
/// descending into nested objects; a key, or an array element, is its parent's.
fn path_at(object: &Object<'_>, text: &str, at: usize, path: String) -> String {
    for (key, raw) in &object.members {
        let Some(start) = raw::offset_in(text, raw.get()) else { continue };
        if !(start..start + raw.get().len()).contains(&at) {
            continue;
        }
        let path = format!("{path}.{key}");
        return match Kind::of(raw) {
            Kind::Object => match raw::object(raw) {
                Some(inner) => path_at(&inner, text, at, path),
                // An object whose keys do not decode: the field itself.
                None => path,
            },
            _ => path,
        };
    }
    path
}

pub(crate) fn offset_of_line_column(text: &str, line: usize, column: usize) -> Option<usize> {
    if line == 0 {
        return None;
    }
    let line_start = if line == 1 { 0 } else { text.match_indices('\n').nth(line - 2).map(|(i, _)| i + 1)? };
    Some((line_start + column.saturating_sub(1)).min(text.len()))
}

/// serde_json's reason without its " at line L column C" suffix (we report positions ourselves).
pub(crate) fn json_reason(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

#[cfg(test)]
mod tests;
