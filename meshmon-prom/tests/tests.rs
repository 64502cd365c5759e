//! meshmon-prom's integration tests: one binary, one module per area (as ripgrep's
//! `tests/tests.rs` does), so they link once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Tests read fixtures and corpora from disk, the crate's clippy.toml rule being for
// library code.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

// Counts allocations per thread, for `alloc`; harmless to the other modules.
#[global_allocator]
static GLOBAL: meshmon_core::test_util::CountingAllocator =
    meshmon_core::test_util::CountingAllocator;

mod alloc;
#[cfg(feature = "check")]
mod check;
mod mapping;
#[cfg(feature = "check")]
mod mapping_v1;
mod oracle;
#[cfg(feature = "check")]
mod oracle_v1;
mod parse;
#[cfg(feature = "scrape")]
mod scrape;
