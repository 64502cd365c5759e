//! `meshmon-agent alert …`: anomaly detection tools (meshmon-alert).
//!
//! - `alert detect FILE.csv --algorithm basic|agile|robust [--bounds B]
//!   [--seasonality auto|none|hourly|daily|weekly] [--trigger-window 15m]
//!   [--threshold 1.0] [--recovery-window 15m] [--direction both] [--out OUT.csv]
//!   [--plot OUT.svg]`: the band, the score and the anomaly monitor's `state`.
//! - `alert nab --corpus DIR --algorithm A [--out DIR]`

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Subcommand;
use meshmon_alert::anomaly::{self, AnomalyMonitor, AnomalyMonitorConfig, Direction};
use meshmon_alert::nab::{self, ScoredFile, Series};
use meshmon_alert::{Algorithm, Detector, DetectorConfig, Estimate, MonitorState, Seasonality};

/// `alert` subcommands.
#[derive(Subcommand, Debug)]
pub enum AlertCommand {
    /// Runs a detector and its anomaly monitor over a `timestamp,value` CSV (NAB's
    /// format).
    Detect {
        /// Input CSV with a `timestamp,value` header.
        file: PathBuf,
        /// Detector.
        #[arg(long, default_value = "robust")]
        algorithm: Algorithm,
        /// Band half-width in robust standard deviations.
        #[arg(long)]
        bounds: Option<f64>,
        /// Seasonality: auto, none, hourly, daily, weekly or a period in seconds.
        #[arg(long, default_value = "auto")]
        seasonality: Seasonality,
        /// Monitor trigger window (`15m`, `last_1h`, `900s`); Datadog's default 15m.
        #[arg(long, value_parser = parse_window)]
        trigger_window: Option<Duration>,
        /// Fraction of anomalous points in the trigger window that alerts, (0, 1] or a
        /// percentage (`80%`); Datadog's default 1.0.
        #[arg(long, value_parser = parse_fraction)]
        threshold: Option<f64>,
        /// Monitor recovery window; Datadog's default 15m.
        #[arg(long, value_parser = parse_window)]
        recovery_window: Option<Duration>,
        /// Which side of the band is anomalous: above, below or both.
        #[arg(long, default_value = "both", value_parser = parse_direction)]
        direction: Direction,
        /// Output CSV (`timestamp,value,anomaly_score,expected,lower,upper,state`); stdout
        /// if absent.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Draw the series, the band, the anomalous points and the ALERT periods as SVG.
        #[arg(long)]
        plot: Option<PathBuf>,
    },
    /// Runs a detector over the NAB corpus and prints the three normalised scores.
    Nab {
        /// The NAB directory (with `data/`, `labels/`, `config/`).
        #[arg(long)]
        corpus: PathBuf,
        /// Detector.
        #[arg(long, default_value = "robust")]
        algorithm: Algorithm,
        /// Write NAB-format results (`<category>/<file>.csv`) here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Runs a `alert` subcommand.
pub fn run(cmd: AlertCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AlertCommand::Detect {
            file,
            algorithm,
            bounds,
            seasonality,
            trigger_window,
            threshold,
            recovery_window,
            direction,
            out,
            plot,
        } => {
            let series = read_series(&file)?;
            // The default monitor for the algorithm, with the options given.
            let mut cfg = AnomalyMonitorConfig::new(algorithm);
            cfg.detector.seasonality = seasonality;
            if let Some(b) = bounds {
                cfg.detector.bounds = b;
            }
            if let Some(w) = trigger_window {
                cfg.trigger_window = w;
            }
            if let Some(t) = threshold {
                cfg.critical = t;
            }
            if let Some(w) = recovery_window {
                cfg.recovery_window = w;
            }
            cfg.direction = direction;
            // NO DATA after twice the trigger window without a value (Datadog
            // recommends at least twice the evaluation window).
            cfg.no_data_timeframe = Some(2 * cfg.trigger_window);
            // The crate validates every option (bounds finite and positive, …).
            let rows = monitor(&series, cfg).context("invalid monitor options")?;
            match &out {
                Some(path) => {
                    let f = std::fs::File::create(path)
                        .with_context(|| format!("creating {}", path.display()))?;
                    write_detect_csv(f, &series, &rows)?;
                }
                None => write_detect_csv(std::io::stdout().lock(), &series, &rows)?,
            }
            if let Some(path) = plot {
                plot_svg(&path, &file, algorithm, &series, &rows)?;
            }
            let flagged = rows.iter().filter(|r| r.anomalous).count();
            let episodes = rows
                .windows(2)
                .filter(|w| w[1].state == MonitorState::Alert && w[0].state != MonitorState::Alert)
                .count()
                + usize::from(rows.first().is_some_and(|r| r.state == MonitorState::Alert));
            eprintln!(
                "{}: {} points, {flagged} anomalous, {episodes} ALERT episodes ({algorithm})",
                file.display(),
                series.values.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        AlertCommand::Nab {
            corpus,
            algorithm,
            out,
        } => {
            let windows = nab::parse_windows(&read(&corpus.join("labels/combined_windows.json"))?)?;
            let profiles = nab::parse_profiles(&read(&corpus.join("config/profiles.json"))?)?;
            let mut data = Vec::with_capacity(windows.len());
            for name in windows.keys() {
                let series = read_series(&corpus.join("data").join(name))?;
                nab::check_windows(name, &series.timestamps, &windows[name])?;
                let scores: Vec<f64> = detect(&series, DetectorConfig::new(algorithm))?
                    .iter()
                    .map(|e| e.score)
                    .collect();
                if let Some(dir) = &out {
                    write_nab_result(dir, name, &series, &scores)?;
                }
                data.push((name.clone(), series, scores));
            }
            let files: Vec<ScoredFile<'_>> = data
                .iter()
                .map(|(n, s, sc)| ScoredFile {
                    name: n,
                    timestamps: &s.timestamps,
                    scores: sc,
                    windows: &windows[n],
                })
                .collect();
            println!("detector,profile,score,threshold,windows_detected,windows,fp_rows");
            for p in &profiles {
                let r = nab::optimize(&files, p, nab::PROBATION_PERCENT);
                println!(
                    "{algorithm},{},{:.2},{},{},{},{}",
                    p.name, r.normalized, r.threshold, r.windows_detected, r.windows, r.fp
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn parse_window(s: &str) -> Result<Duration, String> {
    anomaly::parse_window(s).map_err(|e| e.to_string())
}

fn parse_direction(s: &str) -> Result<Direction, String> {
    s.parse()
        .map_err(|e: meshmon_alert::ConfigError| e.to_string())
}

/// `0.8` or `80%`.
fn parse_fraction(s: &str) -> Result<f64, String> {
    let (num, scale) = match s.strip_suffix('%') {
        Some(n) => (n, 0.01),
        None => (s, 1.0),
    };
    num.trim()
        .parse::<f64>()
        .map(|v| v * scale)
        .map_err(|_| format!("{s:?} is not a fraction (0.8) or a percentage (80%)"))
}

/// One output row: the detector's estimate and the monitor's verdict.
struct Row {
    estimate: Estimate,
    anomalous: bool,
    state: MonitorState,
}

fn monitor(series: &Series, cfg: AnomalyMonitorConfig) -> anyhow::Result<Vec<Row>> {
    let mut m = AnomalyMonitor::new(cfg)?;
    Ok(series
        .timestamps
        .iter()
        .zip(&series.values)
        .map(|(&t, &v)| {
            // Time passes before the point: NO DATA if the gap was long enough.
            m.no_data(t);
            let e = m.update(t, v);
            Row {
                estimate: e.estimate,
                anomalous: e.anomalous,
                state: e.state,
            }
        })
        .collect())
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn read_series(path: &Path) -> anyhow::Result<Series> {
    nab::parse_series_csv(&read(path)?).with_context(|| format!("parsing {}", path.display()))
}

fn detect(series: &Series, cfg: DetectorConfig) -> anyhow::Result<Vec<Estimate>> {
    let mut d = Detector::new(cfg)?;
    Ok(series
        .timestamps
        .iter()
        .zip(&series.values)
        .map(|(&t, &v)| d.update(t, v))
        .collect())
}

/// NAB's timestamp text, `YYYY-MM-DD HH:MM:SS`.
fn fmt_ts(t: meshmon_core::Timestamp) -> String {
    let secs = t.as_secs();
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = meshmon_core::time::civil_from_days(secs.div_euclid(86_400));
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn write_detect_csv<W: std::io::Write>(w: W, series: &Series, rows: &[Row]) -> anyhow::Result<()> {
    let mut out = csv::Writer::from_writer(w);
    out.write_record([
        "timestamp",
        "value",
        "anomaly_score",
        "expected",
        "lower",
        "upper",
        "state",
    ])?;
    for ((t, v), r) in series.timestamps.iter().zip(&series.values).zip(rows) {
        let e = &r.estimate;
        out.write_record([
            fmt_ts(*t),
            v.to_string(),
            e.score.to_string(),
            e.expected.to_string(),
            e.lower.to_string(),
            e.upper.to_string(),
            r.state.as_str().to_string(),
        ])?;
    }
    out.flush()?;
    Ok(())
}

fn write_nab_result(dir: &Path, name: &str, series: &Series, scores: &[f64]) -> anyhow::Result<()> {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let f = std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = csv::Writer::from_writer(f);
    out.write_record(["timestamp", "value", "anomaly_score"])?;
    for ((t, v), s) in series.timestamps.iter().zip(&series.values).zip(scores) {
        out.write_record([fmt_ts(*t), v.to_string(), s.to_string()])?;
    }
    out.flush()?;
    Ok(())
}

fn plot_svg(
    path: &Path,
    input: &Path,
    alg: Algorithm,
    series: &Series,
    rows: &[Row],
) -> anyhow::Result<()> {
    use plotters::prelude::*;
    let est: Vec<Estimate> = rows.iter().map(|r| r.estimate).collect();
    let n = series.values.len();
    if n == 0 {
        bail!("nothing to plot: {} has no rows", input.display());
    }
    let finite = |v: f64| v.is_finite();
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    for (v, e) in series.values.iter().zip(&est) {
        for x in [*v, e.lower, e.upper] {
            if finite(x) {
                lo = lo.min(x);
                hi = hi.max(x);
            }
        }
    }
    if !lo.is_finite() {
        bail!("nothing to plot: no finite values");
    }
    let pad = ((hi - lo) * 0.05).max(1e-9);
    let t0 = series.timestamps[0].as_secs_f64();
    let x = |i: usize| (series.timestamps[i].as_secs_f64() - t0) / 3600.0;
    let x_max = x(n - 1).max(1e-9);
    let root = SVGBackend::new(path, (1400, 500)).into_drawing_area();
    let err = |e: &dyn std::fmt::Display| anyhow::anyhow!("plotting {}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let title = format!(
        "{} — {alg}",
        input.file_name().map_or_else(
            || input.display().to_string(),
            |f| f.to_string_lossy().into()
        )
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, (lo - pad)..(hi + pad))
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("hours since start")
        .draw()
        .map_err(|e| err(&e))?;
    // ALERT periods, shaded: from the first ALERT row to the next non-ALERT row.
    let shade = RGBColor(255, 200, 200);
    let mut i = 0;
    while i < n {
        if rows[i].state != MonitorState::Alert {
            i += 1;
            continue;
        }
        let start = i;
        while i < n && rows[i].state == MonitorState::Alert {
            i += 1;
        }
        let end = x(i.min(n - 1));
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(x(start), lo - pad), (end, hi + pad)],
                shade.filled(),
            )))
            .map_err(|e| err(&e))?;
    }
    let band = RGBColor(180, 180, 180);
    for (pick, label) in [(0usize, "lower"), (1, "upper")] {
        let pts: Vec<(f64, f64)> = (0..n)
            .filter_map(|i| {
                let v = if pick == 0 {
                    est[i].lower
                } else {
                    est[i].upper
                };
                finite(v).then(|| (x(i), v))
            })
            .collect();
        chart
            .draw_series(LineSeries::new(pts, band.stroke_width(1)))
            .map_err(|e| err(&e))?
            .label(label);
    }
    let pts: Vec<(f64, f64)> = (0..n)
        .filter(|&i| finite(series.values[i]))
        .map(|i| (x(i), series.values[i]))
        .collect();
    chart
        .draw_series(LineSeries::new(pts, BLUE.stroke_width(1)))
        .map_err(|e| err(&e))?;
    let flagged = (0..n)
        .filter(|&i| rows[i].anomalous)
        .map(|i| Circle::new((x(i), series.values[i]), 3, RED.filled()));
    chart.draw_series(flagged).map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        for s in [
            "2014-04-10 07:15:00",
            "1970-01-01 00:00:00",
            "2000-02-29 23:59:59",
        ] {
            let t = nab::parse_timestamp(s, 1).map_err(|e| e.to_string());
            assert_eq!(t.map(fmt_ts), Ok(s.to_string()));
        }
    }
}
