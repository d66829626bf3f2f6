//! Delivery: each tenant's pending events, in acceptance order, into its channel through the
//! official aws-sdk-cloudtraildata client (AWS, or the local lake through an endpoint setting).
//!
//! One task per tenant, so a slow or broken tenant never delays the others. Each round sends one
//! batch ([`request_builder`]) with the tenant's credentials ([`credentials`]) and settles every
//! entry in the spool at once: delivered (with CloudTrail's eventID), dead-lettered (a permanent
//! per-entry error, with code and message), or retried (throttling, 5xx, network: the same ids, only
//! the failed subset, after a backoff with full jitter, [`retry`]). A channel-level refusal
//! (channel not found, access denied) pauses the tenant with its reason and keeps its events; a
//! paused tenant is probed every `probe_interval` and resumes by itself when the channel works
//! again, or when an operator resumes it.
//!
//! Each tenant is delivered by the relay holding its lease ([`crate::store`]): the lease is
//! renewed while the relay works, no batch is sent once it may have run out, and outcomes are
//! settled under it. A relay takes at most its fair share of the tenants (their number over the
//! relays running) and gives extras back. A lease taken over from a relay that died (or the first
//! lease after this relay itself did not stop cleanly) first looks up what may have been in flight
//! ([`reconcile`]).
//!
//! Ids are stable: an entry's id is fixed when it is accepted, so a batch whose answer was lost is
//! re-sent with the same ids. AWS does not de-duplicate across requests, so the window between a
//! successful call and the spool's commit is kept to one local fsync.

pub mod credentials;
pub mod reconcile;
pub mod request_builder;
pub mod retry;

use std::{collections::HashMap, sync::Arc, time::Duration};

use aws_sdk_cloudtraildata::{
    config::{BehaviorVersion, Region},
    error::ProvideErrorMetadata,
};
use tokio_util::sync::CancellationToken;

use crate::{
    metrics::Metrics,
    registry::{DeliveryMode, Tenant},
    spool::Outcome,
    store::{Lease, Store},
};
use credentials::{BaseCredentials, CredentialCache};
use retry::{Class, RetryPolicy, classify_call, classify_entry};

/// How delivery behaves.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// Overrides the AWS endpoints (the local lake); `None` for AWS.
    pub endpoint_url: Option<String>,
    /// The relay's own credentials.
    pub credentials: BaseCredentials,
    /// Backoff for transient failures.
    pub retry: RetryPolicy,
    /// How long an idle tenant waits before looking for new events.
    pub idle_poll: Duration,
    /// How often a paused tenant's channel is probed.
    pub probe_interval: Duration,
    /// How often the registry is re-read for new tenants.
    pub tenant_scan: Duration,
    /// The longest one PutAuditEvents attempt may take before it counts as failed (and retried).
    pub attempt_timeout: Duration,
    /// PutAuditEvents calls in flight at once per tenant (each with different events).
    pub concurrency: usize,
}

/// What one round did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Round {
    /// Events were settled (delivered or dead-lettered) and none needs a retry.
    Progress,
    /// Some events must be retried after a backoff.
    Retry,
    /// The channel refuses the relay: pause with this reason.
    Pause(String),
    /// The tenant's lease was lost: another relay delivers it now.
    Lost,
}

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

/// A batch taken from a tenant's queue.
struct Taken {
    /// The last spool position it covers: the tenant's cursor moves past it.
    last: i64,
    /// The entries to send.
    batch: request_builder::Batch,
    /// Spool positions of events too large to ever send (dead-lettered).
    oversized: Vec<i64>,
}

/// A tenant's lease as its delivery holds it: until when it surely lasts, and whether it was lost.
struct Held {
    lease: Lease,
    deadline: std::sync::Mutex<std::time::Instant>,
    lost: std::sync::atomic::AtomicBool,
}

impl Held {
    /// Whether a batch may still be sent under the lease.
    fn valid(&self) -> bool {
        !self.lost.load(std::sync::atomic::Ordering::Relaxed)
            && std::time::Instant::now() < *self.deadline.lock().expect("lease deadline lock")
    }
}

/// The delivery engine.
pub struct Deliverer {
    store: Store,
    config: DeliveryConfig,
    credentials: CredentialCache,
    metrics: Arc<Metrics>,
    /// One SDK client per tenant (and its HTTP connection pool), kept while the tenant's access
    /// key and region stay the same.
    clients: std::sync::Mutex<HashMap<String, (String, String, aws_sdk_cloudtraildata::Client)>>,
}

impl Deliverer {
    /// A deliverer over the store, counting into `metrics`.
    pub fn new(store: Store, config: DeliveryConfig, metrics: Arc<Metrics>) -> Arc<Deliverer> {
        let credentials = CredentialCache::new(config.credentials.clone(), config.endpoint_url.clone());
        Arc::new(Deliverer { store, config, credentials, metrics, clients: std::sync::Mutex::new(HashMap::new()) })
    }

    /// Runs until `shutdown`: one task per tenant whose lease this relay holds, started as tenants
    /// appear and leases come free, up to a fair share. On shutdown each tenant finishes (and
    /// records) the batches it has in flight, sends no more, and gives its lease back.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut running: HashMap<String, (tokio::task::JoinHandle<()>, CancellationToken)> = HashMap::new();
        loop {
            running.retain(|_, (task, _)| !task.is_finished());
            if let Err(err) = self.share(&mut running, &shutdown).await {
                tracing::error!(error = %err, "Reading the tenants or taking their leases failed; the next scan retries.");
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(self.config.tenant_scan) => {}
            }
        }
        for (_, (task, _)) in running {
            let _ = task.await;
        }
    }

    /// Takes the leases of tenants nobody delivers, up to this relay's fair share, and gives one
    /// back when it holds more than that.
    async fn share(
        self: &Arc<Self>,
        running: &mut HashMap<String, (tokio::task::JoinHandle<()>, CancellationToken)>,
        shutdown: &CancellationToken,
    ) -> Result<(), crate::SpoolError> {
        let tenants = self.store.tenants().await?;
        let relays = self.store.relays().await?;
        let fair = tenants.len().div_ceil(relays.max(1));
        let unheld: Vec<String> =
            tenants.iter().filter(|t| !running.contains_key(&t.id)).map(|t| t.id.clone()).collect();
        let free =
            if running.len() < fair && !unheld.is_empty() { self.store.leasable(unheld).await? } else { Vec::new() };
        for tenant in free {
            if running.len() >= fair || shutdown.is_cancelled() {
                break;
            }
            // Another relay may take it first: then there is no lease to run.
            let Some(lease) = self.store.acquire(&tenant).await? else { continue };
            let stop = shutdown.child_token();
            let (me, token) = (self.clone(), stop.clone());
            tracing::debug!(tenant = %tenant, epoch = lease.epoch, "Took a tenant's delivery lease.");
            running.insert(tenant, (tokio::spawn(async move { me.tenant_loop(lease, token).await }), stop));
        }
        // Tenants given back earlier may still be settling their batches: only those kept count, so
        // one scan gives back one tenant, and the next gives back more only if still over.
        let kept = running.values().filter(|(_, stop)| !stop.is_cancelled()).count();
        if kept > fair
            && let Some((id, (_, stop))) = running.iter().find(|(_, (_, stop))| !stop.is_cancelled())
        {
            tracing::info!(tenant = %id, relays, "Giving a tenant back: this relay holds more than its share.");
            stop.cancel();
        }
        Ok(())
    }

    /// Renews the lease every third of its time until `stop`; marks it lost when another relay
    /// took it. A renewal that fails (the database is away) leaves the deadline where it was, so
    /// sending stops when the lease may have run out.
    async fn keep(&self, held: Arc<Held>, stop: CancellationToken) {
        let every = held.lease.ttl / 3;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
            let started = std::time::Instant::now();
            match self.store.renew(&held.lease).await {
                Ok(true) => *held.deadline.lock().expect("lease deadline lock") = started + held.lease.ttl,
                Ok(false) => {
                    tracing::warn!(tenant = %held.lease.tenant, "Lost a tenant's delivery lease; another relay delivers it now.");
                    held.lost.store(true, std::sync::atomic::Ordering::Relaxed);
                    stop.cancel();
                    return;
                }
                Err(err) => {
                    tracing::warn!(error = %err, tenant = %held.lease.tenant, "Renewing a delivery lease failed; retrying.");
                }
            }
        }
    }

    /// One tenant's delivery under its lease: up to `concurrency` batches in flight, each of
    /// different events, fewer while calls fail for now ([`retry::Window`]).
    ///
    /// Batches are taken in position order behind a cursor that only moves forward while batches
    /// are in flight, so no event is ever in two calls at once. When a batch needs a retry or the
    /// channel refuses, nothing more is sent; once the calls in flight have settled, the tenant
    /// waits (backoff, or the probe interval while paused) and starts again from its oldest
    /// pending event. It starts again the same way when events were committed behind the cursor
    /// (PostgreSQL hands out positions before commits), looked for once a second.
    async fn tenant_loop(self: Arc<Self>, lease: Lease, stop: CancellationToken) {
        let tenant_id = lease.tenant.clone();
        let held = Arc::new(Held {
            deadline: std::sync::Mutex::new(std::time::Instant::now() + lease.ttl),
            lost: std::sync::atomic::AtomicBool::new(false),
            lease,
        });
        let keeping = tokio::spawn({
            let (me, held, stop) = (self.clone(), held.clone(), stop.clone());
            async move { me.keep(held, stop).await }
        });
        if let Some(since) = held.lease.takeover
            && let Ok(Some(tenant)) = self.store.tenant(&tenant_id).await
        {
            // Calls in flight when the previous holder stopped may land up to one attempt timeout
            // later: the look-up waits out what is left of it.
            if matches!(tenant.delivery, DeliveryMode::AssumeRole { .. }) {
                let wait = self.config.attempt_timeout.saturating_sub(since);
                tracing::warn!(
                    tenant = %tenant_id,
                    wait_secs = wait.as_secs(),
                    "The tenant's previous delivery did not stop cleanly; batches it had in flight are looked up in the customer's store before they are sent again."
                );
                tokio::select! {
                    () = stop.cancelled() => {}
                    () = tokio::time::sleep(wait) => {}
                }
            }
            if !stop.is_cancelled() {
                self.reconcile(&tenant, &held.lease).await;
            }
        }
        let mut failures = 0u32;
        let mut cursor = 0i64;
        let mut in_flight = tokio::task::JoinSet::new();
        let mut sent = 0u64;
        let mut wait: Option<Duration> = None;
        let mut window = retry::Window::new(self.config.concurrency);
        let mut looked_behind = std::time::Instant::now();
        let mut rewind = false;
        let mut known: Option<Tenant> = None;
        loop {
            let tenant = match self.store.tenant(&tenant_id).await {
                Ok(Some(tenant)) => {
                    known = Some(tenant.clone());
                    tenant
                }
                Ok(None) => break,
                Err(err) => {
                    tracing::error!(error = %err, tenant = %tenant_id, "Reading the tenant failed.");
                    match &known {
                        // Batches in flight are settled as usual, with the tenant as last read.
                        Some(tenant) if !in_flight.is_empty() => tenant.clone(),
                        _ => {
                            tokio::select! {
                                () = stop.cancelled() => break,
                                () = tokio::time::sleep(self.config.retry.backoff(failures)) => {}
                            }
                            failures = failures.saturating_add(1);
                            continue;
                        }
                    }
                }
            };
            // A tenant paused by the breaker is probed with one batch; one held by an operator waits.
            let limit = match (&tenant.paused, tenant.held) {
                (Some(_), true) => 0,
                (Some(_), false) => 1,
                (None, _) => window.get(),
            };
            if !in_flight.is_empty() && looked_behind.elapsed() >= Duration::from_secs(1) {
                looked_behind = std::time::Instant::now();
                // Pending events at or behind the cursor that are not in flight were committed
                // after the cursor passed them.
                match self.store.pending_through(&tenant.id, cursor).await {
                    Ok(behind) if behind > sent => rewind = true,
                    Ok(_) => {}
                    Err(err) => tracing::warn!(error = %err, tenant = %tenant.id, "Looking behind the cursor failed."),
                }
            }
            let mut idle = false;
            while wait.is_none() && !rewind && !stop.is_cancelled() && in_flight.len() < limit {
                if !held.valid() {
                    // The lease may have run out (renewals failed): send nothing until it is renewed.
                    wait = Some(self.config.idle_poll);
                    break;
                }
                match self.next_batch(&tenant, cursor).await {
                    Ok(Some(taken)) => {
                        cursor = taken.last;
                        let count = (taken.batch.seqs.len() + taken.oversized.len()) as u64;
                        sent += count;
                        let (me, tenant, held) = (self.clone(), tenant.clone(), held.clone());
                        in_flight.spawn(async move {
                            (me.deliver(&tenant, &held.lease, taken.batch, taken.oversized).await, count)
                        });
                    }
                    Ok(None) => {
                        idle = true;
                        break;
                    }
                    Err(err) => {
                        tracing::error!(error = %err, tenant = %tenant.id, "Reading pending events failed.");
                        wait = Some(self.config.retry.backoff(failures));
                    }
                }
            }
            if in_flight.is_empty() {
                if stop.is_cancelled() {
                    break;
                }
                (cursor, sent, rewind) = (0, 0, false);
                let pause =
                    wait.take().unwrap_or(if idle || limit == 0 { self.config.idle_poll } else { Duration::ZERO });
                tokio::select! {
                    () = stop.cancelled() => {}
                    () = tokio::time::sleep(pause) => {}
                }
                continue;
            }
            let round = match in_flight.join_next().await {
                Some(Ok((round, count))) => {
                    sent -= count;
                    round
                }
                Some(Err(err)) => {
                    tracing::error!(error = %err, tenant = %tenant.id, "A delivery task failed.");
                    // Its events are pending still, and counted as sent until the cursor resets.
                    Round::Retry
                }
                None => continue,
            };
            match round {
                Round::Progress => {
                    failures = 0;
                    window.widen();
                    if tenant.paused.is_some() && !tenant.held {
                        self.set_breaker(&tenant.id, None).await;
                    }
                }
                Round::Retry => {
                    failures += 1;
                    window.narrow();
                    wait = Some(self.config.retry.backoff(failures - 1));
                }
                Round::Pause(reason) => {
                    if tenant.paused.as_deref() != Some(reason.as_str()) {
                        tracing::warn!(tenant = %tenant.id, reason = %reason, "Paused delivery to a tenant; its events are kept.");
                        self.set_breaker(&tenant.id, Some(reason)).await;
                    }
                    self.credentials.forget(&tenant.id);
                    wait = Some(self.config.probe_interval);
                }
                Round::Lost => {
                    held.lost.store(true, std::sync::atomic::Ordering::Relaxed);
                    stop.cancel();
                }
            }
        }
        // Whatever ended the loop, calls in flight are settled before the lease is given back.
        while in_flight.join_next().await.is_some() {}
        stop.cancel();
        let _ = keeping.await;
        if !held.lost.load(std::sync::atomic::Ordering::Relaxed)
            && let Err(err) = self.store.release(&held.lease).await
        {
            tracing::warn!(error = %err, tenant = %tenant_id, "Giving a delivery lease back failed; it runs out by itself.");
        }
    }

    /// Opens or closes the circuit breaker, unless an operator holds the tenant.
    async fn set_breaker(&self, tenant_id: &str, reason: Option<String>) {
        let resumed = reason.is_none();
        let updated = self
            .store
            .update_tenant(tenant_id, &|t| {
                if t.held || t.paused == reason {
                    return false;
                }
                t.paused = reason.clone();
                true
            })
            .await;
        match updated {
            Ok(Some(t)) if resumed && t.paused.is_none() => {
                tracing::info!(tenant = %tenant_id, "Resumed delivery to a tenant.");
            }
            Ok(_) => {}
            Err(err) => tracing::error!(error = %err, tenant = %tenant_id, "Recording the tenant's state failed."),
        }
    }

    /// The next batch of the tenant's pending events after `cursor`.
    async fn next_batch(&self, tenant: &Tenant, cursor: i64) -> Result<Option<Taken>, crate::SpoolError> {
        let pending = self.store.pending(&tenant.id, cursor, audit_event::limits::MAX_EVENTS_PER_REQUEST).await?;
        if pending.is_empty() {
            return Ok(None);
        }
        let (batch, oversized) = request_builder::build(pending);
        let last = batch.seqs.iter().chain(&oversized).copied().max().unwrap_or(cursor);
        Ok(Some(Taken { last, batch, oversized }))
    }

    /// Sends `batch` and settles every entry; dead-letters `oversized` (spool positions).
    async fn deliver(
        &self,
        tenant: &Tenant,
        lease: &Lease,
        batch: request_builder::Batch,
        oversized: Vec<i64>,
    ) -> Round {
        let metrics = self.metrics.tenant(&tenant.id);
        let mut outcomes: Vec<Outcome> = oversized
            .into_iter()
            .map(|seq| Outcome::Dead {
                seq,
                code: "FieldTooLong".into(),
                message: "the event is larger than a PutAuditEvents request may be (1 MiB)".into(),
            })
            .collect();
        if batch.entries.is_empty() {
            return self.settle(tenant, lease, outcomes, Round::Progress).await;
        }
        let credentials = match self.credentials.for_tenant(tenant).await {
            Ok(c) => c,
            Err(err) => {
                return match classify_call(Some(&err.code), None) {
                    Class::Retry => Round::Retry,
                    _ => Round::Pause(format!("the customer's role cannot be assumed: {} ({})", err.message, err.code)),
                };
            }
        };
        let client = self.client(tenant, credentials);
        let external_id = match &tenant.delivery {
            DeliveryMode::ResourcePolicy { external_id } => external_id.clone(),
            DeliveryMode::AssumeRole { .. } => None,
        };
        let seq_of: HashMap<String, (i64, i64)> = batch
            .entries
            .iter()
            .map(|e| e.id.clone())
            .zip(batch.seqs.iter().copied().zip(batch.accepted_ms.iter().copied()))
            .collect();
        let entries: Vec<aws_sdk_cloudtraildata::types::AuditEvent> =
            batch.entries.into_iter().filter_map(sdk_entry).collect();
        let result = client
            .put_audit_events()
            .channel_arn(&tenant.channel_arn)
            .set_external_id(external_id)
            .set_audit_events(Some(entries))
            .send()
            .await;
        match result {
            Ok(out) => {
                let mut retry = false;
                let now = audit_event::EventTime::now().unix_millis();
                for s in out.successful() {
                    if let Some(&(seq, accepted_ms)) = seq_of.get(s.id()) {
                        metrics.latency.observe_ms(u64::try_from(now - accepted_ms).unwrap_or(0));
                        outcomes.push(Outcome::Delivered { seq, event_id: s.event_id().to_owned() });
                    }
                }
                for f in out.failed() {
                    let Some(&(seq, _)) = seq_of.get(f.id()) else { continue };
                    match classify_entry(f.error_code()) {
                        Class::Retry => {
                            retry = true;
                            outcomes.push(Outcome::Retry { seq, code: f.error_code().to_owned() });
                        }
                        _ => outcomes.push(Outcome::Dead {
                            seq,
                            code: f.error_code().to_owned(),
                            message: f.error_message().to_owned(),
                        }),
                    }
                }
                self.settle(tenant, lease, outcomes, if retry { Round::Retry } else { Round::Progress }).await
            }
            Err(err) => {
                let status = err.raw_response().map(|r| r.status().as_u16());
                let code = err.code().map(str::to_owned);
                let message = err.message().map(str::to_owned).unwrap_or_else(|| format!("{err}"));
                match classify_call(code.as_deref(), status) {
                    Class::Pause => Round::Pause(format!(
                        "PutAuditEvents is refused: {} ({message})",
                        code.unwrap_or_else(|| "error".into())
                    )),
                    _ => {
                        let code =
                            code.unwrap_or_else(|| status.map_or("NetworkError".into(), |s| format!("HTTP {s}")));
                        outcomes.extend(batch.seqs.iter().map(|&seq| Outcome::Retry { seq, code: code.clone() }));
                        self.settle(tenant, lease, outcomes, Round::Retry).await
                    }
                }
            }
        }
    }

    /// The tenant's client, built once per access key and region.
    fn client(&self, tenant: &Tenant, credentials: aws_sdk_sts::config::Credentials) -> aws_sdk_cloudtraildata::Client {
        let key = credentials.access_key_id().to_owned();
        let mut clients = self.clients.lock().expect("client cache lock");
        if let Some((cached_key, region, client)) = clients.get(&tenant.id)
            && *cached_key == key
            && region == tenant.region()
        {
            return client.clone();
        }
        let mut config = aws_sdk_cloudtraildata::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(tenant.region().to_owned()))
            .credentials_provider(credentials)
            .retry_config(aws_sdk_cloudtraildata::config::retry::RetryConfig::disabled())
            .timeout_config(
                aws_sdk_cloudtraildata::config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(self.config.attempt_timeout)
                    .build(),
            );
        if let Some(endpoint) = &self.config.endpoint_url {
            config = config.endpoint_url(endpoint);
        }
        let client = aws_sdk_cloudtraildata::Client::from_conf(config.build());
        clients.insert(tenant.id.clone(), (key, tenant.region().to_owned(), client.clone()));
        client
    }

    async fn settle(&self, tenant: &Tenant, lease: &Lease, outcomes: Vec<Outcome>, round: Round) -> Round {
        if outcomes.is_empty() {
            return round;
        }
        let (mut delivered, mut failed, mut retried) = (0, 0, 0);
        for outcome in &outcomes {
            match outcome {
                Outcome::Delivered { .. } => delivered += 1,
                Outcome::Dead { .. } => failed += 1,
                Outcome::Retry { .. } => retried += 1,
            }
        }
        // The events were sent: their outcomes must be recorded, or they would be sent again (and
        // stored twice). A failure of the store (a database restarting) is retried, for as long as
        // the lease lasts; the settle is fenced, so a late success can never overwrite a new holder.
        let outcomes: Arc<[Outcome]> = outcomes.into();
        let started = std::time::Instant::now();
        let patience = lease.ttl.min(Duration::from_secs(60));
        let mut pause = Duration::from_millis(100);
        let result = loop {
            match self.store.settle(lease, outcomes.clone()).await {
                Err(err) if !matches!(err, crate::SpoolError::LeaseLost(_)) && started.elapsed() < patience => {
                    tracing::warn!(error = %err, tenant = %tenant.id, "Recording delivery outcomes failed; retrying.");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                result => break result,
            }
        };
        match result {
            Ok(()) => {
                use std::sync::atomic::Ordering::Relaxed;
                let metrics = self.metrics.tenant(&tenant.id);
                metrics.delivered.fetch_add(delivered, Relaxed);
                metrics.failed.fetch_add(failed, Relaxed);
                metrics.retried.fetch_add(retried, Relaxed);
                round
            }
            Err(crate::SpoolError::LeaseLost(_)) => {
                tracing::warn!(tenant = %tenant.id, "The delivery lease ran out before outcomes were recorded; the tenant's new holder looks them up.");
                Round::Lost
            }
            Err(err) => {
                // Given up: the lease is not given back cleanly, so whoever takes it next (this
                // relay too) first looks up what was sent.
                tracing::error!(error = %err, tenant = %tenant.id, "Recording delivery outcomes failed; the tenant's next lease looks them up before sending again.");
                Round::Lost
            }
        }
    }
}
