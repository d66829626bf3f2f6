//! The `cloudtrail` control plane (awsJson1_1): event data stores, channels and channel resource
//! policies, with CloudTrail's enums, defaults, limits and modelled exceptions.

mod queries;

use serde_json::{Map, Value, json};

use crate::{
    Lake,
    error::AwsError,
    identity::Caller,
    policy::Policy,
    store::model::{Channel, EventDataStore},
};

type Input = Map<String, Value>;

/// Most event data stores per account and region.
const MAX_STORES: usize = 10;
/// Most channels per account and region.
const MAX_CHANNELS: usize = 25;

pub(super) async fn dispatch(lake: &Lake, caller: &Caller, operation: &str, input: Input) -> Result<Value, AwsError> {
    let action = format!("cloudtrail:{operation}");
    if let Some(result) = queries::dispatch(lake, caller, operation, &input).await {
        return result; // authorized per store the query reads
    }
    let resource = resource_of(caller, operation, &input);
    crate::authz::require(
        lake.store(),
        caller,
        &action,
        crate::authz::Target::owned(&resource, &caller.account),
        "AccessDeniedException",
        400,
    )?;
    match operation {
        "CreateEventDataStore" => create_event_data_store(lake, caller, &input).await,
        "GetEventDataStore" => get_event_data_store(lake, caller, &input),
        "ListEventDataStores" => list_event_data_stores(lake, caller, &input),
        "UpdateEventDataStore" => update_event_data_store(lake, caller, &input).await,
        "DeleteEventDataStore" => delete_event_data_store(lake, caller, &input).await,
        "CreateChannel" => create_channel(lake, caller, &input).await,
        "GetChannel" => get_channel(lake, caller, &input),
        "ListChannels" => list_channels(lake, caller, &input),
        "UpdateChannel" => update_channel(lake, caller, &input).await,
        "DeleteChannel" => delete_channel(lake, caller, &input).await,
        "PutResourcePolicy" => put_resource_policy(lake, caller, &input).await,
        "GetResourcePolicy" => get_resource_policy(lake, caller, &input),
        "DeleteResourcePolicy" => delete_resource_policy(lake, caller, &input).await,
        other => Err(AwsError::client(
            "UnsupportedOperationException",
            format!("The lake does not implement CloudTrail operation {other}."),
        )),
    }
}

/// The resource an operation acts on, for identity policies: the named store, channel or ARN, or
/// the account's stores or channels (`…:eventdatastore/*`) for creating and listing.
fn resource_of(caller: &Caller, operation: &str, input: &Input) -> String {
    let named = |key: &str, kind: &str| {
        input.get(key).and_then(Value::as_str).map(|v| {
            if v.starts_with("arn:") {
                v.to_owned()
            } else {
                format!("arn:aws:cloudtrail:{}:{}:{kind}/{v}", caller.region, caller.account)
            }
        })
    };
    named("EventDataStore", "eventdatastore")
        .or_else(|| named("Channel", "channel"))
        .or_else(|| named("ResourceArn", "channel"))
        .unwrap_or_else(|| {
            let kind = if operation.contains("Channel") { "channel" } else { "eventdatastore" };
            format!("arn:aws:cloudtrail:{}:{}:{kind}/*", caller.region, caller.account)
        })
}

// Input helpers.

fn string<'a>(input: &'a Input, name: &str) -> Result<Option<&'a str>, AwsError> {
    match input.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(AwsError::invalid_parameter(format!("{name} must be a string, found {other}."))),
    }
}

fn required<'a>(input: &'a Input, name: &str) -> Result<&'a str, AwsError> {
    string(input, name)?.ok_or_else(|| AwsError::invalid_parameter(format!("{name} is required.")))
}

fn boolean(input: &Input, name: &str) -> Result<Option<bool>, AwsError> {
    match input.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(AwsError::invalid_parameter(format!("{name} must be a boolean, found {other}."))),
    }
}

fn integer(input: &Input, name: &str) -> Result<Option<i64>, AwsError> {
    match input.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| AwsError::invalid_parameter(format!("{name} must be an integer, found {v}."))),
    }
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

/// Now, as the epoch seconds (with milliseconds) CloudTrail's JSON timestamps carry.
fn now() -> f64 {
    audit_event::EventTime::now().unix_millis() as f64 / 1000.0
}

/// Pages a list: `NextToken` is the opaque decimal offset prefixed with `page-`.
fn page<T: Clone>(items: &[T], input: &Input) -> Result<(Vec<T>, Option<String>), AwsError> {
    let max = match integer(input, "MaxResults")? {
        None => 1000,
        Some(n) if (1..=1000).contains(&n) => n as usize,
        Some(n) => {
            return Err(AwsError::client(
                "InvalidMaxResultsException",
                format!("MaxResults {n} must be between 1 and 1000."),
            ));
        }
    };
    let start = match string(input, "NextToken")? {
        None => 0,
        Some(token) => token
            .strip_prefix("page-")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n <= items.len())
            .ok_or_else(|| AwsError::client("InvalidNextTokenException", "A token you provided is not valid."))?,
    };
    let end = (start + max).min(items.len());
    let next = (end < items.len()).then(|| format!("page-{end}"));
    Ok((items[start..end].to_vec(), next))
}

// Event data stores.

fn store_arn(caller: &Caller, id: &str) -> String {
    format!("arn:aws:cloudtrail:{}:{}:eventdatastore/{id}", caller.region, caller.account)
}

/// Finds a store of the caller's account and region by ARN or id.
pub(crate) fn find_store(lake: &Lake, caller: &Caller, given: &str) -> Result<EventDataStore, AwsError> {
    let arn = if given.starts_with("arn:") {
        let valid = given.split(':').count() == 6 && given.contains(":eventdatastore/");
        if !valid {
            return Err(AwsError::client(
                "EventDataStoreARNInvalidException",
                format!("The specified event data store ARN {given:?} is not valid."),
            ));
        }
        given.to_owned()
    } else {
        if !(3..=256).contains(&given.len()) {
            return Err(AwsError::client(
                "EventDataStoreARNInvalidException",
                format!("The specified event data store ARN or ID {given:?} is not valid."),
            ));
        }
        store_arn(caller, given)
    };
    lake.store.event_data_store(&arn).filter(|s| s.account == caller.account && s.region == caller.region).ok_or_else(
        || {
            AwsError::client(
                "EventDataStoreNotFoundException",
                format!("The specified event data store {given} was not found."),
            )
        },
    )
}

fn store_json(store: &EventDataStore, status: Option<&str>) -> Value {
    let mut out = json!({
        "EventDataStoreArn": store.arn,
        "Name": store.name,
        "Status": status.unwrap_or(&store.status),
        "AdvancedEventSelectors": store.advanced_event_selectors,
        "MultiRegionEnabled": store.multi_region_enabled,
        "OrganizationEnabled": store.organization_enabled,
        "RetentionPeriod": store.retention_period,
        "TerminationProtectionEnabled": store.termination_protection_enabled,
        "CreatedTimestamp": store.created,
        "UpdatedTimestamp": store.updated,
        "BillingMode": store.billing_mode,
    });
    if let Some(kms) = &store.kms_key_id {
        out["KmsKeyId"] = json!(kms);
    }
    out
}

fn check_selectors(value: &Value) -> Result<(), AwsError> {
    let invalid = |m: &str| AwsError::client("InvalidEventSelectorsException", m.to_owned());
    let Some(selectors) = value.as_array() else {
        return Err(invalid("AdvancedEventSelectors must be a list."));
    };
    if selectors.len() > 5 {
        return Err(invalid("An event data store has at most 5 advanced event selectors."));
    }
    for selector in selectors {
        let Some(fields) = selector["FieldSelectors"].as_array().filter(|f| !f.is_empty()) else {
            return Err(invalid("Each advanced event selector needs a non-empty FieldSelectors list."));
        };
        for field in fields {
            let Some(name) = field["Field"].as_str() else {
                return Err(invalid("Each field selector needs a Field."));
            };
            if name.eq_ignore_ascii_case("eventCategory") {
                let only_equals = field.as_object().is_some_and(|f| f.keys().all(|k| k == "Field" || k == "Equals"));
                if !only_equals || field["Equals"].as_array().is_none_or(|v| v.is_empty()) {
                    return Err(invalid("eventCategory supports only the Equals operator, with at least one value."));
                }
            }
        }
    }
    Ok(())
}

fn retention(input: &Input, billing_mode: &str) -> Result<Option<i64>, AwsError> {
    let Some(days) = integer(input, "RetentionPeriod")? else {
        return Ok(None);
    };
    let max = if billing_mode == "FIXED_RETENTION_PRICING" { 2557 } else { 3653 };
    if !(7..=max).contains(&days) {
        return Err(AwsError::invalid_parameter(format!(
            "RetentionPeriod {days} must be between 7 and {max} days for {billing_mode}."
        )));
    }
    Ok(Some(days))
}

fn billing_mode(input: &Input) -> Result<Option<String>, AwsError> {
    match string(input, "BillingMode")? {
        None => Ok(None),
        Some(m @ ("EXTENDABLE_RETENTION_PRICING" | "FIXED_RETENTION_PRICING")) => Ok(Some(m.to_owned())),
        Some(other) => Err(AwsError::invalid_parameter(format!(
            "BillingMode {other:?} is not one of EXTENDABLE_RETENTION_PRICING, FIXED_RETENTION_PRICING."
        ))),
    }
}

async fn create_event_data_store(lake: &Lake, caller: &Caller, input: &Input) -> Result<Value, AwsError> {
    let name = required(input, "Name")?;
    check_name(name, "Event data store")?;
    let selectors = input.get("AdvancedEventSelectors").cloned().unwrap_or(Value::Array(Vec::new()));
    check_selectors(&selectors)?;
    let billing = billing_mode(input)?.unwrap_or_else(|| "EXTENDABLE_RETENTION_PRICING".into());
    let retention =
        retention(input, &billing)?.unwrap_or(if billing == "FIXED_RETENTION_PRICING" { 2557 } else { 366 });
    if boolean(input, "OrganizationEnabled")? == Some(true) {
        return Err(AwsError::client(
            "OrganizationNotInAllFeaturesModeException",
            "The lake has no AWS Organizations; OrganizationEnabled must be false.",
        ));
    }
    let tags = input.get("TagsList").cloned().unwrap_or(Value::Array(Vec::new()));
    if tags.as_array().is_none_or(|t| t.len() > 200) {
        return Err(AwsError::invalid_parameter("TagsList must be a list of at most 200 tags."));
    }
    let _guard = lake.control.lock().await;
    {
        let mine = lake.store.event_data_stores_of(&caller.account, &caller.region);
        if mine.iter().any(|s| s.name == name) {
            return Err(AwsError::client(
                "EventDataStoreAlreadyExistsException",
                format!("An event data store named {name} already exists."),
            ));
        }
        if mine.len() >= MAX_STORES {
            return Err(AwsError::client(
                "EventDataStoreMaxLimitExceededException",
                format!("Your account has reached the limit of {MAX_STORES} event data stores in {}.", caller.region),
            ));
        }
    }
    let id = uuid::Uuid::new_v4().to_string();
    let created = now();
    let store = EventDataStore {
        arn: store_arn(caller, &id),
        id,
        account: caller.account.clone(),
        region: caller.region.clone(),
        name: name.to_owned(),
        status: "ENABLED".into(),
        advanced_event_selectors: selectors,
        multi_region_enabled: boolean(input, "MultiRegionEnabled")?.unwrap_or(true),
        organization_enabled: false,
        retention_period: retention,
        termination_protection_enabled: boolean(input, "TerminationProtectionEnabled")?.unwrap_or(true),
        tags: tags.clone(),
        kms_key_id: string(input, "KmsKeyId")?.map(str::to_owned),
        billing_mode: billing,
        created,
        updated: created,
        resource_policy: None,
    };
    lake.store.put_store(store.clone()).await.map_err(internal)?;
    tracing::info!(arn = %store.arn, account = %caller.account, "Created an event data store.");
    let mut out = store_json(&store, Some("CREATED"));
    out["TagsList"] = tags;
    Ok(out)
}

fn get_event_data_store(lake: &Lake, caller: &Caller, input: &Input) -> Result<Value, AwsError> {
    let store = find_store(lake, caller, required(input, "EventDataStore")?)?;
    let mut out = store_json(&store, None);
    out["FederationStatus"] = json!("DISABLED");
    Ok(out)
}

fn list_event_data_stores(lake: &Lake, caller: &Caller, input: &Input) -> Result<Value, AwsError> {
    let mut stores: Vec<(f64, String, String)> = lake
        .store
        .event_data_stores_of(&caller.account, &caller.region)
        .into_iter()
        .map(|s| (s.created, s.arn, s.name))
        .collect();
    stores.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let (items, next) = page(&stores, input)?;
    let mut out = json!({"EventDataStores": items.iter().map(|(_, arn, name)| json!({"EventDataStoreArn": arn, "Name": name})).collect::<Vec<_>>()});
    if let Some(next) = next {
        out["NextToken"] = json!(next);
    }
    Ok(out)
}

async fn update_event_data_store(lake: &Lake, caller: &Caller, input: &Input) -> Result<Value, AwsError> {
    const OPTIONAL: [&str; 8] = [
        "Name",
        "AdvancedEventSelectors",
        "MultiRegionEnabled",
        "OrganizationEnabled",
        "RetentionPeriod",
        "TerminationProtectionEnabled",
        "KmsKeyId",
        "BillingMode",
    ];
    if !OPTIONAL.iter().any(|k| input.get(*k).is_some_and(|v| !v.is_null())) {
        return Err(AwsError::invalid_parameter(format!("Specify at least one of {} to update.", OPTIONAL.join(", "))));
    }
    let _guard = lake.control.lock().await;
    let mut store = find_store(lake, caller, required(input, "EventDataStore")?)?;
    if store.status == "PENDING_DELETION" {
        return Err(AwsError::client(
            "InactiveEventDataStoreException",
            format!("Event data store {} is pending deletion.", store.arn),
        ));
    }
    if let Some(name) = string(input, "Name")? {
        check_name(name, "Event data store")?;
        let taken = lake
            .store
            .event_data_stores_of(&caller.account, &caller.region)
            .iter()
            .any(|s| s.name == name && s.arn != store.arn);
        if taken {
            return Err(AwsError::client(
                "EventDataStoreAlreadyExistsException",
                format!("An event data store named {name} already exists."),
            ));
        }
        store.name = name.to_owned();
    }
    if let Some(selectors) = input.get("AdvancedEventSelectors").filter(|v| !v.is_null()) {
        check_selectors(selectors)?;
        let was_activity = store.is_activity_audit_log();
        let mut candidate = store.clone();
        candidate.advanced_event_selectors = selectors.clone();
        if was_activity != candidate.is_activity_audit_log() {
            return Err(AwsError::client(
                "InvalidEventSelectorsException",
                "An event data store of non-AWS events (ActivityAuditLog) cannot be changed to log AWS events, or the reverse.",
            ));
        }
        store.advanced_event_selectors = selectors.clone();
    }
    if let Some(b) = boolean(input, "MultiRegionEnabled")? {
        store.multi_region_enabled = b;
    }
    if boolean(input, "OrganizationEnabled")? == Some(true) {
        return Err(AwsError::client(
            "OrganizationNotInAllFeaturesModeException",
            "The lake has no AWS Organizations; OrganizationEnabled must be false.",
        ));
    }
    if let Some(mode) = billing_mode(input)? {
        store.billing_mode = mode;
    }
    if let Some(days) = retention(input, &store.billing_mode)? {
        store.retention_period = days;
    }
    if let Some(b) = boolean(input, "TerminationProtectionEnabled")? {
        store.termination_protection_enabled = b;
    }
    if let Some(kms) = string(input, "KmsKeyId")? {
        store.kms_key_id = Some(kms.to_owned());
    }
    store.updated = now();
    lake.store.put_store(store.clone()).await.map_err(internal)?;
    Ok(store_json(&store, None))
}

async fn delete_event_data_store(lake: &Lake, caller: &Caller, input: &Input) -> Result<Value, AwsError> {
    let _guard = lake.control.lock().await;
    let mut store = find_store(lake, caller, required(input, "EventDataStore")?)?;
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
    let used_by: Option<String> = lake.store.channel_into(&store.arn).map(|c| c.arn);
    if let Some(channel) = used_by {
        return Err(AwsError::client(
            "ChannelExistsForEDSException",
            format!(
                "Event data store {} is a destination of channel {channel}; delete or update the channel first.",
                store.arn
            ),
        ));
    }
    store.status = "PENDING_DELETION".into();
    store.updated = now();
    lake.store.put_store(store).await.map_err(internal)?;
    Ok(json!({}))
}

// Channels.

fn channel_arn(caller: &Caller, id: &str) -> String {
    format!("arn:aws:cloudtrail:{}:{}:channel/{id}", caller.region, caller.account)
}

/// Finds a channel of the caller's account and region by ARN or id.
fn find_channel(lake: &Lake, caller: &Caller, given: &str) -> Result<Channel, AwsError> {
    let arn = if given.starts_with("arn:") {
        if given.split(':').count() != 6 || !given.contains(":channel/") {
            return Err(AwsError::client(
                "ChannelARNInvalidException",
                format!("The specified channel ARN {given:?} is not valid."),
            ));
        }
        given.to_owned()
    } else {
        if !(3..=256).contains(&given.len()) {
            return Err(AwsError::client(
                "ChannelARNInvalidException",
                format!("The specified channel ARN or ID {given:?} is not valid."),
            ));
        }
        channel_arn(caller, given)
    };
    lake.store
        .channel(&arn)
        .filter(|c| c.account == caller.account && c.region == caller.region)
        .ok_or_else(|| AwsError::client("ChannelNotFoundException", format!("The channel {given} was not found.")))
}

/// Resolves `Destinations` to event data store ARNs, checking each store.
fn destinations(lake: &Lake, caller: &Caller, input: &Input) -> Result<Vec<String>, AwsError> {
    let Some(list) = input.get("Destinations").and_then(Value::as_array) else {
        return Err(AwsError::invalid_parameter("Destinations is required: a list of 1 to 200 {Type, Location}."));
    };
    if list.is_empty() || list.len() > 200 {
        return Err(AwsError::invalid_parameter("Destinations must hold 1 to 200 destinations."));
    }
    let mut arns = Vec::new();
    for destination in list {
        match destination["Type"].as_str() {
            Some("EVENT_DATA_STORE") => {}
            Some("AWS_SERVICE") => {
                return Err(AwsError::invalid_parameter(
                    "Destinations of Type AWS_SERVICE are for service-linked channels; use EVENT_DATA_STORE.",
                ));
            }
            _ => return Err(AwsError::invalid_parameter("Each destination needs Type EVENT_DATA_STORE.")),
        }
        let location = destination["Location"].as_str().ok_or_else(|| {
            AwsError::invalid_parameter("Each destination needs a Location: an event data store ARN or ID.")
        })?;
        let store = find_store(lake, caller, location)?;
        if store.status == "PENDING_DELETION" {
            return Err(AwsError::client(
                "InactiveEventDataStoreException",
                format!("Event data store {} is pending deletion.", store.arn),
            ));
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

fn channel_json(channel: &Channel) -> Value {
    json!({
        "ChannelArn": channel.arn,
        "Name": channel.name,
        "Source": channel.source,
        "Destinations": channel.destinations.iter().map(|arn| json!({"Type": "EVENT_DATA_STORE", "Location": arn})).collect::<Vec<_>>(),
    })
}

async fn create_channel(lake: &Lake, caller: &Caller, input: &Input) -> Result<Value, AwsError> {
    let name = required(input, "Name")?;
    check_name(name, "Channel")?;
    let source = required(input, "Source")?;
    if source.is_empty()
        || source.len() > 256
        || !source.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err(AwsError::client(
            "InvalidSourceException",
            format!("Source {source:?} is not valid: use Custom or a partner source name."),
        ));
    }
    let _guard = lake.control.lock().await;
    let arns = destinations(lake, caller, input)?;
    {
        let mine = lake.store.channels_of(&caller.account, &caller.region);
        if mine.iter().any(|c| c.name == name) {
            return Err(AwsError::client(
                "ChannelAlreadyExistsException",
                format!("A channel named {name} already exists."),
            ));
        }
        if let Some(other) = mine.iter().find(|c| c.source == source) {
            return Err(AwsError::client(
                "ChannelAlreadyExistsException",
                format!(
                    "Channel {} already exists for source {source}; a maximum of one channel is allowed per source.",
                    other.arn
                ),
            ));
        }
        if mine.len() >= MAX_CHANNELS {
            return Err(AwsError::client(
                "ChannelMaxLimitExceededException",
                format!("Your account has reached the limit of {MAX_CHANNELS} channels."),
            ));
        }
    }
    let id = uuid::Uuid::new_v4().to_string();
    let channel = Channel {
        arn: channel_arn(caller, &id),
        id,
        account: caller.account.clone(),
        region: caller.region.clone(),
        name: name.to_owned(),
        source: source.to_owned(),
        destinations: arns,
        tags: input.get("Tags").cloned().unwrap_or(Value::Array(Vec::new())),
        resource_policy: None,
    };
    lake.store.put_channel(channel.clone()).await.map_err(internal)?;
    tracing::info!(arn = %channel.arn, source = %channel.source, "Created a channel.");
    let mut out = channel_json(&channel);
    out["Tags"] = channel.tags.clone();
    Ok(out)
}

fn get_channel(lake: &Lake, caller: &Caller, input: &Input) -> Result<Value, AwsError> {
    let channel = find_channel(lake, caller, required(input, "Channel")?)?;
    let status = lake.store.ingestion(&channel.arn);
    let mut ingestion = Map::new();
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(v) = value {
            ingestion.insert(key.to_owned(), v);
        }
    };
    put("LatestIngestionSuccessTime", status.latest_success_time.map(|t| json!(t)));
    put("LatestIngestionSuccessEventID", status.latest_success_event_id.map(Value::String));
    put("LatestIngestionErrorCode", status.latest_error_code.map(Value::String));
    put("LatestIngestionAttemptTime", status.latest_attempt_time.map(|t| json!(t)));
    put("LatestIngestionAttemptEventID", status.latest_attempt_event_id.map(Value::String));
    let mut out = channel_json(&channel);
    out["SourceConfig"] = json!({"ApplyToAllRegions": false, "AdvancedEventSelectors": []});
    out["IngestionStatus"] = Value::Object(ingestion);
    Ok(out)
}

fn list_channels(lake: &Lake, caller: &Caller, input: &Input) -> Result<Value, AwsError> {
    let mut channels: Vec<(String, String)> =
        lake.store.channels_of(&caller.account, &caller.region).into_iter().map(|c| (c.arn, c.name)).collect();
    channels.sort();
    let (items, next) = page(&channels, input)?;
    let mut out = json!({"Channels": items.iter().map(|(arn, name)| json!({"ChannelArn": arn, "Name": name})).collect::<Vec<_>>()});
    if let Some(next) = next {
        out["NextToken"] = json!(next);
    }
    Ok(out)
}

async fn update_channel(lake: &Lake, caller: &Caller, input: &Input) -> Result<Value, AwsError> {
    let _guard = lake.control.lock().await;
    let mut channel = find_channel(lake, caller, required(input, "Channel")?)?;
    if let Some(name) = string(input, "Name")? {
        check_name(name, "Channel")?;
        let taken = lake
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
        channel.name = name.to_owned();
    }
    if input.get("Destinations").is_some_and(|d| !d.is_null()) {
        channel.destinations = destinations(lake, caller, input)?;
    }
    lake.store.put_channel(channel.clone()).await.map_err(internal)?;
    Ok(channel_json(&channel))
}

async fn delete_channel(lake: &Lake, caller: &Caller, input: &Input) -> Result<Value, AwsError> {
    let _guard = lake.control.lock().await;
    let channel = find_channel(lake, caller, required(input, "Channel")?)?;
    lake.store.delete_channel(&channel.arn).await.map_err(internal)?;
    tracing::info!(arn = %channel.arn, "Deleted a channel.");
    Ok(json!({}))
}

// Resource policies (channels only).

fn policy_channel(lake: &Lake, caller: &Caller, input: &Input) -> Result<Channel, AwsError> {
    let arn = required(input, "ResourceArn")?;
    let parts: Vec<&str> = arn.split(':').collect();
    if parts.len() != 6 || parts[0] != "arn" || parts[2] != "cloudtrail" {
        return Err(AwsError::client(
            "ResourceARNNotValidException",
            format!("{arn:?} is not a valid CloudTrail resource ARN."),
        ));
    }
    if !parts[5].starts_with("channel/") {
        return Err(AwsError::client(
            "ResourceTypeNotSupportedException",
            "The lake supports resource policies on channels only.",
        ));
    }
    find_channel(lake, caller, arn).map_err(|e| AwsError { code: "ResourceNotFoundException", ..e })
}

/// Checks a channel policy against CloudTrail's rules for channel resource policies.
pub(crate) fn check_channel_policy(text: &str, channel_arn: &str) -> Result<Policy, AwsError> {
    let invalid = |m: String| AwsError::client("ResourcePolicyNotValidException", m);
    if text.is_empty() || text.len() > 8192 {
        return Err(invalid("ResourcePolicy must be 1 to 8192 characters.".into()));
    }
    let policy = Policy::parse(text).map_err(|e| invalid(format!("The policy {e}.")))?;
    if policy.statements.is_empty() || policy.statements.len() > 20 {
        return Err(invalid("A channel policy must have 1 to 20 statements.".into()));
    }
    for (i, statement) in policy.statements.iter().enumerate() {
        let n = i + 1;
        let Some(principals) = &statement.principals else {
            return Err(invalid(format!("Statement {n} needs a Principal.")));
        };
        if principals.is_empty() || principals.len() > 50 {
            return Err(invalid(format!("Statement {n} must name 1 to 50 principals.")));
        }
        if statement.not_action || statement.actions.iter().any(|a| a != "cloudtrail-data:PutAuditEvents") {
            return Err(invalid(format!(
                "Statement {n}: the only action a channel policy may name is cloudtrail-data:PutAuditEvents."
            )));
        }
        if let Some(resources) = &statement.resources
            && resources.iter().any(|r| r != channel_arn)
        {
            return Err(invalid(format!("Statement {n}: Resource must be the channel's ARN {channel_arn}.")));
        }
    }
    Ok(policy)
}

async fn put_resource_policy(lake: &Lake, caller: &Caller, input: &Input) -> Result<Value, AwsError> {
    let text = required(input, "ResourcePolicy")?;
    let _guard = lake.control.lock().await;
    let mut channel = policy_channel(lake, caller, input)?;
    check_channel_policy(text, &channel.arn)?;
    channel.resource_policy = Some(text.to_owned());
    lake.store.put_channel(channel.clone()).await.map_err(internal)?;
    Ok(json!({"ResourceArn": channel.arn, "ResourcePolicy": text}))
}

fn get_resource_policy(lake: &Lake, caller: &Caller, input: &Input) -> Result<Value, AwsError> {
    let channel = policy_channel(lake, caller, input)?;
    match &channel.resource_policy {
        Some(policy) => Ok(json!({"ResourceArn": channel.arn, "ResourcePolicy": policy})),
        None => Err(AwsError::client(
            "ResourcePolicyNotFoundException",
            format!("Channel {} has no resource policy.", channel.arn),
        )),
    }
}

async fn delete_resource_policy(lake: &Lake, caller: &Caller, input: &Input) -> Result<Value, AwsError> {
    let _guard = lake.control.lock().await;
    let mut channel = policy_channel(lake, caller, input)?;
    if channel.resource_policy.take().is_none() {
        return Err(AwsError::client(
            "ResourcePolicyNotFoundException",
            format!("Channel {} has no resource policy.", channel.arn),
        ));
    }
    lake.store.put_channel(channel).await.map_err(internal)?;
    Ok(json!({}))
}

fn internal(err: crate::error::LakeError) -> AwsError {
    tracing::error!(error = %err, source = ?std::error::Error::source(&err), "Storage failed.");
    AwsError::internal()
}
