//! Numbers: a fast, exact float parser for exposition values and Python's float
//! formatting for Datadog's bound and quantile tags.
//!
//! [`parse_f64`] accepts what Rust's `f64::from_str` accepts (decimal and scientific
//! notation, `Inf`/`Infinity`/`NaN` in any case, with an optional sign), which is the
//! number syntax of the [Prometheus text format] and of [OpenMetrics]. Plain integers and
//! short decimals take an exact fast path (Clinger's: a mantissa below 2^53 scaled by an
//! exact power of ten), everything else goes to the standard library.
//!
//! [`format_py_float`] writes a float exactly as CPython's `str(float(x) or 0)` does, the
//! expression Datadog's OpenMetrics check uses for `upper_bound:`, `lower_bound:` and
//! `quantile:` tags: `0.005`, `1.0`, `1000000.0`, `1e-05`, `1e+16`, `0`, `inf`.
//!
//! ```
//! use meshmon_prom::float::{format_py_float, parse_f64};
//! assert_eq!(parse_f64("1e+06"), Some(1e6));
//! assert_eq!(format_py_float(1e6), "1000000.0");
//! assert_eq!(format_py_float(0.00001), "1e-05");
//! assert_eq!(format_py_float(-0.0), "0");
//! ```
//!
//! [Prometheus text format]: https://prometheus.io/docs/instrumenting/exposition_formats/#text-format-details
//! [OpenMetrics]: https://github.com/prometheus/OpenMetrics/blob/main/specification/OpenMetrics.md#numbers

use std::fmt::Write as _;

/// Exact powers of ten representable as `f64` (Clinger's fast path).
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Parses a number token (no surrounding whitespace). Returns `None` when the token is
/// not a number; underscores, hex and other radix prefixes are not numbers.
#[inline]
pub fn parse_f64(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    if let Some(v) = fast_path(b) {
        return Some(v);
    }
    slow_path(s)
}

#[inline]
fn fast_path(b: &[u8]) -> Option<f64> {
    let (neg, mut i) = match b.first()? {
        b'-' => (true, 1),
        b'+' => (false, 1),
        _ => (false, 0),
    };
    let start = i;
    let mut mant: u64 = 0;
    let mut digits = 0usize;
    while i < b.len() && b[i].is_ascii_digit() {
        mant = mant.wrapping_mul(10).wrapping_add(u64::from(b[i] - b'0'));
        if mant != 0 {
            digits += 1;
        }
        i += 1;
    }
    let int_end = i;
    let mut frac = 0usize;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            mant = mant.wrapping_mul(10).wrapping_add(u64::from(b[i] - b'0'));
            if mant != 0 {
                digits += 1;
            }
            frac += 1;
            i += 1;
        }
    }
    // Need at least one digit, no exponent or other trailing text, few enough digits
    // that the mantissa is exact.
    if i != b.len() || (int_end == start && frac == 0) || digits > 15 || frac > 22 {
        return None;
    }
    if int_end == start && i == start + 1 {
        return None; // just "."
    }
    let v = mant as f64 / POW10[frac];
    Some(if neg { -v } else { v })
}

#[cold]
fn slow_path(s: &str) -> Option<f64> {
    // Rust accepts "inf", "infinity", "nan" (any case, optional sign) and decimal or
    // scientific notation; it rejects "_", hex and radix prefixes, like OpenMetrics.
    let b = s.as_bytes();
    if b.is_empty() {
        return None;
    }
    s.parse::<f64>().ok()
}

/// Parses a signed decimal integer (the text format's millisecond timestamps).
#[inline]
pub fn parse_i64(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let (neg, digits) = match b.first()? {
        b'-' => (true, &b[1..]),
        b'+' => (false, &b[1..]),
        _ => (false, b),
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut v: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(i64::from(c - b'0'))?;
    }
    Some(if neg { -v } else { v })
}

/// Writes `x` as CPython's `str(float(x) or 0)`: zero (either sign) is `0`, infinities
/// are `inf`/`-inf`, NaN is `nan`; otherwise the shortest digits that round-trip, in
/// positional notation with at least one fractional digit when the decimal exponent is
/// in `-4..16`, else in scientific notation with a signed two-digit-minimum exponent.
pub fn format_py_float(x: f64) -> String {
    let mut out = String::with_capacity(24);
    write_py_float(&mut out, x);
    out
}

/// Appends the [`format_py_float`] text of `x` to `out` (no allocation when `out` has room).
pub fn write_py_float(out: &mut String, x: f64) {
    if x == 0.0 {
        out.push('0');
        return;
    }
    if x.is_nan() {
        out.push_str("nan");
        return;
    }
    if x.is_infinite() {
        out.push_str(if x > 0.0 { "inf" } else { "-inf" });
        return;
    }
    // Shortest round-trip digits and exponent from Rust's `{:e}` (same algorithm family
    // as CPython's repr: both print the shortest string that reads back exactly).
    let mut sci = String::with_capacity(32);
    let _ = write!(sci, "{:e}", x.abs());
    let (mant, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    if x < 0.0 {
        out.push('-');
    }
    let decpt = exp + 1; // position of the decimal point relative to the digits
    if (-3..=16).contains(&decpt) {
        if decpt <= 0 {
            out.push_str("0.");
            for _ in 0..(-decpt) {
                out.push('0');
            }
            out.push_str(&digits);
        } else {
            let d = decpt as usize;
            if digits.len() <= d {
                out.push_str(&digits);
                for _ in digits.len()..d {
                    out.push('0');
                }
                out.push_str(".0");
            } else {
                out.push_str(&digits[..d]);
                out.push('.');
                out.push_str(&digits[d..]);
            }
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let _ = write!(out, "{:02}", exp.abs());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_float_str() {
        // Each expected string is what CPython 3 prints for str(float(x) or 0).
        let cases: &[(f64, &str)] = &[
            (0.005, "0.005"),
            (1.0, "1.0"),
            (1e6, "1000000.0"),
            (3_600_000.0, "3600000.0"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (0.00011, "0.00011"),
            (1.1e-5, "1.1e-05"),
            (0.0, "0"),
            (-0.0, "0"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
            (0.1, "0.1"),
            (2.5, "2.5"),
            (-1.0, "-1.0"),
            (-0.25, "-0.25"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (123456789.0, "123456789.0"),
            (1e22, "1e+22"),
            (1e100, "1e+100"),
            (1.234_567_890_123_456_6e-7, "1.2345678901234566e-07"),
            (12_345_678_901_234_567.0, "1.2345678901234568e+16"),
            (0.30000000000000004, "0.30000000000000004"),
            (100000000000.0, "100000000000.0"),
            (99.99, "99.99"),
        ];
        for &(x, want) in cases {
            assert_eq!(format_py_float(x), want, "{x:?}");
        }
    }

    #[test]
    fn parse_numbers() {
        let ok: &[(&str, f64)] = &[
            ("1", 1.0),
            ("-1", -1.0),
            ("+1.5", 1.5),
            ("0.005", 0.005),
            ("1e+06", 1e6),
            ("1E-3", 1e-3),
            (".5", 0.5),
            ("5.", 5.0),
            ("3600000", 3_600_000.0),
            ("9223372036854775808", 9_223_372_036_854_775_808.0),
            ("0000000000000000000000000000000000000000001", 1.0),
            ("0.013300656000000001", 0.013_300_656_000_000_001),
            ("+Inf", f64::INFINITY),
            ("-Inf", f64::NEG_INFINITY),
            ("inf", f64::INFINITY),
        ];
        for &(s, want) in ok {
            assert_eq!(parse_f64(s), Some(want), "{s}");
            assert_eq!(parse_f64(s), s.parse::<f64>().ok(), "{s}");
        }
        assert!(parse_f64("NaN").is_some_and(f64::is_nan));
        for bad in [
            "", ".", "-", "1_2", "0x1", "0x1p-3", "1.1.1", "z", "1z", "0b1", "1 ",
        ] {
            assert_eq!(parse_f64(bad), None, "{bad}");
        }
    }

    #[test]
    fn fast_path_is_exact() {
        // A deterministic sweep of decimals: the fast path must agree with std bit for bit.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let int = x % 1_000_000_000;
            let frac = (x >> 32) % 1_000_000;
            let s = format!("{int}.{frac:06}");
            assert_eq!(
                parse_f64(&s).map(f64::to_bits),
                s.parse::<f64>().ok().map(f64::to_bits),
                "{s}"
            );
        }
    }

    #[test]
    fn integers() {
        assert_eq!(parse_i64("1395066363000"), Some(1_395_066_363_000));
        assert_eq!(parse_i64("-5"), Some(-5));
        assert_eq!(parse_i64("1.5"), None);
        assert_eq!(parse_i64(""), None);
        assert_eq!(parse_i64("99999999999999999999"), None);
    }
}
