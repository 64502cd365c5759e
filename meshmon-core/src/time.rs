//! Time as the hot paths carry it: nanoseconds since the Unix epoch.
//!
//! Library crates never read a clock; callers pass a [`Timestamp`] in. Human time
//! formats are parsed and printed at the edges (the agent).
//!
//! ```
//! use meshmon_core::Timestamp;
//! let t = Timestamp::from_millis(1_500);
//! assert_eq!(t.as_nanos(), 1_500_000_000);
//! assert_eq!(t.as_secs_f64(), 1.5);
//! assert_eq!(Timestamp::from_secs(2) - t, std::time::Duration::from_millis(500));
//! ```

use std::time::Duration;

/// Nanoseconds since the Unix epoch (1970-01-01T00:00:00Z). Negative values are before
/// the epoch; `i64` covers the years 1677 to 2262.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The epoch itself.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// From nanoseconds.
    pub const fn from_nanos(ns: i64) -> Self {
        Self(ns)
    }

    /// From microseconds (saturating).
    pub const fn from_micros(us: i64) -> Self {
        Self(us.saturating_mul(1_000))
    }

    /// From milliseconds (saturating), the unit of Prometheus timestamps.
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms.saturating_mul(1_000_000))
    }

    /// From whole seconds (saturating).
    pub const fn from_secs(s: i64) -> Self {
        Self(s.saturating_mul(1_000_000_000))
    }

    /// From fractional seconds; `None` for NaN or values outside the representable range.
    pub fn from_secs_f64(s: f64) -> Option<Self> {
        let ns = (s * 1e9).round();
        // i64::MAX as f64 rounds up to 2^63, which is out of range: compare strictly.
        if ns.is_finite() && ns >= i64::MIN as f64 && ns < i64::MAX as f64 {
            Some(Self(ns as i64))
        } else {
            None
        }
    }

    /// Nanoseconds since the epoch.
    pub const fn as_nanos(self) -> i64 {
        self.0
    }

    /// Milliseconds since the epoch (floor).
    pub const fn as_millis(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }

    /// Whole seconds since the epoch (floor).
    pub const fn as_secs(self) -> i64 {
        self.0.div_euclid(1_000_000_000)
    }

    /// Seconds since the epoch as a float.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }

    /// `self + d`, saturating.
    pub fn saturating_add(self, d: Duration) -> Self {
        let ns = i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        Self(self.0.saturating_add(ns))
    }

    /// The duration from `earlier` to `self`, or zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Timestamp) -> Duration {
        Duration::from_nanos(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }
}

impl std::ops::Sub for Timestamp {
    type Output = Duration;
    /// Same as [`Timestamp::saturating_since`].
    fn sub(self, rhs: Timestamp) -> Duration {
        self.saturating_since(rhs)
    }
}

impl std::ops::Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, rhs: Duration) -> Timestamp {
        self.saturating_add(rhs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        assert_eq!(Timestamp::from_micros(3).as_nanos(), 3_000);
        assert_eq!(Timestamp::from_secs(-1).as_millis(), -1_000);
        assert_eq!(Timestamp::from_nanos(-1).as_secs(), -1);
        assert_eq!(
            Timestamp::from_secs_f64(1.25),
            Some(Timestamp(1_250_000_000))
        );
        assert_eq!(Timestamp::from_secs_f64(f64::NAN), None);
        assert_eq!(Timestamp::from_secs_f64(1e30), None);
        assert_eq!(Timestamp::from_millis(i64::MAX), Timestamp(i64::MAX));
    }

    #[test]
    fn arithmetic_saturates() {
        let t = Timestamp::from_secs(10);
        assert_eq!(Timestamp::from_secs(5) - t, Duration::ZERO);
        assert_eq!(t + Duration::from_secs(1), Timestamp::from_secs(11));
        assert_eq!(
            Timestamp(i64::MAX) + Duration::from_secs(1),
            Timestamp(i64::MAX)
        );
    }
}
