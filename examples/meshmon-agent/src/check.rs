//! Check instances → scrape jobs, and `meshmon-agent check NAME --instance JSON`.
//!
//! The checks are Datadog's `istio`, `openmetrics` and `prometheus`; an instance is
//! turned into one scrape job per endpoint (URL + the Datadog mapping config + interval).

use std::time::Duration;

use meshmon_core::Metric;
use meshmon_core::autodiscovery::CheckConfig;
use meshmon_prom::MappingConfig;
use serde_json::Value;

/// One endpoint to scrape.
#[derive(Clone, Debug)]
pub struct ScrapeJob {
    /// The URL.
    pub url: String,
    /// The mapping namespace (`istio.mesh`, `istio`, …), also the job's name.
    pub namespace: String,
    /// How its families become Datadog metrics.
    pub mapping: MappingConfig,
    /// `min_collection_interval`, when set.
    pub interval: Option<Duration>,
}

/// What an instance asks for.
#[derive(Clone, Debug, Default)]
pub struct InstanceJobs {
    /// One job per endpoint.
    pub jobs: Vec<ScrapeJob>,
    /// Instance keys this check does not use (reported, not silently dropped).
    pub unknown_keys: Vec<String>,
    /// How keys were interpreted where meshmon differs from Datadog.
    pub notes: Vec<String>,
}

/// Why an instance cannot run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    /// Not a check meshmon runs.
    #[error("unknown check {0:?} (meshmon runs istio, openmetrics and prometheus)")]
    UnknownCheck(String),
    /// The instance is not a JSON object.
    #[error("{check}: the instance must be a JSON object")]
    NotAnObject {
        /// The check.
        check: String,
    },
    /// The instance has no endpoint to scrape.
    #[error("{check}: the instance names no endpoint ({keys})")]
    NoEndpoint {
        /// The check.
        check: String,
        /// The keys that would name one.
        keys: &'static str,
    },
    /// An option has the wrong shape.
    #[error("{check}: {message}")]
    BadOption {
        /// The check.
        check: String,
        /// What is wrong.
        message: String,
    },
}

/// Keys every check accepts (Datadog's common instance options).
const COMMON_KEYS: &[&str] = &[
    "tags",
    "min_collection_interval",
    "empty_default_hostname",
    "service",
    "timeout",
    "tls_verify",
];

const OPENMETRICS_KEYS: &[&str] = &[
    "openmetrics_endpoint",
    "prometheus_url",
    "namespace",
    "raw_metric_prefix",
    "prometheus_metrics_prefix",
    "metrics",
    "exclude_metrics",
    "ignore_metrics",
    "exclude_labels",
    "include_labels",
    "rename_labels",
    "labels_mapper",
    "tag_by_endpoint",
    "collect_histogram_buckets",
    "send_histograms_buckets",
    "non_cumulative_histogram_buckets",
    "non_cumulative_buckets",
    "histogram_buckets_as_distributions",
    "send_distribution_buckets",
    "collect_counters_with_distributions",
    "type_overrides",
];

const ISTIO_KEYS: &[&str] = &[
    "istio_mesh_endpoint",
    "istiod_endpoint",
    "use_openmetrics",
    "send_histograms_buckets",
    "exclude_labels",
    "mixer_endpoint",
    "galley_endpoint",
    "pilot_endpoint",
    "citadel_endpoint",
];

fn interval(check: &str, inst: &Value) -> Result<Option<Duration>, CheckError> {
    match inst.get("min_collection_interval") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .filter(|s| *s > 0.0 && s.is_finite())
            .map(|s| Some(Duration::from_secs_f64(s)))
            .ok_or_else(|| CheckError::BadOption {
                check: check.to_owned(),
                message: format!("min_collection_interval must be a positive number of seconds, not {v}"),
            }),
    }
}

fn strings(check: &str, inst: &Value, key: &str) -> Result<Vec<String>, CheckError> {
    match inst.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str().map(str::to_owned).ok_or_else(|| CheckError::BadOption {
                    check: check.to_owned(),
                    message: format!("{key} must be a list of strings"),
                })
            })
            .collect(),
        Some(_) => Err(CheckError::BadOption {
            check: check.to_owned(),
            message: format!("{key} must be a list of strings"),
        }),
    }
}

fn unknown(inst: &serde_json::Map<String, Value>, known: &[&[&str]]) -> Vec<String> {
    let mut v: Vec<String> = inst
        .keys()
        .filter(|k| !known.iter().any(|set| set.contains(&k.as_str())))
        .cloned()
        .collect();
    v.sort();
    v
}

fn url_of(inst: &Value, key: &str) -> Option<String> {
    inst.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The jobs of one check instance.
pub fn jobs_from_instance(check: &str, inst: &Value) -> Result<InstanceJobs, CheckError> {
    let Some(obj) = inst.as_object() else {
        return Err(CheckError::NotAnObject {
            check: check.to_owned(),
        });
    };
    let every = interval(check, inst)?;
    let tags = strings(check, inst, "tags")?;
    let mut out = InstanceJobs::default();
    match check {
        "istio" => {
            out.unknown_keys = unknown(obj, &[COMMON_KEYS, ISTIO_KEYS]);
            let exclude = strings(check, inst, "exclude_labels")?;
            let buckets = inst
                .get("send_histograms_buckets")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            let mut add = |url: String, mut m: MappingConfig| {
                m.openmetrics_endpoint = Some(url.clone());
                m.tags = tags.clone();
                m.exclude_labels.extend(exclude.iter().cloned());
                m.collect_histogram_buckets = buckets;
                out.jobs.push(ScrapeJob {
                    url,
                    namespace: m.namespace.clone(),
                    mapping: m,
                    interval: every,
                });
            };
            if let Some(u) = url_of(inst, "istio_mesh_endpoint") {
                add(u, MappingConfig::istio_mesh());
            }
            if let Some(u) = url_of(inst, "istiod_endpoint") {
                add(u, MappingConfig::istio_istiod());
            }
            let mut seen: Vec<String> = Vec::new();
            for key in ["mixer_endpoint", "galley_endpoint", "pilot_endpoint", "citadel_endpoint"] {
                if let Some(u) = url_of(inst, key) {
                    out.notes.push(format!(
                        "{key}: Istio <= 1.4 legacy endpoint, scraped under the istiod map (Datadog's legacy V1 check is not reproduced yet)"
                    ));
                    if !seen.contains(&u) {
                        seen.push(u.clone());
                        add(u, MappingConfig::istio_istiod());
                    }
                }
            }
            if out.jobs.is_empty() {
                return Err(CheckError::NoEndpoint {
                    check: check.to_owned(),
                    keys: "istio_mesh_endpoint, istiod_endpoint",
                });
            }
        }
        "openmetrics" | "prometheus" => {
            out.unknown_keys = unknown(obj, &[COMMON_KEYS, OPENMETRICS_KEYS]);
            let mut clean = obj.clone();
            for k in &out.unknown_keys {
                clean.remove(k);
            }
            for k in COMMON_KEYS {
                if *k != "tags" {
                    clean.remove(*k);
                }
            }
            let m: MappingConfig = serde_json::from_value(Value::Object(clean)).map_err(|e| {
                CheckError::BadOption {
                    check: check.to_owned(),
                    message: e.to_string(),
                }
            })?;
            let Some(url) = m.openmetrics_endpoint.clone() else {
                return Err(CheckError::NoEndpoint {
                    check: check.to_owned(),
                    keys: "openmetrics_endpoint, prometheus_url",
                });
            };
            out.jobs.push(ScrapeJob {
                url,
                namespace: m.namespace.clone(),
                mapping: m,
                interval: every,
            });
        }
        other => return Err(CheckError::UnknownCheck(other.to_owned())),
    }
    Ok(out)
}

/// The jobs of a scheduled config.
pub fn jobs_for(cfg: &CheckConfig) -> Result<InstanceJobs, CheckError> {
    jobs_from_instance(&cfg.check, &cfg.instance)
}

/// Runs one instance once (every endpoint) and returns what it submits, as Datadog's
/// `agent check` prints it: monotonic counts as their raw cumulative value.
pub async fn run_once(check: &str, inst: &Value, timeout: Duration) -> anyhow::Result<Vec<Metric>> {
    let jobs = jobs_from_instance(check, inst)?;
    for k in &jobs.unknown_keys {
        eprintln!("meshmon-agent check: instance key {k:?} is not used by the {check} check");
    }
    for n in &jobs.notes {
        eprintln!("meshmon-agent check: {n}");
    }
    let mut opts = meshmon_prom::scrape::ScrapeOptions::default();
    opts.timeout = timeout;
    let scraper = meshmon_prom::scrape::Scraper::new(opts);
    let mut out = Vec::new();
    for job in jobs.jobs {
        let resp = scraper.scrape(&job.url).await?;
        let mut mapper = meshmon_prom::Mapper::new(job.mapping)?;
        let now = crate::run::Clock::now(&crate::run::SystemClock);
        mapper.map(&resp.body, resp.format, now, &mut |m| out.push(m))?;
    }
    Ok(out)
}

/// One metric as `check --json` prints it.
pub fn metric_json(m: &Metric) -> Value {
    let value = match &m.value {
        meshmon_core::MetricValue::HistogramBucket { count, .. } => Value::from(*count),
        meshmon_core::MetricValue::Distribution(v) => Value::from(v.clone()),
        other => other.as_f64().map(Value::from).unwrap_or(Value::Null),
    };
    serde_json::json!({
        "name": &*m.name,
        "type": m.value.type_name(),
        "value": value,
        "tags": m.tags.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn istio_instance_from_the_seed() {
        let inst = json!({
            "istio_mesh_endpoint": "http://10.0.0.1:42422/metrics",
            "mixer_endpoint": "http://10.0.0.1:15014/metrics",
            "send_histograms_buckets": true,
            "tags": ["kube_service:istio-telemetry"],
            "frobnicate": 1,
        });
        let j = jobs_from_instance("istio", &inst).unwrap();
        assert_eq!(j.jobs.len(), 2);
        assert_eq!(j.jobs[0].namespace, "istio.mesh");
        assert_eq!(j.jobs[1].namespace, "istio");
        assert_eq!(j.jobs[0].mapping.tags, ["kube_service:istio-telemetry"]);
        assert_eq!(j.unknown_keys, ["frobnicate"]);
        assert_eq!(j.notes.len(), 1);
    }

    #[test]
    fn openmetrics_instance_and_errors() {
        let inst = json!({"openmetrics_endpoint": "http://127.0.0.1:9100/metrics",
                          "namespace": "node", "metrics": [".*"], "min_collection_interval": 5});
        let j = jobs_from_instance("openmetrics", &inst).unwrap();
        assert_eq!(j.jobs[0].url, "http://127.0.0.1:9100/metrics");
        assert_eq!(j.jobs[0].interval, Some(Duration::from_secs(5)));
        assert!(j.unknown_keys.is_empty());
        assert!(matches!(
            jobs_from_instance("openmetrics", &json!({"namespace": "x"})),
            Err(CheckError::NoEndpoint { .. })
        ));
        assert!(matches!(
            jobs_from_instance("redis", &json!({})),
            Err(CheckError::UnknownCheck(_))
        ));
        assert!(matches!(
            jobs_from_instance("istio", &json!({"istio_mesh_endpoint": "http://x/", "min_collection_interval": -1})),
            Err(CheckError::BadOption { .. })
        ));
    }
}
