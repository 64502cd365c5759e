//! Datadog's span model ([`pkg/proto/datadog/trace/span.proto`] of the Datadog Agent), in a
//! borrowed form over the request body ([`Span<'a>`]) and an owned form ([`OwnedSpan`],
//! the same type with `'static` data).
//!
//! Strings are `Cow<'a, str>`: borrowed from the body when it holds valid UTF-8, owned
//! when the decoder had to repair it. `meta` and `metrics` are vectors of pairs in wire
//! order (lookups scan them; spans carry a few dozen tags at most), which keeps decoding
//! free of hashing.
//!
//! [`pkg/proto/datadog/trace/span.proto`]: https://github.com/DataDog/datadog-agent/blob/main/pkg/proto/datadog/trace/span.proto

use std::borrow::Cow;

pub use crate::meta::{Meta, Metrics};

/// `meta` key holding the high 64 bits of a 128-bit trace id, as 16 lower-case hex digits.
pub const TRACE_ID_HIGH_KEY: &str = "_dd.p.tid";
/// `metrics` key of the sampling priority.
pub const SAMPLING_PRIORITY_KEY: &str = "_sampling_priority_v1";
/// `metrics` key marking a top-level span (set by tracers that compute it).
pub const TOP_LEVEL_KEY: &str = "_dd.top_level";
/// `metrics` key marking a measured span (stats computed although not top-level).
pub const MEASURED_KEY: &str = "_dd.measured";
/// `meta` key of the span kind (`server`, `client`, `producer`, `consumer`, `internal`).
pub const SPAN_KIND_KEY: &str = "span.kind";
/// `meta` key of the HTTP status code.
pub const HTTP_STATUS_CODE_KEY: &str = "http.status_code";

/// A trace's sampling priority (`_sampling_priority_v1`, a chunk's `priority`): who
/// decided and whether to keep. Values other than −1…2 are carried as [`Other`] so they
/// round-trip; build from the wire with [`SamplingPriority::from_i32`].
///
/// [`Other`]: SamplingPriority::Other
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SamplingPriority {
    /// −1: the user asked to drop the trace.
    UserReject,
    /// 0: the sampler dropped the trace.
    AutoReject,
    /// 1: the sampler kept the trace.
    AutoKeep,
    /// 2: the user asked to keep the trace.
    UserKeep,
    /// Any other value (kept when positive, as the Agent does).
    Other(i32),
}

impl SamplingPriority {
    /// From the wire value.
    pub fn from_i32(v: i32) -> Self {
        match v {
            -1 => Self::UserReject,
            0 => Self::AutoReject,
            1 => Self::AutoKeep,
            2 => Self::UserKeep,
            v => Self::Other(v),
        }
    }

    /// The wire value.
    pub fn as_i32(self) -> i32 {
        match self {
            Self::UserReject => -1,
            Self::AutoReject => 0,
            Self::AutoKeep => 1,
            Self::UserKeep => 2,
            Self::Other(v) => v,
        }
    }

    /// True when the trace is to be kept (a positive priority).
    pub fn keep(self) -> bool {
        self.as_i32() > 0
    }

    /// True for an automatic (sampler) decision, 0 or 1: the ones the Agent's priority
    /// sampler measures to compute `rate_by_service`.
    pub fn is_auto(self) -> bool {
        matches!(self.as_i32(), 0 | 1)
    }
}

/// A Datadog span, borrowing its strings from the payload where it can.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Span<'a> {
    /// Service name.
    pub service: Cow<'a, str>,
    /// Operation name.
    pub name: Cow<'a, str>,
    /// Resource (endpoint, query…).
    pub resource: Cow<'a, str>,
    /// Low 64 bits of the trace id.
    pub trace_id: u64,
    /// High 64 bits of a 128-bit trace id (from `meta["_dd.p.tid"]`, or a Zipkin/v0.7 id); 0
    /// for 64-bit ids.
    pub trace_id_high: u64,
    /// Span id.
    pub span_id: u64,
    /// Parent span id, 0 for a root.
    pub parent_id: u64,
    /// Start, nanoseconds since the Unix epoch.
    pub start: i64,
    /// Duration in nanoseconds.
    pub duration: i64,
    /// 1 when the span is an error.
    pub error: i32,
    /// String tags, in wire order (a lazily decoded view after msgpack decoding).
    pub meta: Meta<'a>,
    /// Numeric tags, in wire order.
    pub metrics: Metrics<'a>,
    /// Span type (`web`, `http`, `db`…).
    pub r#type: Cow<'a, str>,
    /// Structured tags: raw msgpack values by key.
    pub meta_struct: Vec<(Cow<'a, str>, Cow<'a, [u8]>)>,
    /// Links to other spans.
    pub span_links: Vec<SpanLink<'a>>,
    /// Timed events.
    pub span_events: Vec<SpanEvent<'a>>,
}

/// A span owning all its data.
pub type OwnedSpan = Span<'static>;

/// A link from a span to another span ([`span.proto`'s `SpanLink`]).
///
/// [`span.proto`'s `SpanLink`]: https://github.com/DataDog/datadog-agent/blob/main/pkg/proto/datadog/trace/span.proto
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpanLink<'a> {
    /// Low 64 bits of the linked trace id.
    pub trace_id: u64,
    /// High 64 bits of the linked trace id.
    pub trace_id_high: u64,
    /// Linked span id.
    pub span_id: u64,
    /// Attributes.
    pub attributes: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    /// W3C tracestate.
    pub tracestate: Cow<'a, str>,
    /// W3C trace flags.
    pub flags: u32,
}

/// A timed event within a span ([`span.proto`'s `SpanEvent`]).
///
/// [`span.proto`'s `SpanEvent`]: https://github.com/DataDog/datadog-agent/blob/main/pkg/proto/datadog/trace/span.proto
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpanEvent<'a> {
    /// Time, nanoseconds since the Unix epoch.
    pub time_unix_nano: u64,
    /// Event name.
    pub name: Cow<'a, str>,
    /// Attributes.
    pub attributes: Vec<(Cow<'a, str>, AttributeValue<'a>)>,
}

/// A span-event attribute value (`AttributeAnyValue`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum AttributeValue<'a> {
    /// A string.
    String(Cow<'a, str>),
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Double(f64),
    /// An array of scalar values.
    Array(Vec<AttributeValue<'a>>),
}

fn own(c: Cow<'_, str>) -> Cow<'static, str> {
    Cow::Owned(c.into_owned())
}

fn own_pairs(v: Vec<(Cow<'_, str>, Cow<'_, str>)>) -> Vec<(Cow<'static, str>, Cow<'static, str>)> {
    v.into_iter().map(|(k, v)| (own(k), own(v))).collect()
}

impl AttributeValue<'_> {
    /// Copies borrowed data so the value outlives the payload.
    pub fn into_owned(self) -> AttributeValue<'static> {
        match self {
            AttributeValue::String(s) => AttributeValue::String(own(s)),
            AttributeValue::Bool(b) => AttributeValue::Bool(b),
            AttributeValue::Int(i) => AttributeValue::Int(i),
            AttributeValue::Double(d) => AttributeValue::Double(d),
            AttributeValue::Array(a) => {
                AttributeValue::Array(a.into_iter().map(|v| v.into_owned()).collect())
            }
        }
    }
}

impl<'a> Span<'a> {
    /// The full trace id: `trace_id_high << 64 | trace_id`.
    pub fn trace_id_128(&self) -> u128 {
        (u128::from(self.trace_id_high) << 64) | u128::from(self.trace_id)
    }

    /// [`Span::start`] as a [`meshmon_core::Timestamp`] (the field keeps the wire's
    /// `int64` nanoseconds).
    pub fn start_timestamp(&self) -> meshmon_core::Timestamp {
        meshmon_core::Timestamp::from_nanos(self.start)
    }

    /// [`Span::duration`] as a [`std::time::Duration`]; a negative wire value is zero.
    pub fn elapsed(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(u64::try_from(self.duration).unwrap_or(0))
    }

    /// The value of a `meta` key (first occurrence).
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.meta.get(key)
    }

    /// The value of a `metrics` key (first occurrence).
    pub fn metric(&self, key: &str) -> Option<f64> {
        self.metrics.get(key)
    }

    /// Sets a `meta` key, replacing an existing value.
    pub fn set_meta(&mut self, key: impl Into<Cow<'a, str>>, value: impl Into<Cow<'a, str>>) {
        let key = key.into();
        let value = value.into();
        let meta = self.meta.to_mut();
        match meta.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => meta.push((key, value)),
        }
    }

    /// Sets a `metrics` key, replacing an existing value.
    pub fn set_metric(&mut self, key: impl Into<Cow<'a, str>>, value: f64) {
        let key = key.into();
        let metrics = self.metrics.to_mut();
        match metrics.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => metrics.push((key, value)),
        }
    }

    /// Removes a `meta` key; true if it was present.
    pub fn remove_meta(&mut self, key: &str) -> bool {
        if self.meta.get(key).is_none() {
            return false;
        }
        self.meta.to_mut().retain(|(k, _)| k != key);
        true
    }

    /// The sampling priority (`metrics["_sampling_priority_v1"]`), if set.
    pub fn sampling_priority(&self) -> Option<SamplingPriority> {
        self.metric(SAMPLING_PRIORITY_KEY)
            .map(|p| SamplingPriority::from_i32(p as i32))
    }

    /// True when the span is an error.
    pub fn is_error(&self) -> bool {
        self.error != 0
    }

    /// `span.kind`, or "" when absent.
    pub fn kind(&self) -> &str {
        self.meta(SPAN_KIND_KEY).unwrap_or("")
    }

    /// True when the tracer marked the span top-level (`_dd.top_level = 1`).
    pub fn is_top_level(&self) -> bool {
        self.metric(TOP_LEVEL_KEY) == Some(1.0)
    }

    /// True when the span is measured (`_dd.measured = 1`).
    pub fn is_measured(&self) -> bool {
        self.metric(MEASURED_KEY) == Some(1.0)
    }

    /// Reads `meta["_dd.p.tid"]` into [`Span::trace_id_high`] when it is 16 hex digits
    /// (and the high part is not already set). Returns true when it was set.
    pub fn apply_trace_id_high(&mut self) -> bool {
        if self.trace_id_high != 0 {
            return false;
        }
        match self.meta(TRACE_ID_HIGH_KEY).and_then(parse_hex_u64) {
            Some(h) => {
                self.trace_id_high = h;
                true
            }
            None => false,
        }
    }

    /// Copies every borrowed string so the span outlives the payload.
    pub fn into_owned(self) -> OwnedSpan {
        Span {
            service: own(self.service),
            name: own(self.name),
            resource: own(self.resource),
            trace_id: self.trace_id,
            trace_id_high: self.trace_id_high,
            span_id: self.span_id,
            parent_id: self.parent_id,
            start: self.start,
            duration: self.duration,
            error: self.error,
            meta: self.meta.into_owned(),
            metrics: self.metrics.into_owned(),
            r#type: own(self.r#type),
            meta_struct: self
                .meta_struct
                .into_iter()
                .map(|(k, v)| (own(k), Cow::Owned(v.into_owned())))
                .collect(),
            span_links: self
                .span_links
                .into_iter()
                .map(|l| SpanLink {
                    trace_id: l.trace_id,
                    trace_id_high: l.trace_id_high,
                    span_id: l.span_id,
                    attributes: own_pairs(l.attributes),
                    tracestate: own(l.tracestate),
                    flags: l.flags,
                })
                .collect(),
            span_events: self
                .span_events
                .into_iter()
                .map(|e| SpanEvent {
                    time_unix_nano: e.time_unix_nano,
                    name: own(e.name),
                    attributes: e
                        .attributes
                        .into_iter()
                        .map(|(k, v)| (own(k), v.into_owned()))
                        .collect(),
                })
                .collect(),
        }
    }
}

/// Parses up to 16 hex digits (either case) into a `u64`.
pub fn parse_hex_u64(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

/// A trace chunk: spans of one trace sent together, with the chunk-level sampling decision
/// (`TraceChunk` of `tracer_payload.proto`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraceChunk<'a> {
    /// Sampling priority of the chunk, `None` when the tracer set none.
    pub priority: Option<SamplingPriority>,
    /// Origin (`synthetics`, `lambda`…).
    pub origin: Cow<'a, str>,
    /// The spans.
    pub spans: Vec<Span<'a>>,
    /// Chunk tags (`_dd.p.*` propagated tags in v0.7).
    pub tags: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    /// Set when the tracer already dropped the trace (sent only for stats).
    pub dropped_trace: bool,
}

impl<'a> TraceChunk<'a> {
    /// A chunk of spans with the priority read from them (root span first, then any span),
    /// as the Agent does for v0.3–v0.5 payloads.
    pub fn from_spans(spans: Vec<Span<'a>>) -> Self {
        let mut chunk = TraceChunk {
            spans,
            ..TraceChunk::default()
        };
        chunk.priority = chunk
            .root()
            .and_then(Span::sampling_priority)
            .or_else(|| chunk.spans.iter().find_map(Span::sampling_priority));
        chunk
    }

    /// The root span: the one whose parent is not in the chunk (the last such, as the
    /// Agent's `traceutil.GetRoot` picks), or the first span.
    pub fn root(&self) -> Option<&Span<'a>> {
        root_index(&self.spans).map(|i| &self.spans[i])
    }

    /// Copies borrowed data so the chunk outlives the payload.
    pub fn into_owned(self) -> TraceChunk<'static> {
        TraceChunk {
            priority: self.priority,
            origin: own(self.origin),
            spans: self.spans.into_iter().map(Span::into_owned).collect(),
            tags: own_pairs(self.tags),
            dropped_trace: self.dropped_trace,
        }
    }
}

/// Index of the root span: a span with `parent_id == 0`, else the last span whose parent
/// is not in the slice, else the first (the Agent's `traceutil.GetRoot`).
pub fn root_index(spans: &[Span<'_>]) -> Option<usize> {
    if spans.is_empty() {
        return None;
    }
    if let Some(i) = spans.iter().rposition(|s| s.parent_id == 0) {
        return Some(i);
    }
    if spans.len() <= 64 {
        for i in (0..spans.len()).rev() {
            let p = spans[i].parent_id;
            if !spans.iter().any(|s| s.span_id == p) {
                return Some(i);
            }
        }
    } else {
        let ids: hashbrown::HashSet<u64> = spans.iter().map(|s| s.span_id).collect();
        for i in (0..spans.len()).rev() {
            if !ids.contains(&spans[i].parent_id) {
                return Some(i);
            }
        }
    }
    Some(0)
}

/// What one request carried: tracer metadata and trace chunks (`TracerPayload` of
/// `tracer_payload.proto`; v0.3–v0.5 payloads fill only `chunks`, the metadata comes
/// from HTTP headers).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TracerPayload<'a> {
    /// Container id.
    pub container_id: Cow<'a, str>,
    /// Tracer language (`Datadog-Meta-Lang`).
    pub language_name: Cow<'a, str>,
    /// Language version.
    pub language_version: Cow<'a, str>,
    /// Tracer version.
    pub tracer_version: Cow<'a, str>,
    /// Runtime id.
    pub runtime_id: Cow<'a, str>,
    /// Trace chunks.
    pub chunks: Vec<TraceChunk<'a>>,
    /// Payload tags.
    pub tags: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    /// `env`.
    pub env: Cow<'a, str>,
    /// Host name.
    pub hostname: Cow<'a, str>,
    /// Application version.
    pub app_version: Cow<'a, str>,
}

impl<'a> TracerPayload<'a> {
    /// A payload of chunks (v0.3–v0.5 form).
    pub fn from_chunks(chunks: Vec<TraceChunk<'a>>) -> Self {
        TracerPayload {
            chunks,
            ..TracerPayload::default()
        }
    }

    /// Total spans across chunks.
    pub fn span_count(&self) -> usize {
        self.chunks.iter().map(|c| c.spans.len()).sum()
    }

    /// Iterates over all spans.
    pub fn spans(&self) -> impl Iterator<Item = &Span<'a>> {
        self.chunks.iter().flat_map(|c| c.spans.iter())
    }

    /// Copies borrowed data so the payload outlives the body.
    pub fn into_owned(self) -> TracerPayload<'static> {
        TracerPayload {
            container_id: own(self.container_id),
            language_name: own(self.language_name),
            language_version: own(self.language_version),
            tracer_version: own(self.tracer_version),
            runtime_id: own(self.runtime_id),
            chunks: self
                .chunks
                .into_iter()
                .map(TraceChunk::into_owned)
                .collect(),
            tags: own_pairs(self.tags),
            env: own(self.env),
            hostname: own(self.hostname),
            app_version: own(self.app_version),
        }
    }
}

impl Span<'_> {
    /// The span as a JSON object (ids as numbers, plus `trace_id_128` as 32 hex digits).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "trace_id_128": format!("{:032x}", self.trace_id_128()),
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_id": self.parent_id,
            "service": self.service,
            "name": self.name,
            "resource": self.resource,
            "type": self.r#type,
            "start": self.start,
            "duration": self.duration,
            "error": self.error,
            "meta": serde_json::Value::Object(self.meta.iter().map(|(k, v)| (k.to_string(), serde_json::Value::from(v))).collect()),
            "metrics": serde_json::Value::Object(self.metrics.iter().map(|(k, v)| (k.to_string(), serde_json::Value::from(v))).collect()),
        })
    }
}
