//! Test utilities (feature `test-util`): a counting global allocator, so tests can prove
//! that a hot path allocates nothing per item.
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
