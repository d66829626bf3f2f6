//! Crash safety of the lake: writers send batches while the lake is killed with SIGKILL at random
//! moments and restarted. Batches whose answer was lost are re-sent with the same entry ids, as a
//! client would. At the end every acknowledged event is stored exactly once, and so is every event
//! ever attempted (nothing is stored twice).

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::Duration,
};

use crate::support::{Dir, LakeProcess, lake_call};

/// A tiny deterministic generator; the seed is printed so a failure can be replayed.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}

fn batch_body(ids: &[String]) -> String {
    let events: Vec<serde_json::Value> = ids
        .iter()
        .map(|id| {
            let data = serde_json::json!({
                "version": "v1",
                "userIdentity": {"type": "SERVICE", "principalId": "crash-test"},
                "eventSource": "com.nordcloudapp.com.autobackup",
                "eventName": "backup.completed",
                "eventTime": "2024-07-12T10:55:00Z",
                "UID": id,
                "additionalEventData": {"padding": "x".repeat(700)},
                "recipientAccountId": "123456789012"
            })
            .to_string();
            serde_json::json!({"id": id, "eventData": data})
        })
        .collect();
    serde_json::json!({"auditEvents": events}).to_string()
}

#[test]
fn sigkill_loses_no_acknowledged_event_and_stores_none_twice() {
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    eprintln!("crash test seed: {seed}");
    let mut rng = Lcg(seed);
    let dir = Dir::new();
    let data_dir = dir.path().join("lake");

    let mut lake = LakeProcess::start(&data_dir);
    let (status, body) = lake_call(
        &lake.endpoint,
        "cloudtrail",
        "CreateEventDataStore",
        r#"{"Name":"crash","MultiRegionEnabled":false,"AdvancedEventSelectors":[{"Name":"a","FieldSelectors":[{"Field":"eventCategory","Equals":["ActivityAuditLog"]}]}]}"#,
    );
    assert_eq!(status, 200, "{body}");
    let store_arn =
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["EventDataStoreArn"].as_str().unwrap().to_owned();
    let (status, body) = lake_call(
        &lake.endpoint,
        "cloudtrail",
        "CreateChannel",
        &format!(
            r#"{{"Name":"crash","Source":"Custom","Destinations":[{{"Type":"EVENT_DATA_STORE","Location":"{store_arn}"}}]}}"#
        ),
    );
    assert_eq!(status, 200, "{body}");
    let channel_arn =
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["ChannelArn"].as_str().unwrap().to_owned();
    let path = format!("/PutAuditEvents?channelArn={}", channel_arn.replace(':', "%3A").replace('/', "%2F"));

    // Batches not yet acknowledged (to re-send), and every id acknowledged with its eventID.
    let pending: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
    let acknowledged: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let mut next_id = 0usize;
    let mut interrupted = 0;
    const ROUNDS: usize = 6;
    const WRITERS: usize = 3;

    for round in 0..ROUNDS {
        let last = round == ROUNDS - 1;
        // New batches for this round, queued after the ones still unacknowledged.
        {
            let mut queue = pending.lock().unwrap();
            for _ in 0..(if last { 0 } else { 120 }) {
                queue.push((next_id..next_id + 20).map(|i| format!("ev-{i:07}")).collect());
                next_id += 20;
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..WRITERS)
            .map(|_| {
                let (pending, acknowledged, stop) = (pending.clone(), acknowledged.clone(), stop.clone());
                let (endpoint, path) = (lake.endpoint.clone(), path.clone());
                thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let Some(batch) = pending.lock().unwrap().pop() else { break };
                        let (status, body) = lake_call(&endpoint, "cloudtrail-data", &path, &batch_body(&batch));
                        if status != 200 {
                            // Unknown outcome: keep the batch to re-send after the restart.
                            pending.lock().unwrap().push(batch);
                            break;
                        }
                        let out: serde_json::Value = serde_json::from_str(&body).unwrap();
                        assert!(out["failed"].as_array().unwrap().is_empty(), "{body}");
                        let mut acked = acknowledged.lock().unwrap();
                        for s in out["successful"].as_array().unwrap() {
                            let (id, event_id) =
                                (s["id"].as_str().unwrap().to_owned(), s["eventID"].as_str().unwrap().to_owned());
                            if let Some(previous) = acked.insert(id.clone(), event_id.clone()) {
                                assert_eq!(previous, event_id, "{id} got a second eventID");
                            }
                        }
                    }
                })
            })
            .collect();
        if last {
            for w in writers {
                w.join().unwrap();
            }
            break;
        }
        thread::sleep(Duration::from_millis(20 + rng.next(250)));
        lake.kill();
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.join().unwrap();
        }
        let left = pending.lock().unwrap().len();
        interrupted += usize::from(left > 0);
        eprintln!("round {round}: killed with {left} batches unacknowledged");
        lake = LakeProcess::start(&data_dir);
    }
    assert!(pending.lock().unwrap().is_empty(), "the last round sent everything");
    assert!(interrupted > 0, "no kill landed while batches were in flight (seed {seed}); the test proved nothing");
    lake.kill();

    // What is on disk.
    let store_id = store_arn.rsplit('/').next().unwrap();
    let mut stored: BTreeMap<String, Vec<String>> = BTreeMap::new();
    audit_lake::columnar::scan_store(&data_dir.join(audit_lake::store::DB_FILE), store_id, |record| {
        let value: serde_json::Value = serde_json::from_str(record).unwrap();
        stored
            .entry(value["eventData"]["UID"].as_str().unwrap().to_owned())
            .or_default()
            .push(value["eventID"].as_str().unwrap().to_owned());
        true
    })
    .unwrap();
    let acknowledged = acknowledged.lock().unwrap();
    assert_eq!(acknowledged.len(), next_id, "every id was eventually acknowledged");
    for (id, event_id) in acknowledged.iter() {
        assert_eq!(stored.get(id), Some(&vec![event_id.clone()]), "{id} (seed {seed})");
    }
    assert_eq!(stored.len(), next_id, "nothing else is stored (seed {seed})");
    eprintln!("crash test: {} events over {ROUNDS} rounds with {} kills", next_id, ROUNDS - 1);
}
