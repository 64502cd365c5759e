//! The per-point hot path allocates nothing once a detector is warm (counting global
//! allocator). Allocation happens only while the series is new: the sorted window, the
//! seasonal profile and the bounded seasonality history (freed when detection ends).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use meshmon_alert::{Algorithm, Detector, DetectorConfig, Seasonality};
use meshmon_core::Timestamp;

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator, only counting calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: caller's contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: caller's contract.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: caller's contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

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
            let mut d = Detector::new(DetectorConfig {
                seasonality,
                ..DetectorConfig::new(alg)
            });
            // 4 weeks of 10-minute points: detection (if any) is over.
            let warm = 4 * 7 * 144;
            for i in 0..warm {
                d.update(Timestamp::from_secs(i * 600), value(i));
            }
            let before = ALLOCS.load(Ordering::Relaxed);
            let mut anomalies = 0;
            for i in warm..warm + 5_000 {
                anomalies +=
                    usize::from(d.update(Timestamp::from_secs(i * 600), value(i)).anomalous);
                // Non-finite and out-of-order points too.
                d.update(Timestamp::from_secs(i * 600), f64::NAN);
            }
            d.update(Timestamp::from_secs(0), 1.0);
            let allocs = ALLOCS.load(Ordering::Relaxed) - before;
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
