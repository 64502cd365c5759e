//! The anomaly monitor's options, one by one, on hand-built series whose expected
//! states are worked out from the definitions (not from the implementation).

use std::time::Duration;

use meshmon_alert::anomaly::{AnomalyMonitor, AnomalyMonitorConfig, Cause, Direction};
use meshmon_alert::{Algorithm, ConfigError, MonitorState};
use meshmon_core::Timestamp;

const MIN: i64 = 60;

/// A steady series with a small deterministic wiggle.
fn base(i: i64) -> f64 {
    100.0 + ((i * 7919) % 11) as f64 * 0.5
}

fn cfg(alg: Algorithm, trigger_min: u64, recovery_min: u64) -> AnomalyMonitorConfig {
    let mut c = AnomalyMonitorConfig::new(alg);
    c.trigger_window = Duration::from_secs(trigger_min * 60);
    c.recovery_window = Duration::from_secs(recovery_min * 60);
    // The worked examples below count with Datadog's 100 %.
    c.critical = 1.0;
    c
}

/// Runs minutes `0..n` with `v(i)`; returns the state after each point.
fn run(m: &mut AnomalyMonitor, n: i64, v: impl Fn(i64) -> f64) -> Vec<MonitorState> {
    (0..n)
        .map(|i| m.update(Timestamp::from_secs(i * MIN), v(i)).state)
        .collect()
}

fn first(states: &[MonitorState], s: MonitorState) -> Option<usize> {
    states.iter().position(|&x| x == s)
}

#[test]
fn defaults_are_datadogs() {
    let c = AnomalyMonitorConfig::new(Algorithm::Robust);
    assert_eq!(c.trigger_window, Duration::from_secs(900));
    assert_eq!(c.recovery_window, Duration::from_secs(900));
    // meshmon's alert threshold (Datadog's UI proposes 1.0), Datadog's recovery.
    assert_eq!((c.critical, c.critical_recovery), (0.9, 0.0));
    assert_eq!(c.direction, Direction::Both);
    assert!(!c.require_full_window && c.warning.is_none() && c.no_data_timeframe.is_none());
    assert_eq!(c.detector.algorithm, Algorithm::Robust);
}

#[test]
fn alerts_once_the_whole_trigger_window_is_anomalous() {
    // basic, 5-minute trigger window, 100 %: a ×5 jump at minute 200 makes minutes
    // 200.. anomalous; the window (t − 5 min, t] holds 5 points, all anomalous first at
    // minute 204.
    let mut m = AnomalyMonitor::new(cfg(Algorithm::Basic, 5, 10)).unwrap();
    let s = run(
        &mut m,
        215,
        |i| if i >= 200 { 5.0 * base(i) } else { base(i) },
    );
    assert_eq!(first(&s, MonitorState::Alert), Some(204));
    assert!(s[..204].iter().all(|&x| x == MonitorState::Ok));
}

#[test]
fn critical_fraction_below_one() {
    // Every other point anomalous: 3 of the 5 points in the window at best, so 60 %
    // trips and 100 % never does.
    let bad = |i: i64| {
        if i >= 200 && i % 2 == 0 {
            5.0 * base(i)
        } else {
            base(i)
        }
    };
    let mut c = cfg(Algorithm::Robust, 5, 10);
    c.critical = 0.6;
    let mut m = AnomalyMonitor::new(c.clone()).unwrap();
    let s = run(&mut m, 230, bad);
    // Minute 204: points 200, 202, 204 of 200..=204 anomalous = 3/5.
    assert_eq!(first(&s, MonitorState::Alert), Some(204));
    c.critical = 1.0;
    let mut m = AnomalyMonitor::new(c).unwrap();
    let s = run(&mut m, 230, bad);
    assert_eq!(first(&s, MonitorState::Alert), None);
}

#[test]
fn recovers_after_a_clean_recovery_window() {
    // Incident minutes 200..210; 10-minute recovery window at 0 %: the window
    // (t − 10, t] is clean first at t = 219 (last bad point 209).
    let mut m = AnomalyMonitor::new(cfg(Algorithm::Robust, 5, 10)).unwrap();
    let s = run(&mut m, 260, |i| {
        if (200..210).contains(&i) {
            5.0 * base(i)
        } else {
            base(i)
        }
    });
    assert_eq!(first(&s, MonitorState::Alert), Some(204));
    let ok_again = s[204..]
        .iter()
        .position(|&x| x == MonitorState::Ok)
        .map(|p| p + 204);
    assert_eq!(ok_again, Some(219));
    assert!(s[219..].iter().all(|&x| x == MonitorState::Ok));
}

#[test]
fn recovery_fraction_lets_it_recover_earlier() {
    // With critical_recovery 0.5 the 10-point recovery window may hold up to 5 bad
    // points: recovery at minute 214 (bad 205..=209 in (204, 214]).
    let mut c = cfg(Algorithm::Robust, 5, 10);
    c.critical_recovery = 0.5;
    let mut m = AnomalyMonitor::new(c).unwrap();
    let s = run(&mut m, 260, |i| {
        if (200..210).contains(&i) {
            5.0 * base(i)
        } else {
            base(i)
        }
    });
    let ok_again = s[204..]
        .iter()
        .position(|&x| x == MonitorState::Ok)
        .map(|p| p + 204);
    assert_eq!(ok_again, Some(214));
}

#[test]
fn warning_before_alert() {
    let mut c = cfg(Algorithm::Robust, 10, 10);
    c.warning = Some(0.3);
    let mut m = AnomalyMonitor::new(c).unwrap();
    let s = run(&mut m, 260, |i| {
        if (200..215).contains(&i) {
            5.0 * base(i)
        } else {
            base(i)
        }
    });
    // 3 of 10 at minute 202 (WARN), 10 of 10 at minute 209 (ALERT).
    assert_eq!(first(&s, MonitorState::Warn), Some(202));
    assert_eq!(first(&s, MonitorState::Alert), Some(209));
}

#[test]
fn direction_selects_the_side() {
    // Shorter than robust's 16-vote level acceptance, so the return is not a shift up.
    let dip = |i: i64| {
        if (200..210).contains(&i) {
            0.2 * base(i)
        } else {
            base(i)
        }
    };
    for (dir, alerts) in [
        (Direction::Both, true),
        (Direction::Below, true),
        (Direction::Above, false),
    ] {
        let mut c = cfg(Algorithm::Robust, 5, 10);
        c.direction = dir;
        let mut m = AnomalyMonitor::new(c).unwrap();
        let s = run(&mut m, 260, dip);
        assert_eq!(first(&s, MonitorState::Alert).is_some(), alerts, "{dir}");
    }
}

#[test]
fn require_full_window_waits_for_data() {
    // Data starts at minute 0; a 60-minute trigger window at 20 %; the detector's
    // warm-up is 4 points, a burst at minutes 10..30 is anomalous.
    let burst = |i: i64| {
        if (10..30).contains(&i) {
            5.0 * base(i)
        } else {
            base(i)
        }
    };
    let mut c = cfg(Algorithm::Basic, 60, 10);
    c.critical = 0.2;
    c.detector = c.detector.clone().with_warmup_points(4);
    let mut m = AnomalyMonitor::new(c.clone()).unwrap();
    let s = run(&mut m, 100, burst);
    assert!(first(&s, MonitorState::Alert).is_some_and(|i| i < 30));
    c.require_full_window = true;
    let mut m = AnomalyMonitor::new(c).unwrap();
    let s = run(&mut m, 100, burst);
    assert!(
        first(&s, MonitorState::Alert).is_none_or(|i| i >= 60),
        "{s:?}"
    );
}

#[test]
fn warm_up_never_alerts() {
    for alg in [Algorithm::Basic, Algorithm::Agile, Algorithm::Robust] {
        let mut c = cfg(alg, 1, 1);
        c.min_relative_deviation = 0.0;
        let warm = i64::from(c.detector.warmup_points);
        let mut m = AnomalyMonitor::new(c).unwrap();
        let s = run(&mut m, warm, |i| if i % 2 == 0 { 1.0 } else { 1e6 });
        assert!(s.iter().all(|&x| x == MonitorState::Ok), "{alg}");
    }
}

#[test]
fn a_persistent_level_shift_becomes_normal() {
    // +40 % from minute 300 on, forever: agile takes it within a few points, robust
    // after its 16 votes; either way the monitor is OK one recovery window later and
    // stays OK.
    for alg in [Algorithm::Agile, Algorithm::Robust] {
        let mut m = AnomalyMonitor::new(cfg(alg, 5, 15)).unwrap();
        let s = run(
            &mut m,
            600,
            |i| if i >= 300 { 1.4 * base(i) } else { base(i) },
        );
        let tail = &s[300 + 16 + 15 + 5..];
        assert!(tail.iter().all(|&x| x == MonitorState::Ok), "{alg}: {s:?}");
    }
}

#[test]
fn small_changes_do_not_page() {
    // A 10 % step on a noiseless series is many σ but below min_relative_deviation.
    let step = |i: i64| {
        if i >= 300 {
            110.0
        } else {
            100.0 + (i % 2) as f64 * 0.1
        }
    };
    let mut m = AnomalyMonitor::new(cfg(Algorithm::Robust, 5, 15)).unwrap();
    assert!(
        run(&mut m, 400, step)
            .iter()
            .all(|&x| x == MonitorState::Ok)
    );
    let mut c = cfg(Algorithm::Robust, 5, 15);
    c.min_relative_deviation = 0.0;
    let mut m = AnomalyMonitor::new(c).unwrap();
    assert!(run(&mut m, 400, step).contains(&MonitorState::Alert));
}

#[test]
fn no_data_and_back() {
    let mut c = cfg(Algorithm::Robust, 5, 10);
    c.no_data_timeframe = Some(Duration::from_secs(10 * 60));
    let mut m = AnomalyMonitor::new(c).unwrap();
    run(&mut m, 100, base);
    // Last point at minute 99: nothing at 105, NO DATA at 109.
    assert_eq!(m.no_data(Timestamp::from_secs(105 * MIN)), None);
    let t = m.no_data(Timestamp::from_secs(109 * MIN)).unwrap();
    assert_eq!(
        (t.from, t.to, t.cause),
        (MonitorState::Ok, MonitorState::NoData, Cause::NoData)
    );
    assert_eq!(m.no_data(Timestamp::from_secs(110 * MIN)), None); // once
    // NaN is missing data too; a finite point brings it back.
    assert!(
        m.update(Timestamp::from_secs(111 * MIN), f64::NAN)
            .transition
            .is_none()
    );
    let e = m.update(Timestamp::from_secs(112 * MIN), base(112));
    let t = e.transition.unwrap();
    assert_eq!(
        (t.from, t.to, t.cause),
        (MonitorState::NoData, MonitorState::Ok, Cause::DataReturned)
    );
    assert_eq!(m.stats().skipped, 1);
}

#[test]
fn transitions_carry_the_cause() {
    let mut m = AnomalyMonitor::new(cfg(Algorithm::Robust, 5, 10)).unwrap();
    let mut ts = Vec::new();
    for i in 0..260 {
        let v = if (200..210).contains(&i) {
            5.0 * base(i)
        } else {
            base(i)
        };
        ts.extend(m.update(Timestamp::from_secs(i * MIN), v).transition);
    }
    assert_eq!(ts.len(), 2);
    let a = ts[0];
    assert_eq!(
        (a.to, a.cause, a.threshold, a.fraction),
        (MonitorState::Alert, Cause::Critical, 1.0, 1.0)
    );
    assert_eq!(a.window, Duration::from_secs(300));
    let band = a.band.unwrap();
    assert!(a.value.unwrap() > band.upper && band.lower < band.expected);
    let r = ts[1];
    assert_eq!(
        (r.from, r.to, r.cause, r.fraction),
        (MonitorState::Alert, MonitorState::Ok, Cause::Recovered, 0.0)
    );
}

#[test]
fn persist_and_restore_mid_episode() {
    let v = |i: i64| {
        if (200..240).contains(&i) {
            5.0 * base(i)
        } else {
            base(i)
        }
    };
    let mut a = AnomalyMonitor::new(cfg(Algorithm::Agile, 5, 10)).unwrap();
    for i in 0..205 {
        a.update(Timestamp::from_secs(i * MIN), v(i));
    }
    let json = serde_json::to_string(&a).unwrap();
    let mut b: AnomalyMonitor = serde_json::from_str(&json).unwrap();
    assert_eq!(a, b);
    for i in 205..300 {
        let t = Timestamp::from_secs(i * MIN);
        assert_eq!(a.update(t, v(i)), b.update(t, v(i)));
    }
}

#[test]
fn invalid_configs_are_typed_errors() {
    let bad = |f: &dyn Fn(&mut AnomalyMonitorConfig)| {
        let mut c = AnomalyMonitorConfig::new(Algorithm::Basic);
        f(&mut c);
        match AnomalyMonitor::new(c) {
            Err(ConfigError::Invalid { field, .. }) => field,
            other => panic!("accepted: {other:?}"),
        }
    };
    assert_eq!(bad(&|c| c.detector.bounds = f64::NAN), "bounds");
    assert_eq!(bad(&|c| c.detector.bounds = 0.0), "bounds");
    assert_eq!(bad(&|c| c.detector.bounds = -1.0), "bounds");
    assert_eq!(bad(&|c| c.critical = 0.0), "critical");
    assert_eq!(bad(&|c| c.critical = 1.5), "critical");
    assert_eq!(bad(&|c| c.critical_recovery = 1.0), "critical_recovery");
    assert_eq!(bad(&|c| c.warning = Some(1.0)), "warning");
    assert_eq!(bad(&|c| c.warning_recovery = Some(0.1)), "warning_recovery");
    assert_eq!(
        bad(&|c| c.trigger_window = Duration::ZERO),
        "trigger_window"
    );
    assert_eq!(
        bad(&|c| c.recovery_window = Duration::ZERO),
        "recovery_window"
    );
    assert_eq!(
        bad(&|c| c.no_data_timeframe = Some(Duration::ZERO)),
        "no_data_timeframe"
    );
    assert_eq!(bad(&|c| c.max_window_points = 0), "max_window_points");
    assert_eq!(bad(&|c| c.detector.window_points = 1), "window_points");
    assert_eq!("sideways".parse::<Direction>().map_err(|_| ()), Err(()));
}

/// ALERT episodes in a state sequence.
fn episodes(s: &[MonitorState]) -> usize {
    s.windows(2)
        .filter(|w| w[1] == MonitorState::Alert && w[0] != MonitorState::Alert)
        .count()
}

#[test]
fn an_excursion_that_ends_pages_once() {
    // A ×3 burst for an hour: robust takes it as a level after its 16 votes, and the
    // return to the old level must restore that level (not be a second shift and a
    // second page).
    let mut m = AnomalyMonitor::new(AnomalyMonitorConfig::new(Algorithm::Robust)).unwrap();
    let s = run(&mut m, 800, |i| {
        if (400..460).contains(&i) {
            3.0 * base(i)
        } else {
            base(i)
        }
    });
    assert_eq!(episodes(&s), 1, "{:?}", &s[400..520]);
    assert!(s[..400].iter().all(|&x| x == MonitorState::Ok));
    assert!(s[500..].iter().all(|&x| x == MonitorState::Ok));
}

#[test]
fn a_constant_start_does_not_freeze_the_band() {
    // Counts that start with 40 equal values, then vary 0..=3: the band must open up
    // to the variation (σ learned from the plain residuals at first, not clipped at a
    // multiple of a zero σ).
    for alg in [Algorithm::Agile, Algorithm::Robust] {
        let mut m = AnomalyMonitor::new(AnomalyMonitorConfig::new(alg)).unwrap();
        let v = |i: i64| if i < 40 { 1.0 } else { ((i * 7919) % 4) as f64 };
        let s = run(&mut m, 400, v);
        let e = m.update(Timestamp::from_secs(400 * MIN), 2.0).estimate;
        assert!(
            e.upper - e.lower > 1.0,
            "{alg}: band {} .. {}",
            e.lower,
            e.upper
        );
        assert!(s.iter().all(|&x| x == MonitorState::Ok), "{alg}");
    }
}

#[test]
fn a_weekday_at_weekend_level_alerts_once_weekly_seasonality_is_known() {
    // 10-minute points, 6 weeks: a daily cycle and weekends 60 lower (noise ±1.5).
    // In week 5 the Wednesday runs at weekend level. Weekly seasonality is detected
    // after 2.5 weeks; from then on weekends are normal and that Wednesday is not.
    let step = 600i64;
    let wed = 4 * 7 + 2; // day index of week 5's Wednesday (day 0 is a Monday)
    let mut st = 11u64;
    for alg in [Algorithm::Agile, Algorithm::Robust] {
        let mut m = AnomalyMonitor::new(AnomalyMonitorConfig::new(alg)).unwrap();
        let mut alert_days = std::collections::BTreeSet::new();
        let mut scored = 0;
        for i in 0..(6 * 7 * 86_400 / step) {
            let t = i * step;
            let day = t / 86_400;
            let hour = (t % 86_400) as f64 / 3_600.0;
            let daily = 30.0 * (hour / 24.0 * std::f64::consts::TAU).sin();
            let weekend = day % 7 >= 5 || day == wed;
            st = st
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let noise = ((st >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 3.0;
            let v = 200.0 + daily + if weekend { -60.0 } else { 0.0 } + noise;
            let e = m.update(Timestamp::from_secs(t), v);
            if e.state == MonitorState::Alert {
                alert_days.insert(day);
            }
            if day == wed && e.estimate.anomalous {
                scored += 1;
            }
        }
        assert_eq!(
            m.detector().seasonality(),
            meshmon_alert::Seasonality::Weekly,
            "{alg}"
        );
        assert!(alert_days.contains(&wed), "{alg}: {alert_days:?}");
        // Weekends after detection (weeks 4–6) are normal.
        let late_weekend = alert_days.iter().any(|&d| d >= 21 && d % 7 >= 5);
        assert!(!late_weekend, "{alg}: {alert_days:?}");
        // robust's score flags it too (not only the band): rare in the series' history.
        // agile's level follows the dip within 3 points, so its score stays low.
        if alg == Algorithm::Robust {
            assert!(scored >= 1, "{alg}");
        }
    }
}

#[test]
fn no_data_before_any_point_counts_from_the_first_tick() {
    let mut c = cfg(Algorithm::Basic, 5, 10);
    c.no_data_timeframe = Some(Duration::from_secs(600));
    let mut m = AnomalyMonitor::new(c).unwrap();
    assert_eq!(m.no_data(Timestamp::from_secs(1_000)), None);
    assert_eq!(m.no_data(Timestamp::from_secs(1_599)), None);
    let t = m.no_data(Timestamp::from_secs(1_600)).unwrap();
    assert_eq!(
        (t.from, t.to, t.window),
        (
            MonitorState::Ok,
            MonitorState::NoData,
            Duration::from_secs(600)
        )
    );
    // Without a timeframe there is never NO DATA.
    let mut m = AnomalyMonitor::new(cfg(Algorithm::Basic, 5, 10)).unwrap();
    assert_eq!(m.no_data(Timestamp::from_secs(1_000_000)), None);
}
