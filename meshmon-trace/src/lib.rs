//! meshmon-trace: the receiving end of Datadog and Zipkin tracing — decoders for every
//! Datadog intake format and Zipkin v2, the Datadog Agent's normalisation and samplers,
//! trace assembly, RED statistics and a service map. Pure logic: no I/O, no clock (time is
//! an argument), decoders take `&[u8]` and borrow from it.
//!
//! ```
//! use meshmon_core::Timestamp;
//! use meshmon_trace::receiver::{Receiver, ReceiverConfig, Request};
//! use meshmon_trace::{encode, Span};
//!
//! // A two-service trace as a tracer would send it (v0.5, the ddtrace default).
//! let mut root = Span { service: "productpage".into(), name: "http.request".into(), trace_id: 7, span_id: 1,
//!                       start: 1_700_000_000_000_000_000, duration: 2_000_000, ..Span::default() };
//! root.set_meta("span.kind", "server");
//! root.set_meta("_dd.p.tid", "6b02bca600000000");
//! root.set_metric("_sampling_priority_v1", 1.0);
//! let mut child = Span { service: "reviews".into(), name: "http.request".into(), trace_id: 7, span_id: 2,
//!                        parent_id: 1, start: 1_700_000_000_000_500_000, duration: 1_000_000, error: 1, ..Span::default() };
//! child.set_meta("span.kind", "server");
//! let body = encode::encode_v05(&[vec![root, child]]);
//!
//! let mut rx = Receiver::new(ReceiverConfig::default().with_default_env("prod"))?;
//! let headers = [("Content-Type", "application/msgpack"), ("X-Datadog-Trace-Count", "1")];
//! let req = Request { method: "POST", path: "/v0.5/traces", headers: &headers, body: body.into() };
//! let now = Timestamp::from_secs(1_700_000_001);
//! let resp = rx.handle(&req, now);
//! assert_eq!(resp.status, 200);
//! assert_eq!(String::from_utf8(resp.body)?,
//!            r#"{"rate_by_service":{"service:,env:":1.0,"service:productpage,env:prod":1.0}}"#);
//!
//! // Kept chunks still borrow from the body; copy out what a store keeps.
//! let kept = rx.drain_kept();
//! let chunk = &kept[0].chunks()[0];
//! assert_eq!(chunk.chunk.spans[0].trace_id_128(), 0x6b02bca6_00000000_00000000_00000007);
//! assert_eq!(chunk.env, "prod");
//! let owned = kept.into_iter().flat_map(|p| p.into_owned_chunks()).collect::<Vec<_>>();
//! assert_eq!(owned[0].chunk.spans.len(), 2);
//!
//! // The service map and RED stats were computed on the borrowed spans.
//! let edge = rx.service_map().edge("productpage", "reviews").expect("edge");
//! assert_eq!((edge.calls, edge.errors), (1, 1));
//! let buckets = rx.flush_stats(now, true);
//! let series = meshmon_trace::stats::apm_metrics(&buckets[0]);
//! let hits = series.iter().find(|m| m.name() == "trace.http.request.hits"
//!     && m.tags.get("service") == Some("reviews")).expect("series");
//! assert_eq!(hits.value.as_f64(), Some(1.0));
//! assert_eq!(hits.tags.get("env"), Some("prod"));
//! let c = rx.counters();
//! assert!(c.balanced());
//! assert_eq!((c.spans_received, c.spans_kept), (2, 2));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Contents
//!
//! - [`span`]: [`Span`] (borrowed) / [`OwnedSpan`], [`TraceChunk`], [`TracerPayload`],
//!   128-bit trace ids through `_dd.p.tid`.
//! - [`decode`]: v0.3/v0.4 msgpack and JSON, v0.5, v0.7, Zipkin v2 JSON; [`Limits`] and
//!   [`DecodeError`] (every error carries a byte offset).
//! - [`encode`]: v0.4 and v0.5 encoders.
//! - [`normalize`]: the Agent's span and chunk normalisation, with counters.
//! - [`sampler`]: Datadog's Knuth rate sampler, priority / errors / rare / probabilistic
//!   samplers, tail sampling.
//! - [`receiver`]: the transport-agnostic intake ([`receiver::Receiver`]): one call per
//!   HTTP request, kept chunks borrowing from the body, RED stats and service map on the
//!   borrowed spans.
//! - [`assembly`]: spans → whole traces, inactivity timeout, memory bound.
//! - [`stats`]: RED stats per (env, service, resource, kind, status class) with a
//!   [`stats::LatencyHistogram`], and Datadog's APM series ([`stats::apm_metrics`]).
//! - [`servicemap`]: caller → callee edges with calls, errors and latency.
//!
//! # Limits
//!
//! Every size is a field of [`Limits`] (body 25 MiB, counts, string length, nesting),
//! [`receiver::ReceiverConfig`] (queue), [`assembly::AssemblerConfig`] (spans held) or
//! [`stats::StatsConfig`] (groups per bucket), each with a default and a counter.

pub mod assembly;
pub mod decode;
pub mod encode;
pub mod error;
pub mod meta;
mod msgpack;
pub mod normalize;
pub mod receiver;
pub mod sampler;
pub mod servicemap;
pub mod span;
pub mod stats;

/// The request body type of [`receiver::Request`] (re-exported from the `bytes` crate, so
/// callers need not depend on it).
pub use bytes::Bytes;
pub use decode::{Format, Limits};
pub use error::DecodeError;
pub use span::{Meta, Metrics, OwnedSpan, Span, SpanEvent, SpanLink, TraceChunk, TracerPayload};
