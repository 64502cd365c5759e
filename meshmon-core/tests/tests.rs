//! meshmon-core's integration tests: one binary, one module per area (as ripgrep's
//! `tests/tests.rs` does), so they link once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Tests read fixtures and corpora from disk, the crate's clippy.toml rule being for
// library code.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

// The crate's own `test_util` module, compiled into this binary (a package cannot
// dev-depend on itself to turn on its `test-util` feature).
#[allow(dead_code)]
#[path = "../src/test_util.rs"]
mod test_util;

#[global_allocator]
static GLOBAL: test_util::CountingAllocator = test_util::CountingAllocator;

#[cfg(feature = "autodiscovery")]
mod ad_alloc_budget;
#[cfg(feature = "dogstatsd")]
mod dogstatsd;
#[cfg(feature = "autodiscovery")]
mod istio_seed000;
mod support;
mod time;
