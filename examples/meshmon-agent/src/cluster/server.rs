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

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::{Request, Response, StatusCode};
use meshmon_core::Timestamp;
use meshmon_core::autodiscovery::dispatch::Dispatcher;
use serde_json::{Value, json};

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
}

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

/// A node name as Kubernetes allows it (a DNS subdomain: at most 253 bytes, no `/`).
fn node_name(s: &str) -> Option<&str> {
    (!s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_'))
    .then_some(s)
}

impl ClusterState {
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
        let Ok(mut d) = self.dispatcher.lock() else {
            return (
                route,
                error(StatusCode::INTERNAL_SERVER_ERROR, "dispatcher poisoned"),
            );
        };
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
                "nodes": nodes,
                "dangling": dangling,
                "stats": d.stats_at(now),
                "provider": provider,
            }),
        )
    }

    fn metrics(&self, now: Timestamp) -> Resp {
        let mut out = String::new();
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
        gauge(
            "meshmon_cluster_agent_leader",
            "1 when this replica dispatches (single replica: always).",
            "gauge",
            1.0,
        );
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
                return Ok(error(
                    StatusCode::REQUEST_TIMEOUT,
                    "body not received in time",
                ));
            }
        };
        let (route, resp) = self.route(&method, &path, &body);
        self.count(route, resp.status());
        Ok(resp)
    }
}

/// Serves the API on `listener` until `shutdown` flips.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<ClusterState>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            r = listener.accept() => {
                let Ok((stream, _peer)) = r else { continue };
                let st = state.clone();
                tokio::spawn(async move {
                    let timeout = st.read_timeout;
                    let svc = hyper::service::service_fn(move |req| st.clone().handle(req));
                    let conn = hyper::server::conn::http1::Builder::new()
                        .header_read_timeout(timeout)
                        .max_buf_size(64 << 10)
                        .timer(hyper_util::rt::TokioTimer::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
                    let _ = conn.await;
                });
            }
        }
    }
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
