//! Config providers → the set of check configs this node runs.
//!
//! Two providers implement [`meshmon_core::ConfigProvider`]: [`StaticProvider`] (the
//! config file's `checks:`, like the Agent's `conf.d`) and [`FileProvider`] (Kubernetes
//! objects in manifest files or folders, expanded by `meshmon_core::autodiscovery`, re-read
//! every `autodiscovery.poll_interval`, Datadog's `ad_config_poll_interval`). Each poll
//! sends the whole desired set to the scrape scheduler, which schedules new configs and
//! unschedules removed ones by digest, so a poll is idempotent.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use meshmon_core::ConfigProvider;
use meshmon_core::autodiscovery::{
    CheckConfig, ContainerFilter, ExpandOptions, ProviderError, expand, parse_objects,
};
use serde_json::json;
use tokio::sync::{mpsc, watch};

use super::Ctx;
use crate::config::StaticCheck;

/// One check config, as scheduled.
#[derive(Clone, Debug, PartialEq)]
pub struct Scheduled {
    /// Digest of check, instance, init_config and tags: the scheduling identity.
    pub digest: u64,
    /// Which provider produced it.
    pub provider: &'static str,
    /// The config.
    pub config: CheckConfig,
}

/// The digest of a config (FNV-1a over its canonical JSON: stable across runs and
/// Rust releases).
pub fn digest(c: &CheckConfig) -> u64 {
    let text = serde_json::to_string(&json!({
        "id": c.id, "check": c.check, "instance": c.instance,
        "init_config": c.init_config, "tags": c.tags,
    }))
    .unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The config file's `checks:`.
#[derive(Debug, Clone)]
pub struct StaticProvider {
    checks: Vec<StaticCheck>,
}

impl StaticProvider {
    /// A provider over these checks.
    pub fn new(checks: Vec<StaticCheck>) -> Self {
        Self { checks }
    }
}

#[async_trait]
impl ConfigProvider for StaticProvider {
    fn name(&self) -> &str {
        "file"
    }

    async fn collect(&self) -> Result<Vec<CheckConfig>, ProviderError> {
        let mut out = Vec::new();
        for (i, c) in self.checks.iter().enumerate() {
            for (j, inst) in c.instances.iter().enumerate() {
                let tags: Vec<String> = inst
                    .get("tags")
                    .and_then(|t| t.as_array())
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                let mut cfg: CheckConfig = serde_json::from_value(json!({
                    "id": format!("file:{}:{i}:{j}", c.name),
                    "check": c.name,
                    "node": null,
                    "init_config": c.init_config,
                    "instance": inst,
                    "tags": tags,
                }))
                .map_err(|e| ProviderError::Read {
                    source_name: format!("checks[{i}].instances[{j}]"),
                    message: e.to_string(),
                })?;
                cfg.tags.sort();
                cfg.tags.dedup();
                out.push(cfg);
            }
        }
        Ok(out)
    }
}

/// Kubernetes objects in manifest files (YAML or JSON, `List`s, `kubectl get -o json`
/// output) or folders of them.
#[derive(Debug)]
pub struct FileProvider {
    paths: Vec<PathBuf>,
    opts: ExpandOptions,
    /// Per-object errors and skip reasons of the last collect.
    pub last_report: std::sync::Mutex<Vec<String>>,
}

fn manifest_files(p: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if p.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(p)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for e in entries {
            let ext = e.extension().and_then(|x| x.to_str()).unwrap_or("");
            if e.is_dir() || matches!(ext, "yaml" | "yml" | "json") {
                manifest_files(&e, out)?;
            }
        }
    } else {
        out.push(p.to_owned());
    }
    Ok(())
}

impl FileProvider {
    /// A provider over `paths`, keeping only `node`'s endpoints checks when given.
    pub fn new(paths: Vec<PathBuf>, node: Option<String>, filter: ContainerFilter) -> Self {
        let mut opts = ExpandOptions::default();
        opts.node = node;
        opts.filter = filter;
        Self {
            paths,
            opts,
            last_report: std::sync::Mutex::new(Vec::new()),
        }
    }
}

#[async_trait]
impl ConfigProvider for FileProvider {
    fn name(&self) -> &str {
        "manifests"
    }

    async fn collect(&self) -> Result<Vec<CheckConfig>, ProviderError> {
        let mut files = Vec::new();
        for p in &self.paths {
            manifest_files(p, &mut files).map_err(|e| ProviderError::Read {
                source_name: p.display().to_string(),
                message: e.to_string(),
            })?;
        }
        let mut objects = Vec::new();
        for f in &files {
            let bytes = std::fs::read(f).map_err(|e| ProviderError::Read {
                source_name: f.display().to_string(),
                message: e.to_string(),
            })?;
            let objs = parse_objects(&bytes).map_err(|e| ProviderError::Parse {
                source_name: f.display().to_string(),
                error: Box::new(e),
            })?;
            objects.extend(objs);
        }
        let exp = expand(&objects, &self.opts);
        let mut report: Vec<String> = exp.errors.iter().map(|e| e.to_string()).collect();
        report.extend(exp.skipped.iter().map(|s| s.to_string()));
        if let Ok(mut r) = self.last_report.lock() {
            *r = report;
        }
        Ok(exp.configs)
    }
}

/// Polls every provider and sends the desired set to the scheduler.
pub async fn run(ctx: Ctx, tx: mpsc::Sender<Vec<Scheduled>>, mut shutdown: watch::Receiver<bool>) {
    let ad = &ctx.cfg.autodiscovery;
    let filter = match ContainerFilter::new(&ad.container_include, &ad.container_exclude) {
        Ok(f) => f,
        Err(e) => {
            // Validation already checked this; keep running without a filter.
            ctx.log("ERROR", "discovery", &format!("container filter: {e}"));
            ContainerFilter::default()
        }
    };
    let node = (!ad.node.is_empty()).then(|| ad.node.clone());
    let mut providers: Vec<Arc<dyn ConfigProvider>> =
        vec![Arc::new(StaticProvider::new(ctx.cfg.checks.clone()))];
    let file = (!ad.manifests.is_empty())
        .then(|| Arc::new(FileProvider::new(ad.manifests.clone(), node, filter)));
    if let Some(f) = &file {
        providers.push(f.clone());
    }
    providers.extend(crate::cluster::client::providers(&ctx));
    let mut last: Option<Vec<u64>> = None;
    let mut errors: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let mut set = Vec::new();
        for p in &providers {
            let name: &'static str = match p.name() {
                "file" => "file",
                "endpointschecks" => "endpointschecks",
                "clusterchecks" => "clusterchecks",
                _ => "manifests",
            };
            match p.collect().await {
                Ok(cfgs) => {
                    if errors.remove(name).is_some() {
                        ctx.log("INFO", "discovery", &format!("provider {name} recovered"));
                    }
                    set.extend(cfgs.into_iter().map(|c| Scheduled {
                        digest: digest(&c),
                        provider: name,
                        config: c,
                    }));
                }
                Err(e) => {
                    let msg = e.to_string();
                    if errors.get(name) != Some(&msg) {
                        ctx.log("ERROR", "discovery", &format!("provider {name}: {msg}"));
                    }
                    errors.insert(name.to_owned(), msg);
                    // Keep what this provider had: a transient read error must not
                    // unschedule every check.
                    last = None;
                    set.clear();
                    break;
                }
            }
        }
        if errors.is_empty() {
            // Logs-only configs (no instance) go to the tailer, not the scheduler.
            publish_log_overrides(&ctx, &set);
            set.retain(|s| !s.config.instance.is_null());
            let mut digests: Vec<u64> = set.iter().map(|s| s.digest).collect();
            digests.sort_unstable();
            if last.as_ref() != Some(&digests) {
                let report = file
                    .as_ref()
                    .and_then(|f| f.last_report.lock().ok().map(|r| r.clone()))
                    .unwrap_or_default();
                ctx.set_component(
                    "discovery",
                    json!({ "configs": set.len(), "report": report, "errors": errors }),
                );
                if tx.send(set).await.is_err() {
                    return;
                }
                last = Some(digests);
            }
        } else {
            ctx.set_component("discovery", json!({ "errors": errors }));
        }
        tokio::select! {
            _ = super::stopped(&mut shutdown) => return,
            _ = tokio::time::sleep(ad.poll_interval.0) => {}
        }
    }
}

/// Autodiscovery `logs` configs, keyed by the container they name (its
/// `kube_namespace`, `pod_name` and `kube_container_name` tags).
pub fn log_overrides(set: &[Scheduled]) -> super::LogOverrides {
    let mut out = super::LogOverrides::new();
    for s in set {
        let Some(logs) = s
            .config
            .logs
            .as_ref()
            .and_then(|l| l.as_array())
            .and_then(|a| a.first())
        else {
            continue;
        };
        let tag = |k: &str| {
            s.config
                .tags
                .iter()
                .find_map(|t| t.strip_prefix(k).and_then(|v| v.strip_prefix(':')))
                .map(str::to_owned)
        };
        let (Some(ns), Some(pod), Some(container)) = (
            tag("kube_namespace"),
            tag("pod_name"),
            tag("kube_container_name"),
        ) else {
            continue;
        };
        let text = |k: &str| logs.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        let list = |k: &str| {
            logs.get(k)
                .and_then(|v| v.as_array())
                .cloned()
                .unwrap_or_default()
        };
        out.insert(
            (ns, pod, container),
            super::LogOverride {
                service: text("service"),
                source: text("source"),
                tags: list("tags")
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
                rules: list("log_processing_rules"),
            },
        );
    }
    out
}

fn publish_log_overrides(ctx: &Ctx, set: &[Scheduled]) {
    let o = log_overrides(set);
    if let Ok(mut m) = ctx.log_overrides.write() {
        *m = o;
    }
}

impl Hash for Scheduled {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.digest.hash(state);
    }
}
