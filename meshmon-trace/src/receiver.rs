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
//! spans_dropped_normalize + spans_dropped_queue_full` ([`ReceiverCounters::balanced`]).

use std::collections::VecDeque;

use meshmon_core::Timestamp;

use crate::decode::{self, Format, Limits};
use crate::normalize::{Normalizer, compute_top_level};
use crate::sampler::{AgentSampler, Decision, SamplerConfig};
use crate::span::{TraceChunk, TracerPayload};
use crate::stats::{Concentrator, StatsConfig};

/// An HTTP request as the receiver sees it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Method (`GET`, `POST`…).
    pub method: &'a str,
    /// Path without the query string.
    pub path: &'a str,
    /// Headers (names compared case-insensitively).
    pub headers: &'a [(&'a str, &'a str)],
    /// The body.
    pub body: &'a [u8],
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

/// Configuration of the [`Receiver`].
#[derive(Debug, Clone, PartialEq)]
pub struct ReceiverConfig {
    /// Decoding limits.
    pub limits: Limits,
    /// Samplers.
    pub sampler: SamplerConfig,
    /// RED stats buckets.
    pub stats: StatsConfig,
    /// Most kept spans waiting in the queue; a payload that does not fit is refused (429).
    pub max_queued_spans: usize,
    /// `env` used when neither spans nor payload carry one.
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
            default_env: String::new(),
            version: concat!("meshmon-trace ", env!("CARGO_PKG_VERSION")).to_string(),
        }
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
    /// True when every received span is accounted for.
    pub fn balanced(&self) -> bool {
        self.spans_received
            == self.spans_kept
                + self.spans_sampled_out
                + self.spans_dropped_normalize
                + self.spans_dropped_queue_full
    }
}

/// A kept chunk waiting for the consumer, with the tracer metadata of its payload.
#[derive(Debug, Clone)]
pub struct QueuedChunk {
    /// The chunk (owned).
    pub chunk: TraceChunk<'static>,
    /// Which sampler kept it.
    pub decision: Decision,
    /// Tracer language (`Datadog-Meta-Lang` or the v0.7 payload's).
    pub lang: String,
    /// Language version (`Datadog-Meta-Lang-Version`).
    pub lang_version: String,
    /// Language interpreter (`Datadog-Meta-Lang-Interpreter`).
    pub lang_interpreter: String,
    /// Tracer version (`Datadog-Meta-Tracer-Version`).
    pub tracer_version: String,
    /// The endpoint it came in on.
    pub endpoint: &'static str,
}

/// The trace intake.
#[derive(Debug)]
pub struct Receiver {
    /// Configuration.
    pub config: ReceiverConfig,
    /// Normalisation counters live here.
    pub normalizer: Normalizer,
    /// Samplers.
    pub sampler: AgentSampler,
    /// RED stats of every received span (before sampling, unless the client computed them).
    pub stats: Concentrator,
    /// Counters.
    pub counters: ReceiverCounters,
    queue: VecDeque<QueuedChunk>,
    queued_spans: usize,
}

const TRACE_ENDPOINTS: [&str; 7] = [
    "/v0.3/traces",
    "/v0.4/traces",
    "/v0.5/traces",
    "/v0.7/traces",
    "/v0.6/stats",
    "/api/v2/spans",
    "/info",
];

fn truthy(v: Option<&str>) -> bool {
    matches!(v.map(str::trim), Some(v) if !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

impl Receiver {
    /// A receiver with empty state.
    pub fn new(config: ReceiverConfig) -> Self {
        Receiver {
            sampler: AgentSampler::new(config.sampler),
            stats: Concentrator::new(config.stats),
            normalizer: Normalizer::new(),
            counters: ReceiverCounters::default(),
            queue: VecDeque::new(),
            queued_spans: 0,
            config,
        }
    }

    /// Spans waiting in the queue.
    pub fn queued_spans(&self) -> usize {
        self.queued_spans
    }

    /// Takes every queued chunk.
    pub fn drain(&mut self) -> Vec<QueuedChunk> {
        self.queued_spans = 0;
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
        let body = serde_json::json!({
            "version": self.config.version,
            "endpoints": TRACE_ENDPOINTS,
            "client_drop_p0s": false,
            "span_meta_structs": true,
            "span_events": true,
            "long_running_spans": false,
            "config": {
                "default_env": self.config.default_env,
                "max_request_bytes": self.config.limits.max_body_bytes,
                "target_tps": self.config.sampler.target_tps,
                "errors_tps": self.config.sampler.errors_tps,
                "rare_sampler_enabled": self.config.sampler.rare_enabled,
            }
        });
        Response::new(200, "application/json", body.to_string())
    }

    /// Handles one request at time `now`.
    pub fn handle(&mut self, req: &Request<'_>, now: Timestamp) -> Response {
        if req
            .header("Sec-Fetch-Site")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("cross-site"))
        {
            return Response::text(403, "cross-site requests are not accepted\n");
        }
        let path = req.path.split('?').next().unwrap_or("");
        let (format, endpoint): (Option<Format>, &'static str) = match path {
            "/info" => {
                return if req.method.eq_ignore_ascii_case("GET") {
                    self.info()
                } else {
                    Response::text(405, "method not allowed\n")
                };
            }
            "/v0.3/traces" => (Some(Format::V04), "/v0.3/traces"),
            "/v0.4/traces" => (Some(Format::V04), "/v0.4/traces"),
            "/v0.5/traces" => (Some(Format::V05), "/v0.5/traces"),
            "/v0.7/traces" => (Some(Format::V07), "/v0.7/traces"),
            "/api/v2/spans" => (Some(Format::Zipkin), "/api/v2/spans"),
            "/v0.6/stats" => (None, "/v0.6/stats"),
            _ => return Response::text(404, format!("404 page not found: {path}\n")),
        };
        let m = req.method;
        let allowed = m.eq_ignore_ascii_case("POST")
            || (m.eq_ignore_ascii_case("PUT") && endpoint != "/api/v2/spans");
        if !allowed {
            return Response::text(405, "method not allowed\n");
        }
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
        let lang = req.header("Datadog-Meta-Lang").unwrap_or("").to_string();
        let client_stats = truthy(req.header("Datadog-Client-Computed-Stats"));
        let client_top_level = truthy(req.header("Datadog-Client-Computed-Top-Level"));
        if let Some(n) = req
            .header("Datadog-Client-Dropped-P0-Traces")
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            self.counters.client_dropped_p0_traces += n;
        }
        if let Some(n) = req
            .header("Datadog-Client-Dropped-P0-Spans")
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            self.counters.client_dropped_p0_spans += n;
        }
        let mut payload = match decode::decode(format, req.body, &self.config.limits) {
            Ok(p) => p,
            Err(e) => {
                self.counters.payloads_invalid += 1;
                let status = if matches!(e, crate::DecodeError::BodyTooLarge { .. }) {
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
        if let Some(n) = req
            .header("X-Datadog-Trace-Count")
            .and_then(|v| v.trim().parse::<usize>().ok())
            && n != payload.chunks.len()
        {
            self.counters.trace_count_mismatch += 1;
        }
        for (field, header) in [
            (&mut payload.language_name, "Datadog-Meta-Lang"),
            (&mut payload.language_version, "Datadog-Meta-Lang-Version"),
            (&mut payload.tracer_version, "Datadog-Meta-Tracer-Version"),
        ] {
            if field.is_empty()
                && let Some(v) = req.header(header)
            {
                *field = std::borrow::Cow::Owned(v.to_string());
            }
        }
        if let Some(v) = req.header("Datadog-Meta-Lang-Interpreter") {
            payload.tags.push((
                "_dd.lang_interpreter".into(),
                std::borrow::Cow::Owned(v.to_string()),
            ));
        }
        let real_status = req.header("Datadog-Send-Real-Http-Status").is_some();
        let accepted = self.process(
            payload,
            &lang,
            endpoint,
            client_stats,
            client_top_level,
            now,
        );
        if !accepted && real_status {
            return Response::text(429, "too many requests: the trace queue is full\n");
        }
        match endpoint {
            "/v0.3/traces" => Response::text(200, "OK\n"),
            "/api/v2/spans" => Response::text(202, ""),
            _ => Response::new(200, "application/json", self.rate_by_service_json()),
        }
    }

    /// Normalises, counts stats for, samples and queues a decoded payload. Returns false
    /// when the queue could not take it (its spans are counted as dropped).
    pub fn process(
        &mut self,
        payload: TracerPayload<'_>,
        lang: &str,
        endpoint: &'static str,
        client_computed_stats: bool,
        client_computed_top_level: bool,
        now: Timestamp,
    ) -> bool {
        let lang = if lang.is_empty() {
            payload.language_name.as_ref()
        } else {
            lang
        }
        .to_string();
        let total: usize = payload.span_count();
        self.counters.traces_received += payload.chunks.len() as u64;
        self.counters.spans_received += total as u64;
        if self.queued_spans + total > self.config.max_queued_spans {
            self.counters.payloads_queue_full += 1;
            self.counters.traces_dropped_queue_full += payload.chunks.len() as u64;
            self.counters.spans_dropped_queue_full += total as u64;
            return false;
        }
        let payload_env = payload.env.to_string();
        let lang_version = payload.language_version.to_string();
        let tracer_version = payload.tracer_version.to_string();
        let lang_interpreter = payload
            .tags
            .iter()
            .find(|(k, _)| k == "_dd.lang_interpreter")
            .map(|(_, v)| v.to_string())
            .unwrap_or_default();
        for mut chunk in payload.chunks {
            let n = chunk.spans.len() as u64;
            if self
                .normalizer
                .normalize_chunk(&mut chunk, &lang, now)
                .is_err()
            {
                self.counters.traces_dropped_normalize += 1;
                self.counters.spans_dropped_normalize += n;
                continue;
            }
            if !client_computed_top_level {
                compute_top_level(&mut chunk.spans);
            }
            if !client_computed_stats {
                self.stats.add_spans(&chunk.spans);
            }
            let env = chunk
                .root()
                .and_then(|r| r.meta("env"))
                .map(str::to_string)
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| {
                    if payload_env.is_empty() {
                        self.config.default_env.clone()
                    } else {
                        payload_env.clone()
                    }
                });
            let decision = if chunk.dropped_trace {
                Decision::Drop
            } else {
                self.sampler.decide(now, &chunk, &env)
            };
            if decision.keep() {
                self.counters.traces_kept += 1;
                self.counters.spans_kept += n;
                self.queued_spans += chunk.spans.len();
                self.queue.push_back(QueuedChunk {
                    chunk: chunk.into_owned(),
                    decision,
                    lang: lang.clone(),
                    lang_version: lang_version.clone(),
                    lang_interpreter: lang_interpreter.clone(),
                    tracer_version: tracer_version.clone(),
                    endpoint,
                });
            } else {
                self.counters.traces_sampled_out += 1;
                self.counters.spans_sampled_out += n;
            }
        }
        true
    }
}
