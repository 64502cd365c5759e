//! Outliers across a group of series observed at the same timestamp (one pod among
//! many), with the median absolute deviation, like Datadog's `outliers(…, 'MAD',
//! tolerance, pct)`.
//!
//! A value is an outlier when `|x − median| > tolerance · 1.4826 · MAD` **and** it is at
//! least `pct` percent away from the median (so a tight group does not flag
//! meaningless differences). When more than half the group is identical (MAD = 0),
//! the mean absolute deviation (×1.2533) stands in. Groups smaller than
//! `min_group` are never judged.
//!
//! ```
//! use meshmon_alert::outliers::{MadOutliers, Outlier};
//!
//! let pods = [101.0, 99.0, 100.0, 102.0, 98.0, 240.0];
//! let verdict = MadOutliers::default().detect(&pods);
//! let flagged: Vec<usize> = verdict.iter().enumerate().filter(|(_, o)| o.outlier).map(|(i, _)| i).collect();
//! assert_eq!(flagged, [5]);
//! assert!(verdict[5].score > 0.9);
//! ```

use serde::{Deserialize, Serialize};

/// The verdict for one member of the group.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outlier {
    /// Robust distance from the median in units of `tolerance·σ`, mapped to `[0, 1]`
    /// (0.5 on the tolerance edge).
    pub score: f64,
    /// Whether the member is an outlier.
    pub outlier: bool,
}

/// MAD-based outlier detection across a group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MadOutliers {
    /// Distance from the median, in robust standard deviations (Datadog's default 3).
    pub tolerance: f64,
    /// Minimum distance from the median, in percent of the median.
    pub pct: f64,
    /// Minimum group size.
    pub min_group: usize,
}

impl Default for MadOutliers {
    fn default() -> Self {
        Self {
            tolerance: 3.0,
            pct: 20.0,
            min_group: 3,
        }
    }
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        0.5 * (sorted[n / 2 - 1] + sorted[n / 2])
    }
}

impl MadOutliers {
    /// Judges every member of `values` (non-finite members are never outliers and do
    /// not count towards the group).
    pub fn detect(&self, values: &[f64]) -> Vec<Outlier> {
        let mut out = vec![
            Outlier {
                score: 0.0,
                outlier: false
            };
            values.len()
        ];
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.len() < self.min_group.max(1) {
            return out;
        }
        v.sort_by(f64::total_cmp);
        let med = median(&v);
        let mut dev: Vec<f64> = v.iter().map(|x| (x - med).abs()).collect();
        dev.sort_by(f64::total_cmp);
        let mut sigma = 1.4826 * median(&dev);
        if sigma == 0.0 {
            sigma = 1.2533 * dev.iter().sum::<f64>() / dev.len() as f64;
        }
        for (o, &x) in out.iter_mut().zip(values) {
            if !x.is_finite() || sigma == 0.0 {
                continue;
            }
            let z = (x - med).abs() / (self.tolerance * sigma);
            let r = z.powi(4);
            o.score = if r.is_finite() { r / (1.0 + r) } else { 1.0 };
            let pct_ok = med == 0.0 || (x - med).abs() >= self.pct / 100.0 * med.abs();
            o.outlier = z > 1.0 && pct_ok;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_majority_and_small_groups() {
        let d = MadOutliers::default();
        let r = d.detect(&[5.0, 5.0, 5.0, 5.0, 9.0]);
        assert!(r[4].outlier && !r[0].outlier);
        assert!(d.detect(&[1.0, 100.0]).iter().all(|o| !o.outlier));
        assert!(d.detect(&[1.0, 1.0, 1.0]).iter().all(|o| !o.outlier));
        let r = d.detect(&[10.0, f64::NAN, 10.5, 9.5, 10.2, 30.0]);
        assert!(!r[1].outlier && r[5].outlier);
        // 20% rule: 3σ away but only 4% off the median.
        let r = d.detect(&[100.0, 100.1, 99.9, 100.0, 104.0]);
        assert!(!r[4].outlier);
    }
}
