//! Multi-line aggregation: lines that continue a log (stack traces, wrapped messages)
//! are appended to it, joined by `\n`, within a size and a time bound.
//!
//! Two ways to tell a continuation, as the Datadog Agent offers:
//! [`Continuation::StartPattern`] (Datadog's `multi_line` rule: a line matching the
//! pattern starts a new log, any other line continues the current one) and
//! [`Continuation::Indented`] (a line starting with whitespace, `Caused by:`, `...` or a
//! Python traceback header or exception line continues: Java, Python and Go traces).
//!
//! ```
//! use meshmon_core::Timestamp;
//! use meshmon_logs::multiline::{Continuation, MultiLine, MultiLineConfig};
//! use meshmon_logs::LogRecord;
//! let mut m = MultiLine::new(Continuation::Indented, MultiLineConfig::default()).unwrap();
//! let t = Timestamp::from_secs(0);
//! assert!(m.push(LogRecord::new("Exception in thread main"), t).is_none());
//! assert!(m.push(LogRecord::new("\tat Foo.bar(Foo.java:1)"), t).is_none());
//! let done = m.push(LogRecord::new("next log"), t).unwrap();
//! assert_eq!(done.message, "Exception in thread main\n\tat Foo.bar(Foo.java:1)");
//! assert_eq!(m.flush().unwrap().message, "next log");
//! ```

use std::time::Duration;

use meshmon_core::Timestamp;
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::record::LogRecord;

/// How to recognise a continuation line.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Continuation {
    /// A line matching the regex starts a new log; others continue (Datadog `multi_line`).
    StartPattern(Regex),
    /// A line starting with whitespace, `Caused by:`, `...` or `Traceback (most recent
    /// call last):` continues; so does the final `SomeError: message` line of a Python
    /// traceback (not indented).
    Indented,
}

impl Continuation {
    fn continues(&self, line: &str, pending: &str) -> bool {
        match self {
            Continuation::StartPattern(re) => !re.is_match(line),
            Continuation::Indented => {
                line.starts_with([' ', '\t'])
                    || line.starts_with("Caused by:")
                    || line.starts_with("...")
                    || line.starts_with("Traceback (most recent call last):")
                    || ends_python_traceback(line, pending)
            }
        }
    }
}

/// `ValueError: ...` right after the indented frames of a `Traceback (most recent call
/// last):` block.
fn ends_python_traceback(line: &str, pending: &str) -> bool {
    let Some(tb) = pending.rfind("Traceback (most recent call last):") else {
        return false;
    };
    let last = pending.rsplit('\n').next().unwrap_or("");
    if !last.starts_with([' ', '\t']) || tb + 34 >= pending.len() {
        return false;
    }
    let name = line.split(':').next().unwrap_or("");
    !name.is_empty()
        && name.len() < line.len().max(name.len() + 1)
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.')
        && [
            "Error",
            "Exception",
            "Warning",
            "Exit",
            "Interrupt",
            "Iteration",
        ]
        .iter()
        .any(|s| name.ends_with(s))
}

/// Bounds of one aggregated log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct MultiLineConfig {
    /// A log growing past this many bytes is emitted (Datadog's line limit, 256 kB).
    pub max_bytes: usize,
    /// At most this many lines per log.
    pub max_lines: usize,
    /// A pending log older than this is emitted by [`MultiLine::poll`] (Datadog's
    /// `multi_line` flush timeout is 1 s).
    pub flush_timeout: Duration,
}

impl Default for MultiLineConfig {
    fn default() -> Self {
        Self {
            max_bytes: 256 * 1024,
            max_lines: 1000,
            flush_timeout: Duration::from_secs(1),
        }
    }
}

/// An invalid [`MultiLineConfig`] setting.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A bound is zero: nothing could ever be aggregated.
    #[error("multi-line config: {field} must be greater than zero")]
    Zero {
        /// The field's name.
        field: &'static str,
    },
}

impl MultiLineConfig {
    /// Checks the bounds: `max_bytes`, `max_lines` and `flush_timeout` must be non-zero.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_bytes == 0 {
            return Err(ConfigError::Zero { field: "max_bytes" });
        }
        if self.max_lines == 0 {
            return Err(ConfigError::Zero { field: "max_lines" });
        }
        if self.flush_timeout.is_zero() {
            return Err(ConfigError::Zero {
                field: "flush_timeout",
            });
        }
        Ok(())
    }
}

/// Counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MultiLineStats {
    /// Logs emitted.
    pub emitted: u64,
    /// Lines appended to a previous line.
    pub joined: u64,
    /// Logs emitted early because of `max_bytes` or `max_lines`.
    pub bounded: u64,
    /// Logs emitted by the flush timeout.
    pub timed_out: u64,
}

/// The aggregator. Time is passed in; it never reads a clock.
#[derive(Debug)]
pub struct MultiLine {
    rule: Continuation,
    config: MultiLineConfig,
    pending: Option<(Timestamp, usize, LogRecord)>,
    /// Counters.
    pub stats: MultiLineStats,
}

impl MultiLine {
    /// An aggregator with the given rule and bounds (validated).
    pub fn new(rule: Continuation, config: MultiLineConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            rule,
            config,
            pending: None,
            stats: MultiLineStats::default(),
        })
    }

    /// Feeds one record at time `now`; returns the previous log when this one starts a
    /// new log (or a bound was reached).
    pub fn push(&mut self, record: LogRecord, now: Timestamp) -> Option<LogRecord> {
        let mut out = self.poll(now);
        match self.pending.take() {
            Some((t0, lines, mut cur)) if self.rule.continues(&record.message, &cur.message) => {
                let fits = cur.message.len() + 1 + record.message.len() <= self.config.max_bytes
                    && lines < self.config.max_lines;
                if fits {
                    cur.message.push('\n');
                    cur.message.push_str(&record.message);
                    self.stats.joined += 1;
                    self.pending = Some((t0, lines + 1, cur));
                } else {
                    self.stats.bounded += 1;
                    self.stats.emitted += 1;
                    out = out.or(Some(cur));
                    self.pending = Some((now, 1, record));
                }
            }
            prev => {
                if let Some((_, _, p)) = prev {
                    self.stats.emitted += 1;
                    out = out.or(Some(p));
                }
                self.pending = Some((now, 1, record));
            }
        }
        out
    }

    /// Emits the pending log if it is older than the flush timeout.
    pub fn poll(&mut self, now: Timestamp) -> Option<LogRecord> {
        let (t0, ..) = self.pending.as_ref()?;
        if now.saturating_sub_ts(*t0) >= self.config.flush_timeout {
            self.stats.timed_out += 1;
            self.stats.emitted += 1;
            return self.pending.take().map(|p| p.2);
        }
        None
    }

    /// Emits the pending log (end of input).
    pub fn flush(&mut self) -> Option<LogRecord> {
        let p = self.pending.take()?;
        self.stats.emitted += 1;
        Some(p.2)
    }
}

trait SubTs {
    fn saturating_sub_ts(self, other: Timestamp) -> Duration;
}

impl SubTs for Timestamp {
    fn saturating_sub_ts(self, other: Timestamp) -> Duration {
        Duration::from_nanos(
            u64::try_from(self.as_nanos().saturating_sub(other.as_nanos())).unwrap_or(0),
        )
    }
}
