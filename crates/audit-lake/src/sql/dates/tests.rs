use datafusion::{
    arrow::{array::Array, util::display::array_value_to_string},
    prelude::SessionContext,
};

use super::all;

fn context() -> SessionContext {
    let ctx = SessionContext::new();
    for function in all() {
        ctx.register_udf(function);
    }
    ctx
}

/// Each row's first column, as text (`NULL` for a null), or the error's message.
async fn column(sql: &str) -> Result<Vec<String>, String> {
    let frame = context().sql(sql).await.map_err(|e| e.to_string())?;
    let batches = frame.collect().await.map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for batch in batches {
        for row in 0..batch.num_rows() {
            let value = batch.column(0);
            out.push(if value.is_null(row) { "NULL".into() } else { array_value_to_string(value, row).unwrap() });
        }
    }
    Ok(out)
}

async fn one(sql: &str) -> String {
    let mut values = column(&format!("SELECT {sql}")).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    assert_eq!(values.len(), 1, "{sql}");
    values.remove(0)
}

/// Each expression's value, as text, is the one given.
async fn answers(cases: &[(&str, &str)]) {
    for (sql, expected) in cases {
        assert_eq!(one(sql).await, *expected, "{sql}");
    }
}

async fn error(sql: &str) -> String {
    column(&format!("SELECT {sql}")).await.expect_err(sql)
}

#[tokio::test]
async fn date_add_moves_timestamps_by_fixed_lengths_and_by_the_calendar() {
    let cases = [
        ("date_add('day', -7, TIMESTAMP '2024-07-12 10:55:00')", "2024-07-05T10:55:00"),
        ("date_add('hour', 30, TIMESTAMP '2024-07-12 10:55:00')", "2024-07-13T16:55:00"),
        ("date_add('millisecond', 1500, TIMESTAMP '2024-07-12 10:55:00')", "2024-07-12T10:55:01.500"),
        ("date_add('week', 1, TIMESTAMP '2024-12-30 00:00:00')", "2025-01-06T00:00:00"),
        // The calendar: the month's last day when the day does not exist in it.
        ("date_add('month', 1, TIMESTAMP '2024-01-31 08:00:00')", "2024-02-29T08:00:00"),
        ("date_add('month', -1, TIMESTAMP '2024-03-31 08:00:00')", "2024-02-29T08:00:00"),
        ("date_add('quarter', 1, TIMESTAMP '2024-11-30 00:00:00')", "2025-02-28T00:00:00"),
        ("date_add('year', 1, TIMESTAMP '2024-02-29 12:00:00')", "2025-02-28T12:00:00"),
        ("date_add('YEAR', -2, TIMESTAMP '1970-06-01 00:00:00.250')", "1968-06-01T00:00:00.250"),
        // A text is read as a timestamp, a date stays a date.
        ("date_add('minute', 5, '2024-07-12T10:55:00Z')", "2024-07-12T11:00:00"),
        ("date_add('day', 1, DATE '2024-02-28')", "2024-02-29"),
        ("date_add('month', 1, DATE '2024-01-31')", "2024-02-29"),
        ("date_add('day', CAST(NULL AS BIGINT), TIMESTAMP '2024-07-12 10:55:00')", "NULL"),
    ];
    answers(&cases).await;
    // Row by row, over a column of times and one of values.
    let rows = column(
        "SELECT date_add('day', n, t) FROM (VALUES (TIMESTAMP '2024-01-01 00:00:00', 1), \
         (TIMESTAMP '2024-01-31 00:00:00', -31), (NULL, 3)) AS v(t, n)",
    )
    .await
    .unwrap();
    assert_eq!(rows, ["2024-01-02T00:00:00", "2023-12-31T00:00:00", "NULL"]);
}

#[tokio::test]
async fn date_diff_counts_whole_units_as_trino_does() {
    let cases = [
        ("date_diff('hour', TIMESTAMP '2024-07-12 10:55:00', TIMESTAMP '2024-07-13 10:54:59')", "23"),
        ("date_diff('hour', TIMESTAMP '2024-07-13 10:54:59', TIMESTAMP '2024-07-12 10:55:00')", "-23"),
        ("date_diff('day', TIMESTAMP '2024-07-12 00:00:00', TIMESTAMP '2024-07-19 00:00:00')", "7"),
        ("date_diff('week', TIMESTAMP '2024-07-12 00:00:00', TIMESTAMP '2024-07-19 00:00:00')", "1"),
        ("date_diff('millisecond', '2024-07-12T10:55:00Z', '2024-07-12T10:55:00.123Z')", "123"),
        // A month is whole once adding it does not pass the second time.
        ("date_diff('month', TIMESTAMP '2024-01-31 00:00:00', TIMESTAMP '2024-02-29 00:00:00')", "1"),
        ("date_diff('month', TIMESTAMP '2024-01-15 00:00:00', TIMESTAMP '2024-02-14 23:59:59')", "0"),
        ("date_diff('month', TIMESTAMP '2024-03-15 00:00:00', TIMESTAMP '2024-01-16 00:00:00')", "-1"),
        ("date_diff('quarter', TIMESTAMP '2024-01-01 00:00:00', TIMESTAMP '2024-12-31 00:00:00')", "3"),
        ("date_diff('year', TIMESTAMP '2020-02-29 00:00:00', TIMESTAMP '2024-02-28 00:00:00')", "3"),
        ("date_diff('day', DATE '2024-01-01', DATE '2024-03-01')", "60"),
        ("date_diff('day', NULL, TIMESTAMP '2024-03-01 00:00:00')", "NULL"),
    ];
    answers(&cases).await;
}

#[tokio::test]
async fn iso_8601_texts_become_timestamps_and_dates() {
    let cases = [
        ("from_iso8601_timestamp('2024-07-12T10:55:00Z')", "2024-07-12T10:55:00"),
        ("from_iso8601_timestamp('2024-07-12T10:55:00.123+02:00')", "2024-07-12T08:55:00.123"),
        ("from_iso8601_timestamp('2024-07-12')", "2024-07-12T00:00:00"),
        ("from_iso8601_timestamp(NULL)", "NULL"),
        ("from_iso8601_date('2024-07-12')", "2024-07-12"),
    ];
    answers(&cases).await;
    // Compared with a timestamp column as CloudTrail Lake users compare eventTime.
    let rows = column(
        "SELECT t FROM (VALUES (TIMESTAMP '2024-07-12 10:00:00'), (TIMESTAMP '2024-07-12 12:00:00')) AS v(t) \
         WHERE t > from_iso8601_timestamp('2024-07-12T11:00:00Z')",
    )
    .await
    .unwrap();
    assert_eq!(rows, ["2024-07-12T12:00:00"]);
}

#[tokio::test]
async fn a_wrong_argument_is_named_with_what_to_write_instead() {
    let cases = [
        ("date_add('days', 1, TIMESTAMP '2024-07-12 10:55:00')", "\"days\" is not a unit; use one of millisecond"),
        ("date_diff('fortnight', TIMESTAMP '2024-07-12 10:55:00', now())", "\"fortnight\" is not a unit"),
        ("date_add('day', 1.5, TIMESTAMP '2024-07-12 10:55:00')", "the value must be an integer"),
        ("date_add('day', 1, 42)", "expected a timestamp, found Int64"),
        ("date_add('hour', 1, DATE '2024-07-12')", "a date moves by days, weeks, months, quarters or years"),
        ("date_add('day', 1)", "date_add takes 3 arguments; call it as date_add(unit, value, timestamp)"),
        ("date_add('year', 9999999, TIMESTAMP '2024-07-12 10:55:00')", "out of the range"),
        ("from_iso8601_timestamp('yesterday')", "\"yesterday\" is not an ISO 8601 timestamp"),
        ("from_iso8601_date('12/07/2024')", "\"12/07/2024\" is not an ISO 8601 date"),
    ];
    for (sql, expected) in cases {
        let message = error(sql).await;
        assert!(message.contains(expected), "{sql}: {message}");
    }
    let message = column("SELECT date_add(u, 1, now()) FROM (VALUES ('day'), ('hour')) AS v(u)")
        .await
        .expect_err("a column unit");
    assert!(message.contains("the unit must be a constant such as 'day'"), "{message}");
}

#[tokio::test]
async fn the_fields_of_a_time_read_as_trino_reads_them() {
    let at = "TIMESTAMP '2024-12-30 13:05:09.250'";
    let cases = [
        (format!("year({at})"), "2024"),
        (format!("quarter({at})"), "4"),
        (format!("month({at})"), "12"),
        // 2024-12-30 is a Monday in the ISO week 1 of 2025.
        (format!("week({at})"), "1"),
        (format!("week_of_year({at})"), "1"),
        (format!("year_of_week({at})"), "2025"),
        (format!("day({at})"), "30"),
        (format!("day_of_week({at})"), "1"),
        ("dow(TIMESTAMP '2024-12-29 00:00:00')".to_owned(), "7"),
        (format!("day_of_year({at})"), "365"),
        ("doy(DATE '2024-02-01')".to_owned(), "32"),
        (format!("hour({at})"), "13"),
        (format!("minute({at})"), "5"),
        (format!("second({at})"), "9"),
        (format!("millisecond({at})"), "250"),
        ("hour('2024-07-12T10:55:00+02:00')".to_owned(), "8"),
        ("hour(CAST(NULL AS TIMESTAMP))".to_owned(), "NULL"),
    ];
    let cases: Vec<(&str, &str)> = cases.iter().map(|(sql, value)| (sql.as_str(), *value)).collect();
    answers(&cases).await;
}

#[tokio::test]
async fn date_format_takes_trinos_specifiers_and_to_iso8601_writes_iso_text() {
    let at = "TIMESTAMP '2024-07-05 09:03:07.250'";
    let cases = [
        (format!("date_format({at}, '%Y-%m-%d %H:%i:%s')"), "2024-07-05 09:03:07"),
        (format!("date_format({at}, '%W %e %M %Y, %l:%i %p')"), "Friday 5 July 2024, 9:03 AM"),
        (format!("date_format({at}, '%a %b %c/%d %T.%f %j %y 100%%')"), "Fri Jul 7/05 09:03:07.250000 187 24 100%"),
        (format!("date_format({at}, '%r|%h|%k|%w')"), "09:03:07 AM|09|9|5"),
        (format!("to_iso8601({at})"), "2024-07-05T09:03:07.250"),
        ("to_iso8601(DATE '2024-07-05')".to_owned(), "2024-07-05"),
        ("date_format(CAST(NULL AS TIMESTAMP), '%Y')".to_owned(), "NULL"),
    ];
    let cases: Vec<(&str, &str)> = cases.iter().map(|(sql, value)| (sql.as_str(), *value)).collect();
    answers(&cases).await;
    for (sql, expected) in [
        ("date_format(now(), '%Y-%Q')", "%Q is not a specifier Trino supports"),
        ("date_format(now(), '100%')", "ends with a lone %"),
        ("hour(42)", "hour: expected a timestamp, found Int64"),
        ("to_iso8601()", "to_iso8601: wrong number of arguments"),
    ] {
        let message = error(sql).await;
        assert!(message.contains(expected), "{sql}: {message}");
    }
}
