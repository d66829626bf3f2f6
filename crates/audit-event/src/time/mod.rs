//! `eventTime`: a UTC timestamp.
//!
//! CloudTrail documents the form `yyyy-MM-DDTHH:mm:ss`, in UTC; every AWS and partner example adds a
//! trailing `Z`. We accept exactly:
//!
//! - `YYYY-MM-DDTHH:MM:SS` followed by `Z`, by `+00:00`, or by nothing (then it is taken as UTC, the
//!   documented form);
//! - optionally a fraction of 1 to 9 digits after the seconds (`2024-07-12T10:55:00.123Z`).
//!
//! The date must exist (leap years included), hours are 00–23, minutes and seconds 00–59, years
//! 1970–9999. The separator is an upper-case `T`. Any offset other than UTC is refused: the relay
//! never guesses a conversion, the producer must send UTC.

use std::{
    fmt,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// A parsed `eventTime`: an instant in UTC with nanosecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventTime {
    secs: i64,
    nanos: u32,
}

/// Why a string is not an acceptable `eventTime`. The `Display` text completes the sentence
/// "… is not a valid eventTime: ".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventTimeError(String);

impl fmt::Display for EventTimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EventTimeError {}

/// The form we print in messages, so a user sees what we expect.
pub const EVENT_TIME_FORM: &str = "YYYY-MM-DDTHH:MM:SSZ in UTC, e.g. 2024-07-12T10:55:00Z";

impl EventTime {
    /// Parses an `eventTime` in one of the accepted forms (see the module documentation).
    pub fn parse(text: &str) -> Result<EventTime, EventTimeError> {
        let err = |why: String| Err(EventTimeError(why));
        let b = text.as_bytes();

        // The year: all digits up to the first '-'.
        let year_len = b.iter().take_while(|c| c.is_ascii_digit()).count();
        if year_len == 0 {
            return err("it must start with a 4-digit year".into());
        }
        if year_len != 4 {
            return err(format!("the year must have 4 digits, found {year_len} ({:?})", &text[..year_len]));
        }
        let field = |start: usize, len: usize, sep: Option<u8>, what: &str| -> Result<u32, EventTimeError> {
            let digits = b.get(start..start + len).filter(|d| d.iter().all(u8::is_ascii_digit));
            let Some(digits) = digits else {
                return Err(EventTimeError(format!("the {what} must have {len} digits")));
            };
            if let Some(sep) = sep
                && b.get(start + len) != Some(&sep)
            {
                return Err(EventTimeError(format!("expected '{}' after the {what}", sep as char)));
            }
            Ok(digits.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
        };
        if b.get(4) != Some(&b'-') {
            return err("expected '-' after the year".into());
        }
        let year = field(0, 4, None, "year")?;
        let month = field(5, 2, Some(b'-'), "month")?;
        let day = field(8, 2, None, "day")?;
        match b.get(10) {
            Some(b'T') => {}
            Some(b't' | b' ') => {
                return err("the date and time must be separated by an upper-case 'T'".into());
            }
            None => return err("the time of day is missing".into()),
            Some(_) => return err("expected 'T' after the day".into()),
        }
        let hour = field(11, 2, Some(b':'), "hour")?;
        let minute = field(14, 2, Some(b':'), "minute")?;
        let second = field(17, 2, None, "second")?;

        let mut pos = 19;
        let mut nanos = 0u32;
        if b.get(pos) == Some(&b'.') {
            let digits = b[pos + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if !(1..=9).contains(&digits) {
                return err("the fraction of a second must have 1 to 9 digits".into());
            }
            let frac = &b[pos + 1..pos + 1 + digits];
            nanos = frac.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0')) * 10u32.pow(9 - digits as u32);
            pos += 1 + digits;
        }
        match &b[pos..] {
            b"" | b"Z" | b"+00:00" => {}
            b"z" => return err("the UTC designator must be an upper-case 'Z'".into()),
            rest if rest.first().is_some_and(|c| *c == b'+' || *c == b'-') => {
                return err(format!(
                    "the offset {:?} is not UTC; convert the time to UTC and end it with 'Z'",
                    &text[pos..]
                ));
            }
            _ => return err(format!("unexpected {:?} after the time", &text[pos..])),
        }

        if !(1970..=9999).contains(&year) {
            return err(format!("the year {year} is outside 1970–9999"));
        }
        if !(1..=12).contains(&month) {
            return err(format!("the month {month:02} is not 01–12"));
        }
        let last_day = days_in_month(year, month);
        if day == 0 || day > last_day {
            return err(format!("day {day:02} does not exist in {year}-{month:02}"));
        }
        if hour > 23 {
            return err(format!("the hour {hour:02} is not 00–23"));
        }
        if minute > 59 {
            return err(format!("the minute {minute:02} is not 00–59"));
        }
        if second > 59 {
            return err(format!("the second {second:02} is not 00–59"));
        }
        let days = days_from_civil(year as i64, month, day);
        let secs = days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second);
        Ok(EventTime { secs, nanos })
    }

    /// The current time.
    pub fn now() -> EventTime {
        let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        EventTime { secs: since.as_secs() as i64, nanos: since.subsec_nanos() }
    }

    /// An instant from seconds and nanoseconds since the Unix epoch (nanoseconds are capped).
    pub fn from_unix(secs: i64, nanos: u32) -> EventTime {
        EventTime { secs, nanos: nanos.min(999_999_999) }
    }

    /// Whole seconds since the Unix epoch.
    pub fn unix_seconds(self) -> i64 {
        self.secs
    }

    /// Nanoseconds past [`EventTime::unix_seconds`].
    pub fn subsec_nanos(self) -> u32 {
        self.nanos
    }

    /// Milliseconds since the Unix epoch.
    pub fn unix_millis(self) -> i64 {
        self.secs * 1000 + i64::from(self.nanos / 1_000_000)
    }

    /// Formats as CloudTrail Lake SQL writes times: `YYYY-MM-DD HH:MM:SS` (whole seconds).
    pub fn to_sql_string(self) -> String {
        let (y, m, d, hh, mm, ss) = self.fields();
        format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02}")
    }

    fn fields(self) -> (i64, u32, u32, i64, i64, i64) {
        let days = self.secs.div_euclid(86_400);
        let rem = self.secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        (y, m, d, rem / 3600, rem % 3600 / 60, rem % 60)
    }
}

/// RFC 3339 in UTC with a `Z`; milliseconds are printed only when present.
impl fmt::Display for EventTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d, hh, mm, ss) = self.fields();
        write!(f, "{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}")?;
        if self.nanos != 0 {
            write!(f, ".{:03}", self.nanos / 1_000_000)?;
        }
        f.write_str("Z")
    }
}

fn is_leap(year: u32) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests;
