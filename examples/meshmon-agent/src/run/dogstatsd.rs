//! The DogStatsD server: datagrams from a UDP socket parsed by
//! `meshmon_core::dogstatsd`, aggregated as the Datadog Agent does, flushed into the store
//! every [`FLUSH_INTERVAL`] with the global tags.
//!
//! Telemetry (`/metrics`): `meshmon_dogstatsd_packets_total`,
//! `meshmon_dogstatsd_metrics_total`, `meshmon_dogstatsd_events_total`,
//! `meshmon_dogstatsd_service_checks_total`, `meshmon_dogstatsd_parse_errors_total`,
//! `meshmon_dogstatsd_packets_truncated_total` (a datagram filled the whole receive
//! buffer), `meshmon_dogstatsd_contexts_dropped_total`,
//! `meshmon_dogstatsd_samples_dropped_total`, `meshmon_dogstatsd_invalid_tags_total`,
//! `meshmon_dogstatsd_flushed_total`. Events and service checks are parsed and counted;
//! the store has no place for them yet.

use std::time::Duration;

use meshmon_core::dogstatsd::aggregate::{Aggregator, AggregatorConfig, AggregatorStats};
use meshmon_core::dogstatsd::{Message, parse_packet};
use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::{Ctx, stopped};

/// How often the aggregator is flushed into the store (the Agent's 10 s).
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(10);

/// The receive buffer: the Agent's `dogstatsd_buffer_size` default, 8 KiB.
pub const BUFFER_SIZE: usize = 8192;

#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    packets: u64,
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
    mut shutdown: watch::Receiver<bool>,
    mut agg: Aggregator,
    flush_interval: Duration,
) {
    if let Ok(addr) = socket.local_addr() {
        ctx.log("INFO", "dogstatsd", &format!("listening on udp://{addr}"));
    }
    let mut buf = vec![0u8; BUFFER_SIZE];
    let mut counters = Counters::default();
    let mut tick = tokio::time::interval(flush_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate
    loop {
        tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, _peer)) => {
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
            _ = tick.tick() => flush(&ctx, &mut agg, &mut counters),
            _ = stopped(&mut shutdown) => break,
        }
    }
    flush(&ctx, &mut agg, &mut counters);
    ctx.log("INFO", "dogstatsd", "stopped");
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
    let rows: [(&str, &'static str, f64); 10] = [
        (
            "meshmon_dogstatsd_packets_total",
            "DogStatsD datagrams received.",
            c.packets as f64,
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
}
