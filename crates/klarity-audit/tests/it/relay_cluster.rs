//! Several relays on one PostgreSQL database, as the seed deploys the publisher (a container
//! service behind a load balancer): producers spread batches over three `klarity-audit relay`
//! processes, as a load balancer would, and post a batch again to another relay when its answer
//! was lost, as a client would. Meanwhile relays are SIGKILLed and restarted (their tenants are
//! taken over by the others when their leases run out), or PostgreSQL itself is restarted. A
//! ledger of every event answered `202` is checked against the lake at the end: each one stored
//! exactly once, and (role mode) nothing sent twice.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::support::{Dir, LakeProcess, OwnPostgres, RelayProcess, fresh_database, http_post, test_server};

const TENANTS: [&str; 3] = ["acme", "globex", "initech"];
const SOURCE: &str = "com.nordcloudapp.com.autopatcher";
const EVENTS: usize = 30_000;
const PER_BATCH: usize = 100;

#[test]
fn three_relays_on_postgres_lose_nothing_and_repeat_nothing_while_relays_are_killed() {
    run(&fresh_database(&test_server()), Fault::KillRelays, None);
}

#[test]
fn three_relays_on_postgres_recover_by_themselves_when_postgres_restarts() {
    let server = OwnPostgres::start();
    let url = fresh_database(&server.url);
    run(&url, Fault::RestartPostgres, Some(&server));
}

/// A tenant (index into [`TENANTS`]) and the UIDs of a batch for it.
type Batch = (usize, Vec<String>);

enum Fault {
    KillRelays,
    RestartPostgres,
}

fn run(database: &str, fault: Fault, server: Option<&OwnPostgres>) {
    let dir = Dir::new();
    let lake_log = dir.path().join("lake.log");
    let lake = LakeProcess::start_logging(&dir.path().join("lake"), Some(&lake_log));
    let (store_arn, channel) = crate::support::crash_channel(&lake.endpoint, Some("CrashPublisher"));
    let role_arn = "arn:aws:iam::123456789012:role/CrashPublisher";
    for tenant in TENANTS {
        let out = dir.run(
            &[
                "tenants",
                "add",
                tenant,
                "--channel-arn",
                &channel,
                "--role-arn",
                role_arn,
                "--external-id",
                "crash-ext-1",
                "--database-url",
                database,
            ],
            None,
        );
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
    let out = dir.run(&["tokens", "issue", "--app", SOURCE, "--tenants", "*", "--database-url", database], None);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let token = out.stdout.lines().nth(1).unwrap().to_owned();

    // Short leases, so takeovers happen within the test's time. Attempts are given 6 s: a call that
    // times out after the lake stored it is re-sent with the same ids (the lake counts them as
    // repeated), which on a loaded machine with 2 s attempts happened without any takeover.
    let settings = [
        ("KLARITY_RELAY__DATABASE__URL", database),
        ("KLARITY_RELAY__DATABASE__LEASE_SECS", "3"),
        ("KLARITY_RELAY__DATABASE__CONNECT_TIMEOUT_SECS", "2"),
        ("KLARITY_RELAY__ATTEMPT_TIMEOUT_SECS", "6"),
    ];
    let start = |i: usize| RelayProcess::start_with(&dir.path().join(format!("relay{i}")), &lake.endpoint, &settings);
    let relays: Arc<Mutex<Vec<Option<RelayProcess>>>> = Arc::new(Mutex::new((0..3).map(|i| Some(start(i))).collect()));
    let addresses = || -> Vec<String> { relays.lock().unwrap().iter().flatten().map(|r| r.address.clone()).collect() };

    // Batches of 100 events, each for one tenant; the ledger keeps what was answered 202.
    let now = audit_event::EventTime::now().to_string();
    let queue: Arc<Mutex<Vec<Batch>>> = Arc::new(Mutex::new(
        (0..EVENTS / PER_BATCH)
            .map(|b| {
                (
                    b % TENANTS.len(),
                    (b * PER_BATCH..(b + 1) * PER_BATCH).map(|i| format!("0190a6b5-4444-7a3f-9d2b-{i:012}")).collect(),
                )
            })
            .collect(),
    ));
    let ledger: Arc<Mutex<Vec<String>>> = Arc::default();
    let refused = Arc::new(AtomicUsize::new(0));
    let shared_addresses = Arc::new(Mutex::new(addresses()));
    let producers: Vec<_> = (0..6)
        .map(|p| {
            let (queue, ledger, refused, addresses, token, now) =
                (queue.clone(), ledger.clone(), refused.clone(), shared_addresses.clone(), token.clone(), now.clone());
            thread::spawn(move || {
                let mut turn = p;
                loop {
                    let Some((tenant, uids)) = queue.lock().unwrap().pop() else { return };
                    let events: Vec<Value> = uids
                        .iter()
                        .map(|uid| json!({"version": "v1", "userIdentity": {"type": "SERVICE", "principalId": "cluster"},
                            "eventSource": SOURCE, "eventName": "baselinePatching.started", "eventTime": now, "UID": uid,
                            "requestParameters": {"machinesCount": 3}}))
                        .collect();
                    let body = json!({ "events": events }).to_string();
                    // Round robin over the relays up now, as a load balancer would; another one
                    // when a relay is down or answers 503.
                    loop {
                        let address = {
                            let addresses = addresses.lock().unwrap();
                            turn += 1;
                            addresses[turn % addresses.len()].clone()
                        };
                        let (status, answer) =
                            http_post(&address, &format!("/v1/tenants/{}/events", TENANTS[tenant]), &token, &body);
                        if status == 202 {
                            let answer: Value = serde_json::from_str(&answer).unwrap();
                            assert_eq!(answer["accepted"].as_array().unwrap().len(), uids.len(), "{answer}");
                            ledger.lock().unwrap().extend(uids);
                            // Paced (about 6,000 events a second in all), so the load lasts
                            // while the faults land.
                            thread::sleep(Duration::from_millis(100));
                            break;
                        }
                        assert!(matches!(status, 0 | 503), "only an unreachable relay or 503 is retried: {status} {answer}");
                        refused.fetch_add(1, Ordering::Relaxed);
                        thread::sleep(Duration::from_millis(50));
                    }
                }
            })
        })
        .collect();

    // The faults, while the producers post.
    let mut faults = 0;
    let started = Instant::now();
    while queue.lock().unwrap().len() > 20 && started.elapsed() < Duration::from_secs(120) {
        thread::sleep(Duration::from_millis(400));
        match fault {
            Fault::KillRelays => {
                let victim = faults % 3;
                let killed = relays.lock().unwrap()[victim].take().unwrap();
                killed.kill();
                *shared_addresses.lock().unwrap() = addresses();
                thread::sleep(Duration::from_millis(300));
                relays.lock().unwrap()[victim] = Some(start(victim));
                *shared_addresses.lock().unwrap() = addresses();
            }
            Fault::RestartPostgres => server.unwrap().restart(),
        }
        faults += 1;
        if faults == 4 {
            break;
        }
    }
    for p in producers {
        p.join().unwrap();
    }
    assert!(faults >= 3, "the faults landed while producers were posting ({faults})");
    let ledger = ledger.lock().unwrap().clone();
    assert_eq!(ledger.len(), EVENTS, "every batch was answered 202 in the end");

    // Everything answered 202 reaches the lake, once.
    let store_id = store_arn.rsplit('/').next().unwrap().to_owned();
    let stored = crate::support::stored_uids(&dir, &store_id, EVENTS, Duration::from_secs(120));
    relays.lock().unwrap().clear();
    let missing: Vec<&String> = ledger.iter().filter(|uid| !stored.contains_key(*uid)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged events are not in the lake, e.g. {:?}",
        missing.len(),
        missing.first()
    );
    assert_eq!(stored.len(), EVENTS, "nothing but the acknowledged events");
    let twice: Vec<_> = stored.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "{} events stored more than once, e.g. {:?}", twice.len(), twice.first());
    let repeated = crate::support::repeated_entries(&lake_log);
    assert_eq!(repeated, 0, "role mode: nothing a dead relay had delivered is sent again");
    eprintln!(
        "relay cluster test: {EVENTS} events over 3 relays, {faults} faults, {} posts refused or cut and sent again",
        refused.load(Ordering::Relaxed)
    );
}

/// While the database is away, a relay says it is not ready and acknowledges nothing; when the
/// database is back it takes events again by itself.
#[test]
fn a_relay_whose_database_is_away_is_not_ready_and_acknowledges_nothing() {
    database_away(Away::Down);
}

/// A database that hangs (its processes stopped: connections stay open, nothing answers): the
/// relay says it is not ready and refuses events within its statement timeout, instead of waiting
/// on the server; once the server answers again, it takes events by itself, and nothing is lost.
#[test]
fn a_relay_whose_database_hangs_answers_503_within_its_statement_timeout() {
    database_away(Away::Hung);
}

/// How the database goes away.
#[derive(PartialEq)]
enum Away {
    /// Stopped: connections are refused.
    Down,
    /// Its processes stopped (SIGSTOP): connections stay open and nothing answers.
    Hung,
}

fn database_away(how: Away) {
    let server = OwnPostgres::start();
    let database = fresh_database(&server.url);
    let dir = Dir::new();
    let channel = "arn:aws:cloudtrail:eu-west-1:123456789012:channel/0f9c1e2d-3b4a-4c5d-8e6f-7a8b9c0d1e2f";
    let out = dir.run(
        &["tenants", "add", "acme", "--channel-arn", channel, "--resource-policy", "--database-url", &database],
        None,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = dir.run(&["tokens", "issue", "--app", SOURCE, "--tenants", "acme", "--database-url", &database], None);
    let token = out.stdout.lines().nth(1).unwrap().to_owned();
    let settings = [
        ("KLARITY_RELAY__DATABASE__URL", database.as_str()),
        ("KLARITY_RELAY__DATABASE__CONNECT_TIMEOUT_SECS", "1"),
        ("KLARITY_RELAY__DATABASE__STATEMENT_TIMEOUT_SECS", "2"),
    ];
    let relay = RelayProcess::start_with(&dir.path().join("relay"), "http://127.0.0.1:9", &settings);
    let post = |uid: &str| {
        let event = json!({"version": "v1", "userIdentity": {"type": "SERVICE", "principalId": "cluster"},
            "eventSource": SOURCE, "eventName": "baselinePatching.started", "eventTime": "2026-12-04T10:00:00Z",
            "UID": uid, "requestParameters": {"machinesCount": 3}});
        http_post(&relay.address, "/v1/tenants/acme/events", &token, &event.to_string())
    };
    let ready = || crate::support::http_get(&relay.address, "/readyz");
    assert_eq!(ready().0, 200);
    let (status, body) = post("0190a6b5-5555-7a3f-9d2b-000000000001");
    assert_eq!(status, 202, "{body}");

    match how {
        Away::Down => server.pause(),
        Away::Hung => server.freeze(),
    }
    // Each answer comes (the test's reads give up after 10 s): the relay does not wait on the server.
    let (status, body) = ready();
    assert_eq!((status, body.as_str()), (503, "the relay's database is unavailable"));
    let (status, body) = post("0190a6b5-5555-7a3f-9d2b-000000000002");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("\"Unavailable\"") && body.contains("nothing was accepted"), "{body}");

    match how {
        Away::Down => server.resume(),
        Away::Hung => server.thaw(),
    }
    // The pool opens new connections as requests come: the next ones work.
    let deadline = Instant::now() + Duration::from_secs(30);
    while ready().0 != 200 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(ready().0, 200, "ready again once the database is back");
    let (status, body) = post("0190a6b5-5555-7a3f-9d2b-000000000002");
    assert_eq!(status, 202, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    // A statement sent to a server that hung may be done once it goes on: then the refused event
    // is answered as a duplicate, stored once. A server that was down never got it.
    if how == Away::Down {
        assert_eq!(answer["accepted"][0]["duplicate"], false, "the refused event had not been stored: {answer}");
    }
    let (status, body) = post("0190a6b5-5555-7a3f-9d2b-000000000003");
    assert_eq!(status, 202, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["accepted"][0]["duplicate"], false, "{answer}");
}
