//! `meshmon-agent alert …`: Anomaly detection tools (meshmon-alert).

use std::process::ExitCode;

use clap::Subcommand;

/// `alert` subcommands.
#[derive(Subcommand, Debug)]
pub enum AlertCommand {
    /// Prints the library this group exposes.
    About,
}

/// Runs a `alert` subcommand.
pub fn run(cmd: AlertCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AlertCommand::About => {
            println!("{}", meshmon_alert::NAME);
            Ok(ExitCode::SUCCESS)
        }
    }
}
