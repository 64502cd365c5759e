//! `monitors:`, `watchdog:` and `notifiers:`: the configuration of the agent's alerting,
//! parsed with the rest of [`crate::config`] and validated by [`validate`] (every error
//! names its key path, e.g. `monitors[2].critical_recovery`).

use std::collections::BTreeMap;

use meshmon_alert::anomaly::{AnomalyMonitorConfig, Direction};
use meshmon_alert::monitor::Aggregation;
use meshmon_alert::threshold::{Comparator, ThresholdConfig, ThresholdDetector, ThresholdError};
use meshmon_alert::{Algorithm, DetectorConfig, Seasonality};
use serde::{Deserialize, Serialize};

use crate::config::Dur;

/// What a monitor watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MonitorKind {
    /// A metric query against static warning / critical thresholds.
    Metric,
    /// A metric query judged by an anomaly detector (Datadog's anomaly monitor).
    Anomaly,
    /// The number of log lines of a pattern, or of a service / status, over a window.
    Log,
    /// Errors per request of one service over a window (APM RED data).
    TraceErrorRate,
    /// A latency percentile of one service over a window, in seconds.
    TraceLatency,
}

impl MonitorKind {
    /// The API's `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Metric => "metric",
            Self::Anomaly => "anomaly",
            Self::Log => "log",
            Self::TraceErrorRate => "trace_error_rate",
            Self::TraceLatency => "trace_latency",
        }
    }
}

/// A latency percentile of the RED data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Percentile {
    /// Median.
    #[serde(rename = "p50")]
    P50,
    /// 95th percentile.
    #[serde(rename = "p95")]
    P95,
    /// 99th percentile.
    #[serde(rename = "p99")]
    P99,
}

impl Percentile {
    /// `p95`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::P50 => "p50",
            Self::P95 => "p95",
            Self::P99 => "p99",
        }
    }

    /// The suffix of the `trace.<name>.duration.by.service.<suffix>` series.
    pub fn series_suffix(self) -> &'static str {
        match self {
            Self::P50 => "50p",
            Self::P95 => "95p",
            Self::P99 => "99p",
        }
    }
}

/// The default evaluation interval of a monitor.
pub const DEFAULT_INTERVAL: Dur = Dur::secs(60);

fn default_interval() -> Dur {
    DEFAULT_INTERVAL
}

/// One entry of `monitors:`. Which keys apply depends on `type` (CONFIG.md lists them);
/// a key that does not apply to the type is an error.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct MonitorSpec {
    /// Stable id (API, state file, Alertmanager label); default: the name, slugged.
    #[serde(default)]
    pub id: Option<String>,
    /// Name (notification titles, Alertmanager's `alertname`).
    pub name: String,
    /// `metric`, `anomaly`, `log`, `trace_error_rate` or `trace_latency`.
    #[serde(rename = "type")]
    pub kind: MonitorKind,
    /// How often it is evaluated.
    #[serde(default = "default_interval")]
    pub interval: Dur,
    /// Re-notify while not OK this often; `null`: never.
    #[serde(default)]
    pub renotify_interval: Option<Dur>,
    /// NO DATA after this long without a value; `null`: never.
    #[serde(default)]
    pub no_data_timeframe: Option<Dur>,
    /// `metric`/`anomaly`: the series name.
    #[serde(default)]
    pub metric: Option<String>,
    /// `metric`/`anomaly`: tag filters (`key:value`, `key:*`) every series must match.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Time aggregation over `window` per series: `avg`, `sum`, `min`, `max`, `last`
    /// (`count` too); default `avg` (`max` for `trace_latency`).
    #[serde(default)]
    pub aggregation: Option<Aggregation>,
    /// `metric`/`anomaly`: how the series are combined; default `sum`.
    #[serde(default)]
    pub space_aggregation: Option<Aggregation>,
    /// The window the value is computed over; default 5m (`anomaly`: the interval).
    #[serde(default)]
    pub window: Option<Dur>,
    /// `log`/`trace_*`: the service.
    #[serde(default)]
    pub service: Option<String>,
    /// `log`: count only lines of this status (`error`, `warn`, …).
    #[serde(default)]
    pub status: Option<String>,
    /// `log`: count only this pattern id (of `service`, optionally `source`).
    #[serde(default)]
    pub pattern: Option<u64>,
    /// `log`: the pattern's source.
    #[serde(default)]
    pub source: Option<String>,
    /// `trace_latency`: `p50`, `p95` (default) or `p99`.
    #[serde(default)]
    pub percentile: Option<Percentile>,
    /// Thresholds: `above` (default) or `below`.
    #[serde(default)]
    pub comparator: Option<Comparator>,
    /// Threshold monitors: the warning threshold; `anomaly`: the anomalous fraction of
    /// the trigger window that makes WARN.
    #[serde(default)]
    pub warning: Option<f64>,
    /// Threshold monitors: the critical threshold (required); `anomaly`: the anomalous
    /// fraction of the trigger window that makes ALERT (default 0.9).
    #[serde(default)]
    pub critical: Option<f64>,
    /// Leave WARN only past this (default `warning`; `anomaly`: a fraction, default 0).
    #[serde(default)]
    pub warning_recovery: Option<f64>,
    /// Leave ALERT only past this (default `critical`; `anomaly`: a fraction, default 0).
    #[serde(default)]
    pub critical_recovery: Option<f64>,
    /// `anomaly`: `basic`, `agile` (default) or `robust`.
    #[serde(default)]
    pub algorithm: Option<Algorithm>,
    /// `anomaly`: band half-width in deviations (default 3).
    #[serde(default)]
    pub bounds: Option<f64>,
    /// `anomaly`: `above`, `below` or `both` (default).
    #[serde(default)]
    pub direction: Option<Direction>,
    /// `anomaly`: `auto` (default), `none`, `hourly`, `daily`, `weekly`.
    #[serde(default)]
    pub seasonality: Option<Seasonality>,
    /// `anomaly`: the window the alert fraction is measured over (default 15m).
    #[serde(default)]
    pub trigger_window: Option<Dur>,
    /// `anomaly`: the window the recovery fraction is measured over (default 15m).
    #[serde(default)]
    pub recovery_window: Option<Dur>,
    /// `anomaly`: points before anything can be anomalous (default 32).
    #[serde(default)]
    pub warmup_points: Option<u32>,
    /// Extra labels for notifiers (Alertmanager labels, webhook body).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl MonitorSpec {
    /// A spec of `kind` named `name` with every optional key unset.
    pub fn new(name: &str, kind: MonitorKind) -> Self {
        MonitorSpec {
            id: None,
            name: name.to_owned(),
            kind,
            interval: DEFAULT_INTERVAL,
            renotify_interval: None,
            no_data_timeframe: None,
            metric: None,
            tags: Vec::new(),
            aggregation: None,
            space_aggregation: None,
            window: None,
            service: None,
            status: None,
            pattern: None,
            source: None,
            percentile: None,
            comparator: None,
            warning: None,
            critical: None,
            warning_recovery: None,
            critical_recovery: None,
            algorithm: None,
            bounds: None,
            direction: None,
            seasonality: None,
            trigger_window: None,
            recovery_window: None,
            warmup_points: None,
            labels: BTreeMap::new(),
        }
    }

    /// The effective id.
    pub fn id(&self) -> String {
        match &self.id {
            Some(id) => id.clone(),
            None => slug(&self.name),
        }
    }

    /// The effective window.
    pub fn window(&self) -> std::time::Duration {
        match (self.window, self.kind) {
            (Some(w), _) => w.0,
            (None, MonitorKind::Anomaly) => self.interval.0,
            (None, _) => std::time::Duration::from_secs(300),
        }
    }

    /// The effective time aggregation.
    pub fn aggregation(&self) -> Aggregation {
        match (self.aggregation, self.kind) {
            (Some(a), _) => a,
            (None, MonitorKind::TraceLatency) => Aggregation::Max,
            (None, _) => Aggregation::Avg,
        }
    }

    /// The thresholds of a threshold monitor (`critical` is required).
    pub fn threshold_config(&self) -> Option<ThresholdConfig> {
        let mut t = ThresholdConfig::new(self.comparator.unwrap_or_default(), self.critical?);
        t.warning = self.warning;
        t.critical_recovery = self.critical_recovery;
        t.warning_recovery = self.warning_recovery;
        Some(t)
    }

    /// The anomaly monitor configuration of an `anomaly` monitor.
    pub fn anomaly_config(&self) -> AnomalyMonitorConfig {
        let mut d = DetectorConfig::new(self.algorithm.unwrap_or_default());
        if let Some(b) = self.bounds {
            d.bounds = b;
        }
        if let Some(s) = self.seasonality {
            d.seasonality = s;
        }
        if let Some(w) = self.warmup_points {
            d.warmup_points = w;
        }
        let mut c = AnomalyMonitorConfig::new(d.algorithm);
        c.detector = d;
        if let Some(dir) = self.direction {
            c.direction = dir;
        }
        if let Some(w) = self.trigger_window {
            c.trigger_window = w.0;
        }
        if let Some(w) = self.recovery_window {
            c.recovery_window = w.0;
        }
        if let Some(v) = self.critical {
            c.critical = v;
        }
        if let Some(v) = self.critical_recovery {
            c.critical_recovery = v;
        }
        c.warning = self.warning;
        c.warning_recovery = self.warning_recovery;
        c.no_data_timeframe = self.no_data_timeframe.map(|d| d.0);
        c
    }
}

/// `name` in lower case with runs of other characters than `[a-z0-9]` as one `-`.
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    if out.is_empty() {
        out.push_str("monitor");
    }
    out
}

/// `watchdog:`: Datadog-Watchdog-like monitors over every service's request rate,
/// error rate and p95 latency, created as services appear. On with no configuration.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct WatchdogSettings {
    /// Run the Watchdog.
    pub enabled: bool,
    /// How often each service's signals are evaluated.
    pub interval: Dur,
    /// The detector (`basic`, `agile`, `robust`).
    pub algorithm: Algorithm,
    /// Band half-width in deviations.
    pub bounds: f64,
    /// Points of a signal before anything can be anomalous.
    pub warmup_points: u32,
    /// Services with fewer requests per second are not judged.
    pub min_hits_per_second: f64,
    /// Points looked at for a trigger (at most 32).
    pub window_points: u32,
    /// Anomalous points on one side among the last `window_points` that make a finding.
    pub trigger_points: u32,
    /// Normal points in a row that end it.
    pub recovery_points: u32,
    /// Most services watched; more are counted and skipped.
    pub max_services: usize,
}

impl Default for WatchdogSettings {
    fn default() -> Self {
        WatchdogSettings {
            enabled: true,
            interval: Dur::secs(60),
            algorithm: Algorithm::Robust,
            bounds: 3.0,
            warmup_points: 32,
            min_hits_per_second: 0.1,
            window_points: 5,
            trigger_points: 3,
            recovery_points: 10,
            max_services: 1000,
        }
    }
}

impl WatchdogSettings {
    /// The crate's Watchdog configuration.
    pub fn watchdog_config(&self) -> meshmon_alert::watchdog::WatchdogConfig {
        let mut d = DetectorConfig::new(self.algorithm);
        d.bounds = self.bounds;
        d.warmup_points = self.warmup_points;
        let mut w = meshmon_alert::watchdog::WatchdogConfig::default();
        w.detector = d;
        w.min_hits_per_second = self.min_hits_per_second;
        w.window_points = self.window_points;
        w.trigger_points = self.trigger_points;
        w.recovery_points = self.recovery_points;
        w.max_endpoints = self.max_services;
        w
    }
}

/// `notifiers:`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct NotifiersConfig {
    /// Log every transition (and re-notification) as a line of the agent's log.
    pub log: bool,
    /// Webhooks: an HTTP POST of a JSON body per notification.
    pub webhooks: Vec<WebhookConfig>,
    /// Prometheus Alertmanager instances (API v2).
    pub alertmanagers: Vec<AlertmanagerConfig>,
}

impl Default for NotifiersConfig {
    fn default() -> Self {
        NotifiersConfig {
            log: true,
            webhooks: Vec::new(),
            alertmanagers: Vec::new(),
        }
    }
}

fn d_timeout() -> Dur {
    Dur::secs(5)
}
fn d_retries() -> u32 {
    3
}
fn d_backoff() -> Dur {
    Dur(std::time::Duration::from_millis(500))
}
fn d_queue() -> usize {
    1000
}
fn d_resend() -> Dur {
    Dur::secs(60)
}

/// One entry of `notifiers.webhooks`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct WebhookConfig {
    /// `http://host:port/path` (plain HTTP).
    pub url: String,
    /// Timeout of one POST.
    #[serde(default = "d_timeout")]
    pub timeout: Dur,
    /// Retries after a 5xx answer, a timeout or a connection error.
    #[serde(default = "d_retries")]
    pub retries: u32,
    /// First retry delay, doubled at each retry.
    #[serde(default = "d_backoff")]
    pub backoff: Dur,
    /// Notifications queued for this webhook; more are dropped and counted.
    #[serde(default = "d_queue")]
    pub queue: usize,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// One entry of `notifiers.alertmanagers`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AlertmanagerConfig {
    /// Base URL, e.g. `http://127.0.0.1:9093` (`/api/v2/alerts` is appended).
    pub url: String,
    /// Timeout of one POST.
    #[serde(default = "d_timeout")]
    pub timeout: Dur,
    /// Retries after a 5xx answer, a timeout or a connection error.
    #[serde(default = "d_retries")]
    pub retries: u32,
    /// First retry delay, doubled at each retry.
    #[serde(default = "d_backoff")]
    pub backoff: Dur,
    /// Notifications queued; more are dropped and counted.
    #[serde(default = "d_queue")]
    pub queue: usize,
    /// How often active alerts are sent again (Prometheus' `resend_delay`, 1m).
    #[serde(default = "d_resend")]
    pub resend_interval: Dur,
    /// Labels added to every alert.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Why a value is not allowed: (key path, message).
pub type Invalid = (String, String);

fn threshold_key(i: usize, e: &ThresholdError) -> Invalid {
    let field = match e {
        ThresholdError::NotFinite { field, .. } | ThresholdError::Order { field, .. } => field,
        _ => "critical",
    };
    (format!("monitors[{i}].{field}"), e.to_string())
}

/// Checks `monitors:`, `watchdog:` and `notifiers:`.
pub fn validate(
    monitors: &[MonitorSpec],
    watchdog: &WatchdogSettings,
    notifiers: &NotifiersConfig,
) -> Result<(), Invalid> {
    let mut ids = std::collections::BTreeSet::new();
    for (i, m) in monitors.iter().enumerate() {
        let key = |k: &str| format!("monitors[{i}].{k}");
        let err = |k: &str, msg: &str| Err((key(k), msg.to_owned()));
        if m.name.trim().is_empty() {
            return err("name", "must not be empty");
        }
        let id = m.id();
        if id.is_empty() || id.contains(char::is_whitespace) {
            return err("id", "must be non-empty without spaces");
        }
        if id.starts_with("watchdog:") {
            return err("id", "the prefix watchdog: is reserved for the Watchdog");
        }
        if !ids.insert(id.clone()) {
            return Err((key("id"), format!("{id:?} is used by an earlier monitor")));
        }
        if m.interval.0.is_zero() {
            return err("interval", "must be greater than 0");
        }
        for (k, d) in [
            ("renotify_interval", m.renotify_interval),
            ("no_data_timeframe", m.no_data_timeframe),
            ("window", m.window),
            ("trigger_window", m.trigger_window),
            ("recovery_window", m.recovery_window),
        ] {
            if d.is_some_and(|d| d.0.is_zero()) {
                return err(k, "must be greater than 0");
            }
        }
        // Keys that do not apply to the type.
        let anomaly_keys = [
            ("algorithm", m.algorithm.is_some()),
            ("bounds", m.bounds.is_some()),
            ("direction", m.direction.is_some()),
            ("seasonality", m.seasonality.is_some()),
            ("trigger_window", m.trigger_window.is_some()),
            ("recovery_window", m.recovery_window.is_some()),
            ("warmup_points", m.warmup_points.is_some()),
        ];
        let query_keys = [
            ("metric", m.metric.is_some()),
            ("tags", !m.tags.is_empty()),
            ("space_aggregation", m.space_aggregation.is_some()),
        ];
        let log_keys = [
            ("status", m.status.is_some()),
            ("pattern", m.pattern.is_some()),
            ("source", m.source.is_some()),
        ];
        let mut not_for: Vec<(&str, bool)> = Vec::new();
        match m.kind {
            MonitorKind::Metric => {
                not_for.extend(anomaly_keys);
                not_for.extend(log_keys);
                not_for.push(("service", m.service.is_some()));
                not_for.push(("percentile", m.percentile.is_some()));
            }
            MonitorKind::Anomaly => {
                not_for.extend(log_keys);
                not_for.push(("service", m.service.is_some()));
                not_for.push(("percentile", m.percentile.is_some()));
                not_for.push(("comparator", m.comparator.is_some()));
            }
            MonitorKind::Log => {
                not_for.extend(anomaly_keys);
                not_for.extend(query_keys);
                not_for.push(("percentile", m.percentile.is_some()));
                not_for.push(("aggregation", m.aggregation.is_some()));
            }
            MonitorKind::TraceErrorRate | MonitorKind::TraceLatency => {
                not_for.extend(anomaly_keys);
                not_for.extend(query_keys);
                not_for.extend(log_keys);
                if m.kind == MonitorKind::TraceErrorRate {
                    not_for.push(("percentile", m.percentile.is_some()));
                    not_for.push(("aggregation", m.aggregation.is_some()));
                }
            }
        }
        if let Some((k, _)) = not_for.iter().find(|(_, set)| *set) {
            return Err((
                key(k),
                format!("does not apply to a {} monitor", m.kind.as_str()),
            ));
        }
        match m.kind {
            MonitorKind::Metric | MonitorKind::Anomaly => {
                match &m.metric {
                    Some(n) if !n.trim().is_empty() => {}
                    _ => return err("metric", "a series name is required"),
                }
                for (j, t) in m.tags.iter().enumerate() {
                    if t.is_empty() || t.contains(char::is_whitespace) {
                        return Err((
                            format!("monitors[{i}].tags[{j}]"),
                            format!("{t:?} is not a key:value (or key:*) filter"),
                        ));
                    }
                }
            }
            MonitorKind::Log => {
                if m.pattern.is_some() && m.service.is_none() {
                    return err("service", "a pattern id needs its service");
                }
                if m.source.is_some() && m.pattern.is_none() {
                    return err("source", "only applies with a pattern id");
                }
            }
            MonitorKind::TraceErrorRate | MonitorKind::TraceLatency => {
                if m.service.as_deref().is_none_or(|s| s.trim().is_empty()) {
                    return err("service", "a service is required");
                }
            }
        }
        if m.kind == MonitorKind::Anomaly {
            m.anomaly_config().validate().map_err(|e| {
                let field = match &e {
                    meshmon_alert::ConfigError::Invalid { field, .. } => *field,
                    _ => "algorithm",
                };
                (key(field), e.to_string())
            })?;
        } else {
            let Some(t) = m.threshold_config() else {
                return err("critical", "a critical threshold is required");
            };
            ThresholdDetector::new(t).map_err(|e| threshold_key(i, &e))?;
        }
    }
    let w = watchdog;
    if w.interval.0.is_zero() {
        return Err(("watchdog.interval".into(), "must be greater than 0".into()));
    }
    w.watchdog_config().detector.validate().map_err(|e| {
        let field = match &e {
            meshmon_alert::ConfigError::Invalid { field, .. } => *field,
            _ => "algorithm",
        };
        (format!("watchdog.{field}"), e.to_string())
    })?;
    if !(w.min_hits_per_second.is_finite() && w.min_hits_per_second >= 0.0) {
        return Err((
            "watchdog.min_hits_per_second".into(),
            "must be a finite number >= 0".into(),
        ));
    }
    if !(1..=32).contains(&w.window_points) {
        return Err(("watchdog.window_points".into(), "must be in 1..=32".into()));
    }
    if w.trigger_points == 0 || w.trigger_points > w.window_points {
        return Err((
            "watchdog.trigger_points".into(),
            "must be in 1..=window_points".into(),
        ));
    }
    if w.recovery_points == 0 {
        return Err((
            "watchdog.recovery_points".into(),
            "must be greater than 0".into(),
        ));
    }
    if w.max_services == 0 {
        return Err((
            "watchdog.max_services".into(),
            "must be greater than 0".into(),
        ));
    }
    let targets = notifiers
        .webhooks
        .iter()
        .enumerate()
        .map(|(i, h)| {
            (
                format!("notifiers.webhooks[{i}]"),
                &h.url,
                h.timeout,
                h.queue,
            )
        })
        .chain(notifiers.alertmanagers.iter().enumerate().map(|(i, a)| {
            (
                format!("notifiers.alertmanagers[{i}]"),
                &a.url,
                a.timeout,
                a.queue,
            )
        }));
    for (k, url, timeout, queue) in targets {
        match url.parse::<hyper::Uri>() {
            Ok(u) if u.scheme_str() == Some("http") && u.authority().is_some() => {}
            Ok(_) => {
                return Err((
                    format!("{k}.url"),
                    format!("{url:?}: an http:// URL with a host is required"),
                ));
            }
            Err(e) => return Err((format!("{k}.url"), format!("{url:?}: {e}"))),
        }
        if timeout.0.is_zero() {
            return Err((format!("{k}.timeout"), "must be greater than 0".into()));
        }
        if queue == 0 {
            return Err((format!("{k}.queue"), "must be greater than 0".into()));
        }
    }
    for (i, a) in notifiers.alertmanagers.iter().enumerate() {
        if a.resend_interval.0.is_zero() {
            return Err((
                format!("notifiers.alertmanagers[{i}].resend_interval"),
                "must be greater than 0".into(),
            ));
        }
        for k in a.labels.keys() {
            if !valid_label_name(k) {
                return Err((
                    format!("notifiers.alertmanagers[{i}].labels.{k}"),
                    "not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)".into(),
                ));
            }
        }
    }
    for (i, m) in monitors.iter().enumerate() {
        for k in m.labels.keys() {
            if !valid_label_name(k) {
                return Err((
                    format!("monitors[{i}].labels.{k}"),
                    "not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)".into(),
                ));
            }
        }
    }
    Ok(())
}

/// A Prometheus label name.
pub fn valid_label_name(k: &str) -> bool {
    let mut c = k.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(yaml: &str) -> Result<(), Invalid> {
        let m: Vec<MonitorSpec> =
            serde_norway::from_str(yaml).map_err(|e| ("parse".into(), e.to_string()))?;
        validate(
            &m,
            &WatchdogSettings::default(),
            &NotifiersConfig::default(),
        )
    }

    #[test]
    fn monitor_errors_name_the_key() {
        let cases = [
            (
                "- {name: a, type: metric, critical: 1}",
                "monitors[0].metric",
            ),
            (
                "- {name: a, type: metric, metric: m}",
                "monitors[0].critical",
            ),
            (
                "- {name: a, type: metric, metric: m, critical: 10, warning: 20}",
                "monitors[0].warning",
            ),
            (
                "- {name: a, type: metric, metric: m, critical: 10, critical_recovery: 12}",
                "monitors[0].critical_recovery",
            ),
            (
                "- {name: a, type: metric, metric: m, critical: 1, algorithm: basic}",
                "monitors[0].algorithm",
            ),
            (
                "- {name: a, type: anomaly, metric: m, bounds: -1}",
                "monitors[0].bounds",
            ),
            (
                "- {name: a, type: anomaly, metric: m, critical: 2}",
                "monitors[0].critical",
            ),
            (
                "- {name: a, type: trace_error_rate, critical: 0.1}",
                "monitors[0].service",
            ),
            (
                "- {name: a, type: log, pattern: 3, critical: 1}",
                "monitors[0].service",
            ),
            (
                "- {name: a, type: metric, metric: m, critical: 1}\n- {name: A, type: metric, metric: m, critical: 1}",
                "monitors[1].id",
            ),
            (
                "- {name: a, type: metric, metric: m, critical: 1, interval: 0s}",
                "monitors[0].interval",
            ),
            (
                "- {name: a, type: metric, metric: m, critical: 1, labels: {bad-label: x}}",
                "monitors[0].labels.bad-label",
            ),
        ];
        for (yaml, key) in cases {
            match check(yaml) {
                Err((k, msg)) => assert_eq!(k, key, "{yaml}: {msg}"),
                Ok(()) => panic!("{yaml}: accepted"),
            }
        }
        check(
            "- {name: ok, type: trace_latency, service: reviews, critical: 0.5, percentile: p99}",
        )
        .unwrap();
        check("- {name: ok, type: anomaly, metric: m, algorithm: robust, bounds: 2, trigger_window: 5m}")
            .unwrap();
        check("- {name: ok, type: log, service: reviews, status: error, critical: 10}").unwrap();
    }

    #[test]
    fn notifier_and_watchdog_errors_name_the_key() {
        let mut n = NotifiersConfig::default();
        n.webhooks
            .push(serde_norway::from_str("url: https://x/y").unwrap());
        let e = validate(&[], &WatchdogSettings::default(), &n).unwrap_err();
        assert_eq!(e.0, "notifiers.webhooks[0].url");
        let w = WatchdogSettings {
            trigger_points: 9,
            ..WatchdogSettings::default()
        };
        let e = validate(&[], &w, &NotifiersConfig::default()).unwrap_err();
        assert_eq!(e.0, "watchdog.trigger_points");
        assert_eq!(slug("Reviews p95 (prod)!"), "reviews-p95-prod");
    }
}
