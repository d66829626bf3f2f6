//! Turns pending events into `PutAuditEvents` requests: at most 100 entries and at most 1 MiB of
//! request body, each entry with its checksum.
//!
//! The body is written here, once per batch, exactly as aws-sdk-cloudtraildata's serializer writes
//! it (`{"auditEvents":[{"id":…,"eventData":…,"eventDataChecksum":…},…]}`, the fields in that
//! order), and [`super::lake`] hands it to the SDK. Writing it with serde_json, whose escaper copies
//! runs of plain bytes, costs a fraction of the SDK's JSON writer, which escapes `eventData` one byte
//! at a time into a growing buffer (about 8 % of the relay's CPU per event, measured in BENCHMARKS.md);
//! and the body's size is known exactly as it is written, so nothing is measured twice.

use audit_event::{AuditEvent, limits};
use bytes::Bytes;

use crate::spool::Pending;

/// The body before the entries, and after them.
const OPEN: &[u8] = br#"{"auditEvents":["#;
const CLOSE: &[u8] = b"]}";

/// A request ready to send: its body, and the events it carries in body order.
#[derive(Debug, Clone)]
pub struct Batch {
    /// The `PutAuditEvents` request body.
    pub body: Bytes,
    /// The entries in the body, in order.
    pub entries: Vec<Entry>,
}

/// One entry of a [`Batch`]: the id it is sent under, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `AuditEvent.id`: CloudTrail's answer names the entry by it.
    pub id: String,
    /// Its position in the spool.
    pub seq: i64,
    /// When it was accepted (milliseconds since the epoch).
    pub accepted_ms: i64,
}

/// Takes events from the front of `pending` into one request, within the count and byte limits.
/// An event too large to ever fit alone is returned in `oversized` (to dead-letter).
pub fn build(pending: Vec<Pending>) -> (Batch, Vec<i64>) {
    let text: usize = pending.iter().take(limits::MAX_EVENTS_PER_REQUEST).map(|p| p.event_data.len() + 128).sum();
    // Room for a few escapes beyond the texts; a body that needs more grows once or twice.
    let mut body = Vec::with_capacity((text + text / 8 + OPEN.len() + CLOSE.len()).min(limits::MAX_REQUEST_BYTES));
    body.extend_from_slice(OPEN);
    let mut entries: Vec<Entry> = Vec::with_capacity(pending.len().min(limits::MAX_EVENTS_PER_REQUEST));
    let mut oversized = Vec::new();
    for p in pending {
        if entries.len() == limits::MAX_EVENTS_PER_REQUEST {
            break;
        }
        let mark = body.len();
        if !entries.is_empty() {
            body.push(b',');
        }
        let start = body.len();
        let entry = AuditEvent::new(p.entry_id, p.event_data);
        serde_json::to_writer(&mut body, &entry).expect("serializing into memory cannot fail");
        if body.len() + CLOSE.len() <= limits::MAX_REQUEST_BYTES {
            entries.push(Entry { id: entry.id, seq: p.seq, accepted_ms: p.accepted_ms });
            continue;
        }
        let alone = OPEN.len() + (body.len() - start) + CLOSE.len();
        body.truncate(mark);
        if alone > limits::MAX_REQUEST_BYTES {
            oversized.push(p.seq);
            continue;
        }
        // It fits a request of its own: the next batch starts with it.
        break;
    }
    body.extend_from_slice(CLOSE);
    (Batch { body: Bytes::from(body), entries }, oversized)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(n: usize, data_len: usize) -> Vec<Pending> {
        (0..n)
            .map(|i| Pending {
                seq: i as i64 + 1,
                entry_id: format!("{i:032x}"),
                event_data: format!("{{\"p\":\"{}\"}}", "x".repeat(data_len)),
                attempts: 0,
                accepted_ms: 0,
                object: None,
            })
            .collect()
    }

    /// The body as the SDK's own model serializes these entries (serde's derive of the same shape).
    fn serialized(entries: &[AuditEvent]) -> Vec<u8> {
        serde_json::to_vec(&audit_event::PutAuditEventsRequest { audit_events: entries.to_vec() }).unwrap()
    }

    #[test]
    fn at_most_100_entries() {
        let (batch, oversized) = build(pending(250, 100));
        assert_eq!(batch.entries.len(), 100);
        assert_eq!(batch.entries.iter().map(|e| e.seq).collect::<Vec<_>>(), (1..=100).collect::<Vec<_>>());
        assert!(oversized.is_empty());
        let body: audit_event::PutAuditEventsRequest = serde_json::from_slice(&batch.body).unwrap();
        assert_eq!(body.audit_events.len(), 100);
        assert!(body.audit_events.iter().all(|e| e.event_data_checksum.is_some()));
    }

    #[test]
    fn at_most_one_mebibyte_exactly() {
        for data_len in [10_000, 30_000, 99_000, 300_000] {
            let events = pending(100, data_len);
            let (batch, _) = build(events.clone());
            assert!(batch.body.len() <= limits::MAX_REQUEST_BYTES, "{data_len}: {} bytes", batch.body.len());
            let sent: Vec<AuditEvent> = events[..batch.entries.len()]
                .iter()
                .map(|p| AuditEvent::new(p.entry_id.clone(), p.event_data.clone()))
                .collect();
            assert_eq!(&batch.body[..], &serialized(&sent)[..], "{data_len}");
            // One more entry would not have fit.
            if batch.entries.len() < 100 {
                let next = &events[batch.entries.len()];
                let mut more = sent.clone();
                more.push(AuditEvent::new(next.entry_id.clone(), next.event_data.clone()));
                assert!(serialized(&more).len() > limits::MAX_REQUEST_BYTES, "{data_len}");
            }
        }
    }

    #[test]
    fn an_event_larger_than_a_request_is_set_aside() {
        let mut events = pending(3, 100);
        events[1].event_data = format!("{{\"p\":\"{}\"}}", "x".repeat(1_100_000));
        let (batch, oversized) = build(events);
        assert_eq!(batch.entries.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!(oversized, vec![2]);
        let body: audit_event::PutAuditEventsRequest = serde_json::from_slice(&batch.body).unwrap();
        assert_eq!(
            body.audit_events.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
            [&batch.entries[0].id, &batch.entries[1].id]
        );
    }

    #[test]
    fn escapes_are_counted_in_the_limit() {
        // Quotes double in size when escaped: 100 events of 12,000 quotes are 2.4 MB of body.
        let events: Vec<Pending> = pending(100, 0)
            .into_iter()
            .map(|mut p| {
                p.event_data = format!("{{\"p\":\"{}\"}}", "\\\"".repeat(6_000));
                p
            })
            .collect();
        let (batch, oversized) = build(events);
        assert!(oversized.is_empty());
        assert!(batch.body.len() <= limits::MAX_REQUEST_BYTES);
        assert!(batch.entries.len() < 100 && batch.entries.len() > 10, "{}", batch.entries.len());
        let body: audit_event::PutAuditEventsRequest = serde_json::from_slice(&batch.body).unwrap();
        assert_eq!(body.audit_events.len(), batch.entries.len());
    }
}
