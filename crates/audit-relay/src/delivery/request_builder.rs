//! Turns pending events into `PutAuditEvents` batches: at most 100 entries and at most 1 MiB of
//! serialized request, measured exactly, each entry with its checksum.

use audit_event::{AuditEvent, entry, limits};

use crate::spool::Pending;

/// A batch ready to send: entries and the spool positions they came from, in the same order.
#[derive(Debug, Clone)]
pub struct Batch {
    /// The entries, each with `eventDataChecksum`.
    pub entries: Vec<AuditEvent>,
    /// `seqs[i]` is the spool position of `entries[i]`.
    pub seqs: Vec<i64>,
    /// `accepted_ms[i]` is when `entries[i]` was accepted (milliseconds since the epoch).
    pub accepted_ms: Vec<i64>,
}

/// Takes events from the front of `pending` into one batch, within the count and byte limits.
/// An event too large to ever fit alone is returned in `oversized` (to dead-letter).
pub fn build(pending: Vec<Pending>) -> (Batch, Vec<i64>) {
    let mut batch = Batch { entries: Vec::new(), seqs: Vec::new(), accepted_ms: Vec::new() };
    let mut oversized = Vec::new();
    let envelope = entry::request_size(&[]);
    let mut size = envelope;
    for p in pending {
        if batch.entries.len() == limits::MAX_EVENTS_PER_REQUEST {
            break;
        }
        let candidate = AuditEvent::new(p.entry_id, p.event_data);
        let entry = entry::entry_size(&candidate);
        if envelope + entry > limits::MAX_REQUEST_BYTES {
            oversized.push(p.seq);
            continue;
        }
        let add = entry + usize::from(!batch.entries.is_empty());
        if size + add > limits::MAX_REQUEST_BYTES {
            break;
        }
        size += add;
        batch.entries.push(candidate);
        batch.seqs.push(p.seq);
        batch.accepted_ms.push(p.accepted_ms);
    }
    (batch, oversized)
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

    #[test]
    fn at_most_100_entries() {
        let (batch, oversized) = build(pending(250, 100));
        assert_eq!(batch.entries.len(), 100);
        assert_eq!(batch.seqs, (1..=100).collect::<Vec<_>>());
        assert!(oversized.is_empty());
        assert!(batch.entries.iter().all(|e| e.event_data_checksum.is_some()));
    }

    #[test]
    fn at_most_one_mebibyte_exactly() {
        for data_len in [10_000, 30_000, 99_000, 300_000] {
            let (batch, _) = build(pending(100, data_len));
            let body = serde_json::to_vec(&audit_event::PutAuditEventsRequest { audit_events: batch.entries.clone() })
                .unwrap();
            assert!(body.len() <= limits::MAX_REQUEST_BYTES, "{data_len}: {} bytes", body.len());
            assert_eq!(entry::request_size(&batch.entries), body.len());
            // One more entry would not have fit.
            if batch.entries.len() < 100 {
                let next = AuditEvent::new("f".repeat(32), format!("{{\"p\":\"{}\"}}", "x".repeat(data_len)));
                let mut more = batch.entries.clone();
                more.push(next);
                assert!(entry::request_size(&more) > limits::MAX_REQUEST_BYTES, "{data_len}");
            }
        }
    }

    #[test]
    fn an_event_larger_than_a_request_is_set_aside() {
        let mut events = pending(3, 100);
        events[1].event_data = format!("{{\"p\":\"{}\"}}", "x".repeat(1_100_000));
        let (batch, oversized) = build(events);
        assert_eq!(batch.seqs, vec![1, 3]);
        assert_eq!(oversized, vec![2]);
    }
}
