//! meshmon-alert: streaming anomaly detectors, monitors and Watchdog.
//!
//! ```
//! use meshmon_alert::{Algorithm, Detector, DetectorConfig};
//! use meshmon_core::Timestamp;
//!
//! let mut d = Detector::new(DetectorConfig::new(Algorithm::Agile))?;
//! let mut flagged = Vec::new();
//! for i in 0..300i64 {
//!     let v = if i == 250 { 500.0 } else { 100.0 + (i % 5) as f64 };
//!     if d.update(Timestamp::from_secs(i * 60), v).anomalous {
//!         flagged.push(i);
//!     }
//! }
//! assert_eq!(flagged, [250]);
//! # Ok::<(), meshmon_alert::ConfigError>(())
//! ```
//!
//! # Contents
//!
//! - [`detector`]: the one streaming shape, [`Detector::update`] → [`Estimate`], for
//!   Datadog's three algorithms: [`basic`], [`agile`], [`robust`].
//! - [`anomaly`]: Datadog's anomaly monitor over one series — trigger / recovery
//!   windows, critical / warning fractions, direction, NO DATA — [`AnomalyMonitor::update`]
//!   → state transitions with the value and band that caused them.
//! - [`seasonality`]: given or detected (hourly / daily / weekly).
//! - [`threshold`]: static warning / critical thresholds with recovery thresholds.
//! - [`outliers`]: outliers across a group of series (MAD), like Datadog's `outliers()`.
//! - [`monitor`]: query → aggregation → detector or threshold → OK / WARN / ALERT /
//!   NO DATA, one [`monitor::Alert`] per episode, turned into a
//!   [`meshmon_core::Notification`].
//! - [`watchdog`]: automatic monitors over every endpoint's request rate, error rate
//!   and p95 latency, emitting [`watchdog::Story`]s.
//! - [`nab`]: the Numenta Anomaly Benchmark scorer (windows, scaled sigmoid, profiles,
//!   corpus-wide threshold sweep, normalisation).

pub mod agile;
pub mod anomaly;
pub mod basic;
pub mod detector;
pub mod monitor;
pub mod nab;
pub mod outliers;
pub mod robust;
pub mod seasonality;
pub mod synth;
mod tail;
pub mod threshold;
pub mod watchdog;

pub use anomaly::{AnomalyMonitor, AnomalyMonitorConfig, Direction, Transition};
pub use detector::{Algorithm, ConfigError, Detector, DetectorConfig, DetectorStats, Estimate};
pub use monitor::{Alert, Monitor, MonitorConfig, MonitorState};
pub use seasonality::Seasonality;
pub use watchdog::{RedPoint, Story, Watchdog};
