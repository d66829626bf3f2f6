//! `klarity-audit tenants` and `tokens`: registering the three values a customer hands over; and the
//! relay's port against slow, silent and oversized clients.

use crate::support::{Dir, RelayProcess, http_get};

const CHANNEL: &str = "arn:aws:cloudtrail:eu-west-1:123456789012:channel/0f9c1e2d-3b4a-4c5d-8e6f-7a8b9c0d1e2f";

/// Registers tenant `acme` and issues a Maestro token for it (with `extra` arguments); returns
/// the token and what `tokens issue` printed.
fn acme_and_a_token(run: &dyn Fn(&[&str]) -> crate::support::Output, extra: &[&str]) -> (String, String) {
    let out = run(&["tenants", "add", "acme", "--channel-arn", CHANNEL, "--resource-policy"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mut args = vec!["tokens", "issue", "--app", "com.nordcloudapp.com.maestro", "--tenants", "acme"];
    args.extend(extra);
    let out = run(&args);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let token = out.stdout.lines().nth(1).unwrap_or_default().to_owned();
    assert!(token.starts_with("kat_"), "{}", out.stdout);
    (token, out.stdout)
}

/// Where the commands find the relays' state: SQLite files, or a PostgreSQL database (its URL).
fn places() -> [Option<String>; 2] {
    [None, Some(crate::support::fresh_database(&crate::support::test_server()))]
}

/// The arguments that name `place`.
fn place_args(place: &Option<String>) -> Vec<&str> {
    match place {
        None => vec!["--data-dir", "relay"],
        Some(url) => vec!["--database-url", url],
    }
}

#[test]
fn tenants_lifecycle_on_sqlite_and_postgres() {
    for place in places() {
        tenants_lifecycle(&place);
    }
}

fn tenants_lifecycle(place: &Option<String>) {
    let dir = Dir::new();
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(place_args(place));
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
    assert!(
        out.stdout.contains("acme                 cloudtrail-lake  role     123456789012   eu-west-1  active"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("beta                 cloudtrail-lake  policy   210987654321   eu-west-1  active"),
        "{}",
        out.stdout
    );
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

    // The customer moves to CloudWatch Logs: the tenant follows, keeping its role and external ID.
    let group = "arn:aws:logs:eu-west-1:123456789012:log-group:klarity-audit";
    let out = run(&[
        "tenants",
        "update",
        "acme",
        "--destination",
        "cloudwatch-logs",
        "--log-group-arn",
        &format!("{group}:*"),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("CloudWatch Logs group klarity-audit, stream klarity-audit in eu-west-1"),
        "{}",
        out.stdout
    );
    let shown: serde_json::Value = serde_json::from_str(&run(&["tenants", "show", "acme"]).stdout).unwrap();
    assert_eq!(shown["destination"], serde_json::json!({"kind": "cloudwatch-logs", "log_stream": "klarity-audit"}));
    assert_eq!(
        (shown["channel_arn"].as_str(), shown["delivery"]["external_id"].as_str()),
        (Some(group), Some("Kl4r1ty09"))
    );
    assert!(run(&["tenants", "list"]).stdout.contains("acme                 cloudwatch-logs  role"));
    let out = run(&["tenants", "update", "acme", "--log-stream", "audit:*"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("log stream \"audit:*\" must be 1 to 512 characters without ':' or '*'"),
        "{}",
        out.stderr
    );

    // And on to S3: the bucket's region is given (an S3 ARN names none); the account is the role's.
    let out = run(&["tenants", "update", "acme", "--bucket-arn", "acme-audit"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--destination s3 needs --region"), "{}", out.stderr);
    let out = run(&["tenants", "update", "acme", "--bucket-arn", "acme-audit", "--region", "eu-north-1"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("S3 bucket acme-audit under \"klarity-audit/\" as ndjson, objects at least every 300 s in eu-north-1 (account 123456789012)"),
        "{}",
        out.stdout
    );
    let out = run(&["tenants", "update", "acme", "--format", "ocsf-parquet", "--rollover", "60"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let shown: serde_json::Value = serde_json::from_str(&run(&["tenants", "show", "acme"]).stdout).unwrap();
    assert_eq!(
        shown["destination"],
        serde_json::json!({"kind": "s3", "region": "eu-north-1", "account": "123456789012", "prefix": "",
                           "format": "ocsf-parquet", "rollover_secs": 60})
    );
    assert_eq!(shown["channel_arn"], "arn:aws:s3:::acme-audit");
    assert!(
        run(&["tenants", "list"])
            .stdout
            .contains("acme                 s3               role     123456789012   eu-north-1")
    );
    let out = run(&["tenants", "update", "acme", "--log-stream", "x"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("--log-stream is a setting of cloudwatch-logs, not of --destination s3"),
        "{}",
        out.stderr
    );

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
    let cases: [(&[&str], &str); 13] = [
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
        (
            &[
                "--log-group-arn",
                "arn:aws:logs:eu-west-1:123456789012:log-group:a b",
                "--role-arn",
                "arn:aws:iam::123456789012:role/r",
            ],
            "is not arn:aws:logs:<region>:<account>:log-group:<name>",
        ),
        (
            &["--log-group-arn", "arn:aws:logs:eu-west-1:123456789012:log-group:g", "--resource-policy"],
            "CloudWatch Logs lets no other account write through a resource policy",
        ),
        (
            &["--destination", "cloudwatch-logs", "--channel-arn", CHANNEL, "--role-arn", "arn:aws:iam::1:role/r"],
            "--destination cloudwatch-logs needs --log-group-arn",
        ),
        (
            &["--role-arn", "arn:aws:iam::123456789012:role/r"],
            "give where its events go: --channel-arn, --log-group-arn or --bucket-arn",
        ),
        (
            &["--bucket-arn", "Bad_Bucket", "--region", "eu-west-1", "--role-arn", "arn:aws:iam::123456789012:role/r"],
            "bucket ARN \"arn:aws:s3:::Bad_Bucket\" is not arn:aws:s3:::<bucket>",
        ),
        (
            &["--bucket-arn", "b-1", "--region", "eu-west-1", "--account", "123456789012", "--resource-policy"],
            "S3 delivery lets no other account write through a resource policy",
        ),
        (
            &[
                "--bucket-arn",
                "b-1",
                "--region",
                "eu-west-1",
                "--rollover",
                "0",
                "--role-arn",
                "arn:aws:iam::123456789012:role/r",
            ],
            "rollover 0 s must be from 1 second to 1 day",
        ),
        (
            &[
                "--bucket-arn",
                "b-1",
                "--log-group-arn",
                "arn:aws:logs:eu-west-1:123456789012:log-group:g",
                "--resource-policy",
            ],
            "give one of --channel-arn, --log-group-arn and --bucket-arn",
        ),
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

/// Slow-loris and a dribbled body against the relay's ingest port, with its `[http]` deadlines set
/// short from the environment: both are cut off, an oversized request is refused from its header,
/// and the relay keeps answering.
#[test]
fn slow_silent_and_oversized_clients_are_cut_off() {
    use std::{
        io::{Read, Write},
        net::TcpStream,
        time::{Duration, Instant},
    };
    let dir = Dir::new();
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--data-dir", "relay"]);
        dir.run(&all, None)
    };
    let (token, _) = acme_and_a_token(&run, &[]);
    let relay = RelayProcess::start_with(
        &dir.path().join("relay"),
        "http://127.0.0.1:9",
        &[
            ("KLARITY_RELAY__HTTP__HEADER_READ_TIMEOUT_SECS", "1"),
            ("KLARITY_RELAY__HTTP__REQUEST_TIMEOUT_SECS", "2"),
            ("KLARITY_RELAY__HTTP__IDLE_TIMEOUT_SECS", "3"),
        ],
    );
    let started = Instant::now();
    let mut loris = TcpStream::connect(&relay.address).unwrap();
    loris.write_all(b"POST /v1/tenants/t1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ").unwrap();
    let mut dribble = TcpStream::connect(&relay.address).unwrap();
    dribble
        .write_all(
            format!(
                "POST /v1/tenants/acme/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n[{{\"UID\""
            )
            .as_bytes(),
        )
        .unwrap();
    for stream in [&mut loris, &mut dribble] {
        stream.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
    }
    let mut rest = Vec::new();
    loris.read_to_end(&mut rest).expect("the slow-loris connection is closed, not left open");
    let mut answer = String::new();
    dribble.read_to_string(&mut answer).expect("the dribbling connection is answered and closed");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"RequestTimeout\""), "the relay's own error shape: {answer}");
    assert!(started.elapsed() < Duration::from_secs(6), "{:?}", started.elapsed());
    // 6 MB declared, beyond the 5 MiB bound: refused from the header, nothing read.
    let (status, body) = {
        let mut big = TcpStream::connect(&relay.address).unwrap();
        big.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
        big.write_all(
            format!(
                "POST /v1/tenants/acme/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 6000000\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
        let mut raw = String::new();
        let _ = big.read_to_string(&mut raw);
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
        (head.split(' ').nth(1).and_then(|s| s.parse::<u16>().ok()).unwrap_or(0), body.to_owned())
    };
    assert_eq!(status, 413, "{body}");
    let (status, body) = http_get(&relay.address, "/healthz");
    assert_eq!((status, body.as_str()), (200, "ok"));
}

/// 1,100 connections that send nothing, from one client, against the relay and the lake as they
/// ship (1,024 slots): neither is taken down. A health check from the same address is answered at
/// once (the idle connections make room), and so is a signed lake request.
#[test]
fn idle_connections_cannot_take_every_slot() {
    use std::{
        net::TcpStream,
        time::{Duration, Instant},
    };
    let dir = Dir::new();
    let lake = crate::support::LakeProcess::start(&dir.path().join("lake"));
    let relay = RelayProcess::start_with(&dir.path().join("relay"), &lake.endpoint, &[]);
    let lake_address = lake.endpoint.trim_start_matches("http://").to_owned();
    for address in [&relay.address, &lake_address] {
        let mut idle = Vec::new();
        for _ in 0..1100 {
            match TcpStream::connect(address) {
                Ok(stream) => idle.push(stream),
                Err(err) => panic!("connecting: {err}"),
            }
        }
        let started = Instant::now();
        let (status, body) = http_get_within(address, "/healthz", Duration::from_secs(5));
        if address == &relay.address {
            assert_eq!((status, body.as_str()), (200, "ok"));
        } else {
            // The lake answers an unsigned request with its AWS-shaped refusal: it was served.
            assert_eq!(status, 403, "{body}");
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{address}: {:?}", started.elapsed());
        drop(idle);
    }
    let (status, body) = crate::support::lake_call(&lake.endpoint, "cloudtrail", "ListEventDataStores", "{}");
    assert_eq!(status, 200, "{body}");
}

fn http_get_within(address: &str, path: &str, within: std::time::Duration) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(within)).unwrap();
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
    let mut raw = String::new();
    let _ = stream.read_to_string(&mut raw);
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    (head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0), body.to_owned())
}

/// `tokens list | revoke`: a token revoked from the command line is refused at once by a relay
/// already running on the same registry; the list shows it revoked and when it was last used.
#[test]
fn a_token_revoked_from_the_cli_is_refused_at_once_by_a_running_relay_on_sqlite_and_postgres() {
    for place in places() {
        a_token_revoked_from_the_cli_is_refused_at_once(&place);
    }
}

fn a_token_revoked_from_the_cli_is_refused_at_once(place: &Option<String>) {
    let dir = Dir::new();
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(place_args(place));
        dir.run(&all, None)
    };
    let (token, out) = acme_and_a_token(&run, &["--expires-in", "30d"]);
    assert!(out.contains(", valid until "), "{out}");
    let id = out.split_whitespace().nth(1).unwrap_or_default().to_owned();
    assert!(id.starts_with("tok_"), "{out}");
    let env: Vec<(&str, &str)> = place.iter().map(|url| ("KLARITY_RELAY__DATABASE__URL", url.as_str())).collect();
    let relay = RelayProcess::start_with(&dir.path().join("relay"), "http://127.0.0.1:9", &env);
    let catalog = audit_event::Catalog::embedded();
    let maestro = catalog.application("com.nordcloudapp.com.maestro").unwrap();
    let event = |uid: &str| {
        let mut event = maestro.event_types[0].example.clone();
        event.insert("UID".into(), serde_json::json!(uid));
        event.remove("recipientAccountId");
        serde_json::Value::Object(event).to_string()
    };
    let (status, body) = crate::support::http_post(
        &relay.address,
        "/v1/tenants/acme/events",
        &token,
        &event("0190a6b4-2222-7a3f-9d2b-0000000c0001"),
    );
    assert_eq!(status, 202, "{body}");

    let out = run(&["tokens", "revoke", &id]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let (status, body) = crate::support::http_post(
        &relay.address,
        "/v1/tenants/acme/events",
        &token,
        &event("0190a6b4-2222-7a3f-9d2b-0000000c0002"),
    );
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("the token was revoked at "), "{body}");

    let out = run(&["tokens", "list"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let line = out.stdout.lines().find(|l| l.starts_with(&id)).unwrap_or_else(|| panic!("{}", out.stdout));
    assert!(line.contains(&format!("{}…", &token[..12])) && line.contains("revoked "), "{line}");
    assert!(!line.contains(" never "), "it was used: {line}");
    assert!(!out.stdout.contains(&token), "a listing never shows a token");
    let out = run(&["tokens", "revoke", "tok_nope"]);
    assert_eq!(
        (out.code, out.stderr.trim()),
        (2, "error: there is no token \"tok_nope\" (see `klarity-audit tokens list`)")
    );
}

#[test]
fn relay_migrate_brings_a_database_up_once_and_names_what_it_needs() {
    let dir = Dir::new();
    let url = crate::support::fresh_database(&crate::support::test_server());
    let out = dir.run(&["relay", "migrate", "--database-url", &url], None);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.starts_with("Migrated postgres://klarity@") && out.stdout.contains("from schema version 0 to 1"),
        "{}",
        out.stdout
    );
    let out = dir.run(&["relay", "migrate", "--database-url", &url], None);
    assert!(out.stdout.ends_with("is at schema version 1 already.\n"), "{}", out.stdout);
    let out = dir.run(&["relay", "migrate"], None);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("relay migrate works on a PostgreSQL database: give --database-url"), "{}", out.stderr);
}

/// `sslmode=require`: TLS, with the server's certificate checked (chain and host name) against
/// `database.ca_file` or the system's roots; a relay on such a server takes events.
#[test]
fn a_database_that_speaks_only_tls_is_reached_with_its_certificate_verified() {
    let server = crate::support::OwnPostgres::start_tls();
    let dir = Dir::new();
    let url = format!("{}?sslmode=require", server.url);
    let ca = server.ca_file();
    let ca_env = [("KLARITY_RELAY__DATABASE__CA_FILE", ca.to_str().unwrap())];
    // Without TLS the server refuses; with TLS but no trust in its authority the relay refuses.
    let out = dir.run(&["relay", "migrate", "--database-url", &server.url], None);
    assert!(out.stderr.contains("no encryption"), "{}", out.stderr);
    let out = dir.run(&["relay", "migrate", "--database-url", &url], None);
    assert!(out.stderr.contains("invalid peer certificate: UnknownIssuer"), "{}", out.stderr);
    // Trusted, but for another name than the certificate's.
    let localhost = url.replace("127.0.0.1", "localhost");
    let out = dir.run_with(&["relay", "migrate", "--database-url", &localhost], None, &ca_env);
    assert!(out.stderr.contains("certificate not valid for name \"localhost\""), "{}", out.stderr);
    let out = dir.run_with(&["relay", "migrate", "--database-url", &url], None, &ca_env);
    assert_eq!(out.code, 0, "{}", out.stderr);

    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--database-url", &url]);
        dir.run_with(&all, None, &ca_env)
    };
    let (token, _) = acme_and_a_token(&run, &[]);
    let env = [("KLARITY_RELAY__DATABASE__URL", url.as_str()), ca_env[0]];
    let relay = RelayProcess::start_with(&dir.path().join("relay"), "http://127.0.0.1:9", &env);
    let catalog = audit_event::Catalog::embedded();
    let mut event = catalog.application("com.nordcloudapp.com.maestro").unwrap().event_types[0].example.clone();
    event.remove("recipientAccountId");
    let body = serde_json::Value::Object(event).to_string();
    let (status, answer) = crate::support::http_post(&relay.address, "/v1/tenants/acme/events", &token, &body);
    assert_eq!(status, 202, "{answer}");
}

/// A relay whose disk fills up (a 24 MiB tmpfs of its own, in a mount namespace: a real ENOSPC)
/// answers `503 StorageFull` with `Retry-After`, reports not ready, and keeps what it accepted.
#[test]
fn a_full_disk_answers_503_and_the_relay_reports_not_ready() {
    use std::{
        io::{Read, Write},
        time::Duration,
    };
    let dir = Dir::new();
    let token_file = dir.path().join("token");
    let relay = crate::support::OnSmallDisk::start(
        &dir.path().join("disk"),
        "24m",
        &token_file,
        r#""$B" tenants add acme --channel-arn "$C" --resource-policy --data-dir "$D/relay" >/dev/null &&
           "$B" tokens issue --app com.nordcloudapp.com.maestro --tenants acme --data-dir "$D/relay" > "$T" &&
           exec "$B" relay --listen 127.0.0.1:0 --data-dir "$D/relay""#,
        &[("C", CHANNEL), ("KLARITY_RELAY__ENDPOINT_URL", "http://127.0.0.1:9")],
    );
    let address = relay.address();
    let token = std::fs::read_to_string(&token_file).unwrap().lines().nth(1).unwrap().to_owned();

    let catalog = audit_event::Catalog::embedded();
    let example = catalog.application("com.nordcloudapp.com.maestro").unwrap().event_types[0].example.clone();
    let batch = |n: usize| {
        let events: Vec<serde_json::Value> = (0..500)
            .map(|i| {
                let mut event = example.clone();
                event.insert("UID".into(), serde_json::json!(format!("0190a6b4-2222-7a3f-9d2b-{:012}", n * 500 + i)));
                event.remove("recipientAccountId");
                event.insert("userAgent".into(), serde_json::json!("x".repeat(1000)));
                serde_json::Value::Object(event)
            })
            .collect();
        serde_json::Value::Array(events).to_string()
    };
    let post = |body: &str| -> String {
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(
            stream,
            "POST /v1/tenants/acme/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    };
    let mut accepted = 0;
    let refusal = loop {
        let answer = post(&batch(accepted));
        if !answer.starts_with("HTTP/1.1 202") {
            break answer;
        }
        accepted += 1;
        assert!(accepted < 100, "24 MiB never filled up");
    };
    assert!(accepted > 0, "refused at once: {refusal}");
    assert!(refusal.starts_with("HTTP/1.1 503"), "{refusal}");
    assert!(refusal.to_lowercase().contains("retry-after: 5"), "{refusal}");
    assert!(refusal.contains("\"code\":\"StorageFull\""), "{refusal}");
    let ready = {
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        stream.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    };
    assert!(ready.starts_with("HTTP/1.1 503") && ready.contains("disk is full"), "{ready}");
    // What was accepted is still there.
    let status = {
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            stream,
            "GET /v1/tenants/acme/events/0190a6b4-2222-7a3f-9d2b-000000000000 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    };
    assert!(status.starts_with("HTTP/1.1 200") && status.contains("\"state\":\"pending\""), "{status}");
    eprintln!("the disk filled after {accepted} requests of 500 events");
}

/// The lake on a disk that fills up answers `PutAuditEvents` with a 503 the SDKs retry (not a 500),
/// stores nothing of that request, and keeps serving.
#[test]
fn a_full_disk_makes_the_lake_answer_503() {
    let dir = Dir::new();
    let lake = crate::support::OnSmallDisk::start(
        &dir.path().join("disk"),
        "20m",
        &dir.path().join("unused"),
        r#"exec "$B" lake --listen 127.0.0.1:0 --data-dir "$D/lake""#,
        &[],
    );
    let endpoint = format!("http://{}", lake.address());
    let call = |service: &str, target: &str, body: &str| crate::support::lake_call(&endpoint, service, target, body);
    let (status, body) = call(
        "cloudtrail",
        "CreateEventDataStore",
        r#"{"Name":"full","MultiRegionEnabled":false,"AdvancedEventSelectors":[{"Name":"a","FieldSelectors":[{"Field":"eventCategory","Equals":["ActivityAuditLog"]}]}]}"#,
    );
    assert_eq!(status, 200, "{body}");
    let store: serde_json::Value = serde_json::from_str(&body).unwrap();
    let store_arn = store["EventDataStoreArn"].as_str().unwrap();
    let (status, body) = call(
        "cloudtrail",
        "CreateChannel",
        &serde_json::json!({"Name": "full", "Source": "Custom", "Destinations": [{"Type": "EVENT_DATA_STORE", "Location": store_arn}]}).to_string(),
    );
    assert_eq!(status, 200, "{body}");
    let channel: serde_json::Value = serde_json::from_str(&body).unwrap();
    let channel_arn = channel["ChannelArn"].as_str().unwrap().to_owned();
    let path = format!("/PutAuditEvents?channelArn={}", channel_arn.replace(':', "%3A").replace('/', "%2F"));
    let mut sent = 0;
    let (status, body) = loop {
        let events: Vec<serde_json::Value> = (0..100)
            .map(|i| {
                let data = serde_json::json!({
                    "version": "v1", "userIdentity": {"type": "USER", "principalId": "p"},
                    "eventSource": "com.example.app", "eventName": "e", "eventTime": "2026-11-24T10:00:00Z",
                    "UID": format!("u{sent}-{i}"), "additionalEventData": {"pad": "x".repeat(9000)},
                    "recipientAccountId": "123456789012"
                });
                serde_json::json!({"id": format!("e{sent}-{i}"), "eventData": data.to_string()})
            })
            .collect();
        let (status, body) = call("cloudtrail-data", &path, &serde_json::json!({"auditEvents": events}).to_string());
        if status != 200 {
            break (status, body);
        }
        sent += 1;
        assert!(sent < 100, "20 MiB never filled up");
    };
    assert!(sent > 0, "refused at once: {body}");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("disk is full"), "{body}");
    let (status, body) = call("cloudtrail", "GetChannel", &serde_json::json!({"Channel": channel_arn}).to_string());
    assert_eq!(status, 200, "the lake keeps serving: {body}");
}
