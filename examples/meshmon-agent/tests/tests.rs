//! meshmon-agent's one integration-test binary (ripgrep's `tests/tests.rs` layout): every
//! module drives the real `meshmon-agent` binary, so one link serves them all.
//!
//! - `run`: `meshmon-agent run` end to end (scrape, traces, logs, restarts, config errors).
//! - `ui`: the status page in headless Chromium, and the log lines of a trace.
//! - `ad_cli`, `prom_cli`, `trace_cli`, `logs_cli`, `alert_cli`: the shell tools.

mod ad_cli;
mod alert_cli;
mod logs_cli;
mod prom_cli;
mod run;
mod trace_cli;
mod ui;
