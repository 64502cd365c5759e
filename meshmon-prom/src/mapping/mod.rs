//! Datadog's OpenMetrics v2 check semantics: families → tagged [`Metric`]s.
//!
//! This is what `datadog_checks.base.checks.openmetrics.v2` (the
//! `OpenMetricsBaseCheckV2` the Istio integration runs on) submits for each family,
//! reproduced option for option ([`MappingConfig`]) and checked against Datadog's own
//! code by the oracle test (`tests/oracle.rs`, expected outputs produced by
//! `datadog-checks-base==38.5.0`):
//!
//! - only families listed in `metrics` are submitted, under `<namespace>.<name>`;
//!   `native` entries take the family's type, `untyped`/`unknown` families need an
//!   explicit type;
//! - counters → `<name>.count` monotonic count; gauges → `<name>`; summaries →
//!   `<name>.quantile` gauges tagged `quantile:`, `<name>.sum`/`.count` monotonic counts;
//! - histograms → `<name>.bucket` monotonic counts tagged `upper_bound:` (the `+Inf`
//!   bucket skipped), `.sum`/`.count`; optionally non-cumulative (`lower_bound:` added)
//!   or as distribution buckets;
//! - NaN and ±Inf samples are dropped; label → tag filtering is `exclude_labels`, then
//!   `include_labels`, then `rename_labels`; static `tags` and `endpoint:<url>` follow.
//!
//! ```
//! use meshmon_core::Timestamp;
//! use meshmon_prom::{Format, Mapper, MappingConfig};
//!
//! let body = b"# TYPE istio_requests_total counter\n\
//! istio_requests_total{response_code=\"200\"} 7\n\
//! ## TYPE istio_request_duration_milliseconds histogram\n\
//! istio_request_duration_milliseconds_bucket{le=\"0.5\"} 3\n\
//! istio_request_duration_milliseconds_bucket{le=\"+Inf\"} 4\n\
//! istio_request_duration_milliseconds_sum 9.5\n\
//! istio_request_duration_milliseconds_count 4\n";
//! let mut mapper = Mapper::new(MappingConfig::istio_mesh())?;
//! let mut out = Vec::new();
//! mapper.map(body, Format::PrometheusText, Timestamp::EPOCH, &mut |m| out.push(m))?;
//! let lines: Vec<String> = out
//!     .iter()
//!     .map(|m| format!("{} {} {} [{}]", m.name, m.value.type_name(), m.value.as_f64().unwrap(), m.tags))
//!     .collect();
//! assert_eq!(lines, [
//!     "istio.mesh.request.count monotonic_count 7 [response_code:200]",
//!     "istio.mesh.request.duration.milliseconds.bucket monotonic_count 3 [upper_bound:0.5]",
//!     "istio.mesh.request.duration.milliseconds.sum monotonic_count 9.5 []",
//!     "istio.mesh.request.duration.milliseconds.count monotonic_count 4 []",
//! ]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use meshmon_core::{Metric, MetricValue, Tag, Tags, Timestamp};
use regex::Regex;

use crate::float::{parse_f64, write_py_float};
use crate::parser::{Family, Parser};
use crate::sample::{MetricType, Sample};
use crate::{Format, ParseError};

mod config;
mod delta;
pub mod istio_map;
pub mod v1;

#[allow(deprecated)]
pub use config::ScraperConfig;
pub use config::{ConfigError, MappingConfig, MetricSpec, SubmitType, glob_to_regex};
pub use delta::{DeltaLimits, DeltaSnapshot, DeltaStats, LimitsError, MonotonicDeltas};

/// Counts of one [`Mapper::map`] call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MapStats {
    /// Families parsed.
    pub families: usize,
    /// Samples parsed.
    pub samples: usize,
    /// Metrics submitted.
    pub submitted: usize,
    /// Samples dropped for a NaN or infinite value.
    pub dropped_non_finite: usize,
    /// Families skipped (excluded, not in `metrics`, or of a type with no mapping).
    pub skipped_families: usize,
}

#[derive(Clone, Debug)]
struct Target {
    name: String,
    kind: SubmitType,
}

/// Maps parsed families to Datadog metrics according to a [`MappingConfig`].
#[derive(Debug)]
pub struct Mapper {
    cfg: MappingConfig,
    exact: HashMap<String, Target>,
    patterns: Vec<(Regex, SubmitType)>,
    exclude_exact: HashSet<String>,
    exclude_re: Option<Regex>,
    exclude_labels: HashSet<String>,
    include_labels: HashSet<String>,
    rename: HashMap<String, String>,
    static_tags: Vec<Tag>,
    names: HashMap<(String, &'static str), Arc<str>>,
    native_kinds: HashMap<String, SubmitType>,
    tag_buf: Vec<Tag>,
    text_buf: String,
    cache: hashbrown::HashMap<u128, (Tags, Option<f64>)>,
    label_cache: hashbrown::HashMap<u128, Option<Tag>>,
    hash_a: hashbrown::DefaultHashBuilder,
    hash_b: hashbrown::DefaultHashBuilder,
    cache_stats: CacheStats,
    /// The metrics of the scrape being mapped, emitted once it parsed completely.
    pending: Vec<Metric>,
}

/// Counters of the mapper's tag cache.
///
/// Tags are built once per distinct label set (with its family type and bound) and
/// reused on later samples and scrapes: a steady-state scrape of unchanged series
/// allocates nothing for tags. The cache holds at most
/// [`MappingConfig::max_cached_label_sets`] entries and is cleared when full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Label sets found in the cache.
    pub hits: u64,
    /// Label sets built.
    pub misses: u64,
    /// Times the cache was full and cleared.
    pub clears: u64,
    /// Entries now.
    pub entries: usize,
}

/// Where a sample's value goes.
enum Out {
    Gauge,
    Monotonic,
    Rate,
}

impl Mapper {
    /// Compiles a configuration (metric patterns and exclusions are regular
    /// expressions, as in Datadog's check).
    pub fn new(cfg: MappingConfig) -> Result<Self, ConfigError> {
        let mut exact = HashMap::new();
        let mut patterns = Vec::new();
        for spec in &cfg.metrics {
            if regex::escape(&spec.raw) == spec.raw {
                exact.insert(
                    spec.raw.clone(),
                    Target {
                        name: spec.name.clone().unwrap_or_else(|| spec.raw.clone()),
                        kind: spec.kind,
                    },
                );
            } else {
                let re = Regex::new(&spec.raw).map_err(|e| ConfigError::Regex {
                    field: "metrics",
                    pattern: spec.raw.clone(),
                    message: e.to_string(),
                })?;
                patterns.push((re, spec.kind));
            }
        }
        let (exclude_exact, exclude_re) = compile_excludes(&cfg)?;
        let mut static_tags = static_tags(&cfg)?;
        if cfg.tag_by_endpoint
            && let Some(ep) = &cfg.openmetrics_endpoint
        {
            static_tags.push(Tag::new("endpoint", ep).map_err(|e| ConfigError::Tag {
                tag: ep.clone(),
                message: e.to_string(),
            })?);
        }
        Ok(Self {
            exact,
            patterns,
            exclude_exact,
            exclude_re,
            exclude_labels: cfg.exclude_labels.iter().cloned().collect(),
            include_labels: cfg.include_labels.iter().cloned().collect(),
            rename: cfg.rename_labels.iter().cloned().collect(),
            static_tags,
            names: HashMap::new(),
            native_kinds: HashMap::new(),
            tag_buf: Vec::with_capacity(32),
            text_buf: String::with_capacity(256),
            cache: hashbrown::HashMap::new(),
            label_cache: hashbrown::HashMap::new(),
            hash_a: hashbrown::DefaultHashBuilder::default(),
            hash_b: hashbrown::DefaultHashBuilder::default(),
            cache_stats: CacheStats::default(),
            pending: Vec::new(),
            cfg,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &MappingConfig {
        &self.cfg
    }

    /// Counters of the tag cache.
    pub fn cache_stats(&self) -> CacheStats {
        CacheStats {
            entries: self.cache.len(),
            ..self.cache_stats
        }
    }

    /// 128-bit key of one label (name, raw value).
    fn label_key(&self, name: &str, raw: &str) -> u128 {
        use std::hash::{BuildHasher as _, Hasher as _};
        let mut ha = self.hash_a.build_hasher();
        let mut hb = self.hash_b.build_hasher();
        for h in [&mut ha, &mut hb] {
            h.write(name.as_bytes());
            h.write_u8(0xff);
            h.write(raw.as_bytes());
        }
        (u128::from(ha.finish()) << 64) | u128::from(hb.finish())
    }

    /// Tags (and the parsed `le` bound, for histograms) of a sample, from the cache or
    /// built and cached.
    fn cached_tags(
        &mut self,
        parsed: MetricType,
        s: &Sample<'_>,
        lower: Option<f64>,
    ) -> (Tags, Option<f64>) {
        use std::hash::{BuildHasher as _, Hash as _, Hasher as _};
        let raw = s.labels.raw();
        let kind = parsed as u8;
        let lower_bits = lower.map_or(u64::MAX, f64::to_bits);
        let mut ha = self.hash_a.build_hasher();
        let mut hb = self.hash_b.build_hasher();
        for h in [&mut ha, &mut hb] {
            kind.hash(h);
            lower_bits.hash(h);
            h.write(raw.as_bytes());
        }
        let key = (u128::from(ha.finish()) << 64) | u128::from(hb.finish());
        if let Some((tags, upper)) = self.cache.get(&key) {
            self.cache_stats.hits += 1;
            return (tags.clone(), *upper);
        }
        self.cache_stats.misses += 1;
        let built = self.tags(parsed, s, lower);
        if self.cache.len() >= self.cfg.max_cached_label_sets {
            self.cache.clear();
            self.cache_stats.clears += 1;
        }
        if self.cfg.max_cached_label_sets > 0 {
            self.cache.insert(key, built.clone());
        }
        built
    }

    /// Parses `input` and maps every family, calling `out` for each submitted metric
    /// (timestamped `now`), all or nothing: when the input has a parse error anywhere,
    /// `out` is never called and the error is returned, so a truncated or corrupt scrape
    /// cannot submit half a scrape (Datadog's check, too, submits nothing from a
    /// scrape it cannot parse).
    ///
    /// The metrics of one scrape are held in a buffer the mapper keeps and reuses, so
    /// steady-state scrapes do not allocate for it; its size is that of the largest
    /// scrape mapped so far. Use [`Mapper::map_family`] to stream instead.
    pub fn map(
        &mut self,
        input: &[u8],
        format: Format,
        now: Timestamp,
        out: &mut dyn FnMut(Metric),
    ) -> Result<MapStats, ParseError> {
        let mut parser = Parser::new(input, format);
        let mut stats = MapStats::default();
        let mut pending = std::mem::take(&mut self.pending);
        pending.clear();
        let mut failed = None;
        while let Some(fam) = parser.next_family() {
            match fam {
                Ok(fam) => {
                    stats.families += 1;
                    stats.samples += fam.samples.len();
                    self.map_family(&fam, now, &mut stats, &mut |m| pending.push(m));
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        let result = match failed {
            Some(e) => {
                pending.clear();
                Err(e)
            }
            None => {
                for m in pending.drain(..) {
                    out(m);
                }
                Ok(stats)
            }
        };
        self.pending = pending;
        result
    }

    /// The family name Datadog's check sees: `_total` stripped from Prometheus-text
    /// counters (as `prometheus_client` does), then `raw_metric_prefix` stripped.
    fn family_name<'a>(&self, fam: &Family<'_, 'a>) -> &'a str {
        let mut name = fam.name;
        if fam.kind == MetricType::Counter {
            name = name.strip_suffix("_total").unwrap_or(name);
        }
        if !self.cfg.raw_metric_prefix.is_empty() {
            name = name
                .strip_prefix(self.cfg.raw_metric_prefix.as_str())
                .unwrap_or(name);
        }
        name
    }

    fn target(&self, name: &str) -> Option<(String, SubmitType)> {
        if let Some(t) = self.exact.get(name) {
            return Some((t.name.clone(), t.kind));
        }
        self.patterns
            .iter()
            .find(|(re, _)| re.is_match(name))
            .map(|(_, kind)| (name.to_owned(), *kind))
    }

    fn metric_name(&mut self, base: &str, suffix: &'static str) -> Arc<str> {
        if let Some(n) = self.names.get(&(base.to_owned(), suffix)) {
            return n.clone();
        }
        let mut s = String::new();
        if !self.cfg.namespace.is_empty() {
            s.push_str(&self.cfg.namespace);
            s.push('.');
        }
        s.push_str(base);
        s.push_str(suffix);
        let arc: Arc<str> = s.into();
        self.names.insert((base.to_owned(), suffix), arc.clone());
        arc
    }

    /// Maps one family (see the module docs for the rules).
    pub fn map_family(
        &mut self,
        fam: &Family<'_, '_>,
        now: Timestamp,
        stats: &mut MapStats,
        out: &mut dyn FnMut(Metric),
    ) {
        let name = self.family_name(fam);
        if self.exclude_exact.contains(name)
            || self.exclude_re.as_ref().is_some_and(|re| re.is_match(name))
        {
            stats.skipped_families += 1;
            return;
        }
        let Some((dd_name, kind)) = self.target(name) else {
            stats.skipped_families += 1;
            return;
        };
        let kind = match kind {
            SubmitType::Native => {
                let parsed = match fam.kind {
                    MetricType::Counter => SubmitType::Counter,
                    MetricType::Gauge => SubmitType::Gauge,
                    MetricType::Histogram => SubmitType::Histogram,
                    MetricType::Summary => SubmitType::Summary,
                    _ => {
                        stats.skipped_families += 1;
                        return;
                    }
                };
                // Datadog's `native` transformer takes the type of the first family it
                // sees under a name and keeps it (e.g. istiod's `go_memstats_alloc_bytes`
                // gauge and `go_memstats_alloc_bytes_total` counter share one name once
                // `_total` is stripped: both are submitted as gauges).
                match self.native_kinds.get(name) {
                    Some(k) => *k,
                    None => {
                        self.native_kinds.insert(name.to_owned(), parsed);
                        parsed
                    }
                }
            }
            k => k,
        };
        match kind {
            SubmitType::Gauge | SubmitType::Counter | SubmitType::Rate => {
                let (suffix, how) = match kind {
                    SubmitType::Counter => (".count", Out::Monotonic),
                    SubmitType::Rate => ("", Out::Rate),
                    _ => ("", Out::Gauge),
                };
                let mname = self.metric_name(&dd_name, suffix);
                for s in fam.samples {
                    self.submit(fam.kind, s, &mname, &how, None, now, stats, out);
                }
            }
            SubmitType::Summary => {
                let sum = self.metric_name(&dd_name, ".sum");
                let count = self.metric_name(&dd_name, ".count");
                let quantile = self.metric_name(&dd_name, ".quantile");
                for s in fam.samples {
                    if s.name.ends_with("_sum") {
                        self.submit(fam.kind, s, &sum, &Out::Monotonic, None, now, stats, out);
                    } else if s.name.ends_with("_count") {
                        self.submit(fam.kind, s, &count, &Out::Monotonic, None, now, stats, out);
                    } else if s.name == fam.name {
                        self.submit(fam.kind, s, &quantile, &Out::Gauge, None, now, stats, out);
                    }
                }
            }
            SubmitType::Histogram => self.histogram(fam, &dd_name, now, stats, out),
            SubmitType::Native => {}
        }
    }

    fn histogram(
        &mut self,
        fam: &Family<'_, '_>,
        dd_name: &str,
        now: Timestamp,
        stats: &mut MapStats,
        out: &mut dyn FnMut(Metric),
    ) {
        let cfg = &self.cfg;
        let as_dist =
            cfg.histogram_buckets_as_distributions || cfg.collect_counters_with_distributions;
        let collect_buckets = as_dist || cfg.collect_histogram_buckets;
        let non_cumulative = as_dist || cfg.non_cumulative_histogram_buckets;
        let with_counters = !as_dist || cfg.collect_counters_with_distributions;
        let sum = self.metric_name(dd_name, ".sum");
        let count = self.metric_name(dd_name, ".count");
        let bucket = self.metric_name(dd_name, if as_dist { "" } else { ".bucket" });
        // Non-cumulative: per label context (labels without `le`), buckets sorted by
        // bound, each bucket's value minus the previous one's.
        let bounds = if collect_buckets && non_cumulative {
            Some(decumulate(fam))
        } else {
            None
        };
        for (i, s) in fam.samples.iter().enumerate() {
            if s.name.ends_with("_sum") {
                if with_counters {
                    self.submit(fam.kind, s, &sum, &Out::Monotonic, None, now, stats, out);
                }
            } else if s.name.ends_with("_count") {
                if with_counters {
                    self.submit(fam.kind, s, &count, &Out::Monotonic, None, now, stats, out);
                }
            } else if collect_buckets && s.name.ends_with("_bucket") {
                match &bounds {
                    None => {
                        if !s.value.is_finite() {
                            stats.dropped_non_finite += 1;
                            continue;
                        }
                        // The cached entry carries the parsed `le`: no label scan.
                        let (tags, upper) = if fam.kind == MetricType::Histogram {
                            self.cached_tags(fam.kind, s, None)
                        } else {
                            let u = s.labels.get("le").and_then(|le| parse_f64(&le.unescape()));
                            (self.cached_tags(fam.kind, s, None).0, u)
                        };
                        let Some(upper) = upper else { continue };
                        if upper.is_infinite() {
                            continue;
                        }
                        stats.submitted += 1;
                        out(Metric::new(
                            bucket.clone(),
                            MetricValue::MonotonicCount(s.value),
                            tags,
                            now,
                        ));
                    }
                    Some(b) => {
                        let Some(&(lower, value)) = b.get(i).and_then(Option::as_ref) else {
                            continue;
                        };
                        let Some(upper) =
                            s.labels.get("le").and_then(|le| parse_f64(&le.unescape()))
                        else {
                            continue;
                        };
                        if !value.is_finite() || !s.value.is_finite() {
                            stats.dropped_non_finite += 1;
                            continue;
                        }
                        if as_dist {
                            if lower == upper && lower.is_infinite() {
                                continue;
                            }
                            let (tags, _) = self.cached_tags(fam.kind, s, Some(lower));
                            let value = MetricValue::HistogramBucket {
                                count: value.max(0.0).round() as u64,
                                lower_bound: lower,
                                upper_bound: upper,
                                monotonic: true,
                            };
                            stats.submitted += 1;
                            out(Metric::new(bucket.clone(), value, tags, now));
                        } else {
                            if upper.is_infinite() {
                                continue;
                            }
                            let d = Sample { value, ..*s };
                            self.submit(
                                fam.kind,
                                &d,
                                &bucket,
                                &Out::Monotonic,
                                Some(lower),
                                now,
                                stats,
                                out,
                            );
                        }
                    }
                }
            }
        }
    }

    /// Builds the tags of a sample: labels normalised by the family's parsed type
    /// (`le` → `upper_bound`, canonical `quantile`), filtered, renamed, then the static
    /// tags and an optional `lower_bound`.
    fn tags(
        &mut self,
        parsed: MetricType,
        s: &Sample<'_>,
        lower: Option<f64>,
    ) -> (Tags, Option<f64>) {
        let mut tags = std::mem::take(&mut self.tag_buf);
        tags.clear();
        let mut upper: Option<f64> = None;
        for l in s.labels.iter() {
            let mut name = l.name;
            if parsed == MetricType::Histogram && name == "le" {
                upper = parse_f64(&l.value.unescape());
                continue;
            }
            let special = parsed == MetricType::Summary && name == "quantile";
            // Per-label outcome cache: label values repeat across series, so most tags
            // (or "excluded") are found here instead of being filtered and built again.
            let key = if special {
                None
            } else {
                Some(self.label_key(name, l.value.raw()))
            };
            if let Some(k) = key
                && let Some(hit) = self.label_cache.get(&k)
            {
                if let Some(t) = hit {
                    tags.push(t.clone());
                }
                continue;
            }
            let value = l.value.unescape();
            let mut text: &str = &value;
            self.text_buf.clear();
            if parsed == MetricType::Summary
                && name == "quantile"
                && let Some(q) = parse_f64(&value)
            {
                write_py_float(&mut self.text_buf, q);
                text = &self.text_buf;
            }
            let excluded = self.exclude_labels.contains(name)
                || (!self.include_labels.is_empty() && !self.include_labels.contains(name));
            let tag = if excluded {
                None
            } else {
                if let Some(r) = self.rename.get(name) {
                    name = r;
                }
                Tag::new(name, text).ok()
            };
            if let Some(t) = &tag {
                tags.push(t.clone());
            }
            if let Some(k) = key {
                if self.label_cache.len() >= self.cfg.max_cached_label_sets {
                    self.label_cache.clear();
                }
                if self.cfg.max_cached_label_sets > 0 {
                    self.label_cache.insert(k, tag);
                }
            }
        }
        if let Some(u) = upper {
            let name = "upper_bound";
            let keep = !self.exclude_labels.contains(name)
                && (self.include_labels.is_empty() || self.include_labels.contains(name));
            if keep {
                let name = self.rename.get(name).map_or(name, String::as_str);
                self.text_buf.clear();
                write_py_float(&mut self.text_buf, u);
                if let Ok(t) = Tag::new(name, &self.text_buf) {
                    tags.push(t);
                }
            }
        }
        tags.extend(self.static_tags.iter().cloned());
        if let Some(lb) = lower {
            self.text_buf.clear();
            write_py_float(&mut self.text_buf, lb);
            if let Ok(t) = Tag::new("lower_bound", &self.text_buf) {
                tags.push(t);
            }
        }
        let out: Tags = tags.drain(..).collect();
        self.tag_buf = tags;
        (out, upper)
    }

    #[allow(clippy::too_many_arguments)]
    fn submit(
        &mut self,
        parsed: MetricType,
        s: &Sample<'_>,
        name: &Arc<str>,
        how: &Out,
        lower: Option<f64>,
        now: Timestamp,
        stats: &mut MapStats,
        out: &mut dyn FnMut(Metric),
    ) {
        if !s.value.is_finite() {
            stats.dropped_non_finite += 1;
            return;
        }
        let (tags, _) = self.cached_tags(parsed, s, lower);
        let value = match how {
            Out::Gauge => MetricValue::Gauge(s.value),
            Out::Monotonic => MetricValue::MonotonicCount(s.value),
            Out::Rate => MetricValue::Rate {
                value: s.value,
                interval: std::time::Duration::ZERO,
            },
        };
        stats.submitted += 1;
        out(Metric::new(name.clone(), value, tags, now));
    }
}

/// A `_bucket` sample's label context (an order-independent hash of its labels other
/// than `le`) and its upper bound; `None` for other samples and unparsable bounds.
fn bucket_context(s: &Sample<'_>) -> Option<(u64, f64)> {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    if !s.name.ends_with("_bucket") {
        return None;
    }
    let upper = s
        .labels
        .get("le")
        .and_then(|le| parse_f64(&le.unescape()))?;
    let hasher = BuildHasherDefault::<DefaultHasher>::default();
    let key = s
        .labels
        .iter()
        .filter(|l| l.name != "le")
        .fold(0u64, |k, l| {
            k.wrapping_add(hasher.hash_one((l.name, l.value.raw())))
        });
    Some((key, upper))
}

/// For each sample index of a histogram family: `Some((lower_bound, non-cumulative
/// value))` for `_bucket` samples, as Datadog's `decumulate_histogram_buckets`.
fn decumulate(fam: &Family<'_, '_>) -> Vec<Option<(f64, f64)>> {
    // Each sample's context, computed once and reused when writing the results.
    let ids: Vec<Option<(u64, f64)>> = fam.samples.iter().map(bucket_context).collect();
    // context hash → [(upper, value)]
    let mut contexts: HashMap<u64, Vec<(f64, f64)>> = HashMap::new();
    for (s, id) in fam.samples.iter().zip(&ids) {
        let Some((key, upper)) = *id else { continue };
        let v = contexts.entry(key).or_default();
        // a repeated bound in one context: the last value wins (a dict in Python)
        if let Some(e) = v.iter_mut().find(|e| e.0 == upper) {
            e.1 = s.value;
        } else {
            v.push((upper, s.value));
        }
    }
    let mut by_bound: HashMap<(u64, u64), (f64, f64)> = HashMap::new();
    for (key, mut buckets) in contexts {
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (j, &(upper, value)) in buckets.iter().enumerate() {
            let entry = if j == 0 {
                (if upper >= 0.0 { 0.0 } else { f64::NEG_INFINITY }, value)
            } else {
                let (pu, pv) = buckets[j - 1];
                (pu, value - pv)
            };
            by_bound.insert((key, upper.to_bits()), entry);
        }
    }
    ids.iter()
        .map(|id| id.and_then(|(key, upper)| by_bound.get(&(key, upper.to_bits())).copied()))
        .collect()
}

/// `exclude_metrics` compiled: exact names, and the others joined into one regex (shared
/// by the V2 and V1 mappers).
pub(crate) fn compile_excludes(
    cfg: &MappingConfig,
) -> Result<(HashSet<String>, Option<Regex>), ConfigError> {
    let mut exact = HashSet::new();
    let mut patterns = Vec::new();
    for e in &cfg.exclude_metrics {
        if regex::escape(e) == *e {
            exact.insert(e.clone());
        } else {
            patterns.push(e.clone());
        }
    }
    let re = if patterns.is_empty() {
        None
    } else {
        let joined = patterns.join("|");
        Some(Regex::new(&joined).map_err(|e| ConfigError::Regex {
            field: "exclude_metrics",
            pattern: joined.clone(),
            message: e.to_string(),
        })?)
    };
    Ok((exact, re))
}

/// The instance's `tags`, parsed (shared by the V2 and V1 mappers).
pub(crate) fn static_tags(cfg: &MappingConfig) -> Result<Vec<Tag>, ConfigError> {
    cfg.tags
        .iter()
        .map(|t| {
            t.parse::<Tag>().map_err(|e| ConfigError::Tag {
                tag: t.clone(),
                message: e.to_string(),
            })
        })
        .collect()
}
