//! The API's settings: shared sections plus what only the HTTP side needs.

use std::net::SocketAddr;
use std::time::Duration;

use seatline_shared::config::{
    parse_duration, DatabaseConfig, KafkaConfig, QueueConfig, TelemetryConfig,
};
use secrecy::{ExposeSecret, SecretString};

fn parse_token_secret(text: &str) -> Result<SecretString, String> {
    if text.len() < 32 {
        return Err("TOKEN_SECRET must be at least 32 bytes".into());
    }
    Ok(SecretString::from(text.to_owned()))
}

fn parse_admin_token(text: &str) -> Result<SecretString, String> {
    if text.len() < 16 {
        return Err("ADMIN_TOKEN must be at least 16 bytes".into());
    }
    Ok(SecretString::from(text.to_owned()))
}

/// Seatline HTTP API.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "seatline-api", version, about)]
pub struct ApiConfig {
    /// Address the HTTP server listens on.
    #[arg(long, env = "HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,
    /// Secret that signs queue tokens (HMAC-SHA256); at least 32 bytes.
    #[arg(long, env = "TOKEN_SECRET", value_parser = parse_token_secret, hide_env_values = true)]
    pub token_secret: SecretString,
    /// Bearer secret of the admin endpoints; without it they answer 401.
    #[arg(long, env = "ADMIN_TOKEN", value_parser = parse_admin_token, hide_env_values = true)]
    pub admin_token: Option<SecretString>,
    /// Largest single charge.
    #[arg(long, env = "CHARGE_MAX", default_value_t = 1_000_000)]
    pub charge_max: i64,
    /// Largest balance a user may hold.
    #[arg(long, env = "BALANCE_MAX", default_value_t = 1_000_000_000_000)]
    pub balance_max: i64,
    /// How long an ACTIVE token's state may be served from memory (0 disables the cache). Its
    /// own expiry is checked on every use, and a payment drops it as soon as this instance's
    /// event listener sees it; this bounds staleness only while that listener lags.
    #[arg(long, env = "TOKEN_CACHE_TTL", default_value = "30s", value_parser = parse_duration)]
    pub token_cache_ttl: Duration,
    /// Upper bound on one HTTP request, long polls included.
    #[arg(long, env = "HTTP_REQUEST_TIMEOUT", default_value = "40s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// Writes (token issues, charges, reservation and payment submissions) in progress at once;
    /// beyond it they are refused with 503 and Retry-After instead of queueing without bound.
    #[arg(long, env = "HTTP_MAX_IN_FLIGHT_WRITES", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_in_flight_writes: u32,
    /// Client connections open at once; one more is answered 503 with Retry-After and closed
    /// at once, so that a crowd past saturation cannot grow the API's memory without bound.
    #[arg(long, env = "HTTP_MAX_CONNECTIONS", default_value_t = 2048,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_client_connections: u32,
    #[command(flatten)]
    pub database: DatabaseConfig,
    #[command(flatten)]
    pub kafka: KafkaConfig,
    #[command(flatten)]
    pub queue: QueueConfig,
    #[command(flatten)]
    pub telemetry: TelemetryConfig,
}

impl ApiConfig {
    /// Settings for tests and embedding: defaults everywhere but the given connections.
    pub fn for_services(database: DatabaseConfig, kafka: KafkaConfig, token_secret: &str) -> Self {
        Self {
            http_addr: "127.0.0.1:0".parse().expect("valid address"),
            token_secret: SecretString::from(token_secret.to_owned()),
            admin_token: None,
            charge_max: 1_000_000,
            balance_max: 1_000_000_000_000,
            // As deployed: a test that a payment ends the token then depends on the event
            // listener dropping it, not on the entry timing out.
            token_cache_ttl: Duration::from_secs(30),
            request_timeout: Duration::from_secs(40),
            max_in_flight_writes: 1024,
            max_client_connections: 2048,
            database,
            kafka,
            queue: QueueConfig::default(),
            telemetry: TelemetryConfig {
                log_format: seatline_shared::config::LogFormat::Text,
            },
        }
    }

    pub fn admin_token(&self) -> Option<&str> {
        self.admin_token.as_ref().map(|s| s.expose_secret())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Clap checks the whole command line (e.g. two settings with one id) only when asked;
    /// otherwise a clash surfaces as a start-up error.
    #[test]
    fn the_command_line_is_well_formed() {
        ApiConfig::command().debug_assert();
    }

    /// Two flattened settings with one field name share a clap id, and then one of them cannot
    /// be given at all; `debug_assert` does not see that, parsing does.
    #[test]
    fn every_setting_has_a_default_but_the_secret() {
        use clap::Parser;
        ApiConfig::try_parse_from([
            "seatline-api",
            "--token-secret",
            "a-secret-of-thirty-two-bytes-or-more!!",
        ])
        .expect("parses with only the secret given");
    }
}
