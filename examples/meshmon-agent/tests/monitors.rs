//! Monitors, the Watchdog and notifiers, with the agent started in-process
//! (`run::start`) on a manual clock: the test writes points into the store at the
//! clock's time, advances the clock and waits for the evaluation at that time, then
//! asserts what `/api/v1/monitors` and `/api/v1/watchdog` say.
#![cfg(feature = "agent")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use meshmon_agent::config::{AgentConfig, parse_yaml};
use meshmon_agent::run::{self, Clock, RunningAgent, fmt_time};
use meshmon_agent::store::ServiceRed;
use meshmon_core::{Tags, Timestamp};
use serde_json::Value;

/// A clock the test moves.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(secs: i64) -> Arc<Self> {
        Arc::new(ManualClock(AtomicI64::new(secs * 1_000_000_000)))
    }
    pub fn advance(&self, secs: i64) -> Timestamp {
        let n = self.0.fetch_add(secs * 1_000_000_000, Ordering::SeqCst) + secs * 1_000_000_000;
        Timestamp::from_nanos(n)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_nanos(self.0.load(Ordering::SeqCst))
    }
}

pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!("meshmon-mon-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A config on loopback with no intake listeners, the data dir in `dir`, plus `extra`.
pub fn config(dir: &Path, extra: &str) -> AgentConfig {
    let text = format!(
        "data_dir: {}\napi:\n  listen: 127.0.0.1:0\napm:\n  enabled: false\ndogstatsd:\n  enabled: false\n{extra}",
        dir.display()
    );
    let cfg = parse_yaml(&text, "test.yaml").unwrap();
    cfg.validate().unwrap();
    cfg
}

pub async fn get(agent: &RunningAgent, path: &str) -> Value {
    let url = format!("http://{}{path}", agent.api_addr);
    let (code, body) = meshmon_agent::status::http_get(&url, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(code, 200, "{path}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

pub async fn get_text(agent: &RunningAgent, path: &str) -> String {
    let url = format!("http://{}{path}", agent.api_addr);
    let (_, body) = meshmon_agent::status::http_get(&url, Duration::from_secs(10))
        .await
        .unwrap();
    String::from_utf8(body).unwrap()
}

/// Waits until every monitor of `path`'s `key` list was evaluated at the clock's time.
pub async fn evaluated(agent: &RunningAgent, clock: &dyn Clock, path: &str, key: &str) -> Value {
    let want = fmt_time(clock.now());
    let t0 = Instant::now();
    loop {
        let v = get(agent, path).await;
        let all = v[key].as_array().unwrap();
        if !all.is_empty() && all.iter().all(|m| m["last_eval"] == want.as_str()) {
            return v;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no evaluation at {want} within 20 s: {v:#}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub fn monitor<'a>(doc: &'a Value, id: &str) -> &'a Value {
    doc["monitors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id)
        .unwrap_or_else(|| panic!("no monitor {id} in {doc:#}"))
}

fn insert(agent: &RunningAgent, name: &str, tags: &str, t: Timestamp, v: f64) {
    let tags: Tags = tags.parse().unwrap();
    agent
        .store
        .write()
        .unwrap()
        .insert_point(Arc::from(name), tags, "gauge", t, v);
}

/// The exact shape of `M` (the status page codes against it).
pub fn assert_shape(m: &Value) {
    let keys = [
        "id",
        "name",
        "type",
        "query",
        "service",
        "signal",
        "state",
        "since",
        "value",
        "band",
        "warning",
        "critical",
        "last_eval",
        "message",
        "transitions",
        "history",
    ];
    for k in keys {
        assert!(m.get(k).is_some(), "M lacks {k}: {m:#}");
    }
    assert!(m["id"].is_string() && m["name"].is_string() && m["query"].is_string());
    assert!(
        [
            "metric",
            "anomaly",
            "log",
            "trace_error_rate",
            "trace_latency",
            "watchdog"
        ]
        .contains(&m["type"].as_str().unwrap()),
        "{m:#}"
    );
    assert!(["OK", "WARN", "ALERT", "NO DATA"].contains(&m["state"].as_str().unwrap()));
    assert!(meshmon_core::time::parse_rfc3339(m["since"].as_str().unwrap()).is_ok());
    assert!(m["value"].is_null() || m["value"].is_number());
    if !m["band"].is_null() {
        assert!(m["band"]["lower"].is_number() && m["band"]["upper"].is_number());
    }
    for t in m["transitions"].as_array().unwrap() {
        for k in ["at", "from", "to", "value", "band", "threshold", "reason"] {
            assert!(t.get(k).is_some(), "transition lacks {k}: {t:#}");
        }
        assert!(meshmon_core::time::parse_rfc3339(t["at"].as_str().unwrap()).is_ok());
        assert!(t["reason"].as_str().is_some_and(|r| !r.is_empty()));
    }
    let h = m["history"].as_array().unwrap();
    assert!(h.len() <= 360);
    for p in h {
        assert!(p["t"].is_string() && p["value"].is_number() && p["anomalous"].is_boolean());
        assert!(p.get("lower").is_some() && p.get("upper").is_some());
    }
}

const THRESHOLD: &str = "
monitors:
  - name: Queue depth
    type: metric
    metric: app.queue.depth
    tags: [env:test]
    aggregation: avg
    space_aggregation: sum
    window: 30s
    interval: 20ms
    warning: 50
    critical: 100
    warning_recovery: 40
    critical_recovery: 80
    labels: {team: mesh}
watchdog:
  enabled: false
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threshold_monitor_warn_alert_ok_with_recovery_thresholds_and_restart() {
    let dir = TempDir::new("threshold");
    let clock = ManualClock::new(1_800_000_000);
    let cfg = config(dir.path(), THRESHOLD);
    let mut agent = run::start(cfg.clone(), clock.clone()).await.unwrap();
    let mut states = Vec::new();
    // (value, expected state): recovery thresholds keep ALERT at 90 and WARN at 45.
    let plan = [
        (10.0, "OK"),
        (60.0, "WARN"),
        (120.0, "ALERT"),
        (90.0, "ALERT"),
        (70.0, "WARN"),
        (45.0, "WARN"),
        (30.0, "OK"),
        (150.0, "ALERT"),
    ];
    for (i, (v, want)) in plan.iter().enumerate() {
        let t = Timestamp::from_nanos(clock.now().as_nanos() + 60_000_000_000);
        // Two series: the monitor sums them; a series of another env is not selected.
        insert(&agent, "app.queue.depth", "env:test,pod:a", t, v / 2.0);
        insert(&agent, "app.queue.depth", "env:test,pod:b", t, v / 2.0);
        insert(&agent, "app.queue.depth", "env:prod,pod:c", t, 1000.0);
        clock.advance(60);
        let doc = evaluated(&agent, clock.as_ref(), "/api/v1/monitors", "monitors").await;
        let m = monitor(&doc, "queue-depth");
        assert_shape(m);
        assert_eq!(m["state"], *want, "step {i} value {v}: {m:#}");
        assert_eq!(m["value"].as_f64(), Some(*v), "{m:#}");
        states.push(m["state"].as_str().unwrap().to_owned());
        if i == 4 {
            // Restart in ALERT→WARN: the state, transitions and detector survive.
            let before = m.clone();
            assert!(agent.shutdown().await.is_empty());
            agent = run::start(cfg.clone(), clock.clone()).await.unwrap();
            let doc = get(&agent, "/api/v1/monitors").await;
            let after = monitor(&doc, "queue-depth");
            assert_eq!(after["state"], before["state"]);
            assert_eq!(after["since"], before["since"]);
            assert_eq!(after["transitions"], before["transitions"]);
            assert_eq!(after["history"], before["history"]);
        }
    }
    let doc = get(&agent, "/api/v1/monitors").await;
    let m = monitor(&doc, "queue-depth");
    assert_eq!(m["type"], "metric");
    assert_eq!(m["query"], "avg(last_30s):sum:app.queue.depth{env:test}");
    assert_eq!(
        (m["warning"].as_f64(), m["critical"].as_f64()),
        (Some(50.0), Some(100.0))
    );
    let tr: Vec<(String, String, f64, f64)> = m["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["from"].as_str().unwrap().to_owned(),
                t["to"].as_str().unwrap().to_owned(),
                t["value"].as_f64().unwrap(),
                t["threshold"].as_f64().unwrap(),
            )
        })
        .collect();
    let want = [
        ("OK", "WARN", 60.0, 50.0),
        ("WARN", "ALERT", 120.0, 100.0),
        ("ALERT", "WARN", 70.0, 80.0),
        ("WARN", "OK", 30.0, 40.0),
        ("OK", "ALERT", 150.0, 100.0),
    ];
    let want: Vec<(String, String, f64, f64)> = want
        .iter()
        .map(|(a, b, v, t)| ((*a).into(), (*b).into(), *v, *t))
        .collect();
    assert_eq!(tr, want, "{m:#}");
    // Counters and the status component.
    let metrics = get_text(&agent, "/metrics").await;
    assert!(
        metrics.contains("meshmon_monitors{state=\"ALERT\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("meshmon_notifications_total{notifier=\"log\",outcome=\"sent\"}"),
        "{metrics}"
    );
    let status = get(&agent, "/api/v1/status").await;
    assert_eq!(status["components"]["monitors"]["configured"], 1);
    assert_eq!(status["components"]["monitors"]["states"]["ALERT"], 1);
    assert!(
        status["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "monitors")
    );
    assert!(agent.shutdown().await.is_empty());
    // A corrupt state file is set aside, never a crash.
    let state = dir.path().join("state/monitors.json");
    std::fs::write(&state, b"{\"meshmon_state\": \"monitors\", \"vers").unwrap();
    let agent = run::start(cfg, clock.clone()).await.unwrap();
    clock.advance(60);
    let doc = evaluated(&agent, clock.as_ref(), "/api/v1/monitors", "monitors").await;
    assert!(
        monitor(&doc, "queue-depth")["transitions"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let aside = std::fs::read_dir(dir.path().join("state"))
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("monitors.json.bad-")
        });
    assert!(aside, "the corrupt file was not set aside");
    assert!(agent.shutdown().await.is_empty());
}

const ANOMALY: &str = "
monitors:
  - name: productpage requests
    id: pp-requests
    type: anomaly
    metric: istio.mesh.request.count
    tags: [destination_service_name:productpage]
    aggregation: sum
    window: 50s
    interval: 20ms
    algorithm: robust
    bounds: 3
    warmup_points: 30
    trigger_window: 3m
    recovery_window: 3m
    critical: 1.0
watchdog:
  enabled: false
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anomaly_monitor_fires_on_a_step_and_recovers() {
    let dir = TempDir::new("anomaly");
    let clock = ManualClock::new(1_800_000_000);
    let agent = run::start(config(dir.path(), ANOMALY), clock.clone())
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut last = String::new();
    let mut first_alert = None;
    for i in 0..140i64 {
        // Deterministic noise around 100 req/interval; a ×4 step at points 80..90.
        let noise = ((i * 37) % 11) as f64 - 5.0;
        let v = if (80..90).contains(&i) {
            400.0 + noise
        } else {
            100.0 + noise
        };
        let t = Timestamp::from_nanos(clock.now().as_nanos() + 60_000_000_000);
        insert(
            &agent,
            "istio.mesh.request.count",
            "destination_service_name:productpage,pod:x",
            t,
            v,
        );
        clock.advance(60);
        let doc = evaluated(&agent, clock.as_ref(), "/api/v1/monitors", "monitors").await;
        let m = monitor(&doc, "pp-requests");
        let s = m["state"].as_str().unwrap().to_owned();
        if s != last {
            seen.push((i, s.clone()));
            last = s;
        }
        if m["state"] == "ALERT" && first_alert.is_none() {
            first_alert = Some(m.clone());
        }
    }
    let m = first_alert.unwrap_or_else(|| panic!("never fired: {seen:?}"));
    assert_shape(&m);
    let b = &m["band"];
    assert!(
        m["value"].as_f64().unwrap() > b["upper"].as_f64().unwrap(),
        "{m:#}"
    );
    let t = m["transitions"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (t["from"].as_str(), t["to"].as_str()),
        (Some("OK"), Some("ALERT"))
    );
    assert!(t["band"]["upper"].as_f64().unwrap() < t["value"].as_f64().unwrap());
    assert_eq!(t["threshold"].as_f64(), Some(1.0));
    assert!(
        t["reason"]
            .as_str()
            .unwrap()
            .contains("100% of the last 3m"),
        "{t:#}"
    );
    let h = m["history"].as_array().unwrap();
    assert!(h.last().unwrap()["anomalous"].as_bool().unwrap());
    assert_eq!(
        h.iter().filter(|p| p["anomalous"] == true).count(),
        3,
        "{m:#}"
    );
    assert_eq!(seen.first().map(|s| s.1.as_str()), Some("OK"), "{seen:?}");
    let alert: Vec<_> = seen.iter().filter(|s| s.1 == "ALERT").collect();
    assert_eq!(alert.len(), 1, "one alert for one incident: {seen:?}");
    assert!((80..=84).contains(&alert[0].0), "{seen:?}");
    assert_eq!(seen.last().map(|s| s.1.as_str()), Some("OK"), "{seen:?}");
    assert!(agent.shutdown().await.is_empty());
}

const WATCHDOG: &str = "
watchdog:
  interval: 20ms
  warmup_points: 15
  recovery_points: 5
";

fn red(service: &str, hits: u64, errors: u64, p95_ms: f64) -> ServiceRed {
    ServiceRed {
        service: service.into(),
        env: "test".into(),
        total_hits: hits,
        total_errors: errors,
        p95_ms,
        ..ServiceRed::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchdog_creates_monitors_as_services_appear_and_fires_on_an_error_burst() {
    let dir = TempDir::new("watchdog");
    let clock = ManualClock::new(1_800_000_000);
    let agent = run::start(config(dir.path(), WATCHDOG), clock.clone())
        .await
        .unwrap();
    let (mut hits, mut errors) = ([0u64; 2], [0u64; 2]);
    let mut fired_at = None;
    let mut ok_again = None;
    for i in 0..90i64 {
        for (s, base) in [(0usize, 600u64), (1, 300)] {
            hits[s] += base + (i as u64 * 7) % 13;
            let burst = s == 0 && (50..58).contains(&i);
            errors[s] += if burst { 120 } else { (i as u64) % 3 };
        }
        {
            let mut st = agent.store.write().unwrap();
            let mut v = vec![red("reviews", hits[0], errors[0], 120.0 + (i % 4) as f64)];
            if i >= 10 {
                // "ratings" appears later.
                v.push(red("ratings", hits[1], errors[1], 40.0 + (i % 3) as f64));
            }
            st.set_services(v);
        }
        clock.advance(60);
        let doc = evaluated(&agent, clock.as_ref(), "/api/v1/watchdog", "monitors").await;
        let ms = doc["monitors"].as_array().unwrap();
        let n = if i >= 10 { 6 } else { 3 };
        assert_eq!(
            ms.len(),
            n,
            "three monitors per service at step {i}: {doc:#}"
        );
        for m in ms {
            assert_shape(m);
            assert_eq!(m["type"], "watchdog");
        }
        let er = ms
            .iter()
            .find(|m| m["id"] == "watchdog:reviews:error_rate")
            .unwrap();
        assert_eq!(er["signal"], "error_rate");
        assert_eq!(er["service"], "reviews");
        let findings = doc["findings"].as_array().unwrap();
        if er["state"] == "ALERT" && fired_at.is_none() {
            fired_at = Some(i);
            assert!(findings.iter().any(|f| f["id"] == er["id"]), "{doc:#}");
            let t = er["transitions"].as_array().unwrap().last().unwrap();
            assert_eq!(t["to"], "ALERT");
            assert!(
                t["reason"]
                    .as_str()
                    .unwrap()
                    .contains("error rate increase"),
                "{t:#}"
            );
            assert!(t["value"].as_f64().unwrap() > t["band"]["upper"].as_f64().unwrap());
        }
        if fired_at.is_some() && ok_again.is_none() && er["state"] == "OK" {
            ok_again = Some(i);
            // Recovered within the hour: still listed among the findings.
            assert!(findings.iter().any(|f| f["id"] == er["id"]), "{doc:#}");
        }
        if i < 50 {
            assert!(
                findings.is_empty(),
                "no finding before the burst (step {i}): {doc:#}"
            );
        }
    }
    let fired = fired_at.expect("the error burst was not found");
    assert!((50..56).contains(&fired), "fired at {fired}");
    assert!(ok_again.is_some_and(|i| i > 57), "{ok_again:?}");
    // Configured monitors are listed apart: none here.
    let doc = get(&agent, "/api/v1/monitors").await;
    assert_eq!(doc, serde_json::json!({"monitors": []}));
    let doc = get(&agent, "/api/v1/watchdog").await;
    let others: Vec<_> = doc["monitors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["id"] != "watchdog:reviews:error_rate")
        .filter(|m| !m["transitions"].as_array().unwrap().is_empty())
        .map(|m| m["id"].clone())
        .collect();
    assert!(others.is_empty(), "other signals fired: {others:?}");
    assert!(agent.shutdown().await.is_empty());
}
