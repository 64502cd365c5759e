//! The Datadog metrics intake, v1: `POST <dd_url>/api/v1/series`
//! (<https://docs.datadoghq.com/api/latest/metrics/#submit-metrics>), the JSON the
//! Agent's serializer writes:
//!
//! ```json
//! {"series":[{"metric":"istio.mesh.request.count","points":[[1700000000,5.0]],
//!   "type":"count","interval":15,"host":"node-1","tags":["app:x","env:prod"]}]}
//! ```
//!
//! with the `DD-API-KEY` header and the body zlib-deflated (`Content-Encoding: deflate`,
//! as the Agent sends v1 series) or gzipped (`exports.datadog.compression`).
//!
//! Types, as the Agent's aggregator sends them: gauges → `gauge`; counts (per-interval
//! deltas, including the scrape loop's monotonic-counter deltas and histogram buckets)
//! → `count` with `interval` the interval they cover (the check's scrape interval, the
//! DogStatsD or trace-stats flush interval); rates → `rate` with their interval; a raw
//! monotonic counter → `gauge`; a distribution's samples → `<name>.count` (`count`) and
//! `<name>.avg`, `<name>.min`, `<name>.max` (`gauge`), the Agent's histogram aggregates
//! (v1 series cannot carry sketches). Non-finite values cannot be written in JSON: they
//! are skipped and counted.

use std::io::Write as _;
use std::time::Duration;

use meshmon_core::{Metric, MetricValue};
use serde::Serialize;

use super::{Encoded, Format};

/// Body encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// zlib (`Content-Encoding: deflate`), what the Agent sends.
    Deflate,
    /// gzip.
    Gzip,
    /// Plain JSON.
    None,
}

impl Compression {
    /// `deflate`, `gzip` or `none`.
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        match s {
            "deflate" => Ok(Self::Deflate),
            "gzip" => Ok(Self::Gzip),
            "none" => Ok(Self::None),
            other => anyhow::bail!(
                "exports.datadog.compression: {other:?}: expected deflate, gzip or none"
            ),
        }
    }
}

/// The Datadog series format.
#[derive(Debug)]
pub struct DatadogSeries {
    host: String,
    api_key: String,
    compression: Compression,
}

/// One entry of `series`.
#[derive(Debug, Serialize, PartialEq)]
pub struct Series<'a> {
    /// Metric name.
    pub metric: std::borrow::Cow<'a, str>,
    /// `[[timestamp seconds, value]]`.
    pub points: [(i64, f64); 1],
    /// `gauge`, `count` or `rate`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Seconds a `count` or `rate` covers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<u64>,
    /// The host.
    pub host: &'a str,
    /// `key:value` tags.
    pub tags: Vec<&'a str>,
}

/// The request body.
#[derive(Debug, Serialize)]
pub struct Payload<'a> {
    /// The series.
    pub series: Vec<Series<'a>>,
}

impl DatadogSeries {
    /// A format sending as `host` with `api_key`.
    pub fn new(host: String, api_key: String, compression: Compression) -> Self {
        DatadogSeries {
            host,
            api_key,
            compression,
        }
    }

    /// The series of `chunks`; the second value counts skipped metrics.
    pub fn series<'a>(&'a self, chunks: &[(&'a [Metric], Duration)]) -> (Vec<Series<'a>>, usize) {
        let mut out = Vec::new();
        let mut skipped = 0;
        for (ms, interval) in chunks {
            let secs = interval.as_secs().max(1);
            for m in *ms {
                let ts = m.timestamp.as_secs();
                let tags: Vec<&str> = m.tags.iter().map(|t| t.as_str()).collect();
                let one = |metric: std::borrow::Cow<'a, str>, v: f64, kind, interval| Series {
                    metric,
                    points: [(ts, v)],
                    kind,
                    interval,
                    host: &self.host,
                    tags: tags.clone(),
                };
                let mut series: [Option<Series<'a>>; 4] = [None, None, None, None];
                match &m.value {
                    MetricValue::Gauge(v) | MetricValue::MonotonicCount(v) => {
                        series[0] = Some(one(m.name.as_ref().into(), *v, "gauge", None));
                    }
                    MetricValue::Count(v) => {
                        series[0] = Some(one(m.name.as_ref().into(), *v, "count", Some(secs)));
                    }
                    MetricValue::HistogramBucket { count, .. } => {
                        let v = *count as f64;
                        series[0] = Some(one(m.name.as_ref().into(), v, "count", Some(secs)));
                    }
                    MetricValue::Rate { value, interval } => {
                        let i = interval.as_secs().max(1);
                        series[0] = Some(one(m.name.as_ref().into(), *value, "rate", Some(i)));
                    }
                    // Nothing was observed: nothing to send.
                    MetricValue::Distribution(vs) if vs.is_empty() => {}
                    MetricValue::Distribution(vs) => {
                        let n = vs.len() as f64;
                        let sum: f64 = vs.iter().sum();
                        let min = vs.iter().copied().fold(f64::INFINITY, f64::min);
                        let max = vs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                        let name = |s: &str| format!("{}{s}", m.name).into();
                        series = [
                            Some(one(name(".count"), n, "count", Some(secs))),
                            Some(one(name(".avg"), sum / n, "gauge", None)),
                            Some(one(name(".min"), min, "gauge", None)),
                            Some(one(name(".max"), max, "gauge", None)),
                        ];
                    }
                    // A value type added to meshmon-core later: counted, not sent.
                    _ => {
                        skipped += 1;
                        continue;
                    }
                }
                if series.iter().flatten().all(|s| s.points[0].1.is_finite()) {
                    out.extend(series.into_iter().flatten());
                } else {
                    skipped += 1;
                }
            }
        }
        (out, skipped)
    }
}

impl Format for DatadogSeries {
    fn encode(&mut self, chunks: &[(&[Metric], Duration)]) -> Result<Encoded, String> {
        let total: usize = chunks.iter().map(|(m, _)| m.len()).sum();
        let (series, skipped) = self.series(chunks);
        let json = serde_json::to_vec(&Payload { series }).map_err(|e| format!("JSON: {e}"))?;
        let mut headers = vec![("Content-Type", "application/json".to_owned())];
        if !self.api_key.is_empty() {
            headers.push(("DD-API-KEY", self.api_key.clone()));
        }
        let body = match self.compression {
            Compression::None => json,
            Compression::Deflate => {
                headers.push(("Content-Encoding", "deflate".into()));
                let mut e =
                    flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(&json).map_err(|e| e.to_string())?;
                e.finish().map_err(|e| e.to_string())?
            }
            Compression::Gzip => {
                headers.push(("Content-Encoding", "gzip".into()));
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(&json).map_err(|e| e.to_string())?;
                e.finish().map_err(|e| e.to_string())?
            }
        };
        Ok(Encoded {
            body,
            headers,
            metrics: total - skipped.min(total),
            skipped,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;
    use meshmon_core::{Tag, Tags, Timestamp};

    fn m(name: &str, v: MetricValue) -> Metric {
        let mut t = Tags::new();
        t.insert(Tag::new("app", "x").unwrap());
        t.insert(Tag::new("env", "prod").unwrap());
        Metric::new(name, v, t, Timestamp::from_secs(1_700_000_000))
    }

    #[test]
    fn payload_has_the_agents_shape() {
        let mut f = DatadogSeries::new("node-1".into(), "k3y".into(), Compression::Deflate);
        let ms = [
            m("istio.mesh.request.count", MetricValue::Count(5.0)),
            m("istio.mesh.active", MetricValue::Gauge(2.5)),
            m(
                "req.rate",
                MetricValue::Rate {
                    value: 0.5,
                    interval: Duration::from_secs(10),
                },
            ),
            m("bad", MetricValue::Gauge(f64::NAN)),
            m("lat", MetricValue::Distribution(vec![1.0, 3.0])),
        ];
        let e = f.encode(&[(&ms, Duration::from_secs(15))]).unwrap();
        assert!(e.headers.contains(&("DD-API-KEY", "k3y".into())));
        assert!(e.headers.contains(&("Content-Encoding", "deflate".into())));
        assert_eq!((e.metrics, e.skipped), (4, 1));
        let mut json = String::new();
        flate2::read::ZlibDecoder::new(&e.body[..])
            .read_to_string(&mut json)
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let s = &v["series"];
        assert_eq!(
            s[0],
            serde_json::json!({"metric":"istio.mesh.request.count","points":[[1_700_000_000i64,5.0]],
                "type":"count","interval":15,"host":"node-1","tags":["app:x","env:prod"]})
        );
        assert_eq!(s[1]["type"], "gauge");
        assert!(s[1].get("interval").is_none());
        assert_eq!(
            (s[2]["type"].as_str(), s[2]["interval"].as_u64()),
            (Some("rate"), Some(10))
        );
        let names: Vec<&str> = s
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["metric"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "istio.mesh.request.count",
                "istio.mesh.active",
                "req.rate",
                "lat.count",
                "lat.avg",
                "lat.min",
                "lat.max"
            ]
        );
        assert_eq!(s[4]["points"][0][1], 2.0);
    }

    #[test]
    fn gzip_and_no_key() {
        let mut f = DatadogSeries::new("h".into(), String::new(), Compression::Gzip);
        let ms = [m("a", MetricValue::Gauge(1.0))];
        let e = f.encode(&[(&ms, Duration::from_secs(1))]).unwrap();
        assert!(!e.headers.iter().any(|(k, _)| *k == "DD-API-KEY"));
        let mut json = String::new();
        flate2::read::GzDecoder::new(&e.body[..])
            .read_to_string(&mut json)
            .unwrap();
        assert!(json.starts_with("{\"series\":[{\"metric\":\"a\""), "{json}");
    }
}
