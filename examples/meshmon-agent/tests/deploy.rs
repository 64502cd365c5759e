//! The Kubernetes manifests and the container image build in `deploy/`, validated offline.
//!
//! - Every YAML document parses into its Kubernetes API type (`k8s-openapi`), and nothing
//!   is lost on the way: the typed object is serialised again and compared with the
//!   document, so a field the API does not know (a typo, a field at the wrong level) is a
//!   failure that names its path.
//! - The environment of each container is made of names the agent accepts
//!   ([`ENV_VARS`], which holds the cluster agent's names too); the node
//!   agent's environment loads into an [`AgentConfig`].
//! - Probe paths and ports, hostPorts and Service ports agree with the agent's defaults
//!   (read from [`AgentConfig::default`], not repeated here).
//! - The shared token is at least 32 characters; every reference resolves (Secret keys,
//!   ServiceAccounts, ClusterRoles, Service selectors, kustomization resources).
//! - The Dockerfile: stages, a non-root final user, the binary of `[[bin]]`, the
//!   documented build command; the build stage itself is built where a Docker engine
//!   answers (`docker info`), and the test says it skipped otherwise.
#![cfg(feature = "agent")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{
    Container, EnvVar, Namespace, PodTemplateSpec, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use meshmon_agent::config::{AgentConfig, ENV_VARS};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// One Kubernetes object of the manifests, typed.
#[derive(Debug)]
enum Object {
    Namespace(Box<Namespace>),
    ServiceAccount(Box<ServiceAccount>),
    Secret(Box<Secret>),
    Service(Box<Service>),
    DaemonSet(Box<DaemonSet>),
    Deployment(Box<Deployment>),
    ClusterRole(Box<ClusterRole>),
    ClusterRoleBinding(Box<ClusterRoleBinding>),
    Role(Box<Role>),
    RoleBinding(Box<RoleBinding>),
}

/// Paths where `typed` (the object serialised back) differs from `original`: a key that
/// disappeared is a field the type does not have.
fn diff(path: &str, original: &Value, typed: &Value, out: &mut Vec<String>) {
    match (original, typed) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, va) in a {
                let p = format!("{path}.{k}");
                match b.get(k) {
                    Some(vb) => diff(&p, va, vb, out),
                    None => out.push(format!("{p}: unknown field (dropped by the API type)")),
                }
            }
            for k in b.keys().filter(|k| !a.contains_key(*k)) {
                out.push(format!("{path}.{k}: added by the API type"));
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (va, vb)) in a.iter().zip(b).enumerate() {
                diff(&format!("{path}[{i}]"), va, vb, out);
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(format!("{path}: {a} reads back as {b}")),
    }
}

/// Deserialises `doc` as `T` and serialises it again: an error unless both agree.
fn round_trip<T: DeserializeOwned + Serialize>(doc: &Value) -> Result<T, String> {
    let t: T = serde_json::from_value(doc.clone()).map_err(|e| e.to_string())?;
    let back = serde_json::to_value(&t).map_err(|e| e.to_string())?;
    let mut diffs = Vec::new();
    diff("", doc, &back, &mut diffs);
    if diffs.is_empty() {
        Ok(t)
    } else {
        Err(diffs.join("; "))
    }
}

/// Types one document by its `apiVersion` and `kind`.
fn typed(doc: &Value) -> Result<Object, String> {
    let api = doc["apiVersion"].as_str().unwrap_or("");
    let kind = doc["kind"].as_str().unwrap_or("");
    Ok(match (api, kind) {
        ("v1", "Namespace") => Object::Namespace(round_trip(doc)?),
        ("v1", "ServiceAccount") => Object::ServiceAccount(round_trip(doc)?),
        ("v1", "Secret") => Object::Secret(round_trip(doc)?),
        ("v1", "Service") => Object::Service(round_trip(doc)?),
        ("apps/v1", "DaemonSet") => Object::DaemonSet(round_trip(doc)?),
        ("apps/v1", "Deployment") => Object::Deployment(round_trip(doc)?),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => Object::ClusterRole(round_trip(doc)?),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            Object::ClusterRoleBinding(round_trip(doc)?)
        }
        ("rbac.authorization.k8s.io/v1", "Role") => Object::Role(round_trip(doc)?),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => Object::RoleBinding(round_trip(doc)?),
        _ => {
            return Err(format!(
                "apiVersion {api:?} kind {kind:?} is not expected here"
            ));
        }
    })
}

/// The YAML documents of one file, as JSON values (empty documents skipped).
fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    documents_of(&text, &path.display().to_string())
}

/// The YAML documents of `text` (from `what`), as JSON values (empty ones skipped).
fn documents_of(text: &str, what: &str) -> Vec<Value> {
    use serde::Deserialize;
    let mut out = Vec::new();
    for (i, de) in serde_norway::Deserializer::from_str(text).enumerate() {
        let v = Value::deserialize(de).unwrap_or_else(|e| panic!("{what} document {i}: {e}"));
        if !v.is_null() {
            out.push(v);
        }
    }
    out
}

/// `(kind, namespace, name)` of a document.
fn identity(doc: &Value) -> (String, String, String) {
    let s = |v: &Value| v.as_str().unwrap_or("").to_owned();
    (
        s(&doc["kind"]),
        s(&doc["metadata"]["namespace"]),
        s(&doc["metadata"]["name"]),
    )
}

/// The manifest files listed by `kustomization.yaml`.
fn kustomization_resources() -> Vec<String> {
    let k = documents(&deploy_dir().join("kustomization.yaml"));
    assert_eq!(k.len(), 1);
    k[0]["resources"]
        .as_array()
        .expect("kustomization.yaml: resources")
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect()
}

/// Every object of every manifest, typed, with its file name.
fn objects() -> Vec<(String, Object)> {
    let mut out = Vec::new();
    for file in kustomization_resources() {
        for (i, doc) in documents(&deploy_dir().join(&file)).iter().enumerate() {
            let o = typed(doc).unwrap_or_else(|e| panic!("{file} document {i}: {e}"));
            out.push((file.clone(), o));
        }
    }
    out
}

struct Manifests {
    daemonset: DaemonSet,
    deployment: Deployment,
    services: Vec<Service>,
    secrets: Vec<Secret>,
    accounts: Vec<ServiceAccount>,
    roles: Vec<ClusterRole>,
    bindings: Vec<ClusterRoleBinding>,
    ns_roles: Vec<Role>,
    ns_bindings: Vec<RoleBinding>,
    namespaces: Vec<Namespace>,
}

fn manifests() -> Manifests {
    let mut ds = Vec::new();
    let mut dep = Vec::new();
    let mut m = Manifests {
        daemonset: DaemonSet::default(),
        deployment: Deployment::default(),
        services: Vec::new(),
        secrets: Vec::new(),
        accounts: Vec::new(),
        roles: Vec::new(),
        bindings: Vec::new(),
        ns_roles: Vec::new(),
        ns_bindings: Vec::new(),
        namespaces: Vec::new(),
    };
    for (_, o) in objects() {
        match o {
            Object::DaemonSet(d) => ds.push(*d),
            Object::Deployment(d) => dep.push(*d),
            Object::Service(s) => m.services.push(*s),
            Object::Secret(s) => m.secrets.push(*s),
            Object::ServiceAccount(s) => m.accounts.push(*s),
            Object::ClusterRole(r) => m.roles.push(*r),
            Object::ClusterRoleBinding(b) => m.bindings.push(*b),
            Object::Role(r) => m.ns_roles.push(*r),
            Object::RoleBinding(b) => m.ns_bindings.push(*b),
            Object::Namespace(n) => m.namespaces.push(*n),
        }
    }
    assert_eq!(ds.len(), 1, "one DaemonSet (the node agent)");
    assert_eq!(dep.len(), 1, "one Deployment (the cluster agent)");
    m.daemonset = ds.remove(0);
    m.deployment = dep.remove(0);
    m
}

fn template(t: &PodTemplateSpec) -> (&BTreeMap<String, String>, &Container) {
    let spec = t.spec.as_ref().unwrap();
    assert_eq!(spec.containers.len(), 1, "one container per pod");
    (
        t.metadata.as_ref().unwrap().labels.as_ref().unwrap(),
        &spec.containers[0],
    )
}

fn env(c: &Container) -> &[EnvVar] {
    c.env.as_deref().unwrap_or(&[])
}

fn env_value<'a>(c: &'a Container, name: &str) -> Option<&'a str> {
    env(c)
        .iter()
        .find(|e| e.name == name)
        .and_then(|e| e.value.as_deref())
}

/// The container's environment as the agent would see it: literal values, and plausible
/// values for the ones the kubelet fills (`fieldRef`, Secrets).
fn env_map(c: &Container) -> HashMap<String, String> {
    env(c)
        .iter()
        .map(|e| {
            let v = match (&e.value, &e.value_from) {
                (Some(v), _) => v.clone(),
                (None, Some(from)) => {
                    match from.field_ref.as_ref().map(|f| f.field_path.as_str()) {
                        Some("status.hostIP") => "10.0.0.7".into(),
                        Some("spec.nodeName") => "node-a".into(),
                        Some(other) => panic!("{}: fieldRef {other} not expected", e.name),
                        None => "a-secret-value-of-at-least-32-characters".into(),
                    }
                }
                (None, None) => String::new(),
            };
            (e.name.clone(), v)
        })
        .collect()
}

#[test]
fn every_manifest_parses_into_the_kubernetes_types() {
    let objects = objects();
    let kinds: BTreeSet<&str> = objects
        .iter()
        .map(|(_, o)| match o {
            Object::Namespace(_) => "Namespace",
            Object::ServiceAccount(_) => "ServiceAccount",
            Object::Secret(_) => "Secret",
            Object::Service(_) => "Service",
            Object::DaemonSet(_) => "DaemonSet",
            Object::Deployment(_) => "Deployment",
            Object::ClusterRole(_) => "ClusterRole",
            Object::ClusterRoleBinding(_) => "ClusterRoleBinding",
            Object::Role(_) => "Role",
            Object::RoleBinding(_) => "RoleBinding",
        })
        .collect();
    assert_eq!(kinds.len(), 10, "{kinds:?}");
    // The round trip does catch a field the API does not know, at any depth…
    let mut doc = documents(&deploy_dir().join("agent.yaml")).remove(0);
    doc["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = serde_json::json!({});
    let e = typed(&doc).unwrap_err();
    assert!(
        e.contains(".spec.template.spec.containers[0].livenesProbe: unknown field"),
        "{e}"
    );
    // …a wrong type, and a kind under the wrong API group.
    let mut doc = documents(&deploy_dir().join("agent.yaml")).remove(0);
    doc["spec"]["template"]["spec"]["containers"][0]["ports"][0]["hostPort"] = "8125".into();
    assert!(typed(&doc).is_err());
    doc["apiVersion"] = "extensions/v1beta1".into();
    assert!(typed(&doc).unwrap_err().contains("not expected"));
}

#[test]
fn kustomization_lists_every_manifest() {
    let listed: BTreeSet<String> = kustomization_resources().into_iter().collect();
    let on_disk: BTreeSet<String> = std::fs::read_dir(deploy_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect();
    assert_eq!(listed, on_disk);
}

#[test]
fn kubectl_kustomize_renders_the_same_typed_objects() {
    let out = match Command::new("kubectl")
        .arg("kustomize")
        .arg(deploy_dir())
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            eprintln!(
                "SKIPPED: kubectl not runnable ({e}); kustomization.yaml was checked without it"
            );
            return;
        }
    };
    assert!(
        out.status.success(),
        "kubectl kustomize: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rendered = documents_of(&String::from_utf8(out.stdout).unwrap(), "kubectl kustomize");
    let mut ours = Vec::new();
    for file in kustomization_resources() {
        ours.extend(documents(&deploy_dir().join(file)));
    }
    for (i, doc) in rendered.iter().enumerate() {
        typed(doc).unwrap_or_else(|e| panic!("rendered document {i}: {e}"));
    }
    // The same objects, every namespaced one in the kustomization's namespace.
    let mut a: Vec<_> = rendered.iter().map(identity).collect();
    let mut b: Vec<_> = ours.iter().map(identity).collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
}

#[test]
fn env_names_are_ones_the_agent_accepts() {
    let m = manifests();
    let accepted: BTreeSet<&str> = ENV_VARS.iter().map(|(n, _)| *n).collect();
    let (_, node) = template(&m.daemonset.spec.template);
    let (_, cluster) = template(&m.deployment.spec.template);
    for (who, c) in [("DaemonSet", node), ("Deployment", cluster)] {
        let mut seen = BTreeSet::new();
        for e in env(c) {
            assert!(seen.insert(e.name.as_str()), "{who}: {} set twice", e.name);
            assert!(
                accepted.contains(e.name.as_str()),
                "{who}: {} is not accepted by the agent (ENV_VARS)",
                e.name
            );
        }
    }
    // The seed's node environment is there, as the seed spells it.
    for (name, value) in [
        ("DD_COLLECT_KUBERNETES_EVENTS", Some("true")),
        ("KUBERNETES", Some("true")),
        ("DD_KUBERNETES_KUBELET_HOST", None),
        ("DD_CLUSTER_AGENT_ENABLED", Some("true")),
        ("DD_CLUSTER_AGENT_AUTH_TOKEN", None),
        ("DD_TAGS", None),
        ("DD_APM_ENABLED", Some("true")),
        ("DD_APM_NON_LOCAL_TRAFFIC", Some("true")),
        ("DD_APM_ENV", None),
        ("DD_LOGS_ENABLED", Some("true")),
        ("DD_LOGS_CONFIG_CONTAINER_COLLECT_ALL", Some("true")),
        ("DD_AC_EXCLUDE", None),
        (
            "DD_EXTRA_CONFIG_PROVIDERS",
            Some("endpointschecks clusterchecks"),
        ),
        ("DD_API_KEY", None),
    ] {
        assert!(
            env(node).iter().any(|e| e.name == name),
            "DaemonSet: {name} missing"
        );
        if let Some(v) = value {
            assert_eq!(env_value(node, name), Some(v), "DaemonSet: {name}");
        }
    }
    let field = |c: &Container, name: &str| {
        env(c)
            .iter()
            .find(|e| e.name == name)
            .and_then(|e| e.value_from.as_ref()?.field_ref.as_ref())
            .map(|f| f.field_path.clone())
    };
    assert_eq!(
        field(node, "DD_KUBERNETES_NODE_NAME").as_deref(),
        Some("spec.nodeName")
    );
    assert_eq!(
        field(node, "DD_KUBERNETES_KUBELET_HOST").as_deref(),
        Some("status.hostIP")
    );
    // The seed's cluster agent environment.
    for (name, value) in [
        ("DD_CLUSTER_CHECKS_ENABLED", "true"),
        ("DD_EXTRA_CONFIG_PROVIDERS", "kube_endpoints kube_services"),
        ("DD_EXTRA_LISTENERS", "kube_endpoints kube_services"),
        ("DD_COLLECT_KUBERNETES_EVENTS", "true"),
    ] {
        assert_eq!(env_value(cluster, name), Some(value), "Deployment: {name}");
    }
    // The node environment loads: every value parses as the agent reads it.
    let cfg = AgentConfig::load(None, &env_map(node))
        .unwrap_or_else(|e| panic!("the DaemonSet's environment does not load: {e}"));
    assert!(cfg.apm.enabled && cfg.apm.non_local_traffic && cfg.dogstatsd.non_local_traffic);
    assert!(cfg.logs.enabled && cfg.logs.container_collect_all);
    assert_eq!(cfg.autodiscovery.node, "node-a");
    assert_eq!(
        cfg.autodiscovery.container_exclude,
        ["name:meshmon-agent", "name:meshmon-cluster-agent"]
    );
}

fn secret_token(m: &Manifests, name: &str, key: &str) -> String {
    let s = m
        .secrets
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no Secret {name}"));
    if let Some(v) = s.string_data.as_ref().and_then(|d| d.get(key)) {
        return v.clone();
    }
    let b = s
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .unwrap_or_else(|| panic!("Secret {name} has no key {key}"));
    String::from_utf8(b.0.clone()).unwrap()
}

#[test]
fn secret_token_is_long_enough_and_references_resolve() {
    let m = manifests();
    let (_, node) = template(&m.daemonset.spec.template);
    let (_, cluster) = template(&m.deployment.spec.template);
    let mut tokens = Vec::new();
    for c in [node, cluster] {
        for e in env(c) {
            let Some(r) = e
                .value_from
                .as_ref()
                .and_then(|f| f.secret_key_ref.as_ref())
            else {
                continue;
            };
            if r.optional == Some(true) {
                continue; // the Datadog API key: only the Datadog export needs it
            }
            let t = secret_token(&m, &r.name, &r.key);
            if e.name == "DD_CLUSTER_AGENT_AUTH_TOKEN" {
                assert!(
                    t.chars().count() >= 32,
                    "the token has {} characters",
                    t.len()
                );
                tokens.push(t);
            }
        }
    }
    assert_eq!(
        tokens.len(),
        2,
        "both agents read the token from the Secret"
    );
    // Each pod's ServiceAccount exists and is bound to a ClusterRole that exists.
    for t in [&m.daemonset.spec.template, &m.deployment.spec.template] {
        let sa = t
            .spec
            .as_ref()
            .unwrap()
            .service_account_name
            .clone()
            .unwrap();
        assert!(
            m.accounts
                .iter()
                .any(|a| a.metadata.name.as_deref() == Some(&sa))
        );
        let b = m
            .bindings
            .iter()
            .find(|b| {
                b.subjects
                    .iter()
                    .flatten()
                    .any(|s| s.kind == "ServiceAccount" && s.name == sa)
            })
            .unwrap_or_else(|| panic!("no binding for {sa}"));
        assert_eq!(b.role_ref.kind, "ClusterRole");
        assert!(
            m.roles
                .iter()
                .any(|r| r.metadata.name.as_deref() == Some(&b.role_ref.name))
        );
    }
    // The seed's rules are there: the node agent reads the kubelet's node endpoints; the
    // cluster agent watches services, endpoints and pods.
    let allows = |role: &str, resource: &str, verb: &str| {
        m.roles
            .iter()
            .filter(|r| r.metadata.name.as_deref() == Some(role))
            .flat_map(|r| r.rules.iter().flatten())
            .any(|r| {
                r.resources.iter().flatten().any(|x| x == resource)
                    && r.verbs.iter().any(|v| v == verb)
            })
    };
    for res in ["nodes/metrics", "nodes/spec", "nodes/proxy"] {
        assert!(allows("meshmon-agent", res, "get"), "{res}");
    }
    for res in ["services", "endpoints", "pods", "nodes", "events"] {
        for verb in ["get", "list", "watch"] {
            assert!(allows("meshmon-cluster-agent", res, verb), "{res} {verb}");
        }
    }
    // Leader election: Leases in the cluster agent's namespace only (a Role bound to its
    // ServiceAccount), not cluster-wide.
    assert!(!allows("meshmon-cluster-agent", "leases", "update"));
    let ns = m.namespaces[0].metadata.name.clone().unwrap();
    let binding = m
        .ns_bindings
        .iter()
        .find(|b| {
            b.subjects.iter().flatten().any(|s| {
                s.kind == "ServiceAccount"
                    && s.name == "meshmon-cluster-agent"
                    && s.namespace.as_deref() == Some(ns.as_str())
            })
        })
        .expect("a RoleBinding for the cluster agent's ServiceAccount");
    assert_eq!(binding.metadata.namespace.as_deref(), Some(ns.as_str()));
    assert_eq!(binding.role_ref.kind, "Role");
    let role = m
        .ns_roles
        .iter()
        .find(|r| r.metadata.name.as_deref() == Some(binding.role_ref.name.as_str()))
        .expect("the bound Role exists");
    assert_eq!(role.metadata.namespace.as_deref(), Some(ns.as_str()));
    for verb in ["get", "create", "update"] {
        assert!(
            role.rules.iter().flatten().any(|r| {
                r.api_groups
                    .iter()
                    .flatten()
                    .any(|g| g == "coordination.k8s.io")
                    && r.resources.iter().flatten().any(|x| x == "leases")
                    && r.verbs.iter().any(|v| v == verb)
            }),
            "leases {verb}"
        );
    }
    // Two replicas, electing a leader through that Lease.
    assert_eq!(m.deployment.spec.replicas, Some(2));
    // Everything namespaced is in the one namespace the manifests create.
    let ns = m.namespaces[0].metadata.name.clone().unwrap();
    for (what, n) in [
        ("DaemonSet", &m.daemonset.metadata.namespace),
        ("Deployment", &m.deployment.metadata.namespace),
    ] {
        assert_eq!(n.as_deref(), Some(ns.as_str()), "{what}");
    }
}

fn ports(c: &Container) -> Vec<(i32, Option<i32>, String, String)> {
    c.ports
        .iter()
        .flatten()
        .map(|p| {
            (
                p.container_port,
                p.host_port,
                p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                p.name.clone().unwrap_or_default(),
            )
        })
        .collect()
}

fn int(p: &IntOrString) -> i32 {
    match p {
        IntOrString::Int(i) => *i,
        IntOrString::String(s) => panic!("named port {s:?}: use the number"),
    }
}

fn service<'a>(m: &'a Manifests, name: &str) -> &'a Service {
    m.services
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no Service {name}"))
}

#[test]
fn probes_and_ports_match_the_agent_defaults() {
    let m = manifests();
    let defaults = AgentConfig::default();
    let api_port = i32::from(defaults.api_listen().unwrap().port());
    let apm_port = i32::from(defaults.apm.receiver_port);
    let dsd_port = i32::from(defaults.dogstatsd.port);
    let ds = &m.daemonset.spec;
    let (labels, node) = template(&ds.template);
    // The pod's API listens on all interfaces at the default port (the kubelet probes
    // the pod IP).
    let cfg = AgentConfig::load(None, &env_map(node)).unwrap();
    let api: SocketAddr = cfg.api_listen().unwrap();
    assert!(api.ip().is_unspecified(), "{api}");
    assert_eq!(i32::from(api.port()), api_port);
    for (which, probe) in [
        ("liveness", node.liveness_probe.as_ref()),
        ("readiness", node.readiness_probe.as_ref()),
    ] {
        let get = probe
            .and_then(|p| p.http_get.as_ref())
            .unwrap_or_else(|| panic!("{which} probe: httpGet"));
        assert_eq!(get.path.as_deref(), Some("/health"), "{which}");
        assert_eq!(int(&get.port), api_port, "{which}");
    }
    // hostPorts: traces on the trace intake's port, DogStatsD on its UDP port.
    let p = ports(node);
    assert!(
        p.contains(&(apm_port, Some(apm_port), "TCP".into(), "traceport".into())),
        "{p:?}"
    );
    assert!(
        p.contains(&(
            dsd_port,
            Some(dsd_port),
            "UDP".into(),
            "dogstatsdport".into()
        )),
        "{p:?}"
    );
    assert!(p.iter().any(|x| x.0 == api_port && x.1.is_none()), "{p:?}");
    assert_eq!((apm_port, dsd_port), (8126, 8125), "the seed's ports");
    // The seed's resources.
    let r = node.resources.as_ref().unwrap();
    for q in [r.requests.as_ref().unwrap(), r.limits.as_ref().unwrap()] {
        assert_eq!(q["memory"].0, "256Mi");
        assert_eq!(q["cpu"].0, "200m");
    }
    // Istio injects no sidecar into either agent.
    for t in [&ds.template, &m.deployment.spec.template] {
        let a = t.metadata.as_ref().unwrap().annotations.as_ref().unwrap();
        assert_eq!(a["sidecar.istio.io/inject"], "false");
    }
    // Log folders read-only from the node; the data dir and the DogStatsD socket's
    // folder on hostPaths at the paths the environment names.
    let pod = ds.template.spec.as_ref().unwrap();
    let host_path = |volume: &str| {
        pod.volumes
            .iter()
            .flatten()
            .find(|v| v.name == volume)
            .and_then(|v| v.host_path.as_ref())
            .map(|h| h.path.clone())
    };
    let mount = |path: &Path| {
        node.volume_mounts
            .iter()
            .flatten()
            .find(|v| Path::new(&v.mount_path) == path)
            .unwrap_or_else(|| panic!("nothing mounted at {}", path.display()))
    };
    for dir in ["/var/log/pods", "/var/log/containers"] {
        let mt = mount(Path::new(dir));
        assert_eq!(mt.read_only, Some(true), "{dir}");
        assert_eq!(host_path(&mt.name).as_deref(), Some(dir));
    }
    assert_eq!(cfg.logs.pod_logs_root, Path::new("/var/log/pods"));
    let data = mount(&cfg.data_dir);
    assert_ne!(data.read_only, Some(true));
    assert!(host_path(&data.name).is_some(), "data_dir on a hostPath");
    let socket = Path::new(&cfg.dogstatsd.socket);
    let sock_dir = mount(socket.parent().unwrap());
    assert!(host_path(&sock_dir.name).is_some());
    // The headless Service exposes the DaemonSet's two ports to its pods.
    let svc = service(&m, "meshmon-agent").spec.as_ref().unwrap();
    assert_eq!(svc.cluster_ip.as_deref(), Some("None"));
    assert_eq!(svc.selector.as_ref().unwrap(), labels);
    let mut sp: Vec<(i32, i32, String)> = svc
        .ports
        .iter()
        .flatten()
        .map(|p| {
            (
                p.port,
                int(p.target_port.as_ref().unwrap()),
                p.protocol.clone().unwrap(),
            )
        })
        .collect();
    sp.sort();
    assert_eq!(
        sp,
        [
            (dsd_port, dsd_port, "UDP".into()),
            (apm_port, apm_port, "TCP".into())
        ]
    );
    // The cluster agent: port 5005 in its environment, its container and its Service;
    // the node agents find it by the Service's name.
    let dep = &m.deployment.spec;
    let (clabels, cluster) = template(&dep.template);
    let cmd_port: i32 = env_value(cluster, "DD_CLUSTER_AGENT_CMD_PORT")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(cmd_port, 5005);
    assert!(ports(cluster).iter().any(|p| p.0 == cmd_port));
    let csvc = service(&m, "meshmon-cluster-agent").spec.as_ref().unwrap();
    assert_eq!(csvc.selector.as_ref().unwrap(), clabels);
    let cp = &csvc.ports.as_ref().unwrap()[0];
    assert_eq!(
        (cp.port, int(cp.target_port.as_ref().unwrap())),
        (5005, cmd_port)
    );
    assert_eq!(
        env_value(node, "DD_CLUSTER_AGENT_URL"),
        Some("http://meshmon-cluster-agent:5005")
    );
    for (which, probe) in [
        ("liveness", cluster.liveness_probe.as_ref()),
        ("readiness", cluster.readiness_probe.as_ref()),
    ] {
        let tcp = probe.and_then(|p| p.tcp_socket.as_ref());
        assert_eq!(tcp.map(|t| int(&t.port)), Some(cmd_port), "{which}");
    }
    // The cluster agent runs as non-root; both pods keep no capability.
    let psc = dep
        .template
        .spec
        .as_ref()
        .unwrap()
        .security_context
        .as_ref()
        .unwrap();
    assert_eq!(psc.run_as_non_root, Some(true));
    for c in [node, cluster] {
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        let drop = sc.capabilities.as_ref().unwrap().drop.as_ref().unwrap();
        assert_eq!(drop, &["ALL".to_owned()]);
    }
}

/// The Dockerfile's instructions (continuation lines joined, comments dropped).
fn dockerfile() -> (String, Vec<(String, String)>) {
    let text = std::fs::read_to_string(deploy_dir().join("Dockerfile")).unwrap();
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with('#') || (l.is_empty() && cur.is_empty()) {
            continue;
        }
        match l.strip_suffix('\\') {
            Some(head) => {
                cur.push_str(head);
                cur.push(' ');
            }
            None => {
                cur.push_str(l);
                let (op, rest) = cur.split_once(' ').unwrap_or((&cur, ""));
                out.push((op.to_ascii_uppercase(), rest.trim().to_owned()));
                cur.clear();
            }
        }
    }
    (text, out)
}

/// The `[[bin]]` name of the agent's Cargo.toml.
fn bin_name() -> String {
    let toml =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    let after = &toml[toml.find("[[bin]]").expect("[[bin]]")..];
    let line = after
        .lines()
        .find(|l| l.trim_start().starts_with("name"))
        .unwrap();
    line.split('"').nth(1).unwrap().to_owned()
}

/// The documented command that builds the build stage only.
fn documented_build_stage_command(text: &str) -> Vec<String> {
    let line = text
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .map(str::trim)
        .find(|l| l.starts_with("docker build --target build "))
        .expect("the Dockerfile documents `docker build --target build …`");
    line.split_whitespace().map(str::to_owned).collect()
}

#[test]
fn dockerfile_is_multi_stage_non_root_and_runs_the_agent() {
    let (text, ins) = dockerfile();
    let bin = bin_name();
    assert_eq!(
        bin,
        env!("CARGO_BIN_EXE_meshmon-agent")
            .rsplit('/')
            .next()
            .unwrap()
    );
    let stages: Vec<usize> = ins
        .iter()
        .enumerate()
        .filter(|(_, (op, _))| op == "FROM")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(stages.len(), 2, "a build stage and a final stage");
    let build_from = &ins[stages[0]].1;
    assert!(
        build_from.starts_with("rust:") && build_from.ends_with(" AS build"),
        "{build_from}"
    );
    let final_from = &ins[stages[1]].1;
    assert!(
        final_from.starts_with("gcr.io/distroless/") || final_from.starts_with("debian:"),
        "{final_from}"
    );
    let build = &ins[stages[0]..stages[1]];
    let fin = &ins[stages[1]..];
    let run = build
        .iter()
        .find(|(op, r)| op == "RUN" && r.contains("cargo build"))
        .map(|(_, r)| r.as_str())
        .expect("RUN cargo build");
    assert!(
        run.contains("cargo build --release --locked -p meshmon-agent"),
        "{run}"
    );
    assert!(run.contains(&format!("target/release/{bin} ")), "{run}");
    // The final stage copies that binary, runs as an unprivileged user, and starts `run`.
    let copy = fin
        .iter()
        .find(|(op, r)| op == "COPY" && r.starts_with("--from=build "))
        .map(|(_, r)| r.as_str())
        .expect("COPY --from=build");
    let installed = copy.split_whitespace().last().unwrap().to_owned();
    assert!(installed.ends_with(&format!("/{bin}")), "{copy}");
    let users: Vec<&str> = fin
        .iter()
        .filter(|(op, _)| op == "USER")
        .map(|(_, r)| r.as_str())
        .collect();
    let user = users.last().expect("USER in the final stage");
    let uid = user.split(':').next().unwrap();
    assert!(!matches!(uid, "root" | "0"), "USER {user}");
    let entry = fin
        .iter()
        .find(|(op, _)| op == "ENTRYPOINT")
        .map(|(_, r)| r.as_str())
        .unwrap();
    let entry: Vec<String> = serde_json::from_str(entry).expect("ENTRYPOINT in exec form");
    assert_eq!(entry, [installed.clone(), "run".into()]);
    assert!(
        fin.iter()
            .any(|(op, r)| op == "EXPOSE" && r.contains("8125/udp"))
    );
    assert!(
        !ins.iter().any(|(op, _)| op == "HEALTHCHECK"),
        "probes, not HEALTHCHECK"
    );
    // The cluster agent's Deployment runs the same binary with its own command.
    let m = manifests();
    let (_, cluster) = template(&m.deployment.spec.template);
    assert_eq!(
        cluster.command.as_deref(),
        Some(&[installed, "cluster-agent".into()][..])
    );
    // The documented build command names this Dockerfile from the repository root.
    let cmd = documented_build_stage_command(&text);
    let f = cmd.iter().position(|a| a == "-f").unwrap();
    assert_eq!(cmd[f + 1], "examples/meshmon-agent/deploy/Dockerfile");
    assert_eq!(cmd.last().map(String::as_str), Some("."));
    // The build context ignores build output.
    let ignore = std::fs::read_to_string(deploy_dir().join("../../../.dockerignore")).unwrap();
    assert!(ignore.lines().any(|l| l.trim() == "target/"), "{ignore}");
}

#[test]
fn docker_builds_the_build_stage_where_an_engine_answers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let engine = Command::new("docker")
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success());
    if !engine {
        eprintln!(
            "SKIPPED: no Docker engine answers `docker info`; the Dockerfile's build stage was not built (its static checks ran)"
        );
        return;
    }
    let (text, _) = dockerfile();
    let cmd = documented_build_stage_command(&text);
    let out = Command::new(&cmd[0])
        .args(&cmd[1..])
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        cmd.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}
