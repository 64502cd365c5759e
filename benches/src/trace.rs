//! A deterministic Envoy/Istio-shaped trace payload for the meshmon-trace benchmarks: the
//! Bookinfo call graph (ingress → productpage → details / reviews → ratings) as Envoy's
//! Datadog tracer reports it, each span an `envoy.proxy` span with the 28 tags Envoy and
//! Istio set (`upstream_cluster`, `istio.*`, `response_flags`, …) plus four metrics.

use meshmon_trace::{Metrics, Span};

/// Xorshift64*: a tiny deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// (caller service, callee service, callee host, route)
const HOPS: [(&str, &str, &str); 5] = [
    (
        "istio-ingressgateway.istio-system",
        "productpage.bookinfo",
        "/productpage",
    ),
    ("productpage.bookinfo", "details.bookinfo", "/details/0"),
    ("productpage.bookinfo", "reviews.bookinfo", "/reviews/0"),
    ("reviews.bookinfo", "ratings.bookinfo", "/ratings/0"),
    ("productpage.bookinfo", "reviews.bookinfo", "/reviews/1"),
];

#[allow(clippy::too_many_arguments)]
fn envoy_span(
    rng: &mut Rng,
    trace_id: u64,
    tid_hi: &str,
    span_id: u64,
    parent_id: u64,
    service: &str,
    peer: &str,
    route: &str,
    server: bool,
    start: i64,
    err: bool,
) -> Span<'static> {
    let ns = service.split('.').nth(1).unwrap_or("default").to_string();
    let canonical = service.split('.').next().unwrap_or(service).to_string();
    let status = if err { "503" } else { "200" };
    let mut s = Span {
        service: service.to_string().into(),
        name: "envoy.proxy".into(),
        resource: format!("{peer}.svc.cluster.local:9080{route}").into(),
        trace_id,
        span_id,
        parent_id,
        start,
        duration: 200_000 + (rng.next() % 20_000_000) as i64,
        error: i32::from(err),
        r#type: "web".into(),
        ..Span::default()
    };
    let ip = format!("10.0.{}.{}", rng.next() % 8, rng.next() % 250);
    let meta: [(&str, String); 28] = [
        ("component", "proxy".into()),
        (
            "node_id",
            format!(
                "sidecar~{ip}~{canonical}-v1-{:05x}.{ns}~{ns}.svc.cluster.local",
                rng.next() % 0xfffff
            ),
        ),
        ("zone", "us-east1-b".into()),
        (
            "guid:x-request-id",
            format!(
                "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
                rng.next() as u32,
                rng.next() as u16,
                rng.next() % 0xfff,
                rng.next() % 0xfff,
                rng.next() % 0xffff_ffff_ffff
            ),
        ),
        ("http.url", format!("http://{peer}:9080{route}")),
        ("http.method", "GET".into()),
        ("http.protocol", "HTTP/1.1".into()),
        ("downstream_cluster", "-".into()),
        ("user_agent", "Mozilla/5.0 (X11; Linux x86_64)".into()),
        ("peer.address", format!("{ip}:9080")),
        ("request_size", "0".into()),
        ("response_size", (rng.next() % 5000).to_string()),
        ("response_flags", if err { "UF".into() } else { "-".into() }),
        (
            "upstream_cluster",
            if server {
                "inbound|9080||".into()
            } else {
                format!("outbound|9080||{peer}.svc.cluster.local")
            },
        ),
        (
            "upstream_cluster.name",
            if server {
                "inbound|9080||".into()
            } else {
                format!("outbound|9080||{peer}.svc.cluster.local")
            },
        ),
        ("http.status_code", status.into()),
        ("istio.canonical_revision", "v1".into()),
        ("istio.canonical_service", canonical.clone()),
        ("istio.mesh_id", "cluster.local".into()),
        ("istio.namespace", ns.clone()),
        ("istio.cluster_id", "Kubernetes".into()),
        (
            "span.kind",
            if server {
                "server".into()
            } else {
                "client".into()
            },
        ),
        ("env", "prod".into()),
        ("version", "1.24.0".into()),
        ("_dd.p.dm", "-0".into()),
        ("_dd.p.tid", tid_hi.to_string()),
        ("language", "cpp".into()),
        ("peer.service", peer.to_string()),
    ];
    s.meta = meta.into_iter().collect();
    s.metrics = Metrics::from(vec![
        ("_dd.top_level".into(), 1.0),
        ("_dd.measured".into(), 1.0),
        ("_sampling_priority_v1".into(), 1.0),
        ("_dd.agent_psr".into(), 1.0),
    ]);
    s
}

/// About `spans` Envoy spans in traces of 10 (a client and a server span per hop), with
/// one trace in 50 failing at the ratings hop.
pub fn envoy_traces(spans: usize, seed: u64) -> Vec<Vec<Span<'static>>> {
    let mut rng = Rng(seed | 1);
    let mut traces = Vec::with_capacity(spans / 10 + 1);
    let base = 1_795_341_478_000_000_000i64;
    let mut made = 0;
    let mut t = 0i64;
    while made < spans {
        let trace_id = rng.next();
        let tid_hi = format!("{:08x}00000000", 0x6b02_bca6u32 + (t / 1000) as u32);
        let err = t % 50 == 49;
        let mut chunk = Vec::with_capacity(10);
        let mut parent_of: Vec<(&str, u64)> = Vec::new();
        let start = base + t * 1_000_000;
        for (i, (caller, callee, route)) in HOPS.iter().enumerate() {
            let parent = parent_of
                .iter()
                .rev()
                .find(|(svc, _)| svc == caller)
                .map_or(0, |(_, id)| *id);
            let client_id = rng.next() | 1;
            let server_id = rng.next() | 1;
            let fail = err && i == 3;
            if parent == 0 && i == 0 {
                // The ingress gateway's client span is the root.
                chunk.push(envoy_span(
                    &mut rng, trace_id, &tid_hi, client_id, 0, caller, callee, route, false, start,
                    fail,
                ));
            } else {
                chunk.push(envoy_span(
                    &mut rng,
                    trace_id,
                    &tid_hi,
                    client_id,
                    parent,
                    caller,
                    callee,
                    route,
                    false,
                    start + i as i64 * 1000,
                    fail,
                ));
            }
            chunk.push(envoy_span(
                &mut rng,
                trace_id,
                &tid_hi,
                server_id,
                client_id,
                callee,
                callee,
                route,
                true,
                start + i as i64 * 1000 + 100,
                fail,
            ));
            parent_of.push((callee, server_id));
        }
        made += chunk.len();
        traces.push(chunk);
        t += 1;
    }
    traces
}
