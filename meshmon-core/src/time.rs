//! Time as the hot paths carry it, and the one place human date-times are read.
//!
//! - [`Timestamp`]: nanoseconds since the Unix epoch. Library crates never read a
//!   clock; callers pass a [`Timestamp`] in.
//! - [`parse_rfc3339`] (strict [RFC 3339] `date-time`) and [`parse_datetime`] (the
//!   lenient ISO 8601 profile log files and data sets use: a space instead of `T`, no
//!   offset meaning UTC): the date-time parsers every meshmon crate uses, with the
//!   calendar checked (`2024-02-31` and `2023-02-29` are errors, not March dates).
//! - [`days_from_civil`] / [`civil_from_days`]: the proleptic Gregorian calendar
//!   (H. Hinnant's algorithms, <https://howardhinnant.github.io/date_algorithms.html>).
//! - [`format_rfc3339`]: the inverse of [`parse_rfc3339`], in UTC.
//!
//! Subtracting timestamps is explicit about what happens when the result is negative:
//! [`Timestamp::checked_since`] returns `None`, [`Timestamp::saturating_since`] returns
//! zero, [`Timestamp::nanos_since`] returns signed nanoseconds. There is no `-`
//! operator between timestamps, because any single choice would hide the other cases.
//!
//! ```
//! use std::time::Duration;
//! use meshmon_core::Timestamp;
//! use meshmon_core::time::{TimeError, parse_rfc3339, format_rfc3339};
//!
//! let t = Timestamp::from_millis(1_500);
//! assert_eq!(t.as_nanos(), 1_500_000_000);
//! assert_eq!(t.as_secs_f64(), 1.5);
//! assert_eq!(Timestamp::from_secs(2).checked_since(t), Some(Duration::from_millis(500)));
//! assert_eq!(t.checked_since(Timestamp::from_secs(2)), None);
//!
//! let t = parse_rfc3339("2024-02-29T12:00:00.25+01:00")?;
//! assert_eq!(format_rfc3339(t), "2024-02-29T11:00:00.25Z");
//! assert!(matches!(parse_rfc3339("2024-02-30T00:00:00Z"), Err(TimeError::InvalidDate { .. })));
//! # Ok::<(), TimeError>(())
//! ```
//!
//! [RFC 3339]: https://www.rfc-editor.org/rfc/rfc3339#section-5.6

use std::time::Duration;

/// Nanoseconds since the Unix epoch (1970-01-01T00:00:00Z). Negative values are before
/// the epoch; `i64` covers the years 1677 to 2262.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The epoch itself.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// From nanoseconds.
    pub const fn from_nanos(ns: i64) -> Self {
        Self(ns)
    }

    /// From microseconds (saturating).
    pub const fn from_micros(us: i64) -> Self {
        Self(us.saturating_mul(1_000))
    }

    /// From milliseconds (saturating), the unit of Prometheus timestamps.
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms.saturating_mul(1_000_000))
    }

    /// From whole seconds (saturating).
    pub const fn from_secs(s: i64) -> Self {
        Self(s.saturating_mul(1_000_000_000))
    }

    /// From fractional seconds; `None` for NaN or values outside the representable range.
    pub fn from_secs_f64(s: f64) -> Option<Self> {
        let ns = (s * 1e9).round();
        // i64::MAX as f64 rounds up to 2^63, which is out of range: compare strictly.
        if ns.is_finite() && ns >= i64::MIN as f64 && ns < i64::MAX as f64 {
            Some(Self(ns as i64))
        } else {
            None
        }
    }

    /// Nanoseconds since the epoch.
    pub const fn as_nanos(self) -> i64 {
        self.0
    }

    /// Milliseconds since the epoch (floor).
    pub const fn as_millis(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }

    /// Whole seconds since the epoch (floor).
    pub const fn as_secs(self) -> i64 {
        self.0.div_euclid(1_000_000_000)
    }

    /// Seconds since the epoch as a float.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }

    /// `self + d`, or `None` past the year 2262.
    pub fn checked_add(self, d: Duration) -> Option<Self> {
        let ns = i64::try_from(d.as_nanos()).ok()?;
        self.0.checked_add(ns).map(Self)
    }

    /// `self - d`, or `None` before the year 1677.
    pub fn checked_sub(self, d: Duration) -> Option<Self> {
        let ns = i64::try_from(d.as_nanos()).ok()?;
        self.0.checked_sub(ns).map(Self)
    }

    /// `self + d`, saturating at the largest timestamp.
    pub fn saturating_add(self, d: Duration) -> Self {
        let ns = i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        Self(self.0.saturating_add(ns))
    }

    /// `self - d`, saturating at the smallest timestamp.
    pub fn saturating_sub(self, d: Duration) -> Self {
        let ns = i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        Self(self.0.saturating_sub(ns))
    }

    /// The duration from `earlier` to `self`, or `None` if `earlier` is later than
    /// `self`.
    pub fn checked_since(self, earlier: Timestamp) -> Option<Duration> {
        // i64 - i64 always fits in i128, and a non-negative difference in u64.
        let d = i128::from(self.0) - i128::from(earlier.0);
        u64::try_from(d).ok().map(Duration::from_nanos)
    }

    /// The duration from `earlier` to `self`, or zero if `earlier` is later: for
    /// "how long ago" questions where clock skew must not go negative. Use
    /// [`checked_since`](Self::checked_since) when a negative gap is an error.
    pub fn saturating_since(self, earlier: Timestamp) -> Duration {
        self.checked_since(earlier).unwrap_or(Duration::ZERO)
    }

    /// Signed nanoseconds from `other` to `self` (negative when `other` is later),
    /// saturating at the `i64` range.
    pub fn nanos_since(self, other: Timestamp) -> i64 {
        self.0.saturating_sub(other.0)
    }
}

/// `self + d`, saturating (same as [`Timestamp::saturating_add`]); there is no
/// `Timestamp - Timestamp`: see the [module docs](self).
impl std::ops::Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, rhs: Duration) -> Timestamp {
        self.saturating_add(rhs)
    }
}

/// Why a date-time could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimeError {
    /// The text does not have the date-time shape.
    #[error("byte {at}: expected {expected}")]
    Syntax {
        /// Byte offset of the problem in the input.
        at: usize,
        /// What was expected there.
        expected: &'static str,
    },
    /// A field is outside its range (month 13, hour 24, minute 60, offset +24:00, …).
    #[error("{field} {value} out of range")]
    FieldRange {
        /// Which field (`month`, `hour`, `minute`, `second`, `offset hour`, …).
        field: &'static str,
        /// The value read.
        value: i64,
    },
    /// The day does not exist in that month of that year (`2024-02-30`, `2023-02-29`).
    #[error("{year:04}-{month:02}-{day:02} is not a calendar date")]
    InvalidDate {
        /// Year.
        year: i64,
        /// Month, 1 to 12.
        month: u32,
        /// Day as given.
        day: u32,
    },
    /// A valid date-time outside what a [`Timestamp`] holds (before 1677 or after 2262).
    #[error("date-time outside the representable range (years 1677 to 2262)")]
    OutOfRange,
}

/// Whether `year` is a leap year of the proleptic Gregorian calendar.
pub const fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// Days in `month` (1 to 12) of `year`; 0 for a month outside 1 to 12.
pub const fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date, or an error when the month or
/// the day does not exist (`2024-02-31`, month 0, day 0).
///
/// ```
/// use meshmon_core::time::days_from_civil;
/// assert_eq!(days_from_civil(1970, 1, 1), Ok(0));
/// assert_eq!(days_from_civil(2000, 3, 1), Ok(11_017));
/// assert!(days_from_civil(2024, 2, 31).is_err());
/// ```
pub fn days_from_civil(year: i64, month: u32, day: u32) -> Result<i64, TimeError> {
    if !(1..=12).contains(&month) {
        return Err(TimeError::FieldRange {
            field: "month",
            value: i64::from(month),
        });
    }
    if day == 0 || day > days_in_month(year, month) {
        return Err(TimeError::InvalidDate { year, month, day });
    }
    // Years this far out overflow the arithmetic below and no Timestamp can hold them.
    if !(-1_000_000_000..=1_000_000_000).contains(&year) {
        return Err(TimeError::OutOfRange);
    }
    let (m, d) = (i64::from(month), i64::from(day));
    let y = if m <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Ok(era * 146_097 + doe - 719_468)
}

/// The proleptic Gregorian `(year, month, day)` of a count of days since 1970-01-01;
/// the inverse of [`days_from_civil`].
///
/// ```
/// use meshmon_core::time::civil_from_days;
/// assert_eq!(civil_from_days(0), (1970, 1, 1));
/// assert_eq!(civil_from_days(-1), (1969, 12, 31));
/// ```
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    // d is in 1..=31 and m in 1..=12 by construction.
    (y, m as u32, d as u32)
}

/// How strict [`parse`] is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Profile {
    /// RFC 3339 `date-time`: `T`/`t` separator, offset required.
    Rfc3339,
    /// Also a space separator; no offset means UTC.
    Lenient,
}

/// Parses an [RFC 3339] `date-time`: `2024-05-01T12:00:00Z`,
/// `2024-05-01t12:00:00.123456789+02:00`. The date is checked against the calendar.
///
/// Details: fractions may have any number of digits (beyond nanoseconds they are
/// truncated); a leap second (`:60`) is read as the first second of the next minute,
/// as POSIX time does; `-00:00` is UTC.
///
/// ```
/// use meshmon_core::time::parse_rfc3339;
/// assert_eq!(parse_rfc3339("2016-04-15T20:17:00.310Z")?.as_millis(), 1_460_751_420_310);
/// assert_eq!(parse_rfc3339("1970-01-01T01:00:00+01:00")?.as_nanos(), 0);
/// assert!(parse_rfc3339("2024-05-01 12:00:00").is_err()); // see parse_datetime
/// # Ok::<(), meshmon_core::time::TimeError>(())
/// ```
///
/// [RFC 3339]: https://www.rfc-editor.org/rfc/rfc3339#section-5.6
pub fn parse_rfc3339(s: &str) -> Result<Timestamp, TimeError> {
    parse(s.as_bytes(), Profile::Rfc3339)
}

/// Parses the ISO 8601 date-times found in logs and data sets: RFC 3339, plus a space
/// instead of `T`, a `,` decimal sign, and no offset (read as UTC):
/// `2014-04-10 07:15:00.000000`, `2024-05-01T12:00:00`. The calendar is checked as in
/// [`parse_rfc3339`].
///
/// ```
/// use meshmon_core::time::parse_datetime;
/// assert_eq!(parse_datetime("1970-01-02 00:00:01")?.as_secs(), 86_401);
/// assert_eq!(parse_datetime("1970-01-01T00:00:00,5Z")?.as_millis(), 500);
/// assert!(parse_datetime("2023-02-29 00:00:00").is_err());
/// # Ok::<(), meshmon_core::time::TimeError>(())
/// ```
pub fn parse_datetime(s: &str) -> Result<Timestamp, TimeError> {
    parse(s.as_bytes(), Profile::Lenient)
}

fn parse(b: &[u8], profile: Profile) -> Result<Timestamp, TimeError> {
    let syntax = |at: usize, expected: &'static str| TimeError::Syntax { at, expected };
    let digits = |at: usize, n: usize| -> Result<i64, TimeError> {
        let d = b.get(at..at + n).ok_or(syntax(at, "a digit"))?;
        let mut v = 0i64;
        for (i, &c) in d.iter().enumerate() {
            if !c.is_ascii_digit() {
                return Err(syntax(at + i, "a digit"));
            }
            v = v * 10 + i64::from(c - b'0');
        }
        Ok(v)
    };
    let expect = |at: usize, what: &[u8], expected: &'static str| -> Result<(), TimeError> {
        match b.get(at) {
            Some(c) if what.contains(c) => Ok(()),
            _ => Err(syntax(at, expected)),
        }
    };
    let range = |field: &'static str, value: i64, max: i64| {
        if value > max {
            Err(TimeError::FieldRange { field, value })
        } else {
            Ok(value)
        }
    };

    let year = digits(0, 4)?;
    expect(4, b"-", "'-'")?;
    let month = digits(5, 2)?;
    expect(7, b"-", "'-'")?;
    let day = digits(8, 2)?;
    match profile {
        Profile::Rfc3339 => expect(10, b"Tt", "'T'")?,
        Profile::Lenient => expect(10, b"Tt ", "'T' or ' '")?,
    }
    let hour = range("hour", digits(11, 2)?, 23)?;
    expect(13, b":", "':'")?;
    let minute = range("minute", digits(14, 2)?, 59)?;
    expect(16, b":", "':'")?;
    let second = range("second", digits(17, 2)?, 60)?;
    // Month and day are at most 99 here; days_from_civil checks them.
    let days = days_from_civil(year, month as u32, day as u32)?;

    let mut i = 19;
    let mut nanos = 0i64;
    let decimal: &[u8] = match profile {
        Profile::Rfc3339 => b".",
        Profile::Lenient => b".,",
    };
    if b.get(i).is_some_and(|c| decimal.contains(c)) {
        i += 1;
        let start = i;
        while let Some(c) = b.get(i).filter(|c| c.is_ascii_digit()) {
            if i - start < 9 {
                nanos = nanos * 10 + i64::from(c - b'0');
            }
            i += 1;
        }
        if i == start {
            return Err(syntax(i, "a digit after the decimal sign"));
        }
        for _ in (i - start).min(9)..9 {
            nanos *= 10;
        }
    }

    let offset_secs = match b.get(i) {
        None if profile == Profile::Lenient => 0,
        Some(b'Z' | b'z') => {
            i += 1;
            0
        }
        Some(&sign @ (b'+' | b'-')) => {
            let h = range("offset hour", digits(i + 1, 2)?, 23)?;
            expect(i + 3, b":", "':' in the offset")?;
            let m = range("offset minute", digits(i + 4, 2)?, 59)?;
            i += 6;
            let o = h * 3600 + m * 60;
            if sign == b'+' { o } else { -o }
        }
        _ => return Err(syntax(i, "'Z' or an offset like '+02:00'")),
    };
    if i != b.len() {
        return Err(syntax(i, "the end of the date-time"));
    }

    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    secs.checked_mul(1_000_000_000)
        .and_then(|ns| ns.checked_add(nanos))
        .map(Timestamp)
        .ok_or(TimeError::OutOfRange)
}

/// Formats a timestamp as an RFC 3339 `date-time` in UTC, with as many fraction digits
/// as needed (none for whole seconds, at most 9): `2024-02-29T11:00:00.25Z`.
pub fn format_rfc3339(t: Timestamp) -> String {
    let secs = t.0.div_euclid(1_000_000_000);
    let nanos = t.0.rem_euclid(1_000_000_000);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let mut s = format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    );
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        assert_eq!(Timestamp::from_micros(3).as_nanos(), 3_000);
        assert_eq!(Timestamp::from_secs(-1).as_millis(), -1_000);
        assert_eq!(Timestamp::from_nanos(-1).as_secs(), -1);
        assert_eq!(
            Timestamp::from_secs_f64(1.25),
            Some(Timestamp(1_250_000_000))
        );
        assert_eq!(Timestamp::from_secs_f64(f64::NAN), None);
        assert_eq!(Timestamp::from_secs_f64(1e30), None);
        assert_eq!(Timestamp::from_millis(i64::MAX), Timestamp(i64::MAX));
    }

    #[test]
    fn differences_say_what_they_do_when_negative() {
        let t = Timestamp::from_secs(10);
        let early = Timestamp::from_secs(5);
        assert_eq!(early.checked_since(t), None);
        assert_eq!(early.saturating_since(t), Duration::ZERO);
        assert_eq!(early.nanos_since(t), -5_000_000_000);
        assert_eq!(t.checked_since(early), Some(Duration::from_secs(5)));
        // The full i64 span does not overflow.
        assert_eq!(
            Timestamp(i64::MAX).checked_since(Timestamp(i64::MIN)),
            Some(Duration::from_nanos(u64::MAX))
        );
        assert_eq!(Timestamp(i64::MAX).nanos_since(Timestamp(-1)), i64::MAX);
    }

    #[test]
    fn addition_saturates_or_checks() {
        let t = Timestamp::from_secs(10);
        assert_eq!(t + Duration::from_secs(1), Timestamp::from_secs(11));
        assert_eq!(
            Timestamp(i64::MAX) + Duration::from_secs(1),
            Timestamp(i64::MAX)
        );
        assert_eq!(
            Timestamp(i64::MAX).checked_add(Duration::from_nanos(1)),
            None
        );
        assert_eq!(
            Timestamp(i64::MIN).checked_sub(Duration::from_nanos(1)),
            None
        );
        assert_eq!(
            Timestamp(i64::MIN).saturating_sub(Duration::from_secs(1)),
            Timestamp(i64::MIN)
        );
        assert_eq!(
            t.checked_sub(Duration::from_secs(11)),
            Some(Timestamp::from_secs(-1))
        );
    }
}
