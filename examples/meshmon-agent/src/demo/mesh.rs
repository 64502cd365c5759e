//! The simulated Bookinfo mesh: its pods (each on its own loopback address, as each pod
//! has its own IP), and what each pod's sidecar reports on its Prometheus endpoint.
//!
//! The metric shapes are Istio's sidecar telemetry as the real 1.5 scrape in
//! `../shared/data/istio-fixtures/1.5/istio-proxy.txt` shows it (Datadog's `istio` check
//! fixture): `istio_requests_total`, the `istio_request_duration_milliseconds`,
//! `istio_request_bytes` and `istio_response_bytes` histograms with the same label set
//! and bucket bounds, the `istio_tcp_*` counters, and a few `envoy_*` series.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use super::rng::Rng;

/// Bookinfo's namespace (the seed's service map shows `productpage` in `default`).
pub const NAMESPACE: &str = "default";

/// One simulated pod.
#[derive(Clone, Debug)]
pub struct Pod {
    /// Pod name (`reviews-v3-<replicaset hash>-<suffix>`).
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// `app` label (`reviews`).
    pub app: String,
    /// `version` label (`v3`).
    pub version: String,
    /// Pod UID.
    pub uid: String,
    /// Its address (a loopback address of its own).
    pub ip: Ipv4Addr,
    /// The application container (`None` for the gateway, whose only container is the
    /// proxy, and istiod).
    pub app_container: Option<&'static str>,
    /// Datadog `source` of the application's logs.
    pub app_source: &'static str,
    /// Whether it has a sidecar serving Istio metrics.
    pub sidecar: bool,
}

impl Pod {
    /// The workload (Deployment) name: `reviews-v3`.
    pub fn workload(&self) -> String {
        if self.version.is_empty() {
            self.app.clone()
        } else {
            format!("{}-{}", self.app, self.version)
        }
    }

    /// The APM service name Istio's Datadog tracer gives the pod's spans: the `app` label
    /// and the namespace (Datadog's Istio docs: "generated from the deployment name and
    /// namespace … set manually by adding an `app` label").
    pub fn service(&self) -> String {
        format!("{}.{}", self.app, self.namespace)
    }

    /// The Kubernetes Service host the pod backs.
    pub fn host(&self) -> String {
        format!("{}.{}.svc.cluster.local", self.app, self.namespace)
    }

    /// Envoy's `node_id` (`sidecar~IP~pod.ns~ns.svc.cluster.local`; `router~` for gateways).
    pub fn node_id(&self) -> String {
        let kind = if self.app_container.is_none() {
            "router"
        } else {
            "sidecar"
        };
        format!(
            "{kind}~{}~{}.{}~{}.svc.cluster.local",
            self.ip, self.name, self.namespace, self.namespace
        )
    }

    /// SPIFFE principal of the pod's service account (mTLS).
    pub fn principal(&self) -> String {
        format!(
            "spiffe://cluster.local/ns/{}/sa/bookinfo-{}",
            self.namespace, self.app
        )
    }
}

/// Which pod is which, by index in [`Topology::pods`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// `istio-ingressgateway`.
    Gateway,
    /// `productpage-v1`.
    Productpage,
    /// `details-v1`.
    Details,
    /// `reviews-v1`.
    ReviewsV1,
    /// `reviews-v2`.
    ReviewsV2,
    /// `reviews-v3` (the one that fails).
    ReviewsV3,
    /// `ratings-v1`.
    Ratings,
    /// `istiod` (logs only).
    Istiod,
}

/// Every role, in [`Topology::pods`] order.
pub const ROLES: [Role; 8] = [
    Role::Gateway,
    Role::Productpage,
    Role::Details,
    Role::ReviewsV1,
    Role::ReviewsV2,
    Role::ReviewsV3,
    Role::Ratings,
    Role::Istiod,
];

/// The mesh's pods.
#[derive(Clone, Debug)]
pub struct Topology {
    /// Pods, in [`ROLES`] order.
    pub pods: Vec<Pod>,
    /// The port every sidecar serves its metrics on.
    pub metrics_port: u16,
}

/// (namespace, app, version, app container, app log source, has a sidecar).
type PodSpec = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    &'static str,
    bool,
);

fn hash_suffix(rng: &mut Rng) -> (String, String) {
    let h = format!("{:010x}", rng.next_u64() & 0xff_ffff_ffff);
    (h, rng.alnum(5))
}

impl Topology {
    /// The Bookinfo pods on `base.0.base.1.base.2.(first..)`, names drawn from `rng`.
    pub fn bookinfo(rng: &mut Rng, base: [u8; 3], first: u8, metrics_port: u16) -> Topology {
        let spec: [PodSpec; 8] = [
            (
                "istio-system",
                "istio-ingressgateway",
                "",
                None,
                "envoy",
                true,
            ),
            (
                NAMESPACE,
                "productpage",
                "v1",
                Some("productpage"),
                "python",
                true,
            ),
            (NAMESPACE, "details", "v1", Some("details"), "ruby", true),
            (NAMESPACE, "reviews", "v1", Some("reviews"), "java", true),
            (NAMESPACE, "reviews", "v2", Some("reviews"), "java", true),
            (NAMESPACE, "reviews", "v3", Some("reviews"), "java", true),
            (NAMESPACE, "ratings", "v1", Some("ratings"), "nodejs", true),
            (
                "istio-system",
                "istiod",
                "",
                Some("discovery"),
                "istio",
                false,
            ),
        ];
        let pods = spec
            .iter()
            .enumerate()
            .map(|(i, (ns, app, version, container, source, sidecar))| {
                let (h, s) = hash_suffix(rng);
                let workload = if version.is_empty() {
                    (*app).to_owned()
                } else {
                    format!("{app}-{version}")
                };
                Pod {
                    name: format!("{workload}-{h}-{s}"),
                    namespace: (*ns).to_owned(),
                    app: (*app).to_owned(),
                    version: (*version).to_owned(),
                    uid: rng.uuid(),
                    ip: Ipv4Addr::new(base[0], base[1], base[2], first + i as u8),
                    app_container: *container,
                    app_source: source,
                    sidecar: *sidecar,
                }
            })
            .collect();
        Topology { pods, metrics_port }
    }

    /// The pod of `role`.
    #[cfg(test)]
    pub fn pod(&self, role: Role) -> &Pod {
        &self.pods[role as usize]
    }
}

/// Bucket bounds of Istio's request duration (ms) and size (bytes) histograms, as the
/// fixture has them.
pub const BUCKETS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

/// A cumulative Prometheus histogram.
#[derive(Clone, Debug, Default)]
pub struct Histogram {
    counts: [u64; 20],
    sum: f64,
    count: u64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&mut self, v: f64) {
        let i = BUCKETS
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(BUCKETS.len());
        self.counts[i] += 1;
        self.sum += v;
        self.count += 1;
    }
}

/// The label values of one Istio request series (the fixture's label set, in its order).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RequestKey {
    /// `response_code`.
    pub code: u16,
    /// `reporter`: `source` (the caller's sidecar) or `destination` (the callee's).
    pub reporter: &'static str,
    /// Caller pod index.
    pub src: usize,
    /// Callee pod index.
    pub dst: usize,
    /// `response_flags` (`-`, `UF`, …).
    pub flags: &'static str,
}

/// One pod's sidecar counters.
#[derive(Clone, Debug, Default)]
pub struct SidecarStats {
    requests: BTreeMap<RequestKey, (u64, Histogram, Histogram, Histogram)>,
    tcp: BTreeMap<(usize, &'static str), [u64; 4]>,
    upstream_rq: BTreeMap<(String, &'static str), u64>,
}

/// What one hop (a request from `src` to `dst`) did, as both sidecars count it.
#[derive(Clone, Debug)]
pub struct HopObs {
    /// Caller pod index.
    pub src: usize,
    /// Callee pod index.
    pub dst: usize,
    /// Status code.
    pub code: u16,
    /// Response flags.
    pub flags: &'static str,
    /// Duration in ms.
    pub ms: f64,
    /// Request bytes.
    pub req_bytes: u64,
    /// Response bytes.
    pub resp_bytes: u64,
}

/// Every sidecar's counters, by pod index.
#[derive(Clone, Debug, Default)]
pub struct MeshStats {
    /// Per pod.
    pub pods: Vec<SidecarStats>,
}

impl MeshStats {
    /// Counters for `n` pods.
    pub fn new(n: usize) -> Self {
        MeshStats {
            pods: vec![SidecarStats::default(); n],
        }
    }

    /// Counts one hop: the caller's sidecar reports `source`, the callee's `destination`.
    pub fn record(&mut self, topo: &Topology, h: &HopObs) {
        for (pod, reporter) in [(h.src, "source"), (h.dst, "destination")] {
            let Some(s) = self.pods.get_mut(pod) else {
                continue;
            };
            let e = s
                .requests
                .entry(RequestKey {
                    code: h.code,
                    reporter,
                    src: h.src,
                    dst: h.dst,
                    flags: h.flags,
                })
                .or_default();
            e.0 += 1;
            e.1.observe(h.ms);
            e.2.observe(h.req_bytes as f64);
            e.3.observe(h.resp_bytes as f64);
            if reporter == "source" {
                let cluster = format!(
                    "outbound|9080||{}",
                    topo.pods.get(h.dst).map(Pod::host).unwrap_or_default()
                );
                let class = match h.code {
                    200..=299 => "2xx",
                    400..=499 => "4xx",
                    500.. => "5xx",
                    _ => "1xx",
                };
                *s.upstream_rq.entry((cluster, class)).or_default() += 1;
            }
        }
    }

    /// Counts TCP traffic of pod `src` to an out-of-mesh peer `peer` (ratings' database).
    pub fn record_tcp(
        &mut self,
        src: usize,
        peer: &'static str,
        opened: bool,
        sent: u64,
        recv: u64,
    ) {
        if let Some(s) = self.pods.get_mut(src) {
            let e = s.tcp.entry((src, peer)).or_default();
            if opened {
                e[0] += 1;
                e[1] += 1;
            }
            e[2] += sent;
            e[3] += recv;
        }
    }

    /// Pod `pod`'s Prometheus text (format 0.0.4), as its sidecar would serve it.
    pub fn render(&self, topo: &Topology, pod: usize, uptime_s: u64) -> String {
        let mut out = String::with_capacity(64 << 10);
        let Some(s) = self.pods.get(pod) else {
            return out;
        };
        let labels = |k: &RequestKey| -> String {
            let (src, dst) = (&topo.pods[k.src], &topo.pods[k.dst]);
            let mtls = if k.reporter == "destination" {
                "mutual_tls"
            } else {
                "unknown"
            };
            let v = |p: &Pod| {
                if p.version.is_empty() {
                    "unknown".to_owned()
                } else {
                    p.version.clone()
                }
            };
            let rev = |p: &Pod| {
                if p.version.is_empty() {
                    "latest".to_owned()
                } else {
                    p.version.clone()
                }
            };
            format!(
                "response_code=\"{}\",reporter=\"{}\",source_workload=\"{}\",source_workload_namespace=\"{}\",source_principal=\"{}\",source_app=\"{}\",source_version=\"{}\",destination_workload=\"{}\",destination_workload_namespace=\"{}\",destination_principal=\"{}\",destination_app=\"{}\",destination_version=\"{}\",destination_service=\"{}\",destination_service_name=\"{}\",destination_service_namespace=\"{}\",request_protocol=\"http\",response_flags=\"{}\",grpc_response_status=\"\",connection_security_policy=\"{mtls}\",source_canonical_service=\"{}\",destination_canonical_service=\"{}\",source_canonical_revision=\"{}\",destination_canonical_revision=\"{}\"",
                k.code,
                k.reporter,
                src.workload(),
                src.namespace,
                src.principal(),
                src.app,
                v(src),
                dst.workload(),
                dst.namespace,
                dst.principal(),
                dst.app,
                v(dst),
                dst.host(),
                dst.app,
                dst.namespace,
                k.flags,
                src.app,
                dst.app,
                rev(src),
                rev(dst),
            )
        };
        out.push_str("# TYPE istio_requests_total counter\n");
        for (k, (n, ..)) in &s.requests {
            let _ = writeln!(out, "istio_requests_total{{{}}} {n}", labels(k));
        }
        for (i, name) in [
            (1, "istio_request_duration_milliseconds"),
            (2, "istio_request_bytes"),
            (3, "istio_response_bytes"),
        ] {
            let _ = writeln!(out, "# TYPE {name} histogram");
            for (k, e) in &s.requests {
                let h = match i {
                    1 => &e.1,
                    2 => &e.2,
                    _ => &e.3,
                };
                let l = labels(k);
                let mut cum = 0;
                for (b, c) in BUCKETS.iter().zip(h.counts.iter()) {
                    cum += c;
                    let _ = writeln!(out, "{name}_bucket{{{l},le=\"{b}\"}} {cum}");
                }
                let _ = writeln!(out, "{name}_bucket{{{l},le=\"+Inf\"}} {}", h.count);
                let _ = writeln!(out, "{name}_sum{{{l}}} {}", h.sum);
                let _ = writeln!(out, "{name}_count{{{l}}} {}", h.count);
            }
        }
        for (i, name) in [
            (0, "istio_tcp_connections_opened_total"),
            (1, "istio_tcp_connections_closed_total"),
            (2, "istio_tcp_sent_bytes_total"),
            (3, "istio_tcp_received_bytes_total"),
        ] {
            let _ = writeln!(out, "# TYPE {name} counter");
            for ((src, peer), v) in &s.tcp {
                let p = &topo.pods[*src];
                let _ = writeln!(
                    out,
                    "{name}{{reporter=\"source\",source_workload=\"{}\",source_workload_namespace=\"{}\",source_principal=\"{}\",source_app=\"{}\",source_version=\"{}\",destination_workload=\"unknown\",destination_workload_namespace=\"unknown\",destination_principal=\"unknown\",destination_app=\"unknown\",destination_version=\"unknown\",destination_service=\"{peer}\",destination_service_name=\"{peer}\",destination_service_namespace=\"{}\",request_protocol=\"tcp\",response_flags=\"-\",connection_security_policy=\"unknown\",source_canonical_service=\"{}\",destination_canonical_service=\"unknown\",source_canonical_revision=\"{}\",destination_canonical_revision=\"latest\"}} {}",
                    p.workload(),
                    p.namespace,
                    p.principal(),
                    p.app,
                    p.version,
                    p.namespace,
                    p.app,
                    p.version,
                    v[i]
                );
            }
        }
        out.push_str("# TYPE envoy_cluster_upstream_rq counter\n");
        for ((cluster, class), n) in &s.upstream_rq {
            let _ = writeln!(
                out,
                "envoy_cluster_upstream_rq{{response_code_class=\"{class}\",cluster_name=\"{cluster}\"}} {n}"
            );
        }
        let _ = write!(
            out,
            "# TYPE envoy_server_live gauge\nenvoy_server_live{{}} 1\n# TYPE envoy_server_uptime gauge\nenvoy_server_uptime{{}} {uptime_s}\n# TYPE envoy_server_concurrency gauge\nenvoy_server_concurrency{{}} 2\n"
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topo() -> Topology {
        Topology::bookinfo(&mut Rng::new(3), [127, 0, 10], 11, 15090)
    }

    #[test]
    fn pods_are_named_as_deployments_name_them() {
        let t = topo();
        let r3 = t.pod(Role::ReviewsV3);
        let parts: Vec<&str> = r3.name.rsplitn(3, '-').collect();
        assert_eq!(parts[2], "reviews-v3");
        assert_eq!(parts[1].len(), 10);
        assert_eq!(parts[0].len(), 5);
        assert_eq!(r3.service(), "reviews.default");
        assert_eq!(r3.ip, Ipv4Addr::new(127, 0, 10, 16));
        assert_eq!(
            t.pod(Role::Gateway).service(),
            "istio-ingressgateway.istio-system"
        );
    }

    #[test]
    fn counters_advance_and_histograms_are_cumulative() {
        let t = topo();
        let mut m = MeshStats::new(t.pods.len());
        let (pp, rv) = (Role::Productpage as usize, Role::ReviewsV3 as usize);
        for ms in [3.0, 40.0, 700.0] {
            m.record(
                &t,
                &HopObs {
                    src: pp,
                    dst: rv,
                    code: 200,
                    flags: "-",
                    ms,
                    req_bytes: 0,
                    resp_bytes: 300,
                },
            );
        }
        let text = m.render(&t, rv, 10);
        let line = text
            .lines()
            .find(|l| {
                l.starts_with("istio_requests_total{") && l.contains("reporter=\"destination\"")
            })
            .unwrap();
        assert!(line.ends_with(" 3"), "{line}");
        assert!(
            line.contains("destination_workload=\"reviews-v3\""),
            "{line}"
        );
        let b = |le: &str| -> u64 {
            text.lines()
                .find(|l| {
                    l.starts_with("istio_request_duration_milliseconds_bucket{")
                        && l.contains(&format!("le=\"{le}\""))
                })
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse().ok())
                .unwrap()
        };
        assert_eq!((b("5"), b("50"), b("1000"), b("+Inf")), (1, 2, 3, 3));
        // The caller's sidecar reports `source`, and its upstream cluster.
        let src = m.render(&t, pp, 10);
        assert!(src.contains("reporter=\"source\""));
        assert!(src.contains(
            "envoy_cluster_upstream_rq{response_code_class=\"2xx\",cluster_name=\"outbound|9080||reviews.default.svc.cluster.local\"} 3"
        ));
    }

    /// The rendered series carry exactly the label names of the real 1.5 sidecar scrape,
    /// and its bucket bounds.
    #[test]
    fn shapes_match_the_istio_fixture() {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/data/istio-fixtures/1.5/istio-proxy.txt");
        let Ok(fixture) = std::fs::read_to_string(&p) else {
            assert!(
                std::env::var("MESHMON_REQUIRE_CORPUS").as_deref() != Ok("1"),
                "corpus {} is missing and MESHMON_REQUIRE_CORPUS=1",
                p.display()
            );
            eprintln!("SKIPPED: corpus {} not found", p.display());
            return;
        };
        let names = |text: &str, metric: &str| -> Vec<String> {
            let l = text
                .lines()
                .find(|l| l.starts_with(&format!("{metric}{{")))
                .unwrap_or_default();
            let inner = l.split_once('{').map(|x| x.1).unwrap_or("");
            let inner = inner.rsplit_once('}').map(|x| x.0).unwrap_or("");
            inner
                .split("\",")
                .filter_map(|kv| kv.split_once('=').map(|x| x.0.to_owned()))
                .collect()
        };
        let t = topo();
        let mut m = MeshStats::new(t.pods.len());
        m.record(
            &t,
            &HopObs {
                src: 1,
                dst: 2,
                code: 200,
                flags: "-",
                ms: 3.0,
                req_bytes: 0,
                resp_bytes: 178,
            },
        );
        m.record_tcp(
            Role::Ratings as usize,
            "mongodb.default.svc.cluster.local",
            true,
            10,
            20,
        );
        let ours = m.render(&t, 1, 1) + &m.render(&t, Role::Ratings as usize, 1);
        for metric in [
            "istio_requests_total",
            "istio_request_duration_milliseconds_bucket",
            "istio_request_bytes_sum",
            "istio_response_bytes_count",
            "istio_tcp_sent_bytes_total",
        ] {
            assert_eq!(names(&ours, metric), names(&fixture, metric), "{metric}");
        }
        let les = |text: &str| -> Vec<String> {
            let first = text
                .lines()
                .find(|l| l.starts_with("istio_request_duration_milliseconds_bucket{"))
                .unwrap_or_default()
                .split(",le=")
                .next()
                .unwrap_or_default()
                .to_owned();
            text.lines()
                .filter(|l| l.starts_with(&first) && l.contains(",le=\""))
                .filter_map(|l| {
                    l.split(",le=\"")
                        .nth(1)?
                        .split('"')
                        .next()
                        .map(str::to_owned)
                })
                .collect()
        };
        assert_eq!(les(&ours), les(&fixture));
    }
}
