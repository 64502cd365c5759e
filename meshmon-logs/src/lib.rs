//! meshmon-logs: log records and formats, processing rules, and log pattern mining into
//! generalized regexes.
//!
//! ```
//! use meshmon_logs::pattern::Miner;
//!
//! let mut miner = Miner::default();
//! let id = miner.add("GET /api/v1/users/42 took 12ms status=200");
//! assert_eq!(id, miner.add("GET /api/v1/users/7 took 130ms status=404"));
//! let p = miner.pattern(id).unwrap();
//! assert_eq!(p.template(), "GET <*> took <*> status=<*>");
//! let re = regex::Regex::new(&p.regex()).unwrap();
//! assert!(re.is_match("GET /api/v1/users/42 took 12ms status=200"));
//! ```
//!
//! # Contents
//!
//! - [`pattern`]: the online pattern miner ([`pattern::Miner`]), typed tokenisation,
//!   templates and regexes, persistence and merge.
//! - [`record`]: [`LogRecord`] and [`Status`] (Datadog's log statuses).
//! - [`mod@format`]: CRI (partial lines joined), Docker json-file, Envoy/Istio access logs,
//!   Istio component logs, JSON, raw; per-line auto-detection.
//! - [`multiline`]: multi-line aggregation (stack traces) with size and time bounds.
//! - [`rules`]: Datadog log processing rules (`exclude_at_match`, `include_at_match`,
//!   `mask_sequences`).
//! - [`eval`]: Grouping and Parsing Accuracy as the Loghub benchmark defines them.

pub mod eval;
pub mod format;
pub mod multiline;
pub mod pattern;
pub mod record;
pub mod rules;

pub use record::{LogRecord, Status};

/// The crate name.
pub const NAME: &str = "meshmon-logs";
