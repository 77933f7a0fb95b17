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
    /// Published outbox rows are kept this long (for `replay events`), then pruned.
    #[arg(long, env = "OUTBOX_RETENTION", default_value = "7days", value_parser = parse_duration)]
    pub outbox_retention: Duration,
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
            outbox_retention: Duration::from_secs(7 * 24 * 3600),
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
    /// Replay events to consumers, or requests through the deciders.
    #[command(subcommand)]
    Replay(ReplayCommand),
    /// Inspect and redrive dead-lettered request messages.
    #[command(subcommand)]
    Dlq(DlqCommand),
}

#[derive(Debug, clap::Subcommand)]
pub enum ReplayCommand {
    /// Re-publish events from the outbox, with their original ids, for a consumer that lost data.
    ///
    /// Selects published outbox rows (kept for OUTBOX_RETENTION) by time range, aggregate and
    /// type, and publishes them again in their original order. Consumers deduplicate by event id.
    Events(ReplayEventsArgs),
    /// Reprocess a request topic from an offset or a time, through the (idempotent) deciders.
    ///
    /// Resets the consumer group's offsets to the start point and decides every message up to
    /// the current end, committing the group's offsets as it goes. Use the workers' group with
    /// the workers stopped (Kafka refuses to reset an active group), or --fresh-group while they
    /// run. Decisions are idempotent, so a replay should change nothing; it prints what it
    /// reprocessed and what changed.
    Requests(ReplayRequestsArgs),
}

#[derive(Debug, clap::Args)]
pub struct ReplayEventsArgs {
    /// Only events created at or after this time (RFC 3339).
    #[arg(long)]
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    /// Only events created before this time (RFC 3339).
    #[arg(long)]
    pub to: Option<chrono::DateTime<chrono::Utc>>,
    /// Only events of this aggregate (a seat `{concertDateId}:{seatNo}`, or a payment id).
    #[arg(long)]
    pub aggregate: Option<String>,
    /// Only events of this type, e.g. `reservation.held` or `seatline.payment.failed`.
    #[arg(long = "type")]
    pub event_type: Option<String>,
    /// Count what would be re-published, publish nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RequestTopic {
    Reservation,
    Payment,
    All,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("start").required(true).args(["from_offset", "from_time", "from_beginning"])))]
pub struct ReplayRequestsArgs {
    /// Which request topic.
    #[arg(long, value_enum, default_value = "all")]
    pub topic: RequestTopic,
    /// Start at this offset in every partition (clamped to what the broker still has).
    #[arg(long)]
    pub from_offset: Option<i64>,
    /// Start at the first message at or after this time (RFC 3339).
    #[arg(long)]
    pub from_time: Option<chrono::DateTime<chrono::Utc>>,
    /// Start at the oldest message the broker has.
    #[arg(long)]
    pub from_beginning: bool,
    /// The consumer group to reset; default the workers' group (KAFKA_WORKER_GROUP).
    #[arg(long, conflicts_with = "fresh_group")]
    pub group: Option<String>,
    /// Use a new, unique group: safe while the workers run.
    #[arg(long)]
    pub fresh_group: bool,
    /// Only reset the group's offsets; the workers reprocess when they (re)start.
    #[arg(long)]
    pub reset_only: bool,
    /// Show the ranges that would be reprocessed, change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum DlqCommand {
    /// List dead-lettered messages: where each sits, why, and where it came from.
    List {
        /// Show at most this many (the newest).
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Send dead-lettered messages back to their original topic to be decided again.
    Redrive {
        /// Messages to redrive, as `PARTITION:OFFSET` within the dead-letter topic (see `dlq list`).
        #[arg(long = "message", value_parser = parse_coordinate, required_unless_present = "all")]
        messages: Vec<(i32, i64)>,
        /// Redrive every dead-lettered message.
        #[arg(long, conflicts_with = "messages")]
        all: bool,
        /// Replace the value of the (single) message with this file's content: a fixed message.
        #[arg(long)]
        value_file: Option<std::path::PathBuf>,
    },
}

fn parse_coordinate(text: &str) -> Result<(i32, i64), String> {
    let (p, o) = text.split_once(':').ok_or("expected PARTITION:OFFSET")?;
    Ok((
        p.parse().map_err(|_| "bad partition")?,
        o.parse().map_err(|_| "bad offset")?,
    ))
}

#[cfg(test)]
mod command_line_tests {
    use super::*;
    use clap::CommandFactory;

    /// Clap checks the whole command line (e.g. two settings with one id) only when asked;
    /// otherwise a clash surfaces as a start-up error.
    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
