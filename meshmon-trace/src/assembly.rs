//! Trace assembly: chunks of one trace arriving in different payloads (one per process,
//! one per flush) are grouped by 128-bit trace id and completed after an inactivity
//! timeout. Memory is bounded by a span budget: when it is exceeded the least recently
//! updated traces are completed early and counted.
//!
//! ```
//! use std::time::Duration;
//! use meshmon_core::Timestamp;
//! use meshmon_trace::assembly::{AssemblerConfig, TraceAssembler};
//! use meshmon_trace::sampler::Decision;
//! use meshmon_trace::Span;
//!
//! let config = AssemblerConfig::default().with_inactivity_timeout(Duration::from_secs(1))?;
//! let mut a = TraceAssembler::new(config);
//! let s = |id, parent| Span { trace_id: 9, span_id: id, parent_id: parent, ..Span::default() };
//! a.add(vec![s(1, 0)], Decision::KeepPriority, Timestamp::from_secs(10));
//! a.add(vec![s(2, 1)], Decision::KeepPriority, Timestamp::from_millis(10_500)); // another process, later
//! assert!(a.flush(Timestamp::from_millis(11_000)).is_empty()); // still active
//! let done = a.flush(Timestamp::from_secs(12));
//! assert_eq!(done.len(), 1);
//! assert_eq!(done[0].spans.len(), 2);
//! assert!(done[0].decision.keep());
//! # Ok::<(), meshmon_trace::assembly::AssemblerConfigError>(())
//! ```

use std::collections::VecDeque;
use std::time::Duration;

use hashbrown::HashMap;
use meshmon_core::Timestamp;

use crate::receiver::KeptChunk;
use crate::sampler::Decision;
use crate::span::OwnedSpan;

/// Why an [`AssemblerConfig`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AssemblerConfigError {
    /// The inactivity timeout is zero or longer than a day.
    #[error("inactivity timeout {0:?} is outside (0, 1 day]")]
    Timeout(Duration),
    /// A span bound is zero.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
}

/// Configuration of the [`TraceAssembler`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct AssemblerConfig {
    /// A trace is complete when no span arrived for this long; default 10 s.
    pub inactivity_timeout: Duration,
    /// Most spans held; beyond it the oldest traces are completed early. Default 1 M.
    pub max_spans: usize,
    /// Most spans in one trace; further spans are dropped and counted. Default 100 k.
    pub max_spans_per_trace: usize,
}

impl Default for AssemblerConfig {
    fn default() -> Self {
        AssemblerConfig {
            inactivity_timeout: Duration::from_secs(10),
            max_spans: 1_000_000,
            max_spans_per_trace: 100_000,
        }
    }
}

impl AssemblerConfig {
    /// Checks the bounds: timeout in (0, 1 day], span bounds ≥ 1.
    pub fn validate(&self) -> Result<(), AssemblerConfigError> {
        if self.inactivity_timeout.is_zero()
            || self.inactivity_timeout > Duration::from_secs(86_400)
        {
            return Err(AssemblerConfigError::Timeout(self.inactivity_timeout));
        }
        for (name, v) in [
            ("max_spans", self.max_spans),
            ("max_spans_per_trace", self.max_spans_per_trace),
        ] {
            if v == 0 {
                return Err(AssemblerConfigError::Zero(name));
            }
        }
        Ok(())
    }

    /// The configuration with another inactivity timeout (validated).
    pub fn with_inactivity_timeout(mut self, t: Duration) -> Result<Self, AssemblerConfigError> {
        self.inactivity_timeout = t;
        self.validate()?;
        Ok(self)
    }

    /// The configuration with other span bounds (validated).
    pub fn with_max_spans(
        mut self,
        max_spans: usize,
        max_spans_per_trace: usize,
    ) -> Result<Self, AssemblerConfigError> {
        self.max_spans = max_spans;
        self.max_spans_per_trace = max_spans_per_trace;
        self.validate()?;
        Ok(self)
    }

    fn timeout_ns(&self) -> i64 {
        i64::try_from(self.inactivity_timeout.as_nanos()).unwrap_or(i64::MAX)
    }
}

/// An assembled trace.
#[derive(Debug, Clone)]
pub struct AssembledTrace {
    /// The 128-bit trace id.
    pub trace_id: u128,
    /// All spans received for it.
    pub spans: Vec<OwnedSpan>,
    /// The head-sampling decision: the first keep decision of its chunks, else
    /// [`Decision::Drop`].
    pub decision: Decision,
    /// True when it was completed early because of the memory bound.
    pub evicted: bool,
}

#[derive(Debug)]
struct Pending {
    spans: Vec<OwnedSpan>,
    decision: Decision,
    last_seen: i64,
}

/// Counters of the assembler.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AssemblerStats {
    /// Traces completed by inactivity.
    pub traces_completed: u64,
    /// Traces completed early to stay under `max_spans`.
    pub traces_evicted: u64,
    /// Spans dropped over `max_spans_per_trace`.
    pub spans_dropped: u64,
}

/// Groups spans into traces.
#[derive(Debug)]
pub struct TraceAssembler {
    /// The configuration.
    pub config: AssemblerConfig,
    pending: HashMap<u128, Pending>,
    /// (last_seen, trace id) in update order; stale entries are skipped lazily.
    order: VecDeque<(i64, u128)>,
    spans_held: usize,
    /// Counters.
    pub stats: AssemblerStats,
}

/// The 128-bit id of a chunk: the low half shared by its spans, the high half from any span
/// that carries it (tracers put `_dd.p.tid` on the chunk's first span only).
pub fn chunk_trace_id(spans: &[OwnedSpan]) -> u128 {
    let low = spans.first().map_or(0, |s| s.trace_id);
    let high = spans
        .iter()
        .map(|s| s.trace_id_high)
        .find(|&h| h != 0)
        .unwrap_or(0);
    (u128::from(high) << 64) | u128::from(low)
}

impl TraceAssembler {
    /// An empty assembler. The configuration's constructors validate it; an unvalidated
    /// zero bound behaves as 1.
    pub fn new(mut config: AssemblerConfig) -> Self {
        config.max_spans = config.max_spans.max(1);
        config.max_spans_per_trace = config.max_spans_per_trace.max(1);
        TraceAssembler {
            config,
            pending: HashMap::new(),
            order: VecDeque::new(),
            spans_held: 0,
            stats: AssemblerStats::default(),
        }
    }

    /// Spans currently held.
    pub fn spans_held(&self) -> usize {
        self.spans_held
    }

    /// Traces currently held.
    pub fn traces_held(&self) -> usize {
        self.pending.len()
    }

    /// Adds a kept chunk from the receiver (see [`TraceAssembler::add`]).
    pub fn add_kept(&mut self, kept: KeptChunk<'static>, now: Timestamp) -> Vec<AssembledTrace> {
        self.add(kept.chunk.spans, kept.decision, now)
    }

    /// Adds a chunk (spans of one trace) received at `now`; `decision` is its
    /// head-sampling decision. Returns traces completed early to respect `max_spans`.
    pub fn add(
        &mut self,
        spans: Vec<OwnedSpan>,
        decision: Decision,
        now: Timestamp,
    ) -> Vec<AssembledTrace> {
        if spans.is_empty() {
            return Vec::new();
        }
        let id = chunk_trace_id(&spans);
        let t = now.as_nanos();
        let max_per = self.config.max_spans_per_trace;
        let p = self.pending.entry(id).or_insert_with(|| Pending {
            spans: Vec::new(),
            decision: Decision::Drop,
            last_seen: t,
        });
        if !p.decision.keep() {
            p.decision = decision;
        }
        p.last_seen = t;
        let room = max_per.saturating_sub(p.spans.len());
        let n = spans.len().min(room);
        self.stats.spans_dropped += (spans.len() - n) as u64;
        let high = (id >> 64) as u64;
        p.spans.extend(spans.into_iter().take(n).map(|mut s| {
            if s.trace_id_high == 0 {
                s.trace_id_high = high;
            }
            s
        }));
        self.spans_held += n;
        self.order.push_back((t, id));
        let mut evicted = Vec::new();
        while self.spans_held > self.config.max_spans {
            match self.pop_oldest(None) {
                Some(mut tr) => {
                    tr.evicted = true;
                    self.stats.traces_evicted += 1;
                    evicted.push(tr);
                }
                None => break,
            }
        }
        evicted
    }

    fn pop_oldest(&mut self, older_than: Option<i64>) -> Option<AssembledTrace> {
        while let Some(&(t, id)) = self.order.front() {
            if older_than.is_some_and(|c| t > c) {
                return None;
            }
            self.order.pop_front();
            let current = self.pending.get(&id).is_some_and(|p| p.last_seen == t);
            if !current {
                continue;
            }
            let p = self.pending.remove(&id)?;
            self.spans_held -= p.spans.len();
            return Some(AssembledTrace {
                trace_id: id,
                spans: p.spans,
                decision: p.decision,
                evicted: false,
            });
        }
        None
    }

    /// Completes traces with no span for `inactivity_timeout` before `now`.
    pub fn flush(&mut self, now: Timestamp) -> Vec<AssembledTrace> {
        let cutoff = now.as_nanos().saturating_sub(self.config.timeout_ns());
        let mut out = Vec::new();
        while let Some(tr) = self.pop_oldest(Some(cutoff)) {
            self.stats.traces_completed += 1;
            out.push(tr);
        }
        out
    }

    /// Completes every trace (shutdown).
    pub fn flush_all(&mut self) -> Vec<AssembledTrace> {
        let mut out = Vec::new();
        while let Some(tr) = self.pop_oldest(None) {
            self.stats.traces_completed += 1;
            out.push(tr);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::Span;

    fn span(t: u64, id: u64) -> OwnedSpan {
        Span {
            trace_id: t,
            span_id: id,
            ..Span::default()
        }
    }

    #[test]
    fn memory_bound_evicts_oldest_and_counts() {
        let mut a = TraceAssembler::new(AssemblerConfig::default().with_max_spans(4, 100).unwrap());
        assert!(
            a.add(vec![span(1, 1), span(1, 2)], Decision::Drop, Timestamp(1))
                .is_empty()
        );
        assert!(
            a.add(
                vec![span(2, 1), span(2, 2)],
                Decision::KeepError,
                Timestamp(2)
            )
            .is_empty()
        );
        // Trace 1 is touched again: trace 2 is now the least recently updated and goes.
        let ev = a.add(vec![span(1, 3)], Decision::Drop, Timestamp(3));
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].trace_id, 2);
        assert!(ev[0].evicted);
        assert_eq!(ev[0].decision, Decision::KeepError);
        assert!(AssemblerConfig::default().with_max_spans(0, 1).is_err());
        assert!(
            AssemblerConfig::default()
                .with_inactivity_timeout(Duration::ZERO)
                .is_err()
        );
        assert_eq!(a.stats.traces_evicted, 1);
        assert_eq!(a.spans_held(), 3);
        let rest = a.flush_all();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].spans.len(), 3);
    }

    #[test]
    fn high_bits_propagate_to_all_spans() {
        let mut a = TraceAssembler::new(AssemblerConfig::default());
        let mut root = span(5, 1);
        root.trace_id_high = 0xabc;
        a.add(vec![root, span(5, 2)], Decision::KeepPriority, Timestamp(0));
        let done = a.flush_all();
        assert_eq!(done[0].trace_id, (0xabc_u128 << 64) | 5);
        assert!(done[0].spans.iter().all(|s| s.trace_id_high == 0xabc));
    }
}
