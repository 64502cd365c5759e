//! Allocation budget of endpoints-check expansion: every config is an owned value (its
//! id, tags and instance), so expansion allocates per config; this test pins how much,
//! so a change that makes the hot path allocate more fails here.

use meshmon_core::autodiscovery::kube::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectMeta, ObjectReference, Service,
};
use meshmon_core::autodiscovery::{ExpandOptions, KubeObject, expand};

use crate::test_util::thread_allocations;

fn objects(n: usize) -> Vec<KubeObject> {
    let meta = ObjectMeta {
        name: "istio-telemetry".into(),
        namespace: "istio-system".into(),
        ..ObjectMeta::default()
    };
    let mut svc = Service {
        metadata: meta.clone(),
        ..Service::default()
    };
    svc.metadata.annotations.insert(
        "ad.datadoghq.com/endpoints.check_names".into(),
        r#"["istio"]"#.into(),
    );
    svc.metadata.annotations.insert(
        "ad.datadoghq.com/endpoints.init_configs".into(),
        "[{}]".into(),
    );
    svc.metadata.annotations.insert(
        "ad.datadoghq.com/endpoints.instances".into(),
        r#"[{"istio_mesh_endpoint": "http://%%host%%:42422/metrics", "mixer_endpoint": "http://%%host%%:15014/metrics", "send_histograms_buckets": true}]"#.into(),
    );
    let addresses = (0..n)
        .map(|i| EndpointAddress {
            ip: format!("10.8.{}.{}", i / 256, i % 256),
            node_name: Some(format!("node-{}", i % 4)),
            target_ref: Some(ObjectReference {
                kind: "Pod".into(),
                name: format!("p-{i}"),
                ..ObjectReference::default()
            }),
        })
        .collect();
    let eps = Endpoints {
        metadata: meta,
        subsets: vec![EndpointSubset {
            addresses,
            not_ready_addresses: Vec::new(),
            ports: vec![EndpointPort {
                name: "http-monitoring".into(),
                port: 15014,
            }],
        }],
    };
    vec![KubeObject::Service(svc), KubeObject::Endpoints(eps)]
}

#[test]
fn allocations_per_config_stay_within_budget() {
    let n = 2_000;
    let objs = objects(n);
    let opts = ExpandOptions::default();
    let before = thread_allocations();
    let out = expand(&objs, &opts);
    let allocs = thread_allocations() - before;
    assert_eq!(out.configs.len(), n);
    let per = allocs as f64 / n as f64;
    eprintln!("{allocs} allocations for {n} configs: {per:.1} per config");
    assert!(per <= 32.0, "{per:.1} allocations per config");

    // a node agent's view: targets of other nodes are not even built
    let node = ExpandOptions::default().with_node("node-1").unwrap();
    let before = thread_allocations();
    let out = expand(&objs, &node);
    let allocs = thread_allocations() - before;
    assert_eq!(out.configs.len(), n / 4);
    assert!((allocs as f64) / (n as f64 / 4.0) <= 34.0, "{allocs}");
}
