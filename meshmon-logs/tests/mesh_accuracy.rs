//! Accuracy on the seeded mesh corpus ([`crate::mesh`]) through the pipeline an agent
//! runs (line parser with auto-detection, multi-line aggregation for the stack-trace
//! sources, [`PatternSet::observe`]), and the Envoy access-log properties: each pattern
//! keeps the method, the response code and the flags as constants, and every pattern's
//! regex matches the text of all its members.

use std::collections::{BTreeMap, HashMap};

use meshmon_core::Timestamp;
use meshmon_logs::LogRecord;
use meshmon_logs::eval::{grouping_accuracy, parsing_accuracy};
use meshmon_logs::format::{Format, LineParser};
use meshmon_logs::multiline::{Continuation, MultiLine, MultiLineConfig};
use meshmon_logs::pattern::{PatternId, PatternSet, Slot};

use crate::mesh::{Labelled, corpus};

/// Seeds: the development seed and a held-out seed never looked at while developing.
const DEV_SEED: u64 = 0x000;
const HELD_OUT_SEED: u64 = 0x5eed_0015;

struct Run {
    labels: Vec<Labelled>,
    records: Vec<LogRecord>,
    ids: Vec<PatternId>,
    set: PatternSet,
}

fn run(seed: u64, n: usize) -> Run {
    let labels = corpus(seed, n);
    let mut set = PatternSet::default();
    let mut parser = LineParser::new(Format::Auto);
    let mut raw = LineParser::new(Format::Raw);
    let start = regex::Regex::new(r"^\d{4}-\d{2}-\d{2} ").unwrap();
    let mut ml = MultiLine::new(
        Continuation::StartPattern(start),
        MultiLineConfig::default(),
    )
    .unwrap();
    let mut records: Vec<Option<LogRecord>> = (0..labels.len()).map(|_| None).collect();
    let mut pending: Option<usize> = None;
    let t = Timestamp::from_secs(0);
    for (i, l) in labels.iter().enumerate() {
        if l.family.starts_with("trace-") {
            for line in &l.lines {
                let rec = raw.parse(line.as_bytes()).unwrap();
                if let Some(done) = ml.push(rec, t) {
                    records[pending.take().unwrap()] = Some(done);
                }
            }
            pending = Some(i);
        } else {
            assert_eq!(l.lines.len(), 1);
            records[i] = parser.parse(l.lines[0].as_bytes());
        }
    }
    if let (Some(p), Some(done)) = (pending, ml.flush()) {
        records[p] = Some(done);
    }
    let records: Vec<LogRecord> = records.into_iter().map(|r| r.unwrap()).collect();
    assert_eq!(
        parser.errors, 0,
        "every generated line parses in its format"
    );
    let ids: Vec<PatternId> = records.iter().map(|r| set.observe(r)).collect();
    let ids = ids.into_iter().map(|i| set.resolve(i)).collect();
    Run {
        labels,
        records,
        ids,
        set,
    }
}

fn norm(s: &str) -> String {
    s.split_ascii_whitespace().collect::<Vec<_>>().join(" ")
}

/// `(family, lines, GA, PA, true templates, patterns)` per family, then overall.
fn table(r: &Run) -> Vec<(String, usize, f64, f64, usize, usize)> {
    let mut fams: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, l) in r.labels.iter().enumerate() {
        fams.entry(l.family).or_default().push(i);
    }
    fams.insert("all", (0..r.labels.len()).collect());
    fams.into_iter()
        .map(|(f, idx)| {
            let truth: Vec<&str> = idx.iter().map(|&i| r.labels[i].template.as_str()).collect();
            let pred: Vec<PatternId> = idx.iter().map(|&i| r.ids[i]).collect();
            let tn: Vec<String> = truth.iter().map(|t| norm(t)).collect();
            let pn: Vec<String> = pred
                .iter()
                .map(|p| norm(&r.set.pattern(*p).map(|p| p.template()).unwrap_or_default()))
                .collect();
            let distinct_t: std::collections::HashSet<&&str> = truth.iter().collect();
            let distinct_p: std::collections::HashSet<&PatternId> = pred.iter().collect();
            (
                f.to_owned(),
                idx.len(),
                grouping_accuracy(&truth, &pred),
                parsing_accuracy(&tn, &pn),
                distinct_t.len(),
                distinct_p.len(),
            )
        })
        .collect()
}

fn print(seed: u64, rows: &[(String, usize, f64, f64, usize, usize)]) {
    println!("mesh corpus seed {seed:#x}");
    println!("| family | logs | GA | PA | true templates | patterns |");
    println!("|---|---|---|---|---|---|");
    for (f, n, ga, pa, t, p) in rows {
        println!("| {f} | {n} | {ga:.3} | {pa:.3} | {t} | {p} |");
    }
}

fn debug(r: &Run, family: &str) {
    let mut by_true: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, l) in r
        .labels
        .iter()
        .enumerate()
        .filter(|(_, l)| l.family == family)
    {
        by_true.entry(l.template.as_str()).or_default().push(i);
    }
    for (t, lines) in by_true.iter().take(60) {
        let preds: std::collections::BTreeSet<_> = lines.iter().map(|&l| r.ids[l]).collect();
        let tpls: Vec<String> = preds
            .iter()
            .map(|p| r.set.pattern(*p).unwrap().template())
            .collect();
        if tpls.len() != 1 || norm(&tpls[0]) != norm(t) {
            println!("TRUE ({}) {t}\n   PRED {tpls:?}", lines.len());
        }
    }
}

#[test]
fn mesh_corpus_accuracy() {
    for seed in [DEV_SEED, HELD_OUT_SEED] {
        let r = run(seed, 6000);
        let rows = table(&r);
        print(seed, &rows);
        if let Some(f) = std::env::var_os("MESH_DEBUG") {
            debug(&r, f.to_str().unwrap());
        }
        let get = |f: &str| rows.iter().find(|x| x.0 == f).unwrap();
        let envoy = get("envoy");
        assert!(envoy.2 >= 0.99, "seed {seed:#x}: Envoy GA {:.3}", envoy.2);
        assert!(envoy.3 >= 0.95, "seed {seed:#x}: Envoy PA {:.3}", envoy.3);
        let all = get("all");
        assert!(
            all.2 >= MESH_GA_FLOOR,
            "seed {seed:#x}: mesh GA {:.3}",
            all.2
        );
        assert!(
            all.3 >= MESH_PA_FLOOR,
            "seed {seed:#x}: mesh PA {:.3}",
            all.3
        );
    }
}

/// Floor set to what the held-out seed reached.
const MESH_GA_FLOOR: f64 = 0.99;
/// PA floor: the held-out seed reached 0.894, the development seed 0.884.
const MESH_PA_FLOOR: f64 = 0.88;

#[test]
fn envoy_patterns_keep_method_code_and_flags_and_match_members() {
    let r = run(HELD_OUT_SEED, 3000);
    let mut members: HashMap<PatternId, Vec<usize>> = HashMap::new();
    for (i, l) in r.labels.iter().enumerate() {
        if l.family == "envoy" {
            members.entry(r.ids[i]).or_default().push(i);
        }
    }
    assert!(members.len() > 20, "a realistic number of Envoy patterns");
    for (id, idx) in &members {
        let p = r.set.pattern(*id).unwrap();
        let fixed: Vec<&str> = p
            .positions()
            .iter()
            .filter_map(|pos| match &pos.slot {
                Slot::Fixed { text } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        let re = regex::Regex::new(&p.regex()).unwrap();
        for &i in idx {
            let rec = &r.records[i];
            let method = rec.attribute_str("http.method").unwrap();
            let code = rec.attribute_str("http.status_code").unwrap();
            let flags = rec
                .attribute_str("envoy.response_flags")
                .unwrap_or_else(|| "-".to_owned());
            assert_eq!(fixed.first(), Some(&method.as_str()), "{}", p.template());
            assert!(
                fixed.contains(&code.as_str()),
                "{} lacks {code}",
                p.template()
            );
            assert!(
                fixed.contains(&flags.as_str()),
                "{} lacks {flags}",
                p.template()
            );
            let text = PatternSet::mined_text(rec);
            assert!(re.is_match(&text), "{text:?} !~ {}", p.regex());
        }
    }
}
