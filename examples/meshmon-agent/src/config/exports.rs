//! `exports:`: where the agent sends a copy of every metric batch it stores (see
//! [`crate::export`]). Each export is optional; several may run at once.

use serde::{Deserialize, Serialize};

use super::{ConfigError, Dur};

/// `exports:`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct ExportsConfig {
    /// Prometheus remote write 1.0.
    pub remote_write: RemoteWriteConfig,
    /// Datadog metrics intake (`POST /api/v1/series`).
    pub datadog: DatadogExportConfig,
}

/// `exports.remote_write`: Prometheus remote write 1.0 (protobuf + snappy).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct RemoteWriteConfig {
    /// The receiver's URL, e.g. `http://prometheus:9090/api/v1/write`
    /// (`MESHMON_REMOTE_WRITE_URL`); empty: the export is off.
    pub url: String,
    /// Most series whose cumulative value is tracked (counts are sent as cumulative
    /// counters); samples of new series beyond it are dropped and counted.
    pub max_series: usize,
    /// A series without a sample for this long is forgotten (its cumulative sum restarts
    /// at 0, a counter reset, if it comes back).
    pub series_expiry: Dur,
    /// Queue, batching and retry policy.
    pub queue: ExportQueueConfig,
}

/// `exports.datadog`: the Datadog metrics intake, v1 series JSON.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct DatadogExportConfig {
    /// Send (also turned on by `DD_DD_URL` / `DD_URL`). The key is the top-level
    /// `api_key` (`DD_API_KEY`).
    pub enabled: bool,
    /// Intake base URL (`DD_DD_URL`, else `DD_URL`), `/api/v1/series` is appended; empty:
    /// `https://api.<site>`.
    pub url: String,
    /// Datadog site (`DD_SITE`).
    pub site: String,
    /// Request body encoding: `deflate` (zlib, what the Agent sends), `gzip` or `none`.
    pub compression: String,
    /// Queue, batching and retry policy.
    pub queue: ExportQueueConfig,
}

/// `exports.*.queue`: one export's bounded queue, batching and retries.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct ExportQueueConfig {
    /// Most metrics waiting to be sent; a batch offered beyond it is dropped and counted.
    pub max_queued_metrics: usize,
    /// Most metrics per request.
    pub max_batch_metrics: usize,
    /// Longest a metric waits before a request is sent.
    pub flush_interval: Dur,
    /// Timeout of one request, response included.
    pub timeout: Dur,
    /// Retries of a request after a network error, a timeout, 5xx or 429 (never after
    /// another 4xx); then its metrics are counted as failed.
    pub max_retries: u32,
    /// Wait before the first retry; doubled after each one.
    pub min_backoff: Dur,
    /// Longest wait between retries.
    pub max_backoff: Dur,
}

impl Default for ExportQueueConfig {
    fn default() -> Self {
        ExportQueueConfig {
            max_queued_metrics: 100_000,
            max_batch_metrics: 2_000,
            flush_interval: Dur::secs(5),
            timeout: Dur::secs(10),
            max_retries: 5,
            min_backoff: Dur(std::time::Duration::from_millis(500)),
            max_backoff: Dur::secs(30),
        }
    }
}

impl Default for RemoteWriteConfig {
    fn default() -> Self {
        RemoteWriteConfig {
            url: String::new(),
            max_series: 100_000,
            series_expiry: Dur::secs(600),
            queue: ExportQueueConfig::default(),
        }
    }
}

impl Default for DatadogExportConfig {
    fn default() -> Self {
        DatadogExportConfig {
            enabled: false,
            url: String::new(),
            site: "datadoghq.com".into(),
            compression: "deflate".into(),
            queue: ExportQueueConfig::default(),
        }
    }
}

impl DatadogExportConfig {
    /// The series endpoint: `url` (or `https://api.<site>`) + `/api/v1/series`.
    pub fn series_url(&self) -> String {
        let base = if self.url.is_empty() {
            format!("https://api.{}", self.site)
        } else {
            self.url.clone()
        };
        format!("{}/api/v1/series", base.trim_end_matches('/'))
    }
}

fn bad(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        message: message.into(),
    }
}

/// Checks an `http://` URL this build can send to (no TLS in this release).
fn check_url(key: &str, url: &str) -> Result<(), ConfigError> {
    if url.starts_with("https://") {
        return Err(bad(
            key,
            format!(
                "{url:?}: https is not supported by this build (no TLS); send through a local \
                 TLS-terminating proxy with an http:// URL"
            ),
        ));
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(bad(key, format!("{url:?}: not an http:// URL")));
    };
    let authority = rest.split('/').next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') {
        return Err(bad(
            key,
            format!("{url:?}: needs a host[:port] (and no user info)"),
        ));
    }
    url.parse::<hyper::Uri>()
        .map_err(|e| bad(key, format!("{url:?}: {e}")))?;
    Ok(())
}

impl ExportQueueConfig {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        let k = |s: &str| format!("{prefix}.queue.{s}");
        if self.max_queued_metrics == 0 {
            return Err(bad(&k("max_queued_metrics"), "must be greater than 0"));
        }
        if self.max_batch_metrics == 0 {
            return Err(bad(&k("max_batch_metrics"), "must be greater than 0"));
        }
        for (name, d) in [
            ("flush_interval", self.flush_interval),
            ("timeout", self.timeout),
            ("min_backoff", self.min_backoff),
            ("max_backoff", self.max_backoff),
        ] {
            if d.0.is_zero() {
                return Err(bad(&k(name), "must be greater than 0"));
            }
        }
        if self.max_backoff < self.min_backoff {
            return Err(bad(&k("max_backoff"), "must be at least min_backoff"));
        }
        Ok(())
    }
}

impl ExportsConfig {
    /// Checks what parsed but cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let rw = &self.remote_write;
        rw.queue.validate("exports.remote_write")?;
        if rw.max_series == 0 {
            return Err(bad(
                "exports.remote_write.max_series",
                "must be greater than 0",
            ));
        }
        if rw.series_expiry.0.is_zero() {
            return Err(bad(
                "exports.remote_write.series_expiry",
                "must be greater than 0",
            ));
        }
        if !rw.url.is_empty() {
            check_url("exports.remote_write.url", &rw.url)?;
        }
        let dd = &self.datadog;
        dd.queue.validate("exports.datadog")?;
        if !matches!(dd.compression.as_str(), "deflate" | "gzip" | "none") {
            return Err(bad(
                "exports.datadog.compression",
                format!("{:?}: expected deflate, gzip or none", dd.compression),
            ));
        }
        if dd.url.is_empty() && dd.site.is_empty() {
            return Err(bad("exports.datadog.site", "must not be empty"));
        }
        if dd.enabled {
            check_url("exports.datadog.url", &dd.series_url())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_url_follows_site_and_url() {
        let mut d = DatadogExportConfig::default();
        assert_eq!(d.series_url(), "https://api.datadoghq.com/api/v1/series");
        d.site = "datadoghq.eu".into();
        assert_eq!(d.series_url(), "https://api.datadoghq.eu/api/v1/series");
        d.url = "http://vm:8428/datadog/".into();
        assert_eq!(d.series_url(), "http://vm:8428/datadog/api/v1/series");
    }

    fn load(pairs: &[(&str, &str)]) -> Result<super::super::AgentConfig, ConfigError> {
        let env: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        super::super::AgentConfig::load(None, &env)
    }

    #[test]
    fn the_environment_turns_exports_on() {
        let cfg = load(&[]).unwrap();
        assert!(cfg.exports.remote_write.url.is_empty() && !cfg.exports.datadog.enabled);
        let cfg = load(&[
            ("MESHMON_REMOTE_WRITE_URL", "http://p:9090/api/v1/write"),
            ("DD_DD_URL", "http://vm:8428/datadog"),
            ("DD_URL", "http://ignored:1"),
            ("DD_API_KEY", "s3cr3t-key"),
        ])
        .unwrap();
        assert_eq!(cfg.exports.remote_write.url, "http://p:9090/api/v1/write");
        assert!(cfg.exports.datadog.enabled);
        assert_eq!(
            cfg.exports.datadog.series_url(),
            "http://vm:8428/datadog/api/v1/series"
        );
        assert!(!cfg.to_yaml().contains("s3cr3t-key"));
        // DD_URL when DD_DD_URL is unset.
        let cfg = load(&[("DD_URL", "http://dd:8080")]).unwrap();
        assert_eq!(
            cfg.exports.datadog.series_url(),
            "http://dd:8080/api/v1/series"
        );
        // DD_SITE alone does not turn the export on; with it on, https is refused.
        let cfg = load(&[("DD_SITE", "datadoghq.eu")]).unwrap();
        assert!(!cfg.exports.datadog.enabled);
        assert_eq!(
            cfg.exports.datadog.series_url(),
            "https://api.datadoghq.eu/api/v1/series"
        );
        let e = load(&[("MESHMON_REMOTE_WRITE_URL", "https://p/api/v1/write")]).unwrap_err();
        assert!(e.to_string().contains("exports.remote_write.url"), "{e}");
    }

    #[test]
    fn validation_names_the_key() {
        let mut e = ExportsConfig::default();
        e.validate().unwrap();
        e.remote_write.url = "ftp://x".into();
        assert!(
            matches!(e.validate(), Err(ConfigError::Invalid { key, .. }) if key == "exports.remote_write.url")
        );
        e.remote_write.url = "http://127.0.0.1:9090/api/v1/write".into();
        e.validate().unwrap();
        e.datadog.enabled = true;
        // The default site is https, which this build cannot send to.
        let err = e.validate().unwrap_err().to_string();
        assert!(err.contains("https is not supported"), "{err}");
        e.datadog.url = "http://127.0.0.1:8428/datadog".into();
        e.validate().unwrap();
        e.datadog.compression = "zstd".into();
        assert!(
            matches!(e.validate(), Err(ConfigError::Invalid { key, .. }) if key == "exports.datadog.compression")
        );
        e.datadog.compression = "gzip".into();
        e.datadog.queue.max_backoff = Dur::secs(0);
        assert!(
            matches!(e.validate(), Err(ConfigError::Invalid { key, .. }) if key == "exports.datadog.queue.max_backoff")
        );
    }
}
