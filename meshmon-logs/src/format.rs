//! Line formats a mesh produces, parsed into borrowed views first and into
//! [`LogRecord`]s on demand:
//!
//! - Kubernetes CRI container logs (`<rfc3339> stdout|stderr F|P <msg>`), with partial
//!   (`P`) lines joined by [`CriJoiner`]. Spec: the CRI logging format of the kubelet
//!   (`k8s.io/cri-api`, "CRI: Container Runtime Interface logging").
//! - Docker json-file lines (`{"log":"...","stream":"stdout","time":"..."}`).
//! - Envoy's default access-log format and Istio's default proxy access-log format
//!   (Envoy docs, "Access logging → Default format string"; Istio
//!   `meshConfig.accessLogFormat` default), fields parsed into Datadog attributes.
//! - Istio/klog component logs (`<time>\t<level>\t<scope>\t<msg>`, Istio's `istio.io/pkg/log`).
//! - JSON logs (common level and message keys), plain text.
//!
//! [`detect`] picks the format of one line; [`LineParser`] parses lines in a given or
//! auto-detected format.

use meshmon_core::Timestamp;
use serde::{Deserialize, Serialize};

use crate::record::{LogRecord, Status};

/// Why a line could not be parsed in the requested format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The line is not valid UTF-8 at the given byte offset.
    #[error("invalid UTF-8 at byte {offset}")]
    Utf8 {
        /// Byte offset of the first invalid byte.
        offset: usize,
    },
    /// The line does not have the expected structure.
    #[error("not a {format} line: {reason} (at byte {offset})")]
    Syntax {
        /// The format tried.
        format: Format,
        /// What was expected.
        reason: &'static str,
        /// Byte offset where parsing stopped.
        offset: usize,
    },
    /// A JSON line was malformed.
    #[error("invalid JSON in a {format} line at column {column}: {message}")]
    Json {
        /// The format tried.
        format: Format,
        /// 1-based column reported by the JSON parser.
        column: usize,
        /// The parser's message.
        message: String,
    },
}

/// A line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Format {
    /// Detect per line ([`detect`]).
    Auto,
    /// The whole line is the message.
    Raw,
    /// Kubernetes CRI.
    Cri,
    /// Docker json-file.
    Docker,
    /// Envoy / Istio proxy access log.
    Envoy,
    /// Istio / klog component log.
    Istio,
    /// JSON object per line.
    Json,
    /// logfmt (`key=value key="quoted value"`, as Go's `log/slog` text handler and
    /// go-kit write it).
    Logfmt,
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::Auto => "auto",
            Format::Raw => "raw",
            Format::Cri => "cri",
            Format::Docker => "docker",
            Format::Envoy => "envoy",
            Format::Istio => "istio",
            Format::Json => "json",
            Format::Logfmt => "logfmt",
        })
    }
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "auto" => Format::Auto,
            "raw" => Format::Raw,
            "cri" => Format::Cri,
            "docker" => Format::Docker,
            "envoy" => Format::Envoy,
            "istio" => Format::Istio,
            "json" => Format::Json,
            "logfmt" => Format::Logfmt,
            _ => {
                return Err(format!(
                    "unknown format {s:?} (auto|raw|cri|docker|envoy|istio|json|logfmt)"
                ));
            }
        })
    }
}

fn utf8(line: &[u8]) -> Result<&str, FormatError> {
    std::str::from_utf8(line).map_err(|e| FormatError::Utf8 {
        offset: e.valid_up_to(),
    })
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let mut l = line;
    while let [rest @ .., b'\n' | b'\r'] = l {
        l = rest;
    }
    l
}

/// Parses an RFC 3339 timestamp (`2024-05-01T12:00:00.123456789Z`, `...+02:00`; a space
/// instead of `T` and a missing offset, read as UTC, are accepted), with the calendar
/// checked: `2024-02-31` is `None`. A thin wrapper over
/// [`meshmon_core::time::parse_datetime`], which says why a text is rejected.
///
/// ```
/// use meshmon_logs::format::parse_rfc3339;
/// let t = parse_rfc3339("2016-04-15T20:17:00.310Z").unwrap();
/// assert_eq!(t.as_millis(), 1_460_751_420_310);
/// assert_eq!(parse_rfc3339("1970-01-01T01:00:00+01:00").unwrap().as_nanos(), 0);
/// assert!(parse_rfc3339("yesterday").is_none());
/// assert!(parse_rfc3339("2024-02-31T00:00:00Z").is_none());
/// ```
pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
    meshmon_core::time::parse_datetime(s).ok()
}

/// The output stream of a container log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    /// `stdout` or `stderr`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// A borrowed view of one CRI log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CriLine<'a> {
    /// The RFC 3339 timestamp text.
    pub time: &'a str,
    /// Parsed timestamp.
    pub timestamp: Timestamp,
    /// The stream.
    pub stream: Stream,
    /// `P`: the message continues on the next line of the same stream.
    pub partial: bool,
    /// The message (end-of-line removed).
    pub message: &'a str,
}

/// Parses a CRI line: `<rfc3339> <stdout|stderr> <F|P> <message>`.
///
/// ```
/// use meshmon_logs::format::{parse_cri, Stream};
/// let l = parse_cri(b"2024-05-01T12:00:00.5Z stderr P part one\n").unwrap();
/// assert_eq!((l.stream, l.partial, l.message), (Stream::Stderr, true, "part one"));
/// ```
pub fn parse_cri(line: &[u8]) -> Result<CriLine<'_>, FormatError> {
    let s = utf8(trim_eol(line))?;
    let err = |reason, offset| FormatError::Syntax {
        format: Format::Cri,
        reason,
        offset,
    };
    let sp1 = s.find(' ').ok_or(err("missing timestamp", 0))?;
    let time = &s[..sp1];
    let timestamp = parse_rfc3339(time).ok_or(err("invalid RFC 3339 timestamp", 0))?;
    let rest = &s[sp1 + 1..];
    let stream = if rest.starts_with("stdout ") {
        Stream::Stdout
    } else if rest.starts_with("stderr ") {
        Stream::Stderr
    } else {
        return Err(err("expected stdout or stderr", sp1 + 1));
    };
    let rest = &rest[7..];
    let tag_off = sp1 + 8;
    // The tag field may carry more flags separated by ':' (only P/F are defined).
    let tag_end = rest.find(' ').unwrap_or(rest.len());
    let partial = match rest[..tag_end].split(':').next() {
        Some("P") => true,
        Some("F") => false,
        _ => return Err(err("expected tag F or P", tag_off)),
    };
    let message = rest.get(tag_end + 1..).unwrap_or("");
    Ok(CriLine {
        time,
        timestamp,
        stream,
        partial,
        message,
    })
}

/// Joins CRI partial (`P`) lines per stream, with a size bound: a message growing past
/// `max_bytes` is emitted as is (and counted in [`CriJoiner::truncated`]).
#[derive(Clone, Debug)]
pub struct CriJoiner {
    max_bytes: usize,
    pending: [Option<(Timestamp, String)>; 2],
    /// Messages emitted early because they reached the size bound.
    pub truncated: u64,
}

impl Default for CriJoiner {
    fn default() -> Self {
        Self::new(256 * 1024)
    }
}

impl CriJoiner {
    /// A joiner emitting messages of at most `max_bytes` (Datadog's default line limit is
    /// 256 kB).
    pub fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            pending: [None, None],
            truncated: 0,
        }
    }

    /// Feeds one parsed line; returns a complete record when the line finishes a message.
    ///
    /// ```
    /// use meshmon_logs::format::{parse_cri, CriJoiner};
    /// let mut j = CriJoiner::default();
    /// assert!(j.push(&parse_cri(b"2024-05-01T12:00:00Z stdout P hello ").unwrap()).is_none());
    /// let r = j.push(&parse_cri(b"2024-05-01T12:00:01Z stdout F world").unwrap()).unwrap();
    /// assert_eq!(r.message, "hello world");
    /// assert_eq!(r.attribute_str("stream").as_deref(), Some("stdout"));
    /// ```
    pub fn push(&mut self, line: &CriLine<'_>) -> Option<LogRecord> {
        let slot = &mut self.pending[line.stream as usize];
        let (ts, mut msg) = slot.take().unwrap_or((line.timestamp, String::new()));
        msg.push_str(line.message);
        if line.partial && msg.len() < self.max_bytes {
            *slot = Some((ts, msg));
            return None;
        }
        if line.partial {
            self.truncated += 1;
        }
        Some(cri_record(ts, line.stream, msg))
    }

    /// Emits what is pending (end of input).
    pub fn flush(&mut self) -> Vec<LogRecord> {
        let mut out = Vec::new();
        for (i, s) in [Stream::Stdout, Stream::Stderr].into_iter().enumerate() {
            if let Some((ts, msg)) = self.pending[i].take() {
                out.push(cri_record(ts, s, msg));
            }
        }
        out
    }
}

fn cri_record(ts: Timestamp, stream: Stream, message: String) -> LogRecord {
    let mut r = LogRecord::new(message);
    r.timestamp = Some(ts);
    if stream == Stream::Stderr {
        r.status = Status::Error;
    }
    r.with_attribute("stream", stream.as_str())
}

/// A Docker json-file line, with the `log` string unescaped (so owned).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct DockerLine {
    /// The log text, usually ending in `\n`.
    pub log: String,
    /// `stdout` or `stderr`.
    pub stream: Option<String>,
    /// RFC 3339 time.
    pub time: Option<String>,
}

fn json_err(format: Format, e: &serde_json::Error) -> FormatError {
    FormatError::Json {
        format,
        column: e.column(),
        message: e.to_string(),
    }
}

/// Parses a Docker json-file line.
///
/// ```
/// use meshmon_logs::format::parse_docker;
/// let d = parse_docker(br#"{"log":"hi\n","stream":"stdout","time":"2024-05-01T12:00:00Z"}"#).unwrap();
/// assert_eq!(d.log, "hi\n");
/// ```
pub fn parse_docker(line: &[u8]) -> Result<DockerLine, FormatError> {
    serde_json::from_slice(trim_eol(line)).map_err(|e| json_err(Format::Docker, &e))
}

impl DockerLine {
    /// Converts to a record (trailing newline removed from the message).
    pub fn into_record(self) -> LogRecord {
        let msg = self.log.trim_end_matches(['\n', '\r']).to_owned();
        let mut r = LogRecord::new(msg);
        r.timestamp = self.time.as_deref().and_then(parse_rfc3339);
        if let Some(s) = self.stream {
            if s == "stderr" {
                r.status = Status::Error;
            }
            r = r.with_attribute("stream", s);
        }
        r
    }
}

/// A borrowed view of an Envoy/Istio access-log line: the raw fields in order.
/// `-` marks an absent value, as Envoy prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvoyLine<'a> {
    /// `%START_TIME%` text.
    pub start_time: &'a str,
    /// Method, path, protocol from the request line.
    pub method: &'a str,
    /// `%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%`.
    pub path: &'a str,
    /// `%PROTOCOL%`.
    pub protocol: &'a str,
    /// The fields after the request line (quotes removed).
    pub fields: Vec<&'a str>,
}

/// Splits an access-log line into `[start]`, `"request"` and the remaining bare or
/// quoted fields.
///
/// ```
/// use meshmon_logs::format::parse_envoy;
/// let l = parse_envoy(br#"[2016-04-15T20:17:00.310Z] "POST /api/v1/locations HTTP/2" 204 - 154 0 226 100 "10.0.35.28" "nsq2http" "cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2" "locations" "tcp://10.0.2.1:80""#).unwrap();
/// assert_eq!((l.method, l.path, l.fields[0]), ("POST", "/api/v1/locations", "204"));
/// ```
pub fn parse_envoy(line: &[u8]) -> Result<EnvoyLine<'_>, FormatError> {
    let s = utf8(trim_eol(line))?;
    let err = |reason, offset| FormatError::Syntax {
        format: Format::Envoy,
        reason,
        offset,
    };
    if !s.starts_with('[') {
        return Err(err("expected [START_TIME]", 0));
    }
    let close = s.find("] ").ok_or(err("unterminated [START_TIME]", 0))?;
    let start_time = &s[1..close];
    let mut i = close + 2;
    if s.as_bytes().get(i) != Some(&b'"') {
        return Err(err("expected a quoted request line", i));
    }
    let req_end = s[i + 1..]
        .find('"')
        .map(|e| i + 1 + e)
        .ok_or(err("unterminated request line", i))?;
    let req = &s[i + 1..req_end];
    let mut parts = req.splitn(3, ' ');
    let method = parts.next().unwrap_or("-");
    let path = parts.next().unwrap_or("-");
    let protocol = parts.next().unwrap_or("-");
    i = req_end + 1;
    let b = s.as_bytes();
    let mut fields = Vec::with_capacity(20);
    while i < b.len() {
        if b[i] == b' ' {
            i += 1;
            continue;
        }
        if b[i] == b'"' {
            let end = s[i + 1..]
                .find('"')
                .map(|e| i + 1 + e)
                .ok_or(err("unterminated quoted field", i))?;
            fields.push(&s[i + 1..end]);
            i = end + 1;
        } else {
            let end = s[i..].find(' ').map_or(s.len(), |e| i + e);
            fields.push(&s[i..end]);
            i = end;
        }
    }
    if fields.len() < 5 || !fields[0].bytes().all(|c| c.is_ascii_digit()) {
        return Err(err(
            "expected %RESPONSE_CODE% and the fields after it",
            req_end + 1,
        ));
    }
    Ok(EnvoyLine {
        start_time,
        method,
        path,
        protocol,
        fields,
    })
}

impl EnvoyLine<'_> {
    /// Converts to a record with Datadog's standard attributes (`http.method`,
    /// `http.url`, `http.status_code`, `network.bytes_read`, `duration` in ns,
    /// `envoy.response_flags`, `http.request_id`, `envoy.upstream.host`...). Both Envoy's
    /// default format (13 fields) and Istio's default proxy format (22 fields) are
    /// recognised by their field count; other layouts keep the common prefix.
    pub fn to_record(&self) -> LogRecord {
        let f = |i: usize| {
            self.fields
                .get(i)
                .copied()
                .filter(|v| *v != "-" && !v.is_empty())
        };
        let mut r = LogRecord::new(format!(
            "{} {} {} {}",
            self.method,
            self.path,
            self.protocol,
            self.fields.first().copied().unwrap_or("-")
        ));
        r.timestamp = parse_rfc3339(self.start_time);
        r.source = Some("envoy".to_owned());
        let mut set = |k: &str, v: Option<&str>| {
            if let Some(v) = v {
                let val = match v.parse::<i64>() {
                    Ok(n) => serde_json::Value::from(n),
                    Err(_) => serde_json::Value::from(v),
                };
                r.attributes.insert(k.to_owned(), val);
            }
        };
        set("http.method", Some(self.method).filter(|m| *m != "-"));
        set("http.url", Some(self.path).filter(|m| *m != "-"));
        set("http.version", Some(self.protocol).filter(|m| *m != "-"));
        set("http.status_code", f(0));
        set("envoy.response_flags", f(1));
        // Istio inserts %RESPONSE_CODE_DETAILS%, %CONNECTION_TERMINATION_DETAILS% and
        // "%UPSTREAM_TRANSPORT_FAILURE_REASON%" after the flags.
        let istio = self.fields.len() >= 20;
        let b = if istio {
            set("envoy.response_code_details", f(2));
            set("envoy.connection_termination_details", f(3));
            set("envoy.upstream.transport_failure_reason", f(4));
            5
        } else {
            2
        };
        set("network.bytes_read", f(b));
        set("network.bytes_written", f(b + 1));
        set("envoy.upstream.service_time", f(b + 3));
        set("http.forwarded_for", f(b + 4));
        set("http.useragent", f(b + 5));
        set("http.request_id", f(b + 6));
        set("http.host", f(b + 7));
        set("envoy.upstream.host", f(b + 8));
        if istio {
            set("envoy.upstream.cluster", f(b + 9));
            set("envoy.upstream.local_address", f(b + 10));
            set("envoy.downstream.local_address", f(b + 11));
            set("network.client.ip", f(b + 12));
            set("envoy.requested_server_name", f(b + 13));
            set("envoy.route_name", f(b + 14));
        }
        if let Some(ms) = f(b + 2).and_then(|d| d.parse::<i64>().ok()) {
            r.attributes
                .insert("duration".to_owned(), (ms.saturating_mul(1_000_000)).into());
        }
        r.status = match self.fields.first().and_then(|c| c.parse::<u16>().ok()) {
            Some(500..) => Status::Error,
            Some(400..=499) => Status::Warning,
            _ => Status::Info,
        };
        r
    }
}

/// A borrowed view of an Istio component (klog-style) line:
/// `<time>\t<level>\t<scope>\t<msg>` (scope optional).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IstioLine<'a> {
    /// Time text.
    pub time: &'a str,
    /// Level text (`info`, `warn`, `error`, `debug`).
    pub level: &'a str,
    /// Scope (`ads`, `model`...), if present.
    pub scope: Option<&'a str>,
    /// The message.
    pub message: &'a str,
}

/// Parses an Istio component line.
///
/// ```
/// use meshmon_logs::format::parse_istio;
/// let l = parse_istio(b"2024-05-01T12:00:00.000000Z\tinfo\tads\tADS: new connection for node:sidecar~10.0.0.5").unwrap();
/// assert_eq!((l.level, l.scope, l.message), ("info", Some("ads"), "ADS: new connection for node:sidecar~10.0.0.5"));
/// ```
pub fn parse_istio(line: &[u8]) -> Result<IstioLine<'_>, FormatError> {
    let s = utf8(trim_eol(line))?;
    let err = |reason, offset| FormatError::Syntax {
        format: Format::Istio,
        reason,
        offset,
    };
    let mut it = s.splitn(4, '\t');
    let time = it.next().unwrap_or("");
    if parse_rfc3339(time).is_none() {
        return Err(err("expected an RFC 3339 time and a tab", 0));
    }
    let level = it
        .next()
        .ok_or(err("expected a level after the time", time.len()))?;
    if Status::remap(level).is_none() {
        return Err(err("unknown level", time.len() + 1));
    }
    let a = it
        .next()
        .ok_or(err("expected a message", time.len() + 1 + level.len()))?;
    let msg_start = time.len() + level.len() + 2;
    let (scope, message) = match it.next() {
        Some(m) if !a.is_empty() && !a.contains(' ') => (Some(a), m),
        _ => (None, &s[msg_start..]),
    };
    Ok(IstioLine {
        time,
        level,
        scope,
        message,
    })
}

impl IstioLine<'_> {
    /// Converts to a record (`source:istio`, attribute `logger.name` = scope).
    pub fn to_record(&self) -> LogRecord {
        let mut r = LogRecord::new(self.message);
        r.timestamp = parse_rfc3339(self.time);
        r.status = Status::remap(self.level).unwrap_or_default();
        r.source = Some("istio".to_owned());
        if let Some(s) = self.scope {
            r = r.with_attribute("logger.name", s);
        }
        r
    }
}

/// Keys holding the message in common JSON log layouts (zap, logrus, bunyan, ECS,
/// Datadog).
pub const JSON_MESSAGE_KEYS: &[&str] = &["message", "msg", "log", "text", "@message"];
/// Keys holding the level.
pub const JSON_LEVEL_KEYS: &[&str] = &[
    "level",
    "severity",
    "status",
    "lvl",
    "log.level",
    "levelname",
];
/// Keys holding the time.
pub const JSON_TIME_KEYS: &[&str] = &["time", "timestamp", "ts", "@timestamp", "date"];

/// Parses a JSON log line: the message, level and time come from the common keys
/// ([`JSON_MESSAGE_KEYS`], [`JSON_LEVEL_KEYS`], [`JSON_TIME_KEYS`]; numeric times are
/// seconds since the epoch), every other key becomes an attribute. `service` and
/// `source` keys fill the record's fields.
///
/// ```
/// use meshmon_logs::{format::parse_json, Status};
/// let r = parse_json(br#"{"level":"error","msg":"dial tcp: timeout","ts":1700000000.5,"caller":"x.go:12"}"#).unwrap();
/// assert_eq!((r.status, r.message.as_str()), (Status::Error, "dial tcp: timeout"));
/// assert_eq!(r.timestamp.unwrap().as_millis(), 1_700_000_000_500);
/// assert_eq!(r.attribute_str("caller").as_deref(), Some("x.go:12"));
/// ```
pub fn parse_json(line: &[u8]) -> Result<LogRecord, FormatError> {
    let v: serde_json::Value =
        serde_json::from_slice(trim_eol(line)).map_err(|e| json_err(Format::Json, &e))?;
    let serde_json::Value::Object(mut map) = v else {
        return Err(FormatError::Syntax {
            format: Format::Json,
            reason: "expected a JSON object",
            offset: 0,
        });
    };
    let mut r = LogRecord::default();
    for k in JSON_MESSAGE_KEYS {
        if let Some(serde_json::Value::String(s)) = map.get(*k) {
            r.message = s.clone();
            map.remove(*k);
            break;
        }
    }
    for k in JSON_LEVEL_KEYS {
        let status = match map.get(*k) {
            Some(serde_json::Value::String(s)) => Status::remap(s),
            Some(serde_json::Value::Number(n)) => Status::remap(&n.to_string()),
            _ => None,
        };
        if let Some(s) = status {
            r.status = s;
            map.remove(*k);
            break;
        }
    }
    for k in JSON_TIME_KEYS {
        let ts = match map.get(*k) {
            Some(serde_json::Value::String(s)) => parse_rfc3339(s),
            Some(serde_json::Value::Number(n)) => n.as_f64().and_then(Timestamp::from_secs_f64),
            _ => None,
        };
        if let Some(t) = ts {
            r.timestamp = Some(t);
            map.remove(*k);
            break;
        }
    }
    if let Some(serde_json::Value::String(s)) = map.remove("service") {
        r.service = Some(s);
    }
    if let Some(serde_json::Value::String(s)) = map.remove("source") {
        r.source = Some(s);
    }
    r.attributes = map;
    Ok(r)
}

/// Parses a logfmt line: `key=value` pairs separated by spaces, values bare or
/// double-quoted with `\"` escapes. `msg`/`message` become the message, `level`/`lvl`/
/// `severity` the status, `time`/`ts` the timestamp; other pairs are attributes.
/// A line with no pair, or a bare word without `=`, is a syntax error.
///
/// ```
/// use meshmon_logs::{format::parse_logfmt, Status};
/// let r = parse_logfmt(br#"time=2024-05-01T12:00:00Z level=warn msg="slow query" took=12ms"#).unwrap();
/// assert_eq!((r.status, r.message.as_str()), (Status::Warning, "slow query"));
/// assert_eq!(r.attribute_str("took").as_deref(), Some("12ms"));
/// ```
pub fn parse_logfmt(line: &[u8]) -> Result<LogRecord, FormatError> {
    let s = utf8(trim_eol(line))?;
    let err = |reason, offset| FormatError::Syntax {
        format: Format::Logfmt,
        reason,
        offset,
    };
    let b = s.as_bytes();
    let mut r = LogRecord::default();
    let mut i = 0;
    let mut pairs = 0;
    while i < b.len() {
        if b[i] == b' ' {
            i += 1;
            continue;
        }
        let k0 = i;
        while i < b.len() && b[i] != b'=' && b[i] != b' ' {
            i += 1;
        }
        if i >= b.len() || b[i] != b'=' || i == k0 {
            return Err(err("expected key=value", k0));
        }
        let key = &s[k0..i];
        i += 1;
        let value: String = if b.get(i) == Some(&b'"') {
            let mut v = String::new();
            let mut j = i + 1;
            loop {
                match b.get(j) {
                    None => return Err(err("unterminated quoted value", i)),
                    Some(b'"') => break,
                    Some(b'\\') if j + 1 < b.len() => {
                        let c = b[j + 1];
                        v.push(match c {
                            b'n' => '\n',
                            b't' => '\t',
                            _ => c as char,
                        });
                        j += 2;
                    }
                    Some(_) => {
                        let start = j;
                        while j < b.len() && b[j] != b'"' && b[j] != b'\\' {
                            j += 1;
                        }
                        v.push_str(&s[start..j]);
                    }
                }
            }
            i = j + 1;
            v
        } else {
            let v0 = i;
            while i < b.len() && b[i] != b' ' {
                i += 1;
            }
            s[v0..i].to_owned()
        };
        pairs += 1;
        match key {
            "msg" | "message" if r.message.is_empty() => r.message = value,
            "level" | "lvl" | "severity" => match Status::remap(&value) {
                Some(st) => r.status = st,
                None => {
                    r.attributes.insert(key.to_owned(), value.into());
                }
            },
            "time" | "ts" if r.timestamp.is_none() => match parse_rfc3339(&value) {
                Some(t) => r.timestamp = Some(t),
                None => {
                    r.attributes.insert(key.to_owned(), value.into());
                }
            },
            _ => {
                r.attributes.insert(key.to_owned(), value.into());
            }
        }
    }
    if pairs == 0 {
        return Err(err("no key=value pair", 0));
    }
    Ok(r)
}

/// Picks the format of one line: JSON (Docker when it has `log` and `stream`), CRI,
/// Envoy access log, Istio component log, logfmt (a line starting with `time=`, `ts=` or
/// `level=` that parses), else raw.
///
/// ```
/// use meshmon_logs::format::{detect, Format};
/// assert_eq!(detect(b"2024-05-01T12:00:00Z stdout F hi"), Format::Cri);
/// assert_eq!(detect(br#"{"log":"hi\n","stream":"stdout"}"#), Format::Docker);
/// assert_eq!(detect(b"plain words"), Format::Raw);
/// ```
pub fn detect(line: &[u8]) -> Format {
    let l = trim_eol(line);
    match l.first() {
        Some(b'{') => {
            if parse_docker(l).is_ok() {
                Format::Docker
            } else if parse_json(l).is_ok() {
                Format::Json
            } else {
                Format::Raw
            }
        }
        Some(b'[') if parse_envoy(l).is_ok() => Format::Envoy,
        Some(b'0'..=b'9') => {
            if parse_cri(l).is_ok() {
                Format::Cri
            } else if parse_istio(l).is_ok() {
                Format::Istio
            } else {
                Format::Raw
            }
        }
        _ if (l.starts_with(b"time=") || l.starts_with(b"ts=") || l.starts_with(b"level="))
            && parse_logfmt(l).is_ok() =>
        {
            Format::Logfmt
        }
        _ => Format::Raw,
    }
}

/// What parsing one line gave: a record, or nothing yet (a CRI partial line held by the
/// joiner).
#[derive(Debug)]
pub struct LineParser {
    format: Format,
    cri: CriJoiner,
    /// Lines that failed to parse in their (requested or detected) format and were kept
    /// as raw messages.
    pub errors: u64,
}

impl LineParser {
    /// A parser for `format` ([`Format::Auto`] detects per line).
    pub fn new(format: Format) -> Self {
        Self {
            format,
            cri: CriJoiner::default(),
            errors: 0,
        }
    }

    /// Parses one line. Bad lines are never dropped: when the format does not fit, the
    /// line becomes a raw record (lossy UTF-8) and [`LineParser::errors`] counts it.
    ///
    /// ```
    /// use meshmon_logs::format::{Format, LineParser};
    /// let mut p = LineParser::new(Format::Auto);
    /// assert!(p.parse(b"2024-05-01T12:00:00Z stdout P a").is_none());
    /// assert_eq!(p.parse(b"2024-05-01T12:00:00Z stdout F b").unwrap().message, "ab");
    /// assert_eq!(p.parse(b"hello").unwrap().message, "hello");
    /// ```
    pub fn parse(&mut self, line: &[u8]) -> Option<LogRecord> {
        let format = match self.format {
            Format::Auto => detect(line),
            f => f,
        };
        let res = match format {
            Format::Cri => match parse_cri(line) {
                Ok(l) => return self.cri.push(&l),
                Err(e) => Err(e),
            },
            Format::Docker => parse_docker(line).map(DockerLine::into_record),
            Format::Envoy => parse_envoy(line).map(|l| l.to_record()),
            Format::Istio => parse_istio(line).map(|l| l.to_record()),
            Format::Json => parse_json(line),
            Format::Logfmt => parse_logfmt(line),
            Format::Raw | Format::Auto => return Some(raw_record(line)),
        };
        Some(res.unwrap_or_else(|_| {
            self.errors += 1;
            raw_record(line)
        }))
    }

    /// Emits records still held (CRI partial lines at end of input).
    pub fn flush(&mut self) -> Vec<LogRecord> {
        self.cri.flush()
    }
}

fn raw_record(line: &[u8]) -> LogRecord {
    LogRecord::new(String::from_utf8_lossy(trim_eol(line)).into_owned())
}
