//! S3 as a destination: objects (`PutObject`) in the customer's bucket, under the tenant's prefix.
//!
//! - **Formats.** NDJSON: one event's JSON per line, gzip, under
//!   `PREFIX source=EVENT_SOURCE/eventDay=YYYYMMDD/`. OCSF: each event as OCSF 1.3 API Activity
//!   (class 6003, [`ocsf`]) in zstd Parquet, in Amazon Security Lake's custom-source layout,
//!   `PREFIX ext/SOURCE/region=REGION/accountId=ACCOUNT/eventDay=YYYYMMDD/`, where SOURCE is the
//!   event source with characters outside `A-Za-z0-9_-` made `-` (one class per source). The day is
//!   the event's `eventTime` (UTC); each object's events are sorted by time.
//! - **Rollover.** An object is written when [`MAX_OBJECT_EVENTS`] events wait, or when the oldest
//!   waiting event has waited the tenant's rollover time (5 minutes by default); one object holds
//!   at most [`MAX_OBJECT_EVENTS`] events and [`MAX_OBJECT_BYTES`] of event JSON, of one source and
//!   day.
//! - **Deterministic keys, exactly once.** An object's key comes from the spool positions it
//!   covers (the first, the last) and the first event's entry id: `FIRST-LAST-ENTRYID.json.gz`.
//!   Before an object is first written, its events are assigned to it in the spool
//!   ([`Outcome::Assigned`]); every later attempt (after a failure, a lost answer, a crash, another
//!   relay's takeover) writes the same key with the same events. A `PutObject` replaces the object
//!   whole, so an object written twice is still one object, and no event is in two objects.
//! - **Outcomes.** An object is all or nothing: its events are delivered (their `event_id` is the
//!   key), or retried (throttling, 5xx, network), or the tenant pauses (bucket missing, access
//!   denied) with its events kept.

use std::io::Write;

use aws_sdk_s3::{error::ProvideErrorMetadata, primitives::ByteStream};

use super::{Sent, retry};
use crate::{
    registry::{Destination, ObjectFormat, Tenant},
    spool::{Outcome, Pending},
};

pub mod ocsf;

/// The most events one object holds.
pub const MAX_OBJECT_EVENTS: usize = 10_000;
/// The most bytes of event JSON one object holds (before compression).
pub const MAX_OBJECT_BYTES: usize = 32 * 1024 * 1024;
/// How many pending events one batch reads from the spool.
pub const MAX_PENDING: usize = MAX_OBJECT_EVENTS;
/// How long the oldest waiting event waits by default before its object is written.
pub const DEFAULT_ROLLOVER_SECS: u64 = 300;

/// One object to write: its key and its events, sorted by time.
pub(super) struct Object {
    pub(super) key: String,
    pub(super) events: Vec<Pending>,
}

/// An S3 batch: the objects to write, and the assignments to record before they are first
/// written (none when the batch writes an object assigned before).
pub(super) struct Batch {
    pub(super) objects: Vec<Object>,
    pub(super) assigned: Vec<Outcome>,
}

/// What the layout needs of an event.
struct Placed {
    pending: Pending,
    source: String,
    time_ms: i64,
}

/// Where an event goes: its source and time, read from its JSON in one pass (its time is when it
/// was accepted if it has none; the relay validated it, so it has).
fn place(pending: Pending) -> Placed {
    #[derive(serde::Deserialize)]
    struct Head<'a> {
        #[serde(rename = "eventSource")]
        source: Option<String>,
        #[serde(rename = "eventTime", borrow)]
        time: Option<std::borrow::Cow<'a, str>>,
    }
    let (source, time_ms) = match serde_json::from_str::<Head<'_>>(&pending.event_data) {
        Ok(head) => (
            head.source.unwrap_or_default(),
            head.time.and_then(|t| audit_event::EventTime::parse(&t).ok()).map(audit_event::EventTime::unix_millis),
        ),
        Err(_) => (String::new(), None),
    };
    let time_ms = time_ms.unwrap_or(pending.accepted_ms);
    Placed { pending, source, time_ms }
}

/// `YYYYMMDD` of a time in milliseconds (UTC).
fn day(time_ms: i64) -> String {
    let time = audit_event::EventTime::from_unix(time_ms.div_euclid(1000), 0).to_string();
    time[..10].replace('-', "")
}

/// The event source as a Security Lake source name: `A-Za-z0-9_-`, others made `-`.
pub fn source_name(source: &str) -> String {
    let name: String =
        source.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '-' }).collect();
    if name.is_empty() { "unknown".into() } else { name.chars().take(64).collect() }
}

/// The folder (key prefix) of an event's object.
fn folder(tenant: &Tenant, event: &Placed) -> String {
    let Destination::S3 { prefix, format, region, account, .. } = &tenant.destination else { return String::new() };
    match format {
        ObjectFormat::Ndjson => {
            format!("{prefix}source={}/eventDay={}/", source_name(&event.source), day(event.time_ms))
        }
        ObjectFormat::OcsfParquet => format!(
            "{prefix}ext/{}/region={region}/accountId={account}/eventDay={}/",
            source_name(&event.source),
            day(event.time_ms)
        ),
    }
}

fn extension(format: ObjectFormat) -> &'static str {
    match format {
        ObjectFormat::Ndjson => "json.gz",
        ObjectFormat::OcsfParquet => "parquet",
    }
}

/// The first and last spool positions an object's key says it covers.
pub(super) fn positions(key: &str) -> Option<(i64, i64)> {
    let mut parts = key.rsplit('/').next()?.split('-');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// The batch `pending` (in position order) makes: the object the first event was assigned to, with
/// exactly its events; or new objects from the events at the front that no object holds yet,
/// grouped by folder and cut at the object limits.
pub(super) fn plan(tenant: &Tenant, pending: Vec<Pending>) -> Batch {
    let format = match &tenant.destination {
        Destination::S3 { format, .. } => *format,
        _ => return Batch { objects: Vec::new(), assigned: Vec::new() },
    };
    if let Some(key) = pending.first().and_then(|p| p.object.clone()) {
        let events: Vec<Placed> = pending.into_iter().filter(|p| p.object.as_ref() == Some(&key)).map(place).collect();
        return Batch { objects: vec![object(key, events)], assigned: Vec::new() };
    }
    // Groups in the order their folders first appear; a full group is closed and a new one opened.
    let mut groups: Vec<(String, Vec<Placed>, usize)> = Vec::new();
    let mut open: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for p in pending.into_iter().take_while(|p| p.object.is_none()) {
        let event = place(p);
        let dir = folder(tenant, &event);
        let size = event.pending.event_data.len();
        let index = match open.get(&dir) {
            Some(&i) if groups[i].1.len() < MAX_OBJECT_EVENTS && groups[i].2 + size <= MAX_OBJECT_BYTES => i,
            _ => {
                groups.push((dir.clone(), Vec::new(), 0));
                open.insert(dir, groups.len() - 1);
                groups.len() - 1
            }
        };
        groups[index].2 += size;
        groups[index].1.push(event);
    }
    let mut batch = Batch { objects: Vec::with_capacity(groups.len()), assigned: Vec::new() };
    for (dir, events, _) in groups {
        // In position order still: the first is the lowest position.
        let (first, last) = (&events[0].pending, &events[events.len() - 1].pending);
        let key = format!("{dir}{}-{}-{}.{}", first.seq, last.seq, first.entry_id, extension(format));
        batch.assigned.extend(events.iter().map(|e| Outcome::Assigned { seq: e.pending.seq, object: key.clone() }));
        batch.objects.push(object(key, events));
    }
    batch
}

fn object(key: String, mut events: Vec<Placed>) -> Object {
    events.sort_by_key(|e| (e.time_ms, e.pending.seq));
    Object { key, events: events.into_iter().map(|e| e.pending).collect() }
}

/// An object's bytes and content type.
pub(super) fn encode(tenant: &Tenant, object: &Object) -> Result<(Vec<u8>, &'static str), String> {
    let Destination::S3 { format, .. } = &tenant.destination else { return Err("not an S3 tenant".into()) };
    match format {
        ObjectFormat::Ndjson => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            for event in &object.events {
                gz.write_all(event.event_data.as_bytes()).map_err(|e| e.to_string())?;
                gz.write_all(b"\n").map_err(|e| e.to_string())?;
            }
            Ok((gz.finish().map_err(|e| e.to_string())?, "application/x-ndjson"))
        }
        ObjectFormat::OcsfParquet => Ok((ocsf::parquet(tenant, &object.events)?, "application/vnd.apache.parquet")),
    }
}

/// A canary object (`tenants verify`): the event `event_data` as its own object, where and as the
/// tenant's events are written; its key, bytes and content type.
pub fn canary(tenant: &Tenant, entry_id: &str, event_data: String) -> Result<(String, Vec<u8>, &'static str), String> {
    let pending = Pending {
        seq: 0,
        entry_id: entry_id.to_owned(),
        event_data,
        attempts: 0,
        accepted_ms: audit_event::EventTime::now().unix_millis(),
        object: None,
    };
    let batch = plan(tenant, vec![pending]);
    let object = batch.objects.into_iter().next().ok_or("the tenant does not deliver to S3")?;
    let (bytes, content_type) = encode(tenant, &object)?;
    Ok((object.key, bytes, content_type))
}

/// Writes each object into the tenant's bucket, in order, and says what became of each event. A
/// failure stops the batch: the objects after it are not written now and their events stay
/// pending (with their assignment).
pub(super) async fn send(client: &aws_sdk_s3::Client, tenant: &Tenant, objects: Vec<Object>) -> Sent {
    let Some(bucket) = tenant.bucket() else {
        return Sent::refused(format!("tenant {} has no S3 bucket", tenant.id));
    };
    let mut sent = Sent::default();
    for object in objects {
        let (body, content_type) = match encode(tenant, &object) {
            Ok(encoded) => encoded,
            Err(err) => {
                sent.outcomes.extend(object.events.iter().map(|p| Outcome::Dead {
                    seq: p.seq,
                    code: "EncodingFailed".into(),
                    message: format!("the object {} could not be written: {err}", object.key),
                }));
                continue;
            }
        };
        let result = client
            .put_object()
            .bucket(bucket)
            .key(&object.key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await;
        match result {
            Ok(_) => sent
                .outcomes
                .extend(object.events.iter().map(|p| Outcome::Delivered { seq: p.seq, event_id: object.key.clone() })),
            Err(err) => {
                let status = err.raw_response().map(|r| r.status().as_u16());
                let code = err.code().map(str::to_owned);
                let message = err.message().map(str::to_owned).unwrap_or_else(|| format!("{err}"));
                match code.as_deref() {
                    Some("NoSuchBucket") => {
                        sent.refused = Some(format!("bucket {bucket} does not exist (PutObject: {message})"));
                    }
                    Some("AccessDenied" | "AllAccessDisabled" | "InvalidAccessKeyId") => {
                        sent.refused = Some(format!(
                            "the role may not write s3://{bucket}/{}: {} ({message})",
                            object.key,
                            code.unwrap_or_default()
                        ));
                    }
                    _ => match retry::classify_call(code.as_deref(), status) {
                        retry::Class::Pause => {
                            sent.refused = Some(format!(
                                "PutObject is refused: {} ({message})",
                                code.unwrap_or_else(|| "error".into())
                            ));
                        }
                        _ => {
                            let code =
                                code.unwrap_or_else(|| status.map_or("NetworkError".into(), |s| format!("HTTP {s}")));
                            sent.outcomes.extend(
                                object.events.iter().map(|p| Outcome::Retry { seq: p.seq, code: code.clone() }),
                            );
                        }
                    },
                }
                break;
            }
        }
    }
    sent
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::DeliveryMode;

    fn tenant(format: ObjectFormat) -> Tenant {
        Tenant {
            id: "acme".into(),
            channel_arn: "arn:aws:s3:::acme-audit".into(),
            destination: Destination::S3 {
                region: "eu-west-1".into(),
                account: "123456789012".into(),
                prefix: "klarity/".into(),
                format,
                rollover_secs: 300,
            },
            delivery: DeliveryMode::AssumeRole {
                role_arn: "arn:aws:iam::123456789012:role/r".into(),
                external_id: None,
                proxy_role_arn: None,
            },
            applications: vec!["com.example.app".into()],
            paused: None,
            held: false,
            saved_queries: Vec::new(),
        }
    }

    fn pending(seq: i64, source: &str, time: &str, object: Option<&str>) -> Pending {
        Pending {
            seq,
            entry_id: format!("e{seq}"),
            event_data: format!(r#"{{"eventSource":"{source}","eventTime":"{time}"}}"#),
            attempts: 0,
            accepted_ms: 0,
            object: object.map(str::to_owned),
        }
    }

    #[test]
    fn new_objects_are_one_per_source_and_day_keyed_by_their_positions_and_sorted_by_time() {
        let batch = plan(
            &tenant(ObjectFormat::Ndjson),
            vec![
                pending(3, "com.example.app", "2026-12-05T10:00:00Z", None),
                pending(4, "com.example.other", "2026-12-05T09:00:00Z", None),
                pending(7, "com.example.app", "2026-12-05T08:00:00Z", None),
                pending(9, "com.example.app", "2026-12-04T23:59:59Z", None),
                pending(11, "com.example.app", "2026-12-05T07:00:00Z", Some("k")),
                pending(12, "com.example.app", "2026-12-05T07:00:00Z", None),
            ],
        );
        let keys: Vec<&str> = batch.objects.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "klarity/source=com-example-app/eventDay=20261205/3-7-e3.json.gz",
                "klarity/source=com-example-other/eventDay=20261205/4-4-e4.json.gz",
                "klarity/source=com-example-app/eventDay=20261204/9-9-e9.json.gz",
            ]
        );
        // Sorted by time within the object; the assigned event (and what follows it) is left out.
        assert_eq!(batch.objects[0].events.iter().map(|p| p.seq).collect::<Vec<_>>(), [7, 3]);
        assert_eq!(batch.assigned.len(), 4);
        assert!(batch.assigned.contains(&Outcome::Assigned { seq: 7, object: keys[0].to_owned() }));
        assert_eq!(positions(keys[0]), Some((3, 7)));
    }

    #[test]
    fn an_assigned_object_is_written_again_with_exactly_its_events() {
        let key = "klarity/source=com-example-app/eventDay=20261205/3-9-e3.json.gz";
        let batch = plan(
            &tenant(ObjectFormat::Ndjson),
            vec![
                pending(3, "com.example.app", "2026-12-05T10:00:00Z", Some(key)),
                pending(5, "com.example.app", "2026-12-05T10:00:00Z", None),
                pending(9, "com.example.app", "2026-12-05T09:00:00Z", Some(key)),
                pending(10, "com.example.app", "2026-12-05T09:00:00Z", Some("other")),
            ],
        );
        assert!(batch.assigned.is_empty());
        assert_eq!(batch.objects.len(), 1);
        assert_eq!(batch.objects[0].key, key);
        assert_eq!(batch.objects[0].events.iter().map(|p| p.seq).collect::<Vec<_>>(), [9, 3]);
    }

    #[test]
    fn objects_are_cut_at_their_event_limit() {
        let events: Vec<Pending> = (1..=(MAX_OBJECT_EVENTS as i64 + 5))
            .map(|seq| pending(seq, "com.example.app", "2026-12-05T10:00:00Z", None))
            .collect();
        let batch = plan(&tenant(ObjectFormat::OcsfParquet), events);
        assert_eq!(batch.objects.len(), 2);
        assert_eq!(batch.objects[0].events.len(), MAX_OBJECT_EVENTS);
        assert_eq!(
            batch.objects[1].key,
            format!(
                "klarity/ext/com-example-app/region=eu-west-1/accountId=123456789012/eventDay=20261205/{}-{}-e{}.parquet",
                MAX_OBJECT_EVENTS + 1,
                MAX_OBJECT_EVENTS + 5,
                MAX_OBJECT_EVENTS + 1
            )
        );
    }

    #[test]
    fn ndjson_is_one_event_per_line_gzipped() {
        let t = tenant(ObjectFormat::Ndjson);
        let batch = plan(
            &t,
            vec![
                pending(1, "com.example.app", "2026-12-05T10:00:00Z", None),
                pending(2, "com.example.app", "2026-12-05T09:00:00Z", None),
            ],
        );
        let (bytes, _) = encode(&t, &batch.objects[0]).unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut text).unwrap();
        assert_eq!(
            text,
            "{\"eventSource\":\"com.example.app\",\"eventTime\":\"2026-12-05T09:00:00Z\"}\n\
             {\"eventSource\":\"com.example.app\",\"eventTime\":\"2026-12-05T10:00:00Z\"}\n"
        );
    }
}
