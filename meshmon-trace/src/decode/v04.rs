//! v0.3 / v0.4 msgpack: `[[span map, …], …]`, following the Agent's `span_msgp.go`
//! (`DecodeMsg` / `UnmarshalMsg`) leniency: missing keys keep zero values, unknown keys
//! are skipped, `nil` is the zero value, int or uint for integers, str or bin for strings.

use std::borrow::Cow;

use super::Limits;
use crate::error::DecodeError;
use crate::meta::{HOT_KEYS, HOT_UNKNOWN, HotOffsets, hot_slot};
use crate::msgpack::{Reader, utf8_lossy_go};

use crate::span::{
    AttributeValue, Meta, Metrics, Span, SpanEvent, SpanLink, TRACE_ID_HIGH_KEY, TraceChunk,
    TracerPayload, parse_hex_u64,
};

pub(super) fn decode<'a>(
    body: &'a [u8],
    limits: &Limits,
) -> Result<TracerPayload<'a>, DecodeError> {
    let mut r = Reader::new(body, limits.max_depth);
    let n = r.array_len("traces", limits.max_traces)?;
    let mut chunks = Vec::with_capacity(n);
    let mut total = 0usize;
    for _ in 0..n {
        let spans = read_span_list(&mut r, limits, &mut total)?;
        chunks.push(TraceChunk::from_spans(spans));
    }
    Ok(TracerPayload::from_chunks(chunks))
}

/// An array of span maps, counted against `limits.max_spans` through `total`.
pub(super) fn read_span_list<'a>(
    r: &mut Reader<'a>,
    limits: &Limits,
    total: &mut usize,
) -> Result<Vec<Span<'a>>, DecodeError> {
    let at = r.pos();
    let m = r.array_len("spans", limits.max_spans)?;
    *total += m;
    if *total > limits.max_spans {
        return Err(DecodeError::LimitExceeded {
            offset: at,
            what: "spans in payload",
            len: *total as u64,
            limit: limits.max_spans as u64,
        });
    }
    let mut spans = Vec::with_capacity(m);
    for _ in 0..m {
        spans.push(read_span(r, limits)?);
    }
    Ok(spans)
}

/// One span map.
#[inline]
fn read_span<'a>(r: &mut Reader<'a>, limits: &Limits) -> Result<Span<'a>, DecodeError> {
    let mut span = Span::default();
    read_span_into(r, limits, &mut span)?;
    Ok(span)
}

/// One span map, into `span` (fields absent from the map keep their value).
#[inline]
fn read_span_into<'a>(
    r: &mut Reader<'a>,
    limits: &Limits,
    span: &mut Span<'a>,
) -> Result<(), DecodeError> {
    let n = r.map_len("span", limits.max_map_entries)?;
    let sl = limits.max_string_bytes;
    for _ in 0..n {
        let key = r.str_bytes_fast("span key", sl)?;
        match field(key) {
            F::Service => span.service = r.str("service", sl)?,
            F::Name => span.name = r.str("name", sl)?,
            F::Resource => span.resource = r.str("resource", sl)?,
            F::TraceId => span.trace_id = r.u64_fast("trace_id")?,
            F::SpanId => span.span_id = r.u64_fast("span_id")?,
            F::ParentId => span.parent_id = r.u64_fast("parent_id")?,
            F::Start => span.start = r.u64_fast("start")? as i64,
            F::Duration => span.duration = r.u64_fast("duration")? as i64,
            F::Error => span.error = r.u64_fast("error")? as i32,
            F::Type => span.r#type = r.str("type", sl)?,
            F::Meta => {
                let m = r.map_len("meta", limits.max_map_entries)?;
                let start = r.pos();
                // Check every entry now (types, bounds, UTF-8); keep a view, not pairs.
                let mut valid = true;
                let mut max_len = 0usize;
                let mut hot: HotOffsets = [0; HOT_KEYS.len()];
                for _ in 0..m {
                    let k = r.str_bytes_fast("meta key", sl)?;
                    let at = r.pos() - start;
                    let v = r.str_bytes_fast("meta value", sl)?;
                    valid &= utf8_ok(k) && utf8_ok(v);
                    max_len = max_len.max(k.len()).max(v.len());
                    if let Some(h) = hot_slot(k)
                        && hot[h] == 0
                    {
                        hot[h] = u16::try_from(at + 1).unwrap_or(HOT_UNKNOWN);
                        if h == TRACE_ID_HIGH_SLOT
                            && let Some(h) = std::str::from_utf8(v).ok().and_then(parse_hex_u64)
                        {
                            span.trace_id_high = h;
                        }
                    }
                }
                let bytes = r.slice(start, r.pos());
                span.meta = if valid {
                    Meta::from_msgpack(bytes, m as u32, max_len.min(u32::MAX as usize) as u32, hot)
                } else {
                    repair_meta(bytes, m)?
                };
            }
            F::Metrics => {
                let m = r.map_len("metrics", limits.max_map_entries)?;
                let start = r.pos();
                let mut valid = true;
                for _ in 0..m {
                    let k = r.str_bytes_fast("metrics key", sl)?;
                    r.f64_fast("metrics value")?;
                    valid &= utf8_ok(k);
                }
                let bytes = r.slice(start, r.pos());
                span.metrics = if valid {
                    Metrics::from_msgpack(bytes, m as u32, 0, [HOT_UNKNOWN; HOT_KEYS.len()])
                } else {
                    repair_metrics(bytes, m)?
                };
            }
            F::MetaStruct => {
                let m = r.map_len("meta_struct", limits.max_map_entries)?;
                for _ in 0..m {
                    let k = r.str("meta_struct key", sl)?;
                    let v = r.str_bytes("meta_struct value", sl)?;
                    span.meta_struct.push((k, Cow::Borrowed(v)));
                }
            }
            F::SpanLinks => {
                let m = r.array_len("span_links", limits.max_map_entries)?;
                for _ in 0..m {
                    span.span_links.push(read_link(r, limits)?);
                }
            }
            F::SpanEvents => {
                let m = r.array_len("span_events", limits.max_map_entries)?;
                for _ in 0..m {
                    span.span_events.push(read_event(r, limits)?);
                }
            }
            F::Unknown => r.skip("unknown span field")?,
        }
    }
    Ok(())
}

/// The [`HOT_KEYS`] slot of `_dd.p.tid`.
const TRACE_ID_HIGH_SLOT: usize = 6;
const _: () = assert!(HOT_KEYS[TRACE_ID_HIGH_SLOT].len() == TRACE_ID_HIGH_KEY.len());

/// A span map's keys.
#[derive(Clone, Copy)]
enum F {
    Service,
    Name,
    Resource,
    TraceId,
    SpanId,
    ParentId,
    Start,
    Duration,
    Error,
    Type,
    Meta,
    Metrics,
    MetaStruct,
    SpanLinks,
    SpanEvents,
    Unknown,
}

/// True when `k` is exactly `lit` (a fixed-size compare, no `memcmp` call).
#[inline(always)]
pub(crate) fn is<const N: usize>(k: &[u8], lit: &[u8; N]) -> bool {
    <&[u8; N]>::try_from(k).is_ok_and(|a| a == lit)
}

/// The field of a span key, by length first.
#[inline(always)]
fn field(k: &[u8]) -> F {
    match k.len() {
        4 if is(k, b"name") => F::Name,
        4 if is(k, b"meta") => F::Meta,
        4 if is(k, b"type") => F::Type,
        5 if is(k, b"start") => F::Start,
        5 if is(k, b"error") => F::Error,
        7 if is(k, b"service") => F::Service,
        7 if is(k, b"span_id") => F::SpanId,
        7 if is(k, b"metrics") => F::Metrics,
        8 if is(k, b"resource") => F::Resource,
        8 if is(k, b"trace_id") => F::TraceId,
        8 if is(k, b"duration") => F::Duration,
        9 if is(k, b"parent_id") => F::ParentId,
        10 if is(k, b"span_links") => F::SpanLinks,
        11 if is(k, b"meta_struct") => F::MetaStruct,
        11 if is(k, b"span_events") => F::SpanEvents,
        _ => F::Unknown,
    }
}

#[inline]
fn utf8_ok(b: &[u8]) -> bool {
    b.is_ascii() || std::str::from_utf8(b).is_ok()
}

/// A meta map with invalid UTF-8, repaired into pairs (Go's `strings.ToValidUTF8`).
#[cold]
fn repair_meta(bytes: &[u8], m: usize) -> Result<Meta<'_>, DecodeError> {
    let mut r = Reader::new(bytes, 0);
    let mut pairs = Vec::with_capacity(m);
    for _ in 0..m {
        let k = utf8_lossy_go(r.str_bytes("meta key", usize::MAX)?);
        let v = utf8_lossy_go(r.str_bytes("meta value", usize::MAX)?);
        pairs.push((k, v));
    }
    Ok(Meta::from(pairs))
}

/// Metrics with an invalid UTF-8 key, repaired into pairs.
#[cold]
fn repair_metrics(bytes: &[u8], m: usize) -> Result<Metrics<'_>, DecodeError> {
    let mut r = Reader::new(bytes, 0);
    let mut pairs = Vec::with_capacity(m);
    for _ in 0..m {
        let k = utf8_lossy_go(r.str_bytes("metrics key", usize::MAX)?);
        let v = r.f64("metrics value")?;
        pairs.push((k, v));
    }
    Ok(Metrics::from(pairs))
}

fn read_link<'a>(r: &mut Reader<'a>, limits: &Limits) -> Result<SpanLink<'a>, DecodeError> {
    let sl = limits.max_string_bytes;
    let mut link = SpanLink::default();
    let n = r.map_len("span link", limits.max_map_entries)?;
    for _ in 0..n {
        match r.str_bytes("span link key", sl)? {
            b"trace_id" => link.trace_id = r.u64("span link trace_id")?,
            b"trace_id_high" => link.trace_id_high = r.u64("span link trace_id_high")?,
            b"span_id" => link.span_id = r.u64("span link span_id")?,
            b"tracestate" => link.tracestate = r.str("span link tracestate", sl)?,
            b"flags" => link.flags = r.u64("span link flags")? as u32,
            b"attributes" => {
                let m = r.map_len("span link attributes", limits.max_map_entries)?;
                for _ in 0..m {
                    let k = r.str("span link attribute key", sl)?;
                    let v = r.str("span link attribute value", sl)?;
                    link.attributes.push((k, v));
                }
            }
            _ => r.skip("unknown span link field")?,
        }
    }
    Ok(link)
}

fn read_event<'a>(r: &mut Reader<'a>, limits: &Limits) -> Result<SpanEvent<'a>, DecodeError> {
    let sl = limits.max_string_bytes;
    let mut ev = SpanEvent::default();
    let n = r.map_len("span event", limits.max_map_entries)?;
    for _ in 0..n {
        match r.str_bytes("span event key", sl)? {
            b"time_unix_nano" => ev.time_unix_nano = r.u64("span event time_unix_nano")?,
            b"name" => ev.name = r.str("span event name", sl)?,
            b"attributes" => {
                let m = r.map_len("span event attributes", limits.max_map_entries)?;
                for _ in 0..m {
                    let k = r.str("span event attribute key", sl)?;
                    let v = read_any_value(r, limits, 0)?;
                    ev.attributes.push((k, v));
                }
            }
            _ => r.skip("unknown span event field")?,
        }
    }
    Ok(ev)
}

/// `AttributeAnyValue`: `{type, string_value, bool_value, int_value, double_value,
/// array_value: {values: [...]}}`.
fn read_any_value<'a>(
    r: &mut Reader<'a>,
    limits: &Limits,
    depth: u32,
) -> Result<AttributeValue<'a>, DecodeError> {
    if depth > limits.max_depth {
        return Err(DecodeError::TooDeep {
            offset: r.pos(),
            limit: limits.max_depth,
        });
    }
    let sl = limits.max_string_bytes;
    let n = r.map_len("attribute value", limits.max_map_entries)?;
    let mut ty = 0u64;
    let (mut s, mut b, mut i, mut d, mut a) = (Cow::Borrowed(""), false, 0i64, 0f64, Vec::new());
    for _ in 0..n {
        match r.str_bytes("attribute value key", sl)? {
            b"type" => ty = r.u64("attribute type")?,
            b"string_value" => s = r.str("attribute string_value", sl)?,
            b"bool_value" => b = r.bool("attribute bool_value")?,
            b"int_value" => i = r.i64("attribute int_value")?,
            b"double_value" => d = r.f64("attribute double_value")?,
            b"array_value" => {
                let m = r.map_len("attribute array_value", limits.max_map_entries)?;
                for _ in 0..m {
                    match r.str_bytes("attribute array key", sl)? {
                        b"values" => {
                            let k =
                                r.array_len("attribute array values", limits.max_map_entries)?;
                            for _ in 0..k {
                                a.push(read_any_value(r, limits, depth + 1)?);
                            }
                        }
                        _ => r.skip("unknown attribute array field")?,
                    }
                }
            }
            _ => r.skip("unknown attribute value field")?,
        }
    }
    Ok(match ty {
        1 => AttributeValue::Bool(b),
        2 => AttributeValue::Int(i),
        3 => AttributeValue::Double(d),
        4 => AttributeValue::Array(a),
        _ => AttributeValue::String(s),
    })
}
