//! Parse errors: where (`line:column`, byte offset), what was found, what was expected.

use std::fmt;

/// Why an exposition was rejected.
///
/// ```
/// use meshmon_prom::{parse, Format};
/// let err = parse(b"# TYPE a gauge\na{b=1} 2\n", Format::PrometheusText).unwrap_err();
/// assert_eq!((err.line, err.column), (2, 5));
/// assert_eq!(err.to_string(), "2:5: expected '\"' opening a label value, found \"1} 2\"");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{column}: {kind}, found {found:?}")]
pub struct ParseError {
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in bytes.
    pub column: u32,
    /// Byte offset in the input.
    pub offset: usize,
    /// What went wrong.
    pub kind: ErrorKind,
    /// The offending text (the rest of the line from the error position, at most 40
    /// characters).
    pub found: String,
}

/// What went wrong, by rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A grammar rule did not match: the text expected there.
    #[error("expected {0}")]
    Expected(&'static str),
    /// The input is not UTF-8.
    #[error("invalid UTF-8")]
    InvalidUtf8,
    /// A label name appears twice in one label set.
    #[error("duplicate label name")]
    DuplicateLabel,
    /// `# TYPE` names a type this format does not have.
    #[error("unknown metric type")]
    UnknownType,
    /// An OpenMetrics family or sample rule was broken (the message names the rule).
    #[error("{0}")]
    Invalid(&'static str),
    /// OpenMetrics input ended without `# EOF`.
    #[error("missing '# EOF' at the end of the input")]
    MissingEof,
    /// Text follows `# EOF`.
    #[error("text after '# EOF'")]
    TextAfterEof,
    /// A configured limit was hit (the field name).
    #[error("limit {0} exceeded")]
    Limit(&'static str),
}

impl ParseError {
    /// Builds an error at byte `offset` of `input`, computing line and column.
    pub(crate) fn at(input: &[u8], offset: usize, kind: ErrorKind) -> Self {
        let offset = offset.min(input.len());
        let before = &input[..offset];
        let line = memchr::memchr_iter(b'\n', before).count() + 1;
        let line_start = memchr::memrchr(b'\n', before).map_or(0, |p| p + 1);
        let column = offset - line_start + 1;
        let rest = &input[offset..];
        let end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
        let found: String = String::from_utf8_lossy(&rest[..end])
            .chars()
            .take(40)
            .collect();
        Self {
            line: u32::try_from(line).unwrap_or(u32::MAX),
            column: u32::try_from(column).unwrap_or(u32::MAX),
            offset,
            kind,
            found,
        }
    }
}

impl fmt::Display for crate::sample::Sample<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)?;
        if !self.labels.is_empty() {
            write!(f, "{{{}}}", self.labels.raw())?;
        }
        write!(f, " {}", self.value)
    }
}
