//! Throughput of `PutAuditEvents` on loopback: several concurrent keep-alive clients send
//! SigV4-signed requests of 100 events × ~1 KB to a lake running in this process; every
//! acknowledged request is fsynced (group commit). Bodies and signatures are prepared before the
//! clock starts, so the figure is the lake's cost (HTTP, SigV4, JSON, validation, checksum,
//! SQLite), sharing the machine's two cores with the clients.
//!
//! The baseline in the same run is the storage path alone: the same records handed straight to
//! the store's group-committing writer from the same number of tasks, with no HTTP, signature or
//! validation — the ceiling the API can approach.
//!
//! Run: `cargo bench -p audit-lake --bench put_audit_events` (env: BENCH_SECS, BENCH_CLIENTS).

#![allow(missing_docs)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use audit_lake::{
    Lake, LakeConfig,
    config::{CUSTOMER_ACCESS_KEY_ID, CUSTOMER_SECRET_ACCESS_KEY},
    sigv4,
    store::{NewEvent, model::IngestionStatus},
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const EVENTS_PER_REQUEST: usize = 100;

fn event_data(n: usize) -> String {
    serde_json::json!({
        "version": "v1",
        "userIdentity": {"type": "SERVICE", "principalId": "autobackup-scheduler", "details": {"tenant": "acme-prod"}},
        "userAgent": "klarity-autobackup/3.14.2 (linux; x86_64)",
        "eventSource": "com.nordcloudapp.com.autobackup",
        "eventName": "backup.completed",
        "eventTime": "2024-07-12T11:09:30.123Z",
        "UID": format!("0190a6b4-2222-7a3f-9d2b-{n:012}"),
        "sourceIPAddress": "203.0.113.10",
        "recipientAccountId": "123456789012",
        "requestParameters": {"resourceType": "DynamoDB", "resourceArn": "arn:aws:dynamodb:eu-west-1:123456789012:table/orders-production", "region": "eu-west-1", "backupPolicy": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"},
        "responseElements": {"recoveryPointArn": "arn:aws:backup:eu-west-1:123456789012:recovery-point:1EB3B5E7-9EB0-435A-A80B-108B488B0D45", "status": "COMPLETED"},
        "additionalEventData": {"requestId": "5f0c6a2e-8d1b-4c3a-9e7f-2b1a0c9d8e7f", "tags": {"team": "payments", "environment": "production"}, "durationMs": 18234, "notes": "nightly backup window 02:00-04:00 UTC; retention 35 days"}
    })
    .to_string()
}

fn amz_date() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    audit_event::EventTime::from_unix(now, 0).to_string().replace(['-', ':'], "")
}

/// A complete signed HTTP/1.1 request (keep-alive).
fn signed_request(host: &str, service: &str, path: &str, query: &str, extra: &[(&str, &str)], body: &str) -> Vec<u8> {
    let date = amz_date();
    let mut headers: Vec<(String, String)> = extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    headers.push(("host".into(), host.into()));
    headers.push(("x-amz-date".into(), date.clone()));
    let mut names: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    names.sort();
    let signable = sigv4::Signable { method: "POST", path, query, headers: &headers, body: body.as_bytes() };
    let auth = sigv4::authorization_header(
        &signable,
        CUSTOMER_ACCESS_KEY_ID,
        CUSTOMER_SECRET_ACCESS_KEY,
        &date,
        "us-east-1",
        service,
        &names,
    )
    .unwrap();
    let target = if query.is_empty() { path.to_owned() } else { format!("{path}?{query}") };
    let mut out = format!("POST {target} HTTP/1.1\r\nContent-Length: {}\r\nAuthorization: {auth}\r\n", body.len());
    for (k, v) in &headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body.as_bytes());
    bytes
}

/// Sends one request on a keep-alive connection and reads the response; returns (status, body).
async fn roundtrip(conn: &mut BufReader<tokio::net::TcpStream>, request: &[u8]) -> (u16, Vec<u8>) {
    conn.get_mut().write_all(request).await.unwrap();
    let mut line = String::new();
    conn.read_line(&mut line).await.unwrap();
    let status = line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut length = 0;
    loop {
        line.clear();
        conn.read_line(&mut line).await.unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    conn.read_exact(&mut body).await.unwrap();
    (status, body)
}

async fn call(host: &str, target: &str, body: &str) -> serde_json::Value {
    let mut conn = BufReader::new(tokio::net::TcpStream::connect(host).await.unwrap());
    let request = signed_request(
        host,
        "cloudtrail",
        "/",
        "",
        &[("content-type", "application/x-amz-json-1.1"), ("x-amz-target", &format!("CloudTrail_20131101.{target}"))],
        body,
    );
    let (status, body) = roundtrip(&mut conn, &request).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted.get(((sorted.len() as f64 - 1.0) * p) as usize).copied().unwrap_or_default()
}

fn main() {
    let secs: u64 = std::env::var("BENCH_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(8);
    let clients: usize = std::env::var("BENCH_CLIENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(8);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(LakeConfig { data_dir: dir.path().join("lake"), ..LakeConfig::default() }).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = listener.local_addr().unwrap().to_string();
        tokio::spawn(audit_lake::serve(lake.clone(), listener, std::future::pending()));

        let store = call(&host, "CreateEventDataStore", r#"{"Name":"bench","MultiRegionEnabled":false,"AdvancedEventSelectors":[{"Name":"a","FieldSelectors":[{"Field":"eventCategory","Equals":["ActivityAuditLog"]}]}]}"#).await;
        let store_arn = store["EventDataStoreArn"].as_str().unwrap().to_owned();
        let channel = call(&host, "CreateChannel", &format!(r#"{{"Name":"bench","Source":"Custom","Destinations":[{{"Type":"EVENT_DATA_STORE","Location":"{store_arn}"}}]}}"#)).await;
        let channel_arn = channel["ChannelArn"].as_str().unwrap().to_owned();
        let query = format!("channelArn={}", channel_arn.replace(':', "%3A").replace('/', "%2F"));

        // Enough distinct requests for the run at up to ~250k events/s, prepared up front.
        let requests_needed = (secs as usize * 150_000).div_ceil(EVENTS_PER_REQUEST);
        let prepare = Instant::now();
        let sample = event_data(0);
        let requests: Vec<Vec<u8>> = (0..requests_needed)
            .map(|r| {
                let entries: Vec<serde_json::Value> = (0..EVENTS_PER_REQUEST)
                    .map(|i| {
                        let n = r * EVENTS_PER_REQUEST + i;
                        let data = event_data(n);
                        serde_json::json!({"id": format!("e{n}"), "eventData": data, "eventDataChecksum": audit_event::checksum::checksum(data.as_bytes())})
                    })
                    .collect();
                let body = serde_json::json!({"auditEvents": entries}).to_string();
                signed_request(&host, "cloudtrail-data", "/PutAuditEvents", &query, &[("content-type", "application/json")], &body)
            })
            .collect();
        let body_bytes = requests[0].len();
        eprintln!("prepared {} requests ({} B each, event ~{} B) in {:.1}s", requests.len(), body_bytes, sample.len(), prepare.elapsed().as_secs_f64());
        let requests = Arc::new(requests);

        // The API.
        let next = Arc::new(AtomicUsize::new(0));
        let commits_before = lake.store().commits();
        let started = Instant::now();
        let deadline = started + Duration::from_secs(secs);
        let tasks: Vec<_> = (0..clients)
            .map(|_| {
                let (requests, next, host) = (requests.clone(), next.clone(), host.clone());
                tokio::spawn(async move {
                    let mut conn = BufReader::new(tokio::net::TcpStream::connect(&host).await.unwrap());
                    let mut latencies = Vec::new();
                    while Instant::now() < deadline {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(request) = requests.get(i) else { break };
                        let t = Instant::now();
                        let (status, body) = roundtrip(&mut conn, request).await;
                        latencies.push(t.elapsed());
                        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
                    }
                    latencies
                })
            })
            .collect();
        let mut latencies = Vec::new();
        for t in tasks {
            latencies.extend(t.await.unwrap());
        }
        let elapsed = started.elapsed().as_secs_f64();
        let commits = lake.store().commits() - commits_before;
        latencies.sort();
        let events = latencies.len() * EVENTS_PER_REQUEST;
        let api_rate = events as f64 / elapsed;

        // Baseline: the store alone, same records, same concurrency.
        let channel = lake.store().channel(&channel_arn).unwrap();
        let store_id = store_arn.rsplit('/').next().unwrap().to_owned();
        let record = sample.clone();
        println!("  eventData: {} B of JSON", record.len());
        let base_next = Arc::new(AtomicUsize::new(0));
        let base_commits_before = lake.store().commits();
        let base_started = Instant::now();
        let base_deadline = base_started + Duration::from_secs(secs.min(4));
        let tasks: Vec<_> = (0..clients)
            .map(|_| {
                let (store, channel, store_id, record, next) = (lake.store().clone(), channel.clone(), store_id.clone(), record.clone(), base_next.clone());
                tokio::spawn(async move {
                    let mut done = 0usize;
                    while Instant::now() < base_deadline {
                        let r = next.fetch_add(1, Ordering::Relaxed);
                        // The API path's storage step.
                        let events = (0..EVENTS_PER_REQUEST)
                            .map(|i| NewEvent {
                                entry_id: format!("b{}", r * EVENTS_PER_REQUEST + i),
                                event_id: format!("ev{r}-{i}"),
                                event_time_ms: 0,
                                event_data: record.clone(),
                            })
                            .collect();
                        store.put_events(&channel, vec![store_id.clone()], 0, events, IngestionStatus::default()).await.unwrap();
                        done += EVENTS_PER_REQUEST;
                    }
                    done
                })
            })
            .collect();
        let mut base_events = 0;
        for t in tasks {
            base_events += t.await.unwrap();
        }
        let base_elapsed = base_started.elapsed().as_secs_f64();
        let base_rate = base_events as f64 / base_elapsed;
        let base_commits = lake.store().commits() - base_commits_before;

        println!("PutAuditEvents over loopback, {clients} clients, {EVENTS_PER_REQUEST} events x ~{} B per request, {secs}s", sample.len());
        println!("  api:       {:>9.0} events/s  {:>7.0} requests/s  {:>6.0} fsyncs/s (commits)  {:.1} requests/commit  latency p50 {:.1} ms  p99 {:.1} ms",
            api_rate, latencies.len() as f64 / elapsed, commits as f64 / elapsed, latencies.len() as f64 / commits.max(1) as f64,
            percentile(&latencies, 0.5).as_secs_f64() * 1e3, percentile(&latencies, 0.99).as_secs_f64() * 1e3);
        println!("  baseline (store alone, same records and concurrency): {:>9.0} events/s  {:>6.0} fsyncs/s", base_rate, base_commits as f64 / base_elapsed);
        println!("  api / baseline: {:.2}", api_rate / base_rate);
    });
}
