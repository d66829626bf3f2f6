//! Durable ingest throughput of the relay's API: concurrent keep-alive clients POST batches of 100
//! ~1 KB events over loopback; each `202` means the batch is fsynced in the spool. The baseline in
//! the same run is the spool alone (the same events appended from the same number of tasks, no
//! HTTP, JSON or validation): the ceiling the API can approach.
//!
//! Run: `cargo bench -p audit-relay --bench ingest` (env: BENCH_SECS, BENCH_CLIENTS [default 32]).

#![allow(missing_docs)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use audit_event::Catalog;
use audit_relay::{
    api::{RelayState, router},
    registry::{DeliveryMode, Grant, Registry, Tenant},
    spool::{NewEvent, Spool},
};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const PER_REQUEST: usize = 100;

fn event(n: usize) -> serde_json::Value {
    json!({
        "version": "v1",
        "userIdentity": {"type": "SERVICE", "principalId": "autobackup-scheduler", "details": {"tenant": "acme-prod"}},
        "userAgent": "klarity-autobackup/3.14.2 (linux; x86_64)",
        "eventSource": "com.nordcloudapp.com.autobackup",
        "eventName": "backup.completed",
        "eventTime": "2024-07-12T11:09:30.123Z",
        "UID": format!("0190a6b4-2222-7a3f-9d2b-{n:012}"),
        "sourceIPAddress": "203.0.113.10",
        "requestParameters": {"resourceType": "DynamoDB", "resourceArn": "arn:aws:dynamodb:eu-west-1:123456789012:table/orders-production", "region": "eu-west-1", "backupPolicy": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"},
        "responseElements": {"recoveryPointArn": "arn:aws:backup:eu-west-1:123456789012:recovery-point:1EB3B5E7-9EB0-435A-A80B-108B488B0D45", "status": "COMPLETED"},
        "additionalEventData": {"requestId": "5f0c6a2e-8d1b-4c3a-9e7f-2b1a0c9d8e7f", "tags": {"team": "payments", "environment": "production"}, "durationMs": 18234, "notes": "nightly backup window 02:00-04:00 UTC; retention 35 days"}
    })
}

async fn roundtrip(conn: &mut BufReader<tokio::net::TcpStream>, request: &[u8]) -> u16 {
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
    status
}

fn main() {
    let secs: u64 = std::env::var("BENCH_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let clients: usize = std::env::var("BENCH_CLIENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(32);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path()).unwrap();
        registry
            .put_tenant(&Tenant {
                id: "acme".into(),
                channel_arn: "arn:aws:cloudtrail:eu-west-1:123456789012:channel/c1".into(),
                destination: Default::default(),
                delivery: DeliveryMode::ResourcePolicy { external_id: None },
                applications: vec!["com.nordcloudapp.com.autobackup".into()],
                paused: None, held: false, saved_queries: Vec::new(),
            })
            .unwrap();
        let token = registry.issue_token(&Grant { name: "b".into(), source: "com.nordcloudapp.com.autobackup".into(), tenants: vec!["*".into()] }).unwrap();
        let spool = Spool::open(&dir.path().join("spool"), 1 << 40).unwrap();
        let state = Arc::new(RelayState {
            store: Arc::new(audit_relay::store::sqlite::SqliteStore::new(spool.clone(), registry)),
            catalog: Arc::new(Catalog::embedded()),
            max_body_bytes: 5 << 20,
            max_events: 1000,
            admin_token_sha256: None,
            metrics: Default::default(),
            console: audit_relay::api::console::sessions::Sessions::new(""),
            verify_with: None,
            trails: None,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move { axum::serve(listener, router(state)).await });

        let needed = (secs as usize * 200_000).div_ceil(PER_REQUEST);
        let sample_len = event(0).to_string().len();
        let requests: Vec<Vec<u8>> = (0..needed)
            .map(|r| {
                let events: Vec<serde_json::Value> = (0..PER_REQUEST).map(|i| event(r * PER_REQUEST + i)).collect();
                let body = serde_json::to_string(&events).unwrap();
                format!(
                    "POST /v1/tenants/acme/events HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .into_bytes()
            })
            .collect();
        let requests = Arc::new(requests);
        let next = Arc::new(AtomicUsize::new(0));
        let commits_before = spool.commits();
        let started = Instant::now();
        let deadline = started + Duration::from_secs(secs);
        let tasks: Vec<_> = (0..clients)
            .map(|_| {
                let (requests, next, host) = (requests.clone(), next.clone(), host.clone());
                tokio::spawn(async move {
                    let mut conn = BufReader::new(tokio::net::TcpStream::connect(&host).await.unwrap());
                    let mut done = 0usize;
                    while Instant::now() < deadline {
                        let Some(request) = requests.get(next.fetch_add(1, Ordering::Relaxed)) else { break };
                        assert_eq!(roundtrip(&mut conn, request).await, 202);
                        done += PER_REQUEST;
                    }
                    done
                })
            })
            .collect();
        let mut events = 0;
        for t in tasks {
            events += t.await.unwrap();
        }
        let elapsed = started.elapsed().as_secs_f64();
        let api_rate = events as f64 / elapsed;
        let commits = spool.commits() - commits_before;

        // Baseline: the spool alone, same events and concurrency.
        let texts: Arc<Vec<String>> = Arc::new((0..PER_REQUEST).map(|i| event(i).to_string()).collect());
        let counter = Arc::new(AtomicUsize::new(0));
        let base_started = Instant::now();
        let base_deadline = base_started + Duration::from_secs(secs.min(4));
        let tasks: Vec<_> = (0..clients)
            .map(|_| {
                let (spool, texts, counter) = (spool.clone(), texts.clone(), counter.clone());
                tokio::spawn(async move {
                    let mut done = 0usize;
                    while Instant::now() < base_deadline {
                        let r = counter.fetch_add(1, Ordering::Relaxed);
                        let batch = texts
                            .iter()
                            .enumerate()
                            .map(|(i, t)| NewEvent { tenant: "base".into(), source: "s".into(), uid: format!("{r}-{i}"), event_data: t.clone() })
                            .collect();
                        spool.append(batch).await.unwrap();
                        done += PER_REQUEST;
                    }
                    done
                })
            })
            .collect();
        let mut base_events = 0;
        for t in tasks {
            base_events += t.await.unwrap();
        }
        let base_rate = base_events as f64 / base_started.elapsed().as_secs_f64();
        println!("relay durable ingest over loopback, {clients} clients, {PER_REQUEST} events x ~{sample_len} B per request, {secs}s");
        println!("  api:      {api_rate:>9.0} events/s  {:>6.0} fsyncs/s (commits)", commits as f64 / elapsed);
        println!("  baseline (spool alone, same events and concurrency): {base_rate:>9.0} events/s");
        println!("  api / baseline: {:.2}", api_rate / base_rate);
    });
}
