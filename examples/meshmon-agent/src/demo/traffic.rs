//! The traffic generator: one simulated request through Bookinfo becomes what the mesh
//! would emit for it — Envoy spans (as Istio's `tracer=datadog` builds them), Envoy access
//! log lines in Istio's default format, application log lines, and the hops both sidecars
//! count in their Istio metrics.
//!
//! The call graph is Bookinfo's: `istio-ingressgateway → productpage → details` and
//! `productpage → reviews (v1, v2, v3 round robin) → ratings` (v2 and v3 only). Every hop
//! gives a client span on the caller's sidecar and a server span on the callee's, the
//! server span the child of the client span (the applications forward the trace headers).
//! `pilot.traceSampling` is applied at the gateway, where Envoy makes the decision for the
//! whole request: an unsampled request still logs and counts, it sends no span.

use std::borrow::Cow;

use meshmon_trace::{Meta, Metrics, OwnedSpan, Span};

use super::mesh::{HopObs, Pod, Role, Topology};
use super::rng::Rng;

/// One thing the mesh emits, due when the request that made it ends.
#[derive(Clone, Debug)]
pub enum Emit {
    /// A span, sent by pod `pod`'s proxy.
    Span {
        /// Index of the pod whose proxy reports it.
        pod: usize,
        /// The span.
        span: Box<OwnedSpan>,
    },
    /// A log line written by a container of pod `pod`.
    Line {
        /// Pod index.
        pod: usize,
        /// `true` for the `istio-proxy` container, else the application's.
        proxy: bool,
        /// `true` for stderr.
        stderr: bool,
        /// The message (one line).
        text: String,
    },
    /// A hop for the sidecars' counters.
    Hop(HopObs),
    /// TCP traffic of a pod to its database.
    Tcp {
        /// Pod index.
        pod: usize,
        /// Bytes sent.
        sent: u64,
        /// Bytes received.
        recv: u64,
    },
}

/// The fault's effect on one request to reviews-v3.
#[derive(Clone, Copy, Debug, PartialEq)]
enum FaultKind {
    /// The app does not accept connections: the sidecar answers 503 `UF`.
    ConnectFailure,
    /// The app is slow and throws: 500 after a long wait, an error in its log.
    AppError,
    /// The app is slow but answers.
    Slow,
}

/// The simulator.
#[derive(Debug)]
pub struct Sim {
    /// The pods.
    pub topo: Topology,
    rng: Rng,
    next_reviews: usize,
    /// `pilot.traceSampling`, a percentage.
    pub trace_sampling: f64,
    /// Requests simulated.
    pub requests: u64,
    /// Requests sampled for tracing.
    pub sampled: u64,
    ports: u16,
}

/// The trace context of one request.
struct Ctx {
    trace_id: u64,
    request_id: String,
    user_agent: &'static str,
    sampled: bool,
    fault: bool,
}

const USER_AGENTS: [&str; 3] = [
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "curl/8.5.0",
    "python-requests/2.32.3",
];

/// `[%START_TIME%]` as Envoy prints it: RFC 3339, milliseconds, UTC.
pub fn envoy_time(ns: i64) -> String {
    let t = meshmon_core::Timestamp::from_nanos(ns);
    crate::demo::rfc3339_ms(t)
}

impl Sim {
    /// A simulator over `topo`.
    pub fn new(topo: Topology, seed: u64, trace_sampling: f64) -> Self {
        Sim {
            topo,
            rng: Rng::new(seed),
            next_reviews: 0,
            trace_sampling,
            requests: 0,
            sampled: 0,
            ports: 40_000,
        }
    }

    fn port(&mut self) -> u16 {
        self.ports = if self.ports >= 60_999 {
            40_000
        } else {
            self.ports + 1
        };
        self.ports
    }

    /// Simulates one user request to `/productpage` starting at `start` (ns since the
    /// epoch); what it emits goes to `out` as `(due time in ns, item)`.
    pub fn request(&mut self, start: i64, fault: bool, out: &mut Vec<(i64, Emit)>) {
        self.requests += 1;
        let sampled = self.rng.f64() * 100.0 < self.trace_sampling;
        if sampled {
            self.sampled += 1;
        }
        let ua = USER_AGENTS[(self.rng.next_u64() % 3) as usize];
        let ctx = Ctx {
            trace_id: self.rng.id(),
            request_id: self.rng.uuid(),
            user_agent: ua,
            sampled,
            fault,
        };
        let product = self.rng.next_u64() % 4;
        let path = "/productpage".to_owned();
        let _ = self.hop(
            out,
            &ctx,
            (Role::Gateway as usize, Role::Productpage as usize),
            start,
            0,
            &path,
            fault,
            product,
        );
    }

    /// One call `src → dst` for `path`, starting at `start`; returns (duration ns, code).
    #[allow(clippy::too_many_arguments)]
    fn hop(
        &mut self,
        out: &mut Vec<(i64, Emit)>,
        ctx: &Ctx,
        (src, dst): (usize, usize),
        start: i64,
        parent: u64,
        path: &str,
        fault: bool,
        product: u64,
    ) -> (i64, u16) {
        let client_id = self.rng.id();
        let server_id = self.rng.id();
        // Network and the two proxies.
        let net = (self.rng.range(0.15, 0.6) * 1e6) as i64;
        let server_start = start + net;
        let fault_kind = (fault && dst == Role::ReviewsV3 as usize).then(|| {
            let x = self.rng.f64();
            if x < 0.25 {
                FaultKind::ConnectFailure
            } else if x < 0.85 {
                FaultKind::AppError
            } else {
                FaultKind::Slow
            }
        });
        let app_start = server_start + (self.rng.range(0.1, 0.4) * 1e6) as i64;
        let (app_ns, code, flags, details, resp_bytes) = match fault_kind {
            Some(FaultKind::ConnectFailure) => {
                let d = (self.rng.range(0.5, 3.0) * 1e6) as i64;
                (
                    d,
                    503,
                    "UF",
                    "upstream_reset_before_response_started{connection_failure}",
                    91,
                )
            }
            _ => {
                let (ns, code, bytes) =
                    self.app(out, ctx, dst, app_start, server_id, fault_kind, product);
                (ns, code, "-", "via_upstream", bytes)
            }
        };
        let server_ns =
            (app_start - server_start) + app_ns + (self.rng.range(0.05, 0.3) * 1e6) as i64;
        let client_ns = net + server_ns + (self.rng.range(0.1, 0.4) * 1e6) as i64;
        let end = start + client_ns;
        let req_bytes = 0u64;
        out.push((
            end,
            Emit::Hop(HopObs {
                src,
                dst,
                code,
                flags,
                ms: client_ns as f64 / 1e6,
                req_bytes,
                resp_bytes,
            }),
        ));
        let (sp, dp) = (self.topo.pods[src].clone(), self.topo.pods[dst].clone());
        let src_port = self.port();
        // The callee's sidecar: inbound access log (and its own counters, by `flags`).
        let inbound_upstream_ms = (flags != "UF").then_some(app_ns / 1_000_000);
        out.push((
            start + net + server_ns,
            Emit::Line {
                pod: dst,
                proxy: true,
                stderr: false,
                text: access_line(&AccessLine {
                    start: server_start,
                    path,
                    code,
                    flags,
                    details,
                    bytes_in: req_bytes,
                    bytes_out: resp_bytes,
                    duration_ms: server_ns / 1_000_000,
                    upstream_ms: inbound_upstream_ms,
                    xff: if src == Role::Gateway as usize {
                        "10.244.0.1"
                    } else {
                        "-"
                    },
                    ua: ctx.user_agent,
                    request_id: &ctx.request_id,
                    authority: &format!("{}:9080", dp.app),
                    upstream_host: &format!("{}:9080", dp.ip),
                    upstream_cluster: "inbound|9080||",
                    upstream_local: &format!("127.0.0.6:{}", self.port()),
                    downstream_local: &format!("{}:9080", dp.ip),
                    downstream_remote: &format!("{}:{src_port}", sp.ip),
                    sni: &format!("outbound_.9080_._.{}", dp.host()),
                    route: "default",
                }),
            },
        ));
        // The caller's sidecar: outbound access log.
        let cluster = format!("outbound|9080||{}", dp.host());
        out.push((
            end,
            Emit::Line {
                pod: src,
                proxy: true,
                stderr: false,
                text: access_line(&AccessLine {
                    start,
                    path,
                    code,
                    flags: "-",
                    details: "via_upstream",
                    bytes_in: req_bytes,
                    bytes_out: resp_bytes,
                    duration_ms: client_ns / 1_000_000,
                    upstream_ms: Some(server_ns / 1_000_000),
                    xff: if src == Role::Gateway as usize {
                        "10.244.0.1"
                    } else {
                        "-"
                    },
                    ua: ctx.user_agent,
                    request_id: &ctx.request_id,
                    authority: &format!("{}:9080", dp.app),
                    upstream_host: &format!("{}:9080", dp.ip),
                    upstream_cluster: &cluster,
                    upstream_local: &format!("{}:{src_port}", sp.ip),
                    downstream_local: &format!("10.96.{}.{}:9080", 10 + dst, 20 + dst),
                    downstream_remote: &format!("{}:{}", sp.ip, self.port()),
                    sni: "-",
                    route: "default",
                }),
            },
        ));
        if ctx.sampled {
            let mut client = envoy_span(ctx, &sp, client_id, parent, start, client_ns, code, "-");
            client.resource = Cow::Owned(format!("{}:9080/*", dp.host()));
            client.r#type = Cow::Borrowed("http");
            let m = client.meta.to_mut();
            m.push((
                "http.url".into(),
                format!("http://{}:9080{path}", dp.app).into(),
            ));
            m.push(("span.kind".into(), "client".into()));
            m.push(("upstream_cluster".into(), cluster.clone().into()));
            m.push(("upstream_cluster.name".into(), dp.host().into()));
            m.push(("peer.address".into(), format!("{}:9080", dp.ip).into()));
            if parent == 0 {
                client.set_metric("_sampling_priority_v1", 1.0);
            }
            out.push((
                end,
                Emit::Span {
                    pod: src,
                    span: Box::new(client),
                },
            ));
            let mut server = envoy_span(
                ctx,
                &dp,
                server_id,
                client_id,
                server_start,
                server_ns,
                code,
                flags,
            );
            server.resource = Cow::Owned(format!("{}:9080{path}", dp.host()));
            server.r#type = Cow::Borrowed("web");
            let m = server.meta.to_mut();
            m.push((
                "http.url".into(),
                format!("http://{}:9080{path}", dp.app).into(),
            ));
            m.push(("span.kind".into(), "server".into()));
            m.push(("upstream_cluster".into(), "inbound|9080||".into()));
            m.push(("upstream_cluster.name".into(), "inbound".into()));
            m.push((
                "peer.address".into(),
                format!("{}:{src_port}", sp.ip).into(),
            ));
            server.set_metric("_sampling_priority_v1", 1.0);
            out.push((
                start + net + server_ns,
                Emit::Span {
                    pod: dst,
                    span: Box::new(server),
                },
            ));
        }
        (client_ns, code)
    }

    /// The application behind `pod`'s sidecar, from `start`: (duration ns, code, bytes).
    #[allow(clippy::too_many_arguments)]
    fn app(
        &mut self,
        out: &mut Vec<(i64, Emit)>,
        ctx: &Ctx,
        pod: usize,
        start: i64,
        server_span: u64,
        fault: Option<FaultKind>,
        product: u64,
    ) -> (i64, u16, u64) {
        let ms = |x: f64| (x * 1e6) as i64;
        match self.role(pod) {
            Role::Productpage => {
                let mut t = start + ms(self.rng.latency_ms(2.0, 0.4));
                let (d, _) = self.hop(
                    out,
                    ctx,
                    (pod, Role::Details as usize),
                    t,
                    server_span,
                    &format!("/details/{product}"),
                    ctx.fault,
                    product,
                );
                t += d;
                let reviews = [Role::ReviewsV1, Role::ReviewsV2, Role::ReviewsV3]
                    [self.next_reviews % 3] as usize;
                self.next_reviews += 1;
                let (d, _) = self.hop(
                    out,
                    ctx,
                    (pod, reviews),
                    t,
                    server_span,
                    &format!("/reviews/{product}"),
                    ctx.fault,
                    product,
                );
                t += d + ms(self.rng.latency_ms(6.0, 0.5));
                let end = t;
                out.push((
                    end,
                    Emit::Line {
                        pod,
                        proxy: false,
                        stderr: false,
                        text: format!(
                            "INFO:werkzeug:127.0.0.6 - - [{}] \"GET /productpage HTTP/1.1\" 200 -",
                            clf_time(end)
                        ),
                    },
                ));
                (end - start, 200, 5183 + self.rng.next_u64() % 400)
            }
            Role::Details => {
                let d = ms(self.rng.latency_ms(3.0, 0.35));
                out.push((
                    start + d,
                    Emit::Line {
                        pod,
                        proxy: false,
                        stderr: false,
                        text: format!(
                            "127.0.0.6 - - [{}] \"GET /details/{product} HTTP/1.1\" 200 178",
                            clf_time(start + d)
                        ),
                    },
                ));
                (d, 200, 178)
            }
            r @ (Role::ReviewsV1 | Role::ReviewsV2 | Role::ReviewsV3) => {
                let mut t = start + ms(self.rng.latency_ms(4.0, 0.4));
                if r != Role::ReviewsV1 {
                    let (d, _) = self.hop(
                        out,
                        ctx,
                        (pod, Role::Ratings as usize),
                        t,
                        server_span,
                        &format!("/ratings/{product}"),
                        false,
                        product,
                    );
                    t += d;
                }
                t += ms(self.rng.latency_ms(2.0, 0.4));
                match fault {
                    Some(FaultKind::AppError) => {
                        t += ms(self.rng.range(300.0, 900.0));
                        let waited = (t - start) / 1_000_000;
                        out.push((
                            t,
                            Emit::Line {
                                pod,
                                proxy: false,
                                stderr: true,
                                text: format!(
                                    "[ERROR   ] SRVE0777E: Exception thrown by application class 'application.rest.LibertyRestEndpoint.bookReviewsById:{}': java.lang.OutOfMemoryError: Java heap space (request {} after {waited} ms)",
                                    84 + product,
                                    ctx.request_id
                                ),
                            },
                        ));
                        (t - start, 500, 0)
                    }
                    Some(FaultKind::Slow) => {
                        t += ms(self.rng.range(200.0, 600.0));
                        (t - start, 200, 295)
                    }
                    _ => (t - start, 200, if r == Role::ReviewsV1 { 295 } else { 375 }),
                }
            }
            Role::Ratings => {
                let d = ms(self.rng.latency_ms(1.5, 0.35));
                out.push((
                    start + d,
                    Emit::Tcp {
                        pod,
                        sent: 120,
                        recv: 48,
                    },
                ));
                (d, 200, 48)
            }
            Role::Gateway | Role::Istiod => (ms(1.0), 404, 0),
        }
    }

    fn role(&self, pod: usize) -> Role {
        super::mesh::ROLES.get(pod).copied().unwrap_or(Role::Istiod)
    }
}

/// The tags Envoy's Datadog tracer puts on every span of `pod`'s proxy.
#[allow(clippy::too_many_arguments)]
fn envoy_span(
    ctx: &Ctx,
    pod: &Pod,
    id: u64,
    parent: u64,
    start: i64,
    duration: i64,
    code: u16,
    flags: &str,
) -> OwnedSpan {
    let rev = if pod.version.is_empty() {
        "latest"
    } else {
        pod.version.as_str()
    };
    let meta: Meta<'static> = [
        ("component", "proxy".to_owned()),
        ("node_id", pod.node_id()),
        ("guid:x-request-id", ctx.request_id.clone()),
        ("http.method", "GET".to_owned()),
        ("http.protocol", "HTTP/1.1".to_owned()),
        ("downstream_cluster", "-".to_owned()),
        ("user_agent", ctx.user_agent.to_owned()),
        ("request_size", "0".to_owned()),
        ("response_flags", flags.to_owned()),
        ("http.status_code", code.to_string()),
        ("istio.canonical_revision", rev.to_owned()),
        ("istio.canonical_service", pod.app.clone()),
        ("istio.mesh_id", "cluster.local".to_owned()),
        ("istio.namespace", pod.namespace.clone()),
        ("version", rev.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (Cow::Borrowed(k), Cow::Owned(v)))
    .collect();
    Span {
        service: Cow::Owned(pod.service()),
        name: Cow::Borrowed("envoy.proxy"),
        resource: Cow::Borrowed(""),
        trace_id: ctx.trace_id,
        span_id: id,
        parent_id: parent,
        start,
        duration,
        error: i32::from(code >= 500),
        meta,
        metrics: Metrics::default(),
        ..Span::default()
    }
}

/// The fields of one access log line.
struct AccessLine<'a> {
    start: i64,
    path: &'a str,
    code: u16,
    flags: &'a str,
    details: &'a str,
    bytes_in: u64,
    bytes_out: u64,
    duration_ms: i64,
    upstream_ms: Option<i64>,
    xff: &'a str,
    ua: &'a str,
    request_id: &'a str,
    authority: &'a str,
    upstream_host: &'a str,
    upstream_cluster: &'a str,
    upstream_local: &'a str,
    downstream_local: &'a str,
    downstream_remote: &'a str,
    sni: &'a str,
    route: &'a str,
}

/// Istio's default access log format
/// (<https://istio.io/latest/docs/tasks/observability/logs/access-log/#default-access-log-format>):
///
/// ```text
/// [%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%
/// ```
fn access_line(a: &AccessLine<'_>) -> String {
    let transport = if a.flags == "UF" {
        "delayed_connect_error:_Connection_refused"
    } else {
        "-"
    };
    format!(
        "[{}] \"GET {} HTTP/1.1\" {} {} {} - \"{transport}\" {} {} {} {} \"{}\" \"{}\" \"{}\" \"{}\" \"{}\" {} {} {} {} {} {}",
        envoy_time(a.start),
        a.path,
        a.code,
        a.flags,
        a.details,
        a.bytes_in,
        a.bytes_out,
        a.duration_ms,
        a.upstream_ms
            .map_or_else(|| "-".to_owned(), |v| v.to_string()),
        a.xff,
        a.ua,
        a.request_id,
        a.authority,
        a.upstream_host,
        a.upstream_cluster,
        a.upstream_local,
        a.downstream_local,
        a.downstream_remote,
        a.sni,
        a.route,
    )
}

/// Common Log Format time: `01/Dec/2026:22:30:01 +0000`.
fn clf_time(ns: i64) -> String {
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = ns.div_euclid(1_000_000_000);
    let (y, m, d) = meshmon_core::time::civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!(
        "{d:02}/{}/{y:04}:{:02}:{:02}:{:02} +0000",
        MON[(m as usize).saturating_sub(1) % 12],
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::mesh::Topology;

    fn sim(sampling: f64) -> Sim {
        let mut r = Rng::new(5);
        Sim::new(
            Topology::bookinfo(&mut r, [127, 0, 10], 11, 15090),
            9,
            sampling,
        )
    }

    fn spans(out: &[(i64, Emit)]) -> Vec<&OwnedSpan> {
        out.iter()
            .filter_map(|(_, e)| match e {
                Emit::Span { span, .. } => Some(&**span),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn one_request_walks_bookinfo() {
        let mut s = sim(100.0);
        let mut out = Vec::new();
        // Three requests: reviews v1, v2, v3 in turn.
        for i in 0..3 {
            s.request(
                1_800_000_000_000_000_000 + i * 1_000_000_000,
                false,
                &mut out,
            );
        }
        let sp = spans(&out);
        // v1: gw, pp in, pp→details, details, pp→reviews, reviews = 6; v2/v3 +2 (ratings).
        assert_eq!(sp.len(), 6 + 8 + 8);
        let services: std::collections::BTreeSet<&str> =
            sp.iter().map(|s| s.service.as_ref()).collect();
        assert_eq!(
            services.into_iter().collect::<Vec<_>>(),
            [
                "details.default",
                "istio-ingressgateway.istio-system",
                "productpage.default",
                "ratings.default",
                "reviews.default"
            ]
        );
        // Every span of a request has the request's x-request-id, and its parent is in the
        // same trace (the gateway's span is the root).
        for s in &sp {
            assert_eq!(s.meta("component"), Some("proxy"));
            let rid = s.meta("guid:x-request-id").unwrap();
            let tid = s.trace_id;
            if s.parent_id != 0 {
                assert!(
                    sp.iter()
                        .any(|p| p.span_id == s.parent_id && p.trace_id == tid)
                );
            } else {
                assert_eq!(s.service, "istio-ingressgateway.istio-system");
            }
            assert!(
                sp.iter()
                    .filter(|o| o.trace_id == tid)
                    .all(|o| o.meta("guid:x-request-id") == Some(rid))
            );
            assert!(s.duration > 0);
        }
        // Children end within their parents.
        for s in &sp {
            if let Some(p) = sp.iter().find(|p| p.span_id == s.parent_id) {
                assert!(
                    s.start >= p.start && s.start + s.duration <= p.start + p.duration,
                    "{s:?} {p:?}"
                );
            }
        }
        // Access log lines carry the same request ids, in Istio's 22-field format that
        // meshmon-logs reads.
        let lines: Vec<&str> = out
            .iter()
            .filter_map(|(_, e)| match e {
                Emit::Line {
                    proxy: true, text, ..
                } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(lines.len(), 2 * sp.len() / 2);
        let rid = sp[0].meta("guid:x-request-id").unwrap();
        assert!(lines.iter().filter(|l| l.contains(rid)).count() >= 6);
        let parsed = meshmon_logs::format::parse_envoy(lines[0].as_bytes()).unwrap();
        let rec = parsed.to_record();
        assert_eq!(
            rec.attributes["http.request_id"].as_str().map(str::len),
            Some(36)
        );
        assert!(rec.attributes.contains_key("envoy.upstream.cluster"));
    }

    #[test]
    fn fault_fails_reviews_v3_only_and_sampling_thins_spans() {
        let mut s = sim(100.0);
        let mut out = Vec::new();
        for i in 0..300 {
            s.request(1_800_000_000_000_000_000 + i * 50_000_000, true, &mut out);
        }
        let sp = spans(&out);
        let errs: Vec<&&OwnedSpan> = sp.iter().filter(|s| s.error == 1).collect();
        assert!(!errs.is_empty());
        // Errors are on reviews-v3's server spans and productpage's client spans to it.
        for e in &errs {
            let rev = e.meta("istio.canonical_revision").unwrap();
            assert!(
                (e.service == "reviews.default" && rev == "v3")
                    || (e.service == "productpage.default"
                        && e.meta("upstream_cluster")
                            == Some("outbound|9080||reviews.default.svc.cluster.local")),
                "{e:?}"
            );
        }
        let v3 = sp
            .iter()
            .filter(|s| {
                s.service == "reviews.default"
                    && s.meta("istio.canonical_revision") == Some("v3")
                    && s.meta("span.kind") == Some("server")
            })
            .count();
        let v3_err = errs
            .iter()
            .filter(|s| s.service == "reviews.default")
            .count();
        let share = v3_err as f64 / v3 as f64;
        assert!((0.7..0.95).contains(&share), "{share}");
        assert!(out.iter().any(|(_, e)| matches!(e, Emit::Line { stderr: true, text, .. } if text.contains("SRVE0777E"))));
        assert!(out.iter().any(
            |(_, e)| matches!(e, Emit::Line { proxy: true, text, .. } if text.contains(" 503 UF "))
        ));
        // 10 % sampling: about a tenth of the requests are traced; all still log.
        let mut s = sim(10.0);
        let mut out = Vec::new();
        for i in 0..1000 {
            s.request(1_800_000_000_000_000_000 + i * 50_000_000, false, &mut out);
        }
        assert!((60..140).contains(&s.sampled), "{}", s.sampled);
        let roots = spans(&out).iter().filter(|s| s.parent_id == 0).count() as u64;
        assert_eq!(roots, s.sampled);
        let gw_lines = out
            .iter()
            .filter(|(_, e)| {
                matches!(
                    e,
                    Emit::Line {
                        pod: 0,
                        proxy: true,
                        ..
                    }
                )
            })
            .count();
        assert_eq!(gw_lines, 1000);
    }
}
