//! `klarity-audit bench` runs the whole flow and accounts for every event. Only counts are
//! asserted here: figures are for people, never for tests.

use crate::support::Dir;

#[test]
fn a_small_bench_delivers_every_event_once_and_reports_it() {
    let dir = Dir::new();
    let out = dir.run(
        &[
            "bench",
            "--events",
            "1500",
            "--clients",
            "4",
            "--tenants",
            "3",
            "--batch",
            "50",
            "--boto3-events",
            "300",
            "--json",
        ],
        None,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["ingest"]["accepted"], 1500);
    assert_eq!(report["ingest"]["requests"], 30);
    assert_eq!(report["end_to_end"]["delivered"], 1500);
    assert_eq!(report["end_to_end"]["failed"], 0);
    assert_eq!(report["end_to_end"]["stored_in_lake"], 1500, "each event is in its tenant's store, once");
    assert_eq!(report["end_to_end"]["queryable"]["events"], 1500, "and a query counts each once");
    assert_eq!(report["end_to_end"]["queryable"]["query_ms"].as_array().map(Vec::len), Some(3));
    assert_eq!(report["baseline"]["events"], 1500);
    assert_eq!(report["baseline"]["stored"], 1500);
    assert!(report["end_to_end"]["latency_seconds_at_most"]["p99"].as_f64().is_some());
    assert!(report["disk"]["lake_bytes"].as_u64().unwrap() > 0);
    // The boto3 publisher ran against the same lake (CI installs boto3), and every entry landed.
    let boto3 = &report["boto3"]["measured"];
    assert_eq!((boto3["events"].as_u64(), boto3["failed"].as_u64()), (Some(300), Some(0)), "{}", report["boto3"]);
    // CPU was spent by the relay and the lake, each on its own threads.
    let cpu = &report["cpu"]["whole_run"];
    assert!(cpu["relay_us_per_event"].as_f64().unwrap() > 0.0, "{cpu}");
    assert!(cpu["lake_us_per_event"].as_f64().unwrap() > 0.0, "{cpu}");
    // The reference work was sampled through the run, and the costs are given as multiples of it.
    let reference = &report["cpu"]["reference"];
    assert!(reference["samples"].as_u64().unwrap() >= 1, "{reference}");
    let median = reference["us_per_event"].as_f64().unwrap();
    assert!(median > 0.0 && median <= reference["most_us_per_event"].as_f64().unwrap(), "{reference}");
    for (multiple, part) in [("relay_per_reference", "relay_us_per_event"), ("lake_per_reference", "lake_us_per_event")]
    {
        let expected = cpu[part].as_f64().unwrap() / median;
        let given = report["cpu"][multiple].as_f64().unwrap();
        assert!((given - expected).abs() <= 0.051, "{multiple}: {given} against {expected}: {}", report["cpu"]);
    }
}

#[test]
fn a_bench_into_cloudwatch_logs_delivers_every_event_once_into_the_log_groups() {
    let dir = Dir::new();
    let out = dir.run(
        &[
            "bench",
            "--destination",
            "cloudwatch-logs",
            "--events",
            "1200",
            "--clients",
            "4",
            "--tenants",
            "2",
            "--no-baseline",
            "--json",
        ],
        None,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["setup"]["destination"], "cloudwatch-logs");
    assert_eq!(report["end_to_end"]["delivered"], 1200);
    assert_eq!(report["end_to_end"]["stored_in_lake"], 1200, "each event is in its tenant's log group, once");
    assert_eq!(report["end_to_end"]["queryable"]["query_ms"].as_array().map(Vec::len), Some(0));
}

#[test]
fn a_bench_into_s3_delivers_every_event_once_into_the_buckets() {
    let dir = Dir::new();
    let out = dir.run(
        &[
            "bench",
            "--destination",
            "s3",
            "--events",
            "1200",
            "--clients",
            "4",
            "--tenants",
            "2",
            "--no-baseline",
            "--json",
        ],
        None,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["setup"]["destination"], "s3");
    assert_eq!(report["end_to_end"]["delivered"], 1200);
    assert_eq!(report["end_to_end"]["stored_in_lake"], 1200, "each event is in one object of its tenant's bucket");
}

#[test]
fn a_held_backlog_is_drained() {
    let dir = Dir::new();
    // CPU time is read from /proc in clock ticks (10 ms): enough events that accepting them takes many ticks, so
    // the split below cannot round to zero on a fast or idle machine.
    let out = dir.run(&["bench", "--events", "12000", "--clients", "2", "--hold", "--no-baseline", "--json"], None);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["end_to_end"]["stored_in_lake"], 12000);
    assert!(report["end_to_end"]["drain_seconds"].as_f64().is_some());
    assert!(report["baseline"].is_null());
    assert!(report["boto3"].is_null());
    // With a held backlog, accepting and delivering are accounted apart.
    assert!(report["cpu"]["ingest_only"]["relay_us_per_event"].as_f64().unwrap() > 0.0, "{}", report["cpu"]);
    assert!(report["cpu"]["delivery_only"]["lake_us_per_event"].as_f64().unwrap() > 0.0, "{}", report["cpu"]);
}

#[test]
fn a_timed_run_sends_for_its_duration_and_accounts_for_what_it_sent() {
    let dir = Dir::new();
    let out = dir
        .run(&["bench", "--duration", "1", "--events", "100000000", "--clients", "2", "--no-baseline", "--json"], None);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let accepted = report["ingest"]["accepted"].as_u64().unwrap();
    assert!(accepted > 0 && accepted < 100_000_000, "{accepted}");
    assert_eq!(report["setup"]["events"].as_u64(), Some(accepted));
    assert_eq!(report["end_to_end"]["delivered"].as_u64(), Some(accepted));
    assert_eq!(report["end_to_end"]["stored_in_lake"].as_u64(), Some(accepted));
}

#[test]
fn three_relays_on_postgres_deliver_every_event_once_and_the_database_goes_after() {
    let server = crate::support::test_server();
    let dir = Dir::new();
    let out = dir.run(
        &[
            "bench",
            "--events",
            "3000",
            "--clients",
            "6",
            "--tenants",
            "4",
            "--postgres",
            &server,
            "--relays",
            "3",
            "--hold",
            "--no-baseline",
            "--json",
        ],
        None,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!((report["setup"]["store"].as_str(), report["setup"]["relays"].as_u64()), (Some("postgres"), Some(3)));
    assert_eq!(report["ingest"]["accepted"], 3000);
    assert_eq!(report["end_to_end"]["delivered"], 3000, "summed over the relays' /metrics");
    assert_eq!(report["end_to_end"]["stored_in_lake"], 3000, "each event is in its tenant's store, once");
    // The server's own work is counted beside the relays'.
    assert!(report["cpu"]["whole_run"]["database_us_per_event"].as_f64().unwrap() > 0.0, "{}", report["cpu"]);
    // The run's own database was dropped (no other test makes bench databases).
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let left: i64 = runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(&server, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        let row = client.query_one("SELECT count(*) FROM pg_database WHERE datname LIKE 'klarity_bench_%'", &[]).await;
        row.unwrap().get(0)
    });
    assert_eq!(left, 0);
}

#[test]
fn bad_settings_are_refused_with_the_rule() {
    let dir = Dir::new();
    let out = dir.run(&["bench", "--batch", "5000"], None);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (2, "error: --batch must be 1 to 1000 (the relay's request limit), not 5000\n")
    );
}
