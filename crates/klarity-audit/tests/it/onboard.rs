//! `onboard apply` against the local lake through the AWS SDK, in both delivery modes: twice ends
//! in the same state; its values make `tenants verify` pass; a wrong external ID makes it fail with
//! a message that names the external ID.

use serde_json::{Value, json};

use crate::support::{Dir, LakeProcess};

fn run(dir: &Dir, args: &[&str], endpoint: &str) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_klarity-audit"))
        .args(args)
        .current_dir(dir.path())
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env("KLARITY_RELAY__ENDPOINT_URL", endpoint)
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn apply_is_idempotent_and_its_values_pass_verify_in_both_modes() {
    let dir = Dir::new();
    let lake = LakeProcess::start(&dir.path().join("lake"));
    let e = lake.endpoint.as_str();
    let relay = dir.path().join("relay");
    let relay = relay.to_str().unwrap();

    for (mode, region, tenant) in [("role", "us-east-1", "acme"), ("resource-policy", "eu-west-1", "beta")] {
        let apply = ["onboard", "apply", "--endpoint-url", e, "--mode", mode, "--region", region, "--json"];
        let (code, first, err) = run(&dir, &apply, e);
        assert_eq!(code, 0, "{err}");
        let (code, second, err) = run(&dir, &apply, e);
        assert_eq!(code, 0, "{err}");
        let (first, second): (Value, Value) =
            (serde_json::from_str(&first).unwrap(), serde_json::from_str(&second).unwrap());
        for key in ["roleArn", "externalId", "channelArn", "eventDataStoreArn"] {
            assert_eq!(first[key], second[key], "{mode}: {key} is the same after a second apply");
        }
        assert!(
            second["steps"].as_array().unwrap().iter().take(2).all(|s| s.as_str().unwrap().contains("exists")),
            "{second}"
        );
        let external_id = first["externalId"].as_str().unwrap();
        let channel = first["channelArn"].as_str().unwrap();
        let mut add =
            vec!["tenants", "add", tenant, "--channel-arn", channel, "--external-id", external_id, "--data-dir", relay];
        match first["roleArn"].as_str() {
            Some(role) => add.extend(["--role-arn", role]),
            None => add.push("--resource-policy"),
        }
        let (code, _, err) = run(&dir, &add, e);
        assert_eq!(code, 0, "{err}");
        let (code, out, err) = run(&dir, &["tenants", "verify", tenant, "--data-dir", relay], e);
        assert_eq!(code, 0, "{mode}: {out}{err}");
        assert!(out.contains("PutAuditEvents stored the canary") && out.contains("works"), "{out}");

        let (code, _, err) =
            run(&dir, &["tenants", "update", tenant, "--external-id", "NotTheAgreedId1", "--data-dir", relay], e);
        assert_eq!(code, 0, "{err}");
        let (code, out, _) = run(&dir, &["tenants", "verify", tenant, "--data-dir", relay], e);
        assert_eq!(code, 1, "{mode}: {out}");
        assert!(out.contains("FAIL") && out.contains("external ID \"NotTheAgreedId1\""), "{mode}: {out}");
    }
    let resources =
        audit_lake::store::Store::read_resources(&dir.path().join("lake").join(audit_lake::store::DB_FILE)).unwrap();
    assert_eq!(
        (resources.stores.len(), resources.channels.len()),
        (2, 2),
        "one store and channel per mode, none twice"
    );
}

#[test]
fn template_prints_every_document() {
    let dir = Dir::new();
    let out = dir.run(&["onboard", "template", "--external-id", "Kl4r1ty0123456789ab"], None);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for name in ["# trust-policy", "# least-privilege-policy", "# seed-policy", "# cloudformation", "# channel-policy"]
    {
        assert!(out.stdout.contains(name), "{name} missing");
    }
    assert!(out.stdout.contains("\"sts:ExternalId\": \"Kl4r1ty0123456789ab\""));
    let only =
        dir.run(&["onboard", "template", "--only", "trust-policy", "--external-id", "Kl4r1ty0123456789ab"], None);
    let trust: Value = serde_json::from_str(&only.stdout).unwrap();
    assert_eq!(trust["Statement"][0]["Principal"]["AWS"], "arn:aws:iam::855341727128:root");

    // CloudWatch Logs: the role's documents only, writing into the one log group.
    let logs = dir.run(
        &["onboard", "template", "--destination", "cloudwatch-logs", "--external-id", "Kl4r1ty0123456789ab"],
        None,
    );
    assert_eq!(logs.code, 0, "{}", logs.stderr);
    for name in ["# trust-policy", "# least-privilege-policy", "# cloudformation"] {
        assert!(logs.stdout.contains(name), "{name} missing");
    }
    assert!(!logs.stdout.contains("# channel-policy") && !logs.stdout.contains("cloudtrail-data"), "{}", logs.stdout);
    let policy = dir.run(
        &[
            "onboard",
            "template",
            "--destination",
            "cloudwatch-logs",
            "--only",
            "least-privilege-policy",
            "--log-group-arn",
            "arn:aws:logs:eu-west-1:123456789012:log-group:audit",
        ],
        None,
    );
    let policy: Value = serde_json::from_str(&policy.stdout).unwrap();
    assert_eq!(policy["Statement"][0]["Action"], json!(["logs:PutLogEvents", "logs:CreateLogStream"]));
    assert_eq!(
        policy["Statement"][0]["Resource"],
        json!([
            "arn:aws:logs:eu-west-1:123456789012:log-group:audit",
            "arn:aws:logs:eu-west-1:123456789012:log-group:audit:*"
        ])
    );
    let refused =
        dir.run(&["onboard", "template", "--destination", "cloudwatch-logs", "--only", "channel-policy"], None);
    assert_eq!(refused.code, 2, "{}", refused.stdout);
    assert!(refused.stderr.contains("has no channel-policy"), "{}", refused.stderr);

    // S3: the role's documents only, putting objects under the one prefix.
    let s3 = dir.run(&["onboard", "template", "--destination", "s3", "--external-id", "Kl4r1ty0123456789ab"], None);
    assert_eq!(s3.code, 0, "{}", s3.stderr);
    for name in ["# trust-policy", "# least-privilege-policy", "# cloudformation", "AWS::S3::Bucket"] {
        assert!(s3.stdout.contains(name), "{name} missing");
    }
    assert!(!s3.stdout.contains("# channel-policy") && !s3.stdout.contains("logs:"), "{}", s3.stdout);
    let policy = dir.run(
        &[
            "onboard",
            "template",
            "--destination",
            "s3",
            "--only",
            "least-privilege-policy",
            "--bucket",
            "acme-audit",
            "--prefix",
            "audit/",
        ],
        None,
    );
    let policy: Value = serde_json::from_str(&policy.stdout).unwrap();
    assert_eq!(policy["Statement"].as_array().unwrap().len(), 1, "{policy}");
    assert_eq!(
        (&policy["Statement"][0]["Action"], &policy["Statement"][0]["Resource"]),
        (&json!("s3:PutObject"), &json!("arn:aws:s3:::acme-audit/audit/*"))
    );
    let refused = dir.run(&["onboard", "template", "--destination", "s3", "--only", "seed-policy"], None);
    assert_eq!(refused.code, 2, "{}", refused.stdout);
    assert!(refused.stderr.contains("--destination s3 has no seed-policy"), "{}", refused.stderr);
}
