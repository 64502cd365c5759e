//! Decoders for the Datadog trace intake formats and Zipkin v2 JSON.
//!
//! | format | endpoint | body |
//! |---|---|---|
//! | [`Format::V04`] | `/v0.3/traces`, `/v0.4/traces` | msgpack `[[span map, …], …]` |
//! | [`Format::Json`] | `/v0.3`, `/v0.4` with `Content-Type: application/json` | the same as JSON |
//! | [`Format::V05`] | `/v0.5/traces` | msgpack `[[string, …], [[12-element span array, …], …]]` |
//! | [`Format::V07`] | `/v0.7/traces` | msgpack `TracerPayload` map |
//! | [`Format::Zipkin`] | `/api/v2/spans` | Zipkin v2 JSON `[span, …]` |
//!
//! The references are the Datadog Agent's `pkg/trace/pb` decoders (`decoder_bytes.go`,
//! `decoder_v05.go`, `span_msgp.go`, `tracer_payload_msgp.go`) and the
//! [Zipkin v2 API](https://zipkin.io/zipkin-api/#/default/post_spans).
//! Every decoder takes `&[u8]`, returns spans borrowing from it, and checks [`Limits`]
//! before allocating.

mod json;
mod v04;
mod v05;
mod v07;
mod zipkin;

use crate::error::DecodeError;
use crate::span::TracerPayload;

pub use zipkin::decode_zipkin;

/// Size and count limits applied while decoding. Exceeding one is a
/// [`DecodeError::LimitExceeded`] (or [`DecodeError::BodyTooLarge`]) carrying the offset.
/// Start from [`Limits::default`] and change what you need
/// (`Limits::default().with_max_body_bytes(1 << 30)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Largest accepted body, in bytes (the Agent's `max_request_bytes`, 25 MiB).
    pub max_body_bytes: usize,
    /// Most traces (chunks) in one payload.
    pub max_traces: usize,
    /// Most spans in one payload, across traces.
    pub max_spans: usize,
    /// Most entries in one map (`meta`, `metrics`, a span's fields…).
    pub max_map_entries: usize,
    /// Longest string, in bytes.
    pub max_string_bytes: usize,
    /// Most strings in a v0.5 string table.
    pub max_string_table: usize,
    /// Deepest nesting of values (only reachable through skipped unknown keys and
    /// span-event arrays).
    pub max_depth: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 25 * 1024 * 1024,
            max_traces: 1 << 20,
            max_spans: 1 << 22,
            max_map_entries: 1 << 16,
            max_string_bytes: 25 * 1024 * 1024,
            max_string_table: 1 << 22,
            max_depth: 32,
        }
    }
}

/// Why a [`Limits`] was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitsError {
    /// A limit is zero, so nothing could be decoded.
    #[error("limit {0} must be at least 1")]
    Zero(&'static str),
}

impl Limits {
    /// The limits with another body size bound.
    pub fn with_max_body_bytes(mut self, n: usize) -> Self {
        self.max_body_bytes = n;
        self
    }

    /// The limits with another bound on spans per payload.
    pub fn with_max_spans(mut self, n: usize) -> Self {
        self.max_spans = n;
        self
    }

    /// The limits with another bound on traces per payload.
    pub fn with_max_traces(mut self, n: usize) -> Self {
        self.max_traces = n;
        self
    }

    /// The limits with another bound on one string's length.
    pub fn with_max_string_bytes(mut self, n: usize) -> Self {
        self.max_string_bytes = n;
        self
    }

    /// Checks that no limit is zero (a zero depth is allowed: flat payloads only).
    pub fn validate(&self) -> Result<(), LimitsError> {
        for (name, v) in [
            ("max_body_bytes", self.max_body_bytes),
            ("max_traces", self.max_traces),
            ("max_spans", self.max_spans),
            ("max_map_entries", self.max_map_entries),
            ("max_string_bytes", self.max_string_bytes),
            ("max_string_table", self.max_string_table),
        ] {
            if v == 0 {
                return Err(LimitsError::Zero(name));
            }
        }
        Ok(())
    }

    pub(crate) fn check_body(&self, body: &[u8]) -> Result<(), DecodeError> {
        if body.len() > self.max_body_bytes {
            return Err(DecodeError::BodyTooLarge {
                len: body.len() as u64,
                limit: self.max_body_bytes as u64,
            });
        }
        Ok(())
    }
}

/// A wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Format {
    /// Datadog v0.3 / v0.4 msgpack (span maps).
    V04,
    /// Datadog v0.5 msgpack (string table + span arrays).
    V05,
    /// Datadog v0.7 msgpack tracer payload.
    V07,
    /// Datadog v0.3 / v0.4 as JSON.
    Json,
    /// Zipkin v2 JSON.
    Zipkin,
}

impl Format {
    /// Guesses the format of a body: JSON arrays whose first object has `traceId` are
    /// Zipkin, other JSON is Datadog JSON; a msgpack map is v0.7; a two-element msgpack
    /// array whose first element is an array of strings is v0.5; other msgpack is v0.4.
    pub fn sniff(body: &[u8]) -> Format {
        let first = body.iter().copied().find(|b| !b.is_ascii_whitespace());
        match first {
            Some(b'[') | Some(b'{') => {
                let head = &body[..body.len().min(4096)];
                if memchr::memmem::find(head, b"\"traceId\"").is_some() {
                    Format::Zipkin
                } else {
                    Format::Json
                }
            }
            Some(0x80..=0x8f) | Some(0xde) | Some(0xdf) => Format::V07,
            Some(0x92) => {
                // [ [strings…], [traces…] ] vs a v0.4 payload of two traces: a v0.4 trace
                // holds maps, the v0.5 string table holds strings.
                match body.get(1) {
                    Some(0x90..=0x9f) | Some(0xdc) | Some(0xdd) => {
                        let inner = match body[1] {
                            0xdc => 3,
                            0xdd => 5,
                            _ => 1,
                        };
                        match body.get(1 + inner) {
                            Some(0xa0..=0xbf) | Some(0xd9..=0xdb) | Some(0xc4..=0xc6) => {
                                Format::V05
                            }
                            _ => Format::V04,
                        }
                    }
                    _ => Format::V04,
                }
            }
            _ => Format::V04,
        }
    }

    /// The short name used on the command line (`v04`, `v05`, `v07`, `json`, `zipkin`).
    pub fn as_str(self) -> &'static str {
        match self {
            Format::V04 => "v04",
            Format::V05 => "v05",
            Format::V07 => "v07",
            Format::Json => "json",
            Format::Zipkin => "zipkin",
        }
    }
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "v04" | "v0.4" | "v03" | "v0.3" => Format::V04,
            "v05" | "v0.5" => Format::V05,
            "v07" | "v0.7" => Format::V07,
            "json" => Format::Json,
            "zipkin" => Format::Zipkin,
            other => {
                return Err(format!(
                    "unknown format {other:?} (v04, v05, v07, json, zipkin)"
                ));
            }
        })
    }
}

/// Decodes a body in the given format.
///
/// ```
/// use meshmon_trace::decode::{decode, Format, Limits};
/// // one trace with one span: [[{"service":"web","trace_id":7,"span_id":1}]]
/// let body = b"\x91\x91\x83\xa7service\xa3web\xa8trace_id\x07\xa7span_id\x01";
/// let p = decode(Format::V04, body, &Limits::default())?;
/// assert_eq!(p.chunks[0].spans[0].service, "web");
/// assert_eq!(p.chunks[0].spans[0].trace_id, 7);
/// # Ok::<(), meshmon_trace::DecodeError>(())
/// ```
pub fn decode<'a>(
    format: Format,
    body: &'a [u8],
    limits: &Limits,
) -> Result<TracerPayload<'a>, DecodeError> {
    match format {
        Format::V04 => decode_v04(body, limits),
        Format::V05 => decode_v05(body, limits),
        Format::V07 => decode_v07(body, limits),
        Format::Json => decode_json(body, limits),
        Format::Zipkin => decode_zipkin(body, limits),
    }
}

/// Decodes a v0.3/v0.4 msgpack body: an array of traces, each an array of span maps.
pub fn decode_v04<'a>(body: &'a [u8], limits: &Limits) -> Result<TracerPayload<'a>, DecodeError> {
    limits.check_body(body)?;
    v04::decode(body, limits)
}

/// Decodes a v0.5 msgpack body: `[string table, traces]`, spans as 12-element arrays of
/// string-table indices and numbers.
pub fn decode_v05<'a>(body: &'a [u8], limits: &Limits) -> Result<TracerPayload<'a>, DecodeError> {
    limits.check_body(body)?;
    v05::decode(body, limits)
}

/// Decodes a v0.7 msgpack tracer payload.
pub fn decode_v07<'a>(body: &'a [u8], limits: &Limits) -> Result<TracerPayload<'a>, DecodeError> {
    limits.check_body(body)?;
    v07::decode(body, limits)
}

/// Decodes a v0.3/v0.4 JSON body.
pub fn decode_json<'a>(body: &'a [u8], limits: &Limits) -> Result<TracerPayload<'a>, DecodeError> {
    limits.check_body(body)?;
    json::decode(body, limits)
}
