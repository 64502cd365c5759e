//! The node side: the `endpointschecks` and `clusterchecks` config providers, as the
//! Datadog Agent's (`pkg/autodiscovery/providers/{endpointschecks,clusterchecks}.go`).
//!
//! - `endpointschecks`: every poll, `GET /api/v1/endpointschecks/configs/{node}`.
//! - `clusterchecks`: every poll, a heartbeat `POST /api/v1/clusterchecks/status/{node}`
//!   with the `last_change` it holds; when the answer is `isuptodate: false`,
//!   `GET /api/v1/clusterchecks/configs/{node}`.
//!
//! Both are polled by discovery every `autodiscovery.poll_interval` (10 s, Datadog's
//! `ad_config_poll_interval`). When the cluster agent is unreachable (or refuses the
//! token) a provider keeps returning its last configs for `cluster_agent.grace_period`,
//! then returns none, so its checks are unscheduled. A `503` (a cluster-agent follower
//! that knows no leader yet, or a new leader still reading the cluster) is the same:
//! retry at the next poll, keep the last configs (error kind `unavailable`). Its state (`connected`, `grace`,
//! `unscheduled`) is in `status` (component `cluster_agent.<provider>`) and `/metrics`
//! (`meshmon_cluster_client_state`, `meshmon_cluster_client_errors_total`).

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use meshmon_core::autodiscovery::{CheckConfig, ProviderError};
use meshmon_core::{ConfigProvider, Timestamp};
use serde_json::json;

use super::wire::{ConfigResponse, NodeStatus, StatusResponse};
use crate::run::Ctx;

/// Which of the two providers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `endpointschecks`.
    Endpoints,
    /// `clusterchecks`.
    Cluster,
}

impl Kind {
    /// The provider name (`DD_EXTRA_CONFIG_PROVIDERS`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Endpoints => "endpointschecks",
            Kind::Cluster => "clusterchecks",
        }
    }
}

#[derive(Debug, Default)]
struct State {
    last_change: i64,
    configs: Vec<CheckConfig>,
    failing_since: Option<Timestamp>,
    state: &'static str,
    last_error: Option<String>,
    errors: u64,
    error_kinds: std::collections::BTreeMap<&'static str, u64>,
    polls: u64,
}

/// One node-side provider.
pub struct ClusterProvider {
    kind: Kind,
    base: String,
    node: String,
    token: String,
    timeout: Duration,
    grace: Duration,
    max_response: usize,
    ctx: Ctx,
    http: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Full<Bytes>,
    >,
    state: Mutex<State>,
}

impl std::fmt::Debug for ClusterProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterProvider")
            .field("kind", &self.kind)
            .field("base", &self.base)
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

/// The error of one request: its kind (for `/metrics`) and text.
struct Failure {
    kind: &'static str,
    message: String,
}

/// The cluster agent's base URL: `cluster_agent.url`, else the Kubernetes service
/// `datadog-cluster-agent` on `cmd_port`.
pub fn base_url(cfg: &crate::config::ClusterAgentConfig) -> String {
    if cfg.url.is_empty() {
        format!("http://datadog-cluster-agent:{}", cfg.cmd_port)
    } else {
        cfg.url.trim_end_matches('/').to_owned()
    }
}

/// The providers `DD_EXTRA_CONFIG_PROVIDERS` asks for, when `DD_CLUSTER_AGENT_ENABLED`.
pub fn providers(ctx: &Ctx) -> Vec<std::sync::Arc<dyn ConfigProvider>> {
    let ca = &ctx.cfg.cluster_agent;
    if !ca.enabled {
        return Vec::new();
    }
    let node = if ctx.cfg.autodiscovery.node.is_empty() {
        ctx.log(
            "WARN",
            "discovery",
            &format!(
                "DD_KUBERNETES_NODE_NAME is not set: asking the cluster agent for node {:?} (the host name)",
                ctx.hostname
            ),
        );
        ctx.hostname.clone()
    } else {
        ctx.cfg.autodiscovery.node.clone()
    };
    let mut out: Vec<std::sync::Arc<dyn ConfigProvider>> = Vec::new();
    for kind in [Kind::Endpoints, Kind::Cluster] {
        if ctx
            .cfg
            .autodiscovery
            .extra_config_providers
            .iter()
            .any(|p| p == kind.name())
        {
            out.push(std::sync::Arc::new(ClusterProvider::new(
                kind,
                ctx.clone(),
                node.clone(),
            )));
        }
    }
    out
}

impl ClusterProvider {
    /// A provider of `kind` for `node`, configured by `ctx.cfg.cluster_agent`.
    pub fn new(kind: Kind, ctx: Ctx, node: String) -> Self {
        let ca = &ctx.cfg.cluster_agent;
        ClusterProvider {
            kind,
            base: base_url(ca),
            node,
            token: ca.auth_token.clone(),
            timeout: ca.request_timeout.0,
            grace: ca.grace_period.0,
            max_response: ca.max_response_bytes,
            http: hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http(),
            state: Mutex::new(State {
                state: "starting",
                ..State::default()
            }),
            ctx,
        }
    }

    async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Vec<u8>, Failure> {
        let url = format!("{}{path}", self.base);
        let fail = |kind, message: String| Failure { kind, message };
        let req = hyper::Request::builder()
            .method(method)
            .uri(&url)
            .header(
                hyper::header::AUTHORIZATION,
                format!("Bearer {}", self.token),
            )
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| fail("request", format!("{method} {url}: {e}")))?;
        let fut = async {
            let resp = self
                .http
                .request(req)
                .await
                .map_err(|e| fail("unreachable", format!("{method} {url}: {e}")))?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), self.max_response)
                .collect()
                .await
                .map_err(|e| fail("body", format!("{method} {url}: reading the answer: {e}")))?
                .to_bytes();
            if status == hyper::StatusCode::UNAUTHORIZED || status == hyper::StatusCode::FORBIDDEN {
                return Err(fail(
                    "unauthorized",
                    format!("{method} {url}: {status} (check DD_CLUSTER_AGENT_AUTH_TOKEN)"),
                ));
            }
            if status == hyper::StatusCode::SERVICE_UNAVAILABLE {
                // No leader known yet, or a new leader still reading the cluster: retry at
                // the next poll, keeping the configs held (within the grace period).
                return Err(fail(
                    "unavailable",
                    format!(
                        "{method} {url}: 503, retry later (no cluster agent leader yet?): {}",
                        String::from_utf8_lossy(&body[..body.len().min(200)])
                    ),
                ));
            }
            if !status.is_success() {
                return Err(fail(
                    "status",
                    format!(
                        "{method} {url}: {status}: {}",
                        String::from_utf8_lossy(&body[..body.len().min(200)])
                    ),
                ));
            }
            Ok(body.to_vec())
        };
        tokio::time::timeout(self.timeout, fut).await.map_err(|_| {
            fail(
                "timeout",
                format!("{method} {url}: no answer within {:?}", self.timeout),
            )
        })?
    }

    fn decode(&self, body: &[u8]) -> Result<(i64, Vec<CheckConfig>), Failure> {
        let resp: ConfigResponse = serde_json::from_slice(body).map_err(|e| Failure {
            kind: "decode",
            message: format!("{}: answer is not a ConfigResponse: {e}", self.kind.name()),
        })?;
        let mut configs = Vec::new();
        for (i, w) in resp.configs.iter().enumerate() {
            let cs = w.to_configs().map_err(|m| Failure {
                kind: "decode",
                message: format!("{}: configs[{i}] ({}): {m}", self.kind.name(), w.service_id),
            })?;
            configs.extend(cs);
        }
        Ok((resp.last_change, configs))
    }

    /// One poll: `Ok(Some(..))` new configs, `Ok(None)` unchanged.
    async fn poll(&self, last_change: i64) -> Result<Option<(i64, Vec<CheckConfig>)>, Failure> {
        let node = &self.node;
        match self.kind {
            Kind::Endpoints => {
                let body = self
                    .request(
                        "GET",
                        &format!("/api/v1/endpointschecks/configs/{node}"),
                        None,
                    )
                    .await?;
                self.decode(&body).map(Some)
            }
            Kind::Cluster => {
                let status = serde_json::to_vec(&NodeStatus { last_change }).unwrap_or_default();
                let body = self
                    .request(
                        "POST",
                        &format!("/api/v1/clusterchecks/status/{node}"),
                        Some(status),
                    )
                    .await?;
                let s: StatusResponse = serde_json::from_slice(&body).map_err(|e| Failure {
                    kind: "decode",
                    message: format!("clusterchecks: answer is not a StatusResponse: {e}"),
                })?;
                if s.isuptodate {
                    return Ok(None);
                }
                let body = self
                    .request(
                        "GET",
                        &format!("/api/v1/clusterchecks/configs/{node}"),
                        None,
                    )
                    .await?;
                self.decode(&body).map(Some)
            }
        }
    }

    fn publish(&self, st: &State) {
        let name = self.kind.name();
        self.ctx.set_component(
            &format!("cluster_agent.{name}"),
            json!({
                "state": st.state,
                "url": self.base,
                "node": self.node,
                "configs": st.configs.len(),
                "last_change": st.last_change,
                "last_error": st.last_error,
                "failing_since": st.failing_since.map(|t| t.as_secs_f64()),
                "polls": st.polls,
                "errors": st.errors,
            }),
        );
        if let Ok(mut s) = self.ctx.store.write() {
            for state in ["starting", "connected", "grace", "unscheduled"] {
                s.telemetry.set(
                    "meshmon_cluster_client_state",
                    "gauge",
                    "1 for the node-side cluster agent provider's current state.",
                    &[("provider", name), ("state", state)],
                    if st.state == state { 1.0 } else { 0.0 },
                );
            }
            for (kind, n) in &st.error_kinds {
                s.telemetry.set(
                    "meshmon_cluster_client_errors_total",
                    "counter",
                    "Failed polls of the cluster agent, by kind.",
                    &[("provider", name), ("kind", kind)],
                    *n as f64,
                );
            }
            s.telemetry.set(
                "meshmon_cluster_client_configs",
                "gauge",
                "Configs the provider currently returns.",
                &[("provider", name)],
                st.configs.len() as f64,
            );
        }
    }
}

#[async_trait]
impl ConfigProvider for ClusterProvider {
    fn name(&self) -> &str {
        self.kind.name()
    }

    async fn collect(&self) -> Result<Vec<CheckConfig>, ProviderError> {
        let last_change = self.state.lock().map(|s| s.last_change).unwrap_or(0);
        let result = self.poll(last_change).await;
        let now = self.ctx.clock.now();
        let Ok(mut st) = self.state.lock() else {
            return Ok(Vec::new());
        };
        st.polls += 1;
        let before = st.state;
        match result {
            Ok(fresh) => {
                if let Some((lc, configs)) = fresh {
                    st.last_change = lc;
                    st.configs = configs;
                }
                st.failing_since = None;
                st.last_error = None;
                st.state = "connected";
            }
            Err(f) => {
                st.errors += 1;
                let since = *st.failing_since.get_or_insert(now);
                if st.last_error.as_deref() != Some(f.message.as_str()) {
                    self.ctx.log(
                        "WARN",
                        "discovery",
                        &format!("{}: {}", self.kind.name(), f.message),
                    );
                }
                st.last_error = Some(f.message);
                *st.error_kinds.entry(f.kind).or_default() += 1;
                if now.saturating_since(since) >= self.grace {
                    st.configs.clear();
                    // Fetch everything again once the cluster agent answers.
                    st.last_change = 0;
                    st.state = "unscheduled";
                } else {
                    st.state = "grace";
                }
            }
        }
        if st.state != before {
            self.ctx.log(
                "INFO",
                "discovery",
                &format!(
                    "{}: {before} -> {} ({} configs)",
                    self.kind.name(),
                    st.state,
                    st.configs.len()
                ),
            );
        }
        self.publish(&st);
        Ok(st.configs.clone())
    }
}
