//! meshmon-alert: Streaming anomaly detectors, monitors and Watchdog.
//!
//! ```
//! assert_eq!(meshmon_alert::NAME, "meshmon-alert");
//! ```

/// The crate name (placeholder until the crate's issue lands).
pub const NAME: &str = "meshmon-alert";
