//! Delivery: each tenant's pending events, in acceptance order, into its destination through the
//! official AWS SDK clients (AWS, or the local lake through an endpoint setting).
//!
//! A tenant's destination ([`crate::registry::Destination`]) owns its batching rules, its calls,
//! how it classifies what comes back and its story for exactly-once: CloudTrail Lake
//! ([`lake`], `PutAuditEvents`), CloudWatch Logs ([`logs`], `PutLogEvents`) and S3 ([`s3`],
//! `PutObject`, objects rolled over by size and time). Everything else is
//! shared: the spool, retries, dead letters, pause and probe, leases, metrics and status.
//!
//! One task per tenant, so a slow or broken tenant never delays the others. Each round sends one
//! batch with the tenant's credentials ([`credentials`]) and settles every event in the spool at
//! once: delivered, dead-lettered (a permanent per-event error, with code and message), or retried
//! (throttling, 5xx, network: the same events, only the failed subset, after a backoff with full
//! jitter, [`retry`]). A refusal of the destination as a whole (channel or log group not found,
//! access denied) pauses the tenant with its reason and keeps its events; a paused tenant is
//! probed every `probe_interval` and resumes by itself when the destination works again, or when
//! an operator resumes it.
//!
//! Each tenant is delivered by the relay holding its lease ([`crate::store`]): the lease is
//! renewed while the relay works, no batch is sent once it may have run out, and outcomes are
//! settled under it. A relay takes at most its fair share of the tenants (their number over the
//! relays running) and gives extras back. A lease taken over from a relay that died (or the first
//! lease after this relay itself did not stop cleanly) first looks up what may have been in flight
//! in the customer's store or log stream ([`reconcile`]).
//!
//! Ids are stable: an entry's id is fixed when it is accepted, so a batch whose answer was lost is
//! re-sent with the same ids. AWS does not de-duplicate across requests, so the window between a
//! successful call and the spool's commit is kept to one local fsync.

mod body;
pub mod credentials;
pub mod lake;
pub mod logs;
pub mod pacer;
pub mod reconcile;
pub mod request_builder;
pub mod retry;
pub mod s3;
pub mod verify;

pub use lake::sdk_entry;

use std::{collections::HashMap, sync::Arc, time::Duration};

use aws_sdk_cloudtraildata::config::{BehaviorVersion, Region};
use tokio_util::sync::CancellationToken;

use crate::{
    metrics::Metrics,
    registry::{DeliveryMode, Destination, Tenant},
    spool::{Outcome, Pending},
    store::{Lease, Store},
};
use credentials::{BaseCredentials, CredentialCache};
use retry::{Class, RetryPolicy, classify_call};

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
    /// After a takeover, how much longer than one attempt timeout a CloudTrail Lake tenant waits
    /// before looking up what was in flight, so the customer's store can answer for it.
    pub lookup_delay: Duration,
    /// PutAuditEvents calls in flight at once per tenant (each with different events).
    pub concurrency: usize,
    /// PutAuditEvents calls a second per calling account and region (CloudTrail's quota); 0 for
    /// no spacing.
    pub put_audit_events_tps: u32,
}

/// What one round did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Round {
    /// Events were settled (delivered or dead-lettered) and none needs a retry.
    Progress,
    /// Some events must be retried after a backoff.
    Retry,
    /// As [`Round::Retry`], and a call may have been taken although its answer never came (no
    /// answer, a timeout, a 5xx): its events are looked up in the destination before they are sent
    /// again ([`reconcile`]).
    Unsure,
    /// The channel refuses the relay: pause with this reason.
    Pause(String),
    /// The tenant's lease was lost: another relay delivers it now.
    Lost,
}

/// A batch taken from a tenant's queue.
struct Taken {
    /// The last spool position it covers: the tenant's cursor moves past it.
    last: i64,
    /// What to send, as its destination batches it.
    load: Load,
    /// The spool position and acceptance time (ms) of each event to send, by position.
    accepted: Vec<(i64, i64)>,
    /// Events the destination can never take (too large), dead-lettered.
    dead: Vec<Outcome>,
}

impl Taken {
    /// How many events it settles.
    fn count(&self) -> u64 {
        (self.accepted.len() + self.dead.len()) as u64
    }
}

/// A batch as its destination sends it.
enum Load {
    /// `PutAuditEvents` entries.
    Lake(request_builder::Batch),
    /// Events for `PutLogEvents` (sorted and split by time when sent).
    Logs(Vec<Pending>),
    /// Objects for `PutObject`, with the assignments to record before they are first written.
    S3(s3::Batch),
}

/// What a destination made of one batch.
#[derive(Debug, Default)]
pub(crate) struct Sent {
    /// What became of each event it has an answer for.
    outcomes: Vec<Outcome>,
    /// The destination refuses the relay (pause the tenant): why. Events without an outcome stay
    /// pending.
    refused: Option<String>,
    /// A call failed without an answer saying it was not taken: its events may be stored, and are
    /// looked up before they are sent again (CloudWatch Logs; see [`logs`]).
    unsure: bool,
}

impl Sent {
    fn refused(reason: String) -> Sent {
        Sent { outcomes: Vec::new(), refused: Some(reason), unsure: false }
    }
}

/// A tenant's destination client.
#[derive(Clone)]
enum Sink {
    Lake(aws_sdk_cloudtraildata::Client),
    Logs(aws_sdk_cloudwatchlogs::Client),
    S3(aws_sdk_s3::Client),
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
    /// key, region and destination stay the same.
    clients: std::sync::Mutex<HashMap<String, (String, String, Sink)>>,
    /// S3 tenants whose objects are not due yet: until when delivery need not look again.
    s3_waits: std::sync::Mutex<HashMap<String, std::time::Instant>>,
    /// Tenants whose batches may have reached their destination without the outcomes being
    /// recorded (the store failed for longer than the lease), or whose look-up of such batches did
    /// not finish: they are looked up before anything is sent again, and while any is left the
    /// relay does not count as stopped cleanly.
    unsettled: std::sync::Mutex<std::collections::HashSet<String>>,
    /// `PutAuditEvents` calls spaced within CloudTrail's quota.
    pacer: pacer::Pacer,
}

impl Deliverer {
    /// A deliverer over the store, counting into `metrics`.
    pub fn new(store: Store, config: DeliveryConfig, metrics: Arc<Metrics>) -> Arc<Deliverer> {
        let credentials = CredentialCache::new(config.credentials.clone(), config.endpoint_url.clone())
            .with_timeout(config.attempt_timeout);
        let pacer = pacer::Pacer::new(config.put_audit_events_tps);
        Arc::new(Deliverer {
            store,
            config,
            credentials,
            metrics,
            clients: std::sync::Mutex::new(HashMap::new()),
            s3_waits: std::sync::Mutex::new(HashMap::new()),
            unsettled: std::sync::Mutex::default(),
            pacer,
        })
    }

    /// Runs until `shutdown`: one task per tenant whose lease this relay holds, started as tenants
    /// appear and leases come free, up to a fair share. On shutdown each tenant finishes (and
    /// records) the batches it has in flight, sends no more, and gives its lease back. Returns
    /// whether every batch sent has its outcome recorded and every look-up after a takeover was
    /// done (else the next start must look them up: the relay did not stop cleanly).
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) -> bool {
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
        self.unsettled.lock().expect("unsettled lock").is_empty()
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
            // Another relay may take it first: then there is no lease to run. The lease lasts from
            // before it was asked for: the database started its time no earlier.
            let asked = std::time::Instant::now();
            let Some(lease) = self.store.acquire(&tenant).await? else { continue };
            let stop = shutdown.child_token();
            let (me, token) = (self.clone(), stop.clone());
            tracing::debug!(tenant = %tenant, epoch = lease.epoch, "Took a tenant's delivery lease.");
            running.insert(tenant, (tokio::spawn(async move { me.tenant_loop(lease, asked, token).await }), stop));
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
    async fn tenant_loop(self: Arc<Self>, lease: Lease, asked: std::time::Instant, stop: CancellationToken) {
        let tenant_id = lease.tenant.clone();
        let held = Arc::new(Held {
            deadline: std::sync::Mutex::new(asked + lease.ttl),
            lost: std::sync::atomic::AtomicBool::new(false),
            lease,
        });
        let keeping = tokio::spawn({
            let (me, held, stop) = (self.clone(), held.clone(), stop.clone());
            async move { me.keep(held, stop).await }
        });
        // A lease taken from a holder that did not stop cleanly, or a tenant this relay left
        // unsettled earlier, is looked up first.
        let unsettled = self.unsettled.lock().expect("unsettled lock").contains(&tenant_id);
        let looked = match held.lease.takeover.or(unsettled.then_some(self.config.attempt_timeout)) {
            Some(since) => {
                let metrics = self.metrics.tenant(&tenant_id);
                metrics.looking_up(true);
                let looked = self.take_over(&tenant_id, &held, since, &stop).await;
                metrics.looking_up(false);
                looked
            }
            None => true,
        };
        let mut failures = 0u32;
        let mut cursor = 0i64;
        let mut in_flight = tokio::task::JoinSet::new();
        let mut sent = 0u64;
        let mut wait: Option<Duration> = None;
        let mut window = retry::Window::new(self.config.concurrency);
        let mut looked_behind = std::time::Instant::now();
        let mut rewind = false;
        // A call may have been taken without an answer: look up before sending again.
        let mut look_up = false;
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
            while wait.is_none() && !rewind && !look_up && !stop.is_cancelled() && in_flight.len() < limit {
                if !held.valid() {
                    // The lease may have run out (renewals failed): send nothing until it is renewed.
                    wait = Some(self.config.idle_poll);
                    break;
                }
                match self.next_batch(&tenant, cursor).await {
                    Ok(Some(taken)) => {
                        cursor = taken.last;
                        let count = taken.count();
                        sent += count;
                        let (me, tenant, held) = (self.clone(), tenant.clone(), held.clone());
                        in_flight.spawn(async move { (me.deliver(&tenant, &held, taken).await, count) });
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
                if look_up && !stop.is_cancelled() {
                    look_up = self.reconcile(&tenant, &held.lease, reconcile::Why::Unanswered).await
                        == reconcile::Looked::Again;
                    self.metrics.tenant(&tenant.id).looking_up(look_up);
                    if look_up {
                        wait = Some(self.config.retry.backoff(failures));
                        failures = failures.saturating_add(1);
                    }
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
            if round == Round::Unsure {
                look_up = true;
                self.metrics.tenant(&tenant.id).looking_up(true);
            }
            match round {
                Round::Progress => {
                    failures = 0;
                    window.widen();
                    if tenant.paused.is_some() && !tenant.held {
                        self.set_breaker(&tenant.id, None).await;
                    }
                }
                Round::Retry | Round::Unsure => {
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
        if !looked || look_up {
            self.unsettled.lock().expect("unsettled lock").insert(tenant_id.clone());
        }
        self.metrics.tenant(&tenant_id).looking_up(false);
        // A lease is given back only when nothing is left to look up: else it runs out, and
        // whoever takes it next looks up first.
        if !held.lost.load(std::sync::atomic::Ordering::Relaxed)
            && !self.unsettled.lock().expect("unsettled lock").contains(&tenant_id)
            && let Err(err) = self.store.release(&held.lease).await
        {
            tracing::warn!(error = %err, tenant = %tenant_id, "Giving a delivery lease back failed; it runs out by itself.");
        }
    }

    /// Before a tenant taken over sends anything: waits out the previous holder's last call, then
    /// looks up what it may have had in flight ([`reconcile`]). Sending first could store those
    /// events twice, so when the relay's own store fails (a database restarting) or the look-up
    /// fails for now (the customer's store unreachable, throttling), it is tried again after a
    /// backoff, until it is done, the lease is lost or delivery stops. Returns whether it was done.
    async fn take_over(&self, tenant_id: &str, held: &Held, since: Duration, stop: &CancellationToken) -> bool {
        let mut waited = false;
        let mut failures = 0u32;
        while !stop.is_cancelled() && !held.lost.load(std::sync::atomic::Ordering::Relaxed) {
            match self.store.tenant(tenant_id).await {
                Ok(None) => {
                    // Removed: nothing of it is sent any more.
                    self.unsettled.lock().expect("unsettled lock").remove(tenant_id);
                    return true;
                }
                Ok(Some(tenant)) => {
                    if !waited && matches!(tenant.delivery, DeliveryMode::AssumeRole { .. }) {
                        // Calls in flight when the previous holder stopped may land up to one
                        // attempt timeout later, and CloudTrail Lake answers for an event only
                        // some time after that: the look-up waits out what is left of both.
                        let delay = match tenant.destination {
                            Destination::CloudtrailLake => self.config.lookup_delay,
                            _ => Duration::ZERO,
                        };
                        let wait = (self.config.attempt_timeout + delay).saturating_sub(since);
                        tracing::warn!(
                            tenant = %tenant_id,
                            wait_secs = wait.as_secs(),
                            "The tenant's previous delivery did not stop cleanly; batches it had in flight are looked up in the customer's store before they are sent again."
                        );
                        tokio::select! {
                            () = stop.cancelled() => return false,
                            () = tokio::time::sleep(wait) => {}
                        }
                        waited = true;
                    }
                    if self.reconcile(&tenant, &held.lease, reconcile::Why::Takeover).await == reconcile::Looked::Done {
                        self.unsettled.lock().expect("unsettled lock").remove(tenant_id);
                        return true;
                    }
                }
                Err(err) => {
                    tracing::error!(error = %err, tenant = %tenant_id, "Reading the tenant failed; its look-up waits.");
                }
            }
            tokio::select! {
                () = stop.cancelled() => return false,
                () = tokio::time::sleep(self.config.retry.backoff(failures)) => {}
            }
            failures = failures.saturating_add(1);
        }
        false
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

    /// The next batch of the tenant's pending events after `cursor`, as its destination batches.
    async fn next_batch(&self, tenant: &Tenant, cursor: i64) -> Result<Option<Taken>, crate::SpoolError> {
        let limit = match tenant.destination {
            Destination::CloudtrailLake => audit_event::limits::MAX_EVENTS_PER_REQUEST,
            Destination::CloudwatchLogs { .. } => logs::MAX_PENDING,
            Destination::S3 { rollover_secs, .. } => return self.next_objects(tenant, cursor, rollover_secs).await,
        };
        let pending = self.store.pending(&tenant.id, cursor, limit).await?;
        if pending.is_empty() {
            return Ok(None);
        }
        let (load, accepted, dead): (Load, Vec<(i64, i64)>, Vec<Outcome>) = match tenant.destination {
            Destination::CloudtrailLake => {
                let (batch, oversized) = request_builder::build(pending);
                let accepted = batch.entries.iter().map(|e| (e.seq, e.accepted_ms)).collect();
                let dead = oversized
                    .into_iter()
                    .map(|seq| Outcome::Dead {
                        seq,
                        code: "FieldTooLong".into(),
                        message: "the event is larger than a PutAuditEvents request may be (1 MiB)".into(),
                    })
                    .collect();
                (Load::Lake(batch), accepted, dead)
            }
            Destination::CloudwatchLogs { .. } => {
                let (batch, dead) = logs::take(pending);
                let accepted = batch.iter().map(|p| (p.seq, p.accepted_ms)).collect();
                (Load::Logs(batch), accepted, dead)
            }
            Destination::S3 { .. } => unreachable!("S3 batches are taken by next_objects"),
        };
        let last = accepted.iter().map(|(seq, _)| *seq).chain(dead.iter().map(Outcome::seq)).max().unwrap_or(cursor);
        Ok(Some(Taken { last, load, accepted, dead }))
    }

    /// The next objects of an S3 tenant after `cursor`: an object assigned before (a retry, or after
    /// a crash) at once, with all its events; new objects once [`s3::MAX_OBJECT_EVENTS`] events
    /// wait or the oldest has waited `rollover_secs`. Whether objects are due is looked up without
    /// reading the events (one event and two counts), so a tenant whose events wait costs little.
    async fn next_objects(
        &self,
        tenant: &Tenant,
        cursor: i64,
        rollover_secs: u64,
    ) -> Result<Option<Taken>, crate::SpoolError> {
        let now = std::time::Instant::now();
        if self.s3_waits.lock().expect("s3 waits lock").get(&tenant.id).is_some_and(|until| now < *until) {
            return Ok(None);
        }
        let Some(head) = self.store.pending(&tenant.id, cursor, 1).await?.pop() else { return Ok(None) };
        let rollover_ms = (rollover_secs as i64).saturating_mul(1000);
        let waited = audit_event::EventTime::now().unix_millis() - head.accepted_ms;
        if head.object.is_none() && waited < rollover_ms {
            let waiting = self.store.pending_through(&tenant.id, i64::MAX).await?
                - self.store.pending_through(&tenant.id, cursor).await?;
            if waiting < s3::MAX_OBJECT_EVENTS as u64 {
                // Not due: looked at again when the oldest is, or in a second (enough may wait by
                // then), not at every idle poll.
                let due = Duration::from_millis(u64::try_from(rollover_ms - waited).unwrap_or(0));
                self.s3_waits
                    .lock()
                    .expect("s3 waits lock")
                    .insert(tenant.id.clone(), now + due.min(Duration::from_secs(1)));
                return Ok(None);
            }
        }
        let pending = match head.object {
            // Exactly the object's events, from its first position on, even past one window and
            // behind the cursor: written with fewer, it would replace the object and lose the rest.
            // (None of them is in flight: a batch taking the object takes all of them, and the
            // cursor passes its last.)
            Some(key) => {
                let (first, last) = s3::positions(&key).unwrap_or((head.seq, i64::MAX));
                let mut events = Vec::new();
                let mut after = first - 1;
                loop {
                    let window = self.store.pending(&tenant.id, after, s3::MAX_PENDING).await?;
                    let full = window.len() == s3::MAX_PENDING;
                    after = window.last().map_or(after, |p| p.seq);
                    events.extend(window.into_iter().filter(|p| p.object.as_ref() == Some(&key)));
                    if !full || after >= last {
                        break;
                    }
                }
                events
            }
            None => self.store.pending(&tenant.id, cursor, s3::MAX_PENDING).await?,
        };
        let batch = s3::plan(tenant, pending);
        let mut accepted: Vec<(i64, i64)> =
            batch.objects.iter().flat_map(|o| o.events.iter().map(|p| (p.seq, p.accepted_ms))).collect();
        accepted.sort_unstable();
        let Some(&(last, _)) = accepted.last() else { return Ok(None) };
        Ok(Some(Taken { last: last.max(cursor), load: Load::S3(batch), accepted, dead: Vec::new() }))
    }

    /// Sends a batch to the tenant's destination and settles every event it has an answer for.
    async fn deliver(&self, tenant: &Tenant, held: &Held, taken: Taken) -> Round {
        let lease = &held.lease;
        let Taken { load, accepted, dead: mut outcomes, .. } = taken;
        if accepted.is_empty() {
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
        if matches!(load, Load::Lake(_)) {
            self.pacer.wait(tenant).await;
        }
        // Assuming the role and pacing take time: the lease is checked again just before the call,
        // so a new holder's wait of one attempt timeout covers every call this one makes.
        if !held.valid() {
            return Round::Retry;
        }
        let sent = match (self.client(tenant, credentials), load) {
            (Sink::Lake(client), Load::Lake(batch)) => lake::send(&client, tenant, batch).await,
            (Sink::Logs(client), Load::Logs(events)) => logs::send(&client, tenant, events, &|| held.valid()).await,
            (Sink::S3(client), Load::S3(batch)) => {
                // The assignments are durable before any object is written: every later attempt
                // writes the same objects.
                if !batch.assigned.is_empty() {
                    match self.settle(tenant, lease, batch.assigned, Round::Progress).await {
                        Round::Progress => {}
                        other => return other,
                    }
                }
                s3::send(&client, tenant, batch.objects).await
            }
            // The tenant changed destination between taking the batch and sending it: take again.
            _ => return Round::Retry,
        };
        let metrics = self.metrics.tenant(&tenant.id);
        let now = audit_event::EventTime::now().unix_millis();
        let mut retry = false;
        for outcome in &sent.outcomes {
            match outcome {
                Outcome::Delivered { seq, .. } => {
                    if let Ok(i) = accepted.binary_search_by_key(seq, |(s, _)| *s) {
                        metrics.latency.observe_ms(u64::try_from(now - accepted[i].1).unwrap_or(0));
                    }
                }
                Outcome::Retry { .. } => retry = true,
                Outcome::Dead { .. } | Outcome::Assigned { .. } => {}
            }
        }
        outcomes.extend(sent.outcomes);
        let round = match sent.refused {
            Some(reason) => Round::Pause(reason),
            None if retry && sent.unsure => Round::Unsure,
            None if retry => Round::Retry,
            None => Round::Progress,
        };
        self.settle(tenant, lease, outcomes, round).await
    }

    /// The tenant's client, built once per access key, region and destination.
    fn client(&self, tenant: &Tenant, credentials: aws_sdk_sts::config::Credentials) -> Sink {
        let key = credentials.access_key_id().to_owned();
        let mut clients = self.clients.lock().expect("client cache lock");
        let fits = |sink: &Sink| {
            matches!(
                (sink, &tenant.destination),
                (Sink::Lake(_), Destination::CloudtrailLake)
                    | (Sink::Logs(_), Destination::CloudwatchLogs { .. })
                    | (Sink::S3(_), Destination::S3 { .. })
            )
        };
        if let Some((cached_key, region, sink)) = clients.get(&tenant.id)
            && *cached_key == key
            && region == tenant.region()
            && fits(sink)
        {
            return sink.clone();
        }
        // The two SDKs' configurations have the same settings under different types.
        macro_rules! config {
            ($sdk:ident $(, $setting:ident($value:expr))*) => {{
                let mut config = $sdk::Config::builder()
                    .behavior_version(BehaviorVersion::latest())
                    .region(Region::new(tenant.region().to_owned()))
                    .credentials_provider(credentials)
                    .retry_config($sdk::config::retry::RetryConfig::disabled())
                    .timeout_config(
                        $sdk::config::timeout::TimeoutConfig::builder()
                            .connect_timeout(Duration::from_secs(5))
                            .operation_attempt_timeout(self.config.attempt_timeout)
                            .build(),
                    );
                if let Some(endpoint) = &self.config.endpoint_url {
                    config = config.endpoint_url(endpoint)$(.$setting($value))*;
                }
                config.build()
            }};
        }
        let sink = match tenant.destination {
            Destination::CloudtrailLake => {
                Sink::Lake(aws_sdk_cloudtraildata::Client::from_conf(config!(aws_sdk_cloudtraildata)))
            }
            Destination::CloudwatchLogs { .. } => {
                Sink::Logs(aws_sdk_cloudwatchlogs::Client::from_conf(config!(aws_sdk_cloudwatchlogs)))
            }
            // An endpoint of one's own (the local lake) is addressed by path, not by bucket host.
            Destination::S3 { .. } => {
                Sink::S3(aws_sdk_s3::Client::from_conf(config!(aws_sdk_s3, force_path_style(true))))
            }
        };
        clients.insert(tenant.id.clone(), (key, tenant.region().to_owned(), sink.clone()));
        sink
    }

    async fn settle(&self, tenant: &Tenant, lease: &Lease, outcomes: Vec<Outcome>, round: Round) -> Round {
        if outcomes.is_empty() {
            return round;
        }
        let (mut delivered, mut failed, mut retried) = (0, 0, 0);
        let mut last_error = None;
        for outcome in &outcomes {
            match outcome {
                Outcome::Delivered { .. } => delivered += 1,
                Outcome::Dead { code, message, .. } => {
                    failed += 1;
                    last_error = Some((code, Some(message)));
                }
                Outcome::Retry { code, .. } => {
                    retried += 1;
                    last_error = last_error.or(Some((code, None)));
                }
                Outcome::Assigned { .. } => {}
            }
        }
        if let Some((code, message)) = last_error {
            let what = match message {
                Some(message) => format!("{code}: {message} (dead-lettered)"),
                None => format!("{code} (retried)"),
            };
            self.metrics.tenant(&tenant.id).error(what);
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
                self.unsettled.lock().expect("unsettled lock").insert(tenant.id.clone());
                tracing::error!(error = %err, tenant = %tenant.id, "Recording delivery outcomes failed; the tenant's next lease looks them up before sending again.");
                Round::Lost
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{registry::ObjectFormat, spool::NewEvent};

    /// An S3 object whose events straddle the cursor (another object's events interleave with
    /// its own, and that one was taken first) is taken again whole: written with only the events
    /// past the cursor, it would replace itself and lose the others.
    #[tokio::test]
    async fn an_assigned_object_is_taken_whole_even_across_the_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::open(&crate::store::Engine::Sqlite { dir: dir.path().into(), max_bytes: 1 << 30 })
            .await
            .unwrap();
        let tenant = Tenant {
            id: "t1".into(),
            channel_arn: "arn:aws:s3:::b".into(),
            destination: Destination::S3 {
                region: "eu-west-1".into(),
                account: "123456789012".into(),
                prefix: String::new(),
                format: ObjectFormat::Ndjson,
                rollover_secs: 300,
            },
            delivery: DeliveryMode::AssumeRole {
                role_arn: "arn:aws:iam::123456789012:role/r".into(),
                external_id: None,
                proxy_role_arn: None,
            },
            applications: vec!["a".into(), "b".into()],
            paused: None,
            held: false,
            saved_queries: Vec::new(),
        };
        store.put_tenant(&tenant).await.unwrap();
        let events = (0..6)
            .map(|i| NewEvent {
                tenant: "t1".into(),
                source: if i % 2 == 0 { "a".into() } else { "b".into() },
                uid: format!("u{i}"),
                event_data: format!(
                    r#"{{"eventSource":"{}","eventTime":"2026-12-05T10:00:0{i}Z"}}"#,
                    if i % 2 == 0 { "a" } else { "b" }
                ),
            })
            .collect();
        store.append(events).await.unwrap();
        let deliverer =
            Deliverer::new(store.clone(), crate::RelayConfig::default().delivery(), Arc::new(Metrics::default()));
        let lease = store.acquire("t1").await.unwrap().unwrap();
        // Both objects are planned (and assigned) from the front; the first of them was delivered
        // up to the cursor, the second is retried from a cursor inside its range.
        let seqs: Vec<i64> = store.pending("t1", 0, 10).await.unwrap().iter().map(|p| p.seq).collect();
        let batch = s3::plan(&tenant, store.pending("t1", 0, 10).await.unwrap());
        assert_eq!(batch.objects.len(), 2);
        store.settle(&lease, batch.assigned.into()).await.unwrap();
        let taken = deliverer.next_objects(&tenant, seqs[2], 300).await.unwrap().unwrap();
        let Load::S3(again) = taken.load else { panic!("an S3 batch") };
        assert_eq!(again.objects.len(), 1);
        assert!(again.assigned.is_empty());
        assert_eq!(again.objects[0].key, batch.objects[1].key);
        assert_eq!(again.objects[0].events.iter().map(|p| p.seq).collect::<Vec<_>>(), [seqs[1], seqs[3], seqs[5]]);
        assert_eq!(taken.last, seqs[5]);
        // New events are not due while younger than the rollover and fewer than fill an object;
        // once the oldest waited the rollover, they go.
        store
            .append(vec![NewEvent {
                tenant: "t1".into(),
                source: "a".into(),
                uid: "u9".into(),
                event_data: r#"{"eventSource":"a","eventTime":"2026-12-05T10:00:09Z"}"#.into(),
            }])
            .await
            .unwrap();
        assert!(deliverer.next_objects(&tenant, seqs[5], 300).await.unwrap().is_none());
        let later =
            Deliverer::new(store.clone(), crate::RelayConfig::default().delivery(), Arc::new(Metrics::default()));
        let taken = later.next_objects(&tenant, seqs[5], 0).await.unwrap().expect("due at once");
        let Load::S3(new) = taken.load else { panic!("an S3 batch") };
        assert_eq!((new.objects.len(), new.assigned.len()), (1, 1));
    }

    /// A batch taken while the lease held, whose call would start only after the lease may have
    /// run out (it waited for the pacer or for credentials), is not sent: a new holder waits only
    /// one attempt timeout for the calls of the old one. The endpoint is a listener that counts
    /// connections (the call is refused before it is made, so no lake is needed).
    #[tokio::test]
    async fn no_call_starts_once_the_lease_may_have_run_out() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::open(&crate::store::Engine::Sqlite { dir: dir.path().into(), max_bytes: 1 << 30 })
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                drop(conn);
            }
        });
        let tenant = Tenant {
            id: "t1".into(),
            channel_arn: "arn:aws:cloudtrail:eu-west-1:123456789012:channel/0f9c1e2d-3b4a-4c5d-8e6f-7a8b9c0d1e2f"
                .into(),
            destination: Destination::CloudtrailLake,
            delivery: DeliveryMode::ResourcePolicy { external_id: None },
            applications: vec!["a".into()],
            paused: None,
            held: false,
            saved_queries: Vec::new(),
        };
        store.put_tenant(&tenant).await.unwrap();
        let events = (0..3)
            .map(|i| NewEvent {
                tenant: "t1".into(),
                source: "a".into(),
                uid: format!("u{i}"),
                event_data: format!(r#"{{"eventSource":"a","UID":"u{i}","eventTime":"2026-12-05T10:00:0{i}Z"}}"#),
            })
            .collect();
        store.append(events).await.unwrap();
        let mut config = crate::RelayConfig::default().delivery();
        config.endpoint_url = Some(endpoint);
        config.retry = RetryPolicy { base: Duration::from_millis(1), cap: Duration::from_millis(1) };
        let deliverer = Deliverer::new(store.clone(), config, Arc::new(Metrics::default()));
        let held = Held {
            lease: store.acquire("t1").await.unwrap().unwrap(),
            deadline: std::sync::Mutex::new(std::time::Instant::now() + Duration::from_secs(60)),
            lost: std::sync::atomic::AtomicBool::new(false),
        };
        let taken = deliverer.next_batch(&tenant, 0).await.unwrap().unwrap();
        // The lease runs out between taking the batch and sending it.
        *held.deadline.lock().unwrap() = std::time::Instant::now();
        assert_eq!(deliverer.deliver(&tenant, &held, taken).await, Round::Retry);
        assert_eq!(connections.load(Ordering::SeqCst), 0, "no call was made");
        assert_eq!(store.pending("t1", 0, 10).await.unwrap().len(), 3, "the events are still pending");
        // Under a valid lease the same batch is sent (and reaches the listener).
        *held.deadline.lock().unwrap() = std::time::Instant::now() + Duration::from_secs(60);
        let taken = deliverer.next_batch(&tenant, 0).await.unwrap().unwrap();
        assert_eq!(deliverer.deliver(&tenant, &held, taken).await, Round::Retry);
        assert!(connections.load(Ordering::SeqCst) >= 1, "the call was made");
    }
}
