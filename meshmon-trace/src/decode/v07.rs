//! v0.7 msgpack: a `TracerPayload` map (`container_id`, `language_name`,
//! `language_version`, `tracer_version`, `runtime_id`, `chunks`, `tags`, `env`,
//! `hostname`, `app_version`), chunks as `TraceChunk` maps (`priority`, `origin`, `spans`,
//! `tags`, `droppedTrace`), spans as in v0.4 (the Agent's `tracer_payload_msgp.go`).

use std::borrow::Cow;

use super::Limits;
use super::v04::read_span_list;
use crate::error::DecodeError;
use crate::msgpack::Reader;
use crate::span::{SamplingPriority, TraceChunk, TracerPayload};

type Pairs<'a> = Vec<(Cow<'a, str>, Cow<'a, str>)>;

fn read_str_map<'a>(
    r: &mut Reader<'a>,
    limits: &Limits,
    field: &'static str,
) -> Result<Pairs<'a>, DecodeError> {
    let n = r.map_len(field, limits.max_map_entries)?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let k = r.str(field, limits.max_string_bytes)?;
        let val = r.str(field, limits.max_string_bytes)?;
        v.push((k, val));
    }
    Ok(v)
}

pub(super) fn decode<'a>(
    body: &'a [u8],
    limits: &Limits,
) -> Result<TracerPayload<'a>, DecodeError> {
    let mut r = Reader::new(body, limits.max_depth);
    let sl = limits.max_string_bytes;
    let mut p = TracerPayload::default();
    let n = r.map_len("tracer payload", limits.max_map_entries)?;
    let mut total = 0usize;
    for _ in 0..n {
        match r.str_bytes("tracer payload key", sl)? {
            b"container_id" => p.container_id = r.str("container_id", sl)?,
            b"language_name" => p.language_name = r.str("language_name", sl)?,
            b"language_version" => p.language_version = r.str("language_version", sl)?,
            b"tracer_version" => p.tracer_version = r.str("tracer_version", sl)?,
            b"runtime_id" => p.runtime_id = r.str("runtime_id", sl)?,
            b"env" => p.env = r.str("env", sl)?,
            b"hostname" => p.hostname = r.str("hostname", sl)?,
            b"app_version" => p.app_version = r.str("app_version", sl)?,
            b"tags" => p.tags = read_str_map(&mut r, limits, "tags")?,
            b"chunks" => {
                let m = r.array_len("chunks", limits.max_traces)?;
                p.chunks.reserve_exact(m);
                for _ in 0..m {
                    p.chunks.push(read_chunk(&mut r, limits, &mut total)?);
                }
            }
            _ => r.skip("unknown tracer payload field")?,
        }
    }
    Ok(p)
}

fn read_chunk<'a>(
    r: &mut Reader<'a>,
    limits: &Limits,
    total: &mut usize,
) -> Result<TraceChunk<'a>, DecodeError> {
    let sl = limits.max_string_bytes;
    let mut c = TraceChunk::default();
    let mut priority = None;
    let n = r.map_len("trace chunk", limits.max_map_entries)?;
    for _ in 0..n {
        match r.str_bytes("trace chunk key", sl)? {
            b"priority" => priority = Some(r.i64("priority")? as i32),
            b"origin" => c.origin = r.str("origin", sl)?,
            b"spans" => c.spans = read_span_list(r, limits, total)?,
            b"tags" => c.tags = read_str_map(r, limits, "chunk tags")?,
            b"droppedTrace" => c.dropped_trace = r.bool("droppedTrace")?,
            _ => r.skip("unknown trace chunk field")?,
        }
    }
    // The protobuf default 0 is a real priority (auto reject); -128 means "none".
    c.priority = match priority {
        Some(p) if p == i32::from(i8::MIN) => None,
        Some(p) => Some(SamplingPriority::from_i32(p)),
        None => Some(SamplingPriority::AutoReject),
    };
    Ok(c)
}
