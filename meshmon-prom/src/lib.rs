//! meshmon-prom: Prometheus text / OpenMetrics parsing (zero-copy, nom) and Datadog-style mapping.
//!
//! ```
//! assert_eq!(meshmon_prom::NAME, "meshmon-prom");
//! ```

/// The crate name (placeholder until the crate's issue lands).
pub const NAME: &str = "meshmon-prom";
