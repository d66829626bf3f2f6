//! S3 as a tenant's destination, end to end through the shipped binaries: the customer's side made
//! by `onboard apply --destination s3`, tenants registered with `tenants add --bucket-arn`, events
//! sent to `klarity-audit relay`, and read back as the customer with the real AWS CLI (NDJSON) and
//! pyarrow (OCSF Parquet).

use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
    process::Command,
    time::Duration,
};

use audit_lake::config::{CUSTOMER_ACCESS_KEY_ID, CUSTOMER_SECRET_ACCESS_KEY};
use serde_json::{Value, json};

use crate::support::{Dir, LakeProcess, RelayProcess, http_post};

/// `aws s3api|s3 …` as the customer against the local lake; stdout.
pub(crate) fn aws_s3(endpoint: &str, args: &[&str]) -> String {
    let out = Command::new("aws")
        .args(["--endpoint-url", endpoint, "--region", "us-east-1", "--output", "json"])
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
    assert!(out.status.success(), "aws {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The customer's side for S3 (`onboard apply --destination s3`); (role ARN, external ID, bucket
/// ARN).
pub(crate) fn onboard(dir: &Dir, endpoint: &str, bucket: &str) -> (String, String, String) {
    let args = [
        "onboard",
        "apply",
        "--endpoint-url",
        endpoint,
        "--destination",
        "s3",
        "--bucket",
        bucket,
        "--prefix",
        "klarity-audit/",
        "--json",
    ];
    let out = dir.run(&args, None);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let handover: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!((handover["region"].as_str(), handover["prefix"].as_str()), (Some("us-east-1"), Some("klarity-audit/")));
    let field = |k: &str| handover[k].as_str().unwrap_or_else(|| panic!("{k} in {handover}")).to_owned();
    (field("roleArn"), field("externalId"), field("bucketArn"))
}

/// Registers tenant `id` for the bucket (`tenants add`, with `more`).
pub(crate) fn add_tenant(
    dir: &Dir,
    data: &str,
    id: &str,
    (role, external_id, bucket): (&str, &str, &str),
    more: &[&str],
) -> String {
    let add = [
        "tenants",
        "add",
        id,
        "--bucket-arn",
        bucket,
        "--region",
        "us-east-1",
        "--rollover",
        "1",
        "--role-arn",
        role,
        "--external-id",
        external_id,
    ];
    let out = dir.run(&[&add[..], more, &["--data-dir", data]].concat(), None);
    assert_eq!(out.code, 0, "{}", out.stderr);
    out.stdout
}

/// An AutoPatcher token for `tenants` (comma-separated).
pub(crate) fn token(dir: &Dir, data: &str, tenants: &str) -> String {
    let issued = dir.run(
        &["tokens", "issue", "--app", "com.nordcloudapp.com.autopatcher", "--tenants", tenants, "--data-dir", data],
        None,
    );
    assert_eq!(issued.code, 0, "{}", issued.stderr);
    issued.stdout.lines().nth(1).unwrap().to_owned()
}

/// Every object under `prefix`, copied down with `aws s3 cp --recursive`: (key, bytes).
pub(crate) fn objects(endpoint: &str, bucket: &str, prefix: &str, into: &Path) -> Vec<(String, Vec<u8>)> {
    let _ = std::fs::remove_dir_all(into);
    std::fs::create_dir_all(into).unwrap();
    aws_s3(
        endpoint,
        &["s3", "cp", "--recursive", "--only-show-errors", &format!("s3://{bucket}/{prefix}"), into.to_str().unwrap()],
    );
    let mut found = Vec::new();
    let mut stack = vec![into.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let key = format!("{prefix}{}", path.strip_prefix(into).unwrap().to_str().unwrap());
                found.push((key, std::fs::read(&path).unwrap()));
            }
        }
    }
    found.sort();
    found
}

/// The events of NDJSON objects (gzip): (key, events in the object's order).
pub(crate) fn ndjson(objects: &[(String, Vec<u8>)]) -> Vec<(String, Vec<Value>)> {
    objects
        .iter()
        .filter(|(key, _)| key.ends_with(".json.gz"))
        .map(|(key, bytes)| {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut text).unwrap();
            (key.clone(), text.lines().map(|l| serde_json::from_str(l).unwrap()).collect())
        })
        .collect()
}

/// How many times each UID is in the NDJSON objects under `prefix`.
pub(crate) fn stored_uids(endpoint: &str, bucket: &str, prefix: &str, into: &Path) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for (_, events) in ndjson(&objects(endpoint, bucket, prefix, into)) {
        for e in events {
            *seen.entry(e["UID"].as_str().unwrap().to_owned()).or_default() += 1;
        }
    }
    seen
}

/// Posts `events` to each of `tenants`, which accept them.
fn post(address: &str, token: &str, tenants: &[&str], events: &[Value]) {
    for tenant in tenants {
        let body = json!({"events": events}).to_string();
        let (status, answer) = http_post(address, &format!("/v1/tenants/{tenant}/events"), token, &body);
        assert_eq!(status, 202, "{answer}");
    }
}

pub(crate) fn wait_for(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + within;
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn event(uid: &str, event_time: &str, n: usize) -> Value {
    json!({"version": "v1", "userIdentity": {"type": "USER", "principalId": format!("ops{}@example.com", n % 3),
                                              "details": {"userName": format!("ops {}", n % 3)}},
           "eventSource": "com.nordcloudapp.com.autopatcher",
           "eventName": if n.is_multiple_of(4) { "baselinePatching.failed" } else { "baselinePatching.started" },
           "eventTime": event_time, "UID": uid, "sourceIPAddress": "203.0.113.7",
           "requestParameters": {"machinesCount": n}})
}

/// The pyarrow check of the OCSF objects: the class's required attributes, the layout's rules
/// (zstd, sorted by time), and the UIDs, as JSON.
const OCSF_CHECK: &str = r#"
import json, sys, pathlib
import pyarrow.parquet as pq
root = pathlib.Path(sys.argv[1])
uids, files = [], 0
required = ["activity_id", "category_uid", "class_uid", "severity_id", "time", "type_uid",
            "metadata", "api", "actor", "cloud", "src_endpoint"]
for path in sorted(root.rglob("*.parquet")):
    files += 1
    meta = pq.ParquetFile(path).metadata
    for g in range(meta.num_row_groups):
        for c in range(meta.num_columns):
            assert meta.row_group(g).column(c).compression == "ZSTD", (path, meta.row_group(g).column(c))
    rows = pq.read_table(path).to_pylist()
    times = [r["time"] for r in rows]
    assert times == sorted(times), f"{path}: not sorted by time"
    for r in rows:
        for name in required:
            assert r[name] is not None, f"{path}: {name} is null"
        assert r["class_uid"] == 6003 and r["category_uid"] == 6, r
        assert r["type_uid"] == 600300 + r["activity_id"], r
        assert r["metadata"]["version"] == "1.3.0" and r["metadata"]["product"]["vendor_name"], r
        assert r["api"]["operation"] and r["api"]["service"]["name"] == "com.nordcloudapp.com.autopatcher", r
        assert r["cloud"]["provider"] == "AWS" and r["cloud"]["account"]["uid"] == "123456789012", r
        assert r["actor"]["user"]["uid"].endswith("@example.com"), r
        assert r["src_endpoint"]["ip"] == "203.0.113.7", r
        assert r["status"] == ("Failure" if r["status_code"] else "Success"), r
        unmapped = dict(r["unmapped"])
        assert json.loads(unmapped["requestParameters"])["machinesCount"] >= 0, r
        uids.append(r["metadata"]["uid"])
print(json.dumps({"files": files, "uids": uids}))
"#;

#[test]
fn events_reach_s3_as_ndjson_and_ocsf_parquet_and_read_back_with_the_aws_cli_and_pyarrow() {
    let dir = Dir::new();
    let lake = LakeProcess::start(&dir.path().join("lake"));
    let (role, external_id, bucket_arn) = onboard(&dir, &lake.endpoint, "acme-audit");
    assert_eq!(bucket_arn, "arn:aws:s3:::acme-audit");
    // Applying again changes nothing that is right already.
    assert_eq!(onboard(&dir, &lake.endpoint, "acme-audit"), (role.clone(), external_id.clone(), bucket_arn.clone()));

    let data = dir.path().join("relay");
    let data = data.to_str().unwrap();
    let customer = (role.as_str(), external_id.as_str(), bucket_arn.as_str());
    let added = add_tenant(&dir, data, "acme", customer, &["--prefix", "klarity-audit/json/"]);
    assert!(added.contains("S3 bucket acme-audit under \"klarity-audit/json/\" as ndjson"), "{added}");
    add_tenant(&dir, data, "acme-ocsf", customer, &["--prefix", "klarity-audit/lake/", "--format", "ocsf-parquet"]);
    let token = token(&dir, data, "acme,acme-ocsf");
    let relay = RelayProcess::start_with(&dir.path().join("relay"), &lake.endpoint, &[]);

    // Events over two days, sent newest first: objects are per source and day, sorted by time.
    let now = audit_event::EventTime::now().unix_millis();
    let time = |ms: i64| audit_event::EventTime::from_unix(ms.div_euclid(1000), 0).to_string();
    let mut sent: BTreeMap<String, String> = BTreeMap::new();
    let events: Vec<Value> = (0..200)
        .map(|i| {
            let uid = format!("0190a6b5-7777-7a3f-9d2b-{i:012}");
            let at = time((now - i as i64 * 15 * 60_000) / 1000 * 1000);
            sent.insert(uid.clone(), at.clone());
            event(&uid, &at, i)
        })
        .collect();
    post(&relay.address, &token, &["acme", "acme-ocsf"], &events);

    // NDJSON, read back as the customer with the AWS CLI.
    let down = dir.path().join("down");
    wait_for("every event is in an NDJSON object", Duration::from_secs(30), || {
        stored_uids(&lake.endpoint, "acme-audit", "klarity-audit/json/", &down).len() >= sent.len()
    });
    let written = ndjson(&objects(&lake.endpoint, "acme-audit", "klarity-audit/json/", &down));
    let days: std::collections::BTreeSet<String> = sent.values().map(|t| t[..10].replace('-', "")).collect();
    assert!(days.len() >= 2, "the events span two days");
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (key, events) in &written {
        let rest = key
            .strip_prefix("klarity-audit/json/source=com-nordcloudapp-com-autopatcher/eventDay=")
            .unwrap_or_else(|| panic!("{key}"));
        let (day, file) = rest.split_once('/').unwrap();
        assert!(days.contains(day), "{key}");
        // FIRST-LAST-ENTRYID.json.gz
        let parts: Vec<&str> = file.trim_end_matches(".json.gz").splitn(3, '-').collect();
        assert!(parts[0].parse::<i64>().unwrap() <= parts[1].parse::<i64>().unwrap(), "{key}");
        let times: Vec<&str> = events.iter().map(|e| e["eventTime"].as_str().unwrap()).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{key}: sorted by time");
        for e in events {
            assert_eq!(e["eventTime"].as_str().unwrap()[..10].replace('-', ""), day, "{key}: one day per object");
            assert_eq!(e["recipientAccountId"], "123456789012");
            *seen.entry(e["UID"].as_str().unwrap().to_owned()).or_default() += 1;
        }
    }
    assert_eq!(seen.len(), sent.len(), "every event");
    assert!(seen.values().all(|&n| n == 1), "nothing twice");
    // One object is read with s3api get-object too, as the printed commands do.
    let (key, _) = &written[0];
    let target = dir.path().join("one.json.gz");
    aws_s3(&lake.endpoint, &["s3api", "get-object", "--bucket", "acme-audit", "--key", key, target.to_str().unwrap()]);
    assert!(!ndjson(&[(key.clone(), std::fs::read(&target).unwrap())])[0].1.is_empty());

    // OCSF Parquet in Security Lake's layout, read with pyarrow.
    let lake_down = dir.path().join("ocsf");
    let check = || -> Option<Value> {
        let found = objects(&lake.endpoint, "acme-audit", "klarity-audit/lake/", &lake_down);
        for (key, _) in &found {
            let rest = key.strip_prefix("klarity-audit/lake/ext/com-nordcloudapp-com-autopatcher/region=us-east-1/accountId=123456789012/eventDay=").unwrap_or_else(|| panic!("{key}"));
            assert!(days.contains(&rest[..8]) && rest.ends_with(".parquet"), "{key}");
        }
        let out =
            Command::new("python3").args(["-c", OCSF_CHECK, lake_down.to_str().unwrap()]).output().expect("python3");
        assert!(out.status.success(), "pyarrow check: {}", String::from_utf8_lossy(&out.stderr));
        let result: Value = serde_json::from_slice(&out.stdout).unwrap();
        (result["uids"].as_array().unwrap().len() >= sent.len()).then_some(result)
    };
    let mut result = None;
    wait_for("every event is in an OCSF object", Duration::from_secs(30), || {
        result = check();
        result.is_some()
    });
    let result = result.unwrap();
    let uids: std::collections::BTreeSet<&str> =
        result["uids"].as_array().unwrap().iter().map(|u| u.as_str().unwrap()).collect();
    assert_eq!((uids.len(), result["uids"].as_array().unwrap().len()), (sent.len(), sent.len()), "every event once");
    assert!(result["files"].as_u64().unwrap() >= 2, "one file per day at least: {result}");

    // The delivered event says which object holds it.
    let (_, status) =
        crate::relay_logs::get(&relay.address, "/v1/tenants/acme/events/0190a6b5-7777-7a3f-9d2b-000000000000", &token);
    assert_eq!(status["state"], "delivered", "{status}");
    assert!(
        status["eventID"]
            .as_str()
            .unwrap()
            .starts_with("klarity-audit/json/source=com-nordcloudapp-com-autopatcher/eventDay="),
        "{status}"
    );

    // The canary works through the same role, and says where it went.
    let out = dir.run_with(
        &["tenants", "verify", "acme-ocsf", "--data-dir", data],
        None,
        &[("KLARITY_RELAY__ENDPOINT_URL", &lake.endpoint)],
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("PutObject wrote the canary to s3://acme-audit/klarity-audit/lake/ext/"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_missing_bucket_or_a_forbidden_prefix_pauses_the_tenant_keeps_its_events_and_delivery_resumes() {
    let dir = Dir::new();
    let lake = LakeProcess::start(&dir.path().join("lake"));
    let (role, external_id, bucket_arn) = onboard(&dir, &lake.endpoint, "audit-gone");
    // The customer deletes the bucket before anything is delivered.
    aws_s3(&lake.endpoint, &["s3api", "delete-bucket", "--bucket", "audit-gone"]);

    let data = dir.path().join("relay");
    let data = data.to_str().unwrap();
    let customer = (role.as_str(), external_id.as_str(), bucket_arn.as_str());
    add_tenant(&dir, data, "acme", customer, &[]);
    // The role may put objects under klarity-audit/ only.
    add_tenant(&dir, data, "acme-elsewhere", customer, &["--prefix", "elsewhere/"]);
    let token = token(&dir, data, "acme,acme-elsewhere");
    let relay = RelayProcess::start_with(
        &dir.path().join("relay"),
        &lake.endpoint,
        &[("KLARITY_RELAY__PROBE_INTERVAL_SECS", "1")],
    );

    let now = audit_event::EventTime::now().to_string();
    let events: Vec<Value> = (0..50).map(|i| event(&format!("0190a6b5-8888-7a3f-9d2b-{i:012}"), &now, i)).collect();
    post(&relay.address, &token, &["acme", "acme-elsewhere"], &events);
    let show = |id: &str| {
        let out = dir.run(&["tenants", "show", id, "--data-dir", data], None);
        serde_json::from_str::<Value>(&out.stdout).unwrap()
    };
    wait_for("both tenants are paused", Duration::from_secs(20), || {
        show("acme")["paused"].is_string() && show("acme-elsewhere")["paused"].is_string()
    });
    let reason = show("acme")["paused"].as_str().unwrap().to_owned();
    assert!(reason.contains("bucket audit-gone does not exist"), "{reason}");
    let reason = show("acme-elsewhere")["paused"].as_str().unwrap().to_owned();
    assert!(reason.contains("may not write s3://audit-gone/elsewhere/") && reason.contains("AccessDenied"), "{reason}");
    let verify = |id: &str| {
        dir.run_with(
            &["tenants", "verify", id, "--data-dir", data],
            None,
            &[("KLARITY_RELAY__ENDPOINT_URL", &lake.endpoint)],
        )
    };
    let out = verify("acme");
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(out.stdout.contains("the bucket audit-gone does not exist"), "{}", out.stdout);
    let out = verify("acme-elsewhere");
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stdout.contains("its policy must allow s3:PutObject on arn:aws:s3:::audit-gone/elsewhere/*"),
        "{}",
        out.stdout
    );
    let (_, one) =
        crate::relay_logs::get(&relay.address, "/v1/tenants/acme/events/0190a6b5-8888-7a3f-9d2b-000000000000", &token);
    assert_eq!(one["state"], "pending", "kept while paused: {one}");

    // The customer makes the bucket again: the probe finds it, and every event arrives once.
    aws_s3(&lake.endpoint, &["s3api", "create-bucket", "--bucket", "audit-gone"]);
    wait_for("the tenant resumes by itself", Duration::from_secs(20), || show("acme")["paused"].is_null());
    let down = dir.path().join("down");
    wait_for("every event is delivered", Duration::from_secs(20), || {
        stored_uids(&lake.endpoint, "audit-gone", "klarity-audit/", &down).len() >= 50
    });
    let stored = stored_uids(&lake.endpoint, "audit-gone", "klarity-audit/", &down);
    assert_eq!(stored.len(), 50);
    assert!(stored.values().all(|&n| n == 1));
    // The forbidden one stays paused, its events kept.
    assert!(show("acme-elsewhere")["paused"].is_string());
}

/// What the fault proxy does with one `PutObject` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Forward it and its answer.
    Pass,
    /// Answer 503 `SlowDown` (S3's throttling) without forwarding.
    SlowDown,
    /// Answer 500 `InternalError` without forwarding.
    Internal,
    /// Close the connection without forwarding or answering.
    Drop,
    /// Forward it (the lake stores the object), then close without answering: the relay cannot
    /// know and writes the object again, under the same key.
    LoseAnswer,
}

/// The faults a proxy injected, each with the path (bucket and key) of its `PutObject`.
type Injected = std::sync::Arc<std::sync::Mutex<Vec<(Fault, String)>>>;

/// An S3 error answer, as S3 writes it.
fn s3_error(status: &str, code: &str) -> Vec<u8> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>injected by the fault proxy</Message></Error>"
    );
    let headers = vec![
        ("Content-Type".to_owned(), "application/xml".to_owned()),
        ("Content-Length".to_owned(), body.len().to_string()),
        ("Connection".to_owned(), "close".to_owned()),
    ];
    crate::relay_faults::message(&format!("HTTP/1.1 {status}"), &headers, body.as_bytes())
}

/// A fault-injecting HTTP proxy in front of the lake (a test double: the faults must be injected
/// on purpose). It applies `plan[n]` to the n-th `PutObject` (then passes them) and forwards
/// everything else (STS) untouched. Returns its endpoint and the faults injected, with the path
/// (bucket and key) of each.
fn start_s3_proxy(runtime: &tokio::runtime::Runtime, upstream: String, plan: Vec<Fault>) -> (String, Injected) {
    use crate::relay_faults::{Act, start_planned_proxy};
    let record: Injected = std::sync::Arc::default();
    let kept = record.clone();
    let endpoint = start_planned_proxy(
        runtime.handle(),
        upstream,
        plan,
        |head| head.starts_with("PUT "),
        |fault| match fault {
            Fault::Pass => Act::Pass,
            Fault::SlowDown => Act::Answer(s3_error("503 Slow Down", "SlowDown")),
            Fault::Internal => Act::Answer(s3_error("500 Internal Server Error", "InternalError")),
            Fault::Drop => Act::Drop,
            Fault::LoseAnswer => Act::LoseAnswer,
        },
        move |fault, head, _, _| {
            if fault != Fault::Pass {
                let path = head.split(' ').nth(1).unwrap_or("").split('?').next().unwrap_or("").to_owned();
                kept.lock().unwrap().push((fault, path));
            }
        },
    );
    (endpoint, record)
}

#[test]
fn through_slowdowns_500s_dropped_calls_and_lost_answers_every_event_is_in_exactly_one_object() {
    let dir = Dir::new();
    let lake_log = dir.path().join("lake.log");
    let lake = LakeProcess::start_logging(&dir.path().join("lake"), Some(&lake_log));
    let (role, external_id, bucket_arn) = onboard(&dir, &lake.endpoint, "audit-faults");
    let data = dir.path().join("relay");
    let data = data.to_str().unwrap();
    add_tenant(&dir, data, "acme", (&role, &external_id, &bucket_arn), &[]);
    let token = token(&dir, data, "acme");

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    use Fault::*;
    let plan =
        vec![SlowDown, LoseAnswer, Internal, Drop, LoseAnswer, Pass, SlowDown, LoseAnswer, Pass, Internal, LoseAnswer];
    let upstream = lake.endpoint.trim_start_matches("http://").to_owned();
    let (proxy, record) = start_s3_proxy(&runtime, upstream, plan.clone());
    let relay =
        RelayProcess::start_with(&dir.path().join("relay"), &proxy, &[("KLARITY_RELAY__DELIVERY_CONCURRENCY", "2")]);

    // Waves of events, so that delivery writes many objects: ten, then more until every planned
    // fault has been injected. How many objects ten waves make depends on the host's speed (a
    // slow one gathers the waves that came during a backoff into one object, so fewer calls are
    // made than the plan has faults).
    let planned = plan.iter().filter(|f| **f != Pass).count();
    let now = audit_event::EventTime::now().to_string();
    let mut uids = Vec::new();
    let mut wave = 0;
    while wave < 10 || record.lock().unwrap().len() < planned {
        assert!(wave < 150, "after {wave} waves, faults injected: {:?}", record.lock().unwrap());
        let events: Vec<Value> = (0..40)
            .map(|i| {
                let uid = format!("0190a6b5-9999-7a3f-9d2b-{:012}", wave * 40 + i);
                uids.push(uid.clone());
                event(&uid, &now, i)
            })
            .collect();
        let (status, answer) =
            http_post(&relay.address, "/v1/tenants/acme/events", &token, &json!({"events": events}).to_string());
        assert_eq!(status, 202, "{answer}");
        std::thread::sleep(Duration::from_millis(400));
        wave += 1;
    }
    let down = dir.path().join("down");
    wait_for("every event is delivered", Duration::from_secs(60), || {
        stored_uids(&lake.endpoint, "audit-faults", "klarity-audit/", &down).len() >= uids.len()
    });
    // Once the relay has recorded every event as delivered, it writes no more objects: what the
    // bucket holds now is final.
    wait_for("the relay has recorded every event delivered", Duration::from_secs(30), || {
        uids.iter().all(|uid| {
            crate::relay_logs::get(&relay.address, &format!("/v1/tenants/acme/events/{uid}"), &token).1["state"]
                == "delivered"
        })
    });
    let stored = stored_uids(&lake.endpoint, "audit-faults", "klarity-audit/", &down);
    drop(relay);
    let faults = record.lock().unwrap().clone();
    assert_eq!(faults.len(), planned, "every fault was injected: {faults:?}");
    assert_eq!(stored.len(), uids.len(), "nothing lost");
    assert!(stored.values().all(|&n| n == 1), "every event in exactly one object, lost answers included: {faults:?}");
    // Each lost answer's object was written again under the same key: it is there once.
    let keys: Vec<String> =
        objects(&lake.endpoint, "audit-faults", "klarity-audit/", &down).into_iter().map(|(k, _)| k).collect();
    let rewritten: Vec<String> = std::fs::read_to_string(&lake_log)
        .unwrap()
        .lines()
        .filter(|l| l.contains("was written again under its key"))
        .map(str::to_owned)
        .collect();
    for (fault, path) in faults.iter().filter(|(f, _)| *f == LoseAnswer) {
        let key = percent_encoding::percent_decode_str(path.trim_start_matches("/audit-faults/")).decode_utf8_lossy();
        assert!(keys.iter().any(|k| *k == key), "{fault:?} {key} is stored");
        assert!(
            rewritten.iter().any(|l| l.contains(&*key)),
            "{key} was written again, replacing itself: {rewritten:?}"
        );
    }
}
