//! Datadog's OpenMetrics **V1** check semantics (`OpenMetricsBaseCheck`,
//! datadog-checks-base `checks/openmetrics/mixins.py`), the base of the `istio` check's
//! V1 classes (`LegacyIstioCheck_1_4`, the V1 istiod `Istio`).
//!
//! Where V1 differs from the V2 [`Mapper`](super::Mapper):
//!
//! - always the Prometheus text parser (the response's Content-Type is not looked at);
//!   a family is named by its `# TYPE`/`# HELP` line and keeps it: `x_total` stays
//!   `x_total` (no `_total` stripping), and only samples named exactly as the family
//!   (or `_bucket`/`_sum`/`_count` for histograms and summaries) belong to it, so the
//!   OpenMetrics style `# TYPE x counter` + `x_total …` submits nothing; untyped
//!   families are skipped;
//! - metric names are looked up raw in the V1 metric map ([`V1Options::metrics`]) and
//!   submitted as `<namespace>.<name>`, with no `.count` suffix for counters;
//! - counters: monotonic counts with `send_monotonic_counter`, else gauges, plus
//!   `<name>.total` monotonic counts with `send_monotonic_with_gauge`;
//! - histograms: `_sum` → `<name>.sum`, `_count` → `<name>.count` tagged
//!   `upper_bound:none` (with buckets), buckets → `<name>.count` tagged
//!   `upper_bound:<str(float(le))>` (`1.0`, `0.0`, `+Inf` skipped unless
//!   non-cumulative, where it is `inf` and `lower_bound:` is added: `0` for the first
//!   bucket above zero, `-inf` below, else the previous bound); gauges (plus `.total`
//!   with `send_monotonic_with_gauge`) unless `send_distribution_counts_as_monotonic` /
//!   `send_distribution_sums_as_monotonic`; with `send_distribution_buckets`, buckets
//!   are histogram-bucket submissions (non-cumulative, which that option turns on) and
//!   `_sum`/`_count` are not sent;
//! - summaries: `<name>.quantile` gauges tagged `quantile:<str(float(q))>`, `.sum`,
//!   `.count` as for histograms;
//! - tags: the instance `tags`, then every label not in `exclude_labels` (and in
//!   `include_labels` when given), renamed by `labels_mapper` (`le` → `upper_bound`
//!   by default); no `endpoint:` tag (`tag_by_endpoint` is not read); NaN and ±Inf
//!   values dropped.
//!
//! The health service check (`<namespace>.prometheus.health`, `endpoint:<url>`) is the
//! caller's: it knows whether the scrape succeeded ([`V1Options::health_service_check`]).

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;

use meshmon_core::{Metric, MetricValue, Tag, Tags, Timestamp};
use regex::Regex;

use super::{ConfigError, MapStats, MappingConfig};
use crate::float::{parse_f64, write_py_float};
use crate::parser::Parser;
use crate::sample::{MetricType, Sample};
use crate::{Format, ParseError};

/// The options of Datadog's OpenMetrics V1 scraper (`OpenMetricsScraperMixin`) that
/// have no OpenMetrics V2 counterpart in [`MappingConfig`], as a V1 Istio check sets
/// them for one scraper.
///
/// The V1 options that do have one are carried by the [`MappingConfig`]:
/// `send_histograms_buckets` → `collect_histogram_buckets`, `non_cumulative_buckets` →
/// `non_cumulative_histogram_buckets`, `send_distribution_buckets` →
/// `histogram_buckets_as_distributions`, `labels_mapper` → `rename_labels`,
/// `ignore_metrics` → `exclude_metrics` (globs translated), `exclude_labels`,
/// `include_labels`, `namespace`, `tags`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct V1Options {
    /// The V1 metric map, raw Prometheus family name → Datadog name (no namespace),
    /// matched exactly (V1 `metrics` dict entries).
    pub metrics: Vec<(String, String)>,
    /// `send_monotonic_counter` (V1 default true; the legacy mesh and mixer scrapers
    /// default it to false): counters as monotonic counts, else as gauges.
    pub send_monotonic_counter: bool,
    /// `send_monotonic_with_gauge` (V1 default false; the legacy mesh scraper defaults
    /// it to true): with counters as gauges, also `<name>.total` monotonic counts.
    pub send_monotonic_with_gauge: bool,
    /// `send_distribution_counts_as_monotonic` (default false).
    pub send_distribution_counts_as_monotonic: bool,
    /// `send_distribution_sums_as_monotonic` (default false).
    pub send_distribution_sums_as_monotonic: bool,
    /// `health_service_check` (V1 default true; the legacy mesh and mixer scrapers
    /// default it to false): `<namespace>.prometheus.health` tagged `endpoint:<url>`.
    pub health_service_check: bool,
    /// `label_to_hostname`: the label whose value is a sample's hostname. The legacy
    /// mesh scraper sets it to the mesh endpoint URL (a label no scrape has).
    pub label_to_hostname: Option<String>,
    /// `label_to_hostname_suffix`, appended to that hostname.
    pub label_to_hostname_suffix: Option<String>,
}

impl Default for V1Options {
    /// `OpenMetricsScraperMixin.create_scraper_configuration`'s defaults, no metrics.
    fn default() -> Self {
        Self {
            metrics: Vec::new(),
            send_monotonic_counter: true,
            send_monotonic_with_gauge: false,
            send_distribution_counts_as_monotonic: false,
            send_distribution_sums_as_monotonic: false,
            health_service_check: true,
            label_to_hostname: None,
            label_to_hostname_suffix: None,
        }
    }
}

/// One V1 submission: the metric and, with `label_to_hostname`, the hostname taken
/// from the sample's label (Datadog submits it as the metric's host).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct V1Metric {
    /// The metric.
    pub metric: Metric,
    /// `label_to_hostname`'s value (plus suffix), when the sample has that label.
    pub hostname: Option<String>,
}

/// Maps Prometheus text to Datadog metrics with the OpenMetrics V1 semantics.
#[derive(Debug)]
pub struct V1Mapper {
    cfg: MappingConfig,
    v1: V1Options,
    map: HashMap<String, String>,
    exclude_exact: HashSet<String>,
    exclude_re: Option<Regex>,
    exclude_labels: HashSet<String>,
    include_labels: HashSet<String>,
    rename: HashMap<String, String>,
    static_tags: Vec<Tag>,
    pending: Vec<V1Metric>,
    dropped_tags: std::cell::Cell<u64>,
}

enum Kind {
    Gauge,
    Monotonic,
}

impl V1Mapper {
    /// Compiles the configuration (`exclude_metrics` entries are exact names or regular
    /// expressions; `metrics` of the [`MappingConfig`] are not used, the V1 map is
    /// [`V1Options::metrics`]).
    pub fn new(cfg: MappingConfig, v1: V1Options) -> Result<Self, ConfigError> {
        let (exclude_exact, exclude_re) = super::compile_excludes(&cfg)?;
        let static_tags = super::static_tags(&cfg)?;
        // V1 sets `labels_mapper['le'] = 'upper_bound'` over the instance's mapper.
        let mut rename: HashMap<String, String> = cfg.rename_labels.iter().cloned().collect();
        rename.insert("le".to_owned(), "upper_bound".to_owned());
        Ok(Self {
            map: v1.metrics.iter().cloned().collect(),
            exclude_exact,
            exclude_re,
            exclude_labels: cfg.exclude_labels.iter().cloned().collect(),
            include_labels: cfg.include_labels.iter().cloned().collect(),
            rename,
            static_tags,
            pending: Vec::new(),
            dropped_tags: std::cell::Cell::new(0),
            cfg,
            v1,
        })
    }

    /// Tags not submitted since the mapper was made because `meshmon_core::Tag` rejects
    /// them (a label value with a control character such as a newline; Datadog's
    /// Python check sends those as they are), one per tag set built (a `.total`
    /// companion submission shares its gauge's set).
    pub fn dropped_tags(&self) -> u64 {
        self.dropped_tags.get()
    }

    /// Parses `input` as Prometheus text and maps it, all or nothing (a parse error
    /// anywhere submits nothing and is returned).
    pub fn map(
        &mut self,
        input: &[u8],
        now: Timestamp,
        out: &mut dyn FnMut(V1Metric),
    ) -> Result<MapStats, ParseError> {
        let mut parser = Parser::new(input, Format::PrometheusText);
        let mut stats = MapStats::default();
        let mut pending = std::mem::take(&mut self.pending);
        pending.clear();
        let mut result = Ok(());
        while let Some(fam) = parser.next_family() {
            match fam {
                Ok(fam) => {
                    stats.families += 1;
                    stats.samples += fam.samples.len();
                    self.map_family(
                        fam.name,
                        fam.kind,
                        fam.samples,
                        now,
                        &mut stats,
                        &mut pending,
                    );
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        let r = match result {
            Err(e) => {
                pending.clear();
                Err(e)
            }
            Ok(()) => {
                for m in pending.drain(..) {
                    out(m);
                }
                Ok(stats)
            }
        };
        self.pending = pending;
        r
    }

    fn map_family(
        &mut self,
        fam_name: &str,
        kind: MetricType,
        samples: &[Sample<'_>],
        now: Timestamp,
        stats: &mut MapStats,
        out: &mut Vec<V1Metric>,
    ) {
        if !matches!(
            kind,
            MetricType::Counter | MetricType::Gauge | MetricType::Histogram | MetricType::Summary
        ) {
            stats.skipped_families += 1;
            return;
        }
        let prefix = self.cfg.raw_metric_prefix.as_str();
        let name = if prefix.is_empty() {
            fam_name
        } else {
            fam_name.strip_prefix(prefix).unwrap_or(fam_name)
        };
        if self.exclude_exact.contains(name)
            || self.exclude_re.as_ref().is_some_and(|re| re.is_match(name))
        {
            stats.skipped_families += 1;
            return;
        }
        let Some(dd) = self.map.get(name) else {
            stats.skipped_families += 1;
            return;
        };
        let base = if self.cfg.namespace.is_empty() {
            dd.clone()
        } else {
            format!("{}.{}", self.cfg.namespace, dd)
        };
        let before = out.len();
        match kind {
            MetricType::Counter | MetricType::Gauge => {
                let counter = kind == MetricType::Counter;
                let name: Arc<str> = base.as_str().into();
                let total: Arc<str> = format!("{base}.total").into();
                for s in samples.iter().filter(|s| s.name == fam_name) {
                    if !s.value.is_finite() {
                        stats.dropped_non_finite += 1;
                        continue;
                    }
                    let (tags, host) = self.tags(s, &[]);
                    if counter && self.v1.send_monotonic_counter {
                        push(out, &name, Kind::Monotonic, s.value, tags, host, now);
                    } else {
                        if counter && self.v1.send_monotonic_with_gauge {
                            push(
                                out,
                                &total,
                                Kind::Monotonic,
                                s.value,
                                tags.clone(),
                                host.clone(),
                                now,
                            );
                        }
                        push(out, &name, Kind::Gauge, s.value, tags, host, now);
                    }
                }
            }
            MetricType::Histogram => self.histogram(fam_name, &base, samples, now, stats, out),
            _ => self.summary(fam_name, &base, samples, now, stats, out),
        }
        stats.submitted += out.len() - before;
    }

    /// `_submit_distribution_count`.
    #[allow(clippy::too_many_arguments)]
    fn dist_count(
        &self,
        out: &mut Vec<V1Metric>,
        monotonic: bool,
        name: &Arc<str>,
        total: &Arc<str>,
        value: f64,
        tags: Tags,
        host: Option<String>,
        now: Timestamp,
    ) {
        if monotonic {
            push(out, name, Kind::Monotonic, value, tags, host, now);
        } else {
            if self.v1.send_monotonic_with_gauge {
                push(
                    out,
                    total,
                    Kind::Monotonic,
                    value,
                    tags.clone(),
                    host.clone(),
                    now,
                );
            }
            push(out, name, Kind::Gauge, value, tags, host, now);
        }
    }

    fn histogram(
        &mut self,
        fam: &str,
        base: &str,
        samples: &[Sample<'_>],
        now: Timestamp,
        stats: &mut MapStats,
        out: &mut Vec<V1Metric>,
    ) {
        let bucket_name = format!("{fam}_bucket");
        let (sum_name, count_name) = (format!("{fam}_sum"), format!("{fam}_count"));
        let distributions = self.cfg.histogram_buckets_as_distributions;
        // V1: `send_distribution_buckets` turns `non_cumulative_buckets` on.
        let non_cumulative = self.cfg.non_cumulative_histogram_buckets || distributions;
        let buckets = self.cfg.collect_histogram_buckets;
        // `_decumulate_histogram_buckets`: per context (labels but `le`), buckets
        // sorted by bound; value minus the previous bucket's, lower bound the previous
        // bound (first: 0 above zero, -inf else).
        let mut decum: HashMap<(String, u64), (String, f64)> = HashMap::new();
        if non_cumulative {
            let mut by_ctx: HashMap<String, Vec<(f64, f64)>> = HashMap::new();
            for s in samples.iter().filter(|s| s.name == bucket_name) {
                let Some(le) = s.labels.get("le").and_then(|v| parse_f64(&v.unescape())) else {
                    continue;
                };
                by_ctx.entry(context(s)).or_default().push((le, s.value));
            }
            for (ctx, mut bs) in by_ctx {
                bs.sort_by(|a, b| a.0.total_cmp(&b.0));
                bs.dedup_by(|b, a| {
                    // a dict keyed by bound: the last value wins
                    if a.0 == b.0 {
                        a.1 = b.1;
                        true
                    } else {
                        false
                    }
                });
                for i in 0..bs.len() {
                    let (up, v) = bs[i];
                    let (lower, value) = if i == 0 {
                        (
                            if up > 0.0 {
                                "0".to_owned()
                            } else {
                                "-inf".to_owned()
                            },
                            v,
                        )
                    } else {
                        (py_str_float(bs[i - 1].0), v - bs[i - 1].1)
                    };
                    decum.insert((ctx.clone(), up.to_bits()), (lower, value));
                }
            }
        }
        let name_sum: Arc<str> = format!("{base}.sum").into();
        let name_sum_total: Arc<str> = format!("{base}.sum.total").into();
        let name_count: Arc<str> = format!("{base}.count").into();
        let name_count_total: Arc<str> = format!("{base}.count.total").into();
        let dist_name: Arc<str> = base.into();
        for s in samples {
            let mut value = s.value;
            let le_text;
            let mut extra: Vec<(&str, String)> = Vec::new();
            if s.name == bucket_name && non_cumulative {
                let le = s.labels.get("le").and_then(|v| parse_f64(&v.unescape()));
                if let Some(le) = le
                    && let Some((lower, v)) = decum.get(&(context(s), le.to_bits()))
                {
                    value = *v;
                    extra.push(("lower_bound", lower.clone()));
                }
            }
            if !value.is_finite() {
                stats.dropped_non_finite += 1;
                continue;
            }
            if s.name == sum_name && !distributions {
                let (tags, host) = self.tags(s, &extra);
                let m = self.v1.send_distribution_sums_as_monotonic;
                self.dist_count(out, m, &name_sum, &name_sum_total, value, tags, host, now);
            } else if s.name == count_name && !distributions {
                if buckets {
                    extra.push(("upper_bound", "none".to_owned()));
                }
                let (tags, host) = self.tags(s, &extra);
                let m = self.v1.send_distribution_counts_as_monotonic;
                self.dist_count(
                    out,
                    m,
                    &name_count,
                    &name_count_total,
                    value,
                    tags,
                    host,
                    now,
                );
            } else if buckets && s.name == bucket_name {
                let Some(le_raw) = s.labels.get("le").map(|v| v.unescape().into_owned()) else {
                    continue;
                };
                let Some(le) = parse_f64(&le_raw) else {
                    continue;
                };
                if distributions {
                    // `_submit_sample_histogram_buckets`: needs lower_bound (from the
                    // decumulation), skips equal bounds.
                    let Some((lower, v)) = decum.get(&(context(s), le.to_bits())) else {
                        continue;
                    };
                    let lower_f = parse_f64(lower).unwrap_or(0.0);
                    if py_str_float(lower_f) == py_str_float(le) {
                        continue;
                    }
                    let extra = [
                        ("le", py_str_float(le)),
                        ("lower_bound", py_str_float(lower_f)),
                    ];
                    let (tags, host) = self.tags(s, &extra);
                    out.push(V1Metric {
                        metric: Metric::new(
                            dist_name.clone(),
                            MetricValue::HistogramBucket {
                                count: v.max(0.0) as u64,
                                lower_bound: lower_f,
                                upper_bound: le,
                                monotonic: true,
                            },
                            tags,
                            now,
                        ),
                        hostname: host,
                    });
                } else if !le_raw.contains("Inf") || non_cumulative {
                    le_text = py_str_float(le);
                    extra.push(("le", le_text));
                    let (tags, host) = self.tags(s, &extra);
                    let m = self.v1.send_distribution_counts_as_monotonic;
                    self.dist_count(
                        out,
                        m,
                        &name_count,
                        &name_count_total,
                        value,
                        tags,
                        host,
                        now,
                    );
                }
            }
        }
    }

    fn summary(
        &mut self,
        fam: &str,
        base: &str,
        samples: &[Sample<'_>],
        now: Timestamp,
        stats: &mut MapStats,
        out: &mut Vec<V1Metric>,
    ) {
        let (sum_name, count_name) = (format!("{fam}_sum"), format!("{fam}_count"));
        let name_sum: Arc<str> = format!("{base}.sum").into();
        let name_sum_total: Arc<str> = format!("{base}.sum.total").into();
        let name_count: Arc<str> = format!("{base}.count").into();
        let name_count_total: Arc<str> = format!("{base}.count.total").into();
        let name_q: Arc<str> = format!("{base}.quantile").into();
        for s in samples {
            if !s.value.is_finite() {
                stats.dropped_non_finite += 1;
                continue;
            }
            if s.name == sum_name {
                let (tags, host) = self.tags(s, &[]);
                let m = self.v1.send_distribution_sums_as_monotonic;
                self.dist_count(out, m, &name_sum, &name_sum_total, s.value, tags, host, now);
            } else if s.name == count_name {
                let (tags, host) = self.tags(s, &[]);
                let m = self.v1.send_distribution_counts_as_monotonic;
                self.dist_count(
                    out,
                    m,
                    &name_count,
                    &name_count_total,
                    s.value,
                    tags,
                    host,
                    now,
                );
            } else if s.name == fam {
                let Some(q) = s
                    .labels
                    .get("quantile")
                    .and_then(|v| parse_f64(&v.unescape()))
                else {
                    continue;
                };
                let (tags, host) = self.tags(s, &[("quantile", py_str_float(q))]);
                push(out, &name_q, Kind::Gauge, s.value, tags, host, now);
            }
        }
    }

    /// `_metric_tags`: static tags, then the labels (overridden/added by `extra`),
    /// filtered and renamed; and `_get_hostname`.
    fn tags(&self, s: &Sample<'_>, extra: &[(&str, String)]) -> (Tags, Option<String>) {
        let mut tags: Vec<Tag> = self.static_tags.clone();
        let mut host = None;
        let push_label = |name: &str, value: &str, tags: &mut Vec<Tag>| {
            if self.exclude_labels.contains(name)
                || (!self.include_labels.is_empty() && !self.include_labels.contains(name))
            {
                return;
            }
            let key = self.rename.get(name).map_or(name, String::as_str);
            match Tag::new(key, value) {
                Ok(t) => tags.push(t),
                // Datadog's Python check sends such a tag as it is; a meshmon `Tag`
                // cannot hold control characters (a newline in a label value): counted.
                Err(_) => self.dropped_tags.set(self.dropped_tags.get() + 1),
            }
        };
        for l in s.labels.iter() {
            if extra.iter().any(|(k, _)| *k == l.name) {
                continue;
            }
            let value = l.value.unescape();
            if let Some(h) = &self.v1.label_to_hostname
                && h == l.name
                && !value.is_empty()
            {
                let mut name = value.clone().into_owned();
                if let Some(suffix) = &self.v1.label_to_hostname_suffix {
                    name.push_str(suffix);
                }
                host = Some(name);
            }
            push_label(l.name, &value, &mut tags);
        }
        for (k, v) in extra {
            push_label(k, v, &mut tags);
        }
        (tags.into_iter().collect(), host)
    }
}

fn push(
    out: &mut Vec<V1Metric>,
    name: &Arc<str>,
    kind: Kind,
    value: f64,
    tags: Tags,
    hostname: Option<String>,
    now: Timestamp,
) {
    let value = match kind {
        Kind::Gauge => MetricValue::Gauge(value),
        Kind::Monotonic => MetricValue::MonotonicCount(value),
    };
    out.push(V1Metric {
        metric: Metric::new(name.clone(), value, tags, now),
        hostname,
    });
}

/// The labels of a bucket but `le`, as one key (`_compute_bucket_hash`).
fn context(s: &Sample<'_>) -> String {
    let mut parts: Vec<(String, String)> = s
        .labels
        .iter()
        .filter(|l| l.name != "le")
        .map(|l| (l.name.to_owned(), l.value.unescape().into_owned()))
        .collect();
    parts.sort();
    let mut key = String::new();
    for (k, v) in parts {
        let _ = write!(key, "{k}\u{0}{v}\u{1}");
    }
    key
}

/// The V1 metric map `LegacyIstioCheck_1_4` gives the scraper of an endpoint key (raw
/// names, `_total` kept): `MESH_METRICS` for `istio_mesh_endpoint`, the component's map
/// updated with `GENERIC_METRICS` for the others; empty for other keys.
pub fn istio_legacy_metrics(endpoint_key: &str) -> Vec<(String, String)> {
    use super::istio_map as m;
    let map = match endpoint_key {
        "istio_mesh_endpoint" => m::MESH_METRICS,
        "mixer_endpoint" => m::MIXER_METRICS,
        "pilot_endpoint" => m::PILOT_METRICS,
        "galley_endpoint" => m::GALLEY_METRICS,
        "citadel_endpoint" => m::CITADEL_METRICS,
        _ => return Vec::new(),
    };
    let mut out: Vec<(String, String)> = map
        .iter()
        .map(|&(r, n)| (r.to_owned(), n.to_owned()))
        .collect();
    if endpoint_key != "istio_mesh_endpoint" {
        for &(raw, name) in m::GENERIC_METRICS {
            match out.iter_mut().find(|(r, _)| r == raw) {
                Some(p) => p.1 = name.to_owned(),
                None => out.push((raw.to_owned(), name.to_owned())),
            }
        }
    }
    out
}

/// Python's `str(float(x))`: `0.0`, `1.0`, `0.005`, `inf`, `1e-05`.
pub fn py_str_float(x: f64) -> String {
    let mut s = String::new();
    if x == 0.0 {
        s.push_str(if x.is_sign_negative() { "-0.0" } else { "0.0" });
    } else {
        write_py_float(&mut s, x);
    }
    s
}
