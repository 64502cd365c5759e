//! v0.5 msgpack: `[[string, …], [[span, …], …]]` where each span is the 12-element array
//! `[service, name, resource, trace_id, span_id, parent_id, start, duration, error, meta,
//! metrics, type]` and every string is an index into the table (the Agent's
//! `decoder_v05.go`, `UnmarshalMsgDictionary`).

use std::borrow::Cow;
use std::sync::Arc;

use super::Limits;
use crate::error::DecodeError;
use crate::meta::StringTable;
use crate::msgpack::Reader;
use crate::span::{
    Meta, Metrics, Span, TRACE_ID_HIGH_KEY, TraceChunk, TracerPayload, parse_hex_u64,
};

pub(super) fn decode<'a>(
    body: &'a [u8],
    limits: &Limits,
) -> Result<TracerPayload<'a>, DecodeError> {
    let mut r = Reader::new(body, limits.max_depth);
    let at = r.pos();
    let top = r.array_len("v0.5 payload", 2)?;
    if top != 2 {
        return Err(DecodeError::Invalid {
            offset: at,
            what: "v0.5 payload",
            reason: format!("expected [string table, traces], found an array of {top}"),
        });
    }
    let n = r.array_len("string table", limits.max_string_table)?;
    let mut strings: Vec<Cow<'a, str>> = Vec::with_capacity(n);
    for _ in 0..n {
        strings.push(r.str("string table entry", limits.max_string_bytes)?);
    }
    let max_len = strings
        .iter()
        .map(|s| s.len())
        .max()
        .unwrap_or(0)
        .min(u32::MAX as usize) as u32;
    let table = Arc::new(StringTable::new(strings));
    let n = r.array_len("traces", limits.max_traces)?;
    let mut chunks = Vec::with_capacity(n);
    let mut total = 0usize;
    for _ in 0..n {
        let at = r.pos();
        let m = r.array_len("spans", limits.max_spans)?;
        total += m;
        if total > limits.max_spans {
            return Err(DecodeError::LimitExceeded {
                offset: at,
                what: "spans in payload",
                len: total as u64,
                limit: limits.max_spans as u64,
            });
        }
        let mut spans = Vec::with_capacity(m);
        for _ in 0..m {
            spans.push(read_span(&mut r, &table, max_len, limits)?);
        }
        chunks.push(TraceChunk::from_spans(spans));
    }
    Ok(TracerPayload::from_chunks(chunks))
}

#[inline]
fn index(
    r: &mut Reader<'_>,
    table: &StringTable<'_>,
    field: &'static str,
) -> Result<usize, DecodeError> {
    let at = r.pos();
    let idx = r.u64(field)?;
    if (idx as usize) < table.strings.len() && idx <= usize::MAX as u64 {
        Ok(idx as usize)
    } else {
        Err(DecodeError::StringIndex {
            offset: at,
            index: idx,
            len: table.strings.len(),
        })
    }
}

#[inline]
fn string<'a>(
    r: &mut Reader<'a>,
    table: &StringTable<'a>,
    field: &'static str,
) -> Result<Cow<'a, str>, DecodeError> {
    let at = r.pos();
    let idx = r.u64(field)?;
    match table.get(idx as usize) {
        Some(s) => Ok(s.clone()),
        None => Err(DecodeError::StringIndex {
            offset: at,
            index: idx,
            len: table.strings.len(),
        }),
    }
}

fn read_span<'a>(
    r: &mut Reader<'a>,
    table: &Arc<StringTable<'a>>,
    max_len: u32,
    limits: &Limits,
) -> Result<Span<'a>, DecodeError> {
    let at = r.pos();
    let n = r.array_len("v0.5 span", 12)?;
    if n != 12 {
        return Err(DecodeError::Invalid {
            offset: at,
            what: "v0.5 span",
            reason: format!("expected 12 elements, found {n}"),
        });
    }
    let mut span = Span {
        service: string(r, table, "service")?,
        name: string(r, table, "name")?,
        resource: string(r, table, "resource")?,
        trace_id: r.u64_fast("trace_id")?,
        span_id: r.u64_fast("span_id")?,
        parent_id: r.u64_fast("parent_id")?,
        start: r.u64_fast("start")? as i64,
        duration: r.u64_fast("duration")? as i64,
        error: r.u64_fast("error")? as i32,
        ..Span::default()
    };
    let m = r.map_len("meta", limits.max_map_entries)?;
    let start = r.pos();
    // Check every index now; keep a view over them, not pairs.
    for _ in 0..m {
        let k = index(r, table, "meta key")?;
        let v = index(r, table, "meta value")?;
        if table.strings[k] == TRACE_ID_HIGH_KEY
            && let Some(h) = parse_hex_u64(&table.strings[v])
        {
            span.trace_id_high = h;
        }
    }
    span.meta = Meta::from_indexed(
        r.slice(start, r.pos()),
        m as u32,
        Arc::clone(table),
        max_len,
    );
    let m = r.map_len("metrics", limits.max_map_entries)?;
    let start = r.pos();
    for _ in 0..m {
        index(r, table, "metrics key")?;
        r.f64_fast("metrics value")?;
    }
    span.metrics = Metrics::from_indexed(r.slice(start, r.pos()), m as u32, Arc::clone(table), 0);
    span.r#type = string(r, table, "type")?;
    Ok(span)
}
