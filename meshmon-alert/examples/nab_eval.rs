//! Scores a detector configuration on the NAB corpus (all three profiles).
//!
//! `cargo run --release -p meshmon-alert --example nab_eval -- [basic|agile|robust] [CONFIG_JSON]`
//! (`SUBSET=even` or `odd`: every other file only, to choose on one half and check on
//! the other).
// A developer tool: reads files and the environment.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::needless_range_loop,
    missing_docs
)]

use meshmon_alert::nab::{self, ScoredFile};
use meshmon_alert::{Algorithm, Detector, DetectorConfig};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let alg: Algorithm = args.get(1).map_or("agile", |s| s.as_str()).parse().unwrap();
    let mut cfg = DetectorConfig::new(alg);
    if let Some(j) = args.get(2) {
        let mut v = serde_json::to_value(&cfg).unwrap();
        let patch: serde_json::Value = serde_json::from_str(j).unwrap();
        for (k, x) in patch.as_object().unwrap() {
            v[k] = x.clone();
        }
        cfg = serde_json::from_value(v).unwrap();
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/nab");
    let windows =
        nab::parse_windows(&std::fs::read(root.join("labels/combined_windows.json")).unwrap())
            .unwrap();
    let profiles =
        nab::parse_profiles(&std::fs::read(root.join("config/profiles.json")).unwrap()).unwrap();
    let mut data = Vec::new();
    // SUBSET=even|odd keeps every other file (in name order): choose on one half,
    // check on the other.
    let subset = std::env::var("SUBSET").ok();
    for (k, (name, w)) in windows.iter().enumerate() {
        match subset.as_deref() {
            Some("even") if k % 2 == 1 => continue,
            Some("odd") if k % 2 == 0 => continue,
            _ => {}
        }
        let s =
            nab::parse_series_csv(&std::fs::read(root.join("data").join(name)).unwrap()).unwrap();
        let mut d = Detector::new(cfg.clone()).unwrap();
        let mut st = 42u64;
        let scores: Vec<f64> = if std::env::var_os("RANDOM").is_some() {
            s.values
                .iter()
                .map(|_| {
                    st = st
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (st >> 11) as f64 / (1u64 << 53) as f64
                })
                .collect()
        } else {
            s.timestamps
                .iter()
                .zip(&s.values)
                .map(|(&t, &v)| d.update(t, v).score)
                .collect()
        };
        if std::env::var_os("VERBOSE").is_some() {
            eprintln!(
                "{name}: seasonality {:?} episodes {}",
                d.seasonality(),
                d.stats().episodes
            );
        }
        data.push((name.clone(), s, scores, w.clone()));
    }
    let files: Vec<ScoredFile<'_>> = data
        .iter()
        .map(|(n, s, sc, w)| ScoredFile {
            name: n,
            timestamps: &s.timestamps,
            scores: sc,
            windows: w,
        })
        .collect();
    if std::env::var_os("DIAG").is_some() {
        for f in &files {
            let n = f.timestamps.len();
            let prob = ((0.15 * n as f64).floor()).min(750.0) as usize;
            let mut inw = vec![false; n];
            let mut wmax = Vec::new();
            for &(a, b) in f.windows {
                let l = f.timestamps.partition_point(|&t| t < a);
                let r = f.timestamps.partition_point(|&t| t <= b);
                let mut m: f64 = 0.0;
                let mut at = 0;
                for i in l.max(prob)..r {
                    inw[i] = true;
                    if f.scores[i] > m {
                        m = f.scores[i];
                        at = i - l;
                    }
                }
                wmax.push(format!("{m:.3}@{at}/{}", r - l));
            }
            let mut out: Vec<f64> = (prob..n)
                .filter(|&i| !inw[i])
                .map(|i| f.scores[i])
                .collect();
            out.sort_by(|a, b| b.total_cmp(a));
            println!(
                "{:<55} win {:?} out top {:?}",
                f.name,
                wmax,
                &out[..out.len().min(4)]
                    .iter()
                    .map(|x| format!("{x:.3}"))
                    .collect::<Vec<_>>()
            );
        }
    }
    for p in &profiles {
        let r = nab::optimize(&files, p, nab::PROBATION_PERCENT);
        println!(
            "{alg} {:<20} {:6.2}  thr {:.4} tp {} fp {} windows {}/{}",
            p.name, r.normalized, r.threshold, r.tp, r.fp, r.windows_detected, r.windows
        );
    }
}
