//! Trino's date and time functions that CloudTrail Lake queries call and DataFusion lacks:
//!
//! - `date_add(unit, value, timestamp)`: the timestamp moved by `value` units (back when negative).
//! - `date_diff(unit, timestamp1, timestamp2)`: how many whole units lie from the first to the
//!   second (negative when the second is earlier), a bigint.
//! - `from_iso8601_timestamp(text)`, `from_iso8601_date(text)`: an ISO 8601 text as a timestamp
//!   (UTC; an offset in the text is applied) or a date.
//! - The fields of a time (`year`, `hour`, `day_of_week`, …), `date_format` with Trino's specifiers
//!   and `to_iso8601`: see `fields`.
//!
//! Units are Trino's: `millisecond`, `second`, `minute`, `hour`, `day`, `week`, `month`, `quarter`,
//! `year`. Months, quarters and years follow the calendar in UTC and, as Trino's do, end on the
//! month's last day when the day does not exist (`date_add('month', 1, TIMESTAMP '2024-01-31')` is
//! 2024-02-29); the others are fixed lengths. Each function is immutable, so a call on constants —
//! the usual time bound `eventTime > date_add('day', -7, now())` — is folded into a literal before
//! the query is planned, and the files whose event times lie outside the bound are still left out.

use std::sync::Arc;

use chrono::{DateTime, Datelike, Months, NaiveDate, NaiveDateTime};
use datafusion::{
    arrow::{
        array::{Array, ArrayRef, AsArray, Int32Array, Int64Array},
        compute::{cast, kernels::cast_utils::string_to_datetime},
        datatypes::{DataType, Field, FieldRef, Int32Type, Int64Type, TimeUnit},
    },
    common::{Result, exec_err, plan_err},
    logical_expr::{
        ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
    },
};

use super::functions::text_argument;

mod fields;

/// The functions to register on a query's session.
pub(super) fn all() -> Vec<ScalarUDF> {
    [Kind::Add, Kind::Diff, Kind::Timestamp, Kind::Date]
        .into_iter()
        .map(|kind| ScalarUDF::from(DateFunction { kind, signature: Signature::user_defined(Volatility::Immutable) }))
        .chain(fields::all())
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Add,
    Diff,
    Timestamp,
    Date,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Add => "date_add",
            Kind::Diff => "date_diff",
            Kind::Timestamp => "from_iso8601_timestamp",
            Kind::Date => "from_iso8601_date",
        }
    }

    fn usage(self) -> &'static str {
        match self {
            Kind::Add => "date_add(unit, value, timestamp), e.g. date_add('day', -7, now())",
            Kind::Diff => "date_diff(unit, timestamp1, timestamp2), e.g. date_diff('hour', eventTime, now())",
            Kind::Timestamp => "from_iso8601_timestamp(text), e.g. from_iso8601_timestamp('2024-07-12T10:55:00Z')",
            Kind::Date => "from_iso8601_date(text), e.g. from_iso8601_date('2024-07-12')",
        }
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct DateFunction {
    kind: Kind,
    signature: Signature,
}

/// A unit of `date_add` and `date_diff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    /// A fixed length, in milliseconds.
    Fixed(i64),
    /// A number of calendar months.
    Months(i64),
}

const UNITS: &str = "millisecond, second, minute, hour, day, week, month, quarter, year";

impl Unit {
    fn parse(function: &str, text: &str) -> Result<Unit> {
        Ok(match text.trim().to_ascii_lowercase().as_str() {
            "millisecond" => Unit::Fixed(1),
            "second" => Unit::Fixed(1_000),
            "minute" => Unit::Fixed(60_000),
            "hour" => Unit::Fixed(3_600_000),
            "day" => Unit::Fixed(86_400_000),
            "week" => Unit::Fixed(7 * 86_400_000),
            "month" => Unit::Months(1),
            "quarter" => Unit::Months(3),
            "year" => Unit::Months(12),
            _ => return exec_err!("{function}: {text:?} is not a unit; use one of {UNITS}"),
        })
    }
}

/// A point in time's type, as the function takes it: a timestamp as it is, a date as a date, text
/// parsed as a timestamp.
fn moment(kind: Kind, given: &DataType) -> Result<DataType> {
    match given {
        DataType::Timestamp(..) => Ok(given.clone()),
        DataType::Date32 | DataType::Date64 => Ok(DataType::Date32),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => {
            Ok(DataType::Timestamp(TimeUnit::Millisecond, None))
        }
        other => plan_err!("{}: expected a timestamp, found {other}; call it as {}", kind.name(), kind.usage()),
    }
}

impl ScalarUDFImpl for DateFunction {
    fn name(&self) -> &str {
        self.kind.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, given: &[DataType]) -> Result<Vec<DataType>> {
        let kind = self.kind;
        match (kind, given) {
            (Kind::Add, [unit, value, time]) => {
                let value = match value {
                    v if v.is_integer() || v == &DataType::Null => DataType::Int64,
                    other => {
                        return plan_err!(
                            "date_add: the value must be an integer, found {other}; call it as {}",
                            kind.usage()
                        );
                    }
                };
                Ok(vec![text_argument(kind.name(), "unit", unit)?, value, moment(kind, time)?])
            }
            // Both as milliseconds since the epoch: a date is its midnight.
            (Kind::Diff, [unit, first, second]) => {
                let ms = |t: &DataType| moment(kind, t).map(|_| DataType::Timestamp(TimeUnit::Millisecond, None));
                Ok(vec![text_argument(kind.name(), "unit", unit)?, ms(first)?, ms(second)?])
            }
            (Kind::Timestamp | Kind::Date, [value]) => Ok(vec![text_argument(kind.name(), "argument", value)?]),
            _ => plan_err!("{} takes {} arguments; call it as {}", kind.name(), self.arity(), kind.usage()),
        }
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match self.kind {
            Kind::Add => match args.get(2) {
                Some(time) => moment(self.kind, time),
                None => plan_err!("date_add takes 3 arguments; call it as {}", self.kind.usage()),
            },
            Kind::Diff => Ok(DataType::Int64),
            Kind::Timestamp => Ok(DataType::Timestamp(TimeUnit::Millisecond, None)),
            Kind::Date => Ok(DataType::Date32),
        }
    }

    /// Also checks a literal unit while the query is planned, so that a misspelt one fails the
    /// query as Trino's analyzer does, even when no row is ever read.
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        if matches!(self.kind, Kind::Add | Kind::Diff)
            && let Some(Some(unit)) = args.scalar_arguments.first()
            && let Some(text) = unit.try_as_str().flatten()
        {
            Unit::parse(self.kind.name(), text)?;
        }
        let types: Vec<DataType> = args.arg_fields.iter().map(|f| f.data_type().clone()).collect();
        Ok(Arc::new(Field::new(self.name(), self.return_type(&types)?, true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let scalar = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let name = self.kind.name();
        let array = match (self.kind, args.args.as_slice()) {
            (Kind::Add, [unit, value, time]) => {
                let unit = constant_unit(name, unit)?;
                let value = cast(&value.to_array(rows)?, &DataType::Int64)?;
                date_add(unit, value.as_primitive::<Int64Type>(), &time.to_array(rows)?)?
            }
            (Kind::Diff, [unit, first, second]) => {
                let unit = constant_unit(name, unit)?;
                let first = cast(&first.to_array(rows)?, &DataType::Int64)?;
                let second = cast(&second.to_array(rows)?, &DataType::Int64)?;
                let (first, second) = (first.as_primitive::<Int64Type>(), second.as_primitive::<Int64Type>());
                let diffs = first
                    .iter()
                    .zip(second.iter())
                    .map(|pair| match pair {
                        (Some(a), Some(b)) => between(unit, a, b).map(Some),
                        _ => Ok(None),
                    })
                    .collect::<Result<Int64Array>>()?;
                Arc::new(diffs) as ArrayRef
            }
            (Kind::Timestamp | Kind::Date, [value]) => {
                let value = cast(&value.to_array(rows)?, &DataType::Utf8)?;
                let texts = value.as_string::<i32>();
                if self.kind == Kind::Timestamp {
                    let parsed =
                        texts.iter().map(|t| t.map(iso_timestamp).transpose()).collect::<Result<Int64Array>>()?;
                    cast(&(Arc::new(parsed) as ArrayRef), &DataType::Timestamp(TimeUnit::Millisecond, None))?
                } else {
                    let parsed = texts.iter().map(|t| t.map(iso_date).transpose()).collect::<Result<Int32Array>>()?;
                    cast(&(Arc::new(parsed) as ArrayRef), &DataType::Date32)?
                }
            }
            _ => return exec_err!("{name} takes {} arguments; call it as {}", self.arity(), self.kind.usage()),
        };
        super::functions::answer(array, scalar)
    }
}

impl DateFunction {
    fn arity(&self) -> usize {
        match self.kind {
            Kind::Add | Kind::Diff => 3,
            Kind::Timestamp | Kind::Date => 1,
        }
    }
}

/// The unit argument, which must be the same for every row (a literal, as Trino's users write it).
fn constant_unit(function: &str, unit: &ColumnarValue) -> Result<Unit> {
    match unit {
        ColumnarValue::Scalar(value) => match value.try_as_str().flatten() {
            Some(text) => Unit::parse(function, text),
            None => exec_err!("{function}: the unit is NULL; use one of {UNITS}"),
        },
        ColumnarValue::Array(_) => exec_err!("{function}: the unit must be a constant such as 'day', not a column"),
    }
}

/// `date_add` over a timestamp or date array.
fn date_add(unit: Unit, values: &Int64Array, times: &ArrayRef) -> Result<ArrayRef> {
    let out_of_range = || exec_err!("date_add: the result is out of the range of timestamps");
    match times.data_type().clone() {
        DataType::Timestamp(time_unit, _) => {
            let per_second = match time_unit {
                TimeUnit::Second => 1,
                TimeUnit::Millisecond => 1_000,
                TimeUnit::Microsecond => 1_000_000,
                TimeUnit::Nanosecond => 1_000_000_000,
            };
            let raw = cast(times, &DataType::Int64)?;
            let moved = raw
                .as_primitive::<Int64Type>()
                .iter()
                .zip(values.iter())
                .map(|pair| match pair {
                    (Some(t), Some(n)) => match add_to_timestamp(unit, n, t, per_second) {
                        Some(moved) => Ok(Some(moved)),
                        None => out_of_range(),
                    },
                    _ => Ok(None),
                })
                .collect::<Result<Int64Array>>()?;
            Ok(cast(&(Arc::new(moved) as ArrayRef), times.data_type())?)
        }
        DataType::Date32 => {
            let raw = cast(times, &DataType::Int32)?;
            let moved = raw
                .as_primitive::<Int32Type>()
                .iter()
                .zip(values.iter())
                .map(|pair| match pair {
                    (Some(days), Some(n)) => add_to_date(unit, n, days),
                    _ => Ok(None),
                })
                .collect::<Result<Int32Array>>()?;
            Ok(cast(&(Arc::new(moved) as ArrayRef), &DataType::Date32)?)
        }
        other => exec_err!("date_add: expected a timestamp or a date, found {other}"),
    }
}

/// `t` (in units of which `per_second` make a second) moved by `n` units.
fn add_to_timestamp(unit: Unit, n: i64, t: i64, per_second: i64) -> Option<i64> {
    match unit {
        Unit::Fixed(ms) => {
            let moved = i128::from(t) + i128::from(n) * i128::from(ms) * i128::from(per_second) / 1_000;
            i64::try_from(moved).ok()
        }
        Unit::Months(months) => {
            let (seconds, rest) = (t.div_euclid(per_second), t.rem_euclid(per_second));
            let at = DateTime::from_timestamp(seconds, 0)?.naive_utc();
            let moved = add_months(at, n.checked_mul(months)?)?;
            moved.and_utc().timestamp().checked_mul(per_second)?.checked_add(rest)
        }
    }
}

/// A date (days since the epoch) moved by `n` units: days, weeks, months, quarters or years.
fn add_to_date(unit: Unit, n: i64, days: i32) -> Result<Option<i32>> {
    const DAY_MS: i64 = 86_400_000;
    let moved = match unit {
        Unit::Fixed(ms) if ms % DAY_MS == 0 => {
            n.checked_mul(ms / DAY_MS).and_then(|d| d.checked_add(i64::from(days))).and_then(|d| i32::try_from(d).ok())
        }
        Unit::Fixed(_) => {
            return exec_err!(
                "date_add: a date moves by days, weeks, months, quarters or years; cast it to a timestamp for smaller units"
            );
        }
        Unit::Months(months) => days
            .checked_add(EPOCH_DAYS_FROM_CE)
            .and_then(NaiveDate::from_num_days_from_ce_opt)
            .zip(n.checked_mul(months))
            .and_then(|(date, months)| add_months(date.and_time(chrono::NaiveTime::MIN), months))
            .and_then(|moved| moved.date().num_days_from_ce().checked_sub(EPOCH_DAYS_FROM_CE)),
    };
    match moved {
        Some(days) => Ok(Some(days)),
        None => exec_err!("date_add: the result is out of the range of dates"),
    }
}

/// 1970-01-01 counted in days from 0001-01-01 (day 1), as chrono counts.
const EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// `at` moved by `months` calendar months, ending on the month's last day when the day does not
/// exist in it.
fn add_months(at: NaiveDateTime, months: i64) -> Option<NaiveDateTime> {
    let step = Months::new(u32::try_from(months.unsigned_abs()).ok()?);
    if months >= 0 { at.checked_add_months(step) } else { at.checked_sub_months(step) }
}

/// Whole units from `a` to `b` (milliseconds since the epoch), truncated toward zero as Trino's
/// `date_diff` counts: a month is whole when adding it to `a` does not pass `b`.
fn between(unit: Unit, a: i64, b: i64) -> Result<i64> {
    match unit {
        Unit::Fixed(ms) => match i64::try_from((i128::from(b) - i128::from(a)) / i128::from(ms)) {
            Ok(whole) => Ok(whole),
            Err(_) => exec_err!("date_diff: the difference is out of the range of a bigint"),
        },
        Unit::Months(per) => {
            let (Some(from), Some(to)) = (DateTime::from_timestamp_millis(a), DateTime::from_timestamp_millis(b))
            else {
                return exec_err!("date_diff: a timestamp is out of range");
            };
            let (from, to) = (from.naive_utc(), to.naive_utc());
            let mut months =
                (i64::from(to.year()) - i64::from(from.year())) * 12 + i64::from(to.month()) - i64::from(from.month());
            if months > 0 && add_months(from, months).is_some_and(|m| m > to) {
                months -= 1;
            } else if months < 0 && add_months(from, months).is_some_and(|m| m < to) {
                months += 1;
            }
            Ok(months / per)
        }
    }
}

/// An ISO 8601 timestamp's milliseconds since the epoch (UTC when the text names no offset).
fn iso_timestamp(text: &str) -> Result<i64> {
    match string_to_datetime(&chrono::Utc, text.trim()) {
        Ok(at) => Ok(at.timestamp_millis()),
        Err(_) => exec_err!(
            "from_iso8601_timestamp: {text:?} is not an ISO 8601 timestamp; write it as 2024-07-12T10:55:00Z, \
             2024-07-12T10:55:00.123+02:00 or 2024-07-12"
        ),
    }
}

/// An ISO 8601 date's days since the epoch.
fn iso_date(text: &str) -> Result<i32> {
    match NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d") {
        Ok(date) => Ok(date.num_days_from_ce() - EPOCH_DAYS_FROM_CE),
        Err(_) => exec_err!("from_iso8601_date: {text:?} is not an ISO 8601 date; write it as 2024-07-12"),
    }
}

#[cfg(test)]
mod tests;
