//! A deterministic synthetic Istio mesh scrape (Envoy sidecar metrics in Prometheus text
//! format), shaped like Istio 1.x `istio_requests_total`, `istio_request_duration_milliseconds`
//! and `istio_request_bytes` with the standard label set, for meshmon-prom's benchmarks.

use std::fmt::Write as _;

const APPS: &[&str] = &[
    "productpage",
    "reviews",
    "ratings",
    "details",
    "mongodb",
    "istio-ingressgateway",
    "checkout",
    "cart",
];
const VERSIONS: &[&str] = &["v1", "v2", "v3"];
const CODES: &[&str] = &["200", "201", "304", "404", "500", "503"];
const BOUNDS: &[&str] = &[
    "0.5", "1", "5", "10", "25", "50", "100", "250", "500", "1000", "2500", "5000", "10000",
    "30000", "60000", "300000", "600000", "1800000", "3600000", "+Inf",
];

fn labels(out: &mut String, i: usize) {
    let src = APPS[i % APPS.len()];
    let dst = APPS[(i / APPS.len()) % APPS.len()];
    let ver = VERSIONS[(i / 64) % VERSIONS.len()];
    let code = CODES[(i / 192) % CODES.len()];
    let _ = write!(
        out,
        "connection_security_policy=\"mutual_tls\",destination_app=\"{dst}\",destination_canonical_revision=\"{ver}\",\
destination_canonical_service=\"{dst}\",destination_cluster=\"Kubernetes\",destination_principal=\"spiffe://cluster.local/ns/default/sa/bookinfo-{dst}\",\
destination_service=\"{dst}.default.svc.cluster.local\",destination_service_name=\"{dst}\",destination_service_namespace=\"default\",\
destination_version=\"{ver}\",destination_workload=\"{dst}-{ver}\",destination_workload_namespace=\"default\",reporter=\"destination\",\
request_protocol=\"http\",response_code=\"{code}\",response_flags=\"-\",source_app=\"{src}\",source_canonical_revision=\"v1\",\
source_canonical_service=\"{src}\",source_cluster=\"Kubernetes\",source_principal=\"spiffe://cluster.local/ns/default/sa/bookinfo-{src}\",\
source_version=\"v1\",source_workload=\"{src}-v1\",source_workload_namespace=\"default\",series=\"{i}\""
    );
}

/// About `target_bytes` of Istio-shaped Prometheus text; the same bytes for the same size.
pub fn synthetic_mesh(target_bytes: usize) -> Vec<u8> {
    let mut out = String::with_capacity(target_bytes + 64 * 1024);
    // Series per family so the three families together reach the target size.
    let mut lbl = String::new();
    labels(&mut lbl, 0);
    let per_series = (lbl.len() + 60) * (1 + BOUNDS.len() + 2) * 2 + (lbl.len() + 40);
    let series = (target_bytes / per_series).max(1);
    out.push_str(
        "# HELP istio_requests_total Total requests.\n# TYPE istio_requests_total counter\n",
    );
    for i in 0..series {
        lbl.clear();
        labels(&mut lbl, i);
        let _ = writeln!(
            out,
            "istio_requests_total{{{lbl}}} {}",
            (i * 7919) % 100_000
        );
    }
    for (name, scale) in [
        ("istio_request_duration_milliseconds", 13usize),
        ("istio_request_bytes", 101),
    ] {
        let _ = write!(out, "# HELP {name} {name}\n# TYPE {name} histogram\n");
        for i in 0..series {
            lbl.clear();
            labels(&mut lbl, i);
            let mut cum = 0usize;
            for (b, bound) in BOUNDS.iter().enumerate() {
                cum += (i * scale + b * 31) % 17;
                let _ = writeln!(out, "{name}_bucket{{{lbl},le=\"{bound}\"}} {cum}");
            }
            let _ = writeln!(out, "{name}_sum{{{lbl}}} {}.{}", cum * scale, i % 1000);
            let _ = writeln!(out, "{name}_count{{{lbl}}} {cum}");
        }
    }
    out.into_bytes()
}
