//! The semantics layer: lines grouped into metric families, with the validity rules of
//! each format.
//!
//! Grouping follows the reference parsers Datadog's check runs on: a `# HELP`/`# TYPE`
//! line opens a family; a sample joins the current family when its name is one the
//! family's type allows (`_bucket`/`_sum`/`_count` for a histogram, …) and otherwise
//! opens an untyped (`unknown` in OpenMetrics) family of its own. A family may have
//! metadata and no samples.
//!
//! In [`Format::OpenMetrics`] the specification's rules are enforced
//! (<https://github.com/prometheus/OpenMetrics/blob/main/specification/OpenMetrics.md>):
//! `# EOF` last, no metadata after samples or repeated, no clashing family names,
//! `UNIT` a suffix of the name, contiguous label groups with non-decreasing timestamps,
//! counter-like values neither negative nor NaN, integer bucket and count values,
//! canonical `le`/`quantile`, histogram bucket order, `+Inf` bucket and `_count`/`_sum`
//! consistency, `info` = 1, `stateset` ∈ {0, 1}, exemplars only on buckets and
//! `_total`.

use std::collections::HashSet;

use crate::Format;
use crate::error::{ErrorKind, ParseError};
use crate::float::parse_f64;
use crate::grammar::{self, GErr, Line};
use crate::sample::{Labels, MetricType, Sample};

/// Parser options: limits (hitting one is an error of kind [`ErrorKind::Limit`]) and
/// how strictly OpenMetrics' family rules are enforced. Start from
/// [`ParseOptions::default`] and use the `with_*` setters (the limits are validated).
///
/// ```
/// use meshmon_prom::{LimitsError, ParseOptions};
/// let lenient = ParseOptions::default().with_strict(false).with_max_line_bytes(4096)?;
/// assert!(!lenient.strict);
/// assert_eq!(ParseOptions::default().with_max_family_samples(0), Err(LimitsError::Zero("max_family_samples")));
/// # Ok::<(), LimitsError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ParseOptions {
    /// Enforce OpenMetrics' value and family rules (default `true`). With `false`, an
    /// OpenMetrics exposition is still checked for syntax, metadata placement and
    /// `# EOF`, but not for value rules such as "a histogram with negative buckets has
    /// no `_sum`", which some real exporters (Prometheus' own Go client among them)
    /// break.
    pub strict: bool,
    /// Longest accepted line, in bytes (default 1 MiB).
    pub max_line_bytes: usize,
    /// Most samples in one family (default 10,000,000), which bounds the parser's
    /// buffer.
    pub max_family_samples: usize,
}

impl Default for ParseOptions {
    fn default() -> Self {
        Self {
            strict: true,
            max_line_bytes: 1 << 20,
            max_family_samples: 10_000_000,
        }
    }
}

impl ParseOptions {
    /// Enforces OpenMetrics' value and family rules, or not.
    #[must_use]
    pub fn with_strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// Refuses lines longer than `max_line_bytes` (at least 1).
    pub fn with_max_line_bytes(
        mut self,
        max_line_bytes: usize,
    ) -> Result<Self, crate::mapping::LimitsError> {
        self.max_line_bytes = max_line_bytes;
        self.validate()?;
        Ok(self)
    }

    /// Refuses families with more than `max_family_samples` samples (at least 1).
    pub fn with_max_family_samples(
        mut self,
        max_family_samples: usize,
    ) -> Result<Self, crate::mapping::LimitsError> {
        self.max_family_samples = max_family_samples;
        self.validate()?;
        Ok(self)
    }

    /// Checks the limits (for callers who set the public fields directly).
    pub fn validate(&self) -> Result<(), crate::mapping::LimitsError> {
        use crate::mapping::LimitsError;
        if self.max_line_bytes == 0 {
            return Err(LimitsError::Zero("max_line_bytes"));
        }
        if self.max_family_samples == 0 {
            return Err(LimitsError::Zero("max_family_samples"));
        }
        Ok(())
    }
}

/// A metric family: its metadata and its samples, borrowed from the input and from the
/// parser's reusable sample buffer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Family<'p, 'a> {
    /// The family name (as declared by `# TYPE`/`# HELP`, or the first sample's name).
    pub name: &'a str,
    /// The declared type, or `untyped` (text) / `unknown` (OpenMetrics) when none.
    pub kind: MetricType,
    /// The `# HELP` text, escapes not decoded.
    pub help: Option<&'a str>,
    /// The `# UNIT` (OpenMetrics).
    pub unit: Option<&'a str>,
    /// The samples, in input order.
    pub samples: &'p [Sample<'a>],
}

/// Streams the families of one exposition, one at a time, reusing one sample buffer:
/// nothing is allocated per sample, and at most one family is held.
///
/// ```
/// use meshmon_prom::{Format, MetricType, Parser};
/// let text = b"# TYPE rq counter\nrq{code=\"200\"} 10\nrq{code=\"500\"} 1\nup 1\n";
/// let mut p = Parser::new(text, Format::PrometheusText);
/// let rq = p.next_family().unwrap()?;
/// assert_eq!((rq.name, rq.kind, rq.samples.len()), ("rq", MetricType::Counter, 2));
/// let up = p.next_family().unwrap()?;
/// assert_eq!((up.name, up.kind), ("up", MetricType::Untyped));
/// assert!(p.next_family().is_none());
/// # Ok::<(), meshmon_prom::ParseError>(())
/// ```
#[derive(Debug)]
pub struct Parser<'a> {
    bytes: &'a [u8],
    input: &'a str,
    utf8_error: Option<usize>,
    pos: usize,
    format: Format,
    limits: ParseOptions,
    pending: Option<(usize, Line<'a>)>,
    samples: Vec<Sample<'a>>,
    done: bool,
    eof_seen: bool,
    seen_names: HashSet<u64>,
    seen_groups: HashSet<u64>,
    total_samples: usize,
}

struct Cur<'a> {
    name: &'a str,
    kind: Option<MetricType>,
    help: Option<&'a str>,
    unit: Option<&'a str>,
    start: usize,
    group: Option<u64>,
    group_ts: Option<f64>,
}

impl<'a> Parser<'a> {
    /// A parser over `input` in `format`, with default limits.
    pub fn new(input: &'a [u8], format: Format) -> Self {
        Self::with_options(input, format, ParseOptions::default())
    }

    /// A parser with explicit options.
    pub fn with_options(input: &'a [u8], format: Format, limits: ParseOptions) -> Self {
        let (text, utf8_error) = match std::str::from_utf8(input) {
            Ok(s) => (s, None),
            Err(e) => ("", Some(e.valid_up_to())),
        };
        Self {
            bytes: input,
            input: text,
            utf8_error,
            pos: 0,
            format,
            limits,
            pending: None,
            samples: Vec::new(),
            done: false,
            eof_seen: false,
            seen_names: HashSet::new(),
            seen_groups: HashSet::new(),
            total_samples: 0,
        }
    }

    /// The format being parsed.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Samples returned so far.
    pub fn samples_parsed(&self) -> usize {
        self.total_samples
    }

    fn err(&self, offset: usize, kind: ErrorKind) -> ParseError {
        ParseError::at(self.bytes, offset, kind)
    }

    fn gerr(&self, e: GErr<'_>) -> ParseError {
        let base = self.input.as_ptr() as usize;
        let at = (e.input.as_ptr() as usize).saturating_sub(base);
        self.err(at.min(self.input.len()), e.kind)
    }

    #[inline]
    fn next_line(&mut self) -> Option<Result<(usize, Line<'a>), ParseError>> {
        let input = self.input;
        if self.pos >= input.len() {
            return None;
        }
        let start = self.pos;
        let rest = &input.as_bytes()[start..];
        let (line, next) = match memchr::memchr(b'\n', rest) {
            Some(e) => (&input[start..start + e], start + e + 1),
            None => (&input[start..], input.len()),
        };
        self.pos = next;
        if line.len() > self.limits.max_line_bytes {
            return Some(Err(self.err(start, ErrorKind::Limit("max_line_bytes"))));
        }
        let parsed = match self.format {
            Format::PrometheusText => grammar::text_line(line),
            Format::OpenMetrics => grammar::om_line(line),
        };
        Some(parsed.map(|l| (start, l)).map_err(|e| self.gerr(e)))
    }

    fn fail(&mut self, e: ParseError) -> Option<Result<Family<'_, 'a>, ParseError>> {
        self.done = true;
        self.samples.clear();
        Some(Err(e))
    }

    /// The next family, or `None` at the end. After an error the parser is done.
    pub fn next_family(&mut self) -> Option<Result<Family<'_, 'a>, ParseError>> {
        if self.done {
            return None;
        }
        if let Some(at) = self.utf8_error {
            let e = self.err(at, ErrorKind::InvalidUtf8);
            return self.fail(e);
        }
        let om = self.format == Format::OpenMetrics;
        let strict = om && self.limits.strict;
        self.samples.clear();
        let mut cur: Option<Cur<'a>> = None;
        loop {
            let (off, line) = match self.pending.take() {
                Some(x) => x,
                None => match self.next_line() {
                    Some(Ok(x)) => x,
                    Some(Err(e)) => return self.fail(e),
                    None => break,
                },
            };
            match line {
                Line::Blank | Line::Comment => {}
                Line::Eof => {
                    self.eof_seen = true;
                    if self.pos < self.input.len() {
                        let e = self.err(self.pos, ErrorKind::TextAfterEof);
                        return self.fail(e);
                    }
                    break;
                }
                Line::Help { name, .. } | Line::Type { name, .. } | Line::Unit { name, .. } => {
                    match &mut cur {
                        Some(c) if c.name == name => {
                            if om && !self.samples.is_empty() {
                                let e = self.err(off, ErrorKind::Invalid("metadata after samples"));
                                return self.fail(e);
                            }
                            if let Err(k) = set_meta(c, line, om) {
                                let e = self.err(off, k);
                                return self.fail(e);
                            }
                        }
                        Some(_) => {
                            self.pending = Some((off, line));
                            break;
                        }
                        None => {
                            let mut c = Cur::new(name, off);
                            if let Err(k) = set_meta(&mut c, line, om) {
                                let e = self.err(off, k);
                                return self.fail(e);
                            }
                            cur = Some(c);
                        }
                    }
                }
                Line::Sample(s) => {
                    let c = match &mut cur {
                        Some(c) if allowed(c, s.name, om) => c,
                        Some(_) => {
                            self.pending = Some((off, line));
                            break;
                        }
                        None => cur.insert(Cur::new(s.name, off)),
                    };
                    if strict && let Err(k) = check_om_sample(c, &s, &mut self.seen_groups) {
                        let e = self.err(off, k);
                        return self.fail(e);
                    }
                    if self.samples.len() >= self.limits.max_family_samples {
                        let e = self.err(off, ErrorKind::Limit("max_family_samples"));
                        return self.fail(e);
                    }
                    self.samples.push(s);
                }
            }
        }
        let Some(c) = cur else {
            if om && !self.eof_seen {
                let e = self.err(self.input.len(), ErrorKind::MissingEof);
                return self.fail(e);
            }
            self.done = true;
            return None;
        };
        if om {
            if self.pending.is_none() && !self.eof_seen {
                let e = self.err(self.input.len(), ErrorKind::MissingEof);
                return self.fail(e);
            }
            if strict && let Err(k) = check_om_family(&c, &self.samples, &mut self.seen_names) {
                let e = self.err(c.start, k);
                return self.fail(e);
            }
            self.seen_groups.clear();
        }
        self.total_samples += self.samples.len();
        let kind = c.kind.unwrap_or(if om {
            MetricType::Unknown
        } else {
            MetricType::Untyped
        });
        Some(Ok(Family {
            name: c.name,
            kind,
            help: c.help,
            unit: c.unit,
            samples: &self.samples,
        }))
    }
}

impl<'a> Cur<'a> {
    fn new(name: &'a str, start: usize) -> Self {
        Self {
            name,
            kind: None,
            help: None,
            unit: None,
            start,
            group: None,
            group_ts: None,
        }
    }
}

fn set_meta<'a>(c: &mut Cur<'a>, line: Line<'a>, om: bool) -> Result<(), ErrorKind> {
    match line {
        Line::Help { text, .. } => {
            if om && c.help.is_some() {
                return Err(ErrorKind::Invalid("more than one HELP for a family"));
            }
            c.help = Some(text);
        }
        Line::Type { kind, .. } => {
            if om && c.kind.is_some() {
                return Err(ErrorKind::Invalid("more than one TYPE for a family"));
            }
            c.kind = Some(kind);
        }
        Line::Unit { unit, .. } => {
            if om && c.unit.is_some() {
                return Err(ErrorKind::Invalid("more than one UNIT for a family"));
            }
            c.unit = Some(unit);
        }
        _ => {}
    }
    Ok(())
}

/// Whether a sample named `name` belongs to family `c` (its type's suffixes).
#[inline]
fn allowed(c: &Cur<'_>, name: &str, om: bool) -> bool {
    let Some(suffix) = name.strip_prefix(c.name) else {
        return false;
    };
    let kind = c.kind.unwrap_or(MetricType::Untyped);
    if om {
        match kind {
            MetricType::Counter => matches!(suffix, "_total" | "_created"),
            MetricType::Summary => matches!(suffix, "" | "_count" | "_sum" | "_created"),
            MetricType::Histogram => matches!(suffix, "_count" | "_sum" | "_bucket" | "_created"),
            MetricType::GaugeHistogram => matches!(suffix, "_gcount" | "_gsum" | "_bucket"),
            MetricType::Info => suffix == "_info",
            _ => suffix.is_empty(),
        }
    } else {
        match kind {
            MetricType::Histogram => matches!(suffix, "_count" | "_sum" | "_bucket"),
            MetricType::Summary => matches!(suffix, "" | "_count" | "_sum"),
            _ => suffix.is_empty(),
        }
    }
}

#[inline]
fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

#[inline]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Order-independent hash of a label set without `skip`.
fn group_hash(labels: Labels<'_>, skip: Option<&str>) -> u64 {
    let mut acc: u64 = 0;
    for l in labels.iter() {
        if Some(l.name) == skip {
            continue;
        }
        let h = fnv(
            fnv(FNV_OFFSET, l.name.as_bytes()) ^ 0xff,
            l.value.raw().as_bytes(),
        );
        acc = acc.wrapping_add(mix(h));
    }
    acc
}

fn group_of(family: &str, kind: MetricType, s: &Sample<'_>) -> u64 {
    let skip = match kind {
        MetricType::Info => return 0,
        MetricType::Summary if s.name == family => Some("quantile"),
        MetricType::StateSet => Some(family),
        MetricType::Histogram | MetricType::GaugeHistogram
            if s.name.len() == family.len() + 7 && s.name.ends_with("_bucket") =>
        {
            Some("le")
        }
        _ => None,
    };
    group_hash(s.labels, skip)
}

/// An OpenMetrics canonical number: infinities only as `+Inf`/`-Inf`, no NaN.
fn canonical_number(s: &str) -> Option<f64> {
    let v = parse_f64(s)?;
    if v.is_nan() {
        return None;
    }
    if v.is_infinite() && s != "+Inf" && s != "-Inf" {
        return None;
    }
    Some(v)
}

fn is_integer(v: f64) -> bool {
    v.is_finite() && v.fract() == 0.0
}

fn check_om_sample(
    c: &mut Cur<'_>,
    s: &Sample<'_>,
    seen_groups: &mut HashSet<u64>,
) -> Result<(), ErrorKind> {
    let name = c.name;
    let kind = c.kind.unwrap_or(MetricType::Unknown);
    let suffix = &s.name[name.len()..];
    if kind == MetricType::StateSet && s.labels.get(name).is_none() {
        return Err(ErrorKind::Invalid(
            "stateset sample without the label named after its family",
        ));
    }
    if suffix == "_bucket" {
        match s.labels.get("le") {
            Some(le) if canonical_number(le.raw()).is_some() => {}
            _ => {
                return Err(ErrorKind::Invalid(
                    "bucket without a canonical numeric 'le' label",
                ));
            }
        }
        if !is_integer(s.value) {
            return Err(ErrorKind::Invalid("bucket value must be an integer"));
        }
    }
    if (suffix == "_count" || suffix == "_gcount") && !is_integer(s.value) {
        return Err(ErrorKind::Invalid("count value must be an integer"));
    }
    if kind == MetricType::Summary && suffix.is_empty() {
        match s
            .labels
            .get("quantile")
            .and_then(|q| canonical_number(q.raw()))
        {
            Some(q) if (0.0..=1.0).contains(&q) => {}
            _ => {
                return Err(ErrorKind::Invalid(
                    "summary quantile label must be a number in [0, 1]",
                ));
            }
        }
    }
    // Label groups are contiguous; within a group timestamps are all present or all
    // absent and never go backwards.
    let g = group_of(name, kind, s);
    match c.group {
        Some(cur) if cur == g => {
            if s.timestamp.is_none() != c.group_ts.is_none() {
                return Err(ErrorKind::Invalid(
                    "mix of samples with and without timestamps in a group",
                ));
            }
            if let (Some(prev), Some(t)) = (c.group_ts, s.timestamp)
                && prev > t
                && kind != MetricType::Info
            {
                return Err(ErrorKind::Invalid(
                    "timestamps went backwards within a group",
                ));
            }
        }
        Some(_) if seen_groups.contains(&g) => {
            return Err(ErrorKind::Invalid(
                "samples of one label group are not contiguous",
            ));
        }
        _ => {}
    }
    c.group = Some(g);
    c.group_ts = s.timestamp;
    seen_groups.insert(g);
    let v = s.value;
    if kind == MetricType::StateSet && v != 0.0 && v != 1.0 {
        return Err(ErrorKind::Invalid("stateset values must be 0 or 1"));
    }
    if kind == MetricType::Info && v != 1.0 {
        return Err(ErrorKind::Invalid("info values must be 1"));
    }
    if kind == MetricType::Summary && suffix.is_empty() && v < 0.0 {
        return Err(ErrorKind::Invalid("quantile values cannot be negative"));
    }
    let counter_like = matches!(
        suffix,
        "_total" | "_sum" | "_count" | "_bucket" | "_gcount" | "_gsum"
    );
    if counter_like && v.is_nan() {
        return Err(ErrorKind::Invalid("counter-like values cannot be NaN"));
    }
    if counter_like && suffix != "_gsum" && v < 0.0 {
        return Err(ErrorKind::Invalid("counter-like values cannot be negative"));
    }
    if s.exemplar.is_some() {
        let ok = (matches!(kind, MetricType::Histogram | MetricType::GaugeHistogram)
            && suffix == "_bucket")
            || (kind == MetricType::Counter && suffix == "_total");
        if !ok {
            return Err(ErrorKind::Invalid(
                "exemplars are only allowed on buckets and counter totals",
            ));
        }
    }
    Ok(())
}

fn type_suffixes(kind: MetricType) -> &'static [&'static str] {
    match kind {
        MetricType::Counter => &["", "_total", "_created"],
        MetricType::Summary => &["", "_count", "_sum", "_created"],
        MetricType::Histogram => &["", "_count", "_sum", "_bucket", "_created"],
        MetricType::GaugeHistogram => &["", "_gcount", "_gsum", "_bucket"],
        MetricType::Info => &["", "_info"],
        _ => &[""],
    }
}

fn check_om_family(
    c: &Cur<'_>,
    samples: &[Sample<'_>],
    seen_names: &mut HashSet<u64>,
) -> Result<(), ErrorKind> {
    let kind = c.kind.unwrap_or(MetricType::Unknown);
    for suffix in type_suffixes(kind) {
        let h = fnv(fnv(FNV_OFFSET, c.name.as_bytes()), suffix.as_bytes());
        if !seen_names.insert(h) {
            return Err(ErrorKind::Invalid(
                "family name clashes with an earlier family",
            ));
        }
    }
    if let Some(unit) = c.unit.filter(|u| !u.is_empty()) {
        let ok = c.name.len() > unit.len()
            && c.name.ends_with(unit)
            && c.name.as_bytes()[c.name.len() - unit.len() - 1] == b'_';
        if !ok {
            return Err(ErrorKind::Invalid(
                "UNIT must be a suffix of the family name",
            ));
        }
        if matches!(kind, MetricType::Info | MetricType::StateSet) {
            return Err(ErrorKind::Invalid(
                "info and stateset families cannot have a UNIT",
            ));
        }
    }
    if matches!(kind, MetricType::Histogram | MetricType::GaugeHistogram) {
        check_histogram(c.name, kind, samples)?;
    }
    Ok(())
}

#[derive(Default)]
struct HistGroup {
    count: Option<f64>,
    bucket: Option<f64>,
    negative_buckets: bool,
    has_sum: bool,
    has_gsum: bool,
    negative_gsum: bool,
    value: f64,
}

impl HistGroup {
    fn check(&self) -> Result<(), ErrorKind> {
        if self.bucket != Some(f64::INFINITY) {
            return Err(ErrorKind::Invalid("histogram without a '+Inf' bucket"));
        }
        if self.count.is_some_and(|c| c != self.value) {
            return Err(ErrorKind::Invalid(
                "histogram count does not match the '+Inf' bucket",
            ));
        }
        if self.has_sum && self.count.is_none() {
            return Err(ErrorKind::Invalid("histogram has _sum but no _count"));
        }
        if self.has_gsum && self.count.is_none() {
            return Err(ErrorKind::Invalid(
                "gauge histogram has _gsum but no _gcount",
            ));
        }
        if !(self.has_sum || self.has_gsum) && self.count.is_some() {
            return Err(ErrorKind::Invalid("histogram has a count but no sum"));
        }
        if self.negative_buckets && self.has_sum {
            return Err(ErrorKind::Invalid(
                "histogram with negative buckets cannot have _sum",
            ));
        }
        if !self.negative_buckets && self.negative_gsum {
            return Err(ErrorKind::Invalid(
                "negative _gsum with non-negative buckets",
            ));
        }
        Ok(())
    }
}

fn check_histogram(name: &str, kind: MetricType, samples: &[Sample<'_>]) -> Result<(), ErrorKind> {
    let mut group: Option<(u64, Option<f64>)> = None;
    let mut st = HistGroup::default();
    for s in samples {
        let suffix = &s.name[name.len()..];
        if suffix.is_empty() {
            continue;
        }
        let g = (group_of(name, kind, s), s.timestamp);
        if group != Some(g) {
            if group.is_some() {
                st.check()?;
            }
            st = HistGroup::default();
        }
        group = Some(g);
        match suffix {
            "_bucket" => {
                let b = s
                    .labels
                    .get("le")
                    .and_then(|le| parse_f64(le.raw()))
                    .unwrap_or(f64::NAN);
                if b < 0.0 {
                    st.negative_buckets = true;
                }
                if st.bucket.is_some_and(|prev| b <= prev) {
                    return Err(ErrorKind::Invalid("histogram buckets out of order"));
                }
                if s.value < st.value {
                    return Err(ErrorKind::Invalid("histogram bucket values decrease"));
                }
                st.bucket = Some(b);
                st.value = s.value;
            }
            "_count" | "_gcount" => st.count = Some(s.value),
            "_sum" => st.has_sum = true,
            "_gsum" => {
                st.has_gsum = true;
                if s.value < 0.0 {
                    st.negative_gsum = true;
                }
            }
            _ => {}
        }
    }
    if group.is_some() {
        st.check()?;
    }
    Ok(())
}

/// Counts families and samples of a whole exposition (validating it).
///
/// ```
/// use meshmon_prom::{count, Format};
/// assert_eq!(count(b"a 1\nb{x=\"y\"} 2\n", Format::PrometheusText)?, (2, 2));
/// # Ok::<(), meshmon_prom::ParseError>(())
/// ```
pub fn count(input: &[u8], format: Format) -> Result<(usize, usize), ParseError> {
    count_with(input, format, ParseOptions::default())
}

/// [`count`] with explicit options.
pub fn count_with(
    input: &[u8],
    format: Format,
    options: ParseOptions,
) -> Result<(usize, usize), ParseError> {
    let mut p = Parser::with_options(input, format, options);
    let mut families = 0;
    let mut samples = 0;
    while let Some(f) = p.next_family() {
        let f = f?;
        families += 1;
        samples += f.samples.len();
    }
    Ok((families, samples))
}
