//! The receiver against the captured requests (replayed with their own headers) and the
//! status codes of every error path.

use std::path::Path;

use bytes::Bytes;
use meshmon_core::Timestamp;
use meshmon_trace::assembly::{AssemblerConfig, TraceAssembler};
use meshmon_trace::receiver::{Receiver, ReceiverConfig, Request};
use meshmon_trace::servicemap::ServiceMap;
use meshmon_trace::{Span, encode};
use serde_json::Value;

const NOW: i64 = 1_795_341_490;

fn post<'a>(
    rx: &mut Receiver,
    path: &'a str,
    headers: &'a [(&'a str, &'a str)],
    body: &'a [u8],
) -> (u16, String) {
    let r = rx.handle(
        &Request {
            method: "POST",
            path,
            headers,
            body: Bytes::copy_from_slice(body),
        },
        Timestamp::from_secs(NOW),
    );
    (r.status, String::from_utf8(r.body).unwrap())
}

fn replay_dir(rx: &mut Receiver, dir: &Path) -> (usize, u64) {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let (mut n, mut p0) = (0, 0);
    for f in files {
        let side: Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        let body = std::fs::read(dir.join(side["body_file"].as_str().unwrap())).unwrap();
        let headers: Vec<(String, String)> = side["headers"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        let hdrs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        p0 += side["headers"]
            .get("datadog-client-dropped-p0-traces")
            .and_then(Value::as_str)
            .map_or(0, |v| v.parse::<u64>().unwrap());
        let method = side["method"].as_str().unwrap();
        let path = side["path"].as_str().unwrap();
        let r = rx.handle(
            &Request {
                method,
                path,
                headers: &hdrs,
                body: body.clone().into(),
            },
            Timestamp::from_secs(NOW),
        );
        match path {
            "/info" => {
                assert_eq!(r.status, 200);
                let v: Value = serde_json::from_slice(&r.body).unwrap();
                assert!(
                    v["endpoints"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|e| e == "/v0.5/traces")
                );
            }
            "/v0.6/stats" => assert_eq!(r.status, 200),
            "/api/v2/spans" => assert_eq!(r.status, 202),
            _ => {
                assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
                let v: Value = serde_json::from_slice(&r.body).unwrap();
                assert!(v["rate_by_service"]["service:,env:"].is_number());
                n += 1;
            }
        }
    }
    (n, p0)
}

#[test]
fn captured_requests_replay_with_balanced_accounting() {
    let Some(root) = crate::corpus::shared_data("trace-payloads") else {
        return;
    };
    let mut rx = Receiver::new(ReceiverConfig::default()).unwrap();
    let (mut payloads, mut p0) = (0, 0);
    for d in [
        "ddtrace-4.16.0-default-v05",
        "ddtrace-4.16.0-v04",
        "ddtrace-4.16.0-v04-agentrate0.25",
        "ddtrace-4.16.0-v04-clientstats-rule0.5",
        "zipkin-v2-otel-sdk-1.45",
        "zipkin-v2-py_zipkin-1.2.8-shared",
    ] {
        let (n, p) = replay_dir(&mut rx, &root.join(d));
        payloads += n;
        p0 += p;
    }
    let c = rx.counters();
    assert_eq!(c.payloads_invalid, 0);
    assert_eq!(c.trace_count_mismatch, 0);
    assert!(payloads >= 14);
    assert!(c.balanced(), "{c:?}");
    assert!(p0 > 0);
    assert_eq!(c.client_dropped_p0_traces, p0);
    // Priority 0 (agent rate 0.25) and -1 (rule) chunks are sampled out, errors can be kept
    // by the errors sampler.
    assert!(
        c.spans_sampled_out > 0 && c.spans_kept > c.spans_sampled_out,
        "{c:?}"
    );
    assert_eq!(c.spans_dropped_normalize, 0);
    assert_eq!(c.stats_payloads, 2);

    // The v0.5 capture assembled: productpage's and reviews' chunks join into whole traces
    // with 128-bit ids, the error span, and the service-map edge through Envoy.
    let mut rx = Receiver::new(ReceiverConfig::default()).unwrap();
    replay_dir(&mut rx, &root.join("ddtrace-4.16.0-default-v05"));
    let mut asm = TraceAssembler::new(AssemblerConfig::default());
    let queued = rx.drain_kept();
    // Tracer metadata from the Datadog-Meta-* headers travels with each payload.
    assert!(queued.iter().all(|q| q.info().lang == "python"
        && q.info().tracer_version == "4.16.0"
        && q.info().lang_interpreter == "CPython"
        && !q.info().lang_version.is_empty()));
    // The receiver's own service map (per chunk, before sampling) already has the edge
    // through Envoy's upstream_cluster.
    assert!(
        rx.service_map()
            .edge("productpage.bookinfo", "reviews.bookinfo")
            .is_some_and(|e| e.calls >= 3)
    );
    for q in queued {
        for k in q.into_owned_chunks() {
            asm.add_kept(k, Timestamp::from_secs(NOW));
        }
    }
    let traces = asm.flush(Timestamp::from_secs(NOW + 60));
    assert_eq!(traces.len(), 3);
    let mut map = ServiceMap::new();
    for t in &traces {
        assert_eq!(t.spans.len(), 5);
        assert_ne!(t.trace_id >> 64, 0);
        let ids: Vec<u64> = t.spans.iter().map(|s| s.span_id).collect();
        assert!(
            t.spans
                .iter()
                .all(|s| s.parent_id == 0 || ids.contains(&s.parent_id)),
            "every parent link resolves"
        );
        map.add_trace(&t.spans);
    }
    // One request failed (503 from reviews): exactly one trace holds the error spans.
    assert_eq!(
        traces
            .iter()
            .filter(|t| t.spans.iter().any(|s| s.is_error()))
            .count(),
        1
    );
    let edge = map
        .edge("productpage.bookinfo", "reviews.bookinfo")
        .unwrap();
    assert_eq!(edge.calls, 3);
}

fn one_trace() -> Vec<u8> {
    let s = Span {
        service: "web".into(),
        name: "req".into(),
        trace_id: 3,
        span_id: 4,
        start: NOW * 1_000_000_000,
        duration: 5,
        ..Span::default()
    };
    encode::encode_v04(&[vec![s]])
}

#[test]
fn status_codes() {
    let body = one_trace();
    let mut rx = Receiver::new(ReceiverConfig::default()).unwrap();
    assert_eq!(
        post(&mut rx, "/v0.3/traces", &[], &body),
        (200, "OK\n".to_string())
    );
    let (st, b) = post(&mut rx, "/v0.4/traces", &[], &body);
    assert_eq!(st, 200);
    assert!(b.starts_with("{\"rate_by_service\":"));
    assert_eq!(post(&mut rx, "/v0.6/stats", &[], b"\x80").0, 200);
    assert_eq!(post(&mut rx, "/nope", &[], &body).0, 404);
    let r = rx.handle(
        &Request {
            method: "GET",
            path: "/v0.4/traces",
            headers: &[],
            body: Bytes::new(),
        },
        Timestamp::from_secs(NOW),
    );
    assert_eq!(r.status, 405);
    assert_eq!(
        post(
            &mut rx,
            "/v0.4/traces",
            &[("Sec-Fetch-Site", "cross-site")],
            &body
        )
        .0,
        403
    );
    // 400 with the reason and the byte offset: a map where the span list should be.
    let (st, reason) = post(&mut rx, "/v0.4/traces", &[], b"\x91\x81\xa1a\x01");
    assert_eq!(st, 400);
    assert!(reason.contains("byte 1"), "{reason}");
    // JSON by Content-Type.
    let json = br#"[[{"service":"web","name":"req","trace_id":9,"span_id":1,"start":1795341490000000000,"duration":3}]]"#;
    assert_eq!(
        post(
            &mut rx,
            "/v0.4/traces",
            &[("Content-Type", "application/json")],
            json
        )
        .0,
        200
    );
    assert_eq!(
        post(
            &mut rx,
            "/api/v2/spans",
            &[],
            br#"[{"traceId":"1","id":"2"}]"#
        )
        .0,
        202
    );
    assert_eq!(
        post(
            &mut rx,
            "/api/v2/spans",
            &[],
            br#"[{"traceId":"xyz","id":"2"}]"#
        )
        .0,
        400
    );
    assert!(rx.counters().balanced());

    // 413 over the size limit.
    let mut cfg = ReceiverConfig::default();
    cfg.limits.max_body_bytes = 10;
    let mut small = Receiver::new(cfg).unwrap();
    assert_eq!(post(&mut small, "/v0.4/traces", &[], &body).0, 413);
    assert_eq!(small.counters().payloads_too_large, 1);

    // Queue full: 429 when the client asks for real statuses, 200 otherwise; both counted.
    let mut cfg = ReceiverConfig::default();
    cfg.max_queued_spans = 1;
    let mut q = Receiver::new(cfg).unwrap();
    assert_eq!(
        post(
            &mut q,
            "/v0.4/traces",
            &[("Datadog-Send-Real-Http-Status", "1")],
            &body
        )
        .0,
        200
    );
    assert_eq!(
        post(
            &mut q,
            "/v0.4/traces",
            &[("Datadog-Send-Real-Http-Status", "1")],
            &body
        )
        .0,
        429
    );
    assert_eq!(post(&mut q, "/v0.4/traces", &[], &body).0, 200);
    assert_eq!(q.counters().spans_dropped_queue_full, 2);
    assert!(q.counters().balanced());
    assert_eq!(q.drain_kept().len(), 1);
    assert_eq!(
        post(
            &mut q,
            "/v0.4/traces",
            &[("Datadog-Send-Real-Http-Status", "1")],
            &body
        )
        .0,
        200
    );
}

#[test]
fn normalisation_drops_are_counted() {
    let bad = Span {
        service: "web".into(),
        trace_id: 0,
        span_id: 4,
        ..Span::default()
    };
    let body = encode::encode_v04(&[vec![bad]]);
    let mut rx = Receiver::new(ReceiverConfig::default()).unwrap();
    assert_eq!(post(&mut rx, "/v0.4/traces", &[], &body).0, 200);
    assert_eq!(rx.counters().spans_dropped_normalize, 1);
    assert_eq!(rx.normalize_stats().traces_trace_id_zero, 1);
    assert!(rx.counters().balanced());
}
