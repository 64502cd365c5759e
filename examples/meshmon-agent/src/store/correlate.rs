//! The log ↔ trace correlation index: the log lines that belong to a trace, found the two
//! ways a mesh's logs name their request.
//!
//! - A trace id injected by a tracer: Datadog's log injection writes `dd.trace_id`
//!   (decimal low 64 bits, or 32 hex digits with 128-bit logging) as a JSON field, a nested
//!   `{"dd": {"trace_id": …}}` object or `dd.trace_id=…` in the text; OpenTelemetry's log
//!   bridges write `trace_id` (32 hex digits). See
//!   <https://docs.datadoghq.com/tracing/other_telemetry/connect_logs_and_traces/> and
//!   <https://opentelemetry.io/docs/specs/otel/logs/data-model/#field-traceid>.
//! - Envoy's request id: an access log's `%REQ(X-REQUEST-ID)%` (the parser's
//!   `http.request_id`, or `request_id`/`x_request_id` in JSON access logs), matched to the
//!   `guid:x-request-id` tag Envoy's tracers put on their spans.
//!
//! Bounds: `store.max_correlated_logs` lines in all (oldest evicted first, counted),
//! `store.max_logs_per_trace` per trace id or request id (later lines refused, counted)
//! and `store.max_correlated_line_bytes` per message (cut, counted). 0 lines turns the
//! index off.
//!
//! ```
//! use meshmon_agent::store::correlate::{LogIndex, LogKey, extract};
//! use meshmon_logs::LogRecord;
//! let rec = LogRecord::new("GET /reviews").with_attribute("dd.trace_id", "1234");
//! assert_eq!(extract(&rec), Some(LogKey::Trace(1234)));
//! let mut ix = LogIndex::new(10, 5);
//! ix.insert(&rec, meshmon_core::Timestamp::from_secs(1));
//! assert_eq!(ix.lookup(1234, &[]).len(), 1);
//! ```

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use meshmon_core::Timestamp;
use meshmon_logs::LogRecord;
use serde::Serialize;

/// What a log line is keyed by.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LogKey {
    /// The low 64 bits of the trace id.
    Trace(u64),
    /// Envoy's `x-request-id`.
    Request(String),
}

/// One indexed log line, as `/api/v1/traces/{id}` lists it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct CorrelatedLog {
    /// When the line was written (or read, when it did not say), seconds since the epoch.
    pub t: f64,
    /// Status (`info`, `error`, …).
    pub status: &'static str,
    /// `service`.
    pub service: String,
    /// `source`.
    pub source: String,
    /// The message.
    pub message: String,
    /// How it was matched: `trace_id` or `x-request-id`.
    pub matched_by: &'static str,
    /// The trace id (decimal low 64 bits) or request id it carried.
    pub key: String,
}

/// How often the index's bounds were hit.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct IndexStats {
    /// Lines held.
    pub lines: usize,
    /// Lines indexed since start.
    pub indexed: u64,
    /// Lines evicted by `store.max_correlated_logs`.
    pub evicted: u64,
    /// Lines refused by `store.max_logs_per_trace`.
    pub refused_per_trace: u64,
    /// Messages cut to `store.max_correlated_line_bytes`.
    pub lines_cut: u64,
}

/// The bounded index.
#[derive(Debug, Default)]
pub struct LogIndex {
    max_lines: usize,
    max_per_key: usize,
    /// Longest message kept (bytes; 0: no cut).
    max_line_bytes: usize,
    order: VecDeque<LogKey>,
    by_key: HashMap<LogKey, VecDeque<Arc<CorrelatedLog>>>,
    stats: IndexStats,
}

/// Attribute keys holding a trace id, and whether a digits-only value is decimal first.
const TRACE_KEYS: &[&str] = &["dd.trace_id", "trace_id", "traceId", "trace.id"];
/// Attribute keys holding Envoy's request id.
const REQUEST_KEYS: &[&str] = &[
    "http.request_id",
    "request_id",
    "x_request_id",
    "x-request-id",
];

/// The low 64 bits of a trace id as a log writes it: decimal (Datadog's default), 32 hex
/// digits (128-bit ids, OpenTelemetry) or up to 16 hex digits. `None` for 0 or no id.
pub fn parse_trace_id(s: &str) -> Option<u64> {
    let s = s.trim();
    let v = if s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        u128::from_str_radix(s, 16).ok().map(|v| v as u64)
    } else if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse::<u128>().ok().map(|v| v as u64)
    } else if !s.is_empty() && s.len() <= 16 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        u64::from_str_radix(s, 16).ok()
    } else {
        None
    }?;
    (v != 0).then_some(v)
}

fn value_str(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `key=value` in free text (`dd.trace_id=123` as ddtrace's text log formats write it).
fn text_value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let mut from = 0;
    while let Some(i) = text[from..].find(key) {
        let at = from + i;
        let before_ok = at == 0
            || !text.as_bytes()[at - 1].is_ascii_alphanumeric() && text.as_bytes()[at - 1] != b'.';
        let rest = &text[at + key.len()..];
        if before_ok && let Some(v) = rest.strip_prefix('=') {
            let v = v.trim_start_matches('"');
            let end = v
                .find(|c: char| !c.is_ascii_alphanumeric())
                .unwrap_or(v.len());
            return Some(&v[..end]);
        }
        from = at + key.len();
    }
    None
}

/// The key a record's attributes name.
fn from_attributes(attrs: &serde_json::Map<String, serde_json::Value>) -> Option<LogKey> {
    for k in TRACE_KEYS {
        if let Some(id) = attrs
            .get(*k)
            .and_then(value_str)
            .and_then(|s| parse_trace_id(&s))
        {
            return Some(LogKey::Trace(id));
        }
    }
    if let Some(id) = attrs
        .get("dd")
        .and_then(|d| d.get("trace_id"))
        .and_then(value_str)
        .and_then(|s| parse_trace_id(&s))
    {
        return Some(LogKey::Trace(id));
    }
    for k in REQUEST_KEYS {
        if let Some(id) = attrs.get(*k).and_then(value_str) {
            let id = id.trim();
            if !id.is_empty() && id != "-" {
                return Some(LogKey::Request(id.to_owned()));
            }
        }
    }
    None
}

/// The key a record is indexed by: its trace id when it carries one, else Envoy's request
/// id; `None` when it carries neither. A container runtime's wrapper (CRI, Docker) leaves
/// the application's line in the message: a JSON object, `key=value` pairs or an Envoy
/// access log there is read too (only when it can name a trace, so plain lines cost a
/// substring search).
pub fn extract(rec: &LogRecord) -> Option<LogKey> {
    extract_with_status(rec).map(|(k, _)| k)
}

/// [`extract`], with the status of the embedded line when one was read.
fn extract_with_status(rec: &LogRecord) -> Option<(LogKey, Option<meshmon_logs::Status>)> {
    if let Some(k) = from_attributes(&rec.attributes) {
        return Some((k, None));
    }
    let msg = rec.message.trim_start();
    if msg.contains("trace_id") {
        if msg.starts_with('{')
            && let Ok(inner) = meshmon_logs::format::parse_json(msg.as_bytes())
            && let Some(k) = from_attributes(&inner.attributes)
        {
            return Some((k, Some(inner.status)));
        }
        for k in ["dd.trace_id", "trace_id"] {
            if let Some(id) = text_value(msg, k).and_then(parse_trace_id) {
                return Some((LogKey::Trace(id), None));
            }
        }
    }
    if msg.starts_with('[')
        && meshmon_logs::format::detect(msg.as_bytes()) == meshmon_logs::format::Format::Envoy
        && let Ok(line) = meshmon_logs::format::parse_envoy(msg.as_bytes())
    {
        let inner = line.to_record();
        return from_attributes(&inner.attributes).map(|k| (k, Some(inner.status)));
    }
    None
}

/// The index entry of `rec` (`None` when it names no trace or request); `now` stamps a
/// line without a time.
pub fn entry(rec: &LogRecord, now: Timestamp) -> Option<(LogKey, CorrelatedLog)> {
    let (key, inner_status) = extract_with_status(rec)?;
    let (matched_by, key_text) = match &key {
        LogKey::Trace(id) => ("trace_id", id.to_string()),
        LogKey::Request(r) => ("x-request-id", r.clone()),
    };
    let log = CorrelatedLog {
        t: rec.timestamp.unwrap_or(now).as_secs_f64(),
        status: inner_status.unwrap_or(rec.status).as_str(),
        service: rec.service.clone().unwrap_or_default(),
        source: rec.source.clone().unwrap_or_default(),
        message: rec.message.clone(),
        matched_by,
        key: key_text,
    };
    Some((key, log))
}

impl LogIndex {
    /// An empty index holding at most `max_lines` lines, `max_per_key` per trace or
    /// request id (either 0: the index keeps nothing).
    pub fn new(max_lines: usize, max_per_key: usize) -> Self {
        LogIndex {
            max_lines,
            max_per_key,
            ..LogIndex::default()
        }
    }

    /// Cuts kept messages to `max_line_bytes` (at a character boundary; 0: no cut), so the
    /// index holds at most `max_lines × max_line_bytes` bytes of text.
    pub fn with_max_line_bytes(mut self, max_line_bytes: usize) -> Self {
        self.max_line_bytes = max_line_bytes;
        self
    }

    /// Indexes `rec` if it names a trace or a request; `now` stamps a line without a
    /// time. Returns whether it was kept.
    pub fn insert(&mut self, rec: &LogRecord, now: Timestamp) -> bool {
        match entry(rec, now) {
            Some((key, log)) => self.insert_entry(key, log),
            None => false,
        }
    }

    /// Indexes entries made by [`entry`] (the tailer builds them outside the store's lock).
    pub fn insert_all(&mut self, entries: impl IntoIterator<Item = (LogKey, CorrelatedLog)>) {
        for (k, l) in entries {
            self.insert_entry(k, l);
        }
    }

    /// Indexes one line under `key`. Returns whether it was kept.
    pub fn insert_entry(&mut self, key: LogKey, mut log: CorrelatedLog) -> bool {
        if self.max_lines == 0 || self.max_per_key == 0 {
            return false;
        }
        if self.max_line_bytes > 0 && log.message.len() > self.max_line_bytes {
            let mut cut = self.max_line_bytes;
            while !log.message.is_char_boundary(cut) {
                cut -= 1;
            }
            log.message.truncate(cut);
            log.message.push('…');
            self.stats.lines_cut += 1;
        }
        let q = self.by_key.entry(key.clone()).or_default();
        if q.len() >= self.max_per_key {
            self.stats.refused_per_trace += 1;
            return false;
        }
        q.push_back(Arc::new(log));
        self.order.push_back(key);
        self.stats.indexed += 1;
        // The oldest line overall is the oldest of its key: evict from both fronts.
        while self.order.len() > self.max_lines {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(q) = self.by_key.get_mut(&old) {
                q.pop_front();
                if q.is_empty() {
                    self.by_key.remove(&old);
                }
            }
            self.stats.evicted += 1;
        }
        true
    }

    /// The lines of the trace whose id's low 64 bits are `trace_low` plus those of its
    /// spans' `request_ids`, by time, at most `store.max_logs_per_trace`; and how many more
    /// matched.
    pub fn lookup(&self, trace_low: u64, request_ids: &[&str]) -> Vec<Arc<CorrelatedLog>> {
        let mut out: Vec<Arc<CorrelatedLog>> = Vec::new();
        if let Some(q) = self.by_key.get(&LogKey::Trace(trace_low)) {
            out.extend(q.iter().cloned());
        }
        let mut seen = std::collections::HashSet::new();
        for r in request_ids {
            if !seen.insert(*r) {
                continue;
            }
            if let Some(q) = self.by_key.get(&LogKey::Request((*r).to_owned())) {
                out.extend(q.iter().cloned());
            }
        }
        out.sort_by(|a, b| a.t.total_cmp(&b.t));
        out
    }

    /// Sizes and bound hits.
    pub fn stats(&self) -> IndexStats {
        IndexStats {
            lines: self.order.len(),
            ..self.stats
        }
    }

    /// The per-key bound (the API cuts a trace's list to it).
    pub fn max_per_key(&self) -> usize {
        self.max_per_key
    }

    /// Publishes sizes and bound hits into the store's telemetry.
    pub fn publish(&self, t: &mut super::Telemetry) {
        let s = self.stats();
        t.set(
            "meshmon_store_correlated_logs",
            "gauge",
            "Log lines held by the log-trace correlation index.",
            &[],
            s.lines as f64,
        );
        for (limit, v) in [
            ("max_correlated_logs", s.evicted),
            ("max_logs_per_trace", s.refused_per_trace),
            ("max_correlated_line_bytes", s.lines_cut),
        ] {
            t.set(
                "meshmon_store_limit_hits_total",
                "counter",
                "Items dropped or evicted because a store bound was reached.",
                &[("limit", limit)],
                v as f64,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(msg: &str) -> LogRecord {
        LogRecord::new(msg)
    }

    #[test]
    fn trace_ids_in_each_spelling() {
        assert_eq!(parse_trace_id("1234"), Some(1234));
        assert_eq!(
            parse_trace_id("0000000000000001000000000000002a"),
            Some(0x2a)
        );
        assert_eq!(
            parse_trace_id("5b8aa5a2d2c872e8"),
            Some(0x5b8a_a5a2_d2c8_72e8)
        );
        assert_eq!(parse_trace_id("0"), None);
        assert_eq!(parse_trace_id(""), None);
        assert_eq!(parse_trace_id("not-an-id"), None);
        // A 128-bit decimal id keeps its low 64 bits.
        assert_eq!(parse_trace_id(&((7u128 << 64) | 9).to_string()), Some(9));
    }

    #[test]
    fn extraction_from_json_logfmt_text_and_envoy() {
        let r = rec("x").with_attribute("dd.trace_id", 77u64);
        assert_eq!(extract(&r), Some(LogKey::Trace(77)));
        let r =
            rec("x").with_attribute("dd", serde_json::json!({"trace_id": "88", "span_id": "1"}));
        assert_eq!(extract(&r), Some(LogKey::Trace(88)));
        let r = rec("x").with_attribute("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(extract(&r), Some(LogKey::Trace(0xa3ce_929d_0e0e_4736)));
        let r = rec("2024 INFO [dd.service=web dd.env=prod dd.trace_id=991 dd.span_id=3] hi");
        assert_eq!(extract(&r), Some(LogKey::Trace(991)));
        // Not a key: "xtrace_id=" or "my.dd.trace_id=" are other fields.
        assert_eq!(extract(&rec("xtrace_id=12 other")), None);
        let r = rec("GET /ratings").with_attribute("http.request_id", "a1b2-c3");
        assert_eq!(extract(&r), Some(LogKey::Request("a1b2-c3".into())));
        let r = rec("GET /").with_attribute("request_id", "-");
        assert_eq!(extract(&r), None);
        // A trace id wins over a request id.
        let r = rec("x")
            .with_attribute("request_id", "r")
            .with_attribute("trace_id", "5");
        assert_eq!(extract(&r), Some(LogKey::Trace(5)));
        assert_eq!(extract(&rec("plain line")), None);
        // The payload of a CRI line: JSON with dd.trace_id, an Envoy access log.
        let r = rec(r#"{"level":"error","message":"boom","dd.trace_id":"31","dd.span_id":"2"}"#);
        assert_eq!(extract(&r), Some(LogKey::Trace(31)));
        let r = rec(
            r#"[2024-05-01T12:00:00.000Z] "GET /api/v1/users/42 HTTP/1.1" 200 - via_upstream - "-" 0 512 3 2 "-" "curl/8.0" "6b1c-77" "users:8080" "10.0.0.7:8080" outbound|8080||users.default.svc.cluster.local 10.0.0.5:40000 10.96.0.10:8080 10.0.0.5:39999 - default"#,
        );
        assert_eq!(extract(&r), Some(LogKey::Request("6b1c-77".into())));
        assert_eq!(extract(&rec("[warn] disk almost full")), None);
        // The embedded line's level is the entry's status.
        let (_, e) = entry(
            &rec(r#"{"level":"error","trace_id":"9"}"#),
            Timestamp::from_secs(1),
        )
        .unwrap();
        assert_eq!((e.status, e.t), ("error", 1.0));
    }

    #[test]
    fn bounds_are_kept_and_counted() {
        let mut ix = LogIndex::new(3, 2);
        let now = Timestamp::from_secs(100);
        let t = |id: &str, n: i64| {
            let mut r = rec(&format!("line {n}")).with_attribute("trace_id", id);
            r.timestamp = Some(Timestamp::from_secs(n));
            r
        };
        assert!(ix.insert(&t("1", 1), now));
        assert!(ix.insert(&t("1", 2), now));
        assert!(!ix.insert(&t("1", 3), now), "per-trace bound");
        assert_eq!(ix.stats().refused_per_trace, 1);
        assert!(ix.insert(&t("2", 4), now));
        assert!(ix.insert(&t("2", 5), now));
        // Four offered within the global bound of 3: the oldest line (trace 1) went.
        let s = ix.stats();
        assert_eq!((s.lines, s.indexed, s.evicted), (3, 4, 1));
        let one: Vec<String> = ix
            .lookup(1, &[])
            .iter()
            .map(|l| l.message.clone())
            .collect();
        assert_eq!(one, ["line 2"]);
        assert_eq!(ix.lookup(2, &[]).len(), 2);
        assert!(!ix.insert(&rec("no id"), now));
        let mut short = LogIndex::new(10, 10).with_max_line_bytes(5);
        assert!(short.insert(&rec("héllo wörld").with_attribute("trace_id", "3"), now));
        assert_eq!(short.lookup(3, &[])[0].message, "héll…");
        assert_eq!(short.stats().lines_cut, 1);
        let mut off = LogIndex::new(0, 10);
        assert!(!off.insert(&t("1", 1), now));
    }

    #[test]
    fn lookup_unites_trace_and_request_ids_by_time() {
        let mut ix = LogIndex::new(100, 10);
        let now = Timestamp::from_secs(50);
        let mut a = rec("app line").with_attribute("dd.trace_id", "42");
        a.timestamp = Some(Timestamp::from_secs(20));
        let b = rec("GET /reviews 500").with_attribute("http.request_id", "req-1");
        let c = rec("GET /other 200").with_attribute("http.request_id", "req-2");
        ix.insert(&a, now);
        ix.insert(&b, Timestamp::from_secs(10));
        ix.insert(&c, now);
        let got = ix.lookup(42, &["req-1", "req-1", "nope"]);
        let msgs: Vec<(&str, &str)> = got
            .iter()
            .map(|l| (l.message.as_str(), l.matched_by))
            .collect();
        assert_eq!(
            msgs,
            [
                ("GET /reviews 500", "x-request-id"),
                ("app line", "trace_id")
            ]
        );
        assert_eq!(got[0].t, 10.0);
    }
}
