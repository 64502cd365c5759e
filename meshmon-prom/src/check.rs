//! Datadog check instances → scrape jobs (feature `check`).
//!
//! An autodiscovered (or hand-written) check configuration names a check and carries
//! one instance, a JSON object of options. For the Prometheus-based checks,
//! [`jobs_from_instance`] turns it into the endpoints to scrape, each with the
//! [`MappingConfig`] that decides what is submitted, the collection interval and the
//! timeout, and reports every option it did not apply. Pure: no I/O, no clock.
//!
//! | check | endpoints | mapping |
//! |---|---|---|
//! | `istio` ([Datadog's Istio check](https://docs.datadoghq.com/integrations/istio/), v2) | `istio_mesh_endpoint`, `istiod_endpoint` | [`MappingConfig::istio_mesh`], [`MappingConfig::istio_istiod`], with the instance's options on top |
//! | `openmetrics` ([OpenMetrics v2](https://docs.datadoghq.com/integrations/openmetrics/)) | `openmetrics_endpoint` (v1 `prometheus_url`) | the instance's options |
//! | `prometheus` (the legacy Prometheus check) | `prometheus_url` | the instance's options |
//!
//! Istio's check, like Datadog's, builds one scraper per endpoint key and lays the
//! instance's options over the preset: `namespace` and `metrics` replace the preset's,
//! `extra_metrics` (and `type_overrides` of names not listed) add to it, every other
//! mapping option applies as given. The Istio 1.4 keys `mixer_endpoint`,
//! `galley_endpoint`, `pilot_endpoint` and `citadel_endpoint` (Datadog's legacy check,
//! which gave each its own namespace and map) are scraped under the istiod map, whose
//! metrics the 1.5+ control plane inherited from those components, and listed in
//! [`InstanceJobs::legacy_keys`]; so is `use_openmetrics: false`, which asks Datadog for
//! that legacy check: meshmon always applies the v2 semantics.
//!
//! Options are never dropped silently: anything not applied (a typo, or a Datadog
//! option meshmon does not implement such as `tls_verify` or `headers`) is listed in
//! [`InstanceJobs::unknown_keys`], for the caller to warn about.
//!
//! ```
//! use std::time::Duration;
//! use meshmon_prom::check::jobs_from_instance;
//!
//! let instance = serde_json::json!({
//!     "istio_mesh_endpoint": "http://10.0.0.5:15090/stats/prometheus",
//!     "istiod_endpoint": "http://istiod.istio-system:15014/metrics",
//!     "exclude_labels": ["source_principal"],
//!     "tags": ["env:prod"],
//!     "min_collection_interval": 30,
//!     "tls_verify": false,
//! });
//! let out = jobs_from_instance("istio", &instance)?;
//! assert_eq!(out.jobs.len(), 2);
//! let mesh = &out.jobs[0];
//! assert_eq!(mesh.endpoint, "http://10.0.0.5:15090/stats/prometheus");
//! assert_eq!(mesh.source_key, "istio_mesh_endpoint");
//! assert_eq!(mesh.mapping.namespace, "istio.mesh");
//! assert_eq!(mesh.mapping.exclude_labels, ["source_principal"]);
//! assert_eq!(mesh.interval, Duration::from_secs(30));
//! assert_eq!(out.jobs[1].mapping.namespace, "istio");
//! assert_eq!(out.unknown_keys, ["tls_verify"]);
//! # Ok::<(), meshmon_prom::check::CheckError>(())
//! ```

use std::time::Duration;

use serde_json::{Map, Value};

use crate::mapping::{ConfigError, MappingConfig};

/// The instance options [`MappingConfig`] reads (with the v1 aliases).
pub const MAPPING_KEYS: &[&str] = &[
    "openmetrics_endpoint",
    "prometheus_url",
    "namespace",
    "raw_metric_prefix",
    "prometheus_metrics_prefix",
    "metrics",
    "extra_metrics",
    "type_overrides",
    "exclude_metrics",
    "ignore_metrics",
    "exclude_labels",
    "include_labels",
    "rename_labels",
    "labels_mapper",
    "tags",
    "tag_by_endpoint",
    "collect_histogram_buckets",
    "send_histograms_buckets",
    "non_cumulative_histogram_buckets",
    "non_cumulative_buckets",
    "histogram_buckets_as_distributions",
    "send_distribution_buckets",
    "collect_counters_with_distributions",
];

/// Options of every check about the job rather than the mapping.
pub const JOB_KEYS: &[&str] = &["min_collection_interval", "timeout"];

/// The Istio 1.4 component endpoints of Datadog's legacy Istio check.
pub const ISTIO_LEGACY_ENDPOINT_KEYS: &[&str] = &[
    "mixer_endpoint",
    "galley_endpoint",
    "pilot_endpoint",
    "citadel_endpoint",
];

/// Datadog's default `min_collection_interval` (15 s).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15);

/// The OpenMetrics check's default `timeout` (10 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The Prometheus-based checks meshmon runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CheckKind {
    /// `istio`.
    Istio,
    /// `openmetrics`.
    OpenMetrics,
    /// `prometheus` (legacy).
    Prometheus,
}

impl CheckKind {
    /// The check for a Datadog check name, or `None` for checks that are not scrapes of
    /// a Prometheus endpoint.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "istio" => Some(Self::Istio),
            "openmetrics" => Some(Self::OpenMetrics),
            "prometheus" => Some(Self::Prometheus),
            _ => None,
        }
    }

    /// Datadog's name of the check.
    pub fn name(self) -> &'static str {
        match self {
            Self::Istio => "istio",
            Self::OpenMetrics => "openmetrics",
            Self::Prometheus => "prometheus",
        }
    }
}

/// One endpoint to scrape and how to map what it returns.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScrapeJob {
    /// The URL to GET.
    pub endpoint: String,
    /// The instance key the URL came from (`istio_mesh_endpoint`,
    /// `openmetrics_endpoint`, `mixer_endpoint`, …).
    pub source_key: &'static str,
    /// What to submit; `openmetrics_endpoint` is set to [`ScrapeJob::endpoint`], and
    /// the instance's `tags` (autodiscovery merges the service's tags into them) are in
    /// [`MappingConfig::tags`], added by the mapper. Already validated.
    pub mapping: MappingConfig,
    /// `min_collection_interval` (default [`DEFAULT_INTERVAL`]).
    pub interval: Duration,
    /// `timeout` (default [`DEFAULT_TIMEOUT`]).
    pub timeout: Duration,
}

/// What one instance asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct InstanceJobs {
    /// The check.
    pub check: CheckKind,
    /// One job per endpoint, in the order Datadog's check scrapes them.
    pub jobs: Vec<ScrapeJob>,
    /// Instance keys present but not applied, sorted: misspellings and Datadog options
    /// meshmon does not implement. Callers should warn about each.
    pub unknown_keys: Vec<String>,
    /// Keys that asked for Datadog's legacy (pre-OpenMetrics v2) behaviour and were
    /// served with the v2 semantics instead (see the [module docs](self)).
    pub legacy_keys: Vec<&'static str>,
}

/// Why an instance cannot be scraped.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    /// The check is not one of the Prometheus-based checks.
    #[error("check {0:?} is not a Prometheus-based check (istio, openmetrics, prometheus)")]
    UnsupportedCheck(String),
    /// The instance is not a JSON object.
    #[error("{check}: the instance must be an object, not {found}")]
    NotAnObject {
        /// The check.
        check: &'static str,
        /// What was found (`null`, `array`, …).
        found: &'static str,
    },
    /// No endpoint key is set.
    #[error("{check}: no endpoint: set {expected}")]
    NoEndpoint {
        /// The check.
        check: &'static str,
        /// The keys that would do, in words.
        expected: &'static str,
    },
    /// An option has the wrong type or value.
    #[error("{check}: option {key:?}: {message}")]
    Option {
        /// The check.
        check: &'static str,
        /// The option.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// The options build a mapping that cannot work (a bad regex, an invalid tag).
    #[error("{check}: {endpoint}: {source}")]
    Mapping {
        /// The check.
        check: &'static str,
        /// The endpoint whose mapping failed.
        endpoint: String,
        /// Why.
        #[source]
        source: ConfigError,
    },
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Turns one instance of check `check_name` into scrape jobs (see the
/// [module docs](self) for the rules).
pub fn jobs_from_instance(check_name: &str, instance: &Value) -> Result<InstanceJobs, CheckError> {
    let kind = CheckKind::from_name(check_name)
        .ok_or_else(|| CheckError::UnsupportedCheck(check_name.to_owned()))?;
    let check = kind.name();
    let obj = instance.as_object().ok_or(CheckError::NotAnObject {
        check,
        found: json_kind(instance),
    })?;
    let option = |key: &str, message: String| CheckError::Option {
        check,
        key: key.to_owned(),
        message,
    };

    let interval = seconds(obj, "min_collection_interval", DEFAULT_INTERVAL)
        .map_err(|m| option("min_collection_interval", m))?;
    let timeout = seconds(obj, "timeout", DEFAULT_TIMEOUT).map_err(|m| option("timeout", m))?;

    // The mapping options, deserialised together (aliases and all); on a type error,
    // one at a time to name the culprit.
    let mut mapping_obj: Map<String, Value> = obj
        .iter()
        .filter(|(k, _)| MAPPING_KEYS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut unknown: Vec<String> = Vec::new();
    let mut legacy: Vec<&'static str> = Vec::new();
    let mut endpoints: Vec<(&'static str, String)> = Vec::new();

    let endpoint_of = |key: &'static str| -> Result<Option<String>, CheckError> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => {
                Err(option(key, "the endpoint URL is empty".into()))
            }
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(option(
                key,
                format!("expected a URL string, found {}", json_kind(v)),
            )),
        }
    };

    match kind {
        CheckKind::Istio => {
            for key in ["istio_mesh_endpoint", "istiod_endpoint"] {
                if let Some(url) = endpoint_of(key)? {
                    endpoints.push((key, url));
                }
            }
            for &key in ISTIO_LEGACY_ENDPOINT_KEYS {
                if let Some(url) = endpoint_of(key)? {
                    endpoints.push((key, url));
                    legacy.push(key);
                }
            }
            match obj.get("use_openmetrics") {
                None | Some(Value::Null) | Some(Value::Bool(true)) => {}
                Some(Value::Bool(false)) => legacy.push("use_openmetrics"),
                Some(v) => {
                    return Err(option(
                        "use_openmetrics",
                        format!("expected a boolean, found {}", json_kind(v)),
                    ));
                }
            }
            // The endpoints come from the keys above; Datadog would let these override
            // them, which is never what an Istio instance means.
            for key in ["openmetrics_endpoint", "prometheus_url"] {
                if mapping_obj.remove(key).is_some() {
                    unknown.push(key.to_owned());
                }
            }
            if endpoints.is_empty() {
                return Err(CheckError::NoEndpoint {
                    check,
                    expected: "istio_mesh_endpoint or istiod_endpoint",
                });
            }
        }
        CheckKind::OpenMetrics | CheckKind::Prometheus => {
            let keys: &[&'static str] = if kind == CheckKind::OpenMetrics {
                &["openmetrics_endpoint", "prometheus_url"]
            } else {
                &["prometheus_url"]
            };
            for &key in keys {
                if let Some(url) = endpoint_of(key)? {
                    endpoints.push((key, url));
                }
            }
            if kind == CheckKind::Prometheus && mapping_obj.remove("openmetrics_endpoint").is_some()
            {
                unknown.push("openmetrics_endpoint".to_owned());
            }
            match endpoints.len() {
                0 => {
                    return Err(CheckError::NoEndpoint {
                        check,
                        expected: if kind == CheckKind::OpenMetrics {
                            "openmetrics_endpoint (or v1 prometheus_url)"
                        } else {
                            "prometheus_url"
                        },
                    });
                }
                1 => {}
                _ => {
                    return Err(option(
                        "prometheus_url",
                        "give openmetrics_endpoint or its v1 alias prometheus_url, not both".into(),
                    ));
                }
            }
        }
    }

    let is_known = |k: &str| {
        MAPPING_KEYS.contains(&k)
            || JOB_KEYS.contains(&k)
            || (kind == CheckKind::Istio
                && (matches!(
                    k,
                    "istio_mesh_endpoint" | "istiod_endpoint" | "use_openmetrics"
                ) || ISTIO_LEGACY_ENDPOINT_KEYS.contains(&k)))
    };
    unknown.extend(obj.keys().filter(|k| !is_known(k)).cloned());
    unknown.sort();
    unknown.dedup();

    // The endpoint is set per job below; the rest is shared.
    mapping_obj.remove("openmetrics_endpoint");
    mapping_obj.remove("prometheus_url");
    let given = |k: &str| mapping_obj.contains_key(k);
    let (has_metrics, has_extra, has_namespace) = (
        given("metrics"),
        given("extra_metrics") || given("type_overrides"),
        given("namespace"),
    );
    let base: MappingConfig = match serde_json::from_value(Value::Object(mapping_obj.clone())) {
        Ok(c) => c,
        Err(e) => {
            for (k, v) in &mapping_obj {
                let one = Map::from_iter([(k.clone(), v.clone())]);
                if let Err(e1) = serde_json::from_value::<MappingConfig>(Value::Object(one)) {
                    return Err(option(k, e1.to_string()));
                }
            }
            return Err(option("(instance)", e.to_string()));
        }
    };

    let mut jobs = Vec::with_capacity(endpoints.len());
    for (source_key, endpoint) in endpoints {
        let mut mapping = base.clone();
        if kind == CheckKind::Istio {
            let preset = if source_key == "istio_mesh_endpoint" {
                MappingConfig::istio_mesh()
            } else {
                MappingConfig::istio_istiod()
            };
            if !has_namespace {
                mapping.namespace = preset.namespace;
            }
            if !has_metrics {
                let extra = std::mem::take(&mut mapping.metrics);
                mapping.metrics = preset.metrics;
                if has_extra {
                    mapping.metrics.extend(extra);
                }
            }
        }
        mapping.openmetrics_endpoint = Some(endpoint.clone());
        mapping.validate().map_err(|source| CheckError::Mapping {
            check,
            endpoint: endpoint.clone(),
            source,
        })?;
        jobs.push(ScrapeJob {
            endpoint,
            source_key,
            mapping,
            interval,
            timeout,
        });
    }
    Ok(InstanceJobs {
        check: kind,
        jobs,
        unknown_keys: unknown,
        legacy_keys: legacy,
    })
}

/// A positive number of seconds (integer or fraction), or `default` when absent.
fn seconds(obj: &Map<String, Value>, key: &str, default: Duration) -> Result<Duration, String> {
    let v = match obj.get(key) {
        None | Some(Value::Null) => return Ok(default),
        Some(v) => v,
    };
    // Autodiscovery templates often quote numbers: "%%env_INTERVAL%%" resolves to text.
    let secs = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .ok_or_else(|| format!("expected a number of seconds, found {}", json_kind(v)))?;
    if !(secs.is_finite() && secs > 0.0) {
        return Err(format!("{secs} is not a positive number of seconds"));
    }
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{secs} s: {e}"))
}
