//! The DogStatsD server: datagrams from a UDP socket and, optionally, a Unix datagram
//! socket (`dogstatsd.socket` / `DD_DOGSTATSD_SOCKET`, as the Agent's `dogstatsd_socket`)
//! parsed by `meshmon_core::dogstatsd`, aggregated as the Datadog Agent does into one
//! aggregator, flushed into the store every [`FLUSH_INTERVAL`] with the global tags.
//!
//! The Unix socket is bound as the Agent binds it ([`bind_unix`]): a stale socket file at
//! the path is replaced (any other kind of file is an error), the socket is made
//! writable by every user ([`SOCKET_MODE`], so clients in other containers can send), and
//! it is removed at shutdown. Origin detection (`SO_PASSCRED`) is not done.
//!
//! Telemetry (`/metrics`): `meshmon_dogstatsd_packets_total`,
//! `meshmon_dogstatsd_metrics_total`, `meshmon_dogstatsd_events_total`,
//! `meshmon_dogstatsd_service_checks_total`, `meshmon_dogstatsd_parse_errors_total`,
//! `meshmon_dogstatsd_packets_truncated_total` (a datagram filled the whole receive
//! buffer), `meshmon_dogstatsd_contexts_dropped_total`,
//! `meshmon_dogstatsd_samples_dropped_total`, `meshmon_dogstatsd_invalid_tags_total`,
//! `meshmon_dogstatsd_flushed_total`, `meshmon_dogstatsd_uds_packets_total` (datagrams
//! of the Unix socket, also in `packets_total`). Events and service checks are parsed
//! and counted; the store has no place for them yet.

use std::path::{Path, PathBuf};
use std::time::Duration;

use meshmon_core::dogstatsd::aggregate::{Aggregator, AggregatorConfig, AggregatorStats};
use meshmon_core::dogstatsd::{Message, parse_packet};
use tokio::net::{UdpSocket, UnixDatagram};
use tokio::sync::watch;

use super::{Ctx, stopped};

/// How often the aggregator is flushed into the store (the Agent's 10 s).
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(10);

/// The receive buffer: the Agent's `dogstatsd_buffer_size` default, 8 KiB.
pub const BUFFER_SIZE: usize = 8192;

/// Mode of the Unix socket file: `rwx-w--w-`, what the Agent sets, so that any user may
/// send and only the owner may read.
pub const SOCKET_MODE: u32 = 0o722;

/// Why the Unix socket could not be bound.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SocketError {
    /// The path exists and is not a socket: it is left alone.
    #[error("{0}: exists and is not a socket")]
    NotASocket(PathBuf),
    /// Removing a stale socket, binding or setting the mode failed.
    #[error("{path}: {what}: {source}")]
    Io {
        /// The socket path.
        path: PathBuf,
        /// The step that failed.
        what: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// A bound Unix datagram socket; the file is removed when this is dropped.
#[derive(Debug)]
pub struct UnixListener {
    socket: UnixDatagram,
    path: PathBuf,
}

impl UnixListener {
    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for UnixListener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds the DogStatsD Unix datagram socket at `path`, replacing a stale socket file and
/// setting [`SOCKET_MODE`].
pub fn bind_unix(path: &Path) -> Result<UnixListener, SocketError> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let io = |what, source| SocketError::Io {
        path: path.to_owned(),
        what,
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            std::fs::remove_file(path).map_err(|e| io("removing the stale socket", e))?;
        }
        Ok(_) => return Err(SocketError::NotASocket(path.to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("stat", e)),
    }
    let socket = UnixDatagram::bind(path).map_err(|e| io("bind", e))?;
    let listener = UnixListener {
        socket,
        path: path.to_owned(),
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE))
        .map_err(|e| io("chmod", e))?;
    Ok(listener)
}

#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    packets: u64,
    uds_packets: u64,
    metrics: u64,
    events: u64,
    service_checks: u64,
    parse_errors: u64,
    truncated: u64,
    flushed: u64,
}

/// Receives datagrams on `socket` until `shutdown` says stop, then flushes once more.
pub async fn run(ctx: Ctx, socket: UdpSocket, shutdown: watch::Receiver<bool>) {
    let agg = match Aggregator::new(AggregatorConfig::default()) {
        Ok(a) => a,
        Err(e) => {
            ctx.log("ERROR", "dogstatsd", &format!("aggregator: {e}"));
            return;
        }
    };
    run_with(ctx, socket, shutdown, agg, FLUSH_INTERVAL).await;
}

/// [`run`] with an aggregator and a flush interval of the caller's.
pub async fn run_with(
    ctx: Ctx,
    socket: UdpSocket,
    shutdown: watch::Receiver<bool>,
    agg: Aggregator,
    flush_interval: Duration,
) {
    run_listeners(ctx, Some(socket), None, shutdown, agg, flush_interval).await;
}

/// Receives datagrams on whichever of `udp` and `unix` are given, into one aggregator,
/// until `shutdown` says stop; then flushes once more and removes the socket file.
pub async fn run_listeners(
    ctx: Ctx,
    udp: Option<UdpSocket>,
    unix: Option<UnixListener>,
    mut shutdown: watch::Receiver<bool>,
    mut agg: Aggregator,
    flush_interval: Duration,
) {
    if let Some(addr) = udp.as_ref().and_then(|s| s.local_addr().ok()) {
        ctx.log("INFO", "dogstatsd", &format!("listening on udp://{addr}"));
    }
    if let Some(u) = &unix {
        let msg = format!("listening on unixgram://{}", u.path.display());
        ctx.log("INFO", "dogstatsd", &msg);
    }
    let mut buf = vec![0u8; BUFFER_SIZE];
    let mut ubuf = vec![0u8; BUFFER_SIZE];
    let mut counters = Counters::default();
    let mut tick = tokio::time::interval(flush_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate
    loop {
        tokio::select! {
            r = recv_udp(udp.as_ref(), &mut buf) => match r {
                Ok(n) => {
                    counters.packets += 1;
                    if n == buf.len() {
                        counters.truncated += 1;
                    }
                    ingest(&mut agg, &buf[..n], &mut counters);
                }
                Err(e) => {
                    ctx.log("WARN", "dogstatsd", &format!("recv: {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            r = recv_unix(unix.as_ref(), &mut ubuf) => match r {
                Ok(n) => {
                    counters.packets += 1;
                    counters.uds_packets += 1;
                    if n == ubuf.len() {
                        counters.truncated += 1;
                    }
                    ingest(&mut agg, &ubuf[..n], &mut counters);
                }
                Err(e) => {
                    ctx.log("WARN", "dogstatsd", &format!("recv (unix socket): {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = tick.tick() => flush(&ctx, &mut agg, &mut counters),
            _ = stopped(&mut shutdown) => break,
        }
    }
    flush(&ctx, &mut agg, &mut counters);
    drop(unix); // removes the socket file
    ctx.log("INFO", "dogstatsd", "stopped");
}

/// One datagram of `socket`; never ready without one.
async fn recv_udp(socket: Option<&UdpSocket>, buf: &mut [u8]) -> std::io::Result<usize> {
    match socket {
        Some(s) => s.recv_from(buf).await.map(|(n, _)| n),
        None => std::future::pending().await,
    }
}

/// One datagram of `socket`; never ready without one.
async fn recv_unix(socket: Option<&UnixListener>, buf: &mut [u8]) -> std::io::Result<usize> {
    match socket {
        Some(s) => s.socket.recv(buf).await,
        None => std::future::pending().await,
    }
}

fn ingest(agg: &mut Aggregator, packet: &[u8], counters: &mut Counters) {
    for msg in parse_packet(packet) {
        match msg {
            Ok(Message::Metric(m)) => {
                counters.metrics += 1;
                agg.insert(&m);
            }
            Ok(Message::Event(_)) => counters.events += 1,
            Ok(Message::ServiceCheck(_)) => counters.service_checks += 1,
            // Other variants of a non-exhaustive future are counted as errors too.
            Err(_) => counters.parse_errors += 1,
        }
    }
}

fn flush(ctx: &Ctx, agg: &mut Aggregator, counters: &mut Counters) {
    let mut out = agg.flush(ctx.clock.now());
    if !ctx.global_tags.is_empty() {
        for m in &mut out {
            m.tags = m.tags.union(&ctx.global_tags);
        }
    }
    counters.flushed += out.len() as u64;
    let stats = agg.stats();
    if let Ok(mut s) = ctx.store.write() {
        s.exports.offer(&out, ctx.cfg.dogstatsd.flush_interval.0);
        s.insert_metrics(out);
        publish(&mut s.telemetry, counters, &stats);
    }
}

fn publish(t: &mut crate::store::Telemetry, c: &Counters, s: &AggregatorStats) {
    let rows: [(&str, &'static str, f64); 11] = [
        (
            "meshmon_dogstatsd_packets_total",
            "DogStatsD datagrams received.",
            c.packets as f64,
        ),
        (
            "meshmon_dogstatsd_uds_packets_total",
            "DogStatsD datagrams received on the Unix socket (also in packets_total).",
            c.uds_packets as f64,
        ),
        (
            "meshmon_dogstatsd_metrics_total",
            "DogStatsD metric lines parsed.",
            c.metrics as f64,
        ),
        (
            "meshmon_dogstatsd_events_total",
            "DogStatsD events parsed (not stored).",
            c.events as f64,
        ),
        (
            "meshmon_dogstatsd_service_checks_total",
            "DogStatsD service checks parsed (not stored).",
            c.service_checks as f64,
        ),
        (
            "meshmon_dogstatsd_parse_errors_total",
            "DogStatsD lines rejected by the parser.",
            c.parse_errors as f64,
        ),
        (
            "meshmon_dogstatsd_packets_truncated_total",
            "DogStatsD datagrams that filled the receive buffer (possibly truncated).",
            c.truncated as f64,
        ),
        (
            "meshmon_dogstatsd_contexts_dropped_total",
            "DogStatsD samples dropped: the aggregator's context bound was reached.",
            s.contexts_dropped as f64,
        ),
        (
            "meshmon_dogstatsd_samples_dropped_total",
            "DogStatsD samples dropped: a context's sample bound was reached.",
            s.samples_dropped as f64,
        ),
        (
            "meshmon_dogstatsd_invalid_tags_total",
            "DogStatsD tags dropped as invalid.",
            s.invalid_tags as f64,
        ),
        (
            "meshmon_dogstatsd_flushed_total",
            "Series flushed by the DogStatsD aggregator into the store.",
            c.flushed as f64,
        ),
    ];
    for (name, help, v) in rows {
        t.set(name, "counter", help, &[], v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshmon_core::MetricValue;

    #[test]
    fn ingest_counts_every_kind_of_line() {
        let mut agg =
            Aggregator::new(AggregatorConfig::default()).unwrap_or_else(|e| panic!("{e}"));
        let mut c = Counters::default();
        ingest(
            &mut agg,
            b"a:1|c\na:2|c\n_e{1,1}:t|x\n_sc|up|0\nbad|c\n",
            &mut c,
        );
        assert_eq!(
            (c.metrics, c.events, c.service_checks, c.parse_errors),
            (2, 1, 1, 1)
        );
        let out = agg.flush(meshmon_core::Timestamp::EPOCH);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].value, MetricValue::Count(3.0));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn udp_datagrams_reach_the_store_with_global_tags() {
        use std::sync::Arc;
        let cfg = crate::config::AgentConfig::default();
        let ctx = Ctx {
            store: crate::store::Store::shared(cfg.store.clone()),
            cfg: Arc::new(cfg),
            clock: Arc::new(super::super::SystemClock),
            hostname: "test-host".into(),
            global_tags: "env:test".parse().unwrap_or_else(|e| panic!("{e}")),
            log_overrides: Arc::default(),
        };
        let socket = UdpSocket::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = socket.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let (tx, rx) = watch::channel(false);
        let agg = Aggregator::new(AggregatorConfig::default()).unwrap_or_else(|e| panic!("{e}"));
        let task = tokio::spawn(run_with(
            ctx.clone(),
            socket,
            rx,
            agg,
            Duration::from_secs(3600),
        ));
        let client = UdpSocket::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        for p in [
            &b"page.views:1|c|#service:web\npage.views:2|c|@0.5|#service:web"[..],
            b"fuel.level:0.5|g\nlatency:10:20:30|h",
            b"nonsense",
        ] {
            client
                .send_to(p, addr)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        // Loopback UDP: give the listener time to receive the datagrams, then stop it
        // (the final flush publishes the store series and the counters).
        tokio::time::sleep(Duration::from_millis(200)).await;
        tx.send(true).unwrap_or_else(|e| panic!("{e}"));
        task.await.unwrap_or_else(|e| panic!("{e}"));
        let s = ctx.store.read().unwrap_or_else(|e| panic!("{e}"));
        let views = s.query(
            "page.views",
            &["service:web".into(), "env:test".into()],
            None,
        );
        assert_eq!(views.len(), 1, "{:?}", s.names());
        assert_eq!(views[0].points.last().map(|p| p.v), Some(5.0));
        let names: Vec<String> = s.names().into_iter().map(|(n, _)| n).collect();
        for n in [
            "fuel.level",
            "latency.max",
            "latency.avg",
            "latency.count",
            "latency.median",
            "latency.95percentile",
        ] {
            assert!(names.iter().any(|x| x == n), "{n} missing from {names:?}");
        }
        assert_eq!(s.telemetry.get("meshmon_dogstatsd_packets_total"), 3.0);
        assert_eq!(s.telemetry.get("meshmon_dogstatsd_metrics_total"), 4.0);
        assert_eq!(s.telemetry.get("meshmon_dogstatsd_parse_errors_total"), 1.0);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn unix_socket_is_bound_as_the_agent_binds_it() {
        use std::os::unix::fs::PermissionsExt;
        use std::sync::Arc;
        let dir = std::env::temp_dir().join(format!("meshmon-dsd-uds-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        // A regular file at the path is refused and left alone.
        let file = dir.join("not-a-socket");
        std::fs::write(&file, b"keep me").unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(bind_unix(&file), Err(SocketError::NotASocket(_))));
        assert_eq!(std::fs::read(&file).ok().as_deref(), Some(&b"keep me"[..]));
        // A stale socket (left by a killed agent) is replaced; the mode lets anyone send.
        let path = dir.join("dsd.socket");
        let stale = std::os::unix::net::UnixDatagram::bind(&path).unwrap_or_else(|e| panic!("{e}"));
        drop(stale);
        let listener = bind_unix(&path).unwrap_or_else(|e| panic!("{e}"));
        let mode = std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, SOCKET_MODE);
        // Datagrams on the socket reach the store, beside UDP ones, in one aggregator.
        let cfg = crate::config::AgentConfig::default();
        let ctx = Ctx {
            store: crate::store::Store::shared(cfg.store.clone()),
            cfg: Arc::new(cfg),
            clock: Arc::new(super::super::SystemClock),
            hostname: "test-host".into(),
            global_tags: meshmon_core::Tags::new(),
            log_overrides: Arc::default(),
        };
        let udp = UdpSocket::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let udp_addr = udp.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let (tx, rx) = watch::channel(false);
        let agg = Aggregator::new(AggregatorConfig::default()).unwrap_or_else(|e| panic!("{e}"));
        let task = tokio::spawn(run_listeners(
            ctx.clone(),
            Some(udp),
            Some(listener),
            rx,
            agg,
            Duration::from_secs(3600),
        ));
        let client = std::os::unix::net::UnixDatagram::unbound().unwrap_or_else(|e| panic!("{e}"));
        client
            .send_to(b"jobs.done:2|c|#queue:a\n_sc|jobs.ok|0", &path)
            .unwrap_or_else(|e| panic!("{e}"));
        client
            .send_to(b"jobs.done:3|c|#queue:a", &path)
            .unwrap_or_else(|e| panic!("{e}"));
        let u = UdpSocket::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        u.send_to(b"jobs.done:4|c|#queue:a", udp_addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        tokio::time::sleep(Duration::from_millis(200)).await;
        tx.send(true).unwrap_or_else(|e| panic!("{e}"));
        task.await.unwrap_or_else(|e| panic!("{e}"));
        assert!(!path.exists(), "the socket file is removed at shutdown");
        let s = ctx.store.read().unwrap_or_else(|e| panic!("{e}"));
        let done = s.query("jobs.done", &["queue:a".into()], None);
        assert_eq!(done.len(), 1, "{:?}", s.names());
        assert_eq!(done[0].points.last().map(|p| p.v), Some(9.0));
        assert_eq!(s.telemetry.get("meshmon_dogstatsd_packets_total"), 3.0);
        assert_eq!(s.telemetry.get("meshmon_dogstatsd_uds_packets_total"), 2.0);
        assert_eq!(
            s.telemetry.get("meshmon_dogstatsd_service_checks_total"),
            1.0
        );
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
