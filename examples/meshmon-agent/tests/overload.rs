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
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
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

// ---------------------------------------------------------------------------------------
// Log burst
// ---------------------------------------------------------------------------------------

const LEVELS: &[&str] = &["INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"];
const METHODS: &[&str] = &["GET", "GET", "GET", "POST", "PUT", "DELETE"];

/// Seeded CRI lines as the kubelet writes a container's stdout
/// (`<RFC 3339 nano> stdout F <message>`): Envoy access logs and application lines, each
/// with its sequence number.
struct CriGen {
    rng: Rng,
    seq: u64,
}

impl CriGen {
    fn line(&mut self, out: &mut Vec<u8>) {
        let r = &mut self.rng;
        let s = self.seq;
        self.seq += 1;
        let (ms, ns) = (s / 1000, r.below(1_000_000_000));
        let _ = write!(
            out,
            "2024-05-01T{:02}:{:02}:{:02}.{ns:09}Z stdout F ",
            12 + (ms / 3600) % 12,
            (ms / 60) % 60,
            ms % 60
        );
        let _ = match r.below(3) {
            0 => writeln!(
                out,
                "[2024-05-01T12:00:00.000Z] \"{} {} HTTP/1.1\" {} - via_upstream - \"-\" 0 {} {} {} \"10.244.{}.{}\" \"Go-http-client/1.1\" \"{:08x}-{:04x}\" \"{}:9080\" \"10.244.1.{}:9080\" seq={s}",
                r.pick(METHODS),
                r.pick(ROUTES),
                r.pick(CODES),
                r.below(20_000),
                r.below(300),
                r.below(300),
                r.below(4),
                r.below(255),
                r.next() as u32,
                r.next() as u16,
                r.pick(SERVICES),
                r.below(255)
            ),
            1 => writeln!(
                out,
                "{} [{}] c.e.{}.Handler - request handled user={} items={} took={}ms seq={s}",
                r.pick(LEVELS),
                ["main", "http-nio-8080-exec-3", "worker-7"][r.below(3) as usize],
                r.pick(SERVICES),
                r.below(5000),
                r.below(10),
                r.below(900)
            ),
            _ => writeln!(
                out,
                "{{\"level\":\"{}\",\"msg\":\"cache lookup\",\"service\":\"{}\",\"key\":\"product:{}\",\"hit\":{},\"seq\":{s}}}",
                r.pick(LEVELS).to_ascii_lowercase(),
                r.pick(SERVICES),
                r.below(100_000),
                r.below(2) == 1
            ),
        };
    }
}

/// Appends `rate` lines a second (0: `n` lines at once) to `path` for `secs`; calls
/// `midway` once half way through. Returns (lines, bytes) written.
fn write_cri(
    cri: &mut CriGen,
    path: &Path,
    rate: f64,
    secs: f64,
    n: u64,
    mut midway: impl FnMut(),
) -> (u64, u64) {
    let open = |p: &Path| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .unwrap()
    };
    let mut f = open(path);
    let mut buf = Vec::with_capacity(1 << 20);
    let (mut lines, mut bytes) = (0u64, 0u64);
    if rate == 0.0 {
        for _ in 0..n {
            cri.line(&mut buf);
            if buf.len() > 1 << 19 {
                f.write_all(&buf).unwrap();
                bytes += buf.len() as u64;
                buf.clear();
            }
        }
        f.write_all(&buf).unwrap();
        bytes += buf.len() as u64;
        return (n, bytes);
    }
    let t0 = Instant::now();
    let mut rotated = false;
    loop {
        let el = t0.elapsed().as_secs_f64();
        if el >= secs {
            return (lines, bytes);
        }
        if !rotated && el >= secs / 2.0 {
            rotated = true;
            midway();
            f = open(path);
        }
        let due = ((el * rate) as u64).saturating_sub(lines).min(50_000);
        if due == 0 {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        buf.clear();
        for _ in 0..due {
            cri.line(&mut buf);
        }
        f.write_all(&buf).unwrap();
        lines += due;
        bytes += buf.len() as u64;
    }
}

/// One entry of the saved log positions.
fn positions(data: &Path) -> Vec<(u64, u64)> {
    let Ok(b) = std::fs::read(data.join("state/log-positions.json")) else {
        return Vec::new();
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&b) else {
        return Vec::new();
    };
    v["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| (p["ino"].as_u64().unwrap(), p["offset"].as_u64().unwrap()))
        .collect()
}

#[test]
fn log_burst_at_10x_the_tailing_rate_loses_nothing() {
    use std::os::unix::fs::MetadataExt;
    let pct = knob("CPU_PCT", 10.0);
    let Some(cg) = CpuCgroup::create("logs", pct) else {
        return;
    };
    let burst_secs = knob("LOG_BURST_SECS", 2.0);
    let dir = TempDir::new("overload-logs");
    let data = dir.path().join("data");
    let pods = dir.path().join("pods");
    let cdir = pods.join("default_reviews-v2-7d4f9c_0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0/reviews");
    std::fs::create_dir_all(&cdir).unwrap();
    let cfg = write_config(
        dir.path(),
        &format!(
            "data_dir: {}\napi:\n  listen: 127.0.0.1:0\napm:\n  enabled: false\ndogstatsd:\n  enabled: false\nlogs:\n  enabled: true\n  container_collect_all: true\n  pod_logs_root: {}\n  scan_interval: 1s\n  read_interval: 200ms\n",
            data.display(),
            pods.display()
        ),
    );
    let agent = Agent::start(&cfg, &[]);
    cg.add(agent.pid());
    let api = agent.api.clone();
    let rss = RssSampler::start(agent.pid());
    let log = cdir.join("0.log");
    let mut cri = CriGen {
        rng: Rng(0x10c5_b025),
        seq: 0,
    };
    let read = |api: &str| value(&metrics(api), "meshmon_logs_lines_total") as u64;

    // 1. Capacity: a backlog, tailed as fast as the quota allows.
    let backlog = knob("LOG_BACKLOG", 150_000.0) as u64;
    let (mut written, mut bytes) = write_cri(&mut cri, &log, 0.0, 0.0, backlog, || {});
    let first = crate::run::wait_for(30, "the tailer to start", || {
        let n = read(&api);
        (n > 0).then(|| (Instant::now(), n))
    });
    let mut last = first;
    while last.1 < written && first.0.elapsed() < Duration::from_secs(8) {
        std::thread::sleep(Duration::from_millis(500));
        last = (Instant::now(), read(&api));
    }
    let capacity = (last.1 - first.1) as f64 / (last.0 - first.0).as_secs_f64();
    assert!(capacity > 100.0, "tailing {capacity} lines/s");
    crate::run::wait_for(120, "the backlog to be read", || {
        (read(&api) == written).then_some(())
    });

    // 2. Steady state: half the capacity.
    rss.phase(1);
    let (l, b) = write_cri(
        &mut cri,
        &log,
        capacity * 0.5,
        knob("LOG_STEADY_SECS", 3.0),
        0,
        || {},
    );
    written += l;
    bytes += b;
    crate::run::wait_for(60, "steady lines to be read", || {
        (read(&api) == written).then_some(())
    });
    let steady_rss = rss.max_of(1);

    // 3. The burst, with the kubelet's rotation (rename, new file) half way; then the
    //    tailer catches up. Positions are checked all along: never past what the file
    //    holds, never backwards, always at a line's end.
    rss.phase(2);
    let rotated = cdir.join("0.log.20240501-120000");
    let first_ino = std::fs::metadata(&log).unwrap().ino();
    let tb = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (stop, data, log, rotated) = (stop.clone(), data.clone(), log.clone(), rotated.clone());
        std::thread::spawn(move || {
            let mut seen: std::collections::HashMap<u64, u64> = Default::default();
            let mut checks = 0u64;
            while !stop.load(Ordering::SeqCst) {
                for (ino, off) in positions(&data) {
                    let file = [&log, &rotated]
                        .into_iter()
                        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.ino() == ino));
                    if let Some(p) = file {
                        let content = std::fs::read(p).unwrap();
                        assert!(off as usize <= content.len(), "position {off} past the end");
                        assert!(
                            off == 0 || content[off as usize - 1] == b'\n',
                            "position {off} not at a line end"
                        );
                    }
                    let prev = seen.insert(ino, off).unwrap_or(0);
                    assert!(off >= prev, "position of {ino} went back {prev} -> {off}");
                    checks += 1;
                }
                std::thread::sleep(Duration::from_millis(300));
            }
            checks
        })
    };
    let (l, b) = write_cri(&mut cri, &log, capacity * 10.0, burst_secs, 0, || {
        std::fs::rename(&log, &rotated).unwrap();
    });
    let burst_rate = l as f64 / tb.elapsed().as_secs_f64();
    written += l;
    bytes += b;
    let read_at_burst_end = read(&api);
    let lag = written - read_at_burst_end;
    let caught_up = crate::run::wait_for(
        (60.0 + burst_secs * 15.0) as u64,
        "the burst to be read",
        || {
            let n = read(&api);
            assert!(n <= written, "read {n} lines of {written}: duplicates");
            (n == written).then(|| tb.elapsed())
        },
    );
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::SeqCst);
    let pos_checks = watcher.join().unwrap();
    let m = metrics(&api);
    let peak_rss = rss.max_from(2);
    eprintln!(
        "LOGS cpu_quota={pct}% capacity={capacity:.0} lines/s; burst {burst_rate:.0} lines/s ({:.1}x) for {burst_secs}s with a rotation; \
         written={written} lines {bytes} bytes; read={} lines {} bytes; records={}; lag at burst end={lag} lines; caught up after {caught_up:?}; \
         rotations={}; position checks={pos_checks}; rss steady={:.1}MiB peak={:.1}MiB ({:.2}x); throttled={:.1}s\nRSS curve (phase:MiB): {}",
        burst_rate / capacity,
        value(&m, "meshmon_logs_lines_total"),
        value(&m, "meshmon_logs_bytes_total"),
        value(&m, "meshmon_logs_records_total"),
        value(&m, "meshmon_logs_files_rotated_total"),
        steady_rss as f64 / 1024.0,
        peak_rss as f64 / 1024.0,
        peak_rss as f64 / steady_rss.max(1) as f64,
        cg.throttled_ns() as f64 / 1e9,
        rss.curve()
    );
    assert!(burst_rate >= 9.0 * capacity, "burst only {burst_rate:.0}/s");
    assert!(lag > 0, "the burst never put the tailer behind");
    assert_eq!(value(&m, "meshmon_logs_lines_total") as u64, written);
    assert_eq!(value(&m, "meshmon_logs_bytes_total") as u64, bytes);
    assert_eq!(value(&m, "meshmon_logs_records_total") as u64, written);
    assert_eq!(value(&m, "meshmon_logs_files_rotated_total"), 1.0);
    assert_eq!(value(&m, "meshmon_logs_lines_cut_total"), 0.0);
    assert!(
        peak_rss <= 2 * steady_rss,
        "RSS {peak_rss} KiB over 2x the steady {steady_rss} KiB"
    );
    assert_eq!(get_json(&api, "/health")["status"], "ok");
    // Stopped: the current file's position is its end; the rotated one was finished.
    drop(rss);
    assert!(agent.stop().success());
    let end = positions(&data);
    let cur = std::fs::metadata(&log).unwrap();
    assert!(
        end.contains(&(cur.ino(), cur.len())),
        "{end:?} lacks ({}, {})",
        cur.ino(),
        cur.len()
    );
    let old_len = std::fs::metadata(&rotated).unwrap().len();
    assert!(
        end.iter().all(|(i, o)| *i != first_ino || *o == old_len),
        "{end:?}: rotated file not finished"
    );
}

// ---------------------------------------------------------------------------------------
// Export down, then slow, then healthy
// ---------------------------------------------------------------------------------------

/// What the export target does with a request.
const DOWN: u8 = 0;
const SLOW: u8 = 1;
const HEALTHY: u8 = 2;

/// An export target on a fixed loopback port: while `DOWN` nothing listens (connection
/// refused); `SLOW` answers after `slow`; `HEALTHY` answers 200 at once. Counts requests
/// answered 200.
struct ExportTarget {
    addr: String,
    mode: Arc<AtomicU8>,
    ok: Arc<AtomicU64>,
}

fn read_request(s: &mut std::net::TcpStream) -> bool {
    use std::io::Read;
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if let Some(h) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..h]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= h + 4 + len {
                return true;
            }
        }
    }
}

fn export_target(slow: Duration) -> ExportTarget {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mode = Arc::new(AtomicU8::new(DOWN));
    let ok = Arc::new(AtomicU64::new(0));
    let (m, o, a) = (mode.clone(), ok.clone(), addr.clone());
    std::thread::spawn(move || {
        let mut listener: Option<TcpListener> = None;
        loop {
            let mode = m.load(Ordering::SeqCst);
            if mode == DOWN {
                listener = None;
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            if listener.is_none() {
                let l = TcpListener::bind(&a).unwrap();
                l.set_nonblocking(true).unwrap();
                listener = Some(l);
            }
            let Some(l) = &listener else { continue };
            match l.accept() {
                Ok((mut s, _)) => {
                    let _ = s.set_nonblocking(false);
                    let o = o.clone();
                    std::thread::spawn(move || {
                        if !read_request(&mut s) {
                            return;
                        }
                        if mode == SLOW {
                            std::thread::sleep(slow);
                        } else {
                            o.fetch_add(1, Ordering::SeqCst);
                        }
                        let _ = s.write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        );
                    });
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    ExportTarget { addr, mode, ok }
}

/// A seeded Istio sidecar exposition of `n` series whose counters advance with each
/// scrape `k`.
fn istio_exposition(n: usize, k: u64) -> String {
    let mut rng = Rng(0xe4_9047);
    let mut out = String::from("# TYPE istio_requests_total counter\n");
    for i in 0..n {
        let _ = std::fmt::Write::write_fmt(
            &mut out,
            format_args!(
                "istio_requests_total{{reporter=\"destination\",source_workload=\"{}-{}\",destination_service=\"{}.default.svc.cluster.local\",response_code=\"{}\",request_protocol=\"http\",connection_security_policy=\"mutual_tls\",series=\"{i}\"}} {}\n",
                rng.pick(SERVICES),
                rng.pick(VERSIONS),
                rng.pick(SERVICES),
                rng.pick(CODES),
                (1 + rng.below(20)) * k
            ),
        );
    }
    out
}

/// One snapshot of an export's counters from `status`.
#[derive(Debug, Default, Clone, Copy)]
struct ExportSnap {
    offered: u64,
    sent: u64,
    failed: u64,
    dropped: u64,
    skipped: u64,
    queued: u64,
}

fn export_snap(status: &serde_json::Value, name: &str) -> ExportSnap {
    let e = &status["components"][format!("exports.{name}")];
    let g = |k: &str| e[k].as_u64().unwrap_or_else(|| panic!("{k} not in {e}"));
    ExportSnap {
        offered: g("offered_metrics"),
        sent: g("sent_metrics"),
        failed: g("failed_metrics"),
        dropped: g("dropped_metrics"),
        skipped: g("skipped_metrics"),
        queued: g("queued_metrics"),
    }
}

#[test]
fn export_down_then_slow_never_stops_collection_and_counts_every_metric() {
    let series = knob("EXPORT_SERIES", 1000.0) as usize;
    let cap = knob("EXPORT_QUEUE", 4000.0) as u64;
    let phases = [
        (HEALTHY, "healthy", knob("WARMUP_SECS", 4.0)),
        (DOWN, "down", knob("DOWN_SECS", 6.0)),
        (SLOW, "slow", knob("SLOW_SECS", 5.0)),
        (HEALTHY, "healthy", knob("HEALTHY_SECS", 5.0)),
    ];
    let target = crate::run::serve(move |k| istio_exposition(series, k));
    let server = export_target(Duration::from_secs(2));
    server.mode.store(HEALTHY, Ordering::SeqCst);
    let dir = TempDir::new("overload-export");
    let queue = format!(
        "\n    queue:\n      max_queued_metrics: {cap}\n      max_batch_metrics: 500\n      flush_interval: 200ms\n      timeout: 1s\n      max_retries: 2\n      min_backoff: 200ms\n      max_backoff: 1s"
    );
    let cfg = write_config(
        dir.path(),
        &format!(
            "data_dir: {data}\napi:\n  listen: 127.0.0.1:0\nchecks:\n  - name: istio\n    instances:\n      - use_openmetrics: true\n        istio_mesh_endpoint: http://{t}/metrics\n        min_collection_interval: 1\napm:\n  enabled: false\ndogstatsd:\n  enabled: false\nexports:\n  remote_write:\n    url: http://{s}/api/v1/write{queue}\n  datadog:\n    enabled: true\n    url: http://{s}{queue}\n",
            data = dir.path().join("data").display(),
            t = target.addr,
            s = server.addr,
        ),
    );
    let agent = Agent::start(&cfg, &[("DD_API_KEY", "0123456789abcdef0123456789abcdef")]);
    let api = agent.api.clone();
    let rss = RssSampler::start(agent.pid());
    let mut report = Vec::new();
    let mut max_queued = 0u64;
    let mut runs_seen: Vec<(Instant, u64)> = Vec::new();
    let mut errors: Vec<(u8, String)> = Vec::new();
    let mut at_phase_start = (ExportSnap::default(), ExportSnap::default());
    for (i, (mode, name, secs)) in phases.iter().enumerate() {
        server.mode.store(*mode, Ordering::SeqCst);
        rss.phase(i as u8);
        let t0 = Instant::now();
        let runs0 = runs_seen.last().map_or(0, |r| r.1);
        while t0.elapsed().as_secs_f64() < *secs {
            std::thread::sleep(Duration::from_millis(500));
            let st = get_json(&api, "/api/v1/status");
            let runs = st["checks"]["items"][0]["runs"].as_u64().unwrap_or(0);
            runs_seen.push((Instant::now(), runs));
            for e in ["remote_write", "datadog"] {
                let s = export_snap(&st, e);
                // The ledger balances in every snapshot.
                assert_eq!(
                    s.offered,
                    s.sent + s.failed + s.dropped + s.skipped + s.queued,
                    "{e} in phase {name}: {s:?}"
                );
                assert!(s.queued <= cap, "{e}: queue {} over {cap}", s.queued);
                max_queued = max_queued.max(s.queued);
                if let Some(err) = st["components"][format!("exports.{e}")]["last_error"].as_str() {
                    errors.push((*mode, err.to_owned()));
                }
            }
            if i == 0 {
                at_phase_start = (
                    export_snap(&st, "remote_write"),
                    export_snap(&st, "datadog"),
                );
            }
        }
        let st = get_json(&api, "/api/v1/status");
        let (rw, dd) = (
            export_snap(&st, "remote_write"),
            export_snap(&st, "datadog"),
        );
        let runs = runs_seen.last().map_or(0, |r| r.1);
        report.push(format!(
            "{name} {secs}s: scrapes +{} rss max {:.1}MiB; remote_write {rw:?}; datadog {dd:?}",
            runs - runs0,
            rss.max_of(i as u8) as f64 / 1024.0
        ));
    }
    // Collection never stopped: the scrape counter moved in every 3 s window.
    for w in runs_seen.windows(7) {
        assert!(
            w[6].1 > w[0].1,
            "no scrape for {:?}: {:?}",
            w[6].0 - w[0].0,
            (w[0].1, w[6].1)
        );
    }
    let st = get_json(&api, "/api/v1/status");
    let (rw, dd) = (
        export_snap(&st, "remote_write"),
        export_snap(&st, "datadog"),
    );
    let steady = rss.max_of(0);
    let peak = rss.max_from(1);
    // What the bound can hold: both queues full, at most 1 KiB a metric (a series name,
    // ~8 tags and a value are a few hundred bytes).
    let bound_kib = 2 * cap;
    eprintln!(
        "EXPORT series={series} per scrape, queue bound={cap} metrics per export, down/slow/healthy; largest queue={max_queued}; \
         rss steady={:.1}MiB peak={:.1}MiB growth={:.1}MiB vs bound's worth {:.1}MiB; requests ok={}\n  {}\nRSS curve (phase:MiB): {}",
        steady as f64 / 1024.0,
        peak as f64 / 1024.0,
        peak.saturating_sub(steady) as f64 / 1024.0,
        bound_kib as f64 / 1024.0,
        server.ok.load(Ordering::SeqCst),
        report.join("\n  "),
        rss.curve()
    );
    for (e, s, s0) in [
        ("remote_write", rw, at_phase_start.0),
        ("datadog", dd, at_phase_start.1),
    ] {
        assert!(
            s0.sent > 0,
            "{e}: nothing sent while healthy at first: {s0:?}"
        );
        assert!(
            s.dropped + s.failed > 0,
            "{e}: an outage without a drop: {s:?}"
        );
        assert!(
            s.sent > s0.sent,
            "{e}: nothing sent after the outage: {s:?}"
        );
    }
    assert!(
        errors
            .iter()
            .any(|(m, e)| *m == DOWN && e.contains("onnection refused")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|(m, e)| *m == SLOW && e.contains("timed out")),
        "{errors:?}"
    );
    assert!(
        peak.saturating_sub(steady) <= bound_kib,
        "RSS grew {} KiB, over the {bound_kib} KiB the queues hold",
        peak.saturating_sub(steady)
    );
    assert_eq!(get_json(&api, "/health")["status"], "ok");
    drop(rss);
    assert!(agent.stop().success());
}
