//! Sampling, following the Datadog Agent's `pkg/trace/sampler` and the tracers' rate
//! sampler. Every sampler takes the current time as an argument; decisions are
//! deterministic for given inputs.
//!
//! - [`sample_by_rate`]: the Knuth-hash rate sampler every Datadog tracer and the Agent
//!   share: keep when `trace_id_low64 × 1111111111111111111 mod 2^64 < rate × 2^64`.
//! - [`PrioritySampler`]: respects the client's `_sampling_priority_v1` and computes
//!   per-`service,env` rates towards a target traces/s, published as `rate_by_service`.
//! - [`ScoreSampler`] as the errors sampler (signature of root + error spans).
//! - [`RareSampler`]: keeps the first trace of each unseen signature (off by default).
//! - [`ProbabilisticSampler`]: a hash of the 128-bit trace id against a percentage.
//! - [`TailSampler`]: over assembled traces: keep errors, keep slow traces, rate-limit the rest.
//! - [`AgentSampler`]: the Agent's combination of the above for one chunk.
//!
//! ```
//! use meshmon_trace::sampler::sample_by_rate;
//! // Decisions the Python tracer made at rate 0.25 (captured `_dd.p.dm=-1` payloads):
//! assert!(sample_by_rate(16244018239098617010, 0.25));   // priority 1
//! assert!(!sample_by_rate(9942679174530495056, 0.25));   // priority 0
//! assert!(sample_by_rate(42, 1.0));
//! ```

use hashbrown::HashMap;
use meshmon_core::Timestamp;

use crate::span::{Span, TraceChunk, root_index};

/// Knuth's multiplicative hashing factor used by Datadog's rate sampler.
pub const KNUTH_FACTOR: u64 = 1_111_111_111_111_111_111;

/// Sampling priority: the user asked to drop the trace.
pub const PRIORITY_USER_DROP: i32 = -1;
/// Sampling priority: the sampler dropped the trace.
pub const PRIORITY_AUTO_DROP: i32 = 0;
/// Sampling priority: the sampler kept the trace.
pub const PRIORITY_AUTO_KEEP: i32 = 1;
/// Sampling priority: the user asked to keep the trace.
pub const PRIORITY_USER_KEEP: i32 = 2;

/// Datadog's deterministic rate sampler: keep when
/// `trace_id × 1111111111111111111 (mod 2^64) < rate × 2^64`; `rate ≥ 1` keeps everything
/// and `rate ≤ 0` nothing. `trace_id` is the low 64 bits of the trace id.
#[inline]
pub fn sample_by_rate(trace_id: u64, rate: f64) -> bool {
    if rate >= 1.0 {
        return true;
    }
    if rate <= 0.0 || rate.is_nan() {
        return false;
    }
    // rate × 2^64 as Go's uint64(rate * math.MaxUint64) computes it (the float rounds to 2^64).
    let threshold = (rate * 18_446_744_073_709_551_616.0) as u64;
    trace_id.wrapping_mul(KNUTH_FACTOR) < threshold
}

/// FNV-1a 64-bit over bytes; the signature hash.
fn fnv64(h: u64, bytes: &[u8]) -> u64 {
    let mut h = h;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn hash_fields(fields: &[&str]) -> u64 {
    let mut h = FNV_OFFSET;
    for f in fields {
        h = fnv64(h, f.as_bytes());
        h = fnv64(h, &[0]);
    }
    h
}

/// Length of a counting bucket, seconds (the Agent's `bucketDuration`).
pub const BUCKET_SECS: i64 = 5;
/// Buckets kept per signature (the Agent's `numBuckets`).
pub const NUM_BUCKETS: usize = 6;
/// Largest factor by which a rate may grow from one period to the next.
pub const MAX_RATE_INCREASE: f64 = 1.2;

/// The Agent's core sampler: counts traces per signature in 5-second buckets and derives
/// one rate per signature so that the kept traffic approaches `target_tps`, shared fairly
/// between signatures; rates grow at most ×1.2 per period.
#[derive(Debug, Clone)]
pub struct RateByTps {
    /// Target kept traces per second across all signatures.
    pub target_tps: f64,
    seen: HashMap<u64, [f64; NUM_BUCKETS]>,
    rates: HashMap<u64, f64>,
    last_bucket: i64,
    /// Rate for signatures not measured yet.
    pub default_rate: f64,
}

impl RateByTps {
    /// A sampler aiming at `target_tps`.
    pub fn new(target_tps: f64) -> Self {
        RateByTps {
            target_tps,
            seen: HashMap::new(),
            rates: HashMap::new(),
            last_bucket: i64::MIN,
            default_rate: 1.0,
        }
    }

    /// Counts `weight` traces of `sig` at `now`; returns the signature's current rate.
    pub fn count(&mut self, now: Timestamp, sig: u64, weight: f64) -> f64 {
        let bucket = now.as_nanos().div_euclid(BUCKET_SECS * 1_000_000_000);
        if bucket > self.last_bucket {
            if self.last_bucket != i64::MIN {
                self.update_rates(bucket);
            }
            self.last_bucket = bucket;
        }
        let slot = bucket.rem_euclid(NUM_BUCKETS as i64) as usize;
        self.seen.entry(sig).or_insert([0.0; NUM_BUCKETS])[slot] += weight;
        self.rate(sig)
    }

    /// The current rate of a signature.
    pub fn rate(&self, sig: u64) -> f64 {
        self.rates.get(&sig).copied().unwrap_or(self.default_rate)
    }

    /// Rates per signature.
    pub fn rates(&self) -> impl Iterator<Item = (u64, f64)> + '_ {
        self.rates.iter().map(|(k, v)| (*k, *v))
    }

    fn update_rates(&mut self, new_bucket: i64) {
        // Zero the buckets skipped since the last one (including the new one).
        let gap = (new_bucket - self.last_bucket).min(NUM_BUCKETS as i64);
        for buckets in self.seen.values_mut() {
            for k in 1..=gap {
                let slot = (self.last_bucket + k).rem_euclid(NUM_BUCKETS as i64) as usize;
                buckets[slot] = 0.0;
            }
        }
        self.seen.retain(|_, b| b.iter().any(|&c| c > 0.0));
        // Per-signature TPS: the busiest complete bucket.
        let mut tps: Vec<(u64, f64)> = self
            .seen
            .iter()
            .map(|(sig, b)| {
                (
                    *sig,
                    b.iter().fold(0.0f64, |m, &c| m.max(c)) / BUCKET_SECS as f64,
                )
            })
            .collect();
        tps.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        // Fair share: small signatures keep all they send, the rest split what is left.
        let mut budget = self.target_tps;
        let mut left = tps.len();
        let mut new_rates = HashMap::with_capacity(tps.len());
        for (sig, t) in tps {
            let share = budget / left as f64;
            let mut rate = if t <= 0.0 { 1.0 } else { (share / t).min(1.0) };
            if let Some(&prev) = self.rates.get(&sig)
                && prev > 0.0
                && rate > prev * MAX_RATE_INCREASE
            {
                rate = prev * MAX_RATE_INCREASE;
            }
            budget = (budget - t.min(share)).max(0.0);
            left -= 1;
            new_rates.insert(sig, rate);
        }
        self.rates = new_rates;
    }
}

/// Signature of a service in an environment, the key of `rate_by_service`.
pub fn service_signature(service: &str, env: &str) -> u64 {
    hash_fields(&[service, env])
}

/// The Agent's priority sampler: keeps what the client decided (`priority > 0`) and
/// measures auto-decided traces (priority 0 or 1) per `service,env` to compute the rates
/// tracers should apply, published by [`PrioritySampler::rate_by_service`]. User decisions
/// (−1, 2) bypass the feedback loop.
#[derive(Debug, Clone)]
pub struct PrioritySampler {
    core: RateByTps,
    names: HashMap<u64, (String, String)>,
    /// A fixed rate to publish for every signature instead of the computed ones.
    pub fixed_rate: Option<f64>,
}

impl PrioritySampler {
    /// A sampler aiming at `target_tps` (the Agent's `max_traces_per_second`, default 10).
    pub fn new(target_tps: f64) -> Self {
        PrioritySampler {
            core: RateByTps::new(target_tps),
            names: HashMap::new(),
            fixed_rate: None,
        }
    }

    /// Decides a chunk with priority `priority` whose root is `root`, in `env`.
    pub fn sample(&mut self, now: Timestamp, priority: i32, root: &Span<'_>, env: &str) -> bool {
        let keep = priority > 0;
        if !(PRIORITY_AUTO_DROP..=PRIORITY_AUTO_KEEP).contains(&priority) {
            return keep;
        }
        let sig = service_signature(&root.service, env);
        if !self.names.contains_key(&sig) {
            self.names
                .insert(sig, (root.service.to_string(), env.to_string()));
        }
        // A trace kept at rate r stands for 1/r traces.
        let weight = match root
            .metric("_dd.agent_psr")
            .or_else(|| root.metric("_sample_rate"))
        {
            Some(r) if r > 0.0 && r <= 1.0 => 1.0 / r,
            _ => 1.0,
        };
        self.core.count(now, sig, weight);
        keep
    }

    /// `{"service:<s>,env:<e>": rate, …, "service:,env:": default}` in sorted order.
    pub fn rate_by_service(&self) -> Vec<(String, f64)> {
        let mut v: Vec<(String, f64)> = self
            .names
            .iter()
            .map(|(sig, (s, e))| {
                let rate = self.fixed_rate.unwrap_or_else(|| self.core.rate(*sig));
                (format!("service:{s},env:{e}"), rate)
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v.push((
            "service:,env:".to_string(),
            self.fixed_rate.unwrap_or(self.core.default_rate),
        ));
        v
    }
}

/// A sampler keeping traces by signature towards a target TPS with the Knuth rate sampler
/// (the Agent's `ScoreSampler`, used as the errors sampler and the no-priority sampler).
#[derive(Debug, Clone)]
pub struct ScoreSampler {
    core: RateByTps,
}

impl ScoreSampler {
    /// A sampler aiming at `target_tps`.
    pub fn new(target_tps: f64) -> Self {
        ScoreSampler {
            core: RateByTps::new(target_tps),
        }
    }

    /// Counts the chunk under its signature and keeps it by rate on its trace id.
    pub fn sample(
        &mut self,
        now: Timestamp,
        spans: &[Span<'_>],
        root: &Span<'_>,
        env: &str,
    ) -> bool {
        if self.core.target_tps <= 0.0 {
            return false;
        }
        let sig = error_signature(spans, root, env);
        let rate = self.core.count(now, sig, 1.0);
        sample_by_rate(root.trace_id, rate)
    }
}

/// Signature of a trace for the errors sampler: env, root service/name/resource, and each
/// error span's service, name and `error.type` (the Agent's `computeSignatureWithRootAndEnv`).
pub fn error_signature(spans: &[Span<'_>], root: &Span<'_>, env: &str) -> u64 {
    let mut h = hash_fields(&[env, &root.service, &root.name, &root.resource]);
    let mut parts: Vec<u64> = spans
        .iter()
        .filter(|s| s.is_error())
        .map(|s| hash_fields(&[&s.service, &s.name, s.meta("error.type").unwrap_or("")]))
        .collect();
    parts.sort_unstable();
    parts.dedup();
    for p in parts {
        h = fnv64(h, &p.to_le_bytes());
    }
    h
}

/// Keeps the first trace of every signature (env, service, name, resource, error,
/// `http.status_code`, `span.kind` of top-level spans) not seen within `ttl`, at most
/// `tps` per second. Off by default, as in the Agent.
#[derive(Debug, Clone)]
pub struct RareSampler {
    /// Seconds a signature stays "seen".
    pub ttl_secs: i64,
    /// Most rare traces kept per second.
    pub tps: f64,
    seen: HashMap<u64, i64>,
    tokens: f64,
    last: i64,
    /// Most signatures remembered (oldest forgotten first when full).
    pub max_signatures: usize,
}

impl RareSampler {
    /// The Agent's defaults: TTL 5 minutes, 5 traces/s, 200 signatures per service…
    /// here 10 000 signatures in total.
    pub fn new() -> Self {
        RareSampler {
            ttl_secs: 300,
            tps: 5.0,
            seen: HashMap::new(),
            tokens: 5.0,
            last: 0,
            max_signatures: 10_000,
        }
    }

    /// True when the chunk has a top-level span of a signature not seen within the TTL.
    pub fn sample(&mut self, now: Timestamp, spans: &[Span<'_>], env: &str) -> bool {
        let t = now.as_nanos();
        self.tokens =
            (self.tokens + (t - self.last) as f64 / 1e9 * self.tps).min(self.tps.max(1.0));
        self.last = t;
        let mut rare = false;
        for s in spans
            .iter()
            .filter(|s| s.is_top_level() || s.is_measured() || s.parent_id == 0)
        {
            let sig = hash_fields(&[
                env,
                &s.service,
                &s.name,
                &s.resource,
                if s.is_error() { "1" } else { "0" },
                s.meta("http.status_code").unwrap_or(""),
                s.kind(),
            ]);
            let fresh = match self.seen.get(&sig) {
                Some(&at) => t - at > self.ttl_secs * 1_000_000_000,
                None => true,
            };
            if fresh {
                rare = true;
                if self.seen.len() >= self.max_signatures
                    && let Some((&old, _)) = self.seen.iter().min_by_key(|(_, at)| **at)
                {
                    self.seen.remove(&old);
                }
                self.seen.insert(sig, t);
            }
        }
        if rare && self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return true;
        }
        false
    }
}

impl Default for RareSampler {
    fn default() -> Self {
        Self::new()
    }
}

/// The Agent's probabilistic sampler (from the OpenTelemetry Collector's): FNV-32a of a
/// seed and the 16-byte big-endian 128-bit trace id, kept when its low 14 bits are below
/// `percentage × 2^14 / 100`. Every agent with the same seed agrees.
#[derive(Debug, Clone, Copy)]
pub struct ProbabilisticSampler {
    /// Percentage of traces kept, 0–100.
    pub percentage: f64,
    /// Hash seed.
    pub seed: u32,
}

impl ProbabilisticSampler {
    /// Decides by trace id.
    pub fn sample(&self, trace_id_128: u128) -> bool {
        let scaled = (self.percentage / 100.0 * 16384.0) as u32;
        let mut h: u32 = 0x811c_9dc5;
        let mut feed = |b: u8| {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        };
        for b in self.seed.to_le_bytes() {
            feed(b);
        }
        for b in trace_id_128.to_be_bytes() {
            feed(b);
        }
        h & 0x3fff < scaled
    }
}

/// Which sampler kept a chunk, or why it was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Decision {
    /// Kept: the client's priority was positive.
    KeepPriority,
    /// Kept by the errors sampler.
    KeepError,
    /// Kept by the rare sampler.
    KeepRare,
    /// Kept by the probabilistic sampler.
    KeepProbabilistic,
    /// Kept by the no-priority sampler (chunk without a priority).
    KeepNoPriority,
    /// Dropped by sampling.
    Drop,
}

impl Decision {
    /// True for the keep variants.
    pub fn keep(self) -> bool {
        self != Decision::Drop
    }
}

/// Why a [`SamplerConfig`] was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SamplerConfigError {
    /// A traces-per-second target is negative, NaN or infinite.
    #[error("{field} must be a finite number >= 0, got {value}")]
    Tps {
        /// The field.
        field: &'static str,
        /// Its value.
        value: f64,
    },
    /// The probabilistic percentage is outside 0–100.
    #[error("probabilistic_percentage must be within 0..=100, got {0}")]
    Percentage(f64),
    /// The fixed rate is outside 0–1.
    #[error("fixed_rate must be within 0..=1, got {0}")]
    Rate(f64),
}

/// Configuration of [`AgentSampler`], with the Agent's defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct SamplerConfig {
    /// Target TPS of the priority sampler (`max_traces_per_second`, 10).
    pub target_tps: f64,
    /// Target TPS of the errors sampler (`errors_per_second`, 10).
    pub errors_tps: f64,
    /// Enables the rare sampler (off).
    pub rare_enabled: bool,
    /// Replaces priority sampling by the probabilistic sampler at this percentage.
    pub probabilistic_percentage: Option<f64>,
    /// A fixed rate to publish in `rate_by_service` (e.g. `--rate 0.25`).
    pub fixed_rate: Option<f64>,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig {
            target_tps: 10.0,
            errors_tps: 10.0,
            rare_enabled: false,
            probabilistic_percentage: None,
            fixed_rate: None,
        }
    }
}

impl SamplerConfig {
    /// Checks every field: TPS finite and ≥ 0, percentage in 0–100, fixed rate in 0–1.
    pub fn validate(&self) -> Result<(), SamplerConfigError> {
        for (field, value) in [
            ("target_tps", self.target_tps),
            ("errors_tps", self.errors_tps),
        ] {
            if !value.is_finite() || value < 0.0 {
                return Err(SamplerConfigError::Tps { field, value });
            }
        }
        if let Some(p) = self.probabilistic_percentage
            && !(0.0..=100.0).contains(&p)
        {
            return Err(SamplerConfigError::Percentage(p));
        }
        if let Some(r) = self.fixed_rate
            && !(0.0..=1.0).contains(&r)
        {
            return Err(SamplerConfigError::Rate(r));
        }
        Ok(())
    }

    /// The configuration with a fixed `rate_by_service` rate (validated).
    pub fn with_fixed_rate(mut self, rate: Option<f64>) -> Result<Self, SamplerConfigError> {
        self.fixed_rate = rate;
        self.validate()?;
        Ok(self)
    }
}

/// The Agent's sampling of one chunk (`agent.runSamplers`): rare, then priority (or
/// probabilistic), then errors for chunks that have an error span; chunks without a
/// priority go through a score sampler.
#[derive(Debug, Clone)]
pub struct AgentSampler {
    config: SamplerConfig,
    /// The priority sampler (its rates are the `rate_by_service` reply).
    pub priority: PrioritySampler,
    errors: ScoreSampler,
    no_priority: ScoreSampler,
    rare: Option<RareSampler>,
    probabilistic: Option<ProbabilisticSampler>,
}

impl AgentSampler {
    /// Samplers built from a (validated) configuration.
    pub fn new(cfg: SamplerConfig) -> Result<Self, SamplerConfigError> {
        cfg.validate()?;
        let mut priority = PrioritySampler::new(cfg.target_tps);
        priority.fixed_rate = cfg.fixed_rate;
        Ok(AgentSampler {
            config: cfg,
            priority,
            errors: ScoreSampler::new(cfg.errors_tps),
            no_priority: ScoreSampler::new(cfg.target_tps),
            rare: cfg.rare_enabled.then(RareSampler::new),
            probabilistic: cfg
                .probabilistic_percentage
                .map(|percentage| ProbabilisticSampler {
                    percentage,
                    seed: 0,
                }),
        })
    }

    /// The configuration these samplers run with.
    pub fn config(&self) -> &SamplerConfig {
        &self.config
    }

    /// Decides a normalised chunk. `env` is the payload or span env.
    pub fn decide(&mut self, now: Timestamp, chunk: &TraceChunk<'_>, env: &str) -> Decision {
        let Some(ri) = root_index(&chunk.spans) else {
            return Decision::Drop;
        };
        let root = &chunk.spans[ri];
        let has_error = chunk.spans.iter().any(Span::is_error);
        if let Some(rare) = &mut self.rare
            && rare.sample(now, &chunk.spans, env)
        {
            return Decision::KeepRare;
        }
        if let Some(p) = &self.probabilistic {
            if chunk.priority.is_some_and(|p| p >= PRIORITY_USER_KEEP) {
                return Decision::KeepPriority;
            }
            if p.sample(root.trace_id_128()) {
                return Decision::KeepProbabilistic;
            }
        } else {
            match chunk.priority {
                Some(p) => {
                    if self.priority.sample(now, p, root, env) {
                        return Decision::KeepPriority;
                    }
                }
                None => {
                    if self.no_priority.sample(now, &chunk.spans, root, env) {
                        return Decision::KeepNoPriority;
                    }
                }
            }
        }
        if has_error && self.errors.sample(now, &chunk.spans, root, env) {
            return Decision::KeepError;
        }
        Decision::Drop
    }
}

/// Tail-sampling policy over assembled traces.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TailConfig {
    /// Keep every trace with an error span.
    pub keep_errors: bool,
    /// Keep traces whose root (or longest span) lasts at least this many nanoseconds.
    pub latency_threshold_ns: Option<i64>,
    /// Other traces kept per second (token bucket); `f64::INFINITY` keeps all.
    pub rate_limit_tps: f64,
}

impl Default for TailConfig {
    fn default() -> Self {
        TailConfig {
            keep_errors: true,
            latency_threshold_ns: None,
            rate_limit_tps: f64::INFINITY,
        }
    }
}

/// Why the tail sampler kept or dropped a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TailDecision {
    /// Kept: it has an error.
    KeepError,
    /// Kept: slower than the threshold.
    KeepSlow,
    /// Kept within the rate limit.
    KeepRate,
    /// Dropped by the rate limit.
    Drop,
}

impl TailDecision {
    /// True for the keep variants.
    pub fn keep(self) -> bool {
        self != TailDecision::Drop
    }
}

/// Tail sampling: decides whole traces after assembly.
#[derive(Debug, Clone)]
pub struct TailSampler {
    /// The policy.
    pub config: TailConfig,
    tokens: f64,
    last: Option<i64>,
}

impl TailSampler {
    /// A tail sampler with a full token bucket.
    pub fn new(config: TailConfig) -> Self {
        TailSampler {
            config,
            tokens: config.rate_limit_tps.max(1.0),
            last: None,
        }
    }

    /// Decides one assembled trace at `now`.
    pub fn decide(&mut self, now: Timestamp, spans: &[Span<'_>]) -> TailDecision {
        if self.config.keep_errors && spans.iter().any(Span::is_error) {
            return TailDecision::KeepError;
        }
        if let Some(th) = self.config.latency_threshold_ns
            && spans.iter().map(|s| s.duration).max().unwrap_or(0) >= th
        {
            return TailDecision::KeepSlow;
        }
        let tps = self.config.rate_limit_tps;
        if tps.is_infinite() {
            return TailDecision::KeepRate;
        }
        let t = now.as_nanos();
        if let Some(last) = self.last {
            self.tokens = (self.tokens + (t - last).max(0) as f64 / 1e9 * tps).min(tps.max(1.0));
        }
        self.last = Some(t);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            TailDecision::KeepRate
        } else {
            TailDecision::Drop
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_sampler_edges() {
        assert!(sample_by_rate(0, 0.5));
        assert!(!sample_by_rate(1, 0.0));
        assert!(sample_by_rate(u64::MAX, 1.0));
        // The kept fraction converges on the rate.
        let kept = (1..=100_000u64)
            .filter(|&i| sample_by_rate(i.wrapping_mul(0x9e37_79b9_7f4a_7c15), 0.3))
            .count();
        assert!((29_000..31_000).contains(&kept), "{kept}");
    }

    #[test]
    fn priority_sampler_converges_to_target() {
        let mut p = PrioritySampler::new(10.0);
        let root = Span {
            service: "web".into(),
            trace_id: 1,
            ..Span::default()
        };
        // 100 traces/s for 60 s.
        for i in 0..6000i64 {
            p.sample(Timestamp::from_millis(i * 10), 1, &root, "prod");
        }
        let rates = p.rate_by_service();
        assert_eq!(rates[0].0, "service:web,env:prod");
        assert!((rates[0].1 - 0.1).abs() < 0.01, "{rates:?}");
        assert_eq!(rates[1], ("service:,env:".to_string(), 1.0));
        // User decisions do not count.
        let mut q = PrioritySampler::new(10.0);
        assert!(q.sample(Timestamp::from_secs(1), 2, &root, ""));
        assert!(!q.sample(Timestamp::from_secs(1), -1, &root, ""));
        assert_eq!(q.rate_by_service().len(), 1);
    }

    #[test]
    fn rate_increase_is_capped() {
        let mut core = RateByTps::new(10.0);
        for i in 0..3000i64 {
            core.count(Timestamp::from_millis(i * 10), 7, 1.0);
        }
        let low = core.rate(7);
        // Traffic drops to 1/s: the rate may only grow ×1.2 per bucket.
        core.count(Timestamp::from_secs(31), 7, 1.0);
        core.count(Timestamp::from_secs(36), 7, 1.0);
        assert!(core.rate(7) <= low * MAX_RATE_INCREASE * MAX_RATE_INCREASE + 1e-9);
    }

    #[test]
    fn tail_sampler_policies() {
        let mut t = TailSampler::new(TailConfig {
            keep_errors: true,
            latency_threshold_ns: Some(1000),
            rate_limit_tps: 1.0,
        });
        let ok = Span {
            duration: 10,
            ..Span::default()
        };
        let err = Span {
            error: 1,
            ..Span::default()
        };
        let slow = Span {
            duration: 5000,
            ..Span::default()
        };
        let now = Timestamp::from_secs(100);
        assert_eq!(t.decide(now, &[err]), TailDecision::KeepError);
        assert_eq!(t.decide(now, &[slow]), TailDecision::KeepSlow);
        assert_eq!(
            t.decide(now, std::slice::from_ref(&ok)),
            TailDecision::KeepRate
        );
        assert_eq!(t.decide(now, std::slice::from_ref(&ok)), TailDecision::Drop);
        assert_eq!(
            t.decide(Timestamp::from_secs(101), &[ok]),
            TailDecision::KeepRate
        );
    }

    #[test]
    fn probabilistic_is_deterministic_and_proportional() {
        let p = ProbabilisticSampler {
            percentage: 25.0,
            seed: 0,
        };
        let kept = (1..=40_000u128)
            .filter(|&i| p.sample(i * 0x1234_5678_9abc_def1))
            .count();
        assert!((9_000..11_000).contains(&kept), "{kept}");
        assert_eq!(p.sample(77), p.sample(77));
    }
}
