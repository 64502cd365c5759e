//! The line grammar, as nom parsers over `&str`.
//!
//! One exposition line is a sample, a metadata line (`# HELP`, `# TYPE`, `# UNIT`), a
//! comment, a blank line or `# EOF`. The structure is expressed with nom combinators;
//! the hot leaves (names, quoted label values, numbers) are hand-written byte loops and
//! `memchr` scans that plug into those combinators as ordinary nom parsers.
//!
//! Grammars implemented:
//! - Prometheus text format 0.0.4
//!   (<https://prometheus.io/docs/instrumenting/exposition_formats/#text-format-details>),
//!   lenient where Prometheus' own parser is: blanks between tokens, a trailing comma in
//!   a label set, free-form comments, blank lines.
//! - OpenMetrics 1.0 text ABNF
//!   (<https://github.com/prometheus/OpenMetrics/blob/main/specification/OpenMetrics.md#abnf>):
//!   single spaces, no trailing blanks, exemplars, float timestamps.

use nom::branch::alt;
use nom::bytes::complete::tag;
use nom::character::complete::char;
use nom::combinator::opt;
use nom::sequence::preceded;
use nom::{IResult, Parser as _};

use crate::Format;
use crate::error::ErrorKind;
use crate::float::{parse_f64, parse_i64};
use crate::sample::{Exemplar, Labels, MetricType, Sample};

/// A grammar error: where (the remaining input) and what.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct GErr<'a> {
    pub input: &'a str,
    pub kind: ErrorKind,
}

impl<'a> nom::error::ParseError<&'a str> for GErr<'a> {
    fn from_error_kind(input: &'a str, _kind: nom::error::ErrorKind) -> Self {
        Self {
            input,
            kind: ErrorKind::Expected("valid exposition syntax"),
        }
    }
    fn append(_: &'a str, _: nom::error::ErrorKind, other: Self) -> Self {
        other
    }
}

pub(crate) type Res<'a, T> = IResult<&'a str, T, GErr<'a>>;

#[inline]
fn fail<'a, T>(input: &'a str, what: &'static str) -> Res<'a, T> {
    Err(nom::Err::Error(GErr {
        input,
        kind: ErrorKind::Expected(what),
    }))
}

#[inline]
fn fail_kind<T>(input: &str, kind: ErrorKind) -> Res<'_, T> {
    Err(nom::Err::Error(GErr { input, kind }))
}

/// Expects `what` when `p` fails (nom's `context`, with a static message).
fn expect<'a, O>(
    mut p: impl nom::Parser<&'a str, Output = O, Error = GErr<'a>>,
    what: &'static str,
) -> impl FnMut(&'a str) -> Res<'a, O> {
    move |i| match p.parse(i) {
        Err(nom::Err::Error(_)) => fail(i, what),
        other => other,
    }
}

/// One classified line.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Line<'a> {
    /// A sample.
    Sample(Sample<'a>),
    /// `# HELP name text` (text still escaped).
    Help {
        /// Metric family name.
        name: &'a str,
        /// Docstring, escapes not decoded.
        text: &'a str,
    },
    /// `# TYPE name type`.
    Type {
        /// Metric family name.
        name: &'a str,
        /// The declared type.
        kind: MetricType,
    },
    /// `# UNIT name unit` (OpenMetrics).
    Unit {
        /// Metric family name.
        name: &'a str,
        /// The unit (may be empty).
        unit: &'a str,
    },
    /// A comment (Prometheus text only).
    Comment,
    /// An empty or blank line (Prometheus text only).
    Blank,
    /// `# EOF` (OpenMetrics).
    Eof,
}

/// Byte classes: bit 0 metric-name start, bit 1 metric-name char, bit 2 label-name
/// start, bit 3 label-name char.
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0usize;
    while c < 256 {
        let b = c as u8;
        let alpha = b.is_ascii_alphabetic();
        let digit = b.is_ascii_digit();
        let mut v = 0u8;
        if alpha || b == b'_' || b == b':' {
            v |= 1 | 2;
        }
        if digit {
            v |= 2 | 8;
        }
        if alpha || b == b'_' {
            v |= 4 | 8;
        }
        t[c] = v;
        c += 1;
    }
    t
};

#[inline(always)]
fn is_name_start(c: u8) -> bool {
    CLASS[c as usize] & 1 != 0
}
#[inline(always)]
fn is_name_char(c: u8) -> bool {
    CLASS[c as usize] & 2 != 0
}
#[inline(always)]
fn is_label_start(c: u8) -> bool {
    CLASS[c as usize] & 4 != 0
}
#[inline(always)]
fn is_blank(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

/// The end of the run of bytes of class `bit` starting at `n`: 8 bytes per step
/// (eight independent table loads, one branch), then bytewise.
#[inline(always)]
fn scan_class(b: &[u8], mut n: usize, bit: u8) -> usize {
    while n + 8 <= b.len() {
        let c = &b[n..n + 8];
        let all = CLASS[c[0] as usize]
            & CLASS[c[1] as usize]
            & CLASS[c[2] as usize]
            & CLASS[c[3] as usize]
            & CLASS[c[4] as usize]
            & CLASS[c[5] as usize]
            & CLASS[c[6] as usize]
            & CLASS[c[7] as usize];
        if all & bit == 0 {
            break;
        }
        n += 8;
    }
    while n < b.len() && CLASS[b[n] as usize] & bit != 0 {
        n += 1;
    }
    n
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
#[inline]
pub(crate) fn metric_name(i: &str) -> Res<'_, &str> {
    let b = i.as_bytes();
    if b.is_empty() || !is_name_start(b[0]) {
        return fail(i, "a metric name");
    }
    let n = scan_class(b, 1, 2);
    Ok((&i[n..], &i[..n]))
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`
#[inline]
fn label_name(i: &str) -> Res<'_, &str> {
    let b = i.as_bytes();
    if b.is_empty() || !is_label_start(b[0]) {
        return fail(i, "a label name");
    }
    let n = scan_class(b, 1, 8);
    Ok((&i[n..], &i[..n]))
}

/// The first `"` or `\\` at or after `from`: 8 bytes at a time (SWAR), the tail bytewise.
#[inline(always)]
fn find_quote_or_backslash(b: &[u8], from: usize) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut i = from;
    while i + 8 <= b.len() {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[i..i + 8]);
        let w = u64::from_le_bytes(w);
        let q = w ^ (LO * u64::from(b'"'));
        let s = w ^ (LO * u64::from(b'\\'));
        // The lowest set bit of `haszero` marks the first matching byte exactly.
        let hit = (q.wrapping_sub(LO) & !q & HI) | (s.wrapping_sub(LO) & !s & HI);
        if hit != 0 {
            return Some(i + (hit.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    while i < b.len() {
        if b[i] == b'"' || b[i] == b'\\' {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// `"…"` with backslash escapes; returns the text between the quotes.
#[inline]
fn quoted(i: &str) -> Res<'_, &str> {
    let b = i.as_bytes();
    if b.first() != Some(&b'"') {
        return fail(i, "'\"' opening a label value");
    }
    let mut j = 1;
    loop {
        match find_quote_or_backslash(b, j) {
            Some(p) => {
                if b[p] == b'\\' {
                    if p + 1 >= b.len() {
                        return fail(&i[p..], "an escaped character");
                    }
                    j = p + 2;
                } else {
                    return Ok((&i[p + 1..], &i[1..p]));
                }
            }
            None => return fail(i, "'\"' closing the label value"),
        }
    }
}

#[inline]
fn skip_blanks(i: &str) -> &str {
    let b = i.as_bytes();
    let mut n = 0;
    while n < b.len() && is_blank(b[n]) {
        n += 1;
    }
    &i[n..]
}

/// `a > b` for label names, inline (names are short; a `memcmp` call costs more).
#[inline(always)]
fn name_gt(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let n = a.len().min(b.len());
    let mut i = 0;
    while i < n {
        if a[i] != b[i] {
            return a[i] > b[i];
        }
        i += 1;
    }
    a.len() > b.len()
}

/// `{ label="value", … }`: validates the set (syntax, duplicate names) and returns it
/// as its raw inner text.
#[inline]
fn label_set<const OM: bool>(i: &str) -> Res<'_, Labels<'_>> {
    let inner = match i.strip_prefix('{') {
        Some(r) => r,
        None => return fail(i, "'{'"),
    };
    let mut rest = inner;
    if !OM {
        rest = skip_blanks(rest);
    }
    let mut count: u32 = 0;
    // Duplicate names: exporters write labels sorted, so while each name is greater
    // than the previous one there can be no duplicate; otherwise compare with the
    // names seen so far.
    let mut prev: &str = "";
    let mut names: [&str; 32] = [""; 32];
    if let Some(after) = rest.strip_prefix('}') {
        let raw = &inner[..inner.len() - rest.len()];
        return Ok((after, Labels::new(raw, 0)));
    }
    loop {
        let (r, name) = label_name(rest)?;
        if count > 0 && !name_gt(name, prev) {
            let dup = if (count as usize) <= names.len() {
                names[..count as usize].contains(&name)
            } else {
                Labels::new(&inner[..inner.len() - rest.len()], count)
                    .iter()
                    .any(|l| l.name == name)
            };
            if dup {
                return fail_kind(rest, ErrorKind::DuplicateLabel);
            }
        }
        if let Some(slot) = names.get_mut(count as usize) {
            *slot = name;
        }
        prev = name;
        let mut r = r;
        if !OM {
            r = skip_blanks(r);
        }
        let r = match r.strip_prefix('=') {
            Some(r) => r,
            None => return fail(r, "'=' after a label name"),
        };
        let r = if OM { r } else { skip_blanks(r) };
        let (r, _value) = quoted(r)?;
        count += 1;
        let r = if OM { r } else { skip_blanks(r) };
        match r.as_bytes().first() {
            Some(b',') => {
                rest = &r[1..];
                if !OM {
                    rest = skip_blanks(rest);
                    if let Some(after) = rest.strip_prefix('}') {
                        let raw = &inner[..inner.len() - rest.len()];
                        return Ok((after, Labels::new(raw, count)));
                    }
                }
            }
            Some(b'}') => {
                let raw = &inner[..inner.len() - r.len()];
                return Ok((&r[1..], Labels::new(raw, count)));
            }
            _ => return fail(r, "',' or '}' after a label value"),
        }
    }
}

/// A number token: up to the next separator (space in OpenMetrics, blank in text).
#[inline]
fn token<const OM: bool>(i: &str) -> (&str, &str) {
    let b = i.as_bytes();
    let n = if OM {
        memchr::memchr(b' ', b).unwrap_or(b.len())
    } else {
        let mut n = 0;
        while n < b.len() && !is_blank(b[n]) {
            n += 1;
        }
        n
    };
    (&i[n..], &i[..n])
}

#[inline]
fn value<const OM: bool>(i: &str) -> Res<'_, f64> {
    let (rest, tok) = token::<OM>(i);
    match parse_f64(tok) {
        Some(v) => Ok((rest, v)),
        None => fail(i, "a sample value (a number, NaN or ±Inf)"),
    }
}

/// Text format timestamp: integer milliseconds, returned in seconds.
#[inline]
fn text_timestamp(i: &str) -> Res<'_, f64> {
    let (rest, tok) = token::<false>(i);
    match parse_i64(tok) {
        Some(ms) => Ok((rest, ms as f64 / 1000.0)),
        None => fail(
            i,
            "a timestamp (integer milliseconds) or the end of the line",
        ),
    }
}

/// OpenMetrics timestamp: a finite number of seconds.
#[inline]
fn om_timestamp(i: &str) -> Res<'_, f64> {
    let (rest, tok) = token::<true>(i);
    match parse_f64(tok) {
        Some(v) if v.is_finite() => Ok((rest, v)),
        _ => fail(i, "a timestamp (a finite number of seconds)"),
    }
}

/// `# {labels} value [timestamp]` (OpenMetrics exemplar, after the sample).
fn exemplar(i: &str) -> Res<'_, Exemplar<'_>> {
    let (rest, (labels, value, timestamp)) = preceded(
        tag(" # "),
        (
            expect(label_set::<true>, "'{' opening the exemplar's label set"),
            expect(
                preceded(char(' '), value::<true>),
                "' ' and an exemplar value",
            ),
            opt(preceded(char(' '), om_timestamp)),
        ),
    )
    .parse(i)?;
    let chars: usize = labels
        .iter()
        .map(|l| l.name.len() + l.value.unescape().chars().count())
        .sum();
    if chars > 128 {
        return fail_kind(
            i,
            ErrorKind::Invalid("exemplar labels exceed 128 characters"),
        );
    }
    Ok((
        rest,
        Exemplar {
            labels,
            value,
            timestamp,
        },
    ))
}

/// A Prometheus text sample line (trailing `\r` already removed).
#[inline]
pub(crate) fn text_sample(line: &str) -> Res<'_, Sample<'_>> {
    let (r, name) = metric_name(line)?;
    let r = skip_blanks(r);
    let (r, labels) = if r.as_bytes().first() == Some(&b'{') {
        let (r, l) = label_set::<false>(r)?;
        (skip_blanks(r), l)
    } else {
        if r.len() == line.len() - name.len() && !r.is_empty() {
            return fail(r, "a blank or '{' after the metric name");
        }
        (r, Labels::default())
    };
    if r.is_empty() {
        return fail(r, "a sample value");
    }
    let (r, v) = value::<false>(r)?;
    let r = skip_blanks(r);
    let (r, ts) = if r.is_empty() {
        (r, None)
    } else {
        let (r, t) = text_timestamp(r)?;
        (skip_blanks(r), Some(t))
    };
    if !r.is_empty() {
        return fail(r, "the end of the line");
    }
    Ok((
        r,
        Sample {
            name,
            labels,
            value: v,
            timestamp: ts,
            exemplar: None,
        },
    ))
}

/// An OpenMetrics sample line.
#[inline]
pub(crate) fn om_sample(line: &str) -> Res<'_, Sample<'_>> {
    let (r, (name, labels, v)) = (
        metric_name,
        opt(label_set::<true>),
        expect(preceded(char(' '), value::<true>), "' ' and a sample value"),
    )
        .parse(line)?;
    let (r, ts) = if r.is_empty() || r.starts_with(" # ") {
        (r, None)
    } else {
        let (r, t) = expect(
            preceded(char(' '), om_timestamp),
            "' # ', ' ' and a timestamp, or the end of the line",
        )(r)?;
        (r, Some(t))
    };
    let (r, ex) = if r.is_empty() {
        (r, None)
    } else {
        let (r, e) = expect(exemplar, "' # ' and an exemplar, or the end of the line")(r)?;
        (r, Some(e))
    };
    if !r.is_empty() {
        return fail(r, "the end of the line");
    }
    Ok((
        r,
        Sample {
            name,
            labels: labels.unwrap_or_default(),
            value: v,
            timestamp: ts,
            exemplar: ex,
        },
    ))
}

/// A Prometheus text `#` line: `# HELP`, `# TYPE` or a comment.
fn text_comment(line: &str) -> Res<'_, Line<'_>> {
    // `#` must stand alone as the first word (Python's `line.split(None, 3)`).
    let r = &line[1..];
    if !r.is_empty() && !is_blank(r.as_bytes()[0]) {
        return Ok(("", Line::Comment));
    }
    let r = skip_blanks(r);
    let kw: Res<'_, &str> = alt((tag("HELP"), tag("TYPE"))).parse(r);
    let Ok((r, kw)) = kw else {
        return Ok(("", Line::Comment));
    };
    if !r.is_empty() && !is_blank(r.as_bytes()[0]) {
        return Ok(("", Line::Comment)); // e.g. "# HELPER"
    }
    let r = skip_blanks(r);
    let (r, name) = metric_name(r)?;
    if !r.is_empty() && !is_blank(r.as_bytes()[0]) {
        return fail(r, "a blank after the metric name");
    }
    let rest = skip_blanks(r);
    if kw == "HELP" {
        Ok(("", Line::Help { name, text: rest }))
    } else {
        let t = rest.trim_end_matches([' ', '\t']);
        match MetricType::parse(t, Format::PrometheusText) {
            Some(kind) => Ok(("", Line::Type { name, kind })),
            None => fail_kind(rest, ErrorKind::UnknownType),
        }
    }
}

/// An OpenMetrics `#` line: `# HELP`, `# TYPE`, `# UNIT` or `# EOF`; nothing else.
fn om_comment(line: &str) -> Res<'_, Line<'_>> {
    if line == "# EOF" {
        return Ok(("", Line::Eof));
    }
    let (r, kw) = expect(
        preceded(tag("# "), alt((tag("HELP"), tag("TYPE"), tag("UNIT")))),
        "'# HELP', '# TYPE', '# UNIT' or '# EOF'",
    )(line)?;
    let (r, name) = expect(preceded(char(' '), metric_name), "' ' and a metric name")(r)?;
    let (rest, _) = expect(char(' '), "' ' after the metric name")(r)?;
    match kw {
        "HELP" => Ok(("", Line::Help { name, text: rest })),
        "UNIT" => {
            if rest.bytes().all(is_name_char) {
                Ok(("", Line::Unit { name, unit: rest }))
            } else {
                fail(rest, "a unit ([a-zA-Z0-9_:]*)")
            }
        }
        _ => match MetricType::parse(rest, Format::OpenMetrics) {
            Some(kind) => Ok(("", Line::Type { name, kind })),
            None => fail_kind(rest, ErrorKind::UnknownType),
        },
    }
}

/// Classifies and parses one Prometheus text line (no `\n`).
#[inline]
pub(crate) fn text_line(line: &str) -> Result<Line<'_>, GErr<'_>> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let res = match line.as_bytes().first() {
        None => return Ok(Line::Blank),
        Some(c) if is_name_start(*c) => text_sample(line).map(|(_, s)| Line::Sample(s)),
        Some(b'#') => text_comment(line).map(|(_, l)| l),
        Some(_) => {
            let t = skip_blanks(line);
            match t.as_bytes().first() {
                None => return Ok(Line::Blank),
                Some(b'#') => text_comment(t).map(|(_, l)| l),
                Some(_) => text_sample(t).map(|(_, s)| Line::Sample(s)),
            }
        }
    };
    res.map_err(unwrap_err)
}

/// Classifies and parses one OpenMetrics line (no `\n`).
#[inline]
pub(crate) fn om_line(line: &str) -> Result<Line<'_>, GErr<'_>> {
    let res = match line.as_bytes().first() {
        None => {
            return Err(GErr {
                input: line,
                kind: ErrorKind::Invalid("blank lines are not allowed in OpenMetrics"),
            });
        }
        Some(b'#') => om_comment(line).map(|(_, l)| l),
        Some(_) => om_sample(line).map(|(_, s)| Line::Sample(s)),
    };
    res.map_err(unwrap_err)
}

fn unwrap_err(e: nom::Err<GErr<'_>>) -> GErr<'_> {
    match e {
        nom::Err::Error(e) | nom::Err::Failure(e) => e,
        nom::Err::Incomplete(_) => GErr {
            input: "",
            kind: ErrorKind::Expected("more input"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples() {
        let (_, s) = text_sample("a{b=\"c\",d=\"e\\\"f\",} 1.5 1000").unwrap();
        assert_eq!(s.name, "a");
        assert_eq!(s.labels.len(), 2);
        assert_eq!(s.value, 1.5);
        assert_eq!(s.timestamp, Some(1.0));
        assert_eq!(s.labels.get("d").unwrap().unescape(), "e\"f");
        let (_, s) = text_sample("name{} 1").unwrap();
        assert!(s.labels.is_empty());
        let (_, s) = text_sample("a\t{ b = \"c\" }  +Inf").unwrap();
        assert_eq!(s.value, f64::INFINITY);
        assert!(text_sample("a{b=\"c\",b=\"d\"} 1").is_err());
        assert!(text_sample("a 1 # {x=\"y\"} 1").is_err());
        let (_, s) = om_sample("a_total{a=\"b\"} 1 1.5 # {t=\"x\"} 2 3").unwrap();
        let e = s.exemplar.unwrap();
        assert_eq!((e.value, e.timestamp), (2.0, Some(3.0)));
        assert_eq!(s.timestamp, Some(1.5));
        assert!(om_sample("a{a=\"1\",} 1").is_err());
        assert!(om_sample("a  1").is_err());
    }

    #[test]
    fn comments() {
        assert_eq!(
            text_line("# TYPE a counter").unwrap(),
            Line::Type {
                name: "a",
                kind: MetricType::Counter
            }
        );
        assert_eq!(text_line("#HELP a b").unwrap(), Line::Comment);
        assert_eq!(text_line("  ").unwrap(), Line::Blank);
        assert!(text_line("# TYPE a meh").is_err());
        assert_eq!(
            om_line("# UNIT a_s s").unwrap(),
            Line::Unit {
                name: "a_s",
                unit: "s"
            }
        );
        assert!(om_line("# HELP a").is_err());
        assert!(om_line("# random comment here").is_err());
    }
}
