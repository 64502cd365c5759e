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
    let mut agent = run::start(config(dir.path(), ANOMALY), clock.clone())
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
        if i == 60 {
            // Restart past the warm-up: the detector's state survives (no new warm-up).
            let before = m["history"].clone();
            assert!(
                !m["message"].as_str().unwrap().contains("warming up"),
                "{m:#}"
            );
            assert!(agent.shutdown().await.is_empty());
            agent = run::start(config(dir.path(), ANOMALY), clock.clone())
                .await
                .unwrap();
            let doc = get(&agent, "/api/v1/monitors").await;
            assert_eq!(monitor(&doc, "pp-requests")["history"], before);
        }
        if i == 61 {
            assert!(m["band"].is_object(), "band right after the restart: {m:#}");
            assert!(
                !m["message"].as_str().unwrap().contains("warming up"),
                "{m:#}"
            );
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
    eprintln!("anomaly monitor states (evaluation, state): {seen:?}");
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
    let mut agent = run::start(config(dir.path(), WATCHDOG), clock.clone())
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
        if i == 30 {
            // Restart: the Watchdog's detectors, totals and monitors survive.
            assert!(agent.shutdown().await.is_empty());
            agent = run::start(config(dir.path(), WATCHDOG), clock.clone())
                .await
                .unwrap();
            let after = get(&agent, "/api/v1/watchdog").await;
            assert_eq!(after["monitors"], doc["monitors"]);
        }
    }
    eprintln!(
        "watchdog: error burst at evaluations 50..58, ALERT at {fired_at:?}, OK at {ok_again:?}"
    );
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

/// A loopback hyper server answering the n-th request (0-based) with `script(n)`
/// (`None`: never answers); returns its base URL and the JSON bodies received.
async fn hook_server(
    script: impl Fn(usize) -> Option<u16> + Send + Sync + 'static,
) -> (String, Arc<std::sync::Mutex<Vec<Value>>>) {
    use http_body_util::BodyExt;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let bodies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let script = Arc::new(script);
    let n = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let b2 = bodies.clone();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            let (script, n, bodies) = (script.clone(), n.clone(), b2.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let (script, n, bodies) = (script.clone(), n.clone(), bodies.clone());
                        async move {
                            let i = n.fetch_add(1, Ordering::SeqCst);
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            bodies
                                .lock()
                                .unwrap()
                                .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
                            let Some(code) = script(i) else {
                                tokio::time::sleep(Duration::from_secs(3600)).await;
                                unreachable!();
                            };
                            let mut r = hyper::Response::new(http_body_util::Full::new(
                                bytes::Bytes::from_static(b"{}"),
                            ));
                            *r.status_mut() = hyper::StatusCode::from_u16(code).unwrap();
                            Ok::<_, std::convert::Infallible>(r)
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    (url, bodies)
}

fn metric_value(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_retry_on_5xx_count_failures_and_never_block_evaluation() {
    let dir = TempDir::new("webhook");
    // 0: two 503s, then 200s. 1: always 500. 2: 404 (not retried). 3: never answers.
    let (flaky, flaky_bodies) = hook_server(|n| Some(if n < 2 { 503 } else { 200 })).await;
    let (broken, broken_bodies) = hook_server(|_| Some(500)).await;
    let (gone, gone_bodies) = hook_server(|_| Some(404)).await;
    let (stuck, _) = hook_server(|_| None).await;
    // 4: nothing listens (connection refused), retried like a 5xx.
    let closed = free_port();
    let extra = format!(
        "{THRESHOLD}notifiers:
  webhooks:
    - {{url: '{flaky}/hook', retries: 3, backoff: 10ms, headers: {{x-token: abc}}}}
    - {{url: '{broken}/hook', retries: 2, backoff: 10ms}}
    - {{url: '{gone}/hook', retries: 2, backoff: 10ms}}
    - {{url: '{stuck}/hook', retries: 0, timeout: 30s, queue: 1}}
    - {{url: 'http://127.0.0.1:{closed}/hook', retries: 1, backoff: 10ms}}
"
    );
    let clock = ManualClock::new(1_800_000_000);
    let agent = run::start(config(dir.path(), &extra), clock.clone())
        .await
        .unwrap();
    // OK → ALERT → OK → ALERT → OK: four notifications, one evaluation each.
    for v in [10.0, 150.0, 10.0, 150.0, 10.0] {
        let t = Timestamp::from_nanos(clock.now().as_nanos() + 60_000_000_000);
        insert(&agent, "app.queue.depth", "env:test,pod:a", t, v);
        clock.advance(60);
        evaluated(&agent, clock.as_ref(), "/api/v1/monitors", "monitors").await;
    }
    // The stuck webhook holds the first notification, queues one, drops two; the
    // evaluation went on regardless (all five evaluations above happened).
    let t0 = Instant::now();
    let text = loop {
        let text = get_text(&agent, "/metrics").await;
        let sent = metric_value(
            &text,
            "meshmon_notifications_total{notifier=\"webhook[0]\",outcome=\"sent\"}",
        );
        let failed1 = metric_value(
            &text,
            "meshmon_notifications_total{notifier=\"webhook[1]\",outcome=\"failed\"}",
        );
        let failed2 = metric_value(
            &text,
            "meshmon_notifications_total{notifier=\"webhook[2]\",outcome=\"failed\"}",
        );
        let failed4 = metric_value(
            &text,
            "meshmon_notifications_total{notifier=\"webhook[4]\",outcome=\"failed\"}",
        );
        if sent == 4.0 && failed1 == 4.0 && failed2 == 4.0 && failed4 == 4.0 {
            break text;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let m = |s: &str| metric_value(&text, s);
    assert_eq!(
        m("meshmon_notification_retries_total{notifier=\"webhook[0]\"}"),
        2.0,
        "{text}"
    );
    assert_eq!(
        m("meshmon_notification_retries_total{notifier=\"webhook[1]\"}"),
        8.0,
        "{text}"
    );
    assert_eq!(
        m("meshmon_notification_retries_total{notifier=\"webhook[2]\"}"),
        0.0,
        "{text}"
    );
    assert_eq!(
        m("meshmon_notifications_total{notifier=\"webhook[3]\",outcome=\"dropped\"}"),
        2.0,
        "{text}"
    );
    assert_eq!(
        m("meshmon_notifications_total{notifier=\"log\",outcome=\"sent\"}"),
        4.0
    );
    // Every attempt reached the servers: 4 + 2 retries, 4 × 3, 4 × 1.
    assert_eq!(flaky_bodies.lock().unwrap().len(), 6);
    assert_eq!(broken_bodies.lock().unwrap().len(), 12);
    assert_eq!(gone_bodies.lock().unwrap().len(), 4);
    // The documented body.
    let bodies = flaky_bodies.lock().unwrap().clone();
    let delivered: Vec<&Value> = bodies.iter().skip(2).collect();
    let states: Vec<(&str, &str)> = delivered
        .iter()
        .map(|b| {
            (
                b["previous"].as_str().unwrap(),
                b["state"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("OK", "ALERT"),
            ("ALERT", "OK"),
            ("OK", "ALERT"),
            ("ALERT", "OK")
        ]
    );
    let b = delivered[0];
    assert_eq!(b["version"], 1);
    assert_eq!(b["id"], "queue-depth");
    assert_eq!(b["name"], "Queue depth");
    assert_eq!(b["type"], "metric");
    assert_eq!(b["title"], "[ALERT] Queue depth");
    assert_eq!(b["value"], 150.0);
    assert_eq!(b["threshold"], 100.0);
    assert_eq!(b["labels"]["team"], "mesh");
    assert_eq!(b["renotification"], false);
    assert!(
        b["reason"].as_str().unwrap().contains("above critical 100"),
        "{b:#}"
    );
    assert!(meshmon_core::time::parse_rfc3339(b["at"].as_str().unwrap()).is_ok());
    for k in ["query", "service", "signal", "since", "band", "host", "url"] {
        assert!(b.get(k).is_some(), "body lacks {k}: {b:#}");
    }
    let status = get(&agent, "/api/v1/status").await;
    let n = &status["components"]["monitors"]["notifiers"];
    assert_eq!(n.as_array().unwrap().len(), 6, "{n:#}");
    assert_eq!(
        m("meshmon_notification_retries_total{notifier=\"webhook[4]\"}"),
        4.0,
        "{text}"
    );
    // Shutdown does not hang on the stuck webhook.
    let t0 = Instant::now();
    assert!(agent.shutdown().await.is_empty());
    assert!(t0.elapsed() < Duration::from_secs(8), "{:?}", t0.elapsed());
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A real `prometheus-alertmanager` on loopback ports, with its own storage and config;
/// killed on drop.
struct Alertmanager {
    child: std::process::Child,
    url: String,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn alertmanager_binary() -> Option<PathBuf> {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join("prometheus-alertmanager");
        if p.is_file() {
            return Some(p);
        }
    }
    if std::env::var("MESHMON_REQUIRE_CORPUS").is_ok_and(|v| v == "1") {
        panic!(
            "prometheus-alertmanager is missing and MESHMON_REQUIRE_CORPUS=1 \
             (install it with scripts/setup.d/monitors.sh)"
        );
    }
    eprintln!(
        "SKIPPED: prometheus-alertmanager not found (scripts/setup.d/monitors.sh installs it; \
         MESHMON_REQUIRE_CORPUS=1 fails instead)"
    );
    None
}

async fn start_alertmanager(bin: &Path, dir: &Path) -> Alertmanager {
    let cfg = dir.join("alertmanager.yml");
    std::fs::write(
        &cfg,
        "route:\n  receiver: blackhole\n  group_wait: 1s\n  group_interval: 1s\nreceivers:\n  - name: blackhole\n",
    )
    .unwrap();
    let storage = dir.join("am-data");
    std::fs::create_dir_all(&storage).unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.join("alertmanager.log")).unwrap();
    let child = std::process::Command::new(bin)
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--storage.path={}", storage.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        // No gossip cluster: nothing listens on :9094.
        .arg("--cluster.listen-address=")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let am = Alertmanager {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let t0 = Instant::now();
    loop {
        let r =
            meshmon_agent::status::http_get(&format!("{}/-/ready", am.url), Duration::from_secs(2))
                .await;
        if matches!(r, Ok((200, _))) {
            return am;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "alertmanager not ready: {:?}",
            std::fs::read_to_string(dir.join("alertmanager.log"))
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn am_alerts(am: &Alertmanager) -> Vec<Value> {
    let (code, body) = meshmon_agent::status::http_get(
        &format!("{}/api/v2/alerts", am.url),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(code, 200);
    serde_json::from_slice::<Value>(&body)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_lists_the_alert_and_resolves_it() {
    let Some(bin) = alertmanager_binary() else {
        return;
    };
    let dir = TempDir::new("alertmanager");
    let am = start_alertmanager(&bin, dir.path()).await;
    let extra = format!(
        "
monitors:
  - name: Checkout latency
    id: checkout-latency
    type: metric
    metric: app.checkout.latency
    aggregation: last
    window: 5s
    interval: 100ms
    critical: 0.5
    labels: {{team: payments}}
watchdog:
  enabled: false
notifiers:
  alertmanagers:
    - url: {}
      resend_interval: 4s
      labels: {{cluster: test}}
",
        am.url
    );
    // Real time: Alertmanager judges startsAt / endsAt against its own clock.
    let clock: Arc<dyn Clock> = Arc::new(run::SystemClock);
    let cfg = config(dir.path(), &extra);
    let mut agent = run::start(cfg.clone(), clock.clone()).await.unwrap();
    let feed = |agent: &RunningAgent, v: f64| {
        insert(agent, "app.checkout.latency", "env:test", clock.now(), v)
    };
    feed(&agent, 0.1);
    // Slow checkouts: the monitor fires and Alertmanager lists the alert.
    let t0 = Instant::now();
    let alert = loop {
        feed(&agent, 0.9);
        let alerts = am_alerts(&am).await;
        if let Some(a) = alerts
            .iter()
            .find(|a| a["labels"]["monitor_id"] == "checkout-latency")
        {
            break a.clone();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "never listed: {alerts:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let l = &alert["labels"];
    assert_eq!(l["alertname"], "Checkout latency");
    assert_eq!(l["severity"], "critical");
    assert_eq!(l["monitor_type"], "metric");
    assert_eq!(l["team"], "payments");
    assert_eq!(l["cluster"], "test");
    assert_eq!(alert["status"]["state"], "active");
    assert!(
        alert["annotations"]["summary"]
            .as_str()
            .unwrap()
            .contains("[ALERT] Checkout latency")
    );
    assert!(
        alert["annotations"]["description"]
            .as_str()
            .unwrap()
            .contains("above critical 0.5")
    );
    assert!(
        alert["generatorURL"]
            .as_str()
            .unwrap()
            .contains("/api/v1/monitors")
    );
    let doc = get(&agent, "/api/v1/monitors").await;
    let m = monitor(&doc, "checkout-latency");
    assert_eq!(m["state"], "ALERT");
    // Alertmanager's startsAt is the monitor's `since`.
    let since = meshmon_core::time::parse_rfc3339(m["since"].as_str().unwrap()).unwrap();
    let starts = meshmon_core::time::parse_rfc3339(alert["startsAt"].as_str().unwrap()).unwrap();
    assert_eq!(since.as_secs(), starts.as_secs());
    // Re-sent while active: Alertmanager's endsAt moves ahead (each resend puts it four
    // resend intervals, 16 s, past now).
    let ends =
        |a: &Value| meshmon_core::time::parse_rfc3339(a["endsAt"].as_str().unwrap()).unwrap();
    let first_ends = ends(&alert);
    let t0 = Instant::now();
    loop {
        feed(&agent, 0.9);
        let alerts = am_alerts(&am).await;
        let a = alerts
            .iter()
            .find(|a| a["labels"]["monitor_id"] == "checkout-latency")
            .expect("still listed while firing");
        assert_eq!(a["status"]["state"], "active");
        if ends(a) > first_ends {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(12),
            "never re-sent: {a:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A restart while firing: the alert is sent again at once (endsAt moves ahead again)
    // instead of being left to expire while the monitor is still in ALERT.
    let before = am_alerts(&am)
        .await
        .iter()
        .find(|a| a["labels"]["monitor_id"] == "checkout-latency")
        .map(&ends)
        .unwrap();
    assert!(agent.shutdown().await.is_empty());
    agent = run::start(cfg, clock.clone()).await.unwrap();
    let t0 = Instant::now();
    loop {
        let alerts = am_alerts(&am).await;
        let a = alerts
            .iter()
            .find(|a| a["labels"]["monitor_id"] == "checkout-latency")
            .expect("still listed after the restart");
        if ends(a) > before {
            assert_eq!(a["status"]["state"], "active");
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_millis(2500),
            "not resumed at start (the next periodic re-send is 4 s away): {a:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Recovery: the agent sends endsAt = now, so Alertmanager resolves the alert at once,
    // long before the 16 s of its last endsAt would have expired it.
    loop {
        feed(&agent, 0.1);
        let doc = get(&agent, "/api/v1/monitors").await;
        if monitor(&doc, "checkout-latency")["state"] == "OK" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let recovered = Instant::now();
    loop {
        let alerts = am_alerts(&am).await;
        let listed = alerts
            .iter()
            .find(|a| a["labels"]["monitor_id"] == "checkout-latency");
        let resolved = match listed {
            None => true,
            Some(a) => ends(a) <= run::SystemClock.now(),
        };
        if resolved {
            eprintln!(
                "alertmanager: resolved {:?} after recovery ({})",
                recovered.elapsed(),
                if listed.is_none() {
                    "no longer listed"
                } else {
                    "endsAt passed"
                }
            );
            break;
        }
        assert!(
            recovered.elapsed() < Duration::from_secs(10),
            "not resolved by the agent: {alerts:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let doc = get(&agent, "/api/v1/monitors").await;
    assert_eq!(monitor(&doc, "checkout-latency")["state"], "OK");
    // Deliveries since the restart: the resumed alert and the resolution; none failed.
    let t0 = Instant::now();
    loop {
        let text = get_text(&agent, "/metrics").await;
        let m = |o: &str| {
            metric_value(
                &text,
                &format!(
                    "meshmon_notifications_total{{notifier=\"alertmanager[0]\",outcome=\"{o}\"}}"
                ),
            )
        };
        assert_eq!(m("failed"), 0.0, "{text}");
        if m("sent") >= 2.0 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(agent.shutdown().await.is_empty());
}

/// POSTs `traces` to the agent's Datadog intake as v0.4 msgpack.
async fn send_traces(agent: &RunningAgent, traces: &[Vec<meshmon_trace::Span<'_>>]) {
    let body = meshmon_trace::encode::encode_v04(traces);
    let addr = agent.trace_addr.expect("APM intake");
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let req = hyper::Request::post(format!("http://{addr}/v0.4/traces"))
        .header("content-type", "application/msgpack")
        .header("x-datadog-trace-count", traces.len().to_string())
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_monitors_and_watchdog_read_the_red_data_of_real_spans() {
    let dir = TempDir::new("spans");
    let extra = "
apm:
  enabled: true
  receiver_port: 0
  zipkin_port: null
  stats_flush_interval: 20ms
monitors:
  - name: reviews errors
    type: trace_error_rate
    service: reviews
    window: 2m
    interval: 45s
    critical: 0.3
  - name: reviews p95
    type: trace_latency
    service: reviews
    window: 2m
    interval: 45s
    critical: 0.2
watchdog:
  interval: 45s
";
    // `config` turns APM off first; the later `apm:` block of `extra` wins.
    let text = format!(
        "data_dir: {}\napi:\n  listen: 127.0.0.1:0\ndogstatsd:\n  enabled: false\n{extra}",
        dir.path().display()
    );
    let cfg = parse_yaml(&text, "test.yaml").unwrap();
    cfg.validate().unwrap();
    let clock = ManualClock::new(1_800_000_000);
    let agent = run::start(cfg, clock.clone()).await.unwrap();
    // The first evaluation (monitors and Watchdog share the tick) must happen at the start
    // time: under load it could otherwise come after the first `advance`, and the next
    // would then not be due when the test looks.
    evaluated(&agent, clock.as_ref(), "/api/v1/monitors", "monitors").await;
    let mut id = 1u64;
    let mut want_hits = 0u64;
    for step in 0..3 {
        // 40 requests: productpage → reviews; half of reviews' fail, taking 300 ms.
        let mut traces = Vec::new();
        let t0 = clock.now().as_nanos();
        for i in 0..40i64 {
            let root = meshmon_trace::Span {
                service: "productpage".into(),
                name: "http.request".into(),
                resource: "GET /productpage".into(),
                trace_id: id,
                span_id: id * 10,
                start: t0 + i * 1_000_000,
                duration: 400_000_000,
                ..meshmon_trace::Span::default()
            };
            let child = meshmon_trace::Span {
                service: "reviews".into(),
                name: "http.request".into(),
                resource: "GET /reviews".into(),
                trace_id: id,
                span_id: id * 10 + 1,
                parent_id: id * 10,
                start: t0 + i * 1_000_000 + 1_000,
                duration: 300_000_000,
                error: i32::from(i % 2 == 0),
                ..meshmon_trace::Span::default()
            };
            traces.push(vec![root, child]);
            id += 1;
        }
        send_traces(&agent, &traces).await;
        want_hits += 40;
        // Half a step: the stats bucket is flushed; nothing is due yet.
        clock.advance(30);
        let t = Instant::now();
        loop {
            let s = agent.store.read().unwrap().services().to_vec();
            if s.iter()
                .any(|r| r.service == "reviews" && r.total_hits == want_hits)
            {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(20), "RED table {s:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        clock.advance(30);
        let doc = evaluated(&agent, clock.as_ref(), "/api/v1/monitors", "monitors").await;
        let wd = evaluated(&agent, clock.as_ref(), "/api/v1/watchdog", "monitors").await;
        let ids: Vec<&str> = wd["monitors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids,
            [
                "watchdog:productpage:request_rate",
                "watchdog:productpage:error_rate",
                "watchdog:productpage:latency",
                "watchdog:reviews:request_rate",
                "watchdog:reviews:error_rate",
                "watchdog:reviews:latency",
            ]
        );
        let err = monitor(&doc, "reviews-errors");
        assert_eq!(err["value"].as_f64(), Some(0.5), "{err:#}");
        assert_eq!(err["state"], "ALERT");
        let p95 = monitor(&doc, "reviews-p95");
        let v = p95["value"].as_f64().unwrap();
        assert!((0.25..0.35).contains(&v), "p95 of 300 ms spans: {p95:#}");
        assert_eq!(p95["state"], "ALERT");
        if step > 0 {
            // From the second evaluation on, a rate per interval: 40 requests in 60 s.
            let rr = monitor(&wd, "watchdog:reviews:request_rate");
            let v = rr["value"].as_f64().unwrap();
            assert!((v - 40.0 / 60.0).abs() < 1e-9, "{rr:#}");
            let er = monitor(&wd, "watchdog:reviews:error_rate");
            assert_eq!(er["value"].as_f64(), Some(0.5), "{er:#}");
            let lat = monitor(&wd, "watchdog:reviews:latency");
            let v = lat["value"].as_f64().unwrap();
            assert!((0.25..0.35).contains(&v), "{lat:#}");
        }
    }
    assert!(agent.shutdown().await.is_empty());
}
