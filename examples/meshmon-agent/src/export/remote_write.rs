//! Prometheus remote write 1.0
//! (<https://prometheus.io/docs/specs/remote_write_spec/>): a protobuf `WriteRequest`,
//! snappy block-compressed, POSTed with `Content-Encoding: snappy`,
//! `Content-Type: application/x-protobuf` and `X-Prometheus-Remote-Write-Version: 0.1.0`.
//!
//! # Datadog metrics → Prometheus series
//!
//! The rule is fixed and documented so a query can be written from a Datadog name and
//! back:
//!
//! - **name**: every `.` becomes `_`, and any other character outside `[a-zA-Z0-9_]` too;
//!   a leading digit gets a `_` in front. `istio.mesh.request.count` →
//!   `istio_mesh_request_count`. For the names meshmon produces (dotted words of
//!   `[a-z0-9]`) the reverse is "`_` → `.`"; a Datadog name that already had `_` or
//!   other characters (`trace.http.request.hits.by_http_status`) maps to a name whose
//!   reverse is ambiguous, so such a series also carries `dd_metric="<original name>"`.
//! - **tags → labels**: `key:value` → `key="value"`, the key sanitised to
//!   `[a-zA-Z_][a-zA-Z0-9_]*` like a name (a key starting `__`, reserved by Prometheus,
//!   gets `tag` in front); a tag without a value, `foo`, → `foo="true"`; `key:` (empty
//!   value) → no label, as Prometheus reads an empty value; several values
//!   of one key are joined with `,` in sorted order. `host="<agent host name>"` is added
//!   unless a `host` tag exists, so agents on several nodes write distinct series.
//!   Labels are sorted by name (byte order), as the spec requires; `__name__` is among
//!   them.
//! - **gauges** and **rates** (per second) → the value.
//! - **counts** (Datadog `count`: the per-interval deltas the scrape loop computes from
//!   Prometheus counters, DogStatsD's per-flush counts) → a **cumulative counter**: the
//!   sum of every delta since the agent started, because PromQL's `rate()`/`increase()`
//!   and `histogram_quantile` need counters, not deltas. The agent restarting starts the
//!   sums at 0 again, which Prometheus reads as a counter reset (as for any restarted
//!   exporter). The sums are kept for at most `exports.remote_write.max_series` series;
//!   a series unseen for `exports.remote_write.series_expiry` (default 10 minutes: pods
//!   come and go) is forgotten, and restarts at 0 (a reset) if it comes back; samples of
//!   new series beyond the bound are skipped and counted.
//! - **histograms**: Istio's `…duration.milliseconds.bucket` counts tagged
//!   `upper_bound:X` (Datadog's cumulative buckets) → `…_bucket{le="X"}` cumulative
//!   counters; the `+Inf` bucket, which Datadog's check does not submit, is written from
//!   the same histogram's `…count` (the count of every observation), so
//!   `histogram_quantile(0.9, rate(istio_mesh_request_duration_milliseconds_bucket[5m]))`
//!   works. Non-cumulative buckets (tagged `lower_bound:` too, or histogram-bucket
//!   values) are summed up to each upper bound within a submission first, so `le` is
//!   cumulative as Prometheus expects. Datadog's V1 buckets (the legacy Istio check:
//!   `…milliseconds.count` gauges of the raw cumulative bucket counts tagged
//!   `upper_bound:X`, `upper_bound:none` for the total) → `…_bucket{le="X"}` (`none` →
//!   `+Inf`, also written as `…_count`). Every `upper_bound` tag becomes `le`
//!   (`none`/`inf` → `+Inf`); `lower_bound` is dropped from buckets.
//! - **distributions** (raw samples) → `<name>_count` and `<name>_sum` cumulative
//!   counters.
//! - a **monotonic count** (the raw counter, when a producer submits one) → its value.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use meshmon_core::{Metric, MetricValue, Tags};

use super::{Encoded, Format};

/// The remote-write format, with the cumulative sums of the count series.
#[derive(Debug)]
pub struct RemoteWrite {
    host: String,
    max_series: usize,
    /// Cumulative sums by labels (`__name__` included), with the last time (ms) each
    /// series was seen.
    totals: HashMap<Arc<Labels>, (f64, i64)>,
    /// A series unseen this long (on the metrics' own timestamps) is forgotten: its sum
    /// restarts at 0, which Prometheus reads as a counter reset.
    expiry_ms: i64,
    /// When the sums were last swept for expired series.
    last_sweep_ms: i64,
    /// Histogram base names (`istio.mesh.request.duration.milliseconds`) whose
    /// `.bucket` counts were seen: their `.count` also writes the `+Inf` bucket.
    bucket_bases: HashSet<Arc<str>>,
    /// Label sets by (Datadog name, tags, what is made of them): series repeat every
    /// interval, so their labels are built once (cleared when it outgrows `max_series`).
    cache: HashMap<(Arc<str>, Tags, Variant), Arc<Labels>>,
}

/// Label pairs, sorted by name (`__name__` included).
pub type Labels = Vec<(String, String)>;

/// One Prometheus sample: its labels (`__name__` included), value, milliseconds.
pub type PromSample = (Arc<Labels>, f64, i64);

/// Which series a metric's labels are built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Variant {
    /// The metric's own name and tags.
    Plain,
    /// A V1 `<base>.count` bucket gauge → `<base>_bucket`.
    V1Bucket,
    /// A V1 `<base>.count` `upper_bound:none` gauge → `<base>_count`.
    V1Count,
    /// `<base>.count` → `<base>_bucket{le="+Inf"}`.
    InfBucket,
    /// A distribution's `<name>_count`.
    DistCount,
    /// A distribution's `<name>_sum`.
    DistSum,
    /// A non-cumulative bucket's series without `le` (`<name>_bucket`).
    Group,
}

/// What a metric contributes before the cumulative sums.
enum Val {
    /// Written as is.
    Abs(f64),
    /// Added to the series' sum, the sum is written.
    Delta(f64),
}

impl RemoteWrite {
    /// A format whose series carry `host` and which tracks at most `max_series` sums.
    pub fn new(host: String, max_series: usize) -> Self {
        RemoteWrite {
            host,
            max_series,
            totals: HashMap::new(),
            expiry_ms: 600_000,
            last_sweep_ms: i64::MIN,
            bucket_bases: HashSet::new(),
            cache: HashMap::new(),
        }
    }

    /// Forgets a series' sum after `expiry` without a sample (default 10 minutes).
    pub fn with_expiry(mut self, expiry: Duration) -> Self {
        self.expiry_ms = i64::try_from(expiry.as_millis()).unwrap_or(i64::MAX);
        self
    }

    /// Series whose sums are tracked.
    pub fn tracked_series(&self) -> usize {
        self.totals.len()
    }

    /// Drops the sums of series unseen for `expiry` before `now_ms`.
    fn sweep(&mut self, now_ms: i64) {
        let cutoff = now_ms.saturating_sub(self.expiry_ms);
        self.totals.retain(|_, (_, seen)| *seen >= cutoff);
        self.last_sweep_ms = now_ms;
    }

    /// The labels of `m` for `v`, from the cache.
    fn lab(&mut self, m: &Metric, v: Variant) -> Arc<Labels> {
        let key = (m.name.clone(), m.tags.clone(), v);
        if let Some(l) = self.cache.get(&key) {
            return l.clone();
        }
        let bucket = || match m.name.strip_suffix(".count") {
            Some(base) => format!("{base}.bucket"),
            None => format!("{}.bucket", m.name),
        };
        let l = match v {
            Variant::Plain => self.build(&m.name, &m.tags, &[], None),
            Variant::V1Bucket => self.build(&bucket(), &m.tags, &[], None),
            Variant::V1Count => self.build(&m.name, &m.tags, &["upper_bound"], None),
            Variant::InfBucket => self.build(&bucket(), &m.tags, &[], Some("+Inf")),
            Variant::DistCount => self.build(&format!("{}.count", m.name), &m.tags, &[], None),
            Variant::DistSum => self.build(&format!("{}.sum", m.name), &m.tags, &[], None),
            Variant::Group => {
                let name = if m.name.ends_with(".bucket") {
                    m.name.to_string()
                } else {
                    format!("{}.bucket", m.name)
                };
                self.build(&name, &m.tags, &["upper_bound", "lower_bound"], None)
            }
        };
        let l = Arc::new(l);
        if self.cache.len() >= self.max_series {
            self.cache.clear();
        }
        self.cache.insert(key, l.clone());
        l
    }

    /// The Prometheus samples of `metrics` with the cumulative sums applied; the second
    /// value counts skipped samples.
    pub fn convert(&mut self, metrics: &[Metric]) -> (Vec<PromSample>, usize) {
        for m in metrics {
            if let Some(base) = m.name.strip_suffix(".bucket")
                && m.tags.get("upper_bound").is_some()
                && !self.bucket_bases.contains(base)
                && self.bucket_bases.len() < self.max_series
            {
                self.bucket_bases.insert(Arc::from(base));
            }
        }
        let mut outs: Vec<(Arc<Labels>, Val, i64)> = Vec::with_capacity(metrics.len());
        let mut unknown = 0;
        // Non-cumulative buckets: series without `le` → (upper, count, ts).
        let mut groups: BTreeMap<Arc<Labels>, Vec<(f64, f64, i64)>> = BTreeMap::new();
        for m in metrics {
            let ts = m.timestamp.as_millis();
            match &m.value {
                MetricValue::Gauge(v) | MetricValue::MonotonicCount(v) => {
                    // Datadog's V1 buckets: `<base>.count` gauges of the raw cumulative
                    // bucket counts tagged `upper_bound:` (`none` for the total).
                    if m.name.ends_with(".count")
                        && let Some(up) = m.tags.get("upper_bound")
                    {
                        let total = parse_bound(up).is_some_and(f64::is_infinite);
                        outs.push((self.lab(m, Variant::V1Bucket), Val::Abs(*v), ts));
                        if total {
                            outs.push((self.lab(m, Variant::V1Count), Val::Abs(*v), ts));
                        }
                        continue;
                    }
                    outs.push((self.lab(m, Variant::Plain), Val::Abs(*v), ts));
                }
                MetricValue::Rate { value, .. } => {
                    outs.push((self.lab(m, Variant::Plain), Val::Abs(*value), ts));
                }
                MetricValue::Count(d) => {
                    let upper = m.tags.get("upper_bound");
                    let is_bucket = m.name.ends_with(".bucket") && upper.is_some();
                    if is_bucket && m.tags.get("lower_bound").is_some() {
                        let up = upper.and_then(parse_bound).unwrap_or(f64::INFINITY);
                        let key = self.lab(m, Variant::Group);
                        groups.entry(key).or_default().push((up, *d, ts));
                        continue;
                    }
                    outs.push((self.lab(m, Variant::Plain), Val::Delta(*d), ts));
                    // The +Inf bucket of a histogram whose buckets we export.
                    if !is_bucket
                        && let Some(base) = m.name.strip_suffix(".count")
                        && self.bucket_bases.contains(base)
                    {
                        outs.push((self.lab(m, Variant::InfBucket), Val::Delta(*d), ts));
                    }
                }
                MetricValue::HistogramBucket {
                    count, upper_bound, ..
                } => {
                    let key = self.lab(m, Variant::Group);
                    groups
                        .entry(key)
                        .or_default()
                        .push((*upper_bound, *count as f64, ts));
                }
                MetricValue::Distribution(vs) => {
                    let n = vs.len() as f64;
                    let sum = vs.iter().sum::<f64>();
                    outs.push((self.lab(m, Variant::DistCount), Val::Delta(n), ts));
                    outs.push((self.lab(m, Variant::DistSum), Val::Delta(sum), ts));
                }
                // A value type added to meshmon-core later: counted, not sent.
                _ => unknown += 1,
            }
        }
        // Non-cumulative buckets → cumulative `le` buckets, per submission (timestamp).
        for (labels, mut bs) in groups {
            bs.sort_by(|a, b| a.2.cmp(&b.2).then(a.0.total_cmp(&b.0)));
            let mut acc = 0.0;
            let mut last_ts = None;
            for (up, d, ts) in bs {
                if last_ts != Some(ts) {
                    acc = 0.0;
                    last_ts = Some(ts);
                }
                acc += d;
                let le = if up.is_infinite() {
                    "+Inf".to_owned()
                } else {
                    fmt_f64(up)
                };
                let mut l = (*labels).clone();
                l.push(("le".into(), le));
                l.sort();
                outs.push((Arc::new(l), Val::Delta(acc), ts));
            }
        }
        let mut samples = Vec::with_capacity(outs.len());
        let mut skipped = unknown;
        // Expired sums go once a minute, and before a new series is refused.
        let newest = outs.iter().map(|o| o.2).max().unwrap_or(i64::MIN);
        if newest.saturating_sub(self.last_sweep_ms) >= 60_000 {
            self.sweep(newest);
        }
        for (labels, val, ts) in outs {
            let v = match val {
                Val::Abs(v) => v,
                Val::Delta(d) => {
                    if self.totals.len() >= self.max_series
                        && !self.totals.contains_key(&*labels)
                        && self.last_sweep_ms != newest
                    {
                        self.sweep(newest);
                    }
                    let full = self.totals.len() >= self.max_series;
                    match self.totals.get_mut(&*labels) {
                        Some((t, seen)) => {
                            *t += d;
                            *seen = (*seen).max(ts);
                            *t
                        }
                        None if !full => {
                            self.totals.insert(labels.clone(), (d, ts));
                            d
                        }
                        None => {
                            skipped += 1;
                            continue;
                        }
                    }
                }
            };
            samples.push((labels, v, ts));
        }
        (samples, skipped)
    }

    /// The labels of a series named after `dd_name` with `tags` (`skip` keys left out,
    /// `le` added when given), `__name__` included, sorted.
    fn build(&self, dd_name: &str, tags: &Tags, skip: &[&str], le: Option<&str>) -> Labels {
        let mut by_key: BTreeMap<String, Vec<std::borrow::Cow<'_, str>>> = BTreeMap::new();
        for t in tags.iter() {
            match t.key() {
                // An empty label value is no label in Prometheus.
                Some(_) if t.value().is_empty() => {}
                Some(k) if skip.contains(&k) => {}
                Some("upper_bound") => {
                    let le = le_text(t.value());
                    by_key.entry("le".into()).or_default().push(le);
                }
                Some(k) => by_key
                    .entry(label_name(k))
                    .or_default()
                    .push(t.value().into()),
                None => by_key
                    .entry(label_name(t.value()))
                    .or_default()
                    .push("true".into()),
            }
        }
        let mut out: Labels = by_key
            .into_iter()
            .map(|(k, mut vs)| {
                vs.sort_unstable();
                vs.dedup();
                (k, vs.join(","))
            })
            .collect();
        if let Some(le) = le {
            out.retain(|(k, _)| k != "le");
            out.push(("le".into(), le.to_owned()));
        }
        if !out.iter().any(|(k, _)| k == "host") && !self.host.is_empty() {
            out.push(("host".into(), self.host.clone()));
        }
        if !name_is_reversible(dd_name) {
            out.retain(|(k, _)| k != "dd_metric");
            out.push(("dd_metric".into(), dd_name.to_owned()));
        }
        out.push(("__name__".into(), prom_name(dd_name)));
        out.sort();
        out
    }
}

impl Format for RemoteWrite {
    fn encode(&mut self, chunks: &[(&[Metric], Duration)]) -> Result<Encoded, String> {
        let mut series: BTreeMap<Arc<Labels>, Vec<(f64, i64)>> = BTreeMap::new();
        let mut skipped = 0;
        let mut metrics = 0;
        for (ms, _) in chunks {
            metrics += ms.len();
            let (samples, s) = self.convert(ms);
            skipped += s;
            for (labels, v, ts) in samples {
                series.entry(labels).or_default().push((v, ts));
            }
        }
        let mut req = WriteRequest::default();
        for (labels, mut samples) in series {
            samples.sort_by_key(|s| s.1);
            // One sample per timestamp: the last one wins.
            samples.dedup_by(|later, earlier| {
                if later.1 == earlier.1 {
                    earlier.0 = later.0;
                    true
                } else {
                    false
                }
            });
            req.add(&labels, &samples);
        }
        let proto = req.finish();
        let body = snap::raw::Encoder::new()
            .compress_vec(&proto)
            .map_err(|e| format!("snappy: {e}"))?;
        Ok(Encoded {
            body,
            headers: vec![
                ("Content-Encoding", "snappy".into()),
                ("Content-Type", "application/x-protobuf".into()),
                ("X-Prometheus-Remote-Write-Version", "0.1.0".into()),
            ],
            metrics: metrics - skipped.min(metrics),
            skipped,
        })
    }
}

/// Parses a Datadog bound tag value (`0.5`, `1000.0`, `inf`, `none`).
fn parse_bound(s: &str) -> Option<f64> {
    match s {
        "none" | "inf" | "+inf" | "Inf" | "+Inf" => Some(f64::INFINITY),
        _ => s.parse().ok(),
    }
}

/// The `le` text of an `upper_bound` tag value: the number as written, `+Inf` for
/// Datadog's spellings of infinity.
fn le_text(s: &str) -> std::borrow::Cow<'_, str> {
    match parse_bound(s) {
        Some(v) if v.is_infinite() => "+Inf".into(),
        _ => s.into(),
    }
}

fn fmt_f64(v: f64) -> String {
    let mut s = String::new();
    let _ = write!(s, "{v}");
    s
}

/// `istio.mesh.request.count` → `istio_mesh_request_count`: `[a-zA-Z0-9_]` kept, any
/// other character `_`, a leading digit prefixed with `_`.
pub fn prom_name(dd: &str) -> String {
    let mut out = String::with_capacity(dd.len() + 1);
    if dd.starts_with(|c: char| c.is_ascii_digit()) || dd.is_empty() {
        out.push('_');
    }
    out.extend(dd.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        }
    }));
    out
}

/// A tag key as a label name (`[a-zA-Z_][a-zA-Z0-9_]*`, not starting `__`).
pub fn label_name(key: &str) -> String {
    let n = prom_name(key);
    if n.starts_with("__") {
        format!("tag{n}")
    } else {
        n
    }
}

/// Whether `prom_name(dd)` reverses to `dd` by "`_` → `.`".
pub fn name_is_reversible(dd: &str) -> bool {
    !dd.is_empty()
        && !dd.starts_with(|c: char| c.is_ascii_digit())
        && dd.chars().all(|c| c.is_ascii_alphanumeric() || c == '.')
}

/// The reverse of [`prom_name`] for a reversible name (see [`name_is_reversible`]);
/// other series carry their Datadog name in `dd_metric`.
pub fn dd_name(prom: &str) -> String {
    prom.replace('_', ".")
}

// ---- protobuf (proto3 wire format, https://protobuf.dev/programming-guides/encoding/)

/// `prometheus.WriteRequest { repeated TimeSeries timeseries = 1; }` with
/// `TimeSeries { repeated Label labels = 1; repeated Sample samples = 2; }`,
/// `Label { string name = 1; string value = 2; }` and
/// `Sample { double value = 1; int64 timestamp = 2; }` (milliseconds).
#[derive(Debug, Default)]
pub struct WriteRequest {
    buf: Vec<u8>,
    scratch: Vec<u8>,
    item: Vec<u8>,
}

const WIRE_VARINT: u8 = 0;
const WIRE_I64: u8 = 1;
const WIRE_LEN: u8 = 2;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_key(out: &mut Vec<u8>, field: u8, wire: u8) {
    out.push((field << 3) | wire);
}

fn put_bytes(out: &mut Vec<u8>, field: u8, b: &[u8]) {
    put_key(out, field, WIRE_LEN);
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

impl WriteRequest {
    /// Appends one `TimeSeries`: `labels` must be sorted by name, `samples` (value,
    /// milliseconds) by time.
    pub fn add(&mut self, labels: &[(String, String)], samples: &[(f64, i64)]) {
        self.scratch.clear();
        for (k, v) in labels {
            self.item.clear();
            put_bytes(&mut self.item, 1, k.as_bytes());
            put_bytes(&mut self.item, 2, v.as_bytes());
            put_bytes(&mut self.scratch, 1, &self.item);
        }
        for &(v, ts) in samples {
            self.item.clear();
            put_key(&mut self.item, 1, WIRE_I64);
            self.item.extend_from_slice(&v.to_le_bytes());
            put_key(&mut self.item, 2, WIRE_VARINT);
            // int64: negative values are ten-byte two's complement varints.
            put_varint(&mut self.item, ts as u64);
            put_bytes(&mut self.scratch, 2, &self.item);
        }
        put_bytes(&mut self.buf, 1, &self.scratch);
    }

    /// The serialized message.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshmon_core::{Tag, Timestamp};

    fn tags(s: &str) -> Tags {
        let mut t = Tags::new();
        for x in s.split_whitespace() {
            t.insert(x.parse::<Tag>().unwrap());
        }
        t
    }

    fn m(name: &str, v: MetricValue, t: &str, s: i64) -> Metric {
        Metric::new(name, v, tags(t), Timestamp::from_secs(s))
    }

    #[test]
    fn encodes_the_spec_bytes() {
        // WriteRequest{timeseries:[{labels:[{__name__,"a"}], samples:[{1.0, 1000}]}]},
        // worked out by hand from the proto3 encoding rules.
        let mut w = WriteRequest::default();
        w.add(&[("__name__".into(), "a".into())], &[(1.0, 1000)]);
        let want: Vec<u8> = [
            &[0x0a, 29][..], // timeseries, 29 bytes
            &[0x0a, 13],     // labels, 13 bytes
            &[0x0a, 8],      // name, 8 bytes
            b"__name__",
            &[0x12, 1, b'a'],                      // value
            &[0x12, 12],                           // samples, 12 bytes
            &[0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f], // value: double 1.0
            &[0x10, 0xe8, 0x07],                   // timestamp: varint 1000
        ]
        .concat();
        assert_eq!(w.finish(), want);
        // A negative timestamp is a ten-byte varint.
        let mut v = Vec::new();
        put_varint(&mut v, -1i64 as u64);
        assert_eq!(
            v,
            [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
        );
    }

    /// A minimal decoder of the same wire format, for the round trip below.
    fn varint(b: &[u8], i: &mut usize) -> u64 {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let x = b[*i];
            *i += 1;
            v |= u64::from(x & 0x7f) << shift;
            if x < 0x80 {
                return v;
            }
            shift += 7;
        }
    }

    fn fields(b: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut i = 0;
        let mut out = Vec::new();
        while i < b.len() {
            let key = varint(b, &mut i);
            let (field, wire) = ((key >> 3) as u8, (key & 7) as u8);
            let v = match wire {
                0 => varint(b, &mut i).to_le_bytes().to_vec(),
                1 => {
                    i += 8;
                    b[i - 8..i].to_vec()
                }
                2 => {
                    let n = varint(b, &mut i) as usize;
                    i += n;
                    b[i - n..i].to_vec()
                }
                w => panic!("wire type {w}"),
            };
            out.push((field, v));
        }
        out
    }

    type Decoded = Vec<(Vec<(String, String)>, Vec<(f64, i64)>)>;

    fn decode(proto: &[u8]) -> Decoded {
        fields(proto)
            .into_iter()
            .map(|(f, ts)| {
                assert_eq!(f, 1);
                let mut labels = Vec::new();
                let mut samples = Vec::new();
                for (f, v) in fields(&ts) {
                    let inner = fields(&v);
                    if f == 1 {
                        labels.push((
                            String::from_utf8(inner[0].1.clone()).unwrap(),
                            String::from_utf8(inner[1].1.clone()).unwrap(),
                        ));
                    } else {
                        let val = f64::from_le_bytes(inner[0].1[..8].try_into().unwrap());
                        let t = i64::from_le_bytes(inner[1].1[..8].try_into().unwrap());
                        samples.push((val, t));
                    }
                }
                (labels, samples)
            })
            .collect()
    }

    fn encode(rw: &mut RemoteWrite, ms: &[Metric]) -> Decoded {
        let e = rw.encode(&[(ms, Duration::from_secs(15))]).unwrap();
        assert!(e.headers.contains(&("Content-Encoding", "snappy".into())));
        let proto = snap::raw::Decoder::new().decompress_vec(&e.body).unwrap();
        decode(&proto)
    }

    fn find<'a>(d: &'a Decoded, want: &[(&str, &str)]) -> &'a [(f64, i64)] {
        let hit: Vec<_> = d
            .iter()
            .filter(|(l, _)| {
                want.iter()
                    .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .collect();
        assert_eq!(hit.len(), 1, "{want:?} in {d:?}");
        &hit[0].1
    }

    #[test]
    fn names_and_labels_follow_the_rule() {
        assert_eq!(
            prom_name("istio.mesh.request.count"),
            "istio_mesh_request_count"
        );
        assert_eq!(prom_name("9lives-x"), "_9lives_x");
        assert_eq!(
            dd_name("istio_mesh_request_count"),
            "istio.mesh.request.count"
        );
        assert!(name_is_reversible("istio.mesh.request.count"));
        assert!(!name_is_reversible(
            "trace.http.request.hits.by_http_status"
        ));
        assert_eq!(label_name("kube-namespace"), "kube_namespace");
        assert_eq!(label_name("__x"), "tag__x");

        let mut rw = RemoteWrite::new("node-1".into(), 100);
        let d = encode(
            &mut rw,
            &[
                m(
                    "istio.mesh.request.count",
                    MetricValue::Count(5.0),
                    "b:2 a:1 a:0 Zed:z bare",
                    10,
                ),
                m(
                    "trace.http.request.hits.by_http_status",
                    MetricValue::Gauge(2.0),
                    "host:h2",
                    10,
                ),
            ],
        );
        let (labels, samples) = &d[0];
        let names: Vec<&str> = labels.iter().map(|(k, _)| k.as_str()).collect();
        // Byte order: uppercase sorts before `__name__`.
        assert_eq!(names, ["Zed", "__name__", "a", "b", "bare", "host"]);
        assert_eq!(labels[1].1, "istio_mesh_request_count");
        assert_eq!(labels[2].1, "0,1");
        assert_eq!(labels[4].1, "true");
        assert_eq!(labels[5].1, "node-1");
        assert_eq!(samples, &[(5.0, 10_000)]);
        let s = find(
            &d,
            &[
                ("dd_metric", "trace.http.request.hits.by_http_status"),
                ("host", "h2"),
            ],
        );
        assert_eq!(s, &[(2.0, 10_000)]);
    }

    #[test]
    fn counts_become_cumulative_and_buckets_get_le_and_inf() {
        let mut rw = RemoteWrite::new("n".into(), 100);
        let base = "istio.mesh.request.duration.milliseconds";
        let scrape = |b1: f64, b2: f64, c: f64, s| {
            vec![
                m(
                    &format!("{base}.bucket"),
                    MetricValue::Count(b1),
                    "upper_bound:1.0 app:x",
                    s,
                ),
                m(
                    &format!("{base}.bucket"),
                    MetricValue::Count(b2),
                    "upper_bound:10.0 app:x",
                    s,
                ),
                m(&format!("{base}.count"), MetricValue::Count(c), "app:x", s),
                m(
                    &format!("{base}.sum"),
                    MetricValue::Count(c * 3.0),
                    "app:x",
                    s,
                ),
            ]
        };
        let name = "istio_mesh_request_duration_milliseconds_bucket";
        let d = encode(&mut rw, &scrape(2.0, 5.0, 6.0, 15));
        assert_eq!(
            find(&d, &[("__name__", name), ("le", "1.0")]),
            &[(2.0, 15_000)]
        );
        assert_eq!(
            find(&d, &[("__name__", name), ("le", "+Inf")]),
            &[(6.0, 15_000)]
        );
        assert!(
            !d.iter()
                .any(|(l, _)| l.iter().any(|(k, _)| k == "upper_bound"))
        );
        let d = encode(&mut rw, &scrape(1.0, 1.0, 4.0, 30));
        assert_eq!(
            find(&d, &[("__name__", name), ("le", "1.0")]),
            &[(3.0, 30_000)]
        );
        assert_eq!(
            find(&d, &[("__name__", name), ("le", "10.0")]),
            &[(6.0, 30_000)]
        );
        assert_eq!(
            find(&d, &[("__name__", name), ("le", "+Inf")]),
            &[(10.0, 30_000)]
        );
        assert_eq!(
            find(
                &d,
                &[("__name__", "istio_mesh_request_duration_milliseconds_sum")]
            ),
            &[(30.0, 30_000)]
        );
        // Gauges are written as they are.
        let d = encode(&mut rw, &[m("g", MetricValue::Gauge(7.5), "", 1)]);
        assert_eq!(find(&d, &[("__name__", "g")]), &[(7.5, 1000)]);
    }

    #[test]
    fn non_cumulative_buckets_are_summed_up_to_each_bound() {
        let mut rw = RemoteWrite::new("n".into(), 100);
        let hb = |lo: f64, up: f64, c: u64| {
            Metric::new(
                "lat",
                MetricValue::HistogramBucket {
                    count: c,
                    lower_bound: lo,
                    upper_bound: up,
                    monotonic: true,
                },
                tags(&format!("lower_bound:{lo} upper_bound:{up}")),
                Timestamp::from_secs(1),
            )
        };
        let d = encode(
            &mut rw,
            &[
                hb(1.0, 5.0, 3),
                hb(f64::NEG_INFINITY, 1.0, 2),
                hb(5.0, f64::INFINITY, 1),
            ],
        );
        assert_eq!(find(&d, &[("le", "1")]), &[(2.0, 1000)]);
        assert_eq!(find(&d, &[("le", "5")]), &[(5.0, 1000)]);
        assert_eq!(find(&d, &[("le", "+Inf")]), &[(6.0, 1000)]);
        assert!(
            d[0].0
                .iter()
                .any(|(k, v)| k == "__name__" && v == "lat_bucket")
        );
    }

    #[test]
    fn datadog_v1_bucket_gauges_become_a_histogram() {
        let mut rw = RemoteWrite::new("n".into(), 100);
        let base = "istio.mesh.request.duration.milliseconds";
        let d = encode(
            &mut rw,
            &[
                m(
                    &format!("{base}.count"),
                    MetricValue::Gauge(4.0),
                    "upper_bound:1.0",
                    5,
                ),
                m(
                    &format!("{base}.count"),
                    MetricValue::Gauge(9.0),
                    "upper_bound:none",
                    5,
                ),
                m(&format!("{base}.sum"), MetricValue::Gauge(20.0), "", 5),
            ],
        );
        let b = "istio_mesh_request_duration_milliseconds_bucket";
        assert_eq!(find(&d, &[("__name__", b), ("le", "1.0")]), &[(4.0, 5000)]);
        assert_eq!(find(&d, &[("__name__", b), ("le", "+Inf")]), &[(9.0, 5000)]);
        let c = find(
            &d,
            &[("__name__", "istio_mesh_request_duration_milliseconds_count")],
        );
        assert_eq!(c, &[(9.0, 5000)]);
        assert_eq!(d.len(), 4);
    }

    #[test]
    fn the_series_bound_is_counted() {
        let mut rw = RemoteWrite::new("n".into(), 2).with_expiry(Duration::from_secs(60));
        let ms: Vec<Metric> = (0..4)
            .map(|i| m("c", MetricValue::Count(1.0), &format!("i:{i}"), 1))
            .collect();
        let e = rw.encode(&[(&ms, Duration::from_secs(1))]).unwrap();
        assert_eq!((e.metrics, e.skipped), (2, 2));
        // Two minutes later the first two have expired: room for new series, and an
        // old one comes back from 0.
        let later = [
            m("c", MetricValue::Count(1.0), "i:2", 121),
            m("c", MetricValue::Count(1.0), "i:0", 121),
        ];
        let d = encode(&mut rw, &later);
        assert_eq!(rw.tracked_series(), 2);
        assert_eq!(find(&d, &[("i", "0")]), &[(1.0, 121_000)]);
        assert_eq!(find(&d, &[("i", "2")]), &[(1.0, 121_000)]);
        // A series seen within the expiry keeps its sum.
        let d = encode(&mut rw, &[m("c", MetricValue::Count(2.0), "i:0", 150)]);
        assert_eq!(find(&d, &[("i", "0")]), &[(3.0, 150_000)]);
    }
}
