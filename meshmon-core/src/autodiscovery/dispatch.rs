//! Dispatch of check configurations over node agents, as the Datadog Cluster Agent does
//! it (`pkg/clusteragent/clusterchecks`, <https://docs.datadoghq.com/containers/cluster_agent/clusterchecks/>
//! and <https://docs.datadoghq.com/containers/cluster_agent/endpointschecks/>).
//!
//! Pure logic: no I/O, no clock. Every call that depends on time takes the current
//! [`Timestamp`]; the caller (the `meshmon-agent cluster-agent` HTTP server) owns the
//! clock and the locking.
//!
//! - Configs are identified by [`config_digest`] (check, instance, `init_config`, tags,
//!   id and node), so [`Dispatcher::set_configs`] with the same set twice changes nothing.
//! - **Endpoints checks** (a config with a `node`) belong to that node and never move,
//!   whether or not the node's agent reports; a node agent fetches them with
//!   [`Dispatcher::endpoints_configs`].
//! - **Cluster checks** (no `node`) go to the live node with the fewest cluster checks
//!   (ties: the first node name in byte order); until a node reports they are
//!   *dangling*.
//! - Node agents **heartbeat** ([`Dispatcher::heartbeat`], Datadog's
//!   `POST /api/v1/clusterchecks/status/{node}` with `last_change`); the answer says whether
//!   the node is up to date. A node silent for longer than
//!   [`DispatchOptions::node_expiration_timeout`] is removed by [`Dispatcher::tick`] and its
//!   cluster checks become dangling, then are dispatched to the remaining nodes.
//! - During [`DispatchOptions::warmup`] after start (a new leader) nodes are registered
//!   and told they are up to date (so they keep what they run), but nothing is moved.
//!
//! ```
//! use std::time::Duration;
//! use meshmon_core::Timestamp;
//! use meshmon_core::autodiscovery::CheckConfig;
//! use meshmon_core::autodiscovery::dispatch::{DispatchOptions, Dispatcher};
//!
//! let cfg = |id: &str, node: Option<&str>| CheckConfig {
//!     id: id.into(), check: "istio".into(), node: node.map(str::to_owned),
//!     init_config: serde_json::json!({}), instance: serde_json::json!({"u": id}),
//!     tags: vec![], logs: None,
//! };
//! let t0 = Timestamp::from_secs(1_000);
//! let opts = DispatchOptions::default().with_warmup(Duration::ZERO);
//! let mut d = Dispatcher::new(opts, t0)?;
//! d.set_configs(t0, [cfg("kube_service://ns/a", None), cfg("kube_endpoint_uid://ns/b/10.0.0.1", Some("n1"))]);
//! // n1 reports with a stale last_change: not up to date, so it fetches its configs.
//! assert!(!d.heartbeat("n1", t0, 0));
//! let cluster = d.cluster_configs("n1").unwrap();
//! assert_eq!(cluster.configs.len(), 1);
//! assert!(d.heartbeat("n1", t0, cluster.last_change));
//! assert_eq!(d.endpoints_configs("n1").configs.len(), 1);
//! // n1 falls silent: after the expiration timeout its cluster check is dangling again.
//! let later = t0.saturating_add(Duration::from_secs(31));
//! assert_eq!(d.tick(later).expired, ["n1"]);
//! assert_eq!(d.stats().dangling, 1);
//! // …while its endpoints check stays with n1.
//! assert_eq!(d.endpoints_configs("n1").configs.len(), 1);
//! # Ok::<(), meshmon_core::autodiscovery::dispatch::DispatchOptionsError>(())
//! ```

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use super::CheckConfig;
use crate::Timestamp;

/// Options of a [`Dispatcher`].
///
/// ```
/// use std::time::Duration;
/// use meshmon_core::autodiscovery::dispatch::{DispatchOptions, DispatchOptionsError};
/// let o = DispatchOptions::default().with_node_expiration_timeout(Duration::from_secs(5));
/// assert!(o.validate().is_ok());
/// let bad = DispatchOptions::default().with_node_expiration_timeout(Duration::ZERO);
/// assert_eq!(bad.validate(), Err(DispatchOptionsError::ZeroExpiration));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DispatchOptions {
    /// A node silent for longer than this is removed and its cluster checks re-dispatched
    /// (Datadog's `cluster_checks.node_expiration_timeout`, default 30 s).
    pub node_expiration_timeout: Duration,
    /// After start, nodes are registered but nothing is dispatched for this long
    /// (Datadog's `cluster_checks.warmup_duration`, default 30 s), so a new leader learns
    /// which nodes are alive before moving checks.
    pub warmup: Duration,
    /// At most this many configs are held; more are dropped and counted in
    /// [`DispatchStats::dropped_by_limit`]. Default 1,000,000.
    pub max_configs: usize,
}

impl Default for DispatchOptions {
    fn default() -> Self {
        DispatchOptions {
            node_expiration_timeout: Duration::from_secs(30),
            warmup: Duration::from_secs(30),
            max_configs: 1_000_000,
        }
    }
}

/// Why [`DispatchOptions`] cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DispatchOptionsError {
    /// `node_expiration_timeout` is 0: every node would expire at once.
    #[error("node_expiration_timeout must be greater than 0")]
    ZeroExpiration,
    /// `max_configs` is 0: nothing could ever be dispatched.
    #[error("max_configs must be at least 1")]
    ZeroMaxConfigs,
}

impl DispatchOptions {
    /// Sets [`DispatchOptions::node_expiration_timeout`].
    #[must_use]
    pub fn with_node_expiration_timeout(mut self, d: Duration) -> Self {
        self.node_expiration_timeout = d;
        self
    }

    /// Sets [`DispatchOptions::warmup`].
    #[must_use]
    pub fn with_warmup(mut self, d: Duration) -> Self {
        self.warmup = d;
        self
    }

    /// Sets [`DispatchOptions::max_configs`].
    #[must_use]
    pub fn with_max_configs(mut self, n: usize) -> Self {
        self.max_configs = n;
        self
    }

    /// Checks the options.
    pub fn validate(&self) -> Result<(), DispatchOptionsError> {
        if self.node_expiration_timeout.is_zero() {
            return Err(DispatchOptionsError::ZeroExpiration);
        }
        if self.max_configs == 0 {
            return Err(DispatchOptionsError::ZeroMaxConfigs);
        }
        Ok(())
    }
}

/// The dispatch identity of a config: FNV-1a (64 bit) over the canonical JSON of its id,
/// check, node, instance, `init_config` and tags. Stable across runs and Rust releases;
/// a pod that moves to another node gets a new digest.
pub fn config_digest(c: &CheckConfig) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |b: &[u8]| {
        for x in b {
            h ^= u64::from(*x);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    let parts = [
        c.id.as_bytes(),
        c.check.as_bytes(),
        c.node.as_deref().unwrap_or("\u{0}").as_bytes(),
    ];
    for p in parts {
        feed(p);
        feed(&[0xff]);
    }
    // serde_json's Value serializes object keys sorted (BTreeMap), so this is canonical.
    for v in [&c.instance, &c.init_config] {
        feed(serde_json::to_string(v).unwrap_or_default().as_bytes());
        feed(&[0xff]);
    }
    for t in &c.tags {
        feed(t.as_bytes());
        feed(&[0xfe]);
    }
    h
}

/// What [`Dispatcher::set_configs`] changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SetOutcome {
    /// Configs not held before.
    pub added: usize,
    /// Configs held before and no longer in the set.
    pub removed: usize,
    /// Configs dropped by [`DispatchOptions::max_configs`].
    pub dropped_by_limit: usize,
}

/// What [`Dispatcher::tick`] changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TickOutcome {
    /// Nodes removed because they were silent too long, in name order.
    pub expired: Vec<String>,
    /// Dangling cluster checks given to a node.
    pub dispatched: usize,
}

/// One node's configs, as the node API returns them.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct NodeConfigs<'a> {
    /// The node's last change stamp (Datadog's `last_change`): the node sends it back in
    /// its heartbeat and is up to date when it matches.
    pub last_change: i64,
    /// The configs, in digest order.
    pub configs: Vec<&'a CheckConfig>,
}

/// One node, as [`Dispatcher::nodes`] reports it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct NodeView {
    /// Node name.
    pub name: String,
    /// Last heartbeat.
    pub heartbeat: Timestamp,
    /// The node's `last_change` stamp.
    pub last_change: i64,
    /// Cluster checks dispatched to it.
    pub cluster_checks: usize,
    /// Endpoints checks of pods on it.
    pub endpoints_checks: usize,
}

/// Counters and sizes.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct DispatchStats {
    /// Live (reporting) nodes.
    pub nodes: usize,
    /// Cluster checks held.
    pub cluster_checks: usize,
    /// Cluster checks without a node.
    pub dangling: usize,
    /// Endpoints checks held.
    pub endpoints_checks: usize,
    /// Endpoints checks whose node is not reporting (they wait for it; they never move).
    pub endpoints_unassigned: usize,
    /// Nodes expired so far.
    pub expired_nodes_total: u64,
    /// Cluster-check assignments so far (first dispatch and re-dispatch).
    pub dispatched_total: u64,
    /// Configs dropped by the limit so far.
    pub dropped_by_limit: u64,
    /// Whether the dispatcher is still warming up.
    pub warming_up: bool,
}

#[derive(Debug)]
struct NodeStore {
    heartbeat: Timestamp,
    last_change: i64,
    cluster: BTreeSet<u64>,
}

#[derive(Debug, Default)]
struct EndpointsStore {
    last_change: i64,
    digests: BTreeSet<u64>,
}

/// The dispatcher's state. See the [module docs](self).
#[derive(Debug)]
pub struct Dispatcher {
    opts: DispatchOptions,
    warm_at: Timestamp,
    cluster: HashMap<u64, Arc<CheckConfig>>,
    endpoints: HashMap<u64, Arc<CheckConfig>>,
    endpoints_by_node: HashMap<String, EndpointsStore>,
    nodes: BTreeMap<String, NodeStore>,
    digest_to_node: HashMap<u64, String>,
    dangling: BTreeSet<u64>,
    expired_nodes_total: u64,
    dispatched_total: u64,
    dropped_by_limit: u64,
    stamp: i64,
}

impl Dispatcher {
    /// A dispatcher started (or elected leader) at `now`.
    pub fn new(opts: DispatchOptions, now: Timestamp) -> Result<Self, DispatchOptionsError> {
        opts.validate()?;
        Ok(Dispatcher {
            warm_at: now.saturating_add(opts.warmup),
            opts,
            cluster: HashMap::new(),
            endpoints: HashMap::new(),
            endpoints_by_node: HashMap::new(),
            nodes: BTreeMap::new(),
            digest_to_node: HashMap::new(),
            dangling: BTreeSet::new(),
            expired_nodes_total: 0,
            dispatched_total: 0,
            dropped_by_limit: 0,
            stamp: 0,
        })
    }

    /// The options.
    pub fn options(&self) -> &DispatchOptions {
        &self.opts
    }

    /// A change stamp greater than every earlier one, and than `now` in nanoseconds.
    fn next_stamp(&mut self, now: Timestamp) -> i64 {
        self.stamp = (self.stamp + 1).max(now.as_nanos());
        self.stamp
    }

    /// Whether `now` is within the warm-up.
    pub fn warming_up(&self, now: Timestamp) -> bool {
        now < self.warm_at
    }

    /// Replaces the whole set of configs (what the config providers see now). Configs
    /// already held (same digest) keep their node; removed ones are unscheduled from
    /// theirs; new cluster checks are dispatched (unless warming up).
    pub fn set_configs<I: IntoIterator<Item = CheckConfig>>(
        &mut self,
        now: Timestamp,
        configs: I,
    ) -> SetOutcome {
        let mut out = SetOutcome::default();
        let mut cluster = HashMap::new();
        let mut endpoints = HashMap::new();
        for c in configs {
            if cluster.len() + endpoints.len() >= self.opts.max_configs {
                out.dropped_by_limit += 1;
                continue;
            }
            let d = config_digest(&c);
            if c.node.is_some() {
                endpoints.insert(d, c);
            } else {
                cluster.insert(d, c);
            }
        }
        self.dropped_by_limit += out.dropped_by_limit as u64;

        // Endpoints checks: the node's set changes, its stamp moves.
        let mut touched: BTreeSet<String> = BTreeSet::new();
        let gone: Vec<u64> = self
            .endpoints
            .keys()
            .filter(|d| !endpoints.contains_key(d))
            .copied()
            .collect();
        for d in gone {
            if let Some(c) = self.endpoints.remove(&d) {
                out.removed += 1;
                let node = c.node.clone().unwrap_or_default();
                if let Some(s) = self.endpoints_by_node.get_mut(&node) {
                    s.digests.remove(&d);
                    if s.digests.is_empty() {
                        self.endpoints_by_node.remove(&node);
                    }
                }
                touched.insert(node);
            }
        }
        for (d, c) in endpoints {
            if self.endpoints.contains_key(&d) {
                continue;
            }
            out.added += 1;
            let node = c.node.clone().unwrap_or_default();
            self.endpoints_by_node
                .entry(node.clone())
                .or_default()
                .digests
                .insert(d);
            self.endpoints.insert(d, Arc::new(c));
            touched.insert(node);
        }
        for node in touched {
            let stamp = self.next_stamp(now);
            if let Some(s) = self.endpoints_by_node.get_mut(&node) {
                s.last_change = stamp;
            }
        }

        // Cluster checks.
        let gone: Vec<u64> = self
            .cluster
            .keys()
            .filter(|d| !cluster.contains_key(d))
            .copied()
            .collect();
        for d in gone {
            self.cluster.remove(&d);
            out.removed += 1;
            self.dangling.remove(&d);
            if let Some(node) = self.digest_to_node.remove(&d) {
                let stamp = self.next_stamp(now);
                if let Some(n) = self.nodes.get_mut(&node) {
                    n.cluster.remove(&d);
                    n.last_change = stamp;
                }
            }
        }
        for (d, c) in cluster {
            if self.cluster.contains_key(&d) {
                continue;
            }
            out.added += 1;
            self.cluster.insert(d, Arc::new(c));
            self.dangling.insert(d);
        }
        self.dispatch_dangling(now);
        out
    }

    /// A node agent's heartbeat with the `last_change` it holds; returns whether it is up
    /// to date (Datadog's `isuptodate`). An unknown node is registered (and dangling
    /// cluster checks are dispatched to it unless warming up).
    pub fn heartbeat(&mut self, node: &str, now: Timestamp, last_change: i64) -> bool {
        let known = self.nodes.contains_key(node);
        if !known {
            let stamp = self.next_stamp(now);
            self.nodes.insert(
                node.to_owned(),
                NodeStore {
                    heartbeat: now,
                    last_change: stamp,
                    cluster: BTreeSet::new(),
                },
            );
            self.dispatch_dangling(now);
        }
        let warming = self.warming_up(now);
        let Some(n) = self.nodes.get_mut(node) else {
            return false;
        };
        n.heartbeat = n.heartbeat.max(now);
        // While warming up, nodes keep what they run.
        warming || n.last_change == last_change
    }

    /// Expires silent nodes (their cluster checks become dangling) and dispatches
    /// dangling cluster checks. Call it periodically (the cluster agent: every second).
    pub fn tick(&mut self, now: Timestamp) -> TickOutcome {
        let mut out = TickOutcome::default();
        let timeout = self.opts.node_expiration_timeout;
        let expired: Vec<String> = self
            .nodes
            .iter()
            .filter(|(_, n)| now.saturating_since(n.heartbeat) > timeout)
            .map(|(k, _)| k.clone())
            .collect();
        for name in expired {
            if let Some(n) = self.nodes.remove(&name) {
                for d in n.cluster {
                    self.digest_to_node.remove(&d);
                    self.dangling.insert(d);
                }
                self.expired_nodes_total += 1;
                out.expired.push(name);
            }
        }
        out.dispatched = self.dispatch_dangling(now);
        out
    }

    /// Gives each dangling cluster check to the node with the fewest (ties: the first
    /// name); returns how many were given. Nothing moves while warming up.
    fn dispatch_dangling(&mut self, now: Timestamp) -> usize {
        if self.dangling.is_empty() || self.nodes.is_empty() || self.warming_up(now) {
            return 0;
        }
        let mut heap: BinaryHeap<Reverse<(usize, &str)>> = self
            .nodes
            .iter()
            .map(|(k, n)| Reverse((n.cluster.len(), k.as_str())))
            .collect();
        let mut picks: Vec<(u64, String)> = Vec::with_capacity(self.dangling.len());
        for d in &self.dangling {
            let Some(Reverse((count, name))) = heap.pop() else {
                break;
            };
            picks.push((*d, name.to_owned()));
            heap.push(Reverse((count + 1, name)));
        }
        drop(heap);
        let n = picks.len();
        let mut touched: BTreeSet<String> = BTreeSet::new();
        for (d, name) in picks {
            self.dangling.remove(&d);
            if let Some(node) = self.nodes.get_mut(&name) {
                node.cluster.insert(d);
            }
            self.digest_to_node.insert(d, name.clone());
            touched.insert(name);
        }
        for name in touched {
            let stamp = self.next_stamp(now);
            if let Some(node) = self.nodes.get_mut(&name) {
                node.last_change = stamp;
            }
        }
        self.dispatched_total += n as u64;
        n
    }

    /// The cluster checks dispatched to `node` (Datadog's
    /// `GET /api/v1/clusterchecks/configs/{node}`); `None` when the node is unknown (it
    /// must heartbeat first).
    pub fn cluster_configs(&self, node: &str) -> Option<NodeConfigs<'_>> {
        let n = self.nodes.get(node)?;
        Some(NodeConfigs {
            last_change: n.last_change,
            configs: n
                .cluster
                .iter()
                .filter_map(|d| self.cluster.get(d).map(|c| &**c))
                .collect(),
        })
    }

    /// The endpoints checks of pods on `node` (Datadog's
    /// `GET /api/v1/endpointschecks/configs/{node}`); empty for a node with none.
    pub fn endpoints_configs(&self, node: &str) -> NodeConfigs<'_> {
        match self.endpoints_by_node.get(node) {
            Some(s) => NodeConfigs {
                last_change: s.last_change,
                configs: s
                    .digests
                    .iter()
                    .filter_map(|d| self.endpoints.get(d).map(|c| &**c))
                    .collect(),
            },
            None => NodeConfigs {
                last_change: 0,
                configs: Vec::new(),
            },
        }
    }

    /// The node a cluster check (by digest) is dispatched to.
    pub fn node_of(&self, digest: u64) -> Option<&str> {
        self.digest_to_node.get(&digest).map(String::as_str)
    }

    /// The dangling cluster checks, in digest order.
    pub fn dangling(&self) -> Vec<&CheckConfig> {
        self.dangling
            .iter()
            .filter_map(|d| self.cluster.get(d).map(|c| &**c))
            .collect()
    }

    /// Every live node, in name order.
    pub fn nodes(&self) -> Vec<NodeView> {
        self.nodes
            .iter()
            .map(|(k, n)| NodeView {
                name: k.clone(),
                heartbeat: n.heartbeat,
                last_change: n.last_change,
                cluster_checks: n.cluster.len(),
                endpoints_checks: self.endpoints_by_node.get(k).map_or(0, |s| s.digests.len()),
            })
            .collect()
    }

    /// Counters and sizes at `now`.
    pub fn stats_at(&self, now: Timestamp) -> DispatchStats {
        DispatchStats {
            warming_up: self.warming_up(now),
            ..self.stats()
        }
    }

    /// Counters and sizes (`warming_up` is false; see [`Dispatcher::stats_at`]).
    pub fn stats(&self) -> DispatchStats {
        let endpoints_unassigned = self
            .endpoints_by_node
            .iter()
            .filter(|(k, _)| !self.nodes.contains_key(*k))
            .map(|(_, s)| s.digests.len())
            .sum();
        DispatchStats {
            nodes: self.nodes.len(),
            cluster_checks: self.cluster.len(),
            dangling: self.dangling.len(),
            endpoints_checks: self.endpoints.len(),
            endpoints_unassigned,
            expired_nodes_total: self.expired_nodes_total,
            dispatched_total: self.dispatched_total,
            dropped_by_limit: self.dropped_by_limit,
            warming_up: false,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(id: &str, node: Option<&str>) -> CheckConfig {
        CheckConfig {
            id: id.into(),
            check: "istio".into(),
            node: node.map(str::to_owned),
            init_config: json!({}),
            instance: json!({"istio_mesh_endpoint": format!("http://{id}/metrics")}),
            tags: vec![format!("id:{id}")],
            logs: None,
        }
    }

    fn secs(s: i64) -> Timestamp {
        Timestamp::from_secs(s)
    }

    fn nowarm() -> DispatchOptions {
        DispatchOptions::default().with_warmup(Duration::ZERO)
    }

    fn cluster_set(n: usize) -> Vec<CheckConfig> {
        (0..n)
            .map(|i| cfg(&format!("kube_service://ns/s{i}"), None))
            .collect()
    }

    #[test]
    fn digest_covers_node_and_instance() {
        let a = cfg("x", Some("n1"));
        let mut b = a.clone();
        assert_eq!(config_digest(&a), config_digest(&b));
        b.node = Some("n2".into());
        assert_ne!(config_digest(&a), config_digest(&b));
        let mut c = a.clone();
        c.instance = json!({"istio_mesh_endpoint": "http://other"});
        assert_ne!(config_digest(&a), config_digest(&c));
        let mut d = a.clone();
        d.node = None;
        assert_ne!(config_digest(&a), config_digest(&d));
    }

    #[test]
    fn cluster_checks_spread_over_nodes_evenly() {
        let mut d = Dispatcher::new(nowarm(), secs(0)).unwrap();
        for n in ["n1", "n2", "n3"] {
            d.heartbeat(n, secs(1), 0);
        }
        d.set_configs(secs(1), cluster_set(10));
        let counts: Vec<usize> = d.nodes().iter().map(|n| n.cluster_checks).collect();
        assert_eq!(counts.iter().sum::<usize>(), 10);
        assert!(counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1);
        assert_eq!(d.stats().dangling, 0);
        assert_eq!(d.stats().dispatched_total, 10);
    }

    #[test]
    fn set_configs_is_idempotent() {
        let mut d = Dispatcher::new(nowarm(), secs(0)).unwrap();
        d.heartbeat("n1", secs(0), 0);
        d.heartbeat("n2", secs(0), 0);
        let mut set = cluster_set(5);
        set.push(cfg("e1", Some("n1")));
        let first = d.set_configs(secs(1), set.clone());
        assert_eq!(first.added, 6);
        let before: Vec<NodeView> = d.nodes();
        let again = d.set_configs(secs(2), set);
        assert_eq!(again, SetOutcome::default());
        assert_eq!(d.nodes(), before, "nothing moved, no stamp changed");
    }

    #[test]
    fn endpoints_checks_go_to_their_node_only_and_never_move() {
        let mut d = Dispatcher::new(nowarm(), secs(0)).unwrap();
        d.heartbeat("n1", secs(0), 0);
        d.heartbeat("n2", secs(0), 0);
        d.set_configs(
            secs(0),
            [
                cfg("e1", Some("n1")),
                cfg("e2", Some("n1")),
                cfg("e3", Some("n3")),
            ],
        );
        assert_eq!(d.endpoints_configs("n1").configs.len(), 2);
        assert!(d.endpoints_configs("n2").configs.is_empty());
        // n3 never reported: its check waits for it, it is not given to anyone else.
        assert_eq!(d.endpoints_configs("n3").configs.len(), 1);
        assert_eq!(d.stats().endpoints_unassigned, 1);
        // n1 expires: its endpoints checks stay n1's.
        d.heartbeat("n2", secs(40), 0);
        let t = d.tick(secs(40));
        assert_eq!(t.expired, ["n1"]);
        assert_eq!(d.endpoints_configs("n1").configs.len(), 2);
        assert!(d.endpoints_configs("n2").configs.is_empty());
        assert_eq!(d.stats().endpoints_unassigned, 3);
    }

    #[test]
    fn silent_node_expires_and_its_cluster_checks_move() {
        let opts = nowarm().with_node_expiration_timeout(Duration::from_secs(30));
        let mut d = Dispatcher::new(opts, secs(0)).unwrap();
        for n in ["n1", "n2", "n3"] {
            d.heartbeat(n, secs(0), 0);
        }
        d.set_configs(secs(0), cluster_set(9));
        let n2_before = d.cluster_configs("n2").unwrap();
        assert_eq!(n2_before.configs.len(), 3);
        let moved: Vec<u64> = n2_before.configs.iter().map(|c| config_digest(c)).collect();
        // n1 and n3 keep reporting; n2 falls silent.
        for t in [10, 20, 30] {
            d.heartbeat("n1", secs(t), 0);
            d.heartbeat("n3", secs(t), 0);
            assert!(d.tick(secs(t)).expired.is_empty(), "t={t}");
        }
        let out = d.tick(secs(31));
        assert_eq!(out.expired, ["n2"]);
        assert_eq!(out.dispatched, 3);
        assert!(d.cluster_configs("n2").is_none());
        for dg in moved {
            let owner = d.node_of(dg).unwrap();
            assert!(owner == "n1" || owner == "n3");
        }
        let counts: Vec<usize> = d.nodes().iter().map(|n| n.cluster_checks).collect();
        assert_eq!(counts.iter().sum::<usize>(), 9);
        assert_eq!(d.stats().expired_nodes_total, 1);
    }

    #[test]
    fn heartbeat_reports_up_to_date_against_last_change() {
        let mut d = Dispatcher::new(nowarm(), secs(0)).unwrap();
        assert!(!d.heartbeat("n1", secs(0), 0), "a new node must pull");
        let lc = d.cluster_configs("n1").unwrap().last_change;
        assert!(d.heartbeat("n1", secs(1), lc));
        d.set_configs(secs(2), cluster_set(1));
        let lc2 = d.cluster_configs("n1").unwrap().last_change;
        assert!(lc2 > lc);
        assert!(!d.heartbeat("n1", secs(3), lc));
        assert!(d.heartbeat("n1", secs(3), lc2));
        // Removal moves the stamp too, even within the same instant.
        d.set_configs(secs(3), Vec::new());
        let lc3 = d.cluster_configs("n1").unwrap().last_change;
        assert!(lc3 > lc2);
        assert!(d.cluster_configs("n1").unwrap().configs.is_empty());
    }

    #[test]
    fn nothing_moves_during_warmup() {
        let opts = DispatchOptions::default().with_warmup(Duration::from_secs(30));
        let mut d = Dispatcher::new(opts, secs(100)).unwrap();
        d.set_configs(secs(100), cluster_set(4));
        assert!(
            d.heartbeat("n1", secs(101), 12345),
            "warming up: keep running"
        );
        assert_eq!(d.stats_at(secs(101)).dangling, 4);
        assert!(d.stats_at(secs(101)).warming_up);
        assert_eq!(d.tick(secs(129)).dispatched, 0);
        d.heartbeat("n1", secs(129), 0);
        assert_eq!(d.tick(secs(130)).dispatched, 4);
        assert!(!d.heartbeat("n1", secs(130), 12345));
    }

    #[test]
    fn pod_churn_changes_the_set_on_the_next_poll() {
        let mut d = Dispatcher::new(nowarm(), secs(0)).unwrap();
        d.heartbeat("n1", secs(0), 0);
        d.heartbeat("n2", secs(0), 0);
        d.set_configs(
            secs(0),
            [cfg("pod-a", Some("n1")), cfg("pod-b", Some("n1"))],
        );
        let lc1 = d.endpoints_configs("n1").last_change;
        // pod-a moves to n2; pod-b goes not-ready (gone from the expansion).
        let out = d.set_configs(secs(10), [cfg("pod-a", Some("n2"))]);
        assert_eq!((out.added, out.removed), (1, 2));
        assert!(d.endpoints_configs("n1").configs.is_empty());
        assert_eq!(d.endpoints_configs("n2").configs[0].id, "pod-a");
        assert!(d.endpoints_configs("n2").last_change > lc1);
    }

    #[test]
    fn limits_are_counted() {
        let mut d = Dispatcher::new(nowarm().with_max_configs(3), secs(0)).unwrap();
        let out = d.set_configs(secs(0), cluster_set(5));
        assert_eq!(out.dropped_by_limit, 2);
        assert_eq!(d.stats().cluster_checks, 3);
        assert_eq!(d.stats().dangling, 3, "no node yet");
        assert_eq!(d.stats().dropped_by_limit, 2);
        assert_eq!(
            Dispatcher::new(DispatchOptions::default().with_max_configs(0), secs(0)).unwrap_err(),
            DispatchOptionsError::ZeroMaxConfigs
        );
    }

    #[test]
    fn removed_cluster_check_leaves_its_node() {
        let mut d = Dispatcher::new(nowarm(), secs(0)).unwrap();
        d.heartbeat("n1", secs(0), 0);
        let set = cluster_set(2);
        d.set_configs(secs(0), set.clone());
        assert_eq!(d.cluster_configs("n1").unwrap().configs.len(), 2);
        d.set_configs(secs(1), set[..1].to_vec());
        let c = d.cluster_configs("n1").unwrap();
        assert_eq!(c.configs.len(), 1);
        assert_eq!(c.configs[0].id, set[0].id);
        assert_eq!(d.node_of(config_digest(&set[1])), None);
    }
}
