//! `meshmon-agent status`: reads the running agent's `/api/v1/status` and prints a human
//! summary, as the Datadog Agent's `agent status` does (`--json` prints the document).

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use serde_json::Value;

/// GETs `url` (plain `http://`) within `timeout`; returns the status and body.
pub async fn http_get(url: &str, timeout: Duration) -> anyhow::Result<(u16, Vec<u8>)> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<Bytes>>();
    let uri: hyper::Uri = url.parse().with_context(|| format!("bad URL {url:?}"))?;
    let fut = async {
        let resp = client.get(uri).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes().to_vec();
        anyhow::Ok((status, body))
    };
    tokio::time::timeout(timeout, fut)
        .await
        .with_context(|| format!("GET {url}: no answer within {timeout:?}"))?
        .with_context(|| format!("GET {url}"))
}

fn s(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(other) => other.to_string(),
    }
}

/// The human summary of a status document.
pub fn render(doc: &Value) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "meshmon-agent {} on {}",
        s(doc, "version"),
        s(doc, "hostname")
    );
    let _ = writeln!(
        o,
        "uptime: {:.0} s",
        doc["uptime_s"].as_f64().unwrap_or(0.0)
    );
    if let Some(l) = doc["listeners"].as_object() {
        for (k, v) in l {
            let _ = writeln!(o, "  {k:<8} {}", v.as_str().unwrap_or(""));
        }
    }
    let dead = doc["dead_tasks"].as_array().map(Vec::len).unwrap_or(0);
    let _ = writeln!(
        o,
        "tasks: {} ({} dead)",
        doc["tasks"].as_array().map(Vec::len).unwrap_or(0),
        dead
    );
    let c = &doc["checks"];
    let _ = writeln!(
        o,
        "\nChecks: {} ({} up, {} down)",
        c["total"], c["up"], c["down"]
    );
    for ch in c["items"].as_array().into_iter().flatten() {
        let _ = writeln!(
            o,
            "  [{}] {} {} ({}) runs={} failures={} samples={} metrics={} {:.1}ms",
            s(ch, "status"),
            s(ch, "check"),
            s(ch, "url"),
            s(ch, "namespace"),
            s(ch, "runs"),
            s(ch, "failures"),
            s(ch, "samples"),
            s(ch, "metrics"),
            ch["duration_ms"].as_f64().unwrap_or(0.0)
        );
        if let Some(e) = ch["last_error"].as_str() {
            let _ = writeln!(o, "      last error: {e}");
        }
    }
    let comps = &doc["components"];
    if let Some(t) = comps.get("traces") {
        let _ = writeln!(
            o,
            "\nAPM: spans received={} kept={} sampled out={} dropped={}; payloads={} invalid={} 429={} 413={}; traces stored={}",
            s(t, "spans_received"),
            s(t, "spans_kept"),
            s(t, "spans_sampled_out"),
            s(t, "spans_dropped"),
            s(t, "payloads"),
            s(t, "payloads_invalid"),
            s(t, "payloads_queue_full"),
            s(t, "payloads_too_large"),
            s(t, "traces_stored")
        );
    }
    if let Some(d) = comps
        .get("dogstatsd")
        .filter(|d| d.get("packets").is_some())
    {
        let _ = writeln!(
            o,
            "\nDogStatsD: packets={} processed={} queue={}/{} queue dropped={} udp drops={} (SO_RCVBUF {}); metrics={} parse errors={}",
            s(d, "packets"),
            s(d, "processed_packets"),
            s(d, "queue_packets"),
            s(d, "queue_capacity_packets"),
            s(d, "queue_dropped_packets"),
            s(d, "udp_drops"),
            s(d, "so_rcvbuf_bytes"),
            s(d, "metrics"),
            s(d, "parse_errors")
        );
    }
    if let Some(l) = comps.get("logs") {
        let c = &l["counters"];
        let _ = writeln!(
            o,
            "\nLogs: lines={} bytes={} records={} excluded={} rotations={} truncations={}",
            s(c, "lines"),
            s(c, "bytes"),
            s(c, "records"),
            s(c, "excluded_by_rules"),
            s(c, "files_rotated"),
            s(c, "files_truncated")
        );
        for f in l["files"].as_array().into_iter().flatten() {
            let _ = writeln!(
                o,
                "  {} service={} source={} lines={} offset={}",
                s(f, "path"),
                s(f, "service"),
                s(f, "source"),
                s(f, "lines"),
                s(f, "committed")
            );
        }
    }
    for (name, e) in comps
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.starts_with("exports."))
    {
        let r = &e["retry"];
        let _ = writeln!(
            o,
            "\nExport {}: {} queue={}/{} sent={} failed={} dropped={} skipped={} offered={} retries={} (retry policy: {} retries, back-off {}..{})",
            &name["exports.".len()..],
            s(e, "url"),
            s(e, "queued_metrics"),
            s(e, "max_queued_metrics"),
            s(e, "sent_metrics"),
            s(e, "failed_metrics"),
            s(e, "dropped_metrics"),
            s(e, "skipped_metrics"),
            s(e, "offered_metrics"),
            s(e, "retries"),
            s(r, "max_retries"),
            s(r, "min_backoff"),
            s(r, "max_backoff")
        );
        if let Some(err) = e["last_error"].as_str() {
            let _ = writeln!(o, "  last error: {err}");
        }
    }
    if let Some(m) = comps.get("monitors") {
        let st = &m["states"];
        let w = &m["watchdog"];
        let _ = writeln!(
            o,
            "\nMonitors: {} configured (ALERT {}, WARN {}, NO DATA {}); Watchdog: {} services (ALERT {}); transitions={}",
            s(m, "configured"),
            s(st, "ALERT"),
            s(st, "WARN"),
            s(st, "NO DATA"),
            s(w, "services"),
            s(&w["states"], "ALERT"),
            s(m, "transitions")
        );
        for n in m["notifiers"].as_array().into_iter().flatten() {
            let _ = writeln!(
                o,
                "  {} {} sent={} failed={} dropped={} retries={}",
                s(n, "name"),
                s(n, "url"),
                s(n, "sent"),
                s(n, "failed"),
                s(n, "dropped"),
                s(n, "retries")
            );
        }
    }
    let st = &doc["store"];
    let _ = writeln!(
        o,
        "\nStore: series={} points={} traces={} patterns={}; limit hits {}",
        s(st, "series"),
        s(st, "points"),
        s(st, "traces"),
        s(st, "patterns"),
        st["limits"]
    );
    for n in doc["notices"].as_array().into_iter().flatten() {
        let _ = writeln!(o, "notice: {}", n.as_str().unwrap_or(""));
    }
    o
}
