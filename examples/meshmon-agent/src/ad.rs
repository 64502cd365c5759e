//! `meshmon-agent ad …`: autodiscovery tools.

use std::process::ExitCode;

use clap::Subcommand;

/// Autodiscovery subcommands.
#[derive(Subcommand, Debug)]
pub enum AdCommand {
    /// Expand annotated objects into check configs (one JSON object per line).
    Expand {
        /// Kubernetes objects: JSON, a `List`, or multi-document YAML.
        files: Vec<std::path::PathBuf>,
    },
}

/// Runs an `ad` subcommand.
pub fn run(cmd: AdCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AdCommand::Expand { files } => {
            anyhow::bail!("ad expand: not implemented yet ({} file(s))", files.len())
        }
    }
}
