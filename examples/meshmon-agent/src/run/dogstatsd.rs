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
//! Overload: each listener only receives and queues; one aggregator task parses. The
//! queue between them holds `dogstatsd.queue_size` datagrams (full: dropped, counted);
//! the UDP socket's receive buffer is `dogstatsd.so_rcvbuf` (full: the kernel drops,
//! and the agent counts what it dropped from the socket's `drops` in `/proc/net/udp`).
//! Every datagram sent to the UDP port is therefore either dropped by the kernel,
//! dropped at the queue, waiting in it, or parsed: what was sent is
//! `meshmon_dogstatsd_udp_drops_total` plus `meshmon_dogstatsd_packets_total`, and
//! `packets_total` is `processed_packets_total` plus `queue_dropped_packets_total` plus
//! `queue_packets`.
//!
//! Telemetry (`/metrics`, published every [`TELEMETRY_INTERVAL`] and at each flush;
//! the same under `dogstatsd` in `status`): `meshmon_dogstatsd_packets_total`,
//! `meshmon_dogstatsd_processed_packets_total`,
//! `meshmon_dogstatsd_queue_dropped_packets_total`, `meshmon_dogstatsd_udp_drops_total`,
//! the gauges `meshmon_dogstatsd_queue_packets`, `meshmon_dogstatsd_queue_capacity_packets`,
//! `meshmon_dogstatsd_udp_rx_queue_bytes`, `meshmon_dogstatsd_so_rcvbuf_bytes`,
//! `meshmon_dogstatsd_metrics_total`, `meshmon_dogstatsd_events_total`,
//! `meshmon_dogstatsd_service_checks_total`, `meshmon_dogstatsd_parse_errors_total`,
//! `meshmon_dogstatsd_packets_truncated_total` (a datagram filled the whole receive
//! buffer), `meshmon_dogstatsd_contexts_dropped_total`,
//! `meshmon_dogstatsd_samples_dropped_total`, `meshmon_dogstatsd_invalid_tags_total`,
//! `meshmon_dogstatsd_flushed_total`, `meshmon_dogstatsd_uds_packets_total` (datagrams
//! of the Unix socket, also in `packets_total`). Events and service checks are parsed
//! and counted; the store has no place for them yet.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use meshmon_core::dogstatsd::aggregate::{Aggregator, AggregatorConfig, AggregatorStats};
use meshmon_core::dogstatsd::{Message, parse_packet};
use tokio::net::{UdpSocket, UnixDatagram};
use tokio::sync::{mpsc, watch};

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

/// How often the counters are published to `/metrics` and `status` (and the kernel's
/// drop count of the UDP socket read), between flushes.
pub const TELEMETRY_INTERVAL: Duration = Duration::from_secs(1);

/// What the aggregator counts (it alone writes them).
#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    processed: u64,
    metrics: u64,
    events: u64,
    service_checks: u64,
    parse_errors: u64,
    flushed: u64,
}

/// What the listeners count (shared with the aggregator, which publishes them).
#[derive(Debug, Default)]
struct Intake {
    packets: AtomicU64,
    uds_packets: AtomicU64,
    truncated: AtomicU64,
    queue_dropped: AtomicU64,
}

/// One datagram on its way from a listener to the aggregator: a pooled buffer and the
/// length received into it.
#[derive(Debug)]
struct Packet {
    buf: Vec<u8>,
    len: usize,
}

/// Receive buffers handed back by the aggregator, so that a datagram costs no allocation
/// once the pool is warm; it never holds more than `max` buffers.
#[derive(Debug)]
struct Pool {
    free: Mutex<Vec<Vec<u8>>>,
    max: usize,
}

impl Pool {
    fn take(&self) -> Vec<u8> {
        self.free
            .lock()
            .ok()
            .and_then(|mut f| f.pop())
            .unwrap_or_else(|| vec![0u8; BUFFER_SIZE])
    }

    fn put(&self, buf: Vec<u8>) {
        if let Ok(mut f) = self.free.lock()
            && f.len() < self.max
        {
            f.push(buf);
        }
    }
}

/// The receive queue and drop count of one UDP socket, from the kernel's table
/// (`/proc/net/udp` or `/proc/net/udp6`, the socket found by its inode): `rx_queue` is
/// the bytes waiting in the socket's receive buffer, `drops` the datagrams the kernel
/// dropped for this socket since it was created (receive buffer full), the counter
/// `SO_RXQ_OVFL` reports too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpSocketStats {
    /// Bytes in the receive queue.
    pub rx_queue: u64,
    /// Datagrams dropped by the kernel.
    pub drops: u64,
}

/// Finds the socket with `inode` in the text of `/proc/net/udp` (or `udp6`): the
/// columns are `sl local rem st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
/// ref pointer drops` ([proc_net_udp(5)], `udp4_format_sock` in the kernel).
///
/// [proc_net_udp(5)]: https://man7.org/linux/man-pages/man5/proc.5.html
pub fn parse_proc_net_udp(text: &str, inode: u64) -> Option<UdpSocketStats> {
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 13 || f[9].parse::<u64>().ok() != Some(inode) {
            continue;
        }
        let rx_queue = f[4]
            .split_once(':')
            .and_then(|(_, rx)| u64::from_str_radix(rx, 16).ok())?;
        let drops = f[12].parse().ok()?;
        return Some(UdpSocketStats { rx_queue, drops });
    }
    None
}

/// The kernel's figures for the UDP socket with `inode` (`None` when not found, e.g.
/// no `/proc`).
fn udp_socket_stats(inode: u64) -> Option<UdpSocketStats> {
    ["/proc/net/udp", "/proc/net/udp6"].iter().find_map(|p| {
        let text = std::fs::read_to_string(p).ok()?;
        parse_proc_net_udp(&text, inode)
    })
}

/// The inode of a socket (what `/proc/net/udp` lists), from `/proc/self/fd`.
fn socket_inode(s: &impl std::os::fd::AsRawFd) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/self/fd/{}", s.as_raw_fd()))
        .ok()
        .map(|m| m.ino())
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
///
/// Each listener is its own task: it only receives, into a pooled buffer, and hands the
/// datagram to the aggregator through a queue of `dogstatsd.queue_size` datagrams; when
/// the queue is full (the aggregator is behind) the datagram is dropped and counted
/// (`meshmon_dogstatsd_queue_dropped_packets_total`). What the kernel drops because the
/// socket's receive buffer (`dogstatsd.so_rcvbuf`) was full while the listener was behind
/// is read from the kernel's socket table every [`TELEMETRY_INTERVAL`]
/// (`meshmon_dogstatsd_udp_drops_total`). So, for the UDP socket, datagrams sent =
/// `udp_drops` + `packets`, and `packets` = `processed` + `queue_dropped` + `queue`.
/// At shutdown the listeners stop, the aggregator parses what is queued, flushes once more.
pub async fn run_listeners(
    ctx: Ctx,
    udp: Option<UdpSocket>,
    unix: Option<UnixListener>,
    shutdown: watch::Receiver<bool>,
    mut agg: Aggregator,
    flush_interval: Duration,
) {
    let queue_size = ctx.cfg.dogstatsd.queue_size.max(1);
    let (tx, mut rx) = mpsc::channel::<Packet>(queue_size);
    let pool = Arc::new(Pool {
        free: Mutex::new(Vec::new()),
        max: queue_size,
    });
    let intake = Arc::new(Intake::default());
    let mut udp_inode = None;
    let mut rcvbuf = None;
    let mut listeners = Vec::new();
    if let Some(sock) = udp {
        if let Ok(addr) = sock.local_addr() {
            ctx.log("INFO", "dogstatsd", &format!("listening on udp://{addr}"));
        }
        let sref = socket2::SockRef::from(&sock);
        let want = ctx.cfg.dogstatsd.so_rcvbuf;
        if want > 0
            && let Err(e) = sref.set_recv_buffer_size(want)
        {
            ctx.log(
                "WARN",
                "dogstatsd",
                &format!("setting SO_RCVBUF to {want}: {e}"),
            );
        }
        rcvbuf = sref.recv_buffer_size().ok();
        if let Some(n) = rcvbuf {
            let msg = format!("UDP receive buffer {n} bytes (dogstatsd.so_rcvbuf {want})");
            ctx.log("INFO", "dogstatsd", &msg);
        }
        udp_inode = socket_inode(&sock);
        let (tx, pool, intake, sd) = (tx.clone(), pool.clone(), intake.clone(), shutdown.clone());
        let c = ctx.clone();
        listeners.push(tokio::spawn(async move {
            listen_udp(&c, &sock, &tx, &pool, &intake, sd).await;
        }));
    }
    if let Some(u) = unix {
        let msg = format!("listening on unixgram://{}", u.path.display());
        ctx.log("INFO", "dogstatsd", &msg);
        let (tx, pool, intake, sd) = (tx.clone(), pool.clone(), intake.clone(), shutdown.clone());
        let c = ctx.clone();
        listeners.push(tokio::spawn(async move {
            listen_unix(&c, &u, &tx, &pool, &intake, sd).await;
            drop(u); // removes the socket file
        }));
    }
    drop(tx);
    let telemetry = Telemetry {
        intake: intake.clone(),
        udp_inode,
        rcvbuf,
        queue_size,
    };
    let mut counters = Counters::default();
    let mut tick = tokio::time::interval(flush_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate
    let mut tele = tokio::time::interval(TELEMETRY_INTERVAL);
    tele.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            p = rx.recv() => match p {
                Some(p) => {
                    counters.processed += 1;
                    ingest(&mut agg, &p.buf[..p.len], &mut counters);
                    pool.put(p.buf);
                }
                // Every listener stopped and the queue is drained.
                None => break,
            },
            _ = tick.tick() => flush(&ctx, &mut agg, &mut counters, &telemetry, rx.len()),
            _ = tele.tick() => publish(&ctx, &counters, &agg.stats(), &telemetry, rx.len()),
        }
    }
    for l in listeners {
        let _ = l.await;
    }
    flush(&ctx, &mut agg, &mut counters, &telemetry, 0);
    ctx.log("INFO", "dogstatsd", "stopped");
}

/// Hands one received datagram to the aggregator, or drops and counts it when the
/// queue is full. `false` when the aggregator is gone.
fn enqueue(tx: &mpsc::Sender<Packet>, pool: &Pool, intake: &Intake, p: Packet) -> bool {
    match tx.try_send(p) {
        Ok(()) => true,
        Err(mpsc::error::TrySendError::Full(p)) => {
            intake.queue_dropped.fetch_add(1, Ordering::Relaxed);
            pool.put(p.buf);
            true
        }
        Err(mpsc::error::TrySendError::Closed(_)) => false,
    }
}

async fn listen_udp(
    ctx: &Ctx,
    sock: &UdpSocket,
    tx: &mpsc::Sender<Packet>,
    pool: &Pool,
    intake: &Intake,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let mut buf = pool.take();
        let r = tokio::select! {
            r = sock.recv_from(&mut buf) => r.map(|(n, _)| n),
            _ = stopped(&mut shutdown) => break,
        };
        if !received(ctx, tx, pool, intake, buf, r, false).await {
            break;
        }
    }
}

async fn listen_unix(
    ctx: &Ctx,
    sock: &UnixListener,
    tx: &mpsc::Sender<Packet>,
    pool: &Pool,
    intake: &Intake,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let mut buf = pool.take();
        let r = tokio::select! {
            r = sock.socket.recv(&mut buf) => r,
            _ = stopped(&mut shutdown) => break,
        };
        if !received(ctx, tx, pool, intake, buf, r, true).await {
            break;
        }
    }
}

/// What a listener does with one `recv` into `buf`: counts the datagram (truncated when it
/// filled the buffer) and queues it, or logs the error and backs off 100 ms. `false` when
/// the aggregator is gone.
async fn received(
    ctx: &Ctx,
    tx: &mpsc::Sender<Packet>,
    pool: &Pool,
    intake: &Intake,
    buf: Vec<u8>,
    r: std::io::Result<usize>,
    unix: bool,
) -> bool {
    match r {
        Ok(n) => {
            intake.packets.fetch_add(1, Ordering::Relaxed);
            if unix {
                intake.uds_packets.fetch_add(1, Ordering::Relaxed);
            }
            if n == BUFFER_SIZE {
                intake.truncated.fetch_add(1, Ordering::Relaxed);
            }
            enqueue(tx, pool, intake, Packet { buf, len: n })
        }
        Err(e) => {
            pool.put(buf);
            let on = if unix { " (unix socket)" } else { "" };
            ctx.log("WARN", "dogstatsd", &format!("recv{on}: {e}"));
            tokio::time::sleep(Duration::from_millis(100)).await;
            true
        }
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

/// What the aggregator publishes beside its own counters.
#[derive(Debug)]
struct Telemetry {
    intake: Arc<Intake>,
    udp_inode: Option<u64>,
    rcvbuf: Option<usize>,
    queue_size: usize,
}

fn flush(ctx: &Ctx, agg: &mut Aggregator, counters: &mut Counters, t: &Telemetry, queued: usize) {
    let mut out = agg.flush(ctx.clock.now());
    if !ctx.global_tags.is_empty() {
        for m in &mut out {
            m.tags = m.tags.union(&ctx.global_tags);
        }
    }
    counters.flushed += out.len() as u64;
    if let Ok(mut s) = ctx.store.write() {
        s.exports.offer(&out, ctx.cfg.dogstatsd.flush_interval.0);
        s.insert_metrics(out);
    }
    publish(ctx, counters, &agg.stats(), t, queued);
}

fn publish(ctx: &Ctx, c: &Counters, s: &AggregatorStats, t: &Telemetry, queued: usize) {
    let kernel = t.udp_inode.and_then(udp_socket_stats);
    let i = &t.intake;
    let packets = i.packets.load(Ordering::Relaxed);
    let uds_packets = i.uds_packets.load(Ordering::Relaxed);
    let truncated = i.truncated.load(Ordering::Relaxed);
    let queue_dropped = i.queue_dropped.load(Ordering::Relaxed);
    let udp_drops = kernel.map_or(0, |k| k.drops);
    let rows: [(&str, &'static str, f64); 14] = [
        (
            "meshmon_dogstatsd_packets_total",
            "DogStatsD datagrams received.",
            packets as f64,
        ),
        (
            "meshmon_dogstatsd_uds_packets_total",
            "DogStatsD datagrams received on the Unix socket (also in packets_total).",
            uds_packets as f64,
        ),
        (
            "meshmon_dogstatsd_processed_packets_total",
            "DogStatsD datagrams parsed by the aggregator.",
            c.processed as f64,
        ),
        (
            "meshmon_dogstatsd_queue_dropped_packets_total",
            "DogStatsD datagrams dropped: the queue to the aggregator was full (dogstatsd.queue_size).",
            queue_dropped as f64,
        ),
        (
            "meshmon_dogstatsd_udp_drops_total",
            "DogStatsD datagrams the kernel dropped: the UDP socket's receive buffer was full (drops in /proc/net/udp).",
            udp_drops as f64,
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
            truncated as f64,
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
    let gauges: [(&str, &'static str, f64); 4] = [
        (
            "meshmon_dogstatsd_queue_packets",
            "DogStatsD datagrams waiting for the aggregator.",
            queued as f64,
        ),
        (
            "meshmon_dogstatsd_queue_capacity_packets",
            "The bound of the queue to the aggregator (dogstatsd.queue_size).",
            t.queue_size as f64,
        ),
        (
            "meshmon_dogstatsd_udp_rx_queue_bytes",
            "Bytes waiting in the UDP socket's receive buffer (rx_queue in /proc/net/udp).",
            kernel.map_or(0, |k| k.rx_queue) as f64,
        ),
        (
            "meshmon_dogstatsd_so_rcvbuf_bytes",
            "The UDP socket's effective receive buffer (SO_RCVBUF as the kernel reports it).",
            t.rcvbuf.unwrap_or(0) as f64,
        ),
    ];
    let Ok(mut st) = ctx.store.write() else {
        return;
    };
    for (name, help, v) in rows {
        st.telemetry.set(name, "counter", help, &[], v);
    }
    for (name, help, v) in gauges {
        st.telemetry.set(name, "gauge", help, &[], v);
    }
    // Keep a bind error run::start recorded.
    let error = st
        .components
        .get("dogstatsd")
        .and_then(|v| v.get("error"))
        .cloned();
    let mut status = serde_json::json!({
        "packets": packets,
        "uds_packets": uds_packets,
        "processed_packets": c.processed,
        "queue_packets": queued,
        "queue_capacity_packets": t.queue_size,
        "queue_dropped_packets": queue_dropped,
        "udp_drops": udp_drops,
        "udp_drops_known": kernel.is_some(),
        "so_rcvbuf_bytes": t.rcvbuf,
        "metrics": c.metrics,
        "events": c.events,
        "service_checks": c.service_checks,
        "parse_errors": c.parse_errors,
        "contexts_dropped": s.contexts_dropped,
        "samples_dropped": s.samples_dropped,
        "flushed": c.flushed,
    });
    if let Some(e) = error {
        status["error"] = e;
    }
    st.components.insert("dogstatsd".to_owned(), status);
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

    #[test]
    fn proc_net_udp_gives_the_sockets_queue_and_drops() {
        let text = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
  123: 0100007F:1FBD 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 0000000000000000 0\n\
  977: 0100007F:A1B2 00000000:0000 07 00000000:0002A300 00:00000000 00000000     0        0 98765 2 0000000000000000 1234\n";
        assert_eq!(
            parse_proc_net_udp(text, 98765),
            Some(UdpSocketStats {
                rx_queue: 0x2A300,
                drops: 1234
            })
        );
        assert_eq!(
            parse_proc_net_udp(text, 4242),
            Some(UdpSocketStats {
                rx_queue: 0,
                drops: 0
            })
        );
        assert_eq!(parse_proc_net_udp(text, 1), None);
        assert_eq!(parse_proc_net_udp("garbage\n1 2 3\n", 1), None);
    }

    #[test]
    fn a_full_queue_drops_and_counts_and_recycles_the_buffer() {
        let (tx, mut rx) = mpsc::channel(1);
        let pool = Pool {
            free: Mutex::new(Vec::new()),
            max: 4,
        };
        let intake = Intake::default();
        let p = |n| Packet {
            buf: vec![0u8; BUFFER_SIZE],
            len: n,
        };
        assert!(enqueue(&tx, &pool, &intake, p(1)));
        assert!(enqueue(&tx, &pool, &intake, p(2)));
        assert_eq!(intake.queue_dropped.load(Ordering::Relaxed), 1);
        assert_eq!(pool.free.lock().map(|f| f.len()).unwrap_or(0), 1);
        assert_eq!(rx.try_recv().map(|p| p.len).ok(), Some(1));
        drop(rx);
        assert!(!enqueue(&tx, &pool, &intake, p(3)), "aggregator gone");
    }

    #[test]
    fn kernel_drops_are_counted_when_the_listener_is_behind() {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let addr = sock.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let inode = socket_inode(&sock).unwrap_or_else(|| panic!("no inode"));
        let before = udp_socket_stats(inode).unwrap_or_else(|| panic!("not in /proc/net/udp"));
        assert_eq!(before.drops, 0);
        // Nobody reads: a small receive buffer overflows.
        socket2::SockRef::from(&sock)
            .set_recv_buffer_size(4096)
            .unwrap_or_else(|e| panic!("{e}"));
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let line = [b'x'; 1000];
        for _ in 0..200 {
            client
                .send_to(&line, addr)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let after = udp_socket_stats(inode).unwrap_or_else(|| panic!("not in /proc/net/udp"));
        assert!(after.drops > 0 && after.rx_queue > 0, "{after:?}");
        sock.set_nonblocking(true).unwrap_or_else(|e| panic!("{e}"));
        let mut buf = vec![0u8; BUFFER_SIZE];
        let mut got = 0u64;
        while sock.recv(&mut buf).is_ok() {
            got += 1;
        }
        assert_eq!(got + after.drops, 200, "{after:?}, {got} received");
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
