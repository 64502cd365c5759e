//! ALERT-episode precision / recall of the default anomaly monitor on the seeded
//! mesh-shaped generator ([`meshmon_alert::synth`]).
//!
//! `cargo run --release -p meshmon-alert --example episodes -- SEED_FROM SEED_TO [ALGORITHM…] [-v]`
// A developer tool: reads files and the environment.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::time::Duration;

use meshmon_alert::anomaly::{AnomalyMonitor, AnomalyMonitorConfig};
use meshmon_alert::synth::{self, EpisodeScore, SynthConfig};
use meshmon_alert::{Algorithm, MonitorState};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let from: u64 = args.first().map_or(1, |s| s.parse().unwrap());
    let to: u64 = args.get(1).map_or(5, |s| s.parse().unwrap());
    let verbose = args.iter().any(|a| a == "-v");
    let mut algs: Vec<Algorithm> = args
        .iter()
        .skip(2)
        .filter(|a| *a != "-v")
        .map(|a| a.parse().unwrap())
        .collect();
    if algs.is_empty() {
        algs = vec![Algorithm::Basic, Algorithm::Agile, Algorithm::Robust];
    }
    println!("algorithm,seeds,series,incidents,detected,episodes,true_episodes,precision,recall");
    for alg in algs {
        let mut cfg = AnomalyMonitorConfig::new(alg);
        // Overrides for exploring (tuning seeds only): TW / RW minutes, CRIT fraction.
        let env = |k: &str| std::env::var(k).ok().map(|v| v.parse::<f64>().unwrap());
        if let Some(v) = env("TW") {
            cfg.trigger_window = Duration::from_secs_f64(v * 60.0);
        }
        if let Some(v) = env("RW") {
            cfg.recovery_window = Duration::from_secs_f64(v * 60.0);
        }
        if let Some(v) = env("CRIT") {
            cfg.critical = v;
        }
        if let Some(v) = env("BOUNDS") {
            cfg.detector.bounds = v;
        }
        let grace = cfg.recovery_window + Duration::from_secs(30 * 60);
        let mut total = EpisodeScore::default();
        let mut by_kind: BTreeMap<String, EpisodeScore> = BTreeMap::new();
        let mut series = 0;
        for seed in from..=to {
            for s in synth::generate(seed, &SynthConfig::default()) {
                series += 1;
                let mut m = AnomalyMonitor::new(cfg.clone()).unwrap();
                let states: Vec<MonitorState> = s
                    .timestamps
                    .iter()
                    .zip(&s.values)
                    .map(|(&t, &v)| m.update(t, v).state)
                    .collect();
                let sc = synth::score_episodes(&s, &states, grace);
                if verbose && (sc.true_episodes < sc.episodes || sc.detected < sc.incidents) {
                    let t0 = s.timestamps[0].as_secs();
                    let mut eps = Vec::new();
                    let mut open = None;
                    for (t, st) in s.timestamps.iter().zip(&states) {
                        let min = (t.as_secs() - t0) / 60;
                        match (open, *st == MonitorState::Alert) {
                            (None, true) => open = Some(min),
                            (Some(a), false) => {
                                eps.push((a, min));
                                open = None;
                            }
                            _ => {}
                        }
                    }
                    let inc: Vec<_> = s
                        .incidents
                        .iter()
                        .map(|(a, b)| ((a.as_secs() - t0) / 60, (b.as_secs() - t0) / 60))
                        .collect();
                    let dep: Vec<_> = s.deploys.iter().map(|a| (a.as_secs() - t0) / 60).collect();
                    println!(
                        "  seed {seed} {}: episodes {eps:?} incidents {inc:?} deploys {dep:?} season {:?}",
                        s.name,
                        m.detector().seasonality()
                    );
                }
                let kind = s.name.split('-').next().unwrap_or("").to_string();
                by_kind.entry(kind).or_default().add(sc);
                total.add(sc);
            }
        }
        for (k, sc) in &by_kind {
            println!(
                "{alg}/{k},{from}-{to},,{},{},{},{},{:.3},{:.3}",
                sc.incidents,
                sc.detected,
                sc.episodes,
                sc.true_episodes,
                sc.precision(),
                sc.recall()
            );
        }
        println!(
            "{alg},{from}-{to},{series},{},{},{},{},{:.3},{:.3}",
            total.incidents,
            total.detected,
            total.episodes,
            total.true_episodes,
            total.precision(),
            total.recall()
        );
    }
}
