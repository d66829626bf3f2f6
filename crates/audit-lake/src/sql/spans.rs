//! A store's Parquet files as a table that leaves out, for each query, the files whose `eventTime`
//! span cannot meet the query's bounds on `eventTime`.
//!
//! DataFusion prunes a file only once it has opened it (its footer, its statistics, its page index),
//! and each file opened costs a query about a tenth of a millisecond before a row is read: over 100M
//! events in 114 files, a day's query took 40.7–52.4 ms (medians of four passes) in DataFusion alone
//! over all the files and 26.8–36.0 ms over the one file holding that day (BENCHMARKS.md, session 23). The lake knows each file's span
//! (`Segment::earliest_ms` and `latest_ms`, conservative when unknown), so it can leave the rest out
//! before planning the scan. The filters stay in the plan as they were (pushed down `Inexact`): leaving
//! out a file that holds no event within the bounds changes no answer.

use std::sync::Arc;

use datafusion::{
    arrow::datatypes::SchemaRef,
    catalog::{ScanArgs, ScanResult, Session, TableProvider},
    common::{Result, ScalarValue},
    datasource::{
        TableType,
        listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl},
    },
    execution::cache::cache_manager::FileStatisticsCache,
    logical_expr::{Between, BinaryExpr, Expr, Operator, TableProviderFilterPushDown},
    physical_expr_adapter::PhysicalExprAdapterFactory,
    physical_plan::{ExecutionPlan, empty::EmptyExec},
};

/// Files of one store, each with the span of its events' `eventTime` (milliseconds, inclusive).
#[derive(Debug)]
pub(super) struct SpannedFiles {
    files: Vec<(ListingTableUrl, i64, i64)>,
    schema: SchemaRef,
    options: ListingOptions,
    adapter: Arc<dyn PhysicalExprAdapterFactory>,
    statistics: Option<Arc<FileStatisticsCache>>,
}

impl SpannedFiles {
    pub(super) fn new(
        files: Vec<(ListingTableUrl, i64, i64)>,
        schema: SchemaRef,
        options: ListingOptions,
        adapter: Arc<dyn PhysicalExprAdapterFactory>,
        statistics: Option<Arc<FileStatisticsCache>>,
    ) -> SpannedFiles {
        SpannedFiles { files, schema, options, adapter, statistics }
    }

    /// A listing table of the files whose span meets `filters`' bounds on `eventTime`; `None`
    /// when no file does.
    fn table(&self, filters: &[Expr]) -> Result<Option<ListingTable>> {
        let (from, to) = bounds(filters);
        let urls: Vec<ListingTableUrl> = self
            .files
            .iter()
            .filter(|(_, earliest, latest)| *latest >= from && *earliest <= to)
            .map(|(url, _, _)| url.clone())
            .collect();
        if urls.is_empty() {
            return Ok(None);
        }
        let config = ListingTableConfig::new_with_multi_paths(urls)
            .with_listing_options(self.options.clone())
            .with_schema(self.schema.clone())
            .with_expr_adapter_factory(self.adapter.clone());
        Ok(Some(ListingTable::try_new(config)?.with_cache(self.statistics.clone())))
    }
}

#[async_trait::async_trait]
impl TableProvider for SpannedFiles {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// Every filter is given to the scan (to bound the files, and for the Parquet scan's own pruning)
    /// and kept above it, as a listing table without partition columns does.
    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let args = ScanArgs::default()
            .with_projection(projection.map(|p| p.as_slice()))
            .with_filters(Some(filters))
            .with_limit(limit);
        Ok(self.scan_with_args(state, args).await?.into_inner())
    }

    async fn scan_with_args<'a>(&self, state: &dyn Session, args: ScanArgs<'a>) -> Result<ScanResult> {
        match self.table(args.filters().unwrap_or(&[]))? {
            Some(table) => table.scan_with_args(state, args).await,
            None => {
                let schema = match args.projection() {
                    Some(projection) => Arc::new(self.schema.project(projection)?),
                    None => self.schema.clone(),
                };
                Ok(ScanResult::new(Arc::new(EmptyExec::new(schema))))
            }
        }
    }
}

/// The bounds `filters` (a conjunction) set on `eventTime`, in milliseconds, inclusive:
/// `(i64::MIN, i64::MAX)` where they set none that this recognizes (a comparison of the column
/// with a timestamp literal, either way round, or a `BETWEEN` of two).
pub(super) fn bounds(filters: &[Expr]) -> (i64, i64) {
    let mut span = (i64::MIN, i64::MAX);
    for filter in filters {
        narrow(filter, &mut span);
    }
    span
}

fn narrow(expr: &Expr, span: &mut (i64, i64)) {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::And, right }) => {
            narrow(left, span);
            narrow(right, span);
        }
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (op, at) = match (is_event_time(left), is_event_time(right)) {
                (true, false) => (*op, millis(right)),
                (false, true) => (op.swap().unwrap_or(*op), millis(left)),
                _ => return,
            };
            let Some((ms, exact)) = at else { return };
            match op {
                Operator::Eq => {
                    span.0 = span.0.max(ms);
                    span.1 = span.1.min(if exact { ms } else { ms.saturating_add(1) });
                }
                Operator::Gt | Operator::GtEq => span.0 = span.0.max(ms),
                // `< t` with t within a millisecond holds for that millisecond too.
                Operator::Lt | Operator::LtEq => {
                    span.1 = span.1.min(if exact && op == Operator::Lt { ms.saturating_sub(1) } else { ms })
                }
                _ => {}
            }
        }
        Expr::Between(Between { expr, negated: false, low, high }) if is_event_time(expr) => {
            if let Some((ms, _)) = millis(low) {
                span.0 = span.0.max(ms);
            }
            if let Some((ms, exact)) = millis(high) {
                span.1 = span.1.min(if exact { ms } else { ms.saturating_add(1) });
            }
        }
        _ => {}
    }
}

fn is_event_time(expr: &Expr) -> bool {
    matches!(expr, Expr::Column(column) if column.name == "eventTime")
}

/// A timestamp literal in milliseconds, rounded down, and whether it was a whole millisecond.
fn millis(expr: &Expr) -> Option<(i64, bool)> {
    let Expr::Literal(value, _) = expr else { return None };
    let (value, per_ms) = match value {
        ScalarValue::TimestampSecond(Some(v), _) => return v.checked_mul(1000).map(|ms| (ms, true)),
        ScalarValue::TimestampMillisecond(Some(v), _) => return Some((*v, true)),
        ScalarValue::TimestampMicrosecond(Some(v), _) => (*v, 1_000),
        ScalarValue::TimestampNanosecond(Some(v), _) => (*v, 1_000_000),
        _ => return None,
    };
    Some((value.div_euclid(per_ms), value.rem_euclid(per_ms) == 0))
}

#[cfg(test)]
mod tests {
    use datafusion::{
        common::{Column, ScalarValue},
        logical_expr::{Expr, lit},
    };

    use super::bounds;

    fn ms(v: i64) -> Expr {
        lit(ScalarValue::TimestampMillisecond(Some(v), None))
    }

    #[test]
    fn bounds_at_the_ends_of_time_saturate_instead_of_overflowing() {
        let time = || Expr::Column(Column::new_unqualified("eventTime"));
        assert_eq!(bounds(&[time().lt(ms(i64::MIN))]), (i64::MIN, i64::MIN));
        assert_eq!(bounds(&[time().gt(ms(i64::MAX))]), (i64::MAX, i64::MAX));
        let nanos = lit(ScalarValue::TimestampNanosecond(Some(i64::MAX), None));
        assert_eq!(bounds(&[time().eq(nanos)]).1, i64::MAX / 1_000_000 + 1);
        let seconds = lit(ScalarValue::TimestampSecond(Some(i64::MAX), None));
        assert_eq!(bounds(&[time().gt(seconds)]), (i64::MIN, i64::MAX), "past milliseconds' range: no bound");
        assert_eq!(bounds(&[ms(5).lt_eq(time()), time().lt(ms(9))]), (5, 8));
    }
}
