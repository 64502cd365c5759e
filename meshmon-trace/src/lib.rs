//! meshmon-trace: Datadog and Zipkin trace intake, sampling, trace assembly, service map and RED stats.
//!
//! ```
//! assert_eq!(meshmon_trace::NAME, "meshmon-trace");
//! ```

/// The crate name (placeholder until the crate's issue lands).
pub const NAME: &str = "meshmon-trace";
