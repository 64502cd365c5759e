//! The agent's configuration: a YAML file (or the embedded default), then the environment
//! (`DD_*` names where they mean what the Datadog Agent means, `MESHMON_*` for meshmon's
//! own keys), validated once, here, into one [`AgentConfig`].
//!
//! Order of precedence, lowest first: the embedded default ([`DEFAULT_YAML`]), the file
//! (`--config FILE` or `MESHMON_CONFIG`), the environment. Every key is documented in
//! `CONFIG.md` beside the agent's `Cargo.toml`; a test checks that file against
//! [`AgentConfig`]'s keys.
//!
//! Unknown keys and bad values are errors that name the file, the line and column, and
//! the key path ([`ConfigError::Parse`]); environment values that do not parse name the
//! variable ([`ConfigError::Env`]).

mod duration;
mod env;
mod exports;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use duration::Dur;
pub use env::{ENV_VARS, EnvVar, Environment, ProcessEnv, apply_env};
pub use exports::{DatadogExportConfig, ExportQueueConfig, ExportsConfig, RemoteWriteConfig};

/// The embedded default configuration, as `meshmon-agent config show --default` prints it.
pub const DEFAULT_YAML: &str = include_str!("default.yaml");

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The YAML is malformed, or a key is unknown or has the wrong type.
    #[error("{file}:{line}:{column}: {key}: {message}")]
    Parse {
        /// The file (`<default>` for the embedded one).
        file: String,
        /// 1-based line (0 when the parser gave none).
        line: usize,
        /// 1-based column (0 when the parser gave none).
        column: usize,
        /// The key path, e.g. `apm.receiver_port` (`.` for the document itself).
        key: String,
        /// What is wrong.
        message: String,
    },
    /// An environment variable's value does not parse.
    #[error("environment variable {var}={value:?}: {message}")]
    Env {
        /// The variable.
        var: String,
        /// Its value (secrets are shown as `***`).
        value: String,
        /// What is wrong.
        message: String,
    },
    /// A value parsed but is not allowed.
    #[error("{key}: {message}")]
    Invalid {
        /// The key path.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// The whole agent configuration (`meshmon-agent run`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct AgentConfig {
    /// Host name put on every series (`DD_HOSTNAME`); empty = the machine's host name.
    pub hostname: String,
    /// `env:` tag on every series (`DD_ENV`); empty = none.
    pub env: String,
    /// Global tags on every series (`DD_TAGS`), Datadog's `key:value` form.
    pub tags: Vec<String>,
    /// Datadog API key (`DD_API_KEY`); kept for the exports, never printed.
    #[serde(skip_serializing_if = "String::is_empty", serialize_with = "redact")]
    pub api_key: String,
    /// Where state is kept (`MESHMON_DATA_DIR`).
    pub data_dir: PathBuf,
    /// The HTTP API.
    pub api: ApiConfig,
    /// Static check configurations, like the Agent's `conf.d`.
    pub checks: Vec<StaticCheck>,
    /// Config providers and container filters.
    pub autodiscovery: AutodiscoveryConfig,
    /// The scrape loop.
    pub scrape: ScrapeConfig,
    /// Trace intake.
    pub apm: ApmConfig,
    /// Log collection.
    pub logs: LogsConfig,
    /// The DogStatsD listener.
    pub dogstatsd: DogStatsdConfig,
    /// The in-memory store's limits.
    pub store: StoreConfig,
    /// Monitors evaluated on the store (`crate::monitor`).
    pub monitors: Vec<crate::monitor::config::MonitorSpec>,
    /// The Watchdog: automatic monitors over every service's RED signals.
    pub watchdog: crate::monitor::config::WatchdogSettings,
    /// Where monitor notifications go.
    pub notifiers: crate::monitor::config::NotifiersConfig,
    /// Where metrics are sent: Prometheus remote write, Datadog series.
    pub exports: ExportsConfig,
    /// The cluster agent (`meshmon-agent cluster-agent`) and the node side's client of it.
    pub cluster_agent: ClusterAgentConfig,
    /// Environment variables that were recognised but do not change meshmon (filled by
    /// [`apply_env`], reported at start and by `status`).
    #[serde(skip)]
    pub notices: Vec<String>,
}

fn redact<S: serde::Serializer>(_: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str("***")
}

/// `api:`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct ApiConfig {
    /// Listen address of the HTTP API (`MESHMON_API_ADDR`).
    pub listen: String,
    /// Connections served at once; one more is answered 503 and closed (counted).
    pub max_connections: usize,
    /// Time allowed for a request's line and headers (slowloris cut, counted).
    pub header_read_timeout: Dur,
    /// Largest request line + headers in bytes; beyond it 431 (counted).
    pub max_header_bytes: usize,
    /// Connections served at once from one peer address; one more is answered 503 and
    /// closed (counted).
    pub max_connections_per_client: usize,
    /// Names besides IP literals and `localhost` that a request's `Host` may carry
    /// (anything else is refused 403: DNS rebinding).
    pub allowed_hosts: Vec<String>,
}

/// One entry of `checks:`: a check name, its `init_config` and instances.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct StaticCheck {
    /// Check name: `istio`, `openmetrics`, `prometheus`.
    pub name: String,
    /// The check's `init_config`.
    #[serde(default)]
    pub init_config: serde_json::Value,
    /// One or more instances.
    pub instances: Vec<serde_json::Value>,
}

/// `autodiscovery:`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct AutodiscoveryConfig {
    /// Kubernetes manifests (files or folders) for the file provider (`MESHMON_MANIFESTS`).
    pub manifests: Vec<PathBuf>,
    /// How often the file provider re-reads them (Datadog's `ad_config_poll_interval`).
    pub poll_interval: Dur,
    /// Keep only endpoints checks of this node (`DD_KUBERNETES_NODE_NAME`, `--node`).
    pub node: String,
    /// `DD_CONTAINER_INCLUDE` (or `DD_AC_INCLUDE`) rules.
    pub container_include: Vec<String>,
    /// `DD_CONTAINER_EXCLUDE` (or `DD_AC_EXCLUDE`) rules.
    pub container_exclude: Vec<String>,
    /// `DD_EXTRA_CONFIG_PROVIDERS`; `endpointschecks`/`clusterchecks` need the cluster
    /// agent, which is not part of this release: they are reported, not used.
    pub extra_config_providers: Vec<String>,
    /// `DD_KUBERNETES_KUBELET_HOST` (recorded; the kubelet provider is not built yet).
    pub kubelet_host: String,
}

/// `scrape:`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct ScrapeConfig {
    /// Interval of an instance without `min_collection_interval`.
    pub default_interval: Dur,
    /// Random share of the interval added before each scrape, in `[0, 1)`.
    pub jitter: f64,
    /// Timeout of one scrape, body included.
    pub timeout: Dur,
    /// Largest body accepted, before and after decompression.
    pub max_body_bytes: usize,
    /// Most scrapes in flight at once.
    pub max_concurrency: usize,
    /// Most counter series tracked for deltas, per instance.
    pub max_delta_series: usize,
}

/// `apm:`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct ApmConfig {
    /// Run the trace intake (`DD_APM_ENABLED`).
    pub enabled: bool,
    /// Listen on all interfaces instead of loopback (`DD_APM_NON_LOCAL_TRAFFIC`).
    pub non_local_traffic: bool,
    /// Datadog intake port (`DD_APM_RECEIVER_PORT`); 0 picks a free port.
    pub receiver_port: u16,
    /// Zipkin intake port (`MESHMON_ZIPKIN_PORT`); 0 picks a free port; `null` disables.
    pub zipkin_port: Option<u16>,
    /// Default `env` of spans that carry none (`DD_APM_ENV`).
    pub env: String,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Requests queued for decoding; one more is refused (429 with
    /// `Datadog-Send-Real-Http-Status`, else 200), counted.
    pub queue_requests: usize,
    /// Connections served at once per intake listener; one more is answered 503 and
    /// closed (counted).
    pub max_connections: usize,
    /// Connections served at once per intake listener from one peer address; one more
    /// is answered 503 and closed (counted).
    pub max_connections_per_client: usize,
    /// Time allowed for a request's line and headers (slowloris cut, counted).
    pub header_read_timeout: Dur,
    /// Time allowed for a request's whole body once its headers arrived; beyond it 408
    /// (counted).
    pub body_read_timeout: Dur,
    /// Largest request line + headers in bytes; beyond it 431 (counted).
    pub max_header_bytes: usize,
    /// The intake's hard memory budget: request bodies being read, queued or decoded at
    /// once, in bytes (a declared length, or `max_body_bytes` for a chunked body);
    /// beyond it a request is refused like a full queue's (counted).
    pub max_inflight_body_bytes: usize,
    /// How long a request waits for its share of `max_inflight_body_bytes` before it is
    /// refused, as the Datadog Agent waits for a free decoder (`apm_config.decoder_timeout`,
    /// 1000 ms there too); `0s` refuses at once. A waiting request holds a connection but
    /// no memory.
    pub decoder_timeout: Dur,
    /// How often RED stats are flushed into series.
    pub stats_flush_interval: Dur,
    /// A trace is complete after this long without a new span.
    pub trace_timeout: Dur,
    /// Most spans held by traces being assembled; beyond it the oldest trace is completed
    /// early (counted).
    pub max_assembling_spans: usize,
}

/// `dogstatsd:`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct DogStatsdConfig {
    /// Run the listener (`DD_USE_DOGSTATSD`).
    pub enabled: bool,
    /// UDP port (`DD_DOGSTATSD_PORT`); 0 picks a free port.
    pub port: u16,
    /// Listen on all interfaces instead of loopback (`DD_DOGSTATSD_NON_LOCAL_TRAFFIC`).
    pub non_local_traffic: bool,
    /// Unix datagram socket to listen on as well (`DD_DOGSTATSD_SOCKET`, the Agent's
    /// `dogstatsd_socket`); empty = none.
    pub socket: String,
    /// How often aggregated metrics go into the store.
    pub flush_interval: Dur,
    /// Most contexts (name, type, tags) between flushes; more are dropped and counted.
    pub max_contexts: usize,
    /// Datagrams held between the listeners and the aggregator (the Agent's
    /// `dogstatsd_queue_size`); a datagram arriving when it is full is dropped and counted.
    pub queue_size: usize,
    /// `SO_RCVBUF` of the UDP socket in bytes (`DD_DOGSTATSD_SO_RCVBUF`, the Agent's
    /// `dogstatsd_so_rcvbuf`); 0 keeps the kernel's default (`net.core.rmem_default`).
    pub so_rcvbuf: usize,
}

/// `logs:`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct LogsConfig {
    /// Collect logs at all (`DD_LOGS_ENABLED`).
    pub enabled: bool,
    /// Tail every container's log under `pod_logs_root`
    /// (`DD_LOGS_CONFIG_CONTAINER_COLLECT_ALL`).
    pub container_collect_all: bool,
    /// The kubelet's pod log folder (`MESHMON_POD_LOGS_ROOT`), laid out
    /// `<namespace>_<pod>_<uid>/<container>/<n>.log`.
    pub pod_logs_root: PathBuf,
    /// Explicit log sources.
    pub configs: Vec<LogSource>,
    /// How often folders and globs are scanned for new files.
    pub scan_interval: Dur,
    /// How often open files are read.
    pub read_interval: Dur,
    /// Longest line; longer lines are cut and counted.
    pub max_line_bytes: usize,
    /// Most bytes read from one file per read (the batch).
    pub max_read_bytes: usize,
    /// Most files tailed at once; more are counted and skipped.
    pub max_open_files: usize,
    /// Most patterns per miner (one miner per service/source).
    pub max_patterns: usize,
}

/// One entry of `logs.configs`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct LogSource {
    /// Source type; only `file` is supported.
    #[serde(rename = "type")]
    pub kind: String,
    /// A path or glob (`*`, `?`, `[..]` in the file name part).
    pub path: String,
    /// `service` of its records.
    #[serde(default)]
    pub service: String,
    /// `source` of its records.
    #[serde(default)]
    pub source: String,
    /// Extra tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Datadog's `log_processing_rules`.
    #[serde(default)]
    pub log_processing_rules: Vec<serde_json::Value>,
}

/// `store:`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct StoreConfig {
    /// Most series kept; new series beyond are dropped and counted.
    pub max_series: usize,
    /// Most points per series (oldest dropped first).
    pub max_points_per_series: usize,
    /// Most traces kept (oldest dropped first).
    pub max_traces: usize,
    /// Most spans kept per trace.
    pub max_spans_per_trace: usize,
    /// Sample messages kept per log pattern.
    pub max_samples_per_pattern: usize,
    /// New traces per second and root service copied into the trace store (every error
    /// trace is); the rest count in RED stats and the service map only.
    pub traces_per_second_per_service: f64,
    /// Log lines held by the log ↔ trace correlation index (oldest evicted, counted;
    /// 0 turns it off).
    pub max_correlated_logs: usize,
    /// Log lines kept per trace id or Envoy request id (later lines refused, counted).
    pub max_logs_per_trace: usize,
    /// Longest message the correlation index keeps, in bytes (longer ones are cut,
    /// counted; 0: no cut).
    pub max_correlated_line_bytes: usize,
}

/// `cluster_agent:`: the server side (`meshmon-agent cluster-agent`) and the node side's
/// `endpointschecks` / `clusterchecks` providers.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct ClusterAgentConfig {
    /// Node side: talk to the cluster agent (`DD_CLUSTER_AGENT_ENABLED`).
    pub enabled: bool,
    /// Node side: the cluster agent's URL (`DD_CLUSTER_AGENT_URL`); empty: the Kubernetes
    /// service `http://datadog-cluster-agent:<cmd_port>`.
    pub url: String,
    /// Shared token, at least 32 characters (`DD_CLUSTER_AGENT_AUTH_TOKEN`); never printed.
    #[serde(skip_serializing_if = "String::is_empty", serialize_with = "redact")]
    pub auth_token: String,
    /// Node side: keep running the last configs this long while the cluster agent is
    /// unreachable, then unschedule them.
    pub grace_period: Dur,
    /// Node side: timeout of one request to the cluster agent.
    pub request_timeout: Dur,
    /// Server: listen host (`MESHMON_CLUSTER_AGENT_HOST`); loopback by default.
    pub listen_host: String,
    /// Server: port (`DD_CLUSTER_AGENT_CMD_PORT`); 0 picks a free port.
    pub cmd_port: u16,
    /// Server: dispatch cluster and endpoints checks (`DD_CLUSTER_CHECKS_ENABLED`).
    pub cluster_checks_enabled: bool,
    /// Server: a node silent this long is removed and its cluster checks re-dispatched
    /// (`DD_CLUSTER_CHECKS_NODE_EXPIRATION_TIMEOUT`).
    pub node_expiration_timeout: Dur,
    /// Server: after start nothing is moved for this long
    /// (`DD_CLUSTER_CHECKS_WARMUP_DURATION`).
    pub warmup_duration: Dur,
    /// Server: `DD_EXTRA_LISTENERS` (recorded; the manifest provider needs none).
    pub extra_listeners: Vec<String>,
    /// Server, feature `kube`: the API server's URL (plain HTTP, no credentials: tests,
    /// `kubectl proxy`); empty: in-cluster service account or kubeconfig.
    pub kube_api_url: String,
    /// Server: most configs held (more are dropped and counted).
    pub max_configs: usize,
    /// Server: largest request body (413 beyond, counted).
    pub max_body_bytes: usize,
    /// Node side: largest answer read from the cluster agent (beyond: an error, counted).
    pub max_response_bytes: usize,
    /// Server: time allowed to read a request's headers and body.
    pub read_timeout: Dur,
    /// Server: connections served at once; one more is answered 503 and closed (counted).
    pub max_connections: usize,
    /// Server: connections served at once from one peer address (a follower forwarding
    /// for many node agents is one peer); one more is answered 503 and closed (counted).
    pub max_connections_per_client: usize,
    /// Server: largest request line + headers in bytes; beyond it 431 (counted).
    pub max_header_bytes: usize,
    /// Server, feature `kube`: elect one leader among the replicas through a
    /// `coordination.k8s.io/v1` Lease (`DD_LEADER_ELECTION`); off, or with the file
    /// provider, this replica is the leader.
    pub leader_election: bool,
    /// Server: the Lease's `leaseDurationSeconds`, whole seconds (`DD_LEADER_LEASE_DURATION`);
    /// the leader renews every third of it.
    pub leader_lease_duration: Dur,
    /// Server: the Lease's name (`DD_LEADER_LEASE_NAME`).
    pub leader_lease_name: String,
    /// Server: the Lease's namespace (`DD_KUBE_RESOURCES_NAMESPACE`); empty: the service
    /// account's namespace, else `default`.
    pub leader_lease_namespace: String,
    /// Server: this replica's identity in the Lease (`DD_POD_NAME`, `POD_NAME`); empty:
    /// the host name.
    pub pod_name: String,
    /// Server: the URL followers forward to while this replica leads, written to the
    /// Lease's `meshmon.io/leader-url` annotation (`MESHMON_CLUSTER_AGENT_ADVERTISE_URL`,
    /// or `http://$DD_POD_IP:<cmd_port>`); empty: `http://<listen_host>:<bound port>`.
    pub advertise_url: String,
}

impl Default for AgentConfig {
    /// The built-in values; `DEFAULT_YAML` spells the same values out (a test asserts
    /// that both agree).
    fn default() -> Self {
        AgentConfig::builtin()
    }
}

macro_rules! default_from_agent {
    ($t:ty, $field:ident) => {
        impl Default for $t {
            fn default() -> Self {
                AgentConfig::builtin().$field
            }
        }
    };
}
default_from_agent!(ApiConfig, api);
default_from_agent!(AutodiscoveryConfig, autodiscovery);
default_from_agent!(ScrapeConfig, scrape);
default_from_agent!(ApmConfig, apm);
default_from_agent!(LogsConfig, logs);
default_from_agent!(DogStatsdConfig, dogstatsd);
default_from_agent!(StoreConfig, store);
default_from_agent!(ClusterAgentConfig, cluster_agent);

impl AgentConfig {
    /// Built-in values (serde's defaults for keys a file leaves out).
    fn builtin() -> Self {
        AgentConfig {
            hostname: String::new(),
            env: String::new(),
            tags: Vec::new(),
            api_key: String::new(),
            data_dir: PathBuf::from("./meshmon-data"),
            api: ApiConfig {
                listen: "127.0.0.1:5002".into(),
                max_connections: 256,
                header_read_timeout: Dur::secs(10),
                max_header_bytes: 64 << 10,
                max_connections_per_client: 64,
                allowed_hosts: Vec::new(),
            },
            checks: Vec::new(),
            autodiscovery: AutodiscoveryConfig {
                manifests: Vec::new(),
                poll_interval: Dur::secs(10),
                node: String::new(),
                container_include: Vec::new(),
                container_exclude: Vec::new(),
                extra_config_providers: Vec::new(),
                kubelet_host: String::new(),
            },
            scrape: ScrapeConfig {
                default_interval: Dur::secs(15),
                jitter: 0.1,
                timeout: Dur::secs(10),
                max_body_bytes: 64 << 20,
                max_concurrency: 16,
                max_delta_series: 100_000,
            },
            apm: ApmConfig {
                enabled: true,
                non_local_traffic: false,
                receiver_port: 8126,
                zipkin_port: Some(9411),
                env: "none".into(),
                max_body_bytes: 25 << 20,
                queue_requests: 64,
                max_connections: 1024,
                max_connections_per_client: 256,
                header_read_timeout: Dur::secs(10),
                body_read_timeout: Dur::secs(30),
                max_header_bytes: 64 << 10,
                max_inflight_body_bytes: 256 << 20,
                decoder_timeout: Dur::secs(1),
                stats_flush_interval: Dur::secs(10),
                trace_timeout: Dur::secs(5),
                max_assembling_spans: 50_000,
            },
            logs: LogsConfig {
                enabled: false,
                container_collect_all: false,
                pod_logs_root: PathBuf::from("/var/log/pods"),
                configs: Vec::new(),
                scan_interval: Dur::secs(10),
                read_interval: Dur::secs(1),
                max_line_bytes: 256 << 10,
                max_read_bytes: 256 << 10,
                max_open_files: 512,
                max_patterns: 1000,
            },
            dogstatsd: DogStatsdConfig {
                enabled: true,
                port: 8125,
                non_local_traffic: false,
                socket: String::new(),
                flush_interval: Dur::secs(10),
                max_contexts: 100_000,
                queue_size: 1024,
                so_rcvbuf: 0,
            },
            store: StoreConfig {
                max_series: 100_000,
                max_points_per_series: 720,
                max_traces: 2000,
                max_spans_per_trace: 1000,
                max_samples_per_pattern: 3,
                traces_per_second_per_service: 10.0,
                max_correlated_logs: 20_000,
                max_logs_per_trace: 200,
                max_correlated_line_bytes: 4096,
            },
            monitors: Vec::new(),
            watchdog: crate::monitor::config::WatchdogSettings::default(),
            notifiers: crate::monitor::config::NotifiersConfig::default(),
            exports: ExportsConfig::default(),
            cluster_agent: ClusterAgentConfig {
                enabled: false,
                url: String::new(),
                auth_token: String::new(),
                grace_period: Dur::secs(60),
                request_timeout: Dur::secs(5),
                listen_host: "127.0.0.1".into(),
                cmd_port: 5005,
                cluster_checks_enabled: false,
                node_expiration_timeout: Dur::secs(30),
                warmup_duration: Dur::secs(30),
                extra_listeners: Vec::new(),
                kube_api_url: String::new(),
                max_configs: 1_000_000,
                max_body_bytes: 1 << 20,
                max_response_bytes: 16 << 20,
                read_timeout: Dur::secs(10),
                max_connections: 1024,
                max_connections_per_client: 256,
                max_header_bytes: 64 << 10,
                leader_election: false,
                leader_lease_duration: Dur::secs(60),
                leader_lease_name: "meshmon-leader-election".into(),
                leader_lease_namespace: String::new(),
                pod_name: String::new(),
                advertise_url: String::new(),
            },
            notices: Vec::new(),
        }
    }

    /// Loads the effective configuration: `file` (or the embedded default), then the
    /// environment, then validation.
    pub fn load(file: Option<&Path>, env: &dyn Environment) -> Result<Self, ConfigError> {
        let mut cfg = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                parse_yaml(&text, &path.display().to_string())?
            }
            None => parse_yaml(DEFAULT_YAML, "<default>")?,
        };
        apply_env(&mut cfg, env)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every value that parsed but may still be wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, message: String| ConfigError::Invalid {
            key: key.to_owned(),
            message,
        };
        self.api_listen()
            .map_err(|e| bad("api.listen", format!("not an address ({e})")))?;
        for t in &self.tags {
            t.parse::<meshmon_core::Tag>()
                .map_err(|e| bad("tags", format!("{t:?}: {e}")))?;
        }
        // A Unix socket path fits sockaddr_un's 108-byte sun_path, NUL included.
        if self.dogstatsd.socket.len() > 107 {
            return Err(bad(
                "dogstatsd.socket",
                format!(
                    "{} bytes; a Unix socket path has at most 107",
                    self.dogstatsd.socket.len()
                ),
            ));
        }
        let positive = [
            (
                "autodiscovery.poll_interval",
                self.autodiscovery.poll_interval,
            ),
            ("scrape.default_interval", self.scrape.default_interval),
            ("scrape.timeout", self.scrape.timeout),
            ("apm.stats_flush_interval", self.apm.stats_flush_interval),
            ("apm.trace_timeout", self.apm.trace_timeout),
            ("logs.scan_interval", self.logs.scan_interval),
            ("api.header_read_timeout", self.api.header_read_timeout),
            ("apm.header_read_timeout", self.apm.header_read_timeout),
            ("apm.body_read_timeout", self.apm.body_read_timeout),
            ("logs.read_interval", self.logs.read_interval),
            ("dogstatsd.flush_interval", self.dogstatsd.flush_interval),
            (
                "cluster_agent.node_expiration_timeout",
                self.cluster_agent.node_expiration_timeout,
            ),
            (
                "cluster_agent.request_timeout",
                self.cluster_agent.request_timeout,
            ),
            (
                "cluster_agent.read_timeout",
                self.cluster_agent.read_timeout,
            ),
            (
                "cluster_agent.leader_lease_duration",
                self.cluster_agent.leader_lease_duration,
            ),
        ];
        for (k, d) in positive {
            if d.0.is_zero() {
                return Err(bad(k, "must be greater than 0".into()));
            }
        }
        if !(self.store.traces_per_second_per_service > 0.0
            && self.store.traces_per_second_per_service.is_finite())
        {
            return Err(bad(
                "store.traces_per_second_per_service",
                "must be a positive number".into(),
            ));
        }
        if !(0.0..1.0).contains(&self.scrape.jitter) {
            return Err(bad("scrape.jitter", "must be in [0, 1)".into()));
        }
        let nonzero = [
            ("scrape.max_body_bytes", self.scrape.max_body_bytes),
            ("scrape.max_concurrency", self.scrape.max_concurrency),
            ("scrape.max_delta_series", self.scrape.max_delta_series),
            ("apm.max_body_bytes", self.apm.max_body_bytes),
            ("apm.queue_requests", self.apm.queue_requests),
            ("apm.max_assembling_spans", self.apm.max_assembling_spans),
            ("logs.max_line_bytes", self.logs.max_line_bytes),
            ("api.max_connections", self.api.max_connections),
            (
                "api.max_connections_per_client",
                self.api.max_connections_per_client,
            ),
            (
                "apm.max_connections_per_client",
                self.apm.max_connections_per_client,
            ),
            ("api.max_header_bytes", self.api.max_header_bytes),
            ("apm.max_connections", self.apm.max_connections),
            ("apm.max_header_bytes", self.apm.max_header_bytes),
            ("logs.max_read_bytes", self.logs.max_read_bytes),
            ("logs.max_open_files", self.logs.max_open_files),
            ("logs.max_patterns", self.logs.max_patterns),
            ("dogstatsd.max_contexts", self.dogstatsd.max_contexts),
            ("dogstatsd.queue_size", self.dogstatsd.queue_size),
            ("store.max_series", self.store.max_series),
            (
                "store.max_points_per_series",
                self.store.max_points_per_series,
            ),
            ("store.max_traces", self.store.max_traces),
            ("store.max_spans_per_trace", self.store.max_spans_per_trace),
            ("cluster_agent.max_configs", self.cluster_agent.max_configs),
            (
                "cluster_agent.max_connections",
                self.cluster_agent.max_connections,
            ),
            (
                "cluster_agent.max_connections_per_client",
                self.cluster_agent.max_connections_per_client,
            ),
            (
                "cluster_agent.max_header_bytes",
                self.cluster_agent.max_header_bytes,
            ),
            (
                "cluster_agent.max_body_bytes",
                self.cluster_agent.max_body_bytes,
            ),
            (
                "cluster_agent.max_response_bytes",
                self.cluster_agent.max_response_bytes,
            ),
        ];
        for (k, v) in nonzero {
            if v == 0 {
                return Err(bad(k, "must be greater than 0".into()));
            }
        }
        if self.apm.max_inflight_body_bytes < self.apm.max_body_bytes {
            return Err(bad(
                "apm.max_inflight_body_bytes",
                format!(
                    "{} is less than apm.max_body_bytes ({}): a body of the largest size could never be read",
                    self.apm.max_inflight_body_bytes, self.apm.max_body_bytes
                ),
            ));
        }
        for (i, c) in self.checks.iter().enumerate() {
            if c.name.is_empty() {
                return Err(bad(
                    &format!("checks[{i}].name"),
                    "must not be empty".into(),
                ));
            }
            if c.instances.is_empty() {
                return Err(bad(
                    &format!("checks[{i}].instances"),
                    "needs at least one instance".into(),
                ));
            }
            for (j, inst) in c.instances.iter().enumerate() {
                if !inst.is_object() {
                    return Err(bad(
                        &format!("checks[{i}].instances[{j}]"),
                        "must be a mapping".into(),
                    ));
                }
            }
        }
        for (i, s) in self.logs.configs.iter().enumerate() {
            if s.kind != "file" {
                return Err(bad(
                    &format!("logs.configs[{i}].type"),
                    format!("{:?} is not supported (only \"file\")", s.kind),
                ));
            }
            if s.path.is_empty() {
                return Err(bad(
                    &format!("logs.configs[{i}].path"),
                    "must not be empty".into(),
                ));
            }
            #[cfg(feature = "logs")]
            {
                let rules: Vec<meshmon_logs::rules::Rule> = serde_json::from_value(
                    serde_json::Value::Array(s.log_processing_rules.clone()),
                )
                .map_err(|e| {
                    bad(
                        &format!("logs.configs[{i}].log_processing_rules"),
                        e.to_string(),
                    )
                })?;
                meshmon_logs::rules::Processor::new(&rules).map_err(|e| {
                    bad(
                        &format!("logs.configs[{i}].log_processing_rules"),
                        e.to_string(),
                    )
                })?;
            }
        }
        meshmon_core::autodiscovery::ContainerFilter::new(
            &self.autodiscovery.container_include,
            &self.autodiscovery.container_exclude,
        )
        .map_err(|e| bad("autodiscovery.container_exclude", e.to_string()))?;
        crate::monitor::config::validate(&self.monitors, &self.watchdog, &self.notifiers)
            .map_err(|(k, m)| bad(&k, m))?;
        self.exports.validate()?;
        if self.cluster_agent.enabled {
            crate::cluster::check_token(&self.cluster_agent.auth_token)
                .map_err(|m| bad("cluster_agent.auth_token", m))?;
        }
        crate::cluster::election::validate(&self.cluster_agent).map_err(|(k, m)| bad(k, m))?;
        Ok(())
    }

    /// The API's listen address.
    pub fn api_listen(&self) -> Result<SocketAddr, std::net::AddrParseError> {
        self.api.listen.parse()
    }

    /// The effective configuration as YAML, secrets redacted.
    pub fn to_yaml(&self) -> String {
        serde_norway::to_string(self).unwrap_or_else(|e| format!("# cannot print: {e}\n"))
    }
}

/// Parses one YAML document into an [`AgentConfig`]; errors carry `file`, the line and
/// column, and the key path.
pub fn parse_yaml(text: &str, file: &str) -> Result<AgentConfig, ConfigError> {
    if text.trim().is_empty() {
        return Ok(AgentConfig::builtin());
    }
    let de = serde_norway::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        let (line, column) = inner.location().map_or((0, 0), |l| (l.line(), l.column()));
        let mut message = inner.to_string();
        // serde_norway appends " at line L column C"; the location is already in front.
        if let Some(i) = message.find(" at line ") {
            message.truncate(i);
        }
        // …and may put the parent's path in front: the key path already says it.
        if let Some((head, rest)) = message.split_once(": ")
            && !head.contains(' ')
            && key.starts_with(head)
        {
            message = rest.to_owned();
        }
        ConfigError::Parse {
            file: file.to_owned(),
            line,
            column,
            key,
            message,
        }
    })
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap};

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn embedded_default_equals_builtin_values() {
        let parsed = parse_yaml(DEFAULT_YAML, "<default>").unwrap();
        assert_eq!(parsed, AgentConfig::default());
        parsed.validate().unwrap();
    }

    fn leaf_keys(prefix: &str, v: &serde_json::Value, out: &mut BTreeSet<String>) {
        match v {
            serde_json::Value::Object(m) if m.is_empty() => {
                out.insert(prefix.to_owned());
            }
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    let p = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    leaf_keys(&p, v, out);
                }
            }
            serde_json::Value::Array(a) => {
                out.insert(prefix.to_owned());
                if let Some(first @ serde_json::Value::Object(_)) = a.first() {
                    leaf_keys(&format!("{prefix}[]"), first, out);
                }
            }
            _ => {
                out.insert(prefix.to_owned());
            }
        }
    }

    #[test]
    fn config_reference_matches_code() {
        // Every key of a configuration with one item in each list…
        let mut cfg = AgentConfig {
            api_key: "k".into(),
            ..AgentConfig::default()
        };
        cfg.cluster_agent.auth_token = "t".into();
        cfg.checks.push(StaticCheck {
            name: "istio".into(),
            init_config: serde_json::json!({}),
            instances: vec![serde_json::json!("an instance")],
        });
        cfg.logs.configs.push(LogSource {
            kind: "file".into(),
            path: "/x".into(),
            service: String::new(),
            source: String::new(),
            tags: Vec::new(),
            log_processing_rules: Vec::new(),
        });
        cfg.monitors.push(crate::monitor::config::MonitorSpec::new(
            "m",
            crate::monitor::config::MonitorKind::Metric,
        ));
        cfg.notifiers.webhooks = serde_norway::from_str("[{url: 'http://x/'}]").unwrap();
        cfg.notifiers.alertmanagers = serde_norway::from_str("[{url: 'http://x/'}]").unwrap();
        let mut code = BTreeSet::new();
        leaf_keys("", &serde_json::to_value(&cfg).unwrap(), &mut code);
        // …is in CONFIG.md's key table, and nothing else is.
        let doc = include_str!("../../CONFIG.md");
        let keys_section = &doc[doc.find("## Keys").unwrap()..doc.find("## Environment").unwrap()];
        let documented: BTreeSet<String> = keys_section
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split('`').next())
            .map(str::to_owned)
            .collect();
        assert_eq!(
            code, documented,
            "CONFIG.md's key table and AgentConfig differ"
        );
        // Every environment variable the code reads is documented.
        let env_section = &doc[doc.find("## Environment").unwrap()..];
        for (name, _) in ENV_VARS {
            assert!(
                env_section.contains(&format!("| `{name}` |")),
                "{name} not in CONFIG.md"
            );
        }
    }

    #[test]
    fn errors_name_file_line_column_and_key() {
        let text = "data_dir: /tmp/x\napm:\n  enabled: true\n  recever_port: 1\n";
        match parse_yaml(text, "agent.yaml") {
            Err(ConfigError::Parse {
                file,
                line,
                column,
                key,
                message,
            }) => {
                assert_eq!(file, "agent.yaml");
                assert_eq!((line, column), (4, 3));
                assert_eq!(key, "apm.recever_port");
                assert!(
                    message.contains("unknown field `recever_port`"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
        match parse_yaml("apm:\n  receiver_port: 70000\n", "a.yaml") {
            Err(ConfigError::Parse { line, key, .. }) => {
                assert_eq!(line, 2);
                assert_eq!(key, "apm.receiver_port");
            }
            other => panic!("{other:?}"),
        }
        match parse_yaml("scrape:\n  timeout: 10 parsecs\n", "a.yaml") {
            Err(e @ ConfigError::Parse { .. }) => {
                let s = e.to_string();
                assert!(s.starts_with("a.yaml:2:"), "{s}");
                assert!(s.contains("scrape.timeout"), "{s}");
            }
            other => panic!("{other:?}"),
        }
        let e = parse_yaml(
            "logs:\n  configs:\n    - type: file\n      path: /x\n      sevice: a\n",
            "b.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("logs.configs[0].sevice"), "{e}");
    }

    #[test]
    fn validation_rejects_values_that_parse() {
        let bad = [
            ("scrape:\n  jitter: 1.5\n", "scrape.jitter"),
            ("api:\n  listen: nowhere\n", "api.listen"),
            ("store:\n  max_series: 0\n", "store.max_series"),
            ("logs:\n  read_interval: 0s\n", "logs.read_interval"),
            (
                "checks:\n  - name: istio\n    instances: []\n",
                "checks[0].instances",
            ),
            (
                "logs:\n  configs:\n    - type: tcp\n      path: x\n",
                "logs.configs[0].type",
            ),
            ("tags: [\"bad tag:\"]\n", "tags"),
            (
                "dogstatsd:\n  socket: /run/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock\n",
                "dogstatsd.socket",
            ),
            (
                "autodiscovery:\n  container_exclude: [\"name:(\"]\n",
                "autodiscovery.container_exclude",
            ),
        ];
        for (text, key) in bad {
            let cfg = parse_yaml(text, "t.yaml").unwrap();
            match cfg.validate() {
                Err(ConfigError::Invalid { key: k, .. }) => assert_eq!(k, key, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    /// The seed's DaemonSet environment, pasted as it is (values filled as a user would).
    const SEED_ENV: &[(&str, &str)] = &[
        ("DD_API_KEY", "0123456789abcdef0123456789abcdef"),
        ("DD_COLLECT_KUBERNETES_EVENTS", "true"),
        ("KUBERNETES", "true"),
        ("DD_KUBERNETES_KUBELET_HOST", "10.0.0.7"),
        ("DD_CLUSTER_AGENT_ENABLED", "true"),
        (
            "DD_CLUSTER_AGENT_AUTH_TOKEN",
            "s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t",
        ),
        ("DD_TAGS", "env:istio-demo team:mesh"),
        ("DD_APM_ENABLED", "true"),
        ("DD_APM_NON_LOCAL_TRAFFIC", "true"),
        ("DD_APM_ENV", "istio-demo"),
        ("DD_LOGS_ENABLED", "true"),
        ("DD_LOGS_CONFIG_CONTAINER_COLLECT_ALL", "true"),
        (
            "DD_AC_EXCLUDE",
            "name:datadog-agent name:datadog-cluster-agent",
        ),
        ("DD_EXTRA_CONFIG_PROVIDERS", "endpointschecks clusterchecks"),
    ];

    #[test]
    fn seed_environment_is_accepted() {
        let cfg = AgentConfig::load(None, &env(SEED_ENV)).unwrap();
        assert_eq!(cfg.tags, ["env:istio-demo", "team:mesh"]);
        assert!(cfg.apm.non_local_traffic && cfg.logs.enabled && cfg.logs.container_collect_all);
        assert_eq!(cfg.apm.env, "istio-demo");
        assert_eq!(
            cfg.autodiscovery.container_exclude,
            ["name:datadog-agent", "name:datadog-cluster-agent"]
        );
        assert!(cfg.cluster_agent.enabled);
        assert_eq!(
            cfg.autodiscovery.extra_config_providers,
            ["endpointschecks", "clusterchecks"]
        );
        assert!(
            !cfg.notices.iter().any(|n| n.contains("endpointschecks")),
            "{:?}",
            cfg.notices
        );
        let shown = cfg.to_yaml();
        assert!(
            !shown.contains("0123456789abcdef"),
            "API key printed:\n{shown}"
        );
        assert!(!shown.contains("s3cr3t"), "token printed:\n{shown}");
        assert!(
            shown.contains("api_key: '***'") || shown.contains("api_key: \"***\""),
            "{shown}"
        );
    }

    #[test]
    fn environment_errors_name_the_variable() {
        let e = AgentConfig::load(None, &env(&[("DD_APM_ENABLED", "yes please")])).unwrap_err();
        assert!(
            matches!(&e, ConfigError::Env { var, .. } if var == "DD_APM_ENABLED"),
            "{e}"
        );
        let e = AgentConfig::load(None, &env(&[("DD_APM_RECEIVER_PORT", "99999")])).unwrap_err();
        assert!(e.to_string().contains("DD_APM_RECEIVER_PORT"), "{e}");
        let cfg = AgentConfig::load(
            None,
            &env(&[
                ("MESHMON_DATA_DIR", "/tmp/d"),
                ("MESHMON_API_ADDR", "127.0.0.1:0"),
                ("MESHMON_MANIFESTS", "/a.yaml,/b"),
                ("MESHMON_ZIPKIN_PORT", "off"),
                ("DD_CONTAINER_EXCLUDE", "name:x"),
                ("DD_AC_EXCLUDE", "name:y"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.data_dir, PathBuf::from("/tmp/d"));
        assert_eq!(cfg.autodiscovery.manifests.len(), 2);
        assert_eq!(cfg.apm.zipkin_port, None);
        // DD_CONTAINER_EXCLUDE wins over the legacy DD_AC_EXCLUDE, as in the Agent.
        assert_eq!(cfg.autodiscovery.container_exclude, ["name:x"]);
    }
}
