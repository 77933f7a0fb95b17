//! `seatline-api`: reads configuration, installs logging, runs the server until SIGTERM/ctrl-c.

use clap::Parser;
use seatline_api::config::ApiConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = ApiConfig::parse();
    seatline_shared::telemetry::init(&config.telemetry);
    seatline_api::run(config, seatline_shared::shutdown::signal()).await
}
