//! [`LogRecord`], the unit every parser produces, and [`Status`], Datadog's log status.

use meshmon_core::{Tags, Timestamp};
use serde::{Deserialize, Serialize};

/// A log's status (severity) with Datadog's names.
///
/// [`Status::remap`] follows Datadog's log status remapper: syslog severity numbers 0–7,
/// and strings by prefix (`emerg`/`f*` → emergency, `a*` → alert, `c*` → critical,
/// `err*` → error, `w*` → warning, `n*` → notice, `i*` → info, `d*`/`trace`/`verbose` →
/// debug, `o*`/`s*` → ok), case-insensitive.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// `emerg`: the system is unusable.
    Emergency,
    /// `alert`: act immediately.
    Alert,
    /// `critical`.
    Critical,
    /// `error`.
    Error,
    /// `warn`.
    Warning,
    /// `notice`.
    Notice,
    /// `info` (the default).
    #[default]
    Info,
    /// `debug` (also trace, verbose).
    Debug,
    /// `ok` (success).
    Ok,
}

impl Status {
    /// Datadog's status name (`emerg`, `alert`, `critical`, `error`, `warn`, `notice`,
    /// `info`, `debug`, `ok`).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Emergency => "emerg",
            Status::Alert => "alert",
            Status::Critical => "critical",
            Status::Error => "error",
            Status::Warning => "warn",
            Status::Notice => "notice",
            Status::Info => "info",
            Status::Debug => "debug",
            Status::Ok => "ok",
        }
    }

    /// Maps a level string or syslog severity number to a status, as Datadog's status
    /// remapper does; `None` when nothing matches.
    ///
    /// ```
    /// use meshmon_logs::Status;
    /// assert_eq!(Status::remap("ERROR"), Some(Status::Error));
    /// assert_eq!(Status::remap("warning"), Some(Status::Warning));
    /// assert_eq!(Status::remap("3"), Some(Status::Error));
    /// assert_eq!(Status::remap("fatal"), Some(Status::Emergency));
    /// assert_eq!(Status::remap("W"), Some(Status::Warning)); // klog's `W0501 ...`
    /// assert_eq!(Status::remap("E"), None); // only `err*` is error
    /// assert_eq!(Status::remap("bogus"), None);
    /// ```
    pub fn remap(level: &str) -> Option<Status> {
        let l = level.trim();
        if let Ok(n) = l.parse::<u8>() {
            return Some(match n {
                0 => Status::Emergency,
                1 => Status::Alert,
                2 => Status::Critical,
                3 => Status::Error,
                4 => Status::Warning,
                5 => Status::Notice,
                6 => Status::Info,
                7 => Status::Debug,
                _ => return None,
            });
        }
        let lower = l.to_ascii_lowercase();
        let s = lower.as_str();
        if s.is_empty() {
            return None;
        }
        Some(if s.starts_with("emerg") || s.starts_with('f') {
            Status::Emergency
        } else if s.starts_with('a') {
            Status::Alert
        } else if s.starts_with('c') {
            Status::Critical
        } else if s.starts_with("err") {
            Status::Error
        } else if s.starts_with('w') {
            Status::Warning
        } else if s.starts_with('n') {
            Status::Notice
        } else if s.starts_with('i') {
            Status::Info
        } else if s.starts_with('d') || s == "trace" || s == "verbose" {
            Status::Debug
        } else if s.starts_with('o') || s.starts_with('s') {
            Status::Ok
        } else {
            return None;
        })
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One log record: what the parsers produce and the processing rules and the miner
/// consume. Attributes are Datadog-style structured fields (`http.method`,
/// `network.client.ip`...).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LogRecord {
    /// When the log was written, if the line said so.
    pub timestamp: Option<Timestamp>,
    /// Severity.
    pub status: Status,
    /// The service that wrote the log (Datadog's `service`).
    pub service: Option<String>,
    /// The technology that wrote the log (Datadog's `source`: `envoy`, `istio`...).
    pub source: Option<String>,
    /// The message, the part pattern mining groups.
    pub message: String,
    /// Structured attributes parsed from the line.
    pub attributes: serde_json::Map<String, serde_json::Value>,
    /// Tags (`env:prod`, `kube_namespace:default`...).
    pub tags: Tags,
}

impl LogRecord {
    /// A record holding only a message (status `info`).
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            ..Self::default()
        }
    }

    /// Sets an attribute (builder style).
    pub fn with_attribute(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.attributes.insert(key.to_owned(), value.into());
        self
    }

    /// An attribute's value as a string, if present and a string or number.
    pub fn attribute_str(&self, key: &str) -> Option<String> {
        match self.attributes.get(key)? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            serde_json::Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
}
