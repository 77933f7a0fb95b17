//! Database access: the workspace migrator and the connection pool.
//!
//! The workers own the schema: `seatline-workers migrate` (and `seatline-workers run` at
//! start-up) apply [`MIGRATOR`]. The API only checks that the schema is current.

use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use crate::config::DatabaseConfig;

/// Every migration in `migrations/` at the repository root. Tests use it through
/// `#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Builds the pool. Connections are opened lazily, so a process can start (and report
/// itself not ready) while PostgreSQL is down.
pub fn pool(config: &DatabaseConfig) -> anyhow::Result<PgPool> {
    let options: PgConnectOptions = config.url.expose_secret().parse()?;
    Ok(PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(Duration::from_millis(config.acquire_timeout_ms))
        .connect_lazy_with(options))
}

/// True when the error is PostgreSQL's unique violation on the named constraint or index.
pub fn is_unique_violation(err: &sqlx::Error, constraint: &str) -> bool {
    match err {
        sqlx::Error::Database(db) => {
            db.is_unique_violation() && db.constraint().is_some_and(|c| c == constraint)
        }
        _ => false,
    }
}
