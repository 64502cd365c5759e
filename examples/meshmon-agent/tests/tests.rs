//! meshmon-agent's one integration-test binary (ripgrep's `tests/tests.rs` layout): every
//! module drives the real `meshmon-agent` binary, so one link serves them all.
//!
//! - `run`: `meshmon-agent run` end to end (scrape, traces, logs, restarts, config errors).
//! - `ui`: the status page in headless Chromium, and the log lines of a trace.
//! - `demo`: `meshmon-agent demo` runs its simulated mesh and the agent sees it whole.
//! - `monitors`: monitors, the Watchdog and notifiers, the agent in-process on a manual clock.
//! - `exports`: the exports against real servers (Debian `prometheus` with its
//!   remote-write receiver, `victoria-metrics`' Datadog intake) and a failing one.
//! - `cluster`: `meshmon-agent cluster-agent` and three node agents in network namespaces.
//! - `ad_cli`, `prom_cli`, `trace_cli`, `logs_cli`, `alert_cli`: the shell tools.
//! - `deploy`: the Kubernetes manifests and the Dockerfile in `deploy/`, validated offline.
//! - `reliability`: the HTTP surfaces under slow, oversized, malformed and too many
//!   clients; `kill -9` at random points; damaged state files.
//! - `dogstatsd_client`: the PyPI `datadog` client over UDP and the Unix socket.
//! - `overload`: DogStatsD, a log burst and a down/slow export under a cgroup CPU quota.
//! - `trace_overload`: the trace intake at 10× its capacity under a CPU quota (`hey`).

mod ad_cli;
mod alert_cli;
mod cluster;
mod demo;
mod deploy;
mod dogstatsd_client;
mod exports;
mod logs_cli;
mod monitors;
mod overload;
mod prom_cli;
mod reliability;
mod run;
mod trace_cli;
mod trace_overload;
mod ui;
