//! meshmon-alert: streaming anomaly detectors, monitors and Watchdog.
//!
//! ```
//! use meshmon_alert::{Algorithm, Detector, DetectorConfig};
//! use meshmon_core::Timestamp;
//!
//! let mut d = Detector::new(DetectorConfig::new(Algorithm::Agile));
//! let mut flagged = Vec::new();
//! for i in 0..300i64 {
//!     let v = if i == 250 { 500.0 } else { 100.0 + (i % 5) as f64 };
//!     if d.update(Timestamp::from_secs(i * 60), v).anomalous {
//!         flagged.push(i);
//!     }
//! }
//! assert_eq!(flagged, [250]);
//! ```
//!
//! # Contents
//!
//! - [`detector`]: the one streaming shape, [`Detector::update`] → [`Estimate`], for
//!   Datadog's three algorithms: [`basic`], [`agile`], [`robust`].
//! - [`seasonality`]: given or detected (hourly / daily / weekly).
//! - [`nab`]: the Numenta Anomaly Benchmark scorer (windows, scaled sigmoid, profiles,
//!   corpus-wide threshold sweep, normalisation).

pub mod agile;
pub mod basic;
pub mod detector;
pub mod nab;
pub mod robust;
pub mod seasonality;
mod tail;

pub use detector::{Algorithm, Detector, DetectorConfig, DetectorStats, Estimate};
pub use seasonality::Seasonality;
