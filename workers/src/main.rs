//! `seatline-workers`: parses the command line and runs the chosen subcommand.

// glibc's malloc was the API's largest single cost under load (perf: _int_malloc and
// malloc_consolidate), and its per-thread arenas inflate resident memory.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use seatline_workers::config::Cli;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    seatline_shared::telemetry::init(&cli.config.telemetry);
    seatline_workers::cli::execute(cli).await
}
