//! RED statistics (rate, errors, duration) per (service, resource, operation, span kind,
//! top-level, HTTP status class), in time buckets, like the Datadog Agent's concentrator
//! (`pkg/trace/stats/concentrator.go`). Latencies go to an [HdrHistogram] with two
//! significant digits, so every reported quantile is within 1 % of the true value.
//!
//! A span counts when it is top-level, measured, or has a `span.kind` of `server`,
//! `client`, `producer` or `consumer` (the Agent's defaults with span-kind stats on).
//!
//! [HdrHistogram]: https://hdrhistogram.github.io/HdrHistogram/

use hashbrown::{Equivalent, HashMap};
use hdrhistogram::Histogram;
use meshmon_core::Timestamp;

use crate::span::{HTTP_STATUS_CODE_KEY, Span};

/// Largest latency recorded exactly (1 hour, in ns); longer spans are clamped.
pub const MAX_LATENCY_NS: u64 = 3_600_000_000_000;

/// Creates the latency histogram used everywhere in this crate: 1 ns to 1 h, 2 significant
/// digits (≤ 1 % relative error).
pub fn latency_histogram() -> Histogram<u64> {
    // Constant bounds hdrhistogram accepts (1 ≤ low, high ≥ 2·low, sigfig ≤ 5).
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 2)
        .or_else(|_| Histogram::new(2))
        .unwrap_or_else(|e| unreachable!("hdrhistogram rejected constant bounds: {e}"))
}

/// Records a duration (ns) into a latency histogram, clamped to `1..=MAX_LATENCY_NS`.
pub fn record_latency(h: &mut Histogram<u64>, ns: i64) {
    let v = (ns.max(1) as u64).min(MAX_LATENCY_NS);
    let _ = h.record(v);
}

/// The key of a stats group.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StatsKey {
    /// Service.
    pub service: String,
    /// Resource.
    pub resource: String,
    /// Operation name.
    pub name: String,
    /// `span.kind` ("" when absent).
    pub span_kind: String,
    /// True for top-level spans.
    pub top_level: bool,
    /// HTTP status class: 2 for 2xx … 5 for 5xx, 0 without a status code.
    pub status_class: u16,
}

#[derive(Hash)]
struct KeyRef<'k> {
    service: &'k str,
    resource: &'k str,
    name: &'k str,
    span_kind: &'k str,
    top_level: bool,
    status_class: u16,
}

impl Equivalent<StatsKey> for KeyRef<'_> {
    fn equivalent(&self, k: &StatsKey) -> bool {
        self.service == k.service
            && self.resource == k.resource
            && self.name == k.name
            && self.span_kind == k.span_kind
            && self.top_level == k.top_level
            && self.status_class == k.status_class
    }
}

/// Counts and latency distribution of one group.
#[derive(Debug, Clone)]
pub struct GroupStats {
    /// Spans counted.
    pub hits: u64,
    /// Error spans.
    pub errors: u64,
    /// Sum of durations, ns.
    pub duration_sum: u128,
    /// Latency of every hit, ns.
    pub latency: Histogram<u64>,
    /// Latency of error hits, ns.
    pub error_latency: Histogram<u64>,
}

impl GroupStats {
    fn new() -> Self {
        GroupStats {
            hits: 0,
            errors: 0,
            duration_sum: 0,
            latency: latency_histogram(),
            error_latency: latency_histogram(),
        }
    }

    /// Adds another group's counts.
    pub fn merge(&mut self, o: &GroupStats) {
        self.hits += o.hits;
        self.errors += o.errors;
        self.duration_sum += o.duration_sum;
        let _ = self.latency.add(&o.latency);
        let _ = self.error_latency.add(&o.error_latency);
    }

    /// Latency at quantile `q` (0–1), ns.
    pub fn quantile(&self, q: f64) -> u64 {
        self.latency.value_at_quantile(q)
    }
}

/// One flushed time bucket.
#[derive(Debug, Clone)]
pub struct StatsBucket {
    /// Bucket start, ns since the epoch.
    pub start: i64,
    /// Bucket length, ns.
    pub duration: i64,
    /// Groups, sorted by key.
    pub groups: Vec<(StatsKey, GroupStats)>,
}

/// Configuration of the [`Concentrator`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatsConfig {
    /// Bucket length, ns (10 s like the Agent).
    pub bucket_ns: i64,
    /// Most groups per bucket; further keys are counted in [`Concentrator::groups_dropped`].
    pub max_groups_per_bucket: usize,
}

impl Default for StatsConfig {
    fn default() -> Self {
        StatsConfig {
            bucket_ns: 10_000_000_000,
            max_groups_per_bucket: 10_000,
        }
    }
}

/// Aggregates spans into RED stats per time bucket (by span end time).
#[derive(Debug)]
pub struct Concentrator {
    /// The configuration.
    pub config: StatsConfig,
    buckets: std::collections::BTreeMap<i64, HashMap<StatsKey, GroupStats>>,
    /// Spans not counted because their bucket had too many groups.
    pub groups_dropped: u64,
    /// Spans counted.
    pub spans_counted: u64,
}

/// True when a span takes part in stats: top-level, measured, or of kind
/// server/client/producer/consumer.
pub fn is_stats_eligible(s: &Span<'_>) -> bool {
    s.is_top_level()
        || s.is_measured()
        || matches!(s.kind(), "server" | "client" | "producer" | "consumer")
}

fn status_class(s: &Span<'_>) -> u16 {
    match s
        .meta(HTTP_STATUS_CODE_KEY)
        .and_then(|c| c.parse::<u16>().ok())
    {
        Some(c @ 100..=599) => c / 100,
        _ => 0,
    }
}

impl Concentrator {
    /// An empty concentrator.
    pub fn new(config: StatsConfig) -> Self {
        Concentrator {
            config,
            buckets: std::collections::BTreeMap::new(),
            groups_dropped: 0,
            spans_counted: 0,
        }
    }

    /// Counts the eligible spans of a chunk.
    pub fn add_spans(&mut self, spans: &[Span<'_>]) {
        for s in spans {
            let kind = s.kind();
            if s.is_top_level()
                || s.is_measured()
                || matches!(kind, "server" | "client" | "producer" | "consumer")
            {
                self.add_span_with_kind(s, kind);
            }
        }
    }

    /// Counts one span (eligibility not checked).
    pub fn add_span(&mut self, s: &Span<'_>) {
        self.add_span_with_kind(s, s.kind());
    }

    fn add_span_with_kind(&mut self, s: &Span<'_>, kind: &str) {
        let end = s.start.saturating_add(s.duration);
        let b = end - end.rem_euclid(self.config.bucket_ns);
        let bucket = self.buckets.entry(b).or_default();
        let kr = KeyRef {
            service: &s.service,
            resource: &s.resource,
            name: &s.name,
            span_kind: kind,
            top_level: s.is_top_level(),
            status_class: status_class(s),
        };
        let g = match bucket.get_mut(&kr) {
            Some(g) => g,
            None => {
                if bucket.len() >= self.config.max_groups_per_bucket {
                    self.groups_dropped += 1;
                    return;
                }
                let key = StatsKey {
                    service: kr.service.to_string(),
                    resource: kr.resource.to_string(),
                    name: kr.name.to_string(),
                    span_kind: kr.span_kind.to_string(),
                    top_level: kr.top_level,
                    status_class: kr.status_class,
                };
                bucket.entry(key).or_insert_with(GroupStats::new)
            }
        };
        g.hits += 1;
        g.duration_sum += s.duration.max(0) as u128;
        record_latency(&mut g.latency, s.duration);
        if s.is_error() {
            g.errors += 1;
            record_latency(&mut g.error_latency, s.duration);
        }
        self.spans_counted += 1;
    }

    /// Flushes buckets that ended before `now - bucket_ns` (one bucket of slack for late
    /// spans); `force` flushes everything.
    pub fn flush(&mut self, now: Timestamp, force: bool) -> Vec<StatsBucket> {
        let cutoff = now.as_nanos() - self.config.bucket_ns;
        let keys: Vec<i64> = self
            .buckets
            .keys()
            .copied()
            .filter(|&b| force || b + self.config.bucket_ns <= cutoff)
            .collect();
        keys.into_iter()
            .filter_map(|b| self.buckets.remove(&b).map(|g| (b, g)))
            .map(|(start, groups)| {
                let mut groups: Vec<(StatsKey, GroupStats)> = groups.into_iter().collect();
                groups.sort_by(|a, b| a.0.cmp(&b.0));
                StatsBucket {
                    start,
                    duration: self.config.bucket_ns,
                    groups,
                }
            })
            .collect()
    }
}

/// Totals across flushed buckets, for a RED table.
#[derive(Debug, Default)]
pub struct RedTable {
    /// Groups merged across buckets.
    pub groups: std::collections::BTreeMap<StatsKey, GroupStats>,
}

impl RedTable {
    /// Merges a flushed bucket.
    pub fn merge(&mut self, bucket: &StatsBucket) {
        for (k, g) in &bucket.groups {
            match self.groups.get_mut(k) {
                Some(t) => t.merge(g),
                None => {
                    self.groups.insert(k.clone(), g.clone());
                }
            }
        }
    }

    /// A plain-text table: service, resource, kind, status, hits, errors, p50/p95/p99/max (ms).
    pub fn render(&self) -> String {
        let mut out = format!(
            "{:<28} {:<36} {:<8} {:>6} {:>8} {:>7} {:>9} {:>9} {:>9} {:>9}\n",
            "service",
            "resource",
            "kind",
            "status",
            "hits",
            "errors",
            "p50_ms",
            "p95_ms",
            "p99_ms",
            "max_ms"
        );
        for (k, g) in &self.groups {
            let ms = |v: u64| v as f64 / 1e6;
            let status = if k.status_class == 0 {
                "-".to_string()
            } else {
                format!("{}xx", k.status_class)
            };
            out.push_str(&format!(
                "{:<28} {:<36} {:<8} {:>6} {:>8} {:>7} {:>9.3} {:>9.3} {:>9.3} {:>9.3}\n",
                k.service,
                k.resource,
                if k.span_kind.is_empty() {
                    "-"
                } else {
                    &k.span_kind
                },
                status,
                g.hits,
                g.errors,
                ms(g.quantile(0.5)),
                ms(g.quantile(0.95)),
                ms(g.quantile(0.99)),
                ms(g.latency.max()),
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_within_one_percent() {
        let mut c = Concentrator::new(StatsConfig::default());
        let base = 1_700_000_000_000_000_000i64;
        let mut durations = Vec::new();
        for i in 1..=10_000i64 {
            let d = i * 12_345 + (i * i) % 977;
            durations.push(d);
            let mut s = Span {
                service: "web".into(),
                resource: "GET /".into(),
                name: "http".into(),
                start: base,
                duration: d,
                error: i32::from(i % 10 == 0),
                ..Span::default()
            };
            s.set_meta("span.kind", "server");
            s.set_meta("http.status_code", if i % 10 == 0 { "503" } else { "200" });
            c.add_spans(std::slice::from_ref(&s));
        }
        durations.sort_unstable();
        let buckets = c.flush(Timestamp(base), true);
        let mut t = RedTable::default();
        for b in &buckets {
            t.merge(b);
        }
        let ok = t
            .groups
            .iter()
            .find(|(k, _)| k.status_class == 2)
            .unwrap()
            .1;
        let err = t
            .groups
            .iter()
            .find(|(k, _)| k.status_class == 5)
            .unwrap()
            .1;
        assert_eq!(
            (ok.hits, ok.errors, err.hits, err.errors),
            (9000, 0, 1000, 1000)
        );
        let mut all = ok.clone();
        all.merge(err);
        for q in [0.5, 0.95, 0.99] {
            let exact =
                durations[((q * durations.len() as f64).ceil() as usize).saturating_sub(1)] as f64;
            let got = all.quantile(q) as f64;
            assert!(
                (got - exact).abs() / exact <= 0.01,
                "q{q}: {got} vs {exact}"
            );
        }
        let max = *durations.last().unwrap() as f64;
        assert!((all.latency.max() as f64 - max).abs() / max <= 0.01);
    }
}
