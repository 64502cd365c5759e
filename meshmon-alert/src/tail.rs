//! Tail probability of a deviation against the series' own history.
//!
//! A decaying histogram of past deviations on a log scale (two bins per octave over 32
//! octaves around the first non-zero deviation, 64 bins, a Fenwick tree so an update
//! and a tail query are `O(log 64)`). Old observations fade with a half-life of
//! `half_life` points (weights grow instead of decaying, renormalised when large, so
//! an update touches 6 bins, not 64). The tail probability of `d` is the weighted
//! share of past deviations above `d`'s bin plus half of its bin; beyond the largest
//! bin ever filled it keeps shrinking by half per bin so bigger is always more
//! surprising.

use serde::{Deserialize, Serialize};

const BINS: usize = 64;
const PER_OCTAVE: f64 = 2.0;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct TailHistogram {
    /// Fenwick tree over bin weights.
    tree: Vec<f64>,
    total: f64,
    weight: f64,
    growth: f64,
    reference: f64,
    max_bin: usize,
}

impl TailHistogram {
    pub(crate) fn new(half_life: f64) -> Self {
        Self {
            tree: Vec::new(),
            total: 0.0,
            weight: 1.0,
            growth: 2f64.powf(1.0 / half_life.max(1.0)),
            reference: 0.0,
            max_bin: 0,
        }
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.tree.capacity() * 8
    }

    fn bin(&self, d: f64) -> usize {
        if self.reference <= 0.0 || d <= 0.0 {
            return 0;
        }
        let b = (d / self.reference).log2() * PER_OCTAVE + (BINS / 2) as f64;
        b.clamp(1.0, (BINS - 1) as f64) as usize
    }

    /// Weighted count of bins `0..=b`.
    fn prefix(&self, b: usize) -> f64 {
        let mut i = b + 1;
        let mut s = 0.0;
        while i > 0 {
            s += self.tree[i - 1];
            i &= i - 1;
        }
        s
    }

    /// Tail probability of deviation `d` (1 when there is no history).
    pub(crate) fn tail(&self, d: f64) -> f64 {
        if self.total <= 0.0 {
            return 1.0;
        }
        let b = self.bin(d);
        if b > self.max_bin {
            let beyond = (b - self.max_bin) as f64;
            return 0.5 * self.weight / self.total * 0.5f64.powf(beyond - 1.0);
        }
        let below = if b > 0 { self.prefix(b - 1) } else { 0.0 };
        let upto = self.prefix(b);
        ((self.total - upto) + 0.5 * (upto - below)) / self.total
    }

    pub(crate) fn add(&mut self, d: f64) {
        if self.tree.is_empty() {
            self.tree = vec![0.0; BINS];
        }
        if self.reference <= 0.0 && d > 0.0 {
            self.reference = d;
        }
        let b = self.bin(d);
        self.max_bin = self.max_bin.max(b);
        self.weight *= self.growth;
        if self.weight > 1e100 {
            for t in &mut self.tree {
                *t *= 1e-100;
            }
            self.total *= 1e-100;
            self.weight *= 1e-100;
        }
        let mut i = b + 1;
        while i <= BINS {
            self.tree[i - 1] += self.weight;
            i += i & i.wrapping_neg();
        }
        self.total += self.weight;
    }
}
