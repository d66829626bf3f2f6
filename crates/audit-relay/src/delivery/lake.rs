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
    let seq_of: HashMap<String, i64> =
        batch.entries.iter().map(|e| e.id.clone()).zip(batch.seqs.iter().copied()).collect();
    let entries: Vec<aws_sdk_cloudtraildata::types::AuditEvent> =
        batch.entries.into_iter().filter_map(sdk_entry).collect();
    let result = client
        .put_audit_events()
        .channel_arn(&tenant.channel_arn)
        .set_external_id(external_id)
        .set_audit_events(Some(entries))
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
                    sent.outcomes.extend(batch.seqs.iter().map(|&seq| Outcome::Retry { seq, code: code.clone() }));
                }
            }
        }
    }
    sent
}
