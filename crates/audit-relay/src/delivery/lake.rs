//! CloudTrail Lake as a destination: `PutAuditEvents` on the tenant's channel.
//!
//! - **Batching** ([`super::request_builder`]): at most 100 entries and 1 MiB of request, measured
//!   exactly, each entry with its checksum; a larger event is dead-lettered (`FieldTooLong`).
//! - **Outcomes.** Each entry is delivered (with CloudTrail's eventID), dead-lettered (a permanent
//!   per-entry error), or retried (`Throttling`, `InternalFailure`; the same ids, only the failed
//!   subset). A refusal of the whole call (channel not found, access denied) pauses the tenant.
//! - **Exactly once.** Entry ids are fixed at acceptance, and after a crash the events that may
//!   have been in flight are looked up in the customer's store before they are sent again
//!   ([`super::reconcile`]).

use std::collections::HashMap;

use aws_sdk_cloudtraildata::error::ProvideErrorMetadata;

use super::{
    Sent,
    body::WrittenBody,
    request_builder::Batch,
    retry::{Class, classify_call, classify_entry},
};
use crate::{
    registry::{DeliveryMode, Tenant},
    spool::Outcome,
};

/// An entry as aws-sdk-cloudtraildata takes it: id, eventData and its checksum. (`None` only if the
/// id or eventData were missing, which an [`audit_event::AuditEvent`] cannot be.)
pub fn sdk_entry(entry: audit_event::AuditEvent) -> Option<aws_sdk_cloudtraildata::types::AuditEvent> {
    aws_sdk_cloudtraildata::types::AuditEvent::builder()
        .id(entry.id)
        .event_data(entry.event_data)
        .set_event_data_checksum(entry.event_data_checksum)
        .build()
        .ok()
}

/// Sends `batch` to the tenant's channel, and says what became of each entry.
pub(super) async fn send(client: &aws_sdk_cloudtraildata::Client, tenant: &Tenant, batch: Batch) -> Sent {
    let external_id = match &tenant.delivery {
        DeliveryMode::ResourcePolicy { external_id } => external_id.clone(),
        DeliveryMode::AssumeRole { .. } => None,
    };
    let Batch { body, entries } = batch;
    let seq_of: HashMap<&str, i64> = entries.iter().map(|e| (e.id.as_str(), e.seq)).collect();
    // The SDK builds the request (URI, channel and external id in the query, headers), signs,
    // retries and parses the answer; its body is the batch's ([`WrittenBody`]).
    let result = client
        .put_audit_events()
        .channel_arn(&tenant.channel_arn)
        .set_external_id(external_id)
        .customize()
        .interceptor(WrittenBody(body))
        .send()
        .await;
    let mut sent = Sent::default();
    match result {
        Ok(out) => {
            for s in out.successful() {
                if let Some(&seq) = seq_of.get(s.id()) {
                    sent.outcomes.push(Outcome::Delivered { seq, event_id: s.event_id().to_owned() });
                }
            }
            for f in out.failed() {
                let Some(&seq) = seq_of.get(f.id()) else { continue };
                sent.outcomes.push(match classify_entry(f.error_code()) {
                    Class::Retry => Outcome::Retry { seq, code: f.error_code().to_owned() },
                    _ => Outcome::Dead { seq, code: f.error_code().to_owned(), message: f.error_message().to_owned() },
                });
            }
        }
        Err(err) => {
            let status = err.raw_response().map(|r| r.status().as_u16());
            let code = err.code().map(str::to_owned);
            let message = err.message().map(str::to_owned).unwrap_or_else(|| format!("{err}"));
            match classify_call(code.as_deref(), status) {
                Class::Pause => {
                    sent.refused = Some(format!(
                        "PutAuditEvents is refused: {} ({message})",
                        code.unwrap_or_else(|| "error".into())
                    ));
                }
                _ => {
                    let code = code.unwrap_or_else(|| status.map_or("NetworkError".into(), |s| format!("HTTP {s}")));
                    sent.outcomes.extend(entries.iter().map(|e| Outcome::Retry { seq: e.seq, code: code.clone() }));
                }
            }
        }
    }
    sent
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        delivery::body::testing::{Capture, assert_same, sdk_config, texts},
        spool::Pending,
    };

    fn events() -> Vec<Pending> {
        texts()
            .into_iter()
            .enumerate()
            .map(|(i, event_data)| Pending {
                seq: i as i64 + 1,
                entry_id: format!("{i:032x}"),
                event_data,
                attempts: 0,
                accepted_ms: 0,
                object: None,
            })
            .collect()
    }

    #[tokio::test]
    async fn the_sdk_sends_the_body_its_own_serializer_writes() {
        let client = aws_sdk_cloudtraildata::Client::new(&sdk_config());
        let mut pending = events();
        while !pending.is_empty() {
            let (batch, oversized) = super::super::request_builder::build(pending.clone());
            assert!(oversized.is_empty());
            let taken: Vec<Pending> = pending.drain(..batch.entries.len()).collect();

            // What the SDK writes from the entries themselves.
            let serialized = Capture::default();
            let entries: Vec<_> = taken
                .into_iter()
                .map(|p| sdk_entry(audit_event::AuditEvent::new(p.entry_id, p.event_data)).unwrap())
                .collect();
            let _ = client
                .put_audit_events()
                .channel_arn("arn:aws:cloudtrail:eu-west-1:123456789012:channel/c")
                .set_audit_events(Some(entries))
                .customize()
                .interceptor(serialized.clone())
                .send()
                .await;
            // What it sends with the relay's body.
            let written = Capture::default();
            let _ = client
                .put_audit_events()
                .channel_arn("arn:aws:cloudtrail:eu-west-1:123456789012:channel/c")
                .customize()
                .interceptor(WrittenBody(batch.body.clone()))
                .interceptor(written.clone())
                .send()
                .await;
            assert_same(&written, &serialized);
        }
    }
}
