//! Seasonality: given, or detected from the data.
//!
//! # Detection method
//!
//! [`SeasonalityDetector`] keeps a bounded, time-binned history of the series: at most
//! [`SeasonalityDetector::CAPACITY`] bins holding the mean of the points that fell in
//! them. The first bin width is the first sampling interval seen; when the bins are
//! full, neighbours are merged pairwise and the width doubles, so memory stays fixed
//! (6 KiB) whatever the history length.
//!
//! Each candidate period `p` (hourly, daily, weekly) is tested once, when the history
//! first spans `2.5p` (and gives at least 32 pairs of bins one period apart; otherwise
//! the test is retried as the history grows by half, up to `8p`) and holds at least 4 bins per period: the binned series is
//! detrended by a centred moving average of length `p` (which removes level and trend
//! but keeps a `p`-periodic shape), and the lag-`p` autocorrelation of the remainder,
//! `r(p)`, is computed over the bins present at both ends of the lag. A period is
//! accepted when `r(p) ≥ max(0.3, 2.5/√pairs)` (significant against white noise) and
//! `r(p) ≥ r(p/2) + 0.1` (a smooth remainder, e.g. a slower cycle, correlates better at
//! the shorter lag); a longer period replaces a shorter one only when, on
//! the same remainder, its `r` beats the shorter period's by 0.1 (a daily pattern also
//! repeats weekly, so weekly must explain clearly more). Once the weekly test has run, the history is freed.
//!
//! ```
//! use meshmon_alert::seasonality::{Seasonality, SeasonalityDetector};
//! use meshmon_core::Timestamp;
//!
//! let mut det = SeasonalityDetector::default();
//! for i in 0..(4 * 288) {
//!     // 5-minute points, a daily sine
//!     let t = i as f64 * 300.0;
//!     let v = 10.0 + (t / 86_400.0 * std::f64::consts::TAU).sin();
//!     det.observe(Timestamp::from_secs(i * 300), v);
//! }
//! assert_eq!(det.detected(), Some(Seasonality::Daily));
//! ```

use meshmon_core::Timestamp;
use serde::{Deserialize, Serialize};

const NS_PER_SEC: i64 = 1_000_000_000;

/// A seasonality setting: none, a named period, a custom period, or `Auto` (detected).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Seasonality {
    /// Detect from the data (see the module docs).
    #[default]
    Auto,
    /// No seasonality.
    None,
    /// One hour.
    Hourly,
    /// One day.
    Daily,
    /// One week.
    Weekly,
    /// A custom period in seconds.
    Custom(u32),
}

impl Seasonality {
    /// The period in seconds, if any (`None` for `Auto` and `None`).
    pub fn period_secs(self) -> Option<i64> {
        match self {
            Self::Auto | Self::None => None,
            Self::Hourly => Some(3_600),
            Self::Daily => Some(86_400),
            Self::Weekly => Some(604_800),
            Self::Custom(s) => Some(i64::from(s.max(1))),
        }
    }
}

impl std::str::FromStr for Seasonality {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "auto" => Self::Auto,
            "none" => Self::None,
            "hourly" => Self::Hourly,
            "daily" => Self::Daily,
            "weekly" => Self::Weekly,
            other => {
                return other.parse::<u32>().map(Self::Custom).map_err(|_| {
                    format!("unknown seasonality {other:?} (auto|none|hourly|daily|weekly|SECONDS)")
                });
            }
        })
    }
}

/// Bounded, time-binned history that detects hourly, daily or weekly seasonality.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SeasonalityDetector {
    start: Option<i64>,
    last: Option<i64>,
    width_ns: i64,
    sums: Vec<f64>,
    counts: Vec<u32>,
    /// Bit i set: candidate i has been tested.
    tested: u8,
    /// Span (ns) before which candidate i is not retried.
    next_try: [i64; 3],
    best: Option<(Seasonality, f64)>,
    done: bool,
    /// Points observed.
    points: u64,
}

const CANDIDATES: [Seasonality; 3] = [Seasonality::Hourly, Seasonality::Daily, Seasonality::Weekly];
/// Minimum lag autocorrelation for a period to be accepted.
const MIN_ACF: f64 = 0.3;
/// Minimum number of bin pairs behind an autocorrelation.
const MIN_PAIRS: usize = 32;
/// How much a longer period must beat a shorter one by.
const LONGER_MARGIN: f64 = 0.1;

impl SeasonalityDetector {
    /// Maximum number of history bins.
    pub const CAPACITY: usize = 512;

    /// The detected seasonality so far (`None` until a period is accepted).
    pub fn detected(&self) -> Option<Seasonality> {
        self.best.map(|b| b.0)
    }

    /// Whether every candidate has been tested (the history is then freed).
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Bytes of heap memory held.
    pub fn heap_bytes(&self) -> usize {
        self.sums.capacity() * 8 + self.counts.capacity() * 4
    }

    /// Feeds one point (finite values only; timestamps must not go backwards).
    /// Returns `true` when the detected seasonality changed with this point.
    pub fn observe(&mut self, ts: Timestamp, value: f64) -> bool {
        if self.done || !value.is_finite() {
            return false;
        }
        let t = ts.as_nanos();
        if let Some(last) = self.last
            && t < last
        {
            return false;
        }
        self.points += 1;
        let start = match self.start {
            Some(s) => s,
            None => {
                self.start = Some(t);
                self.last = Some(t);
                self.sums = Vec::new();
                self.counts = Vec::new();
                self.sums.push(value);
                self.counts.push(1);
                return false;
            }
        };
        if self.width_ns == 0 {
            let gap = t - start;
            if gap == 0 {
                self.sums[0] += value;
                self.counts[0] += 1;
                return false;
            }
            self.width_ns = gap.max(NS_PER_SEC);
        }
        self.last = Some(t);
        let mut idx = ((t - start) / self.width_ns) as usize;
        while idx >= Self::CAPACITY {
            self.merge();
            idx = ((t - start) / self.width_ns) as usize;
        }
        if idx >= self.sums.len() {
            self.sums.resize(idx + 1, 0.0);
            self.counts.resize(idx + 1, 0);
        }
        self.sums[idx] += value;
        self.counts[idx] += 1;
        self.maybe_test(t - start)
    }

    fn merge(&mut self) {
        let n = self.sums.len();
        let half = n.div_ceil(2);
        for i in 0..half {
            let (a, b) = (2 * i, 2 * i + 1);
            let (s, c) = if b < n {
                (self.sums[a] + self.sums[b], self.counts[a] + self.counts[b])
            } else {
                (self.sums[a], self.counts[a])
            };
            self.sums[i] = s;
            self.counts[i] = c;
        }
        self.sums.truncate(half);
        self.counts.truncate(half);
        self.width_ns *= 2;
    }

    fn maybe_test(&mut self, span_ns: i64) -> bool {
        let before = self.detected();
        for (i, cand) in CANDIDATES.iter().enumerate() {
            if self.tested & (1 << i) != 0 {
                continue;
            }
            let p = cand.period_secs().unwrap_or(1) * NS_PER_SEC;
            if span_ns < 5 * p / 2 || span_ns < self.next_try[i] {
                continue;
            }
            let lag = (p / self.width_ns.max(1)) as usize;
            if lag < 4 {
                self.tested |= 1 << i; // too coarse to see this period
                continue;
            }
            let Some((r, pairs)) = self.acf(lag, lag).filter(|&(_, k)| k >= MIN_PAIRS) else {
                // Not enough overlapping bins yet: retry when the history is 1.5× longer,
                // give up after 8 periods.
                if span_ns >= 8 * p {
                    self.tested |= 1 << i;
                } else {
                    self.next_try[i] = span_ns + span_ns / 2;
                }
                continue;
            };
            self.tested |= 1 << i;
            // Significance: r must clear both the floor and 2.5 standard errors of an
            // autocorrelation estimated from `pairs` pairs of white noise.
            if r < MIN_ACF.max(2.5 / (pairs as f64).sqrt()) {
                continue;
            }
            // A period repeats at its full lag better than at half of it; a smooth
            // remainder (slow drift, a longer cycle) is the other way round.
            if self
                .acf(lag, lag / 2)
                .is_some_and(|(rh, _)| rh + LONGER_MARGIN > r)
            {
                continue;
            }
            // A longer period must explain clearly more than the current one on the same
            // (longer-detrended) remainder.
            let replace = match self.best {
                None => true,
                Some((shorter, _)) => {
                    let short_lag = (shorter.period_secs().unwrap_or(1) * NS_PER_SEC
                        / self.width_ns.max(1)) as usize;
                    self.acf(lag, short_lag)
                        .is_none_or(|(rs, _)| r >= rs + LONGER_MARGIN)
                }
            };
            if replace {
                self.best = Some((*cand, r));
            }
        }
        if self.tested == 0b111 {
            self.done = true;
            self.sums = Vec::new();
            self.counts = Vec::new();
        }
        self.detected() != before
    }

    /// The average shape of one `period_secs` period over the history, in `buckets`
    /// buckets by phase (`t mod period`), detrended by a centred moving average over one
    /// period; `None` for buckets no bin fell in. Used to seed a seasonal profile the
    /// moment a period is detected.
    pub fn profile(&self, period_secs: i64, buckets: usize) -> Vec<Option<f64>> {
        let mut out = vec![None; buckets];
        let Some(start) = self.start else { return out };
        let period_ns = period_secs.max(1) * NS_PER_SEC;
        let lag = (period_ns / self.width_ns.max(1)) as usize;
        let n = self.sums.len();
        if buckets == 0 || lag < 2 || n < lag {
            return out;
        }
        let resid = self.detrended(lag);
        let mut per: Vec<Vec<f64>> = vec![Vec::new(); buckets];
        for (i, r) in resid.iter().enumerate() {
            if r.is_finite() {
                // Phase of the bin centre.
                let t = start + i as i64 * self.width_ns + self.width_ns / 2;
                let phase = t.rem_euclid(period_ns);
                let b = ((phase as i128 * buckets as i128) / period_ns as i128) as usize;
                if let Some(v) = per.get_mut(b) {
                    v.push(*r);
                }
            }
        }
        // The median over the periods seen (an incident in one period does not become
        // part of the shape).
        for (o, v) in out.iter_mut().zip(&mut per) {
            if !v.is_empty() {
                v.sort_by(f64::total_cmp);
                let m = v.len() / 2;
                *o = Some(if v.len() % 2 == 1 {
                    v[m]
                } else {
                    0.5 * (v[m - 1] + v[m])
                });
            }
        }
        // Buckets finer than the history's bins got no bin: interpolate them linearly
        // (circularly) between their seeded neighbours, so the profile is not a comb.
        let seeded: Vec<usize> = (0..buckets).filter(|&b| out[b].is_some()).collect();
        if seeded.len() >= 2 {
            for (k, &a) in seeded.iter().enumerate() {
                let b = seeded[(k + 1) % seeded.len()];
                let gap = (b + buckets - a) % buckets;
                let (va, vb) = (out[a].unwrap_or(0.0), out[b].unwrap_or(0.0));
                for j in 1..gap {
                    let w = j as f64 / gap as f64;
                    out[(a + j) % buckets] = Some(va + w * (vb - va));
                }
            }
        }
        out
    }

    fn detrended(&self, detrend: usize) -> Vec<f64> {
        let n = self.sums.len();
        let mean: Vec<f64> = self
            .sums
            .iter()
            .zip(&self.counts)
            .map(|(&s, &c)| if c > 0 { s / f64::from(c) } else { f64::NAN })
            .collect();
        let mut ps = vec![0.0; n + 1];
        let mut pc = vec![0u32; n + 1];
        for i in 0..n {
            let ok = mean[i].is_finite();
            ps[i + 1] = ps[i] + if ok { mean[i] } else { 0.0 };
            pc[i + 1] = pc[i] + u32::from(ok);
        }
        let half = detrend / 2;
        (0..n)
            .map(|i| {
                if !mean[i].is_finite() || i < half || i + detrend - half > n {
                    return f64::NAN;
                }
                let (a, b) = (i - half, i - half + detrend);
                let c = pc[b] - pc[a];
                if c * 2 < detrend as u32 {
                    return f64::NAN;
                }
                mean[i] - (ps[b] - ps[a]) / f64::from(c)
            })
            .collect()
    }

    /// Lag-`lag` autocorrelation of the bin means, detrended by a centred moving average
    /// of length `detrend`.
    fn acf(&self, detrend: usize, lag: usize) -> Option<(f64, usize)> {
        let n = self.sums.len();
        if n < 2 * detrend || lag == 0 {
            return None;
        }
        let resid = self.detrended(detrend);
        // The correlation is scale-free: dividing by the largest residual keeps the sums of
        // squares finite for any input (values up to `MAX_VALUE`, 1e150, squared and summed
        // overflowed to inf, and the coefficient became NaN).
        let scale = resid
            .iter()
            .filter(|r| r.is_finite())
            .fold(0.0f64, |m, r| m.max(r.abs()));
        // Residuals within the rounding error of the moving average's prefix sums (n bins
        // of the series' level, each off by up to one ulp) are no variation: a flat series
        // at 9e149 leaves a rounding pattern that correlates with itself.
        let level = self
            .sums
            .iter()
            .zip(&self.counts)
            .filter(|&(_, &c)| c > 0)
            .fold(0.0f64, |m, (&s, &c)| m.max((s / f64::from(c)).abs()));
        let noise_floor = 64.0 * n as f64 * f64::EPSILON * level;
        if !(scale > noise_floor && scale.is_finite()) {
            return None;
        }
        let (mut sxy, mut sxx, mut syy, mut sx, mut sy, mut k) = (0.0, 0.0, 0.0, 0.0, 0.0, 0usize);
        for i in 0..n - lag {
            let (x, y) = (resid[i] / scale, resid[i + lag] / scale);
            if x.is_finite() && y.is_finite() {
                sx += x;
                sy += y;
                sxy += x * y;
                sxx += x * x;
                syy += y * y;
                k += 1;
            }
        }
        if k < 8 {
            return None;
        }
        let kf = k as f64;
        let cov = sxy - sx * sy / kf;
        let vx = sxx - sx * sx / kf;
        let vy = syy - sy * sy / kf;
        let r = cov / (vx * vy).sqrt();
        if !(vx > 0.0 && vy > 0.0 && r.is_finite()) {
            return None;
        }
        Some((r.clamp(-1.0, 1.0), k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(period_s: f64, days: i64, step_s: i64, weekend: bool) -> Option<Seasonality> {
        feed(period_s, days, step_s, weekend, 1.0).detected()
    }

    fn feed(
        period_s: f64,
        days: i64,
        step_s: i64,
        weekend: bool,
        scale: f64,
    ) -> SeasonalityDetector {
        let mut det = SeasonalityDetector::default();
        let mut state = 12345u64;
        for i in 0..(days * 86_400 / step_s) {
            let t = (i * step_s) as f64;
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let noise = ((state >> 33) as f64 / (1u64 << 31) as f64 - 0.5) * 0.4;
            let mut v = 50.0 + 10.0 * (t / period_s * std::f64::consts::TAU).sin() + noise;
            if weekend && ((t / 86_400.0) as i64 % 7) >= 5 {
                v -= 25.0;
            }
            det.observe(Timestamp::from_secs(i * step_s), v * scale);
        }
        det
    }

    /// Found by the `csv_and_detect` fuzz target: values near `MAX_VALUE` (1e150) made the
    /// autocorrelation's sums of squares overflow, the coefficient NaN, and a NaN score
    /// was kept as the best period, which JSON writes as `null` and cannot read back
    /// (the detector's state did not survive a restart).
    #[test]
    fn huge_values_keep_the_period_and_a_state_that_round_trips() {
        let det = feed(3_600.0, 3, 60, false, 1e148);
        assert_eq!(det.detected(), Some(Seasonality::Hourly));
        assert!(det.best.is_some_and(|(_, r)| r.is_finite() && r <= 1.0));
        let json = serde_json::to_string(&det).unwrap();
        let back: SeasonalityDetector = serde_json::from_str(&json).unwrap();
        assert_eq!(back.detected(), Some(Seasonality::Hourly));
        // A series that is all huge and flat has no period, and no NaN either.
        let mut flat = SeasonalityDetector::default();
        for i in 0..3 * 1440 {
            flat.observe(Timestamp::from_secs(i * 60), 9e149);
        }
        assert_eq!(flat.detected(), None);
        let json = serde_json::to_string(&flat).unwrap();
        assert!(
            serde_json::from_str::<SeasonalityDetector>(&json).is_ok(),
            "{json}"
        );
    }

    #[test]
    fn detects_daily_hourly_none() {
        assert_eq!(run(86_400.0, 4, 300, false), Some(Seasonality::Daily));
        assert_eq!(run(3_600.0, 3, 60, false), Some(Seasonality::Hourly));
        // Noise only (a sine with an enormous period is a trend).
        assert_eq!(run(1e9, 20, 600, false), None);
    }

    #[test]
    fn detects_weekly() {
        assert_eq!(run(86_400.0, 28, 300, true), Some(Seasonality::Weekly));
        // Without the weekend dip the same series is daily.
        assert_eq!(run(86_400.0, 28, 300, false), Some(Seasonality::Daily));
    }

    #[test]
    fn parse() {
        assert_eq!("weekly".parse::<Seasonality>(), Ok(Seasonality::Weekly));
        assert_eq!("600".parse::<Seasonality>(), Ok(Seasonality::Custom(600)));
        assert!("often".parse::<Seasonality>().is_err());
    }
}
