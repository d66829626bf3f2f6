//! `cloudtrail-data` on restJson1: decodes `PutAuditEvents` (the query string's `channelArn` and
//! `externalId`, the JSON body) and encodes its answer.

use std::collections::HashMap;

use audit_event::PutAuditEventsRequest;

use crate::{Lake, error::AwsError, identity::Caller, ops::data::PutAuditEvents};

pub(super) async fn put_audit_events(
    lake: &Lake,
    caller: &Caller,
    query: &str,
    body: &[u8],
) -> Result<String, AwsError> {
    let mut params: HashMap<String, String> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let Some(channel) = params.remove("channelArn") else {
        return Err(AwsError::client("ValidationException", "channelArn is required: the ARN or ID of the channel."));
    };
    let request: PutAuditEventsRequest = serde_json::from_slice(body).map_err(|e| {
        AwsError::client("SerializationException", format!("The request body is not a PutAuditEvents request: {e}."))
    })?;
    let input = PutAuditEvents { channel, external_id: params.remove("externalId"), request, body_len: body.len() };
    let answer = lake.put_audit_events(caller, input).await?;
    Ok(serde_json::to_string(&answer).expect("serializable"))
}
