//! Delivery through faults: a fault-injecting HTTP proxy between the relay's delivery and the lake
//! (a test double, because the faults must be injected on purpose) answers some PutAuditEvents
//! calls with 503, some with a throttling error, drops some connections without an answer, and
//! turns some into partial failures — it withholds half the entries from the lake and answers
//! them as per-entry `Throttling`, re-signing the shortened request so the lake still verifies it.
//! Every event still ends up in the lake exactly once, and the retries are on record.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use audit_event::Catalog;
use audit_lake::{
    api::sigv4,
    config::{VENDOR_ACCESS_KEY_ID, VENDOR_SECRET_ACCESS_KEY},
};
use audit_relay::registry::{DeliveryMode, Grant, Tenant};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use crate::{
    relay_e2e::{eventually, post, relay, start_lake, store_and_channel},
    support::lake_call,
};

/// Reads one HTTP/1.1 message (head and a Content-Length body) from a stream.
async fn read_message(stream: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length = head
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .map(|(_, v)| v.trim().parse::<usize>().unwrap_or(0))
        })
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((head, body))
}

fn headers_of(head: &str) -> Vec<(String, String)> {
    head.lines().skip(1).filter_map(|l| l.split_once(": ").map(|(k, v)| (k.to_owned(), v.to_owned()))).collect()
}

fn message(first_line: &str, headers: &[(String, String)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{first_line}\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

fn set(headers: &mut Vec<(String, String)>, name: &str, value: String) {
    match headers.iter_mut().find(|(k, _)| k.eq_ignore_ascii_case(name)) {
        Some(h) => h.1 = value,
        None => headers.push((name.to_owned(), value)),
    }
}

async fn forward(upstream: &str, request: &[u8]) -> Option<(String, Vec<u8>)> {
    let mut conn = TcpStream::connect(upstream).await.ok()?;
    conn.write_all(request).await.ok()?;
    read_message(&mut conn).await
}

fn answer(status: &str, error_type: &str) -> Vec<u8> {
    let body = json!({"message": "injected by the fault proxy"}).to_string();
    let headers = vec![
        ("Content-Type".to_owned(), "application/json".to_owned()),
        ("x-amzn-ErrorType".to_owned(), error_type.to_owned()),
        ("Content-Length".to_owned(), body.len().to_string()),
        ("Connection".to_owned(), "close".to_owned()),
    ];
    message(&format!("HTTP/1.1 {status}"), &headers, body.as_bytes())
}

/// Starts the proxy; returns its endpoint and the log of faults injected.
async fn start_proxy(upstream: String) -> (String, Arc<Mutex<Vec<&'static str>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let counter = Arc::new(AtomicUsize::new(0));
    let log: Arc<Mutex<Vec<&'static str>>> = Arc::default();
    let faults = log.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let (upstream, counter, log) = (upstream.clone(), counter.clone(), faults.clone());
            tokio::spawn(async move {
                let Some((head, body)) = read_message(&mut conn).await else { return };
                let first = head.lines().next().unwrap_or("").to_owned();
                let target = first.split(' ').nth(1).unwrap_or("").to_owned();
                let reply = if target.starts_with("/PutAuditEvents") {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    match n % 6 {
                        1 => {
                            log.lock().unwrap().push("503");
                            Some(answer("503 Service Unavailable", "ServiceUnavailableException"))
                        }
                        2 => {
                            log.lock().unwrap().push("throttled");
                            Some(answer("400 Bad Request", "ThrottlingException"))
                        }
                        3 => {
                            log.lock().unwrap().push("dropped");
                            None
                        }
                        4 => {
                            log.lock().unwrap().push("partial");
                            partial(&upstream, &first, &target, &head, &body).await
                        }
                        _ => forward(&upstream, &message(&first, &headers_of(&head), &body))
                            .await
                            .map(|(h, b)| respond(&h, &b)),
                    }
                } else {
                    forward(&upstream, &message(&first, &headers_of(&head), &body)).await.map(|(h, b)| respond(&h, &b))
                };
                if let Some(reply) = reply {
                    let _ = conn.write_all(&reply).await;
                }
            });
        }
    });
    (endpoint, log)
}

fn respond(head: &str, body: &[u8]) -> Vec<u8> {
    let mut headers = headers_of(head);
    set(&mut headers, "Connection", "close".into());
    message(head.lines().next().unwrap_or("HTTP/1.1 502 Bad Gateway"), &headers, body)
}

/// An entry with its position in the request.
type Indexed = (usize, Value);

/// Withholds every other entry from the lake and answers them as per-entry `Throttling`.
async fn partial(upstream: &str, first: &str, target: &str, head: &str, body: &[u8]) -> Option<Vec<u8>> {
    let mut request: Value = serde_json::from_slice(body).ok()?;
    let entries = request["auditEvents"].as_array()?.clone();
    let (kept, withheld): (Vec<Indexed>, Vec<Indexed>) = entries.into_iter().enumerate().partition(|(i, _)| i % 2 == 0);
    request["auditEvents"] = Value::Array(kept.into_iter().map(|(_, e)| e).collect());
    let new_body = request.to_string().into_bytes();
    let mut headers = headers_of(head);
    set(&mut headers, "Content-Length", new_body.len().to_string());
    // Re-sign the shortened request as the relay would have (the tenant uses the vendor's key).
    let auth = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("authorization"))?.1.clone();
    let parsed = sigv4::parse_authorization(&auth).ok()?;
    let (signed, region) =
        (parsed.signed_headers.iter().map(|s| s.to_string()).collect::<Vec<_>>(), parsed.region.to_owned());
    let amz_date = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("x-amz-date"))?.1.clone();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let names: Vec<&str> = signed.iter().map(String::as_str).collect();
    let signable = sigv4::Signable { method: "POST", path, query, headers: &headers, body: &new_body };
    let new_auth = sigv4::authorization_header(
        &signable,
        VENDOR_ACCESS_KEY_ID,
        VENDOR_SECRET_ACCESS_KEY,
        &amz_date,
        &region,
        "cloudtrail-data",
        &names,
    )
    .ok()?;
    set(&mut headers, "Authorization", new_auth);
    let (response_head, response_body) = forward(upstream, &message(first, &headers, &new_body)).await?;
    let mut response: Value = serde_json::from_slice(&response_body).ok()?;
    let failed = response["failed"].as_array_mut()?;
    for (_, entry) in withheld {
        failed.push(json!({"id": entry["id"], "errorCode": "Throttling", "errorMessage": "injected partial failure"}));
    }
    let body = response.to_string().into_bytes();
    let mut headers = headers_of(&response_head);
    set(&mut headers, "Content-Length", body.len().to_string());
    set(&mut headers, "Connection", "close".into());
    Some(message(response_head.lines().next()?, &headers, &body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_arrives_once_through_503s_throttling_dropped_connections_and_partial_failures() {
    let dir = tempfile::tempdir().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let lake_endpoint = start_lake(dir.path(), &stop).await;
    let e = lake_endpoint.clone();
    let (store, channel) = tokio::task::spawn_blocking(move || {
        let (store, channel) = store_and_channel(&e, "faults");
        let policy = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"855341727128"}},"Action":"cloudtrail-data:PutAuditEvents","Resource":"{channel}"}}]}}"#
        );
        let (status, body) = lake_call(&e, "cloudtrail", "PutResourcePolicy", &json!({"ResourceArn": channel, "ResourcePolicy": policy}).to_string());
        assert_eq!(status, 200, "{body}");
        (store, channel)
    })
    .await
    .unwrap();
    let (proxy, faults) = start_proxy(lake_endpoint.trim_start_matches("http://").to_owned()).await;

    let (state, spool, registry, deliverer) = relay(dir.path(), &proxy, Arc::new(Catalog::embedded()));
    let source = "com.nordcloudapp.com.autopatcher";
    registry
        .put_tenant(&Tenant {
            id: "faulty".into(),
            channel_arn: channel,
            delivery: DeliveryMode::ResourcePolicy { external_id: None },
            applications: vec![source.into()],
            paused: None,
            held: false,
        })
        .unwrap();
    let token = registry
        .issue_token(&Grant { name: "p".into(), source: source.into(), tenants: vec!["faulty".into()] })
        .unwrap();
    let delivering = tokio::spawn(deliverer.run(stop.clone()));
    let mut uids = Vec::new();
    for batch in 0..15 {
        let events: Vec<Value> = (0..20)
            .map(|i| {
                let uid = format!("0190a6b5-3333-7a3f-9d2b-{:012}", batch * 20 + i);
                uids.push(uid.clone());
                json!({"version": "v1", "userIdentity": {"type": "SERVICE", "principalId": "p"}, "eventSource": source,
                       "eventName": "baselinePatching.started", "eventTime": "2024-07-12T02:00:00Z", "UID": uid, "requestParameters": {"machinesCount": 1}})
            })
            .collect();
        assert_eq!(post(&state, "faulty", &token, &json!({"events": events})).await.0, 202);
    }
    eventually("all 300 events are delivered", || spool.counts().unwrap() == (0, 300, 0)).await;
    stop.cancel();
    delivering.await.unwrap();

    let injected = faults.lock().unwrap().clone();
    for kind in ["503", "throttled", "dropped", "partial"] {
        assert!(injected.contains(&kind), "no {kind} fault was injected: {injected:?}");
    }
    assert!(
        uids.iter().any(|uid| spool.status("faulty", source, uid).unwrap().unwrap().attempts > 0),
        "retries are on record"
    );
    let db = dir.path().join("lake").join(audit_lake::store::DB_FILE);
    let mut stored: BTreeMap<String, usize> = BTreeMap::new();
    audit_lake::store::Store::scan_store(&db, &store, |record| {
        let value: Value = serde_json::from_str(record).unwrap();
        *stored.entry(value["eventData"]["UID"].as_str().unwrap().to_owned()).or_default() += 1;
        true
    })
    .unwrap();
    assert_eq!(stored.len(), 300);
    assert!(stored.values().all(|n| *n == 1));
    eprintln!("faults injected: {injected:?}");
}
