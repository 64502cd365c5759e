//! `meshmon-agent trace …`: Trace intake and sampling tools (meshmon-trace).

use std::process::ExitCode;

use clap::Subcommand;

/// `trace` subcommands.
#[derive(Subcommand, Debug)]
pub enum TraceCommand {
    /// Prints the library this group exposes.
    About,
}

/// Runs a `trace` subcommand.
pub fn run(cmd: TraceCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        TraceCommand::About => {
            println!("{}", meshmon_trace::NAME);
            Ok(ExitCode::SUCCESS)
        }
    }
}
