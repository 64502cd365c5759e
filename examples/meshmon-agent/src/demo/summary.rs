//! What the demo shows: a live summary read from the agent's store (and its monitor API)
//! every few seconds, the watches that notice the fault's log pattern and the alerts, and
//! the final figures (also printed as one `DEMO-FIGURES {json}` line for scripts).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use meshmon_agent::store::{Edge, PatternView, ServiceRed, Store};
use serde::Serialize;
use serde_json::Value;

/// What the store holds now, as the summary shows it.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// RED stats by service.
    pub services: Vec<ServiceRed>,
    /// Service map edges.
    pub edges: Vec<Edge>,
    /// Patterns, by descending count.
    pub patterns: Vec<PatternView>,
    /// Scrape targets.
    pub targets: usize,
    /// Targets up.
    pub targets_up: usize,
    /// Spans the intake received.
    pub spans_received: f64,
    /// Log lines the tailer read.
    pub lines_read: f64,
    /// `version`s of the reviews spans in the kept traces (the pods behind the service).
    pub reviews_versions: Vec<String>,
}

impl Snapshot {
    /// Reads the store.
    pub fn of(st: &Store) -> Snapshot {
        let checks = st.checks();
        Snapshot {
            services: st.services().to_vec(),
            edges: st.edges().to_vec(),
            patterns: st.patterns(None),
            targets: checks.len(),
            targets_up: checks.iter().filter(|c| c.status == "up").count(),
            spans_received: st.telemetry.get("meshmon_spans_received_total"),
            lines_read: st.telemetry.get("meshmon_logs_lines_total"),
            reviews_versions: st
                .traces(Some("reviews.default"), 1000)
                .iter()
                .flat_map(|t| t.spans.iter())
                .filter(|s| s.service == "reviews.default")
                .filter_map(|s| s.meta.get("version").cloned())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
        }
    }
}

/// One monitor (or Watchdog finding) as the agent's API lists it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct MonitorSeen {
    /// `id`.
    pub id: String,
    /// `name`.
    pub name: String,
    /// `service`, when given.
    pub service: String,
    /// `monitors` or `watchdog`.
    pub origin: &'static str,
    /// Its `type` (`anomaly`, `trace_error_rate`, `watchdog`, …).
    #[serde(rename = "type")]
    pub kind: String,
    /// State now.
    pub state: String,
    /// Seconds into the demo it first went to ALERT.
    pub alert_at_s: Option<f64>,
    /// Seconds into the demo it was back to OK after that.
    pub ok_at_s: Option<f64>,
    /// The value and band of the transition to ALERT, as the API gave them.
    pub alert_detail: Value,
}

/// Entries of a monitor API answer: its `monitors` array (`/api/v1/watchdog` also has
/// `findings`, a subset), else the array itself or its first array field.
pub fn entries(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        Value::Object(m) => m
            .get("monitors")
            .and_then(Value::as_array)
            .cloned()
            .or_else(|| m.values().find_map(|x| x.as_array().cloned()))
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

fn text(v: &Value, keys: &[&str]) -> String {
    keys.iter()
        .find_map(|k| match v.get(*k) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        })
        .unwrap_or_default()
}

fn time_of(v: &Value) -> Option<f64> {
    ["time", "at", "t", "since", "timestamp"]
        .iter()
        .find_map(|k| match v.get(*k) {
            Some(Value::Number(n)) => n.as_f64(),
            Some(Value::String(s)) => s.parse().ok().or_else(|| parse_rfc3339(s)),
            _ => None,
        })
}

/// Seconds since the epoch of `2026-12-01T22:30:01.123Z` (UTC, `Z` or `+00:00`).
pub fn parse_rfc3339(s: &str) -> Option<f64> {
    let s = s.trim_end_matches('Z').trim_end_matches("+00:00");
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, dd) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':');
    let (h, mi) = (
        t.next()?.parse::<i64>().ok()?,
        t.next()?.parse::<i64>().ok()?,
    );
    let sec: f64 = t.next()?.parse().ok()?;
    let days =
        meshmon_core::time::days_from_civil(y, u32::try_from(m).ok()?, u32::try_from(dd).ok()?)
            .ok()?;
    Some((days * 86_400 + h * 3600 + mi * 60) as f64 + sec)
}

/// Follows the monitors through the run.
#[derive(Debug, Default)]
pub struct Watch {
    /// Monitors by `origin/id`.
    pub monitors: BTreeMap<String, MonitorSeen>,
    /// Whether the API has monitor routes at all.
    pub api_has_monitors: Option<bool>,
    baseline: BTreeSet<(String, String, String)>,
    baseline_done: bool,
    /// The first new error pattern seen after the fault began.
    pub error_pattern: Option<ErrorPattern>,
}

/// A log pattern that appeared with the fault.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ErrorPattern {
    /// Its service.
    pub service: String,
    /// Its source.
    pub source: String,
    /// Its template.
    pub template: String,
    /// Its count when first seen.
    pub count: u64,
    /// Seconds into the demo it was first seen.
    pub first_seen_s: f64,
    /// Seconds into the demo the fault began.
    pub fault_at_s: f64,
}

impl Watch {
    /// Notes patterns before the fault (`fault_at` = None) or finds a new error pattern
    /// (one with `error` lines) after it.
    pub fn patterns(&mut self, pats: &[PatternView], elapsed: f64, fault_at: Option<f64>) {
        match fault_at {
            None => {
                for p in pats {
                    self.baseline
                        .insert((p.service.clone(), p.source.clone(), p.template.clone()));
                }
            }
            Some(at) => {
                self.baseline_done = true;
                if self.error_pattern.is_some() {
                    return;
                }
                let found = pats.iter().find(|p| {
                    p.statuses.get("error").copied().unwrap_or(0) > 0
                        && !self.baseline.contains(&(
                            p.service.clone(),
                            p.source.clone(),
                            p.template.clone(),
                        ))
                });
                if let Some(p) = found {
                    self.error_pattern = Some(ErrorPattern {
                        service: p.service.clone(),
                        source: p.source.clone(),
                        template: p.template.clone(),
                        count: p.count,
                        first_seen_s: elapsed,
                        fault_at_s: at,
                    });
                }
            }
        }
    }

    /// Folds one answer of `/api/v1/monitors` or `/api/v1/watchdog` in; `to_demo_s`
    /// turns epoch seconds into seconds into the demo.
    pub fn monitors(
        &mut self,
        origin: &'static str,
        answer: &Value,
        elapsed: f64,
        to_demo_s: &dyn Fn(f64) -> f64,
    ) {
        for m in entries(answer) {
            let id = text(&m, &["id", "name"]);
            let key = format!("{origin}/{id}");
            let state = text(&m, &["state", "status"]).to_ascii_uppercase();
            let e = self.monitors.entry(key).or_insert_with(|| MonitorSeen {
                id: id.clone(),
                name: text(&m, &["name", "id"]),
                service: text(&m, &["service"]),
                origin,
                kind: text(&m, &["type"]),
                state: String::new(),
                alert_at_s: None,
                ok_at_s: None,
                alert_detail: Value::Null,
            });
            // The recorded transitions, when the API lists them, give exact times.
            if let Some(ts) = m.get("transitions").and_then(Value::as_array) {
                let mut alert = None;
                let mut ok = None;
                let mut detail = Value::Null;
                for t in ts {
                    let to = text(t, &["to", "state", "new_state"]).to_ascii_uppercase();
                    let at = time_of(t).map(to_demo_s).unwrap_or(elapsed);
                    if to == "ALERT" && alert.is_none() {
                        alert = Some(at);
                        detail = t.clone();
                    } else if to == "OK" && alert.is_some() && ok.is_none() {
                        ok = Some(at);
                    }
                }
                if alert.is_some() {
                    e.alert_at_s = alert;
                    e.alert_detail = detail;
                    e.ok_at_s = ok.or(e.ok_at_s);
                }
            }
            // Else (or as well) what the polling saw.
            if state == "ALERT" && e.alert_at_s.is_none() {
                e.alert_at_s = Some(elapsed);
                e.alert_detail =
                    serde_json::json!({ "value": m.get("value"), "band": m.get("band") });
            }
            if state == "OK" && e.alert_at_s.is_some() && e.ok_at_s.is_none() {
                e.ok_at_s = Some(elapsed);
            }
            e.state = state;
        }
    }

    /// Monitors in ALERT now.
    pub fn active(&self) -> Vec<&MonitorSeen> {
        self.monitors
            .values()
            .filter(|m| m.state == "ALERT")
            .collect()
    }
}

fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// The live summary block.
pub fn live(elapsed: f64, phase: &str, snap: &Snapshot, watch: &Watch, rps_sent: f64) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "── t+{elapsed:>4.0}s  {phase:<28} traffic {rps_sent:.1} req/s · targets {}/{} up · spans {:.0} · log lines {:.0}",
        snap.targets_up, snap.targets, snap.spans_received, snap.lines_read
    );
    if snap.services.is_empty() {
        o.push_str("   (waiting for the first APM stats flush)\n");
    }
    for s in &snap.services {
        let _ = writeln!(
            o,
            "   {:<36} {:>6.1} req/s  err {:>5.1}%  p95 {:>6.1} ms",
            s.service,
            s.rate,
            100.0 * s.error_rate,
            s.p95_ms
        );
    }
    let active = watch.active();
    if active.is_empty() {
        o.push_str("   alerts: none");
        if watch.api_has_monitors == Some(false) {
            o.push_str(" (this agent has no monitor API)");
        }
        o.push('\n');
    } else {
        for m in active {
            let _ = writeln!(
                o,
                "   ALERT {} {}{} since t+{:.0}s",
                m.origin,
                m.name,
                if m.service.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", m.service)
                },
                m.alert_at_s.unwrap_or(elapsed)
            );
        }
    }
    for p in snap.patterns.iter().take(3) {
        let err = p.statuses.get("error").copied().unwrap_or(0);
        let _ = writeln!(
            o,
            "   pattern {:>6}× {:<22} {}{}",
            p.count,
            short(&format!("{}/{}", p.service, p.source), 22),
            short(&p.template, 90),
            if err > 0 {
                format!("  [{err} error]")
            } else {
                String::new()
            }
        );
    }
    // The patterns with the most error lines (Log Patterns filtered on status:error).
    let mut errs: Vec<&PatternView> = snap
        .patterns
        .iter()
        .skip(3)
        .filter(|p| p.statuses.get("error").copied().unwrap_or(0) > 0)
        .collect();
    errs.sort_by_key(|p| std::cmp::Reverse(p.statuses.get("error").copied().unwrap_or(0)));
    for p in errs.iter().take(2) {
        let _ = writeln!(
            o,
            "   error   {:>6}× {:<22} {}",
            p.statuses.get("error").copied().unwrap_or(0),
            short(&format!("{}/{}", p.service, p.source), 22),
            short(&p.template, 90),
        );
    }
    if let Some(e) = &watch.error_pattern {
        let _ = writeln!(
            o,
            "   new error pattern (t+{:.0}s, {}/{}): {}",
            e.first_seen_s,
            e.service,
            e.source,
            short(&e.template, 100)
        );
    }
    o
}

/// The demo's figures: what it sent and what the agent made of it.
#[derive(Clone, Debug, Serialize, Default)]
pub struct Figures {
    /// Seed.
    pub seed: u64,
    /// Seconds run.
    pub duration_s: f64,
    /// Requests simulated.
    pub requests: u64,
    /// Requests traced (`pilot.traceSampling`).
    pub requests_sampled: u64,
    /// `pilot.traceSampling` (percent).
    pub trace_sampling: f64,
    /// Spans generated.
    pub spans_generated: u64,
    /// Spans in payloads the intake accepted.
    pub spans_sent: u64,
    /// Payloads accepted.
    pub payloads_sent: u64,
    /// Payloads refused or failed.
    pub payloads_failed: u64,
    /// Spans the agent counted as received.
    pub spans_received: f64,
    /// CRI lines written under the pod-log tree.
    pub lines_written: u64,
    /// Lines the agent read.
    pub lines_read: f64,
    /// Scrapes the pods answered.
    pub scrapes: u64,
    /// Scrape targets the agent runs.
    pub targets: usize,
    /// Of which up.
    pub targets_up: usize,
    /// Services in the agent's RED table.
    pub services: Vec<String>,
    /// Service map edges (`caller -> callee`).
    pub edges: Vec<String>,
    /// Versions of `reviews.default` seen in the kept traces.
    pub reviews_versions: Vec<String>,
    /// Fault window, seconds into the demo (`null` with `--no-fault`).
    pub fault: Option<(f64, f64)>,
    /// Log patterns held.
    pub patterns: usize,
    /// The pattern that came with the fault.
    pub error_pattern: Option<ErrorPattern>,
    /// Monitors (and Watchdog findings) that went to ALERT, with the times.
    pub alerts: Vec<MonitorSeen>,
    /// Whether the agent has the monitor API.
    pub monitor_api: bool,
    /// Where the pod-log tree, manifests and data were (removed unless `--keep`).
    pub dir: String,
}

/// The final summary text.
pub fn final_text(f: &Figures) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "\n══ meshmon demo: done after {:.0} s (seed {}) ══",
        f.duration_s, f.seed
    );
    let _ = writeln!(
        o,
        "traffic   {} requests, {} traced (pilot.traceSampling={}), {} spans generated, {} sent in {} payloads ({} failed); agent received {:.0}",
        f.requests,
        f.requests_sampled,
        f.trace_sampling,
        f.spans_generated,
        f.spans_sent,
        f.payloads_sent,
        f.payloads_failed,
        f.spans_received
    );
    let _ = writeln!(
        o,
        "logs      {} CRI lines written, {:.0} read by the agent, {} patterns",
        f.lines_written, f.lines_read, f.patterns
    );
    let _ = writeln!(
        o,
        "metrics   {} targets ({} up), {} scrapes answered",
        f.targets, f.targets_up, f.scrapes
    );
    let _ = writeln!(o, "services  {}", f.services.join(", "));
    let _ = writeln!(o, "edges     {}", f.edges.join(", "));
    let _ = writeln!(
        o,
        "reviews   versions in traces: {}",
        f.reviews_versions.join(", ")
    );
    match f.fault {
        Some((a, b)) => {
            let _ = writeln!(
                o,
                "fault     reviews-v3 failing from t+{a:.0}s to t+{b:.0}s"
            );
        }
        None => o.push_str("fault     none (--no-fault)\n"),
    }
    match &f.error_pattern {
        Some(e) => {
            let _ = writeln!(
                o,
                "pattern   new error pattern at t+{:.0}s ({}/{}): {}",
                e.first_seen_s, e.service, e.source, e.template
            );
        }
        None => o.push_str("pattern   no new error pattern\n"),
    }
    if !f.monitor_api {
        o.push_str("alerts    this agent build has no monitor API (/api/v1/monitors)\n");
    } else if f.alerts.is_empty() {
        o.push_str("alerts    no monitor went to ALERT\n");
    }
    for m in &f.alerts {
        let _ = writeln!(
            o,
            "alert     {} {}{}: ALERT at t+{} → OK at t+{}",
            m.origin,
            m.name,
            if m.service.is_empty() {
                String::new()
            } else {
                format!(" ({})", m.service)
            },
            m.alert_at_s.map_or("?".into(), |v| format!("{v:.0}s")),
            m.ok_at_s
                .map_or("— (still alerting)".into(), |v| format!("{v:.0}s")),
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pat(service: &str, template: &str, err: u64) -> PatternView {
        PatternView {
            id: 1,
            service: service.into(),
            source: "java".into(),
            template: template.into(),
            regex: String::new(),
            count: 5,
            statuses: if err > 0 {
                [("error".to_owned(), err)].into()
            } else {
                [("info".to_owned(), 5)].into()
            },
            samples: Vec::new(),
        }
    }

    #[test]
    fn a_new_error_pattern_is_noticed_only_after_the_fault() {
        let mut w = Watch::default();
        w.patterns(&[pat("a", "old <*>", 1)], 5.0, None);
        w.patterns(
            &[pat("a", "old <*>", 1), pat("b", "info <*>", 0)],
            25.0,
            Some(20.0),
        );
        assert!(w.error_pattern.is_none());
        w.patterns(
            &[pat("a", "old <*>", 1), pat("r", "SRVE0777E <*>", 3)],
            27.0,
            Some(20.0),
        );
        let e = w.error_pattern.clone().unwrap();
        assert_eq!((e.service.as_str(), e.first_seen_s), ("r", 27.0));
    }

    #[test]
    fn monitor_transitions_give_alert_and_recovery_times() {
        let mut w = Watch::default();
        let shift = |t: f64| t - 1000.0;
        let a = serde_json::json!({"monitors": [{"id": "m1", "name": "reviews errors", "service": "reviews.default", "state": "ALERT"}]});
        w.monitors("monitors", &a, 30.0, &shift);
        assert_eq!(w.active().len(), 1);
        let b = serde_json::json!({"findings": [], "monitors": [{"id": "m1", "name": "reviews errors", "state": "OK",
            "transitions": [{"to": "ALERT", "at": 1028.0}, {"to": "OK", "at": "1970-01-01T00:17:32Z"}]}]});
        w.monitors("monitors", &b, 55.0, &shift);
        let m = &w.monitors["monitors/m1"];
        assert_eq!((m.alert_at_s, m.ok_at_s), (Some(28.0), Some(52.0)));
        assert!(w.active().is_empty());
        assert_eq!(parse_rfc3339("1970-01-02T00:00:01.5Z"), Some(86_401.5));
    }
}
