//! Watchdog: anomaly detection nobody has to configure, over every endpoint's RED
//! signals.
//!
//! Feed [`RedPoint`]s (per `(service, resource)` and interval: hits, errors, p95
//! latency — what a trace-stats pipeline produces) to [`Watchdog::observe`]. For each
//! endpoint it runs one detector per signal — request rate (hits/s), error rate
//! (errors/hits) and p95 latency — and emits a [`Story`] when a signal enters an
//! anomalous episode: at least `trigger_points` anomalous points, on the same side,
//! among the last `window_points`. The episode ends after `recovery_points` normal
//! points in a row; only then can a new story start (one story per episode).
//! Endpoints below `min_hits_per_second` are skipped (their rates are noise) and
//! counted; at most `max_endpoints` endpoints are tracked.
//!
//! ```
//! use std::time::Duration;
//! use meshmon_alert::watchdog::{RedPoint, Signal, Watchdog, WatchdogConfig};
//! use meshmon_core::Timestamp;
//!
//! let mut w = Watchdog::new(WatchdogConfig::default())?;
//! let mut stories = Vec::new();
//! for i in 0..400i64 {
//!     let errors = if i >= 300 { 30.0 } else { (i % 3) as f64 };
//!     let p = RedPoint {
//!         service: "reviews".into(),
//!         resource: "GET /reviews".into(),
//!         timestamp: Timestamp::from_secs(i * 60),
//!         interval: Duration::from_secs(60),
//!         hits: 600.0 + (i % 5) as f64,
//!         errors,
//!         p95_latency: 0.120,
//!     };
//!     stories.extend(w.observe(&p));
//! }
//! assert_eq!(stories.len(), 1);
//! assert_eq!(stories[0].signal, Signal::ErrorRate);
//! assert!(stories[0].to_notification().title.contains("reviews"));
//! # Ok::<(), meshmon_alert::ConfigError>(())
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use meshmon_core::{AlertType, Notification, Tag, Tags, Timestamp};
use serde::{Deserialize, Serialize};

use crate::detector::{Algorithm, ConfigError, Detector, DetectorConfig, Estimate};

/// One interval of RED statistics for one endpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RedPoint {
    /// Service name.
    pub service: String,
    /// Resource (endpoint), e.g. `GET /reviews`.
    pub resource: String,
    /// End of the interval.
    pub timestamp: Timestamp,
    /// Interval length.
    pub interval: Duration,
    /// Requests in the interval.
    pub hits: f64,
    /// Failed requests in the interval.
    pub errors: f64,
    /// p95 latency in seconds.
    pub p95_latency: f64,
}

/// Which RED signal a story is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// Requests per second.
    RequestRate,
    /// Errors per request.
    ErrorRate,
    /// p95 latency.
    Latency,
}

impl Signal {
    const ALL: [Signal; 3] = [Signal::RequestRate, Signal::ErrorRate, Signal::Latency];

    /// Human name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RequestRate => "request rate",
            Self::ErrorRate => "error rate",
            Self::Latency => "p95 latency",
        }
    }
}

/// A Watchdog finding.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Story {
    /// Service.
    pub service: String,
    /// Resource.
    pub resource: String,
    /// Signal.
    pub signal: Signal,
    /// `true` if the signal went up.
    pub increase: bool,
    /// First anomalous point of the episode.
    pub started: Timestamp,
    /// When the story was emitted.
    pub timestamp: Timestamp,
    /// The value at emission.
    pub value: f64,
    /// The expected value at emission.
    pub expected: f64,
    /// The normal band at emission.
    pub lower: f64,
    /// The normal band at emission.
    pub upper: f64,
    /// Anomaly score of the first anomalous point.
    pub score: f64,
}

impl Story {
    /// The Datadog-event-shaped notification.
    pub fn to_notification(&self) -> Notification {
        let dir = if self.increase { "increase" } else { "drop" };
        let mut tags = Tags::new();
        for (k, v) in [
            ("service", &self.service),
            ("resource_name", &self.resource),
        ] {
            if let Ok(t) = Tag::new(k, v) {
                tags.insert(t);
            }
        }
        Notification {
            title: format!(
                "[Watchdog] {} {dir} on {} {}",
                self.signal.as_str(),
                self.service,
                self.resource
            ),
            text: format!(
                "{} is {:.4}, expected {:.4} (band {:.4} .. {:.4}); anomalous since {}s",
                self.signal.as_str(),
                self.value,
                self.expected,
                self.lower,
                self.upper,
                self.started.as_secs()
            ),
            alert_type: AlertType::Warning,
            aggregation_key: Some(format!(
                "watchdog:{}:{}:{:?}",
                self.service, self.resource, self.signal
            )),
            source: Arc::from("meshmon-alert/watchdog"),
            tags,
            timestamp: self.timestamp,
        }
    }
}

/// Watchdog configuration: the default, then set the public fields;
/// [`Watchdog::new`] validates it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct WatchdogConfig {
    /// The detector run on every signal.
    pub detector: DetectorConfig,
    /// Endpoints with fewer hits per second are skipped.
    pub min_hits_per_second: f64,
    /// Points considered for the trigger.
    pub window_points: u32,
    /// Anomalous points (same side) within the window that make a story.
    pub trigger_points: u32,
    /// Normal points in a row that end an episode.
    pub recovery_points: u32,
    /// Tracked endpoints cap; points of further endpoints are dropped and counted.
    pub max_endpoints: usize,
}

impl Default for WatchdogConfig {
    fn default() -> Self {
        Self {
            detector: DetectorConfig::new(Algorithm::Robust),
            min_hits_per_second: 0.1,
            window_points: 5,
            trigger_points: 3,
            recovery_points: 10,
            max_endpoints: 10_000,
        }
    }
}

/// Counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchdogStats {
    /// Points observed.
    pub points: u64,
    /// Points skipped for low traffic.
    pub low_traffic: u64,
    /// Points dropped because `max_endpoints` was reached.
    pub dropped_endpoints: u64,
    /// Stories emitted.
    pub stories: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Track {
    detector: Detector,
    /// Bit i: anomalous-up / anomalous-down i points ago.
    up: u32,
    down: u32,
    normal_run: u32,
    active: bool,
    started: Option<Timestamp>,
    first_score: f64,
}

impl Track {
    fn new(cfg: &DetectorConfig) -> Self {
        Self {
            // Validated in `Watchdog::new`.
            detector: Detector::new_unchecked(cfg.clone()),
            up: 0,
            down: 0,
            normal_run: 0,
            active: false,
            started: None,
            first_score: 0.0,
        }
    }
}

/// Watchdog over many endpoints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Watchdog {
    config: WatchdogConfig,
    endpoints: HashMap<String, [Track; 3]>,
    stats: WatchdogStats,
}

impl Watchdog {
    /// A Watchdog with `config` (`window_points` is capped at 32); the detector
    /// configuration is validated ([`DetectorConfig::validate`]) and
    /// `min_hits_per_second` must be finite and non-negative.
    pub fn new(mut config: WatchdogConfig) -> Result<Self, ConfigError> {
        config.detector.validate()?;
        if !(config.min_hits_per_second.is_finite() && config.min_hits_per_second >= 0.0) {
            return Err(ConfigError::invalid(
                "min_hits_per_second",
                config.min_hits_per_second,
                "must be a finite number >= 0",
            ));
        }
        config.window_points = config.window_points.clamp(1, 32);
        config.trigger_points = config.trigger_points.clamp(1, config.window_points);
        Ok(Self {
            config,
            endpoints: HashMap::new(),
            stats: WatchdogStats::default(),
        })
    }

    /// Counters.
    pub fn stats(&self) -> &WatchdogStats {
        &self.stats
    }

    /// Number of tracked endpoints.
    pub fn endpoints(&self) -> usize {
        self.endpoints.len()
    }

    /// Observes one point and returns the stories it starts.
    pub fn observe(&mut self, p: &RedPoint) -> Vec<Story> {
        self.observe_detailed(p).stories
    }

    /// Whether `signal` of the endpoint is in an anomalous episode now (`None`: the
    /// endpoint is not tracked).
    pub fn is_active(&self, service: &str, resource: &str, signal: Signal) -> Option<bool> {
        let key = format!("{service}\u{1f}{resource}");
        let i = Signal::ALL.iter().position(|s| *s == signal)?;
        self.endpoints.get(&key).map(|t| t[i].active)
    }

    /// Observes one point and reports, besides the stories it starts, what each signal
    /// did: its value, the detector's estimate, whether the point is anomalous, whether
    /// the signal is in an episode and whether this point ended one — what a caller
    /// needs to show a Watchdog signal as a monitor with a state.
    pub fn observe_detailed(&mut self, p: &RedPoint) -> Observation {
        let mut obs = Observation::default();
        self.stats.points += 1;
        let secs = p.interval.as_secs_f64();
        let rate = if secs > 0.0 { p.hits / secs } else { f64::NAN };
        if rate.is_nan() || rate < self.config.min_hits_per_second {
            self.stats.low_traffic += 1;
            obs.skipped = Some(Skipped::LowTraffic);
            return obs;
        }
        let key = format!("{}\u{1f}{}", p.service, p.resource);
        if !self.endpoints.contains_key(&key) {
            if self.endpoints.len() >= self.config.max_endpoints {
                self.stats.dropped_endpoints += 1;
                obs.skipped = Some(Skipped::MaxEndpoints);
                return obs;
            }
            let d = &self.config.detector;
            self.endpoints
                .insert(key.clone(), [Track::new(d), Track::new(d), Track::new(d)]);
        }
        let Some(tracks) = self.endpoints.get_mut(&key) else {
            return obs;
        };
        let values = [
            rate,
            if p.hits > 0.0 {
                p.errors / p.hits
            } else {
                f64::NAN
            },
            p.p95_latency,
        ];
        let mask = if self.config.window_points >= 32 {
            u32::MAX
        } else {
            (1u32 << self.config.window_points) - 1
        };
        let mut out = Vec::new();
        for ((track, signal), value) in tracks.iter_mut().zip(Signal::ALL).zip(values) {
            if !value.is_finite() {
                continue;
            }
            let was_active = track.active;
            let e: Estimate = track.detector.update(p.timestamp, value);
            let up = e.anomalous && value > e.expected;
            let down = e.anomalous && value < e.expected;
            track.up = ((track.up << 1) | u32::from(up)) & mask;
            track.down = ((track.down << 1) | u32::from(down)) & mask;
            if e.anomalous {
                track.normal_run = 0;
                if track.started.is_none() {
                    track.started = Some(p.timestamp);
                    track.first_score = e.score;
                }
            } else {
                track.normal_run += 1;
                if track.normal_run >= self.config.recovery_points {
                    track.active = false;
                    track.started = None;
                }
                if !track.active && track.up == 0 && track.down == 0 {
                    track.started = None;
                }
            }
            let n_up = track.up.count_ones();
            let n_down = track.down.count_ones();
            if !track.active
                && (n_up >= self.config.trigger_points || n_down >= self.config.trigger_points)
            {
                track.active = true;
                out.push(Story {
                    service: p.service.clone(),
                    resource: p.resource.clone(),
                    signal,
                    increase: n_up >= n_down,
                    started: track.started.unwrap_or(p.timestamp),
                    timestamp: p.timestamp,
                    value,
                    expected: e.expected,
                    lower: e.lower,
                    upper: e.upper,
                    score: track.first_score,
                });
            }
            obs.signals.push(SignalReport {
                signal,
                value,
                estimate: e,
                anomalous: e.anomalous,
                active: track.active,
                ended: was_active && !track.active,
            });
        }
        self.stats.stories += out.len() as u64;
        obs.stories = out;
        obs
    }
}

/// Why [`Watchdog::observe_detailed`] did not judge a point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Skipped {
    /// Fewer hits per second than `min_hits_per_second`.
    LowTraffic,
    /// A new endpoint beyond `max_endpoints`.
    MaxEndpoints,
}

/// What one signal of one endpoint did on one point.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SignalReport {
    /// The signal.
    pub signal: Signal,
    /// Its value (hits/s, errors/hits or seconds).
    pub value: f64,
    /// The detector's estimate for this point (band, score).
    pub estimate: Estimate,
    /// The detector flagged the point.
    pub anomalous: bool,
    /// The signal is in an anomalous episode after this point (a story was emitted
    /// for it and it has not recovered yet).
    pub active: bool,
    /// This point ended the episode (`recovery_points` normal points in a row).
    pub ended: bool,
}

/// What [`Watchdog::observe_detailed`] says about one point.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Observation {
    /// Stories started by this point (what [`Watchdog::observe`] returns).
    pub stories: Vec<Story>,
    /// One report per signal with a finite value (none when skipped).
    pub signals: Vec<SignalReport>,
    /// Why the point was not judged, if it was not.
    pub skipped: Option<Skipped>,
}
