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
//! let mut rx = Receiver::new(ReceiverConfig::default());
//! let headers = [("Content-Type", "application/msgpack"), ("X-Datadog-Trace-Count", "1")];
//! let req = Request { method: "POST", path: "/v0.5/traces", headers: &headers, body: &body };
//! let resp = rx.handle(&req, Timestamp::from_secs(1_700_000_001));
//! assert_eq!(resp.status, 200);
//! assert_eq!(String::from_utf8(resp.body).unwrap(),
//!            r#"{"rate_by_service":{"service:,env:":1.0,"service:productpage,env:":1.0}}"#);
//!
//! let kept = rx.drain();
//! assert_eq!(kept[0].chunk.spans[0].trace_id_128(), 0x6b02bca6_00000000_00000000_00000007);
//! let mut map = meshmon_trace::servicemap::ServiceMap::new();
//! map.add_trace(&kept[0].chunk.spans);
//! let edge = &map.edges[&("productpage".to_string(), "reviews".to_string())];
//! assert_eq!((edge.calls, edge.errors), (1, 1));
//! assert!(rx.counters.balanced());
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
//! - [`receiver`]: the transport-agnostic intake ([`receiver::Receiver`]).
//! - [`assembly`]: spans → whole traces, inactivity timeout, memory bound.
//! - [`stats`]: RED stats per (service, resource, kind, status class) with HdrHistogram.
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

pub use decode::{Format, Limits};
pub use error::DecodeError;
pub use span::{Meta, Metrics, OwnedSpan, Span, SpanEvent, SpanLink, TraceChunk, TracerPayload};
