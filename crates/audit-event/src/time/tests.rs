use super::*;

#[test]
fn accepted_forms() {
    // (input, unix seconds, nanos)
    let cases = [
        ("2024-07-12T10:55:00Z", 1_720_781_700, 0),
        ("2024-07-12T10:55:00", 1_720_781_700, 0),
        ("2024-07-12T10:55:00+00:00", 1_720_781_700, 0),
        ("2024-07-12T10:55:00.5Z", 1_720_781_700, 500_000_000),
        ("2024-07-12T10:55:00.123456789Z", 1_720_781_700, 123_456_789),
        ("1970-01-01T00:00:00Z", 0, 0),
        ("2024-02-29T23:59:59Z", 1_709_251_199, 0),
        ("2000-02-29T00:00:00Z", 951_782_400, 0),
        ("9999-12-31T23:59:59Z", 253_402_300_799, 0),
    ];
    for (input, secs, nanos) in cases {
        let t = EventTime::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!((t.unix_seconds(), t.subsec_nanos()), (secs, nanos), "{input}");
    }
}

#[test]
fn refused_forms_say_why() {
    let cases = [
        ("202-07-12T10:55:00", "the year must have 4 digits, found 3 (\"202\")"),
        ("20245-07-12T10:55:00Z", "the year must have 4 digits, found 5 (\"20245\")"),
        ("", "it must start with a 4-digit year"),
        ("July 12, 2024", "it must start with a 4-digit year"),
        ("2024/07/12T10:55:00Z", "expected '-' after the year"),
        ("2024-7-12T10:55:00Z", "the month must have 2 digits"),
        ("2024-07-12", "the time of day is missing"),
        ("2024-07-12 10:55:00Z", "the date and time must be separated by an upper-case 'T'"),
        ("2024-07-12t10:55:00Z", "the date and time must be separated by an upper-case 'T'"),
        ("2024-07-12T10:55Z", "expected ':' after the minute"),
        ("2024-07-12T10:55:00z", "the UTC designator must be an upper-case 'Z'"),
        ("2024-07-12T10:55:00+02:00", "the offset \"+02:00\" is not UTC; convert the time to UTC and end it with 'Z'"),
        ("2024-07-12T10:55:00-05:00", "the offset \"-05:00\" is not UTC; convert the time to UTC and end it with 'Z'"),
        ("2024-07-12T10:55:00.Z", "the fraction of a second must have 1 to 9 digits"),
        ("2024-07-12T10:55:00.1234567890Z", "the fraction of a second must have 1 to 9 digits"),
        ("2024-07-12T10:55:00Z trailing", "unexpected \"Z trailing\" after the time"),
        ("2024-13-01T00:00:00Z", "the month 13 is not 01–12"),
        ("2024-00-01T00:00:00Z", "the month 00 is not 01–12"),
        ("2023-02-29T00:00:00Z", "day 29 does not exist in 2023-02"),
        ("1900-02-29T00:00:00Z", "the year 1900 is outside 1970–9999"),
        ("2024-04-31T00:00:00Z", "day 31 does not exist in 2024-04"),
        ("2024-07-00T00:00:00Z", "day 00 does not exist in 2024-07"),
        ("2024-07-12T24:00:00Z", "the hour 24 is not 00–23"),
        ("2024-07-12T10:60:00Z", "the minute 60 is not 00–59"),
        ("2024-07-12T10:55:60Z", "the second 60 is not 00–59"),
        ("1969-12-31T23:59:59Z", "the year 1969 is outside 1970–9999"),
        ("２０２４-07-12T10:55:00Z", "it must start with a 4-digit year"),
    ];
    for (input, why) in cases {
        match EventTime::parse(input) {
            Ok(t) => panic!("{input:?} was accepted as {t}"),
            Err(err) => assert_eq!(err.to_string(), why, "{input:?}"),
        }
    }
}

#[test]
fn display_round_trips() {
    for input in ["2024-07-12T10:55:00Z", "2024-07-12T10:55:00.123Z", "1970-01-01T00:00:00Z", "2000-02-29T23:59:59Z"] {
        let t = EventTime::parse(input).unwrap();
        assert_eq!(t.to_string(), input);
        assert_eq!(EventTime::parse(&t.to_string()).unwrap(), t);
    }
    assert_eq!(EventTime::parse("2024-07-12T10:55:09Z").unwrap().to_sql_string(), "2024-07-12 10:55:09");
}

#[test]
fn civil_conversion_matches_across_four_centuries() {
    // Every day from 1970 to 2400 converts both ways.
    for days in 0..(430 * 366) {
        let (y, m, d) = civil_from_days(days);
        assert_eq!(days_from_civil(y, m, d), days);
    }
}
