//! `seatline-bench`: runs the sale-day scenarios against a running Seatline and reports.

// glibc's malloc was the API's largest single cost under load (perf: _int_malloc and
// malloc_consolidate), and its per-thread arenas inflate resident memory.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
