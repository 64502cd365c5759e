//! meshmon-alert's integration tests: one test binary made of modules (as ripgrep's
//! `tests/tests.rs`), so it links once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod alloc;
mod anomaly_monitor;
mod episodes;
mod failure_modes;
mod monitor_watchdog;
mod nab;
