//! The cluster agent's HTTP API (port `cluster_agent.cmd_port`, 5005), with the Datadog
//! Cluster Agent's paths and shapes:
//!
//! | method | path | answer |
//! |---|---|---|
//! | `GET` | `/health` | `{"status": "ok"}` (no token: kubelet probes cannot send one) |
//! | `GET` | `/metrics` | Prometheus text: nodes, checks, dangling, expirations, auth failures |
//! | `GET` | `/api/v1/clusterchecks` | the dispatching state (Datadog's `StateResponse`) |
//! | `POST` | `/api/v1/clusterchecks/status/{node}` | heartbeat: body `{"last_change": N}`, answer `{"isuptodate": bool}` |
//! | `GET` | `/api/v1/clusterchecks/configs/{node}` | `{"last_change": N, "configs": [...]}`; 404 for a node that has not reported |
//! | `GET` | `/api/v1/endpointschecks/configs/{node}` | `{"last_change": N, "configs": [...]}` |
//!
//! Every path but `/health` needs `Authorization: Bearer <token>`: a missing or malformed
//! header is 401, a wrong token 403; both are counted. The token is compared in constant
//! time. Headers must arrive within `cluster_agent.read_timeout` (and the body too), the
//! body is at most `cluster_agent.max_body_bytes` (413 beyond, counted).
//!
//! The listener runs under the agent's connection guard ([`crate::http::guard`], listener
//! label `cluster_agent`): at most `cluster_agent.max_connections` connections at once and
//! `cluster_agent.max_connections_per_client` from one address (503 and closed beyond),
//! headers cut after `cluster_agent.read_timeout` (slowloris), at most
//! `cluster_agent.max_header_bytes` of them (431), browser requests from another site or
//! origin refused (403); the guard's counters are in `/metrics` (`meshmon_http_*`).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::{Request, Response, StatusCode};
use meshmon_core::Timestamp;
use meshmon_core::autodiscovery::CheckConfig;
use meshmon_core::autodiscovery::dispatch::{DispatchOptions, Dispatcher};
use serde_json::{Value, json};

#[cfg(feature = "kube")]
use super::election::Role;
use super::wire::{ConfigResponse, NodeStatus, StatusResponse, WireConfig};
use crate::run::Clock;

/// Byte-wise comparison whose time depends only on the lengths, not on where the inputs
/// differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

/// What the provider loop last saw.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ProviderStatus {
    /// Configs in the last successful collect.
    pub configs: usize,
    /// Last successful collect, seconds since the epoch.
    pub last_success: Option<f64>,
    /// Last error, when the last collect failed.
    pub last_error: Option<String>,
    /// Per-object errors and skip reasons of the last collect.
    pub report: Vec<String>,
}

/// Shared state of a running cluster agent.
#[derive(Debug)]
pub struct ClusterState {
    pub(crate) dispatcher: Mutex<Dispatcher>,
    pub(crate) token: String,
    pub(crate) enabled: bool,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) started: Timestamp,
    pub(crate) max_body: usize,
    pub(crate) read_timeout: Duration,
    pub(crate) provider: Mutex<ProviderStatus>,
    pub(crate) auth_missing: AtomicU64,
    pub(crate) auth_wrong: AtomicU64,
    pub(crate) too_large: AtomicU64,
    pub(crate) read_timeouts: AtomicU64,
    pub(crate) requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    /// The listener's connection guard (its counters are rendered in `/metrics`).
    pub(crate) guard: crate::http::guard::Guard,
    /// Leader election and forwarding ([`super::election`]).
    pub(crate) election: Election,
}

/// This replica's part in the election, and the forwarding of a follower.
#[derive(Debug)]
pub struct Election {
    /// Whether a Lease elects the leader (off: this replica always leads).
    pub(crate) enabled: bool,
    /// This replica's identity.
    pub(crate) identity: String,
    /// The dispatcher's options (a new leader starts a fresh dispatcher with them).
    pub(crate) opts: DispatchOptions,
    /// The role and what was read of the Lease.
    pub(crate) view: Mutex<LeaderView>,
    /// The configs of the provider's last successful pass (a new leader starts from them).
    pub(crate) last_configs: Mutex<Option<Vec<CheckConfig>>>,
    /// Forwarding timeout and largest answer read from the leader.
    pub(crate) forward_timeout: Duration,
    pub(crate) forward_max_response: usize,
    pub(crate) http: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Full<Bytes>,
    >,
    /// Forwarded requests by the leader's status code (0: the leader did not answer).
    pub(crate) forwarded: Mutex<BTreeMap<u16, u64>>,
    /// Requests answered 503 because no leader was known.
    pub(crate) no_leader: AtomicU64,
    /// Lease read/write errors and 409 conflicts.
    pub(crate) lease_errors: AtomicU64,
    pub(crate) lease_conflicts: AtomicU64,
    /// Times this replica became leader.
    pub(crate) became_leader: AtomicU64,
    /// Whether the dangling checks were dispatched since the warm-up ended (the first
    /// request after it does, so no node agent is told to fetch before its checks are
    /// given: it would read an empty list).
    pub(crate) warm_dispatched: std::sync::atomic::AtomicBool,
}

/// The role and the leader as last seen.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct LeaderView {
    /// Whether this replica leads.
    pub leader: bool,
    /// The leader's identity (empty: none known).
    pub leader_identity: String,
    /// The URL followers forward to (empty: none known).
    pub leader_url: String,
    /// When this replica became leader, seconds since the epoch.
    pub leader_since: Option<f64>,
    /// The Lease's `leaseTransitions`.
    pub transitions: u32,
    /// Whether the dispatcher holds configs from the provider since this replica leads.
    pub configs_ready: bool,
}

/// The header a follower adds to what it forwards (a follower never forwards a
/// forwarded request: two replicas that each think the other leads answer 503).
pub const FORWARDED_HEADER: &str = "x-meshmon-forwarded-by";

type Resp = Response<Full<Bytes>>;

fn json_reply(status: StatusCode, v: &Value) -> Resp {
    let mut body = serde_json::to_vec(v).unwrap_or_default();
    body.push(b'\n');
    reply(status, "application/json", body)
}

fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    r
}

fn error(status: StatusCode, msg: &str) -> Resp {
    json_reply(status, &json!({ "error": msg }))
}

/// A Prometheus label value, escaped.
fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A node name as Kubernetes allows it (a DNS subdomain: at most 253 bytes, no `/`).
fn node_name(s: &str) -> Option<&str> {
    (!s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_'))
    .then_some(s)
}

fn retry_after(status: StatusCode, secs: u64, msg: &str) -> Resp {
    let mut r = error(status, msg);
    r.headers_mut().insert(
        hyper::header::RETRY_AFTER,
        hyper::header::HeaderValue::from(secs.max(1)),
    );
    r
}

/// Paths a follower forwards to the leader (what node agents call).
fn forwarded_path(path: &str) -> bool {
    [
        "/api/v1/clusterchecks/status/",
        "/api/v1/clusterchecks/configs/",
        "/api/v1/endpointschecks/configs/",
    ]
    .iter()
    .any(|p| path.starts_with(p))
}

impl ClusterState {
    /// The role and leader as last seen.
    pub fn view(&self) -> LeaderView {
        self.election
            .view
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default()
    }

    fn election_json(&self, v: &LeaderView) -> Value {
        json!({
            "enabled": self.election.enabled,
            "identity": self.election.identity,
            "leader": v.leader,
            "leader_identity": v.leader_identity,
            "leader_url": v.leader_url,
            "leader_since": v.leader_since,
            "transitions": v.transitions,
            "configs_ready": v.configs_ready,
        })
    }

    /// Logs one line to stderr as the rest of the cluster agent does.
    #[cfg(feature = "kube")]
    pub(crate) fn log(&self, level: &str, msg: &str) {
        eprintln!(
            "{} {level:<5} cluster-agent: {msg}",
            crate::run::fmt_time(self.clock.now())
        );
    }

    /// Counts a Lease error or conflict.
    #[cfg(feature = "kube")]
    pub(crate) fn lease_event(&self, kind: &str) {
        let c = if kind == "conflict" {
            &self.election.lease_conflicts
        } else {
            &self.election.lease_errors
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Records the election's outcome at `now`. Becoming leader starts a fresh dispatcher
    /// whose warm-up begins now (nothing moves until node agents have reported), holding
    /// the provider's last configs.
    #[cfg(feature = "kube")]
    pub(crate) fn set_role(&self, role: Role, transitions: u32, now: Timestamp) {
        let Ok(mut v) = self.election.view.lock() else {
            return;
        };
        let was = v.leader;
        v.transitions = transitions;
        match role {
            Role::Leader { since } => {
                v.leader = true;
                v.leader_identity = self.election.identity.clone();
                v.leader_url.clear();
                v.leader_since = Some(since.as_secs_f64());
                if !was {
                    self.election.became_leader.fetch_add(1, Ordering::Relaxed);
                    let configs = self
                        .election
                        .last_configs
                        .lock()
                        .map(|c| c.clone())
                        .unwrap_or_default();
                    v.configs_ready = configs.is_some();
                    self.election
                        .warm_dispatched
                        .store(false, Ordering::Relaxed);
                    if let (Ok(mut d), Ok(fresh)) = (
                        self.dispatcher.lock(),
                        Dispatcher::new(self.election.opts.clone(), now),
                    ) {
                        *d = fresh;
                        if let Some(c) = configs {
                            d.set_configs(now, c);
                        }
                    }
                    drop(v);
                    self.log(
                        "INFO",
                        &format!(
                            "leader election: {} is the leader (leaseTransitions {transitions}); warm-up {:?} before moving any cluster check",
                            self.election.identity, self.election.opts.warmup
                        ),
                    );
                }
            }
            Role::Follower { leader } => {
                let (id, url) = leader.unwrap_or_default();
                let changed = was || v.leader_identity != id;
                v.leader = false;
                v.leader_since = None;
                v.configs_ready = false;
                v.leader_identity = id;
                v.leader_url = url;
                if changed {
                    let msg = if v.leader_identity.is_empty() {
                        "leader election: no leader known (node agents are told to retry)"
                            .to_owned()
                    } else {
                        format!(
                            "leader election: following {} at {} (node agents are forwarded)",
                            v.leader_identity, v.leader_url
                        )
                    };
                    drop(v);
                    self.log(if was { "WARN" } else { "INFO" }, &msg);
                }
            }
        }
    }

    /// Whether this replica dispatches.
    pub fn is_leader(&self) -> bool {
        self.election.view.lock().map(|v| v.leader).unwrap_or(false)
    }

    /// Forwards one authorized request to the leader (a follower's answer to node agents).
    async fn forward(
        &self,
        method: &str,
        target: &str,
        auth: Option<&[u8]>,
        already_forwarded: bool,
        body: Bytes,
    ) -> Resp {
        let e = &self.election;
        let view = self.view();
        let retry = self.election.opts.warmup.as_secs().clamp(1, 10);
        if view.leader_url.is_empty() || already_forwarded {
            e.no_leader.fetch_add(1, Ordering::Relaxed);
            return retry_after(
                StatusCode::SERVICE_UNAVAILABLE,
                retry,
                "no cluster agent leader known yet: retry later and keep the configs you run",
            );
        }
        let url = format!("{}{target}", view.leader_url);
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(&url)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(FORWARDED_HEADER, e.identity.as_str());
        if let Some(a) = auth {
            req = req.header(hyper::header::AUTHORIZATION, a);
        }
        let Ok(req) = req.body(Full::new(body)) else {
            return error(StatusCode::BAD_REQUEST, "request cannot be forwarded");
        };
        let fut = async {
            let resp = e.http.request(req).await.map_err(|x| x.to_string())?;
            let status = resp.status();
            let ct = resp.headers().get(hyper::header::CONTENT_TYPE).cloned();
            let body = Limited::new(resp.into_body(), e.forward_max_response)
                .collect()
                .await
                .map_err(|x| format!("reading the answer: {x}"))?
                .to_bytes();
            Ok::<_, String>((status, ct, body))
        };
        let result = match tokio::time::timeout(e.forward_timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {:?}", e.forward_timeout)),
        };
        let code = result.as_ref().map_or(0, |(s, _, _)| s.as_u16());
        if let Ok(mut m) = e.forwarded.lock() {
            *m.entry(code).or_default() += 1;
        }
        match result {
            Ok((status, ct, body)) => {
                let mut r = Response::new(Full::new(body));
                *r.status_mut() = status;
                if let Some(ct) = ct {
                    r.headers_mut().insert(hyper::header::CONTENT_TYPE, ct);
                }
                r
            }
            Err(m) => retry_after(
                StatusCode::SERVICE_UNAVAILABLE,
                retry,
                &format!(
                    "the leader {} ({url}) did not answer: {m}; retry later",
                    view.leader_identity
                ),
            ),
        }
    }

    fn count(&self, route: &'static str, status: StatusCode) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((route, status.as_u16())).or_default() += 1;
        }
    }

    /// Checks the `Authorization` header; `None` when accepted.
    pub fn authorize(&self, header: Option<&[u8]>) -> Option<Resp> {
        let Some(token) = header.and_then(|h| h.strip_prefix(b"Bearer ")) else {
            self.auth_missing.fetch_add(1, Ordering::Relaxed);
            return Some(error(
                StatusCode::UNAUTHORIZED,
                "no token: send Authorization: Bearer <DD_CLUSTER_AGENT_AUTH_TOKEN>",
            ));
        };
        if !constant_time_eq(token, self.token.as_bytes()) {
            self.auth_wrong.fetch_add(1, Ordering::Relaxed);
            return Some(error(StatusCode::FORBIDDEN, "invalid token"));
        }
        None
    }

    /// Routes one authorized request (`body` already read).
    pub fn route(&self, method: &str, path: &str, body: &[u8]) -> (&'static str, Resp) {
        let now = self.clock.now();
        let disabled = || {
            error(
                StatusCode::NOT_FOUND,
                "cluster checks are disabled (DD_CLUSTER_CHECKS_ENABLED=false)",
            )
        };
        if path == "/metrics" && method == "GET" {
            return ("metrics", self.metrics(now));
        }
        if path == "/api/v1/clusterchecks" && method == "GET" {
            return ("state", self.state(now));
        }
        let cluster_status = path.strip_prefix("/api/v1/clusterchecks/status/");
        let cluster_configs = path.strip_prefix("/api/v1/clusterchecks/configs/");
        let endpoints_configs = path.strip_prefix("/api/v1/endpointschecks/configs/");
        let (route, node, want) = match (cluster_status, cluster_configs, endpoints_configs) {
            (Some(n), _, _) => ("status", n, "POST"),
            (_, Some(n), _) => ("configs", n, "GET"),
            (_, _, Some(n)) => ("endpoints", n, "GET"),
            _ => {
                return (
                    "other",
                    error(StatusCode::NOT_FOUND, &format!("no such path {path:?}")),
                );
            }
        };
        if method != want {
            return (
                route,
                error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    &format!("{path} takes {want}"),
                ),
            );
        }
        let Some(node) = node_name(node) else {
            return (
                route,
                error(StatusCode::BAD_REQUEST, &format!("bad node name {node:?}")),
            );
        };
        if !self.enabled {
            return (route, disabled());
        }
        if self.election.enabled && route != "status" && !self.view().configs_ready {
            // A new leader whose provider has not read the objects yet: an empty answer
            // would unschedule every check of the node.
            return (
                route,
                retry_after(
                    StatusCode::SERVICE_UNAVAILABLE,
                    1,
                    "the leader has not read the cluster's objects yet: retry later",
                ),
            );
        }
        let Ok(mut d) = self.dispatcher.lock() else {
            return (
                route,
                error(StatusCode::INTERNAL_SERVER_ERROR, "dispatcher poisoned"),
            );
        };
        if !self.election.warm_dispatched.load(Ordering::Relaxed) && !d.warming_up(now) {
            d.tick(now);
            self.election.warm_dispatched.store(true, Ordering::Relaxed);
        }
        let resp = match route {
            "status" => {
                let status: NodeStatus = match serde_json::from_slice(body) {
                    Ok(s) => s,
                    Err(e) => {
                        return (
                            route,
                            error(
                                StatusCode::BAD_REQUEST,
                                &format!("body is not a NodeStatus: {e}"),
                            ),
                        );
                    }
                };
                let up = d.heartbeat(node, now, status.last_change);
                json_reply(StatusCode::OK, &json!(StatusResponse { isuptodate: up }))
            }
            "configs" => match d.cluster_configs(node) {
                Some(c) => json_reply(
                    StatusCode::OK,
                    &json!(ConfigResponse {
                        last_change: c.last_change,
                        configs: c
                            .configs
                            .iter()
                            .map(|c| WireConfig::from_config(c))
                            .collect(),
                    }),
                ),
                None => error(
                    StatusCode::NOT_FOUND,
                    &format!("node {node} is unknown: post its status first"),
                ),
            },
            _ => {
                let c = d.endpoints_configs(node);
                json_reply(
                    StatusCode::OK,
                    &json!(ConfigResponse {
                        last_change: c.last_change,
                        configs: c
                            .configs
                            .iter()
                            .map(|c| WireConfig::from_config(c))
                            .collect(),
                    }),
                )
            }
        };
        (route, resp)
    }

    fn state(&self, now: Timestamp) -> Resp {
        let view = self.view();
        if !view.leader {
            return json_reply(
                StatusCode::OK,
                &json!({
                    "not_running": "this replica follows: node agents are forwarded to the leader",
                    "leader": false,
                    "election": self.election_json(&view),
                }),
            );
        }
        let Ok(d) = self.dispatcher.lock() else {
            return error(StatusCode::INTERNAL_SERVER_ERROR, "dispatcher poisoned");
        };
        let nodes: Vec<Value> = d
            .nodes()
            .iter()
            .map(|n| {
                let configs: Vec<WireConfig> = d
                    .cluster_configs(&n.name)
                    .map(|c| {
                        c.configs
                            .iter()
                            .map(|c| WireConfig::from_config(c))
                            .collect()
                    })
                    .unwrap_or_default();
                json!({
                    "name": n.name,
                    "configs": configs,
                    "heartbeat": n.heartbeat.as_secs_f64(),
                    "endpoints_checks": n.endpoints_checks,
                })
            })
            .collect();
        let dangling: Vec<WireConfig> = d
            .dangling()
            .iter()
            .map(|c| WireConfig::from_config(c))
            .collect();
        let provider = self.provider.lock().map(|p| p.clone()).unwrap_or_default();
        json_reply(
            StatusCode::OK,
            &json!({
                "not_running": if self.enabled { "" } else { "cluster checks are disabled" },
                "warmup": d.warming_up(now),
                "leader": true,
                "election": self.election_json(&view),
                "nodes": nodes,
                "dangling": dangling,
                "stats": d.stats_at(now),
                "provider": provider,
            }),
        )
    }

    fn metrics(&self, now: Timestamp) -> Resp {
        let mut out = String::new();
        let mut extra = String::new();
        let mut gauge = |name: &str, help: &str, kind: &str, v: f64| {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
            ));
        };
        if let Ok(d) = self.dispatcher.lock() {
            let s = d.stats_at(now);
            gauge(
                "meshmon_cluster_agent_nodes",
                "Node agents reporting.",
                "gauge",
                s.nodes as f64,
            );
            gauge(
                "meshmon_cluster_agent_cluster_checks",
                "Cluster checks held.",
                "gauge",
                s.cluster_checks as f64,
            );
            gauge(
                "meshmon_cluster_agent_dangling_checks",
                "Cluster checks without a node.",
                "gauge",
                s.dangling as f64,
            );
            gauge(
                "meshmon_cluster_agent_endpoints_checks",
                "Endpoints checks held.",
                "gauge",
                s.endpoints_checks as f64,
            );
            gauge(
                "meshmon_cluster_agent_endpoints_unassigned",
                "Endpoints checks whose node is not reporting.",
                "gauge",
                s.endpoints_unassigned as f64,
            );
            gauge(
                "meshmon_cluster_agent_expired_nodes_total",
                "Nodes expired for silence.",
                "counter",
                s.expired_nodes_total as f64,
            );
            gauge(
                "meshmon_cluster_agent_dispatched_total",
                "Cluster-check assignments.",
                "counter",
                s.dispatched_total as f64,
            );
            gauge(
                "meshmon_cluster_agent_configs_dropped_total",
                "Configs dropped by cluster_agent.max_configs.",
                "counter",
                s.dropped_by_limit as f64,
            );
            gauge(
                "meshmon_cluster_agent_warming_up",
                "1 during the warm-up after start.",
                "gauge",
                if s.warming_up { 1.0 } else { 0.0 },
            );
        }
        let view = self.view();
        gauge(
            "meshmon_cluster_agent_leader",
            "1 when this replica dispatches (election off: always).",
            "gauge",
            if view.leader { 1.0 } else { 0.0 },
        );
        gauge(
            "meshmon_cluster_agent_leader_transitions",
            "The Lease's leaseTransitions as last read or written.",
            "gauge",
            f64::from(view.transitions),
        );
        let e = &self.election;
        for (name, help, n) in [
            (
                "meshmon_cluster_agent_became_leader_total",
                "Times this replica became leader.",
                &e.became_leader,
            ),
            (
                "meshmon_cluster_agent_lease_errors_total",
                "Failed Lease reads or writes.",
                &e.lease_errors,
            ),
            (
                "meshmon_cluster_agent_lease_conflicts_total",
                "Lease writes answered 409 Conflict (another replica wrote first).",
                &e.lease_conflicts,
            ),
            (
                "meshmon_cluster_agent_no_leader_total",
                "Requests a follower answered 503 because no leader was known.",
                &e.no_leader,
            ),
        ] {
            gauge(name, help, "counter", n.load(Ordering::Relaxed) as f64);
        }
        extra.push_str(&format!(
            "# HELP meshmon_cluster_agent_leader_info The leader as this replica sees it.\n# TYPE meshmon_cluster_agent_leader_info gauge\nmeshmon_cluster_agent_leader_info{{identity=\"{}\",leader=\"{}\"}} 1\n",
            label(&e.identity),
            label(&view.leader_identity)
        ));
        extra.push_str("# HELP meshmon_cluster_agent_forwarded_total Requests a follower forwarded to the leader, by the leader's status (0: no answer).\n# TYPE meshmon_cluster_agent_forwarded_total counter\n");
        if let Ok(m) = e.forwarded.lock() {
            for (code, n) in m.iter() {
                extra.push_str(&format!(
                    "meshmon_cluster_agent_forwarded_total{{code=\"{code}\"}} {n}\n"
                ));
            }
        }
        gauge(
            "meshmon_cluster_agent_body_too_large_total",
            "Requests refused with 413.",
            "counter",
            self.too_large.load(Ordering::Relaxed) as f64,
        );
        gauge(
            "meshmon_cluster_agent_read_timeouts_total",
            "Requests whose body did not arrive in time.",
            "counter",
            self.read_timeouts.load(Ordering::Relaxed) as f64,
        );
        gauge(
            "meshmon_cluster_agent_uptime_seconds",
            "Seconds since start.",
            "gauge",
            now.saturating_since(self.started).as_secs_f64(),
        );
        out.push_str("# HELP meshmon_cluster_agent_auth_failures_total Requests refused for their token.\n# TYPE meshmon_cluster_agent_auth_failures_total counter\n");
        out.push_str(&format!(
            "meshmon_cluster_agent_auth_failures_total{{code=\"401\"}} {}\nmeshmon_cluster_agent_auth_failures_total{{code=\"403\"}} {}\n",
            self.auth_missing.load(Ordering::Relaxed),
            self.auth_wrong.load(Ordering::Relaxed)
        ));
        out.push_str("# HELP meshmon_cluster_agent_requests_total Authorized requests by route and status.\n# TYPE meshmon_cluster_agent_requests_total counter\n");
        if let Ok(m) = self.requests.lock() {
            for ((route, code), n) in m.iter() {
                out.push_str(&format!(
                    "meshmon_cluster_agent_requests_total{{route=\"{route}\",code=\"{code}\"}} {n}\n"
                ));
            }
        }
        out.push_str(&extra);
        for (name, kind, help, v) in self.guard.samples() {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{listener=\"{}\"}} {v}\n",
                self.guard.name
            ));
        }
        reply(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            out,
        )
    }

    async fn handle(
        self: Arc<Self>,
        req: Request<hyper::body::Incoming>,
    ) -> Result<Resp, Infallible> {
        let method = req.method().as_str().to_owned();
        let path = req.uri().path().to_owned();
        if path == "/health" {
            return Ok(json_reply(StatusCode::OK, &json!({ "status": "ok" })));
        }
        let auth = req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .map(|v| v.as_bytes().to_vec());
        if let Some(r) = self.authorize(auth.as_deref()) {
            return Ok(r);
        }
        let already_forwarded = req.headers().contains_key(FORWARDED_HEADER);
        let target = req
            .uri()
            .path_and_query()
            .map_or(path.clone(), |p| p.as_str().to_owned());
        let limited = Limited::new(req.into_body(), self.max_body);
        let body = match tokio::time::timeout(self.read_timeout, limited.collect()).await {
            Ok(Ok(b)) => b.to_bytes(),
            Ok(Err(e)) => {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    self.too_large.fetch_add(1, Ordering::Relaxed);
                    return Ok(error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        &format!(
                            "body over {} bytes (cluster_agent.max_body_bytes)",
                            self.max_body
                        ),
                    ));
                }
                return Ok(error(
                    StatusCode::BAD_REQUEST,
                    &format!("reading the body: {e}"),
                ));
            }
            Err(_) => {
                self.read_timeouts.fetch_add(1, Ordering::Relaxed);
                self.guard.body_timed_out();
                return Ok(error(
                    StatusCode::REQUEST_TIMEOUT,
                    "body not received in time",
                ));
            }
        };
        if forwarded_path(&path) && !self.is_leader() {
            let resp = self
                .forward(&method, &target, auth.as_deref(), already_forwarded, body)
                .await;
            self.count("forwarded", resp.status());
            return Ok(resp);
        }
        let (route, resp) = self.route(&method, &path, &body);
        self.count(route, resp.status());
        Ok(resp)
    }
}

/// Serves the API on `listener` under the state's connection guard until `shutdown`
/// flips. The guard's counters are read live by `/metrics`, so nothing is published.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<ClusterState>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let guard = state.guard.clone();
    crate::http::guard::serve_with(
        listener,
        guard,
        |_| {},
        move |req| state.clone().handle(req),
        shutdown,
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn node_names() {
        assert_eq!(
            node_name("ip-10-0-0-1.ec2.internal"),
            Some("ip-10-0-0-1.ec2.internal")
        );
        assert_eq!(node_name(""), None);
        assert_eq!(node_name("a/b"), None);
        assert_eq!(node_name(&"x".repeat(254)), None);
    }
}
