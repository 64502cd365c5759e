//! The scrape loop: one schedule per check instance (its `min_collection_interval`,
//! default `scrape.default_interval`, with jitter), at most `scrape.max_concurrency`
//! scrapes in flight, each bounded by `scrape.timeout` and `scrape.max_body_bytes`.
//! Monotonic counters become deltas ([`meshmon_prom::MonotonicDeltas`], state persisted
//! per instance); each target's health is kept in the store. A failing target never
//! stalls another: every instance is its own task.

use std::collections::HashMap;
use std::sync::Arc;

use meshmon_core::{Metric, Tags};
use meshmon_prom::MonotonicDeltas;
use meshmon_prom::scrape::{ScrapeOptions, Scraper};
use tokio::sync::{Semaphore, mpsc, watch};

use super::Ctx;
use super::discovery::Scheduled;
use crate::check::{self, ScrapeJob};
use crate::store::CheckHealth;
use crate::store::state::{self, Loaded};

/// Telemetry names.
const SCRAPES: &str = "meshmon_check_runs_total";

struct Running {
    stop: watch::Sender<bool>,
    handle: tokio::task::JoinHandle<()>,
    ids: Vec<String>,
}

/// Runs the scheduler until shutdown.
pub async fn run(
    ctx: Ctx,
    mut rx: mpsc::Receiver<Vec<Scheduled>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let sem = Arc::new(Semaphore::new(ctx.cfg.scrape.max_concurrency));
    let shared = match options(ctx.cfg.scrape.timeout.0, ctx.cfg.scrape.max_body_bytes) {
        Ok(o) => Scraper::new(o),
        Err(e) => {
            ctx.log("ERROR", "scrape", &format!("scrape options: {e}"));
            return;
        }
    };
    let mut running: HashMap<u64, Running> = HashMap::new();
    loop {
        let set = tokio::select! {
            _ = super::stopped(&mut shutdown) => break,
            s = rx.recv() => match s { Some(s) => s, None => break },
        };
        let wanted: HashMap<u64, Scheduled> = set.into_iter().map(|s| (s.digest, s)).collect();
        // Unschedule what is gone.
        let gone: Vec<u64> = running
            .keys()
            .filter(|d| !wanted.contains_key(d))
            .copied()
            .collect();
        for d in gone {
            if let Some(r) = running.remove(&d) {
                let _ = r.stop.send(true);
                let _ = r.handle.await;
                if let Ok(mut st) = ctx.store.write() {
                    for id in &r.ids {
                        st.remove_check(id);
                        st.telemetry
                            .remove_matching(SCRAPES, &format!("id=\"{id}\""));
                    }
                }
                ctx.log("INFO", "scrape", &format!("unscheduled config {d:016x}"));
            }
        }
        // Schedule what is new.
        for (d, s) in wanted {
            if running.contains_key(&d) {
                continue;
            }
            let jobs = match check::jobs_for(&s.config) {
                Ok(j) => j,
                Err(e) => {
                    ctx.log(
                        "ERROR",
                        "scrape",
                        &format!("{} ({}): {e}", s.config.id, s.config.check),
                    );
                    if let Ok(mut st) = ctx.store.write() {
                        st.set_check(CheckHealth {
                            id: s.config.id.clone(),
                            check: s.config.check.clone(),
                            provider: s.provider.into(),
                            status: "down",
                            last_error: Some(e.to_string()),
                            ..CheckHealth::default()
                        });
                    }
                    continue;
                }
            };
            for k in &jobs.legacy_keys {
                ctx.log(
                    "WARN",
                    "scrape",
                    &format!("{}: {k} is a legacy (Istio <= 1.4) key, scraped with the OpenMetrics v2 mapping", s.config.id),
                );
            }
            if !jobs.unknown_keys.is_empty() {
                ctx.log(
                    "WARN",
                    "scrape",
                    &format!(
                        "{}: instance keys not used by meshmon's {} check: {}",
                        s.config.id,
                        s.config.check,
                        jobs.unknown_keys.join(", ")
                    ),
                );
            }
            let (stop, stop_rx) = watch::channel(false);
            let mut ids = Vec::new();
            let mut handles = Vec::new();
            for (n, job) in jobs.jobs.into_iter().enumerate() {
                let id = if n == 0 {
                    s.config.id.clone()
                } else {
                    format!("{}#{}", s.config.id, job.source_key)
                };
                ids.push(id.clone());
                let health = CheckHealth {
                    id: id.clone(),
                    check: s.config.check.clone(),
                    url: job.endpoint.clone(),
                    namespace: job.mapping.namespace.clone(),
                    provider: s.provider.into(),
                    status: "pending",
                    unknown_keys: jobs.unknown_keys.clone(),
                    interval_s: interval_of(&ctx, &s.config.instance, &job).as_secs_f64(),
                    ..CheckHealth::default()
                };
                if let Ok(mut st) = ctx.store.write() {
                    st.set_check(health.clone());
                }
                // One HTTP client (one connection pool) for every endpoint on the
                // default timeout; an instance with its own `timeout` gets its own.
                let scraper = if s.config.instance.get("timeout").is_some() {
                    match options(job.timeout, ctx.cfg.scrape.max_body_bytes) {
                        Ok(o) => Scraper::new(o),
                        Err(e) => {
                            ctx.log("ERROR", "scrape", &format!("{id}: {e}"));
                            continue;
                        }
                    }
                } else {
                    shared.clone()
                };
                let every = interval_of(&ctx, &s.config.instance, &job);
                let inst = Instance {
                    scraper,
                    interval: every,
                    job,
                    health,
                    digest: d,
                };
                handles.push(tokio::spawn(instance_loop(
                    ctx.clone(),
                    inst,
                    sem.clone(),
                    stop_rx.clone(),
                )));
            }
            ctx.log(
                "INFO",
                "scrape",
                &format!(
                    "scheduled {} ({}), {} endpoint(s)",
                    s.config.id,
                    s.config.check,
                    ids.len()
                ),
            );
            let handle = tokio::spawn(async move {
                for h in handles {
                    let _ = h.await;
                }
            });
            running.insert(d, Running { stop, handle, ids });
        }
    }
    for (_, r) in running {
        let _ = r.stop.send(true);
        let _ = r.handle.await;
    }
}

/// Pseudo-random share in [0, 1) from a seed (splitmix64): jitter without a RNG crate.
fn unit(seed: u64) -> f64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// Scrape options with this timeout and body limit.
pub fn options(timeout: std::time::Duration, max_body: usize) -> anyhow::Result<ScrapeOptions> {
    Ok(ScrapeOptions::default()
        .with_timeout(timeout)?
        .with_max_body_bytes(max_body)?)
}

/// The instance's `min_collection_interval`, else `scrape.default_interval`.
fn interval_of(ctx: &Ctx, instance: &serde_json::Value, job: &ScrapeJob) -> std::time::Duration {
    if instance.get("min_collection_interval").is_some() {
        job.interval
    } else {
        ctx.cfg.scrape.default_interval.0
    }
}

fn state_name(digest: u64, namespace: &str) -> String {
    format!(
        "deltas-{digest:016x}-{}.json",
        namespace.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
    )
}

/// One scheduled endpoint.
struct Instance {
    scraper: Scraper,
    interval: std::time::Duration,
    job: ScrapeJob,
    health: CheckHealth,
    /// The config's digest (names its state file, seeds its jitter).
    digest: u64,
}

async fn instance_loop(
    ctx: Ctx,
    inst: Instance,
    sem: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
    let Instance {
        scraper,
        interval,
        job,
        mut health,
        digest,
    } = inst;
    let mut mapper = match crate::check::JobMapper::new(&job) {
        Ok(m) => m,
        Err(e) => {
            health.status = "down";
            health.last_error = Some(format!("mapping config: {e}"));
            if let Ok(mut st) = ctx.store.write() {
                st.set_check(health);
            }
            return;
        }
    };
    let state_path = ctx.state_path(&state_name(digest, job.source_key));
    let mut deltas = MonotonicDeltas::new({
        let mut l = meshmon_prom::mapping::DeltaLimits::default();
        l.max_series = ctx.cfg.scrape.max_delta_series;
        l
    });
    match state::load(&state_path, "deltas", ctx.clock.now().as_secs()) {
        Loaded::Ok(snap) => deltas.restore(snap),
        Loaded::Absent => {}
        Loaded::SetAside { reason, moved_to } => ctx.log(
            "WARN",
            "scrape",
            &format!(
                "{}: counter state {reason}; moved to {}",
                health.id,
                moved_to.display()
            ),
        ),
    }
    let extra: Tags = ctx.global_tags.clone();
    // First run: a jittered share of the interval, so targets spread out.
    let mut wait = interval.mul_f64(unit(digest ^ ctx.clock.now().as_nanos() as u64));
    let mut n: u64 = 0;
    loop {
        tokio::select! {
            _ = super::stopped(&mut stop) => break,
            _ = tokio::time::sleep(wait) => {}
        }
        let Ok(_permit) = sem.acquire().await else {
            break;
        };
        let started = ctx.clock.now();
        let result = scraper.scrape(&job.endpoint).await;
        let now = ctx.clock.now();
        health.runs += 1;
        health.last_run = Some(now.as_secs_f64());
        match result {
            Ok(resp) => {
                let mut out: Vec<Metric> = Vec::new();
                let mapped = mapper.map(&resp.body, resp.format, started, &mut |m| out.push(m));
                health.duration_ms = resp.duration.as_secs_f64() * 1e3;
                health.bytes = resp.wire_bytes;
                match mapped {
                    Ok(stats) => {
                        let batch: Vec<Metric> = out
                            .into_iter()
                            .filter_map(|m| deltas.apply(m))
                            .map(|mut m| {
                                if !extra.is_empty() {
                                    m.tags = m.tags.union(&extra);
                                }
                                m
                            })
                            .collect();
                        health.status = "up";
                        health.last_error = None;
                        health.samples = stats.samples;
                        health.metrics = batch.len();
                        // Counter state first, then the deltas it produced: a crash
                        // (`kill -9`) between the two loses one scrape's deltas, and the
                        // next run never emits again what this one did (no doubled
                        // deltas across restarts).
                        save_deltas(&ctx, &state_path, &deltas, &health.id);
                        if let Ok(mut st) = ctx.store.write() {
                            st.exports.offer(&batch, interval);
                            st.insert_metrics(batch);
                        }
                    }
                    Err(e) => {
                        health.status = "down";
                        health.failures += 1;
                        health.last_error = Some(format!("parse: {e}"));
                    }
                }
            }
            Err(e) => {
                health.status = "down";
                health.failures += 1;
                health.last_error = Some(e.to_string());
                health.duration_ms = (now.as_nanos() - started.as_nanos()) as f64 / 1e6;
            }
        }
        drop(_permit);
        publish(&ctx, &health);
        n += 1;
        let j = ctx.cfg.scrape.jitter * unit(digest.wrapping_add(n));
        wait = interval.mul_f64(1.0 + j);
    }
    save_deltas(&ctx, &state_path, &deltas, &health.id);
}

fn save_deltas(ctx: &Ctx, path: &std::path::Path, deltas: &MonotonicDeltas, id: &str) {
    if let Err(e) = state::save(path, "deltas", &deltas.snapshot()) {
        ctx.log(
            "WARN",
            "scrape",
            &format!("{id}: saving counter state: {e}"),
        );
    }
}

fn publish(ctx: &Ctx, h: &CheckHealth) {
    let Ok(mut st) = ctx.store.write() else {
        return;
    };
    let labels = [("check", h.check.as_str()), ("id", h.id.as_str())];
    let t = &mut st.telemetry;
    t.set(
        SCRAPES,
        "counter",
        "Check runs by target.",
        &labels,
        h.runs as f64,
    );
    t.set(
        "meshmon_check_failures_total",
        "counter",
        "Failed check runs by target.",
        &labels,
        h.failures as f64,
    );
    t.set(
        "meshmon_check_up",
        "gauge",
        "1 when the target's last scrape succeeded.",
        &labels,
        if h.status == "up" { 1.0 } else { 0.0 },
    );
    t.set(
        "meshmon_check_duration_seconds",
        "gauge",
        "Duration of the target's last scrape.",
        &labels,
        h.duration_ms / 1e3,
    );
    t.set(
        "meshmon_check_samples",
        "gauge",
        "Samples in the target's last scrape.",
        &labels,
        h.samples as f64,
    );
    t.set(
        "meshmon_check_bytes",
        "gauge",
        "Bytes received in the target's last scrape.",
        &labels,
        h.bytes as f64,
    );
    st.set_check(h.clone());
}
