//! Database access: the workspace migrator and the connection pool.
//!
//! The workers own the schema: `seatline-workers migrate` (and `seatline-workers run` at
//! start-up) apply [`MIGRATOR`]. The API only checks that the schema is current.

use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};

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

/// Begins a transaction holding the transaction-scoped advisory lock `key`, or returns `None`
/// when another session holds it. Rounds that one instance at a time may run (the admitter,
/// the outbox relay, the statistics refresher) start with it; the lock goes with the
/// transaction, so a crashed instance never leaves it behind.
pub async fn begin_exclusive(
    pool: &PgPool,
    key: i64,
) -> sqlx::Result<Option<Transaction<'static, Postgres>>> {
    let mut tx = pool.begin().await?;
    let (locked,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_xact_lock($1)")
        .bind(key)
        .fetch_one(&mut *tx)
        .await?;
    Ok(locked.then_some(tx))
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
