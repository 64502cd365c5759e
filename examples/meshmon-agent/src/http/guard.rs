//! The connection guard shared by the agent's HTTP listeners (the API on `api.listen`,
//! the Datadog and Zipkin trace intakes): every limit explicit, configurable and counted.
//!
//! - **Connections**: at most `max_connections` served at once per listener (a
//!   [`tokio::sync::Semaphore`]); one more is answered `503 Service Unavailable` with
//!   `Connection: close` (a non-blocking write: a client that does not read gets nothing)
//!   and closed, counted in `meshmon_http_connections_rejected_total`.
//! - **Slow headers** (slowloris): the request line and headers must arrive within
//!   `header_read_timeout` (hyper's `header_read_timeout`, 10 s by default, as the Datadog
//!   Agent's trace receiver); the connection is then closed, counted in
//!   `meshmon_http_header_read_timeouts_total`.
//! - **Slow bodies**: a handler that reads a body bounds it by `body_read_timeout` with
//!   [`Guard::body_timed_out`] (408, `meshmon_http_body_read_timeouts_total`).
//! - **Oversized headers**: more than `max_header_bytes` of request line and headers (or
//!   more than 100 headers) is answered `431 Request Header Fields Too Large` by hyper,
//!   counted in `meshmon_http_requests_header_too_large_total`.
//! - **Malformed requests**: answered `400 Bad Request` by hyper, counted in
//!   `meshmon_http_requests_malformed_total`.
//!
//! The counters are published into the store's telemetry (`/metrics`) once a second, each
//! labelled `listener="api"|"apm"|"zipkin"`.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::run::Ctx;

/// One listener's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Connections served at once; one more is answered 503 and closed.
    pub max_connections: usize,
    /// Time allowed for the request line and headers.
    pub header_read_timeout: Duration,
    /// Largest request line + headers, in bytes (431 beyond).
    pub max_header_bytes: usize,
}

impl Limits {
    /// Limits with these values.
    pub fn new(
        max_connections: usize,
        header_read_timeout: Duration,
        max_header_bytes: usize,
    ) -> Self {
        Limits {
            max_connections,
            header_read_timeout,
            max_header_bytes,
        }
    }
}

/// What a guard counts (monotonic, except `open`).
#[derive(Debug, Default)]
pub struct Counters {
    /// Connections accepted and served.
    pub accepted: AtomicU64,
    /// Connections being served now.
    pub open: AtomicU64,
    /// Connections refused because `max_connections` were open (503).
    pub rejected_connections: AtomicU64,
    /// Connections closed because the headers did not arrive in time.
    pub header_timeouts: AtomicU64,
    /// Requests whose body did not arrive in time (408).
    pub body_timeouts: AtomicU64,
    /// Requests answered 431.
    pub header_too_large: AtomicU64,
    /// Requests answered 400 by the HTTP parser.
    pub malformed: AtomicU64,
    /// Connections that ended with another I/O error (reset, closed mid-request).
    pub io_errors: AtomicU64,
}

/// A listener's guard: its name (the `listener` label), limits and counters.
#[derive(Clone, Debug)]
pub struct Guard {
    /// The `listener` label.
    pub name: &'static str,
    /// The limits.
    pub limits: Limits,
    /// The counters.
    pub counters: Arc<Counters>,
}

type Resp = Response<Full<Bytes>>;

const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\nconnection: close\r\nretry-after: 1\r\ncontent-length: 21\r\n\r\ntoo many connections\n";

impl Guard {
    /// A guard with fresh counters.
    pub fn new(name: &'static str, limits: Limits) -> Self {
        Guard {
            name,
            limits,
            counters: Arc::new(Counters::default()),
        }
    }

    /// Counts a body read that ran out of time.
    pub fn body_timed_out(&self) {
        self.counters.body_timeouts.fetch_add(1, Ordering::Relaxed);
    }

    /// Publishes the counters into the store's telemetry.
    pub fn publish(&self, ctx: &Ctx) {
        let c = &self.counters;
        let Ok(mut st) = ctx.store.write() else {
            return;
        };
        let l = [("listener", self.name)];
        for (name, kind, help, v) in [
            (
                "meshmon_http_connections_total",
                "counter",
                "Connections accepted and served.",
                &c.accepted,
            ),
            (
                "meshmon_http_connections_open",
                "gauge",
                "Connections being served.",
                &c.open,
            ),
            (
                "meshmon_http_connections_rejected_total",
                "counter",
                "Connections answered 503 and closed because max_connections were open.",
                &c.rejected_connections,
            ),
            (
                "meshmon_http_header_read_timeouts_total",
                "counter",
                "Connections closed because the request headers did not arrive within header_read_timeout.",
                &c.header_timeouts,
            ),
            (
                "meshmon_http_body_read_timeouts_total",
                "counter",
                "Requests answered 408 because the body did not arrive within body_read_timeout.",
                &c.body_timeouts,
            ),
            (
                "meshmon_http_requests_header_too_large_total",
                "counter",
                "Requests answered 431 (headers over max_header_bytes or too many).",
                &c.header_too_large,
            ),
            (
                "meshmon_http_requests_malformed_total",
                "counter",
                "Requests answered 400 because they did not parse as HTTP/1.1.",
                &c.malformed,
            ),
            (
                "meshmon_http_connection_errors_total",
                "counter",
                "Connections that ended with another I/O error (reset, closed mid-request).",
                &c.io_errors,
            ),
        ] {
            st.telemetry
                .set(name, kind, help, &l, v.load(Ordering::Relaxed) as f64);
        }
    }

    fn count_end(&self, r: Result<(), hyper::Error>) {
        let Err(e) = r else { return };
        let c = &self.counters;
        let n = if e.is_timeout() {
            &c.header_timeouts
        } else if e.is_parse_too_large() {
            &c.header_too_large
        } else if e.is_parse() {
            &c.malformed
        } else {
            &c.io_errors
        };
        n.fetch_add(1, Ordering::Relaxed);
    }
}

/// Refusals answered at once; beyond them a refused connection is closed unanswered.
const REFUSALS_IN_FLIGHT: usize = 64;

/// Answers 503 without waiting (the socket's send buffer takes it), then lingers up to
/// 200 ms reading (and discarding) what the client sent, so that closing a socket with
/// unread input does not reset the connection before the client reads the answer.
/// At most [`REFUSALS_IN_FLIGHT`] linger at once; others are closed at once.
fn refuse(stream: tokio::net::TcpStream, refusals: &Arc<Semaphore>) {
    let _ = stream.try_write(REFUSED);
    let Ok(p) = refusals.clone().try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = stream;
        let _ = stream.shutdown().await;
        let mut buf = [0u8; 1024];
        let deadline = tokio::time::Instant::now() + Duration::from_millis(200);
        let mut left = 64usize << 10;
        while left > 0 {
            match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => left = left.saturating_sub(n),
                _ => break,
            }
        }
        drop(p);
    });
}

/// Serves `listener` with `handler` under `guard` until `shutdown` turns true, publishing
/// the guard's counters into `ctx`'s telemetry once a second.
pub async fn serve<F, Fut>(
    listener: TcpListener,
    guard: Guard,
    ctx: Ctx,
    handler: F,
    mut shutdown: watch::Receiver<bool>,
) where
    F: Fn(Request<hyper::body::Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Resp, Infallible>> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(guard.limits.max_connections));
    let refusals = Arc::new(Semaphore::new(REFUSALS_IN_FLIGHT));
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    guard.publish(&ctx);
    loop {
        tokio::select! {
            _ = crate::run::stopped(&mut shutdown) => break,
            _ = tick.tick() => guard.publish(&ctx),
            r = listener.accept() => {
                let Ok((stream, _peer)) = r else { continue };
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    guard.counters.rejected_connections.fetch_add(1, Ordering::Relaxed);
                    refuse(stream, &refusals);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let (g, h) = (guard.clone(), handler.clone());
                g.counters.accepted.fetch_add(1, Ordering::Relaxed);
                g.counters.open.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(h);
                    let r = hyper::server::conn::http1::Builder::new()
                        .header_read_timeout(g.limits.header_read_timeout)
                        .max_header_size(g.limits.max_header_bytes)
                        .timer(hyper_util::rt::TokioTimer::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                    g.count_end(r);
                    g.counters.open.fetch_sub(1, Ordering::Relaxed);
                    drop(permit);
                });
            }
        }
    }
    guard.publish(&ctx);
}
