//! meshmon-agent's one integration-test binary (ripgrep's `tests/tests.rs` layout): every
//! module drives the real `meshmon-agent` binary, so one link serves them all.
//!
//! - `run`: `meshmon-agent run` end to end (scrape, traces, logs, restarts, config errors).
//! - `demo`: `meshmon-agent demo` runs its simulated mesh and the agent sees it whole.
//! - `ad_cli`, `prom_cli`, `trace_cli`, `logs_cli`, `alert_cli`: the shell tools.

mod ad_cli;
mod alert_cli;
mod demo;
mod logs_cli;
mod prom_cli;
mod run;
mod trace_cli;
