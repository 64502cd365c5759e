//! The cluster agent at scale (`meshmon_core::autodiscovery::dispatch`): 10,000 pods on
//! 1,000 nodes behind 500 annotated Services (each with an endpoints check per pod and a
//! cluster check), generated from a fixed seed.
//!
//! - `cluster/expand_dispatch`: expand the objects and dispatch everything to 1,000 live
//!   nodes (target: < 1 s on one core).
//! - `cluster/node_poll`: one node's poll: heartbeat, its cluster and endpoints configs,
//!   encoded as JSON (target: < 1 ms).
//! - `cluster/redispatch_100_nodes`: 100 nodes fall silent; the tick that expires them
//!   and re-dispatches their cluster checks (wall time: too short for the CPU clock).
//!
//! The live heap held by the objects, the configs and the dispatcher is printed once
//! (`memory:` lines), measured with a counting global allocator.
//!
//! `cargo bench -p meshmon-benches --no-default-features --bench cluster`

// Benchmark setup may unwrap: a failure there is a broken benchmark, which the panic reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use meshmon_core::Timestamp;
use meshmon_core::autodiscovery::dispatch::{DispatchOptions, Dispatcher};
use meshmon_core::autodiscovery::kube::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectMeta, ObjectReference, Service,
};
use meshmon_core::autodiscovery::{ExpandOptions, KubeObject, expand};

#[path = "common/thread_cpu.rs"]
mod thread_cpu;
use thread_cpu::ThreadCpu;

/// Counts live heap bytes, for the `memory:` lines.
struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator; only adds bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: `p` was allocated by `alloc` above with `l`.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const PODS: usize = 10_000;
const NODES: usize = 1_000;
const SERVICES: usize = 500;

/// A small deterministic generator (SplitMix64).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn ip(i: usize) -> String {
    format!("10.{}.{}.{}", 8 + i / 65_536, (i / 256) % 256, i % 256)
}

/// 500 Services (endpoints check + cluster check), their Endpoints: 20 pods each, pods
/// placed on 1,000 nodes at random (seeded), 1 in 50 addresses not ready.
fn cluster() -> Vec<KubeObject> {
    let mut rng = Rng(0x5eed_0000_cafe);
    let mut out = Vec::with_capacity(2 * SERVICES);
    let per = PODS / SERVICES;
    for s in 0..SERVICES {
        let name = format!("svc-{s}");
        let ns = format!("ns-{}", s % 20);
        let meta = ObjectMeta {
            name: name.clone(),
            namespace: ns.clone(),
            ..ObjectMeta::default()
        };
        let mut svc = Service {
            metadata: meta.clone(),
            ..Service::default()
        };
        svc.spec.cluster_ip = format!("10.96.{}.{}", s / 256, s % 256);
        for (k, v) in [
            ("ad.datadoghq.com/endpoints.check_names", r#"["istio"]"#),
            ("ad.datadoghq.com/endpoints.init_configs", "[{}]"),
            (
                "ad.datadoghq.com/endpoints.instances",
                r#"[{"istio_mesh_endpoint": "http://%%host%%:15090/stats/prometheus"}]"#,
            ),
            ("ad.datadoghq.com/service.check_names", r#"["http_check"]"#),
            ("ad.datadoghq.com/service.init_configs", "[{}]"),
            (
                "ad.datadoghq.com/service.instances",
                r#"[{"name": "%%host%%", "url": "http://%%host%%:9080/health"}]"#,
            ),
        ] {
            svc.metadata.annotations.insert(k.into(), v.into());
        }
        let mut addresses = Vec::new();
        let mut not_ready = Vec::new();
        for p in 0..per {
            let i = s * per + p;
            let node = (rng.next() % NODES as u64) as usize;
            let a = EndpointAddress {
                ip: ip(i),
                node_name: Some(format!("node-{node}")),
                target_ref: Some(ObjectReference {
                    kind: "Pod".into(),
                    name: format!("{name}-{p}"),
                    namespace: ns.clone(),
                    uid: format!("uid-{i}"),
                }),
            };
            if rng.next().is_multiple_of(50) {
                not_ready.push(a);
            } else {
                addresses.push(a);
            }
        }
        out.push(KubeObject::Service(svc));
        out.push(KubeObject::Endpoints(Endpoints {
            metadata: meta,
            subsets: vec![EndpointSubset {
                addresses,
                not_ready_addresses: not_ready,
                ports: vec![EndpointPort {
                    name: "http-envoy-prom".into(),
                    port: 15090,
                }],
            }],
        }));
    }
    out
}

fn opts() -> DispatchOptions {
    DispatchOptions::default().with_warmup(Duration::ZERO)
}

/// Expansion plus dispatch to `NODES` live nodes at `now`.
fn expand_dispatch(objects: &[KubeObject], now: Timestamp) -> Dispatcher {
    let configs = expand(objects, &ExpandOptions::default()).configs;
    let mut d = Dispatcher::new(opts(), now).unwrap();
    for n in 0..NODES {
        d.heartbeat(&format!("node-{n}"), now, 0);
    }
    d.set_configs(now, configs);
    d
}

fn bench(c: &mut Criterion<ThreadCpu>) {
    let t0 = Timestamp::from_secs(1_700_000_000);
    let before = LIVE.load(Ordering::Relaxed);
    let objects = cluster();
    let after_objects = LIVE.load(Ordering::Relaxed);
    let configs = expand(&objects, &ExpandOptions::default()).configs;
    let after_configs = LIVE.load(Ordering::Relaxed);
    let n_configs = configs.len();
    drop(configs);
    let d = expand_dispatch(&objects, t0);
    let after_dispatch = LIVE.load(Ordering::Relaxed);
    let s = d.stats();
    eprintln!(
        "cluster: {} objects -> {n_configs} configs ({} cluster checks, {} endpoints checks) on {} nodes",
        objects.len(),
        s.cluster_checks,
        s.endpoints_checks,
        s.nodes
    );
    let mib = |b: isize| b as f64 / (1 << 20) as f64;
    eprintln!(
        "memory: objects {:.1} MiB, expanded configs {:.1} MiB, dispatcher (configs held + state) {:.1} MiB",
        mib(after_objects - before),
        mib(after_configs - after_objects),
        mib(after_dispatch - after_objects)
    );
    assert_eq!(s.dangling, 0);
    assert_eq!(s.cluster_checks, SERVICES);

    let mut g = c.benchmark_group("cluster");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.bench_function("expand_dispatch", |b| {
        b.iter(|| black_box(expand_dispatch(&objects, t0)))
    });

    let mut d = d;
    let mut i = 0usize;
    g.bench_function("node_poll", |b| {
        b.iter(|| {
            let node = format!("node-{}", i % NODES);
            i += 1;
            let lc = d.cluster_configs(&node).map_or(0, |c| c.last_change);
            let up = d.heartbeat(&node, t0, lc);
            let cluster = d.cluster_configs(&node).unwrap();
            let endpoints = d.endpoints_configs(&node);
            let body = serde_json::to_vec(&(cluster.configs, endpoints.configs)).unwrap();
            black_box((up, body))
        })
    });

    g.finish();
}

/// The re-dispatch tick is far shorter than the scheduler's accounting tick, so it is
/// measured in wall time (each sample still runs on one thread).
fn bench_wall(c: &mut Criterion) {
    let t0 = Timestamp::from_secs(1_700_000_000);
    let objects = cluster();
    let mut g = c.benchmark_group("cluster");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.bench_function("redispatch_100_nodes", |b| {
        b.iter_batched(
            || {
                let mut d = expand_dispatch(&objects, t0);
                // 900 nodes keep reporting; 100 (node-0..node-99) fall silent.
                let t = Timestamp::from_secs(t0.as_secs() + 20);
                for n in 100..NODES {
                    d.heartbeat(&format!("node-{n}"), t, 0);
                }
                d
            },
            |mut d| {
                let out = d.tick(Timestamp::from_secs(t0.as_secs() + 31));
                assert_eq!(out.expired.len(), 100);
                // Returned, so its drop is outside the measurement.
                (out, d)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpu);
    targets = bench
}
criterion_group!(wall, bench_wall);
criterion_main!(benches, wall);
