//! `meshmon-agent`: the thin binary over the meshmon crates.
//!
//! `run`, `config`, `status` and `check` drive the agent runtime (the library target,
//! `meshmon_agent`); the other subcommand groups each expose one crate to the shell:
//! `ad` (autodiscovery, meshmon-core), `prom` (meshmon-prom), `trace` (meshmon-trace),
//! `logs` (meshmon-logs) and `alert` (meshmon-alert). No domain logic lives here.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod ad;
#[cfg(feature = "agent")]
mod agent_cmd;
#[cfg(feature = "alert")]
mod alert;
#[cfg(feature = "agent")]
mod demo;
#[cfg(feature = "logs")]
mod logs;
#[cfg(feature = "prom")]
mod prom;
#[cfg(feature = "trace")]
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
    /// Run the node agent until SIGINT/SIGTERM (embedded default config without --config).
    #[cfg(feature = "agent")]
    Run(agent_cmd::RunArgs),
    /// Show or validate the agent configuration.
    #[cfg(feature = "agent")]
    #[command(subcommand)]
    Config(agent_cmd::ConfigCommand),
    /// Summarise a running agent (reads its /api/v1/status).
    #[cfg(feature = "agent")]
    Status(agent_cmd::StatusArgs),
    /// Run one check instance once and print what it submits.
    #[cfg(feature = "agent")]
    Check(agent_cmd::CheckArgs),
    /// Run a simulated Istio Bookinfo mesh on loopback and the agent watching it.
    #[cfg(feature = "agent")]
    Demo(demo::DemoArgs),
    /// Run the cluster agent: dispatch endpoints and cluster checks to node agents.
    #[cfg(feature = "agent")]
    ClusterAgent(meshmon_agent::cluster::ClusterAgentArgs),
    /// Autodiscovery: expand Datadog annotation templates on Kubernetes objects.
    #[command(subcommand)]
    Ad(ad::AdCommand),
    /// Prometheus / OpenMetrics: parse, map to Datadog metrics, benchmark.
    #[cfg(feature = "prom")]
    #[command(subcommand)]
    Prom(prom::PromCommand),
    /// Traces: decode payloads, run an intake server, sample.
    #[cfg(feature = "trace")]
    #[command(subcommand)]
    Trace(trace::TraceCommand),
    /// Logs: mine patterns from log files.
    #[cfg(feature = "logs")]
    #[command(subcommand)]
    Logs(logs::LogsCommand),
    /// Alerts: run anomaly detectors, score them on NAB.
    #[cfg(feature = "alert")]
    #[command(subcommand)]
    Alert(alert::AlertCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        #[cfg(feature = "agent")]
        Command::Run(a) => agent_cmd::run(a),
        #[cfg(feature = "agent")]
        Command::Config(c) => agent_cmd::config(c),
        #[cfg(feature = "agent")]
        Command::Status(a) => agent_cmd::status(a),
        #[cfg(feature = "agent")]
        Command::Check(a) => agent_cmd::check(a),
        #[cfg(feature = "agent")]
        Command::Demo(a) => demo::run(a),
        #[cfg(feature = "agent")]
        Command::ClusterAgent(a) => meshmon_agent::cluster::run_command(a),
        Command::Ad(cmd) => ad::run(cmd),
        #[cfg(feature = "prom")]
        Command::Prom(cmd) => prom::run(cmd),
        #[cfg(feature = "trace")]
        Command::Trace(cmd) => trace::run(cmd),
        #[cfg(feature = "logs")]
        Command::Logs(cmd) => logs::run(cmd),
        #[cfg(feature = "alert")]
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
