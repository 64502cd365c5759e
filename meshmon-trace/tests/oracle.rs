//! libdatadog as the outside oracle (`libdd-trace-utils`, the decoder Datadog's own
//! serverless agent and tracers use): it must read what meshmon's v0.4 and v0.5 encoders
//! write as the spans that were encoded, and meshmon's decoders must read the same bytes —
//! seeded random traces and the captured tracer payloads — as libdatadog does.

use std::borrow::Cow;
use std::collections::BTreeMap;

use libdd_trace_utils::msgpack_decoder;
use libdd_trace_utils::span::v04::{AttributeAnyValue, AttributeArrayValue, SpanSlice};
use meshmon_trace::decode::{self, Limits};
use meshmon_trace::span::{AttributeValue, SpanEvent, SpanLink};
use meshmon_trace::{Span, encode};

/// Xorshift64*: a seeded generator of test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn text(&mut self) -> String {
        // Short, unicode, str8-long and str16-long strings, and empty ones.
        match self.below(6) {
            0 => String::new(),
            1 => format!("svc-{}", self.below(50)),
            2 => format!("café-☕-{}", self.below(1000)),
            3 => "x".repeat(32 + self.below(200) as usize),
            4 => format!(
                "GET /api/v{}/{}",
                self.below(3),
                "p".repeat(self.below(300) as usize)
            ),
            _ => format!("{:x}", self.next()),
        }
    }
}

const HOT: [&str; 6] = [
    "span.kind",
    "http.status_code",
    "env",
    "peer.service",
    "upstream_cluster",
    "error.type",
];

/// A random span; `full` adds the fields only v0.4 carries (meta_struct, links, events).
fn random_span(rng: &mut Rng, trace_id: u64, full: bool) -> Span<'static> {
    let mut s = Span {
        service: rng.text().into(),
        name: rng.text().into(),
        resource: rng.text().into(),
        trace_id,
        span_id: rng.next() | 1,
        parent_id: if rng.below(4) == 0 { 0 } else { rng.next() },
        start: (rng.next() >> 2) as i64,
        duration: (rng.next() >> 20) as i64,
        error: (rng.below(3) == 0) as i32,
        r#type: rng.text().into(),
        ..Span::default()
    };
    let mut keys = BTreeMap::new();
    for i in 0..rng.below(40) {
        let k = if rng.below(3) == 0 {
            HOT[rng.below(HOT.len() as u64) as usize].to_string()
        } else {
            format!("tag.{i}.{}", rng.text())
        };
        keys.insert(k, rng.text());
    }
    for (k, v) in keys {
        s.set_meta(k, v);
    }
    for i in 0..rng.below(6) {
        s.set_metric(format!("m{i}"), (rng.next() >> 11) as f64 / 3.0);
    }
    if full {
        if rng.below(2) == 0 {
            s.meta_struct
                .push(("appsec".into(), Cow::Owned(vec![0x81, 0xa1, b'a', 0x01])));
        }
        if rng.below(2) == 0 {
            s.span_links.push(SpanLink {
                trace_id: rng.next(),
                trace_id_high: rng.next(),
                span_id: rng.next(),
                attributes: vec![("link.kind".into(), rng.text().into())],
                tracestate: "dd=s:1".into(),
                flags: 1 << 31 | 1,
            });
        }
        if rng.below(2) == 0 {
            s.span_events.push(SpanEvent {
                time_unix_nano: rng.next(),
                name: rng.text().into(),
                attributes: vec![
                    ("msg".into(), AttributeValue::String(rng.text().into())),
                    ("n".into(), AttributeValue::Int(-(rng.below(99) as i64))),
                    ("ok".into(), AttributeValue::Bool(true)),
                    ("r".into(), AttributeValue::Double(0.25)),
                ],
            });
        }
    }
    s
}

fn random_traces(seed: u64, full: bool) -> Vec<Vec<Span<'static>>> {
    let mut rng = Rng(seed);
    (0..40)
        .map(|_| {
            let id = rng.next() | 1;
            (0..1 + rng.below(8))
                .map(|_| random_span(&mut rng, id, full))
                .collect()
        })
        .collect()
}

fn attr(
    v: &AttributeArrayValue<libdd_trace_utils::span::SliceData<'_>>,
) -> AttributeValue<'static> {
    match v {
        AttributeArrayValue::String(s) => AttributeValue::String(s.to_string().into()),
        AttributeArrayValue::Boolean(b) => AttributeValue::Bool(*b),
        AttributeArrayValue::Integer(i) => AttributeValue::Int(*i),
        AttributeArrayValue::Double(d) => AttributeValue::Double(*d),
    }
}

/// Asserts that libdatadog's span and meshmon's describe the same span.
fn same(dd: &SpanSlice<'_>, ours: &Span<'_>, full: bool, ctx: &str) {
    assert_eq!(dd.service, ours.service, "{ctx} service");
    assert_eq!(dd.name, ours.name, "{ctx} name");
    assert_eq!(dd.resource, ours.resource, "{ctx} resource");
    assert_eq!(dd.r#type, ours.r#type, "{ctx} type");
    assert_eq!(dd.trace_id as u64, ours.trace_id, "{ctx} trace_id");
    assert_eq!(dd.span_id, ours.span_id, "{ctx} span_id");
    assert_eq!(dd.parent_id, ours.parent_id, "{ctx} parent_id");
    assert_eq!(dd.start, ours.start, "{ctx} start");
    assert_eq!(dd.duration, ours.duration, "{ctx} duration");
    assert_eq!(dd.error, ours.error, "{ctx} error");
    let dd_meta: Vec<(&str, &str)> = dd
        .meta
        .iter()
        .map(|(k, v)| (k.as_ref(), v.as_ref()))
        .collect();
    let our_meta: Vec<(&str, &str)> = ours.meta.iter().collect();
    assert_eq!(dd_meta, our_meta, "{ctx} meta");
    for (k, v) in &dd_meta {
        // Lookups (the hot-key fast paths included) find the first occurrence.
        let first = dd_meta.iter().find(|(k2, _)| k2 == k).map(|(_, v)| *v);
        assert_eq!(ours.meta(k), first, "{ctx} meta lookup {k} ({v})");
    }
    let dd_metrics: Vec<(&str, f64)> = dd.metrics.iter().map(|(k, v)| (k.as_ref(), *v)).collect();
    let our_metrics: Vec<(&str, f64)> = ours.metrics.iter().collect();
    assert_eq!(dd_metrics, our_metrics, "{ctx} metrics");
    if !full {
        return;
    }
    let dd_ms: Vec<(&str, &[u8])> = dd
        .meta_struct
        .iter()
        .map(|(k, v)| (k.as_ref(), *v))
        .collect();
    let our_ms: Vec<(&str, &[u8])> = ours
        .meta_struct
        .iter()
        .map(|(k, v)| (k.as_ref(), v.as_ref()))
        .collect();
    assert_eq!(dd_ms, our_ms, "{ctx} meta_struct");
    assert_eq!(dd.span_links.len(), ours.span_links.len(), "{ctx} links");
    for (a, b) in dd.span_links.iter().zip(&ours.span_links) {
        assert_eq!(
            (a.trace_id, a.trace_id_high, a.span_id, a.flags),
            (b.trace_id, b.trace_id_high, b.span_id, b.flags),
            "{ctx} link ids"
        );
        assert_eq!(a.tracestate, b.tracestate, "{ctx} tracestate");
        let mut attrs: Vec<(String, String)> = a
            .attributes
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        attrs.sort();
        let mut ours: Vec<(String, String)> = b
            .attributes
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ours.sort();
        assert_eq!(attrs, ours, "{ctx} link attributes");
    }
    assert_eq!(dd.span_events.len(), ours.span_events.len(), "{ctx} events");
    for (a, b) in dd.span_events.iter().zip(&ours.span_events) {
        assert_eq!(a.time_unix_nano, b.time_unix_nano, "{ctx} event time");
        assert_eq!(a.name, b.name, "{ctx} event name");
        let mut attrs: Vec<(String, AttributeValue<'static>)> = a
            .attributes
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    AttributeAnyValue::SingleValue(v) => attr(v),
                    AttributeAnyValue::Array(a) => {
                        AttributeValue::Array(a.iter().map(attr).collect())
                    }
                };
                (k.to_string(), v)
            })
            .collect();
        attrs.sort_by(|x, y| x.0.cmp(&y.0));
        let mut ours: Vec<(String, AttributeValue<'static>)> = b
            .attributes
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone().into_owned()))
            .collect();
        ours.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(attrs, ours, "{ctx} event attributes");
    }
}

fn check_v04(body: &[u8], expected: Option<&[Vec<Span<'static>>]>, ctx: &str) -> usize {
    let (dd, _) = msgpack_decoder::v04::from_slice(body).unwrap();
    let ours = decode::decode_v04(body, &Limits::default()).unwrap();
    assert_eq!(dd.len(), ours.chunks.len(), "{ctx} traces");
    let mut n = 0;
    for (t, (a, b)) in dd.iter().zip(&ours.chunks).enumerate() {
        assert_eq!(a.len(), b.spans.len(), "{ctx} trace {t}");
        for (i, (x, y)) in a.iter().zip(&b.spans).enumerate() {
            let c = format!("{ctx} trace {t} span {i}");
            same(x, y, true, &c);
            if let Some(e) = expected {
                same(x, &e[t][i], true, &format!("{c} (as encoded)"));
            }
            n += 1;
        }
    }
    n
}

fn check_v05(body: &[u8], expected: Option<&[Vec<Span<'static>>]>, ctx: &str) -> usize {
    let (dd, _) = msgpack_decoder::v05::from_slice(body).unwrap();
    let ours = decode::decode_v05(body, &Limits::default()).unwrap();
    assert_eq!(dd.len(), ours.chunks.len(), "{ctx} traces");
    let mut n = 0;
    for (t, (a, b)) in dd.iter().zip(&ours.chunks).enumerate() {
        assert_eq!(a.len(), b.spans.len(), "{ctx} trace {t}");
        for (i, (x, y)) in a.iter().zip(&b.spans).enumerate() {
            let c = format!("{ctx} trace {t} span {i}");
            same(x, y, false, &c);
            if let Some(e) = expected {
                same(x, &e[t][i], false, &format!("{c} (as encoded)"));
            }
            n += 1;
        }
    }
    n
}

#[test]
fn libdatadog_reads_meshmon_encodings_and_agrees_with_meshmon_decoders() {
    for seed in [1u64, 7, 0x5eed, 0xdead_beef] {
        let full = random_traces(seed, true);
        let n = check_v04(
            &encode::encode_v04(&full),
            Some(&full),
            &format!("v0.4 seed {seed}"),
        );
        assert!(n > 40);
        let plain = random_traces(seed, false);
        let n = check_v05(
            &encode::encode_v05(&plain),
            Some(&plain),
            &format!("v0.5 seed {seed}"),
        );
        assert!(n > 40);
    }
}

#[test]
fn libdatadog_and_meshmon_agree_on_captured_payloads() {
    let Some(root) = crate::corpus::shared_data("trace-payloads") else {
        return;
    };
    let mut spans = 0;
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for dir in dirs {
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for f in files {
            let name = f.file_name().unwrap().to_string_lossy().to_string();
            let body = std::fs::read(&f).unwrap();
            let ctx = format!("{}/{name}", dir.display());
            if name.ends_with("_v0.4_traces.bin") || name.ends_with(".v04.msgpack") {
                spans += check_v04(&body, None, &ctx);
            } else if name.ends_with("_v0.5_traces.bin") || name.ends_with(".v05.msgpack") {
                spans += check_v05(&body, None, &ctx);
            }
        }
    }
    assert!(spans >= 50, "only {spans} captured spans compared");
}
