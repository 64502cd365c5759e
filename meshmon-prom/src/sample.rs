//! Borrowed views over an exposition: [`Sample`], its [`Labels`], [`Exemplar`]s, and the
//! vocabulary of formats and metric types.
//!
//! Every view borrows from the input buffer; nothing here allocates. Label sets are kept
//! as the validated text between the braces and decoded lazily by [`Labels::iter`], so a
//! consumer that never looks at a label pays nothing for it.

use std::borrow::Cow;
use std::fmt;

/// Which exposition format to parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Format {
    /// [Prometheus text format 0.0.4](https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format):
    /// `# HELP`/`# TYPE` metadata, millisecond integer timestamps, blanks between
    /// tokens, a trailing comma in label sets, blank lines and comments allowed.
    #[default]
    PrometheusText,
    /// [OpenMetrics 1.0 text](https://github.com/prometheus/OpenMetrics/blob/main/specification/OpenMetrics.md):
    /// strict single-space syntax, `# UNIT`, `_created`, exemplars, `info`/`stateset`/
    /// `gaugehistogram`, float second timestamps, mandatory `# EOF`, and the
    /// specification's family validity rules.
    OpenMetrics,
}

impl Format {
    /// Chooses the format from an HTTP `Content-Type`: `application/openmetrics-text`
    /// is OpenMetrics, anything else (`text/plain; version=0.0.4`, missing) is the
    /// Prometheus text format, as Prometheus and Datadog's check decide.
    ///
    /// ```
    /// use meshmon_prom::Format;
    /// assert_eq!(
    ///     Format::from_content_type("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    ///     Format::OpenMetrics
    /// );
    /// assert_eq!(Format::from_content_type("text/plain; version=0.0.4"), Format::PrometheusText);
    /// ```
    pub fn from_content_type(content_type: &str) -> Self {
        let media = content_type.split(';').next().unwrap_or("").trim();
        if media.eq_ignore_ascii_case("application/openmetrics-text") {
            Self::OpenMetrics
        } else {
            Self::PrometheusText
        }
    }

    /// Guesses the format of a body with no (trustworthy) `Content-Type`, such as a
    /// file: OpenMetrics when its last line is the mandatory `# EOF` (optionally
    /// followed by one newline, or a `\r\n`), else the Prometheus text format. A text
    /// body never ends that way in practice (`# EOF` would be a comment), and an
    /// OpenMetrics body without it is invalid anyway, so parsing it as text reports the
    /// real problem.
    ///
    /// ```
    /// use meshmon_prom::Format;
    /// assert_eq!(Format::sniff(b"up 1\n# EOF\n"), Format::OpenMetrics);
    /// assert_eq!(Format::sniff(b"# EOF"), Format::OpenMetrics);
    /// assert_eq!(Format::sniff(b"up 1\n"), Format::PrometheusText);
    /// assert_eq!(Format::sniff(b"up 1\n# EOF\nup 2\n"), Format::PrometheusText);
    /// ```
    pub fn sniff(body: &[u8]) -> Self {
        let body = body
            .strip_suffix(b"\r\n")
            .or_else(|| body.strip_suffix(b"\n"))
            .unwrap_or(body);
        if body == b"# EOF" || body.ends_with(b"\n# EOF") {
            Self::OpenMetrics
        } else {
            Self::PrometheusText
        }
    }
}

/// A metric family's type, as declared by `# TYPE` (or implied when absent).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetricType {
    /// `counter`
    Counter,
    /// `gauge`
    Gauge,
    /// `histogram`
    Histogram,
    /// `gaugehistogram` (OpenMetrics)
    GaugeHistogram,
    /// `summary`
    Summary,
    /// `info` (OpenMetrics)
    Info,
    /// `stateset` (OpenMetrics)
    StateSet,
    /// `untyped` (Prometheus text; also what a sample without `# TYPE` gets there)
    Untyped,
    /// `unknown` (OpenMetrics; also what a sample without `# TYPE` gets there)
    Unknown,
}

impl MetricType {
    /// The keyword as written after `# TYPE name`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
            Self::GaugeHistogram => "gaugehistogram",
            Self::Summary => "summary",
            Self::Info => "info",
            Self::StateSet => "stateset",
            Self::Untyped => "untyped",
            Self::Unknown => "unknown",
        }
    }

    /// Parses a `# TYPE` keyword valid in `format`.
    pub fn parse(keyword: &str, format: Format) -> Option<Self> {
        let t = match keyword {
            "counter" => Self::Counter,
            "gauge" => Self::Gauge,
            "histogram" => Self::Histogram,
            "summary" => Self::Summary,
            "untyped" if format == Format::PrometheusText => Self::Untyped,
            "gaugehistogram" if format == Format::OpenMetrics => Self::GaugeHistogram,
            "info" if format == Format::OpenMetrics => Self::Info,
            "stateset" if format == Format::OpenMetrics => Self::StateSet,
            "unknown" if format == Format::OpenMetrics => Self::Unknown,
            _ => return None,
        };
        Some(t)
    }
}

impl fmt::Display for MetricType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One sample line: `name{labels} value [timestamp] [# exemplar]`, borrowed from the input.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample<'a> {
    /// The sample's metric name (with its suffix: `_bucket`, `_total`, …).
    pub name: &'a str,
    /// The label set (possibly empty).
    pub labels: Labels<'a>,
    /// The value; `NaN` and `±Inf` are kept as written.
    pub value: f64,
    /// The timestamp in seconds since the epoch, if present (the text format's integer
    /// milliseconds are divided by 1000).
    pub timestamp: Option<f64>,
    /// The exemplar (OpenMetrics only).
    pub exemplar: Option<Exemplar<'a>>,
}

/// An OpenMetrics exemplar: `# {labels} value [timestamp]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Exemplar<'a> {
    /// The exemplar's labels (at most 128 characters of names and values together).
    pub labels: Labels<'a>,
    /// The exemplar value.
    pub value: f64,
    /// The exemplar timestamp in seconds, if present.
    pub timestamp: Option<f64>,
}

/// A validated label set, kept as the text between `{` and `}`.
///
/// ```
/// use meshmon_prom::{Format, Parser};
/// let mut p = Parser::new(b"m{a=\"x\",b=\"say \\\"hi\\\"\"} 1\n", Format::PrometheusText);
/// let fam = p.next_family().unwrap().unwrap();
/// let labels = fam.samples[0].labels;
/// assert_eq!(labels.len(), 2);
/// assert_eq!(labels.get("b").unwrap().unescape(), "say \"hi\"");
/// let names: Vec<&str> = labels.iter().map(|l| l.name).collect();
/// assert_eq!(names, ["a", "b"]);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Labels<'a> {
    raw: &'a str,
    len: u32,
}

impl<'a> Labels<'a> {
    pub(crate) fn new(raw: &'a str, len: u32) -> Self {
        Self { raw, len }
    }

    /// The validated text between the braces, as written.
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether there are no labels.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The labels in written order.
    pub fn iter(&self) -> LabelIter<'a> {
        LabelIter {
            raw: self.raw,
            pos: 0,
        }
    }

    /// The value of the label `name`, if present.
    pub fn get(&self, name: &str) -> Option<LabelValue<'a>> {
        self.iter().find(|l| l.name == name).map(|l| l.value)
    }
}

impl fmt::Debug for Labels<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|l| (l.name, l.value.raw())))
            .finish()
    }
}

impl<'a> IntoIterator for Labels<'a> {
    type Item = Label<'a>;
    type IntoIter = LabelIter<'a>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// One label: a name and its (still escaped) value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Label<'a> {
    /// The label name.
    pub name: &'a str,
    /// The value, as written between the quotes.
    pub value: LabelValue<'a>,
}

/// A label value as written between its quotes (escapes not yet decoded).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LabelValue<'a>(pub(crate) &'a str);

impl<'a> LabelValue<'a> {
    /// The text between the quotes, escapes included.
    pub fn raw(&self) -> &'a str {
        self.0
    }

    /// Whether the value has escape sequences.
    pub fn has_escapes(&self) -> bool {
        memchr::memchr(b'\\', self.0.as_bytes()).is_some()
    }

    /// The decoded value: `\\` → `\`, `\"` → `"`, `\n` → newline; any other escape is
    /// kept as written (as Prometheus' and OpenMetrics' reference parsers do).
    /// Borrowed when there is nothing to decode.
    pub fn unescape(&self) -> Cow<'a, str> {
        unescape(self.0)
    }
}

impl fmt::Display for LabelValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.unescape())
    }
}

/// Decodes label-value / HELP escapes (`\\`, `\"`, `\n`); unknown escapes are kept.
pub(crate) fn unescape(s: &str) -> Cow<'_, str> {
    let b = s.as_bytes();
    let Some(first) = memchr::memchr(b'\\', b) else {
        return Cow::Borrowed(s);
    };
    let mut out = String::with_capacity(s.len());
    out.push_str(&s[..first]);
    let mut rest = &s[first..];
    while let Some(i) = memchr::memchr(b'\\', rest.as_bytes()) {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        match after.as_bytes().first() {
            Some(b'\\') => {
                out.push('\\');
                rest = &after[1..];
            }
            Some(b'"') => {
                out.push('"');
                rest = &after[1..];
            }
            Some(b'n') => {
                out.push('\n');
                rest = &after[1..];
            }
            _ => {
                out.push('\\');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Iterator over a validated label set (see [`Labels::iter`]).
#[derive(Clone, Debug)]
pub struct LabelIter<'a> {
    raw: &'a str,
    pos: usize,
}

impl<'a> Iterator for LabelIter<'a> {
    type Item = Label<'a>;

    fn next(&mut self) -> Option<Label<'a>> {
        // The text was validated by the grammar: name blanks? = blanks? "value" blanks? ,?
        let b = self.raw.as_bytes();
        let mut i = self.pos;
        while i < b.len() && matches!(b[i], b' ' | b'\t' | b',') {
            i += 1;
        }
        if i >= b.len() {
            self.pos = i;
            return None;
        }
        let name_start = i;
        while i < b.len() && !matches!(b[i], b'=' | b' ' | b'\t') {
            i += 1;
        }
        let name = &self.raw[name_start..i];
        while i < b.len() && b[i] != b'"' {
            i += 1;
        }
        i += 1;
        let val_start = i.min(b.len());
        let mut j = val_start;
        loop {
            match memchr::memchr2(b'"', b'\\', &b[j.min(b.len())..]) {
                Some(k) if b[j + k] == b'\\' => j += k + 2,
                Some(k) => {
                    j += k;
                    break;
                }
                None => {
                    j = b.len();
                    break;
                }
            }
        }
        let j = j.min(b.len());
        let value = LabelValue(&self.raw[val_start..j]);
        self.pos = (j + 1).min(b.len());
        Some(Label { name, value })
    }
}
