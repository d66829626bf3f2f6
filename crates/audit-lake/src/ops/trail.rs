//! The `cloudtrail` control plane: event data stores (with restore within the deletion wait and
//! start/stop of ingestion), channels, resource policies on channels and event data stores, and
//! tags — with CloudTrail's enums, defaults, limits and modelled exceptions.
//!
//! Each input and output type carries the API's member names (serde), so `api/` decodes a request
//! straight into it and encodes the answer from it.

use serde::{Deserialize, Serialize};

use super::internal;
use crate::{
    Lake,
    authz::{self, Target},
    error::AwsError,
    identity::Caller,
    policy::Policy,
    store::model::{Channel, EventDataStore},
};

/// Most event data stores per account and region.
pub const MAX_STORES: usize = 10;
/// Most channels per account and region.
pub const MAX_CHANNELS: usize = 25;
/// Most tags on one resource.
pub const MAX_TAGS: usize = 50;
/// How long a deleted event data store may be restored (and is kept): seven days, as in AWS.
pub const DELETION_WAIT_SECS: f64 = 7.0 * 86_400.0;

/// A channel's `Source`: `Custom`, or a partner source name from AWS's list of integration
/// partners ("Additional information about integration partners", CloudTrail User Guide).
/// Nordcloud's integration is `IBMMulticloud` there.
pub const CHANNEL_SOURCES: [&str; 16] = [
    "Custom",
    "CloudStorageSecurityConsole",
    "Clumio",
    "CrowdStrike",
    "CyberArk",
    "GitHub",
    "IBMMulticloud",
    "KongGatewayEnterprise",
    "LaunchDarkly",
    "MontyCloud",
    "NetskopeCloudExchange",
    "OktaSystemLogEvents",
    "OneLogin",
    "Shoreline",
    "Snyk",
    "WizAuditLogs",
];

/// Nordcloud's source name in AWS's partner list: the source of the channels Klarity publishes to.
pub const NORDCLOUD_SOURCE: &str = "IBMMulticloud";

/// The fields an advanced event selector may test, as CloudTrail documents them.
const SELECTOR_FIELDS: [&str; 13] = [
    "eventCategory",
    "eventSource",
    "eventName",
    "eventType",
    "readOnly",
    "resources.type",
    "resources.ARN",
    "errorCode",
    "sessionCredentialFromConsole",
    "userIdentity.arn",
    "vpcEndpointId",
    "eventTypeVersion",
    "recipientAccountId",
];

/// The values of `eventCategory`.
const EVENT_CATEGORIES: [&str; 6] =
    ["Management", "Data", "NetworkActivity", "ConfigurationItem", "ActivityAuditLog", "Insight"];

/// The actions an event data store's resource policy may grant.
const STORE_POLICY_ACTIONS: [&str; 9] = [
    "cloudtrail:StartQuery",
    "cloudtrail:GetQueryResults",
    "cloudtrail:DescribeQuery",
    "cloudtrail:ListQueries",
    "cloudtrail:CancelQuery",
    "cloudtrail:GenerateQuery",
    "cloudtrail:GetEventDataStore",
    "cloudtrail:GetEventDataStoreData",
    "cloudtrail:StartDashboardRefresh",
];

/// A tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    /// 1 to 128 characters.
    pub key: String,
    /// 0 to 256 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// An advanced event selector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AdvancedEventSelector {
    /// A name for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The conditions, all of which must hold.
    pub field_selectors: Vec<FieldSelector>,
}

/// One condition of an advanced event selector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FieldSelector {
    /// The field tested.
    pub field: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub equals: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub starts_with: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub ends_with: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub not_equals: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub not_starts_with: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub not_ends_with: Option<Vec<String>>,
}

impl FieldSelector {
    /// The operators given, by name.
    fn operators(&self) -> Vec<(&'static str, &Vec<String>)> {
        [
            ("Equals", &self.equals),
            ("StartsWith", &self.starts_with),
            ("EndsWith", &self.ends_with),
            ("NotEquals", &self.not_equals),
            ("NotStartsWith", &self.not_starts_with),
            ("NotEndsWith", &self.not_ends_with),
        ]
        .into_iter()
        .filter_map(|(name, values)| values.as_ref().map(|v| (name, v)))
        .collect()
    }
}

/// `CreateEventDataStore`'s input.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)]
pub struct CreateEventDataStore {
    pub name: String,
    pub advanced_event_selectors: Option<Vec<AdvancedEventSelector>>,
    pub multi_region_enabled: Option<bool>,
    pub organization_enabled: Option<bool>,
    pub retention_period: Option<i64>,
    pub termination_protection_enabled: Option<bool>,
    pub tags_list: Option<Vec<Tag>>,
    pub kms_key_id: Option<String>,
    pub start_ingestion: Option<bool>,
    pub billing_mode: Option<String>,
}

/// `UpdateEventDataStore`'s input.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)]
pub struct UpdateEventDataStore {
    pub event_data_store: String,
    pub name: Option<String>,
    pub advanced_event_selectors: Option<Vec<AdvancedEventSelector>>,
    pub multi_region_enabled: Option<bool>,
    pub organization_enabled: Option<bool>,
    pub retention_period: Option<i64>,
    pub termination_protection_enabled: Option<bool>,
    pub kms_key_id: Option<String>,
    pub billing_mode: Option<String>,
}

/// The inputs that name one event data store.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)]
pub struct StoreRef {
    pub event_data_store: String,
}

/// An event data store as `Get`/`Create`/`Update`/`RestoreEventDataStore` answer it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)]
pub struct StoreOut {
    pub event_data_store_arn: String,
    pub name: String,
    pub status: String,
    pub advanced_event_selectors: serde_json::Value,
    pub multi_region_enabled: bool,
    pub organization_enabled: bool,
    pub retention_period: i64,
    pub termination_protection_enabled: bool,
    pub created_timestamp: f64,
    pub updated_timestamp: f64,
    pub billing_mode: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags_list: Option<Vec<Tag>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub federation_status: Option<&'static str>,
}

impl StoreOut {
    fn of(store: &EventDataStore) -> StoreOut {
        StoreOut {
            event_data_store_arn: store.arn.clone(),
            name: store.name.clone(),
            status: store.status.clone(),
            advanced_event_selectors: store.advanced_event_selectors.clone(),
            multi_region_enabled: store.multi_region_enabled,
            organization_enabled: store.organization_enabled,
            retention_period: store.retention_period,
            termination_protection_enabled: store.termination_protection_enabled,
            created_timestamp: store.created,
            updated_timestamp: store.updated,
            billing_mode: store.billing_mode.clone(),
            kms_key_id: store.kms_key_id.clone(),
            tags_list: None,
            federation_status: None,
        }
    }
}

/// A list's paging input (`MaxResults`, `NextToken`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)]
pub struct Paging {
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
}

/// One page of a list and the token of the next.
#[derive(Debug, Clone)]
pub struct Paged<T> {
    /// This page.
    pub items: Vec<T>,
    /// `NextToken`, when more follow.
    pub next_token: Option<String>,
}

impl Paging {
    /// This page of `items`: `NextToken` is the opaque decimal offset prefixed with `page-`.
    pub fn of<T>(&self, items: Vec<T>) -> Result<Paged<T>, AwsError> {
        let max = match self.max_results {
            None => 1000,
            Some(n) if (1..=1000).contains(&n) => n as usize,
            Some(n) => {
                return Err(AwsError::client(
                    "InvalidMaxResultsException",
                    format!("MaxResults {n} must be between 1 and 1000."),
                ));
            }
        };
        let start = match &self.next_token {
            None => 0,
            Some(token) => token
                .strip_prefix("page-")
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|n| *n <= items.len())
                .ok_or_else(|| AwsError::client("InvalidNextTokenException", "A token you provided is not valid."))?,
        };
        let (items, next) = super::window(items, start, max);
        Ok(Paged { items, next_token: next.map(|n| format!("page-{n}")) })
    }
}

/// A destination of a channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Destination {
    /// `EVENT_DATA_STORE` (or `AWS_SERVICE`, which the lake refuses).
    pub r#type: String,
    /// An event data store's ARN or id.
    pub location: String,
}

/// `CreateChannel`'s input.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)]
pub struct CreateChannel {
    pub name: String,
    pub source: String,
    pub destinations: Vec<Destination>,
    pub tags: Option<Vec<Tag>>,
}

/// `UpdateChannel`'s input.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)]
pub struct UpdateChannel {
    pub channel: String,
    pub name: Option<String>,
    pub destinations: Option<Vec<Destination>>,
}

/// The inputs that name one channel.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)]
pub struct ChannelRef {
    pub channel: String,
}

/// A channel as the channel operations answer it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)]
pub struct ChannelOut {
    pub channel_arn: String,
    pub name: String,
    pub source: String,
    pub destinations: Vec<Destination>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<Tag>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_config: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingestion_status: Option<serde_json::Value>,
}

impl ChannelOut {
    fn of(channel: &Channel) -> ChannelOut {
        ChannelOut {
            channel_arn: channel.arn.clone(),
            name: channel.name.clone(),
            source: channel.source.clone(),
            destinations: channel
                .destinations
                .iter()
                .map(|arn| Destination { r#type: "EVENT_DATA_STORE".into(), location: arn.clone() })
                .collect(),
            tags: None,
            source_config: None,
            ingestion_status: None,
        }
    }
}

/// An entry of `ListEventDataStores` or `ListChannels`.
#[derive(Debug, Clone)]
pub struct Listed {
    /// The ARN.
    pub arn: String,
    /// The name.
    pub name: String,
}

/// A resource policy's input (`ResourceArn`, and `ResourcePolicy` to put one).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)]
pub struct ResourcePolicyIn {
    pub resource_arn: String,
    pub resource_policy: Option<String>,
}

/// `AddTags` / `RemoveTags` input.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)]
pub struct TagsIn {
    pub resource_id: String,
    pub tags_list: Vec<Tag>,
}

/// `ListTags` input.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)]
pub struct ListTagsIn {
    pub resource_id_list: Vec<String>,
    pub next_token: Option<String>,
}

/// One resource's tags in `ListTags`' answer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)]
pub struct ResourceTags {
    pub resource_id: String,
    pub tags_list: Vec<Tag>,
}

/// What a resource ARN names, for the operations that take any resource (policies, tags).
enum Resource {
    Store(EventDataStore),
    Channel(Channel),
}

fn now() -> f64 {
    audit_event::EventTime::now().unix_millis() as f64 / 1000.0
}

fn check_name(name: &str, what: &str) -> Result<(), AwsError> {
    let ok = (3..=128).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(AwsError::client(
            "InvalidParameterException",
            format!("{what} name {name:?} is invalid: use 3 to 128 letters, digits, '.', '_' or '-'."),
        ))
    }
}

fn store_arn(caller: &Caller, id: &str) -> String {
    format!("arn:aws:cloudtrail:{}:{}:eventdatastore/{id}", caller.region, caller.account)
}

fn channel_arn(caller: &Caller, id: &str) -> String {
    format!("arn:aws:cloudtrail:{}:{}:channel/{id}", caller.region, caller.account)
}

/// Whether a store deleted more than the deletion wait ago is gone (it is neither found nor
/// listed, and cannot be restored).
fn gone(store: &EventDataStore) -> bool {
    store.status == "PENDING_DELETION" && now() - store.updated > DELETION_WAIT_SECS
}

/// The ARN a store reference names: an ARN as given, or the id in the caller's account and region.
fn store_ref_arn(caller: &Caller, given: &str) -> Result<String, AwsError> {
    if given.starts_with("arn:") {
        if given.split(':').count() != 6 || !given.contains(":eventdatastore/") {
            return Err(AwsError::client(
                "EventDataStoreARNInvalidException",
                format!("The specified event data store ARN {given:?} is not valid."),
            ));
        }
        return Ok(given.to_owned());
    }
    if !(3..=256).contains(&given.len()) {
        return Err(AwsError::client(
            "EventDataStoreARNInvalidException",
            format!("The specified event data store ARN or ID {given:?} is not valid."),
        ));
    }
    Ok(store_arn(caller, given))
}

fn store_not_found(given: &str) -> AwsError {
    AwsError::client(
        "EventDataStoreNotFoundException",
        format!("The specified event data store {given} was not found."),
    )
}

/// Checks advanced event selectors against CloudTrail's rules; returns whether they select
/// integration events (`eventCategory = ActivityAuditLog`).
fn check_selectors(selectors: &[AdvancedEventSelector]) -> Result<(), AwsError> {
    let invalid = |m: String| AwsError::client("InvalidEventSelectorsException", m);
    if selectors.len() > 5 {
        return Err(invalid("An event data store has at most 5 advanced event selectors.".into()));
    }
    let mut activity = 0;
    for (i, selector) in selectors.iter().enumerate() {
        let n = i + 1;
        if selector.name.as_ref().is_some_and(|name| name.len() > 1000) {
            return Err(invalid(format!("Selector {n}: Name is at most 1000 characters.")));
        }
        if selector.field_selectors.is_empty() {
            return Err(invalid("Each advanced event selector needs a non-empty FieldSelectors list.".into()));
        }
        let mut categories = Vec::new();
        for field in &selector.field_selectors {
            let name = field.field.as_str();
            if !SELECTOR_FIELDS.contains(&name) {
                return Err(invalid(format!(
                    "Selector {n}: {name:?} is not a field an advanced event selector can test; use one of {}.",
                    SELECTOR_FIELDS.join(", ")
                )));
            }
            let operators = field.operators();
            if operators.is_empty() {
                return Err(invalid(format!(
                    "Selector {n}: the field selector on {name} needs an operator (Equals, StartsWith, …)."
                )));
            }
            for (operator, values) in &operators {
                if values.is_empty() || values.iter().any(|v| v.is_empty() || v.len() > 2048) {
                    return Err(invalid(format!(
                        "Selector {n}: {name} {operator} needs 1 or more values of 1 to 2048 characters."
                    )));
                }
            }
            match name {
                "eventCategory" => {
                    let only_equals = operators.len() == 1 && operators[0].0 == "Equals";
                    if !only_equals {
                        return Err(invalid(
                            "eventCategory supports only the Equals operator, with at least one value.".into(),
                        ));
                    }
                    for value in operators[0].1 {
                        if !EVENT_CATEGORIES.contains(&value.as_str()) {
                            return Err(invalid(format!(
                                "Selector {n}: eventCategory {value:?} is not one of {}.",
                                EVENT_CATEGORIES.join(", ")
                            )));
                        }
                        categories.push(value.as_str());
                    }
                }
                "readOnly" => {
                    let valid = operators.len() == 1
                        && operators[0].0 == "Equals"
                        && operators[0].1.iter().all(|v| v == "true" || v == "false");
                    if !valid {
                        return Err(invalid(format!("Selector {n}: readOnly takes Equals \"true\" or \"false\".")));
                    }
                }
                _ => {}
            }
        }
        if categories.is_empty() {
            return Err(invalid(format!(
                "Selector {n}: every advanced event selector needs an eventCategory field selector."
            )));
        }
        if categories.contains(&"ActivityAuditLog") {
            if categories.iter().any(|c| *c != "ActivityAuditLog") {
                return Err(invalid(format!(
                    "Selector {n}: an event data store of integration events (ActivityAuditLog) collects no other category."
                )));
            }
            activity += 1;
        }
    }
    if activity > 0 && activity < selectors.len() {
        return Err(invalid(
            "An event data store of integration events (ActivityAuditLog) collects no other category.".into(),
        ));
    }
    Ok(())
}

fn check_tags(tags: &[Tag]) -> Result<(), AwsError> {
    let invalid = |m: String| AwsError::client("InvalidTagParameterException", m);
    for tag in tags {
        if !(1..=128).contains(&tag.key.chars().count()) {
            return Err(invalid(format!("Tag key {:?} must be 1 to 128 characters.", tag.key)));
        }
        if tag.key.to_ascii_lowercase().starts_with("aws:") {
            return Err(invalid(format!("Tag key {:?}: the prefix aws: is reserved for AWS.", tag.key)));
        }
        if tag.value.as_ref().is_some_and(|v| v.chars().count() > 256) {
            return Err(invalid(format!("The value of tag {:?} must be at most 256 characters.", tag.key)));
        }
    }
    Ok(())
}

/// `tags` with `added` merged in (a key given again takes the new value), within the limit.
fn merge_tags(mut tags: Vec<Tag>, added: Vec<Tag>) -> Result<Vec<Tag>, AwsError> {
    for tag in added {
        match tags.iter_mut().find(|t| t.key == tag.key) {
            Some(existing) => existing.value = tag.value,
            None => tags.push(tag),
        }
    }
    if tags.len() > MAX_TAGS {
        return Err(AwsError::client(
            "TagsLimitExceededException",
            format!("A resource has at most {MAX_TAGS} tags; this would give it {}.", tags.len()),
        ));
    }
    Ok(tags)
}

fn tags_of(value: &serde_json::Value) -> Vec<Tag> {
    serde_json::from_value(value.clone()).unwrap_or_default()
}

fn retention(days: Option<i64>, billing_mode: &str) -> Result<Option<i64>, AwsError> {
    let Some(days) = days else { return Ok(None) };
    let max = if billing_mode == "FIXED_RETENTION_PRICING" { 2557 } else { 3653 };
    if !(7..=max).contains(&days) {
        return Err(AwsError::invalid_parameter(format!(
            "RetentionPeriod {days} must be between 7 and {max} days for {billing_mode}."
        )));
    }
    Ok(Some(days))
}

fn billing_mode(mode: Option<&str>) -> Result<Option<String>, AwsError> {
    match mode {
        None => Ok(None),
        Some(m @ ("EXTENDABLE_RETENTION_PRICING" | "FIXED_RETENTION_PRICING")) => Ok(Some(m.to_owned())),
        Some(other) => Err(AwsError::invalid_parameter(format!(
            "BillingMode {other:?} is not one of EXTENDABLE_RETENTION_PRICING, FIXED_RETENTION_PRICING."
        ))),
    }
}

fn no_organizations() -> AwsError {
    AwsError::client(
        "OrganizationNotInAllFeaturesModeException",
        "The lake has no AWS Organizations; OrganizationEnabled must be false.",
    )
}

fn pending_deletion(store: &EventDataStore) -> AwsError {
    AwsError::client("InactiveEventDataStoreException", format!("Event data store {} is pending deletion.", store.arn))
}

/// Checks a resource policy against CloudTrail's rules for the resource's kind: a channel's may
/// grant only `cloudtrail-data:PutAuditEvents`, an event data store's only query and read actions;
/// each statement names 1 to 50 principals (accounts, roots, users, roles or sessions), and any
/// `Resource` is the resource's own ARN.
pub(crate) fn check_resource_policy(text: &str, arn: &str, channel: bool) -> Result<Policy, AwsError> {
    let invalid = |m: String| AwsError::client("ResourcePolicyNotValidException", m);
    if text.is_empty() || text.len() > 8192 {
        return Err(invalid("ResourcePolicy must be 1 to 8192 characters.".into()));
    }
    let policy = Policy::parse(text).map_err(|e| invalid(format!("The policy {e}.")))?;
    if policy.statements.is_empty() || policy.statements.len() > 20 {
        return Err(invalid("A resource policy must have 1 to 20 statements.".into()));
    }
    let kind = if channel { "channel" } else { "event data store" };
    for (i, statement) in policy.statements.iter().enumerate() {
        let n = i + 1;
        let Some(principals) = &statement.principals else {
            return Err(invalid(format!("Statement {n} needs a Principal.")));
        };
        if principals.is_empty() || principals.len() > 50 {
            return Err(invalid(format!("Statement {n} must name 1 to 50 principals.")));
        }
        if let Some(bad) = principals.iter().find(|p| !super::iam::valid_principal(p)) {
            return Err(invalid(format!(
                "Statement {n}: {bad:?} is not a principal: name an account id, or an IAM or STS ARN of an account."
            )));
        }
        let allowed = |a: &String| {
            if channel { a == "cloudtrail-data:PutAuditEvents" } else { STORE_POLICY_ACTIONS.contains(&a.as_str()) }
        };
        if statement.not_action || !statement.actions.iter().all(allowed) {
            let expected =
                if channel { "cloudtrail-data:PutAuditEvents".to_owned() } else { STORE_POLICY_ACTIONS.join(", ") };
            return Err(invalid(format!("Statement {n}: a {kind} policy may name only {expected}.")));
        }
        if let Some(resources) = &statement.resources
            && resources.iter().any(|r| r != arn)
        {
            return Err(invalid(format!("Statement {n}: Resource must be the {kind}'s ARN {arn}.")));
        }
    }
    Ok(policy)
}

impl Lake {
    /// Requires the caller's identity to allow `cloudtrail:<operation>` on `arn` of its account
    /// (or, for a store, what the store's resource policy allows).
    fn require_cloudtrail(&self, caller: &Caller, operation: &str, arn: &str) -> Result<(), AwsError> {
        authz::require(
            &self.store,
            caller,
            &format!("cloudtrail:{operation}"),
            Target::owned(arn, &caller.account),
            "AccessDeniedException",
            400,
        )
    }

    /// The pattern of the caller's stores or channels, for creating and listing.
    fn all_of(caller: &Caller, kind: &str) -> String {
        format!("arn:aws:cloudtrail:{}:{}:{kind}/*", caller.region, caller.account)
    }

    /// A store of the caller's account and region by ARN or id (not one deleted past the wait).
    pub(crate) fn find_store(&self, caller: &Caller, given: &str) -> Result<EventDataStore, AwsError> {
        let arn = store_ref_arn(caller, given)?;
        self.store
            .event_data_store(&arn)
            .filter(|s| s.account == caller.account && s.region == caller.region && !gone(s))
            .ok_or_else(|| store_not_found(given))
    }

    /// A store a query may read: the caller's, or another account's (by ARN, or by id: ids are
    /// unique) when it has a resource policy, which then decides ([`crate::authz`]); another
    /// account's store without one is not found, as if it did not exist.
    pub(crate) fn find_store_to_query(&self, caller: &Caller, given: &str) -> Result<EventDataStore, AwsError> {
        let arn = store_ref_arn(caller, given)?;
        let found = match self.store.event_data_store(&arn) {
            None if !given.starts_with("arn:") => self.store.event_data_store_by_id(&given.to_ascii_lowercase()),
            found => found,
        };
        found
            .filter(|s| s.region == caller.region && !gone(s))
            .filter(|s| s.account == caller.account || s.resource_policy.is_some())
            .ok_or_else(|| store_not_found(given))
    }

    /// Authorizes `cloudtrail:<operation>` on a store, with its resource policy.
    pub(crate) fn authorize_store(
        &self,
        caller: &Caller,
        operation: &str,
        store: &EventDataStore,
    ) -> Result<(), AwsError> {
        let policy = match &store.resource_policy {
            Some(text) => Some(self.store.policy(text).map_err(|_| AwsError::internal())?),
            None => None,
        };
        let target = Target { arn: &store.arn, owner: &store.account, policy: policy.as_deref() };
        authz::require(&self.store, caller, &format!("cloudtrail:{operation}"), target, "AccessDeniedException", 400)
    }

    /// `CreateEventDataStore`.
    pub async fn create_event_data_store(
        &self,
        caller: &Caller,
        input: CreateEventDataStore,
    ) -> Result<StoreOut, AwsError> {
        self.require_cloudtrail(caller, "CreateEventDataStore", &Self::all_of(caller, "eventdatastore"))?;
        check_name(&input.name, "Event data store")?;
        let selectors = input.advanced_event_selectors.unwrap_or_default();
        check_selectors(&selectors)?;
        let billing =
            billing_mode(input.billing_mode.as_deref())?.unwrap_or_else(|| "EXTENDABLE_RETENTION_PRICING".into());
        let retention = retention(input.retention_period, &billing)?
            .unwrap_or(if billing == "FIXED_RETENTION_PRICING" { 2557 } else { 366 });
        if input.organization_enabled == Some(true) {
            return Err(no_organizations());
        }
        let tags = input.tags_list.unwrap_or_default();
        if tags.len() > 200 {
            return Err(AwsError::invalid_parameter("TagsList must be a list of at most 200 tags."));
        }
        check_tags(&tags)?;
        let tags = merge_tags(Vec::new(), tags)?;
        let _guard = self.control.lock().await;
        let mine: Vec<EventDataStore> =
            self.store.event_data_stores_of(&caller.account, &caller.region).into_iter().filter(|s| !gone(s)).collect();
        if mine.iter().any(|s| s.name == input.name) {
            return Err(AwsError::client(
                "EventDataStoreAlreadyExistsException",
                format!("An event data store named {} already exists.", input.name),
            ));
        }
        if mine.len() >= MAX_STORES {
            return Err(AwsError::client(
                "EventDataStoreMaxLimitExceededException",
                format!("Your account has reached the limit of {MAX_STORES} event data stores in {}.", caller.region),
            ));
        }
        let id = uuid::Uuid::new_v4().to_string();
        let created = now();
        let selectors = serde_json::to_value(&selectors).expect("serializable");
        let mut store = EventDataStore {
            arn: store_arn(caller, &id),
            id,
            account: caller.account.clone(),
            region: caller.region.clone(),
            name: input.name,
            status: "ENABLED".into(),
            advanced_event_selectors: selectors,
            multi_region_enabled: input.multi_region_enabled.unwrap_or(true),
            organization_enabled: false,
            retention_period: retention,
            termination_protection_enabled: input.termination_protection_enabled.unwrap_or(true),
            tags: serde_json::to_value(&tags).expect("serializable"),
            kms_key_id: input.kms_key_id,
            billing_mode: billing,
            created,
            updated: created,
            resource_policy: None,
        };
        // Integration stores take events through channels, whatever StartIngestion says.
        if input.start_ingestion == Some(false) && !store.is_activity_audit_log() {
            store.status = "STOPPED_INGESTION".into();
        }
        self.store.put_store(store.clone()).await.map_err(internal)?;
        tracing::info!(arn = %store.arn, account = %caller.account, "Created an event data store.");
        let mut out = StoreOut::of(&store);
        if store.status == "ENABLED" {
            out.status = "CREATED".into();
        }
        out.tags_list = Some(tags);
        Ok(out)
    }

    /// `GetEventDataStore`.
    pub fn get_event_data_store(&self, caller: &Caller, input: StoreRef) -> Result<StoreOut, AwsError> {
        let store = self.find_store_to_query(caller, &input.event_data_store)?;
        self.authorize_store(caller, "GetEventDataStore", &store)?;
        let mut out = StoreOut::of(&store);
        out.federation_status = Some("DISABLED");
        Ok(out)
    }

    /// `ListEventDataStores`, oldest first.
    pub fn list_event_data_stores(&self, caller: &Caller, paging: &Paging) -> Result<Paged<Listed>, AwsError> {
        self.require_cloudtrail(caller, "ListEventDataStores", &Self::all_of(caller, "eventdatastore"))?;
        let mut stores: Vec<EventDataStore> =
            self.store.event_data_stores_of(&caller.account, &caller.region).into_iter().filter(|s| !gone(s)).collect();
        stores.sort_by(|a, b| a.created.total_cmp(&b.created).then(a.arn.cmp(&b.arn)));
        paging.of(stores.into_iter().map(|s| Listed { arn: s.arn, name: s.name }).collect())
    }

    /// `UpdateEventDataStore`.
    pub async fn update_event_data_store(
        &self,
        caller: &Caller,
        input: UpdateEventDataStore,
    ) -> Result<StoreOut, AwsError> {
        let arn = store_ref_arn(caller, &input.event_data_store)?;
        self.require_cloudtrail(caller, "UpdateEventDataStore", &arn)?;
        let any = input.name.is_some()
            || input.advanced_event_selectors.is_some()
            || input.multi_region_enabled.is_some()
            || input.organization_enabled.is_some()
            || input.retention_period.is_some()
            || input.termination_protection_enabled.is_some()
            || input.kms_key_id.is_some()
            || input.billing_mode.is_some();
        if !any {
            return Err(AwsError::invalid_parameter(
                "Specify at least one of Name, AdvancedEventSelectors, MultiRegionEnabled, OrganizationEnabled, RetentionPeriod, TerminationProtectionEnabled, KmsKeyId, BillingMode to update.",
            ));
        }
        let _guard = self.control.lock().await;
        let mut store = self.find_store(caller, &input.event_data_store)?;
        if store.status == "PENDING_DELETION" {
            return Err(pending_deletion(&store));
        }
        if let Some(name) = input.name {
            check_name(&name, "Event data store")?;
            let taken = self
                .store
                .event_data_stores_of(&caller.account, &caller.region)
                .iter()
                .any(|s| s.name == name && s.arn != store.arn && !gone(s));
            if taken {
                return Err(AwsError::client(
                    "EventDataStoreAlreadyExistsException",
                    format!("An event data store named {name} already exists."),
                ));
            }
            store.name = name;
        }
        if let Some(selectors) = input.advanced_event_selectors {
            check_selectors(&selectors)?;
            let was_activity = store.is_activity_audit_log();
            let mut candidate = store.clone();
            candidate.advanced_event_selectors = serde_json::to_value(&selectors).expect("serializable");
            if was_activity != candidate.is_activity_audit_log() {
                return Err(AwsError::client(
                    "InvalidEventSelectorsException",
                    "An event data store of non-AWS events (ActivityAuditLog) cannot be changed to log AWS events, or the reverse.",
                ));
            }
            store.advanced_event_selectors = candidate.advanced_event_selectors;
        }
        if let Some(b) = input.multi_region_enabled {
            store.multi_region_enabled = b;
        }
        if input.organization_enabled == Some(true) {
            return Err(no_organizations());
        }
        if let Some(mode) = billing_mode(input.billing_mode.as_deref())? {
            store.billing_mode = mode;
        }
        if let Some(days) = retention(input.retention_period, &store.billing_mode)? {
            store.retention_period = days;
        }
        if let Some(b) = input.termination_protection_enabled {
            store.termination_protection_enabled = b;
        }
        if let Some(kms) = input.kms_key_id {
            store.kms_key_id = Some(kms);
        }
        store.updated = now();
        self.store.put_store(store.clone()).await.map_err(internal)?;
        Ok(StoreOut::of(&store))
    }

    /// `DeleteEventDataStore`: the store waits seven days pending deletion, restorable meanwhile.
    pub async fn delete_event_data_store(&self, caller: &Caller, input: StoreRef) -> Result<(), AwsError> {
        let arn = store_ref_arn(caller, &input.event_data_store)?;
        self.require_cloudtrail(caller, "DeleteEventDataStore", &arn)?;
        let _guard = self.control.lock().await;
        let mut store = self.find_store(caller, &input.event_data_store)?;
        if store.status == "PENDING_DELETION" {
            return Err(AwsError::client(
                "InactiveEventDataStoreException",
                format!("Event data store {} is already pending deletion.", store.arn),
            ));
        }
        if store.termination_protection_enabled {
            return Err(AwsError::client(
                "EventDataStoreTerminationProtectedException",
                format!(
                    "Event data store {} has termination protection enabled; disable it with UpdateEventDataStore first.",
                    store.arn
                ),
            ));
        }
        if let Some(channel) = self.store.channel_into(&store.arn) {
            return Err(AwsError::client(
                "ChannelExistsForEDSException",
                format!(
                    "Event data store {} is a destination of channel {}; delete or update the channel first.",
                    store.arn, channel.arn
                ),
            ));
        }
        store.status = "PENDING_DELETION".into();
        store.updated = now();
        self.store.put_store(store).await.map_err(internal)
    }

    /// `RestoreEventDataStore`: a store pending deletion, within the seven-day wait, is enabled
    /// again with everything it held.
    pub async fn restore_event_data_store(&self, caller: &Caller, input: StoreRef) -> Result<StoreOut, AwsError> {
        let arn = store_ref_arn(caller, &input.event_data_store)?;
        self.require_cloudtrail(caller, "RestoreEventDataStore", &arn)?;
        let _guard = self.control.lock().await;
        let mut store = self.find_store(caller, &input.event_data_store)?;
        if store.status != "PENDING_DELETION" {
            return Err(AwsError::client(
                "InvalidEventDataStoreStatusException",
                format!(
                    "Event data store {} is {}, not pending deletion: there is nothing to restore.",
                    store.arn, store.status
                ),
            ));
        }
        let active = self
            .store
            .event_data_stores_of(&caller.account, &caller.region)
            .iter()
            .filter(|s| s.status != "PENDING_DELETION")
            .count();
        if active >= MAX_STORES {
            return Err(AwsError::client(
                "EventDataStoreMaxLimitExceededException",
                format!("Your account has reached the limit of {MAX_STORES} event data stores in {}.", caller.region),
            ));
        }
        store.status = "ENABLED".into();
        store.updated = now();
        self.store.put_store(store.clone()).await.map_err(internal)?;
        tracing::info!(arn = %store.arn, "Restored an event data store.");
        Ok(StoreOut::of(&store))
    }

    /// `StartEventDataStoreIngestion` / `StopEventDataStoreIngestion`: only for stores of AWS
    /// events (an integration store takes its events through channels).
    pub async fn set_ingestion(&self, caller: &Caller, input: StoreRef, start: bool) -> Result<(), AwsError> {
        let operation = if start { "StartEventDataStoreIngestion" } else { "StopEventDataStoreIngestion" };
        let arn = store_ref_arn(caller, &input.event_data_store)?;
        self.require_cloudtrail(caller, operation, &arn)?;
        let _guard = self.control.lock().await;
        let mut store = self.find_store(caller, &input.event_data_store)?;
        if store.is_activity_audit_log() {
            return Err(AwsError::client(
                "InvalidEventDataStoreCategoryException",
                format!(
                    "{operation} applies to event data stores of Management, Data, NetworkActivity or ConfigurationItem events; {} holds integration events (ActivityAuditLog).",
                    store.arn
                ),
            ));
        }
        let (from, to) = if start { ("STOPPED_INGESTION", "ENABLED") } else { ("ENABLED", "STOPPED_INGESTION") };
        if store.status != from {
            return Err(AwsError::client(
                "InvalidEventDataStoreStatusException",
                format!("Event data store {} is {}; {operation} needs it {from}.", store.arn, store.status),
            ));
        }
        store.status = to.into();
        store.updated = now();
        self.store.put_store(store).await.map_err(internal)
    }

    // Channels.

    /// A channel of the caller's account and region by ARN or id.
    fn find_channel(&self, caller: &Caller, given: &str) -> Result<Channel, AwsError> {
        let arn = self.channel_ref_arn(caller, given)?;
        self.store
            .channel(&arn)
            .filter(|c| c.account == caller.account && c.region == caller.region)
            .ok_or_else(|| AwsError::client("ChannelNotFoundException", format!("The channel {given} was not found.")))
    }

    fn channel_ref_arn(&self, caller: &Caller, given: &str) -> Result<String, AwsError> {
        if given.starts_with("arn:") {
            if given.split(':').count() != 6 || !given.contains(":channel/") {
                return Err(AwsError::client(
                    "ChannelARNInvalidException",
                    format!("The specified channel ARN {given:?} is not valid."),
                ));
            }
            return Ok(given.to_owned());
        }
        if !(3..=256).contains(&given.len()) {
            return Err(AwsError::client(
                "ChannelARNInvalidException",
                format!("The specified channel ARN or ID {given:?} is not valid."),
            ));
        }
        Ok(channel_arn(caller, given))
    }

    /// Resolves destinations to event data store ARNs, checking each store.
    fn destinations(&self, caller: &Caller, list: &[Destination]) -> Result<Vec<String>, AwsError> {
        if list.is_empty() || list.len() > 200 {
            return Err(AwsError::invalid_parameter("Destinations must hold 1 to 200 destinations."));
        }
        let mut arns = Vec::new();
        for destination in list {
            match destination.r#type.as_str() {
                "EVENT_DATA_STORE" => {}
                "AWS_SERVICE" => {
                    return Err(AwsError::invalid_parameter(
                        "Destinations of Type AWS_SERVICE are for service-linked channels; use EVENT_DATA_STORE.",
                    ));
                }
                _ => return Err(AwsError::invalid_parameter("Each destination needs Type EVENT_DATA_STORE.")),
            }
            let store = self.find_store(caller, &destination.location)?;
            if store.status == "PENDING_DELETION" {
                return Err(pending_deletion(&store));
            }
            if !store.is_activity_audit_log() {
                return Err(AwsError::client(
                    "InvalidEventDataStoreCategoryException",
                    format!(
                        "Event data store {} does not collect integration events; create it with the advanced event selector eventCategory = ActivityAuditLog.",
                        store.arn
                    ),
                ));
            }
            if !arns.contains(&store.arn) {
                arns.push(store.arn);
            }
        }
        Ok(arns)
    }

    /// `CreateChannel`: one per source (`Custom` or a partner's) and account.
    pub async fn create_channel(&self, caller: &Caller, input: CreateChannel) -> Result<ChannelOut, AwsError> {
        self.require_cloudtrail(caller, "CreateChannel", &Self::all_of(caller, "channel"))?;
        check_name(&input.name, "Channel")?;
        if !CHANNEL_SOURCES.contains(&input.source.as_str()) {
            return Err(AwsError::client(
                "InvalidSourceException",
                format!(
                    "Source {:?} is not valid: use Custom, or a partner source name ({}).",
                    input.source,
                    CHANNEL_SOURCES[1..].join(", ")
                ),
            ));
        }
        let tags = input.tags.unwrap_or_default();
        check_tags(&tags)?;
        let tags = merge_tags(Vec::new(), tags)?;
        let _guard = self.control.lock().await;
        let arns = self.destinations(caller, &input.destinations)?;
        let mine = self.store.channels_of(&caller.account, &caller.region);
        if mine.iter().any(|c| c.name == input.name) {
            return Err(AwsError::client(
                "ChannelAlreadyExistsException",
                format!("A channel named {} already exists.", input.name),
            ));
        }
        if let Some(other) = mine.iter().find(|c| c.source == input.source) {
            return Err(AwsError::client(
                "ChannelAlreadyExistsException",
                format!(
                    "Channel {} already exists for source {}; a maximum of one channel is allowed per source.",
                    other.arn, input.source
                ),
            ));
        }
        if mine.len() >= MAX_CHANNELS {
            return Err(AwsError::client(
                "ChannelMaxLimitExceededException",
                format!("Your account has reached the limit of {MAX_CHANNELS} channels."),
            ));
        }
        let id = uuid::Uuid::new_v4().to_string();
        let channel = Channel {
            arn: channel_arn(caller, &id),
            id,
            account: caller.account.clone(),
            region: caller.region.clone(),
            name: input.name,
            source: input.source,
            destinations: arns,
            tags: serde_json::to_value(&tags).expect("serializable"),
            resource_policy: None,
        };
        self.store.put_channel(channel.clone()).await.map_err(internal)?;
        tracing::info!(arn = %channel.arn, source = %channel.source, "Created a channel.");
        let mut out = ChannelOut::of(&channel);
        out.tags = Some(tags);
        Ok(out)
    }

    /// `GetChannel`, with its latest ingestion.
    pub fn get_channel(&self, caller: &Caller, input: ChannelRef) -> Result<ChannelOut, AwsError> {
        let arn = self.channel_ref_arn(caller, &input.channel)?;
        self.require_cloudtrail(caller, "GetChannel", &arn)?;
        let channel = self.find_channel(caller, &input.channel)?;
        let status = self.store.ingestion(&channel.arn);
        let mut ingestion = serde_json::Map::new();
        let mut put = |key: &str, value: Option<serde_json::Value>| {
            if let Some(v) = value {
                ingestion.insert(key.to_owned(), v);
            }
        };
        put("LatestIngestionSuccessTime", status.latest_success_time.map(serde_json::Value::from));
        put("LatestIngestionSuccessEventID", status.latest_success_event_id.map(serde_json::Value::String));
        put("LatestIngestionErrorCode", status.latest_error_code.map(serde_json::Value::String));
        put("LatestIngestionAttemptTime", status.latest_attempt_time.map(serde_json::Value::from));
        put("LatestIngestionAttemptEventID", status.latest_attempt_event_id.map(serde_json::Value::String));
        let mut out = ChannelOut::of(&channel);
        out.source_config = Some(serde_json::json!({"ApplyToAllRegions": false, "AdvancedEventSelectors": []}));
        out.ingestion_status = Some(serde_json::Value::Object(ingestion));
        Ok(out)
    }

    /// `ListChannels`, by ARN.
    pub fn list_channels(&self, caller: &Caller, paging: &Paging) -> Result<Paged<Listed>, AwsError> {
        self.require_cloudtrail(caller, "ListChannels", &Self::all_of(caller, "channel"))?;
        let mut channels: Vec<Listed> = self
            .store
            .channels_of(&caller.account, &caller.region)
            .into_iter()
            .map(|c| Listed { arn: c.arn, name: c.name })
            .collect();
        channels.sort_by(|a, b| a.arn.cmp(&b.arn).then(a.name.cmp(&b.name)));
        paging.of(channels)
    }

    /// `UpdateChannel`.
    pub async fn update_channel(&self, caller: &Caller, input: UpdateChannel) -> Result<ChannelOut, AwsError> {
        let arn = self.channel_ref_arn(caller, &input.channel)?;
        self.require_cloudtrail(caller, "UpdateChannel", &arn)?;
        let _guard = self.control.lock().await;
        let mut channel = self.find_channel(caller, &input.channel)?;
        if let Some(name) = input.name {
            check_name(&name, "Channel")?;
            let taken = self
                .store
                .channels_of(&caller.account, &caller.region)
                .iter()
                .any(|c| c.name == name && c.arn != channel.arn);
            if taken {
                return Err(AwsError::client(
                    "ChannelAlreadyExistsException",
                    format!("A channel named {name} already exists."),
                ));
            }
            channel.name = name;
        }
        if let Some(destinations) = &input.destinations {
            channel.destinations = self.destinations(caller, destinations)?;
        }
        self.store.put_channel(channel.clone()).await.map_err(internal)?;
        Ok(ChannelOut::of(&channel))
    }

    /// `DeleteChannel`.
    pub async fn delete_channel(&self, caller: &Caller, input: ChannelRef) -> Result<(), AwsError> {
        let arn = self.channel_ref_arn(caller, &input.channel)?;
        self.require_cloudtrail(caller, "DeleteChannel", &arn)?;
        let _guard = self.control.lock().await;
        let channel = self.find_channel(caller, &input.channel)?;
        self.store.delete_channel(&channel.arn).await.map_err(internal)?;
        tracing::info!(arn = %channel.arn, "Deleted a channel.");
        Ok(())
    }

    // Resources by ARN: resource policies and tags.

    /// The channel or event data store an ARN names, in the caller's account and region.
    /// `invalid` is the operation's code for an ARN that is not one.
    fn find_resource(&self, caller: &Caller, arn: &str, invalid: &'static str) -> Result<Resource, AwsError> {
        let parts: Vec<&str> = arn.split(':').collect();
        if parts.len() != 6 || parts[0] != "arn" || parts[2] != "cloudtrail" {
            return Err(AwsError::client(invalid, format!("{arn:?} is not a valid CloudTrail resource ARN.")));
        }
        let missing = || AwsError::client("ResourceNotFoundException", format!("The resource {arn} was not found."));
        if parts[5].starts_with("channel/") {
            return self.find_channel(caller, arn).map(Resource::Channel).map_err(|_| missing());
        }
        if parts[5].starts_with("eventdatastore/") {
            return self.find_store(caller, arn).map(Resource::Store).map_err(|_| missing());
        }
        Err(AwsError::client(
            "ResourceTypeNotSupportedException",
            format!("The lake keeps channels and event data stores; {arn} is neither."),
        ))
    }

    /// `PutResourcePolicy`, on a channel or an event data store.
    pub async fn put_resource_policy(
        &self,
        caller: &Caller,
        input: ResourcePolicyIn,
    ) -> Result<(String, String), AwsError> {
        let text = input.resource_policy.ok_or_else(|| AwsError::invalid_parameter("ResourcePolicy is required."))?;
        self.require_cloudtrail(caller, "PutResourcePolicy", &input.resource_arn)?;
        let _guard = self.control.lock().await;
        match self.find_resource(caller, &input.resource_arn, "ResourceARNNotValidException")? {
            Resource::Channel(mut channel) => {
                check_resource_policy(&text, &channel.arn, true)?;
                channel.resource_policy = Some(text.clone());
                self.store.put_channel(channel.clone()).await.map_err(internal)?;
                Ok((channel.arn, text))
            }
            Resource::Store(mut store) => {
                check_resource_policy(&text, &store.arn, false)?;
                store.resource_policy = Some(text.clone());
                self.store.put_store(store.clone()).await.map_err(internal)?;
                Ok((store.arn, text))
            }
        }
    }

    /// `GetResourcePolicy`.
    pub fn get_resource_policy(&self, caller: &Caller, input: ResourcePolicyIn) -> Result<(String, String), AwsError> {
        self.require_cloudtrail(caller, "GetResourcePolicy", &input.resource_arn)?;
        let (arn, policy) = match self.find_resource(caller, &input.resource_arn, "ResourceARNNotValidException")? {
            Resource::Channel(c) => (c.arn, c.resource_policy),
            Resource::Store(s) => (s.arn, s.resource_policy),
        };
        match policy {
            Some(policy) => Ok((arn, policy)),
            None => Err(AwsError::client("ResourcePolicyNotFoundException", format!("{arn} has no resource policy."))),
        }
    }

    /// `DeleteResourcePolicy`.
    pub async fn delete_resource_policy(&self, caller: &Caller, input: ResourcePolicyIn) -> Result<(), AwsError> {
        self.require_cloudtrail(caller, "DeleteResourcePolicy", &input.resource_arn)?;
        let _guard = self.control.lock().await;
        let none =
            |arn: &str| AwsError::client("ResourcePolicyNotFoundException", format!("{arn} has no resource policy."));
        match self.find_resource(caller, &input.resource_arn, "ResourceARNNotValidException")? {
            Resource::Channel(mut channel) => {
                channel.resource_policy.take().ok_or_else(|| none(&channel.arn))?;
                self.store.put_channel(channel).await.map_err(internal)
            }
            Resource::Store(mut store) => {
                store.resource_policy.take().ok_or_else(|| none(&store.arn))?;
                self.store.put_store(store).await.map_err(internal)
            }
        }
    }

    /// `AddTags`: a key given again takes the new value; at most 50 tags per resource.
    pub async fn add_tags(&self, caller: &Caller, input: TagsIn) -> Result<(), AwsError> {
        self.require_cloudtrail(caller, "AddTags", &input.resource_id)?;
        check_tags(&input.tags_list)?;
        let _guard = self.control.lock().await;
        match self.find_resource(caller, &input.resource_id, "CloudTrailARNInvalidException")? {
            Resource::Channel(mut channel) => {
                let tags = merge_tags(tags_of(&channel.tags), input.tags_list)?;
                channel.tags = serde_json::to_value(tags).expect("serializable");
                self.store.put_channel(channel).await.map_err(internal)
            }
            Resource::Store(mut store) => {
                let tags = merge_tags(tags_of(&store.tags), input.tags_list)?;
                store.tags = serde_json::to_value(tags).expect("serializable");
                self.store.put_store(store).await.map_err(internal)
            }
        }
    }

    /// `RemoveTags`: removes the keys given.
    pub async fn remove_tags(&self, caller: &Caller, input: TagsIn) -> Result<(), AwsError> {
        self.require_cloudtrail(caller, "RemoveTags", &input.resource_id)?;
        let _guard = self.control.lock().await;
        let keep = |tags: Vec<Tag>| -> Vec<Tag> {
            tags.into_iter().filter(|t| !input.tags_list.iter().any(|r| r.key == t.key)).collect()
        };
        match self.find_resource(caller, &input.resource_id, "CloudTrailARNInvalidException")? {
            Resource::Channel(mut channel) => {
                channel.tags = serde_json::to_value(keep(tags_of(&channel.tags))).expect("serializable");
                self.store.put_channel(channel).await.map_err(internal)
            }
            Resource::Store(mut store) => {
                store.tags = serde_json::to_value(keep(tags_of(&store.tags))).expect("serializable");
                self.store.put_store(store).await.map_err(internal)
            }
        }
    }

    /// `ListTags`: the tags of up to 20 resources.
    pub fn list_tags(&self, caller: &Caller, input: ListTagsIn) -> Result<Vec<ResourceTags>, AwsError> {
        if input.resource_id_list.is_empty() || input.resource_id_list.len() > 20 {
            return Err(AwsError::invalid_parameter("ResourceIdList must hold 1 to 20 ARNs."));
        }
        if input.next_token.is_some() {
            return Err(AwsError::client("InvalidTokenException", "A token you provided is not valid."));
        }
        let mut out = Vec::with_capacity(input.resource_id_list.len());
        for arn in input.resource_id_list {
            self.require_cloudtrail(caller, "ListTags", &arn)?;
            let tags = match self.find_resource(caller, &arn, "CloudTrailARNInvalidException")? {
                Resource::Channel(c) => tags_of(&c.tags),
                Resource::Store(s) => tags_of(&s.tags),
            };
            out.push(ResourceTags { resource_id: arn, tags_list: tags });
        }
        Ok(out)
    }
}
