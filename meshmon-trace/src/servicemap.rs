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

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use crate::span::Span;
use crate::stats::{latency_histogram, record_latency};

/// Calls, errors and latency of one edge.
#[derive(Debug, Clone)]
pub struct EdgeStats {
    /// Calls.
    pub calls: u64,
    /// Calls whose callee span (or client span, for leaves) was an error.
    pub errors: u64,
    /// Latency, ns.
    pub latency: Histogram<u64>,
}

/// Directed edges between services.
#[derive(Debug, Default, Clone)]
pub struct ServiceMap {
    /// Edges keyed by (caller, callee).
    pub edges: BTreeMap<(String, String), EdgeStats>,
    /// Traces added.
    pub traces: u64,
    /// Most edges kept; further edges are counted in `edges_dropped`.
    pub max_edges: Option<usize>,
    /// Edge observations dropped because of `max_edges`.
    pub edges_dropped: u64,
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
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    fn add_edge(&mut self, from: &str, to: &str, error: bool, duration: i64) {
        if from == to || from.is_empty() || to.is_empty() {
            return;
        }
        let key = (from.to_string(), to.to_string());
        if !self.edges.contains_key(&key) && self.max_edges.is_some_and(|m| self.edges.len() >= m) {
            self.edges_dropped += 1;
            return;
        }
        let e = self.edges.entry(key).or_insert_with(|| EdgeStats {
            calls: 0,
            errors: 0,
            latency: latency_histogram(),
        });
        e.calls += 1;
        e.errors += u64::from(error);
        record_latency(&mut e.latency, duration);
    }

    /// Adds the edges of one whole trace.
    pub fn add_trace(&mut self, spans: &[Span<'_>]) {
        self.traces += 1;
        // span_id → indices (Zipkin shared spans give two spans one id).
        let mut by_id: hashbrown::HashMap<u64, smallvec_like::Two> =
            hashbrown::HashMap::with_capacity(spans.len());
        for (i, s) in spans.iter().enumerate() {
            by_id.entry(s.span_id).or_default().push(i);
        }
        // One scan of each span's tags for its kind.
        let kinds: Vec<&str> = spans.iter().map(Span::kind).collect();
        let mut has_remote_child = vec![false; spans.len()];
        for (i, s) in spans.iter().enumerate() {
            let kind = kinds[i];
            // Shared span: SERVER with the same id as a CLIENT of the trace.
            let shared_client = if kind == "server" {
                by_id
                    .get(&s.span_id)
                    .and_then(|ix| ix.iter().find(|&j| j != i && kinds[j] == "client"))
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
                    .or_else(|| ix.iter().find(|&j| kinds[j] == "server"))
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
            if has_remote_child[i] || kinds[i] != "client" {
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
    }

    /// A plain-text table: caller → callee, calls, errors, p50/p99 (ms).
    pub fn render(&self) -> String {
        let mut out = format!(
            "{:<28}    {:<28} {:>8} {:>7} {:>9} {:>9}\n",
            "caller", "callee", "calls", "errors", "p50_ms", "p99_ms"
        );
        for ((a, b), e) in &self.edges {
            out.push_str(&format!(
                "{:<28} -> {:<28} {:>8} {:>7} {:>9.3} {:>9.3}\n",
                a,
                b,
                e.calls,
                e.errors,
                e.latency.value_at_quantile(0.5) as f64 / 1e6,
                e.latency.value_at_quantile(0.99) as f64 / 1e6
            ));
        }
        out
    }
}

mod smallvec_like {
    /// Up to two indices inline (span ids are unique except for Zipkin shared spans),
    /// more on the heap.
    #[derive(Default, Debug)]
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
        let e = |a: &str, b: &str| {
            m.edges
                .get(&(a.to_string(), b.to_string()))
                .map(|e| (e.calls, e.errors))
        };
        assert_eq!(e("a", "b"), Some((2, 0)));
        assert_eq!(e("a", "ratings.bookinfo"), Some((1, 1)));
        assert_eq!(m.edges.len(), 2);
    }
}
