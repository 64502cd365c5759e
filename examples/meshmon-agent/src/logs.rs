//! `meshmon-agent logs …`: log pattern tools (meshmon-logs).
//!
//! `logs patterns FILE` parses each line (auto-detected or a given format), mines
//! patterns online and prints the top patterns, or writes per-line predictions (CSV with
//! `LineId,ClusterId,EventTemplate`, the Loghub layout) and the pattern set (JSON).

use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use meshmon_logs::format::{Format, LineParser};
use meshmon_logs::pattern::{Pattern, PatternId, PatternSet, Slot};
use serde::Serialize;

/// `logs` subcommands.
#[derive(Subcommand, Debug)]
pub enum LogsCommand {
    /// Mines log patterns from a file (`-` for standard input).
    Patterns {
        /// The log file.
        file: PathBuf,
        /// Line format: auto|raw|cri|docker|envoy|istio|json (`raw`: each line is one
        /// message).
        #[arg(long, default_value = "auto")]
        format: Format,
        /// Writes an RFC 4180 CSV `LineId,ClusterId,EventTemplate`, one row per input line.
        #[arg(long, value_name = "OUT.csv")]
        predictions: Option<PathBuf>,
        /// Writes the pattern set as JSON (template, regex, count, samples, top values).
        #[arg(long, value_name = "OUT.json")]
        patterns: Option<PathBuf>,
        /// How many patterns to print (0 = all); --patterns always writes all.
        #[arg(long, default_value_t = 20)]
        top: usize,
    },
}

/// Runs a `logs` subcommand.
pub fn run(cmd: LogsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        LogsCommand::Patterns {
            file,
            format,
            predictions,
            patterns,
            top,
        } => patterns_cmd(&file, format, predictions.as_ref(), patterns.as_ref(), top),
    }
}

#[derive(Serialize)]
struct VariableOut {
    position: usize,
    kind: &'static str,
    top: Vec<meshmon_logs::pattern::ValueCount>,
}

#[derive(Serialize)]
struct PatternOut<'a> {
    id: u64,
    count: u64,
    template: String,
    typed_template: String,
    regex: String,
    samples: &'a [String],
    variables: Vec<VariableOut>,
}

fn pattern_out(p: &Pattern) -> PatternOut<'_> {
    let variables = p
        .positions()
        .iter()
        .enumerate()
        .filter_map(|(i, pos)| match &pos.slot {
            Slot::Var(v) => Some(VariableOut {
                position: i,
                kind: v.kind.placeholder(),
                top: v.values.top(5),
            }),
            _ => None,
        })
        .collect();
    PatternOut {
        id: p.id().get(),
        count: p.count(),
        template: p.template(),
        typed_template: p.typed_template(),
        regex: p.regex(),
        samples: p.samples(),
        variables,
    }
}

fn open(file: &PathBuf) -> anyhow::Result<(Box<dyn Read>, Option<u64>)> {
    if file.as_os_str() == "-" {
        return Ok((Box::new(std::io::stdin().lock()), None));
    }
    let f = File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let len = f.metadata().ok().map(|m| m.len());
    Ok((Box::new(f), len))
}

fn patterns_cmd(
    file: &PathBuf,
    format: Format,
    predictions: Option<&PathBuf>,
    patterns_out: Option<&PathBuf>,
    top: usize,
) -> anyhow::Result<ExitCode> {
    let (input, len) = open(file)?;
    let mut reader = BufReader::with_capacity(1 << 20, input);
    // A progress bar for large files, only when a person watches stderr.
    let bar = match len {
        Some(n) if n > 8 << 20 && std::io::stderr().is_terminal() => {
            let b = indicatif::ProgressBar::new(n);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            ) {
                b.set_style(style);
            }
            Some(b)
        }
        _ => None,
    };
    let mut parser = LineParser::new(format);
    // Line → pattern accounting (counts by status, Envoy access logs mined from their
    // fields) is meshmon-logs' PatternSet.
    let mut set = PatternSet::default();
    // Pattern id per input line (lines joined into one record share its id).
    let mut line_ids: Vec<PatternId> = Vec::new();
    let mut pending_lines = 0usize;
    let mut buf = Vec::new();
    let mut read = 0u64;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .with_context(|| format!("reading {}", file.display()))?;
        if n == 0 {
            break;
        }
        read += n as u64;
        if let Some(b) = bar
            .as_ref()
            .filter(|_| line_ids.len().is_multiple_of(65_536))
        {
            b.set_position(read);
        }
        pending_lines += 1;
        if let Some(rec) = parser.parse(&buf) {
            let id = set.observe(&rec);
            line_ids.extend(std::iter::repeat_n(id, pending_lines));
            pending_lines = 0;
        }
    }
    for rec in parser.flush() {
        let id = set.observe(&rec);
        line_ids.extend(std::iter::repeat_n(id, pending_lines.max(1)));
        pending_lines = 0;
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }

    let miner = set.miner();
    let mut ranked: Vec<&Pattern> = miner.patterns().collect();
    ranked.sort_by(|a, b| b.count().cmp(&a.count()).then(a.id().cmp(&b.id())));

    if let Some(path) = predictions {
        let mut templates = std::collections::HashMap::new();
        let mut w =
            csv::Writer::from_path(path).with_context(|| format!("creating {}", path.display()))?;
        w.write_record(["LineId", "ClusterId", "EventTemplate"])?;
        for (i, id) in line_ids.iter().enumerate() {
            let id = miner.resolve(*id);
            let t = templates
                .entry(id)
                .or_insert_with(|| match miner.pattern(id) {
                    Some(p) => p.template(),
                    None => "<*>".to_owned(),
                });
            w.write_record([(i + 1).to_string(), id.get().to_string(), t.clone()])?;
        }
        w.flush()
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = patterns_out {
        let out = serde_json::json!({
            "lines": line_ids.len(),
            "parse_errors": parser.errors,
            "stats": miner.stats(),
            "patterns": ranked.iter().map(|p| pattern_out(p)).collect::<Vec<_>>(),
        });
        let f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut w = std::io::BufWriter::new(f);
        serde_json::to_writer_pretty(&mut w, &out)?;
        w.write_all(b"\n")?;
        w.flush()
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if predictions.is_none() && patterns_out.is_none() {
        let total = line_ids.len().max(1) as f64;
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        writeln!(out, "{:>8} {:>10} {:>6}  TEMPLATE", "ID", "COUNT", "%")?;
        let n = if top == 0 { ranked.len() } else { top };
        for p in ranked.iter().take(n) {
            writeln!(
                out,
                "{:>8} {:>10} {:>6.2}  {}",
                p.id(),
                p.count(),
                100.0 * p.count() as f64 / total,
                p.template()
            )?;
        }
        writeln!(
            out,
            "{} lines, {} patterns ({} parse errors, {} overflowed)",
            line_ids.len(),
            miner.len(),
            parser.errors,
            miner.stats().overflowed
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
