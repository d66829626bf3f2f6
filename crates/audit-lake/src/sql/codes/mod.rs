//! Counting rows grouped by string columns from Parquet's dictionary codes.
//!
//! `SELECT eventData.eventName, count(*) … GROUP BY 1` is the question a store is asked most. The
//! files hold such columns dictionary-encoded: a few dozen distinct values per column chunk, and a
//! small integer per row. DataFusion decodes every row's string and hashes it into its groups;
//! counting the integers, and mapping each dictionary's values to groups once, does the same work
//! several times faster (BENCHMARKS.md, session 22).
//!
//! - [`CountCodes`], a physical optimizer rule, finds a partial `count(*)` grouped by one to four
//!   string leaves right over a Parquet scan that has no filter and no limit, and puts
//!   [`CountCodesExec`] in its place. Over a union (a store's files beside its in-memory batches or
//!   its retention-filtered files) only the parts that are such scans change; the others keep their
//!   partial aggregation.
//! - [`CountCodesExec`] reads only those leaves, as Arrow dictionaries, and emits the partial
//!   aggregation's own rows (the group's values, then its count for each `count`), so DataFusion's
//!   final aggregation, ordering and everything above it are unchanged.
//! - **Memory.** Its groups are reserved from the query's share of the pool. When a reservation is
//!   refused it emits the groups it has and starts afresh: a partial aggregation may emit a group
//!   more than once, the final one adds them up.
//! - **One row group at a time.** A batch across two column chunks holds codes of two dictionaries,
//!   which the reader turns back into strings and encodes again, hashing every row. Merged files
//!   keep their inputs' row groups (65,536 rows, then the rest), so reading across them did that
//!   for nearly every batch: 100M events counted slower than DataFusion's own plan (session 23).
//!   Each chunk's dictionary is mapped to groups once, however many batches share it, and each
//!   file's footer comes from the file metadata cache DataFusion's scans share.
//! - **Every column chunk is read right.** One the writer did not dictionary-encode (it falls back
//!   past 1 MiB of dictionary: `eventID`, say) arrives as a dictionary per batch; a leaf a file
//!   lacks reads as NULL, as DataFusion reads it. Parameter columns are not taken: a file written
//!   before its key was in the catalog computes them from JSON text (`older`).

use std::{collections::HashMap, fmt, fs::File, path::PathBuf, sync::Arc};

use tokio::sync::mpsc::Sender;

use datafusion::{
    arrow::{
        array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch, StringArray},
        buffer::NullBuffer,
        datatypes::{DataType, Field, Fields, Int32Type, Schema, SchemaRef},
    },
    common::{
        DataFusionError, Result,
        config::ConfigOptions,
        tree_node::{Transformed, TreeNode, TreeNodeRecursion},
    },
    datasource::{
        physical_plan::{FileScanConfig, FileSource, ParquetSource, parquet::metadata::CachedParquetMetaData},
        source::DataSourceExec,
    },
    execution::{
        SendableRecordBatchStream, TaskContext,
        cache::cache_manager::{CachedFileMetadataEntry, FileMetadataCache},
        memory_pool::{MemoryConsumer, MemoryReservation},
    },
    object_store::{ObjectMeta, local::LocalFileSystem},
    parquet::{
        arrow::{
            ProjectionMask,
            arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder},
        },
        file::metadata::{ParquetMetaData, ParquetMetaDataReader},
    },
    physical_expr::{
        EquivalenceProperties, PhysicalExpr, ScalarFunctionExpr,
        expressions::{Column, Literal},
    },
    physical_optimizer::PhysicalOptimizerRule,
    physical_plan::{
        DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
        aggregates::{AggregateExec, AggregateMode},
        execution_plan::{Boundedness, EmissionType},
        metrics::{Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet, Time},
        stream::RecordBatchReceiverStream,
        union::UnionExec,
    },
};

use crate::columnar::params;

/// The most columns a count is grouped by for the rule to take it.
const MAX_KEYS: usize = 4;
/// Rows read from a file at a time.
const READ_ROWS: usize = 65_536;
/// Rows of groups emitted at a time.
const EMIT_ROWS: usize = 8_192;
/// The memory a group's value takes beyond its bytes (its map entry, its name, its count).
const VALUE_OVERHEAD: usize = 64;
/// The memory a combination of values takes in a count grouped by several columns.
const GROUP_OVERHEAD: usize = 48;
/// The name of the metric of rows read ([`super::count`] reports it as events scanned).
pub(super) const ROWS_SCANNED: &str = "rows_scanned";

/// Puts [`CountCodesExec`] where a partial `count(*)` is grouped by string leaves of a plain
/// Parquet scan (see the module).
#[derive(Debug)]
pub(super) struct CountCodes;

impl PhysicalOptimizerRule for CountCodes {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(aggregate) = node.downcast_ref::<AggregateExec>() else { return Ok(Transformed::no(node)) };
            let Some(columns) = counted_groups(aggregate) else { return Ok(Transformed::no(node)) };
            let input = aggregate.input();
            if let Some(exec) = CountCodesExec::over(input, &columns, aggregate.schema()) {
                return Ok(Transformed::yes(Arc::new(exec) as Arc<dyn ExecutionPlan>));
            }
            let Some(union) = input.downcast_ref::<UnionExec>() else { return Ok(Transformed::no(node)) };
            let mut changed = false;
            let mut parts = Vec::new();
            for child in union.children() {
                if let Some(exec) = CountCodesExec::over(child, &columns, aggregate.schema()) {
                    changed = true;
                    parts.push(Arc::new(exec) as Arc<dyn ExecutionPlan>);
                } else {
                    let partial = AggregateExec::try_new(
                        AggregateMode::Partial,
                        aggregate.group_expr().clone(),
                        aggregate.aggr_expr().to_vec(),
                        aggregate.filter_expr().to_vec(),
                        child.clone(),
                        child.schema(),
                    )?;
                    parts.push(Arc::new(partial));
                }
            }
            if !changed {
                return Ok(Transformed::no(node));
            }
            Ok(Transformed::yes(UnionExec::try_new(parts)?))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "klarity_count_codes"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// The input columns a partial aggregation groups by, when it only counts rows (`count(*)`,
/// `count(1)`: a count of a literal that is not NULL) with no filter, grouping set or limit.
fn counted_groups(aggregate: &AggregateExec) -> Option<Vec<usize>> {
    let counts_rows = |a: &Arc<datafusion::physical_expr::aggregate::AggregateFunctionExpr>| {
        a.fun().name() == "count"
            && !a.is_distinct()
            && a.order_bys().is_empty()
            && matches!(a.expressions().as_slice(), [e] if e.downcast_ref::<Literal>().is_some_and(|l| !l.value().is_null()))
    };
    let group = aggregate.group_expr();
    let plain = matches!(aggregate.mode(), AggregateMode::Partial)
        && aggregate.limit_options().is_none()
        && group.is_single()
        && (1..=MAX_KEYS).contains(&group.expr().len())
        && !aggregate.aggr_expr().is_empty()
        && aggregate.aggr_expr().iter().all(counts_rows)
        && aggregate.filter_expr().iter().all(Option::is_none);
    if !plain {
        return None;
    }
    group.expr().iter().map(|(e, _)| e.downcast_ref::<Column>().map(Column::index)).collect()
}

/// A leaf of the files: its path from the root (`["eventData", "eventName"]`).
type Leaf = Vec<String>;

/// Counts rows grouped by string leaves of Parquet files, from their dictionary codes; its rows
/// are those of the partial aggregation it stands for (see the module).
#[derive(Debug)]
pub(super) struct CountCodesExec {
    /// Each partition's files: local paths, and what the listing said of them.
    partitions: Vec<Vec<(PathBuf, ObjectMeta)>>,
    leaves: Vec<Leaf>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl CountCodesExec {
    /// The operator for a partial count grouped by `columns` of `scan`'s output, when `scan` reads
    /// local Parquet files with no filter and no limit and those columns are string leaves of
    /// them; it emits rows of `schema` (the partial aggregation's).
    fn over(scan: &Arc<dyn ExecutionPlan>, columns: &[usize], schema: SchemaRef) -> Option<CountCodesExec> {
        let config = scan.downcast_ref::<DataSourceExec>()?.data_source().downcast_ref::<FileScanConfig>()?;
        let source = config.file_source().downcast_ref::<ParquetSource>()?;
        if config.limit.is_some()
            || !config.table_partition_cols().is_empty()
            || config.object_store_url.as_str() != "file:///"
            || source.filter().is_some()
        {
            return None;
        }
        let projection: Vec<_> = source.projection()?.iter().collect();
        let leaves = columns
            .iter()
            .map(|&c| leaf_of(&projection.get(c)?.expr, config.file_schema()))
            .collect::<Option<Vec<Leaf>>>()?;
        // The partial aggregation's rows: the group values as strings, then one count per `count`.
        let fields = schema.fields();
        let strings = fields.iter().take(leaves.len()).all(|f| f.data_type() == &DataType::Utf8);
        let counts = fields.iter().skip(leaves.len()).all(|f| f.data_type() == &DataType::Int64);
        if !strings || !counts || fields.len() == leaves.len() {
            return None;
        }
        let partitions = spread(config, config.file_groups.len().max(1))?;
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(partitions.len()),
            EmissionType::Final,
            Boundedness::Bounded,
        );
        Some(CountCodesExec {
            partitions,
            leaves,
            schema,
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }
}

/// The leaf `expr` reads from files of `schema`: a string column, or a string field of struct
/// columns (`get_field(eventData, 'userIdentity', 'principalId')`); not a parameter column.
fn leaf_of(expr: &Arc<dyn PhysicalExpr>, schema: &Schema) -> Option<Leaf> {
    let (column, names) = if let Some(column) = expr.downcast_ref::<Column>() {
        (column, Vec::new())
    } else {
        let function = expr.downcast_ref::<ScalarFunctionExpr>()?;
        let (first, rest) = function.args().split_first()?;
        if function.fun().name() != "get_field" {
            return None;
        }
        let names = rest
            .iter()
            .map(|a| a.downcast_ref::<Literal>()?.value().try_as_str().flatten().map(str::to_owned))
            .collect::<Option<Vec<String>>>()?;
        (first.downcast_ref::<Column>()?, names)
    };
    let field = schema.fields().get(column.index()).filter(|f| f.name() == column.name())?;
    let mut data_type = field.data_type();
    let mut leaf = vec![field.name().clone()];
    for name in names {
        let DataType::Struct(children) = data_type else { return None };
        let child = children.iter().find(|c| *c.name() == name)?;
        data_type = child.data_type();
        leaf.push(name);
    }
    let parameter = leaf.iter().any(|n| params::is_column(n));
    (data_type == &DataType::Utf8 && !parameter).then_some(leaf)
}

/// The scan's files (each once, though a large one may be split in ranges), as local paths, in
/// `partitions` parts of about equal size.
fn spread(config: &FileScanConfig, partitions: usize) -> Option<Vec<Vec<(PathBuf, ObjectMeta)>>> {
    let local = LocalFileSystem::new();
    let mut files: Vec<&ObjectMeta> =
        config.file_groups.iter().flat_map(|g| g.iter()).map(|f| &f.object_meta).collect();
    files.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.location.cmp(&b.location)));
    files.dedup_by(|a, b| a.location == b.location);
    let mut parts = vec![(0u64, Vec::new()); partitions.min(files.len()).max(1)];
    for meta in files {
        let path = local.path_to_filesystem(&meta.location).ok()?;
        let least = parts.iter_mut().min_by_key(|(bytes, _)| *bytes).expect("at least one part");
        least.0 += meta.size;
        least.1.push((path, meta.clone()));
    }
    Some(parts.into_iter().map(|(_, files)| files).collect())
}

impl DisplayAs for CountCodesExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let leaves: Vec<String> = self.leaves.iter().map(|l| l.join(".")).collect();
        let files: usize = self.partitions.iter().map(Vec::len).sum();
        write!(f, "CountCodesExec: by=[{}], files={files}, partitions={}", leaves.join(", "), self.partitions.len())
    }
}

impl ExecutionPlan for CountCodesExec {
    fn name(&self) -> &str {
        "CountCodesExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        if children.is_empty() {
            Ok(self)
        } else {
            Err(DataFusionError::Internal("CountCodesExec has no children".into()))
        }
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let files = self
            .partitions
            .get(partition)
            .ok_or_else(|| DataFusionError::Internal(format!("CountCodesExec has no partition {partition}")))?
            .clone();
        let reservation = MemoryConsumer::new(format!("CountCodesExec[{partition}]"))
            .with_can_spill(true)
            .register(context.memory_pool());
        let metrics = Metrics {
            rows_scanned: MetricBuilder::new(&self.metrics).counter(ROWS_SCANNED, partition),
            bytes_scanned: MetricBuilder::new(&self.metrics).counter("bytes_scanned", partition),
            output_rows: MetricBuilder::new(&self.metrics).output_rows(partition),
            elapsed_compute: MetricBuilder::new(&self.metrics).elapsed_compute(partition),
        };
        let mut builder = RecordBatchReceiverStream::builder(self.schema.clone(), 2);
        let tx = builder.tx();
        let mut count = Counting::new(self.leaves.clone(), self.schema.clone(), reservation, metrics);
        let cache = context.runtime_env().cache_manager.get_file_metadata_cache();
        builder.spawn_blocking(move || {
            let time = count.metrics.elapsed_compute.clone();
            let _timer = time.timer();
            for (path, meta) in files {
                if !count.file(&path, Some((&meta, cache.as_ref())), &tx)? {
                    return Ok(()); // the query is gone
                }
            }
            count.emit(&tx)?;
            Ok(())
        });
        Ok(builder.build())
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// The operator's metrics for one partition.
struct Metrics {
    rows_scanned: Count,
    bytes_scanned: Count,
    output_rows: Count,
    elapsed_compute: Time,
}

/// One key column's values, numbered in the order first seen; 0 is NULL.
#[derive(Default)]
struct Values {
    ids: HashMap<Box<str>, u32>,
    names: Vec<Option<Box<str>>>,
    /// The dictionary last mapped, and the number of each of its values.
    mapped: Option<(ArrayRef, Vec<u32>)>,
    /// How many dictionaries were mapped (one per column chunk read).
    maps: usize,
}

impl Values {
    fn clear(&mut self) {
        self.ids.clear();
        self.names.clear();
        self.names.push(None);
        self.mapped = None;
    }

    /// The number of `value`, numbering it if it is new (and adding the memory it takes to `grown`).
    fn id(&mut self, value: &str, grown: &mut usize) -> u32 {
        if let Some(&id) = self.ids.get(value) {
            return id;
        }
        let id = u32::try_from(self.names.len()).expect("fewer groups than memory holds");
        self.ids.insert(value.into(), id);
        self.names.push(Some(value.into()));
        *grown += 2 * value.len() + VALUE_OVERHEAD;
        id
    }

    /// The number of each value of a dictionary (mapped again only when the dictionary changes:
    /// a column chunk's batches share theirs).
    fn map(&mut self, values: &ArrayRef, grown: &mut usize) -> Result<&[u32]> {
        // Each batch's array is new; a column chunk's share its buffers.
        if !self.mapped.as_ref().is_some_and(|(v, _)| v.to_data().ptr_eq(&values.to_data())) {
            let strings = values.as_string_opt::<i32>().ok_or_else(|| unexpected(values.data_type()))?;
            let map = (0..strings.len())
                .map(|i| if strings.is_null(i) { 0 } else { self.id(strings.value(i), grown) })
                .collect();
            self.mapped = Some((values.clone(), map));
            self.maps += 1;
        }
        Ok(&self.mapped.as_ref().expect("mapped above").1)
    }

    /// Each row's value number, for a column read as a dictionary or as strings; `nulls` are the
    /// rows whose value or a struct above it is NULL.
    fn number(
        &mut self,
        column: &ArrayRef,
        nulls: Option<&NullBuffer>,
        out: &mut Vec<u32>,
        grown: &mut usize,
    ) -> Result<()> {
        out.clear();
        if let Some(dictionary) = column.as_dictionary_opt::<Int32Type>() {
            let map = self.map(dictionary.values(), grown)?;
            out.extend(dictionary.keys().values().iter().map(|&k| map.get(k as usize).copied().unwrap_or(0)));
        } else {
            let strings = column.as_string_opt::<i32>().ok_or_else(|| unexpected(column.data_type()))?;
            for i in 0..strings.len() {
                let id = if strings.is_null(i) { 0 } else { self.id(strings.value(i), grown) };
                out.push(id);
            }
        }
        if let Some(nulls) = nulls {
            for i in nulls.iter().enumerate().filter(|(_, valid)| !valid).map(|(i, _)| i) {
                out[i] = 0;
            }
        }
        Ok(())
    }

    /// Adds the rows of a column to `counts` (by value number), for a count grouped by this
    /// column alone: a dictionary's codes are counted first, and each code's count added to its
    /// value's once per batch.
    fn tally(
        &mut self,
        column: &ArrayRef,
        nulls: Option<&NullBuffer>,
        counts: &mut Vec<u64>,
        codes: &mut Vec<u64>,
        grown: &mut usize,
    ) -> Result<()> {
        let Some(dictionary) = column.as_dictionary_opt::<Int32Type>() else {
            let mut numbers = Vec::with_capacity(column.len());
            self.number(column, nulls, &mut numbers, grown)?;
            counts.resize(self.names.len(), 0);
            numbers.iter().for_each(|&id| counts[id as usize] += 1);
            return Ok(());
        };
        codes.clear();
        codes.resize(dictionary.values().len(), 0);
        let keys = dictionary.keys().values();
        let out_of_range = || DataFusionError::Internal("CountCodesExec read a code past its dictionary".into());
        match nulls {
            None => {
                for &k in keys.iter() {
                    *codes.get_mut(k as usize).ok_or_else(out_of_range)? += 1;
                }
            }
            Some(nulls) => {
                for (&k, valid) in keys.iter().zip(nulls.iter()) {
                    if valid {
                        *codes.get_mut(k as usize).ok_or_else(out_of_range)? += 1;
                    }
                }
            }
        }
        self.map(dictionary.values(), grown)?;
        counts.resize(self.names.len(), 0);
        let (_, map) = self.mapped.as_ref().expect("mapped above");
        for (&id, &n) in map.iter().zip(codes.iter()) {
            counts[id as usize] += n;
        }
        counts[0] += nulls.map_or(0, |n| n.null_count() as u64);
        Ok(())
    }
}

fn unexpected(data_type: &DataType) -> DataFusionError {
    DataFusionError::Internal(format!("CountCodesExec read a {data_type} column where it expected strings"))
}

/// The count of each group.
enum Counts {
    /// Grouped by one column: by value number.
    One(Vec<u64>),
    /// Grouped by several: by their value numbers.
    Many(HashMap<Box<[u32]>, u64>),
}

/// One partition's counting: its groups, the memory reserved for them, its metrics.
struct Counting {
    leaves: Vec<Leaf>,
    schema: SchemaRef,
    values: Vec<Values>,
    counts: Counts,
    reservation: MemoryReservation,
    metrics: Metrics,
    /// Each key column's value numbers of the batch at hand, and one row's of them.
    numbers: Vec<Vec<u32>>,
    row: Vec<u32>,
    /// The count of each code of the dictionary at hand (grouped by one column).
    codes: Vec<u64>,
}

impl Counting {
    fn new(leaves: Vec<Leaf>, schema: SchemaRef, reservation: MemoryReservation, metrics: Metrics) -> Counting {
        let keys = leaves.len();
        let mut counting = Counting {
            values: (0..keys).map(|_| Values::default()).collect(),
            counts: if keys == 1 { Counts::One(Vec::new()) } else { Counts::Many(HashMap::new()) },
            numbers: vec![Vec::new(); keys],
            row: vec![0; keys],
            codes: Vec::new(),
            leaves,
            schema,
            reservation,
            metrics,
        };
        counting.clear();
        counting
    }

    fn clear(&mut self) {
        self.values.iter_mut().for_each(Values::clear);
        match &mut self.counts {
            Counts::One(counts) => counts.clear(),
            Counts::Many(counts) => counts.clear(),
        }
        self.reservation.free();
    }

    /// Counts the rows of the file at `path`, emitting the groups through `out` when memory runs
    /// short. Its footer is taken from, or put in, the file metadata `cache` DataFusion's own
    /// scans share, when given with what the listing said of the file. `Ok(false)`: the query is
    /// gone.
    fn file(
        &mut self,
        path: &std::path::Path,
        cache: Option<(&ObjectMeta, &FileMetadataCache)>,
        out: &Sender<Result<RecordBatch>>,
    ) -> Result<bool> {
        let file =
            File::open(path).map_err(|e| DataFusionError::External(format!("{}: {e}", path.display()).into()))?;
        let footer = match cache.and_then(|(meta, cache)| cached_footer(meta, cache)) {
            Some(footer) => footer,
            None => {
                let footer = Arc::new(ParquetMetaDataReader::new().parse_and_finish(&file)?);
                if let Some((meta, cache)) = cache {
                    let entry = CachedFileMetadataEntry::new(
                        meta.clone(),
                        Arc::new(CachedParquetMetaData::new(footer.clone())),
                    );
                    cache.put(&meta.location, entry);
                }
                footer
            }
        };
        let metadata = ArrowReaderMetadata::try_new(footer, ArrowReaderOptions::new())?;
        let descriptor = metadata.parquet_schema();
        let found: Vec<bool> = self
            .leaves
            .iter()
            .map(|leaf| descriptor.columns().iter().any(|c| c.path().parts() == leaf.as_slice()))
            .collect();
        let present: Vec<usize> = self
            .leaves
            .iter()
            .filter_map(|leaf| descriptor.columns().iter().position(|c| c.path().parts() == leaf.as_slice()))
            .collect();
        let groups = metadata.metadata().row_groups();
        let bytes: i64 = groups.iter().flat_map(|g| present.iter().map(move |&c| g.column(c).compressed_size())).sum();
        self.metrics.bytes_scanned.add(usize::try_from(bytes).unwrap_or(0));
        if present.is_empty() {
            // Every key reads as NULL in this file: one group of all its rows.
            let rows = usize::try_from(groups.iter().map(|g| g.num_rows()).sum::<i64>()).unwrap_or(0);
            self.metrics.rows_scanned.add(rows);
            self.numbers.iter_mut().for_each(|n| {
                n.clear();
                n.resize(rows, 0);
            });
            return self.add(rows, 0, out);
        }
        let options = ArrowReaderOptions::new().with_schema(Arc::new(as_dictionaries(metadata.schema(), &self.leaves)));
        let metadata = ArrowReaderMetadata::try_new(metadata.metadata().clone(), options)?;
        let mask = ProjectionMask::leaves(metadata.parquet_schema(), present);
        // One row group at a time. A batch across two column chunks holds codes of two
        // dictionaries, which the reader turns back into strings and encodes again, hashing every
        // row: merged files, whose row groups are their inputs' (65,536 rows, then the rest),
        // would be read that way nearly batch by batch.
        for group in 0..groups.len() {
            let file =
                file.try_clone().map_err(|e| DataFusionError::External(format!("{}: {e}", path.display()).into()))?;
            let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(file, metadata.clone())
                .with_projection(mask.clone())
                .with_row_groups(vec![group])
                .with_batch_size(READ_ROWS)
                .build()?;
            for batch in reader {
                if out.is_closed() {
                    return Ok(false);
                }
                if !self.batch(&batch?, &found, out)? {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// Counts the rows of `batch`, in which the keys `found` are present. `Ok(false)`: the query
    /// is gone.
    fn batch(&mut self, batch: &RecordBatch, found: &[bool], out: &Sender<Result<RecordBatch>>) -> Result<bool> {
        let rows = batch.num_rows();
        self.metrics.rows_scanned.add(rows);
        let mut grown = 0;
        if let Counts::One(counts) = &mut self.counts {
            // Present, as a file lacking the only key has no leaf to read.
            let (column, nulls) = column_at(batch, &self.leaves[0])?;
            self.values[0].tally(&column, nulls.as_ref(), counts, &mut self.codes, &mut grown)?;
            return self.reserve(grown, out);
        }
        for ((leaf, found), (values, numbers)) in
            self.leaves.iter().zip(found).zip(self.values.iter_mut().zip(self.numbers.iter_mut()))
        {
            if *found {
                let (column, nulls) = column_at(batch, leaf)?;
                values.number(&column, nulls.as_ref(), numbers, &mut grown)?;
            } else {
                numbers.clear();
                numbers.resize(rows, 0);
            }
        }
        self.add(rows, grown, out)
    }

    /// Adds the `rows` whose value numbers are in `numbers`, whose new values took `grown` bytes;
    /// past this query's share of memory, emits every group through `out`. `Ok(false)`: the query
    /// is gone.
    fn add(&mut self, rows: usize, mut grown: usize, out: &Sender<Result<RecordBatch>>) -> Result<bool> {
        match &mut self.counts {
            Counts::One(counts) => {
                counts.resize(self.values[0].names.len(), 0);
                for &id in &self.numbers[0][..rows] {
                    counts[id as usize] += 1;
                }
            }
            Counts::Many(counts) => {
                for r in 0..rows {
                    for (k, numbers) in self.numbers.iter().enumerate() {
                        self.row[k] = numbers[r];
                    }
                    match counts.get_mut(self.row.as_slice()) {
                        Some(n) => *n += 1,
                        None => {
                            counts.insert(self.row.clone().into_boxed_slice(), 1);
                            grown += GROUP_OVERHEAD + 4 * self.row.len();
                        }
                    }
                }
            }
        }
        self.reserve(grown, out)
    }

    /// Reserves `grown` more bytes for the groups; past this query's share, emits every group
    /// through `out` (they go to the final aggregation now) and gives the memory back.
    /// `Ok(false)`: the query is gone.
    fn reserve(&mut self, grown: usize, out: &Sender<Result<RecordBatch>>) -> Result<bool> {
        if self.reservation.try_grow(grown).is_ok() {
            return Ok(true);
        }
        self.reservation.grow(grown);
        self.emit(out)
    }

    /// Sends every group counted so far, in batches, and forgets them. `Ok(false)`: the query no
    /// longer wants them.
    fn emit(&mut self, out: &Sender<Result<RecordBatch>>) -> Result<bool> {
        let groups: Vec<(Vec<u32>, u64)> = match &mut self.counts {
            Counts::One(counts) => counts
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(id, &n)| (vec![u32::try_from(id).expect("ids are u32")], n))
                .collect(),
            Counts::Many(counts) => counts.drain().map(|(ids, n)| (ids.into_vec(), n)).collect(),
        };
        for chunk in groups.chunks(EMIT_ROWS) {
            let mut columns: Vec<ArrayRef> = self
                .values
                .iter()
                .enumerate()
                .map(|(k, values)| {
                    let strings: StringArray =
                        chunk.iter().map(|(ids, _)| values.names[ids[k] as usize].as_deref()).collect();
                    Arc::new(strings) as ArrayRef
                })
                .collect();
            let counts: ArrayRef = Arc::new(Int64Array::from_iter_values(
                chunk.iter().map(|(_, n)| i64::try_from(*n).unwrap_or(i64::MAX)),
            ));
            columns.extend(std::iter::repeat_n(counts, self.schema.fields().len() - self.values.len()));
            let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
            self.metrics.output_rows.add(batch.num_rows());
            if out.blocking_send(Ok(batch)).is_err() {
                return Ok(false);
            }
        }
        self.clear();
        Ok(true)
    }
}

/// The column at `leaf` of a batch read with only the keys' leaves, and the rows where it or a
/// struct above it is NULL (a dictionary's NULL values are not among them: they map to NULL).
fn column_at(batch: &RecordBatch, leaf: &Leaf) -> Result<(ArrayRef, Option<NullBuffer>)> {
    let missing = || DataFusionError::Internal(format!("CountCodesExec read no column {}", leaf.join(".")));
    let nulls_of = |c: &ArrayRef| c.nulls().filter(|n| n.null_count() > 0).cloned();
    let (first, rest) = leaf.split_first().ok_or_else(missing)?;
    let mut column = batch.column_by_name(first).ok_or_else(missing)?.clone();
    let mut nulls = nulls_of(&column);
    for name in rest {
        let child = column.as_struct_opt().and_then(|s| s.column_by_name(name)).ok_or_else(missing)?.clone();
        nulls = match (nulls, nulls_of(&child)) {
            (Some(a), Some(b)) => NullBuffer::union(Some(&a), Some(&b)),
            (a, b) => a.or(b),
        };
        column = child;
    }
    Ok((column, nulls))
}

/// The footer of the file `meta` from `cache`, while the file is as it was when cached.
fn cached_footer(meta: &ObjectMeta, cache: &FileMetadataCache) -> Option<Arc<ParquetMetaData>> {
    let entry = cache.get(&meta.location).filter(|entry| entry.is_valid_for(meta))?;
    let footer = entry.file_metadata.as_any().downcast_ref::<CachedParquetMetaData>()?;
    Some(footer.parquet_metadata().clone())
}

/// `schema` with each of `leaves` read as a dictionary of strings.
fn as_dictionaries(schema: &Schema, leaves: &[Leaf]) -> Schema {
    fn retyped(field: &Field, leaves: &[&[String]]) -> Field {
        let here: Vec<&[String]> = leaves.iter().filter(|l| l.first() == Some(field.name())).map(|l| &l[1..]).collect();
        if here.is_empty() {
            return field.clone();
        }
        match field.data_type() {
            DataType::Utf8 if here.iter().any(|rest| rest.is_empty()) => {
                field.clone().with_data_type(DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)))
            }
            DataType::Struct(children) => {
                let children: Fields = children.iter().map(|c| Arc::new(retyped(c, &here))).collect();
                field.clone().with_data_type(DataType::Struct(children))
            }
            _ => field.clone(),
        }
    }
    let leaves: Vec<&[String]> = leaves.iter().map(Vec::as_slice).collect();
    let fields: Vec<Field> = schema.fields().iter().map(|f| retyped(f, &leaves)).collect();
    Schema::new_with_metadata(fields, schema.metadata().clone())
}

#[cfg(test)]
mod tests;
