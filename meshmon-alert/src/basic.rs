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
    /// The last in-band expectation and σ.
    #[serde(default)]
    last_good: Option<(f64, f64)>,
    /// The band before the latest excursion, remembered for `left` points.
    #[serde(default)]
    before: Option<(f64, f64)>,
    #[serde(default)]
    left: u32,
    /// Points back inside the pre-run band (while out of the current one) in a row.
    #[serde(default)]
    back: u8,
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
            last_good: None,
            before: None,
            left: 0,
            back: 0,
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

    /// An excursion long enough to move the quartiles (an outage, a burst) ends when
    /// the series is back at the level from before it: after 3 points in a row outside
    /// the current band but inside the old one, the window's values outside the old
    /// band are replaced by the old expectation and the quartiles recomputed, so the
    /// return is not a second level shift (and a second page).
    fn track_excursion(&mut self, x: f64, expected: f64, scale: f64, bounds: f64) {
        if !(scale > 0.0 && scale.is_finite()) {
            return;
        }
        self.left = self.left.saturating_sub(1);
        if self.left == 0 {
            self.before = None;
        }
        let out = (x - expected).abs() > bounds * scale;
        if !out {
            self.back = 0;
            if self.before.is_none() {
                self.last_good = Some((expected, scale));
            }
            return;
        }
        if self.before.is_none() {
            // An excursion starts: remember the band from before it.
            self.before = self.last_good;
            self.left = crate::detector::REVERT_MEMORY;
        }
        let Some((old, old_scale)) = self.before else {
            return;
        };
        // Back at the old level while the band has moved away from it (the window
        // followed the excursion).
        if (x - old).abs() <= bounds * old_scale && (expected - old).abs() > bounds * old_scale {
            self.back += 1;
            if self.back >= 3 {
                for v in &mut self.ring {
                    if (*v - old).abs() > bounds * old_scale {
                        *v = old;
                    }
                }
                self.refresh();
                self.back = 0;
                self.before = None;
                self.left = 0;
            }
        } else {
            self.back = 0;
        }
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

    /// Learns `x` (judged against `expected ± bounds·scale`).
    pub(crate) fn learn(&mut self, x: f64, expected: f64, scale: f64, bounds: f64) {
        self.track_excursion(x, expected, scale, bounds);
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
    fn the_end_of_a_long_excursion_restores_the_old_level() {
        // 300 points around 100 (σ ≈ 1), then 100 points at 300: the window follows
        // the excursion. When the series comes back to 100, three points restore the
        // old expectation at once instead of waiting for half a window.
        let mut m = BasicModel::new(128);
        let wiggle = |i: usize| (i % 5) as f64 - 2.0;
        let feed = |m: &mut BasicModel, x: f64| {
            let p = m
                .predict()
                .map_or((x, 1.0), |p| (p.expected, p.scale.max(1e-9)));
            m.learn(x, p.0, p.1, 3.0);
        };
        for i in 0..300 {
            feed(&mut m, 100.0 + wiggle(i));
        }
        for i in 0..100 {
            feed(&mut m, 300.0 + wiggle(i));
        }
        assert!(m.predict().unwrap().expected > 250.0);
        for i in 0..3 {
            feed(&mut m, 100.0 + wiggle(i));
        }
        let e = m.predict().unwrap().expected;
        assert!((e - 100.0).abs() < 5.0, "expected {e}");
    }

    #[test]
    fn quartiles_of_the_window() {
        // A young window refreshes every point: exact quartiles (nearest rank).
        let mut m = BasicModel::new(8);
        for x in [3.0, 7.0, 2.0, 8.0, 4.0, 6.0, 100.0, 0.0] {
            m.learn(x, x, 1.0, 3.0);
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
            m.learn(1.0, 1.0, 1.0, 3.0);
        }
        let mut changes = Vec::new();
        let mut last = m.predict().unwrap().expected;
        for i in 1..=cap {
            m.learn(100.0, 100.0, 1.0, 3.0);
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
