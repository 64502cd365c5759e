//! The Kubernetes API provider (cargo feature `kube`): Services, Endpoints and
//! EndpointSlices kept in kube-rs reflector stores (`kube::runtime::watcher`: a paged
//! list, then a watch from its `resourceVersion`, a relist when the watch answers
//! `410 Gone`, exponential back-off on errors), expanded like manifests on every
//! [`ConfigProvider::collect`].
//!
//! Used by `meshmon-agent cluster-agent` when `DD_EXTRA_CONFIG_PROVIDERS` names
//! `kube_endpoints` or `kube_services`. The API server is `cluster_agent.kube_api_url` when
//! set (plain HTTP, no credentials: tests and `kubectl proxy`), else the in-cluster
//! service account or `~/.kube/config` (`kube::Client::try_default`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use meshmon_core::ConfigProvider;
use meshmon_core::autodiscovery::{
    CheckConfig, ContainerFilter, ExpandOptions, ProviderError, expand, parse_objects,
};
use serde::Serialize;

/// Counters of the watch streams.
#[derive(Debug, Default)]
pub struct WatchStats {
    /// Events applied to the stores (objects added, modified or deleted).
    pub events: AtomicU64,
    /// Watch or list errors (each followed by a back-off, then a retry or relist).
    pub errors: AtomicU64,
}

/// The provider.
pub struct KubeProvider {
    services: Store<Service>,
    endpoints: Store<Endpoints>,
    slices: Store<EndpointSlice>,
    opts: ExpandOptions,
    /// Stream counters.
    pub stats: Arc<WatchStats>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for KubeProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeProvider")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Drop for KubeProvider {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn spawn_reflector<K>(
    client: kube::Client,
    stats: Arc<WatchStats>,
    log: Arc<dyn Fn(String) + Send + Sync>,
) -> (Store<K>, tokio::task::JoinHandle<()>)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store::<K>();
    let api = kube::Api::<K>::all(client);
    let stream =
        reflector::reflector(writer, watcher(api, watcher::Config::default())).default_backoff();
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(_) => {
                    stats.events.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    stats.errors.fetch_add(1, Ordering::Relaxed);
                    log(format!("{}: {e}", K::kind(&())));
                }
            }
        }
    });
    (store, task)
}

/// A client of the API server at `api_url` (plain HTTP, no credentials); empty: the
/// in-cluster service account or `~/.kube/config`.
pub async fn client(api_url: &str) -> anyhow::Result<kube::Client> {
    client_as(api_url, None).await
}

/// [`client`], sending `User-Agent: meshmon-cluster-agent/<version> (<identity>)` (so the
/// API server's audit log, and the tests' stand-in, tell the replicas apart).
pub async fn client_as(api_url: &str, identity: Option<&str>) -> anyhow::Result<kube::Client> {
    let mut config = if api_url.is_empty() {
        kube::Config::infer().await?
    } else {
        let uri: hyper::Uri = api_url.parse()?;
        kube::Config::new(uri)
    };
    if let Some(id) = identity {
        let ua = format!("meshmon-cluster-agent/{} ({id})", env!("CARGO_PKG_VERSION"));
        if let Ok(v) = hyper::header::HeaderValue::from_str(&ua) {
            config.headers.push((hyper::header::USER_AGENT, v));
        }
    }
    Ok(kube::Client::try_from(config)?)
}

impl KubeProvider {
    /// Starts the watches against `api_url` (empty: in-cluster / kubeconfig).
    pub async fn start(
        api_url: &str,
        filter: ContainerFilter,
        log: Arc<dyn Fn(String) + Send + Sync>,
    ) -> anyhow::Result<Self> {
        let client = client(api_url).await?;
        let stats = Arc::new(WatchStats::default());
        let (services, a) = spawn_reflector::<Service>(client.clone(), stats.clone(), log.clone());
        let (endpoints, b) =
            spawn_reflector::<Endpoints>(client.clone(), stats.clone(), log.clone());
        let (slices, c) = spawn_reflector::<EndpointSlice>(client, stats.clone(), log);
        let mut opts = ExpandOptions::default();
        opts.filter = filter;
        Ok(KubeProvider {
            services,
            endpoints,
            slices,
            opts,
            stats,
            tasks: vec![a, b, c],
        })
    }

    /// Whether every store has finished its first list.
    pub fn ready(&self) -> bool {
        use futures::FutureExt as _;
        let ready =
            |f: Option<Result<(), reflector::store::WriterDropped>>| matches!(f, Some(Ok(())));
        ready(self.services.wait_until_ready().now_or_never())
            && ready(self.endpoints.wait_until_ready().now_or_never())
            && ready(self.slices.wait_until_ready().now_or_never())
    }
}

fn items<K: Serialize>(
    out: &mut Vec<serde_json::Value>,
    objs: Vec<Arc<K>>,
) -> Result<(), ProviderError> {
    for o in objs {
        out.push(serde_json::to_value(&*o).map_err(|e| ProviderError::Read {
            source_name: "kubernetes API".into(),
            message: e.to_string(),
        })?);
    }
    Ok(())
}

#[async_trait]
impl ConfigProvider for KubeProvider {
    fn name(&self) -> &str {
        "kube"
    }

    async fn collect(&self) -> Result<Vec<CheckConfig>, ProviderError> {
        if !self.ready() {
            return Err(ProviderError::Read {
                source_name: "kubernetes API".into(),
                message: "initial list not complete yet".into(),
            });
        }
        let mut list = Vec::new();
        items(&mut list, self.services.state())?;
        items(&mut list, self.endpoints.state())?;
        items(&mut list, self.slices.state())?;
        // Through the same parser as manifests: one definition of the objects' shape.
        let bytes = serde_json::to_vec(&serde_json::json!({ "kind": "List", "items": list }))
            .map_err(|e| ProviderError::Read {
                source_name: "kubernetes API".into(),
                message: e.to_string(),
            })?;
        let objects = parse_objects(&bytes).map_err(|e| ProviderError::Parse {
            source_name: "kubernetes API".into(),
            error: Box::new(e),
        })?;
        Ok(expand(&objects, &self.opts).configs)
    }
}
