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
//! Ids are stable: an entry's id is fixed when it is accepted, so a batch whose answer was lost is
//! re-sent with the same ids. AWS does not de-duplicate across requests, so the window between a
//! successful call and the spool's commit is kept to one local fsync.

pub mod credentials;
pub mod request_builder;
pub mod retry;

use std::{collections::HashMap, sync::Arc, time::Duration};

use aws_sdk_cloudtraildata::{
    config::{BehaviorVersion, Region},
    error::ProvideErrorMetadata,
};
use tokio_util::sync::CancellationToken;

use crate::{
    registry::{DeliveryMode, Registry, Tenant},
    spool::{Outcome, Spool},
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
}

/// What one round did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Round {
    /// Nothing was pending.
    Idle,
    /// Events were settled (delivered or dead-lettered) and none needs a retry.
    Progress,
    /// Some events must be retried after a backoff.
    Retry,
    /// The channel refuses the relay: pause with this reason.
    Pause(String),
}

/// The delivery engine.
pub struct Deliverer {
    spool: Spool,
    registry: Registry,
    config: DeliveryConfig,
    credentials: CredentialCache,
    /// One SDK client per tenant (and its HTTP connection pool), kept while the tenant's access
    /// key and region stay the same.
    clients: std::sync::Mutex<HashMap<String, (String, String, aws_sdk_cloudtraildata::Client)>>,
}

impl Deliverer {
    /// A deliverer over the spool and registry.
    pub fn new(spool: Spool, registry: Registry, config: DeliveryConfig) -> Arc<Deliverer> {
        let credentials = CredentialCache::new(config.credentials.clone(), config.endpoint_url.clone());
        Arc::new(Deliverer { spool, registry, config, credentials, clients: std::sync::Mutex::new(HashMap::new()) })
    }

    /// Runs until `shutdown`: one task per tenant, started as tenants appear.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut running: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
        loop {
            match self.registry.tenants() {
                Ok(tenants) => {
                    for tenant in tenants {
                        if running.get(&tenant.id).is_none_or(|task| task.is_finished()) {
                            let (me, token, id) = (self.clone(), shutdown.clone(), tenant.id.clone());
                            running.insert(
                                tenant.id.clone(),
                                tokio::spawn(async move { me.tenant_loop(id, token).await }),
                            );
                        }
                    }
                }
                Err(err) => tracing::error!(error = %err, "Reading the tenant registry failed."),
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(self.config.tenant_scan) => {}
            }
        }
        for (_, task) in running {
            let _ = task.await;
        }
    }

    async fn tenant_loop(self: Arc<Self>, tenant_id: String, shutdown: CancellationToken) {
        let mut failures = 0u32;
        while !shutdown.is_cancelled() {
            let tenant = match self.registry.tenant(&tenant_id) {
                Ok(Some(tenant)) => tenant,
                Ok(None) => return,
                Err(err) => {
                    tracing::error!(error = %err, tenant = %tenant_id, "Reading the tenant failed.");
                    return;
                }
            };
            let wait = match self.round(&tenant).await {
                Round::Idle => self.config.idle_poll,
                Round::Progress => {
                    failures = 0;
                    if tenant.paused.is_some() {
                        self.set_paused(&tenant, None);
                    }
                    Duration::ZERO
                }
                Round::Retry => {
                    failures += 1;
                    self.config.retry.backoff(failures - 1)
                }
                Round::Pause(reason) => {
                    if tenant.paused.as_deref() != Some(reason.as_str()) {
                        tracing::warn!(tenant = %tenant.id, reason = %reason, "Paused delivery to a tenant; its events are kept.");
                        self.set_paused(&tenant, Some(reason));
                    }
                    self.credentials.forget(&tenant.id);
                    self.config.probe_interval
                }
            };
            if !wait.is_zero() {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(wait) => {}
                }
            }
        }
    }

    fn set_paused(&self, tenant: &Tenant, reason: Option<String>) {
        let mut updated = tenant.clone();
        if reason.is_none() {
            tracing::info!(tenant = %tenant.id, "Resumed delivery to a tenant.");
        }
        updated.paused = reason;
        if let Err(err) = self.registry.put_tenant(&updated) {
            tracing::error!(error = %err, tenant = %tenant.id, "Recording the tenant's state failed.");
        }
    }

    /// Sends one batch of the tenant's pending events and settles the outcome.
    pub async fn round(&self, tenant: &Tenant) -> Round {
        let pending = match self.spool.pending(&tenant.id, 0, audit_event::limits::MAX_EVENTS_PER_REQUEST) {
            Ok(p) => p,
            Err(err) => {
                tracing::error!(error = %err, tenant = %tenant.id, "Reading pending events failed.");
                return Round::Retry;
            }
        };
        if pending.is_empty() {
            return Round::Idle;
        }
        let (batch, oversized) = request_builder::build(pending);
        let mut outcomes: Vec<Outcome> = oversized
            .into_iter()
            .map(|seq| Outcome::Dead {
                seq,
                code: "FieldTooLong".into(),
                message: "the event is larger than a PutAuditEvents request may be (1 MiB)".into(),
            })
            .collect();
        if batch.entries.is_empty() {
            return self.settle(tenant, outcomes, Round::Progress).await;
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
        let seq_of: HashMap<String, i64> =
            batch.entries.iter().map(|e| e.id.clone()).zip(batch.seqs.iter().copied()).collect();
        let entries: Vec<aws_sdk_cloudtraildata::types::AuditEvent> = batch
            .entries
            .into_iter()
            .filter_map(|e| {
                aws_sdk_cloudtraildata::types::AuditEvent::builder()
                    .id(e.id)
                    .event_data(e.event_data)
                    .set_event_data_checksum(e.event_data_checksum)
                    .build()
                    .ok()
            })
            .collect();
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
                for s in out.successful() {
                    if let Some(seq) = seq_of.get(s.id()) {
                        outcomes.push(Outcome::Delivered { seq: *seq, event_id: s.event_id().to_owned() });
                    }
                }
                for f in out.failed() {
                    let Some(seq) = seq_of.get(f.id()).copied() else { continue };
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
                self.settle(tenant, outcomes, if retry { Round::Retry } else { Round::Progress }).await
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
                        self.settle(tenant, outcomes, Round::Retry).await
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

    async fn settle(&self, tenant: &Tenant, outcomes: Vec<Outcome>, round: Round) -> Round {
        if outcomes.is_empty() {
            return round;
        }
        match self.spool.settle(outcomes).await {
            Ok(()) => round,
            Err(err) => {
                tracing::error!(error = %err, tenant = %tenant.id, "Recording delivery outcomes failed; the events will be sent again.");
                Round::Retry
            }
        }
    }
}
