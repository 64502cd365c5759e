//! Monitors: a query over tagged metrics, an aggregation, a detector or threshold,
//! trigger and recovery windows and Datadog's OK / WARN / ALERT / NO DATA states.
//!
//! [`Monitor::ingest`] takes [`Metric`]s (those matching the query's metric name and
//! tag filter are buffered per group, the group being the values of the `group_by`
//! tag keys); [`Monitor::evaluate`] is called with the current time: each group's
//! buffered values are aggregated into one point, judged (detector or threshold) and
//! the group's state machine advances:
//!
//! - **→ ALERT / WARN** when, over the last `trigger_window`, at least
//!   `trigger_fraction` of the points are ALERT-level (or at least WARN-level).
//! - **ALERT → WARN → OK**: ALERT holds until a whole `recovery_window` has passed
//!   without an ALERT-level point, WARN until one has passed without a bad point (long
//!   enough to accept a new level instead of flapping).
//! - **→ NO DATA** when a group has had no point for `no_data_timeframe` (if set).
//! - One [`Alert`] per transition (one per episode); while not OK, a reminder every
//!   `renotify_interval` (if set).
//!
//! ```
//! use std::time::Duration;
//! use meshmon_alert::monitor::{Aggregation, Condition, Monitor, MonitorConfig, MonitorState, Query};
//! use meshmon_alert::threshold::{Comparator, ThresholdConfig};
//! use meshmon_core::{Metric, MetricValue, Timestamp};
//!
//! let mut cfg = MonitorConfig::new(
//!     "reviews latency",
//!     Query::new("trace.http.request.duration.p95", "env:prod".parse()?, &["service"]),
//!     Condition::Threshold(ThresholdConfig::new(Comparator::Above, 0.5)),
//! );
//! cfg.aggregation = Aggregation::Max;
//! cfg.trigger_window = Duration::from_secs(120);
//! cfg.trigger_fraction = 0.5;
//! cfg.recovery_window = Duration::from_secs(180);
//! let mut m = Monitor::new(cfg)?;
//! let mut alerts = Vec::new();
//! for minute in 0..10i64 {
//!     let v = if (3..6).contains(&minute) { 0.9 } else { 0.1 };
//!     let now = Timestamp::from_secs(minute * 60);
//!     let tags = "env:prod,service:reviews,pod:a".parse()?;
//!     m.ingest(&Metric::new("trace.http.request.duration.p95", MetricValue::Gauge(v), tags, now));
//!     alerts.extend(m.evaluate(now));
//! }
//! let states: Vec<_> = alerts.iter().map(|a| (a.timestamp.as_secs() / 60, a.state)).collect();
//! // 2 of the last 3 points bad at minute 4; a clean 3 minutes after the last bad one.
//! assert_eq!(states, [(4, MonitorState::Alert), (8, MonitorState::Ok)]);
//! assert_eq!(alerts[0].group.to_string(), "service:reviews");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use meshmon_core::{AlertType, Metric, Notification, Tag, Tags, Timestamp};
use serde::{Deserialize, Serialize};

use crate::detector::{ConfigError, Detector, DetectorConfig};
use crate::threshold::{Level, ThresholdConfig, ThresholdDetector, ThresholdError};

/// Which series a monitor watches and how they are grouped.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Query {
    /// Metric name (exact).
    pub metric: String,
    /// Tags every series must carry.
    pub filter: Tags,
    /// Tag keys whose values make a group (`["service"]` = one state per service).
    pub group_by: Vec<String>,
}

impl Query {
    /// Builds a query.
    pub fn new(metric: &str, filter: Tags, group_by: &[&str]) -> Self {
        Self {
            metric: metric.to_string(),
            filter,
            group_by: group_by.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Whether `metric` is selected.
    pub fn matches(&self, metric: &Metric) -> bool {
        metric.name() == self.metric && self.filter.iter().all(|t| metric.tags.contains(t))
    }

    /// The group of a series: its `group_by` tags (missing keys are absent).
    pub fn group(&self, tags: &Tags) -> Tags {
        let mut g = Tags::new();
        for key in &self.group_by {
            for v in tags.get_all(key) {
                if let Ok(t) = Tag::new(key, v) {
                    g.insert(t);
                }
            }
        }
        g
    }
}

/// How the points of one group in one evaluation are combined.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    /// Mean.
    #[default]
    Avg,
    /// Sum.
    Sum,
    /// Minimum.
    Min,
    /// Maximum.
    Max,
    /// Number of points.
    Count,
    /// The latest point.
    Last,
}

/// What a monitor checks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// Anomaly detection: anomalous points are ALERT-level.
    Anomaly(DetectorConfig),
    /// Static thresholds.
    Threshold(ThresholdConfig),
}

impl Default for Condition {
    fn default() -> Self {
        Self::Anomaly(DetectorConfig::default())
    }
}

/// Monitor configuration: [`MonitorConfig::new`], then set the public fields;
/// [`Monitor::new`] validates it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct MonitorConfig {
    /// Name (alert titles, aggregation keys).
    pub name: String,
    /// Series selection and grouping.
    pub query: Query,
    /// Per-evaluation aggregation.
    pub aggregation: Aggregation,
    /// Detector or threshold.
    pub condition: Condition,
    /// The window the trigger fraction is measured over.
    pub trigger_window: Duration,
    /// Fraction of bad points in the trigger window that trips the monitor.
    pub trigger_fraction: f64,
    /// A clean window this long is needed to recover.
    pub recovery_window: Duration,
    /// NO DATA after this long without points (`None`: never).
    pub no_data_timeframe: Option<Duration>,
    /// Remind while not OK (`None`: never).
    pub renotify_interval: Option<Duration>,
    /// Maximum number of groups; points of further groups are dropped and counted.
    pub max_groups: usize,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            name: "monitor".into(),
            query: Query::default(),
            aggregation: Aggregation::Avg,
            condition: Condition::default(),
            trigger_window: Duration::from_secs(300),
            trigger_fraction: 0.5,
            recovery_window: Duration::from_secs(600),
            no_data_timeframe: None,
            renotify_interval: None,
            max_groups: 10_000,
        }
    }
}

impl MonitorConfig {
    /// A monitor named `name` over `query` checking `condition`, with the default
    /// windows (trigger 5 min at 50 %, recovery 10 min), average aggregation, no NO
    /// DATA, no re-notification and at most 10,000 groups.
    pub fn new(name: impl Into<String>, query: Query, condition: Condition) -> Self {
        Self {
            name: name.into(),
            query,
            condition,
            ..Self::default()
        }
    }
}

/// Why a monitor could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum MonitorError {
    /// The threshold configuration is inconsistent.
    #[error("monitor {monitor:?}: {source}")]
    Threshold {
        /// Monitor name.
        monitor: String,
        /// The threshold error.
        #[source]
        source: ThresholdError,
    },
    /// The anomaly detector's configuration is invalid.
    #[error("monitor {monitor:?}: detector {source}")]
    Detector {
        /// Monitor name.
        monitor: String,
        /// The detector configuration error.
        #[source]
        source: ConfigError,
    },
    /// A field is out of range.
    #[error("monitor {monitor:?}: {field} {reason}")]
    Invalid {
        /// Monitor name.
        monitor: String,
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
}

/// A monitor group's state (Datadog's names).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MonitorState {
    /// Fine.
    #[default]
    Ok,
    /// Warning.
    Warn,
    /// Alerting.
    Alert,
    /// No data for `no_data_timeframe`.
    NoData,
}

impl MonitorState {
    /// `OK`, `WARN`, `ALERT` or `NO DATA`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Warn => "WARN",
            Self::Alert => "ALERT",
            Self::NoData => "NO DATA",
        }
    }
}

/// A state change (or reminder) of one monitor group: plain data, turned into a
/// [`Notification`] for a `meshmon_core::Notifier` (feature `pipeline`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Monitor name.
    pub monitor: String,
    /// The group (`service:reviews`).
    pub group: Tags,
    /// New state.
    pub state: MonitorState,
    /// Previous state.
    pub previous: MonitorState,
    /// Evaluation time.
    pub timestamp: Timestamp,
    /// The aggregated value evaluated last (NaN when there was none).
    pub value: f64,
    /// Expected value (anomaly monitors).
    pub expected: Option<f64>,
    /// Band (anomaly monitors).
    pub bounds: Option<(f64, f64)>,
    /// Share of bad points in the trigger window.
    pub bad_fraction: f64,
    /// A reminder, not a transition.
    pub renotification: bool,
}

impl Alert {
    /// The Datadog-event-shaped notification.
    pub fn to_notification(&self) -> Notification {
        let tag = if self.renotification {
            "[Re-notify] "
        } else {
            ""
        };
        let scope = if self.group.is_empty() {
            String::new()
        } else {
            format!(" on {}", self.group)
        };
        let title = format!("{tag}[{}] {}{scope}", self.state.as_str(), self.monitor);
        let mut text = format!(
            "{} → {} at {}s: value {}",
            self.previous.as_str(),
            self.state.as_str(),
            self.timestamp.as_secs(),
            self.value
        );
        if let (Some(e), Some((lo, hi))) = (self.expected, self.bounds) {
            text.push_str(&format!(", expected {e:.4} (band {lo:.4} .. {hi:.4})"));
        }
        text.push_str(&format!(
            ", {:.0}% of the trigger window bad",
            100.0 * self.bad_fraction
        ));
        let alert_type = match self.state {
            MonitorState::Ok => AlertType::Success,
            MonitorState::Warn | MonitorState::NoData => AlertType::Warning,
            MonitorState::Alert => AlertType::Error,
        };
        Notification {
            title,
            text,
            alert_type,
            aggregation_key: Some(format!("monitor:{}:{}", self.monitor, self.group)),
            source: Arc::from("meshmon-alert"),
            tags: self.group.clone(),
            timestamp: self.timestamp,
        }
    }
}

/// Counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorStats {
    /// Metrics matched by the query.
    pub matched: u64,
    /// Points dropped because `max_groups` was reached.
    pub dropped_groups: u64,
    /// Non-numeric metric values skipped.
    pub non_numeric: u64,
    /// Alerts emitted.
    pub alerts: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Judge {
    Anomaly(Box<Detector>),
    Threshold(ThresholdDetector),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Group {
    pending: Vec<f64>,
    judge: Judge,
    recent: VecDeque<(Timestamp, Level)>,
    state: MonitorState,
    last_data: Option<Timestamp>,
    last_bad: Option<Timestamp>,
    last_alert: Option<Timestamp>,
    last_notified: Option<Timestamp>,
    last_value: f64,
    last_expected: Option<f64>,
    last_bounds: Option<(f64, f64)>,
}

/// A monitor over many groups.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Monitor {
    config: MonitorConfig,
    groups: BTreeMap<Tags, Group>,
    stats: MonitorStats,
}

impl Monitor {
    /// Validates the configuration.
    pub fn new(config: MonitorConfig) -> Result<Self, MonitorError> {
        let invalid = |field, reason| MonitorError::Invalid {
            monitor: config.name.clone(),
            field,
            reason,
        };
        if !(config.trigger_fraction > 0.0 && config.trigger_fraction <= 1.0) {
            return Err(invalid("trigger_fraction", "must be in (0, 1]"));
        }
        if config.trigger_window.is_zero() {
            return Err(invalid("trigger_window", "must be positive"));
        }
        match &config.condition {
            Condition::Threshold(t) => {
                ThresholdDetector::new(t.clone()).map_err(|source| MonitorError::Threshold {
                    monitor: config.name.clone(),
                    source,
                })?;
            }
            Condition::Anomaly(d) => d.validate().map_err(|source| MonitorError::Detector {
                monitor: config.name.clone(),
                source,
            })?,
        }
        Ok(Self {
            config,
            groups: BTreeMap::new(),
            stats: MonitorStats::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &MonitorConfig {
        &self.config
    }

    /// Counters.
    pub fn stats(&self) -> &MonitorStats {
        &self.stats
    }

    /// The state of a group (`None` if never seen).
    pub fn state(&self, group: &Tags) -> Option<MonitorState> {
        self.groups.get(group).map(|g| g.state)
    }

    fn new_group(&self) -> Group {
        let judge = match &self.config.condition {
            // Validated in `new`.
            Condition::Anomaly(c) => Judge::Anomaly(Box::new(Detector::new_unchecked(c.clone()))),
            Condition::Threshold(t) => match ThresholdDetector::new(t.clone()) {
                Ok(d) => Judge::Threshold(d),
                // Validated in `new`; fall back to an anomaly detector rather than panic.
                Err(_) => {
                    Judge::Anomaly(Box::new(Detector::new_unchecked(DetectorConfig::default())))
                }
            },
        };
        Group {
            pending: Vec::new(),
            judge,
            recent: VecDeque::new(),
            state: MonitorState::Ok,
            last_data: None,
            last_bad: None,
            last_alert: None,
            last_notified: None,
            last_value: f64::NAN,
            last_expected: None,
            last_bounds: None,
        }
    }

    /// Buffers `metric` if the query selects it; returns whether it did.
    pub fn ingest(&mut self, metric: &Metric) -> bool {
        if !self.config.query.matches(metric) {
            return false;
        }
        self.stats.matched += 1;
        let Some(v) = metric.value.as_f64() else {
            self.stats.non_numeric += 1;
            return true;
        };
        let group = self.config.query.group(&metric.tags);
        if !self.groups.contains_key(&group) {
            if self.groups.len() >= self.config.max_groups {
                self.stats.dropped_groups += 1;
                return true;
            }
            let g = self.new_group();
            self.groups.insert(group.clone(), g);
        }
        if let Some(g) = self.groups.get_mut(&group) {
            g.pending.push(v);
        }
        true
    }

    /// Evaluates every group at `now` and returns the alerts (transitions and
    /// reminders).
    pub fn evaluate(&mut self, now: Timestamp) -> Vec<Alert> {
        let cfg = &self.config;
        let keep = cfg.trigger_window.max(cfg.recovery_window);
        let mut out = Vec::new();
        for (tags, g) in &mut self.groups {
            if !g.pending.is_empty() {
                let v = aggregate(cfg.aggregation, &g.pending);
                g.pending.clear();
                let level = match &mut g.judge {
                    Judge::Anomaly(d) => {
                        let e = d.update(now, v);
                        g.last_expected = Some(e.expected);
                        g.last_bounds = Some((e.lower, e.upper));
                        if e.anomalous { Level::Alert } else { Level::Ok }
                    }
                    Judge::Threshold(t) => t.update(v),
                };
                g.last_value = v;
                g.last_data = Some(now);
                if level != Level::Ok {
                    g.last_bad = Some(now);
                }
                if level == Level::Alert {
                    g.last_alert = Some(now);
                }
                g.recent.push_back((now, level));
            }
            while g
                .recent
                .front()
                .is_some_and(|&(t, _)| now.saturating_since(t) > keep)
            {
                g.recent.pop_front();
            }
            let (mut n, mut alert, mut warn) = (0usize, 0usize, 0usize);
            for &(t, l) in &g.recent {
                if now.saturating_since(t) <= cfg.trigger_window {
                    n += 1;
                    alert += usize::from(l == Level::Alert);
                    warn += usize::from(l >= Level::Warn);
                }
            }
            let frac = |k: usize| if n == 0 { 0.0 } else { k as f64 / n as f64 };
            let since = |t: Option<Timestamp>| {
                t.is_none_or(|b| now.saturating_since(b) >= cfg.recovery_window)
            };
            let alert_clean = since(g.last_alert);
            let bad_clean = since(g.last_bad);
            let no_data = cfg
                .no_data_timeframe
                .is_some_and(|nd| g.last_data.is_none_or(|t| now.saturating_since(t) >= nd));
            let prev = g.state;
            let next = if no_data {
                MonitorState::NoData
            } else if (frac(alert) >= cfg.trigger_fraction && alert > 0)
                || (prev == MonitorState::Alert && !alert_clean)
            {
                MonitorState::Alert
            } else if (frac(warn) >= cfg.trigger_fraction && warn > 0)
                || (matches!(prev, MonitorState::Alert | MonitorState::Warn) && !bad_clean)
            {
                MonitorState::Warn
            } else if prev == MonitorState::NoData && n == 0 {
                MonitorState::NoData
            } else {
                MonitorState::Ok
            };
            let mut renotify = false;
            if next == prev {
                if next != MonitorState::Ok
                    && let (Some(every), Some(last)) = (cfg.renotify_interval, g.last_notified)
                {
                    renotify = now.saturating_since(last) >= every;
                }
                if !renotify {
                    continue;
                }
            }
            g.state = next;
            g.last_notified = Some(now);
            out.push(Alert {
                monitor: cfg.name.clone(),
                group: tags.clone(),
                state: next,
                previous: prev,
                timestamp: now,
                value: g.last_value,
                expected: g.last_expected,
                bounds: g.last_bounds,
                bad_fraction: frac(warn),
                renotification: renotify,
            });
        }
        self.stats.alerts += out.len() as u64;
        out
    }
}

fn aggregate(a: Aggregation, v: &[f64]) -> f64 {
    match a {
        Aggregation::Avg => v.iter().sum::<f64>() / v.len() as f64,
        Aggregation::Sum => v.iter().sum(),
        Aggregation::Min => v.iter().copied().fold(f64::INFINITY, f64::min),
        Aggregation::Max => v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        Aggregation::Count => v.len() as f64,
        Aggregation::Last => v.last().copied().unwrap_or(f64::NAN),
    }
}
