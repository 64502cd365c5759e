//! `meshmon-agent`: the thin binary over the meshmon crates.
//!
//! Each subcommand group lives in its own module and exposes one crate to the shell:
//! `ad` (autodiscovery, meshmon-core), `prom` (meshmon-prom), `trace` (meshmon-trace),
//! `logs` (meshmon-logs) and `alert` (meshmon-alert). No domain logic lives here.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod ad;
mod alert;
mod logs;
mod prom;
mod trace;

/// meshmon: monitor an Istio service mesh the way the Datadog Agent does.
#[derive(Parser, Debug)]
#[command(name = "meshmon-agent", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Autodiscovery: expand Datadog annotation templates on Kubernetes objects.
    #[command(subcommand)]
    Ad(ad::AdCommand),
    /// Prometheus / OpenMetrics: parse, map to Datadog metrics, benchmark.
    #[command(subcommand)]
    Prom(prom::PromCommand),
    /// Traces: decode payloads, run an intake server, sample.
    #[command(subcommand)]
    Trace(trace::TraceCommand),
    /// Logs: mine patterns from log files.
    #[command(subcommand)]
    Logs(logs::LogsCommand),
    /// Alerts: run anomaly detectors, score them on NAB.
    #[command(subcommand)]
    Alert(alert::AlertCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ad(cmd) => ad::run(cmd),
        Command::Prom(cmd) => prom::run(cmd),
        Command::Trace(cmd) => trace::run(cmd),
        Command::Logs(cmd) => logs::run(cmd),
        Command::Alert(cmd) => alert::run(cmd),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("meshmon-agent: {err:#}");
            ExitCode::from(2)
        }
    }
}
