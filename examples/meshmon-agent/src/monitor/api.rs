//! `GET /api/v1/monitors` and `GET /api/v1/watchdog`: the JSON the status page reads.
//!
//! `/api/v1/monitors` → `{"monitors": [M…]}`; `/api/v1/watchdog` → `{"findings": [M…],
//! "monitors": [M…]}`, findings being the Watchdog monitors not OK or with a transition in
//! the last hour. `M` is [`MonitorView`]; times are RFC 3339 UTC.

use meshmon_alert::MonitorState;
use meshmon_core::Timestamp;
use serde::Serialize;
use serde_json::{Value, json};

use super::eval::{
    Engine, HistPoint, Status, TransitionRec, signal_name, watchdog_id, watchdog_query,
};
use crate::run::fmt_time;

/// A band.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct BandView {
    /// Lower edge.
    pub lower: f64,
    /// Upper edge.
    pub upper: f64,
}

/// One transition.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TransitionView {
    /// When.
    pub at: String,
    /// Previous state.
    pub from: &'static str,
    /// New state.
    pub to: &'static str,
    /// The value that caused it.
    pub value: Option<f64>,
    /// The band it was judged against.
    pub band: Option<BandView>,
    /// The threshold crossed.
    pub threshold: Option<f64>,
    /// Why.
    pub reason: String,
}

/// One evaluation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HistoryView {
    /// When.
    pub t: String,
    /// Value.
    pub value: f64,
    /// Band.
    pub lower: Option<f64>,
    /// Band.
    pub upper: Option<f64>,
    /// Anomalous or past a threshold.
    pub anomalous: bool,
}

/// One monitor as the API returns it (`M`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MonitorView {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// `metric`, `anomaly`, `log`, `trace_error_rate`, `trace_latency` or `watchdog`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The query.
    pub query: String,
    /// Service, when about one.
    pub service: Option<String>,
    /// Watchdog signal (`request_rate`, `error_rate`, `latency`).
    pub signal: Option<&'static str>,
    /// `OK`, `WARN`, `ALERT` or `NO DATA`.
    pub state: &'static str,
    /// Since when.
    pub since: String,
    /// Last value.
    pub value: Option<f64>,
    /// Last band.
    pub band: Option<BandView>,
    /// Warning threshold (a fraction for anomaly monitors).
    pub warning: Option<f64>,
    /// Critical threshold (a fraction for anomaly monitors).
    pub critical: Option<f64>,
    /// Last evaluation.
    pub last_eval: Option<String>,
    /// Human summary of the last evaluation.
    pub message: String,
    /// Transitions, oldest first.
    pub transitions: Vec<TransitionView>,
    /// Last evaluations (at most 360), oldest first.
    pub history: Vec<HistoryView>,
    /// Evaluation interval in seconds (an addition to the shape).
    pub interval_s: f64,
}

/// What the API serves, rebuilt after every evaluation round.
#[derive(Clone, Debug, Default)]
pub struct Board {
    /// Configured monitors.
    pub monitors: Vec<MonitorView>,
    /// Watchdog monitors with the time of their last transition.
    pub watchdog: Vec<(MonitorView, Option<Timestamp>)>,
}

fn num(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

fn band(b: Option<(f64, f64)>) -> Option<BandView> {
    b.and_then(|(lower, upper)| {
        (lower.is_finite() && upper.is_finite()).then_some(BandView { lower, upper })
    })
}

fn transition(t: &TransitionRec) -> TransitionView {
    TransitionView {
        at: fmt_time(t.at),
        from: t.from.as_str(),
        to: t.to.as_str(),
        value: t.value.and_then(num),
        band: band(t.band),
        threshold: t.threshold.and_then(num),
        reason: t.reason.clone(),
    }
}

fn history(h: &HistPoint) -> Option<HistoryView> {
    Some(HistoryView {
        t: fmt_time(h.t),
        value: num(h.value)?,
        lower: h.lower.and_then(num),
        upper: h.upper.and_then(num),
        anomalous: h.anomalous,
    })
}

#[allow(clippy::too_many_arguments)]
fn view(
    id: String,
    name: String,
    kind: &'static str,
    query: String,
    service: Option<String>,
    signal: Option<&'static str>,
    thresholds: (Option<f64>, Option<f64>),
    interval_s: f64,
    st: &Status,
) -> MonitorView {
    MonitorView {
        id,
        name,
        kind,
        query,
        service,
        signal,
        state: st.state.as_str(),
        since: fmt_time(st.since),
        value: st.value.and_then(num),
        band: band(st.band),
        warning: thresholds.0,
        critical: thresholds.1,
        last_eval: st.last_eval.map(fmt_time),
        message: st.message.clone(),
        transitions: st.transitions.iter().map(transition).collect(),
        history: st.history.iter().filter_map(history).collect(),
        interval_s,
    }
}

/// Builds the board from the engine.
pub fn board(engine: &Engine) -> Board {
    let monitors = engine
        .configured
        .iter()
        .map(|m| {
            let thresholds = match &m.judge {
                super::eval::Judge::Anomaly(a) => (a.config().warning, Some(a.config().critical)),
                super::eval::Judge::Threshold(_) => (m.spec.warning, m.spec.critical),
            };
            view(
                m.id.clone(),
                m.spec.name.clone(),
                m.spec.kind.as_str(),
                m.query.clone(),
                m.spec.service.clone(),
                None,
                thresholds,
                m.spec.interval.0.as_secs_f64(),
                &m.status,
            )
        })
        .collect();
    let mut watchdog = Vec::new();
    if let Some(w) = &engine.watchdog {
        for (svc, sig, st) in super::eval::watchdog_statuses(w) {
            let v = view(
                watchdog_id(svc, sig),
                format!("Watchdog: {} on {svc}", sig.as_str()),
                "watchdog",
                watchdog_query(svc, sig),
                Some(svc.to_owned()),
                Some(signal_name(sig)),
                (None, None),
                w.settings.interval.0.as_secs_f64(),
                st,
            );
            watchdog.push((v, st.transitions.back().map(|t| t.at)));
        }
    }
    Board { monitors, watchdog }
}

/// The answer of `/api/v1/monitors`.
pub fn monitors_json(b: &Board) -> Value {
    json!({ "monitors": b.monitors })
}

/// The answer of `/api/v1/watchdog` at `now`.
pub fn watchdog_json(b: &Board, now: Timestamp) -> Value {
    let hour_ago = now.saturating_sub(std::time::Duration::from_secs(3600));
    let findings: Vec<&MonitorView> = b
        .watchdog
        .iter()
        .filter(|(v, last)| {
            v.state != MonitorState::Ok.as_str() || last.is_some_and(|t| t >= hour_ago)
        })
        .map(|(v, _)| v)
        .collect();
    let monitors: Vec<&MonitorView> = b.watchdog.iter().map(|(v, _)| v).collect();
    json!({ "findings": findings, "monitors": monitors })
}
