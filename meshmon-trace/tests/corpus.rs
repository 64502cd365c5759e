//! Where the shared corpora live, and what a missing one means: with
//! `MESHMON_REQUIRE_CORPUS=1` (CI) the test fails; otherwise it prints why it skips.

use std::path::{Path, PathBuf};

/// `../shared/data/<name>` relative to the workspace, if present. Panics (fails the test)
/// when it is absent and `MESHMON_REQUIRE_CORPUS` is set to anything but `0` or empty.
pub fn shared_data(name: &str) -> Option<PathBuf> {
    let d = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data")
        .join(name);
    if d.is_dir() {
        return Some(d);
    }
    let required = std::env::var("MESHMON_REQUIRE_CORPUS").is_ok_and(|v| !v.is_empty() && v != "0");
    assert!(
        !required,
        "corpus {name} absent at {} and MESHMON_REQUIRE_CORPUS is set",
        d.display()
    );
    eprintln!(
        "corpus {name} absent at {}: skipping (set MESHMON_REQUIRE_CORPUS=1 to fail instead)",
        d.display()
    );
    None
}
