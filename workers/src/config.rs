//! The workers' settings and command line.

use std::net::SocketAddr;
use std::time::Duration;

use seatline_shared::config::{
    parse_duration, DatabaseConfig, KafkaConfig, QueueConfig, ReservationConfig, TelemetryConfig,
};

/// Settings every subcommand shares.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkersConfig {
    #[command(flatten)]
    pub database: DatabaseConfig,
    #[command(flatten)]
    pub kafka: KafkaConfig,
    #[command(flatten)]
    pub queue: QueueConfig,
    #[command(flatten)]
    pub reservation: ReservationConfig,
    #[command(flatten)]
    pub telemetry: TelemetryConfig,
    /// Most request messages of one partition decided in one database transaction.
    #[arg(long, env = "WORKER_BATCH_SIZE", default_value_t = 256)]
    pub batch_size: usize,
    /// How often the admitter runs a round.
    #[arg(long, env = "QUEUE_ADMIT_INTERVAL", default_value = "200ms", value_parser = parse_duration)]
    pub admit_interval: Duration,
    /// Address of the workers' metrics endpoint.
    #[arg(long, env = "WORKERS_METRICS_ADDR", default_value = "127.0.0.1:9100")]
    pub metrics_addr: SocketAddr,
}

impl WorkersConfig {
    /// Settings for tests and embedding: defaults everywhere but the given connections.
    pub fn for_services(database: DatabaseConfig, kafka: KafkaConfig) -> Self {
        Self {
            database,
            kafka,
            queue: QueueConfig::default(),
            reservation: ReservationConfig::default(),
            telemetry: TelemetryConfig {
                log_format: seatline_shared::config::LogFormat::Text,
            },
            batch_size: 256,
            admit_interval: Duration::from_millis(200),
            metrics_addr: "127.0.0.1:0".parse().expect("valid address"),
        }
    }
}

/// Seatline workers: Kafka consumers, the outbox relay, the queue admitter and sweepers, and
/// operator commands.
#[derive(Debug, clap::Parser)]
#[command(name = "seatline-workers", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub config: WorkersConfig,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Apply migrations, create topics, then run every worker until SIGTERM/ctrl-c.
    Run,
    /// Apply database migrations and exit.
    Migrate,
    /// Load demo concerts, dates and seats, unless the catalog already has concerts.
    Seed,
}
