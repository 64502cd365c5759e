//! `meshmon-agent prom …`: Prometheus / OpenMetrics tools (meshmon-prom).

use std::process::ExitCode;

use clap::Subcommand;

/// `prom` subcommands.
#[derive(Subcommand, Debug)]
pub enum PromCommand {
    /// Prints the library this group exposes.
    About,
}

/// Runs a `prom` subcommand.
pub fn run(cmd: PromCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PromCommand::About => {
            println!("{}", meshmon_prom::NAME);
            Ok(ExitCode::SUCCESS)
        }
    }
}
