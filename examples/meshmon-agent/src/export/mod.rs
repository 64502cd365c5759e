//! Exports: a copy of every metric batch the agent stores, sent to the backends the user
//! already runs — Prometheus remote write 1.0 ([`remote_write`]) and the Datadog metrics
//! intake ([`datadog`]).
//!
//! # Topology
//!
//! Producers (the scrape loop, the DogStatsD flush, the trace stats flush, the log
//! pattern counts) call [`Exports::offer`] beside `Store::insert_metrics`. `offer` never
//! blocks and never waits on the network: each enabled export has its own queue bounded
//! in metrics (`exports.<name>.queue.max_queued_metrics`); a batch that does not fit is
//! dropped whole and counted (`meshmon_export_dropped_metrics_total`). One task per
//! export takes metrics off its queue, batches them (at most `max_batch_metrics` per
//! request, at most `flush_interval` of waiting), encodes and POSTs them with a timeout,
//! and retries network errors, timeouts, 5xx and 429 with exponential back-off
//! (`min_backoff` doubled up to `max_backoff`, `max_retries` times); any other 4xx is
//! final. A failing or slow export therefore only fills (and then drops from) its own
//! queue: collection and the other exports go on.
//!
//! The queue bound counts every metric not yet sent or given up, including the request
//! being retried, so an export's memory is bounded by its queue.
//!
//! # Telemetry
//!
//! `/metrics`: `meshmon_export_{offered,sent,failed,dropped,skipped}_metrics_total`
//! (`offered = sent + failed + dropped + skipped + queue` in every snapshot),
//! `meshmon_export_requests_total{outcome}`, `meshmon_export_retries_total`,
//! `meshmon_export_queue_metrics` and `meshmon_export_queue_capacity_metrics`, each
//! labelled `export="remote_write"|"datadog"`, and the info metric
//! `meshmon_export_retry_policy{export,max_retries,min_backoff,max_backoff} 1`; `status` shows the same under
//! `exports.<name>` with the retry policy and the last error.

pub mod datadog;
pub mod remote_write;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use meshmon_core::Metric;
use tokio::sync::{mpsc, watch};

use crate::config::ExportQueueConfig;
use crate::run::Ctx;

/// One batch offered to the exports: the metrics and the interval they cover (the
/// scrape interval, the flush interval), which Datadog's `count` and `rate` carry.
#[derive(Clone, Debug)]
pub struct Batch {
    /// The metrics, shared by every export.
    pub metrics: Arc<Vec<Metric>>,
    /// The interval the counts and rates cover.
    pub interval: Duration,
}

/// Counters of one export (atomics: producers and the export task both write them).
#[derive(Debug, Default)]
pub struct ExportStats {
    /// Metrics offered by the producers (every one ends up sent, failed, dropped,
    /// skipped or is still queued: `offered = sent + failed + dropped + skipped + queued`
    /// holds in every published snapshot).
    pub offered: AtomicU64,
    /// Metrics waiting (queued, batched or being retried).
    pub queued: AtomicUsize,
    /// Metrics accepted by the server.
    pub sent: AtomicU64,
    /// Metrics given up after retries or a final 4xx.
    pub failed: AtomicU64,
    /// Metrics dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Metrics the format cannot carry (e.g. a non-finite value in Datadog JSON), or
    /// series beyond `max_series` of the remote-write cumulative state.
    pub skipped: AtomicU64,
    /// Requests accepted (2xx).
    pub requests_ok: AtomicU64,
    /// Requests given up.
    pub requests_failed: AtomicU64,
    /// Retries.
    pub retries: AtomicU64,
    /// The last error, for `status`.
    pub last_error: Mutex<Option<String>>,
}

#[derive(Debug)]
struct Sink {
    name: &'static str,
    tx: mpsc::UnboundedSender<Batch>,
    capacity: usize,
    stats: Arc<ExportStats>,
}

/// The fan-out: every enabled export's queue. Cheap to clone; empty (a no-op) when no
/// export is configured.
#[derive(Clone, Debug, Default)]
pub struct Exports {
    sinks: Arc<Vec<Sink>>,
}

impl Exports {
    /// Whether any export is on.
    pub fn is_empty(&self) -> bool {
        self.sinks.is_empty()
    }

    /// Offers a batch to every export without blocking: an export whose queue cannot
    /// take all of it drops it and counts the drop.
    pub fn offer(&self, metrics: &[Metric], interval: Duration) {
        if self.sinks.is_empty() || metrics.is_empty() {
            return;
        }
        let batch = Batch {
            metrics: Arc::new(metrics.to_vec()),
            interval,
        };
        let n = metrics.len();
        for s in self.sinks.iter() {
            s.stats.offered.fetch_add(n as u64, Ordering::Relaxed);
            // Reserve room first, so concurrent producers cannot overshoot the bound.
            let reserved = s
                .stats
                .queued
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |q| {
                    (q + n <= s.capacity).then_some(q + n)
                })
                .is_ok();
            if !reserved {
                s.stats.dropped.fetch_add(n as u64, Ordering::Relaxed);
                continue;
            }
            if s.tx.send(batch.clone()).is_err() {
                // The export task is gone (shutdown): nothing will send these.
                s.stats.queued.fetch_sub(n, Ordering::SeqCst);
                s.stats.dropped.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
    }

    /// Each export's name and counters.
    pub fn stats(&self) -> Vec<(&'static str, Arc<ExportStats>)> {
        self.sinks
            .iter()
            .map(|s| (s.name, s.stats.clone()))
            .collect()
    }
}

/// One encoded request.
#[derive(Debug)]
pub struct Encoded {
    /// The body, compressed.
    pub body: Vec<u8>,
    /// Headers besides `Content-Length`.
    pub headers: Vec<(&'static str, String)>,
    /// Metrics this request carries.
    pub metrics: usize,
    /// Metrics the format could not carry.
    pub skipped: usize,
}

/// A wire format: metrics in, one request body out.
pub trait Format: Send + Sync + 'static {
    /// Encodes `chunks` (each a slice of a batch and its interval) into one request.
    fn encode(&mut self, chunks: &[(&[Metric], Duration)]) -> Result<Encoded, String>;
}

/// Starts one task per enabled export; returns the fan-out the producers offer to and
/// the tasks to spawn.
pub fn start(
    ctx: &Ctx,
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<(Exports, Vec<(&'static str, BoxFut)>)> {
    let cfg = &ctx.cfg.exports;
    let mut sinks = Vec::new();
    let mut tasks: Vec<(&'static str, BoxFut)> = Vec::new();
    if !cfg.remote_write.url.is_empty() {
        let rw = &cfg.remote_write;
        let fmt = remote_write::RemoteWrite::new(ctx.hostname.clone(), rw.max_series)
            .with_expiry(rw.series_expiry.0);
        let (sink, fut) = exporter(ctx, stop, "remote_write", &rw.url, rw.queue, Box::new(fmt))?;
        sinks.push(sink);
        tasks.push(("export-remote-write", fut));
    }
    if cfg.datadog.enabled {
        let dd = &cfg.datadog;
        let fmt = datadog::DatadogSeries::new(
            ctx.hostname.clone(),
            ctx.cfg.api_key.clone(),
            datadog::Compression::parse(&dd.compression)?,
        );
        let (sink, fut) = exporter(
            ctx,
            stop,
            "datadog",
            &dd.series_url(),
            dd.queue,
            Box::new(fmt),
        )?;
        if ctx.cfg.api_key.is_empty() {
            ctx.log(
                "WARN",
                "export",
                "datadog: no API key (DD_API_KEY); Datadog's intake will refuse the series",
            );
        }
        sinks.push(sink);
        tasks.push(("export-datadog", fut));
    }
    Ok((
        Exports {
            sinks: Arc::new(sinks),
        },
        tasks,
    ))
}

/// An export task.
pub type BoxFut = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

fn exporter(
    ctx: &Ctx,
    stop: &watch::Receiver<bool>,
    name: &'static str,
    url: &str,
    q: ExportQueueConfig,
    fmt: Box<dyn Format>,
) -> anyhow::Result<(Sink, BoxFut)> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| anyhow::anyhow!("exports.{name}: URL {url:?}: {e}"))?;
    let (tx, rx) = mpsc::unbounded_channel();
    let stats = Arc::new(ExportStats::default());
    let task = Task {
        ctx: ctx.clone(),
        name,
        uri,
        q,
        fmt,
        stats: stats.clone(),
        client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
        pending: VecDeque::new(),
        pending_n: 0,
    };
    ctx.log(
        "INFO",
        "export",
        &format!("{name}: sending to {}", redact_url(url)),
    );
    let fut = Box::pin(task.run(rx, stop.clone()));
    Ok((
        Sink {
            name,
            tx,
            capacity: q.max_queued_metrics,
            stats,
        },
        fut,
    ))
}

/// A URL for logs and `status`: the query string (which may carry a key) cut.
pub fn redact_url(url: &str) -> String {
    match url.split_once('?') {
        Some((head, _)) => format!("{head}?***"),
        None => url.to_owned(),
    }
}

/// How long an export still takes batches after the stop signal.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);

/// What one attempt ended with.
enum Attempt {
    Ok,
    Retry(String),
    Final(String),
}

struct Task {
    ctx: Ctx,
    name: &'static str,
    uri: hyper::Uri,
    q: ExportQueueConfig,
    fmt: Box<dyn Format>,
    stats: Arc<ExportStats>,
    client: Client<HttpConnector, Full<Bytes>>,
    pending: VecDeque<Batch>,
    pending_n: usize,
}

impl Task {
    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Batch>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(self.q.flush_interval.0);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.publish();
        loop {
            tokio::select! {
                b = rx.recv(), if self.pending_n < self.q.max_batch_metrics => match b {
                    Some(b) => {
                        self.pending_n += b.metrics.len();
                        self.pending.push_back(b);
                    }
                    None => break,
                },
                _ = tick.tick() => {
                    while self.pending_n > 0 && !*stop.borrow() {
                        self.send_one(&mut stop).await;
                    }
                    self.publish();
                }
                _ = crate::run::stopped(&mut stop) => break,
            }
            while self.pending_n >= self.q.max_batch_metrics && !*stop.borrow() {
                self.send_one(&mut stop).await;
                self.publish();
            }
        }
        // Shutdown: the producers flush once more as they stop (DogStatsD, trace
        // stats); take what arrives within a short grace, then what is queued gets one
        // attempt each (no retries) within `timeout`, the rest is counted as failed.
        let grace = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        while let Ok(Some(b)) = tokio::time::timeout_at(grace, rx.recv()).await {
            self.pending_n += b.metrics.len();
            self.pending.push_back(b);
        }
        let deadline = tokio::time::Instant::now() + self.q.timeout.0;
        while self.pending_n > 0 {
            if tokio::time::Instant::now() >= deadline {
                let n = self.pending_n;
                self.pending.clear();
                self.pending_n = 0;
                self.give_up(n, "agent stopping".into());
                break;
            }
            self.send_one(&mut stop).await;
        }
        self.publish();
        self.ctx
            .log("INFO", "export", &format!("{}: stopped", self.name));
    }

    /// Sends the first `max_batch_metrics` pending metrics (retrying as configured).
    async fn send_one(&mut self, stop: &mut watch::Receiver<bool>) {
        let max = self.q.max_batch_metrics;
        // Take whole batches, or the head of one larger than what is left of the request.
        let mut taken: Vec<Batch> = Vec::new();
        let mut n = 0;
        while n < max {
            let Some(mut b) = self.pending.pop_front() else {
                break;
            };
            let room = max - n;
            if b.metrics.len() > room {
                let rest = Batch {
                    metrics: Arc::new(b.metrics[room..].to_vec()),
                    interval: b.interval,
                };
                b.metrics = Arc::new(b.metrics[..room].to_vec());
                self.pending.push_front(rest);
            }
            n += b.metrics.len();
            taken.push(b);
        }
        self.pending_n -= n;
        if n == 0 {
            return;
        }
        let chunks: Vec<(&[Metric], Duration)> = taken
            .iter()
            .map(|b| (b.metrics.as_slice(), b.interval))
            .collect();
        let enc = match self.fmt.encode(&chunks) {
            Ok(e) => e,
            Err(e) => {
                self.give_up(n, format!("encoding: {e}"));
                return;
            }
        };
        drop(chunks);
        drop(taken);
        // What the format cannot carry is handled (skipped) now; the rest is sent or
        // given up below, so no metric counts twice.
        let skipped = enc.skipped.min(n);
        if skipped > 0 {
            self.stats.queued.fetch_sub(skipped, Ordering::SeqCst);
            self.stats
                .skipped
                .fetch_add(skipped as u64, Ordering::Relaxed);
        }
        let n = n - skipped;
        if n == 0 {
            return;
        }
        let body = Bytes::from(enc.body);
        let stopping = *stop.borrow();
        let mut backoff = self.q.min_backoff.0;
        let mut attempt = 0u32;
        loop {
            match self.post(&body, &enc.headers).await {
                Attempt::Ok => {
                    self.stats.queued.fetch_sub(n, Ordering::SeqCst);
                    self.stats.sent.fetch_add(n as u64, Ordering::Relaxed);
                    self.stats.requests_ok.fetch_add(1, Ordering::Relaxed);
                    // The skipped ones count as handled too.
                    return;
                }
                Attempt::Final(e) => {
                    self.give_up(n, e);
                    return;
                }
                Attempt::Retry(e) => {
                    if stopping || attempt >= self.q.max_retries {
                        self.give_up(n, e);
                        return;
                    }
                    self.set_error(format!("{e} (retry {} in {backoff:?})", attempt + 1));
                    attempt += 1;
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    self.publish();
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = crate::run::stopped(stop) => {
                            self.give_up(n, format!("{e} (agent stopping)"));
                            return;
                        }
                    }
                    backoff = (backoff * 2).min(self.q.max_backoff.0);
                }
            }
        }
    }

    fn give_up(&self, n: usize, e: String) {
        self.stats.queued.fetch_sub(n, Ordering::SeqCst);
        self.stats.failed.fetch_add(n as u64, Ordering::Relaxed);
        self.stats.requests_failed.fetch_add(1, Ordering::Relaxed);
        self.ctx.log(
            "WARN",
            "export",
            &format!("{}: {n} metrics not sent: {e}", self.name),
        );
        self.set_error(e);
    }

    fn set_error(&self, e: String) {
        if let Ok(mut g) = self.stats.last_error.lock() {
            *g = Some(e);
        }
    }

    async fn post(&self, body: &Bytes, headers: &[(&'static str, String)]) -> Attempt {
        let mut req = hyper::Request::post(self.uri.clone()).header(
            "User-Agent",
            concat!("meshmon-agent/", env!("CARGO_PKG_VERSION")),
        );
        for (k, v) in headers {
            req = req.header(*k, v.as_str());
        }
        let req = match req.body(Full::new(body.clone())) {
            Ok(r) => r,
            Err(e) => return Attempt::Final(format!("building the request: {e}")),
        };
        let fut = async {
            let resp = self.client.request(req).await.map_err(|e| {
                // hyper-util's error hides the cause behind "client error (Connect)".
                let mut s = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(c) = src {
                    s.push_str(": ");
                    s.push_str(&c.to_string());
                    src = c.source();
                }
                s
            })?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            Ok::<_, String>((status, body))
        };
        match tokio::time::timeout(self.q.timeout.0, fut).await {
            Err(_) => Attempt::Retry(format!("timed out after {:?}", self.q.timeout.0)),
            Ok(Err(e)) => Attempt::Retry(e),
            Ok(Ok((status, body))) => {
                if status.is_success() {
                    return Attempt::Ok;
                }
                let text = String::from_utf8_lossy(&body[..body.len().min(300)])
                    .trim()
                    .to_owned();
                let msg = format!("HTTP {status}: {text}");
                if status.is_server_error() || status.as_u16() == 429 {
                    Attempt::Retry(msg)
                } else {
                    Attempt::Final(msg)
                }
            }
        }
    }

    fn publish(&self) {
        // The store's lock first: producers offer under it, and this task's own
        // transitions (queued -> sent/failed/skipped) do not run while it publishes, so
        // the counters below are one consistent snapshot.
        let Ok(mut st) = self.ctx.store.write() else {
            return;
        };
        let s = &self.stats;
        let label = [("export", self.name)];
        let last_error = s.last_error.lock().ok().and_then(|g| g.clone());
        let status = serde_json::json!({
            "offered_metrics": s.offered.load(Ordering::Relaxed),
            "url": redact_url(&self.uri.to_string()),
            "queued_metrics": s.queued.load(Ordering::SeqCst),
            "max_queued_metrics": self.q.max_queued_metrics,
            "max_batch_metrics": self.q.max_batch_metrics,
            "flush_interval": self.q.flush_interval.to_string(),
            "timeout": self.q.timeout.to_string(),
            "retry": {
                "max_retries": self.q.max_retries,
                "min_backoff": self.q.min_backoff.to_string(),
                "max_backoff": self.q.max_backoff.to_string(),
            },
            "sent_metrics": s.sent.load(Ordering::Relaxed),
            "failed_metrics": s.failed.load(Ordering::Relaxed),
            "dropped_metrics": s.dropped.load(Ordering::Relaxed),
            "skipped_metrics": s.skipped.load(Ordering::Relaxed),
            "requests_ok": s.requests_ok.load(Ordering::Relaxed),
            "requests_failed": s.requests_failed.load(Ordering::Relaxed),
            "retries": s.retries.load(Ordering::Relaxed),
            "last_error": last_error,
        });
        let t = &mut st.telemetry;
        let counters: [(&str, &'static str, u64); 6] = [
            (
                "meshmon_export_offered_metrics_total",
                "Metrics offered to an export (sent + failed + dropped + skipped + queued).",
                s.offered.load(Ordering::Relaxed),
            ),
            (
                "meshmon_export_sent_metrics_total",
                "Metrics an export's server accepted.",
                s.sent.load(Ordering::Relaxed),
            ),
            (
                "meshmon_export_failed_metrics_total",
                "Metrics an export gave up on (retries exhausted, a final 4xx, shutdown).",
                s.failed.load(Ordering::Relaxed),
            ),
            (
                "meshmon_export_dropped_metrics_total",
                "Metrics dropped because an export's queue was full.",
                s.dropped.load(Ordering::Relaxed),
            ),
            (
                "meshmon_export_skipped_metrics_total",
                "Metrics an export's format cannot carry, or beyond its series bound.",
                s.skipped.load(Ordering::Relaxed),
            ),
            (
                "meshmon_export_retries_total",
                "Requests an export retried (network error, timeout, 5xx, 429).",
                s.retries.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, v) in counters {
            t.set(name, "counter", help, &label, v as f64);
        }
        for (outcome, v) in [
            ("ok", s.requests_ok.load(Ordering::Relaxed)),
            ("failed", s.requests_failed.load(Ordering::Relaxed)),
        ] {
            t.set(
                "meshmon_export_requests_total",
                "counter",
                "Requests an export sent, by final outcome.",
                &[("export", self.name), ("outcome", outcome)],
                v as f64,
            );
        }
        t.set(
            "meshmon_export_queue_metrics",
            "gauge",
            "Metrics waiting in an export's queue (batched and retried ones included).",
            &label,
            s.queued.load(Ordering::SeqCst) as f64,
        );
        t.set(
            "meshmon_export_queue_capacity_metrics",
            "gauge",
            "An export's queue bound (exports.<name>.queue.max_queued_metrics).",
            &label,
            self.q.max_queued_metrics as f64,
        );
        let (retries, min, max) = (
            self.q.max_retries.to_string(),
            self.q.min_backoff.to_string(),
            self.q.max_backoff.to_string(),
        );
        t.set(
            "meshmon_export_retry_policy",
            "gauge",
            "An export's retry policy (info metric, always 1).",
            &[
                ("export", self.name),
                ("max_retries", &retries),
                ("min_backoff", &min),
                ("max_backoff", &max),
            ],
            1.0,
        );
        st.components
            .insert(format!("exports.{}", self.name), status);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshmon_core::{MetricValue, Tags, Timestamp};

    fn sink(cap: usize) -> (Exports, mpsc::UnboundedReceiver<Batch>, Arc<ExportStats>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(ExportStats::default());
        let e = Exports {
            sinks: Arc::new(vec![Sink {
                name: "t",
                tx,
                capacity: cap,
                stats: stats.clone(),
            }]),
        };
        (e, rx, stats)
    }

    fn metrics(n: usize) -> Vec<Metric> {
        (0..n)
            .map(|i| {
                Metric::new(
                    "a.b",
                    MetricValue::Gauge(i as f64),
                    Tags::new(),
                    Timestamp::from_secs(1),
                )
            })
            .collect()
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let (e, mut rx, stats) = sink(5);
        e.offer(&metrics(3), Duration::from_secs(10));
        e.offer(&metrics(3), Duration::from_secs(10)); // 6 > 5: dropped whole
        e.offer(&metrics(2), Duration::from_secs(10));
        assert_eq!(stats.queued.load(Ordering::SeqCst), 5);
        assert_eq!(stats.dropped.load(Ordering::SeqCst), 3);
        assert_eq!(stats.offered.load(Ordering::SeqCst), 8);
        assert_eq!(rx.try_recv().map(|b| b.metrics.len()).ok(), Some(3));
        assert_eq!(rx.try_recv().map(|b| b.metrics.len()).ok(), Some(2));
        assert!(rx.try_recv().is_err());
        drop(rx);
        // The task is gone: counted as dropped, the reservation released.
        stats.queued.store(0, Ordering::SeqCst);
        e.offer(&metrics(1), Duration::from_secs(10));
        assert_eq!(stats.dropped.load(Ordering::SeqCst), 4);
        assert_eq!(stats.queued.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn no_export_is_a_no_op() {
        let e = Exports::default();
        assert!(e.is_empty());
        e.offer(&metrics(3), Duration::from_secs(1));
        assert!(e.stats().is_empty());
    }

    /// A loopback server answering each request with the next status of `codes`.
    fn server(codes: Vec<u16>) -> String {
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            for (s, code) in l.incoming().zip(codes) {
                let Ok(mut s) = s else { continue };
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let _ = write!(
                    s,
                    "HTTP/1.1 {code} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno"
                );
            }
        });
        addr
    }

    struct Fixed;
    impl Format for Fixed {
        fn encode(&mut self, chunks: &[(&[Metric], Duration)]) -> Result<Encoded, String> {
            Ok(Encoded {
                body: b"x".to_vec(),
                headers: Vec::new(),
                metrics: chunks.iter().map(|c| c.0.len()).sum(),
                skipped: 0,
            })
        }
    }

    fn task(url: &str, q: ExportQueueConfig) -> Task {
        let cfg = crate::config::AgentConfig::default();
        let ctx = Ctx {
            cfg: Arc::new(cfg.clone()),
            store: crate::store::Store::shared(cfg.store.clone()),
            clock: Arc::new(crate::run::SystemClock),
            hostname: "h".into(),
            global_tags: Tags::new(),
            log_overrides: Arc::default(),
        };
        Task {
            ctx,
            name: "t",
            uri: url.parse().unwrap(),
            q,
            fmt: Box::new(Fixed),
            stats: Arc::new(ExportStats::default()),
            client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
            pending: VecDeque::new(),
            pending_n: 0,
        }
    }

    fn quick() -> ExportQueueConfig {
        ExportQueueConfig {
            min_backoff: crate::config::Dur(Duration::from_millis(10)),
            max_backoff: crate::config::Dur(Duration::from_millis(20)),
            max_retries: 3,
            ..ExportQueueConfig::default()
        }
    }

    #[tokio::test]
    async fn retries_network_errors_5xx_and_429_but_not_4xx() {
        let (_tx, mut stop) = watch::channel(false);
        let batch = |n| Batch {
            metrics: Arc::new(metrics(n)),
            interval: Duration::from_secs(1),
        };
        // 503, 429, then 200: two retries, sent.
        let addr = server(vec![503, 429, 200]);
        let mut t = task(&format!("http://{addr}/w"), quick());
        t.stats.queued.store(3, Ordering::SeqCst);
        t.pending.push_back(batch(3));
        t.pending_n = 3;
        t.send_one(&mut stop).await;
        assert_eq!(t.stats.retries.load(Ordering::SeqCst), 2);
        assert_eq!(t.stats.sent.load(Ordering::SeqCst), 3);
        assert_eq!(t.stats.queued.load(Ordering::SeqCst), 0);
        // 400: final at once.
        let addr = server(vec![400, 200]);
        let mut t = task(&format!("http://{addr}/w"), quick());
        t.stats.queued.store(2, Ordering::SeqCst);
        t.pending.push_back(batch(2));
        t.pending_n = 2;
        t.send_one(&mut stop).await;
        assert_eq!(t.stats.retries.load(Ordering::SeqCst), 0);
        assert_eq!(t.stats.failed.load(Ordering::SeqCst), 2);
        assert!(
            t.stats
                .last_error
                .lock()
                .unwrap()
                .as_deref()
                .unwrap()
                .contains("400")
        );
        // Nothing listening: retried max_retries times, then failed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut t = task(&format!("http://127.0.0.1:{port}/w"), quick());
        t.stats.queued.store(1, Ordering::SeqCst);
        t.pending.push_back(batch(1));
        t.pending_n = 1;
        t.send_one(&mut stop).await;
        assert_eq!(t.stats.retries.load(Ordering::SeqCst), 3);
        assert_eq!(t.stats.failed.load(Ordering::SeqCst), 1);
        let e = t.stats.last_error.lock().unwrap().clone().unwrap();
        assert!(e.to_lowercase().contains("refused"), "{e}");
    }

    #[tokio::test]
    async fn requests_are_cut_at_max_batch_metrics() {
        let (_tx, mut stop) = watch::channel(false);
        let addr = server(vec![200, 200, 200]);
        let mut q = quick();
        q.max_batch_metrics = 4;
        let mut t = task(&format!("http://{addr}/w"), q);
        for n in [3, 3] {
            t.pending.push_back(Batch {
                metrics: Arc::new(metrics(n)),
                interval: Duration::from_secs(1),
            });
        }
        t.pending_n = 6;
        t.stats.queued.store(6, Ordering::SeqCst);
        t.send_one(&mut stop).await;
        assert_eq!(t.stats.sent.load(Ordering::SeqCst), 4);
        assert_eq!((t.pending_n, t.pending.len()), (2, 1));
        t.send_one(&mut stop).await;
        assert_eq!(t.stats.sent.load(Ordering::SeqCst), 6);
        assert_eq!(t.stats.requests_ok.load(Ordering::SeqCst), 2);
        assert_eq!(t.stats.queued.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn urls_lose_their_query_in_logs() {
        assert_eq!(redact_url("http://h/x?api_key=s3cr3t"), "http://h/x?***");
        assert_eq!(redact_url("http://h/x"), "http://h/x");
    }
}
