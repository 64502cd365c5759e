//! Monitor state machine (NO DATA, re-notification, warn/critical with recovery, grouping,
//! cardinality cap) and Watchdog (low traffic, one story per episode, each signal).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use meshmon_alert::monitor::{Aggregation, Condition, Monitor, MonitorConfig, MonitorState, Query};
use meshmon_alert::threshold::{Comparator, ThresholdConfig};
use meshmon_alert::watchdog::{RedPoint, Signal, Watchdog, WatchdogConfig};
use meshmon_core::{AlertType, Metric, MetricValue, Tags, Timestamp};

fn metric(name: &str, v: f64, tags: &str, minute: i64) -> Metric {
    Metric::new(
        name,
        MetricValue::Gauge(v),
        tags.parse().unwrap(),
        Timestamp::from_secs(minute * 60),
    )
}

fn threshold_monitor() -> Monitor {
    let mut cfg = MonitorConfig::new(
        "error rate",
        Query::new("errors", "env:prod".parse().unwrap(), &["service"]),
        Condition::Threshold(
            ThresholdConfig::new(Comparator::Above, 10.0)
                .with_warning(5.0)
                .with_critical_recovery(8.0)
                .with_warning_recovery(3.0),
        ),
    );
    cfg.aggregation = Aggregation::Sum;
    cfg.trigger_window = Duration::from_secs(60);
    cfg.trigger_fraction = 1.0;
    cfg.recovery_window = Duration::from_secs(120);
    cfg.no_data_timeframe = Some(Duration::from_secs(300));
    cfg.renotify_interval = Some(Duration::from_secs(600));
    cfg.max_groups = 2;
    Monitor::new(cfg).unwrap()
}

#[test]
fn groups_filters_warn_alert_renotify_no_data() {
    let mut m = threshold_monitor();
    let mut log = Vec::new();
    // Two pods of `reviews` are summed; staging and other metrics are ignored.
    let values = [
        1.0, 3.0, 6.0, 12.0, 12.0, 12.0, 12.0, 12.0, 12.0, 12.0, 12.0, 12.0, 12.0, 9.0, 7.0, 2.0,
        2.0, 2.0,
    ];
    for (minute, &v) in values.iter().enumerate() {
        let minute = minute as i64;
        assert!(m.ingest(&metric(
            "errors",
            v / 2.0,
            "env:prod,service:reviews,pod:a",
            minute
        )));
        assert!(m.ingest(&metric(
            "errors",
            v / 2.0,
            "env:prod,service:reviews,pod:b",
            minute
        )));
        assert!(!m.ingest(&metric(
            "errors",
            1e6,
            "env:staging,service:reviews",
            minute
        )));
        assert!(!m.ingest(&metric("latency", 1e6, "env:prod,service:reviews", minute)));
        for a in m.evaluate(Timestamp::from_secs(minute * 60)) {
            log.push((minute, a.previous, a.state, a.renotification));
        }
    }
    use MonitorState::*;
    assert_eq!(
        log,
        [
            // The 1-minute trigger window holds two points, both must be bad.
            (3, Ok, Warn, false),
            (4, Warn, Alert, false),
            // 10 minutes after the ALERT notification, still alerting: a reminder.
            (14, Alert, Alert, true),
            // 9 (minute 13) is still ALERT-level (above critical_recovery 8), 7 is WARN-level
            // (above warning_recovery 3): ALERT holds 2 minutes past minute 13, WARN 2
            // minutes past minute 14.
            (15, Alert, Warn, false),
            (16, Warn, Ok, false),
        ],
        "{log:?}"
    );
    // Silence: NO DATA after 5 minutes, once.
    let mut no_data = Vec::new();
    for minute in 18..40 {
        no_data.extend(m.evaluate(Timestamp::from_secs(minute * 60)));
    }
    assert_eq!(no_data.len(), 2, "{no_data:?}"); // NO DATA at 22, a reminder at 32
    assert_eq!(no_data[0].state, NoData);
    assert_eq!(no_data[0].timestamp.as_secs() / 60, 22);
    let n = no_data[0].to_notification();
    assert_eq!(n.alert_type, AlertType::Warning);
    assert_eq!(n.tags.to_string(), "service:reviews");
    assert!(
        n.title
            .starts_with("[NO DATA] error rate on service:reviews"),
        "{}",
        n.title
    );
    // Data again: back to OK.
    m.ingest(&metric("errors", 1.0, "env:prod,service:reviews", 40));
    let back = m.evaluate(Timestamp::from_secs(40 * 60));
    assert_eq!(back.len(), 1);
    assert_eq!((back[0].previous, back[0].state), (NoData, Ok));
    assert_eq!(back[0].to_notification().alert_type, AlertType::Success);
}

#[test]
fn group_cap_is_counted() {
    let mut m = threshold_monitor();
    for s in ["a", "b", "c", "d"] {
        m.ingest(&metric("errors", 1.0, &format!("env:prod,service:{s}"), 0));
    }
    assert_eq!(m.stats().dropped_groups, 2);
    assert_eq!(m.evaluate(Timestamp::from_secs(0)).len(), 0);
    assert_eq!(
        m.state(&"service:a".parse::<Tags>().unwrap()),
        Some(MonitorState::Ok)
    );
    assert_eq!(m.state(&"service:c".parse::<Tags>().unwrap()), None);
}

#[test]
fn invalid_monitors_are_rejected() {
    let mut bad = MonitorConfig::default();
    bad.trigger_fraction = 0.0;
    assert!(Monitor::new(bad).is_err());
    let bad = MonitorConfig::new(
        "m",
        Query::default(),
        Condition::Threshold(ThresholdConfig::new(Comparator::Above, 1.0).with_warning(2.0)),
    );
    let err = Monitor::new(bad).unwrap_err().to_string();
    assert!(err.contains("warning"), "{err}");
}

fn red(minute: i64, resource: &str, hits: f64, errors: f64, p95: f64) -> RedPoint {
    RedPoint {
        service: "productpage".into(),
        resource: resource.into(),
        timestamp: Timestamp::from_secs(minute * 60),
        interval: Duration::from_secs(60),
        hits,
        errors,
        p95_latency: p95,
    }
}

#[test]
fn watchdog_stories_once_per_episode_per_signal() {
    let mut w = Watchdog::new(WatchdogConfig::default()).unwrap();
    let mut stories = Vec::new();
    let mut st = 9u64;
    let mut noise = || {
        st = st
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (st >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    for minute in 0..900i64 {
        // GET /: latency regression from minute 400 to 500.
        let p95 = if (400..500).contains(&minute) {
            0.9
        } else {
            0.1 + 0.01 * noise()
        };
        stories.extend(w.observe(&red(
            minute,
            "GET /",
            1000.0 + 20.0 * noise(),
            2.0 + noise(),
            p95,
        )));
        // GET /health: 3 requests a minute — below the traffic floor, never judged.
        let wild = if minute % 50 == 0 { 50.0 } else { 1.0 };
        stories.extend(w.observe(&red(minute, "GET /health", 3.0, wild - 1.0, 0.01 * wild)));
        // POST /reviews: traffic drops at minute 700 and stays down.
        let hits = if minute >= 700 { 200.0 } else { 800.0 } + 10.0 * noise();
        let errors = hits * 0.002 * (1.0 + 0.2 * noise());
        stories.extend(w.observe(&red(
            minute,
            "POST /reviews",
            hits,
            errors,
            0.2 + 0.01 * noise(),
        )));
    }
    let summary: Vec<(String, Signal, bool, i64)> = stories
        .iter()
        .map(|s| {
            (
                s.resource.clone(),
                s.signal,
                s.increase,
                s.started.as_secs() / 60,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("GET /".to_string(), Signal::Latency, true, 400),
            ("POST /reviews".to_string(), Signal::RequestRate, false, 700)
        ],
        "{summary:?}"
    );
    assert_eq!(w.stats().low_traffic, 900);
    assert_eq!(w.endpoints(), 2);
    let n = stories[0].to_notification();
    assert!(
        n.title
            .contains("p95 latency increase on productpage GET /"),
        "{}",
        n.title
    );
    assert_eq!(n.tags.get("service"), Some("productpage"));
}

#[test]
fn watchdog_reports_each_signal_and_the_end_of_an_episode() {
    use meshmon_alert::watchdog::Skipped;
    let mut cfg = WatchdogConfig::default();
    cfg.recovery_points = 4;
    let mut w = Watchdog::new(cfg).unwrap();
    let point = |i: i64, errors: f64, hits: f64| RedPoint {
        service: "reviews".into(),
        resource: "*".into(),
        timestamp: Timestamp::from_secs(i * 60),
        interval: Duration::from_secs(60),
        hits,
        errors,
        p95_latency: 0.1 + (i % 3) as f64 * 0.001,
    };
    // Too quiet: skipped, nothing reported.
    let o = w.observe_detailed(&point(0, 0.0, 1.0));
    assert_eq!(o.skipped, Some(Skipped::LowTraffic));
    assert!(o.signals.is_empty());
    assert_eq!(w.is_active("reviews", "*", Signal::ErrorRate), None);
    let (mut started, mut ended, mut active_points) = (Vec::new(), Vec::new(), 0);
    for i in 1..300i64 {
        let errors = if (200..230).contains(&i) {
            60.0
        } else {
            (i % 3) as f64
        };
        let o = w.observe_detailed(&point(i, errors, 600.0 + (i % 5) as f64));
        assert_eq!(o.skipped, None);
        assert_eq!(o.signals.len(), 3, "one report per finite signal");
        let er = o
            .signals
            .iter()
            .find(|r| r.signal == Signal::ErrorRate)
            .unwrap();
        assert!((er.value - errors / (600.0 + (i % 5) as f64)).abs() < 1e-12);
        active_points += usize::from(er.active);
        assert_eq!(
            w.is_active("reviews", "*", Signal::ErrorRate),
            Some(er.active)
        );
        started.extend(
            o.stories
                .iter()
                .filter(|s| s.signal == Signal::ErrorRate)
                .map(|_| i),
        );
        if er.ended {
            ended.push(i);
            assert!(!er.active);
        }
    }
    assert_eq!(started.len(), 1, "{started:?}");
    assert!((200..210).contains(&started[0]), "{started:?}");
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert!(ended[0] > started[0], "{ended:?}");
    assert_eq!(active_points as i64, ended[0] - started[0]);
    // `observe` is the stories of `observe_detailed`.
    let mut a = Watchdog::new(WatchdogConfig::default()).unwrap();
    let mut b = a.clone();
    for i in 0..50 {
        let p = point(i, if i > 40 { 90.0 } else { 1.0 }, 600.0);
        assert_eq!(a.observe(&p), b.observe_detailed(&p).stories);
    }
}
