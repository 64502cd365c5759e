//! Accuracy on Loghub-2k (every dataset present under `../shared/data/loghub-2k`) with the
//! one default configuration, and the regex property: every message matches the regex of
//! the pattern it was assigned to.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

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
    }
    println!(
        "| dataset | GA (original) | GA (corrected) | PA (original) | PA (corrected) | patterns |"
    );
    println!("|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {:.3} | {:.3} | {:.3} | {:.3} | {} |",
            r.name, r.ga_orig, r.ga_corr, r.pa_orig, r.pa_corr, r.patterns
        );
    }
    let n = rows.len() as f64;
    let mean = |f: fn(&Row) -> f64| rows.iter().map(f).sum::<f64>() / n;
    println!(
        "| **mean** | {:.3} | {:.3} | {:.3} | {:.3} | |",
        mean(|r| r.ga_orig),
        mean(|r| r.ga_corr),
        mean(|r| r.pa_orig),
        mean(|r| r.pa_corr)
    );
    // The floors hold against both ground truths.
    for (which, ga) in [
        ("original", (|r: &Row| r.ga_orig) as fn(&Row) -> f64),
        ("corrected", |r: &Row| r.ga_corr),
    ] {
        let ga_mean = mean(ga);
        assert!(
            ga_mean >= 0.93,
            "mean GA ({which}) {ga_mean:.3} below the 0.93 floor"
        );
        for r in &rows {
            assert!(
                ga(r) >= 0.80,
                "{}: GA ({which}) {:.3} below the 0.80 floor",
                r.name,
                ga(r)
            );
        }
    }
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
