//! Trino's functions that read a field of a time or write it as text:
//!
//! - `year`, `quarter`, `month`, `week` (`week_of_year`, the ISO week), `year_of_week` (`yow`, the
//!   ISO week's year), `day` (`day_of_month`), `day_of_week` (`dow`: ISO, Monday 1 … Sunday 7),
//!   `day_of_year` (`doy`), `hour`, `minute`, `second`, `millisecond`: a bigint each.
//! - `date_format(timestamp, format)`: Trino's (MySQL's) specifiers — `%Y-%m-%d %H:%i:%s` — which
//!   differ from the strftime ones DataFusion's own `date_format` takes (`%i` is minutes, `%M` the
//!   month's name); it replaces DataFusion's.
//! - `to_iso8601(timestamp)`: `2024-07-12T10:55:00.000` (a date: `2024-07-12`).
//!
//! A time is read in UTC, to the millisecond.

use std::{fmt::Write, sync::Arc};

use chrono::{
    DateTime, Datelike, NaiveDateTime, Timelike,
    format::{Item, StrftimeItems},
};
use datafusion::{
    arrow::{
        array::{Array, ArrayRef, AsArray, Int64Array, StringBuilder},
        compute::cast,
        datatypes::{DataType, Int64Type, TimeUnit},
    },
    common::{Result, exec_err, plan_err},
    logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility},
};

use super::text_argument;

/// The functions to register.
pub(super) fn all() -> Vec<ScalarUDF> {
    let fields = [
        ("year", &[][..], Part::Year),
        ("quarter", &[], Part::Quarter),
        ("month", &[], Part::Month),
        ("week", &["week_of_year"], Part::Week),
        ("year_of_week", &["yow"], Part::YearOfWeek),
        ("day", &["day_of_month"], Part::Day),
        ("day_of_week", &["dow"], Part::DayOfWeek),
        ("day_of_year", &["doy"], Part::DayOfYear),
        ("hour", &[], Part::Hour),
        ("minute", &[], Part::Minute),
        ("second", &[], Part::Second),
        ("millisecond", &[], Part::Millisecond),
    ];
    let signature = || Signature::user_defined(Volatility::Immutable);
    fields
        .into_iter()
        .map(|(name, aliases, part)| {
            ScalarUDF::from(TimeFunction {
                name,
                aliases: aliases.iter().map(|a| (*a).to_owned()).collect(),
                what: What::Field(part),
                signature: signature(),
            })
        })
        .chain([
            ScalarUDF::from(TimeFunction {
                name: "date_format",
                aliases: vec![],
                what: What::Format,
                signature: signature(),
            }),
            ScalarUDF::from(TimeFunction {
                name: "to_iso8601",
                aliases: vec![],
                what: What::Iso8601,
                signature: signature(),
            }),
        ])
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Part {
    Year,
    Quarter,
    Month,
    Week,
    YearOfWeek,
    Day,
    DayOfWeek,
    DayOfYear,
    Hour,
    Minute,
    Second,
    Millisecond,
}

impl Part {
    fn of(self, at: NaiveDateTime) -> i64 {
        let value = match self {
            Part::Year => at.year(),
            Part::Quarter => (at.month0() / 3 + 1) as i32,
            Part::Month => at.month() as i32,
            Part::Week => at.iso_week().week() as i32,
            Part::YearOfWeek => at.iso_week().year(),
            Part::Day => at.day() as i32,
            Part::DayOfWeek => at.weekday().number_from_monday() as i32,
            Part::DayOfYear => at.ordinal() as i32,
            Part::Hour => at.hour() as i32,
            Part::Minute => at.minute() as i32,
            Part::Second => at.second() as i32,
            Part::Millisecond => (at.nanosecond() / 1_000_000) as i32,
        };
        i64::from(value)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum What {
    Field(Part),
    Format,
    Iso8601,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct TimeFunction {
    name: &'static str,
    aliases: Vec<String>,
    what: What,
    signature: Signature,
}

const AS_MS: DataType = DataType::Timestamp(TimeUnit::Millisecond, None);

impl TimeFunction {
    fn usage(&self) -> String {
        match self.what {
            What::Field(_) => format!("{}(timestamp), e.g. {}(eventTime)", self.name, self.name),
            What::Format => "date_format(timestamp, format), e.g. date_format(eventTime, '%Y-%m-%d %H:%i')".into(),
            What::Iso8601 => "to_iso8601(timestamp), e.g. to_iso8601(eventTime)".into(),
        }
    }

    /// A time argument's type as taken: a date stays a date for `to_iso8601`; everything else is
    /// read as milliseconds.
    fn moment(&self, given: &DataType) -> Result<DataType> {
        match given {
            DataType::Date32 | DataType::Date64 if self.what == What::Iso8601 => Ok(DataType::Date32),
            DataType::Timestamp(..)
            | DataType::Date32
            | DataType::Date64
            | DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Null => Ok(AS_MS),
            other => plan_err!("{}: expected a timestamp, found {other}; call it as {}", self.name, self.usage()),
        }
    }
}

impl ScalarUDFImpl for TimeFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, given: &[DataType]) -> Result<Vec<DataType>> {
        match (self.what, given) {
            (What::Field(_) | What::Iso8601, [time]) => Ok(vec![self.moment(time)?]),
            (What::Format, [time, format]) => Ok(vec![self.moment(time)?, text_argument(self.name, "format", format)?]),
            _ => plan_err!("{}: wrong number of arguments; call it as {}", self.name, self.usage()),
        }
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(match self.what {
            What::Field(_) => DataType::Int64,
            What::Format | What::Iso8601 => DataType::Utf8,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let scalar = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let Some(time) = args.args.first() else {
            return exec_err!("{}: call it as {}", self.name, self.usage());
        };
        let time = time.to_array(rows)?;
        let array: ArrayRef = match self.what {
            What::Iso8601 if time.data_type() == &DataType::Date32 => cast(&time, &DataType::Utf8)?,
            What::Field(part) => Arc::new(
                moments(self.name, &time)?.into_iter().map(|at| at.map(|at| part.of(at))).collect::<Int64Array>(),
            ),
            What::Iso8601 => {
                let items = strftime_items("%Y-%m-%dT%H:%M:%S%.3f")?;
                let moments = moments(self.name, &time)?;
                let mut out = StringBuilder::with_capacity(moments.len(), moments.len() * 23);
                for at in moments {
                    append(&mut out, at, &items);
                }
                Arc::new(out.finish())
            }
            What::Format => {
                let Some(format) = args.args.get(1) else {
                    return exec_err!("date_format: call it as {}", self.usage());
                };
                let format = cast(&format.to_array(rows)?, &DataType::Utf8)?;
                // The format is translated and parsed once for each run of rows that share it.
                let mut last: Option<(String, Vec<Item<'static>>)> = None;
                let mut out = StringBuilder::with_capacity(rows, rows * 16);
                for (at, format) in moments(self.name, &time)?.into_iter().zip(format.as_string::<i32>().iter()) {
                    let Some(format) = format else {
                        out.append_null();
                        continue;
                    };
                    if last.as_ref().is_none_or(|(given, _)| given != format) {
                        last = Some((format.to_owned(), strftime_items(&strftime(format)?)?));
                    }
                    let (_, items) = last.as_ref().expect("just set");
                    append(&mut out, at, items);
                }
                Arc::new(out.finish())
            }
        };
        super::super::functions::answer(array, scalar)
    }
}

/// Appends `at` written with `items` (NULL for no time), without a string of its own.
fn append(out: &mut StringBuilder, at: Option<NaiveDateTime>, items: &[Item<'static>]) {
    match at {
        Some(at) => {
            // Writing into the builder's buffer cannot fail; the items were parsed without error.
            let _ = write!(out, "{}", at.format_with_items(items.iter()));
            out.append_value("");
        }
        None => out.append_null(),
    }
}

/// A strftime format, parsed once.
fn strftime_items(format: &str) -> Result<Vec<Item<'static>>> {
    match StrftimeItems::new(format).parse_to_owned() {
        Ok(items) => Ok(items),
        Err(err) => exec_err!("date_format: the format {format:?} cannot be written: {err}"),
    }
}

/// Each row's time (milliseconds since the epoch, as coerced) in UTC.
fn moments(name: &str, times: &ArrayRef) -> Result<Vec<Option<NaiveDateTime>>> {
    let ms = cast(times, &DataType::Int64)?;
    ms.as_primitive::<Int64Type>()
        .iter()
        .map(|ms| match ms.map(DateTime::from_timestamp_millis) {
            None => Ok(None),
            Some(Some(at)) => Ok(Some(at.naive_utc())),
            Some(None) => exec_err!("{name}: a timestamp is out of range"),
        })
        .collect()
}

/// Trino's `date_format` specifiers as chrono's strftime ones, or what is wrong with them.
fn strftime(format: &str) -> Result<String> {
    let mut out = String::with_capacity(format.len() + 8);
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(specifier) = chars.next() else {
            return exec_err!("date_format: the format {format:?} ends with a lone %; write %% for a percent sign");
        };
        out.push_str(match specifier {
            'a' => "%a",
            'b' => "%b",
            'c' => "%-m",
            'd' => "%d",
            'e' => "%-d",
            'f' => "%6f",
            'H' => "%H",
            'h' | 'I' => "%I",
            'i' => "%M",
            'j' => "%j",
            'k' => "%-H",
            'l' => "%-I",
            'M' => "%B",
            'm' => "%m",
            'p' => "%p",
            'r' => "%I:%M:%S %p",
            'S' | 's' => "%S",
            'T' => "%H:%M:%S",
            'W' => "%A",
            'w' => "%w",
            'Y' => "%Y",
            'y' => "%y",
            '%' => "%%",
            other => {
                return exec_err!(
                    "date_format: %{other} is not a specifier Trino supports; use %Y %m %d %H %i %s %f %p %a %b %M %W \
                     %j %e %c %k %l %h %r %T %y %w or %%"
                );
            }
        });
    }
    Ok(out)
}
