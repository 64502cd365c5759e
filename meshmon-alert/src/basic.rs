//! `basic`: lagging rolling quantiles, no seasonality.
//!
//! The model keeps the last `window_points` values in a ring buffer (plus a scratch
//! copy, `16·window_points` bytes). Every [`REFRESH_POINTS`] points the window's
//! quartiles are recomputed by selection (`O(n)`); in between the model predicts from
//! the last quartiles, so the quantiles lag the data by up to one refresh on top of the
//! window — Datadog's "lagging rolling quantile". The expected value is the median; the
//! scale is the inter-quartile range turned into a standard deviation (`IQR/1.349` is σ
//! for normal data), floored by a fifth of a slow average of past scales so a briefly
//! flat window does not make every wiggle infinitely surprising. The current point is
//! scored before it enters, so a burst is judged against the past; a new level takes
//! over within `window_points/2` points, and a burst leaves no trace once it has slid
//! out.

use serde::{Deserialize, Serialize};

use crate::detector::Prediction;

/// Points between two recomputations of the window quartiles.
pub const REFRESH_POINTS: u32 = 16;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct BasicModel {
    cap: usize,
    ring: Vec<f64>,
    head: usize,
    scratch: Vec<f64>,
    since_refresh: u32,
    median: f64,
    q25: f64,
    q75: f64,
    long_scale: f64,
}

impl BasicModel {
    pub(crate) fn new(window: usize) -> Self {
        let cap = window.max(4);
        Self {
            cap,
            ring: Vec::with_capacity(cap),
            head: 0,
            scratch: Vec::with_capacity(cap),
            since_refresh: 0,
            median: 0.0,
            q25: 0.0,
            q75: 0.0,
            long_scale: 0.0,
        }
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        (self.ring.capacity() + self.scratch.capacity()) * 8
    }

    pub(crate) fn predict(&self) -> Option<Prediction> {
        if self.ring.is_empty() {
            return None;
        }
        let sigma = (self.q75 - self.q25) / 1.349;
        Some(Prediction {
            expected: self.median,
            scale: sigma.max(0.2 * self.long_scale),
        })
    }

    /// Quartiles of the window by selection (nearest rank).
    fn refresh(&mut self) {
        self.scratch.clear();
        self.scratch.extend_from_slice(&self.ring);
        let n = self.scratch.len();
        let mid = n / 2;
        let (lo, m, hi) = self.scratch.select_nth_unstable_by(mid, f64::total_cmp);
        self.median = *m;
        self.q25 = if lo.is_empty() {
            *m
        } else {
            *lo.select_nth_unstable_by(lo.len() / 2, f64::total_cmp).1
        };
        self.q75 = if hi.is_empty() {
            *m
        } else {
            *hi.select_nth_unstable_by(hi.len() / 2, f64::total_cmp).1
        };
        self.since_refresh = 0;
    }

    pub(crate) fn learn(&mut self, x: f64, scale: f64) {
        if scale.is_finite() {
            self.long_scale += 0.01 * (scale - self.long_scale);
        }
        if self.ring.len() < self.cap {
            self.ring.push(x);
        } else {
            self.ring[self.head] = x;
            self.head = (self.head + 1) % self.cap;
        }
        self.since_refresh += 1;
        // Refresh every point while the window is young, then every REFRESH_POINTS.
        if self.since_refresh >= REFRESH_POINTS || self.ring.len() < 2 * REFRESH_POINTS as usize {
            self.refresh();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quartiles_of_the_window() {
        // A young window refreshes every point: exact quartiles (nearest rank).
        let mut m = BasicModel::new(8);
        for x in [3.0, 7.0, 2.0, 8.0, 4.0, 6.0, 100.0, 0.0] {
            m.learn(x, 1.0);
        }
        // Sorted 0 2 3 4 | 6 7 8 100.
        assert_eq!(m.predict().unwrap().expected, 6.0);
        assert_eq!((m.q25, m.q75), (3.0, 8.0));
    }

    #[test]
    fn a_new_level_takes_over_with_bounded_lag() {
        let cap = 64;
        let mut m = BasicModel::new(cap);
        for _ in 0..200 {
            m.learn(1.0, 1.0);
        }
        let mut changes = Vec::new();
        let mut last = m.predict().unwrap().expected;
        for i in 1..=cap {
            m.learn(100.0, 1.0);
            let e = m.predict().unwrap().expected;
            if e != last {
                changes.push(i);
                last = e;
            }
        }
        assert_eq!(last, 100.0);
        // One switch, after half the window and at most one refresh later.
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert!(
            changes[0] > cap / 2 && changes[0] <= cap / 2 + REFRESH_POINTS as usize,
            "{changes:?}"
        );
    }
}
