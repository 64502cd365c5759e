//! Zipkin v2 JSON (`POST /api/v2/spans`, [zipkin-api `Span`]) mapped onto Datadog spans.
//!
//! | Zipkin | Datadog span |
//! |---|---|
//! | `traceId` (16 or 32 hex digits) | `trace_id` (low 64 bits), `trace_id_high` + `meta["_dd.p.tid"]` |
//! | `id`, `parentId` (hex) | `span_id`, `parent_id` |
//! | `timestamp`, `duration` (µs) | `start`, `duration` (ns) |
//! | `localEndpoint.serviceName` | `service` |
//! | `name` | `resource`; `name` is `zipkin.<kind>` (`zipkin.server`, `zipkin.internal`…) |
//! | `kind` | `meta["span.kind"]` (lower case); `type` `web` for SERVER, `http` for CLIENT |
//! | `remoteEndpoint` | `meta["peer.service"]`, `meta["network.destination.ip"]`, `…port` |
//! | `localEndpoint` ipv4/ipv6/port | `meta["network.host.ip"]`, `meta["network.host.port"]` |
//! | `tags` | `meta`; an `error` tag (any value, also "") sets `error = 1` |
//! | `shared` | `meta["zipkin.shared"] = "true"` |
//! | `debug` | `_sampling_priority_v1 = 2` (forced keep); otherwise 1 (the client sampled it) |
//! | `annotations` | `span_events` |
//!
//! Spans are grouped into one chunk per trace id, in order of first appearance.
//!
//! [zipkin-api `Span`]: https://zipkin.io/zipkin-api/#/default/post_spans

use std::borrow::Cow;

use serde::Deserialize;

use super::Limits;
use super::json::{CowStr, Num, Pairs};
use crate::error::DecodeError;
use crate::span::{
    SAMPLING_PRIORITY_KEY, SPAN_KIND_KEY, Span, SpanEvent, TRACE_ID_HIGH_KEY, TraceChunk,
    TracerPayload,
};

#[derive(Deserialize, Default)]
struct Endpoint<'a> {
    #[serde(borrow, default, rename = "serviceName")]
    service_name: Option<CowStr<'a>>,
    #[serde(borrow, default)]
    ipv4: Option<CowStr<'a>>,
    #[serde(borrow, default)]
    ipv6: Option<CowStr<'a>>,
    #[serde(default)]
    port: Option<Num>,
}

#[derive(Deserialize)]
struct Annotation<'a> {
    #[serde(default)]
    timestamp: Option<Num>,
    #[serde(borrow, default)]
    value: Option<CowStr<'a>>,
}

#[derive(Deserialize)]
struct ZSpan<'a> {
    #[serde(borrow, rename = "traceId")]
    trace_id: CowStr<'a>,
    #[serde(borrow)]
    id: CowStr<'a>,
    #[serde(borrow, default, rename = "parentId")]
    parent_id: Option<CowStr<'a>>,
    #[serde(borrow, default)]
    name: Option<CowStr<'a>>,
    #[serde(borrow, default)]
    kind: Option<CowStr<'a>>,
    #[serde(default)]
    timestamp: Option<Num>,
    #[serde(default)]
    duration: Option<Num>,
    #[serde(borrow, default, rename = "localEndpoint")]
    local_endpoint: Option<Endpoint<'a>>,
    #[serde(borrow, default, rename = "remoteEndpoint")]
    remote_endpoint: Option<Endpoint<'a>>,
    #[serde(borrow, default)]
    annotations: Option<Vec<Annotation<'a>>>,
    #[serde(borrow, default)]
    tags: Option<Pairs<'a, CowStr<'a>>>,
    #[serde(default)]
    debug: Option<bool>,
    #[serde(default)]
    shared: Option<bool>,
}

/// Byte offset of a string borrowed from `body` (0 when it was unescaped into a copy).
fn offset_of(body: &[u8], s: &str) -> usize {
    let (b, p) = (body.as_ptr() as usize, s.as_ptr() as usize);
    if p >= b && p <= b + body.len() {
        p - b
    } else {
        0
    }
}

fn hex_id(
    s: &str,
    what: &'static str,
    offset: usize,
    allow_128: bool,
) -> Result<(u64, u64), DecodeError> {
    let bad = |reason: &str| DecodeError::Invalid {
        offset,
        what,
        reason: format!("{reason}: {s:?}"),
    };
    let max = if allow_128 { 32 } else { 16 };
    if s.is_empty() || s.len() > max || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad(if allow_128 {
            "expected 1 to 32 hex digits"
        } else {
            "expected 1 to 16 hex digits"
        }));
    }
    let split = s.len().saturating_sub(16);
    let (hi, lo) = s.split_at(split);
    let lo = u64::from_str_radix(lo, 16).map_err(|_| bad("invalid hex"))?;
    let hi = if hi.is_empty() {
        0
    } else {
        u64::from_str_radix(hi, 16).map_err(|_| bad("invalid hex"))?
    };
    Ok((hi, lo))
}

/// Decodes a Zipkin v2 JSON body (`[span, …]`) into Datadog spans, one chunk per trace.
///
/// ```
/// use meshmon_trace::decode::{decode_zipkin, Limits};
/// let body = br#"[{"traceId":"0af7651916cd43dd8448eb211c80319c","id":"b7ad6b7169203331",
///   "name":"get /api","kind":"SERVER","timestamp":1700000000000000,"duration":1500,
///   "localEndpoint":{"serviceName":"frontend"},"tags":{"error":""}}]"#;
/// let p = decode_zipkin(body, &Limits::default())?;
/// let s = &p.chunks[0].spans[0];
/// assert_eq!(s.trace_id_128(), 0x0af7651916cd43dd8448eb211c80319c);
/// assert_eq!((s.service.as_ref(), s.name.as_ref(), s.resource.as_ref()), ("frontend", "zipkin.server", "get /api"));
/// assert_eq!((s.duration, s.error), (1_500_000, 1));
/// # Ok::<(), meshmon_trace::DecodeError>(())
/// ```
pub fn decode_zipkin<'a>(
    body: &'a [u8],
    limits: &Limits,
) -> Result<TracerPayload<'a>, DecodeError> {
    limits.check_body(body)?;
    let zspans: Vec<ZSpan<'a>> =
        serde_json::from_slice(body).map_err(|e| DecodeError::from_json(body, &e))?;
    if zspans.len() > limits.max_spans {
        return Err(DecodeError::LimitExceeded {
            offset: 0,
            what: "Zipkin spans",
            len: zspans.len() as u64,
            limit: limits.max_spans as u64,
        });
    }
    let mut chunks: Vec<TraceChunk<'a>> = Vec::new();
    let mut index: hashbrown::HashMap<(u64, u64), usize> = hashbrown::HashMap::new();
    for z in zspans {
        let (hi, lo) = hex_id(
            &z.trace_id.0,
            "Zipkin traceId",
            offset_of(body, &z.trace_id.0),
            true,
        )?;
        let (_, id) = hex_id(&z.id.0, "Zipkin id", offset_of(body, &z.id.0), false)?;
        let parent = match &z.parent_id {
            Some(p) if !p.0.is_empty() => {
                hex_id(&p.0, "Zipkin parentId", offset_of(body, &p.0), false)?.1
            }
            _ => 0,
        };
        let kind_lower: Cow<'static, str> = match z.kind.as_ref().map(|k| k.0.as_ref()) {
            Some("SERVER") => Cow::Borrowed("server"),
            Some("CLIENT") => Cow::Borrowed("client"),
            Some("PRODUCER") => Cow::Borrowed("producer"),
            Some("CONSUMER") => Cow::Borrowed("consumer"),
            Some(other) if !other.is_empty() => Cow::Owned(other.to_ascii_lowercase()),
            _ => Cow::Borrowed("internal"),
        };
        let tags = z.tags.map(|t| t.0).unwrap_or_default();
        if tags.len() > limits.max_map_entries {
            return Err(DecodeError::LimitExceeded {
                offset: 0,
                what: "Zipkin span tags",
                len: tags.len() as u64,
                limit: limits.max_map_entries as u64,
            });
        }
        let resource = z.name.map(|n| n.0).unwrap_or_default();
        let mut span = Span {
            service: z
                .local_endpoint
                .as_ref()
                .and_then(|e| e.service_name.as_ref())
                .map(|s| s.0.clone())
                .unwrap_or_default(),
            name: Cow::Owned(format!("zipkin.{kind_lower}")),
            resource,
            trace_id: lo,
            trace_id_high: hi,
            span_id: id,
            parent_id: parent,
            start: z
                .timestamp
                .map(|t| t.as_i64().saturating_mul(1000))
                .unwrap_or(0),
            duration: z
                .duration
                .map(|t| t.as_i64().saturating_mul(1000))
                .unwrap_or(0),
            error: 0,
            r#type: Cow::Borrowed(match kind_lower.as_ref() {
                "server" => "web",
                "client" => "http",
                _ => "",
            }),
            ..Span::default()
        };
        span.meta.to_mut().reserve(tags.len() + 4);
        for (k, v) in tags {
            if k == "error" {
                span.error = 1;
            }
            span.meta.push((k, v.0));
        }
        span.meta.push((Cow::Borrowed(SPAN_KIND_KEY), kind_lower));
        if hi != 0 {
            span.meta.push((
                Cow::Borrowed(TRACE_ID_HIGH_KEY),
                Cow::Owned(format!("{hi:016x}")),
            ));
        }
        if z.shared == Some(true) {
            span.meta
                .push((Cow::Borrowed("zipkin.shared"), Cow::Borrowed("true")));
        }
        if let Some(ep) = z.local_endpoint {
            if let Some(ip) = ep.ipv4.or(ep.ipv6) {
                span.meta.push((Cow::Borrowed("network.host.ip"), ip.0));
            }
            if let Some(port) = ep.port {
                span.meta.push((
                    Cow::Borrowed("network.host.port"),
                    Cow::Owned(port.as_u64().to_string()),
                ));
            }
        }
        if let Some(ep) = z.remote_endpoint {
            if let Some(s) = ep.service_name
                && !s.0.is_empty()
                && span.meta("peer.service").is_none()
            {
                span.meta.push((Cow::Borrowed("peer.service"), s.0));
            }
            if let Some(ip) = ep.ipv4.or(ep.ipv6) {
                span.meta
                    .push((Cow::Borrowed("network.destination.ip"), ip.0));
            }
            if let Some(port) = ep.port {
                span.meta.push((
                    Cow::Borrowed("network.destination.port"),
                    Cow::Owned(port.as_u64().to_string()),
                ));
            }
        }
        span.metrics.push((
            Cow::Borrowed(SAMPLING_PRIORITY_KEY),
            if z.debug == Some(true) { 2.0 } else { 1.0 },
        ));
        for a in z.annotations.unwrap_or_default() {
            span.span_events.push(SpanEvent {
                time_unix_nano: a
                    .timestamp
                    .map(|t| t.as_u64().saturating_mul(1000))
                    .unwrap_or(0),
                name: a.value.map(|v| v.0).unwrap_or_default(),
                attributes: Vec::new(),
            });
        }
        let slot = *index.entry((hi, lo)).or_insert_with(|| {
            chunks.push(TraceChunk::default());
            chunks.len() - 1
        });
        chunks[slot].spans.push(span);
    }
    if chunks.len() > limits.max_traces {
        return Err(DecodeError::LimitExceeded {
            offset: 0,
            what: "Zipkin traces",
            len: chunks.len() as u64,
            limit: limits.max_traces as u64,
        });
    }
    for c in &mut chunks {
        c.priority = c
            .spans
            .iter()
            .filter_map(Span::sampling_priority)
            .max_by_key(|p| p.as_i32());
    }
    Ok(TracerPayload::from_chunks(chunks))
}
