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
    config::{VENDOR_ACCESS_KEY_ID, VENDOR_SECRET_ACCESS_KEY},
    sigv4,
};
use audit_relay::{
    registry::{DeliveryMode, Grant, Tenant},
    spool::State,
};
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
pub(crate) async fn read_message(stream: &mut TcpStream) -> Option<(String, Vec<u8>)> {
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

pub(crate) fn headers_of(head: &str) -> Vec<(String, String)> {
    head.lines().skip(1).filter_map(|l| l.split_once(": ").map(|(k, v)| (k.to_owned(), v.to_owned()))).collect()
}

pub(crate) fn message(first_line: &str, headers: &[(String, String)], body: &[u8]) -> Vec<u8> {
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

pub(crate) async fn forward(upstream: &str, request: &[u8]) -> Option<(String, Vec<u8>)> {
    let mut conn = TcpStream::connect(upstream).await.ok()?;
    conn.write_all(request).await.ok()?;
    read_message(&mut conn).await
}

pub(crate) fn answer(status: &str, error_type: &str) -> Vec<u8> {
    let body = json!({"message": "injected by the fault proxy"}).to_string();
    let headers = vec![
        ("Content-Type".to_owned(), "application/json".to_owned()),
        ("x-amzn-ErrorType".to_owned(), error_type.to_owned()),
        ("Content-Length".to_owned(), body.len().to_string()),
        ("Connection".to_owned(), "close".to_owned()),
    ];
    message(&format!("HTTP/1.1 {status}"), &headers, body.as_bytes())
}

/// What a planned fault does to a call ([`start_planned_proxy`]).
#[derive(Debug, Clone)]
pub(crate) enum Act {
    /// Forward it and its answer.
    Pass,
    /// Answer this without forwarding.
    Answer(Vec<u8>),
    /// Close the connection without forwarding or answering.
    Drop,
    /// Forward it, then close without answering (the answer is lost).
    LoseAnswer,
    /// Neither forward nor answer, and keep the connection open: a server that hangs.
    Hang,
}

/// A fault-injecting HTTP proxy in front of `upstream` (a test double: the faults must be injected
/// on purpose). The n-th call that `selects` picks (by its head) gets `plan[n]`, what `act` makes
/// of it (then calls pass); every other call is forwarded untouched. `noted` hears of each fault
/// injected with the call's head and body, and whether the lake took a call whose answer was lost.
/// Returns the proxy's endpoint.
/// (`runtime`: where it runs; a handle, so that async tests can start one too.)
pub(crate) fn start_planned_proxy<F: Copy + PartialEq + Send + Sync + 'static>(
    runtime: &tokio::runtime::Handle,
    upstream: String,
    plan: Vec<F>,
    selects: fn(&str) -> bool,
    act: fn(F) -> Act,
    noted: impl Fn(F, &str, &[u8], bool) + Send + Sync + 'static,
) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let counter = Arc::new(AtomicUsize::new(0));
    let noted = Arc::new(noted);
    runtime.spawn(async move {
        let listener = TcpListener::from_std(listener).unwrap();
        while let Ok((mut conn, _)) = listener.accept().await {
            let (upstream, counter, plan, noted) = (upstream.clone(), counter.clone(), plan.clone(), noted.clone());
            tokio::spawn(async move {
                let Some((head, body)) = read_message(&mut conn).await else { return };
                let first = head.lines().next().unwrap_or("").to_owned();
                let request = message(&first, &headers_of(&head), &body);
                let fault =
                    selects(&head).then(|| plan.get(counter.fetch_add(1, Ordering::Relaxed)).copied()).flatten();
                let reply = match fault.map(|f| (f, act(f))) {
                    None | Some((_, Act::Pass)) => {
                        if let Some(f) = fault {
                            noted(f, &head, &body, false);
                        }
                        match forward(&upstream, &request).await {
                            Some((h, b)) => respond(&h, &b),
                            None => return,
                        }
                    }
                    Some((f, Act::Answer(reply))) => {
                        noted(f, &head, &body, false);
                        reply
                    }
                    Some((f, Act::Drop)) => {
                        noted(f, &head, &body, false);
                        return;
                    }
                    Some((f, Act::Hang)) => {
                        noted(f, &head, &body, false);
                        std::future::pending::<()>().await;
                        return;
                    }
                    Some((f, Act::LoseAnswer)) => {
                        let taken =
                            forward(&upstream, &request).await.is_some_and(|(h, _)| h.starts_with("HTTP/1.1 200"));
                        noted(f, &head, &body, taken);
                        return;
                    }
                };
                let _ = conn.write_all(&reply).await;
            });
        }
    });
    endpoint
}

/// What the proxy does with one PutAuditEvents call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Forward it and its answer.
    Pass,
    /// Answer 503 ServiceUnavailableException without forwarding.
    Unavailable,
    /// Answer 400 ThrottlingException without forwarding.
    Throttle,
    /// Close the connection without forwarding or answering.
    Drop,
    /// Forward every other entry and answer the rest as per-entry Throttling.
    Partial,
    /// Never answer, and never forward: the relay's attempt timeout must give up on it.
    Hang,
    /// Answer every entry as refused for good (`InvalidData`) without forwarding.
    Reject,
}

/// One PutAuditEvents call, as the plan sees it.
struct Call {
    /// Its number, from 0, across the proxy's life.
    n: usize,
    /// The channel it is for.
    channel_arn: String,
}

type Plan = Arc<dyn Fn(&Call) -> Fault + Send + Sync>;

/// The proxy's record: faults injected, and how often the lake acknowledged each entry id.
#[derive(Default)]
struct Record {
    faults: Vec<Fault>,
    acknowledged: BTreeMap<String, usize>,
}

/// The proxy's handle.
struct Proxy {
    endpoint: String,
    record: Arc<Mutex<Record>>,
    /// While set, every connection is closed at once, unread: the lake is unreachable.
    down: Arc<std::sync::atomic::AtomicBool>,
}

impl Proxy {
    fn injected(&self, fault: Fault) -> usize {
        self.record.lock().unwrap().faults.iter().filter(|f| **f == fault).count()
    }

    /// The relay never re-sent an entry the lake had acknowledged: correctness that does not lean
    /// on the lake's de-duplication (AWS has none).
    fn assert_no_entry_acknowledged_twice(&self) {
        let record = self.record.lock().unwrap();
        let twice: Vec<_> = record.acknowledged.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "entries acknowledged more than once: {twice:?}");
    }
}

/// Starts the proxy in front of `upstream` (host:port), applying `plan` to PutAuditEvents calls.
async fn start_proxy(upstream: String, plan: Plan) -> Proxy {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let counter = Arc::new(AtomicUsize::new(0));
    let record: Arc<Mutex<Record>> = Arc::default();
    let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (kept, is_down) = (record.clone(), down.clone());
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            if is_down.load(Ordering::Relaxed) {
                drop(conn);
                continue;
            }
            let (upstream, counter, record, plan) = (upstream.clone(), counter.clone(), kept.clone(), plan.clone());
            tokio::spawn(async move {
                let Some((head, body)) = read_message(&mut conn).await else { return };
                let first = head.lines().next().unwrap_or("").to_owned();
                let target = first.split(' ').nth(1).unwrap_or("").to_owned();
                let reply = if target.starts_with("/PutAuditEvents") {
                    let channel_arn = target
                        .split_once("channelArn=")
                        .map(|(_, v)| v.split('&').next().unwrap_or(""))
                        .map(percent_decode)
                        .unwrap_or_default();
                    let call = Call { n: counter.fetch_add(1, Ordering::Relaxed), channel_arn };
                    let fault = plan(&call);
                    if fault != Fault::Pass {
                        record.lock().unwrap().faults.push(fault);
                    }
                    let forwarded = match fault {
                        Fault::Unavailable => {
                            return answer_and_close(
                                conn,
                                answer("503 Service Unavailable", "ServiceUnavailableException"),
                            )
                            .await;
                        }
                        Fault::Throttle => {
                            return answer_and_close(conn, answer("400 Bad Request", "ThrottlingException")).await;
                        }
                        Fault::Drop => return,
                        Fault::Reject => {
                            let request: Value = serde_json::from_slice(&body).unwrap_or_default();
                            let failed: Vec<Value> = request["auditEvents"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .map(|e| json!({"id": e["id"], "errorCode": "InvalidData", "errorMessage": "refused by the fault proxy"}))
                                .collect();
                            let body = json!({"successful": [], "failed": failed}).to_string();
                            let headers = vec![
                                ("Content-Type".to_owned(), "application/json".to_owned()),
                                ("Content-Length".to_owned(), body.len().to_string()),
                                ("Connection".to_owned(), "close".to_owned()),
                            ];
                            return answer_and_close(conn, message("HTTP/1.1 200 OK", &headers, body.as_bytes())).await;
                        }
                        Fault::Hang => {
                            tokio::time::sleep(std::time::Duration::from_secs(120)).await;
                            return;
                        }
                        Fault::Partial => partial(&upstream, &first, &target, &head, &body).await,
                        Fault::Pass => forward(&upstream, &message(&first, &headers_of(&head), &body)).await,
                    };
                    forwarded.map(|(h, b)| {
                        if let Ok(answer) = serde_json::from_slice::<Value>(&b) {
                            let mut record = record.lock().unwrap();
                            for ok in answer["successful"].as_array().into_iter().flatten() {
                                *record.acknowledged.entry(ok["id"].as_str().unwrap_or("").to_owned()).or_default() +=
                                    1;
                            }
                        }
                        respond(&h, &b)
                    })
                } else {
                    forward(&upstream, &message(&first, &headers_of(&head), &body)).await.map(|(h, b)| respond(&h, &b))
                };
                if let Some(reply) = reply {
                    let _ = conn.write_all(&reply).await;
                }
            });
        }
    });
    Proxy { endpoint, record, down }
}

async fn answer_and_close(mut conn: TcpStream, reply: Vec<u8>) {
    let _ = conn.write_all(&reply).await;
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

pub(crate) fn respond(head: &str, body: &[u8]) -> Vec<u8> {
    let mut headers = headers_of(head);
    set(&mut headers, "Connection", "close".into());
    message(head.lines().next().unwrap_or("HTTP/1.1 502 Bad Gateway"), &headers, body)
}

/// An entry with its position in the request.
type Indexed = (usize, Value);

/// Withholds every other entry from the lake and answers them as per-entry `Throttling`; returns
/// the answer's head and body.
async fn partial(upstream: &str, first: &str, target: &str, head: &str, body: &[u8]) -> Option<(String, Vec<u8>)> {
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
    let head = String::from_utf8(message(response_head.lines().next()?, &headers, &[])).ok()?;
    Some((head, body))
}

/// A customer store and channel with a resource policy letting the vendor publish; (store, channel).
async fn open_channel(endpoint: &str, name: &'static str) -> (String, String) {
    let e = endpoint.to_owned();
    tokio::task::spawn_blocking(move || {
        let (store, channel) = store_and_channel(&e, name);
        let policy = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"855341727128"}},"Action":"cloudtrail-data:PutAuditEvents","Resource":"{channel}"}}]}}"#
        );
        let (status, body) = lake_call(&e, "cloudtrail", "PutResourcePolicy", &json!({"ResourceArn": channel, "ResourcePolicy": policy}).to_string());
        assert_eq!(status, 200, "{body}");
        (store, channel)
    })
    .await
    .unwrap()
}

const SOURCE: &str = "com.nordcloudapp.com.autopatcher";

/// Registers tenant `id` on `channel` (resource-policy mode) with a token for AutoPatcher.
fn tenant(registry: &audit_relay::registry::Registry, id: &str, channel: &str) -> String {
    registry
        .put_tenant(&Tenant {
            id: id.into(),
            channel_arn: channel.into(),
            destination: Default::default(),
            delivery: DeliveryMode::ResourcePolicy { external_id: None },
            applications: vec![SOURCE.into()],
            paused: None,
            held: false,
            saved_queries: Vec::new(),
        })
        .unwrap();
    registry.issue_token(&Grant { name: "p".into(), source: SOURCE.into(), tenants: vec![id.into()] }).unwrap()
}

/// Posts `count` AutoPatcher events numbered from `first` in requests of up to 100; returns their UIDs.
async fn send(
    state: &Arc<audit_relay::api::RelayState>,
    tenant: &str,
    token: &str,
    first: usize,
    count: usize,
) -> Vec<String> {
    let mut uids = Vec::new();
    for chunk in (first..first + count).collect::<Vec<_>>().chunks(100) {
        let events: Vec<Value> = chunk
            .iter()
            .map(|i| {
                let uid = format!("0190a6b5-3333-7a3f-9d2b-{i:012}");
                uids.push(uid.clone());
                json!({"version": "v1", "userIdentity": {"type": "SERVICE", "principalId": "p"}, "eventSource": SOURCE,
                       "eventName": "baselinePatching.started", "eventTime": "2024-07-12T02:00:00Z", "UID": uid, "requestParameters": {"machinesCount": 1}})
            })
            .collect();
        let (status, body) = post(state, tenant, token, &json!({"events": events})).await;
        assert_eq!(status, 202, "{body}");
    }
    uids
}

/// The UIDs in a store and how often each is there.
fn stored(dir: &std::path::Path, store: &str) -> BTreeMap<String, usize> {
    let db = dir.join("lake").join(audit_lake::store::DB_FILE);
    let mut stored: BTreeMap<String, usize> = BTreeMap::new();
    audit_lake::columnar::scan_store(&db, store, |record| {
        let value: Value = serde_json::from_str(record).unwrap();
        *stored.entry(value["eventData"]["UID"].as_str().unwrap().to_owned()).or_default() += 1;
        true
    })
    .unwrap();
    stored
}

/// Each UID exactly once in `stored`, and nothing else.
fn assert_exactly_once(stored: &BTreeMap<String, usize>, uids: &[String]) {
    let mut expected: Vec<&String> = uids.iter().collect();
    expected.sort();
    expected.dedup();
    assert_eq!(stored.keys().collect::<Vec<_>>(), expected, "every event is stored, and nothing else");
    assert!(stored.values().all(|n| *n == 1), "none is stored twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_arrives_once_through_503s_throttling_dropped_connections_and_partial_failures() {
    let dir = tempfile::tempdir().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let lake_endpoint = start_lake(dir.path(), &stop).await;
    let (store, channel) = open_channel(&lake_endpoint, "faults").await;
    let plan: Plan = Arc::new(|call: &Call| match call.n % 6 {
        1 => Fault::Unavailable,
        2 => Fault::Throttle,
        3 => Fault::Drop,
        4 => Fault::Partial,
        _ => Fault::Pass,
    });
    let proxy = start_proxy(lake_endpoint.trim_start_matches("http://").to_owned(), plan).await;

    let (state, spool, registry, deliverer) = relay(dir.path(), &proxy.endpoint, Arc::new(Catalog::embedded()));
    let token = tenant(&registry, "faulty", &channel);
    let delivering = tokio::spawn(deliverer.run(stop.clone()));
    let uids = send(&state, "faulty", &token, 0, 300).await;
    eventually("all 300 events are delivered", || spool.counts().unwrap() == (0, 300, 0)).await;
    stop.cancel();
    delivering.await.unwrap();

    for fault in [Fault::Unavailable, Fault::Throttle, Fault::Drop, Fault::Partial] {
        assert!(proxy.injected(fault) > 0, "no {fault:?} fault was injected");
    }
    assert!(
        uids.iter().any(|uid| spool.status("faulty", SOURCE, uid).unwrap().unwrap().attempts > 0),
        "retries are on record"
    );
    assert_exactly_once(&stored(dir.path(), &store), &uids);
    proxy.assert_no_entry_acknowledged_twice();
}

/// A throttling storm on one tenant's channel (three calls in five refused, one in five partly, for
/// thousands of events) delays neither
/// the other tenant nor loses anything: the calm tenant is done while the stormy one still waits,
/// and in the end both stores hold each of their events once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttling_storm_on_one_tenant_neither_delays_another_nor_loses_events() {
    let dir = tempfile::tempdir().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let lake_endpoint = start_lake(dir.path(), &stop).await;
    let (stormy_store, stormy_channel) = open_channel(&lake_endpoint, "stormy").await;
    let (calm_store, calm_channel) = open_channel(&lake_endpoint, "calm").await;
    let storm = stormy_channel.clone();
    let plan: Plan = Arc::new(move |call: &Call| {
        if call.channel_arn != storm {
            return Fault::Pass;
        }
        match call.n % 5 {
            0 => Fault::Pass,
            1 => Fault::Partial,
            _ => Fault::Throttle,
        }
    });
    let proxy = start_proxy(lake_endpoint.trim_start_matches("http://").to_owned(), plan).await;
    let (state, spool, registry, deliverer) = relay(dir.path(), &proxy.endpoint, Arc::new(Catalog::embedded()));
    let stormy_token = tenant(&registry, "stormy", &stormy_channel);
    let calm_token = tenant(&registry, "calm", &calm_channel);
    let delivering = tokio::spawn(deliverer.run(stop.clone()));
    let stormy = send(&state, "stormy", &stormy_token, 0, 2000).await;
    let calm = send(&state, "calm", &calm_token, 100_000, 2000).await;

    eventually("the calm tenant's events are delivered", || !spool.depth().contains_key("calm")).await;
    let stormy_left = spool.depth().get("stormy").copied().unwrap_or(0);
    assert!(stormy_left > 0, "the calm tenant finished while the storm still held events back");
    eventually("the stormy tenant's events are delivered", || spool.depth().is_empty()).await;
    stop.cancel();
    delivering.await.unwrap();

    assert!(proxy.injected(Fault::Throttle) > 20, "a storm: {} throttled calls", proxy.injected(Fault::Throttle));
    assert_exactly_once(&stored(dir.path(), &stormy_store), &stormy);
    assert_exactly_once(&stored(dir.path(), &calm_store), &calm);
    proxy.assert_no_entry_acknowledged_twice();
    eprintln!("stormy events still queued when the calm tenant was done: {stormy_left}");
}

/// A lake that hangs (accepts, never answers) and then is unreachable for a while: the relay gives
/// up on each call after its attempt timeout, keeps accepting, and delivers everything once when
/// the lake is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_then_unreachable_lake_delays_delivery_but_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let lake_endpoint = start_lake(dir.path(), &stop).await;
    let (store, channel) = open_channel(&lake_endpoint, "outage").await;
    let plan: Plan = Arc::new(|call: &Call| if call.n < 4 { Fault::Hang } else { Fault::Pass });
    let proxy = start_proxy(lake_endpoint.trim_start_matches("http://").to_owned(), plan).await;
    let (state, spool, registry, deliverer) = relay(dir.path(), &proxy.endpoint, Arc::new(Catalog::embedded()));
    let token = tenant(&registry, "outage", &channel);
    let delivering = tokio::spawn(deliverer.run(stop.clone()));

    // The first calls hang until the attempt timeout; the events wait, then go through.
    let mut uids = send(&state, "outage", &token, 0, 400).await;
    eventually("the hung events are delivered after the timeouts", || spool.depth().is_empty()).await;
    assert_eq!(proxy.injected(Fault::Hang), 4);
    let retried = uids.iter().filter(|u| spool.status("outage", SOURCE, u).unwrap().unwrap().attempts > 0).count();
    assert!(retried > 0, "timed-out calls are recorded as retries");

    // Then the lake is unreachable; ingest goes on, nothing is delivered, nothing is lost.
    proxy.down.store(true, Ordering::Relaxed);
    uids.extend(send(&state, "outage", &token, 400, 600).await);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(spool.depth().get("outage").copied(), Some(600), "all kept while the lake is down");
    proxy.down.store(false, Ordering::Relaxed);
    eventually("everything is delivered once the lake is back", || spool.depth().is_empty()).await;
    stop.cancel();
    delivering.await.unwrap();

    assert_exactly_once(&stored(dir.path(), &store), &uids);
    proxy.assert_no_entry_acknowledged_twice();
}

/// The customer deletes the channel while events flow: the tenant pauses with ChannelNotFound and
/// keeps every undelivered event; the operator points the tenant at the customer's new channel, and
/// the rest arrive there. Across both stores each event is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_deleted_mid_stream_pauses_the_tenant_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let lake_endpoint = start_lake(dir.path(), &stop).await;
    let (old_store, old_channel) = open_channel(&lake_endpoint, "doomed").await;
    let proxy =
        start_proxy(lake_endpoint.trim_start_matches("http://").to_owned(), Arc::new(|_: &Call| Fault::Pass)).await;
    let (state, spool, registry, deliverer) = relay(dir.path(), &proxy.endpoint, Arc::new(Catalog::embedded()));
    let token = tenant(&registry, "moving", &old_channel);
    let delivering = tokio::spawn(deliverer.run(stop.clone()));

    let mut uids = send(&state, "moving", &token, 0, 2000).await;
    eventually("delivery has started", || spool.depth().get("moving").is_none_or(|n| *n < 2000)).await;
    let e = lake_endpoint.clone();
    let c = old_channel.clone();
    tokio::task::spawn_blocking(move || {
        let (status, body) = lake_call(&e, "cloudtrail", "DeleteChannel", &json!({"Channel": c}).to_string());
        assert_eq!(status, 200, "{body}");
    })
    .await
    .unwrap();
    uids.extend(send(&state, "moving", &token, 2000, 500).await);
    eventually("the tenant is paused", || registry.tenant("moving").unwrap().unwrap().paused.is_some()).await;
    let paused = registry.tenant("moving").unwrap().unwrap();
    assert!(paused.paused.as_deref().unwrap().contains("ChannelNotFound"), "{paused:?}");
    let (_, _, dead) = spool.counts().unwrap();
    assert_eq!(dead, 0, "nothing is dead-lettered for a missing channel");
    let waiting = spool.depth().get("moving").copied().unwrap_or(0);
    assert!(waiting >= 500, "the events after the deletion wait: {waiting}");

    // The customer makes a new channel; the operator updates the tenant. The probe finds it working.
    let (new_store, new_channel) = open_channel(&lake_endpoint, "reborn").await;
    registry
        .update_tenant("moving", |t| {
            t.channel_arn = new_channel.clone();
            true
        })
        .unwrap();
    eventually("the rest are delivered to the new channel", || spool.depth().is_empty()).await;
    eventually("the tenant is active again", || registry.tenant("moving").unwrap().unwrap().paused.is_none()).await;
    stop.cancel();
    delivering.await.unwrap();

    let mut both = stored(dir.path(), &old_store);
    for (uid, n) in stored(dir.path(), &new_store) {
        *both.entry(uid).or_default() += n;
    }
    assert_exactly_once(&both, &uids);
    proxy.assert_no_entry_acknowledged_twice();
    eprintln!("events waiting when the channel was gone: {waiting}");
}

/// `klarity-audit dlq list | replay` against a relay process, over its admin API: events the
/// channel refuses for good are listed with their code and message; once the cause is gone, a
/// replay delivers them. Without the admin token the commands say what is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_and_replayed_from_the_command_line() {
    use crate::support::{Dir, RelayProcess, http_post};
    let work = Dir::new();
    let stop = tokio_util::sync::CancellationToken::new();
    let lake_endpoint = start_lake(work.path(), &stop).await;
    let (store, channel) = open_channel(&lake_endpoint, "refusing").await;
    let refusing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let switch = refusing.clone();
    let plan: Plan = Arc::new(move |_: &Call| if switch.load(Ordering::Relaxed) { Fault::Reject } else { Fault::Pass });
    let proxy = start_proxy(lake_endpoint.trim_start_matches("http://").to_owned(), plan).await;

    let admin_token = "kadm_the-operators-secret";
    let hash = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(admin_token.as_bytes()))
    };
    let dir = work.path().to_owned();
    let endpoint = proxy.endpoint.clone();
    let (uids, letters, replayed, after, missing) = tokio::task::spawn_blocking(move || {
        let data = dir.join("relay");
        let data_dir = data.to_str().unwrap();
        let run = |args: &[&str], env: &[(&str, &str)]| {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_klarity-audit"))
                .args(args)
                .env_remove("KLARITY_ADMIN_TOKEN")
                .envs(env.iter().copied())
                .output()
                .unwrap();
            (out.status.code().unwrap_or(-1), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
        };
        let (code, _, err) = run(&["tenants", "add", "acme", "--channel-arn", &channel, "--resource-policy", "--data-dir", data_dir], &[]);
        assert_eq!(code, 0, "{err}");
        let (code, out, err) = run(&["tokens", "issue", "--app", SOURCE, "--tenants", "acme", "--data-dir", data_dir], &[]);
        assert_eq!(code, 0, "{err}");
        let token = out.lines().nth(1).unwrap().to_owned();
        let relay = RelayProcess::start_with(&data, &endpoint, &[("KLARITY_RELAY__ADMIN_TOKEN_SHA256", &hash)]);
        let url = format!("http://{}", relay.address);
        let mut uids = Vec::new();
        let events: Vec<Value> = (0..3)
            .map(|i| {
                let uid = format!("0190a6b5-5555-7a3f-9d2b-{i:012}");
                uids.push(uid.clone());
                json!({"version": "v1", "userIdentity": {"type": "SERVICE", "principalId": "p"}, "eventSource": SOURCE,
                       "eventName": "baselinePatching.started", "eventTime": "2024-07-12T02:00:00Z", "UID": uid, "requestParameters": {"machinesCount": 1}})
            })
            .collect();
        let (status, body) = http_post(&relay.address, "/v1/tenants/acme/events", &token, &json!(events).to_string());
        assert_eq!(status, 202, "{body}");
        let admin = [("KLARITY_ADMIN_TOKEN", admin_token), ("KLARITY_RELAY_URL", url.as_str())];
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let letters = loop {
            let (code, out, err) = run(&["dlq", "list", "acme", "--json"], &admin);
            assert_eq!(code, 0, "{err}");
            let listed: Value = serde_json::from_str(&out).unwrap();
            if listed["deadLetters"].as_array().unwrap().len() == 3 {
                break listed;
            }
            assert!(std::time::Instant::now() < deadline, "the dead letters never appeared: {out}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        };
        let (code, table, err) = run(&["dlq", "list", "acme"], &admin);
        assert_eq!(code, 0, "{err}");
        assert!(table.contains("InvalidData") && table.contains("refused by the fault proxy"), "{table}");
        refusing.store(false, Ordering::Relaxed);
        let replayed = run(&["dlq", "replay", "acme"], &admin);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let after = loop {
            let (_, out, _) = run(&["dlq", "list", "acme"], &admin);
            if out.contains("No dead letters") || std::time::Instant::now() > deadline {
                break out;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        };
        let missing = run(&["dlq", "list", "acme"], &[("KLARITY_RELAY_URL", url.as_str())]);
        drop(relay);
        (uids, letters, replayed, after, missing)
    })
    .await
    .unwrap();

    for letter in letters["deadLetters"].as_array().unwrap() {
        assert_eq!((letter["errorCode"].as_str(), letter["eventSource"].as_str()), (Some("InvalidData"), Some(SOURCE)));
        assert!(uids.contains(&letter["uid"].as_str().unwrap().to_owned()));
    }
    assert_eq!(replayed.0, 0, "{}", replayed.2);
    assert_eq!(replayed.1, "Replayed 3 dead letter(s) of acme; they are queued for delivery again.\n");
    assert_eq!(after, "No dead letters for acme.\n");
    assert_eq!(missing.0, 2);
    assert!(missing.2.contains("KLARITY_ADMIN_TOKEN"), "{}", missing.2);
    let mut delivered = BTreeMap::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while delivered.len() < 3 && std::time::Instant::now() < deadline {
        delivered = stored(work.path(), &store);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_exactly_once(&delivered, &uids);
    stop.cancel();
}

/// A graceful shutdown in the middle of delivery finishes and records the calls in flight: every
/// event the lake stored is marked delivered in the spool, so nothing is sent twice after a restart,
/// and a restarted deliverer sends the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_shutdown_settles_the_calls_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let lake_stop = tokio_util::sync::CancellationToken::new();
    let lake_endpoint = start_lake(dir.path(), &lake_stop).await;
    let (store, channel) = open_channel(&lake_endpoint, "stopping").await;
    let proxy =
        start_proxy(lake_endpoint.trim_start_matches("http://").to_owned(), Arc::new(|_: &Call| Fault::Pass)).await;
    let (state, spool, registry, deliverer) = relay(dir.path(), &proxy.endpoint, Arc::new(Catalog::embedded()));
    let token = tenant(&registry, "stopping", &channel);
    let uids = send(&state, "stopping", &token, 0, 5000).await;

    let stop = tokio_util::sync::CancellationToken::new();
    let delivering = tokio::spawn(deliverer.clone().run(stop.clone()));
    eventually("delivery is under way", || spool.depth().get("stopping").is_some_and(|n| *n < 4000)).await;
    stop.cancel();
    delivering.await.unwrap();

    let in_lake = stored(dir.path(), &store);
    let delivered: Vec<&String> = uids
        .iter()
        .filter(|u| spool.status("stopping", SOURCE, u).unwrap().unwrap().state == State::Delivered)
        .collect();
    assert!(delivered.len() < uids.len(), "the shutdown came before the end");
    assert_eq!(in_lake.len(), delivered.len(), "every stored event is recorded as delivered, and only those");
    assert!(delivered.iter().all(|u| in_lake.contains_key(*u)));

    let stop = tokio_util::sync::CancellationToken::new();
    let delivering = tokio::spawn(deliverer.run(stop.clone()));
    eventually("a restarted deliverer sends the rest", || spool.depth().is_empty()).await;
    stop.cancel();
    delivering.await.unwrap();
    assert_exactly_once(&stored(dir.path(), &store), &uids);
    proxy.assert_no_entry_acknowledged_twice();
    lake_stop.cancel();
}
