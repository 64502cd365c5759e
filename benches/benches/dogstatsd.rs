//! meshmon-core's DogStatsD codec and aggregator: packets per CPU-second, with the peer
//! `statsd-parser` (appsignal's (Dog)StatsD parser, crates.io) in the same run on the same
//! bytes.
//!
//! Inputs come from a seeded generator of client traffic (no DogStatsD corpus exists in
//! `../shared/data`): Istio-style application metrics from 40 services, ~2,000 contexts,
//! lines packed into datagrams of at most 1,432 bytes as the Datadog clients buffer them.
//!
//! - `common`: only what the peer understands (one value per line; `c`, `g`, `ms`, `h`;
//!   `@rate`; `key:value` tags). Both parse it; meshmon also parses and aggregates.
//! - `full`: the whole v1.3 protocol (sets, distributions, multi-value lines, `c:`
//!   container ids, `T` timestamps, bare tags, events, service checks). meshmon only: the
//!   peer rejects most of it.
//!
//! Times are this thread's CPU time ([`ThreadCpu`]), not wall time: the machine is shared.
//! Throughput is in packets (criterion's "elements").
//!
//! `cargo bench -p meshmon-benches --no-default-features --features dogstatsd --bench dogstatsd`

// Benchmark setup may unwrap: a failure there is a broken benchmark, which the panic reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/thread_cpu.rs"]
mod thread_cpu;
use thread_cpu::ThreadCpu;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use meshmon_core::Timestamp;
use meshmon_core::dogstatsd::aggregate::{Aggregator, AggregatorConfig};
use meshmon_core::dogstatsd::{Message, parse_packet};

/// Datadog clients' default buffer for UDP: 1,432 bytes.
const MAX_PACKET: usize = 1432;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const NAMES: &[(&str, &str)] = &[
    ("http.requests", "c"),
    ("http.request.duration", "ms"),
    ("http.response.size", "h"),
    ("grpc.calls", "c"),
    ("db.pool.in_use", "g"),
    ("queue.depth", "g"),
    ("cache.hits", "c"),
    ("cache.lookup.latency", "h"),
];
const CODES: &[&str] = &["200", "200", "200", "200", "201", "404", "500", "503"];

/// One line in the peer-compatible subset.
fn common_line(rng: &mut Rng, out: &mut String) {
    let (name, ty) = NAMES[rng.below(NAMES.len() as u64) as usize];
    let svc = rng.below(40);
    let value = match ty {
        "c" => format!("{}", 1 + rng.below(3)),
        "g" => format!("{}", rng.below(100)),
        _ => format!("{:.3}", rng.below(250_000) as f64 / 1000.0),
    };
    out.push_str(&format!("myapp.{name}:{value}|{ty}"));
    if rng.below(4) == 0 {
        out.push_str(["|@0.5", "|@0.1", "|@0.25"][rng.below(3) as usize]);
    }
    out.push_str(&format!(
        "|#env:prod,service:svc-{svc},version:v{},response_code:{},kube_namespace:ns-{}",
        1 + rng.below(2),
        CODES[rng.below(CODES.len() as u64) as usize],
        svc % 5
    ));
}

/// One line of the whole protocol.
fn full_line(rng: &mut Rng, out: &mut String) {
    match rng.below(20) {
        0 => {
            let (title, text) = ("Deployment rolled out", "svc-7 v2 is live\\nall pods ready");
            out.push_str(&format!(
                "_e{{{},{}}}:{title}|{text}|t:success|p:low|s:kubernetes|#env:prod,service:svc-7",
                title.len(),
                text.len()
            ));
        }
        1 => out.push_str(&format!(
            "_sc|myapp.db.can_connect|{}|h:node-{}|#env:prod,db:orders|m:connection refused",
            rng.below(4),
            rng.below(8)
        )),
        2 | 3 => out.push_str(&format!(
            "myapp.users.unique:user-{}|s|#env:prod,service:svc-{}",
            rng.below(500),
            rng.below(40)
        )),
        4 | 5 => out.push_str(&format!(
            "myapp.payload.bytes:{}:{}:{}|d|@0.5|#env:prod,service:svc-{},canary",
            rng.below(10_000),
            rng.below(10_000),
            rng.below(10_000),
            rng.below(40)
        )),
        6 => out.push_str(&format!(
            "myapp.jobs.done:{}|c|#env:prod,service:svc-{}|c:{:016x}{:016x}|T{}",
            rng.below(10),
            rng.below(40),
            rng.next(),
            rng.next(),
            1_700_000_000 + rng.below(10)
        )),
        _ => common_line(rng, out),
    }
}

/// Datagrams of at most [`MAX_PACKET`] bytes, `\n`-separated lines, `total` bytes in all.
fn packets(seed: u64, total: usize, line: fn(&mut Rng, &mut String)) -> Vec<Vec<u8>> {
    let mut rng = Rng(seed);
    let (mut out, mut cur, mut size) = (Vec::new(), String::new(), 0);
    let mut l = String::new();
    while size < total {
        l.clear();
        line(&mut rng, &mut l);
        if !cur.is_empty() && cur.len() + 1 + l.len() > MAX_PACKET {
            size += cur.len();
            out.push(std::mem::take(&mut cur).into_bytes());
        }
        if !cur.is_empty() {
            cur.push('\n');
        }
        cur.push_str(&l);
    }
    if !cur.is_empty() {
        out.push(cur.into_bytes());
    }
    out
}

fn inputs_size() -> usize {
    // `cargo test --all-targets` runs benches once without `--bench`: keep that quick.
    if std::env::args().any(|a| a == "--bench") {
        4 << 20
    } else {
        64 << 10
    }
}

fn meshmon_parse(packets: &[Vec<u8>]) -> (usize, usize) {
    let (mut ok, mut err) = (0, 0);
    for p in packets {
        for msg in parse_packet(p) {
            match msg {
                Ok(Message::Metric(m)) => {
                    black_box(m.values().sum::<f64>());
                    black_box(m.tags.iter().count());
                    ok += 1;
                }
                Ok(m) => {
                    black_box(m);
                    ok += 1;
                }
                Err(_) => err += 1,
            }
        }
    }
    (ok, err)
}

fn meshmon_aggregate(agg: &mut Aggregator, packets: &[Vec<u8>]) -> usize {
    for p in packets {
        for msg in parse_packet(p) {
            if let Ok(Message::Metric(m)) = msg {
                agg.insert(&m);
            }
        }
    }
    agg.flush(Timestamp::from_secs(1_700_000_010)).len()
}

fn peer_parse(packets: &[Vec<u8>]) -> (usize, usize) {
    let (mut ok, mut err) = (0, 0);
    for p in packets {
        let Ok(text) = std::str::from_utf8(p) else {
            err += 1;
            continue;
        };
        for line in text.split('\n') {
            match statsd_parser::parse(line) {
                Ok(m) => {
                    black_box(m);
                    ok += 1;
                }
                Err(_) => err += 1,
            }
        }
    }
    (ok, err)
}

fn bench(c: &mut Criterion<ThreadCpu>) {
    let common = packets(0x5EED_0001, inputs_size(), common_line);
    let full = packets(0x5EED_0002, inputs_size(), full_line);
    let lines = |p: &[Vec<u8>]| {
        p.iter()
            .map(|p| p.split(|&b| b == b'\n').count())
            .sum::<usize>()
    };
    // Both parsers must accept every line of `common`, or the comparison is unfair.
    let (n_common, n_full) = (lines(&common), lines(&full));
    assert_eq!(meshmon_parse(&common), (n_common, 0));
    assert_eq!(peer_parse(&common), (n_common, 0));
    assert_eq!(meshmon_parse(&full), (n_full, 0));
    let (peer_full_ok, _) = peer_parse(&full);
    eprintln!(
        "dogstatsd inputs: common {} packets / {n_common} lines, full {} packets / {n_full} lines (peer accepts {peer_full_ok} of them)",
        common.len(),
        full.len()
    );

    for (label, input) in [("common", &common), ("full", &full)] {
        let mut g = c.benchmark_group(format!("dogstatsd/{label}"));
        g.throughput(Throughput::Elements(input.len() as u64))
            .sample_size(20)
            .measurement_time(Duration::from_secs(4));
        g.bench_function("meshmon_parse", |b| b.iter(|| meshmon_parse(input)));
        let mut agg =
            Aggregator::new(AggregatorConfig::default()).unwrap_or_else(|e| panic!("{e}"));
        g.bench_function("meshmon_parse_aggregate_flush", |b| {
            b.iter(|| meshmon_aggregate(&mut agg, input))
        });
        if label == "common" {
            g.bench_function("statsd_parser_parse", |b| b.iter(|| peer_parse(input)));
        }
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpu);
    targets = bench
}
criterion_main!(benches);
