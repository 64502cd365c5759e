//! Synthetic cases for the failure modes users complain about in anomaly monitors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use meshmon_alert::monitor::{Aggregation, Condition, Monitor, MonitorConfig, MonitorState, Query};
use meshmon_alert::{Algorithm, Detector, DetectorConfig, Seasonality};
use meshmon_core::{Metric, MetricValue, Tags, Timestamp};

/// Deterministic noise in [-0.5, 0.5).
fn noise(state: &mut u64) -> f64 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (*state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
}

const ALL: [Algorithm; 3] = [Algorithm::Basic, Algorithm::Agile, Algorithm::Robust];

fn anomaly_monitor(alg: Algorithm) -> Monitor {
    let mut cfg = MonitorConfig::new(
        format!("requests {alg}"),
        Query::new("requests", Tags::new(), &["service"]),
        Condition::Anomaly(DetectorConfig::new(alg)),
    );
    cfg.aggregation = Aggregation::Sum;
    cfg.trigger_window = Duration::from_secs(3 * 60);
    cfg.trigger_fraction = 0.6;
    cfg.recovery_window = Duration::from_secs(60 * 60);
    Monitor::new(cfg).unwrap()
}

fn feed(m: &mut Monitor, minute: i64, v: f64) -> Vec<meshmon_alert::Alert> {
    let now = Timestamp::from_secs(minute * 60);
    let tags: Tags = "service:reviews,pod:a".parse().unwrap();
    m.ingest(&Metric::new("requests", MetricValue::Count(v), tags, now));
    m.evaluate(now)
}

#[test]
fn level_shift_is_accepted_after_the_recovery_window() {
    for alg in ALL {
        let mut m = anomaly_monitor(alg);
        let mut st = 1;
        let mut alerts = Vec::new();
        for minute in 0..1000 {
            let level = if minute < 500 { 100.0 } else { 300.0 };
            alerts.extend(feed(&mut m, minute, level + 4.0 * noise(&mut st)));
        }
        let states: Vec<(i64, MonitorState)> = alerts
            .iter()
            .map(|a| (a.timestamp.as_secs() / 60, a.state))
            .collect();
        // One ALERT at the shift, one recovery once the new level is normal, then quiet.
        assert_eq!(states.len(), 2, "{alg}: {states:?}");
        assert_eq!(states[0].1, MonitorState::Alert, "{alg}: {states:?}");
        assert!((500..510).contains(&states[0].0), "{alg}: {states:?}");
        assert_eq!(states[1].1, MonitorState::Ok, "{alg}: {states:?}");
        assert!(
            states[1].0 < 500 + 60 + 64,
            "{alg}: recovered too late {states:?}"
        );
        assert_eq!(
            m.state(&"service:reviews".parse().unwrap()),
            Some(MonitorState::Ok)
        );
        assert!(
            alerts[0]
                .to_notification()
                .title
                .starts_with("[ALERT] requests")
        );
    }
}

#[test]
fn a_past_burst_does_not_poison_the_baseline() {
    for alg in ALL {
        let mut d =
            Detector::new(DetectorConfig::new(alg).with_seasonality(Seasonality::None)).unwrap();
        let mut st = 2;
        let mut band_before = 0.0;
        let mut after = Vec::new();
        for i in 0..1200i64 {
            let burst = (600..620).contains(&i);
            let v = if burst {
                1000.0
            } else {
                100.0 + 4.0 * noise(&mut st)
            };
            let e = d.update(Timestamp::from_secs(i * 60), v);
            if i == 599 {
                band_before = e.upper - e.lower;
            }
            if i >= 700 {
                after.push(e);
            }
        }
        // Back to normal: no alarms, expectation back on the baseline, band not inflated.
        assert!(
            after.iter().all(|e| !e.anomalous),
            "{alg}: anomalous after the burst"
        );
        let last = after.last().unwrap();
        assert!(
            (last.expected - 100.0).abs() < 3.0,
            "{alg}: expected {}",
            last.expected
        );
        let band_after = last.upper - last.lower;
        assert!(
            band_after < 2.0 * band_before,
            "{alg}: band {band_before} -> {band_after}"
        );
        // And the burst itself was caught.
        assert!(d.stats().episodes >= 1);
    }
}

#[test]
fn no_alert_during_warm_up() {
    for alg in ALL {
        let cfg = DetectorConfig::new(alg);
        let warm = cfg.warmup_points as i64;
        let mut d = Detector::new(cfg).unwrap();
        // Wild values from the start: a cold detector must stay quiet.
        for i in 0..warm {
            let v = if i % 2 == 0 { 1.0 } else { 1e6 };
            let e = d.update(Timestamp::from_secs(i * 60), v);
            assert!(
                !e.anomalous && e.score == 0.0,
                "{alg}: point {i} flagged during warm-up"
            );
        }
        // A monitor over it emits nothing during warm-up either.
        let mut m = anomaly_monitor(alg);
        let mut st = 3;
        for minute in 0..warm {
            let v = if minute == 5 {
                1e4
            } else {
                100.0 + noise(&mut st)
            };
            assert!(
                feed(&mut m, minute, v).is_empty(),
                "{alg}: alert during warm-up"
            );
        }
    }
}

fn weekly_series(weekend_dip: f64, weeks: i64) -> impl Iterator<Item = (Timestamp, f64)> {
    let mut st = 4;
    let step = 600i64; // 10-minute points
    (0..(weeks * 7 * 86_400 / step)).map(move |i| {
        let t = i * step;
        let day = (t / 86_400) % 7;
        let hour = (t % 86_400) as f64 / 3_600.0;
        let daily = 30.0 * (hour / 24.0 * std::f64::consts::TAU).sin();
        let weekend = if day >= 5 { -weekend_dip } else { 0.0 };
        (
            Timestamp::from_secs(t),
            200.0 + daily + weekend + 3.0 * noise(&mut st),
        )
    })
}

#[test]
fn weekly_seasonality_is_found() {
    for alg in [Algorithm::Agile, Algorithm::Robust] {
        let mut weekly = Detector::new(DetectorConfig::new(alg)).unwrap();
        let mut daily = Detector::new(DetectorConfig::new(alg)).unwrap();
        for (t, v) in weekly_series(60.0, 4) {
            weekly.update(t, v);
        }
        for (t, v) in weekly_series(0.0, 4) {
            daily.update(t, v);
        }
        assert_eq!(weekly.seasonality(), Seasonality::Weekly, "{alg}");
        assert_eq!(daily.seasonality(), Seasonality::Daily, "{alg}");
        // Detection is done: the bounded history is freed.
        assert!(
            weekly.heap_bytes() < 8 * 1024,
            "{alg}: {} bytes",
            weekly.heap_bytes()
        );
    }
}

#[test]
fn nan_gaps_and_out_of_order_points_are_handled() {
    let mut d = Detector::new(DetectorConfig::new(Algorithm::Robust)).unwrap();
    let mut st = 5;
    for i in 0..200i64 {
        d.update(Timestamp::from_secs(i * 60), 50.0 + noise(&mut st));
    }
    let before = d.clone();
    let e = d.update(Timestamp::from_secs(200 * 60), f64::NAN);
    assert!(!e.anomalous && e.score == 0.0 && e.expected.is_finite());
    let e = d.update(Timestamp::from_secs(10), 1e9);
    assert!(!e.anomalous);
    assert_eq!(d.stats().non_finite, 1);
    assert_eq!(d.stats().out_of_order, 1);
    assert_eq!(d.stats().points, before.stats().points);
    // A two-day gap: short re-warm-up, then business as usual.
    let e = d.update(Timestamp::from_secs(200 * 60 + 2 * 86_400), 1e6);
    assert!(!e.anomalous);
    assert_eq!(d.stats().gaps, 1);
    // Serde round trip resumes identically (deterministic state).
    let json = serde_json::to_string(&d).unwrap();
    let mut back: Detector = serde_json::from_str(&json).unwrap();
    for i in 0..50i64 {
        let t = Timestamp::from_secs(300_000 + i * 60);
        assert_eq!(
            d.update(t, 50.0 + i as f64),
            back.update(t, 50.0 + i as f64)
        );
    }
}

#[test]
fn detected_seasonality_improves_the_fit() {
    // A daily series: once the period is found (auto), the expectation must follow the
    // cycle far better than a non-seasonal model of the same kind.
    for alg in [Algorithm::Agile, Algorithm::Robust] {
        let fit = |s: Seasonality| {
            let mut d = Detector::new(DetectorConfig::new(alg).with_seasonality(s)).unwrap();
            let (mut sum, mut n) = (0.0, 0);
            for (t, v) in weekly_series(0.0, 3) {
                let e = d.update(t, v);
                if t.as_secs() > 2 * 604_800 {
                    sum += (v - e.expected).abs();
                    n += 1;
                }
            }
            (sum / f64::from(n), d.seasonality())
        };
        let (auto, found) = fit(Seasonality::Auto);
        let (none, _) = fit(Seasonality::None);
        assert_eq!(found, Seasonality::Daily, "{alg}");
        assert!(
            auto < 0.5 * none,
            "{alg}: mean |residual| {auto:.2} with the daily profile vs {none:.2} without"
        );
        // Noise is uniform on ±1.5 (mean |noise| 0.75).
        assert!(auto < 2.0, "{alg}: mean |residual| {auto:.2}");
    }
}
