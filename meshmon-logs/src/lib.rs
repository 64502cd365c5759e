//! meshmon-logs: log records and formats, processing rules, and log pattern mining into
//! generalized regexes.
//!
//! ```
//! use meshmon_logs::format::{Format, LineParser};
//! use meshmon_logs::pattern::Miner;
//! use meshmon_logs::rules::{Processor, Rule};
//!
//! // Container lines as the kubelet writes them (CRI), one of them split in two.
//! let lines = [
//!     "2024-05-01T12:00:00Z stdout F GET /api/v1/users/42 took 12ms status=200",
//!     "2024-05-01T12:00:01Z stdout P GET /api/v1/users/7 took ",
//!     "2024-05-01T12:00:01Z stdout F 130ms status=404",
//!     "2024-05-01T12:00:02Z stdout F GET /healthz took 1ms status=200",
//! ];
//! let rules: Vec<Rule> = serde_json::from_str(
//!     r#"[{"type": "exclude_at_match", "name": "no_health", "pattern": "/healthz"}]"#,
//! ).unwrap();
//! let mut rules = Processor::new(&rules).unwrap();
//! let mut parser = LineParser::new(Format::Auto);
//! let mut miner = Miner::default();
//! let mut ids = Vec::new();
//! for line in lines {
//!     if let Some(mut record) = parser.parse(line.as_bytes()) {
//!         if rules.process(&mut record) {
//!             ids.push(miner.add(&record.message));
//!         }
//!     }
//! }
//! assert_eq!(ids.len(), 2);
//! assert_eq!(ids[0], ids[1]);
//! let p = miner.pattern(ids[0]).unwrap();
//! assert_eq!(p.template(), "GET <*> took <*> status=<*>");
//! assert_eq!(p.typed_template(), "GET <path> took <duration> status=<value>");
//! let re = regex::Regex::new(&p.regex()).unwrap();
//! assert!(re.is_match("GET /api/v1/users/7 took 130ms status=404"));
//! assert_eq!(rules.stats.excluded, 1);
//! ```
//!
//! # Contents
//!
//! - [`pattern`]: the online pattern miner ([`pattern::Miner`]), typed tokenisation,
//!   templates and regexes, persistence and merge; [`pattern::PatternSet`], the per-record
//!   accounting an agent calls (`observe(&record) -> PatternId`, counts by status,
//!   Envoy/Istio access logs mined from their fields).
//! - [`record`]: [`LogRecord`] and [`Status`] (Datadog's log statuses).
//! - [`mod@format`]: CRI (partial lines joined), Docker json-file, Envoy/Istio access logs,
//!   Istio component logs, JSON, logfmt, raw; per-line auto-detection.
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
