//! Typed settings, read once from environment variables (or flags) in each binary's `main`
//! and passed down. Defaults work against `deploy/local`. The README lists every variable.
//!
//! Durations accept `humantime` text (`300s`, `5m`, `250ms`) or a bare number of seconds.

use std::time::Duration;

use secrecy::SecretString;

use crate::kafka::Topic;

/// Parses a duration from `300`, `300s`, `5m` or `250ms`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    humantime::parse_duration(text).map_err(|e| format!("not a duration ({e}): {text}"))
}

fn parse_secret(text: &str) -> Result<SecretString, String> {
    Ok(SecretString::from(text.to_owned()))
}

/// PostgreSQL connection settings.
#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseConfig {
    /// PostgreSQL connection URL.
    #[arg(
        long = "database-url",
        env = "DATABASE_URL",
        default_value = "postgres://seatline:seatline@127.0.0.1:5432/seatline",
        value_parser = parse_secret,
        hide_default_value = true
    )]
    pub url: SecretString,
    /// Upper bound on pooled connections per process.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 16)]
    pub max_connections: u32,
    /// How long a caller waits for a pooled connection before giving up.
    #[arg(long, env = "DATABASE_ACQUIRE_TIMEOUT_MS", default_value_t = 3000)]
    pub acquire_timeout_ms: u64,
}

impl DatabaseConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: SecretString::from(url.into()),
            max_connections: 16,
            acquire_timeout_ms: 3000,
        }
    }
}

/// Kafka connection, topic naming and producer bounds.
#[derive(Debug, Clone, clap::Args)]
pub struct KafkaConfig {
    /// Comma-separated broker addresses.
    #[arg(
        long,
        env = "KAFKA_BOOTSTRAP_SERVERS",
        default_value = "127.0.0.1:9092"
    )]
    pub bootstrap_servers: String,
    /// Prefix of every topic name; see [`Topic`].
    #[arg(long, env = "KAFKA_TOPIC_PREFIX", default_value = "seatline.")]
    pub topic_prefix: String,
    /// Partitions of each topic created at start-up.
    #[arg(long, env = "KAFKA_PARTITIONS", default_value_t = 12)]
    pub partitions: i32,
    /// Replication factor of each topic created at start-up.
    #[arg(long, env = "KAFKA_REPLICATION_FACTOR", default_value_t = 1)]
    pub replication_factor: i32,
    /// How long a produce may take, until the broker's acknowledgement, before the API answers 503.
    #[arg(long, env = "KAFKA_PRODUCE_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    pub produce_timeout: Duration,
    /// Consumer group of the request workers.
    #[arg(long, env = "KAFKA_WORKER_GROUP", default_value = "seatline-workers")]
    pub worker_group: String,
}

impl KafkaConfig {
    pub fn new(bootstrap_servers: impl Into<String>, topic_prefix: impl Into<String>) -> Self {
        Self {
            bootstrap_servers: bootstrap_servers.into(),
            topic_prefix: topic_prefix.into(),
            partitions: 12,
            replication_factor: 1,
            produce_timeout: Duration::from_secs(2),
            worker_group: "seatline-workers".into(),
        }
    }

    /// The configured name of a topic.
    pub fn topic(&self, topic: Topic) -> String {
        format!("{}{}", self.topic_prefix, topic.suffix())
    }
}

/// Waiting-queue limits. The API reads them to answer; the admitter enforces them.
#[derive(Debug, Clone, clap::Args)]
pub struct QueueConfig {
    /// At most this many ACTIVE users at a time.
    #[arg(long, env = "QUEUE_MAX_ACTIVE", default_value_t = 1000)]
    pub max_active: i64,
    /// At most this many admissions per second.
    #[arg(long, env = "QUEUE_ADMIT_PER_SEC", default_value_t = 200)]
    pub admit_per_sec: i64,
    /// An ACTIVE token expires this long after admission.
    #[arg(long, env = "QUEUE_ACTIVE_TTL", default_value = "600s", value_parser = parse_duration)]
    pub active_ttl: Duration,
    /// A WAITING token that has not polled for this long is dropped from the line.
    #[arg(long, env = "QUEUE_WAIT_IDLE_TTL", default_value = "120s", value_parser = parse_duration)]
    pub wait_idle_ttl: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            max_active: 1000,
            admit_per_sec: 200,
            active_ttl: Duration::from_secs(600),
            wait_idle_ttl: Duration::from_secs(120),
        }
    }
}

/// Reservation rules, enforced by the workers.
#[derive(Debug, Clone, clap::Args)]
pub struct ReservationConfig {
    /// How long a seat stays HELD for its holder before it is released if unpaid.
    #[arg(long, env = "RESERVATION_HOLD_TTL", default_value = "300s", value_parser = parse_duration)]
    pub hold_ttl: Duration,
    /// Live holds one user may have at a time.
    #[arg(long, env = "MAX_HOLDS_PER_USER", default_value_t = 4)]
    pub max_holds_per_user: i64,
}

impl Default for ReservationConfig {
    fn default() -> Self {
        Self {
            hold_ttl: Duration::from_secs(300),
            max_holds_per_user: 4,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Logging settings.
#[derive(Debug, Clone, clap::Args)]
pub struct TelemetryConfig {
    /// `text` for people, `json` for log pipelines.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_seconds_and_humantime() {
        assert_eq!(parse_duration("300").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("soon").is_err());
    }
}
