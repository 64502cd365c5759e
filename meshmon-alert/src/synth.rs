//! A seeded generator of labelled, mesh-shaped series, and the episode scorer used to
//! measure monitors against it.
//!
//! Each series is a week or more of one-minute points of one of four kinds — a
//! request rate, a quiet service's request rate (counts near zero), an error ratio,
//! a p95 latency — with daily and weekly cycles, noise that scales with traffic
//! (Poisson counts with over-dispersion, binomial error counts, latency noise
//! shrinking with request volume), and events:
//!
//! - **incidents** (labelled): an outage or surge of the rate, an error burst, a
//!   latency spike, each lasting 20–120 minutes and clearly out of proportion
//!   (rates ×0.05–0.4 or ×2.5–5, quiet services ×6–15, error ratio ×8–30, latency
//!   ×2–5);
//! - **deploys** (not incidents): a permanent level change of 10–20 %, which the
//!   monitor must take as the new normal;
//! - **blips** (not incidents): one or two points ×2–4, which must not page;
//! - a **burst during warm-up** (×3 for ten points from the sixth), which must not
//!   page nor poison what follows.
//!
//! [`score_episodes`] turns a state sequence into ALERT episodes and matches them
//! with the incidents: an episode is a true positive when it overlaps an incident
//! (extended by `grace` after its end), an incident is detected when an episode
//! starts inside it.
//!
//! ```
//! use meshmon_alert::synth::{generate, SynthConfig};
//!
//! let mut cfg = SynthConfig::default();
//! cfg.series = 4;
//! let set = generate(7, &cfg);
//! assert_eq!(set.len(), 4);
//! assert!(set.iter().all(|s| s.values.len() == 8 * 1440));
//! assert_eq!(set, generate(7, &cfg));
//! ```

use std::time::Duration;

use meshmon_core::Timestamp;
use serde::{Deserialize, Serialize};

use crate::monitor::MonitorState;

/// What a generated series measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Requests per minute of a busy service (tens to thousands).
    RequestRate,
    /// Requests per minute of a quiet service (0.3–3: mostly 0, 1, 2).
    QuietRate,
    /// Errors / requests.
    ErrorRatio,
    /// p95 latency in milliseconds.
    LatencyP95,
}

/// Generator settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SynthConfig {
    /// Days per series.
    pub days: u32,
    /// Series per seed.
    pub series: usize,
}

impl Default for SynthConfig {
    fn default() -> Self {
        Self {
            days: 8,
            series: 32,
        }
    }
}

/// A labelled series.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SynthSeries {
    /// `<kind>-<index>`.
    pub name: String,
    /// What it measures.
    pub kind: Kind,
    /// One-minute timestamps (the first is a Monday 00:00 UTC).
    pub timestamps: Vec<Timestamp>,
    /// Values.
    pub values: Vec<f64>,
    /// Labelled incidents, `[start, end)`.
    pub incidents: Vec<(Timestamp, Timestamp)>,
    /// Deploy-style level changes (not incidents).
    pub deploys: Vec<Timestamp>,
}

/// splitmix64: small, seedable, good enough for test data.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
    fn index(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize % n.max(1)
    }
    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let u = self.unit().max(1e-300);
        let v = self.unit();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
    /// Poisson(`lambda`): Knuth below 30, normal approximation above.
    fn poisson(&mut self, lambda: f64) -> f64 {
        if lambda <= 0.0 {
            return 0.0;
        }
        if lambda < 30.0 {
            let l = (-lambda).exp();
            let mut k = 0.0;
            let mut p = 1.0;
            loop {
                p *= self.unit();
                if p <= l {
                    return k;
                }
                k += 1.0;
            }
        }
        (lambda + lambda.sqrt() * self.normal()).round().max(0.0)
    }
    /// Binomial(`n`, `p`) by its normal / Poisson approximations.
    fn binomial(&mut self, n: f64, p: f64) -> f64 {
        let mean = n * p;
        if mean < 30.0 {
            return self.poisson(mean).min(n);
        }
        (mean + (mean * (1.0 - p)).sqrt() * self.normal())
            .round()
            .clamp(0.0, n)
    }
}

/// 2024-01-01 00:00:00 UTC, a Monday.
const START_SECS: i64 = 1_704_067_200;
const STEP_SECS: i64 = 60;

#[derive(Clone, Copy)]
struct Effect {
    start: usize,
    end: usize,
    factor: f64,
}

/// Generates `config.series` labelled series from `seed` (the same seed always gives
/// the same set).
pub fn generate(seed: u64, config: &SynthConfig) -> Vec<SynthSeries> {
    let mut rng = Rng(seed ^ 0x6d65_7368_6d6f_6e21);
    let kinds = [
        Kind::RequestRate,
        Kind::QuietRate,
        Kind::ErrorRatio,
        Kind::LatencyP95,
    ];
    (0..config.series)
        .map(|i| {
            let kind = kinds[i % kinds.len()];
            let mut r = Rng(rng.next());
            one(&mut r, kind, i, config.days.max(1))
        })
        .collect()
}

fn one(rng: &mut Rng, kind: Kind, index: usize, days: u32) -> SynthSeries {
    let n = days as usize * 1440;
    // Traffic shape.
    let base = match kind {
        Kind::RequestRate => 10f64.powf(rng.range(1.5, 3.3)),
        Kind::QuietRate => rng.range(0.3, 3.0),
        Kind::ErrorRatio | Kind::LatencyP95 => 10f64.powf(rng.range(1.3, 2.7)),
    };
    let daily_amp = rng.range(0.3, 0.7);
    let peak_hour = rng.range(12.0, 17.0);
    let weekend = if rng.unit() < 0.5 {
        rng.range(0.5, 0.8)
    } else {
        1.0
    };
    let overdispersion = rng.range(0.02, 0.06);
    let error_p = rng.range(0.002, 0.02);
    let latency_ms = rng.range(20.0, 300.0);
    let latency_load = rng.range(0.0, 0.3);
    let latency_noise = rng.range(0.03, 0.08);

    // Events, at least 6 hours apart, none in the first day.
    let mut taken: Vec<(usize, usize)> = vec![(0, 1440)];
    let mut place = |rng: &mut Rng, len: usize| -> Option<usize> {
        for _ in 0..50 {
            let s = 1440 + rng.index(n.saturating_sub(1440 + len + 60).max(1));
            let e = s + len;
            if taken.iter().all(|&(a, b)| e + 360 <= a || s >= b + 360) {
                taken.push((s, e));
                return Some(s);
            }
        }
        None
    };
    let mut incidents = Vec::new();
    let count = [0usize, 1, 1, 2, 2][rng.index(5)];
    for _ in 0..count {
        let len = 20 + rng.index(101);
        let factor = match kind {
            Kind::RequestRate => {
                if rng.unit() < 0.5 {
                    rng.range(0.05, 0.4)
                } else {
                    rng.range(2.5, 5.0)
                }
            }
            Kind::QuietRate => rng.range(6.0, 15.0),
            Kind::ErrorRatio => rng.range(8.0, 30.0),
            Kind::LatencyP95 => rng.range(2.0, 5.0),
        };
        if let Some(s) = place(rng, len) {
            incidents.push(Effect {
                start: s,
                end: s + len,
                factor,
            });
        }
    }
    let mut deploys = Vec::new();
    for _ in 0..rng.index(3) {
        let up = rng.unit() < 0.5;
        let m = rng.range(1.10, 1.20);
        if let Some(s) = place(rng, 1) {
            deploys.push(Effect {
                start: s,
                end: n,
                factor: if up { m } else { 1.0 / m },
            });
        }
    }
    let mut blips = Vec::new();
    for _ in 0..(3 + rng.index(6)) {
        let len = 1 + rng.index(2);
        if let Some(s) = place(rng, len) {
            blips.push(Effect {
                start: s,
                end: s + len,
                factor: rng.range(2.0, 4.0),
            });
        }
    }
    let warmup = Effect {
        start: 5,
        end: 15,
        factor: 3.0,
    };

    let factor_at = |i: usize, list: &[Effect]| -> f64 {
        list.iter()
            .filter(|e| (e.start..e.end).contains(&i))
            .map(|e| e.factor)
            .product()
    };
    let mut timestamps = Vec::with_capacity(n);
    let mut values = Vec::with_capacity(n);
    for i in 0..n {
        let secs = i as i64 * STEP_SECS;
        let hour = (secs % 86_400) as f64 / 3600.0;
        let day = secs / 86_400; // 0 = Monday
        let diurnal =
            1.0 + daily_amp * (std::f64::consts::TAU * (hour - peak_hour + 6.0) / 24.0).sin();
        // Weekend traffic level, reached over the night (00:00–06:00) so the change
        // rides the daily trough instead of stepping at midnight.
        let ramp = smoothstep(hour / 6.0);
        let week = match day % 7 {
            5 => 1.0 + (weekend - 1.0) * ramp,
            6 => weekend,
            0 if day > 0 => weekend + (1.0 - weekend) * ramp,
            _ => 1.0,
        };
        let shift = factor_at(i, &deploys);
        let event = factor_at(i, &incidents) * factor_at(i, &blips) * factor_at(i, &[warmup]);
        let traffic = base * diurnal * week;
        let od = (overdispersion * rng.normal()).exp();
        let v = match kind {
            Kind::RequestRate | Kind::QuietRate => rng.poisson(traffic * shift * event * od),
            Kind::ErrorRatio => {
                let req = rng.poisson(traffic * od).max(1.0);
                let p = (error_p * shift * event * (0.3 * rng.normal()).exp()).min(0.6);
                rng.binomial(req, p) / req
            }
            Kind::LatencyP95 => {
                let load = 1.0 + latency_load * (diurnal * week - 1.0);
                let sigma = (latency_noise * (100.0 / traffic).sqrt()).min(0.5);
                latency_ms * load * shift * event * (sigma * rng.normal()).exp()
            }
        };
        timestamps.push(Timestamp::from_secs(START_SECS + secs));
        values.push(v);
    }
    let ts = |i: usize| Timestamp::from_secs(START_SECS + i as i64 * STEP_SECS);
    let name = format!(
        "{}-{index}",
        match kind {
            Kind::RequestRate => "requests",
            Kind::QuietRate => "quiet_requests",
            Kind::ErrorRatio => "error_ratio",
            Kind::LatencyP95 => "latency_p95",
        }
    );
    let mut incidents: Vec<_> = incidents.iter().map(|e| (ts(e.start), ts(e.end))).collect();
    incidents.sort();
    let mut deploys: Vec<_> = deploys.iter().map(|e| ts(e.start)).collect();
    deploys.sort();
    SynthSeries {
        name,
        kind,
        timestamps,
        values,
        incidents,
        deploys,
    }
}

fn smoothstep(x: f64) -> f64 {
    let x = x.clamp(0.0, 1.0);
    x * x * (3.0 - 2.0 * x)
}

/// Episode counts of one or more series.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpisodeScore {
    /// ALERT episodes.
    pub episodes: usize,
    /// Episodes that are the first to overlap an incident (extended by the grace
    /// period); a second episode on the same incident counts as false.
    pub true_episodes: usize,
    /// Labelled incidents.
    pub incidents: usize,
    /// Incidents in which an ALERT episode started.
    pub detected: usize,
}

impl EpisodeScore {
    /// `true_episodes / episodes` (1 when there are none).
    pub fn precision(&self) -> f64 {
        if self.episodes == 0 {
            1.0
        } else {
            self.true_episodes as f64 / self.episodes as f64
        }
    }

    /// `detected / incidents` (1 when there are none).
    pub fn recall(&self) -> f64 {
        if self.incidents == 0 {
            1.0
        } else {
            self.detected as f64 / self.incidents as f64
        }
    }

    /// Adds another score's counts.
    pub fn add(&mut self, o: EpisodeScore) {
        self.episodes += o.episodes;
        self.true_episodes += o.true_episodes;
        self.incidents += o.incidents;
        self.detected += o.detected;
    }
}

/// Scores the per-point `states` of `series` (same length as its timestamps): ALERT
/// episodes are maximal runs of ALERT; an episode is true when it is the first to
/// overlap an incident `[start, end + grace)` (a second page for the same incident is
/// false); an incident is detected when an episode starts in `[start, end)`.
pub fn score_episodes(
    series: &SynthSeries,
    states: &[MonitorState],
    grace: Duration,
) -> EpisodeScore {
    let mut episodes: Vec<(Timestamp, Timestamp)> = Vec::new();
    let mut open: Option<Timestamp> = None;
    for (t, s) in series.timestamps.iter().zip(states) {
        match (open, *s == MonitorState::Alert) {
            (None, true) => open = Some(*t),
            (Some(start), false) => {
                episodes.push((start, *t));
                open = None;
            }
            _ => {}
        }
    }
    if let (Some(start), Some(last)) = (open, series.timestamps.last()) {
        episodes.push((start, *last));
    }
    let mut claimed = vec![false; series.incidents.len()];
    let mut true_episodes = 0;
    for &(a, b) in &episodes {
        let hit = series
            .incidents
            .iter()
            .position(|&(s, e)| a < e.saturating_add(grace) && b >= s);
        if let Some(i) = hit
            && !claimed[i]
        {
            claimed[i] = true;
            true_episodes += 1;
        }
    }
    let detected = series
        .incidents
        .iter()
        .filter(|&&(s, e)| episodes.iter().any(|&(a, _)| a >= s && a < e))
        .count();
    EpisodeScore {
        episodes: episodes.len(),
        true_episodes,
        incidents: series.incidents.len(),
        detected,
    }
}
