//! `send --direct`: events straight into the customer's channel with `PutAuditEvents`, from a
//! machine outside AWS that holds only the vendor's proxy user's keys — the seed's path for
//! non-AWS workloads: proxy user → proxy role → customer role (external ID) → `PutAuditEvents`.
//!
//! Each event is checked and completed exactly as the relay's ingest does it
//! ([`audit_relay::api::prepare`]); the role chain is the relay's own ([`CredentialCache`], over
//! AWS's standard credential chain); entries carry their checksum and their UID as entry id, so a
//! batch sent again (after a network failure, or the same file twice) is recognised by a store
//! that de-duplicates. Throttling, server errors and network failures are retried with the relay's
//! backoff ([`RetryPolicy`]); a refusal of the caller stops the run with AWS's code and message.

use std::{sync::Arc, time::Duration};

use anyhow::bail;
use audit_event::{Catalog, Stage, Validator, limits};
use audit_relay::{
    delivery::{
        credentials::{BaseCredentials, CredentialCache},
        retry::{Class, RetryPolicy, classify_call, classify_entry},
    },
    registry::{DeliveryMode, Tenant},
};
use aws_credential_types::provider::{ProvideCredentials, error::CredentialsError, future};

/// How many times one batch is tried before the run gives up.
const MAX_ATTEMPTS: u32 = 8;

/// Where and as whom `send --direct` publishes.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    /// The customer's channel.
    pub(crate) channel_arn: String,
    /// The customer's role.
    pub(crate) role_arn: String,
    /// Its external ID.
    pub(crate) external_id: Option<String>,
    /// The vendor's proxy role, assumed first.
    pub(crate) proxy_role_arn: Option<String>,
    /// Another endpoint than AWS's (the local lake).
    pub(crate) endpoint_url: Option<String>,
    /// A profile of the AWS config and credentials files.
    pub(crate) profile: Option<String>,
}

/// What became of one event.
pub(crate) enum Outcome {
    /// Stored: its eventID.
    Accepted,
    /// Refused, with each problem as (path, message, code, rule).
    Refused(Vec<(String, String, String, String)>),
}

/// Publishes batches of events to one channel.
pub(crate) struct Publisher {
    client: aws_sdk_cloudtraildata::Client,
    route: Route,
    catalog: Catalog,
    account: String,
    credentials: Arc<RoleChain>,
    retry: RetryPolicy,
}

/// The role chain's credentials for the SDK client, from the relay's cache (renewed before they
/// expire).
struct RoleChain {
    cache: CredentialCache,
    tenant: Tenant,
}

impl ProvideCredentials for RoleChain {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            self.cache
                .for_tenant(&self.tenant)
                .await
                .map_err(|e| CredentialsError::provider_error(format!("{}: {}", e.code, e.message)))
        })
    }
}

impl std::fmt::Debug for RoleChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoleChain").field("delivery", &self.tenant.delivery).finish_non_exhaustive()
    }
}

impl Publisher {
    /// A publisher for `route`, checking events against `catalog`.
    pub(crate) fn new(route: Route, catalog: Catalog) -> anyhow::Result<Publisher> {
        let parts: Vec<&str> = route.channel_arn.split(':').collect();
        if parts.len() != 6 || parts[0] != "arn" || parts[2] != "cloudtrail" || !parts[5].starts_with("channel/") {
            bail!(
                "--channel-arn {:?} is not a channel ARN (arn:aws:cloudtrail:REGION:ACCOUNT:channel/ID)",
                route.channel_arn
            );
        }
        let (region, account) = (parts[3].to_owned(), parts[4].to_owned());
        let tenant = Tenant {
            id: "direct".into(),
            channel_arn: route.channel_arn.clone(),
            destination: Default::default(),
            delivery: DeliveryMode::AssumeRole {
                role_arn: route.role_arn.clone(),
                external_id: route.external_id.clone(),
                proxy_role_arn: route.proxy_role_arn.clone(),
            },
            applications: Vec::new(),
            paused: None,
            held: false,
            saved_queries: Vec::new(),
        };
        let cache =
            CredentialCache::new(BaseCredentials::Chain { profile: route.profile.clone() }, route.endpoint_url.clone());
        let credentials = Arc::new(RoleChain { cache, tenant });
        let mut config = aws_sdk_cloudtraildata::Config::builder()
            .behavior_version(aws_sdk_cloudtraildata::config::BehaviorVersion::latest())
            .region(aws_sdk_cloudtraildata::config::Region::new(region))
            .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(ArcProvider(
                credentials.clone(),
            )))
            // Retries are this publisher's own, with the relay's policy and classification.
            .retry_config(aws_sdk_cloudtraildata::config::retry::RetryConfig::disabled());
        if let Some(endpoint) = &route.endpoint_url {
            config = config.endpoint_url(endpoint);
        }
        Ok(Publisher {
            client: aws_sdk_cloudtraildata::Client::from_conf(config.build()),
            catalog,
            account,
            route,
            credentials,
            retry: RetryPolicy::default(),
        })
    }

    /// Checks that the role chain works before anything is read, naming the role that refused.
    pub(crate) async fn check_credentials(&self) -> anyhow::Result<()> {
        if let Err(err) = self.credentials.cache.for_tenant(&self.credentials.tenant).await {
            bail!(
                "could not assume {}{}: {}: {}",
                self.route.role_arn,
                self.route.proxy_role_arn.as_deref().map(|p| format!(" through {p}")).unwrap_or_default(),
                err.code,
                err.message
            );
        }
        Ok(())
    }

    /// Publishes `events` (JSON texts), in `PutAuditEvents` batches of at most 100 entries and
    /// 1 MiB; returns what became of each, in order.
    pub(crate) async fn publish(&self, events: &[&str]) -> anyhow::Result<Vec<Outcome>> {
        let submit = Validator::new(Stage::Submit).with_catalog(&self.catalog).with_channel_owner(self.account.clone());
        let put = Validator::new(Stage::Put).with_catalog(&self.catalog).with_channel_owner(self.account.clone());
        let mut outcomes: Vec<Option<Outcome>> = events.iter().map(|_| None).collect();
        // (index, entry id, event data)
        let mut ready: Vec<(usize, String, String)> = Vec::new();
        for (index, raw) in events.iter().enumerate() {
            if !raw.starts_with('{') {
                outcomes[index] =
                    Some(refused("eventData", "each event must be a JSON object", "InvalidData", "not_object"));
                continue;
            }
            let prepared = audit_relay::api::prepare(raw, &submit, &put, &self.account);
            match prepared.outcome {
                Ok((uid, text)) => {
                    // The UID is the entry id when it can be one, so a batch sent again carries
                    // the same ids.
                    let id = if audit_event::entry::check_entry_id(&uid).is_ok() {
                        uid
                    } else {
                        uuid::Uuid::now_v7().simple().to_string()
                    };
                    ready.push((index, id, text));
                }
                Err(violations) => {
                    outcomes[index] = Some(Outcome::Refused(
                        violations
                            .iter()
                            .map(|v| {
                                (
                                    v.path.clone(),
                                    v.message.clone(),
                                    v.code().as_str().to_owned(),
                                    v.rule.name().to_owned(),
                                )
                            })
                            .collect(),
                    ));
                }
            }
        }
        let mut start = 0;
        while start < ready.len() {
            let mut end = start;
            let mut bytes = 16;
            while end < ready.len() && end - start < limits::MAX_EVENTS_PER_REQUEST {
                let (_, id, text) = &ready[end];
                // The entry as JSON: the escaped text, its checksum, the id and the keys.
                let cost = serde_json::to_string(text).map_or(text.len() * 2, |t| t.len()) + id.len() + 100;
                if end > start && bytes + cost > limits::MAX_REQUEST_BYTES {
                    break;
                }
                bytes += cost;
                end += 1;
            }
            for (index, outcome) in self.put_batch(&ready[start..end]).await? {
                outcomes[index] = Some(outcome);
            }
            start = end;
        }
        Ok(outcomes.into_iter().map(|o| o.unwrap_or(Outcome::Accepted)).collect())
    }

    /// One batch, retried until every entry is stored or refused for good.
    async fn put_batch(&self, batch: &[(usize, String, String)]) -> anyhow::Result<Vec<(usize, Outcome)>> {
        let mut pending: Vec<&(usize, String, String)> = batch.iter().collect();
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut attempt = 0;
        loop {
            let entries: Vec<aws_sdk_cloudtraildata::types::AuditEvent> = pending
                .iter()
                .map(|(_, id, text)| {
                    aws_sdk_cloudtraildata::types::AuditEvent::builder()
                        .id(id)
                        .event_data(text)
                        .event_data_checksum(audit_event::checksum::checksum(text.as_bytes()))
                        .build()
                        .expect("id and eventData are set")
                })
                .collect();
            let sent = self
                .client
                .put_audit_events()
                .channel_arn(&self.route.channel_arn)
                .set_external_id(self.route.external_id.clone())
                .set_audit_events(Some(entries))
                .send()
                .await;
            let mut again = Vec::new();
            let mut why = String::new();
            match sent {
                Ok(answer) => {
                    for failed in answer.failed() {
                        let Some(entry) = pending.iter().find(|(_, id, _)| id == failed.id()) else { continue };
                        match classify_entry(failed.error_code()) {
                            Class::Retry => {
                                why = format!("{}: {}", failed.error_code(), failed.error_message());
                                again.push(*entry);
                            }
                            _ => outcomes.push((
                                entry.0,
                                refused("eventData", failed.error_message(), failed.error_code(), "PutAuditEvents"),
                            )),
                        }
                    }
                    for ok in answer.successful() {
                        if let Some(entry) = pending.iter().find(|(_, id, _)| id == ok.id()) {
                            outcomes.push((entry.0, Outcome::Accepted));
                        }
                    }
                }
                Err(err) => {
                    use aws_sdk_cloudtraildata::error::ProvideErrorMetadata;
                    let status = err.raw_response().map(|r| r.status().as_u16());
                    let code = err.code().map(str::to_owned);
                    let message = err.message().map_or_else(|| describe_chain(&err), str::to_owned);
                    if let aws_sdk_cloudtraildata::error::SdkError::DispatchFailure(failure) = &err
                        && failure.is_user()
                    {
                        bail!("PutAuditEvents on {} could not be sent: {message}", self.route.channel_arn);
                    }
                    if classify_call(code.as_deref(), status) == Class::Pause {
                        bail!(
                            "PutAuditEvents on {} was refused: {}: {message}",
                            self.route.channel_arn,
                            code.as_deref().unwrap_or("Error")
                        );
                    }
                    why = format!("{}: {message}", code.as_deref().unwrap_or("network"));
                    again = pending.clone();
                }
            }
            if again.is_empty() {
                return Ok(outcomes);
            }
            attempt += 1;
            if attempt >= MAX_ATTEMPTS {
                bail!(
                    "PutAuditEvents on {} still failed after {MAX_ATTEMPTS} attempts ({why}); {} event(s) of this batch were not stored",
                    self.route.channel_arn,
                    again.len()
                );
            }
            tokio::time::sleep(self.retry.backoff(attempt - 1).max(Duration::from_millis(50))).await;
            pending = again;
        }
    }
}

fn refused(path: &str, message: &str, code: &str, rule: &str) -> Outcome {
    Outcome::Refused(vec![(path.to_owned(), message.to_owned(), code.to_owned(), rule.to_owned())])
}

/// An error and its sources, for a failure without AWS's message.
fn describe_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The shared role chain as the SDK's credentials provider.
#[derive(Debug)]
struct ArcProvider(Arc<RoleChain>);

impl ProvideCredentials for ArcProvider {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        self.0.provide_credentials()
    }
}
