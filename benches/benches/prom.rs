//! meshmon-prom: parse and parse+map throughput on real Istio scrapes and a ~32 MB
//! synthetic mesh, with the peer parsers `prom_text_format_parser`, `prometheus-parse` and
//! `nom-openmetrics` measured in the same run on the same bytes.
//!
//! Times are this thread's CPU time ([`ThreadCpu`]), not wall time: the machine is shared.
//!
//! `cargo bench -p meshmon-benches --no-default-features --features prom --bench prom`

// Benchmark setup may unwrap: a failure there is a broken benchmark, which the panic reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/thread_cpu.rs"]
mod thread_cpu;
use thread_cpu::ThreadCpu;

use std::hint::black_box;
use std::sync::OnceLock;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use meshmon_core::Timestamp;
use meshmon_prom::{Format, Mapper, MappingConfig, Parser};

fn synthetic() -> &'static [u8] {
    static S: OnceLock<Vec<u8>> = OnceLock::new();
    // `cargo test --all-targets` runs benches once without `--bench`: keep that quick.
    let full = std::env::args().any(|a| a == "--bench");
    S.get_or_init(|| meshmon_benches::prom::synthetic_mesh(if full { 32 << 20 } else { 2 << 20 }))
}

fn inputs() -> Vec<(&'static str, Vec<u8>)> {
    let mut v = Vec::new();
    for (label, rel) in [
        ("mesh-1.1", "istio-fixtures/1.1/mesh.txt"),
        ("istio-proxy-1.5", "istio-fixtures/1.5/istio-proxy.txt"),
    ] {
        if let Some(b) = meshmon_benches::read_corpus(rel) {
            v.push((label, b));
        }
    }
    v.push(("synthetic-32MB", synthetic().to_vec()));
    v
}

fn meshmon_parse(input: &[u8]) -> usize {
    let mut p = Parser::new(input, Format::PrometheusText);
    let mut n = 0;
    while let Some(f) = p.next_family() {
        match f {
            Ok(f) => n += f.samples.len(),
            Err(_) => return n,
        }
    }
    n
}

fn peers_accept(label: &str, text: &str) {
    // Say once which peers reject or lose samples on this input.
    let ours = meshmon_parse(text.as_bytes());
    let a = prom_text_format_parser::Scrape::parse(text).map(|s| s.metrics.len());
    let b = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .map(|s| s.samples.len());
    let c = nom_openmetrics::parser::prometheus(text)
        .map(|(rest, f)| (rest.len(), f.iter().map(|f| f.samples.len()).sum::<usize>()));
    eprintln!(
        "prom bench input {label}: meshmon samples={ours}; prom_text_format_parser={:?}; prometheus-parse samples={:?}; nom-openmetrics (unparsed bytes, samples)={:?}",
        a.map_err(|e| format!("{e:?}").chars().take(80).collect::<String>()),
        b.map_err(|e| e.to_string()),
        c.map_err(|e| e.to_string().chars().take(80).collect::<String>()),
    );
}

fn parse(c: &mut Criterion<ThreadCpu>) {
    for (label, bytes) in inputs() {
        let text = String::from_utf8(bytes).expect("utf-8 corpus");
        peers_accept(label, &text);
        let mut g = c.benchmark_group(format!("prom_parse/{label}"));
        g.throughput(Throughput::Bytes(text.len() as u64));
        if text.len() > (1 << 20) {
            g.sample_size(10)
                .measurement_time(Duration::from_secs(4))
                .warm_up_time(Duration::from_millis(500));
        }
        g.bench_function("meshmon-prom", |b| {
            b.iter(|| meshmon_parse(black_box(text.as_bytes())))
        });
        g.bench_function("prom_text_format_parser", |b| {
            b.iter(|| {
                prom_text_format_parser::Scrape::parse(black_box(&text)).map(|s| s.metrics.len())
            })
        });
        g.bench_function("prometheus-parse", |b| {
            b.iter(|| {
                prometheus_parse::Scrape::parse(black_box(&text).lines().map(|l| Ok(l.to_owned())))
                    .map(|s| s.samples.len())
            })
        });
        g.bench_function("nom-openmetrics", |b| {
            b.iter(|| nom_openmetrics::parser::prometheus(black_box(&text)).map(|(_, f)| f.len()))
        });
        g.finish();
    }
}

fn parse_map(c: &mut Criterion<ThreadCpu>) {
    for (label, bytes) in inputs() {
        let mut g = c.benchmark_group(format!("prom_parse_map/{label}"));
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        if bytes.len() > (1 << 20) {
            g.sample_size(10)
                .measurement_time(Duration::from_secs(4))
                .warm_up_time(Duration::from_millis(500));
        }
        // Cold: a new mapper per scrape (every tag built).
        g.bench_function("meshmon-prom istio preset, cold", |b| {
            b.iter(|| {
                let mut mapper = Mapper::new(MappingConfig::istio_mesh()).expect("preset compiles");
                let mut n = 0usize;
                let _ = mapper.map(
                    black_box(&bytes),
                    Format::PrometheusText,
                    Timestamp::EPOCH,
                    &mut |m| {
                        n += black_box(m).tags.len();
                    },
                );
                n
            })
        });
        // Steady state: one mapper across scrapes of the same series (tags cached).
        let mut mapper = Mapper::new(MappingConfig::istio_mesh()).expect("preset compiles");
        g.bench_function("meshmon-prom istio preset, steady", |b| {
            b.iter(|| {
                let mut n = 0usize;
                let _ = mapper.map(
                    black_box(&bytes),
                    Format::PrometheusText,
                    Timestamp::EPOCH,
                    &mut |m| {
                        n += black_box(m).tags.len();
                    },
                );
                n
            })
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpu);
    targets = parse, parse_map
}
criterion_main!(benches);
