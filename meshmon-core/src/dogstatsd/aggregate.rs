//! The DogStatsD aggregator: samples in, one [`crate::Metric`] per context and
//! aggregate out at each flush, as the Datadog Agent's DogStatsD time sampler does. Pure:
//! the caller passes the time.
//!
//! A context is (name, type, sorted de-duplicated tags). Per flush interval:
//!
//! | type | flushed as |
//! |---|---|
//! | `c` | [`MetricValue::Count`]: the sum of `value / sample_rate` |
//! | `g` | [`MetricValue::Gauge`]: the last value |
//! | `s` | [`MetricValue::Gauge`]: the number of distinct members |
//! | `h`, `ms` | the configured aggregates, Datadog's defaults `<name>.max`, `.median`, `.avg`, `.count` (a [`MetricValue::Count`] of `Σ 1/sample_rate`) and `.95percentile` (gauges) |
//! | `d` | [`MetricValue::Distribution`]: the values, each repeated `round(1/sample_rate)` times |
//!
//! Metrics carrying a v1.3 timestamp (`T...`) that are gauges or counts bypass
//! aggregation, as in the Agent: they are flushed as received, at their own time.
//! Other types ignore the timestamp.
//!
//! Percentiles (and the median) are nearest-rank over the samples received, unweighted.
//! Tags that cannot be a [`Tag`] (inner whitespace or control characters, a leading `:`)
//! are dropped from the context and counted in [`AggregatorStats::invalid_tags`]. Set
//! members are kept as 64-bit hashes (no copy of the text). Every context is removed after
//! it is flushed.
//!
//! ```
//! use meshmon_core::dogstatsd::{aggregate::{Aggregator, AggregatorConfig}, parse_packet, Message};
//! use meshmon_core::{MetricValue, Timestamp};
//!
//! let mut agg = Aggregator::new(AggregatorConfig::default())?;
//! for msg in parse_packet(b"hits:1|c|@0.5|#env:prod\nhits:3|c|#env:prod\ntemp:20|g\ntemp:21|g") {
//!     if let Ok(Message::Metric(m)) = msg {
//!         agg.insert(&m);
//!     }
//! }
//! let out = agg.flush(Timestamp::from_secs(1_700_000_010));
//! assert_eq!(out.len(), 2);
//! let hits = out.iter().find(|m| m.name() == "hits").unwrap();
//! assert_eq!((hits.value.clone(), hits.tags.to_string()), (MetricValue::Count(5.0), "env:prod".into()));
//! let temp = out.iter().find(|m| m.name() == "temp").unwrap();
//! assert_eq!(temp.value, MetricValue::Gauge(21.0));
//! # Ok::<(), meshmon_core::dogstatsd::aggregate::ConfigError>(())
//! ```

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::Arc;

use super::{Metric as Sample, MetricType};
use crate::{Metric, MetricValue, Tag, Tags, Timestamp};

/// One histogram aggregate (the Agent's `histogram_aggregates`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HistogramAggregate {
    /// `<name>.max`.
    Max,
    /// `<name>.min`.
    Min,
    /// `<name>.median`.
    Median,
    /// `<name>.avg`.
    Avg,
    /// `<name>.sum`.
    Sum,
    /// `<name>.count`, a count of `Σ 1/sample_rate`.
    Count,
}

impl HistogramAggregate {
    /// The Agent's name for it, also the metric name suffix.
    pub fn name(self) -> &'static str {
        match self {
            Self::Max => "max",
            Self::Min => "min",
            Self::Median => "median",
            Self::Avg => "avg",
            Self::Sum => "sum",
            Self::Count => "count",
        }
    }
}

/// The aggregator's settings.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AggregatorConfig {
    /// Most contexts held between two flushes; samples of further contexts are dropped
    /// and counted ([`AggregatorStats::contexts_dropped`]). Default 100 000.
    pub max_contexts: usize,
    /// Most samples one histogram, timer or distribution context holds between two
    /// flushes (also bounds the members of a set); further samples are dropped and
    /// counted ([`AggregatorStats::samples_dropped`]). Default 100 000.
    pub max_samples_per_context: usize,
    /// Histogram aggregates; the Agent's default is `max, median, avg, count`.
    pub histogram_aggregates: Vec<HistogramAggregate>,
    /// Histogram percentiles in `(0, 1)`, flushed as `<name>.<round(100 p)>percentile`;
    /// the Agent's default is `0.95`.
    pub histogram_percentiles: Vec<f64>,
}

impl Default for AggregatorConfig {
    fn default() -> Self {
        Self {
            max_contexts: 100_000,
            max_samples_per_context: 100_000,
            histogram_aggregates: vec![
                HistogramAggregate::Max,
                HistogramAggregate::Median,
                HistogramAggregate::Avg,
                HistogramAggregate::Count,
            ],
            histogram_percentiles: vec![0.95],
        }
    }
}

/// An invalid [`AggregatorConfig`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A limit is zero.
    #[error("{field} must be at least 1")]
    ZeroLimit {
        /// The setting.
        field: &'static str,
    },
    /// A percentile outside `(0, 1)`.
    #[error("histogram percentile {0} is not in (0, 1)")]
    Percentile(f64),
}

impl AggregatorConfig {
    /// Checks the limits and percentiles.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_contexts == 0 {
            return Err(ConfigError::ZeroLimit {
                field: "max_contexts",
            });
        }
        if self.max_samples_per_context == 0 {
            return Err(ConfigError::ZeroLimit {
                field: "max_samples_per_context",
            });
        }
        if let Some(&p) = self
            .histogram_percentiles
            .iter()
            .find(|p| !(**p > 0.0 && **p < 1.0))
        {
            return Err(ConfigError::Percentile(p));
        }
        Ok(())
    }
}

/// What the aggregator counted since it was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct AggregatorStats {
    /// Samples (values) accepted.
    pub samples: u64,
    /// Samples dropped because [`AggregatorConfig::max_contexts`] was reached.
    pub contexts_dropped: u64,
    /// Samples dropped because [`AggregatorConfig::max_samples_per_context`] was reached.
    pub samples_dropped: u64,
    /// Tags dropped because they cannot be a [`Tag`].
    pub invalid_tags: u64,
    /// Contexts flushed.
    pub contexts_flushed: u64,
    /// Samples dropped because what they would add is not finite: a count whose
    /// `value / sample_rate` or running sum overflows (`a:1e308|c|@0.001`), a histogram
    /// whose weight `Σ 1/sample_rate` would; and histogram `sum` aggregates that overflow
    /// (not flushed). Without this an overflowing count was flushed as `inf`, and two of
    /// opposite signs as NaN.
    pub non_finite: u64,
}

#[derive(Debug)]
enum State {
    Count(f64),
    Gauge(f64),
    Set(HashSet<u64, FxBuild>),
    Histogram { samples: Vec<f64>, weight: f64 },
    Distribution(Vec<f64>),
}

#[derive(Debug)]
struct Context {
    name: Arc<str>,
    metric_type: MetricType,
    tags: Tags,
    state: State,
}

/// FxHash (rustc's hasher): fast, not DoS-resistant, which is acceptable because a
/// collision only costs a comparison (contexts are compared in full) and the number of
/// contexts is bounded.
#[derive(Default, Clone, Copy)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type FxBuild = BuildHasherDefault<FxHasher>;

fn hash_str(s: &str) -> u64 {
    let mut h = FxHasher::default();
    s.hash(&mut h);
    h.finish()
}

/// Most tags sorted on the stack when building a context key; more take one allocation.
const STACK_TAGS: usize = 32;

/// The DogStatsD aggregator. See the [module docs](self).
#[derive(Debug)]
pub struct Aggregator {
    config: AggregatorConfig,
    /// Contexts by key hash; collisions are resolved by comparing name, type and tags.
    contexts: HashMap<u64, Vec<Context>, FxBuild>,
    len: usize,
    timestamped: Vec<Metric>,
    stats: AggregatorStats,
}

/// Whether `t` converts to a [`Tag`] unchanged (so keys built from raw text and from
/// `Tag`s agree).
fn valid_tag(t: &str) -> bool {
    !t.is_empty()
        && !t.starts_with(':')
        && !t
            .chars()
            .any(|c| c == ',' || c.is_whitespace() || c.is_control())
}

impl Aggregator {
    /// Builds an aggregator after validating `config`.
    pub fn new(config: AggregatorConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            contexts: HashMap::default(),
            len: 0,
            timestamped: Vec::new(),
            stats: AggregatorStats::default(),
        })
    }

    /// The settings.
    pub fn config(&self) -> &AggregatorConfig {
        &self.config
    }

    /// The counters.
    pub fn stats(&self) -> AggregatorStats {
        self.stats
    }

    /// Contexts currently held.
    pub fn contexts(&self) -> usize {
        self.len
    }

    /// Adds a parsed metric line (every value of a multi-value line). A sample of an
    /// existing context allocates nothing (except a new set member or the growth of a
    /// sample buffer).
    pub fn insert(&mut self, m: &Sample<'_>) {
        let mut stack = [""; STACK_TAGS];
        let mut heap = Vec::new();
        let mut n = 0;
        let mut invalid = 0;
        for t in m.tags.iter() {
            let t = t.trim();
            if !valid_tag(t) {
                if !t.is_empty() {
                    invalid += 1;
                }
                continue;
            }
            if n < STACK_TAGS {
                stack[n] = t;
            } else {
                if heap.is_empty() {
                    heap.extend_from_slice(&stack);
                }
                heap.push(t);
            }
            n += 1;
        }
        self.stats.invalid_tags += invalid;
        let tags: &mut [&str] = if heap.is_empty() {
            &mut stack[..n]
        } else {
            &mut heap
        };
        tags.sort_unstable();
        let tags = dedup(tags);

        if let Some(ts) = m.timestamp
            && matches!(m.metric_type, MetricType::Gauge | MetricType::Count)
        {
            self.insert_timestamped(m, tags, ts);
            return;
        }

        let mut h = FxHasher::default();
        m.name.hash(&mut h);
        m.metric_type.hash(&mut h);
        for t in tags.iter() {
            t.hash(&mut h);
        }
        let key = h.finish();
        let max_samples = self.config.max_samples_per_context;
        let bucket = match self.contexts.entry(key) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                if self.len >= self.config.max_contexts {
                    self.stats.contexts_dropped += value_count(m);
                    return;
                }
                e.insert(Vec::with_capacity(1))
            }
        };
        let found = bucket.iter().position(|c| {
            *c.name == *m.name
                && c.metric_type == m.metric_type
                && c.tags.len() == tags.len()
                && c.tags
                    .iter()
                    .zip(tags.iter())
                    .all(|(a, b)| a.as_str() == *b)
        });
        let ctx = match found {
            Some(i) => &mut bucket[i],
            None => {
                if self.len >= self.config.max_contexts {
                    self.stats.contexts_dropped += value_count(m);
                    return;
                }
                let tags: Tags = tags.iter().filter_map(|t| t.parse::<Tag>().ok()).collect();
                let state = match m.metric_type {
                    MetricType::Count => State::Count(0.0),
                    MetricType::Gauge => State::Gauge(f64::NAN),
                    MetricType::Set => State::Set(HashSet::default()),
                    MetricType::Histogram | MetricType::Timer => State::Histogram {
                        samples: Vec::new(),
                        weight: 0.0,
                    },
                    MetricType::Distribution => State::Distribution(Vec::new()),
                };
                self.len += 1;
                bucket.push(Context {
                    name: m.name.into(),
                    metric_type: m.metric_type,
                    tags,
                    state,
                });
                let last = bucket.len() - 1;
                &mut bucket[last]
            }
        };
        let rate = m.sample_rate;
        let stats = &mut self.stats;
        match &mut ctx.state {
            State::Count(sum) => {
                for v in m.values() {
                    let next = *sum + v / rate;
                    if next.is_finite() {
                        *sum = next;
                        stats.samples += 1;
                    } else {
                        stats.non_finite += 1;
                    }
                }
            }
            State::Gauge(last) => {
                for v in m.values() {
                    *last = v;
                    stats.samples += 1;
                }
            }
            State::Set(members) => {
                for v in m.raw_values() {
                    let k = hash_str(v);
                    if members.len() >= max_samples && !members.contains(&k) {
                        stats.samples_dropped += 1;
                    } else {
                        members.insert(k);
                        stats.samples += 1;
                    }
                }
            }
            State::Histogram { samples, weight } => {
                for v in m.values() {
                    if samples.len() >= max_samples {
                        stats.samples_dropped += 1;
                        continue;
                    }
                    let next = *weight + 1.0 / rate;
                    if !next.is_finite() {
                        stats.non_finite += 1;
                        continue;
                    }
                    samples.push(v);
                    *weight = next;
                    stats.samples += 1;
                }
            }
            State::Distribution(values) => {
                // round(1/rate) copies of each value, counted without a loop per copy: a
                // tiny sample rate (`|@1e-10`) costs no more than the copies kept (the
                // cast saturates).
                let copies = (1.0 / rate).round().max(1.0) as u64;
                for v in m.values() {
                    let room = max_samples.saturating_sub(values.len());
                    let keep = usize::try_from(copies).map_or(room, |c| c.min(room));
                    values.extend(std::iter::repeat_n(v, keep));
                    stats.samples += keep as u64;
                    stats.samples_dropped =
                        stats.samples_dropped.saturating_add(copies - keep as u64);
                }
            }
        }
    }

    fn insert_timestamped(&mut self, m: &Sample<'_>, tags: &[&str], ts: i64) {
        if self.timestamped.len() >= self.config.max_contexts {
            self.stats.contexts_dropped += value_count(m);
            return;
        }
        let tags: Tags = tags.iter().filter_map(|t| t.parse::<Tag>().ok()).collect();
        let name: Arc<str> = m.name.into();
        for v in m.values() {
            let value = match m.metric_type {
                MetricType::Count if !(v / m.sample_rate).is_finite() => {
                    self.stats.non_finite += 1;
                    continue;
                }
                MetricType::Count => MetricValue::Count(v / m.sample_rate),
                _ => MetricValue::Gauge(v),
            };
            self.stats.samples += 1;
            self.timestamped.push(Metric {
                name: name.clone(),
                value,
                tags: tags.clone(),
                timestamp: Timestamp::from_secs(ts),
            });
        }
    }

    /// Flushes every context as of `now` and empties the aggregator.
    pub fn flush(&mut self, now: Timestamp) -> Vec<Metric> {
        let mut out = std::mem::take(&mut self.timestamped);
        for (_, bucket) in self.contexts.drain() {
            for ctx in bucket {
                self.stats.contexts_flushed += 1;
                flush_context(ctx, now, &self.config, &mut self.stats, &mut out);
            }
        }
        self.len = 0;
        out
    }
}

fn value_count(m: &Sample<'_>) -> u64 {
    m.raw_values().count() as u64
}

fn dedup<'s, 'a>(sorted: &'s mut [&'a str]) -> &'s [&'a str] {
    let mut w = 0;
    for r in 0..sorted.len() {
        if w == 0 || sorted[r] != sorted[w - 1] {
            sorted[w] = sorted[r];
            w += 1;
        }
    }
    &sorted[..w]
}

/// Nearest-rank percentile of sorted, non-empty samples.
fn nearest_rank(sorted: &[f64], p: f64) -> f64 {
    let n = sorted.len();
    let rank = (p * n as f64).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

fn flush_context(
    ctx: Context,
    now: Timestamp,
    config: &AggregatorConfig,
    stats: &mut AggregatorStats,
    out: &mut Vec<Metric>,
) {
    let Context {
        name, tags, state, ..
    } = ctx;
    let one = |value| Metric {
        name: name.clone(),
        value,
        tags: tags.clone(),
        timestamp: now,
    };
    match state {
        State::Count(sum) => out.push(one(MetricValue::Count(sum))),
        State::Gauge(v) if !v.is_nan() => out.push(one(MetricValue::Gauge(v))),
        State::Gauge(_) => {}
        State::Set(members) => out.push(one(MetricValue::Gauge(members.len() as f64))),
        State::Distribution(values) => {
            if !values.is_empty() {
                out.push(one(MetricValue::Distribution(values)));
            }
        }
        State::Histogram {
            mut samples,
            weight,
        } => {
            if samples.is_empty() {
                return;
            }
            samples.sort_unstable_by(f64::total_cmp);
            let n = samples.len() as f64;
            let sum: f64 = samples.iter().sum();
            // The mean as Σ x/n: finite whenever the samples are (Σ x may overflow).
            let avg: f64 = samples.iter().map(|x| x / n).sum();
            let sub = |suffix: &str, value| Metric {
                name: format!("{name}.{suffix}").into(),
                value,
                tags: tags.clone(),
                timestamp: now,
            };
            for agg in &config.histogram_aggregates {
                let v = match agg {
                    HistogramAggregate::Max => samples[samples.len() - 1],
                    HistogramAggregate::Min => samples[0],
                    HistogramAggregate::Median => nearest_rank(&samples, 0.5),
                    HistogramAggregate::Avg => avg,
                    HistogramAggregate::Sum if !sum.is_finite() => {
                        stats.non_finite += 1;
                        continue;
                    }
                    HistogramAggregate::Sum => sum,
                    HistogramAggregate::Count => {
                        out.push(sub("count", MetricValue::Count(weight)));
                        continue;
                    }
                };
                out.push(sub(agg.name(), MetricValue::Gauge(v)));
            }
            for &p in &config.histogram_percentiles {
                let suffix = format!("{}percentile", (p * 100.0).round() as u32);
                out.push(sub(&suffix, MetricValue::Gauge(nearest_rank(&samples, p))));
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::dogstatsd::{Message, parse_packet};

    fn insert_all(agg: &mut Aggregator, packet: &[u8]) {
        for msg in parse_packet(packet) {
            if let Ok(Message::Metric(m)) = msg {
                agg.insert(&m);
            }
        }
    }

    /// Found by the `dogstatsd` fuzz target (a timeout): a distribution sample with a tiny
    /// sample rate looped once per copy, 10^10 times for `@0.0000000001` (and for ever for
    /// `@1e-300`), so one datagram stalled the DogStatsD server.
    #[test]
    fn distribution_with_tiny_sample_rate_is_bounded_and_counted() {
        let config = AggregatorConfig {
            max_samples_per_context: 1_000,
            ..AggregatorConfig::default()
        };
        let mut agg = Aggregator::new(config).unwrap();
        insert_all(&mut agg, b"b:2|d|@0.0000000001\nb:3|d|@1e-300");
        let stats = agg.stats();
        assert_eq!(stats.samples, 1_000);
        // 10^10 copies of 2 (999 999 000 dropped beyond the 1 000 kept), then u64::MAX
        // copies of 3, all dropped: the counter saturates.
        assert_eq!(stats.samples_dropped, u64::MAX);
        let out = agg.flush(Timestamp::from_secs(1_700_000_000));
        let [m] = out.as_slice() else {
            panic!("one distribution expected: {out:?}")
        };
        let MetricValue::Distribution(values) = &m.value else {
            panic!("{m:?}")
        };
        assert_eq!(values.len(), 1_000);
        assert!(values.iter().all(|v| *v == 2.0));
    }

    /// Found by the `dogstatsd` fuzz target (its "no NaN flushed" property): counts whose
    /// `value / sample_rate` overflows were summed to `inf`, and two of opposite signs
    /// flushed `Count(NaN)`.
    #[test]
    fn overflowing_counts_are_dropped_and_counted_never_flushed_as_nan() {
        let mut agg = Aggregator::new(AggregatorConfig::default()).unwrap();
        insert_all(
            &mut agg,
            b"a:1e308|c|@0.001\na:-1e308|c|@0.001\na:2|c|@0.5\nb:1e308|c|@0.001|T1700000000",
        );
        let stats = agg.stats();
        assert_eq!((stats.samples, stats.non_finite), (1, 3));
        let out = agg.flush(Timestamp::from_secs(1_700_000_010));
        let [m] = out.as_slice() else {
            panic!("only the finite count is flushed: {out:?}")
        };
        assert_eq!((m.name(), &m.value), ("a", &MetricValue::Count(4.0)));

        // A running sum that would overflow keeps its last finite value.
        let mut agg = Aggregator::new(AggregatorConfig::default()).unwrap();
        insert_all(&mut agg, b"c:1e308|c\nc:1e308|c\nc:1|c");
        assert_eq!((agg.stats().samples, agg.stats().non_finite), (2, 1));
        let out = agg.flush(Timestamp::from_secs(1_700_000_010));
        assert_eq!(out[0].value, MetricValue::Count(1e308 + 1.0));
    }

    #[test]
    fn histogram_avg_of_huge_samples_is_finite_and_an_overflowing_sum_is_counted() {
        let config = AggregatorConfig {
            histogram_aggregates: vec![HistogramAggregate::Avg, HistogramAggregate::Sum],
            histogram_percentiles: vec![],
            ..AggregatorConfig::default()
        };
        let mut agg = Aggregator::new(config).unwrap();
        insert_all(&mut agg, b"h:1e308|h\nh:1e308|h\nh:1e308|h");
        let out = agg.flush(Timestamp::from_secs(1_700_000_010));
        let [m] = out.as_slice() else {
            panic!("avg only, the sum overflows: {out:?}")
        };
        assert_eq!(m.name(), "h.avg");
        let MetricValue::Gauge(avg) = m.value else {
            panic!("{m:?}")
        };
        assert!((avg - 1e308).abs() < 1e295, "{avg}");
        assert_eq!(agg.stats().non_finite, 1);
    }

    #[test]
    fn distribution_copies_follow_the_sample_rate_up_to_the_limit() {
        let config = AggregatorConfig {
            max_samples_per_context: 10,
            ..AggregatorConfig::default()
        };
        let mut agg = Aggregator::new(config).unwrap();
        insert_all(&mut agg, b"d:1|d|@0.25\nd:2|d|@0.5\nd:3|d|@0.2");
        let stats = agg.stats();
        // 4 + 2 copies kept, then 4 of the 5 copies of 3 until the limit.
        assert_eq!((stats.samples, stats.samples_dropped), (10, 1));
        let out = agg.flush(Timestamp::from_secs(1_700_000_000));
        let MetricValue::Distribution(values) = &out[0].value else {
            panic!("{out:?}")
        };
        assert_eq!(values, &[1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 3.0, 3.0]);
    }
}
