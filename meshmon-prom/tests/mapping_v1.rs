//! The OpenMetrics V1 rules (`mapping::v1`), one test each, on small inputs. Each rule
//! is Datadog's `OpenMetricsScraperMixin` (datadog-checks-base
//! `checks/openmetrics/mixins.py`) or the istio check's V1 configuration; the fixtures
//! are checked as a whole against Datadog's code by `oracle_v1`.

use meshmon_core::Timestamp;
use meshmon_prom::MappingConfig;
use meshmon_prom::check::jobs_from_instance;
use meshmon_prom::mapping::v1::{V1Mapper, V1Options, istio_legacy_metrics, py_str_float};
use serde_json::json;

fn opts(metrics: &[(&str, &str)]) -> V1Options {
    let mut o = V1Options::default();
    o.metrics = metrics
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
    o
}

fn run(cfg: MappingConfig, v1: V1Options, body: &[u8]) -> Vec<String> {
    let mut m = V1Mapper::new(cfg, v1).unwrap();
    let mut out = Vec::new();
    m.map(body, Timestamp::EPOCH, &mut |x| {
        out.push(format!(
            "{} {} {} [{}]",
            x.metric.name,
            x.metric.value.type_name(),
            x.metric.value.as_f64().unwrap_or(f64::NAN),
            x.metric.tags
        ))
    })
    .unwrap();
    out
}

fn ns(n: &str) -> MappingConfig {
    let mut c = MappingConfig::default();
    c.namespace = n.into();
    c.tag_by_endpoint = false;
    c
}

#[test]
fn counters_keep_their_raw_name_and_are_monotonic_by_default() {
    let body = b"# TYPE istio_requests_total counter\nistio_requests_total{code=\"200\"} 5\n";
    let got = run(
        ns("istio"),
        opts(&[("istio_requests_total", "request.count")]),
        body,
    );
    assert_eq!(got, ["istio.request.count monotonic_count 5 [code:200]"]);
}

#[test]
fn counters_as_gauges_plus_total_with_send_monotonic_with_gauge() {
    let body = b"# TYPE c_total counter\nc_total 5\n";
    let mut o = opts(&[("c_total", "c")]);
    o.send_monotonic_counter = false;
    assert_eq!(run(ns("n"), o.clone(), body), ["n.c gauge 5 []"]);
    o.send_monotonic_with_gauge = true;
    let mut got = run(ns("n"), o, body);
    got.sort();
    assert_eq!(got, ["n.c gauge 5 []", "n.c.total monotonic_count 5 []"]);
}

#[test]
fn openmetrics_style_total_samples_under_a_counter_type_submit_nothing() {
    // V1's parser only takes samples named as the family: `x_total` is not `x`.
    let body = b"# TYPE x counter\nx_total 5\n";
    assert!(run(ns("n"), opts(&[("x", "x"), ("x_total", "x")]), body).is_empty());
}

#[test]
fn untyped_families_are_skipped() {
    assert!(run(ns("n"), opts(&[("u", "u")]), b"u 1\n").is_empty());
}

#[test]
fn histogram_buckets_are_count_gauges_tagged_with_python_float_bounds() {
    let body = b"# TYPE h histogram\n\
h_bucket{le=\"0\"} 1\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 3\nh_sum 4.5\nh_count 3\n";
    let mut o = opts(&[("h", "h")]);
    o.send_monotonic_counter = false;
    let got = run(ns("n"), o, body);
    assert_eq!(
        got,
        [
            "n.h.count gauge 1 [upper_bound:0.0]",
            "n.h.count gauge 2 [upper_bound:1.0]",
            "n.h.sum gauge 4.5 []",
            "n.h.count gauge 3 [upper_bound:none]",
        ]
    );
    let mut no_buckets = ns("n");
    no_buckets.collect_histogram_buckets = false;
    assert_eq!(
        run(no_buckets, opts(&[("h", "h")]), body),
        ["n.h.sum gauge 4.5 []", "n.h.count gauge 3 []"]
    );
}

#[test]
fn non_cumulative_buckets_keep_inf_and_add_lower_bound() {
    let body = b"# TYPE h histogram\n\
h_bucket{le=\"1\"} 2\nh_bucket{le=\"2\"} 5\nh_bucket{le=\"+Inf\"} 6\nh_sum 4\nh_count 6\n";
    let mut c = ns("n");
    c.non_cumulative_histogram_buckets = true;
    let got = run(c, opts(&[("h", "h")]), body);
    assert_eq!(
        got,
        [
            "n.h.count gauge 2 [lower_bound:0,upper_bound:1.0]",
            "n.h.count gauge 3 [lower_bound:1.0,upper_bound:2.0]",
            "n.h.count gauge 1 [lower_bound:2.0,upper_bound:inf]",
            "n.h.sum gauge 4 []",
            "n.h.count gauge 6 [upper_bound:none]",
        ]
    );
}

#[test]
fn distribution_buckets_replace_sum_and_count() {
    let body = b"# TYPE h histogram\n\
h_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 3\nh_sum 4\nh_count 3\n";
    // `send_distribution_buckets` alone: V1 turns non-cumulative on for it.
    let mut c = ns("n");
    c.histogram_buckets_as_distributions = true;
    // and V1's `le` → `upper_bound` wins over an instance mapping of `le`.
    c.rename_labels = vec![("le".into(), "bound".into())];
    let got = run(c, opts(&[("h", "h")]), body);
    assert_eq!(
        got,
        [
            "n.h histogram_bucket 2 [lower_bound:0.0,upper_bound:1.0]",
            "n.h histogram_bucket 1 [lower_bound:1.0,upper_bound:inf]",
        ]
    );
}

#[test]
fn summaries_quantile_text_and_sum_count() {
    let body =
        b"# TYPE s summary\ns{quantile=\"0.5\"} 1\ns{quantile=\"1\"} 2\ns_sum 3\ns_count 4\n";
    let got = run(ns("n"), opts(&[("s", "s")]), body);
    assert_eq!(
        got,
        [
            "n.s.quantile gauge 1 [quantile:0.5]",
            "n.s.quantile gauge 2 [quantile:1.0]",
            "n.s.sum gauge 3 []",
            "n.s.count gauge 4 []",
        ]
    );
}

#[test]
fn labels_excluded_renamed_and_non_finite_values_dropped() {
    let body = b"# TYPE g gauge\ng{a=\"1\",connectionID=\"9\",b=\"2\"} 1\ng{a=\"2\"} NaN\n";
    let mut c = ns("n");
    c.exclude_labels = vec!["connectionID".into()];
    c.rename_labels = vec![("b".into(), "bee".into())];
    c.tags = vec!["env:prod".into()];
    assert_eq!(
        run(c, opts(&[("g", "g")]), body),
        ["n.g gauge 1 [a:1,bee:2,env:prod]"]
    );
}

#[test]
fn label_to_hostname_sets_the_host() {
    let mut o = opts(&[("g", "g")]);
    o.label_to_hostname = Some("node".into());
    o.label_to_hostname_suffix = Some("-x".into());
    let mut m = V1Mapper::new(ns("n"), o).unwrap();
    let mut hosts = Vec::new();
    m.map(
        b"# TYPE g gauge\ng{node=\"n1\"} 1\ng 2\n",
        Timestamp::EPOCH,
        &mut |x| hosts.push(x.hostname),
    )
    .unwrap();
    assert_eq!(hosts, [Some("n1-x".to_owned()), None]);
}

#[test]
fn a_parse_error_submits_nothing() {
    let mut m = V1Mapper::new(ns("n"), opts(&[("g", "g")])).unwrap();
    let r = m.map(
        b"# TYPE g gauge\ng 1\ng{ 2\n",
        Timestamp::EPOCH,
        &mut |_| panic!("submitted"),
    );
    assert!(r.is_err());
}

#[test]
fn python_float_text() {
    assert_eq!(py_str_float(0.0), "0.0");
    assert_eq!(py_str_float(1.0), "1.0");
    assert_eq!(py_str_float(0.005), "0.005");
    assert_eq!(py_str_float(f64::INFINITY), "inf");
    assert_eq!(py_str_float(1e-5), "1e-05");
}

#[test]
fn the_legacy_galley_scraper_ignores_its_high_cardinality_metrics_and_the_instances() {
    let inst =
        json!({"galley_endpoint": "http://galley:15014/metrics", "ignore_metrics": ["go_mem*"]});
    let job = jobs_from_instance("istio", &inst).unwrap().jobs.remove(0);
    let body = b"# TYPE galley_mcp_source_request_acks_total counter\n\
galley_mcp_source_request_acks_total{collection=\"x\"} 3\n\
# TYPE go_memstats_heap_objects gauge\ngo_memstats_heap_objects 1\n\
# TYPE go_goroutines gauge\ngo_goroutines 7\n";
    // Even with the metric in the map, the ignore list wins.
    let mut v1 = job.v1.unwrap();
    v1.metrics
        .push(("galley_mcp_source_request_acks_total".into(), "acks".into()));
    let got = run(job.mapping, v1, body);
    assert_eq!(got, ["istio.galley.go.goroutines gauge 7 []"]);
    // The map has the generic Go metrics, not the ignored ones.
    let map = istio_legacy_metrics("galley_endpoint");
    assert!(map.iter().any(|(r, _)| r == "go_goroutines"));
    assert!(
        !map.iter()
            .any(|(r, _)| r == "galley_mcp_source_message_size_bytes")
    );
}
