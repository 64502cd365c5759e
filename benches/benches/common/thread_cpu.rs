//! [`ThreadCpu`]: a criterion measurement of the benchmark thread's CPU time, so
//! throughput figures stay meaningful on a machine shared with other jobs. One copy for
//! every bench (`#[path = "common/thread_cpu.rs"] mod thread_cpu;`).

use std::sync::OnceLock;
use std::time::Duration;

/// A criterion measurement of this thread's CPU time in ns
/// ([`meshmon_benches::thread_cpu_ns`]; wall time where Linux's schedstat is absent).
pub struct ThreadCpu;

fn now_ns() -> u64 {
    static START: OnceLock<std::time::Instant> = OnceLock::new();
    meshmon_benches::thread_cpu_ns().unwrap_or_else(|| {
        let start = START.get_or_init(std::time::Instant::now);
        u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    })
}

static WALL: criterion::measurement::WallTime = criterion::measurement::WallTime;

impl criterion::measurement::Measurement for ThreadCpu {
    type Intermediate = u64;
    type Value = Duration;

    fn start(&self) -> u64 {
        now_ns()
    }
    fn end(&self, start: u64) -> Duration {
        Duration::from_nanos(now_ns().saturating_sub(start))
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, v: &Duration) -> f64 {
        v.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn criterion::measurement::ValueFormatter {
        criterion::measurement::Measurement::formatter(&WALL)
    }
}
