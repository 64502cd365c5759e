//! Debug: prints one generated series' points, band and state over a range.
//! `cargo run --release -p meshmon-alert --example trace_one -- SEED NAME ALG FROM TO`
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use meshmon_alert::Algorithm;
use meshmon_alert::anomaly::{AnomalyMonitor, AnomalyMonitorConfig};
use meshmon_alert::synth::{self, SynthConfig};

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let seed: u64 = a[0].parse().unwrap();
    let alg: Algorithm = a[2].parse().unwrap();
    let (from, to): (usize, usize) = (a[3].parse().unwrap(), a[4].parse().unwrap());
    let s = synth::generate(seed, &SynthConfig::default())
        .into_iter()
        .find(|s| s.name == a[1])
        .unwrap();
    let mut m = AnomalyMonitor::new(AnomalyMonitorConfig::new(alg)).unwrap();
    for (i, (&t, &v)) in s.timestamps.iter().zip(&s.values).enumerate() {
        let e = m.update(t, v);
        if (from..to).contains(&i) {
            println!(
                "{i} v={v:.4} exp={:.4} [{:.4},{:.4}] out={} an={} {:?}",
                e.estimate.expected,
                e.estimate.lower,
                e.estimate.upper,
                e.estimate.outside,
                e.anomalous,
                e.state
            );
        }
    }
}
