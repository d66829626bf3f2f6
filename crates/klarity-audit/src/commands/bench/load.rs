//! The bench's load: AutoBackup `backup.completed` events padded to a size, request bodies built
//! by splicing each UID into a serialized template, and the producers that post them.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use bytes::Bytes;
use http::{Method, StatusCode};

use crate::{cli::UidOrder, http::JsonClient};

/// The smallest `--event-size`: the event without padding.
pub(crate) const MIN_EVENT_SIZE: usize = 700;

/// An odd multiplier (2^64 / φ) for `--uids random`.
const SCATTER: u64 = 0x9E37_79B9_7F4A_7C15;

/// Builds the bench's events.
pub(crate) struct Load {
    /// The event's JSON up to its UID's value, and after it.
    before_uid: String,
    after_uid: String,
    /// UIDs are `<run>` followed by 12 hex digits of the event's number (or, with `random`, of a
    /// bijection of it that scatters neighbours): unique per run.
    run: String,
    random: bool,
    sent: AtomicU64,
}

impl Load {
    /// Events of about `size` bytes.
    pub(crate) fn new(size: usize, uids: UidOrder) -> Load {
        let run = uuid::Uuid::now_v7().to_string()[..24].to_owned();
        let template = |padding: usize| {
            serde_json::json!({
                "version": "v1",
                "userIdentity": {"type": "SERVICE", "principalId": "autobackup-scheduler", "details": {"tenant": "acme-prod"}},
                "userAgent": "klarity-autobackup/3.14.2 (linux; x86_64)",
                "eventSource": super::SOURCE,
                "eventName": "backup.completed",
                "eventTime": audit_event::EventTime::now().to_string(),
                "UID": "@UID@",
                "sourceIPAddress": "203.0.113.10",
                "requestParameters": {"resourceType": "DynamoDB", "resourceArn": "arn:aws:dynamodb:eu-west-1:123456789012:table/orders-production", "region": "eu-west-1", "backupPolicy": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"},
                "responseElements": {"recoveryPointArn": "arn:aws:backup:eu-west-1:123456789012:recovery-point:1EB3B5E7-9EB0-435A-A80B-108B488B0D45", "status": "COMPLETED"},
                "additionalEventData": {"requestId": "5f0c6a2e-8d1b-4c3a-9e7f-2b1a0c9d8e7f", "durationMs": 18234, "notes": "n".repeat(padding)}
            })
            .to_string()
        };
        let bare = template(0).len() - "@UID@".len() + 36;
        let text = template(size.saturating_sub(bare));
        let (before, after) = text.split_once("@UID@").expect("the template has a UID");
        Load {
            before_uid: before.to_owned(),
            after_uid: after.to_owned(),
            run,
            random: uids == UidOrder::Random,
            sent: AtomicU64::new(0),
        }
    }

    /// The size of one event's JSON.
    pub(crate) fn event_len(&self) -> usize {
        self.before_uid.len() + 36 + self.after_uid.len()
    }

    /// The event with `@UID@` where its UID goes and `recipientAccountId` set, as a publisher
    /// calling PutAuditEvents itself sends it (the boto3 baseline's template).
    pub(crate) fn template(&self, recipient: &str) -> String {
        format!("{}@UID@{}", self.before_uid, self.after_uid).replacen(
            '{',
            &format!("{{\"recipientAccountId\":\"{recipient}\","),
            1,
        )
    }

    /// Events handed to the relay so far (sent, not necessarily answered).
    pub(crate) fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Event number `n`'s JSON.
    pub(crate) fn event(&self, n: usize) -> String {
        let mut out = String::with_capacity(self.event_len());
        self.push_event(&mut out, n);
        out
    }

    fn push_event(&self, out: &mut String, n: usize) {
        out.push_str(&self.before_uid);
        out.push_str(&self.run);
        // Multiplying by an odd number is a bijection modulo 2^48: unique, and scattered.
        let n = if self.random { (n as u64).wrapping_mul(SCATTER) & ((1 << 48) - 1) } else { n as u64 };
        out.push_str(&format!("{n:012x}"));
        out.push_str(&self.after_uid);
    }

    /// A JSON array of events `first..first + count`.
    fn body(&self, first: usize, count: usize) -> Bytes {
        let mut out = String::with_capacity(count * (self.event_len() + 1) + 2);
        out.push('[');
        for n in first..first + count {
            if n > first {
                out.push(',');
            }
            self.push_event(&mut out, n);
        }
        out.push(']');
        Bytes::from(out)
    }
}

/// How to send.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    pub(crate) events: usize,
    pub(crate) batch: usize,
    pub(crate) clients: usize,
    /// Events/s offered; 0 for as fast as possible.
    pub(crate) rate: u64,
    /// No batch is started after this long (then fewer than `events` may be sent).
    pub(crate) duration: Option<Duration>,
}

/// What the producers saw.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ingested {
    /// Events answered `202` (each durable).
    pub(crate) accepted: u64,
    /// Requests sent.
    pub(crate) requests: u64,
    /// Request latencies, microseconds, sorted.
    pub(crate) latencies_us: Vec<u32>,
    /// The first refusal, if any.
    pub(crate) first_error: String,
}

impl Ingested {
    /// The request latency at quantile `q`, in milliseconds.
    pub(crate) fn latency_ms(&self, q: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((q * self.latencies_us.len() as f64).ceil() as usize).clamp(1, self.latencies_us.len()) - 1;
        f64::from(self.latencies_us[i]) / 1000.0
    }
}

/// Posts every batch of `plan` to the relay; batch `b` goes to tenant `b % tenants.len()`.
pub(crate) async fn produce(
    relay_urls: Vec<String>,
    tenants: Vec<(String, String)>,
    load: Arc<Load>,
    plan: Plan,
) -> anyhow::Result<Ingested> {
    let batches = plan.events.div_ceil(plan.batch);
    let next = Arc::new(AtomicU64::new(0));
    // One client per relay and tenant; each producer posts to one relay (as a load balancer
    // spreads connections).
    let clients: Vec<Vec<Arc<JsonClient>>> = relay_urls
        .iter()
        .map(|url| tenants.iter().map(|(_, token)| JsonClient::new(url, Some(token.clone())).map(Arc::new)).collect())
        .collect::<anyhow::Result<_>>()?;
    let tenants = Arc::new(tenants);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..plan.clients {
        let (next, load, tenants) = (next.clone(), load.clone(), tenants.clone());
        let clients = clients[c % clients.len()].clone();
        tasks.spawn(async move {
            let mut seen = Ingested::default();
            loop {
                let b = next.fetch_add(1, Ordering::Relaxed) as usize;
                if b >= batches || plan.duration.is_some_and(|d| started.elapsed() >= d) {
                    break;
                }
                let first = b * plan.batch;
                let count = plan.batch.min(plan.events - first);
                if plan.rate > 0 {
                    let due = started + Duration::from_secs_f64(first as f64 / plan.rate as f64);
                    tokio::time::sleep_until(due.into()).await;
                }
                let tenant = b % tenants.len();
                let path = format!("/v1/tenants/{}/events", tenants[tenant].0);
                let body = load.body(first, count);
                load.sent.fetch_add(count as u64, Ordering::Relaxed);
                let sent_at = Instant::now();
                let (status, answer) = clients[tenant].call_raw(Method::POST, &path, Some(body)).await?;
                seen.latencies_us.push(u32::try_from(sent_at.elapsed().as_micros()).unwrap_or(u32::MAX));
                seen.requests += 1;
                if status == StatusCode::ACCEPTED {
                    seen.accepted += count as u64;
                } else if seen.first_error.is_empty() {
                    seen.first_error = format!("HTTP {status}: {}", String::from_utf8_lossy(&answer));
                }
            }
            anyhow::Ok(seen)
        });
    }
    let mut all = Ingested::default();
    while let Some(done) = tasks.join_next().await {
        let seen = done.context("a producer failed")??;
        all.accepted += seen.accepted;
        all.requests += seen.requests;
        all.latencies_us.extend(seen.latencies_us);
        if all.first_error.is_empty() {
            all.first_error = seen.first_error;
        }
    }
    all.latencies_us.sort_unstable();
    Ok(all)
}

/// A cloudtrail-data client of the local lake with the customer account's documented key.
pub(crate) fn data_client(endpoint: &str) -> aws_sdk_cloudtraildata::Client {
    let config = aws_sdk_cloudtraildata::Config::builder()
        .behavior_version(aws_sdk_cloudtraildata::config::BehaviorVersion::latest())
        .region(aws_sdk_cloudtraildata::config::Region::new("eu-west-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_cloudtraildata::config::Credentials::new(
            audit_lake::config::CUSTOMER_ACCESS_KEY_ID,
            audit_lake::config::CUSTOMER_SECRET_ACCESS_KEY,
            None,
            None,
            "klarity-audit-bench",
        ))
        .build();
    aws_sdk_cloudtraildata::Client::from_conf(config)
}

/// The baseline: `count` events straight into the lake with PutAuditEvents, batches of 100 with
/// checksums, from `clients` concurrent callers with the customer's own key (as AWS's samples do).
pub(crate) async fn put_directly(
    endpoint: &str,
    channel_arn: &str,
    load: Arc<Load>,
    count: usize,
    clients: usize,
) -> anyhow::Result<()> {
    let client = data_client(endpoint);
    let batches = count.div_ceil(100);
    let next = Arc::new(AtomicU64::new(0));
    let account = audit_lake::config::CUSTOMER_ACCOUNT;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (client, next, load, channel_arn) = (client.clone(), next.clone(), load.clone(), channel_arn.to_owned());
        tasks.spawn(async move {
            loop {
                let b = next.fetch_add(1, Ordering::Relaxed) as usize;
                if b >= batches {
                    return anyhow::Ok(());
                }
                let entries: Vec<aws_sdk_cloudtraildata::types::AuditEvent> = (b * 100..(b * 100 + 100).min(count))
                    .filter_map(|n| {
                        // The baseline's own numbers, far from the relay's, with the recipient set.
                        let data = load.event(n + (1 << 40)).replacen(
                            '{',
                            &format!("{{\"recipientAccountId\":\"{account}\","),
                            1,
                        );
                        audit_relay::delivery::sdk_entry(audit_event::AuditEvent::new(format!("{n:032x}"), data))
                    })
                    .collect();
                let out = client
                    .put_audit_events()
                    .channel_arn(&channel_arn)
                    .set_audit_events(Some(entries))
                    .send()
                    .await
                    .context("the baseline's PutAuditEvents failed")?;
                anyhow::ensure!(out.failed().is_empty(), "the lake refused baseline events: {:?}", out.failed());
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.context("a baseline client failed")??;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_uids_are_unique_and_scattered() {
        let load = Load::new(1000, UidOrder::Random);
        let uids: Vec<String> = (0..10_000).map(|n| load.event(n)).collect();
        let unique: std::collections::HashSet<&String> = uids.iter().collect();
        assert_eq!(unique.len(), uids.len());
        let ascending = uids.windows(2).filter(|w| w[0] < w[1]).count();
        assert!((3_000..7_000).contains(&ascending), "neighbours should not be in order: {ascending} of 9,999 ascend");
        let ordered = Load::new(1000, UidOrder::Ordered);
        assert!((0..10_000).map(|n| ordered.event(n)).collect::<Vec<_>>().windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn events_have_the_asked_size_and_unique_valid_uids() {
        let load = Load::new(1000, UidOrder::Random);
        assert!((995..=1005).contains(&load.event_len()), "{}", load.event_len());
        let catalog = audit_event::Catalog::embedded();
        let validator = audit_event::Validator::new(audit_event::Stage::Submit).with_catalog(&catalog);
        for n in [0, 1, 123_456_789] {
            let event = load.event(n);
            assert_eq!(event.len(), load.event_len());
            let checked = validator.validate(&event);
            assert!(checked.violations.is_empty(), "{event}: {:?}", checked.violations);
        }
        assert_ne!(load.event(1), load.event(2));
        let body: serde_json::Value = serde_json::from_slice(&load.body(10, 3)).unwrap();
        assert_eq!(body.as_array().unwrap().len(), 3);
    }
}
