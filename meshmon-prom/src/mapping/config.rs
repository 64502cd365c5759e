//! [`MappingConfig`]: the instance options of Datadog's OpenMetrics v2 check that decide
//! what a scrape submits (not how it is fetched: see the `scrape` feature for that).

use super::istio_map;

/// Why a configuration cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A pattern is not a valid regular expression.
    #[error("{field}: invalid regular expression {pattern:?}: {message}")]
    Regex {
        /// The option holding the pattern.
        field: &'static str,
        /// The pattern.
        pattern: String,
        /// The regex engine's message.
        message: String,
    },
    /// A static tag (or the endpoint tag) is not a valid tag.
    #[error("invalid tag {tag:?}: {message}")]
    Tag {
        /// The tag text.
        tag: String,
        /// Why.
        message: String,
    },
    /// A metric type name is unknown.
    #[error(
        "metric {metric:?}: unknown type {kind:?} (native, counter, gauge, histogram, summary, rate)"
    )]
    UnknownType {
        /// The raw metric name.
        metric: String,
        /// The type name given.
        kind: String,
    },
}

/// How a family is submitted (the `type` of a `metrics` entry, Datadog's transformer).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum SubmitType {
    /// Whatever the exposition declares (counter, gauge, histogram or summary).
    #[default]
    Native,
    /// `<name>.count` monotonic count.
    Counter,
    /// `<name>` gauge.
    Gauge,
    /// Buckets, `.sum`, `.count`.
    Histogram,
    /// `.quantile`, `.sum`, `.count`.
    Summary,
    /// `<name>` rate.
    Rate,
}

impl SubmitType {
    /// Parses Datadog's type name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "native" => Self::Native,
            "counter" => Self::Counter,
            "gauge" => Self::Gauge,
            "histogram" => Self::Histogram,
            "summary" => Self::Summary,
            "rate" => Self::Rate,
            _ => return None,
        })
    }
}

/// One `metrics` entry: a raw name (or a regular expression when it contains regex
/// metacharacters) and how to submit it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricSpec {
    /// Raw Prometheus family name (after `raw_metric_prefix`), or a regex.
    pub raw: String,
    /// Datadog name without the namespace; `None` keeps the raw name.
    pub name: Option<String>,
    /// How to submit.
    pub kind: SubmitType,
}

impl MetricSpec {
    /// `raw` submitted natively as `name`.
    pub fn renamed(raw: &str, name: &str) -> Self {
        Self {
            raw: raw.to_owned(),
            name: Some(name.to_owned()),
            kind: SubmitType::Native,
        }
    }
}

/// The instance options of Datadog's OpenMetrics v2 check that shape submitted metrics
/// (option names as Datadog spells them; the v1 names are accepted as aliases when
/// deserialising with the `serde` feature: `prometheus_url`, `prometheus_metrics_prefix`,
/// `labels_mapper`, `send_histograms_buckets`, `non_cumulative_buckets`,
/// `send_distribution_buckets`, `ignore_metrics` (globs), `type_overrides`).
///
/// Start from [`MappingConfig::default`] or a preset ([`MappingConfig::istio_mesh`],
/// [`MappingConfig::istio_istiod`]), set fields, and call [`MappingConfig::validate`]
/// (or [`Mapper::new`](super::Mapper::new), which validates) before use.
///
/// ```
/// use meshmon_prom::MappingConfig;
/// use meshmon_prom::mapping::ConfigError;
/// let mut cfg = MappingConfig::istio_mesh();
/// cfg.exclude_labels.push("source_principal".into());
/// cfg.validate()?;
/// cfg.exclude_metrics.push("istio_(".into());
/// assert!(matches!(cfg.validate(), Err(ConfigError::Regex { field: "exclude_metrics", .. })));
/// # Ok::<(), ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MappingConfig {
    /// `openmetrics_endpoint` (v1 `prometheus_url`): tagged as `endpoint:<url>`.
    pub openmetrics_endpoint: Option<String>,
    /// `namespace`: prefix joined with `.`.
    pub namespace: String,
    /// `raw_metric_prefix` (v1 `prometheus_metrics_prefix`): stripped from family names.
    pub raw_metric_prefix: String,
    /// `metrics`: what to submit and under which name.
    pub metrics: Vec<MetricSpec>,
    /// `exclude_metrics`: exact names or regular expressions (v1 `ignore_metrics` globs
    /// are translated).
    pub exclude_metrics: Vec<String>,
    /// `exclude_labels`: labels never turned into tags.
    pub exclude_labels: Vec<String>,
    /// `include_labels`: when non-empty, only these labels become tags.
    pub include_labels: Vec<String>,
    /// `rename_labels` (v1 `labels_mapper`): label → tag key, applied after the filters.
    pub rename_labels: Vec<(String, String)>,
    /// `tags`: static tags added to every metric.
    pub tags: Vec<String>,
    /// `tag_by_endpoint` (default true): add `endpoint:<openmetrics_endpoint>`.
    pub tag_by_endpoint: bool,
    /// `collect_histogram_buckets` (v1 `send_histograms_buckets`, default true).
    pub collect_histogram_buckets: bool,
    /// `non_cumulative_histogram_buckets` (v1 `non_cumulative_buckets`).
    pub non_cumulative_histogram_buckets: bool,
    /// `histogram_buckets_as_distributions` (v1 `send_distribution_buckets`).
    pub histogram_buckets_as_distributions: bool,
    /// `collect_counters_with_distributions`: also `.sum`/`.count` with distributions.
    pub collect_counters_with_distributions: bool,
    /// Most distinct label sets whose tags the mapper keeps built (default 100,000;
    /// 0 disables the cache). A meshmon limit, not a Datadog option.
    pub max_cached_label_sets: usize,
}

impl Default for MappingConfig {
    fn default() -> Self {
        Self {
            openmetrics_endpoint: None,
            namespace: String::new(),
            raw_metric_prefix: String::new(),
            metrics: Vec::new(),
            exclude_metrics: Vec::new(),
            exclude_labels: Vec::new(),
            include_labels: Vec::new(),
            rename_labels: Vec::new(),
            tags: Vec::new(),
            tag_by_endpoint: true,
            collect_histogram_buckets: true,
            non_cumulative_histogram_buckets: false,
            histogram_buckets_as_distributions: false,
            collect_counters_with_distributions: false,
            max_cached_label_sets: 100_000,
        }
    }
}

/// Datadog's Istio `construct_metrics_config`: `_total` stripped from both the raw and
/// the Datadog name (6 characters) unless the raw name is non-conforming.
fn istio_metrics(map: &[(&str, &str)]) -> Vec<MetricSpec> {
    map.iter()
        .map(|&(raw, name)| {
            if raw.ends_with("_total") && !istio_map::NON_CONFORMING_METRICS.contains(&raw) {
                let cut = |s: &str| s[..s.len().saturating_sub(6)].to_owned();
                MetricSpec {
                    raw: cut(raw),
                    name: Some(if name.len() >= 6 {
                        cut(name)
                    } else {
                        String::new()
                    }),
                    kind: SubmitType::Native,
                }
            } else {
                MetricSpec::renamed(raw, name)
            }
        })
        .collect()
}

/// The former name of [`MappingConfig`]: it configures the Datadog mapping, not the
/// scraper.
#[deprecated(since = "0.1.0", note = "renamed to `MappingConfig`")]
pub type ScraperConfig = MappingConfig;

impl MappingConfig {
    /// Checks everything [`Mapper::new`](super::Mapper::new) compiles (metric and
    /// exclusion regular expressions, static and endpoint tags), without keeping the
    /// result.
    pub fn validate(&self) -> Result<(), ConfigError> {
        super::Mapper::new(self.clone()).map(drop)
    }

    /// This configuration scraping `endpoint` (`openmetrics_endpoint`, tagged
    /// `endpoint:<url>` while `tag_by_endpoint` holds).
    #[must_use]
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.openmetrics_endpoint = Some(endpoint.into());
        self
    }

    /// The Istio integration's mesh endpoint (`istio_mesh_endpoint`): namespace
    /// `istio.mesh`, Datadog's `MESH_METRICS` map, so `istio_requests_total` becomes
    /// `istio.mesh.request.count`.
    pub fn istio_mesh() -> Self {
        Self {
            namespace: "istio.mesh".into(),
            metrics: istio_metrics(istio_map::MESH_METRICS),
            ..Self::default()
        }
    }

    /// The Istio integration's istiod endpoint (`istiod_endpoint`): namespace `istio`,
    /// Datadog's `ISTIOD_METRICS` map.
    pub fn istio_istiod() -> Self {
        Self {
            namespace: "istio".into(),
            metrics: istio_metrics(istio_map::ISTIOD_METRICS),
            ..Self::default()
        }
    }

    /// The scraper `LegacyIstioCheck_1_4` (Datadog's Istio 1.4 check) builds for an
    /// endpoint key: `istio_mesh_endpoint` (`istio.mesh`, `MESH_METRICS`),
    /// `mixer_endpoint` (`istio.mixer`), `pilot_endpoint` (`istio.pilot`),
    /// `galley_endpoint` (`istio.galley`), `citadel_endpoint` (`istio.citadel`), the
    /// control-plane ones with `GENERIC_METRICS` (Go and process metrics) added. The
    /// metric names are those of [`MappingConfig::istio_mesh`]'s rule (`_total` cut
    /// from counters), for the OpenMetrics V2 mapper.
    pub fn istio_legacy(endpoint_key: &str) -> Option<Self> {
        let (namespace, map) = match endpoint_key {
            "istio_mesh_endpoint" => ("istio.mesh", istio_map::MESH_METRICS),
            "mixer_endpoint" => ("istio.mixer", istio_map::MIXER_METRICS),
            "pilot_endpoint" => ("istio.pilot", istio_map::PILOT_METRICS),
            "galley_endpoint" => ("istio.galley", istio_map::GALLEY_METRICS),
            "citadel_endpoint" => ("istio.citadel", istio_map::CITADEL_METRICS),
            _ => return None,
        };
        let mut pairs: Vec<(&str, &str)> = map.to_vec();
        if endpoint_key != "istio_mesh_endpoint" {
            // `MIXER_METRICS.update(GENERIC_METRICS)`: the generic name wins.
            for &(raw, name) in istio_map::GENERIC_METRICS {
                match pairs.iter_mut().find(|(r, _)| *r == raw) {
                    Some(p) => p.1 = name,
                    None => pairs.push((raw, name)),
                }
            }
        }
        Some(Self {
            namespace: namespace.into(),
            metrics: istio_metrics(&pairs),
            ..Self::default()
        })
    }

    /// A preset by name: `istio` / `istio-mesh`, or `istiod`.
    pub fn preset(name: &str) -> Option<Self> {
        match name {
            "istio" | "istio-mesh" | "istio_mesh" => Some(Self::istio_mesh()),
            "istiod" | "istio-istiod" => Some(Self::istio_istiod()),
            _ => None,
        }
    }
}

/// Python's `fnmatch.translate`, as Datadog applies it to v1 glob options: `*` → `.*`,
/// `?` → `.`, `[...]` kept, everything else escaped, anchored.
pub fn glob_to_regex(glob: &str) -> String {
    let mut out = String::from("(?s:");
    let chars: Vec<char> = glob.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            '[' => {
                let mut j = i;
                if j < chars.len() && chars[j] == '!' {
                    j += 1;
                }
                if j < chars.len() && chars[j] == ']' {
                    j += 1;
                }
                while j < chars.len() && chars[j] != ']' {
                    j += 1;
                }
                if j >= chars.len() {
                    out.push_str("\\[");
                } else {
                    let mut stuff: String = chars[i..j].iter().collect();
                    stuff = stuff.replace('\\', "\\\\");
                    i = j + 1;
                    out.push('[');
                    if let Some(rest) = stuff.strip_prefix('!') {
                        out.push('^');
                        out.push_str(rest);
                    } else {
                        out.push_str(&stuff);
                    }
                    out.push(']');
                }
            }
            c => out.push_str(&regex::escape(&c.to_string())),
        }
    }
    out.push_str(")\\z");
    out
}

#[cfg(feature = "serde")]
mod de {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::{MappingConfig, MetricSpec, SubmitType, glob_to_regex};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Entry {
        Name(String),
        Map(BTreeMap<String, Target>),
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Target {
        Name(String),
        Spec {
            name: Option<String>,
            #[serde(rename = "type")]
            kind: Option<String>,
        },
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Raw {
        #[serde(alias = "prometheus_url")]
        openmetrics_endpoint: Option<String>,
        namespace: String,
        #[serde(alias = "prometheus_metrics_prefix")]
        raw_metric_prefix: String,
        metrics: Vec<Entry>,
        extra_metrics: Vec<Entry>,
        type_overrides: BTreeMap<String, String>,
        exclude_metrics: Vec<String>,
        ignore_metrics: Vec<String>,
        exclude_labels: Vec<String>,
        include_labels: Vec<String>,
        #[serde(alias = "labels_mapper")]
        rename_labels: BTreeMap<String, String>,
        tags: Vec<String>,
        tag_by_endpoint: Option<bool>,
        #[serde(alias = "send_histograms_buckets")]
        collect_histogram_buckets: Option<bool>,
        #[serde(alias = "non_cumulative_buckets")]
        non_cumulative_histogram_buckets: bool,
        #[serde(alias = "send_distribution_buckets")]
        histogram_buckets_as_distributions: bool,
        collect_counters_with_distributions: bool,
    }

    fn kind_of(raw: &str, kind: Option<&str>) -> Result<SubmitType, String> {
        match kind {
            None => Ok(SubmitType::Native),
            Some(k) => {
                SubmitType::parse(k).ok_or_else(|| format!("metric {raw:?}: unknown type {k:?}"))
            }
        }
    }

    impl<'de> Deserialize<'de> for MappingConfig {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let mut raw = Raw::deserialize(d)?;
            let mut metrics = Vec::new();
            for entry in raw.metrics.into_iter().chain(raw.extra_metrics) {
                match entry {
                    Entry::Name(n) => {
                        let kind = raw.type_overrides.remove(&n);
                        let kind =
                            kind_of(&n, kind.as_deref()).map_err(serde::de::Error::custom)?;
                        metrics.push(MetricSpec {
                            raw: n,
                            name: None,
                            kind,
                        });
                    }
                    Entry::Map(m) => {
                        for (k, t) in m {
                            let (name, kind) = match t {
                                Target::Name(n) => (Some(n), raw.type_overrides.remove(&k)),
                                Target::Spec { name, kind } => {
                                    (name, kind.or_else(|| raw.type_overrides.remove(&k)))
                                }
                            };
                            let kind =
                                kind_of(&k, kind.as_deref()).map_err(serde::de::Error::custom)?;
                            metrics.push(MetricSpec { raw: k, name, kind });
                        }
                    }
                }
            }
            for (k, t) in raw.type_overrides {
                let kind = kind_of(&k, Some(&t)).map_err(serde::de::Error::custom)?;
                metrics.push(MetricSpec {
                    raw: glob_to_regex(&k),
                    name: None,
                    kind,
                });
            }
            let mut exclude_metrics = raw.exclude_metrics;
            exclude_metrics.extend(raw.ignore_metrics.iter().map(|g| glob_to_regex(g)));
            Ok(MappingConfig {
                openmetrics_endpoint: raw.openmetrics_endpoint,
                namespace: raw.namespace,
                raw_metric_prefix: raw.raw_metric_prefix,
                metrics,
                exclude_metrics,
                exclude_labels: raw.exclude_labels,
                include_labels: raw.include_labels,
                rename_labels: raw.rename_labels.into_iter().collect(),
                tags: raw.tags,
                tag_by_endpoint: raw.tag_by_endpoint.unwrap_or(true),
                collect_histogram_buckets: raw.collect_histogram_buckets.unwrap_or(true),
                non_cumulative_histogram_buckets: raw.non_cumulative_histogram_buckets,
                histogram_buckets_as_distributions: raw.histogram_buckets_as_distributions,
                collect_counters_with_distributions: raw.collect_counters_with_distributions,
                max_cached_label_sets: MappingConfig::default().max_cached_label_sets,
            })
        }
    }
}
