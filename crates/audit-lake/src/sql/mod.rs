//! SQL over event data stores, through Apache DataFusion, in CloudTrail Lake's dialect.
//!
//! - [`dialect`]: the front end (bare store ids, one SELECT only, case-insensitive names, map
//!   subscripts, Trino's output names).
//! - `functions`: Trino functions over the JSON map columns (`element_at`, `json_extract_scalar`).
//! - [`Engine`]: plans a query over the stores it names — each store a view of its Parquet files and
//!   in-memory batches (`columnar`), limited to its retention period — and runs it, rendering rows
//!   as CloudTrail returns them (every value a string).
//! - [`queries`]: the asynchronous queries of the API: status, statistics, results, cancellation,
//!   the limit of concurrent queries.
//! - `codes`: grouped counts (`SELECT eventData.eventName, count(*) … GROUP BY 1`) counted from the
//!   files' dictionary codes instead of DataFusion's hashing of every row's string.
//!
//! Queries run on their own Tokio runtime ([`QueryConfig::threads`] workers), so a heavy query
//! competes with ingestion for the CPU only as the OS shares it, never by holding the lake's
//! request workers.

mod bounds;
mod codes;
mod dates;
pub mod dialect;
mod functions;
mod older;
pub mod queries;
mod spans;
mod strings;
#[cfg(test)]
mod tests;

use std::{
    path::Path,
    sync::{Arc, atomic::AtomicUsize},
};

use datafusion::{
    arrow::{
        array::{Array, ArrayRef, AsArray, RecordBatch},
        datatypes::DataType,
        util::display::{ArrayFormatter, FormatOptions},
    },
    common::{ScalarValue, TableReference},
    dataframe::DataFrame,
    datasource::MemTable,
    error::DataFusionError,
    execution::{
        SessionStateBuilder, SessionStateDefaults,
        disk_manager::{DiskManagerBuilder, DiskManagerMode},
        memory_pool::{FairSpillPool, MemoryPool},
        runtime_env::{RuntimeEnv, RuntimeEnvBuilder},
    },
    logical_expr::{LogicalPlan, ScalarUDF, ident, lit},
    physical_plan::{ExecutionPlan, execute_stream},
    prelude::{ParquetReadOptions, SessionConfig, SessionContext},
    sql::parser::Statement as DfStatement,
};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use self::bounds::ValueLimits;
use crate::columnar::{JSON_FIELDS, Snapshot, schema};

/// The directory under the lake's data directory where queries spill.
pub const SPILL_DIR: &str = "query-spill";

/// How queries run, and what one query may take (see `bounds`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueryConfig {
    /// Queries of one account queued or running at once (CloudTrail allows 10).
    pub max_concurrent: usize,
    /// A query running longer is stopped and marked `TIMED_OUT` (CloudTrail: one hour; locally
    /// five minutes, so that a runaway query gives its share of the machine back soon).
    pub timeout_secs: u64,
    /// The most rows a query may return; a larger result fails with a message asking for a
    /// `LIMIT` or a narrower `WHERE`. Results are held in memory until they expire.
    pub max_result_rows: usize,
    /// The most bytes a query's rendered result may take; a larger one fails like too many rows.
    pub max_result_bytes: u64,
    /// Memory all running queries may hold together for their operators (sorts, aggregations,
    /// joins), shared among them: each may hold this divided by the queries running. Beyond its
    /// share an operator that can spill writes to disk, and one that cannot fails its query.
    pub memory_limit_bytes: u64,
    /// Disk the running queries may fill with spilled data together (in the lake's data
    /// directory, `query-spill/`); beyond it the query that spills fails.
    pub spill_limit_bytes: u64,
    /// The largest string or binary value a function may take or make (`repeat`, `lpad`, `||`,
    /// ...): larger fails the query. Stored values are at most 1 MiB.
    pub max_value_bytes: usize,
    /// The most bytes a function call may take or make over one batch of rows.
    pub max_batch_bytes: usize,
    /// How many times `WITH RECURSIVE` may run its recursive term (Trino's
    /// `max_recursion_depth`); one more fails the query.
    pub max_recursion_depth: usize,
    /// How long finished queries and their results are kept, in hours (CloudTrail: 7 days).
    pub keep_hours: u64,
    /// Bytes of finished queries' results held in memory at most, all queries together. Beyond
    /// it the oldest results are dropped (their queries stay, with their statistics), and
    /// `GetQueryResults` on such a query asks for it to be run again.
    pub max_kept_result_bytes: u64,
    /// Worker threads of the query runtime.
    pub threads: usize,
    /// The niceness of those threads (Linux; 0 to 19): above 0, ingestion keeps the CPU when both
    /// want it, and queries take what is left. 0 shares the CPU evenly.
    pub nice: i32,
    /// How long after ingesting an event queries answer for it, in seconds (to the second of its
    /// `ingestionTime`): CloudTrail Lake on AWS answers only minutes later, and a publisher that
    /// looks its events up can be tested against that. 0 (the default): at once.
    pub visibility_delay_secs: u64,
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            max_concurrent: 10,
            timeout_secs: 300,
            max_result_rows: 1_000_000,
            max_result_bytes: 256 << 20,
            memory_limit_bytes: 2 << 30,
            spill_limit_bytes: 8 << 30,
            max_value_bytes: 1 << 20,
            max_batch_bytes: 256 << 20,
            max_recursion_depth: 100,
            keep_hours: 168,
            max_kept_result_bytes: 1 << 30,
            threads: 2,
            nice: 15,
            visibility_delay_secs: 0,
        }
    }
}

/// A store a query reads, with its retention.
#[derive(Debug, Clone)]
pub struct StoreView {
    /// The store id (the table name, lower-case).
    pub id: String,
    /// What of it to read.
    pub snapshot: Snapshot,
    /// Events with an `eventTime` before this (milliseconds since the epoch) are out of retention.
    pub retain_from_ms: i64,
}

/// Counters of a query, as `QueryStatistics` reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events that matched the query's filters.
    pub events_matched: u64,
    /// Events read.
    pub events_scanned: u64,
    /// Bytes read: of Parquet files, and of the in-memory batches.
    pub bytes_scanned: u64,
}

/// A planned query, ready to run.
pub struct Planned {
    ctx: SessionContext,
    plan: LogicalPlan,
    memory_bytes: u64,
    /// The files the plan reads, held until the query is done (retention deletes a dropped file
    /// only once nothing holds it).
    _files: Vec<crate::columnar::Segment>,
}

/// Rows of a result, every value a string (NULL is the empty string), in select-list order.
#[derive(Debug, Clone, Default)]
pub struct Output {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows.
    pub rows: Vec<Vec<String>>,
    /// Counters.
    pub stats: Stats,
    /// The memory the rows take (their strings and the vectors holding them).
    pub bytes: u64,
}

/// The memory `rows` take: their strings and the vectors holding them.
fn rows_bytes(rows: &[Vec<String>]) -> u64 {
    let cell = std::mem::size_of::<String>();
    let row = std::mem::size_of::<Vec<String>>();
    rows.iter().map(|r| (row + r.iter().map(|c| cell + c.len()).sum::<usize>()) as u64).sum()
}

/// Why a query failed while it ran.
#[derive(Debug)]
pub enum RunError {
    /// The result is larger than [`QueryConfig::max_result_rows`].
    TooManyRows(usize),
    /// The rendered result is larger than [`QueryConfig::max_result_bytes`].
    TooManyBytes(u64),
    /// DataFusion failed.
    Engine(String),
}

/// Plans and runs queries within the bounds of [`QueryConfig`]; shares the file metadata cache,
/// the memory pool and the spill directory across queries.
pub struct Engine {
    env: Arc<RuntimeEnv>,
    /// The memory pool of all queries; each query takes its share through a `bounds::QueryPool`.
    pool: Arc<dyn MemoryPool>,
    running: Arc<AtomicUsize>,
    memory_limit: usize,
    /// Every scalar function a query may call, guarded (`bounds::Guarded`).
    functions: Vec<Arc<ScalarUDF>>,
    limits: ValueLimits,
    max_recursion_depth: usize,
    /// Whether grouped counts over Parquet scans count dictionary codes (`codes`); off only to
    /// compare results with DataFusion's own aggregation.
    count_codes: bool,
    /// Events ingested less than this long ago are not answered for ([`QueryConfig::visibility_delay_secs`]).
    visibility_delay_secs: u64,
}

impl Engine {
    /// An engine that spills into `spill_dir` (emptied first: what a previous run left there is
    /// of no use).
    pub fn new(config: &QueryConfig, spill_dir: &Path) -> std::io::Result<Engine> {
        match std::fs::remove_dir_all(spill_dir) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
        std::fs::create_dir_all(spill_dir)?;
        let memory_limit = usize::try_from(config.memory_limit_bytes).unwrap_or(usize::MAX);
        let pool: Arc<dyn MemoryPool> = Arc::new(FairSpillPool::new(memory_limit));
        let disk = DiskManagerBuilder::default()
            .with_mode(DiskManagerMode::Directories(vec![spill_dir.to_owned()]))
            .with_max_temp_directory_size(config.spill_limit_bytes);
        let env = RuntimeEnvBuilder::new()
            .with_memory_pool(pool.clone())
            .with_disk_manager_builder(disk)
            .build_arc()
            .map_err(std::io::Error::other)?;
        let limits = ValueLimits { max_value_bytes: config.max_value_bytes, max_batch_bytes: config.max_batch_bytes };
        let functions = SessionStateDefaults::default_scalar_functions()
            .into_iter()
            .chain(functions::all().into_iter().map(Arc::new))
            .chain([Arc::new(bounds::ConcatOp::udf())])
            .map(|f| bounds::Guarded::wrap(f, limits))
            .collect();
        Ok(Engine {
            env,
            pool,
            running: Arc::default(),
            memory_limit,
            functions,
            limits,
            max_recursion_depth: config.max_recursion_depth,
            count_codes: true,
            visibility_delay_secs: config.visibility_delay_secs,
        })
    }

    /// This engine with grouped counts done by DataFusion's own aggregation only.
    #[cfg(test)]
    fn without_count_codes(mut self) -> Engine {
        self.count_codes = false;
        self
    }

    /// Queries planned or running now (each holds a share of the memory pool).
    pub fn running(&self) -> usize {
        self.running.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn context(&self) -> SessionContext {
        let mut config = SessionConfig::new().with_target_partitions(2).with_information_schema(false);
        config.options_mut().execution.parquet.schema_force_view_types = false;
        // This query's share of the pool of all queries, beside the shared caches and spill space.
        let env = RuntimeEnv {
            memory_pool: Arc::new(bounds::QueryPool::new(self.pool.clone(), self.running.clone(), self.memory_limit)),
            ..(*self.env).clone()
        };
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(Arc::new(env))
            .with_default_features()
            .with_scalar_functions(self.functions.clone())
            .with_table_functions(Default::default())
            .with_analyzer_rule(Arc::new(bounds::GuardRule(self.limits)))
            .with_optimizer_rule(Arc::new(bounds::GuardRule(self.limits)))
            .with_physical_optimizer_rule(Arc::new(bounds::RecursionBound(self.max_recursion_depth)));
        let state =
            if self.count_codes { state.with_physical_optimizer_rule(Arc::new(codes::CountCodes)) } else { state };
        let state = state.build();
        SessionContext::new_with_state(state)
    }

    /// Plans `statement` over `stores` (every table it names must be among them). An error is
    /// the planner's message: a column that does not exist, a type mismatch, ...
    pub async fn plan(&self, statement: DfStatement, stores: Vec<StoreView>) -> Result<Planned, String> {
        let ctx = self.context();
        let mut memory_bytes = 0;
        let ids: Vec<String> = stores.iter().map(|s| s.id.clone()).collect();
        let files: Vec<crate::columnar::Segment> = stores.iter().flat_map(|s| s.snapshot.files.clone()).collect();
        // Messages name columns without the store qualifier DataFusion puts before each.
        let message =
            |e: &DataFusionError| ids.iter().fold(message(e), |text, id| text.replace(&format!("\"{id}\"."), ""));
        // The last second of ingestion queries answer for, when they answer late.
        let visible = (self.visibility_delay_secs > 0).then(|| {
            let now = audit_event::EventTime::now().unix_seconds();
            audit_event::EventTime::from_unix(now.saturating_sub(self.visibility_delay_secs as i64), 0).to_string()
        });
        for store in stores {
            memory_bytes += store.snapshot.batches.iter().map(used_bytes).sum::<u64>();
            let mut view = store_frame(&ctx, &store).await.map_err(|e| message(&e))?;
            if let Some(last) = &visible {
                // `ingestionTime` is written as `EventTime` writes a whole second: text order is
                // time order.
                let ingested = datafusion::functions::core::expr_fn::get_field(ident("metadata"), "ingestionTime");
                view = view.filter(ingested.lt_eq(lit(last.as_str()))).map_err(|e| message(&e))?;
            }
            ctx.register_table(TableReference::bare(store.id.clone()), view.into_view()).map_err(|e| message(&e))?;
        }
        let plan = ctx.state().statement_to_plan(statement).await.map_err(|e| message(&e))?;
        datafusion::execution::context::SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false)
            .verify_plan(&plan)
            .map_err(|e| message(&e))?;
        // Type errors surface in the optimizer: report them now, as CloudTrail does at StartQuery.
        ctx.state().optimize(&plan).map_err(|e| message(&e))?;
        Ok(Planned { ctx, plan, memory_bytes, _files: files })
    }

    /// Runs a planned query to the end, rendering its rows; at most `max_rows` of them taking at
    /// most `max_bytes`.
    pub async fn run(&self, planned: Planned, max_rows: usize, max_bytes: u64) -> Result<Output, RunError> {
        let engine = |e: DataFusionError| RunError::Engine(message(&e));
        // `_files` lives to the end of the run: the files stay while the query reads them.
        let Planned { ctx, plan, memory_bytes, _files } = planned;
        let frame = ctx.execute_logical_plan(plan).await.map_err(engine)?;
        let physical = frame.create_physical_plan().await.map_err(engine)?;
        let columns: Vec<String> = physical.schema().fields().iter().map(|f| f.name().clone()).collect();
        let mut stream = execute_stream(physical.clone(), ctx.task_ctx()).map_err(engine)?;
        let mut rows = Vec::new();
        let mut bytes = 0;
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(engine)?;
            if rows.len() + batch.num_rows() > max_rows {
                return Err(RunError::TooManyRows(max_rows));
            }
            let from = rows.len();
            render(&batch, &mut rows, max_bytes.saturating_sub(bytes)).map_err(|e| match e {
                Render::TooLarge => RunError::TooManyBytes(max_bytes),
                Render::Arrow(e) => RunError::Engine(e.to_string()),
            })?;
            bytes += rows_bytes(&rows[from..]);
        }
        drop(stream);
        let mut stats = Stats::default();
        count(&physical, false, &mut stats);
        tracing::debug!(
            plan = %datafusion::physical_plan::display::DisplayableExecutionPlan::with_metrics(physical.as_ref()).indent(true),
            "A query ran."
        );

        if stats.events_scanned > 0 {
            stats.bytes_scanned += memory_bytes;
        }
        Ok(Output { columns, rows, stats, bytes })
    }
}

/// A store as a table: its Parquet files and in-memory batches, within retention. Only the parts
/// that may hold events past retention filter each row by it (on a store whose events are all
/// retained, that filter cost a scan as much as the rest of it); files wholly past it are left out.
/// A file written by an older lake, without some of today's parameter columns, has them read from
/// its JSON text (`older::OlderFiles`).
async fn store_frame(ctx: &SessionContext, store: &StoreView) -> Result<DataFrame, DataFusionError> {
    use datafusion::datasource::{file_format::options::ReadOptions, listing::ListingTableUrl};
    let schema = schema();
    let from = store.retain_from_ms;
    let retention = || ident("eventTime").gt_eq(lit(ScalarValue::TimestampMillisecond(Some(from), None)));
    let (kept, straddling): (Vec<_>, Vec<_>) =
        store.snapshot.files.iter().filter(|f| f.latest_ms >= from).partition(|f| f.earliest_ms >= from);
    let older = Arc::new(older::OlderFiles::new(ctx)?);
    let mut parts = Vec::new();
    for (files, filtered) in [(kept, false), (straddling, true)] {
        if files.is_empty() {
            continue;
        }
        let files = files
            .iter()
            .map(|f| {
                let path = std::path::absolute(&f.path).unwrap_or(f.path.clone());
                Ok((ListingTableUrl::parse(path.to_string_lossy())?, f.earliest_ms, f.latest_ms))
            })
            .collect::<Result<Vec<_>, DataFusionError>>()?;
        let options = ParquetReadOptions::default()
            .file_extension(".parquet")
            .to_listing_options(&ctx.copied_config(), ctx.copied_table_options());
        let statistics = ctx.runtime_env().cache_manager.get_file_statistic_cache();
        let table = spans::SpannedFiles::new(files, schema.clone(), options, older.clone(), statistics);
        let frame = ctx.read_table(Arc::new(table))?;
        parts.push(if filtered { frame.filter(retention())? } else { frame });
    }
    if !store.snapshot.batches.is_empty() || parts.is_empty() {
        let memory = MemTable::try_new(schema.clone(), vec![store.snapshot.batches.clone()])?;
        let frame = ctx.read_table(Arc::new(memory))?;
        let all_kept = store.snapshot.batches.iter().all(|b| earliest_of(b).is_none_or(|t| t >= from));
        parts.push(if all_kept { frame } else { frame.filter(retention())? });
    }
    let mut frame = parts.remove(0);
    for part in parts {
        frame = frame.union(part)?;
    }
    Ok(frame)
}

/// The earliest `eventTime` of a batch (`None` when it has no rows).
fn earliest_of(batch: &RecordBatch) -> Option<i64> {
    use datafusion::arrow::{compute::min, datatypes::TimestampMillisecondType};
    let column = batch.column_by_name("eventTime")?;
    min(column.as_primitive_opt::<TimestampMillisecondType>()?)
}

/// The bytes a batch's values take (not the capacity its buffers reserved).
fn used_bytes(batch: &RecordBatch) -> u64 {
    batch.columns().iter().map(|c| c.to_data().get_slice_memory_size().unwrap_or(0) as u64).sum()
}

/// DataFusion's message without its internal prefixes; a bound of the lake's that was reached
/// says which, and what to do.
fn message(err: &DataFusionError) -> String {
    const NARROW: &str = "Narrow the query: bound eventTime, filter before joining, aggregate, or add a LIMIT.";
    let full = err.strip_backtrace();
    // The disk manager's refusal arrives wrapped in Arrow's I/O error, naming its own setting.
    if let Some(at) = full.find("allowable limit of ") {
        let limit = full[at + "allowable limit of ".len()..].split(". ").next().unwrap_or("").trim_end_matches('.');
        return format!(
            "The query spilled more to disk than the lake allows running queries together \
             (query.spill_limit_bytes, {limit}). {NARROW}"
        );
    }
    if let DataFusionError::ResourcesExhausted(reason) = err.find_root() {
        let advice = if reason.contains("share of query memory") { NARROW } else { "" };
        return format!("The query reached a bound of the lake: {reason}. {advice}").trim_end().to_owned();
    }
    // The innermost cause says what is wrong; the outer ones name optimizer passes.
    let text = full.rsplit("caused by\n").next().unwrap_or(&full);
    let text = text
        .trim_start_matches("Error during planning: ")
        .trim_start_matches("Schema error: ")
        .trim_start_matches("SQL error: ")
        .trim_start_matches("This feature is not implemented: ");
    text.replace("datafusion.public.", "")
}

/// Adds the events scanned and matched by the plan's leaves (and the filters right above them).
fn count(plan: &Arc<dyn ExecutionPlan>, under_filter: bool, stats: &mut Stats) {
    let metrics = plan.metrics();
    let output_rows = metrics.as_ref().and_then(|m| m.output_rows());
    let rows = output_rows.unwrap_or(0) as u64;
    if plan.children().is_empty() {
        // An in-memory scan keeps no metrics; it reads every row it holds. A count of codes
        // outputs groups, and says what it read.
        let scanned = metrics.as_ref().and_then(|m| m.sum_by_name(codes::ROWS_SCANNED)).map(|v| v.as_usize() as u64);
        let rows = match (scanned, output_rows) {
            (Some(scanned), _) => scanned,
            (None, Some(_)) => rows,
            (None, None) => memory_rows(plan),
        };
        stats.events_scanned += rows;
        stats.bytes_scanned +=
            metrics.as_ref().and_then(|m| m.sum_by_name("bytes_scanned")).map_or(0, |v| v.as_usize() as u64);
        if !under_filter {
            stats.events_matched += rows;
        }
        return;
    }
    let filter = plan.name() == "FilterExec" && !under_filter;
    if filter {
        stats.events_matched += rows;
    }
    for child in plan.children() {
        count(child, under_filter || filter, stats);
    }
}

/// The rows an in-memory scan holds.
fn memory_rows(plan: &Arc<dyn ExecutionPlan>) -> u64 {
    use datafusion::datasource::{memory::MemorySourceConfig, source::DataSourceExec};
    let Some(exec) = plan.downcast_ref::<DataSourceExec>() else { return 0 };
    let Some(memory) = exec.data_source().downcast_ref::<MemorySourceConfig>() else { return 0 };
    memory.partitions().iter().flatten().map(|b| b.num_rows() as u64).sum()
}

const TIMESTAMP_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.3f";

/// Why a batch was not rendered.
enum Render {
    /// Its rows would take more than the bytes left.
    TooLarge,
    Arrow(datafusion::arrow::error::ArrowError),
}

/// Appends a batch's rows, rendered, to `rows`, unless they take more than `left` bytes.
fn render(batch: &RecordBatch, rows: &mut Vec<Vec<String>>, left: u64) -> Result<(), Render> {
    // Rendered text is at most a few times the values' bytes; a batch that cannot fit is refused
    // before a row of it is rendered.
    if used_bytes(batch) > left.saturating_mul(4) {
        return Err(Render::TooLarge);
    }
    let options = FormatOptions::new().with_null("").with_timestamp_format(Some(TIMESTAMP_FORMAT));
    let columns: Vec<Renderer<'_>> =
        batch.columns().iter().map(|c| Renderer::new(c, &options)).collect::<Result<_, _>>().map_err(Render::Arrow)?;
    let mut taken = 0u64;
    for row in 0..batch.num_rows() {
        let mut out = Vec::with_capacity(columns.len());
        for column in &columns {
            let mut cell = String::new();
            column.write(row, &mut cell, false);
            taken += cell.len() as u64;
            out.push(cell);
        }
        if taken > left {
            return Err(Render::TooLarge);
        }
        rows.push(out);
    }
    Ok(())
}

/// Renders a column's values: leaves as Arrow displays them, structs as JSON objects (a map
/// column's JSON text embedded as is; `eventData` without its parameter columns), lists of
/// structs (`array_agg(eventData)`) as JSON arrays of those objects.
enum Renderer<'a> {
    Leaf(ArrayFormatter<'a>, &'a ArrayRef),
    Struct(&'a ArrayRef, Vec<(String, bool, Renderer<'a>)>),
    List(&'a ArrayRef, Box<Renderer<'a>>),
}

impl<'a> Renderer<'a> {
    fn new(
        array: &'a ArrayRef,
        options: &FormatOptions<'a>,
    ) -> Result<Renderer<'a>, datafusion::arrow::error::ArrowError> {
        match array.data_type() {
            DataType::Struct(fields) => {
                let children = array.as_struct();
                let mut parts = Vec::new();
                for (field, child) in fields.iter().zip(children.columns()) {
                    if crate::columnar::params::is_column(field.name()) {
                        continue; // a copy of a requestParameters key, for queries only
                    }
                    let json = JSON_FIELDS.contains(&field.name().as_str());
                    parts.push((field.name().clone(), json, Renderer::new(child, options)?));
                }
                Ok(Renderer::Struct(array, parts))
            }
            DataType::List(item) if matches!(item.data_type(), DataType::Struct(_)) => {
                Ok(Renderer::List(array, Box::new(Renderer::new(array.as_list::<i32>().values(), options)?)))
            }
            DataType::LargeList(item) if matches!(item.data_type(), DataType::Struct(_)) => {
                Ok(Renderer::List(array, Box::new(Renderer::new(array.as_list::<i64>().values(), options)?)))
            }
            _ => Ok(Renderer::Leaf(ArrayFormatter::try_new(array.as_ref(), options)?, array)),
        }
    }

    fn is_null(&self, row: usize) -> bool {
        match self {
            Renderer::Leaf(_, array) | Renderer::Struct(array, _) | Renderer::List(array, _) => array.is_null(row),
        }
    }

    /// Writes value `row`; inside a struct (`nested`), strings are JSON strings and NULL is `null`.
    fn write(&self, row: usize, out: &mut String, nested: bool) {
        use std::fmt::Write;
        match self {
            Renderer::Leaf(format, array) => {
                if nested {
                    if array.is_null(row) {
                        out.push_str("null");
                    } else if matches!(array.data_type(), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
                        || matches!(array.data_type(), DataType::Timestamp(..))
                    {
                        let text = format.value(row).to_string();
                        out.push_str(&serde_json::to_string(&text).expect("a string serializes"));
                    } else {
                        let _ = write!(out, "{}", format.value(row));
                    }
                } else {
                    let _ = write!(out, "{}", format.value(row));
                }
            }
            Renderer::Struct(array, parts) => {
                if array.is_null(row) {
                    if nested {
                        out.push_str("null");
                    }
                    return;
                }
                out.push('{');
                let mut first = true;
                for (name, json, part) in parts {
                    if part.is_null(row) {
                        continue; // as the event left it out
                    }
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    out.push_str(&serde_json::to_string(name).expect("a string serializes"));
                    out.push(':');
                    match (json, part) {
                        (true, Renderer::Leaf(_, leaf)) if leaf.data_type() == &DataType::Utf8 => {
                            out.push_str(leaf.as_string::<i32>().value(row));
                        }
                        _ => part.write(row, out, true),
                    }
                }
                out.push('}');
            }
            Renderer::List(array, items) => {
                if array.is_null(row) {
                    if nested {
                        out.push_str("null");
                    }
                    return;
                }
                let items_of_row = match array.data_type() {
                    DataType::LargeList(_) => {
                        let offsets = array.as_list::<i64>().value_offsets();
                        offsets[row] as usize..offsets[row + 1] as usize
                    }
                    _ => {
                        let offsets = array.as_list::<i32>().value_offsets();
                        offsets[row] as usize..offsets[row + 1] as usize
                    }
                };
                out.push('[');
                for (n, item) in items_of_row.enumerate() {
                    if n > 0 {
                        out.push(',');
                    }
                    items.write(item, out, true);
                }
                out.push(']');
            }
        }
    }
}
