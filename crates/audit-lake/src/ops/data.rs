//! `PutAuditEvents`: the channel in the caller's region (by ARN, any account; by id, the
//! caller's), authorization with the channel's resource policy and the `externalId`, the request's
//! rules, each entry's validation through `audit-event`, and durable storage with de-duplication
//! on (channel, entry id).

use std::collections::HashMap;

use audit_event::{
    EventTime, PutAuditEventsRequest, Stage, Validator,
    entry::{RequestRule, check_request},
};
use serde::Serialize;

use crate::{
    Lake,
    authz::{self, Target},
    error::AwsError,
    identity::Caller,
    policy::Decision,
    store::NewEvent,
};

/// Longest per-entry error message, as the API models it.
const MAX_ERROR_MESSAGE: usize = 1024;

/// `PutAuditEvents`' input: the query string's members and the parsed body.
#[derive(Debug)]
pub struct PutAuditEvents {
    /// `channelArn`: the channel's ARN or id.
    pub channel: String,
    /// `externalId`.
    pub external_id: Option<String>,
    /// The body.
    pub request: PutAuditEventsRequest,
    /// The body's length in bytes (the request's size rule).
    pub body_len: usize,
}

/// `PutAuditEvents`' answer.
#[derive(Debug, Serialize)]
pub struct Answer {
    /// The entries stored (or stored before, with the eventID first assigned).
    pub successful: Vec<Success>,
    /// The entries refused, each with its code and message.
    pub failed: Vec<Failure>,
}

/// A stored entry.
#[derive(Debug, Serialize)]
pub struct Success {
    /// The entry id.
    pub id: String,
    /// Its eventID.
    #[serde(rename = "eventID")]
    pub event_id: String,
}

/// A refused entry.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    /// The entry id.
    pub id: String,
    /// The modelled error code.
    pub error_code: String,
    /// What is wrong.
    pub error_message: String,
}

impl Lake {
    /// `PutAuditEvents`.
    pub async fn put_audit_events(&self, caller: &Caller, input: PutAuditEvents) -> Result<Answer, AwsError> {
        let PutAuditEvents { channel: channel_ref, external_id, request, body_len } = input;
        if let Some(id) = &external_id {
            let valid = (2..=1224).contains(&id.len())
                && id.chars().all(|c| c.is_ascii_alphanumeric() || "_+=,.@:/-".contains(c));
            if !valid {
                return Err(AwsError::client(
                    "ValidationException",
                    "externalId must be 2 to 1224 characters of letters, digits and _+=,.@:/-.",
                ));
            }
        }

        // The channel, in the caller's region; by ARN (any account) or by id (the caller's account).
        let arn = if channel_ref.starts_with("arn:") {
            let parts: Vec<&str> = channel_ref.split(':').collect();
            if parts.len() != 6 || parts[2] != "cloudtrail" || !parts[5].starts_with("channel/") {
                return Err(AwsError::client(
                    "InvalidChannelARN",
                    format!("The specified channel ARN {channel_ref:?} is not a valid channel ARN."),
                ));
            }
            channel_ref.clone()
        } else {
            if channel_ref.is_empty() || channel_ref.len() > 256 || channel_ref.contains(['/', ':']) {
                return Err(AwsError::client(
                    "InvalidChannelARN",
                    format!("The specified channel ARN or ID {channel_ref:?} is not valid."),
                ));
            }
            format!("arn:aws:cloudtrail:{}:{}:channel/{channel_ref}", caller.region, caller.account)
        };
        let Some(channel) = self.store.channel(&arn).filter(|c| c.region == caller.region) else {
            return Err(AwsError::client(
                "ChannelNotFound",
                format!("The channel {channel_ref} could not be found in {}.", caller.region),
            ));
        };
        let stores: Vec<String> = channel
            .destinations
            .iter()
            .filter_map(|arn| self.store.event_data_store(arn))
            .filter(|s| s.status != "PENDING_DELETION")
            .map(|s| s.id)
            .collect();

        self.authorize_put(caller, &channel, external_id.as_deref())?;
        // API rate quotas are the calling account's (a vendor publishing through channel policies
        // shares one quota across its customers; through their roles, each customer has its own).
        self.quotas.put_audit_events(&caller.account, &caller.region, std::time::Instant::now())?;

        if let Some(violation) = check_request(&request, body_len).into_iter().next() {
            let code = match violation.rule {
                RequestRule::DuplicateId => "DuplicatedAuditEventId",
                _ => "ValidationException",
            };
            return Err(AwsError::client(code, format!("{}: {}", violation.path, violation.message)));
        }

        let validator = Validator::new(Stage::Put).with_channel_owner(channel.account.clone());
        let ingestion = EventTime::now();
        let mut failed = Vec::new();
        let mut fresh = Vec::with_capacity(request.audit_events.len());
        let mut order = Vec::with_capacity(request.audit_events.len());
        let last_entry_id = request.audit_events.last().map(|e| e.id.clone());
        for entry in request.audit_events {
            let checked = entry.validate(&validator);
            if let Some(first) = checked.violations.first() {
                let mut message = checked.violations.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
                if message.len() > MAX_ERROR_MESSAGE {
                    let mut cut = MAX_ERROR_MESSAGE - 1;
                    while !message.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    message.truncate(cut);
                    message.push('…');
                }
                failed.push(Failure {
                    id: entry.id,
                    error_code: first.code().as_str().to_owned(),
                    error_message: message,
                });
                continue;
            }
            if stores.is_empty() {
                failed.push(Failure {
                    id: entry.id,
                    error_code: "AccountNotSubscribed".into(),
                    error_message: "The channel has no active event data store.".into(),
                });
                continue;
            }
            let event_time = checked.event_time.unwrap_or(ingestion);
            drop(checked);
            let event_id = uuid::Uuid::new_v4().to_string();
            order.push(entry.id.clone());
            fresh.push(NewEvent {
                entry_id: entry.id,
                event_id,
                event_time_ms: event_time.unix_millis(),
                event_data: entry.event_data,
            });
        }

        let now = ingestion.unix_millis() as f64 / 1000.0;
        let mut status = self.store.ingestion(&channel.arn);
        status.latest_attempt_time = Some(now);
        if let Some(last) = failed.last() {
            status.latest_error_code = Some(last.error_code.clone());
        }
        let stored = if fresh.is_empty() {
            // Nothing to store: record the attempt (and its error) in memory only.
            status.latest_attempt_event_id = last_entry_id;
            self.store.note_attempt(&channel.arn, status);
            Vec::new()
        } else {
            status.latest_attempt_event_id = fresh.last().map(|e| e.event_id.clone());
            status.latest_success_time = Some(now);
            status.latest_success_event_id = fresh.last().map(|e| e.event_id.clone());
            self.store.put_events(&channel, stores, ingestion.unix_millis(), fresh, status.clone()).await.map_err(
                |err| {
                    if err.is_storage_full() {
                        tracing::warn!(error = %err, channel = %channel.arn, "The lake's disk is full; nothing was stored.");
                        return AwsError::with_status(
                            503,
                            "ServiceUnavailableException",
                            "The lake's disk is full; nothing of this request was stored. Retry later.",
                        );
                    }
                    tracing::error!(error = %err, channel = %channel.arn, "Storing audit events failed.");
                    AwsError::internal()
                },
            )?
        };
        let repeated = stored.iter().filter(|s| s.duplicate).count();
        if repeated > 0 {
            // AWS would store these again; the lake answers with the first eventIDs. Logged, because a
            // publisher that repeats acknowledged ids would duplicate events in AWS.
            tracing::info!(channel = %channel.arn, repeated, "Entry ids already stored on this channel were sent again.");
        }
        let successful: Vec<Success> =
            order.into_iter().zip(stored).map(|(id, s)| Success { id, event_id: s.event_id }).collect();
        Ok(Answer { successful, failed })
    }

    /// Identity and resource policy together ([`crate::authz`]): an explicit deny in either refuses;
    /// the channel's owner account needs an allow from either (its root always has one); any other
    /// account needs both — its own identity's allow and the channel policy's, whose
    /// `cloudtrail:ExternalId` condition sees the request's `externalId`.
    fn authorize_put(
        &self,
        caller: &Caller,
        channel: &crate::store::model::Channel,
        external_id: Option<&str>,
    ) -> Result<(), AwsError> {
        let store = &self.store;
        let policy = channel
            .resource_policy
            .as_deref()
            .map(|text| store.policy(text))
            .transpose()
            .map_err(|_| AwsError::internal())?;
        let mut context = HashMap::new();
        if let Some(id) = external_id {
            context.insert("cloudtrail:externalid".to_owned(), id.to_owned());
        }
        let target = Target { arn: &channel.arn, owner: &channel.account, policy: policy.as_deref() };
        let verdict = authz::authorize(store, caller, "cloudtrail-data:PutAuditEvents", target, &context);
        if verdict.allowed() {
            return Ok(());
        }
        let why = if verdict.resource == Decision::ExplicitDeny {
            "the channel's resource policy denies it"
        } else if verdict.identity == Decision::ExplicitDeny {
            "an identity-based policy of the caller denies it"
        } else if verdict.same_account || verdict.resource == Decision::Allow {
            "no identity-based policy of the caller allows cloudtrail-data:PutAuditEvents on the channel"
        } else if !verdict.has_policy {
            "the channel has no resource policy, so only its owner may call PutAuditEvents"
        } else {
            "no statement of the channel's resource policy allows this caller (check the account and the externalId)"
        };
        Err(denied(caller, channel, why))
    }
}

fn denied(caller: &Caller, channel: &crate::store::model::Channel, why: &str) -> AwsError {
    AwsError::client(
        "ChannelInsufficientPermission",
        format!("{} is not allowed to call PutAuditEvents on {}: {why}.", caller.arn, channel.arn),
    )
}
