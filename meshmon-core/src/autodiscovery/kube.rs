//! Small serde types for the Kubernetes objects autodiscovery reads, and a parser for
//! `kubectl get … -o json` / `-o yaml` output.
//!
//! Only the fields autodiscovery needs are modelled (names follow the
//! [Kubernetes API reference](https://kubernetes.io/docs/reference/kubernetes-api/));
//! everything else in the input is ignored. Missing or `null` collections read as empty.
//!
//! [`parse_objects`] accepts one object, a `List` (or `ServiceList`, `PodList`, …,
//! nested lists are flattened), a top-level JSON array of objects, or multi-document
//! YAML. Objects of kinds autodiscovery does not use are returned as
//! [`KubeObject::Other`] so callers can count them.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// Deserializes `null` as the type's default (Kubernetes tools print `annotations: null`
/// and YAML turns `annotations:` with nothing after it into null).
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `metadata` of any object.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// `metadata.name`.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// `metadata.namespace` (empty for cluster-scoped objects).
    #[serde(default, deserialize_with = "nullable")]
    pub namespace: String,
    /// `metadata.uid`.
    #[serde(default, deserialize_with = "nullable")]
    pub uid: String,
    /// `metadata.labels`.
    #[serde(default, deserialize_with = "nullable")]
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`, where autodiscovery templates live.
    #[serde(default, deserialize_with = "nullable")]
    pub annotations: BTreeMap<String, String>,
}

/// A `v1/Service`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Service {
    /// Object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// `spec`.
    #[serde(default, deserialize_with = "nullable")]
    pub spec: ServiceSpec,
}

/// `Service.spec`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceSpec {
    /// `spec.clusterIP` (`None` is the string Kubernetes uses for headless services).
    #[serde(rename = "clusterIP", default, deserialize_with = "nullable")]
    pub cluster_ip: String,
    /// `spec.ports`.
    #[serde(default, deserialize_with = "nullable")]
    pub ports: Vec<ServicePort>,
    /// `spec.type` (`ClusterIP`, `NodePort`, …).
    #[serde(rename = "type", default, deserialize_with = "nullable")]
    pub service_type: String,
}

/// One entry of `Service.spec.ports`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ServicePort {
    /// Port name (may be empty when the service has a single port).
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// The service port.
    pub port: u16,
}

/// A `v1/Endpoints`: the addresses backing the Service of the same namespace and name.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Endpoints {
    /// Object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// `subsets`.
    #[serde(default, deserialize_with = "nullable")]
    pub subsets: Vec<EndpointSubset>,
}

/// One `Endpoints.subsets[]` entry: addresses sharing one port list.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointSubset {
    /// Ready addresses.
    #[serde(default, deserialize_with = "nullable")]
    pub addresses: Vec<EndpointAddress>,
    /// Addresses whose pods are not ready.
    #[serde(default, deserialize_with = "nullable")]
    pub not_ready_addresses: Vec<EndpointAddress>,
    /// Ports of every address in this subset.
    #[serde(default, deserialize_with = "nullable")]
    pub ports: Vec<EndpointPort>,
}

/// One address of an [`EndpointSubset`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointAddress {
    /// The IP (v4 or v6).
    pub ip: String,
    /// The node hosting this endpoint.
    #[serde(default)]
    pub node_name: Option<String>,
    /// The object backing the address (usually a `Pod`).
    #[serde(default)]
    pub target_ref: Option<ObjectReference>,
}

/// `targetRef` of an endpoint.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ObjectReference {
    /// `Pod` for pod-backed endpoints.
    #[serde(default, deserialize_with = "nullable")]
    pub kind: String,
    /// Name of the referenced object.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// Namespace of the referenced object.
    #[serde(default, deserialize_with = "nullable")]
    pub namespace: String,
    /// UID of the referenced object.
    #[serde(default, deserialize_with = "nullable")]
    pub uid: String,
}

/// One port of an [`EndpointSubset`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EndpointPort {
    /// Port name (matches the Service port name).
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// The port.
    pub port: u16,
}

/// The label tying an [`EndpointSlice`] to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A `discovery.k8s.io/v1/EndpointSlice`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointSlice {
    /// Object metadata; the label [`SERVICE_NAME_LABEL`] names the Service.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// `IPv4`, `IPv6` or `FQDN`.
    #[serde(default, deserialize_with = "nullable")]
    pub address_type: String,
    /// `endpoints`.
    #[serde(default, deserialize_with = "nullable")]
    pub endpoints: Vec<SliceEndpoint>,
    /// Ports of every endpoint in the slice.
    #[serde(default, deserialize_with = "nullable")]
    pub ports: Vec<SlicePort>,
}

/// One `EndpointSlice.endpoints[]` entry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SliceEndpoint {
    /// Addresses of this endpoint (all for the same backend).
    #[serde(default, deserialize_with = "nullable")]
    pub addresses: Vec<String>,
    /// Readiness conditions.
    #[serde(default, deserialize_with = "nullable")]
    pub conditions: SliceConditions,
    /// The node hosting this endpoint.
    #[serde(default)]
    pub node_name: Option<String>,
    /// The object backing the endpoint.
    #[serde(default)]
    pub target_ref: Option<ObjectReference>,
}

/// `EndpointSlice.endpoints[].conditions`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SliceConditions {
    /// `ready`; absent means ready, as the API documents.
    #[serde(default)]
    pub ready: Option<bool>,
}

/// One `EndpointSlice.ports[]` entry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SlicePort {
    /// Port name.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// The port (absent means "all ports", which autodiscovery cannot use).
    #[serde(default)]
    pub port: Option<u16>,
}

/// A `v1/Pod`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Pod {
    /// Object metadata; container templates live in its annotations.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// `spec`.
    #[serde(default, deserialize_with = "nullable")]
    pub spec: PodSpec,
    /// `status`.
    #[serde(default, deserialize_with = "nullable")]
    pub status: PodStatus,
}

/// `Pod.spec`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    /// Node the pod is scheduled on.
    #[serde(default)]
    pub node_name: Option<String>,
    /// Containers.
    #[serde(default, deserialize_with = "nullable")]
    pub containers: Vec<Container>,
}

/// One container of a [`PodSpec`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Container {
    /// Container name: the `<id>` of its annotations.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// Image reference.
    #[serde(default, deserialize_with = "nullable")]
    pub image: String,
    /// Declared ports.
    #[serde(default, deserialize_with = "nullable")]
    pub ports: Vec<ContainerPort>,
}

/// One declared container port.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerPort {
    /// Port name.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// The port.
    pub container_port: u16,
}

/// `Pod.status`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    /// The pod IP.
    #[serde(rename = "podIP", default, deserialize_with = "nullable")]
    pub pod_ip: String,
    /// Pod conditions (`Ready` decides readiness).
    #[serde(default, deserialize_with = "nullable")]
    pub conditions: Vec<PodCondition>,
    /// Container statuses (for container ids).
    #[serde(default, deserialize_with = "nullable")]
    pub container_statuses: Vec<ContainerStatus>,
}

/// One pod condition.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PodCondition {
    /// Condition type, e.g. `Ready`.
    #[serde(rename = "type", default, deserialize_with = "nullable")]
    pub condition_type: String,
    /// `True`, `False` or `Unknown`.
    #[serde(default, deserialize_with = "nullable")]
    pub status: String,
}

/// One container status.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStatus {
    /// Container name.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// Runtime id, e.g. `containerd://4f1c…`.
    #[serde(rename = "containerID", default, deserialize_with = "nullable")]
    pub container_id: String,
}

impl Pod {
    /// Whether the pod's `Ready` condition is `True`.
    pub fn is_ready(&self) -> bool {
        self.status
            .conditions
            .iter()
            .any(|c| c.condition_type == "Ready" && c.status == "True")
    }
}

/// One object read from a manifest.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum KubeObject {
    /// A Service.
    Service(Service),
    /// An Endpoints.
    Endpoints(Endpoints),
    /// An EndpointSlice.
    EndpointSlice(EndpointSlice),
    /// A Pod.
    Pod(Pod),
    /// Any other kind (ignored by autodiscovery).
    Other {
        /// `kind`.
        kind: String,
        /// `metadata.name`, when present.
        name: String,
    },
}

impl KubeObject {
    /// The object's `kind`.
    pub fn kind(&self) -> &str {
        match self {
            KubeObject::Service(_) => "Service",
            KubeObject::Endpoints(_) => "Endpoints",
            KubeObject::EndpointSlice(_) => "EndpointSlice",
            KubeObject::Pod(_) => "Pod",
            KubeObject::Other { kind, .. } => kind,
        }
    }
}

/// Why a manifest could not be read.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The input is not UTF-8.
    #[error("input is not UTF-8 (first invalid byte at offset {offset})")]
    InvalidUtf8 {
        /// Byte offset of the first invalid byte.
        offset: usize,
    },
    /// The input is not valid JSON or YAML.
    #[error("{format} syntax error in document {document}{}: {message}", position(*line, *column))]
    Syntax {
        /// `JSON` or `YAML`.
        format: &'static str,
        /// 0-based document index (YAML streams hold several).
        document: usize,
        /// 1-based line, when known.
        line: Option<usize>,
        /// 1-based column, when known.
        column: Option<usize>,
        /// The parser's message.
        message: String,
    },
    /// An object (or list item) has no `kind`.
    #[error("document {document}, {path}: object has no \"kind\"")]
    MissingKind {
        /// 0-based document index.
        document: usize,
        /// Where in the document, e.g. `items[3]`.
        path: String,
    },
    /// An object of a known kind has fields of the wrong type.
    #[error("document {document}, {path}: invalid {kind} {name:?}: {message}")]
    InvalidObject {
        /// 0-based document index.
        document: usize,
        /// Where in the document, e.g. `items[3]`.
        path: String,
        /// The object's kind.
        kind: String,
        /// The object's name, when readable.
        name: String,
        /// What is wrong.
        message: String,
    },
}

fn position(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(" at line {l}, column {c}"),
        (Some(l), None) => format!(" at line {l}"),
        _ => String::new(),
    }
}

/// Parses Kubernetes objects from JSON (one object, a `List`, or an array) or
/// multi-document YAML.
///
/// ```
/// use meshmon_core::autodiscovery::kube::{parse_objects, KubeObject};
///
/// let yaml = b"apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: ns}\n---\nkind: ConfigMap\nmetadata: {name: b}\n";
/// let objects = parse_objects(yaml)?;
/// assert!(matches!(&objects[0], KubeObject::Service(s) if s.metadata.name == "a"));
/// assert_eq!(objects[1].kind(), "ConfigMap");
/// # Ok::<(), meshmon_core::autodiscovery::kube::ParseError>(())
/// ```
pub fn parse_objects(input: &[u8]) -> Result<Vec<KubeObject>, ParseError> {
    let text = std::str::from_utf8(input).map_err(|e| ParseError::InvalidUtf8 {
        offset: e.valid_up_to(),
    })?;
    let trimmed = text.trim_start_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    let mut out = Vec::new();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        match serde_json::from_str::<Value>(trimmed) {
            Ok(v) => {
                collect(v, 0, "", &mut out)?;
                return Ok(out);
            }
            Err(json_err) => {
                // YAML flow style also starts with `{`: give YAML a chance, but report
                // the JSON error (more precise) when both fail.
                return match parse_yaml(text, &mut out) {
                    Ok(()) => Ok(out),
                    Err(_) => Err(ParseError::Syntax {
                        format: "JSON",
                        document: 0,
                        line: Some(json_err.line()),
                        column: Some(json_err.column()),
                        message: json_err.to_string(),
                    }),
                };
            }
        }
    }
    parse_yaml(text, &mut out)?;
    Ok(out)
}

fn parse_yaml(text: &str, out: &mut Vec<KubeObject>) -> Result<(), ParseError> {
    for (i, doc) in serde_norway::Deserializer::from_str(text).enumerate() {
        let v = Value::deserialize(doc).map_err(|e| {
            let loc = e.location();
            ParseError::Syntax {
                format: "YAML",
                document: i,
                line: loc.as_ref().map(|l| l.line()),
                column: loc.as_ref().map(|l| l.column()),
                message: e.to_string(),
            }
        })?;
        collect(v, i, "", out)?;
    }
    Ok(())
}

fn collect(
    v: Value,
    document: usize,
    path: &str,
    out: &mut Vec<KubeObject>,
) -> Result<(), ParseError> {
    match v {
        Value::Null => Ok(()),
        Value::Array(items) => {
            for (i, item) in items.into_iter().enumerate() {
                collect(item, document, &format!("{path}[{i}]"), out)?;
            }
            Ok(())
        }
        Value::Object(mut map) => {
            let here = if path.is_empty() { "top level" } else { path };
            let kind = match map.get("kind") {
                Some(Value::String(k)) => k.clone(),
                _ => {
                    return Err(ParseError::MissingKind {
                        document,
                        path: here.to_owned(),
                    });
                }
            };
            if kind == "List" || (kind.ends_with("List") && map.contains_key("items")) {
                let items = map.remove("items").unwrap_or(Value::Null);
                let base = if path.is_empty() {
                    "items".to_owned()
                } else {
                    format!("{path}.items")
                };
                return match items {
                    Value::Array(items) => {
                        for (i, item) in items.into_iter().enumerate() {
                            collect(item, document, &format!("{base}[{i}]"), out)?;
                        }
                        Ok(())
                    }
                    Value::Null => Ok(()),
                    _ => Err(ParseError::InvalidObject {
                        document,
                        path: here.to_owned(),
                        kind,
                        name: String::new(),
                        message: "\"items\" is not a list".into(),
                    }),
                };
            }
            let name = map
                .get("metadata")
                .and_then(|m| m.get("name"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let v = Value::Object(map);
            let invalid =
                |e: serde_json::Error, kind: &str, name: &str| ParseError::InvalidObject {
                    document,
                    path: here.to_owned(),
                    kind: kind.to_owned(),
                    name: name.to_owned(),
                    message: e.to_string(),
                };
            let obj = match kind.as_str() {
                "Service" => KubeObject::Service(
                    serde_json::from_value(v).map_err(|e| invalid(e, &kind, &name))?,
                ),
                "Endpoints" => KubeObject::Endpoints(
                    serde_json::from_value(v).map_err(|e| invalid(e, &kind, &name))?,
                ),
                "EndpointSlice" => KubeObject::EndpointSlice(
                    serde_json::from_value(v).map_err(|e| invalid(e, &kind, &name))?,
                ),
                "Pod" => KubeObject::Pod(
                    serde_json::from_value(v).map_err(|e| invalid(e, &kind, &name))?,
                ),
                _ => KubeObject::Other { kind, name },
            };
            out.push(obj);
            Ok(())
        }
        other => Err(ParseError::InvalidObject {
            document,
            path: if path.is_empty() {
                "top level".to_owned()
            } else {
                path.to_owned()
            },
            kind: String::new(),
            name: String::new(),
            message: format!("expected an object, found {}", value_type(&other)),
        }),
    }
}

/// A short name for a JSON value's type, for error messages.
pub(crate) fn value_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_json_is_flattened_and_nulls_are_empty() {
        let json = br#"{"apiVersion":"v1","kind":"List","items":[
            {"kind":"Service","metadata":{"name":"a","namespace":"n","annotations":null},
             "spec":{"clusterIP":"10.0.0.1","ports":[{"name":"http","port":80}]}},
            {"kind":"EndpointsList","items":[{"kind":"Endpoints","metadata":{"name":"a","namespace":"n"},
              "subsets":[{"addresses":[{"ip":"10.1.0.1","nodeName":"n1"}],"ports":[{"port":80}]}]}]}
        ]}"#;
        let objs = parse_objects(json).unwrap();
        assert_eq!(objs.len(), 2);
        let KubeObject::Service(s) = &objs[0] else {
            panic!("{objs:?}")
        };
        assert!(s.metadata.annotations.is_empty());
        assert_eq!(s.spec.cluster_ip, "10.0.0.1");
        assert_eq!(s.spec.ports[0].port, 80);
        let KubeObject::Endpoints(e) = &objs[1] else {
            panic!("{objs:?}")
        };
        assert_eq!(e.subsets[0].addresses[0].node_name.as_deref(), Some("n1"));
    }

    #[test]
    fn multi_document_yaml_with_empty_documents() {
        let yaml = b"---\nkind: Pod\nmetadata:\n  name: p\n  annotations:\nspec:\n  containers:\n  - name: c\n    image: i\n---\n---\nkind: Secret\n";
        let objs = parse_objects(yaml).unwrap();
        assert_eq!(objs.len(), 2);
        assert_eq!(objs[0].kind(), "Pod");
        assert_eq!(
            objs[1],
            KubeObject::Other {
                kind: "Secret".into(),
                name: String::new()
            }
        );
    }

    #[test]
    fn errors_carry_position_and_path() {
        match parse_objects(b"{\"kind\": \"Service\",\n \"metadata\": }") {
            Err(ParseError::Syntax {
                format: "JSON",
                line: Some(2),
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        match parse_objects(b"kind: Service\nmetadata: [\n") {
            Err(ParseError::Syntax {
                format: "YAML",
                line: Some(_),
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        match parse_objects(br#"{"kind":"List","items":[{"kind":"Pod"},{"metadata":{}}]}"#) {
            Err(ParseError::MissingKind { path, .. }) => assert_eq!(path, "items[1]"),
            other => panic!("{other:?}"),
        }
        match parse_objects(
            br#"{"kind":"Service","metadata":{"name":"s"},"spec":{"ports":[{"port":"x"}]}}"#,
        ) {
            Err(ParseError::InvalidObject { kind, name, .. }) => {
                assert_eq!((kind.as_str(), name.as_str()), ("Service", "s"))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse_objects(b"kind: Pod\n\xff"),
            Err(ParseError::InvalidUtf8 { offset: 10 })
        );
        assert!(matches!(
            parse_objects(b"42"),
            Err(ParseError::InvalidObject { .. })
        ));
    }

    #[test]
    fn pod_readiness() {
        let mut p = Pod::default();
        assert!(!p.is_ready());
        p.status.conditions.push(PodCondition {
            condition_type: "Ready".into(),
            status: "True".into(),
        });
        assert!(p.is_ready());
    }
}
