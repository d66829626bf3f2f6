//! `klarity-audit bench`: the whole flow measured on this machine.
//!
//! One process holds a lake ([`audit_lake::serve`]) and a relay ([`audit_relay::run`]) on loopback
//! ports and a temporary data directory, exactly as `klarity-audit lake` and `relay` run them.
//! The customer side is set up through the AWS SDK (an event data store, a channel and its
//! resource policy per tenant); producers then post batches over HTTP with keep-alive, and the
//! relay delivers into the lake. The bench watches the relay from outside, through its admin
//! `/metrics`, so it measures what an operator would see.
//!
//! - [`load`] builds events and request bodies and runs the producers.
//! - [`report`] holds the figures and prints them as a table or JSON.

mod aws_like;
mod cpu;
mod link;
mod load;
mod report;
mod sql;

use std::{
    collections::BTreeMap,
    io::{IsTerminal, Write},
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use audit_relay::registry::{DeliveryMode, Destination as RelayDestination, Grant, Tenant};
use aws_sdk_cloudtrail::types::{AdvancedEventSelector, AdvancedFieldSelector, Destination, DestinationType};
use http::Method;
use tokio_util::sync::CancellationToken;

use crate::{
    catalog_source,
    cli::{BenchArgs, DestinationKind, GlobalArgs},
    http::JsonClient,
};
use report::{Baseline, Report};

/// The event source the bench publishes (AutoBackup's `backup.completed`).
const SOURCE: &str = "com.nordcloudapp.com.autobackup";

/// Events the reference work takes in turn (see `cpu::ReferenceProbe`): ~10 MiB of the default
/// events.
const REFERENCE_EVENTS: usize = 10_000;

pub(crate) fn run(global: &GlobalArgs, args: &BenchArgs) -> anyhow::Result<ExitCode> {
    if args.sql && args.duration > 0 {
        bail!("--duration times the flow bench; --sql loads --events and times queries");
    }
    if args.events == 0 || args.clients == 0 || args.tenants == 0 {
        bail!("--events, --clients and --tenants must be at least 1");
    }
    let most_tenants = audit_lake::ops::trail::CHANNEL_SOURCES.len() - 2;
    if args.tenants > most_tenants {
        bail!(
            "--tenants is at most {most_tenants}: the bench's tenants share one customer account, which has one channel per source"
        );
    }
    if !(1..=1000).contains(&args.batch) {
        bail!("--batch must be 1 to 1000 (the relay's request limit), not {}", args.batch);
    }
    if args.relays == 0 || (args.relays > 1 && args.postgres.is_none()) {
        bail!("--relays {} needs --postgres (relays share their state in PostgreSQL), and at least 1", args.relays);
    }
    if !(1..=64).contains(&args.delivery_concurrency) {
        bail!("--delivery-concurrency must be 1 to 64, not {}", args.delivery_concurrency);
    }
    if args.event_size < load::MIN_EVENT_SIZE || args.event_size > 200_000 {
        bail!("--event-size must be {} to 200000 bytes, not {}", load::MIN_EVENT_SIZE, args.event_size);
    }
    let catalog = catalog_source::load(global.catalog_dir.as_deref())?;
    let temp = match &args.data_dir {
        Some(_) => None,
        None => Some(tempfile::tempdir().context("creating a temporary data directory")?),
    };
    let root = args.data_dir.clone().or_else(|| temp.as_ref().map(|t| t.path().to_owned())).expect("a data dir");
    // A file system that cannot say how much is free is not checked: the run finds out as it writes.
    if let Ok(fs) = rustix::fs::statvfs(&root) {
        check_disk(&root, disk_needed(args), fs.f_bavail.saturating_mul(fs.f_frsize))?;
    }
    let runtime = |name: &str| {
        tokio::runtime::Builder::new_multi_thread()
            .thread_name(name)
            .enable_all()
            .build()
            .context("starting the async runtime")
    };
    let main = runtime("bench-worker")?;
    let mut out = std::io::stdout().lock();
    if args.aws_like {
        let report = main.block_on(aws_like::run(&root, args, catalog))?;
        emit(&report, args.json, &mut out, |r, out| r.print(out))?;
    } else if args.sql {
        let report = main.block_on(sql::run(&root, args, catalog))?;
        emit(&report, args.json, &mut out, |r, out| r.print(out))?;
    } else {
        // The lake and the relay each on a runtime of its own, so that the CPU each spends is
        // known (see `cpu`).
        let parts = Parts { lake: runtime("lake-worker")?, relay: runtime("relay-worker")? };
        let report = main.block_on(bench(&root, args, catalog, &parts))?;
        emit(&report, args.json, &mut out, |r, out| r.print(out))?;
    }
    drop(main);
    drop(temp);
    Ok(ExitCode::SUCCESS)
}

/// Prints a report as JSON or, with `print`, as a table.
fn emit<R: serde::Serialize, W: Write>(
    report: &R,
    json: bool,
    out: &mut W,
    print: impl FnOnce(&R, &mut W) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(report)?)?;
    } else {
        print(report, out)?;
    }
    Ok(())
}

/// The runtimes the lake and the relay run on.
struct Parts {
    lake: tokio::runtime::Runtime,
    relay: tokio::runtime::Runtime,
}

/// One tenant of the bench: its token, and its store (CloudTrail Lake) or log group ARN.
struct BenchTenant {
    id: String,
    token: String,
    store_id: String,
}

/// The customer role bench tenants write into CloudWatch Logs through.
const LOGS_ROLE: &str = "BenchLogsWriter";

/// The customer role bench tenants write into S3 through.
const S3_ROLE: &str = "BenchObjectWriter";

/// The roles' external ID.
pub(super) const LOGS_EXTERNAL_ID: &str = "bench-external-logs";

async fn bench(root: &Path, args: &BenchArgs, catalog: audit_event::Catalog, parts: &Parts) -> anyhow::Result<Report> {
    let stop = CancellationToken::new();
    let _stop_on_exit = stop.clone().drop_guard();
    let progress = Progress::new(!args.json && std::io::stderr().is_terminal());

    // The lake.
    let lake_dir = root.join("lake");
    let lake = audit_lake::Lake::open(audit_lake::LakeConfig { data_dir: lake_dir.clone(), ..Default::default() })?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let lake_endpoint = format!("http://{}", listener.local_addr()?);
    let lake_stop = stop.clone();
    let lake_task = parts.lake.spawn(audit_lake::serve(lake, listener, async move { lake_stop.cancelled().await }));

    // The customer's side, through the AWS SDK: a store, a channel and a policy per tenant.
    progress.say("setting up the customer side through the AWS SDK");
    let cloudtrail = cloudtrail_client(&lake_endpoint);
    let relay_dir = root.join("relay");
    let database = match &args.postgres {
        Some(server) => Some(BenchDatabase::create(server).await?),
        None => None,
    };
    let base = audit_relay::RelayConfig {
        data_dir: relay_dir.clone(),
        endpoint_url: lake_endpoint.clone(),
        spool_max_bytes: 1 << 40,
        delivery_concurrency: args.delivery_concurrency,
        // The local lake enforces no quota here: the bench measures the relay's own ceiling
        // (`--aws-like` measures it under CloudTrail's quota).
        put_audit_events_tps: 0,
        database: audit_relay::config::DatabaseConfig {
            url: database.as_ref().map(|d| d.url.clone()).unwrap_or_default(),
            ..Default::default()
        },
        ..Default::default()
    };
    let registry = audit_relay::store::open_directory(&base.engine()).await?;
    let customer_role = match args.destination {
        DestinationKind::CloudwatchLogs => {
            let groups = format!("arn:aws:logs:eu-west-1:{}:log-group:bench-*", audit_lake::config::CUSTOMER_ACCOUNT);
            let permissions = crate::commands::onboard::documents::logs_policy(&groups, false);
            Some(customer_role(&lake_endpoint, LOGS_ROLE, permissions).await?)
        }
        DestinationKind::S3 => {
            let permissions = crate::commands::onboard::documents::s3_policy("bench-*", "bench/");
            Some(customer_role(&lake_endpoint, S3_ROLE, permissions).await?)
        }
        DestinationKind::CloudtrailLake => None,
    };
    let mut tenants = Vec::new();
    for n in 0..args.tenants {
        let id = format!("bench-{n}");
        let (store_id, channel_arn, destination, delivery) = match &customer_role {
            Some(role_arn) => {
                let delivery = DeliveryMode::AssumeRole {
                    role_arn: role_arn.clone(),
                    external_id: Some(LOGS_EXTERNAL_ID.into()),
                    proxy_role_arn: None,
                };
                if args.destination == DestinationKind::S3 {
                    bucket(&lake_endpoint, &id).await?;
                    let destination = RelayDestination::S3 {
                        region: "eu-west-1".into(),
                        account: audit_lake::config::CUSTOMER_ACCOUNT.into(),
                        prefix: "bench/".into(),
                        format: audit_relay::registry::ObjectFormat::Ndjson,
                        // Full objects go at once; the last of each tenant waits a second.
                        rollover_secs: 1,
                    };
                    (id.clone(), format!("arn:aws:s3:::{id}"), destination, delivery)
                } else {
                    let group_arn = log_group(&lake_endpoint, &id).await?;
                    (
                        group_arn.clone(),
                        group_arn,
                        RelayDestination::CloudwatchLogs { log_stream: "bench".into() },
                        delivery,
                    )
                }
            }
            None => {
                // The baseline and boto3 take the first two sources.
                let source = audit_lake::ops::trail::CHANNEL_SOURCES[n + 2];
                let (store_id, channel_arn) = store_and_channel(&cloudtrail, &id, source, true).await?;
                let delivery = DeliveryMode::ResourcePolicy { external_id: Some(format!("bench-external-{n}")) };
                (store_id, channel_arn, RelayDestination::CloudtrailLake, delivery)
            }
        };
        registry
            .put_tenant(&Tenant {
                id: id.clone(),
                channel_arn,
                destination,
                delivery,
                applications: vec![SOURCE.into()],
                paused: args.hold.then(|| "the bench holds delivery until every event is accepted".into()),
                held: args.hold,
                saved_queries: Vec::new(),
            })
            .await?;
        let (token, _) =
            registry.issue(&Grant { name: id.clone(), source: SOURCE.into(), tenants: vec![id.clone()] }, None).await?;
        tenants.push(BenchTenant { id, token, store_id });
    }

    // The relays.
    let admin_token = format!("kadm_{}", uuid::Uuid::new_v4().simple());
    let mut relay_urls = Vec::new();
    let mut relay_tasks = Vec::new();
    let mut admins = Vec::new();
    for n in 0..args.relays {
        let config = audit_relay::RelayConfig {
            // SQLite: the one relay's files, where the tenants were put; PostgreSQL: a directory
            // each (unused but their own).
            data_dir: if database.is_some() { relay_dir.join(n.to_string()) } else { relay_dir.clone() },
            admin_token_sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(admin_token.as_bytes())),
            ..base.clone()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let relay_url = format!("http://{}", listener.local_addr()?);
        relay_tasks.push(parts.relay.spawn(audit_relay::run(config, listener, catalog.clone(), stop.clone())));
        admins.push(JsonClient::new(&relay_url, Some(admin_token.clone()))?);
        relay_urls.push(relay_url);
    }
    let admin = Admins(admins);

    // Ingest (and delivery, unless held).
    let load = Arc::new(load::Load::new(args.event_size, args.uids));
    let reference = cpu::ReferenceProbe::start((0..REFERENCE_EVENTS).map(|n| load.event(n)).collect())?;
    let rss_before = memory().rss_bytes;
    let mut cpu = if database.is_some() { cpu::Ledger::with_database() } else { cpu::Ledger::default() };
    cpu.sample();
    let cpu_before = cpu.totals();
    progress.say("sending");
    let started = Instant::now();
    let producers = {
        let tokens: Vec<(String, String)> = tenants.iter().map(|t| (t.id.clone(), t.token.clone())).collect();
        let plan = load::Plan {
            events: args.events,
            batch: args.batch,
            clients: args.clients,
            rate: args.rate,
            duration: (args.duration > 0).then(|| Duration::from_secs(args.duration)),
        };
        tokio::spawn(load::produce(relay_urls.clone(), tokens, load.clone(), plan))
    };
    // With --duration the number sent is known only at the end.
    let mut watch =
        Watch { expected: if args.duration > 0 { u64::MAX } else { args.events as u64 }, all_delivered_at: None };
    let mut rss_ingest_peak = rss_before;
    let ingest = loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        rss_ingest_peak = rss_ingest_peak.max(memory().rss_bytes);
        cpu.sample();
        if producers.is_finished() {
            break producers.await.context("the producers stopped")??;
        }
        if let Ok(state) = scrape(&admin).await {
            watch.observe(&state);
            progress.line(&format!(
                "sent {:>10} of {}   delivered {:>10}   queued {:>10}",
                group(load.sent()),
                group(args.events as u64),
                group(state.delivered),
                group(state.queued)
            ));
        }
    };
    let ingest_seconds = started.elapsed().as_secs_f64();
    cpu.sample();
    let cpu_ingested = cpu.totals();
    // Every request was answered (a failed one stops the producers), so what was handed over was sent.
    if ingest.accepted != load.sent() {
        bail!("the relay accepted {} of {} events: {}", ingest.accepted, load.sent(), ingest.first_error);
    }
    let events = ingest.accepted;
    watch.expected = events;

    // Delivery: until every accepted event is settled.
    let drain_started = Instant::now();
    if args.hold {
        for t in &tenants {
            audit_relay::store::resume(registry.as_ref(), &t.id).await?;
        }
    }
    let mut rss_drain_peak = rss_ingest_peak;
    let mut last_progress = (Instant::now(), 0u64);
    let settled = loop {
        let state = scrape(&admin).await?;
        watch.observe(&state);
        rss_drain_peak = rss_drain_peak.max(memory().rss_bytes);
        cpu.sample();
        progress.line(&format!(
            "delivered {:>10} of {}   queued {:>10}",
            group(state.delivered),
            group(events),
            group(state.queued)
        ));
        if state.delivered + state.failed >= events {
            break state;
        }
        if state.delivered + state.failed > last_progress.1 {
            last_progress = (Instant::now(), state.delivered + state.failed);
        } else if last_progress.0.elapsed() > Duration::from_secs(60) {
            bail!("delivery made no progress for a minute ({} of {events} settled)", last_progress.1);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let end_to_end_seconds = watch.all_delivered_at.unwrap_or_else(Instant::now).duration_since(started).as_secs_f64();
    let drain_seconds = drain_started.elapsed().as_secs_f64();
    cpu.sample();
    let cpu_delivered = cpu.totals();
    // At most one sample (a few ms) to wait for.
    let reference = reference.finish();
    progress.clear();

    // Every event is in its tenant's store (or log group), once.
    let stored: u64 = {
        let db = lake_dir.join(audit_lake::store::DB_FILE);
        let mut total = 0;
        for t in &tenants {
            total += match args.destination {
                DestinationKind::CloudtrailLake => audit_lake::columnar::scan_store(&db, &t.store_id, |_| true)?,
                DestinationKind::CloudwatchLogs => audit_lake::store::Store::count_log_events(&db, &t.store_id)?,
                DestinationKind::S3 => {
                    let mut lines = 0u64;
                    audit_lake::store::Store::scan_objects(&db, &t.store_id, |_, data| {
                        let mut text = Vec::new();
                        if std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(data), &mut text).is_ok() {
                            lines += text.iter().filter(|b| **b == b'\n').count() as u64;
                        }
                    })?;
                    lines
                }
            };
        }
        total
    };

    // Queryable: each tenant's events counted through the query API (StartQuery … GetQueryResults),
    // as the customer would, with the time each count took. (CloudWatch Logs: not measured.)
    let mut queryable = report::Queryable::default();
    for t in tenants.iter().filter(|_| args.destination == DestinationKind::CloudtrailLake) {
        let statement = format!("SELECT count(*) FROM {}", t.store_id);
        let asked = Instant::now();
        let finished = crate::commands::query::execute(
            &cloudtrail,
            &statement,
            crate::commands::query::Poll::Every(Duration::from_millis(2)),
        )
        .await
        .map_err(|e| e.into_anyhow().context(format!("counting {}'s events with a query", t.id)))?;
        queryable.query_ms.push(asked.elapsed().as_secs_f64() * 1000.0);
        let count = finished.rows.first().and_then(|r| r.first()).and_then(|c| c.parse::<u64>().ok());
        queryable.events += count.with_context(|| format!("the count of {}'s events is not a number", t.id))?;
    }

    // The baseline: the lake alone, fed the same events by the same number of clients.
    let baseline = if args.no_baseline {
        None
    } else {
        progress.say("baseline: PutAuditEvents straight into the lake");
        let count = (events as usize).min(BASELINE_MOST_EVENTS);
        let (store_id, channel_arn) =
            store_and_channel(&cloudtrail, "bench-baseline", audit_lake::ops::trail::CHANNEL_SOURCES[0], false).await?;
        let started = Instant::now();
        load::put_directly(&lake_endpoint, &channel_arn, load.clone(), count, args.clients).await?;
        let seconds = started.elapsed().as_secs_f64();
        let db = lake_dir.join(audit_lake::store::DB_FILE);
        let stored = audit_lake::columnar::scan_store(&db, &store_id, |_| true)?;
        progress.clear();
        Some(Baseline { events: count as u64, stored, seconds, events_per_second: count as f64 / seconds })
    };

    let boto3 = if args.no_baseline || args.boto3_events == 0 {
        None
    } else {
        progress.say("baseline: boto3 put_audit_events, batches of 100");
        let (_, channel_arn) =
            store_and_channel(&cloudtrail, "bench-boto3", audit_lake::ops::trail::CHANNEL_SOURCES[1], false).await?;
        let template = load.template(audit_lake::config::CUSTOMER_ACCOUNT);
        let (root, endpoint, events) = (root.to_owned(), lake_endpoint.clone(), args.boto3_events);
        let outcome =
            tokio::task::spawn_blocking(move || boto3_baseline(&root, &endpoint, &channel_arn, &template, events))
                .await?;
        progress.clear();
        Some(outcome)
    };

    stop.cancel();
    for task in relay_tasks {
        let _ = task.await;
    }
    let _ = lake_task.await;
    drop(registry);
    if let Some(database) = database {
        database.drop_it().await;
    }
    let memory = memory();
    Ok(Report::new(report::Inputs {
        args,
        event_bytes: load.event_len(),
        ingest,
        ingest_seconds,
        end_to_end_seconds,
        drain_seconds,
        settled: &settled,
        stored,
        queryable,
        baseline,
        boto3,
        peak_rss_bytes: memory.peak_bytes,
        rss_before_bytes: rss_before,
        rss_ingest_peak_bytes: rss_ingest_peak,
        rss_drain_peak_bytes: rss_drain_peak,
        cpu_ingest: cpu_ingested.since(&cpu_before),
        cpu_whole: cpu_delivered.since(&cpu_before),
        reference,
        relay_disk_bytes: disk_usage(&relay_dir),
        lake_disk_bytes: disk_usage(&lake_dir),
    }))
}

/// A role of the customer's (`name`): trusting the vendor with the external ID, with
/// `permissions`. Its ARN.
pub(super) async fn customer_role(
    endpoint: &str,
    name: &str,
    permissions: serde_json::Value,
) -> anyhow::Result<String> {
    let customer = crate::aws::Keys::local(
        audit_lake::config::CUSTOMER_ACCESS_KEY_ID,
        audit_lake::config::CUSTOMER_SECRET_ACCESS_KEY,
    );
    role_in(endpoint, &customer, name, permissions).await
}

/// A role `name` of the account whose keys are `keys`, trusting the vendor with the external ID,
/// with `permissions`. Its ARN.
pub(super) async fn role_in(
    endpoint: &str,
    keys: &crate::aws::Keys,
    name: &str,
    permissions: serde_json::Value,
) -> anyhow::Result<String> {
    let target = crate::aws::Target { endpoint: Some(endpoint.to_owned()), region: "eu-west-1".into() };
    let iam = crate::aws::client!(aws_sdk_iam, &target, keys);
    let trust = crate::commands::onboard::documents::trust_policy(audit_lake::config::VENDOR_ACCOUNT, LOGS_EXTERNAL_ID);
    let role = iam
        .create_role()
        .role_name(name)
        .assume_role_policy_document(trust.to_string())
        .send()
        .await
        .with_context(|| format!("creating the bench's role {name}"))?;
    iam.put_role_policy()
        .role_name(name)
        .policy_name("write")
        .policy_document(permissions.to_string())
        .send()
        .await
        .with_context(|| format!("giving the bench's role {name} its permissions"))?;
    Ok(role.role().map(|r| r.arn().to_owned()).unwrap_or_default())
}

/// A bucket of the customer account.
async fn bucket(endpoint: &str, name: &str) -> anyhow::Result<()> {
    let customer = crate::aws::Keys::local(
        audit_lake::config::CUSTOMER_ACCESS_KEY_ID,
        audit_lake::config::CUSTOMER_SECRET_ACCESS_KEY,
    );
    let target = crate::aws::Target { endpoint: Some(endpoint.to_owned()), region: "eu-west-1".into() };
    crate::aws::s3_client(&target, &customer)
        .create_bucket()
        .bucket(name)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest1)
                .build(),
        )
        .send()
        .await
        .with_context(|| format!("creating the bucket {name}"))?;
    Ok(())
}

/// A log group of the customer account; its ARN.
async fn log_group(endpoint: &str, name: &str) -> anyhow::Result<String> {
    let target = crate::aws::Target { endpoint: Some(endpoint.to_owned()), region: "eu-west-1".into() };
    let customer = crate::aws::Keys::local(
        audit_lake::config::CUSTOMER_ACCESS_KEY_ID,
        audit_lake::config::CUSTOMER_SECRET_ACCESS_KEY,
    );
    let logs = crate::aws::client!(aws_sdk_cloudwatchlogs, &target, &customer);
    logs.create_log_group()
        .log_group_name(name)
        .send()
        .await
        .with_context(|| format!("creating the log group {name}"))?;
    Ok(format!("arn:aws:logs:eu-west-1:{}:log-group:{name}", audit_lake::config::CUSTOMER_ACCOUNT))
}

/// The boto3 publisher, shipped in the binary.
const BOTO3_PUBLISHER: &str = include_str!("../../../../../bench/boto3_publisher.py");

/// Runs the boto3 publisher against the lake; what it measured, or why it could not run.
fn boto3_baseline(root: &Path, endpoint: &str, channel_arn: &str, template: &str, events: usize) -> report::Boto3 {
    match boto3_run(root, endpoint, channel_arn, template, events, None) {
        Ok(figures) => report::Boto3::Measured(figures),
        Err(err) => report::Boto3::NotMeasured { why: format!("{err:#}") },
    }
}

/// Runs the boto3 publisher for `events` into `channel_arn` (with `keys`, else the documented
/// customer key); its figures.
fn boto3_run(
    root: &Path,
    endpoint: &str,
    channel_arn: &str,
    template: &str,
    events: usize,
    keys: Option<(&str, &str)>,
) -> anyhow::Result<report::Boto3Figures> {
    let script = root.join("boto3_publisher.py");
    std::fs::write(&script, BOTO3_PUBLISHER)?;
    let event = root.join("boto3_event.json");
    std::fs::write(&event, template)?;
    let mut command = std::process::Command::new("python3");
    command
        .arg(&script)
        .args(["--endpoint", endpoint, "--channel-arn", channel_arn, "--events", &events.to_string()])
        .arg("--event-file")
        .arg(&event);
    if let Some((key, secret)) = keys {
        command.args(["--access-key-id", key, "--secret-access-key", secret]);
    }
    let output = command.output().context("running python3 (is it installed?)")?;
    if !output.status.success() {
        bail!("{}", String::from_utf8_lossy(&output.stderr).trim());
    }
    serde_json::from_slice(&output.stdout)
        .with_context(|| format!("reading its answer {:?}", String::from_utf8_lossy(&output.stdout)))
}

/// A cloudtrail client of the local lake with `keys`.
fn cloudtrail_client_with(endpoint: &str, keys: &crate::aws::Keys) -> aws_sdk_cloudtrail::Client {
    let target = crate::aws::Target { endpoint: Some(endpoint.to_owned()), region: "eu-west-1".into() };
    crate::aws::client!(aws_sdk_cloudtrail, &target, keys)
}

/// A cloudtrail client of the local lake with the customer account's documented key.
fn cloudtrail_client(endpoint: &str) -> aws_sdk_cloudtrail::Client {
    let config = aws_sdk_cloudtrail::Config::builder()
        .behavior_version(aws_sdk_cloudtrail::config::BehaviorVersion::latest())
        .region(aws_sdk_cloudtrail::config::Region::new("eu-west-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_cloudtrail::config::Credentials::new(
            audit_lake::config::CUSTOMER_ACCESS_KEY_ID,
            audit_lake::config::CUSTOMER_SECRET_ACCESS_KEY,
            None,
            None,
            "klarity-audit-bench",
        ))
        .build();
    aws_sdk_cloudtrail::Client::from_conf(config)
}

/// An event data store for integration events and a channel into it; with `for_vendor`, a channel
/// policy lets the vendor account publish (with the tenant's external ID). Returns (store id,
/// channel ARN).
async fn store_and_channel(
    cloudtrail: &aws_sdk_cloudtrail::Client,
    name: &str,
    source: &str,
    for_vendor: bool,
) -> anyhow::Result<(String, String)> {
    let selector = AdvancedEventSelector::builder()
        .name("integration events")
        .field_selectors(AdvancedFieldSelector::builder().field("eventCategory").equals("ActivityAuditLog").build()?)
        .build()?;
    let store = cloudtrail
        .create_event_data_store()
        .name(name)
        .advanced_event_selectors(selector)
        .multi_region_enabled(false)
        .send()
        .await
        .with_context(|| format!("creating the event data store {name}"))?;
    let store_arn = store.event_data_store_arn().unwrap_or_default().to_owned();
    let channel = cloudtrail
        .create_channel()
        .name(name)
        // One channel per source and account: each tenant's channel gets its own source (in AWS
        // each customer is its own account, and would use `IBMMulticloud` or `Custom`).
        .source(source)
        .destinations(Destination::builder().r#type(DestinationType::EventDataStore).location(&store_arn).build()?)
        .send()
        .await
        .with_context(|| format!("creating the channel {name}"))?;
    let channel_arn = channel.channel_arn().unwrap_or_default().to_owned();
    if for_vendor {
        let external_id = format!("bench-external-{}", name.trim_start_matches("bench-"));
        let policy = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": {"AWS": audit_lake::config::VENDOR_ACCOUNT},
                "Action": "cloudtrail-data:PutAuditEvents",
                "Resource": channel_arn,
                "Condition": {"StringEquals": {"cloudtrail:ExternalId": external_id}}
            }]
        });
        cloudtrail
            .put_resource_policy()
            .resource_arn(&channel_arn)
            .resource_policy(policy.to_string())
            .send()
            .await
            .with_context(|| format!("putting the channel policy of {name}"))?;
    }
    let store_id = store_arn.rsplit('/').next().unwrap_or_default().to_owned();
    Ok((store_id, channel_arn))
}

/// What the relay's `/metrics` says, summed over tenants.
#[derive(Debug, Clone, Default)]
pub(crate) struct Scraped {
    pub(crate) delivered: u64,
    pub(crate) failed: u64,
    pub(crate) retried: u64,
    pub(crate) queued: u64,
    /// Ingest-to-delivered latency: (bucket bound in seconds, cumulative count).
    pub(crate) latency: Vec<(f64, u64)>,
}

impl Scraped {
    /// The smallest bucket bound holding at least `q` of the deliveries.
    pub(crate) fn latency_quantile(&self, q: f64) -> Option<f64> {
        let total = self.latency.last()?.1;
        if total == 0 {
            return None;
        }
        let wanted = (q * total as f64).ceil() as u64;
        self.latency.iter().find(|(_, n)| *n >= wanted).map(|(bound, _)| *bound)
    }
}

/// The admin API of each relay.
struct Admins(Vec<JsonClient>);

/// The relays' `/metrics` together: each relay counts what it delivered; the queue is the shared
/// store's, which every relay reports whole.
async fn scrape(admins: &Admins) -> anyhow::Result<Scraped> {
    let mut total = Scraped::default();
    for admin in &admins.0 {
        let (status, body) = admin.call_raw(Method::GET, "/metrics", None).await?;
        if !status.is_success() {
            bail!("the relay's /metrics answered HTTP {status}");
        }
        let one = parse_metrics(&String::from_utf8_lossy(&body));
        total.delivered += one.delivered;
        total.failed += one.failed;
        total.retried += one.retried;
        total.queued = total.queued.max(one.queued);
        if total.latency.is_empty() {
            total.latency = one.latency;
        } else {
            for (slot, (_, n)) in total.latency.iter_mut().zip(one.latency) {
                slot.1 += n;
            }
        }
    }
    Ok(total)
}

/// A database of the bench's own on a PostgreSQL server, dropped after the run.
struct BenchDatabase {
    server: String,
    name: String,
    url: String,
}

impl BenchDatabase {
    async fn create(server: &str) -> anyhow::Result<BenchDatabase> {
        let name = format!("klarity_bench_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let (client, connection) = tokio_postgres::connect(server, tokio_postgres::NoTls)
            .await
            .with_context(|| format!("connecting to {}", audit_relay::store::postgres::redact(server)))?;
        tokio::spawn(connection);
        client.batch_execute(&format!("CREATE DATABASE {name}")).await.context("creating the bench's database")?;
        let base = server.rsplit_once('/').map_or(server, |(base, _)| base);
        Ok(BenchDatabase { server: server.to_owned(), url: format!("{base}/{name}"), name })
    }

    async fn drop_it(self) {
        if let Ok((client, connection)) = tokio_postgres::connect(&self.server, tokio_postgres::NoTls).await {
            tokio::spawn(connection);
            let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)).await;
        }
    }
}

/// Sums the per-tenant series the bench needs from a Prometheus text exposition.
fn parse_metrics(text: &str) -> Scraped {
    let mut state = Scraped::default();
    let mut buckets: BTreeMap<u64, (f64, u64)> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        let value: f64 = value.parse().unwrap_or(0.0);
        let name = series.split('{').next().unwrap_or("");
        match name {
            "klarity_relay_events_delivered_total" => state.delivered += value as u64,
            "klarity_relay_events_failed_total" => state.failed += value as u64,
            "klarity_relay_events_retried_total" => state.retried += value as u64,
            "klarity_relay_queue_depth" => state.queued += value as u64,
            "klarity_relay_delivery_latency_seconds_bucket" => {
                let le = series.split("le=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or("");
                let bound = if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap_or(f64::INFINITY) };
                let slot = buckets.entry(bound.to_bits()).or_insert((bound, 0));
                slot.1 += value as u64;
            }
            _ => {}
        }
    }
    let mut latency: Vec<(f64, u64)> = buckets.into_values().collect();
    latency.sort_by(|a, b| a.0.total_cmp(&b.0));
    state.latency = latency;
    state
}

/// When delivery finished, seen from outside.
struct Watch {
    expected: u64,
    all_delivered_at: Option<Instant>,
}

impl Watch {
    fn observe(&mut self, state: &Scraped) {
        if self.all_delivered_at.is_none() && state.delivered + state.failed >= self.expected {
            self.all_delivered_at = Some(Instant::now());
        }
    }
}

/// The process's resident memory now and at its peak.
struct Memory {
    rss_bytes: u64,
    peak_bytes: u64,
}

fn memory() -> Memory {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    Memory { rss_bytes: field("VmRSS:"), peak_bytes: field("VmHWM:") }
}

/// Bytes the files under `dir` take.
fn disk_usage(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack: Vec<PathBuf> = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match entry.metadata() {
                Ok(m) if m.is_dir() => stack.push(entry.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// 1234567 → "1,234,567".
pub(crate) fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A one-line progress display on a terminal's stderr; silent otherwise.
struct Progress {
    on: bool,
}

impl Progress {
    fn new(on: bool) -> Progress {
        Progress { on }
    }

    fn say(&self, what: &str) {
        if self.on {
            let _ = write!(std::io::stderr(), "\r\x1b[2K{what}…");
        }
    }

    fn line(&self, text: &str) {
        if self.on {
            let _ = write!(std::io::stderr(), "\r\x1b[2K{text}");
        }
    }

    fn clear(&self) {
        if self.on {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
    }
}

/// The most events the lake-alone baseline sends.
const BASELINE_MOST_EVENTS: usize = 500_000;

/// About how many bytes of disk a run keeps at its fullest (BENCHMARKS.md's figures with a
/// margin): `--sql` keeps one lake of 254–277 B per event it stores; the flow keeps the relay's
/// spool and the lake's store, ~1.7 KB per 1 KB event in the runs measured, ~2.1 KB with a
/// 10M-event backlog, and its baselines' events in the lake. A timed run (`--duration`) sends at
/// most what its seconds allow at 200,000 events/s (above any ingest measured here), or at its
/// `--rate`.
fn disk_needed(args: &BenchArgs) -> u64 {
    const FASTEST: u64 = 200_000;
    if args.sql {
        return sql::stored_events(args.events).saturating_mul(300);
    }
    let mut events = args.events as u64;
    if args.duration > 0 {
        let rate = if args.rate > 0 { args.rate.min(FASTEST) } else { FASTEST };
        events = events.min(args.duration.saturating_mul(rate));
    }
    let flow = events.saturating_mul(2 * args.event_size as u64 + 400);
    let baselines =
        if args.no_baseline { 0 } else { events.min(BASELINE_MOST_EVENTS as u64) + args.boto3_events as u64 };
    flow.saturating_add(baselines.saturating_mul(args.event_size as u64 + 400))
}

/// Refuses a run that would fill the disk of `root` (`free` bytes there) long before it ends.
fn check_disk(root: &Path, needed: u64, free: u64) -> anyhow::Result<()> {
    if needed > free {
        let gb = |bytes: u64| bytes as f64 / 1e9;
        bail!(
            "this run needs about {:.1} GB of disk in {} and {:.1} GB are free there: \
             lower --events, or point --data-dir at a larger disk",
            gb(needed),
            root.display(),
            gb(free)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_larger_than_the_free_disk_is_refused_before_it_starts() {
        let root = Path::new("/data");
        assert!(check_disk(root, 30_000_000_000, 30_000_000_001).is_ok());
        let err = check_disk(root, 32_000_000_000, 18_200_000_000).unwrap_err().to_string();
        assert!(err.contains("32.0 GB") && err.contains("18.2 GB") && err.contains("/data"), "{err}");
        assert!(err.contains("--events") && err.contains("--data-dir"), "{err}");
    }

    #[test]
    fn the_disk_a_run_needs_follows_its_kind_and_size() {
        use clap::Parser;
        let needed = |line: &str| {
            let cli = crate::cli::Cli::try_parse_from(line.split(' ')).unwrap();
            let crate::cli::Command::Bench(args) = cli.command else { panic!("{line} is a bench") };
            disk_needed(&args)
        };
        // BENCHMARKS.md: 25.4 GB for the lake of 100M --sql events (then 3M more); ~21 GB for a 10M backlog.
        assert_eq!(needed("klarity-audit bench --sql --events 100000000"), 103_000_000 * 300);
        assert_eq!(needed("klarity-audit bench --sql --events 10000000"), 13_000_000 * 300);
        assert_eq!(needed("klarity-audit bench --hold --events 10000000 --no-baseline"), 10_000_000 * 2_400);
        assert_eq!(needed("klarity-audit bench --events 1000 --event-size 5000 --no-baseline"), 1_000 * 10_400);
        // The baselines' events land in the same lake.
        assert_eq!(
            needed("klarity-audit bench --events 1000000 --boto3-events 20000"),
            1_000_000 * 2_400 + (500_000 + 20_000) * 1_400
        );
        // A timed run sends what its seconds allow, at most.
        assert_eq!(needed("klarity-audit bench --duration 1 --events 100000000 --no-baseline"), 200_000 * 2_400);
        assert_eq!(
            needed("klarity-audit bench --duration 10 --rate 1000 --events 100000000 --no-baseline"),
            10_000 * 2_400
        );
        assert_eq!(needed("klarity-audit bench --duration 10 --events 1000 --no-baseline"), 1_000 * 2_400);
    }

    #[test]
    fn metrics_are_summed_over_tenants() {
        let text = "# HELP x\nklarity_relay_events_delivered_total{tenant=\"a\"} 5\nklarity_relay_events_delivered_total{tenant=\"b\"} 7\n\
            klarity_relay_queue_depth{tenant=\"a\"} 3\n\
            klarity_relay_delivery_latency_seconds_bucket{tenant=\"a\",le=\"0.1\"} 4\n\
            klarity_relay_delivery_latency_seconds_bucket{tenant=\"b\",le=\"0.1\"} 6\n\
            klarity_relay_delivery_latency_seconds_bucket{tenant=\"a\",le=\"1\"} 5\n\
            klarity_relay_delivery_latency_seconds_bucket{tenant=\"b\",le=\"1\"} 7\n\
            klarity_relay_delivery_latency_seconds_bucket{tenant=\"a\",le=\"+Inf\"} 5\n\
            klarity_relay_delivery_latency_seconds_bucket{tenant=\"b\",le=\"+Inf\"} 7\n";
        let state = parse_metrics(text);
        assert_eq!((state.delivered, state.queued), (12, 3));
        assert_eq!(state.latency, vec![(0.1, 10), (1.0, 12), (f64::INFINITY, 12)]);
        assert_eq!(state.latency_quantile(0.5), Some(0.1));
        assert_eq!(state.latency_quantile(0.99), Some(1.0));
    }

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(12_345_678), "12,345,678");
    }
}
