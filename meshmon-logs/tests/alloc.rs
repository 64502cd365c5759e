//! Hot-path allocation: once the patterns exist, tokenising and matching a message
//! allocates nothing (a counting global allocator proves it).

use meshmon_logs::pattern::Miner;

use meshmon_core::test_util::{CountingAllocator, thread_allocations};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

#[test]
fn matching_known_patterns_allocates_nothing() {
    let msgs: Vec<String> = (0..2000)
        .map(|i| match i % 4 {
            0 => format!(
                "connection from 10.0.{}.{}:{} closed after {}ms",
                i % 7,
                i % 5,
                1000 + i % 9,
                i % 11
            ),
            1 => format!(
                "PacketResponder {} for block blk_{} terminating",
                i % 3,
                i % 13
            ),
            2 => format!("user=u{} action=login ok=true latency={}", i % 6, i % 8),
            _ => format!(
                "[instance: 38101a0b-2096-447d-96ea-a69216241{:03}] VM Started",
                i % 10
            ),
        })
        .collect();
    let mut m = Miner::default();
    // Warm-up: patterns and per-variable value slots fill up (< value_slots values each).
    for s in &msgs {
        m.add(s);
    }
    let before = thread_allocations();
    let mut sum = 0u64;
    for s in &msgs {
        sum += m.add(s).get();
    }
    let after = thread_allocations();
    assert!(sum > 0);
    assert_eq!(
        after - before,
        0,
        "allocations while matching {} known messages",
        msgs.len()
    );
    assert_eq!(m.len(), 4);
}
