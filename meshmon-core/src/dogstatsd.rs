//! DogStatsD datagrams (feature `dogstatsd`): a zero-allocation codec over `&[u8]` and a
//! pure [`aggregate::Aggregator`] that turns samples into [`crate::Metric`]s the way the
//! Datadog Agent's DogStatsD server does.
//!
//! The format is Datadog's
//! [datagram shell](https://docs.datadoghq.com/developers/dogstatsd/datagram_shell/),
//! protocol v1.1 to v1.3:
//!
//! - metrics: `<name>:<value>[:<value>...]|<type>[|@<rate>][|#<tags>][|c:<container>][|T<unix ts>]`
//!   with types `c` (count), `g` (gauge), `ms` (timer), `h` (histogram), `s` (set) and
//!   `d` (distribution); several values in one line are v1.1, `c:` is v1.2, `T` is v1.3;
//! - events: `_e{<title len>,<text len>}:<title>|<text>[|d:<ts>][|h:<host>][|p:<priority>][|t:<alert type>][|s:<source>][|k:<aggregation key>][|#<tags>][|c:<container>]`;
//! - service checks: `_sc|<name>|<status>[|d:<ts>][|h:<host>][|#<tags>][|c:<container>][|m:<message>]`.
//!
//! A datagram carries one message per line (`\n`-separated; empty lines are skipped).
//! Unknown optional fields (`|x...`) are skipped, as the Agent does, so newer clients
//! keep working. Every view borrows the datagram: parsing allocates nothing.
//!
//! ```
//! use meshmon_core::dogstatsd::{parse_packet, Message, MetricType};
//!
//! let packet = b"page.views:1|c|@0.5|#env:prod,canary\nreq.latency:12:15.5|ms";
//! let mut it = parse_packet(packet);
//! let Some(Ok(Message::Metric(m))) = it.next() else { panic!() };
//! assert_eq!((m.name, m.metric_type, m.sample_rate), ("page.views", MetricType::Count, 0.5));
//! assert_eq!(m.tags.iter().collect::<Vec<_>>(), ["env:prod", "canary"]);
//! let Some(Ok(Message::Metric(m))) = it.next() else { panic!() };
//! assert_eq!(m.values().collect::<Vec<_>>(), [12.0, 15.5]);
//! assert!(it.next().is_none());
//!
//! let err = meshmon_core::dogstatsd::parse_message(b"x:1|q").unwrap_err();
//! assert_eq!(err.to_string(), "byte 4: expected a metric type (c, g, ms, h, s, d), found 'q'");
//! ```

use std::fmt;

use crate::AlertType;

pub mod aggregate;

/// What the parser expected where it failed ([`ParseError::expected`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Expected {
    /// Valid UTF-8 (the datagram shell is UTF-8 text).
    Utf8,
    /// A non-empty metric name before `:`.
    MetricName,
    /// The `:` that ends a metric name.
    Colon,
    /// A finite number (a metric value, or a value of a multi-value packet).
    Value,
    /// The `|` before the type.
    Pipe,
    /// One of the metric types.
    MetricType,
    /// A sample rate `@r` with `0 < r <= 1`.
    SampleRate,
    /// A Unix timestamp in seconds (`T<ts>`, `d:<ts>`).
    Timestamp,
    /// An event header `_e{<title len>,<text len>}:`.
    EventHeader,
    /// A title and a text of the declared byte lengths, separated by `|`.
    EventBody,
    /// An event priority, `normal` or `low`.
    Priority,
    /// An event alert type: `error`, `warning`, `info` or `success`.
    AlertType,
    /// A non-empty service check name after `_sc|`.
    ServiceCheckName,
    /// A service check status: `0` (OK), `1` (warning), `2` (critical) or `3` (unknown).
    Status,
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Utf8 => "valid UTF-8",
            Self::MetricName => "a metric name",
            Self::Colon => "':' after the metric name",
            Self::Value => "a finite number",
            Self::Pipe => "'|'",
            Self::MetricType => "a metric type (c, g, ms, h, s, d)",
            Self::SampleRate => "a sample rate in (0, 1]",
            Self::Timestamp => "a Unix timestamp in seconds",
            Self::EventHeader => "an event header _e{<title length>,<text length>}:",
            Self::EventBody => "a title and a text of the declared lengths separated by '|'",
            Self::Priority => "an event priority (normal, low)",
            Self::AlertType => "an alert type (error, warning, info, success)",
            Self::ServiceCheckName => "a service check name",
            Self::Status => "a service check status (0, 1, 2, 3)",
        })
    }
}

/// Why a DogStatsD message could not be parsed: where (the byte offset in the datagram
/// given to [`parse_packet`] or [`parse_message`]), what was expected, and the byte found
/// there (`None` at the end of the line). `Copy`, allocation-free.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("byte {at}: expected {expected}, found {}", Found(*.found))]
pub struct ParseError {
    /// Byte offset of the offending byte in the datagram.
    pub at: usize,
    /// What the parser expected there.
    pub expected: Expected,
    /// The byte found there, or `None` at the end of the line.
    pub found: Option<u8>,
}

struct Found(Option<u8>);

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("the end of the line"),
            Some(b) if b.is_ascii_graphic() || b == b' ' => write!(f, "'{}'", b as char),
            Some(b) => write!(f, "byte 0x{b:02x}"),
        }
    }
}

/// A DogStatsD metric type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MetricType {
    /// `c`: a count, summed over the flush interval.
    Count,
    /// `g`: a gauge, last value wins.
    Gauge,
    /// `ms`: a timer, aggregated like a histogram.
    Timer,
    /// `h`: a histogram, aggregated agent-side into max, median, avg, count, percentiles.
    Histogram,
    /// `s`: a set, the number of distinct values.
    Set,
    /// `d`: a distribution, values kept for server-side aggregation.
    Distribution,
}

impl MetricType {
    /// The type's code in the datagram: `c`, `g`, `ms`, `h`, `s` or `d`.
    pub fn code(self) -> &'static str {
        match self {
            Self::Count => "c",
            Self::Gauge => "g",
            Self::Timer => "ms",
            Self::Histogram => "h",
            Self::Set => "s",
            Self::Distribution => "d",
        }
    }

    fn from_code(b: &[u8]) -> Option<Self> {
        Some(match b {
            b"c" => Self::Count,
            b"g" => Self::Gauge,
            b"ms" => Self::Timer,
            b"h" => Self::Histogram,
            b"s" => Self::Set,
            b"d" => Self::Distribution,
            _ => return None,
        })
    }
}

/// The raw tag section (`#a:b,c`) of a message, iterated without allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RawTags<'a> {
    raw: &'a str,
}

impl<'a> RawTags<'a> {
    /// The tag section as sent, without the leading `#`.
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    /// Whether there are no tags.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// The tags, in the order sent; empty items (`a,,b`) are skipped.
    pub fn iter(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.raw.split(',').filter(|t| !t.is_empty())
    }
}

/// One metric line. Borrowed from the datagram.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metric<'a> {
    /// The metric name.
    pub name: &'a str,
    /// The type.
    pub metric_type: MetricType,
    /// The sample rate (`@r`), 1.0 when absent.
    pub sample_rate: f64,
    /// The tags (`#...`).
    pub tags: RawTags<'a>,
    /// The origin container id (`c:...`, protocol v1.2), if sent.
    pub container_id: Option<&'a str>,
    /// The client-side timestamp in Unix seconds (`T...`, protocol v1.3), if sent.
    pub timestamp: Option<i64>,
    raw_values: &'a str,
    first: f64,
}

impl<'a> Metric<'a> {
    /// The values as sent (several for a v1.1 multi-value line), unparsed. For a set these
    /// are the set members.
    pub fn raw_values(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.raw_values.split(':')
    }

    /// The numeric values (validated while parsing). Empty for a set, whose members are
    /// strings (see [`Metric::raw_values`]).
    pub fn values(&self) -> Values<'a> {
        if self.metric_type == MetricType::Set {
            return Values {
                first: None,
                rest: None,
            };
        }
        let rest = self.raw_values.split_once(':').map(|(_, r)| r);
        Values {
            first: Some(self.first),
            rest: rest.map(|r| r.split(':')),
        }
    }
}

/// The numeric values of a [`Metric`].
#[derive(Debug, Clone)]
pub struct Values<'a> {
    first: Option<f64>,
    rest: Option<std::str::Split<'a, char>>,
}

impl Iterator for Values<'_> {
    type Item = f64;
    fn next(&mut self) -> Option<f64> {
        if let Some(v) = self.first.take() {
            return Some(v);
        }
        // Every value was checked by the parser, so the fallback is never taken.
        self.rest
            .as_mut()?
            .next()
            .map(|s| s.parse().unwrap_or(f64::NAN))
    }
}

/// An event's priority (`p:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Priority {
    /// `normal`, the default.
    #[default]
    Normal,
    /// `low`.
    Low,
}

/// An event (`_e{...}`). Borrowed from the datagram.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Event<'a> {
    /// The title.
    pub title: &'a str,
    /// The text, as sent: newlines are escaped as the two characters `\n`.
    pub text: &'a str,
    /// `d:`, Unix seconds.
    pub timestamp: Option<i64>,
    /// `h:`.
    pub hostname: Option<&'a str>,
    /// `p:`, normal when absent.
    pub priority: Priority,
    /// `t:`, info when absent.
    pub alert_type: AlertType,
    /// `s:`.
    pub source_type_name: Option<&'a str>,
    /// `k:`.
    pub aggregation_key: Option<&'a str>,
    /// `#...`.
    pub tags: RawTags<'a>,
    /// `c:` (v1.2).
    pub container_id: Option<&'a str>,
}

/// A service check status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServiceCheckStatus {
    /// `0`.
    Ok,
    /// `1`.
    Warning,
    /// `2`.
    Critical,
    /// `3`.
    Unknown,
}

/// A service check (`_sc|...`). Borrowed from the datagram.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServiceCheck<'a> {
    /// The check name.
    pub name: &'a str,
    /// The status.
    pub status: ServiceCheckStatus,
    /// `d:`, Unix seconds.
    pub timestamp: Option<i64>,
    /// `h:`.
    pub hostname: Option<&'a str>,
    /// `#...`.
    pub tags: RawTags<'a>,
    /// `c:` (v1.2).
    pub container_id: Option<&'a str>,
    /// `m:`, the last field: everything after it (`|` included) is the message, with
    /// newlines escaped as `\n`.
    pub message: Option<&'a str>,
}

/// One DogStatsD message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Message<'a> {
    /// A metric line.
    Metric(Metric<'a>),
    /// An event.
    Event(Event<'a>),
    /// A service check.
    ServiceCheck(ServiceCheck<'a>),
}

/// The messages of a datagram, one per non-empty line; see [`parse_packet`].
#[derive(Debug, Clone)]
pub struct Packet<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Packet<'a> {
    type Item = Result<Message<'a>, ParseError>;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.pos >= self.buf.len() {
                return None;
            }
            let start = self.pos;
            let rest = &self.buf[start..];
            let end = rest
                .iter()
                .position(|&b| b == b'\n')
                .map_or(self.buf.len(), |i| start + i);
            self.pos = end + 1;
            if end > start {
                return Some(parse_line(&self.buf[start..end], start));
            }
        }
    }
}

/// Parses a datagram: one message per `\n`-separated line, empty lines skipped. A bad
/// line yields its error and parsing goes on with the next line.
pub fn parse_packet(packet: &[u8]) -> Packet<'_> {
    Packet {
        buf: packet,
        pos: 0,
    }
}

/// Parses one message (one line, without its `\n`). Offsets in errors count from the
/// start of `line`.
pub fn parse_message(line: &[u8]) -> Result<Message<'_>, ParseError> {
    parse_line(line, 0)
}

fn err(at: usize, expected: Expected, line: &[u8], base: usize) -> ParseError {
    ParseError {
        at: base + at,
        expected,
        found: line.get(at).copied(),
    }
}

fn parse_line(line: &[u8], base: usize) -> Result<Message<'_>, ParseError> {
    let text = match std::str::from_utf8(line) {
        Ok(t) => t,
        Err(e) => return Err(err(e.valid_up_to(), Expected::Utf8, line, base)),
    };
    if line.starts_with(b"_e{") {
        parse_event(text, base).map(Message::Event)
    } else if line.starts_with(b"_sc|") {
        parse_service_check(text, base).map(Message::ServiceCheck)
    } else {
        parse_metric(text, base).map(Message::Metric)
    }
}

fn parse_value(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

fn parse_ts(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        return None;
    }
    s.parse().ok()
}

/// Splits `s` (starting at offset `off` in the line) on `|`, yielding `(offset, field)`.
fn fields(s: &str, off: usize) -> impl Iterator<Item = (usize, &str)> {
    let mut pos = off;
    s.split('|').map(move |f| {
        let at = pos;
        pos += f.len() + 1;
        (at, f)
    })
}

fn parse_metric(text: &str, base: usize) -> Result<Metric<'_>, ParseError> {
    let line = text.as_bytes();
    let Some(colon) = text.find([':', '|']) else {
        let at = if text.is_empty() { 0 } else { line.len() };
        let expected = if text.is_empty() {
            Expected::MetricName
        } else {
            Expected::Colon
        };
        return Err(err(at, expected, line, base));
    };
    if colon == 0 {
        return Err(err(0, Expected::MetricName, line, base));
    }
    if line[colon] != b':' {
        return Err(err(colon, Expected::Colon, line, base));
    }
    let name = &text[..colon];
    let after = &text[colon + 1..];
    let vend = after.find('|').map_or(text.len(), |i| colon + 1 + i);
    let raw_values = &text[colon + 1..vend];
    if vend == text.len() {
        return Err(err(vend, Expected::Pipe, line, base));
    }
    let tstart = vend + 1;
    let tend = text[tstart..].find('|').map_or(text.len(), |i| tstart + i);
    let Some(metric_type) = MetricType::from_code(&line[tstart..tend]) else {
        // Point at the first byte that makes the type unknown.
        let bad = match &line[tstart..tend] {
            [b'm', b's', ..] => tstart + 2,
            [b'm', ..] => tstart + 1,
            [b'c' | b'g' | b'h' | b's' | b'd', ..] => tstart + 1,
            _ => tstart,
        };
        return Err(err(bad, Expected::MetricType, line, base));
    };
    let mut first = f64::NAN;
    if metric_type == MetricType::Set {
        if raw_values.is_empty() {
            return Err(err(colon + 1, Expected::Value, line, base));
        }
    } else {
        let mut at = colon + 1;
        for (i, v) in raw_values.split(':').enumerate() {
            let Some(x) = parse_value(v) else {
                return Err(err(at, Expected::Value, line, base));
            };
            if i == 0 {
                first = x;
            }
            at += v.len() + 1;
        }
    }
    let mut m = Metric {
        name,
        metric_type,
        sample_rate: 1.0,
        tags: RawTags::default(),
        container_id: None,
        timestamp: None,
        raw_values,
        first,
    };
    if tend < text.len() {
        for (at, f) in fields(&text[tend + 1..], tend + 1) {
            let b = f.as_bytes();
            match b.first() {
                Some(b'@') => {
                    m.sample_rate = f[1..]
                        .parse::<f64>()
                        .ok()
                        .filter(|r| *r > 0.0 && *r <= 1.0)
                        .ok_or_else(|| err(at + 1, Expected::SampleRate, line, base))?;
                }
                Some(b'#') => m.tags = RawTags { raw: &f[1..] },
                Some(b'T') => {
                    m.timestamp = Some(
                        parse_ts(&f[1..])
                            .ok_or_else(|| err(at + 1, Expected::Timestamp, line, base))?,
                    );
                }
                Some(b'c') if b.get(1) == Some(&b':') => m.container_id = Some(&f[2..]),
                // Unknown or empty fields are skipped, as the Agent does.
                _ => {}
            }
        }
    }
    Ok(m)
}

fn parse_len(s: &str) -> Option<usize> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_event(text: &str, base: usize) -> Result<Event<'_>, ParseError> {
    let line = text.as_bytes();
    // `_e{` is known to be there.
    let close = text
        .find('}')
        .ok_or_else(|| err(line.len(), Expected::EventHeader, line, base))?;
    let comma = text[..close]
        .find(',')
        .ok_or_else(|| err(close, Expected::EventHeader, line, base))?;
    let title_len =
        parse_len(&text[3..comma]).ok_or_else(|| err(3, Expected::EventHeader, line, base))?;
    let text_len = parse_len(&text[comma + 1..close])
        .ok_or_else(|| err(comma + 1, Expected::EventHeader, line, base))?;
    if line.get(close + 1) != Some(&b':') {
        return Err(err(close + 1, Expected::EventHeader, line, base));
    }
    let tstart = close + 2;
    let tend = tstart.checked_add(title_len).filter(|&e| e <= line.len());
    let Some(tend) = tend.filter(|&e| text.is_char_boundary(e) && line.get(e) == Some(&b'|'))
    else {
        return Err(err(
            tstart.saturating_add(title_len).min(line.len()),
            Expected::EventBody,
            line,
            base,
        ));
    };
    if title_len == 0 {
        return Err(err(tstart, Expected::EventBody, line, base));
    }
    let xstart = tend + 1;
    let xend = xstart
        .checked_add(text_len)
        .filter(|&e| e <= line.len() && text.is_char_boundary(e));
    let Some(xend) = xend.filter(|&e| e == line.len() || line[e] == b'|') else {
        return Err(err(
            xstart.saturating_add(text_len).min(line.len()),
            Expected::EventBody,
            line,
            base,
        ));
    };
    let mut e = Event {
        title: &text[tstart..tend],
        text: &text[xstart..xend],
        timestamp: None,
        hostname: None,
        priority: Priority::Normal,
        alert_type: AlertType::Info,
        source_type_name: None,
        aggregation_key: None,
        tags: RawTags::default(),
        container_id: None,
    };
    if xend < line.len() {
        for (at, f) in fields(&text[xend + 1..], xend + 1) {
            let (key, val) = (f.get(..2).unwrap_or(""), f.get(2..).unwrap_or(""));
            match key {
                "d:" => {
                    e.timestamp = Some(
                        parse_ts(val)
                            .ok_or_else(|| err(at + 2, Expected::Timestamp, line, base))?,
                    )
                }
                "h:" => e.hostname = Some(val),
                "p:" => {
                    e.priority = match val {
                        "normal" => Priority::Normal,
                        "low" => Priority::Low,
                        _ => return Err(err(at + 2, Expected::Priority, line, base)),
                    }
                }
                "t:" => {
                    e.alert_type = match val {
                        "error" => AlertType::Error,
                        "warning" => AlertType::Warning,
                        "info" => AlertType::Info,
                        "success" => AlertType::Success,
                        _ => return Err(err(at + 2, Expected::AlertType, line, base)),
                    }
                }
                "s:" => e.source_type_name = Some(val),
                "k:" => e.aggregation_key = Some(val),
                "c:" => e.container_id = Some(val),
                _ if f.starts_with('#') => e.tags = RawTags { raw: &f[1..] },
                _ => {}
            }
        }
    }
    Ok(e)
}

fn parse_service_check(text: &str, base: usize) -> Result<ServiceCheck<'_>, ParseError> {
    let line = text.as_bytes();
    let nstart = 4;
    let nend = text[nstart..].find('|').map_or(line.len(), |i| nstart + i);
    if nend == nstart {
        return Err(err(nstart, Expected::ServiceCheckName, line, base));
    }
    let sstart = nend + 1;
    let send = text
        .get(sstart..)
        .and_then(|s| s.find('|'))
        .map_or(line.len(), |i| sstart + i);
    let status = match text.get(sstart..send) {
        Some("0") => ServiceCheckStatus::Ok,
        Some("1") => ServiceCheckStatus::Warning,
        Some("2") => ServiceCheckStatus::Critical,
        Some("3") => ServiceCheckStatus::Unknown,
        _ => return Err(err(sstart.min(line.len()), Expected::Status, line, base)),
    };
    let mut sc = ServiceCheck {
        name: &text[nstart..nend],
        status,
        timestamp: None,
        hostname: None,
        tags: RawTags::default(),
        container_id: None,
        message: None,
    };
    let mut pos = send;
    while pos < line.len() {
        let at = pos + 1;
        let rest = &text[at..];
        if let Some(msg) = rest.strip_prefix("m:") {
            sc.message = Some(msg);
            break;
        }
        let f = rest.find('|').map_or(rest, |i| &rest[..i]);
        pos = at + f.len();
        let (key, val) = (f.get(..2).unwrap_or(""), f.get(2..).unwrap_or(""));
        match key {
            "d:" => {
                sc.timestamp = Some(
                    parse_ts(val).ok_or_else(|| err(at + 2, Expected::Timestamp, line, base))?,
                )
            }
            "h:" => sc.hostname = Some(val),
            "c:" => sc.container_id = Some(val),
            _ if f.starts_with('#') => sc.tags = RawTags { raw: &f[1..] },
            _ => {}
        }
    }
    Ok(sc)
}

#[cfg(test)]
mod tests;
