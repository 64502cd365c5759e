//! The cluster-agent dispatch as a sequence of operations decoded from the input (set
//! the config set, heartbeats, time steps, ticks), checking after every operation: each
//! cluster check is on at most one live node (and on exactly one or dangling), the node
//! `node_of` names is the one serving it, endpoints checks are served only to their own
//! node, the config limit holds, nothing stays dangling after a dispatching call (set, tick) while a node is live after
//! warm-up,
//! and a heartbeat with the node's current `last_change` is up to date.
#![no_main]

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use meshmon_core::Timestamp;
use meshmon_core::autodiscovery::CheckConfig;
use meshmon_core::autodiscovery::dispatch::{DispatchOptions, Dispatcher, config_digest};

const NODES: [&str; 4] = ["n0", "n1", "n2", "node-3"];

fn config(id: u8, node: u8) -> CheckConfig {
    CheckConfig {
        id: format!("kube_service://ns/s{}", id % 8),
        check: if id & 8 == 0 { "istio".into() } else { "http_check".into() },
        node: match node % 6 {
            n @ 0..4 => Some(NODES[n as usize].to_owned()),
            _ => None,
        },
        init_config: serde_json::json!({}),
        instance: serde_json::json!({"u": id % 8}),
        tags: if id & 16 == 0 { vec![] } else { vec!["env:prod".into()] },
        logs: None,
    }
}

fuzz_target!(|data: &[u8]| {
    let mut it = data.iter().copied();
    let opts_byte = it.next().unwrap_or(0);
    let expiry = Duration::from_secs(u64::from(opts_byte % 60) + 1);
    let warmup = Duration::from_secs(if opts_byte & 64 == 0 { 0 } else { 10 });
    let max_configs = if opts_byte & 128 == 0 { 1000 } else { 5 };
    let opts = DispatchOptions::default()
        .with_node_expiration_timeout(expiry)
        .with_warmup(warmup)
        .with_max_configs(max_configs);
    let mut now = Timestamp::from_secs(1_000);
    let Ok(mut d) = Dispatcher::new(opts, now) else {
        return;
    };
    let mut live: BTreeMap<&str, Timestamp> = BTreeMap::new();
    while let Some(op) = it.next() {
        let arg = it.next().unwrap_or(0);
        match op % 5 {
            0 => {
                let n = usize::from(arg % 12);
                let mut set = Vec::with_capacity(n);
                for _ in 0..n {
                    let id = it.next().unwrap_or(0);
                    let node = it.next().unwrap_or(5);
                    set.push(config(id, node));
                }
                let out = d.set_configs(now, set);
                assert!(out.dropped_by_limit <= n);
            }
            1 | 2 => {
                let name = NODES[usize::from(arg % 4)];
                let fresh = op % 5 == 2;
                let current = d.cluster_configs(name).map(|c| c.last_change);
                let stamp = if fresh { current.unwrap_or(0) } else { i64::from(arg) };
                let up_to_date = d.heartbeat(name, now, stamp);
                if fresh && current.is_some() {
                    // A known node sending back its own stamp is up to date.
                    assert!(up_to_date, "{name} with its current last_change");
                }
                if d.warming_up(now) {
                    assert!(up_to_date, "warming up: every node is up to date");
                }
                live.insert(name, now);
            }
            3 => {
                now = now.saturating_add(Duration::from_secs(u64::from(arg)));
            }
            _ => {
                let out = d.tick(now);
                for name in &out.expired {
                    let seen = live.remove(name.as_str()).expect("expired node was live");
                    assert!(now.saturating_since(seen) > expiry);
                }
            }
        }
        // Invariants.
        let stats = d.stats();
        assert!(stats.cluster_checks + stats.endpoints_checks <= max_configs);
        let mut served: HashSet<u64> = HashSet::new();
        let mut on_nodes = 0;
        for view in d.nodes() {
            let cc = d.cluster_configs(&view.name).expect("listed node is known");
            assert_eq!(cc.configs.len(), view.cluster_checks);
            for c in cc.configs {
                assert!(c.node.is_none(), "a node-bound config among cluster checks");
                let dg = config_digest(c);
                assert!(served.insert(dg), "cluster check {} on two nodes", c.id);
                assert_eq!(d.node_of(dg), Some(view.name.as_str()));
                on_nodes += 1;
            }
        }
        for c in d.dangling() {
            assert!(d.node_of(config_digest(c)).is_none());
        }
        assert_eq!(on_nodes + stats.dangling, stats.cluster_checks);
        assert_eq!(stats.nodes, live.len());
        if !d.warming_up(now) && stats.nodes > 0 && matches!(op % 5, 0 | 4) {
            assert_eq!(stats.dangling, 0, "dangling checks with live nodes after warm-up");
        }
        let mut endpoints = 0;
        for name in NODES {
            let ec = d.endpoints_configs(name);
            for c in ec.configs {
                assert_eq!(c.node.as_deref(), Some(name), "endpoints check on another node");
                endpoints += 1;
            }
        }
        assert_eq!(endpoints, stats.endpoints_checks);
    }
});
