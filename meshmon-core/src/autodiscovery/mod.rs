//! Datadog-compatible autodiscovery: Kubernetes annotation templates expanded into
//! check configurations, as the Datadog Cluster Agent and node Agent do.
//!
//! ```
//! use meshmon_core::autodiscovery::{expand, kube::parse_objects, ExpandOptions};
//!
//! // Seed 000's istio-pilot annotation, as `kubectl get svc,endpoints -o yaml` prints it.
//! let manifest = br#"
//! apiVersion: v1
//! kind: Service
//! metadata:
//!   name: istio-pilot
//!   namespace: istio-system
//!   annotations:
//!     ad.datadoghq.com/endpoints.check_names: '["istio"]'
//!     ad.datadoghq.com/endpoints.init_configs: '[{}]'
//!     ad.datadoghq.com/endpoints.instances: |
//!       [{"pilot_endpoint": "http://%%host%%:15014/metrics", "send_histograms_buckets": true}]
//! ---
//! apiVersion: v1
//! kind: Endpoints
//! metadata: {name: istio-pilot, namespace: istio-system}
//! subsets:
//! - addresses:
//!   - {ip: 10.8.1.4, nodeName: node-b, targetRef: {kind: Pod, name: istio-pilot-7f9c-x2v4q}}
//!   ports: [{name: http-monitoring, port: 15014}]
//! "#;
//! let objects = parse_objects(manifest)?;
//! let out = expand(&objects, &ExpandOptions::default());
//! assert!(out.errors.is_empty() && out.skipped.is_empty());
//! let config = &out.configs[0];
//! assert_eq!(config.id, "kube_endpoint_uid://istio-system/istio-pilot/10.8.1.4");
//! assert_eq!(config.check, "istio");
//! assert_eq!(config.node.as_deref(), Some("node-b"));
//! assert_eq!(config.instance["pilot_endpoint"], "http://10.8.1.4:15014/metrics");
//! assert_eq!(config.instance["send_histograms_buckets"], true);
//! assert_eq!(config.instance["tags"][0], "kube_endpoint_ip:10.8.1.4");
//! # Ok::<(), meshmon_core::autodiscovery::kube::ParseError>(())
//! ```
//!
//! # Contents
//!
//! - [`kube`]: serde types for Service, Endpoints, EndpointSlice, Pod and `List`, and
//!   [`kube::parse_objects`] for JSON / multi-document YAML.
//! - [`annotations`]: the v2 / v1 / legacy annotation formats and their precedence
//!   ([`annotations::extract_templates`]), `ad.datadoghq.com/tags`, standard tags,
//!   `tolerate-unready`, `exclude`.
//! - [`template`]: template variables and their resolution against an
//!   [`AdService`] ([`Resolver`]), with the fixed set of [`ResolveError`] kinds.
//! - [`filter`]: `DD_CONTAINER_INCLUDE` / `DD_CONTAINER_EXCLUDE` rules
//!   ([`ContainerFilter`]).
//! - [`provider`]: [`provider::ManifestProvider`], the `ConfigProvider` over in-memory
//!   manifests.
//! - `dispatch` (feature `dispatch`): endpoints and cluster checks dispatched over node
//!   agents with heartbeats and node expiry, as the Datadog Cluster Agent does.
//! - [`expand`](mod@expand): endpoints checks, cluster checks and pod containers expanded into
//!   [`CheckConfig`]s ([`expand()`]).
//!
//! # Limits
//!
//! - [`ExpandOptions::max_configs`] caps the output (counted in
//!   [`ExpandStats::dropped_by_limit`]).
//! - JSON and YAML nesting is bounded by the parsers (128 levels).
//! - Objects are deserialized into owned values: manifests are small next to the
//!   configs they produce.

pub mod annotations;
#[cfg(feature = "dispatch")]
pub mod dispatch;
pub mod expand;
pub mod filter;
pub mod kube;
pub mod provider;
pub mod template;

pub use annotations::{AnnotationError, AnnotationFormat, Template, Templates, extract_templates};
pub use expand::{
    ExpandOptions, ExpandOptionsError, ExpandStats, Expansion, ObjectError, SkipReason, Skipped,
    Target, expand,
};
pub use filter::{ContainerFilter, FilterError};
pub use kube::{KubeObject, ParseError, parse_objects};
pub use template::{
    AdService, EnvPolicy, Port, ResolveError, Resolved, Resolver, parse_template_text,
};

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
    /// One instance, resolved, with the service's tags merged into `tags` (`null` for a
    /// logs-only template).
    pub instance: serde_json::Value,
    /// The service's tags, sorted and de-duplicated.
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
    /// The source was read but is not a valid manifest.
    #[error("{source_name}: {error}")]
    Parse {
        /// Which source.
        source_name: String,
        /// The parse error.
        #[source]
        error: Box<ParseError>,
    },
}
