//! Crash safety of the relay: writers post batches while the relay process is killed with SIGKILL
//! at random moments and restarted; batches whose answer was lost are posted again with the same
//! UIDs, as a client would. At the end every event is in the lake exactly once: nothing accepted
//! was lost, nothing was delivered twice.
//!
//! In role mode the relay looks up, after each crash, the batches it may have had in flight in the
//! customer's store, so it sends none of them again (counted from the lake's log: zero). In
//! channel-policy mode it cannot read the store, and the repeats are counted and bounded. Into
//! CloudWatch Logs, which does not de-duplicate, the relay looks the suspects up in the log stream
//! (zero stored twice); with a role that may only write, the repeats are counted and bounded by
//! what can be in flight at the kills. Into S3, every object's events are assigned to it in the
//! spool before it is first written, so an object written again after a crash replaces itself:
//! every event is in exactly one object.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::Duration,
};

use serde_json::{Value, json};

use crate::support::{Dir, LakeProcess, RelayProcess, http_post};

#[test]
fn sigkill_of_the_relay_in_role_mode_sends_nothing_again() {
    sigkill_loop(Mode::Role);
}

#[test]
fn sigkill_of_the_relay_in_channel_policy_mode_loses_nothing() {
    sigkill_loop(Mode::ChannelPolicy);
}

#[test]
fn sigkill_of_the_relay_delivering_to_cloudwatch_logs_sends_nothing_again() {
    sigkill_loop(Mode::Logs);
}

#[test]
fn sigkill_of_the_relay_delivering_to_cloudwatch_logs_with_a_write_only_role_loses_nothing() {
    sigkill_loop(Mode::LogsWriteOnly);
}

#[test]
fn sigkill_of_the_relay_delivering_to_s3_puts_every_event_in_exactly_one_object() {
    sigkill_loop(Mode::S3);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// CloudTrail Lake through the customer's role.
    Role,
    /// CloudTrail Lake through the channel's resource policy.
    ChannelPolicy,
    /// CloudWatch Logs through the customer's role, which may read the log group back.
    Logs,
    /// CloudWatch Logs through a role that may only write (`onboard --no-verify-permissions`).
    LogsWriteOnly,
    /// S3 (NDJSON objects) through a role that may only put objects.
    S3,
}

fn sigkill_loop(mode: Mode) {
    let role_mode = mode == Mode::Role;
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() as u64;
    eprintln!("relay crash test seed: {seed}");
    let mut rng = seed;
    let mut next_random = |below: u64| {
        rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (rng >> 33) % below
    };
    let dir = Dir::new();
    let lake_log = dir.path().join("lake.log");
    let lake = LakeProcess::start_logging(&dir.path().join("lake"), Some(&lake_log));
    let role_arn = "arn:aws:iam::123456789012:role/CrashPublisher";
    let relay_dir = dir.path().join("relay");
    let data = relay_dir.to_str().unwrap().to_owned();
    let s3 = (mode == Mode::S3).then(|| crate::relay_s3::onboard(&dir, &lake.endpoint, "crash-s3"));
    let (store_arn, channel, logs) = match mode {
        Mode::S3 => (String::new(), String::new(), None),
        Mode::Logs | Mode::LogsWriteOnly => {
            let more: &[&str] = if mode == Mode::Logs { &[] } else { &["--no-verify-permissions"] };
            let (role, external_id, group) = crate::relay_logs::onboard_with(&dir, &lake.endpoint, "crash-logs", more);
            (String::new(), String::new(), Some((role, external_id, group)))
        }
        _ => {
            let (store, channel) = crate::support::crash_channel(&lake.endpoint, role_mode.then_some("CrashPublisher"));
            (store, channel, None)
        }
    };
    let mut args = vec!["tenants", "add", "acme"];
    match (mode, &logs) {
        (Mode::S3, _) => {
            let (role, external_id, bucket) = s3.as_ref().unwrap();
            args.extend(["--bucket-arn", bucket, "--region", "us-east-1", "--rollover", "1"]);
            args.extend(["--role-arn", role, "--external-id", external_id]);
        }
        (_, Some((role, external_id, group))) => {
            args.extend(["--log-group-arn", group, "--role-arn", role, "--external-id", external_id]);
        }
        (Mode::Role, _) => {
            args.extend(["--channel-arn", &channel, "--role-arn", role_arn, "--external-id", "crash-ext-1"])
        }
        _ => args.extend(["--channel-arn", &channel, "--resource-policy", "--external-id", "crash-ext-1"]),
    }
    args.extend(["--data-dir", &data]);
    let out = dir.run(&args, None);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = dir.run(
        &["tokens", "issue", "--app", "com.nordcloudapp.com.autopatcher", "--tenants", "acme", "--data-dir", &data],
        None,
    );
    let token = out.stdout.lines().nth(1).unwrap().to_owned();

    // Today, so the store's retention keeps the events visible to the relay's look-up.
    let now = audit_event::EventTime::now().to_string();
    let batch_body = move |uids: &[String]| {
        let events: Vec<Value> = uids
            .iter()
            .map(|uid| {
                json!({"version": "v1", "userIdentity": {"type": "SERVICE", "principalId": "crash"}, "eventSource": "com.nordcloudapp.com.autopatcher",
                       "eventName": "baselinePatching.started", "eventTime": now, "UID": uid,
                       "requestParameters": {"machinesCount": 3}, "additionalEventData": {"padding": "x".repeat(600)}})
            })
            .collect();
        json!({"events": events}).to_string()
    };
    let pending: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
    let mut total = 0usize;
    let mut interrupted = 0;
    const ROUNDS: usize = 5;
    // A short attempt timeout: after a crash the look-up waits that long for calls still in flight.
    let settings = [("KLARITY_RELAY__ATTEMPT_TIMEOUT_SECS", "2")];
    let mut relay = RelayProcess::start_with(&relay_dir, &lake.endpoint, &settings);
    for round in 0..ROUNDS {
        let last = round == ROUNDS - 1;
        if !last {
            let mut queue = pending.lock().unwrap();
            for _ in 0..60 {
                queue.push((total..total + 20).map(|i| format!("0190a6b5-3333-7a3f-9d2b-{i:012}")).collect());
                total += 20;
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let pace = Duration::from_millis(if mode == Mode::S3 { 70 } else { 0 });
        let writers: Vec<_> = (0..3)
            .map(|_| {
                let (pending, stop, address, token) =
                    (pending.clone(), stop.clone(), relay.address.clone(), token.clone());
                let body = batch_body.clone();
                thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let Some(batch) = pending.lock().unwrap().pop() else { break };
                        let (status, answer) = http_post(&address, "/v1/tenants/acme/events", &token, &body(&batch));
                        if status != 202 {
                            pending.lock().unwrap().push(batch);
                            break;
                        }
                        let answer: Value = serde_json::from_str(&answer).unwrap();
                        assert_eq!(answer["accepted"].as_array().unwrap().len(), batch.len(), "{answer}");
                        // Paced into S3, so that posts go on while objects roll over.
                        thread::sleep(pace);
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
        // Into S3, objects are written once their oldest event waited the rollover (1 s here):
        // the kill lands around then.
        let pause = if mode == Mode::S3 { 800 + next_random(700) } else { 20 + next_random(200) };
        thread::sleep(Duration::from_millis(pause));
        relay.kill();
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.join().unwrap();
        }
        interrupted += usize::from(!pending.lock().unwrap().is_empty());
        relay = RelayProcess::start_with(&relay_dir, &lake.endpoint, &settings);
    }
    assert!(pending.lock().unwrap().is_empty());
    assert!(interrupted > 0, "no kill landed while batches were in flight (seed {seed})");

    if mode == Mode::S3 {
        let down = dir.path().join("down");
        let mut stored = std::collections::BTreeMap::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while stored.len() < total && std::time::Instant::now() < deadline {
            thread::sleep(Duration::from_millis(500));
            stored = crate::relay_s3::stored_uids(&lake.endpoint, "crash-s3", "klarity-audit/", &down);
        }
        relay.kill();
        assert_eq!(stored.len(), total, "every accepted event was delivered (seed {seed})");
        let repeated: usize = stored.values().map(|n| n - 1).sum();
        assert_eq!(repeated, 0, "every event is in exactly one object (seed {seed})");
        let rewritten = std::fs::read_to_string(&lake_log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("was written again under its key"))
            .count();
        eprintln!(
            "relay crash test (S3): {total} events, {} kills, {interrupted} with batches in flight; 0 in two objects; \
             {rewritten} objects written again after a kill (each replaced itself)",
            ROUNDS - 1
        );
        return;
    }
    if logs.is_some() {
        // Every event is in the log stream at least once; the repeats are the batches whose
        // PutLogEvents had succeeded when the relay was killed before recording it.
        let mut stored = std::collections::BTreeMap::<String, usize>::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while stored.len() < total && std::time::Instant::now() < deadline {
            thread::sleep(Duration::from_millis(300));
            stored.clear();
            for e in crate::relay_logs::read_stream(&lake.endpoint, "crash-logs", "klarity-audit") {
                let message: Value = serde_json::from_str(e["message"].as_str().unwrap()).unwrap();
                *stored.entry(message["UID"].as_str().unwrap().to_owned()).or_default() += 1;
            }
        }
        relay.kill();
        assert_eq!(stored.len(), total, "every accepted event was delivered (seed {seed})");
        let repeated: usize = stored.values().map(|n| n - 1).sum();
        let bound = (ROUNDS - 1)
            * audit_relay::RelayConfig::default().delivery_concurrency
            * audit_relay::delivery::logs::MAX_PENDING;
        if mode == Mode::Logs {
            assert_eq!(
                repeated, 0,
                "a role that reads the log group: nothing stored before a crash is sent again (seed {seed})"
            );
        }
        assert!(repeated <= bound, "{repeated} events stored twice; at most {bound} can be in flight at the kills");
        eprintln!(
            "relay crash test ({mode:?}): {total} events, {} kills, {interrupted} with batches in flight; {repeated} stored twice",
            ROUNDS - 1
        );
        return;
    }

    // Wait until the relay has delivered everything into the lake.
    let store_id = store_arn.rsplit('/').next().unwrap().to_owned();
    let stored = crate::support::stored_uids(&dir, &store_id, total, Duration::from_secs(60));
    relay.kill();
    assert_eq!(stored.len(), total, "every accepted event was delivered (seed {seed})");
    assert!(
        stored.values().all(|n| *n == 1),
        "nothing twice (seed {seed}): {:?}",
        stored.iter().find(|(_, n)| **n > 1)
    );
    // The one window the relay cannot close: killed after the lake's 200 and before its own commit,
    // it sends those entries again. The lake logs each repeat (AWS would store them twice); the
    // count is reported, and bounded by what can be in flight at a kill.
    let repeated = crate::support::repeated_entries(&lake_log);
    if role_mode {
        assert_eq!(repeated, 0, "role mode: nothing stored before a crash is sent again (seed {seed})");
    }
    let in_flight_bound = (ROUNDS - 1) * audit_relay::RelayConfig::default().delivery_concurrency * 100;
    assert!(
        repeated <= in_flight_bound,
        "{repeated} repeated entries; at most {in_flight_bound} can be in flight at the kills"
    );
    eprintln!(
        "relay crash test ({}): {total} events, {} kills, {interrupted} with batches in flight; {repeated} entries re-sent after an acknowledgement",
        if role_mode { "role mode" } else { "channel-policy mode" },
        ROUNDS - 1
    );
}
