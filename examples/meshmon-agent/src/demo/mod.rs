//! `meshmon-agent demo`: one process runs the real agent (the library's
//! [`meshmon_agent::run::start`]) and a simulated Istio Bookinfo mesh on loopback that it
//! watches, so a newcomer sees what seed 000 promises — a service map, RED stats, traces,
//! log patterns, and (when the agent has monitors) an alert that fires and recovers.
//!
//! - Pods: `istio-ingressgateway`, `productpage-v1`, `details-v1`, `reviews-v1/v2/v3`,
//!   `ratings-v1` (and `istiod`, logs only), each on its own loopback address (Linux routes
//!   all of 127.0.0.0/8 to `lo`) with its sidecar's Istio metrics on one shared port
//!   ([`mesh`]), found by the agent through annotated Pod manifests ([`manifests`]).
//! - Traffic: a seeded generator ([`traffic`]) at `--rps`; Envoy spans over the Datadog
//!   v0.4 protocol to the agent's intake, each pod's proxy sending its own payloads as
//!   Envoy's tracer does (`pilot.traceSampling` = `--trace-sampling`); Envoy access logs
//!   in Istio's default format and application and istiod logs as CRI files under
//!   `<dir>/pods/<ns>_<pod>_<uid>/<container>/0.log`, which the agent tails.
//! - Fault: from 1/3 of `--duration` to 2/3, reviews-v3 fails (503 `UF`, or 500 after a
//!   long wait with an application error in its log) and slows down; `--no-fault` keeps
//!   the mesh healthy.
//! - Output: the status page URL at start, a live summary every `--every`, and a final
//!   summary with the figures, also as one `DEMO-FIGURES {json}` line.

mod manifests;
mod mesh;
mod net;
mod rng;
mod summary;
mod traffic;

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use meshmon_agent::config::{AgentConfig, Dur};
use meshmon_agent::run::{self, SystemClock};
use meshmon_core::Timestamp;
use meshmon_trace::OwnedSpan;

use mesh::{MeshStats, Role, Topology};
use summary::{Figures, Snapshot, Watch};
use traffic::{Emit, Sim};

/// `meshmon-agent demo`.
#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// How long to run (`90s`, `3m`); the fault covers the middle third.
    #[arg(long, default_value = "3m", value_parser = parse_dur)]
    duration: Dur,
    /// Seed of the traffic generator (same seed, same requests).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The agent's API and status page address.
    #[arg(long, default_value = "127.0.0.1:5002")]
    listen: String,
    /// Requests per second entering the mesh at the ingress gateway.
    #[arg(long, default_value_t = 20.0)]
    rps: f64,
    /// Istio's `pilot.traceSampling`: the percentage of requests traced.
    #[arg(long, default_value_t = 100.0)]
    trace_sampling: f64,
    /// Keep the mesh healthy (no reviews-v3 fault).
    #[arg(long)]
    no_fault: bool,
    /// How often the live summary is printed.
    #[arg(long, default_value = "5s", value_parser = parse_dur)]
    every: Dur,
    /// Keep the demo's folder (manifests, pod logs, agent data) instead of removing it.
    #[arg(long)]
    keep: bool,
}

fn parse_dur(s: &str) -> Result<Dur, String> {
    Dur::parse(s)
}

/// RFC 3339 UTC with milliseconds (Envoy's `%START_TIME%`).
pub fn rfc3339_ms(t: Timestamp) -> String {
    run::fmt_time(t)
}

/// RFC 3339 UTC with nanoseconds (the CRI log timestamp).
fn rfc3339_ns(ns: i64) -> String {
    let ms = run::fmt_time(Timestamp::from_nanos(ns));
    // `…:SS.mmmZ` → `…:SS.nnnnnnnnnZ`
    format!(
        "{}{:09}Z",
        &ms[..ms.len() - 4],
        ns.rem_euclid(1_000_000_000)
    )
}

fn now_ns() -> i64 {
    SystemClock.now_ns()
}

trait NowNs {
    fn now_ns(&self) -> i64;
}

impl NowNs for SystemClock {
    fn now_ns(&self) -> i64 {
        use meshmon_agent::run::Clock as _;
        self.now().as_nanos()
    }
}

/// A temporary folder, removed on drop unless kept.
struct DemoDir {
    path: PathBuf,
    keep: bool,
}

impl Drop for DemoDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// The agent's configuration for the demo, as YAML (kept in `<dir>/agent.yaml`): the
/// manifests, pod logs and data in `dir`, the trace intake on a free port, DogStatsD off,
/// short intervals so a short run shows everything.
fn agent_yaml(dir: &Path, listen: &str) -> String {
    let q = |p: &Path| serde_json::to_string(&p.display().to_string()).unwrap_or_default();
    format!(
        r#"# meshmon-agent demo: the agent's configuration (written by the demo)
hostname: demo-node
env: demo
data_dir: {data}
api:
  listen: {listen}
autodiscovery:
  manifests: [{manifests}]
  poll_interval: 2s
scrape:
  default_interval: 5s
apm:
  receiver_port: 0
  zipkin_port: null
  env: demo
  stats_flush_interval: {flush}
  trace_timeout: 2s
logs:
  enabled: true
  container_collect_all: true
  pod_logs_root: {pods}
  scan_interval: 1s
  read_interval: 500ms
dogstatsd:
  enabled: false
# The Watchdog judges every service's request rate, error rate and p95 once per stats
# flush; a short warm-up so a few minutes of traffic are enough to learn what is normal.
watchdog:
  interval: {flush}
  warmup_points: {wd_warmup}
  recovery_points: {wd_recovery}
monitors:
  - name: reviews errors are anomalous
    type: anomaly
    metric: trace.envoy.proxy.errors
    tags: [service:reviews.default]
    aggregation: sum
    interval: {flush}
    window: {window}
    algorithm: basic
    direction: above
    warmup_points: {an_warmup}
    trigger_window: {trigger}
    recovery_window: {trigger}
    critical: 0.5
  - name: reviews error rate
    type: trace_error_rate
    service: reviews.default
    interval: {flush}
    window: {window}
    critical: 0.1
    critical_recovery: 0.02
  - name: reviews error logs
    type: log
    service: reviews.default
    status: error
    interval: {flush}
    window: {window}
    critical: 10
    critical_recovery: 2
"#,
        data = q(&dir.join("data")),
        listen = serde_json::to_string(listen).unwrap_or_default(),
        manifests = q(&dir.join("manifests")),
        pods = q(&dir.join("pods")),
        flush = FLUSH,
        wd_warmup = 8,
        wd_recovery = 4,
        an_warmup = 6,
        trigger = "10s",
        // APM points are stamped with their stats bucket's start, a few seconds back.
        window = "10s",
    )
}

/// APM stats flush and monitor evaluation interval of the demo.
const FLUSH: &str = "2s";

/// The demo's configuration, parsed and validated as the agent's own files are.
fn agent_config(dir: &Path, listen: &str) -> anyhow::Result<AgentConfig> {
    let text = agent_yaml(dir, listen);
    let cfg = meshmon_agent::config::parse_yaml(&text, "<demo>")
        .context("the demo's agent configuration")?;
    cfg.validate().context("the demo's agent configuration")?;
    Ok(cfg)
}

/// Appends CRI lines to each container's `0.log`.
struct PodLogs {
    root: PathBuf,
    files: HashMap<(usize, bool), std::fs::File>,
    lines: u64,
}

impl PodLogs {
    fn write(
        &mut self,
        topo: &Topology,
        pod: usize,
        proxy: bool,
        stderr: bool,
        ts: i64,
        text: &str,
    ) -> anyhow::Result<()> {
        let f = match self.files.entry((pod, proxy)) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let p = &topo.pods[pod];
                let container = if proxy {
                    "istio-proxy"
                } else {
                    p.app_container.unwrap_or("app")
                };
                let d = self
                    .root
                    .join(format!("{}_{}_{}", p.namespace, p.name, p.uid))
                    .join(container);
                std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
                let path = d.join("0.log");
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .with_context(|| format!("opening {}", path.display()))?;
                v.insert(f)
            }
        };
        let stream = if stderr { "stderr" } else { "stdout" };
        writeln!(f, "{} {stream} F {text}", rfc3339_ns(ts)).context("writing a pod log")?;
        self.lines += 1;
        Ok(())
    }
}

/// istiod's periodic log lines (Istio's `discovery` container, `ads` scope).
fn istiod_lines(topo: &Topology, n: u64, ts: i64) -> Vec<String> {
    let t = rfc3339_ns(ts);
    let t = format!("{}Z", &t[..t.len() - 4]); // microseconds, as istiod prints
    let pod = &topo.pods[(n as usize) % 7];
    vec![
        format!(
            "{t}\tinfo\tads\tPush debounce stable[{n}] 1 for config ServiceEntry/{}/{}: 100.{:03}ms since last change, 100.{:03}ms since last push, full=true",
            pod.namespace,
            pod.host(),
            n * 37 % 1000,
            n * 53 % 1000
        ),
        format!(
            "{t}\tinfo\tads\tXDS: Pushing Services:{} ConnectedEndpoints:7 Version:{n}",
            9
        ),
        format!(
            "{t}\tinfo\tads\tCDS: PUSH request for node:{}.{} resources:{} size:{}.{}kB",
            pod.name,
            pod.namespace,
            20 + n % 7,
            24 + n % 5,
            n % 10
        ),
    ]
}

/// One pod proxy's span buffer: chunks by trace id, as Envoy's tracer batches them.
#[derive(Default)]
struct SpanBuffers {
    by_pod: BTreeMap<usize, BTreeMap<u64, Vec<OwnedSpan>>>,
    generated: u64,
    sent: u64,
    payloads: u64,
    failed: u64,
    last_error: Option<String>,
}

impl SpanBuffers {
    async fn flush(&mut self, intake: std::net::SocketAddr) {
        let pods = std::mem::take(&mut self.by_pod);
        for (_pod, chunks) in pods {
            let traces: Vec<Vec<OwnedSpan>> = chunks.into_values().collect();
            let n: usize = traces.iter().map(Vec::len).sum();
            let body = meshmon_trace::encode::encode_v04(&traces);
            let headers = [
                ("Content-Type", "application/msgpack".to_owned()),
                ("Datadog-Meta-Lang", "cpp".to_owned()),
                ("Datadog-Meta-Tracer-Version", "v1.3.7".to_owned()),
                ("X-Datadog-Trace-Count", traces.len().to_string()),
            ];
            match net::http(
                intake,
                "POST",
                "/v0.4/traces",
                &headers,
                &body,
                Duration::from_secs(5),
            )
            .await
            {
                Ok((200..=299, _)) => {
                    self.sent += n as u64;
                    self.payloads += 1;
                }
                Ok((code, b)) => {
                    self.failed += 1;
                    self.last_error = Some(format!("{code} {}", String::from_utf8_lossy(&b)));
                }
                Err(e) => {
                    self.failed += 1;
                    self.last_error = Some(format!("{e:#}"));
                }
            }
        }
    }
}

fn get_json(v: &(u16, Vec<u8>)) -> Option<serde_json::Value> {
    (v.0 == 200)
        .then(|| serde_json::from_slice(&v.1).ok())
        .flatten()
}

/// Runs the demo.
pub fn run(a: DemoArgs) -> anyhow::Result<ExitCode> {
    if !(a.rps > 0.0 && a.rps <= 2000.0) {
        anyhow::bail!("--rps must be in (0, 2000], got {}", a.rps);
    }
    if !(0.0..=100.0).contains(&a.trace_sampling) {
        anyhow::bail!(
            "--trace-sampling is a percentage in [0, 100], got {}",
            a.trace_sampling
        );
    }
    if a.duration.0 < Duration::from_secs(10) {
        anyhow::bail!("--duration must be at least 10s, got {}", a.duration);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(demo(a))
}

async fn demo(a: DemoArgs) -> anyhow::Result<ExitCode> {
    let dir = DemoDir {
        path: std::env::temp_dir().join(format!("meshmon-demo-{}", std::process::id())),
        keep: a.keep,
    };
    let _ = std::fs::remove_dir_all(&dir.path);
    for d in ["manifests", "pods", "data"] {
        std::fs::create_dir_all(dir.path.join(d))
            .with_context(|| format!("creating {}", dir.path.join(d).display()))?;
    }
    // The pods: their addresses and one shared metrics port.
    let mut rng = rng::Rng::new(a.seed);
    let probe = Topology::bookinfo(&mut rng.clone(), [127, 0, 10], 11, 0);
    let ips: Vec<_> = probe
        .pods
        .iter()
        .filter(|p| p.sidecar)
        .map(|p| p.ip)
        .collect();
    let (port, listeners) = net::bind_same_port(&ips).await?;
    let topo = Arc::new(Topology::bookinfo(&mut rng, [127, 0, 10], 11, port));
    let manifest = dir.path.join("manifests").join("bookinfo.yaml");
    std::fs::write(&manifest, manifests::pods_yaml(&topo))
        .with_context(|| format!("writing {}", manifest.display()))?;

    // The agent.
    let cfg = agent_config(&dir.path, &a.listen)?;
    let cfg_path = dir.path.join("agent.yaml");
    std::fs::write(&cfg_path, agent_yaml(&dir.path, &a.listen))
        .with_context(|| format!("writing {}", cfg_path.display()))?;
    let agent = run::start(cfg, Arc::new(SystemClock))
        .await
        .with_context(|| {
            format!(
                "starting the agent (is {} in use? try --listen 127.0.0.1:0)",
                a.listen
            )
        })?;
    let api = agent.api_addr;
    let Some(intake) = agent.trace_addr else {
        anyhow::bail!("the agent started without its trace intake");
    };
    println!("meshmon demo: a simulated Istio Bookinfo mesh and the meshmon agent watching it");
    println!("  status page  http://{api}/");
    println!(
        "  API          http://{api}/api/v1/status  (services, servicemap, traces, patterns, checks)"
    );
    println!("  trace intake http://{intake}/v0.4/traces   metrics port {port} on 127.0.10.11-17");
    println!("  pod logs     {}", dir.path.join("pods").display());
    println!("  agent config {}", cfg_path.display());
    let total = a.duration.0.as_secs_f64();
    let fault = (!a.no_fault).then_some((total / 3.0, 2.0 * total / 3.0));
    match fault {
        Some((s, e)) => println!(
            "  running {total:.0} s at {} req/s, seed {}; reviews-v3 fails from t+{s:.0}s to t+{e:.0}s",
            a.rps, a.seed
        ),
        None => println!(
            "  running {total:.0} s at {} req/s, seed {}; no fault",
            a.rps, a.seed
        ),
    }
    let _ = std::io::stdout().flush();

    // Sidecar metrics endpoints.
    let started = Instant::now();
    let stats = Arc::new(Mutex::new(MeshStats::new(topo.pods.len())));
    let scrapes = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut servers = Vec::new();
    let sidecars: Vec<usize> = topo
        .pods
        .iter()
        .enumerate()
        .filter(|(_, p)| p.sidecar)
        .map(|(i, _)| i)
        .collect();
    for (l, pod) in listeners.into_iter().zip(sidecars) {
        servers.push(tokio::spawn(net::serve_metrics(
            l,
            pod,
            topo.clone(),
            stats.clone(),
            started,
            scrapes.clone(),
            stop_rx.clone(),
        )));
    }

    // Wait for discovery to read the manifests (it publishes the pods' `logs` configs
    // before scheduling their checks), so the tailer tags each file as annotated.
    let t_wait = Instant::now();
    while t_wait.elapsed() < Duration::from_secs(15) {
        if agent
            .store
            .read()
            .map(|s| !s.checks().is_empty())
            .unwrap_or(false)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut sim = Sim::new((*topo).clone(), a.seed.wrapping_add(1), a.trace_sampling);
    let mut arrivals = rng::Rng::new(a.seed.wrapping_add(2));
    let mut logs = PodLogs {
        root: dir.path.join("pods"),
        files: HashMap::new(),
        lines: 0,
    };
    let mut spans = SpanBuffers::default();
    let mut watch = Watch::default();
    let mut pending: Vec<(i64, Emit)> = Vec::new();
    // Ctrl-C (or SIGTERM) ends the run early, with the final summary.
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("installing the SIGINT handler")?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let mut interrupted = false;
    let t0 = Instant::now();
    let t0_ns = now_ns();
    let to_demo_s = move |epoch_s: f64| epoch_s - t0_ns as f64 / 1e9;
    let tick = Duration::from_millis(100);
    let mut next_flush = Duration::from_secs(1);
    let mut next_summary = a.every.0;
    let mut next_istiod = Duration::ZERO;
    let mut next_watch = Duration::from_secs(1);
    let mut istiod_n = 0u64;
    let mut requests_window = (0u64, 0.0f64);
    let mut write_error: Option<String> = None;
    // Start-up lines of the applications.
    let boot = now_ns();
    for (i, p) in topo.pods.iter().enumerate() {
        let line = match p.app_source {
            "python" => "INFO:root:start at port 9080",
            "ruby" => "[2026-01-01 00:00:00] INFO  WEBrick::HTTPServer#start: pid=1 port=9080",
            "java" => {
                "[AUDIT   ] CWWKF0011I: The defaultServer server is ready to run a smarter planet."
            }
            "nodejs" => "Server listening on: http://0.0.0.0:9080",
            _ => continue,
        };
        if p.app_container.is_some() && p.sidecar {
            logs.write(&topo, i, false, false, boot, line)?;
        }
    }
    loop {
        let el = t0.elapsed();
        if el >= a.duration.0 {
            break;
        }
        let el_s = el.as_secs_f64();
        let in_fault = fault.is_some_and(|(s, e)| el_s >= s && el_s < e);
        // Poisson arrivals over this tick.
        let now = now_ns();
        let lambda = a.rps * tick.as_secs_f64();
        let mut k = 0;
        let limit = (-lambda).exp();
        let mut prod = arrivals.f64();
        while prod > limit && k < 10_000 {
            k += 1;
            prod *= arrivals.f64();
        }
        for _ in 0..k {
            let at = now + (arrivals.f64() * tick.as_nanos() as f64) as i64;
            sim.request(at, in_fault, &mut pending);
        }
        requests_window.0 += k;
        // What is due now.
        let (mut due, rest): (Vec<_>, Vec<_>) = pending.into_iter().partition(|(t, _)| *t <= now);
        pending = rest;
        due.sort_by_key(|(t, _)| *t);
        {
            let mut st = stats
                .lock()
                .map_err(|_| anyhow::anyhow!("mesh stats poisoned"))?;
            for (t, e) in due {
                match e {
                    Emit::Span { pod, span } => {
                        spans.generated += 1;
                        spans
                            .by_pod
                            .entry(pod)
                            .or_default()
                            .entry(span.trace_id)
                            .or_default()
                            .push(*span);
                    }
                    Emit::Line {
                        pod,
                        proxy,
                        stderr,
                        text,
                    } => {
                        if let Err(err) = logs.write(&topo, pod, proxy, stderr, t, &text) {
                            write_error.get_or_insert(format!("{err:#}"));
                        }
                    }
                    Emit::Hop(h) => st.record(&topo, &h),
                    Emit::Tcp { pod, sent, recv } => {
                        st.record_tcp(pod, "mongodb.default.svc.cluster.local", false, sent, recv);
                    }
                }
            }
        }
        if el >= next_istiod {
            next_istiod += Duration::from_secs(10);
            if istiod_n == 0 {
                let mut st = stats
                    .lock()
                    .map_err(|_| anyhow::anyhow!("mesh stats poisoned"))?;
                st.record_tcp(
                    Role::Ratings as usize,
                    "mongodb.default.svc.cluster.local",
                    true,
                    0,
                    0,
                );
            }
            istiod_n += 1;
            for l in istiod_lines(&topo, istiod_n, now) {
                logs.write(&topo, Role::Istiod as usize, false, false, now, &l)?;
            }
        }
        if el >= next_flush {
            next_flush += Duration::from_secs(1);
            spans.flush(intake).await;
        }
        if el >= next_watch {
            next_watch += Duration::from_secs(1);
            let pats = agent
                .store
                .read()
                .map(|s| s.patterns(None))
                .unwrap_or_default();
            watch.patterns(
                &pats,
                el_s,
                fault.filter(|(s, _)| el_s >= *s).map(|(s, _)| s),
            );
            poll_monitors(api, &mut watch, el_s, &to_demo_s).await;
        }
        if el >= next_summary {
            next_summary += a.every.0;
            let snap = agent
                .store
                .read()
                .map(|s| Snapshot::of(&s))
                .unwrap_or_default();
            let phase = match fault {
                Some((s, _)) if el_s < s => "warm-up",
                Some((_, e)) if el_s < e => "FAULT: reviews-v3 failing",
                Some(_) => "healed",
                None => "healthy (no fault)",
            };
            let rps = requests_window.0 as f64 / (el_s - requests_window.1).max(1e-9);
            requests_window = (0, el_s);
            print!("{}", summary::live(el_s, phase, &snap, &watch, rps));
            let _ = std::io::stdout().flush();
        }
        let next = t0 + el + tick;
        tokio::select! {
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(next)) => {}
            _ = int.recv() => { interrupted = true; break; }
            _ = term.recv() => { interrupted = true; break; }
        }
    }
    if interrupted {
        println!("\ninterrupted: stopping the mesh and the agent");
    }
    spans.flush(intake).await;
    // Let the last stats flush and the tailer catch up before the figures are read.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let el_s = t0.elapsed().as_secs_f64();
    poll_monitors(api, &mut watch, el_s, &to_demo_s).await;
    let snap = agent
        .store
        .read()
        .map(|s| Snapshot::of(&s))
        .unwrap_or_default();
    let mut services: Vec<String> = snap.services.iter().map(|s| s.service.clone()).collect();
    services.sort();
    let figures = Figures {
        seed: a.seed,
        duration_s: el_s,
        requests: sim.requests,
        requests_sampled: sim.sampled,
        trace_sampling: a.trace_sampling,
        spans_generated: spans.generated,
        spans_sent: spans.sent,
        payloads_sent: spans.payloads,
        payloads_failed: spans.failed,
        spans_received: snap.spans_received,
        lines_written: logs.lines,
        lines_read: snap.lines_read,
        scrapes: scrapes.load(Ordering::Relaxed),
        targets: snap.targets,
        targets_up: snap.targets_up,
        services,
        edges: snap
            .edges
            .iter()
            .map(|e| format!("{} -> {}", e.from, e.to))
            .collect(),
        reviews_versions: snap.reviews_versions.clone(),
        fault,
        patterns: snap.patterns.len(),
        error_pattern: watch.error_pattern.clone(),
        alerts: watch
            .monitors
            .values()
            .filter(|m| m.alert_at_s.is_some())
            .cloned()
            .collect(),
        monitor_api: watch.api_has_monitors == Some(true),
        dir: dir.path.display().to_string(),
    };
    let _ = stop_tx.send(true);
    for s in servers {
        let _ = s.await;
    }
    let failed = agent.shutdown().await;
    print!("{}", summary::final_text(&figures));
    if let Some(e) = &spans.last_error {
        println!("last trace intake error: {e}");
    }
    if let Some(e) = &write_error {
        println!("pod log write error: {e}");
    }
    println!(
        "DEMO-FIGURES {}",
        serde_json::to_string(&figures).unwrap_or_default()
    );
    let _ = std::io::stdout().flush();
    if !failed.is_empty() {
        eprintln!(
            "meshmon-agent demo: agent tasks failed: {}",
            failed.join(", ")
        );
        return Ok(ExitCode::FAILURE);
    }
    if interrupted {
        return Ok(ExitCode::from(130));
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads `/api/v1/monitors` and `/api/v1/watchdog` into `watch` (a 404 means this agent
/// has no monitors).
async fn poll_monitors(
    api: std::net::SocketAddr,
    watch: &mut Watch,
    el: f64,
    to_demo_s: &dyn Fn(f64) -> f64,
) {
    for (path, origin) in [
        ("/api/v1/monitors", "monitors"),
        ("/api/v1/watchdog", "watchdog"),
    ] {
        match net::http(api, "GET", path, &[], b"", Duration::from_secs(3)).await {
            Ok(r) if r.0 == 404 => {
                if origin == "monitors" {
                    watch.api_has_monitors.get_or_insert(false);
                }
            }
            Ok(r) => {
                if let Some(v) = get_json(&r) {
                    if origin == "monitors" {
                        watch.api_has_monitors = Some(true);
                    }
                    watch.monitors(origin, &v, el, to_demo_s);
                }
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cri_timestamps_have_nanoseconds() {
        let s = rfc3339_ns(1_709_210_096_789_123_456);
        assert_eq!(s, "2024-02-29T12:34:56.789123456Z");
        let l = format!("{s} stdout F hi");
        assert!(meshmon_logs::format::parse_cri(l.as_bytes()).is_ok());
    }

    #[test]
    fn the_demo_config_is_valid() {
        let d = std::env::temp_dir().join("meshmon-demo-cfg-test");
        let c = agent_config(&d, "127.0.0.1:0").unwrap();
        assert!(c.logs.enabled && !c.dogstatsd.enabled);
        assert_eq!(c.apm.receiver_port, 0);
        assert_eq!(c.apm.zipkin_port, None);
        assert_eq!(c.logs.pod_logs_root, d.join("pods"));
        assert_eq!(c.autodiscovery.manifests, [d.join("manifests")]);
        assert_eq!(c.apm.stats_flush_interval, Dur::secs(2));
        assert_eq!(c.monitors.len(), 3);
    }
}
