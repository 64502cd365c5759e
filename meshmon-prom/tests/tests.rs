//! meshmon-prom's integration tests: one binary, one module per area (as ripgrep's
//! `tests/tests.rs` does), so they link once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

// Counts allocations per thread, for `alloc`; harmless to the other modules.
#[global_allocator]
static GLOBAL: meshmon_core::test_util::CountingAllocator =
    meshmon_core::test_util::CountingAllocator;

mod alloc;
#[cfg(feature = "check")]
mod check;
mod mapping;
mod oracle;
mod parse;
#[cfg(feature = "scrape")]
mod scrape;
