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
//! Istio's check selects a Datadog class as `Istio.__new__` does ([`CheckClass`]):
//!
//! | instance | class | scrapers |
//! |---|---|---|
//! | `use_openmetrics: true` | `IstioCheckV2` (OpenMetrics V2) | `istio_mesh_endpoint` (`istio.mesh`), `istiod_endpoint` (`istio`) |
//! | else `istiod_endpoint` | `Istio` (OpenMetrics V1) | `istiod_endpoint` only (`istio`; `istio_mesh_endpoint` in the same instance is an error, as upstream) |
//! | else | `LegacyIstioCheck_1_4` (OpenMetrics V1) | one per key of [`ISTIO_LEGACY_SCRAPERS`], in that order |
//!
//! With V2, like Datadog's, the instance's options are laid over the preset:
//! `namespace` and `metrics` replace the preset's, `extra_metrics` (and
//! `type_overrides` of names not listed) add to it, every other mapping option applies
//! as given; the Istio 1.4 keys (which Datadog's V2 check ignores) are scraped under
//! the istiod map and listed in [`InstanceJobs::legacy_keys`]. With the V1 classes the
//! namespace and metric map are the scraper's (the istiod check keeps the instance's
//! `metrics` before its own), `connectionID` is excluded from tags
//! ([`ISTIO_V1_EXCLUDED_LABELS`]), [`V1Mapper`](crate::mapping::v1::V1Mapper) adds no
//! `endpoint:` tag, and the V1-only options
//! are in [`ScrapeJob::v1`] ([`V1Options`], with the legacy mesh and mixer scrapers'
//! own defaults). Two legacy keys with one URL are scraped once per key with the first
//! key's scraper, as Datadog's URL-keyed `config_map` does.
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
//!     "use_openmetrics": true,
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

/// Datadog's `BLACKLIST_LABELS` (`istio/constants.py`): labels the V1 Istio checks add
/// to every scraper's `exclude_labels`.
pub const ISTIO_V1_EXCLUDED_LABELS: &[&str] = &["connectionID"];

/// The endpoint keys of `LegacyIstioCheck_1_4`, in the order its `check` processes them
/// (and its `create_generic_instances` creates their scraper configurations), with the
/// namespace each scraper submits under.
pub const ISTIO_LEGACY_SCRAPERS: &[(&str, &str)] = &[
    ("istio_mesh_endpoint", "istio.mesh"),
    ("mixer_endpoint", "istio.mixer"),
    ("pilot_endpoint", "istio.pilot"),
    ("galley_endpoint", "istio.galley"),
    ("citadel_endpoint", "istio.citadel"),
];

/// What `LegacyIstioCheck_1_4` puts in the galley scraper's `ignore_metrics` (high tag
/// cardinality), before the instance's own.
pub const ISTIO_LEGACY_GALLEY_IGNORED: &[&str] = &[
    "galley_mcp_source_message_size_bytes",
    "galley_mcp_source_request_acks_total",
];

/// The Datadog check class an instance selects (Datadog's `Istio.__new__` for `istio`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CheckClass {
    /// `IstioCheckV2` (OpenMetrics V2, `OpenMetricsBaseCheckV2`): `istio` with
    /// `use_openmetrics: true`.
    IstioCheckV2,
    /// `Istio`, the OpenMetrics V1 (`OpenMetricsBaseCheck`) istiod check: `istio`
    /// without `use_openmetrics`, with `istiod_endpoint`.
    IstioV1,
    /// `LegacyIstioCheck_1_4` (OpenMetrics V1): `istio` with neither, one scraper per
    /// endpoint key of [`ISTIO_LEGACY_SCRAPERS`].
    LegacyIstio14,
    /// `OpenMetricsBaseCheckV2`: the `openmetrics` check.
    OpenMetricsV2,
    /// The `prometheus` check (served with the OpenMetrics V2 semantics).
    Prometheus,
}

impl CheckClass {
    /// Datadog's class name.
    pub fn datadog_name(self) -> &'static str {
        match self {
            Self::IstioCheckV2 => "IstioCheckV2",
            Self::IstioV1 => "Istio",
            Self::LegacyIstio14 => "LegacyIstioCheck_1_4",
            Self::OpenMetricsV2 => "OpenMetricsBaseCheckV2",
            Self::Prometheus => "PrometheusCheck",
        }
    }

    /// Whether the class is an OpenMetrics V1 check (`OpenMetricsBaseCheck`), whose
    /// scrapers carry [`ScrapeJob::v1`].
    pub fn is_v1(self) -> bool {
        matches!(self, Self::IstioV1 | Self::LegacyIstio14)
    }
}

pub use crate::mapping::v1::V1Options;

/// The instance keys only the V1 classes read.
pub const V1_KEYS: &[&str] = &[
    "send_monotonic_counter",
    "send_monotonic_with_gauge",
    "send_distribution_counts_as_monotonic",
    "send_distribution_sums_as_monotonic",
    "health_service_check",
    "label_to_hostname",
    "label_to_hostname_suffix",
];

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
    /// The V1 scraper options when the instance selects an OpenMetrics V1 class
    /// ([`CheckClass::is_v1`]), else `None`.
    pub v1: Option<V1Options>,
}

/// What one instance asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct InstanceJobs {
    /// The check.
    pub check: CheckKind,
    /// The Datadog check class the instance selects.
    pub class: CheckClass,
    /// One job per endpoint, in the order Datadog's check scrapes them.
    pub jobs: Vec<ScrapeJob>,
    /// Instance keys present but not applied, sorted: misspellings and Datadog options
    /// meshmon does not implement. Callers should warn about each.
    pub unknown_keys: Vec<String>,
    /// Keys that asked for Datadog's legacy behaviour and were served with the v2
    /// semantics instead (only with [`CheckClass::IstioCheckV2`]: the Istio 1.4 keys,
    /// which Datadog's V2 check ignores, are scraped under the istiod map).
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
    let mut class = match kind {
        CheckKind::Istio => CheckClass::IstioCheckV2,
        CheckKind::OpenMetrics => CheckClass::OpenMetricsV2,
        CheckKind::Prometheus => CheckClass::Prometheus,
    };

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
            // Datadog's `Istio.__new__`: `use_openmetrics` (is_affirmative, default
            // false) → IstioCheckV2; else a truthy `istiod_endpoint` → the V1 istiod
            // check; else LegacyIstioCheck_1_4.
            let use_openmetrics = match obj.get("use_openmetrics") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(v) => {
                    return Err(option(
                        "use_openmetrics",
                        format!("expected a boolean, found {}", json_kind(v)),
                    ));
                }
            };
            let istiod = endpoint_of("istiod_endpoint")?;
            class = if use_openmetrics {
                CheckClass::IstioCheckV2
            } else if istiod.is_some() {
                CheckClass::IstioV1
            } else {
                CheckClass::LegacyIstio14
            };
            match class {
                CheckClass::IstioCheckV2 => {
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
                }
                CheckClass::IstioV1 => {
                    if obj.contains_key("istio_mesh_endpoint") {
                        return Err(option(
                            "istio_mesh_endpoint",
                            "istio_mesh_endpoint needs to be configured in a separate instance \
                             (Datadog's V1 istiod check; set use_openmetrics: true for both in one)"
                                .into(),
                        ));
                    }
                    if let Some(url) = istiod {
                        endpoints.push(("istiod_endpoint", url));
                    }
                    for &key in ISTIO_LEGACY_ENDPOINT_KEYS {
                        if obj.contains_key(key) {
                            unknown.push(key.to_owned());
                        }
                    }
                }
                _ => {
                    // One scraper per key, in check order; a URL given twice is
                    // scraped once per key with the configuration of the first key
                    // (Datadog's `config_map` is keyed by URL, first one kept).
                    for &(key, _) in ISTIO_LEGACY_SCRAPERS {
                        if let Some(url) = endpoint_of(key)? {
                            endpoints.push((key, url));
                        }
                    }
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
                    expected: "istio_mesh_endpoint, istiod_endpoint (Istio 1.5+) or \
                               mixer_endpoint, pilot_endpoint, galley_endpoint, citadel_endpoint (Istio 1.4)",
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
                ) || ISTIO_LEGACY_ENDPOINT_KEYS.contains(&k)
                    || (class.is_v1() && V1_KEYS.contains(&k))))
    };
    let v1_base = if class.is_v1() {
        let flag = |key: &str, default: bool| -> Result<bool, CheckError> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(Value::Bool(b)) => Ok(*b),
                Some(v) => Err(option(
                    key,
                    format!("expected a boolean, found {}", json_kind(v)),
                )),
            }
        };
        let text = |key: &str| -> Result<Option<String>, CheckError> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(v) => Err(option(
                    key,
                    format!("expected a string, found {}", json_kind(v)),
                )),
            }
        };
        let d = V1Options::default();
        Some(V1Options {
            metrics: Vec::new(),
            send_monotonic_counter: flag("send_monotonic_counter", d.send_monotonic_counter)?,
            send_monotonic_with_gauge: flag(
                "send_monotonic_with_gauge",
                d.send_monotonic_with_gauge,
            )?,
            send_distribution_counts_as_monotonic: flag(
                "send_distribution_counts_as_monotonic",
                false,
            )?,
            send_distribution_sums_as_monotonic: flag(
                "send_distribution_sums_as_monotonic",
                false,
            )?,
            health_service_check: flag("health_service_check", d.health_service_check)?,
            label_to_hostname: text("label_to_hostname")?,
            label_to_hostname_suffix: text("label_to_hostname_suffix")?,
        })
    } else {
        None
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

    let mut jobs: Vec<ScrapeJob> = Vec::with_capacity(endpoints.len());
    for (source_key, endpoint) in endpoints {
        if class == CheckClass::LegacyIstio14
            && let Some(first) = jobs.iter().find(|j| j.endpoint == endpoint)
        {
            // Datadog keeps the first scraper configuration created for a URL and runs
            // it again for every later key with the same URL.
            let mut again = first.clone();
            again.source_key = source_key;
            jobs.push(again);
            continue;
        }
        let mut mapping = base.clone();
        let mut v1 = v1_base.clone();
        match class {
            CheckClass::IstioCheckV2 => {
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
            CheckClass::IstioV1 => {
                // `metrics = instance.get('metrics', []) + [ISTIOD_METRICS]`, namespace
                // `istio` whatever the instance says.
                let preset = MappingConfig::istio_istiod();
                mapping.namespace = preset.namespace;
                if let Some(v) = v1.as_mut() {
                    v.metrics = mapping
                        .metrics
                        .iter()
                        .map(|m| {
                            (
                                m.raw.clone(),
                                m.name.clone().unwrap_or_else(|| m.raw.clone()),
                            )
                        })
                        .chain(
                            crate::mapping::istio_map::ISTIOD_METRICS
                                .iter()
                                .map(|&(r, n)| (r.to_owned(), n.to_owned())),
                        )
                        .collect();
                }
                mapping.metrics.extend(preset.metrics);
            }
            CheckClass::LegacyIstio14 => {
                // Namespace and metrics are replaced by the scraper's.
                // Every key of ISTIO_LEGACY_SCRAPERS has a preset.
                let preset = MappingConfig::istio_legacy(source_key).unwrap_or_default();
                mapping.namespace = preset.namespace;
                mapping.metrics = preset.metrics;
                if let Some(v) = v1.as_mut() {
                    v.metrics = crate::mapping::v1::istio_legacy_metrics(source_key);
                }
                if source_key == "galley_endpoint" {
                    let mut ignored: Vec<String> = ISTIO_LEGACY_GALLEY_IGNORED
                        .iter()
                        .map(|m| crate::mapping::glob_to_regex(m))
                        .collect();
                    ignored.append(&mut mapping.exclude_metrics);
                    mapping.exclude_metrics = ignored;
                }
                if let Some(v) = v1.as_mut()
                    && matches!(source_key, "istio_mesh_endpoint" | "mixer_endpoint")
                {
                    // "Defaults that were set when istio was based on PrometheusCheck".
                    let given = |k: &str| obj.get(k).is_some_and(|v| !v.is_null());
                    if !given("send_monotonic_counter") {
                        v.send_monotonic_counter = false;
                    }
                    if !given("health_service_check") {
                        v.health_service_check = false;
                    }
                    if source_key == "istio_mesh_endpoint" {
                        if !given("send_monotonic_with_gauge") {
                            v.send_monotonic_with_gauge = true;
                        }
                        v.label_to_hostname = Some(endpoint.clone());
                    }
                }
            }
            _ => {}
        }
        if class.is_v1() {
            // `tag_by_endpoint` stays as given: `V1Mapper` never adds `endpoint:` (V1
            // has no such tag), and callers still mapping V1 jobs with the V2 `Mapper`
            // keep the tag they had.
            for l in ISTIO_V1_EXCLUDED_LABELS {
                mapping.exclude_labels.push((*l).to_owned());
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
            v1,
        });
    }
    Ok(InstanceJobs {
        check: kind,
        class,
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
