//! meshmon-logs integration tests: one binary made of modules (as ripgrep's
//! `tests/tests.rs`), so the suite links once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod alloc;
mod common;
mod formats;
mod loghub;
mod mesh;
mod mesh_accuracy;
mod miner;
