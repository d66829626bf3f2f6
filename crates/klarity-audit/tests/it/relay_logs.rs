//! CloudWatch Logs as a tenant's destination, end to end through the shipped binaries: the
//! customer's side made by `onboard apply --destination cloudwatch-logs`, the tenant registered
//! with `tenants add --log-group-arn`, events sent to `klarity-audit relay`, and read back as the
//! customer with the real AWS CLI (`aws logs get-log-events`).

use std::{
    collections::{BTreeMap, HashMap},
    process::Command,
    time::Duration,
};

use audit_lake::config::{CUSTOMER_ACCESS_KEY_ID, CUSTOMER_SECRET_ACCESS_KEY};
use serde_json::{Value, json};

use crate::support::{Dir, LakeProcess, RelayProcess, http_post};

/// `aws logs …` as the customer against the local lake; the parsed answer.
pub(crate) fn aws_logs(endpoint: &str, args: &[&str]) -> Value {
    let out = Command::new("aws")
        .args(["--endpoint-url", endpoint, "--region", "us-east-1", "--output", "json", "logs"])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", CUSTOMER_ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", CUSTOMER_SECRET_ACCESS_KEY)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_PAGER", "")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .output()
        .expect("the AWS CLI (`aws`) must be installed (./scripts/test installs it)");
    assert!(out.status.success(), "aws logs {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    if out.stdout.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

/// Every event of a stream, from the head, following the forward token until it repeats (none
/// while the stream does not exist yet).
pub(crate) fn read_stream(endpoint: &str, group: &str, stream: &str) -> Vec<Value> {
    let streams =
        aws_logs(endpoint, &["describe-log-streams", "--log-group-name", group, "--log-stream-name-prefix", stream]);
    if !streams["logStreams"].as_array().into_iter().flatten().any(|s| s["logStreamName"] == stream) {
        return Vec::new();
    }
    let mut events = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut args =
            vec!["get-log-events", "--log-group-name", group, "--log-stream-name", stream, "--start-from-head"];
        if let Some(t) = &token {
            args.extend(["--next-token", t.as_str()]);
        }
        let page = aws_logs(endpoint, &args);
        events.extend(page["events"].as_array().unwrap().iter().cloned());
        let next = page["nextForwardToken"].as_str().map(str::to_owned);
        if next == token || next.is_none() {
            return events;
        }
        token = next;
    }
}

/// GET with a bearer token; (status, body).
pub(crate) fn get(address: &str, path: &str, token: &str) -> (u16, Value) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// Registers the tenant `acme` for the log group (`tenants add`, with `more`) and issues an
/// AutoPatcher token for it; what `add` printed, and the token.
fn tenant(
    dir: &Dir,
    data: &str,
    (role_arn, external_id, group_arn): (&str, &str, &str),
    more: &[&str],
) -> (String, String) {
    let add =
        ["tenants", "add", "acme", "--log-group-arn", group_arn, "--role-arn", role_arn, "--external-id", external_id];
    let out = dir.run(&[&add[..], more, &["--data-dir", data]].concat(), None);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let issued = dir.run(
        &["tokens", "issue", "--app", "com.nordcloudapp.com.autopatcher", "--tenants", "acme", "--data-dir", data],
        None,
    );
    (out.stdout, issued.stdout.lines().nth(1).unwrap().to_owned())
}

fn wait_for(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + within;
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn event(uid: &str, event_time: &str, n: usize) -> Value {
    json!({"version": "v1", "userIdentity": {"type": "USER", "principalId": format!("ops{}@example.com", n % 3)},
           "eventSource": "com.nordcloudapp.com.autopatcher", "eventName": "baselinePatching.started",
           "eventTime": event_time, "UID": uid, "requestParameters": {"machinesCount": n}})
}

/// The customer's side for CloudWatch Logs; (role ARN, external ID, log group ARN).
pub(crate) fn onboard(dir: &Dir, endpoint: &str, name: &str) -> (String, String, String) {
    onboard_with(dir, endpoint, name, &[])
}

/// [`onboard`], with more options for `onboard apply`.
pub(crate) fn onboard_with(dir: &Dir, endpoint: &str, name: &str, more: &[&str]) -> (String, String, String) {
    let args = ["onboard", "apply", "--endpoint-url", endpoint, "--destination", "cloudwatch-logs", "--name", name];
    let out = dir.run(&[&args[..], more, &["--json"]].concat(), None);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let handover: Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(handover.get("channelArn").is_none(), "{handover}");
    let field = |k: &str| handover[k].as_str().unwrap_or_else(|| panic!("{k} in {handover}")).to_owned();
    (field("roleArn"), field("externalId"), field("logGroupArn"))
}

#[test]
fn events_reach_cloudwatch_logs_in_time_order_through_the_customers_role_and_read_back_with_the_aws_cli() {
    let dir = Dir::new();
    let lake = LakeProcess::start(&dir.path().join("lake"));
    let (role_arn, external_id, group_arn) = onboard(&dir, &lake.endpoint, "klarity-audit");
    assert_eq!(group_arn, "arn:aws:logs:us-east-1:123456789012:log-group:klarity-audit");
    // Applying again changes nothing that is right already.
    assert_eq!(
        onboard(&dir, &lake.endpoint, "klarity-audit"),
        (role_arn.clone(), external_id.clone(), group_arn.clone())
    );

    let data = dir.path().join("relay");
    let data = data.to_str().unwrap();
    let (added, token) = tenant(&dir, data, (&role_arn, &external_id, &group_arn), &["--log-stream", "audit-acme"]);
    assert!(added.contains("CloudWatch Logs group klarity-audit, stream audit-acme"), "{added}");
    let relay = RelayProcess::start_with(&dir.path().join("relay"), &lake.endpoint, &[]);

    // Events over three days, sent newest first, so one batch spans more than CloudWatch's 24 hours
    // and is out of time order; and one 20 days old, which CloudWatch refuses as too old.
    let now = audit_event::EventTime::now().unix_millis();
    let time = |ms: i64| audit_event::EventTime::from_unix(ms.div_euclid(1000), 0).to_string();
    let mut sent: BTreeMap<String, i64> = BTreeMap::new();
    let events: Vec<Value> = (0..240)
        .map(|i| {
            let uid = format!("0190a6b5-4444-7a3f-9d2b-{i:012}");
            let at = (now - i as i64 * 15 * 60_000) / 1000 * 1000;
            sent.insert(uid.clone(), at);
            event(&uid, &time(at), i)
        })
        .collect();
    let too_old_uid = "0190a6b5-4444-7a3f-9d2b-999999999999";
    let mut body_events = events.clone();
    body_events.insert(100, event(too_old_uid, &time(now - 20 * 86_400_000), 7));
    let (status, answer) =
        http_post(&relay.address, "/v1/tenants/acme/events", &token, &json!({"events": body_events}).to_string());
    assert_eq!(status, 202, "{answer}");

    wait_for("every event is in the log stream", Duration::from_secs(30), || {
        aws_logs(&lake.endpoint, &["describe-log-streams", "--log-group-name", "klarity-audit"])["logStreams"]
            .as_array()
            .is_some_and(|s| !s.is_empty())
            && read_stream(&lake.endpoint, "klarity-audit", "audit-acme").len() >= sent.len()
    });
    let stored = read_stream(&lake.endpoint, "klarity-audit", "audit-acme");
    let mut seen: HashMap<String, usize> = HashMap::new();
    for e in &stored {
        let message: Value = serde_json::from_str(e["message"].as_str().unwrap()).unwrap();
        let uid = message["UID"].as_str().unwrap().to_owned();
        // The timestamp is the event's own time, and the message is the event as accepted.
        assert_eq!(e["timestamp"].as_i64(), sent.get(&uid).copied(), "{e}");
        assert_eq!(message["eventName"], "baselinePatching.started");
        assert_eq!(message["recipientAccountId"], "123456789012");
        *seen.entry(uid).or_default() += 1;
    }
    assert_eq!(seen.len(), sent.len(), "every event once");
    assert!(seen.values().all(|&n| n == 1), "nothing twice");
    assert!(!seen.contains_key(too_old_uid));
    let times: Vec<i64> = stored.iter().map(|e| e["timestamp"].as_i64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "the stream reads in time order");

    // The refused event is a dead letter with CloudWatch's reason, not lost.
    wait_for("the too-old event is dead-lettered", Duration::from_secs(10), || {
        get(&relay.address, &format!("/v1/tenants/acme/events/{too_old_uid}"), &token).1["state"] == "dead"
    });
    let (_, status) = get(&relay.address, &format!("/v1/tenants/acme/events/{too_old_uid}"), &token);
    assert_eq!(status["errorCode"], "TooOldLogEvent", "{status}");
    assert!(status["errorMessage"].as_str().unwrap().contains("more than 14 days old"), "{status}");
    let (_, delivered) = get(&relay.address, "/v1/tenants/acme/events/0190a6b5-4444-7a3f-9d2b-000000000000", &token);
    assert_eq!(delivered["state"], "delivered", "{delivered}");

    // The canary works through the same role, and says where it went.
    let out = dir.run_with(
        &["tenants", "verify", "acme", "--data-dir", data],
        None,
        &[("KLARITY_RELAY__ENDPOINT_URL", &lake.endpoint)],
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("PutLogEvents stored the canary in log group klarity-audit, stream audit-acme"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_missing_log_group_pauses_the_tenant_keeps_its_events_and_delivery_resumes_when_it_exists() {
    let dir = Dir::new();
    let lake = LakeProcess::start(&dir.path().join("lake"));
    let (role_arn, external_id, group_arn) = onboard(&dir, &lake.endpoint, "audit-gone");
    // The customer deletes the log group before anything is delivered.
    aws_logs(&lake.endpoint, &["delete-log-group", "--log-group-name", "audit-gone"]);

    let data = dir.path().join("relay");
    let data = data.to_str().unwrap();
    let (_, token) = tenant(&dir, data, (&role_arn, &external_id, &group_arn), &[]);
    let relay = RelayProcess::start_with(
        &dir.path().join("relay"),
        &lake.endpoint,
        &[("KLARITY_RELAY__PROBE_INTERVAL_SECS", "1")],
    );

    let now = audit_event::EventTime::now().to_string();
    let events: Vec<Value> = (0..50).map(|i| event(&format!("0190a6b5-5555-7a3f-9d2b-{i:012}"), &now, i)).collect();
    let (status, answer) =
        http_post(&relay.address, "/v1/tenants/acme/events", &token, &json!({"events": events}).to_string());
    assert_eq!(status, 202, "{answer}");

    let show = || {
        let out = dir.run(&["tenants", "show", "acme", "--data-dir", data], None);
        serde_json::from_str::<Value>(&out.stdout).unwrap()
    };
    wait_for("the tenant is paused", Duration::from_secs(20), || show()["paused"].is_string());
    let reason = show()["paused"].as_str().unwrap().to_owned();
    assert!(reason.contains("log group audit-gone does not exist"), "{reason}");
    let out = dir.run_with(
        &["tenants", "verify", "acme", "--data-dir", data],
        None,
        &[("KLARITY_RELAY__ENDPOINT_URL", &lake.endpoint)],
    );
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(out.stdout.contains("the log group audit-gone does not exist"), "{}", out.stdout);
    let (_, one) = get(&relay.address, "/v1/tenants/acme/events/0190a6b5-5555-7a3f-9d2b-000000000000", &token);
    assert_eq!(one["state"], "pending", "kept while paused: {one}");

    // The customer makes the group again: the probe finds it, the stream is made, all arrive once.
    aws_logs(&lake.endpoint, &["create-log-group", "--log-group-name", "audit-gone"]);
    wait_for("the tenant resumes by itself", Duration::from_secs(20), || show()["paused"].is_null());
    wait_for("every event is delivered", Duration::from_secs(20), || {
        aws_logs(&lake.endpoint, &["describe-log-streams", "--log-group-name", "audit-gone"])["logStreams"]
            .as_array()
            .is_some_and(|s| !s.is_empty())
            && read_stream(&lake.endpoint, "audit-gone", "klarity-audit").len() >= 50
    });
    let stored = read_stream(&lake.endpoint, "audit-gone", "klarity-audit");
    let uids: std::collections::HashSet<String> = stored
        .iter()
        .map(|e| {
            serde_json::from_str::<Value>(e["message"].as_str().unwrap()).unwrap()["UID"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!((stored.len(), uids.len()), (50, 50));
}

#[test]
fn a_role_that_may_not_write_into_the_log_group_pauses_the_tenant_until_the_customer_allows_it() {
    let dir = Dir::new();
    let lake = LakeProcess::start(&dir.path().join("lake"));
    let (role_arn, external_id, _) = onboard(&dir, &lake.endpoint, "audit-allowed");
    // Klarity is given another log group than the one the role may write into.
    aws_logs(&lake.endpoint, &["create-log-group", "--log-group-name", "audit-other"]);
    let other = "arn:aws:logs:us-east-1:123456789012:log-group:audit-other";
    let data = dir.path().join("relay");
    let data = data.to_str().unwrap();
    let (_, token) = tenant(&dir, data, (&role_arn, &external_id, other), &[]);
    let relay = RelayProcess::start_with(
        &dir.path().join("relay"),
        &lake.endpoint,
        &[("KLARITY_RELAY__PROBE_INTERVAL_SECS", "1")],
    );
    let now = audit_event::EventTime::now().to_string();
    let events: Vec<Value> = (0..20).map(|i| event(&format!("0190a6b5-5656-7a3f-9d2b-{i:012}"), &now, i)).collect();
    let (status, answer) =
        http_post(&relay.address, "/v1/tenants/acme/events", &token, &json!({"events": events}).to_string());
    assert_eq!(status, 202, "{answer}");
    let show = || {
        let out = dir.run(&["tenants", "show", "acme", "--data-dir", data], None);
        serde_json::from_str::<Value>(&out.stdout).unwrap()
    };
    wait_for("the tenant is paused", Duration::from_secs(20), || show()["paused"].is_string());
    let reason = show()["paused"].as_str().unwrap().to_owned();
    assert!(reason.contains("AccessDenied") && reason.contains("audit-other"), "{reason}");
    let out = dir.run_with(
        &["tenants", "verify", "acme", "--data-dir", data],
        None,
        &[("KLARITY_RELAY__ENDPOINT_URL", &lake.endpoint)],
    );
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(out.stdout.contains("may not"), "{}", out.stdout);
    let (_, one) = get(&relay.address, "/v1/tenants/acme/events/0190a6b5-5656-7a3f-9d2b-000000000000", &token);
    assert_eq!(one["state"], "pending", "kept while paused: {one}");

    // The customer lets the role write there too: the probe finds it, and every event arrives once.
    let role_name = role_arn.rsplit('/').next().unwrap();
    let policy = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Action": ["logs:PutLogEvents", "logs:CreateLogStream"], "Resource": [other, format!("{other}:*")]}]});
    let out = Command::new("aws")
        .args(["--endpoint-url", &lake.endpoint, "--region", "us-east-1", "iam", "put-role-policy"])
        .args(["--role-name", role_name, "--policy-name", "AlsoOther", "--policy-document", &policy.to_string()])
        .env("AWS_ACCESS_KEY_ID", CUSTOMER_ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", CUSTOMER_SECRET_ACCESS_KEY)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_for("the tenant resumes by itself", Duration::from_secs(20), || show()["paused"].is_null());
    wait_for("every event is delivered", Duration::from_secs(20), || {
        read_stream(&lake.endpoint, "audit-other", "klarity-audit").len() >= 20
    });
    assert_eq!(read_stream(&lake.endpoint, "audit-other", "klarity-audit").len(), 20);
}

/// What the fault proxy does with one `PutLogEvents` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Forward it and its answer.
    Pass,
    /// Answer `ThrottlingException` without forwarding.
    Throttle,
    /// Answer 503 `ServiceUnavailableException` without forwarding.
    Unavailable,
    /// Close the connection without forwarding or answering.
    Drop,
    /// Forward it (the lake stores the events), then close without answering: the relay cannot
    /// know, and CloudWatch Logs does not de-duplicate, so it looks them up before re-sending.
    LoseAnswer,
}

/// The faults the proxy injected, and the UIDs of the calls whose answers it lost.
type ProxyRecord = std::sync::Arc<std::sync::Mutex<(Vec<Fault>, Vec<String>)>>;

/// The UIDs in a `PutLogEvents` body.
fn uids_in(body: &[u8]) -> Vec<String> {
    let request: Value = serde_json::from_slice(body).unwrap_or_default();
    request["logEvents"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| serde_json::from_str::<Value>(e["message"].as_str()?).ok())
        .filter_map(|m| m["UID"].as_str().map(str::to_owned))
        .collect()
}

/// A fault-injecting HTTP proxy in front of the lake (a test double: the faults must be injected
/// on purpose). It applies `plan[n]` to the n-th `PutLogEvents` call (then passes them) and
/// forwards everything else (STS, CreateLogStream) untouched. Returns its endpoint, the faults
/// injected and the UIDs of each call whose answer it lost.
fn start_logs_proxy(runtime: &tokio::runtime::Runtime, upstream: String, plan: Vec<Fault>) -> (String, ProxyRecord) {
    use crate::relay_faults::{Act, answer, headers_of, start_planned_proxy};
    let record: ProxyRecord = std::sync::Arc::default();
    let kept = record.clone();
    let endpoint = start_planned_proxy(
        runtime.handle(),
        upstream,
        plan,
        |head| {
            headers_of(head).iter().any(|(k, v)| k.eq_ignore_ascii_case("x-amz-target") && v.ends_with(".PutLogEvents"))
        },
        |fault| match fault {
            Fault::Pass => Act::Pass,
            Fault::Throttle => Act::Answer(answer("400 Bad Request", "ThrottlingException")),
            Fault::Unavailable => Act::Answer(answer("503 Service Unavailable", "ServiceUnavailableException")),
            Fault::Drop => Act::Drop,
            Fault::LoseAnswer => Act::LoseAnswer,
        },
        move |fault, _, body, taken| {
            if fault == Fault::Pass {
                return;
            }
            let mut record = kept.lock().unwrap();
            record.0.push(fault);
            // Only events the lake took count as lost answers.
            if taken {
                record.1.extend(uids_in(body));
            }
        },
    );
    (endpoint, record)
}

#[test]
fn through_throttling_503s_dropped_calls_and_lost_answers_nothing_is_lost_and_nothing_repeats() {
    let dir = Dir::new();
    let lake = LakeProcess::start(&dir.path().join("lake"));
    let (role_arn, external_id, group_arn) = onboard(&dir, &lake.endpoint, "audit-faults");
    let data = dir.path().join("relay");
    let data = data.to_str().unwrap();
    let (_, token) = tenant(&dir, data, (&role_arn, &external_id, &group_arn), &[]);

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    use Fault::*;
    // The first call finds no stream (the relay makes it), so the faults start after it.
    let plan = vec![Pass, Throttle, Unavailable, Drop, LoseAnswer, Pass, Throttle, Pass, LoseAnswer, Unavailable];
    let upstream = lake.endpoint.trim_start_matches("http://").to_owned();
    let (proxy, record) = start_logs_proxy(&runtime, upstream, plan.clone());
    let relay =
        RelayProcess::start_with(&dir.path().join("relay"), &proxy, &[("KLARITY_RELAY__DELIVERY_CONCURRENCY", "2")]);

    // Waves of events, so that delivery makes many calls.
    let now = audit_event::EventTime::now().to_string();
    let mut uids = Vec::new();
    for wave in 0..12 {
        let events: Vec<Value> = (0..50)
            .map(|i| {
                let uid = format!("0190a6b5-6666-7a3f-9d2b-{:012}", wave * 50 + i);
                uids.push(uid.clone());
                event(&uid, &now, i)
            })
            .collect();
        let (status, answer) =
            http_post(&relay.address, "/v1/tenants/acme/events", &token, &json!({"events": events}).to_string());
        assert_eq!(status, 202, "{answer}");
        std::thread::sleep(Duration::from_millis(40));
    }

    let count = || {
        let mut stored: HashMap<String, usize> = HashMap::new();
        for e in read_stream(&lake.endpoint, "audit-faults", "klarity-audit") {
            let message: Value = serde_json::from_str(e["message"].as_str().unwrap()).unwrap();
            *stored.entry(message["UID"].as_str().unwrap().to_owned()).or_default() += 1;
        }
        stored
    };
    wait_for("every event is stored", Duration::from_secs(60), || {
        aws_logs(&lake.endpoint, &["describe-log-streams", "--log-group-name", "audit-faults"])["logStreams"]
            .as_array()
            .is_some_and(|s| !s.is_empty())
            && count().len() == uids.len()
    });
    let stored = count();
    let (faults, lost_answers) = record.lock().unwrap().clone();
    for fault in [Throttle, Unavailable, Drop, LoseAnswer] {
        assert!(faults.contains(&fault), "{fault:?} was injected: {faults:?}");
    }
    // Nothing lost, and nothing stored twice: the events of each lost answer (the lake had stored
    // them) were looked up in the stream before they would have been sent again.
    assert!(!lost_answers.is_empty(), "answers carrying stored events were lost");
    let twice: Vec<_> = stored.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "{} events stored more than once, e.g. {:?}", twice.len(), twice.first());
    let (_, last) = get(&relay.address, &format!("/v1/tenants/acme/events/{}", uids.last().unwrap()), &token);
    assert_eq!(last["state"], "delivered", "{last}");
    eprintln!(
        "CloudWatch Logs faults: {} injected, {} events in lost answers, none stored twice, none lost",
        faults.len(),
        lost_answers.len()
    );
}
