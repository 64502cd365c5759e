//! The cluster agent (`meshmon-agent cluster-agent`) and the node side's
//! `endpointschecks` / `clusterchecks` config providers.
//!
//! The cluster agent is the Datadog Cluster Agent's check dispatcher: it reads Kubernetes
//! objects (the manifest-file provider, `MESHMON_MANIFESTS`), expands their annotations
//! into one check per target (`meshmon_core::autodiscovery::expand`), and hands them out
//! with `meshmon_core::autodiscovery::dispatch`: endpoints checks to the node of their pod,
//! cluster checks to the least busy live node, moved when a node stops reporting. Node
//! agents (`meshmon-agent run` with `DD_CLUSTER_AGENT_ENABLED=true` and
//! `DD_EXTRA_CONFIG_PROVIDERS="endpointschecks clusterchecks"`) poll it with Datadog's
//! protocol ([`server`], [`client`], [`wire`]).
//!
//! | task | owns | talks to |
//! |---|---|---|
//! | provider | the file provider | the dispatcher (`set_configs` each `autodiscovery.poll_interval`) |
//! | tick | | the dispatcher (expiry and re-dispatch every second) |
//! | api | the listener on `cluster_agent.listen_host:cmd_port` | the dispatcher |
//!
//! | election (feature `kube`, `cluster_agent.leader_election`) | the Lease | the API server; the role in the shared state |
//!
//! Two replicas: with the Kubernetes API provider and `DD_LEADER_ELECTION=true` the replicas elect
//! a leader through a `coordination.k8s.io/v1` Lease ([`election`]; `lease`, feature `kube`). Only
//! the leader dispatches; a follower forwards the node agents' requests to the URL the leader
//! advertises in the Lease's `meshmon.io/leader-url` annotation, or answers `503` with
//! `Retry-After` when no leader is known. A new leader starts a fresh dispatcher whose warm-up
//! (`cluster_agent.warmup_duration`) begins at the takeover: node agents keep what they run until
//! they have all reported. With the file provider (no API server) there is no Lease: election is
//! off and the single replica always dispatches (`meshmon_cluster_agent_leader 1`).

pub mod client;
pub mod election;
#[cfg(feature = "kube")]
pub mod kube;
#[cfg(feature = "kube")]
pub mod lease;
pub mod server;
pub mod wire;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use meshmon_core::ConfigProvider as _;
use meshmon_core::autodiscovery::ContainerFilter;
use meshmon_core::autodiscovery::dispatch::{DispatchOptions, Dispatcher};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{AgentConfig, ConfigError, Dur, ProcessEnv};
use crate::run::{Clock, SystemClock, discovery::FileProvider, fmt_time, stopped};

/// The shortest token accepted (the Datadog Cluster Agent's rule).
pub const MIN_TOKEN_LEN: usize = 32;

/// Checks a `DD_CLUSTER_AGENT_AUTH_TOKEN`.
pub fn check_token(token: &str) -> Result<(), String> {
    if token.chars().count() < MIN_TOKEN_LEN {
        return Err(format!(
            "must be at least {MIN_TOKEN_LEN} characters (DD_CLUSTER_AGENT_AUTH_TOKEN), got {}",
            token.chars().count()
        ));
    }
    Ok(())
}

fn env_err(var: &str, value: &str, message: String) -> ConfigError {
    ConfigError::Env {
        var: var.to_owned(),
        value: if var.ends_with("TOKEN") {
            "***".into()
        } else {
            value.to_owned()
        },
        message,
    }
}

/// The `cluster_agent.*` environment variables (called by `config::apply_env`).
pub fn apply_env(
    cfg: &mut AgentConfig,
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    let boolean = |var: &str, v: &str| {
        meshmon_core::go::parse_bool(v.trim())
            .ok_or_else(|| env_err(var, v, "not a boolean (true/false, 1/0, t/f)".into()))
    };
    let dur = |var: &str, v: &str| Dur::parse(v).map_err(|m| env_err(var, v, m));
    let c = &mut cfg.cluster_agent;
    if let Some(v) = get("DD_CLUSTER_AGENT_ENABLED") {
        c.enabled = boolean("DD_CLUSTER_AGENT_ENABLED", &v)?;
    }
    if let Some(v) = get("DD_CLUSTER_AGENT_URL") {
        c.url = v.trim().to_owned();
    }
    if let Some(v) = get("DD_CLUSTER_AGENT_AUTH_TOKEN") {
        c.auth_token = v.trim().to_owned();
    }
    if let Some(v) = get("DD_CLUSTER_AGENT_CMD_PORT") {
        c.cmd_port = v.trim().parse().map_err(|_| {
            env_err(
                "DD_CLUSTER_AGENT_CMD_PORT",
                &v,
                "not a port number (0-65535)".into(),
            )
        })?;
    }
    if let Some(v) = get("MESHMON_CLUSTER_AGENT_HOST") {
        c.listen_host = v.trim().to_owned();
    }
    if let Some(v) = get("DD_CLUSTER_CHECKS_ENABLED") {
        c.cluster_checks_enabled = boolean("DD_CLUSTER_CHECKS_ENABLED", &v)?;
    }
    if let Some(v) = get("DD_CLUSTER_CHECKS_NODE_EXPIRATION_TIMEOUT") {
        c.node_expiration_timeout = dur("DD_CLUSTER_CHECKS_NODE_EXPIRATION_TIMEOUT", &v)?;
    }
    if let Some(v) = get("DD_CLUSTER_CHECKS_WARMUP_DURATION") {
        c.warmup_duration = dur("DD_CLUSTER_CHECKS_WARMUP_DURATION", &v)?;
    }
    if let Some(v) = get("MESHMON_CLUSTER_AGENT_KUBE_API_URL") {
        c.kube_api_url = v.trim().to_owned();
    }
    // Leader election (the Datadog Cluster Agent's names).
    if let Some(v) = get("DD_LEADER_ELECTION") {
        c.leader_election = boolean("DD_LEADER_ELECTION", &v)?;
    }
    if let Some(v) = get("DD_LEADER_LEASE_DURATION") {
        c.leader_lease_duration = dur("DD_LEADER_LEASE_DURATION", &v)?;
    }
    if let Some(v) = get("DD_LEADER_LEASE_NAME") {
        c.leader_lease_name = v.trim().to_owned();
    }
    if let Some(v) = get("DD_KUBE_RESOURCES_NAMESPACE") {
        c.leader_lease_namespace = v.trim().to_owned();
    }
    if let Some(v) = get("DD_POD_NAME").or_else(|| get("POD_NAME")) {
        c.pod_name = v.trim().to_owned();
    }
    if let Some(v) = get("MESHMON_CLUSTER_AGENT_ADVERTISE_URL") {
        c.advertise_url = v.trim().trim_end_matches('/').to_owned();
    } else if let Some(ip) = get("DD_POD_IP").filter(|v| !v.trim().is_empty()) {
        let ip = ip.trim();
        c.advertise_url = if ip.contains(':') {
            format!("http://[{ip}]:{}", c.cmd_port)
        } else {
            format!("http://{ip}:{}", c.cmd_port)
        };
    }
    if let Some(v) = get("DD_EXTRA_LISTENERS") {
        c.extra_listeners = v
            .split(|ch: char| ch.is_whitespace() || ch == ',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
    }
    Ok(())
}

/// What to report about one `DD_EXTRA_CONFIG_PROVIDERS` entry (`None`: used as is).
pub fn provider_notice(cfg: &AgentConfig, p: &str) -> Option<String> {
    match p {
        "endpointschecks" | "clusterchecks" if cfg.cluster_agent.enabled => None,
        "endpointschecks" | "clusterchecks" => Some(format!(
            "config provider {p:?} needs DD_CLUSTER_AGENT_ENABLED=true; not used"
        )),
        "kube_endpoints" | "kube_services" | "kube_endpointslices" if cfg!(feature = "kube") => {
            None
        }
        "kube_endpoints" | "kube_services" | "kube_endpointslices" => Some(format!(
            "config provider {p:?} (the Kubernetes API) needs the `kube` cargo feature: \
             this build of `meshmon-agent cluster-agent` reads the same objects from MESHMON_MANIFESTS"
        )),
        _ => Some(format!("config provider {p:?} is not known to meshmon")),
    }
}

/// A running cluster agent.
#[derive(Debug)]
pub struct RunningClusterAgent {
    /// Where the API listens.
    pub addr: SocketAddr,
    /// The shared state (tests read it directly).
    pub state: Arc<server::ClusterState>,
    shutdown: watch::Sender<bool>,
    handles: Vec<JoinHandle<()>>,
}

fn log(clock: &dyn Clock, level: &str, msg: &str) {
    eprintln!("{} {level:<5} cluster-agent: {msg}", fmt_time(clock.now()));
}

/// Starts the cluster agent of `cfg`; returns once the API is bound.
pub async fn start(cfg: AgentConfig, clock: Arc<dyn Clock>) -> anyhow::Result<RunningClusterAgent> {
    let ca = cfg.cluster_agent.clone();
    check_token(&ca.auth_token).map_err(|m| anyhow::anyhow!("cluster_agent.auth_token: {m}"))?;
    for n in &cfg.notices {
        log(&*clock, "INFO", n);
    }
    if !ca.cluster_checks_enabled {
        log(
            &*clock,
            "WARN",
            "cluster checks are disabled (DD_CLUSTER_CHECKS_ENABLED): nothing is dispatched",
        );
    }
    let opts = DispatchOptions::default()
        .with_node_expiration_timeout(ca.node_expiration_timeout.0)
        .with_warmup(ca.warmup_duration.0)
        .with_max_configs(ca.max_configs);
    let now = clock.now();
    let dispatcher = Dispatcher::new(opts.clone(), now).context("cluster_agent")?;
    let ad = &cfg.autodiscovery;
    let kube_listed = ad
        .extra_config_providers
        .iter()
        .any(|p| p.starts_with("kube_"));
    // Manifest files given (MESHMON_MANIFESTS) are where the objects come from, even with
    // the seed's `kube_*` provider names: the cluster agent then runs with no API server.
    let use_kube = cfg!(feature = "kube") && kube_listed && ad.manifests.is_empty();
    if cfg!(feature = "kube") && kube_listed && !use_kube {
        log(
            &*clock,
            "INFO",
            "MESHMON_MANIFESTS is set: the objects are read from the manifest files, \
             not the Kubernetes API",
        );
    }
    let elect = ca.leader_election && use_kube;
    if ca.leader_election && !use_kube {
        log(
            &*clock,
            "WARN",
            "leader election (DD_LEADER_ELECTION) needs the Kubernetes API provider: \
             with the file provider this replica always leads; run a single replica",
        );
    }
    let identity = if ca.pod_name.is_empty() {
        crate::run::machine_hostname()
    } else {
        ca.pod_name.clone()
    };
    let state = Arc::new(server::ClusterState {
        dispatcher: Mutex::new(dispatcher),
        token: ca.auth_token.clone(),
        enabled: ca.cluster_checks_enabled,
        clock: clock.clone(),
        started: now,
        max_body: ca.max_body_bytes,
        read_timeout: ca.read_timeout.0,
        provider: Mutex::default(),
        auth_missing: AtomicU64::new(0),
        auth_wrong: AtomicU64::new(0),
        too_large: AtomicU64::new(0),
        read_timeouts: AtomicU64::new(0),
        requests: Mutex::default(),
        guard: crate::http::guard::Guard::new(
            "cluster_agent",
            crate::http::guard::Limits::new(
                ca.max_connections,
                ca.read_timeout.0,
                ca.max_header_bytes,
            )
            .per_client(ca.max_connections_per_client),
        ),
        election: server::Election {
            enabled: elect,
            identity: identity.clone(),
            opts,
            view: Mutex::new(server::LeaderView {
                leader: !elect,
                leader_identity: if elect {
                    String::new()
                } else {
                    identity.clone()
                },
                leader_since: (!elect).then(|| now.as_secs_f64()),
                configs_ready: !elect,
                ..server::LeaderView::default()
            }),
            last_configs: Mutex::default(),
            forward_timeout: ca.request_timeout.0,
            forward_max_response: ca.max_response_bytes,
            http: hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http(),
            forwarded: Mutex::default(),
            no_leader: AtomicU64::new(0),
            lease_errors: AtomicU64::new(0),
            lease_conflicts: AtomicU64::new(0),
            became_leader: AtomicU64::new(0),
            warm_dispatched: std::sync::atomic::AtomicBool::new(false),
        },
    });
    let bind = format!("{}:{}", ca.listen_host, ca.cmd_port);
    let listener = tokio::net::TcpListener::bind(&bind)
        .await
        .with_context(|| format!("binding the cluster agent API on {bind}"))?;
    let addr = listener.local_addr()?;
    let (shutdown, rx) = watch::channel(false);
    let mut handles = Vec::new();
    handles.push(tokio::spawn(server::serve(
        listener,
        state.clone(),
        rx.clone(),
    )));

    // The provider: the manifest files, expanded for every node.
    let filter = ContainerFilter::new(&ad.container_include, &ad.container_exclude)
        .context("autodiscovery.container_exclude")?;
    let provider: Provider = if use_kube {
        kube_provider(&ca.kube_api_url, filter, clock.clone()).await?
    } else {
        if ad.manifests.is_empty() {
            log(
                &*clock,
                "WARN",
                "no manifests (MESHMON_MANIFESTS): no configs to dispatch",
            );
        }
        Provider::File(FileProvider::new(ad.manifests.clone(), None, filter))
    };
    let poll = ad.poll_interval.0;
    {
        let st = state.clone();
        let mut rx = rx.clone();
        handles.push(tokio::spawn(async move {
            loop {
                provider_pass(&st, &provider).await;
                tokio::select! {
                    _ = stopped(&mut rx) => return,
                    _ = tokio::time::sleep(poll) => {}
                }
            }
        }));
    }
    {
        let st = state.clone();
        let mut rx = rx.clone();
        let every = (ca.node_expiration_timeout.0 / 4)
            .clamp(Duration::from_millis(100), Duration::from_secs(1));
        handles.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stopped(&mut rx) => return,
                    _ = tokio::time::sleep(every) => {}
                }
                if !st.is_leader() {
                    continue;
                }
                let now = st.clock.now();
                let out = match st.dispatcher.lock() {
                    Ok(mut d) => d.tick(now),
                    Err(_) => return,
                };
                for n in &out.expired {
                    log(
                        &*st.clock,
                        "INFO",
                        &format!("node {n} expired: its cluster checks are dangling"),
                    );
                }
                if out.dispatched > 0 {
                    log(
                        &*st.clock,
                        "INFO",
                        &format!("dispatched {} dangling cluster checks", out.dispatched),
                    );
                }
            }
        }));
    }
    if elect {
        let url = if !ca.advertise_url.is_empty() {
            ca.advertise_url.clone()
        } else if addr.ip().is_unspecified() {
            log(
                &*clock,
                "WARN",
                "listening on every address and no cluster_agent.advertise_url \
                 (MESHMON_CLUSTER_AGENT_ADVERTISE_URL, DD_POD_IP): followers forward to the host name",
            );
            format!("http://{identity}:{}", addr.port())
        } else {
            format!("http://{addr}")
        };
        handles.push(
            start_election(&ca, &identity, &url, state.clone(), rx.clone())
                .await
                .context("starting leader election")?,
        );
    }
    log(&*clock, "INFO", &format!("API on http://{addr}"));
    Ok(RunningClusterAgent {
        addr,
        state,
        shutdown,
        handles,
    })
}

/// Where the cluster agent's objects come from.
enum Provider {
    /// Manifest files.
    File(FileProvider),
    /// The Kubernetes API.
    #[cfg(feature = "kube")]
    Kube(kube::KubeProvider),
}

impl Provider {
    async fn collect(
        &self,
    ) -> Result<
        Vec<meshmon_core::autodiscovery::CheckConfig>,
        meshmon_core::autodiscovery::ProviderError,
    > {
        match self {
            Provider::File(f) => f.collect().await,
            #[cfg(feature = "kube")]
            Provider::Kube(k) => k.collect().await,
        }
    }

    fn report(&self) -> Vec<String> {
        match self {
            Provider::File(f) => f.last_report.lock().map(|r| r.clone()).unwrap_or_default(),
            #[cfg(feature = "kube")]
            Provider::Kube(k) => vec![format!(
                "watch events {}, watch errors {}",
                k.stats.events.load(std::sync::atomic::Ordering::Relaxed),
                k.stats.errors.load(std::sync::atomic::Ordering::Relaxed)
            )],
        }
    }
}

#[cfg(feature = "kube")]
async fn start_election(
    ca: &crate::config::ClusterAgentConfig,
    identity: &str,
    url: &str,
    st: Arc<server::ClusterState>,
    rx: watch::Receiver<bool>,
) -> anyhow::Result<JoinHandle<()>> {
    let client = kube::client_as(&ca.kube_api_url, Some(identity)).await?;
    let ns = lease::namespace(&ca.leader_lease_namespace);
    let lock = lease::LeaseLock::new(client, &ns, &ca.leader_lease_name);
    st.log(
        "INFO",
        &format!(
            "leader election: lease {}, identity {identity}, advertising {url}, lease duration {:?}",
            lock.what, ca.leader_lease_duration.0
        ),
    );
    let e = election::Elector::new(identity, url, ca.leader_lease_duration.0);
    Ok(tokio::spawn(lease::run(lock, e, st, rx)))
}

#[cfg(not(feature = "kube"))]
async fn start_election(
    _ca: &crate::config::ClusterAgentConfig,
    _identity: &str,
    _url: &str,
    _st: Arc<server::ClusterState>,
    _rx: watch::Receiver<bool>,
) -> anyhow::Result<JoinHandle<()>> {
    anyhow::bail!("leader election needs the `kube` cargo feature")
}

#[cfg(feature = "kube")]
async fn kube_provider(
    url: &str,
    filter: ContainerFilter,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Provider> {
    let log: Arc<dyn Fn(String) + Send + Sync> =
        Arc::new(move |m| log(&*clock, "WARN", &format!("kubernetes API: {m}")));
    Ok(Provider::Kube(
        kube::KubeProvider::start(url, filter, log)
            .await
            .context("starting the Kubernetes API provider")?,
    ))
}

#[cfg(not(feature = "kube"))]
async fn kube_provider(
    _url: &str,
    _filter: ContainerFilter,
    _clock: Arc<dyn Clock>,
) -> anyhow::Result<Provider> {
    anyhow::bail!("the Kubernetes API provider needs the `kube` cargo feature")
}

fn log_set(
    st: &server::ClusterState,
    n: usize,
    out: &meshmon_core::autodiscovery::dispatch::SetOutcome,
) {
    if out.added + out.removed > 0 {
        log(
            &*st.clock,
            "INFO",
            &format!(
                "configs: {n} ({} added, {} removed)",
                out.added, out.removed
            ),
        );
    }
    if out.dropped_by_limit > 0 {
        log(
            &*st.clock,
            "WARN",
            &format!(
                "{} configs over cluster_agent.max_configs dropped",
                out.dropped_by_limit
            ),
        );
    }
}

async fn provider_pass(st: &server::ClusterState, provider: &Provider) {
    let now = st.clock.now();
    match provider.collect().await {
        Ok(configs) => {
            let n = configs.len();
            if st.election.enabled
                && let Ok(mut last) = st.election.last_configs.lock()
            {
                *last = Some(configs.clone());
            }
            // A follower only keeps them, for the moment it leads.
            if st.is_leader() {
                let out = match st.dispatcher.lock() {
                    Ok(mut d) => d.set_configs(now, configs),
                    Err(_) => return,
                };
                if let Ok(mut v) = st.election.view.lock() {
                    v.configs_ready = true;
                }
                log_set(st, n, &out);
            }
            if let Ok(mut p) = st.provider.lock() {
                p.configs = n;
                p.last_success = Some(now.as_secs_f64());
                p.last_error = None;
                p.report = provider.report();
            }
        }
        Err(e) => {
            // Keep dispatching what was read last: a transient read error must not
            // unschedule every check in the cluster.
            let msg = e.to_string();
            let changed = st
                .provider
                .lock()
                .map(|mut p| {
                    let c = p.last_error.as_deref() != Some(msg.as_str());
                    p.last_error = Some(msg.clone());
                    c
                })
                .unwrap_or(true);
            if changed {
                log(&*st.clock, "ERROR", &format!("provider: {msg}"));
            }
        }
    }
}

impl RunningClusterAgent {
    /// Stops every task and waits for them.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for h in self.handles {
            let _ = tokio::time::timeout(Duration::from_secs(10), h).await;
        }
    }
}

/// `meshmon-agent cluster-agent`.
#[derive(clap::Args, Debug)]
pub struct ClusterAgentArgs {
    /// Configuration file (YAML); default: `MESHMON_CONFIG`, else the embedded default.
    #[arg(long, short)]
    config: Option<PathBuf>,
}

/// Runs the cluster agent until SIGINT/SIGTERM.
pub fn run_command(a: ClusterAgentArgs) -> anyhow::Result<ExitCode> {
    let path = a.config.or_else(|| {
        std::env::var_os("MESHMON_CONFIG")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    });
    let cfg = AgentConfig::load(path.as_deref(), &ProcessEnv)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
        let agent = start(cfg, Arc::new(SystemClock)).await?;
        eprintln!("meshmon-agent cluster-agent: API http://{}", agent.addr);
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        agent.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// The seed's cluster-agent Deployment environment, plus what the issue adds.
    #[test]
    fn seed_cluster_agent_environment() {
        let cfg = AgentConfig::load(
            None,
            &env(&[
                ("DD_API_KEY", "0123456789abcdef0123456789abcdef"),
                ("DD_COLLECT_KUBERNETES_EVENTS", "true"),
                ("DD_EXTERNAL_METRICS_PROVIDER_ENABLED", "true"),
                (
                    "DD_CLUSTER_AGENT_AUTH_TOKEN",
                    "0123456789abcdef0123456789abcdef",
                ),
                ("DD_CLUSTER_CHECKS_ENABLED", "true"),
                ("DD_EXTRA_CONFIG_PROVIDERS", "kube_endpoints kube_services"),
                ("DD_EXTRA_LISTENERS", "kube_endpoints kube_services"),
                ("DD_CLUSTER_AGENT_CMD_PORT", "5005"),
                ("DD_CLUSTER_CHECKS_NODE_EXPIRATION_TIMEOUT", "5s"),
            ]),
        )
        .unwrap();
        let c = &cfg.cluster_agent;
        assert!(c.cluster_checks_enabled);
        assert_eq!(c.cmd_port, 5005);
        assert_eq!(c.listen_host, "127.0.0.1", "loopback unless told");
        assert_eq!(c.node_expiration_timeout, Dur::secs(5));
        assert_eq!(c.extra_listeners, ["kube_endpoints", "kube_services"]);
        // Without the `kube` feature the API providers are reported as not built.
        assert_eq!(
            cfg.notices
                .iter()
                .any(|n| n.contains("kube_endpoints") && n.contains("MESHMON_MANIFESTS")),
            !cfg!(feature = "kube")
        );
        assert!(!cfg.to_yaml().contains("0123456789abcdef"));
        assert!(!c.leader_election, "Datadog's default: off");
    }

    /// The Deployment's leader-election environment (Datadog's names).
    #[test]
    fn leader_election_environment() {
        let cfg = AgentConfig::load(
            None,
            &env(&[
                ("DD_LEADER_ELECTION", "true"),
                ("DD_LEADER_LEASE_DURATION", "15"),
                ("DD_LEADER_LEASE_NAME", "datadog-leader-election"),
                ("DD_KUBE_RESOURCES_NAMESPACE", "meshmon"),
                ("POD_NAME", "ignored"),
                ("DD_POD_NAME", "meshmon-cluster-agent-7d9-abcde"),
                ("DD_POD_IP", "10.244.0.7"),
                ("DD_CLUSTER_AGENT_CMD_PORT", "5006"),
            ]),
        )
        .unwrap();
        let c = &cfg.cluster_agent;
        assert!(c.leader_election);
        assert_eq!(c.leader_lease_duration, Dur::secs(15));
        assert_eq!(c.leader_lease_name, "datadog-leader-election");
        assert_eq!(c.leader_lease_namespace, "meshmon");
        assert_eq!(c.pod_name, "meshmon-cluster-agent-7d9-abcde");
        assert_eq!(c.advertise_url, "http://10.244.0.7:5006");
        let cfg = AgentConfig::load(
            None,
            &env(&[
                ("DD_POD_IP", "fd00::7"),
                (
                    "MESHMON_CLUSTER_AGENT_ADVERTISE_URL",
                    "http://ca.meshmon.svc:5005/",
                ),
            ]),
        )
        .unwrap();
        assert_eq!(
            cfg.cluster_agent.advertise_url,
            "http://ca.meshmon.svc:5005"
        );
        let cfg = AgentConfig::load(None, &env(&[("DD_POD_IP", "fd00::7")])).unwrap();
        assert_eq!(cfg.cluster_agent.advertise_url, "http://[fd00::7]:5005");
        let e = AgentConfig::load(None, &env(&[("DD_LEADER_LEASE_DURATION", "0.5")])).unwrap_err();
        assert!(
            e.to_string()
                .contains("cluster_agent.leader_lease_duration"),
            "{e}"
        );
        let e = AgentConfig::load(None, &env(&[("DD_LEADER_ELECTION", "maybe")])).unwrap_err();
        assert!(e.to_string().contains("DD_LEADER_ELECTION"), "{e}");
    }

    #[test]
    fn short_tokens_and_bad_values_are_refused() {
        let e = AgentConfig::load(
            None,
            &env(&[
                ("DD_CLUSTER_AGENT_ENABLED", "true"),
                ("DD_CLUSTER_AGENT_AUTH_TOKEN", "short"),
            ]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("cluster_agent.auth_token"), "{e}");
        assert!(!e.to_string().contains("short"), "token printed: {e}");
        let e = AgentConfig::load(None, &env(&[("DD_CLUSTER_AGENT_CMD_PORT", "x")])).unwrap_err();
        assert!(e.to_string().contains("DD_CLUSTER_AGENT_CMD_PORT"), "{e}");
        let e = AgentConfig::load(None, &env(&[("DD_CLUSTER_CHECKS_WARMUP_DURATION", "soon")]))
            .unwrap_err();
        assert!(
            e.to_string().contains("DD_CLUSTER_CHECKS_WARMUP_DURATION"),
            "{e}"
        );
        assert!(check_token(&"x".repeat(32)).is_ok());
        assert!(check_token(&"x".repeat(31)).is_err());
    }
}
