//! Encoders for v0.4 and v0.5 msgpack, so decoding is tested by round trips and spans can
//! be forwarded to a Datadog Agent.
//!
//! ```
//! use meshmon_trace::{decode, encode, Span};
//! let span = Span { service: "web".into(), name: "http.request".into(), trace_id: 1, span_id: 2, ..Span::default() };
//! let traces = vec![vec![span]];
//! let body = encode::encode_v05(&traces);
//! let back = decode::decode_v05(&body, &decode::Limits::default())?;
//! assert_eq!(back.chunks[0].spans, traces[0]);
//! # Ok::<(), meshmon_trace::DecodeError>(())
//! ```

use hashbrown::HashMap;

use crate::msgpack::Writer;
use crate::span::{AttributeValue, SamplingPriority, Span, TracerPayload};

/// Encodes traces as a v0.4 body (`[[span map, …], …]`). Zero `parent_id`/`error` and
/// empty `type`/`meta`/`metrics`/`meta_struct`/`span_links`/`span_events` are omitted, as
/// libdatadog's encoder does; `trace_id_high` travels in `meta["_dd.p.tid"]` only.
pub fn encode_v04(traces: &[Vec<Span<'_>>]) -> Vec<u8> {
    let mut w = Writer::default();
    w.array(traces.len());
    for t in traces {
        w.array(t.len());
        for s in t {
            write_span_map(&mut w, s);
        }
    }
    w.buf
}

fn write_span_map(w: &mut Writer, s: &Span<'_>) {
    let n = 7
        + usize::from(s.parent_id != 0)
        + usize::from(s.error != 0)
        + usize::from(!s.r#type.is_empty())
        + usize::from(!s.meta.is_empty())
        + usize::from(!s.metrics.is_empty())
        + usize::from(!s.meta_struct.is_empty())
        + usize::from(!s.span_links.is_empty())
        + usize::from(!s.span_events.is_empty());
    w.map(n);
    w.str("service");
    w.str(&s.service);
    w.str("name");
    w.str(&s.name);
    w.str("resource");
    w.str(&s.resource);
    w.str("trace_id");
    w.uint(s.trace_id);
    w.str("span_id");
    w.uint(s.span_id);
    if s.parent_id != 0 {
        w.str("parent_id");
        w.uint(s.parent_id);
    }
    w.str("start");
    w.int(s.start);
    w.str("duration");
    w.int(s.duration);
    if s.error != 0 {
        w.str("error");
        w.int(i64::from(s.error));
    }
    if !s.r#type.is_empty() {
        w.str("type");
        w.str(&s.r#type);
    }
    if !s.meta.is_empty() {
        w.str("meta");
        w.map(s.meta.len());
        for (k, v) in &s.meta {
            w.str(k);
            w.str(v);
        }
    }
    if !s.metrics.is_empty() {
        w.str("metrics");
        w.map(s.metrics.len());
        for (k, v) in &s.metrics {
            w.str(k);
            w.f64(v);
        }
    }
    if !s.meta_struct.is_empty() {
        w.str("meta_struct");
        w.map(s.meta_struct.len());
        for (k, v) in &s.meta_struct {
            w.str(k);
            w.bin(v);
        }
    }
    if !s.span_links.is_empty() {
        w.str("span_links");
        w.array(s.span_links.len());
        for l in &s.span_links {
            w.map(6);
            w.str("trace_id");
            w.uint(l.trace_id);
            w.str("trace_id_high");
            w.uint(l.trace_id_high);
            w.str("span_id");
            w.uint(l.span_id);
            w.str("attributes");
            w.map(l.attributes.len());
            for (k, v) in &l.attributes {
                w.str(k);
                w.str(v);
            }
            w.str("tracestate");
            w.str(&l.tracestate);
            w.str("flags");
            w.uint(u64::from(l.flags));
        }
    }
    if !s.span_events.is_empty() {
        w.str("span_events");
        w.array(s.span_events.len());
        for e in &s.span_events {
            w.map(3);
            w.str("time_unix_nano");
            w.uint(e.time_unix_nano);
            w.str("name");
            w.str(&e.name);
            w.str("attributes");
            w.map(e.attributes.len());
            for (k, v) in &e.attributes {
                w.str(k);
                write_any(w, v);
            }
        }
    }
}

/// Encodes a v0.7 tracer payload (a `TracerPayload` map with `TraceChunk` maps; spans as
/// in v0.4). A chunk without a priority is written with the "none" marker −128.
pub fn encode_v07(p: &TracerPayload<'_>) -> Vec<u8> {
    let mut w = Writer::default();
    w.map(10);
    for (k, v) in [
        ("container_id", &p.container_id),
        ("language_name", &p.language_name),
        ("language_version", &p.language_version),
        ("tracer_version", &p.tracer_version),
        ("runtime_id", &p.runtime_id),
        ("env", &p.env),
        ("hostname", &p.hostname),
        ("app_version", &p.app_version),
    ] {
        w.str(k);
        w.str(v);
    }
    w.str("tags");
    w.map(p.tags.len());
    for (k, v) in &p.tags {
        w.str(k);
        w.str(v);
    }
    w.str("chunks");
    w.array(p.chunks.len());
    for c in &p.chunks {
        w.map(5);
        w.str("priority");
        w.int(i64::from(
            c.priority
                .map_or(i32::from(i8::MIN), SamplingPriority::as_i32),
        ));
        w.str("origin");
        w.str(&c.origin);
        w.str("spans");
        w.array(c.spans.len());
        for s in &c.spans {
            write_span_map(&mut w, s);
        }
        w.str("tags");
        w.map(c.tags.len());
        for (k, v) in &c.tags {
            w.str(k);
            w.str(v);
        }
        w.str("droppedTrace");
        w.bool(c.dropped_trace);
    }
    w.buf
}

fn write_any(w: &mut Writer, v: &AttributeValue<'_>) {
    w.map(2);
    w.str("type");
    match v {
        AttributeValue::String(s) => {
            w.uint(0);
            w.str("string_value");
            w.str(s);
        }
        AttributeValue::Bool(b) => {
            w.uint(1);
            w.str("bool_value");
            w.bool(*b);
        }
        AttributeValue::Int(i) => {
            w.uint(2);
            w.str("int_value");
            w.int(*i);
        }
        AttributeValue::Double(d) => {
            w.uint(3);
            w.str("double_value");
            w.f64(*d);
        }
        AttributeValue::Array(a) => {
            w.uint(4);
            w.str("array_value");
            w.map(1);
            w.str("values");
            w.array(a.len());
            for x in a {
                write_any(w, x);
            }
        }
    }
}

/// Encodes traces as a v0.5 body (`[string table, traces]`, 12-element span arrays). The
/// string table starts with "" like the tracers'; v0.5 has no room for `meta_struct`,
/// links or events, which are left out.
pub fn encode_v05(traces: &[Vec<Span<'_>>]) -> Vec<u8> {
    let mut strings: Vec<&str> = vec![""];
    let mut index: HashMap<&str, u32> = HashMap::new();
    index.insert("", 0);
    let mut body = Writer::default();
    // Collect every string first, then write spans as indices.
    for t in traces {
        for s in t {
            for v in [
                s.service.as_ref(),
                s.name.as_ref(),
                s.resource.as_ref(),
                s.r#type.as_ref(),
            ] {
                add(&mut strings, &mut index, v);
            }
            for (k, v) in &s.meta {
                add(&mut strings, &mut index, k);
                add(&mut strings, &mut index, v);
            }
            for (k, _) in &s.metrics {
                add(&mut strings, &mut index, k);
            }
        }
    }
    let idx = |s: &str| u64::from(index.get(s).copied().unwrap_or(0));
    body.array(traces.len());
    for t in traces {
        body.array(t.len());
        for s in t {
            body.array(12);
            body.uint(idx(&s.service));
            body.uint(idx(&s.name));
            body.uint(idx(&s.resource));
            body.uint(s.trace_id);
            body.uint(s.span_id);
            body.uint(s.parent_id);
            body.int(s.start);
            body.int(s.duration);
            body.int(i64::from(s.error));
            body.map(s.meta.len());
            for (k, v) in &s.meta {
                body.uint(idx(k));
                body.uint(idx(v));
            }
            body.map(s.metrics.len());
            for (k, v) in &s.metrics {
                body.uint(idx(k));
                body.f64(v);
            }
            body.uint(idx(&s.r#type));
        }
    }
    let mut w = Writer::default();
    w.array(2);
    w.array(strings.len());
    for s in &strings {
        w.str(s);
    }
    w.buf.extend_from_slice(&body.buf);
    w.buf
}

fn add<'s>(strings: &mut Vec<&'s str>, index: &mut HashMap<&'s str, u32>, s: &'s str) {
    if !index.contains_key(s) {
        index.insert(s, strings.len() as u32);
        strings.push(s);
    }
}
