//! `seatline-workers`: parses the command line and runs the chosen subcommand.

use clap::Parser;
use seatline_workers::config::{Cli, Command};
use seatline_workers::seed::Seeded;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    seatline_shared::telemetry::init(&cli.config.telemetry);
    match cli.command {
        Command::Run => {
            seatline_workers::run(cli.config, seatline_shared::shutdown::signal()).await
        }
        Command::Migrate => {
            let pool = seatline_shared::db::pool(&cli.config.database)?;
            seatline_workers::migrate(&pool).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Seed => {
            let pool = seatline_shared::db::pool(&cli.config.database)?;
            seatline_workers::migrate(&pool).await?;
            match seatline_workers::seed::seed(&pool).await? {
                Seeded::Skipped => println!("catalog already has concerts; seed skipped"),
                Seeded::Created { concerts, dates } => {
                    println!("seeded {concerts} concerts with {dates} dates of 50 seats")
                }
            }
            Ok(())
        }
    }
}
