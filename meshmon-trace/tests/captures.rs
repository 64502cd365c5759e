//! Decoding and sampling checked against the real captured requests in
//! `../shared/data/trace-payloads/` (ddtrace 4.16.0, OpenTelemetry Zipkin exporter,
//! py_zipkin): every span field against the capture's own decoded summary, every
//! captured sampling decision reproduced.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use meshmon_trace::decode::{self, Format, Limits};
use meshmon_trace::encode;
use meshmon_trace::sampler::sample_by_rate;
use meshmon_trace::{Span, TracerPayload};
use serde_json::Value;

fn data_dir() -> Option<PathBuf> {
    crate::corpus::shared_data("trace-payloads")
}

/// (sidecar json, body bytes) of every request in a capture directory.
fn requests(dir: &Path) -> Vec<(Value, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let side: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            let body = std::fs::read(dir.join(side["body_file"].as_str().unwrap())).unwrap();
            (side, body)
        })
        .collect()
}

fn format_of(path: &str) -> Option<Format> {
    match path {
        "/v0.4/traces" | "/v0.3/traces" => Some(Format::V04),
        "/v0.5/traces" => Some(Format::V05),
        "/v0.7/traces" => Some(Format::V07),
        "/api/v2/spans" => Some(Format::Zipkin),
        _ => None,
    }
}

fn assert_span_matches(s: &Span<'_>, want: &Value, ctx: &str) {
    let u = |k: &str| want.get(k).and_then(Value::as_u64).unwrap_or(0);
    let i = |k: &str| want.get(k).and_then(Value::as_i64).unwrap_or(0);
    let st = |k: &str| {
        want.get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(s.service, st("service"), "{ctx}");
    assert_eq!(s.name, st("name"), "{ctx}");
    assert_eq!(s.resource, st("resource"), "{ctx}");
    assert_eq!(s.r#type, st("type"), "{ctx}");
    assert_eq!(s.trace_id, u("trace_id"), "{ctx}");
    assert_eq!(s.span_id, u("span_id"), "{ctx}");
    assert_eq!(s.parent_id, u("parent_id"), "{ctx}");
    assert_eq!(s.start, i("start"), "{ctx}");
    assert_eq!(s.duration, i("duration"), "{ctx}");
    assert_eq!(i64::from(s.error), i("error"), "{ctx}");
    let meta: BTreeMap<String, String> = s
        .meta
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let want_meta: BTreeMap<String, String> = want
        .get("meta")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(meta, want_meta, "{ctx}");
    let metrics: BTreeMap<String, f64> =
        s.metrics.iter().map(|(k, v)| (k.to_string(), v)).collect();
    let want_metrics: BTreeMap<String, f64> = want
        .get("metrics")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_f64().unwrap()))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(metrics, want_metrics, "{ctx}");
    // 128-bit ids: the high half travels in meta["_dd.p.tid"].
    match want_meta.get("_dd.p.tid") {
        Some(h) => assert_eq!(
            s.trace_id_high,
            u64::from_str_radix(h, 16).unwrap(),
            "{ctx}"
        ),
        None => assert_eq!(s.trace_id_high, 0, "{ctx}"),
    }
}

fn datadog_dirs(root: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .starts_with("ddtrace")
        })
        .collect();
    v.sort();
    v
}

#[test]
fn datadog_captures_decode_field_for_field_and_round_trip() {
    let Some(root) = data_dir() else { return };
    let mut spans_checked = 0;
    for dir in datadog_dirs(&root) {
        for (side, body) in requests(&dir) {
            let path = side["path"].as_str().unwrap();
            let Some(format) = format_of(path) else {
                continue;
            };
            let ctx = format!("{}/{}", dir.display(), side["body_file"]);
            assert_eq!(Format::sniff(&body), format, "{ctx}");
            let p = decode::decode(format, &body, &Limits::default())
                .unwrap_or_else(|e| panic!("{ctx}: {e}"));
            let want = side["summary"]["traces"].as_array().unwrap();
            assert_eq!(p.chunks.len(), want.len(), "{ctx}");
            let count: usize = side["headers"]["x-datadog-trace-count"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(p.chunks.len(), count, "{ctx}");
            for (c, wc) in p.chunks.iter().zip(want) {
                let wc = wc.as_array().unwrap();
                assert_eq!(c.spans.len(), wc.len(), "{ctx}");
                for (s, ws) in c.spans.iter().zip(wc) {
                    assert_span_matches(s, ws, &ctx);
                    spans_checked += 1;
                }
            }
            // Round trips through both encoders.
            let traces: Vec<Vec<Span>> = p.chunks.iter().map(|c| c.spans.clone()).collect();
            let v4 = encode::encode_v04(&traces);
            let back = decode::decode_v04(&v4, &Limits::default()).unwrap();
            assert_eq!(back, p, "{ctx} v0.4 round trip");
            let v5 = encode::encode_v05(&traces);
            let back = decode::decode_v05(&v5, &Limits::default()).unwrap();
            assert_eq!(back, p, "{ctx} v0.5 round trip");
        }
    }
    assert!(spans_checked >= 150, "{spans_checked}");
}

#[test]
fn libdatadog_omits_zero_parent_and_error_keys() {
    let Some(root) = data_dir() else { return };
    let body = std::fs::read(root.join("ddtrace-4.16.0-v04/0002_v0.4_traces.bin")).unwrap();
    let p = decode::decode_v04(&body, &Limits::default()).unwrap();
    // The encoder really left the keys out: "parent_id" appears once per non-root span.
    let non_roots = p.spans().filter(|s| s.parent_id != 0).count();
    assert_eq!(count(&body, b"parent_id"), non_roots);
    assert!(non_roots < p.span_count());
    for c in &p.chunks {
        assert_eq!(c.root().unwrap().parent_id, 0);
        assert!(c.root().unwrap().trace_id_high != 0, "128-bit ids");
    }
}

fn count(h: &[u8], n: &[u8]) -> usize {
    h.windows(n.len()).filter(|w| *w == n).count()
}

#[test]
fn json_body_equals_msgpack_body() {
    let Some(root) = data_dir() else { return };
    let json = std::fs::read(root.join("synthetic-envoy-istio/ddtrace-v04-as-json.json")).unwrap();
    let mp = std::fs::read(root.join("ddtrace-4.16.0-v04/0002_v0.4_traces.bin")).unwrap();
    assert_eq!(Format::sniff(&json), Format::Json);
    let a = decode::decode_json(&json, &Limits::default()).unwrap();
    let b = decode::decode_v04(&mp, &Limits::default()).unwrap();
    assert_eq!(a, b);
}

#[test]
fn envoy_v04_and_v05_agree() {
    let Some(root) = data_dir() else { return };
    let v4 = std::fs::read(root.join("synthetic-envoy-istio/envoy30.v04.msgpack")).unwrap();
    let v5 = std::fs::read(root.join("synthetic-envoy-istio/envoy30.v05.msgpack")).unwrap();
    assert_eq!(Format::sniff(&v4), Format::V04);
    assert_eq!(Format::sniff(&v5), Format::V05);
    let a = decode::decode_v04(&v4, &Limits::default()).unwrap();
    let b = decode::decode_v05(&v5, &Limits::default()).unwrap();
    assert_eq!(a.span_count(), 30);
    assert_eq!(a.chunks.len(), 3);
    assert_eq!(a, b);
    assert!(a.spans().filter(|s| s.name == "envoy.proxy").count() >= 10);
    assert!(
        a.spans()
            .filter(|s| s.meta("upstream_cluster").is_some())
            .count()
            >= 10
    );
}

/// Every `_dd.p.dm=-1` (agent rate) and `-3` (rule rate) decision in the captures is the
/// Knuth rate sampler's decision at the rate the tracer recorded for that trace.
#[test]
fn every_captured_sampling_decision_is_reproduced() {
    let Some(root) = data_dir() else { return };
    let mut checked = 0;
    for dir in datadog_dirs(&root) {
        let payloads: Vec<(String, Vec<u8>)> = requests(&dir)
            .into_iter()
            .filter(|(s, _)| format_of(s["path"].as_str().unwrap()).is_some())
            .map(|(s, b)| (s["path"].as_str().unwrap().to_string(), b))
            .collect();
        let decoded: Vec<TracerPayload> = payloads
            .iter()
            .map(|(path, b)| {
                decode::decode(format_of(path).unwrap(), b, &Limits::default()).unwrap()
            })
            .collect();
        // The rate each trace was decided at, wherever the tracer recorded it (the root's
        // chunk carries `_dd.agent_psr` or `_dd.rule_psr`; downstream chunks only the outcome).
        let mut rate_of: BTreeMap<u64, f64> = BTreeMap::new();
        for s in decoded.iter().flat_map(|p| p.spans()) {
            if let Some(r) = s
                .metric("_dd.agent_psr")
                .or_else(|| s.metric("_dd.rule_psr"))
            {
                rate_of.insert(s.trace_id, r);
            }
        }
        for p in &decoded {
            for c in &p.chunks {
                let root_span = c.root().unwrap();
                let dm = c
                    .spans
                    .iter()
                    .find_map(|s| s.meta("_dd.p.dm"))
                    .unwrap_or("");
                if dm != "-1" && dm != "-3" {
                    continue;
                }
                let rate = rate_of[&root_span.trace_id];
                let priority = c.priority.unwrap();
                assert_eq!(
                    sample_by_rate(root_span.trace_id, rate),
                    priority > 0,
                    "trace {} dm {dm} rate {rate} priority {priority}",
                    root_span.trace_id
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 40, "{checked}");
}

#[test]
fn zipkin_captures_decode() {
    let Some(root) = data_dir() else { return };
    for name in [
        "zipkin-v2-otel-sdk-1.45",
        "zipkin-v2-py_zipkin-1.2.8-shared",
    ] {
        for (side, body) in requests(&root.join(name)) {
            let ctx = format!("{name}/{}", side["body_file"]);
            assert_eq!(Format::sniff(&body), Format::Zipkin, "{ctx}");
            let p = decode::decode_zipkin(&body, &Limits::default()).unwrap();
            let want = side["summary"]["decoded"].as_array().unwrap();
            let spans: Vec<&Span> = p.spans().collect();
            assert_eq!(spans.len(), want.len(), "{ctx}");
            for w in want {
                let id = u64::from_str_radix(w["id"].as_str().unwrap(), 16).unwrap();
                let tid = u128::from_str_radix(w["traceId"].as_str().unwrap(), 16).unwrap();
                // Shared span ids: match on id and kind.
                let kind = w
                    .get("kind")
                    .and_then(Value::as_str)
                    .unwrap_or("INTERNAL")
                    .to_ascii_lowercase();
                let s = spans
                    .iter()
                    .find(|s| s.span_id == id && s.kind() == kind)
                    .unwrap_or_else(|| panic!("{ctx}: span {id:x}"));
                assert_eq!(s.trace_id_128(), tid, "{ctx}");
                assert_eq!(
                    s.service,
                    w["localEndpoint"]["serviceName"].as_str().unwrap(),
                    "{ctx}"
                );
                assert_eq!(s.resource, w["name"].as_str().unwrap(), "{ctx}");
                assert_eq!(s.start, w["timestamp"].as_i64().unwrap() * 1000, "{ctx}");
                assert_eq!(s.duration, w["duration"].as_i64().unwrap() * 1000, "{ctx}");
                let parent = w
                    .get("parentId")
                    .and_then(Value::as_str)
                    .map(|p| u64::from_str_radix(p, 16).unwrap())
                    .unwrap_or(0);
                assert_eq!(s.parent_id, parent, "{ctx}");
                let is_err = w.get("tags").and_then(|t| t.get("error")).is_some();
                assert_eq!(s.is_error(), is_err, "{ctx}");
                if w.get("shared") == Some(&Value::Bool(true)) {
                    assert_eq!(s.meta("zipkin.shared"), Some("true"));
                }
                if w.get("debug") == Some(&Value::Bool(true)) {
                    assert_eq!(s.sampling_priority(), Some(2));
                }
            }
        }
    }
}
