//! `agile`: a seasonal level model that follows level shifts quickly.
//!
//! A Holt–Winters-style additive model in the spirit of a seasonal ARIMA with a short
//! memory: the expected value is `level + season[phase]`, where the level is an
//! exponentially weighted average of the de-seasonalised values with a fast rate
//! (`α = 0.3`) over residuals clipped to `±3σ` (one spike barely moves it), and a new
//! level is accepted as soon as 3 points in a row fall outside the band on the same
//! side (the level jumps to their median). Each seasonal bucket learns at
//! `max(1/n, 0.1)`. The scale σ is `1.2533·E|r|` (the mean absolute
//! residual of normal data times √(π/2)), averaged at rate 0.05 with residuals clipped
//! at 6σ, floored at a fifth of a slow (rate 0.002) average of itself. State: 5 floats
//! plus the seasonal profile (at most `max_season_buckets` buckets, 12 bytes each).

use serde::{Deserialize, Serialize};

use crate::detector::{LevelScale, Phase, Prediction, Revert, SeasonProfile};

pub(crate) const LEVEL_RATE: f64 = 0.3;
pub(crate) const SEASON_RATE: f64 = 0.1;
pub(crate) const SCALE_RATE: f64 = 0.05;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct AgileModel {
    core: LevelScale,
    run: [f64; SHIFT_POINTS],
    run_len: u8,
    side: i8,
    #[serde(default)]
    revert: Revert,
}

/// Out-of-band points in a row (same side) that make a new level.
pub(crate) const SHIFT_POINTS: usize = 3;

impl AgileModel {
    /// A level shift was accepted lately (it may still be reverted).
    pub(crate) fn shifted_recently(&self) -> bool {
        self.revert.active()
    }

    pub(crate) fn predict(&self, season: &SeasonProfile, bucket: Phase) -> Option<Prediction> {
        self.core.predict(0.0, season, bucket)
    }

    pub(crate) fn learn(
        &mut self,
        season: &mut SeasonProfile,
        bucket: Phase,
        x: f64,
        expected: f64,
        sigma: f64,
        bounds: f64,
    ) {
        if self.core.first(x) {
            return;
        }
        let r = x - expected;
        let warm = self.core.warm();
        let clip = if sigma > 0.0 {
            6.0 * sigma
        } else {
            f64::INFINITY
        };
        self.core.learn_scale(r, clip, SCALE_RATE);
        let s_val = season.get(bucket);
        let out = sigma > 0.0 && r.abs() > bounds * sigma;
        if let Some(prior) = self.revert.check(x - s_val, out, bounds * sigma) {
            self.core.level = prior;
            self.run_len = 0;
            return;
        }
        if out {
            let side = if r > 0.0 { 1 } else { -1 };
            if side != self.side {
                self.side = side;
                self.run_len = 0;
            }
            self.run[usize::from(self.run_len)] = x - s_val;
            self.run_len += 1;
            if usize::from(self.run_len) == SHIFT_POINTS {
                let mut v = self.run;
                v.sort_by(f64::total_cmp);
                self.revert.remember(self.core.level);
                self.core.level = v[SHIFT_POINTS / 2];
                self.run_len = 0;
                return;
            }
        } else {
            self.run_len = 0;
        }
        let c = if sigma > 0.0 {
            3.0 * sigma
        } else {
            f64::INFINITY
        };
        self.core.level += warm.max(LEVEL_RATE) * (x - s_val - self.core.level).clamp(-c, c);
        if season.is_active() {
            season.observe(bucket, x, SEASON_RATE, c);
        }
    }
}
