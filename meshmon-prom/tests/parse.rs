//! Parser acceptance: the OpenMetrics conformance suite (copied into testdata/), every
//! real Istio scrape and the Prometheus textparse inputs (from ../shared/data), with
//! sample counts asserted.

use std::path::{Path, PathBuf};

use meshmon_prom::{Format, MetricType, ParseOptions, Parser, count, count_with, parse};

fn data_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data"))
}

/// A file of the shared corpus; `None` (with a message) when absent, a failure when
/// `MESHMON_REQUIRE_CORPUS=1`.
fn read_shared(rel: &str) -> Option<Vec<u8>> {
    let path = meshmon_core::test_util::corpus(data_dir().join(rel), rel)?;
    Some(std::fs::read(path).unwrap())
}

#[test]
fn openmetrics_conformance_suite() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/openmetrics-conformance");
    let mut good = (0, 0);
    let mut bad = (0, 0);
    let mut failures = Vec::new();
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("test.json").exists())
        .collect();
    cases.sort();
    for case in cases {
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(case.join("test.json")).unwrap()).unwrap();
        let should_parse = meta["shouldParse"].as_bool().unwrap();
        let input = std::fs::read(case.join(meta["file"].as_str().unwrap())).unwrap();
        let result = count(&input, Format::OpenMetrics);
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        if should_parse {
            good.0 += 1;
            match &result {
                Ok(_) => good.1 += 1,
                Err(e) => failures.push(format!("{name}: rejected: {e}")),
            }
        } else {
            bad.0 += 1;
            match &result {
                Err(_) => bad.1 += 1,
                Ok(c) => failures.push(format!("{name}: accepted {c:?}")),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(good, (44, 44), "good cases accepted");
    assert_eq!(bad, (167, 167), "bad cases rejected");
}

/// (file, format, typed families, samples). Samples were counted independently as the lines
/// that are neither blank nor comments (`grep -cvE '^\s*(#|$)'`).
const CORPUS: &[(&str, Format, usize, usize)] = &[
    (
        "istio-fixtures/0.5/mesh.txt",
        Format::PrometheusText,
        8,
        911,
    ),
    (
        "istio-fixtures/0.5/mixer.txt",
        Format::PrometheusText,
        47,
        386,
    ),
    (
        "istio-fixtures/1.1/citadel.txt",
        Format::PrometheusText,
        61,
        130,
    ),
    (
        "istio-fixtures/1.1/galley.txt",
        Format::PrometheusText,
        66,
        444,
    ),
    (
        "istio-fixtures/1.1/mesh.txt",
        Format::PrometheusText,
        4,
        1131,
    ),
    (
        "istio-fixtures/1.1/mixer.txt",
        Format::PrometheusText,
        52,
        257,
    ),
    (
        "istio-fixtures/1.1/pilot.txt",
        Format::PrometheusText,
        66,
        195,
    ),
    (
        "istio-fixtures/1.1/policy.txt",
        Format::PrometheusText,
        52,
        217,
    ),
    (
        "istio-fixtures/1.24/ztunnel.txt",
        Format::OpenMetrics,
        17,
        64,
    ),
    (
        "istio-fixtures/1.5/istio-merged.txt",
        Format::PrometheusText,
        258,
        461,
    ),
    (
        "istio-fixtures/1.5/istio-proxy.txt",
        Format::PrometheusText,
        190,
        773,
    ),
    (
        "istio-fixtures/1.5/istiod.txt",
        Format::PrometheusText,
        75,
        413,
    ),
    // two consecutive `# TYPE istio_mcp_clients_total` lines make one family
    (
        "istio-fixtures/1.5/non-conforming.txt",
        Format::PrometheusText,
        4,
        30,
    ),
    (
        "istio-fixtures/1.5/waypoint.txt",
        Format::PrometheusText,
        7,
        11,
    ),
    (
        "istio-fixtures/1.5/ztunnel.txt",
        Format::PrometheusText,
        10,
        10,
    ),
    (
        "istio-fixtures/non-conforming.txt",
        Format::PrometheusText,
        3,
        26,
    ),
    (
        "istio-fixtures/test-labels.txt",
        Format::PrometheusText,
        1,
        1,
    ),
    (
        "istio-fixtures/unverified-metrics.txt",
        Format::PrometheusText,
        19,
        19,
    ),
    (
        "prometheus-textparse-testdata/alltypes.237mfs.prom.txt",
        Format::PrometheusText,
        237,
        1857,
    ),
    (
        "prometheus-textparse-testdata/alltypes.237mfs.nometa.prom.txt",
        Format::PrometheusText,
        0,
        1857,
    ),
    (
        "prometheus-textparse-testdata/1histogram.om.txt",
        Format::OpenMetrics,
        1,
        42,
    ),
];

/// Prometheus' Go client writes a histogram with negative buckets *and* a `_sum`, which
/// OpenMetrics 1.0 forbids: strict mode rejects it (as Datadog's Python parser does),
/// `strict: false` parses it.
#[test]
fn non_strict_openmetrics_for_prometheus_go_output() {
    let Some(input) = read_shared("prometheus-textparse-testdata/alltypes.5mfs.om.txt") else {
        return;
    };
    let e = count(&input, Format::OpenMetrics).unwrap_err();
    assert_eq!(e.line, 33, "{e}");
    let lenient = ParseOptions::default().with_strict(false);
    assert_eq!(
        count_with(&input, Format::OpenMetrics, lenient).unwrap(),
        (5, 53)
    );
    let typed = meshmon_prom::parse(b"# TYPE a gauge\na 1\n# EOF\n", Format::OpenMetrics).unwrap();
    assert_eq!(typed.len(), 1);
}

#[test]
fn real_scrapes_parse_with_every_sample() {
    let mut seen = 0;
    for &(rel, format, typed_families, samples) in CORPUS {
        let Some(input) = read_shared(rel) else {
            continue;
        };
        seen += 1;
        let (_, got_samples) = count(&input, format).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert_eq!(got_samples, samples, "{rel}: samples");
        // Typed families: one per `# TYPE` line.
        let mut p = Parser::new(&input, format);
        let mut typed = 0;
        while let Some(f) = p.next_family() {
            let f = f.unwrap();
            if !matches!(f.kind, MetricType::Untyped | MetricType::Unknown) {
                typed += 1;
            }
        }
        assert_eq!(typed, typed_families, "{rel}: typed families");
        // The owned form carries the same samples.
        let owned = parse(&input, format).unwrap();
        assert_eq!(
            owned.iter().map(|f| f.samples.len()).sum::<usize>(),
            samples
        );
    }
    if seen == 0 {
        eprintln!("no shared corpus present; nothing asserted");
    }
}

#[test]
fn istio_quirks() {
    let Some(input) = read_shared("istio-fixtures/1.5/istio-proxy.txt") else {
        return;
    };
    assert!(!input.ends_with(b"\n"), "fixture ends without a newline");
    let owned = parse(&input, Format::PrometheusText).unwrap();
    // `name{} value` samples parse with an empty label set.
    let empty_braces = input
        .split(|&b| b == b'\n')
        .filter(|l| l.windows(3).any(|w| w == b"{} "))
        .count();
    assert!(empty_braces >= 56, "{empty_braces}");
    let no_labels = owned
        .iter()
        .flat_map(|f| &f.samples)
        .filter(|s| s.labels.is_empty())
        .count();
    assert!(no_labels >= empty_braces);
}

#[test]
fn errors_carry_position_and_expectation() {
    let e = count(b"a 1\nb{x=\"y\" 2\n", Format::PrometheusText).unwrap_err();
    assert_eq!((e.line, e.column), (2, 9));
    assert!(
        e.to_string()
            .starts_with("2:9: expected ',' or '}' after a label value"),
        "{e}"
    );
    let e = count(b"a 1\n", Format::OpenMetrics).unwrap_err();
    assert_eq!(e.kind, meshmon_prom::ErrorKind::MissingEof);
    let e = count(b"a 1\xff\n", Format::PrometheusText).unwrap_err();
    assert_eq!(
        (e.kind, e.line, e.column),
        (meshmon_prom::ErrorKind::InvalidUtf8, 1, 4)
    );
    let e = count(
        b"# TYPE a summary\na{quantile=\"2\"} 1\n# EOF\n",
        Format::OpenMetrics,
    )
    .unwrap_err();
    assert_eq!(e.line, 2);
}

#[test]
fn text_format_grouping() {
    let text = b"# HELP h help\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\nh 5\n# TYPE c counter\nc_total 1\n# HELP only_help x\n";
    let fams = parse(text, Format::PrometheusText).unwrap();
    let shape: Vec<(&str, MetricType, usize)> = fams
        .iter()
        .map(|f| (f.name.as_str(), f.kind, f.samples.len()))
        .collect();
    assert_eq!(
        shape,
        [
            ("h", MetricType::Histogram, 4),
            ("h", MetricType::Untyped, 1),
            ("c", MetricType::Counter, 0),
            ("c_total", MetricType::Untyped, 1),
            ("only_help", MetricType::Untyped, 0),
        ]
    );
    assert_eq!(fams[0].help.as_deref(), Some("help"));
}
