//! Datadog's autodiscovery annotation formats: which annotations hold a template, and
//! how they are read.
//!
//! Mirrors the Datadog Agent's `pkg/autodiscovery/common/utils` (`annotations.go`,
//! `pod_annotations.go`), documented at
//! <https://docs.datadoghq.com/containers/kubernetes/integrations/?tab=annotations>.
//! For one `<id>` (a container name, `service` or `endpoints`):
//!
//! 1. **v2**: `ad.datadoghq.com/<id>.checks`, a JSON object mapping check name to
//!    `{"name"?, "init_config"?, "instances", "logs"?, "ignore_autodiscovery_tags"?}`.
//!    A missing `init_config` is `{}`; `name` overrides the key.
//! 2. **v1**: `ad.datadoghq.com/<id>.check_names`, `.init_configs`, `.instances`: JSON
//!    lists of equal length, entry `i` of each belonging to check `i`. `init_configs[i]`
//!    is an object (or a list holding exactly one); `instances[i]` is an object or a list
//!    of objects, each its own template. `.ignore_autodiscovery_tags` (`"true"`) applies
//!    to the whole set.
//! 3. **legacy**: the same v1 keys under `service-discovery.datadoghq.com/<id>.`.
//!
//! The first format present wins; the others are ignored. No `check_names` (and no
//! `checks`) means no check template, silently; `check_names` without `init_configs` or
//! `instances` is an error naming the missing key. `<id>.logs` (a JSON list) adds a
//! logs-only template, read under the prefix that supplied the checks (or the first
//! prefix that has it). Templates keep annotation order: v2 checks in the order the
//! JSON object lists them, v1 in list order.
//!
//! Also here: `ad.datadoghq.com/tags` (service/pod tags), standard tags from the
//! `tags.datadoghq.com/{env,service,version}` labels, `ad.datadoghq.com/tolerate-unready`
//! and the `exclude` annotations.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{DeserializeSeed, MapAccess, Visitor};
use serde_json::{Map, Value};

use super::kube::value_type;

/// Prefix of current annotations.
pub const AD_PREFIX: &str = "ad.datadoghq.com/";
/// Prefix of legacy (Agent 5 era) annotations.
pub const LEGACY_PREFIX: &str = "service-discovery.datadoghq.com/";
/// The `<id>` of endpoints-check templates on a Service.
pub const ENDPOINTS_ID: &str = "endpoints";
/// The `<id>` of cluster-check templates on a Service.
pub const SERVICE_ID: &str = "service";
/// Annotation holding extra tags as a JSON map.
pub const TAGS_ANNOTATION: &str = "ad.datadoghq.com/tags";
/// Annotation that makes autodiscovery treat unready targets as ready.
pub const TOLERATE_UNREADY_ANNOTATION: &str = "ad.datadoghq.com/tolerate-unready";

/// Which annotation format a template came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AnnotationFormat {
    /// `ad.datadoghq.com/<id>.checks`.
    V2,
    /// `ad.datadoghq.com/<id>.check_names` / `init_configs` / `instances`.
    V1,
    /// `service-discovery.datadoghq.com/<id>.check_names` / ….
    Legacy,
}

impl AnnotationFormat {
    /// `v2`, `v1` or `legacy`.
    pub fn as_str(self) -> &'static str {
        match self {
            AnnotationFormat::V2 => "v2",
            AnnotationFormat::V1 => "v1",
            AnnotationFormat::Legacy => "legacy",
        }
    }
}

/// One unresolved template: a check with one instance (or a logs-only template).
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    /// Check name (for a logs-only template, the first check's name or empty).
    pub name: String,
    /// `init_config` (an object; `{}` when the annotation gave none). `Null` for a
    /// logs-only template.
    pub init_config: Value,
    /// The one instance; `None` for a logs-only template.
    pub instance: Option<Value>,
    /// Log configuration (a JSON list), when present.
    pub logs: Option<Value>,
    /// Do not merge the service's tags into the instance.
    pub ignore_autodiscovery_tags: bool,
    /// Where the template came from.
    pub format: AnnotationFormat,
}

impl Template {
    /// A check template built in code (format [`AnnotationFormat::V2`]).
    pub fn check(name: impl Into<String>, init_config: Value, instance: Value) -> Self {
        Template {
            name: name.into(),
            init_config,
            instance: Some(instance),
            logs: None,
            ignore_autodiscovery_tags: false,
            format: AnnotationFormat::V2,
        }
    }
}

/// Why an annotation set could not be read. The templates of the affected format are
/// dropped; nothing partial is returned for them.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AnnotationError {
    /// The value is not valid JSON.
    #[error("{key}: invalid JSON at line {line}, column {column}: {message}")]
    InvalidJson {
        /// Full annotation key.
        key: String,
        /// 1-based line in the annotation value.
        line: usize,
        /// 1-based column in the annotation value.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// The value is empty.
    #[error("{key}: value is empty")]
    Empty {
        /// Full annotation key.
        key: String,
    },
    /// `check_names` is present but a companion key is not.
    #[error("{missing} is missing (required because {present} is set)")]
    MissingKey {
        /// The key that is missing.
        missing: String,
        /// The `check_names` key that requires it.
        present: String,
    },
    /// The v1 lists have different lengths.
    #[error(
        "{prefix}{{check_names,init_configs,instances}} must have the same length, got {check_names}, {init_configs}, {instances}"
    )]
    LengthMismatch {
        /// Annotation prefix, e.g. `ad.datadoghq.com/endpoints.`.
        prefix: String,
        /// Length of `check_names`.
        check_names: usize,
        /// Length of `init_configs`.
        init_configs: usize,
        /// Length of `instances`.
        instances: usize,
    },
    /// A value (or list entry) has the wrong JSON type.
    #[error("{key}{path}: expected {expected}, found {found}")]
    WrongType {
        /// Full annotation key.
        key: String,
        /// Where in the value, e.g. `[1]` or `.redis.instances[0]`; empty for the root.
        path: String,
        /// What was expected.
        expected: &'static str,
        /// What was found.
        found: &'static str,
    },
}

/// Templates found for one `<id>`, and the errors met.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Templates {
    /// Templates in annotation order.
    pub templates: Vec<Template>,
    /// Errors (each drops the templates of the set it names).
    pub errors: Vec<AnnotationError>,
}

/// Extracts the templates for `<id>` from an object's annotations, with Datadog's
/// precedence (v2 over v1 over legacy).
///
/// ```
/// use std::collections::BTreeMap;
/// use meshmon_core::autodiscovery::annotations::{extract_templates, AnnotationFormat};
///
/// let mut a = BTreeMap::new();
/// a.insert("ad.datadoghq.com/endpoints.check_names".to_string(), r#"["istio"]"#.to_string());
/// a.insert("ad.datadoghq.com/endpoints.init_configs".to_string(), "[{}]".to_string());
/// a.insert("ad.datadoghq.com/endpoints.instances".to_string(),
///          r#"[{"pilot_endpoint": "http://%%host%%:15014/metrics"}]"#.to_string());
/// let t = extract_templates(&a, "endpoints");
/// assert!(t.errors.is_empty());
/// assert_eq!(t.templates[0].name, "istio");
/// assert_eq!(t.templates[0].format, AnnotationFormat::V1);
/// assert_eq!(t.templates[0].instance.as_ref().unwrap()["pilot_endpoint"], "http://%%host%%:15014/metrics");
/// ```
pub fn extract_templates(annotations: &BTreeMap<String, String>, id: &str) -> Templates {
    let mut out = Templates::default();
    let prefix = format!("{AD_PREFIX}{id}.");
    let legacy = format!("{LEGACY_PREFIX}{id}.");
    let candidates = [
        (prefix.as_str(), AnnotationFormat::V1),
        (legacy.as_str(), AnnotationFormat::Legacy),
    ];

    let checks_key = format!("{prefix}checks");
    let mut actual_prefix: Option<&str> = None;
    let mut logs_format = AnnotationFormat::V1;
    if let Some(json) = annotations.get(&checks_key) {
        actual_prefix = Some(&prefix);
        logs_format = AnnotationFormat::V2;
        match parse_v2(&checks_key, json) {
            Ok(t) => out.templates.extend(t),
            Err(e) => out.errors.push(e),
        }
    } else if let Some((p, format)) = candidates
        .iter()
        .find(|(p, _)| annotations.contains_key(&format!("{p}check_names")))
    {
        actual_prefix = Some(p);
        match parse_v1(annotations, p, *format) {
            Ok(t) => out.templates.extend(t),
            Err(e) => out.errors.push(e),
        }
    }
    if actual_prefix.is_none() {
        actual_prefix = candidates
            .iter()
            .find(|(p, _)| annotations.contains_key(&format!("{p}logs")))
            .map(|(p, _)| *p);
    }
    if let Some(p) = actual_prefix {
        let key = format!("{p}logs");
        if let Some(json) = annotations.get(&key) {
            match parse_json(&key, json) {
                Ok(v @ Value::Array(_)) => out.templates.push(Template {
                    name: out
                        .templates
                        .first()
                        .map(|t| t.name.clone())
                        .unwrap_or_default(),
                    init_config: Value::Null,
                    instance: None,
                    logs: Some(v),
                    ignore_autodiscovery_tags: false,
                    format: if p == legacy {
                        AnnotationFormat::Legacy
                    } else {
                        logs_format
                    },
                }),
                Ok(other) => out.errors.push(AnnotationError::WrongType {
                    key,
                    path: String::new(),
                    expected: "a list",
                    found: value_type(&other),
                }),
                Err(e) => out.errors.push(e),
            }
        }
    }
    out
}

fn parse_json(key: &str, text: &str) -> Result<Value, AnnotationError> {
    if text.trim().is_empty() {
        return Err(AnnotationError::Empty {
            key: key.to_owned(),
        });
    }
    serde_json::from_str(text).map_err(|e| json_error(key, &e))
}

fn json_error(key: &str, e: &serde_json::Error) -> AnnotationError {
    AnnotationError::InvalidJson {
        key: key.to_owned(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    }
}

fn wrong(key: &str, path: String, expected: &'static str, found: &Value) -> AnnotationError {
    AnnotationError::WrongType {
        key: key.to_owned(),
        path,
        expected,
        found: value_type(found),
    }
}

/// A JSON object's entries in document order (serde_json's `Map` sorts keys). A repeated
/// key keeps its first position and its last value, like Go's `encoding/json`.
struct OrderedObject(Vec<(String, Value)>);

impl<'de> DeserializeSeed<'de> for &mut OrderedObject {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for &mut OrderedObject {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some((k, v)) = map.next_entry::<String, Value>()? {
            if let Some(slot) = self.0.iter_mut().find(|(key, _)| *key == k) {
                slot.1 = v;
            } else {
                self.0.push((k, v));
            }
        }
        Ok(())
    }
}

fn parse_v2(key: &str, text: &str) -> Result<Vec<Template>, AnnotationError> {
    if text.trim().is_empty() {
        return Err(AnnotationError::Empty {
            key: key.to_owned(),
        });
    }
    let mut checks = OrderedObject(Vec::new());
    let mut de = serde_json::Deserializer::from_str(text);
    (&mut checks)
        .deserialize(&mut de)
        .and_then(|()| de.end())
        .map_err(|e| json_error(key, &e))?;
    let mut out = Vec::new();
    for (check_key, conf) in checks.0 {
        let Value::Object(mut conf) = conf else {
            return Err(wrong(key, format!(".{check_key}"), "an object", &conf));
        };
        let name = match conf.remove("name") {
            Some(Value::String(n)) if !n.is_empty() => n,
            None | Some(Value::Null) | Some(Value::String(_)) => check_key.clone(),
            Some(other) => {
                return Err(wrong(key, format!(".{check_key}.name"), "a string", &other));
            }
        };
        let init_config = match conf.remove("init_config") {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(v @ Value::Object(_)) => v,
            Some(other) => {
                return Err(wrong(
                    key,
                    format!(".{check_key}.init_config"),
                    "an object",
                    &other,
                ));
            }
        };
        let ignore = match conf.remove("ignore_autodiscovery_tags") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => b,
            Some(other) => {
                return Err(wrong(
                    key,
                    format!(".{check_key}.ignore_autodiscovery_tags"),
                    "a boolean",
                    &other,
                ));
            }
        };
        let logs = match conf.remove("logs") {
            None | Some(Value::Null) => None,
            Some(v @ Value::Array(_)) => Some(v),
            Some(other) => return Err(wrong(key, format!(".{check_key}.logs"), "a list", &other)),
        };
        let instances = match conf.remove("instances") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(v)) => v,
            Some(other) => {
                return Err(wrong(
                    key,
                    format!(".{check_key}.instances"),
                    "a list",
                    &other,
                ));
            }
        };
        let mut logs = logs;
        if instances.is_empty() {
            if logs.is_some() {
                out.push(Template {
                    name,
                    init_config: Value::Null,
                    instance: None,
                    logs,
                    ignore_autodiscovery_tags: ignore,
                    format: AnnotationFormat::V2,
                });
            }
            continue;
        }
        for (i, inst) in instances.into_iter().enumerate() {
            if !inst.is_object() {
                return Err(wrong(
                    key,
                    format!(".{check_key}.instances[{i}]"),
                    "an object",
                    &inst,
                ));
            }
            out.push(Template {
                name: name.clone(),
                init_config: init_config.clone(),
                instance: Some(inst),
                // Logs belong to the check, not to each instance: keep them once.
                logs: logs.take(),
                ignore_autodiscovery_tags: ignore,
                format: AnnotationFormat::V2,
            });
        }
    }
    Ok(out)
}

fn parse_v1(
    annotations: &BTreeMap<String, String>,
    prefix: &str,
    format: AnnotationFormat,
) -> Result<Vec<Template>, AnnotationError> {
    let names_key = format!("{prefix}check_names");
    let init_key = format!("{prefix}init_configs");
    let inst_key = format!("{prefix}instances");
    let names_text = annotations
        .get(&names_key)
        .map(String::as_str)
        .unwrap_or_default();
    let names: Vec<String> = match parse_json(&names_key, names_text)? {
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s),
                other => Err(wrong(&names_key, format!("[{i}]"), "a string", &other)),
            })
            .collect::<Result<_, _>>()?,
        other => return Err(wrong(&names_key, String::new(), "a list", &other)),
    };
    let missing = |k: &str| AnnotationError::MissingKey {
        missing: k.to_owned(),
        present: names_key.clone(),
    };
    let init_text = annotations
        .get(&init_key)
        .ok_or_else(|| missing(&init_key))?;
    let inst_text = annotations
        .get(&inst_key)
        .ok_or_else(|| missing(&inst_key))?;
    let inits = match parse_json(&init_key, init_text)? {
        Value::Array(v) => v,
        other => return Err(wrong(&init_key, String::new(), "a list", &other)),
    };
    let instances = match parse_json(&inst_key, inst_text)? {
        Value::Array(v) => v,
        other => return Err(wrong(&inst_key, String::new(), "a list", &other)),
    };
    if names.len() != inits.len() || names.len() != instances.len() {
        return Err(AnnotationError::LengthMismatch {
            prefix: prefix.to_owned(),
            check_names: names.len(),
            init_configs: inits.len(),
            instances: instances.len(),
        });
    }
    let ignore = annotations
        .get(&format!("{prefix}ignore_autodiscovery_tags"))
        .and_then(|v| crate::go::parse_bool(v))
        .unwrap_or(false);
    let mut out = Vec::new();
    for (i, ((name, init), inst)) in names.into_iter().zip(inits).zip(instances).enumerate() {
        let init = match init {
            v @ Value::Object(_) => v,
            Value::Array(mut one) if one.len() == 1 && one[0].is_object() => one.swap_remove(0),
            other => {
                return Err(wrong(
                    &init_key,
                    format!("[{i}]"),
                    "an object (or a list of one object)",
                    &other,
                ));
            }
        };
        let insts = match inst {
            v @ Value::Object(_) => vec![v],
            Value::Array(list) if !list.is_empty() => list,
            other => {
                return Err(wrong(
                    &inst_key,
                    format!("[{i}]"),
                    "an object or a non-empty list of objects",
                    &other,
                ));
            }
        };
        for (j, inst) in insts.into_iter().enumerate() {
            if !inst.is_object() {
                return Err(wrong(&inst_key, format!("[{i}][{j}]"), "an object", &inst));
            }
            out.push(Template {
                name: name.clone(),
                init_config: init.clone(),
                instance: Some(inst),
                logs: None,
                ignore_autodiscovery_tags: ignore,
                format,
            });
        }
    }
    Ok(out)
}

/// Tags from `ad.datadoghq.com/tags`: a JSON map whose string values give `key:value`
/// and whose list values give one `key:value` per element.
///
/// ```
/// use std::collections::BTreeMap;
/// use meshmon_core::autodiscovery::annotations::ad_tags;
///
/// let a = BTreeMap::from([("ad.datadoghq.com/tags".to_string(),
///     r#"{"team": "mesh", "tier": ["a", "b"]}"#.to_string())]);
/// assert_eq!(ad_tags(&a).unwrap(), ["team:mesh", "tier:a", "tier:b"]);
/// ```
pub fn ad_tags(annotations: &BTreeMap<String, String>) -> Result<Vec<String>, AnnotationError> {
    let Some(text) = annotations.get(TAGS_ANNOTATION) else {
        return Ok(Vec::new());
    };
    let mut obj = OrderedObject(Vec::new());
    let mut de = serde_json::Deserializer::from_str(text);
    (&mut obj)
        .deserialize(&mut de)
        .and_then(|()| de.end())
        .map_err(|e| json_error(TAGS_ANNOTATION, &e))?;
    let mut tags = Vec::new();
    for (k, v) in obj.0 {
        match v {
            Value::String(s) => tags.push(format!("{k}:{s}")),
            Value::Array(items) => {
                for (i, item) in items.into_iter().enumerate() {
                    match item {
                        Value::String(s) => tags.push(format!("{k}:{s}")),
                        other => {
                            return Err(wrong(
                                TAGS_ANNOTATION,
                                format!(".{k}[{i}]"),
                                "a string",
                                &other,
                            ));
                        }
                    }
                }
            }
            other => {
                return Err(wrong(
                    TAGS_ANNOTATION,
                    format!(".{k}"),
                    "a string or a list of strings",
                    &other,
                ));
            }
        }
    }
    Ok(tags)
}

/// Datadog's unified service tagging: `env`, `service` and `version` tags from the
/// `tags.datadoghq.com/*` labels.
pub fn standard_tags(labels: &BTreeMap<String, String>) -> Vec<String> {
    ["env", "service", "version"]
        .iter()
        .filter_map(|k| {
            labels
                .get(&format!("tags.datadoghq.com/{k}"))
                .map(|v| format!("{k}:{v}"))
        })
        .collect()
}

/// Whether `ad.datadoghq.com/tolerate-unready` is exactly `"true"` (the Agent's test).
pub fn tolerates_unready(annotations: &BTreeMap<String, String>) -> bool {
    annotations
        .get(TOLERATE_UNREADY_ANNOTATION)
        .map(String::as_str)
        == Some("true")
}

/// What an exclusion applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExcludeScope {
    /// Everything (`exclude`).
    Global,
    /// Metrics/checks (`metrics_exclude`, plus `exclude`).
    Metrics,
    /// Logs (`logs_exclude`, plus `exclude`).
    Logs,
}

/// Whether the `exclude` annotations rule the target out, as the Agent's
/// `isExcludedByAnnotation`: `ad.datadoghq.com/[metrics_|logs_]exclude` (all
/// containers), then `ad.datadoghq.com/<container>.[metrics_|logs_]exclude`; values
/// are Go booleans (`true`, `1`, `T`, …).
pub fn excluded_by_annotation(
    annotations: &BTreeMap<String, String>,
    container: Option<&str>,
    scope: ExcludeScope,
) -> bool {
    let truthy = |k: String| {
        annotations
            .get(&k)
            .and_then(|v| crate::go::parse_bool(v))
            .unwrap_or(false)
    };
    let check = |p: &str| {
        truthy(format!("{AD_PREFIX}{p}exclude"))
            || container.is_some_and(|c| truthy(format!("{AD_PREFIX}{c}.{p}exclude")))
    };
    let scoped = match scope {
        ExcludeScope::Global => false,
        ExcludeScope::Metrics => check("metrics_"),
        ExcludeScope::Logs => check("logs_"),
    };
    scoped || check("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn v2_beats_v1_beats_legacy() {
        let a = ann(&[
            (
                "ad.datadoghq.com/redis.checks",
                r#"{"redisdb": {"instances": [{"host": "%%host%%"}]}}"#,
            ),
            ("ad.datadoghq.com/redis.check_names", r#"["v1check"]"#),
            ("ad.datadoghq.com/redis.init_configs", "[{}]"),
            ("ad.datadoghq.com/redis.instances", "[{}]"),
            (
                "service-discovery.datadoghq.com/redis.check_names",
                r#"["legacy"]"#,
            ),
        ]);
        let t = extract_templates(&a, "redis");
        assert_eq!(t.templates.len(), 1);
        assert_eq!(t.templates[0].name, "redisdb");
        assert_eq!(t.templates[0].format, AnnotationFormat::V2);
        assert_eq!(t.templates[0].init_config, json!({}));

        let mut b = a.clone();
        b.remove("ad.datadoghq.com/redis.checks");
        let t = extract_templates(&b, "redis");
        assert_eq!(t.templates[0].name, "v1check");
        assert_eq!(t.templates[0].format, AnnotationFormat::V1);

        let c = ann(&[
            (
                "service-discovery.datadoghq.com/redis.check_names",
                r#"["legacy"]"#,
            ),
            ("service-discovery.datadoghq.com/redis.init_configs", "[{}]"),
            (
                "service-discovery.datadoghq.com/redis.instances",
                r#"[{"a": 1}]"#,
            ),
        ]);
        let t = extract_templates(&c, "redis");
        assert_eq!(t.templates[0].name, "legacy");
        assert_eq!(t.templates[0].format, AnnotationFormat::Legacy);
    }

    #[test]
    fn v2_keeps_document_order_name_override_and_fields() {
        let a = ann(&[(
            "ad.datadoghq.com/app.checks",
            r#"{"zeta": {"instances": [{"i": 1}, {"i": 2}], "logs": [{"type": "file"}], "ignore_autodiscovery_tags": true},
                "alpha": {"name": "renamed", "init_config": {"x": 1}, "instances": [{"i": 3}]},
                "logsonly": {"logs": [{"source": "s"}]},
                "nothing": {}}"#,
        )]);
        let t = extract_templates(&a, "app");
        assert!(t.errors.is_empty(), "{:?}", t.errors);
        let names: Vec<_> = t.templates.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["zeta", "zeta", "renamed", "logsonly"]);
        assert_eq!(t.templates[0].logs, Some(json!([{"type": "file"}])));
        assert_eq!(t.templates[1].logs, None);
        assert!(t.templates[0].ignore_autodiscovery_tags);
        assert_eq!(t.templates[2].init_config, json!({"x": 1}));
        assert_eq!(t.templates[3].instance, None);
    }

    #[test]
    fn v1_lists_instances_may_be_lists() {
        let a = ann(&[
            ("ad.datadoghq.com/c.check_names", r#"["a", "b"]"#),
            ("ad.datadoghq.com/c.init_configs", r#"[{}, [{"k": 1}]]"#),
            (
                "ad.datadoghq.com/c.instances",
                r#"[[{"n": 1}, {"n": 2}], {"n": 3}]"#,
            ),
            ("ad.datadoghq.com/c.ignore_autodiscovery_tags", "true"),
        ]);
        let t = extract_templates(&a, "c");
        assert!(t.errors.is_empty());
        let got: Vec<_> = t
            .templates
            .iter()
            .map(|t| (t.name.as_str(), t.instance.clone().unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                ("a", json!({"n": 1})),
                ("a", json!({"n": 2})),
                ("b", json!({"n": 3}))
            ]
        );
        assert_eq!(t.templates[2].init_config, json!({"k": 1}));
        assert!(t.templates.iter().all(|t| t.ignore_autodiscovery_tags));
    }

    #[test]
    fn v1_errors_name_the_key() {
        let a = ann(&[
            ("ad.datadoghq.com/c.check_names", r#"["a"]"#),
            ("ad.datadoghq.com/c.init_configs", "[{}]"),
        ]);
        let t = extract_templates(&a, "c");
        assert!(t.templates.is_empty());
        assert_eq!(
            t.errors,
            [AnnotationError::MissingKey {
                missing: "ad.datadoghq.com/c.instances".into(),
                present: "ad.datadoghq.com/c.check_names".into()
            }]
        );
        assert!(
            t.errors[0]
                .to_string()
                .contains("ad.datadoghq.com/c.instances is missing")
        );

        let a = ann(&[
            ("ad.datadoghq.com/c.check_names", r#"["a"]"#),
            ("ad.datadoghq.com/c.instances", "[{}]"),
        ]);
        assert!(
            matches!(&extract_templates(&a, "c").errors[0], AnnotationError::MissingKey { missing, .. } if missing.ends_with("init_configs"))
        );

        let a = ann(&[
            ("ad.datadoghq.com/c.check_names", r#"["a", "b"]"#),
            ("ad.datadoghq.com/c.init_configs", "[{}]"),
            ("ad.datadoghq.com/c.instances", "[{}, {}]"),
        ]);
        assert!(matches!(
            extract_templates(&a, "c").errors[0],
            AnnotationError::LengthMismatch {
                check_names: 2,
                init_configs: 1,
                instances: 2,
                ..
            }
        ));

        let a = ann(&[
            ("ad.datadoghq.com/c.check_names", r#"["a"]"#),
            ("ad.datadoghq.com/c.init_configs", "[{}]"),
            ("ad.datadoghq.com/c.instances", r#"[{"a": }]"#),
        ]);
        assert!(
            matches!(&extract_templates(&a, "c").errors[0], AnnotationError::InvalidJson { key, line: 1, .. } if key.ends_with("instances"))
        );

        let a = ann(&[
            ("ad.datadoghq.com/c.check_names", r#"["a"]"#),
            ("ad.datadoghq.com/c.init_configs", "[{}]"),
            ("ad.datadoghq.com/c.instances", r#"["not an object"]"#),
        ]);
        assert!(
            matches!(&extract_templates(&a, "c").errors[0], AnnotationError::WrongType { path, found: "a string", .. } if path == "[0]")
        );

        let a = ann(&[("ad.datadoghq.com/c.check_names", "")]);
        assert!(matches!(
            &extract_templates(&a, "c").errors[0],
            AnnotationError::Empty { .. }
        ));
    }

    #[test]
    fn no_check_names_means_nothing_silently() {
        let a = ann(&[
            ("ad.datadoghq.com/c.init_configs", "[{}]"),
            ("ad.datadoghq.com/c.instances", "[{}]"),
            ("ad.datadoghq.com/other.check_names", r#"["x"]"#),
        ]);
        assert_eq!(extract_templates(&a, "c"), Templates::default());
    }

    #[test]
    fn logs_annotation() {
        let a = ann(&[
            ("ad.datadoghq.com/c.check_names", r#"["nginx"]"#),
            ("ad.datadoghq.com/c.init_configs", "[{}]"),
            ("ad.datadoghq.com/c.instances", "[{}]"),
            ("ad.datadoghq.com/c.logs", r#"[{"source": "nginx"}]"#),
        ]);
        let t = extract_templates(&a, "c");
        assert_eq!(t.templates.len(), 2);
        assert_eq!(t.templates[1].name, "nginx");
        assert_eq!(t.templates[1].instance, None);
        assert_eq!(t.templates[1].logs, Some(json!([{"source": "nginx"}])));

        let only = ann(&[(
            "service-discovery.datadoghq.com/c.logs",
            r#"[{"source": "x"}]"#,
        )]);
        let t = extract_templates(&only, "c");
        assert_eq!(
            (t.templates[0].name.as_str(), t.templates[0].format),
            ("", AnnotationFormat::Legacy)
        );

        let bad = ann(&[("ad.datadoghq.com/c.logs", r#"{"source": "x"}"#)]);
        assert!(matches!(
            &extract_templates(&bad, "c").errors[0],
            AnnotationError::WrongType {
                expected: "a list",
                ..
            }
        ));
    }

    #[test]
    fn v2_errors() {
        let t = extract_templates(
            &ann(&[("ad.datadoghq.com/c.checks", r#"{"a": {"instances": [1]}}"#)]),
            "c",
        );
        assert!(
            matches!(&t.errors[0], AnnotationError::WrongType { path, .. } if path == ".a.instances[0]")
        );
        let t = extract_templates(&ann(&[("ad.datadoghq.com/c.checks", "[]")]), "c");
        assert!(matches!(&t.errors[0], AnnotationError::InvalidJson { .. }));
        let t = extract_templates(
            &ann(&[(
                "ad.datadoghq.com/c.checks",
                r#"{"a": {"instances": [{}]}} x"#,
            )]),
            "c",
        );
        assert!(matches!(&t.errors[0], AnnotationError::InvalidJson { .. }));
    }

    #[test]
    fn tags_and_flags() {
        let a = ann(&[
            (TAGS_ANNOTATION, r#"{"b": "2", "a": ["x", "y"]}"#),
            (TOLERATE_UNREADY_ANNOTATION, "true"),
        ]);
        assert_eq!(ad_tags(&a).unwrap(), ["b:2", "a:x", "a:y"]);
        assert!(tolerates_unready(&a));
        assert!(!tolerates_unready(&ann(&[(
            TOLERATE_UNREADY_ANNOTATION,
            "True"
        )])));
        assert!(matches!(
            ad_tags(&ann(&[(TAGS_ANNOTATION, r#"{"a": 1}"#)])),
            Err(AnnotationError::WrongType { .. })
        ));
        let labels = ann(&[
            ("tags.datadoghq.com/env", "prod"),
            ("tags.datadoghq.com/version", "1.4"),
            ("app", "x"),
        ]);
        assert_eq!(standard_tags(&labels), ["env:prod", "version:1.4"]);
    }

    #[test]
    fn exclude_annotations() {
        let a = ann(&[
            ("ad.datadoghq.com/sidecar.exclude", "1"),
            ("ad.datadoghq.com/app.logs_exclude", "true"),
        ]);
        assert!(excluded_by_annotation(
            &a,
            Some("sidecar"),
            ExcludeScope::Metrics
        ));
        assert!(!excluded_by_annotation(
            &a,
            Some("app"),
            ExcludeScope::Metrics
        ));
        assert!(excluded_by_annotation(&a, Some("app"), ExcludeScope::Logs));
        assert!(!excluded_by_annotation(&a, None, ExcludeScope::Global));
        let all = ann(&[("ad.datadoghq.com/exclude", "T")]);
        assert!(excluded_by_annotation(
            &all,
            Some("anything"),
            ExcludeScope::Metrics
        ));
        let no = ann(&[("ad.datadoghq.com/exclude", "yes")]);
        assert!(!excluded_by_annotation(&no, None, ExcludeScope::Global));
    }
}
