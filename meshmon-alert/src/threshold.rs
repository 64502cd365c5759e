//! Static thresholds with warning and critical levels and recovery thresholds, like a
//! Datadog metric monitor's `thresholds` (`critical`, `warning`, `critical_recovery`,
//! `warning_recovery`).
//!
//! Recovery thresholds give hysteresis: once in ALERT, the value must cross
//! `critical_recovery` (not merely dip under `critical`) to leave it, so a value
//! hovering around the threshold does not flap.
//!
//! ```
//! use meshmon_alert::threshold::{Comparator, Level, ThresholdConfig, ThresholdDetector};
//!
//! let mut t = ThresholdDetector::new(
//!     ThresholdConfig::new(Comparator::Above, 90.0)
//!         .with_warning(80.0)
//!         .with_critical_recovery(85.0)
//!         .with_warning_recovery(75.0),
//! )?;
//! let levels: Vec<Level> = [50.0, 82.0, 91.0, 88.0, 84.0, 78.0, 70.0].iter().map(|&v| t.update(v)).collect();
//! use Level::{Alert, Warn};
//! assert_eq!(levels, [Level::Ok, Warn, Alert, Alert, Warn, Warn, Level::Ok]);
//! # Ok::<(), meshmon_alert::threshold::ThresholdError>(())
//! ```

use serde::{Deserialize, Serialize};

/// Which side of the threshold is bad.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Comparator {
    /// Values above the threshold are bad.
    #[default]
    Above,
    /// Values below the threshold are bad.
    Below,
}

/// How bad one point is.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Normal.
    #[default]
    Ok,
    /// Past the warning threshold.
    Warn,
    /// Past the critical threshold (or anomalous).
    Alert,
}

/// Threshold configuration: [`ThresholdConfig::new`] and the `with_*` methods;
/// [`ThresholdDetector::new`] validates it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ThresholdConfig {
    /// Which side is bad.
    pub comparator: Comparator,
    /// The critical threshold.
    pub critical: f64,
    /// The warning threshold (must be less severe than `critical`).
    pub warning: Option<f64>,
    /// Leave ALERT only when past this (defaults to `critical`).
    pub critical_recovery: Option<f64>,
    /// Leave WARN only when past this (defaults to `warning`).
    pub warning_recovery: Option<f64>,
}

impl ThresholdConfig {
    /// `critical` on the `comparator` side, no warning, recovery at the thresholds.
    pub fn new(comparator: Comparator, critical: f64) -> Self {
        Self {
            comparator,
            critical,
            ..Self::default()
        }
    }

    /// Sets the warning threshold.
    #[must_use]
    pub fn with_warning(mut self, warning: f64) -> Self {
        self.warning = Some(warning);
        self
    }

    /// Sets the critical recovery threshold.
    #[must_use]
    pub fn with_critical_recovery(mut self, v: f64) -> Self {
        self.critical_recovery = Some(v);
        self
    }

    /// Sets the warning recovery threshold.
    #[must_use]
    pub fn with_warning_recovery(mut self, v: f64) -> Self {
        self.warning_recovery = Some(v);
        self
    }
}

/// An inconsistent threshold configuration.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ThresholdError {
    /// A threshold is not finite.
    #[error("threshold {field} is not finite ({value})")]
    NotFinite {
        /// The field name.
        field: &'static str,
        /// Its value.
        value: f64,
    },
    /// Two thresholds are in the wrong order for the comparator.
    #[error("threshold {field} ({value}) must be on the normal side of {other} ({other_value})")]
    Order {
        /// The field that is out of order.
        field: &'static str,
        /// Its value.
        value: f64,
        /// The field it is compared with.
        other: &'static str,
        /// That field's value.
        other_value: f64,
    },
}

/// A stateful threshold evaluator (hysteresis needs the previous level).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThresholdDetector {
    config: ThresholdConfig,
    level: Level,
}

impl ThresholdDetector {
    /// Validates `config`: finite values, and `warning`, `critical_recovery`,
    /// `warning_recovery` on the normal side of what they relax.
    pub fn new(config: ThresholdConfig) -> Result<Self, ThresholdError> {
        let fields = [
            ("critical", Some(config.critical)),
            ("warning", config.warning),
            ("critical_recovery", config.critical_recovery),
            ("warning_recovery", config.warning_recovery),
        ];
        for (field, v) in fields {
            if let Some(value) = v
                && !value.is_finite()
            {
                return Err(ThresholdError::NotFinite { field, value });
            }
        }
        let sign = match config.comparator {
            Comparator::Above => 1.0,
            Comparator::Below => -1.0,
        };
        let check = |field, value: Option<f64>, other, other_value: f64| match value {
            Some(v) if sign * v > sign * other_value => Err(ThresholdError::Order {
                field,
                value: v,
                other,
                other_value,
            }),
            _ => Ok(()),
        };
        check("warning", config.warning, "critical", config.critical)?;
        check(
            "critical_recovery",
            config.critical_recovery,
            "critical",
            config.critical,
        )?;
        if let Some(w) = config.warning {
            check("warning_recovery", config.warning_recovery, "warning", w)?;
        }
        Ok(Self {
            config,
            level: Level::Ok,
        })
    }

    /// The current level.
    pub fn level(&self) -> Level {
        self.level
    }

    fn past(&self, v: f64, t: f64) -> bool {
        match self.config.comparator {
            Comparator::Above => v > t,
            Comparator::Below => v < t,
        }
    }

    /// Evaluates one value; NaN keeps the current level.
    pub fn update(&mut self, value: f64) -> Level {
        if value.is_nan() {
            return self.level;
        }
        let c = &self.config;
        let crit_rec = c.critical_recovery.unwrap_or(c.critical);
        let alert = if self.level == Level::Alert {
            self.past(value, crit_rec)
        } else {
            self.past(value, c.critical)
        };
        if alert {
            self.level = Level::Alert;
            return self.level;
        }
        if let Some(w) = c.warning {
            let warn_rec = c.warning_recovery.unwrap_or(w);
            let warn = if self.level >= Level::Warn {
                self.past(value, warn_rec)
            } else {
                self.past(value, w)
            };
            if warn {
                self.level = Level::Warn;
                return self.level;
            }
        }
        self.level = Level::Ok;
        self.level
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_and_validation() {
        let mut t = ThresholdDetector::new(ThresholdConfig {
            comparator: Comparator::Below,
            critical: 10.0,
            critical_recovery: Some(20.0),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(t.update(15.0), Level::Ok);
        assert_eq!(t.update(5.0), Level::Alert);
        assert_eq!(t.update(15.0), Level::Alert);
        assert_eq!(t.update(f64::NAN), Level::Alert);
        assert_eq!(t.update(25.0), Level::Ok);
        let err = ThresholdDetector::new(ThresholdConfig {
            comparator: Comparator::Above,
            critical: 10.0,
            warning: Some(20.0),
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            matches!(
                err,
                ThresholdError::Order {
                    field: "warning",
                    ..
                }
            ),
            "{err}"
        );
        assert!(
            ThresholdDetector::new(ThresholdConfig {
                critical: f64::NAN,
                ..Default::default()
            })
            .is_err()
        );
    }
}
