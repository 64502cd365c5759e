//! What the trace intake answers when it has no room for a payload, as the Datadog
//! Agent's receiver does (`pkg/trace/api/api.go`, `HTTPReceiver.handleTraces`: when no
//! decoder frees up in time the body is read into `io.Discard`, the reply is
//! `429 Too Many Requests` if the tracer sent `Datadog-Send-Real-Http-Status` and the
//! configured rate-limiter status — `200` unless the `429` feature is on — otherwise,
//! with the endpoint's usual `OK` / `rate_by_service` body, and `PayloadRefused` is
//! counted).
//!
//! A refused payload is never decoded: its body is read and dropped frame by frame
//! (nothing is accumulated, so a refusal costs no memory), the traces it declared in
//! `X-Datadog-Trace-Count` are counted as refused, and the books stay exact:
//! every request is queued, refused or rejected (413, 404, 400, 408), and
//! traces offered = kept + sampled out + dropped (normalisation, full span queue) +
//! refused.

use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::header::{HeaderMap, HeaderValue};
use meshmon_trace::Bytes;
use meshmon_trace::receiver::Endpoint;

use super::{HttpCounters, Resp, reply};

/// Why a payload was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Why {
    /// The intake's request queue (`apm.queue_requests`) was full.
    QueueFull,
    /// `apm.max_inflight_body_bytes` were being read, queued or decoded.
    Memory,
}

/// The latest `rate_by_service` reply body, shared by the handlers (the intake task
/// updates it), so that a refusal answered 200 carries the rates a tracer expects.
pub(super) type Rates = Arc<RwLock<Bytes>>;

/// Whether the tracer asked for real statuses: `Datadog-Send-Real-Http-Status` with a
/// true value as Go's `strconv.ParseBool` reads it (`1`, `t`, `true`…); any other
/// non-empty value counts as true, an empty one or a false one (`0`, `f`, `false`…)
/// as false — the Datadog Agent's `isHeaderTrue`.
pub(super) fn send_real_http_status(headers: &HeaderMap) -> bool {
    let Some(v) = headers.get("datadog-send-real-http-status") else {
        return false;
    };
    let v = v.to_str().unwrap_or("x").trim();
    !(v.is_empty() || matches!(v, "0" | "f" | "F" | "false" | "FALSE" | "False"))
}

/// `X-Datadog-Trace-Count`, when present and a number.
pub(super) fn declared_traces(headers: &HeaderMap) -> Option<u64> {
    headers
        .get("x-datadog-trace-count")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// The status and body of a refusal on `path` (before `Retry-After`).
pub(super) fn refusal(path: &str, real_status: bool, rates: &Rates) -> (u16, &'static str, Bytes) {
    let endpoint = Endpoint::from_path(path);
    let datadog_traces = matches!(
        endpoint,
        Some(Endpoint::V03Traces | Endpoint::V04Traces | Endpoint::V05Traces | Endpoint::V07Traces)
    );
    if real_status || !datadog_traces {
        // Zipkin, stats and `/info` have no such convention: a plain 429.
        return (
            429,
            "text/plain; charset=utf-8",
            Bytes::from_static(b"too many requests: the trace intake is overloaded\n"),
        );
    }
    if endpoint == Some(Endpoint::V03Traces) {
        return (
            200,
            "text/plain; charset=utf-8",
            Bytes::from_static(b"OK\n"),
        );
    }
    let body = rates
        .read()
        .map(|b| b.clone())
        .unwrap_or_else(|_| Bytes::from_static(b"{\"rate_by_service\":{}}"));
    (200, "application/json", body)
}

/// Refuses a request: counts it (reason, status, declared traces), reads and drops its
/// body if it was not read yet (at most `body_timeout`; the connection is closed when
/// it does not arrive), and answers as [`refusal`] says.
pub(super) async fn refuse(
    c: &HttpCounters,
    rates: &Rates,
    path: &str,
    headers: &HeaderMap,
    body: Option<hyper::body::Incoming>,
    body_timeout: Duration,
    why: Why,
) -> Resp {
    match why {
        Why::QueueFull => c.rejected_queue_full.fetch_add(1, Ordering::Relaxed),
        Why::Memory => c.rejected_memory.fetch_add(1, Ordering::Relaxed),
    };
    match declared_traces(headers) {
        Some(n) => c.refused_traces.fetch_add(n, Ordering::Relaxed),
        None => c.refused_undeclared.fetch_add(1, Ordering::Relaxed),
    };
    let real = send_real_http_status(headers);
    let (status, content_type, text) = refusal(path, real, rates);
    if status == 200 {
        c.refused_answered_200.fetch_add(1, Ordering::Relaxed);
    } else {
        c.refused_answered_429.fetch_add(1, Ordering::Relaxed);
    }
    let mut drained = true;
    if let Some(mut body) = body {
        let drain = async {
            while let Some(f) = body.frame().await {
                if f.is_err() {
                    return false;
                }
            }
            true
        };
        drained = tokio::time::timeout(body_timeout, drain)
            .await
            .unwrap_or(false);
    }
    let mut r = reply(status, text);
    let h = r.headers_mut();
    h.insert("content-type", HeaderValue::from_static(content_type));
    if status == 429 {
        h.insert("retry-after", HeaderValue::from_static("1"));
    }
    if !drained {
        h.insert("connection", HeaderValue::from_static("close"));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn real_status_header_is_read_as_go_parse_bool() {
        let real = |v| send_real_http_status(&headers(&[("datadog-send-real-http-status", v)]));
        for v in ["1", "t", "T", "true", "TRUE", "True", "yes", "anything"] {
            assert!(real(v), "{v}");
        }
        for v in ["", "0", "f", "F", "false", "FALSE", "False"] {
            assert!(!real(v), "{v}");
        }
        assert!(!send_real_http_status(&headers(&[])));
    }

    #[test]
    fn refusals_answer_as_the_datadog_agent() {
        let rates: Rates = Arc::new(RwLock::new(Bytes::from_static(
            b"{\"rate_by_service\":{\"service:,env:\":1}}",
        )));
        let (s, ct, b) = refusal("/v0.4/traces", false, &rates);
        assert_eq!((s, ct), (200, "application/json"));
        assert_eq!(&b[..], b"{\"rate_by_service\":{\"service:,env:\":1}}");
        assert_eq!(refusal("/v0.5/traces", false, &rates).0, 200);
        assert_eq!(refusal("/v0.7/traces", false, &rates).0, 200);
        let (s, _, b) = refusal("/v0.3/traces", false, &rates);
        assert_eq!((s, &b[..]), (200, &b"OK\n"[..]));
        for p in ["/v0.3/traces", "/v0.4/traces", "/v0.5/traces"] {
            assert_eq!(refusal(p, true, &rates).0, 429, "{p}");
        }
        for p in ["/api/v2/spans", "/v0.6/stats", "/info"] {
            assert_eq!(refusal(p, false, &rates).0, 429, "{p}");
        }
    }

    #[test]
    fn declared_trace_count() {
        assert_eq!(
            declared_traces(&headers(&[("x-datadog-trace-count", "3")])),
            Some(3)
        );
        assert_eq!(
            declared_traces(&headers(&[("x-datadog-trace-count", "x")])),
            None
        );
        assert_eq!(declared_traces(&headers(&[])), None);
    }
}
