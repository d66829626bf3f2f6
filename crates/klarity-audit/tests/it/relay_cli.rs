//! `klarity-audit tenants` and `tokens`: registering the three values a customer hands over.

use crate::support::Dir;

const CHANNEL: &str = "arn:aws:cloudtrail:eu-west-1:123456789012:channel/0f9c1e2d-3b4a-4c5d-8e6f-7a8b9c0d1e2f";

#[test]
fn tenants_lifecycle() {
    let dir = Dir::new();
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--data-dir", "relay"]);
        dir.run(&all, None)
    };
    let out = run(&[
        "tenants",
        "add",
        "acme",
        "--channel-arn",
        CHANNEL,
        "--role-arn",
        "arn:aws:iam::123456789012:role/CTEventPublisher",
        "--external-id",
        "Kl4r1ty01",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, format!("Added tenant acme: channel {CHANNEL} in eu-west-1 (account 123456789012).\n"));
    let out = run(&[
        "tenants",
        "add",
        "beta",
        "--channel-arn",
        &CHANNEL.replace("123456789012", "210987654321"),
        "--resource-policy",
        "--apps",
        "com.nordcloudapp.com.maestro",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);

    let out = run(&["tenants", "list"]);
    assert!(out.stdout.contains("acme                 role     123456789012   eu-west-1  active"), "{}", out.stdout);
    assert!(out.stdout.contains("beta                 policy   210987654321   eu-west-1  active"), "{}", out.stdout);
    let shown: serde_json::Value = serde_json::from_str(&run(&["tenants", "show", "acme"]).stdout).unwrap();
    assert_eq!(shown["delivery"]["mode"], "assume-role");
    assert_eq!(shown["applications"].as_array().unwrap().len(), 5, "--apps defaults to all");

    assert_eq!(run(&["tenants", "pause", "acme", "--reason", "customer migrating"]).code, 0);
    assert!(run(&["tenants", "list"]).stdout.contains("paused by an operator: customer migrating"));
    assert_eq!(run(&["tenants", "resume", "acme"]).code, 0);
    assert!(!run(&["tenants", "list"]).stdout.contains("paused"));

    let out = run(&["tokens", "issue", "--app", "com.nordcloudapp.com.maestro", "--tenants", "beta"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.lines().nth(1).is_some_and(|t| t.starts_with("kat_") && t.len() > 40), "{}", out.stdout);

    let moved = CHANNEL.replace("0f9c1e2d", "1a2b3c4d");
    let out = run(&["tenants", "update", "acme", "--channel-arn", &moved, "--external-id", "Kl4r1ty09"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let shown: serde_json::Value = serde_json::from_str(&run(&["tenants", "show", "acme"]).stdout).unwrap();
    assert_eq!(
        (shown["channel_arn"].as_str(), shown["delivery"]["external_id"].as_str()),
        (Some(moved.as_str()), Some("Kl4r1ty09"))
    );
    let out = run(&["tenants", "update", "acme", "--channel-arn", "arn:aws:s3:::bucket"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("is not arn:aws:cloudtrail:<region>:<account>:channel/<id>"), "{}", out.stderr);

    assert_eq!(run(&["tenants", "remove", "beta"]).code, 0);
    let out = run(&["tenants", "show", "beta"]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (2, "error: there is no tenant \"beta\" (see `klarity-audit tenants list`)\n")
    );
}

#[test]
fn bad_tenant_values_are_refused_with_a_reason() {
    let dir = Dir::new();
    let run = |args: &[&str]| {
        let mut all = vec!["tenants", "add", "t"];
        all.extend(args);
        all.extend(["--data-dir", "relay"]);
        dir.run(&all, None)
    };
    let cases: [(&[&str], &str); 5] = [
        (
            &["--channel-arn", "arn:aws:s3:::bucket", "--resource-policy"],
            "is not arn:aws:cloudtrail:<region>:<account>:channel/<id>",
        ),
        (&["--channel-arn", CHANNEL], "give either --role-arn (role mode) or --resource-policy"),
        (&["--channel-arn", CHANNEL, "--role-arn", "CTEventPublisher"], "is not arn:aws:iam::<account>:role/<name>"),
        (
            &["--channel-arn", CHANNEL, "--resource-policy", "--apps", "com.nordcloudapp.klarity"],
            "is not an event source of the catalog",
        ),
        (&["--channel-arn", CHANNEL, "--resource-policy", "--apps", ","], "at least one enabled application"),
    ];
    for (args, why) in cases {
        let out = run(args);
        assert_eq!(out.code, 2, "{args:?}");
        assert!(out.stderr.contains(why), "{args:?}: {}", out.stderr);
    }
    let out = dir.run(
        &["tokens", "issue", "--app", "com.nordcloudapp.com.maestro", "--tenants", "ghost", "--data-dir", "relay"],
        None,
    );
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (2, "error: there is no tenant \"ghost\" (see `klarity-audit tenants list`)\n")
    );
}
