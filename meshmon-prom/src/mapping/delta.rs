//! [`MonotonicDeltas`]: cumulative counters → per-interval deltas, with bounded,
//! expiring per-series state.
//!
//! The Datadog Agent's aggregator turns a check's `monotonic_count` submissions into
//! counts: the difference between successive values of one series (name + tags). The
//! first value of a series emits nothing unless `flush_first_value` is set (then the
//! value itself is the delta, as for a counter that started at zero). A decrease is a
//! counter reset: the new value is the count since the reset, never a negative delta.
//!
//! ```
//! use std::time::Duration;
//! use meshmon_core::{Metric, MetricValue, Tags, Timestamp};
//! use meshmon_prom::MonotonicDeltas;
//!
//! let mut d = MonotonicDeltas::default();
//! let m = |v, s| Metric::new("req.count", MetricValue::MonotonicCount(v), Tags::new(), Timestamp::from_secs(s));
//! assert_eq!(d.apply(m(10.0, 0)), None); // first scrape: nothing
//! assert_eq!(d.apply(m(15.0, 15)).unwrap().value, MetricValue::Count(5.0));
//! assert_eq!(d.apply(m(3.0, 30)).unwrap().value, MetricValue::Count(3.0)); // reset
//! ```

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::time::Duration;

use meshmon_core::{Metric, MetricValue, Timestamp};

/// Bounds of the delta state: [`DeltaLimits::default`], then the validating `with_*`
/// setters.
///
/// ```
/// use std::time::Duration;
/// use meshmon_prom::mapping::{DeltaLimits, LimitsError};
/// let l = DeltaLimits::default().with_max_series(10)?.with_expiry(Duration::from_secs(60))?;
/// assert_eq!(l.max_series, 10);
/// assert_eq!(DeltaLimits::default().with_max_series(0), Err(LimitsError::Zero("max_series")));
/// # Ok::<(), LimitsError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeltaLimits {
    /// Most series tracked (default 100,000); a new series beyond it is dropped and
    /// counted in [`DeltaStats::dropped_series`].
    pub max_series: usize,
    /// A series not seen for this long is forgotten (default 10 minutes), measured on
    /// the timestamps of the metrics passed in.
    pub expiry: Duration,
    /// Emit the first value of a series as its delta (Datadog's `flush_first_value`).
    pub flush_first_value: bool,
}

impl Default for DeltaLimits {
    fn default() -> Self {
        Self {
            max_series: 100_000,
            expiry: Duration::from_secs(600),
            flush_first_value: false,
        }
    }
}

/// A limit that cannot work (shared by [`DeltaLimits`] and the `scrape` feature's
/// `ScrapeOptions`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitsError {
    /// The named limit is zero, which would refuse everything.
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
}

impl DeltaLimits {
    /// Tracks at most `max_series` series (at least 1).
    pub fn with_max_series(mut self, max_series: usize) -> Result<Self, LimitsError> {
        self.max_series = max_series;
        self.validate()?;
        Ok(self)
    }

    /// Forgets a series unseen for `expiry` (more than zero).
    pub fn with_expiry(mut self, expiry: Duration) -> Result<Self, LimitsError> {
        self.expiry = expiry;
        self.validate()?;
        Ok(self)
    }

    /// Emits the first value of a series as its delta (Datadog's `flush_first_value`).
    #[must_use]
    pub fn with_flush_first_value(mut self, flush: bool) -> Self {
        self.flush_first_value = flush;
        self
    }

    /// Checks the limits (for callers who set the public fields directly).
    pub fn validate(&self) -> Result<(), LimitsError> {
        if self.max_series == 0 {
            return Err(LimitsError::Zero("max_series"));
        }
        if self.expiry.is_zero() {
            return Err(LimitsError::Zero("expiry"));
        }
        Ok(())
    }
}

/// Counters of the delta state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeltaStats {
    /// Series currently tracked.
    pub series: usize,
    /// New series refused because `max_series` was reached.
    pub dropped_series: u64,
    /// Series forgotten after `expiry`.
    pub expired_series: u64,
    /// Decreases treated as counter resets.
    pub resets: u64,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    value: f64,
    seen: Timestamp,
}

/// The persisted form of [`MonotonicDeltas`]' state: `(series key, last value, last
/// seen in ns)`, sorted by key.
#[derive(Clone, Debug, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct DeltaSnapshot {
    /// The entries.
    pub entries: Vec<(u64, f64, i64)>,
}

/// Per-series state turning monotonic counts into deltas.
#[derive(Debug, Default)]
pub struct MonotonicDeltas {
    limits: DeltaLimits,
    state: HashMap<u64, Entry>,
    stats: DeltaStats,
    last_sweep: Option<Timestamp>,
}

impl MonotonicDeltas {
    /// Empty state with these limits.
    pub fn new(limits: DeltaLimits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> DeltaStats {
        DeltaStats {
            series: self.state.len(),
            ..self.stats
        }
    }

    fn key(m: &Metric) -> u64 {
        BuildHasherDefault::<DefaultHasher>::default().hash_one((
            &*m.name,
            &m.tags,
            bucket_bounds(&m.value),
        ))
    }

    /// Forgets series not seen since `now - expiry`.
    pub fn expire(&mut self, now: Timestamp) {
        let horizon = now
            .0
            .saturating_sub(i64::try_from(self.limits.expiry.as_nanos()).unwrap_or(i64::MAX));
        let before = self.state.len();
        self.state.retain(|_, e| e.seen.0 >= horizon);
        self.stats.expired_series += (before - self.state.len()) as u64;
        self.last_sweep = Some(now);
    }

    /// Converts one metric: a [`MetricValue::MonotonicCount`] becomes a
    /// [`MetricValue::Count`] delta and a monotonic [`MetricValue::HistogramBucket`] a
    /// non-monotonic one; `None` when there is nothing to emit yet. Other values pass
    /// through unchanged.
    pub fn apply(&mut self, mut m: Metric) -> Option<Metric> {
        let current = match m.value {
            MetricValue::MonotonicCount(v) => v,
            MetricValue::HistogramBucket {
                count,
                monotonic: true,
                ..
            } => count as f64,
            _ => return Some(m),
        };
        let now = m.timestamp;
        // Sweep expired series at most once per expiry period.
        let period = i64::try_from(self.limits.expiry.as_nanos()).unwrap_or(i64::MAX);
        if self
            .last_sweep
            .is_none_or(|t| now.0.saturating_sub(t.0) >= period)
        {
            self.expire(now);
        }
        let key = Self::key(&m);
        let delta = match self.state.get_mut(&key) {
            Some(e) => {
                let prev = e.value;
                e.value = current;
                e.seen = now;
                if current < prev {
                    self.stats.resets += 1;
                    current
                } else {
                    current - prev
                }
            }
            None => {
                if self.state.len() >= self.limits.max_series {
                    self.expire(now);
                    if self.state.len() >= self.limits.max_series {
                        self.stats.dropped_series += 1;
                        return None;
                    }
                }
                self.state.insert(
                    key,
                    Entry {
                        value: current,
                        seen: now,
                    },
                );
                if !self.limits.flush_first_value {
                    return None;
                }
                current
            }
        };
        m.value = match m.value {
            MetricValue::HistogramBucket {
                lower_bound,
                upper_bound,
                ..
            } => MetricValue::HistogramBucket {
                count: delta.max(0.0).round() as u64,
                lower_bound,
                upper_bound,
                monotonic: false,
            },
            _ => MetricValue::Count(delta),
        };
        Some(m)
    }

    /// The per-series state, for persisting across restarts. Series keys are hashes
    /// (SipHash with fixed keys) of name, tags and bucket bounds: stable between runs of
    /// the same build; a key that no longer matches after an upgrade only means that
    /// series emits nothing on its first scrape, as a new series would.
    pub fn snapshot(&self) -> DeltaSnapshot {
        let mut entries: Vec<(u64, f64, i64)> = self
            .state
            .iter()
            .map(|(k, e)| (*k, e.value, e.seen.as_nanos()))
            .collect();
        entries.sort_unstable_by_key(|e| e.0);
        DeltaSnapshot { entries }
    }

    /// Restores state saved by [`MonotonicDeltas::snapshot`] (up to `max_series`
    /// entries; the rest are counted as dropped).
    pub fn restore(&mut self, snap: DeltaSnapshot) {
        for (k, value, seen) in snap.entries {
            if self.state.len() >= self.limits.max_series && !self.state.contains_key(&k) {
                self.stats.dropped_series += 1;
                continue;
            }
            self.state.insert(
                k,
                Entry {
                    value,
                    seen: Timestamp::from_nanos(seen),
                },
            );
        }
    }
}

fn bucket_bounds(v: &MetricValue) -> (u64, u64) {
    match v {
        MetricValue::HistogramBucket {
            lower_bound,
            upper_bound,
            ..
        } => (lower_bound.to_bits(), upper_bound.to_bits()),
        _ => (0, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshmon_core::Tags;

    fn mc(name: &str, tags: &str, v: f64, secs: i64) -> Metric {
        Metric::new(
            name,
            MetricValue::MonotonicCount(v),
            tags.parse::<Tags>().unwrap(),
            Timestamp::from_secs(secs),
        )
    }

    #[test]
    fn snapshot_restores_the_next_delta() {
        let m = |v, s| {
            Metric::new(
                "c",
                MetricValue::MonotonicCount(v),
                Tags::new(),
                Timestamp::from_secs(s),
            )
        };
        let mut a = MonotonicDeltas::default();
        assert_eq!(a.apply(m(10.0, 0)), None);
        let mut b = MonotonicDeltas::default();
        b.restore(a.snapshot());
        assert_eq!(
            b.apply(m(14.0, 15)).map(|x| x.value),
            Some(MetricValue::Count(4.0))
        );
        let mut tiny = MonotonicDeltas::new(DeltaLimits {
            max_series: 0,
            ..DeltaLimits::default()
        });
        tiny.restore(a.snapshot());
        assert_eq!(tiny.stats().dropped_series, 1);
    }

    #[test]
    fn deltas_per_series() {
        let mut d = MonotonicDeltas::default();
        assert!(d.apply(mc("a", "x:1", 1.0, 0)).is_none());
        assert!(d.apply(mc("a", "x:2", 100.0, 0)).is_none());
        assert_eq!(
            d.apply(mc("a", "x:1", 4.0, 10)).unwrap().value,
            MetricValue::Count(3.0)
        );
        assert_eq!(
            d.apply(mc("a", "x:2", 100.0, 10)).unwrap().value,
            MetricValue::Count(0.0)
        );
        // gauges pass through
        let g = Metric::new("g", MetricValue::Gauge(1.0), Tags::new(), Timestamp::EPOCH);
        assert_eq!(d.apply(g.clone()), Some(g));
        assert_eq!(d.stats().series, 2);
    }

    #[test]
    fn flush_first_value_and_reset() {
        let mut d = MonotonicDeltas::new(DeltaLimits {
            flush_first_value: true,
            ..DeltaLimits::default()
        });
        assert_eq!(
            d.apply(mc("a", "", 5.0, 0)).unwrap().value,
            MetricValue::Count(5.0)
        );
        assert_eq!(
            d.apply(mc("a", "", 2.0, 10)).unwrap().value,
            MetricValue::Count(2.0)
        );
        assert_eq!(d.stats().resets, 1);
    }

    #[test]
    fn bounded_and_expiring() {
        let limits = DeltaLimits {
            max_series: 2,
            expiry: Duration::from_secs(60),
            flush_first_value: false,
        };
        let mut d = MonotonicDeltas::new(limits);
        assert!(d.apply(mc("a", "", 1.0, 0)).is_none());
        assert!(d.apply(mc("b", "", 1.0, 0)).is_none());
        assert!(d.apply(mc("c", "", 1.0, 1)).is_none());
        assert_eq!(d.stats().dropped_series, 1);
        assert_eq!(d.stats().series, 2);
        // "a" is refreshed at t=50; at t=100 "b" has expired, "a" has not.
        assert!(d.apply(mc("a", "", 2.0, 50)).is_some());
        assert!(d.apply(mc("c", "", 1.0, 100)).is_none());
        let s = d.stats();
        assert_eq!((s.series, s.expired_series, s.dropped_series), (2, 1, 1));
        assert_eq!(
            d.apply(mc("a", "", 7.0, 105)).unwrap().value,
            MetricValue::Count(5.0)
        );
    }

    #[test]
    fn buckets_become_non_monotonic() {
        let mut d = MonotonicDeltas::default();
        let b = |c, s| {
            Metric::new(
                "h",
                MetricValue::HistogramBucket {
                    count: c,
                    lower_bound: 0.0,
                    upper_bound: 1.0,
                    monotonic: true,
                },
                Tags::new(),
                Timestamp::from_secs(s),
            )
        };
        assert!(d.apply(b(3, 0)).is_none());
        assert_eq!(
            d.apply(b(5, 10)).unwrap().value,
            MetricValue::HistogramBucket {
                count: 2,
                lower_bound: 0.0,
                upper_bound: 1.0,
                monotonic: false
            }
        );
    }
}
