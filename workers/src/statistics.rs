//! Planner statistics for the tables a sale grows.
//!
//! A sale starts on nearly empty tables (`requests`, `processed_requests`, `reservations`,
//! ...) that grow by thousands of rows a second. Each pooled connection caches a generic plan
//! for its prepared statements after a few runs; cached while a table is tiny, that plan is a
//! sequential scan, and it is kept until the table's statistics change. Autovacuum analyzes
//! only every minute and after 10% growth, which in a sale's first minute is far too late: in
//! the benchmark, the deciders' inbox lookup reached 25–70 ms per batch after 10,000 decisions,
//! holding the batch's row locks meanwhile, and the decision rate fell by half.
//!
//! So the workers analyze a listed table whenever it has at least doubled in size since it was
//! last analyzed. New statistics invalidate the cached plans, and every connection plans again
//! for the table as it is. Doubling keeps this to a few dozen cheap `ANALYZE`s over a table's
//! life; planning every statement instead cost about a tenth of the machine's CPU under load.
//!
//! These `ANALYZE`s sample fewer rows than autovacuum's ([`SAMPLE_STATISTICS_TARGET`]): what
//! they are for is the table's size and the rough shape of its keys, and the full sample, run
//! while the sale was growing the tables, cost about a second of PostgreSQL's CPU in every
//! 15 s. Autovacuum's own `ANALYZE`s follow with each column's statistics target: the full
//! sample, except for the inbox and the outbox, which gain a row per decision and are sampled
//! like this (migration `decision_tables_sampled_lightly`).

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// Tables whose size changes by orders of magnitude during a sale.
pub const GROWING_TABLES: &[&str] = &[
    "users",
    "queue_tokens",
    "requests",
    "processed_requests",
    "reservations",
    "payments",
    "point_ledger",
    "outbox",
];
/// Below this many pages a table is small enough that any plan is cheap.
const MIN_PAGES: i64 = 8;
/// The statistics target of the refresher's `ANALYZE`s: 3,000 sampled rows instead of the
/// default 30,000, about a tenth of the cost (10-20 ms at 80,000 rows).
const SAMPLE_STATISTICS_TARGET: i32 = 10;
/// Advisory lock key, so that one worker instance analyzes at a time.
const STATISTICS_LOCK: i64 = 0x5EA7_0004;

/// Analyzes every listed table that has at least doubled in pages since its statistics were
/// taken. Returns the tables analyzed (none when another instance holds the lock).
pub async fn refresh_once(pool: &PgPool) -> sqlx::Result<Vec<String>> {
    let Some(mut tx) = seatline_shared::db::begin_exclusive(pool, STATISTICS_LOCK).await? else {
        return Ok(Vec::new());
    };
    // `relpages` is what the planner's statistics were taken at (0 before the first ANALYZE);
    // `pg_relation_size` is the table now.
    let grown: Vec<(String,)> = sqlx::query_as(
        "SELECT c.relname::text FROM pg_class c
         WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r'
           AND c.relname = ANY($1)
           AND pg_relation_size(c.oid) / current_setting('block_size')::bigint
               >= greatest($2, 2 * c.relpages::bigint)",
    )
    .bind(GROWING_TABLES)
    .bind(MIN_PAGES)
    .fetch_all(&mut *tx)
    .await?;
    let mut analyzed = Vec::with_capacity(grown.len());
    for (table,) in grown {
        // Each in its own transaction, outside the lock's (which writes nothing and so has no
        // transaction id): a transaction id held open would hold back the outbox relay, which
        // waits for every older transaction to end.
        let mut analyze = pool.begin().await?;
        sqlx::query(&format!(
            "SET LOCAL default_statistics_target = {SAMPLE_STATISTICS_TARGET}"
        ))
        .execute(&mut *analyze)
        .await?;
        // The name comes from the constant list above, so quoting it is enough.
        sqlx::query(&format!("ANALYZE \"{table}\""))
            .execute(&mut *analyze)
            .await?;
        analyze.commit().await?;
        analyzed.push(table);
    }
    tx.commit().await?;
    Ok(analyzed)
}

/// Refreshes every `interval` until `shutdown`.
pub async fn run(pool: PgPool, interval: Duration, shutdown: CancellationToken) {
    crate::every(interval, &shutdown, || async {
        match refresh_once(&pool).await {
            Ok(tables) if !tables.is_empty() => {
                tracing::info!(?tables, "refreshed planner statistics of grown tables");
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "refreshing planner statistics failed"),
        }
    })
    .await;
    tracing::info!("statistics refresher stopped");
}
