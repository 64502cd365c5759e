//! Datadog-compatible autodiscovery: Kubernetes annotation templates expanded into
//! check configurations.
//!
//! (Being filled in by the autodiscovery work of issue 2.)

/// One resolved check configuration: what a node agent runs.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CheckConfig {
    /// Stable id of the target, e.g. `kube_endpoint_uid://istio-system/istio-pilot/10.0.0.5`.
    pub id: String,
    /// Check name, e.g. `istio`.
    pub check: String,
    /// Node the target runs on, when known (node agents pick only their own).
    pub node: Option<String>,
    /// The template's `init_config`, resolved.
    pub init_config: serde_json::Value,
    /// One instance, resolved, with the service's tags merged into `tags`.
    pub instance: serde_json::Value,
    /// The service's tags.
    pub tags: Vec<String>,
    /// Log configuration, when the annotations carry one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub logs: Option<serde_json::Value>,
}

/// Why a provider could not list configurations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// Reading the source failed.
    #[error("{source_name}: {message}")]
    Read {
        /// Which source (file path, API URL).
        source_name: String,
        /// What went wrong.
        message: String,
    },
}
