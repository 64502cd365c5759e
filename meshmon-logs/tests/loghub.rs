//! Accuracy on Loghub-2k (every dataset present under `../shared/data/loghub-2k`) with the
//! one default configuration, and the regex property: every message matches the regex of
//! the pattern it was assigned to.

use crate::common;

use std::collections::HashMap;

use meshmon_logs::eval::{grouping_accuracy, parsing_accuracy};
use meshmon_logs::pattern::{Miner, PatternId};

struct Row {
    name: String,
    ga_orig: f64,
    ga_corr: f64,
    pa_orig: f64,
    pa_corr: f64,
    patterns: usize,
}

fn mine(contents: &[String]) -> (Miner, Vec<PatternId>) {
    let mut m = Miner::default();
    let ids: Vec<_> = contents.iter().map(|c| m.add(c)).collect();
    let ids = ids.into_iter().map(|i| m.resolve(i)).collect();
    (m, ids)
}

/// The development split (issue 15): changes to the miner are developed on one half and
/// measured on the other, then the halves swap; both halves and the full mean are
/// reported. Half A was the development half of the generalisation work, half B its
/// held-out half.
pub const HALF_A: [&str; 5] = ["Android", "BGL", "HealthApp", "Spark", "Windows"];
/// The other half of the split.
pub const HALF_B: [&str; 5] = ["Apache", "HDFS", "OpenStack", "Thunderbird", "Zookeeper"];

/// Floors per half (mean GA, both ground truths), set to what each half reached with
/// the final configuration (a regression fails the test). Issue 15's first pass
/// developed on A and held out B (0.996); the swap developed on B and held out A, which
/// reached 0.972 (original labels) / 0.991 (corrected).
const HALF_A_MEAN_GA_FLOOR: f64 = 0.97;
const HALF_B_MEAN_GA_FLOOR: f64 = 0.99;
/// Every dataset's GA (the held-out half's lowest: Android 0.871, original labels).
const DATASET_GA_FLOOR: f64 = 0.87;
/// Mean PA against the corrected labels, each half: the held-out half A reached 0.802
/// after the swap (half B, developed on, 0.868).
const HALF_MEAN_PA_CORRECTED_FLOOR: f64 = 0.80;

#[test]
fn loghub_accuracy_and_regex_property() {
    let Some(sets) = common::datasets() else {
        return;
    };
    assert!(
        !sets.is_empty(),
        "formats.json present but no dataset readable"
    );
    let mut rows = Vec::new();
    for ds in &sets {
        // The parsing cache changes no result on real logs either.
        let hits = crate::miner::assert_cache_changes_nothing(&ds.contents);
        if std::env::var_os("LOGHUB_CACHE").is_some() {
            println!(
                "{}: {hits} cache hits of {} lines",
                ds.name,
                ds.contents.len()
            );
        }
        let (m, ids) = mine(&ds.contents);
        // Regex property: every absorbed message matches its pattern's regex.
        let mut regexes: HashMap<PatternId, regex::Regex> = HashMap::new();
        for (msg, id) in ds.contents.iter().zip(&ids) {
            let p = m.pattern(*id).unwrap();
            let re = regexes
                .entry(*id)
                .or_insert_with(|| regex::Regex::new(&p.regex()).unwrap());
            assert!(
                re.is_match(msg),
                "{}: {msg:?} does not match {}",
                ds.name,
                p.regex()
            );
        }
        let templates: Vec<String> = ids
            .iter()
            .map(|i| m.pattern(*i).unwrap().template())
            .collect();
        let t_orig: Vec<&str> = ds.original.iter().map(|t| t.1.as_str()).collect();
        let t_corr: Vec<&str> = ds.corrected.iter().map(|t| t.1.as_str()).collect();
        rows.push(Row {
            name: ds.name.clone(),
            ga_orig: grouping_accuracy(&t_orig, &ids),
            ga_corr: grouping_accuracy(&t_corr, &ids),
            pa_orig: parsing_accuracy(&t_orig, &templates),
            pa_corr: parsing_accuracy(&t_corr, &templates),
            patterns: m.len(),
        });
        if std::env::var_os("LOGHUB_DEBUG").is_some_and(|v| v == ds.name.as_str()) {
            debug(ds, &m, &ids);
        }
        if std::env::var_os("LOGHUB_PA").is_some_and(|v| v == ds.name.as_str() || v == "all") {
            pa_debug(ds, &templates);
        }
    }
    println!(
        "| half | dataset | GA (original) | GA (corrected) | PA (original) | PA (corrected) | patterns |"
    );
    println!("|---|---|---|---|---|---|---|");
    let half_of = |name: &str| {
        if HALF_A.contains(&name) {
            "A"
        } else if HALF_B.contains(&name) {
            "B"
        } else {
            "-"
        }
    };
    for half in ["A", "B", "-"] {
        let part: Vec<&Row> = rows.iter().filter(|r| half_of(&r.name) == half).collect();
        if part.is_empty() || !shown(half) {
            continue;
        }
        for r in &part {
            println!(
                "| {half} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {} |",
                r.name, r.ga_orig, r.ga_corr, r.pa_orig, r.pa_corr, r.patterns
            );
        }
        print_mean(&format!("mean {half}"), &part);
    }
    let all: Vec<&Row> = rows.iter().collect();
    if shown("all") {
        print_mean("mean (all)", &all);
    }
    // The floors hold against both ground truths, for each half and every dataset.
    for (which, ga) in [
        ("original", (|r: &Row| r.ga_orig) as fn(&Row) -> f64),
        ("corrected", |r: &Row| r.ga_corr),
    ] {
        for half in ["A", "B"] {
            let part: Vec<&Row> = rows.iter().filter(|r| half_of(&r.name) == half).collect();
            if part.is_empty() {
                continue;
            }
            let m = part.iter().map(|r| ga(r)).sum::<f64>() / part.len() as f64;
            let floor = if half == "A" {
                HALF_A_MEAN_GA_FLOOR
            } else {
                HALF_B_MEAN_GA_FLOOR
            };
            assert!(
                m >= floor,
                "half {half}: mean GA ({which}) {m:.3} below the {floor} floor"
            );
        }
        for r in &rows {
            assert!(
                ga(r) >= DATASET_GA_FLOOR,
                "{}: GA ({which}) {:.3} below the {DATASET_GA_FLOOR} floor",
                r.name,
                ga(r)
            );
        }
    }
    for half in ["A", "B"] {
        let part: Vec<&Row> = rows.iter().filter(|r| half_of(&r.name) == half).collect();
        if part.len() < 5 {
            continue;
        }
        let m = part.iter().map(|r| r.pa_corr).sum::<f64>() / part.len() as f64;
        assert!(
            m >= HALF_MEAN_PA_CORRECTED_FLOOR,
            "half {half}: mean PA (corrected) {m:.3} below the {HALF_MEAN_PA_CORRECTED_FLOOR} floor"
        );
    }
    if common::corpus_required() {
        assert_eq!(rows.len(), HALF_A.len() + HALF_B.len(), "datasets missing");
    }
}

/// Whether the table shows a half (`LOGHUB_SHOW=B` while developing on half B keeps the
/// held-out half's figures out of sight; unset shows everything). The floors are
/// asserted whatever is shown.
fn shown(half: &str) -> bool {
    std::env::var("LOGHUB_SHOW").map_or(true, |v| v == half)
}

fn print_mean(label: &str, rows: &[&Row]) {
    let n = rows.len() as f64;
    let mean = |f: fn(&Row) -> f64| rows.iter().map(|r| f(r)).sum::<f64>() / n;
    println!(
        "| | **{label}** | {:.3} | {:.3} | {:.3} | {:.3} | |",
        mean(|r| r.ga_orig),
        mean(|r| r.ga_corr),
        mean(|r| r.pa_orig),
        mean(|r| r.pa_corr)
    );
}

/// Prints the groups that disagree with the ground truth (set LOGHUB_DEBUG=<dataset>).
fn debug(ds: &common::Dataset, m: &Miner, ids: &[PatternId]) {
    let mut by_true: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, (_, t)) in ds.original.iter().enumerate() {
        by_true.entry(t.as_str()).or_default().push(i);
    }
    let mut by_pred: HashMap<PatternId, Vec<usize>> = HashMap::new();
    for (i, id) in ids.iter().enumerate() {
        by_pred.entry(*id).or_default().push(i);
    }
    let mut bad: Vec<_> = by_true
        .iter()
        .filter(|(_, lines)| by_pred[&ids[lines[0]]] != **lines)
        .collect();
    bad.sort_by_key(|(_, l)| std::cmp::Reverse(l.len()));
    for (t, lines) in bad.iter().take(40) {
        let preds: std::collections::BTreeSet<_> = lines.iter().map(|&l| ids[l]).collect();
        println!("TRUE ({}) {t}", lines.len());
        for p in preds.iter().take(4) {
            let pat = m.pattern(*p).unwrap();
            println!("   PRED {} ({}) {}", p, pat.count(), pat.template());
        }
    }
}

/// Prints the corrected templates whose lines got another template string, most lines
/// first, with what was predicted (set LOGHUB_PA=<dataset> or `all`).
fn pa_debug(ds: &common::Dataset, templates: &[String]) {
    let mut lost: HashMap<(&str, &str), usize> = HashMap::new();
    for ((_, t), p) in ds.corrected.iter().zip(templates) {
        if t.trim() != p.trim() {
            *lost.entry((t.as_str(), p.as_str())).or_default() += 1;
        }
    }
    let mut lost: Vec<_> = lost.into_iter().collect();
    lost.sort_by_key(|(k, n)| (std::cmp::Reverse(*n), *k));
    for ((t, p), n) in lost.iter().take(25) {
        println!("PA {} {n}\n  TRUE {t}\n  PRED {p}", ds.name);
    }
}
