//! The monitors' runtime: what each monitor copies out of the store ([`Engine::copy_inputs`],
//! under the store's read lock), how it is judged ([`Engine::evaluate`], outside the lock),
//! the state, transitions and history it keeps, and its persisted form.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use meshmon_alert::MonitorState;
use meshmon_alert::anomaly::AnomalyMonitor;
use meshmon_alert::monitor::Aggregation;
use meshmon_alert::threshold::{Comparator, Level, ThresholdDetector};
use meshmon_alert::watchdog::{RedPoint, Signal, Watchdog};
use meshmon_core::Timestamp;
use serde::{Deserialize, Serialize};

use super::config::{MonitorKind, MonitorSpec, Percentile, WatchdogSettings};
use crate::config::Dur;
use crate::store::{ServiceRed, Store};

/// Evaluations kept per monitor for the API's `history`.
pub const HISTORY_POINTS: usize = 360;
/// The longest tick of the evaluation task.
pub const MAX_TICK: Duration = Duration::from_secs(1);
/// Transitions kept per monitor (older ones are dropped and counted).
pub const MAX_TRANSITIONS: usize = 200;

/// One recorded state change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TransitionRec {
    /// When.
    pub at: Timestamp,
    /// Previous state.
    pub from: MonitorState,
    /// New state.
    pub to: MonitorState,
    /// The value that caused it.
    pub value: Option<f64>,
    /// The band it was judged against (anomaly, Watchdog).
    pub band: Option<(f64, f64)>,
    /// The threshold crossed (a value, or a fraction for anomaly monitors).
    pub threshold: Option<f64>,
    /// Why, in words.
    pub reason: String,
}

/// One evaluation, for the API's `history`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistPoint {
    /// Evaluation time.
    pub t: Timestamp,
    /// The value.
    pub value: f64,
    /// Band (anomaly, Watchdog).
    pub lower: Option<f64>,
    /// Band.
    pub upper: Option<f64>,
    /// Anomalous (anomaly, Watchdog) or past a threshold.
    pub anomalous: bool,
}

/// What every monitor keeps, whatever judges it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// Current state.
    pub state: MonitorState,
    /// Since when.
    pub since: Timestamp,
    /// When the monitor was created (NO DATA counts from here until a first value).
    pub created: Timestamp,
    /// Last value.
    pub value: Option<f64>,
    /// Last band.
    pub band: Option<(f64, f64)>,
    /// Last evaluation.
    pub last_eval: Option<Timestamp>,
    /// Last evaluation with a value.
    pub last_data: Option<Timestamp>,
    /// Last notification (transition or reminder).
    pub last_notified: Option<Timestamp>,
    /// Human summary of the last evaluation.
    pub message: String,
    /// Recorded transitions, oldest first.
    pub transitions: VecDeque<TransitionRec>,
    /// Transitions dropped by [`MAX_TRANSITIONS`].
    pub transitions_dropped: u64,
    /// Last evaluations, oldest first.
    pub history: VecDeque<HistPoint>,
    /// `log` monitors: cumulative counts seen, for the count over the window.
    pub counts: VecDeque<(Timestamp, u64)>,
}

impl Status {
    fn new(now: Timestamp) -> Self {
        Status {
            state: MonitorState::Ok,
            since: now,
            created: now,
            value: None,
            band: None,
            last_eval: None,
            last_data: None,
            last_notified: None,
            message: "not evaluated yet".into(),
            transitions: VecDeque::new(),
            transitions_dropped: 0,
            history: VecDeque::new(),
            counts: VecDeque::new(),
        }
    }

    fn record(&mut self, t: TransitionRec) {
        self.state = t.to;
        self.since = t.at;
        self.transitions.push_back(t);
        while self.transitions.len() > MAX_TRANSITIONS {
            self.transitions.pop_front();
            self.transitions_dropped += 1;
        }
    }

    fn push_history(&mut self, p: HistPoint) {
        self.history.push_back(p);
        while self.history.len() > HISTORY_POINTS {
            self.history.pop_front();
        }
    }
}

/// How a configured monitor is judged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Judge {
    /// Static thresholds with recovery thresholds.
    Threshold(ThresholdDetector),
    /// Datadog's anomaly monitor (detector + trigger / recovery windows).
    Anomaly(Box<AnomalyMonitor>),
}

/// A monitor from `monitors:`.
#[derive(Clone, Debug)]
pub struct Configured {
    /// Its configuration.
    pub spec: MonitorSpec,
    /// Effective id.
    pub id: String,
    /// The query in Datadog's notation.
    pub query: String,
    /// Its judge.
    pub judge: Judge,
    /// Its state.
    pub status: Status,
}

/// A notification: a transition or a reminder of one monitor.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    /// Monitor id.
    pub id: String,
    /// Monitor name.
    pub name: String,
    /// Monitor type (API's `type`).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The query.
    pub query: String,
    /// Service, when the monitor is about one.
    pub service: Option<String>,
    /// Watchdog signal.
    pub signal: Option<&'static str>,
    /// Labels from the configuration.
    pub labels: BTreeMap<String, String>,
    /// New state.
    pub state: MonitorState,
    /// Previous state.
    pub previous: MonitorState,
    /// When.
    pub at: Timestamp,
    /// Since when the monitor is in `state` (the alert's start for a reminder).
    pub since: Timestamp,
    /// The value.
    pub value: Option<f64>,
    /// The band.
    pub band: Option<(f64, f64)>,
    /// The threshold crossed.
    pub threshold: Option<f64>,
    /// Why.
    pub reason: String,
    /// A reminder (`renotify_interval`), not a transition.
    pub renotification: bool,
    /// The state of a monitor already not OK when the agent started: only for notifiers
    /// that keep alerts alive (Alertmanager), never logged or posted to webhooks again.
    #[serde(skip)]
    pub resumed: bool,
}

/// The API's `signal` of a Watchdog signal.
pub fn signal_name(s: Signal) -> &'static str {
    match s {
        Signal::RequestRate => "request_rate",
        Signal::ErrorRate => "error_rate",
        Signal::Latency => "latency",
    }
}

const SIGNALS: [Signal; 3] = [Signal::RequestRate, Signal::ErrorRate, Signal::Latency];

/// One service under the Watchdog.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WatchedService {
    /// Cumulative (time, hits, errors) at the last evaluation.
    pub last: Option<(Timestamp, u64, u64)>,
    /// Request rate, error rate, p95 latency.
    pub signals: [Status; 3],
}

/// The Watchdog: the crate's [`Watchdog`] fed once per interval per service, each
/// signal shown as a monitor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WatchdogRt {
    /// Its settings (state is restored only under the same settings).
    pub settings: WatchdogSettings,
    /// The crate's Watchdog (detectors, episodes).
    pub watchdog: Watchdog,
    /// Watched services.
    pub services: BTreeMap<String, WatchedService>,
    /// Last evaluation.
    pub last_eval: Option<Timestamp>,
    /// Services not watched because `max_services` was reached.
    pub services_dropped: u64,
}

/// The persisted state (`state/monitors.json`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Persisted {
    /// Configured monitors by id: their configuration, judge and status.
    pub monitors: BTreeMap<String, (MonitorSpec, Judge, Status)>,
    /// The Watchdog.
    pub watchdog: Option<WatchdogRt>,
}

/// What one monitor copied out of the store.
#[derive(Clone, Debug)]
pub enum Raw {
    /// Not due.
    Skip,
    /// Points `(secs, value)` per series.
    Series(Vec<Vec<(f64, f64)>>),
    /// Hits and errors points.
    Trace(Vec<(f64, f64)>, Vec<(f64, f64)>),
    /// A cumulative log count (`None`: the pattern is not there).
    Count(Option<u64>),
}

/// The Watchdog's inputs.
#[derive(Clone, Debug, Default)]
pub struct WatchdogRaw {
    /// The RED table.
    pub services: Vec<ServiceRed>,
    /// p95 points (seconds) per service since the last evaluation.
    pub p95: BTreeMap<String, Vec<f64>>,
}

/// Everything one evaluation round needs from the store.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    /// One per configured monitor, in order.
    pub monitors: Vec<Raw>,
    /// The Watchdog's, when due.
    pub watchdog: Option<WatchdogRaw>,
}

/// Counters of the engine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EngineStats {
    /// Monitor evaluations.
    pub evaluations: u64,
    /// Transitions.
    pub transitions: u64,
    /// Re-notifications.
    pub renotifications: u64,
    /// Watchdog stories (findings started).
    pub stories: u64,
}

/// All monitors and the Watchdog.
#[derive(Clone, Debug)]
pub struct Engine {
    /// Configured monitors, in configuration order.
    pub configured: Vec<Configured>,
    /// The Watchdog (when enabled).
    pub watchdog: Option<WatchdogRt>,
    /// Counters.
    pub stats: EngineStats,
}

fn due(last: Option<Timestamp>, interval: Duration, now: Timestamp) -> bool {
    match last {
        None => true,
        Some(t) if now <= t => false,
        // A tick a little early still counts (timers and clocks drift apart).
        Some(t) => now.saturating_since(t).as_secs_f64() >= interval.as_secs_f64() * 0.9,
    }
}

fn fmt_dur(d: Duration) -> String {
    Dur(d).to_string()
}

fn agg_name(a: Aggregation) -> &'static str {
    match a {
        Aggregation::Avg => "avg",
        Aggregation::Sum => "sum",
        Aggregation::Min => "min",
        Aggregation::Max => "max",
        Aggregation::Count => "count",
        Aggregation::Last => "last",
    }
}

fn aggregate(a: Aggregation, v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    Some(match a {
        Aggregation::Avg => v.iter().sum::<f64>() / v.len() as f64,
        Aggregation::Sum => v.iter().sum(),
        Aggregation::Min => v.iter().copied().fold(f64::INFINITY, f64::min),
        Aggregation::Max => v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        Aggregation::Count => v.len() as f64,
        Aggregation::Last => *v.last()?,
    })
}

/// The query of a monitor in Datadog's notation.
pub fn query_text(s: &MonitorSpec) -> String {
    let w = fmt_dur(s.window());
    let agg = agg_name(s.aggregation());
    let scope = |tags: &[String]| {
        if tags.is_empty() {
            "{*}".to_owned()
        } else {
            format!("{{{}}}", tags.join(","))
        }
    };
    let svc = s.service.clone().unwrap_or_default();
    match s.kind {
        MonitorKind::Metric => format!(
            "{agg}(last_{w}):{}:{}{}",
            agg_name(s.space_aggregation.unwrap_or(Aggregation::Sum)),
            s.metric.as_deref().unwrap_or(""),
            scope(&s.tags)
        ),
        MonitorKind::Anomaly => {
            let c = s.anomaly_config();
            format!(
                "{agg}(last_{w}):anomalies({}:{}{}, '{}', {})",
                agg_name(s.space_aggregation.unwrap_or(Aggregation::Sum)),
                s.metric.as_deref().unwrap_or(""),
                scope(&s.tags),
                c.detector.algorithm,
                c.detector.bounds
            )
        }
        MonitorKind::Log => {
            let mut tags = Vec::new();
            if let Some(v) = &s.service {
                tags.push(format!("service:{v}"));
            }
            if let Some(v) = &s.source {
                tags.push(format!("source:{v}"));
            }
            if let Some(v) = &s.status {
                tags.push(format!("status:{v}"));
            }
            if let Some(p) = s.pattern {
                tags.push(format!("pattern:{p}"));
            }
            format!("logs(last_{w}).count{}", scope(&tags))
        }
        MonitorKind::TraceErrorRate => format!(
            "sum(last_{w}):trace.*.errors{{service:{svc}}} / sum(last_{w}):trace.*.hits{{service:{svc}}}"
        ),
        MonitorKind::TraceLatency => format!(
            "{agg}(last_{w}):trace.*.duration.by.service.{}{{service:{svc}}}",
            s.percentile.unwrap_or(Percentile::P95).series_suffix()
        ),
    }
}

fn level_state(l: Level) -> MonitorState {
    match l {
        Level::Ok => MonitorState::Ok,
        Level::Warn => MonitorState::Warn,
        Level::Alert => MonitorState::Alert,
    }
}

fn fmt_v(v: f64) -> String {
    if v.abs() >= 1e5 || (v != 0.0 && v.abs() < 1e-3) {
        format!("{v:.4e}")
    } else {
        let s = format!("{v:.4}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        s.to_owned()
    }
}

fn finite_band(lo: f64, hi: f64) -> Option<(f64, f64)> {
    (lo.is_finite() && hi.is_finite()).then_some((lo, hi))
}

/// The `trace.*` metric names held, listed once per evaluation round.
struct TraceNames<'s> {
    store: &'s Store,
    names: std::cell::OnceCell<Vec<String>>,
}

impl TraceNames<'_> {
    fn with(&self, suffix: &str) -> impl Iterator<Item = &str> {
        let names = self.names.get_or_init(|| {
            self.store
                .names()
                .into_iter()
                .map(|(n, _)| n)
                .filter(|n| n.starts_with("trace."))
                .collect()
        });
        names
            .iter()
            .filter(move |n| n.ends_with(suffix) && n.len() > "trace.".len() + suffix.len())
            .map(String::as_str)
    }
}

fn points(store: &Store, name: &str, filters: &[String], since: Timestamp) -> Vec<Vec<(f64, f64)>> {
    store
        .query(name, filters, Some(since))
        .into_iter()
        .map(|s| s.points.into_iter().map(|p| (p.t, p.v)).collect())
        .collect()
}

impl Engine {
    /// Builds every monitor of the (validated) configuration at time `now`.
    pub fn new(
        specs: &[MonitorSpec],
        watchdog: &WatchdogSettings,
        now: Timestamp,
    ) -> anyhow::Result<Self> {
        let mut configured = Vec::new();
        for s in specs {
            configured.push(Configured {
                id: s.id(),
                query: query_text(s),
                judge: new_judge(s)?,
                status: Status::new(now),
                spec: s.clone(),
            });
        }
        let watchdog = if watchdog.enabled {
            Some(WatchdogRt {
                settings: watchdog.clone(),
                watchdog: Watchdog::new(watchdog.watchdog_config())
                    .map_err(|e| anyhow::anyhow!("watchdog: {e}"))?,
                services: BTreeMap::new(),
                last_eval: None,
                services_dropped: 0,
            })
        } else {
            None
        };
        Ok(Engine {
            configured,
            watchdog,
            stats: EngineStats::default(),
        })
    }

    /// Takes back persisted state: a monitor's state only when its configuration is
    /// unchanged, the Watchdog's only under the same settings. Returns the ids whose
    /// state was dropped because the configuration changed.
    pub fn restore(&mut self, p: Persisted) -> Vec<String> {
        let mut dropped = Vec::new();
        let mut saved = p.monitors;
        for m in &mut self.configured {
            if let Some((spec, judge, status)) = saved.remove(&m.id) {
                if spec == m.spec {
                    m.judge = judge;
                    m.status = status;
                } else {
                    dropped.push(m.id.clone());
                }
            }
        }
        if let (Some(w), Some(saved)) = (&mut self.watchdog, p.watchdog) {
            if saved.settings == w.settings {
                *w = saved;
            } else {
                dropped.push("watchdog".into());
            }
        }
        dropped
    }

    /// The state to persist.
    pub fn persist(&self) -> Persisted {
        Persisted {
            monitors: self
                .configured
                .iter()
                .map(|m| {
                    (
                        m.id.clone(),
                        (m.spec.clone(), m.judge.clone(), m.status.clone()),
                    )
                })
                .collect(),
            watchdog: self.watchdog.clone(),
        }
    }

    /// The evaluation task's tick: the shortest interval, at most [`MAX_TICK`] (which
    /// monitors are due is decided on the agent's clock at each tick, so a clock that
    /// runs faster than real time — a test's, a demo's — is followed within a second).
    pub fn tick(&self) -> Duration {
        self.configured
            .iter()
            .map(|m| m.spec.interval.0)
            .chain(self.watchdog.as_ref().map(|w| w.settings.interval.0))
            .min()
            .unwrap_or(MAX_TICK)
            .min(MAX_TICK)
    }

    /// Copies what the monitors due at `now` need out of `store` (called under its read
    /// lock; nothing is judged here).
    pub fn copy_inputs(&self, store: &Store, now: Timestamp) -> Inputs {
        let mut out = Inputs::default();
        let trace_names = TraceNames {
            store,
            names: std::cell::OnceCell::new(),
        };
        for m in &self.configured {
            let s = &m.spec;
            if !due(m.status.last_eval, s.interval.0, now) {
                out.monitors.push(Raw::Skip);
                continue;
            }
            let since = now.saturating_sub(s.window());
            let raw = match s.kind {
                MonitorKind::Metric | MonitorKind::Anomaly => Raw::Series(points(
                    store,
                    s.metric.as_deref().unwrap_or(""),
                    &s.tags,
                    since,
                )),
                MonitorKind::TraceErrorRate => {
                    let f = [format!("service:{}", s.service.as_deref().unwrap_or(""))];
                    let mut hits = Vec::new();
                    let mut errors = Vec::new();
                    for n in trace_names.with(".hits") {
                        hits.extend(points(store, n, &f, since).into_iter().flatten());
                        let e = format!("{}.errors", &n[..n.len() - ".hits".len()]);
                        errors.extend(points(store, &e, &f, since).into_iter().flatten());
                    }
                    Raw::Trace(hits, errors)
                }
                MonitorKind::TraceLatency => {
                    let f = [format!("service:{}", s.service.as_deref().unwrap_or(""))];
                    let suffix = format!(
                        ".duration.by.service.{}",
                        s.percentile.unwrap_or(Percentile::P95).series_suffix()
                    );
                    let mut all = Vec::new();
                    for n in trace_names.with(&suffix) {
                        all.extend(points(store, n, &f, since));
                    }
                    Raw::Series(all)
                }
                MonitorKind::Log => {
                    let pats = store.patterns(s.service.as_deref());
                    let count = match s.pattern {
                        Some(id) => {
                            let mut found = None;
                            for p in pats.iter().filter(|p| {
                                p.id == id && s.source.as_ref().is_none_or(|src| &p.source == src)
                            }) {
                                let c = match &s.status {
                                    Some(st) => p.statuses.get(st).copied().unwrap_or(0),
                                    None => p.count,
                                };
                                *found.get_or_insert(0) += c;
                            }
                            found
                        }
                        None => Some(
                            pats.iter()
                                .map(|p| match &s.status {
                                    Some(st) => p.statuses.get(st).copied().unwrap_or(0),
                                    None => p.count,
                                })
                                .sum(),
                        ),
                    };
                    Raw::Count(count)
                }
            };
            out.monitors.push(raw);
        }
        if let Some(w) = &self.watchdog
            && due(w.last_eval, w.settings.interval.0, now)
        {
            let since = w
                .last_eval
                .unwrap_or_else(|| now.saturating_sub(w.settings.interval.0));
            let mut p95: BTreeMap<String, Vec<f64>> = BTreeMap::new();
            for n in trace_names.with(".duration.by.service.95p") {
                for s in store.query(n, &["service:*".to_owned()], Some(since)) {
                    let svc = s
                        .tags
                        .iter()
                        .find_map(|t| t.strip_prefix("service:"))
                        .unwrap_or("")
                        .to_owned();
                    let since_s = since.as_secs_f64();
                    p95.entry(svc)
                        .or_default()
                        .extend(s.points.iter().filter(|p| p.t > since_s).map(|p| p.v));
                }
            }
            out.watchdog = Some(WatchdogRaw {
                services: store.services().to_vec(),
                p95,
            });
        }
        out
    }

    /// Judges what [`copy_inputs`](Self::copy_inputs) copied; returns the notifications.
    pub fn evaluate(&mut self, inputs: Inputs, now: Timestamp) -> Vec<Event> {
        let mut events = Vec::new();
        for (m, raw) in self.configured.iter_mut().zip(inputs.monitors) {
            if matches!(raw, Raw::Skip) {
                continue;
            }
            self.stats.evaluations += 1;
            let before = m.status.transitions.len() + m.status.transitions_dropped as usize;
            evaluate_one(m, raw, now);
            let after = m.status.transitions.len() + m.status.transitions_dropped as usize;
            let ev = |t: &TransitionRec, m: &Configured, renotification: bool| Event {
                id: m.id.clone(),
                name: m.spec.name.clone(),
                kind: m.spec.kind.as_str(),
                query: m.query.clone(),
                service: m.spec.service.clone(),
                signal: None,
                labels: m.spec.labels.clone(),
                state: t.to,
                previous: t.from,
                at: now,
                since: m.status.since,
                value: t.value,
                band: t.band,
                threshold: t.threshold,
                reason: t.reason.clone(),
                renotification,
                resumed: false,
            };
            if after > before {
                let new = after - before;
                let ts: Vec<TransitionRec> = m
                    .status
                    .transitions
                    .iter()
                    .rev()
                    .take(new)
                    .rev()
                    .cloned()
                    .collect();
                for t in &ts {
                    self.stats.transitions += 1;
                    events.push(ev(t, m, false));
                }
                m.status.last_notified = Some(now);
            } else if m.status.state != MonitorState::Ok
                && let (Some(every), Some(last)) =
                    (m.spec.renotify_interval, m.status.last_notified)
                && now.saturating_since(last) >= every.0
            {
                let t = TransitionRec {
                    at: now,
                    from: m.status.state,
                    to: m.status.state,
                    value: m.status.value,
                    band: m.status.band,
                    threshold: None,
                    reason: format!("still {}: {}", m.status.state.as_str(), m.status.message),
                };
                self.stats.renotifications += 1;
                events.push(ev(&t, m, true));
                m.status.last_notified = Some(now);
            }
        }
        if let (Some(w), Some(raw)) = (&mut self.watchdog, inputs.watchdog) {
            let (evs, stories) = evaluate_watchdog(w, raw, now);
            self.stats.evaluations += 1;
            self.stats.transitions += evs.len() as u64;
            self.stats.stories += stories;
            events.extend(evs);
        }
        events
    }
}

fn new_judge(s: &MonitorSpec) -> anyhow::Result<Judge> {
    Ok(match s.kind {
        MonitorKind::Anomaly => Judge::Anomaly(Box::new(
            AnomalyMonitor::new(s.anomaly_config())
                .map_err(|e| anyhow::anyhow!("monitor {:?}: {e}", s.name))?,
        )),
        _ => {
            let t = s
                .threshold_config()
                .ok_or_else(|| anyhow::anyhow!("monitor {:?}: no critical threshold", s.name))?;
            Judge::Threshold(
                ThresholdDetector::new(t)
                    .map_err(|e| anyhow::anyhow!("monitor {:?}: {e}", s.name))?,
            )
        }
    })
}

/// The value of a configured monitor from its raw inputs.
fn value_of(m: &mut Configured, raw: Raw, now: Timestamp) -> Option<f64> {
    let s = &m.spec;
    let now_s = now.as_secs_f64();
    // The window is (now − window, now], as Datadog's `last_5m`.
    let start_s = now.saturating_sub(s.window()).as_secs_f64();
    let inside = |t: f64| t > start_s && t <= now_s;
    match raw {
        Raw::Skip => None,
        Raw::Series(series) => {
            let agg = s.aggregation();
            let per: Vec<f64> = series
                .iter()
                .filter_map(|pts| {
                    let v: Vec<f64> = pts
                        .iter()
                        .filter(|(t, v)| inside(*t) && v.is_finite())
                        .map(|(_, v)| *v)
                        .collect();
                    aggregate(agg, &v)
                })
                .collect();
            if s.kind == MonitorKind::TraceLatency {
                // One pool of points: the percentile series of every operation.
                let all: Vec<f64> = series
                    .iter()
                    .flatten()
                    .filter(|(t, v)| inside(*t) && v.is_finite())
                    .map(|(_, v)| *v)
                    .collect();
                return aggregate(agg, &all);
            }
            aggregate(s.space_aggregation.unwrap_or(Aggregation::Sum), &per)
        }
        Raw::Trace(hits, errors) => {
            let sum = |v: &[(f64, f64)]| -> f64 {
                v.iter().filter(|(t, _)| inside(*t)).map(|(_, v)| v).sum()
            };
            let h = sum(&hits);
            (h > 0.0).then(|| sum(&errors) / h)
        }
        Raw::Count(c) => {
            let c = c?;
            let st = &mut m.status;
            if st.counts.back().is_some_and(|&(_, last)| c < last) {
                // The count went down (pattern evicted, miner reset): start over.
                st.counts.clear();
            }
            st.counts.push_back((now, c));
            let start = now.saturating_sub(s.window());
            // Keep the newest sample at or before the window start as the base.
            while st.counts.len() > 1 && st.counts.get(1).is_some_and(|&(t, _)| t <= start) {
                st.counts.pop_front();
            }
            while st.counts.len() > HISTORY_POINTS * 4 {
                st.counts.pop_front();
            }
            let base = st.counts.front().map_or(c, |&(_, b)| b);
            Some(c.saturating_sub(base) as f64)
        }
    }
}

fn evaluate_one(m: &mut Configured, raw: Raw, now: Timestamp) {
    let value = value_of(m, raw, now);
    let s = &m.spec;
    let st = &mut m.status;
    st.last_eval = Some(now);
    st.value = value;
    let what = format!(
        "{}(last_{})",
        match s.kind {
            MonitorKind::Log => "count",
            MonitorKind::TraceErrorRate => "error_rate",
            _ => agg_name(s.aggregation()),
        },
        fmt_dur(s.window())
    );
    match &mut m.judge {
        Judge::Threshold(det) => {
            let cfg = s.threshold_config().unwrap_or_default();
            let cmp = match cfg.comparator {
                Comparator::Above => "above",
                Comparator::Below => "below",
            };
            let not_cmp = if cmp == "above" {
                "at or below"
            } else {
                "at or above"
            };
            st.band = None;
            let prev = st.state;
            let Some(v) = value else {
                let nd = s.no_data_timeframe.map(|d| d.0);
                let last = st.last_data.unwrap_or(st.created);
                st.message = format!("no data for {what}");
                if let Some(nd) = nd
                    && prev != MonitorState::NoData
                    && now.saturating_since(last) >= nd
                {
                    st.record(TransitionRec {
                        at: now,
                        from: prev,
                        to: MonitorState::NoData,
                        value: None,
                        band: None,
                        threshold: None,
                        reason: format!("no data for {}", fmt_dur(nd)),
                    });
                }
                return;
            };
            st.last_data = Some(now);
            let level = det.update(v);
            let next = level_state(level);
            let alert_line = cfg.critical;
            let warn_line = cfg.warning;
            st.message = match next {
                MonitorState::Alert => {
                    format!("{what} = {} {cmp} critical {}", fmt_v(v), fmt_v(alert_line))
                }
                MonitorState::Warn => format!(
                    "{what} = {} {cmp} warning {}",
                    fmt_v(v),
                    fmt_v(warn_line.unwrap_or(alert_line))
                ),
                _ => format!("{what} = {}", fmt_v(v)),
            };
            st.push_history(HistPoint {
                t: now,
                value: v,
                lower: None,
                upper: None,
                anomalous: level != Level::Ok,
            });
            if next == prev {
                return;
            }
            let crit_rec = cfg.critical_recovery.unwrap_or(cfg.critical);
            let (threshold, reason) = match (prev, next) {
                (_, MonitorState::Alert) => (
                    cfg.critical,
                    format!(
                        "{what} = {} {cmp} critical {}",
                        fmt_v(v),
                        fmt_v(cfg.critical)
                    ),
                ),
                (MonitorState::Alert, MonitorState::Warn) => (
                    crit_rec,
                    format!(
                        "{what} = {} {not_cmp} critical recovery {}, still {cmp} warning",
                        fmt_v(v),
                        fmt_v(crit_rec)
                    ),
                ),
                (_, MonitorState::Warn) => {
                    let w = cfg.warning.unwrap_or(cfg.critical);
                    (
                        w,
                        format!("{what} = {} {cmp} warning {}", fmt_v(v), fmt_v(w)),
                    )
                }
                (MonitorState::NoData, _) => (
                    cfg.warning.unwrap_or(cfg.critical),
                    format!("data returned: {what} = {}", fmt_v(v)),
                ),
                (_, _) => {
                    let t = match (prev, cfg.warning) {
                        (MonitorState::Warn, Some(w)) => cfg.warning_recovery.unwrap_or(w),
                        (MonitorState::Alert, Some(w)) => cfg.warning_recovery.unwrap_or(w),
                        _ => crit_rec,
                    };
                    (
                        t,
                        format!(
                            "{what} = {} {not_cmp} recovery threshold {}",
                            fmt_v(v),
                            fmt_v(t)
                        ),
                    )
                }
            };
            st.record(TransitionRec {
                at: now,
                from: prev,
                to: next,
                value: Some(v),
                band: None,
                threshold: Some(threshold),
                reason,
            });
        }
        Judge::Anomaly(am) => {
            let (transition, band, anomalous) = match value {
                Some(v) => {
                    st.last_data = Some(now);
                    let e = am.update(now, v);
                    let band = finite_band(e.estimate.lower, e.estimate.upper);
                    st.push_history(HistPoint {
                        t: now,
                        value: v,
                        lower: band.map(|b| b.0),
                        upper: band.map(|b| b.1),
                        anomalous: e.anomalous,
                    });
                    (e.transition, band, e.anomalous)
                }
                None => (am.no_data(now), None, false),
            };
            st.band = band;
            let (tf, rf) = am.fractions();
            let c = am.config();
            st.message = match (value, band) {
                (Some(v), Some((lo, hi))) => format!(
                    "{what} = {}{} band [{}, {}]; {:.0}% of the last {} anomalous (alert at {:.0}%), {:.0}% of the last {} (recovery at or below {:.0}%)",
                    fmt_v(v),
                    if anomalous { " outside" } else { " inside" },
                    fmt_v(lo),
                    fmt_v(hi),
                    tf * 100.0,
                    fmt_dur(c.trigger_window),
                    c.critical * 100.0,
                    rf * 100.0,
                    fmt_dur(c.recovery_window),
                    c.critical_recovery * 100.0
                ),
                (Some(v), None) => format!(
                    "{what} = {}; the detector is warming up ({} of {} points)",
                    fmt_v(v),
                    am.detector().stats().points,
                    c.detector.warmup_points
                ),
                (None, _) => format!("no data for {what}"),
            };
            if let Some(t) = transition {
                let reason = match t.to {
                    MonitorState::NoData => format!("no data for {}", fmt_dur(t.window)),
                    MonitorState::Ok if t.from == MonitorState::NoData => {
                        "data returned".to_owned()
                    }
                    MonitorState::Ok | MonitorState::Warn
                        if t.from == MonitorState::Alert || t.to == MonitorState::Ok =>
                    {
                        format!(
                            "{:.0}% of the last {} anomalous, at or below the recovery threshold {:.0}%",
                            t.fraction * 100.0,
                            fmt_dur(t.window),
                            t.threshold * 100.0
                        )
                    }
                    _ => format!(
                        "{:.0}% of the last {} anomalous, reaching the {} threshold {:.0}%",
                        t.fraction * 100.0,
                        fmt_dur(t.window),
                        if t.to == MonitorState::Alert {
                            "alert"
                        } else {
                            "warning"
                        },
                        t.threshold * 100.0
                    ),
                };
                st.record(TransitionRec {
                    at: t.timestamp,
                    from: t.from,
                    to: t.to,
                    value: t.value,
                    band: t.band.and_then(|b| finite_band(b.lower, b.upper)),
                    threshold: (t.to != MonitorState::NoData).then_some(t.threshold),
                    reason,
                });
            }
        }
    }
}

/// The Watchdog monitor id of a service's signal.
pub fn watchdog_id(service: &str, signal: Signal) -> String {
    format!("watchdog:{service}:{}", signal_name(signal))
}

/// The query text of a Watchdog monitor.
pub fn watchdog_query(service: &str, signal: Signal) -> String {
    format!("watchdog:{}{{service:{service}}}", signal_name(signal))
}

fn evaluate_watchdog(w: &mut WatchdogRt, raw: WatchdogRaw, now: Timestamp) -> (Vec<Event>, u64) {
    let mut events = Vec::new();
    let mut stories = 0;
    w.last_eval = Some(now);
    for red in raw.services {
        if !w.services.contains_key(&red.service) {
            if w.services.len() >= w.settings.max_services {
                w.services_dropped += 1;
                continue;
            }
            let mk = || Status::new(now);
            let mut ws = WatchedService {
                last: None,
                signals: [mk(), mk(), mk()],
            };
            for s in &mut ws.signals {
                s.message = "watching: the first interval is being measured".into();
            }
            w.services.insert(red.service.clone(), ws);
        }
        let Some(ws) = w.services.get_mut(&red.service) else {
            continue;
        };
        for st in &mut ws.signals {
            st.last_eval = Some(now);
        }
        let (hits, errors) = (red.total_hits, red.total_errors);
        // The totals move only when the trace stats flush. An evaluation that sees no
        // flush since the last one keeps that base, so the next judged point spreads its
        // requests over the whole time they arrived in (otherwise two flushes would land
        // in one interval and the rate would read double, then zero).
        if let Some((t0, h0, e0)) = ws.last
            && hits == h0
            && errors == e0
        {
            for st in &mut ws.signals {
                st.message = format!(
                    "not judged: no new requests since {}",
                    crate::run::fmt_time(t0)
                );
            }
            continue;
        }
        let prev = ws.last.replace((now, hits, errors));
        let Some((t0, h0, e0)) = prev else {
            continue;
        };
        if hits < h0 || errors < e0 || now <= t0 {
            // The agent restarted (totals start over) or time went back: a new base.
            continue;
        }
        let dh = (hits - h0) as f64;
        let de = (errors - e0) as f64;
        let p95 = raw
            .p95
            .get(&red.service)
            .and_then(|v| v.iter().copied().filter(|x| x.is_finite()).reduce(f64::max))
            .unwrap_or(red.p95_ms / 1e3);
        let point = RedPoint {
            service: red.service.clone(),
            resource: "*".into(),
            timestamp: now,
            interval: now.saturating_since(t0),
            hits: dh,
            errors: de,
            p95_latency: p95,
        };
        let obs = w.watchdog.observe_detailed(&point);
        stories += obs.stories.len() as u64;
        if obs.skipped.is_some() {
            for st in &mut ws.signals {
                st.message = format!(
                    "not judged: {} requests in {:.1} s (below {} per second)",
                    dh,
                    point.interval.as_secs_f64(),
                    w.settings.min_hits_per_second
                );
            }
            continue;
        }
        for r in &obs.signals {
            let Some(i) = SIGNALS.iter().position(|s| *s == r.signal) else {
                continue;
            };
            let st = &mut ws.signals[i];
            let band = finite_band(r.estimate.lower, r.estimate.upper);
            st.value = Some(r.value);
            st.band = band;
            st.last_data = Some(now);
            st.push_history(HistPoint {
                t: now,
                value: r.value,
                lower: band.map(|b| b.0),
                upper: band.map(|b| b.1),
                anomalous: r.anomalous,
            });
            let name = r.signal.as_str();
            st.message = match band {
                Some((lo, hi)) => format!(
                    "{name} {}{} band [{}, {}]{}",
                    fmt_v(r.value),
                    if r.anomalous { " outside" } else { " inside" },
                    fmt_v(lo),
                    fmt_v(hi),
                    if r.active {
                        "; anomalous episode in progress"
                    } else {
                        ""
                    }
                ),
                None => format!("{name} {} (learning)", fmt_v(r.value)),
            };
            let prev = st.state;
            let next = if r.active {
                MonitorState::Alert
            } else {
                MonitorState::Ok
            };
            if next == prev {
                continue;
            }
            let story = obs.stories.iter().find(|s| s.signal == r.signal);
            let reason = match (next, story) {
                (MonitorState::Alert, Some(s)) => format!(
                    "{name} {} on {}: {} outside band [{}, {}] for {} of the last {} evaluations (anomalous since {})",
                    if s.increase { "increase" } else { "drop" },
                    red.service,
                    fmt_v(s.value),
                    fmt_v(s.lower),
                    fmt_v(s.upper),
                    w.settings.trigger_points,
                    w.settings.window_points,
                    crate::run::fmt_time(s.started)
                ),
                (MonitorState::Alert, None) => format!("{name} anomalous on {}", red.service),
                _ => format!(
                    "{name} back inside its band for {} evaluations in a row",
                    w.settings.recovery_points
                ),
            };
            let t = TransitionRec {
                at: now,
                from: prev,
                to: next,
                value: Some(r.value),
                band,
                threshold: None,
                reason,
            };
            st.record(t.clone());
            st.last_notified = Some(now);
            events.push(Event {
                id: watchdog_id(&red.service, r.signal),
                name: format!("Watchdog: {name} on {}", red.service),
                kind: "watchdog",
                query: watchdog_query(&red.service, r.signal),
                service: Some(red.service.clone()),
                signal: Some(signal_name(r.signal)),
                labels: BTreeMap::new(),
                state: next,
                previous: prev,
                at: now,
                since: now,
                value: t.value,
                band,
                threshold: None,
                reason: t.reason,
                renotification: false,
                resumed: false,
            });
        }
    }
    (events, stories)
}

impl Engine {
    /// One [`Event`] (`resumed`) per monitor not OK now: what an Alertmanager notifier
    /// must keep firing after a restart.
    pub fn resumed_events(&self, now: Timestamp) -> Vec<Event> {
        let mut out = Vec::new();
        let ev = |id: String,
                  name: String,
                  kind: &'static str,
                  query: String,
                  service: Option<String>,
                  signal: Option<&'static str>,
                  labels: BTreeMap<String, String>,
                  st: &Status| Event {
            id,
            name,
            kind,
            query,
            service,
            signal,
            labels,
            state: st.state,
            previous: st.transitions.back().map_or(MonitorState::Ok, |t| t.from),
            at: now,
            since: st.since,
            value: st.value,
            band: st.band,
            threshold: st.transitions.back().and_then(|t| t.threshold),
            reason: st
                .transitions
                .back()
                .map_or_else(|| st.message.clone(), |t| t.reason.clone()),
            renotification: false,
            resumed: true,
        };
        for m in &self.configured {
            if m.status.state != MonitorState::Ok {
                out.push(ev(
                    m.id.clone(),
                    m.spec.name.clone(),
                    m.spec.kind.as_str(),
                    m.query.clone(),
                    m.spec.service.clone(),
                    None,
                    m.spec.labels.clone(),
                    &m.status,
                ));
            }
        }
        if let Some(w) = &self.watchdog {
            for (svc, sig, st) in watchdog_statuses(w) {
                if st.state != MonitorState::Ok {
                    out.push(ev(
                        watchdog_id(svc, sig),
                        format!("Watchdog: {} on {svc}", sig.as_str()),
                        "watchdog",
                        watchdog_query(svc, sig),
                        Some(svc.to_owned()),
                        Some(signal_name(sig)),
                        BTreeMap::new(),
                        st,
                    ));
                }
            }
        }
        out
    }
}

/// Every watched service's signals as `(service, signal, status)`.
pub fn watchdog_statuses(w: &WatchdogRt) -> impl Iterator<Item = (&str, Signal, &Status)> {
    w.services.iter().flat_map(|(svc, ws)| {
        SIGNALS
            .iter()
            .zip(ws.signals.iter())
            .map(move |(sig, st)| (svc.as_str(), *sig, st))
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::StoreConfig;
    use crate::store::PatternView;

    fn spec(yaml: &str) -> MonitorSpec {
        let s: MonitorSpec = serde_norway::from_str(yaml).unwrap();
        super::super::config::validate(
            std::slice::from_ref(&s),
            &WatchdogSettings::default(),
            &Default::default(),
        )
        .unwrap();
        s
    }

    fn off() -> WatchdogSettings {
        WatchdogSettings {
            enabled: false,
            ..WatchdogSettings::default()
        }
    }

    fn at(min: i64) -> Timestamp {
        Timestamp::from_secs(1_800_000_000 + min * 60)
    }

    fn round(e: &mut Engine, st: &Store, now: Timestamp) -> Vec<Event> {
        let inputs = e.copy_inputs(st, now);
        e.evaluate(inputs, now)
    }

    fn point(st: &mut Store, name: &str, tags: &str, t: Timestamp, v: f64) {
        st.insert_point(Arc::from(name), tags.parse().unwrap(), "count", t, v);
    }

    #[test]
    fn trace_error_rate_and_latency_from_the_red_series() {
        let mut st = Store::new(StoreConfig::default());
        let specs = [
            spec(
                "{name: err, type: trace_error_rate, service: reviews, window: 2m, warning: 0.05, critical: 0.2}",
            ),
            spec(
                "{name: lat, type: trace_latency, service: reviews, percentile: p99, window: 2m, critical: 0.5}",
            ),
        ];
        let mut e = Engine::new(&specs, &off(), at(0)).unwrap();
        assert_eq!(
            e.configured[0].query,
            "sum(last_2m):trace.*.errors{service:reviews} / sum(last_2m):trace.*.hits{service:reviews}"
        );
        assert_eq!(
            e.configured[1].query,
            "max(last_2m):trace.*.duration.by.service.99p{service:reviews}"
        );
        // Two operations of reviews, one of ratings (not counted).
        for (min, errs, p99) in [
            (1, 1.0, 0.1),
            (2, 10.0, 0.2),
            (3, 40.0, 0.9),
            (4, 0.0, 0.1),
            (5, 0.0, 0.1),
            (6, 0.0, 0.1),
        ] {
            let t = at(min);
            point(
                &mut st,
                "trace.http.request.hits",
                "service:reviews,resource:a",
                t,
                80.0,
            );
            point(
                &mut st,
                "trace.http.request.errors",
                "service:reviews,resource:a",
                t,
                errs,
            );
            point(
                &mut st,
                "trace.grpc.server.hits",
                "service:reviews,resource:b",
                t,
                20.0,
            );
            point(
                &mut st,
                "trace.grpc.server.errors",
                "service:reviews,resource:b",
                t,
                0.0,
            );
            point(
                &mut st,
                "trace.http.request.hits",
                "service:ratings",
                t,
                100.0,
            );
            point(
                &mut st,
                "trace.http.request.errors",
                "service:ratings",
                t,
                100.0,
            );
            point(
                &mut st,
                "trace.http.request.duration.by.service.99p",
                "service:reviews",
                t,
                p99,
            );
            point(
                &mut st,
                "trace.http.request.duration.by.service.99p",
                "service:ratings",
                t,
                9.0,
            );
            round(&mut e, &st, t);
        }
        let err = &e.configured[0].status;
        let states: Vec<_> = err.transitions.iter().map(|t| (t.to, t.value)).collect();
        // min 2: (1+10)/200 = 0.055 WARN; min 3: (10+40)/200 = 0.25 ALERT;
        // min 4: 40/200 = 0.2 (not above) WARN; min 5: 0 OK.
        assert_eq!(
            states,
            [
                (MonitorState::Warn, Some(0.055)),
                (MonitorState::Alert, Some(0.25)),
                (MonitorState::Warn, Some(0.2)),
                (MonitorState::Ok, Some(0.0)),
            ]
        );
        let lat = &e.configured[1].status;
        let t: Vec<_> = lat.transitions.iter().map(|t| (t.at, t.to)).collect();
        // The 0.9 s point stays in the 2-minute window for two evaluations.
        assert_eq!(t, [(at(3), MonitorState::Alert), (at(5), MonitorState::Ok)]);
        assert_eq!(lat.transitions[0].threshold, Some(0.5));
    }

    fn pattern(id: u64, service: &str, count: u64, errors: u64) -> PatternView {
        PatternView {
            id,
            service: service.into(),
            source: "envoy".into(),
            template: format!("t{id}"),
            regex: String::new(),
            count,
            statuses: [
                ("error".to_owned(), errors),
                ("info".to_owned(), count - errors),
            ]
            .into_iter()
            .collect(),
            samples: Vec::new(),
        }
    }

    #[test]
    fn log_counts_over_the_window_no_data_and_renotification() {
        let mut st = Store::new(StoreConfig::default());
        let specs = [
            spec(
                "{name: errs, type: log, service: reviews, status: error, window: 2m, critical: 10, renotify_interval: 3m}",
            ),
            spec(
                "{name: pat, type: log, service: reviews, pattern: 7, window: 1m, critical: 100, no_data_timeframe: 2m}",
            ),
        ];
        let mut e = Engine::new(&specs, &off(), at(0)).unwrap();
        assert_eq!(
            e.configured[0].query,
            "logs(last_2m).count{service:reviews,status:error}"
        );
        let mut out = Vec::new();
        // Cumulative error lines of reviews: 0, 2, 4, 30, 31, 31, …
        let errs = [0u64, 2, 4, 30, 31, 31, 31, 31, 31, 31];
        for (min, &e7) in errs.iter().enumerate() {
            let mut pats = vec![pattern(3, "reviews", 1000 + min as u64, 0)];
            if min < 5 {
                pats.push(pattern(7, "reviews", 50 + e7 * 10, e7));
            } else {
                // Pattern 7 gone (evicted): its monitor has no data.
                pats.push(pattern(8, "reviews", 500, e7));
            }
            pats.push(pattern(7, "ratings", 10_000, 9_000));
            st.set_patterns("reviews/envoy", pats);
            out.extend(round(&mut e, &st, at(min as i64)));
        }
        let v: Vec<_> = e.configured[0]
            .status
            .history
            .iter()
            .map(|h| h.value)
            .collect();
        // Lines over the last 2 minutes (the base is the newest count at or before it).
        assert_eq!(v, [0.0, 2.0, 4.0, 28.0, 27.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
        let ev: Vec<_> = out
            .iter()
            .filter(|e| e.id == "errs")
            .map(|e| (e.at, e.state, e.renotification))
            .collect();
        assert_eq!(
            ev,
            [
                (at(3), MonitorState::Alert, false),
                (at(5), MonitorState::Ok, false),
            ]
        );
        let pat: Vec<_> = e.configured[1]
            .status
            .transitions
            .iter()
            .map(|t| (t.at, t.to))
            .collect();
        // 260 lines in a minute at min 3 (> 100), then no pattern 7 from min 5: NO DATA
        // two minutes after the last value.
        assert_eq!(
            pat,
            [
                (at(3), MonitorState::Alert),
                (at(4), MonitorState::Ok),
                (at(6), MonitorState::NoData)
            ]
        );
        // Re-notification while not OK.
        let mut e = Engine::new(&specs[..1], &off(), at(0)).unwrap();
        let mut out = Vec::new();
        for min in 0..8i64 {
            st.set_patterns(
                "reviews/envoy",
                vec![
                    pattern(3, "reviews", 1000, 0),
                    pattern(9, "reviews", 100 + min as u64 * 100, min as u64 * 100),
                ],
            );
            out.extend(round(&mut e, &st, at(min)));
        }
        let ev: Vec<_> = out
            .iter()
            .map(|e| (e.at, e.state, e.renotification))
            .collect();
        assert_eq!(
            ev,
            [
                (at(1), MonitorState::Alert, false),
                (at(4), MonitorState::Alert, true),
                (at(7), MonitorState::Alert, true),
            ]
        );
    }

    #[test]
    fn not_due_monitors_copy_nothing_and_state_round_trips() {
        let st = Store::new(StoreConfig::default());
        let specs = [spec(
            "{name: m, type: metric, metric: x, critical: 1, interval: 5m}",
        )];
        let mut e = Engine::new(&specs, &WatchdogSettings::default(), at(0)).unwrap();
        round(&mut e, &st, at(0));
        let i = e.copy_inputs(&st, at(1));
        assert!(matches!(i.monitors[0], Raw::Skip));
        assert!(i.watchdog.is_some(), "the Watchdog runs every minute");
        let json = serde_json::to_string(&e.persist()).unwrap();
        let back: Persisted = serde_json::from_str(&json).unwrap();
        let mut e2 = Engine::new(&specs, &WatchdogSettings::default(), at(9)).unwrap();
        assert!(e2.restore(back.clone()).is_empty());
        assert_eq!(e2.configured[0].status, e.configured[0].status);
        // A changed monitor starts over.
        let changed = [spec(
            "{name: m, type: metric, metric: x, critical: 2, interval: 5m}",
        )];
        let mut e3 = Engine::new(&changed, &WatchdogSettings::default(), at(9)).unwrap();
        assert_eq!(e3.restore(back), ["m"]);
        assert_eq!(e3.configured[0].status.created, at(9));
    }
}
