//! Database access: the workspace migrator and the connection pool.
//!
//! The workers own the schema: `seatline-workers migrate` (and `seatline-workers run` at
//! start-up) apply [`MIGRATOR`]. The API only checks that the schema is current.

use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgPool, Postgres, Transaction};

use crate::config::DatabaseConfig;

/// Every migration in `migrations/` at the repository root. Tests use it through
/// `#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// A pooled connection idle for longer than this is pinged before it is handed out.
///
/// sqlx pings every connection it hands out by default: one more round trip, and one more
/// wake-up of a PostgreSQL backend, per statement outside a transaction. Under load that is
/// about as many round trips as there are statements, for connections that were in use a few
/// milliseconds earlier. A connection that broke while idle (a restarted or failed-over
/// server, a dropped socket) has almost always been idle for longer than this, and is still
/// found and replaced before use. One that breaks within this window fails its next statement,
/// which callers already treat as a transient database error.
pub const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// Builds the pool. Connections are opened lazily, so a process can start (and report
/// itself not ready) while PostgreSQL is down.
pub fn pool(config: &DatabaseConfig) -> anyhow::Result<PgPool> {
    let connect: PgConnectOptions = config.url.expose_secret().parse()?;
    Ok(pool_with(
        connect,
        config.max_connections,
        Duration::from_millis(config.acquire_timeout_ms),
    ))
}

/// [`pool`] for already parsed connection options.
pub fn pool_with(
    connect: PgConnectOptions,
    max_connections: u32,
    acquire_timeout: Duration,
) -> PgPool {
    // Every statement is prepared once per connection and then executed with new parameters.
    // By default PostgreSQL plans each execution again as long as a plan for the actual
    // values looks cheaper than the generic one, which it always does for the `= ANY($1)`
    // and `unnest($1)` batches here, since a generic plan cannot know the arrays' length:
    // under load that planning took about a third of PostgreSQL's time in statements. The
    // values never change the best plan of these statements (statuses are literals in the
    // SQL, so partial indexes still match), so each connection plans each statement once.
    let connect = connect.options([("plan_cache_mode", "force_generic_plan")]);
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(acquire_timeout)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > PING_IF_IDLE_FOR {
                    // An error closes this connection; the pool hands out another.
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .connect_lazy_with(connect)
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
    Ok(try_lock_exclusive(&mut tx, key).await?.then_some(tx))
}

/// Takes the transaction-scoped advisory lock `key` in a transaction already begun, if no other
/// session holds it; true when taken.
pub async fn try_lock_exclusive(
    tx: &mut Transaction<'static, Postgres>,
    key: i64,
) -> sqlx::Result<bool> {
    let (locked,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_xact_lock($1)")
        .bind(key)
        .fetch_one(&mut **tx)
        .await?;
    Ok(locked)
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
