//! The connection guard shared by the agent's HTTP listeners (the API on `api.listen`,
//! the Datadog and Zipkin trace intakes): every limit explicit, configurable and counted.
//!
//! - **Connections**: at most `max_connections` served at once per listener (a
//!   [`tokio::sync::Semaphore`]); one more is answered `503 Service Unavailable` with
//!   `Connection: close` (a non-blocking write: a client that does not read gets nothing)
//!   and closed, counted in `meshmon_http_connections_rejected_total`.
//! - **Connections per client**: at most `max_connections_per_client` of them from one
//!   peer address, so that one pod cannot take every connection of a node's intake; one
//!   more is refused the same way, counted in
//!   `meshmon_http_connections_rejected_per_client_total`.
//! - **Browsers from elsewhere** ([`BrowserPolicy`]): a request a browser sends on behalf
//!   of another site (`Sec-Fetch-Site: cross-site` or `same-site`, an `Origin` that is not
//!   the request's own `http://{Host}`, `Origin: null`) is answered `403` before the
//!   handler runs, counted in `meshmon_http_requests_cross_origin_total`. Tracers,
//!   DogStatsD clients and `curl` send none of these headers. A listener may also demand
//!   that `Host` names it (an IP literal, `localhost`, or a configured name), which stops
//!   DNS rebinding: a page of `evil.example` whose name was re-pointed at 127.0.0.1 still
//!   sends `Host: evil.example`, counted in `meshmon_http_requests_bad_host_total`.
//!   See the Fetch Metadata spec (<https://www.w3.org/TR/fetch-metadata/>) and RFC 6454
//!   (the `Origin` header).
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
//! - **Read buffers**: each connection reads from its socket at most [`READ_CHUNK_BYTES`]
//!   (4 KiB, the size of Go's `net/http` connection reader) at a time ([`ChunkedReads`]),
//!   so hyper's adaptive read buffer stays at its 8 KiB start instead of doubling to
//!   `max_header_bytes` + 16 KiB on every connection that sends a large body (it still
//!   grows for large headers, up to that bound).
//!
//! The counters are published into the store's telemetry (`/metrics`) once a second, each
//! labelled `listener="api"|"apm"|"zipkin"`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
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
    /// Connections served at once from one peer address; one more is answered 503 and
    /// closed. Defaults to `max_connections` (no extra bound).
    pub max_connections_per_client: usize,
}

impl Limits {
    /// Limits with these values; a client may hold every connection until
    /// [`Limits::per_client`] says otherwise.
    pub fn new(
        max_connections: usize,
        header_read_timeout: Duration,
        max_header_bytes: usize,
    ) -> Self {
        Limits {
            max_connections,
            header_read_timeout,
            max_header_bytes,
            max_connections_per_client: max_connections,
        }
    }

    /// These limits with at most `n` connections per peer address (0 keeps the bound of
    /// `max_connections`).
    pub fn per_client(mut self, n: usize) -> Self {
        if n > 0 {
            self.max_connections_per_client = n;
        }
        self
    }
}

/// Which browser requests a listener refuses (module docs). Every listener refuses
/// cross-site and same-site requests and foreign origins; `allowed_hosts` adds the
/// `Host` check for listeners a browser is meant to use (the API and status page).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BrowserPolicy {
    /// `None`: any `Host`. `Some(names)`: `Host` must be an IP literal, `localhost`
    /// (or a name under `.localhost`), or one of `names` (compared without the port,
    /// ASCII case-insensitively).
    pub allowed_hosts: Option<Arc<[String]>>,
}

/// Why a request was refused by a [`BrowserPolicy`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `Sec-Fetch-Site: cross-site | same-site`, or a foreign or `null` `Origin`.
    CrossOrigin,
    /// `Host` missing or not a name this listener answers to.
    BadHost,
}

impl Refusal {
    /// The answer's text.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::CrossOrigin => "cross-origin requests are refused\n",
            Refusal::BadHost => {
                "this Host is not served: use an IP address, localhost or a name in api.allowed_hosts\n"
            }
        }
    }
}

/// The `host` part of a `Host` header value (`[::1]:5002` → `::1`, `a.b:80` → `a.b`).
fn host_name(v: &str) -> &str {
    if let Some(rest) = v.strip_prefix('[') {
        // `[v6]` or `[v6]:port`; anything else is returned whole and matches nothing.
        return match rest.split_once(']') {
            Some((h, "")) => h,
            Some((h, port))
                if port.len() > 1
                    && port[1..].bytes().all(|b| b.is_ascii_digit())
                    && port.starts_with(':') =>
            {
                h
            }
            _ => v,
        };
    }
    match v.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => v,
    }
}

impl BrowserPolicy {
    /// A policy that also checks `Host` against IP literals, `localhost` and `names`.
    pub fn with_hosts(names: &[String]) -> Self {
        BrowserPolicy {
            allowed_hosts: Some(names.iter().map(|n| n.to_ascii_lowercase()).collect()),
        }
    }

    /// Judges a request's headers: `None` serves it.
    pub fn judge(&self, headers: &hyper::HeaderMap) -> Option<Refusal> {
        let text = |k: &str| headers.get(k).and_then(|v| v.to_str().ok());
        if let Some(site) = headers.get("sec-fetch-site") {
            let site = site.as_bytes();
            if site.eq_ignore_ascii_case(b"cross-site") || site.eq_ignore_ascii_case(b"same-site") {
                return Some(Refusal::CrossOrigin);
            }
        }
        let host = text("host");
        if let Some(origin) = headers.get("origin") {
            let own = host.is_some_and(|h| {
                let o = origin.as_bytes();
                [&b"http://"[..], &b"https://"[..]].iter().any(|scheme| {
                    o.len() == scheme.len() + h.len()
                        && o[..scheme.len()].eq_ignore_ascii_case(scheme)
                        && o[scheme.len()..].eq_ignore_ascii_case(h.as_bytes())
                })
            });
            if !own {
                return Some(Refusal::CrossOrigin);
            }
        }
        if let Some(names) = &self.allowed_hosts {
            let Some(h) = host else {
                return Some(Refusal::BadHost);
            };
            let name = host_name(h).to_ascii_lowercase();
            let ok = name.parse::<std::net::IpAddr>().is_ok()
                || name == "localhost"
                || name.ends_with(".localhost")
                || names.contains(&name);
            if !ok {
                return Some(Refusal::BadHost);
            }
        }
        None
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
    /// Connections refused because `max_connections_per_client` were open from the
    /// same peer address (503).
    pub rejected_per_client: AtomicU64,
    /// Requests answered 403 by the [`BrowserPolicy`]: cross-site or foreign origin.
    pub cross_origin: AtomicU64,
    /// Requests answered 403 by the [`BrowserPolicy`]: a `Host` not served.
    pub bad_host: AtomicU64,
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
    /// Which browser requests are refused.
    pub browser: BrowserPolicy,
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
            browser: BrowserPolicy::default(),
        }
    }

    /// This guard with another browser policy.
    pub fn with_browser_policy(mut self, browser: BrowserPolicy) -> Self {
        self.browser = browser;
        self
    }

    /// Counts a body read that ran out of time.
    pub fn body_timed_out(&self) {
        self.counters.body_timeouts.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters as `(name, type, help, value)`, labelled `listener="{name}"`: what
    /// [`Guard::publish`] puts in the store, and what a listener without a store (the
    /// cluster agent) renders in its own `/metrics`.
    pub fn samples(&self) -> [(&'static str, &'static str, &'static str, f64); 11] {
        let c = &self.counters;
        [
            (
                "meshmon_http_connections_total",
                "counter",
                "Connections accepted and served.",
                c.accepted.load(Ordering::Relaxed) as f64,
            ),
            (
                "meshmon_http_connections_open",
                "gauge",
                "Connections being served.",
                c.open.load(Ordering::Relaxed) as f64,
            ),
            (
                "meshmon_http_connections_rejected_total",
                "counter",
                "Connections answered 503 and closed because max_connections were open.",
                c.rejected_connections.load(Ordering::Relaxed) as f64,
            ),
            (
                "meshmon_http_connections_rejected_per_client_total",
                "counter",
                "Connections answered 503 and closed because max_connections_per_client were open from the same address.",
                c.rejected_per_client.load(Ordering::Relaxed) as f64,
            ),
            (
                "meshmon_http_requests_cross_origin_total",
                "counter",
                "Requests answered 403: a browser request from another site or origin (Sec-Fetch-Site, Origin).",
                c.cross_origin.load(Ordering::Relaxed) as f64,
            ),
            (
                "meshmon_http_requests_bad_host_total",
                "counter",
                "Requests answered 403 because their Host is not one the listener serves (DNS rebinding).",
                c.bad_host.load(Ordering::Relaxed) as f64,
            ),
            (
                "meshmon_http_header_read_timeouts_total",
                "counter",
                "Connections closed because the request headers did not arrive within header_read_timeout.",
                c.header_timeouts.load(Ordering::Relaxed) as f64,
            ),
            (
                "meshmon_http_body_read_timeouts_total",
                "counter",
                "Requests answered 408 because the body did not arrive within body_read_timeout.",
                c.body_timeouts.load(Ordering::Relaxed) as f64,
            ),
            (
                "meshmon_http_requests_header_too_large_total",
                "counter",
                "Requests answered 431 (headers over max_header_bytes or too many).",
                c.header_too_large.load(Ordering::Relaxed) as f64,
            ),
            (
                "meshmon_http_requests_malformed_total",
                "counter",
                "Requests answered 400 because they did not parse as HTTP/1.1.",
                c.malformed.load(Ordering::Relaxed) as f64,
            ),
            (
                "meshmon_http_connection_errors_total",
                "counter",
                "Connections that ended with another I/O error (reset, closed mid-request).",
                c.io_errors.load(Ordering::Relaxed) as f64,
            ),
        ]
    }

    /// Publishes the counters into the store's telemetry.
    pub fn publish(&self, ctx: &Ctx) {
        let Ok(mut st) = ctx.store.write() else {
            return;
        };
        let l = [("listener", self.name)];
        for (name, kind, help, v) in self.samples() {
            st.telemetry.set(name, kind, help, &l, v);
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
    shutdown: watch::Receiver<bool>,
) where
    F: Fn(Request<hyper::body::Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Resp, Infallible>> + Send + 'static,
{
    serve_with(listener, guard, move |g| g.publish(&ctx), handler, shutdown).await;
}

/// [`serve`] for a listener without a store: `publish` is called with the guard once a
/// second and at the end (the cluster agent reads [`Guard::samples`] into its own
/// `/metrics` instead).
pub async fn serve_with<P, F, Fut>(
    listener: TcpListener,
    guard: Guard,
    publish: P,
    handler: F,
    mut shutdown: watch::Receiver<bool>,
) where
    P: Fn(&Guard),
    F: Fn(Request<hyper::body::Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Resp, Infallible>> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(guard.limits.max_connections));
    let refusals = Arc::new(Semaphore::new(REFUSALS_IN_FLIGHT));
    let clients = PerClient::default();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    publish(&guard);
    loop {
        tokio::select! {
            _ = crate::run::stopped(&mut shutdown) => break,
            _ = tick.tick() => publish(&guard),
            r = listener.accept() => {
                let Ok((stream, peer)) = r else { continue };
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    guard.counters.rejected_connections.fetch_add(1, Ordering::Relaxed);
                    refuse(stream, &refusals);
                    continue;
                };
                let Some(client) = clients.enter(peer.ip(), guard.limits.max_connections_per_client) else {
                    guard.counters.rejected_per_client.fetch_add(1, Ordering::Relaxed);
                    refuse(stream, &refusals);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let (g, h) = (guard.clone(), handler.clone());
                g.counters.accepted.fetch_add(1, Ordering::Relaxed);
                g.counters.open.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    let g2 = g.clone();
                    let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let refused = g2.browser.judge(req.headers());
                        let fut = refused.is_none().then(|| h(req));
                        let counters = g2.counters.clone();
                        async move {
                            match (refused, fut) {
                                (None, Some(f)) => f.await,
                                (why, _) => {
                                    let why = why.unwrap_or(Refusal::CrossOrigin);
                                    let n = match why {
                                        Refusal::CrossOrigin => &counters.cross_origin,
                                        Refusal::BadHost => &counters.bad_host,
                                    };
                                    n.fetch_add(1, Ordering::Relaxed);
                                    Ok(forbidden(why))
                                }
                            }
                        }
                    });
                    let r = hyper::server::conn::http1::Builder::new()
                        .header_read_timeout(g.limits.header_read_timeout)
                        .max_header_size(g.limits.max_header_bytes)
                        .max_buf_size(read_buffer_bytes(g.limits.max_header_bytes))
                        .timer(hyper_util::rt::TokioTimer::new())
                        .serve_connection(
                            hyper_util::rt::TokioIo::new(ChunkedReads(stream)),
                            svc,
                        )
                        .await;
                    g.count_end(r);
                    g.counters.open.fetch_sub(1, Ordering::Relaxed);
                    drop(client);
                    drop(permit);
                });
            }
        }
    }
    publish(&guard);
}

/// The largest read buffer of one connection: room for the request line and headers
/// (`max_header_bytes`) plus 16 KiB of body, at least hyper's minimum of 8 KiB. hyper's
/// default (~400 KiB) would let each idle-but-open connection grow to that, outside any
/// budget; with this, `max_connections` connections hold at most this much each.
fn read_buffer_bytes(max_header_bytes: usize) -> usize {
    max_header_bytes.saturating_add(16 << 10).max(8 << 10)
}

/// The most a connection reads from its socket at once (Go's `net/http` reads through a
/// 4 KiB `bufio.Reader`).
///
/// hyper's adaptive read strategy doubles a connection's buffer after every read that
/// fills it, up to `max_buf_size`, and keeps that capacity while the connection lives:
/// with trace payloads of 15 KiB, 214 keep-alive connections held 10.4 MiB of read
/// buffers, ~48 KiB each (heaptrack, `scripts/load/trace_10x.py --decoder-timeout 0s`).
/// A read cut at half of the 8 KiB buffer hyper starts with never fills it, so the
/// buffer never grows past what one request line and its headers need; a 15 KiB body
/// costs four reads instead of one.
pub const READ_CHUNK_BYTES: usize = 4 << 10;

/// A stream whose reads return at most [`READ_CHUNK_BYTES`]; writes pass through.
#[derive(Debug)]
pub struct ChunkedReads<S>(pub S);

impl<S: AsyncRead + Unpin> AsyncRead for ChunkedReads<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let inner = &mut self.get_mut().0;
        if buf.remaining() <= READ_CHUNK_BYTES {
            return Pin::new(inner).poll_read(cx, buf);
        }
        // Zeroes at most 4 KiB that hyper left uninitialised: safe code, and cheap
        // beside the read.
        let mut part = ReadBuf::new(buf.initialize_unfilled_to(READ_CHUNK_BYTES));
        ready!(Pin::new(inner).poll_read(cx, &mut part))?;
        let n = part.filled().len();
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ChunkedReads<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

/// The 403 of a [`Refusal`].
fn forbidden(why: Refusal) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from_static(why.message().as_bytes())));
    *r.status_mut() = hyper::StatusCode::FORBIDDEN;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Open connections per peer address. The lock is held only to count, never across an
/// await; an address leaves the map when its last connection ends, so the map holds at
/// most `max_connections` entries.
#[derive(Clone, Default)]
struct PerClient(Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>);

/// One connection's place in [`PerClient`]; dropping it frees the place.
struct ClientSlot {
    map: PerClient,
    ip: std::net::IpAddr,
}

impl PerClient {
    /// A place for one more connection from `ip`, if fewer than `max` are open from it.
    fn enter(&self, ip: std::net::IpAddr, max: usize) -> Option<ClientSlot> {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            map: self.clone(),
            ip,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut m = self.map.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::HeaderMap;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap_or_else(|e| panic!("{v}: {e}")));
        }
        h
    }

    #[test]
    fn browser_requests_from_elsewhere_are_refused() {
        let any = BrowserPolicy::default();
        let api = BrowserPolicy::with_hosts(&["Meshmon.Example".to_owned()]);
        let host = ("host", "127.0.0.1:5002");
        // Tracers, curl and the agent's own CLI send none of the browser headers.
        for p in [&any, &api] {
            assert_eq!(p.judge(&headers(&[host])), None);
            assert_eq!(
                p.judge(&headers(&[host, ("sec-fetch-site", "same-origin")])),
                None
            );
            assert_eq!(p.judge(&headers(&[host, ("sec-fetch-site", "none")])), None);
            assert_eq!(
                p.judge(&headers(&[host, ("origin", "http://127.0.0.1:5002")])),
                None
            );
            for bad in [
                vec![host, ("sec-fetch-site", "cross-site")],
                vec![host, ("sec-fetch-site", "Same-Site")],
                vec![host, ("origin", "http://evil.example")],
                vec![host, ("origin", "http://127.0.0.1:5003")],
                vec![host, ("origin", "null")],
                vec![("origin", "http://127.0.0.1:5002")],
            ] {
                assert_eq!(
                    p.judge(&headers(&bad)),
                    Some(Refusal::CrossOrigin),
                    "{bad:?}"
                );
            }
        }
        // The Host check is the API's only.
        let rebound = headers(&[("host", "evil.example:5002")]);
        assert_eq!(any.judge(&rebound), None);
        assert_eq!(api.judge(&rebound), Some(Refusal::BadHost));
        assert_eq!(api.judge(&headers(&[])), Some(Refusal::BadHost));
        for ok in [
            "localhost:5002",
            "LOCALHOST",
            "app.localhost:1",
            "[::1]:5002",
            "10.0.3.7:5002",
            "meshmon.example:5002",
            "MESHMON.example",
        ] {
            assert_eq!(api.judge(&headers(&[("host", ok)])), None, "{ok}");
        }
        for bad in [
            "meshmon.example.evil:5002",
            "localhost.evil",
            "[::1",
            "10.0.3.7.nip.io",
        ] {
            assert_eq!(
                api.judge(&headers(&[("host", bad)])),
                Some(Refusal::BadHost),
                "{bad}"
            );
        }
    }

    #[test]
    fn per_client_slots_are_freed_and_bounded() {
        let m = PerClient::default();
        let a: std::net::IpAddr = [127, 0, 0, 1].into();
        let b: std::net::IpAddr = [127, 0, 0, 2].into();
        let s1 = m.enter(a, 2).unwrap_or_else(|| panic!("first"));
        let s2 = m.enter(a, 2).unwrap_or_else(|| panic!("second"));
        assert!(m.enter(a, 2).is_none());
        let s3 = m.enter(b, 2).unwrap_or_else(|| panic!("other client"));
        drop(s1);
        let s4 = m.enter(a, 2).unwrap_or_else(|| panic!("freed"));
        drop((s2, s3, s4));
        assert!(m.0.lock().unwrap_or_else(|p| p.into_inner()).is_empty());
    }

    async fn get(
        from: [u8; 4],
        to: std::net::SocketAddr,
        extra: &str,
    ) -> (tokio::net::TcpStream, String) {
        let sock = tokio::net::TcpSocket::new_v4().unwrap_or_else(|e| panic!("{e}"));
        sock.bind((std::net::Ipv4Addr::from(from), 0).into())
            .unwrap_or_else(|e| panic!("{e}"));
        let mut s = sock.connect(to).await.unwrap_or_else(|e| panic!("{e}"));
        let req = format!("GET /x HTTP/1.1\r\nhost: {to}\r\n{extra}\r\n");
        s.write_all(req.as_bytes())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut buf = vec![0u8; 512];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{e}"));
        let head = String::from_utf8_lossy(&buf[..n])
            .lines()
            .next()
            .unwrap_or("")
            .to_owned();
        (s, head)
    }

    /// A real listener: one address gets `max_connections_per_client` kept-alive
    /// connections, its next one is refused 503 while another address is still served;
    /// a foreign `Origin` is answered 403 before the handler; all counted.
    #[tokio::test(flavor = "current_thread")]
    async fn per_client_limit_and_origin_on_a_real_listener() {
        let cfg = crate::config::AgentConfig::default();
        let ctx = Ctx {
            store: crate::store::Store::shared(cfg.store.clone()),
            cfg: Arc::new(cfg),
            clock: Arc::new(crate::run::SystemClock),
            hostname: "test-host".into(),
            global_tags: meshmon_core::Tags::default(),
            log_overrides: Arc::default(),
        };
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let guard = Guard::new(
            "test",
            Limits::new(16, Duration::from_secs(5), 8192).per_client(2),
        );
        let counters = guard.counters.clone();
        let handled = Arc::new(AtomicU64::new(0));
        let seen = handled.clone();
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(serve(
            listener,
            guard,
            ctx,
            move |_req| {
                seen.fetch_add(1, Ordering::Relaxed);
                async { Ok(Response::new(Full::new(Bytes::from_static(b"ok")))) }
            },
            rx,
        ));
        let (c1, h1) = get([127, 0, 0, 1], addr, "").await;
        let (c2, h2) = get([127, 0, 0, 1], addr, "").await;
        assert_eq!(
            (h1.as_str(), h2.as_str()),
            ("HTTP/1.1 200 OK", "HTTP/1.1 200 OK")
        );
        let (_c3, h3) = get([127, 0, 0, 1], addr, "").await;
        assert_eq!(h3, "HTTP/1.1 503 Service Unavailable");
        let (_c4, h4) = get([127, 0, 0, 2], addr, "origin: http://evil.example\r\n").await;
        assert_eq!(h4, "HTTP/1.1 403 Forbidden");
        assert_eq!(counters.rejected_per_client.load(Ordering::Relaxed), 1);
        assert_eq!(counters.rejected_connections.load(Ordering::Relaxed), 0);
        assert_eq!(counters.cross_origin.load(Ordering::Relaxed), 1);
        assert_eq!(handled.load(Ordering::Relaxed), 2);
        // Closing one connection frees its client's place.
        drop(c1);
        let mut ok = false;
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let (_c, h) = get([127, 0, 0, 1], addr, "").await;
            if h == "HTTP/1.1 200 OK" {
                ok = true;
                break;
            }
        }
        assert!(ok, "a closed connection's place was not freed");
        drop(c2);
        let _ = stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }

    #[tokio::test(flavor = "current_thread")]
    async fn chunked_reads_cap_each_read_and_lose_nothing() {
        let (mut peer, ours) = tokio::io::duplex(64 << 10);
        let sent: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        peer.write_all(&sent)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        drop(peer);
        let mut r = ChunkedReads(ours);
        let (mut got, mut reads) = (Vec::new(), Vec::new());
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = r.read(&mut buf).await.unwrap_or_else(|e| panic!("{e}"));
            if n == 0 {
                break;
            }
            reads.push(n);
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, sent);
        assert!(reads.iter().all(|&n| n <= READ_CHUNK_BYTES), "{reads:?}");
        assert_eq!(
            reads.len(),
            sent.len().div_ceil(READ_CHUNK_BYTES),
            "{reads:?}"
        );
        // A buffer smaller than a chunk is filled as the stream's own read fills it.
        let (mut peer, ours) = tokio::io::duplex(1 << 10);
        let mut r = ChunkedReads(ours);
        peer.write_all(b"hello")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut small = [0u8; 3];
        assert_eq!(
            r.read(&mut small).await.unwrap_or_else(|e| panic!("{e}")),
            3
        );
        assert_eq!(&small, b"hel");
        // Writes pass through.
        r.write_all(b"back").await.unwrap_or_else(|e| panic!("{e}"));
        r.flush().await.unwrap_or_else(|e| panic!("{e}"));
        let mut back = [0u8; 4];
        peer.read_exact(&mut back)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&back, b"back");
    }
}
