//! Overload (issue 14, "Overload", bullets 2 and 3): the real `meshmon-agent` binary under
//! a cgroup v1 CPU quota, so that "10× its capacity" is measured and reached honestly on
//! a small shared machine:
//!
//! - DogStatsD at 10× the datagrams per second it sustains: it stays up, `/health`
//!   answers, RSS stays within 2× its steady state, and every datagram sent is accounted
//!   for exactly: sent = parsed + dropped by the kernel (the socket's receive buffer) +
//!   dropped at the queue to the aggregator; a metric unique to the run, one line per
//!   datagram, checks that what was aggregated is what was parsed.
//! - A log burst at 10× the lines per second the tailer reads, with a kubelet rotation in
//!   the middle: tailing falls behind and catches up, every line is read once, RSS stays
//!   within 2× its steady state, saved positions never pass what was read.
//! - An export whose server is down (connection refused), then slower than the request
//!   timeout, then healthy: the scrape loop runs every interval throughout, the queue
//!   stays within its bound and RSS within what the bound holds, and offered = sent +
//!   failed + dropped + skipped + queued in every snapshot.
//!
//! The tests are shortened; `scripts/load/overload.sh` runs them at full length (the
//! `MESHMON_OVERLOAD_*` variables below) and prints their figures. Without
//! `/sys/fs/cgroup/cpu` (cgroup v1, root) a test says what it skipped, or fails under
//! `MESHMON_REQUIRE_CORPUS=1`.
#![cfg(feature = "agent")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::run::{Agent, TempDir, get_json, http, write_config};

fn require() -> bool {
    std::env::var("MESHMON_REQUIRE_CORPUS").is_ok_and(|v| v == "1")
}

/// `MESHMON_OVERLOAD_<name>` as a number, or `default`.
fn knob(name: &str, default: f64) -> f64 {
    std::env::var(format!("MESHMON_OVERLOAD_{name}"))
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A cgroup v1 CPU group with a quota, removed on drop (its processes moved back to the
/// root group first).
struct CpuCgroup {
    path: PathBuf,
}

impl CpuCgroup {
    /// A group allowed `pct` % of one CPU (`cpu.cfs_quota_us` over a 100 ms period), or
    /// `None` with a message (a failure under `MESHMON_REQUIRE_CORPUS=1`).
    fn create(name: &str, pct: f64) -> Option<CpuCgroup> {
        let root = Path::new("/sys/fs/cgroup/cpu");
        let path = root.join(format!("meshmon-overload-{name}-{}", std::process::id()));
        let made = (|| -> std::io::Result<()> {
            if !root.join("cpu.cfs_quota_us").exists() {
                return Err(std::io::Error::other(
                    "no cgroup v1 cpu controller at /sys/fs/cgroup/cpu",
                ));
            }
            let _ = std::fs::remove_dir(&path);
            std::fs::create_dir(&path)?;
            std::fs::write(path.join("cpu.cfs_period_us"), "100000")?;
            std::fs::write(
                path.join("cpu.cfs_quota_us"),
                format!("{}", (pct * 1000.0).round() as u64),
            )?;
            Ok(())
        })();
        match made {
            Ok(()) => Some(CpuCgroup { path }),
            Err(e) => {
                let _ = std::fs::remove_dir(&path);
                if require() {
                    panic!(
                        "cgroup {}: {e} and MESHMON_REQUIRE_CORPUS=1",
                        path.display()
                    );
                }
                eprintln!(
                    "SKIPPED: cannot make the CPU cgroup {} ({e}); needs root and cgroup v1 \
                     (set MESHMON_REQUIRE_CORPUS=1 to fail instead)",
                    path.display()
                );
                None
            }
        }
    }

    /// Moves process `pid` (all its threads) into the group.
    fn add(&self, pid: u32) {
        std::fs::write(self.path.join("cgroup.procs"), pid.to_string()).unwrap();
    }

    /// How long the group was throttled by its quota (ns, `throttled_time` of
    /// `cpu.stat`): > 0 shows the quota bit.
    fn throttled_ns(&self) -> u64 {
        std::fs::read_to_string(self.path.join("cpu.stat"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("throttled_time ")?.trim().parse().ok())
            })
            .unwrap_or(0)
    }
}

impl Drop for CpuCgroup {
    fn drop(&mut self) {
        if let Ok(procs) = std::fs::read_to_string(self.path.join("cgroup.procs")) {
            for p in procs.lines() {
                let _ = std::fs::write("/sys/fs/cgroup/cpu/cgroup.procs", p);
            }
        }
        for _ in 0..50 {
            if std::fs::remove_dir(&self.path).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("could not remove cgroup {}", self.path.display());
    }
}

/// Resident set size of `pid` in KiB (0 once it is gone).
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("VmRSS:")?
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse()
                    .ok()
            })
        })
        .unwrap_or(0)
}

/// Samples the RSS of a process every 250 ms, each sample tagged with the phase it was
/// taken in.
struct RssSampler {
    samples: Arc<Mutex<Vec<(u8, u64)>>>,
    phase: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let phase = Arc::new(AtomicU8::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, p, st) = (samples.clone(), phase.clone(), stop.clone());
        std::thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                let v = rss_kib(pid);
                s.lock().unwrap().push((p.load(Ordering::SeqCst), v));
                std::thread::sleep(Duration::from_millis(250));
            }
        });
        RssSampler {
            samples,
            phase,
            stop,
        }
    }

    fn phase(&self, p: u8) {
        self.phase.store(p, Ordering::SeqCst);
    }

    /// Largest sample of phase `p` (KiB).
    fn max_of(&self, p: u8) -> u64 {
        self.samples
            .lock()
            .unwrap()
            .iter()
            .filter(|(ph, _)| *ph == p)
            .map(|(_, v)| *v)
            .max()
            .unwrap_or(0)
    }

    /// Largest sample of phases `>= p` (KiB).
    fn max_from(&self, p: u8) -> u64 {
        self.samples
            .lock()
            .unwrap()
            .iter()
            .filter(|(ph, _)| *ph >= p)
            .map(|(_, v)| *v)
            .max()
            .unwrap_or(0)
    }

    /// The curve, one sample a second: `phase:MiB` pairs.
    fn curve(&self) -> String {
        self.samples
            .lock()
            .unwrap()
            .iter()
            .step_by(4)
            .map(|(p, v)| format!("{p}:{:.1}", *v as f64 / 1024.0))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The agent's `/metrics` text.
fn metrics(api: &str) -> String {
    let (code, body) = http(api, "GET", "/metrics", &[], b"");
    assert_eq!(code, 200);
    String::from_utf8(body).unwrap()
}

/// The value of the sample `key` (a name with its labels, if any) in `text`, 0 if absent.
fn value(text: &str, key: &str) -> f64 {
    let prefix = format!("{key} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// SplitMix64: a small seeded generator, so every run sends the same traffic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

// ---------------------------------------------------------------------------------------
// DogStatsD
// ---------------------------------------------------------------------------------------

const SERVICES: &[&str] = &[
    "productpage",
    "details",
    "reviews",
    "ratings",
    "checkout",
    "cart",
    "payments",
    "frontend",
];
const VERSIONS: &[&str] = &["v1", "v2", "v3"];
const CODES: &[&str] = &["200", "200", "200", "200", "201", "404", "503"];
const ROUTES: &[&str] = &[
    "/productpage",
    "/api/v1/products",
    "/api/v1/products/{id}",
    "/reviews/{id}",
    "/ratings/{id}",
    "/health",
];

/// Seeded DogStatsD datagrams as an Istio mesh's applications and sidecars send them
/// (the Datadog client libraries' buffered UDP: several lines per datagram, at most
/// 1432 bytes), each with one line of `marker` counting the datagram.
struct DsdGen {
    rng: Rng,
    marker: String,
}

impl DsdGen {
    fn line(&mut self, out: &mut Vec<u8>) {
        let r = &mut self.rng;
        let svc = r.pick(SERVICES);
        let ver = r.pick(VERSIONS);
        let tags = format!(
            "#env:prod,service:{svc},version:{ver},kube_namespace:default,pod_name:{svc}-{ver}-7d4f{}",
            r.below(4)
        );
        let _ = match r.below(9) {
            0 | 1 => write!(
                out,
                "istio.mesh.request.count:1|c|{tags},destination_service:{}.default.svc.cluster.local,response_code:{},reporter:destination",
                r.pick(SERVICES),
                r.pick(CODES)
            ),
            2 => write!(
                out,
                "envoy.cluster.upstream_rq_time:{}|h|{tags},cluster_name:outbound|9080||{}.default.svc.cluster.local",
                1 + r.below(400),
                r.pick(SERVICES)
            ),
            3 => write!(
                out,
                "http.server.request.duration:{}.{}|d|@0.5|{tags},http.method:GET,http.route:{},http.status_code:{}",
                r.below(900),
                r.below(1000),
                r.pick(ROUTES),
                r.pick(CODES)
            ),
            4 => write!(
                out,
                "runtime.jvm.heap.used:{}|g|{tags}",
                100_000_000 + r.below(400_000_000)
            ),
            5 => write!(out, "app.users.unique:u{}|s|{tags}", r.below(5000)),
            6 => write!(
                out,
                "app.checkout.items:{}|c|@0.1|{tags},payment_method:{}",
                1 + r.below(5),
                ["card", "paypal", "voucher"][r.below(3) as usize]
            ),
            7 => write!(
                out,
                "app.queue.depth:{}|g|{tags},queue:orders",
                r.below(200)
            ),
            _ => write!(
                out,
                "istio.mesh.request.duration.milliseconds:{}|h|{tags},destination_service:{}.default.svc.cluster.local",
                1 + r.below(2000),
                r.pick(SERVICES)
            ),
        };
    }

    /// One datagram into `out`.
    fn packet(&mut self, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(self.marker.as_bytes());
        let n = 1 + self.rng.below(6);
        let mut line = Vec::with_capacity(256);
        for _ in 0..n {
            line.clear();
            self.line(&mut line);
            if out.len() + 1 + line.len() > 1432 {
                break;
            }
            out.push(b'\n');
            out.extend_from_slice(&line);
        }
    }
}

/// Sends datagrams to `addr` at `rate` per second (0 = as fast as possible) for `secs`;
/// returns how many `send_to` accepted.
fn send_dsd(dsd: &mut DsdGen, addr: &str, rate: f64, secs: f64) -> u64 {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut buf = Vec::with_capacity(1500);
    let t0 = Instant::now();
    let mut sent = 0u64;
    loop {
        let el = t0.elapsed().as_secs_f64();
        if el >= secs {
            return sent;
        }
        let due = if rate > 0.0 {
            ((el * rate) as u64).saturating_sub(sent).min(20_000)
        } else {
            256
        };
        if due == 0 {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        for _ in 0..due {
            dsd.packet(&mut buf);
            if sock.send_to(&buf, addr).is_ok() {
                sent += 1;
            }
        }
    }
}

/// `/health` answers "ok" within its timeout, once a second, until `stop`; returns the
/// probes and the slowest answer.
fn health_prober(api: String, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(u64, Duration)> {
    std::thread::spawn(move || {
        let mut n = 0;
        let mut worst = Duration::ZERO;
        while !stop.load(Ordering::SeqCst) {
            let t = Instant::now();
            let v = get_json(&api, "/health");
            assert_eq!(v["status"], "ok", "{v}");
            worst = worst.max(t.elapsed());
            n += 1;
            std::thread::sleep(Duration::from_secs(1));
        }
        (n, worst)
    })
}

/// Waits until `f` gives the same value twice in a row, `every` apart (at most `secs`).
fn settle<T: PartialEq + std::fmt::Debug>(
    secs: u64,
    every: Duration,
    mut f: impl FnMut() -> T,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut last = f();
    loop {
        std::thread::sleep(every);
        let v = f();
        if v == last {
            return v;
        }
        assert!(Instant::now() < deadline, "never settled: {v:?}");
        last = v;
    }
}

/// Once the DogStatsD counters stop moving and the queue is empty: (received, dropped
/// by the kernel, parsed, queued).
fn dsd_settled(api: &str) -> (u64, u64, u64, u64) {
    settle(60, Duration::from_millis(1300), || {
        let m = metrics(api);
        (
            value(&m, "meshmon_dogstatsd_packets_total") as u64,
            value(&m, "meshmon_dogstatsd_udp_drops_total") as u64,
            value(&m, "meshmon_dogstatsd_processed_packets_total") as u64,
            value(&m, "meshmon_dogstatsd_queue_packets") as u64,
        )
    })
}

#[test]
fn dogstatsd_at_10x_capacity_counts_every_datagram() {
    let pct = knob("CPU_PCT", 10.0);
    let Some(cg) = CpuCgroup::create("dsd", pct) else {
        return;
    };
    let blast_secs = knob("DSD_SECS", 15.0);
    let dir = TempDir::new("overload-dsd");
    let cfg = write_config(
        dir.path(),
        &format!(
            "data_dir: {}\napi:\n  listen: 127.0.0.1:0\napm:\n  enabled: false\ndogstatsd:\n  port: 0\n  flush_interval: 1s\n",
            dir.path().join("data").display()
        ),
    );
    let agent = Agent::start(&cfg, &[]);
    cg.add(agent.pid());
    let api = agent.api.clone();
    let status = get_json(&api, "/api/v1/status");
    let addr = status["listeners"]["dogstatsd"]
        .as_str()
        .unwrap()
        .trim_start_matches("udp://")
        .to_owned();
    let seed = 0x5eed_d057_u64;
    let run = format!("r{:x}", std::process::id() as u64 ^ seed);
    let marker_name = format!("meshmon.overload.{run}.datagrams");
    let mut dsd = DsdGen {
        rng: Rng(seed),
        marker: format!("{marker_name}:1|c|#run:{run}"),
    };
    let rss = RssSampler::start(agent.pid());
    let processed = |m: &str| value(m, "meshmon_dogstatsd_processed_packets_total");

    // 1. Capacity: as fast as the sender goes (far more than the quota allows the agent);
    //    the rate the aggregator parses at is what the agent sustains.
    let mut sent = send_dsd(&mut dsd, &addr, 0.0, 1.0);
    let (t0, p0) = (Instant::now(), processed(&metrics(&api)));
    sent += send_dsd(&mut dsd, &addr, 0.0, knob("DSD_CAPACITY_SECS", 4.0));
    let (t1, p1) = (Instant::now(), processed(&metrics(&api)));
    let capacity = (p1 - p0) / (t1 - t0).as_secs_f64();
    assert!(capacity > 100.0, "capacity {capacity}/s");

    // 2. Steady state: half the capacity, once the capacity run's backlog is drained.
    rss.phase(1);
    dsd_settled(&api);
    let m = metrics(&api);
    let drops_before_steady = value(&m, "meshmon_dogstatsd_udp_drops_total")
        + value(&m, "meshmon_dogstatsd_queue_dropped_packets_total");
    sent += send_dsd(
        &mut dsd,
        &addr,
        capacity * 0.5,
        knob("DSD_STEADY_SECS", 4.0),
    );
    std::thread::sleep(Duration::from_millis(1500));
    let m = metrics(&api);
    let steady_drops = value(&m, "meshmon_dogstatsd_udp_drops_total")
        + value(&m, "meshmon_dogstatsd_queue_dropped_packets_total")
        - drops_before_steady;
    let steady_rss = rss.max_of(1);

    // 3. Ten times the capacity, paced, with /health probed every second.
    rss.phase(2);
    let stop = Arc::new(AtomicBool::new(false));
    let prober = health_prober(api.clone(), stop.clone());
    let tb = Instant::now();
    let blasted = send_dsd(&mut dsd, &addr, capacity * 10.0, blast_secs);
    let offered_rate = blasted as f64 / tb.elapsed().as_secs_f64();
    sent += blasted;
    stop.store(true, Ordering::SeqCst);
    let (probes, worst) = prober.join().unwrap();

    // 4. Drained: the queue is empty and the counters no longer move.
    rss.phase(3);
    let (received, udp_drops, parsed, queued) = dsd_settled(&api);
    let text = metrics(&api);
    let queue_dropped = value(&text, "meshmon_dogstatsd_queue_dropped_packets_total") as u64;
    // Two flushes later the marker's counts are all in the store.
    std::thread::sleep(Duration::from_millis(2500));
    let series = get_json(&api, &format!("/api/v1/series?name={marker_name}"));
    let aggregated: f64 = series["series"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["points"].as_array().unwrap().iter())
        .map(|p| p["v"].as_f64().unwrap())
        .sum();
    let peak_rss = rss.max_from(2);
    let st = get_json(&api, "/api/v1/status");
    let d = &st["components"]["dogstatsd"];
    eprintln!(
        "DOGSTATSD cpu_quota={pct}% capacity={capacity:.0}/s offered={offered_rate:.0}/s ({:.1}x) for {blast_secs}s; \
         sent={sent} received={received} parsed={parsed} udp_drops={udp_drops} queue_dropped={queue_dropped} queued={queued} \
         aggregated_marker={aggregated} steady_drops={steady_drops}; so_rcvbuf={} queue_capacity={}; \
         rss steady={:.1}MiB peak={:.1}MiB ({:.2}x); health probes={probes} slowest={worst:?}; throttled={:.1}s\nRSS curve (phase:MiB): {}",
        offered_rate / capacity,
        d["so_rcvbuf_bytes"],
        d["queue_capacity_packets"],
        steady_rss as f64 / 1024.0,
        peak_rss as f64 / 1024.0,
        peak_rss as f64 / steady_rss.max(1) as f64,
        cg.throttled_ns() as f64 / 1e9,
        rss.curve()
    );
    assert!(
        offered_rate >= 9.0 * capacity,
        "the sender reached only {offered_rate:.0}/s, not 10x {capacity:.0}/s"
    );
    assert_eq!(queued, 0);
    assert_eq!(
        sent,
        received + udp_drops,
        "every datagram sent is received or counted as dropped by the kernel"
    );
    assert_eq!(
        received,
        parsed + queue_dropped,
        "every datagram received is parsed or counted as dropped at the queue"
    );
    assert!(udp_drops + queue_dropped > 0, "10x was not an overload");
    assert_eq!(
        aggregated, parsed as f64,
        "the run's marker, one per datagram"
    );
    assert_eq!(value(&text, "meshmon_dogstatsd_parse_errors_total"), 0.0);
    assert_eq!(
        value(&text, "meshmon_dogstatsd_contexts_dropped_total"),
        0.0
    );
    assert_eq!(d["udp_drops"].as_u64(), Some(udp_drops), "{d}");
    assert_eq!(
        d["queue_dropped_packets"].as_u64(),
        Some(queue_dropped),
        "{d}"
    );
    assert!(
        peak_rss <= 2 * steady_rss,
        "RSS {peak_rss} KiB over 2x the steady {steady_rss} KiB"
    );
    let h = get_json(&api, "/health");
    assert_eq!(h["status"], "ok", "{h}");
    // `meshmon-agent status` shows the drop counters.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_meshmon-agent"))
        .args(["status", "--addr", &api])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let want = format!("queue dropped={queue_dropped} udp drops={udp_drops}");
    assert!(text.contains(&want), "{want:?} not in:\n{text}");
    drop(rss);
    assert!(agent.stop().success());
}
