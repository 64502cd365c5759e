//! [`Metric`]: what every producer emits and every sink consumes.
//!
//! The value types are the Datadog Agent's submission types
//! ([metric types](https://docs.datadoghq.com/metrics/types/)): a check submits a
//! gauge, a count, a monotonic count (a cumulative counter the aggregator turns into
//! deltas), a rate, a histogram bucket (from Prometheus/OpenMetrics histograms), or
//! distribution samples.
//!
//! ```
//! use std::time::Duration;
//! use meshmon_core::{Metric, MetricValue, Tags, Timestamp};
//!
//! let bucket = MetricValue::HistogramBucket {
//!     count: 7,
//!     lower_bound: 0.0,
//!     upper_bound: 0.005,
//!     monotonic: true,
//! };
//! assert_eq!(bucket.type_name(), "histogram_bucket");
//! let rate = MetricValue::Rate { value: 2.5, interval: Duration::from_secs(10) };
//! assert_eq!(rate.as_f64(), Some(2.5));
//! let m = Metric::new("x", rate, Tags::new(), Timestamp::EPOCH);
//! assert_eq!(m.name(), "x");
//! ```

use std::sync::Arc;
use std::time::Duration;

use crate::{Tags, Timestamp};

/// A metric's value, by Datadog submission type.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(tag = "type", content = "value", rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum MetricValue {
    /// A value at a point in time.
    Gauge(f64),
    /// A number of events during the flush interval (already a delta).
    Count(f64),
    /// The current value of a cumulative counter; consumers compute deltas between
    /// successive submissions and treat a decrease as a reset.
    MonotonicCount(f64),
    /// Events per second measured over `interval`.
    Rate {
        /// Per-second value.
        value: f64,
        /// The interval the rate was measured over.
        interval: Duration,
    },
    /// One bucket of a histogram: `count` observations in `(lower_bound, upper_bound]`
    /// (Datadog's `submit_histogram_bucket`).
    HistogramBucket {
        /// Number of observations in the bucket.
        count: u64,
        /// Exclusive lower bound (`-inf` allowed).
        lower_bound: f64,
        /// Inclusive upper bound (`+inf` allowed).
        upper_bound: f64,
        /// Whether `count` is cumulative across submissions (then consumers diff it).
        monotonic: bool,
    },
    /// Raw samples of a distribution, aggregated server-side into percentiles.
    Distribution(Vec<f64>),
}

impl MetricValue {
    /// Datadog's name for the type: `gauge`, `count`, `monotonic_count`, `rate`,
    /// `histogram_bucket` or `distribution`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Gauge(_) => "gauge",
            Self::Count(_) => "count",
            Self::MonotonicCount(_) => "monotonic_count",
            Self::Rate { .. } => "rate",
            Self::HistogramBucket { .. } => "histogram_bucket",
            Self::Distribution(_) => "distribution",
        }
    }

    /// The scalar value, for the scalar types (a bucket's count as `f64`); `None` for a
    /// distribution.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Self::Gauge(v) | Self::Count(v) | Self::MonotonicCount(v) => Some(v),
            Self::Rate { value, .. } => Some(value),
            Self::HistogramBucket { count, .. } => Some(count as f64),
            Self::Distribution(_) => None,
        }
    }
}

/// A named, tagged, timestamped value.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Metric {
    /// Dotted Datadog name, e.g. `istio.mesh.request.count`. Shared, so clones are cheap.
    pub name: Arc<str>,
    /// The value and its type.
    pub value: MetricValue,
    /// Tags, sorted and de-duplicated.
    pub tags: Tags,
    /// When the value was observed.
    pub timestamp: Timestamp,
}

impl Metric {
    /// Builds a metric.
    pub fn new(
        name: impl Into<Arc<str>>,
        value: MetricValue,
        tags: Tags,
        timestamp: Timestamp,
    ) -> Self {
        Self {
            name: name.into(),
            value,
            tags,
            timestamp,
        }
    }

    /// The metric name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_and_scalars() {
        let cases = [
            (MetricValue::Gauge(1.0), "gauge", Some(1.0)),
            (MetricValue::Count(2.0), "count", Some(2.0)),
            (
                MetricValue::MonotonicCount(3.0),
                "monotonic_count",
                Some(3.0),
            ),
            (
                MetricValue::HistogramBucket {
                    count: 4,
                    lower_bound: f64::NEG_INFINITY,
                    upper_bound: 1.0,
                    monotonic: false,
                },
                "histogram_bucket",
                Some(4.0),
            ),
            (MetricValue::Distribution(vec![1.0]), "distribution", None),
        ];
        for (v, name, scalar) in cases {
            assert_eq!(v.type_name(), name);
            assert_eq!(v.as_f64(), scalar);
        }
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serde_shape() {
        let m = Metric::new(
            "a.b",
            MetricValue::Gauge(1.5),
            "k:v".parse().unwrap(),
            Timestamp(7),
        );
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(
            json,
            r#"{"name":"a.b","value":{"type":"gauge","value":1.5},"tags":["k:v"],"timestamp":7}"#
        );
        let back: Metric = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
    }
}
