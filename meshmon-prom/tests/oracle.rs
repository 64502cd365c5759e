//! The mapping compared with Datadog's own check (`datadog-checks-base==38.5.0`) on the
//! Istio 1.5 fixtures. The expected submissions in `testdata/oracle/*.jsonl` were written
//! by `scripts/prom-oracle/oracle.py` (see its docstring for the regenerating command);
//! the cases and their instance options are in `testdata/oracle/cases.json`.

use std::collections::BTreeMap;
use std::path::Path;

use meshmon_core::test_util::corpus;

use meshmon_core::{MetricValue, Timestamp};
use meshmon_prom::mapping::glob_to_regex;
use meshmon_prom::{Format, Mapper, MappingConfig};
use serde_json::Value;

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

/// The case's instance options (v2 names, and the v1 aliases the cases use) applied to
/// the preset.
fn config(case: &Value) -> MappingConfig {
    let mut c = MappingConfig::preset(case["preset"].as_str().unwrap()).unwrap();
    let o = &case["options"];
    for (k, v) in o.as_object().unwrap() {
        match k.as_str() {
            "tag_by_endpoint" => c.tag_by_endpoint = v.as_bool().unwrap(),
            "non_cumulative_histogram_buckets" => {
                c.non_cumulative_histogram_buckets = v.as_bool().unwrap()
            }
            "histogram_buckets_as_distributions" => {
                c.histogram_buckets_as_distributions = v.as_bool().unwrap()
            }
            "collect_counters_with_distributions" => {
                c.collect_counters_with_distributions = v.as_bool().unwrap()
            }
            "collect_histogram_buckets" | "send_histograms_buckets" => {
                c.collect_histogram_buckets = v.as_bool().unwrap()
            }
            "exclude_labels" => c.exclude_labels = strings(v),
            "include_labels" => c.include_labels = strings(v),
            "exclude_metrics" => c.exclude_metrics = strings(v),
            "ignore_metrics" => {
                c.exclude_metrics = strings(v).iter().map(|g| glob_to_regex(g)).collect()
            }
            "tags" => c.tags = strings(v),
            "rename_labels" | "labels_mapper" => {
                c.rename_labels = v
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(a, b)| (a.clone(), b.as_str().unwrap().to_owned()))
                    .collect();
            }
            other => panic!("option {other} not handled by the test"),
        }
    }
    c
}

#[derive(Debug, PartialEq, PartialOrd, Clone)]
struct Row {
    name: String,
    kind: String,
    tags: Vec<String>,
    value: f64,
    bounds: Option<(f64, f64, bool)>,
}

fn f(v: &Value) -> f64 {
    match v {
        Value::String(s) => s.parse().unwrap(),
        v => v.as_f64().unwrap(),
    }
}

fn expected(path: &Path) -> Vec<Row> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let kind = v["type"].as_str().unwrap().to_owned();
            let bounds = (kind == "histogram_bucket").then(|| {
                (
                    f(&v["lower_bound"]),
                    f(&v["upper_bound"]),
                    v["monotonic"].as_bool().unwrap(),
                )
            });
            let mut tags = strings(&v["tags"]);
            tags.sort();
            tags.dedup();
            Row {
                name: v["name"].as_str().unwrap().to_owned(),
                kind,
                tags,
                value: f(&v["value"]),
                bounds,
            }
        })
        .collect()
}

fn key(r: &Row) -> String {
    format!(
        "{} {} {:?} {:?}",
        r.name,
        r.kind,
        r.tags,
        r.bounds.map(|b| (b.0.to_bits(), b.1.to_bits()))
    )
}

#[test]
fn mapping_matches_datadog_check() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/oracle");
    let Some(data) = corpus(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/data/istio-fixtures"
        ),
        "Datadog oracle comparison",
    ) else {
        return;
    };
    let cases: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap();
    let mut report = Vec::new();
    for case in cases.as_array().unwrap() {
        let id = case["id"].as_str().unwrap();
        let body = std::fs::read(data.join(case["fixture"].as_str().unwrap())).unwrap();
        let mut mapper = Mapper::new(config(case)).unwrap();
        let format =
            Format::from_content_type(case["content_type"].as_str().unwrap_or("text/plain"));
        let mut got = Vec::new();
        mapper
            .map(&body, format, Timestamp::EPOCH, &mut |m| {
                let (value, bounds) = match m.value {
                    MetricValue::HistogramBucket {
                        count,
                        lower_bound,
                        upper_bound,
                        monotonic,
                    } => (count as f64, Some((lower_bound, upper_bound, monotonic))),
                    ref v => (v.as_f64().unwrap(), None),
                };
                got.push(Row {
                    name: m.name.to_string(),
                    kind: m.value.type_name().to_owned(),
                    tags: m.tags.iter().map(|t| t.to_string()).collect(),
                    value,
                    bounds,
                });
            })
            .unwrap();
        let want = expected(&dir.join(format!("{id}.jsonl")));
        // Served as text, an OpenMetrics-style scrape (`# TYPE x counter` + `x_total`)
        // maps to nothing in Datadog's check: its samples are untyped there.
        let expect_empty = case["expect_empty"].as_bool().unwrap_or(false);
        assert_eq!(want.is_empty(), expect_empty, "{id}: oracle submissions");
        // Compare as multisets keyed by (name, type, tags, bounds).
        let mut w: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for r in &want {
            w.entry(key(r)).or_default().push(r.value);
        }
        let mut g: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for r in &got {
            g.entry(key(r)).or_default().push(r.value);
        }
        for v in w.values_mut().chain(g.values_mut()) {
            v.sort_by(f64::total_cmp);
        }
        // serde_json's default float parsing may be 1 ulp off: compare to 1e-12 relative.
        let same = |a: &Vec<f64>, b: Option<&Vec<f64>>| {
            b.is_some_and(|b| {
                a.len() == b.len()
                    && a.iter()
                        .zip(b)
                        .all(|(x, y)| (x - y).abs() <= 1e-12 * x.abs().max(y.abs()))
            })
        };
        let missing: Vec<_> = w
            .iter()
            .filter(|(k, v)| !same(v, g.get(*k)))
            .map(|(k, v)| format!("  want {k} = {v:?} got {:?}", g.get(k)))
            .collect();
        let extra: Vec<_> = g
            .keys()
            .filter(|k| !w.contains_key(*k))
            .map(|k| format!("  extra {k}"))
            .collect();
        if !missing.is_empty() || !extra.is_empty() {
            report.push(format!(
                "{id}: {} differ, {} extra\n{}\n{}",
                missing.len(),
                extra.len(),
                missing
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n"),
                extra.iter().take(5).cloned().collect::<Vec<_>>().join("\n")
            ));
        }
        assert_eq!(
            got.len(),
            want.len(),
            "{id}: number of submissions\n{}",
            report.join("\n")
        );
    }
    assert!(report.is_empty(), "{}", report.join("\n"));
}
