//! The status page at `/`: plain HTML, CSS and JavaScript embedded in the binary (no build
//! step, nothing fetched from another origin), served with a strict
//! [Content-Security-Policy](https://www.w3.org/TR/CSP3/) (`default-src 'self'`), and the
//! two API answers it needs beyond the store's own:
//!
//! - `/api/v1/services/{name}/timeseries`: a service's request rate, error rate and
//!   p50/p95/p99 latency over time (from the APM series `trace.<name>.hits`, `.errors` and
//!   `trace.<name>.duration.by.service.{50p,95p,99p}`), and the scraped series that name the
//!   service (`destination_service_name` or `service` tag);
//! - the `logs` of `/api/v1/traces/{id}`: the lines of the correlation index
//!   ([`crate::store::correlate`]) matched by trace id or by the spans'
//!   `guid:x-request-id`.
//!
//! Assets: `/` (`index.html`), `/ui/app.js`, `/ui/style.css`, `/ui/favicon.svg`.

use std::collections::BTreeMap;

use hyper::StatusCode;
use hyper::header::HeaderValue;
use serde_json::{Value, json};

use super::{Resp, error, json_reply, reply};
use crate::store::{Store, StoredTrace};

const INDEX_HTML: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const STYLE_CSS: &str = include_str!("style.css");
const FAVICON_SVG: &str = include_str!("favicon.svg");

/// The page's Content-Security-Policy: only this origin, no inline script, no framing.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Whether `path` is one this module answers.
pub fn serves(path: &str) -> bool {
    path == "/"
        || path == "/index.html"
        || path.starts_with("/ui/")
        || (path.starts_with("/api/v1/services/") && path.ends_with("/timeseries"))
}

/// An embedded asset by path: (content type, body).
pub fn asset(path: &str) -> Option<(&'static str, &'static str)> {
    Some(match path {
        "/" | "/index.html" | "/ui/" | "/ui/index.html" => ("text/html; charset=utf-8", INDEX_HTML),
        "/ui/app.js" => ("text/javascript; charset=utf-8", APP_JS),
        "/ui/style.css" => ("text/css; charset=utf-8", STYLE_CSS),
        "/ui/favicon.svg" => ("image/svg+xml", FAVICON_SVG),
        _ => return None,
    })
}

fn with_security_headers(mut r: Resp) -> Resp {
    let h = r.headers_mut();
    for (k, v) in [
        ("content-security-policy", CSP),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    r
}

/// Answers a path [`serves`] accepts.
pub fn route(store: &Store, path: &str, bucket_s: f64, since: Option<f64>) -> Resp {
    if let Some((ct, body)) = asset(path) {
        return with_security_headers(reply(StatusCode::OK, ct, body));
    }
    if let Some(name) = path
        .strip_prefix("/api/v1/services/")
        .and_then(|p| p.strip_suffix("/timeseries"))
    {
        let name = super::percent_decode(name);
        if name.is_empty() || name.contains('/') {
            return error(StatusCode::NOT_FOUND, "no service named in the path");
        }
        let since = since.and_then(meshmon_core::Timestamp::from_secs_f64);
        return json_reply(
            StatusCode::OK,
            &service_timeseries(store, &name, bucket_s, since),
        );
    }
    with_security_headers(error(
        StatusCode::NOT_FOUND,
        &format!("no such asset {path:?}"),
    ))
}

/// Sums the points of every series of `name` with the `filters` tags, by timestamp.
fn sum_by_t(
    store: &Store,
    name: &str,
    filters: &[String],
    since: Option<meshmon_core::Timestamp>,
    into: &mut BTreeMap<i64, f64>,
    combine: fn(f64, f64) -> f64,
) {
    for s in store.query(name, filters, since) {
        for p in s.points {
            let k = (p.t * 1000.0).round() as i64;
            into.entry(k)
                .and_modify(|v| *v = combine(*v, p.v))
                .or_insert(p.v);
        }
    }
}

fn points(m: &BTreeMap<i64, f64>, scale: f64) -> Vec<Value> {
    m.iter()
        .map(|(t, v)| json!({ "t": *t as f64 / 1000.0, "v": v * scale }))
        .collect()
}

/// A service's RED series over time and the scraped series naming it. `bucket_s` is the
/// APM stats bucket (`apm.stats_flush_interval`): a bucket's hits over it is the rate.
pub fn service_timeseries(
    store: &Store,
    service: &str,
    bucket_s: f64,
    since: Option<meshmon_core::Timestamp>,
) -> Value {
    let filter = vec![format!("service:{service}")];
    let names = store.names();
    // Operations measured at the top level of this service: those with percentiles.
    let ops: Vec<String> = names
        .iter()
        .filter_map(|(n, _)| {
            n.strip_prefix("trace.")
                .and_then(|r| r.strip_suffix(".duration.by.service.50p"))
        })
        .filter(|op| {
            !store
                .query(
                    &format!("trace.{op}.duration.by.service.50p"),
                    &filter,
                    None,
                )
                .is_empty()
        })
        .map(str::to_owned)
        .collect();
    let (mut hits, mut errors) = (BTreeMap::new(), BTreeMap::new());
    let mut pct: [BTreeMap<i64, f64>; 3] = Default::default();
    for op in &ops {
        sum_by_t(
            store,
            &format!("trace.{op}.hits"),
            &filter,
            since,
            &mut hits,
            |a, b| a + b,
        );
        sum_by_t(
            store,
            &format!("trace.{op}.errors"),
            &filter,
            since,
            &mut errors,
            |a, b| a + b,
        );
        for (i, q) in ["50p", "95p", "99p"].iter().enumerate() {
            sum_by_t(
                store,
                &format!("trace.{op}.duration.by.service.{q}"),
                &filter,
                since,
                &mut pct[i],
                f64::max,
            );
        }
    }
    let bucket = bucket_s.max(1e-3);
    let error_rate: Vec<Value> = hits
        .iter()
        .map(|(t, h)| {
            let e = errors.get(t).copied().unwrap_or(0.0);
            json!({ "t": *t as f64 / 1000.0, "v": if *h > 0.0 { e / h } else { 0.0 } })
        })
        .collect();
    // Scraped series that name this service: Istio's `destination_service_name`, a
    // `service` tag, or — for the `<app>.<namespace>` names Istio's Datadog tracer gives
    // services — the app and namespace labels. APM and log series apart.
    let mut candidates: Vec<Vec<String>> = vec![
        vec![format!("destination_service_name:{service}")],
        vec![format!("service:{service}")],
    ];
    if let Some((app, ns)) = service.split_once('.')
        && !app.is_empty()
        && !ns.is_empty()
    {
        candidates.push(vec![
            format!("destination_service_name:{app}"),
            format!("destination_service_namespace:{ns}"),
        ]);
    }
    // A `since` in the far future: count matching series without copying their points.
    let no_points = Some(meshmon_core::Timestamp(i64::MAX));
    let mut scraped = Vec::new();
    for (n, _) in &names {
        if n.starts_with("trace.") || n.starts_with("logs.") {
            continue;
        }
        let best = candidates
            .iter()
            .map(|c| (store.query(n, c, no_points).len(), c))
            .max_by_key(|(count, _)| *count);
        if let Some((count, tags)) = best
            && count > 0
        {
            scraped.push(json!({ "name": n, "series": count, "tags": tags }));
        }
    }
    json!({
        "service": service,
        "operations": ops,
        "bucket_s": bucket,
        "hits": points(&hits, 1.0),
        "errors": points(&errors, 1.0),
        "rate": points(&hits, 1.0 / bucket),
        "error_rate": error_rate,
        "p50_ms": points(&pct[0], 1e3),
        "p95_ms": points(&pct[1], 1e3),
        "p99_ms": points(&pct[2], 1e3),
        "metrics": scraped,
    })
}

/// A trace as `/api/v1/traces/{id}` returns it: the stored trace plus `logs`, the lines of
/// the correlation index matched by its trace id or its spans' `guid:x-request-id`, by
/// time, at most `store.max_logs_per_trace` (`logs_truncated` counts the rest).
pub fn trace_with_logs(store: &Store, t: &StoredTrace) -> Value {
    let low = u128::from_str_radix(&t.trace_id, 16)
        .map(|v| v as u64)
        .unwrap_or(0);
    let rids: Vec<&str> = t
        .spans
        .iter()
        .filter_map(|s| s.meta.get("guid:x-request-id").map(String::as_str))
        .collect();
    let mut logs = store.correlation.lookup(low, &rids);
    let cap = store.correlation.max_per_key();
    let truncated = logs.len().saturating_sub(cap);
    logs.truncate(cap);
    let mut v = json!(*t);
    if let Value::Object(m) = &mut v {
        m.insert(
            "logs".into(),
            Value::Array(logs.iter().map(|l| json!(**l)).collect()),
        );
        m.insert("logs_truncated".into(), json!(truncated));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StoreConfig;
    use meshmon_core::{Metric, MetricValue, Timestamp};

    #[test]
    fn assets_have_types_and_the_page_names_its_assets() {
        assert!(asset("/").unwrap().0.starts_with("text/html"));
        assert!(
            asset("/ui/app.js")
                .unwrap()
                .0
                .starts_with("text/javascript")
        );
        assert!(asset("/ui/style.css").unwrap().0.starts_with("text/css"));
        assert!(asset("/ui/nope.js").is_none());
        // Everything the page loads is one of ours: no other origin, no inline script.
        for reference in ["/ui/app.js", "/ui/style.css", "/ui/favicon.svg"] {
            assert!(INDEX_HTML.contains(reference), "{reference}");
        }
        for text in [INDEX_HTML, APP_JS, STYLE_CSS, FAVICON_SVG] {
            let other = text
                .match_indices("://")
                .filter(|(i, _)| !text[i.saturating_sub(4)..].starts_with("http://www.w3.org/"))
                .count();
            assert_eq!(other, 0, "an asset names another origin");
        }
        assert!(
            !INDEX_HTML.contains("<script>"),
            "no inline script under the CSP"
        );
        assert!(
            !INDEX_HTML.contains("style=\""),
            "no inline style under the CSP"
        );
        let r = route(&Store::new(StoreConfig::default()), "/", 10.0, None);
        assert_eq!(r.status(), StatusCode::OK);
        let csp = r.headers().get("content-security-policy").unwrap();
        assert!(csp.to_str().unwrap().starts_with("default-src 'self'"));
        assert!(serves("/api/v1/services/reviews/timeseries"));
        assert!(!serves("/api/v1/services"));
    }

    fn count(name: &str, tags: &str, t: i64, v: f64) -> Metric {
        Metric::new(
            name,
            MetricValue::Count(v),
            tags.parse().unwrap(),
            Timestamp::from_secs(t),
        )
    }

    #[test]
    fn service_timeseries_sums_resources_and_divides_by_the_bucket() {
        let mut st = Store::new(StoreConfig::default());
        st.insert_metrics([
            count(
                "trace.envoy.proxy.hits",
                "service:reviews,resource:a",
                10,
                30.0,
            ),
            count(
                "trace.envoy.proxy.hits",
                "service:reviews,resource:b",
                10,
                10.0,
            ),
            count(
                "trace.envoy.proxy.errors",
                "service:reviews,resource:b",
                10,
                4.0,
            ),
            count(
                "trace.envoy.proxy.hits",
                "service:reviews,resource:a",
                20,
                20.0,
            ),
            count(
                "trace.envoy.proxy.hits",
                "service:ratings,resource:a",
                10,
                99.0,
            ),
            Metric::new(
                "trace.envoy.proxy.duration.by.service.95p",
                MetricValue::Gauge(0.25),
                "service:reviews".parse().unwrap(),
                Timestamp::from_secs(20),
            ),
            Metric::new(
                "trace.envoy.proxy.duration.by.service.50p",
                MetricValue::Gauge(0.01),
                "service:reviews".parse().unwrap(),
                Timestamp::from_secs(20),
            ),
            Metric::new(
                "istio.mesh.request.count",
                MetricValue::Count(5.0),
                "destination_service_name:reviews,response_code:200"
                    .parse()
                    .unwrap(),
                Timestamp::from_secs(20),
            ),
        ]);
        let v = service_timeseries(&st, "reviews", 10.0, None);
        assert_eq!(
            v["rate"],
            json!([{"t": 10.0, "v": 4.0}, {"t": 20.0, "v": 2.0}])
        );
        assert_eq!(v["error_rate"][0]["v"], json!(0.1));
        assert_eq!(v["p95_ms"], json!([{"t": 20.0, "v": 250.0}]));
        assert_eq!(
            v["metrics"],
            json!([{"name": "istio.mesh.request.count", "series": 1,
                    "tags": ["destination_service_name:reviews"]}])
        );
        // Istio's tracer names services `<app>.<namespace>`: the labels still match.
        let v = service_timeseries(&st, "reviews.bookinfo", 10.0, None);
        assert_eq!(v["metrics"], json!([]));
        st.insert_metrics([Metric::new(
            "istio.mesh.request.count",
            MetricValue::Count(5.0),
            "destination_service_name:reviews,destination_service_namespace:bookinfo"
                .parse()
                .unwrap(),
            Timestamp::from_secs(20),
        )]);
        let v = service_timeseries(&st, "reviews.bookinfo", 10.0, None);
        assert_eq!(v["metrics"][0]["series"], json!(1), "{v}");
        assert_eq!(
            v["metrics"][0]["tags"][1],
            json!("destination_service_namespace:bookinfo")
        );
        let none = service_timeseries(&st, "nobody", 10.0, None);
        assert_eq!(none["rate"], json!([]));
    }
}
