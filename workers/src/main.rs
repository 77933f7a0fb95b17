//! `seatline-workers`: parses the command line and runs the chosen subcommand.

use clap::Parser;
use seatline_workers::config::Cli;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    seatline_shared::telemetry::init(&cli.config.telemetry);
    seatline_workers::cli::execute(cli).await
}
