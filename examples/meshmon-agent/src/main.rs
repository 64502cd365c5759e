//! `meshmon-agent`: the thin binary over the meshmon crates.
//!
//! Each subcommand group lives in its own module and exposes one crate to the shell:
//! `ad` (autodiscovery, meshmon-core), `prom` (meshmon-prom), `trace` (meshmon-trace),
//! `logs` (meshmon-logs) and `alert` (meshmon-alert). No domain logic lives here.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod ad;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ad(cmd) => ad::run(cmd),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("meshmon-agent: {err:#}");
            ExitCode::from(2)
        }
    }
}
