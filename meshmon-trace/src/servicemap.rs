//! The service map: directed edges between services with calls, errors and latency,
//! built from whole traces.
//!
//! An edge `A → B` is counted when, in one trace:
//! - a span of service `B` has a parent span of service `A` (parent → child, services differ);
//! - a Zipkin SERVER span shares its id with a CLIENT span (`shared`, B3 propagation as
//!   Envoy's Zipkin tracer does): the CLIENT's service calls the SERVER's;
//! - a client span of `A` has no child span in another service (the callee is not traced):
//!   the callee is `peer.service`, else the host of an Envoy `upstream_cluster` of the form
//!   `outbound|port|subset|host`, without `.svc.cluster.local`.
//!
//! The latency of an edge is the callee's span duration (the client span's for leaves).

use hashbrown::{Equivalent, HashMap};

use crate::span::Span;
use crate::stats::LatencyHistogram;

/// Edges a [`ServiceMap`] holds by default; observations of further edges are counted in
/// [`ServiceMap::edges_dropped`].
pub const DEFAULT_MAX_EDGES: usize = 10_000;

/// Calls, errors and latency of one edge.
#[derive(Debug, Clone, Default)]
pub struct EdgeStats {
    /// Calls.
    pub calls: u64,
    /// Calls whose callee span (or client span, for leaves) was an error.
    pub errors: u64,
    /// Latency.
    pub latency: LatencyHistogram,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct EdgeKey {
    caller: String,
    callee: String,
}

#[derive(Hash)]
struct EdgeRef<'a> {
    caller: &'a str,
    callee: &'a str,
}

impl Equivalent<EdgeKey> for EdgeRef<'_> {
    fn equivalent(&self, k: &EdgeKey) -> bool {
        self.caller == k.caller && self.callee == k.callee
    }
}

/// One edge of a [`ServiceMap`] snapshot.
#[derive(Debug, Clone, Copy)]
pub struct Edge<'m> {
    /// Calling service.
    pub caller: &'m str,
    /// Called service.
    pub callee: &'m str,
    /// Its counts.
    pub stats: &'m EdgeStats,
}

/// Span kinds the map tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Server,
    Client,
    Other,
}

/// Directed edges between services, at most [`ServiceMap::max_edges`] of them.
#[derive(Debug, Clone)]
pub struct ServiceMap {
    edges: HashMap<EdgeKey, EdgeStats>,
    max_edges: usize,
    /// Traces (or chunks) added.
    pub traces: u64,
    /// Edge observations dropped because the map already held `max_edges` edges.
    pub edges_dropped: u64,
    // Scratch reused across traces, so adding one allocates nothing once warm.
    by_id: HashMap<u64, smallvec_like::Two>,
    kinds: Vec<Kind>,
    has_remote_child: Vec<bool>,
}

impl Default for ServiceMap {
    fn default() -> Self {
        Self::with_max_edges(DEFAULT_MAX_EDGES)
    }
}

/// The callee named by an Envoy `upstream_cluster` (`outbound|9080||reviews.bookinfo.svc.cluster.local`
/// → `reviews.bookinfo`); `None` for inbound clusters.
pub fn upstream_service(cluster: &str) -> Option<&str> {
    let mut parts = cluster.split('|');
    if parts.next()? != "outbound" {
        return None;
    }
    let host = parts.nth(2)?;
    let host = host.strip_suffix(".svc.cluster.local").unwrap_or(host);
    (!host.is_empty()).then_some(host)
}

impl ServiceMap {
    /// An empty map holding at most [`DEFAULT_MAX_EDGES`] edges.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty map holding at most `max_edges` edges.
    pub fn with_max_edges(max_edges: usize) -> Self {
        ServiceMap {
            edges: HashMap::new(),
            max_edges,
            traces: 0,
            edges_dropped: 0,
            by_id: HashMap::new(),
            kinds: Vec::new(),
            has_remote_child: Vec::new(),
        }
    }

    /// Most edges held.
    pub fn max_edges(&self) -> usize {
        self.max_edges
    }

    /// Number of edges.
    pub fn len(&self) -> usize {
        self.edges.len()
    }

    /// True when no edge was seen.
    pub fn is_empty(&self) -> bool {
        self.edges.is_empty()
    }

    /// The edge `caller → callee`, if seen.
    pub fn edge(&self, caller: &str, callee: &str) -> Option<&EdgeStats> {
        self.edges.get(&EdgeRef { caller, callee })
    }

    /// Every edge, sorted by (caller, callee).
    pub fn edges(&self) -> Vec<Edge<'_>> {
        let mut v: Vec<Edge<'_>> = self
            .edges
            .iter()
            .map(|(k, stats)| Edge {
                caller: &k.caller,
                callee: &k.callee,
                stats,
            })
            .collect();
        v.sort_by(|a, b| (a.caller, a.callee).cmp(&(b.caller, b.callee)));
        v
    }

    /// Adds another map's edges (within this map's bound).
    pub fn merge(&mut self, other: &ServiceMap) {
        self.traces += other.traces;
        self.edges_dropped += other.edges_dropped;
        for (k, e) in &other.edges {
            if let Some(mine) = self.slot(&k.caller, &k.callee) {
                mine.calls += e.calls;
                mine.errors += e.errors;
                mine.latency.merge(&e.latency);
            }
        }
    }

    fn slot(&mut self, from: &str, to: &str) -> Option<&mut EdgeStats> {
        let r = EdgeRef {
            caller: from,
            callee: to,
        };
        if !self.edges.contains_key(&r) {
            if self.edges.len() >= self.max_edges {
                self.edges_dropped += 1;
                return None;
            }
            self.edges.insert(
                EdgeKey {
                    caller: from.to_string(),
                    callee: to.to_string(),
                },
                EdgeStats::default(),
            );
        }
        self.edges.get_mut(&r)
    }

    fn add_edge(&mut self, from: &str, to: &str, error: bool, duration: i64) {
        if from == to || from.is_empty() || to.is_empty() {
            return;
        }
        if let Some(e) = self.slot(from, to) {
            e.calls += 1;
            e.errors += u64::from(error);
            e.latency.record_nanos(duration);
        }
    }

    /// Adds the edges of one trace, or of one chunk of it: edges whose two ends are in
    /// `spans` (and leaf client spans) are counted.
    pub fn add_trace(&mut self, spans: &[Span<'_>]) {
        self.traces += 1;
        // span_id → indices (Zipkin shared spans give two spans one id).
        let mut by_id = std::mem::take(&mut self.by_id);
        let mut kinds = std::mem::take(&mut self.kinds);
        let mut has_remote_child = std::mem::take(&mut self.has_remote_child);
        by_id.clear();
        kinds.clear();
        has_remote_child.clear();
        by_id.reserve(spans.len());
        for (i, s) in spans.iter().enumerate() {
            by_id.entry(s.span_id).or_default().push(i);
        }
        // One scan of each span's tags for its kind.
        kinds.extend(spans.iter().map(|s| match s.kind() {
            "server" => Kind::Server,
            "client" => Kind::Client,
            _ => Kind::Other,
        }));
        has_remote_child.resize(spans.len(), false);
        for (i, s) in spans.iter().enumerate() {
            // Shared span: SERVER with the same id as a CLIENT of the trace.
            let shared_client = if kinds[i] == Kind::Server {
                by_id
                    .get(&s.span_id)
                    .and_then(|ix| ix.iter().find(|&j| j != i && kinds[j] == Kind::Client))
            } else {
                None
            };
            let parent = shared_client.or_else(|| {
                if s.parent_id == 0 {
                    return None;
                }
                let ix = by_id.get(&s.parent_id)?;
                // Children of a shared id hang under the span of their own service.
                ix.iter()
                    .find(|&j| spans[j].service == s.service)
                    .or_else(|| ix.iter().find(|&j| kinds[j] == Kind::Server))
                    .or_else(|| ix.iter().next())
            });
            if let Some(p) = parent
                && p != i
                && spans[p].service != s.service
            {
                has_remote_child[p] = true;
                self.add_edge(&spans[p].service, &s.service, s.is_error(), s.duration);
            }
        }
        for (i, s) in spans.iter().enumerate() {
            if has_remote_child[i] || kinds[i] != Kind::Client {
                continue;
            }
            let callee = s
                .meta("peer.service")
                .filter(|p| !p.is_empty())
                .or_else(|| s.meta("upstream_cluster").and_then(upstream_service));
            if let Some(callee) = callee {
                self.add_edge(&s.service, callee, s.is_error(), s.duration);
            }
        }
        self.by_id = by_id;
        self.kinds = kinds;
        self.has_remote_child = has_remote_child;
    }

    /// A plain-text table: caller → callee, calls, errors, p50/p99 (ms).
    pub fn render(&self) -> String {
        let mut out = format!(
            "{:<28}    {:<28} {:>8} {:>7} {:>9} {:>9}\n",
            "caller", "callee", "calls", "errors", "p50_ms", "p99_ms"
        );
        for e in self.edges() {
            out.push_str(&format!(
                "{:<28} -> {:<28} {:>8} {:>7} {:>9.3} {:>9.3}\n",
                e.caller,
                e.callee,
                e.stats.calls,
                e.stats.errors,
                e.stats.latency.quantile(0.5).as_secs_f64() * 1e3,
                e.stats.latency.quantile(0.99).as_secs_f64() * 1e3
            ));
        }
        out
    }
}

mod smallvec_like {
    /// Up to two indices inline (span ids are unique except for Zipkin shared spans),
    /// more on the heap.
    #[derive(Default, Debug, Clone)]
    pub(super) struct Two {
        a: Option<usize>,
        b: Option<usize>,
        rest: Vec<usize>,
    }

    impl Two {
        pub(super) fn push(&mut self, i: usize) {
            if self.a.is_none() {
                self.a = Some(i);
            } else if self.b.is_none() {
                self.b = Some(i);
            } else {
                self.rest.push(i);
            }
        }

        pub(super) fn iter(&self) -> impl Iterator<Item = usize> + '_ {
            self.a
                .into_iter()
                .chain(self.b)
                .chain(self.rest.iter().copied())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(svc: &'static str, id: u64, parent: u64, kind: &'static str) -> Span<'static> {
        let mut s = Span {
            service: svc.into(),
            trace_id: 1,
            span_id: id,
            parent_id: parent,
            duration: 1000,
            ..Span::default()
        };
        s.set_meta("span.kind", kind);
        s
    }

    #[test]
    fn parent_child_shared_and_leaf_edges() {
        let mut m = ServiceMap::new();
        // Datadog style: a -> b by parent link.
        m.add_trace(&[
            span("a", 1, 0, "server"),
            span("a", 2, 1, "client"),
            span("b", 3, 2, "server"),
        ]);
        // Zipkin shared: b's SERVER span reuses a's CLIENT id and its parent.
        m.add_trace(&[
            span("a", 1, 0, "server"),
            span("a", 2, 1, "client"),
            span("b", 2, 1, "server"),
            span("b", 4, 2, "internal"),
        ]);
        // Envoy leaf: callee untraced.
        let mut leaf = span("a", 2, 1, "client");
        leaf.set_meta(
            "upstream_cluster",
            "outbound|9080||ratings.bookinfo.svc.cluster.local",
        );
        leaf.error = 1;
        m.add_trace(&[span("a", 1, 0, "server"), leaf]);
        let e = |a: &str, b: &str| m.edge(a, b).map(|e| (e.calls, e.errors));
        assert_eq!(e("a", "b"), Some((2, 0)));
        assert_eq!(e("a", "ratings.bookinfo"), Some((1, 1)));
        assert_eq!(m.len(), 2);
        // The bound: a map of one edge counts the second edge's observations.
        let mut small = ServiceMap::with_max_edges(1);
        small.add_trace(&[span("a", 1, 0, "server"), span("b", 2, 1, "server")]);
        small.add_trace(&[span("a", 1, 0, "server"), span("c", 2, 1, "server")]);
        small.add_trace(&[span("a", 1, 0, "server"), span("b", 2, 1, "server")]);
        assert_eq!((small.len(), small.edges_dropped), (1, 1));
        assert_eq!(small.edge("a", "b").map(|e| e.calls), Some(2));
    }
}
