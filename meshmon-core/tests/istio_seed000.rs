//! The bundled Istio manifest (seed 000: four Istio services annotated for endpoints
//! checks, their Endpoints on two nodes) expands into one config per pod.

use std::collections::BTreeMap;

use meshmon_core::autodiscovery::{ExpandOptions, KubeObject, expand, parse_objects};
use serde_json::{Value, json};

// A copy of examples/meshmon-agent/examples/istio-seed000.yaml, so this crate's tests
// read only this crate's files.
const MANIFEST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/istio-seed000.yaml");
const SEED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/seeds/000_a586e09cf68dc706.txt"
);

fn objects() -> Vec<KubeObject> {
    parse_objects(&std::fs::read(MANIFEST).unwrap()).unwrap()
}

/// (service, pod IP, node, metric endpoint keys)
const PODS: [(&str, &str, &str, &[&str]); 6] = [
    (
        "istio-telemetry",
        "10.8.0.11",
        "node-a",
        &["istio_mesh_endpoint", "mixer_endpoint"],
    ),
    (
        "istio-telemetry",
        "10.8.1.12",
        "node-b",
        &["istio_mesh_endpoint", "mixer_endpoint"],
    ),
    ("istio-galley", "10.8.0.21", "node-a", &["galley_endpoint"]),
    ("istio-pilot", "10.8.0.31", "node-a", &["pilot_endpoint"]),
    ("istio-pilot", "10.8.1.32", "node-b", &["pilot_endpoint"]),
    (
        "istio-citadel",
        "10.8.1.41",
        "node-b",
        &["citadel_endpoint"],
    ),
];

#[test]
fn expands_to_one_config_per_pod() {
    let out = expand(&objects(), &ExpandOptions::default());
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert!(out.skipped.is_empty(), "{:?}", out.skipped);
    assert_eq!(out.configs.len(), PODS.len());
    for (c, (svc, ip, node, keys)) in out.configs.iter().zip(PODS) {
        assert_eq!(c.id, format!("kube_endpoint_uid://istio-system/{svc}/{ip}"));
        assert_eq!(c.check, "istio");
        assert_eq!(c.node.as_deref(), Some(node));
        assert_eq!(c.init_config, json!({}));
        assert_eq!(c.logs, None);
        let tags = vec![
            format!("kube_endpoint_ip:{ip}"),
            "kube_namespace:istio-system".to_string(),
            format!("kube_service:{svc}"),
        ];
        assert_eq!(c.tags, tags);
        let mut want = serde_json::Map::new();
        for k in keys {
            // the telemetry pod's mesh metrics are on 42422, everything else on 15014
            let port = if *k == "istio_mesh_endpoint" {
                42422
            } else {
                15014
            };
            want.insert(k.to_string(), json!(format!("http://{ip}:{port}/metrics")));
        }
        want.insert("send_histograms_buckets".into(), json!(true));
        want.insert("tags".into(), json!(tags));
        assert_eq!(c.instance, Value::Object(want), "{}", c.id);
    }
}

#[test]
fn each_node_agent_gets_only_its_pods() {
    for node in ["node-a", "node-b"] {
        let opts = ExpandOptions::default().with_node(node).unwrap();
        let out = expand(&objects(), &opts);
        let got: Vec<_> = out.configs.iter().map(|c| c.id.clone()).collect();
        let want: Vec<_> = PODS
            .iter()
            .filter(|p| p.2 == node)
            .map(|(svc, ip, _, _)| format!("kube_endpoint_uid://istio-system/{svc}/{ip}"))
            .collect();
        assert_eq!(got, want);
        assert_eq!(out.stats.other_node, PODS.len() - want.len());
    }
}

/// The manifest's annotations are exactly those of the seed's `kubectl patch` script.
#[test]
fn annotations_are_the_seeds() {
    let Some(path) = crate::test_util::corpus(SEED, "seed 000 annotations") else {
        return;
    };
    let seed = std::fs::read_to_string(path).unwrap();
    let mut from_seed: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut rest = seed.as_str();
    while let Some(i) = rest.find("patch service ") {
        rest = &rest[i + "patch service ".len()..];
        let name = rest.split_whitespace().next().unwrap().to_string();
        let body_start = rest.find("<<EOF\n").unwrap() + "<<EOF\n".len();
        let body_end = rest[body_start..].find("\nEOF").unwrap() + body_start;
        let patch: Value = serde_norway::from_str(&rest[body_start..body_end]).unwrap();
        let ann = patch["metadata"]["annotations"].as_object().unwrap();
        from_seed.insert(
            name,
            ann.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect(),
        );
        rest = &rest[body_end..];
    }
    assert_eq!(
        from_seed.keys().collect::<Vec<_>>(),
        [
            "istio-citadel",
            "istio-galley",
            "istio-pilot",
            "istio-telemetry"
        ]
    );
    let mut seen = 0;
    for o in objects() {
        if let KubeObject::Service(s) = o {
            let want = &from_seed[&s.metadata.name];
            assert_eq!(
                s.metadata.annotations.keys().collect::<Vec<_>>(),
                want.keys().collect::<Vec<_>>()
            );
            for (k, v) in want {
                // compare as JSON: the YAML block indentation differs, the content does not
                let a: Value = serde_json::from_str(&s.metadata.annotations[k]).unwrap();
                let b: Value = serde_json::from_str(v).unwrap();
                assert_eq!(a, b, "{} {k}", s.metadata.name);
            }
            seen += 1;
        }
    }
    assert_eq!(seen, 4);
}
