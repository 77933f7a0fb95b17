//! `seatline-bench`: runs the sale-day scenarios against a running Seatline and reports.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = seatline_bench::config::BenchArgs::parse();
    seatline_shared::telemetry::init(&seatline_shared::config::TelemetryConfig {
        log_format: seatline_shared::config::LogFormat::Text,
    });
    let ok = seatline_bench::run(args).await?;
    if !ok {
        eprintln!("invariants failed");
        std::process::exit(1);
    }
    Ok(())
}
