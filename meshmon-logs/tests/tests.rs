//! meshmon-logs integration tests: one binary made of modules (as ripgrep's
//! `tests/tests.rs`), so the suite links once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// The tests read the Loghub corpus from ../shared/data and the MESHMON_REQUIRE_CORPUS
// switch: the I/O the library itself may not do.
#![allow(clippy::disallowed_methods)]

mod alloc;
mod classes;
mod common;
mod formats;
mod loghub;
mod mesh;
mod mesh_accuracy;
mod miner;
