//! `meshmon-agent logs …`: Log pattern tools (meshmon-logs).

use std::process::ExitCode;

use clap::Subcommand;

/// `logs` subcommands.
#[derive(Subcommand, Debug)]
pub enum LogsCommand {
    /// Prints the library this group exposes.
    About,
}

/// Runs a `logs` subcommand.
pub fn run(cmd: LogsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        LogsCommand::About => {
            println!("{}", meshmon_logs::NAME);
            Ok(ExitCode::SUCCESS)
        }
    }
}
