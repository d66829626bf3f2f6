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
            .env_remove("AWS_SESSION_TOKEN")
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
    let customer = Aws { endpoint: &lake.endpoint, key: (CUSTOMER_ACCESS_KEY_ID, CUSTOMER_SECRET_ACCESS_KEY) };
    let vendor = Aws { endpoint: &lake.endpoint, key: (VENDOR_ACCESS_KEY_ID, VENDOR_SECRET_ACCESS_KEY) };

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
        "NordcloudKlarity",
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
}
