//! Check instances → scrape jobs, and `meshmon-agent check NAME --instance JSON`.
//!
//! The checks are Datadog's `istio`, `openmetrics` and `prometheus`; turning an instance
//! into scrape jobs is domain logic and lives in `meshmon_prom::check`.

use std::time::Duration;

use meshmon_core::Metric;
use meshmon_core::autodiscovery::CheckConfig;
use serde_json::Value;

pub use meshmon_prom::check::{CheckError, InstanceJobs, ScrapeJob, jobs_from_instance};

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
