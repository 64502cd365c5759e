//! Test utilities (feature `test-util`): a counting global allocator, so tests can prove
//! that a hot path allocates nothing per item, and [`TempDir`], a temporary directory
//! removed when dropped (also when the test panics), and [`corpus`], the gate of tests
//! that read the shared data corpora (`MESHMON_REQUIRE_CORPUS`).
//!
//! Counts are kept per thread, so tests running in parallel in one binary do not see
//! each other's allocations.
//!
//! ```
//! use meshmon_core::test_util::{CountingAllocator, count_allocations};
//!
//! #[global_allocator]
//! static GLOBAL: CountingAllocator = CountingAllocator;
//!
//! let (sum, allocs) = count_allocations(|| (0..100u64).sum::<u64>());
//! assert_eq!((sum, allocs), (4950, 0));
//! let (_v, allocs) = count_allocations(|| vec![1u8; 16]);
//! assert_eq!(allocs, 1);
//! ```

// A global allocator is an `unsafe` trait by nature; this is the only unsafe code in the
// crate and it forwards every call unchanged to the system allocator.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    // const-initialised and without a destructor: touching it never allocates.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count_one() {
    // `try_with` fails only while the thread is being torn down: then we skip counting.
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

/// A global allocator that forwards to [`System`] and counts, per thread, every
/// allocation and reallocation (frees are not counted).
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAllocator;

// SAFETY: every method forwards its arguments unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the counting touches only a const thread-local `Cell`.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Allocations (and reallocations) made so far by the current thread. Meaningful only
/// when [`CountingAllocator`] is the global allocator.
pub fn thread_allocations() -> usize {
    ALLOCATIONS.try_with(Cell::get).unwrap_or(0)
}

/// Runs `f` and returns its result with the number of allocations the current thread
/// made meanwhile.
pub fn count_allocations<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let before = thread_allocations();
    let out = f();
    (out, thread_allocations() - before)
}

/// A fresh directory under the system temporary directory, removed with everything in it
/// when the value is dropped: at the end of the test, and also while a failing test
/// unwinds, so a panic leaves no files behind.
///
/// ```
/// use meshmon_core::test_util::TempDir;
/// let dir = TempDir::new("doc").unwrap();
/// let file = dir.write("token", b"s3cret").unwrap();
/// assert_eq!(std::fs::read(&file).unwrap(), b"s3cret");
/// let path = dir.path().to_owned();
/// drop(dir);
/// assert!(!path.exists());
/// ```
#[derive(Debug)]
pub struct TempDir {
    path: std::path::PathBuf,
}

// Test support is the one place in this crate that touches the file system.
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
impl TempDir {
    /// Creates `<tmp>/meshmon-<label>-<pid>-<n>` (`n` counts directories made by this
    /// process, so parallel tests never share one).
    pub fn new(label: &str) -> std::io::Result<Self> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("meshmon-{label}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&path)?;
        Ok(Self { path })
    }

    /// The directory.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// `path()/name`.
    pub fn join(&self, name: &str) -> std::path::PathBuf {
        self.path.join(name)
    }

    /// Writes `bytes` to `path()/name` and returns that path.
    pub fn write(&self, name: &str, bytes: &[u8]) -> std::io::Result<std::path::PathBuf> {
        let p = self.join(name);
        std::fs::write(&p, bytes)?;
        Ok(p)
    }
}

#[allow(clippy::disallowed_methods)]
impl Drop for TempDir {
    fn drop(&mut self) {
        // Nothing useful can be done about a failure while cleaning up.
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The environment variable that turns a missing corpus into a test failure. CI
/// (`.ci/run`) and `scripts/test` set it to `1`.
pub const REQUIRE_CORPUS_VAR: &str = "MESHMON_REQUIRE_CORPUS";

/// Whether [`REQUIRE_CORPUS_VAR`] is set to `1`.
#[allow(clippy::disallowed_methods)]
pub fn corpus_required() -> bool {
    std::env::var_os(REQUIRE_CORPUS_VAR).is_some_and(|v| v == "1")
}

/// Gate of a corpus-driven test: `Some(path)` when `path` exists. When it does not,
/// panics (failing the test) if `MESHMON_REQUIRE_CORPUS=1`, otherwise prints to stderr
/// which corpus is missing and that the test asserted nothing, and returns `None`.
///
/// ```
/// use meshmon_core::test_util::corpus;
/// // An absent corpus, with MESHMON_REQUIRE_CORPUS unset in doc tests:
/// if std::env::var_os("MESHMON_REQUIRE_CORPUS").is_none() {
///     assert_eq!(corpus("/nonexistent/meshmon-corpus", "doc example"), None);
/// }
/// ```
#[allow(clippy::panic)]
pub fn corpus(path: impl AsRef<std::path::Path>, what: &str) -> Option<std::path::PathBuf> {
    let path = path.as_ref();
    if path.exists() {
        return Some(path.to_owned());
    }
    if corpus_required() {
        panic!(
            "{what}: corpus {} is missing and {REQUIRE_CORPUS_VAR}=1 (see /work/shared/data/README.md)",
            path.display()
        );
    }
    eprintln!(
        "{what}: corpus {} is absent; this test asserted nothing (set {REQUIRE_CORPUS_VAR}=1 to make that a failure)",
        path.display()
    );
    None
}
