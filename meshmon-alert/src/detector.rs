//! The streaming detector shape shared by `basic`, `agile` and `robust`.
//!
//! Feed `(timestamp, value)` to [`Detector::update`] and get an [`Estimate`]: the
//! expected value, the band `[lower, upper]` (`expected ± bounds·σ`, σ being the
//! model's robust scale), an anomaly `score` in `[0, 1]` and whether the point is
//! `anomalous` (outside the band after warm-up, and either rare — score ≥ 0.5 before
//! episode damping — or continuing an anomalous run on the same side).
//!
//! # Score
//!
//! The score measures *rarity*, not distance to the band. With `d = |value − expected|`
//! and `d̄` its short-term exponential average (rate `short_rate`), each is ranked in
//! the series' own decaying history of such deviations (a log-scale histogram with a
//! half-life of `history_half_life` points): `p = min(tail(d), tail(d̄))`, doubled
//! (Bonferroni over the two signals), and mapped with `l = −log10 p` to
//! `l² / (l² + rarity_half²)`, so a deviation as rare as a 3σ normal excursion
//! (`rarity_half` = 2.57) scores 0.5. The score is **episode-aware**: only a new high
//! over a decaying recent peak (half-life `episode_points`) counts in full, later
//! points' scores are multiplied by `episode_damping`, so a threshold on the score
//! fires once per episode (what NAB rewards, and what a person wants).
//!
//! # Input handling
//!
//! - NaN / infinite values (and values beyond ±[`MAX_VALUE`]) are skipped: the state
//!   is untouched, the estimate carries the current expectation with score 0, and
//!   [`DetectorStats::non_finite`] counts it.
//! - Timestamps going backwards are skipped the same way
//!   ([`DetectorStats::out_of_order`]); equal timestamps are accepted.
//! - Irregular spacing is fine: the seasonal phase comes from the timestamp, the rest
//!   is per point. A gap longer than `max_gap` (default 1 day) re-enters a short
//!   warm-up (`warmup_points / 4` points, [`DetectorStats::gaps`]).
//! - Warm-up: the first `warmup_points` valid points are never anomalous (score 0).
//!
//! # State and determinism
//!
//! The whole state (config, model, counters) is plain data with serde, so a detector
//! can be persisted and resumed; the same inputs always give the same outputs (no
//! clock, no randomness). Memory per series: [`Detector::heap_bytes`] plus the struct
//! (documented per algorithm in the README).

use std::time::Duration;

use meshmon_core::Timestamp;
use serde::{Deserialize, Serialize};

use crate::agile::AgileModel;
use crate::basic::BasicModel;
use crate::robust::RobustModel;
use crate::seasonality::{Seasonality, SeasonalityDetector};
use crate::tail::TailHistogram;

/// Values beyond `±1e150` are treated like NaN (skipped and counted), so no arithmetic
/// on the state can overflow to infinity (and the state always serialises to JSON).
pub const MAX_VALUE: f64 = 1e150;

/// What a detector says about one point.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Estimate {
    /// The value the model expected.
    pub expected: f64,
    /// Lower edge of the normal band.
    pub lower: f64,
    /// Upper edge of the normal band.
    pub upper: f64,
    /// Anomaly score in `[0, 1]` (0.5 on the band edge; damped inside an episode).
    pub score: f64,
    /// Outside the band after warm-up, and rare or continuing an anomalous run (what
    /// NAB's scoring and the Watchdog use).
    pub anomalous: bool,
    /// Outside the band (strictly), after warm-up: Datadog's definition of an
    /// anomalous point, what [`crate::anomaly::AnomalyMonitor`] counts.
    #[serde(default)]
    pub outside: bool,
}

/// Which model to run (Datadog's names).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// Lagging rolling quantiles, no seasonality; adapts fast.
    Basic,
    /// Seasonal level model that follows level shifts quickly.
    #[default]
    Agile,
    /// Seasonal-trend decomposition, stable through long anomalies.
    Robust,
}

impl std::str::FromStr for Algorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "basic" => Ok(Self::Basic),
            "agile" => Ok(Self::Agile),
            "robust" => Ok(Self::Robust),
            o => Err(format!("unknown algorithm {o:?} (basic|agile|robust)")),
        }
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Basic => "basic",
            Self::Agile => "agile",
            Self::Robust => "robust",
        })
    }
}

/// Detector configuration. The defaults are the configuration measured on NAB (one
/// configuration for every series).
///
/// Build it with [`DetectorConfig::new`] and the `with_*` methods (or set the public
/// fields); [`Detector::new`] validates it ([`DetectorConfig::validate`]).
///
/// ```
/// use meshmon_alert::{Algorithm, ConfigError, Detector, DetectorConfig, Seasonality};
///
/// let cfg = DetectorConfig::new(Algorithm::Robust)
///     .with_bounds(2.5)
///     .with_seasonality(Seasonality::Daily);
/// assert!(Detector::new(cfg).is_ok());
/// let bad = DetectorConfig::new(Algorithm::Basic).with_bounds(f64::NAN);
/// assert!(matches!(Detector::new(bad), Err(ConfigError::Invalid { field: "bounds", .. })));
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct DetectorConfig {
    /// The model.
    pub algorithm: Algorithm,
    /// Band half-width in robust standard deviations (Datadog's `bounds`; 2–3 typical).
    pub bounds: f64,
    /// Seasonality (`basic` ignores it).
    pub seasonality: Seasonality,
    /// Valid points before anything can be anomalous.
    pub warmup_points: u32,
    /// Anomalous points closer than this (in points) belong to one episode.
    pub episode_points: u32,
    /// Score multiplier for points after the first of an episode.
    pub episode_damping: f64,
    /// `basic`: the rolling window length in points.
    pub window_points: u32,
    /// Seasonal profile resolution cap (buckets per period).
    pub max_season_buckets: u32,
    /// A gap longer than this re-enters a short warm-up.
    pub max_gap: Duration,
    /// Rate of the short-term average deviation (the second rarity signal, which sees
    /// sustained shifts and variance changes that no single point shows).
    pub short_rate: f64,
    /// Half-life, in points, of the deviation history the rarity is measured against.
    pub history_half_life: f64,
    /// `−log10` of the tail probability that scores 0.5 (2.57 = the two-sided tail of
    /// a normal beyond 3σ).
    pub rarity_half: f64,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            algorithm: Algorithm::Agile,
            bounds: 3.0,
            seasonality: Seasonality::Auto,
            warmup_points: 32,
            episode_points: 400,
            episode_damping: 0.0,
            window_points: 128,
            max_season_buckets: 288,
            max_gap: Duration::from_secs(86_400),
            short_rate: 0.1,
            history_half_life: 3000.0,
            rarity_half: 2.57,
        }
    }
}

/// An invalid configuration value (detector or monitor).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A field is out of its range.
    #[error("{field} = {value}: {reason}")]
    Invalid {
        /// The field (`bounds`, `trigger_window`, …).
        field: &'static str,
        /// Its value, as text.
        value: String,
        /// The accepted range.
        reason: &'static str,
    },
}

impl ConfigError {
    pub(crate) fn invalid(
        field: &'static str,
        value: impl std::fmt::Debug,
        reason: &'static str,
    ) -> Self {
        Self::Invalid {
            field,
            value: format!("{value:?}"),
            reason,
        }
    }
}

/// Largest accepted `bounds` (a band wider than a million σ flags nothing).
pub const MAX_BOUNDS: f64 = 1e6;
/// Largest accepted `window_points` and `max_season_buckets` (memory per series).
pub const MAX_WINDOW_POINTS: u32 = 1 << 20;

impl DetectorConfig {
    /// The default configuration for `algorithm`.
    pub fn new(algorithm: Algorithm) -> Self {
        Self {
            algorithm,
            ..Self::default()
        }
    }

    /// Sets [`bounds`](Self::bounds).
    #[must_use]
    pub fn with_bounds(mut self, bounds: f64) -> Self {
        self.bounds = bounds;
        self
    }

    /// Sets [`seasonality`](Self::seasonality).
    #[must_use]
    pub fn with_seasonality(mut self, seasonality: Seasonality) -> Self {
        self.seasonality = seasonality;
        self
    }

    /// Sets [`warmup_points`](Self::warmup_points).
    #[must_use]
    pub fn with_warmup_points(mut self, points: u32) -> Self {
        self.warmup_points = points;
        self
    }

    /// Sets [`window_points`](Self::window_points) (`basic`).
    #[must_use]
    pub fn with_window_points(mut self, points: u32) -> Self {
        self.window_points = points;
        self
    }

    /// Checks every field's range: `bounds` finite in `(0, 1e6]`, `window_points` in
    /// `4..=2²⁰`, `max_season_buckets` in `1..=2²⁰`, `episode_points ≥ 1`,
    /// `episode_damping` in `[0, 1]`, `max_gap > 0`, `short_rate` in `(0, 1]`,
    /// `history_half_life ≥ 1` and `rarity_half > 0` (finite).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.bounds.is_finite() && self.bounds > 0.0 && self.bounds <= MAX_BOUNDS) {
            return Err(ConfigError::invalid(
                "bounds",
                self.bounds,
                "must be a finite number in (0, 1e6]",
            ));
        }
        if !(4..=MAX_WINDOW_POINTS).contains(&self.window_points) {
            return Err(ConfigError::invalid(
                "window_points",
                self.window_points,
                "must be in 4..=1048576",
            ));
        }
        if !(1..=MAX_WINDOW_POINTS).contains(&self.max_season_buckets) {
            return Err(ConfigError::invalid(
                "max_season_buckets",
                self.max_season_buckets,
                "must be in 1..=1048576",
            ));
        }
        if self.episode_points == 0 {
            return Err(ConfigError::invalid(
                "episode_points",
                0,
                "must be at least 1",
            ));
        }
        if !(0.0..=1.0).contains(&self.episode_damping) {
            return Err(ConfigError::invalid(
                "episode_damping",
                self.episode_damping,
                "must be in [0, 1]",
            ));
        }
        if self.max_gap.is_zero() {
            return Err(ConfigError::invalid(
                "max_gap",
                self.max_gap,
                "must be positive",
            ));
        }
        if !(self.short_rate > 0.0 && self.short_rate <= 1.0) {
            return Err(ConfigError::invalid(
                "short_rate",
                self.short_rate,
                "must be in (0, 1]",
            ));
        }
        if !(self.history_half_life.is_finite() && self.history_half_life >= 1.0) {
            return Err(ConfigError::invalid(
                "history_half_life",
                self.history_half_life,
                "must be a finite number of points >= 1",
            ));
        }
        if !(self.rarity_half.is_finite() && self.rarity_half > 0.0) {
            return Err(ConfigError::invalid(
                "rarity_half",
                self.rarity_half,
                "must be a finite positive number",
            ));
        }
        Ok(())
    }
}

/// Counters of inputs the detector could not use as-is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetectorStats {
    /// Valid points learned from.
    pub points: u64,
    /// NaN / infinite values skipped.
    pub non_finite: u64,
    /// Points whose timestamp went backwards, skipped.
    pub out_of_order: u64,
    /// Gaps longer than `max_gap`.
    pub gaps: u64,
    /// Anomalous points.
    pub anomalous: u64,
    /// Episodes (first anomalous points).
    pub episodes: u64,
}

/// A model's expectation for the next point.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Prediction {
    pub expected: f64,
    pub scale: f64,
}

/// A position within the seasonal period (see [`SeasonProfile::bucket`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Phase {
    b0: usize,
    b1: usize,
    w: f64,
}

/// A seasonal profile: `buckets` additive offsets over one period, indexed by the
/// timestamp's phase.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct SeasonProfile {
    period_ns: i64,
    values: Vec<f64>,
    counts: Vec<u32>,
    /// Slow de-seasonalised baseline the profile learns against (so a fast level
    /// cannot absorb the seasonal shape), its point count and rate (one period).
    base: f64,
    base_n: u64,
    base_rate: f64,
}

impl SeasonProfile {
    pub(crate) fn new(period_secs: Option<i64>, interval_ns: i64, max_buckets: u32) -> Self {
        let Some(p) = period_secs else {
            return Self::default();
        };
        let period_ns = p * 1_000_000_000;
        let per_period = (period_ns / interval_ns.max(1)).max(1);
        let n = per_period.clamp(1, i64::from(max_buckets.max(1))) as usize;
        Self {
            period_ns,
            values: vec![0.0; n],
            counts: vec![0; n],
            base: 0.0,
            base_n: 0,
            base_rate: (1.0 / per_period as f64).clamp(0.001, 0.1),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.values.len()
    }

    /// Starts from a detected shape (as if each bucket had seen a few points).
    pub(crate) fn seed(&mut self, shape: &[Option<f64>]) {
        for ((v, c), s) in self.values.iter_mut().zip(&mut self.counts).zip(shape) {
            if let Some(s) = s {
                *v = *s;
                *c = 1;
            }
        }
    }

    /// Starts the slow baseline at `base` (the model's current de-seasonalised level)
    /// instead of the first value it sees, which may be an anomaly.
    pub(crate) fn set_base(&mut self, base: f64) {
        if base.is_finite() {
            self.base = base;
            self.base_n = 1;
        }
    }

    pub(crate) fn is_active(&self) -> bool {
        !self.values.is_empty()
    }

    /// Where `ts` falls in the period: between bucket centres `b0` and `b1`, weight `w`
    /// on `b1` (the profile is interpolated linearly, so it is continuous in phase).
    pub(crate) fn bucket(&self, ts: Timestamp) -> Phase {
        let n = self.values.len();
        if n == 0 {
            return Phase {
                b0: 0,
                b1: 0,
                w: 0.0,
            };
        }
        let phase = ts.as_nanos().rem_euclid(self.period_ns);
        let x = phase as f64 / self.period_ns as f64 * n as f64 - 0.5;
        let f = x.floor();
        let b0 = (f as i64).rem_euclid(n as i64) as usize;
        Phase {
            b0,
            b1: (b0 + 1) % n,
            w: x - f,
        }
    }

    pub(crate) fn get(&self, p: Phase) -> f64 {
        match (self.values.get(p.b0), self.values.get(p.b1)) {
            (Some(a), Some(b)) => a + p.w * (b - a),
            _ => 0.0,
        }
    }

    /// Moves the interpolated value at `p` towards `target` (each of the two buckets by
    /// its interpolation weight) at rate `max(1/n, rate)`, `n` the nearer bucket's count.
    pub(crate) fn learn(&mut self, p: Phase, target: f64, rate: f64) {
        let err = target - self.get(p);
        let near = if p.w < 0.5 { p.b0 } else { p.b1 };
        let Some(c) = self.counts.get_mut(near) else {
            return;
        };
        *c = c.saturating_add(1);
        let r = (1.0 / f64::from(*c)).max(rate);
        if let Some(v) = self.values.get_mut(p.b0) {
            *v += r * (1.0 - p.w) * err;
        }
        if let Some(v) = self.values.get_mut(p.b1) {
            *v += r * p.w * err;
        }
    }

    /// Learns from one value: the slow baseline moves (residual clipped to `±clip`),
    /// and the profile at `p` moves towards `x − baseline` (clipped likewise).
    pub(crate) fn observe(&mut self, p: Phase, x: f64, rate: f64, clip: f64) {
        let s = self.get(p);
        if self.base_n == 0 {
            self.base = x - s;
        } else {
            let r = (1.0 / self.base_n as f64).max(self.base_rate);
            self.base += r * (x - s - self.base).clamp(-clip, clip);
        }
        self.base_n += 1;
        let target = s + (x - self.base - s).clamp(-clip, clip);
        self.learn(p, target, rate);
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.values.capacity() * 8 + self.counts.capacity() * 4
    }
}

/// The level-and-scale core `agile` and `robust` share: a point count, a level, and
/// the robust scale σ = `1.2533·E|r|` (mean absolute residual times √(π/2)), floored
/// at a fifth of a slow average of itself.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct LevelScale {
    pub(crate) n: u64,
    pub(crate) level: f64,
    mean_abs: f64,
    long_scale: f64,
}

/// Points a level replaced by a level shift is remembered for.
pub(crate) const REVERT_MEMORY: u32 = 512;
/// Out-of-band points in a row back at the remembered level that restore it.
pub(crate) const REVERT_POINTS: u8 = 3;

/// The level a level shift replaced, remembered for [`REVERT_MEMORY`] points: when
/// the series comes back to it (an excursion — an outage, a burst — that lasted long
/// enough to be taken as a new level, then ended), [`REVERT_POINTS`] out-of-band
/// points in a row inside its band restore it at once, instead of the return being
/// a second level shift to learn (and a second alert).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Revert {
    /// The two latest replaced levels (newest first): an excursion long enough to be
    /// taken as a level twice (it drifted) still returns to the level before it.
    slots: [RevertSlot; 2],
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
struct RevertSlot {
    prior: f64,
    left: u32,
    votes: u8,
}

impl Revert {
    /// Whether a replaced level is still remembered (a shift was accepted lately).
    pub(crate) fn active(&self) -> bool {
        self.slots.iter().any(|s| s.left > 0)
    }

    /// A shift replaced level `prior`.
    pub(crate) fn remember(&mut self, prior: f64) {
        self.slots[1] = self.slots[0];
        self.slots[0] = RevertSlot {
            prior,
            left: REVERT_MEMORY,
            votes: 0,
        };
    }

    /// Sees de-seasonalised value `x` (out of band or not); returns the level to
    /// restore when the series is back.
    pub(crate) fn check(&mut self, x: f64, out_of_band: bool, band: f64) -> Option<f64> {
        let mut restore = None;
        for slot in &mut self.slots {
            if slot.left == 0 {
                continue;
            }
            slot.left -= 1;
            if out_of_band && (x - slot.prior).abs() <= band {
                slot.votes += 1;
                if slot.votes >= REVERT_POINTS && restore.is_none() {
                    restore = Some(slot.prior);
                }
            } else {
                slot.votes = 0;
            }
        }
        if restore.is_some() {
            self.slots = Default::default();
        }
        restore
    }
}

/// Rate of the slow scale average that floors σ.
const LONG_SCALE_RATE: f64 = 0.002;

impl LevelScale {
    /// `expected = level + offset + season[bucket]`, `None` before the first point.
    pub(crate) fn predict(
        &self,
        offset: f64,
        season: &SeasonProfile,
        bucket: Phase,
    ) -> Option<Prediction> {
        if self.n == 0 {
            return None;
        }
        Some(Prediction {
            expected: self.level + offset + season.get(bucket),
            scale: (1.2533 * self.mean_abs).max(0.2 * self.long_scale),
        })
    }

    /// Counts the point; on the first one the level is `x` and `true` is returned.
    pub(crate) fn first(&mut self, x: f64) -> bool {
        self.n += 1;
        if self.n == 1 {
            self.level = x;
        }
        self.n == 1
    }

    /// `1/n` while young (so early points average exactly).
    pub(crate) fn warm(&self) -> f64 {
        1.0 / self.n.max(1) as f64
    }

    /// Learns the scale from residual `r` clipped at `clip`, at rate `max(1/n, rate)`.
    /// While `1/n > rate` (the first `1/rate` points) the residuals are not clipped:
    /// the scale is their plain average, so a degenerate start (equal first values,
    /// σ ≈ 0) cannot freeze σ near zero through its own clip.
    pub(crate) fn learn_scale(&mut self, r: f64, clip: f64, rate: f64) {
        let warm = self.warm();
        let clip = if warm > rate { f64::INFINITY } else { clip };
        self.mean_abs += warm.max(rate) * (r.abs().min(clip) - self.mean_abs);
        let s = 1.2533 * self.mean_abs;
        // The floor's slow average sees the residuals unclipped (capped at 20× itself),
        // so zero-inflated series (error ratios, quiet counts: mostly exact zeros)
        // cannot shrink σ to nothing through the clip.
        let raw = 1.2533 * r.abs();
        let cap = 20.0 * self.long_scale.max(s);
        let x = if warm > rate || raw <= cap { raw } else { cap };
        self.long_scale += warm.max(LONG_SCALE_RATE) * (x - self.long_scale);
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Model {
    Basic(BasicModel),
    Agile(AgileModel),
    Robust(RobustModel),
}

/// A streaming anomaly detector for one series.
///
/// ```
/// use meshmon_alert::{Algorithm, Detector, DetectorConfig};
/// use meshmon_core::Timestamp;
///
/// let mut d = Detector::new(DetectorConfig::new(Algorithm::Robust))?;
/// for i in 0..500 {
///     let v = 100.0 + (i % 7) as f64; // steady, small wiggle
///     assert!(!d.update(Timestamp::from_secs(i * 60), v).anomalous);
/// }
/// let e = d.update(Timestamp::from_secs(500 * 60), 180.0);
/// assert!(e.anomalous && e.score > 0.5 && e.upper < 180.0);
/// # Ok::<(), meshmon_alert::ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Detector {
    config: DetectorConfig,
    model: Model,
    season: SeasonProfile,
    season_detector: Option<SeasonalityDetector>,
    last_ts: Option<Timestamp>,
    first_interval_ns: i64,
    warm_left: u32,
    since_anomalous: u32,
    peak: f64,
    peak_decay: f64,
    run_side: i8,
    short_dev: f64,
    tail: TailHistogram,
    tail_short: TailHistogram,
    last: Estimate,
    stats: DetectorStats,
}

impl Detector {
    /// A detector with `config`, after [`DetectorConfig::validate`].
    pub fn new(config: DetectorConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self::new_unchecked(config))
    }

    /// Builds from a config already validated.
    pub(crate) fn new_unchecked(config: DetectorConfig) -> Self {
        let model = match config.algorithm {
            Algorithm::Basic => Model::Basic(BasicModel::new(config.window_points as usize)),
            Algorithm::Agile => Model::Agile(AgileModel::default()),
            Algorithm::Robust => Model::Robust(RobustModel::default()),
        };
        let season_detector = (config.algorithm != Algorithm::Basic
            && config.seasonality == Seasonality::Auto)
            .then(SeasonalityDetector::default);
        let half_life = config.history_half_life;
        let peak_decay = 0.5f64.powf(1.0 / f64::from(config.episode_points.max(1)));
        Self {
            warm_left: config.warmup_points,
            config,
            model,
            season: SeasonProfile::default(),
            season_detector,
            last_ts: None,
            first_interval_ns: 0,
            since_anomalous: u32::MAX,
            peak: 0.0,
            peak_decay,
            run_side: 0,
            short_dev: 0.0,
            tail: TailHistogram::new(half_life),
            tail_short: TailHistogram::new(half_life),
            // All zeros until the first point (finite, so the state always serialises).
            last: Estimate {
                expected: 0.0,
                lower: 0.0,
                upper: 0.0,
                score: 0.0,
                anomalous: false,
                outside: false,
            },
            stats: DetectorStats::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    /// Input counters.
    pub fn stats(&self) -> &DetectorStats {
        &self.stats
    }

    /// The seasonality in use: the configured one, or what detection found so far
    /// (`Seasonality::None` until then). Always `None` for `basic`.
    pub fn seasonality(&self) -> Seasonality {
        if self.config.algorithm == Algorithm::Basic {
            return Seasonality::None;
        }
        match self.config.seasonality {
            Seasonality::Auto => self
                .season_detector
                .as_ref()
                .and_then(|d| d.detected())
                .unwrap_or(Seasonality::None),
            s => s,
        }
    }

    /// Heap bytes held by this detector (the struct itself is `size_of::<Detector>()`).
    pub fn heap_bytes(&self) -> usize {
        let m = match &self.model {
            Model::Basic(m) => m.heap_bytes(),
            Model::Agile(_) | Model::Robust(_) => 0,
        };
        m + self.season.heap_bytes()
            + self.tail.heap_bytes()
            + self.tail_short.heap_bytes()
            + self.season_detector.as_ref().map_or(0, |d| d.heap_bytes())
    }

    fn skipped(&self) -> Estimate {
        Estimate {
            score: 0.0,
            anomalous: false,
            outside: false,
            ..self.last
        }
    }

    /// Scores one point and learns from it.
    pub fn update(&mut self, ts: Timestamp, value: f64) -> Estimate {
        if !value.is_finite() || value.abs() > MAX_VALUE {
            self.stats.non_finite += 1;
            return self.skipped();
        }
        if let Some(last) = self.last_ts {
            if ts < last {
                self.stats.out_of_order += 1;
                return self.skipped();
            }
            // Nanosecond integers: no Duration normalisation on the hot path.
            let gap_ns = ts.as_nanos().saturating_sub(last.as_nanos());
            if self.first_interval_ns == 0 && gap_ns > 0 {
                self.first_interval_ns = gap_ns;
                if self.season_detector.is_none() && self.config.algorithm != Algorithm::Basic {
                    self.season = SeasonProfile::new(
                        self.config.seasonality.period_secs(),
                        self.first_interval_ns,
                        self.config.max_season_buckets,
                    );
                }
            }
            if i128::from(gap_ns) > self.config.max_gap.as_nanos() as i128 {
                self.stats.gaps += 1;
                self.warm_left = self.warm_left.max(self.config.warmup_points / 4);
            }
        }
        self.last_ts = Some(ts);
        if self.season_detector.is_some() {
            // The seasonality history sees values winsorised to the last band once warm,
            // so an incident before detection is not learned as part of the daily shape
            // (it would come back every day at the same hour).
            // While a level accepted lately may be an excursion (it can still be reverted),
            // the history sees the expectation instead.
            let recent_shift = match &self.model {
                Model::Basic(_) => false,
                Model::Agile(m) => m.shifted_recently(),
                Model::Robust(m) => m.shifted_recently(),
            };
            let seen = if self.warm_left == 0 && self.last.upper > self.last.lower {
                if recent_shift {
                    self.last.expected
                } else {
                    value.clamp(self.last.lower, self.last.upper)
                }
            } else {
                value
            };
            if let Some(det) = self.season_detector.as_mut() {
                if det.observe(ts, seen) {
                    let period = det.detected().and_then(|s| s.period_secs());
                    self.season = SeasonProfile::new(
                        period,
                        self.first_interval_ns,
                        self.config.max_season_buckets,
                    );
                    if let Some(p) = period {
                        let shape = det.profile(p, self.season.len());
                        self.season.seed(&shape);
                        if self.stats.points > 1 {
                            self.season.set_base(self.last.expected);
                        }
                    }
                    // The rarity history is kept: it only makes the first points of the new
                    // model conservative. A short re-warm-up covers the switch itself.
                    self.warm_left = self.warm_left.max(self.config.warmup_points);
                }
                if det.is_done() {
                    // Keep the verdict, free the history.
                    let verdict = det.detected();
                    self.config.seasonality = verdict.unwrap_or(Seasonality::None);
                    self.season_detector = None;
                }
            }
        }
        self.stats.points += 1;

        let bucket = self.season.bucket(ts);
        let pred = match &self.model {
            Model::Basic(m) => m.predict(),
            Model::Agile(m) => m.predict(&self.season, bucket),
            Model::Robust(m) => m.predict(&self.season, bucket),
        };
        let Some(pred) = pred else {
            // First point: nothing to compare against.
            self.learn(value, bucket, value, 0.0);
            self.warm_left = self.warm_left.saturating_sub(1);
            self.last = Estimate {
                expected: value,
                lower: value,
                upper: value,
                score: 0.0,
                anomalous: false,
                outside: false,
            };
            return self.last;
        };
        let b = self.config.bounds;
        let floor = 1e-9 * (1.0 + pred.expected.abs());
        let sigma = pred.scale.max(floor);
        let z = (value - pred.expected).abs() / sigma;
        let mut anomalous = z > b;
        let mut outside = anomalous;
        // Rarity: how unusual this deviation, and the recent average deviation, are in
        // the series' own history (tail probabilities, Bonferroni-combined).
        let dev = (value - pred.expected).abs();
        let dev = if dev.is_finite() { dev } else { f64::MAX };
        self.short_dev += self.config.short_rate * (dev - self.short_dev);
        let p_point = self.tail.observe(dev);
        let p_short = self.tail_short.observe(self.short_dev);
        let p = (2.0 * p_point.min(p_short)).clamp(1e-300, 1.0);
        let l = -crate::tail::fast_log2(p) * std::f64::consts::LOG10_2;
        let e = self.config.rarity_half;
        let mut score = l * l / (l * l + e * e);
        // Out of band and either rarer than a normal band edge, or continuing an
        // anomalous run on the same side.
        let side: i8 = if value > pred.expected { 1 } else { -1 };
        // score ≥ 0.5 ⇔ l ≥ e (decided before the division lands).
        anomalous &= l >= e || side == self.run_side;
        self.run_side = if anomalous { side } else { 0 };
        if self.warm_left > 0 {
            self.warm_left -= 1;
            score = 0.0;
            anomalous = false;
            outside = false;
        }
        if anomalous {
            self.stats.anomalous += 1;
            if self.since_anomalous >= self.config.episode_points {
                self.stats.episodes += 1;
            }
            self.since_anomalous = 0;
        } else {
            self.since_anomalous = self.since_anomalous.saturating_add(1);
        }
        // Episode-aware score: only a new high over the decaying recent peak counts in
        // full.
        let raw = score;
        if raw <= self.peak {
            score *= self.config.episode_damping;
        }

        self.peak = (self.peak * self.peak_decay).max(raw);
        self.learn(value, bucket, pred.expected, sigma);
        self.last = Estimate {
            expected: pred.expected,
            lower: pred.expected - b * sigma,
            upper: pred.expected + b * sigma,
            score: score.clamp(0.0, 1.0),
            anomalous,
            outside,
        };
        self.last
    }

    fn learn(&mut self, value: f64, bucket: Phase, expected: f64, sigma: f64) {
        let bounds = self.config.bounds;
        match &mut self.model {
            Model::Basic(m) => m.learn(value, expected, sigma, bounds),
            Model::Agile(m) => m.learn(&mut self.season, bucket, value, expected, sigma, bounds),
            Model::Robust(m) => m.learn(&mut self.season, bucket, value, expected, sigma, bounds),
        }
    }
}
