//! meshmon-trace benchmarks: decoding a ~100 k-span Envoy-shaped payload (v0.4 and v0.5)
//! beside libdatadog's decoder (`libdd-trace-utils`) and plain `rmp-serde`, and the full
//! pipeline (decode + normalise + sample + RED stats + service map).
//!
//! `cargo bench -p meshmon-benches --no-default-features --features trace --bench trace`
//!
//! Times are this thread's CPU time (the machine is shared), so throughputs read as
//! millions of spans per CPU-second, i.e. per core.

// Benchmark setup may unwrap: a failure there is a broken benchmark, which the panic reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::OnceLock;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use meshmon_core::Timestamp;
use meshmon_trace::decode::{self, Limits};
use meshmon_trace::normalize::Normalizer;
use meshmon_trace::receiver::{Receiver, ReceiverConfig, Request};
use meshmon_trace::sampler::{AgentSampler, SamplerConfig};
use meshmon_trace::servicemap::ServiceMap;
use meshmon_trace::stats::{Concentrator, FlushMode, StatsConfig};
use meshmon_trace::{encode, sampler};

const SPANS: usize = 100_000;

struct Payloads {
    spans: usize,
    v04: Vec<u8>,
    v05: Vec<u8>,
}

fn payloads() -> &'static Payloads {
    static P: OnceLock<Payloads> = OnceLock::new();
    P.get_or_init(|| {
        let traces = meshmon_benches::trace::envoy_traces(SPANS, 7);
        Payloads {
            spans: traces.iter().map(Vec::len).sum(),
            v04: encode::encode_v04(&traces),
            v05: encode::encode_v05(&traces),
        }
    })
}

/// What a plain serde user would write for a v0.4 span.
#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct RmpSpan {
    #[serde(default)]
    service: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    resource: String,
    #[serde(default)]
    trace_id: u64,
    #[serde(default)]
    span_id: u64,
    #[serde(default)]
    parent_id: u64,
    #[serde(default)]
    start: i64,
    #[serde(default)]
    duration: i64,
    #[serde(default)]
    error: i32,
    #[serde(default)]
    meta: HashMap<String, String>,
    #[serde(default)]
    metrics: HashMap<String, f64>,
    #[serde(default, rename = "type")]
    span_type: String,
}

fn decode_v04(c: &mut Criterion<CpuTime>) {
    let p = payloads();
    // The 100 k-span payload (~110 MB in v0.4) is over the Agent's 25 MiB request limit.
    let limits = Limits::default().with_max_body_bytes(1 << 30);
    let mut g = c.benchmark_group("decode_v04");
    g.throughput(Throughput::Elements(p.spans as u64));
    g.sample_size(10).measurement_time(Duration::from_secs(6));
    g.bench_function("meshmon", |b| {
        b.iter(|| {
            let d = decode::decode_v04(black_box(&p.v04), &limits).unwrap();
            assert_eq!(d.span_count(), p.spans);
            d
        })
    });
    g.bench_function("libdatadog", |b| {
        b.iter(|| {
            let (d, _) =
                libdd_trace_utils::msgpack_decoder::v04::from_slice(black_box(&p.v04)).unwrap();
            assert_eq!(d.iter().map(Vec::len).sum::<usize>(), p.spans);
            d
        })
    });
    g.bench_function("rmp-serde", |b| {
        b.iter(|| {
            let d: Vec<Vec<RmpSpan>> = rmp_serde::from_slice(black_box(&p.v04)).unwrap();
            assert_eq!(d.iter().map(Vec::len).sum::<usize>(), p.spans);
            d
        })
    });
    g.finish();
}

fn decode_v05(c: &mut Criterion<CpuTime>) {
    let p = payloads();
    // The 100 k-span payload (~110 MB in v0.4) is over the Agent's 25 MiB request limit.
    let limits = Limits::default().with_max_body_bytes(1 << 30);
    let mut g = c.benchmark_group("decode_v05");
    g.throughput(Throughput::Elements(p.spans as u64));
    g.sample_size(10).measurement_time(Duration::from_secs(6));
    g.bench_function("meshmon", |b| {
        b.iter(|| {
            let d = decode::decode_v05(black_box(&p.v05), &limits).unwrap();
            assert_eq!(d.span_count(), p.spans);
            d
        })
    });
    g.bench_function("libdatadog", |b| {
        b.iter(|| {
            let (d, _) =
                libdd_trace_utils::msgpack_decoder::v05::from_slice(black_box(&p.v05)).unwrap();
            assert_eq!(d.iter().map(Vec::len).sum::<usize>(), p.spans);
            d
        })
    });
    g.finish();
}

fn pipeline(c: &mut Criterion<CpuTime>) {
    let p = payloads();
    // The 100 k-span payload (~110 MB in v0.4) is over the Agent's 25 MiB request limit.
    let limits = Limits::default().with_max_body_bytes(1 << 30);
    let now = Timestamp::from_secs(1_795_341_500);
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(p.spans as u64));
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    // decode + normalise + RED stats + service map + sample, all spans, by hand.
    g.bench_function("meshmon_v05", |b| {
        let mut normalizer = Normalizer::new();
        let mut samplers = AgentSampler::new(SamplerConfig::default()).unwrap();
        let mut stats = Concentrator::new(StatsConfig::default()).unwrap();
        let mut map = ServiceMap::new();
        b.iter(|| {
            let payload = decode::decode_v05(black_box(&p.v05), &limits).unwrap();
            let mut kept = 0usize;
            for mut chunk in payload.chunks {
                if normalizer.normalize_chunk(&mut chunk, "cpp", now).is_err() {
                    continue;
                }
                stats.add_spans(&chunk.spans, "prod");
                map.add_trace(&chunk.spans);
                if samplers.decide(now, &chunk, "prod").keep() {
                    kept += chunk.spans.len();
                }
            }
            let _ = stats.flush(now, FlushMode::All);
            kept
        })
    });
    // The intake as the agent drives it: one `Receiver::handle` per HTTP request (decode,
    // normalise, RED stats, service map, sampling, kept chunks queued borrowing the body),
    // then `drain_kept` and `flush_stats`.
    for (name, path, body) in [
        ("intake_v04", "/v0.4/traces", &p.v04),
        ("intake_v05", "/v0.5/traces", &p.v05),
    ] {
        g.bench_function(name, |b| {
            let mut rx = Receiver::new(ReceiverConfig::default().with_limits(limits)).unwrap();
            let headers = [
                ("Content-Type", "application/msgpack"),
                ("Datadog-Meta-Lang", "cpp"),
                ("Datadog-Client-Computed-Top-Level", "1"),
            ];
            let body = meshmon_trace::Bytes::from(body.clone());
            b.iter(|| {
                let r = rx.handle(
                    &Request {
                        method: "POST",
                        path,
                        headers: &headers,
                        body: black_box(body.clone()),
                    },
                    now,
                );
                assert_eq!(r.status, 200);
                let kept: usize = rx.drain_kept().iter().map(|k| k.span_count()).sum();
                let _ = rx.flush_stats(now, FlushMode::All);
                kept
            })
        });
    }
    g.finish();
    let mut g = c.benchmark_group("sample_by_rate");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("knuth_1000_ids", |b| {
        b.iter(|| {
            (0..1000u64)
                .filter(|&i| {
                    sampler::sample_by_rate(black_box(i.wrapping_mul(0x9e37_79b9_7f4a_7c15)), 0.25)
                })
                .count()
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(CpuTime);
    targets = decode_v04, decode_v05, pipeline
}
criterion_main!(benches);

/// A criterion measurement of this thread's CPU time (Linux `/proc/thread-self/schedstat`),
/// so per-core throughput holds on a machine shared with other work.
pub struct CpuTime;

fn thread_cpu_ns() -> u64 {
    meshmon_benches::thread_cpu_ns().unwrap_or(0)
}

impl criterion::measurement::Measurement for CpuTime {
    type Intermediate = u64;
    type Value = u64;
    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, i: u64) -> u64 {
        thread_cpu_ns().saturating_sub(i)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn criterion::measurement::ValueFormatter {
        &CpuFormatter
    }
}

struct CpuFormatter;

impl criterion::measurement::ValueFormatter for CpuFormatter {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (div, unit) = if typical >= 1e9 {
            (1e9, "s(cpu)")
        } else if typical >= 1e6 {
            (1e6, "ms(cpu)")
        } else if typical >= 1e3 {
            (1e3, "µs(cpu)")
        } else {
            (1.0, "ns(cpu)")
        };
        for v in values.iter_mut() {
            *v /= div;
        }
        unit
    }

    fn scale_throughputs(
        &self,
        _typical: f64,
        throughput: &criterion::Throughput,
        values: &mut [f64],
    ) -> &'static str {
        let n = match throughput {
            criterion::Throughput::Elements(n)
            | criterion::Throughput::Bytes(n)
            | criterion::Throughput::BytesDecimal(n) => *n as f64,
            _ => 1.0,
        };
        for v in values.iter_mut() {
            // ns of CPU per iteration -> millions of elements per CPU second
            *v = n * 1e9 / *v / 1e6;
        }
        "M/cpu-s"
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns(cpu)"
    }
}
