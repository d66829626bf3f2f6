//! `klarity-audit bench --aws-like`: delivery as it meets AWS. Between the publishers and the lake
//! runs a link with a round-trip time (`--rtt-ms`, 40 by default; [`super::link`]), and the lake
//! enforces CloudTrail's `PutAuditEvents` quota (`--quota-tps`, 100 calls a second per account and
//! region, as AWS does by default). Each tenant is a customer with an account of its own, reached
//! through its role (the seed's model), so each has its own quota: 10,000 events a second at 100
//! events a call.
//!
//! 1. The relay accepts `--events` (split over `--tenants`) with delivery held, so every tenant
//!    has a backlog.
//! 2. Delivery is resumed for all tenants at once; each tenant's rate is its events over the time
//!    until its last was delivered, and its share of the quota is that rate over `tps × 100`.
//! 3. The baseline, in the same run: the publisher AWS's samples describe (boto3, batches of 100,
//!    one call after another), one process per tenant with that tenant's account keys, all at
//!    once, through the same link into the same quota.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::bail;
use audit_relay::registry::{DeliveryMode, Destination as RelayDestination, Grant, Tenant};
use http::Method;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::{Progress, load};
use crate::{cli::BenchArgs, http::JsonClient};

/// The event source the bench publishes.
const SOURCE: &str = super::SOURCE;

/// One tenant's account: its id and access key.
fn account(n: usize) -> (String, String, String) {
    (
        format!("2000000000{n:02}"),
        format!("AKIABENCHACCOUNT{n:04}"),
        format!("bench-account-{n:04}-secret-key-000000000"),
    )
}

/// What the AWS-like bench measured.
#[derive(Debug, Serialize)]
pub(crate) struct AwsLikeReport {
    rtt_ms: u64,
    /// Whether the relay spaced its calls within the quota.
    paced: bool,
    quota_tps: u32,
    events_per_tenant: u64,
    tenants: Vec<TenantFigures>,
    /// Calls the lake refused with ThrottlingException and the relay retried, all tenants.
    relay_retried_events: u64,
}

#[derive(Debug, Serialize)]
struct TenantFigures {
    id: String,
    account: String,
    relay_events_per_second: f64,
    quota_share: f64,
    boto3_events_per_second: Option<f64>,
    boto3_error: Option<String>,
    ratio: Option<f64>,
}

pub(crate) async fn run(
    root: &std::path::Path,
    args: &BenchArgs,
    catalog: audit_event::Catalog,
) -> anyhow::Result<AwsLikeReport> {
    let stop = CancellationToken::new();
    let _stop_on_exit = stop.clone().drop_guard();
    let progress = Progress::new(!args.json && std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let rtt = Duration::from_millis(args.rtt_ms);
    let per_tenant = (args.events / args.tenants) as u64;

    // The lake: the documented accounts, and one more per tenant; the quota enforced.
    let mut config = audit_lake::LakeConfig { data_dir: root.join("lake"), ..Default::default() };
    config.quotas.put_audit_events_tps = args.quota_tps;
    for n in 0..args.tenants {
        let (id, key, secret) = account(n);
        config.accounts.push(audit_lake::config::AccountConfig {
            id,
            name: format!("bench tenant {n}"),
            keys: vec![audit_lake::config::KeyConfig { access_key_id: key, secret_access_key: secret }],
        });
    }
    let lake = audit_lake::Lake::open(config)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let lake_addr = listener.local_addr()?;
    let lake_endpoint = format!("http://{lake_addr}");
    let lake_stop = stop.clone();
    let lake_task = tokio::spawn(audit_lake::serve(lake, listener, async move { lake_stop.cancelled().await }));
    let linked = format!("http://{}", super::link::start(lake_addr, rtt, stop.clone()).await?);

    // Each tenant's account: a store, a channel, and a role trusting the vendor (set up directly,
    // not through the link: only publishing is measured).
    progress.say("setting up each tenant's account through the AWS SDK");
    let admin_token = format!("kadm_{}", uuid::Uuid::new_v4().simple());
    let relay_config = audit_relay::RelayConfig {
        data_dir: root.join("relay"),
        endpoint_url: linked.clone(),
        spool_max_bytes: 1 << 40,
        delivery_concurrency: args.delivery_concurrency,
        put_audit_events_tps: if args.unpaced { 0 } else { args.quota_tps },
        admin_token_sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(admin_token.as_bytes())),
        ..Default::default()
    };
    let registry = audit_relay::store::open_directory(&relay_config.engine()).await?;
    let mut tenants = Vec::new();
    for n in 0..args.tenants {
        let (account_id, key, secret) = account(n);
        let keys = crate::aws::Keys::local(&key, &secret);
        let cloudtrail = super::cloudtrail_client_with(&lake_endpoint, &keys);
        let id = format!("aws-{n}");
        let (store_id, channel_arn) =
            super::store_and_channel(&cloudtrail, &id, audit_lake::ops::trail::CHANNEL_SOURCES[0], false).await?;
        let store_arn = format!("arn:aws:cloudtrail:eu-west-1:{account_id}:eventdatastore/{store_id}");
        let policy = crate::commands::onboard::documents::least_privilege_policy(&channel_arn, &store_arn, false);
        let role_arn = super::role_in(&lake_endpoint, &keys, "KlarityPublisher", policy).await?;
        registry
            .put_tenant(&Tenant {
                id: id.clone(),
                channel_arn: channel_arn.clone(),
                destination: RelayDestination::CloudtrailLake,
                delivery: DeliveryMode::AssumeRole {
                    role_arn,
                    external_id: Some(super::LOGS_EXTERNAL_ID.into()),
                    proxy_role_arn: None,
                },
                applications: vec![SOURCE.into()],
                paused: Some("the bench holds delivery until every event is accepted".into()),
                held: true,
                saved_queries: Vec::new(),
            })
            .await?;
        let (token, _) =
            registry.issue(&Grant { name: id.clone(), source: SOURCE.into(), tenants: vec![id.clone()] }, None).await?;
        tenants.push((id, account_id, token, channel_arn, key, secret));
    }

    // The relay, delivering through the link.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let relay_url = format!("http://{}", listener.local_addr()?);
    let relay_task = tokio::spawn(audit_relay::run(relay_config, listener, catalog.clone(), stop.clone()));
    let admin = JsonClient::new(&relay_url, Some(admin_token))?;

    // 1. The backlog.
    progress.say("accepting every tenant's events, delivery held");
    let load = Arc::new(load::Load::new(args.event_size, args.uids));
    let plan = load::Plan { events: args.events, batch: args.batch, clients: args.clients, rate: 0, duration: None };
    let tokens: Vec<(String, String)> = tenants.iter().map(|t| (t.0.clone(), t.2.clone())).collect();
    let ingested = load::produce(vec![relay_url.clone()], tokens, load.clone(), plan).await?;
    if ingested.accepted != args.events as u64 {
        bail!("the relay accepted {} of {} events: {}", ingested.accepted, args.events, ingested.first_error);
    }

    // 2. Delivery, all tenants at once.
    progress.say("delivering through the link into the quota");
    let started = Instant::now();
    for t in &tenants {
        audit_relay::store::resume(registry.as_ref(), &t.0).await?;
    }
    let mut done: HashMap<String, f64> = HashMap::new();
    let mut last = (Instant::now(), 0u64);
    let mut retried = 0;
    while done.len() < tenants.len() {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (status, body) = admin.call_raw(Method::GET, "/metrics", None).await?;
        if !status.is_success() {
            bail!("the relay's /metrics answered HTTP {status}");
        }
        let text = String::from_utf8_lossy(&body);
        let delivered = per_tenant_series(&text, "klarity_relay_events_delivered_total");
        retried = per_tenant_series(&text, "klarity_relay_events_retried_total").values().sum();
        for t in &tenants {
            if delivered.get(&t.0).copied().unwrap_or(0) >= per_tenant && !done.contains_key(&t.0) {
                done.insert(t.0.clone(), started.elapsed().as_secs_f64());
            }
        }
        let total: u64 = delivered.values().sum();
        progress.line(&format!("delivered {total} of {}", args.events));
        if total > last.1 {
            last = (Instant::now(), total);
        } else if last.0.elapsed() > Duration::from_secs(60) {
            bail!("delivery made no progress for a minute ({total} of {} delivered)", args.events);
        }
    }
    progress.clear();

    // 3. boto3, one process per tenant, all at once, through the same link into the same quotas.
    let mut boto3: Vec<Option<Result<f64, String>>> = vec![None; tenants.len()];
    if args.boto3_events > 0 && !args.no_baseline {
        progress.say("baseline: boto3 put_audit_events, batches of 100, one process per tenant");
        let template = load.template("@ACCOUNT@");
        let mut runs = Vec::new();
        for (i, t) in tenants.iter().enumerate() {
            let (root, endpoint, channel, key, secret) =
                (root.join(format!("boto3-{i}")), linked.clone(), t.3.clone(), t.4.clone(), t.5.clone());
            let template = template.replace("@ACCOUNT@", &t.1);
            let events = args.boto3_events;
            runs.push(tokio::task::spawn_blocking(move || {
                std::fs::create_dir_all(&root).map_err(|e| e.to_string())?;
                super::boto3_run(&root, &endpoint, &channel, &template, events, Some((&key, &secret)))
                    .map(|f| f.events_per_second)
                    .map_err(|e| format!("{e:#}"))
            }));
        }
        for (i, run) in runs.into_iter().enumerate() {
            boto3[i] = Some(run.await?);
        }
        progress.clear();
    }

    stop.cancel();
    let _ = relay_task.await;
    let _ = lake_task.await;
    let quota_events = f64::from(args.quota_tps) * 100.0;
    let figures = tenants
        .iter()
        .zip(boto3)
        .map(|(t, boto3)| {
            let rate = per_tenant as f64 / done[&t.0];
            let (b, error) = match boto3 {
                Some(Ok(b)) => (Some(b), None),
                Some(Err(e)) => (None, Some(e)),
                None => (None, None),
            };
            TenantFigures {
                id: t.0.clone(),
                account: t.1.clone(),
                relay_events_per_second: rate,
                quota_share: if quota_events > 0.0 { rate / quota_events } else { 0.0 },
                boto3_events_per_second: b,
                boto3_error: error,
                ratio: b.map(|b| rate / b),
            }
        })
        .collect();
    Ok(AwsLikeReport {
        rtt_ms: args.rtt_ms,
        paced: !args.unpaced,
        quota_tps: args.quota_tps,
        events_per_tenant: per_tenant,
        tenants: figures,
        relay_retried_events: retried,
    })
}

/// Each tenant's value of the counter `name` in a Prometheus text exposition.
fn per_tenant_series(text: &str, name: &str) -> HashMap<String, u64> {
    let mut out = HashMap::new();
    for line in text.lines().filter(|l| l.starts_with(name)) {
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        let Some(tenant) = series.split("tenant=\"").nth(1).and_then(|r| r.split('"').next()) else { continue };
        *out.entry(tenant.to_owned()).or_default() += value.parse::<f64>().unwrap_or(0.0) as u64;
    }
    out
}

impl AwsLikeReport {
    pub(crate) fn print(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        writeln!(
            out,
            "klarity-audit bench --aws-like{}: {} tenants in their own accounts, {} events each; a link of {} ms round trip; \
             PutAuditEvents limited to {} calls/s per account and region ({} events/s at 100 a call)",
            if self.paced { "" } else { " --unpaced" },
            self.tenants.len(),
            super::group(self.events_per_tenant),
            self.rtt_ms,
            self.quota_tps,
            super::group(u64::from(self.quota_tps) * 100)
        )?;
        writeln!(out)?;
        writeln!(
            out,
            "{:<8} {:>14} {:>18} {:>12} {:>22} {:>8}",
            "tenant", "account", "relay events/s", "of quota", "boto3 events/s (same)", "ratio"
        )?;
        for t in &self.tenants {
            writeln!(
                out,
                "{:<8} {:>14} {:>18.0} {:>11.1}% {:>22} {:>8}",
                t.id,
                t.account,
                t.relay_events_per_second,
                t.quota_share * 100.0,
                t.boto3_events_per_second.map_or_else(|| "—".to_owned(), |b| format!("{b:.0}")),
                t.ratio.map_or_else(|| "—".to_owned(), |r| format!("{r:.1}×"))
            )?;
            if let Some(e) = &t.boto3_error {
                writeln!(out, "  boto3 not measured: {e}")?;
            }
        }
        writeln!(out)?;
        writeln!(
            out,
            "events retried by the relay (throttled or failed calls, all tenants): {}",
            super::group(self.relay_retried_events)
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_counter_is_read_per_tenant() {
        let text = "# HELP x\nklarity_relay_events_delivered_total{tenant=\"a\"} 5\n\
                    klarity_relay_events_delivered_total{tenant=\"b\"} 7\nklarity_relay_queue_depth{tenant=\"a\"} 3\n";
        let got = super::per_tenant_series(text, "klarity_relay_events_delivered_total");
        assert_eq!((got["a"], got["b"], got.len()), (5, 7, 2));
    }
}
