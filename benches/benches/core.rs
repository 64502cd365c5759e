//! Benchmarks for meshmon-core: tag parsing and set building; autodiscovery expansion of
//! a 10,000-endpoint Service.

// Benchmark setup may unwrap: a failure there is a broken benchmark, which the panic reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use meshmon_core::Tags;
use meshmon_core::autodiscovery::kube::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectMeta, ObjectReference, Service,
};
use meshmon_core::autodiscovery::{ExpandOptions, KubeObject, expand};
use serde_json::Value;
use std::hint::black_box;

fn tags(c: &mut Criterion) {
    let text = "env:prod service:reviews version:v2 cluster:east,team:mesh pod:reviews-v2-5f8c";
    c.bench_function("core/tags_parse_6", |b| {
        b.iter(|| black_box(text).parse::<Tags>())
    });
}

/// Seed 000's istio-telemetry instance (two `%%host%%` URLs).
const INSTANCES: &str = r#"[
  {
    "istio_mesh_endpoint": "http://%%host%%:42422/metrics",
    "mixer_endpoint": "http://%%host%%:15014/metrics",
    "send_histograms_buckets": true
  }
]"#;

const ENDPOINTS: usize = 10_000;

fn ip(i: usize) -> String {
    format!("10.{}.{}.{}", 8 + i / 65_536, (i / 256) % 256, i % 256)
}

/// One annotated Service and its Endpoints: 10,000 pod-backed addresses on 50 nodes.
fn big_service() -> Vec<KubeObject> {
    let meta = |name: &str| ObjectMeta {
        name: name.into(),
        namespace: "istio-system".into(),
        ..ObjectMeta::default()
    };
    let mut svc = Service {
        metadata: meta("istio-telemetry"),
        ..Service::default()
    };
    for (k, v) in [
        ("ad.datadoghq.com/endpoints.check_names", r#"["istio"]"#),
        ("ad.datadoghq.com/endpoints.init_configs", "[{}]"),
        ("ad.datadoghq.com/endpoints.instances", INSTANCES),
    ] {
        svc.metadata.annotations.insert(k.into(), v.into());
    }
    let addresses = (0..ENDPOINTS)
        .map(|i| EndpointAddress {
            ip: ip(i),
            node_name: Some(format!("node-{}", i % 50)),
            target_ref: Some(ObjectReference {
                kind: "Pod".into(),
                name: format!("istio-telemetry-5b9c8d7f6-{i:05}"),
                namespace: "istio-system".into(),
                uid: format!("00000000-0000-0000-0000-{i:012}"),
            }),
        })
        .collect();
    let eps = Endpoints {
        metadata: meta("istio-telemetry"),
        subsets: vec![EndpointSubset {
            addresses,
            not_ready_addresses: Vec::new(),
            ports: vec![
                EndpointPort {
                    name: "http-monitoring".into(),
                    port: 15014,
                },
                EndpointPort {
                    name: "prometheus".into(),
                    port: 42422,
                },
            ],
        }],
    };
    vec![KubeObject::Service(svc), KubeObject::Endpoints(eps)]
}

fn autodiscovery(c: &mut Criterion) {
    let objects = big_service();
    let opts = ExpandOptions::default();
    assert_eq!(expand(&objects, &opts).configs.len(), ENDPOINTS);
    let mut g = c.benchmark_group("core/ad_expand_10k_endpoints");
    g.throughput(Throughput::Elements(ENDPOINTS as u64));
    g.sample_size(20);
    // meshmon: parse the annotations once, resolve variables inside the parsed strings
    // per endpoint (tags merged, errors typed).
    g.bench_function("meshmon", |b| {
        b.iter(|| black_box(expand(black_box(&objects), &opts)))
    });
    let node = ExpandOptions::default()
        .with_node("node-7")
        .expect("a valid node name");
    g.bench_function("meshmon_node_filter", |b| {
        b.iter(|| black_box(expand(black_box(&objects), &node)))
    });
    // Baseline: what naive text templating costs: substitute `%%host%%` in the
    // annotation text, then parse the JSON, per endpoint (no tags, no error checks).
    let ips: Vec<String> = (0..ENDPOINTS).map(ip).collect();
    g.bench_function("text_substitute_then_parse", |b| {
        b.iter_batched(
            || (),
            |()| {
                ips.iter()
                    .map(|ip| serde_json::from_str::<Value>(&INSTANCES.replace("%%host%%", ip)))
                    .collect::<Result<Vec<_>, _>>()
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, tags, autodiscovery);
criterion_main!(benches);
