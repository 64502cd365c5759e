//! `robust`: an online seasonal-trend decomposition, stable through anomalies.
//!
//! The series is decomposed as `level + trend + season[phase] + remainder`, updated
//! point by point like a robust (Huber) Holt–Winters / online STL: every update uses the
//! remainder clipped to `±2σ`, so a burst moves the level by at most `2σ·α` per point
//! (`α = 0.05`) and leaves the scale untouched — past bursts do not poison the baseline.
//! The trend is damped (`φ = 0.98`). A new level is accepted deliberately: after
//! `shift_points` out-of-band points on the same side (votes decay by one per in-band
//! point), the level jumps to the median of those points and the trend resets. σ is
//! `1.2533·E|r|` over clipped residuals (rate 0.02), floored at a fifth of a slow
//! average of itself. State: 6 floats, a 16-slot vote buffer and the seasonal profile.

use serde::{Deserialize, Serialize};

use crate::detector::{LevelScale, Phase, Prediction, Revert, SeasonProfile};

const LEVEL_RATE: f64 = 0.05;
const TREND_RATE: f64 = 0.01;
const DAMPING: f64 = 0.98;
const SEASON_RATE: f64 = 0.05;
const SCALE_RATE: f64 = 0.02;
const CLIP: f64 = 2.0;
/// Out-of-band points (same side) that make a new level.
pub(crate) const SHIFT_POINTS: usize = 16;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct RobustModel {
    core: LevelScale,
    trend: f64,
    votes: u32,
    side: i8,
    /// Ring of the latest out-of-band de-seasonalised values.
    pending: [f64; SHIFT_POINTS],
    pending_len: u8,
    pending_head: u8,
    #[serde(default)]
    revert: Revert,
}

impl RobustModel {
    /// A level shift was accepted lately (it may still be reverted).
    pub(crate) fn shifted_recently(&self) -> bool {
        self.revert.active()
    }

    pub(crate) fn predict(&self, season: &SeasonProfile, bucket: Phase) -> Option<Prediction> {
        self.core.predict(self.trend, season, bucket)
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
        let s_val = season.get(bucket);
        // Level-shift acceptance.
        let out = sigma > 0.0 && r.abs() > bounds * sigma;
        if let Some(prior) = self.revert.check(x - s_val, out, bounds * sigma) {
            self.core.level = prior;
            self.trend = 0.0;
            self.votes = 0;
            self.pending_len = 0;
            return;
        }
        if out {
            let side = if r > 0.0 { 1 } else { -1 };
            if side != self.side {
                self.side = side;
                self.votes = 0;
                self.pending_len = 0;
            }
            self.votes += 1;
            self.pending[usize::from(self.pending_head)] = x - s_val;
            self.pending_head = (self.pending_head + 1) % SHIFT_POINTS as u8;
            self.pending_len = (self.pending_len + 1).min(SHIFT_POINTS as u8);
            if self.votes as usize >= SHIFT_POINTS {
                // The ring is full (every vote pushed a value): its median is the level.
                let mut p = self.pending;
                p.sort_by(f64::total_cmp);
                self.revert.remember(self.core.level);
                self.core.level = p[SHIFT_POINTS / 2];
                self.trend = 0.0;
                self.votes = 0;
                self.pending_len = 0;
                return;
            }
        } else if self.votes > 0 {
            self.votes -= 1;
            if self.votes == 0 {
                self.pending_len = 0;
            }
        }
        let c = if sigma > 0.0 {
            CLIP * sigma
        } else {
            f64::INFINITY
        };
        // Out-of-band points (votes pending) leave level and trend where they are: the
        // prediction stays put through an anomaly, and the votes decide whether it is
        // a new level. The seasonal profile still learns from them (clipped), so a
        // phase it got wrong is corrected over the following periods.
        let rc = if out && self.votes > 0 {
            0.0
        } else {
            r.clamp(-c, c)
        };
        let rate = warm.max(LEVEL_RATE);
        let prev = self.core.level;
        self.core.level = prev + self.trend + rate * rc;
        if self.core.n > 2 {
            self.trend = DAMPING * self.trend + TREND_RATE * (self.core.level - prev - self.trend);
        }
        if season.is_active() {
            season.observe(bucket, x, SEASON_RATE, c);
        }
        self.core.learn_scale(r, c, SCALE_RATE);
    }
}
