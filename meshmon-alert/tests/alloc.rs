//! The per-point hot path allocates nothing once a detector is warm (counting global
//! allocator). Allocation happens only while the series is new: the sorted window, the
//! seasonal profile and the bounded seasonality history (freed when detection ends).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use meshmon_alert::{Algorithm, Detector, DetectorConfig, Seasonality};
use meshmon_core::Timestamp;

use meshmon_core::test_util::{CountingAllocator, thread_allocations};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn value(i: i64) -> f64 {
    let t = i as f64 * 600.0;
    let spike = if i % 997 == 0 { 500.0 } else { 0.0 };
    let shift = if i > 4_000 { 80.0 } else { 0.0 };
    100.0
        + 20.0 * (t / 86_400.0 * std::f64::consts::TAU).sin()
        + ((i * 7919) % 13) as f64
        + spike
        + shift
}

#[test]
fn warm_detectors_do_not_allocate() {
    for alg in [Algorithm::Basic, Algorithm::Agile, Algorithm::Robust] {
        for seasonality in [Seasonality::Auto, Seasonality::Daily, Seasonality::None] {
            let mut d =
                Detector::new(DetectorConfig::new(alg).with_seasonality(seasonality)).unwrap();
            // 4 weeks of 10-minute points: detection (if any) is over.
            let warm = 4 * 7 * 144;
            for i in 0..warm {
                d.update(Timestamp::from_secs(i * 600), value(i));
            }
            let before = thread_allocations();
            let mut anomalies = 0;
            for i in warm..warm + 5_000 {
                anomalies +=
                    usize::from(d.update(Timestamp::from_secs(i * 600), value(i)).anomalous);
                // Non-finite and out-of-order points too.
                d.update(Timestamp::from_secs(i * 600), f64::NAN);
            }
            d.update(Timestamp::from_secs(0), 1.0);
            let allocs = thread_allocations() - before;
            assert_eq!(
                allocs, 0,
                "{alg} {seasonality:?}: {allocs} allocations in 10k updates"
            );
            assert!(
                anomalies > 0,
                "{alg} {seasonality:?}: the spikes were not seen"
            );
        }
    }
}
