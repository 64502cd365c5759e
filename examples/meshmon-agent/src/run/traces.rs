//! The trace intake: the Datadog endpoints on `apm.receiver_port` (8126) and Zipkin's
//! `/api/v2/spans` on `apm.zipkin_port` (9411), loopback unless
//! `apm.non_local_traffic`.
//!
//! HTTP handlers read the body (at most `apm.max_body_bytes`, else 413) and queue it for
//! the intake task over a bounded channel of `apm.queue_requests` requests. The hard
//! memory budget `apm.max_inflight_body_bytes` covers every body from its first byte
//! read until the intake has decoded it and copied what it keeps (one payload is decoded
//! at a time). A payload that finds the budget spent waits for it up to
//! `apm.decoder_timeout` (1 s, as the Datadog Agent waits for a free decoder), so that
//! under overload the CPU goes to decoding rather than to refusals. A payload that finds
//! the queue full, or the budget still spent after that wait, is refused
//! without being decoded, as the Datadog Agent refuses one (module `overload`): 429 when the
//! tracer sent `Datadog-Send-Real-Http-Status`, else 200 with the usual body; counted
//! either way, so a burst costs at most the budget and the books stay exact. The
//! intake task owns `meshmon-trace`'s receiver (decode, normalise, sample, RED stats), the
//! trace assembler and the service map; it hands kept traces to the store and, every
//! `apm.stats_flush_interval`, RED stats as Datadog's APM series
//! (`trace.<span name>.hits`, `.errors`, `.duration` by `service`, `resource`, `env`).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use http_body_util::{BodyExt, Full};
use meshmon_core::{Metric, MetricValue, Tag, Tags, Timestamp};
use meshmon_trace::Bytes;
use meshmon_trace::OwnedSpan;
use meshmon_trace::assembly::{AssembledTrace, AssemblerConfig, TraceAssembler};
use meshmon_trace::decode::Limits;
use meshmon_trace::receiver::{Receiver, ReceiverConfig, Request};
use meshmon_trace::stats::{FlushMode, GroupStats, StatsBucket, StatsConfig, apm_metrics};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};

use super::Ctx;

mod overload;
use crate::http::guard::{self, Guard, Limits as ConnLimits};
use crate::store::{Edge, ServiceRed, StoredSpan, summarize};
use overload::{Rates, Why};

/// A boxed task body.
pub type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Bound listeners, not yet serving.
#[derive(Debug)]
pub struct Bound {
    /// The Datadog intake's address.
    pub datadog_addr: SocketAddr,
    /// The Zipkin intake's address.
    pub zipkin_addr: Option<SocketAddr>,
    dd: TcpListener,
    zipkin: Option<TcpListener>,
    receiver: Receiver,
}

/// Binds the intake's listeners.
pub async fn bind(ctx: &Ctx) -> anyhow::Result<Bound> {
    let ip = if ctx.cfg.apm.non_local_traffic {
        "0.0.0.0"
    } else {
        "127.0.0.1"
    };
    let dd_addr = format!("{ip}:{}", ctx.cfg.apm.receiver_port);
    let dd = TcpListener::bind(&dd_addr)
        .await
        .with_context(|| format!("binding the trace intake on {dd_addr}"))?;
    let zipkin = match ctx.cfg.apm.zipkin_port {
        Some(p) => {
            let a = format!("{ip}:{p}");
            Some(
                TcpListener::bind(&a)
                    .await
                    .with_context(|| format!("binding the Zipkin intake on {a}"))?,
            )
        }
        None => None,
    };
    let receiver = receiver(ctx)?;
    Ok(Bound {
        receiver,
        datadog_addr: dd.local_addr()?,
        zipkin_addr: zipkin.as_ref().and_then(|z| z.local_addr().ok()),
        dd,
        zipkin,
    })
}

/// What the intake answers: status, headers, body.
type IntakeReply = (u16, Vec<(String, String)>, Vec<u8>);

struct IntakeReq {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Bytes,
    reply: oneshot::Sender<IntakeReply>,
    /// This body's share of `apm.max_inflight_body_bytes`, released once the intake has
    /// decoded it and copied what it keeps.
    _budget: tokio::sync::OwnedSemaphorePermit,
}

#[derive(Default, Debug)]
struct HttpCounters {
    requests: AtomicU64,
    rejected_queue_full: AtomicU64,
    rejected_too_large: AtomicU64,
    rejected_not_found: AtomicU64,
    rejected_bad_body: AtomicU64,
    rejected_memory: AtomicU64,
    /// Requests that waited for their share of the memory budget (at most
    /// `apm.decoder_timeout`) and got it.
    waited_for_budget: AtomicU64,
    /// Requests handed to the intake task.
    queued: AtomicU64,
    /// Requests answered 408 (body not received in time).
    rejected_body_timeout: AtomicU64,
    /// Refused payloads (queue full or memory) answered 200, the tracer not having sent
    /// `Datadog-Send-Real-Http-Status`.
    refused_answered_200: AtomicU64,
    /// Refused payloads answered 429.
    refused_answered_429: AtomicU64,
    /// Traces in refused payloads, from their `X-Datadog-Trace-Count`.
    refused_traces: AtomicU64,
    /// Refused payloads without a usable `X-Datadog-Trace-Count`.
    refused_undeclared: AtomicU64,
}

fn parts_len(req: &hyper::Request<hyper::body::Incoming>) -> Option<usize> {
    req.headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
}

impl Bound {
    /// The tasks: the intake and one accept loop per listener.
    pub fn spawn(self, ctx: Ctx, shutdown: watch::Receiver<bool>) -> Vec<(&'static str, Task)> {
        let (tx, rx) = mpsc::channel(ctx.cfg.apm.queue_requests);
        let counters = Arc::new(HttpCounters::default());
        let rates: Rates = Arc::new(std::sync::RwLock::new(Bytes::from(
            self.receiver.rate_by_service_json(),
        )));
        let budget = Arc::new(tokio::sync::Semaphore::new(
            kib(ctx.cfg.apm.max_inflight_body_bytes) as usize,
        ));
        let mut v: Vec<(&'static str, Task)> = vec![(
            "traces-intake",
            Box::pin(intake(
                ctx.clone(),
                self.receiver,
                rx,
                counters.clone(),
                rates.clone(),
                budget.clone(),
                shutdown.clone(),
            )),
        )];
        let apm = &ctx.cfg.apm;
        let limits = ConnLimits::new(
            apm.max_connections,
            apm.header_read_timeout.0,
            apm.max_header_bytes,
        )
        .per_client(apm.max_connections_per_client);
        let listener = |zipkin_only: bool, name: &'static str| Listener {
            tx: tx.clone(),
            limit: apm.max_body_bytes,
            zipkin_only,
            body_timeout: apm.body_read_timeout.0,
            decoder_timeout: apm.decoder_timeout.0,
            counters: counters.clone(),
            guard: Guard::new(name, limits),
            budget: budget.clone(),
            rates: rates.clone(),
        };
        let dd = listener(false, "apm");
        let zl = listener(true, "zipkin");
        v.push((
            "traces-http",
            Box::pin(accept(self.dd, ctx.clone(), dd, shutdown.clone())),
        ));
        if let Some(z) = self.zipkin {
            v.push((
                "zipkin-http",
                Box::pin(accept(z, ctx.clone(), zl, shutdown)),
            ));
        }
        v
    }
}

type Resp = hyper::Response<Full<Bytes>>;

fn reply(status: u16, body: impl Into<Bytes>) -> Resp {
    let mut r = hyper::Response::new(Full::new(body.into()));
    *r.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    r
}

async fn handle(
    req: hyper::Request<hyper::body::Incoming>,
    l: Listener,
) -> Result<Resp, std::convert::Infallible> {
    let (tx, limit, zipkin_only, c) = (&l.tx, l.limit, l.zipkin_only, &l.counters);
    let declared = parts_len(&req);
    c.requests.fetch_add(1, Ordering::Relaxed);
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    if zipkin_only && path != "/api/v2/spans" {
        c.rejected_not_found.fetch_add(1, Ordering::Relaxed);
        return Ok(reply(404, "404 page not found\n"));
    }
    if declared.is_some_and(|len| len > limit) {
        c.rejected_too_large.fetch_add(1, Ordering::Relaxed);
        return Ok(reply(413, "payload too large\n"));
    }
    let refuse = |body, why| {
        overload::refuse(
            c,
            &l.rates,
            &path,
            &parts.headers,
            body,
            l.body_timeout,
            why,
        )
    };
    // No room in the queue: refused before anything is read into memory (the Datadog
    // Agent refuses a payload when no decoder frees up).
    if tx.capacity() == 0 {
        return Ok(refuse(Some(body), Why::QueueFull).await);
    }
    // Memory for the body, from the shared budget, held until the intake has decoded it
    // and copied what it keeps: its declared length, or the largest allowed body when it
    // is chunked.
    // Like the Datadog Agent's wait for a free decoder, a request waits up to
    // `apm.decoder_timeout` for its share before it is refused: a waiting request holds a
    // connection but no body memory and costs no CPU, so under overload the CPU goes to
    // the payloads that are decoded instead of to refusals (a closed-loop tracer slows to
    // what the intake takes instead of spinning on refusals).
    let permits = kib(declared.unwrap_or(limit).min(limit));
    let budget = match l.budget.clone().try_acquire_many_owned(permits) {
        Ok(p) => p,
        Err(_) => {
            let wait = l.budget.clone().acquire_many_owned(permits);
            match tokio::time::timeout(l.decoder_timeout, wait).await {
                Ok(Ok(p)) => {
                    c.waited_for_budget.fetch_add(1, Ordering::Relaxed);
                    p
                }
                _ => return Ok(refuse(Some(body), Why::Memory).await),
            }
        }
    };
    // The whole body within `apm.body_read_timeout` (a slow-body slowloris is cut).
    let read = http_body_util::Limited::new(body, limit).collect();
    let body = match tokio::time::timeout(l.body_timeout, read).await {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            c.rejected_too_large.fetch_add(1, Ordering::Relaxed);
            return Ok(reply(413, "payload too large\n"));
        }
        Ok(Err(e)) => {
            c.rejected_bad_body.fetch_add(1, Ordering::Relaxed);
            return Ok(reply(400, format!("reading the request body: {e}\n")));
        }
        Err(_) => {
            c.rejected_body_timeout.fetch_add(1, Ordering::Relaxed);
            l.guard.body_timed_out();
            let mut r = reply(
                408,
                "request body not received within apm.body_read_timeout\n",
            );
            r.headers_mut().insert(
                "connection",
                hyper::header::HeaderValue::from_static("close"),
            );
            return Ok(r);
        }
    };
    let headers = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let (rtx, rrx) = oneshot::channel();
    let msg = IntakeReq {
        method: parts.method.as_str().to_owned(),
        path: path.clone(),
        headers,
        body,
        reply: rtx,
        _budget: budget,
    };
    if let Err(e) = tx.try_send(msg) {
        // The body and its budget go now; the request is refused like the others.
        drop(e);
        return Ok(refuse(None, Why::QueueFull).await);
    }
    c.queued.fetch_add(1, Ordering::Relaxed);
    let Ok((status, hdrs, body)) = rrx.await else {
        return Ok(reply(503, "the intake is stopping\n"));
    };
    let mut r = reply(status, body);
    for (k, v) in hdrs {
        if let (Ok(k), Ok(v)) = (
            hyper::header::HeaderName::try_from(k),
            hyper::header::HeaderValue::try_from(v),
        ) {
            r.headers_mut().insert(k, v);
        }
    }
    Ok(r)
}

/// What one intake listener's handler needs.
#[derive(Clone)]
struct Listener {
    tx: mpsc::Sender<IntakeReq>,
    limit: usize,
    zipkin_only: bool,
    body_timeout: Duration,
    /// How long a request waits for its share of the memory budget (`apm.decoder_timeout`).
    decoder_timeout: Duration,
    counters: Arc<HttpCounters>,
    guard: Guard,
    /// `apm.max_inflight_body_bytes` in KiB permits, shared by both listeners.
    budget: Arc<tokio::sync::Semaphore>,
    /// The `rate_by_service` body a refusal answered 200 carries.
    rates: Rates,
}

/// KiB permits for `bytes` (rounded up), as the budget counts them.
fn kib(bytes: usize) -> u32 {
    u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX)
}

async fn accept(listener: TcpListener, ctx: Ctx, l: Listener, shutdown: watch::Receiver<bool>) {
    let guard = l.guard.clone();
    guard::serve(
        listener,
        guard,
        ctx,
        move |req| handle(req, l.clone()),
        shutdown,
    )
    .await;
}

fn hex_id(id: u128) -> String {
    format!("{id:032x}")
}

fn stored(spans: &[OwnedSpan]) -> Vec<StoredSpan> {
    spans
        .iter()
        .map(|s| StoredSpan {
            trace_id: hex_id(s.trace_id_128()),
            span_id: s.span_id,
            parent_id: s.parent_id,
            service: s.service.to_string(),
            name: s.name.to_string(),
            resource: s.resource.to_string(),
            start: s.start,
            duration: s.duration,
            error: s.is_error(),
            meta: s
                .meta
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        })
        .collect()
}

/// The receiver this configuration asks for (validated by `meshmon-trace`).
pub fn receiver(ctx: &Ctx) -> anyhow::Result<Receiver> {
    let apm = &ctx.cfg.apm;
    let stats = StatsConfig::new(apm.stats_flush_interval.0, 10_000)?;
    let cfg = ReceiverConfig::default()
        .with_default_env(apm.env.clone())
        .with_limits(Limits::default().with_max_body_bytes(apm.max_body_bytes))
        .with_stats(stats);
    Ok(Receiver::new(cfg)?)
}

/// Which kept chunks the trace store takes, decided on the borrowed chunk so that
/// nothing else is copied: every chunk of a trace already admitted, every chunk with an
/// error span, and per root service at most `store.traces_per_second_per_service` new
/// traces a second (a token bucket). Everything else still counts in RED stats and the
/// service map; it is only not kept as a whole trace.
#[derive(Debug, Default)]
pub struct Admission {
    rate: f64,
    max_spans_per_trace: usize,
    buckets: HashMap<String, (f64, Timestamp)>,
    /// Admitted trace → (last seen, spans admitted).
    admitted: HashMap<u128, (Timestamp, usize)>,
    /// Chunks not copied for the store.
    pub skipped_chunks: u64,
    /// Chunks copied for the store.
    pub admitted_chunks: u64,
}

impl Admission {
    /// Admission at `rate` new traces per second per service; a trace's chunks stop being
    /// taken once it holds `max_spans_per_trace` spans (the store would cut them).
    pub fn new(rate: f64, max_spans_per_trace: usize) -> Self {
        Admission {
            rate,
            max_spans_per_trace,
            ..Admission::default()
        }
    }

    /// Whether the store takes this chunk.
    pub fn admit(&mut self, spans: &[meshmon_trace::Span<'_>], now: Timestamp) -> bool {
        let Some(first) = spans.first() else {
            return false;
        };
        let id = first.trace_id_128();
        if let Some((seen, n)) = self.admitted.get_mut(&id) {
            *seen = now;
            if *n >= self.max_spans_per_trace {
                self.skipped_chunks += 1;
                return false;
            }
            *n += spans.len();
            self.admitted_chunks += 1;
            return true;
        }
        let error = spans.iter().any(|s| s.is_error());
        let ok = error || {
            let service = first.service.as_ref();
            if !self.buckets.contains_key(service) && self.buckets.len() >= 10_000 {
                false
            } else {
                let rate = self.rate;
                let b = self
                    .buckets
                    .entry(service.to_owned())
                    .or_insert((rate.max(1.0), now));
                let dt = now.saturating_since(b.1).as_secs_f64();
                b.0 = (b.0 + dt * rate).min(rate.max(1.0));
                b.1 = now;
                if b.0 >= 1.0 {
                    b.0 -= 1.0;
                    true
                } else {
                    false
                }
            }
        };
        if ok {
            self.admitted.insert(id, (now, spans.len()));
            self.admitted_chunks += 1;
        } else {
            self.skipped_chunks += 1;
        }
        ok
    }

    /// Forgets admitted traces not seen for `older_than`.
    pub fn expire(&mut self, now: Timestamp, older_than: Duration) {
        self.admitted
            .retain(|_, (seen, _)| now.saturating_since(*seen) < older_than);
    }
}

struct Intake {
    ctx: Ctx,
    receiver: Receiver,
    admission: Admission,
    assembler: TraceAssembler,
    totals: HashMap<String, (u64, u64)>,
    http: Arc<HttpCounters>,
    rates: Rates,
    /// `apm.max_inflight_body_bytes` (KiB permits), for the status page.
    budget: Arc<tokio::sync::Semaphore>,
    traces_stored: u64,
}

impl Intake {
    fn store_traces(&mut self, done: Vec<AssembledTrace>) {
        if done.is_empty() {
            return;
        }
        let out: Vec<_> = done
            .into_iter()
            .filter(|t| t.decision.keep())
            .map(|t| summarize(hex_id(t.trace_id), stored(&t.spans), 0))
            .collect();
        self.traces_stored += out.len() as u64;
        if let Ok(mut st) = self.ctx.store.write() {
            for t in out {
                st.insert_trace(t);
            }
        }
    }

    /// Kept payloads → owned chunks → the assembler; completed traces → the store. The
    /// request body is released here, once what the store keeps is copied.
    fn pump(&mut self, now: Timestamp) {
        let mut done = Vec::new();
        for p in self.receiver.drain_kept() {
            for kc in p.chunks() {
                if self.admission.admit(&kc.chunk.spans, now) {
                    done.extend(self.assembler.add_kept(kc.to_owned_chunk(), now));
                }
            }
        }
        done.extend(self.assembler.flush(now));
        self.store_traces(done);
    }

    fn flush_stats(&mut self, now: Timestamp, mode: FlushMode) {
        let buckets = self.receiver.flush_stats(now, mode);
        let global = &self.ctx.global_tags;
        let mut metrics: Vec<Metric> = Vec::new();
        for b in &buckets {
            metrics.extend(apm_metrics(b).into_iter().map(|mut m| {
                if !global.is_empty() {
                    m.tags = m.tags.union(global);
                }
                m
            }));
        }
        metrics.extend(percentile_series(&buckets, global, now));
        let window = self
            .ctx
            .cfg
            .apm
            .stats_flush_interval
            .0
            .as_secs_f64()
            .max(1e-3);
        let window = covered_window(&buckets, window);
        let services = red_by_service(&buckets, window, &mut self.totals);
        let edges: Vec<Edge> = self
            .receiver
            .service_map()
            .edges()
            .iter()
            .map(|e| Edge {
                from: e.caller.to_owned(),
                to: e.callee.to_owned(),
                calls: e.stats.calls,
                errors: e.stats.errors,
                mean_ms: e.stats.latency.mean().as_secs_f64() * 1e3,
            })
            .collect();
        if let Ok(mut st) = self.ctx.store.write() {
            st.exports
                .offer(&metrics, self.ctx.cfg.apm.stats_flush_interval.0);
            st.insert_metrics(metrics);
            // Keep every service seen; the last window's figures where it had traffic.
            let mut all: BTreeMap<String, ServiceRed> = st
                .services()
                .iter()
                .map(|s| {
                    let quiet = ServiceRed {
                        hits: 0,
                        errors: 0,
                        rate: 0.0,
                        error_rate: 0.0,
                        ..s.clone()
                    };
                    (s.service.clone(), quiet)
                })
                .collect();
            for s in services {
                all.insert(s.service.clone(), s);
            }
            st.set_services(all.into_values().collect());
            st.set_edges(edges);
        }
    }

    fn publish(&self) {
        let c = self.receiver.counters();
        let h = &self.http;
        let a = &self.assembler.stats;
        let too_large = c.payloads_too_large + h.rejected_too_large.load(Ordering::Relaxed);
        let queue_full = c.payloads_queue_full + h.rejected_queue_full.load(Ordering::Relaxed);
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (refused_queue, refused_memory) =
            (load(&h.rejected_queue_full), load(&h.rejected_memory));
        let refused_traces = load(&h.refused_traces);
        if let Ok(mut r) = self.rates.write() {
            *r = Bytes::from(self.receiver.rate_by_service_json());
        }
        self.ctx.set_component(
            "traces",
            json!({
                "payloads": c.payloads, "payloads_invalid": c.payloads_invalid,
                "payloads_too_large": too_large, "payloads_queue_full": queue_full,
                "traces_received": c.traces_received, "spans_received": c.spans_received,
                "spans_kept": c.spans_kept, "spans_sampled_out": c.spans_sampled_out,
                "spans_dropped": c.spans_dropped(),
                "balanced": c.balanced(), "traces_stored": self.traces_stored,
                "traces_assembling": self.assembler.traces_held(),
                "traces_evicted_by_assembler": a.traces_evicted,
                "service_map_edges": self.receiver.service_map().len(),
                "chunks_admitted_to_store": self.admission.admitted_chunks,
                "chunks_not_stored": self.admission.skipped_chunks,
                "traces_kept": c.traces_kept, "traces_sampled_out": c.traces_sampled_out,
                "traces_dropped": c.traces_dropped(),
                "requests": load(&h.requests), "requests_queued": load(&h.queued),
                "requests_refused_queue_full": refused_queue,
                "requests_refused_memory": refused_memory,
                "requests_waited_for_budget": load(&h.waited_for_budget),
                "requests_refused_answered_200": load(&h.refused_answered_200),
                "requests_refused_answered_429": load(&h.refused_answered_429),
                "requests_rejected": load(&h.rejected_too_large) + load(&h.rejected_not_found)
                    + load(&h.rejected_bad_body) + load(&h.rejected_body_timeout),
                "traces_refused": refused_traces,
                "trace_count_mismatch": c.trace_count_mismatch,
                "requests_refused_undeclared": load(&h.refused_undeclared),
                "inflight_body_kib_free": self.budget.available_permits(),
            }),
        );
        let Ok(mut st) = self.ctx.store.write() else {
            return;
        };
        let t = &mut st.telemetry;
        for (name, help, v) in [
            (
                "meshmon_trace_payloads_total",
                "Trace payloads decoded.",
                c.payloads,
            ),
            (
                "meshmon_trace_payloads_invalid_total",
                "Trace payloads that failed to decode.",
                c.payloads_invalid,
            ),
            (
                "meshmon_trace_requests_total",
                "HTTP requests to the trace intake.",
                h.requests.load(Ordering::Relaxed),
            ),
            (
                "meshmon_trace_requests_rejected_queue_full_total",
                "Payloads refused because a queue was full (429, or 200 without Datadog-Send-Real-Http-Status).",
                queue_full,
            ),
            (
                "meshmon_trace_requests_queued_total",
                "Requests handed to the intake task.",
                load(&h.queued),
            ),
            (
                "meshmon_trace_requests_refused_answered_200_total",
                "Refused payloads answered 200 (the tracer sent no Datadog-Send-Real-Http-Status).",
                load(&h.refused_answered_200),
            ),
            (
                "meshmon_trace_requests_refused_answered_429_total",
                "Refused payloads answered 429.",
                load(&h.refused_answered_429),
            ),
            (
                "meshmon_trace_traces_refused_total",
                "Traces in refused payloads (their X-Datadog-Trace-Count), never decoded.",
                refused_traces,
            ),
            (
                "meshmon_trace_requests_rejected_body_timeout_total",
                "Requests answered 408 (body not received within apm.body_read_timeout).",
                load(&h.rejected_body_timeout),
            ),
            (
                "meshmon_trace_requests_rejected_too_large_total",
                "Requests answered 413.",
                too_large,
            ),
            (
                "meshmon_trace_requests_rejected_memory_total",
                "Payloads refused because apm.max_inflight_body_bytes stayed spent for apm.decoder_timeout.",
                refused_memory,
            ),
            (
                "meshmon_trace_requests_waited_for_budget_total",
                "Requests that waited (at most apm.decoder_timeout) for their share of apm.max_inflight_body_bytes and got it.",
                load(&h.waited_for_budget),
            ),
            (
                "meshmon_trace_requests_rejected_bad_body_total",
                "Requests answered 400 because their body could not be read (bad chunking).",
                h.rejected_bad_body.load(Ordering::Relaxed),
            ),
            (
                "meshmon_spans_received_total",
                "Spans received.",
                c.spans_received,
            ),
            (
                "meshmon_spans_kept_total",
                "Spans kept by sampling.",
                c.spans_kept,
            ),
            (
                "meshmon_spans_sampled_out_total",
                "Spans sampled out.",
                c.spans_sampled_out,
            ),
            (
                "meshmon_spans_dropped_total",
                "Spans dropped (normalisation or queue).",
                c.spans_dropped(),
            ),
            (
                "meshmon_traces_stored_total",
                "Traces handed to the store.",
                self.traces_stored,
            ),
            (
                "meshmon_trace_chunks_not_stored_total",
                "Kept chunks not copied into the trace store (admission rate).",
                self.admission.skipped_chunks,
            ),
        ] {
            t.set(name, "counter", help, &[], v as f64);
        }
    }

    fn serve(&mut self, m: IntakeReq) {
        let now = self.ctx.clock.now();
        let hdrs: Vec<(&str, &str)> = m
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let resp = self.receiver.handle(
            &Request {
                method: &m.method,
                path: &m.path,
                headers: &hdrs,
                body: m.body.clone(),
            },
            now,
        );
        let _ = m.reply.send((resp.status, resp.headers, resp.body));
        self.pump(now);
    }
}

/// `trace.<name>.duration.by.service.{50p,95p,99p}` gauges (seconds) per service over
/// top-level spans, as the Datadog Agent's legacy percentile metrics.
pub fn percentile_series(buckets: &[StatsBucket], global: &Tags, now: Timestamp) -> Vec<Metric> {
    let mut per: BTreeMap<(&str, &str, &str), GroupStats> = BTreeMap::new();
    for b in buckets {
        for (k, g) in &b.groups {
            if !k.top_level {
                continue;
            }
            match per.get_mut(&(k.service.as_str(), k.name.as_str(), k.env.as_str())) {
                Some(s) => s.merge(g),
                None => {
                    per.insert((&k.service, &k.name, &k.env), g.clone());
                }
            }
        }
    }
    let mut out = Vec::new();
    for ((service, name, env), g) in per {
        let mut tags = global.clone();
        for (k, v) in [("service", service), ("env", env)] {
            if let (false, Ok(t)) = (v.is_empty(), Tag::new(k, v)) {
                tags.insert(t);
            }
        }
        for (q, suffix) in [(0.5, "50p"), (0.95, "95p"), (0.99, "99p")] {
            out.push(Metric::new(
                format!("trace.{name}.duration.by.service.{suffix}").as_str(),
                MetricValue::Gauge(g.quantile(q).as_secs_f64()),
                tags.clone(),
                now,
            ));
        }
    }
    out
}

/// The seconds the flushed buckets cover (a tick that comes late flushes two buckets at
/// once: their hits are over two bucket lengths, not one flush interval); `fallback` when
/// nothing was flushed.
fn covered_window(buckets: &[StatsBucket], fallback: f64) -> f64 {
    let mut starts: Vec<(Timestamp, Duration)> =
        buckets.iter().map(|b| (b.start, b.duration)).collect();
    starts.sort();
    starts.dedup();
    let covered: f64 = starts.iter().map(|(_, d)| d.as_secs_f64()).sum();
    if covered > 0.0 { covered } else { fallback }
}

fn red_by_service(
    buckets: &[StatsBucket],
    window_s: f64,
    totals: &mut HashMap<String, (u64, u64)>,
) -> Vec<ServiceRed> {
    let mut per: BTreeMap<(String, String), GroupStats> = BTreeMap::new();
    for b in buckets {
        for (k, g) in &b.groups {
            if !k.top_level {
                continue;
            }
            match per.get_mut(&(k.service.clone(), k.env.clone())) {
                Some(s) => s.merge(g),
                None => {
                    per.insert((k.service.clone(), k.env.clone()), g.clone());
                }
            }
        }
    }
    per.into_iter()
        .map(|((service, env), g)| {
            let t = totals.entry(service.clone()).or_default();
            t.0 += g.hits;
            t.1 += g.errors;
            let ms = |q: f64| g.quantile(q).as_secs_f64() * 1e3;
            ServiceRed {
                env,
                hits: g.hits,
                errors: g.errors,
                rate: g.hits as f64 / window_s,
                error_rate: if g.hits > 0 {
                    g.errors as f64 / g.hits as f64
                } else {
                    0.0
                },
                p50_ms: ms(0.5),
                p95_ms: ms(0.95),
                p99_ms: ms(0.99),
                total_hits: t.0,
                total_errors: t.1,
                service,
            }
        })
        .collect()
}

async fn intake(
    ctx: Ctx,
    receiver: Receiver,
    mut rx: mpsc::Receiver<IntakeReq>,
    http: Arc<HttpCounters>,
    rates: Rates,
    budget: Arc<tokio::sync::Semaphore>,
    mut shutdown: watch::Receiver<bool>,
) {
    let apm = &ctx.cfg.apm;
    let acfg = AssemblerConfig::default()
        .with_inactivity_timeout(apm.trace_timeout.0)
        .and_then(|c| c.with_max_spans(apm.max_assembling_spans, ctx.cfg.store.max_spans_per_trace))
        .unwrap_or_else(|e| {
            ctx.log(
                "ERROR",
                "traces",
                &format!("assembler config: {e}; using defaults"),
            );
            AssemblerConfig::default()
        });
    let mut it = Intake {
        admission: Admission::new(
            ctx.cfg.store.traces_per_second_per_service,
            ctx.cfg.store.max_spans_per_trace,
        ),
        receiver,
        assembler: TraceAssembler::new(acfg),
        totals: HashMap::new(),
        http,
        rates,
        budget,
        traces_stored: 0,
        ctx,
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let flush_every = it.ctx.cfg.apm.stats_flush_interval.0;
    let mut last_flush = std::time::Instant::now();
    loop {
        tokio::select! {
            _ = super::stopped(&mut shutdown) => break,
            m = rx.recv() => {
                let Some(m) = m else { break };
                it.serve(m);
                // Serve what is already queued before publishing counters, yielding
                // between payloads: under a CPU quota a busy intake would otherwise hold
                // the CPU while the handlers wait to answer (and to refuse cheaply).
                loop {
                    tokio::task::yield_now().await;
                    match rx.try_recv() {
                        Ok(m) => it.serve(m),
                        Err(_) => break,
                    }
                }
                it.publish();
            }
            _ = tick.tick() => {
                let now = it.ctx.clock.now();
                it.pump(now);
                it.admission.expire(now, it.ctx.cfg.apm.trace_timeout.0 * 2);
                if last_flush.elapsed() >= flush_every {
                    it.flush_stats(now, FlushMode::Due);
                    last_flush = std::time::Instant::now();
                }
                it.publish();
            }
        }
    }
    // Drain: answer what is queued, then flush every held trace and the stats.
    rx.close();
    while let Ok(m) = rx.try_recv() {
        it.serve(m);
    }
    let now = it.ctx.clock.now();
    it.pump(now);
    let rest = it.assembler.flush_all();
    it.store_traces(rest);
    it.flush_stats(now, FlushMode::All);
    it.publish();
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshmon_trace::Span;

    fn span(id: u64, svc: &'static str, error: i32) -> Span<'static> {
        Span {
            service: svc.into(),
            trace_id: id,
            span_id: id,
            error,
            ..Span::default()
        }
    }

    #[test]
    fn red_rate_is_over_the_buckets_flushed() {
        let b = |s: i64| StatsBucket {
            start: Timestamp::from_secs(s),
            duration: Duration::from_secs(1),
            groups: Vec::new(),
        };
        assert_eq!(covered_window(&[b(10)], 1.0), 1.0);
        assert_eq!(covered_window(&[b(10), b(11)], 1.0), 2.0);
        assert_eq!(covered_window(&[], 1.0), 1.0);
    }

    #[test]
    fn admission_rate_errors_and_whole_traces() {
        let mut a = Admission::new(2.0, 3);
        let t = |s: i64| Timestamp::from_secs(s);
        // Two new traces a second per service, then none until tokens refill.
        assert!(a.admit(&[span(1, "a", 0)], t(0)));
        assert!(a.admit(&[span(2, "a", 0)], t(0)));
        assert!(!a.admit(&[span(3, "a", 0)], t(0)));
        // Another service has its own bucket; an error is always taken.
        assert!(a.admit(&[span(4, "b", 0)], t(0)));
        assert!(a.admit(&[span(5, "a", 1)], t(0)));
        // A later chunk of an admitted trace is taken (traces stay whole).
        assert!(a.admit(&[span(1, "a", 0)], t(0)));
        assert!(!a.admit(&[span(3, "a", 0)], t(0)));
        assert!(a.admit(&[span(6, "a", 0)], t(1)));
        // Trace 1 holds 2 spans; a third is taken, a fourth would exceed the trace's bound.
        assert!(a.admit(&[span(1, "a", 0)], t(1)));
        assert!(!a.admit(&[span(1, "a", 0)], t(1)));
        assert_eq!((a.admitted_chunks, a.skipped_chunks), (7, 3));
        a.expire(t(100), Duration::from_secs(10));
        assert!(a.admitted.is_empty());
    }
}
