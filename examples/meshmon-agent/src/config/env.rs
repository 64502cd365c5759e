//! The environment overlay: the seed's Datadog variables where they mean what the Datadog
//! Agent means by them, and `MESHMON_*` for meshmon's own keys. [`ENV_VARS`] is the whole
//! list; `CONFIG.md` documents each one and a test keeps the two in step.

use std::collections::HashMap;
use std::path::PathBuf;

use super::{AgentConfig, ConfigError};

/// Where variables are read from: the process environment in the binary, a map in tests.
pub trait Environment {
    /// The value of `name`, if set.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessEnv;

impl Environment for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Environment for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// What one variable does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnvVar {
    /// Sets this configuration key.
    Sets(&'static str),
    /// Accepted because the seed's manifests set it; it does not change meshmon (yet).
    Accepted(&'static str),
}

/// Every variable the agent reads, with the key it sets (or why it is only accepted).
pub const ENV_VARS: &[(&str, EnvVar)] = &[
    (
        "MESHMON_CONFIG",
        EnvVar::Sets("(the config file, like --config)"),
    ),
    ("MESHMON_DATA_DIR", EnvVar::Sets("data_dir")),
    ("MESHMON_API_ADDR", EnvVar::Sets("api.listen")),
    ("MESHMON_POD_LOGS_ROOT", EnvVar::Sets("logs.pod_logs_root")),
    ("MESHMON_MANIFESTS", EnvVar::Sets("autodiscovery.manifests")),
    ("MESHMON_ZIPKIN_PORT", EnvVar::Sets("apm.zipkin_port")),
    (
        "MESHMON_REMOTE_WRITE_URL",
        EnvVar::Sets("exports.remote_write.url"),
    ),
    ("DD_DD_URL", EnvVar::Sets("exports.datadog.url")),
    ("DD_URL", EnvVar::Sets("exports.datadog.url")),
    ("DD_SITE", EnvVar::Sets("exports.datadog.site")),
    ("DD_HOSTNAME", EnvVar::Sets("hostname")),
    ("DD_ENV", EnvVar::Sets("env")),
    ("DD_TAGS", EnvVar::Sets("tags")),
    ("DD_API_KEY", EnvVar::Sets("api_key")),
    ("DD_APM_ENABLED", EnvVar::Sets("apm.enabled")),
    (
        "DD_APM_NON_LOCAL_TRAFFIC",
        EnvVar::Sets("apm.non_local_traffic"),
    ),
    ("DD_APM_ENV", EnvVar::Sets("apm.env")),
    ("DD_APM_RECEIVER_PORT", EnvVar::Sets("apm.receiver_port")),
    ("DD_LOGS_ENABLED", EnvVar::Sets("logs.enabled")),
    ("DD_USE_DOGSTATSD", EnvVar::Sets("dogstatsd.enabled")),
    ("DD_DOGSTATSD_PORT", EnvVar::Sets("dogstatsd.port")),
    (
        "DD_DOGSTATSD_NON_LOCAL_TRAFFIC",
        EnvVar::Sets("dogstatsd.non_local_traffic"),
    ),
    ("DD_DOGSTATSD_SOCKET", EnvVar::Sets("dogstatsd.socket")),
    (
        "DD_DOGSTATSD_SO_RCVBUF",
        EnvVar::Sets("dogstatsd.so_rcvbuf"),
    ),
    (
        "DD_DOGSTATSD_QUEUE_SIZE",
        EnvVar::Sets("dogstatsd.queue_size"),
    ),
    (
        "DD_LOGS_CONFIG_CONTAINER_COLLECT_ALL",
        EnvVar::Sets("logs.container_collect_all"),
    ),
    (
        "DD_CONTAINER_EXCLUDE",
        EnvVar::Sets("autodiscovery.container_exclude"),
    ),
    (
        "DD_AC_EXCLUDE",
        EnvVar::Sets("autodiscovery.container_exclude"),
    ),
    (
        "DD_CONTAINER_INCLUDE",
        EnvVar::Sets("autodiscovery.container_include"),
    ),
    (
        "DD_AC_INCLUDE",
        EnvVar::Sets("autodiscovery.container_include"),
    ),
    (
        "DD_EXTRA_CONFIG_PROVIDERS",
        EnvVar::Sets("autodiscovery.extra_config_providers"),
    ),
    (
        "DD_KUBERNETES_KUBELET_HOST",
        EnvVar::Sets("autodiscovery.kubelet_host"),
    ),
    (
        "DD_KUBERNETES_NODE_NAME",
        EnvVar::Sets("autodiscovery.node"),
    ),
    (
        "DD_COLLECT_KUBERNETES_EVENTS",
        EnvVar::Accepted("Kubernetes events are not collected"),
    ),
    ("KUBERNETES", EnvVar::Accepted("no effect")),
    (
        "DD_CLUSTER_AGENT_ENABLED",
        EnvVar::Sets("cluster_agent.enabled"),
    ),
    ("DD_CLUSTER_AGENT_URL", EnvVar::Sets("cluster_agent.url")),
    (
        "DD_CLUSTER_AGENT_AUTH_TOKEN",
        EnvVar::Sets("cluster_agent.auth_token"),
    ),
    (
        "DD_CLUSTER_AGENT_CMD_PORT",
        EnvVar::Sets("cluster_agent.cmd_port"),
    ),
    (
        "MESHMON_CLUSTER_AGENT_HOST",
        EnvVar::Sets("cluster_agent.listen_host"),
    ),
    (
        "DD_CLUSTER_CHECKS_ENABLED",
        EnvVar::Sets("cluster_agent.cluster_checks_enabled"),
    ),
    (
        "DD_CLUSTER_CHECKS_NODE_EXPIRATION_TIMEOUT",
        EnvVar::Sets("cluster_agent.node_expiration_timeout"),
    ),
    (
        "DD_CLUSTER_CHECKS_WARMUP_DURATION",
        EnvVar::Sets("cluster_agent.warmup_duration"),
    ),
    (
        "DD_EXTRA_LISTENERS",
        EnvVar::Sets("cluster_agent.extra_listeners"),
    ),
    (
        "MESHMON_CLUSTER_AGENT_KUBE_API_URL",
        EnvVar::Sets("cluster_agent.kube_api_url"),
    ),
    (
        "DD_LEADER_ELECTION",
        EnvVar::Sets("cluster_agent.leader_election"),
    ),
    (
        "DD_LEADER_LEASE_DURATION",
        EnvVar::Sets("cluster_agent.leader_lease_duration"),
    ),
    (
        "DD_LEADER_LEASE_NAME",
        EnvVar::Sets("cluster_agent.leader_lease_name"),
    ),
    (
        "DD_KUBE_RESOURCES_NAMESPACE",
        EnvVar::Sets("cluster_agent.leader_lease_namespace"),
    ),
    ("DD_POD_NAME", EnvVar::Sets("cluster_agent.pod_name")),
    ("POD_NAME", EnvVar::Sets("cluster_agent.pod_name")),
    (
        "MESHMON_CLUSTER_AGENT_ADVERTISE_URL",
        EnvVar::Sets("cluster_agent.advertise_url"),
    ),
    ("DD_POD_IP", EnvVar::Sets("cluster_agent.advertise_url")),
    (
        "DD_EXTERNAL_METRICS_PROVIDER_ENABLED",
        EnvVar::Accepted("meshmon serves no external metrics"),
    ),
];

/// Go's `strconv.ParseBool`, which the Datadog Agent uses for its boolean variables.
fn go_bool(var: &str, v: &str) -> Result<bool, ConfigError> {
    match meshmon_core::go::parse_bool(v.trim()) {
        Some(b) => Ok(b),
        None => Err(ConfigError::Env {
            var: var.to_owned(),
            value: v.to_owned(),
            message: "not a boolean (true/false, 1/0, t/f)".into(),
        }),
    }
}

fn port(var: &str, v: &str) -> Result<u16, ConfigError> {
    v.trim().parse().map_err(|_| ConfigError::Env {
        var: var.to_owned(),
        value: v.to_owned(),
        message: "not a port number (0-65535)".into(),
    })
}

/// A non-negative integer (a size or a count).
fn count(var: &str, v: &str) -> Result<usize, ConfigError> {
    v.trim().parse().map_err(|_| ConfigError::Env {
        var: var.to_owned(),
        value: v.to_owned(),
        message: "not a non-negative integer".into(),
    })
}

/// A space-separated list, as the Agent reads `DD_TAGS` and the container filters (commas
/// are accepted between items too).
fn list(v: &str) -> Vec<String> {
    v.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Applies the environment to `cfg`.
pub fn apply_env(cfg: &mut AgentConfig, env: &dyn Environment) -> Result<(), ConfigError> {
    let get = |name: &str| env.var(name).filter(|v| !v.trim().is_empty());
    if let Some(v) = get("MESHMON_DATA_DIR") {
        cfg.data_dir = PathBuf::from(v);
    }
    if let Some(v) = get("MESHMON_API_ADDR") {
        cfg.api.listen = v;
    }
    if let Some(v) = get("MESHMON_POD_LOGS_ROOT") {
        cfg.logs.pod_logs_root = PathBuf::from(v);
    }
    if let Some(v) = get("MESHMON_MANIFESTS") {
        cfg.autodiscovery.manifests = v
            .split([',', ':'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .collect();
    }
    if let Some(v) = get("MESHMON_ZIPKIN_PORT") {
        cfg.apm.zipkin_port = match v.trim() {
            "off" | "none" | "disabled" => None,
            p => Some(port("MESHMON_ZIPKIN_PORT", p)?),
        };
    }
    if let Some(v) = get("MESHMON_REMOTE_WRITE_URL") {
        cfg.exports.remote_write.url = v.trim().to_owned();
    }
    // As the Datadog Agent binds `dd_url`: DD_DD_URL first, then DD_URL. Either turns
    // the Datadog export on.
    if let Some(v) = get("DD_DD_URL").or_else(|| get("DD_URL")) {
        cfg.exports.datadog.url = v.trim().to_owned();
        cfg.exports.datadog.enabled = true;
    }
    if let Some(v) = get("DD_SITE") {
        cfg.exports.datadog.site = v.trim().to_owned();
    }
    if let Some(v) = get("DD_HOSTNAME") {
        cfg.hostname = v;
    }
    if let Some(v) = get("DD_ENV") {
        cfg.env = v;
    }
    if let Some(v) = get("DD_TAGS") {
        cfg.tags = list(&v);
    }
    if let Some(v) = get("DD_API_KEY") {
        cfg.api_key = v;
    }
    if let Some(v) = get("DD_APM_ENABLED") {
        cfg.apm.enabled = go_bool("DD_APM_ENABLED", &v)?;
    }
    if let Some(v) = get("DD_APM_NON_LOCAL_TRAFFIC") {
        cfg.apm.non_local_traffic = go_bool("DD_APM_NON_LOCAL_TRAFFIC", &v)?;
    }
    if let Some(v) = get("DD_APM_ENV") {
        cfg.apm.env = v;
    }
    if let Some(v) = get("DD_APM_RECEIVER_PORT") {
        cfg.apm.receiver_port = port("DD_APM_RECEIVER_PORT", &v)?;
    }
    if let Some(v) = get("DD_USE_DOGSTATSD") {
        cfg.dogstatsd.enabled = go_bool("DD_USE_DOGSTATSD", &v)?;
    }
    if let Some(v) = get("DD_DOGSTATSD_PORT") {
        cfg.dogstatsd.port = port("DD_DOGSTATSD_PORT", &v)?;
    }
    if let Some(v) = get("DD_DOGSTATSD_NON_LOCAL_TRAFFIC") {
        cfg.dogstatsd.non_local_traffic = go_bool("DD_DOGSTATSD_NON_LOCAL_TRAFFIC", &v)?;
    }
    if let Some(v) = get("DD_DOGSTATSD_SOCKET") {
        cfg.dogstatsd.socket = v.trim().to_owned();
    }
    if let Some(v) = get("DD_DOGSTATSD_SO_RCVBUF") {
        cfg.dogstatsd.so_rcvbuf = count("DD_DOGSTATSD_SO_RCVBUF", &v)?;
    }
    if let Some(v) = get("DD_DOGSTATSD_QUEUE_SIZE") {
        cfg.dogstatsd.queue_size = count("DD_DOGSTATSD_QUEUE_SIZE", &v)?;
    }
    if let Some(v) = get("DD_LOGS_ENABLED") {
        cfg.logs.enabled = go_bool("DD_LOGS_ENABLED", &v)?;
    }
    if let Some(v) = get("DD_LOGS_CONFIG_CONTAINER_COLLECT_ALL") {
        cfg.logs.container_collect_all = go_bool("DD_LOGS_CONFIG_CONTAINER_COLLECT_ALL", &v)?;
    }
    // The Agent prefers the container_* settings and falls back to the legacy ac_* ones.
    if let Some(v) = get("DD_CONTAINER_EXCLUDE").or_else(|| get("DD_AC_EXCLUDE")) {
        cfg.autodiscovery.container_exclude = list(&v);
    }
    if let Some(v) = get("DD_CONTAINER_INCLUDE").or_else(|| get("DD_AC_INCLUDE")) {
        cfg.autodiscovery.container_include = list(&v);
    }
    if let Some(v) = get("DD_EXTRA_CONFIG_PROVIDERS") {
        cfg.autodiscovery.extra_config_providers = list(&v);
    }
    if let Some(v) = get("DD_KUBERNETES_KUBELET_HOST") {
        cfg.autodiscovery.kubelet_host = v;
    }
    if let Some(v) = get("DD_KUBERNETES_NODE_NAME") {
        cfg.autodiscovery.node = v;
    }
    for (name, what) in ENV_VARS {
        if let EnvVar::Accepted(why) = what
            && get(name).is_some()
        {
            cfg.notices.push(format!("{name} is set: {why}"));
        }
    }
    crate::cluster::apply_env(cfg, &get)?;
    let notices: Vec<String> = cfg
        .autodiscovery
        .extra_config_providers
        .iter()
        .filter_map(|p| crate::cluster::provider_notice(cfg, p))
        .collect();
    cfg.notices.extend(notices);
    Ok(())
}
