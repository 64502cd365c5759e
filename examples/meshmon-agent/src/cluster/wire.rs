//! The Cluster Agent API's JSON shapes, as the Datadog Agent speaks them
//! (`pkg/clusteragent/clusterchecks/types` and `comp/core/autodiscovery/integration.Config`):
//! a config's `instances`, `init_config` and `logs` are YAML (or JSON) documents sent as
//! Go `[]byte`, that is base64 strings.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use meshmon_core::autodiscovery::CheckConfig;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `integration.Config` on the wire (the fields meshmon reads and writes; unknown fields
/// are ignored, missing ones take their Go zero value).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WireConfig {
    /// Check name.
    pub check_name: String,
    /// Instances, each a base64 YAML/JSON document.
    pub instances: Vec<String>,
    /// `init_config`, a base64 YAML/JSON document.
    pub init_config: String,
    /// `logs`, a base64 YAML/JSON document, when the config has one.
    pub logs: Option<String>,
    /// AD identifiers (empty: a resolved config).
    pub ad_identifiers: Vec<String>,
    /// Provider that issued the config.
    pub provider: String,
    /// The resolved service's id (`kube_endpoint_uid://…`, `kube_service://…`).
    pub service_id: String,
    /// A cluster check (no node).
    pub cluster_check: bool,
    /// Node of the backing pod, for endpoints checks.
    pub node_name: String,
    /// Where the config came from.
    pub source: String,
}

/// `types.ConfigResponse`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConfigResponse {
    /// The node's change stamp.
    pub last_change: i64,
    /// The configs.
    pub configs: Vec<WireConfig>,
}

/// `types.NodeStatus` (the heartbeat body).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeStatus {
    /// The `last_change` the node holds (0 before its first fetch).
    pub last_change: i64,
}

/// `types.StatusResponse`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StatusResponse {
    /// Whether the node's configs are current.
    pub isuptodate: bool,
}

fn encode(v: &Value) -> String {
    STANDARD.encode(serde_json::to_vec(v).unwrap_or_default())
}

fn decode(field: &str, s: &str) -> Result<Value, String> {
    if s.is_empty() {
        return Ok(Value::Null);
    }
    let bytes = STANDARD
        .decode(s.trim())
        .map_err(|e| format!("{field}: not base64 ({e})"))?;
    // Datadog sends YAML for file/annotation configs and JSON for container ones; YAML
    // reads both.
    serde_norway::from_slice::<Value>(&bytes).map_err(|e| format!("{field}: not YAML/JSON ({e})"))
}

impl WireConfig {
    /// A resolved config as the cluster agent sends it.
    pub fn from_config(c: &CheckConfig) -> Self {
        WireConfig {
            check_name: c.check.clone(),
            instances: if c.instance.is_null() {
                Vec::new()
            } else {
                vec![encode(&c.instance)]
            },
            init_config: encode(&c.init_config),
            logs: c.logs.as_ref().map(encode),
            ad_identifiers: Vec::new(),
            provider: if c.node.is_some() {
                "kubernetes-endpoints".into()
            } else {
                "kubernetes-services".into()
            },
            service_id: c.id.clone(),
            cluster_check: c.node.is_none(),
            node_name: c.node.clone().unwrap_or_default(),
            source: "meshmon-cluster-agent".into(),
        }
    }

    /// One [`CheckConfig`] per instance (a logs-only config gives one with a `null`
    /// instance). Tags are the instance's `tags`, sorted and de-duplicated.
    pub fn to_configs(&self) -> Result<Vec<CheckConfig>, String> {
        if self.check_name.is_empty() && self.logs.is_none() {
            return Err("config without check_name".into());
        }
        let init_config = decode("init_config", &self.init_config)?;
        let logs = match &self.logs {
            Some(l) => Some(decode("logs", l)?).filter(|v| !v.is_null()),
            None => None,
        };
        let node = (!self.node_name.is_empty()).then(|| self.node_name.clone());
        let mut instances = Vec::new();
        for (i, s) in self.instances.iter().enumerate() {
            instances.push(decode(&format!("instances[{i}]"), s)?);
        }
        if instances.is_empty() {
            instances.push(Value::Null);
        }
        let n = instances.len();
        Ok(instances
            .into_iter()
            .enumerate()
            .map(|(i, instance)| {
                let mut tags: Vec<String> = instance
                    .get("tags")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|t| t.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                tags.sort();
                tags.dedup();
                let id = if n == 1 {
                    self.service_id.clone()
                } else {
                    format!("{}#{i}", self.service_id)
                };
                CheckConfig {
                    id,
                    check: self.check_name.clone(),
                    node: node.clone(),
                    init_config: init_config.clone(),
                    instance,
                    tags,
                    logs: logs.clone(),
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_a_config() {
        let c = CheckConfig {
            id: "kube_endpoint_uid://istio-system/istiod/10.0.0.5".into(),
            check: "istio".into(),
            node: Some("node-a".into()),
            init_config: json!({}),
            instance: json!({"istiod_endpoint": "http://10.0.0.5:15014/metrics", "tags": ["b:2", "a:1"]}),
            tags: vec!["a:1".into(), "b:2".into()],
            logs: None,
        };
        let w = WireConfig::from_config(&c);
        assert_eq!(w.node_name, "node-a");
        assert!(!w.cluster_check);
        let text = serde_json::to_string(&w).unwrap();
        assert!(text.contains("\"check_name\":\"istio\""), "{text}");
        let back: WireConfig = serde_json::from_str(&text).unwrap();
        assert_eq!(back.to_configs().unwrap(), [c]);
    }

    #[test]
    fn reads_datadog_yaml_instances_and_names_bad_fields() {
        // As a Datadog Cluster Agent sends a file-based cluster check.
        let body = json!({
            "check_name": "http_check",
            "instances": [STANDARD.encode("name: svc\nurl: http://10.96.0.1\ntags: [\"x:y\"]\n")],
            "init_config": STANDARD.encode("{}"),
            "provider": "file", "cluster_check": true, "node_name": "",
            "some_future_field": 1,
        });
        let w: WireConfig = serde_json::from_value(body).unwrap();
        let c = &w.to_configs().unwrap()[0];
        assert_eq!(c.instance["url"], "http://10.96.0.1");
        assert_eq!(c.tags, ["x:y"]);
        assert_eq!(c.node, None);
        let bad = WireConfig {
            check_name: "x".into(),
            instances: vec!["%%%".into()],
            ..WireConfig::default()
        };
        assert!(
            bad.to_configs()
                .unwrap_err()
                .starts_with("instances[0]: not base64")
        );
    }
}
