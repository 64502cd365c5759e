//! meshmon-logs: Log records and formats, processing rules, and log pattern mining into generalized regexes.
//!
//! ```
//! assert_eq!(meshmon_logs::NAME, "meshmon-logs");
//! ```

/// The crate name (placeholder until the crate's issue lands).
pub const NAME: &str = "meshmon-logs";
