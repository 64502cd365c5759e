//! The meshmon node agent as a library: the runtime behind `meshmon-agent run`, so tests
//! and embedders can start an agent in-process.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use std::sync::Arc;
//! use meshmon_agent::config::{AgentConfig, ProcessEnv};
//! use meshmon_agent::run::{self, SystemClock};
//!
//! let cfg = AgentConfig::load(None, &ProcessEnv)?; // embedded default + environment
//! let agent = run::start(cfg, Arc::new(SystemClock)).await?;
//! println!("API on http://{}", agent.api_addr);
//! let failed = agent.shutdown().await; // flush, persist, join
//! assert!(failed.is_empty());
//! # Ok(()) }
//! ```
//!
//! # Contents
//!
//! - [`config`]: the YAML file, the embedded default and the `DD_*` / `MESHMON_*`
//!   environment, validated once into [`config::AgentConfig`].
//! - [`run`]: the topology: discovery → scrape, the trace intake, the log tailer, the API;
//!   one clock, one shutdown signal, bounded channels between components.
//! - [`check`]: Datadog check instances (`istio`, `openmetrics`, `prometheus`) → scrape
//!   jobs, and `meshmon-agent check`.
//! - [`store`]: recent series, traces, patterns and check health with explicit bounds; state
//!   files written atomically.
//! - [`http`]: `/health`, `/metrics` and the JSON API.
//! - [`monitor`]: monitors, the Watchdog and notifiers (`/api/v1/monitors`,
//!   `/api/v1/watchdog`).
//! - [`status`]: `meshmon-agent status`, a human summary of `/api/v1/status`.

#[cfg(feature = "agent")]
pub mod check;
#[cfg(feature = "agent")]
pub mod config;
#[cfg(feature = "agent")]
pub mod export;
#[cfg(feature = "agent")]
pub mod http;
#[cfg(feature = "agent")]
pub mod monitor;
#[cfg(feature = "agent")]
pub mod run;
#[cfg(feature = "agent")]
pub mod status;
#[cfg(feature = "agent")]
pub mod store;
