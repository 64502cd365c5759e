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
