//! What the agent keeps: recent series, traces, log patterns, check health and its own
//! telemetry, each with an explicit bound that is counted when hit ([`Store`]); and state
//! files in the data dir, written atomically and set aside when corrupt ([`state`]).
//!
//! The store is the one structure shared between components. Writers take it only to
//! insert what they already decoded (never across a decode or an `.await`); the API takes
//! it to render an answer.

pub mod correlate;
pub mod state;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, RwLock};

use meshmon_core::{Metric, MetricValue, Tags, Timestamp};
use serde::Serialize;

use crate::config::StoreConfig;

/// The shared handle.
pub type SharedStore = Arc<RwLock<Store>>;

/// One point of a series.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Point {
    /// Seconds since the epoch (float, as Datadog's API returns them).
    pub t: f64,
    /// The value.
    pub v: f64,
}

/// One series: its type and its most recent points.
#[derive(Clone, Debug)]
pub struct Series {
    /// Datadog type name: `gauge`, `count`, `rate`, `histogram_bucket`, `distribution`.
    pub kind: &'static str,
    /// Points, oldest first.
    pub points: VecDeque<(Timestamp, f64)>,
}

/// A series as the API returns it.
#[derive(Clone, Debug, Serialize)]
pub struct SeriesView {
    /// Metric name.
    pub name: String,
    /// Tags, sorted.
    pub tags: Vec<String>,
    /// Datadog type.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Points, oldest first.
    pub points: Vec<Point>,
}

/// One kept span, owned (what the trace store keeps).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct StoredSpan {
    /// 128-bit trace id as 32 hex digits.
    pub trace_id: String,
    /// Span id.
    pub span_id: u64,
    /// Parent span id (0 for a root).
    pub parent_id: u64,
    /// Service.
    pub service: String,
    /// Operation name.
    pub name: String,
    /// Resource.
    pub resource: String,
    /// Start, ns since the epoch.
    pub start: i64,
    /// Duration in ns.
    pub duration: i64,
    /// Whether the span is an error.
    pub error: bool,
    /// String tags.
    pub meta: BTreeMap<String, String>,
}

/// One kept trace.
#[derive(Clone, Debug, Serialize)]
pub struct StoredTrace {
    /// 128-bit trace id as 32 hex digits.
    pub trace_id: String,
    /// Service of the root span (or of the first span).
    pub service: String,
    /// Resource of the root span.
    pub resource: String,
    /// Start of the earliest span, ns since the epoch.
    pub start: i64,
    /// End of the latest span minus start, ns.
    pub duration: i64,
    /// Whether any span is an error.
    pub error: bool,
    /// Spans (at most `store.max_spans_per_trace`).
    pub spans: Vec<StoredSpan>,
    /// Spans dropped by the per-trace bound.
    pub spans_dropped: usize,
}

/// A log pattern as the API returns it.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq)]
pub struct PatternView {
    /// Stable id within its source.
    pub id: u64,
    /// `service` of its records.
    pub service: String,
    /// `source` of its records.
    pub source: String,
    /// Template with `<*>` wildcards.
    pub template: String,
    /// The regex that matches every member.
    pub regex: String,
    /// Lines grouped into it.
    pub count: u64,
    /// Lines per status (`info`, `error`, …).
    pub statuses: BTreeMap<String, u64>,
    /// A few member lines.
    pub samples: Vec<String>,
}

/// Health of one scrape target.
#[derive(Clone, Debug, Serialize, Default)]
pub struct CheckHealth {
    /// The config id (autodiscovery id or `static:<check>:<n>`).
    pub id: String,
    /// Check name.
    pub check: String,
    /// Endpoint URL.
    pub url: String,
    /// Mapping namespace.
    pub namespace: String,
    /// Where the config came from (`file`, `manifests`).
    pub provider: String,
    /// `up`, `down` or `pending`.
    pub status: &'static str,
    /// Last run, seconds since the epoch.
    pub last_run: Option<f64>,
    /// Last error text.
    pub last_error: Option<String>,
    /// Last scrape's duration in ms.
    pub duration_ms: f64,
    /// Samples parsed in the last scrape.
    pub samples: usize,
    /// Metrics submitted by the last scrape.
    pub metrics: usize,
    /// Bytes on the wire in the last scrape.
    pub bytes: usize,
    /// Runs so far.
    pub runs: u64,
    /// Failed runs so far.
    pub failures: u64,
    /// Instance keys the check does not know (reported once per config).
    pub unknown_keys: Vec<String>,
    /// Collection interval in seconds.
    pub interval_s: f64,
}

/// RED stats of one service, as `/api/v1/services` returns them.
#[derive(Clone, Debug, Serialize, Default, PartialEq)]
pub struct ServiceRed {
    /// Service name.
    pub service: String,
    /// `env`.
    pub env: String,
    /// Requests (top-level spans) in the last flush window and since start.
    pub hits: u64,
    /// Errors among them.
    pub errors: u64,
    /// Requests per second over the last window.
    pub rate: f64,
    /// Error share over the last window.
    pub error_rate: f64,
    /// Latency percentiles in ms over the last window.
    pub p50_ms: f64,
    /// p95.
    pub p95_ms: f64,
    /// p99.
    pub p99_ms: f64,
    /// Hits since start.
    pub total_hits: u64,
    /// Errors since start.
    pub total_errors: u64,
}

/// One edge of the service map.
#[derive(Clone, Debug, Serialize, Default, PartialEq)]
pub struct Edge {
    /// Calling service.
    pub from: String,
    /// Called service.
    pub to: String,
    /// Calls.
    pub calls: u64,
    /// Calls that failed.
    pub errors: u64,
    /// Mean latency in ms.
    pub mean_ms: f64,
}

/// How often each bound was hit.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct LimitHits {
    /// New series refused (`store.max_series`).
    pub series_dropped: u64,
    /// Points evicted by `store.max_points_per_series` (the normal ageing of a series).
    pub points_evicted: u64,
    /// Traces evicted by `store.max_traces`.
    pub traces_evicted: u64,
    /// Spans cut by `store.max_spans_per_trace`.
    pub spans_cut: u64,
    /// Metrics without a numeric value (distributions are stored as their mean).
    pub non_numeric: u64,
}

/// Sizes and bound hits.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct StoreStats {
    /// Series held.
    pub series: usize,
    /// Points held.
    pub points: usize,
    /// Traces held.
    pub traces: usize,
    /// Patterns held.
    pub patterns: usize,
    /// Bound hits.
    pub limits: LimitHits,
}

/// The agent's own telemetry: Prometheus-style samples set by components.
#[derive(Clone, Debug, Default)]
pub struct Telemetry {
    samples: BTreeMap<String, BTreeMap<String, f64>>,
    help: BTreeMap<String, (&'static str, &'static str)>,
}

impl Telemetry {
    /// Sets `name{labels} = value`; `kind` is `counter` or `gauge`.
    pub fn set(
        &mut self,
        name: &str,
        kind: &'static str,
        help: &'static str,
        labels: &[(&str, &str)],
        value: f64,
    ) {
        let mut l = String::new();
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                l.push(',');
            }
            l.push_str(k);
            l.push_str("=\"");
            for c in v.chars() {
                match c {
                    '\\' => l.push_str("\\\\"),
                    '"' => l.push_str("\\\""),
                    '\n' => l.push_str("\\n"),
                    c => l.push(c),
                }
            }
            l.push('"');
        }
        if !self.help.contains_key(name) {
            self.help.insert(name.to_owned(), (kind, help));
        }
        self.samples
            .entry(name.to_owned())
            .or_default()
            .insert(l, value);
    }

    /// Removes every sample of `name` whose label text contains `needle`.
    pub fn remove_matching(&mut self, name: &str, needle: &str) {
        if let Some(m) = self.samples.get_mut(name) {
            m.retain(|l, _| !l.contains(needle));
        }
    }

    /// One sample's value (tests and `status`).
    pub fn get(&self, name: &str) -> f64 {
        self.samples
            .get(name)
            .map(|m| m.values().sum())
            .unwrap_or(0.0)
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, samples) in &self.samples {
            if let Some((kind, help)) = self.help.get(name) {
                out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            }
            for (labels, v) in samples {
                if labels.is_empty() {
                    out.push_str(&format!("{name} {}\n", fmt_value(*v)));
                } else {
                    out.push_str(&format!("{name}{{{labels}}} {}\n", fmt_value(*v)));
                }
            }
        }
        out
    }
}

fn fmt_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// The store.
#[derive(Debug)]
pub struct Store {
    cfg: StoreConfig,
    series: HashMap<Arc<str>, HashMap<Tags, Series>>,
    series_count: usize,
    points: usize,
    traces: VecDeque<Arc<StoredTrace>>,
    trace_index: HashMap<String, Arc<StoredTrace>>,
    patterns: BTreeMap<String, Vec<PatternView>>,
    checks: BTreeMap<String, CheckHealth>,
    services: Vec<ServiceRed>,
    edges: Vec<Edge>,
    limits: LimitHits,
    /// The agent's own telemetry (`/metrics`).
    pub telemetry: Telemetry,
    /// Free-form component state shown by `status` (`logs`, `traces`, …).
    pub components: BTreeMap<String, serde_json::Value>,
    /// Log lines by trace id and Envoy request id ([`correlate`]).
    pub correlation: correlate::LogIndex,
    /// What `/api/v1/monitors` and `/api/v1/watchdog` serve (set by `crate::monitor`).
    pub monitors: crate::monitor::Board,
    /// The exports' fan-out: producers offer each batch here beside
    /// [`Store::insert_metrics`] (a no-op when no export is on).
    pub exports: crate::export::Exports,
}

impl Store {
    /// An empty store with these bounds.
    pub fn new(cfg: StoreConfig) -> Self {
        let correlation = correlate::LogIndex::new(cfg.max_correlated_logs, cfg.max_logs_per_trace)
            .with_max_line_bytes(cfg.max_correlated_line_bytes);
        Store {
            cfg,
            series: HashMap::new(),
            series_count: 0,
            points: 0,
            traces: VecDeque::new(),
            trace_index: HashMap::new(),
            patterns: BTreeMap::new(),
            checks: BTreeMap::new(),
            services: Vec::new(),
            edges: Vec::new(),
            limits: LimitHits::default(),
            telemetry: Telemetry::default(),
            components: BTreeMap::new(),
            correlation,
            monitors: crate::monitor::Board::default(),
            exports: crate::export::Exports::default(),
        }
    }

    /// A shared, empty store.
    pub fn shared(cfg: StoreConfig) -> SharedStore {
        Arc::new(RwLock::new(Store::new(cfg)))
    }

    /// Adds metrics as points of their series. Counts and buckets are per-interval values
    /// (deltas); gauges and rates their value; a distribution its mean.
    pub fn insert_metrics<I: IntoIterator<Item = Metric>>(&mut self, batch: I) {
        for m in batch {
            let v = match &m.value {
                MetricValue::HistogramBucket { count, .. } => *count as f64,
                MetricValue::Distribution(vs) if !vs.is_empty() => {
                    vs.iter().sum::<f64>() / vs.len() as f64
                }
                other => match other.as_f64() {
                    Some(v) => v,
                    None => {
                        self.limits.non_numeric += 1;
                        continue;
                    }
                },
            };
            self.insert_point(m.name.clone(), m.tags, m.value.type_name(), m.timestamp, v);
        }
    }

    /// Adds one point.
    pub fn insert_point(
        &mut self,
        name: Arc<str>,
        tags: Tags,
        kind: &'static str,
        t: Timestamp,
        v: f64,
    ) {
        let cap = self.cfg.max_points_per_series;
        let at_limit = self.series_count >= self.cfg.max_series;
        let by_tags = self.series.entry(name).or_default();
        let series = match by_tags.get_mut(&tags) {
            Some(s) => s,
            None => {
                if at_limit {
                    self.limits.series_dropped += 1;
                    return;
                }
                self.series_count += 1;
                by_tags.entry(tags).or_insert_with(|| Series {
                    kind,
                    points: VecDeque::new(),
                })
            }
        };
        series.kind = kind;
        // Keep points ordered by time: a late point replaces or slots in.
        match series.points.back() {
            Some(&(last, _)) if t < last => {
                let i = series.points.partition_point(|&(pt, _)| pt < t);
                if series.points.get(i).is_some_and(|&(pt, _)| pt == t) {
                    series.points[i].1 = v;
                } else {
                    series.points.insert(i, (t, v));
                    self.points += 1;
                }
            }
            Some(&(last, _)) if t == last => {
                if let Some(p) = series.points.back_mut() {
                    p.1 = v;
                }
            }
            _ => {
                series.points.push_back((t, v));
                self.points += 1;
            }
        }
        while series.points.len() > cap {
            series.points.pop_front();
            self.points -= 1;
            self.limits.points_evicted += 1;
        }
    }

    /// Series named `name` whose tags include every `filters` tag (`key:value`, or
    /// `key:*` for "has the key").
    pub fn query(
        &self,
        name: &str,
        filters: &[String],
        since: Option<Timestamp>,
    ) -> Vec<SeriesView> {
        let Some(by_tags) = self.series.get(name) else {
            return Vec::new();
        };
        let mut out: Vec<SeriesView> = by_tags
            .iter()
            .filter(|(tags, _)| filters.iter().all(|f| tag_matches(tags, f)))
            .map(|(tags, s)| SeriesView {
                name: name.to_owned(),
                tags: tags.iter().map(|t| t.as_str().to_owned()).collect(),
                kind: s.kind,
                points: s
                    .points
                    .iter()
                    .filter(|(t, _)| since.is_none_or(|s| *t >= s))
                    .map(|(t, v)| Point {
                        t: t.as_secs_f64(),
                        v: *v,
                    })
                    .collect(),
            })
            .collect();
        out.sort_by(|a, b| a.tags.cmp(&b.tags));
        out
    }

    /// Every metric name held, sorted, with its series count.
    pub fn names(&self) -> Vec<(String, usize)> {
        let mut v: Vec<(String, usize)> = self
            .series
            .iter()
            .filter(|(_, m)| !m.is_empty())
            .map(|(n, m)| (n.to_string(), m.len()))
            .collect();
        v.sort();
        v
    }

    /// Keeps one trace (evicting the oldest beyond `store.max_traces`); a trace id seen
    /// again replaces the earlier entry with the union of spans.
    pub fn insert_trace(&mut self, mut trace: StoredTrace) {
        if trace.spans.len() > self.cfg.max_spans_per_trace {
            let cut = trace.spans.len() - self.cfg.max_spans_per_trace;
            trace.spans.truncate(self.cfg.max_spans_per_trace);
            trace.spans_dropped += cut;
            self.limits.spans_cut += cut as u64;
        }
        if let Some(old) = self.trace_index.remove(&trace.trace_id) {
            self.traces.retain(|t| !Arc::ptr_eq(t, &old));
            let mut spans = old.spans.clone();
            let room = self.cfg.max_spans_per_trace.saturating_sub(spans.len());
            let extra = trace.spans.len().saturating_sub(room);
            spans.extend(trace.spans.into_iter().take(room));
            self.limits.spans_cut += extra as u64;
            trace = summarize(
                trace.trace_id,
                spans,
                old.spans_dropped + trace.spans_dropped + extra,
            );
        }
        let t = Arc::new(trace);
        self.trace_index.insert(t.trace_id.clone(), t.clone());
        self.traces.push_back(t);
        while self.traces.len() > self.cfg.max_traces {
            if let Some(old) = self.traces.pop_front() {
                self.trace_index.remove(&old.trace_id);
                self.limits.traces_evicted += 1;
            }
        }
    }

    /// Most recent traces (newest first) touching `service` (any span), at most `limit`.
    pub fn traces(&self, service: Option<&str>, limit: usize) -> Vec<Arc<StoredTrace>> {
        self.traces
            .iter()
            .rev()
            .filter(|t| service.is_none_or(|s| t.spans.iter().any(|sp| sp.service == s)))
            .take(limit)
            .cloned()
            .collect()
    }

    /// One trace by its 32-hex-digit id (or the low 64 bits in decimal or hex).
    pub fn trace(&self, id: &str) -> Option<Arc<StoredTrace>> {
        if let Some(t) = self.trace_index.get(id) {
            return Some(t.clone());
        }
        let low = id
            .parse::<u64>()
            .ok()
            .map(|v| format!("{v:016x}"))
            .or_else(|| (id.len() <= 16).then(|| format!("{:0>16}", id.to_ascii_lowercase())))?;
        self.traces
            .iter()
            .rev()
            .find(|t| t.trace_id.ends_with(&low))
            .cloned()
    }

    /// Replaces the patterns of one miner (`service/source`).
    pub fn set_patterns(&mut self, key: &str, patterns: Vec<PatternView>) {
        self.patterns.insert(key.to_owned(), patterns);
    }

    /// Patterns of every miner, optionally only of `service`, by descending count.
    pub fn patterns(&self, service: Option<&str>) -> Vec<PatternView> {
        let mut v: Vec<PatternView> = self
            .patterns
            .values()
            .flatten()
            .filter(|p| service.is_none_or(|s| p.service == s))
            .cloned()
            .collect();
        v.sort_by(|a, b| b.count.cmp(&a.count).then(a.template.cmp(&b.template)));
        v
    }

    /// Records one check's health.
    pub fn set_check(&mut self, health: CheckHealth) {
        self.checks.insert(health.id.clone(), health);
    }

    /// Forgets a check (unscheduled).
    pub fn remove_check(&mut self, id: &str) {
        self.checks.remove(id);
    }

    /// Every check's health, by id.
    pub fn checks(&self) -> Vec<CheckHealth> {
        self.checks.values().cloned().collect()
    }

    /// Replaces the RED table.
    pub fn set_services(&mut self, services: Vec<ServiceRed>) {
        self.services = services;
    }

    /// The RED table.
    pub fn services(&self) -> &[ServiceRed] {
        &self.services
    }

    /// Replaces the service map's edges.
    pub fn set_edges(&mut self, edges: Vec<Edge>) {
        self.edges = edges;
    }

    /// The service map's edges.
    pub fn edges(&self) -> &[Edge] {
        &self.edges
    }

    /// Sizes and bound hits.
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            series: self.series_count,
            points: self.points,
            traces: self.traces.len(),
            patterns: self.patterns.values().map(Vec::len).sum(),
            limits: self.limits,
        }
    }

    /// Publishes the store's sizes into its telemetry.
    pub fn publish_stats(&mut self) {
        let s = self.stats();
        self.correlation.publish(&mut self.telemetry);
        let t = &mut self.telemetry;
        t.set(
            "meshmon_store_series",
            "gauge",
            "Series held by the store.",
            &[],
            s.series as f64,
        );
        t.set(
            "meshmon_store_points",
            "gauge",
            "Points held by the store.",
            &[],
            s.points as f64,
        );
        t.set(
            "meshmon_store_traces",
            "gauge",
            "Traces held by the store.",
            &[],
            s.traces as f64,
        );
        t.set(
            "meshmon_store_patterns",
            "gauge",
            "Log patterns held by the store.",
            &[],
            s.patterns as f64,
        );
        for (limit, v) in [
            ("max_series", s.limits.series_dropped),
            ("max_points_per_series", s.limits.points_evicted),
            ("max_traces", s.limits.traces_evicted),
            ("max_spans_per_trace", s.limits.spans_cut),
        ] {
            t.set(
                "meshmon_store_limit_hits_total",
                "counter",
                "Items dropped or evicted because a store bound was reached.",
                &[("limit", limit)],
                v as f64,
            );
        }
    }
}

/// Builds a trace summary from its spans.
pub fn summarize(trace_id: String, spans: Vec<StoredSpan>, spans_dropped: usize) -> StoredTrace {
    let start = spans.iter().map(|s| s.start).min().unwrap_or(0);
    let end = spans
        .iter()
        .map(|s| s.start.saturating_add(s.duration))
        .max()
        .unwrap_or(start);
    let ids: std::collections::HashSet<u64> = spans.iter().map(|s| s.span_id).collect();
    let root = spans
        .iter()
        .find(|s| s.parent_id == 0 || !ids.contains(&s.parent_id))
        .or(spans.first());
    StoredTrace {
        trace_id,
        service: root.map(|r| r.service.clone()).unwrap_or_default(),
        resource: root.map(|r| r.resource.clone()).unwrap_or_default(),
        start,
        duration: end.saturating_sub(start),
        error: spans.iter().any(|s| s.error),
        spans,
        spans_dropped,
    }
}

fn tag_matches(tags: &Tags, filter: &str) -> bool {
    match filter.split_once(':') {
        Some((k, "*")) => tags.get(k).is_some(),
        Some((k, v)) => tags.get_all(k).any(|x| x == v),
        None => tags.iter().any(|t| t.as_str() == filter),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> StoreConfig {
        StoreConfig {
            max_series: 2,
            max_points_per_series: 3,
            max_traces: 2,
            max_spans_per_trace: 2,
            ..StoreConfig::default()
        }
    }

    fn gauge(name: &str, tags: &str, s: i64, v: f64) -> Metric {
        Metric::new(
            name,
            MetricValue::Gauge(v),
            tags.parse().unwrap(),
            Timestamp::from_secs(s),
        )
    }

    #[test]
    fn series_bounds_are_counted() {
        let mut st = Store::new(cfg());
        st.insert_metrics((0..5).map(|i| gauge("a", "k:1", i, i as f64)));
        st.insert_metrics([gauge("a", "k:2", 0, 1.0), gauge("b", "k:1", 0, 1.0)]);
        let s = st.stats();
        assert_eq!(s.series, 2);
        assert_eq!(s.limits.series_dropped, 1);
        assert_eq!(s.limits.points_evicted, 2);
        let q = st.query("a", &["k:1".into()], None);
        assert_eq!(q.len(), 1);
        let vals: Vec<f64> = q[0].points.iter().map(|p| p.v).collect();
        assert_eq!(vals, [2.0, 3.0, 4.0]);
        assert_eq!(st.query("a", &["k:*".into()], None).len(), 2);
        assert!(st.query("a", &["k:9".into()], None).is_empty());
    }

    #[test]
    fn late_points_slot_in_order() {
        let mut st = Store::new(cfg());
        st.insert_metrics([
            gauge("a", "", 10, 1.0),
            gauge("a", "", 30, 3.0),
            gauge("a", "", 20, 2.0),
        ]);
        st.insert_metrics([gauge("a", "", 20, 5.0)]);
        let ts: Vec<(f64, f64)> = st.query("a", &[], None)[0]
            .points
            .iter()
            .map(|p| (p.t, p.v))
            .collect();
        assert_eq!(ts, [(10.0, 1.0), (20.0, 5.0), (30.0, 3.0)]);
        assert_eq!(st.stats().points, 3);
    }

    fn span(tid: &str, id: u64, parent: u64, svc: &str) -> StoredSpan {
        StoredSpan {
            trace_id: tid.into(),
            span_id: id,
            parent_id: parent,
            service: svc.into(),
            name: "http.request".into(),
            resource: "GET /".into(),
            start: id as i64 * 10,
            duration: 5,
            error: false,
            meta: BTreeMap::new(),
        }
    }

    #[test]
    fn traces_are_bounded_merged_and_found() {
        let mut st = Store::new(cfg());
        let id = |n: u64| format!("{:032x}", n);
        st.insert_trace(summarize(id(1), vec![span(&id(1), 1, 0, "a")], 0));
        st.insert_trace(summarize(
            id(1),
            vec![span(&id(1), 2, 1, "b"), span(&id(1), 3, 1, "c")],
            0,
        ));
        let t = st.trace(&id(1)).unwrap();
        assert_eq!(t.spans.len(), 2);
        assert_eq!(t.spans_dropped, 1);
        assert_eq!(t.service, "a");
        assert_eq!(st.trace("1").unwrap().trace_id, id(1));
        st.insert_trace(summarize(id(2), vec![span(&id(2), 1, 0, "a")], 0));
        st.insert_trace(summarize(id(3), vec![span(&id(3), 1, 0, "b")], 0));
        assert!(st.trace(&id(1)).is_none());
        assert_eq!(st.stats().limits.traces_evicted, 1);
        assert_eq!(st.traces(Some("b"), 10).len(), 1);
        assert_eq!(st.traces(None, 10).len(), 2);
    }

    #[test]
    fn telemetry_renders_prometheus_text() {
        let mut t = Telemetry::default();
        t.set("x_total", "counter", "X.", &[("a", "q\"uote")], 3.0);
        t.set("x_total", "counter", "X.", &[("a", "b")], 1.5);
        let text = t.render();
        assert!(text.contains("# TYPE x_total counter\n"), "{text}");
        assert!(text.contains("x_total{a=\"q\\\"uote\"} 3\n"), "{text}");
        assert!(text.contains("x_total{a=\"b\"} 1.5\n"), "{text}");
        assert_eq!(t.get("x_total"), 4.5);
    }
}
