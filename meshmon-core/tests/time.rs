//! The date-time parser against an outside oracle: every expected value below was
//! produced by GNU coreutils `date -u -d <text> +%s%N` (seeded random date-times across
//! the representable range, with fractions and offsets), not by this code.

use meshmon_core::Timestamp;
use meshmon_core::time::{
    TimeError, civil_from_days, days_from_civil, format_rfc3339, parse_datetime, parse_rfc3339,
};

/// (RFC 3339 text, nanoseconds since the epoch according to GNU date)
const GNU_DATE: &[(&str, i64)] = &[
    ("1970-01-01T00:00:00Z", 0),
    ("2024-02-29T23:59:59Z", 1709251199000000000),
    ("1969-12-31T23:59:59.5Z", -500000000),
    ("2000-03-01T00:00:00+05:30", 951849000000000000),
    ("1900-03-01T00:00:00Z", -2203891200000000000),
    ("2100-02-28T12:00:00-08:00", 4107528000000000000),
    ("2262-04-11T23:47:16.854775807Z", 9223372036854775807),
    ("1677-09-21T00:12:44Z", -9223372036000000000),
    ("1970-01-01T00:00:00-23:59", 86340000000000),
    ("2016-04-15T20:17:00.310Z", 1460751420310000000),
    ("2152-10-12T08:08:11.5+00:00", 5768006891500000000),
    ("2245-10-23T01:46:24z", 8703683184000000000),
    ("1921-01-04T04:32:55.61-03:00", -1546014424390000000),
    ("2109-02-25T08:58:13-00:00", 4391225893000000000),
    ("1734-07-28T15:08:01Z", -7429395119000000000),
    ("1880-04-11T00:57:05+14:00", -2831461375000000000),
    ("2186-09-07T13:04:25z", 6837915865000000000),
    ("1720-01-09T17:43:38.90163-08:00", -7888486581098370000),
    ("2052-11-17T18:36:49.195736-00:00", 2615481409195736000),
    ("2014-01-14T03:13:14.144180-00:00", 1389669194144180000),
    ("2032-12-25T07:36:47+10:00", 1987537007000000000),
    ("2059-09-12T04:42:18z", 2830567338000000000),
    ("1947-03-04T19:09:00+00:00", -720420660000000000),
    ("1693-06-10T04:30:35-08:30", -8727303565000000000),
    ("1798-02-14T14:09:45.9249975z", -5423881814075002500),
    ("1764-03-25T07:54:00Z", -6493449960000000000),
    ("1855-09-16T18:16:34+10:00", -3606738206000000000),
    ("1994-09-17T17:41:58.413211770-11:00", 779863318413211770),
    ("1707-06-08T14:14:23.30991906z", -8285795136690080940),
    ("1712-10-25T05:05:04Z", -8115965696000000000),
    ("1755-06-03T10:00:29.672-00:00", -6771477570328000000),
    ("1810-04-08T03:07:03-05:00", -5040719577000000000),
    ("1702-08-21T16:12:23.30Z", -8437160856700000000),
    ("2127-05-20T00:06:33.4-09:00", 4966477593400000000),
    ("1738-11-09T04:19:02.604105-00:00", -7294218057395895000),
    ("2254-06-27T12:27:13-00:00", 8977523233000000000),
    ("2072-03-11T12:03:20z", 3224923400000000000),
    ("2051-11-05T20:05:21.3851086+07:00", 2582802321385108600),
    ("2192-02-15T22:00:18.1305z", 7009624818130500000),
    ("1776-09-27T12:41:53+14:45", -6098724187000000000),
];

#[test]
fn rfc3339_matches_gnu_date() {
    for &(text, ns) in GNU_DATE {
        assert_eq!(parse_rfc3339(text), Ok(Timestamp(ns)), "{text}");
        // The lenient profile reads every RFC 3339 date-time the same way.
        assert_eq!(parse_datetime(text), Ok(Timestamp(ns)), "{text}");
    }
}

#[test]
fn formatting_round_trips_through_the_oracle_values() {
    for &(text, ns) in GNU_DATE {
        let printed = format_rfc3339(Timestamp(ns));
        assert!(printed.ends_with('Z'), "{printed}");
        assert_eq!(
            parse_rfc3339(&printed),
            Ok(Timestamp(ns)),
            "{text} -> {printed}"
        );
    }
    assert_eq!(
        format_rfc3339(Timestamp(-500_000_000)),
        "1969-12-31T23:59:59.5Z"
    );
    assert_eq!(format_rfc3339(Timestamp(0)), "1970-01-01T00:00:00Z");
}

/// Dates GNU date also rejects as invalid.
#[test]
fn impossible_dates_are_errors() {
    for (text, (y, m, d)) in [
        ("2024-02-30T00:00:00Z", (2024, 2, 30)),
        ("2024-02-31T00:00:00Z", (2024, 2, 31)),
        ("2023-02-29T00:00:00Z", (2023, 2, 29)),
        ("1900-02-29T00:00:00Z", (1900, 2, 29)),
        ("2024-04-31T00:00:00Z", (2024, 4, 31)),
        ("2024-01-00T00:00:00Z", (2024, 1, 0)),
    ] {
        assert_eq!(
            parse_rfc3339(text),
            Err(TimeError::InvalidDate {
                year: y,
                month: m,
                day: d
            }),
            "{text}"
        );
        assert!(days_from_civil(y, m, d).is_err());
    }
    assert!(parse_rfc3339("2000-02-29T00:00:00Z").is_ok());
    assert!(matches!(
        parse_rfc3339("2024-13-01T00:00:00Z"),
        Err(TimeError::FieldRange {
            field: "month",
            value: 13
        })
    ));
}

#[test]
fn malformed_text_says_where() {
    let cases: &[(&str, usize)] = &[
        ("yesterday", 0),
        ("2024-05-01", 10),
        ("2024-05-01T12:00:00", 19),  // RFC 3339 requires an offset
        ("2024-05-01 12:00:00Z", 10), // and a T
        ("2024-05-01T12:00:00.Z", 20),
        ("2024-05-01T12:00:00+0200", 22),
        ("2024-05-01T12:00:00Z ", 20),
        ("2024-05-01T12:0a:00Z", 15),
        ("２０２４-05-01T12:00:00Z", 0),
    ];
    for &(text, at) in cases {
        match parse_rfc3339(text) {
            Err(TimeError::Syntax { at: got, .. }) => assert_eq!(got, at, "{text}"),
            other => panic!("{text}: {other:?}"),
        }
    }
    for (text, field) in [
        ("2024-05-01T24:00:00Z", "hour"),
        ("2024-05-01T12:60:00Z", "minute"),
        ("2024-05-01T12:00:61Z", "second"),
        ("2024-05-01T12:00:00+24:00", "offset hour"),
        ("2024-05-01T12:00:00+01:60", "offset minute"),
    ] {
        assert!(
            matches!(parse_rfc3339(text), Err(TimeError::FieldRange { field: f, .. }) if f == field),
            "{text}"
        );
    }
}

#[test]
fn lenient_profile() {
    let noon = parse_rfc3339("2024-05-01T12:00:00Z").unwrap();
    assert_eq!(parse_datetime("2024-05-01 12:00:00"), Ok(noon));
    assert_eq!(parse_datetime("2024-05-01T12:00:00"), Ok(noon));
    assert_eq!(parse_datetime("2024-05-01 12:00:00+00:00"), Ok(noon));
    assert_eq!(
        parse_datetime("2024-05-01 12:00:00,25"),
        Ok(Timestamp(noon.0 + 250_000_000))
    );
    // Digits past nanoseconds are truncated, not rounded.
    assert_eq!(
        parse_datetime("1970-01-01 00:00:00.1234567899"),
        Ok(Timestamp(123_456_789))
    );
    assert!(parse_datetime("2024-02-30 00:00:00").is_err());
}

#[test]
fn leap_second_is_the_next_minutes_first() {
    assert_eq!(
        parse_rfc3339("2016-12-31T23:59:60Z"),
        parse_rfc3339("2017-01-01T00:00:00Z")
    );
}

#[test]
fn outside_the_i64_range() {
    assert_eq!(
        parse_rfc3339("2262-04-11T23:47:16.854775808Z"),
        Err(TimeError::OutOfRange)
    );
    assert_eq!(
        parse_rfc3339("9999-12-31T23:59:59Z"),
        Err(TimeError::OutOfRange)
    );
    assert_eq!(
        parse_rfc3339("0000-01-01T00:00:00Z"),
        Err(TimeError::OutOfRange)
    );
}

#[test]
fn civil_round_trip_over_every_day_of_four_centuries() {
    // 1900-01-01 .. 2300-01-01 covers both kinds of century years.
    let (start, end) = (
        days_from_civil(1900, 1, 1).unwrap(),
        days_from_civil(2300, 1, 1).unwrap(),
    );
    assert_eq!(end - start, 146_097, "a 400-year Gregorian cycle");
    let mut prev = civil_from_days(start - 1);
    for day in start..end {
        let (y, m, d) = civil_from_days(day);
        assert_eq!(days_from_civil(y, m, d), Ok(day));
        // Successive days: the next day of the month, or the 1st of the next month.
        let next_ok = (y, m) == (prev.0, prev.1) && d == prev.2 + 1
            || d == 1 && ((y == prev.0 && m == prev.1 + 1) || (y == prev.0 + 1 && m == 1));
        assert!(next_ok, "{prev:?} -> {:?}", (y, m, d));
        prev = (y, m, d);
    }
}
