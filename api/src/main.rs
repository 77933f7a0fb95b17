//! `seatline-api`: reads configuration, installs logging, runs the server until SIGTERM/ctrl-c.

// glibc's malloc was the API's largest single cost under load (perf: _int_malloc and
// malloc_consolidate), and its per-thread arenas inflate resident memory.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use seatline_api::config::ApiConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = ApiConfig::parse();
    seatline_shared::telemetry::init(&config.telemetry);
    seatline_api::run(config, seatline_shared::shutdown::signal()).await
}
