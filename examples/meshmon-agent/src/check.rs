//! Check instances → scrape jobs, and `meshmon-agent check NAME --instance JSON`.
//!
//! The checks are Datadog's `istio`, `openmetrics` and `prometheus`; turning an instance
//! into scrape jobs is domain logic and lives in `meshmon_prom::check`.

use std::time::Duration;

use meshmon_core::Metric;
use meshmon_core::autodiscovery::CheckConfig;
use serde_json::Value;

pub use meshmon_prom::check::{CheckError, InstanceJobs, ScrapeJob, jobs_from_instance};

/// The mapper of one job: the OpenMetrics V2 mapper, or the V1 mapper when the instance
/// selected one of Datadog's V1 check classes (the legacy Istio 1.4 check, the V1 istiod
/// check; see `meshmon_prom::check::CheckClass`).
#[derive(Debug)]
pub enum JobMapper {
    /// OpenMetrics V2 (`meshmon_prom::Mapper`).
    V2(Box<meshmon_prom::Mapper>),
    /// OpenMetrics V1 (`meshmon_prom::mapping::v1::V1Mapper`).
    V1 {
        /// The mapper.
        mapper: Box<meshmon_prom::mapping::v1::V1Mapper>,
        /// Send `<namespace>.prometheus.health` after each scrape.
        health: bool,
        /// Its tags (`endpoint:<url>` and the instance tags).
        health_tags: meshmon_core::Tags,
        /// Its name.
        health_name: String,
    },
}

impl JobMapper {
    /// The mapper `job` asks for.
    pub fn new(job: &ScrapeJob) -> Result<Self, meshmon_prom::mapping::ConfigError> {
        Ok(match &job.v1 {
            None => JobMapper::V2(Box::new(meshmon_prom::Mapper::new(job.mapping.clone())?)),
            Some(v1) => {
                let mut health_tags = meshmon_core::Tags::new();
                for t in job
                    .mapping
                    .tags
                    .iter()
                    .cloned()
                    .chain([format!("endpoint:{}", job.endpoint)])
                {
                    if let Ok(t) = t.parse::<meshmon_core::Tag>() {
                        health_tags.insert(t);
                    }
                }
                JobMapper::V1 {
                    mapper: Box::new(meshmon_prom::mapping::v1::V1Mapper::new(
                        job.mapping.clone(),
                        v1.clone(),
                    )?),
                    health: v1.health_service_check,
                    health_tags,
                    health_name: format!("{}.prometheus.health", job.mapping.namespace),
                }
            }
        })
    }

    /// Maps one scrape's body (V1 ignores the content type, as Datadog's V1 check does).
    /// The V1 health service check is emitted as a gauge of its status (0 = OK).
    pub fn map(
        &mut self,
        body: &[u8],
        format: meshmon_prom::Format,
        now: meshmon_core::Timestamp,
        out: &mut dyn FnMut(Metric),
    ) -> Result<meshmon_prom::MapStats, meshmon_prom::ParseError> {
        match self {
            JobMapper::V2(m) => m.map(body, format, now, out),
            JobMapper::V1 {
                mapper,
                health,
                health_tags,
                health_name,
            } => {
                let r = mapper.map(body, now, &mut |m| out(m.metric));
                if *health {
                    let status = if r.is_ok() { 0.0 } else { 2.0 };
                    out(Metric::new(
                        health_name.as_str(),
                        meshmon_core::MetricValue::Gauge(status),
                        health_tags.clone(),
                        now,
                    ));
                }
                r
            }
        }
    }
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
    for k in &jobs.legacy_keys {
        eprintln!(
            "meshmon-agent check: {k} is a legacy (Istio <= 1.4) key, scraped with the OpenMetrics v2 mapping"
        );
    }
    let mut out = Vec::new();
    for job in jobs.jobs {
        let t = if inst.get("timeout").is_some() {
            job.timeout
        } else {
            timeout
        };
        let scraper = meshmon_prom::scrape::Scraper::new(crate::run::scrape::options(t, 64 << 20)?);
        let resp = scraper.scrape(&job.endpoint).await?;
        let mut mapper = JobMapper::new(&job)?;
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
    use meshmon_core::{MetricValue, Timestamp};

    #[test]
    fn metric_json_has_the_four_fields() {
        let m = Metric::new(
            "istio.mesh.request.count",
            MetricValue::MonotonicCount(3.0),
            "b:2,a:1".parse().unwrap(),
            Timestamp::from_secs(1),
        );
        let j = metric_json(&m);
        assert_eq!(
            j,
            serde_json::json!({"name": "istio.mesh.request.count",
            "type": "monotonic_count", "value": 3.0, "tags": ["a:1", "b:2"]})
        );
    }
}
