//! Mapping semantics (Datadog OpenMetrics v2), one behaviour per test.

use meshmon_core::{Metric, MetricValue, Timestamp};
use meshmon_prom::mapping::{MetricSpec, SubmitType};
use meshmon_prom::{Format, Mapper, MappingConfig};

fn run(cfg: MappingConfig, body: &str) -> Vec<String> {
    let mut mapper = Mapper::new(cfg).unwrap();
    let mut out: Vec<Metric> = Vec::new();
    mapper
        .map(
            body.as_bytes(),
            Format::PrometheusText,
            Timestamp::EPOCH,
            &mut |m| out.push(m),
        )
        .unwrap();
    out.iter()
        .map(|m| {
            let v = match &m.value {
                MetricValue::HistogramBucket {
                    count,
                    lower_bound,
                    upper_bound,
                    monotonic,
                } => {
                    format!("bucket({count},{lower_bound},{upper_bound},{monotonic})")
                }
                v => format!("{}", v.as_f64().unwrap()),
            };
            format!("{} {} {} [{}]", m.name, m.value.type_name(), v, m.tags)
        })
        .collect()
}

fn cfg(metrics: &[(&str, &str)]) -> MappingConfig {
    let mut c = MappingConfig::default();
    c.namespace = "ns".into();
    c.metrics = metrics
        .iter()
        .map(|(r, n)| MetricSpec::renamed(r, n))
        .collect();
    c
}

const HIST: &str = "# TYPE lat histogram\n\
lat_bucket{svc=\"a\",le=\"0.005\"} 1\n\
lat_bucket{svc=\"a\",le=\"1\"} 3\n\
lat_bucket{svc=\"a\",le=\"1e+06\"} 6\n\
lat_bucket{svc=\"a\",le=\"+Inf\"} 7\n\
lat_sum{svc=\"a\"} 12.5\n\
lat_count{svc=\"a\"} 7\n";

#[test]
fn counters_gauges_and_nonfinite() {
    let body = "# TYPE req_total counter\nreq_total{code=\"200\"} 5\nreq_total{code=\"500\"} NaN\n# TYPE up gauge\nup 1\nup{x=\"y\"} +Inf\n# TYPE other gauge\nother 3\n";
    assert_eq!(
        run(cfg(&[("req", "requests"), ("up", "up")]), body),
        [
            "ns.requests.count monotonic_count 5 [code:200]",
            "ns.up gauge 1 []"
        ]
    );
}

#[test]
fn histogram_default_upper_bound_tags() {
    assert_eq!(
        run(cfg(&[("lat", "latency")]), HIST),
        [
            "ns.latency.bucket monotonic_count 1 [svc:a,upper_bound:0.005]",
            "ns.latency.bucket monotonic_count 3 [svc:a,upper_bound:1.0]",
            "ns.latency.bucket monotonic_count 6 [svc:a,upper_bound:1000000.0]",
            "ns.latency.sum monotonic_count 12.5 [svc:a]",
            "ns.latency.count monotonic_count 7 [svc:a]",
        ]
    );
}

#[test]
fn histogram_non_cumulative_with_lower_bounds() {
    let mut c = cfg(&[("lat", "latency")]);
    c.non_cumulative_histogram_buckets = true;
    // buckets given out of order still decumulate by numeric bound
    let body = "# TYPE lat histogram\nlat_bucket{le=\"1\"} 3\nlat_bucket{le=\"0.005\"} 1\nlat_bucket{le=\"+Inf\"} 7\nlat_bucket{le=\"-1\",x=\"neg\"} 2\nlat_bucket{le=\"+Inf\",x=\"neg\"} 2\n";
    assert_eq!(
        run(c, body),
        [
            "ns.latency.bucket monotonic_count 2 [lower_bound:0.005,upper_bound:1.0]",
            "ns.latency.bucket monotonic_count 1 [lower_bound:0,upper_bound:0.005]",
            "ns.latency.bucket monotonic_count 2 [lower_bound:-inf,upper_bound:-1.0,x:neg]",
        ]
    );
}

#[test]
fn histogram_as_distributions() {
    let mut c = cfg(&[("lat", "latency")]);
    c.histogram_buckets_as_distributions = true;
    let got = run(c.clone(), HIST);
    assert_eq!(
        got,
        [
            "ns.latency histogram_bucket bucket(1,0,0.005,true) [lower_bound:0,svc:a,upper_bound:0.005]",
            "ns.latency histogram_bucket bucket(2,0.005,1,true) [lower_bound:0.005,svc:a,upper_bound:1.0]",
            "ns.latency histogram_bucket bucket(3,1,1000000,true) [lower_bound:1.0,svc:a,upper_bound:1000000.0]",
            "ns.latency histogram_bucket bucket(1,1000000,inf,true) [lower_bound:1000000.0,svc:a,upper_bound:inf]",
        ]
    );
    c.collect_counters_with_distributions = true;
    let got = run(c, HIST);
    assert_eq!(got.len(), 6);
    assert!(got.contains(&"ns.latency.sum monotonic_count 12.5 [svc:a]".to_string()));
}

#[test]
fn histogram_buckets_off() {
    let mut c = cfg(&[("lat", "latency")]);
    c.collect_histogram_buckets = false;
    assert_eq!(
        run(c, HIST),
        [
            "ns.latency.sum monotonic_count 12.5 [svc:a]",
            "ns.latency.count monotonic_count 7 [svc:a]"
        ]
    );
}

#[test]
fn summary_quantile_tags_python_formatted() {
    let body = "# TYPE rpc summary\nrpc{quantile=\"0\"} 1\nrpc{quantile=\"0.5\"} 2\nrpc{quantile=\"1\"} 3\nrpc{quantile=\"0.00001\"} 4\nrpc_sum 10\nrpc_count 4\n";
    assert_eq!(
        run(cfg(&[("rpc", "rpc")]), body),
        [
            "ns.rpc.quantile gauge 1 [quantile:0]",
            "ns.rpc.quantile gauge 2 [quantile:0.5]",
            "ns.rpc.quantile gauge 3 [quantile:1.0]",
            "ns.rpc.quantile gauge 4 [quantile:1e-05]",
            "ns.rpc.sum monotonic_count 10 []",
            "ns.rpc.count monotonic_count 4 []",
        ]
    );
}

#[test]
fn labels_filtered_then_renamed_static_tags_endpoint() {
    let mut c = cfg(&[("up", "up")]);
    c.exclude_labels = vec!["pod".into()];
    c.rename_labels = vec![("app".into(), "service".into())];
    c.tags = vec!["env:prod".into()];
    c.openmetrics_endpoint = Some("http://10.0.0.1:15090/stats/prometheus".into());
    let body = "# TYPE up gauge\nup{app=\"reviews\",pod=\"p-1\",zone=\"a\"} 1\n";
    assert_eq!(
        run(c.clone(), body),
        [
            "ns.up gauge 1 [endpoint:http://10.0.0.1:15090/stats/prometheus,env:prod,service:reviews,zone:a]"
        ]
    );
    c.include_labels = vec!["app".into(), "pod".into()];
    c.tag_by_endpoint = false;
    // include_labels applies before rename_labels; exclude wins over include
    assert_eq!(run(c, body), ["ns.up gauge 1 [env:prod,service:reviews]"]);
}

#[test]
fn exclusions_prefix_types_and_patterns() {
    let mut c = MappingConfig::default();
    c.namespace = "ns".into();
    c.raw_metric_prefix = "app_".into();
    c.metrics = vec![
        MetricSpec {
            raw: "x.*".into(),
            name: None,
            kind: SubmitType::Native,
        },
        MetricSpec {
            raw: "untyped_thing".into(),
            name: Some("thing".into()),
            kind: SubmitType::Gauge,
        },
        MetricSpec {
            raw: "skipped".into(),
            name: None,
            kind: SubmitType::Native,
        },
    ];
    c.exclude_metrics = vec!["x_drop.*".into()];
    let body = "# TYPE app_x_keep gauge\napp_x_keep 1\n# TYPE app_x_drop_me gauge\napp_x_drop_me 2\napp_untyped_thing 3\napp_skipped 4\n";
    assert_eq!(
        run(c.clone(), body),
        ["ns.x_keep gauge 1 []", "ns.thing gauge 3 []"]
    );
    c.namespace.clear();
    assert_eq!(run(c, body)[0], "x_keep gauge 1 []");
}

#[test]
fn istio_preset_names() {
    let body = "# TYPE istio_requests_total counter\nistio_requests_total{response_code=\"200\"} 7\n# TYPE istio_tcp_sent_bytes_total counter\nistio_tcp_sent_bytes_total 9\n";
    let got = run(MappingConfig::istio_mesh(), body);
    assert_eq!(
        got,
        [
            "istio.mesh.request.count monotonic_count 7 [response_code:200]",
            "istio.mesh.tcp.send_bytes.count monotonic_count 9 []"
        ]
    );
    // the non-conforming gauge keeps its `_total`
    let spec = MappingConfig::istio_istiod();
    assert!(
        spec.metrics
            .iter()
            .any(|m| m.raw == "galley_runtime_state_type_instances_total")
    );
}

#[cfg(feature = "serde")]
#[test]
fn v1_option_names_are_aliases() {
    let v1: MappingConfig = serde_json::from_str(
        r#"{"prometheus_url":"http://h:1/metrics","namespace":"ns","prometheus_metrics_prefix":"app_",
            "metrics":[{"lat":"latency"},"up"],"type_overrides":{"up":"gauge"},
            "labels_mapper":{"a":"b"},"send_histograms_buckets":false,"non_cumulative_buckets":true,
            "send_distribution_buckets":false,"ignore_metrics":["go_*"],"exclude_labels":["pod"]}"#,
    )
    .unwrap();
    assert_eq!(
        v1.openmetrics_endpoint.as_deref(),
        Some("http://h:1/metrics")
    );
    assert_eq!(v1.raw_metric_prefix, "app_");
    assert!(!v1.collect_histogram_buckets && v1.non_cumulative_histogram_buckets);
    assert_eq!(v1.rename_labels, [("a".to_string(), "b".to_string())]);
    assert_eq!(v1.metrics[1].kind, SubmitType::Gauge);
    let body = "go_goroutines 5\napp_up 1\n";
    let mut c = v1.clone();
    c.metrics.push(MetricSpec {
        raw: "go_goroutines".into(),
        name: None,
        kind: SubmitType::Gauge,
    });
    assert_eq!(
        run(c, body),
        ["ns.up gauge 1 [endpoint:http://h:1/metrics]"]
    );
}

#[test]
fn tag_cache_gives_identical_results_and_is_bounded() {
    let mut c = cfg(&[("lat", "latency"), ("rpc", "rpc")]);
    c.max_cached_label_sets = 3;
    let body =
        format!("{HIST}# TYPE rpc summary\nrpc{{quantile=\"0.5\"}} 2\nrpc_sum 10\nrpc_count 4\n");
    let mut mapper = Mapper::new(c).unwrap();
    let mut runs = Vec::new();
    for _ in 0..3 {
        let mut out = Vec::new();
        mapper
            .map(
                body.as_bytes(),
                Format::PrometheusText,
                Timestamp::EPOCH,
                &mut |m| out.push(m),
            )
            .unwrap();
        runs.push(out);
    }
    assert_eq!(runs[0], runs[1]);
    assert_eq!(runs[1], runs[2]);
    let st = mapper.cache_stats();
    assert!(st.entries <= 3 && st.clears > 0, "{st:?}");
    // an uncached mapper agrees
    let mut c0 = cfg(&[("lat", "latency"), ("rpc", "rpc")]);
    c0.max_cached_label_sets = 0;
    let mut m0 = Mapper::new(c0).unwrap();
    let mut out = Vec::new();
    m0.map(
        body.as_bytes(),
        Format::PrometheusText,
        Timestamp::EPOCH,
        &mut |m| out.push(m),
    )
    .unwrap();
    assert_eq!(out, runs[0]);
    assert_eq!(m0.cache_stats().entries, 0);
}

#[test]
fn a_parse_error_anywhere_emits_nothing() {
    // The first family is fine, the second is broken: nothing may be submitted.
    let body = "# TYPE up gauge\nup 1\n# TYPE req_total counter\nreq_total{code=\"200\" 5\n";
    let mut mapper = Mapper::new(cfg(&[("up", "up"), ("req", "requests")])).unwrap();
    let mut out = Vec::new();
    let err = mapper
        .map(
            body.as_bytes(),
            Format::PrometheusText,
            Timestamp::EPOCH,
            &mut |m| out.push(m),
        )
        .unwrap_err();
    assert!(
        out.is_empty(),
        "{} metrics emitted before the error",
        out.len()
    );
    assert_eq!(err.line, 4, "{err}");
    // The mapper is still usable, and a good scrape after a bad one emits only its own.
    let good = "# TYPE up gauge\nup 1\n";
    mapper
        .map(
            good.as_bytes(),
            Format::PrometheusText,
            Timestamp::EPOCH,
            &mut |m| out.push(m),
        )
        .unwrap();
    assert_eq!(out.len(), 1);
}

#[test]
fn sniffing_the_format_of_a_file() {
    // An OpenMetrics exposition (ends with `# EOF`) and the same samples as text.
    let om = b"# TYPE up gauge\nup 1\n# EOF\n";
    assert_eq!(Format::sniff(om), Format::OpenMetrics);
    assert_eq!(
        Format::sniff(b"# TYPE up gauge\r\nup 1\r\n# EOF\r\n"),
        Format::OpenMetrics
    );
    assert_eq!(
        Format::sniff(b"# TYPE up gauge\nup 1\n"),
        Format::PrometheusText
    );
    assert_eq!(Format::sniff(b""), Format::PrometheusText);
    // `# EOF` not on the last line, or only as a suffix of another comment: text.
    assert_eq!(Format::sniff(b"# EOF\nup 1\n"), Format::PrometheusText);
    assert_eq!(Format::sniff(b"# HELP x # EOF\n"), Format::PrometheusText);
    assert_eq!(Format::sniff(b"up 1\n# EOF\n\n"), Format::PrometheusText);
    // The sniffed format parses what it sniffed.
    assert_eq!(meshmon_prom::count(om, Format::sniff(om)).unwrap(), (1, 1));
}
