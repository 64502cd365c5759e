//! Datadog v0.3 / v0.4 as JSON (`Content-Type: application/json`): `[[span, …], …]` with
//! the same keys as msgpack. Strings borrow from the body unless they contain escapes;
//! `null` is the zero value, unknown keys are ignored.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::Limits;
use crate::error::DecodeError;
use crate::span::{Span, TRACE_ID_HIGH_KEY, TraceChunk, TracerPayload, parse_hex_u64};

/// A string that borrows from the input when it can; `null` is "".
pub(super) struct CowStr<'a>(pub(super) Cow<'a, str>);

impl<'de: 'a, 'a> de::Deserialize<'de> for CowStr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = CowStr<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or null")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v)))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed("")))
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed("")))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// A number or null (0), integer or float.
#[derive(Clone, Copy)]
pub(super) enum Num {
    U(u64),
    I(i64),
    F(f64),
}

impl Num {
    pub(super) fn as_u64(self) -> u64 {
        match self {
            Num::U(u) => u,
            Num::I(i) => i as u64,
            Num::F(f) => f as u64,
        }
    }
    pub(super) fn as_i64(self) -> i64 {
        match self {
            Num::U(u) => u as i64,
            Num::I(i) => i,
            Num::F(f) => f as i64,
        }
    }
    pub(super) fn as_f64(self) -> f64 {
        match self {
            Num::U(u) => u as f64,
            Num::I(i) => i as f64,
            Num::F(f) => f,
        }
    }
}

impl<'de> de::Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Num;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number or null")
            }
            fn visit_u64<E>(self, v: u64) -> Result<Num, E> {
                Ok(Num::U(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Num, E> {
                Ok(Num::I(v))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Num, E> {
                Ok(Num::F(v))
            }
            fn visit_unit<E>(self) -> Result<Num, E> {
                Ok(Num::U(0))
            }
            fn visit_none<E>(self) -> Result<Num, E> {
                Ok(Num::U(0))
            }
        }
        d.deserialize_any(V)
    }
}

/// A JSON object read into ordered pairs, with a size limit.
pub(super) struct Pairs<'a, T>(pub(super) Vec<(Cow<'a, str>, T)>);

impl<'de: 'a, 'a, T: de::Deserialize<'de>> de::Deserialize<'de> for Pairs<'a, T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a, T>(std::marker::PhantomData<(&'a (), T)>);
        impl<'de: 'a, 'a, T: de::Deserialize<'de>> Visitor<'de> for V<'a, T> {
            type Value = Pairs<'a, T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object or null")
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Pairs(Vec::new()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut v = Vec::new();
                while let Some(k) = map.next_key::<CowStr<'a>>()? {
                    v.push((k.0, map.next_value::<T>()?));
                }
                Ok(Pairs(v))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

struct JsonSpan<'a>(Span<'a>);

impl<'de> de::Deserialize<'de> for JsonSpan<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = JsonSpan<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a span object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut s = Span::default();
                while let Some(k) = map.next_key::<CowStr<'de>>()? {
                    match k.0.as_ref() {
                        "service" => s.service = map.next_value::<CowStr>()?.0,
                        "name" => s.name = map.next_value::<CowStr>()?.0,
                        "resource" => s.resource = map.next_value::<CowStr>()?.0,
                        "type" => s.r#type = map.next_value::<CowStr>()?.0,
                        "trace_id" => s.trace_id = map.next_value::<Num>()?.as_u64(),
                        "span_id" => s.span_id = map.next_value::<Num>()?.as_u64(),
                        "parent_id" => s.parent_id = map.next_value::<Num>()?.as_u64(),
                        "start" => s.start = map.next_value::<Num>()?.as_i64(),
                        "duration" => s.duration = map.next_value::<Num>()?.as_i64(),
                        "error" => s.error = map.next_value::<Num>()?.as_i64() as i32,
                        "meta" => {
                            s.meta = map
                                .next_value::<Pairs<CowStr>>()?
                                .0
                                .into_iter()
                                .map(|(k, v)| (k, v.0))
                                .collect::<Vec<_>>()
                                .into()
                        }
                        "metrics" => {
                            s.metrics = map
                                .next_value::<Pairs<Num>>()?
                                .0
                                .into_iter()
                                .map(|(k, v)| (k, v.as_f64()))
                                .collect::<Vec<_>>()
                                .into()
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                if let Some(h) = s.meta(TRACE_ID_HIGH_KEY).and_then(parse_hex_u64) {
                    s.trace_id_high = h;
                }
                Ok(JsonSpan(s))
            }
        }
        d.deserialize_map(V)
    }
}

struct Traces<'a> {
    chunks: Vec<TraceChunk<'a>>,
    max_traces: usize,
    max_spans: usize,
}

impl<'de> DeserializeSeed<'de> for &mut Traces<'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        struct Outer<'s, 'de>(&'s mut Traces<'de>);
        impl<'de> Visitor<'de> for Outer<'_, 'de> {
            type Value = ();
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of traces")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
                let mut total = 0usize;
                while let Some(trace) = seq.next_element::<Vec<JsonSpan<'de>>>()? {
                    if self.0.chunks.len() >= self.0.max_traces {
                        return Err(de::Error::custom("more traces than the limit"));
                    }
                    total += trace.len();
                    if total > self.0.max_spans {
                        return Err(de::Error::custom("more spans than the limit"));
                    }
                    self.0.chunks.push(TraceChunk::from_spans(
                        trace.into_iter().map(|s| s.0).collect(),
                    ));
                }
                Ok(())
            }
        }
        d.deserialize_seq(Outer(self))
    }
}

pub(super) fn decode<'a>(
    body: &'a [u8],
    limits: &Limits,
) -> Result<TracerPayload<'a>, DecodeError> {
    let mut traces = Traces {
        chunks: Vec::new(),
        max_traces: limits.max_traces,
        max_spans: limits.max_spans,
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    (&mut traces)
        .deserialize(&mut de)
        .and_then(|()| de.end())
        .map_err(|e| DecodeError::from_json(body, &e))?;
    for span in traces.chunks.iter().flat_map(|c| c.spans.iter()) {
        let n = span.meta.len().max(span.metrics.len());
        if n > limits.max_map_entries {
            return Err(DecodeError::LimitExceeded {
                offset: 0,
                what: "meta/metrics entries of a JSON span",
                len: n as u64,
                limit: limits.max_map_entries as u64,
            });
        }
    }
    Ok(TracerPayload::from_chunks(traces.chunks))
}
