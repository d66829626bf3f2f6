//! The lake driven by the real AWS CLI and boto3, with only the endpoint changed: the seed's
//! resource-policy flow end to end. Both tools must be installed (`.ci/run` installs them).

use std::process::Command;

use audit_lake::config::{
    CUSTOMER_ACCESS_KEY_ID, CUSTOMER_SECRET_ACCESS_KEY, VENDOR_ACCESS_KEY_ID, VENDOR_SECRET_ACCESS_KEY,
};

use crate::support::{Dir, LakeProcess};

struct Aws<'a> {
    endpoint: &'a str,
    key: (&'a str, &'a str),
    token: Option<&'a str>,
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Aws<'_> {
    fn run(&self, args: &[&str]) -> Run {
        let out = Command::new("aws")
            .args(["--endpoint-url", self.endpoint, "--region", "us-east-1", "--output", "json"])
            .args(args)
            .env("AWS_ACCESS_KEY_ID", self.key.0)
            .env("AWS_SECRET_ACCESS_KEY", self.key.1)
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_PAGER", "")
            .env("AWS_SESSION_TOKEN", self.token.unwrap_or(""))
            .env_remove("AWS_PROFILE")
            .output()
            .expect("the AWS CLI (`aws`) must be installed: pip install awscli (.ci/run installs it)");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into(),
            stderr: String::from_utf8_lossy(&out.stderr).into(),
        }
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> serde_json::Value {
        let run = self.run(args);
        assert_eq!(run.code, 0, "aws {args:?}: {}", run.stderr);
        if run.stdout.trim().is_empty() { serde_json::Value::Null } else { serde_json::from_str(&run.stdout).unwrap() }
    }
}

/// An event data store of integration events and a `Custom` channel into it, made with the AWS
/// CLI; returns their ARNs.
fn integration_channel(customer: &Aws<'_>, name: &str) -> (String, String) {
    let store = customer.ok(&[
        "cloudtrail",
        "create-event-data-store",
        "--name",
        name,
        "--advanced-event-selectors",
        r#"[{"Name":"Klarity","FieldSelectors":[{"Field":"eventCategory","Equals":["ActivityAuditLog"]}]}]"#,
    ]);
    let store_arn = store["EventDataStoreArn"].as_str().unwrap().to_owned();
    let destination = format!("Type=EVENT_DATA_STORE,Location={store_arn}");
    let channel = customer.ok(&[
        "cloudtrail",
        "create-channel",
        "--name",
        name,
        "--source",
        "Custom",
        "--destinations",
        &destination,
    ]);
    (store_arn, channel["ChannelArn"].as_str().unwrap().to_owned())
}

fn event(uid: &str) -> String {
    serde_json::json!({
        "version": "v1",
        "userIdentity": {"type": "USER", "principalId": "name@example.com"},
        "eventSource": "com.nordcloudapp.com.maestro",
        "eventName": "deployment.created",
        "eventTime": "2024-07-12T10:55:00Z",
        "UID": uid,
        "requestParameters": {"deploymentId": "5c4b3a29-1807-4f6e-9d5c-4b3a29180706"},
        "recipientAccountId": "123456789012"
    })
    .to_string()
}

fn audit_events(id: &str, uid: &str) -> String {
    serde_json::json!([{"id": id, "eventData": event(uid)}]).to_string()
}

#[test]
fn the_aws_cli_runs_the_seed_flow() {
    let dir = Dir::new();
    let lake = LakeProcess::start(&dir.path().join("lake"));
    let customer =
        Aws { endpoint: &lake.endpoint, key: (CUSTOMER_ACCESS_KEY_ID, CUSTOMER_SECRET_ACCESS_KEY), token: None };
    let vendor = Aws { endpoint: &lake.endpoint, key: (VENDOR_ACCESS_KEY_ID, VENDOR_SECRET_ACCESS_KEY), token: None };

    let me = customer.ok(&["sts", "get-caller-identity"]);
    assert_eq!(me["Account"], "123456789012");
    let store = customer.ok(&[
        "cloudtrail",
        "create-event-data-store",
        "--name",
        "klarity-events",
        "--no-multi-region-enabled",
        "--retention-period",
        "90",
        "--advanced-event-selectors",
        r#"[{"Name":"Klarity","FieldSelectors":[{"Field":"eventCategory","Equals":["ActivityAuditLog"]}]}]"#,
    ]);
    let store_arn = store["EventDataStoreArn"].as_str().unwrap().to_owned();
    let store_id = store_arn.rsplit('/').next().unwrap().to_owned();
    // The seed's own command passes the store's id as the destination.
    let channel = customer.ok(&[
        "cloudtrail",
        "create-channel",
        "--name",
        "klarity-channel",
        "--source",
        "IBMMulticloud",
        "--destinations",
        &format!("Type=EVENT_DATA_STORE,Location={store_id}"),
    ]);
    let channel_arn = channel["ChannelArn"].as_str().unwrap().to_owned();
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"KlarityPublisher","Effect":"Allow","Principal":{{"AWS":["arn:aws:iam::855341727128:root"]}},"Action":"cloudtrail-data:PutAuditEvents","Resource":"{channel_arn}","Condition":{{"StringEquals":{{"cloudtrail:ExternalId":"klarity-4f1d2"}}}}}}]}}"#
    );
    customer.ok(&["cloudtrail", "put-resource-policy", "--resource-arn", &channel_arn, "--resource-policy", &policy]);
    let listed = customer.ok(&["cloudtrail", "list-channels"]);
    assert_eq!(listed["Channels"][0]["ChannelArn"], channel_arn.as_str());

    // The owner and the partner with the right external id: accepted.
    let out = customer.ok(&[
        "cloudtrail-data",
        "put-audit-events",
        "--channel-arn",
        &channel_arn,
        "--audit-events",
        &audit_events("owner-1", "0190a6b6-4444-7a3f-9d2b-000000000001"),
    ]);
    assert_eq!(out["successful"][0]["id"], "owner-1");
    let out = vendor.ok(&[
        "cloudtrail-data",
        "put-audit-events",
        "--channel-arn",
        &channel_arn,
        "--external-id",
        "klarity-4f1d2",
        "--audit-events",
        &audit_events("vendor-1", "0190a6b6-4444-7a3f-9d2b-000000000002"),
    ]);
    assert_eq!(out["successful"][0]["id"], "vendor-1", "{out}");
    // A wrong external id, and none: refused.
    for external in [Some("klarity-wrong"), None] {
        let mut args = vec!["cloudtrail-data", "put-audit-events", "--channel-arn", &channel_arn];
        if let Some(id) = external {
            args.extend(["--external-id", id]);
        }
        let events = audit_events("vendor-2", "0190a6b6-4444-7a3f-9d2b-000000000003");
        args.extend(["--audit-events", &events]);
        let run = vendor.run(&args);
        assert_ne!(run.code, 0);
        assert!(run.stderr.contains("(ChannelInsufficientPermission)"), "{external:?}: {}", run.stderr);
    }
    // A modelled error of the control plane, as the CLI reports it.
    let run = customer.run(&[
        "cloudtrail",
        "get-event-data-store",
        "--event-data-store",
        "00000000-0000-0000-0000-000000000000",
    ]);
    assert!(run.stderr.contains("(EventDataStoreNotFoundException)"), "{}", run.stderr);

    let status = customer.ok(&["cloudtrail", "get-channel", "--channel", &channel_arn]);
    assert!(status["IngestionStatus"]["LatestIngestionSuccessEventID"].is_string(), "{status}");

    // Read back.
    let out =
        dir.run(&["lake", "dump", "--data-dir", dir.path().join("lake").to_str().unwrap(), "--store", &store_id], None);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let ids: Vec<String> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["eventData"]["UID"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, vec!["0190a6b6-4444-7a3f-9d2b-000000000001", "0190a6b6-4444-7a3f-9d2b-000000000002"]);
}

#[test]
fn boto3_runs_the_seed_flow_and_raises_modelled_exceptions() {
    let dir = Dir::new();
    let lake = LakeProcess::start(&dir.path().join("lake"));
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts/boto3_lake.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(&lake.endpoint)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("python3 must be installed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "boto3 script failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("boto3 seed flow: ok"), "{stdout}");
    assert!(stdout.contains("boto3 proxy user flow: ok"), "{stdout}");
    assert!(stdout.contains("boto3 conformance: ok"), "{stdout}");
    assert!(stdout.contains("boto3 cloudwatch logs: ok"), "{stdout}");
}

/// The seed's role mode through the AWS CLI: the customer's role trusting the vendor account under
/// an external ID (the trust of `iamRole.cloudformation.yml`) with only PutAuditEvents on the
/// channel; the vendor assumes it and publishes; a wrong or missing external ID is refused.
#[test]
fn the_aws_cli_runs_the_role_flow() {
    let dir = Dir::new();
    let lake = LakeProcess::start(&dir.path().join("lake"));
    let customer =
        Aws { endpoint: &lake.endpoint, key: (CUSTOMER_ACCESS_KEY_ID, CUSTOMER_SECRET_ACCESS_KEY), token: None };
    let vendor = Aws { endpoint: &lake.endpoint, key: (VENDOR_ACCESS_KEY_ID, VENDOR_SECRET_ACCESS_KEY), token: None };
    let (_store_arn, channel_arn) = integration_channel(&customer, "role-mode");
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::855341727128:root"},"Action":"sts:AssumeRole","Condition":{"StringEquals":{"sts:ExternalId":"Kl4r1tyExt01"}}}]}"#;
    let role = customer.ok(&[
        "iam",
        "create-role",
        "--role-name",
        "KlarityCloudTrailIntegration",
        "--assume-role-policy-document",
        trust,
    ]);
    let role_arn = role["Role"]["Arn"].as_str().unwrap().to_owned();
    let permissions = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"cloudtrail-data:PutAuditEvents","Resource":"{channel_arn}"}}]}}"#
    );
    customer.ok(&[
        "iam",
        "put-role-policy",
        "--role-name",
        "KlarityCloudTrailIntegration",
        "--policy-name",
        "root",
        "--policy-document",
        &permissions,
    ]);
    // The seed's own broad policy (policy.json, copied unchanged) is accepted as well.
    let seed_policy =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/seed-policy.json"))
            .unwrap();
    let role_name = "KlarityCloudTrailIntegration";
    customer.ok(&[
        "iam",
        "put-role-policy",
        "--role-name",
        role_name,
        "--policy-name",
        "seed",
        "--policy-document",
        &seed_policy,
    ]);
    let names = customer.ok(&["iam", "list-role-policies", "--role-name", role_name]);
    assert_eq!(names["PolicyNames"], serde_json::json!(["root", "seed"]));
    customer.ok(&["iam", "delete-role-policy", "--role-name", role_name, "--policy-name", "seed"]);
    let got = customer.ok(&[
        "iam",
        "get-role-policy",
        "--role-name",
        "KlarityCloudTrailIntegration",
        "--policy-name",
        "root",
    ]);
    assert_eq!(
        got["PolicyDocument"]["Statement"][0]["Action"], "cloudtrail-data:PutAuditEvents",
        "the CLI decodes the URL-encoded document: {got}"
    );

    for wrong in [vec!["--external-id", "WrongExt0000"], vec![]] {
        let mut args = vec!["sts", "assume-role", "--role-arn", &role_arn, "--role-session-name", "klarity"];
        args.extend(wrong.iter().copied());
        let run = vendor.run(&args);
        assert!(run.stderr.contains("(AccessDenied)"), "{wrong:?}: {}", run.stderr);
    }
    let creds = vendor.ok(&[
        "sts",
        "assume-role",
        "--role-arn",
        &role_arn,
        "--role-session-name",
        "klarity",
        "--external-id",
        "Kl4r1tyExt01",
    ]);
    let (id, secret, token) = (
        creds["Credentials"]["AccessKeyId"].as_str().unwrap().to_owned(),
        creds["Credentials"]["SecretAccessKey"].as_str().unwrap().to_owned(),
        creds["Credentials"]["SessionToken"].as_str().unwrap().to_owned(),
    );
    let session = Aws { endpoint: &lake.endpoint, key: (&id, &secret), token: Some(&token) };
    let me = session.ok(&["sts", "get-caller-identity"]);
    assert_eq!(me["Arn"], "arn:aws:sts::123456789012:assumed-role/KlarityCloudTrailIntegration/klarity");
    let out = session.ok(&[
        "cloudtrail-data",
        "put-audit-events",
        "--channel-arn",
        &channel_arn,
        "--audit-events",
        &audit_events("role-1", "0190a6b6-4444-7a3f-9d2b-000000000009"),
    ]);
    assert_eq!(out["successful"][0]["id"], "role-1", "{out}");
    let run = session.run(&["cloudtrail", "list-channels"]);
    assert!(run.stderr.contains("(AccessDeniedException)"), "{}", run.stderr);
}

#[test]
fn accounts_created_at_run_time_are_honoured_at_once() {
    let dir = Dir::new();
    let data = dir.path().join("lake");
    let lake = LakeProcess::start(&data);
    let out = dir.run(
        &["lake", "accounts", "create", "--name", "acme", "--id", "111122223333", "--data-dir", data.to_str().unwrap()],
        None,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let key = |name: &str| out.stdout.lines().find_map(|l| l.strip_prefix(&format!("{name}="))).unwrap().to_owned();
    let (id, secret) = (key("AWS_ACCESS_KEY_ID"), key("AWS_SECRET_ACCESS_KEY"));
    let acme = Aws { endpoint: &lake.endpoint, key: (&id, &secret), token: None };
    assert_eq!(acme.ok(&["sts", "get-caller-identity"])["Account"], "111122223333");
    let listed = dir.run(&["lake", "accounts", "--data-dir", data.to_str().unwrap()], None);
    assert!(listed.stdout.contains("111122223333   acme"), "{}", listed.stdout);
    assert!(!listed.stdout.contains(&secret), "secrets are never listed");
    let again = dir.run(
        &["lake", "accounts", "create", "--name", "acme", "--id", "111122223333", "--data-dir", data.to_str().unwrap()],
        None,
    );
    assert_eq!((again.code, again.stderr.as_str()), (2, "error: account 111122223333 already exists\n"));
}

#[test]
fn the_aws_cli_queries_the_lake() {
    let dir = Dir::new();
    let lake = LakeProcess::start(&dir.path().join("lake"));
    let customer =
        Aws { endpoint: &lake.endpoint, key: (CUSTOMER_ACCESS_KEY_ID, CUSTOMER_SECRET_ACCESS_KEY), token: None };
    let store = customer.ok(&[
        "cloudtrail",
        "create-event-data-store",
        "--name",
        "klarity-events",
        "--no-multi-region-enabled",
        "--advanced-event-selectors",
        r#"[{"Name":"Klarity","FieldSelectors":[{"Field":"eventCategory","Equals":["ActivityAuditLog"]}]}]"#,
    ]);
    let store_arn = store["EventDataStoreArn"].as_str().unwrap().to_owned();
    let store_id = store_arn.rsplit('/').next().unwrap().to_owned();
    let channel = customer.ok(&[
        "cloudtrail",
        "create-channel",
        "--name",
        "klarity-channel",
        "--source",
        "Custom",
        "--destinations",
        &format!("Type=EVENT_DATA_STORE,Location={store_arn}"),
    ]);
    let channel_arn = channel["ChannelArn"].as_str().unwrap().to_owned();
    // Events of today, so they are within the store's retention.
    let now = audit_event::EventTime::now().to_string();
    let events: Vec<serde_json::Value> = (0..30)
        .map(|i| {
            let mut data: serde_json::Value =
                serde_json::from_str(&event(&format!("0190a6b6-5555-7a3f-9d2b-{i:012}"))).unwrap();
            data["eventTime"] = serde_json::json!(now);
            data["eventName"] =
                serde_json::json!(if i % 3 == 0 { "deployment.completed" } else { "deployment.created" });
            serde_json::json!({"id": format!("e{i}"), "eventData": data.to_string()})
        })
        .collect();
    let out = customer.ok(&[
        "cloudtrail-data",
        "put-audit-events",
        "--channel-arn",
        &channel_arn,
        "--audit-events",
        &serde_json::Value::Array(events).to_string(),
    ]);
    assert_eq!(out["successful"].as_array().unwrap().len(), 30, "{out}");

    // start-query, describe-query until it ends, get-query-results page by page.
    let sql = format!(
        "SELECT eventData.eventName, count(*) AS events FROM {store_id} WHERE eventTime > '2020-01-01 00:00:00' GROUP BY 1 ORDER BY 1"
    );
    let started = customer.ok(&["cloudtrail", "start-query", "--query-statement", &sql]);
    let query_id = started["QueryId"].as_str().unwrap().to_owned();
    let described = wait(&customer, &query_id);
    assert_eq!(described["QueryStatus"], "FINISHED", "{described}");
    assert_eq!(described["QueryStatistics"]["EventsScanned"], 30, "{described}");
    assert_eq!(described["QueryString"], sql.as_str());
    let results =
        customer.ok(&["cloudtrail", "get-query-results", "--query-id", &query_id, "--max-query-results", "1"]);
    assert_eq!(
        results["QueryResultRows"],
        serde_json::json!([[{"eventName": "deployment.completed"}, {"events": "10"}]]),
        "{results}"
    );
    let token = results["NextToken"].as_str().unwrap();
    let rest = customer.ok(&["cloudtrail", "get-query-results", "--query-id", &query_id, "--next-token", token]);
    assert_eq!(rest["QueryResultRows"], serde_json::json!([[{"eventName": "deployment.created"}, {"events": "20"}]]));
    assert!(rest.get("NextToken").is_none(), "{rest}");

    // list-queries by store; cancel-query on a finished query is refused.
    let listed = customer.ok(&["cloudtrail", "list-queries", "--event-data-store", &store_arn]);
    assert_eq!(listed["Queries"][0]["QueryId"], query_id.as_str(), "{listed}");
    assert_eq!(listed["Queries"][0]["QueryStatus"], "FINISHED");
    let run = customer.run(&["cloudtrail", "cancel-query", "--query-id", &query_id]);
    assert!(run.stderr.contains("(InactiveQueryException)"), "{}", run.stderr);

    // A long query is cancelled while it runs (the filter keeps the count from coming from the
    // tables' row counts alone).
    let slow = format!(
        "SELECT count(*) FROM {store_id} a, {store_id} b, {store_id} c, {store_id} d, {store_id} e, {store_id} f \
         WHERE a.eventData.UID <> f.eventData.eventName"
    );
    let started = customer.ok(&["cloudtrail", "start-query", "--query-statement", &slow]);
    let slow_id = started["QueryId"].as_str().unwrap();
    let cancelled = customer.ok(&["cloudtrail", "cancel-query", "--query-id", slow_id]);
    assert_eq!(cancelled["QueryStatus"], "CANCELLED", "{cancelled}");
    assert_eq!(wait(&customer, slow_id)["QueryStatus"], "CANCELLED");

    // Anything but a SELECT is refused with the modelled exception.
    let run = customer.run(&["cloudtrail", "start-query", "--query-statement", &format!("DELETE FROM {store_id}")]);
    assert!(run.stderr.contains("(InvalidQueryStatementException)"), "{}", run.stderr);
    assert!(run.stderr.contains("Only SELECT statements are allowed"), "{}", run.stderr);
}

/// `describe-query` until the query is neither queued nor running.
fn wait(aws: &Aws<'_>, query_id: &str) -> serde_json::Value {
    for _ in 0..600 {
        let described = aws.ok(&["cloudtrail", "describe-query", "--query-id", query_id]);
        if !matches!(described["QueryStatus"].as_str(), Some("QUEUED" | "RUNNING")) {
            return described;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("query {query_id} did not end within a minute");
}

/// Scans the stored UIDs of a store in a lake's data directory.
fn stored_uids(lake_dir: &std::path::Path, store_arn: &str) -> Vec<String> {
    let id = store_arn.rsplit('/').next().unwrap();
    let mut uids = Vec::new();
    audit_lake::columnar::scan_store(&lake_dir.join(audit_lake::store::DB_FILE), id, |record| {
        let value: serde_json::Value = serde_json::from_str(record).unwrap();
        uids.push(value["eventData"]["UID"].as_str().unwrap().to_owned());
        true
    })
    .unwrap();
    uids.sort();
    uids
}

#[test]
fn the_aws_cli_makes_a_proxy_user_and_send_direct_publishes_with_only_its_keys() {
    let dir = Dir::new();
    let lake_dir = dir.path().join("lake");
    let lake = LakeProcess::start(&lake_dir);
    let customer =
        Aws { endpoint: &lake.endpoint, key: (CUSTOMER_ACCESS_KEY_ID, CUSTOMER_SECRET_ACCESS_KEY), token: None };
    let vendor = Aws { endpoint: &lake.endpoint, key: (VENDOR_ACCESS_KEY_ID, VENDOR_SECRET_ACCESS_KEY), token: None };

    // The customer's side, as the seed hands it over: store, channel, role with an external ID.
    let (store_arn, channel_arn) = integration_channel(&customer, "direct");
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::855341727128:root"},"Action":"sts:AssumeRole","Condition":{"StringEquals":{"sts:ExternalId":"Kl4r1tyExt02"}}}]}"#;
    let role =
        customer.ok(&["iam", "create-role", "--role-name", "CTEventPublisher", "--assume-role-policy-document", trust]);
    let role_arn = role["Role"]["Arn"].as_str().unwrap().to_owned();
    let publish = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"cloudtrail-data:PutAuditEvents","Resource":"{channel_arn}"}}]}}"#
    );
    customer.ok(&[
        "iam",
        "put-role-policy",
        "--role-name",
        "CTEventPublisher",
        "--policy-name",
        "publish",
        "--policy-document",
        &publish,
    ]);

    // The vendor's side: the proxy role, and the proxy user allowed only to assume it.
    let vendor_trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::855341727128:root"},"Action":"sts:AssumeRole"}]}"#;
    let proxy = vendor.ok(&[
        "iam",
        "create-role",
        "--role-name",
        "KlarityProxy",
        "--assume-role-policy-document",
        vendor_trust,
    ]);
    let proxy_arn = proxy["Role"]["Arn"].as_str().unwrap().to_owned();
    let chain = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"arn:aws:iam::*:role/*"}]}"#;
    vendor.ok(&[
        "iam",
        "put-role-policy",
        "--role-name",
        "KlarityProxy",
        "--policy-name",
        "chain",
        "--policy-document",
        chain,
    ]);
    let user = vendor.ok(&["iam", "create-user", "--user-name", "klarity-proxy-user"]);
    assert_eq!(user["User"]["Arn"], "arn:aws:iam::855341727128:user/klarity-proxy-user");
    let only_proxy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"{proxy_arn}"}}]}}"#
    );
    vendor.ok(&[
        "iam",
        "put-user-policy",
        "--user-name",
        "klarity-proxy-user",
        "--policy-name",
        "proxy",
        "--policy-document",
        &only_proxy,
    ]);
    let key = vendor.ok(&["iam", "create-access-key", "--user-name", "klarity-proxy-user"]);
    let (key_id, secret) = (
        key["AccessKey"]["AccessKeyId"].as_str().unwrap().to_owned(),
        key["AccessKey"]["SecretAccessKey"].as_str().unwrap().to_owned(),
    );
    let listed = vendor.ok(&["iam", "list-access-keys", "--user-name", "klarity-proxy-user"]);
    assert_eq!(listed["AccessKeyMetadata"][0]["Status"], "Active");
    assert!(listed["AccessKeyMetadata"][0].get("SecretAccessKey").is_none(), "{listed}");
    let users = vendor.ok(&["iam", "list-users"]);
    assert_eq!(users["Users"][0]["UserName"], "klarity-proxy-user");
    let me = Aws { endpoint: &lake.endpoint, key: (&key_id, &secret), token: None }.ok(&["sts", "get-caller-identity"]);
    assert_eq!(me["Arn"], "arn:aws:iam::855341727128:user/klarity-proxy-user");

    // Two valid events (one without UID and recipientAccountId: filled in as the relay does) and
    // one the catalog refuses.
    let catalog = audit_event::Catalog::embedded();
    let maestro = catalog.applications().iter().find(|a| a.event_source == "com.nordcloudapp.com.maestro").unwrap();
    let example = serde_json::Value::Object(maestro.event_types[0].example.clone());
    let mut first = example.clone();
    first["UID"] = serde_json::json!("0190a6b6-5555-7a3f-9d2b-000000000001");
    let mut second = example.clone();
    second.as_object_mut().unwrap().remove("UID");
    second.as_object_mut().unwrap().remove("recipientAccountId");
    let mut bad = example;
    bad["UID"] = serde_json::json!("0190a6b6-5555-7a3f-9d2b-000000000003");
    bad["eventName"] = serde_json::json!("deployment.exploded");
    let lines = [first.to_string(), second.to_string(), bad.to_string()];
    let file = dir.write("events.ndjson", &(lines.join("\n") + "\n"));
    let direct = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> =
            ["send", "--direct", "--endpoint-url", &lake.endpoint, "--proxy-role-arn", &proxy_arn]
                .iter()
                .map(|s| s.to_string())
                .collect();
        args.extend(["--role-arn", &role_arn, "--channel-arn", &channel_arn].iter().map(|s| s.to_string()));
        args.extend(extra.iter().map(|s| s.to_string()));
        args.push(file.display().to_string());
        args
    };
    let with_keys = [
        ("AWS_ACCESS_KEY_ID", key_id.as_str()),
        ("AWS_SECRET_ACCESS_KEY", secret.as_str()),
        ("AWS_CONFIG_FILE", "/dev/null"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ];
    let args = direct(&["--external-id", "Kl4r1tyExt02"]);
    let out = dir.run_with(&args.iter().map(String::as_str).collect::<Vec<_>>(), None, &with_keys);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains(&format!("3 event(s) sent to channel {channel_arn}: 2 accepted, 1 refused.")),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("events.ndjson:3:1: eventData.eventName:"), "{}", out.stdout);
    let stored = stored_uids(&lake_dir, &store_arn);
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert!(stored.contains(&"0190a6b6-5555-7a3f-9d2b-000000000001".to_owned()));

    // The same keys from a profile of a credentials file; the same file again stores the event
    // with a UID once (its UID is its entry id), and the one without a UID gets a new one.
    let credentials = dir.write(
        "credentials",
        &format!("[klarity-proxy-user]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n"),
    );
    let from_profile = [
        ("AWS_CONFIG_FILE", "/dev/null"),
        ("AWS_SHARED_CREDENTIALS_FILE", credentials.to_str().unwrap()),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ];
    let args = direct(&["--external-id", "Kl4r1tyExt02", "--profile", "klarity-proxy-user"]);
    let out = dir.run_with(&args.iter().map(String::as_str).collect::<Vec<_>>(), None, &from_profile);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("2 accepted, 1 refused."), "{}", out.stdout);
    let again = stored_uids(&lake_dir, &store_arn);
    assert!(again.contains(&"0190a6b6-5555-7a3f-9d2b-000000000001".to_owned()));
    assert_eq!(again.iter().filter(|u| u.as_str() == "0190a6b6-5555-7a3f-9d2b-000000000001").count(), 1, "{again:?}");
    assert_eq!(again.len(), 3, "{again:?}");

    // Refused as AWS refuses: a wrong external ID; no permission for the user; a deactivated key.
    let args = direct(&["--external-id", "WrongExt0000"]);
    let out = dir.run_with(&args.iter().map(String::as_str).collect::<Vec<_>>(), None, &with_keys);
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains(&format!("could not assume {role_arn} through {proxy_arn}")), "{}", out.stderr);
    assert!(out.stderr.contains("AccessDenied"), "{}", out.stderr);

    vendor.ok(&["iam", "delete-user-policy", "--user-name", "klarity-proxy-user", "--policy-name", "proxy"]);
    let args = direct(&["--external-id", "Kl4r1tyExt02"]);
    let out = dir.run_with(&args.iter().map(String::as_str).collect::<Vec<_>>(), None, &with_keys);
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("AccessDenied"), "{}", out.stderr);
    assert!(out.stderr.contains("klarity-proxy-user is not authorized to perform: sts:AssumeRole"), "{}", out.stderr);

    vendor.ok(&[
        "iam",
        "put-user-policy",
        "--user-name",
        "klarity-proxy-user",
        "--policy-name",
        "proxy",
        "--policy-document",
        &only_proxy,
    ]);
    vendor.ok(&[
        "iam",
        "update-access-key",
        "--user-name",
        "klarity-proxy-user",
        "--access-key-id",
        &key_id,
        "--status",
        "Inactive",
    ]);
    let out = dir.run_with(&args.iter().map(String::as_str).collect::<Vec<_>>(), None, &with_keys);
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("InvalidClientTokenId"), "{}", out.stderr);
    assert_eq!(stored_uids(&lake_dir, &store_arn).len(), 3, "nothing more was stored");
}

/// moto's server (from PyPI) on a free loopback port; killed on drop.
struct Moto {
    child: std::process::Child,
    endpoint: String,
}

impl Moto {
    fn start() -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 -m moto.server (pip install 'moto[server]'; ./scripts/test installs it)");
        let endpoint = format!("http://127.0.0.1:{port}");
        let mut moto = Moto { child, endpoint };
        // Until it listens (a process starting, not a timing under test).
        for _ in 0..300 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return moto;
            }
            assert!(moto.child.try_wait().unwrap().is_none(), "moto's server exited at start");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("moto's server did not listen within 30 s");
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn cloudwatch_logs_answers_as_motos_server_does() {
    let dir = Dir::new();
    let lake = LakeProcess::start(&dir.path().join("lake"));
    let moto = Moto::start();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts/logs_crosscheck.py");
    let out = Command::new("python3").arg(&script).args([&lake.endpoint, &moto.endpoint]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("logs crosscheck: ok"), "{stdout}");
}

#[test]
fn s3_answers_as_motos_server_does() {
    let dir = Dir::new();
    let lake = LakeProcess::start(&dir.path().join("lake"));
    let moto = Moto::start();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts/s3_crosscheck.py");
    let out = Command::new("python3").arg(&script).args([&lake.endpoint, &moto.endpoint]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("s3 crosscheck: ok"), "{stdout}");
}

#[test]
fn s3_is_reached_only_through_the_lakes_keys_sessions_and_policies() {
    let dir = Dir::new();
    let lake = LakeProcess::start(&dir.path().join("lake"));
    let customer =
        Aws { endpoint: &lake.endpoint, key: (CUSTOMER_ACCESS_KEY_ID, CUSTOMER_SECRET_ACCESS_KEY), token: None };
    let vendor = Aws { endpoint: &lake.endpoint, key: (VENDOR_ACCESS_KEY_ID, VENDOR_SECRET_ACCESS_KEY), token: None };
    let (role_arn, external_id, _) = crate::relay_s3::onboard(&dir, &lake.endpoint, "audit-guarded");
    let object = dir.path().join("object.json");
    std::fs::write(&object, "{\"UID\":\"a\"}\n").unwrap();
    let body = object.to_str().unwrap();
    let denied = |run: Run, what: &str| {
        assert_ne!(run.code, 0, "{what} was allowed");
        assert!(run.stderr.contains("AccessDenied"), "{what}: {}", run.stderr);
    };

    // Another account has no way in: buckets take no bucket policies.
    let put = |aws: &Aws<'_>, key: &str| {
        aws.run(&["s3api", "put-object", "--bucket", "audit-guarded", "--key", key, "--body", body])
    };
    denied(put(&vendor, "klarity-audit/x"), "the vendor's root writing into the customer's bucket");
    denied(vendor.run(&["s3api", "list-objects-v2", "--bucket", "audit-guarded"]), "the vendor listing it");

    // The customer's role, assumed by the vendor with the external ID, may put objects under the
    // prefix and do nothing else.
    let assumed = vendor.ok(&[
        "sts",
        "assume-role",
        "--role-arn",
        &role_arn,
        "--role-session-name",
        "s3-check",
        "--external-id",
        &external_id,
    ]);
    let c = &assumed["Credentials"];
    let session = Aws {
        endpoint: &lake.endpoint,
        key: (c["AccessKeyId"].as_str().unwrap(), c["SecretAccessKey"].as_str().unwrap()),
        token: c["SessionToken"].as_str(),
    };
    assert_eq!(put(&session, "klarity-audit/x").code, 0);
    denied(put(&session, "elsewhere/x"), "writing outside the prefix");
    denied(
        session.run(&["s3api", "get-object", "--bucket", "audit-guarded", "--key", "klarity-audit/x", "/dev/null"]),
        "reading",
    );
    denied(
        session.run(&["s3api", "delete-object", "--bucket", "audit-guarded", "--key", "klarity-audit/x"]),
        "deleting",
    );

    // A session's key with another token, or with none, is refused.
    let wrong = format!("{}x", c["SessionToken"].as_str().unwrap());
    let forged = Aws { token: Some(&wrong), ..session };
    let run = put(&forged, "klarity-audit/y");
    assert!(run.code != 0 && run.stderr.contains("InvalidToken"), "{}", run.stderr);
    let bare = Aws { token: None, ..forged };
    let run = put(&bare, "klarity-audit/y");
    assert!(run.code != 0 && run.stderr.contains("InvalidToken"), "{}", run.stderr);

    // A key the lake does not know is refused before its body is read.
    let stranger = Aws { endpoint: &lake.endpoint, key: ("AKIAUNKNOWNKEY000001", "nope"), token: None };
    let run = put(&stranger, "klarity-audit/z");
    assert!(run.code != 0 && run.stderr.contains("InvalidAccessKeyId"), "{}", run.stderr);

    // An unsigned request reads nothing.
    let address = lake.endpoint.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    std::io::Write::write_all(
        &mut stream,
        b"GET /audit-guarded/klarity-audit/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut stream, &mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(!answer.contains("UID"), "{answer}");

    // The owner reads what the role wrote.
    let got = dir.path().join("got.json");
    customer.ok(&[
        "s3api",
        "get-object",
        "--bucket",
        "audit-guarded",
        "--key",
        "klarity-audit/x",
        got.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read_to_string(&got).unwrap(), "{\"UID\":\"a\"}\n");
}
