//! No heap allocation per sample: a counting global allocator shows that parsing a large
//! exposition allocates a bounded number of times (the parser's one reusable sample
//! buffer growing, and a few small tables), however many samples it has.

use meshmon_prom::{Format, Parser};

use meshmon_core::test_util::thread_allocations;

fn exposition(series: usize) -> Vec<u8> {
    let mut s = String::from("# HELP rq Requests.\n# TYPE rq counter\n");
    for i in 0..series {
        s.push_str(&format!(
            "rq{{app=\"a{i}\",code=\"200\",path=\"/x\\\"y\"}} {i}.5 1700000000000\n"
        ));
    }
    s.push_str("# TYPE lat histogram\n");
    for i in 0..series {
        for le in ["0.1", "1", "+Inf"] {
            s.push_str(&format!("lat_bucket{{app=\"a{i}\",le=\"{le}\"}} {i}\n"));
        }
        s.push_str(&format!(
            "lat_sum{{app=\"a{i}\"}} 3\nlat_count{{app=\"a{i}\"}} {i}\n"
        ));
    }
    for i in 0..series {
        s.push_str(&format!("untyped_{} 1\n", i % 7));
    }
    s.into_bytes()
}

fn allocations_to_parse(input: &[u8], format: Format) -> (usize, usize) {
    let before = thread_allocations();
    let mut p = Parser::new(input, format);
    let mut samples = 0;
    while let Some(f) = p.next_family() {
        let f = f.unwrap();
        for s in f.samples {
            // touch the borrowed views: label iteration allocates nothing either
            samples += s
                .labels
                .iter()
                .filter(|l| !l.value.raw().is_empty())
                .count()
                .min(1);
        }
    }
    drop(p);
    (thread_allocations() - before, samples)
}

#[test]
fn parsing_allocates_nothing_per_sample() {
    let small = exposition(100);
    let large = exposition(10_000);
    let (a_small, n_small) = allocations_to_parse(&small, Format::PrometheusText);
    let (a_large, n_large) = allocations_to_parse(&large, Format::PrometheusText);
    assert_eq!(n_large, 100 * n_small);
    eprintln!("allocations: {a_small} for {n_small} samples, {a_large} for {n_large} samples");
    // 100x the samples: the count grows only with the buffer's doublings (log2).
    assert!(a_small <= 16, "small: {a_small} allocations");
    assert!(
        a_large <= a_small + 12,
        "large: {a_large} allocations for {n_large} samples (small: {a_small})"
    );
    assert!(a_large < n_large / 1000);
}

#[test]
fn openmetrics_validation_allocates_nothing_per_sample() {
    let mut body = String::from("# TYPE a counter\n");
    for i in 0..20_000 {
        body.push_str(&format!(
            "a_total{{k=\"{i}\"}} {i} # {{trace=\"t{i}\"}} 1\n"
        ));
    }
    body.push_str("# EOF\n");
    let (allocs, samples) = allocations_to_parse(body.as_bytes(), Format::OpenMetrics);
    assert_eq!(samples, 20_000);
    // the sample buffer and the group set double; nothing per sample
    assert!(allocs < 80, "{allocs} allocations");
}
