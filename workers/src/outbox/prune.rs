//! Pruning: outbox rows are kept for `OUTBOX_RETENTION` after they were written (so operators
//! can replay them) and then deleted in small batches, so pruning never holds long locks. A row
//! the relay has not published yet is never deleted.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::relay::PUBLISHED_SQL;

const BATCH: i64 = 5000;
const INTERVAL: Duration = Duration::from_secs(60);

/// Deletes up to one batch of published rows written before `now - retention`. Returns how
/// many.
pub async fn prune_once(pool: &PgPool, retention: Duration) -> sqlx::Result<u64> {
    Ok(sqlx::query(&format!(
        "DELETE FROM outbox WHERE seq IN (
             SELECT o.seq FROM outbox o
             WHERE o.created_at < now() - make_interval(secs => $1) AND {PUBLISHED_SQL}
             LIMIT $2)"
    ))
    .bind(retention.as_secs_f64())
    .bind(BATCH)
    .execute(pool)
    .await?
    .rows_affected())
}

pub async fn run(pool: PgPool, retention: Duration, shutdown: CancellationToken) {
    loop {
        loop {
            match prune_once(&pool, retention).await {
                Ok(n) if n as i64 == BATCH => continue,
                Ok(0) => break,
                Ok(n) => {
                    tracing::info!(deleted = n, "pruned published outbox rows");
                    break;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "outbox pruning failed; retrying later");
                    break;
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(INTERVAL) => {}
        }
    }
}
