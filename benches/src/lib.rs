//! Shared helpers for meshmon's criterion benchmarks: locating the real-world corpora in
//! `../shared/data/` and generating deterministic synthetic inputs.

pub mod prom;
#[cfg(feature = "trace")]
pub mod trace;

use std::path::PathBuf;

/// The shared data directory (`<workspace>/../shared/data`), or `MESHMON_DATA` if set.
pub fn data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MESHMON_DATA") {
        return PathBuf::from(dir);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data")
}

/// Reads a corpus file under [`data_dir`], or says clearly that it is absent and
/// returns `None` so the benchmark can skip it.
pub fn read_corpus(rel: &str) -> Option<Vec<u8>> {
    let path = data_dir().join(rel);
    match std::fs::read(&path) {
        Ok(bytes) => Some(bytes),
        Err(err) => {
            eprintln!(
                "meshmon-benches: corpus {} is absent ({err}); skipping the benchmarks that need it",
                path.display()
            );
            None
        }
    }
}

/// Nanoseconds the calling thread has spent on a CPU, from Linux
/// `/proc/thread-self/schedstat` (`None` elsewhere), so a one-core throughput can be
/// read on a loaded machine where wall time is shared. The one copy for the benches;
/// the agent's `trace bench` keeps its own few lines, since a binary should not depend
/// on the bench crate and a clock read does not belong in the pure library crates.
pub fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}
