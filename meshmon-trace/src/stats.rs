//! RED statistics (rate, errors, duration) per (env, service, resource, operation, span
//! kind, top-level, HTTP status class), in time buckets, like the Datadog Agent's
//! concentrator (`pkg/trace/stats/concentrator.go`). Latencies go to a
//! [`LatencyHistogram`] (an [HdrHistogram] with two significant digits), so every
//! reported quantile is within 1 % of the true value.
//!
//! A span counts when it is top-level, measured, or has a `span.kind` of `server`,
//! `client`, `producer` or `consumer` (the Agent's defaults with span-kind stats on).
//!
//! [`apm_metrics`] turns a flushed bucket into Datadog's APM trace metrics
//! (`trace.<span name>.hits`, `.errors`, `.duration`, tagged `env`, `service`,
//! `resource`; see [trace metrics]).
//!
//! [HdrHistogram]: https://hdrhistogram.github.io/HdrHistogram/
//! [trace metrics]: https://docs.datadoghq.com/tracing/metrics/metrics_namespace/

use std::time::Duration;

use hashbrown::{Equivalent, HashMap};
use meshmon_core::{Metric, MetricValue, Tag, Tags, Timestamp};

use crate::span::{HTTP_STATUS_CODE_KEY, Span};

/// Largest latency recorded exactly (1 hour, in ns); longer spans are clamped.
pub const MAX_LATENCY_NS: u64 = 3_600_000_000_000;

/// Why a serialised [`LatencyHistogram`] could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HistogramError {
    /// The bytes are not an HdrHistogram V2 (deflate) encoding.
    #[error("invalid latency histogram encoding: {0}")]
    Decode(String),
    /// Its bounds differ from ours (1 ns to 1 h, 2 significant digits).
    #[error("latency histogram with other bounds: {0}")]
    Bounds(String),
}

/// A latency distribution, 1 ns to 1 h with two significant digits (≤ 1 % relative
/// error), counting every recorded value; longer values are clamped to 1 h and shorter to
/// 1 ns. Our own type, so this crate's API does not follow `hdrhistogram`'s releases.
#[derive(Clone)]
pub struct LatencyHistogram {
    h: hdrhistogram::Histogram<u64>,
}

impl std::fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatencyHistogram")
            .field("count", &self.count())
            .field("p50", &self.quantile(0.5))
            .field("max", &self.max())
            .finish()
    }
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl PartialEq for LatencyHistogram {
    fn eq(&self, other: &Self) -> bool {
        self.h == other.h
    }
}

impl LatencyHistogram {
    /// An empty histogram.
    pub fn new() -> Self {
        // Constant bounds hdrhistogram accepts (1 ≤ low, high ≥ 2·low, sigfig ≤ 5).
        let h = hdrhistogram::Histogram::new_with_bounds(1, MAX_LATENCY_NS, 2)
            .or_else(|_| hdrhistogram::Histogram::new(2))
            .unwrap_or_else(|e| unreachable!("hdrhistogram rejected constant bounds: {e}"));
        LatencyHistogram { h }
    }

    /// Records a duration in nanoseconds (clamped to `1..=MAX_LATENCY_NS`; negative
    /// values count as 1 ns).
    #[inline]
    pub fn record_nanos(&mut self, ns: i64) {
        let v = (ns.max(1) as u64).min(MAX_LATENCY_NS);
        // In range by construction: recording cannot fail.
        let _ = self.h.record(v);
    }

    /// Records a duration (clamped like [`LatencyHistogram::record_nanos`]).
    pub fn record(&mut self, d: Duration) {
        self.record_nanos(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.h.len()
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.h.is_empty()
    }

    /// The value at quantile `q` (0–1, clamped); zero when empty.
    pub fn quantile(&self, q: f64) -> Duration {
        let q = if q.is_nan() { 0.0 } else { q.clamp(0.0, 1.0) };
        Duration::from_nanos(self.h.value_at_quantile(q))
    }

    /// Largest value recorded (within the precision); zero when empty.
    pub fn max(&self) -> Duration {
        Duration::from_nanos(self.h.max())
    }

    /// Smallest value recorded (within the precision); zero when empty.
    pub fn min(&self) -> Duration {
        Duration::from_nanos(if self.h.is_empty() { 0 } else { self.h.min() })
    }

    /// Mean of the recorded values; zero when empty.
    pub fn mean(&self) -> Duration {
        Duration::from_nanos(self.h.mean() as u64)
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.h.add(&other.h);
    }

    /// The HdrHistogram V2 + deflate encoding (the format other HdrHistogram
    /// implementations read), for persisting or shipping the distribution.
    pub fn to_bytes(&self) -> Vec<u8> {
        use hdrhistogram::serialization::Serializer;
        let mut out = Vec::new();
        // Writing to a Vec cannot fail; an error would leave `out` empty.
        let _ =
            hdrhistogram::serialization::V2DeflateSerializer::new().serialize(&self.h, &mut out);
        out
    }

    /// Reads [`LatencyHistogram::to_bytes`] output (V2 or V2 + deflate).
    pub fn from_bytes(mut bytes: &[u8]) -> Result<Self, HistogramError> {
        let h: hdrhistogram::Histogram<u64> = hdrhistogram::serialization::Deserializer::new()
            .deserialize(&mut bytes)
            .map_err(|e| HistogramError::Decode(format!("{e:?}")))?;
        let mut out = LatencyHistogram::new();
        out.h
            .add(&h)
            .map_err(|e| HistogramError::Bounds(format!("{e:?}")))?;
        Ok(out)
    }
}

/// The key of a stats group.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StatsKey {
    /// `env` of the trace.
    pub env: String,
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
    env: &'k str,
    service: &'k str,
    resource: &'k str,
    name: &'k str,
    span_kind: &'k str,
    top_level: bool,
    status_class: u16,
}

impl Equivalent<StatsKey> for KeyRef<'_> {
    fn equivalent(&self, k: &StatsKey) -> bool {
        self.env == k.env
            && self.service == k.service
            && self.resource == k.resource
            && self.name == k.name
            && self.span_kind == k.span_kind
            && self.top_level == k.top_level
            && self.status_class == k.status_class
    }
}

/// Counts and latency distribution of one group.
#[derive(Debug, Clone, Default)]
pub struct GroupStats {
    /// Spans counted.
    pub hits: u64,
    /// Error spans.
    pub errors: u64,
    /// Sum of durations.
    pub duration_sum: Duration,
    /// Latency of every hit.
    pub latency: LatencyHistogram,
    /// Latency of error hits.
    pub error_latency: LatencyHistogram,
}

impl GroupStats {
    /// Adds another group's counts.
    pub fn merge(&mut self, o: &GroupStats) {
        self.hits += o.hits;
        self.errors += o.errors;
        self.duration_sum = self.duration_sum.saturating_add(o.duration_sum);
        self.latency.merge(&o.latency);
        self.error_latency.merge(&o.error_latency);
    }

    /// Latency at quantile `q` (0–1).
    pub fn quantile(&self, q: f64) -> Duration {
        self.latency.quantile(q)
    }
}

/// One flushed time bucket.
#[derive(Debug, Clone)]
pub struct StatsBucket {
    /// Bucket start.
    pub start: Timestamp,
    /// Bucket length.
    pub duration: Duration,
    /// Groups, sorted by key.
    pub groups: Vec<(StatsKey, GroupStats)>,
}

/// Why a [`StatsConfig`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StatsConfigError {
    /// The bucket length is below one millisecond or above one hour.
    #[error("stats bucket length {0:?} is outside 1 ms ..= 1 h")]
    BucketDuration(Duration),
    /// `max_groups_per_bucket` is zero.
    #[error("max_groups_per_bucket must be at least 1")]
    ZeroGroups,
}

/// Configuration of the [`Concentrator`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct StatsConfig {
    /// Bucket length (10 s like the Agent).
    pub bucket: Duration,
    /// Most groups per bucket; further keys are counted in [`Concentrator::groups_dropped`].
    pub max_groups_per_bucket: usize,
}

impl Default for StatsConfig {
    fn default() -> Self {
        StatsConfig {
            bucket: Duration::from_secs(10),
            max_groups_per_bucket: 10_000,
        }
    }
}

impl StatsConfig {
    /// A validated configuration.
    pub fn new(bucket: Duration, max_groups_per_bucket: usize) -> Result<Self, StatsConfigError> {
        let c = StatsConfig {
            bucket,
            max_groups_per_bucket,
        };
        c.validate()?;
        Ok(c)
    }

    /// Checks the bounds: bucket in 1 ms ..= 1 h, at least one group.
    pub fn validate(&self) -> Result<(), StatsConfigError> {
        if self.bucket < Duration::from_millis(1) || self.bucket > Duration::from_secs(3600) {
            return Err(StatsConfigError::BucketDuration(self.bucket));
        }
        if self.max_groups_per_bucket == 0 {
            return Err(StatsConfigError::ZeroGroups);
        }
        Ok(())
    }

    fn bucket_ns(&self) -> i64 {
        // Validated to at most one hour; an unvalidated zero falls back to 10 s.
        match i64::try_from(self.bucket.as_nanos()) {
            Ok(0) | Err(_) => 10_000_000_000,
            Ok(n) => n,
        }
    }
}

/// Aggregates spans into RED stats per time bucket (by span end time).
#[derive(Debug)]
pub struct Concentrator {
    config: StatsConfig,
    bucket_ns: i64,
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
    /// An empty concentrator (the configuration is validated).
    pub fn new(config: StatsConfig) -> Result<Self, StatsConfigError> {
        config.validate()?;
        Ok(Concentrator {
            bucket_ns: config.bucket_ns(),
            config,
            buckets: std::collections::BTreeMap::new(),
            groups_dropped: 0,
            spans_counted: 0,
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &StatsConfig {
        &self.config
    }

    /// Counts the eligible spans of a chunk of a trace in `env`.
    pub fn add_spans(&mut self, spans: &[Span<'_>], env: &str) {
        for s in spans {
            let kind = s.kind();
            if s.is_top_level()
                || s.is_measured()
                || matches!(kind, "server" | "client" | "producer" | "consumer")
            {
                self.add_span_with_kind(s, kind, env);
            }
        }
    }

    /// Counts one span of a trace in `env` (eligibility not checked).
    pub fn add_span(&mut self, s: &Span<'_>, env: &str) {
        self.add_span_with_kind(s, s.kind(), env);
    }

    fn add_span_with_kind(&mut self, s: &Span<'_>, kind: &str, env: &str) {
        let end = s.start.saturating_add(s.duration);
        let b = end - end.rem_euclid(self.bucket_ns);
        let max_groups = self.config.max_groups_per_bucket;
        let bucket = self.buckets.entry(b).or_default();
        let kr = KeyRef {
            env,
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
                if bucket.len() >= max_groups {
                    self.groups_dropped += 1;
                    return;
                }
                let key = StatsKey {
                    env: kr.env.to_string(),
                    service: kr.service.to_string(),
                    resource: kr.resource.to_string(),
                    name: kr.name.to_string(),
                    span_kind: kr.span_kind.to_string(),
                    top_level: kr.top_level,
                    status_class: kr.status_class,
                };
                bucket.entry(key).or_default()
            }
        };
        g.hits += 1;
        g.duration_sum = g
            .duration_sum
            .saturating_add(Duration::from_nanos(s.duration.max(0) as u64));
        g.latency.record_nanos(s.duration);
        if s.is_error() {
            g.errors += 1;
            g.error_latency.record_nanos(s.duration);
        }
        self.spans_counted += 1;
    }

    /// Flushes buckets that ended before `now - bucket` (one bucket of slack for late
    /// spans); `force` flushes everything.
    pub fn flush(&mut self, now: Timestamp, force: bool) -> Vec<StatsBucket> {
        let bn = self.bucket_ns;
        let cutoff = now.as_nanos().saturating_sub(bn);
        let keys: Vec<i64> = self
            .buckets
            .keys()
            .copied()
            .filter(|&b| force || b.saturating_add(bn) <= cutoff)
            .collect();
        keys.into_iter()
            .filter_map(|b| self.buckets.remove(&b).map(|g| (b, g)))
            .map(|(start, groups)| {
                let mut groups: Vec<(StatsKey, GroupStats)> = groups.into_iter().collect();
                groups.sort_by(|a, b| a.0.cmp(&b.0));
                StatsBucket {
                    start: Timestamp::from_nanos(start),
                    duration: self.config.bucket,
                    groups,
                }
            })
            .collect()
    }
}

/// Datadog's APM trace metrics of a flushed bucket, stamped at the bucket's start: for
/// each (span name, env, service, resource), `trace.<name>.hits` and `trace.<name>.errors`
/// (counts) and `trace.<name>.duration` (a gauge: total seconds spent in those spans),
/// tagged `env`, `service`, `resource` (groups differing only in kind, top-level or status
/// class are summed). A tag Datadog could not hold (a control character) is left out.
///
/// Names follow the [metrics namespace](https://docs.datadoghq.com/tracing/metrics/metrics_namespace/).
pub fn apm_metrics(bucket: &StatsBucket) -> Vec<Metric> {
    // (name, env, service, resource) → (hits, errors, total duration)
    type Sums<'b> =
        std::collections::BTreeMap<(&'b str, &'b str, &'b str, &'b str), (u64, u64, Duration)>;
    let mut sums: Sums<'_> = Sums::new();
    for (k, g) in &bucket.groups {
        let e = sums
            .entry((&k.name, &k.env, &k.service, &k.resource))
            .or_default();
        e.0 += g.hits;
        e.1 += g.errors;
        e.2 = e.2.saturating_add(g.duration_sum);
    }
    let mut out = Vec::with_capacity(sums.len() * 3);
    for ((name, env, service, resource), (hits, errors, dur)) in sums {
        let tags: Tags = [("env", env), ("service", service), ("resource", resource)]
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .filter_map(|(k, v)| Tag::new(k, v).ok())
            .collect();
        let t = bucket.start;
        out.push(Metric::new(
            format!("trace.{name}.hits"),
            MetricValue::Count(hits as f64),
            tags.clone(),
            t,
        ));
        out.push(Metric::new(
            format!("trace.{name}.errors"),
            MetricValue::Count(errors as f64),
            tags.clone(),
            t,
        ));
        out.push(Metric::new(
            format!("trace.{name}.duration"),
            MetricValue::Gauge(dur.as_secs_f64()),
            tags,
            t,
        ));
    }
    out
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
            let ms = |v: Duration| v.as_secs_f64() * 1e3;
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
        let mut c = Concentrator::new(StatsConfig::default()).unwrap();
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
            c.add_spans(std::slice::from_ref(&s), "prod");
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
            let got = all.quantile(q).as_nanos() as f64;
            assert!(
                (got - exact).abs() / exact <= 0.01,
                "q{q}: {got} vs {exact}"
            );
        }
        let max = *durations.last().unwrap() as f64;
        assert!((all.latency.max().as_nanos() as f64 - max).abs() / max <= 0.01);
        assert_eq!(all.latency.count(), 10_000);
        // The serialised form reads back to the same distribution.
        let back = LatencyHistogram::from_bytes(&all.latency.to_bytes()).unwrap();
        assert_eq!(back, all.latency);
        assert!(LatencyHistogram::from_bytes(b"not a histogram").is_err());
    }

    #[test]
    fn apm_series_sum_groups_by_name_env_service_resource() {
        let mut c = Concentrator::new(StatsConfig::default()).unwrap();
        let base = 1_700_000_000_000_000_000i64;
        let span = |kind: &'static str, status: &'static str, err: i32, d: i64| {
            let mut s = Span {
                service: "reviews".into(),
                resource: "GET /reviews".into(),
                name: "http.request".into(),
                start: base,
                duration: d,
                error: err,
                ..Span::default()
            };
            s.set_meta("span.kind", kind);
            s.set_meta("http.status_code", status);
            s
        };
        // Three groups (server 2xx, server 5xx, client 2xx) of one series key.
        c.add_spans(
            &[
                span("server", "200", 0, 1_000_000),
                span("server", "503", 1, 3_000_000),
                span("client", "200", 0, 500_000_000),
            ],
            "prod",
        );
        // Another env is another series.
        c.add_spans(&[span("server", "200", 0, 7)], "staging");
        let buckets = c.flush(Timestamp(base), true);
        assert_eq!(buckets.len(), 1);
        let m = apm_metrics(&buckets[0]);
        let get = |name: &str, env: &str| {
            m.iter()
                .find(|x| x.name() == name && x.tags.get("env") == Some(env))
                .map(|x| (x.value.clone(), x.tags.to_string()))
        };
        assert_eq!(m.len(), 6);
        assert_eq!(
            get("trace.http.request.hits", "prod"),
            Some((
                MetricValue::Count(3.0),
                "env:prod,resource:GET /reviews,service:reviews".to_string()
            ))
        );
        assert_eq!(
            get("trace.http.request.errors", "prod").map(|v| v.0),
            Some(MetricValue::Count(1.0))
        );
        assert_eq!(
            get("trace.http.request.duration", "prod").map(|v| v.0),
            Some(MetricValue::Gauge(0.504))
        );
        assert_eq!(
            get("trace.http.request.hits", "staging").map(|v| v.0),
            Some(MetricValue::Count(1.0))
        );
        assert!(m.iter().all(|x| x.timestamp == buckets[0].start));
    }
}
