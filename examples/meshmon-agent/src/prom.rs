//! `meshmon-agent prom …`: Prometheus / OpenMetrics tools (meshmon-prom).
//!
//! - `parse FILE`: validate, print `families=N samples=M` (exit 1 with `FILE:line:col: …`).
//! - `map FILE`: Datadog OpenMetrics-check mapping, one JSON line per submitted metric.
//! - `bench FILE`: parse from memory repeatedly, one JSON line of throughput.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use meshmon_core::{MetricValue, Timestamp};
use meshmon_prom::mapping::{MetricSpec, SubmitType};
use meshmon_prom::{Format, Mapper, MappingConfig, Parser};

/// `prom` subcommands.
#[derive(Subcommand, Debug)]
pub enum PromCommand {
    /// Parse an exposition file: `families=N samples=M`, or `FILE:line:col: message`.
    Parse {
        /// The exposition file.
        file: PathBuf,
        #[command(flatten)]
        format: FormatArgs,
    },
    /// Map an exposition file the way Datadog's OpenMetrics check does: one JSON line
    /// `{"name","type","value","tags"}` per submitted metric.
    Map(Box<MapArgs>),
    /// Parse a file from memory repeatedly: `{"bytes","samples","mb_per_s"}`.
    Bench {
        /// The exposition file.
        file: PathBuf,
        /// How long to run.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        #[command(flatten)]
        format: FormatArgs,
    },
}

/// Format selection (default: OpenMetrics when the file ends with `# EOF`, else text).
#[derive(Args, Debug, Clone, Copy)]
pub struct FormatArgs {
    /// Parse as OpenMetrics 1.0 text.
    #[arg(long, conflicts_with = "text")]
    openmetrics: bool,
    /// Parse as Prometheus text format 0.0.4.
    #[arg(long)]
    text: bool,
}

impl FormatArgs {
    fn resolve(self, body: &[u8]) -> Format {
        if self.openmetrics {
            Format::OpenMetrics
        } else if self.text {
            Format::PrometheusText
        } else {
            Format::sniff(body)
        }
    }
}

/// `prom map` options (Datadog instance option names in kebab case).
#[derive(Args, Debug)]
pub struct MapArgs {
    /// The exposition file.
    file: PathBuf,
    #[command(flatten)]
    format: FormatArgs,
    /// Start from a preset: `istio` (mesh endpoint, `istio.mesh`) or `istiod`.
    #[arg(long)]
    preset: Option<String>,
    /// `namespace` (overrides the preset's).
    #[arg(long)]
    namespace: Option<String>,
    /// A `metrics` entry: `raw` or `raw=name` (repeatable); `raw` may be a regex.
    #[arg(long = "metric")]
    metrics: Vec<String>,
    /// Submit every family natively under its own name (`metrics: [".*"]`).
    #[arg(long)]
    all: bool,
    /// `raw_metric_prefix`.
    #[arg(long)]
    raw_metric_prefix: Option<String>,
    /// `exclude_metrics` (repeatable; exact names or regexes).
    #[arg(long = "exclude-metric")]
    exclude_metrics: Vec<String>,
    /// `exclude_labels` (repeatable).
    #[arg(long = "exclude-label")]
    exclude_labels: Vec<String>,
    /// `include_labels` (repeatable).
    #[arg(long = "include-label")]
    include_labels: Vec<String>,
    /// `rename_labels` entry `from=to` (repeatable).
    #[arg(long = "rename-label")]
    rename_labels: Vec<String>,
    /// A static tag (repeatable).
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// `openmetrics_endpoint`, tagged as `endpoint:<url>`.
    #[arg(long)]
    endpoint: Option<String>,
    /// `collect_histogram_buckets: false`.
    #[arg(long)]
    no_buckets: bool,
    /// `non_cumulative_histogram_buckets: true`.
    #[arg(long)]
    non_cumulative: bool,
    /// `histogram_buckets_as_distributions: true`.
    #[arg(long)]
    distributions: bool,
    /// `collect_counters_with_distributions: true`.
    #[arg(long)]
    counters_with_distributions: bool,
}

/// Runs a `prom` subcommand.
pub fn run(cmd: PromCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PromCommand::Parse { file, format } => parse(&file, format),
        PromCommand::Map(args) => map(*args),
        PromCommand::Bench {
            file,
            seconds,
            format,
        } => bench(&file, seconds, format),
    }
}

fn read(file: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(file).with_context(|| format!("reading {}", file.display()))
}

fn parse(file: &Path, format: FormatArgs) -> anyhow::Result<ExitCode> {
    let body = read(file)?;
    let format = format.resolve(&body);
    let mut p = Parser::new(&body, format);
    let (mut families, mut samples) = (0usize, 0usize);
    while let Some(f) = p.next_family() {
        match f {
            Ok(f) => {
                families += 1;
                samples += f.samples.len();
            }
            Err(e) => {
                println!("{}:{e}", file.display());
                return Ok(ExitCode::from(1));
            }
        }
    }
    println!("families={families} samples={samples}");
    Ok(ExitCode::SUCCESS)
}

fn config(args: &MapArgs) -> anyhow::Result<MappingConfig> {
    let mut cfg = match &args.preset {
        Some(p) => MappingConfig::preset(p)
            .with_context(|| format!("unknown preset {p:?} (istio, istiod)"))?,
        None => MappingConfig::default(),
    };
    if let Some(ns) = &args.namespace {
        cfg.namespace = ns.clone();
    }
    for m in &args.metrics {
        let spec = match m.split_once('=') {
            Some((raw, name)) => MetricSpec::renamed(raw, name),
            None => MetricSpec {
                raw: m.clone(),
                name: None,
                kind: SubmitType::Native,
            },
        };
        cfg.metrics.push(spec);
    }
    if args.all {
        cfg.metrics.push(MetricSpec {
            raw: ".*".into(),
            name: None,
            kind: SubmitType::Native,
        });
    }
    if let Some(p) = &args.raw_metric_prefix {
        cfg.raw_metric_prefix = p.clone();
    }
    cfg.exclude_metrics
        .extend(args.exclude_metrics.iter().cloned());
    cfg.exclude_labels
        .extend(args.exclude_labels.iter().cloned());
    cfg.include_labels
        .extend(args.include_labels.iter().cloned());
    for r in &args.rename_labels {
        let (a, b) = r
            .split_once('=')
            .with_context(|| format!("--rename-label {r:?}: expected from=to"))?;
        cfg.rename_labels.push((a.to_owned(), b.to_owned()));
    }
    cfg.tags.extend(args.tags.iter().cloned());
    cfg.openmetrics_endpoint = args.endpoint.clone();
    cfg.collect_histogram_buckets = !args.no_buckets;
    cfg.non_cumulative_histogram_buckets = args.non_cumulative;
    cfg.histogram_buckets_as_distributions = args.distributions;
    cfg.collect_counters_with_distributions = args.counters_with_distributions;
    Ok(cfg)
}

fn map(args: MapArgs) -> anyhow::Result<ExitCode> {
    let body = read(&args.file)?;
    let format = args.format.resolve(&body);
    let mut mapper = Mapper::new(config(&args)?)?;
    let mut lines = Vec::new();
    let result = mapper.map(&body, format, Timestamp::EPOCH, &mut |m| {
        let mut obj = serde_json::json!({
            "name": &*m.name,
            "type": m.value.type_name(),
            "tags": m.tags.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
        });
        match m.value {
            MetricValue::HistogramBucket {
                count,
                lower_bound,
                upper_bound,
                monotonic,
            } => {
                obj["value"] = count.into();
                obj["lower_bound"] = bound(lower_bound);
                obj["upper_bound"] = bound(upper_bound);
                obj["monotonic"] = monotonic.into();
            }
            ref v => {
                obj["value"] = v
                    .as_f64()
                    .map_or(serde_json::Value::Null, serde_json::Value::from)
            }
        }
        lines.push(obj.to_string());
    });
    match result {
        Ok(_) => {
            use std::io::Write as _;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for l in lines {
                // A closed pipe (`| head`) ends the output quietly.
                if writeln!(out, "{l}").is_err() {
                    return Ok(ExitCode::SUCCESS);
                }
            }
            let _ = out.flush();
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{}:{e}", args.file.display());
            Ok(ExitCode::from(1))
        }
    }
}

fn bound(v: f64) -> serde_json::Value {
    if v.is_finite() {
        v.into()
    } else {
        meshmon_prom::float::format_py_float(v).into()
    }
}

fn bench(file: &Path, seconds: f64, format: FormatArgs) -> anyhow::Result<ExitCode> {
    let body = read(file)?;
    let format = format.resolve(&body);
    let budget = Duration::from_secs_f64(seconds.max(0.01));
    let start = Instant::now();
    let mut rounds = 0u64;
    let mut samples = 0usize;
    while start.elapsed() < budget || rounds == 0 {
        let mut p = Parser::new(&body, format);
        samples = 0;
        while let Some(f) = p.next_family() {
            let f = f.map_err(|e| anyhow::anyhow!("{}:{e}", file.display()))?;
            samples += f.samples.len();
        }
        rounds += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    let mb_per_s = (body.len() as f64 * rounds as f64) / secs / 1e6;
    println!(
        "{}",
        serde_json::json!({"bytes": body.len(), "samples": samples, "mb_per_s": (mb_per_s * 10.0).round() / 10.0})
    );
    Ok(ExitCode::SUCCESS)
}
