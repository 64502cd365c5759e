//! Owned families and samples, for what must outlive the input buffer.

use crate::Format;
use crate::error::ParseError;
use crate::parser::{Family, Parser};
use crate::sample::{Exemplar, Labels, MetricType, Sample, unescape};

/// An owned metric family (label values and HELP decoded).
#[derive(Clone, Debug, PartialEq)]
pub struct OwnedFamily {
    /// The family name.
    pub name: String,
    /// The family type.
    pub kind: MetricType,
    /// The decoded `# HELP` text.
    pub help: Option<String>,
    /// The `# UNIT`.
    pub unit: Option<String>,
    /// The samples.
    pub samples: Vec<OwnedSample>,
}

/// An owned sample.
#[derive(Clone, Debug, PartialEq)]
pub struct OwnedSample {
    /// The sample name.
    pub name: String,
    /// `(name, decoded value)` pairs in written order.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
    /// Timestamp in seconds.
    pub timestamp: Option<f64>,
    /// The exemplar.
    pub exemplar: Option<OwnedExemplar>,
}

/// An owned exemplar.
#[derive(Clone, Debug, PartialEq)]
pub struct OwnedExemplar {
    /// `(name, decoded value)` pairs.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
    /// Timestamp in seconds.
    pub timestamp: Option<f64>,
}

fn own_labels(l: Labels<'_>) -> Vec<(String, String)> {
    l.iter()
        .map(|l| (l.name.to_owned(), l.value.unescape().into_owned()))
        .collect()
}

impl From<&Exemplar<'_>> for OwnedExemplar {
    fn from(e: &Exemplar<'_>) -> Self {
        Self {
            labels: own_labels(e.labels),
            value: e.value,
            timestamp: e.timestamp,
        }
    }
}

impl From<&Sample<'_>> for OwnedSample {
    fn from(s: &Sample<'_>) -> Self {
        Self {
            name: s.name.to_owned(),
            labels: own_labels(s.labels),
            value: s.value,
            timestamp: s.timestamp,
            exemplar: s.exemplar.as_ref().map(OwnedExemplar::from),
        }
    }
}

impl Family<'_, '_> {
    /// Copies the family out of the input buffer.
    pub fn to_owned_family(&self) -> OwnedFamily {
        OwnedFamily {
            name: self.name.to_owned(),
            kind: self.kind,
            help: self.help.map(|h| unescape(h).into_owned()),
            unit: self.unit.map(str::to_owned),
            samples: self.samples.iter().map(OwnedSample::from).collect(),
        }
    }
}

/// Parses a whole exposition into owned families.
///
/// ```
/// use meshmon_prom::{parse, Format, MetricType};
/// let fams = parse(b"# TYPE a gauge\na{k=\"v\\n\"} 1.5\n", Format::PrometheusText)?;
/// assert_eq!(fams[0].kind, MetricType::Gauge);
/// assert_eq!(fams[0].samples[0].labels, [("k".to_string(), "v\n".to_string())]);
/// # Ok::<(), meshmon_prom::ParseError>(())
/// ```
pub fn parse(input: &[u8], format: Format) -> Result<Vec<OwnedFamily>, ParseError> {
    let mut p = Parser::new(input, format);
    let mut out = Vec::new();
    while let Some(f) = p.next_family() {
        out.push(f?.to_owned_family());
    }
    Ok(out)
}
