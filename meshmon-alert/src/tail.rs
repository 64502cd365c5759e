//! Tail probability of a deviation against the series' own history.
//!
//! A decaying histogram of past deviations on a log scale (two bins per octave — split
//! at √2, read straight from the float bits — over 32
//! octaves around the first non-zero deviation, 64 bins; an update is `O(1)` and a
//! tail query sums the few filled bins above). Old observations fade with a half-life of
//! `half_life` points (weights grow instead of decaying, renormalised when large, so
//! an update touches one bin). The tail probability of `d` is the weighted
//! share of past deviations above `d`'s bin plus half of its bin; beyond the largest
//! bin ever filled it keeps shrinking by half per bin so bigger is always more
//! surprising.

use serde::{Deserialize, Serialize};

const BINS: usize = 64;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct TailHistogram {
    /// Bin weights.
    bins: Vec<f64>,
    total: f64,
    weight: f64,
    growth: f64,
    reference: f64,
    inv_reference: f64,
    max_bin: usize,
}

impl TailHistogram {
    pub(crate) fn new(half_life: f64) -> Self {
        Self {
            bins: Vec::new(),
            total: 0.0,
            weight: 1.0,
            growth: 2f64.powf(1.0 / half_life.max(1.0)),
            reference: 0.0,
            inv_reference: 0.0,
            max_bin: 0,
        }
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.bins.capacity() * 8
    }

    fn bin(&self, d: f64) -> usize {
        if self.reference <= 0.0 || d <= 0.0 {
            return 0;
        }
        // Two bins per octave straight from the float's bits: the exponent, and whether
        // the mantissa is at least √2 (an integer compare, no logarithm).
        const SQRT2_MANTISSA: u64 = 1_865_452_045_155_277; // (√2 − 1)·2⁵²
        let bits = (d * self.inv_reference).to_bits();
        let exp = ((bits >> 52) & 0x7ff) as i64 - 1023;
        let half = i64::from(bits & ((1 << 52) - 1) >= SQRT2_MANTISSA);
        (exp * 2 + half + (BINS / 2) as i64).clamp(1, (BINS - 1) as i64) as usize
    }

    /// Tail probability of deviation `d` (1 when there is no history).
    pub(crate) fn tail(&self, d: f64) -> f64 {
        self.tail_at(self.bin(d))
    }

    fn tail_at(&self, b: usize) -> f64 {
        if self.total <= 0.0 {
            return 1.0;
        }
        if b > self.max_bin {
            let beyond = b - self.max_bin;
            return 0.5 * self.weight / self.total * 0.5f64.powi(beyond as i32 - 1);
        }
        // Bins above `b` up to the highest filled one (usually a handful).
        let above: f64 = self.bins[b + 1..=self.max_bin].iter().sum();
        (above + 0.5 * self.bins[b]) / self.total
    }

    pub(crate) fn add(&mut self, d: f64) {
        if self.bins.is_empty() {
            self.bins = vec![0.0; BINS];
        }
        // The first deviation whose reciprocal is finite (not a subnormal) anchors the
        // scale, so the state stays finite (and serialisable).
        if self.reference <= 0.0 && d.is_normal() && (1.0 / d).is_finite() {
            self.reference = d;
            self.inv_reference = 1.0 / d;
        }
        let b = self.bin(d);
        self.add_bin(b);
    }

    /// The tail probability of `d` against the history so far, then `d` joins it (one
    /// bin computation for both).
    pub(crate) fn observe(&mut self, d: f64) -> f64 {
        if self.reference <= 0.0 || self.bins.is_empty() {
            let p = self.tail(d);
            self.add(d);
            return p;
        }
        let b = self.bin(d);
        let p = self.tail_at(b);
        self.add_bin(b);
        p
    }

    fn add_bin(&mut self, b: usize) {
        self.max_bin = self.max_bin.max(b);
        self.weight *= self.growth;
        if self.weight > 1e100 {
            for t in &mut self.bins {
                *t *= 1e-100;
            }
            self.total *= 1e-100;
            self.weight *= 1e-100;
        }
        self.bins[b] += self.weight;
        self.total += self.weight;
    }
}

/// `log2(x)` for positive finite `x`, monotonic, within 1.1e-3 (exponent bits plus a
/// cubic on the mantissa that is exact at both ends of the octave).
pub(crate) fn fast_log2(x: f64) -> f64 {
    let bits = x.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let m = f64::from_bits((bits & ((1 << 52) - 1)) | (1023u64 << 52)) - 1.0;
    // Least-squares cubic with p(0) = 0, p(1) = 1; increasing on [0, 1].
    const A: f64 = 1.420_864_537_430_136_5;
    const B: f64 = -0.577_250_650_806_566;
    const C: f64 = 1.0 - A - B;
    exp as f64 + m * (A + m * (B + m * C))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_log2_is_close_and_monotonic() {
        let mut prev = f64::NEG_INFINITY;
        for i in 1..20_000 {
            let x = i as f64 * 0.37e-3;
            let l = fast_log2(x);
            assert!((l - x.log2()).abs() < 1.1e-3, "{x}");
            assert!(l > prev);
            prev = l;
        }
        assert_eq!(fast_log2(1e-300).round(), (1e-300f64).log2().round());
    }

    #[test]
    fn subnormal_deviations_keep_the_state_finite() {
        let mut h = TailHistogram::new(100.0);
        for d in [6.8e-318, 7.1e-311, 1e-300, 1.0] {
            h.add(d);
            assert!(h.inv_reference.is_finite() && h.tail(d).is_finite());
        }
        assert_eq!(h.reference, 1e-300);
    }

    #[test]
    fn tail_ranks_bigger_deviations_rarer() {
        let mut h = TailHistogram::new(1000.0);
        assert_eq!(h.tail(1.0), 1.0);
        for i in 0..1000 {
            h.add(1.0 + (i % 10) as f64 * 0.1);
        }
        assert!(h.tail(0.5) > 0.9);
        assert!(h.tail(1.5) < h.tail(1.0));
        assert!(h.tail(10.0) < 0.01);
        assert!(h.tail(1000.0) < h.tail(10.0));
    }
}
