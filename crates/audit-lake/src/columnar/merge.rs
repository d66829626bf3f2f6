//! Merging a store's small Parquet files into larger ones, so that the number of files a query
//! opens stays bounded as a store grows (DataFusion's cost per file and query dominated a store
//! of 100M events in ~1,300 files: BENCHMARKS.md, issue 23).
//!
//! # What is merged
//!
//! [`plan`] picks, oldest first, a run of adjacent files of one store (adjacent in `seq` order, so
//! the merged file's range overlaps no other file's) that are each below
//! [`ColumnarConfig::merge_rows`](super::ColumnarConfig::merge_rows) and of the current layout:
//! [`FAN_IN`] of them, or as many as fit under `merge_rows` or under the store's time span bound.
//! No file of the run may hold more than half its rows, so an event is rewritten only as often as
//! its file's size doubles. A merged file spans at most 1/64 of its store's retention period
//! (`eventTime`), because retention deletes whole files: a store's disk then stays within ~1.6 %
//! of its retention.
//!
//! # How
//!
//! Files whose row groups are large (the usual case: a busy store's files hold `flush_rows`
//! events each) are concatenated row group by row group, their encoded bytes, statistics and page
//! indexes copied as they are ([`copy_row_groups`]): no decoding. Files of small row groups (a
//! quiet store writes a file every `flush_age_secs`) are decoded and written again in row groups
//! of `flush_rows` ([`rewrite`]), so that a file's metadata does not grow by a row group per
//! tiny input. Either way the events keep their order: the inputs' in `seq` order of files, each
//! file's in `eventTime` order.
//!
//! # Crash safety and readers
//!
//! The merged file is named for the whole range of its inputs, written as `*.tmp`, fsynced,
//! renamed and its directory fsynced: the rename is the commit. The inputs are then retired from
//! the listing (deleted once no query holds them), and at start a file whose range lies within
//! another's is an input whose merge committed, and is deleted. `lake dump` ([`super::scan_store`])
//! reads files from a listing taken under a shared lock on the store's [`LOCK_FILE`]; a merge
//! holds it exclusively, and is put off while a dump runs, so a dump never reads the same events
//! from an input and from its merged file.

use std::{
    fs,
    ops::Range,
    path::Path,
    sync::{Arc, OnceLock},
};

use datafusion::parquet::{
    arrow::{ArrowSchemaConverter, ArrowWriter, arrow_reader::ParquetRecordBatchReaderBuilder},
    column::writer::ColumnCloseResult,
    file::{
        metadata::{PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader},
        properties::WriterProperties,
        writer::SerializedFileWriter,
    },
    schema::types::Type,
};

use super::{Segment, parquet_error, schema};
use crate::error::LakeError;

/// The most files one merge takes.
pub const FAN_IN: usize = 16;
/// A merged file spans at most this fraction of its store's retention period.
pub const SPAN_OF_RETENTION: i64 = 64;
/// In a store's directory: shared by a dump while it reads the store's files, exclusive during a
/// merge.
pub const LOCK_FILE: &str = ".files.lock";

/// What [`plan`] needs to know of a file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// Its events.
    pub rows: u64,
    /// Its earliest `eventTime`, ms.
    pub earliest_ms: i64,
    /// Its latest `eventTime`, ms.
    pub latest_ms: i64,
    /// Of the current layout (older layouts are read as they are, never merged).
    pub current: bool,
}

impl Candidate {
    /// What a store's file is to a plan.
    pub fn of(segment: &Segment) -> Candidate {
        Candidate {
            rows: segment.rows,
            earliest_ms: segment.earliest_ms,
            latest_ms: segment.latest_ms,
            current: segment.current_layout,
        }
    }
}

/// The oldest run of files (indexes into `files`, in `seq` order) to merge into one, if any: see
/// the module's documentation.
pub fn plan(files: &[Candidate], merge_rows: u64, max_span_ms: i64) -> Option<Range<usize>> {
    let mergeable = |f: &Candidate| f.current && f.rows < merge_rows;
    for start in 0..files.len() {
        if !mergeable(&files[start]) {
            continue;
        }
        let (mut end, mut rows, mut largest) = (start, 0u64, 0u64);
        let (mut earliest, mut latest) = (i64::MAX, i64::MIN);
        while end < files.len() && end - start < FAN_IN {
            let f = &files[end];
            let (from, to) = (earliest.min(f.earliest_ms), latest.max(f.latest_ms));
            if !mergeable(f) || rows + f.rows > merge_rows || to.saturating_sub(from) > max_span_ms {
                break;
            }
            (rows, largest, earliest, latest) = (rows + f.rows, largest.max(f.rows), from, to);
            end += 1;
        }
        // A run that stopped before the newest file cannot grow any more, and is merged now; one
        // that reaches it waits for more files (new files only come after it).
        let n = end - start;
        if n >= 2 && largest * 2 <= rows && (n == FAN_IN || end < files.len()) {
            return Some(start..end);
        }
    }
    None
}

/// The Parquet schema of today's layout.
fn current_schema() -> &'static Type {
    static CURRENT: OnceLock<Type> = OnceLock::new();
    CURRENT.get_or_init(|| {
        let descriptor = ArrowSchemaConverter::new().convert(&schema()).expect("the stored-record schema converts");
        descriptor.root_schema().clone()
    })
}

/// What a file's footer says: (rows, earliest `eventTime` — `i64::MIN` when its statistics
/// cannot say —, whether it is of today's layout).
pub fn footer_facts(path: &Path) -> Result<(u64, i64, bool), LakeError> {
    use datafusion::parquet::file::statistics::Statistics;
    let metadata = ParquetMetaDataReader::new().parse_and_finish(&fs::File::open(path)?).map_err(parquet_error)?;
    let rows = metadata.file_metadata().num_rows().max(0) as u64;
    let current = metadata.file_metadata().schema() == current_schema();
    let column =
        metadata.file_metadata().schema_descr().columns().iter().position(|c| c.path().string() == "eventTime");
    let earliest = column
        .and_then(|column| {
            metadata
                .row_groups()
                .iter()
                .map(|group| match group.column(column).statistics() {
                    Some(Statistics::Int64(stats)) => stats.min_opt().copied(),
                    _ => None,
                })
                .try_fold(i64::MAX, |earliest, min| Some(earliest.min(min?)))
        })
        .unwrap_or(i64::MIN);
    Ok((rows, earliest, current))
}

/// Writes `inputs` (adjacent, in `seq` order, of today's layout) as one file at `tmp`: their row
/// groups copied when they average at least half of `group_rows`, else their events rewritten in
/// row groups of `group_rows`. Returns whether it copied.
pub fn write(inputs: &[Segment], tmp: &Path, group_rows: usize, props: WriterProperties) -> Result<bool, LakeError> {
    let metadata = inputs
        .iter()
        .map(|s| {
            let file = fs::File::open(&s.path)?;
            let metadata = ParquetMetaDataReader::new()
                .with_page_index_policy(PageIndexPolicy::Optional)
                .parse_and_finish(&file)
                .map_err(parquet_error)?;
            Ok((file, metadata))
        })
        .collect::<Result<Vec<_>, LakeError>>()?;
    let rows: u64 = inputs.iter().map(|s| s.rows).sum();
    let groups: usize = metadata.iter().map(|(_, m)| m.num_row_groups()).sum();
    let copy = rows >= (group_rows as u64 / 2) * groups as u64;
    let out = fs::File::create(tmp)?;
    let out = if copy { copy_row_groups(&metadata, out)? } else { rewrite(inputs, out, props)? };
    out.sync_all()?;
    Ok(copy)
}

/// Concatenates the files' row groups as they are encoded.
fn copy_row_groups(inputs: &[(fs::File, ParquetMetaData)], out: fs::File) -> Result<fs::File, LakeError> {
    let first = &inputs[0].1;
    // The inputs' Arrow schema (`ARROW:schema`) and writer, so the result reads as they did.
    let props = WriterProperties::builder()
        .set_key_value_metadata(first.file_metadata().key_value_metadata().cloned())
        .set_created_by(first.file_metadata().created_by().unwrap_or("klarity-audit").to_owned())
        .build();
    let root = first.file_metadata().schema_descr().root_schema_ptr();
    let mut writer = SerializedFileWriter::new(out, root, Arc::new(props)).map_err(parquet_error)?;
    for (file, metadata) in inputs {
        for (g, group) in metadata.row_groups().iter().enumerate() {
            let mut group_writer = writer.next_row_group().map_err(parquet_error)?;
            for (c, column) in group.columns().iter().enumerate() {
                let close = ColumnCloseResult {
                    bytes_written: column.compressed_size() as u64,
                    rows_written: group.num_rows() as u64,
                    metadata: column.clone(),
                    bloom_filter: None,
                    column_index: metadata.column_index().and_then(|i| i.get(g)?.get(c)).cloned(),
                    offset_index: metadata.offset_index().and_then(|i| i.get(g)?.get(c)).cloned(),
                };
                group_writer.append_column(file, close).map_err(parquet_error)?;
            }
            group_writer.close().map_err(parquet_error)?;
        }
    }
    writer.into_inner().map_err(parquet_error)
}

/// Decodes the files' events and writes them again, in row groups as `props` says.
fn rewrite(inputs: &[Segment], out: fs::File, props: WriterProperties) -> Result<fs::File, LakeError> {
    let schema = schema();
    let mut writer = ArrowWriter::try_new(out, schema.clone(), Some(props)).map_err(parquet_error)?;
    for input in inputs {
        let reader = ParquetRecordBatchReaderBuilder::try_new(fs::File::open(&input.path)?)
            .map_err(parquet_error)?
            .with_batch_size(super::WRITE_ROWS)
            .build()
            .map_err(parquet_error)?;
        for batch in reader {
            let batch = batch.map_err(super::arrow_error)?;
            // The same layout, so the same columns: only the schema's metadata may differ.
            let batch = batch.with_schema(schema.clone()).map_err(super::arrow_error)?;
            writer.write(&batch).map_err(parquet_error)?;
        }
    }
    writer.into_inner().map_err(parquet_error)
}

/// A store directory's lock file, opened (created when missing).
pub fn lock_file(dir: &Path) -> std::io::Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(dir.join(LOCK_FILE))
}

/// The files of a listing (`(first seq, last seq, what)`) that lie within no other's range, in
/// `seq` order, and those that do: the inputs of a merge that committed, whose events are read
/// from the merged file.
pub fn outermost<T>(mut files: Vec<(i64, i64, T)>) -> (Vec<(i64, i64, T)>, Vec<T>) {
    files.sort_by_key(|(first, last, _)| (*first, std::cmp::Reverse(*last)));
    let (mut kept, mut covered) = (Vec::new(), Vec::new());
    let mut reach = i64::MIN;
    for (first, last, what) in files {
        if last <= reach {
            covered.push(what);
        } else {
            reach = last;
            kept.push((first, last, what));
        }
    }
    (kept, covered)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn file(rows: u64, earliest_ms: i64, latest_ms: i64) -> Candidate {
        Candidate { rows, earliest_ms, latest_ms, current: true }
    }

    fn files(rows: &[u64]) -> Vec<Candidate> {
        rows.iter().enumerate().map(|(i, &r)| file(r, i as i64, i as i64)).collect()
    }

    #[test]
    fn a_busy_stores_files_merge_once_as_many_fit() {
        // 80k-event files: 13 make 1,040,000 events, and the 14th would pass the bound.
        let plan_of = |n| plan(&files(&vec![80_000; n]), 1 << 20, i64::MAX);
        assert_eq!(plan_of(13), None, "the run may still grow by a file");
        assert_eq!(plan_of(14), Some(0..13));
        assert_eq!(plan(&files(&[65_536; 20]), 1 << 20, i64::MAX), Some(0..16));
        // A merged file is not merged again; the next run starts after it.
        let mut after = files(&[1 << 20]);
        after.extend(files(&[65_536; 16]));
        assert_eq!(plan(&after, 1 << 20, i64::MAX), Some(1..17));
    }

    #[test]
    fn a_quiet_stores_files_merge_by_sixteen_and_never_a_large_one_with_small_ones() {
        assert_eq!(plan(&files(&[10; 15]), 1 << 20, i64::MAX), None);
        assert_eq!(plan(&files(&[10; 16]), 1 << 20, i64::MAX), Some(0..16));
        // 160 beside fifteen 10s would rewrite the 160 for little: the run starts after it.
        let mut rows = vec![160];
        rows.extend([10; 16]);
        assert_eq!(plan(&files(&rows), 1 << 20, i64::MAX), Some(1..17));
        let mut rows = vec![160];
        rows.extend([10; 15]);
        assert_eq!(plan(&files(&rows), 1 << 20, i64::MAX), None);
    }

    #[test]
    fn a_merged_file_spans_no_more_than_the_bound_and_older_layouts_stay() {
        // Each file a day apart; a bound of 2.5 days takes three, once a fourth is there.
        let day = 86_400_000;
        let daily: Vec<Candidate> = (0..4).map(|i| file(10, i * day, i * day + 1)).collect();
        assert_eq!(plan(&daily[..3], 1 << 20, 5 * day / 2), None);
        assert_eq!(plan(&daily, 1 << 20, 5 * day / 2), Some(0..3));
        let mut old = files(&[10; 17]);
        old[0].current = false;
        assert_eq!(plan(&old, 1 << 20, i64::MAX), Some(1..17));
        old[8].current = false;
        assert_eq!(plan(&old, 1 << 20, i64::MAX), Some(1..8), "no run passes an older file");
    }

    #[test]
    fn a_listing_keeps_a_merged_file_and_not_its_inputs() {
        let p = |s: &str| PathBuf::from(s);
        let (kept, covered) =
            outermost(vec![(1, 10, p("a")), (11, 20, p("b")), (1, 20, p("ab")), (21, 30, p("c")), (31, 40, p("d"))]);
        assert_eq!(kept, vec![(1, 20, p("ab")), (21, 30, p("c")), (31, 40, p("d"))]);
        assert_eq!(covered, vec![p("a"), p("b")]);
    }
}
