//! NAB v1.1 evaluation: every detector over all 58 files with one configuration, the
//! three profiles, and the floor (standard ≥ 50 for the best detector).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Reads the NAB corpus and the MESHMON_REQUIRE_CORPUS switch: test I/O, not library code.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::path::PathBuf;

use meshmon_alert::nab::{self, ScoredFile, Series};
use meshmon_alert::{Algorithm, Detector, DetectorConfig};

fn nab_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/data/nab"
    ));
    if dir.join("labels/combined_windows.json").is_file() {
        Some(dir)
    } else if std::env::var_os("MESHMON_REQUIRE_CORPUS").is_some_and(|v| v == "1") {
        panic!(
            "NAB corpus absent at {} and MESHMON_REQUIRE_CORPUS=1",
            dir.display()
        );
    } else {
        eprintln!(
            "NAB corpus absent at {}; skipping the NAB evaluation (set MESHMON_REQUIRE_CORPUS=1 to fail instead)",
            dir.display()
        );
        None
    }
}

#[test]
fn nab_floor_and_profiles() {
    let Some(dir) = nab_dir() else { return };
    let windows =
        nab::parse_windows(&std::fs::read(dir.join("labels/combined_windows.json")).unwrap())
            .unwrap();
    let profiles =
        nab::parse_profiles(&std::fs::read(dir.join("config/profiles.json")).unwrap()).unwrap();
    assert_eq!(windows.len(), 58);
    assert_eq!(windows.values().map(Vec::len).sum::<usize>(), 116);
    assert_eq!(profiles.len(), 3);
    let data: Vec<(String, Series)> = windows
        .keys()
        .map(|name| {
            let s = nab::parse_series_csv(&std::fs::read(dir.join("data").join(name)).unwrap())
                .unwrap();
            nab::check_windows(name, &s.timestamps, &windows[name]).unwrap();
            (name.clone(), s)
        })
        .collect();
    assert_eq!(
        data.iter().map(|(_, s)| s.values.len()).sum::<usize>(),
        365_558
    );

    let mut best_standard = f64::MIN;
    for alg in [Algorithm::Basic, Algorithm::Agile, Algorithm::Robust] {
        let scores: Vec<Vec<f64>> = data
            .iter()
            .map(|(_, s)| {
                let mut d = Detector::new(DetectorConfig::new(alg)).unwrap();
                s.timestamps
                    .iter()
                    .zip(&s.values)
                    .map(|(&t, &v)| d.update(t, v).score)
                    .collect()
            })
            .collect();
        for sc in &scores {
            assert!(sc.iter().all(|x| (0.0..=1.0).contains(x)));
        }
        let files: Vec<ScoredFile<'_>> = data
            .iter()
            .zip(&scores)
            .map(|((n, s), sc)| ScoredFile {
                name: n,
                timestamps: &s.timestamps,
                scores: sc,
                windows: &windows[n],
            })
            .collect();
        for p in &profiles {
            let r = nab::optimize(&files, p, nab::PROBATION_PERCENT);
            println!(
                "NAB {alg:<6} {:<20} {:6.2} (threshold {:.4}, windows {}/{}, fp rows {})",
                p.name, r.normalized, r.threshold, r.windows_detected, r.windows, r.fp
            );
            assert!(r.normalized > 0.0 && r.normalized <= 100.0);
            if p.name == "standard" {
                best_standard = best_standard.max(r.normalized);
            }
        }
    }
    assert!(
        best_standard >= 50.0,
        "best standard-profile NAB score {best_standard:.2} < 50"
    );
}
