//! Alerting in the agent: monitors from `monitors:`, the Watchdog, notifiers.
//!
//! One task ([`start`]) evaluates every monitor on the store at its `interval` (default
//! 60 s) on the agent's one clock: it takes the store's read lock only to copy the values
//! the due monitors need ([`eval::Engine::copy_inputs`]), judges them outside the lock
//! with meshmon-alert's threshold detector, anomaly monitor or Watchdog
//! ([`eval::Engine::evaluate`]), hands the transitions to the notifiers (never waiting on
//! them: each has a bounded queue, [`notify`]) and publishes what `/api/v1/monitors` and
//! `/api/v1/watchdog` serve ([`api`]), its counters in `/metrics` and a `monitors`
//! component in `status`.
//!
//! | type | value | judged by |
//! |---|---|---|
//! | `metric` | time aggregation over `window` of each series of `metric{tags}`, combined by `space_aggregation` | [`meshmon_alert::threshold::ThresholdDetector`] (warning / critical, recovery thresholds) |
//! | `anomaly` | the same, one point per evaluation | [`meshmon_alert::AnomalyMonitor`] (algorithm, bounds, trigger / recovery windows and fractions) |
//! | `log` | lines of a pattern, or of a service / status, over `window` | thresholds |
//! | `trace_error_rate` | `Σ trace.*.errors / Σ trace.*.hits` of the service over `window` | thresholds |
//! | `trace_latency` | `trace.*.duration.by.service.<p>` of the service over `window` (seconds) | thresholds |
//! | `watchdog` | request rate, error rate and p95 latency of every service, per interval, from the RED table's running totals | [`meshmon_alert::Watchdog`] |
//!
//! States are OK / WARN / ALERT / NO DATA; every transition is kept with its time, value,
//! band or threshold and reason. Monitor and detector state is persisted to
//! `state/monitors.json` ([`crate::store::state`]) after transitions, every few rounds
//! and at shutdown, and restored at start for monitors whose configuration did not
//! change.

pub mod api;
pub mod config;
pub mod eval;
pub mod notify;

pub use api::Board;

use serde_json::json;
use tokio::sync::watch;

use crate::run::{Ctx, stopped};
use crate::store::state::{self, Loaded};
use eval::{Engine, Persisted};

/// The state file (in `data_dir/state/`).
pub const STATE_FILE: &str = "monitors.json";
/// Its kind in the envelope.
pub const STATE_KIND: &str = "monitors";
/// Evaluation rounds between two saves when nothing changed.
pub const SAVE_EVERY_ROUNDS: u32 = 10;

fn save(ctx: &Ctx, engine: &Engine) {
    let path = ctx.state_path(STATE_FILE);
    if let Err(e) = state::save(&path, STATE_KIND, &engine.persist()) {
        ctx.log("ERROR", "monitors", &format!("saving state: {e}"));
    }
}

/// Builds the engine, restoring persisted state.
pub fn load_engine(ctx: &Ctx) -> anyhow::Result<Engine> {
    let now = ctx.clock.now();
    let mut engine = Engine::new(&ctx.cfg.monitors, &ctx.cfg.watchdog, now)?;
    let path = ctx.state_path(STATE_FILE);
    match state::load::<Persisted>(&path, STATE_KIND, now.as_secs()) {
        Loaded::Absent => {}
        Loaded::Ok(p) => {
            let dropped = engine.restore(p);
            if !dropped.is_empty() {
                ctx.log(
                    "INFO",
                    "monitors",
                    &format!(
                        "configuration changed, state started over for: {}",
                        dropped.join(", ")
                    ),
                );
            }
        }
        Loaded::SetAside { reason, moved_to } => ctx.log(
            "WARN",
            "monitors",
            &format!(
                "state file {} {reason}; moved to {}, starting fresh",
                path.display(),
                moved_to.display()
            ),
        ),
    }
    Ok(engine)
}

fn publish(ctx: &Ctx, engine: &Engine, notifiers: &notify::Notifiers) {
    let board = api::board(engine);
    let mut states = std::collections::BTreeMap::<&str, u64>::new();
    for s in ["OK", "WARN", "ALERT", "NO DATA"] {
        states.insert(s, 0);
    }
    for v in &board.monitors {
        *states.entry(v.state).or_default() += 1;
    }
    let mut wd_states = states.clone();
    for v in wd_states.values_mut() {
        *v = 0;
    }
    for (v, _) in &board.watchdog {
        *wd_states.entry(v.state).or_default() += 1;
    }
    let n = notifiers.counters();
    let s = engine.stats;
    let Ok(mut st) = ctx.store.write() else {
        return;
    };
    st.monitors = board;
    let t = &mut st.telemetry;
    for (state, count) in &states {
        t.set(
            "meshmon_monitors",
            "gauge",
            "Configured monitors per state.",
            &[("state", state)],
            *count as f64,
        );
    }
    for (state, count) in &wd_states {
        t.set(
            "meshmon_watchdog_monitors",
            "gauge",
            "Watchdog monitors (three per service) per state.",
            &[("state", state)],
            *count as f64,
        );
    }
    t.set(
        "meshmon_monitor_evaluations_total",
        "counter",
        "Monitor evaluations (one per monitor and interval; one per Watchdog round).",
        &[],
        s.evaluations as f64,
    );
    t.set(
        "meshmon_monitor_transitions_total",
        "counter",
        "Monitor state transitions.",
        &[],
        s.transitions as f64,
    );
    t.set(
        "meshmon_monitor_renotifications_total",
        "counter",
        "Re-notifications of monitors still not OK.",
        &[],
        s.renotifications as f64,
    );
    t.set(
        "meshmon_watchdog_stories_total",
        "counter",
        "Watchdog findings started.",
        &[],
        s.stories as f64,
    );
    for c in &n {
        for (outcome, v) in [
            ("sent", c.sent),
            ("failed", c.failed),
            ("dropped", c.dropped),
        ] {
            t.set(
                "meshmon_notifications_total",
                "counter",
                "Notifications per notifier and outcome (dropped: its queue was full).",
                &[("notifier", &c.name), ("outcome", outcome)],
                v as f64,
            );
        }
        t.set(
            "meshmon_notification_retries_total",
            "counter",
            "Notification deliveries retried (5xx, timeout, connection error).",
            &[("notifier", &c.name)],
            c.retries as f64,
        );
    }
    let wd = engine.watchdog.as_ref();
    st.components.insert(
        "monitors".into(),
        json!({
            "configured": engine.configured.len(),
            "states": states,
            "watchdog": {
                "enabled": wd.is_some(),
                "services": wd.map_or(0, |w| w.services.len()),
                "services_dropped": wd.map_or(0, |w| w.services_dropped),
                "states": wd_states,
            },
            "evaluations": s.evaluations,
            "transitions": s.transitions,
            "notifiers": n,
        }),
    );
}

/// The evaluation task of `meshmon-agent run`: the engine is built, its state restored
/// and published before this returns (so the API answers from the first request); the
/// returned future is the task.
pub fn start(
    ctx: &Ctx,
    shutdown: watch::Receiver<bool>,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let engine = load_engine(ctx);
    if let Ok(engine) = &engine {
        publish(ctx, engine, &notify::Notifiers::none());
    }
    run(ctx.clone(), engine, shutdown)
}

async fn run(ctx: Ctx, engine: anyhow::Result<Engine>, mut shutdown: watch::Receiver<bool>) {
    let mut engine = match engine {
        Ok(e) => e,
        Err(e) => {
            ctx.log("ERROR", "monitors", &format!("not started: {e:#}"));
            return;
        }
    };
    let mut notifiers = notify::Notifiers::start(&ctx);
    publish(&ctx, &engine, &notifiers);
    ctx.log(
        "INFO",
        "monitors",
        &format!(
            "{} monitors, Watchdog {}, evaluated every {:?} at most",
            engine.configured.len(),
            if engine.watchdog.is_some() {
                "on"
            } else {
                "off"
            },
            engine.tick()
        ),
    );
    let mut tick = tokio::time::interval(engine.tick());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut unsaved = 0u32;
    loop {
        tokio::select! {
            _ = stopped(&mut shutdown) => break,
            _ = tick.tick() => {}
        }
        let now = ctx.clock.now();
        let inputs = {
            let Ok(st) = ctx.store.read() else { break };
            engine.copy_inputs(&st, now)
        };
        let events = engine.evaluate(inputs, now);
        notifiers.dispatch(&ctx, &events);
        publish(&ctx, &engine, &notifiers);
        unsaved += 1;
        if !events.is_empty() || unsaved >= SAVE_EVERY_ROUNDS {
            save(&ctx, &engine);
            unsaved = 0;
        }
    }
    save(&ctx, &engine);
    notifiers.shutdown().await;
    publish(&ctx, &engine, &notifiers);
}
