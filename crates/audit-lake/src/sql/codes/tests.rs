//! Counting codes within a bounded share of memory, and stopping when the query is gone.

use std::{collections::BTreeMap, path::Path, sync::Arc};

use datafusion::{
    arrow::{
        array::{Array, ArrayRef, AsArray, RecordBatch, StringArray},
        datatypes::{DataType, Field, Int64Type, Schema, SchemaRef},
    },
    execution::{
        cache::{Cache, cache_manager::CachedFileMetadataEntry, default_cache::DefaultCache},
        memory_pool::{GreedyMemoryPool, MemoryConsumer, MemoryPool},
    },
    object_store::{ObjectStoreExt, local::LocalFileSystem, path::Path as ObjectPath},
    parquet::{arrow::ArrowWriter, file::properties::WriterProperties},
    physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder},
};

use super::{Counting, Metrics};

/// A file of `rows` rows whose `a` is one of `distinct` values (each in turn) and `b` one of two.
fn file(path: &Path, rows: usize, distinct: usize) {
    let a: StringArray = (0..rows).map(|i| Some(format!("value {}", i % distinct))).collect();
    let b: StringArray = (0..rows).map(|i| if i % 2 == 0 { Some("x") } else { None }).collect();
    let schema =
        Arc::new(Schema::new(vec![Field::new("a", DataType::Utf8, true), Field::new("b", DataType::Utf8, true)]));
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(a) as ArrayRef, Arc::new(b)]).unwrap();
    let mut writer = ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

/// The partial aggregation's rows for `keys` columns: the values, then a count.
fn schema(keys: usize) -> SchemaRef {
    let mut fields: Vec<Field> = (0..keys).map(|k| Field::new(format!("k{k}"), DataType::Utf8, true)).collect();
    fields.push(Field::new("count", DataType::Int64, false));
    Arc::new(Schema::new(fields))
}

fn counting(leaves: &[&str], pool: &Arc<dyn MemoryPool>) -> Counting {
    let set = ExecutionPlanMetricsSet::new();
    let metrics = Metrics {
        rows_scanned: MetricBuilder::new(&set).counter("rows_scanned", 0),
        bytes_scanned: MetricBuilder::new(&set).counter("bytes_scanned", 0),
        output_rows: MetricBuilder::new(&set).output_rows(0),
        elapsed_compute: MetricBuilder::new(&set).elapsed_compute(0),
    };
    let reservation = MemoryConsumer::new("test").with_can_spill(true).register(pool);
    let keys = leaves.len();
    Counting::new(leaves.iter().map(|l| vec![(*l).to_owned()]).collect(), schema(keys), reservation, metrics)
}

/// Each group's count, added over every row emitted for it; and how many rows were emitted.
fn totals(batches: &[RecordBatch]) -> (BTreeMap<Vec<Option<String>>, i64>, usize) {
    let mut totals = BTreeMap::new();
    let mut rows = 0;
    for batch in batches {
        let keys = batch.num_columns() - 1;
        let counts = batch.column(keys).as_primitive::<Int64Type>();
        for r in 0..batch.num_rows() {
            let key = (0..keys).map(|k| {
                let column = batch.column(k).as_string::<i32>();
                (!column.is_null(r)).then(|| column.value(r).to_owned())
            });
            *totals.entry(key.collect()).or_default() += counts.value(r);
            rows += 1;
        }
    }
    (totals, rows)
}

#[test]
fn past_its_share_of_memory_it_emits_what_it_has_and_counts_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.parquet");
    file(&path, 200_000, 20_000);
    for leaves in [&["a"][..], &["a", "b"]] {
        // Room for a few thousand values only: the 20,000 must be emitted in several rounds.
        let pool: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(256 * 1024));
        let mut counting = counting(leaves, &pool);
        let (tx, mut rx) = tokio::sync::mpsc::channel(10_000);
        assert!(counting.file(&path, None, &tx).unwrap());
        assert!(counting.emit(&tx).unwrap());
        drop(tx);
        assert_eq!(pool.reserved(), 0, "{leaves:?}: emitting gives the memory back");
        let mut batches = Vec::new();
        while let Ok(batch) = rx.try_recv() {
            batches.push(batch.unwrap());
        }
        let (totals, rows) = totals(&batches);
        assert!(rows > totals.len(), "{leaves:?}: some groups were emitted more than once ({rows} rows)");
        if leaves.len() == 1 {
            assert_eq!(totals.len(), 20_000);
            assert!(totals.values().all(|&n| n == 10), "{leaves:?}");
        } else {
            // value i is always with b = "x" when i is even (200,000 rows, 20,000 values).
            assert_eq!(totals.len(), 20_000);
            for (key, n) in &totals {
                let even = key[0].as_deref().unwrap()[6..].parse::<usize>().unwrap() % 2 == 0;
                assert_eq!((key[1].as_deref(), *n), (if even { Some("x") } else { None }, 10), "{key:?}");
            }
        }
    }
}

#[test]
fn a_query_gone_stops_the_reading() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.parquet");
    file(&path, 200_000, 10);
    let pool: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(1 << 20));
    let mut counting = counting(&["a"], &pool);
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    drop(rx);
    assert!(!counting.file(&path, None, &tx).unwrap(), "the query is gone");
    assert_eq!(counting.metrics.rows_scanned.value(), 0, "nothing was read for it");
}

#[test]
fn each_column_chunk_is_read_with_its_own_dictionary_across_row_groups_unlike_batches() {
    // Row groups of 100,000 rows against batches of 65,536: a batch read across two row groups
    // would mix two dictionaries, which the reader encodes again per batch (a dictionary each).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.parquet");
    let (groups, group_rows) = (3, 100_000);
    let rows = groups * group_rows;
    // Each row group its own five values, so each column chunk has its own dictionary.
    let a: StringArray = (0..rows).map(|i| Some(format!("group {} value {}", i / group_rows, i % 5))).collect();
    let b: StringArray = (0..rows).map(|i| Some(if i % 2 == 0 { "x" } else { "y" })).collect();
    let schema =
        Arc::new(Schema::new(vec![Field::new("a", DataType::Utf8, true), Field::new("b", DataType::Utf8, true)]));
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(a) as ArrayRef, Arc::new(b)]).unwrap();
    let props = WriterProperties::builder().set_max_row_group_row_count(Some(group_rows)).build();
    let mut writer = ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), schema, Some(props)).unwrap();
    writer.write(&batch).unwrap();
    assert_eq!(writer.close().unwrap().num_row_groups(), groups);
    let pool: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(1 << 30));
    // The footer read first is kept in the file metadata cache DataFusion's scans share.
    let cache = DefaultCache::<ObjectPath, CachedFileMetadataEntry>::new(1 << 24);
    let location = ObjectPath::from_filesystem_path(&path).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let meta = runtime.block_on(LocalFileSystem::new().head(&location)).unwrap();
    for leaves in [&["a"][..], &["a", "b"], &["a"]] {
        let mut counting = counting(leaves, &pool);
        let (tx, mut rx) = tokio::sync::mpsc::channel(1 << 10);
        assert!(counting.file(&path, Some((&meta, &cache)), &tx).unwrap());
        assert!(cache.get(&location).is_some_and(|entry| entry.is_valid_for(&meta)), "the footer is cached");
        for (key, values) in leaves.iter().zip(&counting.values) {
            assert_eq!(values.maps, groups, "{key}: one dictionary mapped per column chunk, none per batch");
        }
        assert!(counting.emit(&tx).unwrap());
        drop(tx);
        let mut batches = Vec::new();
        while let Ok(batch) = rx.try_recv() {
            batches.push(batch.unwrap());
        }
        let (totals, _) = totals(&batches);
        // Five values of `a` per row group; with `b`, each of them with both of its values.
        let expected = if leaves.len() == 1 { groups * 5 } else { groups * 10 };
        assert_eq!(totals.len(), expected, "{leaves:?}: {totals:?}");
        assert_eq!(totals.values().sum::<i64>(), rows as i64, "{leaves:?}");
        let first = Some("group 0 value 0".to_owned());
        let count = totals.iter().filter(|(k, _)| k[0] == first).map(|(_, n)| n).sum::<i64>();
        assert_eq!(count, (group_rows / 5) as i64, "{leaves:?}");
    }
}
