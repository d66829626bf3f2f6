//! After a crash: which of a tenant's oldest pending events did CloudTrail store already?
//!
//! A relay that dies between a successful `PutAuditEvents` and the spool's commit of its outcome
//! would send those events again on restart, and CloudTrail does not de-duplicate. So when the
//! spool says the last run did not stop cleanly, each tenant first looks up the events that could
//! have been in flight — its oldest `concurrency × 100` pending events, since batches leave in
//! acceptance order — in its own event data store, by event source and `UID`, with the query API
//! (`GetChannel` for the store, then `StartQuery` / `DescribeQuery` / `GetQueryResults`). Those
//! found are recorded as delivered with the eventID CloudTrail gave them, and are not sent again.
//!
//! This needs the customer's role to allow `cloudtrail:GetChannel`, `StartQuery`, `DescribeQuery`
//! and `GetQueryResults` (the least-privilege policy of `onboard` grants them). A tenant in
//! resource-policy mode cannot read the customer's store, and when the look-up is refused (the
//! role does not allow it) the events are sent as before (at least once): both are logged. A
//! look-up that fails for now — the relay's own store restarting, the customer's store unreachable
//! or throttling — is tried again after a backoff, and nothing is sent until it is done. On AWS,
//! events become queryable some minutes after ingestion: after a crash a CloudTrail Lake tenant
//! waits `lookup_delay_secs` (600 s on AWS) before it looks up; an event still not answered for is
//! sent again.
//!
//! A CloudWatch Logs tenant's suspects (its oldest `concurrency × 1,000` pending events) are looked
//! up in its log stream with `FilterLogEvents` over their time span, matched by event source and
//! `UID` in each message. This needs `logs:FilterLogEvents` on the log group, which `onboard`
//! grants unless told `--no-verify-permissions`; without it the events are sent again, at most
//! the batches that were in flight. A CloudWatch Logs tenant also looks up before re-sending a
//! call that got no answer ([`Why::Unanswered`]: a dropped connection, a timeout, a 5xx), since
//! CloudWatch may have stored it and does not de-duplicate. (CloudTrail Lake tenants do not: on
//! AWS an event becomes queryable only minutes after ingestion, so a look-up right after the
//! failure would find nothing and cost a query.)

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use aws_sdk_cloudtrail::{
    config::{BehaviorVersion, Region},
    types::QueryStatus,
};

use super::{
    Deliverer, Round,
    retry::{Class, classify_call},
};
use crate::{
    registry::{DeliveryMode, Destination, Tenant},
    spool::Outcome,
    store::Lease,
};

/// The longest statement CloudTrail accepts.
const MAX_STATEMENT: usize = 10_000;

/// The longest a look-up may take before the events are sent without it.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(120);

/// Why a tenant's pending events are looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Why {
    /// The previous holder of the lease (or this relay before a restart) did not stop cleanly.
    Takeover,
    /// A call of this relay got no answer (it may have been taken).
    Unanswered,
}

impl Why {
    /// The events looked up, for logs.
    fn what(self) -> &'static str {
        match self {
            Why::Takeover => "the events that could have been in flight when the relay stopped",
            Why::Unanswered => "the events of a call that got no answer",
        }
    }
}

/// How a look-up ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Looked {
    /// Done, or it cannot be done (the relay may not read the tenant's store): delivery goes on.
    Done,
    /// The relay's store or the customer's failed for now: look up again after a backoff.
    Again,
}

/// A look-up that failed: why, and whether it may work when tried again.
struct Failed {
    why: String,
    for_now: bool,
}

impl Deliverer {
    /// Records as delivered the tenant's pending events its store already holds (see the module).
    pub(super) async fn reconcile(&self, tenant: &Tenant, lease: &Lease, why: Why) -> Looked {
        if matches!(tenant.destination, Destination::S3 { .. }) {
            // Nothing to look up: objects in flight were assigned first, and are written again
            // under the same keys (`s3`).
            return Looked::Done;
        }
        if !matches!(tenant.delivery, DeliveryMode::AssumeRole { .. }) {
            if why == Why::Unanswered {
                // Nothing to read the store with: the call's events are sent again, as for any
                // retry (the destination's module says what that may repeat).
                return Looked::Done;
            }
            tracing::warn!(
                tenant = %tenant.id,
                "The relay did not stop cleanly and this tenant publishes through a channel policy, so its store cannot be \
                 read: batches that were in flight are sent again and may be stored twice."
            );
            return Looked::Done;
        }
        let per_batch = match tenant.destination {
            Destination::CloudtrailLake => audit_event::limits::MAX_EVENTS_PER_REQUEST,
            Destination::CloudwatchLogs { .. } => super::logs::MAX_PENDING,
            Destination::S3 { .. } => return Looked::Done,
        };
        let limit = self.config.concurrency.max(1) * per_batch;
        let suspects = match self.store.pending(&tenant.id, 0, limit).await {
            Ok(pending) if pending.is_empty() => return Looked::Done,
            Ok(pending) => pending,
            Err(err) => {
                tracing::error!(error = %err, tenant = %tenant.id, "Reading pending events failed; the look-up waits.");
                return Looked::Again;
            }
        };
        match tokio::time::timeout(LOOKUP_TIMEOUT, self.lookup(tenant, &suspects)).await {
            Ok(Ok(found)) => {
                let outcomes: Vec<Outcome> =
                    found.into_iter().map(|(seq, event_id)| Outcome::Delivered { seq, event_id }).collect();
                let n = outcomes.len();
                // Those found must be recorded before anything is sent, or they would be sent again.
                if n > 0 && self.settle(tenant, lease, outcomes, Round::Progress).await != Round::Progress {
                    return Looked::Again;
                }
                self.metrics.tenant(&tenant.id).found.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                tracing::info!(
                    tenant = %tenant.id,
                    checked = suspects.len(),
                    already_stored = n,
                    "Looked up {}; those stored are not sent again.",
                    why.what()
                );
            }
            Ok(Err(Failed { why: reason, for_now: true })) => {
                tracing::warn!(
                    tenant = %tenant.id,
                    reason = %reason,
                    "Could not look up {} for now; nothing is sent until the look-up is done.",
                    why.what()
                );
                self.metrics.tenant(&tenant.id).error(format!("looking up {}: {reason}", why.what()));
                return Looked::Again;
            }
            Ok(Err(Failed { why: reason, .. })) => tracing::warn!(
                tenant = %tenant.id,
                reason = %reason,
                "Could not look up {}; they are sent again and may be stored twice.",
                why.what()
            ),
            Err(_) => tracing::warn!(
                tenant = %tenant.id,
                "Looking up {} took too long; they are sent again and may be stored twice.",
                why.what()
            ),
        }
        Looked::Done
    }

    /// (spool position, eventID) of each suspect found in the tenant's store or log stream.
    async fn lookup(&self, tenant: &Tenant, suspects: &[crate::spool::Pending]) -> Result<Vec<(i64, String)>, Failed> {
        let credentials = self.credentials.for_tenant(tenant).await.map_err(|e| Failed {
            why: format!("{} ({})", e.message, e.code),
            for_now: classify_call(Some(&e.code), None) == Class::Retry,
        })?;
        if let Destination::CloudwatchLogs { log_stream } = &tenant.destination {
            return self.lookup_logs(tenant, log_stream, credentials, suspects).await;
        }
        let mut config = aws_sdk_cloudtrail::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(tenant.region().to_owned()))
            .credentials_provider(credentials);
        if let Some(endpoint) = &self.config.endpoint_url {
            config = config.endpoint_url(endpoint);
        }
        let cloudtrail = aws_sdk_cloudtrail::Client::from_conf(config.build());
        let store = crate::trail::store_behind(&cloudtrail, &tenant.channel_arn)
            .await
            .map_err(|e| Failed { why: e.to_string(), for_now: e.for_now() })?;

        // Each suspect's (source, UID) and time, from the eventData the relay would send.
        let mut wanted: HashMap<(String, String), i64> = HashMap::new();
        let (mut earliest, mut latest) = (i64::MAX, i64::MIN);
        for event in suspects {
            let Ok(data) = serde_json::from_str::<serde_json::Value>(&event.event_data) else { continue };
            let (Some(source), Some(uid)) = (data["eventSource"].as_str(), data["UID"].as_str()) else { continue };
            if let Some(time) = data["eventTime"].as_str().and_then(|t| audit_event::EventTime::parse(t).ok()) {
                earliest = earliest.min(time.unix_seconds());
                latest = latest.max(time.unix_seconds());
            }
            wanted.insert((source.to_owned(), uid.to_owned()), event.seq);
        }
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let quote = |s: &str| format!("'{}'", s.replace('\'', "''"));
        let mut bounds = String::new();
        if earliest <= latest {
            let day = 86_400;
            let at = |s: i64| audit_event::EventTime::from_unix(s, 0).to_string().replace('T', " ").replace('Z', "");
            bounds = format!(" AND eventTime >= '{}' AND eventTime <= '{}'", at(earliest - day), at(latest + day));
        }
        let head = format!(
            "SELECT eventData.eventSource, eventData.UID, eventID FROM {store} WHERE metadata.channelARN = {}{bounds} AND eventData.UID IN (",
            quote(&tenant.channel_arn)
        );
        // A statement may be 10,000 characters: the UIDs go in as many queries as that takes.
        let uids: Vec<String> = wanted.keys().map(|(_, uid)| quote(uid)).collect();
        let mut statements = Vec::new();
        let mut list = String::new();
        for uid in uids {
            if !list.is_empty() && head.len() + list.len() + uid.len() + 3 > MAX_STATEMENT {
                statements.push(format!("{head}{list})"));
                list.clear();
            }
            if !list.is_empty() {
                list.push_str(", ");
            }
            list.push_str(&uid);
        }
        statements.push(format!("{head}{list})"));
        let started = Instant::now();
        let mut found = Vec::new();
        for statement in statements {
            for (source, uid, event_id) in query(&cloudtrail, statement).await? {
                if let Some(seq) = wanted.remove(&(source, uid)) {
                    found.push((seq, event_id));
                }
            }
        }
        tracing::debug!(tenant = %tenant.id, millis = started.elapsed().as_millis() as u64, "Reconciliation query done.");
        Ok(found)
    }
}

impl Deliverer {
    /// (spool position, where) of each suspect found in the tenant's log stream.
    async fn lookup_logs(
        &self,
        tenant: &Tenant,
        log_stream: &str,
        credentials: aws_sdk_sts::config::Credentials,
        suspects: &[crate::spool::Pending],
    ) -> Result<Vec<(i64, String)>, Failed> {
        let group =
            tenant.log_group().ok_or_else(|| Failed { why: "the tenant has no log group".into(), for_now: false })?;
        let mut config = aws_sdk_cloudwatchlogs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(tenant.region().to_owned()))
            .credentials_provider(credentials);
        if let Some(endpoint) = &self.config.endpoint_url {
            config = config.endpoint_url(endpoint);
        }
        let logs = aws_sdk_cloudwatchlogs::Client::from_conf(config.build());
        let mut wanted: HashMap<(String, String), i64> = HashMap::new();
        let (mut earliest, mut latest) = (i64::MAX, i64::MIN);
        for event in suspects {
            let Some(key) = source_and_uid(&event.event_data) else { continue };
            let at = super::logs::timestamp(event);
            (earliest, latest) = (earliest.min(at), latest.max(at));
            wanted.insert(key, event.seq);
        }
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let place = format!("{group}:{log_stream}");
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = logs
                .filter_log_events()
                .log_group_name(group)
                .log_stream_names(log_stream)
                .start_time(earliest)
                .end_time(latest.saturating_add(1))
                .set_next_token(token)
                .send()
                .await;
            let page = match page {
                Ok(page) => page,
                // The stream was never made: nothing reached it.
                Err(err) if err.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) => {
                    return Ok(found);
                }
                Err(err) => return Err(failed("FilterLogEvents", &err)),
            };
            for event in page.events() {
                if let Some(seq) = event.message().and_then(source_and_uid).and_then(|key| wanted.remove(&key)) {
                    found.push((seq, place.clone()));
                }
            }
            token = page.next_token().map(str::to_owned);
            if token.is_none() || wanted.is_empty() {
                return Ok(found);
            }
        }
    }
}

/// An event's `eventSource` and `UID`, from its JSON.
fn source_and_uid(event_data: &str) -> Option<(String, String)> {
    #[derive(serde::Deserialize)]
    struct Key {
        #[serde(rename = "eventSource")]
        source: String,
        #[serde(rename = "UID")]
        uid: String,
    }
    serde_json::from_str::<Key>(event_data).ok().map(|k| (k.source, k.uid))
}

/// Runs one query to its end; its rows as (eventSource, UID, eventID).
async fn query(
    cloudtrail: &aws_sdk_cloudtrail::Client,
    statement: String,
) -> Result<Vec<(String, String, String)>, Failed> {
    let query_id = cloudtrail
        .start_query()
        .query_statement(statement)
        .send()
        .await
        .map_err(|e| failed("StartQuery", &e))?
        .query_id()
        .unwrap_or_default()
        .to_owned();
    let mut pause = Duration::from_millis(20);
    loop {
        let described =
            cloudtrail.describe_query().query_id(&query_id).send().await.map_err(|e| failed("DescribeQuery", &e))?;
        match described.query_status() {
            Some(QueryStatus::Finished) => break,
            Some(QueryStatus::Queued | QueryStatus::Running) => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            other => {
                return Err(Failed {
                    why: format!(
                        "the query ended {}: {}",
                        other.map_or("without a status", |s| s.as_str()),
                        described.error_message().unwrap_or("")
                    ),
                    for_now: false,
                });
            }
        }
    }
    let mut rows = Vec::new();
    let mut token = None;
    loop {
        let page = cloudtrail
            .get_query_results()
            .query_id(&query_id)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| failed("GetQueryResults", &e))?;
        for row in page.query_result_rows() {
            let cell = |i: usize| row.get(i).and_then(|c| c.values().next()).cloned().unwrap_or_default();
            rows.push((cell(0), cell(1), cell(2)));
        }
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    Ok(rows)
}

/// A failed call's code and message, and whether it may work later (no answer, throttling, a
/// server error). (Every SDK's `SdkError` is smithy's, so one function serves CloudTrail's and
/// CloudWatch Logs' calls.)
fn failed<E: aws_sdk_cloudtrail::error::ProvideErrorMetadata + std::fmt::Display>(
    call: &str,
    err: &aws_sdk_cloudtrail::error::SdkError<E>,
) -> Failed {
    match err.as_service_error() {
        Some(e) => Failed {
            why: format!("{call}: {} ({})", e.message().unwrap_or(""), e.code().unwrap_or("error")),
            for_now: classify_call(e.code(), err.raw_response().map(|r| r.status().as_u16())) == Class::Retry,
        },
        None => Failed { why: format!("{call}: {err}"), for_now: true },
    }
}
