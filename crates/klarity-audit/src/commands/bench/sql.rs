//! `klarity-audit bench --sql`: the lake's queries over a large store, measured.
//!
//! 1. Loads `--events` generated events (~`--event-size` bytes; every event type of the five
//!    applications, 10,000 principals, `eventTime` spread over the past year in arrival order, as
//!    a year of history replayed) into one store with `PutAuditEvents`, from `--clients` callers.
//! 2. Waits until the compactor has written them all as Parquet, and measures bytes on disk.
//! 3. Runs each query five times through the API (StartQuery, DescribeQuery polled every 2 ms,
//!    GetQueryResults) and reports the fastest and median wall-clock time and the engine's
//!    ExecutionTimeInMillis: the count by event name, a one-day window filtered by principal, and a
//!    request-parameter (map key) filter over every event.
//! 4. Ingest while querying: the same number of events (a tenth of the store, at most 1M) loaded
//!    alone, then with a client querying back to back (polling every 100 ms, as a client would), then
//!    alone again; the second rate as a share of the first,
//!    the first and last measured in this run, averaged.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::{Progress, disk_usage, group, memory};
use crate::cli::BenchArgs;

const PRINCIPALS: usize = 10_000;
const YEAR_SECONDS: i64 = 365 * 86_400;

/// Generated events: one template per event type of the catalog, with the time, the UID and the
/// principal spliced in.
struct Generator {
    templates: Vec<Vec<String>>,
    start: i64,
    step_ms: f64,
    run: String,
}

impl Generator {
    fn new(catalog: &audit_event::Catalog, events: usize, size: usize) -> Generator {
        let now = audit_event::EventTime::now().unix_seconds();
        let mut templates = Vec::new();
        for app in catalog.applications() {
            for event_type in &app.event_types {
                let mut data = event_type.example.clone();
                data.insert("eventTime".into(), "@TIME@".into());
                data.insert("UID".into(), "@UID@".into());
                data.insert("recipientAccountId".into(), audit_lake::config::CUSTOMER_ACCOUNT.into());
                data.insert(
                    "userIdentity".into(),
                    serde_json::json!({"type": "USER", "principalId": "@PRINCIPAL@", "details": {"tenant": "acme-prod"}}),
                );
                data.insert("userAgent".into(), "klarity/3.14.2 (linux; x86_64)".into());
                let bare = serde_json::Value::Object(data.clone()).to_string().len() + 20 + 36 + 26 - 27;
                let notes = "n".repeat(size.saturating_sub(bare + 40));
                let extra = data.entry("additionalEventData").or_insert_with(|| serde_json::json!({}));
                extra["requestId"] = "@UID@".into();
                extra["notes"] = notes.into();
                let text = serde_json::Value::Object(data).to_string();
                templates.push(split(&text));
            }
        }
        let start = now - YEAR_SECONDS;
        Generator {
            templates,
            start,
            step_ms: YEAR_SECONDS as f64 * 1000.0 / events.max(1) as f64,
            run: uuid::Uuid::now_v7().simple().to_string()[..20].to_owned(),
        }
    }

    fn event_type(&self, n: usize) -> usize {
        // Skewed: a few types are common, as in real audit logs.
        let h = mix(n as u64);
        let k = self.templates.len() as u64;
        (h % k).min((h >> 32) % k) as usize
    }

    fn principal(&self, n: usize) -> String {
        format!("user-{:05}@example.com", mix(n as u64 ^ 0x9e37) % PRINCIPALS as u64)
    }

    fn time(&self, n: usize) -> i64 {
        self.start + (n as f64 * self.step_ms / 1000.0) as i64
    }

    fn event(&self, n: usize, offset: u64) -> String {
        let uid = format!("{}{:012x}", self.run, n as u64 + offset);
        let uid = format!("{}-{}-{}-{}-{}", &uid[..8], &uid[8..12], &uid[12..16], &uid[16..20], &uid[20..32]);
        let time = audit_event::EventTime::from_unix(self.time(n), 0).to_string();
        let principal = self.principal(n);
        let mut out = String::with_capacity(1200);
        for part in &self.templates[self.event_type(n)] {
            match part.as_str() {
                "@TIME@" => out.push_str(&time),
                "@UID@" => out.push_str(&uid),
                "@PRINCIPAL@" => out.push_str(&principal),
                text => out.push_str(text),
            }
        }
        out
    }
}

fn split(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find('@') {
        let marker = ["@TIME@", "@UID@", "@PRINCIPAL@"].into_iter().find(|m| rest[at..].starts_with(m));
        match marker {
            Some(m) => {
                parts.push(rest[..at].to_owned());
                parts.push(m.to_owned());
                rest = &rest[at + m.len()..];
            }
            None => {
                parts.push(rest[..=at].to_owned());
                rest = &rest[at + 1..];
            }
        }
    }
    parts.push(rest.to_owned());
    parts
}

fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// What the SQL bench measured.
#[derive(Debug, Serialize)]
pub(crate) struct SqlReport {
    events: u64,
    event_bytes: usize,
    clients: usize,
    load_seconds: f64,
    load_events_per_second: f64,
    compaction_wait_seconds: f64,
    /// Merging the small files the load left after it (most merge during the load).
    merge_seconds: f64,
    /// The store's Parquet files the queries read.
    files: usize,
    parquet_bytes: u64,
    parquet_bytes_per_event: f64,
    lake_bytes: u64,
    lake_bytes_per_event: f64,
    queries: Vec<QueryFigures>,
    duckdb: Baseline,
    /// DataFusion itself over the same files (PyPI's `datafusion`, on its defaults): the lake's
    /// engine without the lake, so the lake's own overhead shows apart from the engine's.
    datafusion: Baseline,
    pages: Vec<PageFigures>,
    ingest_alone_events_per_second: f64,
    ingest_while_querying_events_per_second: f64,
    ingest_while_querying_ratio: f64,
    queries_during_ingest: u64,
    peak_rss_bytes: u64,
}

/// An engine over the same Parquet files (`bench/duckdb_queries.py`): its version, or why it was
/// not measured (each query's figures are in [`QueryFigures`]).
#[derive(Debug, Serialize)]
struct Baseline {
    version: Option<String>,
    not_measured: Option<String>,
}

/// The DuckDB baseline script, embedded like boto3's.
const DUCKDB_QUERIES: &str = include_str!("../../../../../bench/duckdb_queries.py");

#[derive(Debug, Serialize)]
struct QueryFigures {
    name: &'static str,
    statement: String,
    rows: usize,
    events_scanned: i64,
    bytes_scanned: i64,
    fastest_ms: f64,
    median_ms: f64,
    engine_median_ms: i64,
    /// DuckDB over the same files, same threads: fastest and median of five.
    duckdb_fastest_ms: Option<f64>,
    duckdb_median_ms: Option<f64>,
    /// DataFusion (PyPI) over the same files, same threads: fastest and median of five (the JSON
    /// query is not run: it has no JSON functions).
    datafusion_fastest_ms: Option<f64>,
    datafusion_median_ms: Option<f64>,
}

pub(crate) async fn run(
    root: &std::path::Path,
    args: &BenchArgs,
    catalog: audit_event::Catalog,
) -> anyhow::Result<SqlReport> {
    let stop = CancellationToken::new();
    let _stop_on_exit = stop.clone().drop_guard();
    let progress = Progress::new(!args.json && std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let lake_dir = root.join("lake");
    let lake = audit_lake::Lake::open(audit_lake::LakeConfig { data_dir: lake_dir.clone(), ..Default::default() })?;
    let columnar = lake.columnar().clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    let lake_stop = stop.clone();
    let lake_task = tokio::spawn(audit_lake::serve(lake, listener, async move { lake_stop.cancelled().await }));
    let cloudtrail = super::cloudtrail_client(&endpoint);
    let (store_id, channel_arn) =
        super::store_and_channel(&cloudtrail, "bench-sql", audit_lake::ops::trail::CHANNEL_SOURCES[0], false).await?;

    // 1. The store.
    let generator = Arc::new(Generator::new(&catalog, args.events, args.event_size));
    let event_bytes = generator.event(0, 0).len();
    let started = Instant::now();
    put(&endpoint, &channel_arn, &generator, 0, args.events, args.clients, &progress, "loading").await?;
    let load_seconds = started.elapsed().as_secs_f64();

    // 2. Everything in Parquet.
    progress.say("waiting for the compactor to write every event as Parquet");
    let started = Instant::now();
    let flushing = columnar.clone();
    tokio::task::spawn_blocking(move || flushing.flush_all()).await??;
    let compaction_wait_seconds = started.elapsed().as_secs_f64();
    progress.say("waiting for the merges of small files");
    let started = Instant::now();
    let merging = columnar.clone();
    tokio::task::spawn_blocking(move || merging.merge_all()).await??;
    let merge_seconds = started.elapsed().as_secs_f64();
    let files = std::fs::read_dir(lake_dir.join(audit_lake::columnar::DIR).join(&store_id))?
        .filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "parquet")))
        .count();
    let parquet_bytes = disk_usage(&lake_dir.join(audit_lake::columnar::DIR));
    let lake_bytes = disk_usage(&lake_dir);

    // 3. Queries.
    let mid = args.events / 2;
    let day = audit_event::EventTime::from_unix(generator.time(mid).div_euclid(86_400) * 86_400, 0);
    let next_day = audit_event::EventTime::from_unix(day.unix_seconds() + 86_400, 0);
    let sql_time = |t: &audit_event::EventTime| t.to_string().replace('T', " ").trim_end_matches('Z').to_owned();
    let statements = [
        (
            "count by eventName",
            format!(
                "SELECT eventData.eventName, count(*) FROM {store_id} GROUP BY eventData.eventName ORDER BY 2 DESC"
            ),
        ),
        (
            "one day, one principal",
            format!(
                "SELECT eventTime, eventData.eventName, eventData.UID FROM {store_id} WHERE eventTime >= '{}' AND eventTime < '{}' \
                 AND eventData.userIdentity.principalId = '{}' ORDER BY eventTime",
                sql_time(&day),
                sql_time(&next_day),
                generator.principal(mid)
            ),
        ),
        (
            "map key over all events",
            format!(
                "SELECT count(*) FROM {store_id} WHERE element_at(eventData.requestParameters, 'resourceType') = 'DynamoDB'"
            ),
        ),
    ];
    let mut queries = Vec::new();
    for (name, statement) in &statements {
        progress.say(&format!("query: {name}"));
        let mut walls = Vec::new();
        let mut engines = Vec::new();
        let mut last = None;
        for _ in 0..5 {
            // Polled every 2 ms, so the time measured is the query's, not the poll's.
            let timed = query(&cloudtrail, statement, Duration::from_millis(2)).await?;
            walls.push(timed.wall_ms);
            engines.push(timed.engine_ms);
            last = Some(timed);
        }
        let last = last.expect("five runs");
        walls.sort_by(f64::total_cmp);
        engines.sort_unstable();
        queries.push(QueryFigures {
            name,
            statement: statement.clone(),
            rows: last.rows,
            events_scanned: last.events_scanned,
            bytes_scanned: last.bytes_scanned,
            fastest_ms: walls[0],
            median_ms: walls[2],
            engine_median_ms: engines[2],
            duckdb_fastest_ms: None,
            duckdb_median_ms: None,
            datafusion_fastest_ms: None,
            datafusion_median_ms: None,
        });
    }

    // 3a. DuckDB, then DataFusion alone, over the very same Parquet files, on as many threads as
    // the machine has cores.
    let script = root.join("duckdb_queries.py");
    let dir = lake_dir.join(audit_lake::columnar::DIR).join(&store_id);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).to_string();
    let baseline = |engine: &str| -> anyhow::Result<serde_json::Value> {
        std::fs::write(&script, DUCKDB_QUERIES)?;
        let output = std::process::Command::new("python3")
            .arg(&script)
            .args(["--engine", engine, "--dir"])
            .arg(&dir)
            .args(["--threads", &threads, "--runs", "5"])
            .args(["--day-from", &sql_time(&day), "--day-to", &sql_time(&next_day)])
            .args(["--principal", &generator.principal(mid)])
            .output()
            .context("running python3 (is it installed?)")?;
        anyhow::ensure!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr).trim());
        Ok(serde_json::from_slice::<serde_json::Value>(&output.stdout)?)
    };
    // Each engine's version (or why it was not measured), and each query's fastest and median.
    let measure = |engine: &str| match baseline(engine) {
        Ok(answer) => {
            let figures = queries.iter().map(|q| &answer["queries"][q.name]);
            let figures = figures.map(|f| (f["fastest_ms"].as_f64(), f["median_ms"].as_f64())).collect();
            (Baseline { version: answer["version"].as_str().map(str::to_owned), not_measured: None }, figures)
        }
        Err(err) => {
            (Baseline { version: None, not_measured: Some(format!("{err:#}")) }, vec![(None, None); queries.len()])
        }
    };
    progress.say("baseline: DuckDB over the same Parquet files");
    let (duckdb, by_duckdb) = measure("duckdb");
    progress.say("baseline: DataFusion alone over the same Parquet files");
    let (datafusion, by_datafusion) = measure("datafusion");
    for (q, (duck, fusion)) in queries.iter_mut().zip(by_duckdb.into_iter().zip(by_datafusion)) {
        (q.duckdb_fastest_ms, q.duckdb_median_ms) = duck;
        (q.datafusion_fastest_ms, q.datafusion_median_ms) = fusion;
    }

    // 3b. The console's event browser on this store, as a customer opens it with a viewer link.
    progress.say("the event browser's pages, through a relay");
    let pages =
        browser_pages(&endpoint, &store_id, &channel_arn, root, &catalog, &generator, args.events, &cloudtrail, &stop)
            .await?;

    // 4. Ingest alone, then while a client queries back to back.
    let extra = extra_events(args.events);
    let started = Instant::now();
    put(&endpoint, &channel_arn, &generator, 1 << 40, extra, args.clients, &progress, "ingest alone").await?;
    let alone = extra as f64 / started.elapsed().as_secs_f64();
    let querying = Arc::new(AtomicBool::new(true));
    let ran = Arc::new(AtomicU64::new(0));
    let loop_task = {
        let (cloudtrail, querying, ran) = (cloudtrail.clone(), querying.clone(), ran.clone());
        let statements: Vec<String> = statements[..2].iter().map(|(_, s)| s.clone()).collect();
        tokio::spawn(async move {
            let mut i = 0;
            while querying.load(Ordering::Relaxed) {
                // Polled as a client would (every 2 ms would add 500 signed calls a second).
                query(&cloudtrail, &statements[i % statements.len()], Duration::from_millis(100)).await?;
                ran.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
            anyhow::Ok(())
        })
    };
    let started = Instant::now();
    put(&endpoint, &channel_arn, &generator, 2 << 40, extra, args.clients, &progress, "ingest while querying").await?;
    let with_queries = extra as f64 / started.elapsed().as_secs_f64();
    querying.store(false, Ordering::Relaxed);
    loop_task.await.context("the query loop stopped")??;
    // Alone once more: the baseline is the mean of the runs before and after, as the machine drifts.
    let started = Instant::now();
    put(&endpoint, &channel_arn, &generator, 3 << 40, extra, args.clients, &progress, "ingest alone again").await?;
    let alone_after = extra as f64 / started.elapsed().as_secs_f64();
    let alone = (alone + alone_after) / 2.0;
    progress.clear();

    stop.cancel();
    let _ = lake_task.await;
    columnar.stop();
    let events = args.events as u64;
    Ok(SqlReport {
        events,
        event_bytes,
        clients: args.clients,
        load_seconds,
        load_events_per_second: events as f64 / load_seconds,
        compaction_wait_seconds,
        merge_seconds,
        files,
        parquet_bytes,
        parquet_bytes_per_event: parquet_bytes as f64 / events as f64,
        lake_bytes,
        lake_bytes_per_event: lake_bytes as f64 / events as f64,
        queries,
        duckdb,
        datafusion,
        pages,
        ingest_alone_events_per_second: alone,
        ingest_while_querying_events_per_second: with_queries,
        ingest_while_querying_ratio: with_queries / alone,
        queries_during_ingest: ran.load(Ordering::Relaxed),
        peak_rss_bytes: memory().peak_bytes,
    })
}

impl SqlReport {
    pub(crate) fn print(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        writeln!(
            out,
            "klarity-audit bench --sql: {} events of {} bytes, {} clients, {} cores",
            group(self.events),
            self.event_bytes,
            self.clients,
            std::thread::available_parallelism().map_or(0, |n| n.get())
        )?;
        writeln!(out)?;
        writeln!(
            out,
            "load      {:>10.0} events/s   ({} events in {:.1} s, PutAuditEvents batches of 100)",
            self.load_events_per_second,
            group(self.events),
            self.load_seconds
        )?;
        writeln!(out, "compactor {:>10.1} s to finish after the load", self.compaction_wait_seconds)?;
        writeln!(
            out,
            "merges    {:>10.1} s to finish after it; the store is {} Parquet files",
            self.merge_seconds,
            group(self.files as u64)
        )?;
        writeln!(
            out,
            "disk      {:>10.1} bytes/event in Parquet ({:.2} GB); {:.1} bytes/event for the whole lake ({:.2} GB, SQLite's durable copy included)",
            self.parquet_bytes_per_event,
            self.parquet_bytes as f64 / 1e9,
            self.lake_bytes_per_event,
            self.lake_bytes as f64 / 1e9
        )?;
        writeln!(out)?;
        writeln!(
            out,
            "{:<26} {:>10} {:>10} {:>10} {:>8} {:>14} {:>12} {:>14} {:>13} {:>17}",
            "query (5 runs)",
            "fastest ms",
            "median ms",
            "engine ms",
            "rows",
            "events read",
            "bytes read",
            "DuckDB fastest",
            "DuckDB median",
            "DataFusion median"
        )?;
        let ms = |v: Option<f64>| v.map_or_else(|| "—".to_owned(), |v| format!("{v:.1}"));
        for q in &self.queries {
            writeln!(
                out,
                "{:<26} {:>10.1} {:>10.1} {:>10} {:>8} {:>14} {:>12} {:>14} {:>13} {:>17}",
                q.name,
                q.fastest_ms,
                q.median_ms,
                q.engine_median_ms,
                q.rows,
                group(q.events_scanned.max(0) as u64),
                group(q.bytes_scanned.max(0) as u64),
                ms(q.duckdb_fastest_ms),
                ms(q.duckdb_median_ms),
                ms(q.datafusion_median_ms)
            )?;
        }
        for (name, baseline) in [("DuckDB", &self.duckdb), ("DataFusion", &self.datafusion)] {
            match (&baseline.version, &baseline.not_measured) {
                (Some(version), _) => writeln!(
                    out,
                    "  ({name} {version} over the same Parquet files, as many threads as cores, in this run)"
                )?,
                (None, Some(why)) => writeln!(out, "  {name} not measured: {why}")?,
                (None, None) => {}
            }
        }
        writeln!(out)?;
        writeln!(
            out,
            "{:<34} {:>10} {:>10} {:>16} {:>15} {:>6}",
            "event browser page (5 loads)", "fastest ms", "median ms", "lake fastest ms", "lake median ms", "rows"
        )?;
        for p in &self.pages {
            writeln!(
                out,
                "{:<34} {:>10.1} {:>10.1} {:>16.1} {:>15.1} {:>6}",
                p.name, p.fastest_ms, p.median_ms, p.lake_fastest_ms, p.lake_median_ms, p.rows
            )?;
        }
        writeln!(
            out,
            "  (a viewer link's GET on the relay: role chain, StartQuery, polling, results, HTML, the use recorded; \
             the lake alone runs the same statement)"
        )?;
        writeln!(out)?;
        writeln!(
            out,
            "ingest alone            {:>10.0} events/s   (mean of the runs before and after)",
            self.ingest_alone_events_per_second
        )?;
        writeln!(
            out,
            "ingest while querying   {:>10.0} events/s   ({:.0} % of alone; {} queries ran meanwhile)",
            self.ingest_while_querying_events_per_second,
            self.ingest_while_querying_ratio * 100.0,
            self.queries_during_ingest
        )?;
        writeln!(out, "peak memory             {:>10.0} MiB", self.peak_rss_bytes as f64 / (1 << 20) as f64)?;
        Ok(())
    }
}

/// A page of the console's event browser, loaded five times, and its statement on the lake alone.
#[derive(Debug, Serialize)]
struct PageFigures {
    name: &'static str,
    query: String,
    rows: usize,
    fastest_ms: f64,
    median_ms: f64,
    lake_fastest_ms: f64,
    lake_median_ms: f64,
}

/// The event browser's pages over the bench's store: a relay whose tenant reads the store through
/// a customer role with `onboard`'s least-privilege policy, a viewer link minted by the admin API,
/// and each page loaded five times over HTTP; the same statements on the lake alone as the
/// baseline.
#[allow(clippy::too_many_arguments)]
async fn browser_pages(
    endpoint: &str,
    store_id: &str,
    channel_arn: &str,
    root: &std::path::Path,
    catalog: &audit_event::Catalog,
    generator: &Generator,
    events: usize,
    cloudtrail: &aws_sdk_cloudtrail::Client,
    stop: &CancellationToken,
) -> anyhow::Result<Vec<PageFigures>> {
    use audit_relay::registry::{DeliveryMode, Destination, Tenant};
    let account = audit_lake::config::CUSTOMER_ACCOUNT;
    let store_arn = format!("arn:aws:cloudtrail:eu-west-1:{account}:eventdatastore/{store_id}");
    let policy = crate::commands::onboard::documents::least_privilege_policy(channel_arn, &store_arn, true);
    let role_arn = super::customer_role(endpoint, "BenchTrailReader", policy).await?;
    let admin_token = format!("kadm_{}", uuid::Uuid::new_v4().simple());
    let config = audit_relay::RelayConfig {
        data_dir: root.join("viewer-relay"),
        endpoint_url: endpoint.to_owned(),
        admin_token_sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(admin_token.as_bytes())),
        ..Default::default()
    };
    let tenant = Tenant {
        id: "bench-viewer".into(),
        channel_arn: channel_arn.to_owned(),
        destination: Destination::CloudtrailLake,
        delivery: DeliveryMode::AssumeRole {
            role_arn,
            external_id: Some(super::LOGS_EXTERNAL_ID.into()),
            proxy_role_arn: None,
        },
        applications: catalog.applications().iter().map(|a| a.event_source.clone()).collect(),
        paused: None,
        held: false,
        saved_queries: Vec::new(),
    };
    audit_relay::store::open_directory(&config.engine()).await?.put_tenant(&tenant).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let relay_url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(audit_relay::run(config, listener, catalog.clone(), stop.clone()));
    let admin = crate::http::JsonClient::new(&relay_url, Some(admin_token))?;
    let minted = admin
        .call(http::Method::POST, "/v1/admin/tenants/bench-viewer/viewer-links", None)
        .await
        .context("minting a viewer link")?;
    let path = minted.body["path"].as_str().with_context(|| minted.error_message())?.to_owned();
    let viewer = crate::http::JsonClient::new(&relay_url, None)?;

    // The first page's last row is the cursor of the next.
    let now = audit_event::EventTime::now();
    let statement = |query: &str| {
        audit_relay::api::console::viewer::page_statement(&tenant, store_id, query, now).map_err(anyhow::Error::msg)
    };
    let first = query(cloudtrail, &statement("")?, Duration::from_millis(2)).await?;
    let cursor = first
        .cursor_row
        .as_ref()
        .map(|row| {
            let at = format!("{}|{}", row[1], row[0]);
            format!("before={}", at.replace(' ', "+").replace(':', "%3A").replace('|', "%7C"))
        })
        .context("the last 7 days of the store hold no events")?;
    let principal = format!("principal={}", generator.principal(events - 1));
    let year_ago = audit_event::EventTime::from_unix(now.unix_seconds() - YEAR_SECONDS - 86_400, 0).to_string();
    let mut pages = Vec::new();
    for (name, q) in [
        ("first page (the last 7 days)", String::new()),
        ("one principal (the last 7 days)", principal),
        ("the next page (cursor)", cursor),
        // The dearest page: free text over the whole year, every text column of every event read.
        ("text over the whole year", format!("from={}&text=user-0000", &year_ago[..16])),
    ] {
        let sql = statement(&q)?;
        let (mut walls, mut lake_walls, mut rows) = (Vec::new(), Vec::new(), 0);
        for _ in 0..5 {
            let started = Instant::now();
            let (status, body) = viewer.call_raw(http::Method::GET, &format!("{path}?{q}"), None).await?;
            walls.push(started.elapsed().as_secs_f64() * 1000.0);
            let html = String::from_utf8_lossy(&body);
            anyhow::ensure!(
                status.is_success() && html.contains("newest first"),
                "the page {name} answered {status}: {html}"
            );
            let timed = query(cloudtrail, &sql, Duration::from_millis(2)).await?;
            lake_walls.push(timed.wall_ms);
            rows = timed.rows;
        }
        walls.sort_by(f64::total_cmp);
        lake_walls.sort_by(f64::total_cmp);
        pages.push(PageFigures {
            name,
            query: q,
            rows,
            fastest_ms: walls[0],
            median_ms: walls[2],
            lake_fastest_ms: lake_walls[0],
            lake_median_ms: lake_walls[2],
        });
    }
    Ok(pages)
}

struct Timed {
    /// The next-to-last row the query answered: the last a browser page shows, as it reads one
    /// more row than it shows.
    cursor_row: Option<Vec<String>>,
    wall_ms: f64,
    engine_ms: i64,
    rows: usize,
    events_scanned: i64,
    bytes_scanned: i64,
}

/// Runs a query through the API, polling DescribeQuery every `poll`.
async fn query(cloudtrail: &aws_sdk_cloudtrail::Client, statement: &str, poll: Duration) -> anyhow::Result<Timed> {
    let started = Instant::now();
    let finished = crate::commands::query::execute(cloudtrail, statement, crate::commands::query::Poll::Every(poll))
        .await
        .map_err(|e| e.into_anyhow().context(format!("the query {statement}")))?;
    Ok(Timed {
        cursor_row: finished.rows.get(finished.rows.len().saturating_sub(2)).cloned(),
        wall_ms: started.elapsed().as_secs_f64() * 1000.0,
        engine_ms: finished.stats.millis.into(),
        rows: finished.rows.len(),
        events_scanned: finished.stats.scanned,
        bytes_scanned: finished.stats.bytes,
    })
}

/// `count` generated events (numbers `first..`, UIDs offset by `offset`) into the channel.
#[allow(clippy::too_many_arguments)]
async fn put(
    endpoint: &str,
    channel_arn: &str,
    generator: &Arc<Generator>,
    offset: u64,
    count: usize,
    clients: usize,
    progress: &Progress,
    what: &str,
) -> anyhow::Result<()> {
    let client = super::load::data_client(endpoint);
    let batches = count.div_ceil(100);
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (client, next, done, generator, channel_arn) =
            (client.clone(), next.clone(), done.clone(), generator.clone(), channel_arn.to_owned());
        tasks.spawn(async move {
            loop {
                let b = next.fetch_add(1, Ordering::Relaxed) as usize;
                if b >= batches {
                    return anyhow::Ok(());
                }
                let entries: Vec<_> = (b * 100..(b * 100 + 100).min(count))
                    .filter_map(|n| {
                        let id = format!("{:x}", n as u64 + offset);
                        audit_relay::delivery::sdk_entry(audit_event::AuditEvent::new(id, generator.event(n, offset)))
                    })
                    .collect();
                let sent = entries.len() as u64;
                let out = client
                    .put_audit_events()
                    .channel_arn(&channel_arn)
                    .set_audit_events(Some(entries))
                    .send()
                    .await
                    .context("PutAuditEvents")?;
                anyhow::ensure!(out.failed().is_empty(), "the lake refused events: {:?}", &out.failed()[..1]);
                done.fetch_add(sent, Ordering::Relaxed);
            }
        });
    }
    loop {
        tokio::select! {
            finished = tasks.join_next() => match finished {
                Some(result) => result.context("a loading client failed")??,
                None => break,
            },
            () = tokio::time::sleep(Duration::from_millis(250)) => {
                progress.line(&format!("{what}: {} of {}", group(done.load(Ordering::Relaxed)), group(count as u64)));
            }
        }
    }
    Ok(())
}

/// Events each of the three ingest measurements after the queries adds to the store.
fn extra_events(events: usize) -> usize {
    (events / 10).clamp(1, 1_000_000)
}

/// Events a run of `events` leaves in its store: the load, then the three ingest measurements.
pub(super) fn stored_events(events: usize) -> u64 {
    events as u64 + 3 * extra_events(events) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_events_are_valid_sized_spread_and_unique() {
        let catalog = audit_event::Catalog::embedded();
        let generator = Generator::new(&catalog, 1000, 1000);
        let validator = audit_event::Validator::new(audit_event::Stage::Put)
            .with_catalog(&catalog)
            .with_channel_owner(audit_lake::config::CUSTOMER_ACCOUNT.to_owned());
        let mut types = std::collections::HashSet::new();
        for n in 0..1000 {
            let event = generator.event(n, 0);
            let checked = validator.validate(&event);
            assert!(checked.violations.is_empty(), "{event}: {:?}", checked.violations);
            assert!((800..=1300).contains(&event.len()), "{}", event.len());
            types.insert(generator.event_type(n));
        }
        assert_eq!(types.len(), generator.templates.len(), "every event type appears");
        assert_ne!(generator.event(1, 0), generator.event(1, 1 << 40));
        assert!(generator.time(999) - generator.time(0) > YEAR_SECONDS - 86_400);
    }
}
