//! The application catalog: which event sources exist, their event types, and the typed schema of
//! each type's `requestParameters`.
//!
//! The catalog is data: one TOML file per application under the workspace's `catalog/` directory
//! (the format is described at the top of `catalog/klarity.toml`). Those files are embedded at
//! build time ([`Catalog::embedded`]); a deployment may load another set instead
//! ([`Catalog::from_files`]; reading the files is the caller's job, this crate does no I/O).
//! Loading checks the files thoroughly, including that every example event is valid.

use std::{collections::BTreeMap, fmt};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, value::RawValue};

use crate::{
    error::CatalogError,
    raw::{self, Kind},
    suggest::suggest,
    time::EventTime,
    validate::{Stage, Validator, is_account_id, is_uuid},
    violation::quote,
};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_catalog.rs"));
}

/// All applications, each with a unique event source.
#[derive(Debug, Clone, Serialize)]
pub struct Catalog {
    applications: Vec<Application>,
}

/// One application: its reserved event source and its event types.
#[derive(Debug, Clone, Serialize)]
pub struct Application {
    /// Human name, e.g. "AutoBackup".
    pub name: String,
    /// The event source reserved for the application, e.g. `com.nordcloudapp.com.autobackup`.
    pub event_source: String,
    /// What the application does.
    pub description: String,
    /// The form the application's `UID`s take.
    pub uid: UidFormat,
    /// Event types, in file order.
    pub event_types: Vec<EventType>,
    /// Sample CloudTrail Lake queries over the application's events, for the console's SQL
    /// editor; `$EDS_ID` stands for the event data store.
    pub sample_queries: Vec<SampleQuery>,
    /// The data file the application came from.
    pub file: String,
}

/// A sample query of an application.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SampleQuery {
    /// What it is called.
    pub name: String,
    /// What it answers.
    pub description: String,
    /// The statement: a `SELECT` with `$EDS_ID` for the event data store.
    pub sql: String,
}

/// The form of an application's `UID` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UidFormat {
    /// Any string CloudTrail accepts.
    #[default]
    String,
    /// A UUID (8-4-4-4-12 hexadecimal).
    Uuid,
}

/// One event type (`eventName`) of an application.
#[derive(Debug, Clone, Serialize)]
pub struct EventType {
    /// The `eventName`, e.g. `backup.started`.
    pub name: String,
    /// What happened when this event is emitted.
    pub description: String,
    /// The typed `requestParameters`, sorted by name.
    pub parameters: Vec<Parameter>,
    /// A valid `eventData` for this type, as an application submits it (no `recipientAccountId`).
    pub example: Map<String, Value>,
}

/// One request parameter of an event type.
#[derive(Debug, Clone, Serialize)]
pub struct Parameter {
    /// The key in `requestParameters`.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: ParamType,
    /// Whether every event of the type must carry it.
    pub required: bool,
    /// What it means.
    pub description: String,
}

/// The type of a request parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "name", rename_all = "kebab-case")]
pub enum ParamType {
    /// A string, optionally bounded in characters.
    String {
        /// Longest allowed value, in characters.
        #[serde(skip_serializing_if = "Option::is_none")]
        max_length: Option<usize>,
    },
    /// A JSON integer, optionally bounded.
    Integer {
        /// Smallest allowed value.
        #[serde(skip_serializing_if = "Option::is_none")]
        min: Option<i64>,
        /// Largest allowed value.
        #[serde(skip_serializing_if = "Option::is_none")]
        max: Option<i64>,
    },
    /// A JSON boolean.
    Boolean,
    /// A UUID string.
    Uuid,
    /// An ARN string (`arn:partition:service:region:account:resource`).
    Arn,
    /// An AWS region name such as `eu-west-1`.
    AwsRegion,
    /// A 12-digit AWS account id string.
    AccountId,
    /// One of a fixed set of strings.
    Enum {
        /// The allowed values.
        values: Vec<String>,
    },
    /// A UTC timestamp string in the `eventTime` forms.
    Timestamp,
}

impl ParamType {
    /// A short description for messages and listings, e.g. "a UUID".
    pub fn describe(&self) -> String {
        match self {
            ParamType::String { max_length: Some(n) } => format!("a string of at most {n} characters"),
            ParamType::String { max_length: None } => "a string".into(),
            ParamType::Integer { min, max } => match (min, max) {
                (Some(lo), Some(hi)) => format!("an integer from {lo} to {hi}"),
                (Some(lo), None) => format!("an integer ≥ {lo}"),
                (None, Some(hi)) => format!("an integer ≤ {hi}"),
                (None, None) => "an integer".into(),
            },
            ParamType::Boolean => "a boolean".into(),
            ParamType::Uuid => "a UUID".into(),
            ParamType::Arn => "an ARN".into(),
            ParamType::AwsRegion => "an AWS region".into(),
            ParamType::AccountId => "a 12-digit AWS account id".into(),
            ParamType::Enum { values } => format!("one of {}", values.join(", ")),
            ParamType::Timestamp => "a UTC timestamp".into(),
        }
    }

    /// The type's name as written in catalog files.
    pub fn name(&self) -> &'static str {
        match self {
            ParamType::String { .. } => "string",
            ParamType::Integer { .. } => "integer",
            ParamType::Boolean => "boolean",
            ParamType::Uuid => "uuid",
            ParamType::Arn => "arn",
            ParamType::AwsRegion => "aws-region",
            ParamType::AccountId => "account-id",
            ParamType::Enum { .. } => "enum",
            ParamType::Timestamp => "timestamp",
        }
    }

    /// Checks a raw JSON value; the error completes "requestParameters.x …".
    pub(crate) fn check(&self, raw: &RawValue) -> Result<(), String> {
        let kind = Kind::of(raw);
        let wrong = || Err(format!("must be {}, found {}", self.describe(), kind.described()));
        match self {
            ParamType::Integer { min, max } => {
                if kind != Kind::Number {
                    return wrong();
                }
                let Ok(n) = serde_json::from_str::<i64>(raw.get()) else {
                    return Err(format!("must be {}, found {}", self.describe(), raw.get().trim()));
                };
                if min.is_some_and(|lo| n < lo) || max.is_some_and(|hi| n > hi) {
                    return Err(format!("is {n}; it must be {}", self.describe()));
                }
                Ok(())
            }
            ParamType::Boolean => {
                if kind == Kind::Bool {
                    Ok(())
                } else {
                    wrong()
                }
            }
            _ => {
                if kind != Kind::String {
                    return wrong();
                }
                let value = raw::string(raw).unwrap_or_default();
                let ok = match self {
                    ParamType::String { max_length } => match max_length {
                        Some(n) if value.chars().count() > *n => {
                            return Err(format!("is {} characters long; the limit is {n}", value.chars().count()));
                        }
                        _ => true,
                    },
                    ParamType::Uuid => is_uuid(&value),
                    ParamType::Arn => is_arn(&value),
                    ParamType::AwsRegion => is_region(&value),
                    ParamType::AccountId => is_account_id(&value),
                    ParamType::Enum { values } => {
                        if values.iter().any(|v| *v == value) {
                            true
                        } else {
                            let hint = crate::suggest::did_you_mean(suggest(&value, values.iter().map(String::as_str)));
                            return Err(format!("is {}; it must be one of {}{hint}", quote(&value), values.join(", ")));
                        }
                    }
                    ParamType::Timestamp => EventTime::parse(&value).is_ok(),
                    ParamType::Integer { .. } | ParamType::Boolean => unreachable!("handled above"),
                };
                if ok { Ok(()) } else { Err(format!("is {}, which is not {}", quote(&value), self.describe())) }
            }
        }
    }
}

/// Whether `s` looks like an ARN: `arn:<partition>:<service>:<region>:<account>:<resource>` with a
/// known partition, a service, and a resource.
pub fn is_arn(s: &str) -> bool {
    let mut parts = s.splitn(6, ':');
    let (Some("arn"), Some(partition), Some(service), Some(_region), Some(account), Some(resource)) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    matches!(
        partition,
        "aws" | "aws-cn" | "aws-us-gov" | "aws-iso" | "aws-iso-b" | "aws-iso-e" | "aws-iso-f" | "aws-eusc"
    ) && !service.is_empty()
        && service.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && (account.is_empty() || is_account_id(account) || account == "aws")
        && !resource.is_empty()
}

/// Whether `s` is shaped like an AWS region name: lower-case words joined by `-`, ending in a number
/// (`eu-west-1`, `us-gov-west-1`, `ap-southeast-5`).
pub fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts[..parts.len() - 1].iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[0].len() == 2
        && parts.last().is_some_and(|n| !n.is_empty() && n.len() <= 2 && n.bytes().all(|b| b.is_ascii_digit()))
}

impl Catalog {
    /// The catalog embedded in the binary at build time.
    ///
    /// # Panics
    ///
    /// Only if the embedded files are invalid, which the crate's tests rule out.
    pub fn embedded() -> Catalog {
        Catalog::from_files(embedded::EMBEDDED.iter().copied()).expect("the embedded catalog is valid (tested)")
    }

    /// The names and contents of the embedded catalog files.
    pub fn embedded_files() -> &'static [(&'static str, &'static str)] {
        embedded::EMBEDDED
    }

    /// Builds a catalog from `(file name, TOML text)` pairs, checking every file.
    pub fn from_files<'f>(files: impl IntoIterator<Item = (&'f str, &'f str)>) -> Result<Catalog, CatalogError> {
        let mut applications: Vec<Application> = Vec::new();
        for (file, text) in files {
            let app = load_application(file, text)?;
            if let Some(other) = applications.iter().find(|a| a.event_source == app.event_source) {
                return Err(CatalogError::DuplicateSource {
                    event_source: app.event_source,
                    first: other.file.clone(),
                    second: file.to_owned(),
                });
            }
            applications.push(app);
        }
        if applications.is_empty() {
            return Err(CatalogError::Empty);
        }
        applications.sort_by(|a, b| a.event_source.cmp(&b.event_source));
        let catalog = Catalog { applications };
        catalog.check_examples()?;
        Ok(catalog)
    }

    /// All applications, sorted by event source.
    pub fn applications(&self) -> &[Application] {
        &self.applications
    }

    /// The application that owns `event_source`.
    pub fn application(&self, event_source: &str) -> Option<&Application> {
        self.applications.iter().find(|a| a.event_source == event_source)
    }

    /// The known event source `given` most likely meant, e.g. `com.nordcloudapp.klarity` →
    /// `com.nordcloudapp.com.klarity`.
    pub fn suggest_source(&self, given: &str) -> Option<&str> {
        let sources = self.applications.iter().map(|a| a.event_source.as_str());
        suggest(given, sources.clone()).or_else(|| {
            let last = given.rsplit('.').next()?;
            sources.clone().find(|s| s.rsplit('.').next().is_some_and(|l| l.eq_ignore_ascii_case(last)))
        })
    }

    /// Every example must be valid for its own catalog, as submitted and once the relay has filled
    /// in `recipientAccountId`.
    fn check_examples(&self) -> Result<(), CatalogError> {
        let submit = Validator::new(Stage::Submit).with_catalog(self);
        for app in &self.applications {
            for event_type in &app.event_types {
                let text = Value::Object(event_type.example.clone()).to_string();
                let checked = submit.validate(&text);
                if !checked.is_valid() {
                    return Err(CatalogError::InvalidExample {
                        file: app.file.clone(),
                        event_type: event_type.name.clone(),
                        problems: checked.violations.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
                    });
                }
            }
        }
        Ok(())
    }
}

impl Application {
    /// The event type named `name`.
    pub fn event_type(&self, name: &str) -> Option<&EventType> {
        self.event_types.iter().find(|t| t.name == name)
    }
}

impl EventType {
    /// The request parameter named `name`.
    pub fn parameter(&self, name: &str) -> Option<&Parameter> {
        self.parameters.iter().find(|p| p.name == name)
    }
}

impl fmt::Display for ParamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

// The on-disk shape of a catalog file.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AppFile {
    application: String,
    event_source: String,
    description: String,
    #[serde(default)]
    uid: UidFormat,
    #[serde(default)]
    parameter_sets: BTreeMap<String, BTreeMap<String, ParamFile>>,
    event_types: Vec<EventTypeFile>,
    #[serde(default)]
    sample_queries: Vec<SampleQuery>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventTypeFile {
    name: String,
    description: String,
    parameters: Option<String>,
    #[serde(default)]
    request_parameters: BTreeMap<String, ParamFile>,
    example: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ParamFile {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    description: String,
    max_length: Option<usize>,
    min: Option<i64>,
    max: Option<i64>,
    values: Option<Vec<String>>,
}

fn load_application(file: &str, text: &str) -> Result<Application, CatalogError> {
    let invalid = |message: String| CatalogError::Invalid { file: file.to_owned(), message };
    let parsed: AppFile =
        toml::from_str(text).map_err(|err| CatalogError::Parse { file: file.to_owned(), message: err.to_string() })?;

    if parsed.event_source.is_empty() || parsed.event_source.chars().count() > 1024 {
        return Err(invalid("event_source must be 1 to 1024 characters".into()));
    }
    if parsed.event_types.is_empty() {
        return Err(invalid("an application needs at least one [[event_types]] entry".into()));
    }
    let mut event_types: Vec<EventType> = Vec::new();
    for ty in parsed.event_types {
        let context = |message: String| invalid(format!("event type {:?}: {message}", ty.name));
        if ty.name.is_empty() || ty.name.chars().count() > 1024 {
            return Err(context("the name must be 1 to 1024 characters".into()));
        }
        if event_types.iter().any(|t| t.name == ty.name) {
            return Err(context("is defined twice".into()));
        }
        let mut params: BTreeMap<String, Parameter> = BTreeMap::new();
        if let Some(set) = &ty.parameters {
            let Some(set_params) = parsed.parameter_sets.get(set) else {
                let known: Vec<&str> = parsed.parameter_sets.keys().map(String::as_str).collect();
                return Err(context(format!(
                    "parameters = {set:?} names no [parameter_sets.{set}] (known: {})",
                    known.join(", ")
                )));
            };
            for (name, spec) in set_params {
                params.insert(name.clone(), convert_param(name, spec).map_err(&context)?);
            }
        }
        for (name, spec) in &ty.request_parameters {
            params.insert(name.clone(), convert_param(name, spec).map_err(&context)?);
        }
        let mut example = ty.example;
        for (key, value) in [("eventSource", &parsed.event_source), ("eventName", &ty.name)] {
            match example.get(key) {
                None => {
                    example.insert(key.to_owned(), Value::String(value.clone()));
                }
                Some(Value::String(s)) if s == value => {}
                Some(other) => {
                    return Err(context(format!("the example's {key} is {other}, expected {value:?}")));
                }
            }
        }
        event_types.push(EventType {
            name: ty.name,
            description: ty.description,
            parameters: params.into_values().collect(),
            example,
        });
    }
    for q in &parsed.sample_queries {
        let statement = q.sql.trim_start();
        if q.name.is_empty() || !statement.get(..6).is_some_and(|w| w.eq_ignore_ascii_case("select")) {
            return Err(invalid(format!("sample query {:?}: a name and a SELECT statement are needed", q.name)));
        }
        if !q.sql.contains("$EDS_ID") {
            return Err(invalid(format!("sample query {:?}: the statement must name its table $EDS_ID", q.name)));
        }
    }
    Ok(Application {
        sample_queries: parsed.sample_queries,
        name: parsed.application,
        event_source: parsed.event_source,
        description: parsed.description,
        uid: parsed.uid,
        event_types,
        file: file.to_owned(),
    })
}

fn convert_param(name: &str, spec: &ParamFile) -> Result<Parameter, String> {
    let only = |allowed: &[&str]| -> Result<(), String> {
        let given = [
            ("max_length", spec.max_length.is_some()),
            ("min", spec.min.is_some()),
            ("max", spec.max.is_some()),
            ("values", spec.values.is_some()),
        ];
        match given.iter().find(|(key, set)| *set && !allowed.contains(key)) {
            Some((key, _)) => Err(format!("parameter {name:?}: {key} does not apply to type {:?}", spec.kind)),
            None => Ok(()),
        }
    };
    let kind = match spec.kind.as_str() {
        "string" => {
            only(&["max_length"])?;
            ParamType::String { max_length: spec.max_length }
        }
        "integer" => {
            only(&["min", "max"])?;
            if let (Some(lo), Some(hi)) = (spec.min, spec.max)
                && lo > hi
            {
                return Err(format!("parameter {name:?}: min {lo} is greater than max {hi}"));
            }
            ParamType::Integer { min: spec.min, max: spec.max }
        }
        "enum" => {
            only(&["values"])?;
            match &spec.values {
                Some(values) if !values.is_empty() => ParamType::Enum { values: values.clone() },
                _ => {
                    return Err(format!("parameter {name:?}: an enum needs a non-empty values list"));
                }
            }
        }
        simple => {
            only(&[])?;
            match simple {
                "boolean" => ParamType::Boolean,
                "uuid" => ParamType::Uuid,
                "arn" => ParamType::Arn,
                "aws-region" => ParamType::AwsRegion,
                "account-id" => ParamType::AccountId,
                "timestamp" => ParamType::Timestamp,
                other => {
                    return Err(format!(
                        "parameter {name:?}: unknown type {other:?} (types: string, integer, boolean, uuid, arn, aws-region, account-id, enum, timestamp)"
                    ));
                }
            }
        }
    };
    Ok(Parameter { name: name.to_owned(), kind, required: spec.required, description: spec.description.clone() })
}

#[cfg(test)]
mod tests;
