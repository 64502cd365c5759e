//! meshmon-agent's one integration-test binary (ripgrep's `tests/tests.rs` layout): every
//! module drives the real `meshmon-agent` binary, so one link serves them all.
//!
//! - `run`: `meshmon-agent run` end to end (scrape, traces, logs, restarts, config errors).
//! - `cluster`: `meshmon-agent cluster-agent` and three node agents in network namespaces.
//! - `ad_cli`, `prom_cli`, `trace_cli`, `logs_cli`, `alert_cli`: the shell tools.

mod ad_cli;
mod alert_cli;
mod cluster;
mod logs_cli;
mod prom_cli;
mod run;
mod trace_cli;
