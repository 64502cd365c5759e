//! Datadog's anomaly monitor over one series: a [`Detector`] judges every point,
//! and a state machine over time windows turns anomalous points into OK / WARN /
//! ALERT / NO DATA, so a user receives one alert per incident, not one per point.
//!
//! Datadog's [anomaly monitor] alerts when, over the **trigger window**, the share of
//! anomalous points reaches the **critical threshold** (the UI's "alert threshold"),
//! and recovers when, over the **recovery window**, the share of anomalous points is
//! at or below the **critical recovery** threshold (the UI's "recovery threshold").
//! A point is anomalous when the detector, past its warm-up, flags it *and* it lies
//! outside the band on the side `direction` selects (`above`, `below` or `both`).
//!
//! | option | default | where the default comes from |
//! |---|---|---|
//! | [`trigger_window`](AnomalyMonitorConfig::trigger_window) (Datadog `threshold_windows.trigger_window`, the query's `alert_window`) | 15 min | Datadog's anomaly monitor UI (`last_15m`) |
//! | [`recovery_window`](AnomalyMonitorConfig::recovery_window) (`threshold_windows.recovery_window`) | 15 min | Datadog's anomaly monitor UI (`last_15m`) |
//! | [`critical`](AnomalyMonitorConfig::critical) (`thresholds.critical`) | 0.9 (90 % of the window: 14 of 15 one-minute points) | meshmon's: Datadog's UI proposes 100 %, which misses incidents with one in-band point inside (sparse error ratios, quiet counts); 0.9 was chosen on the generator's tuning seeds ([`crate::synth`]), the held-out seeds are reported in the README |
//! | [`critical_recovery`](AnomalyMonitorConfig::critical_recovery) (`thresholds.critical_recovery`) | 0.0 (0 %) | Datadog's UI "recovery threshold" |
//! | [`warning`](AnomalyMonitorConfig::warning) / [`warning_recovery`](AnomalyMonitorConfig::warning_recovery) | none | Datadog: optional |
//! | [`require_full_window`](AnomalyMonitorConfig::require_full_window) | `false` | Datadog API's default for the option (recommended off for sparse series) |
//! | [`direction`](AnomalyMonitorConfig::direction) | `both` | the `anomalies()` query's `direction='both'` default |
//! | detector [`bounds`](DetectorConfig::bounds) | 3 | this crate's detector default (Datadog's UI proposes 2 or 3) |
//! | [`min_relative_deviation`](AnomalyMonitorConfig::min_relative_deviation) | 0.25 | meshmon's (not a Datadog option): a point must also differ from the expected value by 25 % of it, so changes too small to page on (a deploy's 10–20 % level change on a busy, low-noise series, which is many σ) never alert — like Elementary's `ignore_small_changes` or Splunk's percentage sensitivity; 0 gives Datadog's band-only rule |
//! | [`no_data_timeframe`](AnomalyMonitorConfig::no_data_timeframe) | none | Datadog's `notify_no_data` is off by default |
//!
//! A level shift that persists becomes normal: the detector accepts it as the new
//! level (`agile` after 3 out-of-band points in a row, quickly, as Datadog documents
//! agile; `robust` after 16 votes, "taking longer to respond to intended level
//! shifts"), after which the points are inside the band again and the monitor
//! recovers one recovery window later. Warm-up points (the detector's first
//! `warmup_points`) are never anomalous, so they never alert.
//!
//! [anomaly monitor]: https://docs.datadoghq.com/monitors/types/anomaly/
//!
//! ```
//! use std::time::Duration;
//! use meshmon_alert::anomaly::{AnomalyMonitor, AnomalyMonitorConfig, Direction};
//! use meshmon_alert::{Algorithm, MonitorState};
//! use meshmon_core::Timestamp;
//!
//! let mut cfg = AnomalyMonitorConfig::new(Algorithm::Basic);
//! cfg.trigger_window = Duration::from_secs(5 * 60);
//! cfg.recovery_window = Duration::from_secs(10 * 60);
//! cfg.direction = Direction::Above;
//! let mut m = AnomalyMonitor::new(cfg)?;
//! let mut transitions = Vec::new();
//! for minute in 0..300i64 {
//!     // An incident from minute 200 to 219: the value jumps ×5.
//!     let v = if (200..220).contains(&minute) { 500.0 } else { 100.0 + (minute % 7) as f64 };
//!     transitions.extend(m.update(Timestamp::from_secs(minute * 60), v).transition);
//! }
//! let t: Vec<_> = transitions.iter().map(|t| (t.timestamp.as_secs() / 60, t.to)).collect();
//! assert_eq!(t[0], (204, MonitorState::Alert)); // 5 minutes, all anomalous
//! assert_eq!(t.len(), 2);
//! assert_eq!(t[1].1, MonitorState::Ok);
//! let band = transitions[0].band.expect("a band");
//! assert!(transitions[0].value.is_some_and(|v| v > band.upper));
//! # Ok::<(), meshmon_alert::ConfigError>(())
//! ```

use std::collections::VecDeque;
use std::time::Duration;

use meshmon_core::Timestamp;
use serde::{Deserialize, Serialize};

use crate::detector::{Algorithm, ConfigError, Detector, DetectorConfig, Estimate};
use crate::monitor::MonitorState;

/// Which side of the band is anomalous (the `anomalies()` query's `direction`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Only values above the band.
    Above,
    /// Only values below the band.
    Below,
    /// Both sides.
    #[default]
    Both,
}

impl std::str::FromStr for Direction {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s {
            "above" => Ok(Self::Above),
            "below" => Ok(Self::Below),
            "both" => Ok(Self::Both),
            o => Err(ConfigError::invalid(
                "direction",
                o,
                "must be above, below or both",
            )),
        }
    }
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Above => "above",
            Self::Below => "below",
            Self::Both => "both",
        })
    }
}

/// Parses a window the way Datadog writes them: `last_15m`, `15m`, `900s`, `1h`,
/// `2d`, `1w` (a bare number is seconds).
///
/// ```
/// use std::time::Duration;
/// use meshmon_alert::anomaly::parse_window;
///
/// assert_eq!(parse_window("last_15m")?, Duration::from_secs(900));
/// assert_eq!(parse_window("90")?, Duration::from_secs(90));
/// assert!(parse_window("15 minutes").is_err());
/// # Ok::<(), meshmon_alert::ConfigError>(())
/// ```
pub fn parse_window(s: &str) -> Result<Duration, ConfigError> {
    let bad = || ConfigError::invalid("window", s, "must look like 15m, last_1h, 900s, 2d or 1w");
    let t = s.trim();
    let t = t.strip_prefix("last_").unwrap_or(t);
    let (num, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: u64 = num.parse().map_err(|_| bad())?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(bad()),
    };
    let secs = n.checked_mul(mult).ok_or_else(bad)?;
    if secs == 0 {
        return Err(bad());
    }
    Ok(Duration::from_secs(secs))
}

/// Anomaly monitor configuration (Datadog's names; defaults in the module docs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct AnomalyMonitorConfig {
    /// The detector (algorithm, `bounds`, seasonality, …).
    pub detector: DetectorConfig,
    /// Which side of the band is anomalous.
    pub direction: Direction,
    /// How long a metric must be anomalous before the alert triggers: the window
    /// the `critical` / `warning` fractions are measured over (`alert_window`).
    #[serde(alias = "alert_window")]
    pub trigger_window: Duration,
    /// How long an anomalous metric must be normal before the alert recovers: the
    /// window the recovery fractions are measured over.
    pub recovery_window: Duration,
    /// A point is anomalous only if it also differs from the expected value by at
    /// least this fraction of `|expected|` (0: the band alone decides), `[0, 100]`.
    pub min_relative_deviation: f64,
    /// Fraction of anomalous points in the trigger window that makes ALERT, `(0, 1]`.
    pub critical: f64,
    /// ALERT recovers when the anomalous fraction over the recovery window is at or
    /// below this, `[0, critical)`.
    pub critical_recovery: f64,
    /// Fraction that makes WARN, `(0, critical)`; `None`: no WARN state.
    pub warning: Option<f64>,
    /// WARN recovers at or below this, `[0, warning)` (default 0 when `warning` is set).
    pub warning_recovery: Option<f64>,
    /// Do not leave OK until data has covered a whole trigger window (since the first
    /// point, or since data came back after NO DATA).
    pub require_full_window: bool,
    /// NO DATA after this long without a (finite) point; `None`: never.
    pub no_data_timeframe: Option<Duration>,
    /// Points kept per window at most (older ones are dropped and counted in
    /// [`AnomalyMonitorStats::window_overflow`]).
    pub max_window_points: usize,
}

impl Default for AnomalyMonitorConfig {
    fn default() -> Self {
        Self::new(Algorithm::default())
    }
}

impl AnomalyMonitorConfig {
    /// The default monitor for `algorithm`: Datadog's defaults (module docs) over
    /// [`DetectorConfig::new`]`(algorithm)`.
    pub fn new(algorithm: Algorithm) -> Self {
        Self {
            detector: DetectorConfig::new(algorithm),
            direction: Direction::Both,
            min_relative_deviation: 0.25,
            trigger_window: Duration::from_secs(15 * 60),
            recovery_window: Duration::from_secs(15 * 60),
            critical: 0.9,
            critical_recovery: 0.0,
            warning: None,
            warning_recovery: None,
            require_full_window: false,
            no_data_timeframe: None,
            max_window_points: 100_000,
        }
    }

    /// Checks every field (and the detector's, [`DetectorConfig::validate`]).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.detector.validate()?;
        if self.trigger_window.is_zero() {
            return Err(ConfigError::invalid(
                "trigger_window",
                self.trigger_window,
                "must be positive",
            ));
        }
        if self.recovery_window.is_zero() {
            return Err(ConfigError::invalid(
                "recovery_window",
                self.recovery_window,
                "must be positive",
            ));
        }
        if !(0.0..=100.0).contains(&self.min_relative_deviation) {
            return Err(ConfigError::invalid(
                "min_relative_deviation",
                self.min_relative_deviation,
                "must be in [0, 100]",
            ));
        }
        if !(self.critical > 0.0 && self.critical <= 1.0) {
            return Err(ConfigError::invalid(
                "critical",
                self.critical,
                "must be in (0, 1]",
            ));
        }
        if !(self.critical_recovery >= 0.0 && self.critical_recovery < self.critical) {
            return Err(ConfigError::invalid(
                "critical_recovery",
                self.critical_recovery,
                "must be in [0, critical)",
            ));
        }
        match (self.warning, self.warning_recovery) {
            (Some(w), r) => {
                if !(w > 0.0 && w < self.critical) {
                    return Err(ConfigError::invalid(
                        "warning",
                        w,
                        "must be in (0, critical)",
                    ));
                }
                if let Some(r) = r
                    && !(r >= 0.0 && r < w)
                {
                    return Err(ConfigError::invalid(
                        "warning_recovery",
                        r,
                        "must be in [0, warning)",
                    ));
                }
            }
            (None, Some(r)) => {
                return Err(ConfigError::invalid(
                    "warning_recovery",
                    r,
                    "needs a warning threshold",
                ));
            }
            (None, None) => {}
        }
        if self.no_data_timeframe.is_some_and(|d| d.is_zero()) {
            return Err(ConfigError::invalid(
                "no_data_timeframe",
                self.no_data_timeframe,
                "must be positive",
            ));
        }
        if self.max_window_points == 0 {
            return Err(ConfigError::invalid(
                "max_window_points",
                0,
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

/// The band a point was judged against.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Band {
    /// The expected value.
    pub expected: f64,
    /// Lower edge.
    pub lower: f64,
    /// Upper edge.
    pub upper: f64,
}

/// Why the state changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Cause {
    /// The anomalous fraction over the trigger window reached `critical`.
    Critical,
    /// The anomalous fraction over the trigger window reached `warning`.
    Warning,
    /// The anomalous fraction over the recovery window fell to the recovery threshold.
    Recovered,
    /// No point for `no_data_timeframe`.
    NoData,
    /// A point arrived after NO DATA.
    DataReturned,
}

/// One state change, with what caused it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Transition {
    /// When (the point's timestamp, or the `no_data` tick's).
    pub timestamp: Timestamp,
    /// Previous state.
    pub from: MonitorState,
    /// New state.
    pub to: MonitorState,
    /// Why.
    pub cause: Cause,
    /// The value of the point that caused it (`None` for NO DATA).
    pub value: Option<f64>,
    /// The band that point was judged against (`None` for NO DATA).
    pub band: Option<Band>,
    /// The anomalous fraction over `window` that crossed `threshold` (for NO DATA,
    /// 0).
    pub fraction: f64,
    /// The threshold crossed: `critical`, `warning` or a recovery threshold (for NO
    /// DATA, 0).
    pub threshold: f64,
    /// The window `fraction` was measured over (for NO DATA, `no_data_timeframe`).
    pub window: Duration,
}

/// What [`AnomalyMonitor::update`] says about one point.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Evaluation {
    /// The detector's estimate (band, score).
    pub estimate: Estimate,
    /// Anomalous in the monitor's direction (what the windows count).
    pub anomalous: bool,
    /// The state after this point.
    pub state: MonitorState,
    /// The state change this point caused, if any.
    pub transition: Option<Transition>,
}

/// Counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AnomalyMonitorStats {
    /// Points evaluated.
    pub points: u64,
    /// Anomalous points (in the monitor's direction).
    pub anomalous: u64,
    /// Points dropped from a window because it held `max_window_points`.
    pub window_overflow: u64,
    /// Non-finite values or timestamps going backwards (not evaluated).
    pub skipped: u64,
    /// Transitions emitted.
    pub transitions: u64,
}

/// A time window of `(timestamp ns, anomalous)` with a running count.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Window {
    points: VecDeque<(i64, bool)>,
    anomalous: usize,
}

impl Window {
    /// Adds a point, drops those at or before `ts − len`; returns how many were
    /// dropped for the cap.
    fn push(&mut self, ts: i64, anomalous: bool, len: Duration, cap: usize) -> u64 {
        let len_ns = i64::try_from(len.as_nanos()).unwrap_or(i64::MAX);
        let start = ts.saturating_sub(len_ns);
        while let Some(&(t, a)) = self.points.front() {
            if t > start {
                break;
            }
            self.points.pop_front();
            self.anomalous -= usize::from(a);
        }
        let mut overflow = 0;
        while self.points.len() >= cap {
            if let Some((_, a)) = self.points.pop_front() {
                self.anomalous -= usize::from(a);
            }
            overflow += 1;
        }
        self.points.push_back((ts, anomalous));
        self.anomalous += usize::from(anomalous);
        overflow
    }

    fn fraction(&self) -> f64 {
        if self.points.is_empty() {
            0.0
        } else {
            self.anomalous as f64 / self.points.len() as f64
        }
    }

    fn clear(&mut self) {
        self.points.clear();
        self.anomalous = 0;
    }
}

/// Datadog's anomaly monitor over one series: feed points with
/// [`update`](Self::update) and time with [`no_data`](Self::no_data); the whole state
/// (detector included) is serde data, so a monitor can be persisted and restored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnomalyMonitor {
    config: AnomalyMonitorConfig,
    detector: Detector,
    trigger: Window,
    recovery: Window,
    state: MonitorState,
    /// First point since the start or since data came back (for `require_full_window`).
    since: Option<Timestamp>,
    last_data: Option<Timestamp>,
    /// The first time the monitor heard of (a point or a tick): NO DATA is counted
    /// from here until a first point arrives.
    #[serde(default)]
    first_seen: Option<Timestamp>,
    stats: AnomalyMonitorStats,
}

impl AnomalyMonitor {
    /// A monitor with `config`, after [`AnomalyMonitorConfig::validate`].
    pub fn new(config: AnomalyMonitorConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            detector: Detector::new_unchecked(config.detector.clone()),
            config,
            trigger: Window::default(),
            recovery: Window::default(),
            state: MonitorState::Ok,
            since: None,
            last_data: None,
            first_seen: None,
            stats: AnomalyMonitorStats::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &AnomalyMonitorConfig {
        &self.config
    }

    /// The current state.
    pub fn state(&self) -> MonitorState {
        self.state
    }

    /// The detector (its stats, detected seasonality).
    pub fn detector(&self) -> &Detector {
        &self.detector
    }

    /// Counters.
    pub fn stats(&self) -> &AnomalyMonitorStats {
        &self.stats
    }

    /// Anomalous fractions over the trigger and recovery windows now.
    pub fn fractions(&self) -> (f64, f64) {
        (self.trigger.fraction(), self.recovery.fraction())
    }

    /// Judges one point and advances the state. A non-finite value (or a timestamp
    /// going backwards) is not evaluated: it counts as missing data, and the state
    /// only changes if it is time for NO DATA ([`no_data`](Self::no_data)).
    pub fn update(&mut self, ts: Timestamp, value: f64) -> Evaluation {
        self.first_seen.get_or_insert(ts);
        let before = self.detector.stats().points;
        let estimate = self.detector.update(ts, value);
        if self.detector.stats().points == before {
            self.stats.skipped += 1;
            let transition = self.no_data(ts);
            return Evaluation {
                estimate,
                anomalous: false,
                state: self.state,
                transition,
            };
        }
        self.stats.points += 1;
        let anomalous = estimate.outside
            && match self.config.direction {
                Direction::Above => value > estimate.upper,
                Direction::Below => value < estimate.lower,
                Direction::Both => true,
            }
            && (value - estimate.expected).abs()
                >= self.config.min_relative_deviation * estimate.expected.abs();
        self.stats.anomalous += u64::from(anomalous);
        let returned = self.state == MonitorState::NoData;
        if returned {
            self.trigger.clear();
            self.recovery.clear();
            self.since = None;
        }
        self.last_data = Some(ts);
        let since = *self.since.get_or_insert(ts);
        let t = ts.as_nanos();
        let cap = self.config.max_window_points;
        self.stats.window_overflow +=
            self.trigger
                .push(t, anomalous, self.config.trigger_window, cap);
        self.stats.window_overflow +=
            self.recovery
                .push(t, anomalous, self.config.recovery_window, cap);

        let cfg = &self.config;
        let full = !cfg.require_full_window || ts.saturating_since(since) >= cfg.trigger_window;
        let (tf, rf) = (self.trigger.fraction(), self.recovery.fraction());
        let prev = if returned {
            MonitorState::Ok
        } else {
            self.state
        };
        let warn_rec = cfg.warning.map(|_| cfg.warning_recovery.unwrap_or(0.0));
        // (next state, cause, fraction, threshold, window)
        // ALERT when the trigger window trips, and while in ALERT until the recovery
        // window is clean enough.
        let (next, cause, fraction, threshold, window) = if (full && tf >= cfg.critical)
            || (prev == MonitorState::Alert && rf > cfg.critical_recovery)
        {
            (
                MonitorState::Alert,
                Cause::Critical,
                tf,
                cfg.critical,
                cfg.trigger_window,
            )
        } else if let Some(w) = cfg.warning.filter(|&w| full && tf >= w) {
            let cause = if prev == MonitorState::Alert {
                Cause::Recovered
            } else {
                Cause::Warning
            };
            (MonitorState::Warn, cause, tf, w, cfg.trigger_window)
        } else if let Some(r) =
            warn_rec.filter(|&r| matches!(prev, MonitorState::Alert | MonitorState::Warn) && rf > r)
        {
            let (cause, threshold) = if prev == MonitorState::Alert {
                (Cause::Recovered, cfg.critical_recovery)
            } else {
                (Cause::Warning, r)
            };
            (
                MonitorState::Warn,
                cause,
                rf,
                threshold,
                cfg.recovery_window,
            )
        } else {
            let threshold = if prev == MonitorState::Warn {
                warn_rec.unwrap_or(0.0)
            } else {
                cfg.critical_recovery
            };
            (
                MonitorState::Ok,
                Cause::Recovered,
                rf,
                threshold,
                cfg.recovery_window,
            )
        };
        let from = self.state;
        let transition = (next != from).then(|| {
            let cause = if returned && next == MonitorState::Ok {
                Cause::DataReturned
            } else {
                cause
            };
            Transition {
                timestamp: ts,
                from,
                to: next,
                cause,
                value: Some(value),
                band: Some(Band {
                    expected: estimate.expected,
                    lower: estimate.lower,
                    upper: estimate.upper,
                }),
                fraction,
                threshold,
                window,
            }
        });
        self.state = next;
        self.stats.transitions += u64::from(transition.is_some());
        Evaluation {
            estimate,
            anomalous,
            state: next,
            transition,
        }
    }

    /// A clock tick without data: NO DATA when `no_data_timeframe` is set and the
    /// last point is at least that old at `now` (before any point: that long since
    /// the first call to this monitor). Call it on each evaluation when a series has
    /// no new point; it changes the state at most once per silence.
    pub fn no_data(&mut self, now: Timestamp) -> Option<Transition> {
        let first = *self.first_seen.get_or_insert(now);
        let nd = self.config.no_data_timeframe?;
        if self.state == MonitorState::NoData {
            return None;
        }
        let stale = now.saturating_since(self.last_data.unwrap_or(first)) >= nd;
        if !stale {
            return None;
        }
        let from = self.state;
        self.state = MonitorState::NoData;
        self.stats.transitions += 1;
        Some(Transition {
            timestamp: now,
            from,
            to: MonitorState::NoData,
            cause: Cause::NoData,
            value: None,
            band: None,
            fraction: 0.0,
            threshold: 0.0,
            window: nd,
        })
    }
}
