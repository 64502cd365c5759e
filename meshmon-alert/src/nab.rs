//! The [Numenta Anomaly Benchmark](https://github.com/numenta/NAB) scorer, in Rust.
//!
//! This follows NAB v1.1's `nab/sweeper.py` (window scoring) and `nab/optimizer.py` /
//! `nab/runner.py` (threshold optimisation and normalisation) exactly, as described in
//! Lavin & Ahmad, *Evaluating Real-time Anomaly Detection Algorithms — the Numenta
//! Anomaly Benchmark* (2015):
//!
//! - The first `min(floor(0.15·n), 0.15·5000)` rows of every file are the probationary
//!   period and are not scored.
//! - Inside a labelled anomaly window, a detection at relative position
//!   `p = -(right − i + 1) / width` earns `σ̃(p)·tpWeight / σ̃(−1)`, where
//!   `σ̃(x) = 2/(1+e^{5x}) − 1` is the scaled sigmoid (−1 beyond `x ≥ 3`); only the
//!   best (earliest) detection of a window counts. An undetected window costs
//!   `−fnWeight`.
//! - Outside windows, every detection costs `σ̃(|i − prevRight| / (prevWidth − 1))·fpWeight`
//!   relative to the closest preceding window, or `−fpWeight` when no window precedes it.
//! - One threshold per profile is chosen over the **whole corpus**: NAB's optimiser
//!   sweeps every distinct anomaly score (highest first), and so does [`optimize`] —
//!   exact, not a grid search.
//! - The normalised score is `100·(S − S_null)/(S_perfect − S_null)` where `S_null` is
//!   the null detector's score (it never detects: `−fnWeight` per scorable window) and
//!   `S_perfect = tpWeight · #windows`.
//!
//! Parsing helpers read NAB's own formats from bytes: data CSVs (`timestamp,value`),
//! `labels/combined_windows.json` and `config/profiles.json`.
//!
//! ```
//! use meshmon_alert::nab::{self, Profile, ScoredFile};
//! use meshmon_core::Timestamp;
//!
//! let ts: Vec<Timestamp> = (0..1000).map(|i| Timestamp::from_secs(i * 300)).collect();
//! let windows = vec![(ts[600], ts[700])];
//! // A detector that fires exactly at the start of the window is perfect.
//! let mut scores = vec![0.0; 1000];
//! scores[600] = 1.0;
//! let file = ScoredFile { name: "a.csv", timestamps: &ts, scores: &scores, windows: &windows };
//! let r = nab::optimize(&[file], &Profile::standard(), nab::PROBATION_PERCENT);
//! assert!((r.normalized - 100.0).abs() < 1e-9);
//! ```

use std::collections::BTreeMap;

use meshmon_core::Timestamp;

/// NAB's probationary fraction of each file (`Runner.probationaryPercent`).
pub const PROBATION_PERCENT: f64 = 0.15;

/// Why NAB input could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NabError {
    /// A CSV row is malformed.
    #[error("line {line}: {reason}")]
    Csv {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A timestamp could not be parsed.
    #[error("line {line}: bad timestamp {text:?} (want YYYY-MM-DD HH:MM:SS[.ffffff])")]
    Timestamp {
        /// 1-based line number (0 for JSON input).
        line: usize,
        /// The text.
        text: String,
    },
    /// A JSON document is malformed or has the wrong shape.
    #[error("json: {0}")]
    Json(String),
    /// A labelled window does not match the data file's timestamps.
    #[error("{file}: window {start:?}..{end:?} does not overlap the data")]
    Window {
        /// The data file.
        file: String,
        /// Window start.
        start: Timestamp,
        /// Window end.
        end: Timestamp,
    },
}

/// One scoring profile (a cost matrix of `config/profiles.json`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Profile {
    /// Profile name, e.g. `standard`.
    pub name: String,
    /// Weight of a true positive.
    pub tp_weight: f64,
    /// Weight of a false positive.
    pub fp_weight: f64,
    /// Weight of a false negative.
    pub fn_weight: f64,
}

impl Profile {
    /// NAB's `standard` profile (tp 1, fp 0.11, fn 1).
    pub fn standard() -> Self {
        Self {
            name: "standard".into(),
            tp_weight: 1.0,
            fp_weight: 0.11,
            fn_weight: 1.0,
        }
    }
    /// NAB's `reward_low_FP_rate` profile (tp 1, fp 0.22, fn 1).
    pub fn reward_low_fp_rate() -> Self {
        Self {
            name: "reward_low_FP_rate".into(),
            tp_weight: 1.0,
            fp_weight: 0.22,
            fn_weight: 1.0,
        }
    }
    /// NAB's `reward_low_FN_rate` profile (tp 1, fp 0.11, fn 2).
    pub fn reward_low_fn_rate() -> Self {
        Self {
            name: "reward_low_FN_rate".into(),
            tp_weight: 1.0,
            fp_weight: 0.11,
            fn_weight: 2.0,
        }
    }
}

/// Parses `config/profiles.json` (`{"name": {"CostMatrix": {"tpWeight": …}}}`), in the
/// file's order.
pub fn parse_profiles(json: &[u8]) -> Result<Vec<Profile>, NabError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Cost {
        tp_weight: f64,
        fp_weight: f64,
        fn_weight: f64,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(rename = "CostMatrix")]
        cost_matrix: Cost,
    }
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(json).map_err(|e| NabError::Json(e.to_string()))?;
    map.into_iter()
        .map(|(name, v)| {
            let e: Entry =
                serde_json::from_value(v).map_err(|e| NabError::Json(format!("{name}: {e}")))?;
            Ok(Profile {
                name,
                tp_weight: e.cost_matrix.tp_weight,
                fp_weight: e.cost_matrix.fp_weight,
                fn_weight: e.cost_matrix.fn_weight,
            })
        })
        .collect()
}

/// Labelled windows per data file (`category/file.csv` → `[(start, end)]`), as in
/// `labels/combined_windows.json`.
pub type Windows = BTreeMap<String, Vec<(Timestamp, Timestamp)>>;

/// Parses `labels/combined_windows.json`.
pub fn parse_windows(json: &[u8]) -> Result<Windows, NabError> {
    let map: BTreeMap<String, Vec<(String, String)>> =
        serde_json::from_slice(json).map_err(|e| NabError::Json(e.to_string()))?;
    map.into_iter()
        .map(|(file, ws)| {
            let ws = ws
                .iter()
                .map(|(a, b)| Ok((parse_timestamp(a, 0)?, parse_timestamp(b, 0)?)))
                .collect::<Result<Vec<_>, NabError>>()?;
            Ok((file, ws))
        })
        .collect()
}

/// A NAB data file: `timestamp,value` rows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    /// Row timestamps.
    pub timestamps: Vec<Timestamp>,
    /// Row values (NaN for an empty value field).
    pub values: Vec<f64>,
}

/// Parses a NAB data CSV (header `timestamp,value`; extra columns are ignored, so NAB
/// result files parse too). Timestamps are `YYYY-MM-DD HH:MM:SS[.ffffff]` (UTC) or
/// plain seconds since the epoch.
pub fn parse_series_csv(bytes: &[u8]) -> Result<Series, NabError> {
    let text = std::str::from_utf8(bytes).map_err(|e| NabError::Csv {
        line: 1 + bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count(),
        reason: "not UTF-8".into(),
    })?;
    let mut out = Series::default();
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let mut cols = line.split(',');
        let ts = cols.next().unwrap_or("").trim().trim_matches('"');
        let val = cols.next().map(|v| v.trim().trim_matches('"'));
        if i == 0 && ts.eq_ignore_ascii_case("timestamp") {
            continue;
        }
        let Some(val) = val else {
            return Err(NabError::Csv {
                line: lineno,
                reason: "missing value column".into(),
            });
        };
        let t = parse_timestamp(ts, lineno)?;
        let v = if val.is_empty() {
            f64::NAN
        } else {
            val.parse::<f64>().map_err(|_| NabError::Csv {
                line: lineno,
                reason: format!("bad value {val:?}"),
            })?
        };
        out.timestamps.push(t);
        out.values.push(v);
    }
    Ok(out)
}

/// Parses `YYYY-MM-DD HH:MM:SS[.ffffff]` (also with `T`, UTC unless an offset is
/// given; the calendar is checked, so `2014-02-30` is an error) or seconds since the
/// epoch. The date-time part is [`meshmon_core::time::parse_datetime`].
pub fn parse_timestamp(s: &str, line: usize) -> Result<Timestamp, NabError> {
    let bad = || NabError::Timestamp {
        line,
        text: s.to_string(),
    };
    if let Ok(secs) = s.parse::<f64>() {
        return Timestamp::from_secs_f64(secs).ok_or_else(bad);
    }
    meshmon_core::time::parse_datetime(s).map_err(|_| bad())
}

/// One detector output file to score.
#[derive(Clone, Copy, Debug)]
pub struct ScoredFile<'a> {
    /// Name (used in error messages), e.g. `realKnownCause/nyc_taxi.csv`.
    pub name: &'a str,
    /// Row timestamps.
    pub timestamps: &'a [Timestamp],
    /// Anomaly score per row, in `[0, 1]` (non-finite scores count as 0).
    pub scores: &'a [f64],
    /// Labelled windows of the file.
    pub windows: &'a [(Timestamp, Timestamp)],
}

/// NAB's scaled sigmoid.
pub fn scaled_sigmoid(relative_position: f64) -> f64 {
    if relative_position >= 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * relative_position).exp()) - 1.0
    }
}

/// The result of scoring a corpus under one profile.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ProfileScore {
    /// Profile name.
    pub profile: String,
    /// The optimal threshold (a detection is `score >= threshold`; 1.1 = never).
    pub threshold: f64,
    /// Raw NAB score at that threshold.
    pub raw: f64,
    /// The null detector's raw score.
    pub null: f64,
    /// The perfect detector's raw score.
    pub perfect: f64,
    /// `100·(raw − null)/(perfect − null)`.
    pub normalized: f64,
    /// Detections inside windows (rows).
    pub tp: usize,
    /// Detections outside windows (rows).
    pub fp: usize,
    /// Rows inside windows not detected.
    pub fn_rows: usize,
    /// Rows outside windows not detected.
    pub tn: usize,
    /// Windows with at least one detection.
    pub windows_detected: usize,
    /// Scorable windows.
    pub windows: usize,
}

#[derive(Clone, Copy)]
struct Point {
    anomaly: f64,
    sweep: f64,
    window: Option<u32>,
}

/// The sweep scores of one file (NAB's `Sweeper.calcSweepScore`), appended to `out`;
/// window ids are offset by `window_base`. Returns the number of windows.
fn sweep_file(
    file: &ScoredFile<'_>,
    profile: &Profile,
    probation_percent: f64,
    window_base: u32,
    out: &mut Vec<Point>,
) -> u32 {
    let n = file.timestamps.len();
    let probation = (probation_percent * n as f64)
        .floor()
        .min(probation_percent * 5000.0);
    let max_tp = scaled_sigmoid(-1.0);
    // Resolve windows to row indices: first row >= start, last row <= end.
    let mut wins: Vec<(usize, usize)> = Vec::with_capacity(file.windows.len());
    for &(s, e) in file.windows {
        let l = file.timestamps.partition_point(|&t| t < s);
        let r = file.timestamps.partition_point(|&t| t <= e);
        if r > l {
            wins.push((l, r - 1));
        }
    }
    wins.sort_unstable();
    let mut next = 0usize;
    let mut cur: Option<(usize, usize, u32)> = None;
    let mut prev: Option<(usize, f64)> = None;
    for i in 0..n {
        if cur.is_none() && next < wins.len() && wins[next].0 == i {
            cur = Some((wins[next].0, wins[next].1, window_base + next as u32));
            next += 1;
        }
        let sweep = match cur {
            Some((l, r, _)) => {
                let width = (r - l + 1) as f64;
                let pos = -((r as f64) - (i as f64) + 1.0) / width;
                scaled_sigmoid(pos) * profile.tp_weight / max_tp
            }
            None => {
                let pos = match prev {
                    None => 3.0,
                    Some((pr, pw)) => (i as f64 - pr as f64).abs() / (pw - 1.0),
                };
                scaled_sigmoid(pos) * profile.fp_weight
            }
        };
        if (i as f64) >= probation {
            let a = file.scores.get(i).copied().unwrap_or(0.0);
            let a = if a.is_finite() { a } else { 0.0 };
            out.push(Point {
                anomaly: a,
                sweep,
                window: cur.map(|c| c.2),
            });
        }
        if let Some((l, r, _)) = cur
            && r == i
        {
            prev = Some((r, (r - l + 1) as f64));
            cur = None;
        }
    }
    wins.len() as u32
}

/// Finds the threshold maximising the corpus score under `profile` (NAB's sweep
/// optimiser) and normalises the score.
pub fn optimize(
    files: &[ScoredFile<'_>],
    profile: &Profile,
    probation_percent: f64,
) -> ProfileScore {
    let mut points = Vec::with_capacity(files.iter().map(|f| f.timestamps.len()).sum());
    let mut base = 0u32;
    let mut total_windows = 0usize;
    for f in files {
        base += sweep_file(f, profile, probation_percent, base, &mut points);
        total_windows += f.windows.len();
    }
    // Windows that have scorable rows start as false negatives.
    let mut best_in_window: Vec<Option<f64>> = vec![None; base as usize];
    for p in &points {
        if let Some(w) = p.window {
            best_in_window[w as usize] = Some(-profile.fn_weight);
        }
    }
    let scorable_windows = best_in_window.iter().filter(|w| w.is_some()).count();
    let null = -profile.fn_weight * scorable_windows as f64;
    let perfect = profile.tp_weight * total_windows as f64;
    points.sort_by(|a, b| b.anomaly.total_cmp(&a.anomaly));

    let mut fp_sum = 0.0;
    let mut window_sum = null;
    let mut tp = 0usize;
    let mut fp = 0usize;
    let mut detected = 0usize;
    let in_windows = points.iter().filter(|p| p.window.is_some()).count();
    let outside = points.len() - in_windows;
    let mut best = (1.1, null, 0usize, 0usize, 0usize);
    let mut i = 0;
    while i < points.len() {
        let thr = points[i].anomaly;
        while i < points.len() && points[i].anomaly == thr {
            let p = points[i];
            match p.window {
                None => {
                    fp += 1;
                    fp_sum += p.sweep;
                }
                Some(w) => {
                    tp += 1;
                    let slot = &mut best_in_window[w as usize];
                    let old = slot.unwrap_or(-profile.fn_weight);
                    if old == -profile.fn_weight && p.sweep > old {
                        detected += 1;
                    }
                    if p.sweep > old {
                        window_sum += p.sweep - old;
                        *slot = Some(p.sweep);
                    }
                }
            }
            i += 1;
        }
        let score = window_sum + fp_sum;
        if score > best.1 {
            best = (thr, score, tp, fp, detected);
        }
    }
    let (threshold, raw, tp, fp, detected) = best;
    let normalized = if perfect > null {
        100.0 * (raw - null) / (perfect - null)
    } else {
        0.0
    };
    ProfileScore {
        profile: profile.name.clone(),
        threshold,
        raw,
        null,
        perfect,
        normalized,
        tp,
        fp,
        fn_rows: in_windows - tp,
        tn: outside - fp,
        windows_detected: detected,
        windows: scorable_windows,
    }
}

/// Checks that every window of `file` overlaps its timestamps.
pub fn check_windows(
    name: &str,
    timestamps: &[Timestamp],
    windows: &[(Timestamp, Timestamp)],
) -> Result<(), NabError> {
    for &(start, end) in windows {
        let l = timestamps.partition_point(|&t| t < start);
        let r = timestamps.partition_point(|&t| t <= end);
        if r <= l {
            return Err(NabError::Window {
                file: name.to_string(),
                start,
                end,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(n: usize) -> Vec<Timestamp> {
        (0..n as i64)
            .map(|i| Timestamp::from_secs(i * 60))
            .collect()
    }

    #[test]
    fn sigmoid_matches_nab_docstring() {
        assert!((scaled_sigmoid(-1.0) - 0.98661).abs() < 1e-5);
        assert!((scaled_sigmoid(-0.5) - 0.84828).abs() < 1e-5);
        assert_eq!(scaled_sigmoid(0.0), 0.0);
        assert!((scaled_sigmoid(1.0) + 0.98661).abs() < 1e-5);
        assert_eq!(scaled_sigmoid(3.0), -1.0);
    }

    #[test]
    fn timestamps_parse() {
        assert_eq!(
            parse_timestamp("1970-01-02 00:00:01", 1).unwrap(),
            Timestamp::from_secs(86_401)
        );
        assert_eq!(
            parse_timestamp("2014-04-10 07:15:00.000000", 1).unwrap(),
            Timestamp::from_secs(1_397_114_100)
        );
        assert!(parse_timestamp("2014-13-10 07:15:00", 3).is_err());
        assert!(parse_timestamp("yesterday", 3).is_err());
        assert!(parse_timestamp("2014-02-30 07:15:00", 3).is_err());
    }

    #[test]
    fn csv_errors_carry_lines() {
        let err =
            parse_series_csv(b"timestamp,value\n2014-01-01 00:00:00,1\n2014-01-01 00:05:00,x\n")
                .unwrap_err();
        assert!(matches!(err, NabError::Csv { line: 3, .. }), "{err}");
        let s =
            parse_series_csv(b"timestamp,value\n2014-01-01 00:00:00,1.5\n2014-01-01 00:05:00,\n")
                .unwrap();
        assert_eq!(s.values[0], 1.5);
        assert!(s.values[1].is_nan());
    }

    #[test]
    fn late_detection_scores_less_and_fps_cost() {
        let t = ts(1000);
        let windows = vec![(t[600], t[699])];
        let p = Profile::standard();
        let score_at = |idx: &[usize]| {
            let mut s = vec![0.0; 1000];
            for &i in idx {
                s[i] = 1.0;
            }
            let f = ScoredFile {
                name: "x",
                timestamps: &t,
                scores: &s,
                windows: &windows,
            };
            optimize(&[f], &p, PROBATION_PERCENT)
        };
        let early = score_at(&[600]);
        let late = score_at(&[690]);
        assert!((early.normalized - 100.0).abs() < 1e-9);
        assert!(late.normalized < early.normalized && late.normalized > 0.0);
        // An FP before any window costs the full fpWeight.
        let with_fp = score_at(&[300, 600]);
        assert!((with_fp.raw - (1.0 - 0.11)).abs() < 1e-9, "{with_fp:?}");
        // A detection in the probationary period is ignored.
        let prob = score_at(&[10, 600]);
        assert!((prob.raw - 1.0).abs() < 1e-9);
        // Null: nothing detected.
        let null = score_at(&[]);
        assert_eq!(null.normalized, 0.0);
        assert_eq!(null.threshold, 1.1);
    }

    #[test]
    fn hand_computed_file_matches_the_papers_formulas() {
        // Oracle worked by hand from Lavin & Ahmad (2015) / NAB's sweeper: window rows
        // 600..=699 (width 100), a detection at row 650: p = −(699 − 650 + 1)/100 =
        // −0.5, σ̃(−0.5)/σ̃(−1) = 0.848283/0.986614 = 0.859793; an FP at row 720, 21 rows
        // after the window: σ̃(21/99)·0.11 = −0.485614·0.11 = −0.053417. Raw 0.806375;
        // normalised 100·(0.806375 + 1)/(1 + 1) = 90.3188.
        let t = ts(1000);
        let windows = vec![(t[600], t[699])];
        let mut s = vec![0.0; 1000];
        s[650] = 1.0;
        s[720] = 1.0;
        let f = ScoredFile {
            name: "x",
            timestamps: &t,
            scores: &s,
            windows: &windows,
        };
        let r = optimize(&[f], &Profile::standard(), PROBATION_PERCENT);
        assert!((r.raw - 0.806_375).abs() < 1e-5, "{r:?}");
        assert!((r.normalized - 90.3188).abs() < 1e-3, "{r:?}");
        assert_eq!((r.tp, r.fp), (1, 1));
    }

    #[test]
    fn threshold_is_swept_over_distinct_scores() {
        let t = ts(1000);
        let windows = vec![(t[600], t[699])];
        let mut s = vec![0.1; 1000];
        s[650] = 0.7; // in window, mid-way
        s[400] = 0.6; // FP below the TP
        let f = ScoredFile {
            name: "x",
            timestamps: &t,
            scores: &s,
            windows: &windows,
        };
        let r = optimize(&[f], &Profile::standard(), PROBATION_PERCENT);
        assert_eq!(r.threshold, 0.7);
        assert_eq!((r.tp, r.fp), (1, 0));
    }
}
