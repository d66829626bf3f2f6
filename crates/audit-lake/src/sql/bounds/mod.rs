//! What one query may take from the process, so that no statement can abort the lake (an
//! allocation that fails aborts a Rust process) or starve the other accounts' queries.
//!
//! - **Memory.** Every query runs under its own [`QueryPool`], a share of one pool for all
//!   queries ([`QueryConfig::memory_limit_bytes`](super::QueryConfig)): the total divided by the
//!   queries running, checked whenever an operator asks for more. Sorts, aggregations and joins
//!   that can spill do so ([`FairSpillPool`] shares the rest fairly among them) into the lake's
//!   spill directory, up to [`QueryConfig::spill_limit_bytes`](super::QueryConfig); past either
//!   bound the query fails with a message, and only it.
//! - **Values.** The memory pool does not see what a scalar function allocates, so each function
//!   call is checked before it runs ([`Guarded`]): no string or binary value it takes may exceed
//!   `max_value_bytes`, its inputs over the batch may not exceed `max_batch_bytes`, and a function
//!   whose output can outgrow its inputs by an argument (`repeat`, `lpad`, `rpad`, `replace`,
//!   `regexp_replace`) has that output bounded the same way first. `a || b` is the function
//!   `concat_op` (the dialect rewrites it), so it is checked too. A chain of doublings therefore
//!   stops at the first call whose input is too large, whatever the nesting.
//! - **Recursion.** `WITH RECURSIVE` runs its recursive term at most
//!   [`QueryConfig::max_recursion_depth`](super::QueryConfig) times ([`RecursionBound`]).
//!
//! Time is bounded by the query timeout, rows by `max_result_rows` and the rendered result by
//! `max_result_bytes` (in `sql/mod.rs`).

use std::{
    any::Any,
    fmt,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use datafusion::{
    arrow::{
        array::{Array, ArrayRef, AsArray},
        compute::cast,
        datatypes::{DataType, FieldRef},
    },
    common::{
        DataFusionError, ExprSchema, Result, ScalarValue,
        config::ConfigOptions,
        tree_node::{Transformed, TreeNode, TreeNodeRecursion},
    },
    execution::{
        SendableRecordBatchStream, TaskContext,
        memory_pool::{MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation},
    },
    logical_expr::{
        ColumnarValue, Documentation, Expr, ExpressionPlacement, LogicalPlan, ReturnFieldArgs, ScalarFunctionArgs,
        ScalarUDF, ScalarUDFImpl, Signature, StructFieldMapping, Volatility,
        expr::ScalarFunction,
        interval_arithmetic::Interval,
        preimage::PreimageResult,
        simplify::{ExprSimplifyResult, SimplifyContext},
        sort_properties::{ExprProperties, SortProperties},
    },
    optimizer::{AnalyzerRule, OptimizerConfig, OptimizerRule},
    physical_expr::PhysicalExpr,
    physical_optimizer::PhysicalOptimizerRule,
    physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, recursive_query::RecursiveQueryExec},
};

/// The bounds on values that [`Guarded`] functions check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct ValueLimits {
    /// The largest string or binary value a function may take or make.
    pub(super) max_value_bytes: usize,
    /// The most bytes a function call may take, or make, over one batch of rows.
    pub(super) max_batch_bytes: usize,
}

/// How a function's output can outgrow its inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Growth {
    /// By a constant factor at most (most functions; `concat` by the sum of its inputs).
    Inputs,
    /// `repeat(s, n)`: `|s| × n`.
    Repeat,
    /// `lpad(s, n [, fill])`, `rpad`: `n` characters of up to 4 bytes.
    Pad,
    /// `replace(s, from, to)`: each occurrence of `from` becomes `to`.
    Replace,
    /// `regexp_replace(s, pattern, replacement [, flags])`: each match becomes the replacement,
    /// whose group references add at most the matched text once each.
    RegexpReplace,
}

impl Growth {
    fn of(name: &str) -> Growth {
        match name {
            "repeat" => Growth::Repeat,
            "lpad" | "rpad" => Growth::Pad,
            "replace" => Growth::Replace,
            "regexp_replace" => Growth::RegexpReplace,
            _ => Growth::Inputs,
        }
    }
}

/// Functions left as they are: they build or take apart structs without copying values, and the
/// planner recognises them by type (nested projection into Parquet scans needs `get_field`).
const STRUCTURAL: [&str; 3] = ["get_field", "named_struct", "struct"];

/// A scalar function whose calls are checked against [`ValueLimits`] before they run; everything
/// else is the wrapped function's.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct Guarded {
    inner: Arc<ScalarUDF>,
    growth: Growth,
    limits: ValueLimits,
}

impl Guarded {
    /// `function`, guarded (a structural function, or one already guarded, as it is).
    pub(super) fn wrap(function: Arc<ScalarUDF>, limits: ValueLimits) -> Arc<ScalarUDF> {
        if STRUCTURAL.contains(&function.name()) || is_guarded(&function) {
            return function;
        }
        let growth = Growth::of(function.name());
        Arc::new(ScalarUDF::new_from_impl(Guarded { inner: function, growth, limits }))
    }

    /// Refuses the call when an input value or the batch's inputs are too large, or when the
    /// output would be.
    fn check(&self, args: &ScalarFunctionArgs) -> Result<()> {
        // Named as the user wrote it.
        let name = match self.inner.name() {
            ConcatOp::NAME => "||",
            name => name,
        };
        let rows = args.number_rows;
        let batch = args.args.iter().any(|a| matches!(a, ColumnarValue::Array(_)));
        let mut total = 0usize;
        for arg in &args.args {
            let (largest, bytes) = sizes(arg, if batch { rows } else { 1 });
            if largest > self.limits.max_value_bytes {
                return Err(self.value_too_large(name, "was given a value of", largest));
            }
            total = total.saturating_add(bytes);
        }
        if total > self.limits.max_batch_bytes {
            return Err(self.batch_too_large(name, "read", total));
        }
        if self.growth == Growth::Inputs {
            return Ok(());
        }
        let n = if batch { rows } else { 1 };
        let length = |i: usize| args.args.get(i).map(|a| lengths(a, n)).unwrap_or_else(|| vec![Some(0); n]);
        let (first, second, third) = (length(0), length(1), length(2));
        let counts = match self.growth {
            Growth::Repeat | Growth::Pad => integers(&args.args[1], n)?,
            _ => Vec::new(),
        };
        let mut made = 0usize;
        for row in 0..n {
            let s = first[row].unwrap_or(0);
            let bound = match self.growth {
                Growth::Inputs => 0,
                Growth::Repeat => s.saturating_mul(counts[row].unwrap_or(0).max(0) as usize),
                Growth::Pad => (counts[row].unwrap_or(0).max(0) as usize).saturating_mul(4),
                Growth::Replace => {
                    let (from, to) = (second[row].unwrap_or(0), third[row].unwrap_or(0));
                    s.saturating_add((s / from.max(1)).saturating_add(1).saturating_mul(to))
                }
                Growth::RegexpReplace => {
                    let replacement = third[row].unwrap_or(0);
                    s.saturating_add(1).saturating_mul(replacement.saturating_mul(2).saturating_add(1))
                }
            };
            if bound > self.limits.max_value_bytes {
                return Err(self.value_too_large(name, "would make a value of up to", bound));
            }
            made = made.saturating_add(bound);
        }
        if made > self.limits.max_batch_bytes {
            return Err(self.batch_too_large(name, "make", made));
        }
        Ok(())
    }

    /// `name` took (`was given a value of`) or would make (`would make a value of up to`) `bytes`.
    fn value_too_large(&self, name: &str, what: &str, bytes: usize) -> DataFusionError {
        DataFusionError::ResourcesExhausted(format!(
            "{name} {what} {bytes} bytes; a function's values may have at most {} bytes (query.max_value_bytes)",
            self.limits.max_value_bytes
        ))
    }

    /// `name` would `read` or `make` `bytes` over one batch.
    fn batch_too_large(&self, name: &str, verb: &str, bytes: usize) -> DataFusionError {
        DataFusionError::ResourcesExhausted(format!(
            "{name} would {verb} {bytes} bytes at once; a function call may {verb} at most {} bytes over a batch of \
             rows (query.max_batch_bytes)",
            self.limits.max_batch_bytes
        ))
    }
}

fn is_guarded(function: &ScalarUDF) -> bool {
    let inner: &dyn Any = function.inner().as_ref();
    inner.is::<Guarded>()
}

/// The largest value of a string or binary argument, and the bytes the argument holds over `rows`
/// (a scalar counts once per row it stands for).
fn sizes(value: &ColumnarValue, rows: usize) -> (usize, usize) {
    match value {
        ColumnarValue::Scalar(scalar) => {
            let len = scalar_len(scalar).unwrap_or(0);
            (len, len.saturating_mul(rows))
        }
        ColumnarValue::Array(array) => (largest_value(array), array.to_data().get_slice_memory_size().unwrap_or(0)),
    }
}

/// Each row's byte length of a string or binary argument (`None` for NULL); zeros for others.
fn lengths(value: &ColumnarValue, rows: usize) -> Vec<Option<usize>> {
    match value {
        ColumnarValue::Scalar(scalar) => vec![scalar_len(scalar); rows],
        ColumnarValue::Array(array) => array_lengths(array).unwrap_or_else(|| vec![Some(0); array.len()]),
    }
}

fn scalar_len(scalar: &ScalarValue) -> Option<usize> {
    match scalar {
        ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v) => v.as_ref().map(String::len),
        ScalarValue::Binary(v) | ScalarValue::LargeBinary(v) | ScalarValue::BinaryView(v) => v.as_ref().map(Vec::len),
        _ => Some(0),
    }
}

/// The longest value of a string or binary array, read from its offsets or views (0 for other
/// types); nothing is allocated, so every call of every function can afford it.
fn largest_value(array: &ArrayRef) -> usize {
    fn by_offsets<O: Copy + Into<i64>>(offsets: &[O]) -> usize {
        offsets.windows(2).map(|w| (w[1].into() - w[0].into()) as usize).max().unwrap_or(0)
    }
    let array = array.as_ref();
    match array.data_type() {
        DataType::Utf8 => by_offsets(array.as_string::<i32>().value_offsets()),
        DataType::LargeUtf8 => by_offsets(array.as_string::<i64>().value_offsets()),
        DataType::Binary => by_offsets(array.as_binary::<i32>().value_offsets()),
        DataType::LargeBinary => by_offsets(array.as_binary::<i64>().value_offsets()),
        DataType::Utf8View => array.as_string_view().views().iter().map(|v| *v as u32 as usize).max().unwrap_or(0),
        DataType::BinaryView => array.as_binary_view().views().iter().map(|v| *v as u32 as usize).max().unwrap_or(0),
        _ => 0,
    }
}

fn array_lengths(array: &ArrayRef) -> Option<Vec<Option<usize>>> {
    fn collect<'a, T: AsRef<[u8]> + ?Sized + 'a>(values: impl Iterator<Item = Option<&'a T>>) -> Vec<Option<usize>> {
        values.map(|v| v.map(|v| v.as_ref().len())).collect()
    }
    let array = array.as_ref();
    Some(match array.data_type() {
        DataType::Utf8 => collect(array.as_string::<i32>().iter().map(|v| v.map(str::as_bytes))),
        DataType::LargeUtf8 => collect(array.as_string::<i64>().iter().map(|v| v.map(str::as_bytes))),
        DataType::Utf8View => collect(array.as_string_view().iter().map(|v| v.map(str::as_bytes))),
        DataType::Binary => collect(array.as_binary::<i32>().iter()),
        DataType::LargeBinary => collect(array.as_binary::<i64>().iter()),
        DataType::BinaryView => collect(array.as_binary_view().iter()),
        _ => return None,
    })
}

/// Each row's value of an integer argument.
fn integers(value: &ColumnarValue, rows: usize) -> Result<Vec<Option<i64>>> {
    let array = value.to_array(if matches!(value, ColumnarValue::Scalar(_)) { 1 } else { rows })?;
    let array = cast(&array, &DataType::Int64)?;
    let values: Vec<Option<i64>> = array.as_primitive::<datafusion::arrow::datatypes::Int64Type>().iter().collect();
    Ok(if values.len() == 1 && rows > 1 { vec![values[0]; rows] } else { values })
}

#[warn(clippy::missing_trait_methods)]
impl ScalarUDFImpl for Guarded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn display_name(&self, args: &[Expr]) -> Result<String> {
        #[expect(deprecated)]
        self.inner.inner().display_name(args)
    }

    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        self.inner.inner().schema_name(args)
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.inner().return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn is_nullable(&self, args: &[Expr], schema: &dyn ExprSchema) -> bool {
        #[expect(deprecated)]
        self.inner.inner().is_nullable(args, schema)
    }

    fn is_strict(&self) -> bool {
        self.inner.inner().is_strict()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        self.check(&args)?;
        self.inner.invoke_with_args(args)
    }

    fn with_updated_config(&self, config: &ConfigOptions) -> Option<ScalarUDF> {
        let updated = self.inner.inner().with_updated_config(config)?;
        Some(ScalarUDF::new_from_impl(Guarded { inner: Arc::new(updated), growth: self.growth, limits: self.limits }))
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        // A simplification may build calls of the plain function; they are guarded again by
        // [`GuardRule`], which runs after the optimizer's other rules.
        self.inner.simplify(args, info)
    }

    fn preimage(&self, args: &[Expr], lit_expr: &Expr, info: &SimplifyContext) -> Result<PreimageResult> {
        self.inner.inner().preimage(args, lit_expr, info)
    }

    fn conditional_arguments<'a>(&self, args: &'a [Expr]) -> Option<(Vec<&'a Expr>, Vec<&'a Expr>)> {
        self.inner.inner().conditional_arguments(args)
    }

    fn short_circuits(&self) -> bool {
        self.inner.inner().short_circuits()
    }

    fn evaluate_bounds(&self, input: &[&Interval]) -> Result<Interval> {
        self.inner.inner().evaluate_bounds(input)
    }

    fn propagate_constraints(&self, interval: &Interval, inputs: &[&Interval]) -> Result<Option<Vec<Interval>>> {
        self.inner.inner().propagate_constraints(interval, inputs)
    }

    fn struct_field_mapping(&self, literal_args: &[Option<ScalarValue>]) -> Option<StructFieldMapping> {
        self.inner.inner().struct_field_mapping(literal_args)
    }

    fn output_ordering(&self, inputs: &[ExprProperties]) -> Result<SortProperties> {
        self.inner.inner().output_ordering(inputs)
    }

    fn preserves_lex_ordering(&self, inputs: &[ExprProperties]) -> Result<bool> {
        self.inner.inner().preserves_lex_ordering(inputs)
    }

    fn strictly_order_preserving(&self, inputs: &[ExprProperties]) -> Result<bool> {
        self.inner.inner().strictly_order_preserving(inputs)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.inner().coerce_types(arg_types)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.inner().documentation()
    }

    fn placement(&self, args: &[ExpressionPlacement]) -> ExpressionPlacement {
        self.inner.inner().placement(args)
    }
}

/// `a || b` as a function, so that its calls are checked like any other: NULL when either side
/// is NULL, else the two strings one after the other (the dialect writes `||` as `concat_op`).
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct ConcatOp {
    signature: Signature,
    concat: Arc<ScalarUDF>,
}

impl ConcatOp {
    /// The function's name in rewritten statements.
    pub(crate) const NAME: &'static str = "concat_op";

    pub(super) fn udf() -> ScalarUDF {
        ScalarUDF::new_from_impl(ConcatOp {
            signature: Signature::user_defined(Volatility::Immutable),
            concat: datafusion::functions::string::concat(),
        })
    }
}

impl ScalarUDFImpl for ConcatOp {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        if arg_types.len() != 2 {
            return Err(DataFusionError::Plan("|| joins two strings".into()));
        }
        let target = string_type(arg_types);
        Ok(vec![target.clone(), target])
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(string_type(arg_types))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let target = args.return_type().clone();
        let nulls: Vec<ColumnarValue> = args.args.clone();
        let joined = self.concat.invoke_with_args(args)?;
        // `concat` skips NULLs; `||` gives NULL.
        match (&nulls[0], &nulls[1]) {
            (ColumnarValue::Scalar(a), ColumnarValue::Scalar(b)) => {
                if a.is_null() || b.is_null() {
                    return Ok(ColumnarValue::Scalar(ScalarValue::try_from(&target)?));
                }
                Ok(joined.cast_to(&target, None)?)
            }
            _ => {
                let joined = cast(&joined.to_array(rows)?, &target)?;
                let (a, b) = (nulls[0].to_array(rows)?, nulls[1].to_array(rows)?);
                let mask = datafusion::arrow::buffer::NullBuffer::union(
                    a.logical_nulls().as_ref(),
                    b.logical_nulls().as_ref(),
                );
                let data = joined.to_data().into_builder().nulls(mask).build()?;
                Ok(ColumnarValue::Array(datafusion::arrow::array::make_array(data)))
            }
        }
    }
}

/// The string type `||` gives two operands: a view or large string when either is one.
fn string_type(types: &[DataType]) -> DataType {
    if types.iter().any(|t| matches!(t, DataType::Utf8View)) {
        DataType::Utf8View
    } else if types.iter().any(|t| matches!(t, DataType::LargeUtf8)) {
        DataType::LargeUtf8
    } else {
        DataType::Utf8
    }
}

/// Replaces calls of unguarded functions in a plan (built by DataFusion's own planners and
/// simplifications from the plain functions) with guarded ones. Runs last among the analyzer's
/// rules and among the optimizer's.
#[derive(Debug)]
pub(super) struct GuardRule(pub(super) ValueLimits);

impl GuardRule {
    fn guard(&self, plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
        plan.transform_up_with_subqueries(|node| {
            node.map_expressions(|expr| {
                expr.transform_up(|e| match e {
                    Expr::ScalarFunction(call)
                        if !STRUCTURAL.contains(&call.func.name()) && !is_guarded(&call.func) =>
                    {
                        let func = Guarded::wrap(call.func, self.0);
                        Ok(Transformed::yes(Expr::ScalarFunction(ScalarFunction { func, args: call.args })))
                    }
                    other => Ok(Transformed::no(other)),
                })
            })
        })
    }
}

impl AnalyzerRule for GuardRule {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        Ok(self.guard(plan)?.data)
    }

    fn name(&self) -> &str {
        "klarity_guard_functions"
    }
}

impl OptimizerRule for GuardRule {
    fn name(&self) -> &str {
        "klarity_guard_functions"
    }

    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        self.guard(plan)
    }
}

/// The memory one query may hold: a share of the pool of all queries (the pool's size divided by
/// the queries running when it asks), and within it what the shared pool grants.
#[derive(Debug)]
pub(super) struct QueryPool {
    shared: Arc<dyn MemoryPool>,
    running: Arc<AtomicUsize>,
    limit: usize,
    used: AtomicUsize,
}

impl QueryPool {
    /// A pool for one more query of `running`.
    pub(super) fn new(shared: Arc<dyn MemoryPool>, running: Arc<AtomicUsize>, limit: usize) -> QueryPool {
        running.fetch_add(1, Ordering::Relaxed);
        QueryPool { shared, running, limit, used: AtomicUsize::new(0) }
    }

    fn share(&self) -> usize {
        self.limit / self.running.load(Ordering::Relaxed).max(1)
    }
}

impl Drop for QueryPool {
    fn drop(&mut self) {
        self.running.fetch_sub(1, Ordering::Relaxed);
    }
}

impl fmt::Display for QueryPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "query pool ({} of {} bytes)", self.used.load(Ordering::Relaxed), self.share())
    }
}

impl MemoryPool for QueryPool {
    fn name(&self) -> &str {
        "query"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        self.shared.register(consumer);
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.shared.unregister(consumer);
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.used.fetch_add(additional, Ordering::Relaxed);
        self.shared.grow(reservation, additional);
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.used.fetch_sub(shrink.min(self.used.load(Ordering::Relaxed)), Ordering::Relaxed);
        self.shared.shrink(reservation, shrink);
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        let (used, share) = (self.used.load(Ordering::Relaxed), self.share());
        if used.saturating_add(additional) > share {
            return Err(DataFusionError::ResourcesExhausted(format!(
                "{} asked for {additional} more bytes with the query holding {used}; a query's share of query \
                 memory is {share} bytes now ({} queries running, query.memory_limit_bytes = {})",
                reservation.consumer().name(),
                self.running.load(Ordering::Relaxed),
                self.limit
            )));
        }
        self.shared.try_grow(reservation, additional)?;
        self.used.fetch_add(additional, Ordering::Relaxed);
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit::Finite(self.share())
    }
}

/// Bounds every `WITH RECURSIVE` of a plan to `max_depth` runs of its recursive term.
#[derive(Debug)]
pub(super) struct RecursionBound(pub(super) usize);

impl PhysicalOptimizerRule for RecursionBound {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        let max_depth = self.0;
        plan.transform_up(|node| {
            let Some(recursive) = node.downcast_ref::<RecursiveQueryExec>() else {
                return Ok(Transformed::no(node));
            };
            if recursive.recursive_term().downcast_ref::<DepthBound>().is_some() {
                return Ok(Transformed::no(node));
            }
            let bounded: Arc<dyn ExecutionPlan> = Arc::new(DepthBound {
                inner: recursive.recursive_term().clone(),
                runs: Arc::new(AtomicUsize::new(0)),
                max_depth,
            });
            let rebuilt = RecursiveQueryExec::try_new(
                recursive.name().to_owned(),
                node.schema(),
                recursive.static_term().clone(),
                bounded,
                recursive.is_distinct(),
            )?;
            Ok(Transformed::yes(Arc::new(rebuilt) as Arc<dyn ExecutionPlan>))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "klarity_recursion_bound"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// A recursive term that fails once it has run `max_depth` times (each run is one level).
#[derive(Debug)]
struct DepthBound {
    inner: Arc<dyn ExecutionPlan>,
    runs: Arc<AtomicUsize>,
    max_depth: usize,
}

impl DisplayAs for DepthBound {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DepthBound: max_depth={}", self.max_depth)
    }
}

impl ExecutionPlan for DepthBound {
    fn name(&self) -> &str {
        "DepthBound"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.inner.properties()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.inner]
    }

    fn with_new_children(self: Arc<Self>, mut children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        let inner = children.pop().ok_or_else(|| DataFusionError::Internal("DepthBound has one child".into()))?;
        // The count survives the plan's rebuilds between levels.
        Ok(Arc::new(DepthBound { inner, runs: self.runs.clone(), max_depth: self.max_depth }))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let run = self.runs.fetch_add(1, Ordering::Relaxed) + 1;
        if run > self.max_depth {
            return Err(DataFusionError::ResourcesExhausted(format!(
                "the recursive query went deeper than {} levels (query.max_recursion_depth); \
                 add a condition that ends the recursion",
                self.max_depth
            )));
        }
        self.inner.execute(partition, context)
    }
}

#[cfg(test)]
mod tests;
