//! Expansion of annotated Kubernetes objects into [`CheckConfig`]s, as the Datadog
//! Cluster Agent and node Agent do.
//!
//! - **Endpoints checks** (`ad.datadoghq.com/endpoints.*` on a Service; the Cluster
//!   Agent's `kube_endpoints` provider and listener,
//!   <https://docs.datadoghq.com/containers/cluster_agent/endpointschecks/>): the
//!   Service's Endpoints (or, when there is no Endpoints object, its EndpointSlices,
//!   found by the `kubernetes.io/service-name` label) expand into one target per
//!   address, id `kube_endpoint_uid://<ns>/<svc>/<ip>`, network `endpoint`, the
//!   subset's ports, the node of the backing pod (unless the Service sets
//!   `ad.datadoghq.com/endpoints.resolve: ip`), tags `kube_service`, `kube_namespace`,
//!   `kube_endpoint_ip`. Not-ready addresses are skipped (reported as
//!   `service_not_ready`) unless the Service sets `ad.datadoghq.com/tolerate-unready:
//!   "true"`. Extra data: `namespace`, and `pod_name` / `pod_uid` for pod-backed
//!   addresses (an extension: the Agent's endpoints listener has none).
//! - **Cluster checks** (`ad.datadoghq.com/service.*`): one target per Service, id
//!   `kube_service://<ns>/<svc>`, network `cluster_ip` (absent for headless services),
//!   no node.
//! - **Pod containers** (`ad.datadoghq.com/<container>.*` on a Pod; the kubelet
//!   listener): one target per container with templates, id the runtime container id
//!   from `status.containerStatuses` (else `kube_container://<ns>/<pod>/<container>`),
//!   network `pod`, the container's ports sorted ascending, extra data `namespace`,
//!   `pod_name`, `pod_uid`, ready when the pod's `Ready` condition is `True` or the pod
//!   tolerates unready, tags `kube_namespace`, `pod_name`, `kube_container_name`.
//!   Containers excluded by the [`ContainerFilter`] or the `exclude` annotations are
//!   skipped and reported (check templates obey `exclude` / `metrics_exclude`,
//!   logs-only templates `exclude` / `logs_exclude`).
//!
//! Every target also carries the standard tags of its object's
//! `tags.datadoghq.com/{env,service,version}` labels and the `ad.datadoghq.com/tags`
//! annotation. Services (both kinds) are also subject to the filter's
//! `kube_namespace:` rules and to `ad.datadoghq.com/exclude`.
//!
//! Output order is deterministic: objects in input order; for each, targets in object
//! order (cluster check first); for each target, templates in annotation order.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde_json::Value;

use super::CheckConfig;
use super::annotations::{
    self, AnnotationError, ENDPOINTS_ID, ExcludeScope, SERVICE_ID, Template, ad_tags,
    excluded_by_annotation, extract_templates, standard_tags, tolerates_unready,
};
use super::filter::ContainerFilter;
use super::kube::{self, EndpointSlice, Endpoints, KubeObject, Pod, SERVICE_NAME_LABEL};
use super::template::{AdService, EnvPolicy, Port, ResolveError, Resolver};

/// Annotation choosing how endpoint addresses are resolved: `auto` (default: use the
/// backing pod's node) or `ip` (address only, no node).
pub const ENDPOINTS_RESOLVE_ANNOTATION: &str = "ad.datadoghq.com/endpoints.resolve";

/// Options of [`expand`]: start from [`ExpandOptions::default`], set what differs with
/// the `with_*` methods, and check the result with [`ExpandOptions::validate`] (the
/// setters that can fail validate on the spot).
///
/// ```
/// use meshmon_core::autodiscovery::{ExpandOptions, ExpandOptionsError};
/// let opts = ExpandOptions::default().with_node("node-a")?.with_max_configs(500)?;
/// assert_eq!(opts.node.as_deref(), Some("node-a"));
/// assert_eq!(ExpandOptions::default().with_max_configs(0).unwrap_err(), ExpandOptionsError::ZeroMaxConfigs);
/// # Ok::<(), ExpandOptionsError>(())
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ExpandOptions {
    /// Resolves `%%env_*%%` through this policy.
    pub env: EnvPolicy,
    /// Container (and namespace) exclusion rules.
    pub filter: ContainerFilter,
    /// Keep only configs for this node (what a node agent runs). Configs without a node
    /// (cluster checks, endpoints not backed by a pod) are dropped when set.
    pub node: Option<String>,
    /// At most this many configs are produced; the rest are counted in
    /// [`ExpandStats::dropped_by_limit`]. Default 1,000,000.
    pub max_configs: usize,
}

impl Default for ExpandOptions {
    fn default() -> Self {
        ExpandOptions {
            env: EnvPolicy::default(),
            filter: ContainerFilter::default(),
            node: None,
            max_configs: 1_000_000,
        }
    }
}

/// Why [`ExpandOptions`] cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExpandOptionsError {
    /// `max_configs` is 0: nothing could ever be produced.
    #[error("max_configs must be at least 1")]
    ZeroMaxConfigs,
    /// `node` is set to the empty string, which no target has (use `None` for "all
    /// nodes").
    #[error("node must not be empty (leave it unset to keep every node)")]
    EmptyNode,
}

impl ExpandOptions {
    /// Resolves `%%env_*%%` through `env`.
    #[must_use]
    pub fn with_env(mut self, env: EnvPolicy) -> Self {
        self.env = env;
        self
    }

    /// Uses `filter` for container and namespace exclusion.
    #[must_use]
    pub fn with_filter(mut self, filter: ContainerFilter) -> Self {
        self.filter = filter;
        self
    }

    /// Keeps only configs for `node` (a node agent's view).
    pub fn with_node(mut self, node: impl Into<String>) -> Result<Self, ExpandOptionsError> {
        self.node = Some(node.into());
        self.validate()?;
        Ok(self)
    }

    /// Produces at most `max_configs` configs.
    pub fn with_max_configs(mut self, max_configs: usize) -> Result<Self, ExpandOptionsError> {
        self.max_configs = max_configs;
        self.validate()?;
        Ok(self)
    }

    /// Checks the options (the fields are public, so a caller who set them directly
    /// calls this).
    pub fn validate(&self) -> Result<(), ExpandOptionsError> {
        if self.max_configs == 0 {
            return Err(ExpandOptionsError::ZeroMaxConfigs);
        }
        if self.node.as_deref() == Some("") {
            return Err(ExpandOptionsError::EmptyNode);
        }
        Ok(())
    }
}

/// Why a (template, target) pair produced no config.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum SkipReason {
    /// Template resolution failed.
    Resolve(ResolveError),
    /// The Service has endpoints templates but no Endpoints or EndpointSlice was given.
    NoEndpoints,
    /// Excluded by a filter rule or an `exclude` annotation.
    Excluded(&'static str),
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::Resolve(e) => write!(f, "{}: {e}", e.kind()),
            SkipReason::NoEndpoints => {
                f.write_str("no_endpoints: no Endpoints or EndpointSlice for this Service")
            }
            SkipReason::Excluded(why) => write!(f, "excluded: {why}"),
        }
    }
}

/// One (template, target) pair that produced no config.
#[derive(Clone, Debug, PartialEq)]
pub struct Skipped {
    /// Target (service) id, or the object for [`SkipReason::NoEndpoints`].
    pub service_id: String,
    /// Template check name.
    pub check: String,
    /// Why.
    pub reason: SkipReason,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "skipped check {:?} for {}: {}",
            self.check, self.service_id, self.reason
        )
    }
}

/// An annotation error on one object.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectError {
    /// `Kind namespace/name`.
    pub object: String,
    /// The error.
    pub error: AnnotationError,
}

impl fmt::Display for ObjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.object, self.error)
    }
}

/// Counters of one expansion.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExpandStats {
    /// Objects read.
    pub objects: usize,
    /// Objects of kinds autodiscovery does not use.
    pub ignored_objects: usize,
    /// Templates found.
    pub templates: usize,
    /// Targets templates were resolved against (after the node filter).
    pub targets: usize,
    /// Targets dropped by the node filter.
    pub other_node: usize,
    /// Configs produced.
    pub configs: usize,
    /// Pairs skipped (see [`Expansion::skipped`]).
    pub skipped: usize,
    /// Configs not produced because [`ExpandOptions::max_configs`] was reached.
    pub dropped_by_limit: usize,
}

/// Result of [`expand`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Expansion {
    /// Resolved configs.
    pub configs: Vec<CheckConfig>,
    /// Pairs that produced nothing, with the reason.
    pub skipped: Vec<Skipped>,
    /// Annotation errors.
    pub errors: Vec<ObjectError>,
    /// Counters.
    pub stats: ExpandStats,
}

/// One target a template is resolved against.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// What the template variables read.
    pub service: AdService,
    /// Node the target runs on.
    pub node: Option<String>,
}

/// Expands every annotated object.
///
/// ```
/// use meshmon_core::autodiscovery::{expand, kube::parse_objects, ExpandOptions};
///
/// let objects = parse_objects(br#"{"kind": "List", "items": [
///   {"kind": "Service", "metadata": {"name": "istiod", "namespace": "istio-system", "annotations": {
///     "ad.datadoghq.com/endpoints.checks": "{\"istio\": {\"instances\": [{\"istiod_endpoint\": \"http://%%host%%:15014/metrics\"}]}}"}}},
///   {"kind": "Endpoints", "metadata": {"name": "istiod", "namespace": "istio-system"},
///    "subsets": [{"addresses": [{"ip": "10.8.0.5", "nodeName": "node-a",
///      "targetRef": {"kind": "Pod", "name": "istiod-5d8f-abcde"}}], "ports": [{"port": 15014}]}]}
/// ]}"#)?;
/// let out = expand(&objects, &ExpandOptions::default());
/// let c = &out.configs[0];
/// assert_eq!(c.id, "kube_endpoint_uid://istio-system/istiod/10.8.0.5");
/// assert_eq!(c.node.as_deref(), Some("node-a"));
/// assert_eq!(c.instance["istiod_endpoint"], "http://10.8.0.5:15014/metrics");
/// # Ok::<(), meshmon_core::autodiscovery::kube::ParseError>(())
/// ```
pub fn expand(objects: &[KubeObject], opts: &ExpandOptions) -> Expansion {
    let mut ex = Expander {
        resolver: Resolver::new(opts.env.clone()),
        opts,
        out: Expansion::default(),
    };
    ex.out.stats.objects = objects.len();

    let mut endpoints: HashMap<(&str, &str), &Endpoints> = HashMap::new();
    let mut slices: HashMap<(&str, &str), Vec<&EndpointSlice>> = HashMap::new();
    for o in objects {
        match o {
            KubeObject::Endpoints(e) => {
                endpoints.insert((&e.metadata.namespace, &e.metadata.name), e);
            }
            KubeObject::EndpointSlice(s) => {
                if let Some(svc) = s.metadata.labels.get(SERVICE_NAME_LABEL) {
                    slices
                        .entry((&s.metadata.namespace, svc))
                        .or_default()
                        .push(s);
                }
            }
            _ => {}
        }
    }

    for o in objects {
        match o {
            KubeObject::Service(svc) => {
                let key = (svc.metadata.namespace.as_str(), svc.metadata.name.as_str());
                let slices = slices.get(&key).map(Vec::as_slice).unwrap_or_default();
                ex.service(svc, endpoints.get(&key).copied(), slices);
            }
            KubeObject::Pod(pod) => ex.pod(pod),
            KubeObject::Endpoints(_) | KubeObject::EndpointSlice(_) => {}
            _ => ex.out.stats.ignored_objects += 1,
        }
    }
    ex.out.stats.configs = ex.out.configs.len();
    ex.out.stats.skipped = ex.out.skipped.len();
    ex.out
}

struct Expander<'o> {
    resolver: Resolver,
    opts: &'o ExpandOptions,
    out: Expansion,
}

fn object_name(kind: &str, meta: &kube::ObjectMeta) -> String {
    format!("{kind} {}/{}", meta.namespace, meta.name)
}

/// Tags every target of an object carries: standard tags and `ad.datadoghq.com/tags`.
fn object_tags(meta: &kube::ObjectMeta, errors: &mut Vec<ObjectError>, kind: &str) -> Vec<String> {
    let mut tags = standard_tags(&meta.labels);
    match ad_tags(&meta.annotations) {
        Ok(t) => tags.extend(t),
        Err(error) => errors.push(ObjectError {
            object: object_name(kind, meta),
            error,
        }),
    }
    tags
}

/// Sorted, de-duplicated.
fn normalize(mut tags: Vec<String>) -> Vec<String> {
    tags.sort_unstable();
    tags.dedup();
    tags
}

/// Check templates obey `[metrics_]exclude`, logs-only templates `[logs_]exclude`.
fn scope(t: &Template) -> ExcludeScope {
    if t.instance.is_some() {
        ExcludeScope::Metrics
    } else {
        ExcludeScope::Logs
    }
}

/// Whether any string of the templates mentions `%%kube…` / `%%extra…` (a superset of
/// the templates that read extra data): targets of other templates skip building it,
/// since nothing can observe it.
fn reads_extra(templates: &[Template]) -> bool {
    fn mentions(v: &Value) -> bool {
        match v {
            Value::String(s) => s.contains("%%kube") || s.contains("%%extra"),
            Value::Array(items) => items.iter().any(mentions),
            Value::Object(map) => map.values().any(mentions),
            _ => false,
        }
    }
    templates.iter().any(|t| {
        mentions(&t.init_config)
            || t.instance.as_ref().is_some_and(mentions)
            || t.logs.as_ref().is_some_and(mentions)
    })
}

impl Expander<'_> {
    fn templates(&mut self, kind: &str, meta: &kube::ObjectMeta, id: &str) -> Vec<Template> {
        let t = extract_templates(&meta.annotations, id);
        for error in t.errors {
            self.out.errors.push(ObjectError {
                object: object_name(kind, meta),
                error,
            });
        }
        self.out.stats.templates += t.templates.len();
        t.templates
    }

    /// The templates not excluded by the `exclude` annotations (scoped per template) or
    /// by a filter rule (`filtered`: why); the others are reported as skipped.
    fn keep(
        &mut self,
        templates: Vec<Template>,
        service_id: &str,
        annotations: &BTreeMap<String, String>,
        container: Option<&str>,
        filtered: Option<&'static str>,
    ) -> Vec<Template> {
        let mut kept = Vec::with_capacity(templates.len());
        for t in templates {
            let why = if excluded_by_annotation(annotations, container, scope(&t)) {
                Some("exclude annotation")
            } else {
                filtered
            };
            match why {
                Some(why) => self.out.skipped.push(Skipped {
                    service_id: service_id.to_owned(),
                    check: t.name.clone(),
                    reason: SkipReason::Excluded(why),
                }),
                None => kept.push(t),
            }
        }
        kept
    }

    fn skip_all(&mut self, templates: &[Template], service_id: &str, reason: SkipReason) {
        for t in templates {
            self.out.skipped.push(Skipped {
                service_id: service_id.to_owned(),
                check: t.name.clone(),
                reason: reason.clone(),
            });
        }
    }

    fn service(
        &mut self,
        svc: &kube::Service,
        endpoints: Option<&Endpoints>,
        slices: &[&EndpointSlice],
    ) {
        let meta = &svc.metadata;
        let endpoint_tpls = self.templates("Service", meta, ENDPOINTS_ID);
        let cluster_tpls = self.templates("Service", meta, SERVICE_ID);
        if endpoint_tpls.is_empty() && cluster_tpls.is_empty() {
            return;
        }
        let object = object_name("Service", meta);
        let ns_excluded = self
            .opts
            .filter
            .is_excluded("", "", &meta.namespace)
            .then_some("kube_namespace filter rule");
        let endpoint_tpls = self.keep(endpoint_tpls, &object, &meta.annotations, None, ns_excluded);
        let cluster_tpls = self.keep(cluster_tpls, &object, &meta.annotations, None, ns_excluded);
        if endpoint_tpls.is_empty() && cluster_tpls.is_empty() {
            return;
        }
        let base_tags = object_tags(meta, &mut self.out.errors, "Service");

        if !cluster_tpls.is_empty() {
            self.run_target(&cluster_tpls, None, || service_target(svc, &base_tags));
        }
        if endpoint_tpls.is_empty() {
            return;
        }
        let tolerate = tolerates_unready(&meta.annotations);
        let by_ip = meta
            .annotations
            .get(ENDPOINTS_RESOLVE_ANNOTATION)
            .map(String::as_str)
            == Some("ip");
        let extra = reads_extra(&endpoint_tpls);
        let addresses: usize = match (endpoints, slices) {
            (Some(eps), _) => eps
                .subsets
                .iter()
                .map(|s| s.addresses.len() + s.not_ready_addresses.len())
                .sum(),
            (None, s) => s
                .iter()
                .flat_map(|s| &s.endpoints)
                .map(|e| e.addresses.len())
                .sum(),
        };
        if self.opts.node.is_none() {
            let room = self.opts.max_configs.saturating_sub(self.out.configs.len());
            self.out
                .configs
                .reserve(room.min(addresses.saturating_mul(endpoint_tpls.len())));
        }
        let mut each = |e: EndpointRef<'_>, ports: &[Port]| {
            let node = e.node(by_ip);
            self.run_target(&endpoint_tpls, node, || {
                endpoint_target(svc, &e, ports, &base_tags, by_ip, extra)
            });
        };
        match (endpoints, slices) {
            (Some(eps), _) => each_endpoint(eps, tolerate, &mut each),
            (None, s) if !s.is_empty() => each_slice_endpoint(s, tolerate, &mut each),
            _ => self.skip_all(&endpoint_tpls, &object, SkipReason::NoEndpoints),
        }
    }

    fn pod(&mut self, pod: &Pod) {
        let meta = &pod.metadata;
        let mut base_tags: Option<Vec<String>> = None;
        for c in &pod.spec.containers {
            let tpls = self.templates("Pod", meta, &c.name);
            if tpls.is_empty() {
                continue;
            }
            let base = base_tags
                .get_or_insert_with(|| object_tags(meta, &mut self.out.errors, "Pod"))
                .clone();
            let filtered = self
                .opts
                .filter
                .is_excluded(&c.name, &c.image, &meta.namespace)
                .then_some("container filter rule");
            let tpls = self.keep(
                tpls,
                &container_id(pod, c),
                &meta.annotations,
                Some(&c.name),
                filtered,
            );
            if tpls.is_empty() {
                continue;
            }
            self.run_target(&tpls, pod.spec.node_name.as_ref(), || {
                container_target(pod, c, &base)
            });
        }
    }

    /// Resolves every template against one target, built only if it passes the node
    /// filter. The last config takes the target's strings instead of copying them.
    fn run_target(
        &mut self,
        templates: &[Template],
        node: Option<&String>,
        build: impl FnOnce() -> Target,
    ) {
        if let Some(want) = &self.opts.node
            && node != Some(want)
        {
            self.out.stats.other_node += 1;
            return;
        }
        self.out.stats.targets += 1;
        let Target {
            mut service,
            mut node,
        } = build();
        let n = templates.len();
        for (i, tpl) in templates.iter().enumerate() {
            if self.out.configs.len() >= self.opts.max_configs {
                self.out.stats.dropped_by_limit += 1;
                continue;
            }
            match self.resolver.resolve_template(tpl, &service) {
                Ok(r) => {
                    let last = i + 1 == n;
                    let (id, tags, node) = if last {
                        (
                            std::mem::take(&mut service.id),
                            std::mem::take(&mut service.tags),
                            node.take(),
                        )
                    } else {
                        (service.id.clone(), service.tags.clone(), node.clone())
                    };
                    self.out.configs.push(CheckConfig {
                        id,
                        check: tpl.name.clone(),
                        node,
                        init_config: r.init_config,
                        instance: r.instance.unwrap_or(Value::Null),
                        tags,
                        logs: r.logs,
                    });
                }
                Err(e) => self.out.skipped.push(Skipped {
                    service_id: service.id.clone(),
                    check: tpl.name.clone(),
                    reason: SkipReason::Resolve(e),
                }),
            }
        }
    }
}

/// The cluster-check target of a Service: `kube_service://<ns>/<name>` on its ClusterIP.
pub fn service_target(svc: &kube::Service, object_tags: &[String]) -> Target {
    let meta = &svc.metadata;
    let mut hosts = BTreeMap::new();
    if !svc.spec.cluster_ip.is_empty() && svc.spec.cluster_ip != "None" {
        hosts.insert("cluster_ip".to_owned(), svc.spec.cluster_ip.clone());
    }
    let mut tags = vec![
        format!("kube_service:{}", meta.name),
        format!("kube_namespace:{}", meta.namespace),
    ];
    tags.extend_from_slice(object_tags);
    Target {
        service: AdService {
            id: format!("kube_service://{}/{}", meta.namespace, meta.name),
            hosts,
            ports: svc
                .spec
                .ports
                .iter()
                .map(|p| Port {
                    name: p.name.clone(),
                    port: p.port,
                })
                .collect(),
            extra: BTreeMap::from([("namespace".to_owned(), meta.namespace.clone())]),
            tags: normalize(tags),
            ..AdService::default()
        },
        node: None,
    }
}

/// One address of an Endpoints or EndpointSlice, borrowed.
struct EndpointRef<'a> {
    ip: &'a str,
    node_name: Option<&'a String>,
    target_ref: Option<&'a kube::ObjectReference>,
    ready: bool,
}

impl<'a> EndpointRef<'a> {
    fn pod(&self) -> Option<&'a kube::ObjectReference> {
        self.target_ref.filter(|r| r.kind == "Pod")
    }

    /// Only pod-backed endpoints are pinned to a node (the Agent's "auto" resolve).
    fn node(&self, by_ip: bool) -> Option<&'a String> {
        if by_ip {
            None
        } else {
            self.pod().and(self.node_name)
        }
    }
}

fn each_endpoint<'a>(
    eps: &'a Endpoints,
    tolerate_unready: bool,
    f: &mut impl FnMut(EndpointRef<'a>, &[Port]),
) {
    for subset in &eps.subsets {
        let ports: Vec<Port> = subset
            .ports
            .iter()
            .map(|p| Port {
                name: p.name.clone(),
                port: p.port,
            })
            .collect();
        for (list, ready) in [
            (&subset.addresses, true),
            (&subset.not_ready_addresses, tolerate_unready),
        ] {
            for a in list {
                let e = EndpointRef {
                    ip: &a.ip,
                    node_name: a.node_name.as_ref(),
                    target_ref: a.target_ref.as_ref(),
                    ready,
                };
                f(e, &ports);
            }
        }
    }
}

fn each_slice_endpoint<'a>(
    slices: &[&'a EndpointSlice],
    tolerate_unready: bool,
    f: &mut impl FnMut(EndpointRef<'a>, &[Port]),
) {
    for s in slices {
        let ports: Vec<Port> = s
            .ports
            .iter()
            .filter_map(|p| {
                p.port.map(|port| Port {
                    name: p.name.clone(),
                    port,
                })
            })
            .collect();
        for e in &s.endpoints {
            let ready = e.conditions.ready.unwrap_or(true) || tolerate_unready;
            for ip in &e.addresses {
                let r = EndpointRef {
                    ip,
                    node_name: e.node_name.as_ref(),
                    target_ref: e.target_ref.as_ref(),
                    ready,
                };
                f(r, &ports);
            }
        }
    }
}

fn endpoint_target(
    svc: &kube::Service,
    e: &EndpointRef<'_>,
    ports: &[Port],
    object_tags: &[String],
    by_ip: bool,
    with_extra: bool,
) -> Target {
    let meta = &svc.metadata;
    let ip = e.ip;
    let mut extra = BTreeMap::new();
    if with_extra {
        extra.insert("namespace".to_owned(), meta.namespace.clone());
        if let Some(r) = e.pod() {
            extra.insert("pod_name".to_owned(), r.name.clone());
            extra.insert("pod_uid".to_owned(), r.uid.clone());
        }
    }
    let mut tags = Vec::with_capacity(3 + object_tags.len());
    tags.push(format!("kube_service:{}", meta.name));
    tags.push(format!("kube_namespace:{}", meta.namespace));
    tags.push(format!("kube_endpoint_ip:{ip}"));
    tags.extend_from_slice(object_tags);
    Target {
        service: AdService {
            id: format!("kube_endpoint_uid://{}/{}/{ip}", meta.namespace, meta.name),
            hosts: BTreeMap::from([("endpoint".to_owned(), ip.to_owned())]),
            ports: ports.to_vec(),
            extra,
            tags: normalize(tags),
            ready: e.ready,
            ..AdService::default()
        },
        node: e.node(by_ip).cloned(),
    }
}

/// One target per address of an Endpoints object (not-ready addresses marked unready
/// unless `tolerate_unready`; `by_ip` drops the node, as `endpoints.resolve: ip`).
pub fn endpoints_targets(
    svc: &kube::Service,
    eps: &Endpoints,
    object_tags: &[String],
    tolerate_unready: bool,
    by_ip: bool,
) -> Vec<Target> {
    let mut out = Vec::new();
    each_endpoint(eps, tolerate_unready, &mut |e, ports| {
        out.push(endpoint_target(svc, &e, ports, object_tags, by_ip, true));
    });
    out
}

/// One target per address of a Service's EndpointSlices (`conditions.ready: false`
/// marks an endpoint unready unless `tolerate_unready`).
pub fn slice_targets(
    svc: &kube::Service,
    slices: &[&EndpointSlice],
    object_tags: &[String],
    tolerate_unready: bool,
    by_ip: bool,
) -> Vec<Target> {
    let mut out = Vec::new();
    each_slice_endpoint(slices, tolerate_unready, &mut |e, ports| {
        out.push(endpoint_target(svc, &e, ports, object_tags, by_ip, true));
    });
    out
}

fn container_id(pod: &Pod, c: &kube::Container) -> String {
    let meta = &pod.metadata;
    pod.status
        .container_statuses
        .iter()
        .find(|s| s.name == c.name && !s.container_id.is_empty())
        .map(|s| s.container_id.clone())
        .unwrap_or_else(|| {
            format!(
                "kube_container://{}/{}/{}",
                meta.namespace, meta.name, c.name
            )
        })
}

/// The target of one container of a pod.
pub fn container_target(pod: &Pod, c: &kube::Container, object_tags: &[String]) -> Target {
    let meta = &pod.metadata;
    let mut ports: Vec<Port> = c
        .ports
        .iter()
        .map(|p| Port {
            name: p.name.clone(),
            port: p.container_port,
        })
        .collect();
    ports.sort_by_key(|p| p.port);
    let mut hosts = BTreeMap::new();
    if !pod.status.pod_ip.is_empty() {
        hosts.insert("pod".to_owned(), pod.status.pod_ip.clone());
    }
    let mut tags = vec![
        format!("kube_namespace:{}", meta.namespace),
        format!("pod_name:{}", meta.name),
        format!("kube_container_name:{}", c.name),
    ];
    tags.extend_from_slice(object_tags);
    Target {
        service: AdService {
            id: container_id(pod, c),
            hosts,
            ports,
            extra: BTreeMap::from([
                ("namespace".to_owned(), meta.namespace.clone()),
                ("pod_name".to_owned(), meta.name.clone()),
                ("pod_uid".to_owned(), meta.uid.clone()),
            ]),
            tags: normalize(tags),
            ready: pod.is_ready() || annotations::tolerates_unready(&meta.annotations),
            ..AdService::default()
        },
        node: pod.spec.node_name.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autodiscovery::filter::parse_rule_list;
    use crate::autodiscovery::kube::parse_objects;
    use serde_json::json;

    const SVC: &str = r#"{"kind": "Service", "metadata": {"name": "web", "namespace": "shop",
        "labels": {"tags.datadoghq.com/env": "prod"},
        "annotations": {
          "ad.datadoghq.com/tags": "{\"team\": \"mesh\"}",
          "ad.datadoghq.com/endpoints.check_names": "[\"http_check\"]",
          "ad.datadoghq.com/endpoints.init_configs": "[{}]",
          "ad.datadoghq.com/endpoints.instances": "[{\"url\": \"http://%%host%%:%%port_http%%/health\"}]",
          "ad.datadoghq.com/service.check_names": "[\"tcp_check\"]",
          "ad.datadoghq.com/service.init_configs": "[{}]",
          "ad.datadoghq.com/service.instances": "[{\"host\": \"%%host%%\", \"port\": \"%%port%%\"}]"}},
        "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80}]}}"#;

    fn objs(extra: &str) -> Vec<KubeObject> {
        parse_objects(format!(r#"{{"kind": "List", "items": [{SVC}{extra}]}}"#).as_bytes()).unwrap()
    }

    const EPS: &str = r#", {"kind": "Endpoints", "metadata": {"name": "web", "namespace": "shop"}, "subsets": [
        {"addresses": [{"ip": "10.1.0.1", "nodeName": "n1", "targetRef": {"kind": "Pod", "name": "web-a", "uid": "u1"}},
                       {"ip": "10.1.0.2", "nodeName": "n2"}],
         "notReadyAddresses": [{"ip": "10.1.0.3", "nodeName": "n1", "targetRef": {"kind": "Pod", "name": "web-c"}}],
         "ports": [{"name": "http", "port": 8080}]}]}"#;

    #[test]
    fn endpoints_and_cluster_checks() {
        let out = expand(&objs(EPS), &ExpandOptions::default());
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        let ids: Vec<_> = out
            .configs
            .iter()
            .map(|c| (c.check.as_str(), c.id.as_str(), c.node.as_deref()))
            .collect();
        assert_eq!(
            ids,
            [
                ("tcp_check", "kube_service://shop/web", None),
                (
                    "http_check",
                    "kube_endpoint_uid://shop/web/10.1.0.1",
                    Some("n1")
                ),
                // not backed by a pod: no node
                ("http_check", "kube_endpoint_uid://shop/web/10.1.0.2", None),
            ]
        );
        assert_eq!(
            out.configs[0].instance,
            json!({"host": "10.96.0.10", "port": 80,
            "tags": ["env:prod", "kube_namespace:shop", "kube_service:web", "team:mesh"]})
        );
        assert_eq!(
            out.configs[1].instance["url"],
            "http://10.1.0.1:8080/health"
        );
        assert_eq!(
            out.configs[1].tags,
            [
                "env:prod",
                "kube_endpoint_ip:10.1.0.1",
                "kube_namespace:shop",
                "kube_service:web",
                "team:mesh"
            ]
        );
        // the not-ready address is reported
        assert_eq!(out.skipped.len(), 1);
        assert_eq!(
            out.skipped[0].service_id,
            "kube_endpoint_uid://shop/web/10.1.0.3"
        );
        assert!(
            matches!(&out.skipped[0].reason, SkipReason::Resolve(e) if e.kind() == "service_not_ready")
        );
        assert_eq!(out.stats.configs, 3);
    }

    #[test]
    fn endpoint_extra_data() {
        let mut o = objs(EPS);
        let KubeObject::Service(s) = &mut o[0] else {
            panic!()
        };
        s.metadata.annotations.insert(
            "ad.datadoghq.com/endpoints.instances".into(),
            r#"[{"pod": "%%kube_pod_name%%", "uid": "%%extra_pod_uid%%", "ns": "%%kube_namespace%%"}]"#.into(),
        );
        let out = expand(&o, &ExpandOptions::default());
        let eps: Vec<_> = out
            .configs
            .iter()
            .filter(|c| c.check == "http_check")
            .collect();
        assert_eq!(eps.len(), 1, "{:?}", out.skipped);
        assert_eq!(
            (
                &eps[0].instance["pod"],
                &eps[0].instance["uid"],
                &eps[0].instance["ns"]
            ),
            (&json!("web-a"), &json!("u1"), &json!("shop"))
        );
        // the address not backed by a pod has no pod_name
        assert!(out.skipped.iter().any(|s| s.service_id.ends_with("10.1.0.2")
            && matches!(&s.reason, SkipReason::Resolve(e) if e.kind() == "extra_not_found")));
    }

    #[test]
    fn tolerate_unready_and_resolve_ip() {
        let mut o = objs(EPS);
        let KubeObject::Service(s) = &mut o[0] else {
            panic!()
        };
        s.metadata
            .annotations
            .insert("ad.datadoghq.com/tolerate-unready".into(), "true".into());
        s.metadata
            .annotations
            .insert(ENDPOINTS_RESOLVE_ANNOTATION.into(), "ip".into());
        let out = expand(&o, &ExpandOptions::default());
        assert_eq!(out.configs.len(), 4);
        assert!(out.configs.iter().all(|c| c.node.is_none()));
        assert!(out.skipped.is_empty());
    }

    #[test]
    fn node_filter() {
        let opts = ExpandOptions {
            node: Some("n1".into()),
            ..ExpandOptions::default()
        };
        let out = expand(&objs(EPS), &opts);
        assert_eq!(out.configs.len(), 1);
        assert_eq!(out.configs[0].id, "kube_endpoint_uid://shop/web/10.1.0.1");
        assert_eq!(out.stats.other_node, 2);
    }

    #[test]
    fn endpoint_slices_when_no_endpoints() {
        let slices = r#", {"kind": "EndpointSlice", "metadata": {"name": "web-x", "namespace": "shop",
            "labels": {"kubernetes.io/service-name": "web"}}, "addressType": "IPv6",
            "endpoints": [{"addresses": ["fd00::7"], "nodeName": "n3", "targetRef": {"kind": "Pod", "name": "web-z"}},
                          {"addresses": ["fd00::8"], "conditions": {"ready": false}}],
            "ports": [{"name": "http", "port": 8080}, {"name": "all"}]}"#;
        let out = expand(&objs(slices), &ExpandOptions::default());
        let c = out
            .configs
            .iter()
            .find(|c| c.check == "http_check")
            .unwrap();
        assert_eq!(c.id, "kube_endpoint_uid://shop/web/fd00::7");
        assert_eq!(c.instance["url"], "http://[fd00::7]:8080/health");
        assert_eq!(c.node.as_deref(), Some("n3"));
        assert_eq!(out.skipped.len(), 1);
    }

    #[test]
    fn missing_endpoints_are_reported() {
        let out = expand(&objs(""), &ExpandOptions::default());
        assert_eq!(out.configs.len(), 1);
        assert_eq!(out.skipped[0].reason, SkipReason::NoEndpoints);
        assert_eq!(out.skipped[0].service_id, "Service shop/web");
    }

    #[test]
    fn namespace_filter_and_exclude_annotation_on_services() {
        let f = ContainerFilter::new(&[], &parse_rule_list("kube_namespace:^shop$")).unwrap();
        let out = expand(
            &objs(EPS),
            &ExpandOptions {
                filter: f,
                ..ExpandOptions::default()
            },
        );
        assert!(out.configs.is_empty());
        assert_eq!(out.skipped.len(), 2);
        assert!(
            out.skipped
                .iter()
                .all(|s| matches!(s.reason, SkipReason::Excluded(_)))
        );
    }

    const POD: &str = r#"{"kind": "Pod", "metadata": {"name": "redis-0", "namespace": "db", "uid": "p-1",
        "annotations": {"ad.datadoghq.com/redis.checks": "{\"redisdb\": {\"instances\": [{\"host\": \"%%host%%\", \"port\": \"%%port%%\", \"pod\": \"%%kube_pod_name%%\"}]}}",
                        "ad.datadoghq.com/sidecar.checks": "{\"envoy\": {\"instances\": [{\"url\": \"http://%%host%%:15090\"}]}}",
                        "ad.datadoghq.com/sidecar.exclude": "true"}},
        "spec": {"nodeName": "n9", "containers": [
           {"name": "redis", "image": "redis:7", "ports": [{"containerPort": 6380}, {"name": "main", "containerPort": 6379}]},
           {"name": "sidecar", "image": "istio/proxyv2"}]},
        "status": {"podIP": "10.2.0.9", "conditions": [{"type": "Ready", "status": "True"}],
                   "containerStatuses": [{"name": "redis", "containerID": "containerd://abc"}]}}"#;

    #[test]
    fn pod_containers() {
        let o = parse_objects(POD.as_bytes()).unwrap();
        let out = expand(&o, &ExpandOptions::default());
        assert_eq!(out.configs.len(), 1);
        let c = &out.configs[0];
        assert_eq!(
            (c.id.as_str(), c.check.as_str(), c.node.as_deref()),
            ("containerd://abc", "redisdb", Some("n9"))
        );
        // ports sorted ascending: %%port%% is the highest
        assert_eq!(c.instance["port"], 6380);
        assert_eq!(c.instance["pod"], "redis-0");
        assert_eq!(out.skipped.len(), 1);
        assert_eq!(
            out.skipped[0].service_id,
            "kube_container://db/redis-0/sidecar"
        );

        let f = ContainerFilter::new(&[], &parse_rule_list("image:^redis")).unwrap();
        let out = expand(
            &o,
            &ExpandOptions {
                filter: f,
                ..ExpandOptions::default()
            },
        );
        assert!(out.configs.is_empty());
        assert_eq!(
            out.skipped[0].reason,
            SkipReason::Excluded("container filter rule")
        );
    }

    #[test]
    fn logs_are_carried_and_serialized() {
        let pod = r#"{"kind": "Pod", "metadata": {"name": "web-0", "namespace": "shop", "annotations": {
            "ad.datadoghq.com/nginx.checks": "{\"nginx\": {\"instances\": [{\"url\": \"http://%%host%%/status\"}], \"logs\": [{\"source\": \"nginx\", \"service\": \"%%kube_pod_name%%\"}]}}",
            "ad.datadoghq.com/tolerate-unready": "true"}},
          "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}, "status": {"podIP": "10.3.0.1"}}"#;
        let out = expand(
            &parse_objects(pod.as_bytes()).unwrap(),
            &ExpandOptions::default(),
        );
        assert_eq!(out.configs.len(), 1, "{:?}", out.skipped);
        let c = &out.configs[0];
        assert_eq!(
            c.logs,
            Some(json!([{"source": "nginx", "service": "web-0"}]))
        );
        let text = serde_json::to_string(c).unwrap();
        assert!(
            text.ends_with(r#","logs":[{"service":"web-0","source":"nginx"}]}"#),
            "{text}"
        );
        assert!(
            !serde_json::to_string(&CheckConfig {
                logs: None,
                ..c.clone()
            })
            .unwrap()
            .contains("logs")
        );
    }

    #[test]
    fn exclusion_scopes_per_template_kind() {
        let pod = |extra: &str| {
            format!(
                r#"{{"kind": "Pod", "metadata": {{"name": "w", "namespace": "n", "annotations": {{
                "ad.datadoghq.com/c.check_names": "[\"nginx\"]", "ad.datadoghq.com/c.init_configs": "[{{}}]",
                "ad.datadoghq.com/c.instances": "[{{\"u\": \"%%host%%\"}}]",
                "ad.datadoghq.com/c.logs": "[{{\"source\": \"nginx\"}}]" {extra} }}}},
                "spec": {{"containers": [{{"name": "c", "image": "nginx"}}]}},
                "status": {{"podIP": "10.0.0.1", "conditions": [{{"type": "Ready", "status": "True"}}]}}}}"#
            )
        };
        let run = |extra: &str| {
            let out = expand(
                &parse_objects(pod(extra).as_bytes()).unwrap(),
                &ExpandOptions::default(),
            );
            let kept: Vec<bool> = out.configs.iter().map(|c| c.instance.is_null()).collect();
            (kept, out.skipped.len())
        };
        // kept: [check config, logs-only config]
        assert_eq!(run(""), (vec![false, true], 0));
        assert_eq!(
            run(r#", "ad.datadoghq.com/c.logs_exclude": "true""#),
            (vec![false], 1)
        );
        assert_eq!(
            run(r#", "ad.datadoghq.com/c.metrics_exclude": "true""#),
            (vec![true], 1)
        );
        assert_eq!(run(r#", "ad.datadoghq.com/exclude": "true""#), (vec![], 2));
        assert_eq!(
            run(r#", "ad.datadoghq.com/other.exclude": "true""#),
            (vec![false, true], 0)
        );
    }

    #[test]
    fn limit_is_counted() {
        let opts = ExpandOptions {
            max_configs: 1,
            ..ExpandOptions::default()
        };
        let out = expand(&objs(EPS), &opts);
        assert_eq!(out.configs.len(), 1);
        assert_eq!(out.stats.dropped_by_limit, 3);
    }

    #[test]
    fn annotation_errors_name_the_object() {
        let o = parse_objects(
            br#"{"kind": "Service", "metadata": {"name": "s", "namespace": "n",
            "annotations": {"ad.datadoghq.com/endpoints.check_names": "[\"x\"]"}}}"#,
        )
        .unwrap();
        let out = expand(&o, &ExpandOptions::default());
        assert_eq!(out.errors.len(), 1);
        assert_eq!(out.errors[0].object, "Service n/s");
        assert!(
            out.errors[0]
                .to_string()
                .contains("init_configs is missing")
        );
    }
}
