//! A transport-agnostic trace intake: (method, path, headers, body) in, (status, headers,
//! body) out, with the endpoints, status codes and headers of the Datadog Agent's receiver
//! (`pkg/trace/api/api.go`) and Zipkin's `/api/v2/spans`. Any HTTP server can put it on a
//! socket; tests call it directly.
//!
//! | endpoint | methods | reply |
//! |---|---|---|
//! | `/info` | GET | 200, JSON listing the endpoints |
//! | `/v0.3/traces` | POST, PUT | 200 `OK` |
//! | `/v0.4/traces`, `/v0.5/traces`, `/v0.7/traces` | POST, PUT | 200 `{"rate_by_service":{…}}` |
//! | `/v0.6/stats` | POST, PUT | 200 `OK` (client stats accepted and counted) |
//! | `/api/v2/spans` | POST | 202 |
//!
//! Errors: 400 with the reason (and byte offset) for a bad payload, 413 over
//! [`Limits::max_body_bytes`], 429 when the queue of kept spans is full (200 when the
//! client did not send `Datadog-Send-Real-Http-Status`: the payload is dropped and counted
//! either way), 403 for `Sec-Fetch-Site: cross-site`, 404 and 405.
//!
//! Every span is accounted for: `spans_received = spans_kept + spans_sampled_out +
//! spans_dropped()` ([`ReceiverCounters::balanced`]), where the dropped spans are those
//! refused by normalisation or by a full queue.
//!
//! # The request path
//!
//! [`Receiver::handle`] decodes the body in place (the [`Request::body`] is a
//! [`bytes::Bytes`], kept alive by reference count), normalises every chunk, counts RED
//! stats and service-map edges on the *borrowed* spans, samples, and queues the kept chunks
//! still borrowing from the body ([`KeptPayload`]). Nothing is copied per span; the
//! consumer copies what it keeps for long ([`KeptChunk::to_owned_chunk`]), so only the
//! trace store pays for ownership. The queue is bounded in spans and in body bytes.

use std::borrow::Cow;
use std::collections::VecDeque;

use bytes::Bytes;
use meshmon_core::Timestamp;

use crate::DecodeError;
use crate::decode::{self, Format, Limits};
use crate::normalize::{NormalizeStats, Normalizer, compute_top_level};
use crate::sampler::{AgentSampler, Decision, SamplerConfig, SamplerConfigError};
use crate::servicemap::{DEFAULT_MAX_EDGES, ServiceMap};
use crate::span::{TraceChunk, TracerPayload};
use crate::stats::{Concentrator, StatsBucket, StatsConfig, StatsConfigError};

/// An HTTP request as the receiver sees it.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// Method (`GET`, `POST`…).
    pub method: &'a str,
    /// Path (a query string is ignored).
    pub path: &'a str,
    /// Headers (names compared case-insensitively).
    pub headers: &'a [(&'a str, &'a str)],
    /// The body. Kept chunks borrow from it, so it stays alive (shared, not copied) until
    /// the consumer drops them.
    pub body: Bytes,
}

impl Request<'_> {
    /// First value of a header, case-insensitive.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

/// The receiver's reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl Response {
    fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            headers: vec![("Content-Type".to_string(), content_type.to_string())],
            body: body.into(),
        }
    }
    fn text(status: u16, body: impl Into<String>) -> Self {
        Self::new(
            status,
            "text/plain; charset=utf-8",
            body.into().into_bytes(),
        )
    }
}

/// The endpoints the receiver serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Endpoint {
    /// `/v0.3/traces`.
    V03Traces,
    /// `/v0.4/traces`.
    V04Traces,
    /// `/v0.5/traces`.
    V05Traces,
    /// `/v0.7/traces`.
    V07Traces,
    /// `/v0.6/stats` (client-computed stats).
    V06Stats,
    /// Zipkin's `/api/v2/spans`.
    ZipkinSpans,
    /// `/info`.
    Info,
}

impl Endpoint {
    /// Every endpoint, in `/info` order.
    pub const ALL: [Endpoint; 7] = [
        Endpoint::V03Traces,
        Endpoint::V04Traces,
        Endpoint::V05Traces,
        Endpoint::V07Traces,
        Endpoint::V06Stats,
        Endpoint::ZipkinSpans,
        Endpoint::Info,
    ];

    /// The path.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::V03Traces => "/v0.3/traces",
            Endpoint::V04Traces => "/v0.4/traces",
            Endpoint::V05Traces => "/v0.5/traces",
            Endpoint::V07Traces => "/v0.7/traces",
            Endpoint::V06Stats => "/v0.6/stats",
            Endpoint::ZipkinSpans => "/api/v2/spans",
            Endpoint::Info => "/info",
        }
    }

    /// The endpoint of a path (a query string is ignored).
    pub fn from_path(path: &str) -> Option<Endpoint> {
        let path = path.split('?').next().unwrap_or("");
        Endpoint::ALL.into_iter().find(|e| e.path() == path)
    }

    /// The wire format of a trace endpoint (`None` for `/info` and `/v0.6/stats`).
    pub fn format(self) -> Option<Format> {
        match self {
            Endpoint::V03Traces | Endpoint::V04Traces => Some(Format::V04),
            Endpoint::V05Traces => Some(Format::V05),
            Endpoint::V07Traces => Some(Format::V07),
            Endpoint::ZipkinSpans => Some(Format::Zipkin),
            Endpoint::V06Stats | Endpoint::Info => None,
        }
    }
}

/// Why a [`ReceiverConfig`] was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A sampler setting.
    #[error("sampler: {0}")]
    Sampler(#[from] SamplerConfigError),
    /// A stats setting.
    #[error("stats: {0}")]
    Stats(#[from] StatsConfigError),
    /// A decoding limit.
    #[error("limits: {0}")]
    Limits(#[from] crate::decode::LimitsError),
    /// A queue or map bound is zero.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
}

/// Configuration of the [`Receiver`]. Start from [`ReceiverConfig::default`], change
/// fields, and let [`Receiver::new`] validate it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ReceiverConfig {
    /// Decoding limits.
    pub limits: Limits,
    /// Samplers.
    pub sampler: SamplerConfig,
    /// RED stats buckets.
    pub stats: StatsConfig,
    /// Most kept spans waiting in the queue; a payload that does not fit is refused (429).
    pub max_queued_spans: usize,
    /// Most body bytes the queue keeps alive (kept chunks borrow from their body); a
    /// payload that does not fit is refused (429).
    pub max_queued_bytes: usize,
    /// Most edges of the service map ([`ServiceMap::edges_dropped`] counts the rest).
    pub max_service_map_edges: usize,
    /// `env` used when neither spans nor payload carry one (`DD_APM_ENV`).
    pub default_env: String,
    /// Version reported by `/info`.
    pub version: String,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        ReceiverConfig {
            limits: Limits::default(),
            sampler: SamplerConfig::default(),
            stats: StatsConfig::default(),
            max_queued_spans: 1_000_000,
            max_queued_bytes: 256 << 20,
            max_service_map_edges: DEFAULT_MAX_EDGES,
            default_env: String::new(),
            version: concat!("meshmon-trace ", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }
}

impl ReceiverConfig {
    /// Sets the default `env`.
    pub fn with_default_env(mut self, env: impl Into<String>) -> Self {
        self.default_env = env.into();
        self
    }

    /// Sets the decoding limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets the samplers.
    pub fn with_sampler(mut self, sampler: SamplerConfig) -> Self {
        self.sampler = sampler;
        self
    }

    /// Sets the stats buckets.
    pub fn with_stats(mut self, stats: StatsConfig) -> Self {
        self.stats = stats;
        self
    }

    /// Checks every setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.sampler.validate()?;
        self.stats.validate()?;
        self.limits.validate()?;
        for (name, v) in [
            ("max_queued_spans", self.max_queued_spans),
            ("max_queued_bytes", self.max_queued_bytes),
            ("max_service_map_edges", self.max_service_map_edges),
        ] {
            if v == 0 {
                return Err(ConfigError::Zero(name));
            }
        }
        Ok(())
    }
}

/// What the receiver counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReceiverCounters {
    /// Trace payloads received (any trace endpoint).
    pub payloads: u64,
    /// Payloads refused as malformed (400).
    pub payloads_invalid: u64,
    /// Payloads refused as too large (413).
    pub payloads_too_large: u64,
    /// Payloads refused because the queue was full.
    pub payloads_queue_full: u64,
    /// `/v0.6/stats` payloads accepted.
    pub stats_payloads: u64,
    /// Traces (chunks) decoded.
    pub traces_received: u64,
    /// Spans decoded.
    pub spans_received: u64,
    /// Traces kept by sampling.
    pub traces_kept: u64,
    /// Spans kept by sampling.
    pub spans_kept: u64,
    /// Traces sampled out.
    pub traces_sampled_out: u64,
    /// Spans sampled out.
    pub spans_sampled_out: u64,
    /// Traces dropped by normalisation.
    pub traces_dropped_normalize: u64,
    /// Spans dropped by normalisation.
    pub spans_dropped_normalize: u64,
    /// Traces dropped because the queue was full.
    pub traces_dropped_queue_full: u64,
    /// Spans dropped because the queue was full.
    pub spans_dropped_queue_full: u64,
    /// `Datadog-Client-Dropped-P0-Traces` summed.
    pub client_dropped_p0_traces: u64,
    /// `Datadog-Client-Dropped-P0-Spans` summed.
    pub client_dropped_p0_spans: u64,
    /// Payloads whose `X-Datadog-Trace-Count` differed from the traces decoded.
    pub trace_count_mismatch: u64,
}

impl ReceiverCounters {
    /// Spans dropped for any reason (normalisation, full queue).
    pub fn spans_dropped(&self) -> u64 {
        self.spans_dropped_normalize + self.spans_dropped_queue_full
    }

    /// Traces dropped for any reason (normalisation, full queue).
    pub fn traces_dropped(&self) -> u64 {
        self.traces_dropped_normalize + self.traces_dropped_queue_full
    }

    /// True when every received span is accounted for:
    /// `spans_received == spans_kept + spans_sampled_out + spans_dropped()`.
    pub fn balanced(&self) -> bool {
        self.spans_received == self.spans_kept + self.spans_sampled_out + self.spans_dropped()
            && self.traces_received
                == self.traces_kept + self.traces_sampled_out + self.traces_dropped()
    }
}

/// Which work the tracer already did, from the `Datadog-Client-Computed-*` headers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientComputed {
    /// `Datadog-Client-Computed-Stats`: the tracer sent its own RED stats (to
    /// `/v0.6/stats`), so the receiver does not count these spans in its stats.
    pub stats: bool,
    /// `Datadog-Client-Computed-Top-Level`: the tracer marked top-level spans itself.
    pub top_level: bool,
}

impl ClientComputed {
    /// Nothing computed by the client: the receiver does all.
    pub const NONE: ClientComputed = ClientComputed {
        stats: false,
        top_level: false,
    };

    /// From the request headers.
    pub fn from_request(req: &Request<'_>) -> Self {
        ClientComputed {
            stats: truthy(req.header("Datadog-Client-Computed-Stats")),
            top_level: truthy(req.header("Datadog-Client-Computed-Top-Level")),
        }
    }
}

/// Tracer metadata of a payload (from its headers, or the v0.7 payload itself).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PayloadInfo {
    /// The endpoint it came in on.
    pub endpoint: Option<Endpoint>,
    /// Tracer language (`Datadog-Meta-Lang` or the v0.7 payload's).
    pub lang: String,
    /// Language version (`Datadog-Meta-Lang-Version`).
    pub lang_version: String,
    /// Language interpreter (`Datadog-Meta-Lang-Interpreter`).
    pub lang_interpreter: String,
    /// Tracer version (`Datadog-Meta-Tracer-Version`).
    pub tracer_version: String,
    /// When the payload was received.
    pub received: Timestamp,
}

impl PayloadInfo {
    /// Metadata of a payload received at `now` on `endpoint` with tracer language `lang`.
    pub fn new(endpoint: Option<Endpoint>, lang: impl Into<String>, now: Timestamp) -> Self {
        PayloadInfo {
            endpoint,
            lang: lang.into(),
            received: now,
            ..PayloadInfo::default()
        }
    }
}

/// A kept chunk, borrowing from its request body.
#[derive(Debug, Clone)]
pub struct KeptChunk<'a> {
    /// The normalised chunk.
    pub chunk: TraceChunk<'a>,
    /// Which sampler kept it.
    pub decision: Decision,
    /// Its `env` (root span's, else the payload's, else the configured default).
    pub env: Cow<'a, str>,
}

impl KeptChunk<'_> {
    /// A copy that owns its strings, for a store that outlives the body.
    pub fn to_owned_chunk(&self) -> KeptChunk<'static> {
        KeptChunk {
            chunk: self.chunk.clone().into_owned(),
            decision: self.decision,
            env: Cow::Owned(self.env.to_string()),
        }
    }
}

type KeptChunks<'a> = Vec<KeptChunk<'a>>;

self_cell::self_cell!(
    struct PayloadCell {
        owner: Bytes,
        #[covariant]
        dependent: KeptChunks,
    }
    impl {Debug}
);

/// The kept chunks of one payload with the body they borrow from (shared by reference
/// count, never copied). Drop it, or copy what you keep with
/// [`KeptPayload::into_owned_chunks`], to release the body.
#[derive(Debug)]
pub struct KeptPayload {
    cell: PayloadCell,
    info: PayloadInfo,
    spans: usize,
}

impl KeptPayload {
    /// The kept chunks.
    pub fn chunks(&self) -> &[KeptChunk<'_>] {
        self.cell.borrow_dependent()
    }

    /// Tracer metadata of the payload.
    pub fn info(&self) -> &PayloadInfo {
        &self.info
    }

    /// Spans in the kept chunks.
    pub fn span_count(&self) -> usize {
        self.spans
    }

    /// Bytes of the body this payload keeps alive.
    pub fn body_len(&self) -> usize {
        self.cell.borrow_owner().len()
    }

    /// Copies the chunks out (owned strings) and releases the body.
    pub fn into_owned_chunks(self) -> Vec<KeptChunk<'static>> {
        self.chunks()
            .iter()
            .map(KeptChunk::to_owned_chunk)
            .collect()
    }
}

/// The trace intake. One per process (or per listener); drive it with
/// [`Receiver::handle`] for each HTTP request and drain it from time to time:
/// [`Receiver::drain_kept`] (kept chunks for the trace store),
/// [`Receiver::flush_stats`] (RED stats, see [`crate::stats::apm_metrics`]),
/// [`Receiver::service_map`], [`Receiver::counters`].
#[derive(Debug)]
pub struct Receiver {
    config: ReceiverConfig,
    normalizer: Normalizer,
    sampler: AgentSampler,
    stats: Concentrator,
    map: ServiceMap,
    counters: ReceiverCounters,
    queue: VecDeque<KeptPayload>,
    queued_spans: usize,
    queued_bytes: usize,
}

fn truthy(v: Option<&str>) -> bool {
    matches!(v.map(str::trim), Some(v) if !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

impl Default for Receiver {
    fn default() -> Self {
        Self::build(ReceiverConfig::default())
    }
}

impl Receiver {
    /// A receiver with empty state; the configuration is validated.
    pub fn new(config: ReceiverConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self::build(config))
    }

    fn build(config: ReceiverConfig) -> Self {
        let sampler = AgentSampler::new(config.sampler)
            .unwrap_or_else(|e| unreachable!("validated sampler config: {e}"));
        let stats = Concentrator::new(config.stats)
            .unwrap_or_else(|e| unreachable!("validated stats config: {e}"));
        Receiver {
            sampler,
            stats,
            map: ServiceMap::with_max_edges(config.max_service_map_edges),
            normalizer: Normalizer::new(),
            counters: ReceiverCounters::default(),
            queue: VecDeque::new(),
            queued_spans: 0,
            queued_bytes: 0,
            config,
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &ReceiverConfig {
        &self.config
    }

    /// What was counted so far.
    pub fn counters(&self) -> ReceiverCounters {
        self.counters
    }

    /// What normalisation changed or dropped so far.
    pub fn normalize_stats(&self) -> NormalizeStats {
        self.normalizer.stats
    }

    /// The samplers (their rates are the `rate_by_service` reply).
    pub fn sampler(&self) -> &AgentSampler {
        &self.sampler
    }

    /// The RED stats aggregator (spans not counted for lack of room:
    /// [`Concentrator::groups_dropped`]).
    pub fn concentrator(&self) -> &Concentrator {
        &self.stats
    }

    /// Flushes the RED stats buckets that are complete at `now` (all of them with
    /// `force`, at shutdown). Feed them to [`crate::stats::apm_metrics`] for series.
    pub fn flush_stats(&mut self, now: Timestamp, force: bool) -> Vec<StatsBucket> {
        self.stats.flush(now, force)
    }

    /// The service map of every normalised chunk received (before sampling), cumulative.
    /// Edges whose two ends arrive in different payloads are counted from the client
    /// span's `peer.service` / Envoy `upstream_cluster` (see [`crate::servicemap`]).
    pub fn service_map(&self) -> &ServiceMap {
        &self.map
    }

    /// Takes the service map, leaving an empty one with the same bound.
    pub fn take_service_map(&mut self) -> ServiceMap {
        std::mem::replace(
            &mut self.map,
            ServiceMap::with_max_edges(self.config.max_service_map_edges),
        )
    }

    /// Spans waiting in the queue.
    pub fn queued_spans(&self) -> usize {
        self.queued_spans
    }

    /// Body bytes the queue keeps alive.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Takes every queued payload of kept chunks.
    pub fn drain_kept(&mut self) -> Vec<KeptPayload> {
        self.queued_spans = 0;
        self.queued_bytes = 0;
        self.queue.drain(..).collect()
    }

    /// The `rate_by_service` reply body.
    pub fn rate_by_service_json(&self) -> String {
        let mut m = serde_json::Map::new();
        for (k, v) in self.sampler.priority.rate_by_service() {
            m.insert(k, serde_json::Value::from(v));
        }
        serde_json::json!({ "rate_by_service": m }).to_string()
    }

    fn info(&self) -> Response {
        // Everything from the objects that run: the samplers report their own settings.
        let sampler = self.sampler.config();
        let body = serde_json::json!({
            "version": self.config.version,
            "endpoints": Endpoint::ALL.map(Endpoint::path),
            "client_drop_p0s": false,
            "span_meta_structs": true,
            "span_events": true,
            "long_running_spans": false,
            "config": {
                "default_env": self.config.default_env,
                "max_request_bytes": self.config.limits.max_body_bytes,
                "target_tps": sampler.target_tps,
                "errors_tps": sampler.errors_tps,
                "rare_sampler_enabled": sampler.rare_enabled,
            }
        });
        Response::new(200, "application/json", body.to_string())
    }

    /// Handles one request at time `now`: decode, normalise, RED stats, service map,
    /// sampling, and queueing of the kept chunks (see [`Receiver::drain_kept`]).
    pub fn handle(&mut self, req: &Request<'_>, now: Timestamp) -> Response {
        if req
            .header("Sec-Fetch-Site")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("cross-site"))
        {
            return Response::text(403, "cross-site requests are not accepted\n");
        }
        let Some(endpoint) = Endpoint::from_path(req.path) else {
            let path = req.path.split('?').next().unwrap_or("");
            return Response::text(404, format!("404 page not found: {path}\n"));
        };
        if endpoint == Endpoint::Info {
            return if req.method.eq_ignore_ascii_case("GET") {
                self.info()
            } else {
                Response::text(405, "method not allowed\n")
            };
        }
        let m = req.method;
        let allowed = m.eq_ignore_ascii_case("POST")
            || (m.eq_ignore_ascii_case("PUT") && endpoint != Endpoint::ZipkinSpans);
        if !allowed {
            return Response::text(405, "method not allowed\n");
        }
        let format = endpoint.format();
        let declared = req
            .header("Content-Length")
            .and_then(|v| v.trim().parse::<u64>().ok());
        let limit = self.config.limits.max_body_bytes as u64;
        if req.body.len() as u64 > limit || declared.is_some_and(|d| d > limit) {
            if format.is_some() {
                self.counters.payloads += 1;
                self.counters.payloads_too_large += 1;
            }
            return Response::text(413, format!("payload exceeds the limit of {limit} bytes\n"));
        }
        let Some(mut format) = format else {
            self.counters.stats_payloads += 1;
            return Response::text(200, "OK\n");
        };
        self.counters.payloads += 1;
        let json = req
            .header("Content-Type")
            .is_some_and(|c| c.to_ascii_lowercase().contains("application/json"));
        if format == Format::V04 && json {
            format = Format::Json;
        }
        let computed = ClientComputed::from_request(req);
        for (header, counter) in [
            (
                "Datadog-Client-Dropped-P0-Traces",
                &mut self.counters.client_dropped_p0_traces,
            ),
            (
                "Datadog-Client-Dropped-P0-Spans",
                &mut self.counters.client_dropped_p0_spans,
            ),
        ] {
            if let Some(n) = req
                .header(header)
                .and_then(|v| v.trim().parse::<u64>().ok())
            {
                *counter += n;
            }
        }
        let mut info = PayloadInfo::new(
            Some(endpoint),
            req.header("Datadog-Meta-Lang").unwrap_or(""),
            now,
        );
        info.lang_version = req
            .header("Datadog-Meta-Lang-Version")
            .unwrap_or("")
            .to_string();
        info.lang_interpreter = req
            .header("Datadog-Meta-Lang-Interpreter")
            .unwrap_or("")
            .to_string();
        info.tracer_version = req
            .header("Datadog-Meta-Tracer-Version")
            .unwrap_or("")
            .to_string();
        let declared_traces = req
            .header("X-Datadog-Trace-Count")
            .and_then(|v| v.trim().parse::<usize>().ok());
        let limits = self.config.limits;
        let mut queue_full = false;
        let cell = PayloadCell::try_new(req.body.clone(), |body| {
            let payload = decode::decode(format, body, &limits)?;
            if declared_traces.is_some_and(|n| n != payload.chunks.len()) {
                self.counters.trace_count_mismatch += 1;
            }
            match self.process(payload, &mut info, computed, now) {
                Ok(kept) => Ok(kept),
                Err(QueueFull) => {
                    queue_full = true;
                    Ok(Vec::new())
                }
            }
        });
        let cell = match cell {
            Ok(c) => c,
            Err(e) => {
                self.counters.payloads_invalid += 1;
                let status = if matches!(e, DecodeError::BodyTooLarge { .. }) {
                    413
                } else {
                    400
                };
                return Response::text(
                    status,
                    format!("unable to decode {} payload: {e}\n", format.as_str()),
                );
            }
        };
        let spans: usize = cell
            .borrow_dependent()
            .iter()
            .map(|k| k.chunk.spans.len())
            .sum();
        if !cell.borrow_dependent().is_empty() {
            self.queued_spans += spans;
            self.queued_bytes += req.body.len();
            self.queue.push_back(KeptPayload { cell, info, spans });
        }
        if queue_full && req.header("Datadog-Send-Real-Http-Status").is_some() {
            return Response::text(429, "too many requests: the trace queue is full\n");
        }
        match endpoint {
            Endpoint::V03Traces => Response::text(200, "OK\n"),
            Endpoint::ZipkinSpans => Response::text(202, ""),
            _ => Response::new(200, "application/json", self.rate_by_service_json()),
        }
    }

    /// Normalises, counts RED stats and service-map edges for, and samples a decoded
    /// payload received at `now`; returns the kept chunks (still borrowing from the
    /// payload) without queueing them. `info` gets the v0.7 payload's tracer metadata
    /// where its headers gave none. [`QueueFull`] when the queue bound (which
    /// [`Receiver::handle`] applies to what it queues) leaves no room for the payload:
    /// its spans are counted as dropped.
    pub fn process<'a>(
        &mut self,
        payload: TracerPayload<'a>,
        info: &mut PayloadInfo,
        computed: ClientComputed,
        now: Timestamp,
    ) -> Result<Vec<KeptChunk<'a>>, QueueFull> {
        for (field, value) in [
            (&mut info.lang, &payload.language_name),
            (&mut info.lang_version, &payload.language_version),
            (&mut info.tracer_version, &payload.tracer_version),
        ] {
            if field.is_empty() && !value.is_empty() {
                *field = value.to_string();
            }
        }
        let total: usize = payload.span_count();
        self.counters.traces_received += payload.chunks.len() as u64;
        self.counters.spans_received += total as u64;
        if self.queued_spans + total > self.config.max_queued_spans
            || self.queued_bytes >= self.config.max_queued_bytes
        {
            self.counters.payloads_queue_full += 1;
            self.counters.traces_dropped_queue_full += payload.chunks.len() as u64;
            self.counters.spans_dropped_queue_full += total as u64;
            return Err(QueueFull);
        }
        let payload_env = payload.env;
        let mut kept = Vec::new();
        for mut chunk in payload.chunks {
            let n = chunk.spans.len() as u64;
            if self
                .normalizer
                .normalize_chunk(&mut chunk, &info.lang, now)
                .is_err()
            {
                self.counters.traces_dropped_normalize += 1;
                self.counters.spans_dropped_normalize += n;
                continue;
            }
            if !computed.top_level {
                compute_top_level(&mut chunk.spans);
            }
            let env: &str = match chunk.root().and_then(|r| r.meta("env")) {
                Some(e) if !e.is_empty() => e,
                _ if !payload_env.is_empty() => &payload_env,
                _ => &self.config.default_env,
            };
            if !computed.stats {
                self.stats.add_spans(&chunk.spans, env);
            }
            self.map.add_trace(&chunk.spans);
            let decision = if chunk.dropped_trace {
                Decision::Drop
            } else {
                self.sampler.decide(now, &chunk, env)
            };
            if decision.keep() {
                // Only kept chunks pay for their env string.
                let env = Cow::Owned(env.to_string());
                self.counters.traces_kept += 1;
                self.counters.spans_kept += n;
                kept.push(KeptChunk {
                    chunk,
                    decision,
                    env,
                });
            } else {
                self.counters.traces_sampled_out += 1;
                self.counters.spans_sampled_out += n;
            }
        }
        Ok(kept)
    }
}

/// The receiver's queue had no room for a payload (its spans are counted as dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the trace queue is full")]
pub struct QueueFull;
