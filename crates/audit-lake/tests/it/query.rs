//! SQL queries through the `cloudtrail` API (`StartQuery`, `DescribeQuery`, `GetQueryResults`,
//! `ListQueries`, `CancelQuery`) over events published with `PutAuditEvents`.
//!
//! `sql_golden` runs every statement of `tests/sql/lake.slt` and compares the rendered results
//! with the file; `UPDATE_GOLDEN=1 cargo test -p audit-lake sql_golden` rewrites it after a
//! deliberate change (review the diff).

use std::time::Duration;

use audit_event::Catalog;
use aws_sdk_cloudtrail::types::QueryStatus;
use serde_json::{Value, json};

use crate::support::{CUSTOMER, TestLake, Who, code, entry, records, store_and_channel_kept};

/// The fixed event set: every event type of the five applications, three times each, by three
/// principals, five hours apart from 2026-10-01T00:00:00Z. Deterministic.
fn fixture() -> Vec<String> {
    let catalog = Catalog::embedded();
    let principals = ["alice@example.com", "bob@example.com", "carol@example.com"];
    let start = 1_790_812_800; // 2026-10-01T00:00:00Z
    let mut events = Vec::new();
    let mut n = 0;
    for app in catalog.applications() {
        for (t, event_type) in app.event_types.iter().enumerate() {
            for v in 0..3 {
                let mut data = event_type.example.clone();
                let time = audit_event::EventTime::from_unix(start + n * 5 * 3600, 0).to_string();
                data.insert("eventTime".into(), json!(time));
                data.insert("UID".into(), json!(format!("00000000-0000-7000-8000-{n:012}")));
                data.insert("recipientAccountId".into(), json!(CUSTOMER));
                data.insert(
                    "userIdentity".into(),
                    json!({"type": "USER", "principalId": principals[(t + v) % 3], "details": {"team": format!("team-{}", v)}}),
                );
                if v == 2 {
                    data.insert("sourceIPAddress".into(), json!("198.51.100.7"));
                }
                events.push(Value::Object(data).to_string());
                n += 1;
            }
        }
    }
    events
}

/// A store of the customer with a 10-year retention, so the fixture's 2026 times stay in it, and
/// a channel; returns (store ARN, channel ARN).
async fn store(lake: &TestLake, name: &str) -> (String, String) {
    store_and_channel_kept(lake, name, Some(3653)).await
}

async fn publish(lake: &TestLake, who: Who, channel: &str, events: &[String]) {
    static ENTRY: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    for batch in events.chunks(100) {
        let entries = batch
            .iter()
            .map(|e| entry(&format!("e{}", ENTRY.fetch_add(1, std::sync::atomic::Ordering::Relaxed)), e))
            .collect();
        let out = lake
            .data(who)
            .put_audit_events()
            .channel_arn(channel)
            .set_audit_events(Some(entries))
            .send()
            .await
            .unwrap();
        assert!(out.failed().is_empty(), "{:?}", out.failed());
    }
}

fn id(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap()
}

/// A finished query's columns and rows, or `Err("<status or code>: <message>")`.
async fn query(ct: &aws_sdk_cloudtrail::Client, sql: &str) -> Result<(Vec<String>, Vec<Vec<String>>), String> {
    let started = ct.start_query().query_statement(sql).send().await;
    let query_id = match started {
        Ok(out) => out.query_id().unwrap().to_owned(),
        Err(err) => {
            let message = err
                .as_service_error()
                .and_then(|e| aws_sdk_cloudtrail::error::ProvideErrorMetadata::message(e))
                .unwrap_or("")
                .to_owned();
            return Err(format!("{}: {message}", code(err)));
        }
    };
    let status = wait(ct, &query_id).await;
    let mut columns = Vec::new();
    let mut rows = Vec::new();
    let mut token = None;
    loop {
        let page = ct.get_query_results().query_id(&query_id).set_next_token(token).send().await.unwrap();
        if status != QueryStatus::Finished {
            return Err(format!("{}: {}", status.as_str(), page.error_message().unwrap_or("")));
        }
        for row in page.query_result_rows() {
            let names: Vec<String> = row.iter().map(|cell| cell.keys().next().unwrap().clone()).collect();
            if columns.is_empty() {
                columns = names;
            }
            rows.push(row.iter().map(|cell| cell.values().next().unwrap().clone()).collect());
        }
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    Ok((columns, rows))
}

async fn wait(ct: &aws_sdk_cloudtrail::Client, query_id: &str) -> QueryStatus {
    for _ in 0..3000 {
        let out = ct.describe_query().query_id(query_id).send().await.unwrap();
        let status = out.query_status().unwrap().clone();
        if !matches!(status, QueryStatus::Queued | QueryStatus::Running) {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("query {query_id} did not finish in a minute");
}

/// One block of the golden file: comment lines, a statement, the expected output.
struct Block {
    comments: Vec<String>,
    statement: String,
    expected: String,
}

fn blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    for chunk in text.split("\n\n").map(str::trim).filter(|c| !c.is_empty()) {
        let mut comments = Vec::new();
        let mut statement = Vec::new();
        let mut expected = Vec::new();
        let mut in_expected = false;
        for line in chunk.lines() {
            if in_expected {
                expected.push(line);
            } else if line == "----" {
                in_expected = true;
            } else if line.starts_with('#') {
                comments.push(line.to_owned());
            } else {
                statement.push(line);
            }
        }
        if statement.is_empty() {
            out.push(Block { comments, statement: String::new(), expected: String::new() });
        } else {
            out.push(Block { comments, statement: statement.join("\n"), expected: expected.join("\n") });
        }
    }
    out
}

fn render(result: Result<(Vec<String>, Vec<Vec<String>>), String>) -> String {
    match result {
        Ok((columns, rows)) => {
            let mut lines = vec![columns.join(" | ")];
            lines.extend(rows.iter().map(|r| r.join(" | ").trim_end().to_owned()));
            lines.join("\n")
        }
        Err(error) => format!("error: {error}"),
    }
}

#[tokio::test]
async fn sql_golden() {
    let lake = TestLake::start().await;
    let (arn, channel) = store(&lake, "golden").await;
    let (arn2, channel2) = store(&lake, "second").await;
    let events = fixture();
    publish(&lake, Who::Customer, &channel, &events).await;
    publish(&lake, Who::Customer, &channel2, &events[..5]).await;
    let ct = lake.cloudtrail(Who::Customer);

    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sql/lake.slt");
    let text = std::fs::read_to_string(&path).unwrap();
    let (store, store2) = (id(&arn).to_owned(), id(&arn2).to_owned());
    let mut actual = Vec::new();
    for block in blocks(&text) {
        let mut out = block.comments.join("\n");
        if !block.statement.is_empty() {
            let sql = block.statement.replace("$STORE2", &store2).replace("$STORE", &store).replace("$ARN", &arn);
            let result = render(query(&ct, &sql).await).replace(&store2, "$STORE2").replace(&store, "$STORE");
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&format!("{}\n----\n{result}", block.statement));
            if std::env::var_os("UPDATE_GOLDEN").is_none() {
                assert_eq!(result, block.expected, "\nstatement:\n{}\n", block.statement);
            }
        }
        actual.push(out);
    }
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual.join("\n\n") + "\n").unwrap();
    }
}

#[tokio::test]
async fn an_acknowledged_event_is_queryable_at_once_and_after_compaction_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let lake = TestLake::start_with(dir, |c| c.columnar.flush_rows = 10).await;
    let (arn, channel) = store(&lake, "fresh").await;
    let events = fixture();
    let ct = lake.cloudtrail(Who::Customer);
    let count = format!("SELECT count(*) AS n, count(DISTINCT eventData.UID) AS uids FROM {}", id(&arn));
    // Each publish is followed at once by a query that must see it.
    for (i, event) in events.iter().take(12).enumerate() {
        publish(&lake, Who::Customer, &channel, std::slice::from_ref(event)).await;
        let n = (i + 1).to_string();
        assert_eq!(query(&ct, &count).await.unwrap().1, vec![vec![n.clone(), n]]);
    }
    publish(&lake, Who::Customer, &channel, &events[12..]).await;
    lake.lake.columnar().flush_all().unwrap();
    let files = lake.lake.columnar().file_bytes();
    assert!(files.get(id(&arn)).copied().unwrap_or(0) > 0, "no Parquet file was written: {files:?}");
    let total = events.len().to_string();
    assert_eq!(query(&ct, &count).await.unwrap().1, vec![vec![total.clone(), total.clone()]]);

    // A crash leaves a half-written file and a stale watermark: the restart ignores the one and
    // re-reads from the other without counting anything twice.
    let dir = lake.stop().await;
    let columnar = dir.path().join("lake").join(audit_lake::columnar::DIR);
    std::fs::write(columnar.join(id(&arn)).join("00000000000000000001-00000000000000000099.parquet.tmp"), b"torn")
        .unwrap();
    std::fs::write(columnar.join("converted"), "0").unwrap();
    // The compactor waits a minute before its first pass, so the query runs while it has read
    // nothing back: the files and the database's rows must still not be counted twice.
    let lake = TestLake::start_with(dir, |c| {
        c.columnar.flush_rows = 10;
        c.columnar.poll_millis = 60_000;
    })
    .await;
    let ct = lake.cloudtrail(Who::Customer);
    assert_eq!(query(&ct, &count).await.unwrap().1, vec![vec![total.clone(), total]]);
    assert!(!columnar.join(id(&arn)).join("00000000000000000001-00000000000000000099.parquet.tmp").exists());
}

#[tokio::test]
async fn results_page_and_queries_are_listed_described_and_cancelled() {
    let lake = TestLake::start().await;
    let (arn, channel) = store(&lake, "paging").await;
    let events = fixture();
    publish(&lake, Who::Customer, &channel, &events).await;
    let ct = lake.cloudtrail(Who::Customer);

    let sql = format!("SELECT eventData.UID FROM {} ORDER BY eventData.UID", id(&arn));
    let query_id = ct.start_query().query_statement(&sql).send().await.unwrap().query_id().unwrap().to_owned();
    assert_eq!(wait(&ct, &query_id).await, QueryStatus::Finished);
    let mut uids = Vec::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let page = ct
            .get_query_results()
            .query_id(&query_id)
            .max_query_results(20)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        let stats = page.query_statistics().unwrap();
        assert_eq!(stats.total_results_count(), Some(events.len() as i32));
        assert_eq!(stats.results_count(), Some(page.query_result_rows().len() as i32));
        uids.extend(page.query_result_rows().iter().map(|row| row[0]["UID"].clone()));
        pages += 1;
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, events.len().div_ceil(20));
    let mut sorted = uids.clone();
    sorted.sort();
    assert_eq!(uids, sorted);
    assert_eq!(uids.len(), events.len());

    let err = ct.get_query_results().query_id(&query_id).max_query_results(1001).send().await.unwrap_err();
    assert_eq!(code(err), "InvalidMaxResultsException");
    let err = ct.get_query_results().query_id(&query_id).next_token("bogus-token").send().await.unwrap_err();
    assert_eq!(code(err), "InvalidNextTokenException");

    let described = ct.describe_query().query_id(&query_id).send().await.unwrap();
    assert_eq!(described.query_string(), Some(sql.as_str()));
    let stats = described.query_statistics().unwrap();
    assert_eq!(stats.events_scanned(), Some(events.len() as i64));
    assert_eq!(stats.events_matched(), Some(events.len() as i64));
    assert!(stats.bytes_scanned().unwrap() > 0);
    assert!(stats.creation_time().is_some());

    // A filtered query matches fewer events than it scans.
    let filtered =
        format!("SELECT count(*) FROM {} WHERE eventData.eventSource = 'com.nordcloudapp.com.maestro'", id(&arn));
    let filtered_id = ct.start_query().query_statement(&filtered).send().await.unwrap().query_id().unwrap().to_owned();
    wait(&ct, &filtered_id).await;
    let stats = ct.describe_query().query_id(&filtered_id).send().await.unwrap().query_statistics().unwrap().clone();
    assert!(stats.events_matched() < stats.events_scanned(), "{stats:?}");
    assert!(stats.events_matched().unwrap() > 0, "{stats:?}");

    // Listed by store, newest first, filtered by status and time window.
    let listed = ct.list_queries().event_data_store(&arn).send().await.unwrap();
    let ids: Vec<&str> = listed.queries().iter().map(|q| q.query_id().unwrap()).collect();
    assert_eq!(ids, vec![filtered_id.as_str(), query_id.as_str()]);
    let none = ct
        .list_queries()
        .event_data_store(&arn)
        .end_time(aws_sdk_cloudtrail::primitives::DateTime::from_secs(1_000_000_000))
        .send()
        .await
        .unwrap();
    assert!(none.queries().is_empty());
    let err =
        ct.list_queries().event_data_store(&arn).query_status(QueryStatus::from("DONE")).send().await.unwrap_err();
    assert_eq!(code(err), "InvalidQueryStatusException");

    // A finished query cannot be cancelled; a running one can.
    let err = ct.cancel_query().query_id(&query_id).send().await.unwrap_err();
    assert_eq!(code(err), "InactiveQueryException");
    let slow = format!(
        "SELECT count(*) FROM {0} a, {0} b, {0} c, {0} d, {0} e WHERE a.eventData.UID <> e.eventData.eventName",
        id(&arn)
    );
    let slow_id = ct.start_query().query_statement(&slow).send().await.unwrap().query_id().unwrap().to_owned();
    let cancelled = ct.cancel_query().query_id(&slow_id).send().await.unwrap();
    assert_eq!(cancelled.query_status(), &QueryStatus::Cancelled);
    assert_eq!(wait(&ct, &slow_id).await, QueryStatus::Cancelled);
    let err = ct.describe_query().query_id("00000000-0000-0000-0000-000000000000").send().await.unwrap_err();
    assert_eq!(code(err), "QueryIdNotFoundException");
}

#[tokio::test]
async fn at_most_the_configured_queries_run_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let lake = TestLake::start_with(dir, |c| c.query.max_concurrent = 1).await;
    let (arn, channel) = store(&lake, "busy").await;
    publish(&lake, Who::Customer, &channel, &fixture()).await;
    let ct = lake.cloudtrail(Who::Customer);
    // A filter on the join, so that the count cannot come from the tables' row counts alone.
    let slow = format!(
        "SELECT count(*) FROM {0} a, {0} b, {0} c, {0} d, {0} e WHERE a.eventData.UID <> e.eventData.eventName",
        id(&arn)
    );
    let first = ct.start_query().query_statement(&slow).send().await.unwrap().query_id().unwrap().to_owned();
    let err = ct.start_query().query_statement(&slow).send().await.unwrap_err();
    assert_eq!(code(err), "MaxConcurrentQueriesException");
    ct.cancel_query().query_id(&first).send().await.unwrap();
    let second = ct.start_query().query_statement(format!("SELECT count(*) FROM {}", id(&arn))).send().await.unwrap();
    assert_eq!(wait(&ct, second.query_id().unwrap()).await, QueryStatus::Finished);
}

/// Results are held in memory within `max_kept_result_bytes`: a newer result pushes out the rows of
/// older ones (their queries stay described), and asking for those rows says to run the query again.
#[tokio::test]
async fn older_results_make_way_for_newer_ones_within_the_memory_bound() {
    // A row of `SELECT eventID` takes 84 bytes: its vector (24), one string (24) and a UUID (36).
    // Room for one result of every event and a half, not two.
    let events = fixture().len() as u64;
    let dir = tempfile::tempdir().unwrap();
    let lake = TestLake::start_with(dir, move |c| c.query.max_kept_result_bytes = 84 * events * 3 / 2).await;
    let (arn, channel) = store(&lake, "bounded").await;
    publish(&lake, Who::Customer, &channel, &fixture()).await;
    let ct = lake.cloudtrail(Who::Customer);
    let sql = format!("SELECT eventID FROM {}", id(&arn));
    let run = |ct: aws_sdk_cloudtrail::Client, sql: String| async move {
        let id = ct.start_query().query_statement(sql).send().await.unwrap().query_id().unwrap().to_owned();
        assert_eq!(wait(&ct, &id).await, QueryStatus::Finished);
        id
    };
    let small = run(ct.clone(), format!("SELECT count(*) FROM {}", id(&arn))).await;
    let first = run(ct.clone(), sql.clone()).await;
    let rows = |page: &aws_sdk_cloudtrail::operation::get_query_results::GetQueryResultsOutput| {
        page.query_statistics().unwrap().total_results_count().unwrap()
    };
    let page = ct.get_query_results().query_id(&first).send().await.unwrap();
    assert_eq!(rows(&page) as usize, fixture().len());

    let second = run(ct.clone(), sql.clone()).await;
    let page = ct.get_query_results().query_id(&second).send().await.unwrap();
    assert_eq!(rows(&page) as usize, fixture().len(), "the newest result is kept");
    let err = ct.get_query_results().query_id(&first).send().await.unwrap_err();
    let message = err.as_service_error().and_then(|e| e.meta().message()).unwrap_or("").to_owned();
    assert_eq!(code(err), "QueryIdNotFoundException");
    assert!(message.contains("no longer kept") && message.contains("Run the query again"), "{message}");
    let described = ct.describe_query().query_id(&first).send().await.unwrap();
    assert_eq!(described.query_status(), Some(&QueryStatus::Finished), "the query itself is still known");
    // The small result ended before the first one, so it went first; alone it did not make room.
    let err = ct.get_query_results().query_id(&small).send().await.unwrap_err();
    assert_eq!(code(err), "QueryIdNotFoundException");
}

#[tokio::test]
async fn a_caller_reads_only_its_own_stores() {
    let lake = TestLake::start().await;
    let (arn, channel) = store(&lake, "private").await;
    publish(&lake, Who::Customer, &channel, &fixture()[..3]).await;

    // Another account does not see the store at all.
    let vendor = lake.cloudtrail(Who::Vendor);
    let err = query(&vendor, &format!("SELECT count(*) FROM {}", id(&arn))).await.unwrap_err();
    assert!(err.starts_with("EventDataStoreNotFoundException"), "{err}");
    // Nor in another region of the same account.
    let elsewhere = lake.cloudtrail_in(Who::Customer, "eu-west-1");
    let err = query(&elsewhere, &format!("SELECT count(*) FROM {}", id(&arn))).await.unwrap_err();
    assert!(err.starts_with("EventDataStoreNotFoundException"), "{err}");
    // And the vendor cannot read the customer's query by its id.
    let ct = lake.cloudtrail(Who::Customer);
    let mine = ct.start_query().query_statement(format!("SELECT count(*) FROM {arn}")).send().await.unwrap();
    let err = vendor.get_query_results().query_id(mine.query_id().unwrap()).send().await.unwrap_err();
    assert_eq!(code(err), "QueryIdNotFoundException");
}

/// A file may hold events on both sides of the retention bound (a store's files are cut by
/// arrival, not by time): its old events stay hidden, read from a file written now or one found
/// at start (whose earliest time comes from its footer), while files wholly retained are read
/// without that filter.
#[tokio::test]
async fn a_file_holding_events_on_both_sides_of_retention_shows_only_the_retained() {
    let lake = TestLake::start().await;
    let (arn, channel) = store_and_channel_kept(&lake, "mixed", Some(7)).await;
    let now = audit_event::EventTime::now().unix_seconds();
    let aged = |events: &mut [String], ages: &[i64]| {
        for (event, age) in events.iter_mut().zip(ages) {
            let mut value: Value = serde_json::from_str(event).unwrap();
            value["eventTime"] = json!(audit_event::EventTime::from_unix(now - age, 0).to_string());
            *event = value.to_string();
        }
    };
    let mut events = fixture();
    events.truncate(6);
    // The first file: one event an hour old, one ten days old, one two hours old.
    aged(&mut events[..3], &[3600, 10 * 86_400, 7200]);
    // The second: all within retention.
    aged(&mut events[3..], &[60, 120, 180]);
    publish(&lake, Who::Customer, &channel, &events[..3]).await;
    lake.lake.columnar().flush_all().unwrap();
    publish(&lake, Who::Customer, &channel, &events[3..]).await;
    lake.lake.columnar().flush_all().unwrap();
    let count = format!("SELECT count(*) FROM {}", id(&arn));
    let ct = lake.cloudtrail(Who::Customer);
    assert_eq!(query(&ct, &count).await.unwrap().1, vec![vec!["5".to_string()]]);
    drop(ct);
    let lake = TestLake::start_in(lake.stop().await).await;
    let ct = lake.cloudtrail(Who::Customer);
    assert_eq!(query(&ct, &count).await.unwrap().1, vec![vec!["5".to_string()]], "after a restart");
    let oldest = format!("SELECT min(eventTime) FROM {}", id(&arn));
    let expected = audit_event::EventTime::from_unix(now - 7200, 0).to_sql_string();
    let got = query(&ct, &oldest).await.unwrap().1[0][0].clone();
    assert!(got.starts_with(&expected), "the oldest event shown is the two-hour-old one: {got} (not {expected})");
}

#[tokio::test]
async fn events_past_retention_are_not_returned() {
    let lake = TestLake::start().await;
    let ct = lake.cloudtrail(Who::Customer);
    let (arn, channel) = store_and_channel_kept(&lake, "short", Some(7)).await;
    let now = audit_event::EventTime::now().unix_seconds();
    let mut events = fixture();
    events.truncate(4);
    for (i, event) in events.iter_mut().enumerate() {
        let mut value: Value = serde_json::from_str(event).unwrap();
        // Two within the last day, two ten days old.
        let age = if i < 2 { 3600 } else { 10 * 86_400 };
        value["eventTime"] = json!(audit_event::EventTime::from_unix(now - age, 0).to_string());
        *event = value.to_string();
    }
    // The old ones and the recent ones land in separate files.
    publish(&lake, Who::Customer, &channel, &events[2..]).await;
    lake.lake.columnar().flush_all().unwrap();
    publish(&lake, Who::Customer, &channel, &events[..2]).await;
    let count = format!("SELECT count(*) FROM {}", id(&arn));
    assert_eq!(query(&ct, &count).await.unwrap().1, vec![vec!["2".to_string()]]);
    lake.lake.columnar().flush_all().unwrap();
    // The file of expired events goes; the other stays. The compactor also sweeps, once at its
    // start and then every minute, so on a loaded machine its sweep may come first: the test
    // checks which files are left, not who dropped them.
    // A query planned before the drop holds its files (here: a snapshot, as StartQuery takes), so
    // the expired file stays on disk until it is done with it.
    let held = lake.lake.columnar().snapshot(id(&arn)).unwrap();
    lake.lake.columnar().drop_expired(now * 1000).unwrap();
    let dir = lake.db().parent().unwrap().join(audit_lake::columnar::DIR).join(id(&arn));
    let files = || -> Vec<i64> {
        std::fs::read_dir(&dir)
            .unwrap()
            .map(|f| f.unwrap().file_name().into_string().unwrap())
            .filter_map(|name| name.strip_suffix(".parquet")?.rsplit('-').next()?.parse().ok())
            .collect()
    };
    if held.files.len() == 2 {
        assert_eq!(files().len(), 2, "a file a query holds is not deleted under it");
    }
    drop(held);
    let latest = files();
    assert_eq!(latest.len(), 1, "one file is left in {}", dir.display());
    assert!(latest[0] > (now - 86_400) * 1000, "the file left holds the recent events");
    assert_eq!(lake.lake.columnar().drop_expired(now * 1000).unwrap(), 0);
    assert_eq!(query(&ct, &count).await.unwrap().1, vec![vec!["2".to_string()]]);

    // The database's copies of the expired events go too (the compactor does this once a minute;
    // here it may already have), and only theirs.
    let columnar = lake.lake.columnar().clone();
    tokio::task::spawn_blocking(move || columnar.forget_expired_events(now * 1000)).await.unwrap().unwrap();
    let mut kept = Vec::new();
    audit_lake::columnar::scan_store(&lake.db(), id(&arn), |record| {
        let record: Value = serde_json::from_str(record).unwrap();
        kept.push(record["eventData"]["UID"].as_str().unwrap().to_owned());
        true
    })
    .unwrap();
    let recent: Vec<String> = events[..2]
        .iter()
        .map(|e| serde_json::from_str::<Value>(e).unwrap()["UID"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kept, recent, "only the recent events are left in the database");
    let columnar = lake.lake.columnar().clone();
    let again = tokio::task::spawn_blocking(move || columnar.forget_expired_events(now * 1000)).await.unwrap();
    assert_eq!(again.unwrap(), 0, "nothing more is past retention");
    assert_eq!(query(&ct, &count).await.unwrap().1, vec![vec!["2".to_string()]]);
}

/// Past retention every row of the database can go; the events that come after, and a restart
/// after that, must still get places (seqs) above everything already in files, or the compactor
/// and queries, which read past what the files hold, would never see them.
#[tokio::test]
async fn events_after_everything_expired_are_still_returned() {
    let dir = tempfile::tempdir().unwrap();
    let lake = TestLake::start_with(dir, |_| {}).await;
    let ct = lake.cloudtrail(Who::Customer);
    let (arn, channel) = store_and_channel_kept(&lake, "all-old", Some(7)).await;
    let now = audit_event::EventTime::now().unix_seconds();
    let aged = |events: &[String], age: i64| -> Vec<String> {
        events
            .iter()
            .map(|event| {
                let mut value: Value = serde_json::from_str(event).unwrap();
                value["eventTime"] = json!(audit_event::EventTime::from_unix(now - age, 0).to_string());
                value.to_string()
            })
            .collect()
    };
    let events = fixture();
    publish(&lake, Who::Customer, &channel, &aged(&events[..3], 10 * 86_400)).await;
    lake.lake.columnar().flush_all().unwrap();
    let columnar = lake.lake.columnar().clone();
    tokio::task::spawn_blocking(move || columnar.forget_expired_events(now * 1000)).await.unwrap().unwrap();
    let count = format!("SELECT count(*) FROM {}", id(&arn));
    assert_eq!(query(&ct, &count).await.unwrap().1, vec![vec!["0".to_string()]]);

    publish(&lake, Who::Customer, &channel, &aged(&events[3..5], 60)).await;
    assert_eq!(query(&ct, &count).await.unwrap().1, vec![vec!["2".to_string()]], "before compaction");
    lake.lake.columnar().flush_all().unwrap();
    assert_eq!(query(&ct, &count).await.unwrap().1, vec![vec!["2".to_string()]], "after compaction");

    // Once more across a restart, with the recent ones expired by a later clock.
    let later = now + 30 * 86_400;
    let columnar = lake.lake.columnar().clone();
    tokio::task::spawn_blocking(move || columnar.forget_expired_events(later * 1000)).await.unwrap().unwrap();
    let dir = lake.stop().await;
    let lake = TestLake::start_with(dir, |_| {}).await;
    let ct = lake.cloudtrail(Who::Customer);
    publish(&lake, Who::Customer, &channel, &aged(&events[5..6], 60)).await;
    lake.lake.columnar().flush_all().unwrap();
    assert_eq!(query(&ct, &count).await.unwrap().1, vec![vec!["3".to_string()]], "after a restart");
}

/// Databases written before the event log hold each event's text in its row (`event_data`, no
/// `log_offset` column); the lake opens them and reads those texts, and new events go to the log.
/// Once every store has an event in synced files, its text leaves the event log (a segment at a
/// time): the lake keeps one full copy. De-duplication, queries and `lake dump` answer as before,
/// also after a restart, and events stored later are kept and read as usual.
#[tokio::test]
async fn texts_in_files_leave_the_event_log() {
    let small = |c: &mut audit_lake::config::LakeConfig| c.event_log_segment_bytes = 64 << 10;
    let lake = TestLake::start_with(tempfile::tempdir().unwrap(), small).await;
    let (arn, channel) = store(&lake, "texts").await;
    let events: Vec<String> = fixture().into_iter().cycle().take(450).collect();
    let entries: Vec<(String, String)> =
        events.iter().enumerate().map(|(i, e)| (format!("texts-{i}"), e.clone())).collect();
    let put = |lake: &TestLake, entries: Vec<(String, String)>| {
        let client = lake.data(Who::Customer);
        let channel = channel.clone();
        async move {
            let mut ids = Vec::new();
            for chunk in entries.chunks(100) {
                let batch = chunk.iter().map(|(id, e)| entry(id, e)).collect();
                let out =
                    client.put_audit_events().channel_arn(&channel).set_audit_events(Some(batch)).send().await.unwrap();
                assert!(out.failed().is_empty(), "{:?}", out.failed());
                ids.extend(out.successful().iter().map(|s| (s.id().to_owned(), s.event_id().to_owned())));
            }
            ids.sort();
            ids
        }
    };
    let ids = put(&lake, entries.clone()).await;
    let log = lake.db().parent().unwrap().join(audit_lake::store::LOG_DIR);
    let segments =
        || std::fs::read_dir(&log).unwrap().filter(|e| e.as_ref().unwrap().path().extension().is_some()).count();
    let dump = |lake: &TestLake| {
        let mut records: Vec<String> = records(&lake.db(), &arn).iter().map(Value::to_string).collect();
        records.sort();
        records
    };
    let before = dump(&lake);
    assert_eq!(before.len(), 450);
    let held = segments();
    assert!(held >= 3, "the texts fill several segments: {held}");

    lake.lake.columnar().flush_all().unwrap();
    let columnar = lake.lake.columnar().clone();
    tokio::task::spawn_blocking(move || columnar.forget_texts_in_files()).await.unwrap().unwrap();
    assert_eq!(segments(), 1, "only the open segment is left of {held}");
    assert_eq!(dump(&lake), before, "the dump reads the files");
    let count = format!("SELECT count(*), count(DISTINCT eventID) FROM {}", id(&arn));
    let ct = lake.cloudtrail(Who::Customer);
    assert_eq!(query(&ct, &count).await.unwrap().1, vec![vec!["450".to_owned(), "450".to_owned()]]);
    assert_eq!(put(&lake, entries.clone()).await, ids, "entries sent again are known by their rows");

    let dir = lake.stop().await;
    let lake = TestLake::start_with(dir, small).await;
    assert_eq!(dump(&lake), before);
    assert_eq!(put(&lake, entries).await, ids, "and after a restart");
    let ct = lake.cloudtrail(Who::Customer);
    assert_eq!(query(&ct, &count).await.unwrap().1, vec![vec!["450".to_owned(), "450".to_owned()]]);
    publish(&lake, Who::Customer, &channel, &events[..5]).await;
    assert_eq!(records(&lake.db(), &arn).len(), 455, "new events are read from the log after the files");
    assert_eq!(query(&ct, &count).await.unwrap().1, vec![vec!["455".to_owned(), "455".to_owned()]]);
}

#[tokio::test]
async fn a_database_from_before_the_event_log_is_read_and_extended() {
    let dir = tempfile::tempdir().unwrap();
    let lake = TestLake::start_with(dir, |_| {}).await;
    let (arn, channel) = store(&lake, "older").await;
    let events = fixture();
    publish(&lake, Who::Customer, &channel, &events[..3]).await;
    let dir = lake.stop().await;
    // Rewrite the rows as the older format had them.
    let data_dir = dir.path().join("lake");
    {
        let conn = rusqlite::Connection::open(data_dir.join(audit_lake::store::DB_FILE)).unwrap();
        let seqs: Vec<i64> = conn
            .prepare("SELECT seq FROM events ORDER BY seq")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(seqs.len(), 3);
        for (seq, text) in seqs.iter().zip(&events) {
            conn.execute(
                "UPDATE events SET event_data = ?2 WHERE seq = ?1",
                rusqlite::params![seq, audit_lake::store::compress(text)],
            )
            .unwrap();
        }
        conn.execute_batch("ALTER TABLE events DROP COLUMN log_offset").unwrap();
    }
    std::fs::remove_dir_all(data_dir.join(audit_lake::store::LOG_DIR)).unwrap();
    std::fs::remove_dir_all(data_dir.join(audit_lake::columnar::DIR)).unwrap();

    let lake = TestLake::start_with(dir, |_| {}).await;
    publish(&lake, Who::Customer, &channel, &events[3..5]).await;
    let uids: Vec<String> =
        records(&lake.db(), &arn).iter().map(|r| r["eventData"]["UID"].as_str().unwrap().to_owned()).collect();
    let sent: Vec<String> = events[..5]
        .iter()
        .map(|e| serde_json::from_str::<Value>(e).unwrap()["UID"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(uids, sent, "the older rows and the new ones, in order");
    let ct = lake.cloudtrail(Who::Customer);
    let count = format!("SELECT count(*) FROM {}", id(&arn));
    assert_eq!(query(&ct, &count).await.unwrap().1, vec![vec!["5".to_string()]]);
    lake.lake.columnar().flush_all().unwrap();
    assert_eq!(query(&ct, &count).await.unwrap().1, vec![vec!["5".to_string()]]);
}

#[tokio::test]
async fn every_documented_query_runs() {
    let lake = TestLake::start().await;
    let (arn, channel) = store(&lake, "docs").await;
    publish(&lake, Who::Customer, &channel, &fixture()).await;
    let ct = lake.cloudtrail(Who::Customer);
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs");
    for guide in ["queries.md", "getting-started.md"] {
        let text = std::fs::read_to_string(docs.join(guide)).unwrap();
        let blocks: Vec<&str> = text.split("```sql\n").skip(1).map(|b| b.split("```").next().unwrap()).collect();
        assert!(blocks.len() >= 5, "{guide} has a query per application");
        for block in blocks {
            let sql = block.replace("$EDS", id(&arn));
            let (_, rows) = query(&ct, &sql).await.unwrap_or_else(|e| panic!("{sql}\n{e}"));
            if sql.contains("awsAccountId") {
                assert!(!rows.is_empty(), "the fixture has Maestro deployments into 123456789012: {sql}");
            }
        }
    }
}

/// An event whose text no reader can decode (here a lone UTF-16 surrogate escape in
/// `principalId`, which `PutAuditEvents` refuses now but an older lake stored) never stops its
/// store: the compactor and the query path set it aside (counted, logged once) and go on.
#[tokio::test]
async fn an_unreadable_stored_event_is_quarantined_and_its_store_stays_queryable() {
    let dir = tempfile::tempdir().unwrap();
    let lake = TestLake::start_with(dir, |c| c.columnar.flush_rows = 4).await;
    let (arn, channel_arn) = store(&lake, "poison").await;
    let events = fixture();
    let poison = events[0].replacen("\"principalId\":\"", "\"principalId\":\"ops\\ud800x", 1);
    assert_ne!(poison, events[0]);

    // PutAuditEvents refuses it, with the per-entry code of malformed content.
    let out = lake
        .data(Who::Customer)
        .put_audit_events()
        .channel_arn(&channel_arn)
        .audit_events(entry("poison", &poison))
        .send()
        .await
        .unwrap();
    assert!(out.successful().is_empty());
    assert_eq!(out.failed()[0].error_code(), "InvalidData", "{:?}", out.failed());

    // As an older lake stored it: straight into the store, past validation (the fault injected).
    publish(&lake, Who::Customer, &channel_arn, &events[1..6]).await;
    let channel = lake.lake.store().channel(&channel_arn).unwrap();
    let bad = audit_lake::store::NewEvent {
        entry_id: "poison".into(),
        event_id: uuid::Uuid::new_v4().to_string(),
        event_time_ms: 1_790_812_800_000,
        event_data: poison,
    };
    let status = lake.lake.store().ingestion(&channel_arn);
    lake.lake
        .store()
        .put_events(&channel, vec![id(&arn).to_owned()], 1_790_812_800_000, vec![bad], status)
        .await
        .unwrap();
    publish(&lake, Who::Customer, &channel_arn, &events[6..12]).await;

    let ct = lake.cloudtrail(Who::Customer);
    let count = format!("SELECT count(*) AS n, count(DISTINCT eventData.UID) AS uids FROM {}", id(&arn));
    // At once (the rows the compactor has not reached are converted for the query) ...
    assert_eq!(query(&ct, &count).await.unwrap().1, vec![vec!["11".to_owned(), "11".to_owned()]]);
    // ... once the compactor wrote files ...
    lake.lake.columnar().flush_all().unwrap();
    assert_eq!(query(&ct, &count).await.unwrap().1, vec![vec!["11".to_owned(), "11".to_owned()]]);
    assert!(lake.lake.columnar().file_bytes().get(id(&arn)).copied().unwrap_or(0) > 0);
    assert_eq!(lake.lake.columnar().quarantined(), 1, "counted once, however often it was read");
    // ... and after a restart, with more events.
    let dir = lake.stop().await;
    let lake = TestLake::start_in(dir).await;
    publish(&lake, Who::Customer, &channel_arn, &events[12..15]).await;
    let ct = lake.cloudtrail(Who::Customer);
    assert_eq!(query(&ct, &count).await.unwrap().1, vec![vec!["14".to_owned(), "14".to_owned()]]);
    lake.lake.columnar().flush_all().unwrap();
    assert_eq!(query(&ct, &count).await.unwrap().1, vec![vec!["14".to_owned(), "14".to_owned()]]);
}

/// A store's small files merge into larger ones (`columnar::merge`): queries and `lake dump` read
/// the same events before and after, each once; a dump in progress puts merges off; the inputs
/// of a merge that committed are removed at start when a crash left them.
#[tokio::test]
async fn small_files_merge_into_larger_ones_and_read_the_same() {
    // Row groups of 16: files of 3 events are rewritten, files of 10 copied as they are.
    let small = |c: &mut audit_lake::config::LakeConfig| {
        c.columnar.flush_rows = 16;
        c.columnar.merge_rows = 1000;
    };
    let lake = TestLake::start_with(tempfile::tempdir().unwrap(), small).await;
    let (arn, channel) = store(&lake, "merged").await;
    let events: Vec<String> = fixture().into_iter().cycle().take(16 * 3 + 16 * 10).collect();
    let dir = lake.db().parent().unwrap().join(audit_lake::columnar::DIR).join(id(&arn));
    let files = || {
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|f| f.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".parquet"))
            .collect();
        names.sort();
        names
    };
    let columnar = lake.lake.columnar().clone();
    let merge_all = || {
        let columnar = columnar.clone();
        async move { tokio::task::spawn_blocking(move || columnar.merge_all()).await.unwrap().unwrap() }
    };
    let (threes, tens) = events.split_at(16 * 3);
    // While a dump reads the store's files, no merge replaces them: a lock as a dump takes it,
    // from the store's first file until every file is written (nor does the merger thread merge
    // meanwhile, so what follows does not depend on when it wakes).
    let mut dump_lock = None;
    for chunk in threes.chunks(3) {
        publish(&lake, Who::Customer, &channel, chunk).await;
        lake.lake.columnar().flush_all().unwrap();
        dump_lock.get_or_insert_with(|| {
            let lock = audit_lake::columnar::merge::lock_file(&dir).unwrap();
            lock.lock_shared().unwrap();
            lock
        });
    }
    assert_eq!(merge_all().await, 0, "a dump is reading");
    assert_eq!(files().len(), 16);
    for chunk in tens.chunks(10) {
        publish(&lake, Who::Customer, &channel, chunk).await;
        lake.lake.columnar().flush_all().unwrap();
    }
    let dump = |lake: &TestLake| {
        let mut records: Vec<String> = records(&lake.db(), &arn).iter().map(Value::to_string).collect();
        records.sort();
        records
    };
    let statements = [
        format!("SELECT count(*), count(DISTINCT eventID) FROM {}", id(&arn)),
        format!("SELECT eventData.eventName, count(*) FROM {} GROUP BY 1 ORDER BY 1", id(&arn)),
        format!(
            "SELECT eventData.UID, eventTime, eventData.requestParameters FROM {} WHERE eventTime >= '2026-10-02 00:00:00' ORDER BY eventData.UID, eventID",
            id(&arn)
        ),
    ];
    let answers = |lake: &TestLake| {
        let ct = lake.cloudtrail(Who::Customer);
        let statements = statements.clone();
        async move {
            let mut out = Vec::new();
            for sql in &statements {
                out.push(query(&ct, sql).await.unwrap().1);
            }
            out
        }
    };
    let before = (dump(&lake), answers(&lake).await);
    assert_eq!(before.0.len(), events.len());
    assert_eq!(before.1[0], vec![vec![events.len().to_string(), events.len().to_string()]]);

    // The files an unmerged lake wrote, to put back afterwards as a crash would leave them.
    let saved = tempfile::tempdir().unwrap();
    for name in files() {
        std::fs::hard_link(dir.join(&name), saved.path().join(&name)).unwrap();
    }
    let held = lake.lake.columnar().snapshot(id(&arn)).unwrap();
    assert_eq!(files().len(), 32, "nothing merged while the dump's lock was held");
    dump_lock.unwrap().unlock().unwrap();
    merge_all().await;
    assert_eq!(merge_all().await, 0, "nothing more is due");
    assert!(files().len() > 2, "a query's files stay until it is done");
    drop(held);
    // 16 files of 3 rewritten as one of 48; that one and 15 of 10 copied into one; one of 10 left.
    let merged = files();
    assert_eq!(merged.len(), 2, "{merged:?}");
    let seqs = |name: &str| -> (i64, i64) {
        let mut parts = name.split('-');
        (parts.next().unwrap().parse().unwrap(), parts.next().unwrap().parse().unwrap())
    };
    assert!(seqs(&merged[0]).1 < seqs(&merged[1]).0, "ranges in order, apart: {merged:?}");
    let footer = datafusion::parquet::file::metadata::ParquetMetaDataReader::new()
        .parse_and_finish(&std::fs::File::open(dir.join(&merged[0])).unwrap())
        .unwrap();
    let groups: Vec<i64> = footer.row_groups().iter().map(|g| g.num_rows()).collect();
    let mut expected = vec![16, 16, 16];
    expected.extend([10; 15]);
    assert_eq!(groups, expected, "the 3s rewritten in groups of 16, the 10s' groups copied");
    assert_eq!((dump(&lake), answers(&lake).await), before, "the same events, each once");

    let lake = TestLake::start_with(lake.stop().await, small).await;
    assert_eq!((dump(&lake), answers(&lake).await), before, "after a restart");
    // A crash between a merge's commit and its inputs' deletion leaves both; a start keeps the
    // merged file only.
    let dir_again = lake.db().parent().unwrap().join(audit_lake::columnar::DIR).join(id(&arn));
    let stopped = lake.stop().await;
    for entry in std::fs::read_dir(saved.path()).unwrap() {
        let entry = entry.unwrap();
        let target = dir_again.join(entry.file_name());
        if !target.exists() {
            std::fs::hard_link(entry.path(), target).unwrap();
        }
    }
    assert!(files().len() > 2);
    let lake = TestLake::start_with(stopped, small).await;
    assert_eq!(files(), merged, "the inputs are removed at start");
    assert_eq!((dump(&lake), answers(&lake).await), before, "after the crash");
}

/// `lake dump` reads each event once while the compactor moves events from the log into a file
/// under it: the dump reads the log a chunk (20,000 events) at a time, and a file written after
/// the first chunk holds that chunk's events too. (Before the dump skipped them, a `bench` run
/// counted 320,000 of its 300,000 events.)
#[tokio::test]
async fn a_dump_reads_each_event_once_while_a_file_takes_events_it_read_from_the_log() {
    // No file until the test writes one.
    let lake = TestLake::start_with(tempfile::tempdir().unwrap(), |c| c.columnar.flush_rows = 1_000_000).await;
    let (arn, channel) = store(&lake, "moving").await;
    let events: Vec<String> = fixture().into_iter().cycle().take(20_000 + 700).collect();
    publish(&lake, Who::Customer, &channel, &events).await;
    let dir = lake.db().parent().unwrap().join(audit_lake::columnar::DIR).join(id(&arn));
    assert!(!dir.exists(), "no file before the dump");

    let columnar = lake.lake.columnar().clone();
    let mut seen = std::collections::HashSet::new();
    let mut twice = 0;
    let counted = audit_lake::columnar::scan_store(&lake.db(), id(&arn), |record| {
        if seen.is_empty() {
            // The first chunk is read from the log: now a file takes every event.
            columnar.flush_all().unwrap();
        }
        let record: Value = serde_json::from_str(record).unwrap();
        if !seen.insert(record["eventID"].as_str().unwrap().to_owned()) {
            twice += 1;
        }
        true
    })
    .unwrap();
    assert!(std::fs::read_dir(&dir).unwrap().any(|f| f.unwrap().file_name().to_string_lossy().ends_with(".parquet")));
    assert_eq!(twice, 0, "events read twice");
    assert_eq!(counted, events.len() as u64);
    assert_eq!(seen.len(), events.len());
}
