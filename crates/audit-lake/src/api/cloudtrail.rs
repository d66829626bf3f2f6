//! `cloudtrail` on awsJson1_1: decodes each operation's JSON into its typed input
//! ([`crate::ops::trail`], [`crate::ops::queries`]) — a member of the wrong type or a missing
//! required one is answered with its path — calls the lake's operation and encodes its output.

use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Map, Value, json};

use crate::{
    Lake,
    error::AwsError,
    identity::Caller,
    ops::trail::{Listed, Paged},
};

/// Decodes an operation's input from the request's JSON object.
pub(super) fn decode<T: DeserializeOwned>(input: Map<String, Value>) -> Result<T, AwsError> {
    serde_path_to_error::deserialize(Value::Object(input)).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner().to_string();
        let message = match inner.strip_prefix("missing field `").and_then(|rest| rest.split('`').next()) {
            Some(member) if path == "." => format!("{member} is required."),
            Some(member) => format!("{path}.{member} is required."),
            None => format!("{path}: {inner}."),
        };
        AwsError::invalid_parameter(message)
    })
}

pub(super) fn encode<T: Serialize>(output: T) -> Value {
    serde_json::to_value(output).expect("serializable")
}

/// A page as `{<key>: items, <token key>: next}`, the token left out on the last page.
pub(super) fn page<T: Serialize>(key: &str, items: Vec<T>, token_key: &str, next: Option<String>) -> Value {
    let mut out = json!({ key: items });
    if let Some(next) = next {
        out[token_key] = json!(next);
    }
    out
}

/// A listed page as `{<key>: [{<arn key>, Name}], NextToken}`.
fn listed(listed: Paged<Listed>, key: &str, arn_key: &str) -> Value {
    let items: Vec<Value> = listed.items.into_iter().map(|l| json!({arn_key: l.arn, "Name": l.name})).collect();
    page(key, items, "NextToken", listed.next_token)
}

pub(super) async fn dispatch(
    lake: &Lake,
    caller: &Caller,
    operation: &str,
    input: Map<String, Value>,
) -> Result<Value, AwsError> {
    Ok(match operation {
        "CreateEventDataStore" => encode(lake.create_event_data_store(caller, decode(input)?).await?),
        "GetEventDataStore" => encode(lake.get_event_data_store(caller, decode(input)?)?),
        "ListEventDataStores" => {
            listed(lake.list_event_data_stores(caller, &decode(input)?)?, "EventDataStores", "EventDataStoreArn")
        }
        "UpdateEventDataStore" => encode(lake.update_event_data_store(caller, decode(input)?).await?),
        "DeleteEventDataStore" => {
            lake.delete_event_data_store(caller, decode(input)?).await?;
            json!({})
        }
        "RestoreEventDataStore" => encode(lake.restore_event_data_store(caller, decode(input)?).await?),
        "StartEventDataStoreIngestion" | "StopEventDataStoreIngestion" => {
            lake.set_ingestion(caller, decode(input)?, operation.starts_with("Start")).await?;
            json!({})
        }
        "CreateChannel" => encode(lake.create_channel(caller, decode(input)?).await?),
        "GetChannel" => encode(lake.get_channel(caller, decode(input)?)?),
        "ListChannels" => listed(lake.list_channels(caller, &decode(input)?)?, "Channels", "ChannelArn"),
        "UpdateChannel" => encode(lake.update_channel(caller, decode(input)?).await?),
        "DeleteChannel" => {
            lake.delete_channel(caller, decode(input)?).await?;
            json!({})
        }
        "PutResourcePolicy" => {
            let (arn, policy) = lake.put_resource_policy(caller, decode(input)?).await?;
            json!({"ResourceArn": arn, "ResourcePolicy": policy})
        }
        "GetResourcePolicy" => {
            let (arn, policy) = lake.get_resource_policy(caller, decode(input)?)?;
            json!({"ResourceArn": arn, "ResourcePolicy": policy})
        }
        "DeleteResourcePolicy" => {
            lake.delete_resource_policy(caller, decode(input)?).await?;
            json!({})
        }
        "AddTags" => {
            lake.add_tags(caller, decode(input)?).await?;
            json!({})
        }
        "RemoveTags" => {
            lake.remove_tags(caller, decode(input)?).await?;
            json!({})
        }
        "ListTags" => json!({"ResourceTagList": lake.list_tags(caller, decode(input)?)?}),
        "StartQuery" => encode(lake.start_query(caller, decode(input)?).await?),
        "DescribeQuery" => encode(lake.describe_query(caller, decode(input)?)?),
        "GetQueryResults" => encode(lake.get_query_results(caller, decode(input)?)?),
        "ListQueries" => {
            let queries = lake.list_queries(caller, decode(input)?)?;
            page("Queries", queries.items, "NextToken", queries.next_token)
        }
        "CancelQuery" => encode(lake.cancel_query(caller, decode(input)?)?),
        other => {
            return Err(AwsError::client(
                "UnsupportedOperationException",
                format!("The lake does not implement CloudTrail operation {other}."),
            ));
        }
    })
}
