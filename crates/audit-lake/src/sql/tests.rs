//! Queries over parameter columns (`columnar::params`): a catalog key read from its column
//! answers what `element_at` over the JSON text answers, in files written with the columns, in
//! files written before them and in memory, while reading less. Grouped counts from dictionary
//! codes (`codes`) answer what DataFusion's own aggregation answers.

use std::{path::Path, sync::Arc};

use datafusion::{
    arrow::{
        array::{Array, ArrayRef, AsArray, RecordBatch, StructArray},
        datatypes::{DataType, Field, Schema},
    },
    parquet::{arrow::ArrowWriter, file::properties::WriterProperties},
};

use super::{Engine, Output, QueryConfig, StoreView, dialect};
use crate::columnar::{RecordsBuilder, Row, Segment, Snapshot, params, schema_with};

const STORE: &str = "a-b-c-d-e";

/// Events whose `resourceType` is a string, absent, `null`, a number, an object, or spelled
/// with an escape; `region` is a string in each.
fn events(from: usize, count: usize) -> RecordBatch {
    let kinds = [
        r#""resourceType":"EC2""#,
        r#""resourceType":"RDS""#,
        r#""other":"EC2""#,
        r#""resourceType":null"#,
        r#""resourceType":5"#,
        r#""resourceType":{"a":[1]}"#,
        r#""resource\u0054ype":"EC2""#,
    ];
    let mut builder = RecordsBuilder::default();
    let texts: Vec<String> = (from..from + count)
        .map(|i| {
            format!(
                r#"{{"version":"1","userIdentity":{{"type":"USER","principalId":"p"}},"eventSource":"s","eventName":"n{}","eventTime":"t","UID":"u{i}","requestParameters":{{{},"region":"eu-west-{}"}}}}"#,
                i % 3,
                kinds[i % kinds.len()],
                i % 2
            )
        })
        .collect();
    for (i, text) in texts.iter().enumerate() {
        let id = format!("e{:04}", from + i);
        let row = Row {
            event_id: &id,
            event_time_ms: 1000,
            ingestion_time_ms: 0,
            channel_arn: "a:b:c:r:1:c",
            event_data: text,
        };
        builder.append(row).unwrap();
    }
    builder.finish()
}

/// Writes `batch` as a file with parameter columns for `keys` only (as a lake whose catalog
/// declared those would have), and returns it as a segment. With no keys, the file is as lakes
/// before parameter columns wrote it: those `eventData` fields an event must have were not nullable.
fn write(path: &Path, batch: &RecordBatch, keys: &[String]) -> Segment {
    write_with(path, batch, keys, None)
}

/// [`write`], with the writer's properties.
fn write_with(path: &Path, batch: &RecordBatch, keys: &[String], props: Option<WriterProperties>) -> Segment {
    let mut schema = schema_with(keys);
    if keys.is_empty() {
        let required = ["version", "userIdentity", "eventSource", "eventName", "eventTime", "UID"];
        let fields = schema.fields().iter().map(|field| match field.data_type() {
            DataType::Struct(children) if field.name() == "eventData" => {
                let children: Vec<Field> = children
                    .iter()
                    .map(|c| c.as_ref().clone().with_nullable(!required.contains(&c.name().as_str())))
                    .collect();
                Field::new("eventData", DataType::Struct(children.into()), false)
            }
            _ => field.as_ref().clone(),
        });
        schema = Arc::new(Schema::new(fields.collect::<Vec<_>>()));
    }
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|field| {
            let column = batch.column_by_name(field.name()).unwrap().clone();
            let DataType::Struct(fields) = field.data_type() else { return column };
            let full = column.as_struct();
            let children = fields.iter().map(|f| full.column_by_name(f.name()).unwrap().clone()).collect();
            Arc::new(StructArray::new(fields.clone(), children, full.nulls().cloned())) as ArrayRef
        })
        .collect();
    let mut writer = ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema.clone(), props).unwrap();
    writer.write(&RecordBatch::try_new(schema, columns).unwrap()).unwrap();
    writer.close().unwrap();
    Segment::of_file(path)
}

async fn query(engine: &Engine, snapshot: &Snapshot, sql: &str) -> Output {
    query_from(engine, snapshot, sql, i64::MIN).await
}

/// [`query`] over a store that retains events from `retain_from_ms`.
async fn query_from(engine: &Engine, snapshot: &Snapshot, sql: &str, retain_from_ms: i64) -> Output {
    let prepared = dialect::parse(sql).unwrap();
    let store = StoreView { id: STORE.into(), snapshot: snapshot.clone(), retain_from_ms };
    let planned = engine.plan(prepared.statement, vec![store]).await.unwrap();
    engine.run(planned, 10_000, 1 << 24).await.unwrap_or_else(|_| panic!("{sql} runs"))
}

/// The physical plan of `sql`, as `EXPLAIN` shows it.
async fn physical(engine: &Engine, snapshot: &Snapshot, sql: &str, retain_from_ms: i64) -> String {
    let prepared = dialect::parse(sql).unwrap();
    let store = StoreView { id: STORE.into(), snapshot: snapshot.clone(), retain_from_ms };
    let planned = engine.plan(prepared.statement, vec![store]).await.unwrap();
    let plan = planned.ctx.state().create_physical_plan(&planned.plan).await.unwrap();
    datafusion::physical_plan::displayable(plan.as_ref()).indent(true).to_string()
}

#[tokio::test]
async fn a_catalog_key_reads_as_element_at_does_in_every_part_of_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(&QueryConfig::default(), &dir.path().join("spill")).unwrap();
    let all = params::keys().to_vec();
    let some: Vec<String> = all.iter().filter(|k| *k != "resourceType").cloned().collect();
    let snapshot = Snapshot {
        files: vec![
            write(&dir.path().join("now.parquet"), &events(0, 40), &all),
            write(&dir.path().join("before.parquet"), &events(40, 40), &[]),
            write(&dir.path().join("other.parquet"), &events(80, 40), &some),
        ],
        batches: vec![events(120, 40)],
    };

    // The same query with the key as a literal (the column) and as an expression (the JSON text).
    let json_key = "concat('resource', 'Type')";
    for template in [
        "SELECT eventID, element_at(eventData.requestParameters, KEY) AS v FROM a-b-c-d-e ORDER BY eventID",
        "SELECT element_at(eventData.requestParameters, KEY) AS v, count(*) AS n FROM a-b-c-d-e GROUP BY 1 ORDER BY 1",
        "SELECT count(*) AS n FROM a-b-c-d-e WHERE element_at(eventData.requestParameters, KEY) = 'EC2'",
        "SELECT eventData.eventName AS e, count(element_at(eventData.requestParameters, KEY)) AS n \
         FROM (SELECT * FROM a-b-c-d-e) t GROUP BY 1 ORDER BY 1",
    ] {
        let column = query(&engine, &snapshot, &template.replace("KEY", "'resourceType'")).await;
        let json = query(&engine, &snapshot, &template.replace("KEY", json_key)).await;
        assert_eq!(column.rows, json.rows, "{template}");
        assert!(!column.rows.is_empty());
    }
    let ec2 = query(
        &engine,
        &snapshot,
        "SELECT count(*) FROM a-b-c-d-e WHERE eventData.requestParameters['resourceType'] = 'EC2'",
    )
    .await;
    let expected = (0..160).filter(|i| i % 7 == 0 || i % 7 == 6).count(); // the key plain or escaped
    assert_eq!(ec2.rows, vec![vec![expected.to_string()]]);

    // Results show eventData as the events had it, without the columns.
    let rendered = query(&engine, &snapshot, "SELECT eventData FROM a-b-c-d-e").await;
    assert_eq!(rendered.rows.len(), 160);
    assert!(rendered.rows.iter().all(|r| !r[0].contains(params::PREFIX) && r[0].contains("requestParameters")));
    // And so does a list of them: a JSON array of the same objects.
    let listed = query(&engine, &snapshot, "SELECT array_agg(eventData ORDER BY eventID) FROM a-b-c-d-e").await;
    let listed: Vec<serde_json::Value> = serde_json::from_str(&listed.rows[0][0]).expect("a JSON array");
    let each = query(&engine, &snapshot, "SELECT eventData FROM a-b-c-d-e ORDER BY eventID").await;
    let each: Vec<serde_json::Value> = each.rows.iter().map(|r| serde_json::from_str(&r[0]).unwrap()).collect();
    assert_eq!(listed, each);

    // Over files with the column, the filter reads it and not the JSON text.
    let now = Snapshot { files: snapshot.files[..1].to_vec(), batches: vec![] };
    let filter = "SELECT count(*) FROM a-b-c-d-e WHERE element_at(eventData.requestParameters, KEY) = 'EC2'";
    let column = query(&engine, &now, &filter.replace("KEY", "'resourceType'")).await;
    let json = query(&engine, &now, &filter.replace("KEY", json_key)).await;
    assert_eq!(column.rows, json.rows);
    assert!(
        column.stats.bytes_scanned * 2 < json.stats.bytes_scanned,
        "column {} bytes, JSON {} bytes",
        column.stats.bytes_scanned,
        json.stats.bytes_scanned
    );
}

/// Events of two sources and five names, from three principals; a third without a userAgent, a
/// seventh without a userIdentity, a quarter in another region; their times 1000 + n ms.
fn varied(from: usize, count: usize) -> RecordBatch {
    records((from..from + count).map(|i| {
        let agent = if i % 3 == 0 { String::new() } else { format!(r#","userAgent":"agent {}""#, i % 2) };
        // Every seventh without a userIdentity.
        let identity = if i % 7 == 0 {
            String::new()
        } else {
            format!(r#""userIdentity":{{"type":"USER","principalId":"p{}"}},"#, i % 3)
        };
        let text = format!(
            r#"{{"version":"1",{identity}"eventSource":"s{}","eventName":"n{}","eventTime":"t","UID":"u{i}"{agent}}}"#,
            i % 2,
            i % 5,
        );
        let channel = if i % 4 == 0 {
            "arn:aws:cloudtrail:eu-west-1:1:channel/c"
        } else {
            "arn:aws:cloudtrail:us-east-1:1:channel/c"
        };
        (format!("e{i:05}"), 1000 + i as i64, channel, text)
    }))
}

/// A record batch of events given as (eventID, eventTime in ms, channel ARN, eventData text).
fn records<'a>(events: impl Iterator<Item = (String, i64, &'a str, String)>) -> RecordBatch {
    let mut builder = RecordsBuilder::default();
    for (id, time_ms, channel, text) in events {
        let row = Row {
            event_id: &id,
            event_time_ms: time_ms,
            ingestion_time_ms: 0,
            channel_arn: channel,
            event_data: &text,
        };
        builder.append(row).unwrap();
    }
    builder.finish()
}

#[tokio::test]
async fn grouped_counts_from_dictionary_codes_answer_as_datafusion_does() {
    let dir = tempfile::tempdir().unwrap();
    let config = QueryConfig::default();
    let codes = Engine::new(&config, &dir.path().join("spill")).unwrap();
    let plain = Engine::new(&config, &dir.path().join("spill-plain")).unwrap().without_count_codes();
    let all = params::keys().to_vec();
    let no_dictionary = WriterProperties::builder().set_dictionary_enabled(false).build();
    let files = vec![
        write(&dir.path().join("a.parquet"), &varied(0, 300), &all),
        write(&dir.path().join("b.parquet"), &varied(300, 500), &all),
        // Written before parameter columns, and without dictionaries (as a column past the
        // writer's dictionary limit is).
        write(&dir.path().join("older.parquet"), &varied(800, 200), &[]),
        write_with(&dir.path().join("plain.parquet"), &varied(1000, 200), &all, Some(no_dictionary)),
    ];
    let files_only = Snapshot { files: files.clone(), batches: vec![] };
    let with_memory = Snapshot { files, batches: vec![varied(1200, 100)] };

    let taken = [
        "SELECT eventData.eventName, count(*) FROM a-b-c-d-e GROUP BY eventData.eventName ORDER BY 2 DESC, 1",
        "SELECT eventData.eventSource, eventData.eventName, count(*) AS events, count(1) FROM a-b-c-d-e GROUP BY 1, 2",
        "SELECT eventData.userAgent, count(*) FROM a-b-c-d-e GROUP BY 1",
        "SELECT eventData.userIdentity.principalId, count(*) FROM a-b-c-d-e GROUP BY 1 HAVING count(*) > 50",
        "SELECT eventID, count(*) FROM a-b-c-d-e GROUP BY 1",
        // A field of a struct that is NULL (no event here has an addendum).
        "SELECT addendum.reason, count(*) FROM a-b-c-d-e GROUP BY 1",
        "SELECT awsRegion, eventData.userAgent, eventData.eventSource, eventData.userIdentity.type, count(*) \
         FROM a-b-c-d-e GROUP BY 1, 2, 3, 4",
        "SELECT eventData.eventName, count(*) FROM a-b-c-d-e GROUP BY 1 ORDER BY 2 DESC LIMIT 2",
    ];
    let kept = [
        "SELECT eventData.eventName, count(*) FROM a-b-c-d-e WHERE eventData.eventSource = 's0' GROUP BY 1",
        "SELECT eventData.eventName, count(eventData.userAgent) FROM a-b-c-d-e GROUP BY 1",
        "SELECT eventData.eventName, count(DISTINCT eventData.userAgent) FROM a-b-c-d-e GROUP BY 1",
        "SELECT element_at(eventData.requestParameters, 'resourceType'), count(*) FROM a-b-c-d-e GROUP BY 1",
        "SELECT eventTime, count(*) FROM a-b-c-d-e GROUP BY 1",
        "SELECT eventData.eventName, eventData.eventSource, eventData.userAgent, eventID, awsRegion, count(*) \
         FROM a-b-c-d-e GROUP BY 1, 2, 3, 4, 5",
    ];
    // Retaining from 1100 ms: the first file straddles it (its rows are filtered), the rest are
    // kept whole.
    for (snapshot, from) in [(&files_only, i64::MIN), (&with_memory, i64::MIN), (&with_memory, 1100)] {
        for sql in taken.iter().chain(&kept) {
            let mut ours = query_from(&codes, snapshot, sql, from).await;
            let mut theirs = query_from(&plain, snapshot, sql, from).await;
            if !sql.contains("ORDER BY") {
                ours.rows.sort();
                theirs.rows.sort();
            }
            assert_eq!(ours.rows, theirs.rows, "{sql} from {from}");
            assert!(!ours.rows.is_empty(), "{sql}");
            assert_eq!(
                (ours.stats.events_scanned, ours.stats.events_matched),
                (theirs.stats.events_scanned, theirs.stats.events_matched),
                "{sql} from {from}"
            );
            let plan = physical(&codes, snapshot, sql, from).await;
            assert_eq!(plan.contains("CountCodesExec"), taken.contains(sql), "{sql} from {from}:\n{plan}");
            assert!(!physical(&plain, snapshot, sql, from).await.contains("CountCodesExec"));
        }
    }
    // NULL is a group, and stays NULL: the events without a userAgent. (The lake stores an event
    // without a userIdentity with an empty principalId.)
    let without_agent = (0..1200).filter(|i| i % 3 == 0).count();
    let anonymous = (0..1200).filter(|i| i % 7 == 0).count();
    for (leaf, group) in [("userAgent", ("(null)", without_agent)), ("userIdentity.principalId", ("", anonymous))] {
        let sql = format!(
            "SELECT coalesce(v, '(null)'), n FROM (SELECT eventData.{leaf} AS v, count(*) AS n FROM a-b-c-d-e GROUP BY 1) t ORDER BY 1"
        );
        let ours = query(&codes, &files_only, &sql).await;
        assert_eq!(ours.rows, query(&plain, &files_only, &sql).await.rows, "{sql}");
        assert!(ours.rows.contains(&vec![group.0.to_owned(), group.1.to_string()]), "{sql}: {:?}", ours.rows);
        assert!(physical(&codes, &files_only, &sql, i64::MIN).await.contains("CountCodesExec"));
    }
    // The straddling file keeps DataFusion's plan beside the codes.
    let plan = physical(&codes, &files_only, taken[0], 1100).await;
    assert!(plan.contains("CountCodesExec") && plan.contains("FilterExec"), "{plan}");
}

/// `count` events whose times are `base_s`, `base_s + 1` … seconds (the lake keeps whole seconds).
fn at(base_s: i64, count: usize) -> RecordBatch {
    records((0..count).map(|i| {
        let id = format!("t{base_s}-{i}");
        let text = format!(
            r#"{{"version":"1","userIdentity":{{"type":"USER","principalId":"p"}},"eventSource":"s","eventName":"n","eventTime":"t","UID":"{id}"}}"#
        );
        (id, (base_s + i as i64) * 1000, "a:b:c:r:1:c", text)
    }))
}

#[tokio::test]
async fn a_query_bounded_in_event_time_opens_only_the_files_whose_span_meets_its_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(&QueryConfig::default(), &dir.path().join("spill")).unwrap();
    let all = params::keys().to_vec();
    // Three files of ten events each: at 100–109 s, 200–209 s and 300–309 s.
    let bases = [100, 200, 300];
    let files: Vec<Segment> = bases
        .iter()
        .map(|&base| {
            let mut segment = write(&dir.path().join(format!("f{base}.parquet")), &at(base, 10), &all);
            segment.latest_ms = (base + 9) * 1000;
            assert_eq!(segment.earliest_ms, base * 1000, "the span as the lake knows it");
            segment
        })
        .collect();
    let snapshot = Snapshot { files, batches: vec![] };
    // The same events in memory, where nothing is left out: the answers to match.
    let memory = Snapshot { files: vec![], batches: bases.iter().map(|&base| at(base, 10)).collect() };
    let t = |ms: i64| format!("'1970-01-01 00:{:02}:{:02}.{:03}'", ms / 60_000, ms / 1000 % 60, ms % 1000);
    // (the filter, the files that must be opened)
    let cases = [
        (format!("eventTime >= {} AND eventTime < {}", t(200_000), t(300_000)), vec![200]),
        (format!("eventTime <= {}", t(200_000)), vec![100, 200]),
        (format!("eventTime < {}", t(200_000)), vec![100]),
        (format!("eventTime > {}", t(209_000)), vec![200, 300]),
        (format!("eventTime > {}", t(209_500)), vec![300]),
        (format!("eventTime < {}", t(200_500)), vec![100, 200]),
        (format!("{} <= eventTime", t(300_000)), vec![300]),
        (format!("eventTime = {}", t(104_000)), vec![100]),
        (format!("eventTime BETWEEN {} AND {}", t(105_000), t(203_000)), vec![100, 200]),
        (format!("eventTime > {}", t(3_599_000)), vec![]),
        // Not a conjunction of bounds: every file.
        (format!("eventTime < {} OR eventTime > {}", t(105_000), t(305_000)), vec![100, 200, 300]),
        (format!("eventID <> 'x' AND eventTime > {}", t(250_000)), vec![300]),
        // As users write the bounds: names in any case, typed literals, casts, functions.
        (format!("eventtime >= {} AND EVENTTIME < {}", t(200_000), t(300_000)), vec![200]),
        (format!("eventTime >= TIMESTAMP {} AND eventTime < TIMESTAMP {}", t(200_000), t(300_000)), vec![200]),
        (format!("eventTime > CAST({} AS TIMESTAMP)", t(250_000)), vec![300]),
        (format!("eventTime < to_timestamp({})", t(150_000)), vec![100]),
        // Trino's date functions, which CloudTrail Lake users write, fold into the same bounds.
        ("eventTime > from_iso8601_timestamp('1970-01-01T00:04:10Z')".to_owned(), vec![300]),
        ("eventTime < from_iso8601_timestamp('1970-01-01T01:02:30+01:00')".to_owned(), vec![100]),
        (format!("eventTime >= date_add('second', -100, TIMESTAMP {})", t(300_000)), vec![200, 300]),
        (format!("eventTime < date_add('minute', -2, from_iso8601_timestamp({}))", t(300_000)), vec![100]),
    ];
    for (filter, opened) in cases {
        let sql = format!("SELECT count(*) FROM a-b-c-d-e WHERE {filter}");
        let out = query(&engine, &snapshot, &sql).await;
        let expected = query(&engine, &memory, &sql).await;
        assert_eq!(out.rows, expected.rows, "{filter}");
        let plan = physical(&engine, &snapshot, &sql, i64::MIN).await;
        for base in bases {
            let name = format!("f{base}.parquet");
            assert_eq!(plan.contains(&name), opened.contains(&base), "{filter}: {name} in the plan\n{plan}");
        }
        assert!(out.stats.events_scanned <= 10 * opened.len() as u64, "{filter}: {:?}", out.stats);
    }
    // The bounds matched rows: not a vacuous comparison.
    let some =
        query(&engine, &snapshot, &format!("SELECT count(*) FROM a-b-c-d-e WHERE eventTime <= {}", t(200_000))).await;
    assert_eq!(some.rows, vec![vec!["11".to_owned()]]);
}

/// Trino's date functions and `approx_percentile`, as CloudTrail Lake users write them, run
/// through the engine over stored events (at 100–109 s past the epoch).
#[tokio::test]
async fn trino_date_functions_and_approx_percentile_answer_over_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(&QueryConfig::default(), &dir.path().join("spill")).unwrap();
    let snapshot = Snapshot { files: vec![], batches: vec![at(100, 10)] };
    let epoch = "from_iso8601_timestamp('1970-01-01T00:00:00Z')";
    let cases = [
        (format!("SELECT count(*) FROM a-b-c-d-e WHERE eventTime >= date_add('second', 105, {epoch})"), "5"),
        (format!("SELECT max(date_diff('second', {epoch}, eventTime)) FROM a-b-c-d-e"), "109"),
        (format!("SELECT min(date_diff('minute', eventTime, date_add('hour', 1, {epoch}))) FROM a-b-c-d-e"), "58"),
        ("SELECT count(*) FROM a-b-c-d-e WHERE eventTime > date_add('day', -7, now())".to_owned(), "0"),
        ("SELECT count(*) FROM a-b-c-d-e WHERE eventTime < from_iso8601_date('1970-01-02')".to_owned(), "10"),
        // Trino's date_format, in place of DataFusion's, and the fields of a time.
        ("SELECT min(date_format(eventTime, '%Y-%m-%d %H:%i:%s')) FROM a-b-c-d-e".to_owned(), "1970-01-01 00:01:40"),
        ("SELECT max(second(eventTime)) + 60 * max(minute(eventTime)) FROM a-b-c-d-e".to_owned(), "109"),
        // regexp_extract and if, over the stored UIDs (t100-0 … t100-9).
        ("SELECT max(regexp_extract(eventData.UID, '-([0-9]+)$', 1)) FROM a-b-c-d-e".to_owned(), "9"),
        ("SELECT sum(if(second(eventTime) >= 45, 1, 0)) FROM a-b-c-d-e".to_owned(), "5"),
        (
            format!("SELECT approx_percentile(date_diff('second', {epoch}, eventTime), 0.5) AS median FROM a-b-c-d-e"),
            "104.5",
        ),
    ];
    for (sql, expected) in cases {
        let out = query(&engine, &snapshot, &sql).await;
        let got = out.rows.first().and_then(|row| row.first()).cloned();
        assert_eq!(got.as_deref(), Some(expected), "{sql}: {:?}", out.rows);
    }
    // A misspelt unit fails the query as it is planned, even over a store with no events to read.
    let empty = Snapshot { files: vec![], batches: vec![] };
    for sql in [
        "SELECT count(*) FROM a-b-c-d-e WHERE eventTime > date_add('days', -7, now())",
        "SELECT date_diff('hours', eventTime, now()) FROM a-b-c-d-e",
    ] {
        let prepared = dialect::parse(sql).unwrap();
        let store = StoreView { id: STORE.into(), snapshot: empty.clone(), retain_from_ms: i64::MIN };
        let Err(refused) = engine.plan(prepared.statement, vec![store]).await else {
            panic!("{sql} was planned");
        };
        let refused = refused.to_string();
        assert!(refused.contains("is not a unit; use one of millisecond"), "{sql}: {refused}");
    }
}
