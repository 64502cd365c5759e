//! `basic`: lagging rolling quantiles, no seasonality.
//!
//! The model keeps the last `window_points` values (a ring buffer plus the same values
//! kept sorted, `16·window_points` bytes). The expected value is the window median; the
//! scale is the inter-quartile range turned into a standard deviation (`IQR/1.349` is
//! σ for normal data), floored by a fifth of a slow average of past scales so a briefly flat window does not
//! make every wiggle infinitely surprising. The window lags: the current point is scored
//! before it enters, so a burst is judged against the past, adapts within
//! `window_points/2` points to a new level, and leaves no trace once it has slid out.

use serde::{Deserialize, Serialize};

use crate::detector::Prediction;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct BasicModel {
    cap: usize,
    ring: Vec<f64>,
    head: usize,
    sorted: Vec<f64>,
    long_scale: f64,
}

impl BasicModel {
    pub(crate) fn new(window: usize) -> Self {
        let cap = window.max(4);
        Self {
            cap,
            ring: Vec::with_capacity(cap),
            head: 0,
            sorted: Vec::with_capacity(cap),
            long_scale: 0.0,
        }
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        (self.ring.capacity() + self.sorted.capacity()) * 8
    }

    fn quantile(&self, q: f64) -> f64 {
        let n = self.sorted.len();
        let pos = q * (n - 1) as f64;
        let lo = pos.floor() as usize;
        let hi = (lo + 1).min(n - 1);
        let f = pos - lo as f64;
        self.sorted[lo] * (1.0 - f) + self.sorted[hi] * f
    }

    pub(crate) fn predict(&self) -> Option<Prediction> {
        if self.sorted.len() < 2 {
            return self.sorted.first().map(|&v| Prediction {
                expected: v,
                scale: 0.0,
            });
        }
        let median = self.quantile(0.5);
        let iqr = self.quantile(0.75) - self.quantile(0.25);
        let sigma = iqr / 1.349;
        Some(Prediction {
            expected: median,
            scale: sigma.max(0.2 * self.long_scale),
        })
    }

    pub(crate) fn learn(&mut self, x: f64, scale: f64) {
        if scale.is_finite() {
            self.long_scale += 0.01 * (scale - self.long_scale);
        }
        if self.ring.len() < self.cap {
            self.ring.push(x);
            let at = self.sorted.partition_point(|&v| v < x);
            self.sorted.insert(at, x);
            return;
        }
        let old = std::mem::replace(&mut self.ring[self.head], x);
        self.head = (self.head + 1) % self.cap;
        // Remove `old` and insert `x` with one shift of the elements in between.
        let i = self.sorted.partition_point(|&v| v < old).min(self.cap - 1);
        let j = self.sorted.partition_point(|&v| v < x);
        if j > i {
            self.sorted.copy_within(i + 1..j, i);
            self.sorted[j - 1] = x;
        } else {
            self.sorted.copy_within(j..i, j + 1);
            self.sorted[j] = x;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_window_stays_sorted_and_exact() {
        let mut m = BasicModel::new(8);
        let mut state = 7u64;
        let mut all = Vec::new();
        for _ in 0..500 {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
            let x = ((state >> 40) % 10) as f64;
            m.learn(x, 1.0);
            all.push(x);
            let mut want: Vec<f64> = all.iter().rev().take(8).copied().collect();
            want.sort_by(f64::total_cmp);
            assert_eq!(m.sorted, want);
        }
    }
}
