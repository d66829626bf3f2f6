//! CloudWatch Logs on awsJson1_1: decodes each operation into its typed input
//! ([`crate::ops::logs`]), calls it and encodes its output.

use serde_json::{Map, Value, json};

use super::cloudtrail::{decode, encode, page};
use crate::{Lake, error::AwsError, identity::Caller};

pub(super) async fn dispatch(
    lake: &Lake,
    caller: &Caller,
    operation: &str,
    input: Map<String, Value>,
) -> Result<Value, AwsError> {
    Ok(match operation {
        "CreateLogGroup" => {
            lake.create_log_group(caller, decode(input)?).await?;
            json!({})
        }
        "DeleteLogGroup" => {
            lake.delete_log_group(caller, decode(input)?).await?;
            json!({})
        }
        "CreateLogStream" => {
            lake.create_log_stream(caller, decode(input)?).await?;
            json!({})
        }
        "DescribeLogGroups" => {
            let groups = lake.describe_log_groups(caller, decode(input)?)?;
            page("logGroups", groups.items, "nextToken", groups.next_token)
        }
        "DescribeLogStreams" => {
            let streams = lake.describe_log_streams(caller, decode(input)?)?;
            page("logStreams", streams.items, "nextToken", streams.next_token)
        }
        "PutLogEvents" => encode(lake.put_log_events(caller, decode(input)?).await?),
        "GetLogEvents" => encode(lake.get_log_events(caller, decode(input)?)?),
        "FilterLogEvents" => encode(lake.filter_log_events(caller, decode(input)?)?),
        "PutRetentionPolicy" => {
            lake.put_retention_policy(caller, decode(input)?).await?;
            json!({})
        }
        other => {
            return Err(AwsError::client(
                "UnsupportedOperationException",
                format!("The lake does not implement CloudWatch Logs operation {other}."),
            ));
        }
    })
}
