//! The topology of `meshmon-agent run`: build each component, spawn it, cancel and join.
//!
//! | component | owns | talks to |
//! |---|---|---|
//! | [`discovery`] | config providers (static `checks:`, manifest files) | scrape, through a bounded channel of scheduling changes |
//! | [`scrape`] | one schedule per check instance, counter state | the store |
//! | [`traces`] | the trace intake (decoder, samplers, stats, service map) | HTTP handlers through a bounded request queue; the store |
//! | [`logs`] | tailed files, their positions, one pattern miner per source | the store |
//! | [`crate::http`] | the API listener | reads the store |
//!
//! One [`Clock`] is passed down; every task watches one shutdown signal. On shutdown each
//! component flushes and persists its state before its task ends.

pub mod discovery;
pub mod dogstatsd;
pub mod logs;
pub mod scrape;
pub mod traces;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use meshmon_core::{Tag, Tags, Timestamp};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::AgentConfig;
use crate::store::{SharedStore, Store};

/// The one source of time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now.
    fn now(&self) -> Timestamp;
}

/// The system's real-time clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp::from_nanos(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
    }
}

/// What every component gets.
#[derive(Clone, Debug)]
pub struct Ctx {
    /// The validated configuration.
    pub cfg: Arc<AgentConfig>,
    /// The shared store.
    pub store: SharedStore,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// The host name.
    pub hostname: String,
    /// Global tags (`tags:`/`DD_TAGS` plus `env:`).
    pub global_tags: Tags,
    /// Autodiscovery `logs` configs by (namespace, pod, container), set by discovery and
    /// read by the tailer when it opens a container's file.
    pub log_overrides: Arc<std::sync::RwLock<LogOverrides>>,
}

/// A container's autodiscovery `logs` config (`ad.datadoghq.com/<container>.logs`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogOverride {
    /// `service`, when set.
    pub service: Option<String>,
    /// `source`, when set.
    pub source: Option<String>,
    /// `tags`.
    pub tags: Vec<String>,
    /// `log_processing_rules`.
    pub rules: Vec<serde_json::Value>,
}

/// Autodiscovery `logs` configs by (namespace, pod, container).
pub type LogOverrides = std::collections::HashMap<(String, String, String), LogOverride>;

impl Ctx {
    /// Path of a state file in the data dir.
    pub fn state_path(&self, name: &str) -> std::path::PathBuf {
        self.cfg.data_dir.join("state").join(name)
    }

    /// Logs one line to stderr, as the agent's log.
    pub fn log(&self, level: &str, component: &str, msg: &str) {
        eprintln!(
            "{} {level:<5} {component}: {msg}",
            fmt_time(self.clock.now())
        );
    }

    /// Records a component's status object (shown by `status`).
    pub fn set_component(&self, name: &str, v: serde_json::Value) {
        if let Ok(mut s) = self.store.write() {
            s.components.insert(name.to_owned(), v);
        }
    }
}

/// RFC 3339 UTC with milliseconds (the agent's log lines), on `meshmon-core`'s calendar.
pub fn fmt_time(t: Timestamp) -> String {
    let secs = t.as_secs();
    let ms = t.as_nanos().rem_euclid(1_000_000_000) / 1_000_000;
    let (y, m, d) = meshmon_core::time::civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// One task's name and liveness flag.
type TaskFlag = (&'static str, Arc<AtomicBool>);

/// Liveness of the spawned tasks (`/health`).
#[derive(Clone, Debug, Default)]
pub struct Tasks {
    inner: Arc<Mutex<Vec<TaskFlag>>>,
}

/// Marks its task dead when dropped (the task ended, or panicked).
#[derive(Debug)]
pub struct AliveGuard(Arc<AtomicBool>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl Tasks {
    /// Registers a task; keep the guard inside it.
    pub fn register(&self, name: &'static str) -> AliveGuard {
        let flag = Arc::new(AtomicBool::new(true));
        if let Ok(mut v) = self.inner.lock() {
            v.push((name, flag.clone()));
        }
        AliveGuard(flag)
    }

    /// Names of every task.
    pub fn names(&self) -> Vec<&'static str> {
        self.inner
            .lock()
            .map(|v| v.iter().map(|(n, _)| *n).collect())
            .unwrap_or_default()
    }

    /// Names of tasks that ended.
    pub fn dead(&self) -> Vec<&'static str> {
        self.inner
            .lock()
            .map(|v| {
                v.iter()
                    .filter(|(_, a)| !a.load(Ordering::SeqCst))
                    .map(|(n, _)| *n)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Spawns `fut` as task `name`, registered for `/health` (marked dead when it ends).
fn spawn_task<F>(
    tasks: &Tasks,
    handles: &mut Vec<(&'static str, JoinHandle<()>)>,
    name: &'static str,
    fut: F,
) where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let guard = tasks.register(name);
    handles.push((
        name,
        tokio::spawn(async move {
            let _g = guard;
            fut.await;
        }),
    ));
}

/// A running agent.
#[derive(Debug)]
pub struct RunningAgent {
    /// Where the API listens.
    pub api_addr: SocketAddr,
    /// Where the Datadog trace intake listens (when APM is on).
    pub trace_addr: Option<SocketAddr>,
    /// Where the Zipkin intake listens (when on).
    pub zipkin_addr: Option<SocketAddr>,
    /// The store (tests read it directly).
    pub store: SharedStore,
    /// Task liveness.
    pub tasks: Tasks,
    shutdown: watch::Sender<bool>,
    handles: Vec<(&'static str, JoinHandle<()>)>,
    ctx: Ctx,
}

/// This machine's hostname (`/proc/sys/kernel/hostname`, else `/etc/hostname`, else
/// `localhost`): the agent's default host and the cluster agent's default identity.
pub(crate) fn machine_hostname() -> String {
    for p in ["/proc/sys/kernel/hostname", "/etc/hostname"] {
        if let Ok(s) = std::fs::read_to_string(p) {
            let s = s.trim();
            if !s.is_empty() {
                return s.to_owned();
            }
        }
    }
    "localhost".into()
}

/// Global tags: `tags:` plus `env:<env>`, sorted and de-duplicated.
pub fn global_tags(cfg: &AgentConfig) -> anyhow::Result<Tags> {
    let mut tags = Tags::new();
    for t in &cfg.tags {
        tags.insert(t.parse::<Tag>().with_context(|| format!("tag {t:?}"))?);
    }
    if !cfg.env.is_empty() {
        tags.insert(Tag::new("env", &cfg.env).with_context(|| format!("env {:?}", cfg.env))?);
    }
    Ok(tags)
}

/// Starts every component of `cfg`; returns once all listeners are bound.
pub async fn start(cfg: AgentConfig, clock: Arc<dyn Clock>) -> anyhow::Result<RunningAgent> {
    std::fs::create_dir_all(cfg.data_dir.join("state"))
        .with_context(|| format!("creating data dir {}", cfg.data_dir.display()))?;
    let hostname = if cfg.hostname.is_empty() {
        machine_hostname()
    } else {
        cfg.hostname.clone()
    };
    let global_tags = global_tags(&cfg)?;
    let store = Store::shared(cfg.store.clone());
    let ctx = Ctx {
        cfg: Arc::new(cfg),
        store: store.clone(),
        clock: clock.clone(),
        hostname,
        global_tags,
        log_overrides: Arc::default(),
    };
    for n in &ctx.cfg.notices {
        ctx.log("INFO", "config", n);
    }
    let (shutdown, rx) = watch::channel(false);
    let tasks = Tasks::default();
    let mut handles = Vec::new();
    let mut addrs = BTreeMap::new();

    // Exports: one task each; producers offer every batch through the store's fan-out.
    {
        let (exports, export_tasks) = crate::export::start(&ctx, &rx)?;
        if let Ok(mut s) = store.write() {
            s.exports = exports;
        }
        for (name, fut) in export_tasks {
            spawn_task(&tasks, &mut handles, name, fut);
        }
    }

    // Bind every listener first, so a port in use fails the start.
    let api_listener = tokio::net::TcpListener::bind(&ctx.cfg.api.listen)
        .await
        .with_context(|| format!("binding the API on {}", ctx.cfg.api.listen))?;
    let api_addr = api_listener.local_addr()?;
    addrs.insert("api", format!("http://{api_addr}"));
    if !api_addr.ip().is_loopback() {
        ctx.log(
            "WARN",
            "api",
            &format!("the API listens beyond loopback on {api_addr} (api.listen): anyone who reaches it reads this node's telemetry"),
        );
    }

    let mut trace_addr = None;
    let mut zipkin_addr = None;
    if ctx.cfg.apm.enabled {
        let t = traces::bind(&ctx).await?;
        trace_addr = Some(t.datadog_addr);
        zipkin_addr = t.zipkin_addr;
        addrs.insert("apm", format!("http://{}", t.datadog_addr));
        if let Some(z) = t.zipkin_addr {
            addrs.insert("zipkin", format!("http://{z}"));
        }
        if ctx.cfg.apm.non_local_traffic {
            ctx.log(
                "WARN",
                "traces",
                "listening on all interfaces (DD_APM_NON_LOCAL_TRAFFIC)",
            );
        }
        for (name, fut) in t.spawn(ctx.clone(), rx.clone()) {
            spawn_task(&tasks, &mut handles, name, fut);
        }
    }

    // DogStatsD: a port already in use (another agent on the node) is reported, not fatal.
    if ctx.cfg.dogstatsd.enabled {
        let d = &ctx.cfg.dogstatsd;
        let ip = if d.non_local_traffic {
            "0.0.0.0"
        } else {
            "127.0.0.1"
        };
        let mut errors = Vec::new();
        let udp = match tokio::net::UdpSocket::bind((ip, d.port)).await {
            Ok(sock) => {
                if let Ok(a) = sock.local_addr() {
                    addrs.insert("dogstatsd", format!("udp://{a}"));
                }
                if d.non_local_traffic {
                    ctx.log(
                        "WARN",
                        "dogstatsd",
                        "listening on all interfaces (DD_DOGSTATSD_NON_LOCAL_TRAFFIC)",
                    );
                }
                Some(sock)
            }
            Err(e) => {
                errors.push(format!("not listening on udp {ip}:{}: {e}", d.port));
                None
            }
        };
        // The optional Unix datagram socket (DD_DOGSTATSD_SOCKET), same aggregator.
        let unix = if d.socket.is_empty() {
            None
        } else {
            match dogstatsd::bind_unix(std::path::Path::new(&d.socket)) {
                Ok(u) => {
                    addrs.insert("dogstatsd_socket", format!("unixgram://{}", d.socket));
                    Some(u)
                }
                Err(e) => {
                    errors.push(format!("not listening on the unix socket {e}"));
                    None
                }
            }
        };
        for msg in &errors {
            ctx.log("ERROR", "dogstatsd", msg);
        }
        if !errors.is_empty() {
            ctx.set_component(
                "dogstatsd",
                serde_json::json!({ "error": errors.join("; ") }),
            );
        }
        if udp.is_some() || unix.is_some() {
            let mut acfg = meshmon_core::dogstatsd::aggregate::AggregatorConfig::default();
            acfg.max_contexts = d.max_contexts;
            match meshmon_core::dogstatsd::aggregate::Aggregator::new(acfg) {
                Ok(agg) => {
                    let fut = dogstatsd::run_listeners(
                        ctx.clone(),
                        udp,
                        unix,
                        rx.clone(),
                        agg,
                        d.flush_interval.0,
                    );
                    spawn_task(&tasks, &mut handles, "dogstatsd", fut);
                }
                Err(e) => ctx.log("ERROR", "dogstatsd", &format!("aggregator: {e}")),
            }
        }
    }

    // Discovery feeds the scrape scheduler.
    let (sched_tx, sched_rx) = tokio::sync::mpsc::channel(64);
    let fut = discovery::run(ctx.clone(), sched_tx, rx.clone());
    spawn_task(&tasks, &mut handles, "discovery", fut);
    let fut = scrape::run(ctx.clone(), sched_rx, rx.clone());
    spawn_task(&tasks, &mut handles, "scrape", fut);
    if ctx.cfg.logs.enabled {
        let fut = logs::run(ctx.clone(), rx.clone());
        spawn_task(&tasks, &mut handles, "logs", fut);
    }
    {
        let fut = crate::monitor::start(&ctx, rx.clone());
        spawn_task(&tasks, &mut handles, "monitors", fut);
    }
    {
        let api = crate::http::Api {
            ctx: ctx.clone(),
            tasks: tasks.clone(),
            started: clock.now(),
            addrs: Arc::new(addrs),
        };
        let fut = crate::http::serve(api_listener, api, rx.clone());
        spawn_task(&tasks, &mut handles, "api", fut);
    }
    ctx.log("INFO", "agent", &format!("API on http://{api_addr}"));
    Ok(RunningAgent {
        api_addr,
        trace_addr,
        zipkin_addr,
        store,
        tasks,
        shutdown,
        handles,
        ctx,
    })
}

impl RunningAgent {
    /// Signals every component to stop, waits for them to flush and persist, and
    /// returns the names of tasks that failed.
    pub async fn shutdown(self) -> Vec<&'static str> {
        let _ = self.shutdown.send(true);
        let mut failed = Vec::new();
        for (name, h) in self.handles {
            match tokio::time::timeout(std::time::Duration::from_secs(20), h).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    self.ctx.log("ERROR", name, &format!("task failed: {e}"));
                    failed.push(name);
                }
                Err(_) => {
                    self.ctx.log("ERROR", name, "did not stop within 20 s");
                    failed.push(name);
                }
            }
        }
        self.ctx.log("INFO", "agent", "stopped");
        failed
    }
}

/// Waits until `rx` says stop (or its sender is gone).
pub async fn stopped(rx: &mut watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_time() {
        assert_eq!(
            fmt_time(Timestamp::from_millis(0)),
            "1970-01-01T00:00:00.000Z"
        );
        assert_eq!(
            fmt_time(Timestamp::from_millis(1_709_210_096_789)),
            "2024-02-29T12:34:56.789Z"
        );
    }
}
