//! [`ManifestProvider`]: check configurations expanded from manifests held in memory
//! (and, with the `pipeline` feature, a `ConfigProvider`). The agent reads files (or
//! watches the API server) and hands the bytes in; the provider parses and expands them
//! on every [`ManifestProvider::expansion`] (or `ConfigProvider::collect`).

use super::ProviderError;
use super::expand::{ExpandOptions, Expansion, expand};
use super::kube::parse_objects;

/// Check configurations expanded from in-memory manifests.
///
/// ```
/// use meshmon_core::autodiscovery::{ExpandOptions, provider::ManifestProvider};
///
/// let manifest = br#"{"kind": "Service", "metadata": {"name": "s", "namespace": "n", "annotations": {
///   "ad.datadoghq.com/service.checks": "{\"tcp_check\": {\"instances\": [{\"host\": \"%%host%%\", \"port\": \"%%port%%\"}]}}"}},
///   "spec": {"clusterIP": "10.96.0.9", "ports": [{"port": 6379}]}}"#;
/// let p = ManifestProvider::new("manifests", ExpandOptions::default())
///     .with_source("svc.json", manifest.to_vec());
/// let configs = p.expansion()?.configs;
/// assert_eq!(configs[0].instance["port"], 6379);
/// # Ok::<(), meshmon_core::autodiscovery::ProviderError>(())
/// ```
#[derive(Clone, Debug)]
pub struct ManifestProvider {
    name: String,
    sources: Vec<(String, Vec<u8>)>,
    options: ExpandOptions,
}

impl ManifestProvider {
    /// A provider with no sources yet.
    pub fn new(name: impl Into<String>, options: ExpandOptions) -> Self {
        ManifestProvider {
            name: name.into(),
            sources: Vec::new(),
            options,
        }
    }

    /// The provider's name, for logs and errors.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Adds a manifest (`source_name` is used in errors, e.g. the file path).
    #[must_use]
    pub fn with_source(mut self, source_name: impl Into<String>, bytes: Vec<u8>) -> Self {
        self.sources.push((source_name.into(), bytes));
        self
    }

    /// The full expansion (configs, skipped pairs, annotation errors, counters). All
    /// sources are expanded together, so a Service and its Endpoints may come from
    /// different sources.
    pub fn expansion(&self) -> Result<Expansion, ProviderError> {
        let mut objects = Vec::new();
        for (source_name, bytes) in &self.sources {
            objects.extend(parse_objects(bytes).map_err(|error| ProviderError::Parse {
                source_name: source_name.clone(),
                error: Box::new(error),
            })?);
        }
        Ok(expand(&objects, &self.options))
    }
}

#[cfg(feature = "pipeline")]
#[async_trait::async_trait]
impl crate::pipeline::ConfigProvider for ManifestProvider {
    fn name(&self) -> &str {
        &self.name
    }

    async fn collect(&self) -> Result<Vec<super::CheckConfig>, ProviderError> {
        Ok(self.expansion()?.configs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_expanded_together_and_errors_name_the_source() {
        let svc = br#"{"kind": "Service", "metadata": {"name": "s", "namespace": "n", "annotations": {
            "ad.datadoghq.com/endpoints.checks": "{\"a\": {\"instances\": [{\"u\": \"%%host%%\"}]}}"}}}"#;
        let eps = b"kind: Endpoints\nmetadata: {name: s, namespace: n}\nsubsets: [{addresses: [{ip: 10.0.0.1}]}]\n";
        let p = ManifestProvider::new("m", ExpandOptions::default())
            .with_source("svc.json", svc.to_vec())
            .with_source("eps.yaml", eps.to_vec());
        let out = p.expansion().unwrap();
        assert_eq!(out.configs.len(), 1);
        assert_eq!(out.configs[0].instance["u"], "10.0.0.1");

        let bad = p.clone().with_source("broken.yaml", b"kind: [".to_vec());
        let e = bad.expansion().unwrap_err();
        assert!(
            matches!(&e, ProviderError::Parse { source_name, .. } if source_name == "broken.yaml")
        );
        assert!(
            e.to_string().starts_with("broken.yaml: YAML syntax error"),
            "{e}"
        );
    }
}
